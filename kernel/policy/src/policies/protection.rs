//! `kind = "protection"`: performance protection. This module owns reading the host
//! contention thresholds (`[contention]`) and the per-agent and per-partition resource
//! limits (`[[limit]]`), and checking that caps fit the machine, the partitions, and the
//! partitions the deployment places each agent on. Enforcing the limits (schedulers,
//! token buckets) is the runtime's.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::deployment::Placements;
use super::{Cx, Placed, Pos, Target, at_least, first_of, target};
use crate::doc::{At, Table};

/// Host load, in percent, at which agents get throttled; `None`: that resource is not
/// watched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Contention {
    pub cpu_busy_percent: Option<u8>,
    pub memory_used_percent: Option<u8>,
    pub disk_busy_percent: Option<u8>,
    pub network_busy_percent: Option<u8>,
    /// The tightest CPU cap contention protection puts on an agent that is not in a
    /// protected partition (its steps halve from 50% down to this); `None`: the default,
    /// [`DEFAULT_THROTTLE_FLOOR`].
    pub cpu_throttle_floor_percent: Option<u8>,
    /// The tightest disk budget on a partition that is not protected, percent of the
    /// rate every partition's requests came to when contention began (the same steps);
    /// `None`: the default.
    pub disk_throttle_floor_percent: Option<u8>,
    /// The tightest memory mark, percent of the quota of a partition that is not
    /// protected (the same steps); `None`: the default.
    pub memory_throttle_floor_percent: Option<u8>,
}

/// The tightest cap contention protection applies, on any resource, unless the policy
/// says otherwise.
pub const DEFAULT_THROTTLE_FLOOR: u8 = 10;

/// The keys of `[contention]`, in the order of [`Contention`]'s fields.
const CONTENTION_KEYS: [&str; 7] = [
    "cpu_busy_percent",
    "memory_used_percent",
    "disk_busy_percent",
    "network_busy_percent",
    "cpu_throttle_floor_percent",
    "disk_throttle_floor_percent",
    "memory_throttle_floor_percent",
];

impl Contention {
    fn field(&mut self, i: usize) -> Option<&mut Option<u8>> {
        match i {
            0 => Some(&mut self.cpu_busy_percent),
            1 => Some(&mut self.memory_used_percent),
            2 => Some(&mut self.disk_busy_percent),
            3 => Some(&mut self.network_busy_percent),
            4 => Some(&mut self.cpu_throttle_floor_percent),
            5 => Some(&mut self.disk_throttle_floor_percent),
            6 => Some(&mut self.memory_throttle_floor_percent),
            _ => None,
        }
    }
}

/// One `[[limit]]`: what an agent (or every agent of a partition) may use. A resource
/// without a table is not limited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    pub target: Target,
    /// A partition contention protection keeps the CPU, the disk and memory free for:
    /// while one is at work and a watched resource is past its `contention` threshold,
    /// the other partitions are throttled on it (`protected = true`; partitions only).
    pub protected: bool,
    pub cpu: Option<CpuLimit>,
    pub memory: Option<MemoryLimit>,
    pub disk: Option<DiskLimit>,
    pub network: Option<NetworkLimit>,
}

/// CPU share under contention and hard cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuLimit {
    /// Relative share when CPUs are contended, 1..=10000 (default 100).
    pub weight: u32,
    /// At most this percent of one CPU (250 = two and a half CPUs); `None`: no cap.
    pub cap_percent: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLimit {
    /// At least 1.
    pub cap_mib: u64,
    /// The high-water mark (cgroup v2's `memory.high`; partitions only): above it the
    /// runtime slows the partition's `mem_grow` calls and raises an event, before the
    /// hard quota refuses them. At least 1 and at most `cap_mib`; `None`: no mark.
    pub high_mib: Option<u64>,
}

/// Disk rates; `None`: that rate is not limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskLimit {
    /// Operations per second (`iops`, `iops_burst`).
    pub iops: Option<Bucket>,
    /// Bytes read plus written per second (`bytes_per_sec`, `bytes_burst`).
    pub bytes: Option<Bucket>,
}

/// Network rates; `None`: that rate is not limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkLimit {
    /// Bytes sent plus received per second (`bytes_per_sec`, `bytes_burst`).
    pub bytes: Option<Bucket>,
    /// Packets per second (`packets_per_sec`, `packets_burst`).
    pub packets: Option<Bucket>,
}

/// A token bucket: refilled at `rate` per second, holding at most `burst` (at least one
/// second's worth; `rate` when the file gives no burst).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// At least 1.
    pub rate: u64,
    /// At least `rate`.
    pub burst: u64,
}

