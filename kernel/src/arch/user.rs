//! Ring 3: entering an agent and getting control back.
//!
//! plinth runs agents the way a hypervisor runs a vCPU: [`UserContext::run`] loads an
//! agent's registers and drops to ring 3, and *returns* when the agent makes a system call
//! or is interrupted (timer, device, exception), with the agent's registers saved in the
//! context and [`TrapFrame::vector`] saying why. The kernel then handles the exit on its
//! one stack, in safe Rust, and runs the same or another context. No kernel stack per
//! agent, no kernel code ever preempted by an agent.
//!
//! How the registers get into the context: TSS.RSP0 points just past it, so an interrupt
//! from ring 3 makes the CPU push its frame into the context's tail, the vector stub adds
//! the vector and `trap_common` the general registers — filling it exactly — and then
//! jumps to [`user_exit`] instead of calling a handler. `syscall` does not switch stacks,
//! so [`syscall_entry`] switches to the same place and pushes the same frame by hand.
//! Both end by restoring the kernel stack saved at entry and returning from `run`.
//!
//! Owns the `syscall` MSRs and the entry/exit assembly; it must not interpret system
//! calls or decide anything about agents (the kernel's `partition` module does). Calls
//! that can be answered at once are answered on a fast path by a closure the caller of
//! [`UserContext::run`] passes in, without leaving `run` (see [`syscall_entry`]).

use core::arch::naked_asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, Msr, SFMask};
use x86_64::registers::rflags::RFlags;

use super::frame::TrapFrame;
use super::gdt;

/// The vector [`TrapFrame::vector`] holds after a `syscall` (above every real vector).
pub const SYSCALL_VECTOR: u64 = 0x100;

/// Kernel stack pointer saved by `run`, restored by `user_exit`.
static KERNEL_RSP: AtomicU64 = AtomicU64::new(0);
/// End of the running context (= TSS.RSP0): where `syscall_entry` builds its frame.
static FRAME_END: AtomicU64 = AtomicU64::new(0);
/// The agent's stack pointer while `syscall_entry` switches stacks.
static USER_RSP: AtomicU64 = AtomicU64::new(0);

/// An agent's registers while it is not running: the frame the CPU and the stubs push,
/// laid out so RSP0 = its end is 16-byte aligned (22 quadwords = 11 × 16 bytes).
#[repr(C, align(16))]
pub struct UserContext {
    pub frame: TrapFrame,
}

const _: () = assert!(size_of::<UserContext>() == 22 * 8);

/// RFLAGS bits an agent may hold: the arithmetic flags, TF, DF and AC. IF is always
/// set; IOPL, NT, RF, VM, VIF, VIP and ID never come from the agent.
const USER_FLAGS: u64 = 0x0004_0dd5;

/// Why a context could not be entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnterError {
    /// The saved instruction pointer is not a canonical lower-half address; `iretq`
    /// would fault in ring 0.
    BadRip(u64),
}

impl UserContext {
    /// A context that starts at `rip` with stack pointer `rsp`, all else zero.
    pub fn new(rip: u64, rsp: u64) -> UserContext {
        UserContext {
            frame: TrapFrame {
                r15: 0,
                r14: 0,
                r13: 0,
                r12: 0,
                r11: 0,
                r10: 0,
                r9: 0,
                r8: 0,
                rbp: 0,
                rdi: 0,
                rsi: 0,
                rdx: 0,
                rcx: 0,
                rbx: 0,
                rax: 0,
                vector: 0,
                error_code: 0,
                rip,
                cs: u64::from(gdt::USER_CS),
                rflags: RFlags::INTERRUPT_FLAG.bits() | 2,
                rsp,
                ss: u64::from(gdt::USER_SS),
            },
        }
    }

