//! One management client: the glue between a TCP socket and its `plinth-http`
//! connection, and the benchmark streams a connection may switch to.
//!
//! Owns moving bytes and answering each complete request (through `routes`). It must not
//! parse HTTP itself (`plinth-http` does, and is fuzzed) nor decide which connection is
//! kept when the server is full (`Server` does).

use core::fmt::Write;

use plinth_http::{Connection, Limits, Request, Response};
use smoltcp::socket::tcp;

use super::Context;
use super::routes::route;
use crate::net::NicInfo;

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
    /// When the connection was first seen.
    pub opened_ms: u64,
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
            opened_ms: now_ms,
        }
    }

    /// The last time the client got something done: a complete request, or response or
    /// stream bytes moving. Bytes of an unfinished head do not count, so a client that
    /// trickles its head a byte at a time ages like one that sends nothing.
    pub fn last_progress_ms(&self) -> u64 {
        match &self.stream {
            Some(Stream::Sink { last_ms, .. } | Stream::Source { last_ms, .. }) => *last_ms,
            None => self.http.last_progress_ms(),
        }
    }

    /// Whether the server owes the client something: a request being answered, response
    /// bytes not yet sent, or a running stream.
    pub fn is_busy(&self) -> bool {
        self.stream.is_some() || self.http.is_busy()
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
