//! virtio-blk driver glue: device set-up and every request type, non-blocking, over
//! `virtio-drivers`' virtqueue; owns the buffers of requests in flight, so the rest of the
//! kernel sees a safe device that takes requests and hands back completions.
//!
//! `virtio-drivers` 0.13's `VirtIOBlk` has no non-blocking flush (its flush spins on the
//! used ring until the host's fdatasync returns — hundreds of milliseconds after a large
//! write) and a 16-entry queue. This driver speaks the
//! virtio-blk request format (virtio 1.2 §5.2.6) itself on the crate's `VirtQueue`, so
//! reads, writes, flushes and the serial query all complete by interrupt, with up to
//! [`QUEUE_SIZE`] requests in flight.
//!
//! Each request's header, data and status buffers are heap allocations parked in a slot
//! keyed by the queue token until the device gives them back, so none can move or be
//! freed while the device owns it. Queueing, ordering and flush barriers are the block
//! layer's (`crate::block`).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::{DeviceStatus, Transport};

use super::doorbell::Doorbell;
use super::hal::VirtioHal;

pub const SECTOR_SIZE: usize = 512;
/// Descriptors in the request queue; with indirect descriptors, requests in flight.
pub const QUEUE_SIZE: usize = 64;

// Feature bits (virtio 1.2 §5.2.3, §6).
const F_RO: u64 = 1 << 5;
const F_FLUSH: u64 = 1 << 9;
const F_INDIRECT_DESC: u64 = 1 << 28;
const F_EVENT_IDX: u64 = 1 << 29;
const F_VERSION_1: u64 = 1 << 32;

// Request types and status values (virtio 1.2 §5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;

/// Length of the device ID string (the serial), NUL-padded.
const ID_BYTES: usize = 20;

/// What a request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    /// Make completed writes durable.
    Flush,
    /// Read the device's serial (ID string) into a 20-byte buffer.
    GetId,
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// The device reported an I/O error.
    Io,
    /// The device does not support this request.
    Unsupported,
    /// A status byte the specification does not define.
    BadStatus(u8),
    /// The buffer is empty, not whole sectors, or the sector number does not fit.
    BadRequest,
    /// Every descriptor is in use: submit again after a completion.
    QueueFull,
    /// The queue misbehaved (a token we do not hold, or set-up failed).
    Queue(virtio_drivers::Error),
    /// The device did not answer in time.
    Timeout,
}

impl core::fmt::Display for BlkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlkError::Io => f.write_str("I/O error reported by the device"),
            BlkError::Unsupported => f.write_str("request not supported by the device"),
            BlkError::BadStatus(s) => write!(f, "undefined status {s} from the device"),
            BlkError::BadRequest => f.write_str("malformed request"),
            BlkError::QueueFull => f.write_str("request queue full"),
            BlkError::Queue(e) => write!(f, "virtqueue error: {e}"),
            BlkError::Timeout => f.write_str("the device did not answer"),
        }
    }
}

/// A finished request: its data buffer comes back with the outcome.
pub struct Completed {
    pub tag: u64,
    pub op: Op,
    pub buf: Vec<u8>,
    pub result: Result<(), BlkError>,
}

struct Slot {
    tag: u64,
    op: Op,
    header: Box<[u8; 16]>,
    status: Box<[u8; 1]>,
    buf: Vec<u8>,
}

pub struct BlkDevice {
    transport: Doorbell,
    /// Boxed: the queue's descriptor shadow must stay off kernel stacks.
    queue: Box<VirtQueue<VirtioHal, QUEUE_SIZE>>,
    /// Requests the device owns, by token (a descriptor index, below the queue size).
    slots: Vec<Option<Slot>>,
    in_flight: usize,
    capacity: u64,
    features: u64,
}

