//! virtio-net glue: owns the frame buffers the device reads and writes, so the rest of
//! the kernel sees a safe NIC that takes and hands out Ethernet frames.
//!
//! Built on `virtio-drivers`' `VirtIONetRaw`, whose non-blocking calls are `unsafe`
//! because the device keeps using a buffer after the call returns. Here each buffer is a
//! heap box parked in a slot keyed by its queue token until the device gives it back, so
//! it can neither move nor be freed while the device owns it. Transmit completions are
//! reclaimed lazily, when the next frame is sent or the NIC is serviced: no interrupt
//! per frame sent (the Asterinas lesson). Receive buffers go back into the ring as soon
//! as their frame has been consumed.
//!
//! Where the device offers `VIRTIO_NET_F_HOST_TSO4` (QEMU's does over a tap), TCP segments
//! sent one after another through [`Nic::send_frame`] are coalesced
//! (`plinth_offload::Coalescer`) into one super-frame of up to 64 KiB, in a buffer of its
//! own, with the `virtio_net_hdr` that has the host cut it up again: one virtqueue entry,
//! one tap write and one trip through the host's bridge per 44 segments instead of each.
//! The super-frame goes into the ring when a frame that does not continue it comes, when
//! it is full, or at [`Nic::ring`], so it never waits past the burst it belongs to.
//!
//! The other way, where the device offers `VIRTIO_NET_F_GUEST_CSUM` and
//! `VIRTIO_NET_F_GUEST_TSO4` and the caller can spare the memory, the host hands over
//! TCP super-frames of up to 64 KiB (what its own TSO or GRO built) and partial
//! checksums, each with its header read into [`RxFrame::offload`]: one virtqueue entry
//! and one trip through the switch per 44 segments. Without mergeable buffers every
//! receive buffer must then hold 64 KiB (virtio 1.2 §5.1.6.3.1), so fewer are posted.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use spin::Mutex;

use plinth_offload::receive::{self, RxOffload};
use plinth_offload::{Coalescer, MAX_SUPER};
use virtio_drivers::device::net::VirtIONetRaw;

use super::doorbell::{Bell, Doorbell};
use super::hal::VirtioHal;

/// Descriptors per queue: QEMU's default (and maximum without `rx_queue_size`).
pub const QUEUE_SIZE: usize = 256;
/// Room for the 12-byte virtio header and a 1522-byte 802.1Q-tagged frame.
const BUFFER_LEN: usize = 1536 + 64;
/// Room for the virtio header and a super-frame: the largest a partition may hand over
/// (`plinth_abi::MAX_LARGE_FRAME`) with the tag the switch pushes.
const SUPER_LEN: usize = HEADER + 4 + plinth_abi::MAX_LARGE_FRAME as usize;
/// A receive buffer when the host may hand over super-frames: the header, a tagged
/// Ethernet header and IPv4's largest packet (the spec's 65562 bytes, and a tag).
const LARGE_RX_LEN: usize = HEADER + 18 + 65_535;
/// Super-frame buffers at most (in the ring or being built): 2 MiB, enough to keep the
/// host busy while the next ones are built.
const SUPER_BUFFERS: usize = 32;
/// `VIRTIO_NET_F_CSUM` and `VIRTIO_NET_F_HOST_TSO4` (virtio 1.2 §5.1.3): the device takes
/// a partial checksum and a TCPv4 frame to segment. The second needs the first.
const F_CSUM: u64 = 1 << 0;
const F_HOST_TSO4: u64 = 1 << 11;
/// `VIRTIO_NET_F_GUEST_CSUM` and `VIRTIO_NET_F_GUEST_TSO4`: the driver takes partial
/// checksums and TCPv4 super-frames. The second needs the first.
const F_GUEST_CSUM: u64 = 1 << 1;
const F_GUEST_TSO4: u64 = 1 << 7;
/// The fewest 64 KiB receive buffers worth offering receive offload with: fewer would
/// leave the host waiting for room between bursts.
pub const MIN_LARGE_RX: usize = 16;
/// The `virtio_net_hdr` a super-frame's header is laid out for (VIRTIO_F_VERSION_1); a
/// legacy device's shorter header gets no super-frames.
const HEADER: usize = plinth_offload::HEADER_LEN;

