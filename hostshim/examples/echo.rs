//! `echo`: a network agent, for end-to-end tests and benchmarks of partitions' NICs.
//!
//! Demonstrates `hostshim::net`: it brings up the partition's NIC with DHCP or the static
//! address of its config (`etc/echo.toml`), logs `echo: up <ip/prefix> mac <mac>` once
//! the address is there (tests wait for that line), and serves, each on TCP:
//!
//! - port 7, echo: sends back whatever arrives;
//! - port 9, discard: reads and counts; logs `echo: discard N bytes in T ms` when the
//!   client closes;
//! - port 19, chargen: sends RFC 864 lines as fast as the client takes them until it
//!   closes; logs `echo: chargen N bytes in T ms`;
//! - port 80, HTTP/1.0 and 1.1 "who am I": `GET /` answers 200 with a small JSON object
//!   (`{"agent":"echo","mac":"02:…","ip":"10.1.1.5/24",…,"rx_frames":N,…}`) and closes;
//!   another path is 404, another method 405, anything that is not a request line 400.
//!
//! and on UDP port 7, echo: each datagram goes back to its sender; one that starts with
//! `probe ` is logged (`echo: udp echo to 10.1.1.11:1007: probe from 02:…`).
//!
//! With `probe` in its config it is also a client, to check that a peer is reachable:
//! from UDP port 1007 it sends `probe from <its MAC>` to that address every 500 ms until
//! the same bytes come back, and logs `echo: probe 10.1.1.12:7 ok after N ms`, or
//! `echo: probe 10.1.1.12:7 failed: no answer in N ms` once `probe_timeout_ms` has passed
//! since its address came up.
//!
//! Bad input and vanishing clients end their connection, never the agent. Config (every
//! line optional):
//!
//! ```toml
//! address = "dhcp"                  # the default
//! address = "10.1.1.5/24"           # static
//! address = "10.1.1.0/24 host=mac"  # static, host part = last MAC octet, so partitions
//!                                   # running this container on one subnet differ
//! gateway = "10.1.1.1"              # static addresses only
//! probe = "10.1.1.12:7"             # a UDP echo to reach (another echo agent)
//! probe_timeout_ms = 20000          # the default
//! tcp_buffer_kib = 256              # each TCP socket's buffers, each way (16..=4096;
//!                                   # default 128): the window a bulk transfer gets
//! ```
//!
//! Every listening socket holds its buffers too (two per port), so a big buffer needs
//! a partition with the memory: 256 KiB takes about 5 MiB with two transfers open.
//!
//! As a Linux process (`cargo run -p hostshim --example echo`) it serves on 127.0.0.1
//! with the address ignored; `PLINTH_NET_PORT_OFFSET=20000` moves the ports to 20007,
//! 20009, 20019 and 20080 (ports below 1024 need root).
#![cfg_attr(not(feature = "host"), no_std, no_main)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use hostshim::net::{Addressing, Cidr, Limits, Listener, Net, NetError, SocketAddrV4, Stream, Udp};
use hostshim::{config, logf};

hostshim::entry!(run);

/// The config file, inside the agent's container.
const CONFIG: &str = "etc/echo.toml";
/// What each port serves.
const SERVICES: [(u16, Service); 4] = [
    (7, Service::Echo),
    (9, Service::Discard),
    (19, Service::Chargen),
    (80, Service::Http),
];
/// Each TCP socket's buffers, each way, unless the config says otherwise.
const DEFAULT_BUFFER_KIB: usize = 128;
/// Connections served at once; more are closed as they are accepted.
const MAX_CONNECTIONS: usize = 16;
/// Longest wait in one poll, so heartbeats and HTTP timeouts are kept.
const POLL_NS: u64 = 100_000_000;
const HEARTBEAT_NS: u64 = 1_000_000_000;
/// An HTTP request must be complete within this long, and this many bytes.
const HTTP_TIMEOUT_NS: u64 = 10_000_000_000;
const HTTP_MAX_REQUEST: usize = 2048;
/// UDP echo's port.
const UDP_ECHO_PORT: u16 = 7;
/// The port the probe sends from (fixed: `hostshim::net` has no ephemeral UDP ports).
const PROBE_PORT: u16 = 1007;
/// How often the probe sends until it is answered, and how long it tries by default.
const PROBE_EVERY_NS: u64 = 500_000_000;
const PROBE_TIMEOUT_MS: u64 = 20_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    Echo,
    Discard,
    Chargen,
    Http,
}

