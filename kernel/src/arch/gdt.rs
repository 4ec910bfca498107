//! GDT and TSS: kernel and user segments in the order `syscall`/`sysret` need, and a TSS
//! whose IST1 stack catches double faults even when the kernel stack is exhausted and
//! whose RSP0 is where the CPU saves an agent's registers when ring 3 is interrupted.

use core::cell::UnsafeCell;

use super::stacks;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{
    Descriptor, DescriptorFlags, GlobalDescriptorTable, SegmentSelector,
};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (0-based, as the `x86_64` crate counts) used for the double-fault handler.
pub const DOUBLE_FAULT_IST: u16 = 0;

/// Kernel code and data selectors.
pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
/// Base of the user selectors as `STAR[63:48]` wants it: `sysretq` loads CS from
/// base + 16 and SS from base + 8 (RPL 3 forced), so the GDT must hold user code32, user
/// data, user code64 in that order right after the kernel pair.
pub const SYSRET_BASE: u16 = 0x18 | 3;
/// Ring-3 data (stack) and 64-bit code selectors, RPL 3.
pub const USER_SS: u16 = 0x20 | 3;
pub const USER_CS: u16 = 0x28 | 3;
const TSS_SELECTOR: u16 = 0x30;

/// The TSS, written only through [`set_rsp0`] after `init` (one CPU).
struct Tss(UnsafeCell<TaskStateSegment>);

// SAFETY: plinth runs on one CPU; the TSS is written only by `init` (once) and by
// `set_rsp0`, which callers invoke with interrupts disabled, and read by the CPU.
unsafe impl Sync for Tss {}

static TSS: Tss = Tss(UnsafeCell::new(TaskStateSegment::new()));
/// The GDT, filled by `init` (the TSS descriptor needs the TSS's address, which a
/// constant cannot hold) and read only by the CPU afterwards. A plain cell, not a
/// `Once`: one CPU, one call, and less code on the path to `ready`.
struct Gdt(UnsafeCell<GlobalDescriptorTable<8>>);

// SAFETY: written once by `init` on the boot CPU before anything reads it; afterwards
// only the CPU reads it (through GDTR).
unsafe impl Sync for Gdt {}

static GDT: Gdt = Gdt(UnsafeCell::new(GlobalDescriptorTable::empty()));

/// Loads the GDT, reloads the segment registers and loads the TSS.
pub fn init() {
    // SAFETY: init runs once on the boot CPU before interrupts are enabled; nothing else
    // holds a reference into the TSS.
    unsafe {
        (*TSS.0.get()).interrupt_stack_table[usize::from(DOUBLE_FAULT_IST)] =
            VirtAddr::new(stacks::fault_stack_top());
    }
    let table = {
        let mut table = GlobalDescriptorTable::<8>::empty();
        let code = table.append(Descriptor::kernel_code_segment());
        let data = table.append(Descriptor::kernel_data_segment());
        // Never loaded: it only fills the slot `sysretq`'s arithmetic skips.
        let code32 = table.append(Descriptor::UserSegment(DescriptorFlags::USER_CODE32.bits()));
        let udata = table.append(Descriptor::user_data_segment());
        let ucode = table.append(Descriptor::user_code_segment());
        // SAFETY: TSS is a static, so the descriptor's pointer stays valid forever.
        let tss = table.append(unsafe { Descriptor::tss_segment_unchecked(TSS.0.get()) });
        debug_assert_eq!(
            [code.0, data.0, code32.0, udata.0, ucode.0, tss.0],
            [
                KERNEL_CS,
                KERNEL_DS,
                SYSRET_BASE,
                USER_SS,
                USER_CS,
                TSS_SELECTOR
            ]
        );
        table
    };
    // SAFETY: `init` runs once, on the boot CPU, before any reference to the GDT exists;
    // the shared reference made here is the only one from then on.
    let gdt: &'static GlobalDescriptorTable<8> = unsafe {
        *GDT.0.get() = table;
        &*GDT.0.get()
    };
    gdt.load();
    let code = SegmentSelector(KERNEL_CS);
    let data = SegmentSelector(KERNEL_DS);
    // SAFETY: the selectors index descriptors of the GDT just loaded, which lives forever.
    unsafe {
        CS::set_reg(code);
        DS::set_reg(data);
        ES::set_reg(data);
        SS::set_reg(data);
        load_tss(SegmentSelector(TSS_SELECTOR));
    }
}

/// Sets where the CPU pushes the interrupted state when ring 3 is interrupted. Call with
/// interrupts disabled; `top` must be 16-byte aligned kernel memory that stays valid
/// until it is replaced.
pub fn set_rsp0(top: u64) {
    debug_assert_eq!(top % 16, 0);
    // SAFETY: one CPU, interrupts off (callers' contract): no one else accesses the TSS
    // now; the CPU reads RSP0 only on a privilege change, which cannot happen in here.
    unsafe { (*TSS.0.get()).privilege_stack_table[0] = VirtAddr::new(top) };
}
