//! Command-line flags in db_bench's style: `--name=value` (or `--name value`),
//! booleans as `--sync`, `--sync=1`, `--sync=true` or `--sync=0`. Names and
//! defaults follow RocksDB's db_bench where it has the flag; `--engine` and
//! `--value_threshold` are jkv-bench's own.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Every benchmark name `--benchmarks` accepts.
pub const BENCHMARKS: &[&str] = &[
    "fillseq",
    "fillrandom",
    "overwrite",
    "readrandom",
    "readseq",
    "readreverse",
    "seekrandom",
    "deleterandom",
    "deleterange",
    "flush",
    "fillsync",
    "readwhilewriting",
    "compact",
    "waitforcompaction",
    "stats",
    "fsyncrate",
    "fsyncsized",
    "ecs_get",
    "ecs_update",
    "ecs_range",
    "ecs_upsert",
    "ecs_transfer",
];

/// The engine under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// This project's engine.
    Jkv,
    /// fjall 3 (an LSM-tree in Rust), with the `fjall` feature.
    Fjall,
    /// redb 3 (a copy-on-write B-tree in Rust), with the `redb` feature.
    Redb,
    /// RocksDB (C++), built from source in release by the `rocksdb` feature.
    Rocksdb,
}

impl EngineKind {
    /// The name used on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Jkv => "jkv",
            EngineKind::Fjall => "fjall",
            EngineKind::Redb => "redb",
            EngineKind::Rocksdb => "rocksdb",
        }
    }
}

/// Parsed flags. `Flags::default()` holds the defaults listed in [`USAGE`].
#[derive(Clone, Debug, PartialEq)]
pub struct Flags {
    /// Benchmarks to run, in order.
    pub benchmarks: Vec<String>,
    /// Engine under test.
    pub engine: EngineKind,
    /// Key space size, and the writes per thread of the fill benchmarks.
    pub num: u64,
    /// Rows of the ECS item table (`ecs_get`, `ecs_update`, `ecs_range`, `ecs_upsert`).
    pub ecs_rows: u64,
    /// Accounts of `ecs_transfer`.
    pub ecs_accounts: u64,
    /// Zipf exponent of `ecs_transfer`'s account choice (0 = uniform).
    pub zipf_alpha: f64,
    /// Flush and compact the loaded ECS table before the timed part.
    pub ecs_compact: bool,
    /// Reads per thread; `None` means `num`.
    pub reads: Option<u64>,
    /// Writes per thread; `None` means `num`.
    pub writes: Option<u64>,
    /// Key length in bytes (zero-padded decimal).
    pub key_size: usize,
    /// Value length in bytes.
    pub value_size: usize,
    /// Threads per benchmark; each does the full count, as in db_bench.
    pub threads: usize,
    /// When above zero, run each benchmark for this many seconds instead of a count.
    pub duration_secs: u64,
    /// Database directory.
    pub db: PathBuf,
    /// Reuse the database in `db` instead of starting fresh.
    pub use_existing_db: bool,
    /// Every write waits for fsync.
    pub sync: bool,
    /// Writes skip the write-ahead log.
    pub disable_wal: bool,
    /// Memtable size in bytes.
    pub write_buffer_size: usize,
    /// Block cache size in bytes.
    pub cache_size: usize,
    /// Bloom filter bits per key (0 = no filter).
    pub bloom_bits: usize,
    /// Background compaction threads (jkv); `None`: the engine's default.
    pub max_background_compactions: Option<usize>,
    /// Block compression on every level: `none`, `lz4`, `zstd` or
    /// `zstd:LEVEL` (as db_bench's `--compression_type`; jkv also
    /// compresses value-log entries with it when `--value_threshold` is on).
    pub compression_type: jkv::Compression,
    /// jkv only: compression per level (L0 first, the last for the levels
    /// below), overriding `compression_type` for tables.
    pub compression_per_level: Option<Vec<jkv::Compression>>,
    /// Values are generated to compress to about this fraction of their
    /// size, as db_bench's generator does (default 0.5).
    pub compression_ratio: f64,
    /// Entries read after each seek in `seekrandom`.
    pub seek_nexts: usize,
    /// Values at least this long go to the value log (jkv) or blob files
    /// (fjall); `None` keeps every value in the tree.
    pub value_threshold: Option<usize>,
    /// Seed of the key generators (thread `i` of a benchmark uses a derived seed).
    pub seed: u64,
    /// Range tombstones `deleterange` writes.
    pub range_deletes: u64,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            benchmarks: "fillseq,fillrandom,overwrite,readrandom,readseq,readreverse,seekrandom,deleterandom,compact,stats"
                .split(',')
                .map(str::to_string)
                .collect(),
            engine: EngineKind::Jkv,
            num: 1_000_000,
            reads: None,
            writes: None,
            key_size: 16,
            value_size: 100,
            threads: 1,
            duration_secs: 0,
            db: std::env::temp_dir().join("jkv-bench-db"),
            use_existing_db: false,
            sync: false,
            disable_wal: false,
            write_buffer_size: 64 << 20,
            cache_size: 8 << 20,
            bloom_bits: 10,
            max_background_compactions: None,
            compression_type: jkv::Compression::None,
            compression_ratio: 0.5,
            compression_per_level: None,
            seek_nexts: 0,
            value_threshold: None,
            seed: 301,
            range_deletes: 1000,
            ecs_rows: 30_000,
            ecs_accounts: 100_000,
            zipf_alpha: 0.0,
            ecs_compact: false,
        }
    }
}

