//! A table written by format version 1, kept in the repository, still opens
//! and reads back exactly: a change that silently alters the format fails
//! here. Regenerate (only when deliberately changing the writer without
//! changing the format) with `JKV_REGEN_FIXTURES=1`.
//!
//! `v1-small-before-older-versions.sst` is the same table as written before
//! the optional property `jkv.entries.older_versions` existed: it opens and
//! reads back the same, and counts no older versions.

mod common;

use std::path::{Path, PathBuf};

use common::{build, ikey, MemFs};
use jkv_format::{FileNumber, InternalIterator, SeqNo, ValueKind};
use jkv_sstable::{Table, TableOptions};

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-small.sst")
}

/// 40 keys, every fourth with an older version, every seventh deleted.
fn entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut e = Vec::new();
    for i in 0..40u64 {
        let user = format!("fixture-key-{i:03}");
        if i % 7 == 0 {
            e.push((
                ikey(user.as_bytes(), 100 + i, ValueKind::Deletion),
                Vec::new(),
            ));
        } else {
            let v = format!("value of {i} {}", "=".repeat(i as usize));
            e.push((
                ikey(user.as_bytes(), 100 + i, ValueKind::Value),
                v.into_bytes(),
            ));
        }
        if i % 4 == 0 {
            e.push((
                ikey(user.as_bytes(), i + 1, ValueKind::Value),
                b"old".to_vec(),
            ));
        }
    }
    e
}

fn options() -> TableOptions {
    TableOptions {
        block_size_bytes: 256,
        restart_interval: 4,
        bloom_bits_per_key: 10,
        db_id: 0,
    }
}

#[test]
fn version_1_fixture_opens_and_reads_back() {
    let fs = MemFs::default();
    let fresh = build(&fs, Path::new("000042.sst"), &entries(), options());
    if std::env::var_os("JKV_REGEN_FIXTURES").is_some() {
        std::fs::write(fixture_path(), &fresh).unwrap();
    }
    let stored = std::fs::read(fixture_path()).expect("fixture present");
    assert_eq!(stored, fresh, "the writer's output changed: format change?");

    let t = Table::open(&jkv_format::StdFs, &fixture_path(), FileNumber(42)).unwrap();
    assert_eq!(t.footer().version, 1);
    t.verify().unwrap();
    let mut it = t.iter();
    it.seek_to_first();
    let mut got = Vec::new();
    while it.valid() {
        got.push((it.key().to_vec(), it.value().to_vec()));
        it.next();
    }
    it.status().unwrap();
    assert_eq!(got, entries());
    let (kind, seq, v) = t.get(b"fixture-key-008", SeqNo(50)).unwrap().unwrap();
    assert_eq!(
        (kind, seq, &v[..]),
        (ValueKind::Value, SeqNo(9), &b"old"[..])
    );
    let (kind, _, _) = t.get(b"fixture-key-014", SeqNo::MAX).unwrap().unwrap();
    assert_eq!(kind, ValueKind::Deletion);
    // Every fourth of the 40 keys has one older version.
    assert_eq!(t.properties().older_version_count, 10);
}

#[test]
fn a_table_written_before_the_older_versions_property_still_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/v1-small-before-older-versions.sst");
    let t = Table::open(&jkv_format::StdFs, &path, FileNumber(42)).unwrap();
    assert_eq!(t.footer().version, 1);
    t.verify().unwrap();
    assert_eq!(t.properties().older_version_count, 0);
    assert_eq!(t.properties().entry_count, entries().len() as u64);
    let mut it = t.iter();
    it.seek_to_first();
    let mut got = Vec::new();
    while it.valid() {
        got.push((it.key().to_vec(), it.value().to_vec()));
        it.next();
    }
    it.status().unwrap();
    assert_eq!(got, entries());
}
