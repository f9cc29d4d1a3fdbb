//! Group fsync for synced commits: a commit applies its batch unsynced
//! under its group's commit lock, takes a ticket, releases the lock and
//! waits here until a sync that started after its ticket has finished. One
//! waiter at a time runs `Db::sync_wal` for everyone whose ticket it covers,
//! so concurrent synced commits (of any cluster) share fsyncs the way the
//! engine's own group commit shares them for plain synced writes.
//!
//! Invariant: `synced` only grows, and a sync whose start saw `issued = t`
//! covers every ticket up to `t`, because each ticket is issued after its
//! batch was applied.
//!
//! Gathering: the engine holds its writer lock across the fsync, so a
//! commit that writes while a sync runs waits for it. Before syncing, the
//! syncer therefore lets the synced commits already on their way (counted
//! by [`GroupSync::enter`]) apply their batches, for at most
//! [`GATHER_MAX`], so one fsync covers them all instead of one each.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::error::Result;

#[derive(Default)]
struct State {
    /// Tickets handed out (the last one).
    issued: u64,
    /// Every ticket up to this one is durable.
    synced: u64,
    /// A waiter is running `sync_wal` now.
    syncing: bool,
}

/// Longest a syncer waits for synced commits on their way to apply their
/// batches.
pub(crate) const GATHER_MAX: Duration = Duration::from_micros(200);

/// Shares fsyncs between synced commits.
#[derive(Default)]
pub(crate) struct GroupSync {
    state: Mutex<State>,
    done: Condvar,
    /// Synced commits between [`GroupSync::enter`] and their ticket.
    coming: AtomicUsize,
}

impl GroupSync {
    /// A synced commit starts (before it takes its commit lock); every
    /// `enter` is followed by one [`GroupSync::ticket`] or
    /// [`GroupSync::leave`].
    pub(crate) fn enter(&self) {
        self.coming.fetch_add(1, Ordering::AcqRel);
    }

    /// A commit that entered ends without a batch to sync.
    pub(crate) fn leave(&self) {
        self.coming.fetch_sub(1, Ordering::AcqRel);
    }

    /// A ticket for a batch that has just been applied (ends its `enter`).
    pub(crate) fn ticket(&self) -> u64 {
        let mut s = self.state.lock();
        s.issued += 1;
        self.coming.fetch_sub(1, Ordering::AcqRel);
        s.issued
    }

    /// Returns once `ticket` is durable, running `sync` (the engine's
    /// `sync_wal`) when no other waiter is. A failed sync is returned to
    /// the waiter that ran it; the others then run their own, which fails
    /// the same way (the engine refuses writes after a failed fsync).
    pub(crate) fn wait(&self, ticket: u64, sync: impl Fn() -> jkv::Result<()>) -> Result<()> {
        let mut s = self.state.lock();
        loop {
            if s.synced >= ticket {
                return Ok(());
            }
            if !s.syncing {
                s.syncing = true;
                drop(s);
                let deadline = Instant::now() + GATHER_MAX;
                while self.coming.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
                    std::thread::yield_now();
                }
                let target = self.state.lock().issued;
                let result = sync();
                s = self.state.lock();
                s.syncing = false;
                if result.is_ok() {
                    s.synced = s.synced.max(target);
                }
                self.done.notify_all();
                result?;
                continue;
            }
            self.done.wait(&mut s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn concurrent_waiters_share_syncs() {
        let g = Arc::new(GroupSync::default());
        let syncs = Arc::new(AtomicU32::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (g, syncs) = (g.clone(), syncs.clone());
                s.spawn(move || {
                    for _ in 0..50 {
                        g.enter();
                        let t = g.ticket();
                        g.wait(t, || {
                            syncs.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(std::time::Duration::from_millis(1));
                            Ok(())
                        })
                        .unwrap();
                    }
                });
            }
        });
        let n = syncs.load(Ordering::Relaxed);
        assert!(n < 400, "400 commits took {n} syncs: none were shared");
        assert!(n >= 50, "at least one sync per round of a thread");
    }

    #[test]
    fn a_failed_sync_fails_its_waiter_and_is_not_counted() {
        let g = GroupSync::default();
        g.enter();
        let t = g.ticket();
        assert!(g.wait(t, || Err(jkv::Error::Closed)).is_err());
        assert!(
            g.wait(t, || Ok(())).is_ok(),
            "a later successful sync covers the ticket"
        );
    }
}
