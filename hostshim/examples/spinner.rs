//! `spinner`: an agent that never stops computing.
//!
//! Demonstrates a CPU-bound agent that never yields: the runtime must preempt it to keep
//! other agents running and charge it for its CPU time. It burns a multiply-add loop in
//! batches of 2^20 iterations, timing each batch with the clock, and every quarter of a
//! second logs `spinner: N loops by T ns, median batch M ns` and heartbeats (so it is
//! alive, just busy).
//!
//! N is every iteration since the agent started and T its own clock reading (ns since the
//! runtime booted), both cumulative, so the work done between any two reports is known
//! whatever was lost in between. M is the median time one batch took since the last
//! report: how fast the agent runs while it runs (a batch cut by preemption takes far
//! longer, and a median ignores those few). So `(N2 - N1) / 2^20 * M` is about how long
//! it ran between two reports, by its own account and independently of the runtime's
//! ledger: the end-to-end tests check CPU shares against it.
#![cfg_attr(not(feature = "host"), no_std, no_main)]

use core::hint::black_box;

use hostshim::logf;

hostshim::entry!(run);

/// Iterations per batch (between clock readings).
const BATCH: u64 = 1 << 20;
/// Nanoseconds between reports: often enough that a test's window of a few seconds is
/// bracketed closely by reports, rarely enough that logging costs nothing measurable.
const REPORT_NS: u64 = 250_000_000;
/// Batch times kept per report for the median. Batches take milliseconds under TCG (a
/// few hundred per report); on a fast machine the first this many are a fair sample.
const KEPT: usize = 512;

fn run() -> i32 {
    let mut x = 0x853c_49e6_748f_ea9b_u64;
    let mut loops = 0u64;
    let mut times = [0u64; KEPT];
    let mut timed = 0;
    let mut last_report = hostshim::clock_ns();
    let mut batch_start = last_report;
    loop {
        for _ in 0..BATCH {
            // An LCG step; `black_box` keeps the compiler from folding the loop away.
            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        // 2^64 iterations would take centuries at any speed: no overflow.
        loops += BATCH;
        let now = hostshim::clock_ns();
        if timed < KEPT {
            times[timed] = now.saturating_sub(batch_start);
            timed += 1;
        }
        batch_start = now;
        if now.saturating_sub(last_report) >= REPORT_NS {
            let kept = &mut times[..timed];
            kept.sort_unstable();
            // At least one batch ran since the last report: `timed >= 1`.
            let median = kept[timed / 2];
            logf!("spinner: {loops} loops by {now} ns, median batch {median} ns");
            hostshim::heartbeat();
            timed = 0;
            last_report = now;
            // The report's own time is not a batch's.
            batch_start = hostshim::clock_ns();
        }
    }
}
