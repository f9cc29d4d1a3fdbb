//! The manifest file end to end on the real file system: create, edits,
//! replay, torn tails, corruption with offsets, rewrite, format versions,
//! edit validation, and the readers used by the command-line tools.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use jkv_format::names::{MANIFEST, MANIFEST_TMP};
use jkv_format::{Error, FileNumber, FileSystem, InternalKey, SeqNo, StdFs, ValueKind};
use jkv_manifest::{
    read_records, verify, Manifest, ManifestOptions, ManifestState, Record, TableId, TableMeta,
    VersionEdit,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const LEVELS: usize = 4;

fn fs() -> Arc<dyn FileSystem> {
    Arc::new(StdFs)
}

fn ik(key: u32, seq: u64) -> Vec<u8> {
    InternalKey::new(
        format!("k{key:06}").as_bytes(),
        SeqNo(seq),
        ValueKind::Value,
    )
    .into_vec()
}

fn table(id: u64, level: u32, lo: u32, hi: u32, seq: u64) -> TableMeta {
    TableMeta {
        id: FileNumber(id),
        level,
        size_bytes: 4096 + id,
        entries: u64::from(hi - lo + 1),
        smallest: ik(lo, seq),
        largest: ik(hi, seq),
        min_seq: SeqNo(seq),
        max_seq: SeqNo(seq),
        range_deletions: 0,
        deletions: 0,
        older_versions: 0,
    }
}

/// Produces edits an engine could make: new WALs, flushes into level 0,
/// and compactions of level 0 and 1 into level 1.
struct Workload {
    rng: StdRng,
}

impl Workload {
    fn new(seed: u64) -> Self {
        Workload {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn next_edit(&mut self, state: &ManifestState) -> VersionEdit {
        let next = state.next_file.0;
        match self.rng.gen_range(0..3) {
            0 => VersionEdit {
                new_wals: vec![FileNumber(next)],
                next_file: Some(FileNumber(next + 1)),
                ..VersionEdit::default()
            },
            1 if !state.live_wals.is_empty() => {
                let wal = *state.live_wals.iter().next().expect("non-empty");
                let lo = self.rng.gen_range(0..1000);
                let hi = lo + self.rng.gen_range(0..1000);
                let seq = state.last_seq.0 + self.rng.gen_range(1..100);
                VersionEdit {
                    added_tables: vec![table(next, 0, lo, hi, seq)],
                    retired_wals: vec![wal],
                    next_file: Some(FileNumber(next + 1)),
                    last_seq: Some(SeqNo(seq)),
                    ..VersionEdit::default()
                }
            }
            _ if !state.tables(0).is_empty() => {
                let mut removed = Vec::new();
                for level in 0..2u32 {
                    for t in state.tables(level as usize) {
                        removed.push(TableId { level, id: t.id });
                    }
                }
                let parts = self.rng.gen_range(1..4u32);
                let width = 2000 / parts;
                let added = (0..parts)
                    .map(|i| {
                        table(
                            next + u64::from(i),
                            1,
                            i * width,
                            (i + 1) * width - 1,
                            state.last_seq.0,
                        )
                    })
                    .collect();
                VersionEdit {
                    removed_tables: removed,
                    added_tables: added,
                    next_file: Some(FileNumber(next + u64::from(parts))),
                    ..VersionEdit::default()
                }
            }
            _ => VersionEdit {
                last_seq: Some(state.last_seq.plus(1)),
                ..VersionEdit::default()
            },
        }
    }
}

fn manifest_bytes(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(MANIFEST)).expect("read MANIFEST")
}

fn line_offsets(data: &[u8]) -> Vec<usize> {
    let mut offsets = vec![0];
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' && i + 1 < data.len() {
            offsets.push(i + 1);
        }
    }
    offsets
}

fn append_raw(dir: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join(MANIFEST))
        .expect("open MANIFEST");
    f.write_all(bytes).expect("append to MANIFEST");
}

fn framed(record: &str) -> String {
    let crc = jkv_format::checksum(record.as_bytes());
    format!("{{\"crc\":{crc},\"record\":{record}}}\n")
}

