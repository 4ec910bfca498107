//! The switch: `plinth-bridge` wired to real ports. The uplink NIC is a trunk (tenant
//! VLANs tagged, the native VLAN untagged); the management stack's port and every
//! partition NIC are access ports whose frames wait in queues here until their owner
//! takes them. 802.1Q tags are pushed and popped only here, on the way out of the bridge.
//!
//! Owns the bridge, the uplink `Nic` and the port queues, each partition NIC's token
//! buckets (`plinth-ratelimit`), and the free list of frame buffers. It must not decide
//! which VLAN a partition is on (the partition table asks for a port on a VLAN) nor
//! touch agents' memory (callers copy frames in and out under the lock, through the
//! closures they pass), and it calls nothing above `drivers`.
//!
//! What a partition hands over is never silently dropped: a frame over its NIC's rate
//! waits in the NIC's transmit queue, and a full queue is `WouldBlock` to the agent. A
//! frame arriving for a port whose receive queue is full is dropped and counted as
//! `queue_full`, as a NIC with no free descriptors drops on the wire. What the bridge
//! refuses (a forged source, a tag, a flood past [`NIC_FLOOD_LIMIT`]) is dropped and
//! counted by reason.
//!
//! Where the uplink hands over TCP super-frames and partial checksums (its receive
//! offload), a port whose owner asked for them ([`set_offload`]: a partition's stack
//! that takes large frames and skips checking what the host vouched for) gets them as
//! they came, with that word per frame; every other port gets what a plain NIC would
//! show it: the super-frame cut into its segments and checksums completed
//! (`plinth_offload::receive`).

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use plinth_bridge::{
    Bridge, Config, Drop, Forward, Mac, Mode, NATIVE, PortConfig, PortId, Target, VidSet,
};
use plinth_offload::receive::{self, RxCsum, RxOffload};
use plinth_ratelimit::Limiter;
use spin::Mutex;

use crate::clock;
use crate::drivers::NetDevice;
use crate::drivers::virtio::net::{Nic, NicCounters};

/// Frames waiting for a port's owner; a partition's agent, or the management stack.
const RX_QUEUE: usize = 256;
/// Frames a partition NIC holds back for its rate limit (or a full uplink ring)...
const TX_QUEUE: usize = 64;
/// ...and bytes: a few super-frames (a partition with transmit offload) at most.
const TX_QUEUE_BYTES: usize = 4 * TX_QUEUE * FRAME_BUFFER;
/// The largest frame a partition hands over (a super-frame).
const MAX_HANDED: usize = plinth_abi::MAX_LARGE_FRAME as usize;
/// Room for a tagged frame.
const FRAME_BUFFER: usize = 1518;
/// A buffer this large (a super-frame's) goes back to the heap, not the free list.
const RECYCLE_MAX: usize = 2 * FRAME_BUFFER;
/// Bytes all ports' receive queues may hold together: a flood into partitions that never
/// read must not eat the kernel's heap. Each port's share is its queue's length (at most
/// [`RX_QUEUE`], at least [`RX_QUEUE_MIN`] frames); past it frames are dropped, counted
/// `queue_full`, so one tenant's full queues cannot take another's room.
const QUEUE_BUDGET: usize = 8 << 20;
const RX_QUEUE_MIN: usize = 16;
/// Frames taken from the uplink per pump, so one busy wire cannot starve the rest.
const PUMP_BUDGET: usize = 256;
/// Storm control on every partition NIC: what it floods (broadcast, multicast, unknown
/// unicast) beyond 2000 frames a second is dropped, counted `storm_control`. Far above
/// what ARP, DHCP and neighbour discovery need; a storm is held to it before it reaches
/// the tenant's other partitions or the uplink, which every tenant shares.
pub const NIC_FLOOD_LIMIT: plinth_bridge::FloodLimit = plinth_bridge::FloodLimit {
    per_sec: 2000,
    burst: 2000,
};

/// Why a port call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortError {
    /// No such port (it was removed).
    NoPort,
    /// Nothing to receive, or no room to queue a frame, now.
    WouldBlock,
    /// The caller's buffer is shorter than the frame (which stays queued).
    TooShort,
}

/// The bytes `frame` takes on a wire: a super-frame's segments', headers and all, which
/// is what counters and token buckets count (as Linux's qdiscs count a GSO packet).
fn wire_len(frame: &[u8], off: &RxOffload) -> usize {
    match off.gso_size {
        Some(mss) => plinth_offload::wire_len(frame, usize::from(mss)),
        None => frame.len(),
    }
}

