//! File names in a database directory (docs/architecture.md, "Files").

use std::path::{Path, PathBuf};

use crate::ids::FileNumber;

/// The lock file: whoever holds its advisory lock owns the directory.
pub const LOCK: &str = "LOCK";
/// The manifest: JSON version edits, one per line.
pub const MANIFEST: &str = "MANIFEST";
/// Where a manifest rewrite is prepared before it is renamed over [`MANIFEST`].
pub const MANIFEST_TMP: &str = "MANIFEST.tmp";

/// The kinds of file jkv puts in its directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `NNNNNN.wal`: write-ahead log of one memtable.
    Wal(FileNumber),
    /// `NNNNNN.sst`: sorted table.
    Table(FileNumber),
    /// `NNNNNN.vlog`: value log.
    ValueLog(FileNumber),
    /// `MANIFEST`.
    Manifest,
    /// `MANIFEST.tmp`: an unfinished manifest rewrite.
    ManifestTmp,
    /// `LOCK`.
    Lock,
    /// `NNNNNN.sst.tmp` and the like: an unfinished output.
    Temp,
}

fn numbered(n: FileNumber, ext: &str) -> String {
    format!("{n}.{ext}")
}

/// `NNNNNN.wal`
pub fn wal_name(n: FileNumber) -> String {
    numbered(n, "wal")
}

/// `NNNNNN.sst`
pub fn table_name(n: FileNumber) -> String {
    numbered(n, "sst")
}

/// `NNNNNN.vlog`
pub fn vlog_name(n: FileNumber) -> String {
    numbered(n, "vlog")
}

/// `dir/NNNNNN.wal`
pub fn wal_path(dir: &Path, n: FileNumber) -> PathBuf {
    dir.join(wal_name(n))
}

/// `dir/NNNNNN.sst`
pub fn table_path(dir: &Path, n: FileNumber) -> PathBuf {
    dir.join(table_name(n))
}

/// `dir/NNNNNN.vlog`
pub fn vlog_path(dir: &Path, n: FileNumber) -> PathBuf {
    dir.join(vlog_name(n))
}

/// Recognises a jkv file name; `None` for anything else (left alone).
pub fn parse_file_name(name: &str) -> Option<FileKind> {
    match name {
        LOCK => return Some(FileKind::Lock),
        MANIFEST => return Some(FileKind::Manifest),
        MANIFEST_TMP => return Some(FileKind::ManifestTmp),
        _ => {}
    }
    if name.ends_with(".tmp") {
        return Some(FileKind::Temp);
    }
    let (stem, ext) = name.split_once('.')?;
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = FileNumber(stem.parse().ok()?);
    match ext {
        "wal" => Some(FileKind::Wal(n)),
        "sst" => Some(FileKind::Table(n)),
        "vlog" => Some(FileKind::ValueLog(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = FileNumber(42);
        assert_eq!(wal_name(n), "000042.wal");
        assert_eq!(parse_file_name(&wal_name(n)), Some(FileKind::Wal(n)));
        assert_eq!(parse_file_name(&table_name(n)), Some(FileKind::Table(n)));
        assert_eq!(parse_file_name(&vlog_name(n)), Some(FileKind::ValueLog(n)));
        assert_eq!(
            parse_file_name("1234567.sst"),
            Some(FileKind::Table(FileNumber(1234567)))
        );
        assert_eq!(parse_file_name("MANIFEST"), Some(FileKind::Manifest));
        assert_eq!(parse_file_name("000001.sst.tmp"), Some(FileKind::Temp));
        assert_eq!(parse_file_name("notes.txt"), None);
        assert_eq!(parse_file_name(".wal"), None);
        assert_eq!(parse_file_name("12a.wal"), None);
    }
}
