//! An open table: the mapped file with its footer, index, filter and
//! properties checked and parsed, answering point lookups
//! (docs/sst-format.md).
//!
//! `open` verifies every metadata block's checksum and keeps the parsed
//! index and filter in memory; data blocks are read on demand from the map,
//! and each block's checksum is verified on its first read only (see
//! `verified.rs`). A point lookup asks the filter, binary-searches the in-memory
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
use jkv_format::{Error, FileNumber, FileSystem, RangeTombstoneSet, Result, SeqNo, ValueKind};

use crate::block::iter::EntryCursor;
use crate::block::{Block, BlockView};
use crate::block_cache::BlockCache;
use crate::codec::decompress_block;
use crate::filter::BloomFilter;
use crate::footer::{Footer, FOOTER_LEN};
use crate::handle::{read_block, read_stored_block, BlockHandle, COMPRESSION_NONE};
use crate::index::Index;
use crate::properties::TableProperties;
use crate::range_del::decode_range_tombstones;
use crate::verified::VerifiedBlocks;
use jkv_format::compression::COMPRESSION_TYPE_ZSTD;

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
    /// The range tombstones (format version 2); `None` when there are none.
    range_tombstones: Option<Arc<RangeTombstoneSet>>,
    /// Data blocks (by index position) whose checksum passed.
    verified: VerifiedBlocks,
    /// `file` is a file-backed mapping (see `release_pages`).
    file_backed: bool,
    /// Where decoded compressed blocks are kept; `None` decodes every read.
    block_cache: Option<BlockCache>,
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

/// A data block being read: an uncompressed block borrowed from the map
/// (its parsed view and its offset in the file), or a decoded compressed
/// block.
pub(crate) enum BlockRef<'a> {
    /// Stored raw: read in place.
    Mapped { view: BlockView<'a>, start: usize },
    /// Stored compressed: decoded (or found in the block cache).
    Decoded(Block),
}

