//! The memtable: recent writes, sorted by internal key, in memory.
//!
//! What it owns: an index (the arena skiplist of [`crate::skiplist`], whose
//! nodes live in an arena next to their key and value), plus counters for the engine
//! (entry count, sequence range, memory estimate), and the range tombstones
//! written to it (a [`RangeTombstoneSet`] rebuilt on the first read after an
//! insert). What it leaves to others:
//! the WAL that makes its contents durable, the decision to freeze it when
//! [`Memtable::approximate_memory_bytes`] reaches `write_buffer_size`, and the
//! flush that turns it into a table.
//!
//! Threads: one thread inserts at a time (the engine's write leader); any
//! number of threads read concurrently through [`Memtable::get`] and
//! [`MemtableIter`]. A reader never sees a torn entry: a node, key and value
//! included, is written into the arena before the skiplist publishes it with
//! a release store that readers acquire.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::filter::KeyFilter;
use crate::skiplist::{NodeRef, SearchKey, SkipList};
use jkv_format::key::{pack_trailer, parse_internal_key, TRAILER_LEN};
use jkv_format::{InternalIterator, Result, SeqNo, ValueKind};
use jkv_format::{RangeTombstone, RangeTombstoneSet};
use parking_lot::Mutex;

/// Smallest number of memory bytes an entry takes beyond its internal key
/// and value: its skiplist node's one-link tower, 16-byte key prefix and
/// two one-byte lengths, all in the arena (so already inside
/// [`Memtable::approximate_memory_bytes`]). Taller towers, longer lengths
/// and alignment padding add to it: about 8 bytes more on average.
pub const NODE_OVERHEAD_BYTES: usize = crate::skiplist::NODE_OVERHEAD_BYTES_MIN;

/// The range tombstones of a memtable.
#[derive(Default)]
struct RangeDels {
    /// In insertion order.
    list: Vec<RangeTombstone>,
    /// Built from `list` when first asked for; `None` after an insert.
    set: Option<Arc<RangeTombstoneSet>>,
}

/// Recent writes, sorted by internal key; see the module docs.
pub struct Memtable {
    /// The entries; nodes, keys and values all live in its arena.
    list: SkipList,
    /// User keys inserted, so lookups of other keys skip the skiplist.
    filter: Option<KeyFilter>,
    /// Entries inserted; bumped after the entry is visible in `list`.
    entries: AtomicUsize,
    /// Smallest sequence number inserted, `u64::MAX` while empty.
    seq_min: AtomicU64,
    /// Largest sequence number inserted, 0 while empty.
    seq_max: AtomicU64,
    /// Sum of user key and value lengths inserted.
    user_bytes: AtomicU64,
    /// Range tombstones: the list as inserted and the set built from it
    /// on the first read after an insert (readers clone the `Arc`). Leaf
    /// lock.
    range_dels: Mutex<RangeDels>,
    /// Range tombstones inserted, so readers of a memtable without any skip
    /// the lock.
    range_del_count: AtomicUsize,
    /// Bytes of the range tombstones' keys.
    range_del_bytes: AtomicUsize,
}

impl Default for Memtable {
    fn default() -> Self {
        Memtable::new()
    }
}

impl std::fmt::Debug for Memtable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memtable")
            .field("entries", &self.len())
            .field("seq_range", &self.seq_range())
            .field("approximate_memory_bytes", &self.approximate_memory_bytes())
            .finish()
    }
}

impl Memtable {
    /// An empty memtable without a key filter. Takes no arena memory until
    /// the first insert.
    pub fn new() -> Memtable {
        Memtable::build(None)
    }

    /// An empty memtable with a bloom filter of about `filter_bytes` over
    /// its user keys (the engine gives it 1/16 of the write buffer), so
    /// that [`get`](Self::get) of a key it does not hold is one cache
    /// line instead of a skiplist search.
    pub fn with_key_filter(filter_bytes: usize) -> Memtable {
        Memtable::build(Some(KeyFilter::with_bytes(filter_bytes)))
    }

    fn build(filter: Option<KeyFilter>) -> Memtable {
        Memtable {
            list: SkipList::new(),
            filter,
            entries: AtomicUsize::new(0),
            seq_min: AtomicU64::new(u64::MAX),
            seq_max: AtomicU64::new(0),
            user_bytes: AtomicU64::new(0),
            range_dels: Mutex::new(RangeDels::default()),
            range_del_count: AtomicUsize::new(0),
            range_del_bytes: AtomicUsize::new(0),
        }
    }

