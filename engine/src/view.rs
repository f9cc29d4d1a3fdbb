//! The published view: what readers see and what the background threads
//! wait on. Owns the frozen memtables, the table set (`Version`) and
//! value-log set last installed, the `SuperVersion` readers clone, the
//! visible sequence number and the shutdown flag. It never does file I/O
//! and never edits the manifest: callers apply their manifest edit first
//! and hand the result here to be published.
//!
//! Locks (see `db.rs` for the whole order):
//! - `state` (lock order 4) guards the frozen memtables, the installed
//!   `Version` and `VlogSet`, and `shutting_down`. No file I/O under it.
//!   `changed` is its condition variable: signalled when a frozen memtable
//!   is added or flushed, when a compaction ends, on a background error and
//!   on shutdown.
//! - `current` (lock order 5, innermost) guards the published
//!   `SuperVersion`; readers hold it only to clone the `Arc`.
//!
//! `visible_seq` and `l0_tables` are atomics: the sequence number readers
//! may see, and the L0 table count of the published version (write
//! backpressure reads it without a lock).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use jkv_format::{FileNumber, Result, SeqNo};
use jkv_manifest::ManifestState;
use jkv_memtable::Memtable;

use crate::snapshot::{Snapshot, SnapshotRegistry};
use crate::version::{TableDeleter, Version, VlogHandleSource, VlogSet};

/// Frozen memtables, installed sets and the shutdown flag (`View::state`).
struct ViewState {
    /// Frozen memtables, newest first; the flush thread takes the last.
    imms: Vec<Arc<Frozen>>,
    /// The table set last installed.
    version: Arc<Version>,
    /// The live value-log files last installed.
    vlogs: Arc<VlogSet>,
    /// Set by `close`: the flush thread exits once idle.
    shutting_down: bool,
}

/// What the flush thread is to do next (see [`View::next_flush`]).
pub(crate) enum NextFlush {
    /// Write out this frozen memtable (the oldest).
    Flush(Arc<Frozen>),
    /// A tick passed with nothing to flush.
    Idle,
    /// Shutting down, or a background error: the thread ends.
    Exit,
}

/// The published view (lock order 4 and 5; see the module comment).
pub(crate) struct View {
    state: Mutex<ViewState>,
    changed: Condvar,
    current: RwLock<Arc<SuperVersion>>,
    /// Sequence number of the last write readers may see.
    visible_seq: AtomicU64,
    /// L0 table count of the published version (write backpressure).
    l0_tables: AtomicUsize,
    /// Deletes obsolete table files when their last version goes.
    deleter: Arc<TableDeleter>,
    /// Makes handles for value-log files a new set names.
    vlog_handles: VlogHandleSource,
}

impl View {
    /// The view at open: the tables `manifest` names, nothing frozen, and
    /// an empty `SuperVersion` until recovery publishes the first one.
    pub fn new(
        manifest: &ManifestState,
        deleter: Arc<TableDeleter>,
        vlog_handles: VlogHandleSource,
        mem: Arc<Memtable>,
    ) -> View {
        View {
            state: Mutex::new(ViewState {
                imms: Vec::new(),
                version: Arc::new(Version::from_state(manifest, &Version::default(), &deleter)),
                vlogs: Arc::new(VlogSet::default()),
                shutting_down: false,
            }),
            changed: Condvar::new(),
            current: RwLock::new(Arc::new(SuperVersion {
                mem,
                imms: Vec::new(),
                version: Arc::new(Version::default()),
                vlogs: Arc::new(VlogSet::default()),
            })),
            visible_seq: AtomicU64::new(0),
            l0_tables: AtomicUsize::new(0),
            deleter,
            vlog_handles,
        }
    }

    /// The published view.
    pub fn super_version(&self) -> Arc<SuperVersion> {
        self.current.read().clone()
    }

