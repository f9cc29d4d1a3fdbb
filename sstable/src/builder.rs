//! Writes a table: data blocks as entries arrive, then the filter, index,
//! properties and footer (docs/sst-format.md, "File layout").
//!
//! The builder refuses (with `InvalidArgument`, writing nothing) any key that
//! is not a valid internal key or not strictly greater than the previous one,
//! so it never writes a table a reader would find out of order. An I/O error
//! poisons the builder: later calls return the same error, and the caller
//! removes the partial file. `finish` syncs the file; making its name durable
//! (fsync of the directory) is the caller's job.
//!
//! Single-threaded: one builder per output file.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jkv_format::key::{
    compare_internal_keys, parse_internal_key, user_key, TRAILER_LEN, USER_KEY_LEN_MAX,
};
use jkv_format::{
    Compression, Error, InternalKey, RangeTombstone, Result, SeqNo, ValueKind, ValuePointer,
    WritableFile,
};

use crate::block::BlockBuilder;
use crate::codec::compress_block;
use crate::filter::FilterBuilder;
use crate::footer::{Footer, FOOTER_LEN, FORMAT_VERSION};
use crate::handle::{block_trailer, BlockHandle, BLOCK_TRAILER_LEN, COMPRESSION_NONE};
use crate::index::separator;
use crate::properties::TableProperties;

/// Largest value the builder accepts (1 GiB), so a block's offsets always
/// fit in 32 bits.
pub const VALUE_LEN_MAX: usize = 1 << 30;
/// Largest `block_size_bytes` accepted (256 MiB).
pub const BLOCK_SIZE_MAX: usize = 256 << 20;
/// Largest `bloom_bits_per_key` accepted.
pub const BLOOM_BITS_PER_KEY_MAX: usize = 64;
/// Restart interval of index blocks.
const INDEX_RESTART_INTERVAL: usize = 16;

/// How tables are laid out. Checked when the builder is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableOptions {
    /// Target size of a data block's contents, in bytes: a block is closed
    /// once it reaches this size. Default 4096; `1..=256 MiB`.
    pub block_size_bytes: usize,
    /// Entries between restart points (full keys) in data blocks. Default
    /// 16; at least 1.
    pub restart_interval: usize,
    /// Bloom filter bits per user key; 0 writes no filter. Default 10
    /// (about 1% false positives); at most 64.
    pub bloom_bits_per_key: usize,
    /// Identity of the database the table is written for, recorded in its
    /// properties so a table copied in from elsewhere is recognised; 0
    /// records none. Default 0.
    pub db_id: u64,
    /// How data blocks are compressed (docs/sst-format.md, "Compressed
    /// blocks"); a block that would not shrink by 1/8 is stored raw.
    /// Metadata blocks are never compressed. Default none.
    pub compression: Compression,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            block_size_bytes: 4096,
            restart_interval: 16,
            bloom_bits_per_key: 10,
            db_id: 0,
            compression: Compression::None,
        }
    }
}

impl TableOptions {
    /// `InvalidArgument` naming the first option out of range.
    pub fn validate(&self) -> Result<()> {
        if !(1..=BLOCK_SIZE_MAX).contains(&self.block_size_bytes) {
            return Err(Error::InvalidArgument(format!(
                "block_size_bytes {} is outside 1..={BLOCK_SIZE_MAX}",
                self.block_size_bytes
            )));
        }
        if self.restart_interval == 0 || self.restart_interval > u32::MAX as usize {
            return Err(Error::InvalidArgument(format!(
                "restart_interval {} must be at least 1",
                self.restart_interval
            )));
        }
        if self.bloom_bits_per_key > BLOOM_BITS_PER_KEY_MAX {
            return Err(Error::InvalidArgument(format!(
                "bloom_bits_per_key {} is above {BLOOM_BITS_PER_KEY_MAX}",
                self.bloom_bits_per_key
            )));
        }
        Ok(())
    }
}

/// What a finished table holds; what the manifest records about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSummary {
    /// Bytes in the file.
    pub file_size: u64,
    /// Number of entries.
    pub entry_count: u64,
    /// Smallest internal key (empty for an empty table).
    pub smallest: Vec<u8>,
    /// Largest internal key (empty for an empty table).
    pub largest: Vec<u8>,
    /// Smallest sequence number (0 for an empty table).
    pub min_seq: SeqNo,
    /// Largest sequence number (0 for an empty table).
    pub max_seq: SeqNo,
    /// Range tombstones written.
    pub range_deletions: u64,
    /// Entries of kind deletion.
    pub deletion_count: u64,
    /// Entries that are older versions of a key with a newer version in
    /// this table.
    pub older_version_count: u64,
}

