//! The runtime's answers, typed: every JSON document the management API sends about
//! partitions, agents, events, status, health and the network, defined once so the
//! runtime that writes them and the `plinth` tool that reads them cannot drift apart.
//!
//! This module owns the documents' shapes: field names, their order (the derive writes
//! fields in declaration order, which is the order the runtime has always used), which
//! fields are `null` when unknown and which are left out, and how numbers are written
//! ([`View::to_json`] writes a float with an integral value as an integer, `20` not
//! `20.0`, as the runtime's hand-written JSON did). It does not decide any value: the
//! runtime fills the views from its own state, and the tool decides how to show them.
//!
//! | document | type | served at |
//! |---|---|---|
//! | a partition | [`PartitionView`] | `GET /api/v1/partitions/NAME`, and the answer to create, start, stop, restart, resize, attach and detach |
//! | the partitions | [`PartitionList`] | `GET /api/v1/partitions` |
//! | a termination | [`Terminated`] | `DELETE /api/v1/partitions/NAME` |
//! | the events | [`EventList`] (of [`EventView`]) | `GET /api/v1/events?since=N` |
//! | the status | [`Status`] | `GET /api/v1/status` |
//! | health | [`Health`] | `GET /api/v1/health` |
//! | the network | [`NetworkView`] | `GET /api/v1/network` |
//! | a refusal | [`ErrorView`] | any error status |
//!
//! Reading ([`View::from_json`]) is strict about what this version needs and lenient
//! about the rest: a missing required field is a [`ViewError`] that names it; fields it
//! does not know are ignored, and so are names it does not know in a state or status
//! (kept as `Other`) and kinds of event or catalog state (`Unknown`), so an older tool
//! still reads a newer runtime. A field that is `null` when unknown may also be absent.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};

/// A document of the API: written by the runtime, read by the tool.
pub trait View: Serialize + DeserializeOwned {
    /// What the document is, for messages: "partition list".
    const WHAT: &'static str;

    /// The document as the runtime sends it: compact JSON, fields in declaration order.
    ///
    /// Serializing a view cannot fail (strings, integers, floats, options, sequences,
    /// string-keyed objects; a non-finite float becomes `null`); should `serde_json` ever
    /// refuse one, the answer is an `{"error":…}` document rather than a panic in the
    /// runtime.
    fn to_json(&self) -> String {
        match serde_json::to_string(self) {
            Ok(json) => json,
            Err(_) => format!("{{\"error\":\"the {} could not be written\"}}", Self::WHAT),
        }
    }

    /// Reads the document from an answer's body.
    fn from_json(json: &[u8]) -> Result<Self, ViewError> {
        serde_json::from_slice(json).map_err(|e| ViewError {
            what: Self::WHAT,
            message: e.to_string(),
        })
    }
}

/// A body that is not the document it should be: not JSON, a required field missing,
/// or a field of the wrong type. The message is `serde_json`'s, which names the field
/// (``missing field `quota_bytes` at line 1 column 120``).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewError {
    /// The document expected ([`View::WHAT`]).
    pub what: &'static str,
    pub message: String,
}

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed {}: {}", self.what, self.message)
    }
}

impl core::error::Error for ViewError {}

/// An enum of the names a string field takes, with `Other` for a name this version does
/// not know (a newer runtime's), kept as it was sent. Serialized as the name.
macro_rules! names {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A name this version does not know (sent by a newer runtime), as sent.
            /// The runtime never writes one.
            Other(String),
        }

        impl $name {
            /// The known names, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(s) => s,
                }
            }

            /// The variant a name stands for (`Other` if none does).
            pub fn from_name(name: &str) -> $name {
                match name {
                    $($text => $name::$variant,)+
                    other => $name::Other(String::from(other)),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                struct Name;
                impl serde::de::Visitor<'_> for Name {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a name (string)")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok($name::from_name(v))
                    }
                }
                d.deserialize_str(Name)
            }
        }
    };
}

names! {
    /// Where a partition is in its life.
    pub enum PartitionState {
        Running = "running",
        Stopped = "stopped",
    }
}

