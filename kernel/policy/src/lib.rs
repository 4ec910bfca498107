//! Appliance specs and policies: the TOML files users write by hand to say what runs
//! where and how it is governed, and the checker that cross-checks a whole set of them
//! the way a separation-kernel configuration checker does.
//!
//! One parser for the `plinth` tool and the runtime. It owns the meaning of these files
//! and their cross-checks; it does not touch the disk, the network or agent containers'
//! bytes (callers hand it text and the agents' names and versions). Every problem is a
//! [`Diagnostic`] with a position, and parsing carries on after one, so a file with three
//! mistakes reports three.
//!
//! Every file starts with `kind = "…"`: `appliance` ([`appliance`]), `deployment`,
//! `protection`, `troubleshooting` or `tenants` ([`policies`]).

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod appliance;
pub mod doc;
pub mod policies;

#[cfg(test)]
mod tests;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

pub use doc::{At, Diagnostic, MAX_SOURCE_LEN};
pub use plinth_container::Version;

/// What a file is, from its `kind` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Appliance,
    Deployment,
    Protection,
    Troubleshooting,
    Tenants,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Appliance,
        Kind::Deployment,
        Kind::Protection,
        Kind::Troubleshooting,
        Kind::Tenants,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Appliance => "appliance",
            Kind::Deployment => "deployment",
            Kind::Protection => "protection",
            Kind::Troubleshooting => "troubleshooting",
            Kind::Tenants => "tenants",
        }
    }

    /// Reads the required `kind` key of a root table.
    pub fn read(root: &doc::Table<'_, '_>) -> Option<Kind> {
        let kind = root.str("kind")?;
        let found = Kind::ALL.into_iter().find(|k| k.as_str() == kind.value);
        if found.is_none() {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            root.error(
                kind.span,
                format!(
                    "unknown kind {:?}; expected one of: {}",
                    kind.value,
                    names.join(", ")
                ),
            );
        }
        found
    }
}

/// The machine an appliance is built for: what partition quotas must fit in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Machine {
    pub memory_mib: u64,
    pub cpus: u32,
}

/// A partition as policies see it: a name to deploy to, labels to select it by, and the
/// quotas caps must fit in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionDef {
    pub name: String,
    pub labels: Vec<String>,
    pub memory_mib: u64,
    pub cpus: u32,
}

/// An agent as policies see it: a container the appliance carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentDef {
    pub name: String,
    pub version: Version,
}

/// What policies are checked against. `None` in a field: that part of the world is not
/// known (a policy file checked on its own), so references into it are not checked.
#[derive(Clone, Copy, Debug, Default)]
pub struct World<'a> {
    pub machine: Option<Machine>,
    pub partitions: Option<&'a [PartitionDef]>,
    pub agents: Option<&'a [AgentDef]>,
}

/// A whole set checked together: at most one appliance spec and any number of policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub appliance: Option<appliance::Appliance>,
    pub policies: policies::PolicySet,
}

/// Checks a set of files of any kinds together; `files[i]` is (name, text), file `i` in
/// the diagnostics, and messages that point into another file use its name. An appliance spec in the set supplies the machine and partitions that
/// policies are checked against; `agents` (what the spec's containers hold, read by the
/// caller) the agents. Without a spec, references to partitions are not checked, and
/// without `agents`, references to agents. All problems are returned, sorted.
pub fn check_files(
    files: &[(&str, &str)],
    agents: Option<&[AgentDef]>,
) -> Result<Checked, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let mut spec: Option<(usize, appliance::Appliance)> = None;
    let mut policy_files: Vec<(usize, &str)> = Vec::new();
    for (i, &(_, text)) in files.iter().enumerate() {
        let doc = doc::Doc::new(text, i);
        let kind = doc.parse().and_then(|t| Kind::read(&doc.root(&t)));
        match kind {
            Some(Kind::Appliance) => match appliance::Appliance::parse(text, i) {
                Ok(a) => {
                    if let Some((first, _)) = &spec {
                        diagnostics.push(Diagnostic {
                            file: i,
                            line: 1,
                            col: 1,
                            message: format!(
                                "a second appliance spec; a set has one (the first is {})",
                                files[*first].0
                            ),
                        });
                    } else {
                        spec = Some((i, a));
                    }
                }
                Err(d) => diagnostics.extend(d),
            },
            Some(_) => policy_files.push((i, text)),
            // Syntax errors or a missing/unknown kind: reported by the policy parser,
            // which reads the kind the same way.
            None => policy_files.push((i, text)),
        }
    }
    let partitions = spec.as_ref().map(|(_, a)| a.partition_defs());
    let world = World {
        machine: spec.as_ref().map(|(_, a)| a.machine),
        partitions: partitions.as_deref(),
        agents,
    };
    let names: Vec<(usize, &str)> = files.iter().enumerate().map(|(i, f)| (i, f.0)).collect();
    let policies = policies::PolicySet::check_named(&policy_files, &names, &world);
    match policies {
        Ok(p) if diagnostics.is_empty() => Ok(Checked {
            appliance: spec.map(|(_, a)| a),
            policies: p,
        }),
        Ok(_) => {
            diagnostics.sort();
            Err(diagnostics)
        }
        Err(d) => {
            diagnostics.extend(d);
            diagnostics.sort();
            diagnostics.dedup();
            Err(diagnostics)
        }
    }
}