impl BlkDevice {
    /// Negotiates features, reads the capacity and sets up the request queue.
    pub fn new(mut transport: Doorbell) -> Result<BlkDevice, BlkError> {
        transport.set_status(DeviceStatus::empty());
        // The reset is done when the status reads back as 0 (virtio 1.2 §4.1.4.3.2).
        let mut spins = 0u32;
        while !transport.get_status().is_empty() {
            spins += 1;
            if spins > 1_000_000 {
                return Err(BlkError::Timeout);
            }
            core::hint::spin_loop();
        }
        transport.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
        let wanted = F_RO | F_FLUSH | F_INDIRECT_DESC | F_EVENT_IDX | F_VERSION_1;
        let features = transport.read_device_features() & wanted;
        transport.write_driver_features(features);
        transport.set_status(
            DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK,
        );
        if !transport.get_status().contains(DeviceStatus::FEATURES_OK) {
            transport.set_status(DeviceStatus::FAILED);
            return Err(BlkError::Unsupported);
        }
        transport.set_guest_page_size(4096);
        let capacity = transport
            .read_consistent(|| {
                let low: u32 = transport.read_config_space(0)?;
                let high: u32 = transport.read_config_space(4)?;
                Ok(u64::from(low) | u64::from(high) << 32)
            })
            .map_err(BlkError::Queue)?;
        let queue = VirtQueue::new(
            &mut transport,
            0,
            features & F_INDIRECT_DESC != 0,
            features & F_EVENT_IDX != 0,
        )
        .map_err(BlkError::Queue)?;
        transport.finish_init();
        Ok(BlkDevice {
            transport,
            queue: Box::new(queue),
            slots: (0..QUEUE_SIZE).map(|_| None).collect(),
            in_flight: 0,
            capacity,
            features,
        })
    }

