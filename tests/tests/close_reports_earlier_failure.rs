//! `Db::close` on a database that an earlier failure made read-only must
//! return that failure: close promises that everything acknowledged is
//! durable, and after a failed fsync it cannot keep that promise (it
//! rightly does not sync again). Today it returns `Ok(())`, so a caller
//! that checks only `close` believes unsynced acknowledged writes are safe.
#![allow(clippy::unwrap_used)]

use jkv::{Db, Error, WriteBatch, WriteOptions};
use jkv_format::FileSystem;
use jkv_tests::simfs::{Errno, Fault, OpKind, SimFs};
use jkv_tests::workload::{crash_options, db_dir};

#[test]
fn close_after_failed_fsync_returns_read_only() {
    let fs = SimFs::new();
    fs.create_dir_all(&db_dir()).unwrap();
    let db = Db::open(db_dir(), crash_options(&fs)).unwrap();
    db.put("acknowledged", "not yet synced").unwrap();
    fs.inject(Fault {
        kind: Some(OpKind::Sync),
        nth: 1,
        error: Errno::Eio,
        sticky: false,
    });
    let mut batch = WriteBatch::new();
    batch.put("k", "v");
    assert!(matches!(
        db.write(batch, WriteOptions { sync: true }),
        Err(Error::ReadOnly(_))
    ));
    let closed = db.close();
    assert!(
        matches!(closed, Err(Error::ReadOnly(_))),
        "close returned {closed:?}"
    );
}
