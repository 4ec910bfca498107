//! The VLAN lab (`plinth::lab`) proved with Linux alone, no plinth kernel: two Linux
//! 802.1Q peers on one lab bridge, each with `eth0.100` and `eth0.200`. Over VLAN 100
//! they ping, a capture on one tap sees every frame tagged 100 in both directions, one
//! hands the other a DHCP lease and the TCP throughput primitive runs; an address on
//! VLAN 200 only is out of reach from VLAN 100 and in reach from VLAN 200. And two peers
//! on a QEMU `dgram` link, with no lab at all.
//!
//! The lab needs root (network namespaces, taps), like the other network tests.

use std::net::SocketAddrV4;
use std::time::Instant;

use plinth::lab::capture::{ETHERTYPE_ARP, ETHERTYPE_IPV4};
use plinth::lab::{Direction, Lab, Link, LinuxPeer, PeerConfig, VlanIf, tcp_throughput};
use plinth::profile::Netdev;

/// A frame of `ping`'s default echo (56 bytes of data) on the wire with its tag:
/// 14 Ethernet + 4 tag + 20 IPv4 + 8 ICMP + 56.
const TAGGED_ECHO_LEN: usize = 102;

fn ok<T>(r: Result<T, plinth::lab::LabError>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn two_linux_peers_share_vlan_100_and_vlan_200_stays_apart() {
    let t0 = Instant::now();
    let lab = ok(Lab::new("vlan"));
    let tap_a = ok(lab.tap("tap-a"));
    let tap_b = ok(lab.tap("tap-b"));
    let vlans_a = [
        VlanIf::new(100, "10.1.0.1/24"),
        VlanIf::new(200, "10.2.0.1/24"),
    ];
    let vlans_b = [
        VlanIf::new(100, "10.1.0.2/24"),
        VlanIf::new(200, "10.2.0.2/24"),
    ];
    // Both QEMUs start before either is waited for: they boot in parallel.
    let mut a = ok(LinuxPeer::start(PeerConfig::new(
        "a",
        lab.link(&tap_a),
        &vlans_a,
    )));
    let mut b = ok(LinuxPeer::start(PeerConfig::new(
        "b",
        lab.link(&tap_b),
        &vlans_b,
    )));
    ok(a.ready());
    ok(b.ready());
    println!("lab: both peers up after {:?}", t0.elapsed());

    // VLAN 100: B pings A while A's tap is captured.
    let t = Instant::now();
    let capture = ok(lab.capture(&tap_a));
    assert!(ok(b.ping("10.1.0.1", 2)), "B cannot ping A over VLAN 100");
    assert!(ok(b.ping("10.2.0.1", 1)), "B cannot ping A over VLAN 200");
    let frames = ok(capture.stop());
    println!("lab: pings and capture in {:?}", t.elapsed());
    let ipv4 = |src: [u8; 6], dir: Direction| -> Vec<_> {
        frames
            .iter()
            .filter(|f| f.src == src && f.direction == dir && f.ethertype == ETHERTYPE_IPV4)
            .collect()
    };
    // To A's guest (the tap sends them) and from it (the tap receives them): the tag
    // is seen both ways, though Linux keeps it out of the frame bytes on both paths.
    let to_a = ipv4(b.mac(), Direction::Sent);
    let from_a = ipv4(a.mac(), Direction::Received);
    for (what, fs) in [("B to A", &to_a), ("A to B", &from_a)] {
        let vids: Vec<_> = fs.iter().map(|f| f.vid).collect();
        assert_eq!(
            vids,
            [Some(100), Some(100), Some(200)],
            "{what}: echoes on VLAN 100 twice, then 200: {frames:#?}"
        );
        assert!(
            fs.iter().all(|f| f.len == TAGGED_ECHO_LEN),
            "{what}: tagged length: {frames:#?}"
        );
    }
    assert!(
        frames
            .iter()
            .any(|f| f.ethertype == ETHERTYPE_ARP && f.is_broadcast() && f.vid == Some(100)),
        "B's ARP request for A, tagged 100: {frames:#?}"
    );
    assert!(
        frames.iter().all(|f| f.vid.is_some()),
        "nothing untagged between the peers: {frames:#?}"
    );

    // An address on A's VLAN 200 only is out of reach from B's VLAN 100 interface ...
    ok(a.run_ok("ip addr add 10.3.0.1/24 dev eth0.200"));
    ok(b.run_ok("ip addr add 10.3.0.2/24 dev eth0.100"));
    let rx = |p: &mut LinuxPeer, dev: &str| -> u64 {
        let out = ok(p.run_ok(&format!("cat /sys/class/net/{dev}/statistics/rx_packets")));
        out.trim()
            .parse()
            .unwrap_or_else(|e| panic!("rx_packets {out:?}: {e}"))
    };
    let (rx100, rx200) = (rx(&mut a, "eth0.100"), rx(&mut a, "eth0.200"));
    assert!(
        !ok(b.ping("10.3.0.1", 1)),
        "A's VLAN 200 address answered on VLAN 100"
    );
    assert!(
        rx(&mut a, "eth0.100") > rx100,
        "B's ARP requests reached A's eth0.100"
    );
    assert_eq!(
        rx(&mut a, "eth0.200"),
        rx200,
        "nothing B sent on VLAN 100 reached A's eth0.200"
    );
    // ... and in reach once B's side of that subnet is on VLAN 200.
    ok(b.run_ok("ip addr del 10.3.0.2/24 dev eth0.100 && ip addr add 10.3.0.2/24 dev eth0.200"));
    assert!(ok(b.ping("10.3.0.1", 1)), "10.3.0.1 over VLAN 200");

    // DHCP on VLAN 100, served by A.
    ok(a.serve_dhcp(100, "10.1.0.100", "10.1.0.110"));
    // udhcpd picks an address in the range from a hash of the client's MAC.
    let lease = ok(b.dhcp_lease("eth0.100"));
    let leased = lease
        .as_deref()
        .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok());
    assert!(
        leased
            .is_some_and(|a| a.octets()[..3] == [10, 1, 0] && (100..=110).contains(&a.octets()[3])),
        "B's lease on VLAN 100: {lease:?}"
    );

    // The throughput primitive, B to A over VLAN 100.
    let run = ok(tcp_throughput(&mut b, &mut a, "10.1.0.1", 32 << 20));
    println!(
        "lab: TCP B->A over VLAN 100: {} bytes in {:?} (receiver {:?}, host {:?}): {:.1} MiB/s",
        run.bytes,
        run.elapsed,
        run.receiver_elapsed,
        run.host_elapsed,
        run.mib_per_s()
    );
    assert_eq!(run.bytes, 32 << 20);
    assert!(
        !run.receiver_elapsed.is_zero()
            && run.receiver_elapsed <= run.elapsed
            && run.elapsed <= run.host_elapsed,
        "receiver's time within the sender's within the host's: {run:?}"
    );

    ok(a.shutdown());
    ok(b.shutdown());
    let netns = lab.netns().to_owned();
    drop(lab);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    assert!(
        !String::from_utf8_lossy(&left.stdout).contains(&netns),
        "the lab's namespace is gone"
    );
    println!("lab: whole test {:?}", t0.elapsed());
}

