//! A small HTTP/1.1 client for the runtime's management API, over `std::net`.
//!
//! Owns talking to the API from the host (`plinth status`, the tests, the benchmarks),
//! and the summary of the status. Deliberately tiny: one request per connection
//! (`Connection: close`) unless the caller keeps a [`KeepAlive`] session,
//! `Content-Length` bodies only (the runtime never sends chunked ones). Answers are read
//! into `plinth-control`'s views ([`get_view`]), the types the runtime writes them from;
//! [`get_json`] is for documents without one (the catalog) and for tests that look at
//! the JSON itself.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use plinth_control::views::{Health, Status, View, ViewError};

/// Default host port `plinth run` forwards to the runtime's API.
pub const DEFAULT_HOST_PORT: u16 = 8080;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot connect to the runtime API at {addr}: {source} (is `plinth run` up?)")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("API I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed API response: {0}")]
    Malformed(String),
    #[error("API answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("API returned invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The answer is not the document this tool knows (a required field missing or of
    /// the wrong type); the message names the field. Not a `source`: the message is
    /// all of it, and a chain would print it twice.
    #[error("API returned a {0}")]
    View(ViewError),
}

impl From<ViewError> for ApiError {
    fn from(e: ViewError) -> ApiError {
        ApiError::View(e)
    }
}

/// A response as received.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `r`. `head_only` for answers to HEAD (no body follows).
pub fn read_response(r: &mut impl BufRead, head_only: bool) -> Result<Response, ApiError> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(ApiError::Malformed(
            "connection closed before a response".into(),
        ));
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| ApiError::Malformed(format!("status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(ApiError::Malformed(
                "connection closed in the headers".into(),
            ));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| ApiError::Malformed(format!("header {l:?}")))?;
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if !head_only {
        let len: usize = resp
            .header("content-length")
            .ok_or_else(|| ApiError::Malformed("no Content-Length".into()))?
            .parse()
            .map_err(|_| ApiError::Malformed("bad Content-Length".into()))?;
        resp.body.resize(len, 0);
        r.read_exact(&mut resp.body)?;
    }
    Ok(resp)
}

fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ApiError> {
    let s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| ApiError::Connect { addr, source })?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response, ApiError> {
    let mut s = connect(addr, timeout)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: plinth\r\n\r\n"
    )?;
    read_response(&mut BufReader::new(s), false)
}

/// `METHOD path` on a fresh connection, with a JSON body if given (`Content-Length: 0`
/// otherwise, except for GET and HEAD). Any status is returned as it is.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json_body: Option<&[u8]>,
    timeout: Duration,
) -> Result<Response, ApiError> {
    let body = json_body.map(|b| ("application/json", b));
    request_typed(addr, method, path, body, timeout)
}

/// [`request`] with a body of any type: `(content type, bytes)`.
pub fn request_typed(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    timeout: Duration,
) -> Result<Response, ApiError> {
    let mut s = connect(addr, timeout)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: plinth\r\n"
    );
    let json_body = body.map(|(_, b)| b);
    match body {
        Some((content_type, b)) => head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            b.len()
        )),
        None if method != "GET" && method != "HEAD" => head.push_str("Content-Length: 0\r\n"),
        None => {}
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(json_body.unwrap_or_default());
    s.write_all(&out)?;
    read_response(&mut BufReader::new(s), method == "HEAD")
}

