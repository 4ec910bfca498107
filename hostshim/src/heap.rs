//! The agent's heap: a global allocator over [`crate::mem_grow`], for agents built with
//! the `alloc` feature (which `net` turns on) for the runtime.
//!
//! Owns the free lists and the region memory is carved from. It must not make system
//! calls of its own (memory comes from the grow function it is given) nor assume that
//! successive grows are adjacent (the runtime's are today; the ABI does not promise it).
//!
//! Design: power-of-two size classes from 16 bytes, one singly linked free list per
//! class, no coalescing. A block of class `k` is `2^k` bytes aligned to `2^min(k, 12)`,
//! so every block of a class serves every request of that class. Memory is never given
//! back (the runtime has no call for it), and a freed block is only ever reused for its
//! own class: the waste is bounded by the rounding (under 2x) and by the largest
//! working set of each class. That suits agents, whose allocations (smoltcp's socket
//! buffers and sets, an agent's connection table) recur at the same few sizes; a general
//! purpose allocator would be larger than the agents it serves.
//!
//! Agents are single-threaded and the runtime delivers no signals, so the lock is never
//! contended; it exists because `GlobalAlloc` must be `Sync`.
#![allow(
    unsafe_code,
    reason = "an allocator hands out raw memory and threads free lists through freed blocks"
)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use plinth_abi::PAGE_SIZE;

use crate::Error;

/// The smallest class: 16 bytes (room for the free-list link, and `malloc`'s alignment).
const MIN_SHIFT: u32 = 4;
/// Classes up to 2^47 bytes; larger requests fail (the user window is 2^39 bytes).
const MAX_SHIFT: u32 = 47;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Blocks are aligned to their size up to a page; beyond, a page is enough for anything
/// but the rare request that asks for more (see [`Heap::alloc`]).
const PAGE_SHIFT: u32 = PAGE_SIZE.trailing_zeros();
/// The least the heap asks the runtime for at once: few system calls, little waste.
const GROW_MIN: usize = 256 * 1024;

/// Where more memory comes from: [`crate::mem_grow`]'s contract (zeroed, page-aligned,
/// the caller's for good).
pub type Grow = fn(u64) -> Result<&'static mut [u8], Error>;

/// A global allocator over a grow function; `const` so it can be a `static`.
pub struct Heap {
    lock: AtomicBool,
    state: UnsafeCell<State>,
    grow: Grow,
}

// SAFETY: `state` is only touched with `lock` held (see `Heap::locked`).
unsafe impl Sync for Heap {}

struct State {
    /// Head of each class's free list (null: empty); each free block's first word holds
    /// the next block.
    free: [*mut u8; CLASSES],
    /// The unused rest of the last grown region: `left` bytes from `next`.
    next: *mut u8,
    left: usize,
}

impl Heap {
    /// An empty heap that grows with `grow`.
    pub const fn new(grow: Grow) -> Heap {
        Heap {
            lock: AtomicBool::new(false),
            state: UnsafeCell::new(State {
                free: [ptr::null_mut(); CLASSES],
                next: ptr::null_mut(),
                left: 0,
            }),
            grow,
        }
    }

    /// Runs `f` on the state with the lock held.
    fn locked<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: the lock is held: no other reference to the state exists until it is
        // released below, and `f` cannot reach `self.state` (it only gets this one).
        let r = f(unsafe { &mut *self.state.get() });
        self.lock.store(false, Ordering::Release);
        r
    }
}

/// The class serving `layout` (`2^shift` bytes), if any.
fn class(layout: Layout) -> Option<u32> {
    let size = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    let shift = size.checked_next_power_of_two()?.trailing_zeros();
    (shift <= MAX_SHIFT).then_some(shift)
}

/// The alignment every block of class `shift` has.
fn block_align(shift: u32) -> usize {
    1 << shift.min(PAGE_SHIFT)
}

