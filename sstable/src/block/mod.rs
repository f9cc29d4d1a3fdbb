//! Blocks: the unit a table reads, checksums and caches
//! (docs/sst-format.md, "Block").
//!
//! A block's contents are prefix-compressed entries followed by the restart
//! array and its length. This module owns the parsed form ([`Block`], an owned
//! handle on shared bytes, and [`BlockView`], a borrowed one) and the decoding
//! of one entry; [`builder`] writes blocks and [`iter`] walks them. Checksums
//! and the 5-byte trailer are the table's business (`handle.rs`).
//!
//! Decoding never trusts a length: every offset is checked against the block
//! before it is used, and damage is reported as a [`BlockCorrupt`] holding the
//! byte offset inside the block; the caller adds the file and block offset.
//!
//! Blocks are immutable and `Send + Sync`; cloning a [`Block`] shares bytes.

pub mod builder;
pub mod iter;

use std::path::Path;

use bytes::Bytes;
use jkv_format::coding::{get_u32_le, get_varint32};
use jkv_format::Error;

pub use builder::BlockBuilder;
pub use iter::BlockIter;

/// Bytes of one restart offset and of the restart count (u32 LE each).
pub(crate) const RESTART_LEN: usize = 4;

/// Damage found inside a block: where (byte offset inside the block's
/// contents) and what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockCorrupt {
    /// Byte offset inside the block contents.
    pub at: usize,
    /// What was wrong.
    pub what: &'static str,
}

impl BlockCorrupt {
    pub(crate) fn new(at: usize, what: &'static str) -> Self {
        BlockCorrupt { at, what }
    }

    /// The [`Error::Corruption`] for this damage in the block that starts at
    /// `block_offset` of `file`: the error's offset is the block's, the entry
    /// offset goes into the message.
    pub fn into_error(self, file: &Path, block_offset: u64) -> Error {
        Error::corruption(
            file,
            block_offset,
            format!("{} (block byte {})", self.what, self.at),
        )
    }
}

/// A parsed block: shared contents (usually a zero-copy slice of a mapped
/// table) with its restart array located and bounds-checked.
#[derive(Clone, Debug, Default)]
pub struct Block {
    data: Bytes,
    restarts_at: u32,
    num_restarts: u32,
}

impl Block {
    /// Parses block contents (without the trailer). Fails when the restart
    /// array does not fit in the block.
    pub fn new(data: Bytes) -> Result<Block, BlockCorrupt> {
        let view = BlockView::parse(&data)?;
        // Blocks are bounded well below 4 GiB (builder limits), so a parsed
        // view of a longer buffer cannot happen with our writer; refuse it
        // rather than truncate offsets.
        let restarts_at = u32::try_from(view.restarts_at)
            .map_err(|_| BlockCorrupt::new(0, "block longer than 4 GiB"))?;
        let num_restarts = u32::try_from(view.num_restarts)
            .map_err(|_| BlockCorrupt::new(0, "too many restart points"))?;
        Ok(Block {
            data,
            restarts_at,
            num_restarts,
        })
    }

    /// A block with no entries.
    pub fn empty() -> Block {
        Block::default()
    }

    /// The borrowed view used for decoding.
    #[inline]
    pub fn view(&self) -> BlockView<'_> {
        BlockView {
            data: &self.data,
            restarts_at: self.restarts_at as usize,
            num_restarts: self.num_restarts as usize,
        }
    }

    /// The block's contents (entries and restart array, no trailer).
    #[inline]
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Size of the contents in bytes.
    #[inline]
    pub fn size_bytes(&self) -> usize {
        self.data.len()
    }
}

/// One decoded entry header: absolute offsets inside the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Key bytes shared with the previous key.
    pub shared: usize,
    /// Where the key delta starts.
    pub delta_at: usize,
    /// Length of the key delta.
    pub non_shared: usize,
    /// Where the value starts (right after the delta).
    pub value_at: usize,
    /// Length of the value.
    pub value_len: usize,
    /// Offset just past the entry.
    pub end: usize,
}

/// A borrowed, parsed block: contents plus the restart array's position.
#[derive(Clone, Copy, Debug)]
pub struct BlockView<'a> {
    data: &'a [u8],
    restarts_at: usize,
    num_restarts: usize,
}

