//! Deterministic pseudo-random numbers for tests: the one generator the workspace's
//! randomised tests draw from (generated archives, tables, policy sets and mutations of
//! them, scheduler workloads, the stable fuzz driver's inputs), so each test is the same
//! run every time for its seed.
//!
//! The algorithm is xorshift64 (Marsaglia, "Xorshift RNGs", 2003; shifts 13, 7, 17): the
//! state is the last output, never 0, and runs through all 2^64 − 1 other values. It is
//! small, fast and good enough to spread test inputs; it is not for anything else (not
//! uniform enough for statistics, trivially predictable, and never to be used outside
//! tests). The sequence for a seed is part of this crate's contract: tests hold
//! properties over the inputs one seed generates, so changing the algorithm or what a
//! method draws changes every one of them.
//!
//! Seeds: [`Rng::new`] takes a seed as the state (0, which xorshift64 never leaves, is
//! replaced by a fixed constant). Seeds written into tests are used that way. A seed from
//! outside (the environment, the clock, a hash of a name) goes through
//! [`Rng::mixed`], which scrambles it first, so that any seed, 0 and neighbouring ones
//! included, starts an unrelated sequence.
//!
//! Every method draws whole steps: [`below`](Rng::below), [`range`](Rng::range) and
//! [`chance`](Rng::chance) one each (by remainder: the modulo bias is irrelevant for
//! test inputs), [`byte`](Rng::byte) one (its low byte), [`fill_bytes`](Rng::fill_bytes)
//! one per byte, [`shuffle`](Rng::shuffle) one per element but the first.
#![no_std]
#![forbid(unsafe_code)]

/// The state [`Rng::new`] uses for seed 0 (the 64-bit golden ratio).
const ZERO_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// An xorshift64 generator (see the crate documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose state is `seed` (or a fixed nonzero constant for 0): its first
    /// output is the xorshift64 step from `seed`.
    pub const fn new(seed: u64) -> Self {
        Rng(if seed == 0 { ZERO_SEED } else { seed })
    }

    /// A generator for a seed from outside the test (environment, clock, hashes): the
    /// seed goes through one SplitMix64 step (Steele, Lea, Flood 2014) before it becomes
    /// the state, so nearby seeds give unrelated sequences.
    pub const fn mixed(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng::new(z ^ (z >> 31))
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// The low byte of the next step.
    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }

    /// In `0..n`. Panics if `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// In `0..n`, for `u64` quantities. Panics if `n` is 0.
    pub fn below_u64(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// In `lo..=hi`. Panics if `lo > hi`, or for the whole of `u64` (`0..=u64::MAX`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True `percent` times in 100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.next_u64() % 100 < u64::from(percent)
    }

    /// Fills `out`, one step per byte (its low byte).
    pub fn fill_bytes(&mut self, out: &mut [u8]) {
        for b in out {
            *b = self.byte();
        }
    }

    /// Puts `items` in a random order (Fisher–Yates, from the end).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_xorshift64() {
        let mut r = Rng::new(1);
        assert_eq!(r.next_u64(), 0x4082_2041);
        let mut x = 0x4082_2041u64;
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            assert_eq!(r.next_u64(), x);
        }
    }

    #[test]
    fn a_seed_gives_the_same_sequence_every_time() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        assert!((0..1000).all(|_| a.next_u64() == b.next_u64()));
        let (mut a, mut b) = (Rng::mixed(42), Rng::mixed(42));
        assert!((0..1000).all(|_| a.next_u64() == b.next_u64()));
    }

    #[test]
    fn zero_seeds_do_not_stick() {
        assert_ne!(Rng::new(0).next_u64(), 0);
        assert_eq!(Rng::new(0), Rng::new(ZERO_SEED));
        assert_ne!(Rng::mixed(0).next_u64(), 0);
        assert_ne!(Rng::mixed(0), Rng::mixed(1));
    }

    #[test]
    fn nearby_mixed_seeds_start_unrelated_sequences() {
        // Raw xorshift64 from 1 and 2 starts with few bits set; mixed seeds do not.
        let (mut a, mut b) = (Rng::mixed(1), Rng::mixed(2));
        let differing = (a.next_u64() ^ b.next_u64()).count_ones();
        assert!((16..=48).contains(&differing), "{differing}");
    }

    #[test]
    fn draws_stay_in_their_ranges() {
        let mut r = Rng::new(7);
        for n in 1..200usize {
            assert!(r.below(n) < n);
            assert!(r.below_u64(n as u64) < n as u64);
            let v = r.range(n as u64, 2 * n as u64);
            assert!((n as u64..=2 * n as u64).contains(&v));
        }
        assert_eq!(r.range(5, 5), 5);
        assert!(!r.chance(0));
        assert!(r.chance(100));
        let hits = (0..10_000).filter(|_| r.chance(30)).count();
        assert!((2_500..3_500).contains(&hits), "{hits}");
    }

    #[test]
    fn bytes_are_the_low_bytes_of_steps() {
        let mut a = Rng::new(11);
        let mut b = a.clone();
        let mut buf = [0u8; 64];
        a.fill_bytes(&mut buf);
        assert!(buf.iter().all(|&x| x == b.next_u64() as u8));
        assert_eq!(a, b);
    }

    #[test]
    fn shuffle_permutes() {
        let mut r = Rng::new(3);
        let mut v = [0u32; 50];
        for (i, x) in v.iter_mut().enumerate() {
            *x = i as u32;
        }
        r.shuffle(&mut v);
        assert_ne!(v, core::array::from_fn::<u32, 50, _>(|i| i as u32));
        let mut sorted = v;
        sorted.sort_unstable();
        assert_eq!(sorted, core::array::from_fn::<u32, 50, _>(|i| i as u32));
        r.shuffle(&mut [0u8; 0]);
        r.shuffle(&mut [9u8]);
    }
}
