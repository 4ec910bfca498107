//! `plinth bench bridge`: what the runtime's 802.1Q switch costs per frame, and what a
//! partition's NIC carries over TCP beside a Linux guest on the same VLAN.
//!
//! Owns the three measurements and their report:
//!
//! - **host**: the portable `plinth-bridge` crate driven in this process, laid out as the
//!   runtime's switch (uplink trunk carrying VLAN 100, management port, two partition
//!   NICs on VLAN 100; the layout of the kernel's `bench bridge`, `kernel/src/bench.rs`):
//!   frames from a partition's access port to a station learned behind the uplink —
//!   known unicast, the decision, MAC learning, the frame written out with its tag
//!   pushed — timed with [`Instant`] over batches, the median batch;
//! - **in the guest**: the same work inside the runtime under QEMU, its console command
//!   `bench bridge FRAMES` timed by the runtime's TSC clock (one boot per run);
//! - **TCP over VLAN 100** in the VLAN lab ([`crate::lab`]): a Linux 802.1Q peer and,
//!   in turn, the runtime (an appliance whose tenant is on static VLAN 100 and whose one
//!   partition has a NIC and runs the `echo` example agent at [`DUT_ADDR`]) and a Linux
//!   guest with `eth0.100` at the same address, on the same profile, memory and
//!   accelerator. The peer sends to the partition's discard port and reads from its
//!   chargen port, and does the same with `lab-tcp recv`/`lab-tcp source` on the Linux
//!   guest; both timed by the peer's clock (`tools/lab/lab-tcp.c`).
//!
//! Must not: parse more of what the runtime prints than its `bench bridge:`, `echo:`
//! and ready lines, or print anything (the CLI prints the report and progress).

use std::hint::black_box;
use std::time::{Duration, Instant};

use plinth_bridge::Target;
use plinth_bridge::bench::Layout;
use serde::Serialize;

use crate::bench::{BenchError, Spread, failed, launch, shut_down};
use crate::image::TestAgent;
use crate::lab::{Lab, LabError, LinuxPeer, PeerConfig, Transfer, VlanIf};
use crate::machine::Machine;
use crate::profile::{LaunchOptions, Profile};

/// The tenant VLAN the partition and the Linux guest are on (the forwarding layout's).
pub const VID: u16 = plinth_bridge::bench::VID;
/// The peer's address on [`VID`].
pub const PEER_ADDR: &str = "10.1.1.1/24";
/// The address of the device under test on [`VID`]: the partition's, or the Linux
/// guest's in its place.
pub const DUT_ADDR: &str = "10.1.1.2/24";
/// [`DUT_ADDR`] without its prefix.
pub const DUT_IP: &str = "10.1.1.2";
/// The echo agent's TCP buffers each way (its `tcp_buffer_kib`): windows of 1 MiB, where
/// a Linux guest autotunes itself up to 6 MiB; at 150 MiB/s over a few ms of round trip
/// a smaller window holds the sender back. The switch's port queue holds a full window:
/// the peer's stream arrives as the host's 64 KiB super-frames (receive offload), some
/// 16 of them, well within its frame and byte bounds.
pub const ECHO_BUFFER_KIB: u32 = 1024;
/// The echo agent's discard and chargen ports.
pub const DISCARD_PORT: u16 = 9;
pub const CHARGEN_PORT: u16 = 19;
/// The target: bridge forwarding adds at most this much per frame inside the guest.
pub const PER_FRAME_TARGET_US: f64 = 2.0;
/// The management stack's address in the TCP boots (untagged, on the lab bridge): a
/// static one, so that no DHCP requests cross the wire during the transfers.
pub const MGMT_IP: &str = "192.168.250.2/24";
/// What the runtime prints for `bench bridge`.
pub const BRIDGE_LINE: &str = "bench bridge: ";

const MIB: f64 = 1024.0 * 1024.0;

/// What `plinth bench bridge` measures.
#[derive(Clone, Debug, Serialize)]
pub struct BridgeOptions {
    /// Runs: in-guest boots, host measurements and TCP rounds (runtime, then Linux).
    pub runs: usize,
    /// Frames of each size per in-guest run (`bench bridge FRAMES`).
    pub frames: u64,
    /// Frames of each size per host batch.
    pub host_frames: u64,
    /// Host batches per run (the run's figure is the median batch).
    pub host_batches: usize,
    /// Bytes per TCP transfer, each way.
    pub tcp_bytes: u64,
    /// Measure TCP at all.
    pub tcp: bool,
    /// Measure TCP against the Linux guest too.
    pub linux: bool,
    /// The profile (name or path) the Linux peer and the Linux guest boot on: the
    /// runtime's.
    pub profile: String,
}

impl Default for BridgeOptions {
    fn default() -> BridgeOptions {
        BridgeOptions {
            runs: 3,
            frames: 200_000,
            host_frames: 1_000_000,
            host_batches: 5,
            tcp_bytes: 32 << 20,
            tcp: true,
            linux: true,
            profile: "q35".into(),
        }
    }
}

/// ns per frame for the two frame sizes.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct FrameNs {
    pub ns_64: f64,
    pub ns_1500: f64,
}

/// Frame forwarding over the runs: ns per frame, and frames/s of the median.
#[derive(Clone, Debug, Serialize)]
pub struct Forwarding {
    pub ns_64: Spread,
    pub ns_1500: Spread,
    pub fps_64: f64,
    pub fps_1500: f64,
    pub samples: Vec<FrameNs>,
}

