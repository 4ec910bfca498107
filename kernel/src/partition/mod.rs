//! Partitions and the agents inside them: the model, loading, running and failure.
//!
//! A partition is a hard boundary: its own address space per agent (the kernel mapped
//! supervisor-only), a memory quota every frame it uses is charged to, a CPU share and
//! cap enforced by `plinth-sched` on measured TSC time, and its extent of the appliance
//! disk. Agents run in ring 3 from static ELF executables out of their container; they
//! reach the runtime only through system calls (`crate::syscall`). A fault ends the agent,
//! never the runtime; the troubleshooting policy decides on restart, with backoff, and on
//! quarantine. Everything that happens is an [`Event`].
//!
//! Owns the partition table, the scheduler instance and the run loop's slice. It must not
//! decode system calls (`syscall`), touch page tables or registers other than through
//! `arch::paging::AddressSpace` and `arch::user::UserContext`, or judge policy files
//! (`plinth-policy` did, before anything got here).

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use log::{info, warn};
use plinth_abi::{IMAGE_BASE, IMAGE_END, PAGE_SIZE, STACK_SIZE, STACK_TOP};
use plinth_catalog::Catalog;
use plinth_elf::{Executable, Limits, Window};
use plinth_policy::policies::{PolicySet, Restart, Target};
use plinth_sched::{Cap, Decision, Scheduler, Share};
use spin::Mutex;

use crate::arch::cpu;
use crate::arch::paging::{AddressSpace, PagingError, UserPerms};
use crate::arch::user::{SYSCALL_VECTOR, UserContext};
use crate::syscall::{self, Outcome};
use crate::{clock, memory, trap};

pub mod api;
pub mod control;

/// Longest slice the scheduler grants at once; the timer tick preempts at 10 ms anyway.
const SLICE_NS: u64 = 10_000_000;
/// Period of CPU caps (`cpu.max`'s default period).
const CAP_PERIOD_NS: u64 = 100_000_000;
/// Events kept for the API; older ones are dropped (their sequence numbers stay unique).
const EVENTS_KEPT: usize = 512;
const MIB: u64 = 1 << 20;

/// Identifies one run of one agent (a restart is a new task).
pub type TaskId = u32;

/// A partition's data disk: an extent of a runtime disk.
#[derive(Clone, Copy, Debug)]
pub struct DataDisk {
    pub disk: usize,
    pub first_lba: u64,
    pub sectors: u64,
}

/// Where a partition is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionState {
    Running,
    Stopped,
}

impl PartitionState {
    pub fn name(self) -> &'static str {
        match self {
            PartitionState::Running => "running",
            PartitionState::Stopped => "stopped",
        }
    }
}

/// An agent's executable and files, shared by every partition that runs it.
pub struct AgentImage {
    pub name: String,
    pub version: String,
    pub executable: Executable,
    /// The container's files by name, served by `ConfigRead`; the executable among them.
    pub files: Vec<(String, Vec<u8>)>,
    pub entry: String,
}

impl AgentImage {
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
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

impl AgentStatus {
    pub fn name(self) -> &'static str {
        match self {
            AgentStatus::Running(_) => "running",
            AgentStatus::Backoff { .. } => "backoff",
            AgentStatus::Ended(_) => "ended",
            AgentStatus::Quarantined => "quarantined",
            AgentStatus::Stopped => "stopped",
        }
    }
}

/// One agent placed in a partition, across its restarts.
pub struct AgentSlot {
    pub image: Arc<AgentImage>,
    pub status: AgentStatus,
    pub restart: Restart,
    /// Restart times within the policy window, oldest first.
    pub restart_times: VecDeque<u64>,
    pub restarts: u32,
    pub heartbeats: u64,
    pub last_heartbeat_ns: Option<u64>,
    pub share: Share,
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
    pub disk: Option<DataDisk>,
    pub state: PartitionState,
    pub agents: Vec<AgentSlot>,
}

impl Partition {
    pub fn quota_frames(&self) -> u64 {
        self.memory_quota / PAGE_SIZE
    }
}

/// A running agent: its registers, address space and where its heap ends.
pub struct Task {
    pub id: TaskId,
    pub partition: usize,
    pub slot: usize,
    pub ctx: Box<UserContext>,
    pub space: AddressSpace,
    pub heap_next: u64,
    pub syscalls: u64,
    /// A disk request the task waits for (it is blocked in the scheduler meanwhile).
    pub io: Option<PendingIo>,
}

