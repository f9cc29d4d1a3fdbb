//! What a reader sees: the active memtable, the frozen ones, and the table
//! set (a `Version`), bundled in one immutable `SuperVersion` that readers
//! clone an `Arc` of. Writers build a new one and swap it in under a short
//! lock (`DbInner::current`); nothing here is ever mutated in place.

use std::sync::Arc;

use jkv_format::key::user_key;
use jkv_format::FileNumber;
use jkv_manifest::{ManifestState, TableMeta};
use jkv_memtable::Memtable;

/// The table set at one point in time.
#[derive(Debug, Default)]
pub(crate) struct Version {
    /// `levels[0]` newest first (tables may overlap); `levels[1..]` sorted
    /// by smallest key and non-overlapping.
    pub levels: Vec<Vec<TableMeta>>,
}

impl Version {
    /// The table set the manifest describes.
    pub fn from_state(state: &ManifestState) -> Self {
        Version {
            levels: state.levels.clone(),
        }
    }

    /// Tables of `level` whose user-key range may hold `key`, in the order
    /// they must be searched (newest first in L0; at most one elsewhere).
    pub fn tables_for_key<'a>(
        &'a self,
        level: usize,
        key: &'a [u8],
    ) -> impl Iterator<Item = &'a TableMeta> + 'a {
        let tables = &self.levels[level];
        let candidates: &'a [TableMeta] = if level == 0 {
            tables
        } else {
            // First table whose largest user key is >= key.
            let i = tables.partition_point(|t| user_key(&t.largest) < key);
            &tables[i.min(tables.len())..(i + 1).min(tables.len())]
        };
        candidates
            .iter()
            .filter(move |t| user_key(&t.smallest) <= key && key <= user_key(&t.largest))
    }
}

/// A frozen memtable waiting for flush, with the WAL that holds its writes.
#[derive(Debug)]
pub(crate) struct Frozen {
    pub mem: Arc<Memtable>,
    /// `None` when the WAL is disabled.
    pub wal: Option<FileNumber>,
}

/// Everything a read needs, captured at once.
#[derive(Debug)]
pub(crate) struct SuperVersion {
    /// The memtable taking writes.
    pub mem: Arc<Memtable>,
    /// Frozen memtables, newest first.
    pub imms: Vec<Arc<Frozen>>,
    /// The tables.
    pub version: Arc<Version>,
}