/// One accepted connection.
struct Conn {
    stream: Stream,
    service: Service,
    since_ns: u64,
    /// Bytes moved: echoed, discarded or generated.
    bytes: u64,
    /// Output not yet taken by the stream (echo's last read, an HTTP response).
    out: Vec<u8>,
    /// Close once `out` is sent (after an HTTP response).
    last: bool,
    /// The HTTP request so far.
    request: Vec<u8>,
    /// Where chargen's stream stands in [`CHARGEN`].
    at: usize,
}

/// What the who-am-I page reports besides the network's own numbers.
struct Counters {
    started_ns: u64,
    accepted: u64,
    udp_echoed: u64,
}

/// The client side (`probe` in the config): a UDP echo to reach.
struct Probe {
    to: SocketAddrV4,
    timeout_ns: u64,
    udp: Udp,
    /// When the interface had its address (the clock starts then), and the last send.
    since_ns: Option<u64>,
    sent_ns: u64,
    payload: String,
    done: bool,
}

fn run() -> i32 {
    let mut buf = [0u8; 1024];
    let text = match config::read(CONFIG, &mut buf) {
        Ok(text) => text,
        Err(e) => {
            logf!("echo: cannot read {CONFIG} ({e}); using DHCP");
            ""
        }
    };
    let addressing = match Addressing::from_config(text) {
        Ok(a) => a,
        Err(e) => {
            logf!("echo: {CONFIG}: {e}");
            return 2;
        }
    };
    // By default 128 KiB each way: a window that keeps a bulk transfer (discard,
    // chargen) moving across the round trip instead of waiting for every 16 KiB to be
    // acknowledged, within the few MiB of a small partition. Buffers are taken as
    // sockets are first used.
    let buffer_kib = match config::number(text, "tcp_buffer_kib") {
        None if config::value(text, "tcp_buffer_kib").is_none() => DEFAULT_BUFFER_KIB,
        Some(kib @ 16..=4096) => kib as usize,
        _ => {
            logf!("echo: {CONFIG}: tcp_buffer_kib must be a number of KiB from 16 to 4096");
            return 2;
        }
    };
    let limits = Limits {
        tcp_sockets: 24,
        tcp_buffer: buffer_kib * 1024,
        ..Limits::default()
    };
    let mut net = match Net::up_with(addressing, limits) {
        Ok(net) => net,
        Err(e) => {
            logf!("echo: cannot bring the network up: {e}");
            return 2;
        }
    };
    let probe = match config::value(text, "probe").map(str::parse::<SocketAddrV4>) {
        None => None,
        Some(Ok(to)) => Some(to),
        Some(Err(_)) => {
            logf!("echo: {CONFIG}: probe must be ADDRESS:PORT");
            return 2;
        }
    };
    let timeout_ms = config::number(text, "probe_timeout_ms").unwrap_or(PROBE_TIMEOUT_MS);
    let mut listeners: Vec<(Listener, Service)> = Vec::new();
    for (port, service) in SERVICES {
        match net.tcp_listen(port) {
            Ok(l) => listeners.push((l, service)),
            Err(e) => {
                logf!("echo: cannot listen on port {port}: {e}");
                return 2;
            }
        }
    }
    let udp = match net.udp_bind(UDP_ECHO_PORT) {
        Ok(u) => u,
        Err(e) => {
            logf!("echo: cannot listen on UDP port {UDP_ECHO_PORT}: {e}");
            return 2;
        }
    };
    let mut probe = match probe {
        None => None,
        Some(to) => match net.udp_bind(PROBE_PORT) {
            Ok(udp) => Some(Probe {
                to,
                timeout_ns: timeout_ms.saturating_mul(1_000_000),
                udp,
                since_ns: None,
                sent_ns: 0,
                payload: format!("probe from {}", Mac(net.mac())),
                done: false,
            }),
            Err(e) => {
                logf!("echo: cannot listen on UDP port {PROBE_PORT}: {e}");
                return 2;
            }
        },
    };
    serve(&mut net, &listeners, &udp, &mut probe)
}

