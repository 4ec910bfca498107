//! The partition command set and the management API's answers, backend-neutral: one
//! definition shared by the runtime, which decodes HTTP requests into [`Command`]s and
//! writes its answers from [`views`], and the `plinth` host tool, which builds requests
//! from the commands and reads the answers into the views, so the two cannot drift
//! apart and the decoder is fuzzed once.
//!
//! This crate owns:
//! - the commands and their bodies ([`Command`], [`CreatePartition`], [`Resize`],
//!   [`AttachDisk`], [`AgentRef`]);
//! - their HTTP mapping ([`decode`] one way, [`Command::method`] and [`Command::path`] the
//!   other);
//! - body decoding: JSON with `serde-json-core`, at most [`MAX_BODY`] bytes, escapes
//!   decoded, unknown, duplicate and missing fields refused with the field named;
//! - field validation ([`Command::validate`]): names, ranges and counts, with the same
//!   name and version rules as appliance specs and agent manifests;
//! - the answers' shapes ([`views`]: partitions, the partition list, a termination,
//!   events, status, health, errors), written and read with `serde_json`.
//!
//! It does not apply commands, know which partitions run, or do any I/O: whether a
//! partition exists, memory can be promised, an extent is free or an agent is in the
//! catalog is the runtime's business, and so are the values in its answers.
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

/// An agent from the catalog, by name and optionally version (`MAJOR.MINOR.PATCH`);
/// without a version the runtime picks one. JSON: `{"name":"hello","version":"0.1.0"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The body of `POST /api/v1/partitions`. `labels` and `agents` are empty when absent;
/// the options are absent or `null` when not given.
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
}

/// The body of `POST /api/v1/partitions/NAME/resize`: at least one field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resize {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cap_percent: Option<u32>,
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
    nested: None,
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
    ],
    required: &["name", "memory_mib"],
    nested: Some(("agents", &AGENT_SHAPE)),
};
const RESIZE_SHAPE: Shape = Shape {
    what: "a resize",
    fields: &["memory_mib", "cpu_weight", "cpu_cap_percent"],
    required: &[],
    nested: None,
};
const ATTACH_SHAPE: Shape = Shape {
    what: "a disk attachment",
    fields: &["extent"],
    required: &["extent"],
    nested: None,
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
}

impl Command {
    /// The HTTP method that carries this command.
    pub fn method(&self) -> &'static str {
        match self {
            Command::List | Command::Get { .. } => "GET",
            Command::Create(_) | Command::Act { .. } | Command::Resize { .. } => "POST",
            Command::AttachDisk { .. } => "PUT",
            Command::Terminate { .. } | Command::DetachDisk { .. } => "DELETE",
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
            | Command::DetachDisk { name } => Some(name),
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
    /// A field's value breaks its rule (422); `field` is its JSON name, or `name` for the
    /// partition name in the path, or `body` for a resize without fields.
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
        Ok(())
    }
}

impl Resize {
    /// Whether no field is given.
    pub fn is_empty(&self) -> bool {
        self == &Resize::default()
    }

    /// At least one field, each in its range.
    pub fn validate(&self) -> Result<(), ControlError> {
        if self.is_empty() {
            return Err(invalid(
                "body",
                String::from("a resize needs memory_mib, cpu_weight or cpu_cap_percent"),
            ));
        }
        if let Some(m) = self.memory_mib {
            check_memory(m)?;
        }
        check_cpu(self.cpu_weight, self.cpu_cap_percent)
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
    if name.is_empty() || verb == Some("") || segments.next().is_some() {
        return Err(ControlError::NoRoute);
    }
    Ok(match verb {
        None => Route::Item(name),
        Some("resize") => Route::Resize(name),
        Some("disk") => Route::Disk(name),
        Some(v) => Route::Act(name, Action::from_segment(v).ok_or(ControlError::NoRoute)?),
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
/// its query string, `body` as received. Checks go route, method, name in the path, body
/// size, body JSON, body fields; the first failure is the answer.
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
        (Route::Act(..) | Route::Resize(_), _) => return not_allowed("POST"),
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
    };
    command.validate()?;
    Ok(command)
}
