//! TCP segmentation offload for the runtime's uplink: the TCP segments a partition sends
//! one after another, coalesced into one super-frame that the NIC's host cuts up again;
//! and the other way ([`receive`]), the super-frames and partial checksums the host hands
//! the uplink, passed on to ports that take them and made plain for those that do not.
//!
//! A partition's stack (smoltcp in `hostshim`) sends MSS-sized segments, one system call
//! each; under TCG every frame then costs a virtqueue entry, a tap write and a trip
//! through the host's bridge, and the peer takes them one by one. A virtio-net device that
//! offers `VIRTIO_NET_F_HOST_TSO4` (with `VIRTIO_NET_F_CSUM`) takes one frame of up to
//! 64 KiB with a header saying how to cut it into segments (virtio 1.2 §5.1.6.2) — what
//! Linux's TSO hands it. [`Coalescer`] builds such frames from the segments as they go
//! out: a segment that continues the pending one — same Ethernet addresses, tag and IPv4
//! and TCP headers but for the sequence number, its sequence number where the pending
//! data ends, no more payload than the first one's (the MSS), flags ACK (PSH on the last)
//! — has its payload appended; anything else ends the pending super-frame first. Cutting
//! the super-frame at every MSS gives back the segments sent (IPv4 identification and the
//! checksums aside, which the cutter writes), so what the peer receives is what the
//! partition sent.
//!
//! Owns the parsing, the comparison and the header fix-ups ([`Coalescer::finish`]: IPv4
//! total length and checksum, the TCP pseudo-header sum the device completes, the
//! [`Gso`] fields). It must not own buffers or talk to a device: the caller (the uplink's
//! driver glue) gives it the buffer the super-frame is built in, writes the first
//! segment there as it goes out (with its tag), and hands the result to the device.
#![no_std]
#![forbid(unsafe_code)]

pub mod receive;

/// Ethernet header: destination, source, EtherType.
const ETH: usize = 14;
/// An 802.1Q tag.
const TAG: usize = 4;
const TPID_8021Q: u16 = 0x8100;
const ETHERTYPE_IPV4: u16 = 0x0800;
/// An IPv4 header without options; headers with options are not coalesced.
const IPV4: usize = 20;
const PROTO_TCP: u8 = 6;
const TCP_MIN: usize = 20;
/// The TCP checksum's offset in the TCP header.
const TCP_CHECK: usize = 16;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;

/// The longest super-frame built, from the destination MAC to the last payload byte:
/// within IPv4's 16-bit total length and the 64 KiB a host takes as one GSO packet.
pub const MAX_SUPER: usize = 65_000;

/// The size of the `virtio_net_hdr` of [`Gso::header`] (VIRTIO_F_VERSION_1 layout).
pub const HEADER_LEN: usize = 12;

/// How the device cuts a super-frame up (virtio 1.2 §5.1.6.2), in bytes from the start
/// of the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gso {
    /// The headers (Ethernet, any tag, IPv4, TCP) each segment repeats.
    pub hdr_len: u16,
    /// Payload bytes per segment: the MSS (the last segment may be shorter).
    pub gso_size: u16,
    /// Where the TCP checksum's coverage starts (the TCP header)...
    pub csum_start: u16,
    /// ...and where in it the sum goes.
    pub csum_offset: u16,
}

