//! Live policy change: a protection or troubleshooting file replaced while agents run.
//!
//! The new text is checked the way the host tool and the catalog check it — the whole set,
//! with this one file replaced or added, against the appliance's machine and agents and
//! the runtime's partitions as they are now — so a mistake comes back with the same
//! positioned messages and changes nothing. A set that passes replaces the runtime's, and
//! what it changes applies at once: agents' CPU shares, restart rules and watchdog
//! intervals (a new interval counts from the change), NIC buckets, disk budgets, the
//! memory high-water mark, and contention protection. A value the policy does not change
//! for a target is left as it is, so a resize made since stands. Nothing is restarted; a
//! waiting disk request sees its new budget at the next admission.
//!
//! Deployments and tenants are not changed this way (they place agents and hand out
//! VLANs, which the command set does): a file that would change them is refused.
//!
//! Also what the policy says for one partition or agent (`restart_for`, `share_for`,
//! `net_limits_for`, `memory_high_for`), which creating partitions uses too.
//!
//! It must not parse or judge policies itself (`plinth-policy` does) nor reach devices.

use alloc::string::String;
use alloc::vec::Vec;

use plinth_policy::policies::{PolicySet, Restart, Target};
use plinth_policy::{AgentDef, Diagnostic, Machine, PartitionDef};
use plinth_sched::{Cap, Share};

use super::Runtime;
use super::disk::budget_for;
use super::model::{AgentStatus, NetLimits, Troubleshooting};
use super::{CAP_PERIOD_NS, MIB};

/// What the policies were read from: the catalog's files, and the machine and agents
/// they are checked against (the partitions are the runtime's own, as they are now).
pub struct PolicySource {
    /// (name, text), in the spec's order; a live change replaces or adds one.
    pub files: Vec<(String, String)>,
    pub machine: Machine,
    pub agents: Vec<AgentDef>,
    /// The spec's partitions: what the runtime's partitions of those names are checked
    /// as (their CPUs and labels).
    pub spec_partitions: Vec<PartitionDef>,
}

/// Why a live change was refused.
pub enum PolicyError {
    /// No catalog was loaded, so there is nothing to check against.
    NoCatalog,
    /// The set with the file replaced has problems: each with the file it is in.
    Invalid(Vec<(String, Diagnostic)>),
    /// The file would change deployments or tenants.
    NotLive(&'static str),
}

impl Runtime {
    /// Checks `text` as the policy file `name` (replacing the file of that name, or added
    /// after the others), and adopts and applies the set if it passes.
    pub fn change_policy(
        &mut self,
        name: &str,
        text: &str,
        now_ns: u64,
    ) -> Result<(), PolicyError> {
        let source = self.policy_source.as_ref().ok_or(PolicyError::NoCatalog)?;
        let mut files: Vec<(String, String)> = source.files.clone();
        match files.iter_mut().find(|(n, _)| n == name) {
            Some((_, t)) => *t = String::from(text),
            None => files.push((String::from(name), String::from(text))),
        }
        let texts: Vec<(usize, &str)> = files
            .iter()
            .enumerate()
            .map(|(i, (_, t))| (i, t.as_str()))
            .collect();
        let names: Vec<(usize, &str)> = files
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (i, n.as_str()))
            .collect();
        // The partitions there are now, created at boot or by the command set since: a
        // spec's partition as the spec has it (its CPUs), with its quota as it is now; one
        // the command set created with one CPU, as it runs.
        let partitions: Vec<PartitionDef> = self
            .partitions
            .iter()
            .map(|p| {
                let spec = source.spec_partitions.iter().find(|d| d.name == p.name);
                PartitionDef {
                    name: p.name.clone(),
                    labels: p.labels.clone(),
                    memory_mib: p.memory_quota / MIB,
                    cpus: spec.map_or(1, |d| d.cpus),
                }
            })
            .collect();
        let world = plinth_policy::World {
            machine: Some(source.machine),
            partitions: Some(&partitions),
            agents: Some(&source.agents),
        };
        let set = PolicySet::check_named(&texts, &names, &world).map_err(|ds| {
            PolicyError::Invalid(
                ds.into_iter()
                    .map(|d| {
                        let file = files.get(d.file).map_or_else(String::new, |f| f.0.clone());
                        (file, d)
                    })
                    .collect(),
            )
        })?;
        if set.deployments != self.policies.deployments {
            return Err(PolicyError::NotLive(
                "deployments place agents; change them with the command set, not live",
            ));
        }
        if set.pools != self.policies.pools || set.tenants != self.policies.tenants {
            return Err(PolicyError::NotLive(
                "tenants and VLAN pools hand out VLANs; they do not change live",
            ));
        }
        if let Some(source) = self.policy_source.as_mut() {
            source.files = files;
        }
        self.adopt(set, now_ns);
        Ok(())
    }

    /// Applies what the policy sets for a new partition `pi`: its NICs' buckets (for the
    /// NICs it gets next), its memory mark, and its own and its agents' disk budgets.
    pub(super) fn apply_partition_policy(&mut self, pi: usize, now_ns: u64) {
        let name = self.partitions[pi].name.clone();
        let p = &mut self.partitions[pi];
        p.net_limits = net_limits_for(&self.policies, &name);
        p.memory_high = memory_high_for(&self.policies, &name);
        self.apply_disk_policy(pi, now_ns);
    }