/// A manifest with a snapshot and `edits` edits from the workload; returns
/// the state after each edit (index 0: the initial state).
fn build(dir: &Path, edits: usize, options: ManifestOptions) -> (Manifest, Vec<ManifestState>) {
    let mut m = Manifest::create(fs(), dir, ManifestState::new(LEVELS), options).expect("create");
    let mut history = vec![m.state().clone()];
    let mut workload = Workload::new(7);
    for _ in 0..edits {
        let edit = workload.next_edit(m.state());
        m.apply(edit).expect("apply");
        history.push(m.state().clone());
    }
    (m, history)
}

#[test]
fn replay_rebuilds_the_same_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (m, history) = build(dir.path(), 200, ManifestOptions::default());
    let expected = history.last().expect("history").clone();
    assert_eq!(m.state(), &expected);
    assert!(!m.state().tables(1).is_empty() || !m.state().tables(0).is_empty());
    drop(m);
    let (reopened, state) =
        Manifest::open(fs(), dir.path(), ManifestOptions::default()).expect("open");
    assert_eq!(state, expected);
    assert_eq!(reopened.state(), &expected);
    assert_eq!(
        reopened.file_size_bytes(),
        manifest_bytes(dir.path()).len() as u64
    );
}

#[test]
fn every_record_type_round_trips_through_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut m = Manifest::create(
        fs(),
        dir.path(),
        ManifestState::new(LEVELS),
        ManifestOptions::default(),
    )
    .expect("create");
    let edits = vec![
        VersionEdit {
            new_wals: vec![FileNumber(1), FileNumber(2)],
            next_file: Some(FileNumber(3)),
            ..VersionEdit::default()
        },
        VersionEdit {
            added_tables: vec![table(3, 0, 1, 9, 5)],
            retired_wals: vec![FileNumber(1)],
            last_seq: Some(SeqNo(5)),
            ..VersionEdit::default()
        },
        VersionEdit {
            removed_tables: vec![TableId {
                level: 0,
                id: FileNumber(3),
            }],
            added_tables: vec![table(4, 1, 1, 9, 5)],
            next_file: Some(FileNumber(5)),
            ..VersionEdit::default()
        },
        VersionEdit::default(),
    ];
    for edit in &edits {
        m.apply(edit.clone()).expect("apply");
    }
    let records = read_records(&StdFs, dir.path()).expect("read records");
    let data = manifest_bytes(dir.path());
    let offsets: Vec<u64> = line_offsets(&data).into_iter().map(|o| o as u64).collect();
    assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), offsets);
    assert_eq!(records[0].1, Record::Snapshot(ManifestState::new(LEVELS)));
    let read_edits: Vec<VersionEdit> = records[1..]
        .iter()
        .map(|(_, r)| match r {
            Record::Edit(e) => e.clone(),
            other => panic!("expected an edit, got {other:?}"),
        })
        .collect();
    assert_eq!(read_edits, edits);
    let text = String::from_utf8(data).expect("manifest is UTF-8");
    assert!(text.starts_with("{\"crc\":"), "{text}");
    assert!(text.contains("\"type\":\"snapshot\""), "{text}");
    assert!(text.contains("\"type\":\"edit\""), "{text}");
}

#[test]
fn missing_manifest_is_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(!Manifest::exists(&StdFs, dir.path()).expect("exists"));
    let err =
        Manifest::open(fs(), dir.path(), ManifestOptions::default()).expect_err("no manifest");
    assert!(
        jkv_format::fs::is_io_kind(&err, std::io::ErrorKind::NotFound),
        "{err:?}"
    );
    Manifest::create(
        fs(),
        dir.path(),
        ManifestState::new(1),
        ManifestOptions::default(),
    )
    .expect("create");
    assert!(Manifest::exists(&StdFs, dir.path()).expect("exists"));
}

#[test]
fn leftover_tmp_is_removed_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (m, history) = build(dir.path(), 10, ManifestOptions::default());
    drop(m);
    std::fs::write(dir.path().join(MANIFEST_TMP), b"{\"crc\":1,\"rec").expect("write tmp");
    let (_, state) = Manifest::open(fs(), dir.path(), ManifestOptions::default()).expect("open");
    assert_eq!(&state, history.last().expect("history"));
    assert!(!dir.path().join(MANIFEST_TMP).exists());
}

