//! KV separation: large values live in the value log and read back through
//! gets, scans and snapshots; compaction counts the garbage it finds and
//! garbage collection gives the space back without changing what any
//! reader sees; damaged value-log bytes are `Corruption` naming the file
//! and offset, on read and in `jkv check`.
#![allow(clippy::unwrap_used)]

use jkv::{check, Db, Options, WriteBatch, WriteOptions};
use jkv_tests::{files_with_ext, flip_byte, key};

fn options() -> Options {
    Options::default()
        .write_buffer_size(64 * 1024)
        .target_table_size(32 * 1024)
        .base_level_size(128 * 1024)
        .value_threshold(Some(1024))
        .vlog_file_size(256 * 1024)
}

fn big(n: u64, round: u64) -> Vec<u8> {
    let mut v = format!("{n}:{round}:").into_bytes();
    v.resize(4000, (n % 251) as u8);
    v
}

fn vlog_bytes(dir: &std::path::Path) -> u64 {
    files_with_ext(dir, "vlog")
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

#[test]
fn large_values_go_to_the_value_log_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        let mut batch = WriteBatch::new();
        for n in 0..200 {
            batch.put(key(n), big(n, 0));
            batch.put(format!("small{n}"), "tiny");
        }
        db.write(batch, WriteOptions::SYNC).unwrap();
        assert_eq!(
            db.get(key(7)).unwrap().as_deref(),
            Some(big(7, 0).as_slice())
        );
        db.flush().unwrap();
        assert_eq!(
            db.get(key(8)).unwrap().as_deref(),
            Some(big(8, 0).as_slice())
        );
        let stats = db.stats();
        assert!(stats.vlog_bytes() > 200 * 4000, "{stats}");
        // Tables hold pointers, not the values.
        assert!(stats.table_bytes() < 100 * 1024, "{stats}");
        // Dropped without close: the WAL replays the pointers.
    }
    let db = Db::open(dir.path(), options()).unwrap();
    let snap = db.snapshot();
    let all: Vec<_> = db.scan_prefix(b"key", &snap).map(|r| r.unwrap()).collect();
    assert_eq!(all.len(), 200);
    for (i, (k, v)) in all.iter().enumerate() {
        assert_eq!(k.as_ref(), key(i as u64).as_slice());
        assert_eq!(v.as_ref(), big(i as u64, 0).as_slice());
    }
    let rev: Vec<_> = db
        .scan_rev(key(10)..key(20), &snap)
        .map(|r| r.unwrap().1)
        .collect();
    assert_eq!(rev.first().map(|v| v.to_vec()), Some(big(19, 0)));
    assert!(check(dir.path()).unwrap().is_ok());
}

#[test]
fn gc_reclaims_overwritten_values_and_snapshots_still_read_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    for n in 0..300 {
        db.put(key(n), big(n, 0)).unwrap();
    }
    let snap = db.snapshot();
    for round in 1..=4 {
        for n in 0..300 {
            db.put(key(n), big(n, round)).unwrap();
        }
    }
    db.compact().unwrap();
    let before = vlog_bytes(dir.path());
    db.vlog_gc().unwrap();
    // Collections also run in the background as value-log files fill up.
    let stats = db.stats();
    assert!(stats.vlog_gc_files > 0, "{stats}");
    // The snapshot reads its (old) values: their files stay while it lives.
    for n in (0..300).step_by(17) {
        assert_eq!(
            db.get_at(key(n), &snap).unwrap().as_deref(),
            Some(big(n, 0).as_slice())
        );
        assert_eq!(
            db.get(key(n)).unwrap().as_deref(),
            Some(big(n, 4).as_slice())
        );
    }
    drop(snap);
    db.vlog_gc().unwrap();
    db.compact().unwrap();
    db.vlog_gc().unwrap();
    let after = vlog_bytes(dir.path());
    let live = 300 * 4000;
    assert!(after < before, "GC gave nothing back: {before} -> {after}");
    assert!(
        (after as f64) < 2.0 * live as f64 + 256.0 * 1024.0,
        "value log {after} bytes for {live} live bytes\n{}",
        db.stats()
    );
    for n in 0..300 {
        assert_eq!(
            db.get(key(n)).unwrap().as_deref(),
            Some(big(n, 4).as_slice())
        );
    }
    db.close().unwrap();
    drop(db);
    let db = Db::open(dir.path(), options()).unwrap();
    for n in (0..300).step_by(7) {
        assert_eq!(
            db.get(key(n)).unwrap().as_deref(),
            Some(big(n, 4).as_slice())
        );
    }
    assert!(check(dir.path()).unwrap().is_ok());
}

#[test]
fn deleted_keys_do_not_come_back_after_gc_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        for n in 0..300 {
            db.put(key(n), big(n, 0)).unwrap();
        }
        for n in 0..300 {
            if n % 2 == 0 {
                db.delete(key(n)).unwrap();
            }
        }
        db.compact().unwrap();
        db.vlog_gc().unwrap();
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), options()).unwrap();
    for n in 0..300 {
        let got = db.get(key(n)).unwrap();
        if n % 2 == 0 {
            assert_eq!(got, None, "deleted key {n} came back");
        } else {
            assert_eq!(got.as_deref(), Some(big(n, 0).as_slice()));
        }
    }
}

#[test]
fn damaged_value_log_bytes_are_corruption_on_read_and_in_check() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        for n in 0..20 {
            db.put(key(n), big(n, 0)).unwrap();
        }
        db.close().unwrap();
    }
    let vlog = files_with_ext(dir.path(), "vlog")
        .pop()
        .expect("a value log");
    // Inside the value of the fifth entry (24-byte header, ~4 KiB entries).
    flip_byte(&vlog, 24 + 4 * 4050 + 100, 0x10);
    let db = Db::open(dir.path(), options()).unwrap();
    let mut corrupt = 0;
    for n in 0..20 {
        match db.get(key(n)) {
            Ok(Some(v)) => assert_eq!(v.as_ref(), big(n, 0).as_slice(), "key {n}: wrong value"),
            Ok(None) => panic!("key {n} silently missing"),
            Err(jkv::Error::Corruption { file, offset, .. }) => {
                assert_eq!(file, vlog);
                assert!(offset > 0);
                corrupt += 1;
            }
            Err(e) => panic!("key {n}: unexpected error {e}"),
        }
    }
    assert_eq!(corrupt, 1);
    let report = check(dir.path()).unwrap();
    assert!(!report.is_ok());
    assert!(report.to_string().contains(".vlog"), "{report}");
}

#[test]
fn separation_off_keeps_values_in_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options().value_threshold(None)).unwrap();
    for n in 0..50 {
        db.put(key(n), big(n, 0)).unwrap();
    }
    db.flush().unwrap();
    assert!(files_with_ext(dir.path(), "vlog").is_empty());
    assert_eq!(
        db.get(key(3)).unwrap().as_deref(),
        Some(big(3, 0).as_slice())
    );
}
