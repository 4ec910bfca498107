//! The management API stays reachable while hostile clients hold, trickle and flood its
//! connections: the runtime's deadlines (`plinth_http::Limits`) and admission (a cap per
//! peer, the idlest connection reset when the table runs short; `kernel/src/mgmt`).
//!
//! Each test boots the runtime and, for about twenty seconds, runs at once: a slowloris
//! crowd (24 connections trickling a request head that never ends, a byte every 150 ms,
//! reconnecting whenever cut off), a dozen connections that send nothing, a flood of
//! connections opened as fast as one thread can and dropped or abandoned, a lone slow
//! client, and two clients that send a `POST /api/v1/partitions` head and then trickle or
//! withhold its body. Meanwhile an operator makes 28 requests — health, status, the
//! partition list, a partition created, read and deleted, metrics — and every one must be
//! answered within 3 s. Afterwards the runtime must be healthy and have counted the
//! connections it reset, and the hostile connections must have been cut off: none past
//! its deadline where the clients reach the runtime directly, and typically well before.
//!
//! Twice: over QEMU's user network, where every client is the same peer (10.0.2.2) to the
//! runtime, so the per-peer cap cannot tell the operator from the attackers and only
//! eviction of the idlest lets it in; and on a tap in a network namespace, where each kind
//! of attacker has an address of its own, the per-peer cap confines the crowds, and the
//! lone slow client and the body clients live long enough to meet the head and body
//! deadlines themselves.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use plinth::api::{self, ApiError, read_response};
use plinth_http::Limits;
use plinth_tests::{Boot, NETNS_HOST_IP, NetNs, Runtime};
use socket2::{Domain, Protocol, Socket, Type};

/// Both tests load the machine on purpose; run together, each would measure the other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// All an operator request may take, retries included. Below the runtime's 5 s header
/// deadline on purpose: an operator that got in only once the attackers' heads timed out
/// would fail, so passing shows admission let it in. Answers take milliseconds even under
/// TCG; the rest is room for a CI machine whose two cores this test itself keeps busy.
const OPERATOR_DEADLINE: Duration = Duration::from_secs(3);
/// Connections one operator request may use. A new connection is refused (RST) when a
/// burst of SYNs took every listening socket, and on QEMU's user network an eviction can
/// land in the moment between the forwarded connection and its first bytes; trying again
/// at once is what a client does. A request left unanswered is never retried: it fails.
const OPERATOR_ATTEMPTS: u32 = 5;
/// How long the operator waits for a connection to be accepted before trying a new one.
/// QEMU's user network accepts forwarded connections through a listen queue of one or
/// two, which the attackers keep full: a SYN the host drops there is retransmitted only
/// after 1 s, then 2 s more, which measures QEMU's front door, not the runtime.
const OPERATOR_CONNECT: Duration = Duration::from_millis(500);
/// Between the starts of two operator requests (28 of them over about 20 s).
const OPERATOR_PACE: Duration = Duration::from_millis(700);
/// The operator's first request, once the crowds have filled the table.
const OPERATOR_START: Duration = Duration::from_secs(1);

/// How often a hostile client sends its next byte and looks whether it was cut off.
const TICK: Duration = Duration::from_millis(150);
/// When, after the attack starts, the flood starts and ends.
const FLOOD: (Duration, Duration) = (Duration::from_secs(3), Duration::from_secs(13));
/// Connections the flood keeps abandoned (open, silent) at once; older ones are dropped.
const FLOOD_ABANDONED: usize = 32;
/// Time for a client to notice that a deadline ran out: its tick, and a loaded machine.
const NOTICE: Duration = Duration::from_secs(2);
/// Whatever happens, hostile clients stop this long after they started.
const HARD_STOP: Duration = Duration::from_secs(90);

/// The runtime's head and body deadlines.
fn deadlines() -> (Duration, Duration) {
    let l = Limits::default();
    (
        Duration::from_millis(l.header_timeout_ms),
        Duration::from_millis(l.body_timeout_ms),
    )
}

