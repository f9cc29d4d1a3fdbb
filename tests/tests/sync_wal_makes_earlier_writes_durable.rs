//! `Db::sync_wal` makes every write acknowledged before it durable: writes
//! made without sync are lost by a power cut (only synced bytes survive)
//! unless a `sync_wal` came after them; with key-value separation the
//! values in the value log survive with their pointers.
#![allow(clippy::unwrap_used)]

use jkv::{Db, WriteBatch, WriteOptions};
use jkv_format::FileSystem;
use jkv_tests::simfs::SimFs;
use jkv_tests::workload::{crash_options, db_dir};

fn write(db: &Db, key: &str, value: &[u8]) {
    let mut b = WriteBatch::new();
    b.put(key, value);
    db.write(b, WriteOptions::default()).unwrap();
}

#[test]
fn unsynced_writes_before_sync_wal_survive_a_power_cut() {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), crash_options(&fs).value_threshold(Some(64))).unwrap();
    write(&db, "a", b"small");
    write(&db, "b", &[7u8; 200]); // goes to the value log
    db.sync_wal().unwrap();
    write(&db, "c", b"after the sync");
    let cut = SimFs::from_image(&fs.synced_image());
    std::mem::forget(db); // the machine dies: no close
    let db = Db::open(db_dir(), crash_options(&cut).value_threshold(Some(64))).unwrap();
    assert_eq!(db.get("a").unwrap().as_deref(), Some(b"small".as_slice()));
    assert_eq!(db.get("b").unwrap().as_deref(), Some([7u8; 200].as_slice()));
    assert_eq!(
        db.get("c").unwrap(),
        None,
        "a write after the last sync is not durable"
    );
}

#[test]
fn without_sync_wal_the_same_writes_are_lost() {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), crash_options(&fs)).unwrap();
    write(&db, "a", b"small");
    let cut = SimFs::from_image(&fs.synced_image());
    std::mem::forget(db);
    let db = Db::open(db_dir(), crash_options(&cut)).unwrap();
    assert_eq!(
        db.get("a").unwrap(),
        None,
        "the power cut drops unsynced writes (the test above is not vacuous)"
    );
}
