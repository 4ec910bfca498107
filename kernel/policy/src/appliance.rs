//! The appliance spec (`kind = "appliance"`): the machine, its partitions with their
//! resources, the agents and policies an appliance image carries, and the keys it trusts.
//!
//! ```toml
//! kind = "appliance"
//! name = "default"                     # [a-z0-9][a-z0-9-]{0,62}
//! version = "0.1.0"                    # MAJOR.MINOR.PATCH
//! trusted_keys = ["keys/dev.pub"]      # public key files (`ed25519 <hex>`); at least one
//! policies = ["policies/deployment.toml"]
//!
//! [machine]
//! memory_mib = 512                     # what partition quotas must fit in
//! cpus = 2
//! runtime_mib = 64                     # optional, default 64: kept for the runtime itself
//!
//! [[agent]]
//! dir = "agents/hello"                 # a directory with manifest.toml, packed at build
//! # file = "hello-0.1.0.agent"         # or a packed container
//!
//! [[partition]]
//! name = "mgmt"                        # at most 36 characters: it names the GPT entry
//! memory_mib = 64
//! cpus = 1
//! disk_mib = 16                        # optional, default 0: its data-disk extent
//! labels = ["management"]              # optional: deployment policies select by label
//! nics = 1                             # optional, default 0: virtual NICs on the bridge
//! ```
//!
//! Paths are relative to the spec's directory, `/`-separated, without `..`. In an
//! appliance image's catalog the same format names archive entries instead (the builder
//! rewrites the paths and packs `dir` agents), so the runtime reads it with this parser.
//! This module checks the spec on its own; policies are checked against it by
//! [`crate::check_files`].

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use plinth_container::{Version, check_agent_name};

use crate::doc::{At, Doc, Table};
use crate::{AgentDef, Diagnostic, Kind, Machine, PartitionDef, World};

/// Memory kept for the runtime when the spec does not say.
pub const DEFAULT_RUNTIME_MIB: u64 = 64;
/// The GPT entry name field holds 36 UTF-16 code units; partition names are ASCII.
pub const MAX_PARTITION_NAME: usize = 36;
/// More CPUs than any machine plinth targets; guards the arithmetic.
pub const MAX_CPUS: u64 = 1024;
/// Most virtual NICs one partition has (the system-call ABI numbers NICs 0..8).
pub const MAX_NICS: u64 = 8;
/// 16 TiB of memory, or of one data disk.
pub const MAX_MIB: u64 = 16 << 20;

/// A parsed, checked appliance spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appliance {
    pub name: String,
    pub version: Version,
    pub machine: Machine,
    pub runtime_mib: u64,
    /// Public key files, in the spec's order, with their positions for "cannot read".
    pub trusted_keys: Vec<At<String>>,
    pub policies: Vec<At<String>>,
    pub agents: Vec<At<AgentSource>>,
    pub partitions: Vec<Partition>,
}

/// Where an agent container comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentSource {
    /// A directory holding `manifest.toml` and the agent's files, packed at build time.
    Dir(String),
    /// A packed, signed `.agent` file.
    File(String),
}

impl AgentSource {
    pub fn path(&self) -> &str {
        match self {
            AgentSource::Dir(p) | AgentSource::File(p) => p,
        }
    }
}

/// A partition: its hard resources and its data-disk extent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub name: String,
    pub memory_mib: u64,
    pub cpus: u32,
    pub disk_mib: u64,
    pub labels: Vec<String>,
    /// Virtual NICs (access ports on its tenant's VLAN), at most [`MAX_NICS`].
    pub nics: u8,
}

/// Checks a path the spec names: relative, `/`-separated, no empty, `.` or `..` parts, no
/// backslashes or NULs, at most 255 bytes (the ustar name limit, since the catalog
/// stores the files under these names' rewrites).
pub fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("path is empty");
    }
    if path.len() > 255 {
        return Err("path is longer than 255 bytes");
    }
    if path.starts_with('/') {
        return Err("path must be relative to the spec's directory");
    }
    if path.contains('\\') || path.contains('\0') {
        return Err("path may not hold `\\` or NUL");
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err("path may not have empty, `.` or `..` parts");
    }
    Ok(())
}

