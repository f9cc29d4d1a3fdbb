//! Deep check of one table for `jkv check`: every block's checksum, every
//! key's encoding and order, the index separators, the filter and the
//! properties, reporting the first problem as `Corruption` with its offset.
//!
//! Reads the mapped file directly (never the block cache, which would answer
//! with blocks verified earlier). Runs on the calling thread.

use std::cmp::Ordering;

use jkv_format::key::{compare_internal_keys, parse_internal_key};
use jkv_format::{Error, Result, SeqNo, ValueKind, ValuePointer};

use crate::block::iter::EntryCursor;
use crate::builder::widen_for_range_tombstones;
use crate::footer::{Footer, FOOTER_LEN};
use crate::handle::{read_block, BLOCK_TRAILER_LEN};
use crate::properties::TableProperties;
use crate::range_del::decode_range_tombstones;
use crate::table::Table;

/// What [`Table::verify`] looked at; it found nothing wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Data blocks checked.
    pub data_blocks: u64,
    /// Entries checked.
    pub entries: u64,
    /// Bytes whose checksum was verified (blocks with trailers, footer).
    pub bytes_checked: u64,
    /// Range tombstones checked.
    pub range_tombstones: u64,
    /// Data blocks stored compressed (each decoded and checked).
    pub compressed_blocks: u64,
    /// Bytes the data blocks take decoded, trailers included (equal to the
    /// stored bytes without compression).
    pub raw_data_bytes: u64,
}

