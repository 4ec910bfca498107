//! MSI-X glue: the CPU vectors devices signal on, their table entries, and the virtio
//! registers that bind a queue to an entry.
//!
//! MSI-X is what makes device interrupts cheap: each source writes its own vector straight
//! to the local APIC, edge-triggered, so the handler only notes it and sends EOI — no line
//! to mask, no interrupt status register to read (a VM exit each under virtualization).
//! A queue bound to no entry raises nothing at all, which is how transmit completions are
//! kept from interrupting. Which queue gets which vector is decided by `devices`.

use core::sync::atomic::{AtomicU8, Ordering};

use plinth_pci::MSIX_ENTRY_BYTES;

use super::paging;

/// CPU vectors handed to MSI-X sources (the IDT has stubs for exactly these).
pub const VECTORS: core::ops::RangeInclusive<u8> = 0x31..=0x3e;
/// The virtio "no vector" value: the source raises no interrupt.
pub const NO_VECTOR: u16 = 0xffff;

static NEXT_VECTOR: AtomicU8 = AtomicU8::new(*VECTORS.start());

/// Offsets in the virtio common configuration structure (virtio 1.2 §4.1.4.3).
const MSIX_CONFIG: u64 = 0x10;
const QUEUE_SELECT: u64 = 0x16;
const QUEUE_MSIX_VECTOR: u64 = 0x1a;

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

/// Binds virtio sources to MSI-X entries through the common configuration structure at
/// `common` (mapped by the transport already): the configuration-change interrupt to
/// `config`, and each `(queue, entry)` pair. Reads each value back, as the device may
/// refuse (it then reads [`NO_VECTOR`]); false if any binding did not take.
///
/// Must not run while the driver uses the device: the queue selector is shared with it.
pub fn bind_virtio(common: u64, config: u16, queues: &[(u16, u16)]) -> bool {
    let reg16 = |offset: u64| (common + offset) as *mut u16;
    let mut ok = true;
    // SAFETY: `common` is the virtio common configuration structure, inside a BAR placed
    // by plinth-pci and mapped uncached when the transport was built; the offsets are the
    // 16-bit msix_config, queue_select and queue_msix_vector registers of that structure.
    // Callers hold the device exclusively (init time, before it is shared).
    unsafe {
        core::ptr::write_volatile(reg16(MSIX_CONFIG), config);
        ok &= core::ptr::read_volatile(reg16(MSIX_CONFIG)) == config;
        for &(queue, entry) in queues {
            core::ptr::write_volatile(reg16(QUEUE_SELECT), queue);
            core::ptr::write_volatile(reg16(QUEUE_MSIX_VECTOR), entry);
            ok &= core::ptr::read_volatile(reg16(QUEUE_MSIX_VECTOR)) == entry;
        }
    }
    ok
}
