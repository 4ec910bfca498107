//! The `syscall` instruction, and the only `unsafe` code of the crate.
//!
//! The runtime checks every argument against the agent's own address space (a bad pointer
//! is [`Error::BadPointer`], never a fault), so the kernel's integrity does not depend on
//! this module. What does is the agent's own memory safety: the runtime *writes* into
//! buffers for `config_read`, `disk_read`, `net_recv` and `mem_grow`, and Rust must own those bytes
//! exclusively while it does. Each function below passes only pointers derived from a
//! borrow it holds for the whole call, and says so where it makes the call.

use core::arch::asm;

use plinth_abi::{Call, Error, HEAP_BASE, HEAP_END, PAGE_SIZE, decode};

/// Makes system call `n` with arguments `a` and returns `rax`.
///
/// Register use follows the ABI: number in `rax`, arguments in `rdi`, `rsi`, `rdx`, `r10`,
/// `r8`, result in `rax`; `rcx` (return RIP) and `r11` (RFLAGS) are overwritten by the
/// instruction; every other register, the stack (the runtime switches to its own) and the
/// direction flag are preserved.
///
/// # Safety
///
/// Every buffer the call writes must be memory this agent may write and that nothing else
/// (no live reference) accesses during the call, for the length passed. Buffers the call
/// only reads may be anything: the runtime validates them.
unsafe fn syscall(n: u64, a: [u64; 5]) -> u64 {
    let rax: u64;
    // SAFETY: `syscall` enters the runtime, which returns to the next instruction with
    // only rax, rcx and r11 changed (declared here); it uses its own stack, so `nostack`.
    // No `nomem`/`readonly`: the runtime may read and (per the caller's contract, within
    // buffers the caller owns exclusively) write memory.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n => rax,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    rax
}

/// A call with at most one argument, which is not a pointer the runtime writes through:
/// Null, Clock, Sleep, Yield, Exit, Heartbeat, DiskSectors, DiskFlush, NetInfo.
pub fn scalar(call: Call, arg: u64) -> u64 {
    debug_assert!(!matches!(
        call,
        Call::Log
            | Call::ConfigRead
            | Call::DiskRead
            | Call::DiskWrite
            | Call::MemGrow
            | Call::NetSend
            | Call::NetRecv
            | Call::NetWait
    ));
    // SAFETY: every other argument is 0, so even for a call that writes a buffer, the
    // buffer is (address 0, length 0) in every position: the runtime writes nothing of ours.
    unsafe { syscall(call as u64, [arg, 0, 0, 0, 0]) }
}

/// Log: `(ptr, len)`; the runtime only reads.
pub fn log(text: &str) -> u64 {
    let a = [text.as_ptr() as u64, text.len() as u64, 0, 0, 0];
    // SAFETY: the runtime only reads the line, which the borrow keeps alive.
    unsafe { syscall(Call::Log as u64, a) }
}

/// ConfigRead: `(name_ptr, name_len, buf_ptr, buf_len, offset)`; writes `buf`.
pub fn config_read(name: &str, offset: u64, buf: &mut [u8]) -> u64 {
    let a = [
        name.as_ptr() as u64,
        name.len() as u64,
        buf.as_mut_ptr() as u64,
        buf.len() as u64,
        offset,
    ];
    // SAFETY: the runtime writes at most `buf.len()` bytes at `buf`, which the exclusive
    // borrow owns for the call; `name` is only read.
    unsafe { syscall(Call::ConfigRead as u64, a) }
}

/// DiskRead: `(sector, buf_ptr, len)`; writes `buf`.
pub fn disk_read(sector: u64, buf: &mut [u8]) -> u64 {
    let a = [sector, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0];
    // SAFETY: the runtime writes at most `buf.len()` bytes at `buf`, which the exclusive
    // borrow owns for the call.
    unsafe { syscall(Call::DiskRead as u64, a) }
}