/// The agent's loop; never returns.
fn serve(
    net: &mut Net,
    listeners: &[(Listener, Service)],
    udp: &Udp,
    probe: &mut Option<Probe>,
) -> ! {
    let mut conns: Vec<Conn> = Vec::new();
    let mut counters = Counters {
        started_ns: hostshim::clock_ns(),
        accepted: 0,
        udp_echoed: 0,
    };
    let mut shown: Option<Cidr> = None;
    let mut beat_ns = 0;
    loop {
        net.poll(POLL_NS);
        let now = hostshim::clock_ns();
        if now.saturating_sub(beat_ns) >= HEARTBEAT_NS {
            hostshim::heartbeat();
            beat_ns = now;
        }
        let address = net.address();
        if address != shown {
            match address {
                Some(a) => logf!("echo: up {a} mac {}", Mac(net.mac())),
                None => logf!("echo: address lost"),
            }
            shown = address;
        }
        echo_datagrams(net, udp, &mut counters);
        if let Some(p) = probe.as_mut().filter(|p| !p.done && address.is_some()) {
            step_probe(net, p, now);
        }
        for (listener, service) in listeners {
            while let Some(stream) = net.accept(listener) {
                counters.accepted += 1;
                if conns.len() >= MAX_CONNECTIONS {
                    net.close(stream);
                    continue;
                }
                conns.push(Conn {
                    stream,
                    service: *service,
                    since_ns: now,
                    bytes: 0,
                    out: Vec::new(),
                    last: false,
                    request: Vec::new(),
                    at: 0,
                });
            }
        }
        let mut i = 0;
        while i < conns.len() {
            let open = conns.len();
            if step(net, &mut conns[i], now, &counters, open) {
                i += 1;
            } else {
                let c = conns.swap_remove(i);
                finish(&c, now);
                net.close(c.stream);
            }
        }
    }
}

/// Sends every datagram that arrived on UDP port 7 back to its sender.
fn echo_datagrams(net: &mut Net, udp: &Udp, counters: &mut Counters) {
    let mut buf = [0u8; 1024];
    while let Ok((n, from)) = net.recv_from(udp, &mut buf) {
        let data = &buf[..n];
        if let Some(text) = core::str::from_utf8(data)
            .ok()
            .filter(|t| t.starts_with("probe "))
        {
            logf!("echo: udp echo to {from}: {text}");
        }
        // A full send buffer loses the reply, as UDP may.
        if net.send_to(udp, data, from).is_ok() {
            counters.udp_echoed += 1;
        }
    }
}

/// Sends the probe's datagram when due, and checks what came back.
fn step_probe(net: &mut Net, p: &mut Probe, now: u64) {
    let since = *p.since_ns.get_or_insert(now);
    let mut buf = [0u8; 256];
    while let Ok((n, from)) = net.recv_from(&p.udp, &mut buf) {
        if from == p.to && &buf[..n] == p.payload.as_bytes() {
            let ms = now.saturating_sub(since) / 1_000_000;
            logf!("echo: probe {} ok after {ms} ms", p.to);
            p.done = true;
            return;
        }
    }
    if now.saturating_sub(since) >= p.timeout_ns {
        let ms = p.timeout_ns / 1_000_000;
        logf!("echo: probe {} failed: no answer in {ms} ms", p.to);
        p.done = true;
        return;
    }
    if p.sent_ns == 0 || now.saturating_sub(p.sent_ns) >= PROBE_EVERY_NS {
        // Not sent (no room, or the neighbour is not resolved yet): the next round tries.
        let _ = net.send_to(&p.udp, p.payload.as_bytes(), p.to);
        p.sent_ns = now;
    }
}

/// Logs what a throughput connection moved.
fn finish(c: &Conn, now: u64) {
    let ms = now.saturating_sub(c.since_ns) / 1_000_000;
    match c.service {
        Service::Discard => logf!("echo: discard {} bytes in {ms} ms", c.bytes),
        Service::Chargen => logf!("echo: chargen {} bytes in {ms} ms", c.bytes),
        Service::Echo | Service::Http => {}
    }
}

/// Serves one connection as far as it can go now; whether it stays open.
fn step(net: &mut Net, c: &mut Conn, now: u64, counters: &Counters, open: usize) -> bool {
    if !flush(net, c) {
        return false;
    }
    if !c.out.is_empty() {
        // Still sending: read nothing more until the client takes it.
        return true;
    }
    if c.last {
        return false;
    }
    let mut buf = [0u8; 4096];
    match c.service {
        Service::Echo => match net.recv(&c.stream, &mut buf[..1024]) {
            Ok(0) | Err(NetError::Closed) => false,
            Ok(n) => {
                c.bytes += n as u64;
                c.out.extend_from_slice(&buf[..n]);
                flush(net, c)
            }
            Err(_) => true,
        },
        Service::Discard => {
            // A bounded number of reads, so a fast sender cannot starve the others.
            for _ in 0..16 {
                match net.recv(&c.stream, &mut buf) {
                    Ok(0) | Err(NetError::Closed) => return false,
                    Ok(n) => c.bytes += n as u64,
                    Err(_) => break,
                }
            }
            true
        }
        Service::Chargen => {
            // Input is ignored; its end (or a reset) ends the stream.
            match net.recv(&c.stream, &mut buf) {
                Ok(0) | Err(NetError::Closed) => return false,
                Ok(_) | Err(_) => {}
            }
            // Until the stream is full, or a bounded number of times (as discard).
            for _ in 0..16 {
                match net.send(&c.stream, &CHARGEN[c.at..]) {
                    Ok(n) => {
                        c.bytes += n as u64;
                        c.at = (c.at + n) % CHARGEN.len();
                    }
                    Err(NetError::WouldBlock) => break,
                    Err(_) => return false,
                }
            }
            true
        }
        Service::Http => {
            let room = HTTP_MAX_REQUEST - c.request.len();
            match net.recv(&c.stream, &mut buf[..room.min(1024)]) {
                // The client gave up before the request was complete.
                Ok(0) | Err(NetError::Closed) => return false,
                Ok(n) => c.request.extend_from_slice(&buf[..n]),
                Err(_) => {
                    return now.saturating_sub(c.since_ns) < HTTP_TIMEOUT_NS;
                }
            }
            let complete =
                find(&c.request, b"\r\n\r\n").is_some() || find(&c.request, b"\n\n").is_some();
            if !complete && c.request.len() < HTTP_MAX_REQUEST {
                return true;
            }
            c.out = respond(&c.request, net, counters, open, now).into_bytes();
            c.last = true;
            flush(net, c) && !(c.out.is_empty() && c.last)
        }
    }
}

