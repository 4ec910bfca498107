//! `plinth part`: the partition commands against a running runtime's management API.
//!
//! Owns the mapping from the command line to [`plinth_control::Command`]s, and the human
//! form of the runtime's answers. The requests themselves come only from
//! `plinth-control` (method, path, body structs), the same crate the runtime decodes them
//! with, so the command set exists in one place; arguments are validated by its rules
//! before anything is sent. The answers are read into its views
//! ([`plinth_control::views`]), the types the runtime writes them from: an answer
//! without a field this tool prints is an error naming the field, never a guess.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Subcommand};
use plinth_control::views::{
    CpuView, DiskView, ErrorView, PartitionList, PartitionView, Terminated, View, ViewError,
};
use plinth_control::{
    Action, AgentRef, AttachDisk, Command, ControlError, CreatePartition, Resize,
};

use crate::api::{self, ApiError};

/// `plinth part …`: a subcommand and the options every subcommand takes.
#[derive(Args, Clone, Debug)]
pub struct PartArgs {
    #[command(subcommand)]
    pub which: PartCmd,
    /// Where the API is reachable (what `plinth run --api-port` forwards).
    #[arg(long, global = true, default_value_t = SocketAddr::from(([127, 0, 0, 1], api::DEFAULT_HOST_PORT)))]
    pub addr: SocketAddr,
    /// Print the runtime's JSON answer as it is.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, global = true, default_value_t = 10)]
    pub timeout: u64,
}

#[derive(Subcommand, Clone, Debug, PartialEq, Eq)]
pub enum PartCmd {
    /// List the partitions: state, tenant, memory and agents.
    List,
    /// Show one partition in detail.
    Show { name: String },
    /// Create a partition (stopped) with a memory quota and its agents.
    Create {
        name: String,
        /// Memory quota, MiB.
        #[arg(long, value_name = "MIB")]
        memory: u64,
        /// CPU weight (1 to 10000) of its agents.
        #[arg(long, value_name = "N")]
        weight: Option<u32>,
        /// CPU cap, percent of one CPU (1 to 100).
        #[arg(long, value_name = "PCT")]
        cap: Option<u32>,
        #[arg(long, value_name = "T")]
        tenant: Option<String>,
        /// A label deployment policies select by (repeatable).
        #[arg(long = "label", value_name = "L")]
        labels: Vec<String>,
        /// A data extent of the appliance disk to attach.
        #[arg(long, value_name = "EXTENT")]
        disk: Option<String>,
        /// An agent from the catalog to place in it (repeatable).
        #[arg(long = "agent", value_name = "NAME[@VERSION]")]
        agents: Vec<String>,
    },
    /// Start its agents.
    Start { name: String },
    /// Stop its agents.
    Stop { name: String },
    /// Stop and start its agents.
    Restart { name: String },
    /// Stop it and remove it, returning its memory.
    Terminate { name: String },
    /// Change its memory quota or CPU share (at least one option).
    Resize {
        name: String,
        #[arg(long, value_name = "MIB")]
        memory: Option<u64>,
        #[arg(long, value_name = "N")]
        weight: Option<u32>,
        #[arg(long, value_name = "PCT")]
        cap: Option<u32>,
    },
    /// Attach a data extent of the appliance disk.
    AttachDisk { name: String, extent: String },
    /// Detach its data disk.
    DetachDisk { name: String },
}

