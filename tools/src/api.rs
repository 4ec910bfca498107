//! A small HTTP/1.1 client for the runtime's management API, over `std::net`.
//!
//! Owns talking to the API from the host (`plinth status`, the tests, the benchmarks).
//! Deliberately tiny: one request per connection (`Connection: close`) unless the caller
//! keeps a [`KeepAlive`] session, `Content-Length` bodies only (the runtime never sends
//! chunked ones).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

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
    let mut s = connect(addr, timeout)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: plinth\r\n"
    );
    match json_body {
        Some(b) => head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
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

/// Polls `GET /api/v1/health` until it answers 200 (the runtime's address comes from
/// DHCP after `ready`, so the forward answers a little later). On timeout, the last
/// failure is returned.
pub fn wait_healthy(addr: SocketAddr, timeout: Duration) -> Result<(), ApiError> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let err = match get(addr, "/api/v1/health", Duration::from_secs(5)) {
            Ok(r) if r.status == 200 => return Ok(()),
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

/// `GET path`, expecting 200 and a JSON body.
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
pub fn format_status(v: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mib = |b: &serde_json::Value| b.as_u64().unwrap_or(0) >> 20;
    let _ = writeln!(
        out,
        "plinth {} up {:.1} s, {} cpu, memory {} MiB ({} MiB free)",
        v["version"].as_str().unwrap_or("?"),
        v["uptime_ms"].as_u64().unwrap_or(0) as f64 / 1000.0,
        v["cpus"].as_u64().unwrap_or(0),
        mib(&v["memory"]["total_bytes"]),
        mib(&v["memory"]["free_bytes"]),
    );
    for n in v["nics"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "nic  {} ({}): MAC {}, {} ({})",
            n["name"].as_str().unwrap_or("?"),
            n["location"].as_str().unwrap_or("?"),
            n["mac"].as_str().unwrap_or("?"),
            n["ipv4"].as_str().unwrap_or("no address"),
            n["address_source"].as_str().unwrap_or("?"),
        );
    }
    for d in v["disks"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "disk {} ({}): {} MiB, serial \"{}\"",
            d["name"].as_str().unwrap_or("?"),
            d["location"].as_str().unwrap_or("?"),
            mib(&d["capacity_bytes"]),
            d["serial"].as_str().unwrap_or(""),
        );
    }
    let devices = v["devices"].as_array().map_or(0, Vec::len);
    let _ = write!(out, "pci  {devices} functions");
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
}
