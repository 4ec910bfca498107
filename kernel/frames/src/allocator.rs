//! A bitmap frame allocator: one bit per 4 KiB frame, set = free.
//!
//! A bitmap rather than a free list because the kernel needs contiguous runs (heap,
//! stacks, later DMA buffers) and double-free detection, and its size is known up front
//! (32 KiB of bitmap per GiB of RAM).

use crate::{FRAME_SIZE, PhysRange};

/// Why a frame could not be returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// The address is not frame-aligned.
    Misaligned,
    /// The frame is outside what the allocator manages.
    OutOfRange,
    /// The frame is already free (double free) or was never usable.
    NotAllocated,
}

/// Frame allocator over bitmap storage `S` (a static array in the kernel, a `Vec` in tests).
pub struct FrameAllocator<S> {
    bits: S,
    /// Frames covered by the active part of the bitmap, counted from physical address 0.
    frames: usize,
    free: usize,
    usable: usize,
    /// No free frame lies below this index.
    hint: usize,
}

impl<S: AsRef<[u64]> + AsMut<[u64]>> FrameAllocator<S> {
    /// An allocator with no free frames; [`FrameAllocator::init`] fills it.
    pub const fn empty(bits: S) -> Self {
        FrameAllocator {
            bits,
            frames: 0,
            free: 0,
            usable: 0,
            hint: 0,
        }
    }

    /// Bitmap words needed to manage physical memory up to `top` (bytes).
    pub const fn bitmap_words(top: u64) -> usize {
        let frames = top.div_ceil(FRAME_SIZE) as usize;
        frames.div_ceil(64)
    }

    /// Builds an allocator in one step; see [`FrameAllocator::init`].
    pub fn new(bits: S, usable: &[PhysRange], reserved: &[PhysRange]) -> Self {
        let mut a = Self::empty(bits);
        a.init(usable, reserved);
        a
    }

    /// (Re)starts the allocator: frames in `usable` are free unless they overlap `reserved`
    /// (kernel image, boot data). Frames beyond the storage are ignored; see
    /// [`FrameAllocator::covered_bytes`]. Only the part of the bitmap up to the highest usable
    /// address is cleared and scanned, so a large static bitmap costs nothing on a small VM.
    pub fn init(&mut self, usable: &[PhysRange], reserved: &[PhysRange]) {
        let top = usable.iter().map(|r| r.end).max().unwrap_or(0);
        let words = Self::bitmap_words(top).min(self.bits.as_ref().len());
        self.bits.as_mut()[..words].fill(0);
        self.frames = words * 64;
        self.free = 0;
        self.usable = 0;
        self.hint = self.frames;
        // Usable first, then reserved on top: reserved wins wherever the two overlap.
        for (ranges, free) in [(usable, true), (reserved, false)] {
            for r in ranges {
                let p = if free {
                    r.frames_inside()
                } else {
                    r.frames_covering()
                };
                let first = ((p.start / FRAME_SIZE) as usize).min(self.frames);
                let last = ((p.end / FRAME_SIZE) as usize).min(self.frames);
                self.mark_range(first, last, free);
            }
        }
    }

    /// Physical memory the bitmap can describe, bytes.
    pub fn covered_bytes(&self) -> u64 {
        self.bits.as_ref().len() as u64 * 64 * FRAME_SIZE
    }

