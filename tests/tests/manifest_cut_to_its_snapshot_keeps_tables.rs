//! A MANIFEST cut back to its first line (the snapshot written when the
//! database was created; every edit after it lost or torn) looks exactly
//! like a crash during the first edit: the torn last line is cut off and the
//! state names no table. Orphan cleanup must then not delete the tables it
//! does not know — they may be the only copy of the data. They are moved to
//! `lost/` (kept byte for byte) and `jkv check` reports them.
//!
//! Regression: cleanup used to delete every such table, losing all data
//! without an error.
#![allow(clippy::unwrap_used)]

use jkv::{check_with, Db};
use jkv_format::FileSystem;
use jkv_tests::simfs::SimFs;
use jkv_tests::workload::{crash_options, db_dir};

#[test]
fn manifest_cut_to_its_snapshot_line_keeps_unnamed_tables() {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), crash_options(&fs)).unwrap();
    for i in 0..50 {
        db.put(format!("k{i}"), "v").unwrap();
    }
    db.flush().unwrap();
    db.close().unwrap();
    drop(db);
    let tables_before: Vec<(String, Vec<u8>)> = fs
        .list(&db_dir())
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".sst"))
        .map(|n| {
            let data = fs.read_file(&db_dir().join(&n)).unwrap();
            (n, data)
        })
        .collect();
    assert!(!tables_before.is_empty());
    let manifest = db_dir().join("MANIFEST");
    let data = fs.read_file(&manifest).unwrap();
    let first_line = data.iter().position(|&b| b == b'\n').unwrap() + 1;
    // Keep the snapshot line and 5 bytes of the first edit: a torn line.
    fs.overwrite_file(&manifest, data[..first_line + 5].to_vec());
    let db = Db::open(db_dir(), crash_options(&fs)).unwrap();
    db.close().unwrap();
    drop(db);
    for (name, bytes) in &tables_before {
        let kept = fs.read_file(&db_dir().join("lost").join(name));
        assert_eq!(
            kept.as_deref(),
            Some(bytes.as_slice()),
            "{name} not kept in lost/"
        );
    }
    let report = check_with(&fs, &db_dir()).unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("lost")),
        "check does not mention lost/: {report}"
    );
}