/// What a hostile connection does once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Trickles a request head that never ends, a byte a tick.
    Slow,
    /// Sends nothing.
    Idle,
    /// Sends a whole `POST` head with `Content-Length`, then a body byte every ten ticks.
    TrickleBody,
    /// Sends a whole `POST` head with `Content-Length`, then nothing.
    WithheldBody,
}

const SLOW_HEAD: &[u8] = b"GET /api/v1/health HTTP/1.1\r\nHost: plinth\r\n";
/// Repeated after [`SLOW_HEAD`]: the head never ends (and at a byte a tick would take
/// minutes to reach the head size limit).
const SLOW_FILLER: &[u8] = b"X-Slow: 1\r\n";
const BODY_HEAD: &[u8] = b"POST /api/v1/partitions HTTP/1.1\r\nHost: plinth\r\n\
    Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{";

/// How a hostile connection ended, as its client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    /// Answered 408: head not received in time.
    HeadTimeout,
    /// Answered 408: body not received in time.
    BodyTimeout,
    /// Answered with another status.
    Answered(u16),
    /// Closed without an answer: the runtime's FIN for a client silent past the head
    /// deadline or, through QEMU's user network, any end (QEMU passes a reset or a
    /// refusal on to the host's client as a close).
    Closed,
    /// Reset: admission made room.
    Reset,
    /// Still open when the attack stopped.
    Open,
}

/// What one group of hostile clients saw.
#[derive(Debug, Default)]
struct Tally {
    /// Connections established.
    opened: u32,
    /// Connection attempts that failed.
    refused: u32,
    /// How long each connection lasted from its connect, and how it ended.
    ends: Vec<(Duration, End)>,
}

impl Tally {
    fn longest(&self) -> Duration {
        self.ends.iter().map(|e| e.0).max().unwrap_or_default()
    }

    /// The median life of the connections the runtime ended.
    fn median_ended(&self) -> Duration {
        let mut lives: Vec<Duration> = self
            .ends
            .iter()
            .filter(|e| e.1 != End::Open)
            .map(|e| e.0)
            .collect();
        lives.sort();
        lives.get(lives.len() / 2).copied().unwrap_or_default()
    }

    fn count(&self, end: End) -> usize {
        self.ends.iter().filter(|e| e.1 == end).count()
    }

    fn summary(&self) -> String {
        let mut by: BTreeMap<End, usize> = BTreeMap::new();
        for (_, e) in &self.ends {
            *by.entry(*e).or_default() += 1;
        }
        format!(
            "{} opened, {} refused, median life {:.1?}, longest {:.1?}, ends {by:?}",
            self.opened,
            self.refused,
            self.median_ended(),
            self.longest()
        )
    }
}

/// Where the clients connect from and to.
struct Setting<'a> {
    name: &'static str,
    api: SocketAddr,
    /// Whether the clients reach the runtime directly, so a connection's life as a client
    /// sees it is its life in the runtime. Not so through QEMU's user network: the host's
    /// connect completes when the host queues the connection for QEMU, which under this
    /// load may take many seconds to accept it and open it to the runtime.
    direct: bool,
    /// Clients run in this namespace (their threads enter it).
    ns: Option<&'a NetNs>,
    /// Source addresses (`None`: the system's choice) of each kind of client.
    operator: Option<IpAddr>,
    crowd: Option<IpAddr>,
    idle: Option<IpAddr>,
    lone: Option<IpAddr>,
    body: Option<IpAddr>,
}

impl Setting<'_> {
    /// Called first on every client thread.
    fn enter(&self) {
        if let Some(ns) = self.ns {
            ns.enter()
                .unwrap_or_else(|e| panic!("entering namespace {}: {e}", ns.name));
        }
    }
}

