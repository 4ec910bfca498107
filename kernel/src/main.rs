//! The plinth runtime kernel: boot, memory, interrupts, time, and the idle loop.
//!
//! `plinth_kernel_main` is called by the boot stub (`plinth-boot`) in long mode on the
//! boot stack. It brings the machine up in a fixed order, prints exactly one line starting
//! `plinth: ready`, then halts between interrupts, serving console commands. All unsafe
//! code lives in `arch`; everything here is safe Rust.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

#[allow(
    unsafe_code,
    reason = "arch is the unsafe boundary: CPU tables, MMIO, port I/O, DMA"
)]
mod arch;
mod clock;
mod console;
mod memory;
mod selftest;
mod trap;

use core::sync::atomic::{AtomicBool, Ordering};

use log::{LevelFilter, error, info, warn};
use plinth_boot::BootInfo;
use plinth_cmdline::{LogLevel, SelfTests};
use plinth_exit::ExitCode;

use crate::arch::{apic, cpu, exit, pit};
use crate::clock::Millis;
use crate::console::Command;

/// Timer interrupts per second.
const TICK_HZ: u64 = 100;
/// PIT calibration: three 0.4 ms windows, median taken. Short windows keep boot fast (TSC
/// and PIT both follow host time under TCG, so 480 PIT ticks resolve the rate to 0.2%);
/// the median discards a window stretched by the host descheduling the vCPU.
const CALIBRATION_PIT_TICKS: u16 = (pit::PIT_HZ * 4 / 10_000) as u16;
const CALIBRATION_WINDOWS: usize = 3;

/// Brings the machine up and idles; called by `arch::entry` on the boot stack.
fn kernel_main(start_info: u64, entry_tsc: u64) -> ! {
    if !console::init() {
        // Without a console nobody can be told anything; stop with a distinct code.
        exit::exit(ExitCode::BootFailed);
    }
    arch::gdt::init();
    arch::interrupts::init();
    apic::init();
    let (tsc_hz, apic_hz) = calibrate();
    clock::init(entry_tsc, tsc_hz);

    let boot = match BootInfo::read(&arch::paging::BootIdentityMap, start_info) {
        Ok(b) => b,
        Err(e) => {
            error!("boot: PVH start_info at {start_info:#x} unusable: {e:?}");
            exit::exit(ExitCode::BootFailed);
        }
    };
    let cmdline = plinth_cmdline::parse(boot.cmdline());
    log::set_max_level(level_filter(cmdline.options.log_level));
    let usable = boot.memory_map.usable_bytes();
    info!(
        "plinth {} booting: memory: {} MiB ({} KiB usable), tsc {}.{:03} MHz, cmdline \"{}\"",
        env!("CARGO_PKG_VERSION"),
        usable.div_ceil(1 << 20),
        usable / 1024,
        tsc_hz / 1_000_000,
        (tsc_hz / 1_000) % 1_000,
        boot.cmdline()
    );
    for p in &cmdline.problems {
        warn!("cmdline: ignored {:?} \"{}\"", p.kind, p.token);
    }
    if cmdline.dropped_problems > 0 {
        warn!(
            "cmdline: {} more problems not shown",
            cmdline.dropped_problems
        );
    }
    if boot.cmdline_not_utf8 {
        warn!("cmdline: not UTF-8; ignored from the first invalid byte");
    }
    if boot.clipped_entries > 0 || boot.memory_map.dropped() > 0 {
        warn!(
            "memory map: {} entries ignored",
            boot.clipped_entries as usize + boot.memory_map.dropped()
        );
    }

    let layout = match memory::init(&boot) {
        Ok(l) => l,
        Err(e) => {
            error!("memory: setup failed: {e:?}");
            exit::exit(ExitCode::OutOfMemory);
        }
    };
    if layout.ignored_bytes > 0 {
        warn!(
            "memory: {} MiB above the frame bitmap's reach ignored",
            layout.ignored_bytes >> 20
        );
    }
    info!(
        "memory: {} regions, heap {} MiB at {:#x}, {} page-table frames, frames {} free",
        layout.usable_regions,
        layout.heap_size >> 20,
        layout.heap_start,
        layout.page_table_frames,
        memory::frame_counts().0
    );

    apic::start_periodic((apic_hz / TICK_HZ) as u32);
    selftest::run_boot_tests(cmdline.options.selftests);

    let init_ns = clock::now_ns();
    println!(
        "plinth: ready (init {} ms of guest time, memory {} MiB, 1 cpu)",
        Millis(init_ns),
        usable.div_ceil(1 << 20)
    );

    // The clock self-test measures the steady clock, after the TSC rate is refined.
    let mut clock_selftest = cmdline.options.selftests.contains(SelfTests::CLOCK);
    let mut clock_marks: Option<selftest::ClockMarks> = None;
    let mut refiner = clock::Refiner::start();
    loop {
        if let Some((old, new)) = refiner.poll() {
            let ppm = (i128::from(new) - i128::from(old)) * 1_000_000 / i128::from(old.max(1));
            info!(
                "clock: TSC rate refined over 1 s: {}.{:03} MHz (boot estimate off by {ppm} ppm)",
                new / 1_000_000,
                (new / 1_000) % 1_000
            );
            if clock_selftest {
                clock_marks = Some(selftest::ClockMarks::new());
                clock_selftest = false;
            }
        }
        if let Some(marks) = clock_marks.as_mut() {
            if !marks.poll() {
                clock_marks = None;
            }
        }
        if let Some(cmd) = console::poll_command() {
            run_command(cmd);
        }
        cpu::idle_wait();
    }
}