#[test]
fn torn_last_line_is_ignored_and_cut() {
    let full_last_line = |dir: &Path| {
        let data = manifest_bytes(dir);
        let last = *line_offsets(&data).last().expect("lines");
        data.len() - last
    };
    type Tear = Box<dyn Fn(&Path)>;
    let tails: Vec<(&str, Tear)> = vec![
        (
            "partial line without newline",
            Box::new(|dir: &Path| append_raw(dir, b"{\"crc\":123,\"record\":{\"type\":\"ed")),
        ),
        (
            "complete line with a wrong checksum",
            Box::new(|dir: &Path| {
                append_raw(
                    dir,
                    b"{\"crc\":1,\"record\":{\"type\":\"edit\",\"last_seq\":99999}}\n",
                )
            }),
        ),
        (
            "zeros from a file extended but not written",
            Box::new(|dir: &Path| append_raw(dir, &[0u8; 100])),
        ),
        (
            "good record without its newline",
            Box::new(|dir: &Path| {
                let line = framed(r#"{"type":"edit","last_seq":99999}"#);
                append_raw(dir, line.trim_end().as_bytes())
            }),
        ),
        (
            "a real edit cut in half",
            Box::new(move |dir: &Path| {
                let len = manifest_bytes(dir).len();
                let cut = full_last_line(dir) / 2;
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join(MANIFEST))
                    .expect("open")
                    .set_len((len - cut) as u64)
                    .expect("truncate");
            }),
        ),
    ];
    for (name, tear) in tails {
        let dir = tempfile::tempdir().expect("tempdir");
        let (m, history) = build(dir.path(), 20, ManifestOptions::default());
        drop(m);
        let good_len = manifest_bytes(dir.path()).len();
        let cuts_real_edit = name.starts_with("a real edit");
        tear(dir.path());

        let report = verify(&StdFs, dir.path()).expect("verify");
        assert!(report.is_ok(), "{name}: {report:?}");
        assert!(report.torn_tail_at.is_some(), "{name}: {report:?}");
        assert_eq!(report.bad_lines.len(), 1, "{name}: {report:?}");

        let (mut m, state) = Manifest::open(fs(), dir.path(), ManifestOptions::default())
            .unwrap_or_else(|e| panic!("{name}: open failed: {e}"));
        let expected = if cuts_real_edit {
            &history[history.len() - 2]
        } else {
            &history[history.len() - 1]
        };
        assert_eq!(&state, expected, "{name}");
        let data = manifest_bytes(dir.path());
        if !cuts_real_edit {
            assert_eq!(data.len(), good_len, "{name}: torn tail not cut off");
        }
        assert_eq!(data.last(), Some(&b'\n'), "{name}");

        // Appends after the cut land on a clean line.
        let edit = VersionEdit {
            last_seq: Some(SeqNo(1_000_000)),
            ..VersionEdit::default()
        };
        m.apply(edit).expect("apply after torn tail");
        drop(m);
        let (_, state) = Manifest::open(fs(), dir.path(), ManifestOptions::default())
            .unwrap_or_else(|e| panic!("{name}: reopen failed: {e}"));
        assert_eq!(state.last_seq, SeqNo(1_000_000), "{name}");
        assert!(verify(&StdFs, dir.path())
            .expect("verify")
            .bad_lines
            .is_empty());
    }
}

#[test]
fn bit_flip_in_a_middle_line_is_corruption_at_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (m, _) = build(dir.path(), 6, ManifestOptions::default());
    drop(m);
    let mut data = manifest_bytes(dir.path());
    let offsets = line_offsets(&data);
    assert_eq!(offsets.len(), 7);
    let line_start = offsets[3];
    data[line_start + 20] ^= 0x01;
    std::fs::write(dir.path().join(MANIFEST), &data).expect("write");

    let err = Manifest::open(fs(), dir.path(), ManifestOptions::default())
        .expect_err("a damaged middle line must fail open");
    match &err {
        Error::Corruption { file, offset, .. } => {
            assert_eq!(*offset, line_start as u64);
            assert_eq!(file, &dir.path().join(MANIFEST));
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    // Open did not change the file.
    assert_eq!(manifest_bytes(dir.path()), data);
    assert!(matches!(
        read_records(&StdFs, dir.path()),
        Err(Error::Corruption { offset, .. }) if offset == line_start as u64
    ));
}

#[test]
fn verify_reports_every_bad_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (m, _) = build(dir.path(), 8, ManifestOptions::default());
    drop(m);
    let mut data = manifest_bytes(dir.path());
    let offsets = line_offsets(&data);
    data[offsets[2] + 15] ^= 0x02;
    data[offsets[5] + 15] ^= 0x02;
    data.extend_from_slice(b"{\"crc\":7");
    std::fs::write(dir.path().join(MANIFEST), &data).expect("write");

    let report = verify(&StdFs, dir.path()).expect("verify");
    let damaged = [
        offsets[2] as u64,
        offsets[5] as u64,
        (data.len() - 8) as u64,
    ];
    for offset in damaged {
        assert!(
            report.bad_lines.iter().any(|b| b.offset == offset),
            "{offset} missing from {report:?}"
        );
    }
    // Skipping a damaged edit can make later edits inapplicable (a WAL it
    // added is retired later); those are reported too, as such.
    for bad in &report.bad_lines {
        assert!(
            damaged.contains(&bad.offset) || bad.what.contains("cannot be applied"),
            "{bad:?}"
        );
    }
    assert_eq!(report.torn_tail_at, Some((data.len() - 8) as u64));
    assert!(!report.is_ok());
    assert_eq!(report.size_bytes, data.len() as u64);
    assert!(report.state.is_some());
}

