//! Walking one value-log file from its header to its end, for garbage
//! collection (which rewrites the live entries) and `jkv check`.
//!
//! [`VlogIter`] checks the header first, then yields every entry in file
//! order, each verified, as zero-copy slices of the file's map. It applies
//! the torn-tail rule of docs/vlog-format.md ("Reading, torn tails and
//! corruption"): damage after which no valid entry starts is a torn tail,
//! which ends the iteration without an error and is reported by
//! [`VlogIter::torn_tail_at`]; damage followed by a valid entry is
//! `Corruption` at the damaged entry's offset, yielded once, after which the
//! iteration ends.
//!
//! Threads: an iterator belongs to one thread (`Send`); it maps the file
//! once, so entries appended after [`VlogIter::open`] are not seen.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use jkv_format::names::vlog_path;
use jkv_format::{Error, FileNumber, FileSystem, Result, SeqNo, ValuePointer};

use crate::entry::{decode_at, valid_entry_from};
use crate::header::{self, HeaderError, HEADER_LEN};

/// One verified entry of a value log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlogEntry {
    /// Where the entry is; resolving it with a `VlogReader` gives `value`.
    pub pointer: ValuePointer,
    /// The sequence number the entry was written with.
    pub seq: SeqNo,
    /// The key, a slice of the file's map.
    pub key: Bytes,
    /// The value, a slice of the file's map.
    pub value: Bytes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header,
    Entries,
    Done,
}

/// Iterates the entries of one `.vlog` file in order; see the module
/// documentation for how it ends.
#[derive(Debug)]
pub struct VlogIter {
    path: PathBuf,
    number: FileNumber,
    data: Bytes,
    /// Offset of the next entry.
    pos: usize,
    state: State,
    torn_tail_at: Option<u64>,
}

impl VlogIter {
    /// Maps `dir/NNNNNN.vlog` for `number` as it is now and iterates it.
    /// Only mapping errors are returned here; everything about the contents
    /// comes from the iteration.
    pub fn open(fs: &dyn FileSystem, dir: &Path, number: FileNumber) -> Result<VlogIter> {
        let path = vlog_path(dir, number);
        let data = fs.map(&path)?;
        Ok(VlogIter::new(path, number, data))
    }

    /// Iterates `data`, the contents of file `number` at `path` (the path is
    /// used in errors only).
    pub fn new(path: PathBuf, number: FileNumber, data: Bytes) -> VlogIter {
        VlogIter {
            path,
            number,
            data,
            pos: 0,
            state: State::Header,
            torn_tail_at: None,
        }
    }

    /// Offset of the torn tail once the iteration has ended on one: the
    /// first byte not belonging to a complete, valid entry (0 when the
    /// header itself is torn). `None` while iterating, after a clean end and
    /// after `Corruption`.
    pub fn torn_tail_at(&self) -> Option<u64> {
        self.torn_tail_at
    }

    /// Length in bytes of the data iterated.
    pub fn data_len(&self) -> u64 {
        self.data.len() as u64
    }

    fn corruption(&mut self, offset: u64, what: String) -> Option<Result<VlogEntry>> {
        self.state = State::Done;
        Some(Err(Error::corruption(&self.path, offset, what)))
    }

    fn torn(&mut self, offset: u64) -> Option<Result<VlogEntry>> {
        self.state = State::Done;
        self.torn_tail_at = Some(offset);
        None
    }

    fn next_header(&mut self) -> Option<Result<VlogEntry>> {
        match header::check(&self.data, self.number) {
            Ok(()) => {
                self.pos = HEADER_LEN;
                self.state = State::Entries;
                self.next_entry()
            }
            Err(HeaderError::Short { .. }) => self.torn(0),
            Err(bad @ HeaderError::Damaged { .. }) => {
                if valid_entry_from(&self.data, HEADER_LEN) {
                    let what = format!("{}, and valid entries follow", bad.what());
                    self.corruption(bad.offset(), what)
                } else {
                    self.torn(0)
                }
            }
            Err(bad @ HeaderError::Refused { .. }) => self.corruption(bad.offset(), bad.what()),
        }
    }

    fn next_entry(&mut self) -> Option<Result<VlogEntry>> {
        let at = self.pos;
        if at >= self.data.len() {
            self.state = State::Done;
            return None;
        }
        match decode_at(&self.data, at) {
            Ok(view) => {
                self.pos = at + view.len;
                Some(Ok(VlogEntry {
                    pointer: ValuePointer {
                        file: self.number,
                        offset: at as u64,
                        // Fits: decode_at bounds an entry by ENTRY_LEN_MAX <= u32::MAX.
                        len: view.len as u32,
                    },
                    seq: view.seq,
                    key: self.data.slice(view.key),
                    value: self.data.slice(view.value),
                }))
            }
            Err(damage) => {
                if valid_entry_from(&self.data, at + 1) {
                    self.corruption(at as u64, format!("{damage}, and valid entries follow"))
                } else {
                    self.torn(at as u64)
                }
            }
        }
    }
}

impl Iterator for VlogIter {
    type Item = Result<VlogEntry>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.state {
            State::Header => self.next_header(),
            State::Entries => self.next_entry(),
            State::Done => None,
        }
    }
}

/// Every entry of a file, and where its torn tail starts if it has one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VlogScan {
    /// The valid entries, in file order.
    pub entries: Vec<VlogEntry>,
    /// Offset of the torn tail, if the file ends in one.
    pub torn_tail_at: Option<u64>,
}

/// Reads every entry of `dir/NNNNNN.vlog` (file `number`). Errors: `Io` when
/// the file cannot be mapped, the first `Corruption` found.
pub fn scan(fs: &dyn FileSystem, dir: &Path, number: FileNumber) -> Result<VlogScan> {
    let mut iter = VlogIter::open(fs, dir, number)?;
    let entries = iter.by_ref().collect::<Result<Vec<_>>>()?;
    Ok(VlogScan {
        entries,
        torn_tail_at: iter.torn_tail_at(),
    })
}
