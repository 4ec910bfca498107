//! The receive side: what a virtio-net device that offers `VIRTIO_NET_F_GUEST_CSUM` and
//! `VIRTIO_NET_F_GUEST_TSO4` hands the runtime, made fit for each port it goes to.
//!
//! Such a device passes on what the host's stack did not finish: a TCP super-frame of up
//! to 64 KiB that Linux's TSO (or GRO) built, to be cut at every `gso_size` bytes of
//! payload, and checksums left partial (`NEEDS_CSUM`: the field holds the pseudo-header
//! sum) or vouched for (`DATA_VALID`) — virtio 1.2 §5.1.6.4. A port whose stack takes
//! large frames and checksum flags gets the frame as it came ([`RxOffload::trusted`]);
//! for any other port [`segment`] cuts a super-frame into the segments the sender's
//! stack meant, and [`fill_checksum`] completes a partial checksum, so that port sees
//! what a plain NIC would have shown it. [`checksum_ok`] is the check a stack that
//! takes the flags makes of the frames that come without one.
//!
//! Owns parsing the device's header and these frame fix-ups. It must not own buffers or
//! decide which port gets what (the switch does).

use crate::{IPV4, PROTO_TCP, Segment, be16, fold, ipv4_offset, sum};

/// `virtio_net_hdr.flags`: the checksum at `csum_start + csum_offset` holds only the
/// pseudo-header sum...
const F_NEEDS_CSUM: u8 = 1;
/// ...or the device vouches for every checksum of the frame.
const F_DATA_VALID: u8 = 2;
/// `virtio_net_hdr.gso_type`.
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
/// Set with a GSO type when the sender saw congestion (ECN); only negotiated with
/// `VIRTIO_NET_F_GUEST_ECN`, which the runtime does not offer.
const GSO_ECN: u8 = 0x80;

const PROTO_ICMP: u8 = 1;
const PROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// What a received frame's checksum is worth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxCsum {
    /// As it was on the wire: the receiver checks it.
    #[default]
    Unchecked,
    /// The device vouched for it.
    Valid,
    /// Partial: never on a wire, the sender is on this host and its data was not
    /// touched; the checksum field holds the pseudo-header sum, not a checksum.
    Partial,
}

/// What the device's header says of one received frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxOffload {
    pub csum: RxCsum,
    /// A TCPv4 super-frame, to be cut at this many payload bytes per segment.
    pub gso_size: Option<u16>,
}

/// Why a received frame's header, or a super-frame, cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    /// A GSO type the runtime did not negotiate (UDP, TCPv6, ECN), or a zero size.
    Gso,
    /// A super-frame that is not one IPv4 packet (no options) carrying TCP.
    NotTcpIpv4,
    /// Its segments would not fit the buffer given to build them in.
    TooLarge,
}

impl RxOffload {
    /// Parses the first 10 bytes of a `virtio_net_hdr` (flags, gso_type, hdr_len,
    /// gso_size, csum_start, csum_offset; little-endian).
    pub fn from_header(h: &[u8]) -> Result<RxOffload, RxError> {
        let (flags, gso_type) = match h {
            [flags, gso_type, ..] if h.len() >= 10 => (*flags, *gso_type),
            _ => return Err(RxError::Gso),
        };
        let csum = if flags & F_NEEDS_CSUM != 0 {
            RxCsum::Partial
        } else if flags & F_DATA_VALID != 0 {
            RxCsum::Valid
        } else {
            RxCsum::Unchecked
        };
        let gso_size = match gso_type {
            GSO_NONE => None,
            GSO_TCPV4 => match u16::from_le_bytes([h[4], h[5]]) {
                0 => return Err(RxError::Gso),
                size => Some(size),
            },
            t if t & GSO_ECN != 0 => return Err(RxError::Gso),
            _ => return Err(RxError::Gso),
        };
        Ok(RxOffload { csum, gso_size })
    }

    /// Whether a stack that takes the flags may skip checking this frame's checksums.
    pub fn trusted(&self) -> bool {
        self.csum != RxCsum::Unchecked
    }
}

/// Where an IPv4 packet is in `frame` (after the Ethernet header and at most one 802.1Q
/// tag): the IPv4 header's offset and length, its end (its total length's), and the
/// protocol. `None` for anything else, or a packet longer than the frame.
fn ipv4(frame: &[u8]) -> Option<(usize, usize, usize, u8)> {
    let ip = ipv4_offset(frame)?;
    let h = frame.get(ip..ip + IPV4)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    if h[0] >> 4 != 4 || ihl < IPV4 {
        return None;
    }
    let end = ip + usize::from(be16(h, 2));
    if end > frame.len() || end < ip + ihl {
        return None;
    }
    Some((ip, ihl, end, h[9]))
}

