//! The management API: routes HTTP requests to the runtime's answers.
//!
//! Owns the URL space (`/api/v1/health`, `/api/v1/status`, `/metrics`) and the glue
//! between a TCP socket and its `plinth-http` connection. It must not parse HTTP itself
//! (`plinth-http` does, and is fuzzed) nor reach into devices except through the
//! registry's read-only views.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use plinth_http::{Connection, Limits, Request, Response};
use smoltcp::socket::tcp;

use crate::net::NicInfo;
use crate::{arch, clock, devices, memory};

/// Facts fixed at boot that the handlers report.
pub struct Context {
    pub memory_bytes: u64,
    pub cpus: u32,
}

/// One client connection.
pub struct Conn {
    http: Connection,
}

impl Conn {
    pub fn new(now_ms: u64) -> Conn {
        Conn {
            http: Connection::new(Limits::default(), now_ms),
        }
    }
}

/// Moves bytes between `socket` and `conn`, answering every complete request. Returns
/// whether anything happened.
pub fn serve(
    conn: &mut Conn,
    socket: &mut tcp::Socket,
    now_ms: u64,
    ctx: &Context,
    nic: &NicInfo,
) -> bool {
    let mut moved = false;
    if !socket.may_send() && !socket.may_recv() {
        return false; // handshake not finished yet, or already closing
    }
    while socket.can_recv() {
        let taken = socket
            .recv(|data| {
                let n = conn.http.receive(now_ms, data);
                (n, n)
            })
            .unwrap_or(0);
        if taken == 0 {
            break;
        }
        moved = true;
    }
    while let Some(next) = conn.http.next_request(now_ms) {
        moved = true;
        match next {
            Ok((request, _body)) => {
                let response = route(&request, ctx, nic);
                log::debug!(
                    "api: {} {} -> {}",
                    request.method(),
                    request.path(),
                    response.status
                );
                conn.http.respond(response);
            }
            // Already answered with its status; the connection is closing.
            Err(e) => log::debug!("api: refused request: {}", e.message()),
        }
    }
    if let Some(e) = conn.http.poll(now_ms) {
        log::debug!("api: {}", e.message());
    }
    while !conn.http.outgoing().is_empty() && socket.can_send() {
        match socket.send_slice(conn.http.outgoing()) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                conn.http.consume_outgoing(n);
                moved = true;
            }
        }
    }
    let peer_done = socket.state() == tcp::State::CloseWait;
    if conn.http.should_close() || (peer_done && conn.http.outgoing().is_empty()) {
        // Our side is done (error, `Connection: close`, timeout) or the peer closed its
        // side and has been answered: FIN after the queued bytes.
        socket.close();
    }
    moved
}

const GET_HEAD: &str = "GET, HEAD";

fn route(req: &Request, ctx: &Context, nic: &NicInfo) -> Response {
    let read_only = matches!(req.method(), "GET" | "HEAD");
    let path = req.path();
    let known = matches!(path, "/api/v1/health" | "/api/v1/status" | "/metrics");
    if !known {
        return Response::error(404, "no such resource");
    }
    if !read_only {
        return Response::method_not_allowed(GET_HEAD);
    }
    match path {
        "/api/v1/health" => Response::json(200, String::from("{\"status\":\"ok\"}")),
        "/api/v1/status" => Response::json(200, status_json(ctx, nic)),
        _ => Response::text(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics_text(ctx, nic),
        ),
    }
}

fn mac_string(mac: [u8; 6]) -> String {
    let mut s = String::with_capacity(17);
    for (i, b) in mac.iter().enumerate() {
        let _ = write!(s, "{}{b:02x}", if i == 0 { "" } else { ":" });
    }
    s
}

fn status_json(ctx: &Context, nic: &NicInfo) -> String {
    use plinth_http::json::Writer;
    let (free_frames, usable_frames) = memory::frame_counts();
    let (heap_used, heap_size) = arch::heap::usage();
    let mut w = Writer::new();
    w.begin_object();
    w.key("version").string(env!("CARGO_PKG_VERSION"));
    w.key("uptime_ms").u64(clock::now_ns() / 1_000_000);
    w.key("cpus").u64(u64::from(ctx.cpus));
    w.key("memory").begin_object();
    w.key("total_bytes").u64(ctx.memory_bytes);
    w.key("free_bytes").u64(free_frames as u64 * 4096);
    w.key("usable_frame_bytes").u64(usable_frames as u64 * 4096);
    w.key("heap_used_bytes").u64(heap_used as u64);
    w.key("heap_bytes").u64(heap_size as u64);
    w.end_object();
    w.key("devices").begin_array();
    devices::for_each_pci_function(|f| {
        w.begin_object();
        w.key("pci").string(&f.address);
        w.key("vendor_id")
            .string(&alloc::format!("{:04x}", f.vendor));
        w.key("device_id")
            .string(&alloc::format!("{:04x}", f.device));
        w.key("class")
            .string(&alloc::format!("{:02x}{:02x}", f.class, f.subclass));
        match f.driver {
            Some(d) => w.key("driver").string(d),
            None => w.key("driver").null(),
        };
        w.end_object();
    });
    w.end_array();
    w.key("nics").begin_array();
    w.begin_object();
    w.key("name").string(nic.name);
    w.key("pci").string(nic.pci);
    w.key("mac").string(&mac_string(nic.mac));
    match nic.address {
        Some(a) => w.key("ipv4").string(&alloc::format!("{a}")),
        None => w.key("ipv4").null(),
    };
    match nic.gateway {
        Some(g) => w.key("gateway").string(&alloc::format!("{g}")),
        None => w.key("gateway").null(),
    };
    w.key("address_source").string(match nic.source {
        crate::net::AddressSource::Static => "static",
        crate::net::AddressSource::Dhcp => "dhcp",
    });
    w.end_object();
    w.end_array();
    w.key("disks").begin_array();
    devices::for_each_disk(|name, pci, sectors, serial| {
        w.begin_object();
        w.key("name").string(name);
        w.key("pci").string(pci);
        w.key("sectors").u64(sectors);
        w.key("capacity_bytes").u64(sectors * 512);
        w.key("serial").string(serial);
        w.end_object();
    });
    w.end_array();
    w.end_object();
    w.finish()
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
    ] {
        w.metric(name, help, Kind::Counter, &labels, value as f64);
    }
    let mut disks: Vec<(String, devices::DiskCounters)> = Vec::new();
    devices::for_each_disk_counters(|name, c| disks.push((String::from(name), c)));
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
    w.finish()
}
