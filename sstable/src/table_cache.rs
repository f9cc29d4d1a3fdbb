//! The table cache: open tables by file number, opened on first use and
//! kept while they are used often enough, bounded by a number of tables.
//!
//! Backed by `moka` (W-TinyLFU). Concurrent `get`s of the same table that is
//! not open yet share one open; a failed open is not cached, so the next
//! `get` retries it. Evicting a table drops the cache's handle; readers that
//! still hold an `Arc<Table>` keep it (and its mapping) until they finish.
//!
//! Thread-safe: all methods take `&self`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jkv_format::names::table_path;
use jkv_format::{FileNumber, FileSystem, Result};
use moka::sync::Cache;

use crate::cache::BlockCache;
use crate::table::Table;

/// Open tables of one database directory.
#[derive(Clone)]
pub struct TableCache {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    tables: Cache<FileNumber, Arc<Table>>,
    block_cache: Option<BlockCache>,
}

impl fmt::Debug for TableCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableCache")
            .field("dir", &self.dir)
            .field("open_tables", &self.tables.entry_count())
            .finish_non_exhaustive()
    }
}

impl TableCache {
    /// A cache of at most about `capacity_tables` open tables (at least 1)
    /// of the `NNNNNN.sst` files in `dir`, reading blocks through
    /// `block_cache` when given.
    pub fn new(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        capacity_tables: usize,
        block_cache: Option<BlockCache>,
    ) -> TableCache {
        TableCache {
            fs,
            dir,
            tables: Cache::new(capacity_tables.max(1) as u64),
            block_cache,
        }
    }

    /// Table `n`, opening `dir/NNNNNN.sst` if it is not open. Errors are
    /// those of [`Table::open`].
    pub fn get(&self, n: FileNumber) -> Result<Arc<Table>> {
        self.tables
            .try_get_with(n, || {
                Table::open(
                    &*self.fs,
                    &table_path(&self.dir, n),
                    n,
                    self.block_cache.clone(),
                )
            })
            .map_err(|e| (*e).clone())
    }

    /// Forgets table `n` and its cached blocks: call when its file is
    /// deleted, so the file's mapping is released once the last reader
    /// drops it.
    pub fn evict(&self, n: FileNumber) {
        self.tables.invalidate(&n);
        if let Some(c) = &self.block_cache {
            c.evict_file(n);
        }
    }

    /// The block cache tables read through, if any.
    pub fn block_cache(&self) -> Option<&BlockCache> {
        self.block_cache.as_ref()
    }

    /// The directory tables are opened from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of open tables (approximate while maintenance is pending).
    pub fn open_count(&self) -> u64 {
        self.tables.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{build_table, ik};
    use crate::TableOptions;
    use jkv_format::{SeqNo, StdFs};

    #[test]
    fn opens_on_miss_shares_and_evicts() {
        let dir = tempfile::tempdir().unwrap();
        for n in 1..=3u64 {
            let entries = vec![(ik(format!("t{n}").as_bytes(), n), b"v".to_vec())];
            build_table(dir.path(), n, &entries, TableOptions::default());
        }
        let blocks = BlockCache::new(1 << 20);
        let tc = TableCache::new(
            Arc::new(StdFs),
            dir.path().to_path_buf(),
            2,
            Some(blocks.clone()),
        );
        let a = tc.get(FileNumber(1)).unwrap();
        let b = tc.get(FileNumber(1)).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "second get shares the open table");
        assert!(a.get(b"t1", SeqNo::MAX).unwrap().is_some());
        for n in 1..=3u64 {
            assert_eq!(tc.get(FileNumber(n)).unwrap().file_number(), FileNumber(n));
        }
        tc.evict(FileNumber(1));
        let c = tc.get(FileNumber(1)).unwrap();
        assert!(!Arc::ptr_eq(&a, &c), "evicted table is opened again");
        // A missing file is an error, and is not cached.
        assert!(tc.get(FileNumber(9)).is_err());
        build_table(dir.path(), 9, &[], TableOptions::default());
        assert!(tc.get(FileNumber(9)).is_ok());
    }

    #[test]
    fn concurrent_gets() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<_> = (0..200u32)
            .map(|i| (ik(format!("k{i:04}").as_bytes(), 1), vec![b'v'; 100]))
            .collect();
        for n in 1..=4u64 {
            build_table(dir.path(), n, &entries, TableOptions::default());
        }
        let tc = TableCache::new(
            Arc::new(StdFs),
            dir.path().to_path_buf(),
            2,
            Some(BlockCache::new(64 << 10)),
        );
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let tc = &tc;
                s.spawn(move || {
                    for i in 0..400u64 {
                        let n = FileNumber(1 + (i + t) % 4);
                        let table = tc.get(n).unwrap();
                        let key = format!("k{:04}", (i * 7) % 200);
                        assert!(table.get(key.as_bytes(), SeqNo::MAX).unwrap().is_some());
                    }
                });
            }
        });
    }
}
