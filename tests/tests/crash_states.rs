//! Crash safety at every file-system operation: seeded small workloads run
//! on the simulated file system, in two mixes:
//! - plain: puts, deletes, range deletes, batches, some synced, flushes, a
//!   reopen; 4 KiB
//!   memtable and 1 KiB manifest threshold, so each flushes and rewrites the
//!   manifest;
//! - compaction and GC: the same kinds of writes with values of 64 bytes or
//!   more in 4 KiB value-log files (and range deletes over them), 1 KiB
//!   tables and a 2 KiB base level (so
//!   background compactions run), plus `compact`, `compact_range` and
//!   `vlog_gc` steps and hot keys overwritten until GC collects files.
//!
//! At every operation boundary of the
//! recorded run, every crash state (only synced data; everything written;
//! each unsynced tail kept, dropped, torn or zeroed; subsets of pending
//! directory operations) is opened and must:
//! - open;
//! - hold every write acknowledged with sync (or made durable by a flush or
//!   close) — and, in the process-crash state, every acknowledged write;
//! - equal the model after some prefix of the writes (writes in flight at
//!   the crash may or may not be there), with every key readable (`get`
//!   and scan return values, never `Corruption`: no pointer into a value
//!   log that a compaction or GC retired too early);
//! - show the same contents on a second open, after which only `LOCK`,
//!   `MANIFEST`, `lost/` and files the manifest names (tables, WALs and
//!   value logs) remain.
//!
//! The compaction and GC mix also counts the compactions and collected
//! value-log files of its runs and fails unless every workload compacted
//! and at least half collected files: the states must really cover those
//! paths. It found two GC bugs, now fixed, with their own regression tests:
//! `vlog_gc_then_reopen_replays_the_wal.rs` and
//! `vlog_gc_retires_only_durably_dead_values.rs`.
//!
//! Prints `states=N violations=0` per mix. `JKV_CRASH_LONG=1` checks at
//! least 50,000 states per mix (100,000 in all) instead of 10,000 (plain)
//! and 20,000 (compaction and GC, every second boundary);
//! `JKV_CRASH_SEED=S` runs one seed of each.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use jkv_tests::simfs::{Op, Replayer, SimFs};
use jkv_tests::workload::{
    check_crash_image_with, compressed_crash_options, crash_options, gc_crash_options, gc_workload,
    run_recorded_with, workload, OptionsFn, Step,
};

/// Steps per workload.
const STEPS: usize = 40;

/// One kind of workload and the options it runs with.
struct Mix {
    name: &'static str,
    workload: fn(u64, usize) -> Vec<Step>,
    options: OptionsFn,
    /// States to check by default and in long mode.
    target: usize,
    target_long: usize,
    /// Check one boundary in this many (at a random offset per workload),
    /// so a default run covers many seeds rather than a few long runs.
    stride: usize,
}

/// What a mix saw.
#[derive(Default)]
struct Tally {
    states: usize,
    boundaries: usize,
    workloads: usize,
    /// Workloads that compacted at least once, and compactions in all.
    compacting_workloads: usize,
    compactions: u64,
    /// Range-delete steps over all workloads.
    range_deletes: usize,
    /// Workloads whose value-log GC collected a file, and files in all.
    collecting_workloads: usize,
    vlog_gc_files: u64,
    /// Workloads that ran a garbage compaction, and those in all.
    garbage_workloads: usize,
    garbage_compactions: u64,
}

#[test]
fn every_crash_state_opens_to_a_prefix_of_the_writes() {
    let tally = run_mix(&Mix {
        name: "plain",
        workload,
        options: crash_options,
        target: 10_000,
        target_long: 50_000,
        stride: 1,
    });
    assert!(tally.states > 0);
}

#[test]
fn every_crash_state_through_compaction_and_vlog_gc_opens_to_a_prefix_of_the_writes() {
    let tally = run_mix(&Mix {
        name: "compaction+gc",
        workload: gc_workload,
        options: gc_crash_options,
        target: 20_000,
        target_long: 50_000,
        stride: 2,
    });
    // Every workload compacts explicitly; most must also collect value-log
    // files, or the GC paths went unchecked.
    assert_eq!(
        tally.compacting_workloads, tally.workloads,
        "some workloads never compacted"
    );
    assert!(
        tally.collecting_workloads * 2 >= tally.workloads,
        "only {} of {} workloads collected value-log files",
        tally.collecting_workloads,
        tally.workloads
    );
    // And automatic garbage compactions must have been crashed through.
    assert!(
        tally.garbage_workloads * 4 >= tally.workloads,
        "only {} of {} workloads ran a garbage compaction",
        tally.garbage_workloads,
        tally.workloads
    );
}