    /// Runs the agent in ring 3 (in the address space the caller activated) until its
    /// next system call that `fast` does not answer, or interrupt; then `frame.vector`
    /// says which, and the registers are the agent's at that point. Returns with
    /// interrupts disabled. `fast` answers system calls without leaving `run` (it must
    /// not touch this context: the agent's registers are not in it meanwhile).
    pub fn run(&mut self, fast: &mut FastCall<'_>) -> Result<(), EnterError> {
        let f = &mut self.frame;
        if f.rip >= 1 << 47 {
            return Err(EnterError::BadRip(f.rip));
        }
        // Whatever the kernel did with the frame, the agent gets ring-3 segments and
        // interrupts on.
        f.cs = u64::from(gdt::USER_CS);
        f.ss = u64::from(gdt::USER_SS);
        f.rflags = (f.rflags & USER_FLAGS) | RFlags::INTERRUPT_FLAG.bits() | 2;
        x86_64::instructions::interrupts::disable();
        let end = (self as *mut UserContext as u64) + size_of::<UserContext>() as u64;
        if FRAME_END.load(Ordering::Relaxed) != end {
            gdt::set_rsp0(end);
            FRAME_END.store(end, Ordering::Relaxed);
        }
        // After a system call the agent expects RCX and R11 clobbered (the `syscall`
        // contract), so the cheaper `sysretq` may return it; an interrupted or new
        // context needs every register back, which only `iretq` does.
        let by_sysret = self.frame.vector == SYSCALL_VECTOR;
        let fast: *mut FastCall<'_> = fast;
        // SAFETY: only the trait object's lifetime changes, and `fast_path` uses the
        // pointer only while this call keeps `fast` borrowed (the cell is cleared below,
        // before returning); interrupts are off, so nothing else reads the cell.
        unsafe {
            *FAST.0.get() = Some(core::mem::transmute::<
                *mut FastCall<'_>,
                *mut FastCall<'static>,
            >(fast))
        };
        // SAFETY: `self` is a valid, 16-byte aligned context in kernel memory that
        // outlives the call (it is borrowed mutably for it); TSS.RSP0 and FRAME_END point
        // at its end, so everything the CPU and the entry stubs push while the agent runs
        // lands inside it. The frame holds ring-3 selectors, a canonical RIP (checked
        // above, which `sysretq` needs as much as `iretq`) and RFLAGS with IOPL 0, so
        // either return can only enter ring 3. Both return through `user_exit` with the
        // callee-saved registers they pushed.
        unsafe {
            if by_sysret {
                enter_sysret(self)
            } else {
                enter(self)
            }
        };
        // SAFETY: interrupts are off again (every exit from ring 3 clears IF), no agent
        // runs, so nothing reads the cell while it is cleared.
        unsafe { *FAST.0.get() = None };
        Ok(())
    }
}

/// Saves the kernel's callee-saved registers and stack, loads the context and `iretq`s.
#[unsafe(naked)]
unsafe extern "C" fn enter(ctx: *mut UserContext) {
    naked_asm!(
        "push rbp", "push rbx", "push r12", "push r13", "push r14", "push r15",
        "mov [rip + {kernel_rsp}], rsp",
        "mov rsp, rdi",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "add rsp, 16",
        "iretq",
        kernel_rsp = sym KERNEL_RSP,
    )
}

/// As [`enter`], returning with `sysretq`: RIP from the frame into RCX, RFLAGS into R11,
/// the agent's RSP loaded last. Interrupts stay off until `sysretq` sets the agent's
/// RFLAGS (IF on), so nothing runs on the agent's stack in ring 0. (An NMI in that
/// window would; plinth configures no NMI sources.)
#[unsafe(naked)]
unsafe extern "C" fn enter_sysret(ctx: *mut UserContext) {
    naked_asm!(
        "push rbp", "push rbx", "push r12", "push r13", "push r14", "push r15",
        "mov [rip + {kernel_rsp}], rsp",
        "mov rsp, rdi",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        // Now RSP points at vector; then error code, RIP, CS, RFLAGS, RSP, SS.
        "mov rcx, [rsp + 16]",
        "mov r11, [rsp + 32]",
        "mov rsp, [rsp + 40]",
        "sysretq",
        kernel_rsp = sym KERNEL_RSP,
    )
}

