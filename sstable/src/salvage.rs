//! Reading what survives of a damaged table, for `jkv repair`: the data
//! blocks that still verify, found through the index when it is intact and
//! by walking the block chain from byte 0 when it is not.
//!
//! [`Table::open`] refuses a table whose footer, index, filter or
//! properties are damaged, although its data blocks may all be intact.
//! [`SalvagedTable::open`] instead collects every problem it meets and
//! locates the data blocks as best it can:
//! - footer and index intact: the index's handles (the filter and
//!   properties are not needed);
//! - footer intact, index damaged: the block chain from byte 0 up to the
//!   data end the footer gives (blocks follow each other without gaps, and
//!   each ends in a trailer whose checksum covers it, docs/sst-format.md);
//! - footer damaged: the block chain over the whole file; when it reaches
//!   the footer and its last block decodes as properties, those give the
//!   data end; otherwise the chain is cut before the first block that is
//!   not a data block (the filter or the index).
//!
//! A damaged data block stops the chain walk (its end cannot be found), so
//! without an index the blocks after it are lost; with the index they are
//! read. Reads the mapped file; no state is shared.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use jkv_format::coding::{get_u32_le, Cursor};
use jkv_format::key::{compare_internal_keys, parse_internal_key};
use jkv_format::{Error, FileSystem, Result};

use crate::block::iter::EntryCursor;
use crate::block::BlockView;
use crate::footer::{Footer, FOOTER_LEN};
use crate::handle::{read_block, BlockHandle, BLOCK_TRAILER_LEN, COMPRESSION_NONE};
use crate::index::Index;
use crate::properties::TableProperties;

/// The entries of one data block: (internal key, value), in order.
pub type BlockEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// What could be located in a possibly damaged table file.
#[derive(Debug)]
pub struct SalvagedTable {
    path: PathBuf,
    file: Bytes,
    /// End of the data region (where the data blocks' trailers must end).
    data_end: u64,
    blocks: Vec<BlockHandle>,
    /// Index separators of `blocks`, when they came from the index.
    separators: Option<Vec<Vec<u8>>>,
    problems: Vec<Error>,
    lost: Option<Error>,
    db_id: u64,
}

