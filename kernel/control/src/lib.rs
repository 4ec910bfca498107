//! The partition command set and the management API's answers, backend-neutral: one
//! definition shared by the runtime, which decodes HTTP requests into [`Command`]s and
//! writes its answers from [`views`], and the `plinth` host tool, which builds requests
//! from the commands and reads the answers into the views, so the two cannot drift
//! apart and the decoder is fuzzed once.
//!
//! This crate owns:
//! - the commands and their bodies ([`Command`], [`CreatePartition`], [`Resize`],
//!   [`AttachDisk`], [`AgentRef`], [`NicSpec`]);
//! - their HTTP mapping ([`decode`] one way, [`Command::method`] and [`Command::path`] the
//!   other);
//! - body decoding: JSON with `serde-json-core`, at most [`MAX_BODY`] bytes, escapes
//!   decoded, unknown, duplicate and missing fields refused with the field named;
//! - field validation ([`Command::validate`]): names, ranges and counts, with the same
//!   name and version rules as appliance specs and agent manifests; MAC addresses as
//!   they are written in bodies ([`parse_mac`], [`format_mac`]);
//! - the answers' shapes ([`views`]: partitions, the partition list, a termination,
//!   events, status, health, errors), written and read with `serde_json`.
//!
//! It does not apply commands, know which partitions run, or do any I/O: whether a
//! partition exists, memory can be promised, an extent is free, an agent is in the
//! catalog, a MAC is taken or a NIC index is in use is the runtime's business, and so
//! are the values in its answers (a derived MAC among them).
//!
//! | method           | path                                   | command                 | body              |
//! |------------------|----------------------------------------|-------------------------|-------------------|
//! | `GET`, `HEAD`    | `/api/v1/partitions`                   | [`Command::List`]       | none              |
//! | `POST`           | `/api/v1/partitions`                   | [`Command::Create`]     | [`CreatePartition`] |
//! | `GET`, `HEAD`    | `/api/v1/partitions/NAME`              | [`Command::Get`]        | none              |
//! | `DELETE`         | `/api/v1/partitions/NAME`              | [`Command::Terminate`]  | none              |
//! | `POST`           | `/api/v1/partitions/NAME/start`        | [`Command::Act`]        | none              |
//! | `POST`           | `/api/v1/partitions/NAME/stop`         | [`Command::Act`]        | none              |
//! | `POST`           | `/api/v1/partitions/NAME/restart`      | [`Command::Act`]        | none              |
//! | `POST`           | `/api/v1/partitions/NAME/resize`       | [`Command::Resize`]     | [`Resize`]        |
//! | `PUT`            | `/api/v1/partitions/NAME/disk`         | [`Command::AttachDisk`] | [`AttachDisk`]    |
//! | `DELETE`         | `/api/v1/partitions/NAME/disk`         | [`Command::DetachDisk`] | none              |
//! | `POST`           | `/api/v1/partitions/NAME/nics`         | [`Command::AttachNic`]  | [`NicSpec`]       |
//! | `DELETE`         | `/api/v1/partitions/NAME/nics/INDEX`   | [`Command::DetachNic`]  | none              |
//!
//! `INDEX` is a NIC's number in its partition, `0` to `MAX_NICS - 1`, written in decimal
//! without leading zeros (so that a path has one spelling).
//!
//! Any other path (a trailing slash, an empty or extra segment, another prefix) is
//! [`ControlError::NoRoute`], so the runtime can hand everything else to its other routes.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod body;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
#[cfg(test)]
mod tests;
pub mod views;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use body::Shape;

