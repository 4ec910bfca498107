//! The block layer: every disk's request queue, its dispatch to the device, completion on
//! the device interrupt, and the per-disk counters.
//!
//! Requests are queued per disk in arrival order and handed to the device as long as its
//! queue has room, so several are in flight at once; their completions are collected when
//! the device interrupts ([`service`], from the idle loop or from a caller waiting in
//! [`wait`], which halts the CPU between interrupts rather than polling). A flush is a
//! barrier: it is issued once everything queued before it has completed, and nothing
//! queued after it starts before it is done — so "acknowledged after flush" means durable.
//! Flushes complete by interrupt like everything else.
//!
//! It owns the disks once `drivers` found them. It must not decide what the disks hold
//! (partitions, the catalog) and touches the hardware only through `drivers::virtio::blk`.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use spin::Mutex;

use crate::clock;
pub use crate::drivers::virtio::blk::SECTOR_SIZE;
use crate::drivers::virtio::blk::{BlkDevice, BlkError, Op};
use crate::drivers::{self, BlockDevice};

/// Request counters of one disk, for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskCounters {
    pub reads: u64,
    pub read_bytes: u64,
    pub writes: u64,
    pub written_bytes: u64,
    pub flushes: u64,
    pub errors: u64,
}

/// Why a disk request failed.
#[derive(Debug)]
pub enum DiskError {
    NoSuchDisk,
    /// Sector range outside the disk.
    OutOfRange,
    /// A buffer that is empty or not a whole number of sectors.
    BadLength,
    ReadOnly,
    Device(BlkError),
    /// The disk did not complete the request within [`WAIT_LIMIT_NS`].
    Timeout,
}

/// Longest [`wait`] waits for one request: far beyond any healthy device (a flush after
/// gigabytes of writes takes seconds), short enough that a hung device is reported
/// instead of freezing the console and the API for good.
pub const WAIT_LIMIT_NS: u64 = 60_000_000_000;

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskError::NoSuchDisk => f.write_str("no such disk"),
            DiskError::OutOfRange => f.write_str("sectors outside the disk"),
            DiskError::BadLength => f.write_str("length is not a whole number of sectors"),
            DiskError::ReadOnly => f.write_str("disk is read-only"),
            DiskError::Device(e) => write!(f, "device error: {e}"),
            DiskError::Timeout => f.write_str("the disk did not complete the request in 60 s"),
        }
    }
}

/// A disk as found at boot.
pub struct Disk {
    pub name: String,
    /// PCI address (`00:01.0`) or `mmio@BASE`.
    pub location: String,
    pub sectors: u64,
    pub serial: String,
    pub read_only: bool,
    pub counters: DiskCounters,
    dev: BlkDevice,
    queue: VecDeque<Queued>,
    /// A flush is with the device: nothing else starts until it completes.
    barrier: bool,
    done: BTreeMap<u64, Result<Vec<u8>, DiskError>>,
    /// Requests whose waiter gave up: their completions are dropped on arrival.
    abandoned: BTreeSet<u64>,
    next_tag: u64,
}

enum Queued {
    Io {
        tag: u64,
        op: Op,
        sector: u64,
        buf: Vec<u8>,
    },
    Flush {
        tag: u64,
    },
}

/// A submitted request, to [`poll`] or [`wait`] for. Not `Copy`: its outcome is
/// delivered once.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct Ticket {
    disk: usize,
    tag: u64,
}

static DISKS: Mutex<Vec<Disk>> = Mutex::new(Vec::new());

impl Disk {
    fn new(found: BlockDevice) -> Disk {
        let BlockDevice {
            name,
            location,
            serial,
            dev,
        } = found;
        Disk {
            sectors: dev.capacity(),
            serial,
            read_only: dev.readonly(),
            name,
            location,
            counters: DiskCounters::default(),
            dev,
            queue: VecDeque::new(),
            barrier: false,
            done: BTreeMap::new(),
            abandoned: BTreeSet::new(),
            next_tag: 0,
        }
    }

    fn enqueue(&mut self, make: impl FnOnce(u64) -> Queued) -> u64 {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.queue.push_back(make(tag));
        tag
    }

