//! [`Table`]: the address of one table (component, instance, cluster) with
//! its key prefixes precomputed, and the commit lock it shares with every
//! table of the same (instance, cluster).

use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::keys;
use crate::row::Row;
use crate::schema::Component;
use crate::sortable;

/// One table: a component's rows in one instance and cluster. Cheap to clone.
#[derive(Clone)]
pub struct Table(Arc<TableInner>);

struct TableInner {
    component: Arc<Component>,
    instance: String,
    cluster: u32,
    /// The table's number (keys.rs): rows and index entries live under it.
    number: u32,
    prefix: Vec<u8>,
    /// Index prefix per column position (`None` for unindexed columns and `id`).
    index_prefixes: Vec<Option<Vec<u8>>>,
    /// Serializes commits of one (instance, cluster), as Redis serializes
    /// them per hash slot. Shared by all tables of that pair.
    group: Arc<CommitGroup>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{{CLU{}}}",
            self.0.instance,
            self.0.component.name(),
            self.0.cluster
        )
    }
}

impl Table {
    pub(crate) fn new(
        component: &Arc<Component>,
        instance: &str,
        cluster: u32,
        number: u32,
        group: Arc<CommitGroup>,
    ) -> Result<Table> {
        let prefix = keys::table_prefix(number);
        let index_prefixes = component
            .properties()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let position = u8::try_from(i).expect("components have at most 256 columns");
                (p.index && p.name != crate::schema::ID)
                    .then(|| keys::index_prefix(&prefix, position))
            })
            .collect();
        Ok(Table(Arc::new(TableInner {
            component: component.clone(),
            instance: instance.to_string(),
            cluster,
            number,
            prefix,
            index_prefixes,
            group,
        })))
    }

    /// The component.
    pub fn component(&self) -> &Arc<Component> {
        &self.0.component
    }

    /// The instance name.
    pub fn instance(&self) -> &str {
        &self.0.instance
    }

    /// The cluster id.
    pub fn cluster(&self) -> u32 {
        self.0.cluster
    }

    /// The table's number (docs/ecs.md, "Key layout").
    pub fn number(&self) -> u32 {
        self.0.number
    }

    /// Prefix of every key of this table.
    pub(crate) fn prefix(&self) -> &[u8] {
        &self.0.prefix
    }

    /// Takes the commit lock of this table's (instance, cluster).
    pub(crate) fn commit_lock(&self) -> GroupGuard<'_> {
        self.0.group.lock()
    }

    pub(crate) fn group(&self) -> &Arc<CommitGroup> {
        &self.0.group
    }

    /// True when `other` is in the same (instance, cluster), so one commit
    /// may touch both.
    pub(crate) fn same_group(&self, other: &Table) -> bool {
        Arc::ptr_eq(&self.0.group, &other.0.group)
    }

    /// Key of row `id`.
    pub(crate) fn row_key(&self, id: i64) -> Vec<u8> {
        keys::row_key(&self.0.prefix, id)
    }

    /// Prefix of the index on the column at `position` (`None` when the
    /// column has no index entries: unindexed, or `id`, whose index is the
    /// row keys themselves).
    pub(crate) fn index_prefix(&self, position: usize) -> Option<&[u8]> {
        self.0.index_prefixes[position].as_deref()
    }

    /// Sortable bytes of `row`'s column at `position`.
    pub(crate) fn sortable_of(&self, row: &Row, position: usize) -> Result<Vec<u8>> {
        let p = &self.0.component.properties()[position];
        sortable::encode(p.dtype, &row.value_at(position)?).map_err(|e| match e {
            Error::InvalidArgument(what) => {
                Error::invalid(format!("{:?} row {}: {what}", self, row.id()))
            }
            other => other,
        })
    }

    /// Index entry key of `row`'s column at `position`.
    pub(crate) fn index_key_of(&self, row: &Row, position: usize) -> Result<Option<Vec<u8>>> {
        match self.index_prefix(position) {
            Some(ix) => Ok(Some(keys::index_key(
                ix,
                &self.sortable_of(row, position)?,
                row.id(),
            ))),
            None => Ok(None),
        }
    }

    /// Channel of row `id`.
    pub fn row_channel(&self, id: i64) -> String {
        keys::row_channel(
            &self.0.instance,
            self.0.component.name(),
            self.0.cluster,
            id,
        )
    }

    /// Channel of the index on `column`.
    pub fn index_channel(&self, column: &str) -> String {
        keys::index_channel(
            &self.0.instance,
            self.0.component.name(),
            self.0.cluster,
            column,
        )
    }

    /// Decodes the stored bytes of row `id`, with a clear error when their
    /// size is not this component's row size (a table written with another
    /// schema).
    pub(crate) fn decode(&self, id: i64, bytes: &[u8]) -> Result<Row> {
        self.check_row_size(id, bytes)?;
        Row::from_bytes(&self.0.component, bytes.to_vec())
    }

    /// The error of [`Table::decode`] for bytes that are not one row of
    /// this component, without copying them into a row.
    pub(crate) fn check_row_size(&self, id: i64, bytes: &[u8]) -> Result<()> {
        if bytes.len() != self.0.component.row_size() {
            return Err(Error::invalid(format!(
                "{self:?} row {id} is stored as {} bytes but schema {} has {}-byte rows: \
                 the table was written with another schema (check_table, then migrate)",
                bytes.len(),
                self.0.component.version(),
                self.0.component.row_size()
            )));
        }
        Ok(())
    }
}

/// The writers of one (instance, cluster): commits, `direct_set`s and
/// maintenance, serialized by one lock. `writes` counts the lock's holds
/// (each release adds one, whether or not it wrote), so a transaction that
/// finds the count unchanged between its first read and its commit knows
/// that nothing it read can have changed.
#[derive(Default)]
pub(crate) struct CommitGroup {
    lock: Mutex<()>,
    writes: AtomicU64,
}

impl CommitGroup {
    /// Waits for the lock.
    pub(crate) fn lock(&self) -> GroupGuard<'_> {
        GroupGuard {
            group: self,
            _held: self.lock.lock(),
        }
    }

    /// Holds of the lock released so far.
    pub(crate) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
    }
}

/// A held commit lock; releasing it counts one more write of its group.
pub(crate) struct GroupGuard<'a> {
    group: &'a CommitGroup,
    _held: MutexGuard<'a, ()>,
}

impl GroupGuard<'_> {
    /// Writes released before this hold (stable while it is held).
    pub(crate) fn writes_before(&self) -> u64 {
        self.group.writes.load(Ordering::Acquire)
    }
}

impl Drop for GroupGuard<'_> {
    fn drop(&mut self) {
        // Counted before the mutex is released (fields drop after this).
        self.group.writes.fetch_add(1, Ordering::AcqRel);
    }
}
