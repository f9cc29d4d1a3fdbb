//! Tables of every released format, kept in the repository, still open and
//! read back exactly. Versions 1 (before range tombstones) and 2 (before
//! compressed blocks) are frozen: this build no longer writes them. The newest version is also compared with what
//! the writer produces now, so a change that silently alters the format
//! fails here. Regenerate the newest fixture (only when deliberately
//! changing the writer without changing the format) with
//! `JKV_REGEN_FIXTURES=1`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{ikey, MemFs};
use jkv_format::FileSystem;
use jkv_format::{FileNumber, InternalIterator, RangeTombstone, SeqNo, ValueKind};
use jkv_sstable::TableBuilder;
use jkv_sstable::{Compression, Table, TableOptions};
use std::sync::Arc;

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-small.sst")
}

fn fixture_v2_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v2-range-tombstones.sst")
}

fn fixture_v3_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/v3-{name}.sst"))
}

/// The range tombstones of the version 2 fixture: one overlapping the
/// entries, one past them (it widens the key range), one empty-ended at a
/// `\0` successor.
fn tombstones() -> Vec<RangeTombstone> {
    vec![
        RangeTombstone {
            start: b"fixture-key-010".to_vec(),
            end: b"fixture-key-020".to_vec(),
            seq: SeqNo(500),
        },
        RangeTombstone {
            start: b"fixture-key-030".to_vec(),
            end: b"fixture-zzz".to_vec(),
            seq: SeqNo(90),
        },
        RangeTombstone {
            start: b"fixture-key-005".to_vec(),
            end: b"fixture-key-005\0".to_vec(),
            seq: SeqNo(7),
        },
    ]
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
        compression: jkv_sstable::Compression::None,
    }
}

#[test]
fn version_1_fixture_opens_and_reads_back() {
    let t = Table::open(&jkv_format::StdFs, &fixture_path(), FileNumber(42)).unwrap();
    assert_eq!(t.footer().version, 1);
    assert!(t.range_tombstones().is_none());
    assert_eq!(t.properties().range_deletion_count, 0);
    t.verify().unwrap();
    // Written before the optional property `jkv.entries.older_versions`
    // existed: it reads as none (the v2 fixture below carries it).
    assert_eq!(t.properties().older_version_count, 0);
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
}

/// Builds the fixture table (entries and tombstones) with `compression`
/// in memory: its bytes and summary.
fn build_fixture(compression: Compression) -> (Vec<u8>, jkv_sstable::TableSummary) {
    let fs = MemFs::default();
    let path = Path::new("000043.sst");
    let options = TableOptions {
        compression,
        ..options()
    };
    let mut b = TableBuilder::new(fs.create(path).unwrap(), options);
    for (k, v) in entries() {
        b.add(&k, &v).unwrap();
    }
    for t in tombstones() {
        b.add_range_tombstone(t).unwrap();
    }
    let summary = b.finish().unwrap();
    (fs.bytes(path), summary)
}

/// Opens `path` and checks it holds the fixture's entries and tombstones.
fn check_fixture(path: &Path, version: u32, summary: &jkv_sstable::TableSummary) -> Arc<Table> {
    let t = Table::open(&jkv_format::StdFs, path, FileNumber(43)).unwrap();
    assert_eq!(t.footer().version, version);
    assert_eq!(t.properties().smallest, summary.smallest);
    assert_eq!(t.properties().largest, summary.largest);
    let report = t.verify().unwrap();
    assert_eq!(report.range_tombstones, 3);
    assert_eq!(t.properties().range_deletion_count, 3);
    assert_eq!(
        t.properties().older_version_count,
        10,
        "every fourth of 40 keys has an older version"
    );
    let set = t.range_tombstones().expect("tombstones");
    let mut expected = tombstones();
    expected.sort();
    assert_eq!(set.tombstones(), expected.as_slice());
    assert!(set.deletes(b"fixture-key-015", SeqNo(200), SeqNo::MAX));
    assert!(!set.deletes(b"fixture-key-020", SeqNo(1), SeqNo::MAX));
    // The key range grew to the second tombstone's end; the sequence range
    // to the first tombstone's number.
    assert_eq!(jkv_format::key::user_key(&summary.largest), b"fixture-zzz");
    assert_eq!(summary.max_seq, SeqNo(500));
    assert_eq!(
        summary.smallest,
        entries()[0].0,
        "entries start before the tombstones"
    );
    // Point entries read back exactly as without tombstones.
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
    t
}

#[test]
fn version_2_fixture_with_range_tombstones_opens_and_reads_back() {
    // Written by the version 2 writer; the summary of that table is what
    // today's writer reports for the same input (the format changed, the
    // entries did not).
    let (_, summary) = build_fixture(Compression::None);
    let t = check_fixture(&fixture_v2_path(), 2, &summary);
    assert!(t.properties().compression.is_empty());
    assert_eq!(t.properties().compressed_block_count, 0);
}

