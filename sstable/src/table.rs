//! An open table: the mapped file with its footer, index, filter and
//! properties checked and parsed, answering point lookups
//! (docs/sst-format.md).
//!
//! `open` verifies every metadata block's checksum and keeps the parsed
//! index and filter in memory; data blocks are read on demand from the map,
//! through the shared [`BlockCache`] when there is one (a hit skips the
//! checksum). A point lookup asks the filter, binary-searches the in-memory
//! index and seeks in one data block, allocating nothing but the returned
//! value's handle on the mapped bytes.
//!
//! Immutable after open; share it as `Arc<Table>` between any number of
//! threads. Iteration is in `table_iter.rs`, checking in `verify.rs`,
//! printing in `dump.rs`.

use std::cell::Cell;
use std::cmp::Ordering;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use jkv_format::key::{pack_trailer, parse_internal_key, trailer, user_key};
use jkv_format::{Error, FileNumber, FileSystem, Result, SeqNo, ValueKind};

use crate::block::iter::EntryCursor;
use crate::block::{Block, BlockView};
use crate::cache::BlockCache;
use crate::filter::BloomFilter;
use crate::footer::{Footer, FOOTER_LEN};
use crate::handle::{read_block, BlockHandle};
use crate::index::Index;
use crate::properties::TableProperties;

thread_local! {
    /// Key buffer of point lookups on this thread, reused so a lookup does
    /// not allocate.
    static LOOKUP_KEY_BUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// One open, immutable table file.
pub struct Table {
    path: Arc<Path>,
    file_number: FileNumber,
    /// The whole file, mapped.
    file: Bytes,
    footer: Footer,
    /// End of the data blocks (the first metadata block starts here).
    data_end: u64,
    index: Index,
    filter: Option<BloomFilter>,
    properties: TableProperties,
    cache: Option<BlockCache>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.path)
            .field("file_number", &self.file_number)
            .field("file_size", &self.file.len())
            .field("entries", &self.properties.entry_count)
            .finish_non_exhaustive()
    }
}

/// A data block being read: from the cache, or borrowed from the map.
pub(crate) enum BlockRef<'a> {
    Cached(Arc<Block>),
    Mapped { view: BlockView<'a>, start: usize },
}

impl BlockRef<'_> {
    #[inline]
    pub(crate) fn view(&self) -> BlockView<'_> {
        match self {
            BlockRef::Cached(b) => b.view(),
            BlockRef::Mapped { view, .. } => *view,
        }
    }

    /// Zero-copy handle on `len` bytes at block offset `at` (a checked entry
    /// range).
    #[inline]
    fn slice(&self, file: &Bytes, at: usize, len: usize) -> Bytes {
        let (bytes, start) = match self {
            BlockRef::Cached(b) => (b.data(), at),
            BlockRef::Mapped { start, .. } => (file, start + at),
        };
        match start.checked_add(len) {
            Some(end) if end <= bytes.len() => bytes.slice(start..end),
            _ => Bytes::new(),
        }
    }
}

/// Compares internal key `k` with the internal key `user ++ target_trailer`
/// without building it.
#[inline]
fn compare_to_seek(k: &[u8], user: &[u8], target_trailer: u64) -> Ordering {
    match user_key(k).cmp(user) {
        Ordering::Equal => target_trailer.cmp(&trailer(k)),
        other => other,
    }
}

impl Table {
    /// Maps `path` and checks its footer (magic, version, checksum), index,
    /// filter and properties. Damage is [`Error::Corruption`] naming the
    /// file and the offset of the bad footer field or block. Blocks are
    /// cached in `cache` under `file_number`.
    pub fn open(
        fs: &dyn FileSystem,
        path: &Path,
        file_number: FileNumber,
        cache: Option<BlockCache>,
    ) -> Result<Arc<Table>> {
        let file = fs.map(path)?;
        let footer = Footer::decode(&file, path)?;
        let footer_start = (file.len() - FOOTER_LEN) as u64;

        let index_contents = read_block(&file, footer.index, footer_start, path)?;
        let index = Index::parse(index_contents, path, footer.index.offset)?;
        let props_contents = read_block(&file, footer.properties, footer_start, path)?;
        let properties = TableProperties::decode(props_contents, path, footer.properties.offset)?;
        let filter = match footer.filter {
            Some(h) => {
                let contents = read_block(&file, h, footer_start, path)?;
                let start = h.offset as usize;
                let bytes = file.slice(start..start + contents.len());
                Some(BloomFilter::new(bytes).map_err(|w| Error::corruption(path, h.offset, w))?)
            }
            None => None,
        };
        if filter.is_some() != (properties.bloom_bits_per_key > 0) {
            return Err(Error::corruption(
                path,
                footer_start,
                "footer and properties disagree on whether the table has a filter",
            ));
        }
        if index.len() as u64 != properties.data_block_count {
            return Err(Error::corruption(
                path,
                footer.index.offset,
                format!(
                    "index has {} entries but properties count {} data blocks",
                    index.len(),
                    properties.data_block_count
                ),
            ));
        }
        let data_end = footer
            .filter
            .iter()
            .chain([&footer.index, &footer.properties])
            .map(|h| h.offset)
            .min()
            .unwrap_or(footer_start);
        Ok(Arc::new(Table {
            path: Arc::from(path),
            file_number,
            file,
            footer,
            data_end,
            index,
            filter,
            properties,
            cache,
        }))
    }

