//! Transactions: the contract's session layer (section 1.5). A
//! [`Transaction`] keeps an identity map of the rows it read and wrote,
//! applies the session rules at call time (unique pre-checks, update and
//! delete rules), and turns its dirty set into one commit payload.
//!
//! Reads inside a transaction go to the latest committed state (ranges to
//! one snapshot); every row read and not written joins the read set and is
//! version-checked at commit, so a stale read fails the commit as a race.
//! Phantoms are not detected (the contract's isolation level). Dropping a
//! transaction without committing discards it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jkv::WriteOptions;

use crate::commit::{changed_columns, Op};
use crate::error::{Error, RaceKind, Result};
use crate::range::Range;
use crate::row::Row;
use crate::schema::ID;
use crate::store::Ecs;
use crate::table::{CommitGroup, Table};
use crate::value::{cast, CastMode, Value};

/// Where a row stands in a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowState {
    /// Read, not changed.
    Clean,
    /// Inserted in this transaction (also after later updates).
    Insert,
    /// Read, then changed.
    Update,
    /// Deleted (overrides the other states).
    Delete,
}

struct Entry {
    table: Table,
    state: RowState,
    /// The row as committed when first read; `None` for rows this
    /// transaction inserted.
    original: Option<Row>,
    current: Row,
}

/// One transaction over tables of one (instance, cluster).
pub struct Transaction<'e> {
    ecs: &'e Ecs,
    /// (table number, id) -> entry.
    rows: HashMap<(u32, i64), Entry>,
    /// First-touch order, so commits are deterministic.
    order: Vec<(u32, i64)>,
    /// Negative observations: (table number, column, value bytes) read and
    /// found absent. A later unique clash on one of them is a race.
    absent: HashSet<(u32, String, Vec<u8>)>,
    /// Unique values of held, not deleted rows: (table number, position,
    /// value key) -> ids, so pre-checks cost a lookup, not a scan.
    held_unique: HashMap<(u32, usize, Vec<u8>), Vec<i64>>,
    /// The commit group of the first table touched and its write count
    /// then (see [`Ecs::commit_observed`]).
    observed: Option<(Arc<CommitGroup>, u64)>,
    options: WriteOptions,
}

