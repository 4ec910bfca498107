//! The 8254 PIT, used only as a known-rate reference to calibrate the TSC and the local
//! APIC timer (the TCG CPU offers neither CPUID leaf 0x15 nor 0x16).
//!
//! Channel 0 is read back with latch commands rather than gating channel 2 through port
//! 0x61, because `microvm` has no port 0x61 (no PC speaker) but does have the PIT.

use x86_64::instructions::port::Port;

/// PIT input clock, Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// Calls `start`, waits until at least `ticks` PIT ticks have passed, calls `end`, and
/// returns the ticks that actually passed between the two calls.
pub fn measure(ticks: u16, mut start: impl FnMut(), mut end: impl FnMut()) -> u64 {
    let read = || {
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
    };
    // SAFETY: as above; mode 0 with the largest count gives a 55 ms one-shot countdown, and
    // IRQ0 at its end goes nowhere (the PICs are masked, microvm has none).
    unsafe {
        let mut cmd: Port<u8> = Port::new(0x43);
        let mut ch0: Port<u8> = Port::new(0x40);
        cmd.write(0b0011_0000); // channel 0, lobyte/hibyte, mode 0, binary
        ch0.write(0xff);
        ch0.write(0xff);
    }
    let first = read();
    start();
    loop {
        let now = read();
        let passed = first.wrapping_sub(now);
        if passed >= ticks {
            end();
            return u64::from(passed);
        }
        core::hint::spin_loop();
    }
}