#[derive(Default)]
pub(super) struct RawProtection {
    /// Each contention key's occurrences, across files, in the order of
    /// [`CONTENTION_KEYS`].
    contention: [Vec<Placed<u8>>; CONTENTION_KEYS.len()],
    limits: Vec<RawLimit>,
}

struct RawLimit {
    target: Option<Placed<Target>>,
    protected: Option<Placed<bool>>,
    cpu_cap: Option<Placed<u32>>,
    memory_cap: Option<Placed<u64>>,
    /// The limit's tables; `None` if any of them had a mistake.
    parts: Option<Parts>,
}

type Parts = (
    Option<CpuLimit>,
    Option<MemoryLimit>,
    Option<DiskLimit>,
    Option<NetworkLimit>,
);

/// An optional sub-table: `Ok(None)` absent, `Err(())` it had a mistake (reported).
type Read<T> = Result<Option<T>, ()>;

pub(super) fn read(root: &Table<'_, '_>, out: &mut RawProtection) {
    if let Some(t) = root.opt_table("contention") {
        for (key, seen) in CONTENTION_KEYS.into_iter().zip(&mut out.contention) {
            if let Some(v) = t.opt_u64_in(key, 1, 100) {
                let value = u8::try_from(v.value).unwrap_or(u8::MAX);
                seen.push(Placed::new(&t, At::new(value, v.span)));
            }
        }
        t.finish(&CONTENTION_KEYS);
    }
    for t in root.tables("limit") {
        out.limits.push(read_limit(&t));
        t.finish(&[
            "agent",
            "partition",
            "protected",
            "cpu",
            "memory",
            "disk",
            "network",
        ]);
    }
    root.finish(&["kind", "contention", "limit"]);
}

fn read_limit(t: &Table<'_, '_>) -> RawLimit {
    let target = target(t);
    let protected = t.opt_bool("protected").map(|v| Placed::new(t, v));
    let mut cpu_cap = None;
    let cpu: Read<CpuLimit> = match t.opt_table("cpu") {
        None if t.has("cpu") => Err(()),
        None => Ok(None),
        Some(c) => {
            let weight = c.opt_u64_in("weight", 1, 10_000);
            let cap = at_least(&c, "cap_percent", 1, u64::from(u32::MAX), false);
            let ok = weight.is_some() == c.has("weight") && cap.is_some() == c.has("cap_percent");
            c.finish(&["weight", "cap_percent"]);
            cpu_cap = cap.map(|v| {
                let value = u32::try_from(v.value).unwrap_or(u32::MAX);
                Placed::new(&c, At::new(value, v.span))
            });
            if ok {
                Ok(Some(CpuLimit {
                    weight: weight.map_or(100, |w| u32::try_from(w.value).unwrap_or(u32::MAX)),
                    cap_percent: cpu_cap.as_ref().map(|c| c.value),
                }))
            } else {
                Err(())
            }
        }
    };
    let mut memory_cap = None;
    let memory: Read<MemoryLimit> = match t.opt_table("memory") {
        None if t.has("memory") => Err(()),
        None => Ok(None),
        Some(m) => {
            let cap = at_least(&m, "cap_mib", 1, u64::MAX, true);
            let high = at_least(&m, "high_mib", 1, u64::MAX, false);
            m.finish(&["cap_mib", "high_mib"]);
            let high_ok = match (&high, &cap) {
                (None, _) => !m.has("high_mib"),
                (Some(h), Some(c)) if h.value > c.value => {
                    m.error(
                        h.span.clone(),
                        format!(
                            "`{}` = {} is above the cap ({} MiB): the high-water mark comes \
                             before the cap",
                            m.key_path("high_mib"),
                            h.value,
                            c.value
                        ),
                    );
                    false
                }
                (Some(_), _) => true,
            };
            if let (
                Some(h),
                Some(Placed {
                    value: Target::Agent(name),
                    ..
                }),
            ) = (&high, &target)
            {
                m.error(
                    h.span.clone(),
                    format!(
                        "`{}`: agent {name} cannot have a high-water mark: memory is charged \
                         to partitions, so the mark is a partition's",
                        m.key_path("high_mib")
                    ),
                );
            }
            let agent_high = high.is_some()
                && matches!(
                    &target,
                    Some(Placed {
                        value: Target::Agent(_),
                        ..
                    })
                );
            memory_cap = cap.map(|v| Placed::new(&m, v));
            match &memory_cap {
                Some(c) if high_ok && !agent_high => Ok(Some(MemoryLimit {
                    cap_mib: c.value,
                    high_mib: high.map(|h| h.value),
                })),
                _ => Err(()),
            }
        }
    };
    let disk: Read<DiskLimit> = match t.opt_table("disk") {
        None if t.has("disk") => Err(()),
        None => Ok(None),
        Some(d) => {
            let iops = bucket(&d, "iops", "iops_burst");
            let bytes = bucket(&d, "bytes_per_sec", "bytes_burst");
            d.finish(&["iops", "iops_burst", "bytes_per_sec", "bytes_burst"]);
            match (iops, bytes) {
                (Ok(iops), Ok(bytes)) => Ok(Some(DiskLimit { iops, bytes })),
                _ => Err(()),
            }
        }
    };
    let network: Read<NetworkLimit> = match t.opt_table("network") {
        None if t.has("network") => Err(()),
        None => Ok(None),
        Some(n) => {
            let bytes = bucket(&n, "bytes_per_sec", "bytes_burst");
            let packets = bucket(&n, "packets_per_sec", "packets_burst");
            n.finish(&[
                "bytes_per_sec",
                "bytes_burst",
                "packets_per_sec",
                "packets_burst",
            ]);
            match (bytes, packets) {
                (Ok(bytes), Ok(packets)) => Ok(Some(NetworkLimit { bytes, packets })),
                _ => Err(()),
            }
        }
    };
    let parts = match (cpu, memory, disk, network) {
        (Ok(c), Ok(m), Ok(d), Ok(n)) => Some((c, m, d, n)),
        _ => None,
    };
    RawLimit {
        target,
        protected,
        cpu_cap,
        memory_cap,
        parts,
    }
}