/// `--help` text.
pub const USAGE: &str = "\
jkv-bench: db_bench-compatible workloads for jkv (and, with cargo features, fjall, redb and rocksdb)

USAGE: jkv-bench [--flag=value ...]

  --benchmarks=LIST       comma-separated, run in order (default fillseq,fillrandom,overwrite,
                          readrandom,readseq,readreverse,seekrandom,deleterandom,compact,stats);
                          also fillsync, readwhilewriting, deleterange (--range_deletes
                          range tombstones of one random key each, [key(r), key(r+1))),
                          flush (memtables to tables), waitforcompaction (waits until
                          background compaction has nothing left to do; its time is the
                          wait), and the disk probes fsyncrate (append + fdatasync) and
                          fsyncsized (the same into a pre-sized file);
                          ECS tables (jkv only): ecs_get, ecs_update, ecs_range, ecs_upsert,
                          ecs_transfer, each on a fresh database
  --engine=jkv|fjall|redb|rocksdb
                          engine under test (fjall, redb and rocksdb need the cargo features of
                          that name; rocksdb is RocksDB's C++ library built in release)
  --num=N                 key space; writes per thread of fill benchmarks (default 1000000)
  --reads=N               reads per thread (default: --num)
  --writes=N              writes per thread (default: --num)
  --key_size=N            key bytes, zero-padded decimal (default 16)
  --value_size=N          value bytes (default 100)
  --threads=N             threads; each does the full count, the line reports the total (default 1)
  --duration=SECS         run each benchmark this long instead of a count (default 0: off)
  --db=DIR                database directory (default $TMPDIR/jkv-bench-db)
  --use_existing_db=0|1   keep the database in --db (default 0: fill benchmarks start fresh)
  --sync=0|1              fsync every write (default 0)
  --disable_wal=0|1       skip the write-ahead log (default 0)
  --write_buffer_size=B   memtable bytes (default 67108864)
  --cache_size=B          block cache bytes (default 8388608; jkv: its cache of decoded
                          compressed blocks, uncompressed blocks are read from the map
                          and the OS page cache holds them)
  --bloom_bits=N          bloom filter bits per key, 0 = none (default 10)
  --ecs_rows=N            rows of the ECS item table (default 30000)
  --ecs_accounts=N        accounts of ecs_transfer (default 100000)
  --zipf_alpha=A          Zipf exponent of ecs_transfer's accounts, 0 = uniform (default 0)
  --ecs_compact=0|1       flush and compact the loaded ECS table first, so reads come from
                          sorted tables rather than the memtable (default 0)
  --max_background_compactions=N
                          compaction threads (jkv; default: the engine's, 2)
  --compression_type=T    none, lz4, zstd or zstd:LEVEL on every level (default none; fjall:
                          none or lz4); jkv also compresses value-log entries with it
  --compression_per_level=LIST
                          jkv only: table compression per level, L0 first (e.g.
                          none,none,lz4), overriding --compression_type for tables
  --compression_ratio=R   values compress to about R of their size, db_bench's generator
                          (default 0.5; 1 = random bytes)
  --seek_nexts=N          entries read after each seek in seekrandom (default 0)
  --value_threshold=B     key-value separation for values >= B bytes (jkv's value log, fjall's
                          and rocksdb's blob files; default off)
  --seed=N                key generator seed (default 301)
  --range_deletes=N       range tombstones written by deleterange (default 1000; jkv only)
";

/// Parses `args` (without the program name). `Ok(None)` means `--help`.
pub fn parse<I, S>(args: I) -> Result<Option<Flags>>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut flags = Flags::default();
    let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_string()).collect();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--help" || arg == "-h" {
            return Ok(None);
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(Error::Flag(format!(
                "unexpected argument {arg:?}; flags look like --name=value"
            )));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let is_bool = matches!(name, "use_existing_db" | "sync" | "disable_wal");
        let value = match inline {
            Some(v) => v,
            None if is_bool => "1".to_string(),
            None => {
                let v = args
                    .get(i)
                    .ok_or_else(|| Error::Flag(format!("--{name} needs a value")))?;
                i += 1;
                v.clone()
            }
        };
        set(&mut flags, name, &value)?;
    }
    check(&flags)?;
    Ok(Some(flags))
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::Flag(format!("--{name}={value}: not a number")))
}

