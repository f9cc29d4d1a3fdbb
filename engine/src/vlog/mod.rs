//! KV separation: values of at least `value_threshold` bytes are written
//! once to the value log and the tree holds a 20-byte pointer to them
//! (docs/vlog-format.md). This module owns the value-log part of the
//! database ([`ValueLog`]), the active value-log file (on the write
//! leader's side, [`ActiveVlog`]), separating values on the write path,
//! the write path's garbage estimate, and resolving pointers; garbage
//! collection is in [`gc`]. The handles of live files, which readers hold,
//! are in `version.rs` with the table handles.
//!
//! Durability: a value reaches the value log before the WAL record that
//! points to it; the value log is synced before the WAL whenever the WAL is
//! synced (synced writes, memtable freeze, close), so a durable pointer
//! never outlives its value.

pub(crate) mod gc;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use jkv_format::pointer::POINTER_LEN;
use jkv_format::{Error, FileNumber, FileSystem, Result, SeqNo, ValueKind, ValuePointer};
use jkv_manifest::VersionEdit;
use jkv_memtable::Memtable;
use jkv_vlog::{VlogReader, VlogWriter};

use crate::batch::WriteBatch;
use crate::db::DbInner;
use crate::read::lookup_below_active;
use crate::version::VlogHandleSource;
use crate::view::SuperVersion;

pub use gc::VlogGcReport;
use gc::VlogGcState;

/// The value-log file taking large values, on the write leader's side
/// (held in the writer state, so under the writer lock).
#[derive(Default)]
pub(crate) struct ActiveVlog {
    /// Created on first use.
    file: Option<VlogWriter>,
    /// The file holds appends not yet synced.
    dirty: bool,
}

impl ActiveVlog {
    /// Syncs the value log if it holds appends not yet synced: done before
    /// any WAL sync, so a durable pointer never outlives its value.
    pub fn sync_if_dirty(&mut self) -> Result<()> {
        if self.dirty {
            if let Some(vlog) = self.file.as_mut() {
                vlog.sync()?;
            }
            self.dirty = false;
        }
        Ok(())
    }

    /// After appends: hands them to the file (synced when `sync`), before
    /// the WAL records that point to them.
    pub fn flush_appends(&mut self, sync: bool) -> Result<()> {
        if self.dirty {
            if let Some(vlog) = self.file.as_mut() {
                vlog.flush()?;
                if sync {
                    vlog.sync()?;
                    self.dirty = false;
                }
            }
        }
        Ok(())
    }
}

/// The value-log part of the database: pointer resolution, the active
/// file's number, and garbage-collection bookkeeping.
///
/// Locks: `gc_run` is the outermost lock of all (lock order 0), held for a
/// whole collection run. `gc` and `garbage_estimate` are leaves, held
/// briefly and never while taking another lock.
pub(crate) struct ValueLog {
    /// Resolves value pointers (shared with the value-log file handles).
    reader: Arc<VlogReader>,
    /// The value-log file appends go to (0 before the first), so garbage
    /// collection leaves it alone.
    active_number: AtomicU64,
    /// Garbage-collection bookkeeping (leaf lock).
    gc: Mutex<VlogGcState>,
    /// Held for a whole garbage-collection run (lock order 0: taken before
    /// the writer lock), so runs do not overlap.
    gc_run: Mutex<()>,
    /// The value-log census (see `vlog_census`) has not run since open.
    census_due: AtomicBool,
    /// Value-log garbage seen by the write path since open, by file (leaf
    /// lock); see `vlog_garbage_view`.
    garbage_estimate: Mutex<HashMap<FileNumber, u64>>,
}

impl ValueLog {
    /// The value log of the database in `dir`; `census_due` when values
    /// are separated (the census then runs with the first collection).
    pub fn new(fs: Arc<dyn FileSystem>, dir: &Path, census_due: bool) -> ValueLog {
        ValueLog {
            reader: Arc::new(VlogReader::new(fs, dir.to_path_buf())),
            active_number: AtomicU64::new(0),
            gc: Mutex::new(VlogGcState::default()),
            gc_run: Mutex::new(()),
            census_due: AtomicBool::new(census_due),
            garbage_estimate: Mutex::new(HashMap::new()),
        }
    }

    /// What the published view needs to make file handles.
    pub fn handle_source(&self, fs: Arc<dyn FileSystem>, dir: &Path) -> VlogHandleSource {
        VlogHandleSource::new(fs, dir.to_path_buf(), self.reader.clone())
    }

    /// The file appends go to, once there is one.
    pub fn active_file(&self) -> Option<FileNumber> {
        let n = self.active_number.load(Ordering::Acquire);
        (n != 0).then_some(FileNumber(n))
    }

    /// Resolves `pointer`, the value of `key`.
    pub fn read(&self, pointer: &ValuePointer, key: &[u8]) -> Result<Bytes> {
        self.reader.read(pointer, key)
    }
}

