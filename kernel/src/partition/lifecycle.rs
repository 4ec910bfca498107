//! An agent's life: started in a fresh address space, ended (exit, fault or stop) with
//! its frames returned, and restarted or quarantined by the troubleshooting policy; and
//! the partitions the verified catalog describes, created at boot.
//!
//! Owns starting, ending and the restart policy's arithmetic (backoff, window, budget).
//! It must not run agents (`run`) or decode system calls (`syscall`).

use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

use log::{info, warn};
use plinth_abi::STACK_TOP;
use plinth_catalog::Catalog;
use plinth_policy::policies::{PolicySet, Restart};

use super::events::EventKind;
use super::loader;
use super::model::{AgentSlot, AgentStatus, DataDisk, Partition, PartitionState, Task};
use super::policy::{restart_for, share_for};
use super::{MIB, RUNTIME, Runtime};
use crate::arch::user::UserContext;
use crate::{clock, memory};

/// How a task ended.
pub enum Ending {
    Exit(i32),
    Fault(EventKind),
    /// The watchdog found it silent (an `AgentHung` event): a failure.
    Hung(EventKind),
    /// Stopped by the command set: no restart.
    Stop,
}

impl Runtime {
    /// Starts (or restarts) the agent in `slot` of partition `pi`: a fresh address space
    /// with the executable and a stack, charged to the partition.
    pub fn start_agent(&mut self, pi: usize, slot: usize) {
        let image = self.partitions[pi].agents[slot].image.clone();
        let frames_before = self.partitions[pi].frames;
        match loader::load(&mut self.partitions[pi], &image) {
            Ok((space, entry)) => {
                let frames = self.partitions[pi].frames.saturating_sub(frames_before);
                let id = self.next_task;
                self.next_task = self.next_task.wrapping_add(1).max(1);
                // Entered as if called: RSP + 8 is 16-byte aligned, as the SysV ABI
                // expects at a function's first instruction.
                let ctx = Box::new(UserContext::new(entry, STACK_TOP - 8));
                let share = self.partitions[pi].agents[slot].share;
                if self.sched.add(id, share, clock::now_ns()).is_err() {
                    warn!("scheduler refused task {id}");
                }
                self.tasks.push(Task {
                    id,
                    partition: pi,
                    slot,
                    ctx,
                    space,
                    heap_next: plinth_abi::HEAP_BASE,
                    syscalls: 0,
                    by_kind: [0; super::model::CALL_KINDS],
                    frames,
                    io: None,
                    net_wait: None,
                });
                let slot_ref = &mut self.partitions[pi].agents[slot];
                slot_ref.status = AgentStatus::Running(id);
                slot_ref.started_ns = clock::now_ns();
                slot_ref.last_heartbeat_ns = None;
                slot_ref.held_ns = 0;
                slot_ref.held_since = None;
                self.event(pi, Some(slot), EventKind::AgentStarted { task: id });
            }
            Err(error) => {
                self.partitions[pi].agents[slot].status = AgentStatus::Ended(None);
                self.event(pi, Some(slot), EventKind::AgentFailedToStart { error });
            }
        }
    }

