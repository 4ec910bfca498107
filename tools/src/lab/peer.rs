//! A Linux 802.1Q peer: the Linux test guest ([`crate::linux_guest`]) with `8021q`,
//! its `eth0` on a lab tap (or another QEMU network backend), a VLAN interface
//! `eth0.VID` per [`VlanIf`], and a shell on its serial console that the host drives
//! with [`LinuxPeer::run`].
//!
//! Owns: the peer's initramfs (modules, the `lab-tcp` program from `tools/lab/`), its
//! interface set-up, the console protocol (each command's output between two
//! sentinel lines that carry a per-command number and its exit status), the DHCP server
//! and client helpers and the TCP throughput primitives ([`tcp_throughput`] between two
//! peers; [`tcp_send`] and [`tcp_fetch`] against any server, [`start_tcp_source`] as
//! one).
//!
//! Must not: interpret what a command printed beyond those helpers (callers parse their
//! own commands' output), or run on a profile whose NIC is not virtio-net PCI (Debian's
//! cloud kernel finds no virtio-mmio devices).
//!
//! Each peer answers ARP only for addresses on the interface asked on (`arp_ignore=1`,
//! `arp_announce=2`): Linux otherwise answers for any of its addresses on any
//! interface, and one guest's VLANs would not behave as separate segments. IPv6 is off
//! (`ipv6.disable=1`), so captures hold only the traffic a test makes.

use std::time::{Duration, Instant};

use super::{Lab, LabError, unique_mac};
use crate::linux_guest::{Guest, Init, LinuxGuest, static_program};
use crate::profile::{Accel, LaunchOptions, Netdev, Profile, Tap};

/// Modules the peer loads: virtio-net on PCI and 802.1Q.
pub const MODULES: [&str; 3] = ["virtio_pci", "virtio_net", "8021q"];
/// Added to the guest's kernel command line.
pub const KERNEL_ARGS: &str = "ipv6.disable=1";
/// Longest a command line typed on the console may be (busybox's line editor takes
/// 1024 bytes; the sentinels take the rest).
pub const MAX_COMMAND: usize = 900;
/// How long [`LinuxPeer::run`] waits for a command by default.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// The source of `/bin/lab-tcp`, the peer's TCP throughput program ([`tcp_throughput`]).
pub const LAB_TCP_SOURCE: &str = include_str!("../../lab/lab-tcp.c");

/// A VLAN interface of a peer: `eth0.VID` with `addr` (`10.1.0.1/24`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanIf {
    pub vid: u16,
    pub addr: String,
}

impl VlanIf {
    pub fn new(vid: u16, addr: &str) -> VlanIf {
        VlanIf {
            vid,
            addr: addr.to_owned(),
        }
    }

    /// The interface's name in the guest.
    pub fn ifname(&self) -> String {
        format!("eth0.{}", self.vid)
    }

    /// The address without its prefix length.
    pub fn ip(&self) -> &str {
        self.addr.split('/').next().unwrap_or(&self.addr)
    }
}

/// Where the peer's NIC is plugged in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// A tap device in a network namespace (a [`Lab`]'s, see [`Lab::link`]).
    Tap { netns: String, tap: String },
    /// Another QEMU backend (`socket`, `dgram`): no tap, no namespace, no root.
    Netdev(String),
}

/// How to boot a peer.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Names the peer in errors.
    pub name: String,
    pub link: Link,
    pub mac: [u8; 6],
    pub vlans: Vec<VlanIf>,
    /// An address on `eth0` itself (untagged), if any.
    pub untagged: Option<String>,
    /// A machine profile with a virtio-net PCI NIC.
    pub profile: String,
    pub memory_mib: u32,
    pub accel: Accel,
    /// Longest wait for the guest's ready line.
    pub boot_timeout: Duration,
    /// More static C programs for the guest, (name, source): each is compiled with
    /// [`static_program`] and installed as `/bin/NAME` (a test's own tools: frame
    /// injectors, rate meters).
    pub programs: Vec<(String, String)>,
}

impl PeerConfig {
    /// q35, 128 MiB, TCG, a fresh MAC.
    pub fn new(name: &str, link: Link, vlans: &[VlanIf]) -> PeerConfig {
        PeerConfig {
            name: name.to_owned(),
            link,
            mac: unique_mac(),
            vlans: vlans.to_vec(),
            untagged: None,
            profile: "q35".to_owned(),
            memory_mib: 128,
            accel: Accel::Tcg,
            boot_timeout: Duration::from_secs(120),
            programs: Vec::new(),
        }
    }

