//! `kind = "deployment"`: which agents, at which versions, go to which partitions, and in
//! which time window. This module owns reading `[[deploy]]`, resolving `label:NAME`
//! against the world's partitions, and the checks that an agent is placed on a partition
//! at most once. It does not decide when a window is open in local time (windows are UTC)
//! nor start anything.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use plinth_container::Version;

use super::{Cx, Placed, Pos, check_name, list, missing, name};
use crate::doc::{At, Table};

/// One `[[deploy]]` entry, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    pub agent: String,
    pub version: Version,
    /// The `to` entries as written: partition names and `label:NAME` selectors.
    pub to: Vec<String>,
    /// The partitions `to` selects, in the order of `to`, a label's partitions in the
    /// world's order. Labels select nothing when the world's partitions are not known.
    pub partitions: Vec<String>,
    /// `None`: any time.
    pub window: Option<Window>,
}

/// When deploying may happen: from `start` to `end` (UTC) on each of `days`. An `end`
/// before `start` wraps past midnight: the window opens on one of `days` and closes the
/// next morning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// No duplicates, in week order (Monday first); never empty.
    pub days: Vec<Day>,
    pub start: TimeOfDay,
    /// Never equal to `start`.
    pub end: TimeOfDay,
}

impl Window {
    /// Whether the window is open at `time` (UTC) on `day`; `start` is inside, `end` is
    /// not.
    pub fn is_open(&self, day: Day, time: TimeOfDay) -> bool {
        let (t, s, e) = (time.minutes(), self.start.minutes(), self.end.minutes());
        if s < e {
            self.days.contains(&day) && s <= t && t < e
        } else {
            // Wrapping: the evening part belongs to `day`, the morning part to the day
            // the window opened, the one before.
            (self.days.contains(&day) && t >= s) || (self.days.contains(&day.prev()) && t < e)
        }
    }
}

/// A day of the week, written `mon` … `sun`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    /// In week order.
    pub const ALL: [Day; 7] = [
        Day::Mon,
        Day::Tue,
        Day::Wed,
        Day::Thu,
        Day::Fri,
        Day::Sat,
        Day::Sun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Day::Mon => "mon",
            Day::Tue => "tue",
            Day::Wed => "wed",
            Day::Thu => "thu",
            Day::Fri => "fri",
            Day::Sat => "sat",
            Day::Sun => "sun",
        }
    }

    /// The day before (Sunday before Monday).
    pub fn prev(self) -> Day {
        let i = Day::ALL.iter().position(|&d| d == self).unwrap_or(0);
        Day::ALL[(i + 6) % 7]
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A time of day, `HH:MM` from 00:00 to 23:59.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    hour: u8,
    minute: u8,
}

impl TimeOfDay {
    /// `None` unless `hour` < 24 and `minute` < 60.
    pub fn new(hour: u8, minute: u8) -> Option<TimeOfDay> {
        (hour < 24 && minute < 60).then_some(TimeOfDay { hour, minute })
    }

    /// Exactly `HH:MM`, two digits each.
    pub fn parse(s: &str) -> Option<TimeOfDay> {
        let b = s.as_bytes();
        if b.len() != 5 || b[2] != b':' {
            return None;
        }
        let two = |hi: u8, lo: u8| {
            (hi.is_ascii_digit() && lo.is_ascii_digit()).then(|| (hi - b'0') * 10 + (lo - b'0'))
        };
        TimeOfDay::new(two(b[0], b[1])?, two(b[3], b[4])?)
    }

    pub fn hour(self) -> u8 {
        self.hour
    }

    pub fn minute(self) -> u8 {
        self.minute
    }

