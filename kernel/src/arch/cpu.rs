//! Single CPU instructions wrapped safely.

use core::arch::asm;

/// Reads the time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` only reads a counter; CR4.TSD is never set by plinth.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Halts until the next interrupt, with interrupts enabled atomically (`sti; hlt`), so a
/// wake-up that arrives between the check and the halt is not lost.
#[inline(always)]
pub fn idle_wait() {
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// Stops this CPU for good: interrupts off, halt in a loop.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// The faulting address of the last page fault.
pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Deliberate faults for the self-tests. Each one is a single instruction whose effect
/// the exception handlers must report; none returns.
pub mod deliberate {
    use super::asm;

    /// Reads a near-null address: page fault with CR2 = 0x10.
    pub fn page_fault() -> ! {
        // SAFETY: faults on purpose; the handler reports it and stops the machine.
        unsafe { asm!("mov rax, qword ptr [0x10]", out("rax") _, options(nostack)) };
        unreachable!("reading 0x10 did not fault")
    }

    /// Loads through a non-canonical address: general protection fault.
    pub fn gp_fault() -> ! {
        // SAFETY: faults on purpose (non-canonical address); the handler stops the machine.
        unsafe {
            asm!("mov rax, 0x8000000000000000", "mov rax, qword ptr [rax]", out("rax") _, options(nostack))
        };
        unreachable!("non-canonical load did not fault")
    }

    /// `ud2`: invalid opcode.
    pub fn invalid_opcode() -> ! {
        // SAFETY: faults on purpose; the handler stops the machine.
        unsafe { asm!("ud2", options(nostack, noreturn)) }
    }

    /// Writes to the kernel's own code, which is mapped read-only: page fault.
    pub fn write_text() -> ! {
        let target = write_text as *const () as u64;
        // SAFETY: faults on purpose (text is read-only); the handler stops the machine.
        unsafe { asm!("mov byte ptr [{0}], 0xcc", in(reg) target, options(nostack)) };
        unreachable!("kernel text is writable")
    }
}
