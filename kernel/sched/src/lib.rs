//! Scheduling policy of plinth's preemptive scheduler: which task runs next on the one
//! CPU, and for how long.
//!
//! What it owns:
//! - **Proportional shares by weight.** Weighted fair queuing by virtual runtime, like
//!   Linux CFS: every task has a `vruntime` that grows by the time it ran divided by its
//!   weight, and [`Scheduler::pick`] runs the runnable task with the smallest one (ties go
//!   to the task that ran least recently, so equals take turns). Over time each runnable
//!   task gets `weight / sum of weights` of the CPU. A task that waited (for the
//!   network, a disk, a timer) comes back at most half a slice of run time ahead of the
//!   smallest vruntime, so it runs as soon as its event arrives rather than behind tasks
//!   that never wait, yet cannot bank more than that by waiting (CFS's sleeper placement).
//! - **Caps.** A [`Cap`] is a quota per period, like cgroup v2 `cpu.max` (`"quota period"`):
//!   a task may run at most `quota_ns` in every `period_ns` window (windows are aligned to
//!   multiples of `period_ns` from time 0). A task that used its quota is *throttled* until
//!   the window ends, whatever its weight: a cap binds before weights share out the rest.
//!   Preemption is tick-granular, so a task can overshoot its quota; the overshoot is
//!   carried into the next window as debt (at most one quota's worth), which keeps the
//!   long-run average at the cap and never starves a task for more than about two windows.
//! - **Accounting by measured time.** The kernel reports how long a task actually ran, in
//!   nanoseconds ([`Scheduler::charge`]), never "a tick went by". This is the lesson of the
//!   Xen credit scheduler, which debited whichever domain was running at the tick: a task
//!   that yields just before every tick ran for free. Here a task that runs 9.9 ms and
//!   yields pays 9.9 ms.
//!
//! What it must not touch: no clock, no hardware, no task contexts, no interrupts. The
//! kernel measures time (TSC) and calls in with `now_ns`; it switches contexts and arms the
//! timer for the slice this crate hands back. Everything here is plain arithmetic, so it
//! is tested on the host by simulating time.
//!
//! Sizes: meant for up to a few hundred tasks, kept in a `Vec` scanned linearly. `pick` and
//! `charge` are O(n) and never allocate; only `add` may grow the `Vec`.
//!
//! Overflow: times are `u64` nanoseconds and are assumed below 2^63 (292 years of uptime).
//! Virtual runtimes are `u128`; see [`SCALE`] for the bound. Every other sum saturates
//! instead of wrapping, and each one says why it cannot get near the limit.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

#[cfg(test)]
mod tests;

use alloc::vec::Vec;

/// Smallest accepted [`Share::weight`].
pub const MIN_WEIGHT: u32 = 1;
/// Largest accepted [`Share::weight`].
pub const MAX_WEIGHT: u32 = 10_000;

/// Virtual-runtime units per nanosecond run at weight 1: `vruntime += ran_ns * SCALE / weight`.
///
/// Large enough that the truncating division loses less than 2^-20 ns of weight-1 time per
/// charge even at [`MAX_WEIGHT`]. Overflow: one charge adds at most `u64::MAX * 2^20 < 2^84`,
/// and a task's vruntime is at most the scheduler minimum when it joined plus its own
/// charges, so all vruntimes stay below `(total charged ns) * 2^20 <= 2^63 * 2^20 = 2^83`
/// for honest callers; u128 leaves room for 2^44 maximal (`u64::MAX`) charges beyond that,
/// and the sums saturate rather than wrap if even that is exceeded.
pub const SCALE: u128 = 1 << 20;

/// Why a [`Share`] or [`Cap`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareError {
    /// Weight 0: the task could never run.
    ZeroWeight,
    /// Weight above [`MAX_WEIGHT`].
    WeightTooLarge,
    /// Quota 0: the task could never run (block it instead).
    ZeroQuota,
    /// Period 0.
    ZeroPeriod,
    /// Quota longer than the period: more than one CPU's worth, and there is one CPU.
    QuotaOverPeriod,
}

