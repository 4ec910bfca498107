//! What a partition is: its data disk, state, agents (their images and slots) and the
//! running tasks, as plain data.
//!
//! Owns the types and the small facts derived from them (quota in frames). It must not
//! change anything: starting, ending and restarting is `lifecycle`'s, the run loop is
//! `run`'s; nor name states for the API (`mgmt` maps them to `plinth-control`'s views).

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use plinth_abi::PAGE_SIZE;
use plinth_elf::Executable;
use plinth_iogate::Gate;
use plinth_policy::policies::Restart;
use plinth_sched::Share;

use crate::arch::paging::AddressSpace;
use crate::arch::user::UserContext;
use crate::block::Ticket;

/// Identifies one run of one agent (a restart is a new task).
pub type TaskId = u32;

/// A partition's data disk: an extent of a runtime disk.
#[derive(Clone, Copy, Debug)]
pub struct DataDisk {
    pub disk: usize,
    pub first_lba: u64,
    pub sectors: u64,
}

/// A partition's NIC: a port of the switch.
#[derive(Clone, Copy, Debug)]
pub struct PartNic {
    /// The number agents use in NIC calls.
    pub index: u8,
    pub mac: [u8; 6],
    pub port: plinth_bridge::PortId,
    /// Its VLAN (`plinth_bridge::NATIVE`: untagged).
    pub vlan: u16,
}

/// A partition's network limits, applied to each NIC's transmit and receive buckets:
/// `(rate per second, burst)`; `None`: not limited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetLimits {
    pub bytes: Option<(u64, u64)>,
    pub packets: Option<(u64, u64)>,
}

/// Where a partition is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionState {
    Running,
    Stopped,
}

/// An agent's executable and files, shared by every partition that runs it.
pub struct AgentImage {
    pub name: String,
    pub version: String,
    pub executable: Executable,
    /// The container's files by name, served by `ConfigRead`; the executable among them.
    pub files: Vec<(String, Vec<u8>)>,
    pub entry: String,
    /// The footprint its manifest predicts, shown beside the profiler's measurements.
    pub resources: plinth_container::Resources,
}

impl AgentImage {
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.file_named(name.as_bytes())
    }

    /// The file whose name is exactly these bytes.
    pub fn file_named(&self, name: &[u8]) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, d)| d.as_slice())
    }
}

/// What an agent slot is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentStatus {
    /// Has a task (running, runnable or sleeping).
    Running(TaskId),
    /// Waiting for its restart at `at_ns`.
    Backoff { at_ns: u64 },
    /// Ended and not restarted (exit code, or None after a fault).
    Ended(Option<i32>),
    /// Failed too often; not started again until released.
    Quarantined,
    /// Stopped with its partition.
    Stopped,
}

/// What the troubleshooting policy says of an agent: when to restart it, and how long it
/// may go without a heartbeat (the watchdog) before it counts as hung.
#[derive(Clone, Copy, Debug)]
pub struct Troubleshooting {
    pub restart: Restart,
    pub heartbeat_timeout_ms: Option<u32>,
}

/// One agent placed in a partition, across its restarts.
pub struct AgentSlot {
    pub image: Arc<AgentImage>,
    pub status: AgentStatus,
    pub restart: Restart,
    /// The watchdog's interval, if the policy watches this agent.
    pub heartbeat_timeout_ms: Option<u32>,
    /// When the current run started (ns since boot): the watchdog counts from here until
    /// the first heartbeat.
    pub started_ns: u64,
    /// When a live policy change last set the watchdog's interval: silence before it
    /// does not count against the new rule.
    pub watch_from_ns: u64,
    /// Time since its last heartbeat that the runtime itself held it (a disk request
    /// waiting for its budget, a memory penalty): not silence of its own, so the
    /// watchdog does not count it. `held_since`: a hold going on now.
    pub held_ns: u64,
    pub held_since: Option<u64>,
    /// Restart times within the policy window, oldest first.
    pub restart_times: VecDeque<u64>,
    pub restarts: u32,
    pub heartbeats: u64,
    pub last_heartbeat_ns: Option<u64>,
    pub share: Share,
    /// Its disk requests, across its runs.
    pub disk_usage: DiskUsage,
    /// What its ended runs used: CPU time and system calls (the current run's are its
    /// task's and the scheduler's).
    pub ended: RunTotals,
    /// The profiler's last minute.
    pub profile: AgentProfile,
}

/// System calls counted by kind: one per `plinth_abi::Call`, and the unknown numbers.
pub const CALL_KINDS: usize = plinth_abi::Call::ALL.len() + 1;

/// CPU time and system calls of an agent's runs.
#[derive(Clone, Debug)]
pub struct RunTotals {
    pub cpu_ns: u64,
    pub syscalls: u64,
    pub by_kind: [u64; CALL_KINDS],
}

impl Default for RunTotals {
    fn default() -> RunTotals {
        RunTotals {
            cpu_ns: 0,
            syscalls: 0,
            by_kind: [0; CALL_KINDS],
        }
    }
}

