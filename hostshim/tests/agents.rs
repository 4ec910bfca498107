//! The example agents, run on the host backend as ordinary processes.
//!
//! `cargo test -p hostshim` builds the examples next to this test's binary; each test
//! gives an agent its own directory, config, disk and quota, and checks what it logs and
//! how it ends. Agents that never exit are killed once they have said what was expected.
#![cfg(feature = "host")]

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Signal numbers on Linux x86_64.
const SIGILL: i32 = 4;
const SIGKILL: i32 = 9;
const SIGBUS: i32 = 7;
const SIGSEGV: i32 = 11;

/// How long an agent may take to log the line a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("hostshim-agent-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        Scratch(dir)
    }

    fn config(&self, name: &str, text: &str) -> &Scratch {
        std::fs::write(self.0.join("etc").join(name), text).unwrap();
        self
    }

    /// Starts example `agent` in this directory, with `env` on top of a clean PLINTH_*
    /// environment (no disk unless given).
    fn spawn(&self, agent: &str, env: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new(example(agent));
        cmd.env("PLINTH_AGENT_DIR", &self.0)
            .env("PLINTH_DISK", "")
            .env_remove("PLINTH_MEMORY_QUOTA")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The host build of example `name`: `target/<profile>/examples/<name>`, next to `deps/`
/// where this test runs from.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let path = profile_dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo test -p hostshim`, which builds the examples",
        path.display()
    );
    path
}

/// Reads the agent's stderr until a line contains `until` (then kills it) or it exits;
/// returns every line and how it ended.
fn run(child: Child, until: Option<&str>) -> (Vec<String>, ExitStatus) {
    run_until_nth(child, until, 1)
}

