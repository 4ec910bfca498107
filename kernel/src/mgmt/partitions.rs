//! The partition command set and events over HTTP: `/api/v1/partitions…` decoded by
//! `plinth-control` and applied by `partition::control`, events and per-partition
//! metrics rendered for the API.
//!
//! Owns the glue between a request and the partition table's lock. It must not decide
//! anything about partitions (the command set's checks are `partition::control`'s).
use alloc::format;
use alloc::string::String;

use plinth_control::{Command, ControlError};
use plinth_http::Response;
use plinth_http::json::Writer;

use crate::clock;
use crate::partition::{AgentSlot, AgentStatus, EventKind, Partition, RUNTIME, Runtime};

fn partition(w: &mut Writer, p: &Partition, rt: &Runtime) {
    let now = clock::now_ns();
    w.begin_object();
    w.key("id").u64(u64::from(p.id));
    w.key("name").string(&p.name);
    w.key("state").string(p.state.name());
    w.key("tenant");
    match &p.tenant {
        Some(t) => w.string(t),
        None => w.null(),
    };
    w.key("labels").begin_array();
    for l in &p.labels {
        w.string(l);
    }
    w.end_array();
    w.key("memory").begin_object();
    w.key("quota_bytes").u64(p.memory_quota);
    w.key("used_bytes").u64(p.frames * plinth_abi::PAGE_SIZE);
    w.key("peak_bytes")
        .u64(p.peak_frames * plinth_abi::PAGE_SIZE);
    let tables: u64 = rt
        .tasks
        .iter()
        .filter(|t| rt.partitions.get(t.partition).is_some_and(|q| q.id == p.id))
        .map(|t| t.space.table_frames())
        .sum();
    w.key("page_table_bytes")
        .u64(tables * plinth_abi::PAGE_SIZE);
    w.end_object();
    w.key("disk");
    match p.disk {
        Some(d) => {
            w.begin_object();
            w.key("first_lba").u64(d.first_lba);
            w.key("sectors").u64(d.sectors);
            w.end_object();
        }
        None => {
            w.null();
        }
    }
    w.key("agents").begin_array();
    for a in &p.agents {
        w.begin_object();
        w.key("name").string(&a.image.name);
        w.key("version").string(&a.image.version);
        w.key("status").string(a.status.name());
        if let AgentStatus::Running(id) = a.status {
            w.key("task").u64(u64::from(id));
            if let Some(u) = rt.sched.usage(id) {
                w.key("cpu_ns").u64(u.ran_ns);
            }
            if let Some(t) = rt.tasks.iter().find(|t| t.id == id) {
                w.key("syscalls").u64(t.syscalls);
            }
        }
        if let AgentStatus::Ended(Some(code)) = a.status {
            w.key("exit_code").i64(i64::from(code));
        }
        w.key("restarts").u64(u64::from(a.restarts));
        w.key("heartbeats").u64(a.heartbeats);
        w.key("last_heartbeat_ms_ago");
        match a.last_heartbeat_ns {
            Some(t) => w.u64(now.saturating_sub(t) / 1_000_000),
            None => w.null(),
        };
        w.key("cpu").begin_object();
        w.key("weight").u64(u64::from(a.share.weight));
        w.key("cap_percent");
        match a.share.cap {
            Some(c) => w.f64(c.quota_ns as f64 * 100.0 / c.period_ns as f64),
            None => w.null(),
        };
        w.end_object();
        w.end_object();
    }
    w.end_array();
    w.end_object();
}

/// `GET /api/v1/partitions`.
fn list(rt: &Runtime) -> String {
    let mut w = Writer::new();
    w.begin_object();
    w.key("partitions").begin_array();
    for p in &rt.partitions {
        partition(&mut w, p, rt);
    }
    w.end_array();
    w.key("uptime_ns").u64(clock::now_ns());
    w.key("agents_busy_ns").u64(rt.busy_ns);
    w.end_object();
    w.finish()
}