/// What an agent or a partition used, sampled each second over the last minute.
#[derive(Clone, Debug, Default)]
pub struct UseProfile {
    pub cpu_ns: plinth_profile::Counter,
    pub syscalls: plinth_profile::Counter,
    pub disk_ops: plinth_profile::Counter,
    pub disk_bytes: plinth_profile::Counter,
    pub memory: plinth_profile::Gauge,
}

impl UseProfile {
    /// One sample of these totals, `elapsed_ns` after the last.
    pub fn sample(
        &mut self,
        cpu_ns: u64,
        syscalls: u64,
        disk: &DiskUsage,
        memory: u64,
        elapsed_ns: u64,
    ) {
        self.cpu_ns.sample_over(cpu_ns, elapsed_ns);
        self.syscalls.sample_over(syscalls, elapsed_ns);
        self.disk_ops
            .sample_over(disk.reads + disk.writes, elapsed_ns);
        self.disk_bytes
            .sample_over(disk.read_bytes + disk.written_bytes, elapsed_ns);
        self.memory.sample(memory);
    }
}

/// An agent's profile.
#[derive(Clone, Debug, Default)]
pub struct AgentProfile {
    pub used: UseProfile,
    /// The most memory a run of it has had, bytes.
    pub peak_memory: u64,
}

/// A partition's profile: its agents together, its memory and its NICs.
#[derive(Clone, Debug, Default)]
pub struct PartitionProfile {
    pub used: UseProfile,
    pub net_packets: plinth_profile::Counter,
    pub net_bytes: plinth_profile::Counter,
}

impl AgentSlot {
    /// A slot for `image`, stopped, with no history.
    pub fn new(image: Arc<AgentImage>, care: Troubleshooting, share: Share) -> AgentSlot {
        AgentSlot {
            image,
            status: AgentStatus::Stopped,
            restart: care.restart,
            heartbeat_timeout_ms: care.heartbeat_timeout_ms,
            started_ns: 0,
            watch_from_ns: 0,
            held_ns: 0,
            held_since: None,
            restart_times: VecDeque::new(),
            restarts: 0,
            heartbeats: 0,
            last_heartbeat_ns: None,
            share,
            disk_usage: DiskUsage::default(),
            ended: RunTotals::default(),
            profile: AgentProfile::default(),
        }
    }
}

/// A partition.
pub struct Partition {
    pub id: u32,
    pub name: String,
    pub tenant: Option<String>,
    pub labels: Vec<String>,
    pub memory_quota: u64,
    /// Frames charged now: page tables and pages of every agent.
    pub frames: u64,
    pub peak_frames: u64,
    /// The high-water mark (`[limit.memory] high_mib`), bytes: above it `mem_grow` is
    /// slowed (`plinth_governor::memory`).
    pub memory_high: Option<u64>,
    /// The mark contention protection puts on it while a protected partition is
    /// contended for memory, bytes (`governor`); the tighter of the two marks holds.
    pub contention_mark: Option<u64>,
    /// Whether the last `mem_grow` left it above the mark (the event is raised once per
    /// crossing).
    pub above_high: bool,
    pub disk: Option<DataDisk>,
    pub state: PartitionState,
    pub agents: Vec<AgentSlot>,
    /// Its NICs, by index.
    pub nics: Vec<PartNic>,
    pub net_limits: NetLimits,
    /// The disk governor: its agents' and its own IOPS and bytes/s budgets, and the
    /// requests waiting for them (see `disk`).
    pub disk_gate: DiskGate,
    /// The partition's own disk budget, as the policy or the last resize set it.
    pub disk_budget: plinth_iogate::Budget,
    /// The budget contention protection puts on it while a protected partition is
    /// contended for the disk (`governor`); the gate holds it to the tighter of the two.
    pub contention_budget: plinth_iogate::Budget,
    /// Its disk requests, across its agents' runs.
    pub disk_usage: DiskUsage,
    /// The profiler's last minute.
    pub profile: PartitionProfile,
    /// What its disk gate cost the calls that passed through it.
    pub gate_cost: GateCost,
    /// Usage metering's own state (see `meter`).
    pub meter: Meter,
}

/// What metering keeps beside the counters the partition has anyway.
#[derive(Clone, Copy, Debug, Default)]
pub struct Meter {
    /// Charged memory integrated over time, byte-nanoseconds, up to `memory_at_ns`.
    pub memory_byte_ns: u128,
    pub memory_at_ns: u64,
    /// What NICs since detached received and sent, bytes, and their frames both ways.
    pub net_gone: (u64, u64),
    pub net_gone_frames: u64,
    /// What the runtime's previous runs metered for it (from the journal).
    pub carried: plinth_journal::usage::Usage,
}

/// Calls that went through a partition's disk gate, and the time spent in it, ns.
#[derive(Clone, Copy, Debug, Default)]
pub struct GateCost {
    pub calls: u64,
    pub ns: u64,
}

