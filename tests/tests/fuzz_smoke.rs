//! Fuzz smoke test of every decoder, on the stable toolchain: an in-process
//! mutator (seeded; bit flips, byte sets, truncation, duplicated or spliced
//! ranges, inserted random bytes) over corpora seeded with real files of a
//! small database the engine built (WALs, tables, the manifest, value
//! logs; built with tiny thresholds so all four exist). Each mutated input
//! goes through a public decoder:
//! - `record`: `jkv_format::record::RecordReader` over a WAL;
//! - `sstable`: `jkv_sstable::Table::open`, full iteration, `get` of every
//!   key, `verify`;
//! - `manifest`: `jkv_manifest::verify` and `read_records`;
//! - `vlog`: `jkv_vlog::VlogIter` over all entries and `jkv_vlog::verify`;
//! - `db:wal`, `db:sst`, `db:manifest`, `db:vlog`: the whole database with
//!   that one file replaced, through `Db::open`, a `get` of every key, a
//!   forward and a backward scan.
//!
//! Asserted: no panic (each execution runs under `catch_unwind`), no hang
//! (a watchdog aborts when one execution takes over 30 s), and every error
//! is `Corruption` (the decoders and the database read from memory, so an
//! `Io` or any other kind is a wrong classification of damaged bytes; the
//! database may also say `Io` for a value-log file a damaged pointer names
//! but that does not exist). With a table, value log or WAL damaged, every
//! value the database returns must also be the right one (for the WAL and
//! value log: of a prefix of the writes left in the WAL) and no key may go
//! missing without an error.
//!
//! This found a scan that skipped a damaged table block and showed older
//! versions, and a backward scan that returned an older version of the key
//! after a damaged block of a lower table before reporting `Corruption`
//! (both fixed; regression tests in
//! `scan_over_damaged_block_reports_corruption.rs`). A failing input is
//! written to `target/tmp/fuzz-smoke/<target>-<n>.bin`, the seed database
//! beside it; `replay_saved_input` reruns one.
//!
//! Prints `execs=N panics=0` per target. Runs about 40 s in all by
//! default; `JKV_FUZZ_SECS=N` spreads N seconds over the targets,
//! `JKV_FUZZ_SEED=S` changes the seed (default 1).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use jkv::{Compression, Db, Error, Options, SeqNo, WriteBatch, WriteOptions};
use jkv_format::names::{parse_file_name, FileKind};
use jkv_format::record::RecordReader;
use jkv_format::{FileNumber, FileSystem, InternalIterator};
use jkv_sstable::Table;
use jkv_tests::simfs::{Image, SimFs};
use jkv_tests::workload::db_dir;

/// Keys of the seed database.
const KEYS: usize = 120;

fn key(n: usize) -> Vec<u8> {
    format!("key{n:04}").into_bytes()
}

fn options(fs: &SimFs) -> Options {
    Options::default()
        .write_buffer_size(4096)
        .block_size(256)
        .manifest_rewrite_threshold_bytes(64 << 10)
        .target_table_size(2048)
        .base_level_size(4096)
        .level_size_multiplier(2)
        .value_threshold(Some(64))
        .vlog_file_size(4096)
        // Background work would make the seed database differ between
        // runs, and saved inputs could not be replayed.
        .auto_compactions(false)
        // Flushed tables raw, compacted ones compressed, so the corpus
        // holds both kinds of block.
        .compression_per_level(vec![Compression::None, Compression::Lz4])
        .file_system(Arc::new(fs.clone()))
}

