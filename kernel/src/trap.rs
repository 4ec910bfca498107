//! What happens on each interrupt and exception.
//!
//! Owns the policy: timer ticks count time; every CPU exception in the kernel is fatal and
//! is reported with vector, RIP, error code and CR2 before the machine stops with
//! `ExitCode::Fault`. [`handle`] is registered with `arch::interrupts::init`, which calls
//! it for every trap in ring 0. It must not touch the IDT or stubs (`arch::interrupts`
//! does).

use plinth_exit::ExitCode;

use crate::arch::apic::{self, SPURIOUS_VECTOR, TIMER_VECTOR};
use crate::arch::interrupts::{TrapFrame, current_rsp};
use crate::arch::ioapic::{self, DEVICE_VECTOR};
use crate::arch::{cpu, exit, paging, stacks};
use crate::drivers::{self, msix};
use crate::{clock, console};

/// Entry from the interrupt stubs.
pub fn handle(frame: &mut TrapFrame) {
    match frame.vector as u8 {
        TIMER_VECTOR => {
            clock::tick();
            apic::eoi();
        }
        DEVICE_VECTOR => {
            // Level-triggered and shared: keep the lines masked until the idle loop has
            // asked every device (and so deasserted the line).
            ioapic::mask_device_lines(true);
            drivers::interrupted();
            apic::eoi();
        }
        v if msix::VECTORS.contains(&v) => {
            // Edge-triggered and the device's own: nothing to mask or acknowledge.
            drivers::interrupted();
            apic::eoi();
        }
        SPURIOUS_VECTOR => {}
        _ => fatal(frame),
    }
}

/// Mnemonic and name of an exception vector.
pub fn exception_name(vector: u64) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection fault"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point error"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point error"),
        20 => ("#VE", "virtualization exception"),
        21 => ("#CP", "control protection"),
        _ => ("#??", "unexpected interrupt"),
    }
}

/// Decodes a page-fault error code into words.
struct PfError(u64);

impl core::fmt::Display for PfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let e = self.0;
        f.write_str(if e & 1 != 0 {
            "protection violation"
        } else {
            "not present"
        })?;
        f.write_str(if e & 2 != 0 { ", write" } else { ", read" })?;
        if e & 16 != 0 {
            f.write_str(", instruction fetch")?;
        }
        f.write_str(if e & 4 != 0 { ", user" } else { ", kernel" })?;
        if e & 8 != 0 {
            f.write_str(", reserved bit set")?;
        }
        Ok(())
    }
}

fn fatal(frame: &TrapFrame) -> ! {
    let (mnemonic, name) = exception_name(frame.vector);
    let cr2 = cpu::cr2();
    let rsp_now = current_rsp();
    let on_fault_stack = rsp_now <= stacks::fault_stack_top()
        && rsp_now > stacks::fault_stack_top() - stacks::FAULT_STACK_SIZE as u64;
    console::emergency(format_args!(
        "\nFAULT: {name} ({mnemonic}, vector {}) in kernel at {} ms\n  rip={:#018x} error={:#x} cr2={:#018x}\n",
        frame.vector,
        clock::Millis(clock::now_ns()),
        frame.rip,
        frame.error_code,
        cr2,
    ));
    if frame.vector == 14 {
        console::emergency(format_args!(
            "  page fault: {} at {:#x}\n",
            PfError(frame.error_code),
            cr2
        ));
    }
    let guard = stacks::guard_pages()
        .into_iter()
        .find(|g| (*g..*g + 4096).contains(&cr2) || (*g..*g + 4096).contains(&frame.rsp));
    if let Some(g) = guard {
        console::emergency(format_args!(
            "  kernel stack overflow: guard page at {g:#x} was hit\n"
        ));
    }
    if on_fault_stack {
        console::emergency(format_args!(
            "  handler running on the IST double-fault stack (rsp={rsp_now:#x})\n"
        ));
    }
    let text = paging::kernel_image().text;
    console::emergency(format_args!(
        "  rsp={:#018x} rbp={:#018x} rflags={:#x} cs={:#x}{}\n  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n  rsi={:#018x} rdi={:#018x} r8={:#018x} r9={:#018x}\n",
        frame.rsp,
        frame.rbp,
        frame.rflags,
        frame.cs,
        if text.contains(frame.rip) {
            ""
        } else {
            " (rip outside kernel text)"
        },
        frame.rax,
        frame.rbx,
        frame.rcx,
        frame.rdx,
        frame.rsi,
        frame.rdi,
        frame.r8,
        frame.r9,
    ));
    console::emergency(format_args!(
        "plinth: stopped: fault (exit code {:#x})\n",
        ExitCode::Fault.port_value()
    ));
    exit::exit(ExitCode::Fault)
}
