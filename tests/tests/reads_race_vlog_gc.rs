//! Reads racing value-log garbage collection never meet a deleted file.
//!
//! A new snapshot reads the visible sequence number and pins it in one step,
//! and a plain `get` takes its super version before reading the sequence
//! number; otherwise GC could retire and delete a file between the two and
//! the read would follow an old pointer into it ("no such file"). Found by
//! `crash_states.rs` (a scan right after reopening, while the reopened
//! database's background GC ran; about 0.7% of runs of its seed 2 before
//! the fix, none in 500 after). The window is too small for this test to
//! hit it reliably (it passed against the old code too); it checks the
//! behaviour around it: scans, snapshots and gets running against constant
//! GC all succeed and return values some writer wrote.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};

use jkv::{Db, Options};

fn options() -> Options {
    Options::default()
        .write_buffer_size(64 * 1024)
        .value_threshold(Some(64))
        .vlog_file_size(8 * 1024)
}

fn value(round: usize, key: usize) -> Vec<u8> {
    let mut v = format!("r{round}k{key}:").into_bytes();
    v.resize(200, b'v');
    v
}

#[test]
fn snapshots_scans_and_gets_during_gc_never_fail() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    const KEYS: usize = 8;
    for k in 0..KEYS {
        db.put(format!("k{k}"), value(0, k)).unwrap();
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            // Overwrite everything again and again, collecting as we go.
            for round in 1..400 {
                for k in 0..KEYS {
                    db.put(format!("k{k}"), value(round, k)).unwrap();
                }
                if round % 5 == 0 {
                    db.vlog_gc().unwrap();
                }
            }
            stop.store(true, Ordering::Release);
        });
        s.spawn(|| {
            let mut reads = 0u64;
            while !stop.load(Ordering::Acquire) {
                let snapshot = db.snapshot();
                let mut n = 0;
                for item in db.scan::<Vec<u8>>(.., &snapshot) {
                    let (k, v) = item.expect("scan during GC");
                    assert!(v.starts_with(b"r"), "{k:?} -> {v:?}");
                    n += 1;
                }
                assert_eq!(n, KEYS);
                let got = db.get("k3").expect("get during GC").expect("k3 exists");
                assert!(got.starts_with(b"r") && got.ends_with(b"v"));
                reads += 1;
            }
            assert!(reads > 0);
        });
    });
    assert!(db.stats().vlog_gc_files > 0, "the test must exercise GC");
}