    /// Minutes since midnight.
    pub fn minutes(self) -> u16 {
        u16::from(self.hour) * 60 + u16::from(self.minute)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// A `to` entry.
#[derive(Clone, Debug)]
enum Selector {
    Partition(String),
    Label(String),
}

const LABEL_PREFIX: &str = "label:";

/// A `[[deploy]]` entry as read; `None` where the file had a mistake.
pub(super) struct RawDeploy {
    agent: Option<Placed<String>>,
    version: Option<Placed<Version>>,
    /// `to` as written, and each entry's meaning (`None`: a mistake).
    to: Vec<(String, Option<Placed<Selector>>)>,
    window: Option<Window>,
}

pub(super) fn read(root: &Table<'_, '_>, out: &mut Vec<RawDeploy>) {
    for t in root.tables("deploy") {
        out.push(read_deploy(&t));
        t.finish(&["agent", "version", "to", "window"]);
    }
    root.finish(&["kind", "deploy"]);
}

fn read_deploy(t: &Table<'_, '_>) -> RawDeploy {
    let agent = name(t, "agent");
    let version = t
        .str("version")
        .and_then(|v| match Version::parse(v.value) {
            Ok(version) => Some(Placed::new(t, At::new(version, v.span))),
            Err(e) => {
                t.error(
                    v.span,
                    format!("`{}` = {:?}: {e}", t.key_path("version"), v.value),
                );
                None
            }
        });

    if !t.has("to") {
        missing(t, "to");
    }
    let path = t.key_path("to");
    let entries = t.opt_str_array("to");
    // An array whose entries all had the wrong type is not empty: those are reported.
    if entries.as_ref().is_some_and(Vec::is_empty)
        && t.array("to").is_empty()
        && let Some(span) = t.value_span("to")
    {
        t.error(
            span,
            format!("`{path}` is empty; name at least one partition or `label:NAME`"),
        );
    }
    let to = entries
        .unwrap_or_default()
        .into_iter()
        .map(|v| {
            let written = String::from(v.value);
            let selector = match v.value.strip_prefix(LABEL_PREFIX) {
                Some(label) => check_name(t, &path, At::new(label, v.span.clone()))
                    .map(|_| Selector::Label(String::from(label))),
                None => check_name(t, &path, At::new(v.value, v.span.clone()))
                    .map(|_| Selector::Partition(String::from(v.value))),
            };
            (
                written,
                selector.map(|s| Placed::new(t, At::new(s, v.span))),
            )
        })
        .collect();

    let window = t.opt_table("window").and_then(|w| {
        let window = read_window(&w);
        w.finish(&["days", "start", "end"]);
        window
    });

    RawDeploy {
        agent,
        version,
        to,
        window,
    }
}

fn read_window(t: &Table<'_, '_>) -> Option<Window> {
    let days = if t.has("days") {
        let path = t.key_path("days");
        let mut days: Vec<Day> = Vec::new();
        let given = t.opt_str_array("days");
        let mut ok = given.as_ref().map(Vec::len) == Some(t.array("days").len());
        for v in given.unwrap_or_default() {
            match Day::ALL.into_iter().find(|d| d.as_str() == v.value) {
                Some(d) if days.contains(&d) => {
                    t.error(v.span, format!("`{path}` names {d} twice"));
                    ok = false;
                }
                Some(d) => days.push(d),
                None => {
                    t.error(
                        v.span,
                        format!(
                            "`{path}`: unknown day {:?}; expected one of: {}",
                            v.value,
                            list(Day::ALL)
                        ),
                    );
                    ok = false;
                }
            }
        }
        if days.is_empty()
            && ok
            && let Some(span) = t.value_span("days")
        {
            t.error(
                span,
                format!("`{path}` is empty; leave it out for every day"),
            );
        }
        days.sort();
        (ok && !days.is_empty()).then_some(days)
    } else {
        Some(Day::ALL.to_vec())
    };
    let time = |key: &str| {
        let v = t.str(key)?;
        let time = TimeOfDay::parse(v.value);
        if time.is_none() {
            t.error(
                v.span.clone(),
                format!(
                    "`{}` = {:?} is not a time of day; expected HH:MM (UTC) from 00:00 to 23:59",
                    t.key_path(key),
                    v.value
                ),
            );
        }
        time.map(|time| At::new(time, v.span))
    };
    let start = time("start");
    let end = time("end");
    if let (Some(s), Some(e)) = (&start, &end)
        && s.value == e.value
    {
        t.error(
            e.span.clone(),
            format!(
                "`{}` equals `start`: the window would be empty (leave the window out for any time)",
                t.key_path("end")
            ),
        );
        return None;
    }
    Some(Window {
        days: days?,
        start: start?.value,
        end: end?.value,
    })
}

/// Where deployments place each agent: agent name to partition names, for the
/// protection checks.
pub(super) type Placements = BTreeMap<String, Vec<String>>;

/// Checks every deployment against the world and the others; returns them and where
/// they place agents.
pub(super) fn check(raw: &[RawDeploy], cx: &mut Cx<'_, '_>) -> (Vec<Deployment>, Placements) {
    let mut out = Vec::new();
    let mut placements = Placements::new();
    // (agent, partition) to the `to` entry that first placed it there.
    let mut placed: BTreeMap<(String, String), Pos> = BTreeMap::new();

    for d in raw {
        if let Some(agent) = &d.agent {
            check_agent(agent, d.version.as_ref(), cx);
        }
        let mut partitions: Vec<String> = Vec::new();
        for (_, selector) in &d.to {
            let Some(selector) = selector else { continue };
            let selected = select(selector, cx);
            let Some(agent) = &d.agent else {
                partitions.extend(selected);
                continue;
            };
            let mut again = Vec::new();
            for p in selected {
                let key = (agent.value.clone(), p.clone());
                match placed.get(&key) {
                    Some(first) => again.push((p, *first)),
                    None => {
                        placed.insert(key, selector.pos);
                        placements
                            .entry(agent.value.clone())
                            .or_default()
                            .push(p.clone());
                        partitions.push(p);
                    }
                }
            }
            if let Some((_, first)) = again.first() {
                let same_line = |at: &Pos| (at.file, at.line) == (first.file, first.line);
                let named = if again.iter().all(|(_, at)| same_line(at)) {
                    // One earlier `to` placed them all (the usual case: a label
                    // overlapping it).
                    let ps: Vec<String> = again.iter().map(|(p, _)| format!("`{p}`")).collect();
                    format!("{} ({})", ps.join(", "), cx.named(*first, selector.pos))
                } else {
                    let ps: Vec<String> = again
                        .iter()
                        .map(|(p, at)| format!("`{p}` ({})", cx.named(*at, selector.pos)))
                        .collect();
                    ps.join(", ")
                };
                let noun = if again.len() == 1 {
                    "partition"
                } else {
                    "partitions"
                };
                cx.error(
                    selector.pos,
                    format!(
                        "agent `{}` is already deployed to {noun} {named}",
                        agent.value
                    ),
                );
            }
        }
        if let (Some(agent), Some(version)) = (&d.agent, &d.version) {
            out.push(Deployment {
                agent: agent.value.clone(),
                version: version.value,
                to: d.to.iter().map(|(written, _)| written.clone()).collect(),
                partitions,
                window: d.window.clone(),
            });
        }
    }
    (out, placements)
}

/// The agent and its exact version are in the world, if agents are known.
fn check_agent(agent: &Placed<String>, version: Option<&Placed<Version>>, cx: &mut Cx<'_, '_>) {
    let Some(agents) = cx.world.agents else {
        return;
    };
    let mut versions: Vec<Version> = agents
        .iter()
        .filter(|a| a.name == agent.value)
        .map(|a| a.version)
        .collect();
    if versions.is_empty() {
        cx.error(
            agent.pos,
            format!("agent `{}` is not in the appliance", agent.value),
        );
        return;
    }
    let Some(version) = version else { return };
    if !versions.contains(&version.value) {
        versions.sort();
        versions.dedup();
        cx.error(
            version.pos,
            format!(
                "agent `{}` has no version {} in the appliance; it has {}",
                agent.value,
                version.value,
                list(&versions)
            ),
        );
    }
}

/// The partitions a `to` entry selects, reporting names and labels the world lacks.
fn select(selector: &Placed<Selector>, cx: &mut Cx<'_, '_>) -> Vec<String> {
    match &selector.value {
        Selector::Partition(name) => {
            if cx.partition(name) == Some(None) {
                cx.error(
                    selector.pos,
                    format!("partition `{name}` is not in the appliance"),
                );
                return Vec::new();
            }
            alloc::vec![name.clone()]
        }
        Selector::Label(label) => {
            let Some(partitions) = cx.world.partitions else {
                // Not known: nothing to resolve against (a file checked on its own).
                return Vec::new();
            };
            let selected: Vec<String> = partitions
                .iter()
                .filter(|p| p.labels.iter().any(|l| l == label))
                .map(|p| p.name.clone())
                .collect();
            if selected.is_empty() {
                cx.error(
                    selector.pos,
                    format!("label `{label}` matches no partition of the appliance"),
                );
            }
            selected
        }
    }
}
