//! virtio-blk glue: owns the buffers of requests in flight, so the rest of the kernel
//! sees a safe device that takes requests and hands back completions.
//!
//! Built on `virtio-drivers`' `VirtIOBlk` non-blocking calls, which are `unsafe` because
//! the device keeps using the request header, data and status buffers after the call
//! returns. Here each request's header and status live in heap boxes and its data in a
//! heap vector, parked in a slot keyed by the queue token until the device gives them
//! back, so none can move or be freed while the device owns it. Queueing, ordering and
//! flush barriers are the block layer's (`crate::block`); this only moves requests.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use virtio_drivers::device::blk::{BlkReq, BlkResp, SECTOR_SIZE, VirtIOBlk};

use super::doorbell::Doorbell;
use super::virtio_hal::VirtioHal;

/// Which way a request moves data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
}

/// A finished request: its data buffer comes back with the outcome.
pub struct Completed {
    pub tag: u64,
    pub op: Op,
    pub buf: Vec<u8>,
    pub result: Result<(), virtio_drivers::Error>,
}

struct Slot {
    tag: u64,
    op: Op,
    req: Box<BlkReq>,
    resp: Box<BlkResp>,
    buf: Vec<u8>,
}

pub struct BlkDevice {
    /// Boxed: keeps the driver's descriptor shadow off kernel stacks.
    driver: Box<VirtIOBlk<VirtioHal, Doorbell>>,
    /// Requests the device owns, by token (a descriptor index, below the queue size).
    slots: Vec<Option<Slot>>,
    in_flight: usize,
}

impl BlkDevice {
    pub fn new(transport: Doorbell) -> Result<BlkDevice, virtio_drivers::Error> {
        let driver = Box::new(VirtIOBlk::<VirtioHal, _>::new(transport)?);
        let depth = usize::from(driver.virt_queue_size());
        Ok(BlkDevice {
            driver,
            slots: (0..depth).map(|_| None).collect(),
            in_flight: 0,
        })
    }

    pub fn capacity(&self) -> u64 {
        self.driver.capacity()
    }

    pub fn readonly(&self) -> bool {
        self.driver.readonly()
    }

    /// The device's serial number (at most 20 bytes); empty if it has none. Only while
    /// nothing is in flight (it is a blocking request).
    pub fn serial(&mut self) -> String {
        let mut id = [0u8; 20];
        match self.driver.device_id(&mut id) {
            Ok(n) => String::from_utf8_lossy(&id[..n.min(20)]).into_owned(),
            Err(_) => String::new(),
        }
    }

    /// Requests the device holds.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Most requests the queue can hold at once.
    pub fn depth(&self) -> usize {
        self.slots.len()
    }

    /// Hands a request to the device: `buf` (a non-zero multiple of the sector size) is
    /// filled from, or written to, the disk from `sector`. On refusal (queue full, or a
    /// token the device should never have produced) the buffer comes back with the error.
    pub fn submit(
        &mut self,
        tag: u64,
        op: Op,
        sector: u64,
        mut buf: Vec<u8>,
    ) -> Result<(), (Vec<u8>, virtio_drivers::Error)> {
        if buf.is_empty() || !buf.len().is_multiple_of(SECTOR_SIZE) {
            return Err((buf, virtio_drivers::Error::InvalidParam));
        }
        let Ok(block) = usize::try_from(sector) else {
            return Err((buf, virtio_drivers::Error::InvalidParam));
        };
        let mut req = Box::new(BlkReq::default());
        let mut resp = Box::new(BlkResp::default());
        // SAFETY: the header, data and status buffers are heap allocations that are moved
        // (as owners, not as memory) into `slots` below and stay there, untouched, until
        // `complete` pops this token and passes the very same buffers back.
        let token = unsafe {
            match op {
                Op::Read => self
                    .driver
                    .read_blocks_nb(block, &mut req, &mut buf, &mut resp),
                Op::Write => self
                    .driver
                    .write_blocks_nb(block, &mut req, &buf, &mut resp),
            }
        };
        let token = match token {
            Ok(t) => usize::from(t),
            Err(e) => return Err((buf, e)),
        };
        match self.slots.get_mut(token) {
            Some(slot @ None) => {
                *slot = Some(Slot {
                    tag,
                    op,
                    req,
                    resp,
                    buf,
                });
                self.in_flight += 1;
                Ok(())
            }
            // The queue never hands out a token twice or out of range; if it did, the
            // buffers must not be freed while the device may still write them.
            _ => {
                core::mem::forget((req, resp, buf));
                Err((Vec::new(), virtio_drivers::Error::WrongToken))
            }
        }
    }

    /// The next finished request, if any.
    pub fn complete(&mut self) -> Option<Completed> {
        let token = self.driver.peek_used()?;
        let Some(mut slot) = self
            .slots
            .get_mut(usize::from(token))
            .and_then(Option::take)
        else {
            // A used entry we never submitted: the device is broken. Nothing to return it
            // to; the layer above sees the disk stall and reports it.
            return None;
        };
        self.in_flight -= 1;
        // SAFETY: `slot` holds exactly the buffers `submit` passed with this token.
        let result = unsafe {
            match slot.op {
                Op::Read => self.driver.complete_read_blocks(
                    token,
                    &slot.req,
                    &mut slot.buf,
                    &mut slot.resp,
                ),
                Op::Write => {
                    self.driver
                        .complete_write_blocks(token, &slot.req, &slot.buf, &mut slot.resp)
                }
            }
        };
        Some(Completed {
            tag: slot.tag,
            op: slot.op,
            buf: slot.buf,
            result,
        })
    }

    /// Asks the device to make completed writes durable. Synchronous (virtio-drivers
    /// 0.13 has no non-blocking flush), so only while nothing is in flight: its wait would
    /// pop another request's completion.
    pub fn flush(&mut self) -> Result<(), virtio_drivers::Error> {
        if self.in_flight > 0 {
            return Err(virtio_drivers::Error::NotReady);
        }
        self.driver.flush()
    }

    /// Reads the interrupt status, which deasserts a legacy INTx line.
    pub fn ack_interrupt(&mut self) {
        let _ = self.driver.ack_interrupt();
    }
}
