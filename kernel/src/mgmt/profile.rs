//! The profiler over HTTP: `GET /api/v1/agents/PARTITION/AGENT/profile` (one agent: its
//! 1 s, 10 s and 60 s windows, totals, system calls by kind, and the footprint its
//! manifest predicts) and `GET /api/v1/profile?window=S` (every partition and agent over
//! one window, for `plinth top`).
//!
//! Owns these routes and turning `plinth-profile`'s windows into
//! `plinth_control::views`' units (percent of a CPU, per second). The sampling is
//! `partition::profile`'s; it must not sample or change anything.

use alloc::string::String;
use alloc::vec::Vec;

use plinth_control::views::{
    AgentProfileView, AgentState, CallCountView, FootprintView, PredictedView, StatView, TopRow,
    TopView, View, WindowView,
};
use plinth_http::Response;
use plinth_profile::{Counter, Gauge, Stat, WINDOWS};

use crate::clock;
use crate::partition::model::{PartitionProfile, UseProfile};
use crate::partition::profile::agent_now;
use crate::partition::{AgentSlot, AgentStatus, RUNTIME};

pub const AGENTS: &str = "/api/v1/agents/";
pub const PROFILE: &str = "/api/v1/profile";

fn stat(s: Option<Stat>, scale: f64) -> Option<StatView> {
    s.map(|s| StatView {
        avg: s.avg * scale,
        peak: s.peak as f64 * scale,
    })
}

/// Nanoseconds of CPU per second as percent of one CPU.
const CPU_PERCENT: f64 = 100.0 / 1e9;

fn counter(c: &Counter, n: usize, scale: f64) -> Option<StatView> {
    stat(c.window(n), scale)
}

fn gauge(g: &Gauge, n: usize) -> Option<StatView> {
    stat(g.window(n), 1.0)
}

/// What `u` used over the last `n` seconds (no NICs: those are a partition's).
fn use_window(u: &UseProfile, n: usize) -> WindowView {
    WindowView {
        seconds: n as u32,
        samples: u.cpu_ns.window(n).map_or(0, |s| s.samples as u32),
        cpu_percent: counter(&u.cpu_ns, n, CPU_PERCENT),
        syscalls_per_sec: counter(&u.syscalls, n, 1.0),
        disk_iops: counter(&u.disk_ops, n, 1.0),
        disk_bytes_per_sec: counter(&u.disk_bytes, n, 1.0),
        memory_bytes: gauge(&u.memory, n),
        net_packets_per_sec: None,
        net_bytes_per_sec: None,
    }
}

fn partition_window(p: &PartitionProfile, n: usize) -> WindowView {
    WindowView {
        net_packets_per_sec: counter(&p.net_packets, n, 1.0),
        net_bytes_per_sec: counter(&p.net_bytes, n, 1.0),
        ..use_window(&p.used, n)
    }
}

fn state(a: &AgentSlot) -> AgentState {
    match a.status {
        AgentStatus::Running(_) => AgentState::Running,
        AgentStatus::Backoff { .. } => AgentState::Backoff,
        AgentStatus::Ended(_) => AgentState::Ended,
        AgentStatus::Quarantined => AgentState::Quarantined,
        AgentStatus::Stopped => AgentState::Stopped,
    }
}

fn footprint(r: &plinth_container::Resources) -> FootprintView {
    let pair = |average, peak| PredictedView { average, peak };
    FootprintView {
        cpu_percent: pair(
            u64::from(r.cpu.average_percent),
            u64::from(r.cpu.peak_percent),
        ),
        memory_mib: pair(r.memory.average_mib, r.memory.peak_mib),
        disk_bytes_per_sec: r
            .disk
            .map(|d| pair(d.average_bytes_per_sec, d.peak_bytes_per_sec)),
        disk_iops: r.disk.map(|d| pair(d.average_iops, d.peak_iops)),
        network_bytes_per_sec: r
            .network
            .map(|n| pair(n.average_bytes_per_sec, n.peak_bytes_per_sec)),
    }
}

/// `GET /api/v1/agents/PARTITION/AGENT/profile`.
pub fn agent_route(method: &str, path: &str) -> Response {
    let rest = path.strip_prefix(AGENTS).unwrap_or("");
    let mut parts = rest.split('/');
    let (Some(partition), Some(agent), Some("profile"), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::error(404, "no such resource (agents/PARTITION/AGENT/profile)");
    };
    if !matches!(method, "GET" | "HEAD") {
        return Response::method_not_allowed("GET, HEAD");
    }
    let guard = RUNTIME.lock();
    let Some(rt) = guard.as_ref() else {
        return Response::error(404, "no such partition");
    };
    let Some(p) = rt.partitions.iter().find(|p| p.name == partition) else {
        return Response::error(404, "no such partition");
    };
    let Some(a) = p.agents.iter().find(|a| a.image.name == agent) else {
        return Response::error(404, "no such agent in that partition");
    };
    let now = agent_now(rt, a);
    let by_kind = now
        .totals
        .by_kind
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(i, n)| CallCountView {
            call: String::from(plinth_abi::Call::ALL.get(i).map_or("unknown", |c| c.name())),
            count: *n,
        })
        .collect();
    let view = AgentProfileView {
        partition: p.name.clone(),
        agent: a.image.name.clone(),
        version: a.image.version.clone(),
        status: state(a),
        uptime_ns: clock::now_ns(),
        windows: WINDOWS
            .iter()
            .map(|n| use_window(&a.profile.used, *n))
            .collect(),
        memory_bytes: now.memory,
        peak_memory_bytes: a.profile.peak_memory.max(now.memory),
        predicted: footprint(&a.image.resources),
        cpu_ns_total: now.totals.cpu_ns,
        syscalls_total: now.totals.syscalls,
        syscalls_by_kind: by_kind,
    };
    Response::json(200, view.to_json())
}

/// `GET /api/v1/profile?window=S` (S one of 1, 10, 60; default 1).
pub fn top_route(method: &str, query: Option<&str>) -> Response {
    if !matches!(method, "GET" | "HEAD") {
        return Response::method_not_allowed("GET, HEAD");
    }
    let mut window = 1usize;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("window", v)) => match v.parse::<usize>() {
                Ok(n) if WINDOWS.contains(&n) => window = n,
                _ => return Response::error(400, "window: 1, 10 or 60 (seconds)"),
            },
            _ => return Response::error(400, "unknown query parameter (expected window=S)"),
        }
    }
    let guard = RUNTIME.lock();
    let mut rows = Vec::new();
    if let Some(rt) = guard.as_ref() {
        for p in &rt.partitions {
            rows.push(TopRow {
                partition: p.name.clone(),
                agent: None,
                status: None,
                window: partition_window(&p.profile, window),
            });
            for a in &p.agents {
                rows.push(TopRow {
                    partition: p.name.clone(),
                    agent: Some(a.image.name.clone()),
                    status: Some(state(a)),
                    window: use_window(&a.profile.used, window),
                });
            }
        }
    }
    let view = TopView {
        uptime_ns: clock::now_ns(),
        rows,
    };
    Response::json(200, view.to_json())
}
