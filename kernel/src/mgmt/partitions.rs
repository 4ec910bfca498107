//! The partition command set and events over HTTP: `/api/v1/partitions…` decoded by
//! `plinth-control` and applied by `partition::control`; partitions and events answered
//! as `plinth_control::views` (the documents the `plinth` tool reads), and per-partition
//! metrics for `/metrics`.
//!
//! Owns the glue between a request and the partition table's lock, and the mapping from
//! the partition table's types to the views (state and status names, event kinds, bytes
//! from frames). It must not decide anything about partitions (the command set's checks
//! are `partition::control`'s), nor write JSON by hand (the views' `to_json` does).
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use plinth_control::views::{
    self, AgentState, AgentView, CpuView, DiskRateView, DiskUsageView, DiskView, EventList,
    EventView, MemoryView, NetRateView, NicView, PartitionList, PartitionView, Terminated, View,
};
use plinth_control::{Command, ControlError};
use plinth_http::Response;

use crate::clock;
use crate::net::switch;
use crate::partition::control::CommandError;
use crate::partition::events::Event;
use crate::partition::model::DiskUsage;
use crate::partition::model::PartNic;
use crate::partition::model::PartitionState;
use crate::partition::nics::format_mac;
use crate::partition::{AgentSlot, AgentStatus, EventKind, Partition, RUNTIME, Runtime};

/// A partition as the API shows it; `now` (ns since kernel entry) dates heartbeats.
fn partition(p: &Partition, rt: &Runtime, now: u64) -> PartitionView {
    let tables: u64 = rt
        .tasks
        .iter()
        .filter(|t| rt.partitions.get(t.partition).is_some_and(|q| q.id == p.id))
        .map(|t| t.space.table_frames())
        .sum();
    PartitionView {
        id: p.id,
        name: p.name.clone(),
        state: match p.state {
            PartitionState::Running => views::PartitionState::Running,
            PartitionState::Stopped => views::PartitionState::Stopped,
        },
        tenant: p.tenant.clone(),
        labels: p.labels.clone(),
        memory: MemoryView {
            quota_bytes: p.memory_quota,
            used_bytes: p.frames * plinth_abi::PAGE_SIZE,
            peak_bytes: p.peak_frames * plinth_abi::PAGE_SIZE,
            high_bytes: p.memory_high,
            page_table_bytes: tables * plinth_abi::PAGE_SIZE,
        },
        disk: p.disk.map(|d| DiskView {
            first_lba: d.first_lba,
            sectors: d.sectors,
            usage: disk_usage(&p.disk_usage),
            waiting: u32::try_from(p.disk_gate.waiting()).unwrap_or(u32::MAX),
            rate: p.disk_budget.is_limited().then_some(DiskRateView {
                iops: p.disk_budget.ops.map(|b| b.0),
                iops_burst: p.disk_budget.ops.map(|b| b.1),
                bytes_per_sec: p.disk_budget.bytes.map(|b| b.0),
                bytes_burst: p.disk_budget.bytes.map(|b| b.1),
            }),
        }),
        agents: p.agents.iter().map(|a| agent(a, rt, now)).collect(),
        nics: p.nics.iter().map(|n| nic(p, n)).collect(),
    }
}

fn disk_usage(u: &DiskUsage) -> DiskUsageView {
    DiskUsageView {
        reads: u.reads,
        read_bytes: u.read_bytes,
        writes: u.writes,
        written_bytes: u.written_bytes,
        throttled: u.throttled,
        throttled_ns: u.throttled_ns,
    }
}

/// A partition NIC as the API shows it: counted from the partition's side (what it
/// received is what its bridge port handed out).
fn nic(p: &Partition, n: &PartNic) -> NicView {
    let counters = switch::inspect(|b| b.port(n.port).map(|(_, c)| c.clone())).flatten();
    let c = counters.unwrap_or_default();
    let l = p.net_limits;
    NicView {
        index: n.index,
        mac: format_mac(&n.mac),
        port: format!("{}/{}", p.name, n.index),
        vlan: (n.vlan != plinth_bridge::NATIVE).then_some(n.vlan),
        tenant: (n.vlan != plinth_bridge::NATIVE)
            .then(|| p.tenant.clone())
            .flatten(),
        rx_frames: c.tx_frames,
        rx_bytes: c.tx_bytes,
        tx_frames: c.rx_frames,
        tx_bytes: c.rx_bytes,
        drops: c.drops.iter().sum(),
        queued: u32::try_from(switch::held(n.port)).unwrap_or(u32::MAX),
        rate: (l.bytes.is_some() || l.packets.is_some()).then_some(NetRateView {
            bytes_per_sec: l.bytes.map(|b| b.0),
            bytes_burst: l.bytes.map(|b| b.1),
            packets_per_sec: l.packets.map(|b| b.0),
            packets_burst: l.packets.map(|b| b.1),
        }),
    }
}

