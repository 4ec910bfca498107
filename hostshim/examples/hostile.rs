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
//! - `hog-memory`: a memory hog: grows 1 MiB at a time (touching every page) until the
//!   quota refuses, logging `hostile: hog-memory holds N MiB` each 16 MiB and at the
//!   refusal, then rewrites all it holds, over and over, heartbeating, for good; with
//!   `exit_at_quota = true`, it exits 0 at the refusal instead (restarted by its
//!   troubleshooting policy, it churns memory: clearing and mapping, freeing, again).
//! - `syscall-fuzz`: 20 000 system calls with random numbers and arguments drawn from
//!   the interesting ones (null, kernel, unmapped, window-edge and scratch pointers;
//!   zero, small, page-crossing, huge lengths), never `exit` or `sleep`; logs
//!   `hostile: syscall-fuzz done: N calls, E errors`, then heartbeats forever.
//! - `crash`: logs `hostile: crashing` and exits 1. `spin-yield`: yields forever.
//! - `hang`: heartbeats every `heartbeat_ms` (default 100) for `hang_after_ms` (default
//!   1000), logs `hostile: hanging after N heartbeats`, then sleeps forever without
//!   another: alive, but silent to the watchdog.
//! - `net-attack`: attacks the tenant network from NIC 0 (see [`net`]): frames tagged for
//!   another VLAN, double-tagged, with forged source addresses, of bad lengths, then a
//!   broadcast storm. Logs what it handed over per kind, and heartbeats while storming.
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
        "hog-memory" => hog_memory(config::value(text, "exit_at_quota") == Some("true")),
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
        "hang" => {
            let every = config::number(text, "heartbeat_ms").unwrap_or(100);
            let until = config::number(text, "hang_after_ms").unwrap_or(1000);
            let start = hostshim::clock_ns();
            let mut beats = 0;
            while hostshim::clock_ns().saturating_sub(start) < until * 1_000_000 {
                beats = hostshim::heartbeat();
                hostshim::sleep_ms(every);
            }
            logf!("hostile: hanging after {beats} heartbeats");
            loop {
                hostshim::sleep_ms(60_000);
            }
        }
        "net-attack" => net::attack(text),
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