/// The seed database: tables from flushes and a compaction (the last one
/// with range tombstones), value logs, the manifest, and a WAL with synced
/// writes not yet flushed.
/// Also returns the contents after each prefix of the writes left in the
/// WAL (`states[12]`: the final contents).
fn build_seed_db() -> (Image, Vec<Contents>) {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let mut put_round = |db: &Db, round: usize, sync: bool| {
        for n in (0..KEYS).filter(|n| n % (round + 1) == 0) {
            let mut batch = WriteBatch::new();
            if rng.gen_bool(0.1) {
                batch.delete(key(n));
            } else {
                let mut v = format!("r{round}k{n}:").into_bytes();
                v.resize(rng.gen_range(8..200), b'a' + (n % 26) as u8);
                batch.put(key(n), v);
            }
            db.write(batch, WriteOptions { sync }).unwrap();
        }
    };
    put_round(&db, 0, false);
    db.flush().unwrap();
    put_round(&db, 1, false);
    db.compact().unwrap();
    // Reopened with value-log compression: the values of the next round go
    // to a new value log, compressed, beside the raw one.
    db.close().unwrap();
    let db = Db::open(db_dir(), options(&fs).vlog_compression(Compression::ZSTD)).unwrap();
    put_round(&db, 2, false);
    // Range tombstones, so the last table has a range-tombstone block.
    db.delete_range(key(10), key(30)).unwrap();
    db.delete_range(key(25), key(41)).unwrap();
    db.flush().unwrap();
    let mut states = vec![read_contents(&db)];
    // Small enough to stay in the WAL.
    for n in 0..12 {
        let mut batch = WriteBatch::new();
        let v = format!("wal-{n}-").repeat(n + 2).into_bytes();
        batch.put(key(n * 7), &v);
        db.write(batch, WriteOptions { sync: true }).unwrap();
        let mut next = states.last().unwrap().clone();
        next.insert(key(n * 7), v);
        states.push(next);
    }
    assert_eq!(&read_contents(&db), states.last().unwrap());
    db.close().unwrap();
    (fs.full_image(), states)
}

fn read_contents(db: &Db) -> Contents {
    let snapshot = db.snapshot();
    db.scan::<Vec<u8>>(.., &snapshot)
        .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<jkv::Result<Contents>>()
        .expect("the seed database reads back")
}

/// Files of `image` of one kind, by path.
fn files_of(image: &Image, kind: &str) -> Vec<(PathBuf, Vec<u8>)> {
    image
        .files
        .iter()
        .filter(|(p, _)| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            match kind {
                "manifest" => name == "MANIFEST",
                "wal" => matches!(parse_file_name(name), Some(FileKind::Wal(_))),
                "sst" => matches!(parse_file_name(name), Some(FileKind::Table(_))),
                _ => matches!(parse_file_name(name), Some(FileKind::ValueLog(_))),
            }
        })
        .map(|(p, d)| (p.clone(), d.clone()))
        .collect()
}

/// Mutates `data` with one to four random edits; `other` is spliced from.
fn mutate(rng: &mut StdRng, data: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for _ in 0..rng.gen_range(1..=4) {
        let len = out.len();
        match rng.gen_range(0..8) {
            0 | 1 if len > 0 => {
                let i = rng.gen_range(0..len);
                out[i] ^= 1 << rng.gen_range(0..8);
            }
            2 if len > 0 => {
                let i = rng.gen_range(0..len);
                out[i] = *[0u8, 0xff, 0x7f, 0x80, 1]
                    .get(rng.gen_range(0..6))
                    .unwrap_or(&rng.gen());
            }
            3 => out.truncate(rng.gen_range(0..=len)),
            4 if len > 0 => {
                // Duplicate a range at another place.
                let a = rng.gen_range(0..len);
                let b = (a + rng.gen_range(1..=64.min(len - a))).min(len);
                let piece = out[a..b].to_vec();
                let at = rng.gen_range(0..=len);
                out.splice(at..at, piece);
            }
            5 if !other.is_empty() => {
                // Splice a range of another corpus file over ours.
                let a = rng.gen_range(0..other.len());
                let b = (a + rng.gen_range(1..=256)).min(other.len());
                let at = rng.gen_range(0..=len);
                let end = (at + (b - a)).min(len);
                out.splice(at..end, other[a..b].iter().copied());
            }
            6 => {
                let at = rng.gen_range(0..=len);
                let extra: Vec<u8> = (0..rng.gen_range(1..16)).map(|_| rng.gen()).collect();
                out.splice(at..at, extra);
            }
            _ if len > 8 => {
                // Overwrite a little-endian length-like field with a big
                // or small number.
                let i = rng.gen_range(0..len - 4);
                let v: u32 = *[0, 1, u32::MAX, 1 << 31, 4096]
                    .get(rng.gen_range(0..6))
                    .unwrap_or(&rng.gen());
                out[i..i + 4].copy_from_slice(&v.to_le_bytes());
            }
            _ => out.push(rng.gen()),
        }
    }
    out
}

