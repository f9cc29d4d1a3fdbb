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
use crate::wal::RECORD_BATCH;

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
    let mut live_wals = BTreeSet::new();
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
                    live_wals = state.live_wals.clone();
                }
            }
            Err(e) => report.error(&manifest_path, e),
        }
    } else {
        report.problem(&manifest_path, None, "MANIFEST is missing");
    }

    let mut present_tables = BTreeSet::new();
    let mut present_wals = BTreeSet::new();
    let mut sorted = entries.clone();
    sorted.sort();
    for name in &sorted {
        let path = dir.join(name);
        match parse_file_name(name) {
            Some(FileKind::Table(n)) => {
                present_tables.insert(n.0);
                report.files_checked += 1;
                check_table(fs, &path, n, &mut report);
                if !live_tables.contains(&n.0) {
                    report.notes.push(format!(
                        "{name}: not in the manifest (orphan, removed at open)"
                    ));
                }
            }
            Some(FileKind::Wal(n)) => {
                present_wals.insert(n.0);
                report.files_checked += 1;
                check_wal(fs, &path, &mut report);
                if !live_wals.contains(&n.0) {
                    report.notes.push(format!(
                        "{name}: not in the manifest (orphan, removed at open)"
                    ));
                }
            }
            _ => {}
        }
    }
    for missing in live_tables.difference(&present_tables) {
        let name = names::table_name(FileNumber(*missing));
        report.problem(
            &manifest_path,
            None,
            format!("names {name}, which is missing"),
        );
    }
    for missing in live_wals.difference(&present_wals) {
        let name = names::wal_name(FileNumber(*missing));
        report.problem(
            &manifest_path,
            None,
            format!("names {name}, which is missing"),
        );
    }
    Ok(report)
}

fn check_table(fs: &dyn FileSystem, path: &Path, number: FileNumber, report: &mut CheckReport) {
    let verified = Table::open(fs, path, number, None).and_then(|t| t.verify().map(|_| ()));
    if let Err(e) = verified {
        report.error(path, e);
    }
}

fn check_wal(fs: &dyn FileSystem, path: &Path, report: &mut CheckReport) {
    let data = match fs.map(path) {
        Ok(d) => d,
        Err(e) => return report.error(path, e),
    };
    let mut reader = RecordReader::new(&data);
    while let Some(item) = reader.next() {
        match item {
            Ok(record) => {
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
            Err(ReadStop::TornTail { offset }) => report.notes.push(format!(
                "{}: torn tail at byte {offset} (dropped at open)",
                path.display()
            )),
            Err(ReadStop::Corrupt { offset, what }) => report.problem(path, Some(offset), what),
        }
    }
}
