//! The PVH note, the 32-bit entry stub and the boot stack (target only).
//!
//! Everything here runs before Rust can: it is assembly, and the only unsafe code of
//! this crate. The early page tables identity-map the first 4 GiB with 2 MiB pages so the
//! kernel can read firmware data and build its own tables; the kernel replaces them.

use core::cell::UnsafeCell;

/// Usable size of the boot (kernel main) stack, bytes.
pub const BOOT_STACK_SIZE: usize = 128 * 1024;

/// A stack with one guard page below it. The guard page is mapped by the early tables
/// but left unmapped by the kernel's own, so an overflow faults instead of corrupting.
#[repr(C, align(4096))]
pub struct GuardedStack<const N: usize> {
    guard: UnsafeCell<[u8; 4096]>,
    body: UnsafeCell<[u8; N]>,
}

// SAFETY: a stack is only ever used as raw memory by the CPU; Rust code never forms
// references into it, only takes its addresses.
unsafe impl<const N: usize> Sync for GuardedStack<N> {}

impl<const N: usize> Default for GuardedStack<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> GuardedStack<N> {
    /// A zeroed stack (placed in .bss when used as a static).
    pub const fn new() -> Self {
        GuardedStack {
            guard: UnsafeCell::new([0; 4096]),
            body: UnsafeCell::new([0; N]),
        }
    }

    /// Address of the guard page.
    pub fn guard_page(&self) -> u64 {
        self.guard.get() as u64
    }

    /// Top of the stack (highest address, exclusive).
    pub fn top(&self) -> u64 {
        self.body.get() as u64 + N as u64
    }
}

#[unsafe(no_mangle)]
static PLINTH_BOOT_STACK: GuardedStack<BOOT_STACK_SIZE> = GuardedStack::new();

/// Physical (= virtual at boot) address of the boot stack's guard page.
pub fn boot_stack_guard_page() -> u64 {
    PLINTH_BOOT_STACK.guard_page()
}

unsafe extern "C" {
    /// The kernel's entry: `start_info` physical address and the TSC read at entry.
    fn plinth_kernel_main(start_info: u64, entry_tsc: u64) -> !;
}

// The note's descriptor is the 32-bit entry address widened to 8 bytes (as Linux emits
// it); QEMU reads 4 or 8. The note section must be 4-byte aligned or QEMU ignores it.
core::arch::global_asm!(
    r#"
    .pushsection .note.Xen, "a", @note
    .p2align 2
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .p2align 2
    .quad pvh_start32
    .popsection

    /* The early tables are data, assembled here, not built at run time: under TCG a
       2048-entry loop at entry costs more than loading 24 KiB with the image.
       PML4[0] -> PDPT; PDPT[0..4] -> four PDs; each PD entry a 2 MiB page (P|RW|PS). */
    .pushsection .data.boot_tables, "aw"
    .p2align 12
boot_pml4:
    .quad boot_pdpt + 0x3
    .skip 4096 - 8
boot_pdpt:
    .quad boot_pd + 0x3
    .quad boot_pd + 0x1000 + 0x3
    .quad boot_pd + 0x2000 + 0x3
    .quad boot_pd + 0x3000 + 0x3
    .skip 4096 - 32
boot_pd:
    .set plinth_boot_pd_index, 0
    .rept 2048
    .quad (plinth_boot_pd_index << 21) | 0x83
    .set plinth_boot_pd_index, plinth_boot_pd_index + 1
    .endr
    .popsection

    .pushsection .data.boot, "aw"
    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt
boot_entry_tsc: .quad 0
boot_start_info: .quad 0
    .popsection

    .pushsection .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    rdtsc
    movl %eax, boot_entry_tsc
    movl %edx, boot_entry_tsc + 4
    movl %ebx, boot_start_info

    movl %cr4, %eax
    orl $(1 << 5), %eax              /* PAE */
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx           /* EFER */
    rdmsr
    orl $((1 << 8) | (1 << 11)), %eax /* LME | NXE */
    wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax /* PG | WP | PE */
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $pvh_start64

    .code64
pvh_start64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    leaq {stack} + 4096 + {stack_size}, %rsp
    xorl %ebp, %ebp
    movq boot_start_info, %rdi
    movq boot_entry_tsc, %rsi
    call {main}
3:  hlt
    jmp 3b
    .popsection
    "#,
    stack = sym PLINTH_BOOT_STACK,
    stack_size = const BOOT_STACK_SIZE,
    main = sym plinth_kernel_main,
    options(att_syntax)
);