impl<'a> BlockView<'a> {
    /// Locates the restart array of `data`.
    pub fn parse(data: &'a [u8]) -> Result<BlockView<'a>, BlockCorrupt> {
        let len = data.len();
        let count_at = len
            .checked_sub(RESTART_LEN)
            .ok_or(BlockCorrupt::new(0, "block shorter than its restart count"))?;
        let num_restarts = get_u32_le(data, count_at).ok_or(BlockCorrupt::new(
            count_at,
            "block shorter than its restart count",
        ))? as usize;
        if num_restarts > count_at / RESTART_LEN {
            return Err(BlockCorrupt::new(
                count_at,
                "restart count larger than the block",
            ));
        }
        Ok(BlockView {
            data,
            restarts_at: count_at - num_restarts * RESTART_LEN,
            num_restarts,
        })
    }

    /// The whole block contents.
    #[inline]
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Where the entries end and the restart array begins.
    #[inline]
    pub fn restarts_at(&self) -> usize {
        self.restarts_at
    }

    /// Number of restart points.
    #[inline]
    pub fn num_restarts(&self) -> usize {
        self.num_restarts
    }

    /// Offset of the entry at restart point `i`; must lie inside the entries.
    #[inline]
    pub(crate) fn restart_point(&self, i: usize) -> Result<usize, BlockCorrupt> {
        let at = self.restarts_at + i * RESTART_LEN;
        let p = get_u32_le(self.data, at)
            .ok_or(BlockCorrupt::new(at, "restart index out of range"))? as usize;
        if p >= self.restarts_at && !(p == 0 && self.restarts_at == 0) {
            return Err(BlockCorrupt::new(at, "restart point past the entries"));
        }
        Ok(p)
    }

    /// Decodes the entry header at `at` and checks that the entry lies
    /// inside the entries area.
    #[inline]
    pub(crate) fn entry(&self, at: usize) -> Result<Entry, BlockCorrupt> {
        let entries = self
            .data
            .get(..self.restarts_at)
            .ok_or(BlockCorrupt::new(at, "entry past the entries area"))?;
        let rest = entries
            .get(at..)
            .ok_or(BlockCorrupt::new(at, "entry past the entries area"))?;
        // Fast path: all three lengths below 128, one byte each.
        let (shared, non_shared, value_len, header_len) = match rest {
            [a, b, c, ..] if (a | b | c) < 0x80 => (*a as usize, *b as usize, *c as usize, 3),
            _ => {
                let bad = BlockCorrupt::new(at, "bad entry header varint");
                let (shared, n1) = get_varint32(rest).ok_or(bad)?;
                let (non_shared, n2) = get_varint32(rest.get(n1..).ok_or(bad)?).ok_or(bad)?;
                let (value_len, n3) = get_varint32(rest.get(n1 + n2..).ok_or(bad)?).ok_or(bad)?;
                (
                    shared as usize,
                    non_shared as usize,
                    value_len as usize,
                    n1 + n2 + n3,
                )
            }
        };
        let delta_at = at + header_len;
        let value_at = delta_at
            .checked_add(non_shared)
            .ok_or(BlockCorrupt::new(at, "entry length overflows"))?;
        let end = value_at
            .checked_add(value_len)
            .ok_or(BlockCorrupt::new(at, "entry length overflows"))?;
        if end > self.restarts_at {
            return Err(BlockCorrupt::new(at, "entry runs past the entries area"));
        }
        Ok(Entry {
            shared,
            delta_at,
            non_shared,
            value_at,
            value_len,
            end,
        })
    }

    /// The full key stored at restart point `i` (restart entries share
    /// nothing with their predecessor, so the key is a slice of the block).
    #[inline]
    pub(crate) fn restart_key(&self, i: usize) -> Result<&'a [u8], BlockCorrupt> {
        let at = self.restart_point(i)?;
        let e = self.entry(at)?;
        if e.shared != 0 {
            return Err(BlockCorrupt::new(at, "restart entry shares key bytes"));
        }
        self.data
            .get(e.delta_at..e.value_at)
            .ok_or(BlockCorrupt::new(at, "entry runs past the entries area"))
    }

    /// The bytes `range` of the block, empty if out of range (ranges come
    /// from checked entries, so that never happens).
    #[inline]
    pub(crate) fn slice(&self, from: usize, len: usize) -> &'a [u8] {
        from.checked_add(len)
            .and_then(|end| self.data.get(from..end))
            .unwrap_or_default()
    }
}
