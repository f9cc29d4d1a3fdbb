//! The arena: memtable keys and values are copied into large blocks by bump
//! allocation and stay where they were put until the arena is dropped.
//!
//! What it owns: the blocks and their bookkeeping. What it leaves to others:
//! what the bytes mean (the memtable) and when the arena is dropped (with its
//! memtable, once no reader holds it).
//!
//! Threads: allocation takes `&self`; a mutex guards the block list and the
//! bump cursor, so concurrent allocations are safe, though the engine only
//! ever has one inserting thread per memtable and the mutex is uncontended.
//! Slices handed out earlier are read by any number of threads while new
//! ones are allocated: an allocation never touches bytes handed out before,
//! and blocks never move (each is a separate heap allocation referred to by
//! a raw pointer, so growing the block list moves only the pointers).

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Size of a regular arena block: 2 MiB, one transparent huge page on
/// x86-64 and aarch64 Linux.
pub const BLOCK_SIZE_BYTES: usize = 2 << 20;

/// Requests larger than this (a quarter block) get a block of their own, so a
/// large value never wastes the tail of the current block.
pub const DEDICATED_BLOCK_MIN_BYTES: usize = BLOCK_SIZE_BYTES / 4;

/// Alignment of every block's start: enough for the skiplist's atomic
/// pointers, so an aligned request at a block's start needs no padding.
pub const BLOCK_ALIGN: usize = 16;

/// One block, freed when the arena drops.
struct Block {
    ptr: NonNull<u8>,
    /// `Some` for a block from the global allocator, `None` for a regular
    /// block mapped by [`Block::regular`] (`BLOCK_SIZE_BYTES`, unmapped on
    /// drop).
    heap_layout: Option<Layout>,
}

impl Block {
    /// A regular block: [`BLOCK_SIZE_BYTES`], aligned to its size and, on
    /// Linux, marked for transparent huge pages. The skiplist's searches
    /// jump between nodes all over the arena; one TLB entry per 2 MiB
    /// instead of per 4 KiB makes most of those jumps miss only the cache.
    ///
    /// On Unix the block is its own anonymous mapping (fresh pages are
    /// zero, so it needs no memset, and dropping a memtable hands its
    /// memory straight back to the kernel instead of to the allocator's
    /// free lists); elsewhere it comes from the global allocator, zeroed.
    fn regular() -> Block {
        let layout = match Layout::from_size_align(BLOCK_SIZE_BYTES, BLOCK_SIZE_BYTES) {
            Ok(layout) => layout,
            Err(_) => unreachable!("a power-of-two block size is a valid alignment"),
        };
        #[cfg(all(unix, not(miri)))]
        {
            // Map twice the size and unmap the unaligned ends: mmap only
            // promises page alignment.
            let len = 2 * BLOCK_SIZE_BYTES;
            // SAFETY: an anonymous private mapping of `len` bytes at an
            // address the kernel picks; no existing memory is affected.
            let raw = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if raw == libc::MAP_FAILED {
                std::alloc::handle_alloc_error(layout);
            }
            let start = raw.cast::<u8>();
            let lead = (start as usize).wrapping_neg() & (BLOCK_SIZE_BYTES - 1);
            let trail = len - lead - BLOCK_SIZE_BYTES;
            // SAFETY: `lead < BLOCK_SIZE_BYTES`, so the aligned block lies
            // inside the mapping.
            let aligned = unsafe { start.add(lead) };
            // SAFETY: both ranges are the ends of the mapping just made, and
            // nothing refers to them; unmapping part of a mapping is allowed
            // (page-aligned: `lead` and `trail` are multiples of the page
            // size because the mapping and `aligned` are page-aligned).
            unsafe {
                if lead > 0 {
                    libc::munmap(start.cast(), lead);
                }
                if trail > 0 {
                    libc::munmap(aligned.add(BLOCK_SIZE_BYTES).cast(), trail);
                }
            }
            #[cfg(target_os = "linux")]
            // SAFETY: the range is exactly the block just mapped; the advice
            // only changes how the kernel backs it (a failure leaves 4 KiB
            // pages, which is fine, so the result is ignored).
            unsafe {
                libc::madvise(aligned.cast(), BLOCK_SIZE_BYTES, libc::MADV_HUGEPAGE);
            }
            let Some(ptr) = NonNull::new(aligned) else {
                std::alloc::handle_alloc_error(layout)
            };
            Block {
                ptr,
                heap_layout: None,
            }
        }
        #[cfg(not(all(unix, not(miri))))]
        {
            Block::from_heap(layout)
        }
    }