/// Frame and error counters, for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NicCounters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames not sent because every transmit descriptor was in flight.
    pub tx_ring_full: u64,
    /// Super-frames sent for the host to segment, and the frames (counted in `tx_frames`)
    /// they carried.
    pub tx_super: u64,
    pub tx_super_frames: u64,
    /// Super-frames received (counted once in `rx_frames`).
    pub rx_super: u64,
    /// Device errors on either queue, and received frames whose header names an
    /// offload that was not negotiated.
    pub errors: u64,
}

type Raw = VirtIONetRaw<VirtioHal, Doorbell, QUEUE_SIZE>;

/// Buffers whose frames have been consumed, waiting to go back into the receive ring.
/// Shared with [`RxFrame`] so a frame handed out (to smoltcp, which cannot hand it back)
/// returns its buffer when dropped. An `Arc` and a lock, not `Rc`, so the NIC may live in
/// the switch's static (one CPU: the lock is never contended).
type Spare = Arc<Mutex<Vec<Box<[u8]>>>>;

pub struct Nic {
    /// Boxed: the driver holds two 256-entry descriptor shadows inline (about 16 KiB),
    /// which must not be copied around (and onto) kernel stacks.
    raw: Box<Raw>,
    /// Receive buffers the device owns, by token.
    rx_posted: Vec<Option<Box<[u8]>>>,
    spare: Spare,
    /// Transmit buffers the device owns, by token, with the length handed over.
    tx_posted: Vec<Option<(Box<[u8]>, usize)>>,
    tx_free: Vec<Box<[u8]>>,
    /// Receive buffers created so far; at most `rx_buffers`, then they are recycled.
    rx_allocated: usize,
    /// Receive buffers to post, and each one's length: `QUEUE_SIZE` of `BUFFER_LEN`, or
    /// fewer of `LARGE_RX_LEN` with receive offload.
    rx_buffers: usize,
    rx_len: usize,
    /// The host hands over super-frames and partial checksums.
    rx_offload: bool,
    /// Transmit descriptors the device holds.
    tx_in_flight: usize,
    /// The device takes super-frames (`F_CSUM | F_HOST_TSO4` were negotiated).
    tso: bool,
    /// The super-frame being built: its buffer (virtio header first) and the coalescer.
    building: Option<Box<[u8]>>,
    /// Its first segment's checksum was left to fill (should it stay alone).
    building_partial: bool,
    coalescer: Coalescer,
    super_free: Vec<Box<[u8]>>,
    /// Super-frame buffers created so far; at most `SUPER_BUFFERS`.
    super_allocated: usize,
    /// Deferred doorbells of both queues.
    bell: Bell,
    pub counters: NicCounters,
}

/// A received Ethernet frame. Dropping it returns its buffer to the NIC.
pub struct RxFrame {
    buffer: Option<Box<[u8]>>,
    start: usize,
    len: usize,
    offload: RxOffload,
    spare: Spare,
}

impl RxFrame {
    pub fn frame(&self) -> &[u8] {
        match &self.buffer {
            Some(b) => &b[self.start..self.start + self.len],
            None => &[],
        }
    }

    /// What the device's header says of the frame: a super-frame to cut, a checksum
    /// partial or vouched for (all default without receive offload).
    pub fn offload(&self) -> RxOffload {
        self.offload
    }
}

impl Drop for RxFrame {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.spare.lock().push(b);
        }
    }
}

impl Nic {
    /// Initialises the device. The receive ring is filled by the first [`refill`]
    /// (`net` calls it after `ready`), so its buffers are not boot work.
    ///
    /// [`refill`]: Nic::refill
    /// The transport's doorbell should be deferred: [`Nic::ring`] notifies the device of
    /// everything queued since the last call.
    ///
    /// `large_rx_buffers`: how many 64 KiB receive buffers the caller can spare for
    /// receive offload; with none (or fewer than [`MIN_LARGE_RX`]) it is not offered.
    pub fn new(
        mut transport: Doorbell,
        large_rx_buffers: usize,
    ) -> Result<Nic, virtio_drivers::Error> {
        let guest = if large_rx_buffers >= MIN_LARGE_RX {
            F_GUEST_CSUM | F_GUEST_TSO4
        } else {
            0
        };
        transport.offer(F_CSUM | F_HOST_TSO4 | guest);
        let bell = transport.bell();
        let raw = Box::new(Raw::new(transport)?);
        let header = raw.fill_buffer_header(&mut [0u8; HEADER]);
        let accepted = bell.accepted();
        let tso = accepted & (F_CSUM | F_HOST_TSO4) == F_CSUM | F_HOST_TSO4 && header == Ok(HEADER);
        // Whatever the header's length, a device that took GUEST_TSO4 may fill a buffer
        // with 64 KiB: every buffer must hold that.
        let rx_offload = accepted & F_GUEST_TSO4 != 0;
        let (rx_buffers, rx_len) = if rx_offload {
            (large_rx_buffers.min(QUEUE_SIZE), LARGE_RX_LEN)
        } else {
            (QUEUE_SIZE, BUFFER_LEN)
        };
        Ok(Nic {
            raw,
            bell,
            rx_posted: (0..QUEUE_SIZE).map(|_| None).collect(),
            spare: Arc::new(Mutex::new(Vec::with_capacity(QUEUE_SIZE))),
            tx_posted: (0..QUEUE_SIZE).map(|_| None).collect(),
            tx_free: Vec::new(),
            rx_allocated: 0,
            rx_buffers,
            rx_len,
            rx_offload,
            tx_in_flight: 0,
            tso,
            building: None,
            building_partial: false,
            coalescer: Coalescer::new(),
            super_free: Vec::new(),
            super_allocated: 0,
            counters: NicCounters::default(),
        })
    }