impl core::fmt::Display for ShareError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            ShareError::ZeroWeight => "weight must be at least 1",
            ShareError::WeightTooLarge => "weight must be at most 10000",
            ShareError::ZeroQuota => "cap quota must be above 0 ns",
            ShareError::ZeroPeriod => "cap period must be above 0 ns",
            ShareError::QuotaOverPeriod => "cap quota must not exceed its period (one CPU)",
        })
    }
}

/// A cap: at most `quota_ns` of CPU time in every `period_ns` window, like cgroup v2
/// `cpu.max` = `"quota period"` (in nanoseconds here, not microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cap {
    /// CPU time allowed per period, nanoseconds (`1..=period_ns`).
    pub quota_ns: u64,
    /// Length of the accounting window, nanoseconds (windows start at multiples of it).
    pub period_ns: u64,
}

impl Cap {
    /// A checked cap of `quota_ns` per `period_ns`.
    pub fn new(quota_ns: u64, period_ns: u64) -> Result<Cap, ShareError> {
        let cap = Cap {
            quota_ns,
            period_ns,
        };
        cap.validate()?;
        Ok(cap)
    }

    /// `percent`% of one CPU per `period_ns` (`1..=100`); the quota is rounded down to
    /// whole nanoseconds and refused if that makes it 0.
    pub fn percent(percent: u32, period_ns: u64) -> Result<Cap, ShareError> {
        if percent > 100 {
            return Err(ShareError::QuotaOverPeriod);
        }
        // u128: period_ns * 100 can exceed u64; the quotient is <= period_ns, so it fits u64.
        let quota_ns = (u128::from(period_ns) * u128::from(percent) / 100) as u64;
        if period_ns == 0 {
            return Err(ShareError::ZeroPeriod);
        }
        Cap::new(quota_ns, period_ns)
    }

    /// Checks `0 < quota_ns <= period_ns`.
    pub fn validate(&self) -> Result<(), ShareError> {
        if self.quota_ns == 0 {
            Err(ShareError::ZeroQuota)
        } else if self.period_ns == 0 {
            Err(ShareError::ZeroPeriod)
        } else if self.quota_ns > self.period_ns {
            Err(ShareError::QuotaOverPeriod)
        } else {
            Ok(())
        }
    }
}

/// How much CPU a task is entitled to: a weight for proportional sharing and an optional cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    /// Relative weight, [`MIN_WEIGHT`]`..=`[`MAX_WEIGHT`]: two always-runnable tasks of
    /// weights 1 and 3 get 25% and 75%.
    pub weight: u32,
    /// Upper bound on the CPU time per period, whatever the weight.
    pub cap: Option<Cap>,
}

impl Share {
    /// A checked share.
    pub fn new(weight: u32, cap: Option<Cap>) -> Result<Share, ShareError> {
        let share = Share { weight, cap };
        share.validate()?;
        Ok(share)
    }

    /// Checks the weight range and the cap (the fields are public, so the scheduler checks
    /// again on [`Scheduler::add`] and [`Scheduler::set_share`]).
    pub fn validate(&self) -> Result<(), ShareError> {
        if self.weight < MIN_WEIGHT {
            return Err(ShareError::ZeroWeight);
        }
        if self.weight > MAX_WEIGHT {
            return Err(ShareError::WeightTooLarge);
        }
        match &self.cap {
            Some(cap) => cap.validate(),
            None => Ok(()),
        }
    }
}

/// Why a scheduler call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// `add` with an id that is already scheduled.
    Duplicate,
    /// No task with that id.
    NotFound,
    /// The share (built without [`Share::new`]) is out of range.
    InvalidShare(ShareError),
}

/// What the CPU should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision<Id> {
    /// Run `id` for at most `slice_ns` (the scheduler's slice, shortened to the quota left
    /// in the task's current period), then [`Scheduler::charge`] what it really ran.
    Run { id: Id, slice_ns: u64 },
    /// Nothing can run. Call [`Scheduler::pick`] again at `until_ns` (the earliest sleeper
    /// wake-up or end of a throttle), or on the next `wake`/`add`; `None` when no timed
    /// event is pending.
    Idle { until_ns: Option<u64> },
}

