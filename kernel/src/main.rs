//! The plinth runtime kernel: boot order and the idle loop.
//!
//! `kernel_main` is called by the boot stub (`plinth-boot`) in long mode on the boot
//! stack. It brings the machine up in a fixed order, prints exactly one line starting
//! `plinth: ready`, then brings the appliance up and halts between interrupts, serving
//! the network, the disks, agents and console commands. All unsafe code lives in `arch`
//! (the CPU) and the driver glue under `drivers`; everything here is safe Rust.
//!
//! Modules, lowest first; each uses only those before it (docs/ARCHITECTURE.md shows the
//! check): `arch` (the CPU); `memory`, `clock`, `console`, `boottime`; `drivers` (device
//! discovery, binding, virtio); `trap` (interrupt and fault policy); `block` (disk
//! request queues) and `net` (the NIC-facing side); `catalog`, `bench`; `partition`
//! (partitions, agents, system calls, the command set); `mgmt` (the HTTP API);
//! `selftest`, `shell` (console commands); and this file.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

#[allow(
    unsafe_code,
    reason = "arch is the unsafe boundary: CPU tables, paging, ring 3, port I/O"
)]
mod arch;
mod bench;
mod block;
mod boottime;
mod catalog;
mod clock;
mod console;
mod drivers;
mod memory;
mod mgmt;
mod net;
mod partition;
mod selftest;
mod shell;
mod state;
mod trap;

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use log::{Level, LevelFilter, error, info, warn};
use plinth_boot::BootInfo;
use plinth_cmdline::{LogLevel, SelfTests};
use plinth_exit::ExitCode;
use plinth_frames::PhysRange;

use crate::arch::{apic, exit};
use crate::clock::Millis;
use crate::console::stop;

/// Timer interrupts per second.
const TICK_HZ: u64 = 100;

entry_point!(kernel_main);