impl Table {
    /// Checks the whole table; the first problem found is returned as
    /// [`Error::Corruption`] with the offset of the block (or footer field)
    /// it is in.
    pub fn verify(&self) -> Result<VerifyReport> {
        let path = self.path();
        let file = self.file_bytes();
        let corrupt = |offset: u64, what: String| Error::corruption(path, offset, what);
        let mut report = VerifyReport::default();

        // Metadata: checked at open, checked again in case the map changed.
        let footer = Footer::decode(file, path)?;
        let footer_start = (file.len() - FOOTER_LEN) as u64;
        report.bytes_checked += FOOTER_LEN as u64;
        for h in footer
            .filter
            .iter()
            .chain(self.properties().range_deletion_block.iter())
            .chain([&footer.index, &footer.properties])
        {
            read_block(file, *h, footer_start, path)?;
            report.bytes_checked += h.size + BLOCK_TRAILER_LEN as u64;
        }
        let range_tombstones = match self.properties().range_deletion_block {
            Some(h) => decode_range_tombstones(
                read_block(file, h, footer_start, path)?,
                path,
                h.offset,
                self.properties().range_deletion_count,
            )?,
            None => Vec::new(),
        };
        report.range_tombstones = range_tombstones.len() as u64;

        let index = self.index();
        let props = self.properties();
        let mut cursor = EntryCursor::default();
        let mut prev_key: Vec<u8> = Vec::new();
        let mut smallest: Option<Vec<u8>> = None;
        let (mut min_seq, mut max_seq) = (SeqNo::MAX, SeqNo::ZERO);
        let mut deletions = 0u64;
        let mut pointer_bytes = std::collections::BTreeMap::new();
        let mut expected_offset = 0u64;
        for i in 0..index.len() {
            let handle = index.handle(i);
            let at = handle.offset;
            if at != expected_offset {
                return Err(corrupt(
                    at,
                    format!("data block {i} starts at byte {at}, the previous one ends at {expected_offset}"),
                ));
            }
            let block = self.read_data_block(handle)?;
            // In bounds: read_data_block checked the block and its trailer.
            let kind = file.get((at + handle.size) as usize).copied();
            if kind != Some(crate::handle::COMPRESSION_NONE) {
                report.compressed_blocks += 1;
            }
            report.raw_data_bytes += (block.size_bytes() + BLOCK_TRAILER_LEN) as u64;
            let view = block.view();
            let mut in_block = 0u64;
            let mut r = cursor.seek_to_first(view);
            while r.is_ok() && cursor.valid() {
                let key = cursor.key();
                let entry_at = cursor.entry_offset();
                let Some(p) =
                    parse_internal_key(key).filter(|p| p.kind != ValueKind::RangeDeletion)
                else {
                    return Err(corrupt(
                        at,
                        format!("entry at block byte {entry_at} has no valid internal key"),
                    ));
                };
                if report.entries > 0 && compare_internal_keys(&prev_key, key) != Ordering::Less {
                    return Err(corrupt(
                        at,
                        format!("entry at block byte {entry_at} is not after the previous key"),
                    ));
                }
                if in_block == 0
                    && i > 0
                    && compare_internal_keys(key, index.key(i - 1)) != Ordering::Greater
                {
                    return Err(corrupt(
                        at,
                        format!("first key of data block {i} is not after the previous block's separator"),
                    ));
                }
                if !self.may_contain(p.user_key) {
                    let filter_at = footer.filter.map_or(0, |h| h.offset);
                    return Err(corrupt(
                        filter_at,
                        format!("filter misses a user key of data block {i}"),
                    ));
                }
                min_seq = min_seq.min(p.seq);
                max_seq = max_seq.max(p.seq);
                if p.kind == ValueKind::Deletion {
                    deletions += 1;
                }
                if p.kind == ValueKind::ValuePointer {
                    let (at, len) = cursor.value_range();
                    if let Some(pointer) = ValuePointer::decode(view.slice(at, len)) {
                        *pointer_bytes.entry(pointer.file.0).or_insert(0u64) +=
                            u64::from(pointer.len);
                    }
                }
                if smallest.is_none() {
                    smallest = Some(key.to_vec());
                }
                prev_key.clear();
                prev_key.extend_from_slice(key);
                report.entries += 1;
                in_block += 1;
                r = cursor.next(view);
            }
            r.map_err(|c| c.into_error(path, at))?;
            if in_block == 0 {
                return Err(corrupt(at, format!("data block {i} is empty")));
            }
            if compare_internal_keys(&prev_key, index.key(i)) == Ordering::Greater {
                return Err(corrupt(
                    at,
                    format!("last key of data block {i} is after its separator"),
                ));
            }
            expected_offset = at + handle.size + BLOCK_TRAILER_LEN as u64;
            report.data_blocks += 1;
            report.bytes_checked += handle.size + BLOCK_TRAILER_LEN as u64;
        }
        if expected_offset != self.data_end() {
            return Err(corrupt(
                expected_offset,
                format!(
                    "data blocks end at byte {expected_offset}, metadata starts at {}",
                    self.data_end()
                ),
            ));
        }

        let props_at = footer.properties.offset;
        let mismatch = |what: &str| {
            corrupt(
                props_at,
                format!("properties disagree with the data: {what}"),
            )
        };
        if report.entries != props.entry_count {
            return Err(mismatch("entry count"));
        }
        if deletions != props.deletion_count {
            return Err(mismatch("deletion count"));
        }
        if !props.compression.is_empty()
            && (report.compressed_blocks != props.compressed_block_count
                || report.raw_data_bytes != props.data_raw_bytes)
        {
            return Err(mismatch("compressed block count or raw data bytes"));
        }
        // What the data says, widened by the range tombstones as the
        // builder does.
        let mut expected = TableProperties {
            entry_count: report.entries,
            smallest: smallest.unwrap_or_default(),
            largest: prev_key,
            min_seq: if report.entries > 0 {
                min_seq
            } else {
                SeqNo::ZERO
            },
            max_seq,
            ..TableProperties::default()
        };
        widen_for_range_tombstones(&mut expected, &range_tombstones);
        if expected.smallest != props.smallest {
            return Err(mismatch("smallest key"));
        }
        if expected.largest != props.largest {
            return Err(mismatch("largest key"));
        }
        if (report.entries > 0 || !range_tombstones.is_empty())
            && (expected.min_seq != props.min_seq || expected.max_seq != props.max_seq)
        {
            return Err(mismatch("sequence number range"));
        }
        if self.data_end() != props.data_size_bytes {
            return Err(mismatch("data size"));
        }
        if footer.version >= 2
            && pointer_bytes.into_iter().collect::<Vec<_>>() != props.vlog_pointer_bytes
        {
            return Err(mismatch("value-log bytes of the value pointers"));
        }
        Ok(report)
    }
}
