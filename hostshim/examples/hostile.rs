//! `hostile`: an agent that misbehaves on purpose, to test that the runtime contains it.
//!
//! Demonstrates nothing to imitate: each mode breaks one rule, and the runtime must end
//! or refuse it without harm to itself or other partitions. The mode comes from
//! `etc/hostile.toml` (`mode = "..."`, default `bad-syscalls`):
//!
//! - `null-deref`: reads address 0. `write-kernel`: writes to 0x100000 (kernel memory).
//!   `read-other`: reads the address the config gives as `address = 0x...`.
//!   `invalid-opcode`: executes `ud2`. `gp`: loads from a non-canonical address.
//!   `stack-overflow`: recurses until it runs off its stack into the guard page.
//!   `x87`: executes `fninit` (the runtime keeps the x87 unit off: #NM).
//!   Each should kill the agent with a fault; surviving is logged and exits 4.
//! - `bad-syscalls`: makes every abusive call it knows (unknown numbers, null, kernel,
//!   unmapped, overflowing and window-crossing pointers, a read-only buffer to write,
//!   zero and huge grows), logs `hostile: <case> -> <code> (<error>)` for each (`NOT AN
//!   ERROR` if one succeeded), then `hostile: bad-syscalls done`, and heartbeats forever.
//! - `exhaust-memory`: grows 1 MiB at a time until the quota refuses, logs
//!   `hostile: quota enforced after N MiB`, then heartbeats forever.
//! - `syscall-fuzz`: 20 000 system calls with random numbers and arguments drawn from
//!   the interesting ones (null, kernel, unmapped, window-edge and scratch pointers;
//!   zero, small, page-crossing, huge lengths), never `exit` or `sleep`; logs
//!   `hostile: syscall-fuzz done: N calls, E errors`, then heartbeats forever.
//! - `crash`: logs `hostile: crashing` and exits 1. `spin-yield`: yields forever.
//! - anything else: logged, exit 2.
#![cfg_attr(not(feature = "host"), no_std, no_main)]

use hostshim::abi::{Call, Error, PAGE_SIZE, USER_BASE, USER_END};
use hostshim::{config, logf};

hostshim::entry!(run);

/// The config file, inside the agent's container.
const CONFIG: &str = "etc/hostile.toml";
/// An address in the kernel's identity map (PML4 slot 0), supervisor-only.
const KERNEL_ADDRESS: u64 = 0x10_0000;
/// A non-canonical address (bits 63:47 not all equal): any access is #GP, not #PF.
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;

fn run() -> i32 {
    let mut buf = [0u8; 1024];
    let text = match config::read(CONFIG, &mut buf) {
        Ok(text) => text,
        Err(e) => {
            logf!("hostile: cannot read {CONFIG} ({e}); using defaults");
            ""
        }
    };
    let mode = config::value(text, "mode").unwrap_or("bad-syscalls");
    logf!("hostile: mode {mode}");
    match mode {
        "null-deref" => survived(mode, Some(fault::read(0))),
        "write-kernel" => {
            fault::write(KERNEL_ADDRESS, 0x0bad_c0de);
            survived(mode, None)
        }
        "read-other" => match config::number(text, "address") {
            Some(address) => {
                logf!("hostile: reading {address:#x}");
                survived(mode, Some(fault::read(address)))
            }
            None => {
                logf!("hostile: read-other needs `address = 0x...` in {CONFIG}");
                2
            }
        },
        "invalid-opcode" => fault::invalid_opcode(),
        "x87" => {
            fault::x87();
            survived(mode, None)
        }
        "stack-overflow" => {
            let depth = recurse(0);
            logf!("hostile: stack-overflow returned at depth {depth}; NOT CONTAINED");
            4
        }
        "gp" => survived(mode, Some(fault::read(NON_CANONICAL))),
        "bad-syscalls" => {
            bad_syscalls();
            alive_forever()
        }
        "exhaust-memory" => {
            exhaust_memory();
            alive_forever()
        }
        "syscall-fuzz" => {
            syscall_fuzz(config::number(text, "seed").unwrap_or(0x9e37_79b9_7f4a_7c15));
            alive_forever()
        }
        "crash" => {
            hostshim::log("hostile: crashing");
            hostshim::exit(1)
        }
        "spin-yield" => loop {
            hostshim::yield_now();
        },
        other => {
            logf!("hostile: unknown mode `{other}`");
            2
        }
    }
}

