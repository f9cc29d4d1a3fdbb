//! Walks one block: [`EntryCursor`] is the decoding state machine over a
//! borrowed [`BlockView`]; [`BlockIter`] owns a [`Block`] and implements
//! [`InternalIterator`] on top of it.
//!
//! Seek binary-searches the restart points (whose keys are stored whole),
//! then scans forward; `prev` steps back to the restart point before the
//! current entry and scans forward to it. The cursor keeps only offsets and
//! the current key, so the table's point lookup can run it over a borrowed
//! block with a reused key buffer and allocate nothing.
//!
//! A cursor is used by one thread at a time; it shares the block's bytes.

use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use jkv_format::key::compare_internal_keys;
use jkv_format::{Error, InternalIterator, Result};

use super::{Block, BlockCorrupt, BlockView};

/// Position inside a block: the current entry's offsets and its key.
#[derive(Debug, Default)]
pub(crate) struct EntryCursor {
    /// Offset of the current entry.
    current: usize,
    /// Offset just past the current entry (where the next one starts).
    next: usize,
    /// Last restart point at or before `current`.
    restart_index: usize,
    /// The current key, rebuilt from the shared prefix and the delta.
    key: Vec<u8>,
    value_at: usize,
    value_len: usize,
    valid: bool,
}

impl EntryCursor {
    /// An invalid cursor that reuses `key` as its key buffer.
    pub(crate) fn with_key_buf(mut key: Vec<u8>) -> Self {
        key.clear();
        EntryCursor {
            key,
            ..EntryCursor::default()
        }
    }

    /// The key buffer, for reuse.
    pub(crate) fn into_key_buf(self) -> Vec<u8> {
        self.key
    }

    #[inline]
    pub(crate) fn valid(&self) -> bool {
        self.valid
    }

    #[inline]
    pub(crate) fn invalidate(&mut self) {
        self.valid = false;
    }

    #[inline]
    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    /// (offset, length) of the current value inside the block.
    #[inline]
    pub(crate) fn value_range(&self) -> (usize, usize) {
        (self.value_at, self.value_len)
    }

    /// Offset of the current entry inside the block.
    #[inline]
    pub(crate) fn entry_offset(&self) -> usize {
        self.current
    }

    fn seek_to_restart(&mut self, b: BlockView<'_>, i: usize) -> Result<(), BlockCorrupt> {
        self.valid = false;
        self.key.clear();
        self.restart_index = i;
        self.next = b.restart_point(i)?;
        Ok(())
    }

    /// Decodes the entry at `self.next`; `Ok(false)` (and invalid) at the end
    /// of the entries.
    fn parse_next(&mut self, b: BlockView<'_>) -> Result<bool, BlockCorrupt> {
        let at = self.next;
        if at >= b.restarts_at() {
            self.valid = false;
            return Ok(false);
        }
        self.valid = false;
        let e = b.entry(at)?;
        if e.shared > self.key.len() {
            return Err(BlockCorrupt::new(
                at,
                "entry shares more key bytes than the previous key has",
            ));
        }
        self.key.truncate(e.shared);
        self.key
            .extend_from_slice(b.slice(e.delta_at, e.non_shared));
        self.current = at;
        self.next = e.end;
        self.value_at = e.value_at;
        self.value_len = e.value_len;
        while self.restart_index + 1 < b.num_restarts()
            && b.restart_point(self.restart_index + 1)? <= at
        {
            self.restart_index += 1;
        }
        self.valid = true;
        Ok(true)
    }

    pub(crate) fn seek_to_first(&mut self, b: BlockView<'_>) -> Result<(), BlockCorrupt> {
        self.valid = false;
        if b.num_restarts() == 0 {
            return Ok(());
        }
        self.seek_to_restart(b, 0)?;
        self.parse_next(b)?;
        Ok(())
    }

    pub(crate) fn seek_to_last(&mut self, b: BlockView<'_>) -> Result<(), BlockCorrupt> {
        self.valid = false;
        if b.num_restarts() == 0 {
            return Ok(());
        }
        self.seek_to_restart(b, b.num_restarts() - 1)?;
        if !self.parse_next(b)? {
            return Ok(());
        }
        while self.next < b.restarts_at() {
            self.parse_next(b)?;
        }
        Ok(())
    }

