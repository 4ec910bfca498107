//! Tenant networks end to end: the runtime as an 802.1Q switch between its partitions'
//! NICs and real peers. Its uplink is a tap of a VLAN lab (`plinth::lab`), a trunk
//! carrying each tenant's VLAN tagged; Linux 802.1Q guests and other runtimes are the
//! other stations on the segment.
//!
//! Tenants `blue` (VLAN 100) and `red` (VLAN 200) use the same subnet, 10.1.1.0/24, and
//! even the same addresses: what keeps them apart is the VLAN, so every check says which
//! tenant answered by its MAC, and that the other tenant's ports took in nothing.
//!
//! The runtime's management API is reached over the lab itself (the native VLAN,
//! untagged): the lab's bridge gets [`BRIDGE_IP`] and the runtime a static address.
//!
//! The lab needs root (network namespaces, taps), like the other network tests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use plinth::lab::{Direction, Frame, Lab, LabError, LinuxPeer, PeerConfig, VlanIf};
use plinth::profile::Disk;
use plinth::setup::Need;
use plinth_tests::{Boot, LINE_TIMEOUT, NIC_MAC, Runtime, TestAgent, build_appliance};

/// The lab's side of the native VLAN: the host reaches the runtimes' APIs from here.
const BRIDGE_IP: &str = "192.168.77.1";
/// The tenants' shared subnet: the Linux peers are .1 on their VLAN.
const PEER_IP: &str = "10.1.1.1";
/// Both tenants' static echo agents have this address.
const SHARED_IP: &str = "10.1.1.5";
/// What each peer's DHCP server hands out on its VLAN.
const BLUE_POOL: (u8, u8) = (100, 110);
const RED_POOL: (u8, u8) = (200, 210);

/// The host fetches the API inside the lab's namespace with Python's standard library.
const PYTHON3: Need = Need::cmd("python3", "python3");
const GET: &str = r#"
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
"#;