names! {
    /// What an agent slot is doing.
    pub enum AgentState {
        /// Has a task (running, runnable or sleeping).
        Running = "running",
        /// Waiting for its restart.
        Backoff = "backoff",
        /// Ended and not restarted.
        Ended = "ended",
        /// Failed too often; not started again until released.
        Quarantined = "quarantined",
        /// Stopped with its partition.
        Stopped = "stopped",
    }
}

names! {
    /// Where a NIC's IPv4 address came from.
    pub enum AddressSource {
        Static = "static",
        Dhcp = "dhcp",
    }
}

names! {
    /// What a bridge port connects.
    pub enum PortKind {
        /// The physical NIC the bridge reaches the outside through.
        Uplink = "uplink",
        /// The runtime's own management interface (its API, DHCP client).
        Management = "management",
        /// A partition's virtual NIC.
        Nic = "nic",
    }
}

names! {
    /// How a bridge port carries VLANs.
    pub enum PortMode {
        /// One VLAN, untagged on the port.
        Access = "access",
        /// The native VLAN untagged and the allowed VLANs tagged (802.1Q).
        Trunk = "trunk",
    }
}

names! {
    /// What `GET /api/v1/health` says.
    pub enum HealthStatus {
        Ok = "ok",
    }
}

/// Numbers as the runtime's JSON writer put them: a float with an integral value as an
/// integer (`20`, not `20.0`), a non-finite one as `null`, any other in its shortest
/// exact form.
mod number {
    use serde::Serializer;

    /// 2^53: every integer below it is exact in an `f64`.
    const EXACT: f64 = 9_007_199_254_740_992.0;

    pub fn f64<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        let x = *x;
        if x.is_finite() && x.abs() < EXACT && (x as i64) as f64 == x {
            s.serialize_i64(x as i64)
        } else {
            // serde_json writes NaN and the infinities as `null`.
            s.serialize_f64(x)
        }
    }

    pub fn option_f64<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match x {
            Some(x) => f64(x, s),
            None => s.serialize_none(),
        }
    }
}

/// One partition: `GET /api/v1/partitions/NAME`, and the answer to every command that
/// changes one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionView {
    pub id: u32,
    pub name: String,
    pub state: PartitionState,
    /// `null` without a tenant.
    pub tenant: Option<String>,
    pub labels: Vec<String>,
    pub memory: MemoryView,
    /// `null` without a data disk.
    pub disk: Option<DiskView>,
    pub agents: Vec<AgentView>,
    /// Its virtual NICs, by index.
    pub nics: Vec<NicView>,
}

/// A partition's virtual NIC: a port of the runtime's bridge. The counters are the
/// partition's: `rx` what it received, `tx` what it sent (frames as they cross the
/// port, Ethernet header included, without a VLAN tag).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NicView {
    /// Its number in the partition (the system-call ABI's NIC number).
    pub index: u8,
    /// `02:00:00:00:00:01`: lowercase hex, colon-separated.
    pub mac: String,
    /// Its bridge port: `PARTITION/INDEX` (`web/0`).
    pub port: String,
    /// The VLAN it is an access port of; `null`: the native VLAN (untagged on trunks).
    pub vlan: Option<u16>,
    /// The tenant that VLAN belongs to; `null` for none.
    pub tenant: Option<String>,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames dropped on it, both ways, for any reason (its bridge port in
    /// [`NetworkView::ports`] has them by reason).
    pub drops: u64,
    /// Frames waiting in its transmit queue.
    pub queued: u32,
    /// Its rate limits (each direction has its own buckets of these sizes); `null`
    /// when it has none.
    pub rate: Option<NetRateView>,
}

/// A NIC's rate limits: token buckets, refilled at the rate per second and holding the
/// burst. A `null` rate is not limited (and has a `null` burst).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetRateView {
    pub bytes_per_sec: Option<u64>,
    pub bytes_burst: Option<u64>,
    pub packets_per_sec: Option<u64>,
    pub packets_burst: Option<u64>,
}

/// A partition's memory, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryView {
    pub quota_bytes: u64,
    /// Charged now: its agents' pages and page tables.
    pub used_bytes: u64,
    pub peak_bytes: u64,
    /// The high-water mark (`memory.high`): above it `mem_grow` is slowed. Absent when
    /// there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_bytes: Option<u64>,
    /// Of `used_bytes`, the page tables of its agents' address spaces.
    pub page_table_bytes: u64,
}

