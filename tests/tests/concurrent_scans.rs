//! Concurrency: reader threads scan and get while a writer writes atomic
//! batches and flushes. Every batch sets all keys of a group to the same
//! round number, so a consistent snapshot sees one round number per scan;
//! a scan that mixed rounds would have seen part of a batch.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use jkv::{Db, WriteBatch, WriteOptions};
use jkv_tests::small_options;

const KEYS: u32 = 200;

fn group_key(i: u32) -> Vec<u8> {
    format!("g{i:04}").into_bytes()
}

#[test]
fn scans_see_consistent_snapshots_during_writes_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), small_options()).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let mut batch = WriteBatch::new();
    for i in 0..KEYS {
        batch.put(group_key(i), 0u64.to_be_bytes());
    }
    db.write(batch, WriteOptions::default()).unwrap();

    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut scans = 0u64;
                let mut last_round = 0u64;
                while !stop.load(Ordering::Relaxed) || scans < 20 {
                    let snap = db.snapshot();
                    let items: Vec<_> = if r % 2 == 0 {
                        db.scan::<&[u8]>(.., &snap).map(|i| i.unwrap()).collect()
                    } else {
                        db.scan_rev::<&[u8]>(.., &snap)
                            .map(|i| i.unwrap())
                            .collect()
                    };
                    assert_eq!(items.len(), KEYS as usize, "a scan lost keys");
                    let round = u64::from_be_bytes(items[0].1.as_ref().try_into().unwrap());
                    for (k, v) in &items {
                        let v = u64::from_be_bytes(v.as_ref().try_into().unwrap());
                        assert_eq!(v, round, "scan mixed rounds at {k:?}");
                    }
                    assert!(round >= last_round, "rounds went backwards");
                    last_round = round;
                    // A get at the same snapshot agrees with the scan.
                    let got = db.get_at(group_key(KEYS / 2), &snap).unwrap().unwrap();
                    assert_eq!(u64::from_be_bytes(got.as_ref().try_into().unwrap()), round);
                    scans += 1;
                }
                scans
            })
        })
        .collect();

    for round in 1..=300u64 {
        let mut batch = WriteBatch::new();
        for i in 0..KEYS {
            batch.put(group_key(i), round.to_be_bytes());
        }
        db.write(batch, WriteOptions::default()).unwrap();
        if round % 50 == 0 {
            db.flush().unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() >= 20);
    }
    let stats = db.stats();
    assert!(stats.flushes > 0, "the workload never flushed");
}

#[test]
fn concurrent_writers_are_grouped_and_all_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), small_options()).unwrap());
    let writers: Vec<_> = (0..8u32)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for n in 0..200u32 {
                    let mut batch = WriteBatch::new();
                    batch.put(format!("t{t}-{n:04}"), n.to_le_bytes());
                    db.write(batch, WriteOptions { sync: n % 10 == 0 }).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    for t in 0..8u32 {
        for n in 0..200u32 {
            let v = db.get(format!("t{t}-{n:04}")).unwrap().unwrap();
            assert_eq!(v.as_ref(), n.to_le_bytes());
        }
    }
    let stats = db.stats();
    assert_eq!(stats.writes, 1600);
    assert!(stats.write_groups <= stats.writes);
}
