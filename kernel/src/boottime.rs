//! Where boot spends its time: a TSC mark at the end of each boot step.
//!
//! Owns the marks only. Marking is one `rdtsc` and a push in one small function
//! (under TCG every copy of inlined code is translated anew, so it is kept out of line),
//! cheap enough to leave in every boot. Steps before [`ready`] are the kernel's init;
//! those after it bring the appliance up. Both are reported once boot is done, on two
//! log lines that `plinth bench boot` reads to show which step a change made faster or
//! slower. Must not format or print before `ready`.

use spin::Mutex;

use crate::arch::cpu::rdtsc;
use crate::clock;

/// Marks kept; later ones are dropped (boot has about a dozen steps).
const MAX_MARKS: usize = 16;

struct Marks {
    /// Step name and the TSC when it ended, in boot order.
    steps: heapless::Vec<(&'static str, u64), MAX_MARKS>,
    /// Steps taken before `ready`, and the TSC at `ready`.
    ready: Option<(usize, u64)>,
}

/// Only boot code on the boot CPU takes the lock, so it is never contended.
static MARKS: Mutex<Marks> = Mutex::new(Marks {
    steps: heapless::Vec::new(),
    ready: None,
});

/// Records that the step called `step` ended now.
#[inline(never)]
pub fn mark(step: &'static str) {
    let tsc = rdtsc();
    let _ = MARKS.lock().steps.push((step, tsc));
}

/// Records that init ended (the `ready` line is out): later marks are appliance steps,
/// the first of them timed from now.
pub fn ready() {
    let tsc = rdtsc();
    let mut marks = MARKS.lock();
    marks.ready = Some((marks.steps.len(), tsc));
}

/// Logs `boot: steps (us): console=N cpu=N ...` (init, each step's time since the
/// previous mark, the first's since kernel entry) and `boot: after ready (us): ...`.
pub fn report() {
    let marks = MARKS.lock();
    let (split, ready_tsc) = marks.ready.unwrap_or((marks.steps.len(), 0));
    let line = |steps: &[(&str, u64)], mut prev: u64| {
        let mut text: heapless::String<256> = heapless::String::new();
        for &(name, tsc) in steps {
            let at = clock::tsc_to_ns_since_entry(tsc);
            let _ = core::fmt::Write::write_fmt(
                &mut text,
                format_args!(" {name}={}", at.saturating_sub(prev) / 1_000),
            );
            prev = at;
        }
        text
    };
    let (init, after) = marks.steps.split_at(split);
    log::info!("boot: steps (us):{}", line(init, 0));
    let ready_ns = clock::tsc_to_ns_since_entry(ready_tsc);
    log::info!("boot: after ready (us):{}", line(after, ready_ns));
}
