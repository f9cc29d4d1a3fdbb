//! I/O errors at every operation: for every k, the k-th file-system
//! operation of seeded workloads fails with EIO (once) and with ENOSPC (for
//! good, disk full). The workloads are three of the plain mix and two of
//! the compaction and value-log GC mix (`gc_workload`: value log, tiny
//! tables, background and explicit compactions, `vlog_gc`), so faults also
//! hit compaction outputs, value-log appends and GC rewrites. Checked:
//! - every error the caller gets is typed: `Error::Io { op, path, .. }`
//!   carrying the injected errno and naming a path that failed, or
//!   `Error::ReadOnly` wrapping one;
//! - a failed write is never acknowledged, and a write that fails without
//!   making the database read-only left no trace;
//! - after a failed fsync the database refuses writes with `ReadOnly`, reads
//!   keep working, `health()` is `Err` and `stats().health` says why;
//! - with the fault removed, reopening what the process left (every byte
//!   handed to the OS) holds every acknowledged write, and reopening what a
//!   machine crash leaves (synced bytes only) holds every write
//!   acknowledged with sync; both are a prefix of the writes and leave no
//!   orphan files after a second open.
//!
//! Prints the number of injections and how they surfaced.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jkv::{Db, Error, WriteOptions};
use jkv_format::FileSystem;
use jkv_tests::simfs::{Errno, Fault, OpKind, SimFs};
use jkv_tests::workload::{
    check_crash_image_with, crash_options, db_dir, gc_crash_options, gc_workload, read_all,
    run_compaction, run_recorded_with, workload, ModelState, OptionsFn, Step,
};

const SEEDS: [u64; 3] = [100, 101, 102];
/// Seeds of the compaction and GC mix (one with hot keys, one without).
const GC_SEEDS: [u64; 2] = [200, 201];
const STEPS: usize = 40;

/// Bumped by each injection; a watchdog aborts if it stalls (a hang).
static PROGRESS: AtomicU64 = AtomicU64::new(0);

#[test]
fn every_io_error_is_typed_and_loses_nothing_acknowledged() {
    start_watchdog();
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut injections = 0u64;
    let mixes = SEEDS
        .iter()
        .map(|&s| (s, workload(s, STEPS), crash_options as OptionsFn))
        .chain(
            GC_SEEDS
                .iter()
                .map(|&s| (s, gc_workload(s, STEPS), gc_crash_options as OptionsFn)),
        );
    for (seed, steps, options) in mixes {
        let total = {
            let fs = SimFs::new();
            run_recorded_with(&fs, &steps, options);
            fs.count_all()
        };
        for k in 1..=total {
            for (errno, sticky) in [(Errno::Eio, false), (Errno::Enospc, true)] {
                injections += 1;
                PROGRESS.fetch_add(1, Ordering::Relaxed);
                let outcome = run_with_fault(&steps, options, k, errno, sticky).unwrap_or_else(|why| {
                    panic!("seed {seed}, operation {k} failing with {errno:?} (sticky {sticky}): {why}")
                });
                *outcomes.entry(outcome).or_default() += 1;
            }
        }
    }
    println!("injections={injections} outcomes={outcomes:?}");
    assert!(injections >= 600, "only {injections} injections");
    let not_reached = outcomes.get("not reached").copied().unwrap_or(0);
    assert!(
        not_reached * 20 < injections,
        "{not_reached} faults never fired"
    );
    assert!(outcomes.keys().any(|o| o.starts_with("read-only after")));
}

/// What one run saw: acknowledged writes and the write that failed.
struct Run {
    /// `states[i]`: model after the first `i` acknowledged writes.
    states: Vec<ModelState>,
    /// Acknowledged writes made durable (sync write, flush, close).
    durable: usize,
    /// The model if the failed write (which poisoned the database) did land.
    maybe: Option<ModelState>,
}

