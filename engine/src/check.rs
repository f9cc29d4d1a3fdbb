//! Offline verification of a database directory (`jkv check`): every
//! manifest line, every table block and every WAL record is read and its
//! checksum and structure verified. Problems are collected, not stopped at,
//! so one run reports everything that is wrong and where.
//!
//! It takes no lock and writes nothing; run it on a closed database for a
//! stable answer.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use jkv_format::names::{self, parse_file_name, FileKind};
use jkv_format::record::{ReadStop, RecordReader};
use jkv_format::{Error, FileNumber, FileSystem, Result, StdFs};
use jkv_sstable::Table;

use crate::batch::DecodedBatch;
use crate::wal::{check_header, HeaderCheck, HEADER_LEN, RECORD_BATCH};

/// Something wrong in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// Byte offset of the damage, when known.
    pub offset: Option<u64>,
    /// What is wrong.
    pub what: String,
}

/// The result of [`check`].
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Files read.
    pub files_checked: usize,
    /// Damage found; empty when the database is sound.
    pub problems: Vec<Problem>,
    /// Findings that are not damage: a torn WAL or manifest tail (recovery
    /// drops it), orphan files (open removes them).
    pub notes: Vec<String>,
    /// Data blocks of the tables that verified.
    pub data_blocks: u64,
    /// Of those, blocks stored compressed (each decoded and its entries
    /// checked).
    pub compressed_blocks: u64,
    /// Bytes of the data blocks as stored, trailers included.
    pub data_bytes: u64,
    /// Bytes the same blocks take decoded.
    pub data_raw_bytes: u64,
}

impl CheckReport {
    /// True when no problem was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, file: &Path, offset: Option<u64>, what: impl Into<String>) {
        self.problems.push(Problem {
            file: file.to_path_buf(),
            offset,
            what: what.into(),
        });
    }

    fn error(&mut self, file: &Path, e: Error) {
        match e {
            Error::Corruption { file, offset, what } => self.problems.push(Problem {
                file,
                offset: Some(offset),
                what,
            }),
            other => self.problem(file, None, other.to_string()),
        }
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        for p in &self.problems {
            match p.offset {
                Some(offset) => writeln!(
                    f,
                    "CORRUPT {} at byte {offset}: {}",
                    p.file.display(),
                    p.what
                )?,
                None => writeln!(f, "CORRUPT {}: {}", p.file.display(), p.what)?,
            }
        }
        if self.data_blocks > 0 {
            writeln!(
                f,
                "table data blocks verified: {} ({} compressed, decoded and checked); {} bytes stored, {} decoded (stored/raw {:.3})",
                self.data_blocks,
                self.compressed_blocks,
                self.data_bytes,
                self.data_raw_bytes,
                self.data_bytes as f64 / self.data_raw_bytes.max(1) as f64
            )?;
        }
        write!(
            f,
            "{} files checked, {} problems",
            self.files_checked,
            self.problems.len()
        )
    }
}

/// Verifies the database in `dir` on the real file system.
pub fn check(dir: impl AsRef<Path>) -> Result<CheckReport> {
    check_with(&StdFs, dir.as_ref())
}

/// Verifies the database in `dir` through `fs`.
pub fn check_with(fs: &dyn FileSystem, dir: &Path) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let entries = fs.list(dir)?;
    let manifest_path = dir.join(names::MANIFEST);
    let mut live_tables = BTreeSet::new();
    let mut metas = std::collections::BTreeMap::new();
    let mut live_wals = BTreeSet::new();
    let mut live_vlogs = BTreeSet::new();
    let mut db_id = 0;
    if entries.iter().any(|n| n == names::MANIFEST) {
        report.files_checked += 1;
        match jkv_manifest::verify(fs, dir) {
            Ok(v) => {
                for bad in &v.bad_lines {
                    report.problem(&manifest_path, Some(bad.offset), bad.what.clone());
                }
                if let Some(at) = v.torn_tail_at {
                    report.notes.push(format!(
                        "{}: torn last line at byte {at} (ignored at open)",
                        manifest_path.display()
                    ));
                }
                if let Some(state) = &v.state {
                    live_tables = state.all_tables().map(|t| t.id).collect();
                    metas = state.all_tables().map(|t| (t.id, t.clone())).collect();
                    live_wals = state.live_wals.clone();
                    live_vlogs = state.vlogs.keys().copied().collect();
                    db_id = state.db_id;
                }
            }
            Err(e) => report.error(&manifest_path, e),
        }
    } else {
        report.problem(&manifest_path, None, "MANIFEST is missing");
    }

    let mut present_tables = BTreeSet::new();
    let mut present_wals = BTreeSet::new();
    let mut present_vlogs = BTreeSet::new();
    let mut sorted = entries.clone();
    sorted.sort();
    for name in &sorted {
        let path = dir.join(name);
        match parse_file_name(name) {
            Some(FileKind::Table(n)) => {
                present_tables.insert(n);
                report.files_checked += 1;
                check_table(fs, &path, n, metas.get(&n), db_id, &mut report);
                if !live_tables.contains(&n) {
                    report.notes.push(format!(
                        "{name}: not in the manifest (orphan, removed at open)"
                    ));
                }
            }
            Some(FileKind::ValueLog(n)) => {
                present_vlogs.insert(n);
                report.files_checked += 1;
                match jkv_vlog::verify(fs, &path) {
                    Ok(v) => {
                        if let Some(e) = v.corruption {
                            report.error(&path, e);
                        }
                        if let Some(at) = v.torn_tail_at {
                            report.notes.push(format!(
                                "{name}: torn tail at byte {at} (never acknowledged as durable)"
                            ));
                        }
                    }
                    Err(e) => report.error(&path, e),
                }
                if !live_vlogs.contains(&n) {
                    report.notes.push(format!(
                        "{name}: not in the manifest (orphan, removed at open)"
                    ));
                }
            }
            Some(FileKind::Wal(n)) => {
                present_wals.insert(n);
                report.files_checked += 1;
                check_wal(fs, &path, n, db_id, &mut report);
                if !live_wals.contains(&n) {
                    report.notes.push(format!(
                        "{name}: not in the manifest (orphan, removed at open)"
                    ));
                }
            }
            _ => {}
        }
    }
    let lost = dir.join(crate::recovery::LOST_DIR);
    if let Ok(kept) = fs.list(&lost) {
        if !kept.is_empty() {
            report.notes.push(format!(
                "{}: {} file(s) the manifest did not name were kept there after its last line was torn; inspect them (jkv sst-dump) before deleting",
                lost.display(),
                kept.len()
            ));
        }
    }
    for missing in live_tables.difference(&present_tables) {
        let name = names::table_name(*missing);
        report.problem(
            &manifest_path,
            None,
            format!("names {name}, which is missing"),
        );
    }
    for missing in live_vlogs.difference(&present_vlogs) {
        let name = names::vlog_name(*missing);
        report.problem(
            &manifest_path,
            None,
            format!("names {name}, which is missing"),
        );
    }
    for missing in live_wals.difference(&present_wals) {
        let name = names::wal_name(*missing);
        report.problem(
            &manifest_path,
            None,
            format!("names {name}, which is missing"),
        );
    }
    Ok(report)
}