impl PartCmd {
    /// The request this subcommand sends, checked by `plinth-control`'s rules.
    pub fn command(&self) -> Result<Command, ControlError> {
        let name = |n: &String| n.clone();
        let c = match self {
            PartCmd::List => Command::List,
            PartCmd::Show { name: n } => Command::Get { name: name(n) },
            PartCmd::Create {
                name: n,
                memory,
                weight,
                cap,
                tenant,
                labels,
                disk,
                agents,
            } => Command::Create(CreatePartition {
                name: name(n),
                memory_mib: *memory,
                cpu_weight: *weight,
                cpu_cap_percent: *cap,
                tenant: tenant.clone(),
                labels: labels.clone(),
                disk: disk.clone(),
                agents: agents.iter().map(|a| AgentRef::parse(a)).collect(),
                nics: Vec::new(),
            }),
            PartCmd::Start { name: n } => act(n, Action::Start),
            PartCmd::Stop { name: n } => act(n, Action::Stop),
            PartCmd::Restart { name: n } => act(n, Action::Restart),
            PartCmd::Terminate { name: n } => Command::Terminate { name: name(n) },
            PartCmd::Resize {
                name: n,
                memory,
                weight,
                cap,
            } => Command::Resize {
                name: name(n),
                resize: Resize {
                    memory_mib: *memory,
                    cpu_weight: *weight,
                    cpu_cap_percent: *cap,
                    ..Resize::default()
                },
            },
            PartCmd::AttachDisk { name: n, extent } => Command::AttachDisk {
                name: name(n),
                disk: AttachDisk {
                    extent: extent.clone(),
                },
            },
            PartCmd::DetachDisk { name: n } => Command::DetachDisk { name: name(n) },
        };
        c.validate()?;
        Ok(c)
    }
}

fn act(name: &str, action: Action) -> Command {
    Command::Act {
        name: name.to_string(),
        action,
    }
}

/// The JSON body a command travels with (`None` if it takes none).
pub fn body(command: &Command) -> Option<Vec<u8>> {
    let json = match command {
        Command::Create(c) => serde_json::to_vec(c),
        Command::Resize { resize, .. } => serde_json::to_vec(resize),
        Command::AttachDisk { disk, .. } => serde_json::to_vec(disk),
        Command::AttachNic { nic, .. } => serde_json::to_vec(nic),
        Command::List
        | Command::Get { .. }
        | Command::Act { .. }
        | Command::Terminate { .. }
        | Command::DetachDisk { .. }
        | Command::DetachNic { .. } => return None,
    };
    Some(json.expect("plain structs serialize"))
}

/// The runtime's answer to one command.
#[derive(Debug)]
pub enum Reply {
    /// 2xx: what to print (the JSON as it came with `--json`, else the human form).
    Done(String),
    /// An error status with the runtime's `{"error": …}` message.
    Refused(Refused),
}

/// A refusal: the status and the runtime's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

/// Why `plinth part` could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    /// An argument breaks `plinth-control`'s rules; nothing was sent.
    #[error("{}", arg_message(.0))]
    Args(ControlError),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<ControlError> for PartError {
    fn from(e: ControlError) -> PartError {
        PartError::Args(e)
    }
}

/// A validation error in the command line's terms: options instead of JSON fields.
fn arg_message(e: &ControlError) -> String {
    let ControlError::Invalid { field, message } = e else {
        return e.to_string();
    };
    let what = match *field {
        "memory_mib" => "--memory",
        "cpu_weight" => "--weight",
        "cpu_cap_percent" => "--cap",
        "tenant" => "--tenant",
        "labels" => "--label",
        "disk" => "--disk",
        "agents" => "--agent",
        "extent" => "EXTENT",
        "name" => "NAME",
        "body" => return String::from("resize needs --memory, --weight or --cap"),
        other => other,
    };
    format!("invalid {what}: {message}")
}

/// Sends the subcommand's request and turns the answer into a [`Reply`].
pub fn execute(args: &PartArgs) -> Result<Reply, PartError> {
    let command = args.which.command()?;
    let body = body(&command);
    let r = api::request(
        args.addr,
        command.method(),
        &command.path(),
        body.as_deref(),
        Duration::from_secs(args.timeout.max(1)),
    )?;
    Ok(reply(&command, r.status, &r.body, args.json)?)
}

/// The [`Reply`] for an answer: `status` and `body` as received. With `json` a
/// successful answer is passed on as it is; otherwise it is read into the view the
/// command answers with, and a body that is not that view is [`ApiError::View`].
pub fn reply(command: &Command, status: u16, body: &[u8], json: bool) -> Result<Reply, ApiError> {
    if !(200..300).contains(&status) {
        return Ok(Reply::Refused(refusal(status, body)));
    }
    if json {
        return Ok(Reply::Done(
            String::from_utf8_lossy(body).trim_end().to_string(),
        ));
    }
    Ok(Reply::Done(format_answer(command, body)?))
}

