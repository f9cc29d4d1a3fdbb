//! Regression: value-log GC judged an entry dead because a newer write of
//! its key shadowed it, but that write was not yet durable (acknowledged
//! without sync, still in the unsynced WAL tail). The manifest edit that
//! retires the file is synced regardless, so after a machine crash the
//! newer write is gone, the tree's newest durable version of the key is
//! again the pointer into the retired file, and `get` fails with `Io` (no
//! such file) instead of returning the older value. Found by
//! `crash_states.rs` (compaction and GC mix, seed 61 in long mode).
//! Fixed in 7ebf390: GC syncs the WAL before a file can be retired.
//!
//! Checked: a key's value sits in a sealed value-log file and in a flushed
//! table; every other entry of that file is overwritten with synced
//! writes; the key is overwritten without sync; `vlog_gc` collects the
//! file, with nothing live to rewrite; the machine crashes (only synced bytes survive). After reopening,
//! the key must read as its old or its new value.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use jkv::{Db, Options, WriteBatch, WriteOptions};
use jkv_format::FileSystem;
use jkv_tests::simfs::SimFs;
use jkv_tests::workload::db_dir;

fn options(fs: &SimFs) -> Options {
    Options::default()
        .write_buffer_size(1 << 20)
        .value_threshold(Some(64))
        .vlog_file_size(4096)
        // Only a file that is (nearly) all garbage is collected, so GC has
        // no live entry to rewrite (a rewrite is a synced write, which
        // would make the unsynced overwrite durable too).
        .vlog_gc_garbage_ratio(0.9)
        // Collection runs only when the test calls it (no background pool):
        // a background run at a value-log roll would change the scenario.
        .auto_compactions(false)
        .vlog_space_amp_max(100.0)
        .auto_compactions(false)
        .file_system(Arc::new(fs.clone()))
}

fn value(tag: &str) -> Vec<u8> {
    format!("{tag}:").repeat(200 / (tag.len() + 1)).into_bytes()
}

fn put(db: &Db, key: &str, v: &[u8], sync: bool) {
    let mut batch = WriteBatch::new();
    batch.put(key, v);
    db.write(batch, WriteOptions { sync }).unwrap();
}

#[test]
fn a_value_shadowed_only_by_an_unsynced_write_survives_gc_and_a_crash() {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), options(&fs)).unwrap();
    // The first value-log file: `key` and 30 fillers (about 6 KiB, so the
    // file is sealed), all in a table after the flush.
    put(&db, "key", &value("old"), true);
    for i in 0..30 {
        put(
            &db,
            &format!("filler{i:02}"),
            &value(&format!("f{i}")),
            true,
        );
    }
    db.flush().unwrap();
    // Every filler overwritten durably: the first file is nearly all
    // garbage. Then `key` overwritten without sync.
    for i in 0..30 {
        put(
            &db,
            &format!("filler{i:02}"),
            &value(&format!("g{i}")),
            true,
        );
    }
    put(&db, "key", &value("new"), false);
    let report = db.vlog_gc().unwrap();
    assert!(
        report.files_collected == 1 && report.entries_rewritten == 0,
        "the setup must make GC collect the first file and rewrite nothing: {report:?}"
    );

    // Machine crash: only synced bytes and durable names survive.
    let crashed = SimFs::from_image(&fs.synced_image());
    drop(db);
    let db = Db::open(db_dir(), options(&crashed)).unwrap();
    let got = db
        .get("key")
        .map(|v| v.map(|v| String::from_utf8_lossy(&v[..4]).into_owned()));
    assert!(
        matches!(
            got.as_ref().map(|v| v.as_deref()),
            Ok(Some("old:" | "new:"))
        ),
        "after the crash `key` reads {got:?}, not its old or new value"
    );
}