/// A disk request in flight for a task; its result goes to the task's `rax` (and, for a
/// read, into its buffer) when it completes.
pub struct PendingIo {
    pub ticket: crate::block::Ticket,
    /// Where a read's data goes in the agent's memory (checked writable at submission).
    pub read_into: Option<u64>,
    /// What `rax` says on success.
    pub result: u64,
}

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
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::PartitionCreated => "partition_created",
            EventKind::AgentStarted { .. } => "agent_started",
            EventKind::AgentFailedToStart { .. } => "agent_failed_to_start",
            EventKind::AgentExited { .. } => "agent_exited",
            EventKind::AgentFaulted { .. } => "agent_faulted",
            EventKind::RestartScheduled { .. } => "restart_scheduled",
            EventKind::Quarantined { .. } => "quarantined",
            EventKind::Alert { .. } => "alert",
        }
    }
}

/// Every partition, task and event.
pub struct Runtime {
    pub partitions: Vec<Partition>,
    pub tasks: Vec<Task>,
    pub sched: Scheduler<TaskId>,
    pub events: VecDeque<Event>,
    next_seq: u64,
    next_task: TaskId,
    next_partition: u32,
    /// Time spent in agents (ring 3 plus their system calls), ns.
    pub busy_ns: u64,
    /// The catalog's runnable agents.
    pub images: Vec<Arc<AgentImage>>,
    /// The appliance disk's data extents (GPT name, first LBA, sectors) and its index.
    pub extents: Vec<(String, u64, u64)>,
    pub appliance_disk: Option<usize>,
    /// The catalog's policies: restart rules and CPU limits for agents placed later.
    pub policies: PolicySet,
}

pub static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

impl Runtime {
    fn new(policies: PolicySet) -> Runtime {
        Runtime {
            images: Vec::new(),
            extents: Vec::new(),
            appliance_disk: None,
            policies,
            partitions: Vec::new(),
            tasks: Vec::new(),
            sched: Scheduler::new(SLICE_NS),
            events: VecDeque::new(),
            next_seq: 1,
            next_task: 1,
            next_partition: 1,
            busy_ns: 0,
        }
    }

