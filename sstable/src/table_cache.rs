//! The table cache: open tables by file number, opened on first use and
//! kept while they are used often enough, bounded by a number of tables.
//!
//! A map under a reader-writer lock: a hit is one shared lock and one
//! `Arc` clone, which matters because every point lookup asks it for every
//! table it probes (a `moka` cache here cost about 12% of a random read's
//! instructions, measured with callgrind). Two concurrent misses on the
//! same table may both open it; the first insert wins and the other copy is
//! dropped. A failed open is not cached, so the next `get` retries it. When
//! the cache is full, an insert evicts the table opened longest ago
//! (tables are used for their whole life in the tree, so insertion order is
//! a fair proxy). Evicting a table drops the cache's handle; readers that
//! still hold an `Arc<Table>` keep it (and its mapping) until they finish.
//!
//! Thread-safe: all methods take `&self`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::collections::{HashMap, VecDeque};

use jkv_format::names::table_path;
use jkv_format::{FileNumber, FileSystem, Result};
use parking_lot::RwLock;

use crate::block_cache::BlockCache;
use crate::table::Table;

/// The open tables and the order they were opened in.
#[derive(Default)]
struct OpenTables {
    by_number: HashMap<FileNumber, Arc<Table>>,
    /// Insertion order, oldest first; may name tables already evicted.
    order: VecDeque<FileNumber>,
}

/// Open tables of one database directory.
#[derive(Clone)]
pub struct TableCache {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    tables: Arc<RwLock<OpenTables>>,
    capacity_tables: usize,
    /// Decoded compressed blocks of every table opened here.
    block_cache: Option<BlockCache>,
}

impl fmt::Debug for TableCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableCache")
            .field("dir", &self.dir)
            .field("open_tables", &self.open_count())
            .finish_non_exhaustive()
    }
}

impl TableCache {
    /// A cache of at most about `capacity_tables` open tables (at least 1)
    /// of the `NNNNNN.sst` files in `dir`.
    pub fn new(fs: Arc<dyn FileSystem>, dir: PathBuf, capacity_tables: usize) -> TableCache {
        Self::with_block_cache(fs, dir, capacity_tables, None)
    }

    /// Like [`new`](Self::new), with the tables keeping the compressed
    /// blocks they decode in `block_cache` (`None`: decode on every read).
    pub fn with_block_cache(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        capacity_tables: usize,
        block_cache: Option<BlockCache>,
    ) -> TableCache {
        TableCache {
            fs,
            dir,
            tables: Arc::default(),
            capacity_tables: capacity_tables.max(1),
            block_cache,
        }
    }

    /// The decoded-block cache, if there is one.
    pub fn block_cache(&self) -> Option<&BlockCache> {
        self.block_cache.as_ref()
    }

    /// Table `n`, opening `dir/NNNNNN.sst` if it is not open. Errors are
    /// those of [`Table::open`].
    pub fn get(&self, n: FileNumber) -> Result<Arc<Table>> {
        if let Some(table) = self.tables.read().by_number.get(&n) {
            return Ok(Arc::clone(table));
        }
        // Open without holding the lock: opening reads the file.
        let opened = Table::open_with_cache(
            &*self.fs,
            &table_path(&self.dir, n),
            n,
            self.block_cache.clone(),
        )?;
        let mut tables = self.tables.write();
        if let Some(table) = tables.by_number.get(&n) {
            return Ok(Arc::clone(table));
        }
        while tables.by_number.len() >= self.capacity_tables {
            match tables.order.pop_front() {
                Some(old) => {
                    tables.by_number.remove(&old);
                }
                None => break,
            }
        }
        tables.by_number.insert(n, Arc::clone(&opened));
        tables.order.push_back(n);
        Ok(opened)
    }

    /// Forgets table `n`: call when its file is deleted, so the file's
    /// mapping is released once the last reader drops it. If the table is
    /// open, its decoded blocks leave the block cache too (those of a table
    /// no longer open age out).
    pub fn evict(&self, n: FileNumber) {
        let mut tables = self.tables.write();
        let table = tables.by_number.remove(&n);
        tables.order.retain(|&o| o != n);
        drop(tables);
        if let Some(table) = table {
            table.forget_cached_blocks();
        }
    }

    /// Data blocks verified (checksum checked) in the open tables since
    /// they were opened.
    pub fn verified_block_count(&self) -> u64 {
        let tables = self.tables.read();
        tables
            .by_number
            .values()
            .map(|t| t.verified_block_count() as u64)
            .sum()
    }

    /// The directory tables are opened from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of open tables.
    pub fn open_count(&self) -> u64 {
        self.tables.read().by_number.len() as u64
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
        let tc = TableCache::new(Arc::new(StdFs), dir.path().to_path_buf(), 2);
        let a = tc.get(FileNumber(1)).unwrap();
        let b = tc.get(FileNumber(1)).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "second get shares the open table");
        assert!(a.get(b"t1", SeqNo::MAX).unwrap().is_some());
        assert_eq!(tc.verified_block_count(), 1);
        for n in 1..=3u64 {
            assert_eq!(tc.get(FileNumber(n)).unwrap().file_number(), FileNumber(n));
        }
        // Capacity 2: opening the third evicted the oldest.
        assert_eq!(tc.open_count(), 2);
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
        let tc = TableCache::new(Arc::new(StdFs), dir.path().to_path_buf(), 2);
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