/// The message of an error answer: `{"error": "…"}`, else its text.
pub fn refusal(status: u16, body: &[u8]) -> Refused {
    let message = ErrorView::from_json(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                String::from("(no message)")
            } else {
                text.lines().next().unwrap_or_default().to_string()
            }
        });
    Refused { status, message }
}

/// The human form of a successful answer to `command`, read from its body: the
/// partition list for `list`, the termination for `terminate`, the partition for the
/// others.
pub fn format_answer(command: &Command, body: &[u8]) -> Result<String, ViewError> {
    Ok(match command {
        Command::List => format_list(&PartitionList::from_json(body)?),
        Command::Terminate { .. } => format_terminated(&Terminated::from_json(body)?),
        _ => format_changed(command, &PartitionView::from_json(body)?),
    })
}

/// `DELETE /api/v1/partitions/NAME` in one line.
pub fn format_terminated(t: &Terminated) -> String {
    format!(
        "terminated {}: {} frames ({} MiB) returned",
        t.terminated,
        t.frames_returned,
        mib_of(t.frames_returned.saturating_mul(4096))
    )
}

/// The one-line answer to a command that answers with the partition (`show` prints
/// [`format_partition`]).
pub fn format_changed(command: &Command, p: &PartitionView) -> String {
    let (name, state) = (&p.name, &p.state);
    match command {
        Command::Get { .. } | Command::List | Command::Terminate { .. } => format_partition(p),
        Command::Create(_) => {
            let agents = p.agents.len();
            format!(
                "created {name} ({state}, {} MiB, {agents} agent{})",
                mib_of(p.memory.quota_bytes),
                if agents == 1 { "" } else { "s" }
            )
        }
        Command::Act { action, .. } => {
            let verb = match action {
                Action::Start => "started",
                Action::Stop => "stopped",
                Action::Restart => "restarted",
            };
            format!("{verb} {name} ({state})")
        }
        Command::Resize { .. } => {
            let mut line = format!(
                "resized {name}: memory quota {} MiB",
                mib_of(p.memory.quota_bytes)
            );
            if let Some(a) = p.agents.first() {
                let _ = write!(line, ", cpu {}", format_cpu(&a.cpu));
            }
            line
        }
        Command::AttachDisk { disk, .. } => format!(
            "attached {} to {name} ({})",
            disk.extent,
            format_disk(p.disk.as_ref())
        ),
        Command::DetachDisk { .. } => format!("detached the data disk of {name}"),
        Command::AttachNic { .. } => format!("attached a NIC to {name}"),
        Command::DetachNic { index, .. } => format!("detached NIC {index} of {name}"),
    }
}

/// `GET /api/v1/partitions` as a table.
pub fn format_list(list: &PartitionList) -> String {
    if list.partitions.is_empty() {
        return String::from("no partitions");
    }
    let header = ["NAME", "STATE", "TENANT", "MEMORY MiB", "AGENTS"].map(String::from);
    let mut rows = vec![header];
    for p in &list.partitions {
        let agents: Vec<String> = p
            .agents
            .iter()
            .map(|a| format!("{}@{} {}", a.name, a.version, a.status))
            .collect();
        rows.push([
            p.name.clone(),
            p.state.to_string(),
            p.tenant.as_deref().unwrap_or("-").to_string(),
            format!(
                "{}/{}",
                mib_of(p.memory.used_bytes),
                mib_of(p.memory.quota_bytes)
            ),
            if agents.is_empty() {
                String::from("-")
            } else {
                agents.join(", ")
            },
        ]);
    }
    let mut widths = [0usize; 5];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.pop();
    out
}

