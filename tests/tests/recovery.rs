//! Recovery: writes survive reopen with and without `close`, a torn WAL tail
//! is dropped, and damaged WAL, table and manifest bytes are reported as
//! `Corruption` naming the file — never a panic or a wrong answer.
#![allow(clippy::unwrap_used)]

use jkv::{Db, Error, Options, WriteBatch, WriteOptions};
use jkv_tests::{files_with_ext, flip_byte, key, small_options};

fn fill(db: &Db, range: std::ops::Range<u64>) {
    for n in range {
        db.put(key(n), format!("value{n}")).unwrap();
    }
}

fn assert_all(db: &Db, range: std::ops::Range<u64>) {
    for n in range {
        let got = db.get(key(n)).unwrap();
        assert_eq!(
            got.as_deref(),
            Some(format!("value{n}").as_bytes()),
            "key {n}"
        );
    }
}

#[test]
fn reopen_after_close_and_after_drop() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), small_options()).unwrap();
        fill(&db, 0..2000);
        db.close().unwrap();
    }
    {
        let db = Db::open(dir.path(), small_options()).unwrap();
        assert_all(&db, 0..2000);
        fill(&db, 2000..2500);
        // Dropped without close.
    }
    let db = Db::open(dir.path(), small_options()).unwrap();
    assert_all(&db, 0..2500);
    assert!(!files_with_ext(dir.path(), "sst").is_empty());
}

#[test]
fn without_wal_close_flushes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let options = || Options::default().wal(false);
    {
        let db = Db::open(dir.path(), options()).unwrap();
        fill(&db, 0..300);
        db.close().unwrap();
    }
    assert!(files_with_ext(dir.path(), "wal").is_empty());
    let db = Db::open(dir.path(), options()).unwrap();
    assert_all(&db, 0..300);
}

#[test]
fn torn_wal_tail_is_dropped_and_earlier_writes_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        fill(&db, 0..10);
        let mut batch = WriteBatch::new();
        batch.put(b"last", vec![7u8; 100]);
        db.write(batch, WriteOptions::SYNC).unwrap();
        db.close().unwrap();
    }
    let wal = files_with_ext(dir.path(), "wal").pop().expect("a WAL");
    // The WAL is extended with zeros ahead of its data; its records end at
    // the last non-zero byte (the last value is all 7s).
    let bytes = std::fs::read(&wal).unwrap();
    let len = bytes.iter().rposition(|&b| b != 0).expect("records") as u64 + 1;
    // Cut the last record in half, as a crash mid-append would.
    let f = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    f.set_len(len - 50).unwrap();
    drop(f);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_all(&db, 0..10);
    assert_eq!(db.get(b"last").unwrap(), None);
    // The database keeps working and survives another reopen.
    db.put(b"after", b"1").unwrap();
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_all(&db, 0..10);
    assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"1"[..]));
}

#[test]
fn damaged_wal_middle_is_corruption_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        fill(&db, 0..20);
        db.close().unwrap();
    }
    let wal = files_with_ext(dir.path(), "wal").pop().expect("a WAL");
    flip_byte(&wal, 30, 0x01);
    match Db::open(dir.path(), Options::default()) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, wal),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn damaged_table_is_corruption_on_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        fill(&db, 0..200);
        db.flush().unwrap();
        db.close().unwrap();
    }
    let table = files_with_ext(dir.path(), "sst").pop().expect("a table");
    // The first data block starts at offset 0.
    flip_byte(&table, 10, 0x20);
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut corrupt = 0;
    for n in 0..200 {
        match db.get(key(n)) {
            Ok(Some(v)) => assert_eq!(v.as_ref(), format!("value{n}").as_bytes()),
            Ok(None) => panic!("key {n} silently missing"),
            Err(e) => {
                assert!(e.is_corruption(), "{e}");
                assert!(e.to_string().contains(".sst"), "{e}");
                corrupt += 1;
            }
        }
    }
    assert!(corrupt > 0, "the damaged block was never reported");
    let scan: Result<Vec<_>, _> = db.scan::<&[u8]>(.., &db.snapshot()).collect();
    assert!(matches!(scan, Err(ref e) if e.is_corruption()), "{scan:?}");
}

#[test]
fn damaged_manifest_line_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        fill(&db, 0..50);
        db.flush().unwrap();
        db.close().unwrap();
    }
    let manifest = dir.path().join("MANIFEST");
    // A byte inside the first line (the snapshot record), with lines after it.
    flip_byte(&manifest, 20, 0x04);
    match Db::open(dir.path(), Options::default()) {
        Err(Error::Corruption { file, .. }) => assert_eq!(file, manifest),
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn missing_manifest_with_data_files_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        fill(&db, 0..50);
        db.flush().unwrap();
        db.close().unwrap();
    }
    std::fs::remove_file(dir.path().join("MANIFEST")).unwrap();
    let r = Db::open(dir.path(), Options::default());
    assert!(matches!(r, Err(Error::Corruption { .. })), "{r:?}");
}

#[test]
fn orphan_files_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        fill(&db, 0..50);
        db.close().unwrap();
    }
    std::fs::write(dir.path().join("999999.sst"), b"half-written table").unwrap();
    std::fs::write(dir.path().join("999998.wal"), b"unreferenced log").unwrap();
    std::fs::write(dir.path().join("MANIFEST.tmp"), b"unfinished rewrite").unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_all(&db, 0..50);
    assert!(!dir.path().join("999999.sst").exists());
    assert!(!dir.path().join("999998.wal").exists());
    assert!(!dir.path().join("MANIFEST.tmp").exists());
}

#[test]
fn manifest_rewrites_keep_the_table_set() {
    let dir = tempfile::tempdir().unwrap();
    let options = || small_options().manifest_rewrite_threshold_bytes(2048);
    {
        let db = Db::open(dir.path(), options()).unwrap();
        for round in 0..30 {
            fill(&db, round * 20..round * 20 + 20);
            db.flush().unwrap();
        }
        db.close().unwrap();
    }
    let size = std::fs::metadata(dir.path().join("MANIFEST"))
        .unwrap()
        .len();
    assert!(
        size < 64 * 1024,
        "manifest was never rewritten: {size} bytes"
    );
    let db = Db::open(dir.path(), options()).unwrap();
    assert_all(&db, 0..600);
}
