//! Capturing the frames that cross one interface of a lab, VLAN tags included.
//!
//! The capture is a small host program, `tapcap` (`tools/lab/tapcap.c`, compiled once
//! with [`static_program`]), run inside the lab's namespace: this crate has no unsafe
//! code, and an `AF_PACKET` socket with its ancillary data needs some. Linux moves a
//! received frame's 802.1Q tag out of the frame before packet sockets see it, so
//! `tapcap` reads it back from `PACKET_AUXDATA` (`tp_vlan_tci` when
//! `TP_STATUS_VLAN_VALID`); a frame whose tag is still in its bytes is read from there.
//!
//! Owns: starting and stopping `tapcap`, and reading its lines into [`Frame`]s. Must
//! not: change the interface (no promiscuous mode, no filters): a tap already sees every
//! frame to and from its guest.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::LabError;
use crate::linux_guest::static_program;

/// `tapcap`'s source.
pub const TAPCAP_SOURCE: &str = include_str!("../../lab/tapcap.c");
/// Longest wait for `tapcap` to start or to finish after it is told to stop.
const TAPCAP_TIMEOUT: Duration = Duration::from_secs(10);

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// Which way a frame crossed the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The interface received it: on a tap, the guest behind it sent it.
    Received,
    /// The interface sent it: on a tap, it went to the guest.
    Sent,
}

/// One captured frame's Ethernet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub direction: Direction,
    /// The 802.1Q VLAN ID, `None` for an untagged frame.
    pub vid: Option<u16>,
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// The payload's EtherType (inside the tag, for a tagged frame).
    pub ethertype: u16,
    /// The frame's length on the wire, tag included, FCS not.
    pub len: usize,
    /// When the host's kernel took it: nanoseconds since the Unix epoch (CLOCK_REALTIME,
    /// as [`std::time::SystemTime`] reads it).
    pub at_ns: u64,
}

impl Frame {
    /// A `tapcap` frame line: `f DIR VID LEN DST SRC ETHERTYPE TIME`.
    pub fn parse(line: &str) -> Option<Frame> {
        let mut f = line.split_whitespace();
        if f.next()? != "f" {
            return None;
        }
        let direction = match f.next()? {
            "r" => Direction::Received,
            "s" => Direction::Sent,
            _ => return None,
        };
        let vid = match f.next()? {
            "-" => None,
            v => Some(v.parse::<u16>().ok().filter(|v| *v < 4096)?),
        };
        let len = f.next()?.parse().ok()?;
        let dst = mac(f.next()?)?;
        let src = mac(f.next()?)?;
        let ethertype = f.next().filter(|t| t.len() == 4)?;
        let ethertype = u16::from_str_radix(ethertype, 16).ok()?;
        let at_ns = f.next()?.parse().ok()?;
        if f.next().is_some() {
            return None;
        }
        Some(Frame {
            direction,
            vid,
            dst,
            src,
            ethertype,
            len,
            at_ns,
        })
    }

    /// Whether it went to every station (ff:ff:ff:ff:ff:ff).
    pub fn is_broadcast(&self) -> bool {
        self.dst == [0xff; 6]
    }
}

/// 12 hex digits.
fn mac(hex: &str) -> Option<[u8; 6]> {
    if hex.len() != 12 || !hex.is_ascii() {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, b) in m.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(m)
}

