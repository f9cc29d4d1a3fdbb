//! Range deletes on the read path: every range tombstone a reader must
//! weigh, gathered from the memtables and the tables that hold any.
//!
//! A point lookup or a scan first finds the newest version of a key its
//! snapshot sees, as without range deletes; the version is then deleted if
//! a tombstone newer than it (and seen by the snapshot) covers the key,
//! wherever that tombstone sits in the tree. Tables name their tombstone
//! count in the manifest, so a tree without range tombstones costs a few
//! loads per read and opens nothing; the tables' tombstones are read once
//! per `Version` and kept with it.

use std::sync::Arc;

use jkv_format::{RangeTombstoneSet, Result, SeqNo};

use crate::db::DbInner;
use crate::version::Version;
use crate::view::SuperVersion;

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
    /// The range tombstones of `version`'s tables, read once per version
    /// (a reader that races another may read them twice; one copy stays).
    /// An error is not kept: the next reader tries again.
    fn table_range_dels<'a>(&self, version: &'a Version) -> Result<&'a [Arc<RangeTombstoneSet>]> {
        if let Some(sets) = version.range_del_sets.get() {
            return Ok(sets);
        }
        let mut sets = Vec::with_capacity(version.range_del_tables.len());
        for handle in &version.range_del_tables {
            let table = self.open_table(handle)?;
            sets.extend(table.range_tombstones().cloned());
        }
        let _ = version.range_del_sets.set(sets);
        Ok(version
            .range_del_sets
            .get()
            .expect("set just now, by this reader or a racing one"))
    }

    /// Whether a range tombstone of `sv` deletes the version of `key` at
    /// `seq` for a reader at `snapshot`.
    #[inline(never)]
    pub(crate) fn range_deleted(
        &self,
        sv: &SuperVersion,
        key: &[u8],
        seq: SeqNo,
        snapshot: SeqNo,
    ) -> Result<bool> {
        if sv
            .mem
            .range_tombstones()
            .is_some_and(|s| s.deletes(key, seq, snapshot))
        {
            return Ok(true);
        }
        for frozen in &sv.imms {
            if frozen
                .mem
                .range_tombstones()
                .is_some_and(|s| s.deletes(key, seq, snapshot))
            {
                return Ok(true);
            }
        }
        if sv.version.range_del_tables.is_empty() {
            return Ok(false);
        }
        Ok(self
            .table_range_dels(&sv.version)?
            .iter()
            .any(|s| s.deletes(key, seq, snapshot)))
    }

    /// The range tombstones `sv` holds, for an iterator.
    pub(crate) fn range_del_view(&self, sv: &SuperVersion) -> Result<RangeDelView> {
        let mut sets = Vec::new();
        sets.extend(sv.mem.range_tombstones());
        sets.extend(sv.imms.iter().filter_map(|f| f.mem.range_tombstones()));
        sets.extend(self.table_range_dels(&sv.version)?.iter().cloned());
        Ok(RangeDelView { sets })
    }
}
