//! What happens to partitions and agents, as events: kept in a bounded ring with sequence
//! numbers for the API (`/api/v1/events?since=N`) and logged as they happen.
//!
//! Owns the event types and the ring. It must not act on an event (the restart policy is
//! `lifecycle`'s); it only records and logs. How an event is written for the API is
//! `mgmt`'s (as `plinth-control`'s `EventView`).

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;

use log::{info, warn};

use super::model::{Partition, TaskId};
use crate::clock;

/// Events kept for the API; older ones are dropped (their sequence numbers stay unique).
const EVENTS_KEPT: usize = 512;

/// Something that happened to a partition or agent, for the API and the log.
#[derive(Clone, Debug)]
pub struct Event {
    pub seq: u64,
    pub time_ns: u64,
    pub partition: String,
    pub agent: Option<String>,
    pub kind: EventKind,
}

#[derive(Clone, Debug)]
pub enum EventKind {
    PartitionCreated,
    AgentStarted {
        task: TaskId,
    },
    AgentFailedToStart {
        error: String,
    },
    AgentExited {
        code: i32,
    },
    AgentFaulted {
        vector: u64,
        name: &'static str,
        rip: u64,
        address: Option<u64>,
        error_code: u64,
    },
    /// The watchdog ended the agent: no heartbeat for `silent_ms` (its interval is
    /// `timeout_ms`); `heartbeats` is the agent's count so far, all its runs.
    AgentHung {
        silent_ms: u64,
        timeout_ms: u32,
        heartbeats: u64,
    },
    RestartScheduled {
        attempt: u32,
        delay_ms: u64,
    },
    Quarantined {
        restarts: u32,
        window_secs: u32,
    },
    Alert {
        reason: String,
    },
    /// Contention protection capped the partition's agents at `cap_percent` of a CPU:
    /// agents used `busy_percent` of it with a protected partition busy.
    CpuThrottled {
        cap_percent: u8,
        busy_percent: u8,
    },
    /// Contention protection loosened the cap (`None`: lifted it).
    CpuReleased {
        cap_percent: Option<u8>,
    },
    /// Contention protection budgeted the partition's disk at `cap_percent` of what the
    /// partitions' requests came to when contention began (`iops`, `bytes_per_sec`): the
    /// disk was `busy_percent` busy with a protected partition at work.
    DiskThrottled {
        cap_percent: u8,
        busy_percent: u8,
        iops: u64,
        bytes_per_sec: u64,
    },
    /// Contention protection loosened the disk budget (`None`: lifted it).
    DiskReleased {
        cap_percent: Option<u8>,
    },
    /// Contention protection marked the partition's memory at `cap_percent` of its quota
    /// (`mark_bytes`): the machine's memory was `used_percent` in use with a protected
    /// partition at work. Above the mark `mem_grow` is slowed.
    MemoryThrottled {
        cap_percent: u8,
        used_percent: u8,
        mark_bytes: u64,
    },
    /// Contention protection loosened the memory mark (`None`: lifted it).
    MemoryReleased {
        cap_percent: Option<u8>,
    },
    /// The partition's memory rose past its high-water mark: its `mem_grow` calls are
    /// slowed until it falls back under it.
    MemoryHigh {
        used_bytes: u64,
        high_bytes: u64,
        quota_bytes: u64,
    },
}

/// The last [`EVENTS_KEPT`] events, oldest first.
pub struct EventLog {
    events: VecDeque<Event>,
    next_seq: u64,
}

impl EventLog {
    pub fn new() -> EventLog {
        EventLog {
            events: VecDeque::new(),
            next_seq: 1,
        }
    }

