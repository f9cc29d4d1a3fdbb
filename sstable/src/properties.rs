//! The properties block: what a table holds, readable without scanning it
//! (docs/sst-format.md, "Properties block").
//!
//! Self-describing: a block in the ordinary block format whose keys are
//! property names (ASCII, sorted) and whose values are varint64 numbers or
//! raw bytes. A reader ignores names it does not know, so later versions can
//! add properties; every property listed here is required in version 1.
//! Pure data, `Send + Sync`.

use std::path::Path;

use jkv_format::coding::{get_varint64, put_varint64};
use jkv_format::{Error, Result, SeqNo};

use crate::block::iter::EntryCursor;
use crate::block::{BlockBuilder, BlockView};
use crate::handle::BlockHandle;

const BLOOM_BITS_PER_KEY: &str = "jkv.bloom.bits_per_key";
/// Optional: the identity of the database the table was written for.
const DB_ID: &str = "jkv.db.id";
const DATA_BLOCKS: &str = "jkv.data.blocks";
const DATA_BYTES: &str = "jkv.data.bytes";
/// Optional (version 3): the compression the table was written with.
const COMPRESSION: &str = "jkv.compression";
/// Optional (version 3): data blocks stored compressed.
const COMPRESSED_BLOCKS: &str = "jkv.data.compressed_blocks";
/// Optional (version 3): what the data blocks would take uncompressed.
const DATA_RAW_BYTES: &str = "jkv.data.raw_bytes";
const ENTRIES: &str = "jkv.entries";
const DELETIONS: &str = "jkv.entries.deletions";
/// Optional: entries that are older versions of a key in the same table.
const OLDER_VERSIONS: &str = "jkv.entries.older_versions";
const FILTER_BYTES: &str = "jkv.filter.bytes";
const INDEX_BYTES: &str = "jkv.index.bytes";
/// Optional (version 2): the range-tombstone block's handle.
const RANGE_DEL_BLOCK: &str = "jkv.range_del.block";
/// Optional (version 2): value-log bytes the table's pointers refer to,
/// by value-log file.
const VLOG_POINTER_BYTES: &str = "jkv.vlog.pointer_bytes";
/// Optional (version 2): number of range tombstones.
const RANGE_DELETIONS: &str = "jkv.range_del.count";
const KEY_LARGEST: &str = "jkv.key.largest";
const KEY_SMALLEST: &str = "jkv.key.smallest";
const RAW_KEY_BYTES: &str = "jkv.raw.key_bytes";
const RAW_VALUE_BYTES: &str = "jkv.raw.value_bytes";
const SEQ_MAX: &str = "jkv.seq.max";
const SEQ_MIN: &str = "jkv.seq.min";