/// A frame waiting for a port's owner.
struct Queued {
    frame: Vec<u8>,
    /// The bytes it takes on a wire ([`wire_len`]).
    wire: usize,
    /// Its TCP/UDP checksum need not be checked (only set for a port with offload).
    trusted: bool,
}

/// A queue port's frames and limits.
struct QueuePort {
    rx: VecDeque<Queued>,
    /// Bytes in `rx`.
    rx_bytes: usize,
    /// Its owner takes super-frames and checksum words ([`set_offload`]).
    offload: bool,
    /// Its owner sends super-frames and leaves checksums to fill.
    tx_offload: bool,
    /// Frames at the head of `rx` the receive bucket has already admitted.
    rx_admitted: usize,
    tx: VecDeque<(Vec<u8>, RxOffload)>,
    /// Bytes in `tx`.
    tx_bytes: usize,
    tx_limit: Limiter,
    rx_limit: Limiter,
}

impl QueuePort {
    fn new() -> QueuePort {
        QueuePort {
            rx: VecDeque::new(),
            rx_bytes: 0,
            offload: false,
            tx_offload: false,
            rx_admitted: 0,
            tx: VecDeque::new(),
            tx_bytes: 0,
            tx_limit: Limiter::default(),
            rx_limit: Limiter::default(),
        }
    }

    /// Admits the next received frame through the receive bucket; whether one is
    /// admitted (ready to be taken).
    fn admit(&mut self, now_ns: u64) -> bool {
        if self.rx_admitted > 0 {
            return true;
        }
        let Some(head) = self.rx.front() else {
            return false;
        };
        if self.rx_limit.try_take(head.wire as u64, now_ns).is_ok() {
            self.rx_admitted = 1;
            true
        } else {
            false
        }
    }
}

struct Uplink {
    nic: Nic,
    port: PortId,
    name: String,
}

/// What is reported of the uplink NIC.
#[derive(Clone, Debug)]
pub struct UplinkInfo {
    pub name: String,
    pub mac: Mac,
    /// The tenant VLANs it carries tagged.
    pub allowed: Vec<u16>,
}

pub struct Switch {
    bridge: Bridge,
    uplink: Option<Uplink>,
    mgmt: Option<PortId>,
    queues: BTreeMap<PortId, QueuePort>,
    /// The bridge's decision for the frame being forwarded (reused: no allocation).
    targets: Vec<Target>,
    /// A super-frame as it leaves for a port that takes only plain frames, and the
    /// segment being cut from it (reused).
    whole: Vec<u8>,
    piece: Vec<u8>,
    free: Vec<Vec<u8>>,
    /// Frames were handed to the uplink since its doorbell last rang.
    ring_pending: bool,
    /// Which held-back port goes first in the next drain.
    drain_turn: usize,
}

static SWITCH: Mutex<Option<Switch>> = Mutex::new(None);

fn now_ms() -> u64 {
    clock::now_ns() / 1_000_000
}

/// Brings the switch up on `uplink` (if the machine has a NIC): the uplink becomes a
/// trunk carrying the native VLAN untagged and, as tenants come, their VLANs; the
/// management stack gets an access port on the native VLAN with the uplink's MAC.
/// Returns the management port's MAC, if there is one.
pub fn install(uplink: Option<NetDevice>) -> Option<Mac> {
    // A key per boot, so tenants cannot pick MACs that collide in the table's hash.
    let mut bridge = Bridge::new(Config {
        hash_key: crate::arch::cpu::rdtsc().rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15,
        ..Config::default()
    });
    let mut queues = BTreeMap::new();
    let (uplink, mgmt, mac) = match uplink {
        Some(dev) => {
            let mac = dev.nic.mac();
            let port = bridge.add_port(PortConfig {
                name: dev.name.clone(),
                mode: Mode::Trunk {
                    allowed: VidSet::new(),
                    native: true,
                },
                mac: None,
            });
            let mgmt = bridge.add_port(PortConfig {
                name: String::from("mgmt"),
                mode: Mode::Access { vid: NATIVE },
                mac: Some(mac),
            });
            queues.insert(mgmt, QueuePort::new());
            let uplink = Uplink {
                nic: dev.nic,
                port,
                name: dev.name,
            };
            (Some(uplink), Some(mgmt), Some(mac))
        }
        None => (None, None, None),
    };
    *SWITCH.lock() = Some(Switch {
        bridge,
        uplink,
        mgmt,
        queues,
        targets: Vec::new(),
        whole: Vec::new(),
        piece: Vec::new(),
        free: Vec::new(),
        ring_pending: false,
        drain_turn: 0,
    });
    mac
}

