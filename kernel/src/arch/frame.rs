//! The registers a trap or system call leaves behind, as the entry stubs push them.
//!
//! Shared by the interrupt stubs (`interrupts`) and ring-3 entry and exit (`user`), which
//! fill the same frame, so each can name it without naming the other.

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