#[test]
fn a_complete_bad_last_line_is_corruption_not_a_torn_tail() {
    // The checksum proves these lines were written whole: a newer writer's
    // record type, or an edit that cannot apply, must not be dropped.
    let cases = [
        (r#"{"type":"vlog_discard","file":3}"#, "unknown record type"),
        (
            r#"{"type":"edit","removed_tables":[{"level":0,"id":999}]}"#,
            "cannot remove table 999",
        ),
        (
            r#"{"type":"snapshot","format_version":99,"levels":[[]]}"#,
            "newer",
        ),
    ];
    for (record, expected) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let (m, _) = build(dir.path(), 3, ManifestOptions::default());
        drop(m);
        let offset = manifest_bytes(dir.path()).len() as u64;
        append_raw(dir.path(), framed(record).as_bytes());
        let err =
            Manifest::open(fs(), dir.path(), ManifestOptions::default()).expect_err("must refuse");
        match &err {
            Error::Corruption {
                offset: at, what, ..
            } => {
                assert_eq!(*at, offset, "{record}");
                assert!(
                    what.contains(expected),
                    "{what:?} should mention {expected:?}"
                );
            }
            other => panic!("expected corruption for {record}, got {other:?}"),
        }
        let report = verify(&StdFs, dir.path()).expect("verify");
        assert!(!report.is_ok());
        assert_eq!(report.bad_lines.len(), 1);
        assert_eq!(report.torn_tail_at, None);
    }
}

#[test]
fn newer_format_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(MANIFEST),
        framed(
            r#"{"type":"snapshot","format_version":99,"levels":[[],[]],"next_file":5,"vlogs":[]}"#,
        ),
    )
    .expect("write");
    let err =
        Manifest::open(fs(), dir.path(), ManifestOptions::default()).expect_err("newer format");
    assert!(
        matches!(&err, Error::Corruption { offset: 0, what, .. } if what.contains("newer than this build")),
        "{err:?}"
    );
}

#[test]
fn manifest_must_start_with_a_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(MANIFEST),
        framed(r#"{"type":"edit","next_file":5}"#),
    )
    .expect("write");
    let err = Manifest::open(fs(), dir.path(), ManifestOptions::default()).expect_err("edit first");
    assert!(
        matches!(&err, Error::Corruption { offset: 0, what, .. } if what.contains("snapshot")),
        "{err:?}"
    );

    // A file whose only line is torn is not silently emptied.
    std::fs::write(dir.path().join(MANIFEST), b"{\"crc\":5,\"rec").expect("write");
    let err =
        Manifest::open(fs(), dir.path(), ManifestOptions::default()).expect_err("nothing readable");
    assert!(
        matches!(err, Error::Corruption { offset: 0, .. }),
        "{err:?}"
    );
    assert_eq!(manifest_bytes(dir.path()), b"{\"crc\":5,\"rec");

    std::fs::write(dir.path().join(MANIFEST), b"").expect("write");
    let err = Manifest::open(fs(), dir.path(), ManifestOptions::default()).expect_err("empty");
    assert!(
        matches!(err, Error::Corruption { offset: 0, .. }),
        "{err:?}"
    );
}