/// Runs `f` on the switch, if it is installed.
fn with<R>(f: impl FnOnce(&mut Switch) -> R) -> Option<R> {
    SWITCH.lock().as_mut().map(f)
}

impl Switch {
    /// Forwards `frame`, which arrived on `from` (with what its NIC's offload says of
    /// it), to wherever the bridge says.
    fn forward(&mut self, from: PortId, frame: &[u8], rx: RxOffload, now_ms: u64) {
        let mut targets = core::mem::take(&mut self.targets);
        let fwd = if rx.gso_size.is_some() {
            let wire = wire_len(frame, &rx);
            self.bridge
                .ingress_large(from, frame, wire, now_ms, &mut targets)
        } else {
            self.bridge.ingress(from, frame, now_ms, &mut targets)
        };
        if let Ok(fwd) = fwd {
            for t in &targets {
                self.deliver(frame, &fwd, t, rx);
            }
        }
        self.targets = targets;
    }

    fn deliver(&mut self, frame: &[u8], fwd: &Forward, t: &Target, rx: RxOffload) {
        let len = Bridge::egress_len(frame, fwd, t.tag);
        if let Some(up) = self.uplink.as_mut().filter(|u| u.port == t.port) {
            // What comes with offload here is a partition's (the uplink's own frames never
            // go back to it): its super-frames go to the device whole, its checksums are
            // filled by the device or the NIC's glue.
            if !up.nic.can_send() {
                self.bridge.dropped(t.port, fwd.vid, Drop::QueueFull);
                return;
            }
            let fill = |buf: &mut [u8]| Bridge::write(frame, fwd, t.tag, buf);
            let sent = match rx.gso_size {
                Some(mss) => up.nic.send_super(len, usize::from(mss), fill),
                None => {
                    up.nic
                        .send_frame(frame, t.tag, len, rx.csum == RxCsum::Partial, fill);
                    Some(len)
                }
            };
            let Some(wire) = sent else {
                self.bridge.dropped(t.port, fwd.vid, Drop::QueueFull);
                return;
            };
            self.ring_pending = true;
            self.bridge.delivered(t.port, fwd.vid, wire);
            return;
        }
        let Some(offload) = self.queues.get(&t.port).map(|q| q.offload) else {
            self.bridge.dropped(t.port, fwd.vid, Drop::NoPort);
            return;
        };
        if offload {
            let mut buf = self.buffer(len);
            let n = Bridge::write(frame, fwd, t.tag, &mut buf);
            buf.truncate(n);
            let wire = wire_len(&buf, &rx);
            self.enqueue(t.port, fwd.vid, buf, wire, rx.trusted());
            return;
        }
        match (rx.gso_size, rx.csum) {
            (Some(mss), _) => {
                // Cut as the sender's TSO would have, each segment queued on its own.
                let mut whole = core::mem::take(&mut self.whole);
                let mut piece = core::mem::take(&mut self.piece);
                whole.resize(len, 0);
                let n = Bridge::write(frame, fwd, t.tag, &mut whole);
                piece.resize(FRAME_BUFFER, 0);
                let mut pieces = Vec::new();
                let mut free = core::mem::take(&mut self.free);
                let cut = receive::segment(&whole[..n], usize::from(mss), &mut piece, |seg| {
                    let mut b = free.pop().unwrap_or_default();
                    b.clear();
                    b.extend_from_slice(seg);
                    pieces.push(b);
                });
                self.free = free;
                match cut {
                    Ok(_) => {
                        for p in pieces {
                            let wire = p.len();
                            self.enqueue(t.port, fwd.vid, p, wire, false);
                        }
                    }
                    // Not a TCPv4 packet, or segments longer than a frame: nothing a
                    // plain NIC could have shown.
                    Err(_) => self.bridge.dropped(t.port, fwd.vid, Drop::Oversize),
                }
                self.whole = whole;
                self.piece = piece;
            }
            (None, csum) => {
                let mut buf = self.buffer(len);
                let n = Bridge::write(frame, fwd, t.tag, &mut buf);
                buf.truncate(n);
                if csum == RxCsum::Partial {
                    receive::fill_checksum(&mut buf);
                }
                let wire = buf.len();
                self.enqueue(t.port, fwd.vid, buf, wire, false);
            }
        }
    }

