//! The merge: a k-way merging cursor over sorted sources, and the filter
//! that decides which versions a compaction keeps.
//!
//! Memory is bounded by the sources' own cursors (one block each for
//! tables): nothing is loaded whole.

use std::cmp::Ordering;

use jkv_format::key::{compare_internal_keys, parse_internal_key};
use jkv_format::{InternalIterator, RangeTombstone, RangeTombstoneSet, Result, SeqNo, ValueKind};

/// Merges sorted children in one direction (chosen at creation, changed by
/// [`MergingIterator::set_reverse`]). Used by compactions (forward) and by
/// the engine's scans (either way).
pub struct MergingIterator {
    children: Vec<Box<dyn InternalIterator>>,
    current: Option<usize>,
    reverse: bool,
    /// A child stopped on an error: the merge stops too, instead of going
    /// on with the other children (which would show older versions of the
    /// keys the failed child could not read).
    failed: bool,
}

impl MergingIterator {
    /// A merge of `children`; `reverse` walks from the largest key down.
    pub fn new(children: Vec<Box<dyn InternalIterator>>, reverse: bool) -> Self {
        MergingIterator {
            children,
            current: None,
            reverse,
            failed: false,
        }
    }

    /// Picks the child with the smallest key (largest when reverse). Ties
    /// cannot happen between sources of one database: every entry has its
    /// own sequence number.
    fn pick(&mut self) {
        if self.failed {
            self.current = None;
            return;
        }
        let mut best: Option<usize> = None;
        for (i, child) in self.children.iter().enumerate() {
            if !child.valid() {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    let ord = compare_internal_keys(child.key(), self.children[b].key());
                    if self.reverse {
                        ord == Ordering::Greater
                    } else {
                        ord == Ordering::Less
                    }
                }
            };
            if better {
                best = Some(i);
            }
        }
        self.current = best;
    }

    /// Turns the merge around (`reverse`: from the largest key down). The
    /// position is lost: call [`Self::seek`] or [`Self::seek_to_start`]
    /// next.
    pub fn set_reverse(&mut self, reverse: bool) {
        self.reverse = reverse;
        self.current = None;
    }

    /// Positions every child at `target` (at or after it going forward, at
    /// or before it going backward).
    pub fn seek(&mut self, target: &[u8]) {
        for child in &mut self.children {
            if self.reverse {
                child.seek_for_prev(target);
            } else {
                child.seek(target);
            }
        }
        self.note_failures();
        self.pick();
    }

    /// Records whether a child that is not positioned stopped on an error.
    fn note_failures(&mut self) {
        self.failed = self
            .children
            .iter()
            .any(|c| !c.valid() && c.status().is_err());
    }

    /// Positions at the first entry in the merge's direction.
    pub fn seek_to_start(&mut self) {
        for child in &mut self.children {
            if self.reverse {
                child.seek_to_last();
            } else {
                child.seek_to_first();
            }
        }
        self.note_failures();
        self.pick();
    }

    /// True when positioned on an entry.
    pub fn valid(&self) -> bool {
        self.current.is_some()
    }

    /// Moves one entry in the merge's direction.
    pub fn advance(&mut self) {
        if let Some(i) = self.current {
            let child = &mut self.children[i];
            if self.reverse {
                child.prev();
            } else {
                child.next();
            }
            if !child.valid() && child.status().is_err() {
                self.failed = true;
            }
            self.pick();
        }
    }

    /// The current internal key. Requires `valid()`.
    pub fn key(&self) -> &[u8] {
        self.children[self.current.expect("key() requires a valid merge")].key()
    }

    /// The current value. Requires `valid()`.
    pub fn value(&self) -> &[u8] {
        self.children[self.current.expect("value() requires a valid merge")].value()
    }

    /// The first error any child met.
    pub fn status(&self) -> Result<()> {
        for child in &self.children {
            child.status()?;
        }
        Ok(())
    }
}

/// Decides, entry by entry in internal-key order, which versions survive a
/// compaction.
///
/// Snapshots cut each key's history into stripes: a version is visible to
/// the snapshots at or above its sequence number. Within one stripe only
/// the newest version can ever be read, so older ones in the same stripe
/// are dropped. Readers without a snapshot read the newest version (the top
/// stripe). A tombstone that every snapshot sees (lowest stripe) hides all
/// older versions from everyone; when no deeper level can hold the key it
/// has nothing left to hide and is dropped too.
#[derive(Clone, Debug)]
pub struct CompactionFilter {
    /// Live snapshots, ascending.
    snapshots: Vec<SeqNo>,
    drop_tombstones: bool,
    current_key: Vec<u8>,
    has_current: bool,
    current_stripe: usize,
    /// Entries dropped so far.
    pub dropped: u64,
}

