//! Kernel stacks other than the boot stack, each with an unmapped guard page below it.

use core::cell::UnsafeCell;

/// Size of the double-fault IST stack, bytes.
pub const FAULT_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(4096))]
struct GuardedStack<const N: usize> {
    guard: UnsafeCell<[u8; 4096]>,
    body: UnsafeCell<[u8; N]>,
}

// SAFETY: used only as raw memory by the CPU (through the TSS); no Rust references.
unsafe impl<const N: usize> Sync for GuardedStack<N> {}

static FAULT_STACK: GuardedStack<FAULT_STACK_SIZE> = GuardedStack {
    guard: UnsafeCell::new([0; 4096]),
    body: UnsafeCell::new([0; FAULT_STACK_SIZE]),
};

/// Top (highest address, exclusive) of the double-fault stack.
pub fn fault_stack_top() -> u64 {
    FAULT_STACK.body.get() as u64 + FAULT_STACK_SIZE as u64
}

/// Guard pages of every kernel stack, which the page tables leave unmapped.
pub fn guard_pages() -> [u64; 2] {
    [
        plinth_boot::boot_stack_guard_page(),
        FAULT_STACK.guard.get() as u64,
    ]
}