/// Back to the kernel: the context is full; restore what `enter` saved and return from it.
#[unsafe(naked)]
pub extern "C" fn user_exit() {
    naked_asm!(
        "mov rsp, [rip + {kernel_rsp}]",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
        "ret",
        kernel_rsp = sym KERNEL_RSP,
    )
}

/// What the fast path made of a system call: `handled` 0 sends the call down the full
/// path; otherwise `value` goes back in RAX at once. Returned in RAX:RDX.
#[repr(C)]
pub struct FastResult {
    pub handled: u64,
    pub value: u64,
}

/// Answers a system call on the fast path, given its number and its five argument
/// registers (RDI, RSI, RDX, R10, R8): `Some(value)` for RAX, or `None` to send it down
/// the full path, out of [`UserContext::run`]. Runs on the kernel stack with interrupts
/// off, while the agent's registers other than those are untouched.
pub type FastCall<'a> = dyn FnMut(u64, [u64; 5]) -> Option<u64> + 'a;

/// The fast path of the agent running now: set by [`UserContext::run`] for exactly the
/// time the agent runs, `None` otherwise.
struct FastCell(UnsafeCell<Option<*mut FastCall<'static>>>);

// SAFETY: one CPU; written only by `run` with interrupts off, before entering ring 3 and
// after the agent's exit, and read only by `fast_path`, which runs only in between (a
// `syscall` from the agent `run` entered).
unsafe impl Sync for FastCell {}

static FAST: FastCell = FastCell(UnsafeCell::new(None));

/// The fast path's Rust side, called on the kernel stack with interrupts off.
extern "C" fn fast_path(number: u64, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> FastResult {
    // SAFETY: see `FastCell`: while an agent runs, the cell holds the closure `run` was
    // given, which `run` keeps borrowed (and so alive and otherwise unused) until it
    // returns; no other code runs meanwhile, so this is its only use.
    let value = unsafe { (*FAST.0.get()).and_then(|f| (*f)(number, [a0, a1, a2, a3, a4])) };
    match value {
        Some(value) => FastResult { handled: 1, value },
        None => FastResult {
            handled: 0,
            value: 0,
        },
    }
}

/// `syscall` lands here in ring 0 with the agent's RSP, RIP in RCX and RFLAGS in R11, and
/// interrupts off (SFMASK clears IF).
///
/// First the fast path: the [`FastCall`] given to `run` is called with the number and the
/// arguments on the kernel stack below the point `enter` saved, preserving every
/// register the ABI preserves; if it answers, the agent resumes by `sysretq` without the
/// frame being built or `run` returning. Calls it leaves (those that give up the CPU)
/// restore the registers and take the full path, which builds the same frame an
/// interrupt would and returns from `enter`.
#[unsafe(naked)]
extern "C" fn syscall_entry() {
    naked_asm!(
        "mov [rip + {user_rsp}], rsp",
        // Below the kernel's saved RSP is free stack (the kernel is suspended in
        // `enter`). It is 8 mod 16 there; eleven pushes make the `call` aligned.
        "mov rsp, [rip + {kernel_rsp}]",
        "push rcx", "push r11", "push qword ptr [rip + {user_rsp}]",
        "push rax", "push rdi", "push rsi", "push rdx", "push r8", "push r9", "push r10",
        "sub rsp, 8",
        // fast_path(number, a0..a4): the ABI's argument registers are RDI, RSI, RDX,
        // R10, R8; the C ABI's RDI, RSI, RDX, RCX, R8, R9 (RCX is saved above).
        "mov r9, r8",
        "mov r8, r10",
        "mov rcx, rdx",
        "mov rdx, rsi",
        "mov rsi, rdi",
        "mov rdi, rax",
        "call {fast}",
        "add rsp, 8",
        "test rax, rax",
        "jz 2f",
        "mov rax, rdx",
        "pop r10", "pop r9", "pop r8", "pop rdx", "pop rsi", "pop rdi",
        "add rsp, 8",
        "pop qword ptr [rip + {user_rsp}]",
        "pop r11", "pop rcx",
        "mov rsp, [rip + {user_rsp}]",
        "sysretq",
        // Not a fast call: every register back as the agent left it, then the full path.
        "2:",
        "pop r10", "pop r9", "pop r8", "pop rdx", "pop rsi", "pop rdi", "pop rax",
        "pop qword ptr [rip + {user_rsp}]",
        "pop r11", "pop rcx",
        "mov rsp, [rip + {user_rsp}]",
        "mov [rip + {user_rsp}], rsp",
        "mov rsp, [rip + {frame_end}]",
        "push {ss}",
        "push qword ptr [rip + {user_rsp}]",
        "push r11",
        "push {cs}",
        "push rcx",
        "push 0",
        "push {vector}",
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
        "jmp {exit}",
        user_rsp = sym USER_RSP,
        frame_end = sym FRAME_END,
        ss = const gdt::USER_SS as u64,
        cs = const gdt::USER_CS as u64,
        vector = const SYSCALL_VECTOR,
        exit = sym user_exit,
        kernel_rsp = sym KERNEL_RSP,
        fast = sym fast_path,
    )
}

/// What the CPU offers for guarding the kernel from ring 3.
#[derive(Clone, Copy, Debug)]
pub struct Protections {
    pub smep: bool,
    pub smap: bool,
}

/// Enables `syscall`/`sysret` (EFER.SCE), points LSTAR at the entry stub, programs STAR
/// with the GDT's selectors and SFMASK, and turns on SMEP and SMAP where the CPU has them.
pub fn init() -> Protections {
    // CPUID leaf 7, subleaf 0, EBX: bit 7 SMEP, bit 20 SMAP.
    let max_leaf = core::arch::x86_64::__cpuid(0).eax;
    let ebx = if max_leaf >= 7 {
        core::arch::x86_64::__cpuid_count(7, 0).ebx
    } else {
        0
    };
    let p = Protections {
        smep: ebx & (1 << 7) != 0,
        smap: ebx & (1 << 20) != 0,
    };
    // SFMASK: IF (no interrupt before the stack switch), TF, DF, NT, IOPL and AC (an
    // agent must not be able to hand the kernel AC=1, which would switch SMAP off).
    let mask = RFlags::INTERRUPT_FLAG
        | RFlags::TRAP_FLAG
        | RFlags::DIRECTION_FLAG
        | RFlags::NESTED_TASK
        | RFlags::IOPL_HIGH
        | RFlags::IOPL_LOW
        | RFlags::ALIGNMENT_CHECK;
    // STAR: [47:32] syscall CS (SS = +8), [63:48] sysret base (see gdt).
    let star = (u64::from(gdt::SYSRET_BASE) << 48) | (u64::from(gdt::KERNEL_CS) << 32);
    // SAFETY: the entry stub and the GDT layout STAR describes exist for the kernel's
    // lifetime; SMEP/SMAP only restrict the kernel, which never executes or touches user
    // pages (it reaches agent memory through the identity map).
    unsafe {
        SFMask::write(mask);
        LStar::write(x86_64::VirtAddr::new(syscall_entry as *const () as u64));
        Msr::new(0xc000_0081).write(star);
        Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS));
        // x87/MMX state is not switched between agents (the target is soft-float: no
        // agent or kernel code uses it), so it must not be usable: with CR0.EM set, any
        // x87 or MMX instruction raises #NM and ends the agent, instead of leaving state
        // for the next one to read. SSE already raises #UD (CR4.OSFXSR stays clear).
        Cr0::update(|f| f.insert(Cr0Flags::EMULATE_COPROCESSOR));
        Cr4::update(|f| {
            if p.smep {
                f.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
            }
            if p.smap {
                f.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
            }
        });
    }
    p
}
