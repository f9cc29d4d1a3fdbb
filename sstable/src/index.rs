//! The index: one entry per data block, `separator key -> block handle`
//! (docs/sst-format.md, "Index block").
//!
//! On disk the index is an ordinary block. At open it is parsed once into
//! [`Index`], a flat in-memory array searched by binary search, so a point
//! lookup touches no index bytes on disk and allocates nothing. This module
//! also picks the separators the builder writes. Immutable after parsing;
//! shared between threads through the table.

use std::cmp::Ordering;
use std::path::Path;

use jkv_format::key::{compare_internal_keys, pack_trailer, user_key, TRAILER_LEN};
use jkv_format::{Error, Result, SeqNo, ValueKind};

use crate::block::iter::EntryCursor;
use crate::block::BlockView;
use crate::handle::BlockHandle;

#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    /// End of this entry's key in `Index::keys` (it starts where the
    /// previous one ends).
    key_end: usize,
    handle: BlockHandle,
}

/// A parsed index: separator keys in increasing internal-key order, each
/// with the handle of its data block.
#[derive(Clone, Debug, Default)]
pub struct Index {
    keys: Vec<u8>,
    entries: Vec<IndexEntry>,
}

impl Index {
    /// Parses the index block's contents; the block starts at `block_offset`
    /// of `path` (used in error reports). Refuses handles that do not decode,
    /// keys shorter than a trailer and keys out of order.
    pub fn parse(contents: &[u8], path: &Path, block_offset: u64) -> Result<Index> {
        let view = BlockView::parse(contents).map_err(|c| c.into_error(path, block_offset))?;
        let mut index = Index::default();
        let mut cursor = EntryCursor::default();
        let mut r = cursor.seek_to_first(view);
        while r.is_ok() && cursor.valid() {
            let corrupt = |what: &str| {
                Error::corruption(
                    path,
                    block_offset,
                    format!(
                        "index entry {} (block byte {}): {what}",
                        index.entries.len(),
                        cursor.entry_offset()
                    ),
                )
            };
            let (at, len) = cursor.value_range();
            let handle = BlockHandle::decode_exact(view.slice(at, len))
                .ok_or_else(|| corrupt("bad block handle"))?;
            let key = cursor.key();
            if key.len() < TRAILER_LEN {
                return Err(corrupt("separator shorter than an internal key trailer"));
            }
            if let Some(last) = index.entries.len().checked_sub(1) {
                if compare_internal_keys(index.key(last), key) != Ordering::Less {
                    return Err(corrupt("separators out of order"));
                }
            }
            index.keys.extend_from_slice(key);
            index.entries.push(IndexEntry {
                key_end: index.keys.len(),
                handle,
            });
            r = cursor.next(view);
        }
        r.map_err(|c| c.into_error(path, block_offset))?;
        index.keys.shrink_to_fit();
        index.entries.shrink_to_fit();
        Ok(index)
    }

    /// Number of data blocks.
    #[inline]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the table has no data blocks.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Separator key of block `i`. Panics if `i >= len()`.
    #[inline]
    pub fn key(&self, i: usize) -> &[u8] {
        let start = match i.checked_sub(1) {
            Some(p) => self.entries[p].key_end,
            None => 0,
        };
        &self.keys[start..self.entries[i].key_end]
    }

    /// Handle of block `i`. Panics if `i >= len()`.
    #[inline]
    pub fn handle(&self, i: usize) -> BlockHandle {
        self.entries[i].handle
    }