/// A TCP connection from `from` (any local address if `None`).
fn connect(from: Option<IpAddr>, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(ip) = from {
        s.bind(&SocketAddr::new(ip, 0).into())?;
    }
    s.connect_timeout(&to.into(), timeout)?;
    let s = TcpStream::from(s);
    s.set_nodelay(true)?;
    Ok(s)
}

/// Whether a failed exchange may be tried again on a new connection: the runtime (or
/// QEMU's forward for it) refused or reset it, rather than left it unanswered.
fn refused(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
            | ErrorKind::NotConnected
    )
}

/// Longest a hostile client waits for its connection to be accepted.
const HOSTILE_CONNECT: Duration = Duration::from_secs(1);

/// One hostile connection. Connects without blocking, so that one client thread keeps
/// time for many connections (a blocked connect would make it late to see the others
/// cut off, and their lifetimes look longer than they were).
struct Hostile {
    kind: Kind,
    stream: TcpStream,
    /// Since the connect was started, until it completes; since it completed, after.
    since: Instant,
    connected: bool,
    sent: usize,
}

/// What one tick found.
enum Step {
    Alive,
    /// The connection was never established.
    Refused,
    Ended(End),
}

impl Hostile {
    fn start(from: Option<IpAddr>, to: SocketAddr, kind: Kind) -> std::io::Result<Hostile> {
        let s = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
        if let Some(ip) = from {
            s.bind(&SocketAddr::new(ip, 0).into())?;
        }
        s.set_nonblocking(true)?;
        match s.connect(&to.into()) {
            Err(e) if e.raw_os_error() != Some(libc::EINPROGRESS) => return Err(e),
            _ => {}
        }
        Ok(Hostile {
            kind,
            stream: s.into(),
            since: Instant::now(),
            connected: false,
            sent: 0,
        })
    }

    /// One tick: whether the connection was established, and how it ended if it did;
    /// otherwise its next bytes, if any.
    fn step(&mut self, tick: u64) -> Step {
        if !self.connected {
            if matches!(self.stream.take_error(), Ok(Some(_)) | Err(_)) {
                return Step::Refused;
            }
            if self.stream.peer_addr().is_err() {
                return if self.since.elapsed() > HOSTILE_CONNECT {
                    Step::Refused
                } else {
                    Step::Alive
                };
            }
            self.connected = true;
            self.since = Instant::now();
            if matches!(self.kind, Kind::TrickleBody | Kind::WithheldBody)
                && self.stream.write_all(BODY_HEAD).is_err()
            {
                return Step::Ended(End::Reset);
            }
        }
        let mut buf = [0u8; 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => return Step::Ended(End::Closed),
            Ok(n) => return Step::Ended(answer(&buf[..n])),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => return Step::Ended(End::Reset),
        }
        let byte =
            match self.kind {
                Kind::Slow => Some(SLOW_HEAD.get(self.sent).copied().unwrap_or_else(|| {
                    SLOW_FILLER[(self.sent - SLOW_HEAD.len()) % SLOW_FILLER.len()]
                })),
                Kind::TrickleBody if tick.is_multiple_of(10) => Some(b' '),
                _ => None,
            };
        if let Some(b) = byte {
            match self.stream.write(&[b]) {
                Ok(_) => self.sent += 1,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => return Step::Ended(End::Reset),
            }
        }
        Step::Alive
    }
}

/// What the runtime's first bytes to a hostile client were.
fn answer(bytes: &[u8]) -> End {
    let text = String::from_utf8_lossy(bytes);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    match status {
        408 if text.contains("head not received") => End::HeadTimeout,
        408 if text.contains("body not received") => End::BodyTimeout,
        s => End::Answered(s),
    }
}

