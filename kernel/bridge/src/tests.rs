//! Host tests: one per rule of the crate documentation and of [`frame::classify`], the
//! negative cases first-class, then random and hostile traffic through the fuzz driver's
//! checks.

extern crate std;

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use plinth_testrng::Rng;

use super::*;
use crate::frame::{MAX_TAGGED, MAX_UNTAGGED, TPID_8021AD, TPID_8021Q, TPID_QINQ_LEGACY};
use crate::fuzzing::{MAC_A1, MAC_B, MAC_MGMT, MAC_ROUTER, ethernet};

const BROADCAST: Mac = [0xff; 6];
const IPV4: u16 = 0x0800;
const H1: Mac = [0x02, 0, 0, 0, 0x01, 0x01];
const H2: Mac = [0x02, 0, 0, 0, 0x01, 0x02];
const H3: Mac = [0x02, 0, 0, 0, 0x01, 0x03];

// The fuzz driver's topology.
const A1: PortId = PortId(0); // access 10, MAC_A1
const A2: PortId = PortId(1); // access 10
const B: PortId = PortId(2); // access 20, MAC_B
const MGMT: PortId = PortId(3); // access native, MAC_MGMT
const UPLINK: PortId = PortId(4); // trunk 10, 20, 30 + native
const ROUTER: PortId = PortId(5); // trunk 20, 40, MAC_ROUTER

/// The fuzz topology with the default limits.
fn topology() -> Bridge {
    topology_with(Config::default())
}

fn topology_with(config: Config) -> Bridge {
    let mut b = Bridge::new(config);
    for (name, mode, mac) in fuzzing::TOPOLOGY {
        b.add_port(PortConfig {
            name: name.to_string(),
            mode: mode.mode(),
            mac,
        });
    }
    b
}

fn access(name: &str, vid: u16, mac: Option<Mac>) -> PortConfig {
    PortConfig {
        name: name.to_string(),
        mode: Mode::Access { vid },
        mac,
    }
}

fn trunk(name: &str, vids: &[u16], native: bool) -> PortConfig {
    PortConfig {
        name: name.to_string(),
        mode: Mode::Trunk {
            allowed: vids.iter().copied().collect(),
            native,
        },
        mac: None,
    }
}

fn untagged(dst: Mac, src: Mac) -> Vec<u8> {
    ethernet(dst, src, None, IPV4, 46)
}

fn tagged(dst: Mac, src: Mac, vid: u16) -> Vec<u8> {
    ethernet(dst, src, Some(vid), IPV4, 46)
}

/// Offers `frame` on `port` at `now`: the verdict and the targets.
fn offer(b: &mut Bridge, port: PortId, frame: &[u8], now: u64) -> Result<Vec<Target>, Drop> {
    let mut out = Vec::new();
    let fwd = b.ingress(port, frame, now, &mut out)?;
    b.check_invariants();
    let _ = fwd;
    Ok(out)
}

fn ports_of(targets: &[Target]) -> Vec<PortId> {
    targets.iter().map(|t| t.port).collect()
}

fn port_drops(b: &Bridge, port: PortId, why: Drop) -> u64 {
    b.port(port).unwrap().1.drops[why.index()]
}

fn vlan(b: &Bridge, vid: u16) -> VlanCounters {
    b.vlans()
        .find(|(v, _)| *v == vid)
        .map(|(_, c)| c.clone())
        .unwrap_or_else(|| panic!("no VLAN {vid}"))
}

// ---- frame sizes ------------------------------------------------------------------

#[test]
fn runts_are_dropped_and_counted_on_the_port_and_its_vlan() {
    let mut b = topology();
    for len in [0, 1, 6, 12, 13] {
        let f = &untagged(BROADCAST, H1)[..len];
        assert_eq!(offer(&mut b, A2, f, 0), Err(Drop::Runt));
    }
    assert_eq!(port_drops(&b, A2, Drop::Runt), 5);
    assert_eq!(vlan(&b, 10).drops[Drop::Runt.index()], 5);
    // On a trunk, the VLAN is unknown: counted on the native one.
    assert_eq!(offer(&mut b, UPLINK, &[0; 13], 0), Err(Drop::Runt));
    assert_eq!(vlan(&b, NATIVE).drops[Drop::Runt.index()], 1);
    // 14 bytes is a whole header.
    assert!(offer(&mut b, A2, &untagged(BROADCAST, H1)[..14], 0).is_ok());
}

#[test]
fn a_tag_without_room_for_it_is_truncated() {
    let mut b = topology();
    for tpid in [TPID_8021Q, TPID_8021AD] {
        for len in 14..18 {
            let mut f = tagged(BROADCAST, H1, 10);
            f[12..14].copy_from_slice(&tpid.to_be_bytes());
            assert_eq!(offer(&mut b, UPLINK, &f[..len], 0), Err(Drop::Truncated));
            assert_eq!(offer(&mut b, A2, &f[..len], 0), Err(Drop::Truncated));
        }
    }
    assert_eq!(port_drops(&b, UPLINK, Drop::Truncated), 8);
    assert_eq!(vlan(&b, NATIVE).drops[Drop::Truncated.index()], 8);
    assert_eq!(vlan(&b, 10).drops[Drop::Truncated.index()], 8);
    // 18 bytes: a tag and an EtherType, no payload, is a frame.
    assert!(offer(&mut b, UPLINK, &tagged(BROADCAST, H1, 10)[..18], 0).is_ok());
}

#[test]
fn oversize_is_over_1514_untagged_or_1518_tagged() {
    let mut b = topology();
    let ok = ethernet(BROADCAST, H1, None, IPV4, MAX_UNTAGGED - 14);
    assert_eq!(ok.len(), 1514);
    assert!(offer(&mut b, A2, &ok, 0).is_ok());
    let big = ethernet(BROADCAST, H1, None, IPV4, MAX_UNTAGGED - 13);
    assert_eq!(offer(&mut b, A2, &big, 0), Err(Drop::Oversize));

    let ok = ethernet(BROADCAST, H1, Some(30), IPV4, MAX_TAGGED - 18);
    assert_eq!(ok.len(), 1518);
    assert!(offer(&mut b, UPLINK, &ok, 0).is_ok());
    let big = ethernet(BROADCAST, H1, Some(30), IPV4, MAX_TAGGED - 17);
    assert_eq!(offer(&mut b, UPLINK, &big, 0), Err(Drop::Oversize));
    // Counted in the VLAN its allowed tag names; a priority-tagged 1518 on an access
    // port is fine.
    assert_eq!(vlan(&b, 30).drops[Drop::Oversize.index()], 1);
    assert_eq!(vlan(&b, 10).drops[Drop::Oversize.index()], 1);
    let prio = ethernet(BROADCAST, H1, Some(0), IPV4, MAX_TAGGED - 18);
    assert!(offer(&mut b, A2, &prio, 0).is_ok());
    assert!(offer(&mut b, A2, &vec![0xff; 64 * 1024], 0) == Err(Drop::Oversize));
}