/// A rate and its optional burst: the burst needs the rate and holds at least one
/// second of it.
fn bucket(t: &Table<'_, '_>, rate_key: &str, burst_key: &str) -> Read<Bucket> {
    let rate = at_least(t, rate_key, 1, u64::MAX, false);
    let burst = t.opt_u64(burst_key);
    if rate.is_none() && t.has(rate_key) {
        // The rate's mistake is reported; the burst has nothing to be checked against.
        return Err(());
    }
    match (rate, burst) {
        (None, None) if t.has(burst_key) => Err(()),
        (None, None) => Ok(None),
        (None, Some(b)) => {
            t.error(
                b.span,
                format!(
                    "`{}` needs `{}`: a burst is of a rate",
                    t.key_path(burst_key),
                    t.key_path(rate_key)
                ),
            );
            Err(())
        }
        // The burst's type mistake is reported.
        (Some(_), None) if t.has(burst_key) => Err(()),
        (Some(r), None) => Ok(Some(Bucket {
            rate: r.value,
            burst: r.value,
        })),
        (Some(r), Some(b)) if b.value < r.value => {
            t.error(
                b.span,
                format!(
                    "`{}` = {} is below `{}` = {}; a burst holds at least one second of the rate",
                    t.key_path(burst_key),
                    b.value,
                    t.key_path(rate_key),
                    r.value
                ),
            );
            Err(())
        }
        (Some(r), Some(b)) => Ok(Some(Bucket {
            rate: r.value,
            burst: b.value,
        })),
    }
}

pub(super) fn check(
    raw: &RawProtection,
    placements: &Placements,
    cx: &mut Cx<'_, '_>,
) -> (Contention, Vec<Limit>) {
    let mut contention = Contention::default();
    for (i, occurrences) in raw.contention.iter().enumerate() {
        let Some((first, rest)) = occurrences.split_first() else {
            continue;
        };
        if let Some(field) = contention.field(i) {
            *field = Some(first.value);
        }
        for again in rest {
            cx.error(
                again.pos,
                format!(
                    "`contention.{}` is already set at {}",
                    CONTENTION_KEYS[i],
                    cx.named(first.pos, again.pos)
                ),
            );
        }
    }

    let mut limits = Vec::new();
    let mut seen: BTreeMap<Target, Pos> = BTreeMap::new();
    // Each agent's memory cap (from its first limit), in the order of the limits.
    let mut agent_memory: Vec<(&str, &Placed<u64>)> = Vec::new();
    for l in &raw.limits {
        let Some(target) = &l.target else { continue };
        let first = first_of(&mut seen, target.value.clone(), target.pos, cx, |first| {
            format!("{} already has a limit, at {first}", target.value)
        });
        if !first {
            continue;
        }
        let exists = cx.check_target(target);
        let protected = l.protected.as_ref().is_some_and(|p| p.value);
        if let (Some(p), Target::Agent(name)) = (&l.protected, &target.value)
            && p.value
        {
            cx.error(
                p.pos,
                format!("agent {name} cannot be protected: a protected limit names a partition"),
            );
        }
        match &target.value {
            Target::Partition(name) if exists => check_partition_caps(name, l, cx),
            Target::Agent(name) => {
                check_agent_caps(name, l, placements, cx);
                if let Some(cap) = &l.memory_cap {
                    agent_memory.push((name, cap));
                }
            }
            Target::Partition(_) => {}
        }
        if let Some((cpu, memory, disk, network)) = l.parts {
            limits.push(Limit {
                target: target.value.clone(),
                protected,
                cpu,
                memory,
                disk,
                network,
            });
        }
    }
    check_memory_sums(&agent_memory, placements, cx);
    (contention, limits)
}

