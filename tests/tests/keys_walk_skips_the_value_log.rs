//! `Db::keys` walks keys without their values: it never reads the value
//! log. With every value-log byte after the header overwritten, a scan
//! fails on the first separated value while the keys walk lists every live
//! key (tombstones hidden, a snapshot's view kept) and can seek both ways.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use jkv::{Db, Error, Options};

fn options() -> Options {
    Options::default().value_threshold(Some(100))
}

#[test]
fn keys_walk_lists_live_keys_without_reading_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut live = BTreeSet::new();
    {
        let db = Db::open(dir.path(), options()).unwrap();
        for i in 0..300u32 {
            let key = format!("key{i:03}");
            let value = if i % 2 == 0 {
                vec![b'x'; 500] // in the value log
            } else {
                b"small".to_vec()
            };
            db.put(&key, value).unwrap();
            live.insert(key);
        }
        for i in (0..300u32).step_by(7) {
            let key = format!("key{i:03}");
            db.delete(&key).unwrap();
            live.remove(&key);
        }
        db.flush().unwrap();
        db.close().unwrap();
    }
    let mut damaged = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "vlog") {
            let mut bytes = std::fs::read(&path).unwrap();
            let header = jkv_vlog::HEADER_LEN;
            if bytes.len() > header {
                bytes[header..].fill(0xa5);
                std::fs::write(&path, bytes).unwrap();
                damaged += 1;
            }
        }
    }
    assert!(damaged > 0, "the values went to a value log");

    let db = Db::open(dir.path(), options()).unwrap();
    let snapshot = db.snapshot();
    let scanned: Vec<_> = db.scan::<&str>(.., &snapshot).collect();
    assert!(
        scanned
            .iter()
            .any(|r| matches!(r, Err(Error::Corruption { .. }))),
        "a scan reads the damaged values"
    );
    let keys: Vec<String> = db
        .keys::<&str>(.., &snapshot)
        .map(|k| String::from_utf8(k.unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(keys, live.iter().cloned().collect::<Vec<_>>());

    // Writes after the snapshot are not listed; seeks go either way.
    db.put("key000", "back").unwrap();
    db.delete("key001").unwrap();
    let mut walk = db.keys("key100".."key200", &snapshot);
    walk.seek("key150");
    let forward: Vec<String> = walk
        .by_ref()
        .take(3)
        .map(|k| String::from_utf8(k.unwrap().to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = live
        .range("key150".to_string()..)
        .take(3)
        .cloned()
        .collect();
    assert_eq!(forward, expected);
    walk.seek_for_prev("key150");
    let backward: Vec<String> = walk
        .map(|k| String::from_utf8(k.unwrap().to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = live
        .range("key100".to_string()..="key150".to_string())
        .rev()
        .cloned()
        .collect();
    assert_eq!(backward, expected);
    let now = db.snapshot();
    let first: Vec<String> = db
        .keys::<&str>(.., &now)
        .take(2)
        .map(|k| String::from_utf8(k.unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(first, vec!["key000".to_string(), "key002".to_string()]);
}