    /// Adds a static C program to the guest as `/bin/NAME` (see [`PeerConfig::programs`]).
    pub fn program(mut self, name: &str, source: &str) -> PeerConfig {
        self.programs.push((name.to_owned(), source.to_owned()));
        self
    }
}

/// What a command did: its exit status and everything it printed (stdout and stderr,
/// lines joined with `\n`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ran {
    pub status: i32,
    pub output: String,
}

/// A booted (or booting) Linux peer. Dropping it kills its QEMU.
pub struct LinuxPeer {
    config: PeerConfig,
    guest: Guest,
    configured: bool,
    commands: u64,
}

impl LinuxPeer {
    /// Boots a peer on `tap` of `lab` with `vlans` and waits until they are up.
    pub fn boot(lab: &Lab, tap: &str, vlans: &[VlanIf]) -> Result<LinuxPeer, LabError> {
        let mut p = LinuxPeer::start(PeerConfig::new(tap, lab.link(tap), vlans))?;
        p.ready()?;
        Ok(p)
    }

    /// Starts QEMU and returns at once: start several peers, then [`LinuxPeer::ready`]
    /// each, and they boot in parallel.
    pub fn start(config: PeerConfig) -> Result<LinuxPeer, LabError> {
        let profile = Profile::load(&config.profile)?;
        let pci = |args: &[String]| args.iter().any(|a| a.starts_with("virtio-net-pci"));
        let (tap, netdev, netns) = match &config.link {
            Link::Tap { netns, tap } => {
                if !pci(&profile.tap_nic_args) {
                    return Err(not_pci(&profile));
                }
                crate::setup::ensure(&[crate::setup::IP])?;
                let tap = Tap {
                    ifname: tap.clone(),
                    mac: config.mac,
                };
                (Some(tap), None, Some(netns.clone()))
            }
            Link::Netdev(backend) => {
                if !pci(&profile.netdev_nic_args) {
                    return Err(not_pci(&profile));
                }
                let netdev = Netdev {
                    backend: backend.clone(),
                    mac: config.mac,
                };
                (None, Some(netdev), None)
            }
        };
        crate::setup::ensure_qemu(&profile)?;
        let linux = LinuxGuest::fetch()?;
        let lab_tcp = static_program("lab-tcp", LAB_TCP_SOURCE)?;
        let lab_tcp = std::fs::read(&lab_tcp)
            .map_err(|e| LabError::Config(format!("cannot read {}: {e}", lab_tcp.display())))?;
        let opts = LaunchOptions {
            accel: config.accel,
            memory_mib: config.memory_mib,
            kernel: linux.kernel.clone(),
            append: String::new(),
            disk: None,
            nic: None,
            tap,
            netdev,
            netns,
            initrd: None,
        };
        let mut init = Init::console();
        init.kernel_args = KERNEL_ARGS.to_owned();
        for m in MODULES {
            init = init.module(m);
        }
        init = init.file("/bin/lab-tcp", 0o755, lab_tcp);
        for (name, source) in &config.programs {
            let path = static_program(name, source)?;
            let data = std::fs::read(&path)
                .map_err(|e| LabError::Config(format!("cannot read {}: {e}", path.display())))?;
            init = init.file(&format!("/bin/{name}"), 0o755, data);
        }
        let guest = linux.boot(&profile, &opts, &init)?;
        Ok(LinuxPeer {
            config,
            guest,
            configured: false,
            commands: 0,
        })
    }

