//! The management API: routes HTTP requests to the runtime's answers.
//!
//! Owns the URL space (`/api/v1/health`, `/api/v1/status`, `/api/v1/catalog`, `/metrics`, and with `bench`
//! on the command line the benchmark streams `/api/v1/bench/{sink,source}`) and the glue
//! between a TCP socket and its `plinth-http` connection. It must not parse HTTP itself
//! (`plinth-http` does, and is fuzzed) nor reach into devices except through the
//! registry's read-only views.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use plinth_http::{Connection, Limits, Request, Response};
use smoltcp::socket::tcp;

use crate::net::NicInfo;
use crate::{arch, block, catalog, clock, devices, memory};

/// Facts fixed at boot that the handlers report.
pub struct Context {
    pub memory_bytes: u64,
    pub cpus: u32,
    /// Whether the benchmark streams are offered (`bench` on the command line).
    pub bench: bool,
}

/// The protocol a benchmark stream switches to (`Upgrade: plinth-bench`).
const BENCH_PROTOCOL: &str = "plinth-bench";
/// A benchmark stream that moves no byte for this long is dropped.
const STREAM_IDLE_MS: u64 = 30_000;
/// Largest `bytes=` a source stream sends.
const MAX_SOURCE_BYTES: u64 = 1 << 40;

/// One client connection.
pub struct Conn {
    http: Connection,
    /// Set once the connection switched from HTTP to a benchmark stream.
    stream: Option<Stream>,
}

/// A raw TCP stream after `101 Switching Protocols`, for `plinth bench net`.
enum Stream {
    /// Counts and discards what the peer sends; when it half-closes, answers
    /// `received COUNT` and closes.
    Sink { received: u64, last_ms: u64 },
    /// Sends `remaining` bytes, then closes.
    Source { remaining: u64, last_ms: u64 },
}

impl Conn {
    pub fn new(now_ms: u64) -> Conn {
        Conn {
            http: Connection::new(Limits::default(), now_ms),
            stream: None,
        }
    }
}

/// What a benchmark request asks for, if it is one the runtime offers.
fn bench_stream(req: &Request, ctx: &Context, now_ms: u64) -> Option<Result<Stream, Response>> {
    let sink = match req.path() {
        "/api/v1/bench/sink" => true,
        "/api/v1/bench/source" => false,
        _ => return None,
    };
    if !ctx.bench {
        return None; // not offered: an unknown path like any other
    }
    if !req.wants_upgrade(BENCH_PROTOCOL) {
        return Some(Err(Response::error(
            426,
            "this resource is a raw stream: send `Connection: Upgrade` and `Upgrade: plinth-bench`",
        )));
    }
    if sink {
        return Some(Ok(Stream::Sink {
            received: 0,
            last_ms: now_ms,
        }));
    }
    let bytes = req
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("bytes="))
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&b| b <= MAX_SOURCE_BYTES);
    Some(match bytes {
        Some(remaining) => Ok(Stream::Source {
            remaining,
            last_ms: now_ms,
        }),
        None => Err(Response::error(400, "source needs ?bytes=N (at most 2^40)")),
    })
}

