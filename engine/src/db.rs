//! The `Db` handle and the shared state behind it.
//!
//! Lock order (outermost first); a thread holding one lock only takes locks
//! further down this list:
//! 0. `vlog_gc_run` — held for a whole value-log collection.
//! 1. `writer`   — the write-group leader's state: active WAL, active
//!    memtable, last assigned sequence. Held for a whole commit group.
//! 2. `manifest` — manifest appends (file I/O).
//!    `compaction` — the conflict tracker (after `manifest`).
//! 3. `state`    — frozen memtables and the shutdown flag; no file I/O
//!    under it. `state_changed` is its condition variable.
//! 4. `current`  — the published `SuperVersion`; readers clone the `Arc`.
//!
//! `queue`, `bg_error` and the snapshot registry are leaves, held briefly and
//! never while waiting for another lock.

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};

use jkv_format::fs::DirLock;
use jkv_format::{Error, FileNumber, FileSystem, Result, SeqNo};
use jkv_manifest::{Manifest, ManifestState};
use jkv_memtable::Memtable;
use jkv_sstable::TableCache;

use crate::batch::WriteBatch;
use crate::compaction::{CompactionState, JobTracker};
use crate::iter::DbIterator;
use crate::options::{Options, WriteOptions};
use crate::snapshot::{Snapshot, SnapshotRegistry};
use crate::stats::{Counters, Stats};
use crate::version::{Frozen, SuperVersion, TableDeleter, Version};
use crate::vlog::{VlogGcReport, VlogGcState, VlogSet};
use crate::wal::writer::WalWriter;
use crate::write::WriteQueue;

/// State owned by the write-group leader (lock order 1).
pub(crate) struct WriterState {
    /// The active WAL; `None` when the WAL is disabled.
    pub wal: Option<WalWriter>,
    /// The active memtable (the same one `current` publishes).
    pub mem: Arc<Memtable>,
    /// Last sequence number assigned.
    pub last_seq: SeqNo,
    /// Write delay owed under L0 backpressure, paid in sleeps of >= 1 ms.
    pub throttle_debt: std::time::Duration,
    /// The value-log file taking large values (created on first use).
    pub vlog: Option<jkv_vlog::VlogWriter>,
    /// The value log holds appends not yet synced.
    pub vlog_dirty: bool,
}

/// Frozen memtables and lifecycle flags (lock order 3).
pub(crate) struct DbState {
    /// Frozen memtables, newest first; the flush thread takes the last.
    pub imms: Vec<Arc<Frozen>>,
    /// The table set last installed.
    pub version: Arc<Version>,
    /// The live value-log files last installed.
    pub vlogs: Arc<VlogSet>,
    /// Set by `close`: the flush thread exits once idle.
    pub shutting_down: bool,
}