    /// Collects completions and starts what may start; true if anything moved.
    fn service(&mut self) -> bool {
        let mut moved = false;
        while let Some(c) = self.dev.complete() {
            moved = true;
            let bytes = c.buf.len() as u64;
            let outcome = match (c.result, c.op) {
                (Ok(()), Op::Read) => {
                    self.counters.reads += 1;
                    self.counters.read_bytes += bytes;
                    Ok(c.buf)
                }
                (Ok(()), Op::Write) => {
                    self.counters.writes += 1;
                    self.counters.written_bytes += bytes;
                    Ok(c.buf)
                }
                (Ok(()), Op::Flush | Op::GetId) => {
                    self.counters.flushes += u64::from(c.op == Op::Flush);
                    Ok(c.buf)
                }
                (Err(e), op) => {
                    self.counters.errors += 1;
                    log::warn!("{}: {op:?} request failed: {e}", self.name);
                    Err(DiskError::Device(e))
                }
            };
            if c.op == Op::Flush {
                self.barrier = false;
            }
            if !self.abandoned.remove(&c.tag) {
                self.done.insert(c.tag, outcome);
            }
        }
        while !self.barrier {
            let Some(next) = self.queue.pop_front() else {
                break;
            };
            let (tag, op, sector, buf) = match next {
                // Without a volatile cache (no FLUSH feature) completed writes are durable.
                Queued::Flush { tag } if !self.dev.has_flush() && self.dev.in_flight() == 0 => {
                    self.counters.flushes += 1;
                    self.done.insert(tag, Ok(Vec::new()));
                    moved = true;
                    continue;
                }
                Queued::Flush { tag } if self.dev.in_flight() == 0 => {
                    self.barrier = true;
                    (tag, Op::Flush, 0, Vec::new())
                }
                flush @ Queued::Flush { .. } => {
                    // A barrier: wait for everything before it.
                    self.queue.push_front(flush);
                    break;
                }
                Queued::Io {
                    tag,
                    op,
                    sector,
                    buf,
                } => (tag, op, sector, buf),
            };
            if self.dev.in_flight() == self.dev.depth() {
                self.requeue(tag, op, sector, buf);
                break;
            }
            match self.dev.submit(tag, op, sector, buf) {
                Ok(()) => moved = true,
                Err((buf, BlkError::QueueFull)) if self.dev.in_flight() > 0 => {
                    // Descriptors run out before slots without indirect descriptors;
                    // retry when something completes.
                    self.barrier &= op != Op::Flush;
                    self.requeue(tag, op, sector, buf);
                    break;
                }
                Err((_, e)) => {
                    self.barrier &= op != Op::Flush;
                    self.counters.errors += 1;
                    log::warn!("{}: {op:?} request refused: {e}", self.name);
                    self.done.insert(tag, Err(DiskError::Device(e)));
                    moved = true;
                }
            }
        }
        moved
    }

    /// Puts a request that could not start back at the head of the queue.
    fn requeue(&mut self, tag: u64, op: Op, sector: u64, buf: Vec<u8>) {
        let item = if op == Op::Flush {
            self.barrier = false;
            Queued::Flush { tag }
        } else {
            Queued::Io {
                tag,
                op,
                sector,
                buf,
            }
        };
        self.queue.push_front(item);
    }
}

/// Hands the disks found at boot to the block layer.
pub fn install(found: Vec<BlockDevice>) {
    *DISKS.lock() = found.into_iter().map(Disk::new).collect();
}

fn submit(disk: usize, op: Option<Op>, sector: u64, buf: Vec<u8>) -> Result<Ticket, DiskError> {
    let mut disks = DISKS.lock();
    let d = disks.get_mut(disk).ok_or(DiskError::NoSuchDisk)?;
    let tag = match op {
        None => d.enqueue(|tag| Queued::Flush { tag }),
        Some(op) => {
            if buf.is_empty() || !buf.len().is_multiple_of(SECTOR_SIZE) {
                return Err(DiskError::BadLength);
            }
            let count = (buf.len() / SECTOR_SIZE) as u64;
            match sector.checked_add(count) {
                Some(end) if end <= d.sectors => {}
                _ => return Err(DiskError::OutOfRange),
            }
            if op == Op::Write && d.read_only {
                return Err(DiskError::ReadOnly);
            }
            d.enqueue(|tag| Queued::Io {
                tag,
                op,
                sector,
                buf,
            })
        }
    };
    d.service();
    Ok(Ticket { disk, tag })
}

/// Size of disk `disk` in sectors.
pub fn sectors(disk: usize) -> Result<u64, DiskError> {
    Ok(DISKS.lock().get(disk).ok_or(DiskError::NoSuchDisk)?.sectors)
}

/// Queues a read of `buf.len()` bytes from `sector`; the filled buffer comes back.
pub fn read(disk: usize, sector: u64, buf: Vec<u8>) -> Result<Ticket, DiskError> {
    submit(disk, Some(Op::Read), sector, buf)
}

/// Queues a write of `buf` at `sector`; the buffer comes back when it is done.
pub fn write(disk: usize, sector: u64, buf: Vec<u8>) -> Result<Ticket, DiskError> {
    submit(disk, Some(Op::Write), sector, buf)
}

