//! The forwarding benchmark's layout, shared by the runtime's `bench bridge` (timed in the
//! guest) and `plinth bench bridge` (timed on the host), so both time the same work: a
//! bridge laid out as the runtime's switch is with one tenant — an uplink trunk carrying
//! [`VID`], the management port, two partition NICs on [`VID`] — with a peer learned
//! behind the uplink, and a partition's frame to that peer going out tagged.
//!
//! Owns the layout and one frame's trip; the callers own the clock.

use alloc::vec;
use alloc::vec::Vec;

use crate::{Bridge, Config, Drop, Mac, Mode, NATIVE, PortConfig, PortId, Target, VidSet};

/// The tenant VLAN the benchmark's partitions are on.
pub const VID: u16 = 100;
/// The sending partition NIC's MAC, and the peer's behind the uplink.
pub const NIC_MAC: Mac = [2, 0, 0, 0, 1, 1];
pub const PEER_MAC: Mac = [2, 0, 0, 0, 9, 9];

pub struct Layout {
    pub bridge: Bridge,
    /// The sending partition NIC and the uplink.
    pub nic: PortId,
    pub uplink: PortId,
    targets: Vec<Target>,
    out: Vec<u8>,
}

impl Layout {
    pub fn new() -> Layout {
        let mut b = Bridge::new(Config::default());
        let uplink = b.add_port(PortConfig {
            name: "uplink".into(),
            mode: Mode::Trunk {
                allowed: [VID].into_iter().collect::<VidSet>(),
                native: true,
            },
            mac: None,
        });
        b.add_port(PortConfig {
            name: "mgmt".into(),
            mode: Mode::Access { vid: NATIVE },
            mac: Some([2, 0, 0, 0, 0, 1]),
        });
        let nic = b.add_port(PortConfig {
            name: "a/0".into(),
            mode: Mode::Access { vid: VID },
            mac: Some(NIC_MAC),
        });
        b.add_port(PortConfig {
            name: "b/0".into(),
            mode: Mode::Access { vid: VID },
            mac: Some([2, 0, 0, 0, 1, 2]),
        });
        // The peer is learned behind the uplink (a tagged frame from it).
        let mut learn = vec![0u8; 64];
        learn[..6].copy_from_slice(&NIC_MAC);
        learn[6..12].copy_from_slice(&PEER_MAC);
        learn[12..16].copy_from_slice(&[0x81, 0x00, (VID >> 8) as u8, VID as u8]);
        learn[16..18].copy_from_slice(&[0x08, 0x00]);
        let mut targets = Vec::with_capacity(8);
        let _ = b.ingress(uplink, &learn, 0, &mut targets);
        Layout {
            bridge: b,
            nic,
            uplink,
            targets,
            out: vec![0u8; crate::frame::MAX_TAGGED],
        }
    }

    /// A `len`-byte IPv4 frame from the partition NIC to the peer.
    pub fn frame(len: usize) -> Vec<u8> {
        let mut frame = vec![0x5au8; len];
        frame[..6].copy_from_slice(&PEER_MAC);
        frame[6..12].copy_from_slice(&NIC_MAC);
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame
    }

    /// One frame's trip from the partition NIC: the decision, learning, and the copy out
    /// of each target with its tag. Returns the bytes written for the last target.
    pub fn forward(&mut self, frame: &[u8], now_ms: u64) -> Result<usize, Drop> {
        let fwd = self
            .bridge
            .ingress(self.nic, frame, now_ms, &mut self.targets)?;
        let mut n = 0;
        for t in &self.targets {
            n = Bridge::write(frame, &fwd, t.tag, &mut self.out);
            self.bridge.delivered(t.port, fwd.vid, n);
        }
        Ok(n)
    }

    /// Where the last forwarded frame went.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }
}

impl Default for Layout {
    fn default() -> Layout {
        Layout::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmarked_frame_leaves_by_the_uplink_alone_tagged() {
        let mut l = Layout::new();
        for len in [64, 1500] {
            let n = l.forward(&Layout::frame(len), 0);
            assert_eq!(n, Ok(len + 4));
            assert_eq!(
                l.targets(),
                [Target {
                    port: l.uplink,
                    tag: Some(VID)
                }]
            );
        }
    }
}