fn ok<T>(r: Result<T, LabError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A scratch directory for a test's appliances, removed when dropped (also when the
/// test fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("plinth-tenant-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An echo agent packed as `name` with this config.
fn echo(name: &'static str, config: String) -> TestAgent<'static> {
    let config: &'static str = Box::leak(config.into_boxed_str());
    TestAgent {
        name,
        example: "echo",
        config: Box::leak(Box::new([("etc/echo.toml", config)])),
    }
}

/// An appliance `name` whose partitions (`(partition, agent, tenant)`) each have one NIC
/// on their tenant's VLAN (`(tenant, vid)`) and run one agent.
fn appliance(
    dir: &Path,
    name: &str,
    parts: &[(&str, &str, &str)],
    tenants: &[(&str, u16)],
    agents: &[TestAgent<'_>],
) -> PathBuf {
    let mut partitions = String::new();
    for (p, _, _) in parts {
        partitions +=
            &format!("\n[[partition]]\nname = \"{p}\"\nmemory_mib = 16\ncpus = 1\nnics = 1\n");
    }
    let names: Vec<&str> = agents.iter().map(|a| a.name).collect();
    let spec = plinth::image::example_spec(
        256,
        &names,
        &partitions,
        &["deployment.toml", "tenants.toml"],
    )
    .replacen("name = \"example\"", &format!("name = \"{name}\""), 1);
    let mut deployment = String::from("kind = \"deployment\"\n");
    for a in &names {
        let to: Vec<String> = parts
            .iter()
            .filter(|(_, agent, _)| agent == a)
            .map(|(p, _, _)| format!("\"{p}\""))
            .collect();
        deployment += &format!(
            "\n[[deploy]]\nagent = \"{a}\"\nversion = \"0.1.0\"\nto = [{}]\n",
            to.join(", ")
        );
    }
    let mut policy = String::from("kind = \"tenants\"\n");
    for (t, vid) in tenants {
        let members: Vec<String> = parts
            .iter()
            .filter(|(_, _, tenant)| tenant == t)
            .map(|(p, _, _)| format!("\"{p}\""))
            .collect();
        policy += &format!(
            "\n[[tenant]]\nname = \"{t}\"\nvlan = {vid}\npartitions = [{}]\n",
            members.join(", ")
        );
    }
    build_appliance(
        dir,
        &spec,
        &[("deployment.toml", &deployment), ("tenants.toml", &policy)],
        agents,
    )
}

/// Boots `image` with its uplink on the lab's `tap`, the management stack at `ip`.
fn boot_on(lab: &Lab, tap: &str, image: PathBuf, ip: &str, mac: [u8; 6]) -> Runtime {
    Boot {
        append: format!("ip={ip}/24"),
        disk: Some(Disk {
            image,
            serial: "appliance".into(),
        }),
        netns: Some((lab.netns().to_owned(), tap.to_owned())),
        memory_mib: 256,
        mac,
        ..Boot::default()
    }
    .start()
}

/// Waits for a line containing `needle` anywhere in the transcript and returns it.
fn seen(rt: &mut Runtime, needle: &str) -> String {
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        if let Some(l) = rt.machine.lines().iter().find(|l| l.text.contains(needle)) {
            return l.text.clone();
        }
        if Instant::now() > deadline {
            panic!(
                "no line containing {needle:?} within {LINE_TIMEOUT:?}\n{}",
                rt.transcript()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `PART/AGENT: echo: up IP/PREFIX mac MAC`; returns (IP, MAC).
fn echo_up(rt: &mut Runtime, part: &str, agent: &str) -> (String, String) {
    let line = seen(rt, &format!("{part}/{agent}: echo: up "));
    let rest = &line[line.find("echo: up ").unwrap() + "echo: up ".len()..];
    let mut f = rest.split_whitespace();
    let (cidr, mac) = (f.next(), f.nth(1));
    match (cidr.and_then(|c| c.split_once('/')), mac) {
        (Some((ip, _)), Some(mac)) => (ip.to_owned(), mac.to_owned()),
        _ => panic!("cannot read {line:?}"),
    }
}

/// `GET http://IP:8080PATH` from inside the lab (the native VLAN), retried until the
/// API answers (it comes up with the runtime's address).
fn api_get(lab: &Lab, ip: &str, path: &str) -> String {
    let url = format!("http://{ip}:8080{path}");
    let deadline = Instant::now() + LINE_TIMEOUT;
    loop {
        match lab.exec(&["python3", "-c", GET, &url]) {
            Ok(body) => return body,
            Err(e) if Instant::now() > deadline => panic!("GET {url}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The bridge's counters, from `/metrics`.
struct Metrics(String);

impl Metrics {
    fn fetch(lab: &Lab, ip: &str) -> Metrics {
        Metrics(api_get(lab, ip, "/metrics"))
    }

    /// The value of `name{labels}`, which must be there.
    fn value(&self, name: &str, labels: &str) -> u64 {
        let series = format!("{name}{{{labels}}} ");
        let v = self
            .0
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series}in\n{}", self.0));
        v.trim()
            .parse::<f64>()
            .unwrap_or_else(|e| panic!("{series}{v}: {e}")) as u64
    }

    /// Frames the bridge handed to partition NIC `port` (`PART/0`): what it received.
    fn delivered(&self, port: &str) -> u64 {
        self.value(
            "plinth_bridge_port_tx_frames_total",
            &format!("port=\"{port}\""),
        )
    }

    /// Frames the bridge took in from `port`: what the partition sent.
    fn taken(&self, port: &str) -> u64 {
        self.value(
            "plinth_bridge_port_rx_frames_total",
            &format!("port=\"{port}\""),
        )
    }

    /// Frames `port` dropped for `reason`; 0 before the first (the series appears then).
    fn drops(&self, port: &str, reason: &str) -> u64 {
        let series =
            format!("plinth_bridge_port_drops_total{{port=\"{port}\",reason=\"{reason}\"}} ");
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0, |v| {
                v.trim()
                    .parse::<f64>()
                    .unwrap_or_else(|e| panic!("{series}{v}: {e}")) as u64
            })
    }

    /// Frames accepted into VLAN `vid`.
    fn vlan(&self, vid: u16) -> u64 {
        self.value(
            "plinth_bridge_vlan_frames_total",
            &format!("vlan=\"{vid}\""),
        )
    }
}

fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("MAC {s:?}: {e}")))
        .collect();
    v.try_into().unwrap_or_else(|_| panic!("MAC {s:?}"))
}

/// Every frame the runtime behind a tap sent from one of `macs` is tagged `vid`, every
/// frame to one of them too, and there is at least one each way.
fn all_tagged(frames: &[Frame], macs: &[[u8; 6]], vid: u16, what: &str) {
    let from: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.direction == Direction::Received && macs.contains(&f.src))
        .collect();
    let to: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.direction == Direction::Sent && macs.contains(&f.dst))
        .collect();
    assert!(
        !from.is_empty() && !to.is_empty(),
        "{what}: frames both ways: {frames:#?}"
    );
    let wrong: Vec<&&Frame> = from
        .iter()
        .chain(&to)
        .filter(|f| f.vid != Some(vid))
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: every frame tagged {vid}, these are not: {wrong:#?}"
    );
}

/// A peer's `/tmp/tx` (lines `TAG N`) goes through the TCP echo at `ip` and must come
/// back whole.
/// From `peer` (tenant `tag`'s VLAN), [`SHARED_IP`] answers ping, TCP echo and who-am-I
/// as the partition with `mac`, and the peer's neighbour table agrees. The who-am-I page.
fn answers_as(peer: &mut LinuxPeer, tag: &str, mac: &str) -> serde_json::Value {
    assert!(
        ok(peer.ping(SHARED_IP, 2)),
        "{tag} peer cannot ping {SHARED_IP}"
    );
    assert_eq!(neighbour(peer, SHARED_IP).as_deref(), Some(mac));
    tcp_echo(peer, SHARED_IP, tag);
    let who = who_am_i(peer, SHARED_IP);
    assert_eq!(who["mac"], mac, "{who}");
    who
}

fn tcp_echo(peer: &mut LinuxPeer, ip: &str, tag: &str) {
    let out = ok(peer.run_ok(&format!(
        "seq 1 400 | sed 's/^/{tag} /' >/tmp/tx && timeout 20 nc {ip} 7 </tmp/tx >/tmp/rx; \
         cmp /tmp/tx /tmp/rx && wc -c </tmp/rx"
    )));
    let n: usize = out
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{out:?}: {e}"));
    let sent: usize = (1..=400).map(|i| format!("{tag} {i}\n").len()).sum();
    assert_eq!(n, sent, "{ip}:7 echoed {n} of {sent} bytes");
}

/// The who-am-I page at `ip`, fetched by the peer (with `nc`: the static busybox's
/// `wget` crashes in the guest).
fn who_am_i(peer: &mut LinuxPeer, ip: &str) -> serde_json::Value {
    let out = ok(peer.run_ok(&format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 20 nc {ip} 80"
    )));
    let json = out.lines().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("who-am-I at {ip}: {e}: {out:?}"))
}

/// The MAC `peer` resolved `ip` to.
fn neighbour(peer: &mut LinuxPeer, ip: &str) -> Option<String> {
    let out = ok(peer.run_ok(&format!("ip neigh show {ip}")));
    let rest = &out[out.find("lladdr ")? + "lladdr ".len()..];
    rest.split_whitespace().next().map(str::to_owned)
}

/// Whether one ping of `ip` from `peer` went unanswered for 2 s (the answered ones take
/// milliseconds); the peer's ARP requests for it go out at once either way.
fn unanswered(peer: &mut LinuxPeer, ip: &str) -> bool {
    ok(peer.run(&format!("ping -c 1 -W 2 {ip}"))).status != 0
}

/// Points 1 and 2: one runtime, two tenants on one subnet, a Linux 802.1Q peer per
/// tenant VLAN; static addresses, DHCP, and the same address in both tenants.
#[test]
fn tenants_on_one_subnet_reach_only_their_own_vlan() {
    plinth::setup::ensure(&[PYTHON3]).unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    let d = Scratch::new("vlans");
    // The DHCP agents also probe the static one at the shared address, inside the
    // runtime: each must be answered by its own tenant's.
    let agents = [
        echo("echo-static", format!("address = \"{SHARED_IP}/24\"\n")),
        echo(
            "echo-dhcp",
            format!("address = \"dhcp\"\nprobe = \"{SHARED_IP}:7\"\n"),
        ),
    ];
    let image = appliance(
        &d.0,
        "tenants",
        &[
            ("blue-a", "echo-static", "blue"),
            ("blue-d", "echo-dhcp", "blue"),
            ("red-a", "echo-static", "red"),
            ("red-d", "echo-dhcp", "red"),
        ],
        &[("blue", 100), ("red", 200)],
        &agents,
    );

    let lab = ok(Lab::new("tenant"));
    let (tap_rt, tap_blue, tap_red) =
        (ok(lab.tap("rt")), ok(lab.tap("pblue")), ok(lab.tap("pred")));
    ok(lab.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{BRIDGE_IP}/24"),
        "dev",
        "br0",
    ]));
    // Everything the runtime sends and receives, from its first frame.
    let capture = ok(lab.capture(&tap_rt));
    // The runtime and the Linux peers boot in parallel, each peer on one tenant's VLAN
    // with the same address. The DHCP agents start asking before the peers serve DHCP.
    let rt_ip = "192.168.77.2";
    let mut rt = boot_on(&lab, &tap_rt, image, rt_ip, NIC_MAC);
    let mut blue = ok(LinuxPeer::start(PeerConfig::new(
        "blue",
        lab.link(&tap_blue),
        &[VlanIf::new(100, &format!("{PEER_IP}/24"))],
    )));
    let mut red = ok(LinuxPeer::start(PeerConfig::new(
        "red",
        lab.link(&tap_red),
        &[VlanIf::new(200, &format!("{PEER_IP}/24"))],
    )));
    rt.expect_ready();
    let (blue_ip, blue_mac) = echo_up(&mut rt, "blue-a", "echo-static");
    let (red_ip, red_mac) = echo_up(&mut rt, "red-a", "echo-static");
    assert_eq!((blue_ip.as_str(), red_ip.as_str()), (SHARED_IP, SHARED_IP));
    assert_ne!(blue_mac, red_mac);
    println!("tenant: static agents up after {:?}", t0.elapsed());
    ok(blue.ready());
    ok(red.ready());
    let pool = |p: (u8, u8)| (format!("10.1.1.{}", p.0), format!("10.1.1.{}", p.1));
    let (first, last) = pool(BLUE_POOL);
    ok(blue.serve_dhcp(100, &first, &last));
    let (first, last) = pool(RED_POOL);
    ok(red.serve_dhcp(200, &first, &last));
    println!("tenant: peers up, DHCP served after {:?}", t0.elapsed());

    // Point 2: each DHCP agent has a lease from its own tenant's server.
    let (blue_lease, blue_d_mac) = echo_up(&mut rt, "blue-d", "echo-dhcp");
    let (red_lease, red_d_mac) = echo_up(&mut rt, "red-d", "echo-dhcp");
    println!("tenant: DHCP leases after {:?}", t0.elapsed());
    let in_pool = |ip: &str, (lo, hi): (u8, u8)| {
        ip.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.octets()[..3] == [10, 1, 1] && (lo..=hi).contains(&a.octets()[3]))
    };
    assert!(
        in_pool(&blue_lease, BLUE_POOL),
        "blue-d leased {blue_lease}"
    );
    assert!(in_pool(&red_lease, RED_POOL), "red-d leased {red_lease}");

    // Inside the runtime, the shared address is each tenant's own static agent.
    for (part, lease, mac, server) in [
        ("blue-d", &blue_lease, &blue_d_mac, "blue-a/echo-static: "),
        ("red-d", &red_lease, &red_d_mac, "red-a/echo-static: "),
    ] {
        seen(
            &mut rt,
            &format!("{part}/echo-dhcp: echo: probe {SHARED_IP}:7 ok"),
        );
        let echoed = lines_with(&rt.transcript(), &format!("probe from {mac}"))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        let to = format!("udp echo to {lease}:");
        assert!(
            !echoed.is_empty() && echoed.iter().all(|l| l.contains(server) && l.contains(&to)),
            "{part}'s probe echoed by {server}only: {echoed:#?}"
        );
    }

    let m0 = Metrics::fetch(&lab, rt_ip);

    // Point 1, from VLAN 100: blue-a answers ping, TCP echo and who-am-I, with its MAC.
    let who = answers_as(&mut blue, "blue", &blue_mac);
    assert_eq!(who["ip"], format!("{SHARED_IP}/24"), "{who}");
    // A full-size frame (1500 bytes of IP, 1518 on the wire with its tag) both ways,
    // and 2 MiB into discard, every byte counted.
    ok(blue.run_ok(&format!("ping -c 1 -s 1472 -W 2 {SHARED_IP}")));
    let sent = ok(blue.run_ok(&format!("lab-tcp send {SHARED_IP} 9 2097152")));
    assert!(sent.contains("lab-tcp: sent=2097152 "), "{sent}");
    let line = seen(&mut rt, "blue-a/echo-static: echo: discard ");
    assert!(line.contains("echo: discard 2097152 bytes in "), "{line}");
    println!("tenant: {}", &line[line.find("echo: ").unwrap()..]);
    // Its DHCP neighbour too, and red's leased address is nowhere on VLAN 100.
    assert!(
        ok(blue.ping(&blue_lease, 1)),
        "blue peer cannot ping blue-d"
    );
    assert!(
        unanswered(&mut blue, &red_lease),
        "red-d's {red_lease} answered on VLAN 100"
    );
    let m1 = Metrics::fetch(&lab, rt_ip);

    // From VLAN 200: the same address is red-a.
    answers_as(&mut red, "red", &red_mac);
    assert!(ok(red.ping(&red_lease, 1)), "red peer cannot ping red-d");
    assert!(
        unanswered(&mut red, &blue_lease),
        "blue-d's {blue_lease} answered on VLAN 200"
    );
    let m2 = Metrics::fetch(&lab, rt_ip);

    // From outside every tenant: VLAN 300, which no tenant holds, and the untagged native
    // VLAN. Their broadcasts reach no partition.
    ok(red.run_ok(
        "ip link add link eth0 name eth0.300 type vlan id 300 && \
         ip addr add 10.3.0.1/24 dev eth0.300 && ip link set eth0.300 up",
    ));
    assert!(
        unanswered(&mut red, "10.3.0.5"),
        "10.3.0.5 answered on VLAN 300"
    );
    let arping = ok(blue.run(&format!("arping -D -I eth0 -c 2 -w 2 {SHARED_IP}")));
    assert!(
        arping.output.contains("Received 0 response"),
        "{SHARED_IP} answered on the native VLAN: {}",
        arping.output
    );
    let m3 = Metrics::fetch(&lab, rt_ip);
    let frames = ok(capture.stop());

    // While one tenant's peer talked (its ARP broadcasts flooded), the other tenant's
    // ports took nothing in and nothing entered its VLAN; the talking tenant's ports
    // were busy both ways. Traffic of neither tenant reached any partition.
    let (blue_ports, red_ports) = (["blue-a/0", "blue-d/0"], ["red-a/0", "red-d/0"]);
    for (m, n, quiet, busy, quiet_vlans) in [
        (&m0, &m1, &red_ports[..], &blue_ports[..], &[200][..]),
        (&m1, &m2, &blue_ports[..], &red_ports[..], &[100][..]),
        (
            &m2,
            &m3,
            &[blue_ports, red_ports].concat()[..],
            &[][..],
            &[100, 200][..],
        ),
    ] {
        for port in quiet {
            assert_eq!(
                n.delivered(port),
                m.delivered(port),
                "{port} received frames meant for others\nbefore:\n{}\nafter:\n{}",
                m.0,
                n.0
            );
        }
        for &vid in quiet_vlans {
            assert_eq!(n.vlan(vid), m.vlan(vid), "VLAN {vid} was quiet");
        }
        for port in busy {
            assert!(
                n.delivered(port) > m.delivered(port) && n.taken(port) > m.taken(port),
                "{port} both ways\nbefore:\n{}\nafter:\n{}",
                m.0,
                n.0
            );
        }
    }
    // The uplink dropped VLAN 300's frames at the door.
    let came = into_runtime(&frames, 300);
    let not_allowed = |m: &Metrics| m.drops("net0", "vid_not_allowed");
    assert!(
        came > 0 && not_allowed(&m3) - not_allowed(&m2) >= came,
        "{came} frames tagged 300 came in; vid_not_allowed drops {} -> {}",
        not_allowed(&m2),
        not_allowed(&m3)
    );

    // On the wire: blue's frames tagged 100, red's 200, none of theirs untagged, and
    // the trunk sends no other VLAN.
    let blue_macs = [parse_mac(&blue_mac), parse_mac(&blue_d_mac)];
    let red_macs = [parse_mac(&red_mac), parse_mac(&red_d_mac)];
    all_tagged(&frames, &blue_macs, 100, "blue");
    all_tagged(&frames, &red_macs, 200, "red");
    for dir in [Direction::Sent, Direction::Received] {
        assert!(
            frames.iter().any(|f| f.direction == dir
                && f.len == 1518
                && f.vid == Some(100)
                && (blue_macs.contains(&f.src) || blue_macs.contains(&f.dst))),
            "a full-size tagged frame of blue's, {dir:?}"
        );
    }
    let sent = || frames.iter().filter(|f| f.direction == Direction::Received);
    let untagged: Vec<&Frame> = sent()
        .filter(|f| f.vid.is_none() && f.src != NIC_MAC)
        .collect();
    assert!(
        untagged.is_empty(),
        "only the management stack sends untagged: {untagged:#?}"
    );
    let vids: BTreeSet<Option<u16>> = sent().map(|f| f.vid).collect();
    assert!(
        vids.iter()
            .all(|v| matches!(v, None | Some(100) | Some(200))),
        "only the tenants' VLANs leave the trunk: {vids:?}"
    );
    println!(
        "tenant: {} frames captured, {} of blue's, {} of red's",
        frames.len(),
        frames
            .iter()
            .filter(|f| blue_macs.contains(&f.src) || blue_macs.contains(&f.dst))
            .count(),
        frames
            .iter()
            .filter(|f| red_macs.contains(&f.src) || red_macs.contains(&f.dst))
            .count(),
    );

    rt.shutdown();
    ok(blue.shutdown());
    ok(red.shutdown());
    drop(lab);
    println!("tenant: whole test {:?}", t0.elapsed());
}