    /// Whether the device segments TCP super-frames for us.
    pub fn tso(&self) -> bool {
        self.tso
    }

    /// Whether the device hands over super-frames and partial checksums.
    pub fn rx_offload(&self) -> bool {
        self.rx_offload
    }

    pub fn mac(&self) -> [u8; 6] {
        self.raw.mac_address()
    }

    /// Tells the device about every frame sent and buffer posted since the last call: one
    /// doorbell per burst instead of one per frame. A super-frame being built goes first.
    pub fn ring(&mut self) {
        self.finish_super();
        self.bell.ring();
    }

    /// Posts every spare buffer back into the receive ring, creating buffers until the
    /// ring has all it gets (`rx_buffers`).
    pub fn refill(&mut self) {
        loop {
            let spare = self.spare.lock().pop();
            let mut buffer = match spare {
                Some(b) => b,
                None if self.rx_allocated < self.rx_buffers => {
                    self.rx_allocated += 1;
                    vec![0u8; self.rx_len].into_boxed_slice()
                }
                None => return,
            };
            // SAFETY: the buffer is a heap allocation parked in `rx_posted` under the
            // returned token until `receive` takes it back after the device completed it;
            // it is neither touched, moved (only the box pointer moves) nor freed meanwhile.
            match unsafe { self.raw.receive_begin(&mut buffer) } {
                Ok(token) => match self.rx_posted.get_mut(usize::from(token)) {
                    Some(slot @ None) => *slot = Some(buffer),
                    // A token we already hold, or out of range: the ring is corrupt. Keep
                    // the buffer alive (leak it) rather than free memory the device owns.
                    _ => {
                        self.counters.errors += 1;
                        core::mem::forget(buffer);
                        return;
                    }
                },
                Err(_) => {
                    // Ring full: keep the buffer for later.
                    self.spare.lock().push(buffer);
                    return;
                }
            }
        }
    }

    /// The next received frame, if any.
    pub fn receive(&mut self) -> Option<RxFrame> {
        let token = self.raw.poll_receive()?;
        let Some(mut buffer) = self
            .rx_posted
            .get_mut(usize::from(token))
            .and_then(Option::take)
        else {
            self.counters.errors += 1;
            return None;
        };
        // SAFETY: `buffer` is the one posted under `token` (taken from its slot).
        match unsafe { self.raw.receive_complete(token, &mut buffer) } {
            Ok((start, len)) if start + len <= buffer.len() => {
                let offload = if self.rx_offload {
                    match RxOffload::from_header(&buffer[..start]) {
                        Ok(o) => o,
                        Err(_) => {
                            self.counters.errors += 1;
                            self.spare.lock().push(buffer);
                            return None;
                        }
                    }
                } else {
                    RxOffload::default()
                };
                self.counters.rx_frames += 1;
                self.counters.rx_bytes += len as u64;
                self.counters.rx_super += u64::from(offload.gso_size.is_some());
                Some(RxFrame {
                    buffer: Some(buffer),
                    start,
                    len,
                    offload,
                    spare: self.spare.clone(),
                })
            }
            _ => {
                self.counters.errors += 1;
                self.spare.lock().push(buffer);
                None
            }
        }
    }

    /// Whether a received frame is waiting.
    pub fn has_received(&self) -> bool {
        self.raw.poll_receive().is_some()
    }

