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
    /// Not inlined: `BootInfo::read` calls it from three places on the way to `ready`,
    /// and under TCG every inlined copy is translated anew.
    #[inline(never)]
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        if addr < PAGE || end > 1 << 32 {
            return false;
        }
        // SAFETY: [addr, end) lies in the boot stub's identity map of the first 4 GiB
        // (checked above), which is live until `init` switches tables; it is firmware
        // data in RAM, not device memory, and a byte copy has no alignment requirement.
        // `buf` is the caller's own buffer on the kernel stack, so the two cannot overlap.
        unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
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
    /// Not inlined: called from `init` and `leaf_table`, one translated copy.
    #[inline(never)]
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
    /// pages where alignment allows. Pages are filled a table at a time, one walk per
    /// table: the kernel image is hundreds of 4 KiB pages, and 64 GiB of RAM 32,768
    /// 2 MiB ones. Not inlined: one copy
    /// serves every range, which keeps the boot path short to translate under TCG.
    #[inline(never)]
    fn map_range(&mut self, start: u64, end: u64, flags: u64) -> Result<(), PagingError> {
        let mut a = start;
        while a < end {
            // A run of pages of one size that one table holds: 2 MiB pages up to the next
            // 1 GiB line, else 4 KiB pages up to the next 2 MiB line.
            let (size, stop) = if a.is_multiple_of(HUGE) && end - a >= HUGE {
                let reach = end.min((a / (512 * HUGE) + 1) * (512 * HUGE)) - a;
                (HUGE, a + reach / HUGE * HUGE)
            } else {
                (PAGE, end.min((a / HUGE + 1) * HUGE))
            };
            let table = self.leaf_table(a, size)?;
            while a < stop {
                self.set_leaf(table, a, size, flags, false)?;
                a += size;
            }
        }
        Ok(())
    }

    /// Maps `addr` to itself with a page of `size` (4 KiB or 2 MiB) and `flags`.
    #[inline(never)]
    fn map(&mut self, addr: u64, size: u64, flags: u64) -> Result<(), PagingError> {
        self.map_with(addr, size, flags, false)
    }

    /// As `map`; with `same_ok`, a page already mapped exactly so is not an error.
    #[inline(never)]
    fn map_with(
        &mut self,
        addr: u64,
        size: u64,
        flags: u64,
        same_ok: bool,
    ) -> Result<(), PagingError> {
        let table = self.leaf_table(addr, size)?;
        self.set_leaf(table, addr, size, flags, same_ok)
    }

    /// The table that holds the entry for a page of `size` at `addr`, created (with the
    /// tables above it) if missing.
    fn leaf_table(&mut self, addr: u64, size: u64) -> Result<u64, PagingError> {
        let leaf_shift = if size == HUGE { 21 } else { 12 };
        let mut table = self.pml4;
        for shift in [39u64, 30, 21] {
            if shift == leaf_shift {
                break;
            }
            let e = Self::entry(table, addr >> shift);
            // SAFETY: `table` is a page table this builder created (identity-mapped), and
            // `entry` stays inside it.
            let value = unsafe { e.read() };
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
        Ok(table)
    }

    /// Writes the entry for a page of `size` at `addr` into `table` (from `leaf_table`);
    /// with `same_ok`, a page already mapped exactly so is not an error.
    fn set_leaf(
        &mut self,
        table: u64,
        addr: u64,
        size: u64,
        flags: u64,
        same_ok: bool,
    ) -> Result<(), PagingError> {
        let (shift, huge) = if size == HUGE {
            (21, HUGE_PAGE)
        } else {
            (12, 0)
        };
        let e = Self::entry(table, addr >> shift);
        // SAFETY: `table` is a page table this builder created (identity-mapped), and
        // `entry` stays inside it.
        let value = unsafe { e.read() };
        let leaf = addr | flags | huge;
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
    // Identity mapping stays in PML4 slot 0, the one slot every partition's address space
    // shares; slot 1 onwards is the user window (plinth_abi::USER_BASE).
    if end > plinth_abi::USER_BASE {
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

const USER: u64 = 1 << 2;
/// PML4 slot of the user window; slot 0 (the kernel's identity map) is shared.
const USER_SLOT: u64 = plinth_abi::USER_BASE >> 39;
const _: () = assert!(USER_SLOT == 1 && (plinth_abi::USER_END - 1) >> 39 == USER_SLOT);

/// What an agent may do with a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserPerms {
    pub write: bool,
    pub execute: bool,
}

/// Why a user address could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserAccessError {
    /// Outside the user window, or not mapped.
    Unmapped(u64),
    /// Mapped read-only, and the access writes.
    ReadOnly(u64),
}

/// A partition's page tables. PML4 slot 0 points at the kernel's own tables (entries
/// without the user bit, so ring 3 cannot touch them); the user window (slot 1) is
/// private, and every frame under it — tables and pages — was allocated by this value,
/// zeroed, and is returned by [`AddressSpace::release`].
pub struct AddressSpace {
    pml4: u64,
    /// Page-table frames, the PML4 included: the cost of isolation.
    tables: u64,
    /// The last two pages [`AddressSpace::translate`] found, with frame and permissions,
    /// most recent first: a system call's buffers are walked more than once (checked,
    /// then copied), and an agent's next call mostly uses the same two pages (its text
    /// or a name, and a buffer on its stack). Never stale: a mapping, once made, is
    /// neither changed nor removed while the space lives (`release` consumes it).
    recent: core::cell::Cell<[Option<(u64, u64, UserPerms)>; 2]>,
}

impl AddressSpace {
    /// An address space with nothing mapped in the user window.
    pub fn new(alloc: &mut dyn FnMut() -> Option<u64>) -> Result<AddressSpace, PagingError> {
        let kernel = KERNEL_PML4.load(Ordering::Relaxed);
        if kernel == 0 {
            return Err(PagingError::UnexpectedLayout);
        }
        let mut b = Builder {
            pml4: 0,
            alloc,
            tables: 0,
        };
        let pml4 = b.new_table()?;
        // SAFETY: both are page-table frames in identity-mapped RAM: the kernel's (live,
        // read here) and the new one (written here, not yet in use).
        unsafe { Builder::entry(pml4, 0).write(Builder::entry(kernel, 0).read()) };
        Ok(AddressSpace {
            pml4,
            tables: 1,
            recent: core::cell::Cell::new([None; 2]),
        })
    }

    /// Maps a fresh zeroed frame at user page `va` with `perms`. Returns its physical
    /// address; `Overlap` if `va` is mapped already, `OutOfFrames` when `alloc` runs dry.
    pub fn map_new(
        &mut self,
        va: u64,
        perms: UserPerms,
        alloc: &mut dyn FnMut() -> Option<u64>,
    ) -> Result<u64, PagingError> {
        if !va.is_multiple_of(PAGE) || !(plinth_abi::USER_BASE..plinth_abi::USER_END).contains(&va)
        {
            return Err(PagingError::Overlap(va));
        }
        let mut b = Builder {
            pml4: self.pml4,
            alloc,
            tables: 0,
        };
        let mut table = self.pml4;
        for shift in [39u64, 30, 21] {
            let e = Builder::entry(table, va >> shift);
            // SAFETY: `table` is one of this space's page-table frames (identity-mapped).
            let value = unsafe { e.read() };
            table = if value & PRESENT == 0 {
                let t = b.new_table()?;
                // SAFETY: as above.
                unsafe { e.write(t | TABLE_FLAGS | USER) };
                self.tables += 1;
                t
            } else {
                value & ADDR_MASK
            };
        }
        let e = Builder::entry(table, va >> 12);
        // SAFETY: as above.
        if unsafe { e.read() } & PRESENT != 0 {
            return Err(PagingError::Overlap(va));
        }
        let frame = b.new_table()?; // a zeroed frame; not a table, the same allocation
        let mut leaf = frame | PRESENT | USER;
        if perms.write {
            leaf |= WRITABLE;
        }
        if !perms.execute {
            leaf |= NO_EXECUTE;
        }
        // SAFETY: as above; the entry was not present, so no TLB entry can be stale.
        unsafe { e.write(leaf) };
        Ok(frame)
    }

    /// Page-table frames this space holds.
    pub fn table_frames(&self) -> u64 {
        self.tables
    }

    /// The frame (its base address) behind user page `va` and what the agent may do with
    /// it: present with the user bit at every level, inside the user window.
    #[inline]
    pub fn translate(&self, va: u64) -> Option<(u64, UserPerms)> {
        let page = va & !(PAGE - 1);
        let recent = self.recent.get();
        if let Some((_, frame, perms)) = recent.iter().flatten().find(|(p, _, _)| *p == page) {
            return Some((*frame, *perms));
        }
        if !(plinth_abi::USER_BASE..plinth_abi::USER_END).contains(&va) {
            return None;
        }
        let mut table = self.pml4;
        let mut writable = true;
        let mut executable = true;
        for shift in [39u64, 30, 21, 12] {
            // SAFETY: `table` is one of this space's page-table frames (identity-mapped).
            let value = unsafe { Builder::entry(table, va >> shift).read() };
            if value & (PRESENT | USER) != PRESENT | USER || value & HUGE_PAGE != 0 {
                return None;
            }
            writable &= value & WRITABLE != 0;
            executable &= value & NO_EXECUTE == 0;
            table = value & ADDR_MASK;
        }
        let perms = UserPerms {
            write: writable,
            execute: executable,
        };
        self.recent.set([Some((page, table, perms)), recent[0]]);
        Some((table, perms))
    }

    /// Calls `f` with the `len` bytes of agent memory at `va`, every page mapped for ring
    /// 3: in place when they lie in one page (the common case for a system call's text
    /// or name: no copy, no buffer to clear), else gathered into a heap buffer first.
    pub fn with_bytes<R>(
        &self,
        va: u64,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, UserAccessError> {
        // An empty range touches nothing, wherever it points (an empty slice's pointer
        // is dangling).
        if len == 0 {
            return Ok(f(&[]));
        }
        let page = va & !(PAGE - 1);
        if (va - page).saturating_add(len as u64) <= PAGE {
            let (frame, _) = self.translate(page).ok_or(UserAccessError::Unmapped(va))?;
            // SAFETY: `frame + (va - page) .. + len` lies in one frame this space mapped
            // for the agent (present and user at every level), identity-mapped. Nothing
            // writes it while `f` holds the slice: the agent is not running (the kernel is
            // handling its system call, on the one CPU) and no other code writes agent
            // frames; the borrow ends with `f`.
            let bytes =
                unsafe { core::slice::from_raw_parts((frame + (va - page)) as *const u8, len) };
            return Ok(f(bytes));
        }
        self.check(va, len, false)?;
        let mut gathered = alloc::vec::Vec::with_capacity(len);
        self.pages(va, len, false, &mut |frame_addr, _, n| {
            // SAFETY: as above, for one page piece.
            gathered.extend_from_slice(unsafe {
                core::slice::from_raw_parts(frame_addr as *const u8, n)
            });
        })?;
        Ok(f(&gathered))
    }

    /// Copies `dst.len()` bytes of agent memory from `va`. Every page must be mapped for
    /// ring 3; nothing is copied past the first one that is not.
    pub fn read(&self, va: u64, dst: &mut [u8]) -> Result<(), UserAccessError> {
        self.each_page(va, dst.len(), false, &mut |frame_addr, done, n| {
            // SAFETY: `frame_addr..+n` lies in one frame this space mapped for the agent,
            // allocated to it alone and identity-mapped; `dst` is a distinct kernel buffer.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    frame_addr as *const u8,
                    dst[done..done + n].as_mut_ptr(),
                    n,
                )
            }
        })
    }

    /// Copies `src` into agent memory at `va`; every page must be mapped writable for
    /// ring 3 unless `as_loader` (the kernel filling a fresh image).
    pub fn write(&mut self, va: u64, src: &[u8], as_loader: bool) -> Result<(), UserAccessError> {
        self.each_page(va, src.len(), !as_loader, &mut |frame_addr, done, n| {
            // SAFETY: as in `read`, with the roles swapped.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    src[done..done + n].as_ptr(),
                    frame_addr as *mut u8,
                    n,
                )
            }
        })
    }

    /// Checks that `[va, va + len)` is mapped for ring 3 on every page (and writable,
    /// with `need_write`); touches nothing.
    pub fn check(&self, va: u64, len: usize, need_write: bool) -> Result<(), UserAccessError> {
        if len == 0 {
            return Ok(());
        }
        let page = va & !(PAGE - 1);
        if (va - page).saturating_add(len as u64) <= PAGE {
            let (_, perms) = self.translate(page).ok_or(UserAccessError::Unmapped(va))?;
            if need_write && !perms.write {
                return Err(UserAccessError::ReadOnly(va));
            }
            return Ok(());
        }
        self.pages(va, len, need_write, &mut |_, _, _| {})
    }

    /// Checks the whole range first, then calls `f(frame address, offset, length)` per
    /// page piece; so a bad range copies nothing. A range within one page (most system
    /// calls' buffers) is walked once; a longer one is checked, then walked again.
    fn each_page(
        &self,
        va: u64,
        len: usize,
        need_write: bool,
        f: &mut dyn FnMut(u64, usize, usize),
    ) -> Result<(), UserAccessError> {
        if len == 0 {
            return Ok(());
        }
        let page = va & !(PAGE - 1);
        if (va - page).saturating_add(len as u64) <= PAGE {
            let (frame, perms) = self.translate(page).ok_or(UserAccessError::Unmapped(va))?;
            if need_write && !perms.write {
                return Err(UserAccessError::ReadOnly(va));
            }
            f(frame + (va - page), 0, len);
            return Ok(());
        }
        self.check(va, len, need_write)?;
        self.pages(va, len, need_write, f)
    }

    /// Walks `[va, va + len)` page piece by page piece, calling `f` for each one that is
    /// mapped as asked, stopping at the first that is not.
    fn pages(
        &self,
        va: u64,
        len: usize,
        need_write: bool,
        f: &mut dyn FnMut(u64, usize, usize),
    ) -> Result<(), UserAccessError> {
        let end = va
            .checked_add(len as u64)
            .ok_or(UserAccessError::Unmapped(va))?;
        let mut a = va;
        while a < end {
            let page = a & !(PAGE - 1);
            let n = (page + PAGE).min(end) - a;
            let (frame, perms) = self.translate(page).ok_or(UserAccessError::Unmapped(a))?;
            if need_write && !perms.write {
                return Err(UserAccessError::ReadOnly(a));
            }
            f(frame + (a - page), (a - va) as usize, n as usize);
            a += n;
        }
        Ok(())
    }

    /// Makes this the live address space.
    pub fn activate(&self) {
        if Cr3::read_raw().0.start_address().as_u64() != self.pml4 {
            // SAFETY: slot 0 maps the kernel exactly as the kernel tables do (it is the same
            // entry), so the running code, its stack and data stay mapped.
            unsafe {
                Cr3::write(
                    PhysFrame::containing_address(PhysAddr::new(self.pml4)),
                    Cr3Flags::empty(),
                )
            };
        }
    }

    /// Returns every frame of the user window (pages and tables) and the PML4 through
    /// `free`, switching to the kernel's tables first if this space is live. Returns
    /// the number of frames freed.
    pub fn release(self, free: &mut dyn FnMut(u64)) -> usize {
        if Cr3::read_raw().0.start_address().as_u64() == self.pml4 {
            activate_kernel();
        }
        let mut count = 0;
        let mut give = |addr: u64| {
            free(addr);
            count += 1;
        };
        Self::release_table(self.pml4, 4, USER_SLOT..USER_SLOT + 1, &mut give);
        give(self.pml4);
        count
    }

    /// Frees what entries `slots` of the table at `table` (level 4 = PML4) point to.
    fn release_table(
        table: u64,
        level: u32,
        slots: core::ops::Range<u64>,
        free: &mut dyn FnMut(u64),
    ) {
        for i in slots {
            // SAFETY: `table` is one of this space's page-table frames (identity-mapped),
            // no longer live.
            let value = unsafe { Builder::entry(table, i).read() };
            if value & PRESENT == 0 {
                continue;
            }
            let next = value & ADDR_MASK;
            if level > 1 {
                Self::release_table(next, level - 1, 0..512, free);
            }
            free(next);
        }
    }
}

/// Switches back to the kernel's own tables (no user window).
pub fn activate_kernel() {
    let pml4 = KERNEL_PML4.load(Ordering::Relaxed);
    if pml4 != 0 && Cr3::read_raw().0.start_address().as_u64() != pml4 {
        // SAFETY: the kernel tables map everything the kernel uses (see `init`).
        unsafe {
            Cr3::write(
                PhysFrame::containing_address(PhysAddr::new(pml4)),
                Cr3Flags::empty(),
            )
        };
    }
}
