//! [`TableIter`]: the two-level cursor over a table, index entries on the
//! outside and one data block's entries inside (docs/sst-format.md).
//!
//! Moving past either end of a data block loads the neighbouring block
//! (through the block cache when the table has one) and skips empty blocks.
//! The first damage met (bad checksum, bad entry) makes the cursor invalid
//! for good and is returned by `status()`.
//!
//! A cursor belongs to one thread at a time; it holds an `Arc` of its table,
//! so the table (and its mapped file) lives as long as the cursor.

use std::sync::Arc;

use jkv_format::key::compare_internal_keys;
use jkv_format::{Error, InternalIterator, Result};

use crate::block::{Block, BlockIter};
use crate::table::Table;

/// A cursor over all entries of a table, in internal-key order.
#[derive(Debug)]
pub struct TableIter {
    table: Arc<Table>,
    /// Index entry of the block loaded in `data`; `None` when no block is.
    block_index: Option<usize>,
    data: BlockIter,
    /// Trust blocks an earlier read of the table verified (else verify
    /// every block's checksum).
    trust_verified: bool,
    /// For verifying scans: file offset below which the pages were released
    /// (see `RELEASE_STEP_BYTES`).
    released_to: usize,
    err: Option<Error>,
}

/// A verifying scan (compaction) releases the mapped pages it has passed
/// once they add up to this many bytes, so that compacting large tables
/// does not grow the process's resident memory by their size.
const RELEASE_STEP_BYTES: usize = 1 << 20;

impl Table {
    /// A cursor over the table's entries, initially invalid. A block's
    /// checksum is verified unless an earlier read of this table verified
    /// it.
    pub fn iter(self: &Arc<Self>) -> TableIter {
        self.new_iter(true)
    }

    /// Like [`iter`](Self::iter), but verifies every block's checksum as it
    /// loads it: for compaction, which rewrites what it reads and so must
    /// not carry damage that appeared after a block was first verified.
    pub fn iter_verifying(self: &Arc<Self>) -> TableIter {
        self.new_iter(false)
    }

    fn new_iter(self: &Arc<Self>, trust_verified: bool) -> TableIter {
        TableIter {
            table: Arc::clone(self),
            block_index: None,
            data: BlockIter::new(Block::empty(), self.shared_path(), 0),
            trust_verified,
            released_to: 0,
            err: None,
        }
    }
}

impl TableIter {
    /// The table being walked.
    pub fn table(&self) -> &Arc<Table> {
        &self.table
    }

    /// Loads data block `i` (unless it is loaded); false after an error.
    fn load_block(&mut self, i: usize) -> bool {
        if self.block_index == Some(i) {
            return true;
        }
        self.block_index = None;
        let handle = self.table.index().handle(i);
        let block = if self.trust_verified {
            self.table.data_block_owned(i)
        } else {
            let start = handle.offset as usize;
            if start >= self.released_to + RELEASE_STEP_BYTES {
                self.table.release_pages(self.released_to..start);
                self.released_to = start;
            }
            self.table.read_data_block(handle)
        };
        match block {
            Ok(block) => {
                self.data.reset(block, handle.offset);
                self.block_index = Some(i);
                true
            }
            Err(e) => {
                self.err = Some(e);
                false
            }
        }
    }

    /// After the data cursor moved: keeps an error, or, if it fell off its
    /// block, moves to the first entry of the next non-empty block.
    fn skip_forward(&mut self) {
        loop {
            if let Err(e) = self.data.status() {
                self.fail(e);
                return;
            }
            if self.data.valid() {
                return;
            }
            let Some(next) = self.block_index.map(|i| i + 1) else {
                return;
            };
            if next >= self.table.index().len() {
                self.block_index = None;
                return;
            }
            if !self.load_block(next) {
                return;
            }
            self.data.seek_to_first();
        }
    }

    /// Like [`skip_forward`](Self::skip_forward), towards the last entry of
    /// the previous non-empty block.
    fn skip_backward(&mut self) {
        loop {
            if let Err(e) = self.data.status() {
                self.fail(e);
                return;
            }
            if self.data.valid() {
                return;
            }
            let Some(prev) = self.block_index.and_then(|i| i.checked_sub(1)) else {
                self.block_index = None;
                return;
            };
            if !self.load_block(prev) {
                return;
            }
            self.data.seek_to_last();
        }
    }

    fn fail(&mut self, e: Error) {
        self.err = Some(e);
        self.block_index = None;
    }

    /// Positions the data cursor in block `i` with `position`, then settles
    /// forward.
    fn enter_forward(&mut self, i: usize, position: impl FnOnce(&mut BlockIter)) {
        if i >= self.table.index().len() {
            self.block_index = None;
            return;
        }
        if self.load_block(i) {
            position(&mut self.data);
            self.skip_forward();
        }
    }

