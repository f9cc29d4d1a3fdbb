//! Range deletes: `delete_range` hides every key in `[start, end)` from
//! `get`, `get_at`, forward, backward and prefix scans, wherever the
//! tombstone and the data sit (memtable, L0, the last level, after a
//! reopen); snapshots taken before it still read the data; compaction
//! deletes whole tables the tombstone covers without reading them, drops
//! what it covers and finally the tombstone itself.
#![allow(clippy::unwrap_used)]

use jkv::{Db, Options, WriteBatch, WriteOptions};
use jkv_tests::{files_with_ext, key, small_options};

fn keys_of(items: impl Iterator<Item = jkv::Result<(bytes::Bytes, bytes::Bytes)>>) -> Vec<Vec<u8>> {
    items.map(|r| r.unwrap().0.to_vec()).collect()
}

/// Every read path agrees that exactly `live` (sorted) are there.
fn check_reads(db: &Db, live: &[u64], all: u64) {
    let snap = db.snapshot();
    for n in 0..all {
        let got = db.get(key(n)).unwrap();
        assert_eq!(got.is_some(), live.contains(&n), "get {n}");
        let at = db.get_at(key(n), &snap).unwrap();
        assert_eq!(at.is_some(), live.contains(&n), "get_at {n}");
    }
    let expected: Vec<Vec<u8>> = live.iter().map(|&n| key(n)).collect();
    assert_eq!(keys_of(db.scan::<&[u8]>(.., &snap)), expected);
    let mut rev = expected.clone();
    rev.reverse();
    assert_eq!(keys_of(db.scan_rev::<&[u8]>(.., &snap)), rev);
    // A prefix scan over key000001xx.
    let prefix = b"key000001";
    let in_prefix: Vec<Vec<u8>> = expected
        .iter()
        .filter(|k| k.starts_with(prefix))
        .cloned()
        .collect();
    assert_eq!(keys_of(db.scan_prefix(prefix, &snap)), in_prefix);
}

#[test]
fn range_delete_hides_keys_everywhere_and_snapshots_still_see_them() {
    let dir = tempfile::tempdir().unwrap();
    let all = 600;
    let mut live: Vec<u64> = (0..all).collect();
    {
        let db = Db::open(dir.path(), small_options()).unwrap();
        for n in 0..all {
            db.put(
                key(n),
                format!("value{n}").repeat((n % 5) as usize * 40 + 1),
            )
            .unwrap();
        }
        db.flush().unwrap();
        db.compact().unwrap();
        let before = db.snapshot();
        // In the memtable, over data in the last level.
        db.delete_range(key(100), key(250)).unwrap();
        live.retain(|&n| !(100..250).contains(&n));
        check_reads(&db, &live, all);
        assert!(db.get_at(key(120), &before).unwrap().is_some());
        assert_eq!(db.scan(key(100)..key(250), &before).count(), 150);
        assert_eq!(db.scan_rev(key(100)..key(250), &before).count(), 150);
        // Newer writes inside the range are visible again.
        db.put(key(130), "back").unwrap();
        live.push(130);
        live.sort();
        check_reads(&db, &live, all);
        // Flushed to L0, then a second, overlapping tombstone.
        db.flush().unwrap();
        check_reads(&db, &live, all);
        db.delete_range(key(240), key(400)).unwrap();
        live.retain(|&n| !(240..400).contains(&n));
        db.flush().unwrap();
        check_reads(&db, &live, all);
        assert_eq!(db.scan::<&[u8]>(.., &before).count(), all as usize);
        db.compact().unwrap();
        check_reads(&db, &live, all);
        assert_eq!(
            db.scan::<&[u8]>(.., &before).count(),
            all as usize,
            "snapshot kept its data through compaction"
        );
        drop(before);
        db.delete_range(key(0), key(10)).unwrap();
        live.retain(|&n| n >= 10);
        db.close().unwrap();
    }
    // The last tombstone comes back from the WAL, the others from tables.
    let db = Db::open(dir.path(), small_options()).unwrap();
    check_reads(&db, &live, all);
    db.compact().unwrap();
    check_reads(&db, &live, all);
    db.close().unwrap();
}

#[test]
fn range_delete_is_atomic_with_its_batch_and_ordered_within_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    for n in 0..20 {
        db.put(key(n), "v").unwrap();
    }
    let mut batch = WriteBatch::new();
    batch
        .put(key(5), "deleted by the range after it")
        .delete_range(key(3)..key(8))
        .put(key(6), "written after the range");
    db.write(batch, WriteOptions { sync: true }).unwrap();
    assert_eq!(db.get(key(5)).unwrap(), None);
    assert_eq!(
        db.get(key(6)).unwrap().as_deref(),
        Some(&b"written after the range"[..])
    );
    assert_eq!(db.get(key(8)).unwrap().as_deref(), Some(&b"v"[..]));
    let left: Vec<Vec<u8>> = keys_of(db.scan::<&[u8]>(.., &db.snapshot()));
    assert_eq!(left.len(), 20 - 5 + 1);
    let mut bad = WriteBatch::new();
    bad.put(key(1), "x").delete_range(key(9)..key(2));
    assert!(matches!(
        db.write(bad, WriteOptions::default()),
        Err(jkv::Error::InvalidArgument(_))
    ));
    assert_eq!(
        db.get(key(1)).unwrap().as_deref(),
        Some(&b"v"[..]),
        "nothing of the bad batch applied"
    );
}