/// `l`'s caps fit something with `memory_mib` and `cpus`: `holder` names it in messages
/// (`` partition `mgmt` ``, `the machine`), `subject` says whose caps they are (empty for
/// the limit's own target).
fn check_caps_fit(
    l: &RawLimit,
    memory_mib: u64,
    cpus: u32,
    subject: &str,
    holder: &str,
    cx: &mut Cx<'_, '_>,
) {
    if let Some(cap) = &l.memory_cap
        && cap.value > memory_mib
    {
        cx.error(
            cap.pos,
            format!(
                "memory cap {} MiB{subject} is more than {holder} has ({memory_mib} MiB)",
                cap.value
            ),
        );
    }
    let most = 100 * u64::from(cpus);
    if let Some(cap) = &l.cpu_cap
        && u64::from(cap.value) > most
    {
        cx.error(
            cap.pos,
            format!(
                "CPU cap {}%{subject} is more than {holder} gives with {cpus} CPUs ({most}%)",
                cap.value
            ),
        );
    }
}

/// A partition's own caps fit its quotas.
fn check_partition_caps(name: &str, l: &RawLimit, cx: &mut Cx<'_, '_>) {
    if let Some(Some(p)) = cx.partition(name) {
        let (memory, cpus) = (p.memory_mib, p.cpus);
        check_caps_fit(l, memory, cpus, "", &format!("partition `{name}`"), cx);
    }
}

/// An agent's caps fit the machine and every partition the deployment places it on.
fn check_agent_caps(name: &str, l: &RawLimit, placements: &Placements, cx: &mut Cx<'_, '_>) {
    if let Some(m) = cx.world.machine {
        check_caps_fit(l, m.memory_mib, m.cpus, "", "the machine", cx);
    }
    for partition in placements.get(name).into_iter().flatten() {
        let Some(Some(p)) = cx.partition(partition) else {
            continue;
        };
        let (memory, cpus) = (p.memory_mib, p.cpus);
        check_caps_fit(
            l,
            memory,
            cpus,
            &format!(" of agent `{name}`"),
            &format!("partition `{partition}`, where it is deployed,"),
            cx,
        );
    }
}

/// The memory caps of the agents deployed to a partition add up to at most its memory.
/// Reported once per partition, at the cap that goes over.
fn check_memory_sums(
    agent_memory: &[(&str, &Placed<u64>)],
    placements: &Placements,
    cx: &mut Cx<'_, '_>,
) {
    let Some(partitions) = cx.world.partitions else {
        return;
    };
    for p in partitions {
        let on_p: Vec<&(&str, &Placed<u64>)> = agent_memory
            .iter()
            .filter(|(agent, _)| {
                placements
                    .get(*agent)
                    .is_some_and(|ps| ps.contains(&p.name))
            })
            .collect();
        // One cap alone over the partition is already reported by the agent's check.
        if on_p.iter().any(|(_, cap)| cap.value > p.memory_mib) {
            continue;
        }
        // In u128: caps near u64::MAX must not wrap (nor saturate) below the quota.
        let mut sum: u128 = 0;
        for (_, cap) in &on_p {
            sum += u128::from(cap.value);
            if sum > u128::from(p.memory_mib) {
                let total: u128 = on_p.iter().map(|(_, c)| u128::from(c.value)).sum();
                let parts: Vec<String> = on_p
                    .iter()
                    .map(|(agent, c)| format!("`{agent}` {}", c.value))
                    .collect();
                cx.error(
                    cap.pos,
                    format!(
                        "the memory caps of the agents deployed to partition `{}` add up to \
                         {total} MiB ({}), more than its {} MiB",
                        p.name,
                        parts.join(", "),
                        p.memory_mib
                    ),
                );
                break;
            }
        }
    }
}