    /// Positions on the first entry whose key `k` has `cmp(k) != Less`
    /// (`cmp` compares an entry key with the target), or invalid.
    pub(crate) fn seek_by(
        &mut self,
        b: BlockView<'_>,
        mut cmp: impl FnMut(&[u8]) -> Ordering,
    ) -> Result<(), BlockCorrupt> {
        self.valid = false;
        if b.num_restarts() == 0 || b.restarts_at() == 0 {
            return Ok(());
        }
        // Last restart point whose key is below the target: the answer is at
        // or after it, and before the next restart point's key.
        let (mut lo, mut hi) = (0, b.num_restarts() - 1);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if cmp(b.restart_key(mid)?) == Ordering::Less {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        self.seek_to_restart(b, lo)?;
        while self.parse_next(b)? {
            if cmp(&self.key) != Ordering::Less {
                return Ok(());
            }
        }
        Ok(())
    }

    pub(crate) fn next(&mut self, b: BlockView<'_>) -> Result<(), BlockCorrupt> {
        if self.valid {
            self.parse_next(b)?;
        }
        Ok(())
    }

    pub(crate) fn prev(&mut self, b: BlockView<'_>) -> Result<(), BlockCorrupt> {
        if !self.valid {
            return Ok(());
        }
        let original = self.current;
        let mut i = self.restart_index;
        while b.restart_point(i)? >= original {
            if i == 0 {
                self.valid = false;
                return Ok(());
            }
            i -= 1;
        }
        self.seek_to_restart(b, i)?;
        loop {
            if !self.parse_next(b)? || self.next > original {
                return Err(BlockCorrupt::new(
                    original,
                    "entries from the restart point do not lead to the current entry",
                ));
            }
            if self.next == original {
                return Ok(());
            }
        }
    }
}

/// A cursor over one block's entries, in the order they were written (the
/// table writes internal keys in [`compare_internal_keys`] order; seeks
/// assume it). Damage makes it invalid and is reported by `status()` as
/// [`Error::Corruption`] naming the file and the block's offset.
#[derive(Debug)]
pub struct BlockIter {
    block: Block,
    cursor: EntryCursor,
    path: Arc<Path>,
    block_offset: u64,
    err: Option<Error>,
}

impl BlockIter {
    /// A cursor (initially invalid) over `block`, which starts at byte
    /// `block_offset` of `path` (both used only in error reports).
    pub fn new(block: Block, path: Arc<Path>, block_offset: u64) -> Self {
        BlockIter {
            block,
            cursor: EntryCursor::default(),
            path,
            block_offset,
            err: None,
        }
    }

    /// Switches to another block of the same file, keeping the key buffer.
    pub(crate) fn reset(&mut self, block: Block, block_offset: u64) {
        self.block = block;
        self.block_offset = block_offset;
        self.cursor.invalidate();
        self.err = None;
    }

    /// The block being walked.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// Offset of the current entry inside the block. Requires `valid()`.
    pub fn entry_offset(&self) -> usize {
        self.cursor.entry_offset()
    }

    fn settle(&mut self, r: Result<(), BlockCorrupt>) {
        if let Err(c) = r {
            self.cursor.invalidate();
            self.err = Some(c.into_error(&self.path, self.block_offset));
        }
    }
}

impl InternalIterator for BlockIter {
    fn valid(&self) -> bool {
        self.err.is_none() && self.cursor.valid()
    }

    fn seek_to_first(&mut self) {
        if self.err.is_none() {
            let r = self.cursor.seek_to_first(self.block.view());
            self.settle(r);
        }
    }

    fn seek_to_last(&mut self) {
        if self.err.is_none() {
            let r = self.cursor.seek_to_last(self.block.view());
            self.settle(r);
        }
    }