/// Writes one table file from entries given in increasing internal-key order.
pub struct TableBuilder {
    file: Box<dyn WritableFile>,
    options: TableOptions,
    data_block: BlockBuilder,
    index_block: BlockBuilder,
    filter: Option<FilterBuilder>,
    /// The last flushed data block; its index entry is written when the next
    /// key (or `finish`) shows what separator it can have.
    pending_handle: Option<BlockHandle>,
    last_key: Vec<u8>,
    /// The next index entry's separator key.
    scratch: Vec<u8>,
    /// The next index entry's encoded handle.
    handle_buf: Vec<u8>,
    /// Bytes written so far: where the next block starts.
    offset: u64,
    props: TableProperties,
    /// Range tombstones, written as one block at `finish`.
    range_tombstones: Vec<RangeTombstone>,
    /// Value-log bytes the value pointers added refer to, by file.
    vlog_pointer_bytes: BTreeMap<u64, u64>,
    /// Compressed form of the data block being flushed (reused).
    compressed: Vec<u8>,
    /// The error that poisoned the builder.
    failed: Option<Error>,
}

impl TableBuilder {
    /// A builder writing to `file`, which must be empty. Invalid `options`
    /// make every later call fail with `InvalidArgument`.
    pub fn new(file: Box<dyn WritableFile>, options: TableOptions) -> Self {
        let failed = options.validate().err();
        let restart_interval = options.restart_interval.max(1);
        let filter = (options.bloom_bits_per_key > 0)
            .then(|| FilterBuilder::new(options.bloom_bits_per_key));
        let compression = if options.compression.is_compressed() {
            options.compression.to_string()
        } else {
            String::new()
        };
        let props = TableProperties {
            bloom_bits_per_key: options.bloom_bits_per_key as u64,
            db_id: options.db_id,
            compression,
            min_seq: SeqNo::MAX,
            ..TableProperties::default()
        };
        TableBuilder {
            offset: file.len(),
            file,
            data_block: BlockBuilder::new(restart_interval),
            index_block: BlockBuilder::new(INDEX_RESTART_INTERVAL),
            filter,
            pending_handle: None,
            last_key: Vec::new(),
            scratch: Vec::new(),
            handle_buf: Vec::new(),
            props,
            range_tombstones: Vec::new(),
            vlog_pointer_bytes: BTreeMap::new(),
            compressed: Vec::new(),
            failed,
            options,
        }
    }

    /// Appends an entry. `ikey` must be a valid internal key strictly greater
    /// (in internal-key order) than the previous one, with a user key of at
    /// most 64 KiB - 1; `value` at most 1 GiB. A refused entry changes
    /// nothing (`InvalidArgument`); a failed write poisons the builder.
    pub fn add(&mut self, ikey: &[u8], value: &[u8]) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(parsed) = parse_internal_key(ikey).filter(|p| p.kind != ValueKind::RangeDeletion)
        else {
            return Err(Error::InvalidArgument(format!(
                "table key of {} bytes is not an internal key (too short or unknown kind)",
                ikey.len()
            )));
        };
        if ikey.len() > USER_KEY_LEN_MAX + TRAILER_LEN {
            return Err(Error::InvalidArgument(format!(
                "user key of {} bytes is longer than {USER_KEY_LEN_MAX}",
                ikey.len() - TRAILER_LEN
            )));
        }
        if value.len() > VALUE_LEN_MAX {
            return Err(Error::InvalidArgument(format!(
                "value of {} bytes is longer than {VALUE_LEN_MAX}",
                value.len()
            )));
        }
        let first = self.props.entry_count == 0;
        if !first && compare_internal_keys(&self.last_key, ikey) != Ordering::Less {
            return Err(Error::InvalidArgument(format!(
                "table keys out of order: {:?} after {:?}",
                jkv_format::InternalKey::from_encoded(ikey.to_vec()),
                jkv_format::InternalKey::from_encoded(self.last_key.clone()),
            )));
        }

        if let Some(handle) = self.pending_handle.take() {
            separator(&self.last_key, ikey, &mut self.scratch);
            self.add_index_entry(handle);
        }
        let new_user_key = first || user_key(&self.last_key) != parsed.user_key;
        if let Some(filter) = &mut self.filter {
            if new_user_key {
                filter.add_key(parsed.user_key);
            }
        }
        if !new_user_key {
            self.props.older_version_count += 1;
        }
        self.data_block.add(ikey, value);

