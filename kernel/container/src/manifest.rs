//! `manifest.toml`: what the agent is, how to start it, and what it expects to use.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::{MANIFEST_NAME, SIGNATURE_NAME};

/// The parsed, validated `manifest.toml` of an agent container.
///
/// ```toml
/// name = "web"                       # [a-z0-9][a-z0-9-]{0,62}
/// version = "1.2.0"                  # MAJOR.MINOR.PATCH, no leading zeros
/// entry = "bin/web"                  # the executable to start, a path in the container
/// args = ["--port", "80"]            # optional, default none
/// config = ["etc/web.toml"]          # optional: config files, paths in the container
/// devices = ["net", "console"]       # optional: from "disk", "net", "console"
///
/// [env]                              # optional: KEY = "value", KEY is [A-Z_][A-Z0-9_]*
/// RUST_LOG = "info"
///
/// [resources.cpu]                    # required: percent of one CPU (200 = two CPUs busy)
/// average_percent = 10
/// peak_percent = 100
///
/// [resources.memory]                 # required: MiB
/// average_mib = 64
/// peak_mib = 256
///
/// [resources.disk]                   # optional (absent: no disk use)
/// average_bytes_per_sec = 0
/// peak_bytes_per_sec = 1048576
/// average_iops = 0
/// peak_iops = 100
///
/// [resources.network]                # optional (absent: no network use)
/// average_bytes_per_sec = 10000
/// peak_bytes_per_sec = 1000000
/// ```
///
/// Unknown keys anywhere are errors, and so is a peak below its average. Whether `entry`
/// and `config` name files of the container is checked by
/// [`Container`](crate::Container), which has the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The agent's name, `[a-z0-9][a-z0-9-]{0,62}`.
    pub name: String,
    pub version: Version,
    /// Path, inside the container, of the executable to start.
    pub entry: String,
    /// Arguments passed to `entry` (without the program name). No NUL bytes.
    pub args: Vec<String>,
    /// Environment of `entry`. Keys `[A-Z_][A-Z0-9_]*`, values without NUL bytes.
    pub env: BTreeMap<String, String>,
    /// Paths, inside the container, of the agent's configuration files. No duplicates.
    pub config: Vec<String>,
    pub resources: Resources,
    /// Devices the agent needs, no duplicates, in the manifest's order.
    pub devices: Vec<Device>,
    /// Where `entry` and each `config` path are in the text, for the container's
    /// "not in the container" errors.
    entry_pos: Pos,
    config_pos: Vec<Pos>,
}

/// `MAJOR.MINOR.PATCH`, each a decimal `u32` without leading zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Version {
    /// Parses `MAJOR.MINOR.PATCH` strictly: no pre-release or build suffix, no `v`, no
    /// leading zeros, no spaces.
    pub fn parse(s: &str) -> Result<Version, &'static str> {
        let mut parts = s.split('.');
        let mut next = || -> Result<u32, &'static str> {
            let part = parts.next().ok_or("expected MAJOR.MINOR.PATCH")?;
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err("expected MAJOR.MINOR.PATCH, each a decimal number");
            }
            if part.len() > 1 && part.starts_with('0') {
                return Err("version numbers must not have leading zeros");
            }
            part.parse().map_err(|_| "version number too large")
        };
        let version = Version {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        if parts.next().is_some() {
            return Err("expected MAJOR.MINOR.PATCH, found more parts");
        }
        Ok(version)
    }
}

/// Expected use of each resource: an average over the agent's life and a peak. Every
/// peak is at least its average.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    pub cpu: Cpu,
    pub memory: Memory,
    /// `None`: the agent does not use a disk.
    pub disk: Option<Disk>,
    /// `None`: the agent does not use the network.
    pub network: Option<Network>,
}

/// CPU time in percent of one CPU: 100 is one CPU fully busy, 250 two and a half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    pub average_percent: u32,
    pub peak_percent: u32,
}

/// Memory in MiB (2^20 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    pub average_mib: u64,
    pub peak_mib: u64,
}

/// Disk throughput (bytes read plus written per second) and operations per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disk {
    pub average_bytes_per_sec: u64,
    pub peak_bytes_per_sec: u64,
    pub average_iops: u64,
    pub peak_iops: u64,
}

/// Network throughput, bytes sent plus received per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    pub average_bytes_per_sec: u64,
    pub peak_bytes_per_sec: u64,
}

/// A device an agent may ask for, written in lowercase in the manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// A block device (virtio-blk).
    Disk,
    /// A network interface (virtio-net).
    Net,
    /// The serial console.
    Console,
}

