//! The `Db` handle and `DbInner`, the parts behind it.
//!
//! `DbInner` is a composition of parts, each in its own module, each owning
//! its fields privately and exposing methods:
//! - [`WritePath`] (write.rs): the write queue and the write-group
//!   leader's state (active WAL, active memtable, last sequence number,
//!   active value-log file).
//! - [`ManifestLog`] (manifest_log.rs): the manifest and the file-number
//!   counter.
//! - [`Compactions`] (compaction.rs): the conflict tracker of running
//!   compactions.
//! - [`View`] (view.rs): the published view: frozen memtables, installed
//!   table and value-log sets, the `SuperVersion` readers clone, the
//!   visible sequence number.
//! - [`ValueLog`] (vlog.rs): pointer resolution and garbage-collection
//!   bookkeeping.
//! - [`Workers`] (workers.rs): the compaction pool, the job tracker, the
//!   first background error, the closed flag.
//!
//! The operations that span parts (a commit, a flush, a compaction, a
//! value-log collection) are `impl DbInner` blocks in the module of their
//! concept, and reach the parts only through their methods.
//!
//! Lock order (outermost first); a thread holding one lock only takes locks
//! further down this list:
//! 0. `ValueLog::gc_run` — held for a whole value-log collection.
//! 1. `WritePath::writer` — the write-group leader's state. Held for a
//!    whole commit group (WAL and value-log I/O under it).
//! 2. `ManifestLog::manifest` — manifest appends (file I/O under it).
//! 3. `Compactions::state` — the conflict tracker.
//! 4. `View::state` — frozen memtables, installed sets, the shutdown flag;
//!    no file I/O under it. Its condition variable wakes flushes, stalled
//!    writers and the flush thread.
//! 5. `View::current` — the published `SuperVersion`; readers clone the
//!    `Arc`.
//!
//! Leaves, held briefly and never while taking another lock: the write
//! queue (`WritePath::queue`), the background error and the job tracker
//! (`Workers`), the value-log bookkeeping and garbage estimate
//! (`ValueLog::gc`, `ValueLog::garbage_estimate`), the snapshot registry,
//! and the table cache.

use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::Mutex;

use jkv_format::fs::DirLock;
use jkv_format::{Error, FileSystem, Result, SeqNo};
use jkv_sstable::TableCache;

use crate::batch::WriteBatch;
use crate::compaction::Compactions;
use crate::iter::{DbIterator, DbKeys};
use crate::manifest_log::ManifestLog;
use crate::options::{Options, WriteOptions};
use crate::snapshot::{Snapshot, SnapshotRegistry};
use crate::stats::{Counters, Stats};
use crate::view::View;
use crate::vlog::{ValueLog, VlogGcReport};
use crate::workers::Workers;
use crate::write::WritePath;

/// The parts of an open database, shared by the handle, its iterators and
/// the background threads.
pub(crate) struct DbInner {
    dir: PathBuf,
    /// The database's identity (manifest `db_id`), written into WAL and
    /// table headers.
    db_id: u64,
    fs: Arc<dyn FileSystem>,
    options: Options,
    writes: WritePath,
    manifest: ManifestLog,
    compactions: Compactions,
    view: View,
    vlog: ValueLog,
    workers: Workers,
    snapshots: Arc<SnapshotRegistry>,
    table_cache: TableCache,
    counters: Counters,
    /// Ownership of the directory; released by `close` (leaf lock).
    lock: Mutex<Option<Box<dyn DirLock>>>,
    /// A weak handle on this `DbInner`, for work started from `&self`.
    me: OnceLock<Weak<DbInner>>,
}

/// The parts `DbInner::new` puts together (see the module comment).
pub(crate) struct Parts {
    pub dir: PathBuf,
    pub db_id: u64,
    pub fs: Arc<dyn FileSystem>,
    pub options: Options,
    pub writes: WritePath,
    pub manifest: ManifestLog,
    pub compactions: Compactions,
    pub view: View,
    pub vlog: ValueLog,
    pub workers: Workers,
    pub table_cache: TableCache,
    pub lock: Box<dyn DirLock>,
}

