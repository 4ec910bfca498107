//! The IDT and the assembly entry stubs for exceptions and interrupts.
//!
//! Stable Rust has no `x86-interrupt` ABI, so each vector gets a naked stub that pushes a
//! uniform [`TrapFrame`] (a dummy error code where the CPU pushes none, then the vector
//! number and all fifteen general registers) and calls the handler `init` registered
//! (the kernel's `trap::handle`: policy lives above `arch`). On return the registers are
//! restored and `iretq` resumes the interrupted code. A trap from ring 3 instead ends the
//! agent's run: see [`super::user`].

pub use super::frame::TrapFrame;
use super::{apic, gdt};
use core::arch::naked_asm;
use core::cell::UnsafeCell;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, Segment};
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;

// After the CPU's 5-qword frame (RSP 16-byte aligned first, as long mode always does), the
// stubs push 2 and `trap_common` 15 qwords: 22 in all, so RSP is 16-byte aligned again at
// the `call` and the Rust handler sees the ABI's alignment.
#[unsafe(naked)]
extern "C" fn trap_common() {
    naked_asm!(
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        // From ring 3 (CS RPL != 0): the frame just filled an agent's context (TSS.RSP0
        // points past it); hand control back to the kernel that entered the agent.
        "test qword ptr [rsp + 144], 3",
        "jnz {user_exit}",
        "mov rdi, rsp",
        "cld",
        "call {dispatch}",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "add rsp, 16",
        "iretq",
        dispatch = sym dispatch,
        user_exit = sym super::user::user_exit,
    )
}

/// What runs on a trap in ring 0.
pub type TrapHandler = fn(&mut TrapFrame);

/// The handler `init` registered. A plain cell, like the IDT: written once by `init`
/// before `lidt`, so no gate can reach `dispatch` before it holds the real handler.
struct HandlerCell(UnsafeCell<TrapHandler>);

// SAFETY: written only by `init`, once, on the boot CPU before the IDT is loaded (and
// so before any trap can read it); only read afterwards.
unsafe impl Sync for HandlerCell {}

static HANDLER: HandlerCell = HandlerCell(UnsafeCell::new(unregistered));

/// Never runs: no gate is present before `init` has registered the real handler.
fn unregistered(_: &mut TrapFrame) {
    super::exit::exit(plinth_exit::ExitCode::Fault);
}

extern "C" fn dispatch(frame: &mut TrapFrame) {
    // SAFETY: see `HandlerCell`: the cell is not written once traps can happen.
    let handler = unsafe { *HANDLER.0.get() };
    handler(frame);
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
    v32 = 32 noerr; v48 = 48 noerr; v49 = 49 noerr; v50 = 50 noerr; v51 = 51 noerr;
    v52 = 52 noerr; v53 = 53 noerr; v54 = 54 noerr; v55 = 55 noerr; v56 = 56 noerr;
    v57 = 57 noerr; v58 = 58 noerr; v59 = 59 noerr; v60 = 60 noerr; v61 = 61 noerr;
    v62 = 62 noerr; v255 = 255 noerr;
}

/// One 16-byte IDT gate (Intel SDM vol. 3, 6.14.1).
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

/// Present, DPL 0, 64-bit interrupt gate (interrupts disabled on entry).
const INTERRUPT_GATE: u8 = 0x8e;

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn new(handler: u64, selector: u16, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector,
            ist,
            attributes: INTERRUPT_GATE,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

/// The IDT: every gate missing until `init` fills in the stubs' gates in place. A plain
/// cell, not a `Once`: one CPU, one call, and less code on the path to `ready`.
struct IdtCell(UnsafeCell<Idt>);

// SAFETY: written only by `init`, once, on the boot CPU before `lidt`; afterwards only
// the CPU reads it (through IDTR).
unsafe impl Sync for IdtCell {}

static IDT: IdtCell = IdtCell(UnsafeCell::new(Idt([Gate::MISSING; 256])));

/// Registers `handler` for every trap in ring 0, then builds and loads the IDT. Double
/// faults run on their own IST stack. The table is built
/// by hand from [`STUBS`] (the `x86_64` crate's typed IDT spends hundreds of instructions
/// on per-field setters, and boot time is a target); vectors without a stub stay
/// not-present, so they end in a double fault that is reported.
pub fn init(handler: TrapHandler) {
    // SAFETY: see `HandlerCell`: this is the one write, before `lidt` below.
    unsafe { *HANDLER.0.get() = handler };
    debug_assert!(STUBS.iter().any(|(v, _)| *v == apic::TIMER_VECTOR));
    debug_assert!(STUBS.iter().any(|(v, _)| *v == apic::SPURIOUS_VECTOR));
    let code = CS::get_reg().0;
    // SAFETY: `init` runs once, on the boot CPU, before `lidt`: nothing else references
    // the table yet, and only the CPU reads it afterwards.
    let idt: &'static mut Idt = unsafe { &mut *IDT.0.get() };
    for &(vector, stub) in STUBS {
        // IST numbers in a gate are 1-based; 0 means "stay on the current stack".
        let ist = if vector == 8 {
            gdt::DOUBLE_FAULT_IST as u8 + 1
        } else {
            0
        };
        idt.0[usize::from(vector)] = Gate::new(stub as *const () as u64, code, ist);
    }
    let pointer = DescriptorTablePointer {
        limit: (size_of::<Idt>() - 1) as u16,
        base: VirtAddr::new(&raw const *idt as u64),
    };
    // SAFETY: the table lives forever (a static) and every present gate points at a stub
    // that builds a TrapFrame and returns with `iretq`, in the code segment loaded by
    // gdt::init; the IST index refers to the stack installed there.
    unsafe { lidt(&pointer) };
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