/// An agent slot as the API shows it: the task's figures only while it runs, the exit
/// code only once it ended with one.
fn agent(a: &AgentSlot, rt: &Runtime, now: u64) -> AgentView {
    let (status, task, exit_code) = match a.status {
        AgentStatus::Running(id) => (AgentState::Running, Some(id), None),
        AgentStatus::Backoff { .. } => (AgentState::Backoff, None, None),
        AgentStatus::Ended(code) => (AgentState::Ended, None, code),
        AgentStatus::Quarantined => (AgentState::Quarantined, None, None),
        AgentStatus::Stopped => (AgentState::Stopped, None, None),
    };
    AgentView {
        name: a.image.name.clone(),
        version: a.image.version.clone(),
        status,
        task,
        cpu_ns: task.and_then(|id| rt.sched.usage(id)).map(|u| u.ran_ns),
        syscalls: task
            .and_then(|id| rt.tasks.iter().find(|t| t.id == id))
            .map(|t| t.syscalls),
        exit_code,
        restarts: a.restarts,
        heartbeats: a.heartbeats,
        last_heartbeat_ms_ago: a
            .last_heartbeat_ns
            .map(|t| now.saturating_sub(t) / 1_000_000),
        cpu: CpuView::new(
            a.share.weight,
            a.share.cap.map(|c| (c.quota_ns, c.period_ns)),
        ),
        disk: disk_usage(&a.disk_usage),
    }
}

/// `GET /api/v1/partitions`.
fn list(rt: &Runtime) -> String {
    let now = clock::now_ns();
    PartitionList {
        partitions: rt
            .partitions
            .iter()
            .map(|p| partition(p, rt, now))
            .collect(),
        uptime_ns: now,
        agents_busy_ns: rt.busy_ns,
    }
    .to_json()
}

/// One partition's document.
fn one(rt: &Runtime, pi: usize) -> String {
    partition(&rt.partitions[pi], rt, clock::now_ns()).to_json()
}

/// Every `/api/v1/partitions…` request: decoded and validated by `plinth-control`, then
/// applied to the running system.
pub fn command(method: &str, path: &str, body: &[u8]) -> Response {
    let cmd = match plinth_control::decode(method, path, body) {
        Ok(c) => c,
        Err(ControlError::MethodNotAllowed { allow }) => {
            return Response::method_not_allowed(allow);
        }
        Err(e) => return Response::error(e.status(), &format!("{e}")),
    };
    let mut guard = RUNTIME.lock();
    let Some(rt) = guard.as_mut() else {
        return Response::error(503, "partitions are not up yet");
    };
    let result = match cmd {
        Command::List => Ok((200, list(rt))),
        Command::Get { name } => rt.find(&name).map(|pi| (200, one(rt, pi))),
        Command::AttachNic { name, nic } => rt.find(&name).and_then(|pi| {
            let mac = nic
                .parsed_mac()
                .map_err(|e| CommandError::Unknown(format!("{e}")))?;
            rt.add_nic(pi, mac).map(|_| (200, one(rt, pi)))
        }),
        Command::DetachNic { name, index } => rt
            .find(&name)
            .and_then(|pi| rt.remove_nic(pi, index).map(|()| (200, one(rt, pi)))),
        Command::Create(c) => rt.create(&c).map(|pi| (201, one(rt, pi))),
        Command::Act { name, action } => rt.find(&name).map(|pi| {
            rt.act(pi, action);
            (200, one(rt, pi))
        }),
        Command::Terminate { name } => rt.find(&name).map(|pi| {
            let frames_returned = rt.terminate(pi);
            let answer = Terminated {
                terminated: name,
                frames_returned,
            };
            (200, answer.to_json())
        }),
        Command::Resize { name, resize } => rt
            .find(&name)
            .and_then(|pi| rt.resize(pi, &resize).map(|()| (200, one(rt, pi)))),
        Command::AttachDisk { name, disk } => rt
            .find(&name)
            .and_then(|pi| rt.attach_disk(pi, &disk).map(|()| (200, one(rt, pi)))),
        Command::DetachDisk { name } => rt
            .find(&name)
            .and_then(|pi| rt.detach_disk(pi).map(|()| (200, one(rt, pi)))),
    };
    match result {
        Ok((status, body)) => Response::json(status, body),
        Err(e) => Response::error(e.status(), &e.message()),
    }
}