/// Polls `GET /api/v1/health` until it answers 200 with `{"status":"ok"}` (the
/// runtime's address comes from DHCP after `ready`, so the forward answers a little
/// later). On timeout, the last failure is returned.
pub fn wait_healthy(addr: SocketAddr, timeout: Duration) -> Result<(), ApiError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let err = match get(addr, "/api/v1/health", Duration::from_secs(5)) {
            Ok(r) if r.status == 200 => match Health::from_json(&r.body) {
                Ok(h) if h.is_ok() => return Ok(()),
                Ok(h) => ApiError::Malformed(format!("health is {:?}", h.status.as_str())),
                Err(e) => e.into(),
            },
            Ok(r) => ApiError::Status {
                status: r.status,
                body: r.text(),
            },
            Err(e) => e,
        };
        if std::time::Instant::now() >= deadline {
            return Err(err);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET path`, expecting 200 and the document `T`.
pub fn get_view<T: View>(addr: SocketAddr, path: &str, timeout: Duration) -> Result<T, ApiError> {
    let r = get(addr, path, timeout)?;
    if r.status != 200 {
        return Err(ApiError::Status {
            status: r.status,
            body: r.text(),
        });
    }
    Ok(T::from_json(&r.body)?)
}

/// `GET path`, expecting 200 and any JSON body.
pub fn get_json(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<serde_json::Value, ApiError> {
    let r = get(addr, path, timeout)?;
    if r.status != 200 {
        return Err(ApiError::Status {
            status: r.status,
            body: r.text(),
        });
    }
    Ok(serde_json::from_slice(&r.body)?)
}

/// One persistent connection for many requests (keep-alive).
pub struct KeepAlive {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl KeepAlive {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<KeepAlive, ApiError> {
        Ok(KeepAlive {
            addr,
            reader: BufReader::new(connect(addr, timeout)?),
        })
    }

    pub fn get(&mut self, path: &str) -> Result<Response, ApiError> {
        write!(
            self.reader.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.addr
        )?;
        read_response(&mut self.reader, false)
    }
}

/// Human-readable summary of `/api/v1/status`.
pub fn format_status(s: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plinth {} up {:.1} s, {} cpu, memory {} MiB ({} MiB free)",
        s.version,
        s.uptime_ms as f64 / 1000.0,
        s.cpus,
        s.memory.total_bytes >> 20,
        s.memory.free_bytes >> 20,
    );
    for n in &s.nics {
        let _ = writeln!(
            out,
            "nic  {} ({}): MAC {}, {} ({})",
            n.name,
            n.location,
            n.mac,
            n.ipv4.as_deref().unwrap_or("no address"),
            n.address_source,
        );
    }
    for d in &s.disks {
        let _ = writeln!(
            out,
            "disk {} ({}): {} MiB, serial \"{}\"",
            d.name,
            d.location,
            d.capacity_bytes >> 20,
            d.serial,
        );
    }
    let _ = write!(out, "pci  {} functions", s.devices.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_response_with_a_body_and_rejects_garbage() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello";
        let r = read_response(&mut &raw[..], false).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-a"), Some("b"));
        assert_eq!(r.body, b"hello");
        assert!(read_response(&mut &b"SSH-2.0\r\n\r\n"[..], false).is_err());
        assert!(read_response(&mut &b"HTTP/1.1 200 OK\r\n\r\n"[..], false).is_err());
    }

    /// `GET /api/v1/status` as the runtime writes it.
    const STATUS: &str = concat!(
        r#"{"version":"0.1.0","uptime_ms":5123,"cpus":1,"#,
        r#""memory":{"total_bytes":134217728,"free_bytes":100663296,"usable_frame_bytes":130023424,"heap_used_bytes":1048576,"heap_bytes":16777216},"#,
        r#""devices":[{"pci":"00:00.0","vendor_id":"8086","device_id":"29c0","class":"0600","driver":null},"#,
        r#"{"pci":"00:02.0","vendor_id":"1af4","device_id":"1041","class":"0200","driver":"virtio-net"}],"#,
        r#""nics":[{"name":"virtio-net","location":"00:02.0","mac":"52:54:00:12:34:56","ipv4":"10.0.2.15/24","gateway":"10.0.2.2","address_source":"dhcp"}],"#,
        r#""catalog":{"state":"verified","disk":"vda","partitions":3,"agents":4},"#,
        r#""disks":[{"name":"vda","location":"00:03.0","sectors":262144,"capacity_bytes":134217728,"serial":"plinth-disk0"}]}"#
    );

    #[test]
    fn status_summary() {
        let s = Status::from_json(STATUS.as_bytes()).unwrap();
        assert_eq!(
            format_status(&s),
            "plinth 0.1.0 up 5.1 s, 1 cpu, memory 128 MiB (96 MiB free)\n\
             nic  virtio-net (00:02.0): MAC 52:54:00:12:34:56, 10.0.2.15/24 (dhcp)\n\
             disk vda (00:03.0): 128 MiB, serial \"plinth-disk0\"\n\
             pci  2 functions"
        );
        let bare = STATUS
            .replace(r#""ipv4":"10.0.2.15/24""#, r#""ipv4":null"#)
            .replace(r#""dhcp""#, r#""static""#);
        let s = Status::from_json(bare.as_bytes()).unwrap();
        assert!(
            format_status(&s).contains("MAC 52:54:00:12:34:56, no address (static)\n"),
            "{}",
            format_status(&s)
        );
    }

    /// A status without a field this tool needs is an error naming it, whichever it is.
    #[test]
    fn a_status_missing_a_field_is_refused_by_name() {
        let e = Status::from_json(STATUS.replace(r#""cpus":1,"#, "").as_bytes()).unwrap_err();
        assert_eq!(
            ApiError::from(e).to_string(),
            "API returned a malformed status: missing field `cpus` at line 1 column 692"
        );
    }

    /// Serves `answers` on a fresh port, one connection each, and returns its address.
    fn serve(answers: Vec<(u16, &'static str)>) -> SocketAddr {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let (mut s, _) = listener.accept().unwrap();
                // The whole request (a GET: its head), so closing does not reset it.
                let (mut got, mut buf) = (Vec::new(), [0u8; 1024]);
                while !got.ends_with(b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        addr
    }

    #[test]
    fn views_come_from_200_answers_only() {
        let t = Duration::from_secs(5);
        let addr = serve(vec![
            (200, STATUS),
            (200, r#"{"version":"0.1.0"}"#),
            (503, r#"{"error":"not yet","status":503}"#),
            (200, "[1,"),
        ]);
        let s: Status = get_view(addr, "/api/v1/status", t).unwrap();
        assert_eq!(s.devices.len(), 2);
        match get_view::<Status>(addr, "/api/v1/status", t) {
            Err(ApiError::View(e)) => {
                assert_eq!(e.what, "status");
                assert!(e.message.starts_with("missing field `uptime_ms`"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            get_view::<Status>(addr, "/api/v1/status", t),
            Err(ApiError::Status { status: 503, .. })
        ));
        assert!(matches!(
            get_view::<Status>(addr, "/api/v1/status", t),
            Err(ApiError::View(_))
        ));
    }

    #[test]
    fn healthy_means_status_ok() {
        let addr = serve(vec![
            (503, ""),
            (200, r#"{"status":"starting"}"#),
            (200, r#"{"status":"ok","extra":1}"#),
        ]);
        wait_healthy(addr, Duration::from_secs(10)).unwrap();
        let addr = serve(vec![(200, "{}"), (200, "{}")]);
        match wait_healthy(addr, Duration::from_millis(50)) {
            Err(ApiError::View(e)) => assert!(e.message.contains("`status`"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}
