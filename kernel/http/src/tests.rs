//! Parser and connection tests: hostile inputs first, then keep-alive, pipelining,
//! timeouts, back-pressure, and the split-anywhere property.

extern crate std;

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use plinth_testrng::Rng;

use super::*;

const GET: &[u8] = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n";

fn parse(input: &[u8]) -> Result<Head, HttpError> {
    parse_head(input, &Limits::default())
}

fn parsed(input: &[u8]) -> (Request, usize) {
    match parse(input) {
        Ok(Head::Complete { request, len }) => (request, len),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
    }
}

/// What a connection did with some input.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// Method, path, query and body of every request handed out, in order.
    requests: Vec<(String, String, Option<String>, Vec<u8>)>,
    errors: Vec<HttpError>,
    /// All output, as text.
    output: String,
    closing: bool,
}

impl Outcome {
    /// Status of each response, in order (bodies here never contain "HTTP/1.1 ").
    fn statuses(&self) -> Vec<u16> {
        self.output
            .split("HTTP/1.1 ")
            .skip(1)
            .filter_map(|s| s.get(..3)?.parse().ok())
            .collect()
    }

    fn paths(&self) -> Vec<&str> {
        self.requests.iter().map(|r| r.1.as_str()).collect()
    }
}

/// Answers with 200 and the path as body (HEAD: no body).
fn route(r: &Request) -> Response {
    Response::text(200, "text/plain", r.path().to_owned())
}

/// Feeds `pieces` at time 0, serving every request and sending all output as it comes.
fn feed(limits: Limits, pieces: &[&[u8]]) -> Outcome {
    let mut c = Connection::new(limits, 0);
    let mut o = Outcome {
        requests: Vec::new(),
        errors: Vec::new(),
        output: String::new(),
        closing: false,
    };
    let mut out = Vec::new();
    let mut serve = |c: &mut Connection, o: &mut Outcome| -> bool {
        let mut served = false;
        loop {
            let mut any = false;
            while let Some(next) = c.next_request(0) {
                any = true;
                match next {
                    Ok((r, body)) => {
                        c.respond(route(&r));
                        o.requests.push((
                            r.method().to_owned(),
                            r.path().to_owned(),
                            r.query().map(str::to_owned),
                            body,
                        ));
                    }
                    Err(e) => o.errors.push(e),
                }
            }
            out.extend_from_slice(c.outgoing());
            let n = c.outgoing().len();
            c.consume_outgoing(n);
            if !any {
                return served;
            }
            served = true;
        }
    };
    for piece in pieces {
        let mut rest = *piece;
        while !rest.is_empty() {
            let n = c.receive(0, rest);
            rest = &rest[n..];
            let served = serve(&mut c, &mut o);
            assert!(n > 0 || served, "stuck with a full input buffer");
        }
    }
    serve(&mut c, &mut o);
    o.output = String::from_utf8_lossy(&out).into_owned();
    o.closing = c.is_closing();
    o
}

fn whole(input: &[u8]) -> Outcome {
    feed(Limits::default(), &[input])
}