/// A partition's data disk: an extent of the appliance disk, in 512-byte sectors; what
/// its agents did with it, and the disk governor's word on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskView {
    pub first_lba: u64,
    pub sectors: u64,
    /// The partition's requests since it was created, across its agents' runs.
    #[serde(default)]
    pub usage: DiskUsageView,
    /// Requests waiting for the budget now.
    #[serde(default)]
    pub waiting: u32,
    /// The partition's budget (all its agents together); `null` when it has none.
    #[serde(default)]
    pub rate: Option<DiskRateView>,
}

/// Disk requests that reached the disk (a partition's or an agent's, since it was
/// created), and how many of them the disk governor held back, for how long in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsageView {
    pub reads: u64,
    pub read_bytes: u64,
    pub writes: u64,
    pub written_bytes: u64,
    pub throttled: u64,
    pub throttled_ns: u64,
}

/// A disk budget: token buckets for requests and bytes (reads and writes together),
/// refilled at the rate per second and holding the burst. A `null` rate is not limited
/// (and has a `null` burst).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskRateView {
    pub iops: Option<u64>,
    pub iops_burst: Option<u64>,
    pub bytes_per_sec: Option<u64>,
    pub bytes_burst: Option<u64>,
}

impl DiskView {
    /// The extent's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.sectors.saturating_mul(512)
    }
}

/// One agent of a partition. `task`, `cpu_ns` and `syscalls` are there only while it
/// runs (and each only if the runtime knows it), `exit_code` only once it ended with
/// one; otherwise the keys are left out, not `null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentView {
    pub name: String,
    pub version: String,
    pub status: AgentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<u32>,
    /// CPU time of the current run (ring 3 and its system calls), ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ns: Option<u64>,
    /// System calls of the current run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscalls: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Restarts by the troubleshooting policy.
    pub restarts: u32,
    pub heartbeats: u64,
    /// `null` before the first heartbeat.
    pub last_heartbeat_ms_ago: Option<u64>,
    pub cpu: CpuView,
    /// Its disk requests since it was placed, across its runs.
    #[serde(default)]
    pub disk: DiskUsageView,
}

/// An agent's CPU share.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CpuView {
    pub weight: u32,
    /// Percent of one CPU; `null` when uncapped.
    #[serde(serialize_with = "number::option_f64")]
    pub cap_percent: Option<f64>,
}

impl CpuView {
    /// A share of `weight`, capped at `quota_ns` per `period_ns` if `cap` is given.
    pub fn new(weight: u32, cap: Option<(u64, u64)>) -> CpuView {
        CpuView {
            weight,
            cap_percent: cap
                .map(|(quota_ns, period_ns)| quota_ns as f64 * 100.0 / period_ns as f64),
        }
    }
}

/// `GET /api/v1/partitions`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionList {
    pub partitions: Vec<PartitionView>,
    /// Time since kernel entry, ns.
    pub uptime_ns: u64,
    /// Time spent in agents (ring 3 and their system calls), ns.
    pub agents_busy_ns: u64,
}

/// `DELETE /api/v1/partitions/NAME`: the partition is gone, its frames are free.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminated {
    /// The partition's name.
    pub terminated: String,
    pub frames_returned: u64,
}

/// Something that happened to a partition or agent: the common fields, then `kind` and
/// the kind's own fields, all in one flat object
/// (`{"seq":3,…,"agent":"hello","kind":"agent_started","task":1}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    pub seq: u64,
    /// Time since kernel entry, ms.
    #[serde(serialize_with = "number::f64")]
    pub time_ms: f64,
    pub partition: String,
    /// `null` for an event of the partition itself.
    pub agent: Option<String>,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl EventView {
    /// An event at `time_ns` since kernel entry.
    pub fn new(
        seq: u64,
        time_ns: u64,
        partition: &str,
        agent: Option<&str>,
        kind: EventKind,
    ) -> EventView {
        EventView {
            seq,
            time_ms: time_ns as f64 / 1e6,
            partition: String::from(partition),
            agent: agent.map(String::from),
            kind,
        }
    }
}

