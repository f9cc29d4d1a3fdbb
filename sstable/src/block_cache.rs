//! The decoded-block cache: decompressed data blocks keyed by (table file
//! number, block offset), bounded by a byte budget, shared by every table
//! of a database.
//!
//! Policy: W-TinyLFU (`foyer-memory`'s `Lfu`, modelled on Caffeine). A new
//! block enters a small LRU window (10% of the budget); blocks leaving the
//! window go to the probation segment, and a block read again there is
//! promoted to the protected segment (80%). When room is needed the head of
//! the window and the head of probation are compared by a count-min
//! frequency sketch (aged by halving) and the less frequent goes; the
//! protected segment gives up blocks only to probation. A one-off scan
//! therefore streams through the window and probation and cannot flush the
//! blocks that are read often (`tests/scan_resistance.rs` measures it
//! against an LRU of the same size). Sharded by key hash: one W-TinyLFU per
//! shard, each with its share of the budget.
//!
//! Only zstd blocks go here. An uncompressed block is read straight from
//! the table's map, which costs less than any cache lookup (an earlier
//! measurement of a cache in front of mapped blocks cost about 12% of a
//! random read's instructions); an LZ4 block is decoded on every read,
//! since decoding 4 KiB of LZ4 costs about what a cache hit costs and a
//! miss adds an insert (measured: docs/benchmarks.md, "Compression").
//!
//! Entries are weighed by their decoded size plus a fixed per-entry cost.
//! Hits, misses, inserts and evictions (by size) are counted for `stats`.
//! Thread-safe and cheap to clone (clones share the cache).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use foyer_common::event::{Event, EventListener};
use foyer_memory::{Cache, CacheBuilder, LfuConfig, LruConfig};
use jkv_format::FileNumber;

/// How a [`BlockCache`] chooses what to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachePolicy {
    /// W-TinyLFU: window LRU, segmented LRU (probation, protected) and a
    /// frequency sketch deciding between the window's and probation's
    /// victims (scan resistant). The engine's choice.
    WTinyLfu,
    /// Plain LRU, admitting everything (for comparison).
    Lru,
}

/// Cache counters since the cache was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockCacheStats {
    /// Byte budget.
    pub capacity_bytes: u64,
    /// Weighed bytes held now (decoded bytes plus the per-entry cost).
    pub used_bytes: u64,
    /// Blocks held now.
    pub entries: u64,
    /// Lookups that found the block.
    pub hits: u64,
    /// Lookups that did not (the block was then decoded).
    pub misses: u64,
    /// Blocks inserted after a miss.
    pub inserts: u64,
    /// Blocks removed to stay within the budget.
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

/// Counts the cache's evictions (removals to make room, not replacements
/// or explicit removals).
struct EvictionCounter(Arc<Counters>);

impl EventListener for EvictionCounter {
    type Key = (u64, u64);
    type Value = Bytes;