    fn seek(&mut self, target: &[u8]) {
        if self.err.is_none() {
            let r = self
                .cursor
                .seek_by(self.block.view(), |k| compare_internal_keys(k, target));
            self.settle(r);
        }
    }

    fn seek_for_prev(&mut self, target: &[u8]) {
        self.seek(target);
        if self.err.is_some() {
            return;
        }
        if !self.cursor.valid() {
            self.seek_to_last();
        } else if compare_internal_keys(self.cursor.key(), target) == Ordering::Greater {
            self.prev();
        }
    }

    fn next(&mut self) {
        if self.err.is_none() {
            let r = self.cursor.next(self.block.view());
            self.settle(r);
        }
    }

    fn prev(&mut self) {
        if self.err.is_none() {
            let r = self.cursor.prev(self.block.view());
            self.settle(r);
        }
    }

    fn key(&self) -> &[u8] {
        self.cursor.key()
    }

    fn value(&self) -> &[u8] {
        let (at, len) = self.cursor.value_range();
        self.block.view().slice(at, len)
    }

    fn status(&self) -> Result<()> {
        match &self.err {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockBuilder;
    use crate::test_support::{apply_and_compare, arb_entries, arb_op, ik, Op};
    use bytes::Bytes;
    use jkv_format::iter::VecIter;
    use proptest::prelude::*;

    fn build(entries: &[(Vec<u8>, Vec<u8>)], interval: usize) -> Block {
        let mut b = BlockBuilder::new(interval);
        for (k, v) in entries {
            b.add(k, v);
        }
        Block::new(Bytes::copy_from_slice(b.finish())).expect("builder output parses")
    }

    fn iter_of(block: Block) -> BlockIter {
        BlockIter::new(block, Arc::from(Path::new("test.sst")), 0)
    }

    fn collect_forward(it: &mut BlockIter) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        it.seek_to_first();
        while it.valid() {
            out.push((it.key().to_vec(), it.value().to_vec()));
            it.next();
        }
        it.status().unwrap();
        out
    }

    fn collect_backward(it: &mut BlockIter) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        it.seek_to_last();
        while it.valid() {
            out.push((it.key().to_vec(), it.value().to_vec()));
            it.prev();
        }
        it.status().unwrap();
        out.reverse();
        out
    }

    #[test]
    fn empty_block() {
        let block = build(&[], 16);
        assert_eq!(block.size_bytes(), 8, "one restart point and the count");
        let mut it = iter_of(block);
        it.seek_to_first();
        assert!(!it.valid());
        it.seek_to_last();
        assert!(!it.valid());
        it.seek(&ik(b"a", 1));
        assert!(!it.valid());
        it.seek_for_prev(&ik(b"a", 1));
        assert!(!it.valid());
        it.status().unwrap();
        // A block of just a zero restart count is empty too.
        let mut it = iter_of(Block::new(Bytes::from_static(&[0, 0, 0, 0])).unwrap());
        it.seek_to_last();
        assert!(!it.valid());
        it.status().unwrap();
    }

    #[test]
    fn one_entry() {
        let e = vec![(ik(b"k", 3), b"v".to_vec())];
        let mut it = iter_of(build(&e, 16));
        assert_eq!(collect_forward(&mut it), e);
        assert_eq!(collect_backward(&mut it), e);
        it.seek(&ik(b"k", 9));
        assert!(it.valid());
        it.seek(&ik(b"k", 2));
        assert!(!it.valid());
        it.seek_for_prev(&ik(b"k", 2));
        assert_eq!(it.key(), &ik(b"k", 3)[..]);
        it.seek_for_prev(&ik(b"a", 2));
        assert!(!it.valid());
    }

