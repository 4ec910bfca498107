//! The serial console: the timestamped log, raw status lines, and typed-in lines.
//!
//! Owns COM1 after boot. Log lines read `[   0.001234] INFO  message`, time since kernel
//! entry. Lines the host tools match on (`plinth: ready`) are printed raw. Input is read
//! by polling from the idle loop, so the console costs nothing while idle; what a line
//! means is `crate::shell`'s business.
//!
//! During boot, lines go to an in-memory boot log instead of the UART (each byte written
//! to the emulated UART costs microseconds, and the clock's rate is not known until init
//! ends). Log lines keep their raw TSC stamp and are formatted when [`flush_boot_log`]
//! writes them out, in order, right after `ready` — the printk way: output is deferred,
//! never lost. The fault and panic paths flush it first, so a crash report always follows
//! the lines logged before it.
//!
//! The boot log is kept in stamp order, so init may also [`defer`] a line: it records the
//! values elsewhere and hands over a function that formats them; the line is made, with
//! the stamp of the `defer` call, whenever the boot log is written out — after `ready`, or
//! by a fault or panic during init. It lands where it would have, and formatting — the
//! first use of `core::fmt`, costly to translate under TCG — is not init work.

use core::fmt::{self, Write};
use heapless::String;
use log::{Level, LevelFilter, Log, Metadata, Record};
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;

use crate::arch::serial::Serial;
use crate::clock;

/// Text held by the boot log; boot writes about a kilobyte, a hostile command line a few.
const BOOT_LOG_BYTES: usize = 16 * 1024;
/// Lines held by the boot log.
const BOOT_LOG_LINES: usize = 128;

/// Bytes of agent log lines held for the UART (see [`AgentLines`]): at about 2 µs a byte
/// under TCG, writing a full buffer out takes some 8 ms.
const AGENT_LINES_BYTES: usize = 4 * 1024;

/// Most bytes of agent lines the idle loop writes per pass (about 0.5 ms of port writes
/// under TCG): the loop serves interrupts and runs agents between passes, so a chatty
/// agent's lines never hold up another's disk completion for the whole buffer's 8 ms.
/// At a pass per tick at least, that still drains 25 KiB a second.
const AGENT_DRAIN_BYTES: usize = 256;

/// Longest line one agent record makes on the UART: stamp, level, names, the text.
const AGENT_LINE_MAX: usize = AGENT_LINES_BYTES + 32;

/// Lines agents logged (the `Log` system call), waiting for the UART.
///
/// An agent's `log` costs the agent the copy into this buffer, not the UART's pace (a
/// 64-byte line is over 100 µs of port writes under TCG): the buffer is written out from
/// the idle loop a bounded piece a pass ([`drain_agent_lines`]), and whole before any
/// other line, so the console shows
/// everything in the order it happened. When it is full, further agent lines are dropped
/// and counted, and the count is reported on the console: an agent logging faster than
/// the console can write must not stall the runtime or the other partitions.
struct AgentLines {
    /// Records: the TSC when logged (8 bytes LE), the text's length (2 bytes LE), then the
    /// text (`PARTITION/AGENT: line`, control characters escaped), back to back.
    bytes: heapless::Vec<u8, AGENT_LINES_BYTES>,
    /// Lines dropped since the last report.
    dropped: u64,
    /// The line being written out, as it goes to the UART, and how much of it has.
    staged: String<AGENT_LINE_MAX>,
    staged_at: usize,
}

/// Lines dropped because [`AgentLines`] was full, since boot.
static AGENT_LINES_DROPPED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