#[test]
fn version_3_fixtures_match_the_writer_and_read_back() {
    for (name, compression) in [
        ("uncompressed", Compression::None),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::ZSTD),
    ] {
        let (fresh, summary) = build_fixture(compression);
        let path = fixture_v3_path(name);
        if std::env::var_os("JKV_REGEN_FIXTURES").is_some() {
            std::fs::write(&path, &fresh).unwrap();
        }
        let stored = std::fs::read(&path).expect("fixture present");
        assert_eq!(
            stored, fresh,
            "{name}: the writer's output changed: format change?"
        );
        let t = check_fixture(&path, 3, &summary);
        let p = t.properties();
        let report = t.verify().unwrap();
        assert_eq!(report.compressed_blocks, p.compressed_block_count);
        if compression.is_compressed() {
            assert_eq!(p.compression, compression.to_string());
            assert!(p.compressed_block_count > 0, "{name}");
            assert!(p.data_size_bytes < p.data_raw_bytes, "{name}: {p:?}");
            assert_eq!(report.raw_data_bytes, p.data_raw_bytes);
        } else {
            assert_eq!(p.compressed_block_count, 0);
            assert_eq!(p.data_raw_size_bytes(), p.data_size_bytes);
        }
    }
}

#[test]
fn a_table_of_range_tombstones_only_has_their_key_range() {
    let fs = MemFs::default();
    let path = Path::new("000044.sst");
    let mut b = TableBuilder::new(fs.create(path).unwrap(), options());
    b.add_range_tombstone(RangeTombstone {
        start: b"m".to_vec(),
        end: b"q\0".to_vec(),
        seq: SeqNo(9),
    })
    .unwrap();
    b.add_range_tombstone(RangeTombstone {
        start: b"c".to_vec(),
        end: b"d".to_vec(),
        seq: SeqNo(4),
    })
    .unwrap();
    assert!(b
        .add_range_tombstone(RangeTombstone {
            start: b"z".to_vec(),
            end: b"z".to_vec(),
            seq: SeqNo(5),
        })
        .is_err());
    let summary = b.finish().unwrap();
    assert_eq!(summary.entry_count, 0);
    assert_eq!(jkv_format::key::user_key(&summary.smallest), b"c");
    assert_eq!(jkv_format::key::user_key(&summary.largest), b"q");
    assert_eq!((summary.min_seq, summary.max_seq), (SeqNo(4), SeqNo(9)));
    fs.put(Path::new("copy.sst"), fs.bytes(path));
    let t = Table::open(&fs, Path::new("copy.sst"), FileNumber(44)).unwrap();
    t.verify().unwrap();
    assert_eq!(t.range_tombstones().map(|s| s.len()), Some(2));
}

#[test]
fn a_damaged_range_tombstone_block_is_corruption() {
    let fs = MemFs::default();
    let path = Path::new("000045.sst");
    let mut b = TableBuilder::new(fs.create(path).unwrap(), options());
    for (k, v) in entries() {
        b.add(&k, &v).unwrap();
    }
    b.add_range_tombstone(tombstones()[0].clone()).unwrap();
    b.finish().unwrap();
    let good = fs.bytes(path);
    let t = Table::open(&fs, path, FileNumber(45)).unwrap();
    let h = t.properties().range_deletion_block.unwrap();
    let mut bad = good.clone();
    bad[h.offset as usize + 1] ^= 0x10;
    fs.put(Path::new("bad.sst"), bad);
    let e = Table::open(&fs, Path::new("bad.sst"), FileNumber(46)).unwrap_err();
    assert!(
        matches!(&e, jkv_format::Error::Corruption { offset, .. } if *offset == h.offset),
        "{e}"
    );
}

#[test]
fn value_pointer_bytes_are_a_property_by_value_log_file() {
    use jkv_format::ValuePointer;
    let fs = MemFs::default();
    let path = Path::new("000047.sst");
    let mut b = TableBuilder::new(fs.create(path).unwrap(), options());
    let pointer = |file: u64, len: u32| {
        ValuePointer {
            file: FileNumber(file),
            offset: 10,
            len,
        }
        .encode()
    };
    b.add(&ikey(b"a", 3, ValueKind::ValuePointer), &pointer(7, 1000))
        .unwrap();
    b.add(&ikey(b"b", 4, ValueKind::ValuePointer), &pointer(5, 30))
        .unwrap();
    b.add(&ikey(b"c", 5, ValueKind::Value), b"inline").unwrap();
    b.add(&ikey(b"d", 6, ValueKind::ValuePointer), &pointer(7, 24))
        .unwrap();
    b.finish().unwrap();
    fs.put(Path::new("copy.sst"), fs.bytes(path));
    let t = Table::open(&fs, Path::new("copy.sst"), FileNumber(47)).unwrap();
    assert_eq!(t.properties().vlog_pointer_bytes, vec![(5, 30), (7, 1024)]);
    t.verify().unwrap();
}
