//! Version edits: the changes the manifest records, and the table metadata
//! they carry (docs/manifest-format.md, "Edit record").
//!
//! Plain data with serde derives; no I/O, no threads. Applying an edit to a
//! state is [`crate::ManifestState::apply`].

use jkv_format::{FileNumber, SeqNo};
use serde::{Deserialize, Serialize};

/// What the manifest knows about one sorted table.
///
/// Every field present today is required when reading; fields added by a
/// later format get `#[serde(default)]` so older records still read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TableMeta {
    /// The table's file number (`NNNNNN.sst`).
    pub id: FileNumber,
    /// Level the table sits in, 0-based.
    pub level: u32,
    /// Size of the table file in bytes.
    pub size_bytes: u64,
    /// Number of entries (every version and tombstone counts).
    pub entries: u64,
    /// Smallest internal key in the table (hex string in JSON).
    #[serde(with = "hex_bytes")]
    pub smallest: Vec<u8>,
    /// Largest internal key in the table (hex string in JSON).
    #[serde(with = "hex_bytes")]
    pub largest: Vec<u8>,
    /// Smallest sequence number of any entry in the table.
    pub min_seq: SeqNo,
    /// Largest sequence number of any entry in the table.
    pub max_seq: SeqNo,
    /// Range tombstones the table holds (its range-tombstone block); left
    /// out of the JSON when 0, and 0 in records written before range
    /// deletes existed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub range_deletions: u64,
    /// Entries of kind deletion (tombstones). Absent in JSON when 0 (and in
    /// manifests written before it was recorded).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deletions: u64,
    /// Entries that are older versions of a key with a newer version in
    /// the same table (kept for snapshots when the table was written).
    /// Absent in JSON when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub older_versions: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Names a table to remove: its level and file number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId {
    /// Level the table sits in.
    pub level: u32,
    /// The table's file number.
    pub id: FileNumber,
}

/// One change to the manifest state. Empty fields are left out of the JSON
/// and read back as empty.
///
/// The one type covers every change the engine makes:
/// - a new memtable and its WAL: `new_wals` + `next_file`;
/// - a flushed memtable: `added_tables` at level 0 + `retired_wals` +
///   `last_seq`;
/// - a compaction: `removed_tables` + `added_tables`;
/// - counters alone: `next_file`, `last_seq`.
///
/// - value logs: `new_vlogs`, `vlog_discards`, `removed_vlogs`.
///
/// Applied in this order: tables removed, tables added, WALs retired, WALs
/// added, value logs added, discards counted, value logs removed, counters
/// raised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VersionEdit {
    /// WAL file numbers that start being live (their memtable is not yet
    /// flushed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub new_wals: Vec<FileNumber>,
    /// Live WALs whose memtable is now in a table; they may be deleted once
    /// this edit is durable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired_wals: Vec<FileNumber>,
    /// Tables that become part of the version.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub added_tables: Vec<TableMeta>,
    /// Tables that leave the version; their files may be deleted once this
    /// edit is durable and no reader holds them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_tables: Vec<TableId>,
    /// The next file number to allocate is at least this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_file: Option<FileNumber>,
    /// The last sequence number written is at least this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<SeqNo>,
    /// Value-log files that start being live (created and synced, directory
    /// synced).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub new_vlogs: Vec<FileNumber>,
    /// Garbage found in live value logs, added to their discard counts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vlog_discards: Vec<VlogDiscard>,
    /// Value logs that leave the database (garbage collected); their files
    /// may be deleted once this edit is durable.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_vlogs: Vec<FileNumber>,
}

/// Bytes of garbage found in one value-log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VlogDiscard {
    /// The value log's file number.
    pub file: FileNumber,
    /// Bytes of entries no longer reachable.
    pub bytes: u64,
}

impl VersionEdit {
    /// An edit that changes nothing.
    pub fn new() -> Self {
        VersionEdit::default()
    }

    /// True when applying the edit would change nothing.
    pub fn is_empty(&self) -> bool {
        self == &VersionEdit::default()
    }
}

/// Serde adapter: byte strings as lowercase hex text.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        // An owned String: internally tagged records are buffered by serde,
        // so a borrowed &str is not always available.
        let text = String::deserialize(d)?;
        hex::decode(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_are_left_out() {
        let edit = VersionEdit {
            next_file: Some(FileNumber(7)),
            ..VersionEdit::default()
        };
        let json = serde_json::to_string(&edit).expect("edit serializes");
        assert_eq!(json, r#"{"next_file":7}"#);
        let back: VersionEdit = serde_json::from_str(&json).expect("edit parses");
        assert_eq!(back, edit);
        let empty: VersionEdit = serde_json::from_str("{}").expect("empty edit parses");
        assert!(empty.is_empty());
    }

    #[test]
    fn keys_are_hex() {
        let meta = TableMeta {
            id: FileNumber(12),
            level: 1,
            size_bytes: 4096,
            entries: 3,
            smallest: vec![0x00, 0xab],
            largest: vec![0xff],
            min_seq: SeqNo(1),
            max_seq: SeqNo(9),
            range_deletions: 0,
            deletions: 0,
            older_versions: 0,
        };
        let json = serde_json::to_string(&meta).expect("meta serializes");
        assert!(json.contains(r#""smallest":"00ab""#), "{json}");
        assert!(json.contains(r#""largest":"ff""#), "{json}");
        let back: TableMeta = serde_json::from_str(&json).expect("meta parses");
        assert_eq!(back, meta);
        let bad = json.replace("00ab", "0g");
        assert!(serde_json::from_str::<TableMeta>(&bad).is_err());
    }
}
