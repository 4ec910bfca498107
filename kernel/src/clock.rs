//! Monotonic time since kernel entry, from the TSC calibrated against the PIT.
//!
//! Owns the TSC rate and the tick counter. It must not program hardware; `main` does the
//! calibration and hands the result here.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::cpu::rdtsc;

static ENTRY_TSC: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC count, scaled by 2^32.
static NS_PER_TSC_2_32: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);

/// Starts the clock: time 0 is `entry_tsc`; `tsc_hz` is the calibrated TSC rate.
pub fn init(entry_tsc: u64, tsc_hz: u64) {
    let hz = tsc_hz.max(1);
    ENTRY_TSC.store(entry_tsc, Ordering::Relaxed);
    // 1e9 * 2^32 fits in u64 (about 4.3e18 < 1.8e19); dividing by hz >= 1 keeps it in range.
    NS_PER_TSC_2_32.store((1_000_000_000u64 << 32) / hz, Ordering::Relaxed);
}

/// Nanoseconds between kernel entry and TSC value `tsc` (0 before `init`).
pub fn tsc_to_ns_since_entry(tsc: u64) -> u64 {
    let delta = tsc.saturating_sub(ENTRY_TSC.load(Ordering::Relaxed));
    // delta < 2^64 and the factor < 2^63, so the product fits in u128.
    ((u128::from(delta) * u128::from(NS_PER_TSC_2_32.load(Ordering::Relaxed))) >> 32) as u64
}

/// Nanoseconds since kernel entry.
pub fn now_ns() -> u64 {
    tsc_to_ns_since_entry(rdtsc())
}

/// Called from the timer interrupt.
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Timer interrupts taken since the timer started.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Displays nanoseconds as milliseconds with three decimals (`12.345`), without floats.
pub struct Millis(pub u64);

impl core::fmt::Display for Millis {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1_000_000, (self.0 / 1_000) % 1_000)
    }
}