/// The range tombstones of a compaction's inputs, and what they let it
/// drop: entries they delete for every snapshot that could read them, and
/// the tombstones themselves at the bottom.
#[derive(Clone, Debug, Default)]
pub struct RangeDelFilter {
    set: RangeTombstoneSet,
    /// Entries dropped because a tombstone deletes them.
    pub dropped: u64,
}

impl RangeDelFilter {
    /// A filter over `tombstones`.
    pub fn new(tombstones: impl IntoIterator<Item = RangeTombstone>) -> Self {
        RangeDelFilter {
            set: RangeTombstoneSet::new(tombstones),
            dropped: 0,
        }
    }

    /// True when there are no tombstones.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Number of tombstones.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// Whether a tombstone deletes the entry (`user_key`, `seq`) for every
    /// snapshot that sees the entry: one newer than it lies in its stripe.
    pub fn deletes(&mut self, user_key: &[u8], seq: SeqNo, filter: &CompactionFilter) -> bool {
        let deleted = self
            .set
            .min_covering_seq_above(user_key, seq)
            .is_some_and(|t| filter.stripe(t) == filter.stripe(seq));
        self.dropped += u64::from(deleted);
        deleted
    }

    /// Whether a tombstone deletes every entry of a table whose user keys
    /// lie in `[smallest, largest]` and sequence numbers in `[min_seq,
    /// max_seq]`, for every snapshot: then the table need not be read.
    pub fn deletes_table(
        &self,
        smallest: &[u8],
        largest: &[u8],
        min_seq: SeqNo,
        max_seq: SeqNo,
        filter: &CompactionFilter,
    ) -> bool {
        self.set.tombstones().iter().any(|t| {
            t.start.as_slice() <= smallest
                && largest < t.end.as_slice()
                && t.seq > max_seq
                && filter.stripe(t.seq) == filter.stripe(min_seq)
        })
    }

    /// The tombstones the outputs keep: all, or, when `drop_tombstones`
    /// (no deeper level holds the range), those some snapshot still needs.
    pub fn survivors(
        &self,
        drop_tombstones: bool,
        filter: &CompactionFilter,
    ) -> Vec<RangeTombstone> {
        self.set
            .tombstones()
            .iter()
            .filter(|t| !(drop_tombstones && filter.stripe(t.seq) == 0))
            .cloned()
            .collect()
    }
}

impl CompactionFilter {
    /// A filter for live `snapshots` (any order).
    pub fn new(mut snapshots: Vec<SeqNo>, drop_tombstones: bool) -> Self {
        snapshots.sort();
        snapshots.dedup();
        CompactionFilter {
            snapshots,
            drop_tombstones,
            current_key: Vec::new(),
            has_current: false,
            current_stripe: 0,
            dropped: 0,
        }
    }

    /// Index of the lowest snapshot that sees `seq` (snapshots.len() for
    /// versions newer than every snapshot). Versions in one stripe are seen
    /// by exactly the same snapshots.
    pub fn stripe(&self, seq: SeqNo) -> usize {
        self.snapshots.partition_point(|&s| s < seq)
    }

