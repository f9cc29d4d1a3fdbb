//! The write path: group commit, sequence numbers, WAL, memtable, and
//! freezing a full memtable.
//!
//! Writers queue up; the first to find no leader becomes one, takes every
//! queued write (up to a size cap), appends them to the WAL with one write
//! and at most one fsync, inserts them into the memtable, publishes the new
//! sequence number and wakes the followers with the group's result. Only the
//! leader touches the WAL and inserts into the memtable.
//!
//! Locks: `WritePath::writer` is lock order 1 (only a value-log
//! collection's run lock comes before it), held by the leader for a whole
//! commit group, WAL and value-log I/O included. `WritePath::queue` is a
//! leaf, held briefly and never while taking another lock; its condition
//! variables wake followers (`queue_changed`) and a gathering leader
//! (`queue_gather`).

use std::collections::VecDeque;
use std::mem;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use jkv_format::{Error, Result, SeqNo, ValueKind};
use jkv_manifest::VersionEdit;
use jkv_memtable::Memtable;

use crate::batch::WriteBatch;
use crate::db::DbInner;
use crate::options::WriteOptions;
use crate::view::Frozen;
use crate::vlog::{pointer_extent, ActiveVlog};
use crate::wal::writer::WalWriter;

/// Bytes of batches one leader commits at most; a larger queue is split
/// over several groups so that one fsync does not wait on a huge append.
const GROUP_BYTES_MAX: usize = 4 << 20;

/// Write rate allowed at the L0 slowdown trigger (bytes per second); it
/// halves with each further L0 table.
const THROTTLE_BYTES_PER_SEC: u64 = 64 << 20;

/// Largest synced group whose writers are remembered for gathering.
const GATHER_TRACK_MAX: usize = 64;

/// Longest a leader waits to gather writers, however slow syncs are.
const GATHER_WAIT_MAX: Duration = Duration::from_micros(500);

/// One queued write.
struct PendingWrite {
    batch: Mutex<WriteBatch>,
    sync: bool,
    /// The writing thread, to count distinct synced writers.
    thread: ThreadId,
    /// The sequence number the write committed at, or why it failed.
    result: Mutex<Option<Result<SeqNo>>>,
}

/// The write path: the queue of writes waiting for a leader and the
/// leader's state (see the module comment for the locks).
pub(crate) struct WritePath {
    /// Writes waiting for a leader (leaf lock).
    queue: Mutex<WriteQueue>,
    /// Signalled when a leader is done (followers look for their result
    /// or lead the next group).
    queue_changed: Condvar,
    /// Signalled when a write is queued while a leader gathers its group.
    queue_gather: Condvar,
    /// The write-group leader's state (lock order 1).
    writer: Mutex<WriterState>,
}

impl WritePath {
    /// An idle write path with `mem` as the active memtable, after `last_seq`,
    /// without a WAL yet.
    pub fn new(mem: Arc<Memtable>, last_seq: SeqNo) -> WritePath {
        WritePath {
            queue: Mutex::new(WriteQueue::default()),
            queue_changed: Condvar::new(),
            queue_gather: Condvar::new(),
            writer: Mutex::new(WriterState {
                wal: None,
                mem,
                last_seq,
                throttle_debt: Duration::ZERO,
                vlog: ActiveVlog::default(),
            }),
        }
    }

    /// Locks the leader's state (lock order 1), to commit outside the
    /// queue (value-log rewrites) or to change the WAL or memtable.
    pub fn lock_writer(&self) -> MutexGuard<'_, WriterState> {
        self.writer.lock()
    }
}

/// State owned by the write-group leader (lock order 1).
pub(crate) struct WriterState {
    /// The active WAL; `None` when the WAL is disabled.
    wal: Option<WalWriter>,
    /// The active memtable (the same one the view publishes).
    mem: Arc<Memtable>,
    /// Last sequence number assigned.
    last_seq: SeqNo,
    /// Write delay owed under L0 backpressure, paid in sleeps of >= 1 ms.
    throttle_debt: Duration,
    /// The value-log file taking large values.
    vlog: ActiveVlog,
}

impl WriterState {
    /// The active memtable.
    pub fn mem(&self) -> &Arc<Memtable> {
        &self.mem
    }

    /// Last sequence number assigned.
    pub fn last_seq(&self) -> SeqNo {
        self.last_seq
    }