    /// Sequence number of the last write readers may see.
    pub fn visible_seq(&self) -> SeqNo {
        SeqNo(self.visible_seq.load(Ordering::Acquire))
    }

    /// Makes the writes up to `seq` visible (write leader, recovery).
    pub fn set_visible_seq(&self, seq: SeqNo) {
        self.visible_seq.store(seq.0, Ordering::Release);
    }

    /// A snapshot at the visible sequence number, read and pinned in one
    /// step (see [`Snapshot::of_current`]).
    pub fn snapshot(&self, registry: &Arc<SnapshotRegistry>) -> Snapshot {
        Snapshot::of_current(&self.visible_seq, registry.clone())
    }

    /// L0 table count of the published version.
    pub fn l0_tables(&self) -> usize {
        self.l0_tables.load(Ordering::Acquire)
    }

    /// Publishes a new `SuperVersion` built from `state` and `mem`.
    fn install(&self, state: &ViewState, mem: Arc<Memtable>) {
        self.l0_tables
            .store(state.version.levels[0].len(), Ordering::Release);
        let sv = Arc::new(SuperVersion {
            mem,
            imms: state.imms.clone(),
            version: state.version.clone(),
            vlogs: state.vlogs.clone(),
        });
        *self.current.write() = sv;
    }

    /// Makes the table and value-log sets of `manifest` (just edited, its
    /// lock held) the current ones and publishes them with `mem` as the
    /// active memtable. Handles of files that stay are reused.
    fn publish_locked(
        &self,
        manifest: &ManifestState,
        state: &mut ViewState,
        mem: Option<Arc<Memtable>>,
    ) {
        state.version = Arc::new(Version::from_state(manifest, &state.version, &self.deleter));
        state.vlogs = Arc::new(self.vlog_handles.set_from(manifest, &state.vlogs));
        let mem = mem.unwrap_or_else(|| self.super_version().mem.clone());
        self.install(state, mem);
    }

    /// Publishes the sets of `manifest` (just edited, its lock held) with
    /// `mem` as the active memtable (`None`: keep the published one).
    pub fn publish(&self, manifest: &ManifestState, mem: Option<Arc<Memtable>>) {
        let mut state = self.state.lock();
        self.publish_locked(manifest, &mut state, mem);
    }

    /// Publishes `manifest` after a compaction: the tables `obsolete` names
    /// are marked compacted away first (their files go with their last
    /// reader).
    pub fn publish_compacted(&self, manifest: &ManifestState, obsolete: &[FileNumber]) {
        let mut state = self.state.lock();
        for &id in obsolete {
            if let Some(handle) = state.version.handle(id) {
                handle.mark_obsolete();
            }
        }
        self.publish_locked(manifest, &mut state, None);
    }

    /// Publishes `manifest` after value-log files were retired: their
    /// handles are marked obsolete first (the files go with their last
    /// reader).
    pub fn publish_retired_vlogs(&self, manifest: &ManifestState, retired: &[FileNumber]) {
        let mut state = self.state.lock();
        for n in retired {
            if let Some(handle) = state.vlogs.files.get(n) {
                handle.mark_obsolete();
            }
        }
        self.publish_locked(manifest, &mut state, None);
    }

    /// Publishes `manifest` once `frozen` is in a table: it leaves the
    /// frozen memtables. Wakes the waiters.
    pub fn publish_flushed(&self, manifest: &ManifestState, frozen: &Arc<Frozen>) {
        {
            let mut state = self.state.lock();
            let position = state.imms.iter().position(|f| Arc::ptr_eq(f, frozen));
            let position = position.expect("only the flush thread removes frozen memtables");
            state.imms.remove(position);
            self.publish_locked(manifest, &mut state, None);
        }
        self.changed.notify_all();
    }