impl DbInner {
    /// Puts the parts together.
    pub fn new(parts: Parts) -> Arc<DbInner> {
        let counters = Counters::new(parts.options.num_levels);
        let inner = Arc::new(DbInner {
            dir: parts.dir,
            db_id: parts.db_id,
            fs: parts.fs,
            options: parts.options,
            writes: parts.writes,
            manifest: parts.manifest,
            compactions: parts.compactions,
            view: parts.view,
            vlog: parts.vlog,
            workers: parts.workers,
            snapshots: Arc::new(SnapshotRegistry::default()),
            table_cache: parts.table_cache,
            counters,
            lock: Mutex::new(Some(parts.lock)),
            me: OnceLock::new(),
        });
        let _ = inner.me.set(Arc::downgrade(&inner));
        inner
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The database's identity (manifest `db_id`).
    pub fn db_id(&self) -> u64 {
        self.db_id
    }

    /// The file system every file goes through.
    pub fn fs(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    /// The options the database was opened with (checked).
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The write path.
    pub fn writes(&self) -> &WritePath {
        &self.writes
    }

    /// The manifest and the file-number counter.
    pub fn manifest(&self) -> &ManifestLog {
        &self.manifest
    }

    /// The running compactions.
    pub fn compactions(&self) -> &Compactions {
        &self.compactions
    }

    /// The published view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The value log.
    pub fn vlog(&self) -> &ValueLog {
        &self.vlog
    }

    /// The background workers and the database's health.
    pub fn workers(&self) -> &Workers {
        &self.workers
    }

    /// Live snapshots.
    pub fn snapshots(&self) -> &Arc<SnapshotRegistry> {
        &self.snapshots
    }

    /// Open tables.
    pub fn table_cache(&self) -> &TableCache {
        &self.table_cache
    }

    /// Figures the hot paths count.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// An owning handle on this `DbInner`, for work started from `&self`;
    /// `None` once the last owner is gone.
    pub fn arc(&self) -> Option<Arc<DbInner>> {
        self.me.get().and_then(|w| w.upgrade())
    }

    /// Gives up ownership of the directory.
    pub fn release_lock(&self) {
        self.lock.lock().take();
    }

    /// `Err` unless `snapshot` was taken from this database.
    pub fn check_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        if snapshot.is_of(&self.snapshots) {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "the snapshot (at sequence number {}) belongs to another open database, not to the one at {}",
                snapshot.seq(),
                self.dir.display()
            )))
        }
    }

    /// The published view's `SuperVersion`.
    pub fn super_version(&self) -> Arc<crate::view::SuperVersion> {
        self.view.super_version()
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
        f.debug_struct("Db")
            .field("dir", &self.inner.dir())
            .finish()
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
        self.write(batch, WriteOptions::default()).map(drop)
    }

    /// Deletes `key` (not synced; see [`Db::write`]).
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.write(batch, WriteOptions::default()).map(drop)
    }

    /// Deletes every key `k` with `start <= k < end` (not synced; see
    /// [`Db::write`]). One range tombstone, whatever the number of keys it
    /// covers; snapshots taken before it still read them. Errors with
    /// [`Error::InvalidArgument`] when `start > end`.
    pub fn delete_range(&self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> Result<()> {
        let mut batch = WriteBatch::new();
        batch.delete_range(start.as_ref()..end.as_ref());
        self.write(batch, WriteOptions::default()).map(drop)
    }

    /// Applies `batch` atomically: after a crash either all of it or none
    /// of it is there, and no reader sees part of it. Returns once the write
    /// is acknowledged (durable on disk when `options.sync`), with the
    /// sequence number of the batch's last entry: a snapshot whose
    /// [`Snapshot::seq`] is at least that sees the whole batch. An empty
    /// batch writes nothing and returns the sequence number readers see now.
    ///
    /// May wait: while flushes and compactions catch up, writes are slowed
    /// down or stopped (see [`Db::try_write`] for a write that does not).
    pub fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<SeqNo> {
        self.inner.write(batch, options)
    }

    /// Like [`Db::write`], but a write that would wait for flushes or
    /// compactions to catch up (level 0 past its slowdown or stop trigger,
    /// or a full memtable while the frozen ones wait for their flush) is
    /// refused with [`Error::WouldStall`] and nothing is written, so that
    /// an ingest pipeline can apply its own backpressure. The conditions
    /// are looked at when the call starts: a write racing others that fill
    /// the memtable meanwhile may still wait briefly behind them.
    pub fn try_write(&self, batch: WriteBatch, options: WriteOptions) -> Result<SeqNo> {
        self.inner.try_write(batch, options)
    }

    /// The newest value of `key`, or `None`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.inner.get_latest(key.as_ref())
    }

    /// The value of `key` as of `snapshot`, or `None`. A snapshot of
    /// another database is [`Error::InvalidArgument`].
    pub fn get_at(&self, key: impl AsRef<[u8]>, snapshot: &Snapshot) -> Result<Option<Bytes>> {
        self.inner.check_snapshot(snapshot)?;
        self.inner.get(key.as_ref(), snapshot.seq())
    }

    /// A snapshot of the database as it is now.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.view().snapshot(self.inner.snapshots())
    }

    /// Key-value pairs with keys in `range`, ascending, as of `snapshot`.
    /// Items are `Result`: damage met mid-scan ends it with the error, and
    /// a snapshot of another database makes the first item
    /// [`Error::InvalidArgument`]. The iterator can [`DbIterator::seek`] to
    /// another key in either direction.
    pub fn scan<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        snapshot: &Snapshot,
    ) -> DbIterator {
        let (start, end) = owned_bounds(&range);
        DbIterator::new(&self.inner, snapshot, start, end, false)
    }

    /// Every key-value pair, ascending, as of `snapshot` (a [`Db::scan`]
    /// of the whole key space).
    pub fn iter(&self, snapshot: &Snapshot) -> DbIterator {
        DbIterator::new(
            &self.inner,
            snapshot,
            Bound::Unbounded,
            Bound::Unbounded,
            false,
        )
    }

    /// The keys in `range`, ascending, as of `snapshot`, without their
    /// values: values kept in the value log are not read (nor is the value
    /// log checked). Otherwise like [`Db::scan`].
    pub fn keys<K: AsRef<[u8]>>(&self, range: impl RangeBounds<K>, snapshot: &Snapshot) -> DbKeys {
        let (start, end) = owned_bounds(&range);
        DbKeys::new(DbIterator::new(&self.inner, snapshot, start, end, false))
    }

    /// Like [`Db::scan`], descending.
    pub fn scan_rev<K: AsRef<[u8]>>(
        &self,
        range: impl RangeBounds<K>,
        snapshot: &Snapshot,
    ) -> DbIterator {
        let (start, end) = owned_bounds(&range);
        DbIterator::new(&self.inner, snapshot, start, end, true)
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
            snapshot,
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
        self.inner.check_healthy()
    }

    /// Figures for monitoring: levels, memtables, bytes written, caches.
    pub fn stats(&self) -> Stats {
        Stats::collect(&self.inner)
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        self.inner.dir()
    }

    /// Stops background work and closes the database. With the WAL on, the
    /// WAL is synced (everything acknowledged becomes durable); with it off,
    /// the memtables are flushed to tables first. Later calls on this handle
    /// return [`Error::Closed`]; closing twice is a no-op.
    pub fn close(&self) -> Result<()> {
        let first_error = self.inner.shut_down();
        self.inner.workers().wait_idle();
        let joined = match self.flush_thread.lock().take() {
            Some(handle) => handle.join().is_ok(),
            None => true,
        };
        // Nothing runs any more: another owner may open the directory.
        self.inner.release_lock();
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
