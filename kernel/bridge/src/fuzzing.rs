//! The fuzz driver, shared by the cargo-fuzz target `bridge_frames` and the unit tests.
//!
//! A bridge with the ports of [`TOPOLOGY`] (two tenants, the management stack, the uplink
//! trunk and a routing partition's trunk) and small table bounds, so inputs reach
//! eviction and aging, is driven by a sequence of records:
//!
//! - a *frame*: a byte `c < 0xf0` whose low 3 bits pick the port id (6 and 7 exist only
//!   once re-added) and whose high 5 bits `t` (0 to 29: 30 and 31 make a command byte)
//!   advance the clock by `4 t²` ms (up to 3.4 s, past the 1 s aging time); a 16-bit
//!   little-endian length, of which the low 11 bits count (so runts, truncations and
//!   oversizes are all reachable); the frame's bytes, cut to what is left of the input;
//! - a *command*: a byte `0xf0 | op` and an argument byte: remove a port, add one of
//!   [`TOPOLOGY`]'s ports again, change a port's mode, age the table, report a
//!   queue-full drop or a delivery, or let time pass.
//!
//! [`run`] must never panic, and after every frame checks what the bridge promises: a
//! dropped frame has no targets; an accepted one is in a VLAN its port carries, goes to
//! other ports only, each carrying the VLAN and tagged as its mode says, to exactly the
//! learned port or exactly every other port of the VLAN; each copy written is the frame
//! with its tag rewritten, and what leaves a trunk reads back on that trunk as the same
//! VLAN (so no untagged copy looks tagged to the next switch). The table's invariants
//! are checked after every record.

use alloc::vec;
use alloc::vec::Vec;

use crate::frame::{self, HEADER_LEN, MAX_TAGGED, TAG_LEN, TPID_8021Q};
use crate::{Bridge, Config, Drop, Mac, Mode, NATIVE, PortConfig, PortId, Target, VidSet};

/// The source address of port 0 (tenant A, VLAN 10).
pub const MAC_A1: Mac = [0x02, 0, 0, 0, 0x0a, 0x01];
/// Port 2's (tenant B, VLAN 20).
pub const MAC_B: Mac = [0x02, 0, 0, 0, 0x0b, 0x01];
/// Port 3's (the management stack, native VLAN).
pub const MAC_MGMT: Mac = [0x02, 0, 0, 0, 0x00, 0x01];
/// Port 5's (a routing partition, trunk of VLANs 20 and 40).
pub const MAC_ROUTER: Mac = [0x02, 0, 0, 0, 0x0f, 0x01];

/// The ports, added in this order (so with ids 0 to 5): name, mode, static address.
pub const TOPOLOGY: [(&str, PortMode, Option<Mac>); 6] = [
    ("tenant-a1", PortMode::Access(10), Some(MAC_A1)),
    ("tenant-a2", PortMode::Access(10), None),
    ("tenant-b", PortMode::Access(20), Some(MAC_B)),
    ("mgmt", PortMode::Access(NATIVE), Some(MAC_MGMT)),
    ("uplink", PortMode::Trunk(&[10, 20, 30], true), None),
    (
        "router",
        PortMode::Trunk(&[20, 40], false),
        Some(MAC_ROUTER),
    ),
];

/// Modes a command may switch a port to.
const MODES: [PortMode; 6] = [
    PortMode::Access(10),
    PortMode::Access(20),
    PortMode::Access(NATIVE),
    PortMode::Access(4095),
    PortMode::Trunk(&[10, 20, 30, 40], true),
    PortMode::Trunk(&[30], false),
];