    /// Ends task `ti`: returns its frames, removes it from the scheduler, records the
    /// exit or fault and applies the restart policy.
    pub fn end_task(&mut self, ti: usize, how: Ending) {
        let task = self.tasks.swap_remove(ti);
        // What the run used stays with its agent (the profiler and metering count on).
        let ran_ns = self.sched.usage(task.id).map_or(0, |u| u.ran_ns);
        if let Some(slot) = self.partitions[task.partition].agents.get_mut(task.slot) {
            slot.ended.cpu_ns += ran_ns;
            slot.ended.syscalls += task.syscalls;
            for (total, n) in slot.ended.by_kind.iter_mut().zip(task.by_kind) {
                *total += n;
            }
        }
        self.sched.remove(task.id);
        if let Some(io) = task.io {
            crate::block::abandon(io.ticket);
        }
        // A request still waiting for its budget was never submitted: nobody is left to
        // acknowledge it to.
        drop(self.partitions[task.partition].disk_gate.cancel(task.slot));
        let freed = task.space.release(&mut memory::free_frame_addr);
        let (pi, si) = (task.partition, task.slot);
        self.partitions[pi].frames -= freed as u64;
        let p = &mut self.partitions[pi];
        if p.memory_mark()
            .is_none_or(|h| p.frames * plinth_abi::PAGE_SIZE <= h)
        {
            // Back under the mark: the next crossing is an event again.
            p.above_high = false;
        }
        // A NIC's offloads are what the stack of a running agent asked for: with none of
        // the partition's agents left they go off, and the next agent asks for its own (a
        // raw-frame one then gets plain frames, not super-frames it cannot take).
        if !self.tasks.iter().any(|t| t.partition == pi) {
            for n in &self.partitions[pi].nics {
                let _ = crate::net::switch::set_offload(n.port, false, false);
            }
        }
        drop(task.ctx);
        let code = match how {
            Ending::Exit(c) => Some(c),
            _ => None,
        };
        let failed = match how {
            Ending::Exit(code) => {
                self.event(pi, Some(si), EventKind::AgentExited { code });
                code != 0
            }
            Ending::Fault(kind) | Ending::Hung(kind) => {
                self.event(pi, Some(si), kind);
                true
            }
            Ending::Stop => {
                self.partitions[pi].agents[si].status = AgentStatus::Stopped;
                return;
            }
        };
        self.after_end(pi, si, failed, code);
    }

    /// The troubleshooting policy: restart with exponential backoff within the budget,
    /// else quarantine and/or alert.
    fn after_end(&mut self, pi: usize, si: usize, failed: bool, code: Option<i32>) {
        let now = clock::now_ns();
        let slot = &mut self.partitions[pi].agents[si];
        let budget = match slot.restart {
            Restart::Always(b) => Some(b),
            Restart::OnFailure(b) if failed => Some(b),
            _ => None,
        };
        let Some(b) = budget else {
            slot.status = AgentStatus::Ended(code);
            return;
        };
        let window_ns = u64::from(b.window_secs) * 1_000_000_000;
        while slot
            .restart_times
            .front()
            .is_some_and(|t| now.saturating_sub(*t) > window_ns)
        {
            slot.restart_times.pop_front();
        }
        let recent = slot.restart_times.len() as u32;
        if recent >= b.max_restarts {
            let restarts = slot.restarts;
            if b.on_exhausted.quarantine {
                slot.status = AgentStatus::Quarantined;
                self.event(
                    pi,
                    Some(si),
                    EventKind::Quarantined {
                        restarts,
                        window_secs: b.window_secs,
                    },
                );
            } else {
                slot.status = AgentStatus::Ended(code);
            }
            if b.on_exhausted.alert {
                self.event(
                    pi,
                    Some(si),
                    EventKind::Alert {
                        reason: format!(
                            "{recent} restarts within {} s; restart budget exhausted",
                            b.window_secs
                        ),
                    },
                );
            }
            return;
        }
        // Delay before restart n (from 0): initial * multiplier^n, at most max.
        let mut delay = u64::from(b.backoff.initial_ms);
        for _ in 0..recent {
            delay = delay.saturating_mul(u64::from(b.backoff.multiplier));
            if delay >= u64::from(b.backoff.max_ms) {
                break;
            }
        }
        let delay = delay.min(u64::from(b.backoff.max_ms));
        slot.restart_times.push_back(now);
        slot.restarts += 1;
        let attempt = slot.restarts;
        slot.status = AgentStatus::Backoff {
            at_ns: now + delay * 1_000_000,
        };
        self.event(
            pi,
            Some(si),
            EventKind::RestartScheduled {
                attempt,
                delay_ms: delay,
            },
        );
    }

    /// The watchdog: ends each watched agent that has sent no heartbeat for its interval
    /// (counted from its start or its last heartbeat) and applies the troubleshooting
    /// policy to it as to a failure. Called from the run loop, which comes round at least
    /// every tick, so a hang is found within 10 ms of its interval.
    pub fn watchdog(&mut self, now: u64) {
        let mut hung = Vec::new();
        for p in &self.partitions {
            for slot in &p.agents {
                let (AgentStatus::Running(id), Some(timeout_ms)) =
                    (slot.status, slot.heartbeat_timeout_ms)
                else {
                    continue;
                };
                let since = slot
                    .last_heartbeat_ns
                    .unwrap_or(slot.started_ns)
                    .max(slot.watch_from_ns);
                // What the runtime held it for is not its silence.
                let held = slot.held_ns
                    + slot
                        .held_since
                        .map_or(0, |h| now.saturating_sub(h.max(since)));
                let silent_ns = now.saturating_sub(since).saturating_sub(held);
                if silent_ns >= u64::from(timeout_ms) * 1_000_000 {
                    let kind = EventKind::AgentHung {
                        silent_ms: silent_ns / 1_000_000,
                        timeout_ms,
                        heartbeats: slot.heartbeats,
                    };
                    hung.push((id, kind));
                }
            }
        }
        for (id, kind) in hung {
            if let Some(ti) = self.task_index(id) {
                self.end_task(ti, Ending::Hung(kind));
            }
        }
    }

