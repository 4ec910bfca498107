//! The CMOS real-time clock's registers, read through ports 0x70/0x71. What they mean
//! is `plinth-rtc`'s business.

use plinth_rtc::Registers;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::instructions::port::Port;

/// Status register A: an update is in progress (the time registers may be torn).
const UPDATING: u8 = 1 << 7;

fn read(reg: u8) -> u8 {
    let mut index: Port<u8> = Port::new(0x70);
    let mut data: Port<u8> = Port::new(0x71);
    // SAFETY: 0x70/0x71 are the CMOS index and data ports on every PC and in every QEMU
    // profile plinth boots; selecting a register (NMI left enabled: bit 7 clear) and
    // reading it has no effect on memory.
    unsafe {
        index.write(reg & 0x7f);
        data.read()
    }
}

fn snapshot() -> Registers {
    Registers {
        seconds: read(0x00),
        minutes: read(0x02),
        hours: read(0x04),
        day: read(0x07),
        month: read(0x08),
        year: read(0x09),
        status_b: read(0x0b),
    }
}

/// The registers, read outside an update and twice alike (so no field is torn across
/// a second's change). `None` if the clock never holds still (absent, or broken): at
/// most a few milliseconds of tries.
pub fn registers() -> Option<Registers> {
    without_interrupts(|| {
        for _ in 0..1000 {
            if read(0x0a) & UPDATING != 0 {
                continue;
            }
            let first = snapshot();
            if read(0x0a) & UPDATING == 0 && snapshot() == first {
                return Some(first);
            }
        }
        None
    })
}