fn boolean(name: &str, value: &str) -> Result<bool> {
    match value {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(Error::Flag(format!(
            "--{name}={value}: expected 0, 1, true or false"
        ))),
    }
}

fn set(flags: &mut Flags, name: &str, value: &str) -> Result<()> {
    match name {
        "benchmarks" => {
            flags.benchmarks = value
                .split(',')
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_string)
                .collect();
        }
        "engine" => {
            flags.engine = match value {
                "jkv" => EngineKind::Jkv,
                "fjall" => EngineKind::Fjall,
                "redb" => EngineKind::Redb,
                "rocksdb" => EngineKind::Rocksdb,
                _ => {
                    return Err(Error::Flag(format!(
                        "--engine={value}: expected jkv, fjall, redb or rocksdb"
                    )))
                }
            }
        }
        "num" => flags.num = number(name, value)?,
        // db_bench uses -1 for "same as --num".
        "reads" => flags.reads = optional_count(name, value)?,
        "writes" => flags.writes = optional_count(name, value)?,
        "key_size" => flags.key_size = number(name, value)?,
        "value_size" => flags.value_size = number(name, value)?,
        "threads" => flags.threads = number(name, value)?,
        "duration" => flags.duration_secs = number(name, value)?,
        "db" => flags.db = PathBuf::from(value),
        "use_existing_db" => flags.use_existing_db = boolean(name, value)?,
        "sync" => flags.sync = boolean(name, value)?,
        "disable_wal" => flags.disable_wal = boolean(name, value)?,
        "write_buffer_size" => flags.write_buffer_size = number(name, value)?,
        "cache_size" => flags.cache_size = number(name, value)?,
        "bloom_bits" => flags.bloom_bits = number(name, value)?,
        "max_background_compactions" => {
            flags.max_background_compactions = Some(number(name, value)?)
        }
        "compression_type" => {
            flags.compression_type = value
                .parse()
                .map_err(|e| Error::Flag(format!("--compression_type={value}: {e}")))?
        }
        "compression_ratio" => flags.compression_ratio = number(name, value)?,
        "compression_per_level" => {
            flags.compression_per_level = Some(
                jkv::Compression::parse_list(value)
                    .map_err(|e| Error::Flag(format!("--compression_per_level={value}: {e}")))?,
            )
        }
        "seek_nexts" => flags.seek_nexts = number(name, value)?,
        "value_threshold" => {
            let v: usize = number(name, value)?;
            flags.value_threshold = (v > 0).then_some(v);
        }
        "seed" => flags.seed = number(name, value)?,
        "range_deletes" => flags.range_deletes = number(name, value)?,
        "ecs_rows" => flags.ecs_rows = number(name, value)?,
        "ecs_accounts" => flags.ecs_accounts = number(name, value)?,
        "zipf_alpha" => flags.zipf_alpha = number(name, value)?,
        "ecs_compact" => flags.ecs_compact = boolean(name, value)?,
        _ => return Err(Error::Flag(format!("unknown flag --{name}; see --help"))),
    }
    Ok(())
}

