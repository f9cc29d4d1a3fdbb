//! Which data blocks of one open table have had their checksum verified.
//!
//! Tables are read through a memory map, so a data block needs no copy and
//! no cache to be read: what a block cache would still save is the CRC-32
//! of the block and the parse of its restart array. This bitmap saves the
//! CRC: a block is verified the first time it is read after the table is
//! opened, and later reads of it trust the mapped bytes. (The `moka`
//! W-TinyLFU block cache it replaces spent about half of a random read's
//! instructions in its own bookkeeping to save the same checksum;
//! docs/benchmarks.md has the numbers.)
//!
//! Trust lasts as long as the open table: a file damaged on disk after its
//! block was verified is caught when the table is opened again (every table
//! open starts with an empty bitmap) or by a full check, which opens its own
//! copy. Readers that must verify every byte (compaction inputs, `check`)
//! read blocks with [`crate::Table::read_data_block`], which always checks.
//!
//! Lock-free: one bit per data block in atomic words; `Send + Sync`.

use std::sync::atomic::{AtomicU64, Ordering};

/// One bit per data block of a table: set once the block's checksum was
/// verified. Bits are only ever set, never cleared.
#[derive(Debug)]
pub(crate) struct VerifiedBlocks {
    words: Box<[AtomicU64]>,
    blocks: usize,
}

impl VerifiedBlocks {
    /// An empty set for a table of `blocks` data blocks.
    pub(crate) fn new(blocks: usize) -> VerifiedBlocks {
        VerifiedBlocks {
            words: (0..blocks.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            blocks,
        }
    }

    /// True when block `i` was verified. Out-of-range blocks never are.
    #[inline]
    pub(crate) fn contains(&self, i: usize) -> bool {
        i < self.blocks && self.words[i / 64].load(Ordering::Acquire) & (1 << (i % 64)) != 0
    }

    /// Records that block `i` passed its checksum (ignored out of range).
    #[inline]
    pub(crate) fn insert(&self, i: usize) {
        if i < self.blocks {
            self.words[i / 64].fetch_or(1 << (i % 64), Ordering::Release);
        }
    }

    /// Number of blocks verified so far.
    pub(crate) fn count(&self) -> usize {
        self.words
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    /// Heap bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.words.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_independent_and_sticky() {
        let v = VerifiedBlocks::new(130);
        assert_eq!(v.count(), 0);
        for i in [0, 63, 64, 129] {
            assert!(!v.contains(i));
            v.insert(i);
            assert!(v.contains(i));
        }
        v.insert(63);
        assert_eq!(v.count(), 4);
        assert!(!v.contains(1) && !v.contains(65) && !v.contains(128));
        // Out of range: never contained, insert ignored.
        v.insert(130);
        v.insert(10_000);
        assert!(!v.contains(130) && !v.contains(10_000));
        assert_eq!(v.count(), 4);
        assert_eq!(VerifiedBlocks::new(0).count(), 0);
    }
}
