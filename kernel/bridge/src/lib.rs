//! The tenant network switch: a learning IEEE 802.1Q layer-2 bridge between the
//! runtime's virtual ports (partitions' NICs, the management stack, the physical uplink).
//!
//! What it owns:
//! - **Port modes**, after Open vSwitch's `vlan_mode` and Linux 8021q. An *access* port
//!   carries one VLAN untagged (a tenant partition; VID 0, [`NATIVE`], is the management
//!   stack's untagged network). A *trunk* carries a set of VLANs tagged and optionally
//!   the native VLAN untagged (the uplink, later a routing partition). Which VLAN a frame
//!   belongs to is decided once, at ingress, from the port's mode and the frame's tag
//!   ([`frame`] documents the rules); it never changes VLAN afterwards.
//! - **Isolation.** Frames are forwarded only to ports that carry their VLAN, never back
//!   to the port they came from, and tagged frames from access ports are dropped, which
//!   closes the double-tagging attack. A port may be given its one MAC address
//!   ([`PortConfig::mac`]): other source addresses from it are dropped as spoofed, and
//!   the address is a static table entry that learning from other ports never moves.
//! - **Learning and forwarding.** The source of every accepted frame is learned as
//!   (VLAN, MAC) → port; a unicast destination that is known goes to its one port, an
//!   unknown one, broadcast and multicast are flooded within the VLAN. Entries age out
//!   after [`Config::aging_ms`]. The table is bounded per VLAN and in total, and when a
//!   VLAN is full its *own* oldest entry makes room: a tenant flooding random source
//!   addresses churns its own entries only.
//! - **Storm control.** A port may be given a [`FloodLimit`]: frames from it that would be
//!   flooded beyond that rate are dropped (and counted) before they reach any other port.
//! - **Counters** per port and per VLAN, every drop by [`Drop`] reason.
//!
//! What it must not touch: no devices, queues, clocks or locks. The caller offers a frame
//! with [`Bridge::ingress`] and gets the ports it goes to, writes each copy with
//! [`Bridge::write`] (tag pushed, popped or rewritten), and reports what happened to it
//! ([`Bridge::delivered`], [`Bridge::dropped`]). Time comes in as `now_ms`. Rate limits
//! are the caller's (`plinth-ratelimit`), applied before a frame is offered.
//!
//! Cost: `ingress` does two hash lookups and a pass over the ports for a flood, and never
//! allocates once `out` has room for the targets, except when the MAC table grows past its
//! high-water mark (`src/table.rs` says why the table is hand-written). Ports are kept
//! in a `Vec` sorted by id: a bridge has tens of ports, not thousands. On the host, in a
//! release build, a known-unicast frame takes about 30 ns (`examples/timing.rs`).

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod bench;
pub mod frame;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
mod table;
mod vidset;

#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use table::{AgeList, Kind, MacTable};
pub use vidset::{Iter as VidIter, VidSet};

/// An Ethernet address, in transmission order.
pub type Mac = [u8; 6];

/// The internal VLAN key of the native (untagged) VLAN. Tenant VIDs are `1..=`[`MAX_VID`].
pub const NATIVE: u16 = 0;

/// The largest tenant VID (IEEE 802.1Q reserves 4095).
pub const MAX_VID: u16 = 4094;

/// A port of the bridge, as [`Bridge::add_port`] numbered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortId(pub u16);

/// How a port carries VLANs.
///
/// A trunk's VID set is inline (512 bytes), not boxed: ports are few, and a flood tests
/// every port's set, which should not be a pointer chase per port.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Mode {
    /// One VLAN, untagged (OVS `vlan_mode=access`): a tenant partition's port, or with
    /// VID [`NATIVE`] the management stack's. A VID above [`MAX_VID`] carries nothing.
    Access { vid: u16 },
    /// Several VLANs, tagged (OVS `vlan_mode=trunk`, or `native-untagged` with `native`):
    /// the uplink, and later a routing partition's port. `native`: untagged frames belong
    /// to the native VLAN, and its frames leave untagged.
    Trunk { allowed: VidSet, native: bool },
}

