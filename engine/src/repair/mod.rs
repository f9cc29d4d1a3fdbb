//! Offline repair of a database directory (`jkv repair`), like RocksDB's
//! RepairDB: rebuilds a consistent database from whatever verifies, and
//! reports what it had to leave behind (docs/durability.md, "Repair").
//!
//! What it reads: every table, WAL and value-log file of the directory and
//! of `lost/` (where open keeps files after a torn manifest). When the
//! manifest is intact (no bad line, no torn tail, every file it names
//! present) it is trusted to say which files are live, and an orphan is
//! read only if it holds writes newer than the manifest's last sequence
//! number (the manifest lost an edit); older orphans are compaction inputs
//! already replaced or WALs already flushed, which open would delete and
//! which could bring deleted keys back. Otherwise every file is read.
//! Tables are read block by block ([`SalvagedTable`]), WALs record by
//! record (resuming after a damaged one), value-log entries through their
//! checksummed reader. Damaged blocks, records and values are skipped and
//! reported with file, offset and what was wrong.
//!
//! What it writes: one sorted run holding every surviving entry (all
//! versions, tombstones included, duplicates removed) in new tables of the
//! last level, and every surviving range tombstone (from WAL records and
//! tables' range-tombstone blocks, with its sequence number; the parts of
//! one delete merged) split at the tables' boundaries as compaction splits
//! them; values whose value-log file is damaged, orphaned or in
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

mod inputs;
mod output;
mod report;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jkv_format::key::compare_internal_keys;
use jkv_format::names::{self, parse_file_name, FileKind};
use jkv_format::{Error, FileNumber, FileSystem, RangeTombstone, Result, SeqNo};
use jkv_manifest::{Manifest, ManifestOptions, ManifestState, VlogMeta};
use jkv_sstable::SalvagedTable;
use jkv_vlog::VlogReader;

use crate::check::Problem;
use crate::options::Options;
use crate::recovery::{random_db_id, LOST_DIR};
use crate::wal::header_owner;

use inputs::{table_max_seq, wal_max_seq, Source, TableSource, WalContents};
use output::VlogSource;
use report::problem_of;
pub use report::RepairReport;

