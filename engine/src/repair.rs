//! Offline repair of a database directory (`jkv repair`), like RocksDB's
//! RepairDB: rebuilds a consistent database from whatever verifies, and
//! reports what it had to leave behind (docs/durability.md, "Repair").
//!
//! What it reads: every table, WAL and value-log file of the directory and
//! of `lost/` (where open keeps files after a torn manifest). When the
//! manifest is intact (no bad line, no torn tail) it is trusted to say which
//! files are live, and orphans are ignored as open would delete them: they
//! are compaction inputs already replaced, or outputs never committed, and
//! reading them back could bring deleted keys back. Otherwise every file is
//! read. Tables are read block by block ([`SalvagedTable`]), WALs record by
//! record (resuming after a damaged one), value-log entries through their
//! checksummed reader. Damaged blocks, records and values are skipped and
//! reported with file, offset and what was wrong.
//!
//! What it writes: one sorted run holding every surviving entry (all
//! versions, tombstones included, duplicates removed) in new tables of the
//! last level; values whose value-log file is damaged, orphaned or in
//! `lost/` are moved inline into those tables, so only intact value logs
//! stay. Then a fresh manifest naming exactly that, the old one kept as
//! `MANIFEST.bad-<n>`.
//!
//! Order on disk, so that a crash at any point leaves a directory repair can
//! run on again: new tables are written as `*.sst.tmp`, synced, renamed,
//! and the directory synced; the old manifest is copied to
//! `MANIFEST.bad-<n>` and synced; the new manifest replaces `MANIFEST`
//! atomically ([`Manifest::create`]); only then are the inputs removed, and
//! the damaged ones moved into `damaged-<n>/` for inspection. Before the new
//! manifest is in place the inputs are untouched (a rerun reads them, plus
//! the new tables, whose entries it de-duplicates); after it, leftovers are
//! orphans of a sound manifest.
//!
//! Takes the directory's lock; runs on the calling thread.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jkv_format::key::{compare_internal_keys, parse_internal_key, InternalKey};
use jkv_format::names::{self, parse_file_name, FileKind};
use jkv_format::record::{ReadStop, RecordReader};
use jkv_format::{Error, FileNumber, FileSystem, Result, SeqNo, ValueKind, ValuePointer};
use jkv_manifest::{Manifest, ManifestOptions, ManifestState, TableMeta, VlogMeta};
use jkv_sstable::{SalvagedTable, TableBuilder};
use jkv_vlog::VlogReader;

use crate::batch::DecodedBatch;
use crate::check::Problem;
use crate::options::Options;
use crate::recovery::{random_db_id, LOST_DIR};
use crate::wal::{check_header, header_owner, HeaderCheck, HEADER_LEN, RECORD_BATCH};

/// Prefix of the copies of replaced manifests: `MANIFEST.bad-<n>`.
pub const BAD_MANIFEST_PREFIX: &str = "MANIFEST.bad-";
/// Prefix of the directories damaged inputs are moved into: `damaged-<n>/`.
pub const DAMAGED_DIR_PREFIX: &str = "damaged-";

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
    /// Entries read from WALs (before de-duplication).
    pub entries_from_wals: u64,
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

    fn drop_data(&mut self, file: &Path, offset: Option<u64>, what: impl Into<String>) {
        self.dropped.push(Problem {
            file: file.to_path_buf(),
            offset,
            what: what.into(),
        });
    }

    fn drop_error(&mut self, file: &Path, e: &Error) {
        match e {
            Error::Corruption { file, offset, what } => self.dropped.push(Problem {
                file: file.clone(),
                offset: Some(*offset),
                what: what.clone(),
            }),
            other => self.drop_data(file, None, other.to_string()),
        }
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
                "ignored {}: not named by the intact manifest",
                p.display()
            )?;
        }
        for (label, list) in [("torn", &self.torn), ("DROPPED", &self.dropped)] {
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
            "read {} tables, {} WALs ({} batches, {} entries); kept {} value logs",
            self.tables_read,
            self.wals_read,
            self.wal_batches,
            self.entries_from_wals,
            self.vlogs_kept
        )?;
        writeln!(
            f,
            "kept {} entries in {} new tables ({} bytes); salvaged {} values into them",
            self.entries_kept, self.tables_written, self.table_bytes_written, self.values_inlined
        )?;
        if self.shadowed_versions_dropped > 0 {
            writeln!(
                f,
                "dropped {} older versions whose value was collected (newer versions kept)",
                self.shadowed_versions_dropped
            )?;
        }
        if self.data_dropped() {
            write!(
                f,
                "{} damaged places dropped: data was lost",
                self.dropped.len()
            )
        } else {
            write!(f, "nothing dropped")
        }
    }
}

