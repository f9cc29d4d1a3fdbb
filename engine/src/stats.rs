//! Figures about a database: per-level tables and bytes, memtables, bytes
//! written by each path, write amplification, cache hit rates, stalls.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use jkv_compaction::LevelTargets;
use jkv_format::{Compression, FileNumber};
use jkv_sstable::BlockCacheStats;

use crate::db::DbInner;

/// Monotonic counters updated on the hot paths (relaxed atomics).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Bytes read by compactions, by output level.
    pub compaction_read: Vec<AtomicU64>,
    /// Bytes written by compactions, by output level.
    pub compaction_written: Vec<AtomicU64>,
    /// Merge compactions completed.
    pub compactions: AtomicU64,
    /// Trivial moves completed.
    pub compaction_moves: AtomicU64,
    /// Tables compactions deleted unread because a range tombstone covered
    /// them whole.
    pub range_deleted_tables: AtomicU64,
    /// Merge compactions the garbage picker chose (counted in
    /// `compactions` too).
    pub garbage_compactions: AtomicU64,
    /// Time spent in compactions (microseconds, summed over threads).
    pub compaction_micros: AtomicU64,
    /// Bytes appended to value logs by writes (GC rewrites included).
    pub vlog_bytes: AtomicU64,
    /// Value-log files garbage collected.
    pub vlog_gc_files: AtomicU64,
    /// Live entries garbage collection rewrote.
    pub vlog_gc_rewritten: AtomicU64,
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
    /// Iterators made (scans).
    pub scans: AtomicU64,
    /// Time writers waited for room (microseconds).
    pub stall_micros: AtomicU64,
}

impl Counters {
    pub(crate) fn new(num_levels: usize) -> Self {
        Counters {
            compaction_read: (0..num_levels).map(|_| AtomicU64::new(0)).collect(),
            compaction_written: (0..num_levels).map(|_| AtomicU64::new(0)).collect(),
            ..Counters::default()
        }
    }

    /// Writes, gets and scans so far (idleness is a stretch where this
    /// does not move).
    pub(crate) fn activity(&self) -> u64 {
        self.writes.load(Ordering::Acquire)
            + self.gets.load(Ordering::Acquire)
            + self.scans.load(Ordering::Acquire)
    }
}

/// One live value-log file's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VlogFileStats {
    /// The file's number (`NNNNNN.vlog`).
    pub number: FileNumber,
    /// Bytes of the file on disk (0 when it cannot be sized).
    pub size_bytes: u64,
    /// Bytes of its entries that flushes and compactions found overwritten
    /// or deleted (the manifest's discard count).
    pub garbage_bytes: u64,
}

/// One level's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LevelStats {
    /// Level number (0 = newest).
    pub level: usize,
    /// Tables in the level.
    pub tables: usize,
    /// Bytes of those tables on disk.
    pub bytes: u64,
    /// Compaction score (>= 1 means the level is due); L0 by table count.
    pub score: f64,
    /// Target size in bytes (0 for L0 and levels above the base level).
    pub target_bytes: u64,
    /// Bytes compactions read to produce this level's tables.
    pub compaction_read_bytes: u64,
    /// Bytes compactions wrote into this level.
    pub compaction_written_bytes: u64,
    /// What the level's tables would take with their data blocks stored
    /// raw (equal to `bytes` without compression; from each table's
    /// properties).
    pub raw_bytes: u64,
    /// How tables written into this level compress their data blocks.
    pub compression: Compression,
}

/// A snapshot of the database's figures, from [`crate::Db::stats`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Per level, L0 first.
    pub levels: Vec<LevelStats>,
    /// The level L0 compacts into.
    pub base_level: usize,
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
    /// Bytes of tables written by compactions.
    pub compaction_bytes_written: u64,
    /// Acknowledged writes.
    pub writes: u64,
    /// Commit groups (one WAL append each).
    pub write_groups: u64,
    /// Flushes completed.
    pub flushes: u64,
    /// Merge compactions completed.
    pub compactions: u64,
    /// Trivial moves completed.
    pub compaction_moves: u64,
    /// Range tombstones held by memtables and tables.
    pub range_tombstones: u64,
    /// Tables compactions deleted without reading them, a range tombstone
    /// covering all their entries.
    pub range_deleted_tables: u64,
    /// Merge compactions that only dropped garbage (bottom-level
    /// self-compactions, shadowed versions of an idle database); counted in
    /// `compactions` too.
    pub garbage_compactions: u64,
    /// Most compactions that ran at the same time.
    pub compactions_running_max: usize,
    /// Compactions running now.
    pub compactions_running: usize,
    /// Microseconds writers were delayed or stopped (memtable slots, L0).
    pub stall_micros: u64,
    /// Data blocks of the open tables whose checksum was verified (each
    /// block is verified on its first read after its table is opened; later
    /// reads come straight from the map).
    pub blocks_verified: u64,
    /// Live snapshot handles.
    pub snapshots: usize,
    /// Live value-log files, by ascending file number.
    pub vlog_files: Vec<VlogFileStats>,
    /// Bytes appended to value logs (writes and GC rewrites).
    pub vlog_bytes_written: u64,
    /// Value-log files garbage collected.
    pub vlog_gc_files: u64,
    /// Live entries rewritten by value-log GC.
    pub vlog_gc_rewritten: u64,
    /// The decoded-block cache's counters (`None` when
    /// `block_cache_bytes` is 0).
    pub block_cache: Option<BlockCacheStats>,
    /// Why the database refuses writes, if it does.
    pub health: Option<String>,
}

