//! The fuzz driver, shared by the cargo-fuzz target `http_connection` and the unit tests
//! (feature `fuzzing`; not for the kernel).
//!
//! [`connection`] reads its input as a script: bytes to deliver in chunks, clock steps
//! (small and large, to reach every timeout), partial sends and polls, answering every
//! request as a router would, and switching protocols on most requests that ask to
//! upgrade to [`PROTOCOL`]. It asserts that nothing panics, that buffered memory stays
//! within the limits, that every request handed out is consistent, that a connection
//! which cannot make progress is never stuck, and that a switched one takes no more input,
//! parses nothing, times out never and is never to be closed. Then it feeds the same bytes
//! again, whole and then split where the script split them, at a fixed time, and asserts
//! both give the same requests, the same output and the same bytes handed to the new
//! protocol (exactly those after the upgrading request).

use alloc::string::String;
use alloc::vec::Vec;

use crate::{Connection, Limits, Request, Response};

/// Largest response body the driver answers with.
const MAX_RESPONSE_BODY: usize = 4096;
/// Response head and interim responses, generously.
const SLACK: usize = 1024;

/// The protocol the driver switches to.
pub const PROTOCOL: &str = "plinth-bench";

struct Script<'a>(&'a [u8]);

impl<'a> Script<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// Limits small enough that a short input reaches every one of them.
pub fn tiny_limits() -> Limits {
    Limits {
        max_head_bytes: 200,
        max_headers: 4,
        max_body_bytes: 300,
        header_timeout_ms: 50,
        body_timeout_ms: 80,
        idle_timeout_ms: 200,
        max_pending_output: 600,
    }
}

/// What the driver answers: decided by the request alone, so both runs of the split
/// check answer alike. Sizes vary, some answers close, some are 404/405.
pub fn answer(request: &Request, body: &[u8]) -> Response {
    let seed = seed(request, body);
    let mut r = match seed % 5 {
        0 => Response::error(404, "no such resource"),
        1 => Response::method_not_allowed("GET, HEAD"),
        _ => {
            let n = (seed / 5) % MAX_RESPONSE_BODY;
            let text: String = request.path().chars().cycle().take(n).collect();
            Response::text(200, "text/plain", text)
        }
    };
    r.close = seed.is_multiple_of(7);
    r
}

/// Whether the driver switches protocols on this request instead of answering it: most
/// of the time when the client asks for [`PROTOCOL`], so both paths are taken. Decided by
/// the request alone, like [`answer`].
pub fn upgrades(request: &Request, body: &[u8]) -> bool {
    request.wants_upgrade(PROTOCOL) && !seed(request, body).is_multiple_of(4)
}

fn seed(request: &Request, body: &[u8]) -> usize {
    request
        .path()
        .bytes()
        .chain(request.query().unwrap_or("").bytes())
        .fold(body.len(), |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        })
}

/// One fuzz case; see the module documentation. Returns how many requests the bytes
/// held (those handed out when fed whole), so a driver can tell inputs that reach the
/// router from those the parser refuses.
pub fn connection(data: &[u8]) -> usize {
    let mut script = Script(data);
    let limits = match script.byte() {
        Some(b) if b % 2 == 1 => tiny_limits(),
        _ => Limits::default(),
    };
    let mut c = Connection::new(limits, 0);
    let mut now = 0u64;
    let mut chunks: Vec<&[u8]> = Vec::new();
    while let Some(op) = script.byte() {
        match op % 8 {
            0..=3 => {
                let len = usize::from(script.byte().unwrap_or(0)) + 1;
                let len = if op & 0x80 != 0 { len * 64 } else { len };
                let chunk = script.take(len);
                chunks.push(chunk);
                let mut rest = chunk;
                while !rest.is_empty() {
                    if c.is_switched() {
                        // The bytes are the new protocol's: they stay with the caller.
                        assert_eq!(c.receive(now, rest), 0, "switched, yet input taken");
                        break;
                    }
                    let n = c.receive(now, rest);
                    rest = &rest[n..];
                    if !serve(&mut c, now) && n == 0 {
                        // Input full and nothing to serve: allowed only while unsent
                        // output holds parsing back (this client does not read). Once
                        // the output is sent, there must be progress.
                        assert!(
                            c.outgoing().len() > limits.max_pending_output,
                            "stuck with {} bytes buffered",
                            c.buffered()
                        );
                        let all = c.outgoing().len();
                        c.consume_outgoing(all);
                        assert!(serve(&mut c, now), "stuck after sending everything");
                    }
                    check(&c, &limits);
                }
            }
            4 | 5 => {
                let step = u64::from(script.byte().unwrap_or(0));
                now += match op >> 3 & 3 {
                    0 => step,
                    1 => step * 10,
                    2 => step * 100,
                    _ => step * 1000,
                };
                c.poll(now);
            }
            6 => {
                let n = usize::from(script.byte().unwrap_or(0)) * 97;
                c.consume_outgoing(n);
            }
            _ => {
                let all = c.outgoing().len();
                c.consume_outgoing(all);
            }
        }
        serve(&mut c, now);
        check(&c, &limits);
        if c.is_switched() {
            check_switched(&mut c, now);
        }
        if c.should_close() {
            assert!(c.next_request(now).is_none());
            assert_eq!(c.receive(now, b"GET / HTTP/1.1\r\n"), 16);
            break;
        }
    }
    if c.is_switched() {
        // Once the 101 head is sent the stream is the caller's, for good.
        let all = c.outgoing().len();
        c.consume_outgoing(all);
        check_switched(&mut c, u64::MAX);
        assert_eq!(c.buffered(), 0);
    }
    let whole: Vec<u8> = chunks.concat();
    let a = transcript(&limits, &[&whole]);
    let b = transcript(&limits, &chunks);
    if let Some(raw) = &a.3 {
        assert!(
            whole.ends_with(raw),
            "bytes handed over that were not sent last"
        );
    }
    assert_eq!(a, b, "feeding in pieces changed the outcome");
    a.0.len()
}

