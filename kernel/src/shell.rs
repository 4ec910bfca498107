//! The console's commands: what a typed line asks for (`help`, `status`, `disks`,
//! `disk sum|fill`, `bench blk`, `shutdown`), and doing it.
//!
//! Owns parsing and running commands; the console owns reading the line and printing.
//! It must not keep state between commands. A command that waits on a disk gets `serve`
//! to call meanwhile, so the management API keeps answering during a long one.

use heapless::String;
use plinth_exit::ExitCode;

use crate::clock::Millis;
use crate::console::{Input, MAX_COMMAND};
use crate::{arch, bench, block, clock, memory, println};

/// A command typed on the console.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Stop the runtime cleanly (exit code `Success`).
    Shutdown,
    /// Print uptime and memory.
    Status,
    /// List commands.
    Help,
    /// List the disks.
    Disks,
    /// Checksum `count` sectors of a disk from `first`.
    DiskSum { disk: usize, first: u64, count: u64 },
    /// Write the test pattern for `seed` over `count` sectors from `first`, then flush.
    DiskFill {
        disk: usize,
        first: u64,
        count: u64,
        seed: u64,
    },
    /// Benchmark disk `disk` in the runtime: see [`bench::blk`].
    BenchBlk(bench::BlkParams),
    /// Time frames through a private bridge: see [`bench::bridge`].
    BenchBridge(u64),
    /// A known command with missing or malformed arguments (its usage is echoed).
    Usage(&'static str),
    /// Anything else (the line is echoed in the error).
    Unknown(String<MAX_COMMAND>),
    /// The line exceeded [`MAX_COMMAND`] bytes and was dropped.
    TooLong,
}

