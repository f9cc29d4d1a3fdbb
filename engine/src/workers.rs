//! Background work and the database's health: the compaction pool (which
//! runs compactions and value-log collections), the tracker of jobs handed
//! to it, the first background error, the closed flag and the idle mark.
//!
//! Every background job starts through [`DbInner::spawn_job`]: a failed job
//! stores its error as the database's background error, which makes every
//! later write fail with it (reads go on), and wakes every waiter. The
//! flush thread (flush.rs) records its failures the same way
//! ([`DbInner::poison`]).
//!
//! Locks: `bg_error` and the job tracker's counter are leaves, held briefly
//! and never while taking another lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use jkv_format::{Error, Result};

use crate::db::DbInner;

/// The background workers and the database's health.
pub(crate) struct Workers {
    /// Runs compaction tasks and value-log collections; `None` when auto
    /// compactions are off.
    pool: Option<rayon::ThreadPool>,
    /// Jobs handed to the pool and not yet finished.
    jobs: Arc<JobTracker>,
    /// First failure that made the database read-only (leaf lock).
    bg_error: Mutex<Option<Arc<Error>>>,
    /// Set by `close`.
    closed: AtomicBool,
    /// `activity()` (writes + gets + scans) when the database was last
    /// found idle (none for a tick of the flush thread); the next write,
    /// get or scan ends the idleness.
    idle_at: AtomicU64,
}

impl Workers {
    /// Workers running jobs on `pool` (`None`: no background jobs).
    pub fn new(pool: Option<rayon::ThreadPool>) -> Workers {
        Workers {
            pool,
            jobs: Arc::default(),
            bg_error: Mutex::new(None),
            closed: AtomicBool::new(false),
            idle_at: AtomicU64::new(u64::MAX),
        }
    }

    /// Whether background jobs can run (auto compactions are on).
    pub fn has_pool(&self) -> bool {
        self.pool.is_some()
    }

    /// Waits until every job handed out has finished.
    pub fn wait_idle(&self) {
        self.jobs.wait_idle();
    }

    /// Whether `close` has begun.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the database closed; `false` if it already was.
    pub fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }

    /// Whether a failure made the database read-only.
    pub fn failed(&self) -> bool {
        self.bg_error.lock().is_some()
    }

    /// The failure that made the database read-only, if one did.
    pub fn error(&self) -> Option<Arc<Error>> {
        self.bg_error.lock().clone()
    }

    /// `Err` after a failure that made the database read-only.
    pub fn check_healthy(&self) -> Result<()> {
        match &*self.bg_error.lock() {
            Some(cause) => Err(Error::ReadOnly(cause.clone())),
            None => Ok(()),
        }
    }

    /// The background error, `cause` unless one was recorded before.
    fn record_error(&self, cause: Error) -> Arc<Error> {
        self.bg_error
            .lock()
            .get_or_insert_with(|| Arc::new(cause))
            .clone()
    }

    /// Whether the activity count `activity` is the one last marked idle.
    pub fn is_idle(&self, activity: u64) -> bool {
        activity == self.idle_at.load(Ordering::Acquire)
    }

    /// Records the activity count at which the database was found idle.
    pub fn mark_idle(&self, activity: u64) {
        self.idle_at.store(activity, Ordering::Release);
    }
}

impl DbInner {
    /// Makes the database refuse writes from now on, keeping the first cause,
    /// and wakes every waiter (they look at the background error). Never
    /// called with the view's state lock held (it takes that lock).
    pub(crate) fn poison(&self, cause: Error) -> Error {
        let shared = self.workers().record_error(cause);
        self.view().wake_all();
        Error::ReadOnly(shared)
    }

    /// `Err` when writes are refused (closed, or an earlier failure).
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.workers().is_closed() {
            return Err(Error::Closed);
        }
        self.check_healthy()
    }

    /// `Err` after a failure that made the database read-only.
    pub(crate) fn check_healthy(&self) -> Result<()> {
        self.workers().check_healthy()
    }

    /// Keeps a failed job's error as the background error; a job abandoned
    /// because the database is closing failed nothing.
    pub(crate) fn record_job_result(&self, result: Result<()>) {
        match result {
            Ok(()) | Err(Error::Closed) => {}
            Err(e) => {
                let _: Error = self.poison(e);
            }
        }
    }

    /// Runs `job` on the pool, then `then` (whatever the job returned);
    /// `close` waits for both. The job's error becomes the background error
    /// (see [`Self::record_job_result`]) before `then` runs. Returns `false`
    /// (and runs nothing) when there is no pool.
    pub(crate) fn spawn_job(
        self: &Arc<Self>,
        job: impl FnOnce(&Arc<DbInner>) -> Result<()> + Send + 'static,
        then: impl FnOnce(&Arc<DbInner>) + Send + 'static,
    ) -> bool {
        let Some(pool) = self.workers().pool.as_ref() else {
            return false;
        };
        let inner = Arc::clone(self);
        let jobs = Arc::clone(&self.workers().jobs);
        jobs.start();
        pool.spawn(move || {
            let result = job(&inner);
            inner.record_job_result(result);
            then(&inner);
            // Let go of the database before saying the job is over, so
            // `close` returns only when no job holds it.
            drop(inner);
            jobs.finish();
        });
        true
    }

    /// Writes, gets and scans so far: idleness is a stretch where this
    /// does not move.
    pub(crate) fn activity(&self) -> u64 {
        self.counters().activity()
    }

    /// No write, get or scan since the database was last found idle
    /// ([`Self::mark_idle`]).
    pub(crate) fn is_idle(&self) -> bool {
        self.workers().is_idle(self.activity())
    }

    /// Records that the database is idle now; the next write, get or scan
    /// ends it.
    pub(crate) fn mark_idle(&self) {
        self.workers().mark_idle(self.activity());
    }
}

/// Counts jobs handed to the pool and not yet finished, so that `close`
/// can wait for all of them (shared with the jobs: a job reports its end
/// after dropping its handle on the database).
#[derive(Default)]
struct JobTracker {
    outstanding: Mutex<usize>,
    idle: Condvar,
}

impl JobTracker {
    fn start(&self) {
        *self.outstanding.lock() += 1;
    }

    fn finish(&self) {
        let mut n = self.outstanding.lock();
        *n -= 1;
        if *n == 0 {
            self.idle.notify_all();
        }
    }

    /// Waits until every job handed out has finished.
    fn wait_idle(&self) {
        let mut n = self.outstanding.lock();
        while *n > 0 {
            self.idle.wait(&mut n);
        }
    }
}
