//! The commit: one transaction's dirty set checked and applied as a whole
//! (the contract, section 1.4; docs/ecs.md, "Commit").
//!
//! Under the commit lock of the transaction's (instance, cluster):
//! 1. every check runs before anything is written: inserted ids must not
//!    exist; stored versions of updated, deleted and read rows must equal
//!    the expected ones (a missing row is a mismatch); unique values of
//!    inserted rows and of changed unique columns must be free, except for
//!    rows this commit deletes, and distinct within the commit;
//! 2. rows, version bumps and index removals and inserts go into **one**
//!    `WriteBatch`, written with the caller's `WriteOptions`.
//!
//! Then, with the lock released, the changed channels are published. A
//! failed check returns a retryable [`Error::Race`] naming the check and
//! the row, and leaves no trace. Reads never take the lock; commits of
//! different clusters take different locks.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jkv::{WriteBatch, WriteOptions};

use crate::error::{Error, RaceKind, Result};
use crate::keys;
use crate::row::Row;
use crate::schema::{ID, VERSION};
use crate::store::Ecs;
use crate::table::{CommitGroup, Table};

/// One part of a commit payload.
#[derive(Clone, Debug)]
pub enum Op {
    /// Insert a full row; its `_version` must be 0 and is stored as 1.
    Insert {
        /// Where.
        table: Table,
        /// The row.
        row: Row,
    },
    /// Update a row read at `old`'s version: columns where `new` differs
    /// from `old` are written, `_version` becomes stored + 1.
    Update {
        /// Where.
        table: Table,
        /// The row as read, with its `_version`.
        old: Row,
        /// The row as the transaction left it (its `_version` is ignored).
        new: Row,
    },
    /// Delete a row read at `old`'s version.
    Delete {
        /// Where.
        table: Table,
        /// The row as read, with its `_version`.
        old: Row,
    },
    /// A row read but not written: its version must still be `version`.
    Read {
        /// Where.
        table: Table,
        /// The row's id.
        id: i64,
        /// The version read.
        version: i32,
    },
}

impl Op {
    fn table(&self) -> &Table {
        match self {
            Op::Insert { table, .. }
            | Op::Update { table, .. }
            | Op::Delete { table, .. }
            | Op::Read { table, .. } => table,
        }
    }

    fn id(&self) -> i64 {
        match self {
            Op::Insert { row, .. } => row.id(),
            Op::Update { old, .. } | Op::Delete { old, .. } => old.id(),
            Op::Read { id, .. } => *id,
        }
    }

    fn writes(&self) -> bool {
        !matches!(self, Op::Read { .. })
    }
}

/// The version after `v`: +1, wrapping past `i32::MAX` to 1 (never 0,
/// which means "not inserted"); versions are compared for equality only.
pub(crate) fn next_version(v: i32) -> i32 {
    if v == i32::MAX {
        1
    } else {
        v + 1
    }
}

/// Positions of the columns where `a` and `b` differ, `_version` excluded.
pub(crate) fn changed_columns(a: &Row, b: &Row) -> Vec<usize> {
    let c = a.component();
    (0..c.properties().len())
        .filter(|&i| c.properties()[i].name != VERSION && a.field_bytes(i) != b.field_bytes(i))
        .collect()
}

impl Ecs {
    /// Checks and applies `ops` atomically (see the module doc). All tables
    /// must share one (instance, cluster); a payload without inserts,
    /// updates or deletes is refused ("no dirty data").
    pub fn commit(&self, ops: &[Op], options: WriteOptions) -> Result<()> {
        self.commit_observed(ops, options, None)
    }

    /// [`Ecs::commit`] for a transaction that saw its group at `observed`
    /// (group, writes) before its first read: when the group has had no
    /// write since, nothing the transaction read can have changed, and the
    /// session's call-time checks (unique values, existence) still hold, so
    /// the commit skips re-reading rows and index entries.
    pub(crate) fn commit_observed(
        &self,
        ops: &[Op],
        options: WriteOptions,
        observed: Option<(&Arc<CommitGroup>, u64)>,
    ) -> Result<()> {
        self.check_open()?;
        let first = ops
            .iter()
            .find(|op| op.writes())
            .ok_or_else(|| {
                Error::invalid("commit: no dirty data (no inserts, updates or deletes)")
            })?
            .table()
            .clone();
        let mut seen = HashSet::with_capacity(ops.len());
        for op in ops {
            if !op.table().same_group(&first) {
                return Err(Error::invalid(format!(
                    "commit: {:?} and {:?} are in different (instance, cluster) groups; one commit \
                     touches one group",
                    first,
                    op.table()
                )));
            }
            if op.table().component().name() != op_component(op) {
                return Err(Error::invalid(
                    "commit: a row does not belong to its table's component",
                ));
            }
            if !seen.insert((op.table().number(), op.id())) {
                return Err(Error::invalid(format!(
                    "commit: row {} of {:?} appears twice in one payload",
                    op.id(),
                    op.table()
                )));
            }
            if let Op::Update { old, new, .. } = op {
                if old.id() != new.id() {
                    return Err(Error::invalid("commit: an update cannot change id"));
                }
            }
        }
        let publish = self.shared.hub.has_subscribers();
        let mut channels = Vec::new();
        let gs = &self.shared.group_sync;
        if options.sync {
            gs.enter();
        }
        let wrote = self.apply_locked(&first, ops, observed, publish.then_some(&mut channels));
        match wrote {
            Ok(true) if options.sync => {
                // The fsync comes after the lock is released, so the commits
                // of a group share fsyncs instead of queueing behind each
                // other's under the lock.
                let ticket = gs.ticket();
                let db = &self.shared.db;
                gs.wait(ticket, || db.sync_wal())?;
            }
            Ok(wrote) => {
                if options.sync {
                    gs.leave();
                }
                if !wrote {
                    return Ok(());
                }
            }
            Err(e) => {
                if options.sync {
                    gs.leave();
                }
                return Err(e);
            }
        }
        if publish {
            channels.sort();
            channels.dedup();
            self.shared.hub.publish(&channels);
        }
        Ok(())
    }