    /// Adds the entry (`user_key`, `seq`, `kind`) → `value`.
    ///
    /// Only one thread may insert at a time (the engine's write leader);
    /// readers may run concurrently on other threads. Each (`user_key`,
    /// `seq`) is inserted at most once: the engine never reuses a sequence
    /// number. `seq` must be at most [`SeqNo::MAX`]. A deletion's value is
    /// normally empty.
    pub fn insert(&self, user_key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) {
        self.insert_entry(user_key, seq, kind, value);
    }

    /// Adds the range tombstone `[start, end)` at `seq`. Same threading
    /// rule as [`insert`](Self::insert). An empty range is kept (it deletes
    /// nothing) so the memtable's sequence range still covers `seq`.
    pub fn insert_range_tombstone(&self, start: &[u8], end: &[u8], seq: SeqNo) {
        {
            let mut guard = self.range_dels.lock();
            guard.list.push(RangeTombstone {
                start: start.to_vec(),
                end: end.to_vec(),
                seq,
            });
            guard.set = None;
        }
        self.seq_min.fetch_min(seq.0, Ordering::Relaxed);
        self.seq_max.fetch_max(seq.0, Ordering::Relaxed);
        self.user_bytes
            .fetch_add((start.len() + end.len()) as u64, Ordering::Relaxed);
        self.range_del_bytes.fetch_add(
            start.len() + end.len() + std::mem::size_of::<RangeTombstone>(),
            Ordering::Relaxed,
        );
        self.range_del_count.fetch_add(1, Ordering::Release);
    }

    /// The range tombstones inserted so far; `None` when there are none
    /// (one atomic load, no lock).
    pub fn range_tombstones(&self) -> Option<Arc<RangeTombstoneSet>> {
        if self.range_del_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut guard = self.range_dels.lock();
        let RangeDels { list, set } = &mut *guard;
        let set = set.get_or_insert_with(|| Arc::new(RangeTombstoneSet::new(list.iter().cloned())));
        Some(Arc::clone(set))
    }

    /// Number of range tombstones inserted.
    pub fn range_tombstone_count(&self) -> usize {
        self.range_del_count.load(Ordering::Acquire)
    }

    /// [`insert`](Self::insert), then calls `previous` with the version of
    /// `user_key` this entry shadows in this memtable — the next older one:
    /// its kind and value — or `None` when the memtable has no older
    /// version. Free: it is the inserted node's successor, no search.
    pub fn insert_and_see_previous<R>(
        &self,
        user_key: &[u8],
        seq: SeqNo,
        kind: ValueKind,
        value: &[u8],
        previous: impl FnOnce(Option<(ValueKind, &[u8])>) -> R,
    ) -> R {
        let inserted = self.insert_entry(user_key, seq, kind, value);
        // Reading the successor costs a cache miss, which is why plain
        // `insert` does not.
        let older = inserted.next();
        let shadowed = older.and_then(|node| {
            let (key, value) = node.entry();
            let parsed = parse_internal_key(key)
                .expect("memtable keys are encoded by insert with a known kind");
            (parsed.user_key == user_key).then_some((parsed.kind, value))
        });
        previous(shadowed)
    }