    /// A buffer of `len` bytes, from the free list where one is there.
    fn buffer(&mut self, len: usize) -> Vec<u8> {
        let mut buf = self.free.pop().unwrap_or_default();
        buf.resize(len.max(FRAME_BUFFER), 0);
        buf
    }

    /// Queues `frame` for `port`'s owner, within its share of the queues' budget: as
    /// many frames as its share (see [`QUEUE_BUDGET`]), and as many bytes as the budget
    /// split evenly (super-frames count by their size).
    fn enqueue(&mut self, port: PortId, vid: u16, frame: Vec<u8>, wire: usize, trusted: bool) {
        let share =
            (QUEUE_BUDGET / FRAME_BUFFER / self.queues.len().max(1)).clamp(RX_QUEUE_MIN, RX_QUEUE);
        let bytes = (QUEUE_BUDGET / self.queues.len().max(1)).max(RX_QUEUE_MIN * FRAME_BUFFER);
        let Some(q) = self.queues.get_mut(&port) else {
            self.bridge.dropped(port, vid, Drop::NoPort);
            self.recycle(frame);
            return;
        };
        let n = frame.len();
        if q.rx.len() >= share || q.rx_bytes + n > bytes {
            self.bridge.dropped(port, vid, Drop::QueueFull);
            self.recycle(frame);
            return;
        }
        q.rx_bytes += n;
        q.rx.push_back(Queued {
            frame,
            wire,
            trusted,
        });
        self.bridge.delivered(port, vid, wire);
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.free.len() < RX_QUEUE && buf.capacity() <= RECYCLE_MAX {
            self.free.push(buf);
        }
    }

    /// Whether frames from a queue port can go out now: the uplink's ring has room (and
    /// for a super-frame, a buffer to take it whole).
    fn uplink_has_room(&mut self) -> bool {
        self.uplink.as_mut().is_none_or(|u| u.nic.can_send())
    }

    fn uplink_has_room_for(&mut self, off: &RxOffload) -> bool {
        match off.gso_size {
            Some(_) => self.uplink.as_mut().is_none_or(|u| u.nic.can_send_super()),
            None => self.uplink_has_room(),
        }
    }

    /// Sends what partition NICs held back, as their buckets allow: one frame per port
    /// per round, starting one port further each time, so no NIC can keep the uplink's
    /// ring to itself.
    fn drain_held(&mut self, now_ns: u64) {
        let ms = now_ns / 1_000_000;
        let mut ports: Vec<PortId> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.tx.is_empty())
            .map(|(p, _)| *p)
            .collect();
        if ports.is_empty() {
            return;
        }
        self.drain_turn = self.drain_turn.wrapping_add(1);
        let turn = self.drain_turn % ports.len();
        ports.rotate_left(turn);
        loop {
            let mut sent = false;
            for &port in &ports {
                let Some(head) = self.queues.get(&port).and_then(|q| q.tx.front()) else {
                    continue;
                };
                let off = head.1;
                if !self.uplink_has_room_for(&off) {
                    return;
                }
                let Some(q) = self.queues.get_mut(&port) else {
                    continue;
                };
                let Some(wire) = q.tx.front().map(|(f, off)| wire_len(f, off)) else {
                    continue;
                };
                if q.tx_limit.try_take(wire as u64, now_ns).is_err() {
                    continue;
                }
                let Some((frame, off)) = q.tx.pop_front() else {
                    continue;
                };
                q.tx_bytes -= frame.len();
                self.forward(port, &frame, off, ms);
                self.recycle(frame);
                sent = true;
            }
            if !sent {
                return;
            }
        }
    }

    fn ring(&mut self) {
        if let Some(up) = self.uplink.as_mut() {
            up.nic.refill();
            up.nic.ring();
            self.ring_pending = false;
        }
    }
}