/// A task's accounting totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Measured CPU time charged, nanoseconds.
    pub ran_ns: u64,
    /// How many times a charge used up the task's quota for its period.
    pub throttled_count: u64,
    /// How many times `pick` chose the task.
    pub runs: u64,
    /// Time spent runnable but not running, nanoseconds: from a wake-up (or the end of a
    /// slice that left it runnable) to the `pick` that chose it, throttled time included
    /// (Linux's `run_delay` in `/proc/PID/schedstat`). Over `runs`, how long the task
    /// waited for the CPU each time it wanted it: contention as the task feels it.
    pub delay_ns: u64,
}

/// A task's scheduling state. `Throttled` is reported as of the last call that passed a
/// time (`pick`, `charge`, `wake`, `add`, `set_share`): `state` takes no clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Eligible to run.
    Runnable,
    /// Waiting for an event; runnable again on [`Scheduler::wake`].
    Blocked,
    /// Waiting until `until_ns` (or an earlier `wake`).
    Sleeping { until_ns: u64 },
    /// Runnable but out of quota until its period ends at `until_ns`.
    Throttled { until_ns: u64 },
}

/// Whether a task wants the CPU (independently of its cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Runnable,
    Blocked,
    Sleeping(u64),
}

/// Cap bookkeeping for the task's current period.
#[derive(Clone, Copy, Debug)]
struct CapState {
    cap: Cap,
    /// Index of the current period: it covers `[period * period_ns, (period + 1) * period_ns)`.
    /// `period * period_ns <= now < 2^64` for the `now` it was computed from, so that product
    /// never overflows.
    period: u64,
    /// Time charged in the current period, ns. Can exceed `budget_ns` (overshoot).
    used_ns: u64,
    /// Time allowed in the current period: the quota minus the debt carried in, ns.
    budget_ns: u64,
}

impl CapState {
    fn new(cap: Cap, now_ns: u64) -> CapState {
        CapState {
            cap,
            period: now_ns / cap.period_ns,
            used_ns: 0,
            budget_ns: cap.quota_ns,
        }
    }

    fn throttled(&self) -> bool {
        self.used_ns >= self.budget_ns
    }

    fn remaining_ns(&self) -> u64 {
        self.budget_ns.saturating_sub(self.used_ns)
    }

    /// Start of the current period, ns (no overflow: see `period`).
    fn period_start_ns(&self) -> u64 {
        self.period * self.cap.period_ns
    }

    /// End of the current period, ns. `(period + 1) * period_ns <= now + period_ns` may pass
    /// 2^64 only for times beyond any uptime; it saturates to `u64::MAX` ("never").
    fn period_end_ns(&self) -> u64 {
        self.period
            .saturating_add(1)
            .saturating_mul(self.cap.period_ns)
    }

    /// Debt carried out of the current period: the overshoot, at most one quota.
    fn debt_out_ns(&self) -> u64 {
        self.used_ns
            .saturating_sub(self.budget_ns)
            .min(self.cap.quota_ns)
    }

    /// Moves to the next period, carrying the overshoot as debt.
    fn roll_next(&mut self) {
        let debt = self.debt_out_ns();
        debug_assert!(debt <= self.cap.quota_ns);
        self.budget_ns = self.cap.quota_ns - debt;
        self.used_ns = 0;
        self.period = self.period.saturating_add(1);
    }

    /// Moves forward to period `index` (never backwards).
    fn roll_to(&mut self, index: u64) {
        if index <= self.period {
            return;
        }
        if index == self.period + 1 {
            self.roll_next();
        } else {
            // The period after the current one was not used at all, so the debt it carried
            // (which only lowered its budget) is paid off: a fresh quota.
            self.budget_ns = self.cap.quota_ns;
            self.used_ns = 0;
            self.period = index;
        }
    }