/// Rebuilds the database in `dir` from whatever verifies (see the module
/// docs) and returns what was kept and dropped. `options` are those the
/// database is opened with (levels, table layout, file system).
///
/// Errors: the directory cannot be read or written (`Io`), another process
/// holds it (`Locked`), invalid options. Damage is never an error: it is
/// reported in [`RepairReport::dropped`].
pub fn repair(dir: impl AsRef<Path>, options: Options) -> Result<RepairReport> {
    options.validate()?;
    let dir = dir.as_ref();
    let fs = options.fs.clone();
    if !fs.exists(dir)? {
        return Err(Error::InvalidArgument(format!(
            "{} does not exist",
            dir.display()
        )));
    }
    let _lock = fs.lock(&dir.join(names::LOCK))?;
    let mut r = Repair {
        fs: fs.clone(),
        dir: dir.to_path_buf(),
        lost: dir.join(LOST_DIR),
        options,
        report: RepairReport::default(),
        damaged: Vec::new(),
        consumed: Vec::new(),
        max_file: 0,
        max_seq: SeqNo::ZERO,
    };
    r.run()?;
    Ok(r.report)
}

/// One repair run's state.
struct Repair {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    lost: PathBuf,
    options: Options,
    report: RepairReport,
    /// Input files in which damage was found: moved to `damaged-<n>/`.
    damaged: Vec<PathBuf>,
    /// Input files whose data is all in the new tables: removed.
    consumed: Vec<PathBuf>,
    /// Largest file number seen anywhere.
    max_file: u64,
    /// Largest sequence number seen anywhere.
    max_seq: SeqNo,
}

/// The old manifest, as far as it reads.
struct OldManifest {
    /// Replayed state: of `MANIFEST` when it has one (even skipping bad
    /// lines), else of the newest readable `MANIFEST.bad-<n>`.
    state: Option<ManifestState>,
    /// `MANIFEST` replayed with no bad line and no torn tail: its file list
    /// is the truth.
    trusted: bool,
}

/// A value log entries may point into.
struct VlogSource {
    reader: Arc<VlogReader>,
    /// Kept as it is (intact, in the directory, live): pointers into it
    /// stay; pointers into any other are resolved and inlined.
    kept: bool,
}