    /// Size in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn readonly(&self) -> bool {
        self.features & F_RO != 0
    }

    /// Whether flushes reach the device; without `VIRTIO_BLK_F_FLUSH` the device has no
    /// volatile cache (writes are durable when complete), so a flush completes at once.
    pub fn has_flush(&self) -> bool {
        self.features & F_FLUSH != 0
    }

    /// Requests the device holds.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Most requests the queue can hold at once.
    pub fn depth(&self) -> usize {
        self.slots.len()
    }

    /// Hands a request to the device. For `Read`/`Write`, `buf` is a non-zero multiple of
    /// the sector size, filled from or written to the disk from `sector`; `Flush` takes an
    /// empty buffer; `GetId` a 20-byte one. On refusal the buffer comes back with the error.
    pub fn submit(
        &mut self,
        tag: u64,
        op: Op,
        sector: u64,
        mut buf: Vec<u8>,
    ) -> Result<(), (Vec<u8>, BlkError)> {
        let well_formed = match op {
            Op::Read | Op::Write => !buf.is_empty() && buf.len().is_multiple_of(SECTOR_SIZE),
            Op::Flush => buf.is_empty(),
            Op::GetId => buf.len() == ID_BYTES,
        };
        if !well_formed {
            return Err((buf, BlkError::BadRequest));
        }
        let kind = match op {
            Op::Read => T_IN,
            Op::Write => T_OUT,
            Op::Flush => T_FLUSH,
            Op::GetId => T_GET_ID,
        };
        let mut header = Box::new([0u8; 16]);
        header[..4].copy_from_slice(&kind.to_le_bytes());
        header[8..].copy_from_slice(&sector.to_le_bytes());
        let mut status = Box::new([0xffu8; 1]);
        // SAFETY: the header, data and status buffers are heap allocations that are moved
        // (as owners, not as memory) into `slots` below and stay there, untouched, until
        // `complete` pops this token with the very same buffers.
        let token = unsafe {
            match op {
                Op::Write => self
                    .queue
                    .add(&[&header[..], &buf[..]], &mut [&mut status[..]]),
                Op::Flush => self.queue.add(&[&header[..]], &mut [&mut status[..]]),
                Op::Read | Op::GetId => self
                    .queue
                    .add(&[&header[..]], &mut [&mut buf[..], &mut status[..]]),
            }
        };
        let token = match token {
            Ok(t) => usize::from(t),
            Err(virtio_drivers::Error::QueueFull) => return Err((buf, BlkError::QueueFull)),
            Err(e) => return Err((buf, BlkError::Queue(e))),
        };
        if self.queue.should_notify() {
            self.transport.notify(0);
        }
        match self.slots.get_mut(token) {
            Some(slot @ None) => {
                *slot = Some(Slot {
                    tag,
                    op,
                    header,
                    status,
                    buf,
                });
                self.in_flight += 1;
                Ok(())
            }
            // The queue never hands out a token twice or out of range; if it did, the
            // buffers must not be freed while the device may still write them.
            _ => {
                core::mem::forget((header, status, buf));
                Err((
                    Vec::new(),
                    BlkError::Queue(virtio_drivers::Error::WrongToken),
                ))
            }
        }
    }

    /// The next finished request, if any.
    pub fn complete(&mut self) -> Option<Completed> {
        let token = self.queue.peek_used()?;
        // A used entry we never submitted: the device is broken. Nothing to return it to;
        // the layer above sees the disk stall and reports it.
        let mut slot = self.slots.get_mut(usize::from(token))?.take()?;
        self.in_flight -= 1;
        // SAFETY: `slot` holds exactly the buffers `submit` added under this token, passed
        // in the same order and direction.
        let popped = unsafe {
            match slot.op {
                Op::Write => self.queue.pop_used(
                    token,
                    &[&slot.header[..], &slot.buf[..]],
                    &mut [&mut slot.status[..]],
                ),
                Op::Flush => {
                    self.queue
                        .pop_used(token, &[&slot.header[..]], &mut [&mut slot.status[..]])
                }
                Op::Read | Op::GetId => self.queue.pop_used(
                    token,
                    &[&slot.header[..]],
                    &mut [&mut slot.buf[..], &mut slot.status[..]],
                ),
            }
        };
        if let Err(e) = popped {
            // The descriptors were not released, so the device may still use these
            // buffers: they must never be freed or handed out again.
            let (tag, op) = (slot.tag, slot.op);
            core::mem::forget(slot);
            return Some(Completed {
                tag,
                op,
                buf: Vec::new(),
                result: Err(BlkError::Queue(e)),
            });
        }
        let result = match (popped, slot.status[0]) {
            (Err(e), _) => Err(BlkError::Queue(e)),
            (Ok(_), S_OK) => Ok(()),
            (Ok(_), S_IOERR) => Err(BlkError::Io),
            (Ok(_), S_UNSUPP) => Err(BlkError::Unsupported),
            (Ok(_), other) => Err(BlkError::BadStatus(other)),
        };
        Some(Completed {
            tag: slot.tag,
            op: slot.op,
            buf: slot.buf,
            result,
        })
    }

    /// The device's serial number (at most 20 bytes; empty if it has none). For set-up
    /// only: it waits for the answer by watching the used ring, so nothing else may be in
    /// flight. `Timeout` means the device never answered: its queue still holds the
    /// request, so the device must not be used (nor dropped: it owns DMA memory).
    pub fn serial(&mut self) -> Result<String, BlkError> {
        if self.in_flight > 0 {
            return Err(BlkError::BadRequest);
        }
        self.submit(u64::MAX, Op::GetId, 0, alloc::vec![0; ID_BYTES])
            .map_err(|(_, e)| e)?;
        // QEMU answers from its own thread within microseconds.
        for _ in 0..50_000_000u32 {
            if let Some(c) = self.complete() {
                let id = c.buf;
                let len = id.iter().position(|&b| b == 0).unwrap_or(id.len());
                return Ok(match c.result {
                    Ok(()) => String::from_utf8_lossy(&id[..len]).into_owned(),
                    // A device without an ID string (UNSUPP) is fine.
                    Err(_) => String::new(),
                });
            }
            core::hint::spin_loop();
        }
        Err(BlkError::Timeout)
    }
}
