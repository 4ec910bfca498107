//! A running QEMU with the runtime inside: serial captured line by line with arrival
//! times, input written to the console, and an exit that is always reaped.
//!
//! Dropping a [`Machine`] kills QEMU, so no test or command can leave one behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use plinth_exit::ExitCode;

use crate::profile::{LaunchOptions, Profile};

/// The line the runtime prints once when initialisation is done.
pub const READY_PREFIX: &str = "plinth: ready";

/// One line of serial output and when the host received it.
#[derive(Clone, Debug)]
pub struct Line {
    pub at: Instant,
    pub text: String,
}

/// How QEMU ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The runtime wrote this code to the debug-exit port.
    Runtime(ExitCode),
    /// QEMU ended for another reason (its own error, a triple fault with -no-reboot, a signal).
    Other(Option<i32>),
}

impl Outcome {
    fn from_status(s: ExitStatus) -> Outcome {
        match s.code().and_then(ExitCode::from_qemu_status) {
            Some(c) => Outcome::Runtime(c),
            None => Outcome::Other(s.code()),
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Runtime(c) => write!(
                f,
                "runtime exit `{}` (QEMU status {})",
                c.name(),
                c.qemu_status()
            ),
            Outcome::Other(Some(c)) => {
                write!(f, "QEMU exited with status {c} (not a runtime exit code)")
            }
            Outcome::Other(None) => write!(f, "QEMU was killed by a signal"),
        }
    }
}

/// Why waiting failed.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("no matching line within {0:?}")]
    Timeout(Duration),
    #[error("QEMU ended before a matching line: {0}")]
    Ended(Outcome),
    #[error("writing to the console failed: {0}")]
    Input(std::io::Error),
    #[error(transparent)]
    Profile(crate::profile::ProfileError),
}

/// utime + stime from a `/proc/PID/stat` line, in clock ticks.
fn proc_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // Fields after the command name, which is parenthesised and may hold spaces and `)`.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    utime.checked_add(stime)
}

/// A QEMU process running the runtime.
pub struct Machine {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Line>,
    transcript: Vec<Line>,
    /// Lines received but not yet consumed by a `wait_for`.
    cursor: usize,
    stderr: Arc<Mutex<String>>,
    pub launched_at: Instant,
    outcome: Option<Outcome>,
}

impl Machine {
    /// Starts QEMU from `profile`. With `echo`, serial lines are also printed to stdout.
    pub fn launch(
        profile: &Profile,
        opts: &LaunchOptions,
        echo: bool,
    ) -> Result<Machine, MachineError> {
        let mut cmd: Command = profile.command(opts).map_err(MachineError::Profile)?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let launched_at = Instant::now();
        let mut child = cmd.spawn().map_err(|source| MachineError::Spawn {
            binary: profile.binary.clone(),
            source,
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let at = Instant::now();
                        let text = String::from_utf8_lossy(&buf)
                            .trim_end_matches(['\n', '\r'])
                            .to_owned();
                        if echo {
                            println!("{text}");
                        }
                        if tx.send(Line { at, text }).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let err_text = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&err_text);
        thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut s);
            if let Ok(mut e) = sink.lock() {
                e.push_str(&s);
            }
        });
        let stdin = child.stdin.take();
        Ok(Machine {
            child,
            stdin,
            lines: rx,
            transcript: Vec::new(),
            cursor: 0,
            stderr: err_text,
            launched_at,
            outcome: None,
        })
    }

    /// The QEMU process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time QEMU has used so far (user + system, all threads), from
    /// `/proc/PID/stat`; `None` where that is unavailable (not Linux, process gone).
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // /proc counts in USER_HZ, which is 100 on x86_64 Linux whatever the kernel's HZ.
        Some(Duration::from_millis(proc_stat_cpu_ticks(&stat)? * 10))
    }

    /// Waits for the next line (after those already consumed) matching `pred`.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<Line, MachineError> {
        let deadline = Instant::now() + timeout;
        loop {
            while self.cursor < self.transcript.len() {
                let line = &self.transcript[self.cursor];
                self.cursor += 1;
                if pred(&line.text) {
                    return Ok(line.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.transcript.push(line),
                Err(RecvTimeoutError::Timeout) => return Err(MachineError::Timeout(timeout)),
                Err(RecvTimeoutError::Disconnected) => {
                    let outcome = self.wait_exit(Duration::from_secs(5));
                    return Err(MachineError::Ended(outcome));
                }
            }
        }
    }

    /// Waits for the line starting `plinth: ready`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Line, MachineError> {
        self.wait_for(timeout, |l| l.starts_with(READY_PREFIX))
    }

    /// Types a line on the runtime's console.
    pub fn send_line(&mut self, line: &str) -> Result<(), MachineError> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| MachineError::Input(std::io::ErrorKind::BrokenPipe.into()))?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(MachineError::Input)
    }

    /// Closes the console input (as a user's end-of-file would).
    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    /// Waits for QEMU to end, killing it after `timeout`. Collects remaining output.
    pub fn wait_exit(&mut self, timeout: Duration) -> Outcome {
        if let Some(o) = self.outcome {
            return o;
        }
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                _ => break None,
            }
        };
        let outcome = match status {
            Some(s) => Outcome::from_status(s),
            None => {
                let _ = self.child.kill();
                Outcome::from_status(self.child.wait().unwrap_or_else(|_| killed_status()))
            }
        };
        // The reader thread ends at EOF; drain what it already read.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.transcript.push(line);
        }
        self.outcome = Some(outcome);
        outcome
    }

    /// Everything received so far, one line each.
    pub fn transcript(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.transcript.push(line);
        }
        let mut s: String = self
            .transcript
            .iter()
            .map(|l| format!("{}\n", l.text))
            .collect();
        let err = self.stderr.lock().map(|e| e.clone()).unwrap_or_default();
        if !err.is_empty() {
            s.push_str("--- QEMU stderr ---\n");
            s.push_str(&err);
        }
        s
    }

    /// All lines received so far (consumed or not).
    pub fn lines(&mut self) -> &[Line] {
        while let Ok(line) = self.lines.try_recv() {
            self.transcript.push(line);
        }
        &self.transcript
    }

    /// How QEMU ended, if it has; never blocks.
    pub fn try_outcome(&mut self) -> Option<Outcome> {
        if self.outcome.is_none()
            && let Ok(Some(_)) = self.child.try_wait()
        {
            return Some(self.wait_exit(Duration::from_secs(1)));
        }
        self.outcome
    }

    /// Stops QEMU now.
    pub fn kill(&mut self) {
        if self.outcome.is_none() {
            let _ = self.child.kill();
            let status = self.child.wait().unwrap_or_else(|_| killed_status());
            self.outcome = Some(Outcome::from_status(status));
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
    }
}

fn killed_status() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(9)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_ticks_come_from_utime_and_stime() {
        let line =
            "4242 (qemu (x) sys) S 1 4242 4242 0 -1 4194560 5000 0 0 0 731 122 0 0 20 0 3 0 99 0 0";
        assert_eq!(super::proc_stat_cpu_ticks(line), Some(853));
        assert_eq!(super::proc_stat_cpu_ticks("4242 (qemu) S 1 2"), None);
        assert_eq!(super::proc_stat_cpu_ticks("garbage"), None);
    }
}
