//! `Options` (how a database is opened) and `WriteOptions` (how one write is
//! made durable). Every setting has a documented default and a chainable
//! setter; `Options::validate` checks them once, in `Db::open`.

use std::fmt;
use std::sync::Arc;

use jkv_compaction::CompactionConfig;
use jkv_format::{Compression, Error, FileSystem, Result, StdFs};

/// How to open a database. `Options::default()` gives the documented defaults.
#[derive(Clone)]
pub struct Options {
    pub(crate) create_if_missing: bool,
    pub(crate) error_if_exists: bool,
    pub(crate) write_buffer_size: usize,
    pub(crate) max_immutable_memtables: usize,
    pub(crate) wal: bool,
    pub(crate) block_size: usize,
    pub(crate) bloom_bits_per_key: usize,
    pub(crate) max_open_tables: usize,
    pub(crate) num_levels: usize,
    pub(crate) manifest_rewrite_threshold_bytes: u64,
    pub(crate) compaction: CompactionConfig,
    pub(crate) compaction_threads: usize,
    pub(crate) auto_compactions: bool,
    pub(crate) value_threshold: Option<usize>,
    pub(crate) vlog_file_size: u64,
    pub(crate) vlog_gc_garbage_ratio: f64,
    pub(crate) vlog_space_amp_max: f64,
    pub(crate) compression_per_level: Vec<Compression>,
    pub(crate) block_cache_bytes: u64,
    pub(crate) vlog_compression: Compression,
    pub(crate) fs: Arc<dyn FileSystem>,
}

/// The default compression of each level's tables (levels below the last
/// entry use the last): none for level 0 and 1, whose tables are rewritten
/// soon after they are written (compressing them costs flush and compaction
/// time for space held briefly), LZ4 below, where nearly all the data
/// lives. Chosen by measurement: docs/benchmarks.md, "Compression".
pub const DEFAULT_COMPRESSION_PER_LEVEL: [Compression; 3] =
    [Compression::None, Compression::None, Compression::Lz4];

/// Default byte budget of the decoded-block cache (64 MiB).
pub const DEFAULT_BLOCK_CACHE_BYTES: u64 = 64 << 20;

impl Default for Options {
    fn default() -> Self {
        Options {
            create_if_missing: true,
            error_if_exists: false,
            write_buffer_size: 64 << 20,
            max_immutable_memtables: 2,
            wal: true,
            block_size: 4096,
            bloom_bits_per_key: 10,
            max_open_tables: 1000,
            num_levels: 7,
            manifest_rewrite_threshold_bytes: 4 << 20,
            compaction: CompactionConfig::default(),
            compaction_threads: 2,
            auto_compactions: true,
            value_threshold: Some(4096),
            vlog_file_size: 256 << 20,
            vlog_gc_garbage_ratio: 0.5,
            vlog_space_amp_max: 2.0,
            compression_per_level: DEFAULT_COMPRESSION_PER_LEVEL.to_vec(),
            block_cache_bytes: DEFAULT_BLOCK_CACHE_BYTES,
            vlog_compression: Compression::None,
            fs: Arc::new(StdFs),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("create_if_missing", &self.create_if_missing)
            .field("error_if_exists", &self.error_if_exists)
            .field("write_buffer_size", &self.write_buffer_size)
            .field("max_immutable_memtables", &self.max_immutable_memtables)
            .field("wal", &self.wal)
            .field("block_size", &self.block_size)
            .field("bloom_bits_per_key", &self.bloom_bits_per_key)
            .field("max_open_tables", &self.max_open_tables)
            .field("num_levels", &self.num_levels)
            .field(
                "manifest_rewrite_threshold_bytes",
                &self.manifest_rewrite_threshold_bytes,
            )
            .field("compaction", &self.compaction)
            .field("compaction_threads", &self.compaction_threads)
            .field("auto_compactions", &self.auto_compactions)
            .field("value_threshold", &self.value_threshold)
            .field("vlog_file_size", &self.vlog_file_size)
            .field("vlog_gc_garbage_ratio", &self.vlog_gc_garbage_ratio)
            .field("vlog_space_amp_max", &self.vlog_space_amp_max)
            .field("compression_per_level", &self.compression_per_level)
            .field("block_cache_bytes", &self.block_cache_bytes)
            .field("vlog_compression", &self.vlog_compression)
            .field("fs", &self.fs)
            .finish()
    }
}

impl Options {
    /// An empty memtable for this configuration: with a key filter of
    /// 1/16 of the write buffer (see `jkv_memtable::Memtable::with_key_filter`).
    pub(crate) fn new_memtable(&self) -> jkv_memtable::Memtable {
        jkv_memtable::Memtable::with_key_filter(self.write_buffer_size / 16)
    }