fn read_paths(root: &Table<'_, '_>, key: &str, what: &str) -> Vec<At<String>> {
    let mut out: Vec<At<String>> = Vec::new();
    for p in root.str_array(key) {
        if let Err(m) = check_path(p.value) {
            root.error(p.span.clone(), format!("bad {what} {:?}: {m}", p.value));
        } else if let Some(first) = out.iter().find(|q| q.value == p.value) {
            let (line, _) = crate::doc::line_col(root.doc().src(), first.span.start);
            root.error(
                p.span.clone(),
                format!(
                    "{what} {:?} is listed twice (first on line {line})",
                    p.value
                ),
            );
        } else {
            out.push(At::new(p.value.to_string(), p.span));
        }
    }
    out
}

impl Appliance {
    /// Parses and checks a spec; `file` indexes the diagnostics. Every problem found is
    /// returned, in order of position.
    pub fn parse(text: &str, file: usize) -> Result<Appliance, Vec<Diagnostic>> {
        let doc = Doc::new(text, file);
        let parsed = doc.parse();
        let result = parsed.as_ref().and_then(|t| Self::read(&doc.root(t)));
        match result {
            Some(a) if !doc.has_errors() => Ok(a),
            _ => Err(doc.into_diagnostics()),
        }
    }

    fn read(root: &Table<'_, '_>) -> Option<Appliance> {
        let kind = Kind::read(root);
        if let Some(k) = kind.filter(|k| *k != Kind::Appliance) {
            let span = root.value_span("kind").unwrap_or(0..0);
            root.error(
                span,
                format!("expected kind = \"appliance\", found {:?}", k.as_str()),
            );
        }
        let name = root.str("name");
        if let Some(n) = &name
            && let Err(m) = check_agent_name(n.value)
        {
            root.error(n.span.clone(), format!("bad appliance name: {m}"));
        }
        let version = root.str("version").and_then(|v| {
            Version::parse(v.value)
                .map_err(|m| root.error(v.span.clone(), format!("bad version: {m}")))
                .ok()
        });
        let trusted_keys = read_paths(root, "trusted_keys", "key file");
        match root.value_span("trusted_keys") {
            None => root.error(
                root.span(),
                "missing key `trusted_keys`: an appliance trusts at least one key".to_string(),
            ),
            Some(span) if root.array("trusted_keys").is_empty() => root.error(
                span,
                "`trusted_keys` is empty: an appliance trusts at least one key".to_string(),
            ),
            Some(_) => {}
        }
        let policies = read_paths(root, "policies", "policy file");

        let machine = root.table("machine").and_then(|m| {
            let memory = m.u64_in("memory_mib", 1, MAX_MIB);
            let cpus = m.u64_in("cpus", 1, MAX_CPUS);
            let runtime = m.opt_u64_in("runtime_mib", 0, MAX_MIB);
            m.finish(&["memory_mib", "cpus", "runtime_mib"]);
            Some((
                Machine {
                    memory_mib: memory?.value,
                    cpus: u32::try_from(cpus?.value).ok()?,
                },
                runtime.map_or(DEFAULT_RUNTIME_MIB, |r| r.value),
            ))
        });

        let mut agents = Vec::new();
        for t in root.tables("agent") {
            let dir = t.opt_str("dir");
            let file = t.opt_str("file");
            t.finish(&["dir", "file"]);
            let source = match (dir, file) {
                (Some(d), None) => At::new(AgentSource::Dir(d.value.to_string()), d.span),
                (None, Some(f)) => At::new(AgentSource::File(f.value.to_string()), f.span),
                (Some(_), Some(f)) => {
                    t.error(f.span, "give `dir` or `file`, not both".to_string());
                    continue;
                }
                (None, None) => {
                    t.error(t.span(), "an agent needs `dir` or `file`".to_string());
                    continue;
                }
            };
            if let Err(m) = check_path(source.value.path()) {
                t.error(
                    source.span.clone(),
                    format!("bad agent path {:?}: {m}", source.value.path()),
                );
                continue;
            }
            agents.push(source);
        }

        let partitions = Self::read_partitions(root, machine);
        root.finish(&[
            "kind",
            "name",
            "version",
            "trusted_keys",
            "policies",
            "machine",
            "agent",
            "partition",
        ]);
        let (machine, runtime_mib) = machine?;
        Some(Appliance {
            name: name?.value.to_string(),
            version: version?,
            machine,
            runtime_mib,
            trusted_keys,
            policies,
            agents,
            partitions,
        })
    }

