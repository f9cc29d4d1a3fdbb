//! Small seeded workloads for crash and fault tests, run against a `Db` on a
//! [`SimFs`], with the model state after every write and the file-system
//! operation boundaries at which each write started and was acknowledged,
//! so a crash state at any boundary can be judged: which prefixes of the
//! writes it may hold.
//!
//! Two mixes: [`workload`] with [`crash_options`] (puts, deletes, flushes,
//! a reopen; values stay in the tree) and [`gc_workload`] with
//! [`gc_crash_options`] (values of 64 bytes or more in 4 KiB value-log
//! files, tiny tables and levels so background compactions run, explicit
//! `compact`, `compact_range` and `vlog_gc` steps, and hot keys overwritten
//! often enough that value-log GC collects files).
//!
//! Single-threaded: one workload, one database at a time (the engine's
//! flush thread and compaction pool run beside it; their operations land in
//! the same recording, so the order varies a little between runs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use jkv::{Db, Error, Options, WriteBatch, WriteOptions};
use jkv_format::names::{parse_file_name, FileKind};
use jkv_format::FileSystem;
use jkv_manifest::{Manifest, ManifestOptions};

use crate::simfs::{Image, SimFs};

/// The database directory inside every simulated disk.
pub fn db_dir() -> PathBuf {
    PathBuf::from("/sim/db")
}

/// Keys a workload writes: `k00`..`k23`.
pub const KEY_COUNT: usize = 24;

/// Key number `n`.
pub fn key_name(n: usize) -> Vec<u8> {
    format!("k{n:02}").into_bytes()
}

/// Options for crash workloads: a 4 KiB memtable (the minimum) and a 1 KiB
/// manifest rewrite threshold, so every workload flushes and rewrites the
/// manifest; small blocks so tables have several.
pub fn crash_options(fs: &SimFs) -> Options {
    Options::default()
        .write_buffer_size(4096)
        .manifest_rewrite_threshold_bytes(1024)
        .block_size(256)
        .file_system(Arc::new(fs.clone()))
}

/// Options for the compaction and value-log GC mix: [`crash_options`] plus
/// key-value separation at 64 bytes into value-log files of 4 KiB (the
/// minimum), 1 KiB tables, a 2 KiB base level with a level multiplier of 2
/// and an L0 trigger of 2, so background compactions run in almost every
/// workload and overwritten values become garbage that GC collects.
pub fn gc_crash_options(fs: &SimFs) -> Options {
    crash_options(fs)
        .value_threshold(Some(64))
        .vlog_file_size(4096)
        .target_table_size(1024)
        .base_level_size(2048)
        .level_size_multiplier(2)
        .l0_compaction_trigger(2)
        .compaction_threads(2)
}

/// [`gc_crash_options`] with compression: LZ4 on L0 and L1, zstd below,
/// LZ4 in the value log, and a 16 KiB block cache (smaller than the data,
/// so cached blocks are evicted and decoded again).
pub fn compressed_crash_options(fs: &SimFs) -> Options {
    gc_crash_options(fs)
        .compression_per_level(vec![
            jkv::Compression::Lz4,
            jkv::Compression::Lz4,
            jkv::Compression::ZSTD,
        ])
        .vlog_compression(jkv::Compression::Lz4)
        .block_cache_bytes(16 << 10)
}

/// Builds the options of a run on a simulated disk.
pub type OptionsFn = fn(&SimFs) -> Options;

