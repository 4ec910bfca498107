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

/// Terminated partitions kept by name in the ledger.
pub const RETIRED_KEPT: usize = 64;
/// The ledger's record, per tenant, of terminated partitions older than those kept by
/// name (not a partition name: those are `[a-z0-9-]`).
pub const EARLIER: &str = "(earlier)";

/// Adds `usage` to the ledger's record of `partition` and `tenant`, or starts one.
fn add(
    ledger: &mut alloc::vec::Vec<Retired>,
    partition: String,
    tenant: Option<String>,
    usage: Usage,
) {
    match ledger
        .iter_mut()
        .find(|r| r.partition == partition && r.tenant == tenant)
    {
        Some(r) => r.usage = r.usage.plus(&usage),
        None => ledger.push(Retired {
            partition,
            tenant,
            usage,
        }),
    }
}

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

impl Usage {
    /// The sum of two.
    pub fn plus(&self, o: &Usage) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns.saturating_add(o.cpu_ns),
            memory_byte_ns: self.memory_byte_ns.saturating_add(o.memory_byte_ns),
            disk_reads: self.disk_reads.saturating_add(o.disk_reads),
            disk_writes: self.disk_writes.saturating_add(o.disk_writes),
            disk_read_bytes: self.disk_read_bytes.saturating_add(o.disk_read_bytes),
            disk_written_bytes: self.disk_written_bytes.saturating_add(o.disk_written_bytes),
            net_rx_bytes: self.net_rx_bytes.saturating_add(o.net_rx_bytes),
            net_tx_bytes: self.net_tx_bytes.saturating_add(o.net_tx_bytes),
        }
    }
}

/// A terminated partition's last usage (all the terminated partitions of that name and
/// tenant, summed).
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
    /// A name used again after a termination adds to the same record. The ledger keeps
    /// the last [`RETIRED_KEPT`] names; an older one's usage is folded into its tenant's
    /// [`EARLIER`] record, so the totals stay exact and the ledger's memory bounded
    /// however many partitions come and go.
    pub(super) fn retire(&mut self, pi: usize) {
        let usage = self.usage(pi);
        let p = &self.partitions[pi];
        let (name, tenant) = (p.name.clone(), p.tenant.clone());
        add(&mut self.retired, name, tenant, usage);
        let named = self
            .retired
            .iter()
            .filter(|r| r.partition != EARLIER)
            .count();
        if named > RETIRED_KEPT
            && let Some(i) = self.retired.iter().position(|r| r.partition != EARLIER)
        {
            let old = self.retired.remove(i);
            add(
                &mut self.retired,
                String::from(EARLIER),
                old.tenant,
                old.usage,
            );
        }
    }
}
