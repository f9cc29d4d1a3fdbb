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
//! read.
//!
//! The range-tombstone block (format version 2) is found through the
//! properties when they are intact. When they are not, it is the block
//! between the last data block and the filter or index: with the index
//! intact, the bytes between the last data block's end and the first
//! metadata block the footer names; on a chain walk, the block after the
//! data blocks whose every key is a range deletion (no data, index,
//! filter or properties key is). Its checksum and contents are verified;
//! a damaged one is [`SalvagedTable::range_tombstone_damage`], its
//! tombstones lost. Reads the mapped file; no state is shared.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use jkv_format::coding::{get_u32_le, Cursor};
use jkv_format::key::{compare_internal_keys, parse_internal_key};
use jkv_format::{Error, FileSystem, RangeTombstone, Result, ValueKind};

use crate::block::iter::EntryCursor;
use crate::block::BlockView;
use crate::codec::decompress_block;
use crate::footer::{Footer, FOOTER_LEN};
use crate::handle::{
    read_block, read_stored_block, BlockHandle, BLOCK_TRAILER_LEN, COMPRESSION_NONE,
};
use crate::index::Index;
use crate::properties::TableProperties;
use crate::range_del::{decode_range_tombstone_entries, decode_range_tombstones};

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
    range_tombstones: Vec<RangeTombstone>,
    range_tombstone_damage: Option<Error>,
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
            range_tombstones: Vec::new(),
            range_tombstone_damage: None,
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

    /// The range tombstones of the table's range-tombstone block, as
    /// written (start, end, sequence number); empty when the table has
    /// none, or when its block is damaged
    /// ([`SalvagedTable::range_tombstone_damage`]).
    pub fn range_tombstones(&self) -> &[RangeTombstone] {
        &self.range_tombstones
    }

    /// Damage of the range-tombstone block (`Corruption` at its offset: a
    /// checksum, structure or count that fails): its tombstones are lost,
    /// and keys they deleted may show again. `None` when the block is
    /// intact or the table has none.
    pub fn range_tombstone_damage(&self) -> Option<&Error> {
        self.range_tombstone_damage.as_ref()
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
        let (stored, kind) = read_stored_block(&self.file, handle, self.data_end, path)?;
        let decoded;
        let contents = if kind == COMPRESSION_NONE {
            stored
        } else {
            decoded = decompress_block(kind, stored)
                .map_err(|what| Error::corruption(path, handle.offset, what))?;
            &decoded[..]
        };
        let view = BlockView::parse(contents).map_err(|c| c.into_error(path, handle.offset))?;
        entries_of(view).map_err(|what| Error::corruption(path, handle.offset, what))
    }

    fn locate(&mut self) {
        let len = self.file.len();
        match Footer::decode(&self.file, &self.path) {
            Ok(footer) => {
                let footer_start = (len - FOOTER_LEN) as u64;
                // Where the data blocks end, or, without properties, the
                // range-tombstone block if there is one.
                let meta_start = footer
                    .filter
                    .iter()
                    .chain([&footer.index, &footer.properties])
                    .map(|h| h.offset)
                    .min()
                    .unwrap_or(footer_start);
                self.data_end = meta_start;
                let props = read_block(&self.file, footer.properties, footer_start, &self.path)
                    .and_then(|c| TableProperties::decode(c, &self.path, footer.properties.offset));
                let props = match props {
                    Ok(props) => {
                        self.db_id = props.db_id;
                        if let Some(h) = props.range_deletion_block {
                            self.data_end = self.data_end.min(h.offset);
                        }
                        Some(props)
                    }
                    Err(e) => {
                        self.problems.push(e);
                        None
                    }
                };
                if let Some(h) = footer.filter {
                    if let Err(e) = read_block(&self.file, h, footer_start, &self.path) {
                        self.problems.push(e);
                    }
                }
                let index = read_block(&self.file, footer.index, footer_start, &self.path)
                    .and_then(|c| Index::parse(c, &self.path, footer.index.offset));
                match (index, &props) {
                    (Ok(index), _) => {
                        self.blocks = (0..index.len()).map(|i| index.handle(i)).collect();
                        self.separators =
                            Some((0..index.len()).map(|i| index.key(i).to_vec()).collect());
                        if props.is_none() {
                            // The range-tombstone block, if any, fills the
                            // bytes between the data blocks and the metadata.
                            let data_end = self
                                .blocks
                                .last()
                                .map_or(0, |h| h.offset + h.size + BLOCK_TRAILER_LEN as u64);
                            if data_end < meta_start {
                                self.data_end = data_end;
                                let h = BlockHandle {
                                    offset: data_end,
                                    size: (meta_start - data_end)
                                        .saturating_sub(BLOCK_TRAILER_LEN as u64),
                                };
                                self.read_range_tombstones(h, None, meta_start);
                            }
                        }
                    }
                    (Err(e), Some(_)) => {
                        self.problems.push(e);
                        let (chain, _) = self.chain(self.data_end);
                        self.blocks = chain;
                    }
                    (Err(e), None) => {
                        // Neither index nor properties: the chain runs up
                        // to the metadata, over the range-tombstone block.
                        self.problems.push(e);
                        let (mut chain, _) = self.chain(self.data_end);
                        if let Some(last) = chain.last().copied() {
                            if self.is_range_tombstone_block(last) {
                                chain.pop();
                                self.data_end = last.offset;
                                self.read_range_tombstones(last, None, meta_start);
                            }
                        }
                        self.blocks = chain;
                    }
                }
                if let Some(h) =
                    props.and_then(|p| p.range_deletion_block.map(|h| (h, p.range_deletion_count)))
                {
                    self.read_range_tombstones(h.0, Some(h.1), footer_start);
                }
            }
            Err(e) => {
                self.problems.push(e);
                let limit = len.saturating_sub(FOOTER_LEN) as u64;
                self.data_end = limit;
                let (chain, reached) = self.chain(limit);
                self.blocks = self.data_prefix(chain, reached == limit, limit);
            }
        }
    }

    /// Reads the range-tombstone block at `h` (bounded by `limit`), checking
    /// its count when the properties give one; damage is kept as
    /// [`SalvagedTable::range_tombstone_damage`].
    fn read_range_tombstones(&mut self, h: BlockHandle, count: Option<u64>, limit: u64) {
        let r = read_block(&self.file, h, limit, &self.path).and_then(|c| match count {
            Some(n) => decode_range_tombstones(c, &self.path, h.offset, n),
            None => decode_range_tombstone_entries(c, &self.path, h.offset),
        });
        match r {
            Ok(t) => self.range_tombstones = t,
            Err(e) => self.range_tombstone_damage = Some(e),
        }
    }

    /// True when the block at `h` decodes as a non-empty range-tombstone
    /// block: every key a range deletion, which no other block holds.
    fn is_range_tombstone_block(&self, h: BlockHandle) -> bool {
        let limit = self.file.len() as u64;
        read_block(&self.file, h, limit, &self.path)
            .and_then(|c| decode_range_tombstone_entries(c, &self.path, h.offset))
            .is_ok_and(|t| !t.is_empty())
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
    /// A range-tombstone block met on the way is read (the properties give
    /// its place and count when they are found; else it is the block after
    /// the data whose keys are all range deletions).
    fn data_prefix(
        &mut self,
        chain: Vec<BlockHandle>,
        whole: bool,
        limit: u64,
    ) -> Vec<BlockHandle> {
        if whole {
            if let Some(last) = chain.last() {
                let contents = read_block(&self.file, *last, self.data_end, &self.path);
                if let Ok(props) =
                    contents.and_then(|c| TableProperties::decode(c, &self.path, last.offset))
                {
                    self.db_id = props.db_id;
                    self.data_end = props.data_size_bytes;
                    if let Some(h) = props.range_deletion_block {
                        self.read_range_tombstones(h, Some(props.range_deletion_count), limit);
                    }
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
        // Whether the chain reached an intact block after the data (so every
        // data block was found, whatever stopped the chain later).
        let mut past_data = false;
        for h in chain {
            if self.is_range_tombstone_block(h) {
                // The data ends here; the tombstones follow it.
                self.read_range_tombstones(h, None, limit);
                past_data = true;
                break;
            }
            if self.looks_like_index(h, &out) {
                past_data = true;
                break;
            }
            let Ok(entries) = self.block_entries(h) else {
                past_data = true;
                break;
            };
            let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
                past_data = true;
                break;
            };
            if let Some(prev) = &last_key {
                if compare_internal_keys(prev, &first.0) != Ordering::Less {
                    past_data = true;
                    break;
                }
            }
            last_key = Some(last.0.clone());
            out.push(h);
        }
        if past_data {
            // The chain stopped in the metadata (a damaged filter, index or
            // properties block): that costs no data.
            if let Some(e) = self.lost.take() {
                self.problems.push(e);
            }
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
/// trailer begins): the first point where the trailer's type byte is a
/// known compression type and its checksum covers the bytes before it.
fn block_end(data: &[u8], start: usize) -> Option<usize> {
    let mut hasher = crc32fast::Hasher::new();
    // A block holds at least its restart count (4 bytes).
    let first = start + 4;
    if first + BLOCK_TRAILER_LEN > data.len() {
        return None;
    }
    hasher.update(&data[start..first]);
    for end in first..=data.len() - BLOCK_TRAILER_LEN {
        let kind = data[end];
        if jkv_format::Compression::type_name(kind).is_some() {
            let mut h = hasher.clone();
            h.update(&[kind]);
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
        match parse_internal_key(key) {
            None => {
                return Err(format!(
                    "entry at block byte {at} has no valid internal key"
                ))
            }
            Some(p) if p.kind == ValueKind::RangeDeletion => {
                return Err(format!(
                    "entry at block byte {at} is a range deletion, which only the range-tombstone block holds"
                ))
            }
            Some(_) => {}
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
        build_with_tombstones(dir, n, bloom_bits_per_key, &[])
    }

    fn tombstones() -> Vec<RangeTombstone> {
        [
            ("key00010", "key00020", 900),
            ("key00100", "key00250", 901),
            ("a", "b", 3),
        ]
        .into_iter()
        .map(|(s, e, seq)| RangeTombstone {
            start: s.as_bytes().to_vec(),
            end: e.as_bytes().to_vec(),
            seq: SeqNo(seq),
        })
        .collect()
    }

    fn build_with_tombstones(
        dir: &Path,
        n: u32,
        bloom_bits_per_key: usize,
        tombstones: &[RangeTombstone],
    ) -> (PathBuf, BlockEntries) {
        let path = dir.join("000001.sst");
        let options = TableOptions {
            block_size_bytes: 256,
            restart_interval: 4,
            bloom_bits_per_key,
            db_id: 77,
            ..TableOptions::default()
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
        for t in tombstones {
            b.add_range_tombstone(t.clone()).unwrap();
        }
        b.finish().unwrap();
        (path, entries)
    }

    /// The tombstones of `t`, sorted as the set orders them.
    fn sorted(mut v: Vec<RangeTombstone>) -> Vec<RangeTombstone> {
        v.sort();
        v
    }

    fn range_del_block(path: &Path) -> BlockHandle {
        let bytes = std::fs::read(path).unwrap();
        let footer = Footer::decode(&bytes, path).unwrap();
        let c = read_block(&bytes, footer.properties, bytes.len() as u64, path).unwrap();
        TableProperties::decode(c, path, footer.properties.offset)
            .unwrap()
            .range_deletion_block
            .expect("a range-tombstone block")
    }

    #[test]
    fn range_tombstones_survive_damaged_metadata() {
        let dir = tempfile::tempdir().unwrap();
        for bloom in [10, 0] {
            let (path, entries) = build_with_tombstones(dir.path(), 300, bloom, &tombstones());
            let intact = std::fs::read(&path).unwrap();
            let footer = Footer::decode(&intact, &path).unwrap();
            let len = intact.len();
            let index = footer.index.offset as usize + 2;
            let props = footer.properties.offset as usize + 1;
            let mut damages = vec![
                ("nothing", vec![]),
                ("index", vec![index]),
                ("properties", vec![props]),
                ("index and properties", vec![index, props]),
                ("footer", vec![len - 10]),
                ("footer magic", vec![len - 2]),
                ("footer and properties", vec![len - 10, props]),
            ];
            if let Some(f) = footer.filter {
                damages.push(("filter", vec![f.offset as usize + 3]));
            }
            for (region, ats) in damages {
                std::fs::write(&path, &intact).unwrap();
                for at in &ats {
                    flip(&path, *at);
                }
                let t = SalvagedTable::open(&StdFs, &path).unwrap();
                assert_eq!(ats.is_empty(), t.problems().is_empty(), "{region}");
                assert!(t.range_tombstone_damage().is_none(), "{region}");
                assert!(t.lost_data().is_none(), "{region}");
                assert_eq!(
                    sorted(t.range_tombstones().to_vec()),
                    sorted(tombstones()),
                    "{region}, bloom {bloom}"
                );
                assert_eq!(read_all(&t), (entries.clone(), 0), "{region}");
            }
        }
    }

    #[test]
    fn a_damaged_range_tombstone_block_is_reported_at_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entries) = build_with_tombstones(dir.path(), 300, 10, &tombstones());
        let intact = std::fs::read(&path).unwrap();
        let h = range_del_block(&path);
        let footer = Footer::decode(&intact, &path).unwrap();
        let props = footer.properties.offset as usize + 1;
        let index = footer.index.offset as usize + 2;
        let at = h.offset as usize + 3;
        // Through the properties, or (properties damaged) as the bytes
        // between the data and the metadata.
        for (what, extra) in [("block", None), ("block and properties", Some(props))] {
            std::fs::write(&path, &intact).unwrap();
            flip(&path, at);
            if let Some(x) = extra {
                flip(&path, x);
            }
            let t = SalvagedTable::open(&StdFs, &path).unwrap();
            match t.range_tombstone_damage() {
                Some(Error::Corruption { offset, .. }) => assert_eq!(*offset, h.offset, "{what}"),
                other => panic!("{what}: {other:?}"),
            }
            assert!(t.range_tombstones().is_empty(), "{what}");
            assert_eq!(read_all(&t), (entries.clone(), 0), "{what}");
        }
        // Without index and properties (or without footer and properties),
        // the chain walk stops at the damaged block: what follows is lost.
        for (what, extra) in [("index", index), ("footer", intact.len() - 10)] {
            std::fs::write(&path, &intact).unwrap();
            flip(&path, at);
            flip(&path, props);
            flip(&path, extra);
            let t = SalvagedTable::open(&StdFs, &path).unwrap();
            match t.lost_data() {
                Some(Error::Corruption { offset, .. }) => assert_eq!(*offset, h.offset, "{what}"),
                other => panic!("{what}: {other:?}"),
            }
            assert_eq!(read_all(&t), (entries.clone(), 0), "{what}");
        }
    }

    #[test]
    fn a_table_of_range_tombstones_only() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = build_with_tombstones(dir.path(), 0, 10, &tombstones());
        let intact = std::fs::read(&path).unwrap();
        let footer = Footer::decode(&intact, &path).unwrap();
        for (what, at) in [
            ("nothing", None),
            ("properties", Some(footer.properties.offset as usize + 1)),
            ("footer", Some(intact.len() - 10)),
        ] {
            std::fs::write(&path, &intact).unwrap();
            if let Some(at) = at {
                flip(&path, at);
            }
            let t = SalvagedTable::open(&StdFs, &path).unwrap();
            assert!(t.data_blocks().is_empty(), "{what}");
            assert_eq!(
                sorted(t.range_tombstones().to_vec()),
                sorted(tombstones()),
                "{what}"
            );
        }
    }

    #[test]
    fn a_range_deletion_in_a_data_block_is_refused() {
        // Data blocks never hold kind 3; the builder refuses it, so a block
        // that does is damage (or the range-tombstone block, on a chain walk).
        let mut b = crate::block::BlockBuilder::new(4);
        let k = InternalKey::new(b"a", SeqNo(5), ValueKind::RangeDeletion).into_vec();
        b.add(&k, b"b");
        let contents = b.finish().to_vec();
        let view = BlockView::parse(&contents).unwrap();
        let e = entries_of(view).unwrap_err();
        assert!(e.contains("range deletion"), "{e}");
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
        // The chain stopped at the damaged properties, after the data:
        // nothing is lost.
        assert!(t.lost_data().is_none(), "{:?}", t.lost_data());
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