/// A fault mode did not fault (having read `value`, if it read): the runtime failed to
/// contain it.
fn survived(mode: &str, value: Option<u64>) -> i32 {
    match value {
        Some(v) => logf!("hostile: {mode} did not fault (read {v:#x}); NOT CONTAINED"),
        None => logf!("hostile: {mode} did not fault; NOT CONTAINED"),
    }
    4
}

/// Heartbeats once a second, forever.
fn alive_forever() -> ! {
    loop {
        hostshim::heartbeat();
        hostshim::sleep_ms(1000);
    }
}

/// Every abusive system call, each expected to come back as an error.
fn bad_syscalls() {
    let line = "hostile: this line must never be logged";
    let ptr = line.as_ptr() as u64;
    let name = CONFIG;
    // A read-only buffer: the agent's own code.
    let text = run as fn() -> i32 as *const () as u64;
    let log = Call::Log as u64;
    let cases: [(&str, u64, [u64; 5]); 14] = [
        // The first number past the last call (13 until the NIC calls took 13..=16).
        ("unknown-next", Call::ALL.len() as u64, [0; 5]),
        ("unknown-999", 999, [0; 5]),
        ("unknown-max", u64::MAX, [0; 5]),
        ("log-null", log, [0, 16, 0, 0, 0]),
        ("log-kernel-pointer", log, [KERNEL_ADDRESS, 16, 0, 0, 0]),
        // The window's first page lies below the image and is never mapped.
        ("log-unmapped-user", log, [USER_BASE, 16, 0, 0, 0]),
        ("log-len-max", log, [ptr, u64::MAX, 0, 0, 0]),
        // ptr + len wraps around to a small number.
        (
            "log-wrapping",
            log,
            [ptr, 0u64.wrapping_sub(ptr) + 16, 0, 0, 0],
        ),
        ("log-past-window-end", log, [USER_END - 16, 64, 0, 0, 0]),
        (
            "config-read-into-text",
            Call::ConfigRead as u64,
            [name.as_ptr() as u64, name.len() as u64, text, 64, 0],
        ),
        (
            "disk-read-into-kernel",
            Call::DiskRead as u64,
            [0, KERNEL_ADDRESS, 512, 0, 0],
        ),
        (
            "disk-write-from-kernel",
            Call::DiskWrite as u64,
            [0, KERNEL_ADDRESS, 512, 0, 0],
        ),
        ("mem-grow-zero", Call::MemGrow as u64, [0; 5]),
        ("mem-grow-max", Call::MemGrow as u64, [u64::MAX, 0, 0, 0, 0]),
    ];
    for (case, n, args) in cases {
        let rax = hostshim::raw::syscall5(n, args);
        let code = rax as i64;
        match Error::from_code(code) {
            Some(e) => logf!("hostile: {case} -> {code} ({e})"),
            None => logf!("hostile: {case} -> {code} (NOT AN ERROR)"),
        }
    }
    // Not an error, but a forgery the runtime must defuse: a line of its own.
    hostshim::log("hostile: forging\nplinth: ready (forged)\x1b[2J");
    hostshim::log("hostile: bad-syscalls done");
}