/// One step of a workload.
#[derive(Clone, Debug)]
pub enum Step {
    /// One atomic write: puts (`Some` value) and deletes (`None`).
    Write {
        /// Key numbers and values.
        entries: Vec<(usize, Option<Vec<u8>>)>,
        /// Acknowledge only once durable.
        sync: bool,
    },
    /// One range delete of key numbers `lo..hi` (half-open).
    DeleteRange {
        /// First key number deleted.
        lo: usize,
        /// First key number after the range.
        hi: usize,
        /// Acknowledge only once durable.
        sync: bool,
    },
    /// `Db::flush`.
    Flush,
    /// `Db::close`, then `Db::open` again.
    Reopen,
    /// `Db::compact`: flush, then everything into the last level.
    Compact,
    /// `Db::compact_range` over key numbers `lo..=hi`.
    CompactRange(usize, usize),
    /// `Db::vlog_gc`.
    VlogGc,
    /// Takes a snapshot and holds it until the next `WaitForCompactions`
    /// (or the end of the run), so compactions meanwhile keep versions and
    /// tombstones for it.
    Snapshot,
    /// Lets go of the held snapshots, then `Db::wait_for_compactions`: the
    /// database counts as idle, so garbage compactions run (bottom-level
    /// self-compactions of what the snapshots held, L0 merged into the
    /// level it shadows) and a memtable worth it is flushed.
    WaitForCompactions,
}

/// A seeded workload of at most `len` steps: mostly single puts and
/// deletes, some batches, about a third synced, at least two flushes and
/// one reopen. Values are 40..600 bytes, unique per write.
pub fn workload(seed: u64, len: usize) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::with_capacity(len);
    let flush_at = [len / 3, 2 * len / 3];
    let reopen_at = rng.gen_range(len / 4..len - 2);
    for i in 0..len {
        if flush_at.contains(&i) {
            steps.push(Step::Flush);
            continue;
        }
        if i == reopen_at {
            steps.push(Step::Reopen);
            continue;
        }
        let sync = rng.gen_bool(0.35);
        if rng.gen_bool(0.08) {
            steps.push(random_range_delete(&mut rng, KEY_COUNT, sync));
            continue;
        }
        let count = if rng.gen_bool(0.2) {
            rng.gen_range(2..6)
        } else {
            1
        };
        let entries = (0..count)
            .map(|j| {
                let k = rng.gen_range(0..KEY_COUNT);
                let value = rng.gen_bool(0.85).then(|| {
                    let len = rng.gen_range(40..600);
                    let mut v = format!("s{seed}w{i}e{j}:").into_bytes();
                    v.resize(len, b'a' + (i % 26) as u8);
                    v
                });
                (k, value)
            })
            .collect();
        steps.push(Step::Write { entries, sync });
    }
    steps
}

/// A range delete of 1 to `keys / 2` key numbers below `keys`.
fn random_range_delete(rng: &mut StdRng, keys: usize, sync: bool) -> Step {
    let lo = rng.gen_range(0..keys);
    let hi = (lo + rng.gen_range(1..=(keys / 2).max(1))).min(keys);
    Step::DeleteRange { lo, hi, sync }
}

/// A seeded workload of `len` steps for [`gc_crash_options`]: writes of
/// 40..400-byte values (most above the 64-byte value threshold), a fifth
/// deletes, about a quarter synced; on even seeds to 6 hot keys only (so
/// nearly every value-log entry becomes garbage), on odd seeds to all
/// [`KEY_COUNT`] keys. Fixed points: a flush at a quarter, `compact` at a
/// half followed by `vlog_gc`, `compact_range` over a random key range at
/// two thirds, `vlog_gc` before the end, and one reopen at a random point;
/// a snapshot taken just before the `compact` and released at three
/// quarters by `wait_for_compactions`, so the last level holds garbage the
/// garbage picker then drops. Nothing is flushed before a `vlog_gc`, so GC
/// also collects files the live WAL still points into.
pub fn gc_workload(seed: u64, len: usize) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6c0_6c0);
    let keys = if seed.is_multiple_of(2) { 6 } else { KEY_COUNT };
    let mut steps = Vec::with_capacity(len);
    let reopen_at = rng.gen_range(len / 4..len - 2);
    for i in 0..len {
        let fixed = if i == len / 4 {
            Some(Step::Flush)
        } else if i == len / 2 - 1 {
            Some(Step::Snapshot)
        } else if i == 3 * len / 4 {
            Some(Step::WaitForCompactions)
        } else if i == len / 2 {
            Some(Step::Compact)
        } else if i == len / 2 + 1 || i == len - 2 {
            Some(Step::VlogGc)
        } else if i == 2 * len / 3 {
            let lo = rng.gen_range(0..keys);
            Some(Step::CompactRange(lo, rng.gen_range(lo..keys)))
        } else if i == reopen_at {
            Some(Step::Reopen)
        } else {
            None
        };
        if let Some(step) = fixed {
            steps.push(step);
            continue;
        }
        let sync = rng.gen_bool(0.25);
        if rng.gen_bool(0.06) {
            steps.push(random_range_delete(&mut rng, keys, sync));
            continue;
        }
        let count = if rng.gen_bool(0.25) {
            rng.gen_range(2..5)
        } else {
            1
        };
        let entries = (0..count)
            .map(|j| {
                let k = rng.gen_range(0..keys);
                let value = rng.gen_bool(0.8).then(|| {
                    let len = rng.gen_range(40..400);
                    let mut v = format!("g{seed}w{i}e{j}:").into_bytes();
                    v.resize(len, b'A' + (i % 26) as u8);
                    v
                });
                (k, value)
            })
            .collect();
        steps.push(Step::Write { entries, sync });
    }
    steps
}