/// The collection's path; every route is under it.
pub const PREFIX: &str = "/api/v1/partitions";
/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 8 * 1024;
/// Longest partition (and data extent) name: the GPT entry name that holds its disk.
pub const MAX_NAME: usize = plinth_policy::appliance::MAX_PARTITION_NAME;
/// Largest memory quota, MiB (1 TiB).
pub const MAX_MEMORY_MIB: u64 = 1 << 20;
/// Largest CPU weight (the smallest is 1).
pub const MAX_CPU_WEIGHT: u32 = 10_000;
/// Largest CPU cap, percent of one CPU (the smallest is 1).
pub const MAX_CAP_PERCENT: u32 = 100;
/// Most labels on one partition.
pub const MAX_LABELS: usize = 16;
/// Most agents placed in one partition at creation.
pub const MAX_AGENTS: usize = 16;
/// Most NICs one partition has: the system-call ABI's NIC numbers, `0..MAX_NICS`.
pub const MAX_NICS: usize = plinth_abi::MAX_NICS as usize;

/// An agent from the catalog, by name and optionally version (`MAJOR.MINOR.PATCH`);
/// without a version the runtime picks one. JSON: `{"name":"hello","version":"0.1.0"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A virtual NIC of a partition, on the runtime's bridge: the body of
/// `POST /api/v1/partitions/NAME/nics` and an entry of [`CreatePartition::nics`].
/// JSON: `{}` (the runtime derives the MAC) or `{"mac":"02:00:00:00:00:01"}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicSpec {
    /// `xx:xx:xx:xx:xx:xx` in hex, either case; unicast and not all zeros
    /// ([`parse_mac`]). Absent or `null`: the runtime derives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// The body of `POST /api/v1/partitions`. `labels`, `agents` and `nics` are empty when
/// absent; the options are absent or `null` when not given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePartition {
    pub name: String,
    pub memory_mib: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cap_percent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The name of a data extent on the appliance disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentRef>,
    /// Its NICs, numbered from 0 in this order; at most [`MAX_NICS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<NicSpec>,
}

/// The body of `POST /api/v1/partitions/NAME/resize`: at least one field.
///
/// The `net_*` fields are token buckets on every NIC of the partition, each NIC with its
/// own bucket per direction (sending and receiving are limited apart), as the protection
/// policy's `[limit.network]` sets them; the `disk_*` fields are the partition's disk
/// budget (all its agents' reads and writes together), as `[limit.disk]` sets it. Each
/// is a rate per second and a burst, which holds at least one second of the rate and is
/// the rate when not given. A rate of `0` removes that limit (its burst must then be
/// absent); a burst needs its rate in the same request. Fields left out leave their
/// setting as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cap_percent: Option<u32>,
    /// Bytes (whole frames, Ethernet header included) per second; `0`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_bytes_per_sec: Option<u64>,
    /// Bytes the bucket holds; at least `net_bytes_per_sec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_bytes_burst: Option<u64>,
    /// Frames per second; `0`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_packets_per_sec: Option<u64>,
    /// Frames the bucket holds; at least `net_packets_per_sec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_packets_burst: Option<u64>,
    /// The memory high-water mark, MiB (at most the quota); `0` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_high_mib: Option<u64>,
    /// Disk reads and writes per second, the partition's together; `0`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_iops: Option<u64>,
    /// Requests the bucket holds; at least `disk_iops`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_iops_burst: Option<u64>,
    /// Bytes read plus written per second; `0`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes_per_sec: Option<u64>,
    /// Bytes the bucket holds; at least `disk_bytes_per_sec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_bytes_burst: Option<u64>,
}

/// The body of `PUT /api/v1/partitions/NAME/disk`: a data extent of the appliance disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachDisk {
    pub extent: String,
}

