//! The memory governor's throttle: how long a partition's `mem_grow` call sleeps once the
//! partition is above its high-water mark (cgroup v2's `memory.high`).
//!
//! The rule is Linux's (`calculate_high_delay` in `mm/memcontrol.c`): the penalty grows
//! with the square of the overage, as a fraction of the mark — 64 s × overage² for a
//! charge of 64 pages, in proportion to the pages charged — and is at most
//! [`MAX_DELAY_NS`]; a penalty of [`NEGLIGIBLE_NS`] or less is not slept at all. So an
//! agent a little over the mark barely notices, one far over it is slowed to a crawl, and
//! the hard quota still refuses at the end. Linux reclaims first and throttles what
//! reclaim could not bring back; the runtime has nothing to reclaim, so it only throttles.
//!
//! Owns that arithmetic only; the runtime decides when a call is over the mark, sleeps
//! the caller and records the event.

/// The longest one call sleeps (Linux's `MEMCG_MAX_HIGH_DELAY_JIFFIES`, 2 s).
pub const MAX_DELAY_NS: u64 = 2_000_000_000;
/// Penalties up to this are not slept (Linux: `HZ / 100`).
pub const NEGLIGIBLE_NS: u64 = 10_000_000;
/// The charge the penalty is scaled to (Linux's `MEMCG_CHARGE_BATCH`), pages.
const BATCH_PAGES: u128 = 64;
/// Fixed-point precision of the overage (Linux's `MEMCG_DELAY_PRECISION_SHIFT`).
const PRECISION_SHIFT: u32 = 20;
/// Linux's `MEMCG_DELAY_SCALING_SHIFT`: overage² / 2^14, i.e. × 64 after the fraction.
const SCALING_SHIFT: u32 = 14;

/// How long a call that charged `charged_pages` sleeps, the partition now using
/// `used_pages` against a mark of `high_pages`: 0 at or under the mark, for a mark of 0,
/// and for a negligible penalty.
pub fn high_delay_ns(used_pages: u64, high_pages: u64, charged_pages: u64) -> u64 {
    if high_pages == 0 || used_pages <= high_pages {
        return 0;
    }
    // Overage as a fraction of the mark, in 2^-20 units; capped so the square cannot
    // overflow (at 2^40, a million times the mark, the delay is long since clamped).
    let overage = ((u128::from(used_pages - high_pages) << PRECISION_SHIFT)
        / u128::from(high_pages))
    .min(1 << 40);
    let penalty = (overage * overage * 1_000_000_000) >> (PRECISION_SHIFT + SCALING_SHIFT);
    let penalty = penalty.saturating_mul(u128::from(charged_pages)) / BATCH_PAGES;
    let penalty = u64::try_from(penalty).unwrap_or(u64::MAX).min(MAX_DELAY_NS);
    if penalty <= NEGLIGIBLE_NS { 0 } else { penalty }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn nothing_at_or_under_the_mark() {
        assert_eq!(high_delay_ns(100, 100, 64), 0);
        assert_eq!(high_delay_ns(50, 100, 1 << 30), 0);
        assert_eq!(high_delay_ns(u64::MAX, 0, 64), 0);
    }

    #[test]
    fn the_penalty_grows_with_the_square_of_the_overage() {
        // A mark of 4096 pages (16 MiB), 1 MiB (256 pages) charged at a time.
        let d = |used| high_delay_ns(used, 4096, 256);
        // 1/16 over: 64 s / 256 × 4 = 1 s.
        assert_eq!(d(4096 + 256), 1000 * MS);
        // 1/32 over: a quarter of that.
        assert_eq!(d(4096 + 128), 250 * MS);
        // Far over: the 2 s most.
        assert_eq!(d(4096 * 2), MAX_DELAY_NS);
        assert_eq!(d(u64::MAX), MAX_DELAY_NS);
        // Just over: negligible, not slept.
        assert_eq!(d(4097), 0);
    }

    #[test]
    fn the_penalty_is_in_proportion_to_the_charge() {
        let one = high_delay_ns(4096 + 256, 4096, 64);
        assert_eq!(one, 250 * MS);
        assert_eq!(high_delay_ns(4096 + 256, 4096, 128), 2 * one);
        // A one-page charge owes a sixty-fourth: under 10 ms, so nothing.
        assert_eq!(high_delay_ns(4096 + 256, 4096, 1), 0);
    }

    #[test]
    fn no_overflow_anywhere() {
        for used in [0, 1, u64::MAX / 2, u64::MAX] {
            for high in [0, 1, u64::MAX - 1] {
                for charged in [0, 1, u64::MAX] {
                    assert!(high_delay_ns(used, high, charged) <= MAX_DELAY_NS);
                }
            }
        }
    }
}