/// The model: key number → value.
pub type ModelState = BTreeMap<usize, Vec<u8>>;

/// What a run of a workload recorded.
#[derive(Clone, Debug, Default)]
pub struct RunLog {
    /// `states[i]`: the model after the first `i` writes (`states[0]` empty).
    pub states: Vec<ModelState>,
    /// Per write: recorded operations before it started.
    pub write_start: Vec<usize>,
    /// Per write: recorded operations when it was acknowledged, or `None`
    /// when it returned an error.
    pub write_end: Vec<Option<usize>>,
    /// `(boundary, writes)`: from this boundary on, the first `writes`
    /// writes are durable (a synced write, a flush, a compaction or a close
    /// returned).
    pub durable: Vec<(usize, usize)>,
    /// Merge compactions and trivial moves the run made (background and
    /// explicit), summed over the database's opens.
    pub compactions: u64,
    /// Value-log files garbage collected, summed over the opens.
    pub vlog_gc_files: u64,
    /// Garbage compactions (bottom-level self-compactions, idle merges),
    /// summed over the opens.
    pub garbage_compactions: u64,
}

impl RunLog {
    /// The writes a crash state at `boundary` must hold at least, and may
    /// hold at most: `(lo, hi)`. With `process_crash`, every acknowledged
    /// write counts as durable.
    pub fn bounds(&self, boundary: usize, process_crash: bool) -> (usize, usize) {
        let mut lo = self
            .durable
            .iter()
            .filter(|(b, _)| *b <= boundary)
            .map(|&(_, w)| w)
            .max()
            .unwrap_or(0);
        if process_crash {
            let acked = self
                .write_end
                .iter()
                .take_while(|e| e.is_some_and(|e| e <= boundary))
                .count();
            lo = lo.max(acked);
        }
        let hi = self.write_start.iter().filter(|&&s| s < boundary).count();
        (lo, hi.max(lo))
    }
}

/// Runs `steps` on a fresh database on `fs` with [`crash_options`]
/// (recording from the start), then closes it. Panics on any error: no
/// faults are armed.
pub fn run_recorded(fs: &SimFs, steps: &[Step]) -> RunLog {
    run_recorded_with(fs, steps, crash_options)
}

