//! The kernel's own page tables, replacing the boot stub's 4 GiB identity map.
//!
//! Physical memory stays identity-mapped (virtual = physical), but only usable RAM, with
//! permissions: kernel text read+execute, rodata read-only, data/bss read-write and
//! no-execute, all other RAM read-write no-execute (2 MiB pages where alignment allows),
//! the local APIC page uncached. Page 0 and every stack's guard page stay unmapped, so
//! null dereferences and stack overflows fault.

use core::sync::atomic::{AtomicU64, Ordering};
use plinth_boot::PhysMemory;
use plinth_frames::PhysRange;
use x86_64::PhysAddr;
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::structures::paging::PhysFrame;

const PAGE: u64 = 4096;
const HUGE: u64 = 2 << 20;

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
    /// The kernel image's sections or stack guard pages are not where link.ld puts them.
    UnexpectedLayout,
}

// Entry bits (Intel SDM vol. 3, 4.5). Plain constants rather than the `x86_64` crate's
// generic mapper: the kernel maps a handful of ranges once at boot, and under TCG every
// distinct instruction on the boot path costs translation time (init time is a target).
const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const WRITE_THROUGH: u64 = 1 << 3;
const NO_CACHE: u64 = 1 << 4;
const HUGE_PAGE: u64 = 1 << 7;
const GLOBAL: u64 = 1 << 8;
/// Set by the CPU when a page is used; not part of what was mapped.
const ACCESSED_DIRTY: u64 = (1 << 5) | (1 << 6);
const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const TABLE_FLAGS: u64 = PRESENT | WRITABLE;

/// Physical address of the kernel's PML4, once `init` has switched to it.
static KERNEL_PML4: AtomicU64 = AtomicU64::new(0);

/// Builds 4-level page tables in identity-mapped frames.
struct Builder<'a> {
    pml4: u64,
    alloc: &'a mut dyn FnMut() -> Option<u64>,
    tables: usize,
}

impl Builder<'_> {
    fn new_table(&mut self) -> Result<u64, PagingError> {
        let frame = (self.alloc)().ok_or(PagingError::OutOfFrames)?;
        // SAFETY: the frame was just allocated for this table alone and is identity-mapped
        // by the boot tables; zero entries are "not present".
        unsafe { core::ptr::write_bytes(frame as *mut u8, 0, PAGE as usize) };
        self.tables += 1;
        Ok(frame)
    }

    /// Pointer to entry `index` of the table at `table`.
    fn entry(table: u64, index: u64) -> *mut u64 {
        (table + (index & 511) * 8) as *mut u64
    }

    /// Maps `[start, end)` (page-aligned; empty if `end <= start`) to itself, with 2 MiB
    /// pages where alignment allows. Not inlined: one copy serves every range, which keeps
    /// the boot path short to translate under TCG.
    #[inline(never)]
    fn map_range(&mut self, start: u64, end: u64, flags: u64) -> Result<(), PagingError> {
        let mut a = start;
        while a < end {
            let size = if a.is_multiple_of(HUGE) && end - a >= HUGE {
                HUGE
            } else {
                PAGE
            };
            self.map(a, size, flags)?;
            a += size;
        }
        Ok(())
    }

    /// Maps `addr` to itself with a page of `size` (4 KiB or 2 MiB) and `flags`.
    #[inline(never)]
    fn map(&mut self, addr: u64, size: u64, flags: u64) -> Result<(), PagingError> {
        self.map_with(addr, size, flags, false)
    }

    /// As `map`; with `same_ok`, a page already mapped exactly so is not an error.
    fn map_with(
        &mut self,
        addr: u64,
        size: u64,
        flags: u64,
        same_ok: bool,
    ) -> Result<(), PagingError> {
        let mut table = self.pml4;
        let leaf_shift = if size == HUGE { 21 } else { 12 };
        for shift in [39u64, 30, 21, 12] {
            let e = Self::entry(table, addr >> shift);
            // SAFETY: `table` is a page table this builder created (identity-mapped), and
            // `entry` stays inside it.
            let value = unsafe { e.read() };
            if shift == leaf_shift {
                let leaf = addr | flags | if size == HUGE { HUGE_PAGE } else { 0 };
                if value & PRESENT != 0 {
                    // The CPU may have marked the page accessed or dirty since.
                    return if same_ok && value & !ACCESSED_DIRTY == leaf {
                        Ok(())
                    } else {
                        Err(PagingError::Overlap(addr))
                    };
                }
                // SAFETY: as above.
                unsafe { e.write(leaf) };
                return Ok(());
            }
            table = if value & PRESENT == 0 {
                let t = self.new_table()?;
                // SAFETY: as above.
                unsafe { e.write(t | TABLE_FLAGS) };
                t
            } else if value & HUGE_PAGE != 0 {
                return Err(PagingError::Overlap(addr));
            } else {
                value & ADDR_MASK
            };
        }
        Ok(())
    }
}

