//! [`Ecs`]: the handle a game server holds. It owns (or shares) one
//! `jkv::Db`, hands out [`Table`]s, and serves reads: get by id, get by a
//! unique value, and ranges on indexed columns, each read from one engine
//! snapshot so a range returns every row it matched.
//!
//! Threads: `Ecs` is `Send + Sync` and cheap to clone. Reads take no lock;
//! commits take their (instance, cluster)'s commit lock (commit.rs).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use jkv::{Db, Options, Snapshot, WriteBatch, WriteOptions};
use parking_lot::{Mutex, ReentrantMutex};

use crate::error::{Error, Result};
use crate::group_sync::GroupSync;
use crate::keys;
use crate::maint::TableStatus;
use crate::notify::{Hub, MqClient};
use crate::range::{normalize, Normalized, Range};
use crate::row::{Row, Rows};
use crate::schema::{Component, ID};
use crate::table::{CommitGroup, Table};
use crate::value::{cast, CastMode, Value};
use crate::worker_id::Snowflake;

/// ECS record tables on one jkv database.
#[derive(Clone)]
pub struct Ecs {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) db: Arc<Db>,
    /// Close the database when the ECS handle is closed.
    owns_db: bool,
    pub(crate) hub: Arc<Hub>,
    /// (instance, cluster) -> its commit lock.
    commit_locks: Mutex<HashMap<(String, u32), Arc<CommitGroup>>>,
    /// The global maintenance lock (the contract's `get_lock`); reentrant so
    /// an operation can take it inside a caller's explicit hold.
    pub(crate) maintenance: ReentrantMutex<()>,
    pub(crate) ids: Mutex<Snowflake>,
    /// (instance, component, cluster) -> table number, as read or handed out.
    numbers: Mutex<HashMap<(String, String, u32), u32>>,
    /// Serializes handing out table numbers.
    allocation: Mutex<()>,
    /// Shares fsyncs between synced commits.
    pub(crate) group_sync: GroupSync,
    closed: AtomicBool,
}

