//! Self-tests chosen on the command line (`selftest=...`).
//!
//! Owns what each test checks and how it reports: `selftest NAME: ok ...` or
//! `selftest NAME: FAILED: reason` (then exit `SelfTestFailed`). The fault tests trigger
//! one fault each on purpose; the exception handlers must report it. It must not change
//! kernel state a later boot step depends on: everything allocated is freed.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use plinth_cmdline::SelfTests;
use plinth_exit::ExitCode;

use crate::arch::{cpu::deliberate, heap, phys::OwnedFrame};
use crate::{clock, memory};

/// Runs the selected tests that finish before `ready`; the fault ones do not return.
pub fn run_boot_tests(selected: SelfTests) {
    // The usual boot selects none: one test, not nine, on the path to `ready`.
    if selected.is_empty() {
        return;
    }
    type Check = fn() -> Result<heapless::String<96>, &'static str>;
    let checks: [(SelfTests, &str, Check); 3] = [
        (SelfTests::FRAMES, "frames", frames),
        (SelfTests::HEAP, "heap", heap_objects),
        (SelfTests::MEM, "mem", mem_functions),
    ];
    for (flag, name, check) in checks {
        if !selected.contains(flag) {
            continue;
        }
        match check() {
            Ok(detail) => log::info!("selftest {name}: ok ({detail})"),
            Err(why) => {
                log::error!("selftest {name}: FAILED: {why}");
                crate::console::stop(ExitCode::SelfTestFailed);
            }
        }
    }
    let faults: [(SelfTests, &str, fn() -> !); 7] = [
        (SelfTests::PAGE_FAULT, "pagefault", deliberate::page_fault),
        (SelfTests::GP_FAULT, "gpfault", deliberate::gp_fault),
        (SelfTests::INVALID_OPCODE, "ud", deliberate::invalid_opcode),
        (SelfTests::WRITE_TEXT, "writetext", deliberate::write_text),
        (SelfTests::STACK_OVERFLOW, "stackoverflow", stack_overflow),
        (SelfTests::PANIC, "panic", deliberate_panic),
        (SelfTests::OOM, "oom", exhaust_heap),
    ];
    if let Some((_, name, trigger)) = faults.into_iter().find(|(f, _, _)| selected.contains(*f)) {
        log::info!("selftest {name}: triggering");
        trigger();
    }
}

/// `arch::mem`'s `memcpy`, `memmove`, `memset` and `memcmp` against one-byte-at-a-time
/// references, for every length up to 80 (and a few page-sized ones) at every
/// alignment of source and destination, overlapping both ways for `memmove`. The slice
/// operations below compile to calls of those functions; `black_box` keeps lengths and
/// bytes from being folded, and the references from being turned into the same calls.
fn mem_functions() -> Result<heapless::String<96>, &'static str> {
    use core::hint::black_box;
    const SPAN: usize = 4096 + 3 * 64;
    let mut a: Vec<u8> = (0..SPAN).map(|i| black_box((i * 7 + 3) as u8)).collect();
    let mut b: Vec<u8> = alloc::vec![0u8; SPAN];
    let byte_eq =
        |x: &[u8], y: &[u8]| x.len() == y.len() && (0..x.len()).all(|i| black_box(x[i]) == y[i]);
    let mut cases = 0u32;
    let lens = (0..=80usize).chain([255, 256, 257, 4095, 4096, 4097]);
    for len in lens {
        for off in 0..8usize {
            let (s0, d0) = (black_box(off), black_box((off * 3) % 8));
            let len = black_box(len);
            // memcpy
            b.fill(0);
            b[d0..d0 + len].copy_from_slice(&a[s0..s0 + len]);
            if !byte_eq(&b[d0..d0 + len], &a[s0..s0 + len])
                || b[..d0].iter().any(|&x| x != 0)
                || b[d0 + len..].iter().any(|&x| x != 0)
            {
                return Err("memcpy");
            }
            // memset
            b[d0..d0 + len].fill(black_box(0xa5));
            if (0..len).any(|i| black_box(b[d0 + i]) != 0xa5)
                || b[d0 + len..].iter().any(|&x| x != 0)
            {
                return Err("memset");
            }
            // memcmp/bcmp: equal, then one byte changed (each order)
            b[d0..d0 + len].copy_from_slice(&a[s0..s0 + len]);
            if b[d0..d0 + len] != a[s0..s0 + len] || b[d0..d0 + len].cmp(&a[s0..s0 + len]).is_ne() {
                return Err("memcmp of equal bytes");
            }
            if len > 0 {
                let at = black_box(len * 5 / 7);
                b[d0 + at] = a[s0 + at].wrapping_add(1);
                let want = b[d0 + at].cmp(&a[s0 + at]);
                if b[d0..d0 + len] == a[s0..s0 + len]
                    || b[d0..d0 + len].cmp(&a[s0..s0 + len]) != want
                {
                    return Err("memcmp of different bytes");
                }
            }
            // memmove, overlapping forward and backward within one buffer
            if len <= 256 {
                for (from, to) in [(s0, s0 + 5), (s0 + 5, s0)] {
                    let before: Vec<u8> =
                        a[from..from + len].iter().map(|&x| black_box(x)).collect();
                    a.copy_within(from..from + len, to);
                    if !byte_eq(&a[to..to + len], &before) {
                        return Err("memmove");
                    }
                }
            }
            cases += 1;
        }
    }
    Ok(detail(format_args!("{cases} length and alignment cases")))
}