impl State {
    /// Takes a block of class `shift` aligned to `align` from the free list or the region,
    /// growing the region with `grow` if needed. Null if memory is exhausted.
    fn take(&mut self, shift: u32, align: usize, grow: Grow) -> *mut u8 {
        let index = (shift - MIN_SHIFT) as usize;
        let head = self.free[index];
        // Free blocks are aligned to `block_align(shift)` only: a rarer, stricter request
        // is served from the region.
        if !head.is_null() && align <= block_align(shift) {
            // SAFETY: `head` is a free block of this class (at least 16 bytes, aligned to
            // 16), pushed by `give`; its first word is the next link, written there.
            self.free[index] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        let size = 1usize << shift;
        let align = align.max(block_align(shift));
        if let Some(block) = self.carve(size, align) {
            return block;
        }
        // A fresh region: page-aligned, so `align` up to a page costs no padding.
        let want = size
            .checked_add(if align > PAGE_SIZE as usize { align } else { 0 })
            .and_then(|n| n.max(GROW_MIN).checked_next_multiple_of(PAGE_SIZE as usize));
        let Some(region) = want.and_then(|n| grow(n as u64).ok()) else {
            return ptr::null_mut();
        };
        // Even when the new region is adjacent to the old one (the runtime's are), a
        // pointer into one may not reach into the other: the rest of the old one goes to
        // the free lists and carving starts over in the new one.
        self.retire();
        self.next = region.as_mut_ptr();
        self.left = region.len();
        self.carve(size, align).unwrap_or(ptr::null_mut())
    }

    /// Cuts `size` bytes aligned to `align` from the region, if they fit.
    fn carve(&mut self, size: usize, align: usize) -> Option<*mut u8> {
        let addr = self.next.addr();
        let pad = addr.checked_next_multiple_of(align)? - addr;
        let used = pad.checked_add(size)?;
        if self.next.is_null() || used > self.left {
            return None;
        }
        // SAFETY: `pad + size <= left`, so both offsets stay inside the region `next`
        // points into (or one past its end).
        let block = unsafe { self.next.add(pad) };
        self.next = unsafe { block.add(size) };
        self.left -= used;
        Some(block)
    }

    /// Gives what is left of the region to the free lists, in the largest blocks its
    /// alignment allows, so no memory the agent was charged for is lost.
    fn retire(&mut self) {
        while !self.next.is_null() && self.left >= 1 << MIN_SHIFT {
            let mut shift = self.left.ilog2().min(MAX_SHIFT);
            // `next` is 16-aligned (every size and pad is a multiple of 16), so this ends.
            while !self.next.addr().is_multiple_of(block_align(shift)) {
                shift -= 1;
            }
            let block = self.next;
            // SAFETY: `2^shift <= left`: the block lies inside the region.
            self.next = unsafe { block.add(1 << shift) };
            self.left -= 1 << shift;
            self.give(block, shift);
        }
        self.next = ptr::null_mut();
        self.left = 0;
    }

    /// Pushes `block` (class `shift`, no longer used by anyone) on its free list.
    fn give(&mut self, block: *mut u8, shift: u32) {
        let index = (shift - MIN_SHIFT) as usize;
        // SAFETY: the block is at least 16 bytes, 16-aligned, and unused: its first word
        // may hold the link.
        unsafe { block.cast::<*mut u8>().write(self.free[index]) };
        self.free[index] = block;
    }
}

// SAFETY: blocks are disjoint (carved once from regions `grow` hands out for good, and
// only reused after `dealloc`), at least `layout.size()` bytes and aligned to
// `layout.align()` (see `class` and `take`).
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(shift) = class(layout) else {
            return ptr::null_mut();
        };
        self.locked(|s| s.take(shift, layout.align(), self.grow))
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // `layout` is the one `block` was allocated with, so its class exists.
        if let Some(shift) = class(layout) {
            self.locked(|s| s.give(block, shift));
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY (of `from_size_align_unchecked`): the caller guarantees `new_size`, rounded
        // up to `layout.align()`, does not overflow `isize`.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if class(new) == class(layout) {
            // The block is already that big.
            return block;
        }
        // SAFETY: `new` is a valid, non-zero-sized layout (the caller's contract).
        let moved = unsafe { self.alloc(new) };
        if !moved.is_null() {
            // SAFETY: both blocks are at least this long and distinct (`block` is in use).
            unsafe {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes_round_up_to_powers_of_two_from_16() {
        assert_eq!(class(layout(1, 1)), Some(4));
        assert_eq!(class(layout(16, 8)), Some(4));
        assert_eq!(class(layout(17, 1)), Some(5));
        assert_eq!(class(layout(8, 64)), Some(6));
        assert_eq!(class(layout(16 * 1024, 1)), Some(14));
        assert_eq!(class(layout(16 * 1024 + 1, 1)), Some(15));
        assert_eq!(class(layout(1 << 47, 1)), Some(47));
        assert_eq!(class(layout((1 << 47) + 1, 1)), None);
        assert_eq!(class(layout(isize::MAX as usize - 8, 8)), None);
    }

    /// Every block is aligned, disjoint, writable, reused after a free and kept after a
    /// realloc within its class.
    #[test]
    fn blocks_are_aligned_disjoint_and_reused() {
        static HEAP: Heap = Heap::new(crate::mem_grow);
        let mut live: Vec<(*mut u8, Layout)> = Vec::new();
        for (i, (size, align)) in [(1, 1), (24, 8), (100, 16), (5000, 8), (64, 64), (3, 4096)]
            .into_iter()
            .cycle()
            .take(600)
            .enumerate()
        {
            let l = layout(size, align);
            let p = unsafe { HEAP.alloc(l) };
            assert!(!p.is_null());
            assert_eq!(p.addr() % align, 0, "{size}/{align}");
            unsafe { p.write_bytes(i as u8, size) };
            live.push((p, l));
        }
        let mut spans: Vec<(usize, usize)> = live
            .iter()
            .map(|(p, l)| (p.addr(), p.addr() + l.size()))
            .collect();
        spans.sort_unstable();
        assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "blocks overlap");
        for (i, (p, l)) in live.iter().enumerate() {
            let bytes = unsafe { core::slice::from_raw_parts(*p, l.size()) };
            assert!(
                bytes.iter().all(|b| *b == i as u8),
                "block {i} was overwritten"
            );
        }

        // A freed block serves the next request of its class.
        let (p, l) = live.pop().unwrap();
        unsafe { HEAP.dealloc(p, l) };
        assert_eq!(unsafe { HEAP.alloc(l) }, p);

        // Growing within the class keeps the block; beyond, moves it with its contents.
        let l = layout(20, 8);
        let p = unsafe { HEAP.alloc(l) };
        unsafe { p.write_bytes(0x5a, 20) };
        assert_eq!(unsafe { HEAP.realloc(p, l, 32) }, p);
        let q = unsafe { HEAP.realloc(p, layout(32, 8), 33) };
        assert_ne!(q, p);
        let bytes = unsafe { core::slice::from_raw_parts(q, 20) };
        assert!(bytes.iter().all(|b| *b == 0x5a));
    }

    /// Requests larger than one grow, and regions that are not adjacent (the host's are
    /// leaked vectors), are handled: the rest of a region goes to the free lists.
    #[test]
    fn large_blocks_and_scattered_regions() {
        static HEAP: Heap = Heap::new(crate::mem_grow);
        let big = layout(1 << 20, 8);
        let a = unsafe { HEAP.alloc(big) };
        let b = unsafe { HEAP.alloc(big) };
        assert!(!a.is_null() && !b.is_null() && a != b);
        unsafe {
            a.write_bytes(1, 1 << 20);
            b.write_bytes(2, 1 << 20);
        }
        // Small requests after them get a region of their own.
        for _ in 0..1000 {
            assert!(!unsafe { HEAP.alloc(layout(48, 16)) }.is_null());
        }
        assert_eq!(unsafe { *a.add((1 << 20) - 1) }, 1);
    }

    #[test]
    fn exhaustion_is_null_not_a_panic() {
        fn refuse(_: u64) -> Result<&'static mut [u8], Error> {
            Err(Error::QuotaExceeded)
        }
        static HEAP: Heap = Heap::new(refuse);
        assert!(unsafe { HEAP.alloc(layout(16, 8)) }.is_null());
        assert!(unsafe { HEAP.alloc(layout(1 << 47, 8)) }.is_null());
    }
}