/// Brings the machine up and idles; called by the boot stub on the boot stack.
fn kernel_main(start_info: u64, entry_tsc: u64) -> ! {
    if !console::init() {
        // Without a console nobody can be told anything; stop with a distinct code.
        exit::exit(ExitCode::BootFailed);
    }
    boottime::mark("console");
    apic::init();
    // The TSC and APIC timer are calibrated against the PIT over the whole of init.
    clock::start(entry_tsc);
    arch::gdt::init();
    arch::interrupts::init(trap::handle);
    clock::calibration_checkpoint();
    boottime::mark("cpu");

    let boot = match BootInfo::read(&arch::paging::BootIdentityMap, start_info) {
        Ok(b) => b,
        Err(e) => {
            error!("boot: PVH start_info at {start_info:#x} unusable: {e:?}");
            stop(ExitCode::BootFailed);
        }
    };
    let cmdline_text = boot.cmdline();
    let cmdline = plinth_cmdline::parse(cmdline_text);
    log::set_max_level(level_filter(cmdline.options.log_level));
    // The memory map is sanitised once; memory, devices and the API all use this.
    let ram = boot.memory_map.usable();
    let usable = PhysRange::total_len(&ram);
    // The banner and init's other `info` lines are deferred: their values are kept in
    // `INIT_NOTES` and formatted when the boot log is written out (see `console::defer`).
    // No handler takes this lock (renderers only try it), so interrupts may stay as
    // they are.
    {
        let mut notes = INIT_NOTES.lock();
        notes.usable = usable;
        notes.cmdline.clear();
        // Both hold at most CMDLINE_MAX bytes, so this always fits.
        let _ = notes.cmdline.push_str(cmdline_text);
    }
    console::defer(Level::Info, InitNotes::banner);
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

    clock::calibration_checkpoint();
    boottime::mark("bootinfo");
    let layout = match memory::init(&boot, &ram) {
        Ok(l) => l,
        Err(e) => {
            error!("memory: setup failed: {e:?}");
            stop(ExitCode::OutOfMemory);
        }
    };
    if layout.ignored_bytes > 0 {
        warn!(
            "memory: {} MiB above the frame bitmap's reach ignored",
            layout.ignored_bytes >> 20
        );
    }
    let free_frames = memory::frame_counts().0;
    INIT_NOTES.lock().memory = Some((layout, free_frames));
    console::defer(Level::Info, InitNotes::memory);

    clock::calibration_checkpoint();
    boottime::mark("memory");
    let rates = clock::finish_boot_calibration();
    if rates.is_some() {
        INIT_NOTES.lock().rates = rates;
        console::defer(Level::Info, InitNotes::clock);
    }
    let apic_hz = rates.map_or(0, |r| r.apic_hz);
    apic::start_periodic((apic_hz / TICK_HZ).max(1) as u32);
    boottime::mark("clock");
    selftest::run_boot_tests(cmdline.options.selftests);
    boottime::mark("selftests");

    let init_ns = clock::now_ns();
    println!(
        "plinth: ready (init {} ms of guest time, memory {} MiB, 1 cpu)",
        Millis(init_ns),
        usable.div_ceil(1 << 20)
    );
    // Boot log lines reach the UART only now; `init` above does not include writing them.
    console::flush_boot_log();

    // `ready` is the runtime core: console, memory, traps, clock and tick. The appliance
    // comes up next — devices, catalog, partitions, network — before the first console
    // command is read, each step timed on the `boot: after ready` line.
    boottime::ready();
    let found = drivers::init(&cmdline.options.virtio_mmio, &ram);
    block::install(found.disks);
    let mut nics = found.nics;
    boottime::mark("devices");

    // The management network comes up before the catalog and the partitions, and is
    // served between those steps (and while the catalog's disk reads wait): DHCP and the
    // first clients then overlap the appliance's bring-up instead of following it, and
    // the API answers (`/api/v1/health`; the catalog "loading" until it is checked) as
    // soon as the runtime has an address.
    let api_ctx = mgmt::Context {
        memory_bytes: usable,
        cpus: 1,
        bench: cmdline.options.bench,
    };
    for extra in nics.iter().skip(1) {
        warn!("{}: not used (one uplink NIC)", extra.name);
    }
    // The first NIC is the switch's uplink; the management stack is a port on it.
    let uplink = (!nics.is_empty()).then(|| nics.swap_remove(0));
    let names = uplink
        .as_ref()
        .map(|d| (d.name.clone(), d.location.clone()));
    let mgmt_mac = net::switch::install(uplink);
    let mut network = match (names, mgmt_mac) {
        (Some((name, location)), Some(mac)) => {
            let mut stack = net::Stack::new(
                name,
                location,
                mac,
                net::NetConfig {
                    ip: cmdline.options.ip,
                    gateway: cmdline.options.gateway,
                },
            );
            let server = mgmt::Server::new(&mut stack, cmdline.options.api_port);
            Some((stack, server))
        }
        _ => {
            info!("net: no NIC; the management API is not served");
            None
        }
    };
    drop(nics);
    // The network and the API, served from here on: between boot steps, while a step
    // waits on a disk, from the idle loop and while a console command waits on a disk.
    let mut serve = || {
        match network.as_mut() {
            Some((stack, server)) => mgmt::poll(stack, server, &api_ctx),
            // Partitions still switch among themselves, and held frames drain.
            None => net::switch::pump(),
        }
    };
    serve();
    boottime::mark("network");

    // A quarter of the heap bounds what the catalog may hold in memory.
    let loaded = catalog::load(layout.heap_size as u64 / 4, &mut serve);
    serve();
    boottime::mark("catalog");
    let protections = arch::user::init();
    let word = |on: bool| if on { "on" } else { "MISSING" };
    if protections.smep && protections.smap {
        info!("cpu: agents run in ring 3; SMEP on, SMAP on, NX on, x87/SSE off");
    } else {
        warn!(
            "cpu: SMEP {}, SMAP {}: the kernel is less protected from agents (use a CPU model that has both)",
            word(protections.smep),
            word(protections.smap)
        );
    }
    match loaded {
        Some(l) => {
            partition::boot(&l.catalog, l.disk, &l.extents);
            // What the last run metered goes on from where it was.
            if let Some((first, sectors)) = l.state {
                match state::open(l.disk, first, sectors, &mut serve) {
                    Ok(records) => partition::restore_usage(&records),
                    Err(e) => warn!(
                        "state: the state partition cannot be read ({e}); usage starts from zero"
                    ),
                }
            }
        }
        None => partition::boot_empty(),
    }
    serve();
    boottime::mark("partitions");
    boottime::report();
    // After ready: tokens' expiry and the audit log need the time of day, boot does not.
    match clock::read_wall_clock() {
        Ok(t) => {
            let (y, mo, d, h, mi, s) = plinth_rtc::civil(t);
            info!(
                "clock: wall time {y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC from the RTC (Unix {t})"
            );
        }
        Err(e) => warn!("clock: no wall time ({e}): what needs one (token expiry) refuses"),
    }

    // The clock self-test measures the steady clock, after the TSC rate is refined.
    let mut clock_selftest = cmdline.options.selftests.contains(SelfTests::CLOCK);
    let mut clock_marks: Option<selftest::ClockMarks> = None;
    let mut refiner = clock::Refiner::start();
    loop {
        let interrupted = drivers::take_interrupt();
        serve();
        let lines_held = console::drain_agent_lines();
        if interrupted {
            block::service();
            drivers::service_done();
        }
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
        if let Some(marks) = clock_marks.as_mut()
            && !marks.poll()
        {
            clock_marks = None;
        }
        if let Some(cmd) = console::poll_line()
            .as_ref()
            .and_then(shell::Command::from_input)
        {
            // A command that waits on the disk keeps serving the network meanwhile.
            shell::run(cmd, &mut serve);
        }
        // Agents run between the runtime's own duties, one slice at a time.
        if let partition::Ran::Agent = partition::run() {
            continue;
        }
        // Agents' lines still held: the next pass writes more of them, not a halt.
        if lines_held {
            continue;
        }
        // Interrupts off between the last check and `sti; hlt`, so a device interrupt
        // arriving now is not left waiting for the next tick.
        x86_64::instructions::interrupts::disable();
        if drivers::interrupt_pending() {
            x86_64::instructions::interrupts::enable();
            continue;
        }
        clock::idle_wait();
    }
}