/// Runs `steps` with the `k`-th operation failing; checks every error and
/// the recovery. Returns how the fault surfaced.
fn run_with_fault(
    steps: &[Step],
    options: OptionsFn,
    k: u64,
    errno: Errno,
    sticky: bool,
) -> Result<String, String> {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).map_err(|e| e.to_string())?;
    fs.inject(Fault {
        kind: None,
        nth: k,
        error: errno,
        sticky,
    });
    let mut run = Run {
        states: vec![ModelState::new()],
        durable: 0,
        maybe: None,
    };
    let mut outcome = String::from("no error surfaced");
    let mut db = Some(open(&fs, options, errno, &mut outcome)?);
    let mut held = Vec::new();
    for step in steps {
        let Some(d) = db.as_ref() else { break };
        match step {
            Step::Write { .. } | Step::DeleteRange { .. } => {
                let (batch, sync) = step.batch().expect("a write step");
                match d.write(batch, WriteOptions { sync }) {
                    Ok(_) => {
                        let mut next = run.states.last().expect("non-empty").clone();
                        step.apply_to(&mut next);
                        run.states.push(next);
                        if sync {
                            run.durable = run.states.len() - 1;
                        }
                    }
                    Err(e) => {
                        check_typed(&fs, &e, errno)?;
                        if d.health().is_ok() {
                            // Refused without harm: the write must not land.
                            outcome = "write failed, database healthy".into();
                            continue;
                        }
                        let mut next = run.states.last().expect("non-empty").clone();
                        step.apply_to(&mut next);
                        run.maybe = Some(next);
                        outcome = check_read_only(&fs, d, &run, "write")?;
                        break;
                    }
                }
            }
            Step::Flush => match d.flush() {
                Ok(()) => run.durable = run.states.len() - 1,
                Err(e) => {
                    check_typed(&fs, &e, errno)?;
                    outcome = check_read_only(&fs, d, &run, "flush")?;
                    break;
                }
            },
            Step::Compact | Step::CompactRange(..) => match run_compaction(d, step) {
                Ok(()) => run.durable = run.states.len() - 1,
                Err(e) => {
                    check_typed(&fs, &e, errno)?;
                    if d.health().is_ok() {
                        outcome = "compaction failed, database healthy".into();
                        continue;
                    }
                    outcome = check_read_only(&fs, d, &run, "compaction")?;
                    break;
                }
            },
            Step::VlogGc => {
                if let Err(e) = d.vlog_gc() {
                    check_typed(&fs, &e, errno)?;
                    if d.health().is_ok() {
                        outcome = "vlog gc failed, database healthy".into();
                        continue;
                    }
                    outcome = check_read_only(&fs, d, &run, "vlog gc")?;
                    break;
                }
            }
            Step::Snapshot => held.push(d.snapshot()),
            Step::WaitForCompactions => {
                held.clear();
                if let Err(e) = d.wait_for_compactions() {
                    check_typed(&fs, &e, errno)?;
                    outcome = check_read_only(&fs, d, &run, "wait for compactions")?;
                    break;
                }
            }
            Step::Reopen => {
                let d = db.take().expect("checked above");
                match d.close() {
                    Ok(()) if d.health().is_ok() => run.durable = run.states.len() - 1,
                    Ok(()) => {
                        outcome = failed_during_close(&d)?;
                        break;
                    }
                    Err(e) => {
                        check_typed(&fs, &e, errno)?;
                        outcome = "close failed".into();
                        break;
                    }
                }
                drop(d);
                match Db::open(db_dir(), options(&fs)) {
                    Ok(d) => db = Some(d),
                    Err(e) => {
                        check_typed(&fs, &e, errno)?;
                        outcome = "reopen failed".into();
                        break;
                    }
                }
            }
        }
    }
    if let Some(d) = db.take() {
        if d.health().is_err() && !outcome.starts_with("read-only") {
            // Poisoned by the flush thread after the last step.
            outcome = check_read_only(&fs, &d, &run, "background")?;
        }
        match d.close() {
            Ok(()) if d.health().is_ok() => run.durable = run.states.len() - 1,
            Ok(()) => {
                let why = failed_during_close(&d)?;
                if !outcome.starts_with("read-only") {
                    outcome = why;
                }
            }
            Err(e) => {
                check_typed(&fs, &e, errno)?;
                if outcome == "no error surfaced" {
                    outcome = "close failed".into();
                }
            }
        }
    }
    let failed = fs.failed_ops();
    if failed.is_empty() {
        // The flush thread makes the operation count vary a little from run
        // to run; a k past this run's end injects nothing.
        fs.clear_faults();
        recover_and_check(&fs, &run, options)?;
        return Ok("not reached".into());
    }
    if failed[0].0 == OpKind::Sync
        && !outcome.contains("read-only")
        && outcome != "open failed"
        && !outcome.starts_with("background")
    {
        // A failed fsync must never be shrugged off: it surfaces as an
        // error (the write, flush or close that needed it fails).
        if outcome == "no error surfaced" || outcome == "write failed, database healthy" {
            return Err(format!(
                "fsync of {:?} failed but the database went on ({outcome})",
                failed[0].1
            ));
        }
    }
    fs.clear_faults();
    recover_and_check(&fs, &run, options)?;
    Ok(format!("{outcome} ({:?})", failed[0].0))
}