/// How one execution ended.
enum Outcome {
    /// Decoded (maybe partly: a torn tail, a report listing damage).
    Accepted,
    /// Refused with a `Corruption` (or an allowed error).
    Refused,
    /// Refused with an error of the wrong kind, or a wrong result.
    WrongError(String),
}

fn judge(e: &Error, allow_missing_vlog: bool) -> Outcome {
    match e {
        Error::Corruption { .. } => Outcome::Refused,
        Error::ReadOnly(cause) => judge(cause, allow_missing_vlog),
        Error::Io { path, source, .. }
            if allow_missing_vlog
                && source.kind() == std::io::ErrorKind::NotFound
                && path.extension().is_some_and(|x| x == "vlog") =>
        {
            Outcome::Refused
        }
        other => Outcome::WrongError(other.to_string()),
    }
}

fn from_result<T>(r: jkv::Result<T>, allow_missing_vlog: bool) -> Result<T, Outcome> {
    r.map_err(|e| judge(&e, allow_missing_vlog))
}

/// A single-file disk with `data` at `path`.
fn disk_with(path: &Path, data: Vec<u8>) -> SimFs {
    let mut image = Image::default();
    image.dirs.insert(path.parent().unwrap().to_path_buf());
    image.files.insert(path.to_path_buf(), data);
    SimFs::from_image(&image)
}

fn run_record(data: &[u8]) -> Outcome {
    let mut reader = RecordReader::new(data);
    let mut payload = 0usize;
    let mut outcome = Outcome::Accepted;
    while let Some(r) = reader.next() {
        match r {
            Ok(record) => {
                assert!(record.offset as usize + record.payload.len() <= data.len());
                payload += record.payload.len();
            }
            // A typed stop: torn tail or damage with valid records after.
            Err(_) => {
                outcome = Outcome::Refused;
                break;
            }
        }
    }
    assert!(reader.next().is_none(), "the reader goes on after stopping");
    assert!(reader.valid_len() as usize <= data.len());
    assert!(payload <= data.len());
    outcome
}

fn run_sstable(path: &Path, data: Vec<u8>, keys: &[Vec<u8>]) -> Outcome {
    let fs = disk_with(path, data);
    let number = FileNumber(1);
    let table = match from_result(Table::open(&fs, path, number), false) {
        Ok(t) => t,
        Err(o) => return o,
    };
    let mut iter = table.iter();
    iter.seek_to_first();
    let mut entries = 0u64;
    while iter.valid() {
        entries += 1;
        let _ = (iter.key().len(), iter.value().len());
        iter.next();
    }
    if let Err(e) = iter.status() {
        return judge(&e, false);
    }
    let mut back = table.iter();
    back.seek_to_last();
    for k in keys {
        if let Err(e) = table.get(k, SeqNo(u64::MAX >> 8)) {
            return judge(&e, false);
        }
        back.seek(k);
        if let Err(e) = back.status() {
            return judge(&e, false);
        }
    }
    match table.verify() {
        Ok(report) => {
            assert!(report.entries <= entries.max(report.entries));
            Outcome::Accepted
        }
        Err(e) => judge(&e, false),
    }
}

fn run_manifest(data: Vec<u8>) -> Outcome {
    let dir = PathBuf::from("/fuzz");
    let fs = disk_with(&dir.join("MANIFEST"), data);
    let report = match from_result(jkv_manifest::verify(&fs, &dir), false) {
        Ok(r) => r,
        Err(o) => return o,
    };
    let records = jkv_manifest::read_records(&fs, &dir);
    // Both read the same bytes: `read_records` succeeds exactly when only
    // a torn tail is bad (it does not apply records, so it may accept what
    // `verify` rejects on applying).
    match records {
        Ok(_) if report.is_ok() => Outcome::Accepted,
        Ok(_) => Outcome::Refused,
        Err(e) => {
            if report.bad_lines.is_empty() {
                return Outcome::WrongError(format!(
                    "read_records failed ({e}) where verify found no bad line"
                ));
            }
            judge(&e, false)
        }
    }
}

