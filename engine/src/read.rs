//! Point lookups: memtable, frozen memtables (newest first), L0 tables
//! (newest first), then at most one table per deeper level. The first
//! version visible at the snapshot decides; a tombstone means "not found".

use bytes::Bytes;

use jkv_format::{Error, Result, SeqNo, ValueKind};

use crate::db::DbInner;

impl DbInner {
    pub(crate) fn get(&self, key: &[u8], snapshot: SeqNo) -> Result<Option<Bytes>> {
        let sv = self.super_version();
        self.counters
            .gets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some((kind, _, value)) = sv.mem.get(key, snapshot) {
            return visible(kind, value);
        }
        for frozen in &sv.imms {
            if let Some((kind, _, value)) = frozen.mem.get(key, snapshot) {
                return visible(kind, value);
            }
        }
        for level in 0..sv.version.levels.len() {
            for meta in sv.version.tables_for_key(level, key) {
                let table = self.table_cache.get(jkv_format::FileNumber(meta.id))?;
                if let Some((kind, _, value)) = table.get(key, snapshot)? {
                    return visible(kind, value);
                }
            }
        }
        Ok(None)
    }
}

/// The value a found entry stands for.
pub(crate) fn visible(kind: ValueKind, value: Bytes) -> Result<Option<Bytes>> {
    match kind {
        ValueKind::Value => Ok(Some(value)),
        ValueKind::Deletion => Ok(None),
        ValueKind::ValuePointer => Err(Error::InvalidArgument(
            "entry holds a value-log pointer, which this version of jkv cannot resolve".into(),
        )),
    }
}
