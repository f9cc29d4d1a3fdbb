//! Reading a manifest file back: the strict replay used at open, the record
//! listing of `jkv manifest-dump`, and the exhaustive check of `jkv check`.
//!
//! Rules (docs/manifest-format.md, "Reading"): lines are split at `\n`. A
//! last line that has no newline, or whose framing is damaged, is a torn
//! append and is ignored. Any other bad line is corruption: the file, the
//! byte offset of the line's start, and what was wrong.
//!
//! No state is shared; every function reads the file once into memory.

use std::path::{Path, PathBuf};

use jkv_format::names::MANIFEST;
use jkv_format::{Error, FileSystem, Result};

use crate::record::{decode_line, LineError, Record};
use crate::state::ManifestState;

/// One line of the file, without its newline.
struct RawLine<'a> {
    /// Byte offset of the line's first byte.
    offset: u64,
    bytes: &'a [u8],
    /// False for a last line that the file ends in the middle of.
    terminated: bool,
}

impl RawLine<'_> {
    /// Offset just past the line and its newline.
    fn end(&self) -> u64 {
        self.offset + self.bytes.len() as u64 + u64::from(self.terminated)
    }
}

fn split_lines(data: &[u8]) -> Vec<RawLine<'_>> {
    let mut lines = Vec::new();
    let mut start = 0usize;
    while start < data.len() {
        match data[start..].iter().position(|&b| b == b'\n') {
            Some(len) => {
                lines.push(RawLine {
                    offset: start as u64,
                    bytes: &data[start..start + len],
                    terminated: true,
                });
                start += len + 1;
            }
            None => {
                lines.push(RawLine {
                    offset: start as u64,
                    bytes: &data[start..],
                    terminated: false,
                });
                start = data.len();
            }
        }
    }
    lines
}

/// Reads the whole of `path` into memory.
pub(crate) fn read_file(fs: &dyn FileSystem, path: &Path) -> Result<Vec<u8>> {
    let size = fs.file_size(path)?;
    let len = usize::try_from(size).map_err(|_| {
        Error::corruption(
            path,
            0,
            format!("manifest of {size} bytes does not fit in memory"),
        )
    })?;
    fs.read_at(path, 0, len)
}

/// Where a strict scan stopped.
pub(crate) struct ScanEnd {
    /// End of the last good line: the length the file is cut to.
    pub(crate) valid_len: u64,
    /// Offset of a torn last line that was ignored, if any.
    pub(crate) torn_at: Option<u64>,
}

/// Decodes every line, calling `on_record` for each good one in order. A
/// torn last line ends the scan; any other bad line, or an error from
/// `on_record`, is returned as corruption at the line's offset.
fn scan_strict(
    path: &Path,
    data: &[u8],
    mut on_record: impl FnMut(u64, usize, Record) -> std::result::Result<(), String>,
) -> Result<ScanEnd> {
    let lines = split_lines(data);
    let count = lines.len();
    let mut end = ScanEnd {
        valid_len: 0,
        torn_at: None,
    };
    for (index, line) in lines.iter().enumerate() {
        let is_last = index + 1 == count;
        if !line.terminated {
            // Only the last piece can lack a newline: the append that wrote
            // it never completed, so it was never acknowledged.
            end.torn_at = Some(line.offset);
            break;
        }
        match decode_line(line.bytes) {
            Ok(record) => {
                let line_len = line.end() - line.offset;
                on_record(line.offset, line_len as usize, record)
                    .map_err(|what| Error::corruption(path, line.offset, what))?;
                end.valid_len = line.end();
            }
            Err(LineError::Torn(_)) if is_last => {
                end.torn_at = Some(line.offset);
                break;
            }
            Err(e) => {
                let what = match e {
                    LineError::Torn(what) => {
                        format!("{what}; more lines follow, so not a torn tail")
                    }
                    LineError::Invalid(what) => what,
                };
                return Err(Error::corruption(path, line.offset, what));
            }
        }
    }
    Ok(end)
}

/// The result of replaying a manifest at open.
pub(crate) struct Replay {
    pub(crate) state: ManifestState,
    pub(crate) end: ScanEnd,
    /// Length in bytes of the line holding the last snapshot.
    pub(crate) snapshot_len_bytes: u64,
}

/// Replays `data` (the bytes of the manifest at `path`) into a state.
pub(crate) fn replay(path: &Path, data: &[u8]) -> Result<Replay> {
    let mut state: Option<ManifestState> = None;
    let mut snapshot_len_bytes = 0u64;
    let end = scan_strict(path, data, |_, line_len, record| {
        apply_record(&mut state, record, || snapshot_len_bytes = line_len as u64)
    })?;
    let state = state.ok_or_else(|| {
        Error::corruption(
            path,
            0,
            match end.torn_at {
                Some(_) => "the manifest's only line, its snapshot, is damaged",
                None => "the manifest is empty: it must start with a snapshot",
            },
        )
    })?;
    Ok(Replay {
        state,
        end,
        snapshot_len_bytes,
    })
}