impl Device {
    /// The name used in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Disk => "disk",
            Device::Net => "net",
            Device::Console => "console",
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a manifest, and where: 1-based line and column (in characters) of
/// the offending key or value. Displayed as `line:col: message`; the caller prefixes the
/// file name (`manifest.toml:3:8: ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// A position in the manifest text, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub(crate) fn error(self, message: String) -> ManifestError {
        ManifestError {
            line: self.line,
            col: self.col,
            message,
        }
    }
}

/// Byte offset into `src` to a 1-based line and column; the column counts characters,
/// as toml's own messages do. An offset past the end (or inside a character) is clamped.
/// Shared with `plinth-policy`, whose diagnostics count the same way.
pub fn line_col(src: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let col = before[line_start..].chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

pub(crate) fn pos_at(src: &str, offset: usize) -> Pos {
    let (line, col) = line_col(src, offset);
    Pos { line, col }
}

fn span_pos(src: &str, span: Option<Range<usize>>) -> Pos {
    span.map_or(Pos { line: 1, col: 1 }, |s| pos_at(src, s.start))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: Spanned<String>,
    version: Spanned<String>,
    entry: Spanned<String>,
    #[serde(default)]
    args: Vec<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    config: Vec<Spanned<String>>,
    resources: RawResources,
    #[serde(default)]
    devices: Vec<Spanned<Device>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResources {
    cpu: RawCpu,
    memory: RawMemory,
    disk: Option<RawDisk>,
    network: Option<RawNetwork>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCpu {
    average_percent: u32,
    peak_percent: Spanned<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemory {
    average_mib: u64,
    peak_mib: Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisk {
    average_bytes_per_sec: u64,
    peak_bytes_per_sec: Spanned<u64>,
    average_iops: u64,
    peak_iops: Spanned<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    average_bytes_per_sec: u64,
    peak_bytes_per_sec: Spanned<u64>,
}

/// Checks a name against `[a-z0-9][a-z0-9-]{0,62}`.
pub fn check_agent_name(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    match bytes.first() {
        None => return Err("name is empty"),
        Some(b) if !(b.is_ascii_lowercase() || b.is_ascii_digit()) => {
            return Err("name must start with a lowercase letter or a digit");
        }
        Some(_) => {}
    }
    if bytes.len() > 63 {
        return Err("name is longer than 63 characters");
    }
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("name may only hold lowercase letters, digits and `-`");
    }
    Ok(())
}

/// Checks an environment variable name against `[A-Z_][A-Z0-9_]*`.
pub fn check_env_key(key: &str) -> Result<(), &'static str> {
    let bytes = key.as_bytes();
    match bytes.first() {
        None => Err("environment variable name is empty"),
        Some(b) if b.is_ascii_digit() => {
            Err("environment variable name must not start with a digit")
        }
        Some(_)
            if bytes
                .iter()
                .all(|&b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
        {
            Ok(())
        }
        Some(_) => Err("environment variable name may only hold A-Z, 0-9 and `_`"),
    }
}

/// Checks a path the manifest refers to: a valid archive name (see
/// [`plinth_tar::check_name`]) other than the container's own `manifest.toml` and
/// `SIGNATURE`.
fn check_path(path: &str) -> Result<(), String> {
    plinth_tar::check_name(path).map_err(|e| format!("bad path {path:?}: {e}"))?;
    if path == MANIFEST_NAME || path == SIGNATURE_NAME {
        return Err(format!("{path:?} is reserved for the container itself"));
    }
    Ok(())
}

/// Checks `peak >= average` for one resource, pointing at the peak.
fn check_peak(
    src: &str,
    section: &str,
    average_key: &str,
    average: u64,
    peak_key: &str,
    peak: &Spanned<impl Copy + Into<u64>>,
) -> Result<(), ManifestError> {
    let value: u64 = (*peak.get_ref()).into();
    if value < average {
        return Err(pos_at(src, peak.span().start).error(format!(
            "resources.{section}.{peak_key} = {value} is below {average_key} = {average}; \
             the peak must be at least the average"
        )));
    }
    Ok(())
}

impl Manifest {
    /// Parses and validates a manifest. The first problem found is returned, with the
    /// position of the key or value at fault.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text)
            .map_err(|e| span_pos(text, e.span()).error(e.message().trim_end().to_string()))?;
        let at = |span: Range<usize>, message: String| pos_at(text, span.start).error(message);

        check_agent_name(raw.name.get_ref()).map_err(|m| at(raw.name.span(), m.to_string()))?;
        let version = Version::parse(raw.version.get_ref())
            .map_err(|m| at(raw.version.span(), format!("bad version: {m}")))?;
        check_path(raw.entry.get_ref()).map_err(|m| at(raw.entry.span(), m))?;
        for arg in &raw.args {
            if arg.get_ref().contains('\0') {
                return Err(at(arg.span(), "argument holds a NUL byte".to_string()));
            }
        }
        let mut env = BTreeMap::new();
        for (key, value) in &raw.env {
            check_env_key(key.get_ref()).map_err(|m| at(key.span(), m.to_string()))?;
            if value.get_ref().contains('\0') {
                return Err(at(
                    value.span(),
                    "environment value holds a NUL byte".to_string(),
                ));
            }
            env.insert(key.get_ref().clone(), value.get_ref().clone());
        }
        let mut config: Vec<String> = Vec::with_capacity(raw.config.len());
        let mut config_pos = Vec::with_capacity(raw.config.len());
        for path in &raw.config {
            check_path(path.get_ref()).map_err(|m| at(path.span(), m))?;
            if config.iter().any(|p| p == path.get_ref()) {
                return Err(at(
                    path.span(),
                    format!("config file {:?} is listed twice", path.get_ref()),
                ));
            }
            config.push(path.get_ref().clone());
            config_pos.push(pos_at(text, path.span().start));
        }
        let mut devices: Vec<Device> = Vec::with_capacity(raw.devices.len());
        for device in &raw.devices {
            if devices.contains(device.get_ref()) {
                return Err(at(
                    device.span(),
                    format!("device {:?} is listed twice", device.get_ref().as_str()),
                ));
            }
            devices.push(*device.get_ref());
        }

        let r = &raw.resources;
        check_peak(
            text,
            "cpu",
            "average_percent",
            r.cpu.average_percent.into(),
            "peak_percent",
            &r.cpu.peak_percent,
        )?;
        check_peak(
            text,
            "memory",
            "average_mib",
            r.memory.average_mib,
            "peak_mib",
            &r.memory.peak_mib,
        )?;
        if let Some(d) = &r.disk {
            check_peak(
                text,
                "disk",
                "average_bytes_per_sec",
                d.average_bytes_per_sec,
                "peak_bytes_per_sec",
                &d.peak_bytes_per_sec,
            )?;
            check_peak(
                text,
                "disk",
                "average_iops",
                d.average_iops,
                "peak_iops",
                &d.peak_iops,
            )?;
        }
        if let Some(n) = &r.network {
            check_peak(
                text,
                "network",
                "average_bytes_per_sec",
                n.average_bytes_per_sec,
                "peak_bytes_per_sec",
                &n.peak_bytes_per_sec,
            )?;
        }
        let resources = Resources {
            cpu: Cpu {
                average_percent: r.cpu.average_percent,
                peak_percent: *r.cpu.peak_percent.get_ref(),
            },
            memory: Memory {
                average_mib: r.memory.average_mib,
                peak_mib: *r.memory.peak_mib.get_ref(),
            },
            disk: r.disk.as_ref().map(|d| Disk {
                average_bytes_per_sec: d.average_bytes_per_sec,
                peak_bytes_per_sec: *d.peak_bytes_per_sec.get_ref(),
                average_iops: d.average_iops,
                peak_iops: *d.peak_iops.get_ref(),
            }),
            network: r.network.as_ref().map(|n| Network {
                average_bytes_per_sec: n.average_bytes_per_sec,
                peak_bytes_per_sec: *n.peak_bytes_per_sec.get_ref(),
            }),
        };

        Ok(Manifest {
            name: raw.name.get_ref().clone(),
            version,
            entry: raw.entry.get_ref().clone(),
            args: raw.args.iter().map(|a| a.get_ref().clone()).collect(),
            env,
            config,
            resources,
            devices,
            entry_pos: pos_at(text, raw.entry.span().start),
            config_pos,
        })
    }

    /// Where `entry` is in the manifest text.
    pub(crate) fn entry_pos(&self) -> Pos {
        self.entry_pos
    }

    /// The `config` paths with their positions in the manifest text.
    pub(crate) fn config_with_pos(&self) -> impl Iterator<Item = (&str, Pos)> {
        self.config
            .iter()
            .map(String::as_str)
            .zip(self.config_pos.iter().copied())
    }
}
