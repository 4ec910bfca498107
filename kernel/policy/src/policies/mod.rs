//! Policies: deployment, performance protection, troubleshooting, tenants and VLANs.
//!
//! This module owns what the four policy kinds mean and the checks across a whole set of
//! them: a set is every policy file of an appliance, checked together and against the
//! [`World`] (the appliance's machine, partitions and agents, where known). Several files
//! of one kind merge into one. The result, a [`PolicySet`], is plain validated data for
//! the runtime and the tool; nothing here acts on it (starting agents, throttling,
//! assigning VLANs on the wire is the runtime's) and nothing here reads files (callers
//! hand in text). Reading TOML is [`crate::doc`]'s; the appliance spec is
//! [`crate::appliance`]'s.
//!
//! Checking runs in two passes. Reading a file records its problems with the file's
//! [`Doc`] and keeps what it could read, with positions, as raw entries; a mistake makes
//! one value absent, not the file. The cross-checks then run over all raw entries of all
//! files, skipping values that were absent (their mistake is already reported), so one
//! mistake is reported once and never cascades. The set is only built when nothing at
//! all was wrong.
//!
//! The file format of each kind is in `docs/policies.md`.

mod deployment;
mod json;
mod ledger;
mod protection;
mod tenants;
mod troubleshooting;

#[cfg(test)]
pub(crate) use json::write_str as json_write_str;
/// A JSON string literal, escaped; for other crates' JSON around a [`PolicySet`]'s.
pub use json::write_str as write_json_string;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use plinth_container::check_agent_name;

use crate::doc::{At, Doc, Table, line_col};
use crate::{Diagnostic, Kind, PartitionDef, World};

pub use deployment::{Day, Deployment, TimeOfDay, Window};
pub use ledger::{Hold, VlanError, VlanLedger};
pub use protection::{
    Bucket, Contention, CpuLimit, DEFAULT_THROTTLE_FLOOR, DiskLimit, Limit, MemoryLimit,
    NetworkLimit,
};
pub use tenants::{Pool, Tenant, VLAN_MAX, VLAN_MIN};
pub use troubleshooting::{
    Backoff, MAX_HEARTBEAT_TIMEOUT_MS, MIN_HEARTBEAT_TIMEOUT_MS, OnExhausted, Restart,
    RestartBudget, RestartRule,
};

/// The kinds a policy file may have (the appliance spec is not one).
const POLICY_KINDS: [Kind; 4] = [
    Kind::Deployment,
    Kind::Protection,
    Kind::Troubleshooting,
    Kind::Tenants,
];

/// Every policy of an appliance, parsed and checked. Lists are in the order of the files
/// given to [`PolicySet::check`], then of the entries in each file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySet {
    /// Which agent, at which version, goes where, and when (`deployment`).
    pub deployments: Vec<Deployment>,
    /// Host load at which agents get throttled (`protection`, `[contention]`).
    pub contention: Contention,
    /// Resource limits of agents and partitions (`protection`, `[[limit]]`).
    pub limits: Vec<Limit>,
    /// How failed agents are restarted (`troubleshooting`), defaults filled in.
    pub restart_rules: Vec<RestartRule>,
    /// VLAN ID pools (`tenants`, `[[pool]]`).
    pub pools: Vec<Pool>,
    /// Tenants with the VLAN ID each got (`tenants`, `[[tenant]]`).
    pub tenants: Vec<Tenant>,
}

/// What a limit or restart rule applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Agent(String),
    /// Every agent in the partition.
    Partition(String),
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Agent(n) | Target::Partition(n) => n,
        }
    }
}

impl fmt::Display for Target {
    /// `` agent `hello` `` or `` partition `mgmt` ``, as messages name targets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Agent(n) => write!(f, "agent `{n}`"),
            Target::Partition(n) => write!(f, "partition `{n}`"),
        }
    }
}

impl PolicySet {
    /// Parses and cross-checks a set of policy files.
    ///
    /// `files`: (file index for diagnostics, text) of every policy file of the set, each
    /// holding `kind = "deployment" | "protection" | "troubleshooting" | "tenants"`. A file
    /// with `kind = "appliance"` or an unknown kind is an error at the kind value. Several
    /// files of the same kind merge; a duplicate across files is an error at the second
    /// occurrence, naming the first's line.
    ///
    /// References into `world` (agents, versions, partitions, labels, quotas) are checked
    /// where the world knows them. On any problem, every diagnostic found is returned,
    /// sorted by file, line and column.
    ///
    /// A message that points into another file of the set names it by its index
    /// (`line 4 of file 2`); [`PolicySet::check_named`] names it by its name instead.
    pub fn check(files: &[(usize, &str)], world: &World<'_>) -> Result<PolicySet, Vec<Diagnostic>> {
        PolicySet::check_named(files, &[], world)
    }