const AGENT_SHAPE: Shape = Shape {
    what: "an agent",
    fields: &["name", "version"],
    required: &["name"],
    nested: &[],
};
const NIC_SHAPE: Shape = Shape {
    what: "a NIC",
    fields: &["mac"],
    required: &[],
    nested: &[],
};
const CREATE_SHAPE: Shape = Shape {
    what: "a new partition",
    fields: &[
        "name",
        "memory_mib",
        "cpu_weight",
        "cpu_cap_percent",
        "tenant",
        "labels",
        "disk",
        "agents",
        "nics",
    ],
    required: &["name", "memory_mib"],
    nested: &[("agents", &AGENT_SHAPE), ("nics", &NIC_SHAPE)],
};
const RESIZE_SHAPE: Shape = Shape {
    what: "a resize",
    fields: &[
        "memory_mib",
        "cpu_weight",
        "cpu_cap_percent",
        "net_bytes_per_sec",
        "net_bytes_burst",
        "net_packets_per_sec",
        "net_packets_burst",
        "memory_high_mib",
        "disk_iops",
        "disk_iops_burst",
        "disk_bytes_per_sec",
        "disk_bytes_burst",
    ],
    required: &[],
    nested: &[],
};
const ATTACH_SHAPE: Shape = Shape {
    what: "a disk attachment",
    fields: &["extent"],
    required: &["extent"],
    nested: &[],
};

/// What `POST /api/v1/partitions/NAME/{start,stop,restart}` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Start,
    Stop,
    Restart,
}

impl Action {
    /// Every action, in path order.
    pub const ALL: [Action; 3] = [Action::Start, Action::Stop, Action::Restart];

    /// The path segment: `start`, `stop` or `restart`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
        }
    }

    /// The action a path segment names.
    pub fn from_segment(segment: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == segment)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request of the partition API, decoded and validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `GET /api/v1/partitions`
    List,
    /// `GET /api/v1/partitions/NAME`
    Get { name: String },
    /// `POST /api/v1/partitions` with a [`CreatePartition`] body.
    Create(CreatePartition),
    /// `POST /api/v1/partitions/NAME/start|stop|restart`, no body.
    Act { name: String, action: Action },
    /// `DELETE /api/v1/partitions/NAME`
    Terminate { name: String },
    /// `POST /api/v1/partitions/NAME/resize` with a [`Resize`] body.
    Resize { name: String, resize: Resize },
    /// `PUT /api/v1/partitions/NAME/disk` with an [`AttachDisk`] body.
    AttachDisk { name: String, disk: AttachDisk },
    /// `DELETE /api/v1/partitions/NAME/disk`
    DetachDisk { name: String },
    /// `POST /api/v1/partitions/NAME/nics` with a [`NicSpec`] body: a new NIC, numbered
    /// by the runtime (the answer shows it).
    AttachNic { name: String, nic: NicSpec },
    /// `DELETE /api/v1/partitions/NAME/nics/INDEX`: NIC `index` (below [`MAX_NICS`]).
    DetachNic { name: String, index: u8 },
}

impl Command {
    /// The HTTP method that carries this command.
    pub fn method(&self) -> &'static str {
        match self {
            Command::List | Command::Get { .. } => "GET",
            Command::Create(_)
            | Command::Act { .. }
            | Command::Resize { .. }
            | Command::AttachNic { .. } => "POST",
            Command::AttachDisk { .. } => "PUT",
            Command::Terminate { .. } | Command::DetachDisk { .. } | Command::DetachNic { .. } => {
                "DELETE"
            }
        }
    }

    /// The request path. Names are put in as they are: [`Command::validate`] first, as
    /// [`decode`] does, so that they cannot hold `/`, `?` or `%`.
    pub fn path(&self) -> String {
        match self {
            Command::List | Command::Create(_) => String::from(PREFIX),
            Command::Get { name } | Command::Terminate { name } => format!("{PREFIX}/{name}"),
            Command::Act { name, action } => format!("{PREFIX}/{name}/{action}"),
            Command::Resize { name, .. } => format!("{PREFIX}/{name}/resize"),
            Command::AttachDisk { name, .. } | Command::DetachDisk { name } => {
                format!("{PREFIX}/{name}/disk")
            }
            Command::AttachNic { name, .. } => format!("{PREFIX}/{name}/nics"),
            Command::DetachNic { name, index } => format!("{PREFIX}/{name}/nics/{index}"),
        }
    }

    /// The partition the command is about (`None` for list and create).
    pub fn name(&self) -> Option<&str> {
        match self {
            Command::List | Command::Create(_) => None,
            Command::Get { name }
            | Command::Act { name, .. }
            | Command::Terminate { name }
            | Command::Resize { name, .. }
            | Command::AttachDisk { name, .. }
            | Command::DetachDisk { name }
            | Command::AttachNic { name, .. }
            | Command::DetachNic { name, .. } => Some(name),
        }
    }

    /// Checks every field: the name in the path and the body. [`decode`] only returns
    /// commands that pass; an encoder calls it before sending.
    pub fn validate(&self) -> Result<(), ControlError> {
        if let Some(name) = self.name() {
            check_name(name)?;
        }
        match self {
            Command::Create(c) => c.validate(),
            Command::Resize { resize, .. } => resize.validate(),
            Command::AttachDisk { disk, .. } => disk.validate(),
            Command::AttachNic { nic, .. } => nic.validate(),
            Command::DetachNic { index, .. } => check_nic_index(*index),
            _ => Ok(()),
        }
    }
}