/// `GET /api/v1/events?since=N`: the events after `since`, oldest first. The table's
/// lock is held only while they are copied out, not while they are written.
pub fn events_json(since: u64) -> String {
    let list = {
        let guard = RUNTIME.lock();
        let events: Vec<EventView> = guard
            .as_ref()
            .map(|rt| rt.events.since(since).map(event).collect())
            .unwrap_or_default();
        EventList {
            last_seq: events.last().map_or(since, |e| e.seq),
            events,
        }
    };
    list.to_json()
}

/// One event as the API shows it.
fn event(e: &Event) -> EventView {
    let kind = match &e.kind {
        EventKind::PartitionCreated => views::EventKind::PartitionCreated,
        EventKind::AgentStarted { task } => views::EventKind::AgentStarted { task: *task },
        EventKind::AgentFailedToStart { error } => views::EventKind::AgentFailedToStart {
            error: error.clone(),
        },
        EventKind::AgentExited { code } => views::EventKind::AgentExited { code: *code },
        EventKind::AgentFaulted {
            vector,
            name,
            rip,
            address,
            error_code,
        } => views::EventKind::AgentFaulted {
            vector: *vector,
            exception: String::from(*name),
            rip: *rip,
            error_code: *error_code,
            address: *address,
        },
        EventKind::AgentHung {
            silent_ms,
            timeout_ms,
            heartbeats,
        } => views::EventKind::AgentHung {
            silent_ms: *silent_ms,
            timeout_ms: *timeout_ms,
            heartbeats: *heartbeats,
        },
        EventKind::RestartScheduled { attempt, delay_ms } => views::EventKind::RestartScheduled {
            attempt: *attempt,
            delay_ms: *delay_ms,
        },
        EventKind::Quarantined {
            restarts,
            window_secs,
        } => views::EventKind::Quarantined {
            restarts: *restarts,
            window_secs: *window_secs,
        },
        EventKind::Alert { reason } => views::EventKind::Alert {
            reason: reason.clone(),
        },
        EventKind::CpuThrottled {
            cap_percent,
            busy_percent,
        } => views::EventKind::CpuThrottled {
            cap_percent: *cap_percent,
            busy_percent: *busy_percent,
        },
        EventKind::CpuReleased { cap_percent } => views::EventKind::CpuReleased {
            cap_percent: *cap_percent,
        },
        EventKind::DiskThrottled {
            cap_percent,
            busy_percent,
            iops,
            bytes_per_sec,
        } => views::EventKind::DiskThrottled {
            cap_percent: *cap_percent,
            busy_percent: *busy_percent,
            iops: *iops,
            bytes_per_sec: *bytes_per_sec,
        },
        EventKind::DiskReleased { cap_percent } => views::EventKind::DiskReleased {
            cap_percent: *cap_percent,
        },
        EventKind::MemoryThrottled {
            cap_percent,
            used_percent,
            mark_bytes,
        } => views::EventKind::MemoryThrottled {
            cap_percent: *cap_percent,
            used_percent: *used_percent,
            mark_bytes: *mark_bytes,
        },
        EventKind::MemoryReleased { cap_percent } => views::EventKind::MemoryReleased {
            cap_percent: *cap_percent,
        },
        EventKind::MemoryHigh {
            used_bytes,
            high_bytes,
            quota_bytes,
        } => views::EventKind::MemoryHigh {
            used_bytes: *used_bytes,
            high_bytes: *high_bytes,
            quota_bytes: *quota_bytes,
        },
    };
    EventView::new(e.seq, e.time_ns, &e.partition, e.agent.as_deref(), kind)
}