fn check_table(
    fs: &dyn FileSystem,
    path: &Path,
    number: FileNumber,
    meta: Option<&jkv_manifest::TableMeta>,
    db_id: u64,
    report: &mut CheckReport,
) {
    let table = match Table::open(fs, path, number) {
        Ok(t) => t,
        Err(e) => return report.error(path, e),
    };
    match table.verify() {
        Ok(v) => {
            report.data_blocks += v.data_blocks;
            report.compressed_blocks += v.compressed_blocks;
            report.data_bytes += table.properties().data_size_bytes;
            report.data_raw_bytes += v.raw_data_bytes;
        }
        Err(e) => return report.error(path, e),
    }
    let owner = table.properties().db_id;
    if owner != 0 && db_id != 0 && owner != db_id {
        return report.problem(
            path,
            Some(0),
            format!("the table belongs to database {owner:#x}, not to this one ({db_id:#x})"),
        );
    }
    if let Some(meta) = meta {
        let props = table.properties();
        if table.file_size() != meta.size_bytes
            || props.entry_count != meta.entries
            || props.range_deletion_count != meta.range_deletions
            || props.smallest != meta.smallest
            || props.largest != meta.largest
        {
            report.problem(
                path,
                Some(0),
                "table does not match its manifest entry (size, entry count or key range)",
            );
        }
    }
}

fn check_wal(
    fs: &dyn FileSystem,
    path: &Path,
    number: FileNumber,
    db_id: u64,
    report: &mut CheckReport,
) {
    let data = match fs.map(path) {
        Ok(d) => d,
        Err(e) => return report.error(path, e),
    };
    match check_header(&data, number, db_id) {
        HeaderCheck::Valid => {}
        HeaderCheck::Torn => {
            report.notes.push(format!(
                "{}: header never completed (no records)",
                path.display()
            ));
            return;
        }
        HeaderCheck::Bad(offset, what) => return report.problem(path, Some(offset), what),
    }
    let base = HEADER_LEN as u64;
    let mut reader = RecordReader::new(&data[HEADER_LEN..]);
    while let Some(item) = reader.next() {
        match item {
            Ok(mut record) => {
                record.offset += base;
                if record.kind != RECORD_BATCH {
                    report.problem(
                        path,
                        Some(record.offset),
                        format!("unknown record kind {}", record.kind),
                    );
                    continue;
                }
                let bad = match DecodedBatch::parse(record.payload) {
                    Ok(batch) => batch.entries().find_map(|e| e.err()),
                    Err(what) => Some(what),
                };
                if let Some(what) = bad {
                    report.problem(path, Some(record.offset), what);
                }
            }
            Err(ReadStop::TornTail { offset }) => {
                let at = base + offset;
                // Zeros after the records are the writer's pre-allocation.
                let zeros = data[at as usize..].iter().all(|&b| b == 0);
                if !zeros {
                    report.notes.push(format!(
                        "{}: torn tail at byte {at} (dropped at open)",
                        path.display()
                    ));
                }
            }
            Err(ReadStop::Corrupt { offset, what }) => {
                report.problem(path, Some(base + offset), what)
            }
        }
    }
}
