//! A [`PolicySet`] as compact JSON, for the runtime's `GET /api/v1/catalog`. This module
//! owns only the JSON shape (documented in `docs/policies.md`); it writes to any
//! [`fmt::Write`] so the kernel can render into its response buffer without a JSON
//! library. Absent optional values are `null`, keys are always present and in a fixed
//! order, so the output depends only on the set.

use core::fmt::{self, Write};

use super::{
    Bucket, Contention, Deployment, Limit, PolicySet, Pool, Restart, RestartRule, Target, Tenant,
};

/// A JSON string literal: quotes, backslashes and control characters escaped.
pub fn write_str(out: &mut impl Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    let mut rest = s;
    // Unescaped runs are written whole; only the characters JSON forbids are escaped.
    while let Some(i) = rest.find(|c: char| c == '"' || c == '\\' || c.is_control()) {
        out.write_str(&rest[..i])?;
        let c = rest[i..].chars().next().unwrap_or('\0');
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            // C1 controls (U+0080..U+009F) are legal in JSON but escaped too: they upset
            // terminals showing the catalog.
            c => write!(out, "\\u{:04x}", u32::from(c))?,
        }
        rest = &rest[i + c.len_utf8()..];
    }
    out.write_str(rest)?;
    out.write_char('"')
}

/// `[a,b,…]`, each item written by `f`.
fn write_list<W: Write, T>(
    out: &mut W,
    items: impl IntoIterator<Item = T>,
    mut f: impl FnMut(&mut W, T) -> fmt::Result,
) -> fmt::Result {
    out.write_char('[')?;
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        f(out, item)?;
    }
    out.write_char(']')
}

fn write_strs<'a>(out: &mut impl Write, items: impl IntoIterator<Item = &'a str>) -> fmt::Result {
    write_list(out, items, write_str)
}

/// `value` or `null`.
fn write_opt<T: fmt::Display>(out: &mut impl Write, value: Option<T>) -> fmt::Result {
    match value {
        Some(v) => write!(out, "{v}"),
        None => out.write_str("null"),
    }
}

pub(super) fn write_set(set: &PolicySet, out: &mut impl Write) -> fmt::Result {
    out.write_str("{\"deployments\":")?;
    write_list(out, &set.deployments, deployment)?;
    out.write_str(",\"contention\":")?;
    contention(out, &set.contention)?;
    out.write_str(",\"limits\":")?;
    write_list(out, &set.limits, limit)?;
    out.write_str(",\"restart_rules\":")?;
    write_list(out, &set.restart_rules, rule)?;
    out.write_str(",\"pools\":")?;
    write_list(out, &set.pools, pool)?;
    out.write_str(",\"tenants\":")?;
    write_list(out, &set.tenants, tenant)?;
    out.write_char('}')
}

fn deployment(out: &mut impl Write, d: &Deployment) -> fmt::Result {
    out.write_str("{\"agent\":")?;
    write_str(out, &d.agent)?;
    write!(out, ",\"version\":\"{}\",\"to\":", d.version)?;
    write_strs(out, d.to.iter().map(|s| s.as_str()))?;
    out.write_str(",\"partitions\":")?;
    write_strs(out, d.partitions.iter().map(|s| s.as_str()))?;
    out.write_str(",\"window\":")?;
    match &d.window {
        Some(w) => {
            out.write_str("{\"days\":")?;
            write_strs(out, w.days.iter().map(|d| d.as_str()))?;
            write!(out, ",\"start\":\"{}\",\"end\":\"{}\"}}", w.start, w.end)?;
        }
        None => out.write_str("null")?,
    }
    out.write_char('}')
}

fn contention(out: &mut impl Write, c: &Contention) -> fmt::Result {
    out.write_str("{\"cpu_busy_percent\":")?;
    write_opt(out, c.cpu_busy_percent)?;
    out.write_str(",\"memory_used_percent\":")?;
    write_opt(out, c.memory_used_percent)?;
    out.write_str(",\"disk_busy_percent\":")?;
    write_opt(out, c.disk_busy_percent)?;
    out.write_str(",\"network_busy_percent\":")?;
    write_opt(out, c.network_busy_percent)?;
    out.write_str(",\"cpu_throttle_floor_percent\":")?;
    write_opt(out, c.cpu_throttle_floor_percent)?;
    out.write_str(",\"disk_throttle_floor_percent\":")?;
    write_opt(out, c.disk_throttle_floor_percent)?;
    out.write_str(",\"memory_throttle_floor_percent\":")?;
    write_opt(out, c.memory_throttle_floor_percent)?;
    out.write_char('}')
}

