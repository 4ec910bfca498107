//! `kind = "troubleshooting"`: how a failed agent is restarted, and how long an agent may
//! go without a heartbeat before it counts as hung. This module owns reading `[[rule]]`
//! (filling in the backoff defaults) and checking that each target has one rule and
//! exists. Watching agents and restarting them is the runtime's.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Cx, Placed, Pos, Target, at_least, first_of, list, missing, target};
use crate::doc::{At, Table};

/// One `[[rule]]`. A rule for a partition is the default of every agent in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartRule {
    pub target: Target,
    pub restart: Restart,
    /// The watchdog: an agent that has not sent a heartbeat for this long (counted from
    /// its start or its last heartbeat) is hung; it is ended and handled as a failure.
    /// `None`: not watched.
    pub heartbeat_timeout_ms: Option<u32>,
}

/// The shortest watchdog interval accepted: a few of the runtime's 10 ms ticks.
pub const MIN_HEARTBEAT_TIMEOUT_MS: u64 = 50;
/// The longest: a day.
pub const MAX_HEARTBEAT_TIMEOUT_MS: u64 = 86_400_000;

/// When to restart, and within which budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    Never,
    /// After the agent exits with an error or crashes.
    OnFailure(RestartBudget),
    /// After any exit.
    Always(RestartBudget),
}

impl Restart {
    /// `never`, `on-failure`, `always`: the file's and the JSON's spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Restart::Never => "never",
            Restart::OnFailure(_) => "on-failure",
            Restart::Always(_) => "always",
        }
    }

    pub fn budget(&self) -> Option<&RestartBudget> {
        match self {
            Restart::Never => None,
            Restart::OnFailure(b) | Restart::Always(b) => Some(b),
        }
    }
}

/// How many restarts, how spaced, and what happens when they run out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartBudget {
    /// At most this many restarts within `window_secs`; at least 1.
    pub max_restarts: u32,
    /// At least 1.
    pub window_secs: u32,
    pub backoff: Backoff,
    pub on_exhausted: OnExhausted,
}

/// Delay before restart `n` (from 0): `initial_ms * multiplier^n`, at most `max_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// At least 1; default 100.
    pub initial_ms: u32,
    /// At least `initial_ms`; default 30000.
    pub max_ms: u32,
    /// 1..=10; default 2.
    pub multiplier: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_ms: 100,
            max_ms: 30_000,
            multiplier: 2,
        }
    }
}

/// What happens once `max_restarts` is used up; at least one is true.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OnExhausted {
    /// The agent is not started again until an operator releases it.
    pub quarantine: bool,
    /// An alert is raised.
    pub alert: bool,
}

const ACTIONS: [&str; 2] = ["quarantine", "alert"];
const MODES: [&str; 3] = ["never", "on-failure", "always"];
/// The keys that describe a budget, which `restart = "never"` has none of.
const BUDGET_KEYS: [&str; 4] = ["max_restarts", "window_secs", "backoff", "on_exhausted"];

pub(super) struct RawRule {
    target: Option<Placed<Target>>,
    restart: Option<Restart>,
    /// `Err(())`: given, but wrong (already reported).
    heartbeat_timeout_ms: Result<Option<u32>, ()>,
}

pub(super) fn read(root: &Table<'_, '_>, out: &mut Vec<RawRule>) {
    for t in root.tables("rule") {
        out.push(read_rule(&t));
        t.finish(&[
            "agent",
            "partition",
            "restart",
            "max_restarts",
            "window_secs",
            "backoff",
            "on_exhausted",
            "heartbeat_timeout_ms",
        ]);
    }
    root.finish(&["kind", "rule"]);
}

fn read_rule(t: &Table<'_, '_>) -> RawRule {
    let target = target(t);
    let watchdog = at_least(
        t,
        "heartbeat_timeout_ms",
        MIN_HEARTBEAT_TIMEOUT_MS,
        MAX_HEARTBEAT_TIMEOUT_MS,
        false,
    );
    let heartbeat_timeout_ms = match watchdog {
        Some(v) => Ok(Some(u32::try_from(v.value).unwrap_or(u32::MAX))),
        None if t.has("heartbeat_timeout_ms") => Err(()),
        None => Ok(None),
    };
    let mode = t.str("restart").and_then(|v| {
        let found = MODES.into_iter().find(|m| *m == v.value);
        if found.is_none() {
            t.error(
                v.span,
                format!(
                    "`{}` = {:?}; expected one of: {}",
                    t.key_path("restart"),
                    v.value,
                    MODES.join(", ")
                ),
            );
        }
        found
    });
    if mode == Some("never") {
        for key in BUDGET_KEYS {
            if let Some(span) = t.value_span(key) {
                t.error(
                    span,
                    format!(
                        "`{}` is not used with `restart = \"never\"`; leave it out",
                        t.key_path(key)
                    ),
                );
            }
        }
        return RawRule {
            target,
            restart: Some(Restart::Never),
            heartbeat_timeout_ms,
        };
    }
    // With an unknown mode the budget keys are still read, for their own mistakes, but
    // none is reported missing: whether they are needed is not known.
    let required = mode.is_some();
    let int = |key: &str| {
        at_least(t, key, 1, u64::from(u32::MAX), required)
            .map(|v| u32::try_from(v.value).unwrap_or(u32::MAX))
    };
    let max_restarts = int("max_restarts");
    let window_secs = int("window_secs");
    let backoff = match t.opt_table("backoff") {
        None if t.has("backoff") => None,
        None => Some(Backoff::default()),
        Some(b) => {
            let backoff = read_backoff(&b);
            b.finish(&["initial_ms", "max_ms", "multiplier"]);
            backoff
        }
    };
    let on_exhausted = read_on_exhausted(t, required);
    let budget = (|| {
        Some(RestartBudget {
            max_restarts: max_restarts?,
            window_secs: window_secs?,
            backoff: backoff?,
            on_exhausted: on_exhausted?,
        })
    })();
    let restart = match (mode, budget) {
        (Some("on-failure"), Some(b)) => Some(Restart::OnFailure(b)),
        (Some("always"), Some(b)) => Some(Restart::Always(b)),
        _ => None,
    };
    RawRule {
        target,
        restart,
        heartbeat_timeout_ms,
    }
}

