//! Request heads: `httparse` tokenizes, this module applies the limits and the semantics
//! (target forms, Host, framing, keep-alive) and decides the status of every refusal.

use alloc::string::String;
use alloc::vec::Vec;

use crate::{HttpError, Limits};

/// Most header fields ever parsed, whatever [`Limits::max_headers`] says: the slots live
/// on the stack (32 bytes each).
pub const MAX_HEADERS_CAP: usize = 64;

/// The protocol versions spoken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// A complete, valid request head. The body, if any, comes separately.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    method: String,
    path: String,
    query: Option<String>,
    version: Version,
    host: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    content_length: Option<usize>,
    keep_alive: bool,
    expect_continue: bool,
}

impl Request {
    /// The method, case-sensitive as sent (`get` is not `GET`).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The target's path, without the query: raw, neither percent-decoded nor with dot
    /// segments removed, so routes must match it exactly. Always starts with `/`, except
    /// `*` (OPTIONS only). For an absolute-form target (`http://h/p`) it is the path part.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Everything after the first `?` of the target, if there was one.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The `Host` field, or the authority of an absolute-form target (which overrides it).
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The first header field called `name` (case-insensitive), value as sent.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// All header fields in order, names as sent.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// The body length, if the request declared one (at most [`Limits::max_body_bytes`]).
    pub fn content_length(&self) -> Option<usize> {
        self.content_length
    }

    /// Whether the connection stays open after the response: HTTP/1.1 unless
    /// `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// HTTP/1.1 `Expect: 100-continue` with a body to come.
    pub fn expect_continue(&self) -> bool {
        self.expect_continue
    }

    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// Whether the client asks to switch this connection to `protocol` (RFC 9110 §7.8):
    /// a `Connection` field lists the `upgrade` token and an `Upgrade` field lists
    /// `protocol`, either as the whole token or as the name before a `/version`. Lists
    /// are comma-separated, case-insensitive, and may span several fields. HTTP/1.0
    /// requests never upgrade: servers must ignore their `Upgrade`, which an old proxy
    /// may have passed on without understanding it.
    ///
    /// See [`Connection::switch_protocols`](crate::Connection::switch_protocols).
    pub fn wants_upgrade(&self, protocol: &str) -> bool {
        if self.version == Version::Http10 || protocol.is_empty() {
            return false;
        }
        let protocol = protocol.as_bytes();
        let lists = |name: &str, token: &dyn Fn(&[u8]) -> bool| {
            self.headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .any(|(_, v)| v.split(|b| *b == b',').map(<[u8]>::trim_ascii).any(token))
        };
        lists("connection", &|t| t.eq_ignore_ascii_case(b"upgrade"))
            && lists("upgrade", &|t| {
                let name = t.split(|b| *b == b'/').next().unwrap_or(t);
                t.eq_ignore_ascii_case(protocol) || name.eq_ignore_ascii_case(protocol)
            })
    }
}

/// The outcome of parsing the start of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Head {
    /// The head is not complete yet, and what there is is valid so far and within limits.
    Partial,
    /// A valid head and its length in bytes (the body, if any, follows).
    Complete { request: Request, len: usize },
}