    /// The first block whose separator `k` has `cmp(k) != Less` (`cmp`
    /// compares a separator with the target); `len()` if none. That block is
    /// the first that can hold an entry at or after the target.
    #[inline]
    pub fn lower_bound_by(&self, mut cmp: impl FnMut(&[u8]) -> Ordering) -> usize {
        let (mut lo, mut hi) = (0, self.entries.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if cmp(self.key(mid)) == Ordering::Less {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Bytes of memory the parsed index holds.
    pub fn memory_bytes(&self) -> usize {
        self.keys.capacity() + self.entries.capacity() * std::mem::size_of::<IndexEntry>()
    }
}

/// Writes into `out` a separator between the last key of one block (`last`)
/// and the first key of the next (`next`, greater than `last`): an internal
/// key `s` with `last <= s < next`, as short as is cheap to find.
///
/// When the user keys differ at some byte that can be bumped while staying
/// below `next`'s, the separator is that shortened user key with the largest
/// trailer (sorting before every real entry of that user key); otherwise it
/// is `last` itself.
pub fn separator(last: &[u8], next: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let (a, b) = (user_key(last), user_key(next));
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if let (Some(&x), Some(&y)) = (a.get(common), b.get(common)) {
        if x < 0xff && x + 1 < y && common + 1 < a.len() {
            out.extend_from_slice(&a[..common]);
            out.push(x + 1);
            out.extend_from_slice(&pack_trailer(SeqNo::MAX, ValueKind::SEEK).to_le_bytes());
            debug_assert_eq!(compare_internal_keys(last, out), Ordering::Less);
            debug_assert_eq!(compare_internal_keys(out, next), Ordering::Less);
            return;
        }
    }
    out.extend_from_slice(last);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockBuilder;
    use jkv_format::key::InternalKey;
    use proptest::prelude::*;

    fn ik(k: &[u8], s: u64) -> Vec<u8> {
        InternalKey::new(k, SeqNo(s), ValueKind::Value).into_vec()
    }

    #[test]
    fn separator_shortens_when_it_can() {
        let mut out = Vec::new();
        separator(&ik(b"abcdef", 5), &ik(b"abzz", 9), &mut out);
        assert_eq!(user_key(&out), b"abd");
        // Adjacent bytes: no room to bump, keep the last key.
        separator(&ik(b"abc", 5), &ik(b"abd", 9), &mut out);
        assert_eq!(out, ik(b"abc", 5));
        // Same user key (versions split across blocks).
        separator(&ik(b"k", 9), &ik(b"k", 3), &mut out);
        assert_eq!(out, ik(b"k", 9));
        // Prefix.
        separator(&ik(b"ab", 1), &ik(b"abc", 1), &mut out);
        assert_eq!(out, ik(b"ab", 1));
    }

    proptest! {
        #[test]
        fn separator_lies_between(a in proptest::collection::vec(any::<u8>(), 0..8), sa in 0u64..100,
                                  b in proptest::collection::vec(any::<u8>(), 0..8), sb in 0u64..100) {
            let (x, y) = (ik(&a, sa), ik(&b, sb));
            let (lo, hi) = match compare_internal_keys(&x, &y) {
                Ordering::Less => (x, y),
                Ordering::Greater => (y, x),
                Ordering::Equal => return Ok(()),
            };
            let mut out = Vec::new();
            separator(&lo, &hi, &mut out);
            prop_assert_ne!(compare_internal_keys(&lo, &out), Ordering::Greater);
            prop_assert_eq!(compare_internal_keys(&out, &hi), Ordering::Less);
        }
    }

    #[test]
    fn parse_and_search() {
        let mut b = BlockBuilder::new(16);
        let keys: Vec<_> = (0..100u32)
            .map(|i| ik(format!("k{i:04}").as_bytes(), 1))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            let mut h = Vec::new();
            BlockHandle {
                offset: i as u64 * 100,
                size: 95,
            }
            .encode_to(&mut h);
            b.add(k, &h);
        }
        let index = Index::parse(b.finish(), Path::new("t"), 0).unwrap();
        assert_eq!(index.len(), 100);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(index.key(i), &k[..]);
            assert_eq!(index.handle(i).offset, i as u64 * 100);
            assert_eq!(index.lower_bound_by(|s| compare_internal_keys(s, k)), i);
        }
        assert_eq!(
            index.lower_bound_by(|s| compare_internal_keys(s, &ik(b"z", 1))),
            100
        );
    }

    #[test]
    fn out_of_order_or_bad_handles_are_corruption() {
        let mut b = BlockBuilder::new(16);
        b.add(&ik(b"b", 1), &[0, 10]);
        b.add(&ik(b"a", 1), &[20, 10]);
        let e = Index::parse(b.finish(), Path::new("t"), 5).unwrap_err();
        assert!(matches!(e, Error::Corruption { offset: 5, .. }), "{e}");
        let mut b = BlockBuilder::new(16);
        b.add(&ik(b"a", 1), &[0x80]);
        assert!(Index::parse(b.finish(), Path::new("t"), 0).is_err());
    }
}