    fn read_partitions(root: &Table<'_, '_>, machine: Option<(Machine, u64)>) -> Vec<Partition> {
        let mut out: Vec<Partition> = Vec::new();
        let mut names: Vec<At<String>> = Vec::new();
        let mut memory_total = machine.map_or(0, |(_, runtime)| runtime);
        let mut over_reported = false;
        for t in root.tables("partition") {
            let name = t.str("name");
            let memory = t.u64_in("memory_mib", 1, MAX_MIB);
            let cpus = t.u64_in("cpus", 1, MAX_CPUS);
            let disk = t.opt_u64_in("disk_mib", 0, MAX_MIB);
            let nics = t.opt_u64_in("nics", 0, MAX_NICS);
            let mut labels: Vec<String> = Vec::new();
            for l in t.str_array("labels") {
                if let Err(m) = check_agent_name(l.value) {
                    t.error(l.span, format!("bad label {:?}: {m}", l.value));
                } else if labels.iter().any(|x| x == l.value) {
                    t.error(l.span, format!("label {:?} is listed twice", l.value));
                } else {
                    labels.push(l.value.to_string());
                }
            }
            t.finish(&["name", "memory_mib", "cpus", "disk_mib", "labels", "nics"]);
            let Some(name) = name else { continue };
            let mut name_ok = true;
            if let Err(m) = check_agent_name(name.value) {
                t.error(name.span.clone(), format!("bad partition name: {m}"));
                name_ok = false;
            } else if name.value.len() > MAX_PARTITION_NAME {
                t.error(
                    name.span.clone(),
                    format!(
                        "partition name is {} characters; at most {MAX_PARTITION_NAME} fit the \
                         GPT entry that holds its disk",
                        name.value.len()
                    ),
                );
                name_ok = false;
            } else if let Some(first) = names.iter().find(|n| n.value == name.value) {
                let (line, _) = crate::doc::line_col(root.doc().src(), first.span.start);
                t.error(
                    name.span.clone(),
                    format!(
                        "partition {:?} is defined twice (first on line {line})",
                        name.value
                    ),
                );
                name_ok = false;
            }
            if let (Some((m, _)), Some(c)) = (machine, &cpus)
                && c.value > u64::from(m.cpus)
            {
                t.error(
                    c.span.clone(),
                    format!(
                        "partition {:?} wants {} CPUs; the machine has {}",
                        name.value, c.value, m.cpus
                    ),
                );
            }
            if let (Some((m, runtime)), Some(mem)) = (machine, &memory) {
                memory_total = memory_total.saturating_add(mem.value);
                if memory_total > m.memory_mib && !over_reported {
                    over_reported = true;
                    t.error(
                        mem.span.clone(),
                        format!(
                            "memory quotas exceed the machine: the runtime's {runtime} MiB and \
                             the partitions up to {:?} need {memory_total} MiB; the machine has {} MiB",
                            name.value, m.memory_mib
                        ),
                    );
                }
            }
            names.push(At::new(name.value.to_string(), name.span.clone()));
            let (Some(memory), Some(cpus)) = (memory, cpus) else {
                continue;
            };
            if !name_ok {
                continue;
            }
            out.push(Partition {
                name: name.value.to_string(),
                memory_mib: memory.value,
                cpus: u32::try_from(cpus.value).unwrap_or(u32::MAX),
                disk_mib: disk.map_or(0, |d| d.value),
                labels,
                nics: nics.map_or(0, |n| u8::try_from(n.value).unwrap_or(0)),
            });
        }
        out
    }

    /// The partitions as policies see them.
    pub fn partition_defs(&self) -> Vec<PartitionDef> {
        self.partitions
            .iter()
            .map(|p| PartitionDef {
                name: p.name.clone(),
                labels: p.labels.clone(),
                memory_mib: p.memory_mib,
                cpus: p.cpus,
            })
            .collect()
    }

    /// The world policies are checked against: this machine and these partitions, and
    /// `agents` (read from the containers by the caller).
    pub fn world<'a>(&self, partitions: &'a [PartitionDef], agents: &'a [AgentDef]) -> World<'a> {
        World {
            machine: Some(self.machine),
            partitions: Some(partitions),
            agents: Some(agents),
        }
    }