fn hog_memory(exit_at_quota: bool) -> ! {
    const MIB: u64 = 1 << 20;
    // At most 1 GiB: more than any partition here gets.
    let mut held: [Option<&'static mut [u8]>; 1024] = [const { None }; 1024];
    let mut n = 0;
    while n < held.len() {
        match hostshim::mem_grow(MIB) {
            Ok(block) => {
                for page in block.chunks_mut(PAGE_SIZE as usize) {
                    page[0] = 0x5a;
                }
                held[n] = Some(block);
                n += 1;
                if n % 16 == 0 {
                    logf!("hostile: hog-memory holds {n} MiB");
                }
                hostshim::heartbeat();
            }
            Err(_) => break,
        }
    }
    logf!("hostile: hog-memory holds {n} MiB");
    if exit_at_quota {
        hostshim::exit(0);
    }
    let mut pass = 0u8;
    loop {
        pass = pass.wrapping_add(1);
        for block in held.iter_mut().flatten() {
            block.fill(pass);
            hostshim::heartbeat();
        }
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

/// `net-attack`: what a tenant can throw at the switch through its own NIC.
///
/// Config (each line optional):
///
/// ```toml
/// attack = "all"          # or one of: control double-tag tagged spoof runt oversize storm
/// victim_vlan = 100       # the VLAN the tags aim at
/// own_vlan = 300          # the attacker's own VLAN (a tag for it is refused too)
/// victim_mac = "02:…"     # a neighbour's address to forge as source
/// mgmt_mac = "52:…"       # the management stack's address to forge as source
/// storm_delay_ms = 0      # pause between the one-shot attacks and the storm
/// storm_at_ms = 0         # and no storm before the runtime has been up this long
/// storm_len = 60          # bytes per storm frame
/// storm = "wait"          # on a full queue: "wait" for room, or "spin" on WouldBlock
/// storm_dst = "ff:…"      # the storm's destination (default broadcast)
/// ```
///
/// Every frame but the storm's carries EtherType [`ETHERTYPE`] and a payload starting
/// `plinth-hostile KIND`, so a capture tells them apart. Per kind it logs
/// `hostile: net KIND: N handed over, M refused` and for each refusal
/// `hostile: net KIND len L -> CODE (ERROR)`; then `hostile: net one-shots done`. The
/// kinds and what the switch should make of what it is handed:
///
/// - `control`: two broadcasts from the NIC's own address, untagged and priority-tagged
///   (VID 0): legitimate, they must leave on the attacker's VLAN.
/// - `tagged`: single tags for the victim's VLAN, its own VLAN, VID 4095, 802.1ad and
///   0x9100 service tags: `tagged_on_access`.
/// - `double-tag`: a tag wrapping a tag for the victim's VLAN, outer VID own, victim's or
///   0 (priority), and service-tag outers: `tagged_on_access`.
/// - `spoof`: forged unicast sources (the victim's, the management stack's, made up):
///   `spoofed_source`; then broadcast, multicast and all-zero sources: `bad_source`
///   (logged as kind `bad-source`).
/// - `runt`: 0, 1 and 13 bytes: refused by the system call (`BadLength`); then 14, 16
///   and 17 bytes whose EtherType is 0x8100 (a tag cut short), which the call takes and
///   the switch drops as `truncated` (logged as kind `truncated`).
/// - `oversize`: 1515, 1518, 1519, 9000, 65536 and 2^64-1 bytes: `BadLength`.
/// - `offload`: the offload calls misused, each logged `hostile: net offload CASE ->
///   CODE (ERROR)`: an offload word without transmit offload, an unknown offload feature
///   (`Invalid`); then, with transmit offload on, a 9000-byte "super-frame" that is no
///   TCP stream's, one whose segments would not fit a frame, one past
///   `MAX_LARGE_FRAME` (`BadLength`), a segment size without the partial bit and an
///   unknown bit in the word (`Invalid`); then offload off again. Nothing reaches the
///   switch.
/// - `storm`: after `storm_delay_ms` (and not before `storm_at_ms` of uptime: a test can
///   stop the agent in between), logs `hostile: net storming (L-byte broadcasts)` and
///   sends broadcasts from its own address as fast as the NIC takes them, forever;
///   every 5 s logs `hostile: net storm N frames, W would-block`.
mod net {
    use hostshim::abi::{
        Call, Error, MAX_FRAME, MAX_LARGE_FRAME, NET_OFFLOAD_TX, NET_TX_CSUM_PARTIAL,
    };
    use hostshim::{config, logf, nic};

    /// IEEE 802 "local experimental" EtherType 1: nobody's protocol.
    pub const ETHERTYPE: u16 = 0x88b5;
    const BROADCAST: [u8; 6] = [0xff; 6];
    const TPID: u16 = 0x8100;
    const TPID_AD: u16 = 0x88a8;
    const TPID_LEGACY: u16 = 0x9100;
    /// The NIC attacked from.
    const NIC: u8 = 0;

    /// One frame to forge: destination, source, tags (TPID, TCI) outermost first,
    /// EtherType.
    type Forged<'t> = ([u8; 6], [u8; 6], &'t [(u16, u16)], u16);

    struct Attacker {
        own: [u8; 6],
        victim_vlan: u16,
        own_vlan: u16,
        buf: [u8; 1600],
    }

    /// A MAC written `02:00:00:00:00:01`.
    fn parse_mac(text: &str) -> Option<[u8; 6]> {
        let mut m = [0u8; 6];
        let mut parts = text.split(':');
        for b in m.iter_mut() {
            *b = u8::from_str_radix(parts.next()?, 16).ok()?;
        }
        parts.next().is_none().then_some(m)
    }

    impl Attacker {
        /// Writes a frame into `buf`: `dst`, `src`, each tag (TPID, TCI), `ethertype`, a
        /// payload naming `kind`, zero-padded to `len` bytes; returns `len`.
        fn frame(
            &mut self,
            dst: [u8; 6],
            src: [u8; 6],
            tags: &[(u16, u16)],
            ethertype: u16,
            kind: &str,
            len: usize,
        ) -> usize {
            let b = &mut self.buf;
            b[..len].fill(0);
            b[..6].copy_from_slice(&dst);
            b[6..12].copy_from_slice(&src);
            let mut at = 12;
            for (tpid, tci) in tags {
                b[at..at + 2].copy_from_slice(&tpid.to_be_bytes());
                b[at + 2..at + 4].copy_from_slice(&tci.to_be_bytes());
                at += 4;
            }
            b[at..at + 2].copy_from_slice(&ethertype.to_be_bytes());
            at += 2;
            for part in [b"plinth-hostile ".as_slice(), kind.as_bytes()] {
                let n = part.len().min(len.saturating_sub(at));
                b[at..at + n].copy_from_slice(&part[..n]);
                at += n;
            }
            len
        }

        /// Hands the first `len` bytes of `buf` to the NIC, waiting for room if its
        /// queue is full; whether the runtime took it (else logs the refusal).
        fn send(&self, kind: &str, len: usize) -> bool {
            loop {
                match nic::send(NIC, &self.buf[..len]) {
                    Ok(()) => return true,
                    Err(Error::WouldBlock) => {
                        let _ = nic::wait(0, 1 << NIC, 1_000_000_000);
                    }
                    Err(e) => {
                        logf!("hostile: net {kind} len {len} -> {} ({e})", e.code());
                        return false;
                    }
                }
            }
        }

        /// Sends `frames` (dst, src, tags, ethertype) of `len` bytes and logs the tally.
        fn kind(&mut self, kind: &str, frames: &[Forged<'_>]) {
            let (mut ok, mut refused) = (0, 0);
            for (dst, src, tags, ethertype) in frames {
                let len = 64;
                self.frame(*dst, *src, tags, *ethertype, kind, len);
                if self.send(kind, len) {
                    ok += 1;
                } else {
                    refused += 1;
                }
            }
            logf!("hostile: net {kind}: {ok} handed over, {refused} refused");
        }

        fn control(&mut self) {
            let own = self.own;
            self.kind(
                "control",
                &[
                    (BROADCAST, own, &[], ETHERTYPE),
                    // A priority tag (VID 0, PCP 5) is allowed on an access port.
                    (BROADCAST, own, &[(TPID, 5 << 13)], ETHERTYPE),
                ],
            );
        }

        fn tagged(&mut self, victim: Option<[u8; 6]>) {
            let (own, v, mine) = (self.own, self.victim_vlan, self.own_vlan);
            let to_victim = victim.unwrap_or(BROADCAST);
            self.kind(
                "tagged",
                &[
                    (BROADCAST, own, &[(TPID, v)], ETHERTYPE),
                    (to_victim, own, &[(TPID, v)], ETHERTYPE),
                    (BROADCAST, own, &[(TPID, mine)], ETHERTYPE),
                    (BROADCAST, own, &[(TPID, 0x0fff)], ETHERTYPE),
                    (BROADCAST, own, &[(TPID_AD, v)], ETHERTYPE),
                    (BROADCAST, own, &[(TPID_LEGACY, v)], ETHERTYPE),
                ],
            );
            // The longest frame the call takes, tagged for the victim's VLAN.
            let len = MAX_FRAME as usize;
            self.frame(BROADCAST, own, &[(TPID, v)], ETHERTYPE, "tagged", len);
            let ok = self.send("tagged", len);
            logf!(
                "hostile: net tagged-max: {} handed over, {} refused",
                u8::from(ok),
                u8::from(!ok)
            );
        }

        fn double_tag(&mut self, victim: Option<[u8; 6]>) {
            let (own, v, mine) = (self.own, self.victim_vlan, self.own_vlan);
            let to_victim = victim.unwrap_or(BROADCAST);
            self.kind(
                "double-tag",
                &[
                    (BROADCAST, own, &[(TPID, mine), (TPID, v)], ETHERTYPE),
                    (to_victim, own, &[(TPID, mine), (TPID, v)], ETHERTYPE),
                    (BROADCAST, own, &[(TPID, v), (TPID, v)], ETHERTYPE),
                    (to_victim, own, &[(TPID, 0), (TPID, v)], ETHERTYPE),
                    (BROADCAST, own, &[(TPID_AD, mine), (TPID, v)], ETHERTYPE),
                    (BROADCAST, own, &[(TPID_LEGACY, mine), (TPID, v)], ETHERTYPE),
                ],
            );
        }

        fn spoof(&mut self, victim: Option<[u8; 6]>, mgmt: Option<[u8; 6]>) {
            let mut flipped = self.own;
            flipped[5] ^= 1;
            let made_up = [0x02, 0, 0, 0, 0, 0x01];
            let mut forged = [made_up, flipped, made_up, made_up];
            let mut n = 2;
            for m in [victim, mgmt].into_iter().flatten() {
                forged[n] = m;
                n += 1;
            }
            let frames: [Forged<'_>; 4] = forged.map(|src| (BROADCAST, src, &[][..], ETHERTYPE));
            self.kind("spoof", &frames[..n]);
            let unicast_to = victim.unwrap_or(BROADCAST);
            self.kind(
                "bad-source",
                &[
                    (BROADCAST, BROADCAST, &[], ETHERTYPE),
                    (unicast_to, [0x01, 0x00, 0x5e, 0, 0, 1], &[], ETHERTYPE),
                    (BROADCAST, [0; 6], &[], ETHERTYPE),
                ],
            );
        }

        /// Lengths through the raw call, `buf` holding a valid frame for every one.
        fn lengths(&mut self, kind: &str, lens: &[u64], big: &[u8]) {
            let (mut ok, mut refused) = (0, 0);
            for &len in lens {
                let ptr = if len as usize <= self.buf.len() {
                    self.buf.as_ptr()
                } else {
                    big.as_ptr()
                };
                let rax = hostshim::raw::syscall5(
                    Call::NetSend as u64,
                    [u64::from(NIC), ptr as u64, len, 0, 0],
                );
                let code = rax as i64;
                match Error::from_code(code) {
                    Some(e) => {
                        refused += 1;
                        logf!("hostile: net {kind} len {len} -> {code} ({e})");
                    }
                    None => {
                        ok += 1;
                        logf!("hostile: net {kind} len {len} -> {code} (NOT AN ERROR)");
                    }
                }
            }
            logf!("hostile: net {kind}: {ok} handed over, {refused} refused");
        }

        fn runt(&mut self) {
            let own = self.own;
            self.frame(BROADCAST, own, &[], ETHERTYPE, "runt", 64);
            self.lengths("runt", &[0, 1, 13], &[]);
            // A tag's TPID with the tag cut off: the call takes it, the switch must not.
            self.frame(BROADCAST, own, &[], TPID, "truncated", 64);
            self.lengths("truncated", &[14, 16, 17], &[]);
        }

        fn oversize(&mut self, big: &[u8]) {
            let own = self.own;
            self.frame(BROADCAST, own, &[], ETHERTYPE, "oversize", self.buf.len());
            self.lengths("oversize", &[1515, 1518, 1519, 9000, 65536, u64::MAX], big);
        }

        /// The offload calls misused (see the module docs); `big` is mapped memory of at
        /// least `MAX_LARGE_FRAME + 1` bytes.
        fn offload(&mut self, big: &mut [u8]) {
            let own = self.own;
            let (mut ok, mut refused) = (0, 0);
            let mut call = |case: &str, n: Call, a: [u64; 5], want: Error| {
                let code = hostshim::raw::syscall5(n as u64, a) as i64;
                match Error::from_code(code) {
                    Some(e) => {
                        refused += 1;
                        let note = if e == want { "" } else { " UNEXPECTED" };
                        logf!("hostile: net offload {case} -> {code} ({e}){note}");
                    }
                    None => {
                        ok += 1;
                        logf!("hostile: net offload {case} -> {code} (NOT AN ERROR)");
                    }
                }
            };
            let nic = u64::from(NIC);
            self.frame(BROADCAST, own, &[], ETHERTYPE, "offload", 60);
            let frame = self.buf.as_ptr() as u64;
            call(
                "partial-without-offload",
                Call::NetSend,
                [nic, frame, 60, NET_TX_CSUM_PARTIAL, 0],
                Error::Invalid,
            );
            call(
                "unknown-feature",
                Call::NetOffload,
                [nic, 1 << 5, 0, 0, 0],
                Error::Invalid,
            );
            let granted =
                hostshim::raw::syscall5(Call::NetOffload as u64, [nic, NET_OFFLOAD_TX, 0, 0, 0]);
            logf!("hostile: net offload granted {granted}");
            // A TCP/IPv4 frame of `len` bytes at the start of `big`, from its own address.
            let tcp = |big: &mut [u8], len: usize| {
                big[..12].copy_from_slice(&[
                    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, own[0], own[1], own[2], own[3], own[4],
                    own[5],
                ]);
                big[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
                let total = ((len - 14) as u16).to_be_bytes();
                big[14..34].copy_from_slice(&[
                    0x45, 0, total[0], total[1], 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 3, 0, 1, 10, 3, 0,
                    2,
                ]);
                big[34..54].copy_from_slice(&[
                    0, 9, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0x10, 0, 0, 0, 0, 0,
                ]);
            };
            let at = big.as_ptr() as u64;
            big[..9000].fill(0x5a);
            big[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
            call(
                "not-tcp",
                Call::NetSend,
                [nic, at, 9000, NET_TX_CSUM_PARTIAL | 1000, 0],
                Error::BadLength,
            );
            tcp(big, 9000);
            call(
                "segments-past-a-frame",
                Call::NetSend,
                [nic, at, 9000, NET_TX_CSUM_PARTIAL | 1500, 0],
                Error::BadLength,
            );
            let past = MAX_LARGE_FRAME + 1;
            tcp(big, 60_000);
            call(
                "past-max-large-frame",
                Call::NetSend,
                [nic, at, past, NET_TX_CSUM_PARTIAL | 1000, 0],
                Error::BadLength,
            );
            call(
                "size-without-partial",
                Call::NetSend,
                [nic, at, 9000, 1000, 0],
                Error::Invalid,
            );
            call(
                "unknown-bit",
                Call::NetSend,
                [nic, at, 9000, NET_TX_CSUM_PARTIAL | 1000 | 1 << 20, 0],
                Error::Invalid,
            );
            let off = hostshim::raw::syscall5(Call::NetOffload as u64, [nic, 0, 0, 0, 0]);
            logf!("hostile: net offload off -> {off}");
            logf!("hostile: net offload: {ok} handed over, {refused} refused");
        }

        /// Broadcasts from its own address as fast as the NIC takes them; never returns.
        fn storm(&mut self, dst: [u8; 6], len: usize, spin: bool) -> ! {
            let own = self.own;
            let len = len.clamp(14, MAX_FRAME as usize);
            self.frame(dst, own, &[], ETHERTYPE, "storm", len);
            if dst == BROADCAST {
                logf!("hostile: net storming ({len}-byte broadcasts)");
            } else {
                logf!("hostile: net storming ({len}-byte frames to {dst:02x?})");
            }
            let (mut sent, mut blocked) = (0u64, 0u64);
            let mut report = hostshim::clock_ns();
            loop {
                match nic::send(NIC, &self.buf[..len]) {
                    Ok(()) => sent += 1,
                    Err(Error::WouldBlock) => {
                        blocked += 1;
                        if !spin {
                            let _ = nic::wait(0, 1 << NIC, 1_000_000_000);
                        }
                    }
                    Err(e) => {
                        logf!("hostile: net storm -> {e}");
                        hostshim::sleep_ms(1000);
                    }
                }
                if sent.is_multiple_of(1024) || blocked.is_multiple_of(1024) {
                    let now = hostshim::clock_ns();
                    if now.saturating_sub(report) >= 5_000_000_000 {
                        hostshim::heartbeat();
                        logf!("hostile: net storm {sent} frames, {blocked} would-block");
                        report = now;
                    }
                }
            }
        }
    }

    pub fn attack(text: &str) -> i32 {
        let own = match nic::mac(NIC) {
            Ok(m) => m,
            Err(e) => {
                logf!("hostile: net-attack has no NIC ({e})");
                return 2;
            }
        };
        let mac = |key: &str| -> Result<Option<[u8; 6]>, ()> {
            match config::value(text, key) {
                None => Ok(None),
                Some(v) => parse_mac(v).map(Some).ok_or_else(|| {
                    logf!("hostile: {key} = {v:?} is not a MAC");
                }),
            }
        };
        let (Ok(victim), Ok(mgmt), Ok(storm_dst)) =
            (mac("victim_mac"), mac("mgmt_mac"), mac("storm_dst"))
        else {
            return 2;
        };
        let which = config::value(text, "attack").unwrap_or("all");
        let vlan = |key, default| {
            config::number(text, key)
                .and_then(|v| u16::try_from(v).ok())
                .unwrap_or(default)
        };
        let mut a = Attacker {
            own,
            victim_vlan: vlan("victim_vlan", 100),
            own_vlan: vlan("own_vlan", 300),
            buf: [0; 1600],
        };
        let all = which == "all";
        let known = [
            "all",
            "control",
            "double-tag",
            "tagged",
            "spoof",
            "runt",
            "oversize",
            "offload",
            "storm",
        ];
        if !known.contains(&which) {
            logf!("hostile: unknown attack `{which}`");
            return 2;
        }
        if all || which == "control" {
            a.control();
        }
        if all || which == "tagged" {
            a.tagged(victim);
        }
        if all || which == "double-tag" {
            a.double_tag(victim);
        }
        if all || which == "spoof" {
            a.spoof(victim, mgmt);
        }
        if all || which == "runt" {
            a.runt();
        }
        if all || which == "oversize" {
            // Mapped memory behind the long lengths, so only the length can be wrong.
            match hostshim::mem_grow(65536) {
                Ok(big) => a.oversize(big),
                Err(e) => logf!("hostile: net oversize has no buffer ({e})"),
            }
        }
        if all || which == "offload" {
            match hostshim::mem_grow(MAX_LARGE_FRAME + 1) {
                Ok(big) => a.offload(big),
                Err(e) => logf!("hostile: net offload has no buffer ({e})"),
            }
        }
        logf!("hostile: net one-shots done");
        if all || which == "storm" {
            hostshim::sleep_ms(config::number(text, "storm_delay_ms").unwrap_or(0));
            let at_ns = config::number(text, "storm_at_ms").unwrap_or(0) * 1_000_000;
            hostshim::sleep_ns(at_ns.saturating_sub(hostshim::clock_ns()));
            let len = config::number(text, "storm_len").unwrap_or(60) as usize;
            let spin = config::value(text, "storm") == Some("spin");
            a.storm(storm_dst.unwrap_or(BROADCAST), len, spin);
        }
        super::alive_forever()
    }
}