impl AgentLines {
    const fn new() -> AgentLines {
        AgentLines {
            bytes: heapless::Vec::new(),
            dropped: 0,
            staged: String::new(),
            staged_at: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.staged_at >= self.staged.len() && self.bytes.is_empty() && self.dropped == 0
    }

    /// Writes every held line and the drop count, if any, and empties the buffer.
    fn write_out(&mut self, serial: &mut Serial) {
        self.write_some(serial, usize::MAX);
    }

    /// Moves the oldest record into `staged`, formatted as the UART shows it. False if
    /// there is none.
    fn stage_next(&mut self) -> bool {
        let Some((head, tail)) = self.bytes.split_first_chunk::<10>() else {
            return false;
        };
        let tsc = u64::from_le_bytes([
            head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7],
        ]);
        let len = usize::from(u16::from_le_bytes([head[8], head[9]])).min(tail.len());
        self.staged.clear();
        self.staged_at = 0;
        let _ = stamp(&mut self.staged, clock::tsc_to_ns_since_entry(tsc));
        let _ = self.staged.push_str("INFO  ");
        // Only `push` writes records, from `&str`s cut at character boundaries.
        let _ = self
            .staged
            .push_str(core::str::from_utf8(&tail[..len]).unwrap_or("?"));
        let _ = self.staged.push('\n');
        let used = 10 + len;
        self.bytes.copy_within(used.., 0);
        self.bytes.truncate(self.bytes.len() - used);
        true
    }

    /// Writes held lines out, at most about `budget` bytes of them (a line may be cut
    /// between passes; nothing else is written in between, since every other line
    /// writes these out first), then the drop count once all are out. True if some
    /// remain.
    fn write_some(&mut self, serial: &mut Serial, mut budget: usize) -> bool {
        while budget > 0 {
            if self.staged_at >= self.staged.len() && !self.stage_next() {
                break;
            }
            let rest = &self.staged[self.staged_at..];
            let mut n = rest.len().min(budget);
            while !rest.is_char_boundary(n) {
                n -= 1;
            }
            if n == 0 {
                // Less budget than one character: write it whole.
                n = rest.chars().next().map_or(rest.len(), char::len_utf8);
            }
            let _ = serial.write_str(&rest[..n]);
            self.staged_at += n;
            budget = budget.saturating_sub(n);
        }
        if self.staged_at < self.staged.len() || !self.bytes.is_empty() {
            return true;
        }
        if self.dropped > 0 {
            let _ = stamp(serial, clock::now_ns());
            let _ = writeln!(
                serial,
                "WARN  console: {} agent log lines dropped (agents logged faster than the console writes)",
                self.dropped
            );
            self.dropped = 0;
        }
        false
    }