/// What happened, by `kind`, with its fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    PartitionCreated,
    AgentStarted {
        task: u32,
    },
    AgentFailedToStart {
        error: String,
    },
    AgentExited {
        code: i32,
    },
    AgentFaulted {
        vector: u64,
        /// The exception's name ("page fault").
        exception: String,
        rip: u64,
        error_code: u64,
        /// The faulting address (CR2) of a page fault, else `null`.
        address: Option<u64>,
    },
    /// The watchdog ended the agent: no heartbeat for `silent_ms` (its interval is
    /// `timeout_ms`); `heartbeats` is the agent's count so far, all its runs. A failure,
    /// for the restart policy.
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
    /// Contention protection loosened the cap (`null`: lifted it).
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
    /// Contention protection loosened the disk budget (`null`: lifted it).
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
    /// Contention protection loosened the memory mark (`null`: lifted it).
    MemoryReleased {
        cap_percent: Option<u8>,
    },
    /// The partition's memory rose past its high-water mark (`memory.high`): its
    /// `mem_grow` calls are slowed from here until it falls back under the mark.
    MemoryHigh {
        used_bytes: u64,
        high_bytes: u64,
        quota_bytes: u64,
    },
    /// A kind this version does not know (sent by a newer runtime); its fields are
    /// dropped. The runtime never writes one.
    #[serde(other)]
    Unknown,
}

impl EventKind {
    /// The `kind` on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::PartitionCreated => "partition_created",
            EventKind::AgentStarted { .. } => "agent_started",
            EventKind::AgentFailedToStart { .. } => "agent_failed_to_start",
            EventKind::AgentExited { .. } => "agent_exited",
            EventKind::AgentFaulted { .. } => "agent_faulted",
            EventKind::AgentHung { .. } => "agent_hung",
            EventKind::RestartScheduled { .. } => "restart_scheduled",
            EventKind::Quarantined { .. } => "quarantined",
            EventKind::Alert { .. } => "alert",
            EventKind::CpuThrottled { .. } => "cpu_throttled",
            EventKind::CpuReleased { .. } => "cpu_released",
            EventKind::MemoryHigh { .. } => "memory_high",
            EventKind::DiskThrottled { .. } => "disk_throttled",
            EventKind::DiskReleased { .. } => "disk_released",
            EventKind::MemoryThrottled { .. } => "memory_throttled",
            EventKind::MemoryReleased { .. } => "memory_released",
            EventKind::Unknown => "unknown",
        }
    }
}

/// `GET /api/v1/events?since=N`: the events after `since`, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventList {
    pub events: Vec<EventView>,
    /// The last event's sequence number (`since` when there is none): the next `since`.
    pub last_seq: u64,
}

/// `GET /api/v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The runtime's version (`CARGO_PKG_VERSION`).
    pub version: String,
    pub uptime_ms: u64,
    pub cpus: u32,
    pub memory: RuntimeMemory,
    /// Every PCI function found.
    pub devices: Vec<PciFunctionView>,
    pub nics: Vec<HostNicView>,
    pub catalog: CatalogSummary,
    pub disks: Vec<BlockDiskView>,
}

/// The runtime's memory, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeMemory {
    /// RAM the firmware reported usable.
    pub total_bytes: u64,
    /// Free physical frames.
    pub free_bytes: u64,
    /// Frames the allocator manages.
    pub usable_frame_bytes: u64,
    pub heap_used_bytes: u64,
    pub heap_bytes: u64,
}

/// A PCI function: where, what (IDs in hex) and the driver bound to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciFunctionView {
    /// `BB:DD.F`.
    pub pci: String,
    /// Four hex digits.
    pub vendor_id: String,
    /// Four hex digits.
    pub device_id: String,
    /// Class and subclass, four hex digits.
    pub class: String,
    /// `null` when no driver claimed it.
    pub driver: Option<String>,
}

impl PciFunctionView {
    /// A function at `location` (displayed as `BB:DD.F`), its IDs written in hex.
    pub fn new(
        location: impl fmt::Display,
        vendor: u16,
        device: u16,
        class: u8,
        subclass: u8,
        driver: Option<&str>,
    ) -> PciFunctionView {
        PciFunctionView {
            pci: format!("{location}"),
            vendor_id: format!("{vendor:04x}"),
            device_id: format!("{device:04x}"),
            class: format!("{class:02x}{subclass:02x}"),
            driver: driver.map(String::from),
        }
    }
}