/// Why a request was refused; each maps to an HTTP status ([`ControlError::status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// Not a partition route (404).
    NoRoute,
    /// The route exists, not with this method (405); `allow` is the `Allow` header.
    MethodNotAllowed { allow: &'static str },
    /// The body is over [`MAX_BODY`] bytes (413).
    BodyTooLarge,
    /// The body is not the JSON the command takes, or there is one where none belongs
    /// (400).
    BadJson { message: String },
    /// A field's value breaks its rule (422); `field` is its JSON name, or `name` and
    /// `index` for the partition name and NIC index in the path, or `body` for a resize
    /// without fields.
    Invalid {
        field: &'static str,
        message: String,
    },
}

impl ControlError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::NoRoute => 404,
            ControlError::MethodNotAllowed { .. } => 405,
            ControlError::BodyTooLarge => 413,
            ControlError::BadJson { .. } => 400,
            ControlError::Invalid { .. } => 422,
        }
    }
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::NoRoute => f.write_str("no such partition route"),
            ControlError::MethodNotAllowed { allow } => {
                write!(f, "method not allowed here (allowed: {allow})")
            }
            ControlError::BodyTooLarge => {
                write!(f, "request body is larger than {MAX_BODY} bytes")
            }
            ControlError::BadJson { message } => write!(f, "bad request body: {message}"),
            ControlError::Invalid { field, message } => write!(f, "invalid {field}: {message}"),
        }
    }
}

impl core::error::Error for ControlError {}

fn invalid(field: &'static str, message: String) -> ControlError {
    ControlError::Invalid { field, message }
}

/// `s` quoted for a message: escaped, on one line, at most 40 characters of it.
pub(crate) fn quote(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// Checks a value against the name rule of agents, labels and tenants
/// (`[a-z0-9][a-z0-9-]{0,62}`, [`plinth_container::check_agent_name`]); the message names
/// the value.
fn check_label_like(value: &str) -> Result<(), String> {
    plinth_container::check_agent_name(value).map_err(|m| {
        // The checker's messages all start with "name ".
        format!("{} {}", quote(value), m.strip_prefix("name ").unwrap_or(m))
    })
}

/// Checks a partition name the way appliance specs do: `[a-z0-9][a-z0-9-]*` (the agent
/// name rule, [`plinth_container::check_agent_name`]) and at most [`MAX_NAME`] characters,
/// so that it fits the GPT entry naming its data extent. Data extents are named the same
/// way.
pub fn check_name(name: &str) -> Result<(), ControlError> {
    check_name_as("name", name)
}

fn check_name_as(field: &'static str, name: &str) -> Result<(), ControlError> {
    check_label_like(name).map_err(|m| invalid(field, m))?;
    if name.len() > MAX_NAME {
        return Err(invalid(
            field,
            format!(
                "{} is {} characters; at most {MAX_NAME} fit the GPT entry of a data extent",
                quote(name),
                name.len()
            ),
        ));
    }
    Ok(())
}

fn check_range<T: PartialOrd + fmt::Display>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
    unit: &str,
) -> Result<(), ControlError> {
    if value < min || value > max {
        return Err(invalid(
            field,
            format!("{value} is out of range: {min} to {max}{unit}"),
        ));
    }
    Ok(())
}