    fn enter_backward(&mut self, i: usize, position: impl FnOnce(&mut BlockIter)) {
        if i >= self.table.index().len() {
            self.block_index = None;
            return;
        }
        if self.load_block(i) {
            position(&mut self.data);
            self.skip_backward();
        }
    }
}

impl InternalIterator for TableIter {
    fn valid(&self) -> bool {
        self.err.is_none() && self.block_index.is_some() && self.data.valid()
    }

    fn seek_to_first(&mut self) {
        if self.err.is_none() {
            self.enter_forward(0, |d| d.seek_to_first());
        }
    }

    fn seek_to_last(&mut self) {
        if self.err.is_none() {
            let n = self.table.index().len();
            match n.checked_sub(1) {
                Some(last) => self.enter_backward(last, |d| d.seek_to_last()),
                None => self.block_index = None,
            }
        }
    }

    fn seek(&mut self, target: &[u8]) {
        if self.err.is_none() {
            let i = self
                .table
                .index()
                .lower_bound_by(|k| compare_internal_keys(k, target));
            self.enter_forward(i, |d| d.seek(target));
        }
    }

    fn seek_for_prev(&mut self, target: &[u8]) {
        if self.err.is_some() {
            return;
        }
        // Blocks after the first whose separator is >= target hold only
        // larger keys; past the last separator, the last block decides.
        let index = self.table.index();
        let n = index.len();
        let i = index.lower_bound_by(|k| compare_internal_keys(k, target));
        let Some(i) = (if i < n { Some(i) } else { n.checked_sub(1) }) else {
            self.block_index = None;
            return;
        };
        self.enter_backward(i, |d| d.seek_for_prev(target));
    }

    fn next(&mut self) {
        if self.valid() {
            self.data.next();
            self.skip_forward();
        }
    }

    fn prev(&mut self) {
        if self.valid() {
            self.data.prev();
            self.skip_backward();
        }
    }

    fn key(&self) -> &[u8] {
        debug_assert!(self.valid(), "key() requires a valid cursor");
        self.data.key()
    }

    fn value(&self) -> &[u8] {
        debug_assert!(self.valid(), "value() requires a valid cursor");
        self.data.value()
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
    use crate::test_support::{apply_and_compare, arb_entries, arb_op, build_table};
    use crate::TableOptions;
    use jkv_format::iter::VecIter;
    use jkv_format::{FileNumber, StdFs};
    use proptest::prelude::*;

    /// A verifying scan over a table several release steps long (its
    /// mapped pages are released behind it) sees every entry, and the
    /// table stays readable afterwards.
    #[test]
    fn verifying_scan_over_a_large_table_releases_pages_and_reads_everything() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..40_000u32)
            .map(|i| {
                let key = jkv_format::key::InternalKey::new(
                    format!("key{i:08}").as_bytes(),
                    jkv_format::SeqNo(1),
                    jkv_format::ValueKind::Value,
                )
                .into_vec();
                (key, vec![(i % 251) as u8; 100])
            })
            .collect();
        let (path, summary) = build_table(dir.path(), 1, &entries, TableOptions::default());
        assert!(summary.file_size > 3 * RELEASE_STEP_BYTES as u64);
        let table = Table::open(&StdFs, &path, FileNumber(1)).unwrap();
        let mut it = table.iter_verifying();
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            assert_eq!(it.key(), &entries[n].0[..]);
            assert_eq!(it.value(), &entries[n].1[..]);
            n += 1;
            it.next();
        }
        it.status().unwrap();
        assert_eq!(n, entries.len());
        let got = table
            .get(b"key00000007", jkv_format::SeqNo::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(&got.2[..], &entries[7].1[..]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Many tiny blocks, so every move crosses block boundaries often.
        #[test]
        fn matches_vec_iter(entries in arb_entries(), block_size in 16usize..200,
                            restart_interval in 1usize..5,
                            ops in proptest::collection::vec(arb_op(), 1..80)) {
            let dir = tempfile::tempdir().unwrap();
            let options = TableOptions { block_size_bytes: block_size, restart_interval, bloom_bits_per_key: 10, db_id: 0, compression: jkv_format::Compression::None };
            let (path, _) = build_table(dir.path(), 1, &entries, options);
            let table = Table::open(&StdFs, &path, FileNumber(1)).unwrap();
            let mut it = table.iter();
            let mut bypass = table.iter_verifying();
            let mut model = VecIter::new(entries);
            let mut bypass_model = model.clone();
            for op in &ops {
                apply_and_compare(&mut it, &mut model, op)?;
                apply_and_compare(&mut bypass, &mut bypass_model, op)?;
            }
        }
    }
}