    /// Adds the entry and returns its place in the skiplist.
    fn insert_entry(
        &self,
        user_key: &[u8],
        seq: SeqNo,
        kind: ValueKind,
        value: &[u8],
    ) -> NodeRef<'_> {
        debug_assert!(
            seq <= SeqNo::MAX,
            "sequence number {seq} wider than 56 bits"
        );
        if let Some(filter) = &self.filter {
            filter.insert(user_key);
        }
        // The counters move before the entry is published, so a reader that
        // finds the entry also finds it inside `seq_range`.
        self.seq_min.fetch_min(seq.0, Ordering::Relaxed);
        self.seq_max.fetch_max(seq.0, Ordering::Relaxed);
        self.user_bytes
            .fetch_add((user_key.len() + value.len()) as u64, Ordering::Relaxed);
        // One arena allocation holds the node, `user_key ++ trailer` and the
        // value, so an entry costs one bump of the arena cursor.
        let inserted = self
            .list
            .insert(user_key, pack_trailer(seq, kind as u8), value);
        self.entries.fetch_add(1, Ordering::Release);
        inserted
    }

    /// The newest entry of `user_key` with a sequence number at or below
    /// `snapshot`: its kind, sequence number and value (copied out; empty for
    /// a deletion). `None` when the memtable has no such entry.
    pub fn get(&self, user_key: &[u8], snapshot: SeqNo) -> Option<(ValueKind, SeqNo, Bytes)> {
        if let Some(filter) = &self.filter {
            if !filter.may_contain(user_key) {
                return None;
            }
        }
        // The seek key (`user_key ++ trailer`), on the stack when it is
        // short (no allocation).
        let trailer = pack_trailer(snapshot.min(SeqNo::MAX), ValueKind::SEEK).to_le_bytes();
        let len = user_key.len() + TRAILER_LEN;
        let mut stack = [0u8; 64];
        let mut heap = Vec::new();
        let target: &mut [u8] = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap.resize(len, 0);
            &mut heap
        };
        target[..user_key.len()].copy_from_slice(user_key);
        target[user_key.len()..].copy_from_slice(&trailer);
        let target: &[u8] = target;
        let node = self.list.seek_ge(&SearchKey::new(target))?;
        let (key, value) = node.entry();
        let parsed =
            parse_internal_key(key).expect("memtable keys are encoded by insert with a known kind");
        if parsed.user_key != user_key {
            return None;
        }
        Some((parsed.kind, parsed.seq, Bytes::copy_from_slice(value)))
    }

    /// Memory held, in bytes: the arena bytes used (every skiplist node
    /// with its key and value, alignment padding and abandoned block
    /// tails), the range tombstones (their keys and list entries) and the
    /// key filter. The engine freezes the memtable when this reaches
    /// `write_buffer_size`.
    pub fn approximate_memory_bytes(&self) -> usize {
        self.list.allocated_bytes()
            + self.range_del_bytes.load(Ordering::Relaxed)
            + self.filter.as_ref().map_or(0, KeyFilter::memory_bytes)
    }

    /// Number of entries (every version and deletion counts).
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Acquire)
    }

    /// True when nothing was inserted (no entry and no range tombstone).
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.range_tombstone_count() == 0
    }

    /// Smallest and largest sequence number inserted; `None` while empty.
    pub fn seq_range(&self) -> Option<(SeqNo, SeqNo)> {
        let min = self.seq_min.load(Ordering::Relaxed);
        let max = self.seq_max.load(Ordering::Relaxed);
        (min != u64::MAX && min <= max).then_some((SeqNo(min), SeqNo(max)))
    }

    /// Sum of the user key and value lengths inserted, in bytes (for stats;
    /// excludes trailers and overhead).
    pub fn user_bytes(&self) -> u64 {
        self.user_bytes.load(Ordering::Relaxed)
    }

    /// A cursor over every entry, in internal key order. It holds the
    /// memtable alive; entries inserted while it exists may or may not be
    /// seen, but every position it reports is a complete entry.
    pub fn iter(self: &Arc<Self>) -> MemtableIter {
        MemtableIter {
            current: None,
            memtable: Arc::clone(self),
        }
    }
}

/// Cursor over a [`Memtable`]; see [`InternalIterator`] for the contract.
///
/// `next` follows the skiplist's bottom-level link from the current node (no
/// search); `prev` searches from the top, O(log n).
pub struct MemtableIter {
    // SAFETY: `current` points into `memtable.list`; the lifetime is erased
    // to `'static` because the owner sits in the same struct. It is never
    // handed out (only slices borrowed from `&self` are), and the `Arc`
    // keeps the memtable and its arena alive, and nodes never move, while
    // the cursor lives.
    current: Option<NodeRef<'static>>,
    memtable: Arc<Memtable>,
}

impl MemtableIter {
    /// The memtable this cursor walks.
    pub fn memtable(&self) -> &Arc<Memtable> {
        &self.memtable
    }

    fn node(&self) -> NodeRef<'_> {
        self.current
            .expect("key()/value()/next()/prev() require a valid cursor")
    }
}

