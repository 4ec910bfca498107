//! The firmware memory map (PVH `hvm_memmap_table_entry` / E820), sanitized.

use crate::PhysRange;
use heapless::Vec;

/// Most regions kept from the firmware map; more are counted and ignored.
pub const MAX_REGIONS: usize = 128;

/// E820 region types, as PVH reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    Unusable,
    Unknown(u32),
}

impl RegionKind {
    /// Maps an E820 type number.
    pub const fn from_e820(kind: u32) -> Self {
        match kind {
            1 => RegionKind::Usable,
            2 => RegionKind::Reserved,
            3 => RegionKind::AcpiReclaimable,
            4 => RegionKind::AcpiNvs,
            5 => RegionKind::Unusable,
            other => RegionKind::Unknown(other),
        }
    }
}

/// One firmware region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub range: PhysRange,
    pub kind: RegionKind,
}

/// The memory map as the firmware gave it, bounded in size.
///
/// Firmware maps may be unsorted, overlap, or have unaligned edges. [`MemoryMap::usable`]
/// turns them into sorted, disjoint, frame-aligned ranges that no other region touches:
/// when a usable and a reserved region overlap, the reserved one wins.
#[derive(Clone, Debug, Default)]
pub struct MemoryMap {
    regions: Vec<Region, MAX_REGIONS>,
    dropped: usize,
}

impl MemoryMap {
    pub const fn new() -> Self {
        MemoryMap {
            regions: Vec::new(),
            dropped: 0,
        }
    }

    /// Records a region; empty ones are ignored, ones past [`MAX_REGIONS`] counted.
    pub fn push(&mut self, start: u64, len: u64, kind: RegionKind) {
        let range = PhysRange::new(start, len);
        if range.is_empty() {
            return;
        }
        if self.regions.push(Region { range, kind }).is_err() {
            self.dropped += 1;
        }
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Regions that did not fit in the table.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Sorted, disjoint, frame-aligned usable RAM not overlapped by any other region.
    pub fn usable(&self) -> Vec<PhysRange, MAX_REGIONS> {
        let mut out: Vec<PhysRange, MAX_REGIONS> = Vec::new();
        let holes = || {
            self.regions
                .iter()
                .filter(|h| h.kind != RegionKind::Usable)
                .map(|h| h.range.frames_covering())
        };
        for r in self.regions.iter().filter(|r| r.kind == RegionKind::Usable) {
            // Walk `r` upwards, each time up to the lowest hole reaching into what is left
            // of it, then on from that hole's end. One pass, no copies: this runs on the
            // way to `ready`.
            let end = r.range.end;
            let mut start = r.range.start;
            while start < end {
                let (mut cut, mut resume) = (end, end);
                for h in holes() {
                    if h.start < end && h.end > start && h.start.max(start) < cut {
                        cut = h.start.max(start);
                        resume = h.end;
                    }
                }
                let piece = PhysRange { start, end: cut }.frames_inside();
                if !piece.is_empty() && out.push(piece).is_err() {
                    break;
                }
                start = resume;
            }
        }
        out.sort_unstable();
        // Merge overlapping or touching usable ranges (firmware may repeat an entry).
        let mut merged: Vec<PhysRange, MAX_REGIONS> = Vec::new();
        for r in out {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => {
                    let _ = merged.push(r);
                }
            }
        }
        merged
    }

