//! Automatic garbage compaction: without any call to `compact`, the last
//! level compacts a table into itself once the tombstones and older
//! versions it holds for a snapshot are no longer needed, and a database
//! that has seen no write for a while merges what shadows the last level
//! into it and flushes its memtable, bringing its space down. Reads see
//! the same data throughout.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jkv::{Db, Options};
use jkv_tests::{files_with_ext, small_options};

/// Every key and value of `db`.
fn contents(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let snap = db.snapshot();
    db.scan::<&[u8]>(.., &snap)
        .map(|kv| {
            let (k, v) = kv.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Polls `done` for up to 20 s.
fn eventually(what: &str, db: &Db, mut done: impl FnMut(&Db) -> bool) {
    let start = Instant::now();
    while !done(db) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{what} did not happen by itself:\n{}",
            db.stats()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn key(n: u32) -> Vec<u8> {
    format!("key{n:06}").into_bytes()
}

fn value(n: u32, round: u32) -> Vec<u8> {
    format!("value {n} of round {round} {}", "x".repeat(60)).into_bytes()
}

#[test]
fn versions_kept_for_a_snapshot_are_dropped_once_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_options().value_threshold(None)).unwrap();
    let mut model = BTreeMap::new();
    for n in 0..2000 {
        db.put(key(n), value(n, 0)).unwrap();
    }
    let snapshot = db.snapshot();
    for n in 0..2000 {
        if n % 2 == 0 {
            db.delete(key(n)).unwrap();
        } else {
            db.put(key(n), value(n, 1)).unwrap();
            model.insert(key(n), value(n, 1));
        }
    }
    // Everything into the last level; the snapshot keeps round 0 there.
    db.compact().unwrap();
    let held = db.stats().table_bytes();
    assert_eq!(contents(&db), model);
    assert_eq!(
        db.get_at(key(2), &snapshot).unwrap(),
        Some(value(2, 0).into())
    );

    // While the snapshot lives nothing can be dropped, and waiting does
    // not spin on tables it would only write again.
    db.wait_for_compactions().unwrap();
    assert_eq!(db.stats().garbage_compactions, 0, "{}", db.stats());
    assert_eq!(
        db.get_at(key(4), &snapshot).unwrap(),
        Some(value(4, 0).into())
    );

    drop(snapshot);
    eventually("bottom-level self-compaction", &db, |db| {
        let stats = db.stats();
        stats.garbage_compactions > 0
            && stats.compactions_running == 0
            && (stats.table_bytes() as f64) < 0.5 * held as f64
    });
    let stats = db.stats();
    assert_eq!(
        stats.levels.iter().map(|l| l.tables).sum::<usize>(),
        stats.levels.last().unwrap().tables,
        "everything stays in the last level:\n{stats}"
    );
    assert_eq!(contents(&db), model);
    db.close().unwrap();
    let db = Db::open(dir.path(), small_options().value_threshold(None)).unwrap();
    assert_eq!(contents(&db), model);
}

#[test]
fn an_idle_database_brings_its_space_down_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    // Stored raw: the space figures below compare table bytes with the
    // live bytes, and LZ4 at the bottom level (the default) would shrink
    // this test's repetitive values below the garbage the writes leave.
    // Last-level tables of 64 KiB: a large database's last level is many
    // tables, and idle merging rewrites only those the newer data overlaps
    // (with one table it would rewrite all of it to reclaim a fifth).
    let options = || {
        Options::default()
            .write_buffer_size(256 * 1024)
            .target_table_size(64 * 1024)
            .value_threshold(None)
            .compression(jkv::Compression::None)
    };
    let db = Db::open(dir.path(), options()).unwrap();
    let mut model = BTreeMap::new();
    for round in 0..3 {
        for n in 0..10_000 {
            db.put(key(n), value(n, round)).unwrap();
            model.insert(key(n), value(n, round));
        }
    }
    let live: u64 = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    let busy = dir_bytes(dir.path());
    assert!(
        busy as f64 > 1.5 * live as f64,
        "the writes should leave garbage: {busy} bytes for {live}\n{}",
        db.stats()
    );
    // No compact, no flush, no wait: only time passes.
    eventually("idle compaction", &db, |db| {
        let stats = db.stats();
        stats.levels[0].tables == 0
            && stats.compactions_running == 0
            && stats.frozen_memtables == 0
            && (dir_bytes(dir.path()) as f64) < 1.3 * live as f64
    });
    assert!(db.stats().garbage_compactions > 0, "{}", db.stats());
    assert_eq!(contents(&db), model);
    // The memtable was flushed: its WAL is (almost) empty.
    let wal: u64 = files_with_ext(dir.path(), "wal")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(wal < 64 * 1024, "{wal} bytes of WAL");
    db.close().unwrap();
}

#[test]
fn a_trickle_of_writes_does_not_make_tiny_tables() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default().value_threshold(None)).unwrap();
    for n in 0..5 {
        db.put(key(n), value(n, 0)).unwrap();
        std::thread::sleep(Duration::from_millis(700));
    }
    let stats = db.stats();
    assert_eq!(stats.flushes, 0, "{stats}");
    assert_eq!(stats.compactions, 0, "{stats}");
    db.close().unwrap();
}

#[test]
fn a_database_serving_reads_is_not_idle() {
    let dir = tempfile::tempdir().unwrap();
    // L0 never reaches its trigger: what is there only idle merging takes.
    let options = Options::default()
        .write_buffer_size(256 * 1024)
        .l0_compaction_trigger(100)
        .l0_slowdown_writes_trigger(200)
        .l0_stop_writes_trigger(300)
        .value_threshold(None);
    let db = Db::open(dir.path(), options).unwrap();
    for round in 0..3 {
        for n in 0..10_000 {
            db.put(key(n), value(n, round)).unwrap();
        }
    }
    // Reads for two seconds (four ticks of the flush thread): no idle work.
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(2) {
        assert_eq!(
            db.get(key(n % 10_000)).unwrap(),
            Some(value(n % 10_000, 2).into())
        );
        n += 1;
    }
    let stats = db.stats();
    assert_eq!(stats.garbage_compactions, 0, "{stats}");
    assert!(stats.levels[0].tables > 0, "{stats}");
    // Once the reads stop, it is.
    eventually("idle compaction", &db, |db| {
        let stats = db.stats();
        stats.garbage_compactions > 0 && stats.levels[0].tables == 0
    });
    db.close().unwrap();
}