    /// The spec as canonical TOML text, parseable by [`Appliance::parse`] into an equal
    /// value (positions aside). The image builder writes the catalog's copy this way,
    /// after rewriting paths to archive names.
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        let list = |items: &mut dyn Iterator<Item = &str>| -> String {
            let quoted: Vec<String> = items.map(quote).collect();
            format!("[{}]", quoted.join(", "))
        };
        // Writing to a String cannot fail.
        let _ = writeln!(s, "kind = \"appliance\"");
        let _ = writeln!(s, "name = {}", quote(&self.name));
        let _ = writeln!(s, "version = \"{}\"", self.version);
        let _ = writeln!(
            s,
            "trusted_keys = {}",
            list(&mut self.trusted_keys.iter().map(|k| k.value.as_str()))
        );
        let _ = writeln!(
            s,
            "policies = {}",
            list(&mut self.policies.iter().map(|k| k.value.as_str()))
        );
        let _ = writeln!(
            s,
            "\n[machine]\nmemory_mib = {}\ncpus = {}\nruntime_mib = {}",
            self.machine.memory_mib, self.machine.cpus, self.runtime_mib
        );
        for a in &self.agents {
            let (key, path) = match &a.value {
                AgentSource::Dir(p) => ("dir", p),
                AgentSource::File(p) => ("file", p),
            };
            let _ = writeln!(s, "\n[[agent]]\n{key} = {}", quote(path));
        }
        for p in &self.partitions {
            let _ = writeln!(
                s,
                "\n[[partition]]\nname = {}\nmemory_mib = {}\ncpus = {}\ndisk_mib = {}\nlabels = {}\nnics = {}",
                quote(&p.name),
                p.memory_mib,
                p.cpus,
                p.disk_mib,
                list(&mut p.labels.iter().map(String::as_str)),
                p.nics
            );
        }
        s
    }
}

/// A TOML basic string holding `s`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;
    use alloc::{format, vec};

    use plinth_testrng::Rng;

    use super::*;

    const GOOD: &str = r#"kind = "appliance"
name = "edge"
version = "2.0.1"
trusted_keys = ["keys/ops.pub"]
policies = ["policies/deploy.toml"]

[machine]
memory_mib = 1024
cpus = 4

[[agent]]
dir = "agents/web"

[[agent]]
file = "prebuilt/db-1.0.0.agent"

