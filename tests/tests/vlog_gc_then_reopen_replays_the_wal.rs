//! Regression: value-log GC retired a file while the live WAL still held
//! pointers into it. The GC's rewrites shadow those pointers while the
//! database runs, but on reopen WAL replay meets a pointer into the removed
//! file first, takes it for a value lost in a crash and stops replaying
//! there: acknowledged (even synced) writes after it are gone, GC's
//! rewrites too, and older pointers in tables into the removed file come
//! back as the newest versions, so `get` fails with `Io` (no such file).
//! If the WAL is not the last one, open fails with `Corruption` instead.
//! Found by `crash_states.rs` (compaction and GC mix, `vlog_gc` without a
//! flush before it); fixed in a0bc206: replay takes a pointer into a file
//! the manifest retired for a shadowed version.
//!
//! Checked: writes that filled and sealed a value-log file stay only in the
//! WAL (large memtable), `vlog_gc` collects that file, the database is
//! closed cleanly and reopened: every key must read back its last value.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use jkv::{Db, WriteBatch, WriteOptions};
use jkv_format::FileSystem;
use jkv_tests::simfs::SimFs;
use jkv_tests::workload::db_dir;

fn options(fs: &SimFs) -> jkv::Options {
    jkv::Options::default()
        .write_buffer_size(1 << 20)
        .value_threshold(Some(64))
        .vlog_file_size(4096)
        // Collection runs only when the test calls it (no background pool):
        // a background run at a value-log roll would collect the file first.
        .auto_compactions(false)
        .file_system(Arc::new(fs.clone()))
}

#[test]
fn gc_of_a_file_the_wal_points_into_keeps_every_write_after_reopen() {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    let value = |i: usize| format!("v{i:03}:").repeat(40).into_bytes();
    // 40 overwrites of one key, 200 bytes each: the first value-log file
    // fills, is sealed and is nearly all garbage.
    for i in 0..40 {
        let mut batch = WriteBatch::new();
        batch.put(b"hot", value(i));
        db.write(batch, WriteOptions { sync: true }).unwrap();
    }
    db.put(b"cold", value(999)).unwrap();
    let report = db.vlog_gc().unwrap();
    assert!(
        report.files_collected >= 1,
        "the setup must make GC collect a file: {report:?}"
    );
    assert_eq!(db.get(b"hot").unwrap().as_deref(), Some(&value(39)[..]));
    db.close().unwrap();
    drop(db);

    let db = Db::open(db_dir(), options(&fs)).unwrap();
    let read = |key: &[u8]| {
        db.get(key)
            .map(|v| v.map(|v| String::from_utf8_lossy(&v[..8]).into_owned()))
    };
    assert_eq!(
        read(b"hot").expect("reading `hot` after reopen"),
        Some("v039:v03".to_owned()),
        "the last synced write of `hot` is lost after reopen"
    );
    assert_eq!(
        read(b"cold").expect("reading `cold` after reopen"),
        Some("v999:v99".to_owned())
    );
    db.close().unwrap();
}
