//! Bad input gets a clear error and leaves the database usable: a directory
//! another owner holds, a path that is a file, keys and values at and past
//! their size limits.
#![allow(clippy::unwrap_used)]

use jkv::{Db, Error, Options, WriteBatch, WriteOptions};

#[test]
fn second_opener_gets_locked_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let second = Db::open(dir.path(), Options::default());
    assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
    db.put(b"still", b"works").unwrap();
    db.close().unwrap();
    drop(db);
    let again = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(again.get(b"still").unwrap().as_deref(), Some(&b"works"[..]));
}

#[test]
fn path_that_is_a_file_is_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a database").unwrap();
    let r = Db::open(&file, Options::default());
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
}

#[test]
fn missing_database_without_create_is_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let r = Db::open(
        dir.path().join("none"),
        Options::default().create_if_missing(false),
    );
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
}

#[test]
fn bad_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = Db::open(dir.path(), Options::default().write_buffer_size(1));
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
}

#[test]
fn empty_and_large_values_round_trip_through_flush_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..1 << 20).map(|i| (i * 31 % 251) as u8).collect();
    let long_key = vec![b'k'; u16::MAX as usize];
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        db.put(b"empty", b"").unwrap();
        db.put(b"big", &big).unwrap();
        db.put(&long_key, b"long key").unwrap();
        db.put(b"", b"empty key").unwrap();
        assert_eq!(db.get(b"empty").unwrap().as_deref(), Some(&b""[..]));
        db.flush().unwrap();
        assert_eq!(db.get(b"big").unwrap().as_deref(), Some(big.as_slice()));
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.get(b"empty").unwrap().as_deref(), Some(&b""[..]));
    assert_eq!(db.get(b"big").unwrap().as_deref(), Some(big.as_slice()));
    assert_eq!(
        db.get(&long_key).unwrap().as_deref(),
        Some(&b"long key"[..])
    );
    assert_eq!(db.get(b"").unwrap().as_deref(), Some(&b"empty key"[..]));
}

#[test]
fn oversized_key_is_refused_and_nothing_of_the_batch_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(b"ok", b"1");
    batch.put(vec![0u8; u16::MAX as usize + 1], b"too long");
    let r = db.write(batch, WriteOptions::default());
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    assert_eq!(db.get(b"ok").unwrap(), None);
    db.put(b"ok", b"2").unwrap();
    assert_eq!(db.get(b"ok").unwrap().as_deref(), Some(&b"2"[..]));
}

#[test]
fn closed_handle_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    db.close().unwrap();
    assert!(matches!(db.put(b"a", b"b"), Err(Error::Closed)));
    db.close().unwrap();
}