/// Keeps one hostile connection of each kind in `kinds` open from `from`, opening a new
/// one whenever the runtime ends one, until `stop`.
fn crowd(s: &Setting, from: Option<IpAddr>, kinds: &[Kind], stop: &AtomicBool) -> Tally {
    s.enter();
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut conns: Vec<Option<Hostile>> = kinds.iter().map(|_| None).collect();
    let mut tick = 0u64;
    while !stop.load(Ordering::Relaxed) && started.elapsed() < HARD_STOP {
        for (slot, kind) in conns.iter_mut().zip(kinds) {
            let Some(h) = slot else {
                match Hostile::start(from, s.api, *kind) {
                    Ok(h) => *slot = Some(h),
                    Err(_) => tally.refused += 1,
                }
                continue;
            };
            let was_connected = h.connected;
            let step = h.step(tick);
            if !was_connected && h.connected {
                tally.opened += 1;
            }
            match step {
                Step::Alive => {}
                Step::Refused => {
                    tally.refused += 1;
                    *slot = None;
                }
                Step::Ended(end) => {
                    tally.ends.push((h.since.elapsed(), end));
                    *slot = None;
                }
            }
        }
        tick += 1;
        std::thread::sleep(TICK);
    }
    for h in conns.into_iter().flatten().filter(|h| h.connected) {
        tally.ends.push((h.since.elapsed(), End::Open));
    }
    tally
}

/// Opens connections from `from` as fast as it can during [`FLOOD`]: every other one is
/// dropped at once, the rest abandoned (open and silent) until newer ones push them out.
/// Every drop is a reset (linger 0), so the flood's own ports are not all stuck in
/// TIME-WAIT. Returns (attempts, connections established).
fn flood(s: &Setting, from: Option<IpAddr>, start: Instant, stop: &AtomicBool) -> (u32, u32) {
    s.enter();
    let (mut attempts, mut opened) = (0, 0);
    let mut abandoned = VecDeque::new();
    while start.elapsed() < FLOOD.0 && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    while start.elapsed() < FLOOD.1 && !stop.load(Ordering::Relaxed) {
        attempts += 1;
        let Ok(c) = connect(from, s.api, Duration::from_millis(100)) else {
            continue;
        };
        opened += 1;
        let _ = socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO));
        if opened % 2 == 0 {
            abandoned.push_back(c);
            if abandoned.len() > FLOOD_ABANDONED {
                abandoned.pop_front();
            }
        }
    }
    (attempts, opened)
}

/// One operator request and the status it must get.
struct Request {
    method: &'static str,
    path: String,
    body: Option<String>,
    want: u16,
}