    /// Appends `prefix: text` stamped `tsc`, escaping control characters in `text`;
    /// drops it whole (and counts it) if it does not fit.
    fn push(&mut self, tsc: u64, prefix: [&str; 2], text: AgentText<'_>) {
        let start = self.bytes.len();
        let fits = self.bytes.extend_from_slice(&tsc.to_le_bytes()).is_ok()
            && self.bytes.extend_from_slice(&[0, 0]).is_ok()
            && self.bytes.extend_from_slice(prefix[0].as_bytes()).is_ok()
            && self.bytes.push(b'/').is_ok()
            && self.bytes.extend_from_slice(prefix[1].as_bytes()).is_ok()
            && self.bytes.extend_from_slice(b": ").is_ok()
            && match text {
                AgentText::Printable(Printable(bytes)) => {
                    let end = bytes.iter().rposition(|b| *b != b' ').map_or(0, |i| i + 1);
                    self.bytes.extend_from_slice(&bytes[..end]).is_ok()
                }
                AgentText::Text(text) => push_one_line(&mut self.bytes, text.trim_end()),
            };
        let len = self.bytes.len().saturating_sub(start + 10);
        match u16::try_from(len) {
            Ok(len) if fits => {
                self.bytes[start + 8..start + 10].copy_from_slice(&len.to_le_bytes())
            }
            _ => {
                self.bytes.truncate(start);
                self.dropped += 1;
                AGENT_LINES_DROPPED.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// Appends `text` as one line: control characters (newlines, escape sequences) shown as
/// `\u{..}`, so an agent cannot start a line of its own on the console — say, a forged
/// `plinth: ready` — or move the terminal's cursor. False if it does not fit.
fn push_one_line<const N: usize>(out: &mut heapless::Vec<u8, N>, text: &str) -> bool {
    let mut rest = text;
    while let Some(i) = rest.find(|c: char| c.is_control()) {
        let c = rest[i..].chars().next().unwrap_or(' ');
        let mut escaped: String<16> = String::new();
        let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
        if out.extend_from_slice(&rest.as_bytes()[..i]).is_err()
            || out.extend_from_slice(escaped.as_bytes()).is_err()
        {
            return false;
        }
        rest = &rest[i + c.len_utf8()..];
    }
    out.extend_from_slice(rest.as_bytes()).is_ok()
}

/// Built in place in its static: `init` only adds the port. (Assembling the 20 KiB value
/// on the stack and copying it in was a rep-string loop, slow under TCG, at boot.)
struct Console {
    /// COM1, once `init` found it; without it nothing is written or read.
    serial: Option<Serial>,
    /// Lines deferred during boot, made when the boot log is written out.
    deferred: heapless::Vec<Deferred, MAX_DEFERRED>,
    /// Lines are held here while `buffering`; written out and cleared by `flush`. Never
    /// moved: it is larger than the double-fault stack the flush may run on.
    boot_log: BootLog,
    buffering: bool,
    /// Agents' lines, written out before any other (see [`AgentLines`]).
    agent_lines: AgentLines,
}

/// Lines written before `ready`, not yet on the UART.
struct BootLog {
    text: String<BOOT_LOG_BYTES>,
    lines: heapless::Vec<BootLine, BOOT_LOG_LINES>,
    dropped: usize,
}

struct BootLine {
    /// TSC when the line was written, or when what it reports happened.
    tsc: u64,
    /// Log lines are printed with `tsc` as their time; raw lines are not.
    stamped: bool,
    /// Where its text is in `BootLog::text`.
    start: usize,
    end: usize,
}

impl BootLog {
    const fn new() -> BootLog {
        BootLog {
            text: String::new(),
            lines: heapless::Vec::new(),
            dropped: 0,
        }
    }

    /// Adds one line (the text ends in `\n`) after every line stamped no later than
    /// `tsc`; a line that does not fit is dropped whole and counted.
    fn push(&mut self, tsc: u64, stamped: bool, args: fmt::Arguments) {
        let start = self.text.len();
        if self.lines.is_full() || self.text.write_fmt(args).is_err() {
            self.text.truncate(start);
            self.dropped += 1;
            return;
        }
        let end = self.text.len();
        let at = self.lines.partition_point(|l| l.tsc <= tsc);
        let line = BootLine {
            tsc,
            stamped,
            start,
            end,
        };
        // Not full (checked above), so the insert cannot fail.
        let _ = self.lines.insert(at, line);
    }

    fn clear(&mut self) {
        self.text.clear();
        self.lines.clear();
        self.dropped = 0;
    }

    fn write_out(&self, serial: &mut Serial) {
        for line in &self.lines {
            if line.stamped {
                let _ = stamp(serial, clock::tsc_to_ns_since_entry(line.tsc));
            }
            let _ = serial.write_str(&self.text[line.start..line.end]);
        }
        if self.dropped > 0 {
            let _ = stamp(serial, clock::now_ns());
            let _ = writeln!(
                serial,
                "WARN  console: {} boot log lines dropped (boot log full)",
                self.dropped
            );
        }
    }
}

/// Formats a deferred line's text (without level or stamp) from values its owner keeps.
pub type Render = fn(&mut dyn Write) -> fmt::Result;

/// Deferred lines held; init defers three.
const MAX_DEFERRED: usize = 8;

struct Deferred {
    tsc: u64,
    level: Level,
    render: Render,
}

/// Displays a deferred line by calling its renderer.
struct Rendered(Render);

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

impl Console {
    const fn new() -> Console {
        Console {
            serial: None,
            deferred: heapless::Vec::new(),
            boot_log: BootLog::new(),
            buffering: true,
            agent_lines: AgentLines::new(),
        }
    }
}

static CONSOLE: Mutex<Console> = Mutex::new(Console::new());
static LOGGER: Logger = Logger;

/// Longest command line accepted; longer input is discarded with a message.
pub const MAX_COMMAND: usize = 80;

/// Takes COM1, starts the boot log and installs the logger at `Info`. Returns false
/// without a serial port.
pub fn init() -> bool {
    let Ok(serial) = Serial::com1() else {
        return false;
    };
    without_interrupts(|| CONSOLE.lock().serial = Some(serial));
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(LevelFilter::Info);
    true
}

/// Writes the boot log out and sends every later line straight to the UART.
pub fn flush_boot_log() {
    without_interrupts(|| flush(&mut CONSOLE.lock()));
}

fn flush(c: &mut Console) {
    let Some(serial) = c.serial.as_mut() else {
        return;
    };
    c.agent_lines.write_out(serial);
    if c.buffering {
        c.buffering = false;
        // Lines were stamped with the raw TSC; they need the rate to be read as time.
        clock::finish_boot_calibration();
        for d in &c.deferred {
            let line = format_args!("{} {}\n", level_word(d.level), Rendered(d.render));
            c.boot_log.push(d.tsc, true, line);
        }
        c.deferred.clear();
        c.boot_log.write_out(serial);
        c.boot_log.clear();
    }
}

fn write_line(tsc: Option<u64>, args: fmt::Arguments) {
    // Interrupts off while the lock is held, so a handler never spins on it.
    without_interrupts(|| {
        let mut console = CONSOLE.lock();
        let c = &mut *console;
        let Some(serial) = c.serial.as_mut() else {
            return;
        };
        if c.buffering {
            let at = tsc.unwrap_or_else(crate::arch::cpu::rdtsc);
            c.boot_log.push(at, tsc.is_some(), args);
            return;
        }
        // Agents' lines logged before this one go first.
        c.agent_lines.write_out(serial);
        if let Some(tsc) = tsc {
            let _ = stamp(serial, clock::tsc_to_ns_since_entry(tsc));
        }
        let _ = serial.write_fmt(args);
    });
}

/// An agent's line: checked printable ASCII (copied as it is), or any UTF-8 text
/// (control characters escaped).
pub enum AgentText<'a> {
    Printable(Printable<'a>),
    Text(&'a str),
}

/// Bytes that are all printable ASCII (0x20..=0x7e): valid UTF-8 with nothing to escape.
/// Most agent lines are; checking a word at a time is cheaper than decoding characters.
pub struct Printable<'a>(&'a [u8]);

impl<'a> Printable<'a> {
    pub fn new(bytes: &'a [u8]) -> Option<Printable<'a>> {
        const LOW: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
            // A byte with the top bit set, one below 0x20, or one equal to 0x7f (the
            // classic "has a byte less than n" and "has a zero byte" tests).
            let y = x ^ (0x7f * LOW);
            if x & HIGH != 0
                || x.wrapping_sub(0x20 * LOW) & !x & HIGH != 0
                || y.wrapping_sub(LOW) & !y & HIGH != 0
            {
                return None;
            }
        }
        words
            .remainder()
            .iter()
            .all(|b| (0x20..0x7f).contains(b))
            .then_some(Printable(bytes))
    }
}

/// Logs an agent's line `PARTITION/AGENT: text` (trailing whitespace cut) at info
/// level, stamped now: held for the UART (see [`AgentLines`]), so it costs the agent the
/// copy only.
pub fn agent_line(partition: &str, agent: &str, text: AgentText<'_>) {
    if log::max_level() < Level::Info {
        return;
    }
    let tsc = crate::arch::cpu::rdtsc();
    without_interrupts(|| {
        CONSOLE
            .lock()
            .agent_lines
            .push(tsc, [partition, agent], text)
    });
}

/// Writes some of the agents' held lines out (see [`AGENT_DRAIN_BYTES`]); the idle loop
/// calls it each pass. True if lines remain: the loop comes round again rather than
/// halting.
pub fn drain_agent_lines() -> bool {
    without_interrupts(|| {
        let mut console = CONSOLE.lock();
        let c = &mut *console;
        match c.serial.as_mut() {
            Some(serial) if !c.agent_lines.is_empty() => {
                c.agent_lines.write_some(serial, AGENT_DRAIN_BYTES)
            }
            _ => false,
        }
    })
}

/// Agent log lines dropped since boot because the console could not keep up.
pub fn agent_lines_dropped() -> u64 {
    AGENT_LINES_DROPPED.load(core::sync::atomic::Ordering::Relaxed)
}

/// Writes `[   s.micros] `.
fn stamp(out: &mut impl Write, ns: u64) -> fmt::Result {
    write!(
        out,
        "[{:>4}.{:06}] ",
        ns / 1_000_000_000,
        (ns / 1_000) % 1_000_000
    )
}

/// Writes formatted text to the console as one raw line (no timestamp); the text should
/// end in a newline.
pub fn write_fmt(args: fmt::Arguments) {
    write_line(None, args);
}

/// Prints a raw line, e.g. `plinth: ready ...`.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => { $crate::console::write_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints from a fault or panic handler without waiting for the console lock. The boot
/// log is written out first if the lock is free (it is not only when the fault hit
/// inside the console itself; then those lines are lost, the report is not).
pub fn emergency(args: fmt::Arguments) {
    if let Some(mut guard) = CONSOLE.try_lock() {
        flush(&mut guard);
    }
    if let Some(mut s) = Serial::emergency() {
        let _ = s.write_fmt(args);
    }
}

/// Logs a line at `level`, stamped now, whose text `render` makes when the boot log is
/// written out (see the module doc); after boot it is made at once. A renderer that
/// fails (its values are busy) drops the line, which is counted like a full boot log.
/// Not inlined: init calls it three times, and under TCG each inlined copy is translated.
#[inline(never)]
pub fn defer(level: Level, render: Render) {
    if log::max_level() < level {
        return;
    }
    let tsc = crate::arch::cpu::rdtsc();
    let now = without_interrupts(|| {
        let mut c = CONSOLE.lock();
        if c.serial.is_none() {
            return false;
        }
        if c.buffering {
            let d = Deferred { tsc, level, render };
            if c.deferred.push(d).is_err() {
                c.boot_log.dropped += 1;
            }
            return false;
        }
        true
    });
    if now {
        write_line(
            Some(tsc),
            format_args!("{} {}\n", level_word(level), Rendered(render)),
        );
    }
}

fn level_word(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN ",
        Level::Info => "INFO ",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

struct Logger;

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        // Driver crates log their negotiation at info level; only their warnings and
        // errors are the operator's business unless the log level asks for debug.
        let max = log::max_level();
        let floor = if m.target().starts_with("plinth") || max >= LevelFilter::Debug {
            max
        } else {
            max.min(LevelFilter::Warn)
        };
        m.level() <= floor
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let tsc = crate::arch::cpu::rdtsc();
        write_line(
            Some(tsc),
            format_args!("{} {}\n", level_word(record.level()), record.args()),
        );
    }

    fn flush(&self) {}
}

struct LineBuffer {
    line: String<MAX_COMMAND>,
    overflowed: bool,
}

static INPUT: Mutex<LineBuffer> = Mutex::new(LineBuffer {
    line: String::new(),
    overflowed: false,
});

/// A line typed on the console.
pub enum Input {
    /// Printable ASCII, at most [`MAX_COMMAND`] bytes, not yet trimmed.
    Line(String<MAX_COMMAND>),
    /// The line exceeded [`MAX_COMMAND`] bytes and was dropped.
    TooLong,
}

/// Reads whatever bytes are waiting and returns the line once one is complete.
pub fn poll_line() -> Option<Input> {
    without_interrupts(|| {
        let mut console = CONSOLE.lock();
        let serial = console.serial.as_mut()?;
        let mut input = INPUT.lock();
        while let Some(byte) = serial.try_read() {
            match byte {
                b'\r' | b'\n' => {
                    let overflowed = core::mem::replace(&mut input.overflowed, false);
                    let line = core::mem::take(&mut input.line);
                    return Some(if overflowed {
                        Input::TooLong
                    } else {
                        Input::Line(line)
                    });
                }
                // Printable ASCII only; anything else (escape sequences, binary) is dropped.
                0x20..=0x7e if input.line.push(char::from(byte)).is_err() => {
                    input.overflowed = true;
                }
                _ => {}
            }
        }
        None
    })
}

/// Writes out the boot log and stops the machine with `code`.
pub fn stop(code: plinth_exit::ExitCode) -> ! {
    flush_boot_log();
    crate::arch::exit::exit(code)
}
