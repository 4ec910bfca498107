//! `plinth part`: the partition commands against a running runtime's management API.
//!
//! Owns the mapping from the command line to [`plinth_control::Command`]s, and the human
//! form of the runtime's answers. The requests themselves come only from
//! `plinth-control` (method, path, body structs), the same crate the runtime decodes them
//! with, so the command set exists in one place; arguments are validated by its rules
//! before anything is sent. The answers are read into its views
//! ([`plinth_control::views`]), the types the runtime writes them from: an answer
//! without a field this tool prints is an error naming the field, never a guess.
//!
//! It also owns the syntax of the options that have one of their own: `--nic [mac=MAC]`
//! and the network limits `--net-rate RATE[,burst=BYTES]` (bytes per second in IEC
//! units, [`crate::text::parse_bytes`]) and `--net-pps N[,burst=N]`, each also `off`.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Subcommand};
use plinth_control::views::{
    CpuView, DiskView, ErrorView, NetRateView, NicView, PartitionList, PartitionView, Terminated,
    View, ViewError,
};
use plinth_control::{
    Action, AgentRef, AttachDisk, Command, ControlError, CreatePartition, NicSpec, Resize,
};

use crate::api::{self, ApiError};
use crate::text::{AmountError, format_bytes, parse_bytes, table};

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
    /// Create a partition (stopped) with a memory quota, its agents and its NICs.
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
        /// A virtual NIC, numbered from 0 in order (repeatable, at most 8). Alone, the
        /// runtime derives its MAC; `--nic mac=02:00:00:00:00:01` gives one (unicast,
        /// hex). Put NAME before a bare `--nic`, or it is taken for the NIC's value.
        #[arg(
            long = "nic",
            value_name = "mac=MAC",
            num_args = 0..=1,
            default_missing_value = "",
            value_parser = parse_nic
        )]
        nics: Vec<NicSpec>,
    },
    /// Start its agents.
    Start { name: String },
    /// Stop its agents.
    Stop { name: String },
    /// Stop and start its agents.
    Restart { name: String },
    /// Stop it and remove it, returning its memory.
    Terminate { name: String },
    /// Change its memory quota, CPU share, its NICs' rate limits or its disk budget (at
    /// least one option).
    Resize {
        name: String,
        #[arg(long, value_name = "MIB")]
        memory: Option<u64>,
        #[arg(long, value_name = "N")]
        weight: Option<u32>,
        #[arg(long, value_name = "PCT")]
        cap: Option<u32>,
        /// Bytes per second on each of its NICs, each direction apart: an amount in
        /// IEC units, `/s` optional (`1MiB/s`, `500KiB`, `1.5MiB`, `125000`), with
        /// `,burst=BYTES` the bucket's size (at least the rate; the rate if left out).
        /// `off` removes the limit.
        #[arg(long = "net-rate", value_name = "RATE[,burst=BYTES]|off", value_parser = parse_net_rate)]
        net_rate: Option<RateArg>,
        /// Frames per second on each of its NICs, each direction apart, with
        /// `,burst=N` the bucket's size. `off` removes the limit.
        #[arg(long = "net-pps", value_name = "N[,burst=N]|off", value_parser = parse_net_pps)]
        net_pps: Option<RateArg>,
        /// The memory high-water mark (cgroup's `memory.high`), MiB, at most the quota:
        /// above it the partition's `mem_grow` calls are slowed. `off` removes it.
        #[arg(long = "memory-high", value_name = "MIB|off", value_parser = parse_memory_high)]
        memory_high: Option<u64>,
        /// Disk reads and writes per second, all its agents' together, with `,burst=N`
        /// the bucket's size. `off` removes the limit.
        #[arg(long = "disk-iops", value_name = "N[,burst=N]|off", value_parser = parse_disk_iops)]
        disk_iops: Option<RateArg>,
        /// Disk bytes read plus written per second, all its agents' together, in IEC
        /// units as `--net-rate`, with `,burst=BYTES`. `off` removes the limit.
        #[arg(long = "disk-rate", value_name = "RATE[,burst=BYTES]|off", value_parser = parse_net_rate)]
        disk_rate: Option<RateArg>,
    },
    /// Attach a data extent of the appliance disk.
    AttachDisk { name: String, extent: String },
    /// Detach its data disk.
    DetachDisk { name: String },
    /// Attach a virtual NIC; the runtime numbers it (and derives its MAC unless --mac).
    AttachNic {
        name: String,
        /// Its MAC: `xx:xx:xx:xx:xx:xx` in hex, unicast.
        #[arg(long, value_name = "MAC")]
        mac: Option<String>,
    },
    /// Detach NIC INDEX (0 to 7, as `show` numbers them).
    DetachNic { name: String, index: u8 },
}