    /// Bills a run of `ran_ns` that ended at `now_ns` to the period(s) it covered.
    /// Returns whether this charge used up the quota of the period it ends in.
    fn charge(&mut self, ran_ns: u64, now_ns: u64) -> bool {
        let p = self.cap.period_ns;
        let q = self.cap.quota_ns;
        debug_assert!(0 < q && q <= p);
        let start = now_ns.saturating_sub(ran_ns);
        self.roll_to(start / p);
        let before = (self.period, self.throttled());

        let period_start = self.period_start_ns();
        if now_ns <= period_start {
            // The caller's times disagree with an earlier call (the run ends before the
            // current period began). Measured time is never dropped: bill it all here.
            self.used_ns = self.used_ns.saturating_add(ran_ns);
        } else {
            // Any part of the run reported before the current period (inconsistent times
            // again) is billed to the current period too.
            let early = period_start.saturating_sub(start);
            let from = start.max(period_start);
            let end_index = now_ns / p;
            if end_index == self.period {
                // used_ns <= budget + a few runs; saturation is only a guard against callers
                // charging absurd amounts.
                self.used_ns = self.used_ns.saturating_add(early + (now_ns - from));
            } else {
                // The run crosses at least one period boundary.
                // (period + 1) * p <= end_index * p <= now_ns: no overflow.
                let first_end = (self.period + 1) * p;
                self.used_ns = self.used_ns.saturating_add(early + (first_end - from));
                let full = end_index - self.period - 1;
                self.roll_next();
                if full > 0 {
                    // `full` whole periods were spent running (a run far longer than the
                    // period, e.g. a 1 ms period under a 10 ms tick). Each used p against a
                    // budget b and handed on the budget max(b - (p - q), 0), so after them
                    // the budget is b1 minus (full - 1) * (p - q), floored at 0; no loop.
                    self.budget_ns = self
                        .budget_ns
                        .saturating_sub((full - 1).saturating_mul(p - q));
                    self.used_ns = p;
                    self.period = end_index - 1;
                    self.roll_next();
                }
                debug_assert_eq!(self.period, end_index);
                self.used_ns = now_ns - end_index * p;
            }
        }
        debug_assert!(self.budget_ns <= q);
        self.throttled() && (!before.1 || before.0 != self.period)
    }
}

struct Task<Id> {
    id: Id,
    weight: u32,
    /// Weighted virtual runtime, [`SCALE`] units per ns at weight 1.
    vruntime: u128,
    wait: Wait,
    cap: Option<CapState>,
    /// `pick` sequence number of the last time it was chosen; 0 = never.
    last_run: u64,
    /// Since when it has been runnable without running (for `Usage::delay_ns`).
    ready_since: Option<u64>,
    usage: Usage,
}

impl<Id> Task<Id> {
    fn throttled(&self) -> bool {
        self.cap.as_ref().is_some_and(CapState::throttled)
    }

    /// Runnable and within its quota: a candidate for `pick`.
    fn eligible(&self) -> bool {
        self.wait == Wait::Runnable && !self.throttled()
    }
}

/// `vruntime` for a task whose weight goes from `old` to `new`: its lead on or lag behind
/// the floor `min` is kept in its own run time, as CFS's reweighting does. Without it, a
/// task that ran a while at a small weight would come back to a large one that far ahead
/// of everyone (starved until they caught up), and one that ran at a large weight would
/// come back to a small one with a lead it never earned at that weight.
fn reweighted(vruntime: u128, min: u128, old: u32, new: u32) -> u128 {
    if old == new {
        return vruntime;
    }
    let (old, new) = (u128::from(old), u128::from(new));
    // Leads and lags are below 2^84 (see SCALE) and weights below 2^14: no overflow.
    if vruntime >= min {
        min + (vruntime - min) * old / new
    } else {
        min.saturating_sub((min - vruntime) * old / new)
    }
}