    /// Adds `frozen` as the newest frozen memtable and publishes `mem` as
    /// the active one. Wakes the flush thread.
    pub fn add_frozen(&self, frozen: Frozen, mem: Arc<Memtable>) {
        {
            let mut state = self.state.lock();
            state.imms.insert(0, Arc::new(frozen));
            self.install(&state, mem);
        }
        self.changed.notify_all();
    }

    /// Number of frozen memtables.
    pub fn frozen_count(&self) -> usize {
        self.state.lock().imms.len()
    }

    /// Waits while there are `max` or more frozen memtables; `check` runs
    /// before each wait and ends it with its error. Returns when the wait
    /// began, if it did.
    pub fn wait_for_frozen_below(
        &self,
        max: usize,
        check: impl Fn() -> Result<()>,
    ) -> Result<Option<Instant>> {
        let mut state = self.state.lock();
        let mut stalled_since = None;
        while state.imms.len() >= max {
            check()?;
            stalled_since.get_or_insert_with(Instant::now);
            self.changed.wait(&mut state);
        }
        Ok(stalled_since)
    }

    /// Waits until no memtable is frozen; `check` runs before each look and
    /// ends the wait with its error.
    pub fn wait_for_no_frozen(&self, check: impl Fn() -> Result<()>) -> Result<()> {
        let mut state = self.state.lock();
        loop {
            check()?;
            if state.imms.is_empty() {
                return Ok(());
            }
            self.changed.wait(&mut state);
        }
    }

    /// Waits while the published version has `stop` or more L0 tables,
    /// looking again at least every 100 ms; `check` runs before each wait
    /// and ends it with its error.
    pub fn wait_for_l0_below(&self, stop: usize, check: impl Fn() -> Result<()>) -> Result<()> {
        let mut state = self.state.lock();
        while self.l0_tables() >= stop {
            check()?;
            self.changed
                .wait_for(&mut state, Duration::from_millis(100));
        }
        Ok(())
    }

    /// For the flush thread: the oldest frozen memtable, or `Idle` after
    /// `tick` with none, or `Exit` once `failed()` says so or shutdown
    /// leaves nothing to flush.
    pub fn next_flush(&self, failed: impl Fn() -> bool, tick: Duration) -> NextFlush {
        let mut state = self.state.lock();
        loop {
            if failed() {
                return NextFlush::Exit;
            }
            if let Some(oldest) = state.imms.last() {
                return NextFlush::Flush(oldest.clone());
            }
            if state.shutting_down {
                return NextFlush::Exit;
            }
            if self.changed.wait_for(&mut state, tick).timed_out() {
                return NextFlush::Idle;
            }
        }
    }

    /// Tells the flush thread to exit once idle.
    pub fn shut_down(&self) {
        self.state.lock().shutting_down = true;
        self.changed.notify_all();
    }

    /// Wakes every waiter after a change they look at under the `state`
    /// lock but that is not guarded by it (a background error): passing
    /// through that lock puts this notification after any such look, so no
    /// waiter misses it.
    pub fn wake_all(&self) {
        drop(self.state.lock());
        self.changed.notify_all();
    }

    /// Wakes every waiter after a change they re-check on a timeout anyway
    /// (L0 shrinking after a compaction).
    pub fn notify(&self) {
        self.changed.notify_all();
    }
}

/// A frozen memtable waiting for flush, with the WAL that holds its writes.
#[derive(Debug)]
pub(crate) struct Frozen {
    pub mem: Arc<Memtable>,
    /// `None` when the WAL is disabled.
    pub wal: Option<FileNumber>,
}

/// Everything a read needs, captured at once.
#[derive(Debug)]
pub(crate) struct SuperVersion {
    /// The memtable taking writes.
    pub mem: Arc<Memtable>,
    /// Frozen memtables, newest first.
    pub imms: Vec<Arc<Frozen>>,
    /// The tables.
    pub version: Arc<Version>,
    /// The value-log files readers may need: held so that a collected file
    /// outlives every reader that could still resolve a pointer into it.
    pub vlogs: Arc<VlogSet>,
}