    /// Starts agents whose backoff has passed.
    pub fn restart_due(&mut self, now: u64) {
        for pi in 0..self.partitions.len() {
            for si in 0..self.partitions[pi].agents.len() {
                if let AgentStatus::Backoff { at_ns } = self.partitions[pi].agents[si].status
                    && at_ns <= now
                {
                    self.start_agent(pi, si);
                }
            }
        }
    }
}

/// No catalog: partitions can still be created through the API, with no agents to
/// place in them.
pub fn boot_empty() {
    *RUNTIME.lock() = Some(Runtime::new(PolicySet::default()));
}

/// Creates the catalog's partitions and starts the agents its deployments place in them.
pub fn boot(catalog: &Catalog, disk: usize, extents: &[(alloc::string::String, u64, u64)]) {
    let mut rt = Runtime::new(catalog.policies.clone());
    rt.appliance = catalog.appliance.name.clone();
    rt.extents = extents.to_vec();
    rt.appliance_disk = Some(disk);
    rt.policy_source = Some(super::policy::PolicySource {
        // By their own names (`protection.toml`), as the API and `plinth policy apply`
        // name them; the catalog keeps them under `policies/`.
        files: catalog
            .policy_files
            .iter()
            .map(|(n, t)| (n.rsplit('/').next().unwrap_or(n).into(), t.clone()))
            .collect(),
        machine: catalog.appliance.machine,
        spec_partitions: catalog.appliance.partition_defs(),
        agents: catalog
            .agents
            .iter()
            .map(|a| plinth_policy::AgentDef {
                name: a.manifest.name.clone(),
                version: a.manifest.version,
            })
            .collect(),
    });
    let policies = &catalog.policies;
    let images = loader::images(catalog);
    for def in &catalog.appliance.partitions {
        let name = def.name.clone();
        let tenant = policies
            .tenants
            .iter()
            .find(|t| t.partitions.contains(&name))
            .map(|t| t.name.clone());
        let disk = extents
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, first_lba, sectors)| DataDisk {
                disk,
                first_lba: *first_lba,
                sectors: *sectors,
            });
        let mut agents = Vec::new();
        for d in policies
            .deployments
            .iter()
            .filter(|d| d.partitions.contains(&name))
        {
            let version = format!("{}", d.version);
            let Some(image) = images
                .iter()
                .find(|i| i.name == d.agent && i.version == version)
            else {
                continue;
            };
            agents.push(AgentSlot::new(
                image.clone(),
                restart_for(policies, &d.agent, &name),
                share_for(policies, &d.agent, &name),
            ));
        }
        let id = rt.next_partition;
        rt.next_partition += 1;
        let now = clock::now_ns();
        let mut p = Partition::new(id, name, def.memory_mib * MIB, PartitionState::Running, now);
        p.tenant = tenant;
        p.labels = def.labels.clone();
        p.disk = disk;
        p.agents = agents;
        rt.partitions.push(p);
        let pi = rt.partitions.len() - 1;
        rt.apply_partition_policy(pi, now);
        rt.event(pi, None, EventKind::PartitionCreated);
        for _ in 0..def.nics {
            if let Err(e) = rt.add_nic(pi, None) {
                log::warn!("partition {}: no NIC: {}", def.name, e.message());
                break;
            }
        }
    }
    for pi in 0..rt.partitions.len() {
        for si in 0..rt.partitions[pi].agents.len() {
            rt.start_agent(pi, si);
        }
    }
    info!(
        "partitions: {} created, {} agents started",
        rt.partitions.len(),
        rt.tasks.len()
    );
    rt.images = images;
    *RUNTIME.lock() = Some(rt);
}