/// Queues a flush: completes once every write queued before it is durable.
pub fn flush(disk: usize) -> Result<Ticket, DiskError> {
    submit(disk, None, 0, Vec::new())
}

/// Collects completions and dispatches queued requests on every disk; the idle loop calls
/// it after a device interrupt, and [`wait`] while it waits.
pub fn service() -> bool {
    let mut moved = false;
    for d in DISKS.lock().iter_mut() {
        moved |= d.service();
    }
    moved
}

/// Gives up on `t` (its owner is gone): its completion, if it has not come yet, is
/// dropped when it does.
pub fn abandon(t: Ticket) {
    if let Some(d) = DISKS.lock().get_mut(t.disk)
        && d.done.remove(&t.tag).is_none()
    {
        d.abandoned.insert(t.tag);
    }
}

/// The outcome of `t` if it has finished.
pub fn poll(t: &Ticket) -> Option<Result<Vec<u8>, DiskError>> {
    DISKS.lock().get_mut(t.disk)?.done.remove(&t.tag)
}

/// Waits for `t`, halting between device interrupts, for at most [`WAIT_LIMIT_NS`];
/// after that the request is abandoned (its completion, if it ever comes, is dropped).
/// `serve` runs after every wake-up, so the caller's other duties (the network, while a
/// console command waits on the disk) are not starved meanwhile.
pub fn wait(t: Ticket, serve: &mut dyn FnMut()) -> Result<Vec<u8>, DiskError> {
    let deadline = clock::now_ns().saturating_add(WAIT_LIMIT_NS);
    loop {
        service();
        if let Some(r) = poll(&t) {
            return r;
        }
        if clock::now_ns() > deadline {
            if let Some(d) = DISKS.lock().get_mut(t.disk) {
                log::warn!("{}: request {} abandoned after 60 s", d.name, t.tag);
                d.abandoned.insert(t.tag);
            }
            return Err(DiskError::Timeout);
        }
        drivers::wait_for_interrupt();
        serve();
    }
}

/// Calls `f` with every disk's name, location, size in sectors and serial.
pub fn for_each_disk(mut f: impl FnMut(&str, &str, u64, &str)) {
    for d in DISKS.lock().iter() {
        f(&d.name, &d.location, d.sectors, &d.serial);
    }
}

/// Calls `f` with every disk's name and counters.
pub fn for_each_disk_counters(mut f: impl FnMut(&str, DiskCounters)) {
    for d in DISKS.lock().iter() {
        f(&d.name, d.counters);
    }
}

/// Runs `f` over `count` sectors of disk `index` from `first`, in chunks, reading each
/// chunk into a buffer first (`write` false) or writing the buffer `f` filled (`write`,
/// then a flush). `f` gets the chunk's byte offset on the disk and the chunk. Up to
/// `DEPTH` chunks are in flight at once; `serve` runs while waiting (see
/// [`wait`]).
pub fn with_sectors(
    index: usize,
    first: u64,
    count: u64,
    write: bool,
    mut f: impl FnMut(u64, &mut [u8]),
    serve: &mut dyn FnMut(),
) -> Result<(), DiskError> {
    const CHUNK_SECTORS: u64 = 128; // 64 KiB per request
    const DEPTH: usize = 4;
    let sectors = {
        let disks = DISKS.lock();
        disks.get(index).ok_or(DiskError::NoSuchDisk)?.sectors
    };
    let end = first.checked_add(count).ok_or(DiskError::OutOfRange)?;
    if end > sectors {
        return Err(DiskError::OutOfRange);
    }
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut in_flight: VecDeque<(u64, Ticket)> = VecDeque::new();
    let mut next = first;
    let mut failed = None;
    while failed.is_none() && (next < end || !in_flight.is_empty()) {
        // Reads complete in order of submission for the caller: `f` sees the disk in order.
        while next < end && in_flight.len() < DEPTH {
            let n = (end - next).min(CHUNK_SECTORS);
            let mut buf = spare.pop().unwrap_or_default();
            buf.resize(n as usize * SECTOR_SIZE, 0);
            let t = if write {
                f(next * SECTOR_SIZE as u64, &mut buf);
                self::write(index, next, buf)?
            } else {
                read(index, next, buf)?
            };
            in_flight.push_back((next, t));
            next += n;
        }
        if let Some((at, t)) = in_flight.pop_front() {
            match wait(t, serve) {
                Ok(mut buf) => {
                    if !write {
                        f(at * SECTOR_SIZE as u64, &mut buf);
                    }
                    spare.push(buf);
                }
                Err(e) => failed = Some(e),
            }
        }
    }
    // Outstanding requests still own their buffers; let them finish before returning.
    for (_, t) in in_flight {
        let _ = wait(t, serve);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if write {
        wait(flush(index)?, serve)?;
    }
    Ok(())
}
