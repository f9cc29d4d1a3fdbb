//! Background compaction: scheduling picker tasks on the compaction pool,
//! running them, and `compact_range`.
//!
//! Order, for crash safety (docs/compaction.md): outputs written and
//! fsynced → directory fsynced → manifest edit (inputs removed, outputs
//! added) fsynced → new version published → inputs marked obsolete; each
//! input file is deleted when the last version holding it is dropped (no
//! reader can still need it). A crash before the manifest edit leaves
//! orphan outputs (removed at open); after it, at most orphan inputs.
//!
//! Locks: `Compactions::state` (the conflict tracker, lock order 3) sits
//! between the manifest and the published view's state in the lock order;
//! it guards which tables running tasks hold and the manual and garbage
//! bookkeeping below. `Compactions::done` is its condition variable,
//! signalled when a task ends. Tasks run without holding any lock.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jkv_compaction::picker::manual_task;
use jkv_compaction::{
    pick, pick_garbage, run_job, CompactionStatus, CompactionTask, GarbageContext, TaskKind,
    TaskReason,
};
use jkv_format::names::table_path;
use jkv_format::{FileNumber, Result};
use jkv_manifest::{TableId, VersionEdit};
use parking_lot::{Condvar, Mutex};

use crate::db::DbInner;

/// The running compactions (see the module comment for the lock).
pub(crate) struct Compactions {
    state: Mutex<CompactionState>,
    /// Signalled when a task ends.
    done: Condvar,
}

impl Compactions {
    /// No compaction running, over `num_levels` levels.
    pub fn new(num_levels: usize) -> Compactions {
        Compactions {
            state: Mutex::new(CompactionState {
                status: CompactionStatus::new(num_levels),
                manual_waiting: 0,
                garbage_running: false,
                garbage_started: None,
            }),
            done: Condvar::new(),
        }
    }

    /// Tasks running now, and the most that ever ran at once.
    pub fn running(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.status.running(), state.status.running_max())
    }
}

/// The conflict tracker and manual-compaction bookkeeping
/// (`Compactions::state`, lock order 3).
struct CompactionState {
    status: CompactionStatus,
    /// `compact_range` calls waiting for busy tables: the picker starts no
    /// new task meanwhile, so they cannot starve.
    manual_waiting: usize,
    /// A garbage task ([`jkv_compaction::garbage`]) is running: at most one
    /// at a time.
    garbage_running: bool,
    /// When the last garbage task started: while writes come in, garbage
    /// tasks start at most once per [`GARBAGE_INTERVAL`].
    garbage_started: Option<Instant>,
}

/// While the database is not idle, garbage tasks start at most this often
/// (and only when no level needs compacting and none is running), so they
/// never starve the size-driven compactions.
pub(crate) const GARBAGE_INTERVAL: Duration = Duration::from_secs(1);

impl DbInner {
    /// Starts as many picked tasks as the pool has room for.
    pub(crate) fn schedule_compactions(self: &Arc<Self>) {
        if !self.options().auto_compactions || self.workers().is_closed() {
            return;
        }
        if !self.workers().has_pool() || self.workers().failed() {
            return;
        }
        let manifest = self.manifest().lock();
        let mut compaction = self.compactions().state.lock();
        if compaction.manual_waiting > 0 {
            return;
        }
        let levels = &manifest.state().levels;
        while compaction.status.running() < self.options().compaction_threads {
            let garbage = self.garbage_context(&compaction);
            let config = &self.options().compaction;
            let Some(task) = pick(levels, &compaction.status, config)
                .or_else(|| pick_garbage(levels, &compaction.status, config, &garbage))
            else {
                break;
            };
            let is_garbage = task.reason == TaskReason::Garbage;
            if is_garbage {
                compaction.garbage_running = true;
                compaction.garbage_started = Some(Instant::now());
            }
            let claim = compaction.status.register(&task);
            let started_together = compaction.status.running() > 1;
            self.spawn_job(
                move |inner| {
                    if started_together {
                        // Spread out compactors that start at the same moment.
                        std::thread::sleep(Duration::from_micros(jitter_micros(claim)));
                    }
                    inner.run_task(&task)
                },
                move |inner| {
                    inner.finish_task(claim, is_garbage);
                    inner.schedule_compactions();
                    inner.schedule_vlog_gc();
                },
            );
        }
    }

