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