/// The operator's requests: rounds of reads and one partition's life through the command
/// set (a partition with no agents needs nothing on disk).
fn script(rounds: usize) -> Vec<Request> {
    let req = |method, path: &str, body: Option<String>, want| Request {
        method,
        path: path.to_owned(),
        body,
        want,
    };
    let mut all = Vec::new();
    for r in 0..rounds {
        let name = format!("op{r}");
        all.extend([
            req("GET", "/api/v1/health", None, 200),
            req("GET", "/api/v1/status", None, 200),
            req("GET", "/api/v1/partitions", None, 200),
            req(
                "POST",
                "/api/v1/partitions",
                Some(format!(r#"{{"name":"{name}","memory_mib":1}}"#)),
                201,
            ),
            req("GET", &format!("/api/v1/partitions/{name}"), None, 200),
            req("DELETE", &format!("/api/v1/partitions/{name}"), None, 200),
            req("GET", "/metrics", None, 200),
        ]);
    }
    all
}

/// Why one attempt at an operator request failed.
struct Failure {
    /// Refused or reset: a new connection may be tried.
    retry: bool,
    what: String,
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure {
            retry: refused(e.kind()),
            what: e.to_string(),
        }
    }
}

/// One attempt: a new connection, the request, its answer's status.
fn exchange(s: &Setting, req: &Request, left: Duration) -> Result<u16, Failure> {
    let stream = connect(s.operator, s.api, left.min(OPERATOR_CONNECT)).map_err(|e| {
        let timed_out = matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock);
        Failure {
            retry: timed_out || refused(e.kind()),
            what: format!("connect: {e}"),
        }
    })?;
    stream.set_read_timeout(Some(left))?;
    stream.set_write_timeout(Some(left))?;
    let body = req.body.as_deref().unwrap_or_default();
    let mut out = format!(
        "{} {} HTTP/1.1\r\nHost: plinth\r\nConnection: close\r\n",
        req.method, req.path
    );
    if req.body.is_some() || req.method != "GET" {
        out.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    out.push_str("\r\n");
    out.push_str(body);
    (&stream).write_all(out.as_bytes())?;
    match read_response(&mut BufReader::new(stream), false) {
        Ok(r) => Ok(r.status),
        Err(ApiError::Io(e)) => Err(e.into()),
        // EOF before a status line: the forward's view of a refused or reset connection.
        Err(ApiError::Malformed(m)) if m.contains("before a response") => Err(Failure {
            retry: true,
            what: m,
        }),
        Err(e) => Err(Failure {
            retry: false,
            what: e.to_string(),
        }),
    }
}

/// An operator request that was answered as it should be.
struct Served {
    /// From the first connect to the answer.
    took: Duration,
    connections: u32,
}

/// An operator request, tried on new connections while it is refused, until answered or
/// [`OPERATOR_DEADLINE`].
fn operate(s: &Setting, req: &Request) -> Result<Served, String> {
    let started = Instant::now();
    let mut last = String::from("no attempt");
    for attempt in 1..=OPERATOR_ATTEMPTS {
        let Some(left) = OPERATOR_DEADLINE
            .checked_sub(started.elapsed())
            .filter(|d| !d.is_zero())
        else {
            break;
        };
        match exchange(s, req, left) {
            Ok(status) => {
                let took = started.elapsed();
                // A create whose first connection was reset may have been applied already.
                let repeated_create = attempt > 1 && req.method == "POST" && status == 409;
                return if took > OPERATOR_DEADLINE {
                    Err(format!("answered only after {took:.2?}"))
                } else if status == req.want || repeated_create {
                    Ok(Served {
                        took,
                        connections: attempt,
                    })
                } else {
                    Err(format!("answered {status}, want {}", req.want))
                };
            }
            Err(f) if f.retry => last = format!("attempt {attempt}: {}", f.what),
            Err(f) => {
                return Err(format!(
                    "attempt {attempt}: {} after {:.2?}",
                    f.what,
                    started.elapsed()
                ));
            }
        }
    }
    Err(format!(
        "not let in within {OPERATOR_DEADLINE:?} and {OPERATOR_ATTEMPTS} connections \
         ({last}, {:.2?})",
        started.elapsed()
    ))
}

/// Sets the flag when dropped, so the hostile clients stop even if the operator panics.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What one attack saw.
struct Outcome {
    /// Each request (`METHOD path`) and how it went.
    operator: Vec<(String, Result<Served, String>)>,
    slow: Tally,
    idle: Tally,
    lone: Tally,
    body: Tally,
    flood: (u32, u32),
    took: Duration,
}

/// Runs the hostile clients and the operator together; returns once all have stopped.
fn attack(s: &Setting) -> Outcome {
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (_, body_deadline) = deadlines();
    let stop = &stop;
    std::thread::scope(|sc| {
        let slow = sc.spawn(|| crowd(s, s.crowd, &[Kind::Slow; 24], stop));
        let idle = sc.spawn(|| crowd(s, s.idle, &[Kind::Idle; 12], stop));
        let lone = sc.spawn(|| crowd(s, s.lone, &[Kind::Slow], stop));
        let body = sc.spawn(|| crowd(s, s.body, &[Kind::TrickleBody, Kind::WithheldBody], stop));
        let flood = sc.spawn(|| flood(s, s.crowd, start, stop));
        let operator = sc.spawn(|| {
            let _stop = StopOnDrop(stop);
            s.enter();
            let mut results = Vec::new();
            for (i, req) in script(4).iter().enumerate() {
                let at = start + OPERATOR_START + OPERATOR_PACE * i as u32;
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                results.push((format!("{} {}", req.method, req.path), operate(s, req)));
            }
            // Long enough for a body client the crowds leave alone to meet its deadline.
            let until = start + body_deadline + NOTICE + TICK * 2;
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            results
        });
        let operator = operator.join().expect("operator thread");
        Outcome {
            operator,
            slow: slow.join().expect("slow clients"),
            idle: idle.join().expect("idle clients"),
            lone: lone.join().expect("lone slow client"),
            body: body.join().expect("body clients"),
            flood: flood.join().expect("flood"),
            took: start.elapsed(),
        }
    })
}

/// `GET path` from the operator's side once the attack is over.
fn get_after(s: &Setting, path: &str) -> Result<api::Response, ApiError> {
    std::thread::scope(|sc| {
        sc.spawn(|| {
            s.enter();
            api::get(s.api, path, Duration::from_secs(10))
        })
        .join()
        .expect("client thread")
    })
}

/// Runs the attack, prints what it saw and checks it.
fn check(rt: &mut Runtime, s: &Setting) {
    let o = attack(s);
    let (head_deadline, body_deadline) = deadlines();

    let mut latencies: Vec<Duration> = o
        .operator
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().map(|r| r.took))
        .collect();
    latencies.sort();
    let retried = o
        .operator
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|r| r.connections > 1))
        .count();
    let pct = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "[{}] attack {:.1?}; operator {} of {} answered, median {:.1?}, p90 {:.1?}, max {:.1?}, \
         {retried} needed more than one connection",
        s.name,
        o.took,
        latencies.len(),
        o.operator.len(),
        pct(50),
        pct(90),
        latencies.last().copied().unwrap_or_default(),
    );
    println!("[{}] slow crowd: {}", s.name, o.slow.summary());
    println!("[{}] idle: {}", s.name, o.idle.summary());
    println!("[{}] lone slow: {}", s.name, o.lone.summary());
    println!("[{}] body: {}", s.name, o.body.summary());
    println!(
        "[{}] flood: {} attempts, {} connected",
        s.name, o.flood.0, o.flood.1
    );

    let mut failures: Vec<String> = o
        .operator
        .iter()
        .filter_map(|(what, r)| r.as_ref().err().map(|e| format!("operator {what}: {e}")))
        .collect();

    // Throttled: the runtime ended the hostile connections, and none outlived its
    // deadline (a connection still open at the end counts with its age). Through QEMU's
    // user network only the typical life says something about the runtime (see
    // `Setting::direct`).
    let hostile = [
        ("slow crowd", &o.slow, head_deadline),
        ("idle", &o.idle, head_deadline),
        ("lone slow", &o.lone, head_deadline),
        ("body", &o.body, body_deadline),
    ];
    // Through QEMU's user network a kind of client can sit in QEMU the whole attack, its
    // host connect done and never opened to the runtime (seen for all 12 idle clients
    // behind 400 of the slow crowd, in about one run in five): there, the runtime must
    // have ended the hostile connections it was given, of whichever kind.
    if !s.direct
        && hostile
            .iter()
            .all(|(_, t, _)| t.ends.iter().all(|e| e.1 == End::Open))
    {
        failures.push("the runtime ended none of the hostile connections".into());
    }
    for (name, tally, deadline) in hostile {
        if s.direct && tally.ends.iter().all(|e| e.1 == End::Open) {
            failures.push(format!("{name}: the runtime ended none of its connections"));
        }
        if s.direct && tally.longest() > deadline + NOTICE {
            failures.push(format!(
                "{name}: a connection lasted {:.1?}, deadline {deadline:?}",
                tally.longest()
            ));
        }
        if tally.median_ended() > deadline + NOTICE {
            failures.push(format!(
                "{name}: connections typically lasted {:.1?}, deadline {deadline:?}",
                tally.median_ended()
            ));
        }
    }
    if o.flood.1 == 0 {
        failures.push("flood: not one connection".into());
    }
    if s.lone.is_some() && s.body.is_some() {
        // Peers of their own: the crowded peers are the ones trimmed, so the lone clients
        // live to meet the deadlines.
        if o.lone.count(End::HeadTimeout) == 0 {
            failures.push(format!(
                "lone slow client never answered 408 (head): {}",
                o.lone.summary()
            ));
        }
        if o.body.count(End::BodyTimeout) == 0 {
            failures.push(format!(
                "body clients never answered 408 (body): {}",
                o.body.summary()
            ));
        }
    }

    // Healthy afterwards, and admission did the work.
    match get_after(s, "/api/v1/health") {
        Ok(r) if r.status == 200 => {}
        other => failures.push(format!("health after the attack: {other:?}")),
    }
    match get_after(s, "/metrics") {
        Ok(r) => {
            let text = r.text();
            let resets = text
                .lines()
                .find_map(|l| l.strip_prefix("plinth_api_connections_reset_total "))
                .and_then(|v| v.trim().parse::<f64>().ok());
            println!("[{}] plinth_api_connections_reset_total {resets:?}", s.name);
            if !resets.is_some_and(|n| n > 0.0) {
                failures.push(format!("no connection reset by admission: {resets:?}"));
            }
        }
        Err(e) => failures.push(format!("metrics after the attack: {e}")),
    }
    let t = rt.transcript();
    if t.contains("PANIC") || t.contains("panicked") {
        failures.push("the runtime panicked".into());
    }
    assert!(
        failures.is_empty(),
        "[{}]\n{}\n--- serial transcript ---\n{t}",
        s.name,
        failures.join("\n")
    );
}