/// Where the L4 checksum of the IPv4 packet `(ip, ihl, end, proto)` is, and whether it
/// covers a pseudo-header; `None` for a fragment or a protocol without one here.
fn l4_checksum(
    frame: &[u8],
    (ip, ihl, end, proto): (usize, usize, usize, u8),
) -> Option<(usize, bool)> {
    // More fragments, or an offset: the checksum covers the reassembled packet.
    if be16(frame, ip + 6) & 0x3fff != 0 {
        return None;
    }
    let l4 = ip + ihl;
    let (at, pseudo) = match proto {
        PROTO_TCP => (l4 + 16, true),
        PROTO_UDP => (l4 + 6, true),
        PROTO_ICMP => (l4 + 2, false),
        _ => return None,
    };
    (at + 2 <= end).then_some((at, pseudo))
}

/// The ones' complement sum over the L4 part of the packet (with its pseudo-header when
/// the protocol has one), folded.
fn l4_sum(frame: &[u8], (ip, ihl, end, proto): (usize, usize, usize, u8), pseudo: bool) -> u16 {
    let l4 = ip + ihl;
    let start = if pseudo {
        sum(
            &frame[ip + 12..ip + 20],
            u32::from(proto) + (end - l4) as u32,
        )
    } else {
        0
    };
    fold(sum(&frame[l4..end], start))
}

/// Whether the TCP, UDP or ICMP checksum of the IPv4 packet in `frame` is right. Frames
/// with nothing to check here (not IPv4, a fragment, another protocol, UDP without a
/// checksum) pass: the receiving stack judges those.
pub fn checksum_ok(frame: &[u8]) -> bool {
    let Some(p) = ipv4(frame) else {
        return true;
    };
    let Some((at, pseudo)) = l4_checksum(frame, p) else {
        return true;
    };
    if p.3 == PROTO_UDP && be16(frame, at) == 0 {
        return true;
    }
    l4_sum(frame, p, pseudo) == 0xffff
}

/// Writes the TCP, UDP or ICMP checksum of the IPv4 packet in `frame`, computed from
/// scratch (what a partial checksum completes to). Returns false, changing nothing, when
/// there is none to write (see [`checksum_ok`]).
pub fn fill_checksum(frame: &mut [u8]) -> bool {
    let Some(p) = ipv4(frame) else {
        return false;
    };
    let Some((at, pseudo)) = l4_checksum(frame, p) else {
        return false;
    };
    frame[at..at + 2].copy_from_slice(&[0, 0]);
    let mut s = !l4_sum(frame, p, pseudo);
    // UDP sends a computed zero as all ones (zero means "no checksum").
    if p.3 == PROTO_UDP && s == 0 {
        s = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&s.to_be_bytes());
    true
}

/// Cuts the TCPv4 super-frame `frame` into segments of at most `mss` payload bytes, as
/// the sender's TSO would have: each repeats the headers with the IPv4 total length,
/// identification (counting up) and checksum, and the TCP sequence number, made its own;
/// FIN and PSH only on the last, CWR only on the first; the TCP checksum computed whole.
/// Each is built in `out` and handed to `emit(&out[..len])`. Returns how many there were.
pub fn segment(
    frame: &[u8],
    mss: usize,
    out: &mut [u8],
    mut emit: impl FnMut(&[u8]),
) -> Result<usize, RxError> {
    let s = Segment::parse(frame).ok_or(RxError::NotTcpIpv4)?;
    if mss == 0 {
        return Err(RxError::Gso);
    }
    let (ip, tcp, hdr) = (s.ip, s.tcp(), s.payload);
    let payload = &frame[hdr..s.end];
    let pieces = payload.len().div_ceil(mss).max(1);
    if hdr + mss.min(payload.len()) > out.len() {
        return Err(RxError::TooLarge);
    }
    let ident = be16(frame, ip + 4);
    let flags = frame[tcp + 13];
    // An empty payload is one segment: the headers alone.
    let chunks = payload
        .chunks(mss)
        .chain((payload.is_empty()).then_some(&[][..]));
    for (i, chunk) in chunks.enumerate() {
        let len = hdr + chunk.len();
        let f = &mut out[..len];
        f[..hdr].copy_from_slice(&frame[..hdr]);
        f[hdr..].copy_from_slice(chunk);
        let total = (len - ip) as u16;
        f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        f[ip + 4..ip + 6].copy_from_slice(&ident.wrapping_add(i as u16).to_be_bytes());
        f[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
        let ip_sum = !fold(sum(&f[ip..ip + IPV4], 0));
        f[ip + 10..ip + 12].copy_from_slice(&ip_sum.to_be_bytes());
        let seq = s.seq.wrapping_add((i * mss) as u32);
        f[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
        let mut fl = flags;
        if i + 1 < pieces {
            fl &= !(TCP_FIN | TCP_PSH);
        }
        if i > 0 {
            fl &= !TCP_CWR;
        }
        f[tcp + 13] = fl;
        fill_checksum(f);
        emit(f);
    }
    Ok(pieces)
}