impl Ecs {
    /// Opens (or creates) the database at `path` and serves tables on it.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Ecs> {
        let db = Db::open(path, options)?;
        Ok(Self::build(Arc::new(db), true))
    }

    /// Serves tables on an open database shared with other users; closing
    /// the ECS handle leaves the database open.
    pub fn new(db: Arc<Db>) -> Ecs {
        Self::build(db, false)
    }

    fn build(db: Arc<Db>, owns_db: bool) -> Ecs {
        Ecs {
            shared: Arc::new(Shared {
                db,
                owns_db,
                hub: Arc::new(Hub::default()),
                commit_locks: Mutex::new(HashMap::new()),
                maintenance: ReentrantMutex::new(()),
                ids: Mutex::new(Snowflake::new(0)),
                numbers: Mutex::new(HashMap::new()),
                allocation: Mutex::new(()),
                group_sync: GroupSync::default(),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The database underneath.
    pub fn db(&self) -> &Db {
        &self.shared.db
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.shared.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Closes the handle (and the database, if [`Ecs::open`] opened it).
    /// A second close is a no-op; every other call afterwards, on this
    /// handle, its clones and its MQ clients, fails with [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.shared.hub.closed.store(true, Ordering::Release);
        if self.shared.owns_db {
            self.shared.db.close()?;
        }
        Ok(())
    }

    /// The table of `component` in `instance`, cluster `cluster`, checked
    /// against its meta record: created (meta written) when missing; an
    /// error when the stored schema or cluster differs (run
    /// [`crate::Maintenance`]'s migrations first).
    pub fn table(&self, component: &Arc<Component>, instance: &str, cluster: u32) -> Result<Table> {
        self.check_open()?;
        let table = self.table_unchecked(component, instance, cluster)?;
        let maint = self.maintenance();
        let _m = maint.lock();
        match maint.check_table(&table)? {
            (TableStatus::Ok, _) => {}
            (TableStatus::NotExists, _) => maint.create_table(&table)?,
            (status, meta) => {
                return Err(Error::invalid(format!(
                    "table {table:?} is stored with {}; the component has schema {}: status {status:?} \
                     (migrate it with Maintenance::migrate_cluster / migrate_schema)",
                    meta.map(|m| format!("schema {} in cluster {}", m.version, m.cluster_id)).unwrap_or_default(),
                    component.version()
                )))
            }
        }
        Ok(table)
    }

    /// The table without checking or creating its meta record.
    pub(crate) fn table_unchecked(
        &self,
        component: &Arc<Component>,
        instance: &str,
        cluster: u32,
    ) -> Result<Table> {
        if instance.is_empty() || instance.len() > crate::schema::NAME_LEN_MAX {
            return Err(Error::invalid(format!(
                "instance name {instance:?} must be 1..={} bytes",
                crate::schema::NAME_LEN_MAX
            )));
        }
        let number = self.table_number(instance, component.name(), cluster)?;
        let lock = self
            .shared
            .commit_locks
            .lock()
            .entry((instance.to_string(), cluster))
            .or_default()
            .clone();
        Table::new(component, instance, cluster, number, lock)
    }

    /// The number of table (instance, component, cluster): read from its
    /// name record, or handed out from the counter the first time (one
    /// synced write of both, so a number is never handed out twice).
    fn table_number(&self, instance: &str, component: &str, cluster: u32) -> Result<u32> {
        let address = (instance.to_string(), component.to_string(), cluster);
        if let Some(&n) = self.shared.numbers.lock().get(&address) {
            return Ok(n);
        }
        let _alloc = self.shared.allocation.lock();
        let db = &self.shared.db;
        let name = keys::name_key(instance, component, cluster);
        let number = match db.get(&name)? {
            Some(bytes) => decode_number(&name, &bytes)?,
            None => {
                let counter = keys::counter_key();
                let next = match db.get(&counter)? {
                    Some(bytes) => decode_number(&counter, &bytes)?,
                    None => 1,
                };
                let after = next
                    .checked_add(1)
                    .ok_or_else(|| Error::invalid("every table number (2^32) is used"))?;
                let mut batch = WriteBatch::new();
                batch.put(&counter, after.to_le_bytes());
                batch.put(&name, next.to_le_bytes());
                db.write(batch, WriteOptions::SYNC)?;
                next
            }
        };
        self.shared.numbers.lock().insert(address, number);
        Ok(number)
    }

    /// A snapshot for reads that must agree with each other.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.db.snapshot()
    }

    /// A new MQ client (a subscriber connection).
    pub fn mq(&self) -> Result<MqClient> {
        self.check_open()?;
        Ok(MqClient::new(self.shared.hub.clone()))
    }

    /// A new snowflake id from this handle's generator (worker id 0 unless
    /// [`Ecs::set_worker_id`] was called).
    pub fn next_id(&self) -> Result<i64> {
        self.shared.ids.lock().next_id()
    }

    /// Makes [`Ecs::next_id`] generate ids for `worker_id` (from a
    /// [`crate::WorkerKeeper`]), no earlier than `last_timestamp_ms`.
    pub fn set_worker_id(&self, worker_id: u16, last_timestamp_ms: i64) -> Result<()> {
        *self.shared.ids.lock() = Snowflake::with_last_timestamp(worker_id, last_timestamp_ms)?;
        Ok(())
    }

    /// A new row of `component`: every column at its default, `id` a new
    /// snowflake id from [`Ecs::next_id`], `_version` 0 (hetu's `new_row`).
    pub fn new_row(&self, component: &Arc<Component>) -> Result<Row> {
        let mut row = Row::new(component);
        row.set_id(self.next_id()?);
        Ok(row)
    }

    /// Row `id`, or `None`.
    pub fn get(&self, table: &Table, id: i64) -> Result<Option<Row>> {
        self.check_open()?;
        match self.shared.db.get(table.row_key(id))? {
            Some(bytes) => Ok(Some(table.decode(id, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Row `id` as of `snapshot`, or `None`.
    pub fn get_at(&self, table: &Table, id: i64, snapshot: &Snapshot) -> Result<Option<Row>> {
        self.check_open()?;
        match self.shared.db.get_at(table.row_key(id), snapshot)? {
            Some(bytes) => Ok(Some(table.decode(id, &bytes)?)),
            None => Ok(None),
        }
    }

    /// The first row (in id order) whose indexed `column` equals `value`
    /// (by id when `column` is `id`), or `None`.
    pub fn get_by(
        &self,
        table: &Table,
        column: &str,
        value: impl Into<Value>,
    ) -> Result<Option<Row>> {
        let value = value.into();
        if column == ID {
            let p = table.component().property(ID)?;
            let id = cast(&value, p.dtype, CastMode::Assign, ID)?;
            return self.get(table, id.as_i64().expect("id casts to int64"));
        }
        let range = Range::eq(column, literal(value)).limit(1);
        Ok(self.range(table, &range)?.into_iter().next())
    }

    /// Rows matched by `range`, in index order (the contract's STRUCT format).
    /// No match is an empty vector.
    pub fn range(&self, table: &Table, range: &Range) -> Result<Vec<Row>> {
        let snapshot = self.snapshot();
        let mut rows = Vec::new();
        self.range_each(table, range, &snapshot, &mut |id, bytes| {
            rows.push(table.decode(id, bytes)?);
            Ok(())
        })?;
        Ok(rows)
    }

    /// Rows matched by `range` as one contiguous buffer in numpy's layout.
    pub fn range_rows(&self, table: &Table, range: &Range) -> Result<Rows> {
        let snapshot = self.snapshot();
        let mut rows = Rows::new(table.component());
        self.range_each(table, range, &snapshot, &mut |id, bytes| {
            table.check_row_size(id, bytes)?;
            rows.push_bytes(bytes);
            Ok(())
        })?;
        Ok(rows)
    }

    /// Ids of the rows matched by `range` (the contract's ID_LIST format).
    pub fn range_ids(&self, table: &Table, range: &Range) -> Result<Vec<i64>> {
        let snapshot = self.snapshot();
        self.range_ids_at(table, range, &snapshot)
    }

    /// Like [`Ecs::range_ids`], as of `snapshot`.
    pub fn range_ids_at(
        &self,
        table: &Table,
        range: &Range,
        snapshot: &Snapshot,
    ) -> Result<Vec<i64>> {
        self.check_open()?;
        let mut ids = Vec::new();
        let Some(bounds) = key_bounds(table, range)? else {
            return Ok(ids);
        };
        for item in bounds
            .scan(&self.shared.db, range.desc, snapshot)
            .take(range.max_rows())
        {
            let (key, _) = item?;
            ids.push(keys::id_from_key(&key)?);
        }
        Ok(ids)
    }

    /// Calls `f(id, row bytes)` for every row `range` matches at
    /// `snapshot`, in result order.
    pub(crate) fn range_each(
        &self,
        table: &Table,
        range: &Range,
        snapshot: &Snapshot,
        f: &mut dyn FnMut(i64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        self.check_open()?;
        let Some(bounds) = key_bounds(table, range)? else {
            return Ok(());
        };
        let db = &self.shared.db;
        for item in bounds.scan(db, range.desc, snapshot).take(range.max_rows()) {
            let (key, value) = item?;
            let id = keys::id_from_key(&key)?;
            if bounds.row_keys {
                f(id, &value)?;
            } else {
                let bytes = db.get_at(table.row_key(id), snapshot)?.ok_or_else(|| {
                    Error::corruption(
                        &key,
                        format!("index entry of {table:?} names row {id}, which does not exist"),
                    )
                })?;
                f(id, &bytes)?;
            }
        }
        Ok(())
    }

    /// Writes `fields` of row `id` in place: no transaction, no version
    /// bump, no type check beyond the column's cast (the contract's
    /// `direct_set`). Only volatile components; indexed columns, `id` and
    /// unknown columns are refused; a missing row is [`Error::NotFound`]
    /// and nothing is written. Publishes the row channel.
    pub fn direct_set(
        &self,
        table: &Table,
        id: i64,
        fields: &[(&str, Value)],
        options: WriteOptions,
    ) -> Result<()> {
        self.check_open()?;
        let c = table.component();
        if !c.is_volatile() {
            return Err(Error::invalid(format!(
                "direct_set on {table:?}: only volatile components accept direct_set"
            )));
        }
        let _commit = table.commit_lock();
        let mut row = self.get(table, id)?.ok_or_else(|| {
            Error::NotFound(format!("direct_set on {table:?}: row {id} does not exist"))
        })?;
        for (name, value) in fields {
            let p = c.property(name)?;
            if p.name == ID || p.name == crate::schema::VERSION {
                return Err(Error::invalid(format!("direct_set cannot write {name:?}")));
            }
            if p.index {
                return Err(Error::invalid(format!(
                    "direct_set cannot write indexed column {name:?} (its index would go stale)"
                )));
            }
            let v = cast(value, p.dtype, CastMode::Assign, name)?;
            row.write_at(c.position(name).expect("checked above"), &v);
        }
        let mut batch = WriteBatch::new();
        batch.put(table.row_key(id), row.as_bytes());
        self.shared.db.write(batch, options)?;
        if self.shared.hub.has_subscribers() {
            self.shared.hub.publish(&[table.row_channel(id)]);
        }
        Ok(())
    }
}

/// Engine key bounds of a range: `start ..= end`, over row keys (a range
/// on `id`) or index entries.
struct KeyBounds {
    start: Vec<u8>,
    end: Vec<u8>,
    row_keys: bool,
}

impl KeyBounds {
    fn scan(&self, db: &Db, desc: bool, snapshot: &Snapshot) -> jkv::DbIterator {
        let r = self.start.as_slice()..=self.end.as_slice();
        if desc {
            db.scan_rev(r, snapshot)
        } else {
            db.scan(r, snapshot)
        }
    }
}

/// Normalizes `range` and turns it into engine bounds; `None` when nothing
/// can match (limit 0, or an empty id interval).
fn key_bounds(table: &Table, range: &Range) -> Result<Option<KeyBounds>> {
    let (pos, normalized) = normalize(table.component(), range)?;
    if range.max_rows() == 0 {
        return Ok(None);
    }
    Ok(match normalized {
        Normalized::Empty => None,
        Normalized::Ids { lo, hi } => Some(KeyBounds {
            start: table.row_key(lo),
            end: table.row_key(hi),
            row_keys: true,
        }),
        Normalized::Index { lo, hi } => {
            let ix = table
                .index_prefix(pos)
                .expect("normalized ranges are on indexed columns");
            Some(KeyBounds {
                start: [ix, lo.as_slice()].concat(),
                end: [ix, hi.as_slice()].concat(),
                row_keys: false,
            })
        }
    })
}

/// A value used as an equality bound: a string starting with a marker
/// character is protected with `[` so it is searched literally.
pub(crate) fn literal(value: Value) -> Value {
    match value {
        Value::Str(s) if s.starts_with('(') || s.starts_with('[') => Value::Str(format!("[{s}")),
        Value::Bytes(b) if matches!(b.first(), Some(b'(') | Some(b'[')) => {
            Value::Bytes([b"[".as_slice(), &b].concat())
        }
        v => v,
    }
}

/// A stored table number (u32 little-endian).
fn decode_number(key: &[u8], bytes: &[u8]) -> Result<u32> {
    let raw: [u8; 4] = bytes.try_into().map_err(|_| {
        Error::corruption(
            key,
            format!("a table number is 4 bytes, found {}", bytes.len()),
        )
    })?;
    Ok(u32::from_le_bytes(raw))
}
