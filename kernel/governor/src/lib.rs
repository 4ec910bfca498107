//! Contention protection: the decision, window by window, of how hard to throttle the
//! agents of partitions that are not protected while a protected one is at work and a
//! shared resource — the CPU, the disk, memory — is past the protection policy's
//! threshold, so management agents never hurt the application they serve.
//!
//! One [`Governor`] watches one resource. [`Governor::observe`] takes what one window
//! measured ([`Window`]: its length, how long the resource was busy in it, and how long
//! protected partitions were at work) and says whether the cap on the others changes.
//! While a protected partition is at work (for 1% of the window or more) and the
//! resource is at or past the threshold, the cap tightens a step a window: 50%, then
//! half of that, down to the policy's floor. It is held while the protected partition
//! stays at work — the resource below the threshold is the cap working, not contention
//! ending — and once no protected partition has been at work for [`RELEASE_AFTER_NS`],
//! it loosens a step a window, back to no cap. Holding rather than probing keeps a busy
//! service from being hit again every few seconds.
//!
//! What the cap means is the runtime's: a percent of one CPU for the CPU, of each
//! partition's memory quota for its memory mark, of the rate every partition's disk
//! requests came to when contention began for a disk budget.
//!
//! Owns that state machine only. It must not measure time, touch the scheduler or
//! record events: the runtime measures, applies the cap to the agents concerned (the
//! tighter of it and their own) and records each change as an event.
#![no_std]
#![forbid(unsafe_code)]

/// How long one window is; the runtime closes one at the first chance after this.
pub const WINDOW_NS: u64 = 100_000_000;
/// How long no protected partition must have been busy before the cap loosens.
pub const RELEASE_AFTER_NS: u64 = 2_000_000_000;
/// The first step's cap, percent.
pub const FIRST_STEP: u8 = 50;

/// The protection policy's word on one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The resource's use, percent of the window, at which a protected partition at work
    /// is contended (`contention.cpu_busy_percent`, `disk_busy_percent`,
    /// `memory_used_percent`: 1..=100).
    pub busy_percent: u8,
    /// The tightest cap (`contention.cpu_throttle_floor_percent`, …: 1..=100).
    pub floor_percent: u8,
}

/// What one window measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub span_ns: u64,
    /// How long the resource was busy in it: the CPU time every agent used, the time
    /// the disk had a request in flight; for a level such as memory in use, the level's
    /// fraction of the span.
    pub busy_ns: u64,
    /// How long protected partitions were at work in it: their agents' CPU time plus
    /// the time they had disk requests in flight (a service waiting on its disk is at
    /// work, though it uses little CPU).
    pub protected_ns: u64,
}

impl Window {
    /// The resource's use, percent of the window (0 for an empty window).
    pub fn busy_percent(&self) -> u8 {
        match self.span_ns {
            0 => 0,
            span => (u128::from(self.busy_ns.min(span)) * 100 / u128::from(span)) as u8,
        }
    }

    /// Whether a protected partition was at work for 1% of the window or more.
    pub fn protected_busy(&self) -> bool {
        self.span_ns > 0 && u128::from(self.protected_ns) * 100 >= u128::from(self.span_ns)
    }
}

/// A change of the cap on agents outside protected partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Tightened to `cap_percent`: the resource was `busy_percent` busy while a
    /// protected partition was at work.
    Throttle { cap_percent: u8, busy_percent: u8 },
    /// Loosened to `cap_percent` (`None`: no cap): no protected partition has been busy
    /// for `quiet_ns`.
    Release {
        cap_percent: Option<u8>,
        quiet_ns: u64,
    },
}

/// The state machine (see the crate docs).
#[derive(Clone, Debug)]
pub struct Governor {
    policy: Policy,
    cap: Option<u8>,
    /// How long no protected partition has been busy.
    quiet_ns: u64,
}

impl Governor {
    pub fn new(policy: Policy) -> Governor {
        Governor {
            policy,
            cap: None,
            quiet_ns: 0,
        }
    }

    /// The cap on partitions that are not protected now, percent.
    pub fn cap(&self) -> Option<u8> {
        self.cap
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// A new policy; the cap now in force stays until the next window decides.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// Takes one window's measurements; the change of cap, if any.
    pub fn observe(&mut self, w: Window) -> Option<Change> {
        if w.span_ns == 0 {
            return None;
        }
        let busy = w.busy_percent();
        let floor = self.policy.floor_percent.clamp(1, 100);
        if w.protected_busy() {
            self.quiet_ns = 0;
            if busy < self.policy.busy_percent {
                return None;
            }
            let next = match self.cap {
                None => FIRST_STEP.max(floor),
                Some(c) => (c / 2).max(floor),
            };
            if next >= 100 || Some(next) == self.cap {
                return None;
            }
            self.cap = Some(next);
            return Some(Change::Throttle {
                cap_percent: next,
                busy_percent: busy,
            });
        }
        self.quiet_ns = self.quiet_ns.saturating_add(w.span_ns);
        let c = self.cap?;
        if self.quiet_ns < RELEASE_AFTER_NS {
            return None;
        }
        self.cap = match c.saturating_mul(2) {
            n if n > FIRST_STEP || c >= FIRST_STEP => None,
            n => Some(n),
        };
        Some(Change::Release {
            cap_percent: self.cap,
            quiet_ns: self.quiet_ns,
        })
    }
}

pub mod memory;

#[cfg(test)]
mod tests;