impl BlockRef<'_> {
    #[inline]
    pub(crate) fn view(&self) -> BlockView<'_> {
        match self {
            BlockRef::Mapped { view, .. } => *view,
            BlockRef::Decoded(block) => block.view(),
        }
    }

    /// Zero-copy handle on `len` bytes at block offset `at` (a checked entry
    /// range).
    #[inline]
    fn slice(&self, file: &Bytes, at: usize, len: usize) -> Bytes {
        let (bytes, start) = match self {
            BlockRef::Mapped { start, .. } => (file, *start + at),
            BlockRef::Decoded(block) => (block.data(), at),
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
    /// checksum-verified on their first read.
    pub fn open(fs: &dyn FileSystem, path: &Path, file_number: FileNumber) -> Result<Arc<Table>> {
        Self::open_with_cache(fs, path, file_number, None)
    }

    /// Like [`open`](Self::open), keeping the decoded compressed blocks the
    /// table reads in `block_cache` (shared by the tables of a database,
    /// keyed by file number and block offset).
    pub fn open_with_cache(
        fs: &dyn FileSystem,
        path: &Path,
        file_number: FileNumber,
        block_cache: Option<BlockCache>,
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
        let range_tombstones = match properties.range_deletion_block {
            Some(h) => {
                let contents = read_block(&file, h, footer_start, path)?;
                let tombstones = decode_range_tombstones(
                    contents,
                    path,
                    h.offset,
                    properties.range_deletion_count,
                )?;
                Some(Arc::new(RangeTombstoneSet::new(tombstones)))
            }
            None => None,
        };
        let data_end = footer
            .filter
            .iter()
            .chain(properties.range_deletion_block.iter())
            .chain([&footer.index, &footer.properties])
            .map(|h| h.offset)
            .min()
            .unwrap_or(footer_start);
        let file_backed = fs.maps_are_file_backed() && !file.is_empty();
        Ok(Arc::new(Table {
            path: Arc::from(path),
            file_number,
            file,
            footer,
            data_end,
            filter,
            properties,
            range_tombstones,
            verified: VerifiedBlocks::new(index.len()),
            index,
            file_backed,
            block_cache,
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
            let block = self.data_block(i)?;
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

    /// Data block `i` (index position), its checksum verified unless an
    /// earlier read of this table verified it; a compressed block comes
    /// from the block cache or is decoded (and offered to the cache).
    pub(crate) fn data_block(&self, i: usize) -> Result<BlockRef<'_>> {
        let (handle, contents, kind) = self.block_contents(i)?;
        if kind == COMPRESSION_NONE {
            let view =
                BlockView::parse(contents).map_err(|c| c.into_error(&self.path, handle.offset))?;
            return Ok(BlockRef::Mapped {
                view,
                start: handle.offset as usize,
            });
        }
        Ok(BlockRef::Decoded(
            self.decoded_block(handle, kind, contents, true)?,
        ))
    }

    /// Data block `i` as an owned block (for iterators), its checksum
    /// verified unless an earlier read of this table verified it.
    pub(crate) fn data_block_owned(&self, i: usize) -> Result<Block> {
        let (handle, contents, kind) = self.block_contents(i)?;
        if kind == COMPRESSION_NONE {
            return self.owned_block(handle, contents.len());
        }
        self.decoded_block(handle, kind, contents, true)
    }

    /// Reads the data block at `handle` from the map, always verifying its
    /// checksum; a compressed block is decoded without the block cache
    /// (compaction and checks read each block once).
    pub(crate) fn read_data_block(&self, handle: BlockHandle) -> Result<Block> {
        let (contents, kind) = read_stored_block(&self.file, handle, self.data_end, &self.path)?;
        if kind == COMPRESSION_NONE {
            return self.owned_block(handle, contents.len());
        }
        self.decoded_block(handle, kind, contents, false)
    }

    /// The decoded block for the compressed `stored` contents at `handle`:
    /// from the block cache when `cached` and it is there, else decoded
    /// (and, when `cached`, offered to the cache). Only zstd blocks use the
    /// cache: decoding a 4 KiB LZ4 block costs about what a cache hit does,
    /// and a miss adds the insert (docs/benchmarks.md, "Compression"). A
    /// block that does not decode is [`Error::Corruption`] at its offset.
    fn decoded_block(
        &self,
        handle: BlockHandle,
        kind: u8,
        stored: &[u8],
        cached: bool,
    ) -> Result<Block> {
        let cache = self
            .block_cache
            .as_ref()
            .filter(|_| cached && kind == COMPRESSION_TYPE_ZSTD);
        if let Some(bytes) = cache.and_then(|c| c.get(self.file_number, handle.offset)) {
            return Block::new(bytes).map_err(|c| c.into_error(&self.path, handle.offset));
        }
        let decoded = decompress_block(kind, stored).map_err(|what| {
            Error::corruption(
                &self.path,
                handle.offset,
                format!("{what} (block size {})", handle.size),
            )
        })?;
        let bytes = Bytes::from(decoded);
        let block =
            Block::new(bytes.clone()).map_err(|c| c.into_error(&self.path, handle.offset))?;
        if let Some(cache) = cache {
            cache.insert(self.file_number, handle.offset, bytes);
        }
        Ok(block)
    }

    /// The stored contents of data block `i` in the map (bounds checked),
    /// with its handle and compression type: checksum verified on the
    /// block's first read after the table was opened, trusted after that.
    fn block_contents(&self, i: usize) -> Result<(BlockHandle, &[u8], u8)> {
        let handle = self.index.handle(i);
        if self.verified.contains(i) {
            let start = handle.offset as usize;
            let verified = start.checked_add(handle.size as usize).and_then(|end| {
                let contents = self.file.get(start..end)?;
                Some((contents, *self.file.get(end)?))
            });
            if let Some((contents, kind)) = verified {
                return Ok((handle, contents, kind));
            }
        }
        let (contents, kind) = read_stored_block(&self.file, handle, self.data_end, &self.path)?;
        self.verified.insert(i);
        Ok((handle, contents, kind))
    }

    /// A zero-copy block over the `len` content bytes at `handle` (a range
    /// already checked against the map).
    fn owned_block(&self, handle: BlockHandle, len: usize) -> Result<Block> {
        let start = handle.offset as usize;
        Block::new(self.file.slice(start..start + len))
            .map_err(|c| c.into_error(&self.path, handle.offset))
    }

    /// Tells the OS this process is done with the file's bytes in `range`
    /// for now (see [`jkv_format::fs::release_mapped_pages`]); they stay
    /// readable. Does nothing unless the file is a file-backed mapping.
    pub(crate) fn release_pages(&self, range: std::ops::Range<usize>) {
        if !self.file_backed {
            return;
        }
        if let Some(bytes) = self.file.get(range) {
            // SAFETY: `file` came from `map` of a file system whose maps
            // are file-backed (checked at open).
            unsafe { jkv_format::fs::release_mapped_pages(bytes) }
        }
    }

    /// False only if the table certainly holds no entry for `user_key`
    /// (always true without a filter).
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.filter.as_ref().is_none_or(|f| f.may_contain(user_key))
    }

    /// Drops this table's decoded blocks from the block cache (its file is
    /// being deleted). Only zstd blocks are ever cached
    /// ([`Self::decoded_block`]), so a table without any costs nothing.
    pub fn forget_cached_blocks(&self) {
        let Some(cache) = &self.block_cache else {
            return;
        };
        let p = self.properties();
        let zstd = matches!(
            p.compression.parse::<jkv_format::Compression>(),
            Ok(jkv_format::Compression::Zstd { .. })
        );
        if p.compressed_block_count == 0 || !zstd {
            return;
        }
        cache.forget_blocks(
            self.file_number,
            self.index_entries().map(|(_, h)| h.offset),
        );
    }

    /// What the table holds, as recorded by its builder.
    pub fn properties(&self) -> &TableProperties {
        &self.properties
    }

    /// The table's range tombstones, `None` when it has none (always for
    /// format version 1). They are not consulted by [`Table::get`] or the
    /// table's cursors: the engine weighs them against every source.
    pub fn range_tombstones(&self) -> Option<&Arc<RangeTombstoneSet>> {
        self.range_tombstones.as_ref()
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

    /// Bytes of memory held for this table besides the map (parsed index,
    /// verified-block bits).
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_bytes() + self.verified.memory_bytes() + std::mem::size_of::<Table>()
    }

    /// Data blocks whose checksum was verified since the table was opened.
    pub fn verified_block_count(&self) -> usize {
        self.verified.count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{TableBuilder, TableOptions};
    use crate::test_support::build_table;
    use jkv_format::key::InternalKey;
    use jkv_format::{InternalIterator, StdFs};

    fn ikv(k: &[u8], s: u64, kind: ValueKind) -> Vec<u8> {
        InternalKey::new(k, SeqNo(s), kind).into_vec()
    }

    fn small_blocks() -> TableOptions {
        TableOptions {
            block_size_bytes: 256,
            restart_interval: 4,
            bloom_bits_per_key: 10,
            db_id: 0,
            compression: jkv_format::Compression::None,
        }
    }

    fn sample_entries(n: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let kind = if i % 17 == 0 {
                    ValueKind::Deletion
                } else {
                    ValueKind::Value
                };
                let v = if kind == ValueKind::Deletion {
                    Vec::new()
                } else {
                    format!("value-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes()
                };
                (
                    ikv(format!("key{i:06}").as_bytes(), u64::from(i) + 1, kind),
                    v,
                )
            })
            .collect()
    }

    #[test]
    fn round_trip_through_std_fs() {
        let dir = tempfile::tempdir().unwrap();
        let entries = sample_entries(3000);
        for _pass in 0..2 {
            let (path, summary) = build_table(dir.path(), 3, &entries, small_blocks());
            assert_eq!(summary.entry_count, 3000);
            assert_eq!(summary.smallest, entries[0].0);
            assert_eq!(summary.largest, entries[2999].0);
            assert_eq!((summary.min_seq, summary.max_seq), (SeqNo(1), SeqNo(3000)));
            assert_eq!(summary.file_size, std::fs::metadata(&path).unwrap().len());

            let t = Table::open(&StdFs, &path, FileNumber(3)).unwrap();
            let p = t.properties();
            assert_eq!(p.entry_count, 3000);
            assert_eq!(p.deletion_count, 3000u64.div_ceil(17));
            assert!(p.data_block_count > 100, "{p:?}");
            assert_eq!(p.bloom_bits_per_key, 10);
            assert_eq!(t.file_size(), summary.file_size);
            assert_eq!(t.file_number(), FileNumber(3));
            assert_eq!(t.path(), path);

            for (i, (k, v)) in entries.iter().enumerate() {
                let pk = jkv_format::key::parse_internal_key(k).unwrap();
                let got = t.get(pk.user_key, SeqNo::MAX).unwrap().unwrap();
                assert_eq!(
                    (got.0, got.1, &got.2[..]),
                    (pk.kind, pk.seq, &v[..]),
                    "entry {i}"
                );
                // Older snapshots do not see it.
                assert_eq!(t.get(pk.user_key, SeqNo(pk.seq.0 - 1)).unwrap(), None);
            }
            assert_eq!(t.get(b"key", SeqNo::MAX).unwrap(), None);
            assert_eq!(t.get(b"zzz", SeqNo::MAX).unwrap(), None);
            assert_eq!(t.get(b"", SeqNo::MAX).unwrap(), None);

            let mut it = t.iter();
            let mut got = Vec::new();
            it.seek_to_first();
            while it.valid() {
                got.push((it.key().to_vec(), it.value().to_vec()));
                it.next();
            }
            it.status().unwrap();
            assert_eq!(got, entries);
            let mut back = Vec::new();
            it.seek_to_last();
            while it.valid() {
                back.push((it.key().to_vec(), it.value().to_vec()));
                it.prev();
            }
            back.reverse();
            assert_eq!(back, entries);

            let report = t.verify().unwrap();
            assert_eq!(report.entries, 3000);
            assert_eq!(report.data_blocks, p.data_block_count);
            let mut text = Vec::new();
            t.dump(&mut text).unwrap();
            let text = String::from_utf8(text).unwrap();
            assert!(text.contains("key000017@18:Deletion"), "{}", &text[..500]);
            assert!(text.contains("data block 1 at"));
        }
    }

    #[test]
    fn get_with_snapshots_across_block_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        // Forty versions of "k" with 30-byte values span several 128-byte
        // blocks; a deletion sits at seq 20.
        let mut entries = vec![(ikv(b"j", 50, ValueKind::Value), b"j".to_vec())];
        for s in (1..=40u64).rev() {
            let kind = if s == 20 {
                ValueKind::Deletion
            } else {
                ValueKind::Value
            };
            let v = if s == 20 {
                Vec::new()
            } else {
                format!("v{s:02}-{}", "p".repeat(26)).into_bytes()
            };
            entries.push((ikv(b"k", s, kind), v));
        }
        entries.push((ikv(b"l", 3, ValueKind::Value), b"l".to_vec()));
        let opts = TableOptions {
            block_size_bytes: 128,
            restart_interval: 2,
            bloom_bits_per_key: 10,
            db_id: 0,
            compression: jkv_format::Compression::None,
        };
        let (path, summary) = build_table(dir.path(), 1, &entries, opts);
        // "k"'s versions after its newest are older versions; one is the
        // deletion. Both counts reach the summary and the properties.
        assert_eq!(summary.older_version_count, 39);
        assert_eq!(summary.deletion_count, 1);
        {
            let table = Table::open(&StdFs, &path, FileNumber(1)).unwrap();
            assert_eq!(table.properties().older_version_count, 39);
            assert_eq!(table.properties().deletion_count, 1);
        }
        for _pass in 0..2 {
            let t = Table::open(&StdFs, &path, FileNumber(1)).unwrap();
            assert!(t.properties().data_block_count >= 8);
            assert_eq!(t.get(b"k", SeqNo(0)).unwrap(), None);
            for snap in 1..=45u64 {
                let (kind, seq, v) = t.get(b"k", SeqNo(snap)).unwrap().unwrap();
                let want = snap.min(40);
                assert_eq!(seq, SeqNo(want), "snapshot {snap}");
                if want == 20 {
                    assert_eq!(kind, ValueKind::Deletion);
                    assert!(v.is_empty());
                } else {
                    assert_eq!(kind, ValueKind::Value);
                    assert!(v.starts_with(format!("v{want:02}-").as_bytes()));
                }
            }
            assert_eq!(t.get(b"l", SeqNo(2)).unwrap(), None);
            assert_eq!(t.get(b"l", SeqNo(3)).unwrap().unwrap().1, SeqNo(3));
            assert_eq!(t.get(b"j", SeqNo(49)).unwrap(), None);
            assert_eq!(t.get(b"j", SeqNo::MAX).unwrap().unwrap().1, SeqNo(50));
        }
    }

    #[test]
    fn separator_equal_to_the_lookup_key_moves_on_to_the_next_block() {
        // Blocks end at "a…" and the next starts at "c…", so the separator is
        // the shortened "b" with the largest trailer; a lookup of "b" at
        // SeqNo::MAX builds exactly that key and must still answer None, and
        // "c" must be found in the next block.
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![
            (ikv(b"aaaa", 1, ValueKind::Value), vec![1u8; 40]),
            (ikv(b"cccc", 1, ValueKind::Value), vec![2u8; 40]),
        ];
        let opts = TableOptions {
            block_size_bytes: 1,
            restart_interval: 1,
            bloom_bits_per_key: 0,
            db_id: 0,
            compression: jkv_format::Compression::None,
        };
        let (path, _) = build_table(dir.path(), 1, &entries, opts);
        let t = Table::open(&StdFs, &path, FileNumber(1)).unwrap();
        assert_eq!(t.index_entries().len(), 2);
        let first_separator = t.index_entries().next().unwrap().0.to_vec();
        assert_eq!(jkv_format::key::user_key(&first_separator), b"b");
        assert_eq!(t.get(b"b", SeqNo::MAX).unwrap(), None);
        assert_eq!(
            &t.get(b"cccc", SeqNo::MAX).unwrap().unwrap().2[..],
            &[2u8; 40]
        );
        t.verify().unwrap();
    }

    #[test]
    fn empty_table_and_table_without_filter() {
        let dir = tempfile::tempdir().unwrap();
        let (path, summary) = build_table(dir.path(), 1, &[], TableOptions::default());
        assert_eq!(summary.entry_count, 0);
        assert!(summary.smallest.is_empty());
        let t = Table::open(&StdFs, &path, FileNumber(1)).unwrap();
        assert_eq!(t.get(b"a", SeqNo::MAX).unwrap(), None);
        let mut it = t.iter();
        it.seek_to_first();
        assert!(!it.valid());
        it.seek_to_last();
        assert!(!it.valid());
        it.seek_for_prev(&ikv(b"a", 1, ValueKind::Value));
        assert!(!it.valid());
        it.status().unwrap();
        t.verify().unwrap();

        let no_filter = TableOptions {
            bloom_bits_per_key: 0,
            ..TableOptions::default()
        };
        let entries = sample_entries(100);
        let (path, _) = build_table(dir.path(), 2, &entries, no_filter);
        let t = Table::open(&StdFs, &path, FileNumber(2)).unwrap();
        assert!(t.filter().is_none());
        assert_eq!(t.properties().filter_size_bytes, 0);
        assert!(t.may_contain(b"anything"));
        assert_eq!(
            &t.get(b"key000001", SeqNo::MAX).unwrap().unwrap().2[..],
            b"value-1-x"
        );
        t.verify().unwrap();
    }

    #[test]
    fn builder_rejects_bad_keys_and_writes_a_good_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000001.sst");
        let mut b = TableBuilder::new(StdFs.create(&path).unwrap(), small_blocks());
        b.add(&ikv(b"b", 5, ValueKind::Value), b"b5").unwrap();
        let refused = [
            ikv(b"a", 9, ValueKind::Value), // smaller user key
            ikv(b"b", 5, ValueKind::Value), // equal
            ikv(b"b", 6, ValueKind::Value), // newer version after older
            b"short".to_vec(),              // no trailer
            {
                let mut k = ikv(b"c", 1, ValueKind::Value);
                let kind_at = k.len() - 8; // low byte of the LE trailer
                k[kind_at] = 9; // unknown kind
                k
            },
        ];
        for k in &refused {
            let e = b.add(k, b"x").unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        }
        let long = vec![b'x'; jkv_format::key::USER_KEY_LEN_MAX + 1];
        assert!(matches!(
            b.add(&ikv(&long, 1, ValueKind::Value), b""),
            Err(Error::InvalidArgument(_))
        ));
        b.add(&ikv(b"b", 4, ValueKind::Value), b"b4").unwrap();
        b.add(&ikv(b"c", 1, ValueKind::Value), b"c1").unwrap();
        assert_eq!(b.entry_count(), 3);
        assert!(b.estimated_size_bytes() > 0);
        let s = b.finish().unwrap();
        assert_eq!(s.entry_count, 3);
        let t = Table::open(&StdFs, &path, FileNumber(1)).unwrap();
        t.verify().unwrap();
        assert_eq!(&t.get(b"b", SeqNo(4)).unwrap().unwrap().2[..], b"b4");

        let bad_options = TableOptions {
            restart_interval: 0,
            ..TableOptions::default()
        };
        let mut b = TableBuilder::new(StdFs.create(&dir.path().join("x")).unwrap(), bad_options);
        assert!(matches!(
            b.add(&ikv(b"a", 1, ValueKind::Value), b""),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(b.finish(), Err(Error::InvalidArgument(_))));
    }

    fn expect_corruption(path: &Path, want_offset: u64) -> String {
        match Table::open(&StdFs, path, FileNumber(1)) {
            Err(Error::Corruption { file, offset, what }) => {
                assert_eq!(file, path);
                assert_eq!(offset, want_offset, "{what}");
                what
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn damaged_footer_magic_and_version_are_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let (path, s) = build_table(dir.path(), 1, &sample_entries(50), small_blocks());
        let good = std::fs::read(&path).unwrap();
        let len = good.len() as u64;
        let footer_at = len - FOOTER_LEN as u64;

        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        assert!(expect_corruption(&path, len - 8).contains("magic"));

        // A newer version with a valid checksum is refused as newer.
        let mut footer = Footer::decode(&good, &path).unwrap();
        footer.version = crate::footer::FORMAT_VERSION + 1;
        let mut bad = good.clone();
        bad[footer_at as usize..].copy_from_slice(&footer.encode());
        std::fs::write(&path, &bad).unwrap();
        assert!(expect_corruption(&path, len - 16).contains("newer"));

        let mut bad = good.clone();
        bad[footer_at as usize + 3] ^= 0x04;
        std::fs::write(&path, &bad).unwrap();
        assert!(expect_corruption(&path, footer_at).contains("footer checksum"));

        std::fs::write(&path, &good[..40]).unwrap();
        expect_corruption(&path, 0);

        // A damaged index block is found at open, at the index's offset.
        let mut bad = good.clone();
        let index = Footer::decode(&good, &path).unwrap().index;
        bad[index.offset as usize + 2] ^= 0x80;
        std::fs::write(&path, &bad).unwrap();
        assert!(expect_corruption(&path, index.offset).contains("checksum"));

        // A damaged data block is found by get, iteration and verify.
        std::fs::write(&path, &good).unwrap();
        let t = Table::open(&StdFs, &path, FileNumber(1)).unwrap();
        let (_, h) = t.index_entries().nth(1).unwrap();
        drop(t);
        let mut bad = good.clone();
        bad[h.offset as usize + 5] ^= 0x20;
        std::fs::write(&path, &bad).unwrap();
        let t = Table::open(&StdFs, &path, FileNumber(1)).unwrap();
        let e = t.verify().unwrap_err();
        assert!(
            matches!(e, Error::Corruption { offset, .. } if offset == h.offset),
            "{e}"
        );
        let mut it = t.iter();
        it.seek_to_first();
        while it.valid() {
            it.next();
        }
        assert!(it.status().unwrap_err().is_corruption());
        assert_eq!(s.entry_count, 50);
    }

    #[test]
    fn blocks_are_verified_once_per_open_table() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = build_table(dir.path(), 4, &sample_entries(500), small_blocks());
        let t = Table::open(&StdFs, &path, FileNumber(4)).unwrap();
        assert_eq!(t.verified_block_count(), 0);
        t.get(b"key000100", SeqNo::MAX).unwrap().unwrap();
        let verified = t.verified_block_count();
        assert!(verified >= 1);
        let (_, _, v) = t.get(b"key000100", SeqNo::MAX).unwrap().unwrap();
        assert!(v.starts_with(b"value-100-"));
        assert_eq!(t.verified_block_count(), verified);
        // A full scan verifies every block; a second open starts afresh.
        let mut it = t.iter();
        it.seek_to_first();
        while it.valid() {
            it.next();
        }
        it.status().unwrap();
        assert_eq!(
            t.verified_block_count() as u64,
            t.properties().data_block_count
        );
        let again = Table::open(&StdFs, &path, FileNumber(4)).unwrap();
        assert_eq!(again.verified_block_count(), 0);
    }
}
