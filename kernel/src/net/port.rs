//! smoltcp's view of the management port: the adapter from the switch's management
//! access port to smoltcp's `phy::Device`.
//!
//! Owns nothing but the adapter. Frames reach it untagged (the native VLAN) from the
//! switch, which pushed and popped any 802.1Q tag — smoltcp has no VLAN support — so
//! this stays one thin layer.

use alloc::vec::Vec;

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use super::switch;

/// smoltcp's view of the management port.
pub struct MgmtPort;

pub struct Rx(Vec<u8>);
pub struct Tx;

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(&self.0);
        switch::mgmt_recycle(self.0);
        r
    }
}

impl phy::TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = [0u8; 1514];
        let len = len.min(frame.len());
        let r = f(&mut frame[..len]);
        switch::mgmt_send(&frame[..len]);
        r
    }
}

impl phy::Device for MgmtPort {
    type RxToken<'a>
        = Rx
    where
        Self: 'a;
    type TxToken<'a>
        = Tx
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx)> {
        Some((Rx(switch::mgmt_receive()?), Tx))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx> {
        switch::mgmt_can_send().then_some(Tx)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        // No checksum offload is negotiated: smoltcp computes and checks every checksum.
        caps
    }
}
