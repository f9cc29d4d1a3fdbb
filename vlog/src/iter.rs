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

use crate::codec::decompress_value;
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
    /// The value: a slice of the file's map, or decoded when it was stored
    /// compressed.
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
                let value = if view.compressed {
                    match decompress_value(&self.data[view.value.clone()]) {
                        Ok(v) => Bytes::from(v),
                        Err(what) => return self.corruption(at as u64, what),
                    }
                } else {
                    self.data.slice(view.value)
                };
                Some(Ok(VlogEntry {
                    pointer: ValuePointer {
                        file: self.number,
                        offset: at as u64,
                        // Fits: decode_at bounds an entry by ENTRY_LEN_MAX <= u32::MAX.
                        len: view.len as u32,
                    },
                    seq: view.seq,
                    key: self.data.slice(view.key),
                    value,
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

#[cfg(test)]
mod tests {
    use jkv_format::StdFs;
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::{many, Fixture};

    fn iter_over(f: &Fixture, data: &[u8]) -> VlogIter {
        VlogIter::new(f.path(), f.number, Bytes::copy_from_slice(data))
    }

    fn assert_matches_fixture(f: &Fixture, entries: &[VlogEntry]) {
        for (i, e) in entries.iter().enumerate() {
            let (k, v, s) = &f.specs[i];
            assert_eq!(e.pointer, f.pointers[i], "entry {i}");
            assert_eq!(
                (&e.key[..], &e.value[..], e.seq),
                (&k[..], &v[..], SeqNo(*s))
            );
        }
    }

    #[test]
    fn round_trip_many_empty_and_large() {
        let mut specs = many(1000);
        specs.insert(0, (b"empty".to_vec(), Vec::new(), 1));
        specs.push((b"mib".to_vec(), (0..1 << 20).map(|i| i as u8).collect(), 2));
        specs.push((Vec::new(), b"empty key".to_vec(), 3));
        let f = Fixture::new(12, specs);
        let got = scan(&StdFs, f.dir.path(), f.number).unwrap();
        assert_eq!(got.torn_tail_at, None);
        assert_eq!(got.entries.len(), f.specs.len());
        assert_matches_fixture(&f, &got.entries);
    }

    #[test]
    fn header_only_file_is_empty() {
        let f = Fixture::new(2, Vec::new());
        let mut iter = VlogIter::open(&StdFs, f.dir.path(), f.number).unwrap();
        assert!(iter.next().is_none());
        assert!(iter.next().is_none());
        assert_eq!(iter.torn_tail_at(), None);
        assert_eq!(iter.data_len(), HEADER_LEN as u64);
    }

    /// Cutting the file at every byte gives the complete entries before the
    /// cut and a torn tail at the first incomplete one, never an error.
    #[test]
    fn truncation_at_every_point_is_a_torn_tail() {
        let f = Fixture::small();
        let data = f.bytes();
        for cut in 0..=data.len() {
            let mut iter = iter_over(&f, &data[..cut]);
            let entries: Vec<VlogEntry> = iter
                .by_ref()
                .collect::<Result<_>>()
                .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_matches_fixture(&f, &entries);
            let complete = f
                .pointers
                .iter()
                .filter(|p| p.offset + u64::from(p.len) <= cut as u64)
                .count();
            assert_eq!(entries.len(), complete, "cut at {cut}");
            let expected_tail = if cut < HEADER_LEN {
                Some(0)
            } else {
                f.pointers
                    .get(complete)
                    .map(|p| p.offset)
                    .filter(|&at| at < cut as u64)
            };
            assert_eq!(iter.torn_tail_at(), expected_tail, "cut at {cut}");
        }
    }

    #[test]
    fn zeroed_tail_is_a_torn_tail() {
        let f = Fixture::small();
        let mut data = f.bytes();
        let end = data.len() as u64;
        data.extend_from_slice(&[0u8; 4096]);
        let mut iter = iter_over(&f, &data);
        assert_eq!(iter.by_ref().filter(|e| e.is_ok()).count(), 3);
        assert_eq!(iter.torn_tail_at(), Some(end));
    }

    /// A flipped bit in the header or in any entry but the last is
    /// `Corruption` at that entry (valid entries follow it); in the last
    /// entry it is indistinguishable from a torn write and ends the
    /// iteration as a torn tail. No wrong entry is ever yielded.
    #[test]
    fn bit_flip_at_every_byte() {
        let f = Fixture::small();
        let clean = f.bytes();
        let last = f.pointers[2];
        for i in 0..clean.len() {
            for bit in 0..8 {
                let mut data = clean.clone();
                data[i] ^= 1 << bit;
                let mut iter = iter_over(&f, &data);
                let mut entries = Vec::new();
                let mut error = None;
                for item in iter.by_ref() {
                    match item {
                        Ok(e) => entries.push(e),
                        Err(e) => {
                            assert!(error.is_none(), "two errors");
                            error = Some(e);
                        }
                    }
                }
                assert_matches_fixture(&f, &entries);
                let what = format!("flip at {i} bit {bit}");
                if i as u64 >= last.offset {
                    assert!(error.is_none(), "{what}: {error:?}");
                    assert_eq!(entries.len(), 2, "{what}");
                    assert_eq!(iter.torn_tail_at(), Some(last.offset), "{what}");
                } else {
                    let Some(Error::Corruption { offset, file, .. }) = error else {
                        panic!("{what}: expected Corruption, got {error:?}");
                    };
                    assert_eq!(file, f.path());
                    assert_eq!(iter.torn_tail_at(), None);
                    if i < HEADER_LEN {
                        assert!(offset < HEADER_LEN as u64, "{what}: at {offset}");
                        assert!(entries.is_empty());
                    } else {
                        let hit = f
                            .pointers
                            .iter()
                            .position(|p| {
                                p.offset <= i as u64 && (i as u64) < p.offset + u64::from(p.len)
                            })
                            .expect("flip is inside an entry");
                        assert_eq!(offset, f.pointers[hit].offset, "{what}");
                        assert_eq!(entries.len(), hit, "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn header_of_another_file_or_newer_version_is_refused() {
        let f = Fixture::small();
        let data = f.bytes();
        let mut iter = VlogIter::new(f.path(), FileNumber(4), Bytes::from(data.clone()));
        assert!(matches!(
            iter.next(),
            Some(Err(Error::Corruption { offset: 12, .. }))
        ));
        assert!(iter.next().is_none());

        let mut newer = data.clone();
        newer[8..12].copy_from_slice(&(crate::FORMAT_VERSION + 1).to_le_bytes());
        let mut iter = iter_over(&f, &newer);
        match iter.next() {
            Some(Err(Error::Corruption {
                offset: 8, what, ..
            })) => assert!(what.contains("newer")),
            other => panic!("{other:?}"),
        }

        let mut other_kind = data;
        other_kind[..8].copy_from_slice(b"SQLite f");
        other_kind.truncate(HEADER_LEN);
        assert!(matches!(
            iter_over(&f, &other_kind).next(),
            Some(Err(Error::Corruption { offset: 0, .. }))
        ));
    }

    #[test]
    fn torn_header_is_a_torn_tail() {
        let f = Fixture::small();
        for data in [
            vec![],
            vec![0u8; HEADER_LEN],
            vec![0u8; 100],
            f.bytes()[..10].to_vec(),
        ] {
            let mut iter = iter_over(&f, &data);
            assert!(iter.next().is_none());
            assert_eq!(iter.torn_tail_at(), Some(0), "{data:?}");
        }
    }

    #[test]
    fn garbage_between_entries_is_corruption() {
        let f = Fixture::small();
        let mut data = f.bytes();
        let at = f.pointers[1].offset as usize;
        data.splice(at..at, [0xEEu8; 5]);
        let items: Vec<_> = iter_over(&f, &data).collect();
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(matches!(&items[1], Err(Error::Corruption { offset, .. }) if *offset == at as u64));
    }

    fn header_then(rest: &[u8]) -> Vec<u8> {
        let mut data = crate::header::encode(FileNumber(3)).to_vec();
        data.extend_from_slice(rest);
        data
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            for bytes in [data.clone(), header_then(&data)] {
                let mut iter = VlogIter::new("x/000003.vlog".into(), FileNumber(3), Bytes::from(bytes));
                let mut errors = 0;
                for item in iter.by_ref() {
                    if let Err(e) = item {
                        prop_assert!(e.is_corruption());
                        errors += 1;
                    }
                }
                prop_assert!(errors <= 1);
                prop_assert!(errors == 0 || iter.torn_tail_at().is_none());
            }
        }

        #[test]
        fn damaged_files_yield_only_written_entries(
            flips in proptest::collection::vec((any::<usize>(), 1u8..), 1..4),
            cut in any::<usize>(),
        ) {
            let f = Fixture::small();
            let mut data = f.bytes();
            for (at, mask) in flips {
                let len = data.len();
                data[at % len] ^= mask;
            }
            data.truncate(cut % (data.len() + 1));
            for item in iter_over(&f, &data).flatten() {
                let i = f.pointers.iter().position(|p| *p == item.pointer);
                prop_assert!(i.is_some(), "unknown entry {:?}", item.pointer);
                let (k, v, s) = &f.specs[i.unwrap_or_default()];
                prop_assert_eq!((&item.key[..], &item.value[..], item.seq), (&k[..], &v[..], SeqNo(*s)));
            }
        }
    }
}