/// A super-frame the uplink's offload built goes by its tag and addresses like any frame;
/// past the largest IPv4 packet it is oversize all the same, and a normal ingress of it
/// is refused.
#[test]
fn a_large_ingress_takes_a_super_frame_and_no_more() {
    use crate::frame::MAX_LARGE;
    let mut b = topology();
    let big = ethernet(BROADCAST, H1, Some(10), IPV4, 60_000);
    assert_eq!(offer(&mut b, UPLINK, &big, 0), Err(Drop::Oversize));
    let mut out = Vec::new();
    let before = b.port(UPLINK).unwrap().1.rx_bytes;
    let fwd = b.ingress_large(UPLINK, &big, 62_000, 0, &mut out).unwrap();
    assert_eq!(fwd.vid, 10);
    assert_eq!(ports_of(&out), [A1, A2]);
    // Counted as the bytes its segments take.
    assert_eq!(b.port(UPLINK).unwrap().1.rx_bytes - before, 62_000);
    let too_big = ethernet(BROADCAST, H1, Some(10), IPV4, MAX_LARGE - 17);
    assert_eq!(
        b.ingress_large(UPLINK, &too_big, too_big.len(), 0, &mut out),
        Err(Drop::Oversize)
    );
    // A tag for a VLAN the trunk does not carry is refused whatever the size.
    let other = ethernet(BROADCAST, H1, Some(40), IPV4, 60_000);
    assert_eq!(
        b.ingress_large(UPLINK, &other, other.len(), 0, &mut out),
        Err(Drop::VidNotAllowed)
    );
}

// ---- access ports -----------------------------------------------------------------

#[test]
fn access_ports_take_untagged_and_priority_tagged_frames_into_their_vlan() {
    let mut b = topology();
    let mut out = Vec::new();
    let fwd = b
        .ingress(A2, &untagged(BROADCAST, H1), 0, &mut out)
        .unwrap();
    assert_eq!((fwd.vid, fwd.tagged, fwd.flooded), (10, false, true));
    assert_eq!(
        out,
        [
            Target {
                port: A1,
                tag: None
            },
            Target {
                port: UPLINK,
                tag: Some(10)
            },
        ]
    );
    // Priority-tagged (VID 0, PCP 5): the same VLAN; the PCP is kept.
    let f = ethernet(BROADCAST, H1, Some(5 << 13), IPV4, 46);
    let fwd = b.ingress(A2, &f, 0, &mut out).unwrap();
    assert_eq!((fwd.vid, fwd.tagged, fwd.priority), (10, true, 5 << 1));
    assert_eq!(ports_of(&out), [A1, UPLINK]);

    // Leaving to the access port, the priority tag is removed; to the trunk, rewritten.
    let mut buf = [0u8; 1600];
    let n = Bridge::write(&f, &fwd, None, &mut buf);
    assert_eq!(buf[..n], untagged(BROADCAST, H1));
    let n = Bridge::write(&f, &fwd, Some(10), &mut buf);
    assert_eq!(
        buf[..n],
        ethernet(BROADCAST, H1, Some(5 << 13 | 10), IPV4, 46)
    );

    // The management port's untagged frames are the native VLAN, untagged on the uplink.
    b.ingress(MGMT, &untagged(BROADCAST, MAC_MGMT), 0, &mut out)
        .unwrap();
    assert_eq!(
        out,
        [Target {
            port: UPLINK,
            tag: None
        }]
    );
}

#[test]
fn tags_from_access_ports_are_dropped() {
    let mut b = topology();
    // A VLAN tag, for its own VLAN or another.
    assert_eq!(
        offer(&mut b, A2, &tagged(BROADCAST, H1, 20), 0),
        Err(Drop::TaggedOnAccess)
    );
    assert_eq!(
        offer(&mut b, A2, &tagged(BROADCAST, H1, 10), 0),
        Err(Drop::TaggedOnAccess)
    );
    // Service tags, standard and legacy.
    for tpid in [TPID_8021AD, TPID_QINQ_LEGACY] {
        let mut f = tagged(BROADCAST, H1, 20);
        f[12..14].copy_from_slice(&tpid.to_be_bytes());
        assert_eq!(offer(&mut b, A2, &f, 0), Err(Drop::TaggedOnAccess));
    }
    // Double tagging from the native VLAN: the priority tag would be stripped on the
    // uplink, where the next switch would read VLAN 20.
    for inner in [TPID_8021Q, TPID_8021AD, TPID_QINQ_LEGACY] {
        let mut f = ethernet(BROADCAST, MAC_MGMT, Some(0), inner, 46);
        f[18..20].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(offer(&mut b, MGMT, &f, 0), Err(Drop::TaggedOnAccess));
    }
    let f = ethernet(BROADCAST, MAC_MGMT, Some(20), TPID_8021Q, 46);
    assert_eq!(offer(&mut b, MGMT, &f, 0), Err(Drop::TaggedOnAccess));
    assert_eq!(port_drops(&b, A2, Drop::TaggedOnAccess), 4);
    assert_eq!(vlan(&b, 10).drops[Drop::TaggedOnAccess.index()], 4);
    assert_eq!(vlan(&b, NATIVE).drops[Drop::TaggedOnAccess.index()], 4);
    assert_eq!(vlan(&b, 20).drops, [0; Drop::COUNT]);
    // Nothing was learned from any of them.
    assert_eq!(b.macs(0).filter(|e| !e.is_static).count(), 0);
}