/// A `--net-rate` or `--net-pps` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateArg {
    /// `off`: the limit is removed.
    Off,
    /// A rate per second, and the bucket's size if given.
    Limit { rate: u64, burst: Option<u64> },
}

impl RateArg {
    /// The resize's rate and burst fields: `off` is a rate of 0.
    fn fields(arg: Option<RateArg>) -> (Option<u64>, Option<u64>) {
        match arg {
            None => (None, None),
            Some(RateArg::Off) => (Some(0), None),
            Some(RateArg::Limit { rate, burst }) => (Some(rate), burst),
        }
    }
}

/// Why a NIC or rate option was refused (clap prints it with the option).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("expected nothing (a derived MAC) or mac=MAC, not {0:?}")]
    Nic(String),
    #[error("expected RATE, RATE,burst=AMOUNT or off, not {0:?}")]
    RateSyntax(String),
    #[error("{0:?} is not a number of frames per second (a whole number, /s optional)")]
    Frames(String),
    #[error("{0:?} is not a number of requests per second (a whole number, /s optional)")]
    Requests(String),
    #[error("a rate of 0 is no limit: `off` removes the limit")]
    Zero,
    #[error("off takes no burst")]
    OffWithBurst,
    #[error(transparent)]
    Amount(#[from] AmountError),
}

/// `--nic`'s value: empty (the runtime derives the MAC) or `mac=MAC`. The MAC itself is
/// checked with the rest of the command.
fn parse_nic(text: &str) -> Result<NicSpec, OptionError> {
    if text.is_empty() {
        return Ok(NicSpec::default());
    }
    match text.split_once('=') {
        Some(("mac", mac)) => Ok(NicSpec::new(Some(mac))),
        _ => Err(OptionError::Nic(text.to_string())),
    }
}

/// `RATE[,burst=B]` or `off`, reading RATE and B with `amount`.
fn parse_rate_arg(
    text: &str,
    amount: impl Fn(&str) -> Result<u64, OptionError>,
) -> Result<RateArg, OptionError> {
    let (rate, burst) = match text.split_once(',') {
        Some((rate, rest)) => match rest.strip_prefix("burst=") {
            Some(b) => (rate, Some(b)),
            None => return Err(OptionError::RateSyntax(text.to_string())),
        },
        None => (text, None),
    };
    if rate.eq_ignore_ascii_case("off") {
        return match burst {
            None => Ok(RateArg::Off),
            Some(_) => Err(OptionError::OffWithBurst),
        };
    }
    let rate = amount(rate.strip_suffix("/s").unwrap_or(rate))?;
    if rate == 0 {
        return Err(OptionError::Zero);
    }
    Ok(RateArg::Limit {
        rate,
        burst: burst.map(amount).transpose()?,
    })
}

/// `--net-rate`: bytes per second, IEC units (`1MiB/s`, `500KiB,burst=1MiB`), or `off`.
pub fn parse_net_rate(text: &str) -> Result<RateArg, OptionError> {
    parse_rate_arg(text, |a| Ok(parse_bytes(a)?))
}

/// `--memory-high`: MiB, or `off` (sent as 0: no mark).
pub fn parse_memory_high(text: &str) -> Result<u64, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    match text.parse::<u64>() {
        Ok(0) => Err(String::from("0 is no mark: `off` removes it")),
        Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("{text:?} is not a number of MiB or off")),
    }
}

/// `--disk-iops`: whole requests per second (`200/s`, `200,burst=400`), or `off`.
pub fn parse_disk_iops(text: &str) -> Result<RateArg, OptionError> {
    parse_rate_arg(text, |a| {
        a.parse::<u64>()
            .ok()
            .filter(|_| a.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| OptionError::Requests(a.to_string()))
    })
}

