//! Partitions and the agents inside them.
//!
//! A partition is a hard boundary: its own address space per agent (the kernel mapped
//! supervisor-only), a memory quota every frame it uses is charged to, a CPU share and
//! cap enforced by `plinth-sched` on measured TSC time, and its extent of the appliance
//! disk. Agents run in ring 3 from static ELF executables out of their container; they
//! reach the runtime only through system calls (`syscall`). A fault ends the agent,
//! never the runtime; the troubleshooting policy decides on restart, with backoff, and on
//! quarantine. Everything that happens is an event (`events`).
//!
//! One concept per submodule: `model` (the types), `events`, `loader` (images into
//! address spaces), `lifecycle` (start, end, restart policy, boot), `run` (the run loop's
//! slice), `syscall` (the door from ring 3), `control` (the command set applied). This
//! file holds the table they share, [`Runtime`], behind one lock.
//!
//! It must not touch page tables or registers other than through
//! `arch::paging::AddressSpace` and `arch::user::UserContext`, or judge policy files
//! (`plinth-policy` did, before anything got here). Nothing below it calls into it: the
//! management plane (`crate::mgmt`) and the idle loop call down into it.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use plinth_policy::policies::{PolicySet, VlanLedger};
use plinth_sched::Scheduler;
use spin::Mutex;

pub mod control;
pub mod disk;
pub mod events;
pub mod governor;
pub mod lifecycle;
pub mod loader;
pub mod meter;
pub mod model;
pub mod nics;
pub mod policy;
pub mod profile;
pub mod run;
pub mod syscall;

pub use events::{EventKind, EventLog};
pub use lifecycle::{boot, boot_empty};
pub use meter::{restore_usage, save_usage};
pub use model::{AgentImage, AgentSlot, AgentStatus, Partition, Task, TaskId};
pub use run::{Ran, run};

/// Longest slice the scheduler grants at once; the timer tick preempts at 10 ms anyway.
const SLICE_NS: u64 = 10_000_000;
/// Period of CPU caps (`cpu.max`'s default period).
const CAP_PERIOD_NS: u64 = 100_000_000;
const MIB: u64 = 1 << 20;

/// Every partition, task and event.
pub struct Runtime {
    pub partitions: Vec<Partition>,
    pub tasks: Vec<Task>,
    pub sched: Scheduler<TaskId>,
    pub events: EventLog,
    next_task: TaskId,
    next_partition: u32,
    /// Time spent in agents (ring 3 plus their system calls), ns.
    pub busy_ns: u64,
    /// The part of `busy_ns` spent in agents of protected partitions.
    pub protected_ns: u64,
    /// Which partitions (by index) the protection policy protects, as of the last window.
    pub protected: Vec<bool>,
    /// Contention protection, where the policy asks for it.
    pub protection: Option<governor::Protection>,
    /// How long partitions' disk requests were in flight.
    pub disk_clock: governor::DiskClock,
    /// The catalog's runnable agents.
    pub images: Vec<Arc<AgentImage>>,
    /// The appliance disk's data extents (GPT name, first LBA, sectors) and its index.
    pub extents: Vec<(String, u64, u64)>,
    pub appliance_disk: Option<usize>,
    /// The catalog's policies: restart rules and CPU limits for agents placed later.
    pub policies: PolicySet,
    /// Which tenant holds which VLAN ID.
    pub vlans: VlanLedger,
    /// The appliance's name, which partition NICs' MACs are derived from.
    pub appliance: String,
    /// The policy files and the world a live change is checked against (`None` without
    /// a catalog).
    pub policy_source: Option<policy::PolicySource>,
    /// When the profiler samples next, and when it last did.
    next_profile_ns: u64,
    last_profile_ns: u64,
    /// Terminated partitions' last usage (metering).
    pub retired: Vec<meter::Retired>,
    /// When metering next writes a usage record to the journal.
    next_usage_record_ns: u64,
}

pub static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

impl Runtime {
    fn new(policies: PolicySet) -> Runtime {
        let protection = governor::from_policy(&policies, crate::clock::now_ns());
        Runtime {
            images: Vec::new(),
            extents: Vec::new(),
            appliance_disk: None,
            policies,
            vlans: VlanLedger::new(),
            appliance: String::from("plinth"),
            partitions: Vec::new(),
            tasks: Vec::new(),
            sched: Scheduler::new(SLICE_NS),
            events: EventLog::new(),
            next_task: 1,
            next_partition: 1,
            busy_ns: 0,
            protected_ns: 0,
            protected: Vec::new(),
            protection,
            disk_clock: governor::DiskClock::default(),
            policy_source: None,
            next_profile_ns: 0,
            last_profile_ns: 0,
            retired: Vec::new(),
            next_usage_record_ns: meter::USAGE_RECORD_NS,
        }
    }

    /// Records an event of partition `partition` (and its agent in `slot`) and logs it.
    pub fn event(&mut self, partition: usize, slot: Option<usize>, kind: EventKind) {
        self.events.record(&self.partitions[partition], slot, kind);
    }

    fn task_index(&self, id: TaskId) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }
}
