//! Where boot spends its time: a TSC mark at the end of each boot step.
//!
//! Owns the marks only. Marking is one `rdtsc` and two stores in one small function
//! (under TCG every copy of inlined code is translated anew, so it is kept out of line),
//! cheap enough to leave in every boot. Steps before [`ready`] are the kernel's init;
//! those after it bring the appliance up. Both are reported once boot is done, on two
//! log lines that `plinth bench boot` reads to show which step a change made faster or
//! slower. Must not format or print before `ready`.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use spin::Mutex;

use crate::arch::cpu::rdtsc;
use crate::clock;

/// Marks kept; later ones are dropped (boot has about a dozen steps).
const MAX_MARKS: usize = 16;

static COUNT: AtomicUsize = AtomicUsize::new(0);
static TSC: [AtomicU64; MAX_MARKS] = [const { AtomicU64::new(0) }; MAX_MARKS];
/// Step names, by mark index. Only written by `mark`, which runs on the boot CPU during
/// boot, so the lock is never contended.
static NAMES: Mutex<[&str; MAX_MARKS]> = Mutex::new([""; MAX_MARKS]);
/// Marks taken before `ready`, and the TSC at `ready`.
static READY_AT: AtomicUsize = AtomicUsize::new(usize::MAX);
static READY_TSC: AtomicU64 = AtomicU64::new(0);

/// Records that the step called `step` ended now.
#[inline(never)]
pub fn mark(step: &'static str) {
    let tsc = rdtsc();
    let i = COUNT.fetch_add(1, Ordering::Relaxed);
    if i < MAX_MARKS {
        TSC[i].store(tsc, Ordering::Relaxed);
        NAMES.lock()[i] = step;
    }
}

/// Records that init ended (the `ready` line is out): later marks are appliance steps,
/// the first of them timed from now.
pub fn ready() {
    READY_TSC.store(rdtsc(), Ordering::Relaxed);
    READY_AT.store(COUNT.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Logs `boot: steps (us): console=N cpu=N ...` (init, each step's time since the
/// previous mark, the first's since kernel entry) and `boot: after ready (us): ...`.
pub fn report() {
    let names = NAMES.lock();
    let count = COUNT.load(Ordering::Relaxed).min(MAX_MARKS);
    let split = READY_AT.load(Ordering::Relaxed).min(count);
    let ns = |i: usize| clock::tsc_to_ns_since_entry(TSC[i].load(Ordering::Relaxed));
    let line = |range: core::ops::Range<usize>, mut prev: u64| {
        let mut text: heapless::String<256> = heapless::String::new();
        for i in range {
            let at = ns(i);
            let _ = core::fmt::Write::write_fmt(
                &mut text,
                format_args!(" {}={}", names[i], at.saturating_sub(prev) / 1_000),
            );
            prev = at;
        }
        text
    };
    log::info!("boot: steps (us):{}", line(0..split, 0));
    let ready_ns = clock::tsc_to_ns_since_entry(READY_TSC.load(Ordering::Relaxed));
    log::info!("boot: after ready (us):{}", line(split..count, ready_ns));
}