    /// After recovery: writes continue after `last_seq`, into `wal`.
    pub fn recovered(&mut self, last_seq: SeqNo, wal: Option<WalWriter>) {
        self.last_seq = last_seq;
        self.wal = wal;
    }

    /// Syncs the value log, then the active WAL (older WALs were synced
    /// when their memtables froze).
    pub fn sync(&mut self) -> Result<()> {
        self.vlog.sync_if_dirty()?;
        if let Some(wal) = self.wal.as_mut() {
            wal.sync()?;
        }
        Ok(())
    }
}

/// Writes waiting for a leader (leaf lock, `WritePath::queue`).
#[derive(Default)]
struct WriteQueue {
    pending: VecDeque<Arc<PendingWrite>>,
    leader_active: bool,
    /// A leader is waiting on `queue_gather` for more writes.
    gathering: bool,
    /// Threads of the last synced group (when it was small enough to track).
    last_sync_threads: Vec<ThreadId>,
    /// Distinct threads over the last two synced groups: how many synced
    /// writers are taking turns. 0 when unknown or not worth gathering for.
    sync_writers: usize,
    /// How long the last synced group took to commit.
    last_sync_time: Duration,
}

impl WriteQueue {
    /// After a synced group of `threads` committed in `took`, re-estimates
    /// how many writers are taking turns.
    ///
    /// Gathering, why: with several synced writers, the members of a group
    /// can only queue their next write after the group's fsync wakes them;
    /// a new leader that starts at once gets only the writers that queued
    /// during that fsync, and groups alternate between a few writers and
    /// the rest, each writer waiting out two fsyncs per write. Waiting a
    /// moment for the woken writers to come back (bounded by half an fsync)
    /// lets every writer join every group.
    fn record_sync_group(&mut self, threads: Vec<ThreadId>, took: Duration) {
        self.sync_writers = if threads.len() <= GATHER_TRACK_MAX {
            threads.len()
                + self
                    .last_sync_threads
                    .iter()
                    .filter(|t| !threads.contains(t))
                    .count()
        } else {
            0
        };
        self.last_sync_threads = threads;
        self.last_sync_time = took;
    }
}

impl DbInner {
    /// [`crate::Db::write`]: returns the sequence number of the batch's
    /// last entry (the visible one for an empty batch).
    pub(crate) fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<SeqNo> {
        batch.validate()?;
        self.check_writable()?;
        if batch.is_empty() {
            return Ok(self.view().visible_seq());
        }
        let mut queue = self.writes().queue.lock();
        if !queue.leader_active
            && queue.pending.is_empty()
            && !(options.sync && queue.sync_writers > 1)
        {
            // Nobody else is writing: commit alone, without queueing (no
            // shared allocations, no result hand-off).
            queue.leader_active = true;
            drop(queue);
            let mut batch = batch;
            let entries = batch.len() as u64;
            let started = options.sync.then(Instant::now);
            let result = {
                let mut writer = self.writes().writer.lock();
                self.commit_batches(&mut writer, &mut [&mut batch], options.sync, 1)
                    .map(|before| before.plus(entries))
            };
            let synced = started.map(|t| (vec![std::thread::current().id()], t));
            self.end_leading(&mut self.writes().queue.lock(), synced);
            return result;
        }
        let me = Arc::new(PendingWrite {
            batch: Mutex::new(batch),
            sync: options.sync,
            thread: std::thread::current().id(),
            result: Mutex::new(None),
        });
        queue.pending.push_back(me.clone());
        if queue.gathering && queue.pending.len() >= queue.sync_writers {
            // The gathering leader waits for exactly this.
            self.writes().queue_gather.notify_one();
        }
        loop {
            if let Some(result) = me.result.lock().take() {
                return result;
            }
            if queue.leader_active {
                self.writes().queue_changed.wait(&mut queue);
                continue;
            }
            // Lead one group: everything queued, up to the size cap.
            queue.leader_active = true;
            if queue.pending.len() < queue.sync_writers && queue.pending.iter().any(|w| w.sync) {
                // See `WriteQueue::record_sync_group`.
                let deadline = Instant::now() + (queue.last_sync_time / 2).min(GATHER_WAIT_MAX);
                queue.gathering = true;
                while queue.pending.len() < queue.sync_writers {
                    if self
                        .writes()
                        .queue_gather
                        .wait_until(&mut queue, deadline)
                        .timed_out()
                    {
                        break;
                    }
                }
                queue.gathering = false;
            }
            let mut group = Vec::new();
            let mut bytes = 0;
            while let Some(next) = queue.pending.front() {
                let len = next.batch.lock().encoded_len();
                if !group.is_empty() && bytes + len > GROUP_BYTES_MAX {
                    break;
                }
                bytes += len;
                group.extend(queue.pending.pop_front());
            }
            drop(queue);
            let sync = group.iter().any(|w| w.sync);
            let started = sync.then(Instant::now);
            let result = {
                let mut writer = self.writes().writer.lock();
                self.commit_group(&mut writer, &group)
            };
            for (i, w) in group.iter().enumerate() {
                *w.result.lock() = Some(match &result {
                    Ok(last_seqs) => Ok(last_seqs[i]),
                    Err(e) => Err(e.clone()),
                });
            }
            queue = self.writes().queue.lock();
            let synced = started.map(|t| {
                let threads = if group.len() <= GATHER_TRACK_MAX {
                    group.iter().map(|w| w.thread).collect()
                } else {
                    Vec::new()
                };
                (threads, t)
            });
            self.end_leading(&mut queue, synced);
        }
    }