impl SalvagedTable {
    /// Maps `path` and locates its data blocks (see the module docs).
    /// Damage is collected in [`SalvagedTable::problems`]; only a file that
    /// cannot be mapped is an error.
    pub fn open(fs: &dyn FileSystem, path: &Path) -> Result<SalvagedTable> {
        let file = fs.map(path)?;
        let mut t = SalvagedTable {
            path: path.to_path_buf(),
            data_end: 0,
            blocks: Vec::new(),
            separators: None,
            problems: Vec::new(),
            lost: None,
            db_id: 0,
            file,
        };
        t.locate();
        Ok(t)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Handles of the data blocks found, in file order. Each may still be
    /// damaged: read it with [`SalvagedTable::block_entries`].
    pub fn data_blocks(&self) -> &[BlockHandle] {
        &self.blocks
    }

    /// Damage met while locating the blocks (`Corruption` with file and
    /// offset) that hides no data by itself: a damaged footer, index,
    /// filter or properties block, worked around as the module docs say.
    pub fn problems(&self) -> &[Error] {
        &self.problems
    }

    /// Where locating the blocks had to stop early: a damaged block hides
    /// where it ends, so without the index nothing after it can be found
    /// (`Corruption` at its offset). `None` when every data block was
    /// located (each may still fail [`SalvagedTable::block_entries`]).
    pub fn lost_data(&self) -> Option<&Error> {
        self.lost.as_ref()
    }

    /// The database the properties name (0 when unknown or unreadable).
    pub fn db_id(&self) -> u64 {
        self.db_id
    }

    /// Size of the file in bytes.
    pub fn file_size(&self) -> u64 {
        self.file.len() as u64
    }

    /// What the index says block `i` of [`SalvagedTable::data_blocks`]
    /// held: its keys lie after the previous block's separator (`None` for
    /// the first block) and at or before its own (internal keys). `None`
    /// when the blocks were not found through the index.
    pub fn block_key_bounds(&self, i: usize) -> Option<(Option<&[u8]>, &[u8])> {
        let seps = self.separators.as_ref()?;
        let own = seps.get(i)?;
        let prev = i
            .checked_sub(1)
            .and_then(|p| seps.get(p))
            .map(Vec::as_slice);
        Some((prev, own.as_slice()))
    }

    /// Reads one data block: checksum, structure, every key a valid
    /// internal key and each after the one before. Any failure is
    /// `Corruption` at the block's offset; nothing of the block is returned
    /// then.
    pub fn block_entries(&self, handle: BlockHandle) -> Result<BlockEntries> {
        let path = &self.path;
        let contents = read_block(&self.file, handle, self.data_end, path)?;
        let view = BlockView::parse(contents).map_err(|c| c.into_error(path, handle.offset))?;
        entries_of(view).map_err(|what| Error::corruption(path, handle.offset, what))
    }

    fn locate(&mut self) {
        let len = self.file.len();
        match Footer::decode(&self.file, &self.path) {
            Ok(footer) => {
                let footer_start = (len - FOOTER_LEN) as u64;
                self.data_end = footer
                    .filter
                    .iter()
                    .chain([&footer.index, &footer.properties])
                    .map(|h| h.offset)
                    .min()
                    .unwrap_or(footer_start);
                match read_block(&self.file, footer.properties, footer_start, &self.path)
                    .and_then(|c| TableProperties::decode(c, &self.path, footer.properties.offset))
                {
                    Ok(props) => self.db_id = props.db_id,
                    Err(e) => self.problems.push(e),
                }
                if let Some(h) = footer.filter {
                    if let Err(e) = read_block(&self.file, h, footer_start, &self.path) {
                        self.problems.push(e);
                    }
                }
                let index = read_block(&self.file, footer.index, footer_start, &self.path)
                    .and_then(|c| Index::parse(c, &self.path, footer.index.offset));
                match index {
                    Ok(index) => {
                        self.blocks = (0..index.len()).map(|i| index.handle(i)).collect();
                        self.separators =
                            Some((0..index.len()).map(|i| index.key(i).to_vec()).collect());
                    }
                    Err(e) => {
                        self.problems.push(e);
                        let (chain, _) = self.chain(self.data_end);
                        self.blocks = chain;
                    }
                }
            }
            Err(e) => {
                self.problems.push(e);
                let limit = len.saturating_sub(FOOTER_LEN) as u64;
                self.data_end = limit;
                let (chain, reached) = self.chain(limit);
                self.blocks = self.data_prefix(chain, reached == limit);
            }
        }
    }

    /// Walks the block chain from byte 0 up to `limit`: each block ends
    /// where a trailer's checksum matches the bytes before it. Returns the
    /// blocks found and where the walk stopped; a stop before `limit` is
    /// recorded as a problem (a damaged block hides where it ends).
    fn chain(&mut self, limit: u64) -> (Vec<BlockHandle>, u64) {
        let data = &self.file[..(limit as usize).min(self.file.len())];
        let mut blocks = Vec::new();
        let mut start = 0usize;
        while start < data.len() {
            match block_end(data, start) {
                Some(end) => {
                    blocks.push(BlockHandle {
                        offset: start as u64,
                        size: (end - start) as u64,
                    });
                    start = end + BLOCK_TRAILER_LEN;
                }
                None => {
                    self.lost = Some(Error::corruption(
                        &self.path,
                        start as u64,
                        format!(
                            "no intact block starts here: bytes {start}..{limit} cannot be read"
                        ),
                    ));
                    break;
                }
            }
        }
        (blocks, start as u64)
    }

    /// Without a footer: the blocks of `chain` that are data blocks. When
    /// the chain reached the footer, its last block should be the
    /// properties, which give the data end; otherwise the chain is cut at
    /// the first block that is not a data block following the previous one.
    fn data_prefix(&mut self, chain: Vec<BlockHandle>, whole: bool) -> Vec<BlockHandle> {
        if whole {
            if let Some(last) = chain.last() {
                let contents = read_block(&self.file, *last, self.data_end, &self.path);
                if let Ok(props) =
                    contents.and_then(|c| TableProperties::decode(c, &self.path, last.offset))
                {
                    self.db_id = props.db_id;
                    self.data_end = props.data_size_bytes;
                    return chain
                        .into_iter()
                        .take_while(|h| {
                            h.offset + h.size + BLOCK_TRAILER_LEN as u64 <= props.data_size_bytes
                        })
                        .collect();
                }
            }
        }
        let mut out: Vec<BlockHandle> = Vec::new();
        let mut last_key: Option<Vec<u8>> = None;
        for h in chain {
            if self.looks_like_index(h, &out) {
                break;
            }
            let Ok(entries) = self.block_entries(h) else {
                break;
            };
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                break;
            };
            if let Some(prev) = &last_key {
                if compare_internal_keys(prev, &first.0) != Ordering::Less {
                    break;
                }
            }
            last_key = Some(last.0.clone());
            out.push(h);
        }
        if let Some(end) = out
            .last()
            .map(|h| h.offset + h.size + BLOCK_TRAILER_LEN as u64)
        {
            self.data_end = end;
        }
        out
    }

