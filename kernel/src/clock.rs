//! Monotonic time since kernel entry, from the TSC calibrated against the PIT.
//!
//! Owns the TSC rate, its calibration and refinement, the tick counter and the count of
//! time spent idle. Boot calibration runs *alongside* initialisation rather than before
//! it: the PIT is read when the kernel starts and again when init is done, so the
//! window costs no boot time and is as long as init itself (log lines from that window
//! carry raw TSC stamps and are formatted once the rate is known, see `console`).
//! [`Refiner`] then measures the rate against the PIT over a full second after `ready`
//! and rebases the clock, keeping it continuous and monotonic — as Linux refines its
//! TSC calibration after boot. It must not program hardware other than the PIT and the
//! APIC timer's calibration count.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::interrupts::without_interrupts;

use spin::Mutex;

use crate::arch::cpu::rdtsc;
use crate::arch::{apic, pit};

static BASE_TSC: AtomicU64 = AtomicU64::new(0);
static BASE_NS: AtomicU64 = AtomicU64::new(0);
static TSC_HZ: AtomicU64 = AtomicU64::new(1);
/// Nanoseconds per TSC count, scaled by 2^32.
static NS_PER_TSC_2_32: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);

fn ns_per_tsc_2_32(hz: u64) -> u64 {
    // 1e9 * 2^32 fits in u64 (about 4.3e18 < 1.8e19); hz >= 1.
    (1_000_000_000u64 << 32) / hz.max(1)
}

/// The boot calibration in progress, if any.
static BOOT_CALIBRATION: Mutex<Option<BootCalibration>> = Mutex::new(None);

/// Shortest boot calibration window: 0.5 ms of PIT ticks (0.2% resolution even if the
/// end reads are a tick off). Init normally takes longer, so this costs nothing.
const MIN_CALIBRATION_TICKS: u64 = pit::PIT_HZ / 2_000;

/// Measured rates, Hz.
#[derive(Clone, Copy, Debug)]
pub struct Rates {
    pub tsc_hz: u64,
    pub apic_hz: u64,
    /// Length of the calibration window, nanoseconds (by the PIT).
    pub window_ns: u64,
}

struct BootCalibration {
    start_tsc: u64,
    last_count: u16,
    pit_ticks: u64,
}

/// Starts the clock (time 0 is `entry_tsc`) and the boot calibration: the PIT counts
/// freely and the APIC timer counts down, both read again by [`finish_boot_calibration`].
/// Needs `apic::init` first.
pub fn start(entry_tsc: u64) {
    BASE_TSC.store(entry_tsc, Ordering::Relaxed);
    BASE_NS.store(0, Ordering::Relaxed);
    pit::start_free_running();
    let mut tsc = 0;
    let count = pit::bracketed(&mut || {
        apic::start_calibration_count();
        tsc = rdtsc();
    });
    without_interrupts(|| {
        *BOOT_CALIBRATION.lock() = Some(BootCalibration {
            start_tsc: tsc,
            last_count: count,
            pit_ticks: 0,
        });
    });
}

/// Accounts the PIT ticks since the last call. Init calls this between its steps, each
/// far shorter than the PIT's 54.9 ms wrap, so no wrap goes unseen.
pub fn calibration_checkpoint() {
    without_interrupts(|| {
        if let Some(c) = BOOT_CALIBRATION.lock().as_mut() {
            let count = pit::read_count();
            c.pit_ticks += u64::from(c.last_count.wrapping_sub(count));
            c.last_count = count;
        }
    });
}

/// Ends the boot calibration (waiting if the window is still under 0.5 ms) and sets the
/// clock's rate. Returns `None` if it was already finished (or never started). Uses
/// `try_lock` so the fault and panic paths may call it too.
pub fn finish_boot_calibration() -> Option<Rates> {
    let mut c = without_interrupts(|| BOOT_CALIBRATION.try_lock()?.take())?;
    loop {
        let count = pit::read_count();
        let ticks = c.pit_ticks + u64::from(c.last_count.wrapping_sub(count));
        if ticks >= MIN_CALIBRATION_TICKS {
            break;
        }
        core::hint::spin_loop();
    }
    let (mut end_tsc, mut apic_counts) = (0, 0);
    let end_count = pit::bracketed(&mut || {
        end_tsc = rdtsc();
        apic_counts = apic::calibration_elapsed();
    });
    c.pit_ticks += u64::from(c.last_count.wrapping_sub(end_count));
    let ticks = u128::from(c.pit_ticks.max(1));
    let per_second = |counts: u64| (u128::from(counts) * u128::from(pit::PIT_HZ) / ticks) as u64;
    let rates = Rates {
        tsc_hz: per_second(end_tsc.wrapping_sub(c.start_tsc)).max(1),
        apic_hz: per_second(u64::from(apic_counts)),
        window_ns: (ticks * 1_000_000_000 / u128::from(pit::PIT_HZ)) as u64,
    };
    TSC_HZ.store(rates.tsc_hz, Ordering::Relaxed);
    NS_PER_TSC_2_32.store(ns_per_tsc_2_32(rates.tsc_hz), Ordering::Relaxed);
    Some(rates)
}

/// Current TSC rate estimate, Hz.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds between kernel entry and TSC value `tsc`.
pub fn tsc_to_ns_since_entry(tsc: u64) -> u64 {
    let delta = tsc.saturating_sub(BASE_TSC.load(Ordering::Relaxed));
    // delta < 2^64 and the factor < 2^63, so the product fits in u128.
    let ns = (u128::from(delta) * u128::from(NS_PER_TSC_2_32.load(Ordering::Relaxed))) >> 32;
    BASE_NS.load(Ordering::Relaxed) + ns as u64
}