    /// Events after sequence number `since`, oldest first.
    pub fn since(&self, since: u64) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(move |e| e.seq > since)
    }

    /// Records an event of partition `p` (and its agent in `slot`) and logs it.
    pub fn record(&mut self, p: &Partition, slot: Option<usize>, kind: EventKind) {
        let agent = slot.map(|s| p.agents[s].image.name.clone());
        let who = match &agent {
            Some(a) => format!("{}/{}", p.name, a),
            None => p.name.clone(),
        };
        log_event(&who, &kind);
        let e = Event {
            seq: self.next_seq,
            time_ns: clock::now_ns(),
            partition: p.name.clone(),
            agent,
            kind,
        };
        self.next_seq += 1;
        if self.events.len() == EVENTS_KEPT {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }
}

fn log_event(who: &str, kind: &EventKind) {
    match kind {
        EventKind::AgentFaulted {
            vector,
            name,
            rip,
            address,
            error_code,
        } => {
            let at = address
                .map(|a| format!(" address={a:#x}"))
                .unwrap_or_default();
            warn!(
                "agent {who}: FAULT {name} (vector {vector}) rip={rip:#x} error={error_code:#x}{at}; terminated"
            );
        }
        EventKind::AgentExited { code } => info!("agent {who}: exited with code {code}"),
        EventKind::AgentHung {
            silent_ms,
            timeout_ms,
            heartbeats,
        } => warn!(
            "agent {who}: HUNG: no heartbeat for {silent_ms} ms (watchdog {timeout_ms} ms, {heartbeats} heartbeats in all); terminated"
        ),
        EventKind::AgentStarted { task } => info!("agent {who}: started (task {task})"),
        EventKind::AgentFailedToStart { error } => warn!("agent {who}: not started: {error}"),
        EventKind::RestartScheduled { attempt, delay_ms } => {
            info!("agent {who}: restart {attempt} in {delay_ms} ms")
        }
        EventKind::Quarantined {
            restarts,
            window_secs,
        } => warn!("agent {who}: QUARANTINED after {restarts} restarts within {window_secs} s"),
        EventKind::Alert { reason } => warn!("ALERT {who}: {reason}"),
        EventKind::PartitionCreated => {}
        EventKind::CpuThrottled {
            cap_percent,
            busy_percent,
        } => warn!(
            "partition {who}: CPU capped at {cap_percent}% (agents {busy_percent}% busy, a protected partition among them)"
        ),
        EventKind::CpuReleased {
            cap_percent: Some(c),
        } => info!("partition {who}: CPU cap loosened to {c}% (no protected partition busy)"),
        EventKind::MemoryHigh {
            used_bytes,
            high_bytes,
            quota_bytes,
        } => warn!(
            "partition {who}: memory above its high-water mark: {} KiB used, mark {} KiB, quota {} KiB; mem_grow slowed",
            used_bytes / 1024,
            high_bytes / 1024,
            quota_bytes / 1024
        ),
        EventKind::CpuReleased { cap_percent: None } => {
            info!("partition {who}: CPU cap lifted (no protected partition busy)")
        }
        EventKind::DiskThrottled {
            cap_percent,
            busy_percent,
            iops,
            bytes_per_sec,
        } => warn!(
            "partition {who}: disk budgeted at {cap_percent}%: {iops} IOPS, {bytes_per_sec} bytes/s (disk {busy_percent}% busy, a protected partition at work)"
        ),
        EventKind::DiskReleased {
            cap_percent: Some(c),
        } => {
            info!("partition {who}: disk budget loosened to {c}% (no protected partition at work)")
        }
        EventKind::DiskReleased { cap_percent: None } => {
            info!("partition {who}: disk budget lifted (no protected partition at work)")
        }
        EventKind::MemoryThrottled {
            cap_percent,
            used_percent,
            mark_bytes,
        } => warn!(
            "partition {who}: memory marked at {cap_percent}% of its quota, {} KiB (machine memory {used_percent}% used, a protected partition at work)",
            mark_bytes / 1024
        ),
        EventKind::MemoryReleased {
            cap_percent: Some(c),
        } => {
            info!("partition {who}: memory mark loosened to {c}% (no protected partition at work)")
        }
        EventKind::MemoryReleased { cap_percent: None } => {
            info!("partition {who}: memory mark lifted (no protected partition at work)")
        }
    }
}