/// [`run_recorded`] with the options `options` builds.
pub fn run_recorded_with(fs: &SimFs, steps: &[Step], options: OptionsFn) -> RunLog {
    fs.create_dir_all(&db_dir())
        .expect("directory on a fresh disk");
    fs.start_recording();
    let mut log = RunLog {
        states: vec![ModelState::new()],
        ..RunLog::default()
    };
    let mut db = Db::open(db_dir(), options(fs)).expect("open on a fresh disk");
    let mut held = Vec::new();
    for step in steps {
        match step {
            Step::Write { .. } | Step::DeleteRange { .. } => {
                let (batch, sync) = step.batch().expect("a write step");
                log.write_start.push(fs.recorded_ops());
                db.write(batch, WriteOptions { sync })
                    .expect("write without faults");
                let end = fs.recorded_ops();
                log.write_end.push(Some(end));
                let mut state = log.states.last().expect("states start non-empty").clone();
                step.apply_to(&mut state);
                log.states.push(state);
                if sync {
                    log.durable.push((end, log.write_end.len()));
                }
            }
            Step::Flush => {
                db.flush().expect("flush without faults");
                log.durable.push((fs.recorded_ops(), log.write_end.len()));
            }
            Step::Reopen => {
                db.close().expect("close without faults");
                log.durable.push((fs.recorded_ops(), log.write_end.len()));
                log.count(&db);
                drop(db);
                db = Db::open(db_dir(), options(fs)).expect("reopen without faults");
            }
            Step::Compact | Step::CompactRange(..) => {
                run_compaction(&db, step).expect("compaction without faults");
                // Both flush the memtable first.
                log.durable.push((fs.recorded_ops(), log.write_end.len()));
            }
            Step::VlogGc => {
                db.vlog_gc().expect("value-log GC without faults");
            }
            Step::Snapshot => held.push(db.snapshot()),
            Step::WaitForCompactions => {
                held.clear();
                db.wait_for_compactions()
                    .expect("waiting for compactions without faults");
            }
        }
    }
    drop(held);
    db.close().expect("close without faults");
    log.durable.push((fs.recorded_ops(), log.write_end.len()));
    log.count(&db);
    log
}

impl RunLog {
    /// Adds the compactions and collected value-log files of `db` (closed).
    fn count(&mut self, db: &Db) {
        let stats = db.stats();
        self.compactions += stats.compactions + stats.compaction_moves;
        self.vlog_gc_files += stats.vlog_gc_files;
        self.garbage_compactions += stats.garbage_compactions;
    }
}

/// Runs a `Compact` or `CompactRange` step.
pub fn run_compaction(db: &Db, step: &Step) -> jkv::Result<()> {
    match step {
        Step::CompactRange(lo, hi) => db.compact_range(key_name(*lo)..=key_name(*hi)),
        _ => db.compact(),
    }
}

impl Step {
    /// The batch a write step (`Write`, `DeleteRange`) commits and whether
    /// it is synced; `None` for other steps.
    pub fn batch(&self) -> Option<(WriteBatch, bool)> {
        match self {
            Step::Write { entries, sync } => Some((batch_of(entries), *sync)),
            Step::DeleteRange { lo, hi, sync } => {
                let mut batch = WriteBatch::new();
                batch.delete_range(key_name(*lo)..key_name(*hi));
                Some((batch, *sync))
            }
            _ => None,
        }
    }

    /// Applies a write step to the model (other steps change nothing).
    pub fn apply_to(&self, state: &mut ModelState) {
        match self {
            Step::Write { entries, .. } => apply(state, entries),
            Step::DeleteRange { lo, hi, .. } => state.retain(|k, _| !(lo..hi).contains(&k)),
            _ => {}
        }
    }
}

/// The batch for `entries`.
pub fn batch_of(entries: &[(usize, Option<Vec<u8>>)]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for (k, v) in entries {
        match v {
            Some(v) => batch.put(key_name(*k), v),
            None => batch.delete(key_name(*k)),
        };
    }
    batch
}

/// Applies `entries` to the model.
pub fn apply(state: &mut ModelState, entries: &[(usize, Option<Vec<u8>>)]) {
    for (k, v) in entries {
        match v {
            Some(v) => state.insert(*k, v.clone()),
            None => state.remove(k),
        };
    }
}