impl Stats {
    pub(crate) fn collect(db: &DbInner) -> Stats {
        let sv = db.super_version();
        let metas = sv.version.metas();
        let targets = LevelTargets::compute(&metas, &db.options().compaction);
        let c = db.counters();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let levels = metas
            .iter()
            .enumerate()
            .map(|(level, tables)| LevelStats {
                level,
                tables: tables.len(),
                bytes: tables.iter().map(|t| t.size_bytes).sum(),
                score: targets.scores.get(level).copied().unwrap_or(0.0),
                target_bytes: targets.target_bytes.get(level).copied().unwrap_or(0),
                compaction_read_bytes: c.compaction_read.get(level).map_or(0, load),
                compaction_written_bytes: c.compaction_written.get(level).map_or(0, load),
                raw_bytes: tables
                    .iter()
                    .map(|t| {
                        // A table that does not open counts as stored raw;
                        // reads of it report the damage.
                        db.table_cache().get(t.id).map_or(t.size_bytes, |table| {
                            let p = table.properties();
                            t.size_bytes - p.data_size_bytes.min(t.size_bytes)
                                + p.data_raw_size_bytes()
                        })
                    })
                    .sum(),
                compression: db.options().compression_for_level(level),
            })
            .collect();
        let (running, running_max) = db.compactions().running();
        let vlog_files = {
            let manifest = db.manifest().lock();
            manifest
                .state()
                .vlogs
                .iter()
                .map(|(&n, meta)| (n, meta.discard_bytes))
                .collect::<Vec<_>>()
        }
        .into_iter()
        .map(|(number, garbage_bytes)| {
            let path = jkv_format::names::vlog_path(db.dir(), number);
            VlogFileStats {
                number,
                size_bytes: db.fs().file_size(&path).unwrap_or(0),
                garbage_bytes,
            }
        })
        .collect();
        Stats {
            levels,
            base_level: targets.base_level,
            vlog_files,
            vlog_bytes_written: load(&c.vlog_bytes),
            vlog_gc_files: load(&c.vlog_gc_files),
            vlog_gc_rewritten: load(&c.vlog_gc_rewritten),
            memtable_bytes: sv.mem.approximate_memory_bytes() as u64,
            frozen_memtables: sv.imms.len(),
            user_bytes_written: load(&c.user_bytes),
            wal_bytes_written: load(&c.wal_bytes),
            flush_bytes_written: load(&c.flush_bytes),
            compaction_bytes_written: c.compaction_written.iter().map(load).sum(),
            writes: load(&c.writes),
            write_groups: load(&c.write_groups),
            flushes: load(&c.flushes),
            compactions: load(&c.compactions),
            compaction_moves: load(&c.compaction_moves),
            range_tombstones: (sv.mem.range_tombstone_count()
                + sv.imms
                    .iter()
                    .map(|f| f.mem.range_tombstone_count())
                    .sum::<usize>()) as u64
                + sv.version
                    .range_del_tables
                    .iter()
                    .map(|t| t.range_deletions)
                    .sum::<u64>(),
            range_deleted_tables: load(&c.range_deleted_tables),
            garbage_compactions: load(&c.garbage_compactions),
            compactions_running_max: running_max,
            compactions_running: running,
            stall_micros: load(&c.stall_micros),
            blocks_verified: db.table_cache().verified_block_count(),
            block_cache: db.table_cache().block_cache().map(|c| c.stats()),
            snapshots: db.snapshots().count(),
            health: db.workers().error().map(|e| e.to_string()),
        }
    }

    /// What all tables would take with their data blocks stored raw.
    pub fn table_raw_bytes(&self) -> u64 {
        self.levels.iter().map(|l| l.raw_bytes).sum()
    }

    /// Bytes in all tables.
    pub fn table_bytes(&self) -> u64 {
        self.levels.iter().map(|l| l.bytes).sum()
    }

    /// Bytes written to disk (WAL + flush + compaction + value log) per
    /// byte of user data; `None` before the first write.
    pub fn write_amplification(&self) -> Option<f64> {
        (self.user_bytes_written > 0).then(|| {
            (self.wal_bytes_written
                + self.flush_bytes_written
                + self.compaction_bytes_written
                + self.vlog_bytes_written) as f64
                / self.user_bytes_written as f64
        })
    }

