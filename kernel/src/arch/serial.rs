//! COM1 (16550 UART at port 0x3f8) through the `uart_16550` crate.

use core::fmt;
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550};

const COM1: u16 = 0x3f8;

/// The serial port: text out (with `\n` sent as `\r\n`), bytes in.
pub struct Serial(Uart16550<PioBackend>);

/// COM1 is missing or did not accept its configuration.
#[derive(Debug)]
pub struct NoSerial;

impl Serial {
    /// Initializes COM1 (115200 8N1, FIFO on, interrupts off).
    pub fn com1() -> Result<Serial, NoSerial> {
        // SAFETY: 0x3f8..0x400 is COM1 on every PC-compatible machine profile, and only
        // the console module (behind its lock) and the fault path use it.
        let mut uart = unsafe { Uart16550::new_port(COM1) }.map_err(|_| NoSerial)?;
        uart.init(Config::default()).map_err(|_| NoSerial)?;
        Ok(Serial(uart))
    }

    /// A second handle on an already initialized COM1, for the fault and panic paths,
    /// which must not wait for a lock the interrupted code may hold. Output may
    /// interleave with a line that was being written; that is the lesser evil.
    pub fn emergency() -> Option<Serial> {
        // SAFETY: as in `com1`; the device was initialized at boot, and the caller is
        // about to stop the machine, so no one else uses the port afterwards.
        unsafe { Uart16550::new_port(COM1) }.ok().map(Serial)
    }

    /// One received byte, if any is waiting. Never blocks.
    pub fn try_read(&mut self) -> Option<u8> {
        self.0.try_receive_byte().ok()
    }
}

impl fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for line in s.split_inclusive('\n') {
            match line.strip_suffix('\n') {
                Some(body) => {
                    self.0.send_bytes_exact(body.as_bytes());
                    self.0.send_bytes_exact(b"\r\n");
                }
                None => self.0.send_bytes_exact(line.as_bytes()),
            }
        }
        Ok(())
    }
}
