//! Host timing of the frame path, against the kernel's target of 2 µs per frame under
//! QEMU TCG (which runs roughly 10 to 30 times slower than the host):
//!
//!     cargo run --release -p plinth-bridge --example timing
//!
//! A bridge of eight tenant access ports in four VLANs, the management port and an uplink
//! trunk, with 4000 learned addresses (1000 per tenant VLAN, mostly behind the uplink);
//! then millions of frames from one tenant port to a learned address on another, for a
//! 64-byte and a 1500-byte frame, then the same with the copy written out, then a
//! broadcast flood.

use std::hint::black_box;
use std::time::Instant;

use plinth_bridge::{Bridge, Config, Mac, Mode, NATIVE, PortConfig, PortId, Target, VidSet};

const ROUNDS: u64 = 1_000_000;

/// `dst`, `src`, an 802.1Q tag with VID `vid` if given, `ethertype`, `payload` bytes.
fn ethernet(dst: Mac, src: Mac, vid: Option<u16>, ethertype: u16, payload: usize) -> Vec<u8> {
    let mut f = [dst, src].concat();
    if let Some(vid) = vid {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&vid.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.resize(f.len() + payload, 0x5a);
    f
}

fn host(vlan: u16, i: u16) -> Mac {
    let [a, b] = vlan.to_be_bytes();
    let [c, d] = i.to_be_bytes();
    [0x02, 0x42, a, b, c, d]
}

fn setup() -> (Bridge, Vec<PortId>, PortId) {
    let mut b = Bridge::new(Config::default());
    let vlans = [10, 20, 30, 40];
    let mut tenants = Vec::new();
    for (i, vid) in vlans.iter().chain(vlans.iter()).enumerate() {
        tenants.push(b.add_port(PortConfig {
            name: format!("tenant-{i}"),
            mode: Mode::Access { vid: *vid },
            mac: Some(host(*vid, 60_000 + i as u16)),
        }));
    }
    b.add_port(PortConfig {
        name: "mgmt".into(),
        mode: Mode::Access { vid: NATIVE },
        mac: None,
    });
    let uplink = b.add_port(PortConfig {
        name: "uplink".into(),
        mode: Mode::Trunk {
            allowed: vlans.iter().copied().collect::<VidSet>(),
            native: true,
        },
        mac: None,
    });
    let mut out = Vec::new();
    for vid in vlans {
        for i in 0..1000 {
            let f = ethernet([0xff; 6], host(vid, i), Some(vid), 0x0800, 46);
            b.ingress(uplink, &f, 0, &mut out).unwrap();
        }
    }
    (b, tenants, uplink)
}

/// ns per frame of ingresses of `frame` on `port`, and of ingress plus writing every
/// copy: the best of five runs of [`ROUNDS`] frames (the host has other work too).
fn time(b: &mut Bridge, port: PortId, frame: &[u8], expect: &[Target]) -> (f64, f64) {
    let mut out = Vec::with_capacity(16);
    let mut buf = vec![0u8; 1600];
    b.ingress(port, frame, 0, &mut out).unwrap();
    assert_eq!(out, expect);
    let (mut ingress, mut written) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let start = Instant::now();
        for i in 0..ROUNDS {
            let fwd = b.ingress(port, black_box(frame), i / 1_000_000, &mut out);
            black_box((&fwd, &out));
        }
        ingress = ingress.min(start.elapsed().as_nanos() as f64 / ROUNDS as f64);
        let start = Instant::now();
        for i in 0..ROUNDS {
            let fwd = b
                .ingress(port, black_box(frame), i / 1_000_000, &mut out)
                .unwrap();
            for t in &out {
                black_box(Bridge::write(frame, &fwd, t.tag, &mut buf));
            }
        }
        written = written.min(start.elapsed().as_nanos() as f64 / ROUNDS as f64);
    }
    (ingress, written)
}

fn main() {
    let (mut b, tenants, uplink) = setup();
    // Tenant 0 and tenant 4 are both in VLAN 10.
    let (from, to) = (tenants[0], tenants[4]);
    let src = host(10, 60_000);
    let dst = host(10, 60_004);
    let to_tenant = [Target {
        port: to,
        tag: None,
    }];
    for len in [64, 1500] {
        let f = ethernet(dst, src, None, 0x0800, len - 14);
        let (ingress, written) = time(&mut b, from, &f, &to_tenant);
        println!(
            "known unicast, {len:4} B, access to access: {ingress:6.1} ns/frame ingress, \
             {written:6.1} ns with the copy written"
        );
    }
    // To a host behind the uplink: leaves tagged.
    let to_uplink = [Target {
        port: uplink,
        tag: Some(10),
    }];
    for len in [64, 1500] {
        let f = ethernet(host(10, 7), src, None, 0x0800, len - 14);
        let (ingress, written) = time(&mut b, from, &f, &to_uplink);
        println!(
            "known unicast, {len:4} B, access to trunk:  {ingress:6.1} ns/frame ingress, \
             {written:6.1} ns with the tag pushed"
        );
    }
    let f = ethernet([0xff; 6], src, None, 0x0806, 46);
    let flood = [
        Target {
            port: to,
            tag: None,
        },
        Target {
            port: uplink,
            tag: Some(10),
        },
    ];
    let (ingress, written) = time(&mut b, from, &f, &flood);
    println!(
        "broadcast,       64 B, to 2 ports:       {ingress:6.1} ns/frame ingress, \
         {written:6.1} ns with both copies written"
    );
    println!(
        "(table: {} entries)",
        b.macs(0).filter(|e| !e.is_static).count()
    );
}
