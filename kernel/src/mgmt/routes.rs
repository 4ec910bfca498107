//! The management API's URL space: routes each request to the runtime's answer.
//!
//! Owns the paths (`/api/v1/health`, `/api/v1/status`, `/api/v1/catalog`,
//! `/api/v1/events`, `/api/v1/network` (through `network`), `/metrics`, `/api/v1/partitions…`
//! through `partitions`, `/api/v1/policies…` through `policies`, and the profiler's
//! `/api/v1/agents/…/profile` and `/api/v1/profile` through `profile`, `/api/v1/usage`
//! through `usage`) and the
//! documents they return: health and status as `plinth_control::views` filled from the
//! runtime's state (the mapping of its names to the views' is here), the catalog as
//! `plinth-catalog` wrote it, metrics as Prometheus text; error bodies are
//! `plinth-http`'s. It must not parse HTTP (`plinth-http` does) nor reach into devices
//! except through their read-only views.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use plinth_control::views::{
    AddressSource, BlockDiskView, CatalogSummary, Health, HostNicView, PciFunctionView,
    RuntimeMemory, Status, View,
};
use plinth_http::{Request, Response};

use super::Context;
use crate::net::NicInfo;
use crate::{arch, block, catalog, clock, drivers, memory, net};

const GET_HEAD: &str = "GET, HEAD";

pub fn route(req: &Request, body: &[u8], ctx: &Context, nic: &NicInfo) -> Response {
    let read_only = matches!(req.method(), "GET" | "HEAD");
    let path = req.path();
    if path == "/api/v1/partitions" || path.starts_with("/api/v1/partitions/") {
        return super::partitions::command(req.method(), path, body);
    }
    if path == super::policies::PATH || path.starts_with("/api/v1/policies/") {
        return super::policies::route(req.method(), path, body);
    }
    if path.starts_with(super::profile::AGENTS) {
        return super::profile::agent_route(req.method(), path);
    }
    if path == super::profile::PROFILE {
        return super::profile::top_route(req.method(), req.query());
    }
    if path == super::usage::PATH {
        return super::usage::route(req.method(), req.query());
    }
    let known = matches!(
        path,
        "/api/v1/health"
            | "/api/v1/status"
            | "/api/v1/catalog"
            | "/metrics"
            | "/api/v1/events"
            | "/api/v1/network"
    );
    if !known {
        return Response::error(404, "no such resource");
    }
    if !read_only {
        return Response::method_not_allowed(GET_HEAD);
    }
    match path {
        "/api/v1/health" => Response::json(200, Health::ok().to_json()),
        "/api/v1/status" => Response::json(200, status(ctx, nic).to_json()),
        "/api/v1/catalog" => catalog_response(),
        "/api/v1/events" => events_response(req.query()),
        "/api/v1/network" => Response::json(200, super::network::view().to_json()),
        _ => Response::text(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics_text(ctx, nic),
        ),
    }
}

/// Events after `since` (a sequence number; `?since=N`), oldest first; a malformed
/// query is a 400, not a guess.
fn events_response(query: Option<&str>) -> Response {
    let mut since = 0u64;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("since", v)) => match v.parse() {
                Ok(n) => since = n,
                Err(_) => return Response::error(400, "since: expected a sequence number"),
            },
            _ => return Response::error(400, "unknown query parameter (expected since=N)"),
        }
    }
    Response::json(200, super::partitions::events_json(since))
}

/// The checked catalog (200), or why there is none: 503 while it is being read or when
/// it failed its checks (the runtime is in its safe state), 404 when no disk holds one.
fn catalog_response() -> Response {
    use plinth_http::json::Writer;
    let mut w = Writer::new();
    let status = match catalog::state() {
        Some(catalog::State::Verified { json, .. }) => return Response::json(200, json.clone()),
        Some(catalog::State::Invalid { disk, error }) => {
            w.begin_object();
            w.key("state").string("invalid");
            w.key("disk").string(disk);
            w.key("error").string(error);
            w.key("agents_started").u64(0);
            w.end_object();
            503
        }
        Some(catalog::State::Absent { reason }) => {
            w.begin_object();
            w.key("state").string("absent");
            w.key("reason").string(reason);
            w.end_object();
            404
        }
        None => {
            w.begin_object();
            w.key("state").string("loading");
            w.end_object();
            503
        }
    };
    Response::json(status, w.finish())
}