/// Everything the handle and the background thread share.
pub(crate) struct DbInner {
    pub dir: PathBuf,
    /// The database's identity (manifest `db_id`), written into WAL headers.
    pub db_id: u64,
    pub fs: Arc<dyn FileSystem>,
    pub options: Options,
    pub writer: Mutex<WriterState>,
    pub manifest: Mutex<Manifest>,
    pub state: Mutex<DbState>,
    /// Signalled when a frozen memtable is added or flushed, on background
    /// errors and on shutdown.
    pub state_changed: Condvar,
    pub current: RwLock<Arc<SuperVersion>>,
    pub queue: Mutex<WriteQueue>,
    pub queue_changed: Condvar,
    /// Signalled when a write is queued while a leader gathers its group.
    pub queue_gather: Condvar,
    /// Sequence number of the last write readers may see.
    pub visible_seq: AtomicU64,
    /// Next file number to hand out (recorded in manifest edits).
    pub next_file: AtomicU64,
    pub snapshots: Arc<SnapshotRegistry>,
    pub table_cache: TableCache,
    /// Deletes obsolete table files when their last version goes.
    pub deleter: Arc<TableDeleter>,
    /// The conflict tracker; `compaction_done` is signalled when a task ends.
    pub compaction: Mutex<CompactionState>,
    pub compaction_done: Condvar,
    /// Runs compaction tasks; `None` when auto compactions are off.
    pub pool: Option<rayon::ThreadPool>,
    /// L0 table count of the published version (write backpressure).
    pub l0_tables: AtomicUsize,
    /// Compaction jobs handed to the pool and not yet finished.
    pub jobs: Arc<JobTracker>,
    /// Resolves value pointers (shared with the value-log file handles).
    pub vlog_reader: Arc<jkv_vlog::VlogReader>,
    /// The value-log file appends go to (0 before the first), so garbage
    /// collection leaves it alone.
    pub active_vlog_number: AtomicU64,
    /// Garbage-collection bookkeeping (leaf lock).
    pub vlog_gc: Mutex<VlogGcState>,
    /// Held for a whole garbage-collection run (outermost: taken before
    /// `writer`), so runs do not overlap.
    pub vlog_gc_run: Mutex<()>,
    /// `activity()` (writes + gets + scans) when the database was last
    /// found idle (none for a tick of the flush thread); the next write,
    /// get or scan ends the idleness.
    pub idle_at: AtomicU64,
    /// The value-log census (see `vlog_census`) has not run since open.
    pub vlog_census_due: AtomicBool,
    /// Value-log garbage seen by the write path since open, by file (leaf
    /// lock); see `estimate_vlog_garbage`.
    pub vlog_garbage_estimate: Mutex<std::collections::HashMap<u64, u64>>,
    /// A weak handle on this `DbInner`, for work started from `&self`.
    pub me: std::sync::OnceLock<std::sync::Weak<DbInner>>,
    /// First failure that made the database read-only.
    pub bg_error: Mutex<Option<Arc<Error>>>,
    pub closed: AtomicBool,
    pub counters: Counters,
    /// Ownership of the directory; released by `close`.
    pub lock: Mutex<Option<Box<dyn DirLock>>>,
}

impl DbInner {
    /// Hands out a new file number.
    pub fn allocate_file_number(&self) -> FileNumber {
        FileNumber(self.next_file.fetch_add(1, Ordering::SeqCst))
    }

    /// Makes the database refuse writes from now on, keeping the first cause.
    /// Never called with `state` held (it takes that lock).
    pub fn poison(&self, cause: Error) -> Error {
        let mut bg = self.bg_error.lock();
        let shared = bg.get_or_insert_with(|| Arc::new(cause)).clone();
        drop(bg);
        // Waiters on `state_changed` (flushes, stalled writers) look at
        // `bg_error` under the `state` lock and then wait: passing through
        // that lock puts this notification after any such look, so no
        // waiter misses it and sleeps on after the flush thread has exited.
        drop(self.state.lock());
        self.state_changed.notify_all();
        Error::ReadOnly(shared)
    }

    /// `Err` when writes are refused (closed, or an earlier failure).
    pub fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.check_healthy()
    }

    /// `Err` after a failure that made the database read-only.
    pub fn check_healthy(&self) -> Result<()> {
        match &*self.bg_error.lock() {
            Some(cause) => Err(Error::ReadOnly(cause.clone())),
            None => Ok(()),
        }
    }

    /// Publishes a new `SuperVersion` built from `state` and `mem`.
    pub fn install(&self, state: &DbState, mem: Arc<Memtable>) {
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
    /// active memtable (`None`: keep the published one). Handles of files
    /// that stay are reused.
    pub fn publish(
        &self,
        manifest: &ManifestState,
        state: &mut DbState,
        mem: Option<Arc<Memtable>>,
    ) {
        state.version = Arc::new(Version::from_state(manifest, &state.version, &self.deleter));
        state.vlogs = Arc::new(VlogSet::from_state(manifest, &state.vlogs, self));
        let mem = mem.unwrap_or_else(|| self.super_version().mem.clone());
        self.install(state, mem);
    }

    /// The published view.
    pub fn super_version(&self) -> Arc<SuperVersion> {
        self.current.read().clone()
    }
}