    /// A block of its own for one large request.
    fn new(len: usize) -> Block {
        debug_assert!(len > 0);
        let layout = match Layout::from_size_align(len, BLOCK_ALIGN) {
            Ok(layout) => layout,
            // Only a request within `BLOCK_ALIGN` of `isize::MAX` gets here;
            // no allocator could serve it either.
            Err(_) => panic!("arena block of {len} bytes exceeds the address space"),
        };
        Block::from_heap(layout)
    }

    /// A zeroed block of `layout` (non-zero size) from the global allocator.
    fn from_heap(layout: Layout) -> Block {
        // Zeroed so the block is initialised memory; large zeroed allocations
        // come from fresh pages, so this costs no memset.
        // SAFETY: `layout` has a non-zero size (both callers' sizes are).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        Block {
            ptr,
            heap_layout: Some(layout),
        }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        match self.heap_layout {
            // SAFETY: `ptr` came from `alloc_zeroed(layout)` in
            // `Block::from_heap`, and this is the only place that frees it.
            Some(layout) => unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) },
            None => {
                #[cfg(all(unix, not(miri)))]
                // SAFETY: a block without a heap layout is the
                // `BLOCK_SIZE_BYTES` mapping made by `Block::regular`, and
                // this is the only place that unmaps it.
                unsafe {
                    libc::munmap(self.ptr.as_ptr().cast(), BLOCK_SIZE_BYTES);
                }
            }
        }
    }
}

/// Guarded by `Arena::inner`.
struct Inner {
    /// Every block, in allocation order; never shrinks before drop.
    blocks: Vec<Block>,
    /// Next free byte of the current regular block.
    cursor: *mut u8,
    /// Free bytes after `cursor` in the current regular block.
    remaining: usize,
}

/// Bump allocator of byte slices that live as long as the arena.
pub struct Arena {
    /// Lock order: a leaf; nothing else is locked while it is held.
    inner: Mutex<Inner>,
    /// Bytes handed out plus the unused tails of abandoned blocks.
    allocated_bytes: AtomicUsize,
    /// Bytes taken from the system allocator (sum of block sizes).
    reserved_bytes: AtomicUsize,
}

// SAFETY: the raw pointers in `Inner` refer to blocks the arena owns; they are
// only dereferenced to fill a fresh, unshared region while the mutex is held
// (or through the exclusive `&mut [u8]` handed to the fill closure), and
// handed-out slices are immutable. Nothing is tied to the creating thread.
unsafe impl Send for Arena {}
// SAFETY: see `Send`; all mutation of shared state goes through the mutex or
// atomics.
unsafe impl Sync for Arena {}

impl Default for Arena {
    fn default() -> Self {
        Arena::new()
    }
}

impl Arena {
    /// An empty arena; the first block is allocated on first use.
    pub fn new() -> Arena {
        Arena {
            inner: Mutex::new(Inner {
                blocks: Vec::new(),
                cursor: std::ptr::null_mut(),
                remaining: 0,
            }),
            allocated_bytes: AtomicUsize::new(0),
            reserved_bytes: AtomicUsize::new(0),
        }
    }

    /// Copies `data` into the arena. The returned slice stays valid and
    /// unchanged for as long as the arena lives.
    pub fn copy(&self, data: &[u8]) -> &[u8] {
        self.alloc_with(data.len(), |buf| buf.copy_from_slice(data))
    }

    /// Allocates `len` bytes, lets `fill` write them (it gets the only
    /// reference to the region), then returns them read-only. The returned
    /// slice stays valid and unchanged for as long as the arena lives.
    pub fn alloc_with(&self, len: usize, fill: impl FnOnce(&mut [u8])) -> &[u8] {
        if len == 0 {
            fill(&mut []);
            return &[];
        }
        let ptr = self.alloc_raw(len, 1);
        // SAFETY: `alloc_raw` returned `len` initialised bytes inside a live
        // block that no other slice covers (the bump cursor has moved past
        // them), so this is the only reference to them until we return the
        // shared one below. The block lives until `self` drops, which the
        // borrow of `self` in the return type prevents.
        let region = unsafe { std::slice::from_raw_parts_mut(ptr.as_ptr(), len) };
        fill(region);
        region
    }

