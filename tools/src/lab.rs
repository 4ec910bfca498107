//! A VLAN lab for end-to-end tests and benchmarks: one network namespace holding a Linux
//! bridge, tap devices on the bridge for QEMU guests, captures of what crosses a tap
//! ([`capture`]), and Linux 802.1Q peers ([`peer`]) on it.
//!
//! This host's kernel has no 802.1Q support of its own, but a plain bridge forwards
//! tagged frames unchanged: the tagging is done by the guests (a Linux peer's `8021q`,
//! later the runtime's own), and the lab is the wire between them.
//!
//! Owns:
//! - the namespace `plinth-lab-NAME-PID-N` ([`Lab::new`]), its bridge [`BRIDGE`] and the
//!   taps made with [`Lab::tap`]; dropping the [`Lab`] kills every process still in the
//!   namespace (QEMU, captures) and deletes it, and with it the bridge and taps. A lab
//!   left behind by a process that died is deleted by the next [`Lab::new`];
//! - which MAC addresses lab guests get ([`unique_mac`]).
//!
//! Must not: touch the host's own interfaces, routes or namespaces other than its own,
//! or kill a process outside its namespace. Needs root (`ip netns`), as the tests do.

pub mod capture;
pub mod peer;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::linux_guest::LinuxGuestError;
use crate::profile::ProfileError;
use crate::setup::SetupError;

pub use capture::{Capture, Direction, Frame};
pub use peer::{
    Link, LinuxPeer, PeerConfig, Ran, TcpRun, Transfer, VlanIf, start_tcp_source, tcp_fetch,
    tcp_send, tcp_source_result, tcp_throughput,
};