/// Init's own `info` lines, kept as values: `console::defer` has them formatted when the
/// boot log is written out — after `ready`, or by a fault or panic during init.
struct InitNotes {
    usable: u64,
    cmdline: heapless::String<{ plinth_boot::pvh::CMDLINE_MAX }>,
    memory: Option<(memory::MemoryLayout, usize)>,
    rates: Option<clock::Rates>,
}

static INIT_NOTES: spin::Mutex<InitNotes> = spin::Mutex::new(InitNotes {
    usable: 0,
    cmdline: heapless::String::new(),
    memory: None,
    rates: None,
});

impl InitNotes {
    /// The notes, unless a fault interrupted their owner mid-write (the line is dropped).
    fn get() -> Result<spin::MutexGuard<'static, InitNotes>, fmt::Error> {
        INIT_NOTES.try_lock().ok_or(fmt::Error)
    }

    fn banner(w: &mut dyn fmt::Write) -> fmt::Result {
        let n = Self::get()?;
        write!(
            w,
            "plinth {} booting: memory: {} MiB ({} KiB usable), cmdline \"{}\"",
            env!("CARGO_PKG_VERSION"),
            n.usable.div_ceil(1 << 20),
            n.usable / 1024,
            n.cmdline
        )
    }

    fn memory(w: &mut dyn fmt::Write) -> fmt::Result {
        let (layout, free) = Self::get()?.memory.ok_or(fmt::Error)?;
        write!(
            w,
            "memory: {} regions, heap {} MiB at {:#x}, {} page-table frames, frames {} free",
            layout.usable_regions,
            layout.heap_size >> 20,
            layout.heap_start,
            layout.page_table_frames,
            free
        )
    }

    fn clock(w: &mut dyn fmt::Write) -> fmt::Result {
        let r = Self::get()?.rates.ok_or(fmt::Error)?;
        write!(
            w,
            "clock: TSC {}.{:03} MHz, APIC timer {}.{:03} MHz (calibrated against the PIT over {} ms of boot)",
            r.tsc_hz / 1_000_000,
            (r.tsc_hz / 1_000) % 1_000,
            r.apic_hz / 1_000_000,
            (r.apic_hz / 1_000) % 1_000,
            Millis(r.window_ns)
        )
    }
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