impl Mode {
    /// Whether a port in this mode carries VLAN `vid` (a tenant VID or [`NATIVE`]).
    #[inline]
    pub fn carries(&self, vid: u16) -> bool {
        match self {
            Mode::Access { vid: own } => *own == vid && vid <= MAX_VID,
            Mode::Trunk { allowed, native } => {
                if vid == NATIVE {
                    *native
                } else {
                    allowed.contains(vid)
                }
            }
        }
    }

    /// The tag a frame of VLAN `vid` leaves a port in this mode with: none on access
    /// ports and for the native VLAN, `vid` otherwise.
    #[inline]
    pub fn tag_for(&self, vid: u16) -> Option<u16> {
        match self {
            Mode::Trunk { .. } if vid != NATIVE => Some(vid),
            _ => None,
        }
    }

    /// Every VLAN this mode carries, [`NATIVE`] first.
    pub fn vlans(&self) -> impl Iterator<Item = u16> + '_ {
        let (single, set) = match self {
            Mode::Access { vid } => ((*vid <= MAX_VID).then_some(*vid), None),
            Mode::Trunk { allowed, native } => (native.then_some(NATIVE), Some(allowed)),
        };
        single
            .into_iter()
            .chain(set.into_iter().flat_map(VidSet::iter))
    }
}

/// A port's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// For the operator: counters and tables name the port by it.
    pub name: String,
    pub mode: Mode,
    /// The only source address the port may send (anti-spoofing), installed as a static
    /// table entry in each VLAN the port carries. If two ports claim one address in a
    /// VLAN, the first keeps the entry (policy should refuse such configurations).
    pub mac: Option<Mac>,
}

/// Why a frame was dropped. Counted per port and per VLAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Drop {
    /// Shorter than an Ethernet header (14 bytes).
    Runt,
    /// Longer than 1514 bytes untagged or 1518 tagged.
    Oversize,
    /// A tag TPID without the tag and EtherType after it (under 18 bytes).
    Truncated,
    /// A VLAN or service tag from an access port (or a priority tag around another tag).
    TaggedOnAccess,
    /// A tag the trunk does not allow, a service tag on a trunk, or a port whose access
    /// VID is out of range.
    VidNotAllowed,
    /// Untagged on a trunk without a native VLAN.
    NoNativeVlan,
    /// A source address other than the port's configured one.
    SpoofedSource,
    /// A multicast, broadcast or all-zero source address.
    BadSource,
    /// The destination port's queue was full (reported by the caller).
    QueueFull,
    /// Offered on, or reported for, a port that does not exist.
    NoPort,
    /// A frame to flood (broadcast, multicast, unknown unicast) beyond the port's
    /// [`FloodLimit`]: storm control.
    StormControl,
}

impl Drop {
    /// How many reasons there are: the length of the counter arrays.
    pub const COUNT: usize = 11;

    /// Every reason, in counter-array order.
    pub const ALL: [Drop; Drop::COUNT] = [
        Drop::Runt,
        Drop::Oversize,
        Drop::Truncated,
        Drop::TaggedOnAccess,
        Drop::VidNotAllowed,
        Drop::NoNativeVlan,
        Drop::SpoofedSource,
        Drop::BadSource,
        Drop::QueueFull,
        Drop::NoPort,
        Drop::StormControl,
    ];

    /// The reason's name for metrics labels (snake_case).
    pub const fn name(self) -> &'static str {
        match self {
            Drop::Runt => "runt",
            Drop::Oversize => "oversize",
            Drop::Truncated => "truncated",
            Drop::TaggedOnAccess => "tagged_on_access",
            Drop::VidNotAllowed => "vid_not_allowed",
            Drop::NoNativeVlan => "no_native_vlan",
            Drop::SpoofedSource => "spoofed_source",
            Drop::BadSource => "bad_source",
            Drop::QueueFull => "queue_full",
            Drop::NoPort => "no_port",
            Drop::StormControl => "storm_control",
        }
    }

    /// The reason's index in the counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Drop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One port a frame goes to, and how it leaves there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub port: PortId,
    /// `Some(vid)`: leaves tagged with `vid`; `None`: untagged.
    pub tag: Option<u16>,
}

