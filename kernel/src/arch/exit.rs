//! Stopping the machine with a code the host can read.

use plinth_exit::{DEBUG_EXIT_PORT, ExitCode};
use x86_64::instructions::port::Port;

/// Writes `code` to QEMU's `isa-debug-exit` device, which ends QEMU with status
/// `(code << 1) | 1`. Without that device (real hardware) the CPU halts.
pub fn exit(code: ExitCode) -> ! {
    let mut port: Port<u32> = Port::new(DEBUG_EXIT_PORT);
    // SAFETY: port 0xf4 is reserved for isa-debug-exit in every plinth machine profile;
    // writing it has no effect on memory.
    unsafe { port.write(u32::from(code.port_value())) };
    super::cpu::halt_forever()
}
