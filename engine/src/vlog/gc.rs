//! Value-log garbage collection (docs/vlog-format.md, "Garbage
//! collection"):
//! 0. once after each open, a census of the tree's pointers corrects the
//!    garbage counts a crash left short (`vlog_census`);
//! 1. gather facts about each file (sizes, discard counts, the write
//!    path's estimate) and let the pure picker `jkv_vlog::gc::pick` choose:
//!    files all dead are dropped without reading them; files past the
//!    garbage ratio, or with the most garbage while the log is over its
//!    space budget, and batches of small files are rewritten;
//! 2. under the writer lock (no write can slip in between), check each of
//!    a rewritten file's entries against the tree: only an entry the newest
//!    version of its key still points to is live; rewrite live entries
//!    through the write path, synced;
//! 3. once no snapshot older than the rewrite is live (at once for a
//!    dropped file), a manifest edit removes the file; the file itself is
//!    deleted when the last reader (super-version) that could still read
//!    it is gone.
//!
//! Runs start after open, when a file rolls, after flushes and compactions,
//! and when the database is idle (the flush thread's tick), as background
//! jobs (`DbInner::spawn_job`). Locks: the run lock `ValueLog::gc_run`
//! (lock order 0) for a whole run; the bookkeeping here (`ValueLog::gc`)
//! is a leaf.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use jkv_compaction::MergingIterator;
use jkv_format::key::{kind_byte_of, user_key};
use jkv_format::names::vlog_path;
use jkv_format::{Error, FileNumber, InternalIterator, Result, SeqNo, ValueKind};
use jkv_manifest::VersionEdit;
use jkv_vlog::gc::Choice;
use jkv_vlog::{GcPolicy, VlogFileFacts, VlogIter};

use crate::batch::WriteBatch;
use crate::db::DbInner;
use crate::iter::LevelIter;

use super::pointer_extent;

/// More sealed value-log files smaller than a quarter of `vlog_file_size`
/// than this are merged (see [`jkv_vlog::gc`]).
const SMALL_VLOG_FILES_MAX: usize = 8;

/// What one garbage collection run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VlogGcReport {
    /// Value-log files collected (rewritten and retired).
    pub files_collected: usize,
    /// Entries still live that were rewritten.
    pub entries_rewritten: u64,
    /// Bytes of the collected files.
    pub bytes_collected: u64,
}

/// Value-log bookkeeping outside the writer (leaf lock `ValueLog::gc`).
#[derive(Debug, Default)]
pub(super) struct VlogGcState {
    /// Collected files waiting for older snapshots to go: (file, sequence
    /// number of the last rewrite).
    pending: Vec<(FileNumber, SeqNo)>,
    /// A collection is running (one at a time).
    running: bool,
}

impl DbInner {
    /// Runs garbage collection until nothing is due. One run at a time: a
    /// caller waits for a run in progress, then runs its own.
    pub(crate) fn vlog_gc(&self) -> Result<VlogGcReport> {
        let _run = self.vlog().gc_run.lock();
        self.vlog_gc_locked()
    }

    fn vlog_gc_locked(&self) -> Result<VlogGcReport> {
        self.vlog().gc.lock().running = true;
        if self.vlog().census_due.swap(false, Ordering::AcqRel) {
            // Damage the census meets is left for reads and `jkv check` to
            // report; without the census the counts merely stay as low as
            // they were.
            if let Err(e) = self.vlog_census() {
                if matches!(e, Error::ReadOnly(_)) {
                    self.vlog().gc.lock().running = false;
                    return Err(e);
                }
            }
        }
        let result = self.vlog_gc_loop();
        self.vlog().gc.lock().running = false;
        self.retire_collected_vlogs()?;
        result
    }

    fn vlog_gc_loop(&self) -> Result<VlogGcReport> {
        let mut report = VlogGcReport::default();
        let mut done: Vec<FileNumber> = Vec::new();
        loop {
            let (facts, active, busy) = self.vlog_facts(&done);
            let Some(choice) = jkv_vlog::gc::pick(&facts, active, &busy, &self.vlog_gc_policy())
            else {
                break;
            };
            self.check_writable()?;
            match choice {
                Choice::Drop(files) => {
                    let bytes: u64 = facts
                        .iter()
                        .filter(|f| files.contains(&f.number))
                        .map(|f| f.size_bytes)
                        .sum();
                    self.drop_dead_vlogs(&files);
                    report.files_collected += files.len();
                    report.bytes_collected += bytes;
                    done.extend(files);
                }
                Choice::Rewrite { files, .. } => {
                    for file in files {
                        self.check_writable()?;
                        let (rewritten, bytes) = self.collect_vlog(file)?;
                        report.files_collected += 1;
                        report.entries_rewritten += rewritten;
                        report.bytes_collected += bytes;
                        done.push(file);
                    }
                }
            }
        }
        Ok(report)
    }

