//! `ioload`: an agent that keeps its partition's data disk as busy as it is allowed to.
//!
//! Demonstrates the disk governor from the inside: it issues one request after another
//! (each call blocks until the request completes, so one is in flight at a time), and
//! what it achieves is whatever its partition's and its own disk budgets allow. From
//! `etc/ioload.toml`:
//! - `op`: `"read"` (default) or `"write"`;
//! - `bytes`: each request's size, a whole number of 512-byte sectors up to 64 KiB
//!   (default 4096);
//! - `span_sectors`: the requests walk the first this many sectors of the disk in order
//!   and wrap (default: the whole disk);
//! - `count`: stop after this many requests (default: never), log `ioload: done N
//!   requests, B bytes`, then exit with `exit` (default: sleep, heartbeating, for good) —
//!   a workload of known size, for metering.
//!
//! - `interval_ms`: a service's pace rather than a hog's: one request each this many
//!   milliseconds (default 0: back to back). Paced, it also logs each second the
//!   latencies of that second's requests as its caller saw them (from the call to its
//!   return, waiting for the CPU included), in microseconds: how many, the median and
//!   the 20 longest, longest first — `ioload: latency us n=N p50=M top T1 T2 …` — so
//!   that percentiles up to the 99th can be had exactly across seconds, at a line a
//!   second.
//!
//! Every second it logs `ioload: N requests, B bytes in T ms` (its own count, since
//! start) and heartbeats. Exit codes: 2 without a disk, 3 on a bad config, 4 if a call
//! fails.
#![cfg_attr(not(feature = "host"), no_std, no_main)]

use hostshim::abi::{MAX_IO, SECTOR_SIZE};
use hostshim::{config, logf};

hostshim::entry!(run);

const CONFIG: &str = "etc/ioload.toml";

fn run() -> i32 {
    let mut text = [0u8; 256];
    let text = match hostshim::config_read(CONFIG, 0, &mut text) {
        Ok(n) => core::str::from_utf8(&text[..n]).unwrap_or(""),
        Err(_) => "",
    };
    let write = match config::value(text, "op").unwrap_or("read") {
        "read" => false,
        "write" => true,
        other => {
            logf!("ioload: op must be read or write, not {other}");
            return 3;
        }
    };
    let bytes = config::number(text, "bytes").unwrap_or(4096);
    if bytes == 0 || bytes > MAX_IO || !bytes.is_multiple_of(SECTOR_SIZE) {
        logf!("ioload: bytes must be 512 to {MAX_IO} in whole sectors, not {bytes}");
        return 3;
    }
    let sectors = match hostshim::disk_sectors() {
        Ok(n) => n,
        Err(e) => {
            logf!("ioload: no data disk ({e}); exiting");
            return 2;
        }
    };
    let per = bytes / SECTOR_SIZE;
    let span = config::number(text, "span_sectors")
        .unwrap_or(sectors)
        .min(sectors);
    if span < per {
        logf!("ioload: the span ({span} sectors) is smaller than one request");
        return 3;
    }
    let buf = match hostshim::mem_grow(bytes) {
        Ok(b) => &mut b[..bytes as usize],
        Err(e) => {
            logf!("ioload: cannot get a {bytes}-byte buffer ({e})");
            return 4;
        }
    };
    logf!(
        "ioload: {} {bytes}-byte requests over {span} sectors",
        if write { "write" } else { "read" }
    );
    let count = config::number(text, "count");
    let exit = config::number(text, "exit");
    let interval_ns = config::number(text, "interval_ms").unwrap_or(0) * 1_000_000;
    let start = hostshim::clock_ns();
    let mut next_report = start + 1_000_000_000;
    let mut next_request = start;
    let (mut done, mut moved, mut at) = (0u64, 0u64, 0u64);
    // One second's latencies: at most a request a millisecond.
    let mut latencies = [0u32; 1000];
    let mut measured = 0usize;
    loop {
        if at + per > span {
            at = 0;
        }
        if interval_ns > 0 {
            let now = hostshim::clock_ns();
            if now < next_request {
                hostshim::sleep_ms((next_request - now).div_ceil(1_000_000));
            }
            next_request = next_request.max(now) + interval_ns;
        }
        let began = hostshim::clock_ns();
        let result = if write {
            buf[..8].copy_from_slice(&done.to_le_bytes());
            hostshim::disk_write(at, buf)
        } else {
            hostshim::disk_read(at, buf)
        };
        if let Err(e) = result {
            logf!("ioload: request at sector {at} failed: {e}");
            return 4;
        }
        if interval_ns > 0 && measured < latencies.len() {
            let us = (hostshim::clock_ns() - began) / 1000;
            latencies[measured] = u32::try_from(us).unwrap_or(u32::MAX);
            measured += 1;
        }
        done += 1;
        moved += bytes;
        at += per;
        if count == Some(done) {
            logf!("ioload: done {done} requests, {moved} bytes");
            match exit {
                Some(code) => return code as i32,
                None => loop {
                    hostshim::heartbeat();
                    hostshim::sleep_ms(1000);
                },
            }
        }
        let now = hostshim::clock_ns();
        if now >= next_report {
            logf!(
                "ioload: {done} requests, {moved} bytes in {} ms",
                (now - start) / 1_000_000
            );
            if measured > 0 {
                log_latencies(&mut latencies[..measured]);
                measured = 0;
            }
            hostshim::heartbeat();
            next_report += 1_000_000_000;
        }
    }
}

/// Longest latencies of a second logged.
const TOP: usize = 20;

/// One second's latencies in microseconds as one line: count, median, the longest.
fn log_latencies(us: &mut [u32]) {
    us.sort_unstable_by(|a, b| b.cmp(a));
    let mut line = hostshim::LogLine::new();
    for l in us.iter().take(TOP) {
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!(" {l}"));
    }
    logf!(
        "ioload: latency us n={} p50={} top{}",
        us.len(),
        us[us.len() / 2],
        line.as_str()
    );
}
