//! Range deletes on the read path: every range tombstone a reader must
//! weigh, gathered from the memtables and the tables that hold any.
//!
//! A point lookup or a scan first finds the newest version of a key its
//! snapshot sees, as without range deletes; the version is then deleted if
//! a tombstone newer than it (and seen by the snapshot) covers the key,
//! wherever that tombstone sits in the tree. Tables name their tombstone
//! count in the manifest, so a tree without range tombstones costs one
//! atomic load per read and opens nothing.

use std::sync::Arc;

use jkv_format::{RangeTombstoneSet, Result, SeqNo};

use crate::db::DbInner;
use crate::version::SuperVersion;

/// The range tombstones of one `SuperVersion`, one set per source.
#[derive(Debug, Default)]
pub(crate) struct RangeDelView {
    sets: Vec<Arc<RangeTombstoneSet>>,
}

impl RangeDelView {
    /// Whether the version of `key` written at `seq` is deleted for a
    /// reader at `snapshot`.
    pub fn deletes(&self, key: &[u8], seq: SeqNo, snapshot: SeqNo) -> bool {
        self.sets.iter().any(|s| s.deletes(key, seq, snapshot))
    }
}

impl SuperVersion {
    /// Whether any memtable or table of this view holds a range tombstone.
    #[inline]
    pub fn may_have_range_tombstones(&self) -> bool {
        self.mem.range_tombstone_count() > 0
            || self.imms.iter().any(|f| f.mem.range_tombstone_count() > 0)
            || !self.version.range_del_tables.is_empty()
    }
}

impl DbInner {
    /// The range tombstones `sv` holds (opening the tables that have any).
    pub(crate) fn range_del_view(&self, sv: &SuperVersion) -> Result<RangeDelView> {
        let mut sets = Vec::new();
        sets.extend(sv.mem.range_tombstones());
        sets.extend(sv.imms.iter().filter_map(|f| f.mem.range_tombstones()));
        for handle in &sv.version.range_del_tables {
            let table = self.open_table(handle)?;
            sets.extend(table.range_tombstones().cloned());
        }
        Ok(RangeDelView { sets })
    }
}
