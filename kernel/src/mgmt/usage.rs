//! Usage metering over HTTP: `GET /api/v1/usage[?tenant=NAME]` (by tenant, each with its
//! partitions, terminated ones included) and the `plinth_usage_*` Prometheus counters.
//!
//! Owns these documents and the units they are in (CPU in ns, memory in GiB-hours). The
//! counting is `partition::meter`'s; it must not count anything itself.

use alloc::string::String;
use alloc::vec::Vec;

use plinth_control::views::{PartitionUsage, TenantUsage, UsageCounters, UsageView, View};
use plinth_http::Response;

use crate::clock;
use crate::partition::meter::Usage;
use crate::partition::{RUNTIME, Runtime};

pub const PATH: &str = "/api/v1/usage";

/// Byte-nanoseconds in a GiB-hour.
const GIB_HOUR_BYTE_NS: f64 = (1u64 << 30) as f64 * 3600e9;

fn counters(u: &Usage) -> UsageCounters {
    UsageCounters {
        cpu_ns: u.cpu_ns,
        memory_gib_hours: u.memory_byte_ns as f64 / GIB_HOUR_BYTE_NS,
        disk_reads: u.disk_reads,
        disk_writes: u.disk_writes,
        disk_read_bytes: u.disk_read_bytes,
        disk_written_bytes: u.disk_written_bytes,
        net_rx_bytes: u.net_rx_bytes,
        net_tx_bytes: u.net_tx_bytes,
    }
}

/// Every partition's usage, live and terminated: (tenant, partition, terminated, usage).
fn rows(rt: &Runtime) -> Vec<(Option<String>, String, bool, Usage)> {
    let mut out: Vec<_> = (0..rt.partitions.len())
        .map(|pi| {
            let p = &rt.partitions[pi];
            (p.tenant.clone(), p.name.clone(), false, rt.usage(pi))
        })
        .collect();
    out.extend(
        rt.retired
            .iter()
            .map(|r| (r.tenant.clone(), r.partition.clone(), true, r.usage)),
    );
    out
}

fn view(rt: &Runtime, only: Option<&str>) -> UsageView {
    let mut tenants: Vec<TenantUsage> = Vec::new();
    for (tenant, partition, terminated, usage) in rows(rt) {
        if only.is_some_and(|t| tenant.as_deref() != Some(t)) {
            continue;
        }
        let c = counters(&usage);
        let at = match tenants.iter().position(|t| t.tenant == tenant) {
            Some(i) => i,
            None => {
                tenants.push(TenantUsage {
                    tenant: tenant.clone(),
                    total: UsageCounters::default(),
                    partitions: Vec::new(),
                });
                tenants.len() - 1
            }
        };
        let t = &mut tenants[at];
        t.total = t.total.plus(&c);
        t.partitions.push(PartitionUsage {
            partition,
            terminated,
            usage: c,
        });
    }
    UsageView {
        since_ns: 0,
        uptime_ns: clock::now_ns(),
        tenants,
    }
}

pub fn route(method: &str, query: Option<&str>) -> Response {
    if !matches!(method, "GET" | "HEAD") {
        return Response::method_not_allowed("GET, HEAD");
    }
    let mut only: Option<&str> = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("tenant", t)) if !t.is_empty() => only = Some(t),
            _ => return Response::error(400, "unknown query parameter (expected tenant=NAME)"),
        }
    }
    let guard = RUNTIME.lock();
    let Some(rt) = guard.as_ref() else {
        return Response::json(
            200,
            UsageView {
                since_ns: 0,
                uptime_ns: clock::now_ns(),
                tenants: Vec::new(),
            }
            .to_json(),
        );
    };
    Response::json(200, view(rt, only).to_json())
}

/// The `plinth_usage_*` counters, by tenant and partition.
pub fn metrics(w: &mut plinth_http::prometheus::Writer) {
    use plinth_http::prometheus::Kind;
    let guard = RUNTIME.lock();
    let Some(rt) = guard.as_ref() else {
        return;
    };
    let rows = rows(rt);
    type Value = fn(&UsageCounters) -> f64;
    let families: [(&str, &str, Value); 8] = [
        (
            "plinth_usage_cpu_seconds_total",
            "CPU time of the partition's agents.",
            |c| c.cpu_ns as f64 / 1e9,
        ),
        (
            "plinth_usage_memory_gib_hours_total",
            "Charged memory over time.",
            |c| c.memory_gib_hours,
        ),
        ("plinth_usage_disk_reads_total", "Disk reads.", |c| {
            c.disk_reads as f64
        }),
        ("plinth_usage_disk_writes_total", "Disk writes.", |c| {
            c.disk_writes as f64
        }),
        (
            "plinth_usage_disk_read_bytes_total",
            "Bytes read from disk.",
            |c| c.disk_read_bytes as f64,
        ),
        (
            "plinth_usage_disk_written_bytes_total",
            "Bytes written to disk.",
            |c| c.disk_written_bytes as f64,
        ),
        (
            "plinth_usage_net_rx_bytes_total",
            "Bytes the partition's NICs received.",
            |c| c.net_rx_bytes as f64,
        ),
        (
            "plinth_usage_net_tx_bytes_total",
            "Bytes the partition's NICs sent.",
            |c| c.net_tx_bytes as f64,
        ),
    ];
    for (name, help, value) in families {
        for (tenant, partition, terminated, usage) in &rows {
            w.metric(
                name,
                help,
                Kind::Counter,
                &[
                    ("tenant", tenant.as_deref().unwrap_or("")),
                    ("partition", partition.as_str()),
                    // A name terminated and created again is two series, not one that
                    // goes back.
                    ("state", if *terminated { "terminated" } else { "live" }),
                ],
                value(&counters(usage)),
            );
        }
    }
}
