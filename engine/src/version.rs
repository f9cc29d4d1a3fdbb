//! The file sets a reader holds: the table set (a `Version`) and the live
//! value-log files (a `VlogSet`), both immutable once built; the published
//! view (view.rs) bundles them into the `SuperVersion` readers clone.
//!
//! Files are held through handles (`Arc<TableHandle>`,
//! `Arc<VlogFileHandle>`): a compaction marks its inputs obsolete once the
//! manifest no longer names them (value-log collection does the same for
//! the files it retires), and the file is deleted when the last set (and
//! so the last reader) holding it lets go.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use jkv_format::key::user_key;
use jkv_format::names::table_path;
use jkv_format::names::vlog_path;
use jkv_format::{FileNumber, FileSystem, RangeTombstoneSet};
use jkv_manifest::{ManifestState, TableMeta};
use jkv_sstable::TableCache;
use jkv_vlog::VlogReader;

/// Deletes table files that no version references any more.
pub(crate) struct TableDeleter {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    table_cache: TableCache,
}

impl TableDeleter {
    /// Deletes files of `dir` through `fs`, evicting them from
    /// `table_cache` first.
    pub fn new(fs: Arc<dyn FileSystem>, dir: PathBuf, table_cache: TableCache) -> Self {
        TableDeleter {
            fs,
            dir,
            table_cache,
        }
    }
}

/// A table of the tree: its manifest entry, and whether it was compacted
/// away (then its file goes when the handle drops).
pub(crate) struct TableHandle {
    pub meta: TableMeta,
    obsolete: AtomicBool,
    deleter: Arc<TableDeleter>,
}

impl TableHandle {
    /// Marks the table compacted away: the manifest edit that removed it is
    /// durable, so its file may go once no reader holds it.
    pub fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }
}

impl Deref for TableHandle {
    type Target = TableMeta;
    fn deref(&self) -> &TableMeta {
        &self.meta
    }
}

impl std::fmt::Debug for TableHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TableHandle({}, L{})", self.meta.id, self.meta.level)
    }
}

impl Drop for TableHandle {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            let number = self.meta.id;
            self.deleter.table_cache.evict(number);
            // A failed removal leaves an orphan that the next open removes.
            let _ = self
                .deleter
                .fs
                .remove(&table_path(&self.deleter.dir, number));
        }
    }
}

/// The table set at one point in time.
#[derive(Debug, Default)]
pub(crate) struct Version {
    /// `levels[0]` newest first (tables may overlap); `levels[1..]` sorted
    /// by smallest key and non-overlapping.
    pub levels: Vec<Vec<Arc<TableHandle>>>,
    /// The tables holding range tombstones, which every read weighs.
    pub range_del_tables: Vec<Arc<TableHandle>>,
    /// Their tombstones, read on the first lookup that needs them (outside
    /// any lock; see `range_del.rs`).
    pub range_del_sets: OnceLock<Vec<Arc<RangeTombstoneSet>>>,
}

impl Version {
    /// The table set the manifest describes, reusing the handles of `prev`
    /// for tables it already had.
    pub fn from_state(state: &ManifestState, prev: &Version, deleter: &Arc<TableDeleter>) -> Self {
        let known: HashMap<FileNumber, &Arc<TableHandle>> = prev
            .levels
            .iter()
            .flatten()
            .map(|h| (h.meta.id, h))
            .collect();
        let levels = state
            .levels
            .iter()
            .map(|tables| {
                tables
                    .iter()
                    .map(|meta| match known.get(&meta.id) {
                        Some(h) if h.meta == *meta => Arc::clone(h),
                        _ => Arc::new(TableHandle {
                            meta: meta.clone(),
                            obsolete: AtomicBool::new(false),
                            deleter: deleter.clone(),
                        }),
                    })
                    .collect()
            })
            .collect::<Vec<Vec<Arc<TableHandle>>>>();
        let range_del_tables = levels
            .iter()
            .flatten()
            .filter(|h| h.meta.range_deletions > 0)
            .cloned()
            .collect();
        Version {
            levels,
            range_del_tables,
            range_del_sets: OnceLock::new(),
        }
    }

    /// Table metadata per level, for the compaction picker.
    pub fn metas(&self) -> Vec<Vec<TableMeta>> {
        self.levels
            .iter()
            .map(|l| l.iter().map(|h| h.meta.clone()).collect())
            .collect()
    }

    /// The handle of table `id`, if this version has it.
    pub fn handle(&self, id: FileNumber) -> Option<&Arc<TableHandle>> {
        self.levels.iter().flatten().find(|h| h.meta.id == id)
    }

    /// Tables of `level` whose user-key range may hold `key`, in the order
    /// they must be searched (newest first in L0; at most one elsewhere).
    pub fn tables_for_key<'a>(
        &'a self,
        level: usize,
        key: &'a [u8],
    ) -> impl Iterator<Item = &'a Arc<TableHandle>> + 'a {
        let tables = &self.levels[level];
        let candidates: &'a [Arc<TableHandle>] = if level == 0 {
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

/// A live value-log file. When it has been garbage collected (`obsolete`)
/// the file is deleted as the last handle — held by super-versions, so by
/// readers — goes away.
pub(crate) struct VlogFileHandle {
    number: FileNumber,
    obsolete: AtomicBool,
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    reader: Arc<VlogReader>,
}

impl VlogFileHandle {
    /// Marks the file collected: the manifest edit that removed it is
    /// durable, so it may go once no reader holds it.
    pub fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }
}

impl Drop for VlogFileHandle {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            self.reader.forget(self.number);
            // A failed removal leaves an orphan the next open removes.
            let _ = self.fs.remove(&vlog_path(&self.dir, self.number));
        }
    }
}

impl std::fmt::Debug for VlogFileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VlogFileHandle({})", self.number)
    }
}

/// The live value-log files at one point in time.
#[derive(Debug, Default)]
pub(crate) struct VlogSet {
    pub files: BTreeMap<FileNumber, Arc<VlogFileHandle>>,
}

/// Makes the handles of a [`VlogSet`] (owned by the published view).
pub(crate) struct VlogHandleSource {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    reader: Arc<VlogReader>,
}

impl VlogHandleSource {
    /// Handles on the files of `dir`, read through `reader`.
    pub fn new(fs: Arc<dyn FileSystem>, dir: PathBuf, reader: Arc<VlogReader>) -> Self {
        VlogHandleSource { fs, dir, reader }
    }

    /// The files the manifest names, reusing the handles of `prev`.
    pub fn set_from(&self, state: &ManifestState, prev: &VlogSet) -> VlogSet {
        let files = state
            .vlogs
            .keys()
            .map(|&n| {
                let handle = prev.files.get(&n).cloned().unwrap_or_else(|| {
                    Arc::new(VlogFileHandle {
                        number: n,
                        obsolete: AtomicBool::new(false),
                        fs: self.fs.clone(),
                        dir: self.dir.clone(),
                        reader: self.reader.clone(),
                    })
                });
                (n, handle)
            })
            .collect();
        VlogSet { files }
    }
}