/// An accepted frame: its VLAN and what [`Bridge::write`] needs to rewrite its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    /// The VLAN the frame belongs to ([`NATIVE`] or a tenant VID).
    pub vid: u16,
    /// The frame arrived with an 802.1Q tag (a priority tag included) at bytes 12..16,
    /// which [`Bridge::write`] removes or replaces.
    pub tagged: bool,
    /// That tag's PCP and DEI bits (the TCI's top 4), kept when the frame leaves tagged;
    /// 0 for untagged frames.
    pub priority: u8,
    /// The targets are a flood (unknown unicast, broadcast, multicast), not a learned
    /// destination.
    pub flooded: bool,
}

/// The bridge's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// A learned address not seen for this long is forgotten, ms (OVS's default
    /// `mac-aging-time` is 300 s).
    pub aging_ms: u64,
    /// Most learned addresses per VLAN.
    pub max_macs_per_vlan: usize,
    /// Most learned addresses in all VLANs together (static ones are not counted).
    pub max_macs: usize,
    /// Key of the MAC table's hash. Draw it at random at boot: tenants choose their
    /// source addresses, and must not be able to choose colliding ones.
    pub hash_key: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            aging_ms: 300_000,
            max_macs_per_vlan: 1024,
            max_macs: 8192,
            hash_key: 0x243f_6a88_85a3_08d3,
        }
    }
}

/// A port's counters. Removed with the port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames offered on the port (accepted or not), and their bytes.
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames handed to the port, and their bytes (as the caller reports them).
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Drops of frames offered on the port, and of frames for it the caller reported,
    /// indexed by [`Drop::index`].
    pub drops: [u64; Drop::COUNT],
}

/// A VLAN's counters. Kept for every VLAN a port has carried.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VlanCounters {
    /// Frames accepted into the VLAN, and their bytes.
    pub frames: u64,
    pub bytes: u64,
    /// Accepted frames that were flooded.
    pub flooded: u64,
    /// Drops counted against the VLAN, indexed by [`Drop::index`].
    pub drops: [u64; Drop::COUNT],
    /// Table entries in the VLAN now, static and learned (expired ones until removed).
    pub macs: usize,
}

/// A MAC table entry, as [`Bridge::macs`] shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacEntry {
    pub vid: u16,
    pub mac: Mac,
    pub port: PortId,
    /// Since a frame from it was last seen, ms (0 for static entries).
    pub age_ms: u64,
    pub is_static: bool,
}

/// Storm control for frames a port sends that would be flooded (broadcast, multicast,
/// unknown unicast): at most `per_sec` a second on average, `burst` at once, beyond
/// which they are dropped as [`Drop::StormControl`] — what switches call storm control.
/// Frames to a known address are not limited (the caller's rate limits cover those).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodLimit {
    pub per_sec: u32,
    pub burst: u32,
}

/// A [`FloodLimit`]'s token bucket, in thousandths of a frame, refilled by the ms.
#[derive(Clone, Copy, Debug)]
struct FloodBucket {
    limit: FloodLimit,
    milli: u64,
    last_ms: u64,
}

impl FloodBucket {
    fn new(limit: FloodLimit, now_ms: u64) -> FloodBucket {
        FloodBucket {
            limit,
            milli: u64::from(limit.burst) * 1000,
            last_ms: now_ms,
        }
    }