/// Sends as much of `c.out` as the stream takes; false if the connection is gone.
fn flush(net: &mut Net, c: &mut Conn) -> bool {
    let mut sent = 0;
    while sent < c.out.len() {
        match net.send(&c.stream, &c.out[sent..]) {
            Ok(n) => sent += n,
            Err(NetError::WouldBlock) => break,
            Err(_) => return false,
        }
    }
    c.out.drain(..sent);
    true
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The response to `request` (whole, or cut at [`HTTP_MAX_REQUEST`] bytes).
fn respond(request: &[u8], net: &Net, counters: &Counters, open: usize, now: u64) -> String {
    let line = request
        .split(|b| *b == b'\n')
        .next()
        .and_then(|l| core::str::from_utf8(l).ok())
        .map(|l| l.trim_end_matches('\r'));
    let mut parts = line.unwrap_or_default().split(' ');
    let (method, path, version) = (parts.next(), parts.next(), parts.next());
    let well_formed = parts.next().is_none()
        && matches!(version, Some("HTTP/1.0" | "HTTP/1.1"))
        && path.is_some_and(|p| p.starts_with('/'))
        && method.is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()));
    if !well_formed {
        return response("400 Bad Request", "text/plain", "bad request\n");
    }
    if method != Some("GET") {
        return response("405 Method Not Allowed", "text/plain", "GET only\n");
    }
    if path != Some("/") {
        return response("404 Not Found", "text/plain", "not found\n");
    }
    let stats = net.stats();
    let mut body = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        body,
        "{{\"agent\":\"echo\",\"mac\":\"{}\",\"ip\":{},\"gateway\":{},\"uptime_ms\":{},\
         \"rx_frames\":{},\"tx_frames\":{},\"rx_bytes\":{},\"tx_bytes\":{},\
         \"rx_offload\":{},\"rx_large\":{},\"rx_bad_checksum\":{},\"connections\":{open},\"accepted\":{},\"udp_echoed\":{}}}",
        Mac(net.mac()),
        Quoted(net.address()),
        Quoted(net.gateway()),
        now.saturating_sub(counters.started_ns) / 1_000_000,
        stats.rx_frames,
        stats.tx_frames,
        stats.rx_bytes,
        stats.tx_bytes,
        stats.rx_offload,
        stats.rx_large,
        stats.rx_bad_checksum,
        counters.accepted,
        counters.udp_echoed,
    );
    response("200 OK", "application/json", &body)
}

fn response(status: &str, content_type: &str, body: &str) -> String {
    let mut r = String::new();
    let _ = write!(
        r,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    r
}

/// A MAC as `02:00:00:00:00:2a`.
struct Mac([u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A value as a JSON string, or `null`.
struct Quoted<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Quoted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => write!(f, "\"{v}\""),
            None => f.write_str("null"),
        }
    }
}

/// Printable ASCII per line of chargen's stream.
const LINE: usize = 72;
/// RFC 864's stream: 95 lines of 72 characters, each line starting one character further
/// along the 95 printable ones, then it repeats.
const CHARGEN: [u8; 95 * (LINE + 2)] = {
    let mut out = [0u8; 95 * (LINE + 2)];
    let mut line = 0;
    while line < 95 {
        let mut i = 0;
        while i < LINE {
            out[line * (LINE + 2) + i] = b' ' + ((line + i) % 95) as u8;
            i += 1;
        }
        out[line * (LINE + 2) + LINE] = b'\r';
        out[line * (LINE + 2) + LINE + 1] = b'\n';
        line += 1;
    }
    out
};