#[test]
fn compaction_deletes_covered_tables_unread_and_then_the_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small_options().value_threshold(None)).unwrap();
    for n in 0..3000 {
        db.put(key(n), format!("value-{n:06}-{}", "x".repeat(60)))
            .unwrap();
    }
    db.flush().unwrap();
    db.compact().unwrap();
    let tables_before = files_with_ext(dir.path(), "sst").len();
    assert!(tables_before > 4, "several tables in the last level");
    db.delete_range(key(0), key(2900)).unwrap();
    db.flush().unwrap();
    assert!(db.stats().range_tombstones >= 1);
    db.compact().unwrap();
    let stats = db.stats();
    assert!(stats.range_deleted_tables > 0, "{stats}");
    assert_eq!(stats.range_tombstones, 0, "dropped at the bottom: {stats}");
    let left = keys_of(db.scan::<&[u8]>(.., &db.snapshot()));
    assert_eq!(left, (2900..3000).map(key).collect::<Vec<_>>());
    assert!(files_with_ext(dir.path(), "sst").len() < tables_before);
    db.close().unwrap();
    let report = jkv::check(dir.path()).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

#[test]
fn a_snapshot_keeps_covered_tables_and_value_log_bytes_of_deleted_tables_become_garbage() {
    let dir = tempfile::tempdir().unwrap();
    // Values of 300 bytes go to the value log.
    let db = Db::open(dir.path(), small_options()).unwrap();
    for n in 0..1500 {
        db.put(key(n), format!("{n:06}").repeat(50)).unwrap();
    }
    db.flush().unwrap();
    db.compact().unwrap();
    let garbage = |db: &Db| {
        db.stats()
            .vlog_files
            .iter()
            .map(|f| f.garbage_bytes)
            .sum::<u64>()
    };
    let garbage_before = garbage(&db);
    let snap = db.snapshot();
    db.delete_range(key(0), key(1400)).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    let stats = db.stats();
    assert_eq!(
        stats.range_deleted_tables, 0,
        "the snapshot reads them: {stats}"
    );
    assert_eq!(db.scan::<&[u8]>(.., &snap).count(), 1500);
    assert_eq!(
        db.get_at(key(7), &snap).unwrap().as_deref(),
        Some(format!("{:06}", 7).repeat(50).as_bytes())
    );
    assert_eq!(db.get(key(7)).unwrap(), None);
    // Without the snapshot the next compaction drops them; the tables it
    // rewrote under the snapshot carry parts of the tombstone, so it reads
    // them, and counts the values as garbage on the way.
    drop(snap);
    db.compact().unwrap();
    assert_eq!(db.scan::<&[u8]>(.., &db.snapshot()).count(), 100);
    let after_merge = garbage(&db);
    assert!(
        after_merge - garbage_before >= 1400 * 300,
        "only {} bytes of garbage counted",
        after_merge - garbage_before
    );
    // Without a snapshot, tables inside the range go unread, and the
    // value-log bytes their pointers name (a table property) are garbage.
    for n in 2000..3500 {
        db.put(key(n), format!("{n:06}").repeat(50)).unwrap();
    }
    db.flush().unwrap();
    db.compact().unwrap();
    let garbage_before = garbage(&db);
    db.delete_range(key(2000), key(3400)).unwrap();
    db.flush().unwrap();
    db.compact().unwrap();
    let stats = db.stats();
    assert!(stats.range_deleted_tables > 0, "{stats}");
    assert_eq!(stats.range_tombstones, 0, "{stats}");
    let added = garbage(&db) - garbage_before;
    assert!(
        added >= 1400 * 300,
        "only {added} bytes of garbage counted: {stats}"
    );
    assert_eq!(db.scan::<&[u8]>(.., &db.snapshot()).count(), 200);
    db.close().unwrap();
}

#[test]
fn a_flush_leaves_out_what_the_memtables_own_tombstones_delete() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    for n in 0..1000 {
        db.put(key(n), format!("value-{n:06}-{}", "y".repeat(40)))
            .unwrap();
    }
    let snap = db.snapshot();
    db.delete_range(key(0), key(990)).unwrap();
    // A snapshot from before the tombstone keeps the versions it reads.
    db.flush().unwrap();
    let kept = db.stats().levels[0].bytes;
    assert!(kept > 50_000, "the snapshot needs them: {kept} bytes");
    assert_eq!(db.scan::<&[u8]>(.., &snap).count(), 1000);
    drop(snap);
    for n in 0..1000 {
        db.put(key(n), format!("value-{n:06}-{}", "z".repeat(40)))
            .unwrap();
    }
    db.delete_range(key(0), key(990)).unwrap();
    let before = db.stats().levels[0].bytes;
    db.flush().unwrap();
    let added = db.stats().levels[0].bytes - before;
    assert!(
        added < 8_000,
        "1000 puts, 990 deleted in the memtable, wrote {added} bytes"
    );
    let left = keys_of(db.scan::<&[u8]>(.., &db.snapshot()));
    assert_eq!(left, (990..1000).map(key).collect::<Vec<_>>());
    db.close().unwrap();
}
