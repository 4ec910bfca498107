//! The kernel heap: `linked_list_allocator` behind a spin lock, as the global allocator.
//!
//! A failed allocation returns null (so `try_reserve` callers can recover) and records
//! its size; when the failure ends in `handle_alloc_error`, the panic handler finds that
//! record and reports "out of memory" instead of a generic panic.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};
use linked_list_allocator::Heap;
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;

struct KernelHeap {
    heap: Mutex<Heap>,
    /// Size of the last failed request, 0 if the last request succeeded.
    last_failure: AtomicUsize,
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap {
    heap: Mutex::new(Heap::empty()),
    last_failure: AtomicUsize::new(0),
};

// SAFETY: allocation and deallocation go through `linked_list_allocator::Heap`, which hands
// out disjoint, correctly aligned blocks; the lock serialises access and interrupts are off
// while it is held so a handler cannot deadlock on it.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match without_interrupts(|| self.heap.lock().allocate_first_fit(layout)) {
            Ok(p) => {
                self.last_failure.store(0, Ordering::Relaxed);
                p.as_ptr()
            }
            Err(()) => {
                self.last_failure
                    .store(layout.size().max(1), Ordering::Relaxed);
                ptr::null_mut()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` was returned by `alloc` with this layout (GlobalAlloc contract).
            without_interrupts(|| unsafe { self.heap.lock().deallocate(p, layout) });
        }
    }
}

/// Hands the heap `[start, start + size)`, which the caller has taken from the frame
/// allocator for good. Called once.
pub fn init(start: u64, size: usize) {
    // SAFETY: the range is identity-mapped RAM, owned by the heap from now on and never
    // returned to the frame allocator; `init` runs once before any allocation.
    without_interrupts(|| unsafe { HEAP.heap.lock().init(start as *mut u8, size) });
}

/// Bytes in use and total heap size.
pub fn usage() -> (usize, usize) {
    without_interrupts(|| {
        let h = HEAP.heap.lock();
        (h.used(), h.size())
    })
}

/// Size of the allocation that just failed, if the most recent request failed.
pub fn last_failure() -> Option<usize> {
    match HEAP.last_failure.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n),
    }
}

/// Bytes in use without waiting for the lock (fault and panic paths).
pub fn try_usage() -> Option<(usize, usize)> {
    HEAP.heap.try_lock().map(|h| (h.used(), h.size()))
}