/// `tapcap: end frames=N drops=N` → (frames, drops).
fn parse_end(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("tapcap: end ")?;
    let field = |key: &str| -> Option<u64> {
        rest.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some((field("frames")?, field("drops")?))
}

/// A running capture (see [`crate::lab::Lab::capture`]). Dropping it without
/// [`Capture::stop`] kills `tapcap`.
pub struct Capture {
    tap: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Capture {
    pub(crate) fn start(netns: &str, tap: &str) -> Result<Capture, LabError> {
        let fail = |what: String| LabError::Capture {
            tap: tap.to_owned(),
            what,
        };
        let program = static_program("tapcap", TAPCAP_SOURCE)?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(&program)
            .arg(tap)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", program.display())))?;
        let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail("no pipes to tapcap".into()));
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let c = Capture {
            tap: tap.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines: rx,
            stderr: Some(stderr),
        };
        match c.lines.recv_timeout(TAPCAP_TIMEOUT) {
            Ok(l) if l.starts_with("tapcap: ready ") => Ok(c),
            Ok(l) => Err(c.fail(format!("unexpected first line {l:?}"))),
            Err(RecvTimeoutError::Timeout) => {
                Err(c.fail(format!("not ready within {TAPCAP_TIMEOUT:?}")))
            }
            Err(RecvTimeoutError::Disconnected) => Err(c.fail("tapcap ended".into())),
        }
    }

    /// Kills `tapcap` and makes an error of `what` and its stderr.
    fn fail(mut self, what: String) -> LabError {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (_, stderr) = self.finish();
        LabError::Capture {
            tap: self.tap.clone(),
            what: format!("{what}; tapcap said: {}", stderr.trim()),
        }
    }

    /// Remaining stdout lines and stderr, once `tapcap` has ended.
    fn finish(&mut self) -> (Vec<String>, String) {
        let lines: Vec<String> = self.lines.try_iter().collect();
        let stderr = self.stderr.take().and_then(|h| h.join().ok());
        (lines, stderr.unwrap_or_default())
    }

    /// Stops the capture and returns every frame that crossed the interface since it
    /// started, in order. Frames still on their way when it is called may be missed:
    /// stop after the traffic of interest is over. An error if the kernel dropped any.
    pub fn stop(mut self) -> Result<Vec<Frame>, LabError> {
        if let Some(mut stdin) = self.stdin.take() {
            // Anything on stdin, or its end, tells tapcap to stop.
            let _ = stdin.write_all(b"\n");
        }
        let deadline = Instant::now() + TAPCAP_TIMEOUT;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return Err(self.fail(format!("did not stop within {TAPCAP_TIMEOUT:?}"))),
            }
        };
        // The reader thread ends at tapcap's end of output.
        let mut lines = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(TAPCAP_TIMEOUT) {
            lines.push(l);
        }
        let (rest, stderr) = self.finish();
        lines.extend(rest);
        if !status.success() {
            return Err(LabError::Capture {
                tap: self.tap.clone(),
                what: format!("tapcap ended with {status}: {}", stderr.trim()),
            });
        }
        let mut frames = Vec::new();
        let mut end = None;
        for l in &lines {
            if let Some(f) = Frame::parse(l) {
                frames.push(f);
            } else if let Some(e) = parse_end(l) {
                end = Some(e);
            } else {
                return Err(LabError::Capture {
                    tap: self.tap.clone(),
                    what: format!("unexpected line {l:?}"),
                });
            }
        }
        match end {
            Some((n, 0)) if n == frames.len() as u64 => Ok(frames),
            Some((n, 0)) => Err(LabError::Capture {
                tap: self.tap.clone(),
                what: format!("tapcap counted {n} frames, {} arrived", frames.len()),
            }),
            Some((_, drops)) => Err(LabError::Capture {
                tap: self.tap.clone(),
                what: format!("the kernel dropped {drops} frames (capture too slow)"),
            }),
            None => Err(LabError::Capture {
                tap: self.tap.clone(),
                what: format!("no end line; stderr: {}", stderr.trim()),
            }),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lines_are_read() {
        let f =
            Frame::parse("f r 100 46 ffffffffffff 524c00010002 0806 1796688000123456789").unwrap();
        assert_eq!(f.direction, Direction::Received);
        assert_eq!(f.vid, Some(100));
        assert_eq!(f.len, 46);
        assert!(f.is_broadcast());
        assert_eq!(f.src, [0x52, 0x4c, 0, 1, 0, 2]);
        assert_eq!(f.ethertype, ETHERTYPE_ARP);
        assert_eq!(f.at_ns, 1_796_688_000_123_456_789);
        let u = Frame::parse("f s - 98 524c00010002 524c00010003 0800 0").unwrap();
        assert_eq!(u.direction, Direction::Sent);
        assert_eq!(u.vid, None);
        assert!(!u.is_broadcast());
        for bad in [
            "",
            "tapcap: ready tap0 3",
            "f x - 98 524c00010002 524c00010003 0800 1",
            "f r 4096 98 524c00010002 524c00010003 0800 1",
            "f r - 98 524c0001000 524c00010003 0800 1",
            "f r - 98 524c00010002 524c00010003 08000 1",
            "f r - 98 524c00010002 524c00010003 0800 1 extra",
            "f r - 98 524c00010002 524c00010003 0800 -1",
            "f r - 98 524c00010002 524c00010003 0800",
        ] {
            assert_eq!(Frame::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_end_line_counts_frames_and_drops() {
        assert_eq!(parse_end("tapcap: end frames=12 drops=0"), Some((12, 0)));
        assert_eq!(parse_end("tapcap: end frames=12"), None);
        assert_eq!(parse_end("f r - 1 000000000000 000000000000 0800"), None);
    }
}
