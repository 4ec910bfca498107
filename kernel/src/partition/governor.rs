//! Contention protection, applied: each window (`plinth_governor::WINDOW_NS`) what the
//! CPU, the disk and memory were used for goes to the protection policy's governors —
//! one per resource the policy watches — and the caps they decide are put on every
//! partition that is not protected, each change an event of each partition it touches:
//!
//! - **CPU**: the agents' cap (the tighter of it and their own) and the smallest weight,
//!   so that within the cap they run only when protected agents do not want the CPU. A
//!   capped agent uses so little of the CPU that at its own weight its virtual runtime
//!   would stay behind the protected partition's and win every pick until its quota ran
//!   out — a stall of the whole quota, each period, for a service waiting on the network.
//! - **Disk**: a budget on the partition's gate (the tighter of it and its own): the
//!   cap's percent of the IOPS and bytes/s every partition's requests came to in the
//!   window contention began. A throttled request waits in its own gate, so what the
//!   protected partition asks for finds the device queue short.
//! - **Memory**: a mark (the tighter of it and its own `high_mib`): the cap's percent of
//!   the partition's quota. Above it `mem_grow` sleeps the memory governor's penalty, so
//!   a hog's page clearing and mapping — the runtime's work, which no scheduler
//!   preempts — comes seldom.
//!
//! A protected partition is at work while its agents run or its disk requests are in
//! flight: a service waiting on its disk uses little CPU but is at work all the same.
//!
//! Owns the window's bookkeeping, the disk's busy time and which partitions are
//! protected (the policy's `protected` limits, by name, refreshed each window so
//! partitions created later are covered). It must not decide (`plinth-governor` does) or
//! measure CPU time itself (the run loop charges what ran).

use alloc::vec::Vec;

use plinth_governor::{Change, Governor, Policy, WINDOW_NS, Window};
use plinth_iogate::Budget;
use plinth_policy::policies::{DEFAULT_THROTTLE_FLOOR, PolicySet, Target};
use plinth_sched::{Cap, MIN_WEIGHT, Share};

use super::events::EventKind;
use super::model::AgentStatus;
use super::{CAP_PERIOD_NS, Runtime};

/// The governors and their current window.
pub struct Protection {
    cpu: Option<Governor>,
    disk: Option<Governor>,
    memory: Option<Governor>,
    start_ns: u64,
    busy_at: u64,
    protected_at: u64,
    disk_busy_at: u64,
    protected_io_at: u64,
    /// Every partition's disk operations and bytes at the window's start.
    disk_done_at: (u64, u64),
    /// The last windows' spans, operations and bytes, newest at `recent_at`.
    recent: [(u64, u64, u64); RECENT],
    recent_at: usize,
    /// What a disk cap is a percent of: the operations and bytes per second of the
    /// last [`RECENT`] windows when contention began.
    disk_base: Option<(u64, u64)>,
}

/// Windows the disk's rate is taken over when contention begins (a second): one 100 ms
/// window is too short a sample, and may have no request in it at all.
const RECENT: usize = 10;

/// How long partitions' disk requests were in flight: those of partitions that are not
/// protected (the load contention is judged by: a protected service alone is not
/// contended, however busy its disk), and protected partitions'. The run loop brings it
/// up to date each pass (`account_disk`): a request starts as its caller's slice ends
/// (the call blocks, and the loop comes round at once) and finishes with an interrupt,
/// which ends a slice too, so a pass's state holds until the next.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskClock {
    pub others_ns: u64,
    pub protected_ns: u64,
    at_ns: u64,
    others: bool,
    protected: bool,
}

/// The protection policy's governors, if it protects a partition and watches a resource.
pub fn from_policy(p: &PolicySet, now_ns: u64) -> Option<Protection> {
    if !p.limits.iter().any(|l| l.protected) {
        return None;
    }
    let c = &p.contention;
    let governor = |busy: Option<u8>, floor: Option<u8>| {
        busy.map(|busy_percent| {
            Governor::new(Policy {
                busy_percent,
                floor_percent: floor.unwrap_or(DEFAULT_THROTTLE_FLOOR),
            })
        })
    };
    let pr = Protection {
        cpu: governor(c.cpu_busy_percent, c.cpu_throttle_floor_percent),
        disk: governor(c.disk_busy_percent, c.disk_throttle_floor_percent),
        memory: governor(c.memory_used_percent, c.memory_throttle_floor_percent),
        start_ns: now_ns,
        busy_at: 0,
        protected_at: 0,
        disk_busy_at: 0,
        protected_io_at: 0,
        disk_done_at: (0, 0),
        recent: [(0, 0, 0); RECENT],
        recent_at: 0,
        disk_base: None,
    };
    (pr.cpu.is_some() || pr.disk.is_some() || pr.memory.is_some()).then_some(pr)
}

/// `base` with the governor's cap, where that is the tighter, and the smallest weight
/// (see the module docs).
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