    /// Whether the entry with internal key `ikey` is kept. Must be called on
    /// every entry, in order. Malformed keys are kept (the table writer will
    /// refuse them with a clear error).
    pub fn keep(&mut self, ikey: &[u8]) -> bool {
        let Some(parsed) = parse_internal_key(ikey) else {
            return true;
        };
        let stripe = self.stripe(parsed.seq);
        let same_key = self.has_current && self.current_key.as_slice() == parsed.user_key;
        if same_key && stripe == self.current_stripe {
            self.dropped += 1;
            return false;
        }
        if !same_key {
            self.current_key.clear();
            self.current_key.extend_from_slice(parsed.user_key);
            self.has_current = true;
        }
        self.current_stripe = stripe;
        if parsed.kind == ValueKind::Deletion && self.drop_tombstones && stripe == 0 {
            self.dropped += 1;
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv_format::iter::VecIter;
    use jkv_format::InternalKey;

    fn ik(k: &str, s: u64, kind: ValueKind) -> Vec<u8> {
        InternalKey::new(k.as_bytes(), SeqNo(s), kind).into_vec()
    }

    fn survivors(
        entries: &[(&str, u64, ValueKind)],
        snapshots: &[u64],
        drop: bool,
    ) -> Vec<(String, u64)> {
        let mut f = CompactionFilter::new(snapshots.iter().map(|&s| SeqNo(s)).collect(), drop);
        let mut keys: Vec<Vec<u8>> = entries
            .iter()
            .map(|(k, s, kind)| ik(k, *s, *kind))
            .collect();
        keys.sort_by(|a, b| compare_internal_keys(a, b));
        keys.into_iter()
            .filter(|k| f.keep(k))
            .map(|k| {
                let p = parse_internal_key(&k).unwrap();
                (String::from_utf8(p.user_key.to_vec()).unwrap(), p.seq.0)
            })
            .collect()
    }

    use ValueKind::{Deletion as D, Value as V};

    #[test]
    fn without_snapshots_only_the_newest_version_survives() {
        let got = survivors(&[("a", 1, V), ("a", 5, V), ("b", 2, V)], &[], true);
        assert_eq!(got, vec![("a".into(), 5), ("b".into(), 2)]);
    }

    #[test]
    fn a_snapshot_keeps_the_version_it_sees() {
        let got = survivors(&[("a", 1, V), ("a", 3, V), ("a", 5, V)], &[4], true);
        assert_eq!(got, vec![("a".into(), 5), ("a".into(), 3)]);
    }

    #[test]
    fn tombstones_drop_only_at_the_bottom_and_below_every_snapshot() {
        let entries = [("a", 1, V), ("a", 5, D)];
        assert_eq!(survivors(&entries, &[], true), vec![]);
        assert_eq!(survivors(&entries, &[], false), vec![("a".into(), 5)]);
        // A snapshot at 3 still reads a@1: both stay.
        assert_eq!(
            survivors(&entries, &[3], true),
            vec![("a".into(), 5), ("a".into(), 1)]
        );
    }

    fn rt(start: &str, end: &str, seq: u64) -> RangeTombstone {
        RangeTombstone {
            start: start.as_bytes().to_vec(),
            end: end.as_bytes().to_vec(),
            seq: SeqNo(seq),
        }
    }

    #[test]
    fn range_tombstones_drop_what_every_snapshot_sees_deleted() {
        let no_snapshots = CompactionFilter::new(vec![], true);
        let mut f = RangeDelFilter::new([rt("b", "m", 10)]);
        assert!(f.deletes(b"c", SeqNo(5), &no_snapshots));
        assert!(!f.deletes(b"c", SeqNo(11), &no_snapshots), "newer than it");
        assert!(!f.deletes(b"m", SeqNo(5), &no_snapshots), "end excluded");
        // A snapshot at 7 reads c@5: kept, and so is the tombstone.
        let snapshot = CompactionFilter::new(vec![SeqNo(7)], true);
        assert!(!f.deletes(b"c", SeqNo(5), &snapshot));
        assert!(f.deletes(b"c", SeqNo(8), &snapshot));
        assert_eq!(f.dropped, 2);
        assert_eq!(f.survivors(true, &snapshot).len(), 1);
        assert!(f.survivors(true, &no_snapshots).is_empty());
        assert_eq!(f.survivors(false, &no_snapshots).len(), 1);
        // Whole tables: inside the range and older, with no snapshot between.
        assert!(f.deletes_table(b"b", b"l", SeqNo(1), SeqNo(9), &no_snapshots));
        assert!(!f.deletes_table(b"b", b"m", SeqNo(1), SeqNo(9), &no_snapshots));
        assert!(!f.deletes_table(b"b", b"l", SeqNo(1), SeqNo(10), &no_snapshots));
        assert!(!f.deletes_table(b"b", b"l", SeqNo(1), SeqNo(9), &snapshot));
    }

    #[test]
    fn merge_orders_sources_and_walks_both_ways() {
        let a = VecIter::new(vec![
            (ik("a", 1, V), b"1".to_vec()),
            (ik("c", 3, V), b"3".to_vec()),
        ]);
        let b = VecIter::new(vec![
            (ik("b", 2, V), b"2".to_vec()),
            (ik("c", 4, V), b"4".to_vec()),
        ]);
        let mut m = MergingIterator::new(vec![Box::new(a.clone()), Box::new(b.clone())], false);
        m.seek_to_start();
        let mut seen = Vec::new();
        while m.valid() {
            seen.push(m.value().to_vec());
            m.advance();
        }
        assert_eq!(
            seen,
            vec![b"1".to_vec(), b"2".to_vec(), b"4".to_vec(), b"3".to_vec()]
        );
        let mut r = MergingIterator::new(vec![Box::new(a), Box::new(b)], true);
        r.seek_to_start();
        let mut back = Vec::new();
        while r.valid() {
            back.push(r.value().to_vec());
            r.advance();
        }
        seen.reverse();
        assert_eq!(back, seen);
    }
}