/// Builds the kernel page tables for `ram` (usable RAM ranges) and switches to them.
/// Returns the number of page-table frames used.
pub fn init(
    ram: &[PhysRange],
    lapic: u64,
    alloc: &mut dyn FnMut() -> Option<u64>,
) -> Result<usize, PagingError> {
    let mut b = Builder {
        pml4: 0,
        alloc,
        tables: 0,
    };
    b.pml4 = b.new_table()?;
    let image = kernel_image();
    let guards = super::stacks::guard_pages();
    let rw = PRESENT | WRITABLE | NO_EXECUTE | GLOBAL;

    // Kernel image with section permissions; the stack guard pages (in .bss) stay
    // unmapped. Then the rest of RAM (never page 0).
    let [g0, g1] = guards;
    let (g0, g1) = (g0.min(g1), g0.max(g1));
    let data_start = image.rodata.end;
    // link.ld orders text < rodata < data/bss, and both stacks are statics in .bss.
    let ordered = image.whole.start <= image.text.start
        && image.text.end <= image.rodata.start
        && data_start <= g0
        && g1 + PAGE <= image.whole.end;
    if !ordered || g0 == g1 {
        return Err(PagingError::UnexpectedLayout);
    }
    let pieces = [
        (image.whole.start, image.text.start, rw),
        (image.text.start, image.text.end, PRESENT | GLOBAL),
        (
            image.rodata.start,
            image.rodata.end,
            PRESENT | NO_EXECUTE | GLOBAL,
        ),
        (data_start, g0, rw),
        (g0 + PAGE, g1, rw),
        (g1 + PAGE, image.whole.end, rw),
    ];
    for (start, end, flags) in pieces {
        b.map_range(start, end, flags)?;
    }
    for r in ram {
        let start = r.start.max(PAGE);
        b.map_range(start, r.end.min(image.whole.start), rw)?;
        b.map_range(start.max(image.whole.end), r.end, rw)?;
    }

    // Local APIC registers: uncached, never executable.
    b.map(
        lapic,
        PAGE,
        PRESENT | WRITABLE | NO_EXECUTE | NO_CACHE | WRITE_THROUGH,
    )?;

    // SAFETY: the new tables map everything the kernel touches from here on: its image
    // (code, data, the boot stack minus its guard), all usable RAM and the APIC. PGE lets
    // GLOBAL entries survive later address-space switches.
    unsafe {
        Cr4::update(|f| f.insert(Cr4Flags::PAGE_GLOBAL));
        Cr3::write(
            PhysFrame::containing_address(PhysAddr::new(b.pml4)),
            Cr3Flags::empty(),
        );
    }
    KERNEL_PML4.store(b.pml4, Ordering::Relaxed);
    Ok(b.tables)
}

/// Serialises changes to the live kernel tables.
static LIVE: spin::Mutex<()> = spin::Mutex::new(());

/// Identity-maps device registers `[phys, phys + len)` uncached and never executable in
/// the live kernel tables. Mapping the same range again is fine; a range that overlaps RAM
/// or other mappings with different attributes is refused.
pub fn map_mmio(
    phys: u64,
    len: u64,
    alloc: &mut dyn FnMut() -> Option<u64>,
) -> Result<(), PagingError> {
    let pml4 = KERNEL_PML4.load(Ordering::Relaxed);
    if pml4 == 0 {
        return Err(PagingError::UnexpectedLayout);
    }
    let start = phys & !(PAGE - 1);
    let end = phys
        .checked_add(len)
        .and_then(|e| e.checked_next_multiple_of(PAGE))
        .ok_or(PagingError::Overlap(phys))?;
    // Identity mapping needs a canonical lower-half address (and one the builder's 4-level
    // walk covers): below 2^47.
    if end > 1 << 47 {
        return Err(PagingError::Overlap(phys));
    }
    let flags = PRESENT | WRITABLE | NO_EXECUTE | NO_CACHE | WRITE_THROUGH;
    x86_64::instructions::interrupts::without_interrupts(|| {
        let _g = LIVE.lock();
        let mut b = Builder {
            pml4,
            alloc,
            tables: 0,
        };
        let mut a = start;
        while a < end {
            // Entries go from not-present to present: no stale TLB entry can exist.
            b.map_with(a, PAGE, flags, true)?;
            a += PAGE;
        }
        Ok(())
    })
}
