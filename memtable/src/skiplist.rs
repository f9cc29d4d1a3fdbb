//! The arena skiplist: the memtable's index, with every node allocated in
//! the memtable's [`Arena`] next to its key and value (as RocksDB's
//! InlineSkipList and Pebble's arenaskl), so an entry costs one arena bump
//! and no heap node, reference count or epoch.
//!
//! What it owns: the arena (nodes and the bytes in them), the head tower and
//! the current height. What it leaves to others: what the keys mean beyond
//! their order (internal keys, ordered by [`compare_internal_keys`]), the
//! counters and filter of the memtable, and when it is dropped (with its
//! memtable, once no reader holds it).
//!
//! # Node layout
//!
//! One arena allocation per entry, 8-byte aligned; a node's address is the
//! start of its prefix, with the tower just before it (RocksDB's layout), so
//! the level-0 link, the prefix and usually the key share a cache line:
//!
//! ```text
//! [link h-1] .. [link 1] [link 0] | prefix | key_len | value_len | key | value
//!  8 bytes each, h = height         16       varint    varint
//!                                 ^ node address
//! ```
//!
//! - link *i*: `AtomicPtr` to the next node at level *i*, null at the end.
//! - prefix: the first 16 bytes of the user key (the key minus its 8-byte
//!   trailer), zero-padded; compared as a big-endian `u128`, which orders as
//!   the user keys do, so most comparisons of a search read only the node it
//!   already touched.
//! - key_len, value_len: LEB128 varints (one byte each below 128).
//! - key: the internal key (`user_key ++ trailer`), then the value.
//!
//! Heights are random with branching 1/4 (LevelDB, RocksDB), at most
//! [`MAX_HEIGHT`]: 4^16 entries before the top level stops thinning.
//!
//! # Threads and invariants
//!
//! - **Single writer.** [`SkipList::insert`] takes `&self` but must not run
//!   on two threads at once; the guarantee is external (the engine's write
//!   leader is the only thread that inserts into a memtable), not a lock.
//!   Breaking it is memory-safe (every link is atomic and only ever points
//!   at a fully written node) but can lose entries; debug builds panic.
//! - **Any number of concurrent readers.** A node is fully written (prefix,
//!   lengths, key, value and all its own links) before it is published by a
//!   `Release` store into its predecessor's link, at level 0 first, then
//!   upward. Readers load links with `Acquire`, so whatever node they reach
//!   is complete. A reader may or may not see a node being inserted, and may
//!   see it at level 0 before the levels above (it is then only slower to
//!   find); the current height is a hint loaded `Relaxed` (a head link above
//!   the real height is null, so a stale value is harmless).
//! - **Nodes never move and are never freed or changed** (except their
//!   links, by the writer) before the arena drops with the list, so a
//!   [`NodeRef`] borrowed from the list stays valid for the borrow.
//! - A node reached at level *i* has a tower of more than *i* links; links
//!   are only read at levels the node was reached on (or below), so the
//!   unallocated levels above a node's height are never touched.
//! - Keys are unique: the memtable never inserts one internal key twice.

use std::cmp::Ordering as CmpOrdering;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use jkv_format::key::{compare_internal_keys, TRAILER_LEN};

use crate::arena::Arena;

/// Largest tower height.
pub const MAX_HEIGHT: usize = 16;

/// One in this many nodes of height *h* reaches height *h + 1*.
const BRANCHING: u64 = 4;

/// Bytes of one tower link.
pub const LINK_LEN: usize = std::mem::size_of::<AtomicPtr<u8>>();

/// Bytes of the user key copied into a node.
pub const PREFIX_LEN: usize = 16;

/// Layout: module docs, "Node layout". Offsets from the node address.
const PREFIX_AT: usize = 0;
const LENGTHS_AT: usize = PREFIX_AT + PREFIX_LEN;
const _: () = assert!(LENGTHS_AT == 16);

/// Alignment of a node's allocation (and so of its links).
const NODE_ALIGN: usize = std::mem::align_of::<AtomicPtr<u8>>();

/// Smallest number of arena bytes a node adds to its key and value: a
/// one-link tower, the prefix and two one-byte lengths (alignment padding
/// comes on top).
pub const NODE_OVERHEAD_BYTES_MIN: usize = LINK_LEN + PREFIX_LEN + 2;