/// One partition in detail.
pub fn format_partition(p: &PartitionView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} (id {}): {}", p.name, p.id, p.state);
    let _ = writeln!(out, "tenant:  {}", p.tenant.as_deref().unwrap_or("-"));
    let _ = writeln!(
        out,
        "labels:  {}",
        if p.labels.is_empty() {
            String::from("-")
        } else {
            p.labels.join(", ")
        }
    );
    let m = &p.memory;
    let _ = writeln!(
        out,
        "memory:  {} MiB used of {} MiB (peak {} MiB)",
        mib_of(m.used_bytes),
        mib_of(m.quota_bytes),
        mib_of(m.peak_bytes)
    );
    let _ = write!(out, "disk:    {}", format_disk(p.disk.as_ref()));
    if p.agents.is_empty() {
        out.push_str("\nagents:  -");
    }
    for a in &p.agents {
        let _ = write!(out, "\nagent    {} {}: {}", a.name, a.version, a.status);
        let mut facts = Vec::new();
        if let Some(t) = a.task {
            facts.push(format!("task {t}"));
        }
        if let Some(ns) = a.cpu_ns {
            facts.push(format!("{:.3} s cpu", ns as f64 / 1e9));
        }
        if let Some(n) = a.syscalls {
            facts.push(format!("{n} syscalls"));
        }
        facts.push(format!("{} restarts", a.restarts));
        let last = a
            .last_heartbeat_ms_ago
            .map(|ms| format!(", last {ms} ms ago"))
            .unwrap_or_default();
        facts.push(format!("{} heartbeats{last}", a.heartbeats));
        facts.push(format!("cpu {}", format_cpu(&a.cpu)));
        let _ = write!(out, " ({})", facts.join(", "));
    }
    out
}

/// A share as `weight 50, cap 20%` (no cap: `uncapped`).
fn format_cpu(cpu: &CpuView) -> String {
    match cpu.cap_percent {
        Some(c) => format!("weight {}, cap {c}%", cpu.weight),
        None => format!("weight {}, uncapped", cpu.weight),
    }
}

/// A data disk as `8 MiB at LBA 4096`; none as `none`.
fn format_disk(d: Option<&DiskView>) -> String {
    match d {
        Some(d) => format!("{} MiB at LBA {}", mib_of(d.bytes()), d.first_lba),
        None => String::from("none"),
    }
}

