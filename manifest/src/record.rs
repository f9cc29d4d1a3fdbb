//! Manifest records and their line framing (docs/manifest-format.md, "Line
//! format"): each record is one line `{"crc":<u32>,"record":<record JSON>}`,
//! where `crc` is the CRC-32 of the exact bytes of the record JSON text.
//!
//! Decoding tells two failures apart, because the reader treats them
//! differently at the end of the file:
//! - a line whose framing is damaged (not JSON, no checksum, checksum
//!   mismatch) may be a torn append (`LineError::Torn`);
//! - a line whose checksum matches was written whole, so a record in it that
//!   this build cannot use (unknown type, newer format, bad field) is never
//!   torn (`LineError::Invalid`).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::edit::VersionEdit;
use crate::state::{ManifestState, FORMAT_VERSION};

/// One manifest record. In JSON the variant is the `"type"` field
/// (`"edit"` or `"snapshot"`) beside the variant's own fields. A record type
/// this build does not know is an error: it was written by a newer jkv.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    /// A change to the state before it.
    Edit(VersionEdit),
    /// The whole state; replaces whatever came before. Always the first
    /// record of a manifest file.
    Snapshot(ManifestState),
}

/// A record to encode, borrowed so that writing a snapshot does not clone
/// the state. Serializes exactly like [`Record`].
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum RecordRef<'a> {
    Edit(&'a VersionEdit),
    Snapshot(&'a ManifestState),
}

impl<'a> From<&'a Record> for RecordRef<'a> {
    fn from(record: &'a Record) -> Self {
        match record {
            Record::Edit(edit) => RecordRef::Edit(edit),
            Record::Snapshot(state) => RecordRef::Snapshot(state),
        }
    }
}

/// Why a line could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LineError {
    /// The framing is damaged: the line may be an append that never
    /// completed.
    Torn(String),
    /// The checksum matches but the record is unusable here.
    Invalid(String),
}

impl LineError {
    pub(crate) fn what(&self) -> &str {
        match self {
            LineError::Torn(what) | LineError::Invalid(what) => what,
        }
    }
}

/// The outer object of a line; `record` keeps the exact bytes the checksum
/// covers.
#[derive(Deserialize)]
struct Line<'a> {
    crc: u32,
    #[serde(borrow)]
    record: &'a RawValue,
}

/// Encodes `record` as one line, newline included.
pub(crate) fn encode_line(record: RecordRef<'_>) -> Vec<u8> {
    let json = serde_json::to_string(&record)
        .expect("records hold only strings, integers, arrays and objects with string keys");
    let crc = jkv_format::checksum(json.as_bytes());
    format!("{{\"crc\":{crc},\"record\":{json}}}\n").into_bytes()
}

/// Decodes one line (without its newline).
pub(crate) fn decode_line(line: &[u8]) -> Result<Record, LineError> {
    let framed: Line<'_> = serde_json::from_slice(line)
        .map_err(|e| LineError::Torn(format!("line is not a framed record: {e}")))?;
    let text = framed.record.get();
    let crc = jkv_format::checksum(text.as_bytes());
    if crc != framed.crc {
        return Err(LineError::Torn(format!(
            "checksum mismatch: line says {}, record bytes give {crc}",
            framed.crc
        )));
    }
    let record = match serde_json::from_str::<Record>(text) {
        Ok(record) => record,
        Err(e) => return Err(LineError::Invalid(explain_bad_record(text, &e))),
    };
    if let Record::Snapshot(state) = &record {
        check_format_version(u64::from(state.format_version))?;
    }
    Ok(record)
}

fn check_format_version(version: u64) -> Result<(), LineError> {
    if version > u64::from(FORMAT_VERSION) {
        return Err(LineError::Invalid(format!(
            "manifest format version {version} is newer than this build reads \
             (up to {FORMAT_VERSION}); open it with a newer jkv"
        )));
    }
    if version == 0 {
        return Err(LineError::Invalid(
            "manifest format version 0 does not exist".to_string(),
        ));
    }
    Ok(())
}