fn run_vlog(path: &Path, data: Vec<u8>) -> Outcome {
    let fs = disk_with(path, data);
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let Some(FileKind::ValueLog(number)) = parse_file_name(name) else {
        unreachable!("vlog corpus files are named NNNNNN.vlog")
    };
    let mut first_error = None;
    match jkv_vlog::VlogIter::open(&fs, dir, number) {
        Ok(iter) => {
            for entry in iter {
                match entry {
                    Ok(e) => {
                        let _ = (e.key.len(), e.value.len(), e.seq, e.pointer);
                    }
                    Err(e) => {
                        first_error = Some(e);
                        break;
                    }
                }
            }
        }
        Err(e) => first_error = Some(e),
    }
    let report = match from_result(jkv_vlog::verify(&fs, path), false) {
        Ok(r) => r,
        Err(o) => return o,
    };
    if let Some(e) = &report.corruption {
        if let Outcome::WrongError(w) = judge(e, false) {
            return Outcome::WrongError(format!("verify reported {w}"));
        }
    }
    if first_error.is_some() != report.corruption.is_some() {
        return Outcome::WrongError(format!(
            "VlogIter and verify disagree: {first_error:?} vs {:?}",
            report.corruption
        ));
    }
    match first_error {
        Some(e) => judge(&e, false),
        None => Outcome::Accepted,
    }
}

/// The seed database's contents: key → value.
type Contents = BTreeMap<Vec<u8>, Vec<u8>>;

