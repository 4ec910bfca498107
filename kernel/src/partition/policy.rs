//! Live policy change: a protection or troubleshooting file replaced while agents run.
//!
//! The new text is checked the way the host tool and the catalog check it — the whole set,
//! with this one file replaced or added, against the appliance's machine, partitions and
//! agents — so a mistake comes back with the same positioned messages and changes
//! nothing. A set that passes replaces the runtime's, and every partition's limits are
//! applied again at once: agents' CPU shares, restart rules and watchdog intervals, NIC
//! buckets, disk budgets, the memory high-water mark, and contention protection. Nothing
//! is restarted; a waiting disk request sees its new budget at the next admission.
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
use super::governor;
use super::model::{AgentStatus, NetLimits, Troubleshooting};
use super::{CAP_PERIOD_NS, MIB};

/// What the policies were read from: the catalog's files and the world they are checked
/// against.
pub struct PolicySource {
    /// (name, text), in the spec's order; a live change replaces or adds one.
    pub files: Vec<(String, String)>,
    pub machine: Machine,
    pub partitions: Vec<PartitionDef>,
    pub agents: Vec<AgentDef>,
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
        let world = plinth_policy::World {
            machine: Some(source.machine),
            partitions: Some(&source.partitions),
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

    /// Replaces the policy set and applies it to every partition and agent.
    fn adopt(&mut self, set: PolicySet, now_ns: u64) {
        let contention_changed = set.contention != self.policies.contention
            || set.limits.iter().map(|l| l.protected).ne(self
                .policies
                .limits
                .iter()
                .map(|l| l.protected));
        self.policies = set;
        for pi in 0..self.partitions.len() {
            let name = self.partitions[pi].name.clone();
            let net = net_limits_for(&self.policies, &name);
            self.set_net_limits(pi, net);
            self.apply_disk_policy(pi, now_ns);
            let p = &mut self.partitions[pi];
            p.memory_high = memory_high_for(&self.policies, &name);
            for slot in &mut p.agents {
                let care = restart_for(&self.policies, &slot.image.name, &name);
                slot.restart = care.restart;
                slot.heartbeat_timeout_ms = care.heartbeat_timeout_ms;
                slot.share = share_for(&self.policies, &slot.image.name, &name);
                if let AgentStatus::Running(id) = slot.status {
                    // Contention protection puts its cap back at its next window.
                    let _ = self.sched.set_share(id, slot.share, now_ns);
                }
            }
        }
        if contention_changed {
            self.protection = governor::from_policy(&self.policies, now_ns);
        }
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