    /// Replaces the policy set and applies what it changed: for each partition and agent,
    /// a value is set again only where the new set says something else for it than the
    /// old one did, so what the command set changed since (a resize, a share given at
    /// create) stands unless the policy changes that very value.
    fn adopt(&mut self, set: PolicySet, now_ns: u64) {
        let old = core::mem::replace(&mut self.policies, set);
        let new = &self.policies;
        let contention_changed = new.contention != old.contention
            || new
                .limits
                .iter()
                .map(|l| l.protected)
                .ne(old.limits.iter().map(|l| l.protected));
        let mut shares = Vec::new();
        for pi in 0..self.partitions.len() {
            let name = self.partitions[pi].name.clone();
            let new = &self.policies;
            let net = net_limits_for(new, &name);
            let net_changed = net != net_limits_for(&old, &name);
            let target = Target::Partition(name.clone());
            let disk = budget_for(new, &target);
            let disk_changed = disk != budget_for(&old, &target);
            let high = memory_high_for(new, &name);
            let p = &mut self.partitions[pi];
            if high != memory_high_for(&old, &name) {
                p.memory_high = high;
                // The next crossing of the new mark is an event.
                p.above_high = p
                    .memory_mark()
                    .is_some_and(|h| p.frames * plinth_abi::PAGE_SIZE > h);
            }
            for (si, slot) in p.agents.iter_mut().enumerate() {
                let agent = &slot.image.name;
                let (care, was) = (
                    restart_for(new, agent, &name),
                    restart_for(&old, agent, &name),
                );
                if care.restart != was.restart {
                    slot.restart = care.restart;
                }
                if care.heartbeat_timeout_ms != was.heartbeat_timeout_ms {
                    slot.heartbeat_timeout_ms = care.heartbeat_timeout_ms;
                    // Silence before the rule does not count against it.
                    slot.watch_from_ns = now_ns;
                }
                let share = share_for(new, agent, &name);
                if share != share_for(&old, agent, &name) {
                    slot.share = share;
                    if let AgentStatus::Running(id) = slot.status {
                        shares.push((pi, id, share));
                    }
                }
                let own = Target::Agent(agent.clone());
                let b = budget_for(new, &own);
                if b != budget_for(&old, &own) {
                    p.disk_gate.set_agent(si, b, now_ns);
                }
            }
            if net_changed {
                self.set_net_limits(pi, net);
            }
            if disk_changed {
                self.set_disk_budget(pi, disk, now_ns);
            }
        }
        if contention_changed {
            self.rebuild_protection(now_ns);
        }
        for (pi, id, share) in shares {
            let now_share = self.share_now(pi, share);
            let _ = self.sched.set_share(id, now_share, now_ns);
        }
    }

    /// Contention protection as the new set says, from scratch: the old governors'
    /// caps are lifted first (with their events), as they would have been once
    /// contention ended.
    fn rebuild_protection(&mut self, now_ns: u64) {
        self.lift_protection(now_ns);
        self.protection = self.new_protection(now_ns);
    }
}

/// The agent's own rule first, then its partition's; none means never restart and no
/// watchdog.
pub fn restart_for(p: &PolicySet, agent: &str, partition: &str) -> Troubleshooting {
    let find = |t: &dyn Fn(&Target) -> bool| {
        p.restart_rules
            .iter()
            .find(|r| t(&r.target))
            .map(|r| Troubleshooting {
                restart: r.restart,
                heartbeat_timeout_ms: r.heartbeat_timeout_ms,
            })
    };
    find(&|t| matches!(t, Target::Agent(a) if a == agent))
        .or_else(|| find(&|t| matches!(t, Target::Partition(n) if n == partition)))
        .unwrap_or(Troubleshooting {
            restart: Restart::Never,
            heartbeat_timeout_ms: None,
        })
}

/// A partition's memory high-water mark from the protection policy (`[limit.memory]
/// high_mib` on the partition), bytes.
pub fn memory_high_for(p: &PolicySet, partition: &str) -> Option<u64> {
    p.limits
        .iter()
        .filter(|l| matches!(&l.target, Target::Partition(n) if n == partition))
        .find_map(|l| l.memory.and_then(|m| m.high_mib))
        .map(|mib| mib.saturating_mul(MIB))
}

/// A partition's network limits from the protection policy (`[[limit]]` on the
/// partition, `[limit.network]`): each NIC's transmit and receive buckets.
pub fn net_limits_for(p: &PolicySet, partition: &str) -> NetLimits {
    p.limits
        .iter()
        .filter(|l| matches!(&l.target, Target::Partition(n) if n == partition))
        .find_map(|l| l.network)
        .map(|n| NetLimits {
            bytes: n.bytes.map(|b| (b.rate, b.burst)),
            packets: n.packets.map(|b| (b.rate, b.burst)),
        })
        .unwrap_or_default()
}

/// CPU weight and cap: the agent's limit, else its partition's, else weight 100, no cap.
pub fn share_for(p: &PolicySet, agent: &str, partition: &str) -> Share {
    let cpu = p
        .limits
        .iter()
        .filter(|l| matches!(&l.target, Target::Agent(a) if a == agent))
        .chain(
            p.limits
                .iter()
                .filter(|l| matches!(&l.target, Target::Partition(n) if n == partition)),
        )
        .find_map(|l| l.cpu);
    let weight = cpu.map_or(100, |c| c.weight);
    // One CPU: a cap over 100% is no cap.
    let cap = cpu
        .and_then(|c| c.cap_percent)
        .filter(|p| *p < 100)
        .and_then(|p| Cap::percent(p, CAP_PERIOD_NS).ok());
    Share::new(weight, cap).unwrap_or_else(|_| {
        Share::new(100, None).unwrap_or_else(|_| unreachable!("weight 100 is valid"))
    })
}