    /// When collection is due, from the options.
    fn vlog_gc_policy(&self) -> GcPolicy {
        let file_size = self.options().vlog_file_size;
        GcPolicy {
            garbage_ratio: self.options().vlog_gc_garbage_ratio,
            space_amp_max: self.options().vlog_space_amp_max,
            small_file_bytes: file_size / 4,
            small_files_max: SMALL_VLOG_FILES_MAX,
            merge_bytes_max: file_size,
        }
    }

    /// What the picker needs: the facts of every file the manifest names,
    /// the active file, and the busy files (`done` in this run, and those
    /// waiting for retirement). File sizes are read outside every lock.
    fn vlog_facts(
        &self,
        done: &[FileNumber],
    ) -> (Vec<VlogFileFacts>, Option<FileNumber>, Vec<FileNumber>) {
        let mut busy: Vec<FileNumber> = done.to_vec();
        let (counts, active) = {
            let manifest = self.manifest().lock();
            // Read under the manifest lock, as retirement takes files out
            // of `pending` under it: a file is either still pending here or
            // already gone from the manifest, never neither.
            busy.extend(self.vlog().gc.lock().pending.iter().map(|p| p.0));
            let estimate = self.vlog().garbage_estimate.lock();
            let counts: Vec<(FileNumber, u64, u64)> = manifest
                .state()
                .vlogs
                .iter()
                .map(|(&n, meta)| {
                    let guess = estimate.get(&n).copied().unwrap_or(0);
                    (n, meta.discard_bytes, meta.discard_bytes.max(guess))
                })
                .collect();
            // Read after the manifest (under its lock): a file that
            // rolling just named is already the active one here, so it is
            // never mistaken for an empty sealed file.
            (counts, self.vlog().active_file())
        };
        let facts = counts
            .into_iter()
            .filter_map(|(n, dead, garbage)| {
                // A file the manifest names but that cannot be sized is
                // left alone (reads report it).
                let size = self.fs().file_size(&vlog_path(self.dir(), n)).ok()?;
                Some(VlogFileFacts {
                    number: n,
                    size_bytes: size,
                    dead_bytes: dead,
                    garbage_bytes: garbage,
                })
            })
            .collect();
        (facts, active, busy)
    }

    /// Queues files whose entries are all dead for retirement, without
    /// reading them. Their dead bytes were counted when flushes and
    /// compactions dropped the last versions pointing to them (versions no
    /// snapshot could read), or by the census, which found no version
    /// pointing to them at all: no snapshot can read them, so they are
    /// ready at once.
    fn drop_dead_vlogs(&self, files: &[FileNumber]) {
        let mut gc = self.vlog().gc.lock();
        for f in files {
            gc.pending.push((*f, SeqNo(0)));
        }
        drop(gc);
        self.counters()
            .vlog_gc_files
            .fetch_add(files.len() as u64, Ordering::Relaxed);
    }

