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
