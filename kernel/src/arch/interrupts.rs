//! The IDT and the assembly entry stubs for exceptions and interrupts.
//!
//! Stable Rust has no `x86-interrupt` ABI, so each vector gets a naked stub that pushes a
//! uniform [`TrapFrame`] (a dummy error code where the CPU pushes none, then the vector
//! number and all fifteen general registers) and calls [`crate::trap::handle`]. On return
//! the registers are restored and `iretq` resumes the interrupted code.

use super::{apic, gdt};
use core::arch::naked_asm;
use spin::Once;
use x86_64::VirtAddr;
use x86_64::structures::idt::InterruptDescriptorTable;

/// Registers saved on entry, lowest address first (the order `trap_common` pushes them).
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

// After the CPU's 5-qword frame (RSP 16-byte aligned first, as long mode always does), the
// stubs push 2 and `trap_common` 15 qwords: 22 in all, so RSP is 16-byte aligned again at
// the `call` and the Rust handler sees the ABI's alignment.
#[unsafe(naked)]
extern "C" fn trap_common() {
    naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        "mov rdi, rsp",
        "cld",
        "call {dispatch}",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "add rsp, 16",
        "iretq",
        dispatch = sym dispatch,
    )
}

extern "C" fn dispatch(frame: &mut TrapFrame) {
    crate::trap::handle(frame);
}

macro_rules! stubs {
    ($($name:ident = $vector:literal $kind:ident;)*) => {
        $(stubs!(@one $name $vector $kind);)*
        /// (vector, stub) for every vector plinth installs.
        const STUBS: &[(u8, extern "C" fn())] = &[$(($vector, $name)),*];
    };
    (@one $name:ident $vector:literal noerr) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            naked_asm!("push 0", "push {v}", "jmp {c}", v = const $vector, c = sym trap_common)
        }
    };
    (@one $name:ident $vector:literal err) => {
        #[unsafe(naked)]
        extern "C" fn $name() {
            naked_asm!("push {v}", "jmp {c}", v = const $vector, c = sym trap_common)
        }
    };
}

stubs! {
    v0 = 0 noerr; v1 = 1 noerr; v2 = 2 noerr; v3 = 3 noerr; v4 = 4 noerr; v5 = 5 noerr;
    v6 = 6 noerr; v7 = 7 noerr; v8 = 8 err; v9 = 9 noerr; v10 = 10 err; v11 = 11 err;
    v12 = 12 err; v13 = 13 err; v14 = 14 err; v16 = 16 noerr; v17 = 17 err; v18 = 18 noerr;
    v19 = 19 noerr; v20 = 20 noerr; v21 = 21 err; v28 = 28 noerr; v29 = 29 err; v30 = 30 err;
    v32 = 32 noerr; v255 = 255 noerr;
}

static IDT: Once<InterruptDescriptorTable> = Once::new();

/// Builds and loads the IDT. Double faults run on their own IST stack.
pub fn init() {
    debug_assert!(STUBS.iter().any(|(v, _)| *v == apic::TIMER_VECTOR));
    debug_assert!(STUBS.iter().any(|(v, _)| *v == apic::SPURIOUS_VECTOR));
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        for &(vector, stub) in STUBS {
            let addr = VirtAddr::new(stub as *const () as u64);
            // SAFETY: every stub is a valid interrupt entry point that builds a TrapFrame and
            // returns with `iretq`; the IST index refers to the stack installed by gdt::init.
            unsafe {
                match vector {
                    8 => {
                        idt.double_fault
                            .set_handler_addr(addr)
                            .set_stack_index(gdt::DOUBLE_FAULT_IST);
                    }
                    0 => _ = idt.divide_error.set_handler_addr(addr),
                    1 => _ = idt.debug.set_handler_addr(addr),
                    2 => _ = idt.non_maskable_interrupt.set_handler_addr(addr),
                    3 => _ = idt.breakpoint.set_handler_addr(addr),
                    4 => _ = idt.overflow.set_handler_addr(addr),
                    5 => _ = idt.bound_range_exceeded.set_handler_addr(addr),
                    6 => _ = idt.invalid_opcode.set_handler_addr(addr),
                    7 => _ = idt.device_not_available.set_handler_addr(addr),
                    9 => {}
                    10 => _ = idt.invalid_tss.set_handler_addr(addr),
                    11 => _ = idt.segment_not_present.set_handler_addr(addr),
                    12 => _ = idt.stack_segment_fault.set_handler_addr(addr),
                    13 => _ = idt.general_protection_fault.set_handler_addr(addr),
                    14 => _ = idt.page_fault.set_handler_addr(addr),
                    16 => _ = idt.x87_floating_point.set_handler_addr(addr),
                    17 => _ = idt.alignment_check.set_handler_addr(addr),
                    18 => _ = idt.machine_check.set_handler_addr(addr),
                    19 => _ = idt.simd_floating_point.set_handler_addr(addr),
                    20 => _ = idt.virtualization.set_handler_addr(addr),
                    21 => _ = idt.cp_protection_exception.set_handler_addr(addr),
                    28 => _ = idt.hv_injection_exception.set_handler_addr(addr),
                    29 => _ = idt.vmm_communication_exception.set_handler_addr(addr),
                    30 => _ = idt.security_exception.set_handler_addr(addr),
                    v => _ = idt[v].set_handler_addr(addr),
                }
            }
        }
        idt
    });
    idt.load();
}

/// Current stack pointer, to tell which stack a handler runs on.
#[inline(always)]
pub fn current_rsp() -> u64 {
    let rsp: u64;
    // SAFETY: reads RSP into a register; no memory access.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags))
    };
    rsp
}