/// Answers every request ready (or switches protocols on it); whether any was.
fn serve(c: &mut Connection, now: u64) -> bool {
    let mut any = false;
    while let Some(next) = c.next_request(now) {
        any = true;
        if let Ok((request, body)) = next {
            check_request(&request, &body, c.limits());
            if upgrades(&request, &body) {
                let before = c.outgoing().len();
                let rest = c
                    .switch_protocols(PROTOCOL)
                    .expect("a request is in flight");
                assert!(rest.len() <= c.limits().max_input());
                assert!(c.is_switched());
                assert!(c.outgoing().len() > before, "no 101 queued");
                assert!(c.outgoing().ends_with(b"Upgrade: plinth-bench\r\n\r\n"));
                assert_eq!(c.buffered(), c.outgoing().len(), "input not handed over");
                check_switched(c, now);
            } else {
                c.respond(answer(&request, &body));
            }
        }
    }
    any
}

/// What a switched connection must do: nothing HTTP, whatever happens.
fn check_switched(c: &mut Connection, now: u64) {
    let out = c.outgoing().len();
    assert_eq!(c.receive(now, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert!(c.next_request(now).is_none());
    c.respond(Response::new(200));
    assert_eq!(c.poll(now), None);
    assert_eq!(
        c.poll(now.saturating_add(c.limits().idle_timeout_ms + 1)),
        None
    );
    assert_eq!(c.outgoing().len(), out, "output queued after the switch");
    assert!(c.switch_protocols(PROTOCOL).is_none());
    assert!(c.is_switched() && !c.is_closing() && !c.should_close());
}

fn check(c: &Connection, l: &Limits) {
    let (input_cap, output_cap) = c.capacities();
    let output_bound = l.max_pending_output + MAX_RESPONSE_BODY + SLACK;
    assert!(input_cap <= l.max_input(), "input capacity {input_cap}");
    assert!(
        c.outgoing().len() <= output_bound,
        "output {}",
        c.outgoing().len()
    );
    assert!(
        output_cap <= 2 * output_bound,
        "output capacity {output_cap}"
    );
    assert!(c.buffered() <= l.max_input() + output_bound);
}

fn check_request(r: &Request, body: &[u8], l: &Limits) {
    assert!(!r.method().is_empty());
    assert!(r.path().starts_with('/') || (r.path() == "*" && r.method() == "OPTIONS"));
    assert!(
        r.path()
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
    );
    assert_eq!(body.len(), r.content_length().unwrap_or(0));
    assert!(body.len() <= l.max_body_bytes);
}

/// The requests handed out, the output produced (interim 100 Continue left out: it is
/// only sent when the body is not already there), whether the connection is closing, and
/// the bytes for the new protocol if it switched (those it handed over, then those it did
/// not take) when `pieces` arrive at time 0 and the output is sent as soon as it is there.
fn transcript(limits: &Limits, pieces: &[&[u8]]) -> (Requests, Vec<u8>, bool, Option<Vec<u8>>) {
    let mut c = Connection::new(*limits, 0);
    let mut requests = Vec::new();
    let mut out = Vec::new();
    let mut raw = None;
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            if let Some(raw) = &mut raw {
                assert_eq!(c.receive(0, rest), 0);
                Vec::extend_from_slice(raw, rest);
                break;
            }
            let n = c.receive(0, rest);
            rest = &rest[n..];
            let served = serve_all(&mut c, &mut requests, &mut out, &mut raw);
            assert!(n > 0 || served, "stuck with a full input buffer");
        }
    }
    serve_all(&mut c, &mut requests, &mut out, &mut raw);
    let out = strip(&out, b"HTTP/1.1 100 Continue\r\n\r\n");
    (requests, out, c.is_closing(), raw)
}

type Requests = Vec<(String, String, Vec<u8>)>;

/// Sends all output and serves every request ready, until neither moves; whether any
/// request was served. A switch leaves the bytes it handed over in `raw`.
fn serve_all(
    c: &mut Connection,
    requests: &mut Requests,
    out: &mut Vec<u8>,
    raw: &mut Option<Vec<u8>>,
) -> bool {
    let mut any = false;
    loop {
        out.extend_from_slice(c.outgoing());
        let n = c.outgoing().len();
        c.consume_outgoing(n);
        let mut served = false;
        while let Some(next) = c.next_request(0) {
            served = true;
            if let Ok((request, body)) = next {
                if upgrades(&request, &body) {
                    *raw = c.switch_protocols(PROTOCOL);
                    assert!(raw.is_some(), "a request is in flight");
                } else {
                    c.respond(answer(&request, &body));
                }
                requests.push((
                    String::from(request.method()),
                    String::from(request.path()),
                    body,
                ));
            }
        }
        if !served {
            out.extend_from_slice(c.outgoing());
            let n = c.outgoing().len();
            c.consume_outgoing(n);
            return any;
        }
        any = true;
    }
}

fn strip(haystack: &[u8], needle: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}