/// Facts about one table, written by the builder and read at open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableProperties {
    /// Number of entries (every version and tombstone counts).
    pub entry_count: u64,
    /// Entries of kind `Deletion`.
    pub deletion_count: u64,
    /// Number of data blocks.
    pub data_block_count: u64,
    /// Smallest internal key; empty for an empty table.
    pub smallest: Vec<u8>,
    /// Largest internal key; empty for an empty table.
    pub largest: Vec<u8>,
    /// Smallest sequence number of any entry (0 for an empty table).
    pub min_seq: SeqNo,
    /// Largest sequence number of any entry (0 for an empty table).
    pub max_seq: SeqNo,
    /// Bytes of data blocks, trailers included.
    pub data_size_bytes: u64,
    /// Bytes of the index block, trailer included.
    pub index_size_bytes: u64,
    /// Bytes of the filter block, trailer included (0 without a filter).
    pub filter_size_bytes: u64,
    /// Filter bits per key the table was built with (0: no filter).
    pub bloom_bits_per_key: u64,
    /// Sum of the internal key lengths of all entries.
    pub raw_key_bytes: u64,
    /// Sum of the value lengths of all entries.
    pub raw_value_bytes: u64,
    /// Identity of the database the table belongs to (optional property
    /// `jkv.db.id`, written when non-zero; 0 when absent).
    pub db_id: u64,
    /// Range tombstones in the table (optional property
    /// `jkv.range_del.count`, written when non-zero; 0 when absent).
    pub range_deletion_count: u64,
    /// Where the range-tombstone block is (optional property
    /// `jkv.range_del.block`; `None` when the table has no range
    /// tombstone, and always in format version 1).
    pub range_deletion_block: Option<BlockHandle>,
    /// Bytes of value-log entries the table's value pointers refer to, as
    /// (value-log file number, bytes), ascending by file (optional property
    /// `jkv.vlog.pointer_bytes`, written by version 2 when the table has
    /// pointers; empty when absent). A compaction that deletes the table
    /// unread counts them as value-log garbage.
    pub vlog_pointer_bytes: Vec<(u64, u64)>,
    /// Entries that are an older version of a key whose newer version is
    /// in the same table (kept for a snapshot when the table was written):
    /// garbage once no snapshot needs them (optional property
    /// `jkv.entries.older_versions`, written when non-zero; 0 when absent).
    pub older_version_count: u64,
    /// The compression the writer was asked for, as typed (`lz4`,
    /// `zstd:3`; optional property `jkv.compression`, version 3, written
    /// when not `none`; empty when absent).
    pub compression: String,
    /// Data blocks stored compressed (optional property
    /// `jkv.data.compressed_blocks`, version 3, written with
    /// `jkv.compression`; 0 when absent).
    pub compressed_block_count: u64,
    /// Bytes the data blocks would take stored raw, trailers included
    /// (optional property `jkv.data.raw_bytes`, version 3, written with
    /// `jkv.compression`; 0 when absent, when it equals `data_size_bytes`).
    pub data_raw_bytes: u64,
}

/// Accessor of one numeric property.
type NumberField = fn(&mut TableProperties) -> &mut u64;

/// The numeric properties, by name.
const NUMBERS: [(&str, NumberField); 11] = [
    (BLOOM_BITS_PER_KEY, |p| &mut p.bloom_bits_per_key),
    (DATA_BLOCKS, |p| &mut p.data_block_count),
    (DATA_BYTES, |p| &mut p.data_size_bytes),
    (ENTRIES, |p| &mut p.entry_count),
    (DELETIONS, |p| &mut p.deletion_count),
    (FILTER_BYTES, |p| &mut p.filter_size_bytes),
    (INDEX_BYTES, |p| &mut p.index_size_bytes),
    (RAW_KEY_BYTES, |p| &mut p.raw_key_bytes),
    (RAW_VALUE_BYTES, |p| &mut p.raw_value_bytes),
    (SEQ_MAX, |p| &mut p.max_seq.0),
    (SEQ_MIN, |p| &mut p.min_seq.0),
];

/// Bit of `seen` for the two key properties (numbers use their index).
const SEEN_LARGEST: u32 = 1 << NUMBERS.len();
const SEEN_SMALLEST: u32 = SEEN_LARGEST << 1;
const SEEN_ALL: u32 = (SEEN_SMALLEST << 1) - 1;

impl TableProperties {
    /// Bytes the data blocks would take stored raw, trailers included
    /// (`data_size_bytes` for a table written without compression).
    pub fn data_raw_size_bytes(&self) -> u64 {
        if self.data_raw_bytes == 0 {
            self.data_size_bytes
        } else {
            self.data_raw_bytes
        }
    }