/// An open jkv database. `Send + Sync`: share it between threads with an
/// `Arc`. Dropping it closes it (errors are then lost; call
/// [`Db::close`] to see them).
pub struct Db {
    pub(crate) inner: Arc<DbInner>,
    pub(crate) flush_thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("dir", &self.inner.dir).finish()
    }
}

impl Db {
    /// Opens the database in `path`, creating it when missing (see
    /// [`Options::create_if_missing`]) and recovering every acknowledged
    /// write otherwise.
    ///
    /// Errors: [`Error::Locked`] when another owner holds the directory,
    /// [`Error::InvalidArgument`] for bad options or a path that is not a
    /// directory, [`Error::Corruption`] naming file and offset when recovery
    /// meets damaged bytes.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        crate::recovery::open(path.as_ref(), options)
    }

    /// Sets `key` to `value` (not synced; see [`Db::write`]).
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.put(key, value);
        self.write(batch, WriteOptions::default())
    }

    /// Deletes `key` (not synced; see [`Db::write`]).
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.write(batch, WriteOptions::default())
    }

    /// Deletes every key `k` with `start <= k < end` (not synced; see
    /// [`Db::write`]). One range tombstone, whatever the number of keys it
    /// covers; snapshots taken before it still read them. Errors with
    /// [`Error::InvalidArgument`] when `start > end`.
    pub fn delete_range(&self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete_range(start.as_ref()..end.as_ref());
        self.write(batch, WriteOptions::default())
    }

    /// Applies `batch` atomically: after a crash either all of it or none
    /// of it is there, and no reader sees part of it. Returns once the write
    /// is acknowledged (durable on disk when `options.sync`).
    pub fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<()> {
        self.inner.write(batch, options)
    }

    /// The newest value of `key`, or `None`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.inner.get_latest(key.as_ref())
    }

    /// The value of `key` as of `snapshot`, or `None`.
    pub fn get_at(&self, key: impl AsRef<[u8]>, snapshot: &Snapshot) -> Result<Option<Bytes>> {
        self.inner.get(key.as_ref(), snapshot.seq())
    }

    /// A snapshot of the database as it is now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of_current(&self.inner.visible_seq, self.inner.snapshots.clone())
    }

    /// Key-value pairs with keys in `range`, ascending, as of `snapshot`.
    /// Items are `Result`: damage met mid-scan ends it with the error.
    pub fn scan<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        snapshot: &Snapshot,
    ) -> DbIterator {
        let (start, end) = owned_bounds(&range);
        DbIterator::new(&self.inner, snapshot.seq(), start, end, false)
    }

    /// Like [`Db::scan`], descending.
    pub fn scan_rev<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        snapshot: &Snapshot,
    ) -> DbIterator {
        let (start, end) = owned_bounds(&range);
        DbIterator::new(&self.inner, snapshot.seq(), start, end, true)
    }

    /// Key-value pairs whose key starts with `prefix`, ascending.
    pub fn scan_prefix(&self, prefix: impl AsRef<[u8]>, snapshot: &Snapshot) -> DbIterator {
        let prefix = prefix.as_ref();
        let end = match prefix_successor(prefix) {
            Some(s) => Bound::Excluded(s),
            None => Bound::Unbounded,
        };
        DbIterator::new(
            &self.inner,
            snapshot.seq(),
            Bound::Included(prefix.to_vec()),
            end,
            false,
        )
    }

    /// Makes every write acknowledged before this call durable, as if each
    /// had been written with `WriteOptions { sync: true }`: syncs the value
    /// log, then the active WAL (older WALs were synced when they were
    /// replaced). Lets a caller that must not hold its own lock across an
    /// fsync write unsynced under the lock and sync after releasing it;
    /// concurrent callers' writes made before one of them syncs share that
    /// fsync. A failed sync poisons the writer, like a failed synced write.
    pub fn sync_wal(&self) -> Result<()> {
        self.inner.sync_wal()
    }

    /// Freezes the memtable and waits until every frozen memtable is in a
    /// table. Afterwards the WALs written so far are deleted.
    pub fn flush(&self) -> Result<()> {
        self.inner.flush_all()
    }

    /// Compacts every table holding keys in `range` into the last level:
    /// afterwards those keys are stored once, without versions no snapshot
    /// needs and without tombstones. Flushes the memtable first and waits
    /// until done (also for background compactions holding those tables).
    pub fn compact_range<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>) -> Result<()> {
        let (start, end) = owned_bounds(&range);
        let bound = |b: &Bound<Vec<u8>>| match b {
            Bound::Included(k) | Bound::Excluded(k) => Some(k.clone()),
            Bound::Unbounded => None,
        };
        let (lo, hi) = (bound(&start), bound(&end));
        self.inner.compact_range(lo.as_deref(), hi.as_deref())
    }

    /// Compacts the whole database into the last level (see
    /// [`Db::compact_range`]).
    pub fn compact(&self) -> Result<()> {
        self.compact_range::<&[u8]>(..)
    }

    /// Garbage-collects the value log now: drops every sealed file whose
    /// entries are all dead, collects every sealed file whose garbage share
    /// passed `vlog_gc_garbage_ratio`, more while the log is over its space
    /// budget, and merges small files once there are more than 8
    /// (docs/vlog-format.md, "Garbage collection"). Rewritten files are
    /// removed once no snapshot older than the collection is live. Also
    /// runs by itself in the background: after open, when idle, when a
    /// file rolls, after flushes and compactions.
    pub fn vlog_gc(&self) -> Result<VlogGcReport> {
        self.inner.vlog_gc()
    }

    /// Waits until background compaction has nothing left to do: no task
    /// running, every level within its target, and no garbage compaction
    /// due (docs/compaction.md, "Garbage compactions"). The database counts
    /// as idle while this waits: a memtable holding at least an eighth of
    /// `write_buffer_size` is flushed, and what shadows the last level is
    /// merged into it when worth it. Returns the background error if one
    /// made the database read-only.
    pub fn wait_for_compactions(&self) -> Result<()> {
        self.inner.wait_until_compacted()
    }

    /// `Ok` while the database accepts writes; otherwise the failure that
    /// made it read-only (a failed fsync, flush or WAL write).
    pub fn health(&self) -> Result<()> {
        match &*self.inner.bg_error.lock() {
            Some(cause) => Err(Error::ReadOnly(cause.clone())),
            None => Ok(()),
        }
    }

    /// Figures for monitoring: levels, memtables, bytes written, caches.
    pub fn stats(&self) -> Stats {
        Stats::collect(&self.inner)
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// Stops background work and closes the database. With the WAL on, the
    /// WAL is synced (everything acknowledged becomes durable); with it off,
    /// the memtables are flushed to tables first. Later calls on this handle
    /// return [`Error::Closed`]; closing twice is a no-op.
    pub fn close(&self) -> Result<()> {
        let first_error = self.inner.shut_down();
        self.inner.jobs.wait_idle();
        let joined = match self.flush_thread.lock().take() {
            Some(handle) => handle.join().is_ok(),
            None => true,
        };
        // Nothing runs any more: another owner may open the directory.
        self.inner.lock.lock().take();
        // A background job that failed while closing is reported too.
        let first_error = first_error.and_then(|()| self.inner.check_healthy());
        if !joined && first_error.is_ok() {
            return Err(Error::InvalidArgument(
                "the flush thread panicked; see the log above".into(),
            ));
        }
        first_error
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

fn owned_bounds<K: AsRef<[u8]>>(range: &impl RangeBounds<K>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let own = |b: Bound<&K>| match b {
        Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (own(range.start_bound()), own(range.end_bound()))
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` when there is none (the prefix is all 0xff bytes or empty).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_successor_edges() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