/// `GET /api/v1/status`: what the runtime is and has, as the tool reads it.
fn status(ctx: &Context, nic: &NicInfo) -> Status {
    let (free_frames, usable_frames) = memory::frame_counts();
    let (heap_used, heap_size) = arch::heap::usage();
    let mut devices = Vec::new();
    drivers::for_each_pci_function(|f| {
        devices.push(PciFunctionView::new(
            f.location, f.vendor, f.device, f.class, f.subclass, f.driver,
        ));
    });
    let mut disks = Vec::new();
    block::for_each_disk(|name, location, sectors, serial| {
        disks.push(BlockDiskView::new(name, location, sectors, serial));
    });
    Status {
        version: String::from(env!("CARGO_PKG_VERSION")),
        uptime_ms: clock::now_ns() / 1_000_000,
        cpus: ctx.cpus,
        memory: RuntimeMemory {
            total_bytes: ctx.memory_bytes,
            free_bytes: free_frames as u64 * 4096,
            usable_frame_bytes: usable_frames as u64 * 4096,
            heap_used_bytes: heap_used as u64,
            heap_bytes: heap_size as u64,
        },
        devices,
        nics: vec![HostNicView::new(
            nic.name,
            nic.location,
            nic.mac,
            nic.address,
            nic.gateway,
            match nic.source {
                net::AddressSource::Static => AddressSource::Static,
                net::AddressSource::Dhcp => AddressSource::Dhcp,
            },
        )],
        catalog: match catalog::state() {
            Some(catalog::State::Verified {
                disk,
                partitions,
                agents,
                ..
            }) => CatalogSummary::Verified {
                disk: disk.clone(),
                partitions: *partitions as u64,
                agents: *agents as u64,
            },
            Some(catalog::State::Invalid { .. }) => CatalogSummary::Invalid,
            Some(catalog::State::Absent { .. }) => CatalogSummary::Absent,
            None => CatalogSummary::Loading,
        },
        disks,
    }
}

fn metrics_text(ctx: &Context, nic: &NicInfo) -> String {
    use plinth_http::prometheus::{Kind, Writer};
    let (free_frames, _) = memory::frame_counts();
    let (heap_used, _) = arch::heap::usage();
    let mut w = Writer::new();
    w.metric(
        "plinth_uptime_seconds",
        "Time since kernel entry.",
        Kind::Gauge,
        &[],
        (clock::now_ns() / 1_000_000) as f64 / 1000.0,
    );
    w.metric(
        "plinth_memory_total_bytes",
        "RAM the firmware reported usable.",
        Kind::Gauge,
        &[],
        ctx.memory_bytes as f64,
    );
    w.metric(
        "plinth_memory_free_bytes",
        "Free physical frames, in bytes.",
        Kind::Gauge,
        &[],
        (free_frames as u64 * 4096) as f64,
    );
    w.metric(
        "plinth_heap_used_bytes",
        "Kernel heap in use.",
        Kind::Gauge,
        &[],
        heap_used as f64,
    );
    w.metric(
        "plinth_console_agent_lines_dropped_total",
        "Agent log lines dropped because agents logged faster than the console writes.",
        Kind::Counter,
        &[],
        crate::console::agent_lines_dropped() as f64,
    );
    w.metric(
        "plinth_api_connections_reset_total",
        "API connections reset to make room for new clients (per-peer cap, spare sockets).",
        Kind::Counter,
        &[],
        super::evicted() as f64,
    );
    let labels = [("nic", nic.name)];
    let c = nic.counters;
    for (name, help, value) in [
        (
            "plinth_nic_rx_packets_total",
            "Frames received.",
            c.rx_frames,
        ),
        ("plinth_nic_rx_bytes_total", "Bytes received.", c.rx_bytes),
        ("plinth_nic_tx_packets_total", "Frames sent.", c.tx_frames),
        ("plinth_nic_tx_bytes_total", "Bytes sent.", c.tx_bytes),
        (
            "plinth_nic_tx_dropped_total",
            "Frames dropped because the transmit ring was full.",
            c.tx_ring_full,
        ),
        ("plinth_nic_errors_total", "Device errors.", c.errors),
        (
            "plinth_nic_rx_super_total",
            "TCP super-frames the host handed over whole (receive offload), in rx_packets.",
            c.rx_super,
        ),
        (
            "plinth_nic_tx_super_total",
            "TCP super-frames handed to the host to cut up (segmentation offload).",
            c.tx_super,
        ),
    ] {
        w.metric(name, help, Kind::Counter, &labels, value as f64);
    }
    let mut disks: Vec<(String, block::DiskCounters)> = Vec::new();
    block::for_each_disk_counters(|name, c| disks.push((String::from(name), c)));
    for (name, c) in &disks {
        let labels = [("disk", name.as_str())];
        for (metric, help, value) in [
            (
                "plinth_disk_reads_total",
                "Read requests completed.",
                c.reads,
            ),
            ("plinth_disk_read_bytes_total", "Bytes read.", c.read_bytes),
            (
                "plinth_disk_writes_total",
                "Write requests completed.",
                c.writes,
            ),
            (
                "plinth_disk_written_bytes_total",
                "Bytes written.",
                c.written_bytes,
            ),
            ("plinth_disk_flushes_total", "Flushes completed.", c.flushes),
            (
                "plinth_disk_errors_total",
                "Requests that failed.",
                c.errors,
            ),
        ] {
            w.metric(metric, help, Kind::Counter, &labels, value as f64);
        }
    }
    super::partitions::metrics(&mut w);
    super::usage::metrics(&mut w);
    bridge_metrics(&mut w);
    w.finish()
}

