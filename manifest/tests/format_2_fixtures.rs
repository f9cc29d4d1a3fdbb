//! Manifests written before file and sequence numbers got their own types
//! (format version 2, kept in `tests/fixtures/`) still read, and every
//! record re-encodes to the very bytes on disk: the typed ids serialize as
//! the bare numbers they replaced.
//!
//! `edits.MANIFEST` is a log of edits (new WALs and value logs, flushes with
//! range and point tombstones, discard counts, a compaction, value-log
//! collection); `snapshot.MANIFEST` starts with a snapshot holding tables
//! (one with older versions), live WALs and value logs with discard counts.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use jkv_format::names::MANIFEST;
use jkv_format::{FileNumber, SeqNo, StdFs};
use jkv_manifest::{read_records, Manifest, ManifestOptions, ManifestState, Record};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap()
}

/// The record JSON of each line, as written (between `"record":` and the
/// closing brace of the line).
fn record_texts(bytes: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        record: &'a serde_json::value::RawValue,
    }
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Line<'_>>(line)
                .unwrap()
                .record
                .get()
                .to_string()
        })
        .collect()
}

/// Opens a copy of fixture `name` as a database directory's manifest.
fn open(name: &str) -> (tempfile::TempDir, ManifestState, Vec<Record>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(MANIFEST), fixture(name)).unwrap();
    let records = read_records(&StdFs, dir.path())
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let (_, state) =
        Manifest::open(Arc::new(StdFs), dir.path(), ManifestOptions::default()).unwrap();
    (dir, state, records)
}

fn assert_reencodes_byte_for_byte(name: &str) {
    let texts = record_texts(&fixture(name));
    let (_dir, _, records) = open(name);
    assert_eq!(texts.len(), records.len(), "{name}: every line is a record");
    for (text, record) in texts.iter().zip(&records) {
        assert_eq!(
            &serde_json::to_string(record).unwrap(),
            text,
            "{name}: a record re-encodes differently"
        );
    }
}

#[test]
fn edit_log_reads_and_reencodes_byte_for_byte() {
    assert_reencodes_byte_for_byte("edits.MANIFEST");
    let (_dir, state, records) = open("edits.MANIFEST");
    let edits = records.iter().filter_map(|r| match r {
        Record::Edit(e) => Some(e),
        Record::Snapshot(_) => None,
    });
    let mut removed_vlogs = Vec::new();
    let mut discards = 0;
    for edit in edits {
        removed_vlogs.extend(edit.removed_vlogs.iter().copied());
        discards += edit.vlog_discards.len();
    }
    assert!(!removed_vlogs.is_empty() && discards > 0, "{records:?}");
    assert_eq!(
        state.live_wals.iter().copied().collect::<Vec<_>>(),
        vec![FileNumber(19)]
    );
    assert_eq!(state.next_file, FileNumber(23));
    assert_eq!(state.last_seq, SeqNo(1607));
    let tables: Vec<(u32, FileNumber, SeqNo)> = state
        .all_tables()
        .map(|t| (t.level, t.id, t.max_seq))
        .collect();
    assert_eq!(tables, vec![(6, FileNumber(22), SeqNo(1605))]);
    let vlogs: Vec<(FileNumber, u64)> = state
        .vlogs
        .iter()
        .map(|(&n, meta)| (n, meta.discard_bytes))
        .collect();
    assert_eq!(vlogs, vec![(FileNumber(16), 0), (FileNumber(18), 8164)]);
    for file in removed_vlogs {
        assert!(!state.vlogs.contains_key(&file), "{file} was removed");
    }
}

#[test]
fn snapshot_reads_and_reencodes_byte_for_byte() {
    assert_reencodes_byte_for_byte("snapshot.MANIFEST");
    let (_dir, state, records) = open("snapshot.MANIFEST");
    let Some(Record::Snapshot(first)) = records.first() else {
        panic!("the fixture starts with a snapshot: {records:?}");
    };
    assert_eq!(
        first.live_wals.iter().copied().collect::<Vec<_>>(),
        vec![FileNumber(15), FileNumber(17)]
    );
    let l0: Vec<(FileNumber, SeqNo, SeqNo, u64)> = first.levels[0]
        .iter()
        .map(|t| (t.id, t.min_seq, t.max_seq, t.older_versions))
        .collect();
    assert_eq!(
        l0,
        vec![
            (FileNumber(16), SeqNo(1030), SeqNo(1499), 0),
            (FileNumber(12), SeqNo(460), SeqNo(1021), 50),
            (FileNumber(6), SeqNo(1), SeqNo(459), 0),
        ]
    );
    let vlogs: Vec<(FileNumber, u64)> = first
        .vlogs
        .iter()
        .map(|(&n, meta)| (n, meta.discard_bytes))
        .collect();
    assert_eq!(vlogs, vec![(FileNumber(13), 0), (FileNumber(14), 6908)]);
    assert_eq!(
        (first.next_file, first.last_seq),
        (FileNumber(18), SeqNo(1499))
    );
    // After the flush and the compaction that follow it.
    assert_eq!(
        state.live_wals.iter().copied().collect::<Vec<_>>(),
        vec![FileNumber(17)]
    );
    let tables: Vec<(u32, FileNumber)> = state.all_tables().map(|t| (t.level, t.id)).collect();
    assert_eq!(tables, vec![(6, FileNumber(19))]);
    assert_eq!(
        (state.next_file, state.last_seq),
        (FileNumber(20), SeqNo(1534))
    );
}