#[test]
fn bad_sources_are_dropped() {
    let mut b = topology();
    for src in [
        [0; 6],
        BROADCAST,
        [0x01, 0x00, 0x5e, 0, 0, 1],
        [0x33, 0x33, 0, 0, 0, 1],
    ] {
        assert_eq!(
            offer(&mut b, A2, &untagged(BROADCAST, src), 0),
            Err(Drop::BadSource)
        );
        assert_eq!(
            offer(&mut b, UPLINK, &tagged(BROADCAST, src, 30), 0),
            Err(Drop::BadSource)
        );
    }
    assert_eq!(port_drops(&b, A2, Drop::BadSource), 4);
    assert_eq!(vlan(&b, 10).drops[Drop::BadSource.index()], 4);
    assert_eq!(vlan(&b, 30).drops[Drop::BadSource.index()], 4);
    assert_eq!(b.macs(0).filter(|e| !e.is_static).count(), 0);
}

#[test]
fn a_port_with_an_address_sends_from_it_only() {
    let mut b = topology();
    assert_eq!(
        offer(&mut b, A1, &untagged(BROADCAST, H1), 0),
        Err(Drop::SpoofedSource)
    );
    // Another port's address, in its VLAN or another.
    assert_eq!(
        offer(&mut b, A1, &untagged(BROADCAST, MAC_B), 0),
        Err(Drop::SpoofedSource)
    );
    assert!(offer(&mut b, A1, &untagged(BROADCAST, MAC_A1), 0).is_ok());
    // On a trunk too, in every VLAN.
    assert_eq!(
        offer(&mut b, ROUTER, &tagged(BROADCAST, H1, 20), 0),
        Err(Drop::SpoofedSource)
    );
    assert!(offer(&mut b, ROUTER, &tagged(BROADCAST, MAC_ROUTER, 40), 0).is_ok());
    assert_eq!(port_drops(&b, A1, Drop::SpoofedSource), 2);
    assert_eq!(vlan(&b, 10).drops[Drop::SpoofedSource.index()], 2);
    assert_eq!(vlan(&b, 20).drops[Drop::SpoofedSource.index()], 1);
}

#[test]
fn an_access_vid_out_of_range_carries_nothing() {
    let mut b = Bridge::new(Config::default());
    let bad = b.add_port(access("bad", 4095, None));
    let other = b.add_port(access("other", 4095, None));
    let up = b.add_port(trunk("up", &[1, 4094], true));
    assert_eq!(
        offer(&mut b, bad, &untagged(BROADCAST, H1), 0),
        Err(Drop::VidNotAllowed)
    );
    assert_eq!(
        offer(&mut b, up, &tagged(BROADCAST, H1, 4094), 0).unwrap(),
        []
    );
    assert_eq!(offer(&mut b, up, &untagged(BROADCAST, H1), 0).unwrap(), []);
    let _ = other;
    assert!(b.vlans().all(|(v, _)| v <= MAX_VID));
}

// ---- trunk ports ------------------------------------------------------------------

#[test]
fn trunks_take_allowed_tags_and_native_untagged_frames() {
    let mut b = topology();
    let mut out = Vec::new();
    let fwd = b
        .ingress(UPLINK, &tagged(BROADCAST, H1, 20), 0, &mut out)
        .unwrap();
    assert_eq!((fwd.vid, fwd.tagged), (20, true));
    assert_eq!(
        out,
        [
            Target { port: B, tag: None },
            Target {
                port: ROUTER,
                tag: Some(20)
            },
        ]
    );
    // Untagged and priority-tagged: the native VLAN.
    for f in [untagged(BROADCAST, H1), tagged(BROADCAST, H1, 3 << 13)] {
        let fwd = b.ingress(UPLINK, &f, 0, &mut out).unwrap();
        assert_eq!(fwd.vid, NATIVE);
        assert_eq!(
            out,
            [Target {
                port: MGMT,
                tag: None
            }]
        );
    }
    // Not allowed: other VIDs, the reserved 4095, service tags, and a priority tag
    // around another tag.
    for vid in [1, 40, 4094, 4095] {
        assert_eq!(
            offer(&mut b, UPLINK, &tagged(BROADCAST, H1, vid), 0),
            Err(Drop::VidNotAllowed),
            "{vid}"
        );
    }
    let mut s = tagged(BROADCAST, H1, 20);
    s[12..14].copy_from_slice(&TPID_8021AD.to_be_bytes());
    assert_eq!(offer(&mut b, UPLINK, &s, 0), Err(Drop::VidNotAllowed));
    let mut nested = ethernet(BROADCAST, H1, Some(0), TPID_8021Q, 46);
    nested[18..20].copy_from_slice(&40u16.to_be_bytes());
    assert_eq!(offer(&mut b, UPLINK, &nested, 0), Err(Drop::VidNotAllowed));
    assert_eq!(port_drops(&b, UPLINK, Drop::VidNotAllowed), 6);
    assert_eq!(vlan(&b, NATIVE).drops[Drop::VidNotAllowed.index()], 6);
    assert_eq!(vlan(&b, 40).drops, [0; Drop::COUNT]);
}

#[test]
fn a_trunk_without_a_native_vlan_drops_untagged_frames() {
    let mut b = topology();
    for f in [
        untagged(BROADCAST, MAC_ROUTER),
        tagged(BROADCAST, MAC_ROUTER, 0),
    ] {
        assert_eq!(offer(&mut b, ROUTER, &f, 0), Err(Drop::NoNativeVlan));
    }
    assert_eq!(port_drops(&b, ROUTER, Drop::NoNativeVlan), 2);
    assert_eq!(vlan(&b, NATIVE).drops[Drop::NoNativeVlan.index()], 2);
    // And it receives none of the native VLAN's.
    let out = offer(&mut b, MGMT, &untagged(BROADCAST, MAC_MGMT), 0).unwrap();
    assert_eq!(ports_of(&out), [UPLINK]);
}

// ---- learning and forwarding --------------------------------------------------------

