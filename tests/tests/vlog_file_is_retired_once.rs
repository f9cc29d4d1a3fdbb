//! A collected value-log file is removed from the manifest exactly once,
//! however retirement and collection runs interleave.
//!
//! Regression: retirement (`retire_collected_vlogs`, which the flush thread
//! also runs after a flush when it finds nothing to collect) took the files
//! it found ready out of the pending list, released that list's lock, and
//! only then took the manifest lock to remove them. A collection run (a
//! background one started by an idle tick or a compaction) that read the
//! pending list in that window, and the manifest after it, saw such a file
//! neither pending nor gone from the manifest, picked it again (here:
//! dropped it as all dead) and retired it itself; the first retirement then
//! failed with `InvalidArgument("manifest edit rejected: cannot remove
//! value log 2: not live")` and poisoned the database, so the next write
//! or `wait_for_compactions` failed. No I/O fault is needed: found by
//! `io_error_injection.rs` (seed 200 of the compaction and GC mix, where an
//! EIO on removing a compacted table only shifted the timing).
//!
//! The sequence: a snapshot holds the file that `Compact` made GC collect
//! (step `Snapshot`, then `Compact`, `VlogGc`), `WaitForCompactions` lets
//! the snapshot go, so the file becomes ready for retirement while the
//! idle database runs garbage compactions, flushes and collections at
//! once. Before the fix about one run of this workload in 150 to 800
//! failed; the loop runs it enough times to hit the window, and each run
//! must complete every step and reopen to its last state.
#![allow(clippy::unwrap_used)]

use jkv_tests::simfs::SimFs;
use jkv_tests::workload::{
    check_crash_image_with, gc_crash_options, gc_workload, run_recorded_with,
};

/// The seed of `io_error_injection.rs` that found the race.
const SEED: u64 = 200;
const STEPS: usize = 40;
const RUNS: usize = 3000;

#[test]
fn retirement_racing_a_collection_run_never_removes_a_file_twice() {
    let steps = gc_workload(SEED, STEPS);
    let mut collected = 0u64;
    for run in 0..RUNS {
        let fs = SimFs::new();
        // Every step must succeed: a poisoned database fails the next one.
        let log = run_recorded_with(&fs, &steps, gc_crash_options);
        collected += log.vlog_gc_files;
        let last = log.states.len() - 1;
        check_crash_image_with(&fs.full_image(), &log.states, last, last, gc_crash_options)
            .unwrap_or_else(|e| panic!("run {run}: reopening after close: {e}"));
    }
    assert!(
        collected >= RUNS as u64,
        "the workload must collect value-log files ({collected} in {RUNS} runs)"
    );
}
