//! Group commit with many synced writers: every acknowledged write is
//! there after a crash that keeps only synced bytes, and on a real disk
//! writers share fsyncs (the leader gathers the writers its last group
//! woke, so groups hold more than one write). One writer alone is never
//! held up waiting for others: each of its writes is its own group.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use jkv::{Db, WriteBatch, WriteOptions};
use jkv_format::FileSystem;
use jkv_tests::simfs::SimFs;
use jkv_tests::workload::{crash_options, db_dir};

const WRITERS: usize = 8;
const WRITES_EACH: usize = 150;

fn sync_put(db: &Db, key: &str, value: &str) {
    let mut batch = WriteBatch::new();
    batch.put(key, value);
    db.write(batch, WriteOptions { sync: true }).unwrap();
}

#[test]
fn synced_writers_share_fsyncs_and_lose_nothing() {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Arc::new(Db::open(db_dir(), crash_options(&fs)).unwrap());
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let db = &db;
            s.spawn(move || {
                for i in 0..WRITES_EACH {
                    sync_put(db, &format!("w{w}-{i:04}"), &format!("v{i}"));
                }
            });
        }
    });
    assert_eq!(db.stats().writes, (WRITERS * WRITES_EACH) as u64);

    // Crash keeping only synced bytes: every write was acknowledged synced.
    let crashed = SimFs::from_image(&fs.synced_image());
    drop(db);
    let db = Db::open(db_dir(), crash_options(&crashed)).unwrap();
    for w in 0..WRITERS {
        for i in 0..WRITES_EACH {
            let got = db.get(format!("w{w}-{i:04}")).unwrap();
            assert_eq!(got.as_deref(), Some(format!("v{i}").as_bytes()), "w{w}-{i}");
        }
    }
}

/// On a real disk, where each `fdatasync` takes real time, writers that
/// queue behind a syncing leader share its next fsync. (The simulated disk
/// above syncs instantly, so there grouping depends on scheduling alone.)
#[test]
fn synced_writers_share_fsyncs_on_a_real_disk() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), jkv::Options::default()).unwrap();
    const EACH: usize = 40;
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let db = &db;
            s.spawn(move || {
                for i in 0..EACH {
                    sync_put(db, &format!("w{w}-{i:04}"), "v");
                }
            });
        }
    });
    let stats = db.stats();
    let writes = (WRITERS * EACH) as u64;
    assert_eq!(stats.writes, writes);
    assert!(
        stats.write_groups < writes,
        "{writes} synced writes from {WRITERS} threads took {} groups: no write shared an fsync",
        stats.write_groups
    );
}

#[test]
fn a_lone_synced_writer_commits_each_write_by_itself() {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), crash_options(&fs)).unwrap();
    let before = db.stats().write_groups;
    for i in 0..50 {
        sync_put(&db, &format!("k{i:03}"), "v");
    }
    assert_eq!(db.stats().write_groups - before, 50);
}