#[test]
fn a_learned_address_gets_its_frames_alone() {
    let mut b = topology();
    // Unknown: flooded in VLAN 10.
    let out = offer(&mut b, A2, &untagged(H3, H1), 0).unwrap();
    assert_eq!(ports_of(&out), [A1, UPLINK]);
    assert_eq!(b.lookup(10, &H1, 0), Some(A2));
    // H1 is now known: only A2 gets frames for it, untagged.
    let mut out = Vec::new();
    let fwd = b.ingress(UPLINK, &tagged(H1, H2, 10), 5, &mut out).unwrap();
    assert!(!fwd.flooded);
    assert_eq!(
        out,
        [Target {
            port: A2,
            tag: None
        }]
    );
    // H2 learned on the uplink in VLAN 10: tagged 10 going there.
    let out = offer(&mut b, A2, &untagged(H2, H1), 6).unwrap();
    assert_eq!(
        out,
        [Target {
            port: UPLINK,
            tag: Some(10)
        }]
    );
    // The same address in another VLAN is another entry.
    assert_eq!(b.lookup(20, &H1, 6), None);
    let out = offer(&mut b, UPLINK, &tagged(H1, H2, 20), 7).unwrap();
    assert_eq!(ports_of(&out), [B, ROUTER]);
    assert_eq!(vlan(&b, 10).flooded, 1);
    assert_eq!(vlan(&b, 20).flooded, 1);
}

#[test]
fn broadcast_and_multicast_are_flooded_even_when_known() {
    let mut b = topology();
    offer(&mut b, A2, &untagged(BROADCAST, H1), 0).unwrap();
    let group = [0x01, 0x00, 0x5e, 0, 0, 1];
    for dst in [BROADCAST, group, [0x33, 0x33, 0, 0, 0, 1]] {
        let out = offer(&mut b, UPLINK, &tagged(dst, H2, 10), 0).unwrap();
        assert_eq!(ports_of(&out), [A1, A2]);
    }
    assert_eq!(vlan(&b, 10).flooded, 4);
}

#[test]
fn a_frame_for_its_own_port_goes_nowhere_and_is_not_a_drop() {
    let mut b = topology();
    offer(&mut b, UPLINK, &tagged(BROADCAST, H1, 30), 0).unwrap();
    offer(&mut b, UPLINK, &tagged(BROADCAST, H2, 30), 0).unwrap();
    let mut out = vec![Target {
        port: A1,
        tag: None,
    }];
    let fwd = b.ingress(UPLINK, &tagged(H2, H1, 30), 0, &mut out).unwrap();
    assert!(!fwd.flooded);
    assert!(out.is_empty());
    let c = b.port(UPLINK).unwrap().1;
    assert_eq!(c.drops, [0; Drop::COUNT]);
    assert_eq!(c.rx_frames, 3);
}

#[test]
fn no_frame_crosses_vlans() {
    let mut b = topology();
    // H1 is learned in VLAN 10; a frame to H1 in VLAN 20 is flooded in VLAN 20 only.
    offer(&mut b, A2, &untagged(BROADCAST, H1), 0).unwrap();
    let out = offer(&mut b, B, &untagged(H1, MAC_B), 0).unwrap();
    assert_eq!(
        out,
        [
            Target {
                port: UPLINK,
                tag: Some(20)
            },
            Target {
                port: ROUTER,
                tag: Some(20)
            },
        ]
    );
    let out = offer(&mut b, MGMT, &untagged(H1, MAC_MGMT), 0).unwrap();
    assert_eq!(ports_of(&out), [UPLINK]);
    // VLAN 40 lives on the router only: nowhere to flood.
    let out = offer(&mut b, ROUTER, &tagged(H1, MAC_ROUTER, 40), 0).unwrap();
    assert!(out.is_empty());
}

#[test]
fn learned_addresses_age_out() {
    let config = Config {
        aging_ms: 1000,
        ..Config::default()
    };
    let mut b = topology_with(config);
    offer(&mut b, A2, &untagged(BROADCAST, H1), 0).unwrap();
    offer(&mut b, A2, &untagged(BROADCAST, H2), 500).unwrap();
    assert_eq!(b.lookup(10, &H1, 999), Some(A2));
    // An entry lives for aging_ms.
    assert_eq!(b.lookup(10, &H1, 1000), None);
    assert_eq!(b.macs(1000).filter(|e| !e.is_static).count(), 1);
    let aged: Vec<MacEntry> = b.macs(1200).filter(|e| !e.is_static).collect();
    assert_eq!(
        aged,
        [MacEntry {
            vid: 10,
            mac: H2,
            port: A2,
            age_ms: 700,
            is_static: false
        }]
    );
    // Lazily: the lookup of an expired destination floods and forgets it.
    assert_eq!(vlan(&b, 10).macs, 3);
    let out = offer(&mut b, UPLINK, &tagged(H1, H3, 10), 1000).unwrap();
    assert_eq!(ports_of(&out), [A1, A2]);
    assert_eq!(vlan(&b, 10).macs, 3); // H1 gone, H3 learned
    // age() removes the rest.
    b.age(1500);
    assert_eq!(vlan(&b, 10).macs, 2);
    b.age(10_000);
    b.check_invariants();
    assert_eq!(vlan(&b, 10).macs, 1); // the static MAC_A1
    // Static entries never age.
    assert_eq!(b.lookup(10, &MAC_A1, u64::MAX), Some(A1));
    // Being seen again keeps an entry alive.
    offer(&mut b, A2, &untagged(BROADCAST, H1), 20_000).unwrap();
    offer(&mut b, A2, &untagged(BROADCAST, H1), 20_900).unwrap();
    b.age(21_500);
    assert_eq!(b.lookup(10, &H1, 21_500), Some(A2));
}

#[test]
fn a_moved_address_follows_its_latest_port() {
    let mut b = topology();
    offer(&mut b, A2, &untagged(BROADCAST, H1), 0).unwrap();
    offer(&mut b, UPLINK, &tagged(BROADCAST, H1, 10), 1).unwrap();
    assert_eq!(b.lookup(10, &H1, 1), Some(UPLINK));
    assert_eq!(vlan(&b, 10).macs, 2);
}

