//! `bench`: measures the runtime's system-call door from inside an agent.
//!
//! Demonstrates the cost of the ABI as an agent sees it. `etc/bench.toml` picks the mode:
//! - `mode = "null"`: 41 batches of 20 000 `null` calls, each batch timed with the
//!   runtime's clock; logs `bench: null syscall median N.N ns (min M.M, max X.X) over
//!   41 batches of 20000` and exits 0.
//! - `mode = "switch"`: yields in a loop for `seconds` (default 3); with a second
//!   `switch` agent in another partition every yield is a switch between partitions
//!   (address spaces included). Logs `bench: switch yields Y in T ns` and exits 0.
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
