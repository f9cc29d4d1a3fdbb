//! What a repair did: counts of what it read and kept, and every damaged
//! place with file, offset and what, split into what cost data and what did
//! not; printed as the summary of `jkv repair`.

use std::fmt;
use std::path::{Path, PathBuf};

use jkv_format::Error;

use crate::check::Problem;

/// What [`repair`] did.
#[derive(Clone, Debug, Default)]
pub struct RepairReport {
    /// Table files read (directory and `lost/`).
    pub tables_read: usize,
    /// WAL files read.
    pub wals_read: usize,
    /// WAL records (write batches) replayed.
    pub wal_batches: u64,
    /// Value-log files kept as they are.
    pub vlogs_kept: usize,
    /// Entries (every version and tombstone) in the new tables.
    pub entries_kept: u64,
    /// Entries read from WALs (before de-duplication), range deletions
    /// not counted.
    pub entries_from_wals: u64,
    /// Range deletions read from WAL records.
    pub range_tombstones_from_wals: u64,
    /// Range tombstones read from tables' range-tombstone blocks.
    pub range_tombstones_from_tables: u64,
    /// Range tombstones in the new tables: the parts of one delete (the
    /// same sequence number) read from several files are merged where they
    /// overlap or touch, and one split at a new table's boundary counts
    /// once.
    pub range_tombstones_kept: u64,
    /// Values moved from a damaged, orphaned or lost value log into the
    /// new tables (salvaged).
    pub values_inlined: u64,
    /// Older versions dropped because their value was gone; the newer
    /// version of the same key was kept, so no read changes.
    pub shadowed_versions_dropped: u64,
    /// Tables written.
    pub tables_written: usize,
    /// Bytes of the tables written.
    pub table_bytes_written: u64,
    /// Files ignored because the intact manifest did not name them.
    pub orphans_ignored: Vec<PathBuf>,
    /// Data that could not be kept: damaged blocks, records, values and
    /// files. Empty when nothing was lost.
    pub dropped: Vec<Problem>,
    /// Damage that cost no data: a table's footer, index, filter or
    /// properties block (its data blocks were found without them), a bad
    /// manifest line (the manifest is rebuilt from the files).
    pub repaired: Vec<Problem>,
    /// Torn tails of WALs: writes that never completed (so were never
    /// acknowledged as durable), dropped as open drops them.
    pub torn: Vec<Problem>,
    /// Other findings (a damaged or missing manifest, ...).
    pub notes: Vec<String>,
    /// Where the replaced manifest was kept.
    pub old_manifest: Option<PathBuf>,
    /// Where the damaged input files were moved.
    pub damaged_dir: Option<PathBuf>,
}

impl RepairReport {
    /// True when some data could not be kept (see [`RepairReport::dropped`]).
    pub fn data_dropped(&self) -> bool {
        !self.dropped.is_empty()
    }

    pub(super) fn drop_data(&mut self, file: &Path, offset: Option<u64>, what: impl Into<String>) {
        self.dropped.push(Problem {
            file: file.to_path_buf(),
            offset,
            what: what.into(),
        });
    }

    pub(super) fn drop_error(&mut self, file: &Path, e: &Error) {
        self.dropped.push(problem_of(file, e));
    }
}

/// `e` as a problem: a `Corruption`'s own file and offset, else `file`.
pub(super) fn problem_of(file: &Path, e: &Error) -> Problem {
    match e {
        Error::Corruption { file, offset, what } => Problem {
            file: file.clone(),
            offset: Some(*offset),
            what: what.clone(),
        },
        other => Problem {
            file: file.to_path_buf(),
            offset: None,
            what: other.to_string(),
        },
    }
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for note in &self.notes {
            writeln!(f, "note: {note}")?;
        }
        for p in &self.orphans_ignored {
            writeln!(
                f,
                "ignored {}: an orphan of the intact manifest (removed, as open would)",
                p.display()
            )?;
        }
        for (label, list) in [
            ("repaired", &self.repaired),
            ("torn", &self.torn),
            ("DROPPED", &self.dropped),
        ] {
            for p in list {
                match p.offset {
                    Some(at) => {
                        writeln!(f, "{label} {} at byte {at}: {}", p.file.display(), p.what)?
                    }
                    None => writeln!(f, "{label} {}: {}", p.file.display(), p.what)?,
                }
            }
        }
        if let Some(old) = &self.old_manifest {
            writeln!(f, "old manifest kept as {}", old.display())?;
        }
        if let Some(dir) = &self.damaged_dir {
            writeln!(f, "damaged files moved to {}", dir.display())?;
        }
        writeln!(
            f,
            "read {} tables ({} range tombstones), {} WALs ({} batches, {} entries, {} range tombstones); kept {} value logs",
            self.tables_read,
            self.range_tombstones_from_tables,
            self.wals_read,
            self.wal_batches,
            self.entries_from_wals,
            self.range_tombstones_from_wals,
            self.vlogs_kept
        )?;
        writeln!(
            f,
            "kept {} entries and {} range tombstones in {} new tables ({} bytes); moved {} values from damaged or lost value logs into them",
            self.entries_kept,
            self.range_tombstones_kept,
            self.tables_written,
            self.table_bytes_written,
            self.values_inlined
        )?;
        if self.shadowed_versions_dropped > 0 {
            writeln!(
                f,
                "dropped {} older versions whose value was collected (newer versions kept)",
                self.shadowed_versions_dropped
            )?;
        }
        if self.data_dropped() {
            let n = self.dropped.len();
            let places = if n == 1 { "place" } else { "places" };
            write!(f, "{n} damaged {places} dropped: data was lost")
        } else {
            write!(f, "nothing dropped")
        }
    }
}