#[test]
fn static_addresses_are_never_moved_or_aged() {
    let mut b = topology();
    let before = b.lookup(10, &MAC_A1, 0);
    assert_eq!(before, Some(A1));
    // A2 (no address of its own) claims A1's: forwarded, but the entry stays.
    let out = offer(&mut b, A2, &untagged(BROADCAST, MAC_A1), 0).unwrap();
    assert_eq!(ports_of(&out), [A1, UPLINK]);
    let out = offer(&mut b, UPLINK, &tagged(MAC_A1, MAC_A1, 10), 1).unwrap();
    assert_eq!(ports_of(&out), [A1]);
    assert_eq!(b.lookup(10, &MAC_A1, u64::MAX), Some(A1));
    b.age(u64::MAX);
    let statics: Vec<MacEntry> = b.macs(u64::MAX).filter(|e| e.is_static).collect();
    assert_eq!(statics.len(), 5); // A1, B, MGMT, ROUTER in 20 and 40
    assert!(statics.contains(&MacEntry {
        vid: 40,
        mac: MAC_ROUTER,
        port: ROUTER,
        age_ms: 0,
        is_static: true
    }));
    assert!(b.macs(u64::MAX).all(|e| e.is_static));
}

#[test]
fn a_full_vlan_evicts_its_own_oldest_entry() {
    let config = Config {
        max_macs_per_vlan: 3,
        ..Config::default()
    };
    let mut b = topology_with(config);
    let host = |i: u8| [0x02, 0, 0, 0, 0x10, i];
    for i in 0..3 {
        offer(&mut b, A2, &untagged(BROADCAST, host(i)), u64::from(i)).unwrap();
    }
    // Host 0 is seen again: host 1 is now the oldest.
    offer(&mut b, A2, &untagged(BROADCAST, host(0)), 10).unwrap();
    offer(&mut b, A2, &untagged(BROADCAST, host(3)), 11).unwrap();
    assert_eq!(b.lookup(10, &host(1), 11), None);
    for i in [0, 2, 3] {
        assert_eq!(b.lookup(10, &host(i), 11), Some(A2), "{i}");
    }
    // The static entry does not count against the bound and is never evicted.
    assert_eq!(vlan(&b, 10).macs, 4);
    assert_eq!(b.lookup(10, &MAC_A1, 11), Some(A1));
}

#[test]
fn a_full_table_makes_room_only_within_the_learning_vlan() {
    let config = Config {
        max_macs_per_vlan: 4,
        max_macs: 6,
        ..Config::default()
    };
    let mut b = topology_with(config);
    let host = |vid: u8, i: u8| [0x02, 0, 0, vid, 0x10, i];
    for i in 0..4 {
        offer(&mut b, A2, &untagged(BROADCAST, host(10, i)), 0).unwrap();
    }
    for i in 0..2 {
        offer(&mut b, UPLINK, &tagged(BROADCAST, host(20, i), 20), 1).unwrap();
    }
    // Full (6). VLAN 20 learns a third by giving up its own oldest.
    offer(&mut b, UPLINK, &tagged(BROADCAST, host(20, 2), 20), 2).unwrap();
    assert_eq!(b.lookup(20, &host(20, 0), 2), None);
    assert_eq!(b.lookup(20, &host(20, 2), 2), Some(UPLINK));
    // VLAN 30 has nothing to give up: it does not learn, and takes nothing from others.
    let out = offer(&mut b, UPLINK, &tagged(BROADCAST, host(30, 0), 30), 3).unwrap();
    assert!(out.is_empty());
    assert_eq!(b.lookup(30, &host(30, 0), 3), None);
    for i in 0..4 {
        assert_eq!(b.lookup(10, &host(10, i), 3), Some(A2));
    }
    // Once VLAN 10's entries age out, VLAN 30 learns.
    b.age(Config::default().aging_ms);
    offer(&mut b, UPLINK, &tagged(BROADCAST, host(30, 0), 30), 300_000).unwrap();
    assert_eq!(b.lookup(30, &host(30, 0), 300_000), Some(UPLINK));
}

#[test]
fn a_tenant_flooding_random_sources_cannot_flush_another_vlan() {
    let mut b = topology();
    let mut rng = Rng::new(0xf100d);
    // Tenant B's VLAN 20 has 50 hosts behind the uplink.
    let b_hosts: Vec<Mac> = (0..50).map(|i| [0x02, 0xbb, 0, 0, 0, i]).collect();
    for h in &b_hosts {
        offer(&mut b, UPLINK, &tagged(BROADCAST, *h, 20), 0).unwrap();
    }
    // Tenant A sends 100 000 frames from random addresses (A2 has no static address),
    // and the uplink carries as many more for VLAN 30, filling the whole table.
    let mut out = Vec::new();
    for i in 0..100_000u64 {
        let mut src = [0u8; 6];
        rng.fill_bytes(&mut src);
        src[0] &= 0xfe;
        src[0] |= 0x02;
        let (port, f) = if i % 2 == 0 {
            (A2, untagged(BROADCAST, src))
        } else {
            (UPLINK, tagged(H1, src, 30))
        };
        let _ = b.ingress(port, &f, 1 + i / 1000, &mut out);
    }
    b.check_invariants();
    for h in &b_hosts {
        assert_eq!(b.lookup(20, h, 100), Some(UPLINK));
    }
    assert_eq!(b.lookup(20, &MAC_B, 100), Some(B));
    let per_vlan = Config::default().max_macs_per_vlan;
    assert_eq!(vlan(&b, 10).macs, per_vlan + 1); // + the static MAC_A1
    assert_eq!(vlan(&b, 30).macs, per_vlan);
    assert_eq!(vlan(&b, 20).macs, 50 + 2); // + MAC_B and MAC_ROUTER
}

// ---- counters -----------------------------------------------------------------------