impl Repair {
    fn run(&mut self) -> Result<()> {
        let fs = self.fs.clone();
        let dir = self.dir.clone();
        self.remove_temporaries()?;
        let mut names = fs.list(&dir)?;
        names.sort();
        let lost_names = if fs.exists(&self.lost)? {
            let mut v = fs.list(&self.lost)?;
            v.sort();
            v
        } else {
            Vec::new()
        };
        for name in names.iter().chain(&lost_names) {
            if let Some(FileKind::Table(n) | FileKind::Wal(n) | FileKind::ValueLog(n)) =
                parse_file_name(name)
            {
                self.max_file = self.max_file.max(n.0);
            }
        }
        let old = self.read_old_manifest(&names)?;
        if let Some(state) = &old.state {
            self.max_file = self.max_file.max(state.next_file);
            self.max_seq = self.max_seq.max(SeqNo(state.last_seq));
        }
        let db_id = self.choose_db_id(&old, &names, &lost_names);

        // Which files to read.
        let live_tables: BTreeSet<u64> = old
            .state
            .iter()
            .flat_map(|s| s.all_tables().map(|t| t.id))
            .collect();
        let live_wals = old
            .state
            .as_ref()
            .map(|s| s.live_wals.clone())
            .unwrap_or_default();
        let live_vlogs: BTreeSet<u64> = old
            .state
            .iter()
            .flat_map(|s| s.vlogs.keys().copied())
            .collect();
        let mut tables: Vec<PathBuf> = Vec::new();
        let mut wals: Vec<(PathBuf, FileNumber)> = Vec::new();
        let mut vlogs: HashMap<u64, VlogSource> = HashMap::new();
        let mut kept_vlogs: BTreeMap<u64, VlogMeta> = BTreeMap::new();
        let mut present_tables = BTreeSet::new();
        let mut present_wals = BTreeSet::new();
        let mut present_vlogs = BTreeSet::new();
        let dir_reader = Arc::new(VlogReader::new(fs.clone(), dir.clone()));
        let lost_reader = Arc::new(VlogReader::new(fs.clone(), self.lost.clone()));
        for name in &names {
            let path = dir.join(name);
            match parse_file_name(name) {
                Some(FileKind::Table(n)) => {
                    present_tables.insert(n.0);
                    if old.trusted && !live_tables.contains(&n.0) {
                        self.ignore_orphan(path);
                    } else {
                        tables.push(path);
                    }
                }
                Some(FileKind::Wal(n)) => {
                    present_wals.insert(n.0);
                    if old.trusted && !live_wals.contains(&n.0) {
                        self.ignore_orphan(path);
                    } else {
                        wals.push((path, n));
                    }
                }
                Some(FileKind::ValueLog(n)) => {
                    present_vlogs.insert(n.0);
                    let intact = self.vlog_intact(&path);
                    let orphan = old.trusted && !live_vlogs.contains(&n.0);
                    let kept = intact && !orphan;
                    if kept {
                        let discard_bytes = old
                            .state
                            .as_ref()
                            .and_then(|s| s.vlogs.get(&n.0))
                            .map_or(0, |m| m.discard_bytes);
                        kept_vlogs.insert(n.0, VlogMeta { discard_bytes });
                    } else if orphan {
                        self.ignore_orphan(path);
                    }
                    vlogs.insert(
                        n.0,
                        VlogSource {
                            reader: dir_reader.clone(),
                            kept,
                        },
                    );
                }
                _ => {}
            }
        }
        if old.trusted {
            let manifest = dir.join(names::MANIFEST);
            for missing in live_tables.difference(&present_tables) {
                let name = names::table_name(FileNumber(*missing));
                self.report.drop_data(
                    &manifest,
                    None,
                    format!("names {name}, which is missing: its data is lost"),
                );
            }
            for missing in live_wals.difference(&present_wals) {
                let name = names::wal_name(FileNumber(*missing));
                self.report.drop_data(
                    &manifest,
                    None,
                    format!("names {name}, which is missing: its writes are lost"),
                );
            }
            for missing in live_vlogs.difference(&present_vlogs) {
                let name = names::vlog_name(FileNumber(*missing));
                self.report.notes.push(format!(
                    "the manifest names {name}, which is missing; values still pointing into it are reported below"
                ));
            }
        }
        for name in &lost_names {
            let path = self.lost.join(name);
            match parse_file_name(name) {
                Some(FileKind::Table(_)) => tables.push(path),
                Some(FileKind::Wal(n)) => wals.push((path, n)),
                Some(FileKind::ValueLog(n)) => {
                    if let std::collections::hash_map::Entry::Vacant(e) = vlogs.entry(n.0) {
                        e.insert(VlogSource {
                            reader: lost_reader.clone(),
                            kept: false,
                        });
                        self.consumed.push(path);
                    } else {
                        self.report.notes.push(format!(
                            "{} has the number of {} in the directory; the directory's copy is used",
                            path.display(),
                            names::vlog_name(n)
                        ));
                    }
                }
                _ => {}
            }
        }

        // Sources of the merge: each table, and all WAL entries sorted.
        let mut sources: Vec<Source> = Vec::new();
        for path in &tables {
            self.report.tables_read += 1;
            match SalvagedTable::open(&*fs, path) {
                Ok(t) => {
                    let owner = t.db_id();
                    if owner != 0 && owner != db_id {
                        self.report.drop_data(
                            path,
                            Some(0),
                            format!(
                                "the table belongs to database {owner:#x}, not to this one ({db_id:#x}); not read"
                            ),
                        );
                        self.damaged.push(path.clone());
                        continue;
                    }
                    if t.problems().is_empty() {
                        self.consumed.push(path.clone());
                    } else {
                        for e in t.problems() {
                            self.report.drop_error(path, e);
                        }
                        self.damaged.push(path.clone());
                    }
                    sources.push(Source::Table(TableSource {
                        table: t,
                        next_block: 0,
                        buf: Vec::new().into_iter(),
                        last_key: None,
                        damaged: false,
                    }));
                }
                Err(e) => {
                    self.report.drop_error(path, &e);
                    self.damaged.push(path.clone());
                }
            }
        }
        let mut wal_entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (path, number) in &wals {
            self.report.wals_read += 1;
            self.read_wal(path, *number, db_id, &mut wal_entries);
        }
        self.report.entries_from_wals = wal_entries.len() as u64;
        wal_entries.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
        sources.push(Source::Sorted(wal_entries.into_iter()));

        let metas = self.write_tables(sources, &vlogs, db_id)?;
        self.report.vlogs_kept = kept_vlogs.len();

        // The new manifest.
        let num_levels = self.options.num_levels;
        let mut state = ManifestState::new(num_levels);
        state.db_id = db_id;
        state.last_seq = self.max_seq.0;
        state.next_file = self.max_file + 1;
        state.levels[num_levels - 1] = metas;
        state.vlogs = kept_vlogs;
        self.keep_old_manifest(&names)?;
        let manifest_options = ManifestOptions::new()
            .rewrite_threshold_bytes(self.options.manifest_rewrite_threshold_bytes);
        Manifest::create(fs.clone(), &dir, state, manifest_options)?;

        self.clean_up()
    }