/// Per-partition and per-agent series for `/metrics`: what governors and usage metering
/// will read.
pub fn metrics(w: &mut plinth_http::prometheus::Writer) {
    use plinth_http::prometheus::Kind;
    let guard = RUNTIME.lock();
    let Some(rt) = guard.as_ref() else {
        return;
    };
    // The CPU's time, like node_exporter's `node_cpu_seconds_total`: halted for want of
    // work, in agents (ring 3 and their system calls), and the rest — the runtime's own
    // duties (devices, the switch, the API) and interrupts.
    let uptime = clock::now_ns();
    let idle = clock::idle_ns().min(uptime);
    let agents = rt.busy_ns.min(uptime - idle);
    for (mode, ns) in [
        ("idle", idle),
        ("agents", agents),
        ("runtime", uptime - idle - agents),
    ] {
        w.metric(
            "plinth_cpu_seconds_total",
            "CPU time since kernel entry, by what it was spent on.",
            Kind::Counter,
            &[("cpu", "0"), ("mode", mode)],
            ns as f64 / 1e9,
        );
    }
    // One family at a time: Prometheus wants a family's samples together.
    for p in &rt.partitions {
        w.metric(
            "plinth_partition_memory_used_bytes",
            "Memory charged to the partition (pages and page tables).",
            Kind::Gauge,
            &[("partition", p.name.as_str())],
            (p.frames * plinth_abi::PAGE_SIZE) as f64,
        );
    }
    for p in &rt.partitions {
        w.metric(
            "plinth_partition_memory_quota_bytes",
            "The partition's memory quota.",
            Kind::Gauge,
            &[("partition", p.name.as_str())],
            p.memory_quota as f64,
        );
    }
    // The disk governor's counters, kept across agents' restarts.
    type DiskSeries = fn(&DiskUsage) -> f64;
    let disk_series: [(&str, &str, DiskSeries); 6] = [
        (
            "plinth_partition_disk_reads_total",
            "Disk reads the partition's agents made.",
            |u| u.reads as f64,
        ),
        (
            "plinth_partition_disk_read_bytes_total",
            "Bytes the partition's agents read.",
            |u| u.read_bytes as f64,
        ),
        (
            "plinth_partition_disk_writes_total",
            "Disk writes the partition's agents made.",
            |u| u.writes as f64,
        ),
        (
            "plinth_partition_disk_written_bytes_total",
            "Bytes the partition's agents wrote.",
            |u| u.written_bytes as f64,
        ),
        (
            "plinth_partition_disk_throttled_total",
            "Disk requests that waited for the partition's or their agent's budget.",
            |u| u.throttled as f64,
        ),
        (
            "plinth_partition_disk_throttled_seconds_total",
            "Time those requests waited, summed.",
            |u| u.throttled_ns as f64 / 1e9,
        ),
    ];
    for (name, help, value) in disk_series {
        for p in &rt.partitions {
            w.metric(
                name,
                help,
                Kind::Counter,
                &[("partition", p.name.as_str())],
                value(&p.disk_usage),
            );
        }
    }
    for (name, help, value) in [
        (
            "plinth_partition_disk_gate_calls_total",
            "Disk calls that went through the partition's disk governor (partitions with a \
             disk budget).",
            (|p: &Partition| p.gate_cost.calls as f64) as fn(&Partition) -> f64,
        ),
        (
            "plinth_partition_disk_gate_seconds_total",
            "Time those calls spent in the disk governor's gate.",
            |p: &Partition| p.gate_cost.ns as f64 / 1e9,
        ),
    ] {
        for p in &rt.partitions {
            w.metric(
                name,
                help,
                Kind::Counter,
                &[("partition", p.name.as_str())],
                value(p),
            );
        }
    }
    type Series = fn(&AgentSlot, &Runtime) -> f64;
    fn usage(a: &AgentSlot, rt: &Runtime) -> plinth_sched::Usage {
        match a.status {
            AgentStatus::Running(id) => rt.sched.usage(id).unwrap_or_default(),
            _ => plinth_sched::Usage::default(),
        }
    }
    let agent_series: [(&str, &str, Kind, Series); 5] = [
        (
            "plinth_agent_cpu_seconds",
            "CPU time of the agent's current run (ring 3 and its system calls).",
            Kind::Gauge,
            |a, rt| usage(a, rt).ran_ns as f64 / 1e9,
        ),
        (
            "plinth_agent_run_delay_seconds",
            "Time the agent's current run spent ready to run but waiting for the CPU \
             (throttled time included), as Linux's schedstat run_delay.",
            Kind::Gauge,
            |a, rt| usage(a, rt).delay_ns as f64 / 1e9,
        ),
        (
            "plinth_agent_scheduled",
            "Times the agent's current run was given the CPU.",
            Kind::Gauge,
            |a, rt| usage(a, rt).runs as f64,
        ),
        (
            "plinth_agent_restarts_total",
            "Restarts by the troubleshooting policy.",
            Kind::Counter,
            |a, _| f64::from(a.restarts),
        ),
        (
            "plinth_agent_heartbeats_total",
            "Heartbeats the agent sent.",
            Kind::Counter,
            |a, _| a.heartbeats as f64,
        ),
    ];
    // One family at a time: Prometheus wants a family's samples together.
    for (name, help, kind, value) in agent_series {
        for p in &rt.partitions {
            for a in &p.agents {
                let l = [
                    ("partition", p.name.as_str()),
                    ("agent", a.image.name.as_str()),
                ];
                w.metric(name, help, kind, &l, value(a, rt));
            }
        }
    }
}