/// Bytes as MiB: whole if exact, else to one decimal.
fn mib_of(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        (bytes >> 20).to_string()
    } else {
        format!("{:.1}", bytes as f64 / f64::from(1u32 << 20))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        part: PartArgs,
    }

    fn parse(args: &[&str]) -> Result<PartArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("part").chain(args.iter().copied())).map(|c| c.part)
    }

    fn command(args: &[&str]) -> Result<Command, ControlError> {
        parse(args).expect("arguments parse").which.command()
    }

    /// A partition as the runtime writes it.
    const PARTITION: &str = r#"{"id":1,"name":"mgmt","state":"running","tenant":null,"labels":["management"],"memory":{"quota_bytes":33554432,"used_bytes":495616,"peak_bytes":495616,"page_table_bytes":24576},"disk":{"first_lba":4096,"sectors":16384},"agents":[{"name":"hello","version":"0.1.0","status":"running","task":1,"cpu_ns":123,"syscalls":5,"restarts":0,"heartbeats":3,"last_heartbeat_ms_ago":200,"cpu":{"weight":50,"cap_percent":20}}],"nics":[]}"#;

    fn list_json() -> String {
        let second = r#"{"id":2,"name":"tenant-a","state":"stopped","tenant":"acme","labels":[],"memory":{"quota_bytes":67108864,"used_bytes":0,"peak_bytes":0,"page_table_bytes":0},"disk":null,"agents":[],"nics":[]}"#;
        format!(r#"{{"partitions":[{PARTITION},{second}],"uptime_ns":123,"agents_busy_ns":5}}"#)
    }

    fn list() -> PartitionList {
        PartitionList::from_json(list_json().as_bytes()).unwrap()
    }

    fn partition() -> PartitionView {
        PartitionView::from_json(PARTITION.as_bytes()).unwrap()
    }

    #[test]
    fn every_subcommand_maps_to_its_command() {
        let n = || String::from("tenant-a");
        assert_eq!(command(&["list"]), Ok(Command::List));
        assert_eq!(
            command(&["show", "tenant-a"]),
            Ok(Command::Get { name: n() })
        );
        for (word, action) in [
            ("start", Action::Start),
            ("stop", Action::Stop),
            ("restart", Action::Restart),
        ] {
            assert_eq!(
                command(&[word, "tenant-a"]),
                Ok(Command::Act { name: n(), action })
            );
        }
        assert_eq!(
            command(&["terminate", "tenant-a"]),
            Ok(Command::Terminate { name: n() })
        );
        assert_eq!(
            command(&["attach-disk", "tenant-a", "data-1"]),
            Ok(Command::AttachDisk {
                name: n(),
                disk: AttachDisk {
                    extent: "data-1".into()
                }
            })
        );
        assert_eq!(
            command(&["detach-disk", "tenant-a"]),
            Ok(Command::DetachDisk { name: n() })
        );
        assert_eq!(
            command(&["resize", "tenant-a", "--memory", "128", "--cap", "50"]),
            Ok(Command::Resize {
                name: n(),
                resize: Resize {
                    memory_mib: Some(128),
                    cpu_cap_percent: Some(50),
                    ..Resize::default()
                }
            })
        );
        assert_eq!(
            command(&[
                "create",
                "tenant-a",
                "--memory",
                "64",
                "--weight",
                "200",
                "--cap",
                "25",
                "--tenant",
                "acme",
                "--label",
                "web",
                "--label",
                "eu",
                "--disk",
                "tenant-a",
                "--agent",
                "hello@0.1.0",
                "--agent",
                "pinger",
            ]),
            Ok(Command::Create(CreatePartition {
                name: n(),
                memory_mib: 64,
                cpu_weight: Some(200),
                cpu_cap_percent: Some(25),
                tenant: Some("acme".into()),
                labels: vec!["web".into(), "eu".into()],
                disk: Some(n()),
                agents: vec![
                    AgentRef {
                        name: "hello".into(),
                        version: Some("0.1.0".into())
                    },
                    AgentRef {
                        name: "pinger".into(),
                        version: None
                    },
                ],
                nics: vec![],
            }))
        );
        assert_eq!(
            command(&["create", "p", "--memory", "1"]),
            Ok(Command::Create(CreatePartition::new("p", 1)))
        );
    }

    #[test]
    fn requests_are_what_the_runtime_decodes() {
        for args in [
            &["list"][..],
            &["show", "p"],
            &[
                "create",
                "p",
                "--memory",
                "8",
                "--agent",
                "hello@0.1.0",
                "--label",
                "x",
            ],
            &["start", "p"],
            &["stop", "p"],
            &["restart", "p"],
            &["terminate", "p"],
            &["resize", "p", "--weight", "3"],
            &["attach-disk", "p", "d"],
            &["detach-disk", "p"],
        ] {
            let c = command(args).unwrap();
            let body = body(&c).unwrap_or_default();
            assert_eq!(
                plinth_control::decode(c.method(), &c.path(), &body),
                Ok(c),
                "{args:?}"
            );
        }
        let c = command(&["resize", "p", "--memory", "64"]).unwrap();
        assert_eq!(
            (c.method(), c.path().as_str()),
            ("POST", "/api/v1/partitions/p/resize")
        );
        assert_eq!(body(&c).unwrap(), br#"{"memory_mib":64}"#);
    }

    #[test]
    fn bad_arguments_are_refused_before_sending() {
        let field = |args: &[&str]| match command(args) {
            Err(ControlError::Invalid { field, .. }) => field,
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(field(&["show", "Mgmt"]), "name");
        assert_eq!(field(&["start", "a/b"]), "name");
        assert_eq!(field(&["create", "p", "--memory", "0"]), "memory_mib");
        assert_eq!(
            field(&["create", "p", "--memory", "1", "--cap", "101"]),
            "cpu_cap_percent"
        );
        assert_eq!(
            field(&["create", "p", "--memory", "1", "--weight", "0"]),
            "cpu_weight"
        );
        assert_eq!(
            field(&["create", "p", "--memory", "1", "--label", "A"]),
            "labels"
        );
        assert_eq!(
            field(&["create", "p", "--memory", "1", "--tenant", "-"]),
            "tenant"
        );
        assert_eq!(
            field(&["create", "p", "--memory", "1", "--disk", "D"]),
            "disk"
        );
        assert_eq!(
            field(&["create", "p", "--memory", "1", "--agent", "x@1.0"]),
            "agents"
        );
        assert_eq!(
            field(&["create", "p", "--memory", "1", "--agent", "@1.0.0"]),
            "agents"
        );
        assert_eq!(field(&["resize", "p"]), "body");
        assert_eq!(field(&["attach-disk", "p", "X"]), "extent");
        // Messages name the options.
        let message = |args: &[&str]| PartError::from(command(args).unwrap_err()).to_string();
        assert_eq!(
            message(&["create", "p", "--memory", "0"]),
            "invalid --memory: 0 is out of range: 1 to 1048576 MiB"
        );
        assert_eq!(
            message(&["show", "Bad"]),
            "invalid NAME: \"Bad\" must start with a lowercase letter or a digit"
        );
        assert_eq!(
            message(&["resize", "p"]),
            "resize needs --memory, --weight or --cap"
        );
        // clap refuses what is not a number, and a missing --memory.
        assert!(parse(&["create", "p"]).is_err());
        assert!(parse(&["create", "p", "--memory", "-1"]).is_err());
        assert!(parse(&["resize", "p", "--weight", "x"]).is_err());
        assert!(parse(&["show"]).is_err());
        assert!(parse(&["attach-disk", "p"]).is_err());
    }

    #[test]
    fn addr_json_and_timeout_go_anywhere() {
        let a = parse(&["list"]).unwrap();
        assert_eq!(a.addr.to_string(), "127.0.0.1:8080");
        assert!(!a.json);
        let a = parse(&["list", "--addr", "127.0.0.1:1", "--json", "--timeout", "2"]).unwrap();
        assert_eq!((a.addr.port(), a.json, a.timeout), (1, true, 2));
        let a = parse(&["--json", "stop", "p", "--addr", "10.0.0.2:80"]).unwrap();
        assert_eq!((a.addr.port(), a.json), (80, true));
        assert!(parse(&["list", "--addr", "nowhere"]).is_err());
    }

    #[test]
    fn list_is_a_table() {
        assert_eq!(
            format_list(&list()),
            "NAME      STATE    TENANT  MEMORY MiB  AGENTS\n\
             mgmt      running  -       0.5/32      hello@0.1.0 running\n\
             tenant-a  stopped  acme    0/64        -"
        );
        let empty = r#"{"partitions":[],"uptime_ns":1,"agents_busy_ns":0}"#;
        assert_eq!(
            format_answer(&Command::List, empty.as_bytes()).unwrap(),
            "no partitions"
        );
    }

    #[test]
    fn show_prints_every_fact() {
        assert_eq!(
            format_partition(&partition()),
            "mgmt (id 1): running\n\
             tenant:  -\n\
             labels:  management\n\
             memory:  0.5 MiB used of 32 MiB (peak 0.5 MiB)\n\
             disk:    8 MiB at LBA 4096\n\
             agent    hello 0.1.0: running (task 1, 0.000 s cpu, 5 syscalls, 0 restarts, \
             3 heartbeats, last 200 ms ago, cpu weight 50, cap 20%)"
        );
        let bare = r#"{"id":7,"name":"x","state":"stopped","tenant":"t","labels":[],"memory":{"quota_bytes":0,"used_bytes":0,"peak_bytes":0,"page_table_bytes":0},"disk":null,"agents":[],"nics":[]}"#;
        let show = command(&["show", "x"]).unwrap();
        assert_eq!(
            format_answer(&show, bare.as_bytes()).unwrap(),
            "x (id 7): stopped\ntenant:  t\nlabels:  -\nmemory:  0 MiB used of 0 MiB (peak 0 MiB)\n\
             disk:    none\nagents:  -"
        );
        // An agent that is not running: no task figures; no cap; no heartbeat yet.
        let stopped = PARTITION
            .replace(
                r#""status":"running","task":1,"cpu_ns":123,"syscalls":5,"#,
                r#""status":"stopped","#,
            )
            .replace(
                r#""last_heartbeat_ms_ago":200"#,
                r#""last_heartbeat_ms_ago":null"#,
            )
            .replace(r#""cap_percent":20"#, r#""cap_percent":null"#);
        assert!(format_answer(&show, stopped.as_bytes()).unwrap().ends_with(
            "agent    hello 0.1.0: stopped (0 restarts, 3 heartbeats, cpu weight 50, uncapped)"
        ));
    }

    #[test]
    fn actions_answer_in_one_line() {
        let line =
            |args: &[&str]| format_answer(&command(args).unwrap(), PARTITION.as_bytes()).unwrap();
        assert_eq!(line(&["start", "mgmt"]), "started mgmt (running)");
        assert_eq!(line(&["stop", "mgmt"]), "stopped mgmt (running)");
        assert_eq!(line(&["restart", "mgmt"]), "restarted mgmt (running)");
        assert_eq!(
            line(&["create", "mgmt", "--memory", "32"]),
            "created mgmt (running, 32 MiB, 1 agent)"
        );
        assert_eq!(
            line(&["resize", "mgmt", "--memory", "32"]),
            "resized mgmt: memory quota 32 MiB, cpu weight 50, cap 20%"
        );
        assert_eq!(
            line(&["attach-disk", "mgmt", "mgmt"]),
            "attached mgmt to mgmt (8 MiB at LBA 4096)"
        );
        assert_eq!(
            line(&["detach-disk", "mgmt"]),
            "detached the data disk of mgmt"
        );
        let gone = br#"{"terminated":"mgmt","frames_returned":2048}"#;
        assert_eq!(
            format_answer(&command(&["terminate", "mgmt"]).unwrap(), gone).unwrap(),
            "terminated mgmt: 2048 frames (8 MiB) returned"
        );
    }

    #[test]
    fn answers_become_replies() {
        let c = Command::List;
        let body = list_json().into_bytes();
        match reply(&c, 200, &body, true).unwrap() {
            Reply::Done(text) => assert_eq!(text.as_bytes(), &body[..]),
            r => panic!("{r:?}"),
        }
        match reply(&c, 200, &body, false).unwrap() {
            Reply::Done(text) => assert!(text.starts_with("NAME"), "{text}"),
            r => panic!("{r:?}"),
        }
        assert!(matches!(
            reply(&c, 200, b"not json", false),
            Err(ApiError::View(_))
        ));
        let refused = |status, body: &[u8]| match reply(&c, status, body, false).unwrap() {
            Reply::Refused(r) => r.to_string(),
            r => panic!("{r:?}"),
        };
        assert_eq!(
            refused(404, br#"{"error":"no such partition"}"#),
            "404: no such partition"
        );
        assert_eq!(
            refused(
                409,
                br#"{"error":"partition p exists already","status":409}"#
            ),
            "409: partition p exists already"
        );
        assert_eq!(refused(500, b"oops\nmore"), "500: oops");
        assert_eq!(refused(503, b""), "503: (no message)");
        // With --json an error is still an error.
        assert!(matches!(
            reply(&c, 422, br#"{"error":"x"}"#, true).unwrap(),
            Reply::Refused(_)
        ));
    }

    /// Each command's answer read into its view: a required field missing anywhere is an
    /// error naming it (nothing printed with a `?` in its place); fields this tool does
    /// not know are ignored, so a newer runtime's answers print as before.
    #[test]
    fn answers_are_read_into_their_views() {
        let show = command(&["show", "mgmt"]).unwrap();
        let missing =
            |c: &Command, body: &str, field: &str| match reply(c, 200, body.as_bytes(), false) {
                Err(ApiError::View(e)) => {
                    assert!(
                        e.message.starts_with(&format!("missing field `{field}`")),
                        "{e}"
                    );
                    e.to_string()
                }
                other => panic!("{field}: {other:?}"),
            };
        assert_eq!(
            missing(&show, &PARTITION.replace(r#""id":1,"#, ""), "id"),
            "malformed partition: missing field `id` at line 1 column 415"
        );
        missing(
            &show,
            &PARTITION.replace(r#""quota_bytes":33554432,"#, ""),
            "quota_bytes",
        );
        missing(
            &show,
            &PARTITION.replace(r#""heartbeats":3,"#, ""),
            "heartbeats",
        );
        missing(&show, &PARTITION.replace(r#"{"weight":50,"#, "{"), "weight");
        missing(
            &Command::List,
            &list_json().replace(r#","uptime_ns":123"#, ""),
            "uptime_ns",
        );
        missing(&Command::List, PARTITION, "partitions");
        let terminate = command(&["terminate", "mgmt"]).unwrap();
        missing(&terminate, r#"{"terminated":"mgmt"}"#, "frames_returned");
        missing(&terminate, PARTITION, "terminated");
        // The wrong type is an error too.
        assert!(matches!(
            reply(
                &show,
                200,
                PARTITION.replace(r#""id":1"#, r#""id":"1""#).as_bytes(),
                false
            ),
            Err(ApiError::View(_))
        ));
        // Extra fields everywhere: the same lines.
        let newer = PARTITION
            .replace(r#""id":1,"#, r#""id":1,"zone":"eu","#)
            .replace(r#""cpu":{"#, r#""gpu":null,"cpu":{"burst":true,"#);
        for args in [
            &["show", "mgmt"][..],
            &["start", "mgmt"],
            &["resize", "mgmt", "--weight", "1"],
        ] {
            let c = command(args).unwrap();
            assert_eq!(
                format_answer(&c, newer.as_bytes()).unwrap(),
                format_answer(&c, PARTITION.as_bytes()).unwrap()
            );
        }
        // A state this version does not know is printed as sent.
        let paused = PARTITION.replace(r#""status":"running""#, r#""status":"paused""#);
        assert!(
            format_answer(&show, paused.as_bytes())
                .unwrap()
                .contains("hello 0.1.0: paused (")
        );
    }

    #[test]
    fn an_unreachable_runtime_is_a_connection_error() {
        // Port 1 on loopback: nothing listens there.
        let args = parse(&["list", "--addr", "127.0.0.1:1", "--timeout", "2"]).unwrap();
        match execute(&args) {
            Err(PartError::Api(ApiError::Connect { .. })) => {}
            other => panic!("{other:?}"),
        }
        // Bad arguments fail before connecting.
        let args = parse(&["show", "BAD", "--addr", "127.0.0.1:1"]).unwrap();
        assert!(matches!(execute(&args), Err(PartError::Args(_))));
    }

    #[test]
    fn requests_go_out_as_http() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !String::from_utf8_lossy(&got).contains("\"cpu_weight\":7}") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "closed early");
                got.extend_from_slice(&buf[..n]);
            }
            let answer = br#"{"error":"no such partition"}"#;
            write!(
                s,
                "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                answer.len()
            )
            .unwrap();
            s.write_all(answer).unwrap();
            String::from_utf8(got).unwrap()
        });
        let args = parse(&["resize", "p", "--weight", "7", "--addr", &addr.to_string()]).unwrap();
        match execute(&args).unwrap() {
            Reply::Refused(r) => assert_eq!(r.to_string(), "404: no such partition"),
            r => panic!("{r:?}"),
        }
        let request = server.join().unwrap();
        assert!(
            request.starts_with("POST /api/v1/partitions/p/resize HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("Content-Length: 16\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n{\"cpu_weight\":7}"), "{request}");
    }
}
