//! The 8254 PIT, used only as a known-rate reference to calibrate the TSC and the local
//! APIC timer (the TCG CPU offers neither CPUID leaf 0x15 nor 0x16).

use x86_64::instructions::port::Port;

/// PIT input clock, Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// Runs `during` while PIT channel 2 counts down `ticks` (at most 65535), then returns
/// once the count has expired. Channel 2 is gated through port 0x61 and its output read
/// back there, so no interrupt is involved.
pub fn wait_ticks(ticks: u16, mut before: impl FnMut(), mut after: impl FnMut()) {
    let mut ctrl: Port<u8> = Port::new(0x61);
    let mut cmd: Port<u8> = Port::new(0x43);
    let mut data: Port<u8> = Port::new(0x42);
    // SAFETY: ports 0x42/0x43/0x61 are the PIT channel 2 and its gate on every PC-compatible
    // machine; only this function uses them, and it leaves the speaker off.
    unsafe {
        let gate = (ctrl.read() & !0x03) | 0x01; // gate high, speaker off
        ctrl.write(gate & !0x01);
        cmd.write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        data.write((ticks & 0xff) as u8);
        data.write((ticks >> 8) as u8);
        ctrl.write(gate); // rising gate edge starts the count
        before();
        while ctrl.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
        after();
        ctrl.write(gate & !0x01);
    }
}
