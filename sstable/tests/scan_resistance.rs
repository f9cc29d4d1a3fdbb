//! Scan resistance of the decoded-block cache, measured: the cache is
//! filled (a first scan), a hot set of keys is read with Zipfian
//! frequencies and probed, then one full scan reads every block of a table
//! set several times the cache's size, then the hot set is probed again.
//! The engine's W-TinyLFU cache keeps the hot set: the probes'
//! Zipf-weighted hit ratio after the scan stays within a few points of
//! before. An LRU of the same size (same weigher) loses all of it. Prints
//! both (`--nocapture`); docs/benchmarks.md ("Compression") reports them.
//! The cache hashes with a fixed seed, so every run gives the same figures.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{ikey, MemFs};
use jkv_format::{FileNumber, FileSystem, InternalIterator, SeqNo, ValueKind};
use jkv_sstable::{BlockCache, CachePolicy, Compression, Table, TableBuilder, TableOptions};

/// Tables of 10,000 entries, about 1.1 MiB decoded each: the scan reads
/// about 8.7 times the cache (moka's TinyLFU, used before, kept only half
/// of the hot set from about 6.5 times on).
const TABLES: u64 = 8;
const KEYS_PER_TABLE: u64 = 10_000;
const CACHE_BYTES: u64 = 1 << 20;
/// Hot keys, 64 apart: each in its own block.
const HOT_KEYS: u64 = 100;
const HOT_STRIDE: u64 = 64;

fn key(n: u64) -> Vec<u8> {
    format!("key{n:08}").into_bytes()
}

/// A value that compresses to about half: a random printable head
/// repeated, as db_bench's generator does.
fn value(n: u64) -> Vec<u8> {
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let head: Vec<u8> = (0..50)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b' ' + (x % 95) as u8
        })
        .collect();
    head.repeat(2)
}

/// Small xorshift generator, seeded.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf(0.99) over `n` ranks: the cumulative weights and each rank's share.
fn zipf(n: u64) -> (Vec<f64>, Vec<f64>) {
    let weights: Vec<f64> = (1..=n).map(|r| 1.0 / (r as f64).powf(0.99)).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    let cdf = weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect();
    (cdf, weights.iter().map(|w| w / total).collect())
}

fn build(fs: &MemFs) -> Vec<PathBuf> {
    let options = TableOptions {
        // zstd: the blocks the cache holds (LZ4 blocks are decoded each read).
        compression: Compression::ZSTD,
        ..TableOptions::default()
    };
    (0..TABLES)
        .map(|t| {
            let path = PathBuf::from(format!("db/{:06}.sst", t + 1));
            let mut b = TableBuilder::new(fs.create(&path).unwrap(), options.clone());
            for i in 0..KEYS_PER_TABLE {
                let n = t * KEYS_PER_TABLE + i;
                b.add(&ikey(&key(n), 1, ValueKind::Value), &value(n))
                    .unwrap();
            }
            b.finish().unwrap();
            path
        })
        .collect()
}

/// What one policy kept: Zipf-weighted hit ratio of one probe of every hot
/// key before and after the scan, and the counters.
struct Outcome {
    before: f64,
    after: f64,
    decoded_bytes: u64,
}

fn run(fs: &MemFs, paths: &[PathBuf], policy: CachePolicy) -> Outcome {
    let cache = BlockCache::with_policy(CACHE_BYTES, policy).unwrap();
    let tables: Vec<Arc<Table>> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Table::open_with_cache(fs, p, FileNumber(i as u64 + 1), Some(cache.clone())).unwrap()
        })
        .collect();
    let get = |n: u64| {
        let t = &tables[(n / KEYS_PER_TABLE) as usize];
        let got = t.get(&key(n), SeqNo::MAX).unwrap().unwrap();
        assert_eq!(&got.2[..], &value(n)[..]);
    };
    // One full scan of every table; returns the entries seen.
    let scan = || {
        let mut scanned = 0u64;
        for t in &tables {
            let mut it = t.iter();
            it.seek_to_first();
            while it.valid() {
                scanned += 1;
                it.next();
            }
            it.status().unwrap();
        }
        scanned
    };
    // A cache in service is full: fill it first.
    scan();
    // Hot key of rank r: spread over the first table's blocks.
    let hot = |rank: usize| rank as u64 * HOT_STRIDE;
    let (cdf, share) = zipf(HOT_KEYS);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..30_000 {
        let u = rng.next_f64();
        let rank = cdf.partition_point(|&c| c < u).min(HOT_KEYS as usize - 1);
        get(hot(rank));
    }
    // One probe per hot key: weighted by how often the workload reads it.
    let probe = || {
        let mut weighted = 0.0;
        for (rank, w) in share.iter().enumerate() {
            let hits = cache.stats().hits;
            get(hot(rank));
            if cache.stats().hits > hits {
                weighted += w;
            }
        }
        weighted
    };
    let before = probe();
    // The one-off scan.
    assert_eq!(scan(), TABLES * KEYS_PER_TABLE);
    let after = probe();
    let decoded_bytes: u64 = tables
        .iter()
        .map(|t| t.verify().unwrap().raw_data_bytes)
        .sum();
    let s = cache.stats();
    println!(
        "{policy:?}: hot-set hit ratio before the scan {before:.3}, after {after:.3}; \
         cache {:.1} MiB, table set decoded {:.1} MiB ({:.1}x); hits {} misses {} inserts {} evictions {}",
        s.capacity_bytes as f64 / 1048576.0,
        decoded_bytes as f64 / 1048576.0,
        decoded_bytes as f64 / s.capacity_bytes as f64,
        s.hits,
        s.misses,
        s.inserts,
        s.evictions
    );
    Outcome {
        before,
        after,
        decoded_bytes,
    }
}

#[test]
fn a_full_scan_does_not_flush_the_hot_set_from_the_w_tiny_lfu_cache() {
    let fs = MemFs::default();
    let paths = build(&fs);
    let lfu = run(&fs, &paths, CachePolicy::WTinyLfu);
    let lru = run(&fs, &paths, CachePolicy::Lru);
    assert!(
        lfu.decoded_bytes > 7 * CACHE_BYTES,
        "the scan covers several times the cache"
    );
    // Both caches hold the hot set before the scan.
    assert!(
        lfu.before > 0.95 && lru.before > 0.95,
        "{} {}",
        lfu.before,
        lru.before
    );
    // W-TinyLFU keeps it through the scan, within a few points.
    assert!(
        lfu.after >= lfu.before - 0.05,
        "{} -> {}",
        lfu.before,
        lfu.after
    );
    // The LRU loses most of it (all, here).
    assert!(
        lru.after < lru.before / 2.0,
        "{} -> {}",
        lru.before,
        lru.after
    );
}
