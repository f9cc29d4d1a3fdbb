//! Compactions into the last level write the versions every snapshot sees
//! with sequence number 0 (as RocksDB does at its bottommost level): the
//! tables on disk say so, and every read — newest, at a snapshot, after
//! later writes, range deletes, value-log collection and a reopen — gives
//! what it gave before.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use jkv::{Db, FileNumber, Options};
use jkv_format::key::parse_internal_key;
use jkv_format::{InternalIterator, StdFs};
use jkv_sstable::Table;
use jkv_tests::{files_with_ext, key, small_options};

/// Sequence numbers of every point entry of every table in `dir`.
fn table_seqs(dir: &Path) -> Vec<u64> {
    let mut seqs = Vec::new();
    for path in files_with_ext(dir, "sst") {
        let number: u64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let table = Table::open(&StdFs, &path, FileNumber(number)).unwrap();
        let mut it = table.iter_verifying();
        it.seek_to_first();
        while it.valid() {
            seqs.push(parse_internal_key(it.key()).unwrap().seq.0);
            it.next();
        }
        it.status().unwrap();
    }
    seqs
}

fn check(db: &Db, model: &BTreeMap<Vec<u8>, Vec<u8>>, all: u64) {
    for n in 0..all {
        let got = db.get(key(n)).unwrap().map(|v| v.to_vec());
        assert_eq!(got.as_ref(), model.get(&key(n)), "get {n}");
    }
    let snap = db.snapshot();
    let scanned: Vec<(Vec<u8>, Vec<u8>)> = db
        .scan::<&[u8]>(.., &snap)
        .map(|r| {
            let (k, v) = r.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect();
    let expected: Vec<(Vec<u8>, Vec<u8>)> =
        model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(scanned, expected);
}

fn value(n: u64, round: u64) -> Vec<u8> {
    // Some values above the 256-byte value threshold: pointers get zeroed too.
    format!("v{round}-{n}-")
        .repeat(1 + (n % 7) as usize * 12)
        .into_bytes()
}

fn options() -> Options {
    small_options().auto_compactions(false)
}

#[test]
fn the_last_level_holds_sequence_number_zero_and_reads_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let all = 400;
    let mut model = BTreeMap::new();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        for round in 0..3 {
            for n in (0..all).filter(|n| n % (round + 1) == 0) {
                db.put(key(n), value(n, round)).unwrap();
                model.insert(key(n), value(n, round));
            }
            db.flush().unwrap();
        }
        for n in (0..all).step_by(11) {
            db.delete(key(n)).unwrap();
            model.remove(&key(n));
        }
        db.compact().unwrap();
        let seqs = table_seqs(dir.path());
        assert!(!seqs.is_empty());
        assert!(
            seqs.iter().all(|&s| s == 0),
            "no snapshot: every version is 0"
        );
        check(&db, &model, all);

        // Newer writes and a range delete over the zeroed versions win.
        for n in (0..all).step_by(5) {
            db.put(key(n), value(n, 9)).unwrap();
            model.insert(key(n), value(n, 9));
        }
        db.delete_range(key(100), key(150)).unwrap();
        model.retain(|k, _| !(key(100)..key(150)).contains(k));
        check(&db, &model, all);
        db.flush().unwrap();
        check(&db, &model, all);
        db.compact().unwrap();
        check(&db, &model, all);
        db.vlog_gc().unwrap();
        check(&db, &model, all);
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), options()).unwrap();
    check(&db, &model, all);
    // Writes after the reopen are newer than every zeroed version.
    for n in (0..all).step_by(3) {
        db.put(key(n), value(n, 10)).unwrap();
        model.insert(key(n), value(n, 10));
    }
    db.flush().unwrap();
    check(&db, &model, all);
    db.compact().unwrap();
    check(&db, &model, all);
}

#[test]
fn versions_a_snapshot_needs_keep_their_numbers_until_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), options()).unwrap();
    db.put(key(1), value(1, 0)).unwrap();
    db.put(key(2), value(2, 0)).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    let snap = db.snapshot();
    db.put(key(1), value(1, 1)).unwrap();
    db.delete(key(2)).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    let mut seqs = table_seqs(dir.path());
    seqs.sort();
    // key 1 and key 2 as the snapshot sees them (0), and the newer put and
    // tombstone with their own numbers.
    assert_eq!(seqs.len(), 4, "{seqs:?}");
    assert_eq!(&seqs[..2], &[0, 0]);
    assert!(seqs[2] > snap.seq().0 && seqs[3] > snap.seq().0, "{seqs:?}");
    assert_eq!(
        db.get_at(key(1), &snap).unwrap().unwrap().to_vec(),
        value(1, 0)
    );
    assert_eq!(
        db.get_at(key(2), &snap).unwrap().unwrap().to_vec(),
        value(2, 0)
    );
    assert_eq!(db.get(key(1)).unwrap().unwrap().to_vec(), value(1, 1));
    assert_eq!(db.get(key(2)).unwrap(), None);
    drop(snap);
    db.compact().unwrap();
    assert_eq!(table_seqs(dir.path()), vec![0]);
    assert_eq!(db.get(key(1)).unwrap().unwrap().to_vec(), value(1, 1));
    assert_eq!(db.get(key(2)).unwrap(), None);
}

#[test]
fn a_value_written_after_a_range_delete_survives_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        db.put(key(5), value(5, 0)).unwrap();
        db.flush().unwrap();
        db.compact().unwrap();
        db.delete_range(key(0), key(100)).unwrap();
        db.put(key(7), value(7, 1)).unwrap();
        db.flush().unwrap();
        db.compact().unwrap();
        assert_eq!(table_seqs(dir.path()), vec![0]);
        assert_eq!(db.get(key(5)).unwrap(), None);
        assert_eq!(db.get(key(7)).unwrap().unwrap().to_vec(), value(7, 1));
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), options()).unwrap();
    assert_eq!(db.get(key(5)).unwrap(), None);
    assert_eq!(db.get(key(7)).unwrap().unwrap().to_vec(), value(7, 1));
}
