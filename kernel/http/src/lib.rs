//! The runtime's HTTP/1.1 server core, without I/O: bytes in, requests out, responses in,
//! bytes out, with the clock passed in by the caller as milliseconds.
//!
//! Owns what a management server must get right against hostile clients: request-head
//! parsing with size limits (on top of `httparse`, which hyper uses and fuzzes; this
//! crate adds the limits and the HTTP semantics), the mapping of every kind of bad
//! request to its status ([`HttpError::status`]), request framing (Content-Length only:
//! chunked request bodies are refused, and anything that could be read two ways — request
//! smuggling — is a 400), keep-alive and pipelining, timeouts for slow, idle and silent
//! clients ([`Connection::poll`]), bounded buffering in both directions, and handing the
//! stream over when a request switches protocols ([`Connection::switch_protocols`]),
//! and which connection gives way when a server's table is full ([`admission`]). Also
//! small writers for JSON ([`json`]) and the Prometheus text format ([`prometheus`]).
//!
//! It must not know routes, sockets, smoltcp or the kernel: the kernel's `mgmt` module
//! routes a [`Request`] to a [`Response`], smoltcp carries the bytes, and the kernel's
//! clock supplies `now`.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod connection;
mod request;
mod response;

pub mod admission;
pub mod json;
pub mod prometheus;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

#[cfg(test)]
mod tests;

pub use connection::Connection;
pub use request::{Head, MAX_HEADERS_CAP, Request, Version, parse_head};
pub use response::{Response, reason};

/// Size and time limits of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Request line plus headers (and any empty lines before the request line), in bytes.
    pub max_head_bytes: usize,
    /// Header fields per request; at most [`MAX_HEADERS_CAP`] are honoured.
    pub max_headers: usize,
    /// Largest accepted `Content-Length`.
    pub max_body_bytes: usize,
    /// A request head must be complete this long after its first byte arrived (or, for a
    /// pipelined request, after the connection was ready to read it): slowloris. The
    /// first request of a connection is timed from the connection's creation instead, so
    /// a client that connects and sends nothing is dropped after this long, silently,
    /// rather than holding a server slot for [`idle_timeout_ms`](Self::idle_timeout_ms).
    pub header_timeout_ms: u64,
    /// A request body must be complete this long after its head was.
    pub body_timeout_ms: u64,
    /// A keep-alive connection with no request in progress is closed silently after this
    /// long; so is one whose peer has not taken any of our output for this long.
    pub idle_timeout_ms: u64,
    /// Unsent response bytes above which no further request is parsed, so a client that
    /// pipelines requests but never reads cannot grow memory without bound.
    pub max_pending_output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 8192,
            max_headers: 32,
            max_body_bytes: 64 * 1024,
            header_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
            idle_timeout_ms: 30_000,
            max_pending_output: 256 * 1024,
        }
    }
}

impl Limits {
    /// Most input a [`Connection`] buffers: one whole request at its limits (and at least
    /// one byte past the head limit). A full buffer therefore always holds a complete
    /// request or an error, so it never stalls.
    pub fn max_input(&self) -> usize {
        self.max_head_bytes
            .saturating_add(self.max_body_bytes.max(1))
    }
}

/// Why a request was refused. Each variant maps to one status and a short message, which
/// is what the client is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The request line is not `method SP target SP version` (400).
    BadRequestLine,
    /// The target has a control or non-ASCII byte, a fragment, or a form other than
    /// origin (`/p?q`), absolute (`http://h/p`) or `*` for OPTIONS (400).
    BadTarget,
    /// A header line is not `name: value`: no colon, space before the colon, an invalid
    /// byte (NUL, control) in the name or value, or an obs-fold continuation line (400).
    BadHeader,
    /// Anything else `httparse` refuses, such as a lone CR (400).
    Malformed,
    /// HTTP/1.1 without `Host` (400).
    MissingHost,
    /// More than one `Host`, or one that is not text (400).
    BadHost,
    /// A `Content-Length` that is not a plain decimal number or does not fit (400).
    BadContentLength,
    /// Several `Content-Length` fields that disagree (400).
    ConflictingContentLength,
    /// `Content-Length` and `Transfer-Encoding` together: the two framings could be read
    /// differently by a proxy in front of us, so neither is trusted (400).
    LengthAndTransferEncoding,
    /// `Transfer-Encoding` alone: chunked request bodies are not accepted (501).
    TransferEncoding,
    /// More header fields than [`Limits::max_headers`] (431).
    TooManyHeaders,
    /// The head is longer than [`Limits::max_head_bytes`], complete or not (431).
    HeadTooLarge,
    /// `Content-Length` over [`Limits::max_body_bytes`] (413).
    BodyTooLarge,
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1 (505).
    UnsupportedVersion,
    /// The head did not arrive within [`Limits::header_timeout_ms`] (408).
    HeadTimeout,
    /// The body did not arrive within [`Limits::body_timeout_ms`] (408).
    BodyTimeout,
}

impl HttpError {
    /// The status this error is answered with.
    pub fn status(self) -> u16 {
        use HttpError::*;
        match self {
            BadRequestLine
            | BadTarget
            | BadHeader
            | Malformed
            | MissingHost
            | BadHost
            | BadContentLength
            | ConflictingContentLength
            | LengthAndTransferEncoding => 400,
            TransferEncoding => 501,
            TooManyHeaders | HeadTooLarge => 431,
            BodyTooLarge => 413,
            UnsupportedVersion => 505,
            HeadTimeout | BodyTimeout => 408,
        }
    }

    /// What the client is told, in the error body.
    pub fn message(self) -> &'static str {
        use HttpError::*;
        match self {
            BadRequestLine => "malformed request line",
            BadTarget => "invalid request target",
            BadHeader => "malformed header field",
            Malformed => "malformed request",
            MissingHost => "HTTP/1.1 request without Host",
            BadHost => "more than one Host, or an invalid one",
            BadContentLength => "invalid Content-Length",
            ConflictingContentLength => "conflicting Content-Length fields",
            LengthAndTransferEncoding => "both Content-Length and Transfer-Encoding",
            TransferEncoding => "Transfer-Encoding is not supported; send Content-Length",
            TooManyHeaders => "too many header fields",
            HeadTooLarge => "request line or header fields too large",
            BodyTooLarge => "request body too large",
            UnsupportedVersion => "only HTTP/1.0 and HTTP/1.1 are supported",
            HeadTimeout => "request head not received in time",
            BodyTimeout => "request body not received in time",
        }
    }
}

impl core::fmt::Display for HttpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({})", self.message(), self.status())
    }
}