    /// What the garbage picker may do now (compaction lock held).
    fn garbage_context(&self, compaction: &CompactionState) -> GarbageContext {
        let idle = self.is_idle();
        let due = compaction
            .garbage_started
            .is_none_or(|at| at.elapsed() >= GARBAGE_INTERVAL);
        GarbageContext {
            oldest_snapshot: self.snapshots().oldest(),
            allowed: !compaction.garbage_running && (idle || due),
            idle,
        }
    }

    /// A task is over (its error, if any, already recorded): releases
    /// its tables and wakes whoever waits for compactions.
    fn finish_task(&self, claim: u64, garbage: bool) {
        {
            let mut compaction = self.compactions().state.lock();
            compaction.status.finish(claim);
            if garbage {
                compaction.garbage_running = false;
            }
        }
        self.compactions().done.notify_all();
        // Writers waiting for L0 to shrink re-check.
        self.view().notify();
    }

    /// Runs one task to completion (merge or move).
    pub(crate) fn run_task(&self, task: &CompactionTask) -> Result<()> {
        let started = Instant::now();
        let result = match task.kind {
            TaskKind::Move => self.install_compaction(
                task,
                task.inputs
                    .iter()
                    .map(|t| {
                        let mut moved = t.clone();
                        moved.level = task.output_level as u32;
                        moved
                    })
                    .collect(),
                false,
                BTreeMap::new(),
            ),
            TaskKind::Merge => self.merge_task(task),
        };
        self.counters()
            .compaction_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        result
    }

    fn merge_task(&self, task: &CompactionTask) -> Result<()> {
        let inputs = task
            .inputs
            .iter()
            .map(|t| self.open_table(t))
            .collect::<Result<Vec<_>>>()?;
        let mut created: Vec<FileNumber> = Vec::new();
        let result = {
            let mut new_table = || {
                let number = self.manifest().allocate_file_number();
                created.push(number);
                let file = self.fs().create(&table_path(self.dir(), number))?;
                Ok((number, file))
            };
            run_job(
                task,
                &inputs,
                self.snapshots().all(),
                &self.table_options(task.output_level),
                self.options().compaction.target_table_bytes,
                &mut new_table,
                &|| self.workers().is_closed(),
            )
        };
        let output = match result.and_then(|o| self.fs().sync_dir(self.dir()).map(|_| o)) {
            Ok(output) => output,
            Err(e) => {
                self.remove_files(&created);
                return Err(e);
            }
        };
        let level = task.output_level;
        self.counters().compaction_read[level].fetch_add(output.bytes_read, Ordering::Relaxed);
        self.counters().compaction_written[level]
            .fetch_add(output.bytes_written, Ordering::Relaxed);
        self.counters()
            .range_deleted_tables
            .fetch_add(output.tables_deleted_unread, Ordering::Relaxed);
        let discards = output.vlog_discards.clone();
        // On failure the edit may or may not be durable: the outputs stay
        // for the next open to sort out (orphans are removed there).
        self.install_compaction(task, output.tables, true, discards)
    }

