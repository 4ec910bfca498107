//! The profiler: once a second, every agent's and partition's totals go into their
//! `plinth-profile` windows — CPU time, system calls, disk requests and bytes, memory,
//! and a partition's NIC packets and bytes — so the API can show the last 1 s, 10 s and
//! 60 s (average and peak) beside the footprint each manifest predicts.
//!
//! Totals are kept across an agent's runs (`AgentSlot::ended` plus the running task),
//! so a restart does not read as a drop. It must not decide anything from what it
//! measures (governors do) nor format it (the API does).

use super::Runtime;
use super::model::{AgentSlot, AgentStatus, RunTotals, Task};
use crate::net::switch;
use plinth_abi::PAGE_SIZE;

/// How often the windows take a sample.
pub const SAMPLE_NS: u64 = 1_000_000_000;

/// An agent's totals now: its ended runs plus the running one.
pub struct AgentNow {
    pub totals: RunTotals,
    /// Memory charged for the running task, bytes (0 when it is not running).
    pub memory: u64,
}

/// `slot`'s totals, with its running task (if any) from `tasks` and the scheduler.
pub fn agent_now(rt: &Runtime, slot: &AgentSlot) -> AgentNow {
    let mut totals = slot.ended.clone();
    let mut memory = 0;
    if let AgentStatus::Running(id) = slot.status {
        totals.cpu_ns += rt.sched.usage(id).map_or(0, |u| u.ran_ns);
        if let Some(t) = rt.tasks.iter().find(|t: &&Task| t.id == id) {
            totals.syscalls += t.syscalls;
            for (total, n) in totals.by_kind.iter_mut().zip(t.by_kind) {
                *total += n;
            }
            memory = t.frames * PAGE_SIZE;
        }
    }
    AgentNow { totals, memory }
}

/// A partition's NICs together, from its side: (bytes received, bytes sent).
pub fn nic_totals_by_direction(p: &super::Partition) -> (u64, u64) {
    p.nics
        .iter()
        .filter_map(|n| switch::inspect(|b| b.port(n.port).map(|(_, c)| c.clone())).flatten())
        // The port's transmit side delivers to the partition.
        .fold((0, 0), |(rx, tx), c| (rx + c.tx_bytes, tx + c.rx_bytes))
}

/// A partition's NICs together, detached ones included: (packets, bytes) both ways.
pub fn nic_totals(p: &super::Partition) -> (u64, u64) {
    let gone = (
        p.meter.net_gone_frames,
        p.meter.net_gone.0 + p.meter.net_gone.1,
    );
    p.nics
        .iter()
        .filter_map(|n| switch::inspect(|b| b.port(n.port).map(|(_, c)| c.clone())).flatten())
        .fold(gone, |(pk, by), c| {
            (pk + c.rx_frames + c.tx_frames, by + c.rx_bytes + c.tx_bytes)
        })
}

impl Runtime {
    /// Samples every window if a second has passed since the last sample.
    pub(super) fn sample_profiles(&mut self, now_ns: u64) {
        if now_ns < self.next_profile_ns {
            return;
        }
        // Each increase is scaled by the time that passed since the last sample.
        let elapsed = now_ns.saturating_sub(self.last_profile_ns);
        self.last_profile_ns = now_ns;
        self.next_profile_ns = now_ns.saturating_add(SAMPLE_NS);
        for pi in 0..self.partitions.len() {
            let mut cpu = 0;
            let mut calls = 0;
            let nows: alloc::vec::Vec<AgentNow> = self.partitions[pi]
                .agents
                .iter()
                .map(|a| agent_now(self, a))
                .collect();
            let (packets, bytes) = nic_totals(&self.partitions[pi]);
            let p = &mut self.partitions[pi];
            for (slot, n) in p.agents.iter_mut().zip(nows) {
                let t = &n.totals;
                let pr = &mut slot.profile;
                pr.used
                    .sample(t.cpu_ns, t.syscalls, &slot.disk_usage, n.memory, elapsed);
                pr.peak_memory = pr.peak_memory.max(n.memory);
                cpu += t.cpu_ns;
                calls += t.syscalls;
            }
            let memory = p.frames * PAGE_SIZE;
            let pr = &mut p.profile;
            pr.used.sample(cpu, calls, &p.disk_usage, memory, elapsed);
            pr.net_packets.sample_over(packets, elapsed);
            pr.net_bytes.sample_over(bytes, elapsed);
        }
    }
}