    /// The block contents (no trailer) holding these properties.
    pub fn encode(&self) -> Vec<u8> {
        let mut copy = self.clone();
        let mut entries: Vec<(&str, Vec<u8>)> = NUMBERS
            .iter()
            .map(|(name, field)| {
                let mut b = Vec::with_capacity(10);
                put_varint64(&mut b, *field(&mut copy));
                (*name, b)
            })
            .collect();
        for (name, value) in [
            (DB_ID, self.db_id),
            (OLDER_VERSIONS, self.older_version_count),
        ] {
            if value != 0 {
                let mut b = Vec::with_capacity(10);
                put_varint64(&mut b, value);
                entries.push((name, b));
            }
        }
        if !self.compression.is_empty() {
            entries.push((COMPRESSION, self.compression.as_bytes().to_vec()));
            for (name, value) in [
                (COMPRESSED_BLOCKS, self.compressed_block_count),
                (DATA_RAW_BYTES, self.data_raw_bytes),
            ] {
                let mut b = Vec::with_capacity(10);
                put_varint64(&mut b, value);
                entries.push((name, b));
            }
        }
        if self.range_deletion_count != 0 {
            let mut b = Vec::with_capacity(10);
            put_varint64(&mut b, self.range_deletion_count);
            entries.push((RANGE_DELETIONS, b));
        }
        if let Some(h) = self.range_deletion_block {
            let mut b = Vec::with_capacity(20);
            h.encode_to(&mut b);
            entries.push((RANGE_DEL_BLOCK, b));
        }
        if !self.vlog_pointer_bytes.is_empty() {
            let mut b = Vec::with_capacity(self.vlog_pointer_bytes.len() * 8);
            for &(file, bytes) in &self.vlog_pointer_bytes {
                put_varint64(&mut b, file);
                put_varint64(&mut b, bytes);
            }
            entries.push((VLOG_POINTER_BYTES, b));
        }
        entries.push((KEY_LARGEST, self.largest.clone()));
        entries.push((KEY_SMALLEST, self.smallest.clone()));
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut b = BlockBuilder::new(1);
        for (name, value) in &entries {
            b.add(name.as_bytes(), value);
        }
        b.finish().to_vec()
    }

    /// Decodes the contents of the properties block that starts at
    /// `block_offset` of `path` (used in error reports).
    pub fn decode(contents: &[u8], path: &Path, block_offset: u64) -> Result<TableProperties> {
        let corrupt = |what: String| Error::corruption(path, block_offset, what);
        let view = BlockView::parse(contents).map_err(|c| c.into_error(path, block_offset))?;
        let mut p = TableProperties::default();
        let mut seen = 0u32;
        let mut cursor = EntryCursor::default();
        let mut r = cursor.seek_to_first(view);
        while r.is_ok() && cursor.valid() {
            let (at, len) = cursor.value_range();
            let value = view.slice(at, len);
            let name = cursor.key();
            if name == KEY_LARGEST.as_bytes() {
                p.largest = value.to_vec();
                seen |= SEEN_LARGEST;
            } else if name == KEY_SMALLEST.as_bytes() {
                p.smallest = value.to_vec();
                seen |= SEEN_SMALLEST;
            } else if name == DB_ID.as_bytes() {
                p.db_id = match get_varint64(value) {
                    Some((v, n)) if n == value.len() => v,
                    _ => return Err(corrupt(format!("property {DB_ID} is not a varint"))),
                };
            } else if name == RANGE_DELETIONS.as_bytes() {
                p.range_deletion_count = match get_varint64(value) {
                    Some((v, n)) if n == value.len() => v,
                    _ => {
                        return Err(corrupt(format!(
                            "property {RANGE_DELETIONS} is not a varint"
                        )))
                    }
                };
            } else if name == VLOG_POINTER_BYTES.as_bytes() {
                p.vlog_pointer_bytes = decode_pairs(value).ok_or_else(|| {
                    corrupt(format!(
                        "property {VLOG_POINTER_BYTES} is not ascending varint pairs"
                    ))
                })?;
            } else if name == RANGE_DEL_BLOCK.as_bytes() {
                p.range_deletion_block =
                    Some(BlockHandle::decode_exact(value).ok_or_else(|| {
                        corrupt(format!("property {RANGE_DEL_BLOCK} is not a block handle"))
                    })?);
            } else if name == COMPRESSION.as_bytes() {
                p.compression = String::from_utf8_lossy(value).into_owned();
            } else if name == COMPRESSED_BLOCKS.as_bytes() || name == DATA_RAW_BYTES.as_bytes() {
                let v = match get_varint64(value) {
                    Some((v, n)) if n == value.len() => v,
                    _ => {
                        return Err(corrupt(format!(
                            "property {} is not a varint",
                            String::from_utf8_lossy(name)
                        )))
                    }
                };
                if name == COMPRESSED_BLOCKS.as_bytes() {
                    p.compressed_block_count = v;
                } else {
                    p.data_raw_bytes = v;
                }
            } else if name == OLDER_VERSIONS.as_bytes() {
                p.older_version_count = match get_varint64(value) {
                    Some((v, n)) if n == value.len() => v,
                    _ => {
                        return Err(corrupt(format!(
                            "property {OLDER_VERSIONS} is not a varint"
                        )))
                    }
                };
            } else if let Some(i) = NUMBERS.iter().position(|(n, _)| n.as_bytes() == name) {
                let v = match get_varint64(value) {
                    Some((v, n)) if n == value.len() => v,
                    _ => {
                        return Err(corrupt(format!(
                            "property {} is not a varint",
                            NUMBERS[i].0
                        )))
                    }
                };
                *NUMBERS[i].1(&mut p) = v;
                seen |= 1 << i;
            }
            // Any other name is a property of a later version: ignored.
            r = cursor.next(view);
        }
        r.map_err(|c| c.into_error(path, block_offset))?;
        if (p.range_deletion_count != 0) != p.range_deletion_block.is_some() {
            return Err(corrupt(format!(
                "properties {RANGE_DELETIONS} and {RANGE_DEL_BLOCK} disagree"
            )));
        }
        if seen != SEEN_ALL {
            return Err(corrupt(format!(
                "properties block lacks required properties (found mask {seen:#06x})"
            )));
        }
        Ok(p)
    }
}

