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