        let p = &mut self.props;
        if first {
            p.smallest = ikey.to_vec();
        }
        p.entry_count += 1;
        if parsed.kind == ValueKind::Deletion {
            p.deletion_count += 1;
        }
        if parsed.kind == ValueKind::ValuePointer {
            // A malformed pointer is the engine's to report when read.
            if let Some(pointer) = ValuePointer::decode(value) {
                *self.vlog_pointer_bytes.entry(pointer.file.0).or_insert(0) +=
                    u64::from(pointer.len);
            }
        }
        p.min_seq = p.min_seq.min(parsed.seq);
        p.max_seq = p.max_seq.max(parsed.seq);
        p.raw_key_bytes += ikey.len() as u64;
        p.raw_value_bytes += value.len() as u64;
        self.last_key.clear();
        self.last_key.extend_from_slice(ikey);

        if self.data_block.estimated_size_bytes() >= self.options.block_size_bytes {
            self.flush_data_block()?;
        }
        Ok(())
    }

    /// Bytes the file would have if finished now (close to it: the filter,
    /// index and properties are estimated).
    pub fn estimated_size_bytes(&self) -> u64 {
        let filter = self
            .filter
            .as_ref()
            .map_or(0, |f| f.estimated_size_bytes() + BLOCK_TRAILER_LEN);
        self.offset
            + (self.data_block.estimated_size_bytes()
                + self.index_block.estimated_size_bytes()
                + filter
                + FOOTER_LEN) as u64
    }

    /// Entries added so far.
    pub fn entry_count(&self) -> u64 {
        self.props.entry_count
    }

    /// Writes the rest of the table and syncs the file. The caller then
    /// syncs the directory before any manifest names the table.
    pub fn finish(mut self) -> Result<TableSummary> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        if !self.data_block.is_empty() {
            self.flush_data_block()?;
        }
        if let Some(handle) = self.pending_handle.take() {
            self.scratch.clear();
            self.scratch.extend_from_slice(&self.last_key);
            self.add_index_entry(handle);
        }
        let data_end = self.offset;
        self.props.data_size_bytes = data_end;
        let range_tombstones = std::mem::take(&mut self.range_tombstones);
        if !range_tombstones.is_empty() {
            let h = self.write_range_tombstones(&range_tombstones)?;
            self.props.range_deletion_count = range_tombstones.len() as u64;
            self.props.range_deletion_block = Some(h);
        }

        let filter = match self.filter.take() {
            Some(f) => {
                let contents = f.finish();
                let h = self.write_block(&contents)?;
                self.props.filter_size_bytes = h.size + BLOCK_TRAILER_LEN as u64;
                Some(h)
            }
            None => None,
        };

        let index = write_framed(&mut *self.file, &mut self.offset, self.index_block.finish())?;
        self.props.index_size_bytes = index.size + BLOCK_TRAILER_LEN as u64;

        if self.props.entry_count == 0 {
            self.props.min_seq = SeqNo::ZERO;
        }
        self.props.largest = self.last_key.clone();
        self.widen_for_range_tombstones(&range_tombstones);
        self.props.vlog_pointer_bytes = std::mem::take(&mut self.vlog_pointer_bytes)
            .into_iter()
            .collect();
        let properties = self.write_block(&self.props.encode())?;

        let footer = Footer {
            filter,
            index,
            properties,
            version: FORMAT_VERSION,
        };
        self.append(&footer.encode())?;
        self.file.sync()?;
        Ok(TableSummary {
            file_size: self.offset,
            entry_count: self.props.entry_count,
            smallest: std::mem::take(&mut self.props.smallest),
            largest: std::mem::take(&mut self.props.largest),
            min_seq: self.props.min_seq,
            max_seq: self.props.max_seq,
            range_deletions: self.props.range_deletion_count,
            deletion_count: self.props.deletion_count,
            older_version_count: self.props.older_version_count,
        })
    }

    /// Adds a range tombstone (any order, any number; empty ranges are
    /// refused). The table's key range grows to include it, so a compaction
    /// of the table takes in every table the tombstone may delete from.
    pub fn add_range_tombstone(&mut self, tombstone: RangeTombstone) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if tombstone.start >= tombstone.end {
            return Err(Error::InvalidArgument(
                "range tombstone with start not below end".to_string(),
            ));
        }
        if tombstone.start.len().max(tombstone.end.len()) > USER_KEY_LEN_MAX {
            return Err(Error::InvalidArgument(format!(
                "range tombstone key longer than {USER_KEY_LEN_MAX}"
            )));
        }
        self.range_tombstones.push(tombstone);
        Ok(())
    }

    /// Range tombstones added so far.
    pub fn range_tombstone_count(&self) -> usize {
        self.range_tombstones.len()
    }

    /// The range-tombstone block (docs/sst-format.md, "Range-tombstone
    /// block"): key `start ++ trailer(seq, RangeDeletion)`, value `end`, in
    /// internal-key order.
    fn write_range_tombstones(&mut self, tombstones: &[RangeTombstone]) -> Result<BlockHandle> {
        let mut entries: Vec<(Vec<u8>, &[u8])> = tombstones
            .iter()
            .map(|t| {
                let key = InternalKey::new(&t.start, t.seq, ValueKind::RangeDeletion);
                (key.into_vec(), t.end.as_slice())
            })
            .collect();
        entries.sort_by(|a, b| compare_internal_keys(&a.0, &b.0).then_with(|| a.1.cmp(b.1)));
        let mut block = BlockBuilder::new(INDEX_RESTART_INTERVAL);
        for (key, end) in &entries {
            block.add(key, end);
        }
        let contents = block.finish().to_vec();
        self.write_block(&contents)
    }

    /// Grows the key range and sequence range by the range tombstones.
    fn widen_for_range_tombstones(&mut self, tombstones: &[RangeTombstone]) {
        widen_for_range_tombstones(&mut self.props, tombstones);
    }

    fn add_index_entry(&mut self, handle: BlockHandle) {
        self.handle_buf.clear();
        handle.encode_to(&mut self.handle_buf);
        self.index_block.add(&self.scratch, &self.handle_buf);
    }

    fn flush_data_block(&mut self) -> Result<()> {
        let contents = self.data_block.finish();
        let raw_len = (contents.len() + BLOCK_TRAILER_LEN) as u64;
        let handle = match compress_block(contents, self.options.compression, &mut self.compressed)
        {
            Some(kind) => {
                self.props.compressed_block_count += 1;
                write_framed_as(&mut *self.file, &mut self.offset, &self.compressed, kind)
            }
            None => write_framed(&mut *self.file, &mut self.offset, contents),
        };
        let handle = self.poison_on_err(handle)?;
        if self.options.compression.is_compressed() {
            self.props.data_raw_bytes += raw_len;
        }
        self.data_block.reset();
        self.pending_handle = Some(handle);
        self.props.data_block_count += 1;
        Ok(())
    }

    fn write_block(&mut self, contents: &[u8]) -> Result<BlockHandle> {
        let r = write_framed(&mut *self.file, &mut self.offset, contents);
        self.poison_on_err(r)
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let r = self.file.append(bytes);
        self.offset += bytes.len() as u64;
        self.poison_on_err(r)
    }

    fn poison_on_err<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }
}