/// [`run`], killing the agent at the `n`th line containing `until`.
fn run_until_nth(mut child: Child, until: Option<&str>, n: usize) -> (Vec<String>, ExitStatus) {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut seen = 0;
    loop {
        match rx.recv_timeout(PATIENCE) {
            Ok(line) => {
                seen += usize::from(until.is_some_and(|u| line.contains(u)));
                let done = seen == n;
                lines.push(line);
                if done {
                    child.kill().unwrap();
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                child.kill().unwrap();
                panic!(
                    "agent went quiet waiting for {until:?}; it said:\n{}",
                    lines.join("\n")
                );
            }
        }
    }
    let status = child.wait().unwrap();
    (lines, status)
}

fn has(lines: &[String], text: &str) -> bool {
    lines.iter().any(|l| l.contains(text))
}

#[test]
fn hello_greets_beats_and_exits_after_the_configured_beats() {
    let s = Scratch::new("hello");
    s.config(
        "hello.toml",
        "name = \"test\"\ngreeting = \"hi there\"\ninterval_ms = 1\nbeats = 3\n",
    );
    let (lines, status) = run(s.spawn("hello", &[]), None);
    assert_eq!(status.code(), Some(0), "{lines:#?}");
    assert_eq!(lines[0], "[agent] hello from test: hi there");
    for n in 1..=3 {
        assert!(
            has(&lines, &format!("[agent] hello: heartbeat {n}")),
            "{lines:#?}"
        );
    }
    assert!(!has(&lines, "heartbeat 4"), "{lines:#?}");
}

#[test]
fn hello_without_config_uses_defaults_and_keeps_going() {
    let s = Scratch::new("hello-default");
    let (lines, status) = run(s.spawn("hello", &[]), Some("hello: heartbeat 1"));
    assert_eq!(status.signal(), Some(SIGKILL), "{lines:#?}");
    assert!(
        lines[0].contains("cannot read etc/hello.toml (not found)"),
        "{lines:#?}"
    );
    assert_eq!(lines[1], "[agent] hello from hello: hello, world");
}

#[test]
fn scrubber_verifies_a_pass_and_needs_a_disk() {
    let s = Scratch::new("scrubber");
    let disk = s.0.join("disk.img");
    // 300 sectors: two whole 64 KiB transfers and a partial one.
    std::fs::write(&disk, vec![0u8; 300 * 512]).unwrap();
    let (lines, _) = run(
        s.spawn("scrubber", &[("PLINTH_DISK", disk.to_str().unwrap())]),
        Some("scrubber: pass 1"),
    );
    assert!(
        has(&lines, "scrubber: pass 1 verified 300 sectors"),
        "{lines:#?}"
    );

    let (lines, status) = run(s.spawn("scrubber", &[]), None);
    assert_eq!(status.code(), Some(2), "{lines:#?}");
    assert!(has(&lines, "scrubber: no data disk"), "{lines:#?}");
}

#[test]
fn spinner_reports_cumulative_loops_with_its_clock() {
    let s = Scratch::new("spinner");
    let (lines, _) = run_until_nth(s.spawn("spinner", &[]), Some(" loops by "), 3);
    // `[agent] spinner: N loops by T ns, median batch M ns`: what the CPU-share tests read.
    let report = |l: &str| -> Option<(u64, u64, u64)> {
        let rest = l.strip_prefix("[agent] spinner: ")?;
        let (n, rest) = rest.split_once(" loops by ")?;
        let (t, rest) = rest.split_once(" ns, median batch ")?;
        let m = rest.strip_suffix(" ns")?;
        Some((n.parse().ok()?, t.parse().ok()?, m.parse().ok()?))
    };
    // The host backend also notes each heartbeat (`[hostshim] heartbeat N`).
    let reports: Vec<(u64, u64, u64)> = lines
        .iter()
        .filter(|l| !l.starts_with("[hostshim] heartbeat "))
        .map(|l| report(l).unwrap_or_else(|| panic!("not a report: {l:?}")))
        .collect();
    assert_eq!(reports.len(), 3, "{lines:#?}");
    for w in reports.windows(2) {
        let ((n0, t0, _), (n1, t1, median)) = (w[0], w[1]);
        // Whole batches of 2^20, never fewer than one between reports.
        assert!(n1 > n0 && n1 % (1 << 20) == 0, "{lines:#?}");
        // A quarter of a second apart at least (its own clock).
        assert!(t1 - t0 >= 250_000_000, "{lines:#?}");
        // Nothing else runs in the process: the batches fill the time between reports,
        // so their count times the median comes to about that time (within a factor of
        // two either way, for a busy host's preemptions).
        let ran = (n1 - n0) / (1 << 20) * median;
        assert!(ran <= 2 * (t1 - t0) && 2 * ran >= t1 - t0, "{lines:#?}");
    }
}

#[test]
fn hostile_bad_syscalls_are_all_errors() {
    let s = Scratch::new("hostile-calls");
    let (lines, _) = run(s.spawn("hostile", &[]), Some("bad-syscalls done"));
    let cases: Vec<_> = lines.iter().filter(|l| l.contains(" -> ")).collect();
    assert_eq!(cases.len(), 14, "{lines:#?}");
    assert!(!has(&lines, "NOT AN ERROR"), "{lines:#?}");
    assert!(
        has(&lines, "hostile: unknown-max -> -1 (unknown system call)"),
        "{lines:#?}"
    );
    assert!(
        has(&lines, "hostile: mem-grow-zero -> -10 (invalid argument)"),
        "{lines:#?}"
    );
}

#[test]
fn hostile_memory_is_capped_by_the_quota() {
    let s = Scratch::new("hostile-memory");
    s.config("hostile.toml", "mode = \"exhaust-memory\"\n");
    let quota = [("PLINTH_MEMORY_QUOTA", "0x80_0000")];
    let (lines, _) = run(s.spawn("hostile", &quota), Some("quota enforced"));
    assert!(
        has(&lines, "hostile: quota enforced after 8 MiB"),
        "{lines:#?}"
    );
}

#[test]
fn hostile_exits_and_faults_as_configured() {
    let s = Scratch::new("hostile-modes");
    for (mode, code, signal) in [
        ("crash", Some(1), None),
        ("no-such-mode", Some(2), None),
        ("read-other", Some(2), None), // no `address`
        ("null-deref", None, Some(SIGSEGV)),
        ("write-kernel", None, Some(SIGSEGV)),
        ("invalid-opcode", None, Some(SIGILL)),
    ] {
        s.config("hostile.toml", &format!("mode = \"{mode}\"\n"));
        let (lines, status) = run(s.spawn("hostile", &[]), None);
        assert_eq!(
            (status.code(), status.signal()),
            (code, signal),
            "{mode}: {lines:#?}"
        );
    }
    // A non-canonical address is #GP, which Linux reports as SIGSEGV or SIGBUS.
    s.config("hostile.toml", "mode = \"gp\"\n");
    let (lines, status) = run(s.spawn("hostile", &[]), None);
    assert!(
        matches!(status.signal(), Some(SIGSEGV | SIGBUS)),
        "{status:?}: {lines:#?}"
    );
}

/// A running agent whose log is read as it goes; killed when dropped.
struct Live {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Live {
    fn new(mut child: Child) -> Live {
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Live {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `text` (seen already, or coming); `None` if the agent
    /// ended first.
    fn wait_for(&mut self, text: &str) -> Option<String> {
        if let Some(l) = self.seen.iter().find(|l| l.contains(text)) {
            return Some(l.clone());
        }
        loop {
            match self.lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return Some(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!(
                        "agent went quiet waiting for {text:?}:\n{}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `echo` in `s` on ports shifted by some offset that is free (tests run in
/// parallel with other processes); returns it, up, and the offset.
fn echo_up(s: &Scratch) -> (Live, u16) {
    let first = 20_000 + (std::process::id() % 400) as u16 * 100;
    for attempt in 0..10 {
        let offset = first.wrapping_add(attempt * 4_100) % 40_000 + 20_000;
        let mut live =
            Live::new(s.spawn("echo", &[("PLINTH_NET_PORT_OFFSET", &offset.to_string())]));
        if live.wait_for("echo: up ").is_some() {
            return (live, offset);
        }
        assert!(
            live.seen.iter().any(|l| l.contains("cannot listen")),
            "{:#?}",
            live.seen
        );
    }
    panic!("no free ports for echo");
}

fn connect(port: u16) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s
}

/// One HTTP exchange: sends `request`, reads until the agent closes.
fn http(port: u16, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = connect(port);
    s.write_all(request).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn echo_serves_its_four_ports_and_survives_bad_clients() {
    use std::io::{Read, Write};
    let s = Scratch::new("echo");
    let (mut live, offset) = echo_up(&s);
    let up = live.wait_for("echo: up ").unwrap();
    assert_eq!(up, "[agent] echo: up 127.0.0.1/8 mac 02:00:00:00:00:01");
    let port = |p: u16| offset + p;

    // Echo: a line, then 200 KB written while it is read back.
    let mut e = connect(port(7));
    e.write_all(b"hello, echo\n").unwrap();
    let mut back = [0u8; 12];
    e.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"hello, echo\n");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut writer = e.try_clone().unwrap();
    let sent = data.clone();
    let w = std::thread::spawn(move || writer.write_all(&sent).unwrap());
    let mut echoed = vec![0u8; data.len()];
    e.read_exact(&mut echoed).unwrap();
    w.join().unwrap();
    assert!(echoed == data, "echo altered the stream");
    drop(e);

    // Who am I, and what is not a good request.
    let ok = http(port(80), b"GET / HTTP/1.1\r\nHost: echo\r\n\r\n");
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    let body = ok.split("\r\n\r\n").nth(1).unwrap();
    for field in [
        "{\"agent\":\"echo\"",
        "\"mac\":\"02:00:00:00:00:01\"",
        "\"ip\":\"127.0.0.1/8\"",
        "\"rx_frames\":0",
    ] {
        assert!(body.contains(field), "{body}");
    }
    let length = format!("Content-Length: {}\r\n", body.len());
    assert!(ok.contains(&length), "{ok}");
    assert!(http(port(80), b"GET /x HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 404 "));
    assert!(http(port(80), b"POST / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
    for garbage in [
        &b"\x00\xff\xfe garbage\r\n\r\n"[..],
        b"GET /\r\n\r\n",
        b"x\n\n",
    ] {
        let r = http(port(80), garbage);
        assert!(r.starts_with("HTTP/1.1 400 "), "{garbage:?}: {r}");
    }
    // A request that never ends is cut at 2 KiB.
    let r = http(port(80), &[b'a'; 5000]);
    assert!(r.starts_with("HTTP/1.1 400 "), "{r}");

    // Clients vanishing: mid-echo without reading, mid-chargen (a reset), mid-request.
    let mut e = connect(port(7));
    e.write_all(&[7u8; 100_000]).unwrap_or_default();
    drop(e);
    let mut c = connect(port(19));
    let mut some = [0u8; 1000];
    c.read_exact(&mut some).unwrap();
    drop(c);
    let mut h = connect(port(80));
    h.write_all(b"GET / HT").unwrap();
    drop(h);
    live.wait_for("echo: chargen ").unwrap();

    // Discard counts every byte.
    let mut d = connect(port(9));
    d.write_all(&vec![0u8; 1 << 20]).unwrap();
    drop(d);
    let line = live.wait_for("echo: discard ").unwrap();
    assert!(line.contains("echo: discard 1048576 bytes in "), "{line}");

    // Chargen: RFC 864 lines, the first starting at the space.
    let mut c = connect(port(19));
    let mut lines = vec![0u8; 2 * 74];
    c.read_exact(&mut lines).unwrap();
    let first: Vec<u8> = (0..72).map(|i| b' ' + i).collect();
    assert_eq!(&lines[..72], &first[..]);
    assert_eq!(&lines[72..74], b"\r\n");
    assert_eq!(lines[74], b'!');
    drop(c);

    // Still alive and serving after all that.
    assert!(live.child.try_wait().unwrap().is_none(), "{:#?}", live.seen);
    let again = http(port(80), b"GET / HTTP/1.0\r\n\r\n");
    assert!(again.starts_with("HTTP/1.1 200 OK"), "{again}");
    assert!(again.contains("\"accepted\":"), "{again}");
}

#[test]
fn echo_probes_another_echo_over_udp_and_gives_up_on_silence() {
    let a = Scratch::new("echo-probed");
    let (mut server, a_offset) = echo_up(&a);
    let to = format!("127.0.0.1:{}", a_offset + 7);
    let b = Scratch::new("echo-prober");
    b.config("echo.toml", &format!("probe = \"{to}\"\n"));
    let (mut prober, b_offset) = echo_up(&b);
    let ok = prober.wait_for("echo: probe ").unwrap();
    assert!(ok.contains(&format!("echo: probe {to} ok after ")), "{ok}");
    // The server saw the probe, from the prober's probe port, and counts what it echoed.
    let from = format!(
        "echo: udp echo to 127.0.0.1:{}: probe from 02:",
        b_offset + 1007
    );
    let echoed = server.wait_for("echo: udp echo to ").unwrap();
    assert!(echoed.contains(&from), "{echoed}");
    let who = http(a_offset + 80, b"GET / HTTP/1.0\r\n\r\n");
    assert!(!who.contains("\"udp_echoed\":0"), "{who}");
    assert!(who.contains("\"udp_echoed\":"), "{who}");

    // A socket that never answers: a failure once the timeout has passed.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = silent.local_addr().unwrap().to_string();
    let c = Scratch::new("echo-unanswered");
    c.config(
        "echo.toml",
        &format!("probe = \"{to}\"\nprobe_timeout_ms = 300\n"),
    );
    let (mut prober, _) = echo_up(&c);
    let failed = prober.wait_for("echo: probe ").unwrap();
    assert!(
        failed.contains(&format!("echo: probe {to} failed: no answer in 300 ms")),
        "{failed}"
    );
    // It did ask.
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = silent.recv_from(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"probe from 02:"), "{:?}", &buf[..n]);
}

#[test]
fn echo_refuses_a_bad_address_config() {
    let s = Scratch::new("echo-config");
    for (text, says) in [
        (
            "address = \"10.1.1.0/24\"\n",
            "not a network or broadcast address",
        ),
        (
            "address = \"10.1.1.5/24\"\ngateway = \"10.9.9.9\"\n",
            "gateway is not on",
        ),
        (
            "address = \"dhcp\"\ngateway = \"10.1.1.1\"\n",
            "a gateway needs a static address",
        ),
        ("probe = \"10.1.1.12\"\n", "probe must be ADDRESS:PORT"),
    ] {
        s.config("echo.toml", text);
        let (lines, status) = run(s.spawn("echo", &[]), None);
        assert_eq!(status.code(), Some(2), "{text}: {lines:#?}");
        assert!(has(&lines, "echo: etc/echo.toml: "), "{lines:#?}");
        assert!(has(&lines, says), "{lines:#?}");
    }
}