    /// Bytes of usable RAM, as [`MemoryMap::usable`] counts it.
    pub fn usable_bytes(&self) -> u64 {
        PhysRange::total_len(&self.usable())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use plinth_testrng::Rng;

    const MIB: u64 = 1 << 20;

    fn qemu_128m() -> MemoryMap {
        let mut m = MemoryMap::new();
        m.push(0, 0x9fc00, RegionKind::Usable);
        m.push(0x9fc00, 0x400, RegionKind::Reserved);
        m.push(0xf0000, 0x10000, RegionKind::Reserved);
        m.push(0x100000, 127 * MIB, RegionKind::Usable);
        m.push(0xfeffc000, 0x4000, RegionKind::Reserved);
        m
    }

    #[test]
    fn qemu_map_is_aligned_and_counted() {
        let u = qemu_128m().usable();
        assert_eq!(
            u.as_slice(),
            [
                PhysRange {
                    start: 0,
                    end: 0x9f000
                },
                PhysRange::new(0x100000, 127 * MIB)
            ]
        );
        assert_eq!(qemu_128m().usable_bytes(), 0x9f000 + 127 * MIB);
    }

    #[test]
    fn reserved_overlap_wins_and_unsorted_input_is_sorted() {
        let mut m = MemoryMap::new();
        m.push(64 * MIB, 64 * MIB, RegionKind::Usable);
        m.push(0, 32 * MIB, RegionKind::Usable);
        m.push(10 * MIB + 5, 100, RegionKind::AcpiNvs);
        m.push(0, 32 * MIB, RegionKind::Usable); // duplicate
        let u = m.usable();
        assert_eq!(
            u.as_slice(),
            [
                PhysRange {
                    start: 0,
                    end: 10 * MIB
                },
                PhysRange {
                    start: 10 * MIB + 4096,
                    end: 32 * MIB
                },
                PhysRange {
                    start: 64 * MIB,
                    end: 128 * MIB
                },
            ]
        );
    }

    /// Usable frames by brute force: inside some usable region, touched by no other.
    fn usable_frames_oracle(m: &MemoryMap, frames: u64) -> std::vec::Vec<PhysRange> {
        let mut runs: std::vec::Vec<PhysRange> = std::vec::Vec::new();
        for f in 0..frames {
            let frame = PhysRange::new(f * 4096, 4096);
            let inside = m.regions().iter().any(|r| {
                r.kind == RegionKind::Usable
                    && r.range.start <= frame.start
                    && frame.end <= r.range.end
            });
            let touched = m
                .regions()
                .iter()
                .any(|r| r.kind != RegionKind::Usable && r.range.overlaps(&frame));
            if inside && !touched {
                match runs.last_mut() {
                    Some(last) if last.end == frame.start => last.end = frame.end,
                    _ => runs.push(frame),
                }
            }
        }
        runs
    }

    #[test]
    fn random_maps_match_a_frame_by_frame_oracle() {
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        let mut next = |n: u64| rng.below_u64(n);
        for _ in 0..2000 {
            let mut m = MemoryMap::new();
            // 64 frames of address space; byte-granular, overlapping, unsorted entries.
            for _ in 0..next(8) + 1 {
                let start = next(64 * 4096);
                let len = next(40 * 4096);
                let kind = match next(4) {
                    0 | 1 => RegionKind::Usable,
                    2 => RegionKind::Reserved,
                    _ => RegionKind::AcpiNvs,
                };
                m.push(start, len, kind);
            }
            let got = m.usable();
            let want = usable_frames_oracle(&m, 128);
            assert_eq!(got.as_slice(), want.as_slice(), "map {:?}", m.regions());
        }
    }

    #[test]
    fn hostile_entries_are_contained() {
        let mut m = MemoryMap::new();
        m.push(u64::MAX - 10, u64::MAX, RegionKind::Usable); // wraps
        m.push(5, 0, RegionKind::Usable); // empty
        m.push(100, 200, RegionKind::Usable); // smaller than a frame
        m.push(0, 16 * MIB, RegionKind::Unknown(77));
        for i in 0..200u64 {
            m.push(i * MIB, MIB, RegionKind::Usable);
        }
        assert!(m.dropped() > 0);
        for r in m.usable() {
            assert_eq!(r.start % 4096, 0);
            assert_eq!(r.end % 4096, 0);
            assert!(r.start >= 16 * MIB);
        }
    }
}