    /// Waits for the guest, then brings `eth0` and its VLAN interfaces up with their
    /// addresses (once; later calls return at once).
    pub fn ready(&mut self) -> Result<(), LabError> {
        if self.configured {
            return Ok(());
        }
        let timeout = self.config.boot_timeout;
        self.guest.wait_ready(timeout)?;
        self.run_ok(
            "ip link set lo up && ip link set eth0 up && \
             echo 1 >/proc/sys/net/ipv4/conf/all/arp_ignore && \
             echo 2 >/proc/sys/net/ipv4/conf/all/arp_announce",
        )?;
        if let Some(addr) = self.config.untagged.clone() {
            self.run_ok(&format!("ip addr add {addr} dev eth0"))?;
        }
        for v in self.config.vlans.clone() {
            let dev = v.ifname();
            self.run_ok(&format!(
                "ip link add link eth0 name {dev} type vlan id {} && \
                 ip addr add {} dev {dev} && ip link set {dev} up",
                v.vid, v.addr
            ))?;
        }
        self.configured = true;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn mac(&self) -> [u8; 6] {
        self.config.mac
    }

    pub fn vlans(&self) -> &[VlanIf] {
        &self.config.vlans
    }

    /// The Linux guest underneath (its console, QEMU arguments, transcript).
    pub fn guest(&mut self) -> &mut Guest {
        &mut self.guest
    }

    /// Runs `command` (one line of busybox `sh`, in a subshell, stdin from /dev/null)
    /// on the console; waits up to [`RUN_TIMEOUT`].
    pub fn run(&mut self, command: &str) -> Result<Ran, LabError> {
        self.run_timeout(command, RUN_TIMEOUT)
    }

    /// [`LinuxPeer::run`] with its own timeout.
    pub fn run_timeout(&mut self, command: &str, timeout: Duration) -> Result<Ran, LabError> {
        if command.len() > MAX_COMMAND || command.contains(['\n', '\r', '\t']) {
            return Err(self.fail(format!(
                "a console command must be one line of at most {MAX_COMMAND} bytes, \
                 without tabs: {command:?}"
            )));
        }
        self.commands += 1;
        let tag = format!("lab-run-{}", self.commands);
        // The console echoes what is typed: the sentinels are split in the typed line
        // (`'<TAG' 'begin>'`, `$?`) so that only the lines the shell prints match.
        let begin = format!("<{tag} begin>");
        let end = format!("<{tag} end ");
        let line =
            format!("echo '<{tag}' 'begin>'; ( {command} ) </dev/null 2>&1; echo \"{end}$?>\"");
        if let Err(e) = self.guest.machine().send_line(&line) {
            return Err(self.fail(format!("cannot type {command:?}: {e}")));
        }
        let deadline = Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        if let Err(e) = self.guest.wait_for(left(), |l| l.contains(&begin)) {
            return Err(self.fail(format!("{command:?} did not start: {e}")));
        }
        let mut output: Vec<String> = Vec::new();
        loop {
            let line = match self.guest.wait_for(left(), |_| true) {
                Ok(l) => l.text,
                Err(e) => {
                    return Err(
                        self.fail(format!("{command:?} did not end within {timeout:?}: {e}"))
                    );
                }
            };
            if let Some((before, status)) = parse_end(&line, &end) {
                if !before.is_empty() {
                    output.push(before.to_owned());
                }
                return Ok(Ran {
                    status,
                    output: output.join("\n"),
                });
            }
            output.push(line);
        }
    }

    /// Runs `command` and returns its output; an error if its status is not 0.
    pub fn run_ok(&mut self, command: &str) -> Result<String, LabError> {
        let ran = self.run(command)?;
        if ran.status != 0 {
            return Err(self.fail(format!(
                "{command:?} exited with {}:\n{}",
                ran.status, ran.output
            )));
        }
        Ok(ran.output)
    }

    /// Whether `count` pings to `to` (from the interface the routes pick) are answered.
    pub fn ping(&mut self, to: &str, count: u32) -> Result<bool, LabError> {
        // -W: each reply may take a second under TCG; -w bounds the whole run.
        let ran = self.run(&format!("ping -c {count} -W 2 -w {} {to}", 2 * count + 3))?;
        Ok(ran.status == 0)
    }

    /// Starts busybox `udhcpd` on VLAN `vid` (one of this peer's), handing out
    /// `first`..=`last` with the VLAN's netmask. It answers at once (its ARP check of an
    /// address before offering it waits 100 ms, not the default 2 s).
    pub fn serve_dhcp(&mut self, vid: u16, first: &str, last: &str) -> Result<(), LabError> {
        let Some(v) = self.config.vlans.iter().find(|v| v.vid == vid).cloned() else {
            return Err(self.fail(format!("no VLAN {vid} to serve DHCP on")));
        };
        let Some(mask) = netmask(&v.addr) else {
            return Err(self.fail(format!("{} has no /PREFIX for a netmask", v.addr)));
        };
        let dev = v.ifname();
        let conf = format!("/tmp/udhcpd-{vid}");
        self.run_ok(&format!(
            "printf 'start {first}\\nend {last}\\ninterface {dev}\\nlease_file {conf}.leases\\n\
             option subnet {mask}\\n' >{conf}.conf && touch {conf}.leases && \
             udhcpd -a 100 {conf}.conf"
        ))?;
        // udhcpd forks into the background; make sure it stayed up.
        let ran = self.run("sleep 0.2; pidof udhcpd")?;
        if ran.status != 0 {
            return Err(self.fail(format!("udhcpd did not stay up on {dev}")));
        }
        Ok(())
    }

    /// Asks for a DHCP lease on `ifname` (`eth0.100`) with busybox `udhcpc`; the
    /// address offered and acknowledged, `None` if no server answered. The address is
    /// not configured on the interface.
    pub fn dhcp_lease(&mut self, ifname: &str) -> Result<Option<String>, LabError> {
        let ran = self.run(&format!("udhcpc -i {ifname} -n -q -t 4 -T 1 -s /bin/true"))?;
        Ok(parse_lease(&ran.output))
    }

    /// Ends the console shell and waits for the guest to power off.
    pub fn shutdown(mut self) -> Result<(), LabError> {
        if let Err(e) = self.guest.machine().send_line("exit 0") {
            return Err(self.fail(format!("cannot type exit: {e}")));
        }
        self.guest.wait_exit(Duration::from_secs(30))?;
        Ok(())
    }

    fn fail(&mut self, what: String) -> LabError {
        LabError::Peer {
            peer: self.config.name.clone(),
            what,
            transcript: self.guest.machine().transcript(),
        }
    }
}

fn not_pci(profile: &Profile) -> LabError {
    LabError::Config(format!(
        "profile {} does not attach the NIC as virtio-net-pci; Debian's cloud kernel \
         finds no virtio-mmio devices: use a PCI profile such as q35",
        profile.name
    ))
}

/// `TEXT<lab-run-N end STATUS>` → (TEXT, STATUS), for `end` = `<lab-run-N end `.
fn parse_end<'a>(line: &'a str, end: &str) -> Option<(&'a str, i32)> {
    let at = line.find(end)?;
    let rest = &line[at + end.len()..];
    let close = rest.find('>')?;
    let status = rest[..close].parse().ok()?;
    Some((&line[..at], status))
}