/// Parses the request head at the start of `buf`.
///
/// Errors are decided on the bytes seen, never by waiting: a head over
/// [`Limits::max_head_bytes`] fails as soon as that many bytes are buffered, complete or
/// not. The result depends only on the bytes (feeding them in any pieces gives the same
/// answer), except that a request line with a version is read to its end before 400 and
/// 505 are told apart. Bare LF line ends are accepted, as `httparse` does.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Head, HttpError> {
    // httparse never looks past the limit, so the cost of a parse is bounded too.
    let over = buf.len() > limits.max_head_bytes;
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS_CAP];
    let n_slots = limits.max_headers.min(MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut slots[..n_slots]);
    let len = match req.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if over => return Err(HttpError::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(Head::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(httparse::Error::Version) => return version_error(window, over),
        // httparse reports an obs-fold line (leading SP/HT) as a bad header name.
        Err(httparse::Error::HeaderName | httparse::Error::HeaderValue) => {
            return Err(HttpError::BadHeader);
        }
        // Method or target: a byte outside their grammar (NUL, controls, SP).
        Err(httparse::Error::Token) => return Err(HttpError::BadRequestLine),
        Err(_) => return Err(HttpError::Malformed),
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HttpError::BadRequestLine);
    };
    let version = match minor {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return Err(HttpError::UnsupportedVersion),
    };
    let target = parse_target(method, target)?;
    let fields = &*req.headers;

    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut host: Option<&[u8]> = None;
    let mut hosts = 0usize;
    let (mut close, mut keep_alive_token) = (false, false);
    let mut expect_continue = false;
    for f in fields {
        let name = f.name;
        let value = f.value.trim_ascii();
        if name.eq_ignore_ascii_case("content-length") {
            let n = decimal(value).ok_or(HttpError::BadContentLength)?;
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpError::ConflictingContentLength);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            host = Some(value);
        } else if name.eq_ignore_ascii_case("connection") {
            close |= has_token(value, b"close");
            keep_alive_token |= has_token(value, b"keep-alive");
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    if transfer_encoding {
        return Err(if content_length.is_some() {
            HttpError::LengthAndTransferEncoding
        } else {
            HttpError::TransferEncoding
        });
    }
    if hosts > 1 {
        return Err(HttpError::BadHost);
    }
    if version == Version::Http11 && hosts == 0 {
        return Err(HttpError::MissingHost);
    }
    let host = match (target.authority, host) {
        (Some(a), _) => Some(String::from(a)),
        (None, Some(h)) => Some(String::from(
            core::str::from_utf8(h).map_err(|_| HttpError::BadHost)?,
        )),
        (None, None) => None,
    };
    let content_length = match content_length {
        None => None,
        Some(n) => match usize::try_from(n) {
            Ok(n) if n <= limits.max_body_bytes => Some(n),
            _ => return Err(HttpError::BodyTooLarge),
        },
    };
    let keep_alive = match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive_token && !close,
    };
    let headers = fields
        .iter()
        .map(|f| (String::from(f.name), f.value.to_vec()))
        .collect();
    Ok(Head::Complete {
        request: Request {
            method: String::from(method),
            path: String::from(target.path),
            query: target.query.map(String::from),
            version,
            host,
            headers,
            content_length,
            keep_alive,
            expect_continue: expect_continue
                && version == Version::Http11
                && content_length.is_some_and(|n| n > 0),
        },
        len,
    })
}

/// The parts of a request target.
struct Target<'a> {
    path: &'a str,
    query: Option<&'a str>,
    /// Host (and port) of an absolute-form target.
    authority: Option<&'a str>,
}

fn parse_target<'a>(method: &str, target: &'a str) -> Result<Target<'a>, HttpError> {
    // httparse already refuses controls, SP and DEL; non-ASCII it lets through as long as
    // it is UTF-8. A management API has no use for either, nor for fragments, which
    // clients never send.
    if target.bytes().any(|b| !b.is_ascii_graphic() || b == b'#') {
        return Err(HttpError::BadTarget);
    }
    if target == "*" {
        return if method == "OPTIONS" {
            Ok(Target {
                path: target,
                query: None,
                authority: None,
            })
        } else {
            Err(HttpError::BadTarget)
        };
    }
    let (authority, rest) = if target.starts_with('/') {
        (None, target)
    } else {
        // Absolute form, which servers must accept (RFC 9112 §3.2.2); its authority
        // replaces Host. Authority form (CONNECT host:port) is for proxies: refused.
        let scheme_end = target.find("://").ok_or(HttpError::BadTarget)?;
        let scheme = &target[..scheme_end];
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return Err(HttpError::BadTarget);
        }
        let after = &target[scheme_end + 3..];
        let end = after.find(['/', '?']).unwrap_or(after.len());
        let authority = &after[..end];
        if authority.is_empty() || authority.contains('@') {
            // No host, or userinfo (deprecated, and a classic confusion vector).
            return Err(HttpError::BadTarget);
        }
        (Some(authority), &after[end..])
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    // `http://h?q` has an empty path, which means `/`.
    let path = if path.is_empty() { "/" } else { path };
    Ok(Target {
        path,
        query,
        authority,
    })
}