    /// Counts, once after each open, the bytes of each value-log file that
    /// versions in the tree point to, and corrects the garbage figures the
    /// picker uses with what it finds.
    ///
    /// The persisted discard counts grow when flushes and compactions drop
    /// versions. Entries no version ever pointed to are never counted that
    /// way (values whose write did not reach the WAL before a crash), nor is
    /// the write path's in-memory estimate of a process that did not close.
    /// Two figures come out of the census:
    ///
    /// - Dead for good: a sealed file's entry bytes beyond what any version
    ///   points to. When that is more than the file's discard count, the
    ///   difference is added to the count (a manifest edit), so a file
    ///   with nothing pointing into it is dropped without reading it. The
    ///   census reads a super-version taken under the manifest lock,
    ///   together with the counts: pointers into sealed files are only ever
    ///   removed after that (by flushes and compactions, which add to the
    ///   counts as they do), never added, so the correction never counts a
    ///   byte twice and never counts a live one.
    /// - Probably garbage: the entry bytes beyond what the newest version
    ///   of each key points to (older versions may still be read by a
    ///   snapshot, or wait for a compaction to drop them). This raises the
    ///   in-memory estimate, which only leads to a rewrite, and the rewrite
    ///   checks every entry against the tree.
    fn vlog_census(&self) -> Result<()> {
        let (sv, counts, active) = {
            let manifest = self.manifest().lock();
            let counts: Vec<(FileNumber, u64)> = manifest
                .state()
                .vlogs
                .iter()
                .map(|(&n, meta)| (n, meta.discard_bytes))
                .collect();
            let active = self.vlog().active_file();
            (self.super_version(), counts, active)
        };
        if counts.is_empty() {
            return Ok(());
        }
        let mut children: Vec<Box<dyn InternalIterator>> = vec![Box::new(sv.mem.iter())];
        for frozen in &sv.imms {
            children.push(Box::new(frozen.mem.iter()));
        }
        for (level, handles) in sv.version.levels.iter().enumerate() {
            let mut tables = Vec::with_capacity(handles.len());
            for handle in handles {
                tables.push((handle.clone(), self.open_table(&handle.meta)?));
            }
            if level == 0 {
                children.extend(
                    tables
                        .into_iter()
                        .map(|(_, t)| Box::new(t.iter()) as Box<dyn InternalIterator>),
                );
            } else if !tables.is_empty() {
                children.push(Box::new(LevelIter::new(tables)));
            }
        }
        let mut merged = MergingIterator::new(children, false);
        // Bytes per file pointed to by any version, and by newest versions.
        let mut any: HashMap<FileNumber, u64> = HashMap::new();
        let mut newest: HashMap<FileNumber, u64> = HashMap::new();
        let mut last_key: Vec<u8> = Vec::new();
        let mut first = true;
        merged.seek_to_start();
        while merged.valid() {
            let key = merged.key();
            let is_newest = first || user_key(key) != last_key.as_slice();
            if is_newest {
                last_key.clear();
                last_key.extend_from_slice(user_key(key));
                first = false;
            }
            if kind_byte_of(key) == ValueKind::ValuePointer as u8 {
                if let Some((file, bytes)) = pointer_extent(merged.value()) {
                    *any.entry(file).or_insert(0) += bytes;
                    if is_newest {
                        *newest.entry(file).or_insert(0) += bytes;
                    }
                }
            }
            merged.advance();
        }
        merged.status()?;
        let mut deltas = BTreeMap::new();
        let mut shadowed = Vec::new();
        for (n, discard) in counts {
            if Some(n) == active {
                continue;
            }
            let Ok(size) = self.fs().file_size(&vlog_path(self.dir(), n)) else {
                continue;
            };
            let entry_bytes = size.saturating_sub(jkv_vlog::HEADER_LEN as u64);
            let dead = entry_bytes.saturating_sub(any.get(&n).copied().unwrap_or(0));
            if dead > discard {
                deltas.insert(n, dead - discard);
            }
            shadowed.push((
                n,
                entry_bytes.saturating_sub(newest.get(&n).copied().unwrap_or(0)),
            ));
        }
        {
            let mut estimate = self.vlog().garbage_estimate.lock();
            for (n, bytes) in shadowed {
                let e = estimate.entry(n).or_insert(0);
                *e = (*e).max(bytes);
            }
        }
        if deltas.is_empty() {
            return Ok(());
        }
        let mut manifest = self.manifest().lock();
        let edit = VersionEdit {
            vlog_discards: crate::manifest_log::live_discards(manifest.state(), deltas),
            ..VersionEdit::default()
        };
        if edit != VersionEdit::default() {
            manifest.apply(edit).map_err(|e| self.poison(e))?;
        }
        Ok(())
    }

    /// Rewrites the live entries of `file`; queues it for retirement.
    /// Returns (entries rewritten, file bytes).
    fn collect_vlog(&self, file: FileNumber) -> Result<(u64, u64)> {
        let mut iter = VlogIter::open(&**self.fs(), self.dir(), file)?;
        let bytes = iter.data_len();
        let mut rewritten = 0u64;
        let mut chunk: Vec<jkv_vlog::VlogEntry> = Vec::new();
        let mut last_seq = SeqNo(0);
        loop {
            let entry = iter.next().transpose()?;
            let end = entry.is_none();
            chunk.extend(entry);
            if chunk.len() >= 256 || (end && !chunk.is_empty()) {
                let (n, seq) = self.rewrite_live(&chunk)?;
                rewritten += n;
                last_seq = last_seq.max(seq);
                chunk.clear();
            }
            if end {
                break;
            }
        }
        if self.options().wal {
            // An entry counts as dead when a newer write shadows it; that
            // write must be durable before the file can go, or a machine
            // crash would bring the dead entry back as the newest version.
            // Older WALs were synced when their memtables froze.
            let mut writer = self.writes().lock_writer();
            writer.sync().map_err(|e| self.poison(e))?;
        } else {
            // The rewrites and the shadowing writes live only in memtables
            // until flushed.
            self.flush_all()?;
        }
        let gc_seq = last_seq.max(self.view().visible_seq());
        self.vlog().gc.lock().pending.push((file, gc_seq));
        self.counters()
            .vlog_gc_files
            .fetch_add(1, Ordering::Relaxed);
        Ok((rewritten, bytes))
    }