impl Partition {
    /// A partition named `name` with a quota of `memory_quota` bytes: nothing charged,
    /// no tenant, labels, disk, agents or NICs yet, no limits (the policy's are applied
    /// by `policy`), and its governors', profiler's and meter's state fresh from `now_ns`.
    pub fn new(
        id: u32,
        name: String,
        memory_quota: u64,
        state: PartitionState,
        now_ns: u64,
    ) -> Partition {
        Partition {
            id,
            name,
            tenant: None,
            labels: Vec::new(),
            memory_quota,
            frames: 0,
            peak_frames: 0,
            memory_high: None,
            contention_mark: None,
            above_high: false,
            disk: None,
            state,
            agents: Vec::new(),
            nics: Vec::new(),
            net_limits: NetLimits::default(),
            disk_gate: DiskGate::new(),
            disk_budget: plinth_iogate::Budget::UNLIMITED,
            contention_budget: plinth_iogate::Budget::UNLIMITED,
            disk_usage: DiskUsage::default(),
            profile: PartitionProfile::default(),
            gate_cost: GateCost::default(),
            meter: Meter {
                memory_at_ns: now_ns,
                ..Meter::default()
            },
        }
    }

    pub fn quota_frames(&self) -> u64 {
        self.memory_quota / PAGE_SIZE
    }

    /// The memory mark in force, bytes: the tighter of its own and contention
    /// protection's.
    pub fn memory_mark(&self) -> Option<u64> {
        match (self.memory_high, self.contention_mark) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The disk budget its gate holds it to: the tighter of its own and contention
    /// protection's, rate by rate.
    pub fn disk_budget_in_force(&self) -> plinth_iogate::Budget {
        let tighter = |a: Option<(u64, u64)>, b: Option<(u64, u64)>| match (a, b) {
            (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.min(b.1))),
            (a, b) => a.or(b),
        };
        plinth_iogate::Budget {
            bytes: tighter(self.disk_budget.bytes, self.contention_budget.bytes),
            ops: tighter(self.disk_budget.ops, self.contention_budget.ops),
        }
    }
}

/// A running agent: its registers, address space and where its heap ends.
pub struct Task {
    pub id: TaskId,
    /// Index of its partition in the runtime's table, and of its agent slot there.
    pub partition: usize,
    pub slot: usize,
    pub ctx: Box<UserContext>,
    pub space: AddressSpace,
    pub heap_next: u64,
    pub syscalls: u64,
    /// Its system calls by kind (`CALL_KINDS`: the last is unknown numbers).
    pub by_kind: [u64; CALL_KINDS],
    /// Frames charged for it: its image, stack, heap and page tables.
    pub frames: u64,
    /// A disk request the task waits for (it is blocked in the scheduler meanwhile).
    pub io: Option<PendingIo>,
    /// NICs the task waits on (`NetWait`: receive mask, send mask), sleeping until they
    /// are ready or its timeout.
    pub net_wait: Option<(u64, u64)>,
}

/// A disk request in flight for a task; its result goes to the task's `rax` (and, for a
/// read, into its buffer) when it completes.
pub struct PendingIo {
    pub ticket: Ticket,
    /// Where a read's data goes in the agent's memory (checked writable at submission).
    pub read_into: Option<u64>,
    /// What `rax` says on success.
    pub result: u64,
}

/// A partition's gate: requests keyed by their agent's slot.
pub type DiskGate = Gate<usize, DiskRequest>;

/// A checked disk request, ready for the block layer.
pub struct DiskRequest {
    /// The extent it was checked against (a detach or another attach since refuses it).
    pub extent: DataDisk,
    /// The sector on the runtime's disk.
    pub lba: u64,
    /// A write's data, copied from the agent at the call.
    pub data: Option<Vec<u8>>,
    /// A read's length and where its data goes in the agent's memory (checked writable).
    pub read: Option<(usize, u64)>,
    /// What `rax` says on success.
    pub result: u64,
}

impl DiskRequest {
    pub fn bytes(&self) -> u64 {
        match (&self.data, self.read) {
            (Some(d), _) => d.len() as u64,
            (None, Some((len, _))) => len as u64,
            (None, None) => 0,
        }
    }
}

/// Disk requests of a partition or an agent since it was created: what reached the disk
/// and how much of it the governor held back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    pub reads: u64,
    pub read_bytes: u64,
    pub writes: u64,
    pub written_bytes: u64,
    /// Requests that had to wait for a budget.
    pub throttled: u64,
    /// Their waits, summed, ns.
    pub throttled_ns: u64,
}

impl DiskUsage {
    /// Adds another's counts.
    pub fn add(&mut self, o: &DiskUsage) {
        self.reads += o.reads;
        self.read_bytes += o.read_bytes;
        self.writes += o.writes;
        self.written_bytes += o.written_bytes;
        self.throttled += o.throttled;
        self.throttled_ns += o.throttled_ns;
    }

    pub fn count(&mut self, req: &DiskRequest, waited_ns: u64) {
        if req.data.is_some() {
            self.writes += 1;
            self.written_bytes += req.bytes();
        } else {
            self.reads += 1;
            self.read_bytes += req.bytes();
        }
        if waited_ns > 0 {
            self.throttled += 1;
            self.throttled_ns += waited_ns;
        }
    }
}