/// A plain decimal number: one or more digits, no sign, no list; `None` on overflow.
fn decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Whether a comma-separated field value lists `token` (case-insensitive).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// httparse stops at the first version byte that is not `HTTP/1.0` or `HTTP/1.1`. A
/// version that is well formed but not ours is a 505; anything else in its place is a
/// 400. Telling them apart needs the rest of the line, so an unfinished line that could
/// still become a version waits (bounded by the head limit and the head timeout).
fn version_error(window: &[u8], over: bool) -> Result<Head, HttpError> {
    // httparse skips empty lines before the request line; so must this.
    let start = window
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .unwrap_or(window.len());
    let line = &window[start..];
    let (line, complete) = match line.iter().position(|b| *b == b'\n') {
        Some(end) => (&line[..end], true),
        None => (line, false),
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // httparse accepted `method SP target SP` before failing, so there are two spaces.
    let Some(version) = line.splitn(3, |b| *b == b' ').nth(2) else {
        return Err(HttpError::BadRequestLine);
    };
    match version_shape(version) {
        Shape::Version if complete => Err(HttpError::UnsupportedVersion),
        Shape::Version | Shape::Prefix if !complete => {
            if over {
                Err(HttpError::HeadTooLarge)
            } else {
                Ok(Head::Partial)
            }
        }
        _ => Err(HttpError::BadRequestLine),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Shape {
    /// `HTTP/` digits, optionally `.` digits.
    Version,
    /// Could still become one.
    Prefix,
    No,
}

fn version_shape(v: &[u8]) -> Shape {
    const NAME: &[u8] = b"HTTP/";
    if v.len() < NAME.len() {
        return if NAME.starts_with(v) {
            Shape::Prefix
        } else {
            Shape::No
        };
    }
    let Some(rest) = v.strip_prefix(NAME) else {
        return Shape::No;
    };
    let (major, minor) = match rest.iter().position(|b| *b == b'.') {
        Some(dot) => (&rest[..dot], Some(&rest[dot + 1..])),
        None => (rest, None),
    };
    let digits = |d: &[u8]| d.iter().all(u8::is_ascii_digit);
    if !digits(major) || !minor.is_none_or(digits) {
        return Shape::No;
    }
    if major.is_empty() || minor.is_some_and(|m| m.is_empty()) {
        return Shape::Prefix;
    }
    Shape::Version
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn version_shapes() {
        for (v, want) in [
            (&b""[..], Shape::Prefix),
            (b"HT", Shape::Prefix),
            (b"HTTP/", Shape::Prefix),
            (b"HTTP/2", Shape::Version),
            (b"HTTP/2.", Shape::Prefix),
            (b"HTTP/9.9", Shape::Version),
            (b"HTTP/1.1.1", Shape::No),
            (b"HTTP/x", Shape::No),
            (b"http/1.1", Shape::No),
            (b"HTTP/1.1 ", Shape::No),
        ] {
            assert_eq!(version_shape(v), want, "{v:?}");
        }
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal(b"0"), Some(0));
        assert_eq!(decimal(b"007"), Some(7));
        assert_eq!(decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal(b"18446744073709551616"), None);
        for bad in [&b""[..], b"-1", b"+1", b"1 2", b"1,1", b"0x10", b"1e3"] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }
}