/// The compaction and GC mix with compressed blocks and value-log entries
/// (fewer states: the uncompressed mixes cover the crash points, this one
/// that recovery, compaction and GC read what compression wrote).
#[test]
fn every_crash_state_with_compression_opens_to_a_prefix_of_the_writes() {
    let tally = run_mix(&Mix {
        name: "compressed",
        workload: gc_workload,
        options: compressed_crash_options,
        target: 5_000,
        target_long: 30_000,
        stride: 3,
    });
    assert_eq!(
        tally.compacting_workloads, tally.workloads,
        "some workloads never compacted"
    );
    assert!(
        tally.collecting_workloads > 0,
        "no workload collected value-log files"
    );
}

fn run_mix(mix: &Mix) -> Tally {
    let long = std::env::var("JKV_CRASH_LONG").is_ok_and(|v| v == "1");
    let target = if long { mix.target_long } else { mix.target };
    let only_seed: Option<u64> = std::env::var("JKV_CRASH_SEED")
        .ok()
        .map(|s| s.parse().expect("JKV_CRASH_SEED is a number"));
    let started = std::time::Instant::now();
    let mut tally = Tally::default();
    let mut violations = Vec::new();
    let mut seed = only_seed.unwrap_or(0);
    loop {
        let steps = (mix.workload)(seed, STEPS);
        let fs = SimFs::new();
        let log = run_recorded_with(&fs, &steps, mix.options);
        let recording = fs.take_recording();
        assert_rotates_manifest_and_flushes(seed, &recording.ops);
        tally.workloads += 1;
        tally.range_deletes += steps
            .iter()
            .filter(|s| matches!(s, Step::DeleteRange { .. }))
            .count();
        tally.compactions += log.compactions;
        tally.compacting_workloads += usize::from(log.compactions > 0);
        tally.vlog_gc_files += log.vlog_gc_files;
        tally.collecting_workloads += usize::from(log.vlog_gc_files > 0);
        tally.garbage_compactions += log.garbage_compactions;
        tally.garbage_workloads += usize::from(log.garbage_compactions > 0);

        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let offset = rng.gen_range(0..mix.stride);
        let mut checked: HashSet<(u64, usize, usize)> = HashSet::new();
        let mut replayer = Replayer::new(&recording);
        loop {
            let boundary = replayer.position();
            // The last boundary (everything done) is always checked.
            let last = boundary == recording.ops.len();
            if boundary % mix.stride == offset || last {
                tally.boundaries += 1;
                for state in replayer.crash_states(&mut rng) {
                    let (lo, hi) = log.bounds(boundary, state.process_crash);
                    let mut h = DefaultHasher::new();
                    state.image.hash(&mut h);
                    if !checked.insert((h.finish(), lo, hi)) {
                        continue;
                    }
                    tally.states += 1;
                    if let Err(why) =
                        check_crash_image_with(&state.image, &log.states, lo, hi, mix.options)
                    {
                        violations.push(format!(
                            "{} seed {seed} boundary {boundary} (after {}) state {:?}: {why}",
                            mix.name,
                            replayer
                                .last_op()
                                .map_or("nothing".into(), |op| op.to_string()),
                            state.label
                        ));
                    }
                }
            }
            if !replayer.step() {
                break;
            }
        }
        seed += 1;
        if only_seed.is_some() || tally.states >= target {
            break;
        }
    }
    println!(
        "{}: states={} violations={} (workloads={} boundaries={} range_deletes={} compactions={} \
         in {} workloads, vlog_gc_files={} in {} workloads, garbage_compactions={} in {} workloads, \
         {:.1}s)",
        mix.name,
        tally.states,
        violations.len(),
        tally.workloads,
        tally.boundaries,
        tally.range_deletes,
        tally.compactions,
        tally.compacting_workloads,
        tally.vlog_gc_files,
        tally.collecting_workloads,
        tally.garbage_compactions,
        tally.garbage_workloads,
        started.elapsed().as_secs_f64()
    );
    for v in violations.iter().take(20) {
        println!("VIOLATION {v}");
    }
    assert!(violations.is_empty(), "{} violations", violations.len());
    assert!(
        only_seed.is_some() || tally.range_deletes >= tally.workloads,
        "{} range deletes in {} workloads: the states hardly cover them",
        tally.range_deletes,
        tally.workloads
    );
    assert!(only_seed.is_some() || tally.states >= target);
    tally
}

/// Each workload must exercise flushes and a manifest rewrite, or it
/// proves less than it claims.
fn assert_rotates_manifest_and_flushes(seed: u64, ops: &[Op]) {
    let tables = ops
        .iter()
        .filter(|op| matches!(op, Op::Create { path, .. } if path.extension().is_some_and(|e| e == "sst")))
        .count();
    let rewrites = ops
        .iter()
        .filter(|op| matches!(op, Op::Rename { to, .. } if to.ends_with("MANIFEST")))
        .count();
    assert!(tables >= 2, "seed {seed}: only {tables} tables written");
    // One rename creates the database; more are rewrites.
    assert!(
        rewrites >= 2,
        "seed {seed}: the manifest was never rewritten"
    );
}
