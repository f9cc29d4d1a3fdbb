//! The decoded-block cache: decompressed data blocks keyed by (table file
//! number, block offset), bounded by a byte budget, shared by every table
//! of a database.
//!
//! A `moka` cache with its TinyLFU policy: the admission half of the
//! design's W-TinyLFU. A frequency sketch decides whether a new block may
//! displace the least recently used ones (moka 0.12 keeps one LRU order,
//! without W-TinyLFU's window and segments), so a one-off scan over more
//! blocks than fit does not flush the blocks that are read often
//! (`tests/scan_resistance.rs` measures it against an LRU of the same
//! size, and where it stops holding). Only zstd blocks go here. An uncompressed
//! block is read straight from the table's map, which costs less than any
//! cache lookup (an earlier measurement of moka in front of mapped blocks
//! and tables cost about 12% of a random read's instructions); an LZ4
//! block is decoded on every read, since decoding 4 KiB of LZ4 costs about
//! what a cache hit costs and a miss adds an insert (measured:
//! docs/benchmarks.md, "Compression").
//!
//! Entries are weighed by their decoded size. Hits, misses, inserts and
//! evictions (by size) are counted for `stats`. Thread-safe and cheap to
//! clone (clones share the cache).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use jkv_format::FileNumber;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;

/// How a [`BlockCache`] chooses what to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachePolicy {
    /// TinyLFU: LRU eviction, admission by a frequency sketch (scan
    /// resistant). The engine's choice.
    TinyLfu,
    /// Plain LRU, admitting everything (for comparison).
    Lru,
}

/// Cache counters since the cache was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockCacheStats {
    /// Byte budget.
    pub capacity_bytes: u64,
    /// Decoded bytes held now (moka's weighted size, eventually consistent).
    pub used_bytes: u64,
    /// Blocks held now.
    pub entries: u64,
    /// Lookups that found the block.
    pub hits: u64,
    /// Lookups that did not (the block was then decoded).
    pub misses: u64,
    /// Blocks offered to the cache after a miss (admission may still turn
    /// them away).
    pub inserts: u64,
    /// Blocks removed to stay within the budget (or refused admission).
    pub evictions: u64,
}

impl BlockCacheStats {
    /// Hits over lookups, 0 when there were none.
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    evictions: AtomicU64,
}

/// Decoded data blocks of one database's tables.
#[derive(Clone)]
pub struct BlockCache {
    cache: moka::sync::Cache<(u64, u64), Bytes>,
    counters: Arc<Counters>,
    capacity_bytes: u64,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Weight of a block: its decoded bytes plus what an entry costs besides
/// (key, handle, moka's bookkeeping), so many small blocks cannot exceed
/// the budget by much.
fn weight(block: &Bytes) -> u32 {
    u32::try_from(block.len() + 96).unwrap_or(u32::MAX)
}

impl BlockCache {
    /// A cache of about `capacity_bytes` decoded bytes; `None` for 0 (no
    /// cache).
    pub fn new(capacity_bytes: u64) -> Option<BlockCache> {
        Self::with_policy(capacity_bytes, CachePolicy::TinyLfu)
    }

    /// A cache of about `capacity_bytes` with eviction `policy`; `None`
    /// for 0. The engine always uses [`CachePolicy::TinyLfu`]; the LRU is
    /// there to measure against (`tests/scan_resistance.rs`).
    pub fn with_policy(capacity_bytes: u64, policy: CachePolicy) -> Option<BlockCache> {
        if capacity_bytes == 0 {
            return None;
        }
        let counters = Arc::new(Counters::default());
        let listener_counters = Arc::clone(&counters);
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_, v: &Bytes| weight(v))
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    listener_counters.evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .support_invalidation_closures()
            .eviction_policy(match policy {
                CachePolicy::TinyLfu => EvictionPolicy::tiny_lfu(),
                CachePolicy::Lru => EvictionPolicy::lru(),
            })
            .build();
        Some(BlockCache {
            cache,
            counters,
            capacity_bytes,
        })
    }

    /// The decoded block of table `table` at `offset`, if cached.
    pub fn get(&self, table: FileNumber, offset: u64) -> Option<Bytes> {
        let got = self.cache.get(&(table.0, offset));
        let counter = if got.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        got
    }

    /// Offers a decoded block to the cache.
    pub fn insert(&self, table: FileNumber, offset: u64, block: Bytes) {
        self.counters.inserts.fetch_add(1, Ordering::Relaxed);
        self.cache.insert((table.0, offset), block);
    }

    /// Drops every block of table `table` (its file is gone). Lazy: moka
    /// removes them in its maintenance. Blocks a reader still holding the
    /// table inserts afterwards age out like any cold block (file numbers
    /// are never reused).
    pub fn forget_table(&self, table: FileNumber) {
        // Each call registers a predicate that moka checks against every
        // entry until it has scanned them all; with nothing cached (no zstd
        // tables) there is nothing to forget.
        if self.cache.entry_count() == 0 {
            return;
        }
        let n = table.0;
        // Cannot fail: the cache is built with invalidation closures.
        let _ = self.cache.invalidate_entries_if(move |k, _| k.0 == n);
    }

    /// Runs moka's pending maintenance (admission, eviction) now; for tests
    /// and for exact counters.
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }

    /// The counters and the current size.
    pub fn stats(&self) -> BlockCacheStats {
        BlockCacheStats {
            capacity_bytes: self.capacity_bytes,
            used_bytes: self.cache.weighted_size(),
            entries: self.cache.entry_count(),
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            inserts: self.counters.inserts.load(Ordering::Relaxed),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_hits_misses_inserts_and_evictions() {
        assert!(BlockCache::new(0).is_none());
        let c = BlockCache::new(64 << 10).unwrap();
        assert!(c.get(FileNumber(1), 0).is_none());
        c.insert(FileNumber(1), 0, Bytes::from(vec![7u8; 4000]));
        c.run_pending_tasks();
        assert_eq!(&c.get(FileNumber(1), 0).unwrap()[..10], &[7u8; 10]);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.inserts), (1, 1, 1));
        assert_eq!(s.entries, 1);
        // Far more than fits: the budget holds and evictions are counted.
        for i in 1..200u64 {
            c.insert(FileNumber(2), i * 4096, Bytes::from(vec![1u8; 4000]));
            c.get(FileNumber(2), i * 4096);
        }
        c.run_pending_tasks();
        let s = c.stats();
        assert!(s.used_bytes <= 64 << 10, "{s:?}");
        assert!(s.evictions > 0, "{s:?}");
        c.forget_table(FileNumber(2));
        c.run_pending_tasks();
        assert!(c.get(FileNumber(2), 199 * 4096).is_none());
    }
}