    /// Records an event and logs it.
    pub fn event(&mut self, partition: usize, slot: Option<usize>, kind: EventKind) {
        let p = &self.partitions[partition];
        let agent = slot.map(|s| p.agents[s].image.name.clone());
        let who = match &agent {
            Some(a) => format!("{}/{}", p.name, a),
            None => p.name.clone(),
        };
        match &kind {
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
        }
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

    /// Starts (or restarts) the agent in `slot` of partition `pi`: a fresh address space
    /// with the executable and a stack, charged to the partition.
    pub fn start_agent(&mut self, pi: usize, slot: usize) {
        let image = self.partitions[pi].agents[slot].image.clone();
        match self.load(pi, &image) {
            Ok((space, entry)) => {
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
                    io: None,
                });
                self.partitions[pi].agents[slot].status = AgentStatus::Running(id);
                self.event(pi, Some(slot), EventKind::AgentStarted { task: id });
            }
            Err(error) => {
                self.partitions[pi].agents[slot].status = AgentStatus::Ended(None);
                self.event(pi, Some(slot), EventKind::AgentFailedToStart { error });
            }
        }
    }

    fn load(&mut self, pi: usize, image: &AgentImage) -> Result<(AddressSpace, u64), String> {
        let part = &mut self.partitions[pi];
        let mut alloc = charged_alloc(part);
        let mut space = AddressSpace::new(&mut alloc).map_err(|e| start_error(&e))?;
        let result = (|| {
            let mut map = |pages: core::ops::Range<u64>, perms| {
                pages
                    .step_by(PAGE_SIZE as usize)
                    .try_for_each(|page| space.map_new(page, perms, &mut alloc).map(drop))
                    .map_err(|e| start_error(&e))
            };
            for seg in &image.executable.segments {
                let perms = UserPerms {
                    write: seg.perms.write,
                    execute: seg.perms.execute,
                };
                map(seg.pages(), perms)?;
            }
            let stack = UserPerms {
                write: true,
                execute: false,
            };
            map(STACK_TOP - STACK_SIZE..STACK_TOP, stack)?;
            let exe = image.file(&image.entry).unwrap_or_default();
            for seg in &image.executable.segments {
                space
                    .write(seg.vaddr, seg.file_bytes(exe), true)
                    .map_err(|e| format!("loading the executable: {e:?}"))?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => Ok((space, image.executable.entry)),
            Err(e) => {
                drop(alloc);
                let freed = space.release(&mut memory::free_frame_addr);
                part.frames -= freed as u64;
                Err(e)
            }
        }
    }

    /// Ends task `ti`: returns its frames, removes it from the scheduler, records the
    /// exit or fault and applies the restart policy.
    fn end_task(&mut self, ti: usize, how: Ending) {
        let task = self.tasks.swap_remove(ti);
        self.sched.remove(task.id);
        if let Some(io) = task.io {
            crate::block::abandon(io.ticket);
        }
        let freed = task.space.release(&mut memory::free_frame_addr);
        let (pi, si) = (task.partition, task.slot);
        self.partitions[pi].frames -= freed as u64;
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
            Ending::Fault(kind) => {
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

    /// Starts agents whose backoff has passed.
    fn restart_due(&mut self, now: u64) {
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

    fn task_index(&self, id: TaskId) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }
}

enum Ending {
    Exit(i32),
    Fault(EventKind),
    Stop,
}

fn start_error(e: &PagingError) -> String {
    match e {
        PagingError::OutOfFrames => String::from("memory quota exceeded while loading"),
        other => format!("mapping the image: {other:?}"),
    }
}

/// A frame allocator that charges `part` and refuses past its quota.
pub fn charged_alloc(part: &mut Partition) -> impl FnMut() -> Option<u64> + '_ {
    move || {
        if part.frames >= part.quota_frames() {
            return None;
        }
        let f = memory::alloc_frame_addr()?;
        part.frames += 1;
        part.peak_frames = part.peak_frames.max(part.frames);
        Some(f)
    }
}

/// No catalog: partitions can still be created through the API, with no agents to
/// place in them.
pub fn boot_empty() {
    *RUNTIME.lock() = Some(Runtime::new(PolicySet::default()));
}

/// Creates the catalog's partitions and starts the agents its deployments place in them.
pub fn boot(catalog: &Catalog, disk: usize, extents: &[(String, u64, u64)]) {
    let mut rt = Runtime::new(catalog.policies.clone());
    rt.extents = extents.to_vec();
    rt.appliance_disk = Some(disk);
    let policies = &catalog.policies;
    let mut images: Vec<Arc<AgentImage>> = Vec::new();
    for a in &catalog.agents {
        let name = a.manifest.name.clone();
        let version = format!("{}", a.manifest.version);
        let exe = a.file(&a.manifest.entry).unwrap_or_default();
        match Executable::parse(
            exe,
            Window {
                start: IMAGE_BASE,
                end: IMAGE_END,
            },
            Limits::AGENT,
        ) {
            Ok(executable) => images.push(Arc::new(AgentImage {
                name,
                version,
                executable,
                files: a.files.clone(),
                entry: a.manifest.entry.clone(),
            })),
            Err(e) => warn!(
                "agent {name} {version}: {} is not runnable: {e}",
                a.manifest.entry
            ),
        }
    }
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
        let id = rt.next_partition;
        rt.next_partition += 1;
        let mut part = Partition {
            id,
            name: name.clone(),
            tenant,
            labels: def.labels.clone(),
            memory_quota: def.memory_mib * MIB,
            frames: 0,
            peak_frames: 0,
            disk,
            state: PartitionState::Running,
            agents: Vec::new(),
        };
        for d in &policies.deployments {
            if !d.partitions.contains(&name) {
                continue;
            }
            let version = format!("{}", d.version);
            let Some(image) = images
                .iter()
                .find(|i| i.name == d.agent && i.version == version)
            else {
                continue;
            };
            part.agents.push(AgentSlot {
                image: image.clone(),
                status: AgentStatus::Stopped,
                restart: restart_for(policies, &d.agent, &name),
                restart_times: VecDeque::new(),
                restarts: 0,
                heartbeats: 0,
                last_heartbeat_ns: None,
                share: share_for(policies, &d.agent, &name),
            });
        }
        rt.partitions.push(part);
        let pi = rt.partitions.len() - 1;
        rt.event(pi, None, EventKind::PartitionCreated);
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

/// The agent's own rule first, then its partition's; none means never restart.
fn restart_for(p: &PolicySet, agent: &str, partition: &str) -> Restart {
    let find = |t: &dyn Fn(&Target) -> bool| {
        p.restart_rules
            .iter()
            .find(|r| t(&r.target))
            .map(|r| r.restart)
    };
    find(&|t| matches!(t, Target::Agent(a) if a == agent))
        .or_else(|| find(&|t| matches!(t, Target::Partition(n) if n == partition)))
        .unwrap_or(Restart::Never)
}

/// CPU weight and cap: the agent's limit, else its partition's, else weight 100, no cap.
fn share_for(p: &PolicySet, agent: &str, partition: &str) -> Share {
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

/// What [`run`] did.
pub enum Ran {
    /// Agents ran until an interrupt; call again after serving the runtime's own duties.
    Agent,
    /// Nothing to run before the next interrupt (the timer tick wakes sleepers).
    Idle,
}

/// Why a slice ended.
enum SliceEnd {
    /// A timer or device interrupt: the runtime's duties come first.
    Interrupt,
    /// The agent yielded, slept or ended: pick the next one at once.
    Switch,
}

/// Runs agents, switching between them directly as they yield, sleep or end, until an
/// interrupt (the tick or a device) gives the runtime its turn or nothing is runnable.
/// Each slice's time is charged as measured by the TSC.
pub fn run() -> Ran {
    let mut guard = RUNTIME.lock();
    let Some(rt) = guard.as_mut() else {
        return Ran::Idle;
    };
    let mut ran_any = false;
    loop {
        let now = clock::now_ns();
        rt.restart_due(now);
        rt.complete_io(now);
        let (id, slice_ns) = match rt.sched.pick(now) {
            Decision::Run { id, slice_ns } => (id, slice_ns),
            Decision::Idle { .. } => {
                return if ran_any { Ran::Agent } else { Ran::Idle };
            }
        };
        ran_any = true;
        let Some(ti) = rt.task_index(id) else {
            rt.sched.remove(id);
            continue;
        };
        if let SliceEnd::Interrupt = rt.slice(ti, now.saturating_add(slice_ns)) {
            return Ran::Agent;
        }
    }
}

impl Runtime {
    /// Hands finished disk requests to the tasks waiting for them and wakes them.
    fn complete_io(&mut self, now: u64) {
        for t in &mut self.tasks {
            let Some(io) = t.io.as_ref() else { continue };
            let Some(outcome) = crate::block::poll(&io.ticket) else {
                continue;
            };
            let rax = match outcome {
                Ok(buf) => match io.read_into {
                    // Checked at submission, and the agent could not unmap it since: it
                    // was blocked. A failure here would still be an error, not a fault.
                    Some(va) => match t.space.write(va, &buf, false) {
                        Ok(()) => io.result,
                        Err(_) => plinth_abi::Error::BadPointer.code(),
                    },
                    None => io.result,
                },
                Err(_) => plinth_abi::Error::Io.code(),
            };
            t.ctx.frame.rax = rax;
            t.io = None;
            self.sched.wake(t.id, now);
        }
    }

    /// Runs task `ti` until `deadline_ns` (checked at interrupts: between them only the
    /// agent's own code and its system calls run, and the tick interrupts those), a
    /// yield, sleep, exit or fault.
    fn slice(&mut self, ti: usize, deadline_ns: u64) -> SliceEnd {
        // The space stays live after the slice: slot 0 maps the kernel in every space,
        // and each CR3 write costs a full TLB flush (under TCG, too).
        self.tasks[ti].space.activate();
        let id = self.tasks[ti].id;
        let start = cpu::rdtsc();
        let (ending, end) = loop {
            let task = &mut self.tasks[ti];
            if let Err(e) = task.ctx.run() {
                let crate::arch::user::EnterError::BadRip(rip) = e;
                break (
                    Some(Ending::Fault(EventKind::AgentFaulted {
                        vector: 13,
                        name: "bad instruction pointer",
                        rip,
                        address: None,
                        error_code: 0,
                    })),
                    SliceEnd::Switch,
                );
            }
            let vector = task.ctx.frame.vector;
            if vector == SYSCALL_VECTOR {
                task.syscalls += 1;
                match syscall::dispatch(self, ti) {
                    Outcome::Continue => continue,
                    Outcome::Reschedule => break (None, SliceEnd::Switch),
                    Outcome::Exit(code) => break (Some(Ending::Exit(code)), SliceEnd::Switch),
                }
            } else if vector < 32 {
                let cr2 = cpu::cr2();
                let f = &task.ctx.frame;
                let (_, name) = trap::exception_name(vector);
                break (
                    Some(Ending::Fault(EventKind::AgentFaulted {
                        vector,
                        name,
                        rip: f.rip,
                        address: (vector == 14).then_some(cr2),
                        error_code: f.error_code,
                    })),
                    SliceEnd::Switch,
                );
            } else {
                // A device or timer interrupt: the runtime's business. The slice goes on
                // unless its time is up or a device needs service.
                trap::handle(&mut task.ctx.frame);
                if crate::devices::interrupt_pending() || clock::now_ns() >= deadline_ns {
                    break (None, SliceEnd::Interrupt);
                }
            }
        };
        let ran = clock::tsc_delta_ns(cpu::rdtsc().wrapping_sub(start));
        self.tasks[ti].syscalls += syscall::take_fast_calls();
        self.busy_ns += ran;
        self.sched.charge(id, ran, clock::now_ns());
        if let Some(how) = ending {
            self.end_task(ti, how);
        }
        end
    }
}
