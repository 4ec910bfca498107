//! The command set applied: create, start, stop, restart, terminate, resize, attach and
//! detach a data disk. `plinth-control` decoded and validated the request; this module
//! checks it against the running system (names, memory, extents, agents) and changes it.
//!
//! Memory is admitted, not overcommitted: a partition is created or grown only if every
//! partition can still reach its quota from the frames free now — a quota is a promise.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use plinth_control::{Action, AttachDisk, CreatePartition, Resize};
use plinth_sched::{Cap, Share};

use super::events::EventKind;
use super::lifecycle::Ending;
use super::model::{AgentSlot, AgentStatus, DataDisk, NetLimits, Partition, PartitionState};
use super::policy::{restart_for, share_for};
use super::{CAP_PERIOD_NS, MIB, Runtime};
use crate::memory;

/// Why a command could not be applied; each maps to an HTTP status.
#[derive(Debug)]
pub enum CommandError {
    /// No partition of that name (404).
    NotFound,
    /// The request conflicts with the current state (409).
    Conflict(String),
    /// The request names something that does not exist, e.g. an agent (422).
    Unknown(String),
}

impl CommandError {
    pub fn status(&self) -> u16 {
        match self {
            CommandError::NotFound => 404,
            CommandError::Conflict(_) => 409,
            CommandError::Unknown(_) => 422,
        }
    }

    pub fn message(&self) -> String {
        match self {
            CommandError::NotFound => String::from("no such partition"),
            CommandError::Conflict(m) | CommandError::Unknown(m) => m.clone(),
        }
    }
}

const PAGE: u64 = plinth_abi::PAGE_SIZE;

impl Runtime {
    /// Index of the partition called `name`.
    pub fn find(&self, name: &str) -> Result<usize, CommandError> {
        self.partitions
            .iter()
            .position(|p| p.name == name)
            .ok_or(CommandError::NotFound)
    }

    /// Frames promised to partitions but not yet used by them.
    fn promised_frames(&self) -> u64 {
        self.partitions
            .iter()
            .map(|p| p.quota_frames().saturating_sub(p.frames))
            .sum()
    }

    /// Checks that `extra` more frames can be promised.
    fn admit(&self, extra: u64) -> Result<(), CommandError> {
        let free = memory::frame_counts().0 as u64;
        let available = free.saturating_sub(self.promised_frames());
        if extra > available {
            return Err(CommandError::Conflict(format!(
                "not enough memory: {} MiB asked, {} MiB not yet promised to partitions",
                extra * PAGE / MIB,
                available * PAGE / MIB
            )));
        }
        Ok(())
    }

    /// The share a partition's CPU settings give, over the policy's for each agent.
    fn partition_share(weight: Option<u32>, cap_percent: Option<u32>, base: Share) -> Share {
        let weight = weight.unwrap_or(base.weight);
        let cap = match cap_percent {
            Some(p) if p < 100 => Cap::percent(p, CAP_PERIOD_NS).ok(),
            Some(_) => None,
            None => base.cap,
        };
        Share::new(weight, cap).unwrap_or(base)
    }

