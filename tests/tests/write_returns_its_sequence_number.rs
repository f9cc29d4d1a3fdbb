//! `Db::write` returns the sequence number of the batch's last entry: each
//! entry takes the next number, concurrent writers grouped into one commit
//! each get their own, and a snapshot at that number sees the whole batch
//! while one taken just before does not.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use jkv::{Db, Options, SeqNo, WriteBatch, WriteOptions};

fn batch(keys: &[&str]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for k in keys {
        b.put(k, format!("value of {k}"));
    }
    b
}

#[test]
fn each_entry_takes_the_next_number() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let first = db.write(batch(&["a"]), WriteOptions::default()).unwrap();
    let before = db.snapshot();
    assert_eq!(before.seq(), first);
    let third = db
        .write(batch(&["b", "c"]), WriteOptions { sync: true })
        .unwrap();
    assert_eq!(
        third,
        first.plus(2),
        "a batch of two entries takes two numbers"
    );
    assert_eq!(
        db.write(WriteBatch::new(), WriteOptions::default())
            .unwrap(),
        third,
        "an empty batch writes nothing and returns the visible number"
    );
    let after = db.snapshot();
    assert_eq!(after.seq(), third);
    assert_eq!(db.get_at("c", &before).unwrap(), None);
    assert!(db.get_at("c", &after).unwrap().is_some());
    drop((before, after));
    db.close().unwrap();

    // The numbering goes on after a reopen.
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let next = db.write(batch(&["d"]), WriteOptions::default()).unwrap();
    assert_eq!(next, third.plus(1));
}

#[test]
fn grouped_writers_get_distinct_numbers_covering_their_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Db::open(dir.path(), Options::default()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                for i in 0..200 {
                    let keys: Vec<String> =
                        (0..1 + (i % 3)).map(|j| format!("t{t}-{i}-{j}")).collect();
                    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                    let seq = db
                        .write(batch(&refs), WriteOptions { sync: i % 10 == 0 })
                        .unwrap();
                    got.push((seq, refs.len() as u64, keys));
                }
                got
            })
        })
        .collect();
    let mut all: Vec<(SeqNo, u64, Vec<String>)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_by_key(|w| w.0);
    // Every batch's numbers end at the one returned; together they cover
    // 1..=last without gaps or overlaps.
    let mut next = 1u64;
    for (seq, len, keys) in &all {
        assert_eq!(seq.0, next + len - 1, "{keys:?}");
        next = seq.0 + 1;
    }
    let snapshot = db.snapshot();
    assert_eq!(snapshot.seq().0, next - 1);
}