/// Reads the whole database: a full scan, cross-checked key by key with
/// `get`. Keys outside the workload's set are an error.
pub fn read_all(db: &Db) -> Result<ModelState, String> {
    let mut state = ModelState::new();
    let snapshot = db.snapshot();
    for item in db.scan::<Vec<u8>>(.., &snapshot) {
        let (k, v) = item.map_err(|e| format!("scan failed: {e}"))?;
        let n = (0..KEY_COUNT)
            .find(|&n| key_name(n) == k.as_ref())
            .ok_or_else(|| format!("scan returned unknown key {k:?}"))?;
        state.insert(n, v.to_vec());
    }
    for n in 0..KEY_COUNT {
        let got = db
            .get(key_name(n))
            .map_err(|e| format!("get k{n:02} failed: {e}"))?;
        if got.as_deref() != state.get(&n).map(Vec::as_slice) {
            return Err(format!("get k{n:02} disagrees with the scan"));
        }
    }
    Ok(state)
}

/// Opens the database on a crash image and checks it: it opens, its
/// contents equal `states[i]` for some `lo <= i <= hi`, a second open sees
/// the same contents, and after it the directory holds only `LOCK`,
/// `MANIFEST` and the files the manifest names. `Err` says what is wrong.
pub fn check_crash_image(
    image: &Image,
    states: &[ModelState],
    lo: usize,
    hi: usize,
) -> Result<usize, String> {
    check_crash_image_with(image, states, lo, hi, crash_options)
}

/// [`check_crash_image`], opening with the options `options` builds.
pub fn check_crash_image_with(
    image: &Image,
    states: &[ModelState],
    lo: usize,
    hi: usize,
    options: OptionsFn,
) -> Result<usize, String> {
    let fs = SimFs::from_image(image);
    let first = {
        let db = Db::open(db_dir(), options(&fs)).map_err(|e| format!("open failed: {e}"))?;
        let got = read_all(&db)?;
        db.close().map_err(|e| format!("close failed: {e}"))?;
        got
    };
    let matched = (lo..=hi).find(|&i| states[i] == first).ok_or_else(|| {
        let any = states.iter().position(|s| *s == first);
        format!(
            "contents are not the state after {lo}..={hi} writes (they match {any:?}); keys {:?}",
            first.keys().collect::<Vec<_>>()
        )
    })?;
    {
        let db =
            Db::open(db_dir(), options(&fs)).map_err(|e| format!("second open failed: {e}"))?;
        let again = read_all(&db)?;
        db.close()
            .map_err(|e| format!("second close failed: {e}"))?;
        if again != first {
            return Err("the second open shows different contents".into());
        }
    }
    orphans(&fs, &db_dir()).map(|()| matched)
}

/// `Err` naming the files in `dir` that are neither `LOCK`, `MANIFEST`, the
/// `lost/` directory (where open keeps unnamed data files after a torn
/// manifest tail, instead of deleting them) nor named by the manifest.
pub fn orphans(fs: &SimFs, dir: &Path) -> Result<(), String> {
    let (_, state) = Manifest::open(Arc::new(fs.clone()), dir, ManifestOptions::new())
        .map_err(|e| format!("manifest unreadable after reopen: {e}"))?;
    let live = state.live_file_numbers();
    let mut extra = Vec::new();
    for name in fs.list(dir).map_err(|e| e.to_string())? {
        let ok = match parse_file_name(&name) {
            Some(FileKind::Table(n)) | Some(FileKind::Wal(n)) | Some(FileKind::ValueLog(n)) => {
                live.contains(&n)
            }
            _ => name == "LOCK" || name == "MANIFEST" || name == "lost",
        };
        if !ok {
            extra.push(name);
        }
    }
    if extra.is_empty() {
        Ok(())
    } else {
        Err(format!("orphan files after the second open: {extra:?}"))
    }
}

/// True when `e` is an I/O error, or read-only because of one (the typed
/// errors a failed operation may surface as).
pub fn is_io_or_read_only(e: &Error) -> bool {
    match e {
        Error::Io { .. } => true,
        Error::ReadOnly(cause) => is_io_or_read_only(cause),
        _ => false,
    }
}
