//! The kernel command line: `key=value` options separated by spaces.
//!
//! Owns the option names, their values and their defaults. It parses without allocating
//! (the heap does not exist yet when the command line is read) and never fails: a bad or
//! unknown option becomes a [`Problem`] the kernel logs, and the default stays in force,
//! as Linux does. It must not act on the options; the kernel does that.
//!
//! | option | values | default |
//! |---|---|---|
//! | `log` | `error`, `warn`, `info`, `debug`, `trace` | `info` |
//! | `selftest` | comma-separated [`SelfTests`] names | none |
//! | `ip` | static management address, `A.B.C.D/prefix` | DHCP |
//! | `gw` | default gateway for a static `ip`, `A.B.C.D` | none |
//! | `api_port` | TCP port of the management API, 1–65535 | 8080 |
//! | `bench` | (flag, or `=on`/`=off`) serve the network-benchmark streams | off |
//! | `virtio_mmio.device` | `SIZE@BASE:IRQ`, Linux's syntax; repeatable (up to 8) | none |
//!
//! `virtio_mmio.device` is how a VMM without ACPI or a device tree tells a kernel where
//! its virtio-mmio devices are (QEMU's `microvm` adds one per device, as Firecracker
//! does): SIZE in bytes with an optional `K`/`M` suffix, BASE in hex (`0x…`) or decimal,
//! IRQ the GSI in decimal, then optionally `:ID` (ignored), as Linux accepts.
#![no_std]
#![forbid(unsafe_code)]

use core::net::Ipv4Addr;

use bitflags::bitflags;
use heapless::Vec;

/// Longest command line the kernel looks at; the rest is ignored with a [`Problem`].
pub const MAX_LEN: usize = 4096;
/// How many problems are kept; later ones are counted in [`Parsed::dropped_problems`].
pub const MAX_PROBLEMS: usize = 8;

/// Verbosity of the serial log, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    const NAMES: [(&'static str, LogLevel); 5] = [
        ("error", LogLevel::Error),
        ("warn", LogLevel::Warn),
        ("info", LogLevel::Info),
        ("debug", LogLevel::Debug),
        ("trace", LogLevel::Trace),
    ];

    fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, l)| *l)
    }
}

bitflags! {
    /// Self-tests selected with `selftest=a,b,c`. The fault ones end the run on purpose.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    pub struct SelfTests: u16 {
        /// Allocate, fill, verify and free physical frames.
        const FRAMES = 1 << 0;
        /// Allocate, verify and free kernel heap objects of many sizes.
        const HEAP = 1 << 1;
        /// Check the kernel's memcpy, memmove, memset and memcmp against byte loops.
        const MEM = 1 << 10;
        /// Print clock marks every 250 ms for 2 s so the host can compare rates.
        const CLOCK = 1 << 2;
        /// Read an unmapped address: page fault.
        const PAGE_FAULT = 1 << 3;
        /// Load a non-canonical address: general protection fault.
        const GP_FAULT = 1 << 4;
        /// Execute `ud2`: invalid opcode.
        const INVALID_OPCODE = 1 << 5;
        /// Recurse until the stack hits its guard page: double fault on the IST stack.
        const STACK_OVERFLOW = 1 << 6;
        /// `panic!` with a known message.
        const PANIC = 1 << 7;
        /// Allocate from the heap until it is exhausted.
        const OOM = 1 << 8;
        /// Write to the kernel's own code: page fault (text is mapped read-only).
        const WRITE_TEXT = 1 << 9;
    }
}

impl SelfTests {
    /// Command-line names, in the order the kernel runs them.
    pub const NAMES: [(&'static str, SelfTests); 11] = [
        ("frames", SelfTests::FRAMES),
        ("heap", SelfTests::HEAP),
        ("mem", SelfTests::MEM),
        ("clock", SelfTests::CLOCK),
        ("pagefault", SelfTests::PAGE_FAULT),
        ("gpfault", SelfTests::GP_FAULT),
        ("ud", SelfTests::INVALID_OPCODE),
        ("stackoverflow", SelfTests::STACK_OVERFLOW),
        ("panic", SelfTests::PANIC),
        ("oom", SelfTests::OOM),
        ("writetext", SelfTests::WRITE_TEXT),
    ];

    fn from_cmdline_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
    }
}