    /// Reserves `len > 0` bytes starting at an address that is a multiple
    /// of `align` (a power of two, at most [`BLOCK_ALIGN`]) and returns their
    /// start. The bytes are initialised (zero or earlier garbage never
    /// handed out: blocks start zeroed) and no other allocation overlaps
    /// them; they stay valid, at the same address, until the arena drops.
    /// Padding skipped to align the start counts as allocated.
    ///
    /// This is the raw form for callers that keep atomics in the region (the
    /// skiplist's node towers) and so must not hold a `&[u8]` over it.
    pub fn alloc_aligned(&self, len: usize, align: usize) -> NonNull<u8> {
        assert!(
            align.is_power_of_two() && align <= BLOCK_ALIGN,
            "arena alignment {align} is not a power of two up to {BLOCK_ALIGN}"
        );
        assert!(len > 0, "arena allocations are not empty");
        self.alloc_raw(len, align)
    }

    /// Reserves `len > 0` bytes aligned to `align` (a power of two, at most
    /// `BLOCK_ALIGN`) and returns their start.
    fn alloc_raw(&self, len: usize, align: usize) -> NonNull<u8> {
        let mut inner = self.inner.lock();
        if len > DEDICATED_BLOCK_MIN_BYTES {
            let block = Block::new(len);
            let ptr = block.ptr;
            inner.blocks.push(block);
            self.reserved_bytes.fetch_add(len, Ordering::Relaxed);
            self.allocated_bytes.fetch_add(len, Ordering::Relaxed);
            return ptr;
        }
        // A null cursor (no block yet) has `remaining == 0`, so its padding
        // never matters: the request opens a block.
        let pad = (inner.cursor as usize).wrapping_neg() & (align - 1);
        if len + pad > inner.remaining {
            // The old tail is lost to allocation; count it so memory
            // accounting does not undercount a fragmented arena.
            let wasted = inner.remaining;
            let block = Block::regular();
            inner.cursor = block.ptr.as_ptr();
            inner.remaining = BLOCK_SIZE_BYTES;
            inner.blocks.push(block);
            self.reserved_bytes
                .fetch_add(BLOCK_SIZE_BYTES, Ordering::Relaxed);
            self.allocated_bytes.fetch_add(wasted, Ordering::Relaxed);
        } else if pad > 0 {
            // SAFETY: `pad < len + pad <= remaining`, so the cursor stays
            // inside the current block.
            inner.cursor = unsafe { inner.cursor.add(pad) };
            inner.remaining -= pad;
            self.allocated_bytes.fetch_add(pad, Ordering::Relaxed);
        }
        let ptr = inner.cursor;
        // SAFETY: `len <= remaining`, so the new cursor is at most one past
        // the end of the current block.
        inner.cursor = unsafe { ptr.add(len) };
        inner.remaining -= len;
        self.allocated_bytes.fetch_add(len, Ordering::Relaxed);
        NonNull::new(ptr).expect("cursor points into a live block once remaining > 0")
    }

    /// Bytes used so far: every allocation plus the unused tails of blocks
    /// that were abandoned for a new one. This is what the memtable reports
    /// against `write_buffer_size`; it grows with every insert rather than in
    /// block-size steps.
    pub fn allocated_bytes(&self) -> usize {
        self.allocated_bytes.load(Ordering::Relaxed)
    }

