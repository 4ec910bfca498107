//! `bench`: measures the runtime's system-call door from inside an agent.
//!
//! Demonstrates the cost of the ABI as an agent sees it. `etc/bench.toml` picks the mode:
//! - `mode = "null"`: 41 batches of 20 000 `null` calls, each batch timed with the
//!   runtime's clock; logs `bench: null syscall median N.N ns (min M.M, max X.X) over
//!   41 batches of 20000` and exits 0.
//! - `mode = "switch"`: yields in a loop for `seconds` (default 3); with a second
//!   `switch` agent in another partition every yield is a switch between partitions
//!   (address spaces included). Logs `bench: switch yields Y in T ns` and exits 0.
//! - `mode = "calls"`: times single calls that do work — `heartbeat`, `log64` (a 64-byte
//!   line), `config_read64` (64 bytes of this container's config), `disk_read4k` (4 KiB
//!   of the partition's disk, the same block each time so the host's cache is hot) —
//!   and `null` beside them, one call per sample (`samples`, default 20 000; `log_samples`
//!   and `disk_samples`, default 2 000), with the time-stamp counter read around each
//!   call (its own cost, the median of empty pairs, subtracted; its rate related to the
//!   runtime's clock over the whole run). Logs `bench: call NAME median_ns M p99_ns P
//!   samples N` per call, then `bench: calls done`, and exits 0.
#![cfg_attr(not(feature = "host"), no_std, no_main)]

use hostshim::{config, logf};

hostshim::entry!(run);

const CONFIG: &str = "etc/bench.toml";
const BATCHES: usize = 41;
const PER_BATCH: u64 = 20_000;

fn run() -> i32 {
    let mut buf = [0u8; 512];
    let text = match hostshim::config_read(CONFIG, 0, &mut buf) {
        Ok(n) => core::str::from_utf8(&buf[..n]).unwrap_or(""),
        Err(_) => "",
    };
    match config::value(text, "mode").unwrap_or("null") {
        "null" => null(),
        "switch" => switch(config::number(text, "seconds").unwrap_or(3)),
        "calls" => calls(
            config::number(text, "samples").unwrap_or(20_000),
            config::number(text, "log_samples").unwrap_or(2_000),
            config::number(text, "disk_samples").unwrap_or(2_000),
        ),
        other => {
            logf!("bench: unknown mode `{other}`");
            2
        }
    }
}

fn null() -> i32 {
    let mut per_call = [0u64; BATCHES];
    for slot in per_call.iter_mut() {
        let start = hostshim::clock_ns();
        for _ in 0..PER_BATCH {
            hostshim::null();
        }
        // Picoseconds per call, so the median keeps a decimal digit.
        *slot = (hostshim::clock_ns() - start) * 1000 / PER_BATCH;
    }
    per_call.sort_unstable();
    let ns = |ps: u64| (ps / 1000, ps % 1000 / 100);
    let (m, md) = ns(per_call[BATCHES / 2]);
    let (lo, lod) = ns(per_call[0]);
    let (hi, hid) = ns(per_call[BATCHES - 1]);
    logf!(
        "bench: null syscall median {m}.{md} ns (min {lo}.{lod}, max {hi}.{hid}) over {BATCHES} batches of {PER_BATCH}"
    );
    0
}

fn switch(seconds: u64) -> i32 {
    let start = hostshim::clock_ns();
    let end = start + seconds * 1_000_000_000;
    let mut yields = 0u64;
    let mut now = start;
    while now < end {
        for _ in 0..100 {
            hostshim::yield_now();
        }
        yields += 100;
        now = hostshim::clock_ns();
    }
    logf!("bench: switch yields {yields} in {} ns", now - start);
    0
}

/// What one timed sample calls.
#[derive(Clone, Copy)]
enum Kind {
    Null,
    Heartbeat,
    Log64,
    ConfigRead64,
    DiskRead4k,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Heartbeat => "heartbeat",
            Kind::Log64 => "log64",
            Kind::ConfigRead64 => "config_read64",
            Kind::DiskRead4k => "disk_read4k",
        }
    }
}