/// `10.1.0.1/24` → `255.255.255.0`.
fn netmask(addr: &str) -> Option<String> {
    let prefix: u32 = addr.split_once('/')?.1.parse().ok()?;
    if prefix > 32 {
        return None;
    }
    let bits = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    Some(std::net::Ipv4Addr::from(bits).to_string())
}

/// udhcpc's `lease of 10.1.0.100 obtained from 10.1.0.1, lease time 864000`.
fn parse_lease(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let rest = &l[l.find("lease of ")? + "lease of ".len()..];
        let addr = rest.split_whitespace().next()?;
        rest.contains("obtained")
            .then(|| addr.parse::<std::net::Ipv4Addr>().ok())
            .flatten()
            .map(|a| a.to_string())
    })
}

/// One [`tcp_throughput`] run.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpRun {
    pub bytes: u64,
    /// Time in the sender from before `connect()` until the receiver had read the last
    /// byte and closed the connection (the guest's monotonic clock).
    pub elapsed: Duration,
    /// Time in the receiver from the first byte to the end.
    pub receiver_elapsed: Duration,
    /// The send seen from the host: typing the command to its end line (adds console
    /// round trips; a check on the guest's clock).
    pub host_elapsed: Duration,
}

impl TcpRun {
    /// MiB per second by the sender's clock.
    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// TCP throughput from `sender` to `receiver` at `receiver_ip` (on a VLAN both have):
/// `bytes` of zeros in 64 KiB `write()`s from `lab-tcp send` to `lab-tcp recv`, which
/// reads them in 64 KiB `read()`s and counts them (`tools/lab/lab-tcp.c`). One
/// connection, default socket buffers, Linux's default congestion control: the figure
/// a plain Linux guest gets on the same QEMU command line.
pub fn tcp_throughput(
    sender: &mut LinuxPeer,
    receiver: &mut LinuxPeer,
    receiver_ip: &str,
    bytes: u64,
) -> Result<TcpRun, LabError> {
    let port = 5201 + (receiver.commands % 100) as u16;
    receiver.run_ok(&format!(
        "rm -f /tmp/lab-tcp.rx; lab-tcp recv {port} >/tmp/lab-tcp.rx 2>&1 & i=0; \
         until grep -q listening /tmp/lab-tcp.rx; do i=$((i+1)); \
         [ $i -lt 250 ] || {{ cat /tmp/lab-tcp.rx; exit 1; }}; usleep 20000; done"
    ))?;
    let started = Instant::now();
    let sent = sender.run_timeout(
        &format!("lab-tcp send {receiver_ip} {port} {bytes}"),
        Duration::from_secs(600),
    )?;
    let host_elapsed = started.elapsed();
    let received = receiver.run(
        "i=0; until grep -q -e received= -e error /tmp/lab-tcp.rx; do i=$((i+1)); \
         [ $i -lt 250 ] || break; usleep 20000; done; cat /tmp/lab-tcp.rx",
    )?;
    let Some((sent_bytes, ns)) = parse_tcp(&sent.output, "sent") else {
        return Err(sender.fail(format!("lab-tcp send failed:\n{}", sent.output)));
    };
    let Some((received_bytes, receiver_ns)) = parse_tcp(&received.output, "received") else {
        return Err(receiver.fail(format!("lab-tcp recv failed:\n{}", received.output)));
    };
    if sent_bytes != bytes || received_bytes != bytes {
        return Err(receiver.fail(format!(
            "{bytes} bytes to send: {sent_bytes} sent, {received_bytes} received"
        )));
    }
    Ok(TcpRun {
        bytes,
        elapsed: Duration::from_nanos(ns),
        receiver_elapsed: Duration::from_nanos(receiver_ns),
        host_elapsed,
    })
}

/// One transfer timed by one end ([`tcp_send`], [`tcp_fetch`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Transfer {
    pub bytes: u64,
    /// Time by the peer's monotonic clock: see the function that made it.
    pub elapsed: Duration,
    /// The command seen from the host: typing it to its end line (adds console round
    /// trips; a check on the guest's clock).
    pub host_elapsed: Duration,
}