/// Erases the lifetime of a node so a cursor can keep it next to the
/// `Arc<Memtable>` that owns its list.
///
/// # Safety
/// The node must belong to the list of a memtable that outlives the returned
/// reference: in practice, it comes from `self.memtable.list` and goes into
/// `self.current` of the same [`MemtableIter`].
unsafe fn erase(node: Option<NodeRef<'_>>) -> Option<NodeRef<'static>> {
    // SAFETY: the caller guarantees the list outlives the node reference;
    // only the lifetime parameter changes, not the layout.
    node.map(|n| unsafe { std::mem::transmute::<NodeRef<'_>, NodeRef<'static>>(n) })
}

impl InternalIterator for MemtableIter {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn seek_to_first(&mut self) {
        // SAFETY: a node of `self.memtable.list`, kept in `self.current`.
        self.current = unsafe { erase(self.memtable.list.first()) };
    }

    fn seek_to_last(&mut self) {
        // SAFETY: a node of `self.memtable.list`, kept in `self.current`.
        self.current = unsafe { erase(self.memtable.list.last()) };
    }

    fn seek(&mut self, target: &[u8]) {
        let node = self.memtable.list.seek_ge(&SearchKey::new(target));
        // SAFETY: a node of `self.memtable.list`, kept in `self.current`.
        self.current = unsafe { erase(node) };
    }

    fn seek_for_prev(&mut self, target: &[u8]) {
        let node = self.memtable.list.seek_lt(&SearchKey::new(target), true);
        // SAFETY: a node of `self.memtable.list`, kept in `self.current`.
        self.current = unsafe { erase(node) };
    }

    fn next(&mut self) {
        // `NodeRef::next` is the level-0 link: no search.
        let next = self.node().next();
        // SAFETY: the successor is in the same list as the current node.
        self.current = unsafe { erase(next) };
    }

    fn prev(&mut self) {
        // The list has no back links: search from the top for the last node
        // before the current key, O(log n).
        let key = self.node().key();
        let node = self.memtable.list.seek_lt(&SearchKey::new(key), false);
        // SAFETY: a node of `self.memtable.list`, kept in `self.current`.
        self.current = unsafe { erase(node) };
    }

    fn key(&self) -> &[u8] {
        self.node().key()
    }

    fn value(&self) -> &[u8] {
        self.node().value()
    }

    fn status(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv_format::iter::VecIter;
    use jkv_format::key::compare_internal_keys;
    use jkv_format::InternalKey;
    use proptest::prelude::*;
    use std::cmp::Ordering as CmpOrdering;

    fn ik(k: &[u8], s: u64, kind: ValueKind) -> Vec<u8> {
        InternalKey::new(k, SeqNo(s), kind).into_vec()
    }

    #[test]
    fn shareable_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Memtable>();
        send_sync::<Arc<Memtable>>();
        send::<MemtableIter>();
    }

    #[test]
    fn insert_sees_the_version_it_shadows() {
        let m = Memtable::new();
        let none = m.insert_and_see_previous(b"b", SeqNo(1), ValueKind::Value, b"b1", |p| {
            p.map(|(k, v)| (k, v.to_vec()))
        });
        assert_eq!(none, None);
        // Neighbours with other user keys are not versions of this one.
        m.insert(b"a", SeqNo(2), ValueKind::Value, b"a2");
        m.insert(b"ba", SeqNo(3), ValueKind::Value, b"ba3");
        let seen = |m: &Memtable, seq, kind| {
            m.insert_and_see_previous(b"b", SeqNo(seq), kind, b"", |p| {
                p.map(|(k, v)| (k, v.to_vec()))
            })
        };
        assert_eq!(
            seen(&m, 4, ValueKind::Deletion),
            Some((ValueKind::Value, b"b1".to_vec()))
        );
        assert_eq!(
            seen(&m, 5, ValueKind::Value),
            Some((ValueKind::Deletion, Vec::new()))
        );
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn get_respects_snapshots() {
        let m = Memtable::new();
        m.insert(b"k", SeqNo(1), ValueKind::Value, b"v1");
        m.insert(b"k", SeqNo(3), ValueKind::Value, b"v3");
        m.insert(b"k", SeqNo(5), ValueKind::Deletion, b"");
        m.insert(b"k", SeqNo(7), ValueKind::ValuePointer, b"ptr7");
        m.insert(b"j", SeqNo(2), ValueKind::Value, b"j2");
        m.insert(b"ka", SeqNo(0), ValueKind::Value, b"ka0");

        assert_eq!(m.get(b"k", SeqNo(0)), None);
        let v = |kind, s, b: &'static [u8]| Some((kind, SeqNo(s), Bytes::from_static(b)));
        assert_eq!(m.get(b"k", SeqNo(1)), v(ValueKind::Value, 1, b"v1"));
        assert_eq!(m.get(b"k", SeqNo(2)), v(ValueKind::Value, 1, b"v1"));
        assert_eq!(m.get(b"k", SeqNo(4)), v(ValueKind::Value, 3, b"v3"));
        assert_eq!(m.get(b"k", SeqNo(5)), v(ValueKind::Deletion, 5, b""));
        assert_eq!(m.get(b"k", SeqNo(6)), v(ValueKind::Deletion, 5, b""));
        assert_eq!(
            m.get(b"k", SeqNo::MAX),
            v(ValueKind::ValuePointer, 7, b"ptr7")
        );
        assert_eq!(m.get(b"ka", SeqNo(0)), v(ValueKind::Value, 0, b"ka0"));
        assert_eq!(m.get(b"j", SeqNo(1)), None);
        assert_eq!(m.get(b"i", SeqNo::MAX), None);
        assert_eq!(m.get(b"z", SeqNo::MAX), None);
        assert_eq!(m.get(b"", SeqNo::MAX), None);

        assert_eq!(m.len(), 6);
        assert_eq!(m.seq_range(), Some((SeqNo(0), SeqNo(7))));
        assert_eq!(
            m.user_bytes(),
            (1 + 2) * 2 + 1 + (1 + 4) + (1 + 2) + (2 + 3)
        );
    }

    #[test]
    fn empty_memtable() {
        let m = Arc::new(Memtable::new());
        assert!(m.is_empty());
        assert_eq!(m.len(), 0);
        assert_eq!(m.seq_range(), None);
        assert_eq!(m.approximate_memory_bytes(), 0);
        assert_eq!(m.get(b"a", SeqNo::MAX), None);
        let mut it = m.iter();
        it.seek_to_first();
        assert!(!it.valid());
        it.seek_to_last();
        assert!(!it.valid());
        it.seek(b"anything");
        assert!(!it.valid());
        it.seek_for_prev(b"anything");
        assert!(!it.valid());
        assert!(it.status().is_ok());
    }

    #[test]
    fn empty_key_and_value() {
        let m = Arc::new(Memtable::new());
        m.insert(b"", SeqNo(4), ValueKind::Value, b"");
        m.insert(b"", SeqNo(9), ValueKind::Value, b"x");
        assert_eq!(
            m.get(b"", SeqNo(5)),
            Some((ValueKind::Value, SeqNo(4), Bytes::new()))
        );
        assert_eq!(
            m.get(b"", SeqNo(9)),
            Some((ValueKind::Value, SeqNo(9), Bytes::from_static(b"x")))
        );
        let mut it = m.iter();
        it.seek_to_first();
        assert_eq!(it.key(), &ik(b"", 9, ValueKind::Value)[..]);
        it.next();
        assert_eq!(it.key(), &ik(b"", 4, ValueKind::Value)[..]);
        assert_eq!(it.value(), b"");
        it.next();
        assert!(!it.valid());
    }

    #[test]
    fn one_mib_value() {
        let m = Memtable::new();
        let big: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
        m.insert(b"small", SeqNo(1), ValueKind::Value, b"s");
        m.insert(b"big", SeqNo(2), ValueKind::Value, &big);
        m.insert(b"small2", SeqNo(3), ValueKind::Value, b"t");
        let (kind, seq, value) = m.get(b"big", SeqNo::MAX).expect("big value present");
        assert_eq!((kind, seq), (ValueKind::Value, SeqNo(2)));
        assert_eq!(&value[..], &big[..]);
        assert_eq!(
            m.get(b"small", SeqNo::MAX).map(|e| e.2),
            Some(Bytes::from_static(b"s"))
        );
        assert!(m.approximate_memory_bytes() >= big.len());
    }

    #[test]
    fn memory_accounting_grows_with_inserts() {
        let m = Memtable::new();
        let mut last = m.approximate_memory_bytes();
        for i in 0..5_000u64 {
            let key = format!("key{i:08}");
            m.insert(key.as_bytes(), SeqNo(i), ValueKind::Value, &[b'v'; 100]);
            let now = m.approximate_memory_bytes();
            assert!(now > last, "memory estimate did not grow at insert {i}");
            last = now;
        }
        // Every entry's bytes are accounted, plus node overhead.
        assert!(last >= 5_000 * (11 + TRAILER_LEN + 100 + NODE_OVERHEAD_BYTES));
        assert_eq!(m.user_bytes(), 5_000 * 111);
    }

    #[test]
    fn iterator_walks_both_ways() {
        let m = Arc::new(Memtable::new());
        for (i, k) in ["c", "a", "b"].iter().enumerate() {
            m.insert(
                k.as_bytes(),
                SeqNo(i as u64 + 1),
                ValueKind::Value,
                k.as_bytes(),
            );
        }
        let mut it = m.iter();
        it.seek_to_last();
        let mut seen = Vec::new();
        while it.valid() {
            seen.push(it.value().to_vec());
            it.prev();
        }
        assert_eq!(seen, vec![b"c".to_vec(), b"b".to_vec(), b"a".to_vec()]);
        it.seek(&InternalKey::seek(b"b", SeqNo::MAX).into_vec());
        assert_eq!(it.value(), b"b");
        it.next();
        assert_eq!(it.value(), b"c");
        it.prev();
        it.prev();
        assert_eq!(it.value(), b"a");
        // The cursor keeps the memtable alive after the caller drops it.
        drop(m);
        it.next();
        assert_eq!(it.value(), b"b");
    }

    #[test]
    fn range_tombstones_count_as_content() {
        let m = Memtable::new();
        assert!(m.range_tombstones().is_none());
        let before = m.approximate_memory_bytes();
        m.insert_range_tombstone(b"b", b"d", SeqNo(7));
        assert_eq!(m.range_tombstones().map(|s| s.len()), Some(1));
        m.insert_range_tombstone(b"c", b"f", SeqNo(9));
        assert!(
            !m.is_empty(),
            "a memtable holding only tombstones is flushed"
        );
        assert_eq!(m.len(), 0);
        assert_eq!(m.seq_range(), Some((SeqNo(7), SeqNo(9))));
        assert!(m.approximate_memory_bytes() > before);
        let set = m.range_tombstones().expect("two tombstones");
        assert_eq!(set.len(), 2);
        assert_eq!(set.max_covering_seq(b"c", SeqNo::MAX), Some(SeqNo(9)));
        assert_eq!(set.max_covering_seq(b"b", SeqNo::MAX), Some(SeqNo(7)));
        assert_eq!(set.max_covering_seq(b"f", SeqNo::MAX), None);
    }

    #[test]
    fn readers_never_see_torn_entries() {
        // Each value is derived from its key and sequence number, so a
        // reader can check every entry it meets without sharing state with
        // the writer.
        fn value_for(key: &[u8], seq: u64) -> Vec<u8> {
            let mut v = key.to_vec();
            v.extend_from_slice(&seq.to_le_bytes());
            v.resize(key.len() + 8 + (seq % 300) as usize, (seq % 256) as u8);
            v
        }
        const ENTRIES: u64 = 20_000;
        let m = Arc::new(Memtable::new());
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for r in 0..3u64 {
            let m = Arc::clone(&m);
            let done = Arc::clone(&done);
            readers.push(std::thread::spawn(move || {
                let mut rounds = 0u64;
                while !done.load(Ordering::Acquire) || rounds < 2 {
                    rounds += 1;
                    let mut it = m.iter();
                    it.seek_to_first();
                    let mut prev: Option<Vec<u8>> = None;
                    let mut count = 0;
                    while it.valid() {
                        let key = it.key().to_vec();
                        let p = parse_internal_key(&key).expect("complete internal key");
                        assert_eq!(it.value(), &value_for(p.user_key, p.seq.0)[..]);
                        if let Some(prev) = &prev {
                            assert_eq!(compare_internal_keys(prev, &key), CmpOrdering::Less);
                        }
                        prev = Some(key);
                        count += 1;
                        it.next();
                    }
                    assert!(count <= ENTRIES);
                    let probe = format!("k{:05}", (rounds * 7919 + r) % 5_000);
                    if let Some((kind, seq, value)) = m.get(probe.as_bytes(), SeqNo::MAX) {
                        assert_eq!(kind, ValueKind::Value);
                        assert_eq!(&value[..], &value_for(probe.as_bytes(), seq.0)[..]);
                    }
                }
            }));
        }
        for seq in 0..ENTRIES {
            let key = format!("k{:05}", (seq * 104_729) % 5_000);
            m.insert(
                key.as_bytes(),
                SeqNo(seq),
                ValueKind::Value,
                &value_for(key.as_bytes(), seq),
            );
        }
        done.store(true, Ordering::Release);
        for r in readers {
            r.join().expect("reader thread panicked");
        }
        assert_eq!(m.len(), ENTRIES as usize);
        assert_eq!(m.seq_range(), Some((SeqNo(0), SeqNo(ENTRIES - 1))));
    }

    #[test]
    fn readers_walk_both_ways_while_the_writer_inserts() {
        // Values are derived from key and sequence number, so readers check
        // every entry they meet on their own.
        fn value_for(key: &[u8], seq: u64) -> Vec<u8> {
            let mut v = seq.to_le_bytes().to_vec();
            v.extend_from_slice(key);
            v.resize(v.len() + (seq % 200) as usize, (seq % 251) as u8);
            v
        }
        fn check(it: &MemtableIter) -> Vec<u8> {
            let key = it.key().to_vec();
            let p = parse_internal_key(&key).expect("complete internal key");
            assert_eq!(it.value(), &value_for(p.user_key, p.seq.0)[..]);
            key
        }
        const ENTRIES: u64 = 30_000;
        const USERS: u64 = 3_000;
        let user = |seq: u64| format!("u{:05}", (seq * 7_919) % USERS);
        let m = Arc::new(Memtable::new());
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for role in 0..3u64 {
            let m = Arc::clone(&m);
            let done = Arc::clone(&done);
            readers.push(std::thread::spawn(move || {
                let mut rounds = 0u64;
                let mut last_count = 0usize;
                while !done.load(Ordering::Acquire) || rounds < 2 {
                    rounds += 1;
                    let mut it = m.iter();
                    let mut seen: Vec<Vec<u8>> = Vec::new();
                    match role {
                        0 => {
                            it.seek_to_first();
                            while it.valid() {
                                seen.push(check(&it));
                                it.next();
                            }
                        }
                        1 => {
                            it.seek_to_last();
                            while it.valid() {
                                seen.push(check(&it));
                                it.prev();
                            }
                            seen.reverse();
                        }
                        _ => {
                            // Point reads, then a short walk each way from
                            // a seek.
                            let probe = user(rounds * 31);
                            if let Some((kind, seq, value)) = m.get(probe.as_bytes(), SeqNo::MAX) {
                                assert_eq!(kind, ValueKind::Value);
                                assert_eq!(&value[..], &value_for(probe.as_bytes(), seq.0)[..]);
                            }
                            it.seek(&InternalKey::seek(probe.as_bytes(), SeqNo::MAX).into_vec());
                            for _ in 0..20 {
                                if !it.valid() {
                                    break;
                                }
                                seen.push(check(&it));
                                it.next();
                            }
                            if it.valid() {
                                let mut back = Vec::new();
                                for _ in 0..20 {
                                    if !it.valid() {
                                        break;
                                    }
                                    back.push(check(&it));
                                    it.prev();
                                }
                                back.reverse();
                                for pair in back.windows(2) {
                                    assert_eq!(
                                        compare_internal_keys(&pair[0], &pair[1]),
                                        CmpOrdering::Less
                                    );
                                }
                            }
                        }
                    }
                    for pair in seen.windows(2) {
                        assert_eq!(compare_internal_keys(&pair[0], &pair[1]), CmpOrdering::Less);
                    }
                    if role < 2 {
                        // Entries only arrive: a full walk never sees fewer
                        // than the one before it.
                        assert!(
                            seen.len() >= last_count,
                            "{} after {last_count}",
                            seen.len()
                        );
                        assert!(seen.len() <= ENTRIES as usize);
                        last_count = seen.len();
                    }
                }
                rounds
            }));
        }
        for seq in 0..ENTRIES {
            let key = user(seq);
            m.insert(
                key.as_bytes(),
                SeqNo(seq),
                ValueKind::Value,
                &value_for(key.as_bytes(), seq),
            );
        }
        done.store(true, Ordering::Release);
        for r in readers {
            let rounds = r.join().expect("reader thread panicked");
            assert!(rounds >= 2);
        }
        let mut it = m.iter();
        it.seek_to_first();
        let mut count = 0;
        while it.valid() {
            check(&it);
            count += 1;
            it.next();
        }
        assert_eq!(count, ENTRIES as usize);
    }

    #[test]
    fn memory_overhead_per_entry() {
        // db_bench's shape: 16-byte keys, 100-byte values.
        const N: usize = 100_000;
        let m = Memtable::new();
        for i in 0..N {
            let key = format!("{:016}", (i * 7_919) % N);
            m.insert(
                key.as_bytes(),
                SeqNo(i as u64),
                ValueKind::Value,
                &[b'v'; 100],
            );
        }
        let per_entry = m.approximate_memory_bytes() as f64 / m.len() as f64;
        let entry_bytes = (16 + TRAILER_LEN + 100) as f64;
        let overhead = per_entry - entry_bytes;
        println!(
            "16-byte keys, 100-byte values: {per_entry:.1} bytes per entry, \
             {overhead:.1} beyond the internal key and value"
        );
        // The node is in the arena: a one-link tower, the prefix and two
        // lengths at least; taller towers (1/3 link on average) and 8-byte
        // alignment add about 6 bytes.
        assert!(overhead >= NODE_OVERHEAD_BYTES as f64, "{overhead}");
        assert!(overhead <= 36.0, "{overhead}");
        // The estimate is what the arena took from the allocator, give or
        // take the unused part of the current block.
        assert!(m.list.arena_reserved_bytes() >= m.approximate_memory_bytes());
        assert!(
            m.list.arena_reserved_bytes()
                <= m.approximate_memory_bytes() + crate::arena::BLOCK_SIZE_BYTES
        );
    }

    /// One step of the iterator model test.
    #[derive(Clone, Debug)]
    enum Op {
        SeekToFirst,
        SeekToLast,
        Seek(Vec<u8>, u64),
        SeekForPrev(Vec<u8>, u64),
        Next,
        Prev,
    }

    fn user_key_strategy() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'c')], 0..4)
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::SeekToFirst),
            Just(Op::SeekToLast),
            (user_key_strategy(), 0u64..60).prop_map(|(k, s)| Op::Seek(k, s)),
            (user_key_strategy(), 0u64..60).prop_map(|(k, s)| Op::SeekForPrev(k, s)),
            Just(Op::Next),
            Just(Op::Next),
            Just(Op::Prev),
            Just(Op::Prev),
        ]
    }

    proptest! {
        #[test]
        fn iterator_matches_vec_iter(
            entries in proptest::collection::vec(
                (user_key_strategy(), 0u8..3, proptest::collection::vec(any::<u8>(), 0..8)),
                0..50,
            ),
            ops in proptest::collection::vec(op_strategy(), 1..60),
        ) {
            let m = Arc::new(Memtable::new());
            let mut model = Vec::new();
            for (seq, (key, kind, value)) in entries.iter().enumerate() {
                let kind = ValueKind::from_u8(*kind).expect("kind strategy yields 0..3");
                m.insert(key, SeqNo(seq as u64), kind, value);
                model.push((ik(key, seq as u64, kind), value.clone()));
            }
            let mut expected = VecIter::new(model);
            let mut actual = m.iter();
            for op in ops {
                match &op {
                    Op::SeekToFirst => { expected.seek_to_first(); actual.seek_to_first(); }
                    Op::SeekToLast => { expected.seek_to_last(); actual.seek_to_last(); }
                    Op::Seek(k, s) => {
                        let t = InternalKey::seek(k, SeqNo(*s)).into_vec();
                        expected.seek(&t);
                        actual.seek(&t);
                    }
                    Op::SeekForPrev(k, s) => {
                        let t = InternalKey::seek(k, SeqNo(*s)).into_vec();
                        expected.seek_for_prev(&t);
                        actual.seek_for_prev(&t);
                    }
                    Op::Next => if expected.valid() { expected.next(); actual.next(); },
                    Op::Prev => if expected.valid() { expected.prev(); actual.prev(); },
                }
                prop_assert_eq!(actual.valid(), expected.valid(), "after {:?}", op);
                if expected.valid() {
                    prop_assert_eq!(actual.key(), expected.key(), "after {:?}", op);
                    prop_assert_eq!(actual.value(), expected.value(), "after {:?}", op);
                }
            }
        }

        #[test]
        fn get_matches_model(
            entries in proptest::collection::vec(
                (user_key_strategy(), 0u8..3, proptest::collection::vec(any::<u8>(), 0..8)),
                0..50,
            ),
            probes in proptest::collection::vec((user_key_strategy(), 0u64..60), 1..30),
            filter_bytes in proptest::option::of(0usize..256),
        ) {
            // With and without a key filter; tiny filters answer "maybe"
            // for most keys, larger ones "no" for most absent keys.
            let m = match filter_bytes {
                Some(bytes) => Memtable::with_key_filter(bytes),
                None => Memtable::new(),
            };
            for (seq, (key, kind, value)) in entries.iter().enumerate() {
                let kind = ValueKind::from_u8(*kind).expect("kind strategy yields 0..3");
                m.insert(key, SeqNo(seq as u64), kind, value);
            }
            for (key, snapshot) in probes {
                let expected = entries
                    .iter()
                    .enumerate()
                    .filter(|(seq, (k, _, _))| *k == key && *seq as u64 <= snapshot)
                    .max_by_key(|(seq, _)| *seq)
                    .map(|(seq, (_, kind, value))| {
                        let kind = ValueKind::from_u8(*kind).expect("kind strategy yields 0..3");
                        (kind, SeqNo(seq as u64), Bytes::copy_from_slice(value))
                    });
                prop_assert_eq!(m.get(&key, SeqNo(snapshot)), expected);
            }
        }
    }
}
