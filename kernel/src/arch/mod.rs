//! x86_64 and device glue: the kernel's unsafe boundary.
//!
//! Every `unsafe` block of the kernel lives under this module, each with a `// SAFETY:`
//! line; the modules outside `arch` are safe Rust and reach the hardware only through
//! the safe functions here. It owns CPU tables (GDT, TSS, IDT), page tables, the local
//! APIC, the PIT, the serial port and the debug-exit port. It must not hold policy: what
//! to log, when to exit, what to test is decided by the callers.

pub mod apic;
pub mod cpu;
pub mod doorbell;
pub mod entry;
pub mod exit;
pub mod gdt;
pub mod heap;
pub mod interrupts;
pub mod ioapic;
pub mod msix;
pub mod paging;
pub mod pci;
pub mod phys;
pub mod pit;
pub mod serial;
pub mod stacks;
pub mod user;
pub mod virtio_blk;
pub mod virtio_hal;
pub mod virtio_isr;
pub mod virtio_mmio;
pub mod virtio_net;