/// The options in force after parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub log_level: LogLevel,
    pub selftests: SelfTests,
    /// Static management address and prefix length; `None` means DHCP.
    pub ip: Option<(Ipv4Addr, u8)>,
    pub gateway: Option<Ipv4Addr>,
    pub api_port: u16,
    /// `bench`: serve the throughput-benchmark streams on the API port (off by default:
    /// they let any client on the management network make the runtime move bulk data).
    pub bench: bool,
    /// Virtio-mmio devices the VMM announced, in command-line order.
    pub virtio_mmio: [Option<MmioDevice>; MAX_MMIO_DEVICES],
}

/// Most `virtio_mmio.device` entries kept (QEMU's microvm offers 8 transports).
pub const MAX_MMIO_DEVICES: usize = 8;

/// One `virtio_mmio.device=SIZE@BASE:IRQ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioDevice {
    pub base: u64,
    pub size: u64,
    pub irq: u32,
}

fn parse_mmio(value: &str) -> Option<MmioDevice> {
    let (size, rest) = value.split_once('@')?;
    let (base, rest) = rest.split_once(':')?;
    // Linux accepts a trailing `:ID` (the platform device id); it names nothing here.
    let irq = match rest.split_once(':') {
        Some((irq, id)) if id.parse::<u32>().is_ok() => irq,
        Some(_) => return None,
        None => rest,
    };
    let (digits, unit) = match size.as_bytes().last()? {
        b'k' | b'K' => (&size[..size.len() - 1], 1 << 10),
        b'm' | b'M' => (&size[..size.len() - 1], 1 << 20),
        _ => (size, 1),
    };
    let size = parse_number(digits)?.checked_mul(unit)?;
    let base = parse_number(base)?;
    let irq: u32 = irq.parse().ok()?;
    // A virtio-mmio register block is 0x100 bytes plus device config; the IRQ must be an
    // I/O APIC input.
    (size >= 0x100 && base != 0 && base.checked_add(size).is_some() && irq < 24)
        .then_some(MmioDevice { base, size, irq })
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or(s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Default TCP port of the management API.
pub const DEFAULT_API_PORT: u16 = 8080;

fn parse_cidr(value: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, prefix) = value.split_once('/')?;
    let prefix: u8 = prefix.parse().ok().filter(|p| (1..=32).contains(p))?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    (!addr.is_unspecified() && !addr.is_broadcast() && !addr.is_multicast())
        .then_some((addr, prefix))
}

impl Default for Options {
    fn default() -> Self {
        Options {
            log_level: LogLevel::Info,
            selftests: SelfTests::empty(),
            ip: None,
            gateway: None,
            api_port: DEFAULT_API_PORT,
            bench: false,
            virtio_mmio: [None; MAX_MMIO_DEVICES],
        }
    }
}

/// What was wrong with one piece of the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The key is not an option plinth knows.
    UnknownOption,
    /// The option needs `=value`.
    MissingValue,
    /// The value is not one the option accepts.
    BadValue,
    /// The command line was longer than [`MAX_LEN`]; the rest was ignored.
    TooLong,
}

/// A piece of the command line that was ignored, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem<'a> {
    pub kind: ProblemKind,
    /// The offending token (for `BadValue`, the single bad list item).
    pub token: &'a str,
}

/// Result of [`parse`].
#[derive(Debug)]
pub struct Parsed<'a> {
    pub options: Options,
    pub problems: Vec<Problem<'a>, MAX_PROBLEMS>,
    /// Problems beyond [`MAX_PROBLEMS`] that were not kept.
    pub dropped_problems: usize,
}

impl<'a> Parsed<'a> {
    fn problem(&mut self, kind: ProblemKind, token: &'a str) {
        if self.problems.push(Problem { kind, token }).is_err() {
            self.dropped_problems += 1;
        }
    }
}