/// Nanoseconds `delta` TSC counts take at the current rate.
pub fn tsc_delta_ns(delta: u64) -> u64 {
    // As in `tsc_to_ns_since_entry`: the product fits in u128.
    ((u128::from(delta) * u128::from(NS_PER_TSC_2_32.load(Ordering::Relaxed))) >> 32) as u64
}

/// Nanoseconds since kernel entry.
pub fn now_ns() -> u64 {
    tsc_to_ns_since_entry(rdtsc())
}

/// Switches to rate `hz` from now on without a jump in time.
fn rebase(hz: u64) {
    without_interrupts(|| {
        let tsc = rdtsc();
        let now = tsc_to_ns_since_entry(tsc);
        BASE_NS.store(now, Ordering::Relaxed);
        BASE_TSC.store(tsc, Ordering::Relaxed);
        TSC_HZ.store(hz, Ordering::Relaxed);
        NS_PER_TSC_2_32.store(ns_per_tsc_2_32(hz), Ordering::Relaxed);
    });
}

/// Unix time at kernel entry, ns, from the real-time clock (0: not read, or no clock).
static UNIX_AT_ENTRY_NS: AtomicU64 = AtomicU64::new(0);

/// Why there is no wall time.
pub enum WallClockError {
    /// The real-time clock never held still long enough to be read.
    NoClock,
    /// Its registers are no time (not set, or garbage).
    Bad(plinth_rtc::RtcError),
}

impl core::fmt::Display for WallClockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WallClockError::NoClock => f.write_str("the real-time clock never held still"),
            WallClockError::Bad(e) => {
                write!(f, "the real-time clock's registers are no time: {e:?}")
            }
        }
    }
}

/// Reads the real-time clock and keeps the wall time it gives (whole seconds: the RTC
/// has no finer ones); returns it, Unix seconds.
pub fn read_wall_clock() -> Result<u64, WallClockError> {
    let regs = crate::arch::rtc::registers().ok_or(WallClockError::NoClock)?;
    let unix = plinth_rtc::unix_seconds(&regs).map_err(WallClockError::Bad)?;
    let at_entry = (unix.saturating_mul(1_000_000_000)).saturating_sub(now_ns());
    UNIX_AT_ENTRY_NS.store(at_entry.max(1), Ordering::Relaxed);
    Ok(unix)
}

/// Unix time now, seconds, if the real-time clock was read.
pub fn unix_now() -> Option<u64> {
    match UNIX_AT_ENTRY_NS.load(Ordering::Relaxed) {
        0 => None,
        at_entry => Some(at_entry.saturating_add(now_ns()) / 1_000_000_000),
    }
}

/// Called from the timer interrupt.
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Timer interrupts taken since the timer started.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

static IDLE_TSC: AtomicU64 = AtomicU64::new(0);

/// Halts until an interrupt (`sti; hlt`: interrupts off on entry, on on return) and
/// counts the time halted as idle: what the CPU had to spare is what `/metrics` shows a
/// user wondering whether the runtime is saturated.
pub fn idle_wait() {
    let start = rdtsc();
    crate::arch::cpu::idle_wait();
    IDLE_TSC.fetch_add(rdtsc().wrapping_sub(start), Ordering::Relaxed);
}

/// Time spent halted for want of work since kernel entry, ns.
pub fn idle_ns() -> u64 {
    tsc_delta_ns(IDLE_TSC.load(Ordering::Relaxed))
}

/// Measures the TSC rate against the free-running PIT over one second, from the idle
/// loop (which wakes every tick, well inside the PIT's 54.9 ms wrap).
pub struct Refiner {
    start_tsc: u64,
    last_count: u16,
    last_tsc: u64,
    pit_ticks: u64,
    done: bool,
}

impl Refiner {
    /// PIT ticks measured before the rate is replaced (one second).
    const WINDOW: u64 = pit::PIT_HZ;

    pub fn start() -> Refiner {
        pit::start_free_running();
        let tsc = rdtsc();
        Refiner {
            start_tsc: tsc,
            last_count: pit::read_count(),
            last_tsc: tsc,
            pit_ticks: 0,
            done: false,
        }
    }

    /// Accumulates elapsed PIT ticks; after a second, rebases the clock once and returns
    /// the (old, new) rates in Hz.
    pub fn poll(&mut self) -> Option<(u64, u64)> {
        if self.done {
            return None;
        }
        let count = pit::read_count();
        let tsc = rdtsc();
        // More than ~45 ms since the last read (by the TSC) means the PIT may have
        // wrapped unseen: start over rather than guess.
        if (tsc - self.last_tsc) > tsc_hz() / 22 {
            *self = Refiner::start();
            return None;
        }
        self.pit_ticks += u64::from(self.last_count.wrapping_sub(count));
        self.last_count = count;
        self.last_tsc = tsc;
        if self.pit_ticks < Self::WINDOW {
            return None;
        }
        self.done = true;
        let old = tsc_hz();
        let new = ((u128::from(tsc - self.start_tsc) * u128::from(pit::PIT_HZ))
            / u128::from(self.pit_ticks)) as u64;
        rebase(new.max(1));
        Some((old, new))
    }
}

/// Displays nanoseconds as milliseconds with three decimals (`12.345`), without floats.
pub struct Millis(pub u64);

impl core::fmt::Display for Millis {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1_000_000, (self.0 / 1_000) % 1_000)
    }
}