/// A [`Mode`] as a constant.
#[derive(Clone, Copy, Debug)]
pub enum PortMode {
    Access(u16),
    Trunk(&'static [u16], bool),
}

impl PortMode {
    pub fn mode(self) -> Mode {
        match self {
            PortMode::Access(vid) => Mode::Access { vid },
            PortMode::Trunk(vids, native) => Mode::Trunk {
                allowed: vids.iter().copied().collect::<VidSet>(),
                native,
            },
        }
    }
}

/// The driver's bridge limits: small, so a few frames fill a VLAN and the table.
pub const CONFIG: Config = Config {
    aging_ms: 1000,
    max_macs_per_vlan: 6,
    max_macs: 16,
    hash_key: 0x5eed,
};

/// Commands (the low nibble of a `0xf0 | op` byte).
pub const REMOVE_PORT: u8 = 0;
pub const ADD_PORT: u8 = 1;
pub const SET_MODE: u8 = 2;
pub const AGE: u8 = 3;
pub const QUEUE_FULL: u8 = 4;
pub const DELIVERED: u8 = 5;
pub const FLOOD_LIMIT: u8 = 6;
/// Any other op: let `arg * 64` ms pass.
pub const WAIT: u8 = 15;

fn port_config(i: usize) -> PortConfig {
    let (name, mode, mac) = TOPOLOGY[i % TOPOLOGY.len()];
    PortConfig {
        name: name.into(),
        mode: mode.mode(),
        mac,
    }
}

/// The driver's bridge, with [`TOPOLOGY`]'s ports.
pub fn bridge() -> Bridge {
    let mut b = Bridge::new(CONFIG);
    for i in 0..TOPOLOGY.len() {
        let id = b.add_port(port_config(i));
        debug_assert_eq!(id, PortId(i as u16));
    }
    b
}

/// The largest time step of a frame record.
pub const MAX_TIME_STEP: u8 = 29;

/// A frame record: offered on `port` (0..=7) after `time_step` (0..=[`MAX_TIME_STEP`],
/// larger ones are cut to it; see the module documentation).
pub fn frame_record(port: u8, time_step: u8, frame: &[u8]) -> Vec<u8> {
    let c = time_step.min(MAX_TIME_STEP) << 3 | (port & 7);
    let len = frame.len() as u16;
    [&[c][..], &len.to_le_bytes(), frame].concat()
}

/// A command record.
pub fn command_record(op: u8, arg: u8) -> [u8; 2] {
    [0xf0 | (op & 0x0f), arg]
}

/// An Ethernet frame: `dst`, `src`, an 802.1Q tag with TCI `tci` if given, `ethertype`,
/// then `payload` bytes counting up.
pub fn ethernet(dst: Mac, src: Mac, tci: Option<u16>, ethertype: u16, payload: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(18 + payload);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(tci) = tci {
        f.extend_from_slice(&TPID_8021Q.to_be_bytes());
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend((0..payload).map(|i| i as u8));
    f
}

/// Runs one input (see the module documentation); the number of frames accepted.
pub fn run(data: &[u8]) -> usize {
    let mut b = bridge();
    let mut now = 0u64;
    let mut out = Vec::new();
    let mut buf = vec![0u8; MAX_TAGGED + 64];
    let mut accepted = 0;
    let mut rest = data;
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        if c >= 0xf0 {
            let Some((&arg, tail)) = rest.split_first() else {
                break;
            };
            rest = tail;
            command(&mut b, c & 0x0f, arg, &mut now);
        } else {
            let Some((len, tail)) = rest.split_first_chunk::<2>() else {
                break;
            };
            let len = usize::from(u16::from_le_bytes(*len) & 0x07ff).min(tail.len());
            let (frame, tail) = tail.split_at(len);
            rest = tail;
            let step = u64::from(c >> 3);
            now += 4 * step * step;
            let port = PortId(u16::from(c & 7));
            if check_frame(&mut b, port, frame, now, &mut out, &mut buf) {
                accepted += 1;
            }
        }
        b.check_invariants();
    }
    accepted
}

fn command(b: &mut Bridge, op: u8, arg: u8, now: &mut u64) {
    let port = PortId(u16::from(arg & 7));
    match op {
        REMOVE_PORT => {
            let existed = b.port(port).is_some();
            assert_eq!(b.remove_port(port), existed);
            assert!(b.port(port).is_none());
            assert!(b.macs(*now).all(|e| e.port != port));
        }
        ADD_PORT => {
            if b.ports().count() < 8 {
                let id = b.add_port(port_config(usize::from(arg)));
                assert!(b.port(id).is_some());
            }
        }
        SET_MODE => {
            let mode = MODES[usize::from(arg >> 3) % MODES.len()].mode();
            let existed = b.port(port).is_some();
            assert_eq!(b.set_mode(port, mode.clone()), existed);
            if existed {
                assert!(b.macs(*now).all(|e| e.port != port || mode.carries(e.vid)));
            }
        }
        AGE => {
            b.age(*now);
            let aging = b.config().aging_ms;
            assert!(b.macs(*now).all(|e| e.is_static || e.age_ms < aging));
            assert_eq!(b.macs(*now).count(), b.table_len());
        }
        QUEUE_FULL => {
            let vid = u16::from(arg >> 3) * 10;
            let before = b.port(port).map(|(_, c)| c.drops[Drop::QueueFull.index()]);
            b.dropped(port, vid, Drop::QueueFull);
            let after = b.port(port).map(|(_, c)| c.drops[Drop::QueueFull.index()]);
            assert_eq!(after, before.map(|n| n + 1));
        }
        DELIVERED => b.delivered(port, u16::from(arg >> 3) * 10, usize::from(arg)),
        FLOOD_LIMIT => {
            // arg >> 3: 0 removes the limit, else that many frames a second and at once.
            let n = u32::from(arg >> 3);
            let limit = (n > 0).then_some(crate::FloodLimit {
                per_sec: n,
                burst: n,
            });
            let existed = b.port(port).is_some();
            assert_eq!(b.set_flood_limit(port, limit, *now), existed);
            assert_eq!(b.flood_limit(port), if existed { limit } else { None });
        }
        _ => *now += u64::from(arg) * 64,
    }
}

/// Offers `frame` and checks the verdict; whether it was accepted.
fn check_frame(
    b: &mut Bridge,
    port: PortId,
    frame: &[u8],
    now: u64,
    out: &mut Vec<Target>,
    buf: &mut [u8],
) -> bool {
    let rx_before = b.port(port).map(|(_, c)| c.rx_frames);
    // Stale targets must not survive into the answer.
    out.push(Target {
        port: PortId(u16::MAX),
        tag: None,
    });
    let verdict = b.ingress(port, frame, now, out);
    assert_eq!(
        b.port(port).map(|(_, c)| c.rx_frames),
        rx_before.map(|n| n + 1)
    );
    let fwd = match verdict {
        Err(why) => {
            assert!(out.is_empty(), "{why:?} with targets {out:?}");
            assert_eq!(why == Drop::NoPort, rx_before.is_none());
            if why == Drop::StormControl {
                // Only a limited port's floods are.
                assert!(b.flood_limit(port).is_some());
                let dst: Mac = frame[..6].try_into().unwrap_or_default();
                let vid =
                    crate::frame::classify(&b.port(port).expect("limited").0.mode, frame, false)
                        .map(|f| f.vid)
                        .expect("storm control after classification");
                assert!(dst[0] & 1 == 1 || b.lookup(vid, &dst, now).is_none());
            }
            return false;
        }
        Ok(fwd) => fwd,
    };
    let (config, _) = b.port(port).expect("accepted on a missing port");
    assert!(config.mode.carries(fwd.vid), "{fwd:?} on {config:?}");
    assert!(frame.len() >= HEADER_LEN && frame.len() <= MAX_TAGGED);
    let src: Mac = frame[6..12].try_into().unwrap_or_default();
    assert!(config.mac.is_none_or(|m| m == src));
    let dst: Mac = frame[..6].try_into().unwrap_or_default();

    for (i, t) in out.iter().enumerate() {
        assert_ne!(t.port, port, "{fwd:?} back to its own port");
        assert!(out[..i].iter().all(|o| o.port != t.port), "{out:?} twice");
        let (to, _) = b.port(t.port).expect("a target that does not exist");
        assert!(to.mode.carries(fwd.vid), "VLAN {} to {to:?}", fwd.vid);
        assert_eq!(t.tag, to.mode.tag_for(fwd.vid));
    }
    if fwd.flooded {
        // Only group addresses and unknown unicast are flooded.
        assert!(dst[0] & 1 == 1 || b.lookup(fwd.vid, &dst, now).is_none());
        let every: Vec<PortId> = b
            .ports()
            .filter(|(id, c, _)| *id != port && c.mode.carries(fwd.vid))
            .map(|(id, _, _)| id)
            .collect();
        let got: Vec<PortId> = out.iter().map(|t| t.port).collect();
        assert_eq!(got, every, "flood of VLAN {}", fwd.vid);
    } else {
        assert!(out.len() <= 1);
        let learned = b.lookup(fwd.vid, &dst, now);
        assert!(learned.is_some(), "not flooded, but {dst:02x?} is unknown");
        assert_eq!(out.first().map(|t| t.port), learned.filter(|&p| p != port));
    }

    let rest_at = 12 + if fwd.tagged { TAG_LEN } else { 0 };
    let targets = core::mem::take(out);
    for t in &targets {
        let len = Bridge::egress_len(frame, &fwd, t.tag);
        assert_eq!(Bridge::write(frame, &fwd, t.tag, &mut buf[..len - 1]), 0);
        let n = Bridge::write(frame, &fwd, t.tag, buf);
        assert_eq!(n, len);
        let written = &buf[..n];
        assert!(n <= MAX_TAGGED);
        assert_eq!(written[..12], frame[..12]);
        let body_at = match t.tag {
            Some(vid) => {
                assert_eq!(written[12..14], TPID_8021Q.to_be_bytes());
                let tci = u16::from_be_bytes([written[14], written[15]]);
                assert_eq!(tci & 0x0fff, vid);
                assert_eq!((tci >> 12) as u8, fwd.priority);
                16
            }
            None => 12,
        };
        assert_eq!(written[body_at..], frame[rest_at..]);
        let (to, _) = b.port(t.port).expect("checked above");
        if let Mode::Trunk { .. } = to.mode {
            // The next switch reads it as the same VLAN.
            match frame::classify(&to.mode, written, false) {
                Ok(again) => assert_eq!(again.vid, fwd.vid, "{written:02x?}"),
                Err(e) => panic!("{written:02x?} leaves {to:?} unreadable: {e:?}"),
            }
        }
        b.delivered(t.port, fwd.vid, n);
    }
    *out = targets;
    true
}
