//! The `jkv` binary: the REPL on a database directory, and inspection tools
//! (`sst-dump`, `manifest-dump`, `check`) and `repair`.
#![forbid(unsafe_code)]

mod repl;
mod sensor;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use jkv::Compression;

/// jkv: an embedded LSM-tree key-value store.
#[derive(Debug, Parser)]
#[command(name = "jkv", version, about)]
struct Cli {
    /// Database directory for the REPL (created if missing).
    #[arg(long, default_value = "./jkv-data")]
    path: PathBuf,
    /// Acknowledge writes only once they are fsynced.
    #[arg(long)]
    sync: bool,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(subcommand)]
    tool: Option<Tool>,
}

/// The engine settings a user tries first, each with the engine's default
/// (`jkv::Options`; a unit test keeps the two in step).
#[derive(Debug, Args)]
struct EngineArgs {
    /// Run without a write-ahead log (close flushes the memtable).
    #[arg(long)]
    no_wal: bool,
    /// Memtable size in bytes before it is frozen and flushed to a table.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    write_buffer_size: usize,
    /// Frozen memtables waiting for flush before writers wait.
    #[arg(long, value_name = "N", default_value_t = 2)]
    max_immutable_memtables: usize,
    /// Values of at least this many bytes go to the value log (the tree
    /// keeps a pointer); `off` keeps every value in the tree.
    #[arg(long, value_name = "BYTES|off", default_value = "4096", value_parser = parse_value_threshold)]
    value_threshold: ValueThreshold,
    /// Target size in bytes of a table's data blocks.
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    block_size: usize,
    /// Bloom filter bits per key in each table; 0 disables filters.
    #[arg(long, value_name = "BITS", default_value_t = 10)]
    bloom_bits: usize,
    /// Compactions that may run at once (threads of the compaction pool).
    #[arg(long, value_name = "N", default_value_t = 2)]
    compaction_threads: usize,
    /// Only compact when asked (`compact`); never in the background.
    #[arg(long)]
    no_auto_compactions: bool,
    /// Number of levels, L0 included.
    #[arg(long, value_name = "N", default_value_t = 7)]
    num_levels: usize,
    /// L0 table count at which L0 is compacted.
    #[arg(long, value_name = "TABLES", default_value_t = 4)]
    l0_compaction_trigger: usize,
    /// Target size in bytes of the level L0 compacts into.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    base_level_size: u64,
    /// Size in bytes at which compaction cuts an output table.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    target_table_size: u64,
    /// Size in bytes at which the value log moves on to a new file.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    vlog_file_size: u64,
    /// Share of garbage at which a value-log file is collected.
    #[arg(long, value_name = "RATIO", default_value_t = 0.5)]
    vlog_gc_garbage_ratio: f64,
    /// Value-log bytes on disk kept within this many times the live value bytes.
    #[arg(long, value_name = "RATIO", default_value_t = 2.0)]
    vlog_space_amp_max: f64,
    /// Compression of each level's data blocks, L0 first, the last for every
    /// level below: none, lz4, zstd or zstd:LEVEL, comma-separated.
    #[arg(long, value_name = "LIST", default_value = "none,none,lz4", value_parser = parse_compression_list)]
    compression_per_level: CompressionList,
    /// The same compression for every level (overrides --compression-per-level).
    #[arg(long, value_name = "TYPE")]
    compression: Option<Compression>,
    /// Byte budget of the cache of decoded zstd blocks; 0 disables it.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    block_cache_bytes: u64,
    /// Compression of value-log entries' values.
    #[arg(long, value_name = "TYPE", default_value = "none")]
    vlog_compression: Compression,
}

/// `--value-threshold`: a byte count, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ValueThreshold(Option<usize>);

fn parse_value_threshold(s: &str) -> Result<ValueThreshold, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(ValueThreshold(None));
    }
    s.parse::<usize>()
        .map(|n| ValueThreshold(Some(n)))
        .map_err(|_| format!("{s:?} is neither a byte count nor `off`"))
}

/// `--compression-per-level`: one choice per level.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CompressionList(Vec<Compression>);

fn parse_compression_list(s: &str) -> Result<CompressionList, String> {
    Compression::parse_list(s).map(CompressionList)
}