    /// Removes temporary files an interrupted rewrite or repair left.
    fn remove_temporaries(&mut self) -> Result<()> {
        let mut removed = false;
        for name in self.fs.list(&self.dir)? {
            if matches!(
                parse_file_name(&name),
                Some(FileKind::Temp | FileKind::ManifestTmp)
            ) {
                self.fs.remove(&self.dir.join(&name))?;
                removed = true;
            }
        }
        if removed {
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn ignore_orphan(&mut self, path: PathBuf) {
        self.report.orphans_ignored.push(path.clone());
        self.consumed.push(path);
    }

    fn read_old_manifest(&mut self, names: &[String]) -> Result<OldManifest> {
        let path = self.dir.join(names::MANIFEST);
        if names.iter().any(|n| n == names::MANIFEST) {
            let v = jkv_manifest::verify(&*self.fs, &self.dir)?;
            for bad in &v.bad_lines {
                self.report.notes.push(format!(
                    "{} at byte {}: {}",
                    path.display(),
                    bad.offset,
                    bad.what
                ));
            }
            let trusted = v.is_ok() && v.torn_tail_at.is_none();
            if !trusted {
                self.report.notes.push(
                    "the manifest is damaged: every file of the directory and of lost/ is read"
                        .to_string(),
                );
            }
            if v.state.is_some() {
                return Ok(OldManifest {
                    state: v.state,
                    trusted,
                });
            }
        } else {
            self.report.notes.push(format!(
                "{} is missing: every file of the directory and of lost/ is read",
                path.display()
            ));
        }
        // The newest kept copy still knows the database's identity.
        let mut copies: Vec<(u64, &String)> = names
            .iter()
            .filter_map(|n| Some((n.strip_prefix(BAD_MANIFEST_PREFIX)?.parse().ok()?, n)))
            .collect();
        copies.sort();
        for (_, name) in copies.iter().rev() {
            if let Some(state) = read_manifest_copy(&*self.fs, &self.dir, name) {
                return Ok(OldManifest {
                    state: Some(state),
                    trusted: false,
                });
            }
        }
        Ok(OldManifest {
            state: None,
            trusted: false,
        })
    }

    /// The database identity: the manifest's, else the one most tables and
    /// WALs name, else a new one.
    fn choose_db_id(&mut self, old: &OldManifest, names: &[String], lost: &[String]) -> u64 {
        if let Some(id) = old.state.as_ref().map(|s| s.db_id).filter(|&id| id != 0) {
            return id;
        }
        let mut votes: HashMap<u64, usize> = HashMap::new();
        let paths = names
            .iter()
            .map(|n| self.dir.join(n))
            .chain(lost.iter().map(|n| self.lost.join(n)));
        for path in paths {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let owner = match parse_file_name(name) {
                Some(FileKind::Table(_)) => SalvagedTable::open(&*self.fs, &path)
                    .ok()
                    .map(|t| t.db_id()),
                Some(FileKind::Wal(_)) => {
                    self.fs.map(&path).ok().and_then(|data| header_owner(&data))
                }
                _ => None,
            };
            if let Some(id) = owner.filter(|&id| id != 0) {
                *votes.entry(id).or_default() += 1;
            }
        }
        match votes.into_iter().max_by_key(|&(id, n)| (n, id)) {
            Some((id, _)) => id,
            None => {
                self.report
                    .notes
                    .push("no file names the database's identity: a new one is chosen".into());
                random_db_id()
            }
        }
    }

    /// True when the value log verifies (a torn tail is allowed); damage is
    /// reported and the file marked damaged.
    fn vlog_intact(&mut self, path: &Path) -> bool {
        match jkv_vlog::verify(&*self.fs, path) {
            Ok(v) => match v.corruption {
                None => true,
                Some(e) => {
                    self.report.notes.push(format!(
                        "{} is damaged ({e}); its readable values are moved into the new tables",
                        path.display()
                    ));
                    self.damaged.push(path.to_path_buf());
                    false
                }
            },
            Err(e) => {
                self.report.drop_error(path, &e);
                self.damaged.push(path.to_path_buf());
                false
            }
        }
    }

    /// Appends every entry of the WAL's intact records to `out`, skipping
    /// and reporting damaged ones.
    fn read_wal(
        &mut self,
        path: &Path,
        number: FileNumber,
        db_id: u64,
        out: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) {
        let data = match self.fs.map(path) {
            Ok(d) => d,
            Err(e) => {
                self.report.drop_error(path, &e);
                self.damaged.push(path.to_path_buf());
                return;
            }
        };
        match check_header(&data, number, db_id) {
            HeaderCheck::Valid => {}
            HeaderCheck::Torn => {
                self.consumed.push(path.to_path_buf());
                return;
            }
            HeaderCheck::Bad(offset, what) => {
                self.report
                    .drop_data(path, Some(offset), format!("{what}; the WAL is not read"));
                self.damaged.push(path.to_path_buf());
                return;
            }
        }
        let base = HEADER_LEN as u64;
        let mut reader = RecordReader::new(&data[HEADER_LEN..]);
        let mut damaged = false;
        while let Some(item) = reader.next() {
            match item {
                Ok(record) => {
                    let at = base + record.offset;
                    if record.kind != RECORD_BATCH {
                        self.report.drop_data(
                            path,
                            Some(at),
                            format!("unknown record kind {}", record.kind),
                        );
                        damaged = true;
                        continue;
                    }
                    let batch = match DecodedBatch::parse(record.payload) {
                        Ok(b) => b,
                        Err(what) => {
                            self.report.drop_data(path, Some(at), what);
                            damaged = true;
                            continue;
                        }
                    };
                    let mut entries = Vec::new();
                    let mut seq = batch.first_seq;
                    let mut bad = None;
                    for entry in batch.entries() {
                        match entry {
                            Ok(e) => {
                                entries.push((
                                    InternalKey::new(e.key, seq, e.kind).into_vec(),
                                    e.value.to_vec(),
                                ));
                                seq = seq.plus(1);
                            }
                            Err(what) => {
                                bad = Some(what);
                                break;
                            }
                        }
                    }
                    if let Some(what) = bad {
                        self.report.drop_data(path, Some(at), what);
                        damaged = true;
                        continue;
                    }
                    let last = batch
                        .first_seq
                        .plus(u64::from(batch.count).saturating_sub(1));
                    self.max_seq = self.max_seq.max(last);
                    self.report.wal_batches += 1;
                    out.extend(entries);
                }
                Err(ReadStop::TornTail { offset }) => {
                    let at = base + offset;
                    let zeros = data[at as usize..].iter().all(|&b| b == 0);
                    if !zeros {
                        self.report.torn.push(Problem {
                            file: path.to_path_buf(),
                            offset: Some(at),
                            what: format!(
                                "{} bytes of an unfinished write",
                                data.len() as u64 - at
                            ),
                        });
                    }
                }
                Err(ReadStop::Corrupt { offset, what }) => {
                    damaged = true;
                    let at = base + offset;
                    match reader.resume_after_damage() {
                        Some(next) => self.report.drop_data(
                            path,
                            Some(at),
                            format!(
                                "{what}; bytes {at}..{} skipped, reading resumes at the next intact record",
                                base + next
                            ),
                        ),
                        None => self.report.drop_data(
                            path,
                            Some(at),
                            format!("{what}; no intact record follows"),
                        ),
                    }
                }
            }
        }
        if damaged {
            self.damaged.push(path.to_path_buf());
        } else {
            self.consumed.push(path.to_path_buf());
        }
    }

    /// Merges `sources` into new last-level tables; returns their metadata.
    fn write_tables(
        &mut self,
        mut sources: Vec<Source>,
        vlogs: &HashMap<u64, VlogSource>,
        db_id: u64,
    ) -> Result<Vec<TableMeta>> {
        let level = self.options.num_levels - 1;
        let target = self.options.compaction.target_table_bytes;
        let table_options = jkv_sstable::TableOptions {
            block_size_bytes: self.options.block_size,
            bloom_bits_per_key: self.options.bloom_bits_per_key,
            db_id,
            ..jkv_sstable::TableOptions::default()
        };
        let mut heap = BinaryHeap::new();
        for (i, s) in sources.iter_mut().enumerate() {
            if let Some((key, value)) = s.next(&mut self.report) {
                heap.push(HeapEntry {
                    key,
                    value,
                    source: i,
                });
            }
        }
        let mut metas = Vec::new();
        let mut renames: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut out: Option<(FileNumber, PathBuf, TableBuilder)> = None;
        // (user key, seq) of the last entry taken from the heap.
        let mut last_entry: Option<(Vec<u8>, SeqNo)> = None;
        let mut last_user: Option<Vec<u8>> = None;
        while let Some(HeapEntry { key, value, source }) = heap.pop() {
            if let Some(next) = sources[source].next(&mut self.report) {
                heap.push(HeapEntry {
                    key: next.0,
                    value: next.1,
                    source,
                });
            }
            let Some(parsed) = parse_internal_key(&key) else {
                continue; // checked by every source
            };
            let this = (parsed.user_key, parsed.seq);
            if last_entry.as_ref().map(|(k, s)| (k.as_slice(), *s)) == Some(this) {
                // The same write from two files (a WAL and its flush, or a
                // table and its compaction output).
                continue;
            }
            last_entry = Some((parsed.user_key.to_vec(), parsed.seq));
            let newest = last_user.as_deref() != Some(parsed.user_key);
            let (key, value) = match self.resolve(&key, value, vlogs, newest) {
                Some(kv) => kv,
                None => {
                    if newest {
                        last_user = Some(parsed.user_key.to_vec());
                    }
                    continue;
                }
            };
            self.max_seq = self.max_seq.max(parsed.seq);
            if newest {
                // Cut tables between user keys only: every version of a key
                // stays in one table.
                let full = out
                    .as_ref()
                    .is_some_and(|(_, _, b)| b.estimated_size_bytes() >= target);
                if full {
                    if let Some(done) = out.take() {
                        metas.push(self.finish_table(done, level, &mut renames)?);
                    }
                }
                last_user = Some(parsed.user_key.to_vec());
            }
            if out.is_none() {
                self.max_file += 1;
                let number = FileNumber(self.max_file);
                let path = self.dir.join(format!("{}.tmp", names::table_name(number)));
                let file = self.fs.create(&path)?;
                out = Some((number, path, TableBuilder::new(file, table_options.clone())));
            }
            if let Some((_, _, builder)) = out.as_mut() {
                builder.add(&key, &value)?;
            }
            self.report.entries_kept += 1;
        }
        for s in &sources {
            if let Source::Table(t) = s {
                if t.damaged && !self.damaged.iter().any(|p| p == t.table.path()) {
                    let path = t.table.path().to_path_buf();
                    self.consumed.retain(|p| *p != path);
                    self.damaged.push(path);
                }
            }
        }
        if let Some(done) = out.take() {
            metas.push(self.finish_table(done, level, &mut renames)?);
        }
        // Synced tables get their real names; then one directory sync makes
        // both the files and the names durable before the manifest names them.
        for (from, to) in &renames {
            self.fs.rename(from, to)?;
        }
        self.fs.sync_dir(&self.dir)?;
        Ok(metas)
    }

    fn finish_table(
        &mut self,
        (number, path, builder): (FileNumber, PathBuf, TableBuilder),
        level: usize,
        renames: &mut Vec<(PathBuf, PathBuf)>,
    ) -> Result<TableMeta> {
        let summary = builder.finish()?;
        self.report.tables_written += 1;
        self.report.table_bytes_written += summary.file_size;
        renames.push((path, names::table_path(&self.dir, number)));
        Ok(jkv_compaction::table_meta(number, level, summary))
    }

    /// The entry as it goes into the new tables: a pointer into a kept
    /// value log stays; one into any other value log becomes the value
    /// itself; `None` when the value cannot be read (reported when this is
    /// the key's newest version).
    fn resolve(
        &mut self,
        key: &[u8],
        value: Vec<u8>,
        vlogs: &HashMap<u64, VlogSource>,
        newest: bool,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let parsed = parse_internal_key(key)?;
        if parsed.kind != ValueKind::ValuePointer {
            return Some((key.to_vec(), value));
        }
        let user_key = parsed.user_key;
        let lost = |r: &mut RepairReport, file: PathBuf, offset: u64, why: String| {
            if newest {
                r.drop_data(
                    &file,
                    Some(offset),
                    format!(
                        "value of key {:?} (seq {}) is lost: {why}",
                        String::from_utf8_lossy(user_key),
                        parsed.seq
                    ),
                );
            } else {
                r.shadowed_versions_dropped += 1;
            }
        };
        let Some(pointer) = ValuePointer::decode(&value) else {
            lost(
                &mut self.report,
                self.dir.clone(),
                0,
                format!("its value pointer is {} bytes long", value.len()),
            );
            return None;
        };
        let path = names::vlog_path(&self.dir, pointer.file);
        let Some(source) = vlogs.get(&pointer.file.0) else {
            lost(
                &mut self.report,
                path,
                pointer.offset,
                "its value-log file is gone".into(),
            );
            return None;
        };
        match source.reader.read(&pointer, user_key) {
            Ok(_) if source.kept => Some((key.to_vec(), value)),
            Ok(bytes) => {
                self.report.values_inlined += 1;
                let inline = InternalKey::new(user_key, parsed.seq, ValueKind::Value).into_vec();
                Some((inline, bytes.to_vec()))
            }
            Err(e) => {
                lost(&mut self.report, path, pointer.offset, e.to_string());
                None
            }
        }
    }

    /// Copies `MANIFEST` (if any) to the next free `MANIFEST.bad-<n>`,
    /// synced, before it is replaced.
    fn keep_old_manifest(&mut self, names: &[String]) -> Result<()> {
        if !names.iter().any(|n| n == names::MANIFEST) {
            return Ok(());
        }
        let n = self.next_free_number(names, BAD_MANIFEST_PREFIX);
        let from = self.dir.join(names::MANIFEST);
        let to = self.dir.join(format!("{BAD_MANIFEST_PREFIX}{n}"));
        let size = self.fs.file_size(&from)?;
        let len = usize::try_from(size).map_err(|_| {
            Error::InvalidArgument(format!("{} is too large to copy", from.display()))
        })?;
        let bytes = self.fs.read_at(&from, 0, len)?;
        let mut file = self.fs.create(&to)?;
        file.append(&bytes)?;
        file.sync()?;
        drop(file);
        self.fs.sync_dir(&self.dir)?;
        self.report.old_manifest = Some(to);
        Ok(())
    }

    /// 1 + the largest `<n>` among names `PREFIX<n>` (1 when there is none).
    fn next_free_number(&self, names: &[String], prefix: &str) -> u64 {
        names
            .iter()
            .filter_map(|n| n.strip_prefix(prefix)?.parse::<u64>().ok())
            .max()
            .map_or(1, |n| n + 1)
    }

    /// After the new manifest is durable: damaged inputs go to
    /// `damaged-<n>/`, the others are removed.
    fn clean_up(&mut self) -> Result<()> {
        let fs = self.fs.clone();
        let mut touched_lost = false;
        if !self.damaged.is_empty() {
            let names = fs.list(&self.dir)?;
            let n = self.next_free_number(&names, DAMAGED_DIR_PREFIX);
            let target = self.dir.join(format!("{DAMAGED_DIR_PREFIX}{n}"));
            fs.create_dir_all(&target)?;
            fs.sync_dir(&self.dir)?;
            let mut damaged = std::mem::take(&mut self.damaged);
            damaged.sort();
            damaged.dedup();
            for path in &damaged {
                let Some(name) = path.file_name() else {
                    continue;
                };
                let prefix = if path.parent() == Some(&*self.lost) {
                    touched_lost = true;
                    "lost-"
                } else {
                    ""
                };
                let to = target.join(format!("{prefix}{}", name.to_string_lossy()));
                fs.rename(path, &to)?;
            }
            fs.sync_dir(&target)?;
            self.report.damaged_dir = Some(target);
        }
        let mut consumed = std::mem::take(&mut self.consumed);
        consumed.sort();
        consumed.dedup();
        for path in &consumed {
            if fs.exists(path)? {
                fs.remove(path)?;
                touched_lost |= path.parent() == Some(&*self.lost);
            }
        }
        if touched_lost {
            fs.sync_dir(&self.lost)?;
        }
        fs.sync_dir(&self.dir)
    }
}

/// Replays a kept manifest copy (`MANIFEST.bad-<n>`), skipping bad lines.
fn read_manifest_copy(fs: &dyn FileSystem, dir: &Path, name: &str) -> Option<ManifestState> {
    jkv_manifest::verify_file(fs, &dir.join(name)).ok()?.state
}

/// Where merged entries come from.
enum Source {
    /// A table, block by block.
    Table(TableSource),
    /// Entries already in internal-key order (the WALs').
    Sorted(std::vec::IntoIter<(Vec<u8>, Vec<u8>)>),
}

impl Source {
    fn next(&mut self, report: &mut RepairReport) -> Option<(Vec<u8>, Vec<u8>)> {
        match self {
            Source::Table(t) => t.next(report),
            Source::Sorted(it) => it.next(),
        }
    }
}

/// The intact blocks of one table, in order.
struct TableSource {
    table: SalvagedTable,
    next_block: usize,
    buf: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    /// Last key handed out: a block that does not follow it is refused.
    last_key: Option<Vec<u8>>,
    /// A block failed to read.
    damaged: bool,
}

impl TableSource {
    fn next(&mut self, report: &mut RepairReport) -> Option<(Vec<u8>, Vec<u8>)> {
        loop {
            if let Some(kv) = self.buf.next() {
                self.last_key = Some(kv.0.clone());
                return Some(kv);
            }
            let handle = *self.table.data_blocks().get(self.next_block)?;
            self.next_block += 1;
            match self.table.block_entries(handle) {
                Ok(entries) => {
                    let follows = match (&self.last_key, entries.first()) {
                        (Some(prev), Some((first, _))) => {
                            compare_internal_keys(prev, first) == Ordering::Less
                        }
                        _ => true,
                    };
                    if follows {
                        self.buf = entries.into_iter();
                    } else {
                        report.drop_data(
                            self.table.path(),
                            Some(handle.offset),
                            "data block does not follow the previous one in key order; not read",
                        );
                        self.damaged = true;
                    }
                }
                Err(e) => {
                    report.drop_error(self.table.path(), &e);
                    self.damaged = true;
                }
            }
        }
    }
}

/// An entry in the merge heap: smallest internal key on top, then the
/// lower source index.
struct HeapEntry {
    key: Vec<u8>,
    value: Vec<u8>,
    source: usize,
}

impl Ord for HeapEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_internal_keys(&other.key, &self.key).then(other.source.cmp(&self.source))
    }
}

impl PartialOrd for HeapEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for HeapEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for HeapEntry {}