/// One partition's object.
fn one(rt: &Runtime, pi: usize) -> String {
    let mut w = Writer::new();
    partition(&mut w, &rt.partitions[pi], rt);
    w.finish()
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
        Command::Create(c) => rt.create(&c).map(|pi| (201, one(rt, pi))),
        Command::Act { name, action } => rt.find(&name).map(|pi| {
            rt.act(pi, action);
            (200, one(rt, pi))
        }),
        Command::Terminate { name } => rt.find(&name).map(|pi| {
            let frames = rt.terminate(pi);
            let mut w = Writer::new();
            w.begin_object();
            w.key("terminated").string(&name);
            w.key("frames_returned").u64(frames);
            w.end_object();
            (200, w.finish())
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

/// `GET /api/v1/events?since=N`.
pub fn events_json(since: u64) -> String {
    let guard = RUNTIME.lock();
    let mut w = Writer::new();
    w.begin_object();
    w.key("events").begin_array();
    let mut last = since;
    if let Some(rt) = guard.as_ref() {
        for e in rt.events.since(since) {
            last = e.seq;
            w.begin_object();
            w.key("seq").u64(e.seq);
            w.key("time_ms").f64(e.time_ns as f64 / 1e6);
            w.key("partition").string(&e.partition);
            w.key("agent");
            match &e.agent {
                Some(a) => w.string(a),
                None => w.null(),
            };
            w.key("kind").string(e.kind.name());
            match &e.kind {
                EventKind::AgentStarted { task } => {
                    w.key("task").u64(u64::from(*task));
                }
                EventKind::AgentFailedToStart { error } => {
                    w.key("error").string(error);
                }
                EventKind::AgentExited { code } => {
                    w.key("code").i64(i64::from(*code));
                }
                EventKind::AgentFaulted {
                    vector,
                    name,
                    rip,
                    address,
                    error_code,
                } => {
                    w.key("vector").u64(*vector);
                    w.key("exception").string(name);
                    w.key("rip").u64(*rip);
                    w.key("error_code").u64(*error_code);
                    w.key("address");
                    match address {
                        Some(a) => w.u64(*a),
                        None => w.null(),
                    };
                }
                EventKind::RestartScheduled { attempt, delay_ms } => {
                    w.key("attempt").u64(u64::from(*attempt));
                    w.key("delay_ms").u64(*delay_ms);
                }
                EventKind::Quarantined {
                    restarts,
                    window_secs,
                } => {
                    w.key("restarts").u64(u64::from(*restarts));
                    w.key("window_secs").u64(u64::from(*window_secs));
                }
                EventKind::Alert { reason } => {
                    w.key("reason").string(reason);
                }
                EventKind::PartitionCreated => {}
            }
            w.end_object();
        }
    }
    w.end_array();
    w.key("last_seq").u64(last);
    w.end_object();
    w.finish()
}

/// Per-partition and per-agent series for `/metrics`: what governors and usage metering
/// will read.
pub fn metrics(w: &mut plinth_http::prometheus::Writer) {
    use plinth_http::prometheus::Kind;
    let guard = RUNTIME.lock();
    let Some(rt) = guard.as_ref() else {
        return;
    };
    for p in &rt.partitions {
        let l = [("partition", p.name.as_str())];
        w.metric(
            "plinth_partition_memory_used_bytes",
            "Memory charged to the partition (pages and page tables).",
            Kind::Gauge,
            &l,
            (p.frames * plinth_abi::PAGE_SIZE) as f64,
        );
        w.metric(
            "plinth_partition_memory_quota_bytes",
            "The partition's memory quota.",
            Kind::Gauge,
            &l,
            p.memory_quota as f64,
        );
    }
    type Series = fn(&AgentSlot, &Runtime) -> f64;
    let agent_series: [(&str, &str, Kind, Series); 3] = [
        (
            "plinth_agent_cpu_seconds",
            "CPU time of the agent's current run (ring 3 and its system calls).",
            Kind::Gauge,
            |a, rt| match a.status {
                AgentStatus::Running(id) => rt.sched.usage(id).map_or(0, |u| u.ran_ns) as f64 / 1e9,
                _ => 0.0,
            },
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
