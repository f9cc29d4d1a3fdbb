//! Figures about a database: per-level tables and bytes, memtables, bytes
//! written by each path, write amplification, cache hit rates, stalls.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::db::DbInner;

/// Monotonic counters updated on the hot paths (relaxed atomics).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Key + value bytes of every acknowledged write.
    pub user_bytes: AtomicU64,
    /// Bytes appended to WALs.
    pub wal_bytes: AtomicU64,
    /// Bytes of tables written by flushes (recovery included).
    pub flush_bytes: AtomicU64,
    /// Acknowledged `write` calls.
    pub writes: AtomicU64,
    /// Commit groups (WAL appends).
    pub write_groups: AtomicU64,
    /// Memtables flushed by the background thread.
    pub flushes: AtomicU64,
    /// Point lookups.
    pub gets: AtomicU64,
    /// Time writers waited for room (microseconds).
    pub stall_micros: AtomicU64,
}

/// One level's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LevelStats {
    /// Level number (0 = newest).
    pub level: usize,
    /// Tables in the level.
    pub tables: usize,
    /// Bytes of those tables on disk.
    pub bytes: u64,
}

/// A snapshot of the database's figures, from [`crate::Db::stats`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Per level, L0 first.
    pub levels: Vec<LevelStats>,
    /// Approximate memory of the active memtable (bytes).
    pub memtable_bytes: u64,
    /// Frozen memtables waiting for flush.
    pub frozen_memtables: usize,
    /// Key + value bytes written by users.
    pub user_bytes_written: u64,
    /// Bytes appended to WALs.
    pub wal_bytes_written: u64,
    /// Bytes of tables written by flushes.
    pub flush_bytes_written: u64,
    /// Acknowledged writes and the commit groups they formed.
    pub writes: u64,
    /// Commit groups (one WAL append each).
    pub write_groups: u64,
    /// Flushes completed.
    pub flushes: u64,
    /// Microseconds writers waited for a memtable slot.
    pub stall_micros: u64,
    /// Block cache hits and misses.
    pub block_cache_hits: u64,
    /// Block cache misses.
    pub block_cache_misses: u64,
    /// Live snapshot handles.
    pub snapshots: usize,
    /// Why the database refuses writes, if it does.
    pub health: Option<String>,
}

impl Stats {
    pub(crate) fn collect(db: &DbInner) -> Stats {
        let sv = db.super_version();
        let levels = sv
            .version
            .levels
            .iter()
            .enumerate()
            .map(|(level, tables)| LevelStats {
                level,
                tables: tables.len(),
                bytes: tables.iter().map(|t| t.size_bytes).sum(),
            })
            .collect();
        let c = &db.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            levels,
            memtable_bytes: sv.mem.approximate_memory_bytes() as u64,
            frozen_memtables: sv.imms.len(),
            user_bytes_written: load(&c.user_bytes),
            wal_bytes_written: load(&c.wal_bytes),
            flush_bytes_written: load(&c.flush_bytes),
            writes: load(&c.writes),
            write_groups: load(&c.write_groups),
            flushes: load(&c.flushes),
            stall_micros: load(&c.stall_micros),
            block_cache_hits: db.block_cache.as_ref().map_or(0, |b| b.hits()),
            block_cache_misses: db.block_cache.as_ref().map_or(0, |b| b.misses()),
            snapshots: db.snapshots.count(),
            health: db.bg_error.lock().as_ref().map(|e| e.to_string()),
        }
    }

    /// Bytes in all tables.
    pub fn table_bytes(&self) -> u64 {
        self.levels.iter().map(|l| l.bytes).sum()
    }

    /// Bytes written to disk (WAL + tables) per byte of user data; `None`
    /// before the first write.
    pub fn write_amplification(&self) -> Option<f64> {
        (self.user_bytes_written > 0).then(|| {
            (self.wal_bytes_written + self.flush_bytes_written) as f64
                / self.user_bytes_written as f64
        })
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "level  tables      size_mib")?;
        for l in &self.levels {
            writeln!(f, "L{:<5} {:>6} {:>13.2}", l.level, l.tables, mib(l.bytes))?;
        }
        writeln!(
            f,
            "memtable {:.2} MiB, frozen memtables {}",
            mib(self.memtable_bytes),
            self.frozen_memtables
        )?;
        writeln!(
            f,
            "written: user {:.2} MiB, wal {:.2} MiB, flush {:.2} MiB; write amplification {}",
            mib(self.user_bytes_written),
            mib(self.wal_bytes_written),
            mib(self.flush_bytes_written),
            self.write_amplification()
                .map_or("n/a".to_string(), |w| format!("{w:.2}"))
        )?;
        writeln!(
            f,
            "writes {} in {} groups, flushes {}, stalled {:.3} s",
            self.writes,
            self.write_groups,
            self.flushes,
            self.stall_micros as f64 / 1e6
        )?;
        writeln!(
            f,
            "block cache hits {} misses {}, live snapshots {}",
            self.block_cache_hits, self.block_cache_misses, self.snapshots
        )?;
        match &self.health {
            Some(why) => write!(f, "health: READ-ONLY: {why}"),
            None => write!(f, "health: ok"),
        }
    }
}