#[test]
fn every_offered_frame_is_counted_on_its_port_and_accepted_ones_on_their_vlan() {
    let mut b = topology();
    offer(&mut b, A2, &untagged(BROADCAST, H1), 0).unwrap();
    offer(&mut b, A2, &tagged(BROADCAST, H1, 20), 0).unwrap_err();
    offer(&mut b, A2, &[0; 3], 0).unwrap_err();
    let c = b.port(A2).unwrap().1.clone();
    assert_eq!((c.rx_frames, c.rx_bytes), (3, 60 + 64 + 3));
    let v = vlan(&b, 10);
    assert_eq!((v.frames, v.bytes, v.flooded), (1, 60, 1));
    assert_eq!(vlan(&b, 20).frames, 0);

    b.delivered(UPLINK, 10, 64);
    b.delivered(UPLINK, 10, 100);
    b.dropped(A1, 10, Drop::QueueFull);
    let up = b.port(UPLINK).unwrap().1;
    assert_eq!((up.tx_frames, up.tx_bytes), (2, 164));
    assert_eq!(port_drops(&b, A1, Drop::QueueFull), 1);
    assert_eq!(vlan(&b, 10).drops[Drop::QueueFull.index()], 1);
    // Reports for ports or VLANs that do not exist are counted where they can be.
    b.dropped(PortId(99), 10, Drop::QueueFull);
    b.dropped(PortId(99), 999, Drop::QueueFull);
    b.dropped(PortId(99), u16::MAX, Drop::QueueFull);
    b.delivered(PortId(99), 10, 1);
    assert_eq!(vlan(&b, 10).drops[Drop::QueueFull.index()], 2);
    assert_eq!(vlan(&b, NATIVE).drops[Drop::QueueFull.index()], 2);
}

#[test]
fn frames_on_missing_ports_are_dropped() {
    let mut b = topology();
    assert_eq!(
        offer(&mut b, PortId(6), &untagged(BROADCAST, H1), 0),
        Err(Drop::NoPort)
    );
    assert_eq!(vlan(&b, NATIVE).drops[Drop::NoPort.index()], 1);
}

