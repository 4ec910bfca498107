//! One client connection as a sans-I/O state machine: the caller moves bytes and passes
//! the time; this decides what is a request, what is an error, and when to give up, and
//! hands the stream back to the caller when a request switches protocols (101).

use alloc::vec::Vec;

use crate::response::switching_protocols;
use crate::{Head, HttpError, Limits, Request, Response, Version, parse_head};

/// The interim answer to `Expect: 100-continue`, so clients such as curl send the body
/// at once instead of after a second's wait.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// An emptied buffer keeping more capacity than this gives it back, so a connection that
/// once took a large body does not hold that memory while idle.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Bytes with a read position: taking from the front is O(1), and the space is reclaimed
/// when at least half is taken or room is needed.
#[derive(Debug, Default)]
struct Buffer {
    data: Vec<u8>,
    start: usize,
}

impl Buffer {
    fn bytes(&self) -> &[u8] {
        self.data.get(self.start..).unwrap_or_default()
    }

    fn len(&self) -> usize {
        self.data.len() - self.start
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.data.len() {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.start = 0;
        if self.data.capacity() > KEEP_CAPACITY {
            self.data = Vec::new();
        } else {
            self.data.clear();
        }
    }

    /// The underlying vector, compacted, for appending `extra` bytes; with `max`, the
    /// capacity never grows past `max` (or what is needed, if more).
    fn append(&mut self, extra: usize, max: Option<usize>) -> &mut Vec<u8> {
        let spare = self.data.capacity() - self.data.len();
        if self.start > 0 && (self.start >= self.data.len() / 2 || spare < extra) {
            self.data.drain(..self.start);
            self.start = 0;
        }
        let needed = self.data.len() + extra;
        if needed > self.data.capacity() {
            let mut target = needed.max(self.data.capacity().saturating_mul(2)).max(512);
            if let Some(max) = max {
                target = target.min(max).max(needed);
            }
            self.data.reserve_exact(target - self.data.len());
        }
        &mut self.data
    }
}

#[derive(Debug)]
enum State {
    /// Reading a request head; the input may be empty (idle) or hold part of one.
    Head,
    /// The head is parsed; waiting for `content_length` body bytes after it.
    Body {
        request: Request,
        head_len: usize,
        started: u64,
        continue_sent: bool,
    },
    /// A request was handed out; waiting for [`Connection::respond`] (or
    /// [`Connection::switch_protocols`]).
    InFlight {
        head_only: bool,
        keep_alive: bool,
        http10: bool,
    },
    /// Switched to another protocol: HTTP is over for good and the stream is the
    /// caller's, apart from the 101 head still in the output.
    Switched,
}

/// One client connection.
///
/// Drive it with, in any order and as often as convenient: [`receive`](Self::receive)
/// for bytes from the peer, [`next_request`](Self::next_request) /
/// [`respond`](Self::respond) until no request is left, [`poll`](Self::poll) for the
/// timeouts, [`outgoing`](Self::outgoing) / [`consume_outgoing`](Self::consume_outgoing)
/// to send, and [`should_close`](Self::should_close) to know when to close the socket.
///
/// ```
/// use plinth_http::{Connection, Limits, Response};
///
/// let mut c = Connection::new(Limits::default(), 0);
/// c.receive(5, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n");
/// while let Some(next) = c.next_request(5) {
///     match next {
///         Ok((request, _body)) => {
///             let response = match request.path() {
///                 "/api/v1/health" => Response::json(200, r#"{"status":"ok"}"#.into()),
///                 _ => Response::error(404, "no such resource"),
///             };
///             c.respond(response);
///         }
///         Err(_refused) => {} // already answered; the connection is closing
///     }
/// }
/// c.poll(5);
/// assert!(c.outgoing().starts_with(b"HTTP/1.1 200 OK\r\n"));
/// let sent = c.outgoing().len(); // what the socket took
/// c.consume_outgoing(sent);
/// assert!(!c.should_close()); // keep-alive
/// ```
///
/// Memory is bounded: at most [`Limits::max_input`] bytes of input, and no new request is
/// parsed while more than [`Limits::max_pending_output`] bytes wait to be sent, so output
/// is bounded by that plus the largest single response.
///
/// A request may instead switch the connection to another protocol
/// ([`switch_protocols`](Self::switch_protocols)): once the 101 head is sent, the caller
/// carries raw bytes on the socket itself and this only answers
/// [`is_switched`](Self::is_switched).
#[derive(Debug)]
pub struct Connection {
    limits: Limits,
    input: Buffer,
    output: Buffer,
    state: State,
    /// Nothing more is read: after an error, a timeout, or a response that closes.
    closing: bool,
    /// Latest time seen (never goes back).
    now: u64,
    /// Last time bytes moved or a response was written: the idle timeout's start.
    last_activity: u64,
    /// Last time the client got something done: a complete request, or output sent.
    last_progress: u64,
    /// When the head now being read started (meaningful in `State::Head` with input); for
    /// the first request, when the connection was created.
    head_started: u64,
    /// Whether a complete request head has arrived. Until then the head timer runs from
    /// the connection's creation, so a client that connects and stays silent holds a
    /// server slot for the header timeout, not the much longer idle timeout.
    head_seen: bool,
    /// Whether the connection was waiting on our side (a request in flight, or output
    /// over the limit) when last looked at: the head timer then restarts.
    waiting_on_us: bool,
    /// When the output last made progress (became non-empty, or was partly sent).
    output_since: u64,
    /// Input length at the last head parse that was partial: no new bytes, no new parse.
    parsed_len: usize,
}

impl Connection {
    pub fn new(limits: Limits, now_ms: u64) -> Connection {
        Connection {
            limits,
            input: Buffer::default(),
            output: Buffer::default(),
            state: State::Head,
            closing: false,
            now: now_ms,
            last_activity: now_ms,
            last_progress: now_ms,
            head_started: now_ms,
            head_seen: false,
            waiting_on_us: false,
            output_since: now_ms,
            parsed_len: 0,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Takes bytes from the peer and returns how many were taken; the rest should stay in
    /// the socket, so TCP flow control pushes back. Input is buffered up to
    /// [`Limits::max_input`]. Once the connection is closing everything is taken and
    /// discarded. Once it has [switched protocols](Self::switch_protocols) nothing is
    /// taken (0): the bytes belong to the new protocol and stay with the caller.
    pub fn receive(&mut self, now_ms: u64, data: &[u8]) -> usize {
        self.tick(now_ms);
        if self.is_switched() {
            return 0;
        }
        if self.closing {
            return data.len();
        }
        let max = self.limits.max_input();
        let n = data.len().min(max.saturating_sub(self.input.len()));
        if n == 0 {
            return 0;
        }
        // The first head's timer started with the connection.
        if self.input.is_empty() && self.head_seen && !matches!(self.state, State::Body { .. }) {
            self.head_started = self.now;
        }
        self.input
            .append(n, Some(max))
            .extend_from_slice(&data[..n]);
        self.last_activity = self.now;
        n
    }

    /// The next complete request and its body, in the order received; `None` when there
    /// is none yet (or the previous one is not answered yet: one at a time).
    ///
    /// `Some(Err(e))` means the request was refused: the error response is already queued
    /// and the connection is closing, so do not [`respond`](Self::respond); the error is
    /// returned to be counted or logged.
    pub fn next_request(&mut self, now_ms: u64) -> Option<Result<(Request, Vec<u8>), HttpError>> {
        self.tick(now_ms);
        if let Some(e) = self.check_timeouts() {
            return Some(Err(e));
        }
        if self.closing {
            return None;
        }
        if let State::Head = self.state {
            if self.input.is_empty()
                || self.input.len() == self.parsed_len
                || self.output.len() > self.limits.max_pending_output
            {
                return None;
            }
            match parse_head(self.input.bytes(), &self.limits) {
                Ok(Head::Partial) => {
                    self.parsed_len = self.input.len();
                    return None;
                }
                Err(e) => {
                    self.fail(e);
                    return Some(Err(e));
                }
                Ok(Head::Complete { request, len }) => {
                    self.parsed_len = 0;
                    self.head_seen = true;
                    self.state = State::Body {
                        request,
                        head_len: len,
                        started: self.now,
                        continue_sent: false,
                    };
                }
            }
        }
        let (head_len, total, send_continue) = match &mut self.state {
            State::Body {
                request,
                head_len,
                continue_sent,
                ..
            } => {
                let total = *head_len + request.content_length().unwrap_or(0);
                let send = self.input.len() < total && request.expect_continue() && !*continue_sent;
                *continue_sent |= send;
                (*head_len, total, send)
            }
            _ => return None,
        };
        if send_continue {
            self.write_output(CONTINUE);
        }
        if self.input.len() < total {
            return None;
        }
        let State::Body { request, .. } = core::mem::replace(&mut self.state, State::Head) else {
            return None;
        };
        let body = self.input.bytes()[head_len..total].to_vec();
        self.input.consume(total);
        self.state = State::InFlight {
            head_only: request.is_head(),
            keep_alive: request.keep_alive(),
            http10: request.version() == Version::Http10,
        };
        self.waiting_on_us = true;
        self.last_progress = self.now;
        Some(Ok((request, body)))
    }

    /// Answers the request last returned by [`next_request`](Self::next_request); ignored
    /// if there is none. HEAD requests get the headers only. The connection closes after
    /// the response if `response.close` or the request did not keep it alive.
    pub fn respond(&mut self, response: Response) {
        let State::InFlight {
            head_only,
            keep_alive,
            http10,
        } = self.state
        else {
            return;
        };
        self.state = State::Head;
        let close = response.close || !keep_alive;
        let start = self.output.len();
        let extra = response.body.len() + 256;
        let was_empty = self.output.is_empty();
        let out = self.output.append(extra, None);
        response.write_to(out, head_only, close, http10 && !close);
        if was_empty && self.output.len() > start {
            self.output_since = self.now;
        }
        self.last_activity = self.now;
        if close {
            self.stop_reading();
        }
    }

    /// Answers the request last returned by [`next_request`](Self::next_request) with
    /// `101 Switching Protocols` to `protocol` (`name` or `name/version`, e.g.
    /// `plinth-bench`) and ends HTTP on this connection for good. Check
    /// [`Request::wants_upgrade`] first: the client must have asked for `protocol`.
    ///
    /// Returns the input already buffered after that request (pipelined behind it, so it
    /// is the new protocol's; the buffer is emptied). From then on no request is parsed,
    /// no timeout applies (the new protocol needs its own), [`receive`](Self::receive)
    /// takes nothing (0), and [`respond`](Self::respond) is ignored. Send
    /// [`outgoing`](Self::outgoing) (the 101 head, after any earlier pipelined answers)
    /// with [`consume_outgoing`](Self::consume_outgoing) before writing any bytes of the
    /// new protocol. [`should_close`](Self::should_close) stays false: the caller owns the
    /// stream and closes it when its protocol is done.
    ///
    /// `None`, and nothing changes, when no request is in flight, when it is HTTP/1.0
    /// (which must not upgrade nor hear a 1xx), or when `protocol` is not a token.
    pub fn switch_protocols(&mut self, protocol: &str) -> Option<Vec<u8>> {
        let State::InFlight { http10: false, .. } = self.state else {
            return None;
        };
        let head = switching_protocols(protocol)?;
        self.state = State::Switched;
        self.parsed_len = 0;
        self.write_output(&head);
        self.last_activity = self.now;
        let mut input = core::mem::take(&mut self.input);
        input.data.drain(..input.start);
        Some(input.data)
    }

    /// Whether the connection has [switched protocols](Self::switch_protocols): the
    /// stream is the caller's, once [`outgoing`](Self::outgoing) is sent.
    pub fn is_switched(&self) -> bool {
        matches!(self.state, State::Switched)
    }

    /// Applies the timeouts at `now_ms`: a head not complete within
    /// [`Limits::header_timeout_ms`] or a body not within [`Limits::body_timeout_ms`] is
    /// answered 408 and the connection closes; a connection idle for
    /// [`Limits::idle_timeout_ms`] closes silently, and so does one whose peer took none
    /// of our output for that long (its output is dropped). Returns the error when a 408
    /// was queued.
    ///
    /// The first request's head is timed from the connection's creation, not its first
    /// byte: a connection with no complete head within [`Limits::header_timeout_ms`] of
    /// [`new`](Self::new) closes, silently if not a byte arrived (a client that connected
    /// and said nothing is owed no answer), with a 408 if part of a head did. Later
    /// requests on a keep-alive connection get the idle timeout while none is under way.
    ///
    /// Nothing applies once the connection has
    /// [switched protocols](Self::switch_protocols).
    pub fn poll(&mut self, now_ms: u64) -> Option<HttpError> {
        self.tick(now_ms);
        self.check_timeouts()
    }

    /// Bytes waiting to be sent.
    pub fn outgoing(&self) -> &[u8] {
        self.output.bytes()
    }

    /// Drops the first `n` bytes of [`outgoing`](Self::outgoing), which were sent.
    pub fn consume_outgoing(&mut self, n: usize) {
        let n = n.min(self.output.len());
        if n > 0 {
            self.output.consume(n);
            self.output_since = self.now;
            self.last_activity = self.now;
            self.last_progress = self.now;
        }
    }

    /// The last time the client got something done: a complete request handed out, or
    /// output taken by the peer; the connection's creation before either. Bytes of an
    /// unfinished head or body do not count, so a client that trickles a head a byte at
    /// a time ages like one that sends nothing — what a server that must drop someone
    /// to take a new client ranks by (see [`crate::admission`]).
    pub fn last_progress_ms(&self) -> u64 {
        self.last_progress
    }

    /// Whether the server owes the client something: a request handed out and not yet
    /// answered, or output not yet sent; always after a protocol switch (the stream is
    /// the caller's).
    pub fn is_busy(&self) -> bool {
        matches!(self.state, State::InFlight { .. } | State::Switched) || !self.output.is_empty()
    }

    /// Whether the connection is finished: nothing more will be read and everything
    /// queued was sent (or dropped because the peer stopped reading). Close the socket.
    ///
    /// Never true after [`switch_protocols`](Self::switch_protocols), whether or not the
    /// 101 head was sent: the socket then belongs to the new protocol, and closing it is
    /// the caller's decision. Check [`is_switched`](Self::is_switched) first.
    pub fn should_close(&self) -> bool {
        self.closing && self.output.is_empty()
    }

    /// Whether nothing more is read (the connection ends once the output is sent).
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Bytes buffered, input plus output.
    pub fn buffered(&self) -> usize {
        self.input.len() + self.output.len()
    }

    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn capacities(&self) -> (usize, usize) {
        (self.input.data.capacity(), self.output.data.capacity())
    }

    fn tick(&mut self, now_ms: u64) {
        self.now = self.now.max(now_ms);
        // Time spent on our side (a response being computed, output the peer has not
        // taken while we hold back) is not the client's: the head timer of a pipelined
        // request starts once the connection is ready to read it.
        if self.waiting_on_us {
            self.head_started = self.now;
        }
        self.waiting_on_us = matches!(self.state, State::InFlight { .. })
            || self.output.len() > self.limits.max_pending_output;
    }

    fn check_timeouts(&mut self) -> Option<HttpError> {
        let now = self.now;
        let l = self.limits;
        if self.is_switched() {
            // Not HTTP any more: the new protocol decides when its peer is too slow.
            return None;
        }
        if !self.output.is_empty() && now.saturating_sub(self.output_since) > l.idle_timeout_ms {
            // The peer has stopped reading: nothing queued will ever arrive.
            self.output.clear();
            self.stop_reading();
            return None;
        }
        if self.closing {
            return None;
        }
        let error = match self.state {
            State::InFlight { .. } | State::Switched => None,
            State::Body { started, .. } => {
                (now.saturating_sub(started) > l.body_timeout_ms).then_some(HttpError::BodyTimeout)
            }
            State::Head if !self.input.is_empty() => {
                let waiting = self.waiting_on_us;
                (!waiting && now.saturating_sub(self.head_started) > l.header_timeout_ms)
                    .then_some(HttpError::HeadTimeout)
            }
            State::Head => {
                // Nothing buffered: before the first request a silent client (no 408:
                // it sent nothing to answer), after it an idle keep-alive connection.
                let silent =
                    !self.head_seen && now.saturating_sub(self.head_started) > l.header_timeout_ms;
                let idle = self.output.is_empty()
                    && now.saturating_sub(self.last_activity) > l.idle_timeout_ms;
                if silent || idle {
                    self.stop_reading();
                }
                None
            }
        };
        if let Some(e) = error {
            self.fail(e);
        }
        error
    }

    /// Refuses the request being read: queues its error response and closes.
    fn fail(&mut self, e: HttpError) {
        self.stop_reading();
        let was_empty = self.output.is_empty();
        let out = self.output.append(256, None);
        Response::from_error(e).write_to(out, false, true, false);
        if was_empty {
            self.output_since = self.now;
        }
    }

    fn stop_reading(&mut self) {
        self.closing = true;
        self.state = State::Head;
        self.input.clear();
        self.parsed_len = 0;
    }

    fn write_output(&mut self, bytes: &[u8]) {
        if self.output.is_empty() {
            self.output_since = self.now;
        }
        self.output
            .append(bytes.len(), None)
            .extend_from_slice(bytes);
    }
}