/// One of the runtime's own network interfaces (a device, not a partition's NIC:
/// that is [`NicView`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostNicView {
    pub name: String,
    pub location: String,
    /// `52:54:00:12:34:56`: lowercase hex, colon-separated.
    pub mac: String,
    /// The IPv4 address with its prefix (`10.0.2.15/24`); `null` before one is known.
    pub ipv4: Option<String>,
    /// `null` without a gateway.
    pub gateway: Option<String>,
    pub address_source: AddressSource,
}

impl HostNicView {
    /// A NIC with its MAC written as `52:54:00:12:34:56` and its addresses displayed.
    pub fn new(
        name: &str,
        location: &str,
        mac: [u8; 6],
        ipv4: Option<impl fmt::Display>,
        gateway: Option<impl fmt::Display>,
        address_source: AddressSource,
    ) -> HostNicView {
        HostNicView {
            name: String::from(name),
            location: String::from(location),
            mac: mac_string(mac),
            ipv4: ipv4.map(|a| format!("{a}")),
            gateway: gateway.map(|g| format!("{g}")),
            address_source,
        }
    }
}

/// A MAC address as `52:54:00:12:34:56`.
pub fn mac_string(mac: [u8; 6]) -> String {
    use fmt::Write as _;
    let mut s = String::with_capacity(17);
    for (i, b) in mac.iter().enumerate() {
        let _ = write!(s, "{}{b:02x}", if i == 0 { "" } else { ":" });
    }
    s
}

/// What the runtime made of the appliance catalog, by `state`: only a verified one
/// carries its disk and counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CatalogSummary {
    /// Checked and in use.
    Verified {
        /// The disk it was read from.
        disk: String,
        partitions: u64,
        agents: u64,
    },
    /// Found but failed its checks (the runtime is in its safe state).
    Invalid,
    /// No disk holds one.
    Absent,
    /// Not read yet.
    Loading,
    /// A state this version does not know (sent by a newer runtime). The runtime never
    /// writes one.
    #[serde(other)]
    Unknown,
}

/// A block device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDiskView {
    pub name: String,
    pub location: String,
    /// 512-byte sectors.
    pub sectors: u64,
    /// `sectors` × 512.
    pub capacity_bytes: u64,
    pub serial: String,
}

impl BlockDiskView {
    /// A disk of `sectors` 512-byte sectors.
    pub fn new(name: &str, location: &str, sectors: u64, serial: &str) -> BlockDiskView {
        BlockDiskView {
            name: String::from(name),
            location: String::from(location),
            sectors,
            capacity_bytes: sectors.saturating_mul(512),
            serial: String::from(serial),
        }
    }
}

/// `GET /api/v1/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
}

impl Health {
    /// `{"status":"ok"}`.
    pub fn ok() -> Health {
        Health {
            status: HealthStatus::Ok,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status == HealthStatus::Ok
    }
}

/// `GET /api/v1/network`: the runtime's 802.1Q bridge, which connects the uplink, the
/// runtime's management interface and the partitions' NICs.
///
/// VLAN numbers are VIDs, 1 to 4094; the native VLAN, untagged on every trunk, is
/// `vid` 0 in [`VlanView`] and [`MacView`] and `null` where a field is optional
/// ([`BridgePortView::vlan`], [`NicView::vlan`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkView {
    /// Whether the native VLAN travels untagged on trunks (always, in this version).
    pub native_vlan_untagged: bool,
    /// `null` when the runtime has no uplink.
    pub uplink: Option<UplinkView>,
    /// Every VLAN in use, by `vid` (the native one, 0, first).
    pub vlans: Vec<VlanView>,
    pub ports: Vec<BridgePortView>,
    /// The MAC table.
    pub macs: Vec<MacView>,
    /// The VLAN pools tenants' VLANs are taken from.
    pub pools: Vec<PoolView>,
}

/// The bridge's way out: a physical NIC, a trunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UplinkView {
    /// Its bridge port's name.
    pub name: String,
    pub mac: String,
    /// The VLANs it carries tagged.
    pub allowed: Vec<u16>,
}