/// DiskWrite: `(sector, buf_ptr, len)`; the runtime only reads.
pub fn disk_write(sector: u64, buf: &[u8]) -> u64 {
    let a = [sector, buf.as_ptr() as u64, buf.len() as u64, 0, 0];
    // SAFETY: the runtime only reads `buf`, which the borrow keeps alive.
    unsafe { syscall(Call::DiskWrite as u64, a) }
}

/// NetSend: `(nic, ptr, len, offload)`; the runtime only reads.
pub fn net_send(nic: u64, frame: &[u8], offload: u64) -> u64 {
    let a = [nic, frame.as_ptr() as u64, frame.len() as u64, offload, 0];
    // SAFETY: the runtime only reads `frame`, which the borrow keeps alive.
    unsafe { syscall(Call::NetSend as u64, a) }
}

/// NetRecv: `(nic, ptr, cap)`; writes `buf`.
pub fn net_recv(nic: u64, buf: &mut [u8]) -> u64 {
    let a = [nic, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0];
    // SAFETY: the runtime writes at most `buf.len()` bytes at `buf` (a longer frame is
    // refused and stays queued), which the exclusive borrow owns for the call.
    unsafe { syscall(Call::NetRecv as u64, a) }
}

/// NetOffload: `(nic, features)`; no pointers.
pub fn net_offload(nic: u64, features: u64) -> u64 {
    // SAFETY: no argument is a pointer: the runtime writes nothing of ours.
    unsafe { syscall(Call::NetOffload as u64, [nic, features, 0, 0, 0]) }
}

/// NetWait: `(rx_mask, tx_mask, timeout_ns)`; no pointers.
pub fn net_wait(rx_mask: u64, tx_mask: u64, timeout_ns: u64) -> u64 {
    // SAFETY: no argument is a pointer: the runtime writes nothing of ours.
    unsafe { syscall(Call::NetWait as u64, [rx_mask, tx_mask, timeout_ns, 0, 0]) }
}

/// MemGrow: `(bytes)`; returns the new region as a slice of exactly `bytes`.
pub fn mem_grow(bytes: u64) -> Result<&'static mut [u8], Error> {
    // SAFETY: MemGrow takes no buffer; the memory it maps is new.
    let address = decode(unsafe { syscall(Call::MemGrow as u64, [bytes, 0, 0, 0, 0]) })?;
    // Trust, but check the promise the slice below rests on: a page-aligned region inside
    // the heap window (which also bounds `bytes` far below `isize::MAX`).
    let inside = address % PAGE_SIZE == 0
        && address >= HEAP_BASE
        && address
            .checked_add(bytes)
            .is_some_and(|end| end <= HEAP_END);
    if !inside {
        return Err(Error::BadPointer);
    }
    // SAFETY: the runtime has just mapped `[address, address + bytes)` (rounded up to
    // pages) zeroed and writable, for this agent alone, and hands each region out once and
    // never unmaps it (there is no free call): nothing else refers to it, now or later, so
    // a `'static` exclusive slice over it is valid. Zeroed bytes are valid `u8`s; the
    // length fits in `isize` (checked above against the heap window).
    Ok(unsafe { core::slice::from_raw_parts_mut(address as *mut u8, bytes as usize) })
}

/// The time-stamp counter (`rdtsc`): ring 3 may read it (the runtime leaves CR4.TSD
/// clear), and it costs no system call.
pub fn ticks() -> u64 {
    // SAFETY: `rdtsc` reads a counter into registers; it touches no memory.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Any call with any arguments, for `hostshim::raw::syscall5` (see its documentation).
pub fn unchecked(n: u64, a: [u64; 5]) -> u64 {
    // SAFETY: NOT upheld in general, by design: this is the hostile agent's door for
    // handing the runtime arbitrary pointers. Pointers outside the agent's writable memory
    // (the point of that agent) are refused by the runtime before anything is written; a
    // pointer into the agent's own memory is the caller's responsibility, as
    // `hostshim::raw::syscall5` documents.
    unsafe { syscall(n, a) }
}
