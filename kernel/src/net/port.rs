//! smoltcp's view of a NIC: the adapter from `drivers::virtio::net::Nic` to smoltcp's
//! `phy::Device`.
//!
//! Owns nothing but the adapter. Later the bridge sits between the NIC and this adapter
//! (802.1Q tags are pushed and popped there, never inside smoltcp, which has no VLAN
//! support), so this stays one thin layer.

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::drivers::virtio::net::{Nic, RxFrame};

/// smoltcp's view of the NIC.
pub struct Port<'a>(pub &'a mut Nic);

pub struct Rx(RxFrame);
pub struct Tx<'a>(&'a mut Nic);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0.frame())
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.0.send(len, f)
    }
}

impl phy::Device for Port<'_> {
    type RxToken<'a>
        = Rx
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.0.receive()?;
        Some((Rx(frame), Tx(self.0)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        self.0.can_send().then_some(Tx(self.0))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        // No checksum offload is negotiated: smoltcp computes and checks every checksum.
        caps
    }
}
