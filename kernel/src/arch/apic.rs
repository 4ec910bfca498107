//! The local APIC (xAPIC, memory-mapped): the periodic timer tick and end-of-interrupt.
//!
//! The legacy 8259 PICs are masked; plinth takes no legacy IRQs. qboot leaves LINT0 masked,
//! which suits us.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

/// Vector of the timer tick.
pub const TIMER_VECTOR: u8 = 0x20;
/// Vector the APIC uses for spurious interrupts; needs no EOI.
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const REG_TPR: u64 = 0x80;
const REG_EOI: u64 = 0xb0;
const REG_SVR: u64 = 0xf0;
const REG_LVT_TIMER: u64 = 0x320;
const REG_LVT_LINT0: u64 = 0x350;
const REG_LVT_LINT1: u64 = 0x360;
const REG_LVT_ERROR: u64 = 0x370;
const REG_TIMER_INIT: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3e0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const DIVIDE_BY_16: u32 = 0b0011;

static BASE: AtomicU64 = AtomicU64::new(0);

/// Physical address of this CPU's local APIC registers.
pub fn base() -> u64 {
    // SAFETY: IA32_APIC_BASE exists on every x86_64 CPU; reading it has no side effect.
    let raw = unsafe { Msr::new(IA32_APIC_BASE).read() };
    raw & 0x000f_ffff_ffff_f000
}

fn read(reg: u64) -> u32 {
    let addr = BASE.load(Ordering::Relaxed) + reg;
    // SAFETY: `addr` is an APIC register inside the 4 KiB APIC page, which `paging` maps
    // uncached before `init` stores BASE; registers are 32-bit aligned.
    unsafe { core::ptr::read_volatile(addr as *const u32) }
}

fn write(reg: u64, value: u32) {
    let addr = BASE.load(Ordering::Relaxed) + reg;
    // SAFETY: as in `read`.
    unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
}

/// Masks the legacy PICs and software-enables the local APIC with its timer stopped.
pub fn init() {
    let mut pic1: Port<u8> = Port::new(0x21);
    let mut pic2: Port<u8> = Port::new(0xa1);
    // SAFETY: 0x21/0xa1 are the 8259 data ports; writing 0xff masks every legacy IRQ.
    unsafe {
        pic1.write(0xff);
        pic2.write(0xff);
    }
    BASE.store(base(), Ordering::Relaxed);
    write(REG_TPR, 0);
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_LVT_LINT1, LVT_MASKED);
    write(REG_LVT_ERROR, LVT_MASKED);
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
}

/// Starts the timer counting down from `u32::MAX` (masked) for calibration.
pub fn start_calibration_count() {
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
    write(REG_TIMER_INIT, u32::MAX);
}

/// Timer counts elapsed since `start_calibration_count`.
pub fn calibration_elapsed() -> u32 {
    u32::MAX - read(REG_TIMER_CURRENT)
}

/// Fires `TIMER_VECTOR` every `count` timer counts (at the calibrated divide-by-16 rate).
pub fn start_periodic(count: u32) {
    write(REG_TIMER_DIVIDE, DIVIDE_BY_16);
    write(REG_LVT_TIMER, LVT_PERIODIC | u32::from(TIMER_VECTOR));
    write(REG_TIMER_INIT, count.max(1));
}

/// Signals end of interrupt for the interrupt being handled.
pub fn eoi() {
    write(REG_EOI, 0);
}