fn open(fs: &SimFs, options: OptionsFn, errno: Errno, outcome: &mut String) -> Result<Db, String> {
    match Db::open(db_dir(), options(fs)) {
        Ok(db) => Ok(db),
        Err(e) => {
            check_typed(fs, &e, errno)?;
            *outcome = "open failed".into();
            // The fault was in open; run the workload on a clean retry so
            // later injections are still meaningful (nothing was
            // acknowledged before).
            fs.clear_faults();
            Db::open(db_dir(), options(fs)).map_err(|e| format!("reopen after open fault: {e}"))
        }
    }
}

/// `e` must be `Io` with the injected errno naming a failed path, or
/// `ReadOnly` wrapping such an error.
fn check_typed(fs: &SimFs, e: &Error, errno: Errno) -> Result<(), String> {
    match e {
        Error::ReadOnly(cause) => check_typed(fs, cause, errno),
        Error::Io { op, path, source } => {
            let failed: Vec<PathBuf> = fs.failed_ops().into_iter().map(|(_, p)| p).collect();
            if !errno.matches(source) {
                return Err(format!("error {e} does not carry the injected {errno:?}"));
            }
            if op.is_empty() || !failed.contains(path) {
                return Err(format!(
                    "error {e} does not name a failed path ({failed:?})"
                ));
            }
            Ok(())
        }
        other => Err(format!(
            "untyped or wrong error for an I/O fault: {other:?}"
        )),
    }
}

/// The database refuses writes; reads, `health` and `stats` say why.
fn check_read_only(fs: &SimFs, db: &Db, run: &Run, when: &str) -> Result<String, String> {
    let health = db.health();
    let Err(Error::ReadOnly(cause)) = &health else {
        return Err(format!("health after a failed {when} is {health:?}"));
    };
    let why = db
        .stats()
        .health
        .ok_or("stats().health is None while health() is Err")?;
    if !why.contains(&cause.to_string()) {
        return Err(format!(
            "stats().health {why:?} does not give the cause {cause}"
        ));
    }
    match db.put(b"k00", b"after the failure") {
        Err(Error::ReadOnly(_)) => {}
        other => return Err(format!("write after the failure returned {other:?}")),
    }
    // Reads keep working (faults may still be armed: only check when the
    // disk answers again).
    fs.clear_faults();
    let contents = read_all(db)?;
    let last = run.states.last().expect("non-empty");
    if &contents != last && run.maybe.as_ref() != Some(&contents) {
        return Err(format!(
            "reads after the failure see {contents:?}, not the acknowledged writes"
        ));
    }
    Ok(format!("read-only after {when}"))
}

/// The flush thread failed while `close` waited for it: `close` returned
/// `Ok` (the WAL holds every acknowledged write), `health()` must report
/// the failure, and the handle refuses writes.
fn failed_during_close(db: &Db) -> Result<String, String> {
    let Err(Error::ReadOnly(cause)) = db.health() else {
        return Err("health() is not ReadOnly after a background failure".into());
    };
    if !matches!(db.put(b"k00", b"after close"), Err(Error::Closed)) {
        return Err("a closed handle accepted a write".into());
    }
    Ok(format!(
        "background failure during close: {}",
        kind_of(&cause)
    ))
}

fn kind_of(e: &Error) -> &'static str {
    match e {
        Error::Io { op, .. } => op,
        Error::ReadOnly(inner) => kind_of(inner),
        _ => "other",
    }
}

/// Reopens what a process crash leaves and what a machine crash leaves.
fn recover_and_check(fs: &SimFs, run: &Run, options: OptionsFn) -> Result<(), String> {
    let mut states = run.states.clone();
    let acked = states.len() - 1;
    let hi = match &run.maybe {
        Some(s) => {
            states.push(s.clone());
            acked + 1
        }
        None => acked,
    };
    check_crash_image_with(&fs.full_image(), &states, acked, hi, options)
        .map_err(|e| format!("process-crash reopen: {e}"))?;
    check_crash_image_with(&fs.synced_image(), &states, run.durable, hi, options)
        .map_err(|e| format!("machine-crash reopen: {e}"))?;
    Ok(())
}

/// Aborts the process when an injection makes no progress for 90 s (an
/// engine hang), so the suite fails instead of stalling.
fn start_watchdog() {
    let progress = Arc::new(());
    std::thread::spawn(move || {
        let _keep = progress;
        let mut last = u64::MAX;
        loop {
            std::thread::sleep(Duration::from_secs(90));
            let now = PROGRESS.load(Ordering::Relaxed);
            if now == last {
                eprintln!("io_error_injection: no progress for 90 s after injection {now}: hang");
                std::process::abort();
            }
            last = now;
        }
    });
}