/// Varint64 pairs, strictly ascending by their first number.
fn decode_pairs(mut value: &[u8]) -> Option<Vec<(u64, u64)>> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    while !value.is_empty() {
        let (a, n) = get_varint64(value)?;
        let (b, m) = get_varint64(&value[n..])?;
        if out.last().is_some_and(|&(prev, _)| prev >= a) {
            return None;
        }
        out.push((a, b));
        value = &value[n + m..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv_format::key::InternalKey;
    use jkv_format::ValueKind;

    fn sample() -> TableProperties {
        TableProperties {
            entry_count: 1000,
            deletion_count: 3,
            data_block_count: 12,
            smallest: InternalKey::new(b"a", SeqNo(5), ValueKind::Value).into_vec(),
            largest: InternalKey::new(b"z", SeqNo(9), ValueKind::Deletion).into_vec(),
            min_seq: SeqNo(1),
            max_seq: SeqNo(u64::from(u32::MAX) + 7),
            data_size_bytes: 49_000,
            index_size_bytes: 300,
            filter_size_bytes: 1256,
            bloom_bits_per_key: 10,
            raw_key_bytes: 12_000,
            raw_value_bytes: 34_000,
            db_id: 0x1234_5678,
            range_deletion_count: 2,
            range_deletion_block: Some(BlockHandle {
                offset: 49_000,
                size: 77,
            }),
            vlog_pointer_bytes: vec![(3, 4096), (9, 1 << 40)],
            older_version_count: 17,
            compression: "zstd:3".to_string(),
            compressed_block_count: 11,
            data_raw_bytes: 130_000,
        }
    }

    #[test]
    fn round_trip() {
        let p = sample();
        let enc = p.encode();
        assert_eq!(TableProperties::decode(&enc, Path::new("t"), 0).unwrap(), p);
        let empty = TableProperties::default();
        assert_eq!(
            TableProperties::decode(&empty.encode(), Path::new("t"), 0).unwrap(),
            empty
        );
    }

    #[test]
    fn unknown_names_are_ignored_and_missing_ones_refused() {
        let mut b = BlockBuilder::new(1);
        b.add(b"jkv.aaa.future", b"\x01");
        let contents = b.finish().to_vec();
        let e = TableProperties::decode(&contents, Path::new("t"), 77).unwrap_err();
        assert!(matches!(e, Error::Corruption { offset: 77, .. }), "{e}");
    }

    #[test]
    fn damaged_bytes_never_panic() {
        let enc = sample().encode();
        for i in 0..enc.len() {
            for bit in 0..8 {
                let mut bad = enc.clone();
                bad[i] ^= 1 << bit;
                let _ = TableProperties::decode(&bad, Path::new("t"), 0);
            }
        }
    }
}