    /// [`crate::Db::try_write`]: [`Self::write`], unless the write path
    /// would make it wait.
    pub(crate) fn try_write(&self, batch: WriteBatch, options: WriteOptions) -> Result<SeqNo> {
        if let Some(what) = self.stall_ahead() {
            return Err(Error::WouldStall { what });
        }
        self.write(batch, options)
    }

    /// What a write starting now would wait for, if anything: L0 past its
    /// slowdown or stop trigger (see `throttle_for_level0`), or a full
    /// memtable that cannot be frozen while the frozen ones are at their
    /// limit (see `freeze`).
    fn stall_ahead(&self) -> Option<&'static str> {
        let options = self.options();
        if options.auto_compactions {
            let l0 = self.view().l0_tables();
            if l0 >= options.compaction.l0_stop {
                return Some("level 0 is at its stop trigger, waiting for compaction");
            }
            if l0 >= options.compaction.l0_slowdown {
                return Some("level 0 is past its slowdown trigger, writes are delayed");
            }
        }
        let full = self.super_version().mem.approximate_memory_bytes() >= options.write_buffer_size;
        if full && self.view().frozen_count() >= options.max_immutable_memtables {
            return Some("the memtable is full and the frozen ones wait for their flush");
        }
        None
    }

    /// A leader is done: records a synced group's writers and duration
    /// (`synced`: its threads and start), hands leadership back and wakes
    /// the waiting writers (the group's members for their results, the
    /// others to elect the next leader).
    fn end_leading(&self, queue: &mut WriteQueue, synced: Option<(Vec<ThreadId>, Instant)>) {
        if let Some((threads, started)) = synced {
            queue.record_sync_group(threads, started.elapsed());
        }
        queue.leader_active = false;
        self.writes().queue_changed.notify_all();
    }

    /// Writes one group: WAL, then memtable, then publish. Returns the
    /// sequence number of each batch's last entry, in group order.
    fn commit_group(
        &self,
        writer: &mut WriterState,
        group: &[Arc<PendingWrite>],
    ) -> Result<Vec<SeqNo>> {
        let mut guards: Vec<_> = group.iter().map(|w| w.batch.lock()).collect();
        let mut last = SeqNo(0);
        let mut ends: Vec<u64> = Vec::with_capacity(guards.len());
        for g in &guards {
            last = last.plus(g.len() as u64);
            ends.push(last.0);
        }
        let mut batches: Vec<&mut WriteBatch> = guards.iter_mut().map(|g| &mut **g).collect();
        let sync = group.iter().any(|w| w.sync);
        let before = self.commit_batches(writer, &mut batches, sync, group.len())?;
        Ok(ends.into_iter().map(|n| before.plus(n)).collect())
    }

    /// Commits the batches of `writes` writers as one group, after L0
    /// backpressure. Returns the sequence number before the group's first
    /// entry (the batches got the ones after it, in order).
    fn commit_batches(
        &self,
        writer: &mut WriterState,
        batches: &mut [&mut WriteBatch],
        sync: bool,
        writes: usize,
    ) -> Result<SeqNo> {
        self.check_writable()?;
        let group_bytes: usize = batches.iter().map(|b| b.encoded_len()).sum();
        self.throttle_for_level0(writer, group_bytes)?;
        let before = writer.last_seq;
        self.commit_locked(writer, batches, sync)?;
        self.counters()
            .writes
            .fetch_add(writes as u64, Ordering::Relaxed);
        Ok(before)
    }

    /// Commits `batches` as one group with the writer lock held: sequence
    /// numbers, large values to the value log, WAL (synced when `sync`),
    /// memtable, publish.
    pub(crate) fn commit_locked(
        &self,
        writer: &mut WriterState,
        batches: &mut [&mut WriteBatch],
        sync: bool,
    ) -> Result<()> {
        self.make_room(writer)?;
        let mut seq = writer.last_seq;
        let mut user_bytes = 0;
        if self.options().value_threshold.is_some() {
            self.separate_group(&mut writer.vlog, &writer.mem, batches, seq.plus(1))
                .map_err(|e| self.poison(e))?;
        }
        for batch in batches.iter_mut() {
            let first = seq.plus(1);
            batch.seal(first);
            seq = seq.plus(batch.len() as u64);
            user_bytes += batch.user_bytes();
        }
        // The values before the WAL records that point to them.
        writer
            .vlog
            .flush_appends(sync)
            .map_err(|e| self.poison(e))?;
        if let Some(wal) = writer.wal.as_mut() {
            let written = wal
                .append_batches(batches.iter().map(|b| b.encoded()))
                .map_err(|e| self.poison(e))?;
            if sync {
                wal.sync().map_err(|e| self.poison(e))?;
            }
            self.counters()
                .wal_bytes
                .fetch_add(written, Ordering::Relaxed);
        }
        // Taken at the first entry that needs it (most groups have none).
        let mut garbage_view = None;
        let mut garbage = Vec::new();
        let mut entry_seq = writer.last_seq;
        for batch in batches.iter() {
            for entry in batch.entries() {
                let entry = entry.expect("a batch built by WriteBatch decodes");
                entry_seq = entry_seq.plus(1);
                if entry.kind == ValueKind::RangeDeletion {
                    writer
                        .mem
                        .insert_range_tombstone(entry.key, entry.value, entry_seq);
                    continue;
                }
                let shadowing = matches!(entry.kind, ValueKind::ValuePointer | ValueKind::Deletion);
                let view = shadowing
                    .then(|| garbage_view.get_or_insert_with(|| self.vlog_garbage_view()))
                    .and_then(|view| view.as_ref());
                let Some(sv) = view else {
                    writer
                        .mem
                        .insert(entry.key, entry_seq, entry.kind, entry.value);
                    continue;
                };
                // In this memtable: `Some(kind's pointer extent)`.
                let in_memtable = writer.mem.insert_and_see_previous(
                    entry.key,
                    entry_seq,
                    entry.kind,
                    entry.value,
                    |previous| {
                        previous.map(|(kind, raw)| match kind {
                            ValueKind::ValuePointer => pointer_extent(raw),
                            _ => None,
                        })
                    },
                );
                let shadowed = match in_memtable {
                    Some(extent) => extent,
                    None => self.shadowed_pointer_below(sv, entry.key),
                };
                garbage.extend(shadowed);
            }
        }
        self.add_vlog_garbage(&garbage);
        debug_assert_eq!(entry_seq, seq);
        writer.last_seq = seq;
        self.view().set_visible_seq(seq);
        self.counters()
            .user_bytes
            .fetch_add(user_bytes, Ordering::Relaxed);
        self.counters().write_groups.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// [`crate::Db::sync_wal`]: value log first, then the active WAL.
    pub(crate) fn sync_wal(&self) -> Result<()> {
        self.check_writable()?;
        let mut writer = self.writes().writer.lock();
        writer.sync().map_err(|e| self.poison(e))
    }

    /// Write backpressure from L0: past the slowdown trigger, writes are
    /// delayed at a rate that halves with each further L0 table; at the stop
    /// trigger they wait (on a condition variable) for compaction.
    fn throttle_for_level0(&self, writer: &mut WriterState, group_bytes: usize) -> Result<()> {
        if !self.options().auto_compactions {
            return Ok(());
        }
        let config = &self.options().compaction;
        let l0 = self.view().l0_tables();
        if l0 >= config.l0_stop {
            let since = Instant::now();
            self.view()
                .wait_for_l0_below(config.l0_stop, || self.check_writable())?;
            self.counters()
                .stall_micros
                .fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
            writer.throttle_debt = Duration::ZERO;
        } else if l0 >= config.l0_slowdown {
            let excess = (l0 - config.l0_slowdown).min(16) as u32;
            let rate = (THROTTLE_BYTES_PER_SEC >> excess).max(1);
            writer.throttle_debt += Duration::from_nanos(group_bytes as u64 * 1_000_000_000 / rate);
            if writer.throttle_debt >= Duration::from_millis(1) {
                let pause = writer.throttle_debt;
                writer.throttle_debt = Duration::ZERO;
                std::thread::sleep(pause);
                self.counters()
                    .stall_micros
                    .fetch_add(pause.as_micros() as u64, Ordering::Relaxed);
            }
        } else {
            writer.throttle_debt = Duration::ZERO;
        }
        Ok(())
    }

    /// Freezes the memtable when it is full.
    fn make_room(&self, writer: &mut WriterState) -> Result<()> {
        if writer.mem.approximate_memory_bytes() < self.options().write_buffer_size {
            return Ok(());
        }
        self.freeze(writer)
    }

    /// Freezes the active memtable and starts a new one (and a new WAL).
    /// Waits, without spinning, while the frozen memtables are at their
    /// limit.
    pub(crate) fn freeze(&self, writer: &mut WriterState) -> Result<()> {
        {
            let stalled_since = self
                .view()
                .wait_for_frozen_below(self.options().max_immutable_memtables, || {
                    self.check_healthy()
                })?;
            if let Some(since) = stalled_since {
                self.counters()
                    .stall_micros
                    .fetch_add(since.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
        }
        self.check_healthy()?;
        let new_wal = if self.options().wal {
            Some(self.start_wal(writer).map_err(|e| self.poison(e))?)
        } else {
            // The frozen memtable's pointers must be durable before its
            // table is named in the manifest.
            writer.vlog.sync_if_dirty().map_err(|e| self.poison(e))?;
            None
        };
        let old_wal = mem::replace(&mut writer.wal, new_wal).map(|w| w.number());
        let old_mem = mem::replace(&mut writer.mem, Arc::new(self.options().new_memtable()));
        self.view().add_frozen(
            Frozen {
                mem: old_mem,
                wal: old_wal,
            },
            writer.mem.clone(),
        );
        Ok(())
    }

    /// Syncs the active WAL (so a later synced write never lands before an
    /// earlier unsynced one), then creates the next WAL, makes its directory
    /// entry durable and records it in the manifest.
    fn start_wal(&self, writer: &mut WriterState) -> Result<WalWriter> {
        writer.sync()?;
        let number = self.manifest().allocate_file_number();
        let wal = WalWriter::create(&**self.fs(), self.dir(), number, self.db_id())?;
        self.fs().sync_dir(self.dir())?;
        let edit = VersionEdit {
            new_wals: vec![number],
            next_file: Some(self.manifest().next_file()),
            ..VersionEdit::default()
        };
        self.manifest().lock().apply(edit)?;
        Ok(wal)
    }

    /// Freezes a non-empty memtable and waits until all frozen memtables
    /// are flushed.
    pub(crate) fn flush_all(&self) -> Result<()> {
        self.check_writable()?;
        {
            let mut writer = self.writes().writer.lock();
            if !writer.mem.is_empty() {
                self.freeze(&mut writer)?;
            }
        }
        self.wait_for_flushes()
    }

    fn wait_for_flushes(&self) -> Result<()> {
        self.view().wait_for_no_frozen(|| self.check_healthy())
    }

    /// Stops accepting writes and makes what was acknowledged durable:
    /// syncs the WAL, or flushes the memtables when there is no WAL. Tells
    /// the flush thread to exit. Returns the first error met.
    pub(crate) fn shut_down(&self) -> Result<()> {
        if !self.workers().close() {
            return Ok(());
        }
        // After a failure that made the database read-only, acknowledged
        // writes may not all be durable: say so.
        let mut result = self.check_healthy();
        {
            let mut writer = self.writes().writer.lock();
            if result.is_ok() {
                result = writer.vlog.sync_if_dirty().map_err(|e| self.poison(e));
            }
            if let Some(wal) = writer.wal.as_mut() {
                if result.is_ok() && !self.workers().failed() {
                    result = wal.sync().map_err(|e| self.poison(e));
                }
            } else if !writer.mem.is_empty() && !self.workers().failed() {
                // No WAL: the memtable is the only copy of its writes.
                result = self.freeze(&mut writer);
            }
        }
        if result.is_ok() && !self.options().wal {
            result = self.wait_for_flushes();
        }
        self.view().shut_down();
        result
    }
}
