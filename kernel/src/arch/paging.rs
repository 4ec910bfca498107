//! The kernel's own page tables, replacing the boot stub's 4 GiB identity map.
//!
//! Physical memory stays identity-mapped (virtual = physical), but only usable RAM, with
//! permissions: kernel text read+execute, rodata read-only, data/bss read-write and
//! no-execute, all other RAM read-write no-execute (2 MiB pages where alignment allows),
//! the local APIC page uncached. Page 0 and every stack's guard page stay unmapped, so
//! null dereferences and stack overflows fault.

use plinth_boot::PhysMemory;
use plinth_frames::PhysRange;
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::structures::paging::mapper::MapToError;
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageSize, PageTable, PageTableFlags as F,
    PhysFrame, Size2MiB, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

const PAGE: u64 = Size4KiB::SIZE;
const HUGE: u64 = Size2MiB::SIZE;

unsafe extern "C" {
    static __kernel_start: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __kernel_end: u8;
}

/// Where the kernel image's sections are, from the linker script.
#[derive(Clone, Copy, Debug)]
pub struct KernelImage {
    pub whole: PhysRange,
    pub text: PhysRange,
    pub rodata: PhysRange,
}

/// The running kernel's layout.
pub fn kernel_image() -> KernelImage {
    // Only the symbols' addresses are taken (safe for extern statics); nothing is read.
    let (ks, ts, te, rs, re, ke) = (
        &raw const __kernel_start as u64,
        &raw const __text_start as u64,
        &raw const __text_end as u64,
        &raw const __rodata_start as u64,
        &raw const __rodata_end as u64,
        &raw const __kernel_end as u64,
    );
    let r = |s: u64, e: u64| PhysRange { start: s, end: e };
    KernelImage {
        whole: r(ks, ke),
        text: r(ts, te),
        rodata: r(rs, re),
    }
}

/// Physical memory as the boot stub mapped it (identity, first 4 GiB), for reading the
/// PVH start_info before the kernel's own tables exist.
pub struct BootIdentityMap;

impl PhysMemory for BootIdentityMap {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        if addr < PAGE || end > 1 << 32 {
            return false;
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: [addr, end) lies in the boot stub's identity map of the first 4 GiB
            // (checked above), which is live until `init` switches tables; bytewise
            // volatile reads have no alignment requirement.
            *b = unsafe { core::ptr::read_volatile((addr + i as u64) as *const u8) };
        }
        true
    }
}

/// Why the page tables could not be built.
#[derive(Clone, Copy, Debug)]
#[allow(
    dead_code,
    reason = "fields are read through Debug in the boot error log"
)]
pub enum PagingError {
    /// No frame was left for a page table.
    OutOfFrames,
    /// A range was mapped twice (overlapping inputs).
    Overlap(u64),
}

struct FrameSource<'a>(&'a mut dyn FnMut() -> Option<u64>);

// SAFETY: frames come from the frame allocator, are unused, and identity-mapped by the
// boot tables (the allocator hands out the lowest frames first, all below 4 GiB here).
unsafe impl FrameAllocator<Size4KiB> for FrameSource<'_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        (self.0)().map(|a| PhysFrame::containing_address(PhysAddr::new(a)))
    }
}

fn err<S: PageSize>(e: MapToError<S>, at: u64) -> PagingError {
    match e {
        MapToError::FrameAllocationFailed => PagingError::OutOfFrames,
        _ => PagingError::Overlap(at),
    }
}