impl Forwarding {
    fn of(samples: Vec<FrameNs>) -> Forwarding {
        let ns_64 = Spread::of(&samples.iter().map(|s| s.ns_64).collect::<Vec<_>>());
        let ns_1500 = Spread::of(&samples.iter().map(|s| s.ns_1500).collect::<Vec<_>>());
        Forwarding {
            fps_64: 1e9 / ns_64.median,
            fps_1500: 1e9 / ns_1500.median,
            ns_64,
            ns_1500,
            samples,
        }
    }
}

/// One transfer each way between the peer and a device under test (the partition, or
/// the Linux guest in its place), MiB/s.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct TcpSample {
    /// Peer → device: `lab-tcp send`, by the peer's clock from before `connect()` until
    /// the device had read the last byte and closed.
    pub peer_to_dut_mib_s: f64,
    /// Device → peer: `lab-tcp fetch`, by the peer's clock from before `connect()` to
    /// the last byte read.
    pub dut_to_peer_mib_s: f64,
    /// The device's own figure for the first: the echo agent's `discard` log line, or
    /// `lab-tcp recv` (first byte to end). `None` when it printed none.
    pub dut_receive_mib_s: Option<f64>,
    /// The device's own figure for the second: the agent's `chargen` line, or
    /// `lab-tcp source` (accept to the client's close; bytes written, read or not).
    pub dut_send_mib_s: Option<f64>,
    /// Host CPU time each QEMU used per MiB moved (all its threads, from `/proc`), for
    /// each transfer: what the figures above cost, which a busy host does not change.
    pub cpu: Option<CpuPerMib>,
}

/// Host CPU milliseconds per MiB of the device's and the peer's QEMU, each direction.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct CpuPerMib {
    pub peer_to_dut_dut_ms: f64,
    pub peer_to_dut_peer_ms: f64,
    pub dut_to_peer_dut_ms: f64,
    pub dut_to_peer_peer_ms: f64,
}

/// CPU time of the device's and the peer's QEMU, to take differences across a transfer.
#[derive(Clone, Copy)]
struct CpuMark(Option<(Duration, Duration)>);

impl CpuMark {
    fn take(dut: &Machine, peer: &Machine) -> CpuMark {
        CpuMark(dut.cpu_time().zip(peer.cpu_time()))
    }

    /// ms per MiB of the device and of the peer from `self` to `later`, for `bytes`.
    fn per_mib(self, later: CpuMark, bytes: u64) -> Option<(f64, f64)> {
        let ((d0, p0), (d1, p1)) = (self.0?, later.0?);
        let mib = bytes as f64 / MIB;
        let ms = |a: Duration, b: Duration| b.saturating_sub(a).as_secs_f64() * 1e3 / mib;
        Some((ms(d0, d1), ms(p0, p1)))
    }
}

/// The CPU cost of both transfers of a round, from marks taken before and after each.
fn cpu_per_mib(marks: [CpuMark; 4], bytes: u64) -> Option<CpuPerMib> {
    let (a, b) = marks[0].per_mib(marks[1], bytes)?;
    let (c, d) = marks[2].per_mib(marks[3], bytes)?;
    Some(CpuPerMib {
        peer_to_dut_dut_ms: a,
        peer_to_dut_peer_ms: b,
        dut_to_peer_dut_ms: c,
        dut_to_peer_peer_ms: d,
    })
}

/// [`TcpSample`]s of one device over the runs.
#[derive(Clone, Debug, Serialize)]
pub struct TcpSide {
    pub peer_to_dut_mib_s: Spread,
    pub dut_to_peer_mib_s: Spread,
    /// Medians of the device's own figures, where it gave them.
    pub dut_receive_mib_s: Option<f64>,
    pub dut_send_mib_s: Option<f64>,
    /// Medians of the CPU costs, where `/proc` gave them.
    pub cpu: Option<CpuPerMib>,
    pub samples: Vec<TcpSample>,
    /// The device's QEMU command line (of its last run).
    pub qemu_args: Vec<String>,
}

impl TcpSide {
    fn of(samples: Vec<TcpSample>, qemu_args: Vec<String>) -> Option<TcpSide> {
        if samples.is_empty() {
            return None;
        }
        let pick =
            |f: fn(&TcpSample) -> f64| Spread::of(&samples.iter().map(f).collect::<Vec<_>>());
        let own = |f: fn(&TcpSample) -> Option<f64>| {
            let v: Vec<f64> = samples.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| Spread::of(&v).median)
        };
        let cpu = |f: fn(&CpuPerMib) -> f64| {
            let v: Vec<f64> = samples
                .iter()
                .filter_map(|s| s.cpu.as_ref().map(f))
                .collect();
            (!v.is_empty()).then(|| Spread::of(&v).median)
        };
        let cpu = match (
            cpu(|c| c.peer_to_dut_dut_ms),
            cpu(|c| c.peer_to_dut_peer_ms),
            cpu(|c| c.dut_to_peer_dut_ms),
            cpu(|c| c.dut_to_peer_peer_ms),
        ) {
            (Some(a), Some(b), Some(c), Some(d)) => Some(CpuPerMib {
                peer_to_dut_dut_ms: a,
                peer_to_dut_peer_ms: b,
                dut_to_peer_dut_ms: c,
                dut_to_peer_peer_ms: d,
            }),
            _ => None,
        };
        Some(TcpSide {
            cpu,
            peer_to_dut_mib_s: pick(|s| s.peer_to_dut_mib_s),
            dut_to_peer_mib_s: pick(|s| s.dut_to_peer_mib_s),
            dut_receive_mib_s: own(|s| s.dut_receive_mib_s),
            dut_send_mib_s: own(|s| s.dut_send_mib_s),
            samples,
            qemu_args,
        })
    }
}

