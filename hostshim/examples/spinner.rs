//! `spinner`: an agent that never stops computing.
//!
//! Demonstrates a CPU-bound agent that never yields: the runtime must preempt it to keep
//! other agents running and charge it for its CPU time. It burns a multiply-add loop in
//! batches of 2^20 iterations, checks the clock after each batch, and once per second
//! logs `spinner: N loops in the last second` and heartbeats (so it is alive, just busy).
#![cfg_attr(not(feature = "host"), no_std, no_main)]

use core::hint::black_box;

use hostshim::logf;

hostshim::entry!(run);

/// Iterations between clock checks.
const BATCH: u64 = 1 << 20;
/// Nanoseconds per report.
const SECOND_NS: u64 = 1_000_000_000;

fn run() -> i32 {
    let mut x = 0x853c_49e6_748f_ea9b_u64;
    let mut loops = 0u64;
    let mut window_start = hostshim::clock_ns();
    loop {
        for _ in 0..BATCH {
            // An LCG step; `black_box` keeps the compiler from folding the loop away.
            x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        loops += BATCH;
        let now = hostshim::clock_ns();
        let elapsed = now.saturating_sub(window_start);
        if elapsed >= SECOND_NS {
            // Scaled to exactly one second; u128 so the product cannot overflow.
            let per_second = u128::from(loops) * u128::from(SECOND_NS) / u128::from(elapsed);
            logf!("spinner: {per_second} loops in the last second");
            hostshim::heartbeat();
            loops = 0;
            window_start = now;
        }
    }
}