/// `--net-pps`: whole frames per second (`10000/s`, `500,burst=2000`), or `off`.
pub fn parse_net_pps(text: &str) -> Result<RateArg, OptionError> {
    parse_rate_arg(text, |a| {
        if a.is_empty() || !a.bytes().all(|b| b.is_ascii_digit()) {
            return Err(OptionError::Frames(a.to_string()));
        }
        a.parse().map_err(|_| OptionError::Frames(a.to_string()))
    })
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
                nics,
            } => Command::Create(CreatePartition {
                name: name(n),
                memory_mib: *memory,
                cpu_weight: *weight,
                cpu_cap_percent: *cap,
                tenant: tenant.clone(),
                labels: labels.clone(),
                disk: disk.clone(),
                agents: agents.iter().map(|a| AgentRef::parse(a)).collect(),
                nics: nics.clone(),
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
                net_rate,
                net_pps,
                memory_high,
                disk_iops,
                disk_rate,
            } => {
                let (net_bytes_per_sec, net_bytes_burst) = RateArg::fields(*net_rate);
                let (net_packets_per_sec, net_packets_burst) = RateArg::fields(*net_pps);
                let (disk_iops, disk_iops_burst) = RateArg::fields(*disk_iops);
                let (disk_bytes_per_sec, disk_bytes_burst) = RateArg::fields(*disk_rate);
                Command::Resize {
                    name: name(n),
                    resize: Resize {
                        memory_mib: *memory,
                        cpu_weight: *weight,
                        cpu_cap_percent: *cap,
                        net_bytes_per_sec,
                        net_bytes_burst,
                        net_packets_per_sec,
                        net_packets_burst,
                        memory_high_mib: *memory_high,
                        disk_iops,
                        disk_iops_burst,
                        disk_bytes_per_sec,
                        disk_bytes_burst,
                    },
                }
            }
            PartCmd::AttachDisk { name: n, extent } => Command::AttachDisk {
                name: name(n),
                disk: AttachDisk {
                    extent: extent.clone(),
                },
            },
            PartCmd::DetachDisk { name: n } => Command::DetachDisk { name: name(n) },
            PartCmd::AttachNic { name: n, mac } => Command::AttachNic {
                name: name(n),
                nic: NicSpec::new(mac.as_deref()),
            },
            PartCmd::DetachNic { name: n, index } => Command::DetachNic {
                name: name(n),
                index: *index,
            },
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
        "nics" => "--nic",
        "mac" => "--mac",
        "index" => "INDEX",
        "net_bytes_per_sec" | "net_bytes_burst" => "--net-rate",
        "net_packets_per_sec" | "net_packets_burst" => "--net-pps",
        "memory_high_mib" => "--memory-high",
        "disk_iops" | "disk_iops_burst" => "--disk-iops",
        "disk_bytes_per_sec" | "disk_bytes_burst" => "--disk-rate",
        "body" => {
            return String::from(
                "resize needs --memory, --weight, --cap, --net-rate, --net-pps, --memory-high, \
                 --disk-iops or --disk-rate",
            );
        }
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
            let nics = match p.nics.len() {
                0 => String::new(),
                1 => String::from(", 1 NIC"),
                n => format!(", {n} NICs"),
            };
            format!(
                "created {name} ({state}, {} MiB, {agents} agent{}{nics})",
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
        Command::Resize { resize, .. } => {
            let mut line = format!(
                "resized {name}: memory quota {} MiB",
                mib_of(p.memory.quota_bytes)
            );
            if let Some(a) = p.agents.first() {
                let _ = write!(line, ", cpu {}", format_cpu(&a.cpu));
            }
            // One setting for all its NICs: the first one shows it.
            if let (true, Some(nic)) = (resize.has_network(), p.nics.first()) {
                let _ = write!(line, ", net {}", format_rate(nic.rate.as_ref()));
            }
            line
        }
        Command::AttachDisk { disk, .. } => format!(
            "attached {} to {name} ({})",
            disk.extent,
            format_disk(p.disk.as_ref())
        ),
        Command::DetachDisk { .. } => format!("detached the data disk of {name}"),
        Command::AttachNic { nic, .. } => {
            // Given a MAC, the new NIC is the one with it; else the answer cannot tell
            // which is new, and all are listed.
            let given = nic
                .parsed_mac()
                .ok()
                .flatten()
                .map(plinth_control::format_mac);
            match given.and_then(|mac| p.nics.iter().find(|n| n.mac.eq_ignore_ascii_case(&mac))) {
                Some(n) => format!(
                    "attached NIC {} to {name}: {}",
                    n.index,
                    format_nic_brief(n)
                ),
                None => {
                    let all: Vec<String> = p.nics.iter().map(format_nic_brief).collect();
                    format!("attached a NIC to {name}; its NICs: {}", list_or_none(&all))
                }
            }
        }
        Command::DetachNic { index, .. } => {
            let left = p.nics.len();
            format!(
                "detached NIC {index} of {name} ({left} NIC{} left)",
                if left == 1 { "" } else { "s" }
            )
        }
    }
}

