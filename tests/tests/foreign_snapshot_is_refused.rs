//! A `Snapshot` belongs to the open database it was taken from: handing it
//! to another database (another directory, or the same directory opened
//! again) is an `InvalidArgument` error from reads and the first item of
//! scans, never a silent read at a sequence number that means nothing
//! there.
#![allow(clippy::unwrap_used)]

use jkv::{Db, Error, Options};

#[test]
fn another_databases_snapshot_is_an_error() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Db::open(a_dir.path(), Options::default()).unwrap();
    let b = Db::open(b_dir.path(), Options::default()).unwrap();
    a.put("k", "in a").unwrap();
    b.put("k", "in b").unwrap();
    let from_a = a.snapshot();
    let copy = from_a.clone();

    assert_eq!(
        a.get_at("k", &copy).unwrap().as_deref(),
        Some(b"in a".as_slice())
    );
    assert_eq!(a.scan::<&str>(.., &from_a).count(), 1);

    let err = b.get_at("k", &from_a).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(err.to_string().contains("another open database"), "{err}");
    for mut items in [
        b.scan::<&str>(.., &from_a),
        b.scan_rev::<&str>(.., &copy),
        b.scan_prefix("k", &from_a),
        b.iter(&from_a),
    ] {
        assert!(matches!(items.next(), Some(Err(Error::InvalidArgument(_)))));
        assert!(items.next().is_none(), "nothing after the error");
        items.seek("a");
        assert!(items.next().is_none(), "nor after a seek");
    }
    let mut keys = b.keys::<&str>(.., &from_a);
    assert!(matches!(keys.next(), Some(Err(Error::InvalidArgument(_)))));
}

#[test]
fn a_snapshot_does_not_outlive_its_handle() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.put("k", "v").unwrap();
    let old = db.snapshot();
    drop(db);
    let reopened = Db::open(dir.path(), Options::default()).unwrap();
    assert!(matches!(
        reopened.get_at("k", &old),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(
        reopened
            .get_at("k", &reopened.snapshot())
            .unwrap()
            .as_deref(),
        Some(b"v".as_slice())
    );
}