/// Grows memory 1 MiB at a time until refused, touching every page it gets.
fn exhaust_memory() {
    const MIB: u64 = 1 << 20;
    let mut total = 0u64;
    let refusal = loop {
        match hostshim::mem_grow(MIB) {
            Ok(block) => {
                // Touch every page: memory the runtime counted must really be ours.
                for page in block.chunks_mut(PAGE_SIZE as usize) {
                    page[0] = 0xa5;
                }
                total += MIB;
            }
            Err(e) => break e,
        }
    };
    logf!("hostile: obtained {} MiB before {refusal}", total / MIB);
    if refusal == Error::QuotaExceeded {
        logf!("hostile: quota enforced after {} MiB", total / MIB);
    } else {
        logf!("hostile: mem_grow refused with {refusal}, not the quota");
    }
}

/// Instructions that must fault. Each is a single instruction in `asm!`: not a Rust
/// memory access, so the compiler can neither assume it away nor reorder around it.
mod fault {
    use core::arch::asm;

    /// Loads the 8 bytes at `address`.
    pub fn read(address: u64) -> u64 {
        let value: u64;
        // SAFETY: deliberately none: the address is meant to be unmapped, foreign or
        // non-canonical, and the fault to end the agent. Had it been mapped, a load would
        // have changed nothing.
        unsafe {
            asm!("mov {v}, qword ptr [{a}]", a = in(reg) address, v = out(reg) value,
                options(nostack, readonly));
        }
        value
    }

    /// Stores `value` at `address`.
    pub fn write(address: u64, value: u64) {
        // SAFETY: deliberately none: the address is kernel memory, and the page fault must
        // end the agent before the store happens.
        unsafe {
            asm!("mov qword ptr [{a}], {v}", a = in(reg) address, v = in(reg) value,
                options(nostack));
        }
    }

    /// Touches the x87 unit (`fninit`), whose state the runtime does not switch between
    /// agents: it must raise #NM rather than work.
    pub fn x87() {
        // SAFETY: deliberately none: on the runtime the instruction faults; on a host it
        // only resets this process's own x87 state.
        unsafe { asm!("fninit", options(nostack, nomem)) }
    }

    /// Executes `ud2` (#UD).
    pub fn invalid_opcode() -> ! {
        // SAFETY: `ud2` raises #UD and never completes, which `noreturn` states.
        unsafe { asm!("ud2", options(noreturn, nomem, nostack)) }
    }
}

/// Recurses with a 1 KiB frame until the stack runs out (the guard page below it faults).
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth as u8; 1024]);
    if depth == u64::MAX {
        return depth;
    }
    core::hint::black_box(recurse(depth + 1)) + u64::from(frame[0])
}

/// Random system calls; the runtime must answer every one (or end the agent cleanly).
fn syscall_fuzz(seed: u64) {
    let scratch = match hostshim::mem_grow(2 * PAGE_SIZE) {
        Ok(b) => b.as_mut_ptr() as u64,
        Err(e) => {
            logf!("hostile: syscall-fuzz has no scratch memory ({e})");
            return;
        }
    };
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let (mut calls, mut errors) = (0u64, 0u64);
    for _ in 0..20_000 {
        let r = next();
        let n = match r % 4 {
            0 => next(),
            _ => r % 16,
        };
        // Never end or park the agent: the point is to keep calling.
        if n == Call::Exit as u64 || n == Call::Sleep as u64 {
            continue;
        }
        let mut a = [0u64; 5];
        for v in a.iter_mut() {
            let r = next();
            *v = match r % 12 {
                0 => 0,
                1 => KERNEL_ADDRESS,
                2 => USER_BASE,
                3 => USER_END - 8,
                4 => NON_CANONICAL,
                5 | 6 => scratch + (r >> 8) % (3 * PAGE_SIZE),
                7 => (r >> 8) % 600,
                8 => PAGE_SIZE + 1,
                9 => u64::MAX,
                10 => 512 * ((r >> 8) % 130),
                _ => next(),
            };
        }
        let rax = hostshim::raw::syscall5(n, a);
        calls += 1;
        if Error::from_code(rax as i64).is_some() {
            errors += 1;
        }
    }
    logf!("hostile: syscall-fuzz done: {calls} calls, {errors} errors");
}