/// Measures the TSC and local APIC timer rates against the PIT. Returns (TSC Hz, APIC Hz),
/// each the median of [`CALIBRATION_WINDOWS`] measurements.
fn calibrate() -> (u64, u64) {
    let mut tsc = [0u64; CALIBRATION_WINDOWS];
    let mut lapic = [0u64; CALIBRATION_WINDOWS];
    for (tsc_hz, apic_hz) in tsc.iter_mut().zip(lapic.iter_mut()) {
        let (mut t0, mut t1, mut apic_counts) = (0, 0, 0);
        let ticks = pit::measure(
            CALIBRATION_PIT_TICKS,
            || {
                apic::start_calibration_count();
                t0 = cpu::rdtsc();
            },
            || {
                t1 = cpu::rdtsc();
                apic_counts = apic::calibration_elapsed();
            },
        )
        .max(1);
        *tsc_hz = t1.wrapping_sub(t0) * pit::PIT_HZ / ticks;
        *apic_hz = u64::from(apic_counts) * pit::PIT_HZ / ticks;
    }
    tsc.sort_unstable();
    lapic.sort_unstable();
    (tsc[CALIBRATION_WINDOWS / 2], lapic[CALIBRATION_WINDOWS / 2])
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    }
}

fn run_command(cmd: Command) {
    match cmd {
        Command::Shutdown => {
            println!("plinth: shutting down");
            exit::exit(ExitCode::Success);
        }
        Command::Status => {
            let (free, usable) = memory::frame_counts();
            let (heap_used, heap_size) = arch::heap::usage();
            println!(
                "status: uptime {} ms, ticks {}, frames {free}/{usable} free, heap {heap_used}/{heap_size} bytes used",
                Millis(clock::now_ns()),
                clock::ticks()
            );
        }
        Command::Help => println!("commands: status, shutdown, help"),
        Command::Unknown(s) => println!("unknown command \"{s}\" (try help)"),
        Command::TooLong => println!("command too long (max {} bytes)", console::MAX_COMMAND),
    }
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    if PANICKING.swap(true, Ordering::Relaxed) {
        exit::exit(ExitCode::Panic); // panicked while reporting a panic
    }
    if let Some(size) = arch::heap::last_failure() {
        let (used, total) = arch::heap::try_usage().unwrap_or((0, 0));
        console::emergency(format_args!(
            "\nOUT OF MEMORY: kernel heap could not allocate {size} bytes ({used} of {total} bytes in use)\nplinth: stopped: out of memory (exit code {:#x})\n",
            ExitCode::OutOfMemory.port_value()
        ));
        exit::exit(ExitCode::OutOfMemory);
    }
    let loc = info.location();
    console::emergency(format_args!(
        "\nPANIC at {}:{}:{}: {}\nplinth: stopped: panic (exit code {:#x})\n",
        loc.map_or("?", |l| l.file()),
        loc.map_or(0, |l| l.line()),
        loc.map_or(0, |l| l.column()),
        info.message(),
        ExitCode::Panic.port_value()
    ));
    exit::exit(ExitCode::Panic)
}