/// A message for a record that passed its checksum but does not parse:
/// names an unknown type or a newer format before blaming a field.
fn explain_bad_record(text: &str, err: &serde_json::Error) -> String {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return format!("record is not JSON: {err}");
    };
    match value.get("type").and_then(|t| t.as_str()) {
        None => "record has no \"type\" field".to_string(),
        Some(kind @ ("edit" | "snapshot")) => {
            if kind == "snapshot" {
                if let Some(version) = value.get("format_version").and_then(|v| v.as_u64()) {
                    if let Err(newer) = check_format_version(version) {
                        return newer.what().to_string();
                    }
                }
            }
            format!("malformed {kind} record: {err}")
        }
        Some(kind) => format!("unknown record type {kind:?} (written by a newer jkv?)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edit::{TableId, TableMeta};
    use jkv_format::{FileNumber, SeqNo};

    fn sample_state() -> ManifestState {
        let mut state = ManifestState::new(3);
        state.levels[1].push(TableMeta {
            id: FileNumber(9),
            level: 1,
            size_bytes: 1234,
            entries: 56,
            smallest: b"a\x01\0\0\0\0\0\0\0".to_vec(),
            largest: b"z\x01\0\0\0\0\0\0\0".to_vec(),
            min_seq: SeqNo(3),
            max_seq: SeqNo(77),
            range_deletions: 0,
            deletions: 0,
            older_versions: 0,
        });
        state.live_wals.insert(FileNumber(10));
        state.next_file = FileNumber(11);
        state.last_seq = SeqNo(77);
        state
    }

    fn sample_edit() -> VersionEdit {
        VersionEdit {
            new_wals: vec![FileNumber(12)],
            retired_wals: vec![FileNumber(10)],
            added_tables: sample_state().levels[1].clone(),
            removed_tables: vec![TableId {
                level: 0,
                id: FileNumber(4),
            }],
            next_file: Some(FileNumber(13)),
            last_seq: Some(SeqNo(80)),
            new_vlogs: vec![FileNumber(14)],
            vlog_discards: vec![crate::edit::VlogDiscard {
                file: FileNumber(9),
                bytes: 4096,
            }],
            removed_vlogs: vec![FileNumber(8)],
        }
    }

    fn strip_newline(line: &[u8]) -> &[u8] {
        line.strip_suffix(b"\n")
            .expect("encoded lines end with a newline")
    }

    #[test]
    fn every_record_type_round_trips() {
        for record in [
            Record::Snapshot(sample_state()),
            Record::Snapshot(ManifestState::new(0)),
            Record::Edit(sample_edit()),
            Record::Edit(VersionEdit::default()),
        ] {
            let line = encode_line((&record).into());
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(decode_line(strip_newline(&line)), Ok(record));
        }
    }

    #[test]
    fn json_shape() {
        let edit = VersionEdit {
            new_wals: vec![FileNumber(5)],
            next_file: Some(FileNumber(6)),
            ..VersionEdit::default()
        };
        let line = encode_line(RecordRef::Edit(&edit));
        let text = String::from_utf8(line).expect("lines are UTF-8");
        let record = r#"{"type":"edit","new_wals":[5],"next_file":6}"#;
        let crc = jkv_format::checksum(record.as_bytes());
        assert_eq!(text, format!("{{\"crc\":{crc},\"record\":{record}}}\n"));
    }

    #[test]
    fn damaged_framing_is_torn() {
        let line = encode_line((&Record::Edit(sample_edit())).into());
        let line = strip_newline(&line);
        assert!(matches!(
            decode_line(&line[..line.len() - 3]),
            Err(LineError::Torn(_))
        ));
        assert!(matches!(decode_line(b""), Err(LineError::Torn(_))));
        assert!(matches!(decode_line(&[0u8; 16]), Err(LineError::Torn(_))));
        // A flipped digit inside the record: the checksum catches it.
        let text = String::from_utf8(line.to_vec()).expect("lines are UTF-8");
        let flipped = text.replace("\"next_file\":13", "\"next_file\":93");
        assert_ne!(flipped, text);
        let err = decode_line(flipped.as_bytes()).expect_err("checksum must catch the flip");
        assert!(
            matches!(&err, LineError::Torn(w) if w.contains("checksum")),
            "{err:?}"
        );
    }

    fn framed(record: &str) -> Vec<u8> {
        let crc = jkv_format::checksum(record.as_bytes());
        format!("{{\"crc\":{crc},\"record\":{record}}}").into_bytes()
    }

    #[test]
    fn unknown_type_and_newer_version_are_invalid() {
        let err = decode_line(&framed(r#"{"type":"vlog_gc","file":3}"#)).expect_err("unknown type");
        assert!(
            matches!(&err, LineError::Invalid(w) if w.contains("unknown record type")),
            "{err:?}"
        );

        let err = decode_line(&framed(r#"{"type":"snapshot","format_version":99}"#))
            .expect_err("newer version");
        assert!(
            matches!(&err, LineError::Invalid(w) if w.contains("newer")),
            "{err:?}"
        );

        // A newer format that also changed a field's shape: still reported
        // as a newer version, not as a malformed field.
        let err = decode_line(&framed(
            r#"{"type":"snapshot","format_version":99,"levels":"elsewhere"}"#,
        ))
        .expect_err("newer version");
        assert!(
            matches!(&err, LineError::Invalid(w) if w.contains("newer")),
            "{err:?}"
        );

        let err = decode_line(&framed(r#"{"type":"edit","new_wals":"x"}"#)).expect_err("bad field");
        assert!(
            matches!(&err, LineError::Invalid(w) if w.contains("malformed edit")),
            "{err:?}"
        );

        let err = decode_line(&framed(r#"{"new_wals":[1]}"#)).expect_err("no type");
        assert!(
            matches!(&err, LineError::Invalid(w) if w.contains("no \"type\"")),
            "{err:?}"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        // Room for later fields: an edit with a field this build does not
        // know still reads.
        let record = decode_line(&framed(
            r#"{"type":"edit","next_file":4,"vlog_discard":{"7":100}}"#,
        ))
        .expect("unknown fields are ignored");
        assert_eq!(
            record,
            Record::Edit(VersionEdit {
                next_file: Some(FileNumber(4)),
                ..VersionEdit::default()
            })
        );
    }

    fn table_strategy() -> impl proptest::strategy::Strategy<Value = TableMeta> {
        use proptest::prelude::*;
        (
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..24),
            proptest::collection::vec(any::<u8>(), 0..24),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(
                |(id, level, size_bytes, entries, smallest, largest, min_seq, max_seq)| TableMeta {
                    id: FileNumber(id),
                    level,
                    size_bytes,
                    entries,
                    smallest,
                    largest,
                    min_seq: SeqNo(min_seq),
                    max_seq: SeqNo(max_seq),
                    range_deletions: max_seq % 3,
                    deletions: entries / 3,
                    older_versions: entries % 7,
                },
            )
    }

    proptest::proptest! {
        #[test]
        fn any_edit_round_trips(
            new_wals in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..4),
            retired_wals in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..4),
            added_tables in proptest::collection::vec(table_strategy(), 0..4),
            removed in proptest::collection::vec((proptest::prelude::any::<u32>(), proptest::prelude::any::<u64>()), 0..4),
            next_file in proptest::option::of(proptest::prelude::any::<u64>()),
            last_seq in proptest::option::of(proptest::prelude::any::<u64>()),
        ) {
            let new_wals_copy = new_wals.clone();
            let edit = VersionEdit {
                new_wals: new_wals.into_iter().map(FileNumber).collect(),
                retired_wals: retired_wals.into_iter().map(FileNumber).collect(),
                added_tables,
                removed_tables: removed
                    .into_iter()
                    .map(|(level, id)| TableId { level, id: FileNumber(id) })
                    .collect(),
                next_file: next_file.map(FileNumber),
                last_seq: last_seq.map(SeqNo),
                new_vlogs: new_wals_copy.iter().map(|w| FileNumber(w ^ 1)).collect(),
                vlog_discards: vec![crate::edit::VlogDiscard { file: FileNumber(3), bytes: 77 }],
                removed_vlogs: vec![FileNumber(5)],
            };
            let record = Record::Edit(edit);
            let line = encode_line((&record).into());
            proptest::prop_assert_eq!(decode_line(strip_newline(&line)), Ok(record));
        }

        #[test]
        fn any_snapshot_round_trips(
            levels in proptest::collection::vec(proptest::collection::vec(table_strategy(), 0..3), 0..4),
            live_wals in proptest::collection::btree_set(proptest::prelude::any::<u64>(), 0..4),
            next_file in proptest::prelude::any::<u64>(),
            last_seq in proptest::prelude::any::<u64>(),
        ) {
            let live_wals_vlogs = live_wals
                .iter()
                .map(|&w| (FileNumber(w ^ 1), crate::state::VlogMeta { discard_bytes: w / 2 }))
                .collect();
            let record = Record::Snapshot(ManifestState {
                format_version: FORMAT_VERSION,
                levels,
                live_wals: live_wals.into_iter().map(FileNumber).collect(),
                next_file: FileNumber(next_file),
                last_seq: SeqNo(last_seq),
                vlogs: live_wals_vlogs,
                db_id: next_file ^ last_seq,
            });
            let line = encode_line((&record).into());
            proptest::prop_assert_eq!(decode_line(strip_newline(&line)), Ok(record));
        }

        #[test]
        fn arbitrary_lines_never_panic(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = decode_line(&line);
        }
    }
}
