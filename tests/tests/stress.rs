//! Concurrency stress: many threads against one database with tiny
//! memtable, table, level and value-log thresholds, so flushes, background
//! compactions and value-log GC run all the time, and values of 20 to 1,500
//! bytes (those of 128 bytes or more go to the value log). Checked:
//! - an expected-state oracle: three writer threads put, delete and write
//!   batches on keys of their own (`k0000`..`k0299`, key `n` belongs to
//!   writer `n % 3`) and, between writes, read any key with `get` and
//!   short scans. A key being written may read as its old or its new value;
//!   otherwise a read must equal the oracle exactly;
//! - bank transfers: two threads move amounts between 50 accounts in
//!   atomic batches (account values padded so some live in the value log),
//!   and auditors sum all accounts through a snapshot scan: the total never
//!   changes, every account is there, and a `get_at` on the same snapshot
//!   agrees with the scan;
//! - a maintenance thread runs `flush`, `compact_range`, `compact` and
//!   `vlog_gc` at random; every call must succeed;
//! - at the end, after close and reopen, the database equals the oracle and
//!   the bank total holds.
//!
//! Prints `ops=N mismatches=0` and asserts zero mismatches and that
//! flushes, compactions and GC really ran. Runs 20 s by default;
//! `JKV_STRESS_SECS=N` runs N seconds. A watchdog aborts the process when
//! no operation completes for 60 s (a deadlock).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use jkv::{Db, Options, WriteBatch, WriteOptions};

const KEYS: usize = 300;
const WRITERS: usize = 3;
const ACCOUNTS: usize = 50;
const BALANCE_START: u64 = 1_000;

fn key(n: usize) -> Vec<u8> {
    format!("k{n:04}").into_bytes()
}

fn account(n: usize) -> Vec<u8> {
    format!("acct{n:02}").into_bytes()
}

/// A value naming its key, writer and write number, 20..1,500 bytes; the
/// content is a function of the header, so a torn or mixed-up value fails
/// the comparison.
fn value(n: usize, writer: usize, seq: u64, rng: &mut StdRng) -> Vec<u8> {
    let len = if rng.gen_bool(0.4) {
        rng.gen_range(128..1_500)
    } else {
        rng.gen_range(20..128)
    };
    let mut v = format!("k{n:04}/w{writer}/#{seq}:").into_bytes();
    let fill = b'a' + (seq % 26) as u8;
    v.resize(len.max(v.len()), fill);
    v
}

/// An account's value: the balance, then padding (0..400 bytes) so some
/// accounts are stored in the value log and some in the tree.
fn balance_value(amount: u64, rng: &mut StdRng) -> Vec<u8> {
    let mut v = format!("{amount:012}").into_bytes();
    v.resize(12 + rng.gen_range(0..400), b'.');
    v
}

fn parse_balance(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v.get(..12)?).ok()?.parse().ok()
}

/// The oracle's view of one key.
#[derive(Clone, Debug, Default)]
struct KeyState {
    /// The last acknowledged value (`None`: absent).
    committed: Option<Vec<u8>>,
    /// The value of a write in flight, if any (`Some(None)`: a delete).
    in_flight: Option<Option<Vec<u8>>>,
    /// Acknowledged writes so far.
    generation: u64,
}

struct Shared {
    db: Db,
    oracle: Mutex<Vec<KeyState>>,
    /// Serializes transfers (read-modify-write of two accounts); readers
    /// do not take it.
    bank: Mutex<()>,
    stop: AtomicBool,
    ops: AtomicU64,
    mismatches: AtomicU64,
    unchecked: AtomicU64,
    notes: Mutex<Vec<String>>,
}

impl Shared {
    fn mismatch(&self, what: String) {
        self.mismatches.fetch_add(1, Ordering::Relaxed);
        let mut notes = self.notes.lock();
        if notes.len() < 20 {
            notes.push(what);
        }
    }

    fn op(&self) {
        self.ops.fetch_add(1, Ordering::Relaxed);
    }
}

fn options() -> Options {
    Options::default()
        .write_buffer_size(16 * 1024)
        .block_size(512)
        .manifest_rewrite_threshold_bytes(8 * 1024)
        .target_table_size(8 * 1024)
        .base_level_size(32 * 1024)
        .level_size_multiplier(2)
        .l0_compaction_trigger(2)
        .compaction_threads(2)
        .value_threshold(Some(128))
        .vlog_file_size(16 * 1024)
}

