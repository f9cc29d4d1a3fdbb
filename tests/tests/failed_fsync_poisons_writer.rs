//! A failed WAL fsync poisons the writer: the synced write that needed it
//! fails with `ReadOnly` wrapping `Io { op: "syncing", path: <the WAL> }`,
//! every later write is refused even once the disk works again (a failed
//! fsync is never retried and trusted), reads keep working, `health()` and
//! `stats().health` say why; after reopening, every write acknowledged
//! before the failure is there.
#![allow(clippy::unwrap_used)]

use jkv::{Db, Error, WriteBatch, WriteOptions};
use jkv_format::FileSystem;
use jkv_tests::simfs::{Errno, Fault, OpKind, SimFs};
use jkv_tests::workload::{crash_options, db_dir};

fn sync_put(db: &Db, key: &str, value: &str) -> jkv::Result<()> {
    let mut batch = WriteBatch::new();
    batch.put(key, value);
    db.write(batch, WriteOptions { sync: true }).map(drop)
}

#[test]
fn failed_wal_fsync_makes_the_database_read_only() {
    for errno in [Errno::Eio, Errno::Enospc] {
        let fs = SimFs::new();
        fs.create_dir_all(&db_dir()).unwrap();
        let db = Db::open(db_dir(), crash_options(&fs)).unwrap();
        sync_put(&db, "a", "1").unwrap();
        db.put("b", "2").unwrap();
        fs.inject(Fault {
            kind: Some(OpKind::Sync),
            nth: 1,
            error: errno,
            sticky: false,
        });
        let err = sync_put(&db, "c", "3").unwrap_err();
        let Error::ReadOnly(cause) = &err else {
            panic!("expected ReadOnly, got {err:?}");
        };
        let Error::Io { op, path, source } = &**cause else {
            panic!("expected an Io cause, got {cause:?}");
        };
        assert_eq!(*op, "syncing");
        assert_eq!(path.extension().and_then(|e| e.to_str()), Some("wal"));
        assert!(errno.matches(source), "{source}");

        // The fault is gone, but the writer stays poisoned.
        fs.clear_faults();
        assert!(matches!(db.put("d", "4"), Err(Error::ReadOnly(_))));
        assert!(matches!(sync_put(&db, "d", "4"), Err(Error::ReadOnly(_))));
        assert!(matches!(db.flush(), Err(Error::ReadOnly(_))));
        assert!(matches!(db.health(), Err(Error::ReadOnly(_))));
        let why = db.stats().health.expect("stats report the failure");
        assert!(why.contains("syncing"), "{why}");
        assert!(why.contains(&path.display().to_string()), "{why}");
        assert_eq!(db.get("a").unwrap().as_deref(), Some(b"1".as_slice()));
        assert_eq!(db.get("b").unwrap().as_deref(), Some(b"2".as_slice()));
        assert_eq!(db.get("d").unwrap(), None);
        // Closing does not sync the WAL again: a retry that succeeds
        // proves nothing.
        // (Whether `close` reports the failure is checked by
        // close_reports_earlier_failure.rs.)
        let syncs = fs.count(OpKind::Sync);
        let _ = db.close();
        assert_eq!(fs.count(OpKind::Sync), syncs);
        drop(db);

        // Machine crash: the synced write survives; the failed one may
        // not, and nothing after it was accepted.
        let crashed = SimFs::from_image(&fs.synced_image());
        let db = Db::open(db_dir(), crash_options(&crashed)).unwrap();
        assert_eq!(db.get("a").unwrap().as_deref(), Some(b"1".as_slice()));
        assert_eq!(db.get("d").unwrap(), None);
        drop(db);

        // Process restart: every acknowledged write is there.
        let restarted = SimFs::from_image(&fs.full_image());
        let db = Db::open(db_dir(), crash_options(&restarted)).unwrap();
        assert_eq!(db.get("a").unwrap().as_deref(), Some(b"1".as_slice()));
        assert_eq!(db.get("b").unwrap().as_deref(), Some(b"2".as_slice()));
        assert_eq!(db.get("d").unwrap(), None);
        sync_put(&db, "e", "5").unwrap();
        db.health().unwrap();
    }
}
