//! Kernel stacks other than the boot stack, each with an unmapped guard page below it.

use plinth_boot::GuardedStack;

/// Size of the double-fault IST stack, bytes.
pub const FAULT_STACK_SIZE: usize = 16 * 1024;

static FAULT_STACK: GuardedStack<FAULT_STACK_SIZE> = GuardedStack::new();

/// Top (highest address, exclusive) of the double-fault stack.
pub fn fault_stack_top() -> u64 {
    FAULT_STACK.top()
}

/// Guard pages of every kernel stack, which the page tables leave unmapped.
pub fn guard_pages() -> [u64; 2] {
    [
        plinth_boot::boot_stack_guard_page(),
        FAULT_STACK.guard_page(),
    ]
}