#[test]
fn concurrent_operations_match_the_oracle_and_keep_the_bank_total() {
    let secs: u64 = std::env::var("JKV_STRESS_SECS")
        .ok()
        .map(|s| s.parse().expect("JKV_STRESS_SECS is a number of seconds"))
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    let mut batch = WriteBatch::new();
    let mut rng = StdRng::seed_from_u64(7);
    for a in 0..ACCOUNTS {
        batch.put(account(a), balance_value(BALANCE_START, &mut rng));
    }
    db.write(batch, WriteOptions { sync: true }).unwrap();

    let shared = Arc::new(Shared {
        db,
        oracle: Mutex::new(vec![KeyState::default(); KEYS]),
        bank: Mutex::new(()),
        stop: AtomicBool::new(false),
        ops: AtomicU64::new(0),
        mismatches: AtomicU64::new(0),
        unchecked: AtomicU64::new(0),
        notes: Mutex::new(Vec::new()),
    });
    start_watchdog(shared.clone());

    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let s = shared.clone();
        handles.push(thread::spawn(move || writer(&s, w)));
    }
    for t in 0..2 {
        let s = shared.clone();
        handles.push(thread::spawn(move || transferer(&s, t)));
    }
    {
        let s = shared.clone();
        handles.push(thread::spawn(move || auditor(&s)));
    }
    {
        let s = shared.clone();
        handles.push(thread::spawn(move || maintenance(&s)));
    }
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        thread::sleep(Duration::from_millis(100));
    }
    shared.stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("a stress thread panicked");
    }

    let stats = shared.db.stats();
    let (flushes, compactions, gc_files) = (
        stats.flushes,
        stats.compactions + stats.compaction_moves,
        stats.vlog_gc_files,
    );
    shared.db.close().unwrap();

    // Reopen: the database equals the oracle, the bank total holds.
    let db = Db::open(dir.path(), options()).unwrap();
    let oracle = shared.oracle.lock().clone();
    for (n, state) in oracle.iter().enumerate() {
        match db.get(key(n)) {
            Ok(got) if got.as_deref() == state.committed.as_deref() => {}
            other => shared.mismatch(format!(
                "after reopen k{n:04} reads {}, the oracle has {}",
                show(&other.map(|v| v.map(|v| v.to_vec()))),
                show_value(state.committed.as_deref())
            )),
        }
    }
    audit_once(&shared, &db);
    db.close().unwrap();

    let ops = shared.ops.load(Ordering::Relaxed);
    let mismatches = shared.mismatches.load(Ordering::Relaxed);
    println!(
        "ops={ops} mismatches={mismatches} (unchecked reads={}, flushes={flushes}, \
         compactions={compactions}, vlog_gc_files={gc_files}, {secs}s)",
        shared.unchecked.load(Ordering::Relaxed)
    );
    for note in shared.notes.lock().iter() {
        println!("MISMATCH {note}");
    }
    assert_eq!(mismatches, 0, "{mismatches} mismatches");
    assert!(ops > 1_000, "only {ops} operations in {secs}s");
    assert!(flushes > 0 && compactions > 0, "no flush or compaction ran");
    assert!(gc_files > 0, "value-log GC never collected a file");
}

/// Writes to the keys of writer `w`: puts, deletes and batches, about one
/// in ten synced; reads and scans any key in between.
fn writer(s: &Shared, w: usize) {
    let mut rng = StdRng::seed_from_u64(100 + w as u64);
    let own: Vec<usize> = (0..KEYS).filter(|n| n % WRITERS == w).collect();
    let mut seq = 0u64;
    while !s.stop.load(Ordering::Relaxed) {
        match rng.gen_range(0..10) {
            0..=3 => {
                let count = if rng.gen_bool(0.3) {
                    rng.gen_range(2..8)
                } else {
                    1
                };
                let mut entries: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
                for _ in 0..count {
                    let n = own[rng.gen_range(0..own.len())];
                    if entries.iter().any(|(m, _)| *m == n) {
                        continue;
                    }
                    seq += 1;
                    let v = rng.gen_bool(0.8).then(|| value(n, w, seq, &mut rng));
                    entries.push((n, v));
                }
                write_entries(s, &entries, rng.gen_bool(0.1));
            }
            4..=7 => {
                let n = rng.gen_range(0..KEYS);
                check_get(s, n);
            }
            _ => {
                let lo = rng.gen_range(0..KEYS);
                let hi = (lo + rng.gen_range(1..20)).min(KEYS);
                check_scan(s, lo, hi);
            }
        }
    }
}