/// Moves frames: what the uplink received through the bridge, and what partition NICs
/// held back for their rate limits, then rings the uplink's doorbell once.
pub fn pump() {
    with(|s| {
        let now_ns = clock::now_ns();
        let ms = now_ns / 1_000_000;
        if let Some(up) = s.uplink.as_mut() {
            up.nic.reclaim();
            up.nic.refill();
        }
        for _ in 0..PUMP_BUDGET {
            let Some(up) = s.uplink.as_mut() else { break };
            let Some(rx) = up.nic.receive() else { break };
            let port = up.port;
            s.forward(port, rx.frame(), rx.offload(), ms);
        }
        s.drain_held(now_ns);
        s.bridge.age(ms);
        s.ring();
    });
}

/// Rings the uplink's doorbell for frames partitions sent since the last ring.
pub fn flush() {
    with(|s| {
        if s.ring_pending {
            s.ring();
        }
    });
}

/// Whether the uplink has frames waiting to be pumped, or the management port has
/// frames waiting for its stack.
pub fn has_pending() -> bool {
    with(|s| {
        s.uplink.as_ref().is_some_and(|u| u.nic.has_received())
            || s.mgmt
                .and_then(|m| s.queues.get(&m))
                .is_some_and(|q| !q.rx.is_empty())
    })
    .unwrap_or(false)
}

/// The next frame for the management stack.
pub fn mgmt_receive() -> Option<Vec<u8>> {
    with(|s| {
        let m = s.mgmt?;
        let q = s.queues.get_mut(&m)?;
        let head = q.rx.pop_front()?;
        q.rx_bytes -= head.frame.len();
        Some(head.frame)
    })
    .flatten()
}

/// A buffer the management stack is done with.
pub fn mgmt_recycle(buf: Vec<u8>) {
    with(|s| s.recycle(buf));
}

/// A frame from the management stack, forwarded at once.
pub fn mgmt_send(frame: &[u8]) {
    with(|s| {
        if let Some(m) = s.mgmt {
            s.forward(m, frame, RxOffload::default(), now_ms());
        }
    });
}

/// Whether the management stack may send (the uplink's ring has room).
pub fn mgmt_can_send() -> bool {
    with(|s| s.uplink_has_room()).unwrap_or(false)
}

/// The uplink NIC's MAC: the machine's identity on the segment.
pub fn uplink_mac() -> Option<Mac> {
    with(|s| s.uplink.as_ref().map(|u| u.nic.mac())).flatten()
}

/// The uplink NIC's counters.
pub fn uplink_counters() -> Option<NicCounters> {
    with(|s| s.uplink.as_ref().map(|u| u.nic.counters)).flatten()
}

/// The uplink as `/api/v1/network` reports it.
pub fn uplink_info() -> Option<UplinkInfo> {
    with(|s| {
        let allowed = s
            .uplink
            .as_ref()
            .and_then(|u| s.bridge.port(u.port))
            .map(|(cfg, _)| cfg.mode.vlans().filter(|v| *v != NATIVE).collect())
            .unwrap_or_default();
        s.uplink.as_ref().map(|u| UplinkInfo {
            name: u.name.clone(),
            mac: u.nic.mac(),
            allowed,
        })
    })
    .flatten()
}

/// Adds a partition NIC's port: an access port on `vid` (`NATIVE`: untagged) that may
/// send only from `mac`.
pub fn add_nic(name: String, vid: u16, mac: Mac) -> Option<PortId> {
    with(|s| {
        let port = s.bridge.add_port(PortConfig {
            name,
            mode: Mode::Access { vid },
            mac: Some(mac),
        });
        s.bridge
            .set_flood_limit(port, Some(NIC_FLOOD_LIMIT), now_ms());
        s.queues.insert(port, QueuePort::new());
        port
    })
}

/// Removes a partition NIC's port; frames it still held are dropped with it.
pub fn remove_nic(port: PortId) {
    with(|s| {
        s.bridge.remove_port(port);
        if let Some(q) = s.queues.remove(&port) {
            for f in
                q.rx.into_iter()
                    .map(|q| q.frame)
                    .chain(q.tx.into_iter().map(|t| t.0))
            {
                s.recycle(f);
            }
        }
    });
}

/// The VLANs the uplink trunk carries tagged: the tenants' VLANs in use.
pub fn set_trunk(vlans: impl Iterator<Item = u16>) {
    let allowed: VidSet = vlans.collect();
    with(|s| {
        if let Some(port) = s.uplink.as_ref().map(|u| u.port) {
            s.bridge.set_mode(
                port,
                Mode::Trunk {
                    allowed,
                    native: true,
                },
            );
        }
    });
}

