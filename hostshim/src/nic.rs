//! The partition's NICs as raw Ethernet frames: the four NIC calls, wrapped.
//!
//! Owns the safe signatures of NetInfo, NetSend, NetRecv, NetWait and NetOffload (slices instead of
//! pointers, [`Error`] instead of codes) and the decoding of their results (the MAC's
//! byte order, the ready bits). It must not hold any state or interpret frames: an IP
//! stack over these calls is `hostshim::net`'s (feature `net`).
//!
//! On the host backend every call returns [`Error::NoNic`]: a Linux process has no plinth
//! NIC, and `hostshim::net` uses Linux sockets there instead.

use plinth_abi::{MAX_NICS, NET_TX_SHIFT};

use crate::Error;
use crate::backend;

/// NIC `nic`'s MAC address.
///
/// Errors: [`Error::NoNic`] if the partition has no such NIC.
pub fn mac(nic: u8) -> Result<[u8; 6], Error> {
    Ok(mac_from_info(backend::net_info(nic)?))
}

/// Hands one Ethernet frame to NIC `nic`: destination, source, ethertype and payload,
/// untagged, without the FCS, [`plinth_abi::MIN_FRAME`]..=[`plinth_abi::MAX_FRAME`]
/// bytes. Once this returns `Ok` the runtime holds the frame and sends it.
///
/// Errors: [`Error::WouldBlock`] when the NIC's transmit queue is full (wait for room
/// with [`wait`]); [`Error::BadLength`] for a frame of the wrong size; [`Error::NoNic`].
pub fn send(nic: u8, frame: &[u8]) -> Result<(), Error> {
    backend::net_send(nic, frame, 0)
}

/// As [`send`], on a NIC with transmit offload ([`offload`]): the frame's TCP/UDP
/// checksum is left for the runtime to fill, and with `mss` it may be a TCP super-frame
/// (up to [`plinth_abi::MAX_LARGE_FRAME`] bytes) the runtime cuts into segments of that
/// much payload.
///
/// Errors: as [`send`]; [`Error::Invalid`] without transmit offload; [`Error::BadLength`]
/// for a super-frame whose segments would not fit a frame.
pub fn send_offloaded(nic: u8, frame: &[u8], mss: Option<u16>) -> Result<(), Error> {
    let word = plinth_abi::NET_TX_CSUM_PARTIAL | u64::from(mss.unwrap_or(0));
    backend::net_send(nic, frame, word)
}

/// Takes the next frame NIC `nic` received into `buf` and returns its length.
///
/// Errors: [`Error::WouldBlock`] if none is waiting; [`Error::BadLength`] if `buf` is
/// shorter than the frame (it stays queued: a buffer of
/// [`plinth_abi::MAX_FRAME`] bytes always fits); [`Error::NoNic`].
pub fn recv(nic: u8, buf: &mut [u8]) -> Result<usize, Error> {
    backend::net_recv(nic, buf).map(|(n, _)| n)
}

/// As [`recv`], with whether the frame's TCP/UDP checksum is not to be checked: only
/// ever true on a NIC with [`offload`] on, where it must be heeded (a partial checksum
/// fails a check) and every other frame's checksum checked.
pub fn recv_checked(nic: u8, buf: &mut [u8]) -> Result<(usize, bool), Error> {
    backend::net_recv(nic, buf)
}

/// Asks for NIC `nic`'s offloads, or turns them off: receive
/// ([`plinth_abi::NET_OFFLOAD_RX`]: TCP super-frames up to
/// [`plinth_abi::MAX_LARGE_FRAME`] bytes, and checksums vouched for) and transmit
/// ([`plinth_abi::NET_OFFLOAD_TX`]: [`send_offloaded`]). Returns which are on, receive
/// and transmit (each never where the runtime's uplink does not do it).
///
/// Errors: [`Error::NoNic`].
pub fn offload(nic: u8, rx: bool, tx: bool) -> Result<(bool, bool), Error> {
    use plinth_abi::{NET_OFFLOAD_RX, NET_OFFLOAD_TX};
    let want = if rx { NET_OFFLOAD_RX } else { 0 } | if tx { NET_OFFLOAD_TX } else { 0 };
    backend::net_offload(nic, want)
        .map(|got| (got & NET_OFFLOAD_RX != 0, got & NET_OFFLOAD_TX != 0))
}

/// Sleeps until a NIC in `rx_mask` (bit `i`: NIC `i`) has a frame to receive, or one in
/// `tx_mask` has room to send, or `timeout_ns` passed; returns at once if one is ready
/// already. [`Ready::none`] after the timeout.
pub fn wait(rx_mask: u8, tx_mask: u8, timeout_ns: u64) -> Result<Ready, Error> {
    backend::net_wait(rx_mask, tx_mask, timeout_ns).map(Ready)
}

/// Which NICs [`wait`] found ready (the runtime's bits: receive for NIC `i` at bit `i`,
/// send at bit [`NET_TX_SHIFT`]` + i`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ready(pub u64);

impl Ready {
    /// Nothing ready: the wait timed out.
    pub fn none(self) -> bool {
        self.0 == 0
    }

    /// NIC `nic` has a frame to receive.
    pub fn rx(self, nic: u8) -> bool {
        u64::from(nic) < MAX_NICS && self.0 & (1 << nic) != 0
    }

    /// NIC `nic` has room to send.
    pub fn tx(self, nic: u8) -> bool {
        u64::from(nic) < MAX_NICS && self.0 & (1 << (NET_TX_SHIFT + u32::from(nic))) != 0
    }
}

/// The MAC NetInfo returns: six octets in the low 48 bits, the first in the lowest byte.
fn mac_from_info(info: u64) -> [u8; 6] {
    let b = info.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_the_low_48_bits_first_octet_lowest() {
        assert_eq!(
            mac_from_info(0x5634_1200_5452),
            [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
        );
        // Whatever lies above bit 47 is not part of it.
        assert_eq!(mac_from_info(u64::MAX), [0xff; 6]);
    }

    #[test]
    fn ready_bits_name_rx_and_tx_per_nic() {
        let r = Ready(1 | 1 << 3 | 1 << (NET_TX_SHIFT + 1));
        assert!(!r.none());
        assert!(r.rx(0) && r.rx(3) && !r.rx(1));
        assert!(r.tx(1) && !r.tx(0) && !r.tx(3));
        // NIC numbers past MAX_NICS are never ready (and never shift out of range).
        assert!(!Ready(u64::MAX).rx(8) && !Ready(u64::MAX).tx(200));
        assert!(Ready(0).none());
    }

    #[cfg(feature = "host")]
    #[test]
    fn host_has_no_nic() {
        assert_eq!(mac(0), Err(Error::NoNic));
        assert_eq!(send(0, &[0; 60]), Err(Error::NoNic));
        assert_eq!(recv(0, &mut [0; 1514]), Err(Error::NoNic));
        assert_eq!(wait(1, 1, 0), Err(Error::NoNic));
    }
}