fn check_memory(mib: u64) -> Result<(), ControlError> {
    check_range("memory_mib", mib, 1, MAX_MEMORY_MIB, " MiB")
}

fn check_cpu(weight: Option<u32>, cap: Option<u32>) -> Result<(), ControlError> {
    if let Some(w) = weight {
        check_range("cpu_weight", w, 1, MAX_CPU_WEIGHT, "")?;
    }
    if let Some(c) = cap {
        check_range(
            "cpu_cap_percent",
            c,
            1,
            MAX_CAP_PERCENT,
            " percent of one CPU",
        )?;
    }
    Ok(())
}

impl AgentRef {
    /// Parses `NAME` or `NAME@VERSION` (the tool's `--agent`); the result is not checked.
    pub fn parse(spec: &str) -> AgentRef {
        match spec.split_once('@') {
            Some((name, version)) => AgentRef {
                name: String::from(name),
                version: Some(String::from(version)),
            },
            None => AgentRef {
                name: String::from(spec),
                version: None,
            },
        }
    }

    /// The agent name rule and, if given, a strict `MAJOR.MINOR.PATCH` version.
    fn check(&self) -> Result<(), String> {
        check_label_like(&self.name).map_err(|m| format!("agent name {m}"))?;
        if let Some(v) = &self.version {
            plinth_container::Version::parse(v)
                .map_err(|m| format!("agent {} version {}: {m}", self.name, quote(v)))?;
        }
        Ok(())
    }
}

impl fmt::Display for AgentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl CreatePartition {
    /// A partition with only the required fields.
    pub fn new(name: &str, memory_mib: u64) -> CreatePartition {
        CreatePartition {
            name: String::from(name),
            memory_mib,
            cpu_weight: None,
            cpu_cap_percent: None,
            tenant: None,
            labels: Vec::new(),
            disk: None,
            agents: Vec::new(),
            nics: Vec::new(),
        }
    }

    /// Checks every field's rule (not whether the names exist: that is the runtime's).
    pub fn validate(&self) -> Result<(), ControlError> {
        check_name(&self.name)?;
        check_memory(self.memory_mib)?;
        check_cpu(self.cpu_weight, self.cpu_cap_percent)?;
        if let Some(t) = &self.tenant {
            check_label_like(t).map_err(|m| invalid("tenant", m))?;
        }
        if self.labels.len() > MAX_LABELS {
            return Err(invalid(
                "labels",
                format!("{} labels; at most {MAX_LABELS}", self.labels.len()),
            ));
        }
        for (i, l) in self.labels.iter().enumerate() {
            check_label_like(l).map_err(|m| invalid("labels", m))?;
            if self.labels[..i].contains(l) {
                return Err(invalid("labels", format!("{} is listed twice", quote(l))));
            }
        }
        if let Some(d) = &self.disk {
            check_name_as("disk", d)?;
        }
        if self.agents.len() > MAX_AGENTS {
            return Err(invalid(
                "agents",
                format!("{} agents; at most {MAX_AGENTS}", self.agents.len()),
            ));
        }
        for (i, a) in self.agents.iter().enumerate() {
            a.check().map_err(|m| invalid("agents", m))?;
            if self.agents[..i].iter().any(|b| b.name == a.name) {
                return Err(invalid(
                    "agents",
                    format!("agent {} is listed twice", a.name),
                ));
            }
        }
        if self.nics.len() > MAX_NICS {
            return Err(invalid(
                "nics",
                format!("{} NICs; at most {MAX_NICS}", self.nics.len()),
            ));
        }
        let mut macs = Vec::new();
        for (i, nic) in self.nics.iter().enumerate() {
            let in_nic = |e: ControlError| match e {
                ControlError::Invalid { message, .. } => {
                    invalid("nics", format!("NIC {i}: {message}"))
                }
                other => other,
            };
            if let Some(mac) = nic.parsed_mac().map_err(in_nic)? {
                // Two NICs of one partition with one MAC would be one station on the
                // bridge: its MAC table could not tell them apart.
                if macs.contains(&mac) {
                    return Err(invalid(
                        "nics",
                        format!("NIC {i}: MAC {} is listed twice", format_mac(mac)),
                    ));
                }
                macs.push(mac);
            }
        }
        Ok(())
    }
}