/// A key to search for: an internal key and its user-key prefix.
#[derive(Clone, Copy)]
pub struct SearchKey<'k> {
    prefix: u128,
    key: &'k [u8],
}

impl<'k> SearchKey<'k> {
    /// Wraps the internal key `key` (user key, then an 8-byte trailer).
    pub fn new(key: &'k [u8]) -> SearchKey<'k> {
        SearchKey {
            prefix: prefix_of(key),
            key,
        }
    }
}

/// The prefix of an internal key's user key, zero-padded, big-endian.
fn prefix_of(ikey: &[u8]) -> u128 {
    u128::from_be_bytes(prefix_bytes(ikey))
}

fn prefix_bytes(ikey: &[u8]) -> [u8; PREFIX_LEN] {
    prefix_bytes_of_user_key(&ikey[..ikey.len().saturating_sub(TRAILER_LEN)])
}

/// Bytes of the LEB128 varint of `v`.
fn varint_len(v: u64) -> usize {
    jkv_format::coding::varint_len(v)
}

/// Writes the varint of `v` at `dst` and returns the byte after it.
///
/// # Safety
/// `dst` must be valid for `varint_len(v)` writes.
unsafe fn write_varint(mut dst: *mut u8, mut v: u64) -> *mut u8 {
    while v >= 0x80 {
        // SAFETY: within the `varint_len(v)` bytes the caller provides.
        unsafe {
            dst.write(v as u8 | 0x80);
            dst = dst.add(1);
        }
        v >>= 7;
    }
    // SAFETY: the last of the `varint_len(v)` bytes.
    unsafe {
        dst.write(v as u8);
        dst.add(1)
    }
}

/// Reads the varint at `src` and returns it and the byte after it.
///
/// # Safety
/// `src` must point at a complete varint written by [`write_varint`].
unsafe fn read_varint(mut src: *const u8) -> (u64, *const u8) {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        // SAFETY: the caller guarantees a complete varint; it ends at the
        // first byte without the high bit.
        let byte = unsafe { src.read() };
        // SAFETY: as above, the next byte is still inside the varint or just
        // past it (one past the varint is inside the node).
        src = unsafe { src.add(1) };
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return (v, src);
        }
        shift += 7;
    }
}

/// A node of a [`SkipList`], valid while the list is borrowed.
#[derive(Clone, Copy)]
pub struct NodeRef<'a> {
    /// The node address (see the module docs), in the list's arena.
    ptr: NonNull<u8>,
    list: PhantomData<&'a SkipList>,
}

// SAFETY: a node is immutable once published except for its atomic links;
// reading it from any thread is fine, and nothing about it is tied to one.
unsafe impl Send for NodeRef<'_> {}
// SAFETY: as for `Send`.
unsafe impl Sync for NodeRef<'_> {}