/// Frames the capture saw going into the runtime (the tap sent them) tagged `vid`.
fn into_runtime(frames: &[Frame], vid: u16) -> u64 {
    frames
        .iter()
        .filter(|f| f.direction == Direction::Sent && f.vid == Some(vid))
        .count() as u64
}

/// Lines of `transcript` that contain `needle`.
fn lines_with<'a>(transcript: &'a str, needle: &str) -> Vec<&'a str> {
    transcript.lines().filter(|l| l.contains(needle)).collect()
}

/// Point 3: two runtimes on one segment, each with a partition of tenant blue (VLAN 100)
/// and of red (VLAN 200). Each tenant's partitions reach each other across the machines
/// over UDP (echo's probe), red's even at an address blue's partitions also have, and red
/// never reaches blue's.
#[test]
fn two_runtimes_join_each_tenant_and_keep_tenants_apart() {
    plinth::setup::ensure(&[PYTHON3]).unwrap_or_else(|e| panic!("{e}"));
    let t0 = Instant::now();
    let d = Scratch::new("two");
    let tenants = [("blue", 100), ("red", 200)];
    let cfg = |addr: &str, probe: Option<(&str, u32)>| {
        let mut c = format!("address = \"{addr}/24\"\n");
        if let Some((to, timeout_ms)) = probe {
            c += &format!("probe = \"{to}:7\"\nprobe_timeout_ms = {timeout_ms}\n");
        }
        c
    };
    // Machine 2 serves: blue-2 at .12, red-2 at .13, and red-2 probes .11 — which both
    // of machine 1's partitions have.
    let two = appliance(
        &d.0.join("two"),
        "site-two",
        &[("blue-2", "echo-b2", "blue"), ("red-2", "echo-r2", "red")],
        &tenants,
        &[
            echo("echo-b2", cfg("10.1.1.12", None)),
            echo("echo-r2", cfg("10.1.1.13", Some(("10.1.1.11", 60_000)))),
        ],
    );
    // Machine 1 probes .12 from both tenants: blue's must be answered, red's must not
    // (.12 is blue-2's). Machine 2 is up before machine 1 boots, so red-1's 10 s without
    // an answer are 10 s in which blue-2 was there to answer.
    let one = appliance(
        &d.0.join("one"),
        "site-one",
        &[("blue-1", "echo-b1", "blue"), ("red-1", "echo-r1", "red")],
        &tenants,
        &[
            echo("echo-b1", cfg("10.1.1.11", Some(("10.1.1.12", 60_000)))),
            echo("echo-r1", cfg("10.1.1.11", Some(("10.1.1.12", 10_000)))),
        ],
    );

    let lab = ok(Lab::new("tworuntimes"));
    let (tap1, tap2) = (ok(lab.tap("m1")), ok(lab.tap("m2")));
    ok(lab.exec(&[
        "ip",
        "addr",
        "add",
        &format!("{BRIDGE_IP}/24"),
        "dev",
        "br0",
    ]));
    let (cap1, cap2) = (ok(lab.capture(&tap1)), ok(lab.capture(&tap2)));
    let (ip1, ip2) = ("192.168.77.2", "192.168.77.3");
    let mut mac2 = NIC_MAC;
    mac2[5] ^= 0x80;

    let mut m2 = boot_on(&lab, &tap2, two, ip2, mac2);
    m2.expect_ready();
    let (_, blue2) = echo_up(&mut m2, "blue-2", "echo-b2");
    let (_, red2) = echo_up(&mut m2, "red-2", "echo-r2");
    println!("two: machine 2's partitions up after {:?}", t0.elapsed());
    let mut m1 = boot_on(&lab, &tap1, one, ip1, NIC_MAC);
    m1.expect_ready();
    let (_, blue1) = echo_up(&mut m1, "blue-1", "echo-b1");
    let (_, red1) = echo_up(&mut m1, "red-1", "echo-r1");

    let ok_line = seen(&mut m1, "blue-1/echo-b1: echo: probe 10.1.1.12:7 ok after ");
    println!("two: {ok_line} ({:?})", t0.elapsed());
    let ok_line = seen(&mut m2, "red-2/echo-r2: echo: probe 10.1.1.11:7 ok after ");
    println!("two: {ok_line} ({:?})", t0.elapsed());
    seen(
        &mut m1,
        "red-1/echo-r1: echo: probe 10.1.1.12:7 failed: no answer in 10000 ms",
    );
    println!(
        "two: red-1's probe of blue-2 unanswered after {:?}",
        t0.elapsed()
    );
    let (t1, t2) = (m1.transcript(), m2.transcript());

    // Who answered whom, by MAC: blue-2 echoed blue-1, red-1 echoed red-2 (not blue-1,
    // which has the same address), and nothing of red-1 reached machine 2's agents.
    for (t, from, by, what) in [
        (&t2, &blue1, "blue-2/echo-b2: ", "blue-1's probe"),
        (&t1, &red2, "red-1/echo-r1: ", "red-2's probe"),
    ] {
        let echoed = lines_with(t, &format!("probe from {from}"));
        assert!(
            !echoed.is_empty() && echoed.iter().all(|l| l.contains(by)),
            "{what} echoed by {by}only: {echoed:#?}"
        );
    }
    let leaked = lines_with(&t2, &format!("probe from {red1}"));
    assert!(leaked.is_empty(), "red-1's probe reached {leaked:#?}");

    // Inside each machine, its red partition's port was handed no more frames than came
    // in tagged 200 (it is VLAN 200's only port there), its blue one's no more than came
    // in tagged 100: the other tenant's frames, which crossed the same wire (and, for
    // the probes, were sent inside the machine), were not among them.
    let metrics = [Metrics::fetch(&lab, ip1), Metrics::fetch(&lab, ip2)];
    let frames = [ok(cap1.stop()), ok(cap2.stop())];
    for ((m, f), (blue, red)) in metrics
        .iter()
        .zip(&frames)
        .zip([("blue-1/0", "red-1/0"), ("blue-2/0", "red-2/0")])
    {
        for (port, vid, other) in [(blue, 100, 200), (red, 200, 100)] {
            let delivered = m.delivered(port);
            let came = into_runtime(f, vid);
            assert!(
                delivered > 0 && delivered <= came && into_runtime(f, other) > 0,
                "{port}: {delivered} frames delivered, {came} came in tagged {vid}, \
                 {} tagged {other}",
                into_runtime(f, other)
            );
        }
    }

    // On the wire: each tenant's frames tagged with its VLAN, on both machines' taps.
    for (f, blue, red, mgmt) in [
        (&frames[0], &blue1, &red1, NIC_MAC),
        (&frames[1], &blue2, &red2, mac2),
    ] {
        all_tagged(f, &[parse_mac(blue)], 100, "blue");
        all_tagged(f, &[parse_mac(red)], 200, "red");
        let untagged: Vec<&Frame> = f
            .iter()
            .filter(|f| f.vid.is_none() && f.direction == Direction::Received && f.src != mgmt)
            .collect();
        assert!(
            untagged.is_empty(),
            "untagged partition frames: {untagged:#?}"
        );
    }

    m1.shutdown();
    m2.shutdown();
    drop(lab);
    println!("two: whole test {:?}", t0.elapsed());
}