/// Opens the seed database with `path` replaced by `data`, reads every key
/// and scans both ways. With `allowed` non-empty (damage to a table, value
/// log or WAL), every value read must be that of one of the `allowed`
/// states and no key may be missing without an error; damage to the
/// manifest may (known gap) lose the tables of a cut manifest, so there
/// only errors count.
fn run_db(
    image: &Image,
    path: &Path,
    data: Vec<u8>,
    keys: &[Vec<u8>],
    allowed: &[Contents],
) -> Outcome {
    let mut image = image.clone();
    image.files.insert(path.to_path_buf(), data);
    let fs = SimFs::from_image(&image);
    let db = match from_result(Db::open(db_dir(), options(&fs)), true) {
        Ok(db) => db,
        Err(o) => return o,
    };
    let mut outcome = Outcome::Accepted;
    let mut note = |e: &Error| {
        let o = judge(e, true);
        if !matches!(outcome, Outcome::WrongError(_)) {
            outcome = o;
        }
    };
    let mut gets: Vec<(&Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    for k in keys {
        match db.get(k) {
            Ok(got) => gets.push((k, got.map(|v| v.to_vec()))),
            Err(e) => note(&e),
        }
    }
    // Per direction: what the scan returned, whether it ended in error, and
    // the last key it returned.
    let mut scans: Vec<(bool, Contents, bool, Option<Vec<u8>>)> = Vec::new();
    let snapshot = db.snapshot();
    for rev in [false, true] {
        let iter = if rev {
            db.scan_rev::<Vec<u8>>(.., &snapshot)
        } else {
            db.scan::<Vec<u8>>(.., &snapshot)
        };
        let mut seen = Contents::new();
        let mut ended_with_error = false;
        let mut last = None;
        for item in iter {
            match item {
                Ok((k, v)) => {
                    seen.insert(k.to_vec(), v.to_vec());
                    last = Some(k.to_vec());
                }
                Err(e) => {
                    note(&e);
                    ended_with_error = true;
                    break;
                }
            }
        }
        scans.push((rev, seen, ended_with_error, last));
    }
    drop(snapshot);
    if let Err(e) = db.close() {
        note(&e);
    }
    if allowed.is_empty() {
        return outcome;
    }
    // Wrong results against `state`: (what, a case of the known bug).
    let wrong_against = |state: &Contents| -> Vec<(String, bool)> {
        let mut wrong = Vec::new();
        for (k, got) in &gets {
            if got.as_deref() != state.get(*k).map(Vec::as_slice) {
                wrong.push((
                    format!(
                        "get {} returned {:?} bytes, expected {:?}",
                        String::from_utf8_lossy(k),
                        got.as_ref().map(Vec::len),
                        state.get(*k).map(Vec::len)
                    ),
                    false,
                ));
            }
        }
        for (rev, seen, ended_with_error, last) in &scans {
            for (k, v) in seen {
                if state.get(k) != Some(v) {
                    // The known bug: backward, the last key before the
                    // error, an older version.
                    let known = *rev && *ended_with_error && last.as_ref() == Some(k);
                    wrong.push((
                        format!(
                            "scan (rev {rev}) returned a wrong value for {}",
                            String::from_utf8_lossy(k)
                        ),
                        known,
                    ));
                }
            }
            if !ended_with_error {
                for k in state.keys().filter(|k| !seen.contains_key(*k)) {
                    wrong.push((
                        format!(
                            "scan (rev {rev}) left out {} without an error",
                            String::from_utf8_lossy(k)
                        ),
                        false,
                    ));
                }
            }
        }
        wrong
    };
    if allowed.iter().any(|state| wrong_against(state).is_empty()) {
        return outcome;
    }
    let mut wrong = wrong_against(allowed.last().expect("allowed is not empty"));
    Outcome::WrongError(wrong.swap_remove(0).0)
}

/// Reads the whole seed database.
fn contents(image: &Image) -> Contents {
    let fs = SimFs::from_image(image);
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    let all = read_contents(&db);
    db.close().unwrap();
    all
}

/// What a target saw.
#[derive(Default, Debug)]
struct Count {
    execs: u64,
    accepted: u64,
    refused: u64,
    panics: u64,
    wrong_errors: u64,
}

/// Start of the running execution (ms since the test began; 0 = idle).
static RUNNING_SINCE_MS: AtomicU64 = AtomicU64::new(0);

#[test]
fn mutated_files_never_panic_hang_or_return_untyped_errors() {
    let total_secs: f64 = std::env::var("JKV_FUZZ_SECS")
        .ok()
        .map(|s| s.parse().expect("JKV_FUZZ_SECS is a number of seconds"))
        .unwrap_or(40.0);
    let seed: u64 = std::env::var("JKV_FUZZ_SEED")
        .ok()
        .map(|s| s.parse().expect("JKV_FUZZ_SEED is a number"))
        .unwrap_or(1);
    let (image, states) = build_seed_db();
    let corpus: BTreeMap<&str, Vec<(PathBuf, Vec<u8>)>> = ["wal", "sst", "manifest", "vlog"]
        .into_iter()
        .map(|k| (k, files_of(&image, k)))
        .collect();
    for (kind, files) in &corpus {
        assert!(!files.is_empty(), "the seed database has no {kind} file");
    }
    // Raw and compressed blocks, raw and compressed value-log entries.
    let seed_fs = SimFs::from_image(&image);
    let report = jkv::check_with(&seed_fs, &db_dir()).unwrap();
    assert!(report.is_ok(), "{report}");
    assert!(
        report.compressed_blocks > 0 && report.compressed_blocks < report.data_blocks,
        "{report}"
    );
    assert!(
        corpus["vlog"].len() >= 2,
        "a raw and a compressed value log"
    );
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    assert_eq!(&contents(&image), states.last().unwrap());
    assert!(states[0].len() > KEYS / 2);

    let began = Instant::now();
    let current = Arc::new(Mutex::new(String::new()));
    start_watchdog(began, current.clone());
    let failures_dir = failures_dir();
    let _ = std::fs::remove_dir_all(&failures_dir);

    let targets = [
        ("record", "wal"),
        ("sstable", "sst"),
        ("manifest", "manifest"),
        ("vlog", "vlog"),
        ("db:wal", "wal"),
        ("db:sst", "sst"),
        ("db:manifest", "manifest"),
        ("db:vlog", "vlog"),
    ];
    let per_target = Duration::from_secs_f64(total_secs / targets.len() as f64);
    let mut counts: BTreeMap<&str, Count> = BTreeMap::new();
    let mut notes: Vec<String> = Vec::new();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for (ti, (target, kind)) in targets.iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1000) + ti as u64);
        let seeds = &corpus[kind];
        // Inputs that decoded without error join the corpus (up to 64), so
        // later mutations start from damaged-but-accepted files too.
        let mut pool: Vec<(PathBuf, Vec<u8>)> = seeds.clone();
        let count = counts.entry(target).or_default();
        let started = Instant::now();
        while started.elapsed() < per_target {
            let (path, base) = &pool[rng.gen_range(0..pool.len())];
            let other = &seeds[rng.gen_range(0..seeds.len())].1;
            let input = mutate(&mut rng, base, other);
            let path = path.clone();
            let shown_path = path.clone();
            *current.lock() = format!("{target} exec {}", count.execs);
            RUNNING_SINCE_MS.store(began.elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
            let result = catch_unwind(AssertUnwindSafe(|| match *target {
                "record" => run_record(&input),
                "sstable" => run_sstable(&path, input.clone(), &keys),
                "manifest" => run_manifest(input.clone()),
                "vlog" => run_vlog(&path, input.clone()),
                // Damage to a table never loses writes.
                "db:sst" => run_db(&image, &path, input.clone(), &keys, &states[12..]),
                // A value log cut short looks like a crash that lost its
                // unsynced tail: replay stops at the first WAL write whose
                // value is gone, so a prefix of the WAL's writes remains.
                "db:vlog" => run_db(&image, &path, input.clone(), &keys, &states),
                // WAL damage reaching its end is a torn tail: a prefix of
                // its writes remains; anything else is `Corruption`.
                "db:wal" => run_db(&image, &path, input.clone(), &keys, &states),
                _ => run_db(&image, &path, input.clone(), &keys, &[]),
            }));
            RUNNING_SINCE_MS.store(0, Ordering::Relaxed);
            count.execs += 1;
            let failure = match result {
                Ok(Outcome::Accepted) => {
                    count.accepted += 1;
                    if pool.len() < seeds.len() + 64 {
                        pool.push((path, input.clone()));
                    } else {
                        let i = rng.gen_range(seeds.len()..pool.len());
                        pool[i] = (path, input.clone());
                    }
                    None
                }
                Ok(Outcome::Refused) => {
                    count.refused += 1;
                    None
                }
                Ok(Outcome::WrongError(what)) => {
                    count.wrong_errors += 1;
                    Some(format!("wrong error: {what}"))
                }
                Err(panic) => {
                    count.panics += 1;
                    let msg = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Some(format!("panic: {msg}"))
                }
            };
            if let Some(what) = failure {
                let file =
                    failures_dir.join(format!("{}-{}.bin", target.replace(':', "-"), count.execs));
                if notes.is_empty() {
                    save_seed_db(&image, &failures_dir.join("seed-db"));
                }
                let _ = std::fs::create_dir_all(&failures_dir);
                let _ = std::fs::write(&file, &input);
                if notes.len() < 20 {
                    notes.push(format!(
                        "{target} exec {} (seed {seed}, input {} as {}): {what}",
                        count.execs,
                        file.display(),
                        shown_path.display()
                    ));
                }
            }
        }
    }
    std::panic::set_hook(default_hook);
    for (target, c) in &counts {
        println!(
            "{target}: execs={} panics={} wrong_errors={} (accepted {}, refused {})",
            c.execs, c.panics, c.wrong_errors, c.accepted, c.refused
        );
    }
    for n in &notes {
        println!("FAILURE {n}");
    }
    let bad: u64 = counts.values().map(|c| c.panics + c.wrong_errors).sum();
    assert_eq!(
        bad, 0,
        "{bad} executions panicked or returned a wrong error"
    );
    for (target, c) in &counts {
        assert!(c.execs >= 20, "{target}: only {} executions", c.execs);
        assert!(c.refused > 0, "{target}: no mutation was ever refused");
    }
}

