//! The 8254 PIT, used only as a known-rate reference to calibrate the TSC and the local
//! APIC timer (the TCG CPU offers neither CPUID leaf 0x15 nor 0x16).
//!
//! Channel 0 is read back with latch commands rather than gating channel 2 through port
//! 0x61, because `microvm` has no port 0x61 (no PC speaker) but does have the PIT.

use x86_64::instructions::port::Port;

/// PIT input clock, Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// A boundary whose two bracketing PIT reads are further apart than this (about 3 µs)
/// was interrupted (the host descheduled the vCPU) and is taken again.
const MAX_BRACKET_TICKS: u16 = 4;

/// Latches and reads channel 0's current count.
pub fn read_count() -> u16 {
    let mut cmd: Port<u8> = Port::new(0x43);
    let mut ch0: Port<u8> = Port::new(0x40);
    // SAFETY: ports 0x40/0x43 are PIT channel 0 and the mode register on every machine
    // profile; the latch command freezes the count so the two reads are consistent.
    unsafe {
        cmd.write(0b0000_0000); // latch channel 0
        let lo = ch0.read();
        let hi = ch0.read();
        u16::from_le_bytes([lo, hi])
    }
}

/// Programs channel 0 to count down from 65536 over and over (mode 2), so that reading
/// it at least every 54 ms measures elapsed time. IRQ0 goes nowhere (PICs masked).
pub fn start_free_running() {
    // SAFETY: as in `read_count`; a count of 0 means 65536.
    unsafe {
        let mut cmd: Port<u8> = Port::new(0x43);
        let mut ch0: Port<u8> = Port::new(0x40);
        cmd.write(0b0011_0100); // channel 0, lobyte/hibyte, mode 2, binary
        ch0.write(0);
        ch0.write(0);
    }
}

/// Runs `f` between two PIT reads that are at most [`MAX_BRACKET_TICKS`] apart, and
/// returns the PIT count at `f` (the later read).
pub fn bracketed(f: &mut impl FnMut()) -> u16 {
    loop {
        let before = read_count();
        f();
        let after = read_count();
        if before.wrapping_sub(after) <= MAX_BRACKET_TICKS {
            return after;
        }
    }
}