/// A NIC's transmit and receive limits: bytes/s and packets/s, each `(rate, burst)`;
/// `None`: not limited. Takes effect at once.
pub fn set_limits(port: PortId, bytes: Option<(u64, u64)>, packets: Option<(u64, u64)>) {
    let now = clock::now_ns();
    with(|s| {
        if let Some(q) = s.queues.get_mut(&port) {
            for l in [&mut q.tx_limit, &mut q.rx_limit] {
                l.set_bytes(bytes, now);
                l.set_ops(packets, now);
            }
        }
    });
}

/// Hands `frame` from partition NIC `port` to the bridge: now if its bucket allows and
/// nothing is held before it, else into its transmit queue.
///
/// `off` is what the owner's stack left to the NIC (see [`set_offload`]): a checksum to
/// fill, a super-frame to cut; the caller has checked it is allowed and well formed.
///
/// A NIC with a rate limit is paced frame by frame, as a plain NIC would be: its
/// super-frame is cut into its segments before its bucket (as Linux's `tbf` cuts a GSO
/// packet), taken only into an empty queue, so its rate shows on the wire at a frame's
/// grain, not 64 KiB's.
pub fn send(port: PortId, frame: &[u8], off: RxOffload) -> Result<(), PortError> {
    let now_ns = clock::now_ns();
    with(|s| {
        if let Some(mss) = off.gso_size {
            let q = s.queues.get(&port).ok_or(PortError::NoPort)?;
            if q.tx_limit.is_limited() {
                if !q.tx.is_empty() {
                    return Err(PortError::WouldBlock);
                }
                let mut pieces = Vec::new();
                let mut piece = core::mem::take(&mut s.piece);
                piece.resize(FRAME_BUFFER, 0);
                let cut = receive::segment(frame, usize::from(mss), &mut piece, |seg| {
                    pieces.push(seg.to_vec());
                });
                s.piece = piece;
                // Checked well formed by the caller; a frame that is not is dropped as
                // a plain NIC would refuse it.
                if cut.is_err() {
                    return Ok(());
                }
                for p in pieces {
                    s.send_one(port, &p, RxOffload::default(), now_ns, true)?;
                }
                return Ok(());
            }
        }
        s.send_one(port, frame, off, now_ns, false)
    })
    .unwrap_or(Err(PortError::NoPort))
}

impl Switch {
    /// [`send`]'s one frame: forwarded now if its bucket allows and nothing is held
    /// before it, else queued; `over`: a piece of a cut super-frame, queued past the
    /// queue's bounds (the whole was taken into an empty queue).
    fn send_one(
        &mut self,
        port: PortId,
        frame: &[u8],
        off: RxOffload,
        now_ns: u64,
        over: bool,
    ) -> Result<(), PortError> {
        let s = self;
        let room = s.uplink_has_room_for(&off);
        let q = s.queues.get_mut(&port).ok_or(PortError::NoPort)?;
        let wire = wire_len(frame, &off) as u64;
        if q.tx.is_empty() && room && q.tx_limit.try_take(wire, now_ns).is_ok() {
            s.forward(port, frame, off, now_ns / 1_000_000);
            return Ok(());
        }
        if !over && (q.tx.len() >= TX_QUEUE || q.tx_bytes + frame.len() > TX_QUEUE_BYTES) {
            return Err(PortError::WouldBlock);
        }
        let mut buf = s.free.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(frame);
        // `q` was borrowed across `s.free`: look it up again.
        if let Some(q) = s.queues.get_mut(&port) {
            q.tx_bytes += buf.len();
            q.tx.push_back((buf, off));
        }
        Ok(())
    }
}

/// Takes the next frame for partition NIC `port`, if its receive bucket admits it:
/// `take` copies it out (into the agent's memory; the flag says its checksums need no
/// check, see [`set_offload`]) and says what it took; a frame `take` refuses stays
/// queued.
pub fn receive<T, E>(
    port: PortId,
    cap: usize,
    take: impl FnOnce(&[u8], bool) -> Result<T, E>,
) -> Result<Result<T, E>, PortError> {
    let now_ns = clock::now_ns();
    with(|s| {
        let q = s.queues.get_mut(&port).ok_or(PortError::NoPort)?;
        if !q.admit(now_ns) {
            return Err(PortError::WouldBlock);
        }
        let Some(head) = q.rx.front() else {
            return Err(PortError::WouldBlock);
        };
        if head.frame.len() > cap {
            return Err(PortError::TooShort);
        }
        let result = take(&head.frame, head.trusted);
        if result.is_ok() {
            q.rx_admitted = 0;
            if let Some(f) = q.rx.pop_front() {
                q.rx_bytes -= f.frame.len();
                s.recycle(f.frame);
            }
        }
        Ok(result)
    })
    .unwrap_or(Err(PortError::NoPort))
}