    /// Under `first`'s commit lock: the checks (skipped when the group is
    /// `observed` unchanged), then the batch, applied unsynced (visible to
    /// the next commit's checks). Returns whether anything was written.
    fn apply_locked(
        &self,
        first: &Table,
        ops: &[Op],
        observed: Option<(&Arc<CommitGroup>, u64)>,
        channels: Option<&mut Vec<String>>,
    ) -> Result<bool> {
        let lock = first.commit_lock();
        let unchanged = observed.is_some_and(|(group, writes)| {
            Arc::ptr_eq(group, first.group()) && lock.writes_before() == writes
        });
        let batch = self.check_and_build(ops, unchanged, channels)?;
        if batch.is_empty() {
            return Ok(false);
        }
        self.shared.db.write(batch, WriteOptions::default())?;
        Ok(true)
    }

    /// Phase 1 (all checks) and the batch of phase 2. Runs under the commit lock.
    fn check_and_build(
        &self,
        ops: &[Op],
        unchanged: bool,
        mut channels: Option<&mut Vec<String>>,
    ) -> Result<WriteBatch> {
        let db = &self.shared.db;
        let deleted: HashSet<(&str, i64)> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Delete { table, old } => Some((table.component().name(), old.id())),
                _ => None,
            })
            .collect();
        // Unique values claimed by this commit: (component, position, bytes).
        let mut claimed: HashMap<(String, usize, Vec<u8>), i64> = HashMap::new();
        // Stored rows of updates and deletes, read once by the checks.
        let mut stored: Vec<Option<Row>> = Vec::with_capacity(ops.len());
        for op in ops {
            let table = op.table();
            let c = table.component();
            if unchanged {
                // Nothing was written to the group since the transaction's
                // first read: every stored row is the one it read.
                stored.push(match op {
                    Op::Update { old, .. } | Op::Delete { old, .. } => Some(old.clone()),
                    _ => None,
                });
                continue;
            }
            let stored_row = match op {
                Op::Insert { row, .. } => {
                    if row.version() != 0 {
                        return Err(Error::invalid(format!(
                            "insert into {table:?}: row {} has _version {}, inserts carry 0",
                            row.id(),
                            row.version()
                        )));
                    }
                    if db.get(table.row_key(row.id()))?.is_some() {
                        return Err(Error::race(
                            RaceKind::Exists,
                            format!("{table:?} row {}", row.id()),
                        ));
                    }
                    let unique: Vec<usize> = c
                        .indexed()
                        .iter()
                        .copied()
                        .filter(|&i| c.properties()[i].unique && c.properties()[i].name != ID)
                        .collect();
                    self.check_unique(table, row, &unique, &deleted, &mut claimed)?;
                    None
                }
                Op::Update { old, new, .. } => {
                    let s = self.check_version(table, old.id(), old.version())?;
                    let changed: Vec<usize> = changed_columns(old, new)
                        .into_iter()
                        .filter(|&i| c.properties()[i].unique)
                        .collect();
                    self.check_unique(table, new, &changed, &deleted, &mut claimed)?;
                    Some(s)
                }
                Op::Delete { old, .. } => {
                    Some(self.check_version(table, old.id(), old.version())?)
                }
                Op::Read { id, version, .. } => {
                    self.check_version(table, *id, *version)?;
                    None
                }
            };
            stored.push(stored_row);
        }

        let mut batch = WriteBatch::new();
        for (op, stored_row) in ops.iter().zip(&stored) {
            let table = op.table();
            let c = table.component();
            match op {
                Op::Insert { row, .. } => {
                    let mut row = row.clone();
                    row.set_version(1);
                    batch.put(table.row_key(row.id()), row.as_bytes());
                    for &i in c.indexed() {
                        if let Some(k) = table.index_key_of(&row, i)? {
                            batch.put(k, b"");
                        }
                    }
                    if let Some(ch) = channels.as_deref_mut() {
                        ch.push(table.row_channel(row.id()));
                        ch.extend(
                            c.indexed()
                                .iter()
                                .map(|&i| table.index_channel(&c.properties()[i].name)),
                        );
                    }
                }
                Op::Update { old, new, .. } => {
                    let s = stored_row.as_ref().expect("updates keep their stored row");
                    let changed = changed_columns(old, new);
                    if changed.is_empty() {
                        // Validated like a read; nothing to write.
                        continue;
                    }
                    let mut row = s.clone();
                    for &i in &changed {
                        row.copy_field(i, new);
                    }
                    row.set_version(next_version(s.version()));
                    batch.put(table.row_key(row.id()), row.as_bytes());
                    for &i in &changed {
                        if let (Some(before), Some(after)) =
                            (table.index_key_of(s, i)?, table.index_key_of(&row, i)?)
                        {
                            batch.delete(before);
                            batch.put(after, b"");
                        }
                    }
                    if let Some(ch) = channels.as_deref_mut() {
                        ch.push(table.row_channel(row.id()));
                        ch.extend(
                            changed
                                .iter()
                                .filter(|&&i| c.properties()[i].index)
                                .map(|&i| table.index_channel(&c.properties()[i].name)),
                        );
                    }
                }
                Op::Delete { old, .. } => {
                    let s = stored_row.as_ref().expect("deletes keep their stored row");
                    batch.delete(table.row_key(old.id()));
                    for &i in c.indexed() {
                        if let Some(k) = table.index_key_of(s, i)? {
                            batch.delete(k);
                        }
                    }
                    if let Some(ch) = channels.as_deref_mut() {
                        ch.push(table.row_channel(old.id()));
                        ch.extend(
                            c.indexed()
                                .iter()
                                .map(|&i| table.index_channel(&c.properties()[i].name)),
                        );
                    }
                }
                Op::Read { .. } => {}
            }
        }
        Ok(batch)
    }

    /// The stored row `id`, if its version is `expected`; a race otherwise.
    fn check_version(&self, table: &Table, id: i64, expected: i32) -> Result<Row> {
        match self.shared.db.get(table.row_key(id))? {
            Some(bytes) => {
                let row = table.decode(id, &bytes)?;
                if row.version() == expected {
                    Ok(row)
                } else {
                    Err(Error::race(
                        RaceKind::Version,
                        format!("{table:?} row {id} exp:{expected} got:{}", row.version()),
                    ))
                }
            }
            None => Err(Error::race(
                RaceKind::Version,
                format!("{table:?} row {id} exp:{expected} got: none (row is gone)"),
            )),
        }
    }

    /// Races unless each unique column at `positions` of `row` is free in
    /// the stored table (rows this commit deletes excepted) and not claimed
    /// by another row of this commit.
    fn check_unique(
        &self,
        table: &Table,
        row: &Row,
        positions: &[usize],
        deleted: &HashSet<(&str, i64)>,
        claimed: &mut HashMap<(String, usize, Vec<u8>), i64>,
    ) -> Result<()> {
        let c = table.component();
        for &i in positions {
            let Some(ix) = table.index_prefix(i) else {
                continue;
            };
            let v = table.sortable_of(row, i)?;
            let name = &c.properties()[i].name;
            let taken = |holder: i64| {
                Error::race(
                    RaceKind::Unique,
                    format!("{table:?} column {name:?} value {} is taken by row {holder} (row {} wanted it)",
                        row.value_at(i).map(|v| v.to_string()).unwrap_or_default(), row.id()),
                )
            };
            if let Some(&holder) = claimed.get(&(c.name().to_string(), i, v.clone())) {
                if holder != row.id() {
                    return Err(taken(holder));
                }
            }
            let start = keys::value_start(ix, &v);
            let end = keys::value_end(ix, &v);
            let snapshot = self.shared.db.snapshot();
            for item in self
                .shared
                .db
                .scan(start.as_slice()..end.as_slice(), &snapshot)
            {
                let (key, _) = item?;
                let holder = keys::id_from_key(&key)?;
                if holder != row.id() && !deleted.contains(&(c.name(), holder)) {
                    return Err(taken(holder));
                }
            }
            claimed.insert((c.name().to_string(), i, v), row.id());
        }
        Ok(())
    }
}

fn op_component(op: &Op) -> &str {
    match op {
        Op::Insert { row, .. } | Op::Update { old: row, .. } | Op::Delete { old: row, .. } => {
            row.component().name()
        }
        Op::Read { table, .. } => table.component().name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_wrap_to_one() {
        assert_eq!(next_version(1), 2);
        assert_eq!(next_version(i32::MAX), 1);
    }
}