#[test]
fn a_later_snapshot_resets_the_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (m, _) = build(dir.path(), 5, ManifestOptions::default());
    drop(m);
    append_raw(
        dir.path(),
        framed(r#"{"type":"snapshot","format_version":1,"levels":[[],[]],"live_wals":[40],"next_file":41,"last_seq":9}"#)
            .as_bytes(),
    );
    let (_, state) = Manifest::open(fs(), dir.path(), ManifestOptions::default()).expect("open");
    assert_eq!(state.num_levels(), 2);
    assert_eq!(
        state.live_wals.iter().copied().collect::<Vec<_>>(),
        vec![FileNumber(40)]
    );
    assert_eq!(
        (state.next_file, state.last_seq),
        (FileNumber(41), SeqNo(9))
    );
}

#[test]
fn rewrite_past_threshold_keeps_state_and_shrinks_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let threshold = 2048;
    let options = ManifestOptions::new().rewrite_threshold_bytes(threshold);
    let mut m = Manifest::create(
        fs(),
        dir.path(),
        ManifestState::new(LEVELS),
        options.clone(),
    )
    .expect("create");
    let mut workload = Workload::new(3);
    let mut largest_seen = 0;
    let mut shrinks = 0;
    for _ in 0..500 {
        let before = m.file_size_bytes();
        let edit = workload.next_edit(m.state());
        m.apply(edit).expect("apply");
        let after = m.file_size_bytes();
        if after < before {
            shrinks += 1;
            // A rewritten file holds one record: the snapshot.
            let records = read_records(&StdFs, dir.path()).expect("records");
            assert_eq!(records.len(), 1);
            assert!(matches!(&records[0].1, Record::Snapshot(s) if s == m.state()));
        }
        assert_eq!(after, manifest_bytes(dir.path()).len() as u64);
        largest_seen = largest_seen.max(after);
    }
    assert!(shrinks > 3, "expected several rewrites, saw {shrinks}");
    // Bounded by the threshold plus one edit line, or twice the snapshot.
    assert!(largest_seen < 4 * threshold, "file grew to {largest_seen}");
    assert!(!dir.path().join(MANIFEST_TMP).exists());
    let expected = m.state().clone();
    drop(m);
    let (_, state) = Manifest::open(fs(), dir.path(), options).expect("open");
    assert_eq!(state, expected);
}

#[test]
fn rejected_edits_write_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut m, history) = build(dir.path(), 10, ManifestOptions::default());
    let size = m.file_size_bytes();
    let bad = [
        VersionEdit {
            removed_tables: vec![TableId {
                level: 2,
                id: FileNumber(12345),
            }],
            ..VersionEdit::default()
        },
        VersionEdit {
            retired_wals: vec![FileNumber(12345)],
            ..VersionEdit::default()
        },
        VersionEdit {
            added_tables: vec![table(1, LEVELS as u32, 0, 1, 1)],
            ..VersionEdit::default()
        },
    ];
    for edit in bad {
        let err = m.apply(edit).expect_err("must be rejected");
        assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        assert_eq!(m.file_size_bytes(), size);
        assert_eq!(m.state(), history.last().expect("history"));
    }
    assert!(m.poisoned().is_none(), "a rejected edit does not poison");
    m.apply(VersionEdit {
        last_seq: Some(SeqNo(u64::from(u32::MAX))),
        ..VersionEdit::default()
    })
    .expect("a valid edit still applies");
    assert_eq!(manifest_bytes(dir.path()).len() as u64, m.file_size_bytes());
}

#[test]
fn create_rejects_an_inconsistent_state_and_replaces_an_old_manifest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut state = ManifestState::new(2);
    state.levels[1] = vec![table(3, 1, 0, 10, 1), table(4, 1, 5, 20, 1)];
    let err =
        Manifest::create(fs(), dir.path(), state, ManifestOptions::default()).expect_err("overlap");
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(!Manifest::exists(&StdFs, dir.path()).expect("exists"));

    let (m, _) = build(dir.path(), 10, ManifestOptions::default());
    drop(m);
    let mut state = ManifestState::new(3);
    state.live_wals.insert(FileNumber(9));
    let m = Manifest::create(fs(), dir.path(), state, ManifestOptions::default())
        .expect("create over old");
    assert_eq!(
        m.state().next_file,
        FileNumber(10),
        "next_file raised past live WAL 9"
    );
    let records = read_records(&StdFs, dir.path()).expect("records");
    assert_eq!(records.len(), 1);
}