/// Aborts the process when one execution runs for more than 30 s.
fn start_watchdog(began: Instant, current: Arc<Mutex<String>>) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        let since = RUNNING_SINCE_MS.load(Ordering::Relaxed);
        if since == 0 {
            continue;
        }
        let now = began.elapsed().as_millis() as u64 + 1;
        if now.saturating_sub(since) > 30_000 {
            eprintln!("fuzz_smoke: {} has run for 30 s: hang", current.lock());
            std::process::abort();
        }
    });
}

/// Where failing inputs and the seed database they apply to are saved.
fn failures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-smoke")
}

/// Saves the seed database's files (its identity is random, so a saved
/// input only reproduces against the same seed database).
fn save_seed_db(image: &Image, dir: &Path) {
    std::fs::create_dir_all(dir).expect("failure directory is writable");
    for (path, data) in &image.files {
        let name = path.file_name().expect("image files have names");
        std::fs::write(dir.join(name), data).expect("failure directory is writable");
    }
}

fn load_seed_db(dir: &Path) -> Image {
    let mut image = Image::default();
    image.dirs.insert(db_dir());
    for entry in std::fs::read_dir(dir).expect("saved seed database (seed-db/) is readable") {
        let entry = entry.unwrap();
        image.files.insert(
            db_dir().join(entry.file_name()),
            std::fs::read(entry.path()).unwrap(),
        );
    }
    image
}