/// The scheduling policy for one CPU. `Id` names tasks (a partition or agent id).
pub struct Scheduler<Id> {
    tasks: Vec<Task<Id>>,
    slice_ns: u64,
    /// Floor of the eligible tasks' vruntimes; never decreases. Tasks that become eligible
    /// start no lower (added, unthrottled) or at most the wake credit lower (woken), so
    /// time spent away banks no more than that.
    min_vruntime: u128,
    /// Count of `pick`s that chose a task (u64: 2^64 picks will not happen).
    seq: u64,
}

impl<Id: Copy + Eq> Scheduler<Id> {
    /// A scheduler that grants at most `slice_ns` at a time (the kernel uses 10 ms).
    /// A `slice_ns` of 0 is taken as 1 ns.
    pub fn new(slice_ns: u64) -> Self {
        Scheduler {
            tasks: Vec::new(),
            slice_ns: slice_ns.max(1),
            min_vruntime: 0,
            seq: 0,
        }
    }

    /// The longest slice granted at once, ns.
    pub fn slice_ns(&self) -> u64 {
        self.slice_ns
    }

    /// The most run time a woken waiter may be placed ahead of the floor: half a slice,
    /// as CFS places sleepers half its latency target back.
    pub fn wake_credit_ns(&self) -> u64 {
        self.slice_ns / 2
    }

    /// Adds a runnable task. It starts at the current minimum vruntime: it gets its share
    /// from now on, not credit for the time before it existed.
    pub fn add(&mut self, id: Id, share: Share, now_ns: u64) -> Result<(), SchedError> {
        share.validate().map_err(SchedError::InvalidShare)?;
        if self.find(id).is_some() {
            return Err(SchedError::Duplicate);
        }
        self.tasks.push(Task {
            id,
            weight: share.weight,
            vruntime: self.min_vruntime,
            wait: Wait::Runnable,
            cap: share.cap.map(|cap| CapState::new(cap, now_ns)),
            last_run: 0,
            ready_since: Some(now_ns),
            usage: Usage::default(),
        });
        self.refresh_min();
        Ok(())
    }

    /// Removes a task, returning its totals.
    pub fn remove(&mut self, id: Id) -> Option<Usage> {
        let index = self.find(id)?;
        let task = self.tasks.remove(index);
        self.refresh_min();
        Some(task.usage)
    }

    /// Changes a task's weight and cap. A cap's accounting for the current period carries
    /// over (time used and debt), so changing shares cannot be used to reset a quota.
    pub fn set_share(&mut self, id: Id, share: Share, now_ns: u64) -> Result<(), SchedError> {
        share.validate().map_err(SchedError::InvalidShare)?;
        let index = self.find(id).ok_or(SchedError::NotFound)?;
        let min = self.min_vruntime;
        let task = &mut self.tasks[index];
        let was_eligible = task.eligible();
        task.vruntime = reweighted(task.vruntime, min, task.weight, share.weight);
        task.weight = share.weight;
        task.cap = match (task.cap, share.cap) {
            (_, None) => None,
            (None, Some(cap)) => Some(CapState::new(cap, now_ns)),
            (Some(mut old), Some(cap)) => {
                old.roll_to(now_ns / old.cap.period_ns);
                let debt = old.cap.quota_ns - old.budget_ns;
                Some(CapState {
                    cap,
                    period: now_ns / cap.period_ns,
                    used_ns: old.used_ns,
                    budget_ns: cap.quota_ns - debt.min(cap.quota_ns),
                })
            }
        };
        if !was_eligible && task.eligible() {
            task.vruntime = task.vruntime.max(min);
        }
        self.refresh_min();
        Ok(())
    }

    /// Marks a task not runnable (waiting for I/O or an event) until [`wake`](Self::wake).
    /// Unknown ids are ignored.
    pub fn block(&mut self, id: Id) {
        if let Some(index) = self.find(id) {
            self.tasks[index].wait = Wait::Blocked;
            self.tasks[index].ready_since = None;
            self.refresh_min();
        }
    }