    fn on_leave(&self, reason: Event, _key: &(u64, u64), _value: &Bytes) {
        if reason == Event::Evict {
            self.0.evictions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Decoded data blocks of one database's tables.
#[derive(Clone)]
pub struct BlockCache {
    cache: Cache<(u64, u64), Bytes>,
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

/// What an entry costs besides its decoded bytes (key, handle, the cache's
/// record and links), so many small blocks cannot exceed the budget by much.
const ENTRY_OVERHEAD_BYTES: usize = 96;

/// Budget per shard aimed at: each shard is a W-TinyLFU of its own, so a
/// shard must hold many blocks for its segments and sketch to mean much.
const SHARD_BYTES_MIN: u64 = 4 << 20;

/// Shards at most (two cores' worth of readers rarely meet on one shard).
const SHARDS_MAX: u64 = 16;

impl BlockCache {
    /// A cache of about `capacity_bytes` decoded bytes; `None` for 0 (no
    /// cache).
    pub fn new(capacity_bytes: u64) -> Option<BlockCache> {
        Self::with_policy(capacity_bytes, CachePolicy::WTinyLfu)
    }

    /// A cache of about `capacity_bytes` with eviction `policy`; `None`
    /// for 0. The engine always uses [`CachePolicy::WTinyLfu`]; the LRU is
    /// there to measure against (`tests/scan_resistance.rs`).
    pub fn with_policy(capacity_bytes: u64, policy: CachePolicy) -> Option<BlockCache> {
        if capacity_bytes == 0 {
            return None;
        }
        let counters = Arc::new(Counters::default());
        let shards = (capacity_bytes / SHARD_BYTES_MIN).clamp(1, SHARDS_MAX) as usize;
        let builder = CacheBuilder::new(usize::try_from(capacity_bytes).unwrap_or(usize::MAX))
            .with_name("jkv-block-cache")
            .with_shards(shards)
            .with_weighter(|_: &(u64, u64), v: &Bytes| v.len() + ENTRY_OVERHEAD_BYTES)
            .with_event_listener(Arc::new(EvictionCounter(Arc::clone(&counters))));
        let builder = match policy {
            // foyer's defaults: window 10%, protected 80%, probation 10%
            // of each shard's budget (sketch error 0.001, confidence 0.9).
            CachePolicy::WTinyLfu => builder.with_eviction_config(LfuConfig::default()),
            CachePolicy::Lru => builder.with_eviction_config(LruConfig {
                high_priority_pool_ratio: 0.0,
            }),
        };
        Some(BlockCache {
            cache: builder.build(),
            counters,
            capacity_bytes,
        })
    }

    /// The decoded block of table `table` at `offset`, if cached.
    pub fn get(&self, table: FileNumber, offset: u64) -> Option<Bytes> {
        let got = self
            .cache
            .get(&(table.0, offset))
            .map(|e| e.value().clone());
        let counter = if got.is_some() {
            &self.counters.hits
        } else {
            &self.counters.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        got
    }

    /// Adds a decoded block to the cache (it may evict others).
    pub fn insert(&self, table: FileNumber, offset: u64, block: Bytes) {
        self.counters.inserts.fetch_add(1, Ordering::Relaxed);
        drop(self.cache.insert((table.0, offset), block));
    }

    /// Drops the blocks of table `table` at `offsets` (its file is gone).
    /// Blocks not named, or inserted afterwards by a reader still holding
    /// the table, age out like any cold block (file numbers are never
    /// reused).
    pub fn forget_blocks(&self, table: FileNumber, offsets: impl IntoIterator<Item = u64>) {
        if self.cache.entries() == 0 {
            return;
        }
        for offset in offsets {
            self.cache.remove(&(table.0, offset));
        }
    }

    /// The counters and the current size.
    pub fn stats(&self) -> BlockCacheStats {
        BlockCacheStats {
            capacity_bytes: self.capacity_bytes,
            used_bytes: self.cache.usage() as u64,
            entries: self.cache.entries() as u64,
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
        assert_eq!(&c.get(FileNumber(1), 0).unwrap()[..10], &[7u8; 10]);
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.inserts), (1, 1, 1));
        assert_eq!(s.entries, 1);
        // Far more than fits: the budget holds and evictions are counted.
        for i in 1..200u64 {
            c.insert(FileNumber(2), i * 4096, Bytes::from(vec![1u8; 4000]));
            c.get(FileNumber(2), i * 4096);
        }
        let s = c.stats();
        assert!(s.used_bytes <= 64 << 10, "{s:?}");
        assert!(s.evictions > 0, "{s:?}");
        assert_eq!(s.entries + s.evictions, 200, "{s:?}");
        assert!(c.get(FileNumber(2), 199 * 4096).is_some());
        c.forget_blocks(FileNumber(2), (1..200u64).map(|i| i * 4096));
        assert!(c.get(FileNumber(2), 199 * 4096).is_none());
        assert_eq!(c.stats().entries, 0, "only table 2 was left");
    }

    #[test]
    fn shards_follow_the_budget() {
        for (bytes, policy) in [
            (1 << 20, CachePolicy::Lru),
            (256 << 20, CachePolicy::WTinyLfu),
        ] {
            let c = BlockCache::with_policy(bytes, policy).unwrap();
            let shards = (bytes / SHARD_BYTES_MIN).clamp(1, SHARDS_MAX) as usize;
            assert_eq!(c.cache.shards(), shards);
            assert_eq!(c.cache.capacity() as u64, bytes);
        }
    }
}