/// Prefix of the copies of replaced manifests: `MANIFEST.bad-<n>`.
const BAD_MANIFEST_PREFIX: &str = "MANIFEST.bad-";
/// Prefix of the directories damaged inputs are moved into: `damaged-<n>/`.
const DAMAGED_DIR_PREFIX: &str = "damaged-";

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
    // Refuse a directory that holds no database before touching anything
    // in it (repair removes temporary files and takes the lock).
    let list = |d: &Path| -> Result<Vec<String>> {
        if fs.exists(d)? {
            fs.list(d)
        } else {
            Ok(Vec::new())
        }
    };
    let is_db_file = |n: &String| {
        n == names::MANIFEST
            || n.starts_with(BAD_MANIFEST_PREFIX)
            || matches!(
                parse_file_name(n),
                Some(FileKind::Table(_) | FileKind::Wal(_) | FileKind::ValueLog(_))
            )
    };
    if !list(dir)?
        .iter()
        .chain(&list(&dir.join(LOST_DIR))?)
        .any(is_db_file)
    {
        return Err(Error::InvalidArgument(format!(
            "no database in {}: no manifest, table, WAL or value log to repair",
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
    /// is the truth unless it names a missing file.
    sound: bool,
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
            self.max_file = self.max_file.max(state.next_file.0);
            self.max_seq = self.max_seq.max(state.last_seq);
        }
        let db_id = self.choose_db_id(&old, &names, &lost_names);

        // Which files to read.
        let live_tables: BTreeSet<FileNumber> = old
            .state
            .iter()
            .flat_map(|s| s.all_tables().map(|t| t.id))
            .collect();
        let live_wals = old
            .state
            .as_ref()
            .map(|s| s.live_wals.clone())
            .unwrap_or_default();
        let live_vlogs: BTreeSet<FileNumber> = old
            .state
            .iter()
            .flat_map(|s| s.vlogs.keys().copied())
            .collect();
        let mut present_tables = BTreeSet::new();
        let mut present_wals = BTreeSet::new();
        let mut present_vlogs = BTreeSet::new();
        for name in &names {
            match parse_file_name(name) {
                Some(FileKind::Table(n)) => present_tables.insert(n),
                Some(FileKind::Wal(n)) => present_wals.insert(n),
                Some(FileKind::ValueLog(n)) => present_vlogs.insert(n),
                _ => false,
            };
        }
        // A sound manifest that names a missing file is older than the
        // files (cut at a line boundary, or files lost): not trusted.
        let mut missing: Vec<String> = Vec::new();
        if old.sound {
            missing.extend(
                live_tables
                    .difference(&present_tables)
                    .map(|n| names::table_name(*n)),
            );
            missing.extend(
                live_wals
                    .difference(&present_wals)
                    .map(|n| names::wal_name(*n)),
            );
            missing.extend(
                live_vlogs
                    .difference(&present_vlogs)
                    .map(|n| names::vlog_name(*n)),
            );
        }
        let trusted = old.sound && missing.is_empty();
        if !missing.is_empty() {
            self.report.notes.push(format!(
                "the manifest names {}, which {} missing: every file of the directory and of lost/ is read",
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" }
            ));
        }
        // With a trusted manifest, an orphan is read only if it holds writes
        // the manifest never saw (newer than its last sequence number):
        // older ones are replaced compaction inputs or flushed WALs, and
        // would bring back what was since deleted.
        let known_seq = old.state.as_ref().map_or(SeqNo::ZERO, |s| s.last_seq);
        let mut tables: Vec<PathBuf> = Vec::new();
        let mut wals: Vec<(PathBuf, FileNumber)> = Vec::new();
        let mut vlogs: HashMap<FileNumber, VlogSource> = HashMap::new();
        let mut kept_vlogs: BTreeMap<FileNumber, VlogMeta> = BTreeMap::new();
        let dir_reader = Arc::new(VlogReader::new(fs.clone(), dir.clone()));
        let lost_reader = Arc::new(VlogReader::new(fs.clone(), self.lost.clone()));
        for name in &names {
            let path = dir.join(name);
            match parse_file_name(name) {
                Some(FileKind::Table(n)) => {
                    if !trusted
                        || live_tables.contains(&n)
                        || table_max_seq(&*fs, &path) > known_seq
                    {
                        tables.push(path);
                    } else {
                        self.ignore_orphan(path);
                    }
                }
                Some(FileKind::Wal(n)) => {
                    if !trusted
                        || live_wals.contains(&n)
                        || wal_max_seq(&*fs, &path, n, db_id) > known_seq
                    {
                        wals.push((path, n));
                    } else {
                        self.ignore_orphan(path);
                    }
                }
                Some(FileKind::ValueLog(n)) => {
                    let intact = self.vlog_intact(&path);
                    let orphan = trusted && !live_vlogs.contains(&n);
                    let kept = intact && !orphan;
                    if kept {
                        let discard_bytes = old
                            .state
                            .as_ref()
                            .and_then(|s| s.vlogs.get(&n))
                            .map_or(0, |m| m.discard_bytes);
                        kept_vlogs.insert(n, VlogMeta { discard_bytes });
                    } else if orphan && intact {
                        self.ignore_orphan(path);
                    }
                    vlogs.insert(
                        n,
                        VlogSource {
                            reader: dir_reader.clone(),
                            kept,
                        },
                    );
                }
                _ => {}
            }
        }
        for name in &lost_names {
            let path = self.lost.join(name);
            match parse_file_name(name) {
                Some(FileKind::Table(_)) => tables.push(path),
                Some(FileKind::Wal(n)) => wals.push((path, n)),
                Some(FileKind::ValueLog(n)) => {
                    if let std::collections::hash_map::Entry::Vacant(e) = vlogs.entry(n) {
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

        // Sources of the merge: each table, and all WAL entries sorted; the
        // range tombstones of both apart.
        let mut sources: Vec<Source> = Vec::new();
        let mut range_tombstones: Vec<RangeTombstone> = Vec::new();
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
                    for e in t.problems() {
                        self.report.repaired.push(problem_of(path, e));
                    }
                    if let Some(e) = t.lost_data() {
                        self.report.drop_error(path, e);
                    }
                    if let Some(e) = t.range_tombstone_damage() {
                        let mut problem = problem_of(path, e);
                        problem.what = format!(
                            "range-tombstone block: {}; its range deletes are lost",
                            problem.what
                        );
                        self.report.dropped.push(problem);
                    }
                    self.report.range_tombstones_from_tables += t.range_tombstones().len() as u64;
                    range_tombstones.extend_from_slice(t.range_tombstones());
                    if t.problems().is_empty()
                        && t.lost_data().is_none()
                        && t.range_tombstone_damage().is_none()
                    {
                        self.consumed.push(path.clone());
                    } else {
                        self.damaged.push(path.clone());
                    }
                    sources.push(Source::Table(Box::new(TableSource {
                        table: t,
                        next_block: 0,
                        buf: Vec::new().into_iter(),
                        last_key: None,
                        damaged: false,
                    })));
                }
                Err(e) => {
                    self.report.drop_error(path, &e);
                    self.damaged.push(path.clone());
                }
            }
        }
        let mut wal = WalContents::default();
        for (path, number) in &wals {
            self.report.wals_read += 1;
            self.read_wal(path, *number, db_id, &mut wal);
        }
        self.report.entries_from_wals = wal.entries.len() as u64;
        self.report.range_tombstones_from_wals = wal.range_tombstones.len() as u64;
        wal.entries
            .sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
        sources.push(Source::Sorted(wal.entries.into_iter()));
        range_tombstones.extend(wal.range_tombstones);

        // The rebuilt database has an identity even if the old one had none.
        let new_db_id = if db_id == 0 {
            self.report
                .notes
                .push("no file names the database's identity: a new one is chosen".into());
            random_db_id()
        } else {
            db_id
        };
        let metas = self.write_tables(sources, range_tombstones, &vlogs, new_db_id)?;
        self.report.vlogs_kept = kept_vlogs.len();

        // The new manifest.
        let num_levels = self.options.num_levels;
        let mut state = ManifestState::new(num_levels);
        state.db_id = new_db_id;
        state.last_seq = self.max_seq;
        state.next_file = FileNumber(self.max_file + 1);
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
                self.report.repaired.push(Problem {
                    file: path.clone(),
                    offset: Some(bad.offset),
                    what: bad.what.clone(),
                });
            }
            let sound = v.is_ok() && v.torn_tail_at.is_none();
            if !sound {
                self.report.notes.push(
                    "the manifest is damaged: every file of the directory and of lost/ is read"
                        .to_string(),
                );
            }
            if v.state.is_some() {
                return Ok(OldManifest {
                    state: v.state,
                    sound,
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
                    sound: false,
                });
            }
        }
        Ok(OldManifest {
            state: None,
            sound: false,
        })
    }

    /// The database identity files are checked against: the manifest's,
    /// else the one most tables and WALs name, else 0 (unknown: every file
    /// is accepted, as for a database from before identities).
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
            None => 0,
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
}

impl Repair {
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