    /// [`PolicySet::check`], with the files' names for messages that point from one file
    /// into another (`first given at line 4 of policies/deploy.toml`). `names` maps file
    /// indices to names; an index it lacks is named `file N`.
    pub fn check_named(
        files: &[(usize, &str)],
        names: &[(usize, &str)],
        world: &World<'_>,
    ) -> Result<PolicySet, Vec<Diagnostic>> {
        let mut raw = Raw::default();
        let mut diagnostics = Vec::new();
        for &(file, text) in files {
            let doc = Doc::new(text, file);
            if let Some(table) = doc.parse() {
                read_file(&doc.root(&table), &mut raw);
            }
            diagnostics.extend(doc.into_diagnostics());
        }

        let mut cx = Cx {
            world,
            names,
            diagnostics,
        };
        // Deployments first: protection checks caps against where agents are placed.
        let (deployments, placements) = deployment::check(&raw.deployment, &mut cx);
        let (contention, limits) = protection::check(&raw.protection, &placements, &mut cx);
        let restart_rules = troubleshooting::check(&raw.troubleshooting, &mut cx);
        let (pools, tenants) = tenants::check(&raw.tenants, &mut cx);

        let mut diagnostics = cx.diagnostics;
        if diagnostics.is_empty() {
            return Ok(PolicySet {
                deployments,
                contention,
                limits,
                restart_rules,
                pools,
                tenants,
            });
        }
        diagnostics.sort();
        diagnostics.dedup();
        Err(diagnostics)
    }

    /// Renders the set as compact JSON, for the runtime's `GET /api/v1/catalog`. Absent
    /// optional values are `null`; the output depends only on the set.
    pub fn write_json(&self, out: &mut impl fmt::Write) -> fmt::Result {
        json::write_set(self, out)
    }
}

/// Everything read from the files, before the cross-checks.
#[derive(Default)]
struct Raw {
    deployment: Vec<deployment::RawDeploy>,
    protection: protection::RawProtection,
    troubleshooting: Vec<troubleshooting::RawRule>,
    tenants: tenants::RawTenants,
}

/// Reads one file's root table into `raw`, by its kind.
fn read_file(root: &Table<'_, '_>, raw: &mut Raw) {
    // Read here rather than with `Kind::read`: that accepts `appliance`, which a policy
    // set must not, and its message should list only the policy kinds.
    let Some(kind) = root.str("kind") else {
        return;
    };
    let expected = POLICY_KINDS.map(Kind::as_str).join(", ");
    let Some(found) = POLICY_KINDS.into_iter().find(|k| k.as_str() == kind.value) else {
        let message = if kind.value == Kind::Appliance.as_str() {
            format!(
                "an appliance spec is not a policy file; a policy's `kind` is one of: {expected}"
            )
        } else {
            format!(
                "unknown kind {:?}; a policy's `kind` is one of: {expected}",
                kind.value
            )
        };
        root.error(kind.span, message);
        // The rest of the file is not read: which keys it may hold depends on the kind.
        return;
    };
    match found {
        Kind::Deployment => deployment::read(root, &mut raw.deployment),
        Kind::Protection => protection::read(root, &mut raw.protection),
        Kind::Troubleshooting => troubleshooting::read(root, &mut raw.troubleshooting),
        Kind::Tenants => tenants::read(root, &mut raw.tenants),
        Kind::Appliance => {}
    }
}

/// A position in one file of the set, kept from reading for the cross-checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    file: usize,
    line: u32,
    col: u32,
}

impl Pos {
    /// Where `span` of the table's file starts.
    fn at(t: &Table<'_, '_>, span: &Range<usize>) -> Pos {
        let doc = t.doc();
        let (line, col) = line_col(doc.src(), span.start);
        Pos {
            file: doc.file(),
            line,
            col,
        }
    }

    fn error(self, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file,
            line: self.line,
            col: self.col,
            message,
        }
    }
}

/// A value read from a file and where it is, for the cross-checks.
#[derive(Clone, Debug)]
struct Placed<T> {
    value: T,
    pos: Pos,
}

impl<T> Placed<T> {
    fn new(t: &Table<'_, '_>, at: At<T>) -> Self {
        Placed {
            pos: Pos::at(t, &at.span),
            value: at.value,
        }
    }
}

/// The cross-checks' state: the world, the files' names and every problem found so far.
struct Cx<'a, 'w> {
    world: &'a World<'w>,
    names: &'a [(usize, &'a str)],
    diagnostics: Vec<Diagnostic>,
}