    /// True when the block at `h` holds exactly one handle per block of
    /// `earlier`, pointing at them in order: the index, not data.
    fn looks_like_index(&self, h: BlockHandle, earlier: &[BlockHandle]) -> bool {
        let Ok(contents) = read_block(&self.file, h, self.data_end, &self.path) else {
            return false;
        };
        let Ok(view) = BlockView::parse(contents) else {
            return false;
        };
        let Ok(entries) = entries_of(view) else {
            return false;
        };
        entries.len() == earlier.len()
            && entries.iter().zip(earlier).all(|((_, v), b)| {
                let mut cur = Cursor::new(v);
                BlockHandle::decode_from(&mut cur) == Some(*b) && cur.remaining() == 0
            })
    }
}

/// Where the block starting at `start` ends (its contents' end, where the
/// trailer begins): the first point where the trailer's type byte is
/// "none" and its checksum covers the bytes before it.
fn block_end(data: &[u8], start: usize) -> Option<usize> {
    let mut hasher = crc32fast::Hasher::new();
    // A block holds at least its restart count (4 bytes).
    let first = start + 4;
    if first + BLOCK_TRAILER_LEN > data.len() {
        return None;
    }
    hasher.update(&data[start..first]);
    for end in first..=data.len() - BLOCK_TRAILER_LEN {
        if data[end] == COMPRESSION_NONE {
            let mut h = hasher.clone();
            h.update(&[COMPRESSION_NONE]);
            if get_u32_le(data, end + 1) == Some(h.finalize()) {
                return Some(end);
            }
        }
        hasher.update(&data[end..end + 1]);
    }
    None
}