/// Appends `contents` (stored raw) and its trailer at `*offset`, advancing
/// it.
fn write_framed(
    file: &mut dyn WritableFile,
    offset: &mut u64,
    contents: &[u8],
) -> Result<BlockHandle> {
    write_framed_as(file, offset, contents, COMPRESSION_NONE)
}

/// Appends stored `contents` and its trailer with compression type `kind`
/// at `*offset`, advancing it.
fn write_framed_as(
    file: &mut dyn WritableFile,
    offset: &mut u64,
    contents: &[u8],
    kind: u8,
) -> Result<BlockHandle> {
    let handle = BlockHandle {
        offset: *offset,
        size: contents.len() as u64,
    };
    file.append(contents)?;
    file.append(&block_trailer(contents, kind))?;
    *offset += (contents.len() + BLOCK_TRAILER_LEN) as u64;
    Ok(handle)
}

/// Grows the properties' key range (`smallest`, `largest`) and sequence
/// range by `tombstones`: the start as `start ++ trailer(seq,
/// RangeDeletion)`, the end as the largest user key the tombstone may delete
/// with trailer `(0, RangeDeletion)`, sorting after every entry of that key.
pub(crate) fn widen_for_range_tombstones(p: &mut TableProperties, tombstones: &[RangeTombstone]) {
    if p.entry_count == 0 && !tombstones.is_empty() {
        p.min_seq = SeqNo::MAX;
    }
    for t in tombstones {
        let start = InternalKey::new(&t.start, t.seq, ValueKind::RangeDeletion).into_vec();
        if p.smallest.is_empty() || compare_internal_keys(&start, &p.smallest) == Ordering::Less {
            p.smallest = start;
        }
        let end = InternalKey::new(t.largest_user_key(), SeqNo::ZERO, ValueKind::RangeDeletion)
            .into_vec();
        if p.largest.is_empty() || compare_internal_keys(&end, &p.largest) == Ordering::Greater {
            p.largest = end;
        }
        p.min_seq = p.min_seq.min(t.seq);
        p.max_seq = p.max_seq.max(t.seq);
    }
}