/// Every hostile case: the status it must get, no request handed out, and the
/// connection closing after the answer.
#[test]
fn hostile_requests_get_their_status_and_close() {
    use HttpError::*;
    let l = Limits::default();
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let too_many = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..l.max_headers)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect::<String>()
    );
    let huge_value = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "v".repeat(9000)
    );
    let blank_lines = "\r\n".repeat(5000);
    let cases: Vec<(&str, Vec<u8>, u16, HttpError)> = vec![
        ("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), 400, BadRequestLine),
        ("binary garbage", b"\x00\xff\xfe\x01garbage".to_vec(), 400, BadRequestLine),
        ("no version", b"GET /x\r\n\r\n".to_vec(), 400, BadRequestLine),
        ("only a method", b"GET\r\n\r\n".to_vec(), 400, BadRequestLine),
        ("bad version", b"GET /x HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), 505, UnsupportedVersion),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), 505, UnsupportedVersion),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n".to_vec(), 505, UnsupportedVersion),
        ("lowercase version", b"GET / http/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadRequestLine),
        ("version with junk", b"GET / HTTP/1.1x\r\nHost: x\r\n\r\n".to_vec(), 400, Malformed),
        ("version not a number", b"GET / HTTP/x.y\r\nHost: x\r\n\r\n".to_vec(), 400, BadRequestLine),
        ("trailing field in line", b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n".to_vec(), 400, Malformed),
        ("double space", b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadRequestLine),
        ("missing target", b"GET  HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadRequestLine),
        ("huge request line", long_line.into_bytes(), 431, HeadTooLarge),
        ("too many headers", too_many.into_bytes(), 431, TooManyHeaders),
        ("huge header value", huge_value.into_bytes(), 431, HeadTooLarge),
        ("endless method", vec![b'A'; 20_000], 431, HeadTooLarge),
        ("endless blank lines", blank_lines.into_bytes(), 431, HeadTooLarge),
        ("header without colon", b"GET / HTTP/1.1\r\nHost: x\r\nBroken\r\n\r\n".to_vec(), 400, BadHeader),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : x\r\n\r\n".to_vec(), 400, BadHeader),
        ("empty header name", b"GET / HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n".to_vec(), 400, BadHeader),
        ("NUL in target", b"GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadRequestLine),
        ("control in target", b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadRequestLine),
        ("DEL in target", b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadRequestLine),
        ("tab in target", b"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadRequestLine),
        ("NUL in header value", b"GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n".to_vec(), 400, BadHeader),
        ("control in header value", b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n".to_vec(), 400, BadHeader),
        ("NUL in header name", b"GET / HTTP/1.1\r\nHost: x\r\nX\0: a\r\n\r\n".to_vec(), 400, BadHeader),
        ("lone CR", b"GET / HTTP/1.1\r\nHost: x\rY: z\r\n\r\n".to_vec(), 400, BadHeader),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n".to_vec(), 400, BadHeader),
        ("obs-fold with tab", b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n".to_vec(), 400, BadHeader),
        ("space before first header", b"GET / HTTP/1.1\r\n Host: x\r\n\r\n".to_vec(), 400, BadHeader),
        ("non-UTF-8 path", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadRequestLine),
        ("non-ASCII UTF-8 path", "GET /é HTTP/1.1\r\nHost: x\r\n\r\n".as_bytes().to_vec(), 400, BadTarget),
        ("fragment", b"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadTarget),
        ("authority form", b"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadTarget),
        ("relative target", b"GET a/b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadTarget),
        ("asterisk for GET", b"GET * HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadTarget),
        ("ftp scheme", b"GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadTarget),
        ("absolute form, no host", b"GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadTarget),
        ("absolute form, userinfo", b"GET http://u@x/a HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400, BadTarget),
        ("no Host in 1.1", b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400, MissingHost),
        ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n".to_vec(), 400, BadHost),
        ("non-UTF-8 Host", b"GET / HTTP/1.1\r\nHost: \xff\r\n\r\n".to_vec(), 400, BadHost),
        (
            "CL + TE",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400, LengthAndTransferEncoding,
        ),
        (
            "TE + CL",
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n".to_vec(),
            400, LengthAndTransferEncoding,
        ),
        ("chunked", b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 501, TransferEncoding),
        ("TE identity", b"POST / HTTP/1.1\r\nHost: x\r\ntransfer-encoding: identity\r\n\r\n".to_vec(), 501, TransferEncoding),
        (
            "differing CLs",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(),
            400, ConflictingContentLength,
        ),
        ("CL list", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\na".to_vec(), 400, BadContentLength),
        ("negative CL", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(), 400, BadContentLength),
        ("CL with sign", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nx".to_vec(), 400, BadContentLength),
        ("hex CL", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n".to_vec(), 400, BadContentLength),
        ("empty CL", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n".to_vec(), 400, BadContentLength),
        (
            "overflowing CL",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
            400, BadContentLength,
        ),
        (
            "u64::MAX + 1 CL",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n".to_vec(),
            400, BadContentLength,
        ),
        ("body over limit", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n".to_vec(), 413, BodyTooLarge),
        (
            "u64::MAX CL",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551615\r\n\r\n".to_vec(),
            413, BodyTooLarge,
        ),
    ];
    assert!(cases.len() >= 25);
    for (name, input, want, error) in &cases {
        let o = whole(input);
        assert_eq!(o.statuses(), [*want], "{name}: {}", o.output);
        assert!(
            o.requests.is_empty(),
            "{name}: a bad request was handed out"
        );
        assert_eq!(o.errors, [*error], "{name}");
        assert_eq!(error.status(), *want, "{name}");
        assert!(o.closing, "{name}: must close after an error");
        assert!(o.output.contains("Connection: close\r\n"), "{name}");
        // The same refusal byte by byte: errors never depend on how bytes arrive.
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let split = feed(Limits::default(), &bytes);
        assert_eq!(split.errors, o.errors, "{name}, byte by byte");
        assert_eq!(split.output, o.output, "{name}, byte by byte");
    }
}

#[test]
fn errors_map_to_statuses_and_json_bodies() {
    use HttpError::*;
    for (e, status) in [
        (BadRequestLine, 400),
        (BadTarget, 400),
        (BadHeader, 400),
        (Malformed, 400),
        (MissingHost, 400),
        (BadHost, 400),
        (BadContentLength, 400),
        (ConflictingContentLength, 400),
        (LengthAndTransferEncoding, 400),
        (TransferEncoding, 501),
        (TooManyHeaders, 431),
        (HeadTooLarge, 431),
        (BodyTooLarge, 413),
        (UnsupportedVersion, 505),
        (HeadTimeout, 408),
        (BodyTimeout, 408),
    ] {
        assert_eq!(e.status(), status, "{e:?}");
        let r = Response::from(e);
        assert!(r.close);
        let body = String::from_utf8(r.body).unwrap();
        assert_eq!(
            body,
            format!("{{\"error\":\"{}\",\"status\":{status}}}", e.message())
        );
    }
}

#[test]
fn head_limit_is_exact_and_not_waited_on() {
    let l = Limits::default();
    let head = |n: usize| {
        let base = "GET / HTTP/1.1\r\nHost: x\r\nX: \r\n\r\n".len();
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "v".repeat(n - base)
        )
    };
    let exact = head(l.max_head_bytes);
    assert_eq!(exact.len(), l.max_head_bytes);
    assert!(
        matches!(parse(exact.as_bytes()), Ok(Head::Complete { len, .. }) if len == exact.len())
    );
    let over = head(l.max_head_bytes + 1);
    assert_eq!(parse(over.as_bytes()), Err(HttpError::HeadTooLarge));
    // Incomplete, but already over: refused at once.
    let partial = &over.as_bytes()[..l.max_head_bytes + 1];
    assert_eq!(parse(partial), Err(HttpError::HeadTooLarge));
    assert_eq!(parse(&partial[..l.max_head_bytes]), Ok(Head::Partial));
}

#[test]
fn header_count_limit_is_exact() {
    let l = Limits::default();
    let with = |n: usize| {
        format!(
            "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
            (1..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>()
        )
    };
    let (r, _) = parsed(with(l.max_headers).as_bytes());
    assert_eq!(r.headers().count(), l.max_headers);
    assert_eq!(
        parse(with(l.max_headers + 1).as_bytes()),
        Err(HttpError::TooManyHeaders)
    );
    // Found before the head is complete.
    let partial = with(l.max_headers + 1);
    assert_eq!(
        parse(&partial.as_bytes()[..partial.len() - 2]),
        Err(HttpError::TooManyHeaders)
    );
}

#[test]
fn body_over_limit_is_refused_before_the_body_arrives() {
    let mut c = Connection::new(Limits::default(), 0);
    c.receive(
        0,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
    );
    assert_eq!(c.next_request(0), Some(Err(HttpError::BodyTooLarge)));
    assert!(
        String::from_utf8_lossy(c.outgoing()).starts_with("HTTP/1.1 413 Content Too Large\r\n")
    );
    // What the client sends next is read and dropped, so its socket does not fill up.
    assert_eq!(c.receive(0, &[b'x'; 5000]), 5000);
    assert_eq!(c.buffered(), c.outgoing().len());
}

#[test]
fn truncated_request_waits_then_times_out() {
    assert_eq!(parse(b"GET /api/v1/hea"), Ok(Head::Partial));
    assert_eq!(parse(b"GET /x HTTP/1.1\r\nHost: x\r\n"), Ok(Head::Partial));
    // A version that might still become HTTP/2.0 waits for the end of its line.
    assert_eq!(parse(b"GET /x HTTP/2"), Ok(Head::Partial));
    assert_eq!(parse(b"GET /x HTTP/2.0\r"), Ok(Head::Partial));
    assert_eq!(
        parse(b"GET /x HTTP/2.0\r\n"),
        Err(HttpError::UnsupportedVersion)
    );
    assert_eq!(parse(b"GET /x HTTP/2.0 "), Err(HttpError::BadRequestLine));
    assert_eq!(parse(b"GET /x FTP"), Err(HttpError::BadRequestLine));
    let l = Limits::default();
    let mut c = Connection::new(l, 0);
    c.receive(0, b"GET /api/v1/hea");
    assert_eq!(c.next_request(1), None);
    assert_eq!(c.poll(l.header_timeout_ms), None);
    assert_eq!(
        c.poll(l.header_timeout_ms + 1),
        Some(HttpError::HeadTimeout)
    );
    assert!(String::from_utf8_lossy(c.outgoing()).starts_with("HTTP/1.1 408 Request Timeout\r\n"));
}

#[test]
fn accepted_forms() {
    let (r, len) =
        parsed(b"GET /api/v1/status?verbose=1&x=?y HTTP/1.1\r\nHost: h:8080\r\n\r\nrest");
    assert_eq!(len, 60);
    assert_eq!(
        (r.method(), r.path(), r.query()),
        ("GET", "/api/v1/status", Some("verbose=1&x=?y"))
    );
    assert_eq!(
        (r.version(), r.host(), r.keep_alive()),
        (Version::Http11, Some("h:8080"), true)
    );
    assert_eq!(r.content_length(), None);

    // Absolute form: the target's authority wins over Host.
    let (r, _) =
        parsed(b"GET HTTP://10.0.2.15:8080/api/v1/health?a HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(
        (r.path(), r.query(), r.host()),
        ("/api/v1/health", Some("a"), Some("10.0.2.15:8080"))
    );
    let (r, _) = parsed(b"GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!((r.path(), r.query()), ("/", Some("q")));
    let (r, _) = parsed(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.path(), "*");

    // Bare LF line ends, as httparse accepts them; empty lines before the request.
    let lf = b"\r\n\nGET /lf HTTP/1.1\nHost: x\n\nbody";
    let (r, len) = parsed(lf);
    assert_eq!((r.path(), len), ("/lf", lf.len() - 4));
    // HTTP/1.0 needs no Host; methods are tokens, case kept (the router says 405).
    let (r, _) = parsed(b"get /x HTTP/1.0\r\n\r\n");
    assert_eq!(
        (r.method(), r.version(), r.host()),
        ("get", Version::Http10, None)
    );
    // Empty Host is allowed (RFC 9112 §3.2); agreeing Content-Lengths too.
    let (r, _) =
        parsed(b"PUT /x HTTP/1.1\r\nHost:\r\nContent-Length: 2\r\ncontent-length:  02 \r\n\r\n");
    assert_eq!((r.host(), r.content_length()), (Some(""), Some(2)));
    // Header names are case-insensitive; values keep obs-text.
    let (r, _) = parsed(b"GET / HTTP/1.1\r\nHOST: x\r\nX-Thing: a\xffb\r\n\r\n");
    assert_eq!(r.header("x-thing"), Some(&b"a\xffb"[..]));
    assert_eq!(r.header("host"), Some(&b"x"[..]));
    assert_eq!(r.header("nope"), None);
}

#[test]
fn keep_alive_rules() {
    let ka = |s: &[u8]| parsed(s).0.keep_alive();
    assert!(ka(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: x\r\nconnection: Keep-Alive, CLOSE\r\n\r\n"
    ));
    assert!(!ka(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nConnection: close\r\n\r\n"
    ));
    assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
    assert!(ka(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    assert!(!ka(
        b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
    ));
    assert!(ka(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n"
    ));
}

#[test]
fn http10_closes_by_default_and_keeps_alive_on_request() {
    let o = whole(b"GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
    assert_eq!(
        o.paths(),
        ["/a"],
        "nothing after a closing response is read"
    );
    assert!(o.closing && o.output.contains("Connection: close\r\n"));

    let o = whole(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
    assert_eq!(o.paths(), ["/a", "/b"]);
    assert_eq!(o.statuses(), [200, 200]);
    let first = o.output.split("HTTP/1.1 ").nth(1).unwrap();
    assert!(first.contains("Connection: keep-alive\r\n"), "{first}");
    assert!(o.closing);
}

#[test]
fn connection_close_is_answered_then_closes_once_sent() {
    let mut c = Connection::new(Limits::default(), 0);
    c.receive(
        0,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /more HTTP/1.1\r\n",
    );
    let (r, _) = c.next_request(0).unwrap().unwrap();
    assert!(!r.keep_alive());
    c.respond(Response::text(200, "text/plain", "x".into()));
    assert!(String::from_utf8_lossy(c.outgoing()).contains("Connection: close\r\n"));
    assert!(
        c.next_request(0).is_none(),
        "nothing after Connection: close"
    );
    assert!(!c.should_close(), "not before the answer is sent");
    let n = c.outgoing().len();
    c.consume_outgoing(n - 1);
    assert!(!c.should_close());
    c.consume_outgoing(1);
    assert!(c.should_close());
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let mut c = Connection::new(Limits::default(), 0);
    for i in 0..100u64 {
        let t = i * 1000;
        assert_eq!(c.receive(t, GET), GET.len());
        let (r, body) = c.next_request(t).unwrap().unwrap();
        assert_eq!(r.path(), "/api/v1/health");
        assert!(body.is_empty());
        c.respond(Response::json(200, "{\"status\":\"ok\"}".into()));
        let out = String::from_utf8_lossy(c.outgoing()).into_owned();
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nServer: plinth\r\nContent-Type: application/json\r\n\
             Content-Length: 15\r\n\r\n{\"status\":\"ok\"}"
        );
        let n = c.outgoing().len();
        c.consume_outgoing(n);
        c.poll(t + 999);
        assert!(!c.should_close() && !c.is_closing());
    }
}

#[test]
fn head_gets_headers_without_body() {
    let mut c = Connection::new(Limits::default(), 0);
    c.receive(
        0,
        b"HEAD /a?b=c HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let (r, _) = c.next_request(0).unwrap().unwrap();
    assert_eq!(
        (r.method(), r.path(), r.query()),
        ("HEAD", "/a", Some("b=c"))
    );
    assert!(r.is_head());
    c.respond(Response::text(200, "text/plain", "body".into()));
    let (r, _) = c.next_request(0).unwrap().unwrap();
    assert!(!r.is_head());
    c.respond(Response::text(200, "text/plain", "body".into()));
    let out = String::from_utf8_lossy(c.outgoing()).into_owned();
    assert_eq!(
        out,
        "HTTP/1.1 200 OK\r\nServer: plinth\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\n\
         HTTP/1.1 200 OK\r\nServer: plinth\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nbody"
    );
}

#[test]
fn responses_are_framed_and_headers_safe() {
    let mut out = Vec::new();
    Response::method_not_allowed("GET, HEAD").write_to(&mut out, false, false, false);
    let s = String::from_utf8(out).unwrap();
    assert!(
        s.starts_with("HTTP/1.1 405 Method Not Allowed\r\nServer: plinth\r\n"),
        "{s}"
    );
    assert!(s.contains("\r\nAllow: GET, HEAD\r\n"), "{s}");
    assert!(
        s.ends_with("\r\n\r\n{\"error\":\"method not allowed\",\"status\":405}"),
        "{s}"
    );

    for (status, line) in [
        (0, "500 Internal Server Error"),
        (100, "500 Internal"),
        (299, "299 \r\n"),
    ] {
        let mut out = Vec::new();
        Response::new(status).write_to(&mut out, false, true, false);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with(&format!("HTTP/1.1 {line}")), "{s}");
        assert!(
            s.contains("Content-Length: 0\r\nConnection: close\r\n\r\n"),
            "{s}"
        );
    }
    let mut out = Vec::new();
    Response::text(204, "text/plain", "dropped".into()).write_to(&mut out, false, false, false);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "HTTP/1.1 204 No Content\r\nServer: plinth\r\n\r\n"
    );
    let mut out = Vec::new();
    let mut r = Response::text(200, "text/plain\r\nX-Evil: 1", "a".into());
    r.allow = Some("GET\r\nX-Evil: 2");
    r.write_to(&mut out, false, false, false);
    assert!(!String::from_utf8(out).unwrap().contains("X-Evil"));
    let busy = String::from_utf8(Response::error(503, "busy").encode(false, true)).unwrap();
    assert_eq!(
        busy,
        "HTTP/1.1 503 Service Unavailable\r\nServer: plinth\r\nContent-Type: application/json\r\n\
         Content-Length: 29\r\nConnection: close\r\n\r\n{\"error\":\"busy\",\"status\":503}"
    );
    for s in [200, 400, 404, 405, 408, 411, 413, 431, 500, 501, 503, 505] {
        assert!(!reason(s).is_empty(), "{s}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order_and_garbage_ends_the_connection() {
    let mut input = Vec::new();
    input.extend_from_slice(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
    input.extend_from_slice(b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
    input.extend_from_slice(b"HEAD /three HTTP/1.1\r\nHost: x\r\n\r\n");
    input.extend_from_slice(b"\x01\x02 nonsense\r\n\r\n");
    input.extend_from_slice(b"GET /never HTTP/1.1\r\nHost: x\r\n\r\n");
    let o = whole(&input);
    assert_eq!(o.paths(), ["/one", "/two", "/three"]);
    assert_eq!(o.requests[1].3, b"abc");
    assert_eq!(o.statuses(), [200, 200, 200, 400]);
    assert_eq!(o.errors, [HttpError::BadRequestLine]);
    assert!(o.closing);
}

#[test]
fn smuggling_attempts_do_not_yield_a_second_request() {
    // A proxy honouring TE would see one request, one honouring CL two; we see neither.
    let o = whole(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n\
          0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(o.requests.is_empty());
    assert_eq!(o.statuses(), [400]);
    // Differing lengths: which one a proxy used is unknowable.
    let o = whole(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 35\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(o.requests.is_empty());
    // A body is a body, even when it looks like a request.
    let o = whole(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 32\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(o.paths(), ["/a"]);
    assert_eq!(o.requests[0].3, b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n");
}

#[test]
fn expect_continue_gets_an_interim_response_when_the_body_is_missing() {
    let mut c = Connection::new(Limits::default(), 0);
    c.receive(
        0,
        b"PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    );
    assert!(c.next_request(0).is_none());
    assert_eq!(c.outgoing(), b"HTTP/1.1 100 Continue\r\n\r\n");
    assert!(c.next_request(0).is_none());
    assert_eq!(c.outgoing().len(), 25, "sent once");
    c.receive(0, b"abc");
    let (r, body) = c.next_request(0).unwrap().unwrap();
    assert_eq!((r.path(), body.as_slice()), ("/x", &b"abc"[..]));
    // Too large: refused instead of continued.
    let mut c = Connection::new(Limits::default(), 0);
    c.receive(
        0,
        b"PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 999999\r\n\r\n",
    );
    assert_eq!(c.next_request(0), Some(Err(HttpError::BodyTooLarge)));
    assert!(String::from_utf8_lossy(c.outgoing()).starts_with("HTTP/1.1 413 "));
}

#[test]
fn slowloris_head_times_out_even_while_trickling() {
    let l = Limits::default();
    // Connected when the trickle starts (the first head is timed from the connection).
    let mut c = Connection::new(l, 1000);
    // One byte every 100 ms: always active, never complete.
    let trickle = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut t = 1000;
    for b in trickle.iter() {
        c.receive(t, core::slice::from_ref(b));
        match c.next_request(t) {
            None => {}
            Some(Err(HttpError::HeadTimeout)) => break,
            other => panic!("{other:?}"),
        }
        assert_eq!(c.poll(t), None);
        t += 100;
    }
    assert!(c.is_closing(), "still open at {t} ms");
    assert!(
        t > 1000 + l.header_timeout_ms && t <= 1000 + l.header_timeout_ms + 100,
        "{t}"
    );
    assert!(String::from_utf8_lossy(c.outgoing()).starts_with("HTTP/1.1 408 "));
    assert_eq!(c.receive(t, b"more"), 4, "dropped once closing");
    let n = c.outgoing().len();
    c.consume_outgoing(n);
    assert!(c.should_close());
}

#[test]
fn slow_body_times_out_with_408() {
    let l = Limits::default();
    let mut c = Connection::new(l, 0);
    c.receive(
        0,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
    );
    assert!(c.next_request(100).is_none());
    // The body has its own, longer, timeout, counted from the end of the head.
    c.receive(l.header_timeout_ms + 50, b"d");
    assert_eq!(c.poll(l.header_timeout_ms + 100), None);
    assert_eq!(c.poll(100 + l.body_timeout_ms), None);
    assert_eq!(
        c.poll(101 + l.body_timeout_ms),
        Some(HttpError::BodyTimeout)
    );
    assert!(String::from_utf8_lossy(c.outgoing()).starts_with("HTTP/1.1 408 "));
    // A late body is not served.
    c.receive(102 + l.body_timeout_ms, b"efghij");
    assert!(c.next_request(102 + l.body_timeout_ms).is_none());
}

#[test]
fn a_head_completed_too_late_is_not_served() {
    let l = Limits::default();
    let mut c = Connection::new(l, 0);
    c.receive(0, b"GET / HTTP/1.1\r\n");
    c.receive(l.header_timeout_ms + 1, b"Host: x\r\n\r\n");
    assert_eq!(
        c.next_request(l.header_timeout_ms + 1),
        Some(Err(HttpError::HeadTimeout))
    );
}

#[test]
fn idle_keep_alive_connections_close_silently() {
    let l = Limits::default();
    let mut c = Connection::new(l, 0);
    let t = 10;
    c.receive(t, GET);
    let _ = c.next_request(t).unwrap().unwrap();
    c.respond(Response::text(200, "text/plain", "x".into()));
    let n = c.outgoing().len();
    c.consume_outgoing(n);
    c.poll(t + l.idle_timeout_ms);
    assert!(!c.should_close());
    c.poll(t + 1 + l.idle_timeout_ms);
    assert!(c.should_close());
    assert!(c.outgoing().is_empty(), "idle close sends nothing");
}

#[test]
fn a_silent_connection_closes_after_the_header_timeout_without_an_answer() {
    let l = Limits::default();
    let mut c = Connection::new(l, 5);
    assert_eq!(c.poll(5 + l.header_timeout_ms), None);
    assert!(c.next_request(5 + l.header_timeout_ms).is_none());
    assert!(!c.is_closing(), "not before the header timeout");
    assert_eq!(c.poll(6 + l.header_timeout_ms), None, "no 408");
    assert!(c.should_close());
    assert!(
        c.outgoing().is_empty(),
        "nothing to answer: closed silently"
    );
    // Noticed by next_request too, not only by poll.
    let mut c = Connection::new(l, 5);
    assert!(c.next_request(6 + l.header_timeout_ms).is_none());
    assert!(c.should_close() && c.outgoing().is_empty());
}

#[test]
fn the_first_head_is_timed_from_the_connection_not_its_first_byte() {
    let l = Limits::default();
    // Silent for most of the timeout, then part of a head: the 408 comes on time.
    let mut c = Connection::new(l, 0);
    c.receive(l.header_timeout_ms - 10, b"GET / HTTP/1.1\r\n");
    assert_eq!(c.poll(l.header_timeout_ms), None);
    assert_eq!(
        c.poll(l.header_timeout_ms + 1),
        Some(HttpError::HeadTimeout)
    );
    assert!(String::from_utf8_lossy(c.outgoing()).starts_with("HTTP/1.1 408 "));
    // A head completed just in time is served.
    let mut c = Connection::new(l, 0);
    c.receive(l.header_timeout_ms, GET);
    assert!(matches!(c.next_request(l.header_timeout_ms), Some(Ok(_))));
}

#[test]
fn after_a_request_a_silent_connection_waits_for_the_idle_timeout() {
    let l = Limits::default();
    let mut c = Connection::new(l, 0);
    c.receive(10, GET);
    let _ = c.next_request(10).unwrap().unwrap();
    c.respond(Response::new(200));
    let n = c.outgoing().len();
    c.consume_outgoing(n);
    c.poll(11 + l.header_timeout_ms);
    assert!(
        !c.is_closing(),
        "keep-alive is not held to the header timeout"
    );
    c.poll(10 + l.idle_timeout_ms);
    assert!(!c.is_closing());
    c.poll(11 + l.idle_timeout_ms);
    assert!(c.should_close() && c.outgoing().is_empty());
    // The next request's head is timed from its own first byte.
    let mut c = Connection::new(l, 0);
    c.receive(0, GET);
    let _ = c.next_request(0).unwrap().unwrap();
    c.respond(Response::new(200));
    let n = c.outgoing().len();
    c.consume_outgoing(n);
    let t = 2 * l.header_timeout_ms;
    c.receive(t, b"GET / HTTP/1.1\r\n");
    assert_eq!(c.poll(t + l.header_timeout_ms), None);
    assert_eq!(
        c.poll(t + l.header_timeout_ms + 1),
        Some(HttpError::HeadTimeout)
    );
}

#[test]
fn time_spent_answering_is_not_charged_to_the_next_pipelined_request() {
    let l = Limits::default();
    let mut c = Connection::new(l, 0);
    let mut two = GET.to_vec();
    two.extend_from_slice(GET);
    c.receive(0, &two);
    let _ = c.next_request(0).unwrap().unwrap();
    // The router takes longer than the head timeout (a slow disk, say).
    c.poll(3 * l.header_timeout_ms);
    c.respond(Response::new(200));
    let next = c.next_request(3 * l.header_timeout_ms + 10);
    assert!(matches!(next, Some(Ok(_))), "{next:?}");
}

#[test]
fn a_client_that_never_reads_cannot_grow_memory() {
    let l = Limits::default();
    let mut c = Connection::new(l, 0);
    let mut served = 0;
    for _ in 0..100_000 {
        let n = c.receive(0, GET);
        while let Some(Ok(_)) = c.next_request(0) {
            c.respond(Response::text(200, "text/plain", "y".repeat(1000)));
            served += 1;
        }
        if n == 0 {
            break;
        }
    }
    assert!(served > 200 && served < 300, "{served}");
    assert!(c.outgoing().len() <= l.max_pending_output + 1200);
    assert!(
        c.buffered() <= l.max_input() + l.max_pending_output + 1200,
        "{}",
        c.buffered()
    );
    // Pipelined requests waiting on the output are not timed out as slow heads...
    c.poll(l.header_timeout_ms * 2);
    assert!(!c.is_closing());
    // ...and once the client reads, they are served.
    let n = c.outgoing().len();
    c.consume_outgoing(n);
    assert!(matches!(
        c.next_request(l.header_timeout_ms * 2),
        Some(Ok(_))
    ));
    c.respond(Response::new(200));
    // A peer that stops reading altogether is dropped after the idle timeout.
    c.poll(l.header_timeout_ms * 2 + l.idle_timeout_ms + 1);
    assert!(c.should_close(), "{}", c.outgoing().len());
    assert_eq!(c.buffered(), 0);
}

#[test]
fn input_is_bounded_and_a_full_buffer_always_makes_progress() {
    let l = Limits::default();
    let mut c = Connection::new(l, 0);
    // A maximal request: head at the limit, body at the limit.
    let head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\nX: \r\n\r\n";
    let pad = "v".repeat(l.max_head_bytes - head.len());
    let head = head.replace("X: ", &format!("X: {pad}"));
    assert_eq!(head.len(), l.max_head_bytes);
    let mut stream = head.into_bytes();
    stream.extend(core::iter::repeat_n(b'b', l.max_body_bytes));
    stream.extend_from_slice(GET);
    let n = c.receive(0, &stream);
    assert_eq!(n, l.max_input());
    assert_eq!(c.receive(0, &stream[n..]), 0, "full");
    let (_, body) = c.next_request(0).unwrap().unwrap();
    assert_eq!(body.len(), l.max_body_bytes);
    c.respond(Response::new(200));
    assert_eq!(c.receive(0, &stream[n..]), stream.len() - n);
    assert!(matches!(c.next_request(0), Some(Ok(_))));
    assert!(c.capacities().0 <= l.max_input());
}

#[test]
fn respond_without_a_request_is_ignored() {
    let mut c = Connection::new(Limits::default(), 0);
    c.respond(Response::new(200));
    assert!(c.outgoing().is_empty());
    c.receive(0, b"\x00");
    assert!(matches!(c.next_request(0), Some(Err(_))));
    let before = c.outgoing().len();
    c.respond(Response::new(200));
    assert_eq!(
        c.outgoing().len(),
        before,
        "an error answer is not followed by another"
    );
}

const UPGRADE: &[u8] =
    b"POST /api/v1/bench/sink HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: plinth-bench\r\n\r\n";
const SWITCHED: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: plinth-bench\r\n\r\n";

#[test]
fn upgrade_hands_over_the_stream_with_the_bytes_pipelined_behind_it() {
    let l = Limits::default();
    let mut c = Connection::new(l, 0);
    // The client did not wait for the 101: raw bytes (which look like anything, even
    // HTTP) follow the request in the same segment.
    let raw = b"\x00\xffraw GET / HTTP/1.1\r\nHost: x\r\n\r\n\r\n";
    let mut input = UPGRADE.to_vec();
    input.extend_from_slice(raw);
    assert_eq!(c.receive(0, &input), input.len());
    let (r, body) = c.next_request(0).unwrap().unwrap();
    assert!(r.wants_upgrade("plinth-bench") && body.is_empty());
    assert!(!c.is_switched());
    assert_eq!(
        c.switch_protocols("plinth-bench").as_deref(),
        Some(&raw[..])
    );
    assert!(c.is_switched());
    assert_eq!(c.outgoing(), SWITCHED, "exactly the 101 head");
    assert_eq!(c.buffered(), SWITCHED.len(), "the input was handed over");
    assert!(!c.should_close() && !c.is_closing());
    // HTTP is over: nothing taken, parsed, answered or timed out, however long.
    assert_eq!(c.receive(1, GET), 0);
    assert!(c.next_request(1).is_none());
    c.respond(Response::new(200));
    assert_eq!(c.outgoing(), SWITCHED);
    for t in [l.header_timeout_ms + 1, l.idle_timeout_ms + 1, u64::MAX] {
        assert_eq!(c.poll(t), None);
        assert!(!c.is_closing(), "{t}");
        assert_eq!(c.outgoing(), SWITCHED, "no 408 at {t}");
    }
    // The 101 head goes out; the stream is the caller's and stays open.
    c.consume_outgoing(10);
    assert!(!c.should_close());
    c.consume_outgoing(SWITCHED.len());
    assert!(c.outgoing().is_empty() && !c.should_close() && c.is_switched());
    assert_eq!(c.receive(u64::MAX, raw), 0);
    assert!(c.next_request(u64::MAX).is_none());
    assert_eq!(c.poll(u64::MAX), None);
    assert!(!c.should_close() && c.buffered() == 0);
    assert!(c.switch_protocols("plinth-bench").is_none(), "only once");
    assert!(c.outgoing().is_empty());
}

#[test]
fn upgrade_after_a_body_and_after_pipelined_answers() {
    let mut c = Connection::new(Limits::default(), 0);
    let mut input = GET.to_vec();
    input.extend_from_slice(
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nconnection: keep-alive, UPGRADE\r\n\
          Upgrade: plinth-bench/1\r\n\r\nabc",
    );
    c.receive(0, &input);
    let (r, _) = c.next_request(0).unwrap().unwrap();
    assert!(!r.wants_upgrade("plinth-bench"));
    c.respond(Response::new(200));
    let answered = c.outgoing().len();
    let (r, body) = c.next_request(0).unwrap().unwrap();
    assert_eq!(
        body, b"abc",
        "the body is the request's, not the new protocol's"
    );
    assert!(r.wants_upgrade("plinth-bench"));
    assert_eq!(c.switch_protocols("plinth-bench/1"), Some(Vec::new()));
    // Earlier answers first, then the 101.
    assert_eq!(
        &c.outgoing()[answered..],
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: plinth-bench/1\r\n\r\n"
    );
    assert!(String::from_utf8_lossy(c.outgoing()).starts_with("HTTP/1.1 200 OK\r\n"));
}

#[test]
fn switch_protocols_needs_a_request_in_flight() {
    let l = Limits::default();
    let check_unchanged = |c: &mut Connection, what: &str, protocol: &str| {
        let out = c.outgoing().to_vec();
        let closing = c.is_closing();
        assert_eq!(c.switch_protocols(protocol), None, "{what}");
        assert!(!c.is_switched(), "{what}");
        assert_eq!(c.outgoing(), out, "{what}");
        assert_eq!(c.is_closing(), closing, "{what}");
    };
    let mut c = Connection::new(l, 0);
    check_unchanged(&mut c, "fresh", "plinth-bench");
    c.receive(
        0,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab",
    );
    assert!(c.next_request(0).is_none());
    check_unchanged(&mut c, "body still coming", "plinth-bench");
    c.receive(0, b"cde");
    let _ = c.next_request(0).unwrap().unwrap();
    c.respond(Response::new(200));
    check_unchanged(&mut c, "answered", "plinth-bench");
    assert_eq!(c.receive(0, GET), GET.len(), "still reading HTTP");
    c.receive(0, b"\x00");
    let _ = c.next_request(0).unwrap().unwrap();
    // A protocol that is not a token could split the header: refused, and the request
    // can still be answered normally.
    for bad in [
        "",
        "plinth bench",
        "x\r\nX-Evil: 1",
        "/1",
        "p/",
        "p/1/2",
        "é",
    ] {
        check_unchanged(&mut c, "not a token", bad);
    }
    c.respond(Response::new(200));
    assert!(matches!(c.next_request(0), Some(Err(_))));
    check_unchanged(&mut c, "after an error", "plinth-bench");
    // HTTP/1.0 neither upgrades nor may hear a 1xx.
    let mut c = Connection::new(l, 0);
    c.receive(
        0,
        b"GET / HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\nUpgrade: plinth-bench\r\n\r\n",
    );
    let (r, _) = c.next_request(0).unwrap().unwrap();
    assert!(!r.wants_upgrade("plinth-bench"));
    check_unchanged(&mut c, "HTTP/1.0", "plinth-bench");
}

#[test]
fn wants_upgrade_needs_both_fields() {
    let wants = |head: &str| {
        let input = format!("GET / HTTP/1.1\r\nHost: x\r\n{head}\r\n");
        parsed(input.as_bytes()).0.wants_upgrade("plinth-bench")
    };
    for yes in [
        "Connection: Upgrade\r\nUpgrade: plinth-bench\r\n",
        "connection: upgrade\r\nupgrade: PLINTH-BENCH\r\n",
        "Connection: keep-alive, Upgrade\r\nUpgrade: plinth-bench\r\n",
        "Connection: keep-alive,Upgrade \r\nUpgrade: h2c, plinth-bench\r\n",
        "Connection: keep-alive\r\nConnection: upgrade\r\nUpgrade: plinth-bench/2\r\n",
        "Upgrade: h2c\r\nUpgrade: plinth-bench\r\nConnection: Upgrade\r\n",
        "Connection: close, Upgrade\r\nUpgrade:plinth-bench\r\n",
    ] {
        assert!(wants(yes), "{yes:?}");
    }
    for no in [
        "",
        "Upgrade: plinth-bench\r\n",
        "Connection: keep-alive\r\nUpgrade: plinth-bench\r\n",
        "Connection: upgrades\r\nUpgrade: plinth-bench\r\n",
        "Connection: Upgrade\r\n",
        "Connection: Upgrade\r\nUpgrade: other\r\n",
        "Connection: Upgrade\r\nUpgrade: plinth-bench2\r\n",
        "Connection: Upgrade\r\nUpgrade: plinth\r\n",
        "Connection: Upgrade\r\nUpgrade: h2c/plinth-bench\r\n",
        "Connection: Upgrade\r\nUpgrade: plinth-bench h2c\r\n",
        "Connection: Upgrade\r\nX-Upgrade: plinth-bench\r\n",
    ] {
        assert!(!wants(no), "{no:?}");
    }
    let (r, _) = parsed(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: plinth-bench/1, h2c\r\n\r\n",
    );
    assert!(r.wants_upgrade("plinth-bench") && r.wants_upgrade("plinth-bench/1"));
    assert!(r.wants_upgrade("H2C") && !r.wants_upgrade("plinth-bench/2"));
    assert!(!r.wants_upgrade(""));
    let (r, _) = parsed(b"GET / HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: plinth-bench\r\n\r\n");
    assert!(!r.wants_upgrade("plinth-bench"), "HTTP/1.0 never upgrades");
}

/// A stream of valid requests of every kind: fed whole, in two pieces split at every
/// byte, and byte by byte, it must give the same requests and the same output.
#[test]
fn splitting_a_valid_stream_anywhere_gives_the_same_requests() {
    let mut input = Vec::new();
    input.extend_from_slice(b"\r\n");
    for i in 0..3 {
        input.extend_from_slice(
            format!(
                "POST /p{i}?q={i} HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
                5 + i
            )
            .as_bytes(),
        );
        input.extend_from_slice(&b"hello, world"[..5 + i]);
        input.extend_from_slice(GET);
    }
    input.extend_from_slice(b"HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n");
    input.extend_from_slice(b"GET /lf HTTP/1.1\nHost: h\nX: y\n\n");
    input.extend_from_slice(b"GET http://h/abs?z HTTP/1.1\r\nHost: h\r\n\r\n");
    input.extend_from_slice(
        b"PUT /empty HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    );
    input.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    let reference = whole(&input);
    assert_eq!(reference.requests.len(), 11);
    assert_eq!(reference.statuses(), [200; 11]);
    assert!(reference.errors.is_empty() && reference.closing);
    for at in 0..=input.len() {
        let (a, b) = input.split_at(at);
        assert_eq!(feed(Limits::default(), &[a, b]), reference, "split at {at}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(feed(Limits::default(), &bytes), reference, "byte by byte");
    for size in 2..64 {
        let pieces: Vec<&[u8]> = input.chunks(size).collect();
        assert_eq!(
            feed(Limits::default(), &pieces),
            reference,
            "pieces of {size}"
        );
    }
}

/// The same for a stream ending in garbage: the error comes at the same place.
#[test]
fn splitting_a_stream_with_garbage_anywhere_gives_the_same_outcome() {
    let mut input = Vec::new();
    input.extend_from_slice(GET);
    input.extend_from_slice(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok");
    input.extend_from_slice(b"GET /c HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    input.extend_from_slice(GET);
    let reference = whole(&input);
    assert_eq!(reference.statuses(), [200, 200, 400]);
    for at in 0..=input.len() {
        let (a, b) = input.split_at(at);
        assert_eq!(feed(Limits::default(), &[a, b]), reference, "split at {at}");
    }
}

/// The fuzz target's body over pseudo-random scripts, so `cargo test` exercises it.
#[test]
fn random_scripts_never_panic_and_stay_bounded() {
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut next = move || rng.next_u64();
    let pieces: [&[u8]; 17] = [
        GET,
        b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody",
        b"PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        b"\r\n",
        b"Content-Length: 99999\r\n",
        b"Content-Length: 20\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"\x00\xff",
        b"GET /x HTTP/1.0\r\n\r\n",
        b"Connection: close\r\n",
        b"HEAD /h HTTP/1.1\r\nHost: y\r\n",
        b"GET /x HTTP/2.0\r\n",
        b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
        b"GET /y HTTP/1.1\r\nHost: z\r\n\r\n",
        // The driver switches protocols on /up, not on /no (see `fuzzing::upgrades`).
        b"GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: plinth-bench\r\n\r\n",
        b"GET /no HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: plinth-bench\r\n\r\n",
        b"Connection: keep-alive, upgrade\r\nUpgrade: h2c, plinth-bench/1\r\n",
    ];
    for _ in 0..5000 {
        let mut data = vec![next() as u8];
        for _ in 0..(next() % 24) {
            let op = next() as u8;
            data.push(op);
            match op % 8 {
                0..=3 => {
                    let mut payload = Vec::new();
                    for _ in 0..(next() % 4) {
                        if next() % 4 == 0 {
                            payload.extend((0..next() % 16).map(|_| next() as u8));
                        } else {
                            payload.extend_from_slice(pieces[(next() % 17) as usize]);
                        }
                    }
                    payload.truncate(if op & 0x80 != 0 { 64 * 256 } else { 256 });
                    let len = if op & 0x80 != 0 {
                        payload.len().div_ceil(64)
                    } else {
                        payload.len()
                    };
                    data.push(len.saturating_sub(1) as u8);
                    data.extend_from_slice(&payload);
                }
                _ => data.push(next() as u8),
            }
        }
        fuzzing::connection(&data);
    }
}

#[test]
fn fuzz_driver_handles_degenerate_scripts() {
    fuzzing::connection(&[]);
    fuzzing::connection(&[1]);
    fuzzing::connection(&[0, 0]);
    fuzzing::connection(&[1, 0x80, 255]);
    fuzzing::connection(&[0; 4096]);
    fuzzing::connection(&[0xff; 4096]);
    let mut big = vec![0u8, 0x80, 255];
    big.extend(core::iter::repeat_n(b'a', 70_000));
    fuzzing::connection(&big);
}

#[test]
fn progress_counts_requests_and_sent_output_not_trickled_head_bytes() {
    let mut c = Connection::new(Limits::default(), 0);
    assert_eq!(c.last_progress_ms(), 0);
    assert!(!c.is_busy());
    // A head trickled a byte at a time is activity, not progress.
    for (i, b) in GET[..GET.len() - 1].iter().enumerate() {
        c.receive(10 + i as u64, core::slice::from_ref(b));
        assert!(c.next_request(10 + i as u64).is_none());
    }
    assert_eq!(
        c.last_progress_ms(),
        0,
        "partial head bytes are no progress"
    );
    assert!(!c.is_busy());
    // The last byte completes the request: progress, and the server owes an answer.
    c.receive(500, &GET[GET.len() - 1..]);
    assert!(matches!(c.next_request(500), Some(Ok(_))));
    assert_eq!(c.last_progress_ms(), 500);
    assert!(c.is_busy(), "a request in flight");
    c.respond(Response::json(200, "{}".to_owned()));
    assert!(c.is_busy(), "output not yet sent");
    assert_eq!(
        c.last_progress_ms(),
        500,
        "writing a response is our work, not theirs"
    );
    // The peer takes the response: progress again, and nothing is owed.
    c.poll(700);
    let n = c.outgoing().len();
    c.consume_outgoing(n);
    assert_eq!(c.last_progress_ms(), 700);
    assert!(!c.is_busy());
}