impl Ecs {
    /// Starts a transaction (not synced on commit unless
    /// [`Transaction::sync`] is set).
    pub fn begin(&self) -> Transaction<'_> {
        Transaction {
            ecs: self,
            rows: HashMap::new(),
            order: Vec::new(),
            absent: HashSet::new(),
            held_unique: HashMap::new(),
            observed: None,
            options: WriteOptions::default(),
        }
    }

    /// Runs `body` in a transaction and commits it, again on every
    /// [`Error::Race`] (from the body or the commit), up to `attempts`
    /// times with hetu's backoff of 0.1·2^i s; then
    /// [`Error::RetryExhausted`]. Any other error ends it at once and the
    /// attempt's changes are discarded.
    pub fn retry<T>(
        &self,
        attempts: u32,
        body: impl FnMut(&mut Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        self.retry_with(&RetryPolicy::new(attempts), body)
            .map(|(v, _)| v)
    }

    /// [`Ecs::retry`] with a policy; also returns the attempts used (1 when
    /// the first one committed).
    pub fn retry_with<T>(
        &self,
        policy: &RetryPolicy,
        mut body: impl FnMut(&mut Transaction<'_>) -> Result<T>,
    ) -> Result<(T, u32)> {
        let mut last = None;
        for attempt in 0..policy.attempts {
            let mut txn = self.begin();
            txn.options = policy.write_options;
            let result = body(&mut txn).and_then(|v| txn.commit().map(|()| v));
            match result {
                Ok(v) => return Ok((v, attempt + 1)),
                Err(e) if e.is_race() => {
                    last = Some(e);
                    if attempt + 1 < policy.attempts {
                        std::thread::sleep(policy.delay(attempt));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::RetryExhausted {
            attempts: policy.attempts,
            last: Box::new(last.unwrap_or_else(|| Error::invalid("retry with 0 attempts"))),
        })
    }
}

/// How [`Ecs::retry_with`] retries.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (hetu: 5 for a session).
    pub attempts: u32,
    /// Delay before retry i is `base · 2^i` (hetu: 100 ms).
    pub base: Duration,
    /// Scale each delay by a random factor in [0.5, 1.5) so contenders
    /// spread out.
    pub jitter: bool,
    /// Durability of the commit.
    pub write_options: WriteOptions,
}

impl RetryPolicy {
    /// hetu's policy: `attempts`, 0.1·2^i s, no jitter, not synced.
    pub fn new(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            base: Duration::from_millis(100),
            jitter: false,
            write_options: WriteOptions::default(),
        }
    }

    fn delay(&self, attempt: u32) -> Duration {
        let d = self.base.saturating_mul(1u32 << attempt.min(20));
        if self.jitter {
            d.mul_f64(0.5 + rand::random::<f64>())
        } else {
            d
        }
    }
}

impl<'e> Transaction<'e> {
    /// Makes the commit synced (`true`) or not (the default).
    pub fn sync(&mut self, yes: bool) -> &mut Self {
        self.options.sync = yes;
        self
    }

    /// Notes the write count of `table`'s group before the first read.
    fn observe(&mut self, table: &Table) {
        if self.observed.is_none() {
            self.observed = Some((table.group().clone(), table.group().writes()));
        }
    }

    /// The state of a row this transaction holds, if any.
    pub fn state(&self, table: &Table, id: i64) -> Option<RowState> {
        self.rows.get(&(table.number(), id)).map(|e| e.state)
    }

    /// Row `id`: from the identity map when held (`None` if deleted here),
    /// else from the database (then held as clean).
    pub fn get(&mut self, table: &Table, id: i64) -> Result<Option<Row>> {
        self.observe(table);
        let key = (table.number(), id);
        if let Some(e) = self.rows.get(&key) {
            return Ok((e.state != RowState::Delete).then(|| e.current.clone()));
        }
        match self.ecs.get(table, id)? {
            Some(row) => {
                self.hold(table, row.clone());
                Ok(Some(row))
            }
            None => {
                self.absent
                    .insert((key.0, ID.to_string(), id.to_le_bytes().to_vec()));
                Ok(None)
            }
        }
    }

    /// The row whose indexed `column` equals `value`: held rows first, then
    /// the database (first match in id order).
    pub fn get_by(
        &mut self,
        table: &Table,
        column: &str,
        value: impl Into<Value>,
    ) -> Result<Option<Row>> {
        self.observe(table);
        let value = value.into();
        let c = table.component().clone();
        let p = c.property(column)?;
        let v = cast(&value, p.dtype, CastMode::Assign, column)?;
        if column == ID {
            return self.get(table, v.as_i64().expect("id is int64"));
        }
        let pos = c.position(column).expect("property exists");
        if p.unique {
            let probe = with_value(table, pos, &v);
            let held = self
                .held_unique
                .get(&(table.number(), pos, unique_key(&probe, pos)));
            if let Some(&id) = held.and_then(|ids| ids.first()) {
                let e = &self.rows[&(table.number(), id)];
                return Ok(Some(e.current.clone()));
            }
        } else {
            for k in &self.order {
                let e = &self.rows[k];
                if e.table.number() == table.number()
                    && e.state != RowState::Delete
                    && e.current.value_at(pos)? == v
                {
                    return Ok(Some(e.current.clone()));
                }
            }
        }
        let found = self.ecs.get_by(table, column, v.clone())?;
        let row = match found {
            Some(row) => {
                let key = (table.number(), row.id());
                match self.rows.get(&key) {
                    // Held rows were checked above: changed away or deleted here.
                    Some(_) => None,
                    None => {
                        self.hold(table, row.clone());
                        Some(row)
                    }
                }
            }
            None => None,
        };
        if row.is_none() {
            self.absent.insert((
                table.number(),
                column.to_string(),
                table.sortable_of(&with_value(table, pos, &v), pos)?,
            ));
        }
        Ok(row)
    }

    /// Rows of committed index entries matching `range` (rows inserted here
    /// are not returned, rows deleted here are left out, held rows come from
    /// the identity map). Every returned row is held.
    pub fn range(&mut self, table: &Table, range: &Range) -> Result<Vec<Row>> {
        self.observe(table);
        let snapshot = self.ecs.snapshot();
        let mut found = Vec::new();
        self.ecs
            .range_each(table, range, &snapshot, &mut |id, bytes| {
                found.push((id, bytes.to_vec()));
                Ok(())
            })?;
        let mut rows = Vec::with_capacity(found.len());
        for (id, bytes) in found {
            let key = (table.number(), id);
            match self.rows.get(&key) {
                Some(e) if e.state == RowState::Delete => {}
                Some(e) => rows.push(e.current.clone()),
                None => {
                    let row = table.decode(id, &bytes)?;
                    self.hold(table, row.clone());
                    rows.push(row);
                }
            }
        }
        Ok(rows)
    }

    /// Adds (`add`) or removes the unique values of `row` in `held_unique`.
    fn track_unique(&mut self, table: &Table, row: &Row, add: bool) {
        let c = row.component();
        for (pos, p) in c.properties().iter().enumerate() {
            if !p.unique || pos == c.id_position() {
                continue;
            }
            let key = (table.number(), pos, unique_key(row, pos));
            if add {
                self.held_unique.entry(key).or_default().push(row.id());
            } else if let Some(ids) = self.held_unique.get_mut(&key) {
                ids.retain(|&i| i != row.id());
                if ids.is_empty() {
                    self.held_unique.remove(&key);
                }
            }
        }
    }

    fn hold(&mut self, table: &Table, row: Row) {
        let key = (table.number(), row.id());
        self.track_unique(table, &row, true);
        self.order.push(key);
        self.rows.insert(
            key,
            Entry {
                table: table.clone(),
                state: RowState::Clean,
                original: Some(row.clone()),
                current: row,
            },
        );
    }

    /// Inserts `row` under its id (make new rows with [`Ecs::new_row`],
    /// which gives them a snowflake id); returns the id.
    /// Unique columns are checked now: a clash with a held row is
    /// [`Error::UniqueViolation`]; with a committed row too, unless this
    /// transaction saw that value absent earlier, which makes it a race.
    pub fn insert(&mut self, table: &Table, row: Row) -> Result<i64> {
        self.observe(table);
        self.check_row_table(table, &row)?;
        if row.version() != 0 {
            return Err(Error::invalid("insert: a new row's _version must be 0"));
        }
        let id = row.id();
        let key = (table.number(), id);
        if let Some(e) = self.rows.get(&key) {
            return Err(match e.state {
                RowState::Delete => Error::invalid(format!(
                    "insert: row {id} was deleted in this transaction; commit before reusing its id"
                )),
                _ => Error::UniqueViolation {
                    field: ID.into(),
                    detail: format!("row {id} is already held by this transaction"),
                },
            });
        }
        let c = table.component().clone();
        check_encodable(table, &row, c.indexed())?;
        let unique: Vec<usize> = (0..c.properties().len())
            .filter(|&i| c.properties()[i].unique)
            .collect();
        self.precheck_unique(table, &row, &unique)?;
        self.track_unique(table, &row, true);
        self.order.push(key);
        self.rows.insert(
            key,
            Entry {
                table: table.clone(),
                state: RowState::Insert,
                original: None,
                current: row,
            },
        );
        Ok(id)
    }

    /// Replaces a held row with `row`. Errors: [`Error::NotFound`] when the
    /// row was not read here or was deleted; [`Error::InvalidArgument`] when
    /// `_version` was changed or no column changed; unique clashes as for
    /// [`Transaction::insert`].
    pub fn update(&mut self, table: &Table, row: Row) -> Result<()> {
        self.observe(table);
        self.check_row_table(table, &row)?;
        let key = (table.number(), row.id());
        let (current, state) = match self.rows.get(&key) {
            Some(e) if e.state != RowState::Delete => (e.current.clone(), e.state),
            Some(_) => {
                return Err(Error::NotFound(format!(
                    "update: row {} was deleted in this transaction",
                    row.id()
                )))
            }
            None => {
                return Err(Error::NotFound(format!(
                    "update: row {} was not read in this transaction",
                    row.id()
                )))
            }
        };
        if row.version() != current.version() {
            return Err(Error::invalid("update: _version cannot be changed"));
        }
        let changed = changed_columns(&current, &row);
        if changed.is_empty() {
            return Err(Error::invalid(format!(
                "update: row {} has no changed field",
                row.id()
            )));
        }
        let c = table.component().clone();
        let indexed: Vec<usize> = changed
            .iter()
            .copied()
            .filter(|&i| c.properties()[i].index)
            .collect();
        check_encodable(table, &row, &indexed)?;
        let unique: Vec<usize> = changed
            .into_iter()
            .filter(|&i| c.properties()[i].unique)
            .collect();
        self.precheck_unique(table, &row, &unique)?;
        self.track_unique(table, &current, false);
        self.track_unique(table, &row, true);
        let e = self.rows.get_mut(&key).expect("held");
        e.current = row;
        if state == RowState::Clean {
            e.state = RowState::Update;
        }
        Ok(())
    }

    /// Deletes a held row. [`Error::NotFound`] ("not existing") when the row
    /// was not read here or is already deleted.
    pub fn delete(&mut self, table: &Table, id: i64) -> Result<()> {
        self.observe(table);
        let key = (table.number(), id);
        match self.rows.get_mut(&key) {
            Some(e) if e.state != RowState::Delete => {
                e.state = RowState::Delete;
                let current = e.current.clone();
                self.track_unique(table, &current, false);
                Ok(())
            }
            _ => Err(Error::NotFound(format!(
                "delete: row {id} of {table:?} is not existing in this transaction (read it first)"
            ))),
        }
    }

    /// Finds the row whose unique `column` equals `value` (or makes a new
    /// one with that value and a new id), lets `change` edit it, and
    /// inserts or updates it (nothing when nothing changed). Returns the row.
    pub fn upsert(
        &mut self,
        table: &Table,
        column: &str,
        value: impl Into<Value>,
        change: impl FnOnce(&mut Row) -> Result<()>,
    ) -> Result<Row> {
        let value = value.into();
        let p = table.component().property(column)?;
        if !p.unique {
            return Err(Error::invalid(format!(
                "upsert needs a unique column; {column:?} is not unique"
            )));
        }
        match self.get_by(table, column, value.clone())? {
            Some(row) => {
                let mut new = row.clone();
                change(&mut new)?;
                if !changed_columns(&row, &new).is_empty() {
                    self.update(table, new.clone())?;
                }
                Ok(new)
            }
            None => {
                let mut row = self.ecs.new_row(table.component())?;
                row.set(column, value)?;
                change(&mut row)?;
                self.insert(table, row.clone())?;
                Ok(row)
            }
        }
    }

    fn check_row_table(&self, table: &Table, row: &Row) -> Result<()> {
        if row.component().version() != table.component().version() {
            return Err(Error::invalid(format!(
                "row of component {} (schema {}) used with table {table:?} (schema {})",
                row.component().name(),
                row.component().version(),
                table.component().version()
            )));
        }
        Ok(())
    }

    /// The session's unique pre-check of `row`'s columns at `positions`.
    fn precheck_unique(&mut self, table: &Table, row: &Row, positions: &[usize]) -> Result<()> {
        let c = table.component().clone();
        for &pos in positions {
            let name = &c.properties()[pos].name;
            let v = row.value_at(pos)?;
            let held = self
                .held_unique
                .get(&(table.number(), pos, unique_key(row, pos)));
            if let Some(&other) = held.and_then(|ids| ids.iter().find(|&&i| i != row.id())) {
                return Err(Error::UniqueViolation {
                    field: name.clone(),
                    detail: format!("value {v} is used by row {other} in this transaction"),
                });
            }
            let holders: Vec<i64> = if name == ID {
                match self.ecs.get(table, row.id())? {
                    Some(_) => vec![row.id()],
                    None => vec![],
                }
            } else {
                self.ecs.range_ids(
                    table,
                    &Range::eq(name.clone(), crate::store::literal(v.clone())).limit(2),
                )?
            };
            let deleted_here = |id: i64| {
                self.rows
                    .get(&(table.number(), id))
                    .is_some_and(|e| e.state == RowState::Delete)
            };
            if let Some(&holder) = holders
                .iter()
                .find(|&&h| (name == ID || h != row.id()) && !deleted_here(h))
            {
                let bytes = if name == ID {
                    row.id().to_le_bytes().to_vec()
                } else {
                    table.sortable_of(row, pos)?
                };
                if self.absent.contains(&(table.number(), name.clone(), bytes)) {
                    return Err(Error::race(
                        RaceKind::Unique,
                        format!("{table:?} column {name:?} value {v} was absent when read here, now row {holder} has it"),
                    ));
                }
                return Err(Error::UniqueViolation {
                    field: name.clone(),
                    detail: format!("value {v} is used by committed row {holder}"),
                });
            }
        }
        Ok(())
    }

    /// The commit payload of this transaction (see [`Op`]).
    pub fn payload(&self) -> Vec<Op> {
        let mut ops = Vec::with_capacity(self.order.len());
        for k in &self.order {
            let e = &self.rows[k];
            let table = e.table.clone();
            match (e.state, &e.original) {
                (RowState::Insert, _) => ops.push(Op::Insert {
                    table,
                    row: e.current.clone(),
                }),
                (RowState::Delete, None) => {} // inserted, then deleted: cancels out
                (RowState::Delete, Some(old)) => ops.push(Op::Delete {
                    table,
                    old: old.clone(),
                }),
                (RowState::Update, Some(old)) if !changed_columns(old, &e.current).is_empty() => {
                    ops.push(Op::Update {
                        table,
                        old: old.clone(),
                        new: e.current.clone(),
                    })
                }
                (_, Some(old)) => ops.push(Op::Read {
                    table,
                    id: old.id(),
                    version: old.version(),
                }),
                (_, None) => unreachable!("only inserted rows lack an original"),
            }
        }
        ops
    }

    /// Commits. A transaction without writes commits nothing and cannot
    /// fail; otherwise see [`Ecs::commit`].
    pub fn commit(self) -> Result<()> {
        let ops = self.payload();
        if !ops.iter().any(|op| !matches!(op, Op::Read { .. })) {
            return Ok(());
        }
        let observed = self.observed.as_ref().map(|(g, w)| (g, *w));
        self.ecs.commit_observed(&ops, self.options, observed)
    }
}

/// A row of `table` holding `v` at `pos` (to encode a probe value).
fn with_value(table: &Table, pos: usize, v: &Value) -> Row {
    let mut r = Row::new(table.component());
    r.write_at(pos, v);
    r
}

/// Refuses now, not at commit, a value an index cannot hold (NaN in an
/// indexed float column).
fn check_encodable(table: &Table, row: &Row, positions: &[usize]) -> Result<()> {
    for &pos in positions {
        if table.component().properties()[pos].dtype.is_float() {
            table.sortable_of(row, pos)?;
        }
    }
    Ok(())
}

/// The key a unique value is tracked under: the column's stored bytes, with
/// floats normalized so that -0.0 and +0.0 (equal values) share one key.
fn unique_key(row: &Row, pos: usize) -> Vec<u8> {
    match row.value_at(pos) {
        // -0.0 == 0.0: both are tracked as +0.0.
        Ok(Value::Float(f)) => (if f == 0.0 { 0.0f64 } else { f }).to_le_bytes().to_vec(),
        _ => row.field_bytes(pos).to_vec(),
    }
}