impl NicSpec {
    /// A NIC with the MAC given, or derived by the runtime (`None`); not checked.
    pub fn new(mac: Option<&str>) -> NicSpec {
        NicSpec {
            mac: mac.map(String::from),
        }
    }

    /// The MAC given, parsed ([`parse_mac`]); `None` when the runtime is to derive one.
    pub fn parsed_mac(&self) -> Result<Option<[u8; 6]>, ControlError> {
        self.mac.as_deref().map(parse_mac).transpose()
    }

    /// A MAC, if given, is a unicast address written `xx:xx:xx:xx:xx:xx`.
    pub fn validate(&self) -> Result<(), ControlError> {
        self.parsed_mac().map(|_| ())
    }
}

/// Parses a NIC's MAC address as bodies carry it: six pairs of hex digits (either case)
/// separated by `:`, nothing else. It must be unicast (the first octet's low bit clear,
/// as a frame's source address must be) and not all zeros (no station has that one).
/// The error's field is `mac`.
pub fn parse_mac(text: &str) -> Result<[u8; 6], ControlError> {
    let bad = |why: &str| invalid("mac", format!("{} {why}", quote(text)));
    let not_a_mac = || bad("is not a MAC address: expected xx:xx:xx:xx:xx:xx in hex");
    let mut mac = [0u8; 6];
    let mut pairs = text.split(':');
    for octet in &mut mac {
        let pair = pairs.next().unwrap_or_default();
        // Checked by hand: `from_str_radix` would take `+f`.
        if pair.len() != 2 || !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_a_mac());
        }
        *octet = u8::from_str_radix(pair, 16).map_err(|_| not_a_mac())?;
    }
    if pairs.next().is_some() {
        return Err(not_a_mac());
    }
    if mac[0] & 1 != 0 {
        return Err(bad(
            "is a multicast address (the first octet's low bit is set); a NIC needs a unicast one",
        ));
    }
    if mac == [0; 6] {
        return Err(bad("is all zeros, which is no station's address"));
    }
    Ok(mac)
}

/// A MAC address as bodies and answers write it: `02:00:00:00:00:01`, lowercase.
pub fn format_mac(mac: [u8; 6]) -> String {
    views::mac_string(mac)
}

/// A NIC number: below [`MAX_NICS`].
fn check_nic_index(index: u8) -> Result<(), ControlError> {
    check_range("index", usize::from(index), 0, MAX_NICS - 1, "")
}

/// The NIC number in a path: decimal, without a sign or leading zeros (one spelling per
/// NIC, so that [`Command::path`] gives back the path it came from), below [`MAX_NICS`].
fn nic_index(segment: &str) -> Result<u8, ControlError> {
    let last = MAX_NICS - 1;
    let canonical = !segment.is_empty()
        && segment.bytes().all(|b| b.is_ascii_digit())
        && (segment == "0" || !segment.starts_with('0'));
    if !canonical {
        return Err(invalid(
            "index",
            format!(
                "{} is not a NIC number: 0 to {last}, in decimal without leading zeros",
                quote(segment)
            ),
        ));
    }
    let index = segment.parse::<u8>().map_err(|_| {
        invalid(
            "index",
            format!("{} is out of range: 0 to {last}", quote(segment)),
        )
    })?;
    check_nic_index(index)?;
    Ok(index)
}

