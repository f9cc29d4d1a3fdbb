//! Whole-file check of one value log for `jkv check`: the header and every
//! entry, with the torn-tail rule of docs/vlog-format.md. Reads the file
//! through a fresh map (never a reader's cache). Runs on the calling thread.

use std::path::{Path, PathBuf};

use jkv_format::names::{parse_file_name, FileKind};
use jkv_format::{Error, FileSystem, Result, SeqNo};

use crate::iter::VlogIter;

/// What [`verify`] found in one file.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    /// The file checked.
    pub path: PathBuf,
    /// Size of the file in bytes.
    pub size_bytes: u64,
    /// Valid entries before the end, the torn tail or the corruption.
    pub entries: u64,
    /// Sum of the key lengths of those entries, in bytes.
    pub key_bytes: u64,
    /// Sum of the value lengths of those entries, in bytes.
    pub value_bytes: u64,
    /// Smallest sequence number among those entries.
    pub seq_min: Option<SeqNo>,
    /// Largest sequence number among those entries.
    pub seq_max: Option<SeqNo>,
    /// Offset of a torn tail: bytes of an append that never completed. Not
    /// an error by itself (no acknowledged write can have used them).
    pub torn_tail_at: Option<u64>,
    /// The first `Corruption` found; checking stops there.
    pub corruption: Option<Error>,
}

impl VerifyReport {
    /// True when nothing is corrupt (a torn tail is allowed).
    pub fn is_ok(&self) -> bool {
        self.corruption.is_none()
    }
}

/// Checks the value log at `path`, whose name must be `NNNNNN.vlog` (the
/// number is checked against the header). Returns `Err` only when the file
/// cannot be read (`Io`) or its name is not a value-log name
/// (`InvalidArgument`); damage is reported in [`VerifyReport::corruption`].
pub fn verify(fs: &dyn FileSystem, path: &Path) -> Result<VerifyReport> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let Some(FileKind::ValueLog(number)) = parse_file_name(name) else {
        return Err(Error::InvalidArgument(format!(
            "{} is not named like a value log (NNNNNN.vlog)",
            path.display()
        )));
    };
    let data = fs.map(path)?;
    let mut report = VerifyReport {
        path: path.to_path_buf(),
        size_bytes: data.len() as u64,
        entries: 0,
        key_bytes: 0,
        value_bytes: 0,
        seq_min: None,
        seq_max: None,
        torn_tail_at: None,
        corruption: None,
    };
    let mut iter = VlogIter::new(path.to_path_buf(), number, data);
    for item in iter.by_ref() {
        match item {
            Ok(entry) => {
                report.entries += 1;
                report.key_bytes += entry.key.len() as u64;
                report.value_bytes += entry.value.len() as u64;
                report.seq_min = Some(report.seq_min.map_or(entry.seq, |s| s.min(entry.seq)));
                report.seq_max = Some(report.seq_max.map_or(entry.seq, |s| s.max(entry.seq)));
            }
            Err(e) => {
                report.corruption = Some(e);
                break;
            }
        }
    }
    report.torn_tail_at = iter.torn_tail_at();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use jkv_format::StdFs;

    use super::*;
    use crate::header::HEADER_LEN;
    use crate::test_support::{many, Fixture};

    #[test]
    fn clean_file() {
        let f = Fixture::new(8, many(50));
        let report = verify(&StdFs, &f.path()).unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.entries, 50);
        assert_eq!(report.torn_tail_at, None);
        assert_eq!(report.seq_min, Some(SeqNo(100)));
        assert_eq!(report.seq_max, Some(SeqNo(149)));
        let keys: u64 = f.specs.iter().map(|(k, _, _)| k.len() as u64).sum();
        let values: u64 = f.specs.iter().map(|(_, v, _)| v.len() as u64).sum();
        assert_eq!((report.key_bytes, report.value_bytes), (keys, values));
        assert_eq!(
            report.size_bytes,
            std::fs::metadata(f.path()).unwrap().len()
        );
    }

    #[test]
    fn bad_names_and_missing_files() {
        let f = Fixture::small();
        let other = f.dir.path().join("notes.txt");
        std::fs::write(&other, b"x").unwrap();
        assert!(matches!(
            verify(&StdFs, &other),
            Err(Error::InvalidArgument(_))
        ));
        let missing = f.dir.path().join("000099.vlog");
        assert!(matches!(verify(&StdFs, &missing), Err(Error::Io { .. })));
    }

    #[test]
    fn renamed_file_is_corrupt() {
        let f = Fixture::small();
        let moved = f.dir.path().join("000010.vlog");
        std::fs::rename(f.path(), &moved).unwrap();
        let report = verify(&StdFs, &moved).unwrap();
        assert!(matches!(
            report.corruption,
            Some(Error::Corruption { offset: 12, .. })
        ));
    }

    #[test]
    fn bit_flip_at_every_byte() {
        let f = Fixture::small();
        let clean = f.bytes();
        let last = f.pointers[2].offset;
        for i in 0..clean.len() {
            let mut data = clean.clone();
            data[i] ^= 1 << (i % 8);
            std::fs::write(f.path(), &data).unwrap();
            let report = verify(&StdFs, &f.path()).unwrap();
            if i as u64 >= last {
                assert!(report.is_ok(), "flip at {i}: {report:?}");
                assert_eq!(report.torn_tail_at, Some(last));
                assert_eq!(report.entries, 2);
            } else {
                match &report.corruption {
                    Some(Error::Corruption { offset, .. }) => {
                        let entry_start = f
                            .pointers
                            .iter()
                            .map(|p| p.offset)
                            .filter(|&at| at <= i as u64)
                            .max()
                            .unwrap_or(0);
                        if i < HEADER_LEN {
                            assert!(*offset < HEADER_LEN as u64, "flip at {i}: at {offset}");
                        } else {
                            assert_eq!(*offset, entry_start, "flip at {i}");
                        }
                    }
                    other => panic!("flip at {i}: {other:?}"),
                }
                assert!(!report.is_ok());
            }
        }
    }

    #[test]
    fn truncation_at_every_point() {
        let f = Fixture::small();
        let clean = f.bytes();
        let ends: Vec<u64> = f
            .pointers
            .iter()
            .map(|p| p.offset + u64::from(p.len))
            .collect();
        for cut in 0..=clean.len() {
            std::fs::write(f.path(), &clean[..cut]).unwrap();
            let report = verify(&StdFs, &f.path()).unwrap();
            assert!(report.is_ok(), "cut at {cut}: {report:?}");
            let clean_cut = cut == HEADER_LEN || ends.contains(&(cut as u64));
            assert_eq!(report.torn_tail_at.is_none(), clean_cut, "cut at {cut}");
        }
    }
}
