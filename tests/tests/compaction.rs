//! Compaction: keeps the tree in shape and gives space back without
//! changing what any reader sees. Snapshots taken before a compaction read
//! the same data after it; deleting everything and compacting leaves
//! (almost) nothing on disk; two compactions run at the same time, never on
//! overlapping tables; overwrites compacted away free their space.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use jkv::{Db, Options, WriteBatch, WriteOptions};
use jkv_tests::{files_with_ext, key, small_options};

fn dir_bytes(dir: &std::path::Path, ext: &str) -> u64 {
    files_with_ext(dir, ext)
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

fn wait_for_compactions(db: &Db) {
    db.wait_for_compactions().unwrap();
    let stats = db.stats();
    assert_eq!(stats.compactions_running, 0, "{stats}");
    let last = stats.levels.len() - 1;
    for level in &stats.levels[..last] {
        assert!(
            level.score < 1.0,
            "L{} still due after settling: {stats}",
            level.level
        );
    }
}

#[test]
fn snapshot_reads_the_same_data_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_options()).unwrap();
    for n in 0..2000 {
        db.put(key(n), format!("old{n}")).unwrap();
    }
    let snap = db.snapshot();
    let before: Vec<_> = db.scan::<&[u8]>(.., &snap).map(|r| r.unwrap()).collect();
    for n in 0..2000 {
        if n % 3 == 0 {
            db.delete(key(n)).unwrap();
        } else {
            db.put(key(n), format!("new{n}")).unwrap();
        }
    }
    db.compact().unwrap();
    wait_for_compactions(&db);
    let after: Vec<_> = db.scan::<&[u8]>(.., &snap).map(|r| r.unwrap()).collect();
    assert_eq!(before, after);
    assert_eq!(
        db.get_at(key(3), &snap).unwrap().as_deref(),
        Some(&b"old3"[..])
    );
    assert_eq!(db.get(key(3)).unwrap(), None);
    assert_eq!(db.get(key(4)).unwrap().as_deref(), Some(&b"new4"[..]));
    let stats = db.stats();
    assert!(stats.compactions > 0, "{stats}");
    // Everything sits in the last level now.
    let last = stats.levels.len() - 1;
    assert!(
        stats.levels[..last].iter().all(|l| l.tables == 0),
        "{stats}"
    );
}

#[test]
fn deleting_everything_and_compacting_leaves_almost_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Tables stored raw: the sizes below are of the data, not of how well
    // runs of one byte compress (the default compresses the last level).
    let options = small_options().compression(jkv::Compression::None);
    let db = Db::open(dir.path(), options).unwrap();
    let value = vec![b'v'; 200];
    for n in 0..5000 {
        db.put(key(n), &value).unwrap();
    }
    db.compact().unwrap();
    let full = dir_bytes(dir.path(), "sst");
    assert!(full > 1_000_000, "{full}");
    for n in 0..5000 {
        db.delete(key(n)).unwrap();
    }
    db.compact().unwrap();
    wait_for_compactions(&db);
    assert_eq!(db.scan::<&[u8]>(.., &db.snapshot()).count(), 0);
    let left = db.stats().table_bytes();
    assert_eq!(left, 0, "{}", db.stats());
    db.close().unwrap();
    drop(db);
    // Compacted tables are deleted once no reader holds them.
    assert!(
        dir_bytes(dir.path(), "sst") < 4096,
        "{}",
        dir_bytes(dir.path(), "sst")
    );
}

#[test]
fn overwrites_are_compacted_away() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_options()).unwrap();
    let mut model = BTreeMap::new();
    for round in 0..5u32 {
        let mut batch = WriteBatch::new();
        for n in 0..1500u64 {
            let v = format!("r{round}-{n}");
            batch.put(key(n), &v);
            model.insert(key(n), v.into_bytes());
            if batch.len() == 100 {
                db.write(std::mem::take(&mut batch), WriteOptions::default())
                    .unwrap();
            }
        }
        db.write(batch, WriteOptions::default()).unwrap();
    }
    db.compact().unwrap();
    wait_for_compactions(&db);
    let stats = db.stats();
    let live: u64 = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    // Tables hold each key once (plus block and index overhead).
    assert!(stats.table_bytes() < live * 2, "{stats}\nlive {live}");
    for (k, v) in &model {
        assert_eq!(db.get(k).unwrap().as_deref(), Some(v.as_slice()));
    }
    assert!(stats.write_amplification().unwrap() > 1.0);
}

#[test]
fn two_compactions_run_at_once_on_disjoint_tables() {
    let dir = tempfile::tempdir().unwrap();
    // Build a deep tree without background compaction: many tables in
    // several levels, over small targets.
    {
        let db = Db::open(dir.path(), small_options().auto_compactions(false)).unwrap();
        for part in 0..6u64 {
            for n in 0..800u64 {
                db.put(key(part * 10_000 + n), vec![b'x'; 100]).unwrap();
            }
            db.compact().unwrap();
        }
        for n in 0..3000u64 {
            db.put(key(n * 7), vec![b'y'; 100]).unwrap();
        }
        db.flush().unwrap();
        db.close().unwrap();
    }
    // Reopen with compaction on and tiny targets: several levels are due at
    // once, and the pool runs them side by side.
    let options = small_options()
        .base_level_size(4 * 1024)
        .level_size_multiplier(2)
        .l0_compaction_trigger(1)
        .compaction_threads(2);
    let db = Db::open(dir.path(), options).unwrap();
    for n in 0..3000u64 {
        db.put(key(n * 11 + 1), vec![b'z'; 100]).unwrap();
    }
    wait_for_compactions(&db);
    db.flush().unwrap();
    wait_for_compactions(&db);
    let stats = db.stats();
    println!("{stats}");
    assert!(stats.compactions_running_max >= 2, "{stats}");
    assert!(stats.health.is_none(), "{stats}");
    // Every key is still there (the manifest refuses overlapping tables in
    // L1+, so a conflict would have made the database read-only).
    for n in 0..3000u64 {
        assert!(db.get(key(n * 11 + 1)).unwrap().is_some());
    }
}

#[test]
fn level0_stays_bounded_under_sustained_writes() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default()
        .write_buffer_size(32 * 1024)
        .target_table_size(64 * 1024)
        .base_level_size(256 * 1024);
    let db = Db::open(dir.path(), options).unwrap();
    let mut l0_max = 0;
    for n in 0..40_000u64 {
        db.put(key(n % 10_000), vec![(n % 251) as u8; 100]).unwrap();
        if n % 500 == 0 {
            l0_max = l0_max.max(db.stats().levels[0].tables);
        }
    }
    assert!(l0_max <= 12, "L0 reached {l0_max} tables");
    let stats = db.stats();
    assert!(stats.compactions + stats.compaction_moves > 0, "{stats}");
}
