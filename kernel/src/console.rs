//! The serial console: the timestamped log, raw status lines, and typed-in commands.
//!
//! Owns COM1 after boot. Log lines read `[   0.001234] INFO  message`, time since kernel
//! entry. Lines the host tools match on (`plinth: ready`) are printed raw. Commands are
//! read by polling from the idle loop, so the console costs nothing while idle.

use core::fmt::{self, Write};
use heapless::String;
use log::{Level, LevelFilter, Log, Metadata, Record};
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;

use crate::arch::serial::Serial;
use crate::clock;

static SERIAL: Mutex<Option<Serial>> = Mutex::new(None);
static LOGGER: Logger = Logger;

/// Longest command line accepted; longer input is discarded with a message.
pub const MAX_COMMAND: usize = 80;

/// Takes COM1 and installs the logger at `Info`. Returns false without a serial port.
pub fn init() -> bool {
    let Ok(serial) = Serial::com1() else {
        return false;
    };
    without_interrupts(|| *SERIAL.lock() = Some(serial));
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
    true
}

/// Writes formatted text to the console (no timestamp, no newline added).
pub fn write_fmt(args: fmt::Arguments) {
    // Interrupts off while the lock is held, so a handler never spins on it.
    without_interrupts(|| {
        if let Some(s) = SERIAL.lock().as_mut() {
            let _ = s.write_fmt(args);
        }
    });
}

/// Prints a raw line, e.g. `plinth: ready ...`.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints from a fault or panic handler without taking the console lock.
pub fn emergency(args: fmt::Arguments) {
    if let Some(mut s) = Serial::emergency() {
        let _ = s.write_fmt(args);
    }
}

struct Logger;

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ns = clock::now_ns();
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        write_fmt(format_args!(
            "[{:>4}.{:06}] {} {}\n",
            ns / 1_000_000_000,
            (ns / 1_000) % 1_000_000,
            level,
            record.args()
        ));
    }

    fn flush(&self) {}
}

/// A command typed on the console.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Stop the runtime cleanly (exit code `Success`).
    Shutdown,
    /// Print uptime and memory.
    Status,
    /// List commands.
    Help,
    /// Anything else (the line is echoed in the error).
    Unknown(String<MAX_COMMAND>),
    /// The line exceeded [`MAX_COMMAND`] bytes and was dropped.
    TooLong,
}

impl Command {
    /// Parses one line; `None` for a blank line.
    pub fn parse(line: &str) -> Option<Command> {
        let line = line.trim();
        Some(match line {
            "" => return None,
            "shutdown" | "poweroff" => Command::Shutdown,
            "status" => Command::Status,
            "help" | "?" => Command::Help,
            other => {
                let mut s = String::new();
                for c in other.chars() {
                    if s.push(c).is_err() {
                        break;
                    }
                }
                Command::Unknown(s)
            }
        })
    }
}

struct LineBuffer {
    line: String<MAX_COMMAND>,
    overflowed: bool,
}

static INPUT: Mutex<LineBuffer> = Mutex::new(LineBuffer {
    line: String::new(),
    overflowed: false,
});

/// Reads whatever bytes are waiting and returns a command once a line is complete.
pub fn poll_command() -> Option<Command> {
    without_interrupts(|| {
        let mut serial = SERIAL.lock();
        let serial = serial.as_mut()?;
        let mut input = INPUT.lock();
        while let Some(byte) = serial.try_read() {
            match byte {
                b'\r' | b'\n' => {
                    let overflowed = core::mem::replace(&mut input.overflowed, false);
                    let cmd = if overflowed {
                        Some(Command::TooLong)
                    } else {
                        Command::parse(&input.line)
                    };
                    input.line.clear();
                    if cmd.is_some() {
                        return cmd;
                    }
                }
                // Printable ASCII only; anything else (escape sequences, binary) is dropped.
                0x20..=0x7e => {
                    if input.line.push(char::from(byte)).is_err() {
                        input.overflowed = true;
                    }
                }
                _ => {}
            }
        }
        None
    })
}