/// The runtime's medians over the Linux guest's.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct TcpRatios {
    pub peer_to_partition: f64,
    pub partition_to_peer: f64,
}

/// The TCP part of the report.
#[derive(Clone, Debug, Serialize)]
pub struct TcpReport {
    pub bytes: u64,
    pub vlan: u16,
    pub workload: String,
    /// The partition (absent when none of its runs completed).
    pub plinth: Option<TcpSide>,
    /// The Linux guest in its place (absent with `--no-linux`, or when it failed).
    pub linux: Option<TcpSide>,
    pub plinth_over_linux: Option<TcpRatios>,
    /// The Linux kernel package the peer and the guest ran.
    pub linux_kernel: String,
    /// The peer's QEMU command line.
    pub peer_qemu_args: Vec<String>,
}

/// The result of `plinth bench bridge`.
#[derive(Clone, Debug, Serialize)]
pub struct BridgeReport {
    pub profile: String,
    pub accel: crate::profile::Accel,
    pub memory_mib: u32,
    pub options: BridgeOptions,
    /// In the guest: frames/s of 64-byte frames (median run).
    pub forward_64b_fps: f64,
    /// In the guest: frames/s of 1500-byte frames (median run).
    pub forward_1500b_fps: f64,
    /// In the guest: µs per 1500-byte frame (median run), against
    /// [`PER_FRAME_TARGET_US`].
    pub per_frame_us: f64,
    /// In the guest: µs per 64-byte frame (median run).
    pub per_frame_64b_us: f64,
    pub per_frame_target_us: f64,
    /// On the host, this process (`plinth-bridge` as built into this tool).
    pub host_forward_64b_fps: f64,
    pub host_forward_1500b_fps: f64,
    /// Whether this tool (and so the host figures) was built with optimisations.
    pub host_build: &'static str,
    pub guest: Forwarding,
    pub host: Forwarding,
    /// TCP medians, MiB/s (null when not measured or failed).
    pub tcp_peer_to_partition_mib_s: Option<f64>,
    pub tcp_partition_to_peer_mib_s: Option<f64>,
    pub tcp_peer_to_linux_mib_s: Option<f64>,
    pub tcp_linux_to_peer_mib_s: Option<f64>,
    /// The runtime's medians over the Linux guest's.
    pub tcp_peer_to_partition_over_linux: Option<f64>,
    pub tcp_partition_to_peer_over_linux: Option<f64>,
    pub tcp: Option<TcpReport>,
    /// What failed in the TCP part (with the serial output), if anything did.
    pub tcp_errors: Vec<String>,
    /// The QEMU command line of the in-guest runs.
    pub qemu_args: Vec<String>,
}

/// ns per frame of `len`-byte frames through `plinth_bridge::bench`'s layout (the one the
/// kernel's `bench bridge` times): the median of `batches` batches of `frames`. Checks
/// first that the frame goes to the uplink alone, tagged [`VID`].
fn host_frame_ns(len: usize, frames: u64, batches: usize) -> Result<f64, BenchError> {
    let mut layout = Layout::new();
    let frame = Layout::frame(len);
    let expect = [Target {
        port: layout.uplink,
        tag: Some(VID),
    }];
    match layout.forward(&frame, 0) {
        Ok(n) if layout.targets() == expect && n == len + 4 => {}
        other => {
            return Err(BenchError::Setup(format!(
                "host bridge: a {len}-byte frame to the peer was not forwarded to the uplink alone, tagged {VID}: {other:?} {:?}",
                layout.targets()
            )));
        }
    }
    let mut per_batch = Vec::with_capacity(batches);
    for _ in 0..batches {
        let t0 = Instant::now();
        for _ in 0..frames {
            let _ = black_box(layout.forward(black_box(&frame), 0));
        }
        per_batch.push(t0.elapsed().as_nanos() as f64 / frames.max(1) as f64);
    }
    Ok(Spread::of(&per_batch).median)
}

/// One host run: both sizes.
pub fn host_forwarding(frames: u64, batches: usize) -> Result<FrameNs, BenchError> {
    Ok(FrameNs {
        ns_64: host_frame_ns(64, frames, batches)?,
        ns_1500: host_frame_ns(1500, frames, batches)?,
    })
}

