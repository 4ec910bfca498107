//! `memcpy`, `memmove`, `memset` and `memcmp`/`bcmp` as plain loops of 8-byte moves and
//! compares, for the code that runs under QEMU's TCG: the kernel and the agents.
//!
//! `compiler_builtins` implements them with `rep movsq`/`rep stosq` (and `rep movsb`
//! for the tail). Under TCG — the reference accelerator here — a `rep`-prefixed string
//! instruction runs one iteration per translation-block exit, a few nanoseconds each:
//! zeroing a 400-byte stack array cost more than the system call around it, zeroing a
//! 4 KiB page 512 such exits, and in an agent's TCP stack the copies of every segment
//! into and out of the socket buffers were as much of the time as the checksums. A loop
//! of ordinary moves is translated once and chained to itself, and is no worse on
//! hardware for the sizes copied here (frames, request buffers, small structs).
//!
//! [`string_routines!`] expands to the assembly (a macro, so the symbols land in the
//! object of the crate that invokes it — the kernel binary, `hostshim` for agents — and
//! are linked for certain); those strong definitions take the place of
//! `compiler_builtins`' weak ones at link time. Written in assembly so the compiler
//! cannot turn the loops back into calls to the very functions they define.
//! `compiler_builtins`' `memcmp` compares a byte at a time; comparing words first makes
//! a file-name lookup on the kernel's system-call path a third of the instructions.
//!
//! Invoke it only in code built for `x86_64-unknown-none`: on a host with a C library
//! the symbols would take the place of libc's.
#![no_std]

/// Defines `memcpy`, `memmove`, `memset`, `memcmp` and `bcmp` (System V x86_64 calling
/// convention, the C semantics) in the invoking crate. See the crate docs.
#[macro_export]
macro_rules! string_routines {
    () => {
        core::arch::global_asm!(
            // memcpy(dest: rdi, src: rsi, n: rdx) -> rax = dest. Regions do not overlap.
            ".globl memcpy",
            ".type memcpy,@function",
            ".p2align 4",
            "memcpy:",
            "    mov rax, rdi",
            "    mov rcx, rdx",
            "    shr rcx, 5",
            "    jz 23f",
            // 32 bytes a turn.
            "22:  mov r8, [rsi]",
            "    mov r9, [rsi + 8]",
            "    mov r10, [rsi + 16]",
            "    mov r11, [rsi + 24]",
            "    mov [rdi], r8",
            "    mov [rdi + 8], r9",
            "    mov [rdi + 16], r10",
            "    mov [rdi + 24], r11",
            "    add rsi, 32",
            "    add rdi, 32",
            "    dec rcx",
            "    jnz 22b",
            "23:  mov rcx, rdx",
            "    shr rcx, 3",
            "    and rcx, 3",
            "    jz 25f",
            "24:  mov r8, [rsi]",
            "    mov [rdi], r8",
            "    add rsi, 8",
            "    add rdi, 8",
            "    dec rcx",
            "    jnz 24b",
            "25:  and edx, 7",
            "    jz 27f",
            "26:  mov r8b, [rsi]",
            "    mov [rdi], r8b",
            "    inc rsi",
            "    inc rdi",
            "    dec edx",
            "    jnz 26b",
            "27:  ret",
            ".size memcpy, . - memcpy",
            // memmove(dest: rdi, src: rsi, n: rdx) -> rax = dest. Regions may overlap: forward
            // unless dest lies inside [src, src + n), then backward.
            ".globl memmove",
            ".type memmove,@function",
            ".p2align 4",
            "memmove:",
            "    mov rax, rdi",
            "    sub rax, rsi",
            "    cmp rax, rdx",
            "    jae memcpy",
            "    mov rax, rdi",
            "    lea rsi, [rsi + rdx]",
            "    lea rdi, [rdi + rdx]",
            "    mov rcx, rdx",
            "    shr rcx, 3",
            "    jz 29f",
            "28:  sub rsi, 8",
            "    sub rdi, 8",
            "    mov r8, [rsi]",
            "    mov [rdi], r8",
            "    dec rcx",
            "    jnz 28b",
            "29:  and edx, 7",
            "    jz 33f",
            "32:  dec rsi",
            "    dec rdi",
            "    mov r8b, [rsi]",
            "    mov [rdi], r8b",
            "    dec edx",
            "    jnz 32b",
            "33: ret",
            ".size memmove, . - memmove",
            // memset(dest: rdi, byte: esi, n: rdx) -> rax = dest.
            ".globl memset",
            ".type memset,@function",
            ".p2align 4",
            "memset:",
            "    mov r9, rdi",
            "    movzx eax, sil",
            "    movabs r8, 0x0101010101010101",
            "    imul r8, rax",
            "    mov rcx, rdx",
            "    shr rcx, 5",
            "    jz 35f",
            "34: mov [rdi], r8",
            "    mov [rdi + 8], r8",
            "    mov [rdi + 16], r8",
            "    mov [rdi + 24], r8",
            "    add rdi, 32",
            "    dec rcx",
            "    jnz 34b",
            "35: mov rcx, rdx",
            "    shr rcx, 3",
            "    and rcx, 3",
            "    jz 37f",
            "36: mov [rdi], r8",
            "    add rdi, 8",
            "    dec rcx",
            "    jnz 36b",
            "37: and edx, 7",
            "    jz 39f",
            "38: mov [rdi], r8b",
            "    inc rdi",
            "    dec edx",
            "    jnz 38b",
            "39: mov rax, r9",
            "    ret",
            ".size memset, . - memset",
            // memcmp(a: rdi, b: rsi, n: rdx) -> eax: <0, 0, >0 as the first differing byte of a
            // is below, equal to or above b's (as unsigned). bcmp is the same function.
            ".globl memcmp",
            ".type memcmp,@function",
            ".globl bcmp",
            ".type bcmp,@function",
            ".p2align 4",
            "memcmp:",
            "bcmp:",
            "    xor eax, eax",
            "    cmp rdx, 8",
            "    jb 44f",
            // Whole words first, then the last 8 bytes as one word (overlapping the words
            // already found equal, so the first difference still decides).
            "    lea r10, [rdi + rdx - 8]",
            "    lea r11, [rsi + rdx - 8]",
            "    mov rcx, rdx",
            "    shr rcx, 3",
            "42: mov r8, [rdi]",
            "    mov r9, [rsi]",
            "    cmp r8, r9",
            "    jne 46f",
            "    add rdi, 8",
            "    add rsi, 8",
            "    dec rcx",
            "    jnz 42b",
            "    mov r8, [r10]",
            "    mov r9, [r11]",
            "    cmp r8, r9",
            "    jne 46f",
            "    ret",
            // Fewer than 8 bytes: one at a time.
            "44: test rdx, rdx",
            "    jz 45f",
            "43: movzx eax, byte ptr [rdi]",
            "    movzx ecx, byte ptr [rsi]",
            "    sub eax, ecx",
            "    jnz 45f",
            "    inc rdi",
            "    inc rsi",
            "    dec edx",
            "    jnz 43b",
            "45: ret",
            // The words differ: in memory order, the first differing byte decides, which is
            // the most significant one once both are byte-swapped.
            "46: bswap r8",
            "    bswap r9",
            "    cmp r8, r9",
            "    sbb eax, eax",
            "    or eax, 1",
            "    ret",
            ".size memcmp, . - memcmp",
            ".size bcmp, . - memcmp",
        );
    };
}