    /// Whether a frame can be sent now (after reclaiming completed sends), with room
    /// kept for the super-frame being built.
    pub fn can_send(&mut self) -> bool {
        self.reclaim();
        let reserved = usize::from(self.building.is_some());
        self.raw.can_send() && self.tx_in_flight + reserved < QUEUE_SIZE
    }

    /// Sends `frame` (as it arrived at the switch) as `len` bytes that `fill` writes — the
    /// frame as it goes out, tagged `tag` — coalescing TCP segments into super-frames
    /// where the device takes them (see the module docs); otherwise as [`Nic::send`].
    /// `partial`: its TCP/UDP checksum is left to fill (by the device, in a super-frame,
    /// or here).
    pub fn send_frame(
        &mut self,
        frame: &[u8],
        tag: Option<u16>,
        len: usize,
        partial: bool,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) {
        if let Some(buffer) = self.building.as_mut() {
            if self.coalescer.append(&mut buffer[HEADER..], frame, tag) {
                self.counters.tx_frames += 1;
                self.counters.tx_bytes += len as u64;
                return;
            }
            self.finish_super();
        }
        if self.tso
            && self.building.is_none()
            && len <= MAX_SUPER
            && Coalescer::can_start(frame)
            && let Some(mut buffer) = self.super_buffer()
        {
            let n = fill(&mut buffer[HEADER..HEADER + len]);
            self.counters.tx_frames += 1;
            self.counters.tx_bytes += len as u64;
            if self.coalescer.start(&buffer[HEADER..], n, tag) {
                self.building = Some(buffer);
                self.building_partial = partial;
            } else {
                if partial {
                    receive::fill_checksum(&mut buffer[HEADER..HEADER + n]);
                }
                buffer[..HEADER].fill(0);
                self.post(buffer, n);
            }
            return;
        }
        self.send(len, |buf| {
            let n = fill(buf);
            if partial {
                receive::fill_checksum(&mut buf[..n]);
            }
            n
        });
    }