/// The bridge inside every lab's namespace (names are per namespace, so every lab has
/// the same).
pub const BRIDGE: &str = "br0";
/// Namespaces of labs start so: `plinth-lab-NAME-PID-N`.
pub const NETNS_PREFIX: &str = "plinth-lab-";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("`{command}` failed: {reason}{hint}")]
    Command {
        command: String,
        reason: String,
        /// What to check, e.g. that we are root; empty or starting with a newline.
        hint: &'static str,
    },
    #[error("lab name `{0}` must be 1-32 ASCII letters, digits or `_`")]
    Name(String),
    #[error("interface name `{0}` must be 1-15 ASCII letters, digits, `-` or `_`")]
    IfName(String),
    #[error("capture on {tap}: {what}")]
    Capture { tap: String, what: String },
    #[error("Linux peer {peer}: {what}\n--- its console ---\n{transcript}")]
    Peer {
        peer: String,
        what: String,
        transcript: String,
    },
    #[error("Linux peer: {0}")]
    Config(String),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Guest(#[from] LinuxGuestError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

const ROOT_HINT: &str = "\n(the lab needs root for `ip netns`, taps and bridges)";

/// Runs `cmd`; its stdout, or an error with the end of its stderr.
fn run(cmd: &mut Command, hint: &'static str) -> Result<String, LabError> {
    let command = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Command {
            command: command.clone(),
            reason: e.to_string(),
            hint,
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(LabError::Command {
        command,
        reason: format!("{} ({})", err.trim(), out.status),
        hint,
    })
}

fn ip(args: &[&str]) -> Result<String, LabError> {
    run(Command::new("ip").args(args), ROOT_HINT)
}

/// A MAC address no other lab guest of this process has (locally administered,
/// unicast: `52:4c:PID:PID:N:N`).
pub fn unique_mac() -> [u8; 6] {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    [
        0x52,
        0x4c,
        (pid >> 8) as u8,
        pid as u8,
        (n >> 8) as u8,
        n as u8,
    ]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Whether `name` can be a Linux interface name here.
fn valid_ifname(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The PID a lab namespace name carries (`plinth-lab-NAME-PID-N`).
fn lab_pid(netns: &str) -> Option<u32> {
    let rest = netns.strip_prefix(NETNS_PREFIX)?;
    let mut parts = rest.rsplitn(3, '-');
    let _n: u32 = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    parts.next().filter(|name| !name.is_empty())?;
    Some(pid)
}

/// One lab: a network namespace with a bridge. See the module documentation.
pub struct Lab {
    netns: String,
}

impl Lab {
    /// Creates the namespace `plinth-lab-NAME-PID-N` with [`BRIDGE`] up in it (no
    /// address, no IPv6 of its own: every frame on it is a guest's).
    pub fn new(name: &str) -> Result<Lab, LabError> {
        if name.is_empty()
            || name.len() > 32
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(LabError::Name(name.to_owned()));
        }
        crate::setup::ensure(&[crate::setup::IP])?;
        remove_stale_labs();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let netns = format!("{NETNS_PREFIX}{name}-{}-{n}", std::process::id());
        ip(&["netns", "add", &netns])?;
        // From here on, dropping the lab deletes the namespace.
        let lab = Lab { netns };
        let ns = lab.netns.as_str();
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        // STP off (the default) and no forward delay: a port forwards as soon as QEMU
        // opens its tap.
        ip(&[
            "-n",
            ns,
            "link",
            "add",
            BRIDGE,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        ip(&["-n", ns, "link", "set", BRIDGE, "addrgenmode", "none"])?;
        ip(&["-n", ns, "link", "set", BRIDGE, "up"])?;
        Ok(lab)
    }

    /// The namespace's name, for `ip netns exec` and [`LaunchOptions::netns`].
    ///
    /// [`LaunchOptions::netns`]: crate::profile::LaunchOptions::netns
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Creates tap `name` on the bridge, up, and returns its name: what QEMU started in
    /// the namespace takes as `-netdev tap,ifname=NAME,script=no,downscript=no`
    /// ([`LaunchOptions::tap`] with [`LaunchOptions::netns`] set to [`Lab::netns`]).
    /// Its carrier comes up when QEMU opens it.
    ///
    /// [`LaunchOptions::tap`]: crate::profile::LaunchOptions::tap
    /// [`LaunchOptions::netns`]: crate::profile::LaunchOptions::netns
    pub fn tap(&self, name: &str) -> Result<String, LabError> {
        if !valid_ifname(name) || name == BRIDGE {
            return Err(LabError::IfName(name.to_owned()));
        }
        let ns = self.netns.as_str();
        ip(&["-n", ns, "tuntap", "add", "dev", name, "mode", "tap"])?;
        ip(&["-n", ns, "link", "set", name, "addrgenmode", "none"])?;
        ip(&["-n", ns, "link", "set", name, "master", BRIDGE])?;
        ip(&["-n", ns, "link", "set", name, "up"])?;
        Ok(name.to_owned())
    }

    /// The link a [`LinuxPeer`] on tap `tap` of this lab is given.
    pub fn link(&self, tap: &str) -> Link {
        Link::Tap {
            netns: self.netns.clone(),
            tap: tap.to_owned(),
        }
    }

    /// Runs `args` inside the namespace; its stdout.
    pub fn exec(&self, args: &[&str]) -> Result<String, LabError> {
        run(
            Command::new("ip")
                .args(["netns", "exec", self.netns.as_str()])
                .args(args),
            ROOT_HINT,
        )
    }

    /// Starts capturing every frame crossing `tap` (in both directions), VLAN tags
    /// included; [`Capture::stop`] returns them. Returns once the capture is running.
    pub fn capture(&self, tap: &str) -> Result<Capture, LabError> {
        if !valid_ifname(tap) {
            return Err(LabError::IfName(tap.to_owned()));
        }
        Capture::start(&self.netns, tap)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        delete_netns(&self.netns);
    }
}

/// Kills the processes inside `netns` (by PID, never this process) and deletes it.
fn delete_netns(netns: &str) {
    let me = std::process::id();
    if let Ok(pids) = ip(&["netns", "pids", netns]) {
        for pid in pids.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            if pid != me {
                let _ = run(Command::new("kill").args(["-KILL", &pid.to_string()]), "");
            }
        }
    }
    let _ = ip(&["netns", "del", netns]);
}

/// Deletes the labs of processes that are gone (a test killed before its drops ran).
fn remove_stale_labs() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if let Some(pid) = lab_pid(name)
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            delete_netns(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_namespaces_carry_their_pid() {
        assert_eq!(lab_pid("plinth-lab-vlan-4242-0"), Some(4242));
        assert_eq!(lab_pid("plinth-lab-my_lab-17-3"), Some(17));
        assert_eq!(lab_pid("plinth-lab--17-3"), None);
        assert_eq!(lab_pid("plinth-lab-vlan-x-0"), None);
        assert_eq!(lab_pid("plinth-4242-0"), None);
        assert_eq!(lab_pid("plinth-lab-4242"), None);
    }

    #[test]
    fn interface_names_fit_linux() {
        assert!(valid_ifname("tap-a"));
        assert!(valid_ifname("abcdefghijklmno"));
        assert!(!valid_ifname("abcdefghijklmnop"));
        assert!(!valid_ifname(""));
        assert!(!valid_ifname("a b"));
        assert!(!valid_ifname("a/b"));
        assert!(!valid_ifname("eth0.100"), "dots are for the guests' VLANs");
    }

    #[test]
    fn macs_are_unique_local_unicast() {
        let a = unique_mac();
        let b = unique_mac();
        assert_ne!(a, b);
        assert_eq!(a[0] & 0b11, 0b10, "locally administered, unicast");
        assert_eq!(
            mac_string(&[0x52, 0x4c, 0, 1, 0xab, 0xff]),
            "52:4c:00:01:ab:ff"
        );
    }
}