#[test]
fn drop_reasons_have_distinct_metric_names() {
    assert_eq!(Drop::ALL.len(), Drop::COUNT);
    for (i, d) in Drop::ALL.iter().enumerate() {
        assert_eq!(d.index(), i);
        let name = d.name();
        assert!(name.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'));
        assert_eq!(d.to_string(), name);
        assert!(Drop::ALL[..i].iter().all(|o| o.name() != name));
    }
}

#[test]
fn vlans_are_listed_in_order() {
    let b = topology();
    let vids: Vec<u16> = b.vlans().map(|(v, _)| v).collect();
    assert_eq!(vids, [NATIVE, 10, 20, 30, 40]);
}

// ---- configuration --------------------------------------------------------------------

#[test]
fn removing_a_port_forgets_its_entries_and_counters() {
    let mut b = topology();
    offer(&mut b, UPLINK, &tagged(BROADCAST, H1, 10), 0).unwrap();
    offer(&mut b, UPLINK, &tagged(BROADCAST, H2, 20), 0).unwrap();
    offer(&mut b, A2, &untagged(BROADCAST, H3), 0).unwrap();
    assert!(b.remove_port(UPLINK));
    assert!(!b.remove_port(UPLINK));
    assert!(b.port(UPLINK).is_none());
    assert!(b.macs(0).all(|e| e.port != UPLINK));
    assert_eq!(b.lookup(10, &H3, 0), Some(A2));
    assert_eq!(vlan(&b, 10).macs, 2);
    assert_eq!(
        offer(&mut b, UPLINK, &untagged(BROADCAST, H1), 0),
        Err(Drop::NoPort)
    );
    // Frames for its addresses are flooded to the ports left.
    let out = offer(&mut b, A2, &untagged(H1, H3), 0).unwrap();
    assert_eq!(ports_of(&out), [A1]);
    // A new port gets a new id, with fresh counters.
    let id = b.add_port(trunk("uplink", &[10], true));
    assert_eq!(id, PortId(6));
    assert_eq!(b.port(id).unwrap().1, &PortCounters::default());
    assert!(!b.set_mode(UPLINK, Mode::Access { vid: 1 }));
}

#[test]
fn ids_wrap_around_to_free_ones() {
    let mut b = Bridge::new(Config::default());
    let first = b.add_port(access("a", 1, None));
    assert_eq!(first, PortId(0));
    for i in 1..=u16::MAX {
        let id = b.add_port(access("x", 1, None));
        assert_eq!(id, PortId(i));
        assert!(b.remove_port(id));
    }
    // Past 65535 the search wraps, skipping port 0, which still exists.
    assert_eq!(b.add_port(access("b", 1, None)), PortId(1));
}

#[test]
fn changing_a_mode_forgets_entries_in_vlans_no_longer_carried() {
    let mut b = topology();
    offer(&mut b, UPLINK, &tagged(BROADCAST, H1, 10), 0).unwrap();
    offer(&mut b, UPLINK, &tagged(BROADCAST, H2, 20), 0).unwrap();
    offer(&mut b, UPLINK, &untagged(BROADCAST, H3), 0).unwrap();
    let mode = Mode::Trunk {
        allowed: [20, 50].into_iter().collect(),
        native: false,
    };
    assert!(b.set_mode(UPLINK, mode));
    assert_eq!(b.lookup(10, &H1, 0), None);
    assert_eq!(b.lookup(20, &H2, 0), Some(UPLINK));
    assert_eq!(b.lookup(NATIVE, &H3, 0), None);
    // VLAN 50 has state now; VLAN 10's stays, with its counters.
    assert_eq!(vlan(&b, 50).frames, 0);
    assert_eq!(vlan(&b, 10).frames, 1);
    // Floods follow the new mode.
    let out = offer(&mut b, A2, &untagged(BROADCAST, H3), 0).unwrap();
    assert_eq!(ports_of(&out), [A1]);
    let out = offer(&mut b, B, &untagged(BROADCAST, MAC_B), 0).unwrap();
    assert_eq!(ports_of(&out), [UPLINK, ROUTER]);

    // A port with an address gets it in its new VLANs and loses it in the old ones.
    assert!(b.set_mode(A1, Mode::Access { vid: 50 }));
    assert_eq!(b.lookup(50, &MAC_A1, 0), Some(A1));
    assert_eq!(b.lookup(10, &MAC_A1, 0), None);
    b.check_invariants();
}

#[test]
fn a_claimed_address_replaces_a_learned_one_and_the_first_claim_wins() {
    let mut b = Bridge::new(Config::default());
    let up = b.add_port(trunk("up", &[7], false));
    offer(&mut b, up, &tagged(BROADCAST, H1, 7), 0).unwrap();
    assert_eq!(b.lookup(7, &H1, 0), Some(up));
    let first = b.add_port(access("first", 7, Some(H1)));
    assert_eq!(b.lookup(7, &H1, 0), Some(first));
    let second = b.add_port(access("second", 7, Some(H1)));
    assert_eq!(b.lookup(7, &H1, 0), Some(first));
    // Both may send from it; frames for it go to the first while it exists.
    assert!(offer(&mut b, second, &untagged(BROADCAST, H1), 0).is_ok());
    assert!(b.remove_port(first));
    assert_eq!(b.lookup(7, &H1, 0), Some(second));
    b.check_invariants();
}

// ---- writing frames ---------------------------------------------------------------------

#[test]
fn write_pushes_pops_and_rewrites_tags() {
    let plain = untagged(H1, H2);
    let fwd_plain = Forward {
        vid: 10,
        tagged: false,
        priority: 0,
        flooded: false,
    };
    let mut buf = [0u8; 1600];
    assert_eq!(Bridge::egress_len(&plain, &fwd_plain, None), 60);
    assert_eq!(Bridge::egress_len(&plain, &fwd_plain, Some(10)), 64);
    let n = Bridge::write(&plain, &fwd_plain, Some(10), &mut buf);
    assert_eq!(buf[..n], tagged(H1, H2, 10));
    let n = Bridge::write(&plain, &fwd_plain, None, &mut buf);
    assert_eq!(buf[..n], plain);

    // PCP 7 and DEI kept when the VID is rewritten; popped entirely otherwise.
    let prio = ethernet(H1, H2, Some(0xf000 | 10), IPV4, 46);
    let fwd = Forward {
        vid: 10,
        tagged: true,
        priority: 0xf,
        flooded: false,
    };
    let n = Bridge::write(&prio, &fwd, Some(30), &mut buf);
    assert_eq!(buf[..n], ethernet(H1, H2, Some(0xf000 | 30), IPV4, 46));
    let n = Bridge::write(&prio, &fwd, None, &mut buf);
    assert_eq!(buf[..n], plain);

    // Too small a buffer, or a frame too short for the layout: nothing written.
    assert_eq!(
        Bridge::write(&plain, &fwd_plain, Some(10), &mut buf[..63]),
        0
    );
    assert_eq!(Bridge::write(&prio[..15], &fwd, None, &mut buf), 0);
    assert_eq!(Bridge::write(&[], &fwd, None, &mut buf), 0);
}

// ---- VID sets ---------------------------------------------------------------------------

#[test]
fn vid_sets_hold_tenant_vids_only() {
    let mut s = VidSet::new();
    assert!(s.is_empty());
    assert!(!s.insert(0));
    assert!(!s.insert(4095));
    assert!(!s.insert(u16::MAX));
    assert!(s.insert(1));
    assert!(!s.insert(1));
    assert!(s.insert(4094));
    assert!(s.insert(64));
    assert!(s.insert(63));
    assert!(s.contains(64) && s.contains(63) && s.contains(4094));
    assert!(!s.contains(0) && !s.contains(4095) && !s.contains(65535));
    assert_eq!(s.iter().collect::<Vec<_>>(), [1, 63, 64, 4094]);
    assert_eq!(s.len(), 4);
    assert!(s.remove(63));
    assert!(!s.remove(63));
    assert!(!s.remove(0));
    assert_eq!(alloc::format!("{s:?}"), "{1, 64, 4094}");
    let all = VidSet::all();
    assert_eq!(all.len(), 4094);
    assert_eq!(alloc::format!("{all:?}"), "{1-4094}");
    let from: VidSet = [0, 5, 6, 7, 9, 4095].into_iter().collect();
    assert_eq!(alloc::format!("{from:?}"), "{5-7, 9}");
    assert_eq!(VidSet::default(), VidSet::new());
}

#[test]
fn modes_list_what_they_carry() {
    let m = Mode::Trunk {
        allowed: [3, 2].into_iter().collect(),
        native: true,
    };
    assert_eq!(m.vlans().collect::<Vec<_>>(), [NATIVE, 2, 3]);
    assert_eq!(Mode::Access { vid: 0 }.vlans().collect::<Vec<_>>(), [0]);
    assert_eq!(Mode::Access { vid: 4095 }.vlans().count(), 0);
    assert!(!Mode::Access { vid: 4095 }.carries(4095));
    assert_eq!(m.tag_for(NATIVE), None);
    assert_eq!(m.tag_for(2), Some(2));
    assert_eq!(Mode::Access { vid: 2 }.tag_for(2), None);
}

// ---- random and hostile traffic -----------------------------------------------------------

/// A frame that gets somewhere often: known addresses, the ports' own, tags of the
/// topology's VLANs, and every kind of mistake now and then.
fn plausible_frame(rng: &mut Rng) -> (u8, Vec<u8>) {
    let macs = [H1, H2, H3, MAC_A1, MAC_B, MAC_MGMT, MAC_ROUTER, BROADCAST];
    let pick = |rng: &mut Rng| -> Mac {
        if rng.chance(80) {
            macs[rng.below(macs.len())]
        } else {
            let mut m = [0; 6];
            rng.fill_bytes(&mut m);
            m
        }
    };
    // Ports 6 and 7 exist only once re-added.
    let port = if rng.chance(90) {
        rng.below(6)
    } else {
        rng.range(6, 7) as usize
    } as u8;
    let own = fuzzing::TOPOLOGY.get(usize::from(port)).and_then(|p| p.2);
    let dst = pick(rng);
    let src = match own {
        Some(mac) if rng.chance(80) => mac,
        _ => pick(rng),
    };
    let vids = [0, 10, 20, 30, 40, 50, 4095];
    let tci = if rng.chance(50) {
        None
    } else {
        Some((rng.below(16) as u16) << 12 | vids[rng.below(vids.len())])
    };
    let types = [TPID_8021Q, TPID_8021AD, TPID_QINQ_LEGACY, 0x86dd];
    let ethertype = if rng.chance(70) {
        IPV4
    } else {
        types[rng.below(types.len())]
    };
    let payload = match rng.below(4) {
        0 => rng.below(64),
        1 => rng.range(1490, 1510) as usize,
        _ => rng.below(1500),
    };
    let mut f = ethernet(dst, src, tci, ethertype, payload);
    if rng.chance(5) {
        f.truncate(rng.below(f.len() + 1));
    }
    if rng.chance(5) {
        let at = rng.below(f.len().max(1));
        if let Some(b) = f.get_mut(at) {
            *b = rng.byte();
        }
    }
    (port, f)
}

#[test]
fn random_plausible_traffic_keeps_every_promise() {
    // fuzzing::run checks isolation, targets, tags and the table after every record.
    let mut rng = Rng::new(0x8021);
    let mut accepted = 0;
    for _ in 0..300 {
        let mut input = Vec::new();
        for _ in 0..rng.range(1, 60) {
            if rng.chance(8) {
                let op = rng.below(7) as u8;
                input.extend_from_slice(&fuzzing::command_record(op, rng.byte()));
            } else {
                let (port, f) = plausible_frame(&mut rng);
                input.extend(fuzzing::frame_record(port, rng.below(12) as u8, &f));
            }
        }
        accepted += fuzzing::run(&input);
    }
    assert!(accepted > 2000, "only {accepted} frames accepted");
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(99);
    let mut input = vec![0u8; 4096];
    for _ in 0..300 {
        let len = rng.below(input.len());
        rng.fill_bytes(&mut input[..len]);
        fuzzing::run(&input[..len]);
    }
    // Every truncation of a valid input.
    let f = fuzzing::frame_record(4, 3, &tagged(BROADCAST, H1, 10));
    let mut input = f.clone();
    input.extend(fuzzing::frame_record(1, 1, &untagged(H1, H2)));
    for len in 0..=input.len() {
        fuzzing::run(&input[..len]);
    }
    assert_eq!(fuzzing::run(&input), 2);
}

#[test]
fn frames_of_random_bytes_on_every_port() {
    let mut b = topology();
    let mut rng = Rng::new(7);
    let mut out = Vec::new();
    let mut buf = [0u8; 1600];
    for i in 0..50_000u64 {
        let port = PortId(rng.below(7) as u16);
        let len = rng.below(1600);
        let mut f = vec![0; len];
        rng.fill_bytes(&mut f);
        let Ok(fwd) = b.ingress(port, &f, i, &mut out) else {
            assert!(out.is_empty());
            continue;
        };
        let (cfg, _) = b.port(port).unwrap();
        assert!(cfg.mode.carries(fwd.vid));
        for t in &out {
            assert_ne!(t.port, port);
            assert!(b.port(t.port).unwrap().0.mode.carries(fwd.vid));
            let n = Bridge::write(&f, &fwd, t.tag, &mut buf);
            assert_eq!(n, Bridge::egress_len(&f, &fwd, t.tag));
        }
    }
    b.check_invariants();
}

#[test]
fn ingress_reuses_the_target_vector() {
    let mut b = topology();
    let mut out = Vec::with_capacity(8);
    let ptr = out.as_ptr();
    for i in 0..1000u64 {
        let f = untagged(BROADCAST, [0x02, 0, 0, 0, (i >> 8) as u8, i as u8]);
        b.ingress(UPLINK, &f, i, &mut out).unwrap();
        assert_eq!(out.as_ptr(), ptr);
    }
}

/// Storm control: beyond its burst, a port floods at most its rate; the excess is
/// dropped before it counts as accepted, and is counted on the port and its VLAN. Frames
/// to a known address, and other ports, are not limited.
#[test]
fn storm_control_limits_what_a_port_floods_and_nothing_else() {
    let mut b = topology();
    let limit = FloodLimit {
        per_sec: 100,
        burst: 10,
    };
    assert!(b.set_flood_limit(A1, Some(limit), 0));
    assert!(!b.set_flood_limit(PortId(99), Some(limit), 0));
    assert_eq!(b.flood_limit(A1), Some(limit));
    // A2's address is known, so frames to it are not floods.
    assert!(offer(&mut b, A2, &untagged(BROADCAST, H2), 0).is_ok());
    let storm = untagged(BROADCAST, MAC_A1);
    let frames_before = vlan(&b, 10).frames;
    let mut passed = 0;
    for _ in 0..50 {
        if offer(&mut b, A1, &storm, 0).is_ok() {
            passed += 1;
        }
    }
    assert_eq!(passed, 10, "the burst, then nothing at the same instant");
    assert_eq!(port_drops(&b, A1, Drop::StormControl), 40);
    assert_eq!(vlan(&b, 10).drops[Drop::StormControl.index()], 40);
    assert_eq!(
        vlan(&b, 10).frames,
        frames_before + 10,
        "drops are not accepted frames"
    );
    // Unicast to a known address goes through at once, limited or not.
    for _ in 0..20 {
        assert_eq!(
            ports_of(&offer(&mut b, A1, &untagged(H2, MAC_A1), 0).unwrap()),
            [A2]
        );
    }
    // An unknown unicast destination is a flood, and limited.
    assert_eq!(
        offer(&mut b, A1, &untagged(H3, MAC_A1), 0),
        Err(Drop::StormControl)
    );
    // Other ports are not.
    for _ in 0..50 {
        assert!(offer(&mut b, A2, &untagged(BROADCAST, H2), 0).is_ok());
    }
    // 100 a second: one every 10 ms, over a second of 1 ms steps.
    passed = 0;
    for ms in 1..=1000 {
        if offer(&mut b, A1, &storm, ms).is_ok() {
            passed += 1;
        }
    }
    assert_eq!(passed, 100);
    // A changed limit keeps its (empty) bucket; removing it lifts the limit.
    let wider = FloodLimit {
        per_sec: 1000,
        burst: 1000,
    };
    assert!(b.set_flood_limit(A1, Some(wider), 1000));
    assert_eq!(offer(&mut b, A1, &storm, 1000), Err(Drop::StormControl));
    assert!(offer(&mut b, A1, &storm, 1001).is_ok());
    assert!(b.set_flood_limit(A1, None, 1001));
    assert_eq!(b.flood_limit(A1), None);
    for _ in 0..2000 {
        assert!(offer(&mut b, A1, &storm, 1001).is_ok());
    }
    // Time going backwards earns nothing.
    assert!(b.set_flood_limit(A1, Some(limit), 5000));
    for _ in 0..10 {
        assert!(offer(&mut b, A1, &storm, 5000).is_ok());
    }
    assert_eq!(offer(&mut b, A1, &storm, 10), Err(Drop::StormControl));
    assert_eq!(offer(&mut b, A1, &storm, 5000), Err(Drop::StormControl));
}