/// `GET /api/v1/partitions` as a table.
pub fn format_list(list: &PartitionList) -> String {
    if list.partitions.is_empty() {
        return String::from("no partitions");
    }
    let header = ["NAME", "STATE", "TENANT", "MEMORY MiB", "AGENTS"].map(String::from);
    let mut rows = vec![header.to_vec()];
    for p in &list.partitions {
        let agents: Vec<String> = p
            .agents
            .iter()
            .map(|a| format!("{}@{} {}", a.name, a.version, a.status))
            .collect();
        rows.push(vec![
            p.name.clone(),
            p.state.to_string(),
            p.tenant.as_deref().unwrap_or("-").to_string(),
            format!(
                "{}/{}",
                mib_of(p.memory.used_bytes),
                mib_of(p.memory.quota_bytes)
            ),
            list_or_none(&agents),
        ]);
    }
    table(&rows)
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
    let mark = m
        .high_bytes
        .map(|h| format!(", high-water mark {} MiB", mib_of(h)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "memory:  {} MiB used of {} MiB (peak {} MiB{mark})",
        mib_of(m.used_bytes),
        mib_of(m.quota_bytes),
        mib_of(m.peak_bytes)
    );
    let _ = write!(out, "disk:    {}", format_disk(p.disk.as_ref()));
    if let Some(d) = &p.disk {
        let _ = write!(out, ": {}", format_disk_use(d));
    }
    if p.nics.is_empty() {
        out.push_str("\nnics:    -");
    }
    for n in &p.nics {
        let _ = write!(out, "\n{}", format_nic(n));
    }
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

/// A NIC's line of `show`: `nic 0    02:00:00:00:01:00 on web/0, VLAN 100 (tenant acme):
/// rx …, tx …, 3 drops, 2 queued, rate 1 MiB/s (burst 2 MiB)`.
fn format_nic(n: &NicView) -> String {
    format!(
        "nic {:<4} {}: rx {} frames ({}), tx {} frames ({}), {} drops, {} queued, rate {}",
        n.index,
        format_nic_brief(n),
        n.rx_frames,
        format_bytes(n.rx_bytes),
        n.tx_frames,
        format_bytes(n.tx_bytes),
        n.drops,
        n.queued,
        format_rate(n.rate.as_ref())
    )
}

/// `02:00:00:00:01:00 on web/0, VLAN 100 (tenant acme)`; the native VLAN as `native
/// VLAN`.
fn format_nic_brief(n: &NicView) -> String {
    let vlan = match n.vlan {
        Some(v) => format!("VLAN {v}"),
        None => String::from("native VLAN"),
    };
    let tenant = n
        .tenant
        .as_deref()
        .map(|t| format!(" (tenant {t})"))
        .unwrap_or_default();
    format!("{} on {}, {vlan}{tenant}", n.mac, n.port)
}

/// What the partition did with its disk and the governor's budget: `7 reads (28 KiB),
/// 3 writes (1.5 KiB), 2 throttled (5 ms), 1 waiting, budget 100 IOPS (burst 200)`.
fn format_disk_use(d: &DiskView) -> String {
    let u = &d.usage;
    let r = d.rate.unwrap_or_default();
    let mut budget = Vec::new();
    if let Some(iops) = r.iops {
        let burst = r.iops_burst.filter(|b| *b != iops);
        budget.push(format!(
            "{iops} IOPS{}",
            burst.map(|b| format!(" (burst {b})")).unwrap_or_default()
        ));
    }
    if let Some(bps) = r.bytes_per_sec {
        let burst = r.bytes_burst.filter(|b| *b != bps);
        budget.push(format!(
            "{}/s{}",
            format_bytes(bps),
            burst
                .map(|b| format!(" (burst {})", format_bytes(b)))
                .unwrap_or_default()
        ));
    }
    format!(
        "{} reads ({}), {} writes ({}), {} throttled ({} ms), {} waiting, budget {}",
        u.reads,
        format_bytes(u.read_bytes),
        u.writes,
        format_bytes(u.written_bytes),
        u.throttled,
        u.throttled_ns / 1_000_000,
        d.waiting,
        if budget.is_empty() {
            String::from("unlimited")
        } else {
            budget.join(", ")
        }
    )
}

/// A NIC's limits: `1 MiB/s (burst 2 MiB), 1000 frames/s (burst 1000)`; none:
/// `unlimited`.
pub fn format_rate(rate: Option<&NetRateView>) -> String {
    let r = rate.copied().unwrap_or_default();
    let burst = |b: Option<u64>, show: &dyn Fn(u64) -> String| {
        b.map(|b| format!(" (burst {})", show(b)))
            .unwrap_or_default()
    };
    let mut parts = Vec::new();
    if let Some(bps) = r.bytes_per_sec {
        parts.push(format!(
            "{}/s{}",
            format_bytes(bps),
            burst(r.bytes_burst, &format_bytes)
        ));
    }
    if let Some(pps) = r.packets_per_sec {
        parts.push(format!(
            "{pps} frames/s{}",
            burst(r.packets_burst, &|b| b.to_string())
        ));
    }
    if parts.is_empty() {
        String::from("unlimited")
    } else {
        parts.join(", ")
    }
}

/// Items joined by `, `, or `-` for none.
fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        String::from("-")
    } else {
        items.join(", ")
    }
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

    /// Two NICs, as the runtime writes them: NIC 0 on the native VLAN without limits,
    /// NIC 3 on a tenant's VLAN with both limits (the frame burst left out).
    const NICS: &str = concat!(
        r#""nics":[{"index":0,"mac":"02:00:00:00:01:00","port":"mgmt/0","vlan":null,"tenant":null,"#,
        r#""rx_frames":10,"rx_bytes":1200,"tx_frames":12,"tx_bytes":1500,"drops":0,"queued":0,"rate":null},"#,
        r#"{"index":3,"mac":"02:00:00:00:01:03","port":"mgmt/3","vlan":100,"tenant":"acme","#,
        r#""rx_frames":0,"rx_bytes":0,"tx_frames":18446744073709551615,"tx_bytes":18446744073709551615,"#,
        r#""drops":3,"queued":2,"rate":{"bytes_per_sec":1048576,"bytes_burst":2097152,"#,
        r#""packets_per_sec":1000,"packets_burst":null}}]"#
    );

    fn with_nics_json() -> String {
        PARTITION.replace(r#""nics":[]"#, NICS)
    }

    fn with_nics() -> PartitionView {
        PartitionView::from_json(with_nics_json().as_bytes()).unwrap()
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
    fn nic_subcommands_and_options_map_to_their_commands() {
        let n = || String::from("web");
        assert_eq!(
            command(&["attach-nic", "web"]),
            Ok(Command::AttachNic {
                name: n(),
                nic: NicSpec::default()
            })
        );
        assert_eq!(
            command(&["attach-nic", "web", "--mac", "02:00:00:00:00:0A"]),
            Ok(Command::AttachNic {
                name: n(),
                nic: NicSpec::new(Some("02:00:00:00:00:0A"))
            })
        );
        assert_eq!(
            command(&["detach-nic", "web", "7"]),
            Ok(Command::DetachNic {
                name: n(),
                index: 7
            })
        );
        // --nic alone, with a MAC, repeated, before and after other options.
        let nics = |args: &[&str]| match command(args) {
            Ok(Command::Create(c)) => c.nics,
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(nics(&["create", "web", "--memory", "8"]), []);
        assert_eq!(
            nics(&["create", "web", "--memory", "8", "--nic"]),
            [NicSpec::default()]
        );
        assert_eq!(
            nics(&[
                "create",
                "web",
                "--nic",
                "--memory",
                "8",
                "--nic",
                "mac=02:00:00:00:00:01",
                "--nic",
            ]),
            [
                NicSpec::default(),
                NicSpec::new(Some("02:00:00:00:00:01")),
                NicSpec::default()
            ]
        );
        assert_eq!(
            nics(&[
                "create",
                "web",
                "--memory",
                "8",
                "--nic=mac=02:00:00:00:00:02"
            ]),
            [NicSpec::new(Some("02:00:00:00:00:02"))]
        );
        let resize = |args: &[&str]| match command(args) {
            Ok(Command::Resize { resize, .. }) => resize,
            other => panic!("{args:?}: {other:?}"),
        };
        assert_eq!(
            resize(&["resize", "web", "--net-rate", "1MiB/s"]),
            Resize {
                net_bytes_per_sec: Some(1 << 20),
                ..Resize::default()
            }
        );
        assert_eq!(
            resize(&[
                "resize",
                "web",
                "--net-rate",
                "500KiB,burst=2MiB",
                "--net-pps",
                "1000/s,burst=4000",
                "--memory",
                "64",
            ]),
            Resize {
                memory_mib: Some(64),
                net_bytes_per_sec: Some(500 << 10),
                net_bytes_burst: Some(2 << 20),
                net_packets_per_sec: Some(1000),
                net_packets_burst: Some(4000),
                ..Resize::default()
            }
        );
        assert_eq!(
            resize(&["resize", "web", "--net-rate", "off", "--net-pps", "OFF"]),
            Resize {
                net_bytes_per_sec: Some(0),
                net_packets_per_sec: Some(0),
                ..Resize::default()
            }
        );
        assert_eq!(
            resize(&[
                "resize",
                "web",
                "--disk-iops",
                "200/s,burst=400",
                "--disk-rate",
                "1MiB/s"
            ]),
            Resize {
                disk_iops: Some(200),
                disk_iops_burst: Some(400),
                disk_bytes_per_sec: Some(1 << 20),
                ..Resize::default()
            }
        );
        assert_eq!(
            resize(&["resize", "web", "--disk-iops", "off"]),
            Resize {
                disk_iops: Some(0),
                ..Resize::default()
            }
        );
        for bad in ["1.5", "2k", "-1", "", "0"] {
            assert!(parse_disk_iops(bad).is_err(), "{bad}");
        }
        assert_eq!(
            resize(&["resize", "web", "--memory-high", "12"]).memory_high_mib,
            Some(12)
        );
        assert_eq!(
            resize(&["resize", "web", "--memory-high", "off"]).memory_high_mib,
            Some(0)
        );
        for bad in ["0", "1.5", "12MiB", ""] {
            assert!(parse_memory_high(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_and_nic_option_values() {
        let limit = |rate, burst| RateArg::Limit { rate, burst };
        for (text, want) in [
            ("off", RateArg::Off),
            ("Off", RateArg::Off),
            ("1", limit(1, None)),
            ("125000", limit(125_000, None)),
            ("125000/s", limit(125_000, None)),
            ("1MiB/s", limit(1 << 20, None)),
            ("1mib/s", limit(1 << 20, None)),
            ("500KiB", limit(500 << 10, None)),
            ("1.5MiB", limit(3 << 19, None)),
            ("1 MiB/s", limit(1 << 20, None)),
            ("1MiB/s,burst=4MiB", limit(1 << 20, Some(4 << 20))),
            ("1MiB,burst=1048576", limit(1 << 20, Some(1 << 20))),
            // The burst is checked against the rate with the command (below).
            ("1MiB,burst=0", limit(1 << 20, Some(0))),
        ] {
            assert_eq!(parse_net_rate(text), Ok(want), "{text}");
        }
        for (text, want) in [
            ("0", OptionError::Zero),
            ("0KiB/s", OptionError::Zero),
            ("0.1B", OptionError::Zero),
            ("off,burst=1", OptionError::OffWithBurst),
            ("1MiB,2MiB", OptionError::RateSyntax("1MiB,2MiB".into())),
            ("1MiB,burst", OptionError::RateSyntax("1MiB,burst".into())),
            ("1MiB,size=2", OptionError::RateSyntax("1MiB,size=2".into())),
            (
                "10MB/s",
                OptionError::Amount(AmountError::Unit {
                    text: "10MB".into(),
                    unit: "MB".into(),
                }),
            ),
            (
                "10Mbit",
                OptionError::Amount(AmountError::Unit {
                    text: "10Mbit".into(),
                    unit: "Mbit".into(),
                }),
            ),
            ("", OptionError::Amount(AmountError::Malformed("".into()))),
            (
                "fast",
                OptionError::Amount(AmountError::Malformed("fast".into())),
            ),
            (
                "1MiB/s/s",
                OptionError::Amount(AmountError::Malformed("1MiB/s".into())),
            ),
            (
                "1MiB,burst=2MiB/s",
                OptionError::Amount(AmountError::Malformed("2MiB/s".into())),
            ),
            (
                "-1",
                OptionError::Amount(AmountError::Malformed("-1".into())),
            ),
        ] {
            assert_eq!(parse_net_rate(text), Err(want), "{text}");
        }
        for (text, want) in [
            ("off", RateArg::Off),
            ("1", limit(1, None)),
            ("10000/s", limit(10_000, None)),
            ("500,burst=2000", limit(500, Some(2000))),
            ("18446744073709551615", limit(u64::MAX, None)),
        ] {
            assert_eq!(parse_net_pps(text), Ok(want), "{text}");
        }
        for (text, want) in [
            ("0", OptionError::Zero),
            ("1KiB", OptionError::Frames("1KiB".into())),
            ("1.5", OptionError::Frames("1.5".into())),
            ("10k", OptionError::Frames("10k".into())),
            ("+1", OptionError::Frames("+1".into())),
            ("", OptionError::Frames("".into())),
            (
                "18446744073709551616",
                OptionError::Frames("18446744073709551616".into()),
            ),
            ("1,burst=x", OptionError::Frames("x".into())),
            ("off,burst=1", OptionError::OffWithBurst),
        ] {
            assert_eq!(parse_net_pps(text), Err(want), "{text}");
        }
        assert_eq!(
            parse_net_rate("0").unwrap_err().to_string(),
            "a rate of 0 is no limit: `off` removes the limit"
        );
        assert_eq!(parse_nic(""), Ok(NicSpec::default()));
        assert_eq!(
            parse_nic("mac=02:00:00:00:00:01"),
            Ok(NicSpec::new(Some("02:00:00:00:00:01")))
        );
        // The MAC is checked with the command: here only the syntax.
        assert_eq!(parse_nic("mac=x"), Ok(NicSpec::new(Some("x"))));
        assert_eq!(parse_nic("mac="), Ok(NicSpec::new(Some(""))));
        for bad in [
            "02:00:00:00:00:01",
            "MAC=02:00:00:00:00:01",
            "vlan=10",
            "mac",
        ] {
            assert_eq!(parse_nic(bad), Err(OptionError::Nic(bad.into())), "{bad}");
        }
        assert_eq!(
            parse_nic("web").unwrap_err().to_string(),
            "expected nothing (a derived MAC) or mac=MAC, not \"web\""
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
            &[
                "create",
                "p",
                "--memory",
                "8",
                "--nic",
                "--nic",
                "mac=02:00:00:00:00:01",
            ],
            &["attach-nic", "p"],
            &["attach-nic", "p", "--mac", "52:54:00:AB:CD:EF"],
            &["detach-nic", "p", "0"],
            &["resize", "p", "--net-rate", "1MiB/s,burst=2MiB"],
            &[
                "resize",
                "p",
                "--net-rate",
                "off",
                "--net-pps",
                "100,burst=100",
            ],
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
        let c = command(&["attach-nic", "p"]).unwrap();
        assert_eq!(
            (c.method(), c.path().as_str()),
            ("POST", "/api/v1/partitions/p/nics")
        );
        assert_eq!(body(&c).unwrap(), b"{}");
        let c = command(&["detach-nic", "p", "3"]).unwrap();
        assert_eq!(
            (c.method(), c.path().as_str(), body(&c)),
            ("DELETE", "/api/v1/partitions/p/nics/3", None)
        );
        let c = command(&["resize", "p", "--net-rate", "off"]).unwrap();
        assert_eq!(body(&c).unwrap(), br#"{"net_bytes_per_sec":0}"#);
        let c = command(&["create", "p", "--memory", "1", "--nic"]).unwrap();
        assert_eq!(
            body(&c).unwrap(),
            br#"{"name":"p","memory_mib":1,"nics":[{}]}"#
        );
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
        assert_eq!(
            field(&[
                "create",
                "p",
                "--memory",
                "1",
                "--nic",
                "mac=01:00:5e:00:00:01"
            ]),
            "nics"
        );
        let nine: Vec<&str> = ["create", "p", "--memory", "1"]
            .into_iter()
            .chain(["--nic"; 9])
            .collect();
        assert_eq!(field(&nine), "nics");
        assert_eq!(
            field(&["attach-nic", "p", "--mac", "02:00:00:00:00"]),
            "mac"
        );
        assert_eq!(field(&["detach-nic", "p", "8"]), "index");
        assert_eq!(
            field(&["resize", "p", "--net-rate", "1MiB,burst=1KiB"]),
            "net_bytes_burst"
        );
        assert_eq!(
            field(&["resize", "p", "--net-pps", "10,burst=9"]),
            "net_packets_burst"
        );
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
            "resize needs --memory, --weight, --cap, --net-rate, --net-pps, --memory-high, \
             --disk-iops or --disk-rate"
        );
        assert_eq!(
            message(&["resize", "p", "--disk-iops", "10,burst=9"]),
            "invalid --disk-iops: 9 is below disk_iops 10; a burst holds at least one second \
             of the rate"
        );
        assert_eq!(
            message(&["attach-nic", "p", "--mac", "ff:ff:ff:ff:ff:ff"]),
            "invalid --mac: \"ff:ff:ff:ff:ff:ff\" is a multicast address (the first octet's \
             low bit is set); a NIC needs a unicast one"
        );
        assert_eq!(
            message(&["create", "p", "--memory", "1", "--nic", "mac=zz"]),
            "invalid --nic: NIC 0: \"zz\" is not a MAC address: expected xx:xx:xx:xx:xx:xx in hex"
        );
        assert_eq!(
            message(&["detach-nic", "p", "9"]),
            "invalid INDEX: 9 is out of range: 0 to 7"
        );
        assert_eq!(
            message(&["resize", "p", "--net-pps", "10,burst=9"]),
            "invalid --net-pps: 9 is below net_packets_per_sec 10; a burst holds at least \
             one second of the rate"
        );
        // clap refuses what the option syntax does not take, naming the option.
        for args in [
            &["resize", "p", "--net-rate", "10MB"][..],
            &["resize", "p", "--net-rate", "0"],
            &["resize", "p", "--net-rate", "off,burst=1"],
            &["resize", "p", "--net-pps", "1.5"],
            &["create", "p", "--memory", "1", "--nic", "vlan=3"],
            &["detach-nic", "p", "256"],
            &["detach-nic", "p", "-1"],
            &["detach-nic", "p"],
            &["attach-nic"],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
        let e = parse(&["resize", "p", "--net-rate", "10Mbit"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--net-rate") && e.contains("\"Mbit\" is not a unit taken here"),
            "{e}"
        );
        // A bare --nic before NAME takes NAME for its value.
        let e = parse(&["create", "--nic", "web", "--memory", "1"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("expected nothing (a derived MAC) or mac=MAC"),
            "{e}"
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
             disk:    8 MiB at LBA 4096: 0 reads (0 B), 0 writes (0 B), 0 throttled (0 ms), \
             0 waiting, budget unlimited\n\
             nics:    -\n\
             agent    hello 0.1.0: running (task 1, 0.000 s cpu, 5 syscalls, 0 restarts, \
             3 heartbeats, last 200 ms ago, cpu weight 50, cap 20%)"
        );
        assert_eq!(
            format_partition(&with_nics()),
            "mgmt (id 1): running\n\
             tenant:  -\n\
             labels:  management\n\
             memory:  0.5 MiB used of 32 MiB (peak 0.5 MiB)\n\
             disk:    8 MiB at LBA 4096: 0 reads (0 B), 0 writes (0 B), 0 throttled (0 ms), \
             0 waiting, budget unlimited\n\
             nic 0    02:00:00:00:01:00 on mgmt/0, native VLAN: rx 10 frames (1.2 KiB), \
             tx 12 frames (1.5 KiB), 0 drops, 0 queued, rate unlimited\n\
             nic 3    02:00:00:00:01:03 on mgmt/3, VLAN 100 (tenant acme): rx 0 frames (0 B), \
             tx 18446744073709551615 frames (16.0 EiB), 3 drops, 2 queued, \
             rate 1 MiB/s (burst 2 MiB), 1000 frames/s\n\
             agent    hello 0.1.0: running (task 1, 0.000 s cpu, 5 syscalls, 0 restarts, \
             3 heartbeats, last 200 ms ago, cpu weight 50, cap 20%)"
        );
        let bare = r#"{"id":7,"name":"x","state":"stopped","tenant":"t","labels":[],"memory":{"quota_bytes":0,"used_bytes":0,"peak_bytes":0,"page_table_bytes":0},"disk":null,"agents":[],"nics":[]}"#;
        let show = command(&["show", "x"]).unwrap();
        assert_eq!(
            format_answer(&show, bare.as_bytes()).unwrap(),
            "x (id 7): stopped\ntenant:  t\nlabels:  -\nmemory:  0 MiB used of 0 MiB (peak 0 MiB)\n\
             disk:    none\nnics:    -\nagents:  -"
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
        let nics = with_nics_json();
        let line = |args: &[&str]| format_answer(&command(args).unwrap(), nics.as_bytes()).unwrap();
        assert_eq!(
            line(&["create", "mgmt", "--memory", "32", "--nic", "--nic"]),
            "created mgmt (running, 32 MiB, 1 agent, 2 NICs)"
        );
        assert_eq!(
            line(&["attach-nic", "mgmt", "--mac", "02:00:00:00:01:03"]),
            "attached NIC 3 to mgmt: 02:00:00:00:01:03 on mgmt/3, VLAN 100 (tenant acme)"
        );
        assert_eq!(
            line(&["attach-nic", "mgmt", "--mac", "02:00:00:00:01:0A"]),
            "attached a NIC to mgmt; its NICs: 02:00:00:00:01:00 on mgmt/0, native VLAN, \
             02:00:00:00:01:03 on mgmt/3, VLAN 100 (tenant acme)"
        );
        assert_eq!(
            line(&["attach-nic", "mgmt"]),
            line(&["attach-nic", "mgmt", "--mac", "02:00:00:00:01:0a"])
        );
        assert_eq!(
            line(&["detach-nic", "mgmt", "1"]),
            "detached NIC 1 of mgmt (2 NICs left)"
        );
        assert_eq!(
            line(&["resize", "mgmt", "--net-rate", "1MiB"]),
            "resized mgmt: memory quota 32 MiB, cpu weight 50, cap 20%, net unlimited"
        );
        assert_eq!(
            line(&["resize", "mgmt", "--cap", "20"]),
            "resized mgmt: memory quota 32 MiB, cpu weight 50, cap 20%"
        );
        assert_eq!(
            format_rate(with_nics().nics[1].rate.as_ref()),
            "1 MiB/s (burst 2 MiB), 1000 frames/s"
        );
        let mut one = with_nics();
        one.nics.truncate(1);
        assert_eq!(
            format_answer(
                &command(&["detach-nic", "mgmt", "3"]).unwrap(),
                one.to_json().as_bytes()
            )
            .unwrap(),
            "detached NIC 3 of mgmt (1 NIC left)"
        );
        assert_eq!(
            format_answer(
                &command(&["attach-nic", "mgmt"]).unwrap(),
                PARTITION.as_bytes()
            )
            .unwrap(),
            "attached a NIC to mgmt; its NICs: -"
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