fn optional_count(name: &str, value: &str) -> Result<Option<u64>> {
    let v: i64 = number(name, value)?;
    Ok(u64::try_from(v).ok())
}

fn check(flags: &Flags) -> Result<()> {
    for b in &flags.benchmarks {
        if !BENCHMARKS.contains(&b.as_str()) {
            return Err(Error::Flag(format!(
                "unknown benchmark {b:?}; known: {}",
                BENCHMARKS.join(",")
            )));
        }
    }
    if !(flags.compression_ratio > 0.0 && flags.compression_ratio <= 1.0) {
        return Err(Error::Flag(format!(
            "--compression_ratio={}: must be in (0, 1]",
            flags.compression_ratio
        )));
    }
    if flags.threads == 0 {
        return Err(Error::Flag("--threads must be at least 1".into()));
    }
    if flags.num == 0 {
        return Err(Error::Flag("--num must be at least 1".into()));
    }
    let digits = (flags.num - 1).max(1).ilog10() as usize + 1;
    if flags.key_size < digits {
        return Err(Error::Flag(format!(
            "--key_size={} cannot hold the {digits}-digit keys of --num={}",
            flags.key_size, flags.num
        )));
    }
    Ok(())
}

impl Flags {
    /// Reads per thread.
    pub fn reads(&self) -> u64 {
        self.reads.unwrap_or(self.num)
    }

    /// Writes per thread.
    pub fn writes(&self) -> u64 {
        self.writes.unwrap_or(self.num)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_db_bench_style_flags() {
        let f = parse([
            "--benchmarks=fillseq,readrandom",
            "--num=2000",
            "--reads",
            "500",
            "--sync",
            "--use_existing_db=0",
            "--disable_wal=true",
            "--value_threshold=1024",
            "--engine=jkv",
            "--reads=-1",
            "--range_deletes=25",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(f.benchmarks, vec!["fillseq", "readrandom"]);
        assert_eq!(f.num, 2000);
        assert_eq!(f.reads, None, "-1 means the same as --num, as in db_bench");
        assert_eq!(f.reads(), 2000);
        assert!(f.sync);
        assert!(!f.use_existing_db);
        assert!(f.disable_wal);
        assert_eq!(f.value_threshold, Some(1024));
        assert_eq!(f.engine, EngineKind::Jkv);
        assert_eq!(f.key_size, 16);
        assert_eq!(f.range_deletes, 25);
        assert_eq!(Flags::default().range_deletes, 1000);
    }

    #[test]
    fn refuses_bad_flags() {
        assert!(matches!(parse(["--nope=1"]), Err(Error::Flag(_))));
        assert!(matches!(parse(["--num=x"]), Err(Error::Flag(_))));
        assert!(matches!(parse(["--benchmarks=fly"]), Err(Error::Flag(_))));
        assert!(matches!(
            parse(["--compression_type=snappy"]),
            Err(Error::Flag(_))
        ));
        assert!(matches!(
            parse(["--num=100000", "--key_size=4"]),
            Err(Error::Flag(_))
        ));
        assert!(matches!(parse(["--sync=maybe"]), Err(Error::Flag(_))));
        assert!(matches!(
            parse(["--compression_ratio=0"]),
            Err(Error::Flag(_))
        ));
        let f = parse(["--compression_type=zstd:7", "--compression_ratio=0.25"])
            .unwrap()
            .unwrap();
        assert_eq!(f.compression_type, jkv::Compression::Zstd { level: 7 });
        assert_eq!(f.compression_ratio, 0.25);
        assert_eq!(Flags::default().compression_ratio, 0.5);
        let f = parse(["--compression_per_level=none,lz4"])
            .unwrap()
            .unwrap();
        assert_eq!(
            f.compression_per_level,
            Some(vec![jkv::Compression::None, jkv::Compression::Lz4])
        );
        assert!(parse(["--compression_per_level=lz9"]).is_err());
        assert!(matches!(parse(["--help"]), Ok(None)));
    }
}