/// A 64-byte log line.
const LINE64: &str = "bench: log64 ...................................................";
const _: () = assert!(LINE64.len() == 64);

/// Samples per call kind at most: 40 KB of the agent's 64 KiB stack.
const MAX_SAMPLES: usize = 10_000;

fn calls(samples: u64, log_samples: u64, disk_samples: u64) -> i32 {
    // Ticks per sample; a call longer than 2^32 ticks (a second or more) saturates.
    let mut times = [0u32; MAX_SAMPLES];
    let mut block = [0u8; 4096];
    let mut small = [0u8; 64];
    if hostshim::disk_read(0, &mut block).is_err() {
        logf!("bench: no disk to read");
        return 4;
    }
    let (c0, n0) = (hostshim::ticks(), hostshim::clock_ns());
    // What reading the counter twice costs, to take off each sample.
    let overhead = {
        let t = &mut times[..2_000];
        for slot in t.iter_mut() {
            let a = hostshim::ticks();
            *slot = ticks32(hostshim::ticks() - a);
        }
        t.sort_unstable();
        t[t.len() / 2]
    };
    let mut results = [(Kind::Null, 0u32, 0u32, 0usize); 5];
    for (i, kind) in [
        Kind::Null,
        Kind::Heartbeat,
        Kind::Log64,
        Kind::ConfigRead64,
        Kind::DiskRead4k,
    ]
    .into_iter()
    .enumerate()
    {
        let n = usize::try_from(match kind {
            Kind::Log64 => log_samples,
            Kind::DiskRead4k => disk_samples,
            _ => samples,
        })
        .unwrap_or(MAX_SAMPLES)
        .clamp(1, MAX_SAMPLES);
        let call = |block: &mut [u8; 4096], small: &mut [u8; 64]| match kind {
            Kind::Null => {
                hostshim::null();
            }
            Kind::Heartbeat => {
                hostshim::heartbeat();
            }
            Kind::Log64 => hostshim::log(LINE64),
            Kind::ConfigRead64 => {
                let _ = hostshim::config_read(CONFIG, 0, small);
            }
            Kind::DiskRead4k => {
                let _ = hostshim::disk_read(0, block);
            }
        };
        // Warm up: code translated, caches and the host's page cache hot.
        for _ in 0..100 {
            call(&mut block, &mut small);
        }
        for slot in times[..n].iter_mut() {
            let a = hostshim::ticks();
            call(&mut block, &mut small);
            *slot = ticks32(hostshim::ticks() - a).saturating_sub(overhead);
        }
        let t = &mut times[..n];
        t.sort_unstable();
        results[i] = (kind, t[n / 2], t[(n * 99 / 100).min(n - 1)], n);
    }
    let (c1, n1) = (hostshim::ticks(), hostshim::clock_ns());
    // Picoseconds per tick, from the whole run.
    let ps_per_tick = (n1 - n0) * 1000 / (c1 - c0).max(1);
    let ns = |ticks: u32| {
        let ps = u64::from(ticks) * ps_per_tick;
        (ps / 1000, ps % 1000 / 100)
    };
    // Let the log lines of the log64 samples drain before the results are logged.
    hostshim::sleep_ms(200);
    let (o, od) = ns(overhead);
    logf!("bench: calls tick_ps {ps_per_tick} overhead_ns {o}.{od} subtracted");
    for (kind, median, p99, n) in results {
        let (m, md) = ns(median);
        let (p, pd) = ns(p99);
        logf!(
            "bench: call {} median_ns {m}.{md} p99_ns {p}.{pd} samples {n}",
            kind.name()
        );
    }
    logf!("bench: calls done");
    0
}

fn ticks32(t: u64) -> u32 {
    u32::try_from(t).unwrap_or(u32::MAX)
}
