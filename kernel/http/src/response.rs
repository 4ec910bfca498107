//! Responses and their serialisation, and the head of a protocol switch (101). Every
//! header value written comes from this crate, is a `&'static str` of the caller's, or is
//! a caller's protocol name checked to be a token; never from a request, so nothing a
//! client sends can inject a header.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::{HttpError, json};

/// A response to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// 200–599; anything else is sent as 500 (1xx are not final responses).
    pub status: u16,
    /// `Content-Type`; none is sent when empty.
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// `Allow` (405 answers): the methods the resource supports.
    pub allow: Option<&'static str>,
    /// Close the connection after this response (it also closes when the request did not
    /// ask to keep it open).
    pub close: bool,
}

impl Response {
    /// An empty response with no content type.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            content_type: "",
            body: Vec::new(),
            allow: None,
            close: false,
        }
    }

    /// `application/json`.
    pub fn json(status: u16, body: String) -> Response {
        Response::text(status, "application/json", body)
    }

    pub fn text(status: u16, content_type: &'static str, body: String) -> Response {
        Response::bytes(status, content_type, body.into_bytes())
    }

    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            body,
            allow: None,
            close: false,
        }
    }

    /// A JSON error: `{"error":message,"status":status}`.
    pub fn error(status: u16, message: &str) -> Response {
        let mut w = json::Writer::new();
        w.begin_object();
        w.key("error").string(message);
        w.key("status").u64(u64::from(status));
        w.end_object();
        Response::json(status, w.finish())
    }

    /// 405 with the `Allow` header, e.g. `"GET, HEAD"`.
    pub fn method_not_allowed(allow: &'static str) -> Response {
        let mut r = Response::error(405, "method not allowed");
        r.allow = Some(allow);
        r
    }

    /// The answer to a refused request; it always closes the connection.
    pub fn from_error(e: HttpError) -> Response {
        let mut r = Response::error(e.status(), e.message());
        r.close = true;
        r
    }

    /// The response as bytes, for answering outside a [`Connection`](crate::Connection),
    /// such as a 503 to a client over the connection limit. `head_only` leaves the body
    /// out (HEAD); `close` says `Connection: close`.
    pub fn encode(&self, head_only: bool, close: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 128);
        self.write_to(&mut out, head_only, close, false);
        out
    }

    /// Appends the response to `out`. `head_only` (HEAD requests) leaves the body out but
    /// keeps its `Content-Length`; `close` says `Connection: close`; `keep_alive_header`
    /// says `Connection: keep-alive` (HTTP/1.0 clients that asked for it need to hear it).
    pub(crate) fn write_to(
        &self,
        out: &mut Vec<u8>,
        head_only: bool,
        close: bool,
        keep_alive_header: bool,
    ) {
        let status = if (200..=599).contains(&self.status) {
            self.status
        } else {
            500
        };
        // 204 has no content, and must not say Content-Length (RFC 9110 §8.6).
        let no_content = status == 204;
        let mut w = VecWriter(out);
        let _ = write!(
            w,
            "HTTP/1.1 {status} {}\r\nServer: plinth\r\n",
            reason(status)
        );
        if !self.content_type.is_empty() && !no_content && header_safe(self.content_type) {
            let _ = write!(w, "Content-Type: {}\r\n", self.content_type);
        }
        if !no_content {
            let _ = write!(w, "Content-Length: {}\r\n", self.body.len());
        }
        if let Some(allow) = self.allow.filter(|a| header_safe(a)) {
            let _ = write!(w, "Allow: {allow}\r\n");
        }
        if close {
            let _ = w.write_str("Connection: close\r\n");
        } else if keep_alive_header {
            let _ = w.write_str("Connection: keep-alive\r\n");
        }
        let _ = w.write_str("\r\n");
        if !head_only && !no_content {
            out.extend_from_slice(&self.body);
        }
    }
}

impl From<HttpError> for Response {
    fn from(e: HttpError) -> Response {
        Response::from_error(e)
    }
}

/// The head of a 101 answer switching to `protocol`, with nothing that implies a body
/// (RFC 9110 §15.2.2); `None` if `protocol` is not `name` or `name/version` made of
/// tokens (RFC 9110 §7.8), which could split the header or confuse the client.
pub(crate) fn switching_protocols(protocol: &str) -> Option<Vec<u8>> {
    let (name, version) = match protocol.split_once('/') {
        Some((name, version)) => (name, Some(version)),
        None => (protocol, None),
    };
    if !is_token(name) || !version.is_none_or(is_token) {
        return None;
    }
    let mut out = Vec::with_capacity(80 + protocol.len());
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ");
    out.extend_from_slice(protocol.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    Some(out)
}

/// A token (RFC 9110 §5.6.2): one or more tchars.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A caller's static string with a CR or LF would split the header; it is left out.
fn header_safe(v: &str) -> bool {
    !v.bytes().any(|b| b == b'\r' || b == b'\n')
}

/// Reason phrase of a status; empty (which HTTP allows) for ones not listed.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}