/// One VLAN of the bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VlanView {
    /// 1 to 4094; 0 for the native VLAN.
    pub vid: u16,
    /// The tenant it belongs to; `null` for none (the native VLAN, a VLAN set by hand).
    pub tenant: Option<String>,
    /// The pool it was taken from; `null` for none.
    pub pool: Option<String>,
    /// The names of its member ports.
    pub ports: Vec<String>,
    /// Frames (and their bytes) the bridge forwarded in it.
    pub frames: u64,
    pub bytes: u64,
    /// Of `frames`, those sent to every member port: broadcast, multicast and unknown
    /// destinations.
    pub flooded: u64,
    /// MAC table entries in it.
    pub macs: u32,
    /// Frames dropped in it, by reason.
    pub drops: Vec<DropCount>,
}

/// One port of the bridge. The counters are the bridge's, as a switch counts: `rx` what
/// came in from the port, `tx` what went out to it (so a NIC's port's `rx` is what its
/// partition sent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgePortView {
    /// `uplink`, `mgmt`, or a NIC's `PARTITION/INDEX`.
    pub name: String,
    pub kind: PortKind,
    pub mode: PortMode,
    /// The VLAN its untagged frames belong to; `null`: the native VLAN.
    pub vlan: Option<u16>,
    /// A trunk's tagged VLANs; empty for an access port.
    pub allowed: Vec<u16>,
    /// The station's MAC behind the port, if it has one address (NIC and management
    /// ports); `null` otherwise.
    pub mac: Option<String>,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames dropped at the port, by reason.
    pub drops: Vec<DropCount>,
    /// The offloads its owner's stack asked for and has, `rx` and `tx` (the `NetOffload`
    /// call); empty for the uplink, the management port and a NIC without. Absent from
    /// a runtime that predates them.
    #[serde(default)]
    pub offload: Vec<String>,
}

/// How many frames were dropped for one reason (`no_room`, `rate_limited`,
/// `vlan_not_allowed`, …: the runtime's names, shown as they are).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCount {
    pub reason: String,
    pub count: u64,
}

/// An entry of the bridge's MAC table: where frames to `mac` in VLAN `vid` go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacView {
    /// 0 for the native VLAN.
    pub vid: u16,
    pub mac: String,
    /// The port's name.
    pub port: String,
    /// Since a frame from it was last seen.
    pub age_ms: u64,
    /// Set by the runtime (a NIC's own MAC), not learned: it does not age out.
    pub is_static: bool,
}

/// A pool of VLANs for tenants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolView {
    pub name: String,
    /// Its VIDs as inclusive ranges, `[first, last]`.
    pub ranges: Vec<(u16, u16)>,
    /// The VIDs of it taken by tenants, ascending.
    pub in_use: Vec<u16>,
}

/// The body of an error answer (`plinth-http`'s `Response::error`):
/// `{"error":"no such partition","status":404}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorView {
    pub error: String,
    /// The HTTP status again; absent from some answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// An average and a peak per second over a window (a level's, for memory). `null`
/// before the profiler has a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatView {
    #[serde(serialize_with = "number::f64")]
    pub avg: f64,
    #[serde(serialize_with = "number::f64")]
    pub peak: f64,
}

/// What an agent or a partition used over the last `seconds` (the profiler's samples:
/// `samples` of them, one a second; fewer than `seconds` just after a start).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowView {
    pub seconds: u32,
    pub samples: u32,
    /// Percent of one CPU.
    pub cpu_percent: Option<StatView>,
    pub syscalls_per_sec: Option<StatView>,
    pub disk_iops: Option<StatView>,
    pub disk_bytes_per_sec: Option<StatView>,
    /// Charged memory, bytes (a level: its average and peak).
    pub memory_bytes: Option<StatView>,
    /// Partitions only: their NICs, both ways (`null` for an agent).
    #[serde(default)]
    pub net_packets_per_sec: Option<StatView>,
    #[serde(default)]
    pub net_bytes_per_sec: Option<StatView>,
}

/// An average and a peak the manifest predicts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictedView {
    pub average: u64,
    pub peak: u64,
}

/// The footprint an agent's manifest predicts (`[resources]`); `null` for a resource it
/// does not use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FootprintView {
    pub cpu_percent: PredictedView,
    pub memory_mib: PredictedView,
    pub disk_bytes_per_sec: Option<PredictedView>,
    pub disk_iops: Option<PredictedView>,
    pub network_bytes_per_sec: Option<PredictedView>,
}