/// `percent` of `of`, at least `min`.
fn part_of(of: u64, percent: u8, min: u64) -> u64 {
    (u128::from(of) * u128::from(percent) / 100).max(u128::from(min)) as u64
}

/// The disk budget a cap gives: its percent of `base` (operations, bytes per second),
/// a second of it as the burst, at least one operation and one largest request a second.
fn disk_budget(base: (u64, u64), cap_percent: u8) -> Budget {
    let ops = part_of(base.0, cap_percent, 1);
    let bytes = part_of(base.1, cap_percent, plinth_abi::MAX_IO);
    Budget {
        ops: Some((ops, ops)),
        bytes: Some((bytes, bytes)),
    }
}

impl Protection {
    /// The cap contention protection has on unprotected partitions' agents' CPU now.
    pub fn cap(&self) -> Option<u8> {
        self.cpu.as_ref().and_then(Governor::cap)
    }
}

impl Runtime {
    /// The policy's contention protection, its first window starting now: measured from
    /// the counters as they stand, not from boot.
    pub(super) fn new_protection(&mut self, now_ns: u64) -> Option<Protection> {
        self.refresh_protected();
        let mut pr = from_policy(&self.policies, now_ns)?;
        pr.busy_at = self.busy_ns;
        pr.protected_at = self.protected_ns;
        pr.disk_busy_at = self.disk_clock.others_ns;
        pr.protected_io_at = self.disk_clock.protected_ns;
        pr.disk_done_at = self.disk_done();
        Some(pr)
    }

    /// The share an agent of partition `pi` with share `base` runs at now: `base`, or
    /// throttled while contention protection caps the unprotected partitions.
    pub(super) fn share_now(&self, pi: usize, base: Share) -> Share {
        let cap = self.protection.as_ref().and_then(Protection::cap);
        if self.is_protected(pi) {
            base
        } else {
            throttled(base, cap)
        }
    }

