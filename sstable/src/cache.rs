//! The block cache: verified, parsed data blocks shared by all tables of a
//! database, so a hit skips the checksum and the restart-array parse.
//!
//! Backed by `moka` (W-TinyLFU admission and eviction), keyed by
//! (file number, block offset), weighed by block bytes. Cached blocks are
//! zero-copy views of the tables' mapped files: a cached block keeps its
//! file's mapping alive, so when a table file is deleted its blocks are
//! dropped with [`BlockCache::evict_file`] (the table cache does this).
//! File numbers are never reused within a database, so one cache must not be
//! shared by two databases.
//!
//! Thread-safe: clones are handles on one shared cache; all methods take
//! `&self` and never block on I/O.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use jkv_format::FileNumber;
use moka::sync::Cache;

use crate::block::Block;

/// Bytes charged per entry on top of the block, for the cache's own
/// bookkeeping.
const ENTRY_OVERHEAD_BYTES: usize = 96;

#[derive(Debug)]
struct Shared {
    blocks: Cache<(FileNumber, u64), Arc<Block>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A shared cache of verified data blocks, bounded in bytes.
#[derive(Clone, Debug)]
pub struct BlockCache {
    shared: Arc<Shared>,
}

impl BlockCache {
    /// A cache holding at most about `capacity_bytes` of blocks (the engine's
    /// default is 64 MiB). Eviction is asynchronous: the bound is kept
    /// approximately, a little over for short moments.
    pub fn new(capacity_bytes: u64) -> BlockCache {
        let blocks = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_key, block: &Arc<Block>| {
                u32::try_from(block.size_bytes() + ENTRY_OVERHEAD_BYTES).unwrap_or(u32::MAX)
            })
            .support_invalidation_closures()
            .build();
        BlockCache {
            shared: Arc::new(Shared {
                blocks,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
        }
    }

    /// The block at `offset` of table `file`, if cached. Counts a hit or a
    /// miss.
    #[inline]
    pub fn get(&self, file: FileNumber, offset: u64) -> Option<Arc<Block>> {
        let found = self.shared.blocks.get(&(file, offset));
        let counter = if found.is_some() {
            &self.shared.hits
        } else {
            &self.shared.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Caches a block whose checksum was verified.
    pub fn insert(&self, file: FileNumber, offset: u64, block: Arc<Block>) {
        self.shared.blocks.insert((file, offset), block);
    }

    /// Drops every block of table `file` (call when its file is deleted, so
    /// the file's mapping can be released). Lookups stop returning them at
    /// once; memory is freed by the cache's maintenance soon after.
    pub fn evict_file(&self, file: FileNumber) {
        // Cannot fail: the cache is built with invalidation closures.
        let _ = self
            .shared
            .blocks
            .invalidate_entries_if(move |key, _| key.0 == file);
    }

    /// Lookups that found their block.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::Relaxed)
    }

    /// Lookups that did not.
    pub fn misses(&self) -> u64 {
        self.shared.misses.load(Ordering::Relaxed)
    }

    /// Bytes currently charged to cached blocks (approximate until pending
    /// maintenance has run).
    pub fn used_bytes(&self) -> u64 {
        self.shared.blocks.weighted_size()
    }

    /// Number of cached blocks (approximate).
    pub fn block_count(&self) -> u64 {
        self.shared.blocks.entry_count()
    }

    /// Runs pending maintenance (evictions, invalidations) now; for tests
    /// and stats.
    pub fn run_pending_tasks(&self) {
        self.shared.blocks.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn block(n: usize) -> Arc<Block> {
        let mut data = vec![0u8; n];
        data.extend_from_slice(&0u32.to_le_bytes());
        Arc::new(Block::new(Bytes::from(data)).unwrap())
    }

    #[test]
    fn hits_misses_and_file_eviction() {
        let c = BlockCache::new(1 << 20);
        assert!(c.get(FileNumber(1), 0).is_none());
        c.insert(FileNumber(1), 0, block(100));
        c.insert(FileNumber(1), 200, block(100));
        c.insert(FileNumber(2), 0, block(100));
        assert!(c.get(FileNumber(1), 0).is_some());
        assert_eq!((c.hits(), c.misses()), (1, 1));
        c.evict_file(FileNumber(1));
        assert!(c.get(FileNumber(1), 0).is_none());
        assert!(c.get(FileNumber(1), 200).is_none());
        assert!(c.get(FileNumber(2), 0).is_some());
        c.run_pending_tasks();
        assert_eq!(c.block_count(), 1);
    }

    #[test]
    fn capacity_bounds_bytes() {
        let c = BlockCache::new(64 * 1024);
        for i in 0..200u64 {
            c.insert(FileNumber(1), i * 5000, block(4000));
        }
        c.run_pending_tasks();
        assert!(c.used_bytes() <= 64 * 1024, "{}", c.used_bytes());
    }
}