/// Whether partition NIC `port` has a frame to take (admitted by its receive bucket)
/// and room to queue one to send.
pub fn ready(port: PortId) -> (bool, bool) {
    let now_ns = clock::now_ns();
    with(|s| match s.queues.get_mut(&port) {
        // Room for any frame, so a sender woken for room is not refused: a rate-limited
        // NIC that may send super-frames takes one only into an empty queue.
        Some(q) => (
            q.admit(now_ns),
            if q.tx_offload && q.tx_limit.is_limited() {
                q.tx.is_empty()
            } else {
                q.tx.len() < TX_QUEUE && q.tx_bytes + MAX_HANDED <= TX_QUEUE_BYTES
            },
        ),
        None => (false, false),
    })
    .unwrap_or((false, false))
}

/// Sets partition NIC `port`'s offloads; off by default. `rx`: its owner takes
/// super-frames (up to `plinth_abi::MAX_LARGE_FRAME` bytes) and a word per frame that
/// its TCP/UDP checksum need not be checked (frames already queued stay as they are,
/// but super-frames queued while it was on are dropped, counted `queue_full`, when it
/// goes off: the owner's buffers no longer take them). `tx`: it
/// may send super-frames and frames whose checksum is left to fill (see [`send`]).
/// Returns which are on: each only where the uplink does it (hands over super-frames;
/// cuts them and fills checksums).
pub fn set_offload(port: PortId, rx: bool, tx: bool) -> Result<(bool, bool), PortError> {
    with(|s| {
        let (rx_ok, tx_ok) = s
            .uplink
            .as_ref()
            .map_or((false, false), |u| (u.nic.rx_offload(), u.nic.tso()));
        let q = s.queues.get_mut(&port).ok_or(PortError::NoPort)?;
        let was = q.offload;
        q.offload = rx && rx_ok;
        q.tx_offload = tx && tx_ok;
        let on = (q.offload, q.tx_offload);
        if was && !q.offload {
            let before = q.rx.len();
            q.rx.retain(|f| f.frame.len() <= FRAME_BUFFER);
            q.rx_bytes = q.rx.iter().map(|f| f.frame.len()).sum();
            let dropped = before - q.rx.len();
            if dropped > 0 {
                // The head the bucket admitted may be gone: admit afresh.
                q.rx_admitted = 0;
            }
            if let Some((
                PortConfig {
                    mode: Mode::Access { vid },
                    ..
                },
                _,
            )) = s.bridge.port(port)
            {
                let vid = *vid;
                for _ in 0..dropped {
                    s.bridge.dropped(port, vid, Drop::QueueFull);
                }
            }
        }
        Ok(on)
    })
    .unwrap_or(Err(PortError::NoPort))
}

/// Every queue port's offloads that are on, receive and transmit, to report them.
pub fn offloads() -> Vec<(PortId, bool, bool)> {
    with(|s| {
        s.queues
            .iter()
            .filter(|(_, q)| q.offload || q.tx_offload)
            .map(|(p, q)| (*p, q.offload, q.tx_offload))
            .collect()
    })
    .unwrap_or_default()
}

/// Partition NIC `port`'s offloads, receive and transmit (see [`set_offload`]).
pub fn offload(port: PortId) -> (bool, bool) {
    with(|s| {
        s.queues
            .get(&port)
            .map_or((false, false), |q| (q.offload, q.tx_offload))
    })
    .unwrap_or((false, false))
}

/// Frames partition NIC `port` holds back to send.
pub fn held(port: PortId) -> usize {
    with(|s| s.queues.get(&port).map_or(0, |q| q.tx.len())).unwrap_or(0)
}

/// The uplink's and the management stack's ports, to name ports' kinds.
pub fn roles() -> (Option<PortId>, Option<PortId>) {
    with(|s| (s.uplink.as_ref().map(|u| u.port), s.mgmt)).unwrap_or((None, None))
}

/// Runs `f` on the bridge, to report it.
pub fn inspect<R>(f: impl FnOnce(&Bridge) -> R) -> Option<R> {
    with(|s| f(&s.bridge))
}
