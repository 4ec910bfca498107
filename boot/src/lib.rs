//! From QEMU's PVH entry to the kernel's first Rust function.
//!
//! Owns the PVH ELF note, the 32-bit entry stub, the early identity map (first 4 GiB in
//! 2 MiB pages), the switch to long mode and the boot stack; and it reads the PVH
//! `hvm_start_info` (memory map, command line) into a [`BootInfo`]. It must not build the
//! kernel's real page tables, IDT or allocators: the kernel does that with what this
//! crate hands it.
//!
//! Boot flow: QEMU `-kernel` finds the `XEN_ELFNOTE_PHYS32_ENTRY` note and jumps to
//! `pvh_start32` in 32-bit protected mode with paging off and `%ebx` = start_info. The stub
//! records the TSC, builds the early tables, enables PAE, long mode, NX and paging, loads a
//! 64-bit GDT and calls `plinth_kernel_main(start_info, entry_tsc)` on the boot stack.
#![no_std]
#![deny(unsafe_code)]

#[cfg(target_os = "none")]
#[allow(
    unsafe_code,
    reason = "the PVH entry stub and boot stack are the crate's unsafe boundary"
)]
mod entry;
pub mod pvh;

#[cfg(target_os = "none")]
pub use entry::{BOOT_STACK_SIZE, GuardedStack, boot_stack_guard_page};
pub use pvh::{BootError, BootInfo, PhysMemory};