    /// Bytes of all live value-log files.
    pub fn vlog_bytes(&self) -> u64 {
        self.vlog_files.iter().map(|f| f.size_bytes).sum()
    }

    /// Estimated space amplification: bytes in all tables over bytes in the
    /// last non-empty level (which, in a leveled tree, holds nearly all live
    /// data). Exact live bytes would need a full scan; `jkv-bench` measures
    /// them exactly. `None` when there are no tables.
    pub fn space_amplification_estimate(&self) -> Option<f64> {
        let bottom = self.levels.iter().rev().find(|l| l.bytes > 0)?;
        Some(self.table_bytes() as f64 / bottom.bytes as f64)
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("n/a".to_string(), |w| format!("{w:.2}"))
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "level tables   size_mib  target_mib  score  comp_read_mib  comp_write_mib"
        )?;
        for l in &self.levels {
            let marker = if l.level == self.base_level { "*" } else { " " };
            writeln!(
                f,
                "L{:<3}{} {:>6} {:>10.2} {:>11.2} {:>6.2} {:>14.2} {:>15.2}",
                l.level,
                marker,
                l.tables,
                mib(l.bytes),
                mib(l.target_bytes),
                l.score,
                mib(l.compaction_read_bytes),
                mib(l.compaction_written_bytes)
            )?;
        }
        writeln!(f, "(* base level: L0 compacts into it)")?;
        writeln!(
            f,
            "memtable {:.2} MiB, frozen memtables {}",
            mib(self.memtable_bytes),
            self.frozen_memtables
        )?;
        writeln!(
            f,
            "written: user {:.2} MiB, wal {:.2} MiB, flush {:.2} MiB, compaction {:.2} MiB, value log {:.2} MiB",
            mib(self.user_bytes_written),
            mib(self.wal_bytes_written),
            mib(self.flush_bytes_written),
            mib(self.compaction_bytes_written),
            mib(self.vlog_bytes_written),
        )?;
        writeln!(
            f,
            "write amplification {}, space amplification (estimate) {}",
            ratio(self.write_amplification()),
            ratio(self.space_amplification_estimate())
        )?;
        writeln!(
            f,
            "writes {} in {} groups, flushes {}, compactions {} (+{} moves, {} for garbage, {} running, max {} at once), stalled {:.3} s",
            self.writes,
            self.write_groups,
            self.flushes,
            self.compactions,
            self.compaction_moves,
            self.garbage_compactions,
            self.compactions_running,
            self.compactions_running_max,
            self.stall_micros as f64 / 1e6
        )?;
        writeln!(
            f,
            "range tombstones {}, tables deleted unread {}",
            self.range_tombstones, self.range_deleted_tables
        )?;
        let vlog_garbage: u64 = self.vlog_files.iter().map(|v| v.garbage_bytes).sum();
        writeln!(
            f,
            "value log: {} files, {:.2} MiB, garbage {:.2} MiB; written {:.2} MiB; GC collected {} files, rewrote {} entries",
            self.vlog_files.len(),
            mib(self.vlog_bytes()),
            mib(vlog_garbage),
            mib(self.vlog_bytes_written),
            self.vlog_gc_files,
            self.vlog_gc_rewritten
        )?;
        for v in &self.vlog_files {
            writeln!(
                f,
                "  {}.vlog {:.2} MiB, garbage {:.2} MiB ({:.0}%)",
                v.number,
                mib(v.size_bytes),
                mib(v.garbage_bytes),
                100.0 * v.garbage_bytes as f64 / v.size_bytes.max(1) as f64
            )?;
        }
        writeln!(
            f,
            "data blocks verified {}, live snapshots {}",
            self.blocks_verified, self.snapshots
        )?;
        writeln!(f, "level compression   stored_mib     raw_mib  stored/raw")?;
        for l in &self.levels {
            writeln!(
                f,
                "L{:<4} {:<11} {:>10.2} {:>11.2} {:>11.3}",
                l.level,
                l.compression.to_string(),
                mib(l.bytes),
                mib(l.raw_bytes),
                l.bytes as f64 / l.raw_bytes.max(1) as f64
            )?;
        }
        match &self.block_cache {
            Some(c) => writeln!(
                f,
                "block cache: {:.2} of {:.2} MiB, {} blocks; hits {}, misses {} (hit ratio {:.3}), inserts {}, evictions {}",
                mib(c.used_bytes),
                mib(c.capacity_bytes),
                c.entries,
                c.hits,
                c.misses,
                c.hit_ratio(),
                c.inserts,
                c.evictions
            )?,
            None => writeln!(f, "block cache: off")?,
        }
        match &self.health {
            Some(why) => write!(f, "health: READ-ONLY: {why}"),
            None => write!(f, "health: ok"),
        }
    }
}