/// A UDP port free on 127.0.0.1 right now (QEMU binds it moments later).
fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    s.local_addr().expect("local_addr").port()
}

/// Peers need no lab: two QEMU `dgram` backends pointed at each other are a wire too
/// (no namespace, tap or root), and the VLAN on it works the same.
#[test]
fn two_linux_peers_on_a_dgram_link_share_a_vlan() {
    let t0 = Instant::now();
    let localhost = std::net::Ipv4Addr::LOCALHOST;
    let (pa, pb) = (
        SocketAddrV4::new(localhost, free_udp_port()),
        SocketAddrV4::new(localhost, free_udp_port()),
    );
    let link = |local, remote| Link::Netdev(Netdev::dgram(local, remote, [0; 6]).backend);
    let mut a = ok(LinuxPeer::start(PeerConfig::new(
        "a",
        link(pa, pb),
        &[VlanIf::new(100, "10.1.0.1/24")],
    )));
    let mut b = ok(LinuxPeer::start(PeerConfig::new(
        "b",
        link(pb, pa),
        &[VlanIf::new(100, "10.1.0.2/24")],
    )));
    ok(a.ready());
    ok(b.ready());
    let args = b.guest().qemu_args().join(" ");
    assert!(args.contains("-netdev dgram,"), "{args}");
    assert!(ok(b.ping("10.1.0.1", 1)), "B cannot ping A over VLAN 100");
    ok(a.shutdown());
    ok(b.shutdown());
    println!("dgram: whole test {:?}", t0.elapsed());
}