    /// Adds the tokens earned up to `now_ms`. Time going backwards (a caller's clock)
    /// earns nothing.
    fn refill(&mut self, now_ms: u64) {
        let full = u64::from(self.limit.burst) * 1000;
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        // per_sec frames a second are per_sec thousandths of a frame a millisecond.
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(u64::from(self.limit.per_sec)))
            .min(full);
    }

    /// Takes one frame's token at `now_ms`, if there is one.
    fn take(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// A port: its id, configuration and counters.
#[derive(Clone, Debug)]
struct Port {
    id: PortId,
    config: PortConfig,
    counters: PortCounters,
    flood: Option<FloodBucket>,
}

/// A VLAN's state: counters and its learned entries, oldest first.
#[derive(Clone, Debug)]
struct Vlan {
    vid: u16,
    counters: VlanCounters,
    ages: AgeList,
}

/// [`Bridge::vlan_index`]'s "no state for this VID".
const NO_VLAN: u16 = u16::MAX;

/// The bridge (see the crate documentation).
#[derive(Clone, Debug)]
pub struct Bridge {
    config: Config,
    /// Sorted by id.
    ports: Vec<Port>,
    /// Where [`add_port`](Bridge::add_port) starts looking for a free id.
    next_id: u16,
    /// VID → index into `vlans`, or [`NO_VLAN`]: 4096 entries (8 KiB), so the frame path
    /// finds a VLAN's state with one load.
    vlan_index: Vec<u16>,
    /// States of the VLANs some port has carried, and of [`NATIVE`]; never removed.
    vlans: Vec<Vlan>,
    table: MacTable,
    /// Learned entries in all VLANs.
    learned: usize,
}

impl Bridge {
    /// A bridge without ports.
    pub fn new(config: Config) -> Bridge {
        let mut bridge = Bridge {
            config,
            ports: Vec::new(),
            next_id: 0,
            vlan_index: vec![NO_VLAN; 4096],
            vlans: Vec::new(),
            table: MacTable::new(config.hash_key),
            learned: 0,
        };
        // Drops that cannot be placed in a VLAN are counted here.
        bridge.vlan_state(NATIVE);
        bridge
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Adds a port; its id is the lowest free one from just after the last one given,
    /// so a removed port's id is not handed out again soon.
    ///
    /// # Panics
    ///
    /// If the bridge already has 65536 ports.
    pub fn add_port(&mut self, cfg: PortConfig) -> PortId {
        assert!(self.ports.len() <= usize::from(u16::MAX), "65536 ports");
        let mut id = self.next_id;
        while self.port_index(PortId(id)).is_some() {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        let at = self.ports.partition_point(|p| p.id.0 < id);
        self.ports.insert(
            at,
            Port {
                id: PortId(id),
                config: cfg,
                counters: PortCounters::default(),
                flood: None,
            },
        );
        self.configure(at);
        PortId(id)
    }

    /// Removes a port with its counters and every table entry that points to it.
    /// False if there is no such port.
    pub fn remove_port(&mut self, id: PortId) -> bool {
        let Some(at) = self.port_index(id) else {
            return false;
        };
        self.forget(id, |_| false);
        self.ports.remove(at);
        // Another port may claim an address this one held first: it gets the entry now.
        for pi in 0..self.ports.len() {
            if self.ports[pi].config.mac.is_some() {
                self.configure(pi);
            }
        }
        true
    }

    /// Changes a port's mode. Entries pointing to the port in VLANs it no longer carries
    /// are forgotten; its static address is installed in the VLANs it now carries.
    /// False if there is no such port.
    pub fn set_mode(&mut self, id: PortId, mode: Mode) -> bool {
        let Some(at) = self.port_index(id) else {
            return false;
        };
        self.forget(id, |vid| mode.carries(vid));
        self.ports[at].config.mode = mode;
        self.configure(at);
        true
    }

    /// Sets (or with `None` removes) port `id`'s storm control at `now_ms`. A new limit
    /// starts with its burst available; a changed one keeps its tokens (up to the new
    /// burst), so changing it cannot be used to refill it. False if there is no such port.
    pub fn set_flood_limit(&mut self, id: PortId, limit: Option<FloodLimit>, now_ms: u64) -> bool {
        let Some(at) = self.port_index(id) else {
            return false;
        };
        let port = &mut self.ports[at];
        port.flood = match (port.flood, limit) {
            (_, None) => None,
            (Some(mut b), Some(l)) => {
                b.refill(now_ms);
                b.limit = l;
                b.milli = b.milli.min(u64::from(l.burst) * 1000);
                Some(b)
            }
            (None, Some(l)) => Some(FloodBucket::new(l, now_ms)),
        };
        true
    }

    /// Port `id`'s storm control, if it has one.
    pub fn flood_limit(&self, id: PortId) -> Option<FloodLimit> {
        let at = self.port_index(id)?;
        self.ports[at].flood.map(|b| b.limit)
    }

    /// Offers `frame`, arriving on `port` at `now_ms`: the ports it goes to are in `out`
    /// (cleared first; empty for a frame back to the port it came from, which is not a
    /// drop), or the reason it is dropped. Counts it either way.
    pub fn ingress(
        &mut self,
        port: PortId,
        frame: &[u8],
        now_ms: u64,
        out: &mut Vec<Target>,
    ) -> Result<Forward, Drop> {
        self.ingress_sized(port, frame, None, now_ms, out)
    }

    /// As [`Bridge::ingress`], for a frame up to [`frame::MAX_LARGE`] bytes: a super-frame
    /// a NIC's offload built (or will cut) from segments that each fit the usual limit,
    /// counted as the `wire_len` bytes those segments take. Forwarded by its header like
    /// any frame; the caller cuts it up again for ports that take only frames of the
    /// usual size.
    pub fn ingress_large(
        &mut self,
        port: PortId,
        frame: &[u8],
        wire_len: usize,
        now_ms: u64,
        out: &mut Vec<Target>,
    ) -> Result<Forward, Drop> {
        self.ingress_sized(port, frame, Some(wire_len), now_ms, out)
    }

    fn ingress_sized(
        &mut self,
        port: PortId,
        frame: &[u8],
        large: Option<usize>,
        now_ms: u64,
        out: &mut Vec<Target>,
    ) -> Result<Forward, Drop> {
        out.clear();
        let Some(pi) = self.port_index(port) else {
            self.count_vlan_drop(NATIVE, Drop::NoPort);
            return Err(Drop::NoPort);
        };
        let len = large.unwrap_or(frame.len()) as u64;
        let counters = &mut self.ports[pi].counters;
        counters.rx_frames += 1;
        counters.rx_bytes += len;

        let config = &self.ports[pi].config;
        let mut fwd = match frame::classify(&config.mode, frame, large.is_some()) {
            Ok(fwd) => fwd,
            Err((why, vid)) => return Err(self.drop_on(pi, vid, why)),
        };
        let vid = fwd.vid;
        let src: Mac = [frame[6], frame[7], frame[8], frame[9], frame[10], frame[11]];
        if src[0] & 1 != 0 || src == [0; 6] {
            return Err(self.drop_on(pi, vid, Drop::BadSource));
        }
        if config.mac.is_some_and(|own| own != src) {
            return Err(self.drop_on(pi, vid, Drop::SpoofedSource));
        }

        let vi = self.vlan_state(vid);
        // The source is learned before the destination is looked up, so a frame to its
        // own source address is not flooded on first sight.
        self.learn(vi, table::key(vid, &src), port, now_ms);
        let dst: Mac = [frame[0], frame[1], frame[2], frame[3], frame[4], frame[5]];
        let known = if dst[0] & 1 == 0 {
            self.destination(vi, table::key(vid, &dst), now_ms)
        } else {
            None
        };
        // Storm control, before the frame counts as accepted: a dropped flood counts as
        // its drop only.
        if known.is_none()
            && self.ports[pi]
                .flood
                .as_mut()
                .is_some_and(|b| !b.take(now_ms))
        {
            return Err(self.drop_on(pi, vid, Drop::StormControl));
        }
        let counters = &mut self.vlans[vi].counters;
        counters.frames += 1;
        counters.bytes += len;

        if let Some(to) = known {
            if to != port
                && let Some(ti) = self.port_index(to)
            {
                let mode = &self.ports[ti].config.mode;
                debug_assert!(mode.carries(vid));
                out.push(Target {
                    port: to,
                    tag: mode.tag_for(vid),
                });
            }
            return Ok(fwd);
        }

        fwd.flooded = true;
        self.vlans[vi].counters.flooded += 1;
        for p in &self.ports {
            if p.id != port && p.config.mode.carries(vid) {
                out.push(Target {
                    port: p.id,
                    tag: p.config.mode.tag_for(vid),
                });
            }
        }
        Ok(fwd)
    }

    /// The length of `frame` as it leaves with `tag`, for sizing [`write`](Bridge::write)'s
    /// buffer.
    pub fn egress_len(frame: &[u8], fwd: &Forward, tag: Option<u16>) -> usize {
        frame::egress_len(frame, fwd, tag)
    }

    /// Writes `frame`, accepted as `fwd`, as it leaves with `tag` (a [`Target::tag`])
    /// into `out`: an 802.1Q tag pushed, popped or rewritten (keeping the frame's PCP and
    /// DEI), the rest copied. The bytes written; 0 if `out` is shorter than
    /// [`egress_len`](Bridge::egress_len).
    pub fn write(frame: &[u8], fwd: &Forward, tag: Option<u16>, out: &mut [u8]) -> usize {
        frame::write(frame, fwd, tag, out)
    }

    /// The caller handed a frame of `bytes` bytes of VLAN `vid` to `port`.
    pub fn delivered(&mut self, port: PortId, vid: u16, bytes: usize) {
        // Per-VLAN counters count a frame once, at ingress, however many ports it goes
        // to; `vid` is taken for symmetry with `dropped`, whose drops are per VLAN.
        let _ = vid;
        if let Some(pi) = self.port_index(port) {
            let c = &mut self.ports[pi].counters;
            c.tx_frames += 1;
            c.tx_bytes += bytes as u64;
        }
    }

    /// The caller dropped a frame of VLAN `vid` meant for `port` (e.g. [`Drop::QueueFull`]).
    pub fn dropped(&mut self, port: PortId, vid: u16, why: Drop) {
        match self.port_index(port) {
            Some(pi) => {
                self.drop_on(pi, vid, why);
            }
            None => self.count_vlan_drop(vid, why),
        }
    }

    /// Forgets learned entries not seen for [`Config::aging_ms`] at `now_ms`. Lookups
    /// ignore expired entries anyway; this gives their room back.
    pub fn age(&mut self, now_ms: u64) {
        for vi in 0..self.vlans.len() {
            while let Some(id) = self.vlans[vi].ages.oldest() {
                if !self.expired(self.table.entry(id).last_seen_ms, now_ms) {
                    break;
                }
                self.remove_entry(vi, id);
            }
        }
    }

    /// Every port with its configuration and counters, by id.
    pub fn ports(&self) -> impl Iterator<Item = (PortId, &PortConfig, &PortCounters)> + '_ {
        self.ports.iter().map(|p| (p.id, &p.config, &p.counters))
    }

    /// One port's configuration and counters.
    pub fn port(&self, id: PortId) -> Option<(&PortConfig, &PortCounters)> {
        self.port_index(id)
            .map(|i| (&self.ports[i].config, &self.ports[i].counters))
    }

    /// Every VLAN with state (carried by a port now or before, and [`NATIVE`]) with its
    /// counters, by VID.
    pub fn vlans(&self) -> impl Iterator<Item = (u16, &VlanCounters)> + '_ {
        self.vlan_index.iter().filter(|&&i| i != NO_VLAN).map(|&i| {
            let v = &self.vlans[usize::from(i)];
            (v.vid, &v.counters)
        })
    }

    /// The MAC table at `now_ms`, expired entries left out, in no particular order.
    pub fn macs(&self, now_ms: u64) -> impl Iterator<Item = MacEntry> + '_ {
        self.table.iter().filter_map(move |(_, e)| {
            let is_static = e.kind == Kind::Static;
            if !is_static && self.expired(e.last_seen_ms, now_ms) {
                return None;
            }
            Some(MacEntry {
                vid: table::key_vid(e.key),
                mac: table::key_mac(e.key),
                port: e.port,
                age_ms: if is_static {
                    0
                } else {
                    now_ms.saturating_sub(e.last_seen_ms)
                },
                is_static,
            })
        })
    }

    /// Where frames to `mac` in VLAN `vid` go at `now_ms`, if it is known.
    pub fn lookup(&self, vid: u16, mac: &Mac, now_ms: u64) -> Option<PortId> {
        let e = self.table.entry(self.table.find(table::key(vid, mac))?);
        (e.kind == Kind::Static || !self.expired(e.last_seen_ms, now_ms)).then_some(e.port)
    }

    // ---- internals ----------------------------------------------------------------

    #[inline]
    fn port_index(&self, id: PortId) -> Option<usize> {
        self.ports.binary_search_by_key(&id, |p| p.id).ok()
    }

    /// Whether a learned entry last seen at `seen_ms` is expired at `now_ms`: it lives
    /// for `aging_ms`.
    fn expired(&self, seen_ms: u64, now_ms: u64) -> bool {
        now_ms.saturating_sub(seen_ms) >= self.config.aging_ms
    }

    /// The index of `vid`'s state, made if it has none yet (which allocates: only from
    /// configuration, since every VLAN a frame can be accepted into was made by then).
    fn vlan_state(&mut self, vid: u16) -> usize {
        let slot = &mut self.vlan_index[usize::from(vid & 0x0fff)];
        if *slot != NO_VLAN {
            return usize::from(*slot);
        }
        debug_assert!(vid <= MAX_VID);
        // At most 4095 states (NATIVE and 1..=4094), so the index fits u16 below NO_VLAN.
        *slot = self.vlans.len() as u16;
        self.vlans.push(Vlan {
            vid,
            counters: VlanCounters::default(),
            ages: AgeList::new(),
        });
        self.vlans.len() - 1
    }

    /// Counts a drop against port index `pi` and VLAN `vid`; returns `why`.
    fn drop_on(&mut self, pi: usize, vid: u16, why: Drop) -> Drop {
        self.ports[pi].counters.drops[why.index()] += 1;
        self.count_vlan_drop(vid, why);
        why
    }

    /// Counts a drop against VLAN `vid`, or the native VLAN if `vid` has no state.
    fn count_vlan_drop(&mut self, vid: u16, why: Drop) {
        let mut i = self
            .vlan_index
            .get(usize::from(vid))
            .copied()
            .unwrap_or(NO_VLAN);
        if i == NO_VLAN {
            i = self.vlan_index[usize::from(NATIVE)];
        }
        self.vlans[usize::from(i)].counters.drops[why.index()] += 1;
    }

    /// Learns (or refreshes) `key` in VLAN state `vi` as being on `port`.
    fn learn(&mut self, vi: usize, key: u64, port: PortId, now_ms: u64) {
        let vlan = &mut self.vlans[vi];
        if let Some(id) = self.table.find(key) {
            // A static address is never moved by a frame from another port (the frame
            // is still forwarded); a learned one follows its latest source port.
            if self.table.entry(id).kind == Kind::Dynamic {
                self.table.refresh(id, port, now_ms, &mut vlan.ages);
            }
            return;
        }
        if vlan.ages.len() >= self.config.max_macs_per_vlan || self.learned >= self.config.max_macs
        {
            // Full: this VLAN's own oldest entry makes room, never another VLAN's. A
            // VLAN with nothing learned yet, in a full table, does not learn (its frames
            // are flooded) until aging frees room.
            let Some(oldest) = vlan.ages.oldest() else {
                return;
            };
            self.remove_entry(vi, oldest);
        }
        let vlan = &mut self.vlans[vi];
        self.table
            .insert(key, port, Kind::Dynamic, now_ms, Some(&mut vlan.ages));
        vlan.counters.macs += 1;
        self.learned += 1;
    }

    /// The port of unicast `key` in VLAN state `vi` at `now_ms`; an expired entry is
    /// removed on the way.
    #[inline]
    fn destination(&mut self, vi: usize, key: u64, now_ms: u64) -> Option<PortId> {
        let id = self.table.find(key)?;
        let e = self.table.entry(id);
        if e.kind == Kind::Dynamic && self.expired(e.last_seen_ms, now_ms) {
            self.remove_entry(vi, id);
            return None;
        }
        Some(e.port)
    }

    /// Removes entry `id` of VLAN state `vi`.
    fn remove_entry(&mut self, vi: usize, id: u32) {
        let vlan = &mut self.vlans[vi];
        if self.table.entry(id).kind == Kind::Dynamic {
            self.table.remove(id, Some(&mut vlan.ages));
            self.learned -= 1;
        } else {
            self.table.remove(id, None);
        }
        vlan.counters.macs -= 1;
    }

    /// Removes every entry pointing to `port` in a VLAN for which `keep` is false.
    fn forget(&mut self, port: PortId, keep: impl Fn(u16) -> bool) {
        let doomed: Vec<(u32, u16)> = self
            .table
            .iter()
            .filter(|(_, e)| e.port == port && !keep(table::key_vid(e.key)))
            .map(|(id, e)| (id, table::key_vid(e.key)))
            .collect();
        for (id, vid) in doomed {
            let vi = self.vlan_state(vid);
            self.remove_entry(vi, id);
        }
    }

    /// Makes the states of the VLANs port index `pi` carries, and installs its static
    /// address in each of them.
    fn configure(&mut self, pi: usize) {
        let port = &self.ports[pi];
        let (id, mac) = (port.id, port.config.mac);
        let vids: Vec<u16> = port.config.mode.vlans().collect();
        for vid in vids {
            let vi = self.vlan_state(vid);
            let Some(mac) = mac else {
                continue;
            };
            let key = table::key(vid, &mac);
            if let Some(existing) = self.table.find(key) {
                match self.table.entry(existing).kind {
                    // Its own, or another port's claim that came first.
                    Kind::Static => continue,
                    // Learned before the port claimed it: the claim wins.
                    _ => self.remove_entry(vi, existing),
                }
            }
            self.table.insert(key, id, Kind::Static, 0, None);
            self.vlans[vi].counters.macs += 1;
        }
    }

    /// Checks every internal invariant: the table's structure, the counts, every entry
    /// in a VLAN its port carries, learned entries within the bounds. For tests and the
    /// fuzz driver.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn check_invariants(&self) {
        let lists: Vec<(u16, AgeList)> = self.vlans.iter().map(|v| (v.vid, v.ages)).collect();
        self.table.check(&lists);
        assert!(self.ports.windows(2).all(|w| w[0].id < w[1].id));
        let mut learned = 0;
        for v in &self.vlans {
            assert_eq!(
                self.vlan_index[usize::from(v.vid)] as usize,
                self.vlans.iter().position(|w| w.vid == v.vid).unwrap()
            );
            let here = self
                .table
                .iter()
                .filter(|(_, e)| table::key_vid(e.key) == v.vid)
                .count();
            assert_eq!(v.counters.macs, here, "VLAN {} mac count", v.vid);
            assert!(v.ages.len() <= self.config.max_macs_per_vlan);
            learned += v.ages.len();
        }
        assert_eq!(learned, self.learned);
        assert!(self.learned <= self.config.max_macs);
        for (_, e) in self.table.iter() {
            let vid = table::key_vid(e.key);
            let port = self.port_index(e.port).map(|i| &self.ports[i].config);
            let Some(port) = port else {
                panic!(
                    "entry {:?} for missing port {:?}",
                    table::key_mac(e.key),
                    e.port
                );
            };
            assert!(port.mode.carries(vid), "entry in VLAN {vid} on {port:?}");
            if e.kind == Kind::Static {
                assert_eq!(port.mac, Some(table::key_mac(e.key)));
            }
        }
    }

    /// Live table entries (static and learned, expired ones until removed).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn table_len(&self) -> usize {
        self.table.len()
    }
}