/// Moves a benchmark stream's bytes; returns whether anything moved.
fn serve_stream(stream: &mut Stream, socket: &mut tcp::Socket, now_ms: u64) -> bool {
    let mut moved = false;
    match stream {
        Stream::Sink { received, last_ms } => {
            while let Ok(n) = socket.recv(|data| (data.len(), data.len())) {
                if n == 0 {
                    break;
                }
                *received += n as u64;
                moved = true;
            }
            if socket.state() == tcp::State::CloseWait && !socket.can_recv() {
                let mut line: heapless::String<40> = heapless::String::new();
                let _ = writeln!(line, "received {received}");
                // A fresh 64 KiB send buffer always has room for one line.
                let _ = socket.send_slice(line.as_bytes());
                socket.close();
                moved = true;
            }
            if moved {
                *last_ms = now_ms;
            }
            if now_ms.saturating_sub(*last_ms) > STREAM_IDLE_MS {
                socket.abort();
            }
        }
        Stream::Source { remaining, last_ms } => {
            while *remaining > 0 && socket.can_send() {
                let sent = socket
                    .send(|buf| {
                        let n = buf
                            .len()
                            .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                        buf[..n].fill(b'p');
                        (n, n)
                    })
                    .unwrap_or(0);
                if sent == 0 {
                    break;
                }
                *remaining -= sent as u64;
                moved = true;
            }
            if *remaining == 0 && socket.may_send() {
                socket.close(); // FIN after the queued bytes
            }
            // Anything the peer sends is not part of the protocol; drop it.
            while let Ok(n) = socket.recv(|data| (data.len(), data.len())) {
                if n == 0 {
                    break;
                }
            }
            // Only progress counts: a peer that stops reading (or never closes after
            // the last byte) is dropped after the idle limit.
            if moved {
                *last_ms = now_ms;
            }
            if now_ms.saturating_sub(*last_ms) > STREAM_IDLE_MS {
                socket.abort();
            }
        }
    }
    moved
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
    if conn.http.is_switched()
        && conn.http.outgoing().is_empty()
        && let Some(stream) = conn.stream.as_mut()
    {
        return serve_stream(stream, socket, now_ms);
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
            Ok((request, body)) => {
                match bench_stream(&request, ctx, now_ms) {
                    Some(Ok(mut stream)) => {
                        log::debug!("api: {} {} -> 101", request.method(), request.path());
                        if let Some(early) = conn.http.switch_protocols(BENCH_PROTOCOL) {
                            if let Stream::Sink { received, .. } = &mut stream {
                                *received += early.len() as u64;
                            }
                            conn.stream = Some(stream);
                            break;
                        }
                        conn.http
                            .respond(Response::error(400, "cannot switch protocols here"));
                        continue;
                    }
                    Some(Err(refusal)) => {
                        conn.http.respond(refusal);
                        continue;
                    }
                    None => {}
                }
                let response = route(&request, &body, ctx, nic);
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
    if conn.http.is_switched() {
        if conn.http.outgoing().is_empty()
            && let Some(stream) = conn.stream.as_mut()
        {
            moved |= serve_stream(stream, socket, now_ms);
        }
        return moved;
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

fn route(req: &Request, body: &[u8], ctx: &Context, nic: &NicInfo) -> Response {
    let read_only = matches!(req.method(), "GET" | "HEAD");
    let path = req.path();
    if path == "/api/v1/partitions" || path.starts_with("/api/v1/partitions/") {
        return crate::partition::api::command(req.method(), path, body);
    }
    let known = matches!(
        path,
        "/api/v1/health" | "/api/v1/status" | "/api/v1/catalog" | "/metrics" | "/api/v1/events"
    );
    if !known {
        return Response::error(404, "no such resource");
    }
    if !read_only {
        return Response::method_not_allowed(GET_HEAD);
    }
    match path {
        "/api/v1/health" => Response::json(200, String::from("{\"status\":\"ok\"}")),
        "/api/v1/status" => Response::json(200, status_json(ctx, nic)),
        "/api/v1/catalog" => catalog_response(),
        "/api/v1/events" => events_response(req.query()),
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
    Response::json(200, crate::partition::api::events_json(since))
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
        w.key("pci").string(&alloc::format!("{}", f.location));
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
    w.key("location").string(nic.location);
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
    w.key("catalog").begin_object();
    match catalog::state() {
        Some(st) => {
            w.key("state").string(st.name());
            if let catalog::State::Verified {
                disk,
                partitions,
                agents,
                ..
            } = st
            {
                w.key("disk").string(disk);
                w.key("partitions").u64(*partitions as u64);
                w.key("agents").u64(*agents as u64);
            }
        }
        None => {
            w.key("state").string("loading");
        }
    }
    w.end_object();
    w.key("disks").begin_array();
    block::for_each_disk(|name, location, sectors, serial| {
        w.begin_object();
        w.key("name").string(name);
        w.key("location").string(location);
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
    crate::partition::api::metrics(&mut w);
    w.finish()
}