/// Every entry of a parsed block, checked: valid internal keys, strictly
/// increasing.
fn entries_of(view: BlockView<'_>) -> std::result::Result<BlockEntries, String> {
    let mut cursor = EntryCursor::default();
    let mut out: BlockEntries = Vec::new();
    let mut r = cursor.seek_to_first(view);
    while r.is_ok() && cursor.valid() {
        let key = cursor.key();
        let at = cursor.entry_offset();
        if parse_internal_key(key).is_none() {
            return Err(format!(
                "entry at block byte {at} has no valid internal key"
            ));
        }
        if let Some((prev, _)) = out.last() {
            if compare_internal_keys(prev, key) != Ordering::Less {
                return Err(format!(
                    "entry at block byte {at} is not after the previous key"
                ));
            }
        }
        let (value_at, value_len) = cursor.value_range();
        out.push((key.to_vec(), view.slice(value_at, value_len).to_vec()));
        r = cursor.next(view);
    }
    r.map_err(|c| format!("{} (block byte {})", c.what, c.at))?;
    if out.is_empty() {
        return Err("data block is empty".to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{TableBuilder, TableOptions};
    use jkv_format::key::InternalKey;
    use jkv_format::{SeqNo, StdFs, ValueKind};

    fn build(dir: &Path, n: u32, bloom_bits_per_key: usize) -> (PathBuf, BlockEntries) {
        let path = dir.join("000001.sst");
        let options = TableOptions {
            block_size_bytes: 256,
            restart_interval: 4,
            bloom_bits_per_key,
            db_id: 77,
        };
        let mut b = TableBuilder::new(StdFs.create(&path).unwrap(), options);
        let mut entries = Vec::new();
        for i in 0..n {
            let k = InternalKey::new(
                format!("key{i:05}").as_bytes(),
                SeqNo(u64::from(i) + 1),
                ValueKind::Value,
            )
            .into_vec();
            let v = format!("value-{i}").into_bytes();
            b.add(&k, &v).unwrap();
            entries.push((k, v));
        }
        b.finish().unwrap();
        (path, entries)
    }

    fn read_all(t: &SalvagedTable) -> (BlockEntries, usize) {
        let mut out = Vec::new();
        let mut bad = 0;
        for h in t.data_blocks() {
            match t.block_entries(*h) {
                Ok(e) => out.extend(e),
                Err(_) => bad += 1,
            }
        }
        (out, bad)
    }

    fn flip(path: &Path, at: usize) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes[at] ^= 0x10;
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn an_intact_table_yields_everything() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entries) = build(dir.path(), 300, 10);
        let t = SalvagedTable::open(&StdFs, &path).unwrap();
        assert!(t.problems().is_empty(), "{:?}", t.problems());
        assert_eq!(t.db_id(), 77);
        assert_eq!(read_all(&t), (entries, 0));
    }

    #[test]
    fn damaged_metadata_still_yields_every_data_block() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entries) = build(dir.path(), 300, 10);
        let intact = std::fs::read(&path).unwrap();
        let footer = Footer::decode(&intact, &path).unwrap();
        let filter = footer.filter.unwrap();
        let len = intact.len();
        for (region, at) in [
            ("filter", filter.offset as usize + 3),
            ("index", footer.index.offset as usize + 2),
            ("properties", footer.properties.offset as usize + 1),
            ("footer", len - 10),
            ("footer magic", len - 2),
        ] {
            std::fs::write(&path, &intact).unwrap();
            flip(&path, at);
            let t = SalvagedTable::open(&StdFs, &path).unwrap();
            assert!(!t.problems().is_empty(), "{region}: damage not reported");
            assert_eq!(read_all(&t), (entries.clone(), 0), "{region}");
        }
    }

    #[test]
    fn without_footer_or_filter_the_chain_stops_before_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entries) = build(dir.path(), 300, 0);
        let intact = std::fs::read(&path).unwrap();
        let footer = Footer::decode(&intact, &path).unwrap();
        // Footer and properties both damaged: only the data/index boundary
        // tells where data ends.
        std::fs::write(&path, &intact).unwrap();
        flip(&path, intact.len() - 10);
        flip(&path, footer.properties.offset as usize + 1);
        let t = SalvagedTable::open(&StdFs, &path).unwrap();
        assert_eq!(read_all(&t), (entries, 0));
    }

    #[test]
    fn a_damaged_data_block_is_skipped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entries) = build(dir.path(), 300, 10);
        let intact = std::fs::read(&path).unwrap();
        let t = SalvagedTable::open(&StdFs, &path).unwrap();
        let second = t.data_blocks()[1];
        let lost = t.block_entries(second).unwrap();
        flip(&path, second.offset as usize + 7);
        let t = SalvagedTable::open(&StdFs, &path).unwrap();
        let (got, bad) = read_all(&t);
        assert_eq!(bad, 1);
        let (after, upto) = t.block_key_bounds(1).unwrap();
        assert!(after.is_some_and(|a| a < lost[0].0.as_slice()));
        assert!(upto >= lost.last().unwrap().0.as_slice());
        let want: Vec<_> = entries
            .iter()
            .filter(|e| !lost.contains(e))
            .cloned()
            .collect();
        assert_eq!(got, want);
        // Index damaged too: the chain walk stops at the damaged block.
        let footer = Footer::decode(&intact, &path).unwrap();
        flip(&path, footer.index.offset as usize + 2);
        let t = SalvagedTable::open(&StdFs, &path).unwrap();
        assert!(t.block_key_bounds(0).is_none());
        let (got, _) = read_all(&t);
        let first = t.block_entries(t.data_blocks()[0]).unwrap();
        assert_eq!(got, first);
        assert!(t
            .lost_data()
            .is_some_and(|e| e.to_string().contains("no intact block starts here")));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000009.sst");
        for len in [0usize, 3, 64, 65, 200] {
            std::fs::write(&path, vec![0u8; len]).unwrap();
            let t = SalvagedTable::open(&StdFs, &path).unwrap();
            assert!(read_all(&t).0.is_empty());
            assert!(!t.problems().is_empty() || t.lost_data().is_some());
        }
    }
}
