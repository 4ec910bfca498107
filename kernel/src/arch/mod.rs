//! The CPU: the kernel's unsafe boundary for everything that is not a device.
//!
//! Every `unsafe` block of the kernel outside the driver glue (`drivers`) lives
//! under this module, each with a `// SAFETY:` line; the modules outside are safe Rust
//! and reach the CPU only through the safe functions here. It owns CPU tables (GDT, TSS,
//! IDT), page tables and address spaces, entering ring 3, the local and I/O APICs, the
//! PIT, the serial port, the debug-exit port and the heap allocator.
//!
//! It calls nothing above it: what runs on a trap or a system call is registered at
//! init (`interrupts::init`, `user::init`), frames come from an allocator passed in, and
//! the kernel's entry point is named by `entry_point!` where it is defined. It must not
//! hold policy: what to log, when to exit, what to test is decided by the callers.

pub mod apic;
pub mod cpu;
pub mod entry;
pub mod exit;
pub mod frame;
pub mod gdt;
pub mod heap;
pub mod interrupts;
pub mod ioapic;
pub mod mem;
pub mod paging;
pub mod phys;
pub mod pit;
pub mod rtc;
pub mod serial;
pub mod stacks;
pub mod user;