/// The switch's per-port and per-VLAN counters; drops by reason. Each family's samples
/// are written together, as the exposition format wants.
fn bridge_metrics(w: &mut plinth_http::prometheus::Writer) {
    use alloc::format;
    use plinth_bridge::{Drop, PortCounters, VlanCounters};
    use plinth_http::prometheus::Kind;
    let Some((ports, vlans)) = net::switch::inspect(|b| {
        let ports: Vec<(String, PortCounters)> = b
            .ports()
            .map(|(_, cfg, c)| (cfg.name.clone(), c.clone()))
            .collect();
        let vlans: Vec<(String, VlanCounters)> = b
            .vlans()
            .map(|(vid, c)| (format!("{vid}"), c.clone()))
            .collect();
        (ports, vlans)
    }) else {
        return;
    };
    type PortSeries = fn(&PortCounters) -> u64;
    let port_series: [(&str, &str, PortSeries); 4] = [
        (
            "plinth_bridge_port_rx_frames_total",
            "Frames a bridge port took in.",
            |c| c.rx_frames,
        ),
        (
            "plinth_bridge_port_rx_bytes_total",
            "Bytes a bridge port took in.",
            |c| c.rx_bytes,
        ),
        (
            "plinth_bridge_port_tx_frames_total",
            "Frames a bridge port handed out.",
            |c| c.tx_frames,
        ),
        (
            "plinth_bridge_port_tx_bytes_total",
            "Bytes a bridge port handed out.",
            |c| c.tx_bytes,
        ),
    ];
    for (name, help, value) in port_series {
        for (port, c) in &ports {
            w.metric(
                name,
                help,
                Kind::Counter,
                &[("port", port.as_str())],
                value(c) as f64,
            );
        }
    }
    for (port, c) in &ports {
        for why in Drop::ALL {
            let n = c.drops[why.index()];
            if n > 0 {
                w.metric(
                    "plinth_bridge_port_drops_total",
                    "Frames a bridge port dropped, by reason.",
                    Kind::Counter,
                    &[("port", port.as_str()), ("reason", why.name())],
                    n as f64,
                );
            }
        }
    }
    type VlanSeries = fn(&VlanCounters) -> u64;
    let vlan_series: [(&str, &str, Kind, VlanSeries); 4] = [
        (
            "plinth_bridge_vlan_frames_total",
            "Frames accepted into a VLAN (0: native, untagged).",
            Kind::Counter,
            |c| c.frames,
        ),
        (
            "plinth_bridge_vlan_bytes_total",
            "Bytes accepted into a VLAN.",
            Kind::Counter,
            |c| c.bytes,
        ),
        (
            "plinth_bridge_vlan_flooded_total",
            "Frames flooded within a VLAN (unknown unicast, broadcast, multicast).",
            Kind::Counter,
            |c| c.flooded,
        ),
        (
            "plinth_bridge_vlan_macs",
            "MAC table entries of a VLAN.",
            Kind::Gauge,
            |c| c.macs as u64,
        ),
    ];
    for (name, help, kind, value) in vlan_series {
        for (vlan, c) in &vlans {
            w.metric(
                name,
                help,
                kind,
                &[("vlan", vlan.as_str())],
                value(c) as f64,
            );
        }
    }
    for (vlan, c) in &vlans {
        for why in Drop::ALL {
            let n = c.drops[why.index()];
            if n > 0 {
                w.metric(
                    "plinth_bridge_vlan_drops_total",
                    "Frames dropped in a VLAN, by reason.",
                    Kind::Counter,
                    &[("vlan", vlan.as_str()), ("reason", why.name())],
                    n as f64,
                );
            }
        }
    }
}