impl<'a> NodeRef<'a> {
    /// # Safety
    /// `ptr` is null or the address of a published node of a list that lives
    /// for `'a`.
    unsafe fn from_raw(ptr: *mut u8) -> Option<NodeRef<'a>> {
        NonNull::new(ptr).map(|ptr| NodeRef {
            ptr,
            list: PhantomData,
        })
    }

    /// The node's link at `level`.
    ///
    /// # Safety
    /// `level` is below the node's height.
    unsafe fn link(self, level: usize) -> &'a AtomicPtr<u8> {
        // SAFETY: the tower has more than `level` links, stored just before
        // the node address, 8-byte aligned (the node is), inside the node's
        // arena allocation, which lives for `'a`. Links are only ever
        // accessed atomically once the node is written.
        unsafe {
            &*self
                .ptr
                .as_ptr()
                .sub((level + 1) * LINK_LEN)
                .cast::<AtomicPtr<u8>>()
        }
    }

    /// The next node at level 0, `None` at the end of the list.
    pub fn next(self) -> Option<NodeRef<'a>> {
        // SAFETY: every node has a level-0 link; what it points at is a
        // published node (module docs), which the `Acquire` makes complete.
        unsafe { NodeRef::from_raw(self.link(0).load(Ordering::Acquire)) }
    }

    fn prefix(self) -> u128 {
        // SAFETY: the prefix is the first 16 bytes at the node address,
        // written before the node was published.
        u128::from_be_bytes(unsafe { self.ptr.as_ptr().add(PREFIX_AT).cast::<[u8; 16]>().read() })
    }

    /// The key and value lengths and the start of the key.
    fn lengths(self) -> (usize, usize, *const u8) {
        // SAFETY: the two varints follow the prefix; they were written with
        // `write_varint` before the node was published.
        let (key_len, at) = unsafe { read_varint(self.ptr.as_ptr().add(LENGTHS_AT)) };
        // SAFETY: as above, the value length follows the key length.
        let (value_len, at) = unsafe { read_varint(at) };
        // Both lengths came from slice lengths, so they fit a usize.
        (key_len as usize, value_len as usize, at)
    }

    /// The node's internal key.
    pub fn key(self) -> &'a [u8] {
        let (key_len, _, at) = self.lengths();
        // SAFETY: `key_len` bytes of key follow the lengths, inside the
        // node's allocation, written before publication and never changed;
        // the arena keeps them for `'a`.
        unsafe { std::slice::from_raw_parts(at, key_len) }
    }

    /// The node's value.
    pub fn value(self) -> &'a [u8] {
        let (key_len, value_len, at) = self.lengths();
        // SAFETY: as for `key`: the value follows the key.
        unsafe { std::slice::from_raw_parts(at.add(key_len), value_len) }
    }

    /// The node's key and value.
    pub fn entry(self) -> (&'a [u8], &'a [u8]) {
        let (key_len, value_len, at) = self.lengths();
        // SAFETY: as for `key` and `value`.
        unsafe {
            (
                std::slice::from_raw_parts(at, key_len),
                std::slice::from_raw_parts(at.add(key_len), value_len),
            )
        }
    }

    /// This node's key against `target`.
    #[inline]
    fn compare(self, target: &SearchKey<'_>) -> CmpOrdering {
        // Zero padding keeps prefix order equal to user-key order: at the
        // first differing byte either both keys have a byte there, or the
        // shorter key ended (padding 0) while the longer one goes on, and a
        // key is ordered before its extensions.
        match self.prefix().cmp(&target.prefix) {
            CmpOrdering::Equal => compare_internal_keys(self.key(), target.key),
            unequal => unequal,
        }
    }

    fn as_ptr(self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

/// A sorted set of internal keys with values, nodes in an arena; see the
/// module docs for the layout and the threading rules.
pub struct SkipList {
    /// Where every node lives.
    arena: Arena,
    /// The head's tower: link *i* is the first node at level *i*.
    head: [AtomicPtr<u8>; MAX_HEIGHT],
    /// Levels in use, 1..=MAX_HEIGHT; a hint for readers (module docs).
    height: AtomicUsize,
    /// xorshift state for tower heights; only the writer touches it.
    rng: AtomicU64,
    /// Set while an insert runs, to catch a second writer in debug builds.
    #[cfg(debug_assertions)]
    inserting: std::sync::atomic::AtomicBool,
}

impl Default for SkipList {
    fn default() -> Self {
        SkipList::new()
    }
}

impl SkipList {
    /// An empty list; takes no arena memory until the first insert.
    pub fn new() -> SkipList {
        SkipList {
            arena: Arena::new(),
            head: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            height: AtomicUsize::new(1),
            rng: AtomicU64::new(0x2545_f491_4f6c_dd1d),
            #[cfg(debug_assertions)]
            inserting: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Arena bytes used: every node with its key and value, plus alignment
    /// padding and abandoned block tails.
    pub fn allocated_bytes(&self) -> usize {
        self.arena.allocated_bytes()
    }

    /// Bytes the arena took from the allocator (block sizes).
    #[cfg(test)]
    pub fn arena_reserved_bytes(&self) -> usize {
        self.arena.reserved_bytes()
    }

    /// The link at `level` of `node`, or of the head for `None`.
    ///
    /// # Safety
    /// `level < MAX_HEIGHT`, and below `node`'s height.
    unsafe fn link<'a>(&'a self, node: Option<NodeRef<'a>>, level: usize) -> &'a AtomicPtr<u8> {
        match node {
            None => &self.head[level],
            // SAFETY: the caller guarantees `level` is below the height.
            Some(node) => unsafe { node.link(level) },
        }
    }

    /// The node after `node` (or the head) at `level`.
    ///
    /// # Safety
    /// As for [`SkipList::link`].
    unsafe fn next_at<'a>(
        &'a self,
        node: Option<NodeRef<'a>>,
        level: usize,
    ) -> Option<NodeRef<'a>> {
        // SAFETY: the caller's guarantee; a link holds null or a published
        // node of this list, complete thanks to the `Acquire`.
        unsafe { NodeRef::from_raw(self.link(node, level).load(Ordering::Acquire)) }
    }

    fn current_height(&self) -> usize {
        self.height.load(Ordering::Relaxed).clamp(1, MAX_HEIGHT)
    }

    /// The first node, `None` when empty.
    pub fn first(&self) -> Option<NodeRef<'_>> {
        // SAFETY: level 0 exists on the head.
        unsafe { self.next_at(None, 0) }
    }

    /// The last node, `None` when empty.
    pub fn last(&self) -> Option<NodeRef<'_>> {
        let mut x = None;
        let mut level = self.current_height() - 1;
        loop {
            // SAFETY: `x` is the head or was reached at `level` or above.
            match unsafe { self.next_at(x, level) } {
                Some(next) => x = Some(next),
                None if level == 0 => return x,
                None => level -= 1,
            }
        }
    }

    /// The first node whose key is at or after `target` (lower bound).
    pub fn seek_ge(&self, target: &SearchKey<'_>) -> Option<NodeRef<'_>> {
        let mut x = None;
        let mut level = self.current_height() - 1;
        // The node that stopped the search one level up: meeting it again
        // on the way down needs no second comparison.
        let mut known_not_less: *mut u8 = ptr::null_mut();
        loop {
            // SAFETY: `x` is the head or was reached at `level` or above.
            let next = unsafe { self.next_at(x, level) };
            match next {
                Some(n) if n.as_ptr() != known_not_less && n.compare(target).is_lt() => {
                    x = Some(n);
                }
                _ if level == 0 => return next,
                _ => {
                    known_not_less = next.map_or(ptr::null_mut(), NodeRef::as_ptr);
                    level -= 1;
                }
            }
        }
    }

    /// The last node whose key is before `target`, or at or before it when
    /// `or_equal`; `None` when there is none.
    pub fn seek_lt(&self, target: &SearchKey<'_>, or_equal: bool) -> Option<NodeRef<'_>> {
        let mut x = None;
        let mut level = self.current_height() - 1;
        let mut known_after: *mut u8 = ptr::null_mut();
        loop {
            // SAFETY: `x` is the head or was reached at `level` or above.
            let next = unsafe { self.next_at(x, level) };
            let advance = next.is_some_and(|n| {
                n.as_ptr() != known_after && {
                    let order = n.compare(target);
                    order.is_lt() || (or_equal && order.is_eq())
                }
            });
            if advance {
                x = next;
            } else if level == 0 {
                return x;
            } else {
                known_after = next.map_or(ptr::null_mut(), NodeRef::as_ptr);
                level -= 1;
            }
        }
    }

    /// A random tower height: 1, then one more with probability 1/4 each.
    fn random_height(&self) -> usize {
        // xorshift64; a plain load and store, as only the writer runs this.
        let mut x = self.rng.load(Ordering::Relaxed);
        let mut height = 1;
        loop {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if height == MAX_HEIGHT || !x.is_multiple_of(BRANCHING) {
                break;
            }
            height += 1;
        }
        self.rng.store(x, Ordering::Relaxed);
        height
    }

    /// Inserts the internal key `user_key ++ trailer` (little-endian, as
    /// [`jkv_format::key::pack_trailer`] makes it) with `value`, and returns
    /// its node. Single writer only (module docs); the key must not be in
    /// the list yet.
    pub fn insert(&self, user_key: &[u8], trailer: u64, value: &[u8]) -> NodeRef<'_> {
        #[cfg(debug_assertions)]
        assert!(
            !self.inserting.swap(true, Ordering::Acquire),
            "two threads inserted into one skiplist at once"
        );
        let height = self.random_height();
        let node = self.alloc_node(height, user_key, trailer, value);
        let target = SearchKey {
            prefix: node.prefix(),
            key: node.key(),
        };

        // The splice: at each level below `height`, the last node before the
        // key (`None`: the head) and the one after it.
        let mut prev: [Option<NodeRef<'_>>; MAX_HEIGHT] = [None; MAX_HEIGHT];
        let mut next: [Option<NodeRef<'_>>; MAX_HEIGHT] = [None; MAX_HEIGHT];
        let list_height = self.current_height();
        let mut x = None;
        for level in (0..list_height).rev() {
            loop {
                // SAFETY: `x` is the head or was reached at `level` or above.
                let after = unsafe { self.next_at(x, level) };
                match after {
                    Some(n) if n.compare(&target).is_lt() => x = Some(n),
                    _ => {
                        if level < height {
                            prev[level] = x;
                            next[level] = after;
                        }
                        break;
                    }
                }
            }
        }
        debug_assert!(
            next[0].is_none_or(|n| !n.compare(&target).is_eq()),
            "internal key inserted twice into a memtable"
        );

        // The node's own links first (it is not reachable yet), then publish
        // it bottom-up: a reader that finds it at any level finds it whole.
        for (level, after) in next.iter().enumerate().take(height) {
            // SAFETY: `level < height`, the node's tower size.
            let link = unsafe { node.link(level) };
            link.store(
                after.map_or(ptr::null_mut(), |n| n.as_ptr()),
                Ordering::Relaxed,
            );
        }
        if height > list_height {
            // Head links at the new levels are null until the stores below,
            // so a reader that sees the new height early only descends.
            self.height.store(height, Ordering::Relaxed);
        }
        for (level, before) in prev.iter().enumerate().take(height) {
            // SAFETY: `before` is the head or a node reached at `level`
            // (so taller than `level`); levels at or above the old height
            // have the head as predecessor.
            let link = unsafe { self.link(*before, level) };
            link.store(node.as_ptr(), Ordering::Release);
        }
        #[cfg(debug_assertions)]
        self.inserting.store(false, Ordering::Release);
        node
    }

    /// Allocates and fills a node of `height` links (all null) in the arena.
    fn alloc_node(
        &self,
        height: usize,
        user_key: &[u8],
        trailer: u64,
        value: &[u8],
    ) -> NodeRef<'_> {
        debug_assert!((1..=MAX_HEIGHT).contains(&height));
        let key_len = user_key.len() + TRAILER_LEN;
        let tower_len = height * LINK_LEN;
        let len = tower_len
            + PREFIX_LEN
            + varint_len(key_len as u64)
            + varint_len(value.len() as u64)
            + key_len
            + value.len();
        let start = self.arena.alloc_aligned(len, NODE_ALIGN);
        let prefix = prefix_bytes_of_user_key(user_key);
        // SAFETY: `start` is `len` fresh, initialised, 8-aligned bytes of the
        // arena that nothing else refers to; each write below stays inside
        // them (the sizes sum to `len`), and none overlaps the caller's
        // slices (they are not in this fresh region).
        unsafe {
            let base = start.as_ptr();
            for level in 0..height {
                base.add(level * LINK_LEN)
                    .cast::<AtomicPtr<u8>>()
                    .write(AtomicPtr::new(ptr::null_mut()));
            }
            let node = base.add(tower_len);
            ptr::copy_nonoverlapping(prefix.as_ptr(), node.add(PREFIX_AT), PREFIX_LEN);
            let at = write_varint(node.add(LENGTHS_AT), key_len as u64);
            let at = write_varint(at, value.len() as u64);
            ptr::copy_nonoverlapping(user_key.as_ptr(), at, user_key.len());
            let at = at.add(user_key.len());
            ptr::copy_nonoverlapping(trailer.to_le_bytes().as_ptr(), at, TRAILER_LEN);
            let at = at.add(TRAILER_LEN);
            ptr::copy_nonoverlapping(value.as_ptr(), at, value.len());
            debug_assert_eq!(at.add(value.len()), base.add(len));
            NodeRef {
                ptr: NonNull::new_unchecked(node),
                list: PhantomData,
            }
        }
    }
}

/// The prefix bytes of a user key (as [`prefix_bytes`] of its internal key).
fn prefix_bytes_of_user_key(user_key: &[u8]) -> [u8; PREFIX_LEN] {
    let mut prefix = [0u8; PREFIX_LEN];
    let n = user_key.len().min(PREFIX_LEN);
    prefix[..n].copy_from_slice(&user_key[..n]);
    prefix
}

impl std::fmt::Debug for SkipList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkipList")
            .field("height", &self.current_height())
            .field("allocated_bytes", &self.allocated_bytes())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jkv_format::key::pack_trailer;
    use jkv_format::{InternalKey, SeqNo, ValueKind};

    fn ik(user_key: &[u8], seq: u64) -> Vec<u8> {
        InternalKey::new(user_key, SeqNo(seq), ValueKind::Value).into_vec()
    }

    fn insert(list: &SkipList, user_key: &[u8], seq: u64, value: &[u8]) {
        let node = list.insert(
            user_key,
            pack_trailer(SeqNo(seq), ValueKind::Value as u8),
            value,
        );
        assert_eq!(node.key(), &ik(user_key, seq)[..]);
        assert_eq!(node.value(), value);
    }

    impl SkipList {
        /// Keys linked at `level`, head to end.
        fn level_keys(&self, level: usize) -> Vec<Vec<u8>> {
            let mut keys = Vec::new();
            // SAFETY: the head has every level; each node followed was
            // reached at `level`.
            let mut x = unsafe { self.next_at(None, level) };
            while let Some(node) = x {
                keys.push(node.key().to_vec());
                // SAFETY: as above.
                x = unsafe { self.next_at(Some(node), level) };
            }
            keys
        }
    }

    fn value_for(i: u64) -> Vec<u8> {
        // Mostly small, some spanning blocks: every 997th value is larger
        // than a quarter block and gets a dedicated one.
        let len = if i.is_multiple_of(997) {
            crate::arena::DEDICATED_BLOCK_MIN_BYTES + 1_000
        } else {
            (i * 31 % 700) as usize
        };
        let mut v = i.to_le_bytes().to_vec();
        v.resize(len.max(8), (i % 251) as u8);
        v
    }

    #[test]
    fn many_heights_and_large_values() {
        const N: u64 = 30_000;
        let list = SkipList::new();
        for i in 0..N {
            // A scattered insertion order.
            let k = (i * 7_919) % N;
            insert(&list, format!("key{k:06}").as_bytes(), k, &value_for(k));
        }
        let height = list.current_height();
        // 30 000 entries at branching 1/4 reach about log4(30 000) ≈ 7.4.
        assert!((6..=MAX_HEIGHT).contains(&height), "height {height}");
        let level0 = list.level_keys(0);
        assert_eq!(level0.len(), N as usize);
        let mut previous_len = level0.len();
        for level in 0..height {
            let keys = list.level_keys(level);
            assert!(
                keys.windows(2)
                    .all(|w| compare_internal_keys(&w[0], &w[1]).is_lt()),
                "level {level} out of order"
            );
            if level > 0 {
                // Each level holds about a quarter of the one below.
                let expected = previous_len / 4;
                assert!(
                    keys.len() <= previous_len
                        && keys.len().abs_diff(expected) <= expected / 2 + 30,
                    "level {level}: {} nodes after {previous_len}",
                    keys.len()
                );
            }
            previous_len = keys.len();
        }
        assert!(!list.level_keys(height - 1).is_empty());
        for level in height..MAX_HEIGHT {
            assert!(list.level_keys(level).is_empty());
        }
        // Every entry reads back whole, through a search and through the
        // level-0 walk.
        let mut node = list.first();
        for k in 0..N {
            let key = ik(format!("key{k:06}").as_bytes(), k);
            let found = list.seek_ge(&SearchKey::new(&key)).expect("present");
            assert_eq!(found.entry(), (&key[..], &value_for(k)[..]));
            let walked = node.expect("level 0 holds every node");
            assert_eq!(walked.key(), &key[..]);
            node = walked.next();
        }
        assert!(node.is_none());
        // The arena holds the nodes: more than keys and values, less than
        // keys, values and 48 bytes a node.
        let payload: usize = (0..N)
            .map(|k| format!("key{k:06}").len() + TRAILER_LEN + value_for(k).len())
            .sum();
        let allocated = list.allocated_bytes();
        assert!(allocated >= payload + N as usize * NODE_OVERHEAD_BYTES_MIN);
        // Abandoned block tails: at most one small value per block.
        assert!(
            allocated <= payload + N as usize * 48 + 64 * 1024,
            "{allocated}"
        );
    }

    #[test]
    fn duplicate_user_keys_with_many_seqs() {
        // Three user keys longer than the prefix and equal in it, so every
        // comparison among them falls back to the full key.
        let base = b"0123456789abcdef-shared-prefix".to_vec();
        let users: Vec<Vec<u8>> = [b"a", b"b", b"c"]
            .iter()
            .map(|s| [base.clone(), s.to_vec()].concat())
            .collect();
        let list = SkipList::new();
        let mut model = Vec::new();
        for seq in 0..3_000u64 {
            let user = &users[(seq * 7 % 3) as usize];
            let value = seq.to_be_bytes();
            insert(&list, user, seq, &value);
            model.push((ik(user, seq), value.to_vec()));
        }
        model.sort_by(|a, b| compare_internal_keys(&a.0, &b.0));
        let mut walked = Vec::new();
        let mut node = list.first();
        while let Some(n) = node {
            walked.push((n.key().to_vec(), n.value().to_vec()));
            node = n.next();
        }
        assert_eq!(walked, model);
        assert_eq!(
            list.last().map(|n| n.key().to_vec()),
            model.last().map(|e| e.0.clone())
        );
        // Snapshot reads: the newest version at or below each snapshot.
        for user in &users {
            for snapshot in (0..3_010u64).step_by(13) {
                let target = InternalKey::seek(user, SeqNo(snapshot)).into_vec();
                let expected = model
                    .iter()
                    .find(|(k, _)| compare_internal_keys(k, &target).is_ge())
                    .map(|e| e.0.clone());
                let found = list
                    .seek_ge(&SearchKey::new(&target))
                    .map(|n| n.key().to_vec());
                assert_eq!(found, expected, "snapshot {snapshot}");
                let before = model
                    .iter()
                    .rev()
                    .find(|(k, _)| compare_internal_keys(k, &target).is_lt())
                    .map(|e| e.0.clone());
                let found = list
                    .seek_lt(&SearchKey::new(&target), false)
                    .map(|n| n.key().to_vec());
                assert_eq!(found, before, "snapshot {snapshot}");
            }
        }
        // seek_lt with or_equal lands on an exact key; without, before it.
        let (middle, _) = &model[model.len() / 2];
        let at = list
            .seek_lt(&SearchKey::new(middle), true)
            .map(|n| n.key().to_vec());
        assert_eq!(at.as_ref(), Some(middle));
        let before = list
            .seek_lt(&SearchKey::new(middle), false)
            .map(|n| n.key().to_vec());
        assert_eq!(before.as_ref(), Some(&model[model.len() / 2 - 1].0));
    }

    #[test]
    fn empty_list() {
        let list = SkipList::new();
        let key = ik(b"k", 1);
        assert!(list.first().is_none());
        assert!(list.last().is_none());
        assert!(list.seek_ge(&SearchKey::new(&key)).is_none());
        assert!(list.seek_lt(&SearchKey::new(&key), true).is_none());
        assert_eq!(list.allocated_bytes(), 0);
    }

    #[test]
    fn varints_round_trip_at_every_width() {
        for v in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = [0u8; 10];
            // SAFETY: 10 bytes hold any u64 varint.
            let end = unsafe { write_varint(buf.as_mut_ptr(), v) };
            let written = end as usize - buf.as_ptr() as usize;
            assert_eq!(written, varint_len(v));
            // SAFETY: `buf` holds the complete varint just written.
            let (read, after) = unsafe { read_varint(buf.as_ptr()) };
            assert_eq!(read, v);
            assert_eq!(after as usize - buf.as_ptr() as usize, written);
        }
    }

    #[test]
    fn heights_follow_branching() {
        let list = SkipList::new();
        let mut counts = [0usize; MAX_HEIGHT + 1];
        for _ in 0..100_000 {
            counts[list.random_height()] += 1;
        }
        // P(height >= h) = 4^-(h-1): about 25 000 reach 2, 6 250 reach 3.
        let at_least = |h: usize| counts[h..].iter().sum::<usize>();
        assert_eq!(at_least(1), 100_000);
        assert!((23_000..27_000).contains(&at_least(2)), "{counts:?}");
        assert!((5_500..7_000).contains(&at_least(3)), "{counts:?}");
        assert!((1_200..1_950).contains(&at_least(4)), "{counts:?}");
        assert_eq!(counts[0], 0);
    }
}
