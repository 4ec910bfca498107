//! Physical memory: the firmware's memory map and the 4 KiB frame allocator built on it.
//!
//! Owns which physical frames are free. It works on plain numbers and a caller-provided
//! bitmap, so it runs (and is tested) on the host; it must not touch physical memory or
//! page tables itself — the kernel maps frames and places the bitmap.
#![no_std]
#![forbid(unsafe_code)]

mod allocator;
mod map;

pub use allocator::{FrameAllocator, FreeError};
pub use map::{MAX_REGIONS, MemoryMap, Region, RegionKind};

/// Size of one physical frame, bytes.
pub const FRAME_SIZE: u64 = 4096;

/// A half-open range `[start, end)` of physical addresses, bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PhysRange {
    pub start: u64,
    pub end: u64,
}

impl PhysRange {
    /// The range `[start, start + len)`, clipped at the top of the address space.
    pub const fn new(start: u64, len: u64) -> Self {
        PhysRange {
            start,
            end: start.saturating_add(len),
        }
    }

    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Bytes in `ranges` (disjoint ones, such as [`MemoryMap::usable`] returns).
    pub fn total_len(ranges: &[PhysRange]) -> u64 {
        ranges.iter().map(PhysRange::len).sum()
    }

    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// The largest frame-aligned range inside this one.
    pub const fn frames_inside(&self) -> PhysRange {
        let start = match self.start.checked_add(FRAME_SIZE - 1) {
            Some(s) => s & !(FRAME_SIZE - 1),
            None => !(FRAME_SIZE - 1),
        };
        let end = self.end & !(FRAME_SIZE - 1);
        PhysRange {
            start,
            end: if end < start { start } else { end },
        }
    }

    /// The smallest frame-aligned range covering this one.
    pub const fn frames_covering(&self) -> PhysRange {
        let start = self.start & !(FRAME_SIZE - 1);
        let end = match self.end.checked_add(FRAME_SIZE - 1) {
            Some(e) => e & !(FRAME_SIZE - 1),
            None => !(FRAME_SIZE - 1),
        };
        PhysRange { start, end }
    }
}
