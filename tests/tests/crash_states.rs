//! Crash safety at every file-system operation: seeded small workloads
//! (puts, deletes, batches, some synced, flushes, a reopen; 4 KiB memtable
//! and 1 KiB manifest threshold, so each flushes and rewrites the manifest)
//! run on the simulated file system; at every operation boundary of the
//! recorded run, every crash state (only synced data; everything written;
//! each unsynced tail kept, dropped, torn or zeroed; subsets of pending
//! directory operations) is opened and must:
//! - open;
//! - hold every write acknowledged with sync (or made durable by a flush or
//!   close) — and, in the process-crash state, every acknowledged write;
//! - equal the model after some prefix of the writes (writes in flight at
//!   the crash may or may not be there);
//! - show the same contents on a second open, after which only `LOCK`,
//!   `MANIFEST` and files the manifest names remain.
//!
//! Prints `states=N violations=0`. `JKV_CRASH_LONG=1` checks at least
//! 100,000 states instead of 10,000; `JKV_CRASH_SEED=S` runs one seed.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use rand::rngs::StdRng;
use rand::SeedableRng;

use jkv_tests::simfs::{Op, Replayer, SimFs};
use jkv_tests::workload::{check_crash_image, run_recorded, workload};

/// Steps per workload.
const STEPS: usize = 40;

#[test]
fn every_crash_state_opens_to_a_prefix_of_the_writes() {
    let long = std::env::var("JKV_CRASH_LONG").is_ok_and(|v| v == "1");
    let target = if long { 100_000 } else { 10_000 };
    let only_seed: Option<u64> = std::env::var("JKV_CRASH_SEED")
        .ok()
        .map(|s| s.parse().expect("JKV_CRASH_SEED is a number"));
    let started = std::time::Instant::now();
    let (mut states, mut boundaries, mut workloads) = (0usize, 0usize, 0usize);
    let mut violations = Vec::new();
    let mut seed = only_seed.unwrap_or(0);
    loop {
        let steps = workload(seed, STEPS);
        let fs = SimFs::new();
        let log = run_recorded(&fs, &steps);
        let recording = fs.take_recording();
        assert_rotates_manifest_and_flushes(seed, &recording.ops);
        workloads += 1;

        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
        let mut checked: HashSet<(u64, usize, usize)> = HashSet::new();
        let mut replayer = Replayer::new(&recording);
        loop {
            let boundary = replayer.position();
            boundaries += 1;
            for state in replayer.crash_states(&mut rng) {
                let (lo, hi) = log.bounds(boundary, state.process_crash);
                let mut h = DefaultHasher::new();
                state.image.hash(&mut h);
                if !checked.insert((h.finish(), lo, hi)) {
                    continue;
                }
                states += 1;
                if let Err(why) = check_crash_image(&state.image, &log.states, lo, hi) {
                    violations.push(format!(
                        "seed {seed} boundary {boundary} (after {}) state {:?}: {why}",
                        replayer
                            .last_op()
                            .map_or("nothing".into(), |op| op.to_string()),
                        state.label
                    ));
                }
            }
            if !replayer.step() {
                break;
            }
        }
        seed += 1;
        if only_seed.is_some() || states >= target {
            break;
        }
    }
    println!(
        "states={states} violations={} (workloads={workloads} boundaries={boundaries} in {:.1}s)",
        violations.len(),
        started.elapsed().as_secs_f64()
    );
    for v in violations.iter().take(20) {
        println!("VIOLATION {v}");
    }
    assert!(violations.is_empty(), "{} violations", violations.len());
    assert!(only_seed.is_some() || states >= target);
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
