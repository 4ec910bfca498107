//! Network benchmarks against a running runtime: `plinth bench net`.
//!
//! Measures TCP throughput both ways between the host and the runtime's management API
//! port (forwarded by QEMU user networking) and the API's request rate. Throughput goes
//! through the runtime's bench endpoints, which exist only when it was booted with `bench`
//! on its command line: an HTTP/1.1 request with `Upgrade: plinth-bench`, answered by
//! `101 Switching Protocols`, after which the connection carries raw payload.
//!
//! - sink, host → runtime: `POST /api/v1/bench/sink`; the host writes N bytes and shuts
//!   its side down, the runtime answers `received <count>\n` and closes.
//! - source, runtime → host: `GET /api/v1/bench/source?bytes=N`; the runtime writes N
//!   bytes and closes.
//!
//! The request rate is `GET /api/v1/health` back to back on keep-alive connections.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::api::{self, ApiError, KeepAlive};
use crate::bench::Summary;

const MIB: f64 = 1024.0 * 1024.0;

/// Size of the payload buffer, reused for every write (sink) or read (source).
const BUF_LEN: usize = 256 * 1024;

/// The headers of both upgrade requests, after the request line.
const UPGRADE_HEADERS: &str =
    "Host: plinth\r\nConnection: Upgrade\r\nUpgrade: plinth-bench\r\n\r\n";

const SINK_WHAT: &str = "sink (POST /api/v1/bench/sink)";
const HEALTH_PATH: &str = "/api/v1/health";

/// What `plinth bench net` measures, and against which runtime.
#[derive(Clone, Debug)]
pub struct NetOptions {
    /// The runtime's API as the host reaches it (the QEMU port forward).
    pub addr: SocketAddr,
    /// Payload of one transfer, each way.
    pub bytes: u64,
    /// Transfers each way.
    pub runs: usize,
    /// Length of each request-rate measurement; 0 skips them.
    pub health_secs: f64,
    /// Connections of the concurrent request-rate measurement; 1 skips it.
    pub connections: usize,
    /// Limit for connecting and for every single read or write.
    pub timeout: Duration,
}

impl Default for NetOptions {
    fn default() -> NetOptions {
        NetOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], api::DEFAULT_HOST_PORT)),
            bytes: 64 << 20,
            runs: 3,
            health_secs: 2.0,
            connections: 4,
            timeout: Duration::from_secs(10),
        }
    }
}

impl NetOptions {
    fn validate(&self) -> Result<(), NetBenchError> {
        let bad = |m: &str| Err(NetBenchError::Options(m.to_owned()));
        if self.bytes == 0 {
            return bad("the payload must be at least one byte");
        }
        if self.runs == 0 {
            return bad("at least one run is needed");
        }
        if self.connections == 0 {
            return bad("at least one connection is needed");
        }
        if !(self.health_secs.is_finite() && self.health_secs >= 0.0) {
            return bad("the request-rate duration must be a finite number of seconds >= 0");
        }
        if self.timeout.is_zero() {
            return bad("the timeout must not be zero");
        }
        Ok(())
    }
}

/// One transfer: `bytes` moved in `secs`.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Transfer {
    pub bytes: u64,
    pub secs: f64,
}

impl Transfer {
    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / MIB / self.secs
    }
}

/// Throughput of one direction over all runs.
#[derive(Clone, Debug, Serialize)]
pub struct Throughput {
    pub median_mib_s: f64,
    pub min_mib_s: f64,
    pub max_mib_s: f64,
    /// Each run's throughput, in run order.
    pub per_run_mib_s: Vec<f64>,
    /// Each run's duration, in run order.
    pub per_run_secs: Vec<f64>,
}

impl Throughput {
    pub fn of(transfers: &[Transfer]) -> Throughput {
        let per_run_mib_s: Vec<f64> = transfers.iter().map(Transfer::mib_per_s).collect();
        let s = Summary::of(&per_run_mib_s);
        Throughput {
            median_mib_s: s.median_ms,
            min_mib_s: s.min_ms,
            max_mib_s: s.max_ms,
            per_run_mib_s,
            per_run_secs: transfers.iter().map(|t| t.secs).collect(),
        }
    }
}