    /// Bytes taken from the system allocator: the sum of all block sizes
    /// (at most one block, [`BLOCK_SIZE_BYTES`], more than
    /// [`Arena::allocated_bytes`]).
    pub fn reserved_bytes(&self) -> usize {
        self.reserved_bytes.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("allocated_bytes", &self.allocated_bytes())
            .field("reserved_bytes", &self.reserved_bytes())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_survive_later_allocations() {
        let arena = Arena::new();
        let mut kept = Vec::new();
        for i in 0..10_000u32 {
            let data = i.to_le_bytes().repeat((i % 50) as usize + 1);
            let slice = arena.copy(&data);
            kept.push((slice, data));
        }
        for (slice, data) in &kept {
            assert_eq!(*slice, &data[..]);
        }
        assert!(arena.reserved_bytes() >= arena.allocated_bytes());
    }

    #[test]
    fn empty_allocation_takes_nothing() {
        let arena = Arena::new();
        assert_eq!(arena.copy(b""), b"");
        assert_eq!(arena.allocated_bytes(), 0);
        assert_eq!(arena.reserved_bytes(), 0);
    }

    #[test]
    fn large_request_gets_own_block_and_keeps_current() {
        let arena = Arena::new();
        let small = arena.copy(b"abc");
        let reserved = arena.reserved_bytes();
        let big = vec![7u8; DEDICATED_BLOCK_MIN_BYTES + 1];
        let big_copy = arena.copy(&big);
        assert_eq!(big_copy, &big[..]);
        assert_eq!(arena.reserved_bytes(), reserved + big.len());
        // The regular block keeps being used after the dedicated one.
        let next = arena.copy(b"def");
        assert_eq!(arena.reserved_bytes(), reserved + big.len());
        assert_eq!(small, b"abc");
        assert_eq!(next, b"def");
        assert_eq!(arena.allocated_bytes(), 6 + big.len());
    }

    #[test]
    fn abandoned_tail_is_counted() {
        let arena = Arena::new();
        let chunk = DEDICATED_BLOCK_MIN_BYTES; // fits a regular block
        for _ in 0..4 {
            arena.alloc_with(chunk, |b| b.fill(1));
        }
        assert_eq!(arena.reserved_bytes(), BLOCK_SIZE_BYTES);
        arena.copy(b"x");
        assert_eq!(arena.reserved_bytes(), 2 * BLOCK_SIZE_BYTES);
        assert_eq!(arena.allocated_bytes(), BLOCK_SIZE_BYTES + 1);
        arena.alloc_with(chunk, |b| b.fill(2));
        arena.alloc_with(chunk, |b| b.fill(2));
        arena.alloc_with(chunk, |b| b.fill(2));
        // 1 + 3 * chunk leaves chunk - 1 free: the next chunk opens a block.
        arena.alloc_with(chunk, |b| b.fill(2));
        assert_eq!(arena.reserved_bytes(), 3 * BLOCK_SIZE_BYTES);
        assert_eq!(arena.allocated_bytes(), 2 * BLOCK_SIZE_BYTES + chunk);
    }

    #[test]
    fn aligned_allocations_are_aligned_and_padding_counted() {
        let arena = Arena::new();
        arena.copy(b"abc");
        let p = arena.alloc_aligned(24, 8);
        assert_eq!(p.as_ptr() as usize % 8, 0);
        // 3 bytes, 5 of padding, 24 bytes.
        assert_eq!(arena.allocated_bytes(), 32);
        let q = arena.alloc_aligned(1, 16);
        assert_eq!(q.as_ptr() as usize % 16, 0);
        assert!(arena.allocated_bytes() >= 33 && arena.allocated_bytes() <= 33 + 15);
        // A block's start is aligned, so a request that opens a block takes
        // no padding; a dedicated block is aligned too.
        let big = arena.alloc_aligned(DEDICATED_BLOCK_MIN_BYTES + 1, 16);
        assert_eq!(big.as_ptr() as usize % BLOCK_ALIGN, 0);
        // Aligned and unaligned requests never overlap.
        let mut regions = Vec::new();
        for i in 0..20_000usize {
            let len = i % 37 + 1;
            let start = if i % 2 == 0 {
                arena.alloc_aligned(len, 8).as_ptr() as usize
            } else {
                arena.copy(&vec![1u8; len]).as_ptr() as usize
            };
            regions.push((start, start + len));
        }
        regions.sort_unstable();
        for pair in regions.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "overlapping arena regions {pair:?}");
        }
    }

    #[test]
    fn regular_blocks_are_size_aligned_and_zeroed() {
        for _ in 0..3 {
            // New arenas, so dropped blocks' memory is handed out again.
            let arena = Arena::new();
            let first = arena.alloc_aligned(64, 8);
            assert_eq!(first.as_ptr() as usize % BLOCK_SIZE_BYTES, 0);
            let mut seen_nonzero = false;
            let mut blocks = 0;
            while arena.reserved_bytes() < 3 * BLOCK_SIZE_BYTES {
                arena.alloc_with(DEDICATED_BLOCK_MIN_BYTES, |region| {
                    seen_nonzero |= region.iter().any(|&b| b != 0);
                    region.fill(0xA5);
                });
                blocks += 1;
            }
            assert!(!seen_nonzero, "a fresh arena region was not zero");
            assert!(blocks >= 8);
        }
    }
}
