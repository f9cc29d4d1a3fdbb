//! Range tombstones: "every key in `[start, end)` is deleted as of `seq`",
//! and [`RangeTombstoneSet`], the read-side index over many of them.
//!
//! A set cuts its tombstones into fragments at every start and end key, so
//! fragments never overlap and each one carries the sequence numbers of the
//! tombstones that cover it, newest first. A question about one key is then
//! a binary search and a short scan of one fragment's sequence numbers.
//! Building costs O(n log n + fragments × overlap); sets are immutable, so
//! share them as `Arc<RangeTombstoneSet>` across threads.

use crate::ids::SeqNo;

/// Deletes every user key `k` with `start <= k < end` written before `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RangeTombstone {
    /// First user key deleted.
    pub start: Vec<u8>,
    /// First user key after the range (not deleted).
    pub end: Vec<u8>,
    /// Sequence number of the delete.
    pub seq: SeqNo,
}

impl RangeTombstone {
    /// Whether `key` lies in `[start, end)`.
    #[inline]
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start.as_slice() <= key && key < self.end.as_slice()
    }

    /// The part of the tombstone inside `[lo, hi)` (`hi = None`: no upper
    /// bound), or `None` if nothing is left.
    pub fn clipped(&self, lo: &[u8], hi: Option<&[u8]>) -> Option<RangeTombstone> {
        let start = self.start.as_slice().max(lo);
        let end = match hi {
            Some(hi) => self.end.as_slice().min(hi),
            None => self.end.as_slice(),
        };
        (start < end).then(|| RangeTombstone {
            start: start.to_vec(),
            end: end.to_vec(),
            seq: self.seq,
        })
    }

    /// The largest user key the tombstone may delete, as used for a
    /// table's key range: `end` without its last byte when that byte is 0
    /// (`[s, k ++ [0])` deletes exactly the keys up to `k`), else `end`
    /// itself (one key more than the range holds, which is harmless for a
    /// range that only has to include it).
    pub fn largest_user_key(&self) -> &[u8] {
        match self.end.split_last() {
            Some((0, rest)) if rest >= self.start.as_slice() => rest,
            _ => &self.end,
        }
    }
}

/// The smallest key after `key` in bytewise order: `key ++ [0]`.
pub fn successor(key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + 1);
    v.extend_from_slice(key);
    v.push(0);
    v
}

/// One fragment: `[start, end)` covered by tombstones of `seqs`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fragment {
    start: Vec<u8>,
    end: Vec<u8>,
    /// Descending.
    seqs: Vec<SeqNo>,
}

/// An immutable, fragmented index over range tombstones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeTombstoneSet {
    /// Sorted by start, non-overlapping.
    fragments: Vec<Fragment>,
    /// The tombstones as given, sorted (start, end, seq).
    tombstones: Vec<RangeTombstone>,
}

impl RangeTombstoneSet {
    /// A set over `tombstones`; empty ranges (`start >= end`) are ignored.
    pub fn new(tombstones: impl IntoIterator<Item = RangeTombstone>) -> Self {
        let mut tombstones: Vec<RangeTombstone> =
            tombstones.into_iter().filter(|t| t.start < t.end).collect();
        tombstones.sort();
        tombstones.dedup();
        let mut points: Vec<&[u8]> = tombstones
            .iter()
            .flat_map(|t| [t.start.as_slice(), t.end.as_slice()])
            .collect();
        points.sort_unstable();
        points.dedup();
        let mut fragments = Vec::new();
        let mut active: Vec<&RangeTombstone> = Vec::new();
        let mut next = 0;
        for w in points.windows(2) {
            let (lo, hi) = (w[0], w[1]);
            while next < tombstones.len() && tombstones[next].start.as_slice() <= lo {
                active.push(&tombstones[next]);
                next += 1;
            }
            // Every end is a point, so a tombstone still active covers
            // all of [lo, hi).
            active.retain(|t| t.end.as_slice() > lo);
            if active.is_empty() {
                continue;
            }
            let mut seqs: Vec<SeqNo> = active.iter().map(|t| t.seq).collect();
            seqs.sort_unstable_by(|a, b| b.cmp(a));
            seqs.dedup();
            fragments.push(Fragment {
                start: lo.to_vec(),
                end: hi.to_vec(),
                seqs,
            });
        }
        RangeTombstoneSet {
            fragments,
            tombstones,
        }
    }

    /// True when the set holds no tombstone.
    pub fn is_empty(&self) -> bool {
        self.tombstones.is_empty()
    }

    /// Number of tombstones.
    pub fn len(&self) -> usize {
        self.tombstones.len()
    }

    /// The tombstones, sorted by (start, end, seq).
    pub fn tombstones(&self) -> &[RangeTombstone] {
        &self.tombstones
    }

