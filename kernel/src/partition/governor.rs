//! Contention protection, applied: each window (`plinth_governor::WINDOW_NS`) the CPU
//! time agents used, and how much of it protected partitions' agents used, goes to the
//! protection policy's `CpuGovernor`; the cap it decides is put on every agent of the
//! partitions that are not protected (the tighter of it and the agent's own), with the
//! smallest weight so that within the cap they run only when protected agents do not
//! want the CPU, and each change is an event of each partition it touches.
//!
//! Owns the window's bookkeeping and which partitions are protected (the policy's
//! `protected` limits, by name, refreshed each window so partitions created later are
//! covered). It must not decide (`plinth-governor` does) or measure time itself (the
//! run loop charges what ran).

use alloc::vec::Vec;

use plinth_governor::{Change, CpuGovernor, CpuPolicy, WINDOW_NS, Window};
use plinth_policy::policies::{DEFAULT_CPU_THROTTLE_FLOOR, PolicySet, Target};
use plinth_sched::{Cap, MIN_WEIGHT, Share};

use super::events::EventKind;
use super::model::AgentStatus;
use super::{CAP_PERIOD_NS, Runtime};

/// The governor and its current window.
pub struct Protection {
    governor: CpuGovernor,
    start_ns: u64,
    busy_at: u64,
    protected_at: u64,
}

/// The protection policy's CPU governor, if it watches the CPU and protects a partition.
pub fn from_policy(p: &PolicySet, now_ns: u64) -> Option<Protection> {
    let busy_percent = p.contention.cpu_busy_percent?;
    if !p.limits.iter().any(|l| l.protected) {
        return None;
    }
    let floor_percent = p
        .contention
        .cpu_throttle_floor_percent
        .unwrap_or(DEFAULT_CPU_THROTTLE_FLOOR);
    Some(Protection {
        governor: CpuGovernor::new(CpuPolicy {
            busy_percent,
            floor_percent,
        }),
        start_ns: now_ns,
        busy_at: 0,
        protected_at: 0,
    })
}

/// `base` with the governor's cap, where that is the tighter, and the smallest weight:
/// within its cap a throttled agent runs when no one else wants the CPU (like Linux's
/// `SCHED_IDLE`), not first. A capped agent uses so little of the CPU that at its own
/// weight its virtual runtime would stay behind the protected partition's, and it would
/// win every pick until its quota ran out — a stall of the whole quota, each period, for
/// a service waiting on the network.
fn throttled(base: Share, cap_percent: Option<u8>) -> Share {
    let Some(cap) = cap_percent.and_then(|p| Cap::percent(u32::from(p), CAP_PERIOD_NS).ok()) else {
        return base;
    };
    let tighter = match base.cap {
        // Compare quota/period as fractions: a*d < c*b.
        Some(own)
            if u128::from(own.quota_ns) * u128::from(cap.period_ns)
                <= u128::from(cap.quota_ns) * u128::from(own.period_ns) =>
        {
            own
        }
        _ => cap,
    };
    Share {
        weight: MIN_WEIGHT,
        cap: Some(tighter),
    }
}

impl Protection {
    /// The cap contention protection has on unprotected partitions' agents now.
    pub fn cap(&self) -> Option<u8> {
        self.governor.cap()
    }
}

impl Runtime {
    /// The share an agent of partition `pi` with share `base` runs at now: `base`, or
    /// throttled while contention protection caps the unprotected partitions.
    pub(super) fn share_now(&self, pi: usize, base: Share) -> Share {
        let cap = self.protection.as_ref().and_then(Protection::cap);
        if self.protected.get(pi).copied().unwrap_or(false) {
            base
        } else {
            throttled(base, cap)
        }
    }

    /// Which partitions the policy protects, by index.
    fn refresh_protected(&mut self) {
        let protected: Vec<bool> = self
            .partitions
            .iter()
            .map(|p| {
                self.policies.limits.iter().any(|l| {
                    l.protected && matches!(&l.target, Target::Partition(n) if *n == p.name)
                })
            })
            .collect();
        self.protected = protected;
    }

    /// Closes the window if it is over: feeds it to the governor, applies a change (and
    /// re-applies the cap to agents started or resized since), records the events.
    pub(super) fn govern(&mut self, now_ns: u64) {
        let Some(pr) = self.protection.as_mut() else {
            return;
        };
        if now_ns < pr.start_ns.saturating_add(WINDOW_NS) {
            return;
        }
        let window = Window {
            span_ns: now_ns - pr.start_ns,
            busy_ns: self.busy_ns - pr.busy_at,
            protected_ns: self.protected_ns - pr.protected_at,
        };
        pr.start_ns = now_ns;
        pr.busy_at = self.busy_ns;
        pr.protected_at = self.protected_ns;
        let change = pr.governor.observe(window);
        let cap = pr.governor.cap();
        self.refresh_protected();
        if change.is_none() && cap.is_none() {
            return;
        }
        for pi in 0..self.partitions.len() {
            if self.protected.get(pi).copied().unwrap_or(false) {
                continue;
            }
            let mut touched = false;
            for slot in &self.partitions[pi].agents {
                let AgentStatus::Running(id) = slot.status else {
                    continue;
                };
                let want = throttled(slot.share, cap);
                if self.sched.share(id) != Some(want) {
                    let _ = self.sched.set_share(id, want, now_ns);
                }
                touched = true;
            }
            if !touched {
                continue;
            }
            let kind = match change {
                Some(Change::Throttle {
                    cap_percent,
                    busy_percent,
                }) => EventKind::CpuThrottled {
                    cap_percent,
                    busy_percent,
                },
                Some(Change::Release { cap_percent, .. }) => EventKind::CpuReleased { cap_percent },
                None => continue,
            };
            self.event(pi, None, kind);
        }
    }
}