    /// `POST /api/v1/partitions`: a new partition, stopped, with its agents placed.
    pub fn create(&mut self, c: &CreatePartition) -> Result<usize, CommandError> {
        if self.find(&c.name).is_ok() {
            return Err(CommandError::Conflict(format!(
                "partition {} exists already",
                c.name
            )));
        }
        let disk = match &c.disk {
            Some(extent) => Some(self.free_extent(extent)?),
            None => None,
        };
        let mut slots = Vec::new();
        for a in &c.agents {
            let image = self
                .images
                .iter()
                .filter(|i| i.name == a.name)
                .rfind(|i| a.version.as_ref().is_none_or(|v| *v == i.version))
                .ok_or_else(|| {
                    CommandError::Unknown(match &a.version {
                        Some(v) => format!("the catalog has no agent {} {v}", a.name),
                        None => format!("the catalog has no agent {}", a.name),
                    })
                })?
                .clone();
            let base = share_for(&self.policies, &a.name, &c.name);
            slots.push(AgentSlot::new(
                image,
                restart_for(&self.policies, &a.name, &c.name),
                Self::partition_share(c.cpu_weight, c.cpu_cap_percent, base),
            ));
        }
        let nics = c
            .nics
            .iter()
            .map(|n| n.parsed_mac())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CommandError::Unknown(format!("{e}")))?;
        let quota = c.memory_mib.saturating_mul(MIB);
        self.admit(quota / PAGE)?;
        let id = self.next_partition;
        self.next_partition += 1;
        let now = crate::clock::now_ns();
        let mut p = Partition::new(id, c.name.clone(), quota, PartitionState::Stopped, now);
        p.tenant = c.tenant.clone();
        p.labels = c.labels.clone();
        p.disk = disk;
        p.agents = slots;
        self.partitions.push(p);
        let pi = self.partitions.len() - 1;
        // Its limits before its NICs, which take their buckets from them.
        self.apply_partition_policy(pi, now);
        // NICs last: a refusal (the tenant's pool is exhausted) takes the partition back.
        for mac in nics {
            if let Err(e) = self.add_nic(pi, mac) {
                self.remove_nics(pi);
                self.partitions.remove(pi);
                return Err(e);
            }
        }
        self.event(pi, None, EventKind::PartitionCreated);
        Ok(pi)
    }

    /// The data extent called `name`, if no partition has it.
    fn free_extent(&self, name: &str) -> Result<DataDisk, CommandError> {
        let disk = self.appliance_disk.ok_or_else(|| {
            CommandError::Unknown(String::from("no appliance disk: there are no extents"))
        })?;
        let (_, first_lba, sectors) = self
            .extents
            .iter()
            .find(|(n, _, _)| n == name)
            .ok_or_else(|| CommandError::Unknown(format!("no data extent {name}")))?;
        if let Some(p) = self
            .partitions
            .iter()
            .find(|p| p.disk.is_some_and(|d| d.first_lba == *first_lba))
        {
            return Err(CommandError::Conflict(format!(
                "extent {name} is attached to partition {}",
                p.name
            )));
        }
        Ok(DataDisk {
            disk,
            first_lba: *first_lba,
            sectors: *sectors,
        })
    }

    /// `POST …/start|stop|restart`.
    pub fn act(&mut self, pi: usize, action: Action) {
        match action {
            Action::Start => self.start(pi),
            Action::Stop => self.stop(pi),
            Action::Restart => {
                self.stop(pi);
                self.start(pi);
            }
        }
    }

    /// Starts every agent that is not running (a quarantined one too: an operator's
    /// start is the release).
    fn start(&mut self, pi: usize) {
        self.partitions[pi].state = PartitionState::Running;
        for si in 0..self.partitions[pi].agents.len() {
            let slot = &mut self.partitions[pi].agents[si];
            if !matches!(slot.status, AgentStatus::Running(_)) {
                slot.restart_times.clear();
                self.start_agent(pi, si);
            }
        }
    }

    /// Ends every agent of the partition; its frames come back.
    fn stop(&mut self, pi: usize) {
        while let Some(ti) = self.tasks.iter().position(|t| t.partition == pi) {
            self.end_task(ti, Ending::Stop);
        }
        for slot in &mut self.partitions[pi].agents {
            slot.status = AgentStatus::Stopped;
        }
        self.partitions[pi].state = PartitionState::Stopped;
    }

    /// `DELETE /api/v1/partitions/NAME`: stops it and removes it. Returns the frames it
    /// gave back.
    pub fn terminate(&mut self, pi: usize) -> u64 {
        let before = self.partitions[pi].frames;
        self.stop(pi);
        // Its usage stays on the books: stopped (agents' totals final), NICs still there.
        self.meter_memory(crate::clock::now_ns());
        self.retire(pi);
        self.remove_nics(pi);
        let p = self.partitions.remove(pi);
        debug_assert_eq!(p.frames, 0, "a stopped partition holds no frames");
        for t in &mut self.tasks {
            if t.partition > pi {
                t.partition -= 1;
            }
        }
        log::info!("partition {}: terminated", p.name);
        before
    }

    /// `POST …/resize`: memory quota (never below what is in use), CPU share, network
    /// limits (each NIC's buckets) and the disk budget, each changed at once.
    pub fn resize(&mut self, pi: usize, r: &Resize) -> Result<(), CommandError> {
        if let Some(mib) = r.memory_mib {
            let quota = mib.saturating_mul(MIB);
            let p = &self.partitions[pi];
            if quota / PAGE < p.frames {
                return Err(CommandError::Conflict(format!(
                    "partition {} uses {} MiB; it cannot shrink to {mib} MiB",
                    p.name,
                    (p.frames * PAGE).div_ceil(MIB)
                )));
            }
            let grow = (quota / PAGE).saturating_sub(p.quota_frames());
            self.admit(grow)?;
            self.partitions[pi].memory_quota = quota;
        }
        if r.cpu_weight.is_some() || r.cpu_cap_percent.is_some() {
            let now = crate::clock::now_ns();
            for si in 0..self.partitions[pi].agents.len() {
                let slot = &mut self.partitions[pi].agents[si];
                slot.share = Self::partition_share(r.cpu_weight, r.cpu_cap_percent, slot.share);
                if let AgentStatus::Running(id) = slot.status {
                    let _ = self.sched.set_share(id, slot.share, now);
                }
            }
        }
        // A rate of 0 lifts the limit; a rate alone has a one-second burst; a field not
        // given keeps its current value.
        let bucket = |rate: Option<u64>, burst: Option<u64>, old: Option<(u64, u64)>| match rate {
            Some(0) => None,
            Some(rate) => Some((rate, burst.unwrap_or(rate))),
            None => old,
        };
        if r.has_network() {
            let old = self.partitions[pi].net_limits;
            let limits = NetLimits {
                bytes: bucket(r.net_bytes_per_sec, r.net_bytes_burst, old.bytes),
                packets: bucket(r.net_packets_per_sec, r.net_packets_burst, old.packets),
            };
            self.set_net_limits(pi, limits);
        }
        if let Some(mib) = r.memory_high_mib {
            let p = &mut self.partitions[pi];
            let high = (mib != 0).then(|| mib.saturating_mul(MIB));
            if high.is_some_and(|h| h > p.memory_quota) {
                return Err(CommandError::Conflict(format!(
                    "partition {}'s quota is {} MiB; its high-water mark cannot be above it",
                    p.name,
                    p.memory_quota / MIB
                )));
            }
            p.memory_high = high;
            // The next crossing of the new mark is an event.
            p.above_high = p.memory_mark().is_some_and(|h| p.frames * PAGE > h);
        }
        if r.has_disk() {
            let old = self.partitions[pi].disk_budget;
            let budget = plinth_iogate::Budget {
                ops: bucket(r.disk_iops, r.disk_iops_burst, old.ops),
                bytes: bucket(r.disk_bytes_per_sec, r.disk_bytes_burst, old.bytes),
            };
            self.set_disk_budget(pi, budget, crate::clock::now_ns());
        }
        Ok(())
    }

    /// `PUT …/disk`.
    pub fn attach_disk(&mut self, pi: usize, a: &AttachDisk) -> Result<(), CommandError> {
        if self.partitions[pi].disk.is_some() {
            return Err(CommandError::Conflict(format!(
                "partition {} has a data disk already; detach it first",
                self.partitions[pi].name
            )));
        }
        let d = self.free_extent(&a.extent)?;
        self.partitions[pi].disk = Some(d);
        Ok(())
    }

    /// `DELETE …/disk`: agents get `NoDisk` from then on.
    pub fn detach_disk(&mut self, pi: usize) -> Result<(), CommandError> {
        self.partitions[pi].disk.take().map(|_| ()).ok_or_else(|| {
            CommandError::Conflict(format!(
                "partition {} has no data disk",
                self.partitions[pi].name
            ))
        })
    }
}