/// Moves `state` forward by one record; `on_snapshot` runs when a snapshot
/// replaces it.
fn apply_record(
    state: &mut Option<ManifestState>,
    record: Record,
    on_snapshot: impl FnOnce(),
) -> std::result::Result<(), String> {
    match (record, state.as_mut()) {
        (Record::Snapshot(mut snapshot), _) => {
            snapshot
                .normalize()
                .map_err(|what| format!("invalid snapshot: {what}"))?;
            *state = Some(snapshot);
            on_snapshot();
            Ok(())
        }
        (Record::Edit(edit), Some(current)) => current
            .apply(&edit)
            .map_err(|what| format!("edit cannot be applied: {what}")),
        (Record::Edit(_), None) => {
            Err("the first record is an edit: a manifest must start with a snapshot".to_string())
        }
    }
}

/// Every good record of `dir/MANIFEST` with the byte offset of its line, in
/// file order, for `jkv manifest-dump`. A torn last line is left out (and
/// the file is not changed); a bad line anywhere else is
/// [`Error::Corruption`]. Records are not applied, so an edit that would be
/// rejected is still listed.
pub fn read_records(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<(u64, Record)>> {
    let path = dir.join(MANIFEST);
    let data = read_file(fs, &path)?;
    let mut records = Vec::new();
    scan_strict(&path, &data, |offset, _, record| {
        records.push((offset, record));
        Ok(())
    })?;
    Ok(records)
}

/// A line [`verify`] found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadLine {
    /// Byte offset of the line's start in the manifest.
    pub offset: u64,
    /// What was wrong with it.
    pub what: String,
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// The file checked.
    pub path: PathBuf,
    /// Size of the file in bytes.
    pub size_bytes: u64,
    /// Lines that decoded and applied.
    pub good_records: usize,
    /// Every bad line, in file order, including a torn tail.
    pub bad_lines: Vec<BadLine>,
    /// Offset of a torn last line: open ignores it and cuts it off, so it
    /// alone does not make the file unusable.
    pub torn_tail_at: Option<u64>,
    /// The state replay reaches when bad lines are skipped; `None` if no
    /// snapshot was readable.
    pub state: Option<ManifestState>,
}

impl VerifyReport {
    /// True when [`crate::Manifest::open`] would succeed: no bad line except
    /// possibly a torn tail, and a readable first snapshot.
    pub fn is_ok(&self) -> bool {
        self.state.is_some()
            && self
                .bad_lines
                .iter()
                .all(|bad| Some(bad.offset) == self.torn_tail_at)
    }
}

/// Checks every line of `dir/MANIFEST` and reports each bad one (offset and
/// what) instead of stopping at the first, for `jkv check`. Only I/O errors
/// are returned as `Err`; the file is not changed.
pub fn verify(fs: &dyn FileSystem, dir: &Path) -> Result<VerifyReport> {
    verify_file(fs, &dir.join(MANIFEST))
}

/// [`verify`] of the manifest file at `path`, whatever its name (e.g. a
/// copy kept by `jkv repair` as `MANIFEST.bad-<n>`).
pub fn verify_file(fs: &dyn FileSystem, path: &Path) -> Result<VerifyReport> {
    let path = path.to_path_buf();
    let data = read_file(fs, &path)?;
    let lines = split_lines(&data);
    let count = lines.len();
    let mut report = VerifyReport {
        path,
        size_bytes: data.len() as u64,
        good_records: 0,
        bad_lines: Vec::new(),
        torn_tail_at: None,
        state: None,
    };
    let mut state: Option<ManifestState> = None;
    for (index, line) in lines.iter().enumerate() {
        let is_last = index + 1 == count;
        let outcome = if line.terminated {
            decode_line(line.bytes)
        } else {
            Err(LineError::Torn("line has no newline".to_string()))
        };
        let result = match outcome {
            Ok(record) => apply_record(&mut state, record, || {}),
            Err(LineError::Torn(what)) if is_last => {
                report.torn_tail_at = Some(line.offset);
                Err(format!("torn tail (ignored and cut off at open): {what}"))
            }
            Err(e) => Err(e.what().to_string()),
        };
        match result {
            Ok(()) => report.good_records += 1,
            Err(what) => {
                report.bad_lines.push(BadLine {
                    offset: line.offset,
                    what,
                });
            }
        }
    }
    if state.is_none() && report.bad_lines.is_empty() {
        report.bad_lines.push(BadLine {
            offset: 0,
            what: "the manifest has no snapshot record".to_string(),
        });
    }
    report.state = state;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_with_offsets() {
        let lines = split_lines(b"ab\n\ncd\nef");
        let got: Vec<(u64, &[u8], bool)> = lines
            .iter()
            .map(|l| (l.offset, l.bytes, l.terminated))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, &b"ab"[..], true),
                (3, &b""[..], true),
                (4, &b"cd"[..], true),
                (7, &b"ef"[..], false),
            ]
        );
        assert_eq!(lines[2].end(), 7);
        assert_eq!(lines[3].end(), 9);
        assert!(split_lines(b"").is_empty());
    }
}