    /// How tables written into `level` compress their data blocks.
    pub(crate) fn compression_for_level(&self, level: usize) -> Compression {
        let n = self.compression_per_level.len();
        self.compression_per_level
            .get(level.min(n.saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    }
}

impl Options {
    /// Create the database when the directory holds none. Default: true.
    pub fn create_if_missing(mut self, yes: bool) -> Self {
        self.create_if_missing = yes;
        self
    }

    /// Fail when a database already exists. Default: false.
    pub fn error_if_exists(mut self, yes: bool) -> Self {
        self.error_if_exists = yes;
        self
    }

    /// Memtable size in bytes (approximate memory, keys + values + index)
    /// at which it is frozen and flushed to a table. Default: 64 MiB.
    /// Minimum 4 KiB.
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Frozen memtables waiting for flush before writers wait. Default: 2.
    pub fn max_immutable_memtables(mut self, n: usize) -> Self {
        self.max_immutable_memtables = n;
        self
    }

    /// Write a write-ahead log. Default: true. Without it, writes since the
    /// last flush are lost if the process dies; `close` still flushes them.
    pub fn wal(mut self, yes: bool) -> Self {
        self.wal = yes;
        self
    }

    /// Target size of a table's data blocks in bytes. Default: 4096.
    pub fn block_size(mut self, bytes: usize) -> Self {
        self.block_size = bytes;
        self
    }

    /// Bloom filter bits per key in each table; 0 disables filters.
    /// Default: 10 (about 1% false positives).
    pub fn bloom_bits_per_key(mut self, bits: usize) -> Self {
        self.bloom_bits_per_key = bits;
        self
    }

    /// Tables kept open (mapped) at once. Default: 1000.
    pub fn max_open_tables(mut self, n: usize) -> Self {
        self.max_open_tables = n;
        self
    }

    /// Number of levels, L0 included. Default: 7. Range 2..=16.
    pub fn num_levels(mut self, n: usize) -> Self {
        self.num_levels = n;
        self.compaction.num_levels = n;
        self
    }

    /// L0 table count at which L0 is compacted. Default: 4.
    pub fn l0_compaction_trigger(mut self, tables: usize) -> Self {
        self.compaction.l0_trigger = tables;
        self
    }

    /// L0 table count at which writes are slowed down, more the further L0
    /// grows past it. Default: 8.
    pub fn l0_slowdown_writes_trigger(mut self, tables: usize) -> Self {
        self.compaction.l0_slowdown = tables;
        self
    }

    /// L0 table count at which writes wait for compaction. Default: 12.
    pub fn l0_stop_writes_trigger(mut self, tables: usize) -> Self {
        self.compaction.l0_stop = tables;
        self
    }

    /// Target size in bytes of the base level (the level L0 compacts
    /// into); deeper levels grow by `level_size_multiplier`. Default: 256 MiB.
    pub fn base_level_size(mut self, bytes: u64) -> Self {
        self.compaction.base_level_bytes = bytes;
        self
    }

    /// Size ratio between adjacent levels. Default: 10.
    pub fn level_size_multiplier(mut self, ratio: u64) -> Self {
        self.compaction.level_multiplier = ratio;
        self
    }

    /// Size in bytes at which compaction cuts an output table (at a key
    /// boundary). Default: 64 MiB.
    pub fn target_table_size(mut self, bytes: u64) -> Self {
        self.compaction.target_table_bytes = bytes;
        self
    }

    /// Compactions that may run at once (threads of the compaction pool).
    /// Default: 2.
    pub fn compaction_threads(mut self, n: usize) -> Self {
        self.compaction_threads = n;
        self
    }

    /// Run compactions in the background as levels pass their targets.
    /// Default: true. When off, only `compact_range` compacts and writes
    /// are never slowed down for L0.
    pub fn auto_compactions(mut self, yes: bool) -> Self {
        self.auto_compactions = yes;
        self
    }

    /// Manifest size in bytes past which it is rewritten as one snapshot
    /// record. Default: 4 MiB.
    pub fn manifest_rewrite_threshold_bytes(mut self, bytes: u64) -> Self {
        self.manifest_rewrite_threshold_bytes = bytes;
        self
    }

    /// Values of at least this many bytes are stored once in the value log
    /// and the tree holds a 20-byte pointer to them (KV separation), so
    /// compactions do not rewrite them. `None` keeps every value in the
    /// tree. Default: `Some(4096)`. Minimum 32.
    pub fn value_threshold(mut self, bytes: Option<usize>) -> Self {
        self.value_threshold = bytes;
        self
    }

    /// Share of a last-level table's entries, in percent (1..=100), that
    /// tombstones and older versions kept for snapshots must reach for the
    /// table to be compacted into itself once no snapshot needs them
    /// (docs/compaction.md, "Garbage compactions"). Default: 20.
    pub fn garbage_compaction_percent(mut self, percent: u64) -> Self {
        self.compaction.garbage_percent_min = percent;
        self
    }

    /// Share of the tree's bytes, in percent (1..=100), that an idle merge
    /// must reclaim (estimated) for an idle database to merge a level down
    /// (docs/compaction.md, "Garbage compactions"). Default: 2.
    pub fn idle_garbage_percent(mut self, percent: u64) -> Self {
        self.compaction.idle_garbage_percent_min = percent;
        self
    }

    /// Share of the bytes an idle merge rewrites, in percent (0..=100),
    /// that it must reclaim (estimated): 20, the default, allows at most
    /// five bytes written per byte reclaimed; 0 merges whatever reaches
    /// [`Self::idle_garbage_percent`] (docs/compaction.md, "Garbage
    /// compactions").
    pub fn idle_garbage_yield_percent(mut self, percent: u64) -> Self {
        self.compaction.idle_garbage_yield_percent_min = percent;
        self
    }

    /// Size in bytes at which the value log moves on to a new file.
    /// Default: 256 MiB.
    pub fn vlog_file_size(mut self, bytes: u64) -> Self {
        self.vlog_file_size = bytes;
        self
    }

    /// Share of garbage (overwritten or deleted values) at which a value-log
    /// file is garbage collected. Default: 0.5.
    pub fn vlog_gc_garbage_ratio(mut self, ratio: f64) -> Self {
        self.vlog_gc_garbage_ratio = ratio;
        self
    }

    /// Space budget of the value log: garbage collection keeps its bytes on
    /// disk within this many times the bytes of live values, collecting as
    /// many files as it takes. Default: 2.0.
    pub fn vlog_space_amp_max(mut self, ratio: f64) -> Self {
        self.vlog_space_amp_max = ratio;
        self
    }

    /// How each level's tables compress their data blocks: entry `i` for
    /// level `i`, the last entry for every level below (flushes write
    /// level 0). Default [`DEFAULT_COMPRESSION_PER_LEVEL`]: none, none,
    /// lz4. A block that would not shrink by 1/8 is stored raw. At least
    /// one entry. It applies when a table is written: a table moved down a
    /// level unchanged (a trivial move) keeps its blocks as they are, and
    /// tables written by older versions or other settings stay readable.
    pub fn compression_per_level(mut self, per_level: Vec<Compression>) -> Self {
        self.compression_per_level = per_level;
        self
    }

    /// The same compression for every level (like db_bench's
    /// `--compression_type`).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression_per_level = vec![compression];
        self
    }

    /// Byte budget of the cache of decoded compressed blocks (a W-TinyLFU
    /// cache shared by all tables). Default 64 MiB; 0 turns it off (every
    /// read of a compressed block decodes it). It holds zstd blocks:
    /// uncompressed blocks are read from the mapped file, and LZ4 blocks
    /// decoded on every read (about as cheap as a cache hit), never cached.
    pub fn block_cache_bytes(mut self, bytes: u64) -> Self {
        self.block_cache_bytes = bytes;
        self
    }

    /// How value-log entries compress their values. Default none: large
    /// values (camera frames, archives) are often compressed already. A
    /// value that would not shrink by 1/8 is stored raw.
    pub fn vlog_compression(mut self, compression: Compression) -> Self {
        self.vlog_compression = compression;
        self
    }

    /// The file system every file goes through. Default: the real one
    /// ([`StdFs`]); tests pass a simulated one.
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        if self.write_buffer_size < 4096 {
            return bad(format!(
                "write_buffer_size {} is below the minimum of 4096 bytes",
                self.write_buffer_size
            ));
        }
        if self.max_immutable_memtables == 0 {
            return bad("max_immutable_memtables must be at least 1".into());
        }
        if !(256..=(1 << 24)).contains(&self.block_size) {
            return bad(format!(
                "block_size {} must be between 256 bytes and 16 MiB",
                self.block_size
            ));
        }
        if self.bloom_bits_per_key > 64 {
            return bad(format!(
                "bloom_bits_per_key {} is above the maximum of 64",
                self.bloom_bits_per_key
            ));
        }
        if self.max_open_tables < 16 {
            return bad("max_open_tables must be at least 16".into());
        }
        if !(2..=16).contains(&self.num_levels) {
            return bad(format!(
                "num_levels {} must be between 2 and 16",
                self.num_levels
            ));
        }
        if self.compaction_threads == 0 || self.compaction_threads > 64 {
            return bad(format!(
                "compaction_threads {} must be between 1 and 64",
                self.compaction_threads
            ));
        }
        self.compaction.validate().map_err(Error::InvalidArgument)?;
        if self.value_threshold.is_some_and(|t| t < 32) {
            return bad("value_threshold must be at least 32 bytes (or None)".into());
        }
        if self.vlog_file_size < 4096 {
            return bad("vlog_file_size must be at least 4096 bytes".into());
        }
        if !(self.vlog_gc_garbage_ratio > 0.0 && self.vlog_gc_garbage_ratio <= 1.0) {
            return bad("vlog_gc_garbage_ratio must be in (0, 1]".into());
        }
        if self.vlog_space_amp_max.is_nan() || self.vlog_space_amp_max < 1.0 {
            return bad("vlog_space_amp_max must be at least 1.0".into());
        }
        if self.compression_per_level.is_empty() {
            return bad("compression_per_level needs at least one entry".into());
        }
        if self.compression_per_level.len() > self.num_levels {
            return bad(format!(
                "compression_per_level has {} entries for {} levels",
                self.compression_per_level.len(),
                self.num_levels
            ));
        }
        if self.manifest_rewrite_threshold_bytes < 1024 {
            return bad("manifest_rewrite_threshold_bytes must be at least 1024".into());
        }
        Ok(())
    }
}

/// How one write is made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Acknowledge only after the WAL is fsynced (the write then survives a
    /// machine crash). Writes grouped with a synced write share its fsync.
    /// Without it, an acknowledged write survives a crash of this process
    /// but may be lost, together with every later write, if the machine
    /// crashes. Default: false.
    pub sync: bool,
}

impl WriteOptions {
    /// Synced writes.
    pub const SYNC: WriteOptions = WriteOptions { sync: true };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_refused() {
        Options::default().validate().unwrap();
        assert!(Options::default().write_buffer_size(10).validate().is_err());
        assert!(Options::default()
            .garbage_compaction_percent(0)
            .validate()
            .is_err());
        assert!(Options::default()
            .idle_garbage_percent(101)
            .validate()
            .is_err());
        assert!(Options::default()
            .idle_garbage_yield_percent(101)
            .validate()
            .is_err());
        Options::default()
            .idle_garbage_yield_percent(0)
            .validate()
            .unwrap();
        assert!(Options::default().num_levels(1).validate().is_err());
        assert!(Options::default().block_size(1).validate().is_err());
        assert!(Options::default()
            .max_immutable_memtables(0)
            .validate()
            .is_err());
    }
}
