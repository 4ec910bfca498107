//! The coalescer against a reference cutter (what the host does with a GSO frame): the
//! segments it gives back must be the segments sent.

extern crate std;

use std::vec;
use std::vec::Vec;

use plinth_testrng::Rng;

use super::*;

const DST: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const VID: u16 = 100;

/// How a test segment is built.
#[derive(Clone)]
struct Spec {
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload: Vec<u8>,
    options: Vec<u8>,
    ports: (u16, u16),
    ident: u16,
}

impl Spec {
    fn new(seq: u32, len: usize) -> Spec {
        Spec {
            seq,
            ack: 77,
            flags: ACK,
            window: 4096,
            payload: (0..len).map(|i| (seq as usize + i) as u8).collect(),
            options: Vec::new(),
            ports: (19, 40_000),
            ident: 0,
        }
    }
}

/// An Ethernet frame carrying `s`, tagged `tag`, checksums valid.
fn frame(s: &Spec, tag: Option<u16>) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&DST);
    f.extend_from_slice(&SRC);
    if let Some(v) = tag {
        f.extend_from_slice(&TPID_8021Q.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let ip = f.len();
    let tcp_len = TCP_MIN + s.options.len();
    let total = (IPV4 + tcp_len + s.payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&s.ident.to_be_bytes());
    f.extend_from_slice(&[0x40, 0, 64, PROTO_TCP, 0, 0, 10, 1, 1, 2, 10, 1, 1, 1]);
    let tcp = f.len();
    f.extend_from_slice(&s.ports.0.to_be_bytes());
    f.extend_from_slice(&s.ports.1.to_be_bytes());
    f.extend_from_slice(&s.seq.to_be_bytes());
    f.extend_from_slice(&s.ack.to_be_bytes());
    f.extend_from_slice(&[((tcp_len / 4) as u8) << 4, s.flags]);
    f.extend_from_slice(&s.window.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(&s.options);
    f.extend_from_slice(&s.payload);
    fix_checksums(&mut f, ip, tcp);
    // Ethernet's minimum, as a NIC pads.
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

fn fix_checksums(f: &mut [u8], ip: usize, tcp: usize) {
    let end = ip + usize::from(be16(f, ip + 2));
    f[ip + 10..ip + 12].copy_from_slice(&[0, 0]);
    let s = !fold(sum(&f[ip..ip + IPV4], 0));
    f[ip + 10..ip + 12].copy_from_slice(&s.to_be_bytes());
    f[tcp + 16..tcp + 18].copy_from_slice(&[0, 0]);
    let pseudo = sum(
        &f[ip + 12..ip + 20],
        u32::from(PROTO_TCP) + (end - tcp) as u32,
    );
    let s = !fold(sum(&f[tcp..end], pseudo));
    f[tcp + 16..tcp + 18].copy_from_slice(&s.to_be_bytes());
}

/// What the device does with a frame and its header: completes the checksum the header
/// asks for, and (with GSO) cuts it at every `gso_size` bytes of payload, repeating the
/// headers with the sequence number advanced, the IPv4 identification counting up, PSH
/// only on the last piece and every checksum recomputed (Linux's `tcp_gso_segment`).
fn device(frame: &[u8], gso: Option<Gso>) -> Vec<Vec<u8>> {
    let Some(g) = gso else {
        return vec![frame.to_vec()];
    };
    let (start, off) = (usize::from(g.csum_start), usize::from(g.csum_offset));
    // The partial checksum must complete to a valid one over the whole super-frame.
    let mut whole = frame.to_vec();
    let s = !fold(sum(&whole[start..], 0));
    whole[start + off..start + off + 2].copy_from_slice(&s.to_be_bytes());
    let ip = start - IPV4;
    let pseudo = sum(
        &whole[ip + 12..ip + 20],
        u32::from(PROTO_TCP) + (whole.len() - start) as u32,
    );
    assert_eq!(
        fold(sum(&whole[start..], pseudo)),
        0xffff,
        "the completed checksum is wrong"
    );
    assert_eq!(
        fold(sum(&whole[ip..ip + IPV4], 0)),
        0xffff,
        "the IPv4 checksum is wrong"
    );
    assert_eq!(usize::from(be16(&whole, ip + 2)), whole.len() - ip);
    let hdr = usize::from(g.hdr_len);
    let mss = usize::from(g.gso_size);
    let headers = &frame[..hdr];
    let payload = &frame[hdr..];
    let seq = be32(frame, start + 4);
    let ident = be16(frame, ip + 4);
    let flags = frame[start + 13];
    let pieces = payload.len().div_ceil(mss);
    let mut out = Vec::new();
    for (i, chunk) in payload.chunks(mss).enumerate() {
        let mut f = headers.to_vec();
        f.extend_from_slice(chunk);
        let total = (f.len() - ip) as u16;
        f[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        f[ip + 4..ip + 6].copy_from_slice(&ident.wrapping_add(i as u16).to_be_bytes());
        f[start + 4..start + 8].copy_from_slice(&seq.wrapping_add((i * mss) as u32).to_be_bytes());
        f[start + 13] = if i + 1 == pieces { flags } else { flags & !PSH };
        fix_checksums(&mut f, ip, start);
        if f.len() < 60 {
            f.resize(60, 0);
        }
        out.push(f);
    }
    out
}

/// Sends `frames` through a coalescer as the uplink's glue does — append, else finish
/// and start anew, else send alone — then through [`device`]: the frames on the wire.
fn wire(frames: &[Vec<u8>], tag: Option<u16>) -> (Vec<Vec<u8>>, usize) {
    let mut c = Coalescer::new();
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::new();
    let mut supers = 0;
    let mut flush = |c: &mut Coalescer, buf: &mut [u8], out: &mut Vec<Vec<u8>>| {
        if let Some(f) = c.finish(buf) {
            if f.gso.is_some() {
                supers += 1;
            }
            out.extend(device(&buf[..f.len], f.gso));
        }
    };
    for input in frames {
        if c.append(&mut buf, input, tag) {
            continue;
        }
        flush(&mut c, &mut buf, &mut out);
        let egress = retag(input, tag);
        if Coalescer::can_start(input) {
            buf[..egress.len()].copy_from_slice(&egress);
            assert!(c.start(&buf, egress.len(), tag));
        } else {
            out.push(egress);
        }
    }
    flush(&mut c, &mut buf, &mut out);
    (out, supers)
}

/// `f` without Ethernet padding (a tagged frame that was padded untagged keeps bytes
/// it no longer needs; one cut from a super-frame has none).
fn unpadded(f: &[u8]) -> &[u8] {
    match Segment::parse(f) {
        Some(s) => &f[..s.end],
        None => f,
    }
}

/// `input` (untagged) as it leaves with `tag`.
fn retag(input: &[u8], tag: Option<u16>) -> Vec<u8> {
    let mut f = input[..12].to_vec();
    if let Some(v) = tag {
        f.extend_from_slice(&TPID_8021Q.to_be_bytes());
        f.extend_from_slice(&v.to_be_bytes());
    }
    f.extend_from_slice(&input[12..]);
    f
}

/// A burst: `n` segments of `mss` from `seq`, the last `last` bytes with `last_flags`,
/// IPv4 identification counting up from 7.
fn burst(seq: u32, n: usize, mss: usize, last: usize, last_flags: u8) -> Vec<Spec> {
    let mut v = Vec::new();
    let mut at = seq;
    for i in 0..n {
        let len = if i + 1 == n { last } else { mss };
        let mut s = Spec::new(at, len);
        s.ident = 7 + i as u16;
        if i + 1 == n {
            s.flags = last_flags;
        }
        at = at.wrapping_add(len as u32);
        v.push(s);
    }
    v
}

#[test]
fn a_burst_becomes_one_super_frame_that_cuts_back_into_it() {
    for tag in [None, Some(VID)] {
        let specs = burst(1000, 10, 1460, 700, ACK | PSH);
        let frames: Vec<_> = specs.iter().map(|s| frame(s, None)).collect();
        let expected: Vec<_> = specs.iter().map(|s| frame(s, tag)).collect();
        let (out, supers) = wire(&frames, tag);
        assert_eq!(supers, 1);
        assert_eq!(out, expected);
    }
}

#[test]
fn the_header_says_how_to_cut() {
    let specs = burst(5, 3, 1460, 1460, ACK);
    let mut c = Coalescer::new();
    let mut buf = vec![0u8; 65_536];
    let first = retag(&frame(&specs[0], None), Some(VID));
    buf[..first.len()].copy_from_slice(&first);
    assert!(c.start(&buf, first.len(), Some(VID)));
    assert!(c.pending());
    for s in &specs[1..] {
        assert!(c.append(&mut buf, &frame(s, None), Some(VID)));
    }
    let f = c.finish(&mut buf).unwrap();
    assert!(!c.pending());
    assert_eq!(f.len, 18 + 20 + 20 + 3 * 1460);
    assert_eq!(f.segments, 3);
    let g = f.gso.unwrap();
    assert_eq!(
        g,
        Gso {
            hdr_len: 58,
            gso_size: 1460,
            csum_start: 38,
            csum_offset: 16
        }
    );
    assert_eq!(g.header(), [1, 1, 58, 0, 0xb4, 0x05, 38, 0, 16, 0, 0, 0]);
    assert_eq!(c.finish(&mut buf), None);
}

#[test]
fn one_segment_goes_out_as_it_came() {
    let f = frame(&Spec::new(9, 100), None);
    let mut c = Coalescer::new();
    let mut buf = vec![0u8; 65_536];
    buf[..f.len()].copy_from_slice(&f);
    assert!(c.start(&buf, f.len(), None));
    let done = c.finish(&mut buf).unwrap();
    assert_eq!(
        done,
        Finished {
            len: f.len(),
            gso: None,
            segments: 1
        }
    );
    assert_eq!(buf[..f.len()], f[..]);
}

#[test]
fn tiny_padded_segments_keep_their_padding_alone_and_lose_it_in_a_super_frame() {
    let specs = burst(1, 3, 4, 4, ACK);
    let frames: Vec<_> = specs.iter().map(|s| frame(s, None)).collect();
    assert_eq!(frames[0].len(), 60);
    let (out, supers) = wire(&frames, None);
    assert_eq!(supers, 1);
    assert_eq!(out, frames);
}

/// Each change to the second segment that must keep it out of the first's super-frame.
#[test]
fn a_segment_that_does_not_continue_is_not_appended() {
    let base = burst(100, 2, 1000, 1000, ACK);
    type Change = (&'static str, fn(&mut Spec));
    let changes: Vec<Change> = vec![
        ("a gap", |s| s.seq += 1),
        ("a retransmission", |s| s.seq -= 1000),
        ("another acknowledgment", |s| s.ack += 1),
        ("another window", |s| s.window -= 1),
        ("another source port", |s| s.ports.0 += 1),
        ("another destination port", |s| s.ports.1 += 1),
        ("more payload than the first", |s| s.payload.push(0)),
        ("no payload", |s| s.payload.clear()),
        ("FIN", |s| s.flags = ACK | 0x01),
        ("SYN", |s| s.flags = ACK | 0x02),
        ("RST", |s| s.flags = ACK | 0x04),
        ("URG", |s| s.flags = ACK | 0x20),
        ("ECE", |s| s.flags = ACK | 0x40),
        ("CWR", |s| s.flags = ACK | 0x80),
        ("no ACK", |s| s.flags = PSH),
        ("options", |s| s.options = vec![1, 1, 1, 1]),
    ];
    for (what, change) in changes {
        let mut second = base[1].clone();
        change(&mut second);
        let frames = vec![frame(&base[0], None), frame(&second, None)];
        let (out, supers) = wire(&frames, None);
        assert_eq!(supers, 0, "{what}");
        assert_eq!(out, frames, "{what}");
    }
}

#[test]
fn frames_that_are_not_plain_tcp_over_ipv4_are_left_alone() {
    let good = frame(&Spec::new(1, 500), None);
    let mut arp = good.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut options = good.clone();
    options[14] = 0x46;
    let mut fragment = good.clone();
    fragment[20] |= 0x20;
    let mut offset = good.clone();
    offset[21] = 1;
    let mut udp = good.clone();
    udp[23] = 17;
    let mut v6 = good.clone();
    v6[14] = 0x65;
    let mut long = good.clone();
    long[16..18].copy_from_slice(&2000u16.to_be_bytes());
    let mut short = good.clone();
    short[16..18].copy_from_slice(&39u16.to_be_bytes());
    let mut offset_past = frame(&Spec::new(1, 10), None);
    offset_past[46] = 0xf0;
    for (what, f) in [
        ("ARP", arp),
        ("IP options", options),
        ("a fragment", fragment),
        ("a fragment offset", offset),
        ("UDP", udp),
        ("not version 4", v6),
        ("a total length past the frame", long),
        ("a total length short of TCP", short),
        ("a data offset past the end", offset_past),
        ("a runt", good[..50].to_vec()),
    ] {
        assert!(!Coalescer::can_start(&f), "{what}");
        let mut c = Coalescer::new();
        let mut buf = vec![0u8; 65_536];
        buf[..good.len()].copy_from_slice(&good);
        assert!(c.start(&buf, good.len(), None));
        assert!(!c.append(&mut buf, &f, None), "{what}");
    }
}

#[test]
fn a_pushed_or_short_segment_ends_the_run() {
    for (last, flags) in [(1460, ACK | PSH), (1000, ACK)] {
        let mut specs = burst(1, 3, 1460, last, flags);
        let mut next = Spec::new(specs[2].seq + last as u32, 1460);
        next.ident = 10;
        specs.push(next);
        let frames: Vec<_> = specs.iter().map(|s| frame(s, None)).collect();
        let (out, supers) = wire(&frames, None);
        assert_eq!(supers, 1);
        assert_eq!(out, frames);
        let mut c = Coalescer::new();
        let mut buf = vec![0u8; 65_536];
        buf[..frames[0].len()].copy_from_slice(&frames[0]);
        assert!(c.start(&buf, frames[0].len(), None));
        assert!(c.append(&mut buf, &frames[1], None));
        assert!(c.append(&mut buf, &frames[2], None));
        assert!(!c.append(&mut buf, &frames[3], None));
    }
}

#[test]
fn a_pushed_first_segment_starts_nothing() {
    let mut s = Spec::new(1, 100);
    s.flags = ACK | PSH;
    assert!(!Coalescer::can_start(&frame(&s, None)));
    let mut c = Coalescer::new();
    let f = frame(&s, None);
    assert!(!c.start(&f, f.len(), None));
    assert!(!c.pending());
}

#[test]
fn another_tag_is_another_flow() {
    let specs = burst(1, 2, 1000, 1000, ACK);
    let mut c = Coalescer::new();
    let mut buf = vec![0u8; 65_536];
    let first = retag(&frame(&specs[0], None), Some(VID));
    buf[..first.len()].copy_from_slice(&first);
    assert!(c.start(&buf, first.len(), Some(VID)));
    assert!(!c.append(&mut buf, &frame(&specs[1], None), Some(200)));
    assert!(!c.append(&mut buf, &frame(&specs[1], None), None));
    assert!(c.append(&mut buf, &frame(&specs[1], None), Some(VID)));
}

#[test]
fn super_frames_stop_short_of_the_limit_and_of_the_buffer() {
    let specs = burst(1, 100, 1460, 1460, ACK);
    let frames: Vec<_> = specs.iter().map(|s| frame(s, None)).collect();
    let (out, supers) = wire(&frames, Some(VID));
    let expected: Vec<_> = specs.iter().map(|s| frame(s, Some(VID))).collect();
    assert_eq!(out, expected);
    // 44 segments of 1460 fit in MAX_SUPER with their headers; 100 take three.
    assert_eq!(supers, 3);
    // A small buffer ends the run where it is full.
    let mut c = Coalescer::new();
    let mut buf = vec![0u8; 4000];
    buf[..frames[0].len()].copy_from_slice(&frames[0]);
    assert!(c.start(&buf, frames[0].len(), None));
    assert!(c.append(&mut buf, &frames[1], None));
    assert!(!c.append(&mut buf, &frames[2], None));
    assert_eq!(c.finish(&mut buf).unwrap().len, 54 + 2 * 1460);
}

#[test]
fn sequence_numbers_wrap() {
    let specs = burst(u32::MAX - 1500, 4, 1460, 1460, ACK);
    let frames: Vec<_> = specs.iter().map(|s| frame(s, None)).collect();
    let (out, supers) = wire(&frames, None);
    assert_eq!(supers, 1);
    assert_eq!(out, frames);
}

/// Random streams of bursts, retransmissions, pure ACKs, other flows and other
/// protocols: the wire carries exactly what was sent, in order.
#[test]
fn random_streams_arrive_as_sent() {
    let mut rng = Rng::new(0x00ff_10ad);
    for _ in 0..300 {
        let mut frames = Vec::new();
        let mut seq = rng.next_u64() as u32;
        let mut ident = 0u16;
        for _ in 0..rng.range(1, 40) {
            let mut s = Spec::new(seq, 0);
            s.ident = ident;
            ident = ident.wrapping_add(1);
            let mss = [536, 1400, 1460][rng.below(3)];
            match rng.below(10) {
                0 => s.flags = ACK,
                1 => {
                    s.flags = ACK | PSH;
                    s.payload = vec![rng.byte(); rng.range(1, mss as u64) as usize];
                }
                2 => {
                    s.seq = seq.wrapping_sub(mss as u32);
                    s.payload = vec![rng.byte(); mss];
                }
                3 => {
                    s.ports.1 += 1;
                    s.payload = vec![rng.byte(); mss];
                }
                4 => s.ack += 1,
                _ => {
                    s.payload = (0..mss).map(|_| rng.byte()).collect();
                }
            }
            if s.seq == seq && s.ports.1 == 40_000 {
                seq = seq.wrapping_add(s.payload.len() as u32);
            }
            let mut f = frame(&s, None);
            if rng.chance(5) {
                f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            }
            frames.push(f);
        }
        let tag = rng.chance(50).then_some(VID);
        let (out, _) = wire(&frames, tag);
        let expected: Vec<_> = frames.iter().map(|f| retag(f, tag)).collect();
        assert_eq!(out.len(), expected.len());
        for (o, e) in out.iter().zip(&expected) {
            assert_eq!(unpadded(o), unpadded(e));
        }
    }
}

/// A partition chooses every byte of what it sends: damaged, truncated and random frames
/// through the coalescer never panic, and a super-frame never outgrows its buffer.
#[test]
fn hostile_frames_never_panic_or_overrun() {
    let mut rng = Rng::new(0x0ff1_0ad5);
    let good: Vec<Vec<u8>> = (0..4)
        .map(|i| frame(&Spec::new(1000 + 1460 * i, 1460), None))
        .collect();
    let mut coalesced = 0;
    for _ in 0..20_000 {
        let mut buf = vec![0u8; rng.range(64, MAX_SUPER as u64 + 64) as usize];
        let mut c = Coalescer::new();
        let mut frames: Vec<Vec<u8>> = Vec::new();
        for i in 0..rng.range(1, 6) as usize {
            let mut f = if rng.chance(20) {
                (0..rng.below(1600)).map(|_| rng.byte()).collect()
            } else {
                good[i % good.len()].clone()
            };
            // Damage: flip bytes, cut it short, or both.
            for _ in 0..rng.below(4) {
                if !f.is_empty() {
                    let at = rng.below(f.len());
                    f[at] = rng.byte();
                }
            }
            if rng.chance(30) {
                f.truncate(rng.below(f.len() + 1));
            }
            frames.push(f);
        }
        let first = &frames[0];
        if first.len() > buf.len() {
            continue;
        }
        buf[..first.len()].copy_from_slice(first);
        if !c.start(&buf, first.len(), None) {
            continue;
        }
        for f in &frames[1..] {
            c.append(&mut buf, f, None);
        }
        let done = c.finish(&mut buf).unwrap();
        assert!(done.len <= buf.len(), "{} > {}", done.len, buf.len());
        coalesced += usize::from(done.segments > 1);
    }
    // The undamaged runs did coalesce: the damaged ones went through the same path.
    assert!(coalesced > 1000, "{coalesced}");
}

// The receive side.

use super::receive::{RxCsum, RxError, RxOffload, checksum_ok, fill_checksum, segment};

/// `frame` cut by [`segment`], each segment owned.
fn cut(frame: &[u8], mss: usize) -> Result<Vec<Vec<u8>>, RxError> {
    let mut out = vec![0u8; 2048];
    let mut v = Vec::new();
    segment(frame, mss, &mut out, |s| v.push(s.to_vec())).map(|n| {
        assert_eq!(n, v.len());
        v
    })
}

/// A super-frame as a host hands it over (built as the uplink builds the ones it sends:
/// the partial checksum in place) is cut into exactly the segments the reference cutter
/// makes, and those are the segments that were sent.
#[test]
fn a_received_super_frame_is_cut_into_the_segments_sent() {
    let mut rng = Rng::new(0x5e6e_0001);
    for round in 0..200 {
        let mss = [536, 1400, 1448, 1460][rng.below(4)];
        let n = rng.range(2, 44) as usize;
        let last = rng.range(1, mss as u64 + 1) as usize;
        let flags = [ACK, ACK | PSH][rng.below(2)];
        let tag = (round % 2 == 0).then_some(VID);
        let specs = burst(rng.next_u64() as u32, n, mss, last, flags);
        let sent: Vec<_> = specs.iter().map(|s| frame(s, tag)).collect();
        let mut c = Coalescer::new();
        let mut buf = vec![0u8; 65_536];
        buf[..sent[0].len()].copy_from_slice(&sent[0]);
        assert!(c.start(&buf, sent[0].len(), tag));
        for s in &specs[1..] {
            assert!(c.append(&mut buf, &frame(s, None), tag), "{round}");
        }
        let done = c.finish(&mut buf).unwrap();
        let gso = done.gso.unwrap();
        let superframe = &buf[..done.len];
        let ours = cut(superframe, usize::from(gso.gso_size)).unwrap();
        let theirs = device(superframe, Some(gso));
        assert_eq!(ours.len(), n);
        for ((o, t), s) in ours.iter().zip(&theirs).zip(&sent) {
            assert_eq!(unpadded(o), unpadded(t), "round {round}");
            assert_eq!(unpadded(o), unpadded(s), "round {round}");
            assert!(checksum_ok(o));
        }
    }
}

#[test]
fn only_the_last_segment_keeps_fin_and_psh_and_only_the_first_cwr() {
    const FIN: u8 = 0x01;
    const CWR: u8 = 0x80;
    let specs = burst(9, 3, 1000, 1000, ACK);
    let mut s = Spec::new(9, 3000);
    s.flags = ACK | PSH | FIN | CWR;
    s.payload = specs.iter().flat_map(|s| s.payload.clone()).collect();
    // One frame longer than a wire allows: a super-frame as it comes from the host.
    let big = frame(&s, None);
    let pieces = cut(&big, 1000).unwrap();
    let tcp = ETH + IPV4;
    let flags: Vec<u8> = pieces.iter().map(|p| p[tcp + 13]).collect();
    assert_eq!(flags, [ACK | CWR, ACK, ACK | PSH | FIN]);
    let seqs: Vec<u32> = pieces.iter().map(|p| be32(p, tcp + 4)).collect();
    assert_eq!(seqs, [9, 1009, 2009]);
    assert!(pieces.iter().all(|p| checksum_ok(p)));
}

#[test]
fn a_partial_checksum_is_completed_and_a_bad_one_is_seen() {
    let good = frame(&Spec::new(1, 333), Some(VID));
    assert!(checksum_ok(&good));
    let tcp = ETH + TAG + IPV4;
    let mut partial = good.clone();
    // What a host leaves in the field: anything but the checksum.
    partial[tcp + 16..tcp + 18].copy_from_slice(&[0x12, 0x34]);
    assert!(!checksum_ok(&partial));
    assert!(fill_checksum(&mut partial));
    assert_eq!(partial, good);
    let mut damaged = good.clone();
    damaged[tcp + 40] ^= 0x40;
    assert!(!checksum_ok(&damaged));
    // UDP: a zero checksum is none; a computed zero goes out as all ones.
    let mut udp = good.clone();
    udp[ETH + TAG + 9] = 17;
    udp[tcp + 6..tcp + 8].copy_from_slice(&[0, 0]);
    assert!(checksum_ok(&udp));
    assert!(fill_checksum(&mut udp));
    assert!(checksum_ok(&udp));
    assert_ne!(be16(&udp, tcp + 6), 0);
    // Nothing to do for what is not IPv4, or a fragment.
    let mut arp = good.clone();
    arp[16..18].copy_from_slice(&0x0806u16.to_be_bytes());
    assert!(checksum_ok(&arp));
    assert!(!fill_checksum(&mut arp));
    let mut fragment = damaged.clone();
    fragment[ETH + TAG + 6] |= 0x20;
    assert!(checksum_ok(&fragment));
}

#[test]
fn the_device_header_is_read_and_unknown_gso_refused() {
    let h = |flags: u8, gso: u8, size: u16| {
        let mut h = [0u8; 12];
        h[0] = flags;
        h[1] = gso;
        h[4..6].copy_from_slice(&size.to_le_bytes());
        h
    };
    assert_eq!(
        RxOffload::from_header(&h(0, 0, 0)),
        Ok(RxOffload::default())
    );
    assert!(!RxOffload::default().trusted());
    let partial = RxOffload::from_header(&h(1, 1, 1448)).unwrap();
    assert_eq!(partial.csum, RxCsum::Partial);
    assert_eq!(partial.gso_size, Some(1448));
    assert!(partial.trusted());
    assert_eq!(
        RxOffload::from_header(&h(2, 0, 0)).unwrap().csum,
        RxCsum::Valid
    );
    for (gso, size) in [(1, 0), (3, 1448), (4, 1448), (0x81, 1448), (5, 1)] {
        assert_eq!(RxOffload::from_header(&h(1, gso, size)), Err(RxError::Gso));
    }
    assert_eq!(RxOffload::from_header(&[1, 0, 0]), Err(RxError::Gso));
}

#[test]
fn what_cannot_be_cut_is_refused() {
    let mut not_tcp = frame(&Spec::new(1, 3000), None);
    not_tcp[ETH + 9] = 17;
    assert_eq!(cut(&not_tcp, 1000), Err(RxError::NotTcpIpv4));
    assert_eq!(cut(&frame(&Spec::new(1, 3000), None), 0), Err(RxError::Gso));
    // Segments that would not fit the buffer they are built in.
    assert_eq!(
        cut(&frame(&Spec::new(1, 3000), None), 2500),
        Err(RxError::TooLarge)
    );
    // A lone header is one segment.
    let bare = frame(&Spec::new(1, 0), None);
    assert_eq!(cut(&bare, 1460).unwrap().len(), 1);
}

/// What the host hands over is outside input: damaged and random frames and headers never
/// panic, and a segment never outgrows its buffer.
#[test]
fn hostile_received_frames_never_panic_or_overrun() {
    let mut rng = Rng::new(0x0ff1_0ad6);
    let good = frame(&Spec::new(1000, 20_000), Some(VID));
    for _ in 0..5_000 {
        let mut f = if rng.chance(20) {
            (0..rng.below(3000)).map(|_| rng.byte()).collect()
        } else {
            good.clone()
        };
        for _ in 0..rng.below(4) {
            if !f.is_empty() {
                let at = rng.below(f.len().min(80));
                f[at] = rng.byte();
            }
        }
        if rng.chance(30) {
            f.truncate(rng.below(f.len() + 1));
        }
        let h: Vec<u8> = (0..rng.below(14)).map(|_| rng.byte()).collect();
        let _ = RxOffload::from_header(&h);
        let _ = checksum_ok(&f);
        let mut g = f.clone();
        let _ = fill_checksum(&mut g);
        let mut out = vec![0u8; rng.range(1, 2000) as usize];
        let room = out.len();
        let _ = segment(&f, rng.below(2000), &mut out, |s| assert!(s.len() <= room));
    }
}

/// A super-frame a partition's stack built (its TCP checksum left to the device) is
/// sealed as the coalescer seals its own, and the device cuts it into the segments that
/// stack would have sent one by one.
#[test]
fn a_stack_s_super_frame_is_sealed_for_the_device() {
    use super::{SuperError, check_super, seal_super};
    for tag in [None, Some(VID)] {
        let specs = burst(500, 4, 1000, 700, ACK | PSH);
        let mut whole = Spec::new(500, 0);
        whole.flags = ACK | PSH;
        whole.payload = specs.iter().flat_map(|s| s.payload.clone()).collect();
        let mut f = frame(&whole, tag);
        let tcp = if tag.is_some() {
            ETH + TAG + IPV4
        } else {
            ETH + IPV4
        };
        // As smoltcp leaves it with checksum offload: zero.
        f[tcp + 16..tcp + 18].copy_from_slice(&[0, 0]);
        let max = if tag.is_some() { 1518 } else { 1514 };
        assert_eq!(check_super(&f, 1000, max), Ok(()));
        let (len, gso) = seal_super(&mut f, 1000, max).unwrap();
        assert_eq!(len, f.len());
        let cut = device(&f[..len], Some(gso));
        let expected: Vec<_> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut s = s.clone();
                s.ident = i as u16;
                frame(&s, tag)
            })
            .collect();
        assert_eq!(cut.len(), expected.len());
        for (c, e) in cut.iter().zip(&expected) {
            assert_eq!(unpadded(c), unpadded(e));
        }
        assert_eq!(check_super(&f, 0, max), Err(SuperError::SegmentSize));
        assert_eq!(check_super(&f, 1500, max), Err(SuperError::SegmentSize));
        let mut udp = f.clone();
        udp[tcp - IPV4 + 9] = 17;
        assert_eq!(check_super(&udp, 1000, max), Err(SuperError::NotTcpIpv4));
    }
}