fn write_entries(s: &Shared, entries: &[(usize, Option<Vec<u8>>)], sync: bool) {
    {
        let mut oracle = s.oracle.lock();
        for (n, v) in entries {
            oracle[*n].in_flight = Some(v.clone());
        }
    }
    let mut batch = WriteBatch::new();
    for (n, v) in entries {
        match v {
            Some(v) => batch.put(key(*n), v),
            None => batch.delete(key(*n)),
        };
    }
    let result = s.db.write(batch, WriteOptions { sync });
    let mut oracle = s.oracle.lock();
    for (n, v) in entries {
        let state = &mut oracle[*n];
        state.in_flight = None;
        if result.is_ok() {
            state.committed = v.clone();
            state.generation += 1;
        }
    }
    drop(oracle);
    match result {
        Ok(_) => s.op(),
        Err(e) => s.mismatch(format!("write of {} entries failed: {e}", entries.len())),
    }
}

/// The values a read of key `n` may return, from the oracle before and
/// after the read; `None` when too much happened in between to tell.
fn allowed(before: &KeyState, after: &KeyState) -> Option<Vec<Option<Vec<u8>>>> {
    if after.generation > before.generation + 1 {
        return None;
    }
    let mut ok = vec![before.committed.clone(), after.committed.clone()];
    ok.extend(before.in_flight.clone());
    ok.extend(after.in_flight.clone());
    Some(ok)
}