#[test]
fn slow_idle_and_flooding_clients_from_one_address_do_not_lock_the_operator_out() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut rt = Boot {
        nic: true,
        ..Boot::default()
    }
    .start();
    rt.expect_ready();
    let api = rt.expect_api();
    let s = Setting {
        name: "user network",
        api,
        direct: false,
        ns: None,
        operator: None,
        crowd: None,
        idle: None,
        lone: None,
        body: None,
    };
    check(&mut rt, &s);
    rt.shutdown();
}

#[test]
fn attackers_with_addresses_of_their_own_are_capped_and_the_operator_gets_in() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const RUNTIME_IP: &str = "192.168.77.2";
    let ns = NetNs::create();
    let mut rt = Boot {
        append: format!("ip={RUNTIME_IP}/24"),
        netns: ns.attach(),
        ..Boot::default()
    }
    .start();
    ns.configure();
    // One address per kind of attacker; the operator keeps the segment's first.
    let [crowd, idle, lone, body] = [
        "192.168.77.3",
        "192.168.77.4",
        "192.168.77.5",
        "192.168.77.6",
    ];
    for ip in [crowd, idle, lone, body] {
        ns.add_address(ip);
    }
    rt.expect_ready();
    rt.expect_line("api: listening");
    let ip = |a: &str| Some(a.parse::<IpAddr>().unwrap());
    let s = Setting {
        name: "namespace",
        api: SocketAddr::new(RUNTIME_IP.parse().unwrap(), 8080),
        direct: true,
        ns: Some(&ns),
        operator: ip(NETNS_HOST_IP),
        crowd: ip(crowd),
        idle: ip(idle),
        lone: ip(lone),
        body: ip(body),
    };
    // The API answers over the segment before the attack starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !get_after(&s, "/api/v1/health").is_ok_and(|r| r.status == 200) {
        assert!(Instant::now() < deadline, "no API over the segment");
        std::thread::sleep(Duration::from_millis(200));
    }
    check(&mut rt, &s);
    rt.shutdown();
}