fn read_backoff(t: &Table<'_, '_>) -> Option<Backoff> {
    let d = Backoff::default();
    let initial = at_least(t, "initial_ms", 1, u64::from(u32::MAX), false);
    let max = at_least(t, "max_ms", 1, u64::from(u32::MAX), false);
    let multiplier = t.opt_u64_in("multiplier", 1, 10);
    let given = |v: &Option<At<u64>>, key: &str| v.is_some() == t.has(key);
    if !(given(&initial, "initial_ms") && given(&max, "max_ms") && given(&multiplier, "multiplier"))
    {
        return None;
    }
    let to_u32 = |v: At<u64>| u32::try_from(v.value).unwrap_or(u32::MAX);
    let backoff = Backoff {
        initial_ms: initial.clone().map_or(d.initial_ms, to_u32),
        max_ms: max.clone().map_or(d.max_ms, to_u32),
        multiplier: multiplier.map_or(d.multiplier, to_u32),
    };
    if backoff.max_ms < backoff.initial_ms {
        // At the value the user wrote; when one is a default, say so.
        let (span, message) = match (max, initial) {
            (Some(m), _) => (
                m.span,
                format!(
                    "`{}` = {} is below `initial_ms` ({}); the delay would shrink",
                    t.key_path("max_ms"),
                    backoff.max_ms,
                    backoff.initial_ms
                ),
            ),
            (None, Some(i)) => (
                i.span,
                format!(
                    "`{}` = {} is above the default `max_ms` ({}); give `max_ms` too",
                    t.key_path("initial_ms"),
                    backoff.initial_ms,
                    backoff.max_ms
                ),
            ),
            (None, None) => (t.span(), String::new()),
        };
        t.error(span, message);
        return None;
    }
    Some(backoff)
}

fn read_on_exhausted(t: &Table<'_, '_>, required: bool) -> Option<OnExhausted> {
    let key = "on_exhausted";
    let path = t.key_path(key);
    if !t.has(key) {
        if required {
            missing(t, key);
        }
        return None;
    }
    let mut seen: Vec<&str> = Vec::new();
    let given = t.opt_str_array(key)?;
    let mut ok = given.len() == t.array(key).len();
    for v in given {
        match ACTIONS.into_iter().find(|a| *a == v.value) {
            Some(a) if seen.contains(&a) => {
                t.error(v.span, format!("`{path}` names `{a}` twice"));
                ok = false;
            }
            Some(a) => seen.push(a),
            None => {
                t.error(
                    v.span,
                    format!(
                        "`{path}`: unknown action {:?}; expected one of: {}",
                        v.value,
                        list(ACTIONS)
                    ),
                );
                ok = false;
            }
        }
    }
    if t.array(key).is_empty()
        && let Some(span) = t.value_span(key)
    {
        t.error(
            span,
            format!("`{path}` is empty; give `quarantine`, `alert` or both"),
        );
        ok = false;
    }
    ok.then(|| OnExhausted {
        quarantine: seen.contains(&"quarantine"),
        alert: seen.contains(&"alert"),
    })
}

pub(super) fn check(raw: &[RawRule], cx: &mut Cx<'_, '_>) -> Vec<RestartRule> {
    let mut rules = Vec::new();
    let mut seen: BTreeMap<Target, Pos> = BTreeMap::new();
    for r in raw {
        let Some(target) = &r.target else { continue };
        let first = first_of(&mut seen, target.value.clone(), target.pos, cx, |first| {
            format!("{} already has a restart rule, at {first}", target.value)
        });
        if !first {
            continue;
        }
        cx.check_target(target);
        if let (Some(restart), Ok(heartbeat_timeout_ms)) = (r.restart, r.heartbeat_timeout_ms) {
            rules.push(RestartRule {
                target: target.value.clone(),
                restart,
                heartbeat_timeout_ms,
            });
        }
    }
    rules
}