fn detail(args: core::fmt::Arguments) -> heapless::String<96> {
    let mut s = heapless::String::new();
    let _ = core::fmt::write(&mut s, args);
    s
}

/// Allocates many frames, fills each with its own pattern, checks none was handed out
/// twice or corrupted, frees them and checks the free count is back where it started.
fn frames() -> Result<heapless::String<96>, &'static str> {
    const COUNT: usize = 2048; // 8 MiB
    let (free_before, usable) = memory::frame_counts();
    let mut held: Vec<OwnedFrame> = Vec::with_capacity(COUNT);
    for _ in 0..COUNT {
        held.push(OwnedFrame::alloc(&memory::KERNEL_FRAMES).ok_or("frame allocator ran dry")?);
    }
    if memory::frame_counts().0 != free_before - COUNT {
        return Err("free count did not drop by the number allocated");
    }
    for f in held.iter_mut() {
        if f.addr() % 4096 != 0 {
            return Err("frame not 4 KiB aligned");
        }
        let tag = f.addr();
        for (i, word) in f.bytes().chunks_exact_mut(8).enumerate() {
            word.copy_from_slice(&(tag ^ i as u64).to_le_bytes());
        }
    }
    for f in held.iter_mut() {
        let tag = f.addr();
        let ok = f
            .bytes()
            .chunks_exact(8)
            .enumerate()
            .all(|(i, w)| w == (tag ^ i as u64).to_le_bytes());
        if !ok {
            return Err("frame contents changed: frames overlap or memory is not mapped right");
        }
    }
    drop(held);
    if memory::frame_counts().0 != free_before {
        return Err("free count not restored after freeing");
    }
    Ok(detail(format_args!(
        "{COUNT} frames written and verified, {free_before} of {usable} free"
    )))
}

#[repr(C, align(4096))]
struct PageAligned([u8; 4096]);

/// Allocates objects of many sizes and alignments, checks them, and checks the heap is
/// back to its starting use afterwards.
fn heap_objects() -> Result<heapless::String<96>, &'static str> {
    let (used_before, size) = heap::usage();
    {
        let mut vecs: Vec<Vec<u8>> = Vec::new();
        for (i, len) in [1usize, 7, 64, 1000, 4096, 65_536, 1 << 20]
            .into_iter()
            .enumerate()
        {
            let v = alloc::vec![i as u8; len];
            vecs.push(v);
        }
        for (i, v) in vecs.iter().enumerate() {
            if v.iter().any(|&b| b != i as u8) {
                return Err("vector contents changed");
            }
        }
        let page = Box::new(PageAligned([0x5a; 4096]));
        if !(&*page as *const PageAligned as usize).is_multiple_of(4096) {
            return Err("4096-aligned box is misaligned");
        }
        let mut map = BTreeMap::new();
        for k in 0..2000u32 {
            map.insert(k.wrapping_mul(2_654_435_761), k);
        }
        if map.len() != 2000 || map.get(&7u32.wrapping_mul(2_654_435_761)) != Some(&7) {
            return Err("BTreeMap lost entries");
        }
        if heap::usage().0 <= used_before + (1 << 20) {
            return Err("heap use did not grow with live objects");
        }
    }
    let used_after = heap::usage().0;
    if used_after != used_before {
        return Err("heap use not restored after freeing");
    }
    Ok(detail(format_args!(
        "{} KiB heap, {} bytes in use",
        size / 1024,
        used_after
    )))
}

#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 16]);
    recurse(depth + 1).wrapping_add(frame[depth as usize % 16])
}

fn stack_overflow() -> ! {
    let n = recurse(0);
    panic!("recursion returned {n}")
}

fn deliberate_panic() -> ! {
    panic!("deliberate panic (selftest)")
}

/// Allocates 1 MiB blocks until the heap gives out. The allocation failure must be
/// reported as out of memory, not a hang.
fn exhaust_heap() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        blocks.push(core::hint::black_box(Vec::with_capacity(1 << 20)));
    }
}

/// Prints a mark every 250 ms for 2 s after ready, for the host to compare rates.
pub struct ClockMarks {
    next: u32,
    start_ns: u64,
}

impl ClockMarks {
    pub const INTERVAL_NS: u64 = 250_000_000;
    pub const MARKS: u32 = 9;

    pub fn new() -> Self {
        ClockMarks {
            next: 0,
            start_ns: clock::now_ns(),
        }
    }

    /// Prints due marks; false once all were printed.
    pub fn poll(&mut self) -> bool {
        let now = clock::now_ns();
        while self.next < Self::MARKS
            && now >= self.start_ns + u64::from(self.next) * Self::INTERVAL_NS
        {
            crate::println!(
                "selftest clock: mark {} at {} ns (ticks {})",
                self.next,
                now,
                clock::ticks()
            );
            self.next += 1;
        }
        if self.next == Self::MARKS {
            crate::println!("selftest clock: done");
            return false;
        }
        true
    }
}