    /// Sets frames `[first, last)` free (or not usable), keeping the counts exact: only
    /// bits that change are counted. A word at a time, since this runs over all of RAM.
    fn mark_range(&mut self, first: usize, last: usize, free: bool) {
        let mut f = first;
        while f < last {
            let (w, b) = (f / 64, f % 64);
            if free && b == 0 && last - f >= 64 {
                // Whole words: the bulk of RAM at init, so this loop is kept to a few
                // instructions a word (64 GiB of RAM is 262,144 words).
                let end = w + (last - f) / 64;
                let mut newly = 0;
                for word in &mut self.bits.as_mut()[w..end] {
                    newly += match *word {
                        0 => 64,
                        bits => bits.count_zeros() as usize,
                    };
                    *word = u64::MAX;
                }
                self.free += newly;
                self.usable += newly;
                f = end * 64;
                continue;
            }
            let n = (64 - b).min(last - f);
            let mask = word_mask(b, n);
            let word = &mut self.bits.as_mut()[w];
            // Words are all-clear or all-set almost always (`init` clears them first);
            // the target has no POPCNT, so the count is skipped when it is obvious.
            if free {
                let newly = match *word & mask {
                    0 => n,
                    bits => (mask & !bits).count_ones() as usize,
                };
                *word |= mask;
                self.free += newly;
                self.usable += newly;
            } else {
                let taken = (mask & *word).count_ones() as usize;
                *word &= !mask;
                self.free -= taken;
                self.usable -= taken;
            }
            f += n;
        }
        if free {
            self.hint = self.hint.min(first);
        }
    }

    /// Free frames now.
    pub fn free_frames(&self) -> usize {
        self.free
    }

    /// Frames that were free when the allocator was built.
    pub fn usable_frames(&self) -> usize {
        self.usable
    }

    /// Is the frame at `addr` free?
    pub fn is_free(&self, addr: u64) -> bool {
        let f = (addr / FRAME_SIZE) as usize;
        f < self.frames && self.is_free_index(f)
    }

    /// One frame, lowest address first. Returns its physical address.
    pub fn alloc(&mut self) -> Option<u64> {
        self.alloc_contiguous(1, 1)
    }

    /// `count` contiguous frames whose first frame index is a multiple of `align`
    /// (in frames; 0 is treated as 1). Lowest address first.
    pub fn alloc_contiguous(&mut self, count: usize, align: usize) -> Option<u64> {
        if count == 0 || count > self.free {
            return None;
        }
        let align = align.max(1);
        let mut start = self.hint.next_multiple_of(align);
        while start.checked_add(count)? <= self.frames {
            match self.find(start, start + count, false) {
                None => {
                    self.set_range(start, start + count, false);
                    self.free -= count;
                    if start == self.hint {
                        self.hint = start + count;
                    }
                    return Some(start as u64 * FRAME_SIZE);
                }
                Some(busy) => start = self.next_free_from(busy + 1)?.next_multiple_of(align),
            }
        }
        None
    }

    /// Returns one frame.
    pub fn free(&mut self, addr: u64) -> Result<(), FreeError> {
        self.free_contiguous(addr, 1)
    }

    /// Returns `count` frames starting at `addr`. Checks every frame before changing any.
    pub fn free_contiguous(&mut self, addr: u64, count: usize) -> Result<(), FreeError> {
        if !addr.is_multiple_of(FRAME_SIZE) {
            return Err(FreeError::Misaligned);
        }
        let first = (addr / FRAME_SIZE) as usize;
        let end = first.checked_add(count).ok_or(FreeError::OutOfRange)?;
        if end > self.frames {
            return Err(FreeError::OutOfRange);
        }
        if self.find(first, end, true).is_some() {
            return Err(FreeError::NotAllocated);
        }
        self.set_range(first, end, true);
        self.free += count;
        self.hint = self.hint.min(first);
        Ok(())
    }

    fn next_free_from(&self, from: usize) -> Option<usize> {
        let mut f = from;
        while f < self.frames {
            let word = self.bits.as_ref()[f / 64] >> (f % 64);
            if word != 0 {
                return Some(f + word.trailing_zeros() as usize).filter(|&x| x < self.frames);
            }
            f = (f / 64 + 1) * 64;
        }
        None
    }

    fn is_free_index(&self, f: usize) -> bool {
        self.bits.as_ref()[f / 64] & (1 << (f % 64)) != 0
    }