/// One kind of system call and how often the agent made it, all its runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCountView {
    /// The call's name (`disk_read`), or `unknown` for numbers that are no call.
    pub call: String,
    pub count: u64,
}

/// `GET /api/v1/agents/PARTITION/AGENT/profile`: what one agent used over the last
/// second, 10 s and minute beside what its manifest predicts, its totals over all its
/// runs, and its system calls by kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentProfileView {
    pub partition: String,
    pub agent: String,
    pub version: String,
    pub status: AgentState,
    /// The guest's clock when it was read, ns since kernel entry.
    pub uptime_ns: u64,
    /// 1 s, 10 s, 60 s.
    pub windows: Vec<WindowView>,
    /// The current run's memory and the most any run had, bytes.
    pub memory_bytes: u64,
    pub peak_memory_bytes: u64,
    pub predicted: FootprintView,
    pub cpu_ns_total: u64,
    pub syscalls_total: u64,
    /// Only the kinds it made, in the ABI's order.
    pub syscalls_by_kind: Vec<CallCountView>,
}

/// One row of `plinth top`: a partition (`agent` null) or one of its agents, over the
/// window asked for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopRow {
    pub partition: String,
    pub agent: Option<String>,
    /// An agent's status; `null` for a partition.
    pub status: Option<AgentState>,
    pub window: WindowView,
}

/// `GET /api/v1/profile?window=S`: every partition and agent over one window (1, 10 or
/// 60 s), partitions each followed by their agents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopView {
    pub uptime_ns: u64,
    pub rows: Vec<TopRow>,
}

/// What a partition (or a tenant's partitions together) used, for billing: exact
/// counters since the partition was created, kept across its agents' restarts and its
/// resizes. Memory is charged memory over time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageCounters {
    pub cpu_ns: u64,
    #[serde(serialize_with = "number::f64")]
    pub memory_gib_hours: f64,
    pub disk_reads: u64,
    pub disk_writes: u64,
    pub disk_read_bytes: u64,
    pub disk_written_bytes: u64,
    /// From the partition's side: what it received and sent on its NICs.
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

impl UsageCounters {
    /// The sum of two.
    pub fn plus(&self, o: &UsageCounters) -> UsageCounters {
        UsageCounters {
            cpu_ns: self.cpu_ns.saturating_add(o.cpu_ns),
            memory_gib_hours: self.memory_gib_hours + o.memory_gib_hours,
            disk_reads: self.disk_reads.saturating_add(o.disk_reads),
            disk_writes: self.disk_writes.saturating_add(o.disk_writes),
            disk_read_bytes: self.disk_read_bytes.saturating_add(o.disk_read_bytes),
            disk_written_bytes: self.disk_written_bytes.saturating_add(o.disk_written_bytes),
            net_rx_bytes: self.net_rx_bytes.saturating_add(o.net_rx_bytes),
            net_tx_bytes: self.net_tx_bytes.saturating_add(o.net_tx_bytes),
        }
    }
}

/// One partition's usage; `terminated` ones stay until the runtime restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionUsage {
    pub partition: String,
    pub terminated: bool,
    #[serde(flatten)]
    pub usage: UsageCounters,
}

/// One tenant's partitions and their sum (`tenant` null: partitions without one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TenantUsage {
    pub tenant: Option<String>,
    pub total: UsageCounters,
    pub partitions: Vec<PartitionUsage>,
}

/// `GET /api/v1/usage[?tenant=NAME]`: usage by tenant, counted since `since_ns` (the
/// runtime's start; ns since kernel entry) up to `uptime_ns`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageView {
    pub since_ns: u64,
    pub uptime_ns: u64,
    pub tenants: Vec<TenantUsage>,
}

macro_rules! views {
    ($($t:ty => $what:literal,)+) => {
        $(impl View for $t {
            const WHAT: &'static str = $what;
        })+
    };
}

views! {
    PartitionView => "partition",
    PartitionList => "partition list",
    Terminated => "termination",
    EventView => "event",
    EventList => "event list",
    Status => "status",
    Health => "health",
    NetworkView => "network",
    ErrorView => "error",
    AgentProfileView => "agent profile",
    TopView => "profile",
    UsageView => "usage",
}

#[cfg(test)]
mod tests;
