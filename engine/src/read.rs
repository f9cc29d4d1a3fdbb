//! Point lookups: memtable, frozen memtables (newest first), L0 tables
//! (newest first), then at most one table per deeper level. The first
//! version visible at the snapshot decides; a tombstone means "not found";
//! a value pointer is resolved in the value log. A version found is then
//! weighed against the range tombstones (`range_del.rs`).

use bytes::Bytes;

use std::sync::Arc;

use jkv_format::{Error, Result, SeqNo, ValueKind};
use jkv_manifest::TableMeta;
use jkv_sstable::Table;

use crate::db::DbInner;
use crate::view::SuperVersion;

impl DbInner {
    pub(crate) fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Bytes>> {
        let sv = self.super_version();
        self.get_in(&sv, key, snapshot)
    }

    /// The newest value of `key`. The super version is taken before the
    /// sequence number is read: if it predates a value-log file's
    /// retirement it still holds that file, and if not, the sequence number
    /// read after it already covers the collection's rewrites — either way
    /// no pointer read here leads into a deleted file.
    pub(crate) fn get_latest(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let sv = self.super_version();
        let seq = self.view().visible_seq();
        self.get_in(&sv, key, seq)
    }

    fn get_in(&self, sv: &SuperVersion, key: &[u8], snapshot: SeqNo) -> Result<Option<Bytes>> {
        self.counters()
            .gets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match lookup(self, sv, key, snapshot)? {
            Some((kind, value)) => self.visible(key, kind, value),
            None => Ok(None),
        }
    }

    /// The newest entry of `key` at `snapshot` as stored: its kind and raw
    /// value (a value pointer is not resolved).
    pub(crate) fn lookup_raw(
        &self,
        key: &[u8],
        snapshot: SeqNo,
    ) -> Result<Option<(ValueKind, Bytes)>> {
        let sv = self.super_version();
        lookup(self, &sv, key, snapshot)
    }

    /// The value a found entry stands for: `None` for a tombstone, the value
    /// log's bytes for a pointer.
    pub(crate) fn visible(
        &self,
        key: &[u8],
        kind: ValueKind,
        value: Bytes,
    ) -> Result<Option<Bytes>> {
        match kind {
            ValueKind::Value => Ok(Some(value)),
            ValueKind::Deletion | ValueKind::RangeDeletion => Ok(None),
            ValueKind::ValuePointer => self.resolve_pointer(key, &value).map(Some),
        }
    }
}

impl DbInner {
    /// The table the manifest entry `meta` names, checked against it: a
    /// file of the same name but other contents (from another database, or
    /// a restored backup) is corruption, not data.
    pub(crate) fn open_table(&self, meta: &TableMeta) -> Result<Arc<Table>> {
        let table = self.table_cache().get(meta.id)?;
        let props = table.properties();
        if props.db_id != 0 && self.db_id() != 0 && props.db_id != self.db_id() {
            return Err(Error::corruption(
                table.path(),
                0,
                format!(
                    "the table belongs to database {:#x}, not to this one ({:#x})",
                    props.db_id,
                    self.db_id()
                ),
            ));
        }
        if table.file_size() != meta.size_bytes
            || props.entry_count != meta.entries
            || props.range_deletion_count != meta.range_deletions
            || props.smallest != meta.smallest
            || props.largest != meta.largest
        {
            return Err(Error::corruption(
                table.path(),
                0,
                format!(
                    "table does not match the manifest: {} bytes and {} entries, expected {} bytes and {} entries with the recorded key range",
                    table.file_size(),
                    props.entry_count,
                    meta.size_bytes,
                    meta.entries
                ),
            ));
        }
        Ok(table)
    }
}

/// The newest entry of `key` at `snapshot`; a version a range tombstone
/// deletes is reported as a `Deletion`.
fn lookup(
    db: &DbInner,
    sv: &SuperVersion,
    key: &[u8],
    snapshot: SeqNo,
) -> Result<Option<(ValueKind, Bytes)>> {
    let found = match sv.mem.get(key, snapshot) {
        Some(entry) => Some(entry),
        None => lookup_point_below_active(db, sv, key, snapshot)?,
    };
    range_deleted(db, sv, key, snapshot, found)
}

/// [`lookup`] without the active memtable's point entries: frozen
/// memtables, then tables (range tombstones count from every source).
pub(crate) fn lookup_below_active(
    db: &DbInner,
    sv: &SuperVersion,
    key: &[u8],
    snapshot: SeqNo,
) -> Result<Option<(ValueKind, Bytes)>> {
    let found = lookup_point_below_active(db, sv, key, snapshot)?;
    range_deleted(db, sv, key, snapshot, found)
}

/// `found` as a reader at `snapshot` sees it once range tombstones count.
#[inline(always)]
fn range_deleted(
    db: &DbInner,
    sv: &SuperVersion,
    key: &[u8],
    snapshot: SeqNo,
    found: Option<(ValueKind, SeqNo, Bytes)>,
) -> Result<Option<(ValueKind, Bytes)>> {
    match found {
        Some((kind, seq, value)) => {
            // Without range tombstones (the common case) this is a few
            // loads; the search itself is out of line.
            if kind != ValueKind::Deletion
                && sv.may_have_range_tombstones()
                && db.range_deleted(sv, key, seq, snapshot)?
            {
                return Ok(Some((ValueKind::Deletion, Bytes::new())));
            }
            Ok(Some((kind, value)))
        }
        None => Ok(None),
    }
}

#[inline(always)]
fn lookup_point_below_active(
    db: &DbInner,
    sv: &SuperVersion,
    key: &[u8],
    snapshot: SeqNo,
) -> Result<Option<(ValueKind, SeqNo, Bytes)>> {
    for frozen in &sv.imms {
        if let Some(entry) = frozen.mem.get(key, snapshot) {
            return Ok(Some(entry));
        }
    }
    for level in 0..sv.version.levels.len() {
        for meta in sv.version.tables_for_key(level, key) {
            let table = db.open_table(meta)?;
            if let Some(entry) = table.get(key, snapshot)? {
                return Ok(Some(entry));
            }
        }
    }
    Ok(None)
}