    /// Under the writer lock: rewrites the entries the tree still points to.
    fn rewrite_live(&self, entries: &[jkv_vlog::VlogEntry]) -> Result<(u64, SeqNo)> {
        let mut writer = self.writes().lock_writer();
        // Checked under the writer lock, as the write path does: a commit
        // that failed after its WAL record was appended (a failed sync)
        // poisoned the database without advancing the sequence number, and
        // a second commit would log the same sequence numbers again.
        self.check_writable()?;
        let now = writer.last_seq();
        let mut batch = WriteBatch::new();
        for entry in entries {
            let current = self.lookup_raw(&entry.key, now)?;
            let live = matches!(&current, Some((ValueKind::ValuePointer, raw))
                if raw.as_ref() == entry.pointer.encode().as_slice());
            if live {
                batch.put(&entry.key, &entry.value);
            }
        }
        let n = batch.len() as u64;
        if n > 0 {
            self.commit_locked(&mut writer, &mut [&mut batch], true)?;
            self.counters()
                .vlog_gc_rewritten
                .fetch_add(n, Ordering::Relaxed);
        }
        Ok((n, writer.last_seq()))
    }

    /// Removes collected files from the manifest once no snapshot older than
    /// their rewrite is live; the files go when no reader holds them.
    ///
    /// The manifest lock is held from taking the ready files out of
    /// `pending` until the edit removing them is applied: in between, a
    /// collection run (which reads `pending` and the manifest under that
    /// lock, [`Self::vlog_facts`]) would see a file neither busy nor gone
    /// and pick it again, and its retirement would then remove a file the
    /// manifest no longer names.
    pub(crate) fn retire_collected_vlogs(&self) -> Result<()> {
        let oldest = self.snapshots().oldest();
        let mut manifest = self.manifest().lock();
        let ready: Vec<FileNumber> = {
            let mut gc = self.vlog().gc.lock();
            let (ready, waiting): (Vec<_>, Vec<_>) = gc
                .pending
                .iter()
                .copied()
                .partition(|&(_, seq)| oldest.is_none_or(|o| o >= seq));
            gc.pending = waiting;
            ready.into_iter().map(|(n, _)| n).collect()
        };
        if ready.is_empty() {
            return Ok(());
        }
        let edit = VersionEdit {
            removed_vlogs: ready.clone(),
            ..VersionEdit::default()
        };
        if let Err(e) = manifest.apply(edit) {
            return Err(self.poison(e));
        }
        {
            let mut estimate = self.vlog().garbage_estimate.lock();
            for n in &ready {
                estimate.remove(n);
            }
        }
        self.view().publish_retired_vlogs(manifest.state(), &ready);
        Ok(())
    }

    /// `schedule_vlog_gc` for the write leader, which has `&self` only: the
    /// job needs an owning handle, taken from the flush thread's `Arc`
    /// through the weak self-reference.
    pub(crate) fn schedule_vlog_gc_from_writer(&self) {
        if let Some(me) = self.arc() {
            me.schedule_vlog_gc();
        }
    }

    /// Starts a background collection when a file may be due.
    pub(crate) fn schedule_vlog_gc(self: &Arc<Self>) {
        if self.options().value_threshold.is_none() || self.workers().is_closed() {
            return;
        }
        if !self.workers().has_pool() {
            return;
        }
        if self.vlog().gc.lock().running {
            return;
        }
        // The census after open runs whatever the counts say: it is what
        // finds the garbage they missed.
        if !self.vlog().census_due.load(Ordering::Acquire) {
            let (facts, active, busy) = self.vlog_facts(&[]);
            if jkv_vlog::gc::pick(&facts, active, &busy, &self.vlog_gc_policy()).is_none() {
                let _ = self.retire_collected_vlogs();
                return;
            }
        }
        self.spawn_job(
            |inner| {
                // Skip when a run is already going (it collects what is due).
                match inner.vlog().gc_run.try_lock() {
                    Some(_run) => inner.vlog_gc_locked().map(drop),
                    None => Ok(()),
                }
            },
            |_| {},
        );
    }
}
