//! Snapshots: a sequence number a reader pins. Reads at a snapshot see
//! every write acknowledged before it was taken and none after. The
//! registry of live snapshots tells compaction which old versions must stay.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use jkv_format::SeqNo;

/// Live snapshots and how many handles pin each sequence number.
/// Guarded by its own leaf mutex; never held while taking another lock.
#[derive(Debug, Default)]
pub(crate) struct SnapshotRegistry {
    pinned: Mutex<BTreeMap<SeqNo, usize>>,
}

impl SnapshotRegistry {
    fn pin(&self, seq: SeqNo) {
        *self.pinned.lock().entry(seq).or_insert(0) += 1;
    }

    /// Reads the sequence number from `current` and pins it in one step
    /// under the registry's lock. Reading first and pinning after would
    /// let value-log GC, which retires a file once [`Self::oldest`] allows,
    /// retire and delete a file between the read and the pin, leaving the
    /// new snapshot pointing into a deleted file. Under the lock, a GC that
    /// looked before the pin has already published its rewrites, so the
    /// sequence number read here sees them.
    fn pin_current(&self, current: &AtomicU64) -> SeqNo {
        let mut pinned = self.pinned.lock();
        let seq = SeqNo(current.load(Ordering::Acquire));
        *pinned.entry(seq).or_insert(0) += 1;
        seq
    }

    fn release(&self, seq: SeqNo) {
        let mut pinned = self.pinned.lock();
        if let Some(n) = pinned.get_mut(&seq) {
            *n -= 1;
            if *n == 0 {
                pinned.remove(&seq);
            }
        }
    }

    /// Oldest pinned sequence number, if any snapshot is live.
    #[allow(dead_code)] // read by compaction, which drops versions no snapshot needs
    pub fn oldest(&self) -> Option<SeqNo> {
        self.pinned.lock().keys().next().copied()
    }

    /// Every pinned sequence number, ascending.
    pub fn all(&self) -> Vec<SeqNo> {
        self.pinned.lock().keys().copied().collect()
    }

    /// Number of live snapshot handles.
    pub fn count(&self) -> usize {
        self.pinned.lock().values().sum()
    }
}

/// A consistent point-in-time view of the database. Cheap to take; release
/// it (drop) when done so old versions can be compacted away.
#[derive(Debug)]
pub struct Snapshot {
    seq: SeqNo,
    registry: Arc<SnapshotRegistry>,
}

impl Snapshot {
    pub(crate) fn new(seq: SeqNo, registry: Arc<SnapshotRegistry>) -> Self {
        registry.pin(seq);
        Snapshot { seq, registry }
    }

    /// A snapshot at the sequence number in `current` (the database's
    /// visible sequence number), read and pinned atomically.
    pub(crate) fn of_current(current: &AtomicU64, registry: Arc<SnapshotRegistry>) -> Self {
        let seq = registry.pin_current(current);
        Snapshot { seq, registry }
    }

    /// The sequence number of the last write this snapshot sees.
    pub fn seq(&self) -> SeqNo {
        self.seq
    }

    /// Whether the snapshot was taken from the database whose registry is
    /// `registry`.
    pub(crate) fn is_of(&self, registry: &Arc<SnapshotRegistry>) -> bool {
        Arc::ptr_eq(&self.registry, registry)
    }
}

impl Clone for Snapshot {
    fn clone(&self) -> Self {
        Snapshot::new(self.seq, self.registry.clone())
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        self.registry.release(self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_tracks_oldest() {
        let r = Arc::new(SnapshotRegistry::default());
        let a = Snapshot::new(SeqNo(5), r.clone());
        let b = Snapshot::new(SeqNo(9), r.clone());
        let a2 = a.clone();
        assert_eq!(r.oldest(), Some(SeqNo(5)));
        drop(a);
        assert_eq!(r.oldest(), Some(SeqNo(5)));
        drop(a2);
        assert_eq!(r.oldest(), Some(SeqNo(9)));
        assert_eq!(r.count(), 1);
        drop(b);
        assert_eq!(r.oldest(), None);
    }
}