    /// Puts a task to sleep until `wake_ns`; the first `pick` at or after it wakes it (as
    /// does an earlier `wake`). Unknown ids are ignored.
    pub fn sleep_until(&mut self, id: Id, wake_ns: u64) {
        if let Some(index) = self.find(id) {
            self.tasks[index].wait = Wait::Sleeping(wake_ns);
            self.tasks[index].ready_since = None;
            self.refresh_min();
        }
    }

    /// Makes a blocked or sleeping task runnable again. Its vruntime is raised to the
    /// current minimum less the [wake credit](Self::wake_credit_ns): enough lead to run
    /// ahead of tasks that never wait, never enough to monopolise the CPU.
    /// Runnable and unknown ids are left alone.
    pub fn wake(&mut self, id: Id, now_ns: u64) {
        let Some(index) = self.find(id) else { return };
        if self.tasks[index].wait != Wait::Runnable {
            let (min, credit) = (self.min_vruntime, self.wake_credit_ns());
            let task = &mut self.tasks[index];
            Self::settle(task, true, now_ns, min, credit);
            self.refresh_min();
        }
    }

    /// Chooses what runs next at `now_ns`: wakes sleepers that are due and refills the
    /// quota of tasks whose period rolled over, then picks the eligible task with the
    /// smallest vruntime (ties: the one that ran least recently). O(n), no allocation.
    pub fn pick(&mut self, now_ns: u64) -> Decision<Id> {
        let (min, credit) = (self.min_vruntime, self.wake_credit_ns());
        let mut best: Option<usize> = None;
        let mut until_ns: Option<u64> = None;
        for index in 0..self.tasks.len() {
            let task = &mut self.tasks[index];
            let due = matches!(task.wait, Wait::Sleeping(until) if until <= now_ns);
            Self::settle(task, due, now_ns, min, credit);
            let task = &self.tasks[index];
            if task.eligible() {
                let better = match best {
                    None => true,
                    Some(b) => {
                        let b = &self.tasks[b];
                        (task.vruntime, task.last_run) < (b.vruntime, b.last_run)
                    }
                };
                if better {
                    best = Some(index);
                }
            } else {
                let event = match (task.wait, &task.cap) {
                    (Wait::Sleeping(until), _) => Some(until),
                    (Wait::Runnable, Some(cap)) => Some(cap.period_end_ns()),
                    _ => None,
                };
                if let Some(event) = event {
                    // Due sleepers were woken and periods rolled to `now_ns`; only a period
                    // end saturated at u64::MAX can fail to lie ahead.
                    debug_assert!(event > now_ns || event == u64::MAX);
                    until_ns = Some(until_ns.map_or(event, |u| u.min(event)));
                }
            }
        }
        let Some(index) = best else {
            return Decision::Idle { until_ns };
        };
        self.seq += 1;
        let seq = self.seq;
        let slice_cap = self.slice_ns;
        let task = &mut self.tasks[index];
        // The chosen task has the smallest eligible vruntime: the new floor, unless it is
        // a woken waiter still below it on its credit (the floor never goes down).
        self.min_vruntime = self.min_vruntime.max(task.vruntime);
        task.last_run = seq;
        task.usage.runs = task.usage.runs.saturating_add(1);
        if let Some(since) = task.ready_since.take() {
            task.usage.delay_ns = task
                .usage
                .delay_ns
                .saturating_add(now_ns.saturating_sub(since));
        }
        let slice_ns = match &task.cap {
            Some(cap) => slice_cap.min(cap.remaining_ns()),
            None => slice_cap,
        };
        debug_assert!(slice_ns > 0);
        Decision::Run {
            id: task.id,
            slice_ns,
        }
    }