impl Command {
    /// What a line typed on the console asks for; `None` for a blank line.
    pub fn from_input(input: &Input) -> Option<Command> {
        match input {
            Input::Line(line) => Command::parse(line),
            Input::TooLong => Some(Command::TooLong),
        }
    }
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
            "disks" => Command::Disks,
            _ if line.starts_with("disk ") => Self::parse_disk(line),
            _ if line.starts_with("bench ") => Self::parse_bench(line),
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

impl Command {
    fn parse_disk(line: &str) -> Command {
        let mut words = line.split_whitespace().skip(1);
        let verb = words.next();
        let mut nums = [0u64; 4];
        let mut given = 0;
        for (slot, w) in nums.iter_mut().zip(words.by_ref()) {
            match w.parse() {
                Ok(v) => *slot = v,
                Err(_) => return Command::Usage(DISK_USAGE),
            }
            given += 1;
        }
        let extra = words.next().is_some();
        let disk = usize::try_from(nums[0]).unwrap_or(usize::MAX);
        match (verb, given, extra) {
            (Some("sum"), 3, false) => Command::DiskSum {
                disk,
                first: nums[1],
                count: nums[2],
            },
            (Some("fill"), 4, false) => Command::DiskFill {
                disk,
                first: nums[1],
                count: nums[2],
                seed: nums[3],
            },
            _ => Command::Usage(DISK_USAGE),
        }
    }
}

impl Command {
    fn parse_bench(line: &str) -> Command {
        let mut words = line.split_whitespace().skip(1);
        match words.next() {
            Some("blk") => {}
            Some("bridge") => {
                return match (words.next().map(str::parse::<u64>), words.next()) {
                    (None, None) => Command::BenchBridge(20_000),
                    (Some(Ok(n)), None) if (1..=10_000_000).contains(&n) => Command::BenchBridge(n),
                    _ => Command::Usage(BENCH_USAGE),
                };
            }
            _ => return Command::Usage(BENCH_USAGE),
        }
        // disk, region MiB, request KiB, depth, random reads; defaults after the disk.
        let mut nums = [0u64, 64, 1024, 4, 4000];
        let mut given = 0;
        for (slot, w) in nums.iter_mut().zip(words.by_ref()) {
            match w.parse() {
                Ok(v) => *slot = v,
                Err(_) => return Command::Usage(BENCH_USAGE),
            }
            given += 1;
        }
        // Region, request size and depth must be at least 1 (random reads may be 0).
        if given == 0 || words.next().is_some() || nums[1..4].contains(&0) {
            return Command::Usage(BENCH_USAGE);
        }
        let (Some(region), Some(request), Ok(depth)) = (
            nums[1].checked_mul(1 << 20),
            nums[2].checked_mul(1 << 10),
            usize::try_from(nums[3]),
        ) else {
            return Command::Usage(BENCH_USAGE);
        };
        Command::BenchBlk(bench::BlkParams {
            disk: usize::try_from(nums[0]).unwrap_or(usize::MAX),
            region,
            request,
            depth,
            random_reads: nums[4],
        })
    }
}

const BENCH_USAGE: &str =
    "bench blk N [REGION_MIB [REQUEST_KIB [DEPTH [RANDOM_READS]]]] | bench bridge [FRAMES]";

const DISK_USAGE: &str = "disk sum N FIRST COUNT | disk fill N FIRST COUNT SEED";

/// Runs `cmd`, printing its answer; `serve` runs whenever it waits on a disk.
pub fn run(cmd: Command, serve: &mut dyn FnMut()) {
    match cmd {
        Command::Shutdown => {
            // Usage since the last record is on the disk before the machine stops.
            crate::partition::save_usage(serve);
            println!("plinth: shutting down");
            arch::exit::exit(ExitCode::Success);
        }
        Command::Status => {
            let (free, usable) = memory::frame_counts();
            let (heap_used, heap_size) = arch::heap::usage();
            println!(
                "status: uptime {} ms, ticks {}, unix time {}, frames {free}/{usable} free, heap {heap_used}/{heap_size} bytes used",
                Millis(clock::now_ns()),
                clock::ticks(),
                UnixTime(clock::unix_now())
            );
        }
        Command::Help => println!(
            "commands: status, disks, disk sum N FIRST COUNT, disk fill N FIRST COUNT SEED, bench blk N [REGION_MIB [REQUEST_KIB [DEPTH [RANDOM_READS]]]], bench bridge [FRAMES], shutdown, help"
        ),
        Command::Disks => {
            let mut any = false;
            block::for_each_disk(|name, at, sectors, serial| {
                any = true;
                println!("disk {name}: at {at}, {sectors} sectors, serial \"{serial}\"");
            });
            if !any {
                println!("no disks");
            }
        }
        Command::DiskSum { disk, first, count } => {
            let mut hash = plinth_diskcheck::Fnv1a::new();
            match block::with_sectors(
                disk,
                first,
                count,
                false,
                |_, chunk| hash.update(chunk),
                serve,
            ) {
                Ok(()) => println!(
                    "disk sum {disk} {first} {count}: fnv1a64 {:016x}",
                    hash.finish()
                ),
                Err(e) => println!("disk sum {disk} {first} {count}: error: {e}"),
            }
        }
        Command::DiskFill {
            disk,
            first,
            count,
            seed,
        } => {
            let r = block::with_sectors(
                disk,
                first,
                count,
                true,
                |offset, chunk| plinth_diskcheck::fill(seed, offset, chunk),
                serve,
            );
            match r {
                Ok(()) => println!("disk fill {disk} {first} {count} {seed}: written and flushed"),
                Err(e) => println!("disk fill {disk} {first} {count} {seed}: error: {e}"),
            }
        }
        Command::BenchBlk(p) => bench_blk(&p, serve),
        Command::BenchBridge(n) => {
            let f = bench::bridge(n);
            let fps = |ns: u64| 1_000_000_000 / ns.max(1);
            println!(
                "bench bridge: frames={} forward_64b_ns={} forward_1500b_ns={} (64 B: {} frames/s, 1500 B: {} frames/s)",
                f.frames,
                f.ns_64,
                f.ns_1500,
                fps(f.ns_64),
                fps(f.ns_1500)
            );
        }
        Command::Unknown(s) => println!("unknown command \"{s}\" (try help)"),
        Command::TooLong => println!("command too long (max {} bytes)", MAX_COMMAND),
        Command::Usage(usage) => println!("usage: {usage}"),
    }
}

/// Runs the disk benchmark and prints its figures on one `key=value` line.
fn bench_blk(p: &bench::BlkParams, serve: &mut dyn FnMut()) {
    // Memory for `depth` requests in flight, plus room for everything else.
    let (used, size) = arch::heap::usage();
    let needed = p.request.saturating_mul(p.depth as u64);
    if needed > (size - used) as u64 / 2 {
        println!(
            "bench blk {}: error: {} requests of {} KiB need more than half the free heap ({} KiB)",
            p.disk,
            p.depth,
            p.request >> 10,
            (size - used) >> 10
        );
        return;
    }
    match bench::blk(p, serve) {
        Ok(f) => {
            let region = p.region / p.request * p.request;
            println!(
                "bench blk {}: region={} request={} depth={} write_ns={} flush_ns={} read_ns={} random_reads={} random_ns={} (write {} MiB/s, read {} MiB/s, 4 KiB random read {} IOPS)",
                p.disk,
                region,
                p.request,
                p.depth,
                f.write_ns,
                f.flush_ns,
                f.read_ns,
                p.random_reads,
                f.random_ns,
                bench::Rate(region, f.write_ns),
                bench::Rate(region, f.read_ns),
                u128::from(p.random_reads) * 1_000_000_000 / u128::from(f.random_ns.max(1))
            );
        }
        Err(e) => println!("bench blk {}: error: {e}", p.disk),
    }
}

/// Unix seconds, or `unknown` without a wall clock.
struct UnixTime(Option<u64>);

impl core::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("unknown"),
        }
    }
}