[[partition]]
name = "mgmt"
memory_mib = 128
cpus = 1
disk_mib = 64
labels = ["management"]
"#;

    fn errors(text: &str) -> Vec<String> {
        Appliance::parse(text, 0)
            .expect_err("must be refused")
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    /// The same spec without positions, to compare values.
    fn strip(mut a: Appliance) -> Appliance {
        for k in a.trusted_keys.iter_mut().chain(a.policies.iter_mut()) {
            k.span = 0..0;
        }
        for g in &mut a.agents {
            g.span = 0..0;
        }
        a
    }

    #[test]
    fn a_good_spec_reads_with_defaults() {
        let a = Appliance::parse(GOOD, 0).unwrap();
        assert_eq!(a.name, "edge");
        assert_eq!(a.runtime_mib, DEFAULT_RUNTIME_MIB);
        assert_eq!(
            a.machine,
            Machine {
                memory_mib: 1024,
                cpus: 4
            }
        );
        assert_eq!(a.agents[0].value, AgentSource::Dir("agents/web".into()));
        assert_eq!(
            a.agents[1].value,
            AgentSource::File("prebuilt/db-1.0.0.agent".into())
        );
        assert_eq!(a.partitions[0].labels, vec![String::from("management")]);
        // Positions point at the values, for "cannot read" errors.
        assert_eq!(
            crate::doc::line_col(GOOD, a.trusted_keys[0].span.start),
            (4, 17)
        );
    }

    #[test]
    fn three_mistakes_are_three_diagnostics_with_positions() {
        let text = GOOD
            .replace("version = \"2.0.1\"", "version = \"2.0\"")
            .replace("cpus = 1", "cpus = 9")
            .replace("disk_mib = 64", "disk_mib = 64\nsize = 3");
        assert_eq!(
            errors(&text),
            [
                "3:11: bad version: expected MAJOR.MINOR.PATCH",
                "20:8: partition \"mgmt\" wants 9 CPUs; the machine has 4",
                "22:1: unknown key `size` in `partition[0]`; expected one of: name, memory_mib, cpus, disk_mib, labels, nics",
            ]
        );
    }

    #[test]
    fn quotas_must_fit_the_machine() {
        let text = format!("{GOOD}\n[[partition]]\nname = \"big\"\nmemory_mib = 900\ncpus = 4\n");
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("26:14: memory quotas exceed the machine: the runtime's 64 MiB and the partitions up to \"big\" need 1092 MiB; the machine has 1024 MiB"), "{e:?}");
    }

    #[test]
    fn names_paths_and_sources_are_checked() {
        let text = GOOD
            .replace("\"keys/ops.pub\"", "\"../keys/ops.pub\", \"/etc/key\"")
            .replace(
                "dir = \"agents/web\"",
                "dir = \"agents/web\"\nfile = \"x.agent\"",
            )
            .replace(
                "name = \"mgmt\"",
                "name = \"a-partition-name-longer-than-thirty-six\"",
            );
        let e = errors(&text);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].contains("bad key file \"../keys/ops.pub\""), "{e:?}");
        assert!(e[1].contains("must be relative"), "{e:?}");
        assert!(e[2].contains("give `dir` or `file`, not both"), "{e:?}");
        assert!(e[3].contains("at most 36 fit the GPT entry"), "{e:?}");

        let text = GOOD.replace("trusted_keys = [\"keys/ops.pub\"]\n", "");
        assert!(errors(&text)[0].contains("missing key `trusted_keys`"));
        let text = GOOD.replace("[\"keys/ops.pub\"]", "[]");
        assert!(errors(&text)[0].contains("`trusted_keys` is empty"));
        let dup = format!("{GOOD}\n[[partition]]\nname = \"mgmt\"\nmemory_mib = 1\ncpus = 1\n");
        assert!(errors(&dup)[0].contains("defined twice (first on line 18)"));
        let e = errors("kind = \"tenants\"\n");
        assert!(
            e.iter()
                .any(|m| m.starts_with("1:8: expected kind = \"appliance\"")),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m == "1:1: missing key `name`"), "{e:?}");
    }

    /// Specs from a small deterministic generator: written with `to_toml`, read back
    /// equal.
    #[test]
    fn to_toml_round_trips() {
        let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
        let mut next = |n: u64| rng.below_u64(n);
        for _ in 0..200 {
            let cpus = next(8) as u32 + 1;
            let parts = next(5) as usize;
            let mut partitions = Vec::new();
            for i in 0..parts {
                partitions.push(Partition {
                    name: format!("p{i}-{}", next(1000)),
                    memory_mib: next(64) + 1,
                    cpus: (next(u64::from(cpus)) + 1) as u32,
                    disk_mib: next(3) * 16,
                    labels: (0..next(3)).map(|l| format!("l{l}")).collect(),
                    nics: next(3) as u8,
                });
            }
            let a = Appliance {
                name: format!("a{}", next(100)),
                version: Version {
                    major: next(3) as u32,
                    minor: next(20) as u32,
                    patch: next(5) as u32,
                },
                machine: Machine {
                    memory_mib: 64 * 6 + 64,
                    cpus,
                },
                runtime_mib: next(64),
                trusted_keys: (0..next(3) + 1)
                    .map(|k| At::new(format!("keys/k{k}.pub"), 0..0))
                    .collect(),
                policies: (0..next(4))
                    .map(|k| At::new(format!("policies/p{k}.toml"), 0..0))
                    .collect(),
                agents: (0..next(4))
                    .map(|k| {
                        let src = if next(2) == 0 {
                            AgentSource::Dir(format!("agents/a{k}"))
                        } else {
                            AgentSource::File(format!("agents/a{k}.agent"))
                        };
                        At::new(src, 0..0)
                    })
                    .collect(),
                partitions,
            };
            let text = a.to_toml();
            let back = Appliance::parse(&text, 0).unwrap_or_else(|d| panic!("{d:?}\n{text}"));
            assert_eq!(strip(back), a, "{text}");
        }
    }

    /// Every prefix and many single-byte changes of a good spec: a verdict, never a panic.
    #[test]
    fn damaged_specs_never_panic() {
        for end in 0..GOOD.len() {
            if GOOD.is_char_boundary(end) {
                let _ = Appliance::parse(&GOOD[..end], 0);
            }
        }
        let bytes = GOOD.as_bytes();
        for at in 0..bytes.len() {
            for b in [b'"', b'[', b'=', b'\n', b'9', 0xff] {
                let mut m = bytes.to_vec();
                m[at] = b;
                if let Ok(text) = core::str::from_utf8(&m) {
                    let _ = Appliance::parse(text, 0);
                }
            }
        }
    }
}