    /// The newest entry for `user_key` with sequence number at or below
    /// `snapshot`: its kind, sequence number and value (a zero-copy view of
    /// the mapped file; empty for a `Deletion`, which is returned so the
    /// caller stops looking in older tables). `None` if the table has no
    /// such entry.
    pub fn get(
        &self,
        user_key: &[u8],
        snapshot: SeqNo,
    ) -> Result<Option<(ValueKind, SeqNo, Bytes)>> {
        if let Some(filter) = &self.filter {
            if !filter.may_contain(user_key) {
                return Ok(None);
            }
        }
        let target_trailer = pack_trailer(snapshot.min(SeqNo::MAX), ValueKind::SEEK);
        let cmp = move |k: &[u8]| compare_to_seek(k, user_key, target_trailer);
        let first = self.index.lower_bound_by(cmp);
        LOOKUP_KEY_BUF.with(|buf| {
            let mut cursor = EntryCursor::with_key_buf(buf.take());
            let r = self.get_from_block(first, &mut cursor, cmp, user_key);
            buf.set(cursor.into_key_buf());
            r
        })
    }

    fn get_from_block(
        &self,
        mut i: usize,
        cursor: &mut EntryCursor,
        cmp: impl Fn(&[u8]) -> Ordering + Copy,
        user_key: &[u8],
    ) -> Result<Option<(ValueKind, SeqNo, Bytes)>> {
        while i < self.index.len() {
            let handle = self.index.handle(i);
            let block = self.data_block(handle)?;
            cursor
                .seek_by(block.view(), cmp)
                .map_err(|c| c.into_error(&self.path, handle.offset))?;
            if !cursor.valid() {
                // Every entry of this block sorts before the target, which
                // the separator allows: the next block's first entry decides.
                i += 1;
                continue;
            }
            let Some(p) = parse_internal_key(cursor.key()) else {
                return Err(Error::corruption(
                    &self.path,
                    handle.offset,
                    format!(
                        "entry at block byte {} has no valid internal key",
                        cursor.entry_offset()
                    ),
                ));
            };
            if p.user_key != user_key {
                return Ok(None);
            }
            let value = match p.kind {
                ValueKind::Deletion => Bytes::new(),
                _ => {
                    let (at, len) = cursor.value_range();
                    block.slice(&self.file, at, len)
                }
            };
            return Ok(Some((p.kind, p.seq, value)));
        }
        Ok(None)
    }

    /// The data block at `handle`, checksum verified (or from the cache).
    pub(crate) fn data_block(&self, handle: BlockHandle) -> Result<BlockRef<'_>> {
        let Some(cache) = &self.cache else {
            let contents = read_block(&self.file, handle, self.data_end, &self.path)?;
            let view =
                BlockView::parse(contents).map_err(|c| c.into_error(&self.path, handle.offset))?;
            return Ok(BlockRef::Mapped {
                view,
                start: handle.offset as usize,
            });
        };
        if let Some(block) = cache.get(self.file_number, handle.offset) {
            return Ok(BlockRef::Cached(block));
        }
        let block = Arc::new(self.read_data_block(handle)?);
        cache.insert(self.file_number, handle.offset, block.clone());
        Ok(BlockRef::Cached(block))
    }

    /// The data block at `handle` as an owned block (for iterators).
    pub(crate) fn data_block_owned(&self, handle: BlockHandle) -> Result<Block> {
        if self.cache.is_none() {
            return self.read_data_block(handle);
        }
        match self.data_block(handle)? {
            BlockRef::Cached(b) => Ok(Block::clone(&b)),
            BlockRef::Mapped { .. } => self.read_data_block(handle),
        }
    }

    /// Reads and verifies the data block at `handle` from the map, bypassing
    /// the cache.
    pub(crate) fn read_data_block(&self, handle: BlockHandle) -> Result<Block> {
        let contents = read_block(&self.file, handle, self.data_end, &self.path)?;
        let start = handle.offset as usize;
        Block::new(self.file.slice(start..start + contents.len()))
            .map_err(|c| c.into_error(&self.path, handle.offset))
    }

    /// False only if the table certainly holds no entry for `user_key`
    /// (always true without a filter).
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.filter.as_ref().is_none_or(|f| f.may_contain(user_key))
    }

    /// What the table holds, as recorded by its builder.
    pub fn properties(&self) -> &TableProperties {
        &self.properties
    }

    /// The table's file number.
    pub fn file_number(&self) -> FileNumber {
        self.file_number
    }

    /// Bytes in the file.
    pub fn file_size(&self) -> u64 {
        self.file.len() as u64
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn shared_path(&self) -> Arc<Path> {
        self.path.clone()
    }

    /// The decoded footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The filter, if the table has one.
    pub fn filter(&self) -> Option<&BloomFilter> {
        self.filter.as_ref()
    }

    /// The index entries, in order: each data block's separator key (an
    /// internal key at or after the block's last key and before the next
    /// block's first) and handle.
    pub fn index_entries(&self) -> impl ExactSizeIterator<Item = (&[u8], BlockHandle)> + '_ {
        (0..self.index.len()).map(|i| (self.index.key(i), self.index.handle(i)))
    }

    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    pub(crate) fn file_bytes(&self) -> &Bytes {
        &self.file
    }

    pub(crate) fn data_end(&self) -> u64 {
        self.data_end
    }

    /// Bytes of memory held for this table besides the map (parsed index).
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_bytes() + std::mem::size_of::<Table>()
    }
}