impl Gso {
    /// The `virtio_net_hdr` to send the super-frame with: `VIRTIO_NET_HDR_F_NEEDS_CSUM`,
    /// `VIRTIO_NET_HDR_GSO_TCPV4`, little-endian fields, `num_buffers` 0.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        const F_NEEDS_CSUM: u8 = 1;
        const GSO_TCPV4: u8 = 1;
        let mut h = [0u8; HEADER_LEN];
        h[0] = F_NEEDS_CSUM;
        h[1] = GSO_TCPV4;
        h[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        h[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        h[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        h[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        h
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Where the IPv4 header of `frame` starts: after the Ethernet header and at most one
/// 802.1Q tag; `None` if the frame does not carry IPv4.
fn ipv4_offset(frame: &[u8]) -> Option<usize> {
    if frame.len() < ETH {
        return None;
    }
    match be16(frame, 12) {
        TPID_8021Q if frame.len() >= ETH + TAG && be16(frame, 16) == ETHERTYPE_IPV4 => {
            Some(ETH + TAG)
        }
        ETHERTYPE_IPV4 => Some(ETH),
        _ => None,
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Where a TCP segment's parts are in a frame.
#[derive(Clone, Copy, Debug)]
struct Segment {
    /// The IPv4 header's offset (after the Ethernet header and any 802.1Q tag).
    ip: usize,
    /// The TCP header's length.
    tcp_len: usize,
    /// The payload: from `payload` to `end` (the IPv4 total length's end; anything
    /// after it is Ethernet padding).
    payload: usize,
    end: usize,
    seq: u32,
    flags: u8,
}

impl Segment {
    /// `frame`'s TCP segment, if it is an unfragmented IPv4 packet without IP options
    /// carrying TCP.
    fn parse(frame: &[u8]) -> Option<Segment> {
        if frame.len() < ETH + IPV4 + TCP_MIN {
            return None;
        }
        let ip = ipv4_offset(frame)?;
        let h = frame.get(ip..ip + IPV4)?;
        // Version 4, IHL 5; no more fragments and offset 0 (DF may be set); TCP.
        if h[0] != 0x45 || be16(h, 6) & 0x3fff != 0 || h[9] != PROTO_TCP {
            return None;
        }
        let end = ip + usize::from(be16(h, 2));
        let tcp = ip + IPV4;
        if end > frame.len() || end < tcp + TCP_MIN {
            return None;
        }
        let tcp_len = usize::from(frame[tcp + 12] >> 4) * 4;
        if tcp_len < TCP_MIN || tcp + tcp_len > end {
            return None;
        }
        Some(Segment {
            ip,
            tcp_len,
            payload: tcp + tcp_len,
            end,
            seq: be32(frame, tcp + 4),
            flags: frame[tcp + 13],
        })
    }

    fn payload_len(&self) -> usize {
        self.end - self.payload
    }

    fn tcp(&self) -> usize {
        self.ip + IPV4
    }
}

/// The super-frame being built.
#[derive(Clone, Copy, Debug)]
struct Run {
    /// Where its first segment is: its headers are the super-frame's.
    first: Segment,
    /// The first segment's length as written (with any Ethernet padding).
    written: usize,
    /// The VLAN tag it goes out with, as the caller named it.
    tag: Option<u16>,
    /// Bytes of the super-frame in the buffer.
    len: usize,
    /// The first segment's payload length.
    mss: usize,
    segments: usize,
    next_seq: u32,
    /// The last segment appended was short or pushed: it must stay the last.
    closed: bool,
}

/// What [`Coalescer::finish`] hands back: the super-frame's length in the buffer and,
/// for two segments or more, how the device is to cut it (one segment goes out as it
/// came, its checksums its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    pub len: usize,
    pub gso: Option<Gso>,
    /// Segments in it.
    pub segments: usize,
}

/// Builds one super-frame at a time in a buffer the caller owns (see the crate docs).
#[derive(Debug, Default)]
pub struct Coalescer {
    run: Option<Run>,
}

impl Coalescer {
    pub const fn new() -> Coalescer {
        Coalescer { run: None }
    }

    /// Whether a super-frame is being built.
    pub fn pending(&self) -> bool {
        self.run.is_some()
    }

    /// Whether `frame` (as it arrived at the switch) may begin a super-frame: a TCP
    /// segment with payload and only ACK set, short enough that another one fits.
    pub fn can_start(frame: &[u8]) -> bool {
        Segment::parse(frame)
            .is_some_and(|s| s.flags == ACK && s.payload_len() > 0 && frame.len() * 2 <= MAX_SUPER)
    }

    /// Begins a super-frame with the segment the caller has just written, as it goes
    /// out with `tag`, to `buf[..len]`. Returns false (and begins nothing) if that is not
    /// a segment [`Coalescer::can_start`] takes; any pending super-frame must have been
    /// finished.
    pub fn start(&mut self, buf: &[u8], len: usize, tag: Option<u16>) -> bool {
        debug_assert!(self.run.is_none(), "a super-frame was left unfinished");
        let Some(frame) = buf.get(..len) else {
            return false;
        };
        if !Self::can_start(frame) {
            return false;
        }
        let Some(first) = Segment::parse(frame) else {
            return false;
        };
        // Ethernet padding is not payload: the super-frame ends where IPv4 says.
        self.run = Some(Run {
            first,
            written: len,
            tag,
            len: first.end,
            mss: first.payload_len(),
            segments: 1,
            next_seq: first.seq.wrapping_add(first.payload_len() as u32),
            closed: false,
        });
        true
    }

    /// Appends `frame`'s payload (a frame as it arrived at the switch, to go out with
    /// `tag`) to the pending super-frame in `buf`, if it continues it and fits; returns
    /// whether it did. Otherwise nothing changes: the caller finishes the pending
    /// super-frame and sends `frame` on its own (or starts the next one with it).
    pub fn append(&mut self, buf: &mut [u8], frame: &[u8], tag: Option<u16>) -> bool {
        let Some(run) = self.run.as_mut() else {
            return false;
        };
        let Some(s) = Segment::parse(frame) else {
            return false;
        };
        let n = s.payload_len();
        let f = run.first;
        let (ft, st) = (f.tcp(), s.tcp());
        let continues = !run.closed
            && tag == run.tag
            && (s.flags == ACK || s.flags == ACK | PSH)
            && s.seq == run.next_seq
            && n > 0
            && n <= run.mss
            && run.len + n <= MAX_SUPER.min(buf.len())
            && s.tcp_len == f.tcp_len
            // Addresses; IPv4 TOS, flags, TTL, protocol, source and destination.
            && buf[..12] == frame[..12]
            && buf[f.ip + 1] == frame[s.ip + 1]
            && buf[f.ip + 6..f.ip + 10] == frame[s.ip + 6..s.ip + 10]
            && buf[f.ip + 12..f.ip + 20] == frame[s.ip + 12..s.ip + 20]
            // TCP ports; acknowledgment, data offset, window, urgent pointer, options.
            && buf[ft..ft + 4] == frame[st..st + 4]
            && buf[ft + 8..ft + 13] == frame[st + 8..st + 13]
            && buf[ft + 14..ft + 16] == frame[st + 14..st + 16]
            && buf[ft + 18..ft + f.tcp_len] == frame[st + 18..st + s.tcp_len];
        if !continues {
            return false;
        }
        buf[run.len..run.len + n].copy_from_slice(&frame[s.payload..s.end]);
        run.len += n;
        run.segments += 1;
        run.next_seq = run.next_seq.wrapping_add(n as u32);
        if s.flags & PSH != 0 {
            buf[ft + 13] |= PSH;
            run.closed = true;
        }
        if n < run.mss {
            run.closed = true;
        }
        true
    }

    /// Ends the pending super-frame in `buf`: with two segments or more, sets the IPv4
    /// total length and header checksum and puts the TCP pseudo-header sum in the TCP
    /// checksum field (the device adds the segment and complements it: virtio 1.2
    /// §5.1.6.2), and says how to cut it. `None` when nothing was pending.
    pub fn finish(&mut self, buf: &mut [u8]) -> Option<Finished> {
        let run = self.run.take()?;
        if run.segments < 2 {
            return Some(Finished {
                len: run.written,
                gso: None,
                segments: 1,
            });
        }
        Some(Finished {
            len: run.len,
            gso: Some(seal(buf, &run.first, run.len, run.mss)),
            segments: run.segments,
        })
    }
}

/// Makes `buf[..len]`, whose headers are `first`'s, a super-frame for the device to cut
/// at every `mss` bytes of payload: sets the IPv4 total length and header checksum, puts
/// the TCP pseudo-header sum in the TCP checksum field (the device adds the segment and
/// complements it: virtio 1.2 §5.1.6.2) and says how to cut it.
fn seal(buf: &mut [u8], first: &Segment, len: usize, mss: usize) -> Gso {
    let ip = first.ip;
    let tcp = first.tcp();
    let total = (len - ip) as u16;
    buf[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
    buf[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
    let ip_sum = !fold(sum(&buf[ip..ip + IPV4], 0));
    buf[ip + 10..ip + 12].copy_from_slice(&ip_sum.to_be_bytes());
    let pseudo = sum(
        &buf[ip + 12..ip + 20],
        u32::from(PROTO_TCP) + u32::from(total) - 20,
    );
    buf[tcp + TCP_CHECK..tcp + TCP_CHECK + 2].copy_from_slice(&fold(pseudo).to_be_bytes());
    Gso {
        hdr_len: first.payload as u16,
        gso_size: mss as u16,
        csum_start: tcp as u16,
        csum_offset: TCP_CHECK as u16,
    }
}

/// The bytes the super-frame `frame` takes on a wire once cut at every `mss` bytes of
/// payload: its headers once per segment. `frame.len()` for anything that is not a TCP
/// segment.
pub fn wire_len(frame: &[u8], mss: usize) -> usize {
    match Segment::parse(frame) {
        Some(s) if mss > 0 => {
            let segments = s.payload_len().div_ceil(mss).max(1);
            frame.len() + (segments - 1) * s.payload
        }
        _ => frame.len(),
    }
}

/// Why a super-frame a partition built cannot go to the device as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuperError {
    /// Not one IPv4 packet (no options, not fragmented) carrying TCP.
    NotTcpIpv4,
    /// A zero segment size, or segments that would not fit a frame of `max` bytes.
    SegmentSize,
}

/// Whether `frame` is a TCP super-frame a stack built for the device to cut at every
/// `mss` bytes of payload, each segment at most `max` bytes long (its headers and `mss`).
pub fn check_super(frame: &[u8], mss: usize, max: usize) -> Result<(), SuperError> {
    let s = Segment::parse(frame).ok_or(SuperError::NotTcpIpv4)?;
    if mss == 0 || s.payload + mss > max {
        return Err(SuperError::SegmentSize);
    }
    Ok(())
}

/// Seals the super-frame in `buf` (see [`check_super`]) for the device: what
/// [`Coalescer::finish`] does to the super-frames it builds. Returns its length (Ethernet
/// padding dropped) and how the device is to cut it.
pub fn seal_super(buf: &mut [u8], mss: usize, max: usize) -> Result<(usize, Gso), SuperError> {
    check_super(buf, mss, max)?;
    let first = Segment::parse(buf).ok_or(SuperError::NotTcpIpv4)?;
    let len = first.end;
    Ok((len, seal(buf, &first, len, mss)))
}

/// The ones' complement sum of `bytes` as big-endian 16-bit words (an odd last byte
/// padded with zero), added to `start`; not yet folded.
fn sum(bytes: &[u8], start: u32) -> u32 {
    let mut acc = u64::from(start);
    let mut words = bytes.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    // Fold the carries into 32 bits for the caller (at most 2^16 words of 2^16 each).
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// A ones' complement sum folded to 16 bits.
fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[cfg(test)]
mod tests;