/// A request rate: `requests` answered over `connections` connections in `secs`.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Rate {
    pub connections: usize,
    pub requests: u64,
    pub secs: f64,
    pub per_s: f64,
}

/// The result of `plinth bench net`.
#[derive(Clone, Debug, Serialize)]
pub struct NetReport {
    pub addr: SocketAddr,
    pub bytes_per_run: u64,
    pub runs: usize,
    /// Sink transfers.
    pub host_to_runtime: Throughput,
    /// Source transfers.
    pub runtime_to_host: Throughput,
    /// `GET /api/v1/health` on one keep-alive connection; `None` if skipped.
    pub health: Option<Rate>,
    /// The same on several concurrent connections; `None` if skipped.
    pub health_concurrent: Option<Rate>,
}

#[derive(Debug, thiserror::Error)]
pub enum NetBenchError {
    #[error("invalid options: {0}")]
    Options(String),
    #[error("cannot connect to the runtime API at {addr}: {source} (is `plinth run` up?)")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("{what}: timed out after {:.1} s", .timeout.as_secs_f64())]
    Timeout { what: String, timeout: Duration },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{what}: {source}")]
    Api { what: String, source: ApiError },
    #[error(
        "{what}: the runtime answered {status} instead of 101 Switching Protocols: {body}{}",
        bench_hint(*.status)
    )]
    NotUpgraded {
        what: String,
        status: u16,
        body: String,
    },
    #[error("sink: sent {sent} bytes but the runtime reports receiving {received}")]
    SinkCount { sent: u64, received: u64 },
    #[error("sink: expected `received <count>` from the runtime, got {0:?}")]
    SinkReply(String),
    #[error("source: asked for {expected} bytes but the runtime sent {received} before closing")]
    SourceCount { expected: u64, received: u64 },
    #[error(
        "health request {request} on connection {connection}: the API answered {status}: {body}"
    )]
    HealthStatus {
        connection: usize,
        request: u64,
        status: u16,
        body: String,
    },
    #[error("run {run}: {source}")]
    Run {
        run: usize,
        source: Box<NetBenchError>,
    },
}

fn bench_hint(status: u16) -> &'static str {
    if status == 404 {
        " (the bench endpoints exist only when the runtime is booted with `bench` on its command line)"
    } else {
        ""
    }
}

fn io_error(what: String, timeout: Duration, source: io::Error) -> NetBenchError {
    match source.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            NetBenchError::Timeout { what, timeout }
        }
        _ => NetBenchError::Io { what, source },
    }
}

fn api_error(what: String, timeout: Duration, e: ApiError) -> NetBenchError {
    match e {
        ApiError::Connect { addr, source } => NetBenchError::Connect { addr, source },
        ApiError::Io(source) => io_error(what, timeout, source),
        source => NetBenchError::Api { what, source },
    }
}

fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, NetBenchError> {
    if timeout.is_zero() {
        return Err(NetBenchError::Options(
            "the timeout must not be zero".into(),
        ));
    }
    let s = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| NetBenchError::Connect { addr, source })?;
    let set = |s: &TcpStream| -> io::Result<()> {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))
    };
    set(&s).map_err(|e| io_error(format!("setting up the connection to {addr}"), timeout, e))?;
    Ok(s)
}

/// Sends an upgrade request and reads the answer's head. On 101 returns the reader, whose
/// buffer may already hold payload: read everything after the head through it.
fn upgrade<'a>(
    stream: &'a TcpStream,
    request_line: &str,
    what: &str,
    timeout: Duration,
) -> Result<BufReader<&'a TcpStream>, NetBenchError> {
    let mut w = stream;
    w.write_all(format!("{request_line}\r\n{UPGRADE_HEADERS}").as_bytes())
        .map_err(|e| io_error(format!("{what}: sending the request"), timeout, e))?;
    let mut reader = BufReader::new(stream);
    let head = api::read_response(&mut reader, true)
        .map_err(|e| api_error(format!("{what}: reading the response head"), timeout, e))?;
    if head.status != 101 {
        return Err(NetBenchError::NotUpgraded {
            what: what.to_owned(),
            status: head.status,
            body: error_body(&mut reader, &head),
        });
    }
    Ok(reader)
}

