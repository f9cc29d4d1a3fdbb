//! The key and value size limits are part of the public API
//! (`jkv::KEY_LEN_MAX`, `jkv::VALUE_LEN_MAX`): a key or value at the limit
//! is written and read back, one byte more is `InvalidArgument` and writes
//! nothing.
#![allow(clippy::unwrap_used)]

use jkv::{Db, Error, Options, WriteBatch, WriteOptions, KEY_LEN_MAX, VALUE_LEN_MAX};

#[test]
fn limits_are_enforced_at_the_byte() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let longest = vec![b'k'; KEY_LEN_MAX];
    db.put(&longest, "v").unwrap();
    assert_eq!(db.get(&longest).unwrap().as_deref(), Some(b"v".as_slice()));
    let too_long = vec![b'k'; KEY_LEN_MAX + 1];
    assert!(matches!(
        db.put(&too_long, "v"),
        Err(Error::InvalidArgument(_))
    ));

    let mut b = WriteBatch::new();
    b.put("big", vec![1u8; VALUE_LEN_MAX + 1]);
    assert!(matches!(
        db.write(b, WriteOptions::default()),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(db.get("big").unwrap(), None);
}