/// Parses a command line. Never fails: see [`Problem`].
pub fn parse(cmdline: &str) -> Parsed<'_> {
    let mut parsed = Parsed {
        options: Options::default(),
        problems: Vec::new(),
        dropped_problems: 0,
    };
    let mut line = cmdline;
    if line.len() > MAX_LEN {
        let mut cut = MAX_LEN;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        parsed.problem(ProblemKind::TooLong, &line[cut..]);
        line = &line[..cut];
    }
    for token in line.split_ascii_whitespace() {
        let (key, value) = match token.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (token, None),
        };
        match key {
            "log" => match value.map(LogLevel::from_name) {
                Some(Some(level)) => parsed.options.log_level = level,
                Some(None) => parsed.problem(ProblemKind::BadValue, token),
                None => parsed.problem(ProblemKind::MissingValue, token),
            },
            "selftest" => match value {
                Some(list) => {
                    for name in list.split(',').filter(|n| !n.is_empty()) {
                        match SelfTests::from_cmdline_name(name) {
                            Some(t) => parsed.options.selftests |= t,
                            None => parsed.problem(ProblemKind::BadValue, name),
                        }
                    }
                }
                None => parsed.problem(ProblemKind::MissingValue, token),
            },
            "ip" => match value.map(parse_cidr) {
                Some(Some(ip)) => parsed.options.ip = Some(ip),
                Some(None) => parsed.problem(ProblemKind::BadValue, token),
                None => parsed.problem(ProblemKind::MissingValue, token),
            },
            "gw" => match value.map(str::parse::<Ipv4Addr>) {
                Some(Ok(gw)) if !gw.is_unspecified() => parsed.options.gateway = Some(gw),
                Some(_) => parsed.problem(ProblemKind::BadValue, token),
                None => parsed.problem(ProblemKind::MissingValue, token),
            },
            "api_port" => match value.map(str::parse::<u16>) {
                Some(Ok(port)) if port != 0 => parsed.options.api_port = port,
                Some(_) => parsed.problem(ProblemKind::BadValue, token),
                None => parsed.problem(ProblemKind::MissingValue, token),
            },
            "virtio_mmio.device" => match value.map(parse_mmio) {
                Some(Some(dev)) => {
                    match parsed.options.virtio_mmio.iter_mut().find(|d| d.is_none()) {
                        Some(slot) => *slot = Some(dev),
                        None => parsed.problem(ProblemKind::BadValue, token),
                    }
                }
                Some(None) => parsed.problem(ProblemKind::BadValue, token),
                None => parsed.problem(ProblemKind::MissingValue, token),
            },
            "bench" => match value {
                None | Some("on") => parsed.options.bench = true,
                Some("off") => parsed.options.bench = false,
                Some(_) => parsed.problem(ProblemKind::BadValue, token),
            },
            _ => parsed.problem(ProblemKind::UnknownOption, token),
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use plinth_testrng::Rng;

    #[test]
    fn empty_line_gives_defaults() {
        let p = parse("");
        assert_eq!(p.options, Options::default());
        assert!(p.problems.is_empty());
    }

    #[test]
    fn log_level_and_selftests() {
        let p = parse("  log=debug selftest=frames,heap   selftest=panic ");
        assert_eq!(p.options.log_level, LogLevel::Debug);
        assert_eq!(
            p.options.selftests,
            SelfTests::FRAMES | SelfTests::HEAP | SelfTests::PANIC
        );
        assert!(p.problems.is_empty());
    }

    #[test]
    fn every_selftest_name_parses() {
        for (name, t) in SelfTests::NAMES {
            let line = std::format!("selftest={name}");
            assert_eq!(parse(&line).options.selftests, t, "{name}");
        }
    }

    #[test]
    fn bad_values_keep_defaults_and_are_reported() {
        let p = parse("log=loud selftest=heap,bogus log quiet=1");
        assert_eq!(p.options.log_level, LogLevel::Info);
        assert_eq!(p.options.selftests, SelfTests::HEAP);
        let kinds: std::vec::Vec<_> = p.problems.iter().map(|x| (x.kind, x.token)).collect();
        assert_eq!(
            kinds,
            [
                (ProblemKind::BadValue, "log=loud"),
                (ProblemKind::BadValue, "bogus"),
                (ProblemKind::MissingValue, "log"),
                (ProblemKind::UnknownOption, "quiet=1"),
            ]
        );
    }

    #[test]
    fn network_options() {
        let p = parse("ip=192.168.7.2/24 gw=192.168.7.1 api_port=9000");
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.options.ip, Some((Ipv4Addr::new(192, 168, 7, 2), 24)));
        assert_eq!(p.options.gateway, Some(Ipv4Addr::new(192, 168, 7, 1)));
        assert_eq!(p.options.api_port, 9000);
        assert!(!p.options.bench);
        assert!(parse("bench").options.bench);
        assert!(parse("bench=on").options.bench);
        assert!(!parse("bench bench=off").options.bench);
        for bad in [
            "ip=10.0.0.1",
            "ip=10.0.0.1/33",
            "ip=10.0.0.1/0",
            "ip=10.0.0/8",
            "ip=0.0.0.0/8",
            "ip=255.255.255.255/32",
            "ip=10.0.0.300/8",
            "gw=nope",
            "gw=0.0.0.0",
            "api_port=0",
            "api_port=65536",
            "api_port=-1",
            "bench=yes",
        ] {
            let p = parse(bad);
            assert_eq!(p.options, Options::default(), "{bad}");
            assert_eq!(p.problems[0].kind, ProblemKind::BadValue, "{bad}");
        }
    }

    #[test]
    fn virtio_mmio_devices_in_linux_syntax() {
        let p = parse(
            "virtio_mmio.device=512@0xfeb00e00:12 virtio_mmio.device=4K@0xd0000000:5 \
             virtio_mmio.device=0x200@0xFEB00C00:11 virtio_mmio.device=512@4272949760:10:3",
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let found: std::vec::Vec<_> = p.options.virtio_mmio.iter().flatten().copied().collect();
        assert_eq!(
            found,
            [
                MmioDevice {
                    base: 0xfeb0_0e00,
                    size: 512,
                    irq: 12
                },
                MmioDevice {
                    base: 0xd000_0000,
                    size: 4096,
                    irq: 5
                },
                MmioDevice {
                    base: 0xfeb0_0c00,
                    size: 512,
                    irq: 11
                },
                MmioDevice {
                    base: 0xfeb0_0a00,
                    size: 512,
                    irq: 10
                },
            ]
        );
        for bad in [
            "virtio_mmio.device=512@feb00e00:12",
            "virtio_mmio.device=512@0xfeb00e00:12:x",
            "virtio_mmio.device=512@0xfeb00e00",
            "virtio_mmio.device=16@0xfeb00e00:12",
            "virtio_mmio.device=512@0x0:12",
            "virtio_mmio.device=512@0xfeb00e00:24",
            "virtio_mmio.device=512@0xffffffffffffffff:1",
            "virtio_mmio.device=99999999999999999999K@0x1000:1",
            "virtio_mmio.device=@0x1000:1",
            "virtio_mmio.device=K@0x1000:1",
        ] {
            let p = parse(bad);
            assert_eq!(p.options, Options::default(), "{bad}");
            assert_eq!(p.problems[0].kind, ProblemKind::BadValue, "{bad}");
        }
        // More than the table holds: the extra ones are reported, the first 8 kept.
        let many = "virtio_mmio.device=512@0x1000:1 ".repeat(MAX_MMIO_DEVICES + 2);
        let p = parse(&many);
        assert!(p.options.virtio_mmio.iter().all(Option::is_some));
        assert_eq!(p.problems.len(), 2);
    }

    #[test]
    fn problems_beyond_capacity_are_counted() {
        let p = parse("a b c d e f g h i j");
        assert_eq!(p.problems.len(), MAX_PROBLEMS);
        assert_eq!(p.dropped_problems, 2);
    }

    #[test]
    fn overlong_line_is_cut_on_a_char_boundary() {
        let mut s = std::string::String::from("log=warn ");
        while s.len() < MAX_LEN + 10 {
            s.push('é');
        }
        let p = parse(&s);
        assert_eq!(p.options.log_level, LogLevel::Warn);
        assert!(p.problems.iter().any(|x| x.kind == ProblemKind::TooLong));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Deterministic, so the case list is the same on every run.
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        let alphabet = b"log=selftest,heapframs \t\n=,=\xc3\xa9x";
        for _ in 0..20_000 {
            let x = rng.next_u64();
            let len = (x % 64) as usize;
            let bytes: std::vec::Vec<u8> = (0..len)
                .map(|i| alphabet[((x >> (i % 60)) as usize + i) % alphabet.len()])
                .collect();
            let s = std::string::String::from_utf8_lossy(&bytes);
            let _ = parse(&s);
        }
    }
}