fn judge(
    s: &Shared,
    what: &str,
    n: usize,
    got: Option<&[u8]>,
    before: &KeyState,
    after: &KeyState,
) {
    match allowed(before, after) {
        None => {
            s.unchecked.fetch_add(1, Ordering::Relaxed);
        }
        Some(ok) => {
            if !ok.iter().any(|v| v.as_deref() == got) {
                s.mismatch(format!(
                    "{what} k{n:04} returned {}, the oracle allows {:?}",
                    show_value(got),
                    ok.iter()
                        .map(|v| show_value(v.as_deref()))
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
}

fn check_get(s: &Shared, n: usize) {
    let before = s.oracle.lock()[n].clone();
    let got = s.db.get(key(n));
    let after = s.oracle.lock()[n].clone();
    s.op();
    match got {
        Ok(v) => judge(s, "get", n, v.as_deref(), &before, &after),
        Err(e) => s.mismatch(format!("get k{n:04} failed: {e}")),
    }
}

/// Scans keys `lo..hi` through a snapshot and judges every key in the
/// range, present or not.
fn check_scan(s: &Shared, lo: usize, hi: usize) {
    let before: Vec<KeyState> = s.oracle.lock()[lo..hi].to_vec();
    let snapshot = s.db.snapshot();
    let mut seen: Vec<Option<Vec<u8>>> = vec![None; hi - lo];
    for item in s.db.scan(key(lo)..key(hi), &snapshot) {
        match item {
            Ok((k, v)) => {
                let n = std::str::from_utf8(&k[1..])
                    .ok()
                    .and_then(|d| d.parse::<usize>().ok())
                    .filter(|n| (lo..hi).contains(n) && k[0] == b'k');
                match n {
                    Some(n) => seen[n - lo] = Some(v.to_vec()),
                    None => {
                        s.mismatch(format!("scan k{lo:04}..k{hi:04} returned key {k:?}"));
                        return;
                    }
                }
            }
            Err(e) => {
                s.mismatch(format!("scan k{lo:04}..k{hi:04} failed: {e}"));
                return;
            }
        }
    }
    drop(snapshot);
    let after: Vec<KeyState> = s.oracle.lock()[lo..hi].to_vec();
    s.op();
    for i in 0..hi - lo {
        judge(s, "scan", lo + i, seen[i].as_deref(), &before[i], &after[i]);
    }
}

/// Moves a random amount between two random accounts in one atomic batch.
fn transferer(s: &Shared, t: usize) {
    let mut rng = StdRng::seed_from_u64(200 + t as u64);
    while !s.stop.load(Ordering::Relaxed) {
        let a = rng.gen_range(0..ACCOUNTS);
        let b = (a + rng.gen_range(1..ACCOUNTS)) % ACCOUNTS;
        let _bank = s.bank.lock();
        let read = |n: usize| -> Result<u64, String> {
            let v =
                s.db.get(account(n))
                    .map_err(|e| format!("get acct{n:02} failed: {e}"))?
                    .ok_or_else(|| format!("acct{n:02} is missing"))?;
            parse_balance(&v).ok_or_else(|| format!("acct{n:02} holds {}", show_value(Some(&v))))
        };
        let (from, to) = match (read(a), read(b)) {
            (Ok(x), Ok(y)) => (x, y),
            (Err(e), _) | (_, Err(e)) => {
                s.mismatch(e);
                continue;
            }
        };
        let amount = rng.gen_range(0..=from.min(100));
        let mut batch = WriteBatch::new();
        batch.put(account(a), balance_value(from - amount, &mut rng));
        batch.put(account(b), balance_value(to + amount, &mut rng));
        match s.db.write(
            batch,
            WriteOptions {
                sync: rng.gen_bool(0.05),
            },
        ) {
            Ok(_) => s.op(),
            Err(e) => s.mismatch(format!("transfer failed: {e}")),
        }
    }
}

fn auditor(s: &Shared) {
    while !s.stop.load(Ordering::Relaxed) {
        audit_once(s, &s.db);
    }
}

/// Sums every account through one snapshot; checks a `get_at` of one of
/// them against the scan.
fn audit_once(s: &Shared, db: &Db) {
    let snapshot = db.snapshot();
    let mut total = 0u64;
    let mut balances = Vec::with_capacity(ACCOUNTS);
    for item in db.scan_prefix(b"acct", &snapshot) {
        match item {
            Ok((k, v)) => match parse_balance(&v) {
                Some(b) => {
                    total += b;
                    balances.push((k.to_vec(), v.to_vec()));
                }
                None => {
                    return s.mismatch(format!("{k:?} holds {}", show_value(Some(&v))));
                }
            },
            Err(e) => return s.mismatch(format!("audit scan failed: {e}")),
        }
    }
    s.op();
    if balances.len() != ACCOUNTS || total != ACCOUNTS as u64 * BALANCE_START {
        return s.mismatch(format!(
            "audit saw {} accounts totalling {total}, not {ACCOUNTS} totalling {}",
            balances.len(),
            ACCOUNTS as u64 * BALANCE_START
        ));
    }
    let pick = (total as usize + balances[0].1.len()) % ACCOUNTS;
    let (k, v) = &balances[pick];
    match db.get_at(k, &snapshot) {
        Ok(Some(got)) if got.as_ref() == v.as_slice() => {}
        other => s.mismatch(format!(
            "get_at {k:?} on the audit snapshot returned {}, the scan {}",
            show(&other.map(|v| v.map(|v| v.to_vec()))),
            show_value(Some(v))
        )),
    }
}

/// Flushes, compacts and garbage-collects at random moments.
fn maintenance(s: &Shared) {
    let mut rng = StdRng::seed_from_u64(300);
    while !s.stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(rng.gen_range(20..200)));
        let (what, result) = match rng.gen_range(0..10) {
            0..=3 => ("flush", s.db.flush()),
            4..=5 => {
                let lo = rng.gen_range(0..KEYS);
                let hi = (lo + rng.gen_range(1..100)).min(KEYS - 1);
                ("compact_range", s.db.compact_range(key(lo)..=key(hi)))
            }
            6 => ("compact", s.db.compact()),
            _ => ("vlog_gc", s.db.vlog_gc().map(|_| ())),
        };
        match result {
            Ok(()) => s.op(),
            Err(e) => s.mismatch(format!("{what} failed: {e}")),
        }
        if let Err(e) = s.db.health() {
            s.mismatch(format!("health: {e}"));
            return;
        }
    }
}

/// Aborts the process when no operation completes for 60 s.
fn start_watchdog(s: Arc<Shared>) {
    thread::spawn(move || {
        let mut last = u64::MAX;
        loop {
            thread::sleep(Duration::from_secs(60));
            if s.stop.load(Ordering::Relaxed) {
                return;
            }
            let now = s.ops.load(Ordering::Relaxed);
            if now == last {
                eprintln!("stress: no operation completed for 60 s after {now}: hang");
                std::process::abort();
            }
            last = now;
        }
    });
}

fn show_value(v: Option<&[u8]>) -> String {
    match v {
        None => "absent".into(),
        Some(v) => format!(
            "{:?} ({} bytes)",
            String::from_utf8_lossy(&v[..v.len().min(24)]),
            v.len()
        ),
    }
}

fn show(r: &jkv::Result<Option<Vec<u8>>>) -> String {
    match r {
        Ok(v) => show_value(v.as_deref()),
        Err(e) => format!("error {e}"),
    }
}