impl Resize {
    /// Whether no field is given.
    pub fn is_empty(&self) -> bool {
        self == &Resize::default()
    }

    /// Whether a disk rate or burst is given.
    pub fn has_disk(&self) -> bool {
        self.disk_iops.is_some()
            || self.disk_iops_burst.is_some()
            || self.disk_bytes_per_sec.is_some()
            || self.disk_bytes_burst.is_some()
    }

    /// Whether a network rate or burst is given.
    pub fn has_network(&self) -> bool {
        self.net_bytes_per_sec.is_some()
            || self.net_bytes_burst.is_some()
            || self.net_packets_per_sec.is_some()
            || self.net_packets_burst.is_some()
    }

    /// At least one field, each in its range; each burst with its rate and at least it.
    pub fn validate(&self) -> Result<(), ControlError> {
        if self.is_empty() {
            return Err(invalid(
                "body",
                String::from(
                    "a resize needs memory_mib, cpu_weight, cpu_cap_percent, \
                     net_bytes_per_sec, net_packets_per_sec, memory_high_mib, disk_iops or \
                     disk_bytes_per_sec",
                ),
            ));
        }
        if let Some(m) = self.memory_mib {
            check_memory(m)?;
        }
        if let Some(h) = self.memory_high_mib.filter(|h| *h != 0) {
            check_memory(h).map_err(|_| {
                invalid(
                    "memory_high_mib",
                    format!("{h} is out of range: 0 (none) or 1 to {MAX_MEMORY_MIB} MiB"),
                )
            })?;
        }
        check_cpu(self.cpu_weight, self.cpu_cap_percent)?;
        check_bucket(
            ("net_bytes_per_sec", self.net_bytes_per_sec),
            ("net_bytes_burst", self.net_bytes_burst),
        )?;
        check_bucket(
            ("net_packets_per_sec", self.net_packets_per_sec),
            ("net_packets_burst", self.net_packets_burst),
        )?;
        check_bucket(
            ("disk_iops", self.disk_iops),
            ("disk_iops_burst", self.disk_iops_burst),
        )?;
        check_bucket(
            ("disk_bytes_per_sec", self.disk_bytes_per_sec),
            ("disk_bytes_burst", self.disk_bytes_burst),
        )
    }
}

