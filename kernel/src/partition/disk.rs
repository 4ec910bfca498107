//! The disk governor applied: each partition's `plinth-iogate` gate between its agents'
//! disk calls and the block layer, its budgets from the protection policy (`[[limit]]`
//! `disk`, on an agent or a partition) or a resize, and the disk counters of partitions
//! and agents.
//!
//! A read or write the budgets allow goes to `block` at once; one they do not waits in
//! its partition's gate, its caller blocked, and the run loop ([`Runtime::admit_disk`])
//! submits it when its tokens come. Nothing accepted is dropped: a waiting request is
//! discarded only when its agent ends, which nobody is left to acknowledge it to. Only
//! admitted requests enter a disk's queue, so one partition's throttled requests never
//! stand in front of another's. Flushes carry no data and are not counted against the
//! budgets.
//!
//! It must not decode system calls (`syscall` checks every argument before a request is
//! made) or schedule (it says who to wake; the run loop does).

use plinth_iogate::Budget;
use plinth_policy::policies::{DiskLimit, PolicySet, Target};

use super::Runtime;
use super::model::{DiskRequest, DiskUsage, PendingIo};
use crate::block;

/// The budget a `[limit.disk]` gives.
pub fn budget(l: &DiskLimit) -> Budget {
    Budget {
        bytes: l.bytes.map(|b| (b.rate, b.burst)),
        ops: l.iops.map(|b| (b.rate, b.burst)),
    }
}

/// The protection policy's disk budget for `target` (unlimited without one).
pub fn budget_for(p: &PolicySet, target: &Target) -> Budget {
    p.limits
        .iter()
        .filter(|l| l.target == *target)
        .find_map(|l| l.disk.as_ref().map(budget))
        .unwrap_or(Budget::UNLIMITED)
}

/// What became of a request offered to the gate.
pub enum Offered {
    /// It went to the disk: the caller waits for it.
    Submitted(PendingIo),
    /// It waits for its budget: the caller blocks until the run loop submits it.
    Throttled,
    /// The block layer refused it.
    Failed,
}

/// Offers agent `slot`'s checked request to its partition's gate at `now_ns`.
pub fn offer(part: &mut super::Partition, slot: usize, req: DiskRequest, now_ns: u64) -> Offered {
    // A partition nothing limits skips the gate: governing costs only those it governs.
    let admitted = if part.disk_gate.is_limited() || part.disk_gate.waiting() > 0 {
        // What the gate costs a call, timed where it is paid (`plinth bench governor`).
        // Three reads of the time-stamp counter: the first two apart are what reading it
        // costs, taken off what the gate between the last two took.
        let t0 = crate::arch::cpu::rdtsc();
        let t1 = crate::arch::cpu::rdtsc();
        let bytes = req.bytes();
        let admitted = part.disk_gate.offer(slot, bytes, req, now_ns);
        let t2 = crate::arch::cpu::rdtsc();
        let ticks = t2.wrapping_sub(t1).saturating_sub(t1.wrapping_sub(t0));
        let spent = crate::clock::tsc_delta_ns(ticks);
        part.gate_cost.calls += 1;
        part.gate_cost.ns += spent;
        admitted
    } else {
        Some(req)
    };
    match admitted {
        None => Offered::Throttled,
        Some(req) => match submit(part, slot, req, 0) {
            Ok(io) => Offered::Submitted(io),
            Err(_) => Offered::Failed,
        },
    }
}

/// Hands an admitted request to the block layer and counts it.
fn submit(
    part: &mut super::Partition,
    slot: usize,
    req: DiskRequest,
    waited_ns: u64,
) -> Result<PendingIo, plinth_abi::Error> {
    // Checked at the call; a request that waited must still find its extent.
    let same = part.disk.is_some_and(|d| {
        d.disk == req.extent.disk
            && d.first_lba == req.extent.first_lba
            && d.sectors == req.extent.sectors
    });
    if !same {
        return Err(plinth_abi::Error::NoDisk);
    }
    let mut counted = DiskUsage::default();
    counted.count(&req, waited_ns);
    let (ticket, read_into) = match (req.data, req.read) {
        (Some(data), _) => (block::write(req.extent.disk, req.lba, data), None),
        (None, Some((len, va))) => (
            block::read(req.extent.disk, req.lba, alloc::vec![0u8; len]),
            Some(va),
        ),
        (None, None) => return Err(plinth_abi::Error::Invalid),
    };
    let ticket = ticket.map_err(|_| plinth_abi::Error::Io)?;
    // Counted once the block layer took it: a refused request is not usage.
    part.disk_usage.add(&counted);
    if let Some(a) = part.agents.get_mut(slot) {
        a.disk_usage.add(&counted);
    }
    Ok(PendingIo {
        ticket,
        read_into,
        result: req.result,
    })
}

impl Runtime {
    /// Sets partition `pi`'s disk budgets from the policy: its own and each agent's.
    pub fn apply_disk_policy(&mut self, pi: usize, now_ns: u64) {
        let p = &mut self.partitions[pi];
        p.disk_budget = budget_for(&self.policies, &Target::Partition(p.name.clone()));
        p.disk_gate.set_partition(p.disk_budget_in_force(), now_ns);
        for (si, a) in p.agents.iter().enumerate() {
            let b = budget_for(&self.policies, &Target::Agent(a.image.name.clone()));
            p.disk_gate.set_agent(si, b, now_ns);
        }
    }

    /// Changes partition `pi`'s own disk budget at `now_ns`; waiting requests see it at
    /// the next admission.
    pub fn set_disk_budget(&mut self, pi: usize, b: Budget, now_ns: u64) {
        let p = &mut self.partitions[pi];
        p.disk_budget = b;
        p.disk_gate.set_partition(p.disk_budget_in_force(), now_ns);
    }

    /// Changes the budget contention protection puts on partition `pi` at `now_ns`.
    pub fn set_contention_budget(&mut self, pi: usize, b: Budget, now_ns: u64) {
        let p = &mut self.partitions[pi];
        p.contention_budget = b;
        p.disk_gate.set_partition(p.disk_budget_in_force(), now_ns);
    }

    /// Submits the waiting disk requests whose budgets have come, and hands each to its
    /// task (blocked since its call); a request the block layer refuses ends the call
    /// with its error.
    pub fn admit_disk(&mut self, now_ns: u64) {
        for pi in 0..self.partitions.len() {
            while let Some(a) = self.partitions[pi].disk_gate.admit(now_ns) {
                if let Some(slot) = self.partitions[pi].agents.get_mut(a.agent)
                    && let Some(since) = slot.held_since.take()
                {
                    slot.held_ns += now_ns.saturating_sub(since);
                }
                let outcome = submit(&mut self.partitions[pi], a.agent, a.request, a.waited_ns);
                let Some(t) = self
                    .tasks
                    .iter_mut()
                    .find(|t| t.partition == pi && t.slot == a.agent)
                else {
                    // Its agent ended meanwhile (`cancel` should have taken the request).
                    if let Ok(io) = outcome {
                        block::abandon(io.ticket);
                    }
                    continue;
                };
                match outcome {
                    Ok(io) => t.io = Some(io),
                    Err(e) => {
                        t.ctx.frame.rax = e.code();
                        self.sched.wake(t.id, now_ns);
                    }
                }
            }
        }
    }
}