/// Reads `bench bridge: frames=N forward_64b_ns=X forward_1500b_ns=Y (...)`.
pub fn parse_bridge_line(line: &str) -> Option<(u64, FrameNs)> {
    let rest = &line[line.find(BRIDGE_LINE)? + BRIDGE_LINE.len()..];
    let field = |key: &str| -> Option<u64> {
        rest.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    let (frames, ns_64, ns_1500) = (
        field("frames")?,
        field("forward_64b_ns")?,
        field("forward_1500b_ns")?,
    );
    (frames > 0 && ns_64 > 0 && ns_1500 > 0).then_some((
        frames,
        FrameNs {
            ns_64: ns_64 as f64,
            ns_1500: ns_1500 as f64,
        },
    ))
}

/// One boot of the bare runtime: types `bench bridge FRAMES`, reads the figures, shuts
/// down. Also the QEMU arguments.
fn guest_forwarding(
    profile: &Profile,
    opts: &LaunchOptions,
    frames: u64,
    run: usize,
) -> Result<(FrameNs, Vec<String>), BenchError> {
    let qemu_args = profile
        .args(opts)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut m = launch(profile, opts, run)?;
    if let Err(e) = m.wait_ready(Duration::from_secs(60)) {
        return Err(failed(&mut m, run, e));
    }
    if let Err(e) = m.send_line(&format!("bench bridge {frames}")) {
        return Err(failed(&mut m, run, e));
    }
    let line = match m.wait_for(Duration::from_secs(300), |l| l.contains(BRIDGE_LINE)) {
        Ok(l) => l.text,
        Err(e) => return Err(failed(&mut m, run, e)),
    };
    let sample = match parse_bridge_line(&line) {
        Some((n, s)) if n == frames => s,
        _ => return Err(BenchError::Figures { run, line }),
    };
    shut_down(&mut m, run)?;
    Ok((sample, qemu_args))
}

/// The echo agent's `echo: discard N bytes in T ms` (or `chargen`): MiB/s.
pub fn parse_echo_line(line: &str, service: &str) -> Option<f64> {
    let key = format!("echo: {service} ");
    let rest = &line[line.find(&key)? + key.len()..];
    let mut words = rest.split_whitespace();
    let bytes: u64 = words.next()?.parse().ok()?;
    if words.next()? != "bytes" || words.next()? != "in" {
        return None;
    }
    let ms: u64 = words.next()?.parse().ok()?;
    (ms > 0 && bytes > 0).then(|| bytes as f64 / MIB / (ms as f64 / 1e3))
}

/// What failed in the TCP part.
#[derive(Debug, thiserror::Error)]
pub enum TcpError {
    #[error("{0}")]
    Lab(#[from] LabError),
    #[error("{0}")]
    Bench(#[from] BenchError),
    #[error("run {run}, the runtime: {what}\n--- the runtime's serial output ---\n{transcript}")]
    Runtime {
        run: usize,
        what: String,
        transcript: String,
    },
}

/// The appliance of the TCP runs: one partition `p` with one NIC, on tenant `bench`'s
/// static VLAN [`VID`], running the `echo` example agent at [`DUT_ADDR`] with
/// [`ECHO_BUFFER_KIB`] buffers.
fn build_echo_appliance(
    dir: &std::path::Path,
    memory_mib: u32,
) -> Result<std::path::PathBuf, BenchError> {
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let built = crate::build::build_agents(true).map_err(|e| setup(&e))?;
    let tenants = format!(
        "kind = \"tenants\"\n\n[[tenant]]\nname = \"bench\"\nvlan = {VID}\npartitions = [\"p\"]\n"
    );
    let config = format!("address = \"{DUT_ADDR}\"\ntcp_buffer_kib = {ECHO_BUFFER_KIB}\n");
    crate::image::build_with_examples(
        dir,
        &crate::image::example_spec(
            u64::from(memory_mib),
            &["echo"],
            "\n[[partition]]\nname = \"p\"\nmemory_mib = 16\ncpus = 1\nnics = 1\n",
            &["deployment.toml", "tenants.toml"],
        ),
        &[
            (
                "deployment.toml",
                &crate::image::example_deployment(&[("echo", "p")]),
            ),
            ("tenants.toml", &tenants),
        ],
        &[TestAgent {
            name: "echo",
            example: "echo",
            config: &[("etc/echo.toml", &config)],
        }],
        &built,
    )
    .map_err(|e| setup(&e))
}

/// Waits for a line containing `needle` from the runtime; the error carries its serial.
fn runtime_line(
    m: &mut Machine,
    run: usize,
    needle: &str,
    timeout: Duration,
) -> Result<String, TcpError> {
    match m.wait_for(timeout, |l| l.contains(needle)) {
        Ok(l) => Ok(l.text),
        Err(e) => Err(TcpError::Runtime {
            run,
            what: format!("no line containing {needle:?}: {e}"),
            transcript: m.transcript(),
        }),
    }
}

/// Everything the TCP runs share: the lab, its taps, the peer.
struct TcpLab {
    // Dropped before the lab that holds its tap.
    peer: Option<LinuxPeer>,
    lab: Lab,
    peer_tap: String,
    dut_tap: String,
    profile: String,
    peer_qemu_args: Vec<String>,
}

impl TcpLab {
    fn new(profile: &str) -> Result<TcpLab, TcpError> {
        let lab = Lab::new("benchbr")?;
        let peer_tap = lab.tap("br-peer")?;
        let dut_tap = lab.tap("br-dut")?;
        Ok(TcpLab {
            lab,
            peer_tap,
            dut_tap,
            peer: None,
            profile: profile.to_owned(),
            peer_qemu_args: Vec::new(),
        })
    }

    /// The peer, booted if there is none (the first time, or after one failed).
    fn peer(&mut self) -> Result<&mut LinuxPeer, TcpError> {
        if self.peer.is_none() {
            let mut c = PeerConfig::new(
                "peer",
                self.lab.link(&self.peer_tap),
                &[VlanIf::new(VID, PEER_ADDR)],
            );
            c.profile = self.profile.clone();
            let mut p = LinuxPeer::start(c)?;
            p.ready()?;
            self.peer_qemu_args = p.guest().qemu_args().to_vec();
            self.peer = Some(p);
        }
        Ok(self.peer.as_mut().expect("booted above"))
    }

    /// Before a device's transfers: the peer forgets the last device's MAC (both have
    /// [`DUT_IP`]) and resolves the new one, so neither transfer times an ARP exchange.
    /// Nor does Linux keep what it learnt of the path to [`DUT_IP`] (`tcp_metrics`:
    /// ssthresh, RTT): each device starts from the same TCP state, not from what the
    /// device before it left (a lossy round would start the next one's congestion
    /// window low).
    fn meet(&mut self) -> Result<(), TcpError> {
        let peer = self.peer()?;
        peer.run_ok("echo 1 > /proc/sys/net/ipv4/tcp_no_metrics_save")?;
        peer.run_ok(&format!("ip neigh flush dev eth0.{VID}"))?;
        // An unanswered ping is no error here: the transfer says what is wrong.
        let _ = peer.ping(DUT_IP, 1)?;
        Ok(())
    }

    /// A peer whose command failed is not trusted with the next: boot another.
    fn forget_peer_on<T>(&mut self, r: Result<T, TcpError>) -> Result<T, TcpError> {
        if matches!(r, Err(TcpError::Lab(LabError::Peer { .. }))) {
            self.peer = None;
        }
        r
    }
}

/// One TCP round on the runtime: boots the echo appliance on the lab, sends to discard,
/// reads from chargen, shuts down.
fn plinth_tcp(
    t: &mut TcpLab,
    profile: &Profile,
    opts: &LaunchOptions,
    image: &std::path::Path,
    bytes: u64,
    run: usize,
) -> Result<(TcpSample, Vec<String>), TcpError> {
    let mut opts = opts.clone();
    opts.disk = Some(crate::profile::Disk {
        image: image.to_path_buf(),
        serial: "plinth-bench".into(),
    });
    opts.nic = None;
    opts.tap = Some(crate::profile::Tap {
        ifname: t.dut_tap.clone(),
        mac: crate::lab::unique_mac(),
    });
    opts.netns = Some(t.lab.netns().to_owned());
    opts.append = format!("{} ip={MGMT_IP}", opts.append).trim().to_owned();
    let qemu_args = profile
        .args(&opts)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    // The peer first: its boot is not to overlap the runtime's transfers.
    t.peer()?;
    let mut m = launch(profile, &opts, run)?;
    let timeout = Duration::from_secs(120);
    runtime_line(&mut m, run, "echo: up ", timeout)?;
    let r = t.meet();
    t.forget_peer_on(r)?;
    let peer = t.peer()?;
    let m0 = CpuMark::take(&m, peer.guest().machine());
    let sent = crate::lab::tcp_send(peer, DUT_IP, DISCARD_PORT, bytes).map_err(TcpError::from);
    let m1 = CpuMark::take(&m, peer.guest().machine());
    let sent = with_serial(t.forget_peer_on(sent), &mut m, run, "peer -> partition")?;
    let discard = runtime_line(&mut m, run, "echo: discard ", Duration::from_secs(30))?;
    let peer = t.peer()?;
    let m2 = CpuMark::take(&m, peer.guest().machine());
    let fetched = crate::lab::tcp_fetch(peer, DUT_IP, CHARGEN_PORT, bytes).map_err(TcpError::from);
    let m3 = CpuMark::take(&m, peer.guest().machine());
    let fetched = with_serial(t.forget_peer_on(fetched), &mut m, run, "partition -> peer")?;
    let chargen = runtime_line(&mut m, run, "echo: chargen ", Duration::from_secs(30))?;
    shut_down(&mut m, run)?;
    Ok((
        TcpSample {
            peer_to_dut_mib_s: sent.mib_per_s(),
            dut_to_peer_mib_s: fetched.mib_per_s(),
            dut_receive_mib_s: parse_echo_line(&discard, "discard"),
            dut_send_mib_s: parse_echo_line(&chargen, "chargen"),
            cpu: cpu_per_mib([m0, m1, m2, m3], bytes),
        },
        qemu_args,
    ))
}

/// A transfer's failure with the runtime's serial output added.
fn with_serial(
    r: Result<Transfer, TcpError>,
    m: &mut Machine,
    run: usize,
    what: &str,
) -> Result<Transfer, TcpError> {
    r.map_err(|e| TcpError::Runtime {
        run,
        what: format!("{what}: {e}"),
        transcript: m.transcript(),
    })
}

/// One TCP round on the Linux guest in the runtime's place: boots it with `eth0.100` at
/// [`DUT_ADDR`] on the runtime's profile, memory and accelerator; the peer sends to
/// `lab-tcp recv` and reads from `lab-tcp source`; shuts it down.
fn linux_tcp(
    t: &mut TcpLab,
    opts: &LaunchOptions,
    bytes: u64,
) -> Result<(TcpSample, Vec<String>), TcpError> {
    t.peer()?;
    let mut c = PeerConfig::new(
        "linux",
        t.lab.link(&t.dut_tap),
        &[VlanIf::new(VID, DUT_ADDR)],
    );
    c.profile = t.profile.clone();
    c.memory_mib = opts.memory_mib;
    c.accel = opts.accel;
    let mut g = LinuxPeer::start(c)?;
    g.ready()?;
    let qemu_args = g.guest().qemu_args().to_vec();
    let r = t.meet();
    t.forget_peer_on(r)?;
    let peer = t.peer.as_mut().expect("met above");
    let m0 = CpuMark::take(g.guest().machine(), peer.guest().machine());
    let sent = crate::lab::tcp_throughput(peer, &mut g, DUT_IP, bytes).map_err(TcpError::from);
    let m1 = CpuMark::take(g.guest().machine(), peer.guest().machine());
    let sent = t.forget_peer_on(sent)?;
    crate::lab::start_tcp_source(&mut g, CHARGEN_PORT)?;
    let peer = t.peer.as_mut().expect("used above");
    let m2 = CpuMark::take(g.guest().machine(), peer.guest().machine());
    let fetched = crate::lab::tcp_fetch(peer, DUT_IP, CHARGEN_PORT, bytes).map_err(TcpError::from);
    let m3 = CpuMark::take(g.guest().machine(), peer.guest().machine());
    let fetched = t.forget_peer_on(fetched)?;
    let (sourced, sourced_in) = crate::lab::tcp_source_result(&mut g)?;
    g.shutdown()?;
    let receiver_s = sent.receiver_elapsed.as_secs_f64();
    Ok((
        TcpSample {
            peer_to_dut_mib_s: sent.mib_per_s(),
            dut_to_peer_mib_s: fetched.mib_per_s(),
            dut_receive_mib_s: (receiver_s > 0.0).then(|| bytes as f64 / MIB / receiver_s),
            dut_send_mib_s: (!sourced_in.is_zero())
                .then(|| sourced as f64 / MIB / sourced_in.as_secs_f64()),
            cpu: cpu_per_mib([m0, m1, m2, m3], bytes),
        },
        qemu_args,
    ))
}

/// What the report says the TCP runs do.
pub fn tcp_workload(bytes: u64) -> String {
    format!(
        "{} MiB each way over VLAN {VID} between a Linux 802.1Q peer ({PEER_ADDR}, eth0.{VID}) and the device at {DUT_ADDR}: \
         peer -> device with `lab-tcp send` (64 KiB writes, connect to the device's close) to the echo agent's discard :{DISCARD_PORT} \
         or the Linux guest's `lab-tcp recv`; device -> peer with `lab-tcp fetch` (64 KiB reads, connect to the last byte) from \
         the agent's chargen :{CHARGEN_PORT} or `lab-tcp source`; timed by the peer's CLOCK_MONOTONIC, one connection, Linux defaults",
        bytes >> 20
    )
}

/// Runs the benchmark: in-guest and host forwarding each run, then (with `o.tcp`) the
/// TCP rounds, runtime then Linux guest each run. A TCP failure is kept in the report
/// (`tcp_errors`), with what did complete; the forwarding figures are always there.
pub fn run(
    profile: &Profile,
    opts: &LaunchOptions,
    o: &BridgeOptions,
    mut progress: impl FnMut(&str),
) -> Result<BridgeReport, BenchError> {
    let mut guest = Vec::with_capacity(o.runs);
    let mut host = Vec::with_capacity(o.runs);
    let mut qemu_args = Vec::new();
    for run in 1..=o.runs {
        let (g, args) = guest_forwarding(profile, opts, o.frames, run)?;
        qemu_args = args;
        let h = host_forwarding(o.host_frames, o.host_batches)?;
        progress(&format!(
            "run {run:>2}: forwarding in the guest {:7.0} ns (64 B) {:7.0} ns (1500 B); on the host {:6.1} ns {:6.1} ns",
            g.ns_64, g.ns_1500, h.ns_64, h.ns_1500
        ));
        guest.push(g);
        host.push(h);
    }
    let guest = Forwarding::of(guest);
    let host = Forwarding::of(host);
    let mut tcp_errors = Vec::new();
    let tcp = match o.tcp {
        true => Some(tcp_rounds(
            profile,
            opts,
            o,
            &mut tcp_errors,
            &mut progress,
        )?),
        false => None,
    };
    let side = |f: fn(&TcpReport) -> Option<&TcpSide>, g: fn(&TcpSide) -> Spread| {
        tcp.as_ref().and_then(f).map(|s| g(s).median)
    };
    let tcp_peer_to_partition_mib_s = side(|t| t.plinth.as_ref(), |s| s.peer_to_dut_mib_s);
    let tcp_partition_to_peer_mib_s = side(|t| t.plinth.as_ref(), |s| s.dut_to_peer_mib_s);
    let tcp_peer_to_linux_mib_s = side(|t| t.linux.as_ref(), |s| s.peer_to_dut_mib_s);
    let tcp_linux_to_peer_mib_s = side(|t| t.linux.as_ref(), |s| s.dut_to_peer_mib_s);
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    Ok(BridgeReport {
        profile: profile.name.clone(),
        accel: opts.accel,
        memory_mib: opts.memory_mib,
        options: o.clone(),
        forward_64b_fps: guest.fps_64,
        forward_1500b_fps: guest.fps_1500,
        per_frame_us: guest.ns_1500.median / 1e3,
        per_frame_64b_us: guest.ns_64.median / 1e3,
        per_frame_target_us: PER_FRAME_TARGET_US,
        host_forward_64b_fps: host.fps_64,
        host_forward_1500b_fps: host.fps_1500,
        host_build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        guest,
        host,
        tcp_peer_to_partition_over_linux: ratio(
            tcp_peer_to_partition_mib_s,
            tcp_peer_to_linux_mib_s,
        ),
        tcp_partition_to_peer_over_linux: ratio(
            tcp_partition_to_peer_mib_s,
            tcp_linux_to_peer_mib_s,
        ),
        tcp_peer_to_partition_mib_s,
        tcp_partition_to_peer_mib_s,
        tcp_peer_to_linux_mib_s,
        tcp_linux_to_peer_mib_s,
        tcp,
        tcp_errors,
        qemu_args,
    })
}

/// The TCP rounds. Set-up failures (no lab, no appliance) end the benchmark; a failed
/// round is recorded in `errors`, and a side that failed is not run again.
fn tcp_rounds(
    profile: &Profile,
    opts: &LaunchOptions,
    o: &BridgeOptions,
    errors: &mut Vec<String>,
    progress: &mut impl FnMut(&str),
) -> Result<TcpReport, BenchError> {
    let scratch = std::env::temp_dir().join(format!("plinth-bench-bridge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let image = build_echo_appliance(&scratch, opts.memory_mib);
    let mut t = TcpLab::new(&o.profile).map_err(|e| BenchError::Setup(e.to_string()))?;
    let linux_kernel = crate::linux_guest::LinuxGuest::fetch()
        .map_err(BenchError::LinuxSetup)?
        .describe();
    let image = image?;
    let (mut plinth, mut linux) = (Vec::new(), Vec::new());
    let (mut plinth_args, mut linux_args) = (Vec::new(), Vec::new());
    let (mut plinth_ok, mut linux_ok) = (true, o.linux);
    let mib = |s: &TcpSample| {
        let cpu = s.cpu.map_or(String::new(), |c| {
            format!(
                " (CPU ms/MiB device+peer: {:.1}+{:.1}, {:.1}+{:.1})",
                c.peer_to_dut_dut_ms,
                c.peer_to_dut_peer_ms,
                c.dut_to_peer_dut_ms,
                c.dut_to_peer_peer_ms
            )
        });
        format!(
            "peer -> {:7.1} MiB/s, -> peer {:7.1} MiB/s{cpu}",
            s.peer_to_dut_mib_s, s.dut_to_peer_mib_s
        )
    };
    for run in 1..=o.runs {
        if plinth_ok {
            match plinth_tcp(&mut t, profile, opts, &image, o.tcp_bytes, run) {
                Ok((s, args)) => {
                    progress(&format!("run {run:>2}: TCP partition:   {}", mib(&s)));
                    plinth.push(s);
                    plinth_args = args;
                }
                Err(e) => {
                    progress(&format!(
                        "run {run:>2}: TCP partition failed (see tcp_errors)"
                    ));
                    errors.push(format!("TCP with the partition, run {run}: {e}"));
                    plinth_ok = false;
                }
            }
        }
        if linux_ok {
            match linux_tcp(&mut t, opts, o.tcp_bytes) {
                Ok((s, args)) => {
                    progress(&format!("run {run:>2}: TCP Linux guest: {}", mib(&s)));
                    linux.push(s);
                    linux_args = args;
                }
                Err(e) => {
                    progress(&format!(
                        "run {run:>2}: TCP Linux guest failed (see tcp_errors)"
                    ));
                    errors.push(format!("TCP with the Linux guest, run {run}: {e}"));
                    linux_ok = false;
                }
            }
        }
    }
    if let Some(p) = t.peer.take() {
        let _ = p.shutdown();
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let plinth = TcpSide::of(plinth, plinth_args);
    let linux = TcpSide::of(linux, linux_args);
    let plinth_over_linux = match (&plinth, &linux) {
        (Some(p), Some(l)) => Some(TcpRatios {
            peer_to_partition: p.peer_to_dut_mib_s.median / l.peer_to_dut_mib_s.median,
            partition_to_peer: p.dut_to_peer_mib_s.median / l.dut_to_peer_mib_s.median,
        }),
        _ => None,
    };
    Ok(TcpReport {
        bytes: o.tcp_bytes,
        vlan: VID,
        workload: tcp_workload(o.tcp_bytes),
        plinth,
        linux,
        plinth_over_linux,
        linux_kernel,
        peer_qemu_args: t.peer_qemu_args.clone(),
    })
}

impl std::fmt::Display for BridgeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "bridge benchmark: {} runs, profile {}, accel {}, {} MiB",
            o.runs,
            self.profile,
            self.accel.as_str(),
            self.memory_mib
        )?;
        writeln!(
            f,
            "forwarding: partition access port (VLAN {VID}) -> uplink trunk, known unicast, tag pushed, frame written out; \
             in the guest {} frames per size per run (TSC), on the host {} x {} frames per size per run ({} build)",
            o.frames, o.host_batches, o.host_frames, self.host_build
        )?;
        writeln!(
            f,
            "{:<30} {:>10} {:>10} {:>10} {:>14}",
            "ns per frame", "median", "min", "max", "frames/s"
        )?;
        for (name, s, fps) in [
            ("in the guest, 64 B", self.guest.ns_64, self.guest.fps_64),
            (
                "in the guest, 1500 B",
                self.guest.ns_1500,
                self.guest.fps_1500,
            ),
            ("on the host, 64 B", self.host.ns_64, self.host.fps_64),
            ("on the host, 1500 B", self.host.ns_1500, self.host.fps_1500),
        ] {
            writeln!(
                f,
                "{name:<30} {:>10.1} {:>10.1} {:>10.1} {:>14.0}",
                s.median, s.min, s.max, fps
            )?;
        }
        writeln!(
            f,
            "per frame inside the guest: {:.3} us at 1500 B ({:.3} us at 64 B); target <= {} us: {:.2}x of it; guest/host {:.0}x at 1500 B",
            self.per_frame_us,
            self.per_frame_64b_us,
            self.per_frame_target_us,
            self.per_frame_us / self.per_frame_target_us,
            self.guest.ns_1500.median / self.host.ns_1500.median
        )?;
        if let Some(t) = &self.tcp {
            writeln!(f, "TCP: {}", t.workload)?;
            writeln!(
                f,
                "{:<40} {:>10} {:>10} {:>10} {:>12}",
                "MiB/s", "median", "min", "max", "own clock"
            )?;
            let own = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
            if let Some(p) = &t.plinth {
                for (name, s, c) in [
                    (
                        "peer -> partition (echo discard)",
                        p.peer_to_dut_mib_s,
                        p.dut_receive_mib_s,
                    ),
                    (
                        "partition -> peer (echo chargen)",
                        p.dut_to_peer_mib_s,
                        p.dut_send_mib_s,
                    ),
                ] {
                    writeln!(
                        f,
                        "{name:<40} {:>10.1} {:>10.1} {:>10.1} {:>12}",
                        s.median,
                        s.min,
                        s.max,
                        own(c)
                    )?;
                }
            }
            if let Some(l) = &t.linux {
                for (name, s, c) in [
                    (
                        "peer -> Linux guest (lab-tcp recv)",
                        l.peer_to_dut_mib_s,
                        l.dut_receive_mib_s,
                    ),
                    (
                        "Linux guest -> peer (lab-tcp source)",
                        l.dut_to_peer_mib_s,
                        l.dut_send_mib_s,
                    ),
                ] {
                    writeln!(
                        f,
                        "{name:<40} {:>10.1} {:>10.1} {:>10.1} {:>12}",
                        s.median,
                        s.min,
                        s.max,
                        own(c)
                    )?;
                }
            }
            for (name, side) in [("partition", &t.plinth), ("Linux guest", &t.linux)] {
                if let Some(c) = side.as_ref().and_then(|s| s.cpu) {
                    writeln!(
                        f,
                        "host CPU ms per MiB, {name} + peer (medians): peer -> {:.1} + {:.1}, -> peer {:.1} + {:.1}",
                        c.peer_to_dut_dut_ms,
                        c.peer_to_dut_peer_ms,
                        c.dut_to_peer_dut_ms,
                        c.dut_to_peer_peer_ms
                    )?;
                }
            }
            if let Some(r) = &t.plinth_over_linux {
                writeln!(
                    f,
                    "plinth/Linux (medians): peer -> {:.2}, -> peer {:.2}",
                    r.peer_to_partition, r.partition_to_peer
                )?;
            }
            writeln!(
                f,
                "(own clock: the echo agent's log line, or lab-tcp recv/source in the Linux guest; chargen and source count what they wrote, read or not)"
            )?;
            writeln!(f, "Linux: {}", t.linux_kernel)?;
            if let Some(p) = &t.plinth {
                writeln!(f, "plinth tcp qemu: {}", p.qemu_args.join(" "))?;
            }
            if let Some(l) = &t.linux {
                writeln!(f, "linux tcp qemu: {}", l.qemu_args.join(" "))?;
            }
            writeln!(f, "peer qemu: {}", t.peer_qemu_args.join(" "))?;
        }
        for e in &self.tcp_errors {
            writeln!(f, "error: {e}")?;
        }
        write!(f, "qemu: {}", self.qemu_args.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_line_is_read() {
        let line = "bench bridge: frames=20000 forward_64b_ns=812 forward_1500b_ns=1403 \
                    (64 B: 1231527 frames/s, 1500 B: 712758 frames/s)";
        let (n, s) = parse_bridge_line(line).unwrap();
        assert_eq!(n, 20000);
        assert_eq!(
            s,
            FrameNs {
                ns_64: 812.0,
                ns_1500: 1403.0
            }
        );
        assert_eq!(
            parse_bridge_line(&format!("[  1.0] {line}")).map(|p| p.0),
            Some(20000)
        );
        assert_eq!(
            parse_bridge_line("usage: bench blk N | bench bridge [FRAMES]"),
            None
        );
        assert_eq!(parse_bridge_line(&line.replace("=812", "=0")), None);
        assert_eq!(parse_bridge_line(&line.replace("frames=20000 ", "")), None);
    }

    #[test]
    fn echo_lines_give_mib_per_second() {
        let l = "[   3.2] INFO  p/echo: echo: discard 33554432 bytes in 2000 ms";
        assert_eq!(parse_echo_line(l, "discard"), Some(16.0));
        assert_eq!(parse_echo_line(l, "chargen"), None);
        assert_eq!(
            parse_echo_line("echo: chargen 1048576 bytes in 500 ms", "chargen"),
            Some(2.0)
        );
        assert_eq!(
            parse_echo_line("echo: chargen 1048576 bytes in 0 ms", "chargen"),
            None
        );
        assert_eq!(
            parse_echo_line("echo: discard many bytes in 5 ms", "discard"),
            None
        );
    }

    #[test]
    fn the_host_bridge_forwards_to_the_uplink_tagged() {
        let s = host_forwarding(1000, 1).unwrap();
        assert!(s.ns_64 > 0.0 && s.ns_1500 > 0.0, "{s:?}");
    }
}
