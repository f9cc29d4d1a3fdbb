//! Value-log files of every released format, kept in the repository, still
//! read back exactly. Version 1 (before entry compression) is frozen:
//! `fixtures/000007.vlog` was written by the version 1 writer
//! (`VlogWriter::create` for file 7, then `append` of [`v1_entries`] in
//! order, then `sync`) and is only read here.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use jkv_format::{FileNumber, SeqNo, StdFs};
use jkv_vlog::{VlogIter, VlogReader};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// What the version 1 fixture `000007.vlog` holds, in order: key, value, seq.
fn v1_entries() -> Vec<(Vec<u8>, Vec<u8>, SeqNo)> {
    (0..12u64)
        .map(|i| {
            let key = format!("fixture-key-{i:03}").into_bytes();
            let value = format!("value {i} {}", "ab".repeat(40 * i as usize)).into_bytes();
            (key, value, SeqNo(1000 + i))
        })
        .collect()
}

#[test]
fn version_1_fixture_reads_back_by_pointer_and_in_order() {
    let dir = fixtures_dir();
    let mut it = VlogIter::open(&StdFs, &dir, FileNumber(7)).unwrap();
    let reader = VlogReader::new(Arc::new(StdFs), dir.clone());
    let mut got = Vec::new();
    for e in it.by_ref() {
        let e = e.unwrap();
        assert_eq!(reader.read(&e.pointer, &e.key).unwrap(), e.value);
        got.push((e.key.to_vec(), e.value.to_vec(), e.seq));
    }
    assert_eq!(it.torn_tail_at(), None);
    assert_eq!(got, v1_entries());
    let report = jkv_vlog::verify(&StdFs, &dir.join("000007.vlog")).unwrap();
    assert!(report.is_ok(), "{report:?}");
}