    /// Debits `ran_ns` of measured run time that ended at `now_ns`:
    /// `vruntime += ran_ns * SCALE / weight`, and against the cap, the part of the run in
    /// each period. An overshoot past the quota (preemption is tick-granular) is carried
    /// into the next period as debt, at most one quota. Charge what really ran, also for a
    /// task that yielded early or blocked; unknown ids are ignored (a task removed while
    /// it ran).
    pub fn charge(&mut self, id: Id, ran_ns: u64, now_ns: u64) {
        let Some(index) = self.find(id) else { return };
        let min = self.min_vruntime;
        let task = &mut self.tasks[index];
        let was_eligible = task.eligible();
        // ran_ns <= u64::MAX, so the product is below 2^84 (see SCALE on the sum).
        let delta = u128::from(ran_ns) * SCALE / u128::from(task.weight);
        task.vruntime = task.vruntime.saturating_add(delta);
        task.usage.ran_ns = task.usage.ran_ns.saturating_add(ran_ns);
        if task.wait == Wait::Runnable {
            task.ready_since = Some(now_ns);
        }
        if let Some(cap) = &mut task.cap
            && cap.charge(ran_ns, now_ns)
        {
            task.usage.throttled_count = task.usage.throttled_count.saturating_add(1);
        }
        if !was_eligible && task.eligible() {
            task.vruntime = task.vruntime.max(min);
        }
        self.refresh_min();
    }

    /// A task's totals so far.
    pub fn usage(&self, id: Id) -> Option<Usage> {
        self.find(id).map(|index| self.tasks[index].usage)
    }

    /// A task's state (throttling as of the last call that passed a time).
    pub fn state(&self, id: Id) -> Option<TaskState> {
        let task = &self.tasks[self.find(id)?];
        Some(match (task.wait, &task.cap) {
            (Wait::Blocked, _) => TaskState::Blocked,
            (Wait::Sleeping(until_ns), _) => TaskState::Sleeping { until_ns },
            (Wait::Runnable, Some(cap)) if cap.throttled() => TaskState::Throttled {
                until_ns: cap.period_end_ns(),
            },
            (Wait::Runnable, _) => TaskState::Runnable,
        })
    }

    /// A task's current share.
    pub fn share(&self, id: Id) -> Option<Share> {
        let task = &self.tasks[self.find(id)?];
        Some(Share {
            weight: task.weight,
            cap: task.cap.map(|cap| cap.cap),
        })
    }

    /// Number of tasks, in any state.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn find(&self, id: Id) -> Option<usize> {
        self.tasks.iter().position(|task| task.id == id)
    }

    /// Brings a task to `now_ns`: rolls its cap period forward, makes it runnable if
    /// `wake`, and raises its vruntime towards `min` if that made it eligible: to `min`
    /// less the wake credit for a woken waiter, to `min` for a task leaving a throttle.
    fn settle(task: &mut Task<Id>, wake: bool, now_ns: u64, min: u128, credit_ns: u64) {
        let was_eligible = task.eligible();
        let was_waiting = task.wait != Wait::Runnable;
        if let Some(cap) = &mut task.cap {
            cap.roll_to(now_ns / cap.cap.period_ns);
        }
        if wake {
            // A sleeper due at `until` has wanted the CPU since then.
            task.ready_since = match task.wait {
                Wait::Sleeping(until) => Some(until.min(now_ns)),
                Wait::Blocked => Some(now_ns),
                Wait::Runnable => task.ready_since,
            };
            task.wait = Wait::Runnable;
        }
        if !was_eligible && task.eligible() {
            // A waiter comes back a little ahead of the floor, so a task that waits on the
            // network or a disk runs as soon as its event arrives instead of queuing behind
            // a task that never waits (CFS's sleeper placement). The lead is at most
            // `credit_ns` of its own run time however long it waited: waiting banks
            // nothing beyond that.
            let credit = if wake && was_waiting {
                u128::from(credit_ns) * SCALE / u128::from(task.weight)
            } else {
                0
            };
            task.vruntime = task.vruntime.max(min.saturating_sub(credit));
        }
    }

    /// Raises the floor to the smallest eligible vruntime (if any task is eligible).
    fn refresh_min(&mut self) {
        let smallest = self
            .tasks
            .iter()
            .filter(|task| task.eligible())
            .map(|task| task.vruntime)
            .min();
        if let Some(smallest) = smallest {
            self.min_vruntime = self.min_vruntime.max(smallest);
        }
    }
}
