//! The range-tombstone block (format version 2, docs/sst-format.md,
//! "Range-tombstone block"): one ordinary block whose keys are
//! `start ++ trailer(seq, RangeDeletion)` and whose values are the end keys.
//! Written by [`crate::TableBuilder::add_range_tombstone`], decoded whole
//! when a table opens (tables hold few tombstones; each covers many keys).
//! Pure functions, no state.

use std::path::Path;

use jkv_format::key::{compare_internal_keys, parse_internal_key, USER_KEY_LEN_MAX};
use jkv_format::{Error, RangeTombstone, Result, ValueKind};

use crate::block::iter::EntryCursor;
use crate::block::BlockView;

/// Decodes the contents of the range-tombstone block at `block_offset` of
/// `path`; `expected` is the count the properties give.
pub fn decode_range_tombstones(
    contents: &[u8],
    path: &Path,
    block_offset: u64,
    expected: u64,
) -> Result<Vec<RangeTombstone>> {
    let out = decode_range_tombstone_entries(contents, path, block_offset)?;
    if out.len() as u64 != expected {
        return Err(Error::corruption(
            path,
            block_offset,
            format!(
                "range-tombstone block holds {} tombstones, properties say {expected}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// Decodes the contents of a range-tombstone block whose count is not
/// known (the properties that give it are damaged: `jkv repair`); every
/// check of [`decode_range_tombstones`] but the count.
pub fn decode_range_tombstone_entries(
    contents: &[u8],
    path: &Path,
    block_offset: u64,
) -> Result<Vec<RangeTombstone>> {
    let corrupt = |what: String| Error::corruption(path, block_offset, what);
    let view = BlockView::parse(contents).map_err(|c| c.into_error(path, block_offset))?;
    let mut out = Vec::new();
    let mut cursor = EntryCursor::default();
    let mut previous: Option<Vec<u8>> = None;
    let mut r = cursor.seek_to_first(view);
    while r.is_ok() && cursor.valid() {
        let key = cursor.key();
        let parsed = parse_internal_key(key)
            .filter(|p| p.kind == ValueKind::RangeDeletion)
            .ok_or_else(|| {
                corrupt(format!(
                    "range tombstone at block byte {} has no range-deletion key",
                    cursor.entry_offset()
                ))
            })?;
        if previous
            .as_deref()
            .is_some_and(|p| compare_internal_keys(p, key) == std::cmp::Ordering::Greater)
        {
            return Err(corrupt("range tombstones out of order".to_string()));
        }
        let (at, len) = cursor.value_range();
        let end = view.slice(at, len);
        if end <= parsed.user_key || end.len() > USER_KEY_LEN_MAX {
            return Err(corrupt(format!(
                "range tombstone at block byte {} ends at or before its start",
                cursor.entry_offset()
            )));
        }
        out.push(RangeTombstone {
            start: parsed.user_key.to_vec(),
            end: end.to_vec(),
            seq: parsed.seq,
        });
        previous = Some(key.to_vec());
        r = cursor.next(view);
    }
    r.map_err(|c| c.into_error(path, block_offset))?;
    Ok(out)
}
