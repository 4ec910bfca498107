//! Usage metering for billing: what each partition used since it was created — CPU
//! time, charged memory over time, disk requests and bytes, NIC bytes — exact, and kept
//! across its agents' restarts, its resizes, detached NICs and its own termination (a
//! terminated partition's last figures stay, until the runtime restarts).
//!
//! Most counters are the partition's own (its agents' run totals, its disk counters, its
//! NIC ports); this module adds what nothing else keeps: memory integrated over time,
//! the counters of NICs that are gone, and the ledger of terminated partitions. It must
//! not decide anything from what it counts, nor format it (the API does).

use alloc::string::String;

use plinth_abi::PAGE_SIZE;

use super::Runtime;
use super::profile::{agent_now, nic_totals_by_direction};

/// One partition's usage now.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu_ns: u64,
    pub memory_byte_ns: u128,
    pub disk_reads: u64,
    pub disk_writes: u64,
    pub disk_read_bytes: u64,
    pub disk_written_bytes: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

/// A terminated partition's last usage.
pub struct Retired {
    pub partition: String,
    pub tenant: Option<String>,
    pub usage: Usage,
}

impl Runtime {
    /// Integrates every partition's charged memory up to `now_ns` (the run loop calls it
    /// each pass, so a change of charge is counted from when it happened, give or take a
    /// pass).
    pub(super) fn meter_memory(&mut self, now_ns: u64) {
        for p in &mut self.partitions {
            let m = &mut p.meter;
            let dt = now_ns.saturating_sub(m.memory_at_ns);
            m.memory_byte_ns += u128::from(p.frames * PAGE_SIZE) * u128::from(dt);
            m.memory_at_ns = m.memory_at_ns.max(now_ns);
        }
    }

    /// Partition `pi`'s usage now.
    pub fn usage(&self, pi: usize) -> Usage {
        let p = &self.partitions[pi];
        let cpu_ns = p
            .agents
            .iter()
            .map(|a| agent_now(self, a).totals.cpu_ns)
            .sum();
        let (rx, tx) = nic_totals_by_direction(p);
        let now = crate::clock::now_ns();
        let pending =
            u128::from(p.frames * PAGE_SIZE) * u128::from(now.saturating_sub(p.meter.memory_at_ns));
        Usage {
            cpu_ns,
            memory_byte_ns: p.meter.memory_byte_ns + pending,
            disk_reads: p.disk_usage.reads,
            disk_writes: p.disk_usage.writes,
            disk_read_bytes: p.disk_usage.read_bytes,
            disk_written_bytes: p.disk_usage.written_bytes,
            net_rx_bytes: rx + p.meter.net_gone.0,
            net_tx_bytes: tx + p.meter.net_gone.1,
        }
    }

    /// Keeps partition `pi`'s usage before it is terminated (its agents ended, its NICs
    /// still attached).
    pub(super) fn retire(&mut self, pi: usize) {
        let usage = self.usage(pi);
        let p = &self.partitions[pi];
        self.retired.push(Retired {
            partition: p.name.clone(),
            tenant: p.tenant.clone(),
            usage,
        });
    }
}