    /// Records a compaction in the manifest and publishes the new version.
    /// Inputs of a merge are marked obsolete (deleted when unreferenced).
    fn install_compaction(
        &self,
        task: &CompactionTask,
        outputs: Vec<jkv_manifest::TableMeta>,
        inputs_obsolete: bool,
        vlog_discards: BTreeMap<FileNumber, u64>,
    ) -> Result<()> {
        let mut manifest = self.manifest().lock();
        // Garbage in value logs already collected is nobody's business.
        let vlog_discards = crate::manifest_log::live_discards(manifest.state(), vlog_discards);
        let edit = VersionEdit {
            vlog_discards,
            removed_tables: task
                .inputs
                .iter()
                .map(|t| TableId {
                    level: t.level,
                    id: t.id,
                })
                .collect(),
            added_tables: outputs,
            next_file: Some(self.manifest().next_file()),
            ..VersionEdit::default()
        };
        manifest.apply(edit)?;
        let obsolete: Vec<FileNumber> = if inputs_obsolete {
            task.inputs.iter().map(|t| t.id).collect()
        } else {
            Vec::new()
        };
        self.view().publish_compacted(manifest.state(), &obsolete);
        drop(manifest);
        if task.kind == TaskKind::Move {
            self.counters()
                .compaction_moves
                .fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters().compactions.fetch_add(1, Ordering::Relaxed);
            if task.reason == TaskReason::Garbage {
                self.counters()
                    .garbage_compactions
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Waits until no compaction runs and neither picker finds anything
    /// due, treating the database as idle meanwhile (as after a tick of the
    /// flush thread with no write): a memtable worth it is flushed, and
    /// garbage tasks run back to back, shadowed versions included.
    pub(crate) fn wait_until_compacted(self: &Arc<Self>) -> Result<()> {
        if self.options().auto_compactions {
            self.mark_idle();
            self.freeze_when_idle()?;
        }
        loop {
            self.check_healthy()?;
            if self.options().auto_compactions {
                self.mark_idle();
            }
            self.schedule_compactions();
            let manifest = self.manifest().lock();
            let mut compaction = self.compactions().state.lock();
            if compaction.status.running() == 0 {
                let levels = &manifest.state().levels;
                let config = &self.options().compaction;
                let garbage = GarbageContext {
                    oldest_snapshot: self.snapshots().oldest(),
                    allowed: true,
                    idle: true,
                };
                let due = self.options().auto_compactions
                    && (pick(levels, &compaction.status, config).is_some()
                        || pick_garbage(levels, &compaction.status, config, &garbage).is_some()
                        || self.view().frozen_count() > 0);
                if !due || self.workers().is_closed() {
                    return Ok(());
                }
            }
            drop(manifest);
            self.compactions()
                .done
                .wait_for(&mut compaction, Duration::from_millis(50));
        }
    }

    fn remove_files(&self, numbers: &[FileNumber]) {
        for &n in numbers {
            let _ = self.fs().remove(&table_path(self.dir(), n));
        }
    }

    /// Merges every table overlapping `[lo, hi]` into the last level,
    /// dropping versions no snapshot needs and tombstones. Flushes the
    /// memtable first; waits for conflicting background tasks.
    pub(crate) fn compact_range(
        self: &Arc<Self>,
        lo: Option<&[u8]>,
        hi: Option<&[u8]>,
    ) -> Result<()> {
        self.flush_all()?;
        let (task, claim) = {
            let mut manifest = self.manifest().lock();
            let mut compaction = self.compactions().state.lock();
            compaction.manual_waiting += 1;
            let picked = loop {
                if let Err(e) = self.check_writable() {
                    compaction.manual_waiting -= 1;
                    return Err(e);
                }
                match manual_task(&manifest.state().levels, lo, hi, &compaction.status) {
                    Ok(task) => break task,
                    Err(()) => {
                        // Wait for the running task that holds our tables,
                        // then look again (in lock order).
                        drop(manifest);
                        self.compactions().done.wait(&mut compaction);
                        drop(compaction);
                        manifest = self.manifest().lock();
                        compaction = self.compactions().state.lock();
                    }
                }
            };
            compaction.manual_waiting -= 1;
            match picked {
                Some(task) => {
                    let claim = compaction.status.register(&task);
                    (task, claim)
                }
                None => return Ok(()),
            }
        };
        let result = self.run_task(&task);
        self.record_job_result(result.clone());
        self.finish_task(claim, false);
        self.schedule_compactions();
        result
    }
}

/// Up to 2 ms, different per task.
fn jitter_micros(seed: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(u64::from(nanos));
    x ^= x >> 29;
    x % 2000
}