    /// Sends the TCP super-frame of `len` bytes that `fill` writes (a partition's stack
    /// built it, its checksum left to fill) for the device to cut at every `mss` bytes of
    /// payload. Returns the bytes its segments take on the wire; `None`, sending nothing,
    /// if no super-frame buffer is free or it is not one the device can cut.
    pub fn send_super(
        &mut self,
        len: usize,
        mss: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Option<usize> {
        self.reclaim();
        self.finish_super();
        if !self.tso || HEADER + len > SUPER_LEN || self.tx_in_flight >= QUEUE_SIZE {
            return None;
        }
        let mut buffer = self.super_buffer()?;
        let n = fill(&mut buffer[HEADER..HEADER + len]);
        // The segments as they leave, with the tag the switch pushed.
        const MAX_TAGGED: usize = 1518;
        match plinth_offload::seal_super(&mut buffer[HEADER..HEADER + n], mss, MAX_TAGGED) {
            Ok((n, gso)) => {
                buffer[..HEADER].copy_from_slice(&gso.header());
                let hdr = usize::from(gso.hdr_len);
                let segments = (n - hdr).div_ceil(mss).max(1);
                let wire = n + (segments - 1) * hdr;
                self.counters.tx_frames += segments as u64;
                self.counters.tx_bytes += wire as u64;
                self.counters.tx_super += 1;
                self.counters.tx_super_frames += segments as u64;
                self.post(buffer, n);
                Some(wire)
            }
            Err(_) => {
                self.counters.errors += 1;
                self.super_free.push(buffer);
                None
            }
        }
    }

    /// Whether [`Nic::send_super`] has room now: a descriptor and a super-frame buffer.
    pub fn can_send_super(&mut self) -> bool {
        self.can_send() && (!self.super_free.is_empty() || self.super_allocated < SUPER_BUFFERS)
    }

    /// A free super-frame buffer, if one is (or may be made).
    fn super_buffer(&mut self) -> Option<Box<[u8]>> {
        match self.super_free.pop() {
            Some(b) => Some(b),
            None if self.super_allocated < SUPER_BUFFERS => {
                self.super_allocated += 1;
                Some(vec![0u8; SUPER_LEN].into_boxed_slice())
            }
            None => None,
        }
    }

    /// Puts the super-frame being built into the ring, with the header that tells the
    /// device how to cut it (a lone segment goes as it is). Kept if the ring is full, to
    /// go at the next call.
    fn finish_super(&mut self) {
        let Some(mut buffer) = self.building.take() else {
            return;
        };
        if self.tx_in_flight >= QUEUE_SIZE {
            self.building = Some(buffer);
            return;
        }
        let Some(done) = self.coalescer.finish(&mut buffer[HEADER..]) else {
            self.super_free.push(buffer);
            return;
        };
        match done.gso {
            Some(gso) => {
                buffer[..HEADER].copy_from_slice(&gso.header());
                self.counters.tx_super += 1;
                self.counters.tx_super_frames += done.segments as u64;
            }
            None => {
                // Alone: its checksums are its own, once filled if they were left.
                if core::mem::take(&mut self.building_partial) {
                    receive::fill_checksum(&mut buffer[HEADER..HEADER + done.len]);
                }
                buffer[..HEADER].fill(0);
            }
        }
        self.building_partial = false;
        self.post(buffer, done.len);
    }

    /// Hands `buffer` (virtio header, then `len` bytes of frame) to the device; counted
    /// as ring-full and kept for reuse if it has no room.
    fn post(&mut self, buffer: Box<[u8]>, len: usize) {
        let total = HEADER + len;
        // SAFETY: the buffer is parked in `tx_posted` under the returned token until
        // `reclaim` sees the device complete it; it is not touched or freed meanwhile.
        match unsafe { self.raw.transmit_begin(&buffer[..total]) } {
            Ok(token) => match self.tx_posted.get_mut(usize::from(token)) {
                Some(slot @ None) => {
                    *slot = Some((buffer, total));
                    self.tx_in_flight += 1;
                }
                _ => {
                    self.counters.errors += 1;
                    core::mem::forget(buffer);
                }
            },
            Err(_) => {
                self.counters.tx_ring_full += 1;
                self.recycle_tx(buffer);
            }
        }
    }

    /// A transmit buffer back to its pool.
    fn recycle_tx(&mut self, buffer: Box<[u8]>) {
        if buffer.len() == SUPER_LEN {
            self.super_free.push(buffer);
        } else {
            self.tx_free.push(buffer);
        }
    }

    /// Sends a frame of `len` bytes that `fill` writes. `fill` always runs (smoltcp's
    /// transmit token must produce its result); if the frame cannot be handed to the
    /// device (ring full, oversized) it is dropped and counted, as a full NIC would.
    pub fn send<R>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> R) -> R {
        self.reclaim();
        // Frames go out in the order they were given.
        self.finish_super();
        let mut buffer = self
            .tx_free
            .pop()
            .unwrap_or_else(|| vec![0u8; BUFFER_LEN].into_boxed_slice());
        let header = match self.raw.fill_buffer_header(&mut buffer) {
            Ok(h) if h + len <= buffer.len() => h,
            _ => {
                self.counters.errors += 1;
                self.tx_free.push(buffer);
                return fill(&mut vec![0u8; len]);
            }
        };
        let result = fill(&mut buffer[header..header + len]);
        let total = header + len;
        // SAFETY: the buffer is parked in `tx_posted` under the returned token until
        // `reclaim` sees the device complete it; it is not touched or freed meanwhile.
        match unsafe { self.raw.transmit_begin(&buffer[..total]) } {
            Ok(token) => match self.tx_posted.get_mut(usize::from(token)) {
                Some(slot @ None) => {
                    *slot = Some((buffer, total));
                    self.tx_in_flight += 1;
                    self.counters.tx_frames += 1;
                    self.counters.tx_bytes += len as u64;
                }
                _ => {
                    // The ring handed out a token we still hold: never free memory the
                    // device may own.
                    self.counters.errors += 1;
                    core::mem::forget(buffer);
                }
            },
            Err(_) => {
                self.counters.tx_ring_full += 1;
                self.tx_free.push(buffer);
            }
        }
        result
    }

    /// Takes back the buffers of completed sends.
    pub fn reclaim(&mut self) {
        while let Some(token) = self.raw.poll_transmit() {
            let Some((buffer, total)) = self
                .tx_posted
                .get_mut(usize::from(token))
                .and_then(Option::take)
            else {
                self.counters.errors += 1;
                return;
            };
            self.tx_in_flight -= 1;
            // SAFETY: `buffer[..total]` is exactly what was posted under `token`.
            if unsafe { self.raw.transmit_complete(token, &buffer[..total]) }.is_err() {
                self.counters.errors += 1;
                core::mem::forget(buffer);
                return;
            }
            self.recycle_tx(buffer);
        }
    }
}