impl Transfer {
    /// MiB per second by the peer's clock.
    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs one `lab-tcp` client command on `peer`; its `KEY=BYTES ns=NS` figures, checked
/// against `bytes`.
fn lab_tcp_client(
    peer: &mut LinuxPeer,
    command: &str,
    key: &str,
    bytes: u64,
) -> Result<Transfer, LabError> {
    let started = Instant::now();
    let ran = peer.run_timeout(command, Duration::from_secs(600))?;
    let host_elapsed = started.elapsed();
    match parse_tcp(&ran.output, key) {
        Some((n, ns)) if n == bytes && ns > 0 => Ok(Transfer {
            bytes,
            elapsed: Duration::from_nanos(ns),
            host_elapsed,
        }),
        _ => Err(peer.fail(format!("`{command}` failed:\n{}", ran.output))),
    }
}

/// `bytes` of zeros from `sender` to a TCP server at `ip:port` that reads to the end and
/// closes (a discard service, `lab-tcp recv`), in 64 KiB `write()`s (`lab-tcp send`).
/// `elapsed` is the sender's time from before `connect()` until the server had read
/// the last byte and closed: what [`tcp_throughput`] measures, to any server.
pub fn tcp_send(
    sender: &mut LinuxPeer,
    ip: &str,
    port: u16,
    bytes: u64,
) -> Result<Transfer, LabError> {
    let command = format!("lab-tcp send {ip} {port} {bytes}");
    lab_tcp_client(sender, &command, "sent", bytes)
}

/// `receiver` reads `bytes` from a TCP server at `ip:port` that sends as long as the
/// connection is open (a chargen service, [`start_tcp_source`]), in 64 KiB `read()`s,
/// then closes (`lab-tcp fetch`). `elapsed` is the receiver's time from before
/// `connect()` to the last byte read.
pub fn tcp_fetch(
    receiver: &mut LinuxPeer,
    ip: &str,
    port: u16,
    bytes: u64,
) -> Result<Transfer, LabError> {
    let command = format!("lab-tcp fetch {ip} {port} {bytes}");
    lab_tcp_client(receiver, &command, "fetched", bytes)
}

/// Starts `lab-tcp source PORT` on `server` in the background: it accepts one
/// connection and writes zeros until the client closes it ([`tcp_fetch`]'s server on a
/// Linux peer). Returns once it listens; [`tcp_source_result`] reads what it did.
pub fn start_tcp_source(server: &mut LinuxPeer, port: u16) -> Result<(), LabError> {
    server.run_ok(&format!(
        "rm -f /tmp/lab-tcp.src; lab-tcp source {port} >/tmp/lab-tcp.src 2>&1 & i=0; \
         until grep -q listening /tmp/lab-tcp.src; do i=$((i+1)); \
         [ $i -lt 250 ] || {{ cat /tmp/lab-tcp.src; exit 1; }}; usleep 20000; done"
    ))?;
    Ok(())
}

/// What the source [`start_tcp_source`] started wrote before its client closed, and in
/// how long (accept to the failed write), once it has ended.
pub fn tcp_source_result(server: &mut LinuxPeer) -> Result<(u64, Duration), LabError> {
    let ran = server.run(
        "i=0; until grep -q -e sourced= -e error /tmp/lab-tcp.src; do i=$((i+1)); \
         [ $i -lt 250 ] || break; usleep 20000; done; cat /tmp/lab-tcp.src",
    )?;
    match parse_tcp(&ran.output, "sourced") {
        Some((bytes, ns)) => Ok((bytes, Duration::from_nanos(ns))),
        None => Err(server.fail(format!("lab-tcp source failed:\n{}", ran.output))),
    }
}

/// `lab-tcp: KEY=BYTES ns=NS` → (BYTES, NS).
fn parse_tcp(output: &str, key: &str) -> Option<(u64, u64)> {
    output.lines().find_map(|l| {
        let line = l.strip_prefix("lab-tcp: ")?;
        let field = |k: &str| -> Option<u64> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))?
                .parse()
                .ok()
        };
        Some((field(key)?, field("ns")?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_sentinels_give_the_status_and_not_the_typed_line() {
        let end = "<lab-run-7 end ";
        assert_eq!(parse_end("<lab-run-7 end 0>", end), Some(("", 0)));
        assert_eq!(
            parse_end("partial<lab-run-7 end 127>", end),
            Some(("partial", 127))
        );
        // The console's echo of the typed line.
        let typed =
            "~ # echo '<lab-run-7' 'begin>'; ( true ) </dev/null 2>&1; echo \"<lab-run-7 end $?>\"";
        assert_eq!(parse_end(typed, end), None);
        assert!(!typed.contains("<lab-run-7 begin>"));
        assert_eq!(parse_end("<lab-run-71 end 0>", end), None);
    }

    #[test]
    fn netmasks_come_from_the_prefix() {
        assert_eq!(netmask("10.1.0.1/24").as_deref(), Some("255.255.255.0"));
        assert_eq!(netmask("10.1.0.1/0").as_deref(), Some("0.0.0.0"));
        assert_eq!(netmask("10.1.0.1/32").as_deref(), Some("255.255.255.255"));
        assert_eq!(netmask("10.1.0.1/20").as_deref(), Some("255.255.240.0"));
        assert_eq!(netmask("10.1.0.1/33"), None);
        assert_eq!(netmask("10.1.0.1"), None);
    }

    #[test]
    fn udhcpc_leases_and_tcp_results_are_read() {
        let out = "udhcpc: started, v1.35.0\nudhcpc: broadcasting discover\n\
                   udhcpc: lease of 10.1.0.100 obtained from 10.1.0.1, lease time 864000";
        assert_eq!(parse_lease(out).as_deref(), Some("10.1.0.100"));
        assert_eq!(parse_lease("udhcpc: no lease, failing"), None);
        assert_eq!(
            parse_tcp("noise\nlab-tcp: sent=65536 ns=1234", "sent"),
            Some((65536, 1234))
        );
        assert_eq!(
            parse_tcp(
                "lab-tcp: listening 5201\nlab-tcp: received=7 ns=9\n",
                "received"
            ),
            Some((7, 9))
        );
        assert_eq!(parse_tcp("lab-tcp: error: connect: refused", "sent"), None);
        assert_eq!(parse_tcp("lab-tcp: sent=1", "sent"), None);
        assert_eq!(
            parse_tcp("lab-tcp: fetched=1048576 ns=5000", "fetched"),
            Some((1048576, 5000))
        );
        assert_eq!(
            parse_tcp("lab-tcp: listening 19\nlab-tcp: sourced=7 ns=9", "sourced"),
            Some((7, 9))
        );
        assert_eq!(
            parse_tcp(
                "lab-tcp: error: the server closed after 5 of 9 bytes",
                "fetched"
            ),
            None
        );
        assert_eq!(VlanIf::new(100, "10.1.0.1/24").ip(), "10.1.0.1");
        assert_eq!(VlanIf::new(100, "10.1.0.1/24").ifname(), "eth0.100");
    }
}