    fn is_protected(&self, pi: usize) -> bool {
        self.protected.get(pi).copied().unwrap_or(false)
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

    /// Brings the disk clock up to `now_ns` and notes which requests are in flight.
    pub(super) fn account_disk(&mut self, now_ns: u64) {
        let c = &mut self.disk_clock;
        let dt = now_ns.saturating_sub(c.at_ns);
        if c.others {
            c.others_ns += dt;
        }
        if c.protected {
            c.protected_ns += dt;
        }
        c.at_ns = c.at_ns.max(now_ns);
        let (mut others, mut protected) = (false, false);
        for t in self.tasks.iter().filter(|t| t.io.is_some()) {
            if self.protected.get(t.partition) == Some(&true) {
                protected = true;
            } else {
                others = true;
            }
        }
        c.others = others;
        c.protected = protected;
    }

    /// Every partition's disk operations and bytes so far.
    fn disk_done(&self) -> (u64, u64) {
        self.partitions.iter().fold((0, 0), |(ops, bytes), p| {
            let u = &p.disk_usage;
            (
                ops + u.reads + u.writes,
                bytes + u.read_bytes + u.written_bytes,
            )
        })
    }

    /// Closes the window if it is over: feeds it to each governor, applies their caps
    /// (again each window, for partitions and agents started or resized since), records
    /// the changes as events.
    pub(super) fn govern(&mut self, now_ns: u64) {
        let Some(start_ns) = self.protection.as_ref().map(|p| p.start_ns) else {
            return;
        };
        if now_ns < start_ns.saturating_add(WINDOW_NS) {
            return;
        }
        let done = self.disk_done();
        let (free, usable) = crate::memory::frame_counts();
        let clock = self.disk_clock;
        let Some(pr) = self.protection.as_mut() else {
            return;
        };
        let span_ns = now_ns - pr.start_ns;
        let protected_ns = (self.protected_ns - pr.protected_at)
            + clock.protected_ns.saturating_sub(pr.protected_io_at);
        let window = |busy_ns: u64| Window {
            span_ns,
            busy_ns,
            protected_ns,
        };
        let cpu_window = window(self.busy_ns - pr.busy_at);
        let disk_window = window(clock.others_ns.saturating_sub(pr.disk_busy_at));
        let used = usable.saturating_sub(free) as u128;
        let memory_window = window(match usable {
            0 => 0,
            n => (used * u128::from(span_ns) / n as u128) as u64,
        });
        let disk_rate = (
            done.0.saturating_sub(pr.disk_done_at.0),
            done.1.saturating_sub(pr.disk_done_at.1),
        );
        pr.recent_at = (pr.recent_at + 1) % RECENT;
        pr.recent[pr.recent_at] = (span_ns, disk_rate.0, disk_rate.1);
        let (span, ops, bytes) = pr
            .recent
            .iter()
            .fold((0, 0, 0), |(s, o, b), w| (s + w.0, o + w.1, b + w.2));
        let per_sec = |n: u64| (u128::from(n) * 1_000_000_000 / u128::from(span.max(1))) as u64;
        pr.start_ns = now_ns;
        pr.busy_at = self.busy_ns;
        pr.protected_at = self.protected_ns;
        pr.disk_busy_at = clock.others_ns;
        pr.protected_io_at = clock.protected_ns;
        pr.disk_done_at = done;
        let cpu = pr.cpu.as_mut().map(|g| (g.observe(cpu_window), g.cap()));
        let disk = pr.disk.as_mut().map(|g| (g.observe(disk_window), g.cap()));
        let memory = pr
            .memory
            .as_mut()
            .map(|g| (g.observe(memory_window), g.cap()));
        if let Some((_, cap)) = disk {
            match (cap, pr.disk_base) {
                (Some(_), None) => pr.disk_base = Some((per_sec(ops), per_sec(bytes))),
                (None, Some(_)) => pr.disk_base = None,
                _ => {}
            }
        }
        let disk_base = pr.disk_base;
        self.refresh_protected();
        if let Some((change, cap)) = cpu {
            self.apply_cpu(change, cap, now_ns);
        }
        if let Some((change, cap)) = disk {
            self.apply_disk(change, cap, disk_base, now_ns);
        }
        if let Some((change, cap)) = memory {
            self.apply_memory(change, cap);
        }
    }

    fn apply_cpu(&mut self, change: Option<Change>, cap: Option<u8>, now_ns: u64) {
        if change.is_none() && cap.is_none() {
            return;
        }
        for pi in 0..self.partitions.len() {
            if self.is_protected(pi) {
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

    fn apply_disk(
        &mut self,
        change: Option<Change>,
        cap: Option<u8>,
        base: Option<(u64, u64)>,
        now_ns: u64,
    ) {
        if change.is_none() && cap.is_none() {
            return;
        }
        let budget = match (cap, base) {
            (Some(c), Some(b)) => disk_budget(b, c),
            _ => Budget::UNLIMITED,
        };
        for pi in 0..self.partitions.len() {
            if self.is_protected(pi) || self.partitions[pi].disk.is_none() {
                continue;
            }
            let changed = self.partitions[pi].contention_budget != budget;
            if changed {
                self.set_contention_budget(pi, budget, now_ns);
            }
            let kind = match change {
                // A step the budget's least (1 IOPS, 64 KiB/s) already held changes
                // nothing to tell.
                Some(Change::Throttle { .. }) if !changed => continue,
                Some(Change::Throttle {
                    cap_percent,
                    busy_percent,
                }) => EventKind::DiskThrottled {
                    cap_percent,
                    busy_percent,
                    iops: budget.ops.map_or(0, |r| r.0),
                    bytes_per_sec: budget.bytes.map_or(0, |r| r.0),
                },
                Some(Change::Release { cap_percent, .. }) => {
                    EventKind::DiskReleased { cap_percent }
                }
                None => continue,
            };
            self.event(pi, None, kind);
        }
    }

    fn apply_memory(&mut self, change: Option<Change>, cap: Option<u8>) {
        if change.is_none() && cap.is_none() {
            return;
        }
        for pi in 0..self.partitions.len() {
            if self.is_protected(pi) {
                continue;
            }
            let p = &mut self.partitions[pi];
            let mark = cap.map(|c| {
                let bytes = part_of(p.memory_quota, c, plinth_abi::PAGE_SIZE);
                bytes - bytes % plinth_abi::PAGE_SIZE
            });
            p.contention_mark = mark;
            if mark.is_none() {
                p.above_high = p
                    .memory_mark()
                    .is_some_and(|m| p.frames * plinth_abi::PAGE_SIZE > m);
            }
            // The mark is on every such partition; the events only on those with agents
            // running, which it can slow (as for the CPU).
            if !p
                .agents
                .iter()
                .any(|a| matches!(a.status, AgentStatus::Running(_)))
            {
                continue;
            }
            let kind = match change {
                Some(Change::Throttle {
                    cap_percent,
                    busy_percent,
                }) => EventKind::MemoryThrottled {
                    cap_percent,
                    used_percent: busy_percent,
                    mark_bytes: mark.unwrap_or(0),
                },
                Some(Change::Release { cap_percent, .. }) => {
                    EventKind::MemoryReleased { cap_percent }
                }
                None => continue,
            };
            self.event(pi, None, kind);
        }
    }

    /// Lifts every cap contention protection has on partitions, each with its event, as
    /// if contention had ended (a live policy change starts its governors afresh).
    pub(super) fn lift_protection(&mut self, now_ns: u64) {
        let Some(pr) = self.protection.take() else {
            return;
        };
        let lifted = |g: &Option<Governor>| {
            g.as_ref().and_then(Governor::cap).map(|_| {
                Some(Change::Release {
                    cap_percent: None,
                    quiet_ns: 0,
                })
            })
        };
        if let Some(change) = lifted(&pr.cpu) {
            self.apply_cpu(change, None, now_ns);
        }
        if let Some(change) = lifted(&pr.disk) {
            self.apply_disk(change, None, None, now_ns);
        }
        if let Some(change) = lifted(&pr.memory) {
            self.apply_memory(change, None);
        }
    }
}