    /// Sequence numbers of the tombstones covering `key`, newest first.
    fn covering(&self, key: &[u8]) -> &[SeqNo] {
        let i = self
            .fragments
            .partition_point(|f| f.start.as_slice() <= key);
        match i.checked_sub(1).map(|i| &self.fragments[i]) {
            Some(f) if key < f.end.as_slice() => &f.seqs,
            _ => &[],
        }
    }

    /// The newest tombstone covering `key` that `snapshot` sees (sequence
    /// number at or below it).
    pub fn max_covering_seq(&self, key: &[u8], snapshot: SeqNo) -> Option<SeqNo> {
        self.covering(key).iter().copied().find(|&s| s <= snapshot)
    }

    /// The oldest tombstone covering `key` that is newer than `seq`.
    pub fn min_covering_seq_above(&self, key: &[u8], seq: SeqNo) -> Option<SeqNo> {
        self.covering(key).iter().rev().copied().find(|&s| s > seq)
    }

    /// Whether a version of `key` at `seq` is deleted for a reader at
    /// `snapshot`.
    #[inline]
    pub fn deletes(&self, key: &[u8], seq: SeqNo, snapshot: SeqNo) -> bool {
        self.max_covering_seq(key, snapshot)
            .is_some_and(|t| t > seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(start: &str, end: &str, seq: u64) -> RangeTombstone {
        RangeTombstone {
            start: start.as_bytes().to_vec(),
            end: end.as_bytes().to_vec(),
            seq: SeqNo(seq),
        }
    }

    #[test]
    fn half_open_and_snapshot_aware() {
        let set = RangeTombstoneSet::new([t("b", "d", 10)]);
        assert!(!set.deletes(b"a", SeqNo(1), SeqNo::MAX));
        assert!(set.deletes(b"b", SeqNo(1), SeqNo::MAX));
        assert!(set.deletes(b"c\xff", SeqNo(9), SeqNo::MAX));
        assert!(!set.deletes(b"d", SeqNo(1), SeqNo::MAX));
        // Newer than the tombstone, or a snapshot from before it.
        assert!(!set.deletes(b"c", SeqNo(11), SeqNo::MAX));
        assert!(!set.deletes(b"c", SeqNo(1), SeqNo(9)));
    }

    #[test]
    fn overlapping_tombstones_fragment() {
        let set = RangeTombstoneSet::new([t("a", "m", 5), t("f", "z", 9), t("x", "x", 20)]);
        assert_eq!(set.len(), 2, "the empty range is ignored");
        assert_eq!(set.max_covering_seq(b"b", SeqNo::MAX), Some(SeqNo(5)));
        assert_eq!(set.max_covering_seq(b"g", SeqNo::MAX), Some(SeqNo(9)));
        assert_eq!(set.max_covering_seq(b"g", SeqNo(8)), Some(SeqNo(5)));
        assert_eq!(set.min_covering_seq_above(b"g", SeqNo(1)), Some(SeqNo(5)));
        assert_eq!(set.min_covering_seq_above(b"g", SeqNo(5)), Some(SeqNo(9)));
        assert_eq!(set.max_covering_seq(b"n", SeqNo(8)), None);
        assert_eq!(set.max_covering_seq(b"z", SeqNo::MAX), None);
    }

    #[test]
    fn empty_set_deletes_nothing() {
        let set = RangeTombstoneSet::default();
        assert!(set.is_empty());
        assert!(!set.deletes(b"", SeqNo(0), SeqNo::MAX));
    }

    #[test]
    fn clipping_and_largest_key() {
        let a = t("c", "k", 3);
        assert_eq!(a.clipped(b"a", Some(b"e")), Some(t("c", "e", 3)));
        assert_eq!(a.clipped(b"e", None), Some(t("e", "k", 3)));
        assert_eq!(a.clipped(b"k", None), None);
        assert_eq!(a.largest_user_key(), b"k");
        let b = RangeTombstone {
            end: successor(b"f"),
            ..a.clone()
        };
        assert_eq!(b.largest_user_key(), b"f");
    }

    proptest! {
        #[test]
        fn matches_a_linear_scan(
            ranges in proptest::collection::vec((0u8..20, 0u8..20, 1u64..50), 0..12),
            key in 0u8..22, seq in 0u64..50, snapshot in 0u64..60,
        ) {
            let tombstones: Vec<RangeTombstone> = ranges
                .iter()
                .map(|&(a, b, s)| RangeTombstone { start: vec![a], end: vec![b], seq: SeqNo(s) })
                .collect();
            let set = RangeTombstoneSet::new(tombstones.clone());
            let k = [key];
            let expected = tombstones
                .iter()
                .filter(|t| t.contains(&k) && t.seq.0 <= snapshot)
                .map(|t| t.seq)
                .max();
            prop_assert_eq!(set.max_covering_seq(&k, SeqNo(snapshot)), expected);
            let above = tombstones
                .iter()
                .filter(|t| t.contains(&k) && t.seq.0 > seq)
                .map(|t| t.seq)
                .min();
            prop_assert_eq!(set.min_covering_seq_above(&k, SeqNo(seq)), above);
        }
    }
}