/// A rate and its burst, as the protection policy's `bucket` checks them: a burst needs
/// its rate and holds at least one second of it; a rate of 0 (no limit) has no burst.
fn check_bucket(
    (rate_field, rate): (&'static str, Option<u64>),
    (burst_field, burst): (&'static str, Option<u64>),
) -> Result<(), ControlError> {
    match (rate, burst) {
        (None, Some(_)) => Err(invalid(
            burst_field,
            format!("a burst needs {rate_field} in the same resize"),
        )),
        (Some(0), Some(_)) => Err(invalid(
            burst_field,
            format!("{rate_field} 0 removes the limit; a burst has nothing to hold"),
        )),
        (Some(r), Some(b)) if b < r => Err(invalid(
            burst_field,
            format!("{b} is below {rate_field} {r}; a burst holds at least one second of the rate"),
        )),
        _ => Ok(()),
    }
}

impl AttachDisk {
    /// The extent is named like a partition.
    pub fn validate(&self) -> Result<(), ControlError> {
        check_name_as("extent", &self.extent)
    }
}

/// The routes, by path shape.
enum Route<'p> {
    Collection,
    Item(&'p str),
    Act(&'p str, Action),
    Resize(&'p str),
    Disk(&'p str),
    Nics(&'p str),
    /// A partition's name and the NIC index segment, unchecked.
    Nic(&'p str, &'p str),
}

fn route(path: &str) -> Result<Route<'_>, ControlError> {
    let rest = path.strip_prefix(PREFIX).ok_or(ControlError::NoRoute)?;
    if rest.is_empty() {
        return Ok(Route::Collection);
    }
    let rest = rest.strip_prefix('/').ok_or(ControlError::NoRoute)?;
    let mut segments = rest.split('/');
    let name = segments.next().unwrap_or_default();
    let verb = segments.next();
    let item = segments.next();
    if name.is_empty() || verb == Some("") || item == Some("") || segments.next().is_some() {
        return Err(ControlError::NoRoute);
    }
    Ok(match (verb, item) {
        (None, _) => Route::Item(name),
        (Some("nics"), None) => Route::Nics(name),
        (Some("nics"), Some(index)) => Route::Nic(name, index),
        // Only the NIC collection has items.
        (Some(_), Some(_)) => return Err(ControlError::NoRoute),
        (Some("resize"), None) => Route::Resize(name),
        (Some("disk"), None) => Route::Disk(name),
        (Some(v), None) => Route::Act(name, Action::from_segment(v).ok_or(ControlError::NoRoute)?),
    })
}

/// Refuses a body on a command that takes none (after the size check).
fn no_body(body: &[u8]) -> Result<(), ControlError> {
    body::size(body)?;
    if body.is_empty() {
        Ok(())
    } else {
        Err(ControlError::BadJson {
            message: String::from("no body expected"),
        })
    }
}

/// Decodes and validates one request: `method` as sent (`HEAD` is `GET`), `path` without
/// its query string, `body` as received. Checks go route, method, name in the path, NIC
/// index in the path, body size, body JSON, body fields; the first failure is the answer.
pub fn decode(method: &str, path: &str, body: &[u8]) -> Result<Command, ControlError> {
    let route = route(path)?;
    let method = if method == "HEAD" { "GET" } else { method };
    let not_allowed = |allow| Err(ControlError::MethodNotAllowed { allow });
    let name = |name: &str| check_name(name).map(|()| String::from(name));
    let command = match (route, method) {
        (Route::Collection, "GET") => no_body(body).map(|()| Command::List)?,
        (Route::Collection, "POST") => Command::Create(body::parse(body, &CREATE_SHAPE)?),
        (Route::Collection, _) => return not_allowed("GET, HEAD, POST"),
        (Route::Item(n), "GET") => {
            let name = name(n)?;
            no_body(body)?;
            Command::Get { name }
        }
        (Route::Item(n), "DELETE") => {
            let name = name(n)?;
            no_body(body)?;
            Command::Terminate { name }
        }
        (Route::Item(_), _) => return not_allowed("GET, HEAD, DELETE"),
        (Route::Act(n, action), "POST") => {
            let name = name(n)?;
            no_body(body)?;
            Command::Act { name, action }
        }
        (Route::Resize(n), "POST") => Command::Resize {
            name: name(n)?,
            resize: body::parse(body, &RESIZE_SHAPE)?,
        },
        (Route::Nics(n), "POST") => Command::AttachNic {
            name: name(n)?,
            nic: body::parse(body, &NIC_SHAPE)?,
        },
        (Route::Act(..) | Route::Resize(_) | Route::Nics(_), _) => return not_allowed("POST"),
        (Route::Disk(n), "PUT") => Command::AttachDisk {
            name: name(n)?,
            disk: body::parse(body, &ATTACH_SHAPE)?,
        },
        (Route::Disk(n), "DELETE") => {
            let name = name(n)?;
            no_body(body)?;
            Command::DetachDisk { name }
        }
        (Route::Disk(_), _) => return not_allowed("PUT, DELETE"),
        (Route::Nic(n, i), "DELETE") => {
            let name = name(n)?;
            let index = nic_index(i)?;
            no_body(body)?;
            Command::DetachNic { name, index }
        }
        (Route::Nic(..), _) => return not_allowed("DELETE"),
    };
    command.validate()?;
    Ok(command)
}