impl<'w> Cx<'_, 'w> {
    /// `at` as a message at `from` names it: `line 4`, or `line 4 of NAME` when it is in
    /// another file of the set.
    fn named(&self, at: Pos, from: Pos) -> String {
        if at.file == from.file {
            return format!("line {}", at.line);
        }
        match self.names.iter().find(|(i, _)| *i == at.file) {
            Some((_, name)) => format!("line {} of {name}", at.line),
            None => format!("line {} of file {}", at.line, at.file),
        }
    }

    fn error(&mut self, pos: Pos, message: String) {
        self.diagnostics.push(pos.error(message));
    }

    /// The partition named `name`: `Some(None)` when the world's partitions are known and
    /// it is not among them, `None` when they are not known.
    fn partition(&self, name: &str) -> Option<Option<&'w PartitionDef>> {
        self.world
            .partitions
            .map(|ps| ps.iter().find(|p| p.name == name))
    }

    /// Reports a target the world does not have. Returns whether it is known to exist
    /// (false when that part of the world is not known, or it does not exist).
    fn check_target(&mut self, target: &Placed<Target>) -> bool {
        let exists = match &target.value {
            Target::Agent(name) => self.agent_exists(name),
            Target::Partition(name) => self.partition(name).map(|p| p.is_some()),
        };
        match exists {
            Some(true) => true,
            Some(false) => {
                self.error(
                    target.pos,
                    format!("{} is not in the appliance", target.value),
                );
                false
            }
            None => false,
        }
    }

    /// Whether any version of agent `name` is in the world (`None`: agents not known).
    fn agent_exists(&self, name: &str) -> Option<bool> {
        self.world
            .agents
            .map(|agents| agents.iter().any(|a| a.name == name))
    }
}

/// Checks a value against the name rule `[a-z0-9][a-z0-9-]{0,62}`; `what` is how the
/// message names it.
fn check_name<'t>(t: &Table<'t, '_>, what: &str, v: At<&'t str>) -> Option<At<&'t str>> {
    match check_agent_name(v.value) {
        Ok(()) => Some(v),
        Err(e) => {
            t.error(v.span, format!("`{what}` = {:?}: {e}", v.value));
            None
        }
    }
}

/// A required name.
fn name<'t>(t: &Table<'t, '_>, key: &str) -> Option<Placed<String>> {
    let v = t.str(key)?;
    let v = check_name(t, &t.key_path(key), v)?;
    Some(Placed::new(t, At::new(String::from(v.value), v.span)))
}

/// An optional array of names (absent: empty).
fn names(t: &Table<'_, '_>, key: &str) -> Vec<Placed<String>> {
    let path = t.key_path(key);
    t.str_array(key)
        .into_iter()
        .filter_map(|v| check_name(t, &path, v))
        .map(|v| Placed::new(t, At::new(String::from(v.value), v.span)))
        .collect()
}

/// An integer of at least `min` (and at most `max`, a limit of the type it is stored in,
/// which the message only mentions when it is exceeded). `required`: report it missing.
fn at_least(t: &Table<'_, '_>, key: &str, min: u64, max: u64, required: bool) -> Option<At<u64>> {
    let v = if required { t.u64(key) } else { t.opt_u64(key) }?;
    let path = t.key_path(key);
    if v.value < min {
        t.error(
            v.span,
            format!(
                "`{path}` = {} is out of range; expected at least {min}",
                v.value
            ),
        );
        return None;
    }
    if v.value > max {
        t.error(
            v.span,
            format!(
                "`{path}` = {} is too large; at most {max} is accepted",
                v.value
            ),
        );
        return None;
    }
    Some(v)
}

/// Reports a required key that is absent, as the reader does.
fn missing(t: &Table<'_, '_>, key: &str) {
    t.error(t.span(), format!("missing key `{}`", t.key_path(key)));
}

/// `agent = "…"` or `partition = "…"`, exactly one of them.
fn target(t: &Table<'_, '_>) -> Option<Placed<Target>> {
    let (agent_path, partition_path) = (t.key_path("agent"), t.key_path("partition"));
    match (t.value_span("agent"), t.value_span("partition")) {
        (Some(_), Some(span)) => {
            t.error(
                span,
                format!("give exactly one of `{agent_path}` and `{partition_path}`, not both"),
            );
            // Still read both, so their own mistakes are reported.
            let _ = (name(t, "agent"), name(t, "partition"));
            None
        }
        (None, None) => {
            t.error(
                t.span(),
                format!("missing key `{agent_path}` or `{partition_path}` (exactly one)"),
            );
            None
        }
        (Some(_), None) => name(t, "agent").map(|n| Placed {
            value: Target::Agent(n.value),
            pos: n.pos,
        }),
        (None, Some(_)) => name(t, "partition").map(|n| Placed {
            value: Target::Partition(n.value),
            pos: n.pos,
        }),
    }
}

/// Records `key`'s first position and reports a later one: "at most one per target"
/// across every file of the set. Returns whether `key` was new.
fn first_of<K: Ord>(
    seen: &mut BTreeMap<K, Pos>,
    key: K,
    pos: Pos,
    cx: &mut Cx<'_, '_>,
    message: impl FnOnce(&str) -> String,
) -> bool {
    match seen.get(&key) {
        Some(first) => {
            let first = cx.named(*first, pos);
            cx.error(pos, message(&first));
            false
        }
        None => {
            seen.insert(key, pos);
            true
        }
    }
}

/// `a, b, c` of the items' Display forms.
fn list<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut s = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = fmt::Write::write_fmt(&mut s, format_args!("{item}"));
    }
    s
}