/// `"agent":"x","partition":null` (or the other way round), as the files write targets.
fn target(out: &mut impl Write, t: &Target) -> fmt::Result {
    let (agent, partition) = match t {
        Target::Agent(n) => (Some(n), None),
        Target::Partition(n) => (None, Some(n)),
    };
    for (key, value) in [("agent", agent), ("partition", partition)] {
        if key == "partition" {
            out.write_char(',')?;
        }
        write!(out, "\"{key}\":")?;
        match value {
            Some(n) => write_str(out, n)?,
            None => out.write_str("null")?,
        }
    }
    Ok(())
}

/// `"rate_key":R,"burst_key":B`, both `null` when the rate is not limited.
fn bucket(out: &mut impl Write, rate_key: &str, burst_key: &str, b: Option<Bucket>) -> fmt::Result {
    write!(out, "\"{rate_key}\":")?;
    write_opt(out, b.map(|b| b.rate))?;
    write!(out, ",\"{burst_key}\":")?;
    write_opt(out, b.map(|b| b.burst))
}

fn limit(out: &mut impl Write, l: &Limit) -> fmt::Result {
    out.write_char('{')?;
    target(out, &l.target)?;
    write!(out, ",\"protected\":{}", l.protected)?;
    out.write_str(",\"cpu\":")?;
    match l.cpu {
        Some(c) => {
            write!(out, "{{\"weight\":{},\"cap_percent\":", c.weight)?;
            write_opt(out, c.cap_percent)?;
            out.write_char('}')?;
        }
        None => out.write_str("null")?,
    }
    out.write_str(",\"memory\":")?;
    match l.memory {
        Some(m) => match m.high_mib {
            Some(h) => write!(out, "{{\"cap_mib\":{},\"high_mib\":{h}}}", m.cap_mib)?,
            None => write!(out, "{{\"cap_mib\":{},\"high_mib\":null}}", m.cap_mib)?,
        },
        None => out.write_str("null")?,
    }
    out.write_str(",\"disk\":")?;
    match l.disk {
        Some(d) => {
            out.write_char('{')?;
            bucket(out, "iops", "iops_burst", d.iops)?;
            out.write_char(',')?;
            bucket(out, "bytes_per_sec", "bytes_burst", d.bytes)?;
            out.write_char('}')?;
        }
        None => out.write_str("null")?,
    }
    out.write_str(",\"network\":")?;
    match l.network {
        Some(n) => {
            out.write_char('{')?;
            bucket(out, "bytes_per_sec", "bytes_burst", n.bytes)?;
            out.write_char(',')?;
            bucket(out, "packets_per_sec", "packets_burst", n.packets)?;
            out.write_char('}')?;
        }
        None => out.write_str("null")?,
    }
    out.write_char('}')
}

fn rule(out: &mut impl Write, r: &RestartRule) -> fmt::Result {
    out.write_char('{')?;
    target(out, &r.target)?;
    write!(out, ",\"restart\":\"{}\"", r.restart.as_str())?;
    match &r.restart {
        Restart::Never => out.write_str(
            ",\"max_restarts\":null,\"window_secs\":null,\"backoff\":null,\"on_exhausted\":null",
        )?,
        Restart::OnFailure(b) | Restart::Always(b) => {
            write!(
                out,
                ",\"max_restarts\":{},\"window_secs\":{},\"backoff\":{{\"initial_ms\":{},\"max_ms\":{},\"multiplier\":{}}},\"on_exhausted\":",
                b.max_restarts,
                b.window_secs,
                b.backoff.initial_ms,
                b.backoff.max_ms,
                b.backoff.multiplier
            )?;
            let actions = [
                (b.on_exhausted.quarantine, "quarantine"),
                (b.on_exhausted.alert, "alert"),
            ];
            write_strs(
                out,
                actions.into_iter().filter(|(on, _)| *on).map(|(_, a)| a),
            )?;
        }
    }
    match r.heartbeat_timeout_ms {
        Some(ms) => write!(out, ",\"heartbeat_timeout_ms\":{ms}")?,
        None => out.write_str(",\"heartbeat_timeout_ms\":null")?,
    }
    out.write_char('}')
}

fn pool(out: &mut impl Write, p: &Pool) -> fmt::Result {
    out.write_str("{\"name\":")?;
    write_str(out, &p.name)?;
    out.write_str(",\"ranges\":")?;
    write_list(out, &p.ranges, |o, (lo, hi)| write!(o, "[{lo},{hi}]"))?;
    out.write_char('}')
}

fn tenant(out: &mut impl Write, t: &Tenant) -> fmt::Result {
    out.write_str("{\"name\":")?;
    write_str(out, &t.name)?;
    write!(out, ",\"vlan\":{},\"pool\":", t.vlan)?;
    match &t.pool {
        Some(p) => write_str(out, p)?,
        None => out.write_str("null")?,
    }
    out.write_str(",\"partitions\":")?;
    write_strs(out, t.partitions.iter().map(|s| s.as_str()))?;
    out.write_char('}')
}