    /// The first frame in `[first, last)` that is free (`free`) or taken (`!free`). A
    /// word at a time: the heap's run of thousands of frames is checked at boot.
    fn find(&self, first: usize, last: usize, free: bool) -> Option<usize> {
        let mut f = first;
        while f < last {
            let (w, b) = (f / 64, f % 64);
            let n = (64 - b).min(last - f);
            let word = self.bits.as_ref()[w];
            let hits = if free { word } else { !word } & word_mask(b, n);
            if hits != 0 {
                return Some(w * 64 + hits.trailing_zeros() as usize);
            }
            f += n;
        }
        None
    }

    /// Marks frames `[first, last)` free or taken, a word at a time; the caller keeps
    /// the counts.
    fn set_range(&mut self, first: usize, last: usize, free: bool) {
        let mut f = first;
        while f < last {
            let (w, b) = (f / 64, f % 64);
            let n = (64 - b).min(last - f);
            let word = &mut self.bits.as_mut()[w];
            if free {
                *word |= word_mask(b, n);
            } else {
                *word &= !word_mask(b, n);
            }
            f += n;
        }
    }
}

/// Bits `b..b + n` of a word (`b + n <= 64`, `n >= 1`).
fn word_mask(b: usize, n: usize) -> u64 {
    if n == 64 {
        u64::MAX
    } else {
        ((1u64 << n) - 1) << b
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use plinth_testrng::Rng;
    use std::vec;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;

    type Alloc = FrameAllocator<Vec<u64>>;

    fn with_alloc<R>(
        usable: &[PhysRange],
        reserved: &[PhysRange],
        f: impl FnOnce(&mut Alloc) -> R,
    ) -> R {
        let top = usable.iter().map(|r| r.end).max().unwrap_or(0);
        // A bitmap larger than needed, as the kernel's static one is.
        let bits = vec![u64::MAX; Alloc::bitmap_words(top) + 7];
        let mut a = Alloc::new(bits, usable, reserved);
        f(&mut a)
    }

    #[test]
    fn reserved_frames_are_never_handed_out() {
        let usable = [PhysRange::new(0, 4 * MIB)];
        let kernel = PhysRange::new(MIB, MIB + 100);
        with_alloc(&usable, &[kernel, PhysRange::new(0, MIB)], |a| {
            assert_eq!(
                a.usable_frames(),
                (4 * MIB - 2 * MIB - 4096) as usize / 4096
            );
            let mut got = Vec::new();
            while let Some(f) = a.alloc() {
                assert!(!kernel.frames_covering().contains(f));
                assert!(f >= MIB);
                got.push(f);
            }
            assert_eq!(got.len(), a.usable_frames());
            assert_eq!(a.free_frames(), 0);
            let mut sorted = got.clone();
            sorted.dedup();
            assert_eq!(sorted.len(), got.len(), "a frame was handed out twice");
        });
    }

    #[test]
    fn contiguous_aligned_runs_skip_holes() {
        let usable = [PhysRange::new(0, 8 * MIB)];
        with_alloc(&usable, &[PhysRange::new(4096, 4096)], |a| {
            let run = a.alloc_contiguous(512, 512).expect("2 MiB run");
            assert_eq!(run % (2 * MIB), 0);
            assert_eq!(
                run,
                2 * MIB,
                "frame 1 is reserved, so the first aligned run starts at 2 MiB"
            );
            for f in 0..512 {
                assert!(!a.is_free(run + f * 4096));
            }
            assert_eq!(a.alloc(), Some(0), "lowest free frame first");
        });
    }

    #[test]
    fn long_runs_are_checked_word_by_word_across_word_edges() {
        // 64 MiB: the run below spans hundreds of bitmap words, starting mid-word.
        let usable = [PhysRange::new(0, 64 * MIB)];
        // One reserved frame deep inside the first candidate run.
        let hole = PhysRange::new(5000 * 4096, 4096);
        with_alloc(&usable, &[hole], |a| {
            let start = a.free_frames();
            assert_eq!(a.alloc_contiguous(3, 1), Some(0));
            let run = a.alloc_contiguous(6000, 1).expect("a run after the hole");
            assert_eq!(run, 5001 * 4096, "the run must skip the reserved frame");
            assert_eq!(a.free_frames(), start - 6003);
            assert!(!a.is_free(run) && !a.is_free(run + 5999 * 4096));
            assert!(
                a.is_free(run + 6000 * 4096),
                "the frame after the run stays free"
            );
            assert!(
                a.is_free(3 * 4096) && a.is_free(4999 * 4096),
                "frames before the hole stay free"
            );
            a.free_contiguous(run, 6000).unwrap();
            assert_eq!(a.free_frames(), start - 3);
            assert_eq!(
                a.free_contiguous(run + 64 * 4096, 1),
                Err(FreeError::NotAllocated)
            );
        });
    }

    #[test]
    fn overlapping_usable_ranges_count_each_frame_once() {
        // The second range starts mid-word and overlaps whole words of the first.
        let usable = [
            PhysRange::new(0, MIB),
            PhysRange::new(MIB / 2 + 3 * 4096, 2 * MIB - (MIB / 2 + 3 * 4096)),
        ];
        with_alloc(&usable, &[], |a| {
            assert_eq!(a.usable_frames(), 512);
            assert_eq!(a.free_frames(), 512);
            assert_eq!(a.alloc_contiguous(512, 1), Some(0));
            assert_eq!(a.alloc(), None);
        });
    }

    #[test]
    fn free_checks_and_restores_counts() {
        let usable = [PhysRange::new(0, MIB)];
        with_alloc(&usable, &[], |a| {
            let start = a.free_frames();
            let x = a.alloc_contiguous(10, 1).unwrap();
            assert_eq!(a.free_frames(), start - 10);
            assert_eq!(a.free(x + 1), Err(FreeError::Misaligned));
            assert_eq!(a.free_contiguous(x, 11), Err(FreeError::NotAllocated));
            assert_eq!(a.free(!4095), Err(FreeError::OutOfRange));
            assert_eq!(a.free_contiguous(x, usize::MAX), Err(FreeError::OutOfRange));
            a.free_contiguous(x, 10).unwrap();
            assert_eq!(a.free(x), Err(FreeError::NotAllocated), "double free");
            assert_eq!(a.free_frames(), start);
        });
    }

    #[test]
    fn exhaustion_returns_none() {
        with_alloc(&[PhysRange::new(0, 64 * 4096)], &[], |a| {
            assert_eq!(a.alloc_contiguous(65, 1), None);
            assert_eq!(a.alloc_contiguous(0, 1), None);
            assert!(a.alloc_contiguous(64, 1).is_some());
            assert_eq!(a.alloc(), None);
        });
    }

    #[test]
    fn random_alloc_free_keeps_accounting_exact() {
        let usable = [PhysRange::new(0, 2 * MIB), PhysRange::new(3 * MIB, MIB)];
        with_alloc(&usable, &[], |a| {
            let start = a.free_frames();
            let mut held: Vec<(u64, usize)> = Vec::new();
            let mut rng = Rng::new(12345);
            for _ in 0..5000 {
                let x = rng.next_u64();
                if !x.is_multiple_of(3) || held.is_empty() {
                    let n = (x % 17 + 1) as usize;
                    if let Some(f) = a.alloc_contiguous(n, (x % 4 + 1) as usize) {
                        assert!(held.iter().all(|&(g, m)| f + n as u64 * 4096 <= g || g + m as u64 * 4096 <= f));
                        held.push((f, n));
                    }
                } else {
                    let (f, n) = held.swap_remove((x as usize / 3) % held.len());
                    a.free_contiguous(f, n).unwrap();
                }
            }
            for (f, n) in held {
                a.free_contiguous(f, n).unwrap();
            }
            assert_eq!(a.free_frames(), start);
        });
    }
}