/// Reruns one saved input against the saved seed database and prints what
/// the database returns: `JKV_FUZZ_INPUT=<file>:<path it replaces>` (both
/// printed by a failure), e.g.
/// `$PWD/target/tmp/fuzz-smoke/db-sst-9.bin:/sim/db/000027.sst`.
#[test]
#[ignore = "reproduces one saved input; set JKV_FUZZ_INPUT"]
fn replay_saved_input() {
    let spec = std::env::var("JKV_FUZZ_INPUT").expect("JKV_FUZZ_INPUT=<file>:<path>");
    let (file, path) = spec.rsplit_once(':').expect("JKV_FUZZ_INPUT=<file>:<path>");
    let data = std::fs::read(file).expect("the saved input is readable");
    let image = load_seed_db(&failures_dir().join("seed-db"));
    assert!(
        image.files.contains_key(Path::new(path)),
        "the seed database has no {path}: {:?}",
        image.files.keys().collect::<Vec<_>>()
    );
    let expected = contents(&image);
    let mut damaged = image.clone();
    damaged.files.insert(PathBuf::from(path), data);
    let fs = SimFs::from_image(&damaged);
    let db = match Db::open(db_dir(), options(&fs)) {
        Ok(db) => db,
        Err(e) => return println!("open: {e}"),
    };
    for n in 0..KEYS {
        let got = db.get(key(n));
        let want = expected.get(&key(n));
        let same = matches!(&got, Ok(v) if v.as_deref() == want.map(Vec::as_slice));
        if !same {
            println!(
                "get key{n:04}: {:?}, expected {:?}",
                got.map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned())),
                want.map(|v| String::from_utf8_lossy(v).into_owned())
            );
        }
    }
    let snapshot = db.snapshot();
    for item in db
        .scan::<Vec<u8>>(.., &snapshot)
        .chain(db.scan_rev::<Vec<u8>>(.., &snapshot))
    {
        match item {
            Ok((k, v)) => {
                if expected.get(k.as_ref()).map(Vec::as_slice) != Some(v.as_ref()) {
                    println!(
                        "scan {}: {:?}, expected {:?}",
                        String::from_utf8_lossy(&k),
                        String::from_utf8_lossy(&v),
                        expected
                            .get(k.as_ref())
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    );
                }
            }
            Err(e) => println!("scan error: {e}"),
        }
    }
}
