//! Hostile tenants and a hostile wire against the runtime's switch, end to end: the
//! runtime's uplink on a VLAN lab (`plinth::lab`) with a Linux 802.1Q peer, partitions
//! with NICs on tenant VLANs, and everything a user would look at — `/metrics`, the
//! serial log, captures of the wire and the peer's own interface counters.
//!
//! 1. A partition that attacks through its NIC (`hostile` in `net-attack` mode): tags for
//!    another VLAN, stacked tags, forged sources, bad lengths, a broadcast storm. Each is
//!    refused and counted by reason and nothing reaches the victim's VLAN; the victim
//!    tenant's TCP throughput under the storm is measured unlimited and with the
//!    attacker's frame rate and CPU limited (live resizes).
//! 2. A NIC capped at 1 MiB/s moves 1 MiB/s, where an uncapped one moves more; a live
//!    resize changes the cap, and the wire shows it within 100 ms of the request.
//! 3. A hostile wire: the peer injects runts, oversize frames, cut-off and unknown tags,
//!    stacked tags and a flood into a partition that never reads.
//!
//! The lab needs root (network namespaces, taps), like the other network tests. The
//! tests here measure throughput, so they run one at a time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plinth::lab::capture::ETHERTYPE_VLAN;
use plinth::lab::{Capture, Direction, Frame, Lab, LabError, LinuxPeer, PeerConfig, VlanIf};
use plinth::profile::Disk;
use plinth::setup::Need;
use plinth_tests::{Boot, NIC_MAC, Runtime, TestAgent, build_appliance};

/// The runtime's management address on the native VLAN, and the lab bridge's own.
const RUNTIME_IP: &str = "192.168.50.2";
const LAB_IP: &str = "192.168.50.1";
/// `example_spec`'s appliance name: partition NICs' MACs derive from it.
const APPLIANCE: &str = "example";
/// What the hostile agent's frames carry (`hostshim/examples/hostile.rs`).
const ETHERTYPE_HOSTILE: u16 = 0x88b5;
const LAB_INJECT: &str = include_str!("../../tools/lab/lab-inject.c");
const LAB_RATE: &str = include_str!("../../tools/lab/lab-rate.c");
const CURL: Need = Need::cmd("curl", "curl");

/// The tests share two cores and measure throughput: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ok<T>(r: Result<T, LabError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plinth-nethostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The MAC the runtime gives NIC `index` of `partition` (`partition::nics::derived_mac`:
/// FNV-1a over the machine's uplink MAC and `appliance/partition/index`, made local and
/// unicast). The attacker's config needs the victim's before the appliance is built; the
/// test checks it against what the runtime reports before relying on it.
fn derived_mac(partition: &str, index: u8) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in NIC_MAC
        .into_iter()
        .chain(APPLIANCE.bytes())
        .chain(*b"/")
        .chain(partition.bytes())
        .chain(*b"/")
        .chain([index])
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

fn mac_string(m: &[u8; 6]) -> String {
    plinth::lab::mac_string(m)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An agent of the appliance: example `example` as `name` with one config file.
fn agent(name: &'static str, example: &'static str, config: String) -> TestAgent<'static> {
    let file: &'static str = match example {
        "echo" => "etc/echo.toml",
        "hostile" => "etc/hostile.toml",
        "hello" => "etc/hello.toml",
        other => panic!("no config file known for {other}"),
    };
    TestAgent {
        name,
        example,
        config: Box::leak(Box::new([(file, &*Box::leak(config.into_boxed_str()))])),
    }
}

/// `[[partition]]` entries with one NIC each: (name, memory MiB).
fn partitions(parts: &[(&str, u64)]) -> String {
    parts
        .iter()
        .map(|(name, mib)| {
            // The hog only computes: no NIC, so no tenant.
            let nics = u32::from(*name != "hog");
            format!(
                "\n[[partition]]\nname = \"{name}\"\nmemory_mib = {mib}\ncpus = 1\nnics = {nics}\n"
            )
        })
        .collect()
}

/// A tenants policy: (tenant, VID, partitions).
fn tenants(list: &[(&str, u16, &[&str])]) -> String {
    let mut s = String::from("kind = \"tenants\"\n");
    for (name, vid, parts) in list {
        let parts: Vec<String> = parts.iter().map(|p| format!("\"{p}\"")).collect();
        s += &format!(
            "\n[[tenant]]\nname = \"{name}\"\nvlan = {vid}\npartitions = [{}]\n",
            parts.join(", ")
        );
    }
    s
}

/// `/metrics`, by series (`name{labels}`) as the runtime writes it.
#[derive(Clone, Debug, Default)]
struct Metrics(BTreeMap<String, f64>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        Metrics(
            text.lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .filter_map(|l| {
                    let (series, value) = l.rsplit_once(' ')?;
                    Some((series.to_owned(), value.parse().ok()?))
                })
                .collect(),
        )
    }

    /// A series' value; 0 if absent (drop counters appear once they are not 0).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let key = if labels.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{}}}", labels.join(","))
        };
        self.0.get(&key).copied().unwrap_or(0.0)
    }

    fn port(&self, what: &str, port: &str) -> u64 {
        self.get(
            &format!("plinth_bridge_port_{what}_total"),
            &[("port", port)],
        ) as u64
    }

    fn port_drops(&self, port: &str, reason: &str) -> u64 {
        self.get(
            "plinth_bridge_port_drops_total",
            &[("port", port), ("reason", reason)],
        ) as u64
    }

    /// Every drop reason counted on `port`, with its count.
    fn port_drop_reasons(&self, port: &str) -> BTreeMap<String, u64> {
        let prefix = format!("plinth_bridge_port_drops_total{{port=\"{port}\",reason=\"");
        self.0
            .iter()
            .filter_map(|(k, v)| {
                let reason = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                Some((reason.to_owned(), *v as u64))
            })
            .collect()
    }

    fn vlan(&self, what: &str, vid: u16) -> u64 {
        self.get(
            &format!("plinth_bridge_vlan_{what}_total"),
            &[("vlan", &vid.to_string())],
        ) as u64
    }

    fn vlan_drops(&self, vid: u16, reason: &str) -> u64 {
        self.get(
            "plinth_bridge_vlan_drops_total",
            &[("vlan", &vid.to_string()), ("reason", reason)],
        ) as u64
    }

    fn uptime(&self) -> f64 {
        self.get("plinth_uptime_seconds", &[])
    }
}

/// The runtime booted on a lab with one Linux peer. Dropping it kills both QEMUs and
/// deletes the lab and the appliance's directory.
struct World {
    rt: Runtime,
    /// The runtime's tap in the lab, for captures started later.
    rt_tap: String,
    peer: LinuxPeer,
    /// After the QEMUs: its namespace holds them.
    lab: Lab,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How to set up a [`World`].
struct Setup<'a> {
    name: &'a str,
    parts: &'a [(&'a str, u64)],
    agents: Vec<TestAgent<'static>>,
    /// (agent, partition)
    deploy: &'a [(&'a str, &'a str)],
    /// Policies besides the deployment: (file, text).
    policies: Vec<(&'a str, String)>,
    peer_vlans: &'a [VlanIf],
    /// MTU of the lab's wire (taps, bridge) and the peer's eth0: above 1500 to carry
    /// oversize frames to the runtime.
    mtu: u32,
    /// Capture the runtime's tap from before it boots.
    capture: bool,
}

