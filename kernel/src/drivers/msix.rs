//! MSI-X glue: the CPU vectors devices signal on and their table entries. (A virtio queue
//! is bound to an entry by `virtio::doorbell` while the queue is set up.)
//!
//! MSI-X is what makes device interrupts cheap: each source writes its own vector straight
//! to the local APIC, edge-triggered, so the handler only notes it and sends EOI — no line
//! to mask, no interrupt status register to read (a VM exit each under virtualization).
//! A queue bound to no entry raises nothing at all, which is how transmit completions are
//! kept from interrupting. Which queue gets which vector is decided by `drivers`.

use core::sync::atomic::{AtomicU8, Ordering};

use plinth_pci::MSIX_ENTRY_BYTES;

use crate::arch::paging;

/// CPU vectors handed to MSI-X sources (the IDT has stubs for exactly these).
pub const VECTORS: core::ops::RangeInclusive<u8> = 0x31..=0x3e;
/// The virtio "no vector" value: the source raises no interrupt.
pub const NO_VECTOR: u16 = 0xffff;

static NEXT_VECTOR: AtomicU8 = AtomicU8::new(*VECTORS.start());

/// A CPU vector for a new MSI-X source, or `None` when all are taken.
pub fn alloc_vector() -> Option<u8> {
    NEXT_VECTOR
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            (v <= *VECTORS.end()).then_some(v + 1)
        })
        .ok()
}

/// Programs MSI-X table entry `entry` of the table at `table` (which holds `entries`) to
/// deliver `vector` to the boot CPU, unmasked. False if the table cannot be mapped or
/// the entry is out of range.
pub fn program_entry(table: u64, entries: u16, entry: u16, vector: u8) -> bool {
    if entry >= entries
        || paging::map_mmio(
            table,
            u64::from(entries) * MSIX_ENTRY_BYTES,
            &mut crate::memory::alloc_frame_addr,
        )
        .is_err()
    {
        return false;
    }
    let at = table + u64::from(entry) * MSIX_ENTRY_BYTES;
    // Fixed delivery, physical destination: the boot CPU (APIC ID 0, the only one running).
    let address: u32 = 0xfee0_0000;
    // SAFETY: `at` is entry `entry` (< entries) of the table, which lies inside a BAR
    // plinth-pci placed and that was just mapped uncached; entries are four 32-bit
    // registers (address low/high, data, vector control) written with 32-bit accesses,
    // as the PCI specification requires. The entry is masked while it changes.
    unsafe {
        let reg = at as *mut u32;
        core::ptr::write_volatile(reg.add(3), 1);
        core::ptr::write_volatile(reg, address);
        core::ptr::write_volatile(reg.add(1), 0);
        core::ptr::write_volatile(reg.add(2), u32::from(vector));
        core::ptr::write_volatile(reg.add(3), 0);
    }
    true
}
