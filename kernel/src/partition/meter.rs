//! Usage metering for billing: what each partition used since it was created — CPU
//! time, charged memory over time, disk requests and bytes, NIC bytes — exact, and kept
//! across its agents' restarts, its resizes, detached NICs, its own termination (a
//! terminated partition's last figures stay) and restarts of the runtime: every
//! [`USAGE_RECORD_NS`] and at shutdown, everyone's usage goes to the state partition's
//! journal as a usage record, and at boot the newest one that decodes is carried
//! forward — a partition live in it that the spec creates again goes on from its
//! figures; any other, and every terminated one, is on the books as terminated. (Each
//! record's flush is a barrier on the appliance disk: partitions' requests queued behind
//! it wait for it, once every 5 s.)
//!
//! Most counters are the partition's own (its agents' run totals, its disk counters, its
//! NIC ports); this module adds what nothing else keeps: memory integrated over time,
//! the counters of NICs that are gone, and the ledger of terminated partitions. It must
//! not decide anything from what it counts, nor format it (the API does).

use alloc::string::String;
use alloc::vec::Vec;

use plinth_abi::PAGE_SIZE;
use plinth_journal::usage::{self, Entry};
use plinth_journal::{Kind, Record};

use super::profile::{agent_now, nic_totals_by_direction};
use super::{RUNTIME, Runtime};

pub use plinth_journal::usage::Usage;

/// How often everyone's usage goes to the journal: what a runtime killed without a
/// shutdown loses at most.
pub const USAGE_RECORD_NS: u64 = 5_000_000_000;

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
        .plus(&p.meter.carried)
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
        self.retire_usage(name, tenant, usage);
    }

    /// Puts `usage` on the books as terminated partition `name`'s, keeping the ledger
    /// bounded (see [`Runtime::retire`]).
    fn retire_usage(&mut self, name: String, tenant: Option<String>, usage: Usage) {
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

impl Runtime {
    /// Everyone's usage now, as the journal keeps it: the partitions, then the ledger.
    fn usage_entries(&self) -> Vec<Entry> {
        let live = (0..self.partitions.len()).map(|pi| {
            let p = &self.partitions[pi];
            Entry {
                partition: p.name.clone(),
                tenant: p.tenant.clone(),
                terminated: false,
                usage: self.usage(pi),
            }
        });
        let gone = self.retired.iter().map(|r| Entry {
            partition: r.partition.clone(),
            tenant: r.tenant.clone(),
            terminated: true,
            usage: r.usage,
        });
        live.chain(gone).collect()
    }

    /// Every [`USAGE_RECORD_NS`], a usage record to the journal (not waited for).
    pub(super) fn record_usage(&mut self, now_ns: u64) {
        if now_ns < self.next_usage_record_ns {
            return;
        }
        self.next_usage_record_ns = now_ns.saturating_add(USAGE_RECORD_NS);
        let record = usage::encode(&self.usage_entries());
        crate::state::append_unwaited(Kind::Usage, &record);
    }

    /// Carries a usage record's entries forward (see the module docs): its terminated
    /// ones first, so the ledger keeps the newest names when it folds older ones.
    fn restore(&mut self, mut entries: Vec<Entry>) {
        entries.sort_by_key(|e| !e.terminated);
        for e in entries {
            let live = (!e.terminated)
                .then(|| {
                    self.partitions
                        .iter_mut()
                        .find(|p| p.name == e.partition && p.tenant == e.tenant)
                })
                .flatten();
            match live {
                Some(p) => p.meter.carried = p.meter.carried.plus(&e.usage),
                None => self.retire_usage(e.partition, e.tenant, e.usage),
            }
        }
    }
}

/// Carries the newest usage record among `records` (the state partition's journal)
/// forward into the runtime's partitions and ledger.
pub fn restore_usage(records: &[Record]) {
    let mut usage_records = records.iter().rev().filter(|r| r.kind == Kind::Usage);
    let Some(newest) = usage_records.clone().next() else {
        log::info!("usage: no usage record in the journal; metering starts from zero");
        return;
    };
    let Some((r, entries)) =
        usage_records.find_map(|r| usage::decode(&r.payload).ok().map(|e| (r, e)))
    else {
        // Written by what this runtime cannot read: writing over it would lose it.
        log::warn!(
            "usage: no usage record in the journal decodes (the newest, #{}: {:?}); metering starts from zero and writes none this run",
            newest.seq,
            usage::decode(&newest.payload).err()
        );
        crate::state::close();
        return;
    };
    let n = entries.len();
    if let Some(rt) = RUNTIME.lock().as_mut() {
        rt.restore(entries);
    }
    log::info!(
        "usage: carried forward {n} partitions' usage from journal record #{}",
        r.seq
    );
}

/// Writes everyone's usage to the journal and waits until it is on the disk (at
/// shutdown); `serve` runs meanwhile.
pub fn save_usage(serve: &mut dyn FnMut()) {
    let record = match RUNTIME.lock().as_ref() {
        Some(rt) => usage::encode(&rt.usage_entries()),
        None => return,
    };
    for t in crate::state::append(Kind::Usage, &record)
        .into_iter()
        .flat_map(|(w, f)| [w, f])
    {
        if let Err(e) = crate::block::wait(t, serve) {
            log::warn!("usage: the last usage record did not reach the disk ({e})");
        }
    }
}