/// The body of a refusal, best effort: by `Content-Length` (at most 4 KiB), else whatever
/// has already arrived.
fn error_body(reader: &mut BufReader<&TcpStream>, head: &api::Response) -> String {
    let mut body = Vec::new();
    match head
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(len) => {
            let _ = reader.take(len.min(4096)).read_to_end(&mut body);
        }
        None => body.extend_from_slice(reader.buffer()),
    }
    let text = String::from_utf8_lossy(&body).trim().to_owned();
    if text.is_empty() {
        "(no body)".to_owned()
    } else {
        text
    }
}

/// Sends `bytes` to the runtime's sink. Timed from the first payload byte written to the
/// runtime's `received` line read.
pub fn sink(addr: SocketAddr, bytes: u64, timeout: Duration) -> Result<Transfer, NetBenchError> {
    let stream = connect(addr, timeout)?;
    let mut reader = upgrade(
        &stream,
        "POST /api/v1/bench/sink HTTP/1.1",
        SINK_WHAT,
        timeout,
    )?;
    let buf: Vec<u8> = (0..BUF_LEN).map(|i| i as u8).collect();
    let mut w = &stream;
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        let n = (bytes - sent).min(BUF_LEN as u64) as usize;
        w.write_all(&buf[..n]).map_err(|e| {
            io_error(
                format!("{SINK_WHAT}: writing the payload ({sent} of {bytes} bytes sent)"),
                timeout,
                e,
            )
        })?;
        sent += n as u64;
    }
    stream.shutdown(Shutdown::Write).map_err(|e| {
        io_error(
            format!("{SINK_WHAT}: shutting down the sending side"),
            timeout,
            e,
        )
    })?;
    let mut line = Vec::new();
    (&mut reader)
        .take(256)
        .read_until(b'\n', &mut line)
        .map_err(|e| {
            io_error(
                format!("{SINK_WHAT}: waiting for `received <count>` after sending {bytes} bytes"),
                timeout,
                e,
            )
        })?;
    let secs = start.elapsed().as_secs_f64();
    let line = String::from_utf8_lossy(&line).into_owned();
    let received = line
        .strip_suffix('\n')
        .and_then(|l| l.trim_end_matches('\r').strip_prefix("received "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .ok_or_else(|| NetBenchError::SinkReply(line.clone()))?;
    if received != bytes {
        return Err(NetBenchError::SinkCount {
            sent: bytes,
            received,
        });
    }
    Ok(Transfer { bytes, secs })
}

/// Has the runtime's source send `bytes`. Timed from the 101 head received to EOF.
pub fn source(addr: SocketAddr, bytes: u64, timeout: Duration) -> Result<Transfer, NetBenchError> {
    let path = format!("/api/v1/bench/source?bytes={bytes}");
    let what = format!("source (GET {path})");
    let stream = connect(addr, timeout)?;
    let mut reader = upgrade(&stream, &format!("GET {path} HTTP/1.1"), &what, timeout)?;
    let start = Instant::now();
    // Reads go through the reader: it drains the payload buffered with the head first and
    // passes large reads straight to the socket afterwards.
    let mut buf = vec![0u8; BUF_LEN];
    let mut received = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A reset once everything has arrived is as good as a close.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && received == bytes => break,
            Err(e) => {
                return Err(io_error(
                    format!("{what}: reading the payload ({received} of {bytes} bytes received)"),
                    timeout,
                    e,
                ));
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if received != bytes {
        return Err(NetBenchError::SourceCount {
            expected: bytes,
            received,
        });
    }
    Ok(Transfer { bytes, secs })
}

/// `GET /api/v1/health` back to back for `duration` on each of `connections` keep-alive
/// connections at once; every answer must be 200. The rate is all requests over the
/// longest connection's time.
pub fn health_rate(
    addr: SocketAddr,
    duration: Duration,
    connections: usize,
    timeout: Duration,
) -> Result<Rate, NetBenchError> {
    if connections == 0 {
        return Err(NetBenchError::Options(
            "at least one connection is needed".into(),
        ));
    }
    if timeout.is_zero() {
        return Err(NetBenchError::Options(
            "the timeout must not be zero".into(),
        ));
    }
    let mut conns = (1..=connections)
        .map(|c| {
            KeepAlive::connect(addr, timeout)
                .map_err(|e| api_error(format!("health: connection {c}"), timeout, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let barrier = Barrier::new(connections);
    let results: Vec<Result<(u64, f64), NetBenchError>> = std::thread::scope(|s| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(i, conn)| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    hammer(conn, i + 1, duration, timeout)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let (mut requests, mut secs) = (0u64, 0f64);
    for r in results {
        let (n, t) = r?;
        requests += n;
        secs = secs.max(t);
    }
    Ok(Rate {
        connections,
        requests,
        secs,
        per_s: requests as f64 / secs,
    })
}

/// Health requests on one connection until `duration` is over (at least one).
fn hammer(
    conn: &mut KeepAlive,
    connection: usize,
    duration: Duration,
    timeout: Duration,
) -> Result<(u64, f64), NetBenchError> {
    let start = Instant::now();
    let mut done = 0u64;
    loop {
        let request = done + 1;
        let r = conn.get(HEALTH_PATH).map_err(|e| {
            api_error(
                format!("health request {request} on connection {connection} (GET {HEALTH_PATH})"),
                timeout,
                e,
            )
        })?;
        if r.status != 200 {
            return Err(NetBenchError::HealthStatus {
                connection,
                request,
                status: r.status,
                body: r.text(),
            });
        }
        done = request;
        let elapsed = start.elapsed();
        if elapsed >= duration {
            return Ok((done, elapsed.as_secs_f64()));
        }
    }
}

/// Runs the whole benchmark: `runs` transfers each way (sink then source in each run),
/// then the request rates. `progress` receives one line per measurement.
pub fn run(opts: &NetOptions, mut progress: impl FnMut(&str)) -> Result<NetReport, NetBenchError> {
    opts.validate()?;
    let (addr, timeout) = (opts.addr, opts.timeout);
    let mut up = Vec::with_capacity(opts.runs);
    let mut down = Vec::with_capacity(opts.runs);
    for run in 1..=opts.runs {
        let in_run = |source| NetBenchError::Run {
            run,
            source: Box::new(source),
        };
        let t = sink(addr, opts.bytes, timeout).map_err(in_run)?;
        progress(&format!(
            "run {run}/{}: host -> runtime {} in {:.3} s, {:.1} MiB/s",
            opts.runs,
            format_bytes(t.bytes),
            t.secs,
            t.mib_per_s()
        ));
        up.push(t);
        let t = source(addr, opts.bytes, timeout).map_err(in_run)?;
        progress(&format!(
            "run {run}/{}: runtime -> host {} in {:.3} s, {:.1} MiB/s",
            opts.runs,
            format_bytes(t.bytes),
            t.secs,
            t.mib_per_s()
        ));
        down.push(t);
    }
    let (mut health, mut health_concurrent) = (None, None);
    if opts.health_secs > 0.0 {
        let duration = Duration::from_secs_f64(opts.health_secs);
        let mut rate = |connections| -> Result<Rate, NetBenchError> {
            let r = health_rate(addr, duration, connections, timeout)?;
            progress(&format!("health: {}", format_rate(&r)));
            Ok(r)
        };
        health = Some(rate(1)?);
        if opts.connections > 1 {
            health_concurrent = Some(rate(opts.connections)?);
        }
    }
    Ok(NetReport {
        addr,
        bytes_per_run: opts.bytes,
        runs: opts.runs,
        host_to_runtime: Throughput::of(&up),
        runtime_to_host: Throughput::of(&down),
        health,
        health_concurrent,
    })
}

fn format_bytes(b: u64) -> String {
    match b {
        _ if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / MIB),
        _ if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        _ => format!("{b} bytes"),
    }
}

fn format_rate(r: &Rate) -> String {
    format!(
        "{:.0} requests/s on {} connection{} ({} requests in {:.2} s)",
        r.per_s,
        r.connections,
        if r.connections == 1 { "" } else { "s" },
        r.requests,
        r.secs
    )
}

impl std::fmt::Display for NetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "net benchmark: {}, {} run{} of {} each way",
            self.addr,
            self.runs,
            if self.runs == 1 { "" } else { "s" },
            format_bytes(self.bytes_per_run)
        )?;
        write!(
            f,
            "{:<26} {:>12} {:>12} {:>12}",
            "", "median MiB/s", "min MiB/s", "max MiB/s"
        )?;
        for (name, t) in [
            ("host -> runtime (sink)", &self.host_to_runtime),
            ("runtime -> host (source)", &self.runtime_to_host),
        ] {
            write!(
                f,
                "\n{name:<26} {:>12.1} {:>12.1} {:>12.1}",
                t.median_mib_s, t.min_mib_s, t.max_mib_s
            )?;
        }
        for r in [&self.health, &self.health_concurrent]
            .into_iter()
            .flatten()
        {
            write!(f, "\nhealth: {}", format_rate(r))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    const T: Duration = Duration::from_secs(5);
    const SWITCH: &[u8] =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: plinth-bench\r\n\r\n";

    /// How the fake runtime misbehaves.
    #[derive(Clone, Copy, Default)]
    struct Fake {
        /// Answers the bench endpoints with 404 (booted without `bench`).
        not_found: bool,
        /// Added to the sink's reported count.
        sink_extra: u64,
        /// Withheld from the source's payload.
        source_short: u64,
        /// Never answers.
        silent: bool,
    }

    /// The runtime side of the protocol on 127.0.0.1; returns its address and the number
    /// of health requests answered.
    fn serve(fake: Fake) -> (SocketAddr, Arc<AtomicU64>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let health = Arc::new(AtomicU64::new(0));
        let counter = health.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let counter = counter.clone();
                std::thread::spawn(move || {
                    let _ = handle(&s, fake, &counter);
                });
            }
        });
        (addr, health)
    }

    fn handle(s: &TcpStream, fake: Fake, health: &AtomicU64) -> io::Result<()> {
        let mut r = BufReader::new(s);
        let mut w = s;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let mut upgrade = false;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h)? == 0 {
                    return Ok(());
                }
                if h.trim_end().is_empty() {
                    break;
                }
                upgrade |= h.trim_end().eq_ignore_ascii_case("upgrade: plinth-bench");
            }
            if fake.silent {
                std::thread::sleep(Duration::from_secs(5));
                return Ok(());
            }
            let target = line.split(' ').nth(1).unwrap_or_default().to_owned();
            if target.starts_with("/api/v1/bench/") && (fake.not_found || !upgrade) {
                w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found")?;
                continue;
            }
            if line.starts_with("POST /api/v1/bench/sink ") {
                w.write_all(SWITCH)?;
                let mut buf = vec![0; 65536];
                let mut n = 0u64;
                loop {
                    match r.read(&mut buf)? {
                        0 => break,
                        k => n += k as u64,
                    }
                }
                writeln!(w, "received {}", n + fake.sink_extra)?;
                return Ok(());
            }
            if let Some(n) = target.strip_prefix("/api/v1/bench/source?bytes=") {
                let n = n.parse::<u64>().unwrap() - fake.source_short;
                // The head and the first payload bytes in one segment: a client that loses
                // what its reader buffered past the head comes up short.
                let first = n.min(1000);
                let mut out = SWITCH.to_vec();
                out.extend(vec![b'x'; first as usize]);
                w.write_all(&out)?;
                let buf = vec![b'y'; 65536];
                let mut left = n - first;
                while left > 0 {
                    let k = left.min(buf.len() as u64) as usize;
                    w.write_all(&buf[..k])?;
                    left -= k as u64;
                }
                return Ok(());
            }
            if line.starts_with("GET /api/v1/health ") {
                // Counted before answering, so the count is final when the client has read
                // its last answer.
                health.fetch_add(1, Ordering::SeqCst);
                w.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}",
                )?;
                continue;
            }
            w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
        }
    }

    #[test]
    fn sink_counts_match() {
        let (addr, _) = serve(Fake::default());
        for bytes in [1, 1000, BUF_LEN as u64 + 12345] {
            let t = sink(addr, bytes, T).unwrap();
            assert_eq!(t.bytes, bytes);
            assert!(t.secs > 0.0 && t.mib_per_s() > 0.0);
        }
    }

    #[test]
    fn sink_with_a_wrong_count_is_an_error() {
        let (addr, _) = serve(Fake {
            sink_extra: 1,
            ..Fake::default()
        });
        let e = sink(addr, 5000, T).unwrap_err();
        assert!(
            matches!(
                e,
                NetBenchError::SinkCount {
                    sent: 5000,
                    received: 5001
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn source_gets_the_exact_count_including_bytes_sent_with_the_head() {
        let (addr, _) = serve(Fake::default());
        for bytes in [1, 999, 1000, 100_000, 2 * BUF_LEN as u64 + 1] {
            let t = source(addr, bytes, T).unwrap();
            assert_eq!(t.bytes, bytes);
        }
    }

    #[test]
    fn a_short_source_is_an_error() {
        let (addr, _) = serve(Fake {
            source_short: 10,
            ..Fake::default()
        });
        let e = source(addr, 50_000, T).unwrap_err();
        assert!(
            matches!(
                e,
                NetBenchError::SourceCount {
                    expected: 50_000,
                    received: 49_990
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn not_found_says_to_boot_with_bench() {
        let (addr, _) = serve(Fake {
            not_found: true,
            ..Fake::default()
        });
        for e in [
            sink(addr, 100, T).unwrap_err(),
            source(addr, 100, T).unwrap_err(),
        ] {
            let NetBenchError::NotUpgraded { status, body, .. } = &e else {
                panic!("{e}");
            };
            assert_eq!((*status, body.as_str()), (404, "not found"));
            let msg = e.to_string();
            assert!(msg.contains("404") && msg.contains("`bench`"), "{msg}");
        }
    }

    #[test]
    fn a_silent_runtime_times_out_saying_what_it_waited_for() {
        let (addr, _) = serve(Fake {
            silent: true,
            ..Fake::default()
        });
        let e = source(addr, 100, Duration::from_millis(200)).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, NetBenchError::Timeout { .. }), "{msg}");
        assert!(
            msg.contains("source") && msg.contains("response head") && msg.contains("timed out"),
            "{msg}"
        );
    }

    #[test]
    fn a_closed_port_is_a_connect_error() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = sink(addr, 100, T).unwrap_err();
        assert!(matches!(e, NetBenchError::Connect { .. }), "{e}");
    }

    #[test]
    fn health_rate_counts_requests() {
        for connections in [1, 3] {
            let (addr, served) = serve(Fake::default());
            let r = health_rate(addr, Duration::from_millis(100), connections, T).unwrap();
            assert_eq!(r.connections, connections);
            assert!(r.requests >= connections as u64, "{r:?}");
            assert_eq!(r.requests, served.load(Ordering::SeqCst));
            assert!(r.secs >= 0.1 && r.per_s > 0.0, "{r:?}");
        }
    }

    #[test]
    fn run_reports_both_directions_and_the_rates() {
        let (addr, _) = serve(Fake::default());
        let opts = NetOptions {
            addr,
            bytes: 300_000,
            runs: 2,
            health_secs: 0.05,
            connections: 2,
            timeout: T,
        };
        let mut lines = Vec::new();
        let report = run(&opts, |l| lines.push(l.to_owned())).unwrap();
        assert_eq!(lines.len(), 2 * 2 + 2, "{lines:?}");
        assert_eq!(report.host_to_runtime.per_run_mib_s.len(), 2);
        assert_eq!(report.runtime_to_host.per_run_secs.len(), 2);
        let t = &report.runtime_to_host;
        assert!(t.min_mib_s <= t.median_mib_s && t.median_mib_s <= t.max_mib_s);
        assert_eq!(report.health.unwrap().connections, 1);
        assert_eq!(report.health_concurrent.unwrap().connections, 2);
        let text = report.to_string();
        assert!(text.contains("host -> runtime (sink)"), "{text}");
        assert!(text.contains("on 2 connections"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["bytes_per_run"], 300_000);
        assert_eq!(json["health_concurrent"]["connections"], 2);

        let e = run(&NetOptions { runs: 0, ..opts }, |_| {}).unwrap_err();
        assert!(matches!(e, NetBenchError::Options(_)), "{e}");
    }

    #[test]
    fn run_names_the_failing_run() {
        let (addr, _) = serve(Fake {
            not_found: true,
            ..Fake::default()
        });
        let opts = NetOptions {
            addr,
            bytes: 10,
            runs: 1,
            health_secs: 0.0,
            connections: 1,
            timeout: T,
        };
        let msg = run(&opts, |_| {}).unwrap_err().to_string();
        assert!(msg.starts_with("run 1: sink"), "{msg}");
    }
}
