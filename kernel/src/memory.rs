//! Physical memory and the kernel heap, set up from the firmware memory map.
//!
//! Owns the global frame allocator and decides the heap size. It must not map pages
//! (`arch::paging` does) nor touch frame contents (`arch::phys::OwnedFrame` does).

use plinth_boot::BootInfo;
use plinth_frames::{FrameAllocator, PhysRange};
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;

use crate::arch;
use crate::arch::phys::FrameSource;

/// Bitmap words: one bit per 4 KiB frame, so 2^16 words describe 16 GiB of RAM
/// (512 KiB of .bss, of which only the part up to the top of RAM is ever touched).
const BITMAP_WORDS: usize = 1 << 16;
const MIB: u64 = 1 << 20;

static FRAMES: Mutex<FrameAllocator<[u64; BITMAP_WORDS]>> =
    Mutex::new(FrameAllocator::empty([0; BITMAP_WORDS]));

/// What `init` set up.
#[derive(Clone, Copy, Debug)]
pub struct MemoryLayout {
    pub usable_regions: usize,
    /// RAM the bitmap cannot describe (beyond 16 GiB), ignored.
    pub ignored_bytes: u64,
    pub heap_start: u64,
    pub heap_size: usize,
    pub page_table_frames: usize,
}

/// Why memory setup failed; each is fatal at boot.
#[derive(Clone, Copy, Debug)]
#[allow(
    dead_code,
    reason = "fields are read through Debug in the boot error log"
)]
pub enum MemoryError {
    NoHeap { wanted: usize },
    Paging(arch::paging::PagingError),
}

/// Heap size for a machine with `usable` bytes of RAM: an eighth of it, between 4 MiB
/// and 256 MiB, so small VMs keep most RAM for partitions and big ones don't waste it.
pub fn heap_size_for(usable: u64) -> usize {
    let size = (usable / 8).clamp(4 * MIB, 256 * MIB);
    (size & !(MIB - 1)) as usize
}

/// Builds the frame allocator, the kernel page tables and the heap over `usable`
/// (`boot.memory_map.usable()`).
pub fn init(boot: &BootInfo, usable: &[PhysRange]) -> Result<MemoryLayout, MemoryError> {
    let image = arch::paging::kernel_image();
    let reserved = [
        PhysRange::new(0, MIB), // real-mode area, BIOS data, option ROMs
        image.whole,
        boot.firmware_ranges[0],
        boot.firmware_ranges[1],
        boot.firmware_ranges[2],
    ];
    let usable_bytes = PhysRange::total_len(usable);
    let covered = without_interrupts(|| {
        let mut frames = FRAMES.lock();
        frames.init(usable, &reserved);
        frames.covered_bytes()
    });
    let ignored_bytes = usable
        .iter()
        .map(|r| r.end.saturating_sub(r.start.max(covered)).min(r.len()))
        .sum();

    let page_table_frames = arch::paging::init(usable, arch::apic::base(), &mut alloc_frame_addr)
        .map_err(MemoryError::Paging)?;

    let heap_size = heap_size_for(usable_bytes);
    let frames = heap_size / 4096;
    // Lowest free run, not 2 MiB-aligned: the heap then starts right above the kernel image,
    // in memory the host has already backed, so `Heap::init` does not make the host fault
    // in (and zero) a fresh huge page during boot.
    let heap_start = without_interrupts(|| FRAMES.lock().alloc_contiguous(frames, 1))
        .ok_or(MemoryError::NoHeap { wanted: heap_size })?;
    arch::heap::init(heap_start, heap_size);

    Ok(MemoryLayout {
        usable_regions: usable.len(),
        ignored_bytes,
        heap_start,
        heap_size,
        page_table_frames,
    })
}

/// The global frame allocator as a [`FrameSource`], for `arch` types that own frames.
pub struct KernelFrames;

pub static KERNEL_FRAMES: KernelFrames = KernelFrames;

impl FrameSource for KernelFrames {
    fn alloc(&self) -> Option<u64> {
        alloc_frame_addr()
    }

    fn free(&self, addr: u64) {
        free_frame_addr(addr);
    }
}

/// Physical address of a free frame (for page tables, DMA-free device mappings).
pub fn alloc_frame_addr() -> Option<u64> {
    without_interrupts(|| FRAMES.lock().alloc())
}

/// Returns a frame; a bad address is logged, never trusted.
pub fn free_frame_addr(addr: u64) {
    if let Err(e) = without_interrupts(|| FRAMES.lock().free(addr)) {
        log::error!("frame {addr:#x} could not be freed: {e:?}");
    }
}

/// Free and usable frame counts.
pub fn frame_counts() -> (usize, usize) {
    without_interrupts(|| {
        let f = FRAMES.lock();
        (f.free_frames(), f.usable_frames())
    })
}
