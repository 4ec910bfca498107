//! The disk test pattern and checksum, shared by the runtime and the host tests so both
//! sides compute the same bytes (one definition, not two).
//!
//! The pattern depends on the seed and on each byte's absolute offset on the disk, so a
//! sector written to the wrong place, a stale sector or a torn write all show up.
#![no_std]
#![forbid(unsafe_code)]

/// The pattern byte for `seed` at absolute disk offset `offset`.
pub fn pattern_byte(seed: u64, offset: u64) -> u8 {
    let word = offset / 8;
    let mut x = word ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // splitmix64 finaliser: every bit of word and seed reaches every output byte.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    x.to_le_bytes()[(offset % 8) as usize]
}

/// Fills `buf`, which sits at absolute disk offset `offset`, with the pattern for `seed`.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(seed, offset + i as u64);
    }
}

/// FNV-1a, 64-bit: simple, fast enough, and trivially the same on both sides.
#[derive(Clone, Copy, Debug)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a {
    pub const fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        let mut h = Fnv1a::new();
        assert_eq!(h.finish(), 0xcbf2_9ce4_8422_2325);
        h.update(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
        let mut h = Fnv1a::new();
        h.update(b"foobar");
        assert_eq!(h.finish(), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn pattern_depends_on_seed_and_position() {
        let mut a = [0u8; 1024];
        let mut b = [0u8; 1024];
        fill(1, 0, &mut a);
        fill(2, 0, &mut b);
        assert_ne!(a, b);
        // Chunked fills agree with one fill: offsets are absolute.
        let mut c = [0u8; 1024];
        fill(1, 0, &mut c[..512]);
        fill(1, 512, &mut c[512..]);
        assert_eq!(a, c);
        // Two sectors differ from each other.
        assert_ne!(a[..512], a[512..]);
    }
}