/// Builds the kernel page tables for `ram` (usable RAM ranges) and switches to them.
/// Returns the number of page-table frames used.
pub fn init(
    ram: &[PhysRange],
    lapic: u64,
    alloc: &mut dyn FnMut() -> Option<u64>,
) -> Result<usize, PagingError> {
    let mut used = 0usize;
    let mut counting = || {
        used += 1;
        alloc()
    };
    let mut frames = FrameSource(&mut counting);
    let pml4_addr = frames
        .allocate_frame()
        .ok_or(PagingError::OutOfFrames)?
        .start_address()
        .as_u64();
    // SAFETY: the frame was just allocated for us alone and is identity-mapped; a zeroed
    // PageTable is a valid empty table.
    let pml4 = unsafe {
        let t = pml4_addr as *mut PageTable;
        t.write(PageTable::new());
        &mut *t
    };
    // SAFETY: physical memory is identity-mapped (offset 0) by the boot tables for as long as
    // this mapper is used, and every table it creates comes from `frames`.
    let mut mapper = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(0)) };
    let image = super::paging::kernel_image();
    let guards = super::stacks::guard_pages();
    let table_flags = F::PRESENT | F::WRITABLE;
    let rw = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::GLOBAL;

    // Kernel image, page by page, with section permissions.
    let mut addr = image.whole.start;
    while addr < image.whole.end {
        let flags = if image.text.contains(addr) {
            F::PRESENT | F::GLOBAL
        } else if image.rodata.contains(addr) {
            F::PRESENT | F::NO_EXECUTE | F::GLOBAL
        } else {
            rw
        };
        if !guards.contains(&addr) {
            map4k(&mut mapper, addr, flags, table_flags, &mut frames)?;
        }
        addr += PAGE;
    }

    // The rest of RAM (never page 0), 2 MiB pages where possible.
    for r in ram {
        let mut pieces = [
            PhysRange {
                start: r.start.max(PAGE),
                end: r.end,
            },
            PhysRange::new(0, 0),
        ];
        if pieces[0].overlaps(&image.whole) {
            pieces = [
                PhysRange {
                    start: pieces[0].start,
                    end: image.whole.start,
                },
                PhysRange {
                    start: image.whole.end,
                    end: pieces[0].end,
                },
            ];
        }
        for p in pieces.iter().filter(|p| !p.is_empty()) {
            let mut a = p.start;
            while a < p.end {
                if a % HUGE == 0 && p.end - a >= HUGE {
                    let page = Page::<Size2MiB>::containing_address(VirtAddr::new(a));
                    let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(a));
                    // SAFETY: identity mapping of usable RAM that is not the kernel image.
                    unsafe {
                        mapper.map_to_with_table_flags(
                            page,
                            frame,
                            rw | F::HUGE_PAGE,
                            table_flags,
                            &mut frames,
                        )
                    }
                    .map_err(|e| err(e, a))?
                    .ignore();
                    a += HUGE;
                } else {
                    map4k(&mut mapper, a, rw, table_flags, &mut frames)?;
                    a += PAGE;
                }
            }
        }
    }

    // Local APIC registers: uncached, never executable.
    let mmio = F::PRESENT | F::WRITABLE | F::NO_EXECUTE | F::NO_CACHE | F::WRITE_THROUGH;
    map4k(&mut mapper, lapic, mmio, table_flags, &mut frames)?;

    // SAFETY: the new tables map everything the kernel touches from here on: its image
    // (code, data, the boot stack minus its guard), all usable RAM and the APIC. PGE lets
    // GLOBAL entries survive later address-space switches.
    unsafe {
        Cr4::update(|f| f.insert(Cr4Flags::PAGE_GLOBAL));
        Cr3::write(
            PhysFrame::containing_address(PhysAddr::new(pml4_addr)),
            Cr3Flags::empty(),
        );
    }
    Ok(used)
}

fn map4k(
    mapper: &mut OffsetPageTable<'_>,
    addr: u64,
    flags: F,
    table_flags: F,
    frames: &mut FrameSource<'_>,
) -> Result<(), PagingError> {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(addr));
    let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(addr));
    // SAFETY: identity mapping of memory the caller owns (kernel image, RAM, or MMIO).
    unsafe { mapper.map_to_with_table_flags(page, frame, flags, table_flags, frames) }
        .map_err(|e| err(e, addr))?
        .ignore();
    Ok(())
}