impl World {
    fn start(s: Setup<'_>) -> (World, Option<Capture>) {
        plinth::setup::ensure(&[CURL]).unwrap_or_else(|e| panic!("{e}"));
        let d = TempDir(dir(s.name));
        let names: Vec<&str> = s.agents.iter().map(|a| a.name).collect();
        let mut files: Vec<&str> = vec!["deployment.toml"];
        files.extend(s.policies.iter().map(|(f, _)| *f));
        let spec = plinth::image::example_spec(256, &names, &partitions(s.parts), &files);
        let deployment = plinth::image::example_deployment(s.deploy);
        let mut policies: Vec<(&str, &str)> = vec![("deployment.toml", &deployment)];
        policies.extend(s.policies.iter().map(|(f, t)| (*f, t.as_str())));
        let image = build_appliance(&d.0, &spec, &policies, &s.agents);

        let lab = ok(Lab::new(s.name));
        let rt_tap = ok(lab.tap("rt"));
        let peer_tap = ok(lab.tap("peer"));
        let mtu = s.mtu.to_string();
        for dev in ["br0", rt_tap.as_str(), peer_tap.as_str()] {
            ok(lab.exec(&["ip", "link", "set", dev, "mtu", &mtu]));
        }
        ok(lab.exec(&["ip", "addr", "add", &format!("{LAB_IP}/24"), "dev", "br0"]));
        let capture = s.capture.then(|| ok(lab.capture(&rt_tap)));
        let rt_tap_name = rt_tap.clone();
        let config = PeerConfig::new("peer", lab.link(&peer_tap), s.peer_vlans)
            .program("lab-inject", LAB_INJECT)
            .program("lab-rate", LAB_RATE);
        let mut peer = ok(LinuxPeer::start(config));
        let mut rt = Boot {
            memory_mib: 256,
            append: format!("ip={RUNTIME_IP}/24"),
            disk: Some(Disk {
                image,
                serial: "appliance".into(),
            }),
            netns: Some((lab.netns().to_owned(), rt_tap)),
            ..Boot::default()
        }
        .start();
        ok(peer.ready());
        if s.mtu > 1500 {
            ok(peer.run_ok(&format!("ip link set eth0 mtu {}", s.mtu)));
        }
        rt.expect_ready();
        rt.expect_seen("api: listening");
        rt.expect_seen("boot: after ready");
        let w = World {
            rt,
            rt_tap: rt_tap_name,
            peer,
            lab,
            _dir: d,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while w.try_get("/api/v1/health").is_none() {
            assert!(
                Instant::now() < deadline,
                "the API does not answer in the lab"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        (w, capture)
    }

    /// `curl` inside the lab: the body, or `None` if the request failed.
    fn curl(&self, args: &[&str]) -> Option<String> {
        let mut all = vec!["curl", "-sS", "-f", "-m", "10"];
        all.extend_from_slice(args);
        self.lab.exec(&all).ok()
    }

    fn try_get(&self, path: &str) -> Option<String> {
        self.curl(&[&format!("http://{RUNTIME_IP}:8080{path}")])
    }

    fn get(&mut self, path: &str) -> String {
        match self.try_get(path) {
            Some(body) => body,
            None => panic!("GET {path} failed\n{}", self.rt.transcript()),
        }
    }

    /// `POST path` with a JSON `body` (or none); the answer's body.
    fn post(&mut self, path: &str, body: Option<&str>) -> String {
        let url = format!("http://{RUNTIME_IP}:8080{path}");
        let mut args = vec!["-X", "POST", "-H", "content-type: application/json"];
        if let Some(b) = body {
            args.extend(["-d", b]);
        }
        args.push(&url);
        match self.curl(&args) {
            Some(body) => body,
            None => panic!("POST {path} {body:?} failed\n{}", self.rt.transcript()),
        }
    }

    /// `POST /api/v1/partitions/PART/ACTION` (start, stop).
    fn act(&mut self, part: &str, action: &str) {
        self.post(&format!("/api/v1/partitions/{part}/{action}"), None);
    }

    /// `POST /api/v1/partitions/PART/resize` with `body`, a JSON object.
    fn resize(&mut self, part: &str, body: &str) {
        self.post(&format!("/api/v1/partitions/{part}/resize"), Some(body));
    }

    fn metrics(&mut self) -> Metrics {
        Metrics::parse(&self.get("/metrics"))
    }

    /// Lines of the serial transcript containing `needle`.
    fn lines(&mut self, needle: &str) -> Vec<String> {
        self.rt
            .transcript()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until `needle` has been logged `n` times.
    fn expect_count(&mut self, needle: &str, n: usize) {
        let deadline = Instant::now() + plinth_tests::LINE_TIMEOUT;
        while self.lines(needle).len() < n {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not logged {n} times\n{}",
                self.rt.transcript()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A counter of one of the peer's interfaces (`rx_packets` of `eth0.100`).
    fn peer_counter(&mut self, dev: &str, what: &str) -> u64 {
        let out = ok(self
            .peer
            .run_ok(&format!("cat /sys/class/net/{dev}/statistics/{what}")));
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{dev} {what}: {out:?}: {e}"))
    }

    /// A counter of one of the lab's interfaces (`tx_packets` of tap `peer`: frames
    /// the lab's bridge sent towards the peer).
    fn tap_counter(&self, dev: &str, what: &str) -> u64 {
        let out = ok(self
            .lab
            .exec(&["cat", &format!("/sys/class/net/{dev}/statistics/{what}")]));
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{dev} {what}: {out:?}: {e}"))
    }

    /// The runtime is still up: no panic on the console, and the API answers.
    fn assert_alive(&mut self) {
        let t = self.rt.transcript();
        assert!(
            !t.contains("panic") && !t.contains("PANIC"),
            "the runtime panicked:\n{t}"
        );
        let h = self.get("/api/v1/health");
        assert!(h.contains("\"ok\""), "health: {h}");
    }

    fn finish(mut self) {
        self.assert_alive();
        self.rt.shutdown();
        let World {
            rt,
            peer,
            lab,
            _dir,
            ..
        } = self;
        drop(rt);
        ok(peer.shutdown());
        drop(lab);
    }
}

/// `echo: up IP mac MAC` of partition `part`: the MAC.
fn echo_mac(w: &mut World, part: &str) -> [u8; 6] {
    let needle = format!("{part}/");
    w.rt.expect_seen(&format!("{needle}echo: echo: up"));
    let line = w
        .lines("echo: up ")
        .into_iter()
        .find(|l| l.contains(&needle))
        .unwrap();
    let mac = line.rsplit(' ').next().unwrap();
    let mut m = [0u8; 6];
    for (b, h) in m.iter_mut().zip(mac.split(':')) {
        *b = u8::from_str_radix(h, 16).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    }
    m
}

/// NIC 0's MAC of partition `part`, as `/api/v1/partitions` shows it.
fn nic_mac(w: &mut World, part: &str) -> [u8; 6] {
    let v: serde_json::Value = serde_json::from_str(&w.get("/api/v1/partitions"))
        .unwrap_or_else(|e| panic!("/api/v1/partitions: {e}"));
    let mac = v["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == part)
        .and_then(|p| p["nics"][0]["mac"].as_str())
        .unwrap_or_else(|| panic!("no NIC 0 of {part}: {v}"))
        .to_owned();
    let mut m = [0u8; 6];
    let mut parts = mac.split(':');
    for b in m.iter_mut() {
        *b = parts
            .next()
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .unwrap_or_else(|| panic!("MAC {mac:?}"));
    }
    m
}

/// `lab-tcp send IP PORT BYTES` on the peer: bytes per second, by the sender's clock.
fn tcp_send(w: &mut World, ip: &str, port: u16, bytes: u64) -> f64 {
    let out = ok(w.peer.run_timeout(
        &format!("lab-tcp send {ip} {port} {bytes}"),
        Duration::from_secs(300),
    ));
    let line = out
        .output
        .lines()
        .find_map(|l| l.strip_prefix("lab-tcp: sent="))
        .unwrap_or_else(|| panic!("lab-tcp send: {}", out.output));
    let (sent, ns) = line.split_once(" ns=").unwrap();
    let (sent, ns): (u64, u64) = (sent.parse().unwrap(), ns.trim().parse().unwrap());
    assert_eq!(sent, bytes, "{}", out.output);
    sent as f64 / (ns as f64 / 1e9)
}

/// How many times the storm is started and stopped under the victim's stream.
const STORM_ROUNDS: usize = 30;
/// How long after the attacker starts or stops a window starts.
const SETTLE: Duration = Duration::from_millis(500);
/// How long a window of the victim's stream lasts.
const WINDOW: Duration = Duration::from_millis(1500);

/// The peer's TCP stream (`lab-tcp send`, 1 TiB) into a partition's service, in the
/// background, measured on the partition's port.
struct Stream {
    part: String,
    agent: String,
}

/// What one window of a [`Stream`] measured.
#[derive(Clone, Copy)]
struct Window {
    /// Bytes a second.
    rate: f64,
    /// How long the receiving agent waited for the CPU each time it was given it, µs
    /// (`plinth_agent_run_delay_seconds` over `plinth_agent_scheduled`).
    wait_us: f64,
}

impl Stream {
    fn start(w: &mut World, ip: &str, port: u16, part: &str, agent: &str) -> Stream {
        ok(w.peer.run_ok(&format!(
            "lab-tcp send {ip} {port} 1099511627776 >/tmp/stream 2>&1 &"
        )));
        Stream {
            part: part.into(),
            agent: agent.into(),
        }
    }

    /// After [`SETTLE`], the bytes a second the switch handed the partition's NIC over
    /// [`WINDOW`], by the runtime's clock, and how long the agent waited for the CPU.
    fn window(&self, w: &mut World) -> Window {
        std::thread::sleep(SETTLE);
        let m0 = w.metrics();
        std::thread::sleep(WINDOW);
        let m1 = w.metrics();
        let agent = [
            ("partition", self.part.as_str()),
            ("agent", self.agent.as_str()),
        ];
        let delta = |name: &str| m1.get(name, &agent) - m0.get(name, &agent);
        let span = m1.uptime() - m0.uptime();
        // The CPU's time is all accounted for, idle among it, and the agent ran: the
        // figures below are the runtime's own, not zeros from missing metrics.
        let cpu = |mode: &str| {
            let labels = [("cpu", "0"), ("mode", mode)];
            m1.get("plinth_cpu_seconds_total", &labels)
                - m0.get("plinth_cpu_seconds_total", &labels)
        };
        let modes = [cpu("idle"), cpu("agents"), cpu("runtime")];
        assert!(
            (modes.iter().sum::<f64>() - span).abs() < 0.02 * span
                && modes.iter().all(|t| *t >= 0.0),
            "CPU time {modes:?} s over {span} s"
        );
        assert!(
            delta("plinth_agent_scheduled") > 0.0,
            "{} never ran",
            self.agent
        );
        let port = format!("{}/0", self.part);
        Window {
            rate: (m1.port("tx_bytes", &port) - m0.port("tx_bytes", &port)) as f64 / span,
            wait_us: 1e6 * delta("plinth_agent_run_delay_seconds")
                / delta("plinth_agent_scheduled").max(1.0),
        }
    }

    /// Ends the stream, which must still be running (it stalled or failed otherwise).
    fn stop(self, w: &mut World) {
        let alive = w
            .peer
            .run("pidof lab-tcp && kill $(pidof lab-tcp); cat /tmp/stream");
        let ran = ok(alive);
        assert_eq!(ran.status, 0, "the stream ended early: {}", ran.output);
    }
}

/// A frame's bytes as `lab-inject` takes them: `dst`, `src`, each tag (TPID, TCI)
/// outermost first, `ethertype`, then a marker; `lab-inject` pads it with zeros.
fn frame(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    for (tpid, tci) in tags {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(b"plinth-lab-inject");
    f
}

/// `lab-inject eth0 COUNT LEN HEX` on the peer: (sent, errors, first error line).
fn inject(w: &mut World, count: u64, len: usize, bytes: &[u8]) -> (u64, u64, String) {
    let hex = hex(bytes);
    let out = ok(w.peer.run_timeout(
        &format!("lab-inject eth0 {count} {len} {hex}"),
        Duration::from_secs(120),
    ));
    let line = out
        .output
        .lines()
        .find_map(|l| l.strip_prefix("lab-inject: sent="))
        .unwrap_or_else(|| panic!("lab-inject: {}", out.output));
    let mut f = line.split_whitespace();
    let sent = f.next().unwrap().parse().unwrap();
    let errors = f
        .next()
        .and_then(|e| e.strip_prefix("errors="))
        .unwrap()
        .parse()
        .unwrap();
    let error = out
        .output
        .lines()
        .find(|l| l.starts_with("lab-inject: error"))
        .unwrap_or_default()
        .to_owned();
    (sent, errors, error)
}

const MIB: f64 = 1024.0 * 1024.0;
const TPID: u16 = 0x8100;
const TPID_AD: u16 = 0x88a8;
const BROADCAST: [u8; 6] = [0xff; 6];
/// `lab-rate`'s reporting period.
const RATE_TICK: f64 = 0.25;

/// A stream's rate seen two ways.
#[derive(Clone, Copy, Debug)]
struct Rate {
    /// Bytes per second the sending partition's NIC handed the switch (whole frames,
    /// Ethernet header included: what its token bucket counts), by the runtime's uptime.
    wire: f64,
    /// TCP payload per second the peer read, over about the same span.
    payload: f64,
}

/// Reads `ip`'s chargen (TCP 19) from the peer for `warmup + window` seconds and
/// measures partition `part`'s NIC over the last `window` (past a token bucket's burst).
fn chargen_rate(w: &mut World, ip: &str, part: &str, warmup: u64, window: u64) -> Rate {
    let secs = warmup + window + 1;
    ok(w.peer.run_ok(&format!(
        "rm -f /tmp/rate; lab-rate {ip} 19 {secs} >/tmp/rate 2>&1 &"
    )));
    std::thread::sleep(Duration::from_secs(warmup));
    let port = format!("{part}/0");
    let m0 = w.metrics();
    std::thread::sleep(Duration::from_secs(window));
    let m1 = w.metrics();
    let wire = (m1.port("rx_bytes", &port) - m0.port("rx_bytes", &port)) as f64
        / (m1.uptime() - m0.uptime());
    let out = ok(w.peer.run_ok(
        "i=0; until grep -q -e total -e error /tmp/rate; do i=$((i+1)); \
         [ $i -lt 200 ] || break; usleep 50000; done; cat /tmp/rate",
    ));
    assert!(!out.contains("error"), "lab-rate: {out}");
    // `t=NS bytes=N` every 250 ms: the samples just inside the window.
    let samples: Vec<(f64, f64)> = out
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("lab-rate: t=")?;
            let (t, b) = rest.split_once(" bytes=")?;
            Some((t.parse::<f64>().ok()? / 1e9, b.trim().parse().ok()?))
        })
        .collect();
    let at = |t: f64| {
        samples
            .iter()
            .find(|(s, _)| *s >= t - RATE_TICK / 2.0)
            .copied()
            .unwrap_or_else(|| panic!("no lab-rate sample at {t} s: {out}"))
    };
    let (t0, b0) = at(warmup as f64);
    let (t1, b1) = at((warmup + window) as f64);
    Rate {
        wire,
        payload: (b1 - b0) / (t1 - t0),
    }
}

/// Now, as nanoseconds since the Unix epoch: the clock `tapcap` stamps frames with.
fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// What a live limit change looked like on the wire.
#[derive(Debug)]
struct Change {
    /// From the request leaving the host to the API's answer.
    answered: Duration,
    /// From the request leaving the host to the first frame the old limit could not have
    /// let out (raising), or to the point from which the new limit is never exceeded
    /// (lowering).
    effect: Duration,
    /// The NIC's rate on the wire after the change, bytes/s, over the rest of the window.
    after: f64,
}

/// Partition `part` (MAC `mac`, at `ip`) streams chargen to the peer under a byte limit
/// of `low`; with the runtime's tap captured, the limit is raised live to `high`, then
/// lowered back to `low` 1.5 s later. Both changes are timed on the wire, by the host's
/// clock, from the moment each request left the host.
fn live_changes(
    w: &mut World,
    ip: &str,
    part: &str,
    mac: [u8; 6],
    low: u64,
    high: u64,
) -> (Change, Change) {
    const STEP: Duration = Duration::from_millis(1500);
    ok(w.peer.run_ok(&format!(
        "rm -f /tmp/rate; lab-rate {ip} 19 7 >/tmp/rate 2>&1 &"
    )));
    // The bucket's burst is spent and the stream steady at `low` after 2 s.
    std::thread::sleep(Duration::from_millis(1000));
    let capture = ok(w.lab.capture(&w.rt_tap));
    std::thread::sleep(Duration::from_millis(1500));
    let change = |w: &mut World, rate: u64| {
        let t = wall_ns();
        w.resize(part, &format!("{{\"net_bytes_per_sec\": {rate}}}"));
        let answered = wall_ns();
        std::thread::sleep(STEP);
        (t, answered)
    };
    let (up, up_answered) = change(w, high);
    let (down, down_answered) = change(w, low);
    let frames = ok(capture.stop());
    let out = ok(w.peer.run_ok(
        "i=0; until grep -q -e total -e error /tmp/rate; do i=$((i+1)); \
         [ $i -lt 200 ] || break; usleep 50000; done; cat /tmp/rate",
    ));
    assert!(!out.contains("error"), "lab-rate: {out}");
    // The partition's frames as the wire carried them: (time, bytes).
    let ours: Vec<(u64, f64)> = frames
        .iter()
        .filter(|f| f.direction == Direction::Received && f.src == mac && f.vid == Some(100))
        .map(|f| (f.at_ns, f.len as f64))
        .collect();
    assert!(
        ours.len() > 100,
        "{} of the partition's frames captured",
        ours.len()
    );
    let secs = |ns: u64| ns as f64 / 1e9;
    // How far the stream ran ahead of `low` over any stretch of the steady second before
    // the raise (the runtime coalesces what the bucket lets out into larger frames for
    // the wire), plus one full frame: more than that is the new limit at work.
    let steady: Vec<&(u64, f64)> = ours
        .iter()
        .filter(|(t, _)| *t > up - 1_000_000_000 && *t <= up)
        .collect();
    let ahead = (0..steady.len())
        .map(|i| {
            let mut sum = 0.0;
            steady[i..]
                .iter()
                .map(|(t, b)| {
                    sum += b;
                    sum - low as f64 * secs(t - steady[i].0)
                })
                .fold(0.0, f64::max)
        })
        .fold(0.0, f64::max);
    let slack = ahead + 1518.0;
    let bytes = |from: u64, to: u64| -> f64 {
        ours.iter()
            .filter(|(t, _)| *t > from && *t <= to)
            .map(|(_, b)| b)
            .sum()
    };
    let step_ns = STEP.as_nanos() as u64;
    let low = low as f64;
    let before = bytes(up - 1_000_000_000, up);
    assert!(
        (before - low).abs() <= 0.05 * low,
        "{before} bytes in the second before the raise, at {low} bytes/s"
    );
    // Raising: the first frame past what `low` (plus the slack) allows since `up`.
    let first_beyond = |from: u64, to: u64| {
        let mut sent = 0.0;
        ours.iter()
            .filter(|(t, _)| *t > from && *t <= to)
            .find(|(t, b)| {
                sent += b;
                sent > low * secs(t - from) + slack
            })
            .map(|(t, _)| *t)
    };
    let raised =
        first_beyond(up, down).unwrap_or_else(|| panic!("the raise never showed on the wire"));
    // Lowering: the earliest frame from which `low` (plus slack) is never exceeded.
    let end = down + step_ns;
    let after_down: Vec<&(u64, f64)> = ours
        .iter()
        .filter(|(t, _)| *t > down && *t <= end)
        .collect();
    let lowered = (0..after_down.len())
        .find(|&i| {
            let from = after_down[i].0;
            let mut sum = 0.0;
            after_down[i..].iter().all(|(t, b)| {
                sum += b;
                sum <= low * secs(t - from) + slack
            })
        })
        .map(|i| after_down[i].0)
        .unwrap_or(end);
    let rate_after = |from: u64, to: u64| bytes(from, to) / secs(to - from);
    (
        Change {
            answered: Duration::from_nanos(up_answered - up),
            effect: Duration::from_nanos(raised.saturating_sub(up)),
            after: rate_after(raised, down),
        },
        Change {
            answered: Duration::from_nanos(down_answered - down),
            effect: Duration::from_nanos(lowered.saturating_sub(down)),
            after: rate_after(lowered, end),
        },
    )
}

/// Gives the runtime's virtual CPU a host core of its own, as the runtime would have a
/// machine of its own: its QEMU's busiest thread (under TCG, the vCPU) on host CPU 1,
/// every other thread of it and of the peer's QEMU on CPU 0 (threads they start later
/// inherit that). Without it, on a two-core host, whatever keeps the runtime's vCPU busy
/// — any partition, hostile or not — also takes host time from the peer that sends the
/// victim its data, which is the host's contention, not the runtime's. `None` (nothing
/// pinned) on a host with fewer than two CPUs, or if `taskset` refuses.
fn pin_runtime_cpu(w: &mut World) -> Option<String> {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus < 2 {
        return None;
    }
    let threads = |pid: u32| -> Vec<(u32, u64)> {
        let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        dir.filter_map(|e| {
            let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
            // Fields after the command's closing parenthesis: utime and stime are the
            // 12th and 13th.
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some((tid, ticks))
        })
        .collect()
    };
    let pin = |tid: u32, cpu: u32| {
        std::process::Command::new("taskset")
            .args(["-pc", &cpu.to_string(), &tid.to_string()])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let rt = threads(w.rt.machine.pid());
    let peer = threads(w.peer.guest().machine().pid());
    let vcpu = rt.iter().max_by_key(|(_, t)| *t)?.0;
    let mut ok = pin(vcpu, 1);
    for (tid, _) in rt.iter().chain(&peer).filter(|(t, _)| *t != vcpu) {
        ok &= pin(*tid, 0);
    }
    ok.then(|| {
        format!(
            "the runtime's vCPU thread ({vcpu}) on host CPU 1; its {} other threads and the peer's {} on CPU 0",
            rt.len() - 1,
            peer.len()
        )
    })
}

/// The storm's evidence over `secs` seconds of quiet on VLAN 100: frames accepted into
/// VLAN 300 and sent towards the peer, while nothing reached the victim's NIC, VLAN 100
/// or the peer's `eth0.100`. (The peer's virtio NIC filters VLANs it has no interface
/// for, so its guest never sees the storm.) Storm control holds what the attacker's NIC
/// floods to the runtime's 2000 frames/s and counts the rest. Returns the frames the
/// storm put into VLAN 300 a second and those storm control dropped a second.
fn storm_is_contained(w: &mut World, victim_port: &str, secs: u64) -> (f64, f64) {
    let rx100 = w.peer_counter("eth0.100", "rx_packets");
    let wire0 = w.tap_counter("peer", "tx_packets");
    let m0 = w.metrics();
    std::thread::sleep(Duration::from_secs(secs));
    let m1 = w.metrics();
    let storm = m1.vlan("frames", 300) - m0.vlan("frames", 300);
    let span = m1.uptime() - m0.uptime();
    let fps = storm as f64 / span;
    let held =
        m1.port_drops("attacker/0", "storm_control") - m0.port_drops("attacker/0", "storm_control");
    assert_eq!(
        m1.vlan_drops(300, "storm_control") - m0.vlan_drops(300, "storm_control"),
        held,
        "storm control's drops, on the port and in its VLAN"
    );
    // 2000 a second, and the bucket's burst of 2000 at most once.
    assert!(
        (storm as f64) <= 2000.0 * span * 1.02 + 2000.0,
        "storm control lets {fps:.0} frames/s into VLAN 300"
    );
    assert_eq!(
        m1.port("tx_frames", victim_port),
        m0.port("tx_frames", victim_port),
        "frames reached the victim's NIC while only the attacker sent"
    );
    assert_eq!(
        m1.vlan("frames", 100),
        m0.vlan("frames", 100),
        "frames entered VLAN 100 while only the attacker sent"
    );
    assert_eq!(
        w.peer_counter("eth0.100", "rx_packets"),
        rx100,
        "the peer's eth0.100 received frames while only the attacker sent"
    );
    let reached = w.tap_counter("peer", "tx_packets") - wire0;
    assert!(
        storm > 1000 && reached > 1000,
        "a storm on VLAN 300: {storm} frames accepted, {reached} on the peer's wire"
    );
    (fps, held as f64 / span)
}

/// Each agent's CPU time so far, ns, by agent name, and the runtime's own and idle time
/// (`plinth_cpu_seconds_total`) as `[runtime]` and `[idle]`.
fn agent_cpu(w: &mut World) -> BTreeMap<String, u64> {
    let v: serde_json::Value = serde_json::from_str(&w.get("/api/v1/partitions"))
        .unwrap_or_else(|e| panic!("/api/v1/partitions: {e}"));
    let mut out = BTreeMap::new();
    let m = w.metrics();
    for mode in ["idle", "runtime"] {
        let secs = m.get("plinth_cpu_seconds_total", &[("cpu", "0"), ("mode", mode)]);
        out.insert(format!("[{mode}]"), (secs * 1e9) as u64);
    }
    for p in v["partitions"].as_array().into_iter().flatten() {
        for a in p["agents"].as_array().into_iter().flatten() {
            let name = a["name"].as_str().unwrap_or_default().to_owned();
            out.insert(name, a["cpu_ns"].as_u64().unwrap_or(0));
        }
    }
    out
}

/// Each agent's share of the time since `since` (from [`agent_cpu`]), as `name N%`,
/// and the runtime's own and idle shares, as `[runtime] N%` and `[idle] N%`.
fn cpu_share(w: &mut World, since: &(BTreeMap<String, u64>, Instant)) -> String {
    let now = agent_cpu(w);
    let wall = since.1.elapsed().as_nanos() as f64;
    now.iter()
        .map(|(a, ns)| {
            let used = ns.saturating_sub(since.0.get(a).copied().unwrap_or(0));
            format!("{a} {:.0}%", 100.0 * used as f64 / wall)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The agent's tally `hostile: net KIND: N handed over, M refused`.
fn tally(w: &mut World, kind: &str) -> (u64, u64) {
    let needle = format!("attacker/hostile: hostile: net {kind}: ");
    let line = w
        .lines(&needle)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no tally for {kind}"));
    let rest = &line[line.find(&needle).unwrap() + needle.len()..];
    let (n, rest) = rest.split_once(" handed over, ").unwrap();
    let m = rest.split_whitespace().next().unwrap();
    (n.parse().unwrap(), m.parse().unwrap())
}

/// Test 1. A hostile partition (`hostile` in `net-attack` mode, tenant `evil` on VLAN 300)
/// against tenant `blue` (VLAN 100), whose partition runs `echo`, with a Linux peer on
/// VLAN 100 only. The attacker's first run throws every malformed and forged frame while
/// the runtime's tap is captured; it is stopped before its storm, and the victim's
/// throughput is measured on one stream while the unlimited storm is started and stopped
/// in turn, then for the record beside a partition that only computes and under the storm
/// limited by live resizes.
#[test]
fn a_hostile_partition_is_contained_and_its_storm_spares_the_victim() {
    let _alone = alone();
    let t0 = Instant::now();
    let victim_mac = derived_mac("victim", 0);
    let attacker_mac = derived_mac("attacker", 0);
    let hostile = format!(
        "mode = \"net-attack\"\nattack = \"all\"\nvictim_vlan = 100\nown_vlan = 300\n\
         victim_mac = \"{}\"\nmgmt_mac = \"{}\"\nstorm_at_ms = 15000\nstorm = \"spin\"\n",
        mac_string(&victim_mac),
        mac_string(&NIC_MAC)
    );
    let (mut w, capture) = World::start(Setup {
        name: "hostile",
        parts: &[("victim", 32), ("attacker", 16), ("hog", 16)],
        agents: vec![
            agent("echo", "echo", "address = \"10.1.1.5/24\"\n".into()),
            agent("hostile", "hostile", hostile),
            TestAgent {
                name: "spinner",
                example: "spinner",
                config: &[],
            },
        ],
        deploy: &[
            ("echo", "victim"),
            ("hostile", "attacker"),
            ("spinner", "hog"),
        ],
        policies: vec![
            (
                "tenants.toml",
                tenants(&[("blue", 100, &["victim"]), ("evil", 300, &["attacker"])]),
            ),
            // The victim is the service this machine is for: while it works and agents
            // keep the CPU over half busy, the others' agents are throttled.
            (
                "protection.toml",
                "kind = \"protection\"\n\n[contention]\ncpu_busy_percent = 50\n\n\
                 [[limit]]\npartition = \"victim\"\nprotected = true\n"
                    .into(),
            ),
        ],
        peer_vlans: &[VlanIf::new(100, "10.1.1.1/24")],
        mtu: 1500,
        capture: true,
    });
    println!("hostile: lab, peer and runtime up after {:?}", t0.elapsed());
    match pin_runtime_cpu(&mut w) {
        Some(how) => println!("hostile: pinned {how}"),
        None => println!("hostile: nothing pinned (one host CPU, or taskset refused)"),
    }
    assert_eq!(echo_mac(&mut w, "victim"), victim_mac, "derived MACs");
    assert_eq!(nic_mac(&mut w, "victim"), victim_mac, "derived MACs");
    assert_eq!(nic_mac(&mut w, "attacker"), attacker_mac, "derived MACs");
    w.expect_count("attacker/hostile: hostile: net one-shots done", 1);
    // Stopped before its storm starts: the baseline is measured in peace. The hog (a
    // partition that only computes) runs only for its own measurement.
    w.act("attacker", "stop");
    w.act("hog", "stop");
    std::thread::sleep(Duration::from_millis(300));
    let frames = ok(capture.unwrap().stop());
    let m = w.metrics();

    // Every forged or malformed frame the call took was dropped, by reason, on the
    // attacker's port; the bad lengths were refused by the call and counted nowhere.
    let control = tally(&mut w, "control");
    let tagged = tally(&mut w, "tagged");
    let tagged_max = tally(&mut w, "tagged-max");
    let double = tally(&mut w, "double-tag");
    let spoof = tally(&mut w, "spoof");
    let bad_source = tally(&mut w, "bad-source");
    let truncated = tally(&mut w, "truncated");
    for (kind, refused) in [("runt", 3), ("oversize", 6)] {
        assert_eq!(tally(&mut w, kind), (0, refused), "{kind}");
        let codes = w.lines(&format!("hostile: net {kind} len "));
        assert_eq!(codes.len() as u64, refused, "{codes:#?}");
        assert!(
            codes.iter().all(|l| l.ends_with("(bad length)")),
            "{kind} refused as bad lengths: {codes:#?}"
        );
    }
    // The offload calls misused: each refused with the error it calls for, nothing handed
    // over (the uplink cuts super-frames, so transmit offload was granted in between).
    assert_eq!(tally(&mut w, "offload"), (0, 7), "offload");
    let codes = w.lines("hostile: net offload ");
    assert!(
        codes
            .iter()
            .all(|l| !l.contains("UNEXPECTED") && !l.contains("NOT AN ERROR")),
        "{codes:#?}"
    );
    assert_eq!(
        w.lines("hostile: net offload granted 2").len(),
        1,
        "{codes:#?}"
    );
    let expected: BTreeMap<String, u64> = [
        ("tagged_on_access", tagged.0 + tagged_max.0 + double.0),
        ("spoofed_source", spoof.0),
        ("bad_source", bad_source.0),
        ("truncated", truncated.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(
        (
            control,
            tagged.0,
            double.0,
            spoof.0,
            bad_source.0,
            truncated.0
        ),
        ((2, 0), 6, 6, 4, 3, 3),
        "what the attacker handed over"
    );
    assert_eq!(
        m.port_drop_reasons("attacker/0"),
        expected,
        "attacker's drops"
    );
    let handed: u64 = expected.values().sum::<u64>() + control.0;
    assert_eq!(
        m.port("rx_frames", "attacker/0"),
        handed,
        "attacker's frames"
    );
    assert_eq!(
        m.vlan("frames", 300),
        control.0,
        "VLAN 300: the control frames"
    );
    assert_eq!(
        m.port("tx_frames", "victim/0"),
        0,
        "nothing reached the victim"
    );
    assert_eq!(
        m.vlan("frames", 100),
        m.port("rx_frames", "victim/0"),
        "VLAN 100 holds the victim's own frames only"
    );
    for reason in [
        "tagged_on_access",
        "spoofed_source",
        "bad_source",
        "truncated",
    ] {
        assert_eq!(
            m.vlan_drops(300, reason),
            expected[reason],
            "{reason} in VLAN 300"
        );
        assert_eq!(m.vlan_drops(100, reason), 0, "{reason} in VLAN 100");
    }

    // On the wire: from the attacker, its two control frames on VLAN 300 and nothing
    // else; no forged source, no stacked tag, nothing of the attack on VLAN 100.
    let sent: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.direction == Direction::Received)
        .collect();
    let from_attacker: Vec<&&Frame> = sent.iter().filter(|f| f.src == attacker_mac).collect();
    assert_eq!(from_attacker.len(), 2, "{sent:#?}");
    assert!(
        from_attacker
            .iter()
            .all(|f| f.vid == Some(300) && f.ethertype == ETHERTYPE_HOSTILE && f.is_broadcast()),
        "{from_attacker:#?}"
    );
    for f in &sent {
        let ours = f.src == attacker_mac;
        assert!(
            ours || f.ethertype != ETHERTYPE_HOSTILE,
            "an attack frame left: {f:?}"
        );
        assert_ne!(f.ethertype, ETHERTYPE_VLAN, "a stacked tag left: {f:?}");
        assert!(
            matches!(f.vid, None | Some(100) | Some(300)),
            "only the native VLAN, 100 and 300 leave: {f:?}"
        );
        if f.vid == Some(100) {
            assert_eq!(f.src, victim_mac, "VLAN 100 carries the victim only: {f:?}");
        }
    }
    println!(
        "hostile: one-shot attacks checked ({} frames captured) after {:?}",
        frames.len(),
        t0.elapsed()
    );

    // The victim's own stack saw only what the peer sent it: the who-am-I page counts
    // the frames it received (ARP and the request's TCP segments: a handful).
    let page = ok(w.peer.run_ok("wget -q -O - http://10.1.1.5/"));
    let who: serde_json::Value =
        serde_json::from_str(page.trim()).unwrap_or_else(|e| panic!("who-am-I: {e}: {page}"));
    let rx = who["rx_frames"].as_u64().unwrap_or(u64::MAX);
    assert!(
        rx <= 8,
        "the victim received {rx} frames for one request: {who}"
    );

    // The victim's TCP throughput: one stream from the peer into its discard service all
    // along, measured window by window on the victim's port (the bytes the switch handed
    // its NIC, over the runtime's clock), while the attacker's unlimited storm is started
    // and stopped in turn. Rates on these machines drift by a third over tens of seconds
    // (TCG in a virtual machine on two cores), so runs measured one after another compare
    // the drift as much as the storm: each storm window is set against the peace windows
    // on either side of it, seconds apart. Each window starts half a second after the
    // attacker started or stopped: the storm's steady state, not its first moments
    // (contention protection caps a new agent at the next 100 ms window).
    //
    // First, with no stream, the storm's containment.
    let mut storms = 0;
    let mut storm = |w: &mut World| {
        w.act("attacker", "start");
        storms += 1;
        w.expect_count("attacker/hostile: hostile: net storming", storms);
    };
    storm(&mut w);
    let (unlimited_fps, unlimited_held) = storm_is_contained(&mut w, "victim/0", 2);
    assert!(
        unlimited_held > 1000.0,
        "the unlimited storm goes past storm control: {unlimited_held:.0} frames/s dropped"
    );
    w.act("attacker", "stop");
    let stream = Stream::start(&mut w, "10.1.1.5", 9, "victim", "echo");
    // The victim is a service at work: contention protection throttles the others within
    // 400 ms of a protected partition being busy.
    std::thread::sleep(Duration::from_secs(2));
    let mut peace = vec![stream.window(&mut w)];
    let mut unlimited = Vec::new();
    let mut unlimited_cpu = String::new();
    for round in 0..STORM_ROUNDS {
        storm(&mut w);
        let cpu0 = (agent_cpu(&mut w), Instant::now());
        unlimited.push(stream.window(&mut w));
        if round == 0 {
            unlimited_cpu = cpu_share(&mut w, &cpu0);
        }
        w.act("attacker", "stop");
        peace.push(stream.window(&mut w));
    }
    // For the record, a window each: beside a partition that only computes (what the
    // victim loses to it is CPU time, not the network), under the storm limited to 1000
    // frames/s, and under the storm limited to 1000 frames/s and 10% of the CPU (live
    // resizes).
    let record = |w: &mut World| {
        let cpu0 = (agent_cpu(w), Instant::now());
        let rate = stream.window(w);
        (rate, cpu_share(w, &cpu0))
    };
    w.act("hog", "start");
    let (hog, hog_cpu) = record(&mut w);
    w.act("hog", "stop");
    storm(&mut w);
    w.resize("attacker", "{\"net_packets_per_sec\": 1000}");
    let (pps, pps_cpu) = record(&mut w);
    w.resize("attacker", "{\"cpu_cap_percent\": 10}");
    let (limited, limited_cpu) = record(&mut w);
    stream.stop(&mut w);
    let (pps_fps, _) = storm_is_contained(&mut w, "victim/0", 2);
    w.act("attacker", "stop");
    // The peer's stream reached the victim as the host's super-frames (its TSO, passed on
    // by the uplink's receive offload), whole, with no checksum found wrong.
    let page = ok(w.peer.run_ok("wget -q -O - http://10.1.1.5/"));
    let who: serde_json::Value =
        serde_json::from_str(page.trim()).unwrap_or_else(|e| panic!("who-am-I: {e}: {page}"));
    let supers = w
        .metrics()
        .get("plinth_nic_rx_super_total", &[("nic", "net0")]);
    println!(
        "hostile: receive offload: {} super-frames on the uplink; the victim took {} large \
         frames, {} with a bad checksum",
        supers, who["rx_large"], who["rx_bad_checksum"]
    );
    assert_eq!(who["rx_offload"], true, "{who}");
    assert!(who["rx_large"].as_u64().unwrap_or(0) > 1000, "{who}");
    assert_eq!(who["rx_bad_checksum"], 0, "{who}");
    assert!(supers > 1000.0, "{supers} super-frames on the uplink");
    // Contention protection stepped in: the attacker's agents were capped (down to the
    // policy's default floor, 10%) while the victim worked, and the cap was an event.
    let capped = w.lines("partition attacker: CPU capped at");
    println!(
        "hostile: contention protection: {} caps on the attacker, the last `{}`",
        capped.len(),
        capped.last().map_or("", |l| l.trim())
    );
    assert!(
        capped.iter().any(|l| l.contains("capped at 10%")),
        "the attacker was throttled to the floor: {capped:#?}"
    );
    let mean = |v: &[Window], f: fn(&Window) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let rate = |w: &Window| w.rate;
    let wait = |w: &Window| w.wait_us;
    let (peace_mean, unlimited_mean) = (mean(&peace, rate), mean(&unlimited, rate));
    // Each storm window against the mean of the peace windows before and after it.
    let paired: Vec<f64> = unlimited
        .iter()
        .enumerate()
        .map(|(k, s)| 200.0 * s.rate / (peace[k].rate + peace[k + 1].rate))
        .collect();
    let sd = (paired
        .iter()
        .map(|r| (r - 100.0 * unlimited_mean / peace_mean).powi(2))
        .sum::<f64>()
        / (paired.len() - 1) as f64)
        .sqrt();
    let mib = |v: &[Window]| format!("{:.1?}", v.iter().map(|w| w.rate / MIB).collect::<Vec<_>>());
    println!(
        "hostile: victim TCP in peace {} MiB/s (mean {:.2}); echo waited {:.0} us for the \
         CPU each time it ran",
        mib(&peace),
        peace_mean / MIB,
        mean(&peace, wait)
    );
    println!(
        "hostile: victim TCP under the unlimited storm ({unlimited_fps:.0} frames/s into \
         VLAN 300, {unlimited_held:.0} frames/s dropped by storm control): {} MiB/s \
         (mean {:.2}), {:.1}% of the mean in peace (windows against their neighbours in \
         peace {paired:.0?}%: standard error {:.1}%); echo waited {:.0} us for the CPU each time it ran; CPU \
         {unlimited_cpu}",
        mib(&unlimited),
        unlimited_mean / MIB,
        100.0 * unlimited_mean / peace_mean,
        sd / (paired.len() as f64).sqrt(),
        mean(&unlimited, wait)
    );
    for (what, rate, cpu) in [
        ("beside a partition that only computes".into(), hog, hog_cpu),
        (
            format!("under the storm limited to 1000 frames/s ({pps_fps:.0})"),
            pps,
            pps_cpu,
        ),
        (
            "under the storm limited to 1000 frames/s and 10% CPU".into(),
            limited,
            limited_cpu,
        ),
    ] {
        println!(
            "hostile: victim TCP {what}: {:.2} MiB/s, {:.0}%; echo waited {:.0} us; CPU {cpu}",
            rate.rate / MIB,
            100.0 * rate.rate / peace_mean,
            rate.wait_us
        );
    }
    // Storm control holds the storm to 2000 frames/s; contention protection caps the
    // attacker at 10% of the CPU and lets it run only when the victim does not want it
    // (smallest weight); the runtime's vCPU has a host core of its own
    // (`pin_runtime_cpu`). Measured over twelve runs of the test: the victim kept 98.6% on
    // average (93.1-103.0%), each run's figure with a standard error of 1.5-3%: a run's
    // windows differ by ±10% with the host's drift. So the test asks what the data can
    // tell: that the victim's loss is not significantly worse than 5% (one-sided, two
    // standard errors). With the attacker capped at its own weight instead the victim kept
    // 89-93%, and its wait for the CPU (below) gave it away every time.
    let ratio = 100.0 * unlimited_mean / peace_mean;
    let se = sd / (paired.len() as f64).sqrt();
    assert!(
        ratio + 2.0 * se >= 95.0,
        "under the storm the victim keeps 95% of its throughput: {ratio:.1}% (standard error \
         {se:.1}%): {} vs {} MiB/s in peace",
        mib(&unlimited),
        mib(&peace)
    );
    // The same seen from the scheduler: under the storm the victim's agent waits for the
    // CPU no longer than in peace (timer wake-ups, which wait for the next interrupt,
    // make up most of either). Capped at its own weight the attacker made it wait 60-90%
    // longer; demoted, 0-5% (and 1 us either way).
    let (peace_wait, storm_wait) = (mean(&peace, wait), mean(&unlimited, wait));
    assert!(
        storm_wait <= 1.2 * peace_wait + 2.0,
        "under the storm echo waited {storm_wait:.1} us for the CPU each time, in peace {peace_wait:.1} us"
    );
    // The victim restarted: its NIC's offloads went off with its agent, and the new one's
    // stack asks again and takes super-frames as before.
    let offload = |w: &mut World| -> serde_json::Value {
        let net: serde_json::Value = serde_json::from_str(&w.get("/api/v1/network"))
            .unwrap_or_else(|e| panic!("/api/v1/network: {e}"));
        net["ports"]
            .as_array()
            .and_then(|ports| ports.iter().find(|p| p["name"] == "victim/0"))
            .map_or(serde_json::Value::Null, |p| p["offload"].clone())
    };
    assert_eq!(offload(&mut w), serde_json::json!(["rx", "tx"]));
    w.act("victim", "stop");
    assert_eq!(
        offload(&mut w),
        serde_json::json!([]),
        "offloads end with the agents"
    );
    w.act("victim", "start");
    w.expect_count("victim/echo: echo: up 10.1.1.5/24", 2);
    assert_eq!(offload(&mut w), serde_json::json!(["rx", "tx"]));
    let again = tcp_send(&mut w, "10.1.1.5", 9, 16 << 20);
    let page = ok(w.peer.run_ok("wget -q -O - http://10.1.1.5/"));
    let who: serde_json::Value =
        serde_json::from_str(page.trim()).unwrap_or_else(|e| panic!("who-am-I: {e}: {page}"));
    assert_eq!(who["rx_offload"], true, "{who}");
    assert!(who["rx_large"].as_u64().unwrap_or(0) > 100, "{who}");
    println!(
        "hostile: victim restarted: {:.2} MiB/s, {} large frames",
        again / MIB,
        who["rx_large"]
    );
    w.finish();
    println!("hostile: whole test {:?}", t0.elapsed());
}

/// Test 2. A NIC capped at 1 MiB/s by the protection policy moves 1 MiB/s (± 2%, whole
/// frames counted, as its bucket counts them) once its burst is spent, where an uncapped
/// partition on the same VLAN moves much more; a live resize moves the cap to 2 MiB/s
/// and then removes it. Frames over the rate wait: none is dropped.
#[test]
fn a_capped_nic_moves_its_rate_and_no_more() {
    let _alone = alone();
    let t0 = Instant::now();
    const RATE: u64 = 1 << 20;
    let protection = format!(
        "kind = \"protection\"\n\n[[limit]]\npartition = \"capped\"\n\
         [limit.network]\nbytes_per_sec = {RATE}\n"
    );
    let (mut w, _) = World::start(Setup {
        name: "limits",
        parts: &[("capped", 32), ("free", 32)],
        agents: vec![
            agent("echo-capped", "echo", "address = \"10.1.1.6/24\"\n".into()),
            agent("echo-free", "echo", "address = \"10.1.1.7/24\"\n".into()),
        ],
        deploy: &[("echo-capped", "capped"), ("echo-free", "free")],
        policies: vec![
            (
                "tenants.toml",
                tenants(&[("blue", 100, &["capped", "free"])]),
            ),
            ("protection.toml", protection),
        ],
        peer_vlans: &[VlanIf::new(100, "10.1.1.1/24")],
        mtu: 1500,
        capture: false,
    });
    println!("limits: lab, peer and runtime up after {:?}", t0.elapsed());
    w.rt.expect_seen("capped/echo-capped: echo: up 10.1.1.6/24");
    w.rt.expect_seen("free/echo-free: echo: up 10.1.1.7/24");

    // Chargen from the capped partition, measured over 10 s after 3 s (its burst, one
    // second of the rate, is spent by then).
    let capped = chargen_rate(&mut w, "10.1.1.6", "capped", 3, 10);
    let free = chargen_rate(&mut w, "10.1.1.7", "free", 1, 3);
    println!(
        "limits: capped at 1 MiB/s: {:.4} MiB/s on the wire, {:.4} MiB/s of TCP payload; \
         uncapped: {:.2} MiB/s on the wire",
        capped.wire / MIB,
        capped.payload / MIB,
        free.wire / MIB
    );
    let rate = RATE as f64;
    assert!(
        (capped.wire - rate).abs() <= 0.02 * rate,
        "1 MiB/s ± 2% on the wire: {capped:?}"
    );
    assert!(
        capped.payload <= capped.wire && capped.payload >= 0.9 * capped.wire,
        "the peer read what the NIC sent, less the headers: {capped:?}"
    );
    assert!(
        free.wire >= 2.0 * capped.wire,
        "an uncapped NIC moves far more, so the cap is what held it: {free:?}"
    );

    // The live change: 2 MiB/s, then no cap at all.
    w.resize(
        "capped",
        &format!("{{\"net_bytes_per_sec\": {}}}", 2 * RATE),
    );
    let doubled = chargen_rate(&mut w, "10.1.1.6", "capped", 3, 5);
    w.resize("capped", "{\"net_bytes_per_sec\": 0}");
    let uncapped = chargen_rate(&mut w, "10.1.1.6", "capped", 1, 3);
    // How soon a live change shows on the wire: 1 -> 2 MiB/s and back, timed from the
    // request leaving the host.
    w.resize("capped", &format!("{{\"net_bytes_per_sec\": {RATE}}}"));
    let mac = nic_mac(&mut w, "capped");
    let (up, down) = live_changes(&mut w, "10.1.1.6", "capped", mac, RATE, 2 * RATE);
    for (what, c) in [("raised to 2 MiB/s", &up), ("lowered to 1 MiB/s", &down)] {
        println!(
            "limits: live change, {what}: answered after {:.1} ms, on the wire after {:.1} ms, \
             then {:.3} MiB/s",
            c.answered.as_secs_f64() * 1e3,
            c.effect.as_secs_f64() * 1e3,
            c.after / MIB
        );
    }
    println!(
        "limits: resized to 2 MiB/s: {:.4} MiB/s; cap removed: {:.2} MiB/s",
        doubled.wire / MIB,
        uncapped.wire / MIB
    );
    assert!(
        (doubled.wire - 2.0 * rate).abs() <= 0.02 * 2.0 * rate,
        "2 MiB/s ± 2% after the resize: {doubled:?}"
    );
    assert!(
        uncapped.wire >= 1.5 * doubled.wire,
        "no cap after the resize to 0: {uncapped:?}"
    );
    for (c, rate) in [(&up, 2.0 * rate), (&down, rate)] {
        assert!(
            c.effect <= Duration::from_millis(100),
            "a live change shows on the wire within 100 ms: {c:?}"
        );
        assert!(
            (c.after - rate).abs() <= 0.1 * rate,
            "and the new rate holds after it: {c:?}"
        );
    }
    let m = w.metrics();
    assert_eq!(
        m.port_drop_reasons("capped/0"),
        BTreeMap::new(),
        "over-rate frames wait; none is dropped"
    );
    w.finish();
    println!("limits: whole test {:?}", t0.elapsed());
}

/// Test 3. A hostile wire: the Linux peer injects raw frames into the runtime's uplink —
/// minimum-length and cut-off frames, oversize and jumbo frames, tags the trunk does
/// not carry, stacked tags with the victim's VLAN outside and another tenant's inside,
/// and floods into a partition that never reads and into the management VLAN. Each is
/// counted by reason or delivered only within the VLAN of its outer tag; the runtime
/// and its API stay up.
///
/// A frame's VLAN is its outer tag's: IEEE 802.1Q leaves a second tag to the payload,
/// so a frame double-tagged 100/300 is VLAN 100's, reaches VLAN 100's partition with the
/// inner tag intact (as Linux bridges and Open vSwitch deliver it), and never VLAN 300.
#[test]
fn a_hostile_wire_is_counted_and_kept_within_its_vlan() {
    let _alone = alone();
    let t0 = Instant::now();
    let (mut w, _) = World::start(Setup {
        name: "wire",
        parts: &[("victim", 32), ("sink", 16)],
        agents: vec![
            agent("echo", "echo", "address = \"10.1.1.5/24\"\n".into()),
            // Never reads its NIC.
            agent("hello", "hello", "interval_ms = 5000\n".into()),
        ],
        deploy: &[("echo", "victim"), ("hello", "sink")],
        policies: vec![(
            "tenants.toml",
            tenants(&[("blue", 100, &["victim"]), ("green", 300, &["sink"])]),
        )],
        peer_vlans: &[VlanIf::new(100, "10.1.1.1/24")],
        mtu: 9000,
        capture: false,
    });
    println!("wire: lab, peer and runtime up after {:?}", t0.elapsed());
    w.rt.expect_seen("victim/echo: echo: up 10.1.1.5/24");
    let peer = w.peer.mac();
    let sink = nic_mac(&mut w, "sink");
    let lab = |tags: &[(u16, u16)]| frame(BROADCAST, peer, tags, ETHERTYPE_HOSTILE);
    let m0 = w.metrics();

    // Shorter than a header: Linux will not send it (so no wire in this lab carries
    // one; the partition side's runts are test 1's). Header-only frames and tags cut
    // short: the lab's own bridge drops the cut tags; nothing may reach a partition.
    let (sent, errors, why) = inject(&mut w, 1, 10, &lab(&[]));
    println!("wire: a 10-byte frame from Linux: sent {sent}, refused {errors} ({why})");
    for (len, bytes) in [
        (14, lab(&[])),
        (14, frame(BROADCAST, peer, &[], TPID)),
        (17, lab(&[(TPID, 100)])),
    ] {
        inject(&mut w, 3, len, &bytes);
    }
    // Oversize: over 1514 bytes untagged, 1518 tagged, up to what the runtime's receive
    // buffers hold: 64 KiB where the uplink has receive offload (its boot line says so),
    // else 1588, and longer ones, jumbo frames among them, the virtio device drops before
    // the runtime sees them.
    let large_rx = !w.lines("receive offload").is_empty();
    let held = if large_rx { 65_535 } else { 1588 };
    println!("wire: the uplink's receive buffers hold {held} bytes");
    let mut oversize = (0, 0);
    for (len, bytes, vid) in [
        (1515, lab(&[]), 0),
        (1588, lab(&[]), 0),
        (1519, lab(&[(TPID, 100)]), 100),
        (1588, lab(&[(TPID, 100)]), 100),
        (1589, lab(&[]), 0),
        (9000, lab(&[]), 0),
        (9000, lab(&[(TPID, 100)]), 100),
    ] {
        let (sent, _, why) = inject(&mut w, 3, len, &bytes);
        assert_eq!(sent, 3, "{len} bytes: {why}");
        if len <= held {
            if vid == 0 {
                oversize.0 += 3;
            } else {
                oversize.1 += 3;
            }
        }
    }
    // Tags the trunk does not carry: VIDs no tenant holds, 4095, service tags, a
    // priority tag around a tag.
    let not_allowed = [
        lab(&[(TPID, 200)]),
        lab(&[(TPID, 4095)]),
        lab(&[(TPID_AD, 100)]),
        lab(&[(0x9100, 100)]),
        lab(&[(TPID, 0), (TPID, 300)]),
        lab(&[(TPID, 5 << 13), (TPID, 100)]),
    ];
    for bytes in &not_allowed {
        inject(&mut w, 3, 64, bytes);
    }
    // Stacked tags, VLAN 100 outside and the sink's VLAN 300 inside, broadcast and to
    // the sink's own address.
    let stacked = [
        lab(&[(TPID, 100), (TPID, 300)]),
        frame(sink, peer, &[(TPID, 100), (TPID, 300)], ETHERTYPE_HOSTILE),
    ];
    for bytes in &stacked {
        inject(&mut w, 3, 64, bytes);
    }
    std::thread::sleep(Duration::from_millis(300));
    let m1 = w.metrics();
    let d = |f: &dyn Fn(&Metrics) -> u64| f(&m1) - f(&m0);
    let drops = |m: &Metrics| {
        let mut r = m.port_drop_reasons("net0");
        r.retain(|_, v| *v > 0);
        r
    };
    let mut expected = drops(&m0);
    *expected.entry("oversize".into()).or_default() += oversize.0 + oversize.1;
    *expected.entry("vid_not_allowed".into()).or_default() += 3 * not_allowed.len() as u64;
    assert_eq!(drops(&m1), expected, "the uplink's drops by reason");
    assert_eq!(d(&|m| m.vlan_drops(0, "oversize")), oversize.0, "native");
    assert_eq!(
        d(&|m| m.vlan_drops(100, "oversize")),
        oversize.1,
        "VLAN 100"
    );
    assert_eq!(
        d(&|m| m.vlan_drops(0, "vid_not_allowed")),
        3 * not_allowed.len() as u64
    );
    for reason in ["runt", "truncated"] {
        assert_eq!(d(&|m| m.port_drops("net0", reason)), 0, "{reason}");
    }
    // The stacked frames, and only they, reached VLAN 100's partition, tag and all:
    // 64 bytes on the wire, 60 without the outer tag.
    let stacked_frames = 3 * stacked.len() as u64;
    assert_eq!(d(&|m| m.vlan("frames", 100)), stacked_frames);
    assert_eq!(d(&|m| m.port("tx_frames", "victim/0")), stacked_frames);
    assert_eq!(d(&|m| m.port("tx_bytes", "victim/0")), 60 * stacked_frames);
    assert_eq!(d(&|m| m.vlan("frames", 300)), 0, "nothing into VLAN 300");
    assert_eq!(
        d(&|m| m.port("tx_frames", "sink/0")),
        0,
        "nothing to the sink"
    );
    println!("wire: malformed frames counted after {:?}", t0.elapsed());

    // A flood into the sink, which never reads: its queue fills (256 frames) and the
    // rest is dropped as queue_full; every frame the switch took is accounted for.
    let (flood, _, why) = inject(&mut w, 5000, 64, &frame(sink, peer, &[(TPID, 300)], 0x88b5));
    assert_eq!(flood, 5000, "{why}");
    std::thread::sleep(Duration::from_millis(300));
    let m2 = w.metrics();
    let into = m2.vlan("frames", 300) - m1.vlan("frames", 300);
    let queued = m2.port("tx_frames", "sink/0") - m1.port("tx_frames", "sink/0");
    let full = m2.port_drops("sink/0", "queue_full") - m1.port_drops("sink/0", "queue_full");
    println!("wire: flood into the sink: {into} frames taken, {queued} queued, {full} dropped");
    assert_eq!(queued, 256, "the sink's receive queue holds 256 frames");
    assert!(into > 256, "the flood reached the runtime: {into}");
    assert_eq!(
        queued + full,
        into,
        "every frame into VLAN 300 accounted for"
    );
    assert_eq!(m2.vlan_drops(300, "queue_full"), full);
    assert_eq!(
        m2.port("tx_frames", "victim/0"),
        m1.port("tx_frames", "victim/0"),
        "nothing of the flood reached VLAN 100"
    );

    // A broadcast flood on the native VLAN, into the management stack's port, while the
    // API is asked for its health.
    ok(w.peer.run_ok(&format!(
        "lab-inject eth0 100000 64 {} >/tmp/flood 2>&1 &",
        hex(&lab(&[]))
    )));
    let mut answered = 0;
    let flooding = Instant::now();
    while flooding.elapsed() < Duration::from_secs(3) {
        if w.try_get("/api/v1/health").is_some() {
            answered += 1;
        }
    }
    let out = ok(w.peer.run_ok(
        "i=0; until grep -q sent= /tmp/flood; do i=$((i+1)); [ $i -lt 600 ] || break; \
         usleep 100000; done; cat /tmp/flood",
    ));
    let m3 = w.metrics();
    let native = m3.vlan("frames", 0) - m2.vlan("frames", 0);
    println!(
        "wire: native-VLAN flood: {} ; {native} frames into VLAN 0, mgmt queue_full {}; \
         the API answered {answered} times meanwhile",
        out.trim(),
        m3.port_drops("mgmt", "queue_full")
    );
    assert!(answered > 0, "the API answered during the flood");
    assert!(native > 10_000, "the flood reached the runtime: {native}");

    // The victim still serves, and has seen no more than the stacked frames and its
    // own traffic.
    let page = ok(w.peer.run_ok("wget -q -O - http://10.1.1.5/"));
    assert!(page.contains("\"agent\":\"echo\""), "who-am-I: {page}");
    w.finish();
    println!("wire: whole test {:?}", t0.elapsed());
}
