//! The I/O APIC: routes the chipset's PCI interrupt lines (PIRQ A–H, GSIs 16–23 on
//! q35's ICH9), and the lines of virtio-mmio devices (microvm), to one device vector.
//!
//! Which PIRQ a slot's INTx lands on depends on chipset routing registers that qboot does
//! not describe to us (no ACPI _PRT is read), so every PIRQ line goes to the same vector
//! and the device code asks each device whether it interrupted — the shared-INTx model.
//! The lines are level-triggered: the handler masks them and the idle loop unmasks after
//! the devices have been serviced (read their ISR), which also coalesces a burst of
//! completions into one wake-up.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use super::paging;

/// Vector of the PCI device interrupt (every PIRQ line).
pub const DEVICE_VECTOR: u8 = 0x30;

/// Where QEMU (and every PC) puts the first I/O APIC.
const IOAPIC_BASE: u64 = 0xfec0_0000;
const REG_SELECT: u64 = 0x00;
const REG_WINDOW: u64 = 0x10;
const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION: u32 = 0x10;
/// PCI interrupt lines on q35 (PIRQA..PIRQH).
pub const PCI_GSIS: core::ops::Range<u32> = 16..24;

const MASKED: u64 = 1 << 16;
const LEVEL: u64 = 1 << 15;
const ACTIVE_LOW: u64 = 1 << 13;

static BASE: AtomicU64 = AtomicU64::new(0);
/// Device lines routed so far, one bit per GSI; masked and unmasked together.
static LINES: AtomicU32 = AtomicU32::new(0);
/// Redirection entries of this I/O APIC.
static ENTRIES: AtomicU32 = AtomicU32::new(0);

fn write(reg: u32, value: u32) {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: BASE is set only after `init` mapped the I/O APIC page uncached; the select
    // register and the window are 32-bit registers at offsets 0x00 and 0x10 of that page.
    // Callers run with interrupts off, so select+window pairs are not interleaved.
    unsafe {
        core::ptr::write_volatile((base + REG_SELECT) as *mut u32, reg);
        core::ptr::write_volatile((base + REG_WINDOW) as *mut u32, value);
    }
}

fn read(reg: u32) -> u32 {
    let base = BASE.load(Ordering::Relaxed);
    // SAFETY: as in `write`.
    unsafe {
        core::ptr::write_volatile((base + REG_SELECT) as *mut u32, reg);
        core::ptr::read_volatile((base + REG_WINDOW) as *const u32)
    }
}

fn set_entry(gsi: u32, entry: u64) {
    // High dword first so the entry is never live with a half-written destination.
    write(REG_REDIRECTION + 2 * gsi + 1, (entry >> 32) as u32);
    write(REG_REDIRECTION + 2 * gsi, entry as u32);
}

/// Maps the I/O APIC and routes the PCI lines to `vector` on the boot CPU, masked.
/// Returns how many redirection entries the I/O APIC has, or `None` if it could not be
/// mapped or has fewer than 24 (then PCI INTx cannot be routed and devices are polled).
pub fn init(vector: u8, alloc: &mut dyn FnMut() -> Option<u64>) -> Option<u32> {
    paging::map_mmio(IOAPIC_BASE, 0x1000, alloc).ok()?;
    BASE.store(IOAPIC_BASE, Ordering::Relaxed);
    let entries = x86_64::instructions::interrupts::without_interrupts(|| {
        ((read(REG_VERSION) >> 16) & 0xff) + 1
    });
    if entries < PCI_GSIS.end {
        BASE.store(0, Ordering::Relaxed);
        return None;
    }
    ENTRIES.store(entries, Ordering::Relaxed);
    for gsi in PCI_GSIS {
        route_line(gsi, vector, true);
    }
    Some(entries)
}

/// Whether `init` succeeded (lines can be routed).
pub fn usable() -> bool {
    BASE.load(Ordering::Relaxed) != 0
}

/// Routes `gsi` level-triggered to `vector` on the boot CPU, masked until the next
/// [`mask_device_lines`]`(false)`. PCI lines are active-low; a virtio-mmio line is
/// active-high. False if the I/O APIC is unusable or has no such input.
pub fn route_line(gsi: u32, vector: u8, active_low: bool) -> bool {
    if BASE.load(Ordering::Relaxed) == 0 || gsi >= ENTRIES.load(Ordering::Relaxed).min(32) {
        return false;
    }
    // Destination APIC ID 0 (bits 56..63), fixed delivery, physical mode.
    let polarity = if active_low { ACTIVE_LOW } else { 0 };
    let entry = u64::from(vector) | LEVEL | polarity | MASKED;
    x86_64::instructions::interrupts::without_interrupts(|| set_entry(gsi, entry));
    LINES.fetch_or(1 << gsi, Ordering::Relaxed);
    true
}

/// Masks (`true`) or unmasks every routed device line. No-op before a successful `init`.
pub fn mask_device_lines(masked: bool) {
    if BASE.load(Ordering::Relaxed) == 0 {
        return;
    }
    let lines = LINES.load(Ordering::Relaxed);
    x86_64::instructions::interrupts::without_interrupts(|| {
        for gsi in (0..32).filter(|g| lines & (1 << g) != 0) {
            let low = read(REG_REDIRECTION + 2 * gsi);
            let low = if masked {
                low | MASKED as u32
            } else {
                low & !(MASKED as u32)
            };
            write(REG_REDIRECTION + 2 * gsi, low);
        }
    });
}
