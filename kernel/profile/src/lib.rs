//! The profiler's windows: what an agent or a partition used, second by second, over the
//! last minute, read as averages and peaks over 1 s, 10 s and 60 s — what `top` shows
//! and what a manifest's predicted footprint (average and peak) is compared with.
//!
//! - [`Counter`]: a total that only grows (CPU nanoseconds, system calls, disk requests,
//!   bytes). [`Counter::sample`] is given the total once a second and keeps the increase.
//!   A total that went back (a counter that was reset) counts from zero again rather
//!   than wrapping.
//! - [`Gauge`]: a level (memory in use), sampled as it is.
//!
//! Both keep [`SECONDS`] samples in a ring, no allocation. [`Stat`] is a window's average
//! and peak per sample; a window longer than the samples taken covers those there are.
//!
//! What it must not touch: no clock, no runtime state. The runtime samples once a second
//! (its run loop) and reads windows for the API.
#![no_std]
#![forbid(unsafe_code)]

/// Samples kept: one minute of seconds.
pub const SECONDS: usize = 60;

/// The windows the API reports, seconds.
pub const WINDOWS: [usize; 3] = [1, 10, 60];

/// A window's average and peak per sample (per second, for a counter sampled each
/// second), over `samples` samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stat {
    pub avg: f64,
    pub peak: u64,
    pub samples: usize,
}

/// A ring of the last [`SECONDS`] samples.
#[derive(Clone, Debug)]
struct Ring {
    values: [u64; SECONDS],
    /// Samples held (up to [`SECONDS`]).
    len: usize,
    /// Where the next goes.
    next: usize,
}

impl Default for Ring {
    fn default() -> Ring {
        Ring {
            values: [0; SECONDS],
            len: 0,
            next: 0,
        }
    }
}

impl Ring {
    fn push(&mut self, v: u64) {
        self.values[self.next] = v;
        self.next = (self.next + 1) % SECONDS;
        self.len = (self.len + 1).min(SECONDS);
    }

    /// The last `n` samples' average and peak; `None` before the first.
    fn window(&self, n: usize) -> Option<Stat> {
        let n = n.min(self.len);
        if n == 0 {
            return None;
        }
        let (mut sum, mut peak) = (0u128, 0u64);
        for i in 0..n {
            let v = self.values[(self.next + SECONDS - 1 - i) % SECONDS];
            sum += u128::from(v);
            peak = peak.max(v);
        }
        Some(Stat {
            avg: sum as f64 / n as f64,
            peak,
            samples: n,
        })
    }
}

/// A growing total's increase per sample.
#[derive(Clone, Debug, Default)]
pub struct Counter {
    ring: Ring,
    last: Option<u64>,
}

impl Counter {
    /// Records `total` now: the increase since the last sample (the first sample only
    /// sets the starting point).
    pub fn sample(&mut self, total: u64) {
        self.sample_over(total, 1_000_000_000);
    }

    /// Records `total`, `elapsed_ns` after the last sample: the increase scaled to one
    /// second, so a sample taken late does not read as a faster rate.
    pub fn sample_over(&mut self, total: u64, elapsed_ns: u64) {
        if let Some(last) = self.last {
            // A total below the last was reset: it counted from zero since.
            let delta = if total >= last { total - last } else { total };
            let per_second = match elapsed_ns {
                0 | 1_000_000_000 => delta,
                ns => u64::try_from(u128::from(delta) * 1_000_000_000 / u128::from(ns))
                    .unwrap_or(u64::MAX),
            };
            self.ring.push(per_second);
        }
        self.last = Some(total);
    }

    /// The increase per sample over the last `n` samples.
    pub fn window(&self, n: usize) -> Option<Stat> {
        self.ring.window(n)
    }
}

/// A level, sampled as it is.
#[derive(Clone, Debug, Default)]
pub struct Gauge {
    ring: Ring,
}

impl Gauge {
    pub fn sample(&mut self, value: u64) {
        self.ring.push(value);
    }

    /// The level's average and peak over the last `n` samples.
    pub fn window(&self, n: usize) -> Option<Stat> {
        self.ring.window(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_reports_increases_per_sample() {
        let mut c = Counter::default();
        assert_eq!(c.window(1), None);
        c.sample(100);
        assert_eq!(c.window(1), None, "the first sample only starts the count");
        for t in [110, 130, 160, 200] {
            c.sample(t);
        }
        let one = c.window(1).unwrap();
        assert_eq!((one.avg, one.peak, one.samples), (40.0, 40, 1));
        let ten = c.window(10).unwrap();
        // 10, 20, 30, 40: a window longer than the samples covers those there are.
        assert_eq!((ten.avg, ten.peak, ten.samples), (25.0, 40, 4));
    }

    #[test]
    fn a_late_sample_is_scaled_to_a_second() {
        let mut c = Counter::default();
        c.sample_over(0, 0);
        c.sample_over(1100, 1_100_000_000);
        c.sample_over(2000, 900_000_000);
        let w = c.window(2).unwrap();
        assert_eq!((w.avg, w.peak), (1000.0, 1000));
    }

    #[test]
    fn a_reset_counts_from_zero_not_backwards() {
        let mut c = Counter::default();
        c.sample(1000);
        c.sample(1500);
        c.sample(200); // reset: 200 since
        let w = c.window(2).unwrap();
        assert_eq!((w.avg, w.peak), (350.0, 500));
    }

    #[test]
    fn the_ring_keeps_the_last_minute() {
        let mut c = Counter::default();
        c.sample(0);
        // 100 seconds: the per-second increase is the second's number.
        let mut total = 0;
        for s in 1..=100u64 {
            total += s;
            c.sample(total);
        }
        let m = c.window(60).unwrap();
        assert_eq!(m.samples, 60);
        assert_eq!(m.peak, 100);
        // 41..=100 averages 70.5.
        assert_eq!(m.avg, 70.5);
        assert_eq!(c.window(1000).unwrap().samples, 60);
        let t = c.window(10).unwrap();
        assert_eq!((t.avg, t.peak), (95.5, 100));
    }

    #[test]
    fn a_gauge_keeps_levels() {
        let mut g = Gauge::default();
        for v in [4, 8, 6] {
            g.sample(v);
        }
        let w = g.window(10).unwrap();
        assert_eq!((w.avg, w.peak, w.samples), (6.0, 8, 3));
        assert_eq!(g.window(1).unwrap().peak, 6);
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut c = Counter::default();
        c.sample(0);
        for _ in 0..SECONDS {
            c.sample(u64::MAX);
            c.sample(0);
        }
        let w = c.window(60).unwrap();
        assert_eq!(w.peak, u64::MAX);
        assert!(w.avg > 0.0);
    }
}
