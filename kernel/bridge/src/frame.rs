//! The Ethernet II and IEEE 802.1Q frame layout: which VLAN a frame arriving on a port
//! belongs to, and how it is written out with its tag pushed, popped or rewritten.
//!
//! Frames are without preamble and FCS, as virtio-net and TAP devices carry them:
//! destination MAC (6), source MAC (6), then either the EtherType (2) or an 802.1Q tag —
//! TPID 0x8100 (2) and TCI (2: PCP 3 bits, DEI 1, VID 12) — followed by the EtherType.

use crate::{Drop, Forward, MAX_VID, Mode, NATIVE};

/// Destination, source, EtherType.
pub const HEADER_LEN: usize = 14;
/// An 802.1Q tag: TPID and TCI.
pub const TAG_LEN: usize = 4;
/// Largest untagged frame: 1500 bytes of payload and the header.
pub const MAX_UNTAGGED: usize = 1514;
/// Largest tagged frame (IEEE 802.3 2.3.2.2 allows the tag on top of 1514).
pub const MAX_TAGGED: usize = MAX_UNTAGGED + TAG_LEN;
/// Largest super-frame a NIC's offload hands over (see [`crate::Bridge::ingress_large`]):
/// a tagged header and IPv4's largest packet.
pub const MAX_LARGE: usize = HEADER_LEN + TAG_LEN + 65_535;

/// IEEE 802.1Q customer tag.
pub const TPID_8021Q: u16 = 0x8100;
/// IEEE 802.1ad service tag (Q-in-Q).
pub const TPID_8021AD: u16 = 0x88a8;
/// The pre-standard Q-in-Q TPID, still accepted as a service tag by some switches (and
/// Linux, when configured): an uplink switch may read it as a tag, so it is refused where
/// a tag would be.
pub const TPID_QINQ_LEGACY: u16 = 0x9100;

/// Whether `ethertype` is a TPID some switch reads as a VLAN tag.
fn is_tpid(ethertype: u16) -> bool {
    matches!(ethertype, TPID_8021Q | TPID_8021AD | TPID_QINQ_LEGACY)
}

#[inline]
fn be16(frame: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([frame[at], frame[at + 1]])
}

/// The VLAN a frame that cannot be placed is counted against: an access port's own, the
/// native one for a trunk.
fn fallback_vlan(mode: &Mode) -> u16 {
    match mode {
        Mode::Access { vid } => *vid,
        Mode::Trunk { .. } => NATIVE,
    }
}

/// Which VLAN `frame`, arriving on a port in `mode`, belongs to; or why it is dropped
/// and which VLAN's counters the drop goes to.
///
/// Sizes first (runt, truncated tag, oversize), then the port's mode:
/// - Access: untagged, or priority-tagged (VID 0), is the port's VLAN. Any other tag, and
///   any service tag, is refused: the double-tagging attack (a tenant tags its frame for
///   another VLAN, or nests one inside a tag the next switch strips) starts here. A
///   priority tag wrapping another tag is refused for the same reason.
/// - Trunk: a tag with an allowed VID is that VLAN; untagged or priority-tagged is the
///   native VLAN if the trunk has one. Service tags are refused (this switch does not do
///   Q-in-Q); so is a priority tag wrapping another tag, which would leave the native
///   VLAN untagged and show the next switch a tag nobody checked.
#[inline]
pub(crate) fn classify(mode: &Mode, frame: &[u8], large: bool) -> Result<Forward, (Drop, u16)> {
    let fallback = fallback_vlan(mode);
    if frame.len() < HEADER_LEN {
        return Err((Drop::Runt, fallback));
    }
    let outer = be16(frame, 12);
    let has_tag = outer == TPID_8021Q || outer == TPID_8021AD;
    if has_tag && frame.len() < HEADER_LEN + TAG_LEN {
        return Err((Drop::Truncated, fallback));
    }
    let (tci, inner) = if has_tag {
        (be16(frame, 14), be16(frame, 16))
    } else {
        (0, outer)
    };
    let tag_vid = tci & 0x0fff;
    let ctag = outer == TPID_8021Q;
    let max = match (large, has_tag) {
        (true, _) => MAX_LARGE,
        (false, true) => MAX_TAGGED,
        (false, false) => MAX_UNTAGGED,
    };
    if frame.len() > max {
        // Counted in the VLAN it would have gone to, when a trunk's tag says which.
        let vid = match mode {
            Mode::Trunk { allowed, .. } if ctag && allowed.contains(tag_vid) => tag_vid,
            _ => fallback,
        };
        return Err((Drop::Oversize, vid));
    }
    let service_tag = outer == TPID_8021AD || outer == TPID_QINQ_LEGACY;
    // A priority tag (VID 0) around another tag.
    let nested = ctag && tag_vid == 0 && is_tpid(inner);
    let vid = match mode {
        Mode::Access { vid } => {
            if service_tag || (ctag && tag_vid != 0) || nested {
                return Err((Drop::TaggedOnAccess, fallback));
            }
            if *vid > MAX_VID {
                // A port configured outside the VID range carries nothing.
                return Err((Drop::VidNotAllowed, fallback));
            }
            *vid
        }
        Mode::Trunk { allowed, native } => {
            if service_tag || nested {
                return Err((Drop::VidNotAllowed, NATIVE));
            }
            if ctag && tag_vid != 0 {
                if !allowed.contains(tag_vid) {
                    return Err((Drop::VidNotAllowed, NATIVE));
                }
                tag_vid
            } else if *native {
                NATIVE
            } else {
                return Err((Drop::NoNativeVlan, NATIVE));
            }
        }
    };
    Ok(Forward {
        vid,
        tagged: ctag,
        priority: if ctag { (tci >> 12) as u8 } else { 0 },
        flooded: false,
    })
}

/// The length of `frame` as it leaves with `tag` (see [`write`]).
pub(crate) fn egress_len(frame: &[u8], fwd: &Forward, tag: Option<u16>) -> usize {
    let strip = if fwd.tagged { TAG_LEN } else { 0 };
    let push = if tag.is_some() { TAG_LEN } else { 0 };
    (frame.len() + push).saturating_sub(strip)
}

/// Writes `frame` as it leaves with `tag` into `out`: the addresses, then an 802.1Q tag
/// with VID `tag` and the frame's own priority bits (PCP and DEI) if `tag` is `Some`,
/// then the rest of the frame after the tag it arrived with, if any. The bytes written,
/// or 0 if `out` is shorter than [`egress_len`] or `frame` shorter than its header.
pub(crate) fn write(frame: &[u8], fwd: &Forward, tag: Option<u16>, out: &mut [u8]) -> usize {
    let rest_at = 12 + if fwd.tagged { TAG_LEN } else { 0 };
    let len = egress_len(frame, fwd, tag);
    if frame.len() < rest_at + 2 || out.len() < len {
        return 0;
    }
    out[..12].copy_from_slice(&frame[..12]);
    let mut at = 12;
    if let Some(vid) = tag {
        let tci = u16::from(fwd.priority & 0x0f) << 12 | (vid & 0x0fff);
        out[12..14].copy_from_slice(&TPID_8021Q.to_be_bytes());
        out[14..16].copy_from_slice(&tci.to_be_bytes());
        at = 16;
    }
    let rest = &frame[rest_at..];
    out[at..at + rest.len()].copy_from_slice(rest);
    debug_assert_eq!(at + rest.len(), len);
    len
}