impl EngineArgs {
    /// The engine options these arguments ask for (checked by `Db::open`).
    fn options(&self) -> jkv::Options {
        jkv::Options::default()
            .wal(!self.no_wal)
            .write_buffer_size(self.write_buffer_size)
            .max_immutable_memtables(self.max_immutable_memtables)
            .value_threshold(self.value_threshold.0)
            .block_size(self.block_size)
            .bloom_bits_per_key(self.bloom_bits)
            .compaction_threads(self.compaction_threads)
            .auto_compactions(!self.no_auto_compactions)
            .num_levels(self.num_levels)
            .l0_compaction_trigger(self.l0_compaction_trigger)
            .base_level_size(self.base_level_size)
            .target_table_size(self.target_table_size)
            .vlog_file_size(self.vlog_file_size)
            .vlog_gc_garbage_ratio(self.vlog_gc_garbage_ratio)
            .vlog_space_amp_max(self.vlog_space_amp_max)
            .compression_per_level(match self.compression {
                Some(c) => vec![c],
                None => self.compression_per_level.0.clone(),
            })
            .block_cache_bytes(self.block_cache_bytes)
            .vlog_compression(self.vlog_compression)
    }
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Print a table's footer, properties, index and entries.
    SstDump {
        /// The `.sst` file.
        file: PathBuf,
    },
    /// Print every record of a database's manifest.
    ManifestDump {
        /// The database directory.
        dir: PathBuf,
    },
    /// Verify every checksum of a database; exit 1 if anything is wrong.
    Check {
        /// The database directory.
        dir: PathBuf,
    },
    /// Rebuild a damaged database from whatever verifies; exit 2 if data was dropped.
    ///
    /// Reads every table block, WAL record and value-log entry of DIR and
    /// DIR/lost, keeps what verifies, writes it as new tables and a fresh
    /// manifest (the old one kept as MANIFEST.bad-<n>, damaged files moved
    /// to damaged-<n>/), and prints every damaged place it dropped (file,
    /// byte offset, what) and a summary. Exit 0 when nothing was dropped, 2
    /// when data was dropped (the database is consistent without it), 1
    /// when repair could not run. Takes the engine options given before the
    /// subcommand (e.g. `jkv --num-levels 5 repair DIR`).
    Repair {
        /// The database directory (closed: repair takes its lock).
        dir: PathBuf,
    },
    /// The sensor layer: `serve` (TCP ingest), `load`, `query`, `export`/`import` (MCAP), `register`, `channels`.
    Sensor(sensor::SensorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.tool {
        Some(Tool::SstDump { file }) => tools::sst_dump(&file),
        Some(Tool::ManifestDump { dir }) => tools::manifest_dump(&dir),
        Some(Tool::Check { dir }) => tools::check(&dir),
        Some(Tool::Repair { dir }) => tools::repair(&dir, cli.engine.options()),
        Some(Tool::Sensor(args)) => match sensor::run(args) {
            Ok(code) => return code,
            Err(e) => {
                eprintln!("ERR {e}");
                return ExitCode::FAILURE;
            }
        },
        None => repl::run(&cli.path, cli.engine.options(), cli.sync),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ERR {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_defaults_are_the_engine_defaults() {
        let cli = Cli::try_parse_from(["jkv"]).unwrap();
        assert_eq!(
            format!("{:?}", cli.engine.options()),
            format!("{:?}", jkv::Options::default())
        );
    }

    #[test]
    fn flags_reach_the_options() {
        let cli = Cli::try_parse_from([
            "jkv",
            "--value-threshold",
            "off",
            "--bloom-bits",
            "0",
            "--block-size",
            "8192",
            "--compaction-threads",
            "3",
            "--write-buffer-size",
            "65536",
        ])
        .unwrap();
        let shown = format!("{:?}", cli.engine.options());
        for field in [
            "value_threshold: None",
            "bloom_bits_per_key: 0",
            "block_size: 8192",
            "compaction_threads: 3",
            "write_buffer_size: 65536",
        ] {
            assert!(shown.contains(field), "{field} missing from {shown}");
        }
        let cli = Cli::try_parse_from([
            "jkv",
            "--compression-per-level",
            "none,lz4,zstd:9",
            "--block-cache-bytes",
            "0",
            "--vlog-compression",
            "lz4",
        ])
        .unwrap();
        let shown = format!("{:?}", cli.engine.options());
        for field in [
            "compression_per_level: [None, Lz4, Zstd { level: 9 }]",
            "block_cache_bytes: 0",
            "vlog_compression: Lz4",
        ] {
            assert!(shown.contains(field), "{field} missing from {shown}");
        }
        let cli = Cli::try_parse_from(["jkv", "--compression", "zstd"]).unwrap();
        let shown = format!("{:?}", cli.engine.options());
        assert!(
            shown.contains("compression_per_level: [Zstd { level: 3 }]"),
            "{shown}"
        );
        assert!(Cli::try_parse_from(["jkv", "--compression", "snappy"]).is_err());
        assert!(Cli::try_parse_from(["jkv", "--compression-per-level", "lz4,zstd:99"]).is_err());
        let cli = Cli::try_parse_from(["jkv", "--value-threshold", "100"]).unwrap();
        assert_eq!(cli.engine.value_threshold, ValueThreshold(Some(100)));
        assert!(Cli::try_parse_from(["jkv", "--value-threshold", "big"]).is_err());
    }
}