    #[test]
    fn many_entries_with_restarts_both_directions() {
        for interval in [1, 2, 3, 16, 1000] {
            let e: Vec<_> = (0..500u32)
                .map(|i| {
                    (
                        ik(format!("key{i:06}").as_bytes(), 7),
                        vec![b'v'; (i % 300) as usize],
                    )
                })
                .collect();
            let mut it = iter_of(build(&e, interval));
            assert_eq!(collect_forward(&mut it), e, "interval {interval}");
            assert_eq!(collect_backward(&mut it), e, "interval {interval}");
            for (i, (k, _)) in e.iter().enumerate() {
                it.seek(k);
                assert_eq!(it.key(), &k[..]);
                it.seek_for_prev(k);
                assert_eq!(it.key(), &k[..]);
                it.prev();
                if i == 0 {
                    assert!(!it.valid());
                } else {
                    assert_eq!(it.key(), &e[i - 1].0[..]);
                }
            }
        }
    }

    #[test]
    fn long_keys_and_values() {
        let long = vec![b'x'; 70_000];
        let mut k2 = long.clone();
        k2.push(b'y');
        let e = vec![
            (ik(&long, 1), vec![1u8; 200_000]),
            (ik(&k2, 1), Vec::new()),
            (ik(b"y", 1), vec![2u8; 130]),
        ];
        let mut it = iter_of(build(&e, 2));
        assert_eq!(collect_forward(&mut it), e);
        assert_eq!(collect_backward(&mut it), e);
    }

    #[test]
    fn damaged_blocks_report_corruption_with_offset() {
        let e: Vec<_> = (0..40u32)
            .map(|i| (ik(format!("k{i:03}").as_bytes(), 1), b"value".to_vec()))
            .collect();
        let mut b = BlockBuilder::new(4);
        for (k, v) in &e {
            b.add(k, v);
        }
        let good = b.finish().to_vec();
        // A restart count larger than the block.
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Block::new(Bytes::from(bad)).is_err());
        // A shared length in the first entry.
        let mut bad = good.clone();
        bad[0] = 5;
        let mut it = BlockIter::new(
            Block::new(Bytes::from(bad)).unwrap(),
            Arc::from(Path::new("x/000007.sst")),
            4096,
        );
        it.seek_to_first();
        assert!(!it.valid());
        match it.status() {
            Err(Error::Corruption { file, offset, .. }) => {
                assert_eq!(file, Path::new("x/000007.sst"));
                assert_eq!(offset, 4096);
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // Once failed, it stays invalid.
        it.seek_to_last();
        assert!(!it.valid());
        assert!(it.status().is_err());
    }

    proptest! {
        #[test]
        fn matches_vec_iter(entries in arb_entries(), interval in 1usize..20,
                            ops in proptest::collection::vec(arb_op(), 1..60)) {
            let mut it = iter_of(build(&entries, interval));
            let mut model = VecIter::new(entries);
            for op in &ops {
                apply_and_compare(&mut it, &mut model, op)?;
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200),
                                       ops in proptest::collection::vec(arb_op(), 1..30)) {
            if let Ok(block) = Block::new(Bytes::from(data)) {
                let mut it = iter_of(block);
                for op in &ops {
                    match op {
                        Op::First => it.seek_to_first(),
                        Op::Last => it.seek_to_last(),
                        Op::Seek(k, s) => it.seek(&ik(k, *s)),
                        Op::SeekForPrev(k, s) => it.seek_for_prev(&ik(k, *s)),
                        Op::Next => if it.valid() { it.next() },
                        Op::Prev => if it.valid() { it.prev() },
                    }
                    if it.valid() {
                        let _ = (it.key().len(), it.value().len());
                    }
                }
            }
        }

        #[test]
        fn bit_flips_in_built_blocks_never_panic(entries in arb_entries(), interval in 1usize..5,
                                                  flip in any::<usize>(), bit in 0u8..8) {
            let mut b = BlockBuilder::new(interval);
            for (k, v) in &entries {
                b.add(k, v);
            }
            let mut data = b.finish().to_vec();
            let at = flip % data.len();
            data[at] ^= 1 << bit;
            if let Ok(block) = Block::new(Bytes::from(data)) {
                let mut it = iter_of(block);
                let mut steps = 0;
                it.seek_to_first();
                while it.valid() && steps < 1000 { it.next(); steps += 1; }
                it.seek_to_last();
                while it.valid() && steps < 2000 { it.prev(); steps += 1; }
            }
        }
    }
}
