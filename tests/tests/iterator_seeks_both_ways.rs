//! A `DbIterator` seeks to any key in either direction and goes on from
//! there, without being rebuilt, within the range it was made for; `Db::iter`
//! walks the whole key space. Checked against a `BTreeMap` over keys in the
//! memtable, in tables of several levels and in the value log.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use jkv::{Bytes, Db, Options};

fn key(i: u32) -> String {
    format!("k{i:04}")
}

fn open(dir: &std::path::Path) -> (Db, BTreeMap<String, Vec<u8>>) {
    let db = Db::open(
        dir,
        Options::default()
            .write_buffer_size(16 << 10)
            .value_threshold(Some(200)),
    )
    .unwrap();
    let mut model = BTreeMap::new();
    for round in 0..3u32 {
        for i in (round..600).step_by(3) {
            let value = if i % 5 == 0 {
                vec![round as u8; 300] // to the value log
            } else {
                format!("v{i}-{round}").into_bytes()
            };
            db.put(key(i), &value).unwrap();
            model.insert(key(i), value);
        }
        for i in (0..600).step_by(29) {
            db.delete(key(i)).unwrap();
            model.remove(&key(i));
        }
        db.flush().unwrap();
        if round == 1 {
            db.compact().unwrap();
        }
    }
    (db, model)
}

fn collect(
    it: impl Iterator<Item = jkv::Result<(Bytes, Bytes)>>,
    n: usize,
) -> Vec<(String, Vec<u8>)> {
    it.take(n)
        .map(|r| {
            let (k, v) = r.unwrap();
            (String::from_utf8(k.to_vec()).unwrap(), v.to_vec())
        })
        .collect()
}

fn expect<'a>(
    it: impl Iterator<Item = (&'a String, &'a Vec<u8>)>,
    n: usize,
) -> Vec<(String, Vec<u8>)> {
    it.take(n).map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[test]
fn seeks_forward_and_backward_on_one_iterator() {
    let dir = tempfile::tempdir().unwrap();
    let (db, model) = open(dir.path());
    let snapshot = db.snapshot();
    let mut it = db.iter(&snapshot);
    assert_eq!(collect(&mut it, 5), expect(model.iter(), 5));
    for target in [0u32, 1, 57, 58, 290, 599, 600, 3] {
        let t = key(target);
        it.seek(&t);
        assert_eq!(
            collect(&mut it, 7),
            expect(model.range(t.clone()..), 7),
            "forward from {t}"
        );
        it.seek_for_prev(&t);
        assert_eq!(
            collect(&mut it, 7),
            expect(model.range(..=t.clone()).rev(), 7),
            "backward from {t}"
        );
    }
    // Past either end: nothing, and a later seek starts over.
    it.seek("l");
    assert!(it.next().is_none());
    it.seek_for_prev("a");
    assert!(it.next().is_none());
    it.seek("");
    assert_eq!(collect(&mut it, 1000), expect(model.iter(), 1000));
}

#[test]
fn seeks_stay_within_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let (db, model) = open(dir.path());
    let snapshot = db.snapshot();
    let (lo, hi) = (key(100), key(200));
    let mut it = db.scan_rev(lo.as_str()..hi.as_str(), &snapshot);
    assert_eq!(
        collect(&mut it, 3),
        expect(model.range(lo.clone()..hi.clone()).rev(), 3)
    );
    it.seek(key(10)); // before the range: from its start
    assert_eq!(
        collect(&mut it, 1000),
        expect(model.range(lo.clone()..hi.clone()), 1000)
    );
    it.seek_for_prev(key(500)); // after the range: from its end
    assert_eq!(
        collect(&mut it, 1000),
        expect(model.range(lo.clone()..hi.clone()).rev(), 1000)
    );
    it.seek(key(150));
    assert_eq!(
        collect(&mut it, 1000),
        expect(model.range(key(150)..hi.clone()), 1000)
    );
}

#[test]
fn iter_sees_its_snapshot_only() {
    let dir = tempfile::tempdir().unwrap();
    let (db, model) = open(dir.path());
    let snapshot = db.snapshot();
    db.put("a-new-key", "after the snapshot").unwrap();
    db.delete(key(1)).unwrap();
    let mut it = db.iter(&snapshot);
    assert_eq!(collect(&mut it, 10_000), expect(model.iter(), 10_000));
    it.seek_for_prev("zzz");
    assert_eq!(collect(&mut it, 10_000), expect(model.iter().rev(), 10_000));
}