impl DbInner {
    /// The value-log file to append to, created (or rolled over at
    /// `vlog_file_size`) as needed. Write leader only (under the writer
    /// lock, which owns `active`).
    fn active_vlog<'a>(
        &self,
        active: &'a mut ActiveVlog,
        mem: &Arc<Memtable>,
    ) -> Result<&'a mut VlogWriter> {
        let roll = active
            .file
            .as_ref()
            .is_none_or(|v| v.len_bytes() >= self.options().vlog_file_size);
        if roll {
            if let Some(old) = active.file.as_mut() {
                old.sync()?;
            }
            let number = self.manifest().allocate_file_number();
            let vlog = VlogWriter::create(&**self.fs(), self.dir(), number)?
                .with_compression(self.options().vlog_compression);
            self.fs().sync_dir(self.dir())?;
            let edit = VersionEdit {
                new_vlogs: vec![number],
                next_file: Some(self.manifest().next_file()),
                ..VersionEdit::default()
            };
            // Active before the manifest names it, so that garbage
            // collection never takes the new, still empty file for a
            // sealed one with nothing live in it.
            self.vlog().active_number.store(number.0, Ordering::Release);
            let mut manifest = self.manifest().lock();
            manifest.apply(edit)?;
            self.view().publish(manifest.state(), Some(mem.clone()));
            drop(manifest);
            active.file = Some(vlog);
            // A file was sealed: collection may be due (overwrites counted
            // since the last flush are in the estimate).
            self.schedule_vlog_gc_from_writer();
        }
        Ok(active
            .file
            .as_mut()
            .expect("the active value log was just created"))
    }

    /// Moves the large values of a commit group's `batches` (the first
    /// starting at `first_seq`, each next one after the last) into the value
    /// log (`active`; `mem` is the active memtable, published again when a
    /// new file is named), and replaces each batch that had any with one
    /// holding pointers instead. All of the group's values go out in one
    /// vectored write from the batches' own bytes: a value is copied once,
    /// by the kernel, on its way to the value log.
    pub(crate) fn separate_group(
        &self,
        active: &mut ActiveVlog,
        mem: &Arc<Memtable>,
        batches: &mut [&mut WriteBatch],
        first_seq: SeqNo,
    ) -> Result<()> {
        let threshold = self
            .options()
            .value_threshold
            .expect("separate_group is called only with a value threshold");
        let mut firsts = Vec::with_capacity(batches.len());
        let mut seq = first_seq;
        for batch in batches.iter() {
            firsts.push(seq);
            seq = seq.plus(batch.len() as u64);
        }
        let needs = |b: &WriteBatch| b.value_len_max() >= threshold;
        if !batches.iter().any(|b| needs(b)) {
            return Ok(());
        }
        let vlog = self.active_vlog(active, mem)?;
        // Every large value of the group, in order, in one write.
        let large: Vec<_> = batches
            .iter()
            .zip(&firsts)
            .filter(|(b, _)| needs(b))
            .flat_map(|(b, &first)| b.large_values(threshold, first))
            .collect();
        let pointers = vlog.append_all_and_flush(&large)?;
        drop(large);
        active.dirty = true;
        let written: u64 = pointers.iter().map(|p| u64::from(p.len)).sum();
        // The batches with pointers, taking them in the same order.
        let mut pointers = pointers.iter().map(|p| p.encode());
        for batch in batches.iter_mut() {
            if needs(batch) {
                let separated = batch.with_pointers(threshold, pointers.by_ref())?;
                **batch = separated;
            }
        }
        self.counters()
            .vlog_bytes
            .fetch_add(written, Ordering::Relaxed);
        Ok(())
    }

    /// The write path's view for the value-log garbage estimate, or `None`
    /// when there is nothing to estimate (no separation, no value logs).
    ///
    /// Every value-log entry a write overwrites or deletes becomes garbage
    /// (unless a snapshot still reads it). The in-memory estimate lets
    /// garbage collection start before flushes and compactions count that
    /// garbage for good (the persisted `discard_bytes`); picking uses the
    /// larger of the two, so nothing is counted twice. Only large puts
    /// (pointers) and deletes are looked at: small puts keep the write path
    /// free of lookups, and a flush counts what they shadow. The version a
    /// write shadows in the active memtable comes free with the insert
    /// ([`jkv_memtable::Memtable::insert_and_see_previous`]); only keys not
    /// there cost a lookup ([`Self::shadowed_pointer_below`]).
    pub(crate) fn vlog_garbage_view(&self) -> Option<Arc<SuperVersion>> {
        self.options().value_threshold?;
        let sv = self.super_version();
        (!sv.vlogs.files.is_empty()).then_some(sv)
    }

    /// The value-log entry (file, bytes) of the newest version of `key`
    /// below the active memtable (frozen memtables, then tables), if that
    /// version is a pointer.
    pub(crate) fn shadowed_pointer_below(
        &self,
        sv: &SuperVersion,
        key: &[u8],
    ) -> Option<(FileNumber, u64)> {
        match lookup_below_active(self, sv, key, SeqNo::MAX) {
            Ok(Some((ValueKind::ValuePointer, raw))) => pointer_extent(&raw),
            _ => None,
        }
    }

    /// Adds garbage the write path found, as (file, bytes).
    pub(crate) fn add_vlog_garbage(&self, found: &[(FileNumber, u64)]) {
        if found.is_empty() {
            return;
        }
        let mut estimate = self.vlog().garbage_estimate.lock();
        for &(file, bytes) in found {
            *estimate.entry(file).or_insert(0) += bytes;
        }
    }

    /// The value a pointer entry of `key` refers to.
    pub(crate) fn resolve_pointer(&self, key: &[u8], raw: &[u8]) -> Result<Bytes> {
        let pointer = ValuePointer::decode(raw).ok_or_else(|| {
            Error::corruption(
                self.dir(),
                0,
                format!(
                    "value pointer of key {:?} is {} bytes, expected {POINTER_LEN}",
                    String::from_utf8_lossy(key),
                    raw.len()
                ),
            )
        })?;
        self.vlog().read(&pointer, key)
    }
}

/// (file, bytes) of the value-log entry an encoded pointer names.
pub(crate) fn pointer_extent(raw: &[u8]) -> Option<(FileNumber, u64)> {
    ValuePointer::decode(raw).map(|p| (p.file, u64::from(p.len)))
}
