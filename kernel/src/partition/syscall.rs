//! System calls: the one door from a partition into the runtime.
//!
//! Decodes the number and arguments an agent left in its registers, validates every
//! pointer and length against the agent's own address space *before* anything is read or
//! written (a range must lie in the user window, be mapped for ring 3 on every page and,
//! when the runtime writes it, be writable), accounts the call, does it, and leaves the
//! result or a negative `plinth_abi::Error` in `rax`. Nothing an agent passes can make the
//! runtime panic or touch memory that is not the agent's.
//!
//! Two ways in: [`fast`] answers every call that does not give up the CPU while the
//! agent is still being entered (no frame built, the run loop not left: see
//! `arch::user::syscall_entry`); [`dispatch`] takes the others — sleep, yield, exit and
//! disk I/O — once the agent has left ring 3, and says what the run loop should do.
//! Both run the same [`call_one`] and its checks.
//!
//! Owns the decoding and the checks. A call sees only its [`Caller`]: the calling agent's
//! memory and heap mark and its own partition, so it cannot reach another partition's
//! state; it must not schedule: it says what the run loop should do next ([`Outcome`]).

use alloc::vec;

use plinth_abi::{
    Call, Error, HEAP_END, MAX_FRAME, MAX_IO, MAX_LARGE_FRAME, MAX_LOG, MIN_FRAME, NET_OFFLOAD_RX,
    NET_OFFLOAD_TX, NET_RX_CSUM_OK, NET_TX_CSUM_PARTIAL, NET_TX_SHIFT, PAGE_SIZE, SECTOR_SIZE,
};

use super::disk::Offered;
use super::loader::charged_alloc;
use super::model::{DiskRequest, PartNic, Partition, PendingIo, Task};
use crate::arch::paging::{AddressSpace, UserAccessError, UserPerms};
use crate::console::{self, AgentText, Printable};
use crate::net::switch::{self, PortError};
use crate::{block, clock};
use plinth_offload::receive::{RxCsum, RxOffload};

/// What a call may touch.
pub struct Caller<'a> {
    /// The calling agent's address space.
    pub space: &'a mut AddressSpace,
    /// Where the agent's heap ends (`MemGrow` moves it).
    pub heap_next: &'a mut u64,
    /// Frames charged for the agent (`MemGrow` adds to it).
    pub frames: &'a mut u64,
    /// The agent's partition, and its slot there.
    pub part: &'a mut Partition,
    pub slot: usize,
}

/// What the run loop does after a call.
pub enum Outcome {
    /// Return to the agent.
    Continue,
    /// The agent gives up the CPU: pick again.
    Yield,
    /// The agent sleeps until this time: pick again.
    Sleep { until_ns: u64 },
    /// The agent waits for this disk request: block it until the request completes.
    Block(PendingIo),
    /// The agent's disk request waits in its partition's gate for a budget: block it;
    /// the run loop submits the request when its tokens come, then it is as `Block`.
    Throttled,
    /// The agent waits until a NIC in `rx` has a frame or one in `tx` has room (masks of
    /// NIC indices), or `until_ns`.
    NetWait { rx: u64, tx: u64, until_ns: u64 },
    /// The agent's `mem_grow` left its partition above the high-water mark: it sleeps
    /// until `sleep_until` (`None`: the penalty was negligible), and the event is raised
    /// if this grow `crossed` the mark.
    MemoryHigh {
        sleep_until: Option<u64>,
        crossed: bool,
    },
    /// The agent ended with this code.
    Exit(i32),
}

/// Whether `call` gives up the CPU (it needs the run loop: to pick another task, to block
/// on a disk, to end), so the fast path leaves it to [`dispatch`].
fn gives_up_cpu(call: Call) -> bool {
    matches!(
        call,
        Call::Sleep
            | Call::Yield
            | Call::Exit
            | Call::DiskRead
            | Call::DiskWrite
            | Call::DiskFlush
            | Call::NetWait
    )
}

/// The fast path (see `arch::user::FastCall`): answers call `number` with arguments `a`
/// — its result or error code for `rax` — unless it gives up the CPU (`None`: the full
/// path, [`dispatch`]). Runs on the kernel stack with interrupts off.
pub fn fast(caller: &mut Caller<'_>, number: u64, a: [u64; 5]) -> Option<u64> {
    let Some(call) = Call::from_number(number) else {
        return Some(Error::UnknownCall.code());
    };
    if gives_up_cpu(call) || (call == Call::MemGrow && above_high_after(caller.part, a[0])) {
        // Past the high-water mark a grow may have to sleep: the full path decides.
        return None;
    }
    let mut outcome = Outcome::Continue;
    let result = call_one(caller, call, a, &mut outcome);
    debug_assert!(matches!(outcome, Outcome::Continue));
    Some(result.unwrap_or_else(Error::code))
}

/// Longest file name `ConfigRead` accepts, bytes.
const MAX_NAME: u64 = 256;

/// The full path: handles the system call `task` (of partition `part`) just made and
/// the fast path left: the result goes to its `rax`, and the outcome tells the run loop
/// what to do next.
pub fn dispatch(task: &mut Task, part: &mut Partition) -> Outcome {
    let f = &task.ctx.frame;
    let (number, a) = (f.rax, [f.rdi, f.rsi, f.rdx, f.r10, f.r8]);
    let mut outcome = Outcome::Continue;
    let mut caller = Caller {
        space: &mut task.space,
        heap_next: &mut task.heap_next,
        frames: &mut task.frames,
        part,
        slot: task.slot,
    };
    let call = Call::from_number(number);
    let result = match call {
        None => Err(Error::UnknownCall),
        Some(call) => call_one(&mut caller, call, a, &mut outcome),
    };
    if call == Some(Call::MemGrow) && result.is_ok() {
        outcome = memory_high(caller.part, a[0].div_ceil(PAGE_SIZE));
    }
    task.ctx.frame.rax = result.unwrap_or_else(Error::code);
    outcome
}

/// Whether growing by `bytes` would leave `part` above its high-water mark.
fn above_high_after(part: &Partition, bytes: u64) -> bool {
    part.memory_mark().is_some_and(|high| {
        let pages = part.frames.saturating_add(bytes.div_ceil(PAGE_SIZE));
        pages.saturating_mul(PAGE_SIZE) > high
    })
}

/// The memory governor after a grow of `charged` pages: above the high-water mark the
/// caller sleeps for Linux's `memory.high` penalty (`plinth_governor::memory`), and the
/// first grow past the mark raises the event.
fn memory_high(part: &mut Partition, charged: u64) -> Outcome {
    let Some(high) = part.memory_mark() else {
        return Outcome::Continue;
    };
    let high_pages = high / PAGE_SIZE;
    if part.frames <= high_pages {
        part.above_high = false;
        return Outcome::Continue;
    }
    let crossed = !part.above_high;
    part.above_high = true;
    let delay = plinth_governor::memory::high_delay_ns(part.frames, high_pages, charged);
    Outcome::MemoryHigh {
        sleep_until: (delay > 0).then(|| clock::now_ns().saturating_add(delay)),
        crossed,
    }
}

/// Does `call`: checks every argument, then acts; what the run loop must do next goes to
/// `outcome` (only calls that give up the CPU change it).
fn call_one(
    caller: &mut Caller<'_>,
    call: Call,
    a: [u64; 5],
    outcome: &mut Outcome,
) -> Result<u64, Error> {
    let si = caller.slot;
    let Caller {
        space,
        heap_next,
        frames,
        part,
        ..
    } = caller;
    match call {
        Call::Null => Ok(0),
        Call::Log => {
            let len = checked_len(a[1], MAX_LOG)?;
            let (partition, agent) = (&part.name, &part.agents[si].image.name);
            // Held for the UART, control characters escaped (see `console::agent_line`).
            space
                .with_bytes(a[0], len, |bytes| {
                    let text = match Printable::new(bytes) {
                        Some(p) => AgentText::Printable(p),
                        None => AgentText::Text(
                            core::str::from_utf8(bytes).map_err(|_| Error::NotUtf8)?,
                        ),
                    };
                    console::agent_line(partition, agent, text);
                    Ok(0)
                })
                .map_err(bad_pointer)?
        }
        Call::Clock => Ok(clock::now_ns()),
        Call::Sleep => {
            *outcome = Outcome::Sleep {
                until_ns: clock::now_ns().saturating_add(a[0]),
            };
            Ok(0)
        }
        Call::Yield => {
            *outcome = Outcome::Yield;
            Ok(0)
        }
        Call::Exit => {
            // The code is an i32 in the low half; the rest is ignored, as by Linux.
            *outcome = Outcome::Exit(a[0] as u32 as i32);
            Ok(0)
        }
        Call::Heartbeat => {
            let slot = &mut part.agents[si];
            slot.heartbeats += 1;
            slot.last_heartbeat_ns = Some(clock::now_ns());
            slot.held_ns = 0;
            Ok(slot.heartbeats)
        }
        Call::ConfigRead => {
            let name_len = checked_len(a[1], MAX_NAME)?;
            let image = &part.agents[si].image;
            // Found by its bytes; whether a name that matched nothing was UTF-8 is asked
            // only then (which error to give).
            let data = space
                .with_bytes(a[0], name_len, |name| match image.file_named(name) {
                    Some(data) => Ok(data),
                    None if core::str::from_utf8(name).is_err() => Err(Error::NotUtf8),
                    None => Err(Error::NotFound),
                })
                .map_err(bad_pointer)?;
            // The same order of refusals as always: the name's pointer, its encoding,
            // the buffer, then whether the file exists.
            if let Err(Error::NotUtf8) = data {
                return Err(Error::NotUtf8);
            }
            let len = checked_len(a[3], MAX_IO)?;
            space.check(a[2], len, true).map_err(bad_pointer)?;
            let data = data?;
            let offset = usize::try_from(a[4]).unwrap_or(usize::MAX).min(data.len());
            let n = len.min(data.len() - offset);
            space
                .write(a[2], &data[offset..offset + n], false)
                .map_err(bad_pointer)?;
            Ok(n as u64)
        }
        Call::DiskSectors => Ok(part.disk.ok_or(Error::NoDisk)?.sectors),
        Call::DiskRead | Call::DiskWrite => {
            let disk = part.disk.ok_or(Error::NoDisk)?;
            let len = checked_len(a[2], MAX_IO)?;
            if len == 0 || !(len as u64).is_multiple_of(SECTOR_SIZE) {
                return Err(Error::BadLength);
            }
            let count = len as u64 / SECTOR_SIZE;
            let sector = a[0];
            if sector
                .checked_add(count)
                .is_none_or(|end| end > disk.sectors)
            {
                return Err(Error::OutOfRange);
            }
            let write = call == Call::DiskWrite;
            // The agent's buffer is checked before the disk is touched.
            space.check(a[1], len, !write).map_err(bad_pointer)?;
            let data = if write {
                let mut buf = vec![0u8; len];
                space.read(a[1], &mut buf).map_err(bad_pointer)?;
                Some(buf)
            } else {
                None
            };
            let req = DiskRequest {
                extent: disk,
                lba: disk.first_lba + sector,
                data,
                read: (!write).then_some((len, a[1])),
                result: len as u64,
            };
            // Through the disk governor: at once, or once the budgets allow.
            *outcome = match super::disk::offer(part, si, req, clock::now_ns()) {
                Offered::Submitted(io) => Outcome::Block(io),
                Offered::Throttled => Outcome::Throttled,
                Offered::Failed => return Err(Error::Io),
            };
            Ok(0)
        }
        Call::DiskFlush => {
            let disk = part.disk.ok_or(Error::NoDisk)?;
            let ticket = block::flush(disk.disk).map_err(|_| Error::Io)?;
            *outcome = Outcome::Block(PendingIo {
                ticket,
                read_into: None,
                result: 0,
            });
            Ok(0)
        }
        Call::MemGrow => {
            if a[0] == 0 {
                return Err(Error::Invalid);
            }
            let pages = a[0].div_ceil(PAGE_SIZE);
            // More than the whole heap region can ever hold is a bad length, not a quota
            // question (as in hostshim's host backend).
            if pages > (HEAP_END - plinth_abi::HEAP_BASE) / PAGE_SIZE {
                return Err(Error::BadLength);
            }
            let start = **heap_next;
            let end = start
                .checked_add(pages * PAGE_SIZE)
                .filter(|e| *e <= HEAP_END)
                .ok_or(Error::QuotaExceeded)?;
            // Pages plus, at worst, one new table per level per 2 MiB: refuse up front
            // rather than leave a half-grown region.
            let tables = pages.div_ceil(512) + 2;
            if part.frames.saturating_add(pages + tables) > part.quota_frames() {
                return Err(Error::QuotaExceeded);
            }
            let before = part.frames;
            let mut alloc = charged_alloc(part);
            let perms = UserPerms {
                write: true,
                execute: false,
            };
            let mut va = start;
            let mut refused = false;
            while va < end {
                if space.map_new(va, perms, &mut alloc).is_err() {
                    refused = true;
                    break;
                }
                va += PAGE_SIZE;
            }
            drop(alloc);
            // What was mapped is charged and stays the agent's, refused or not.
            **frames += part.frames.saturating_sub(before);
            **heap_next = va;
            if refused {
                return Err(Error::QuotaExceeded);
            }
            Ok(start)
        }
        Call::NetInfo => {
            let nic = nic(part, a[0])?;
            let m = nic.mac;
            Ok(u64::from_le_bytes([
                m[0], m[1], m[2], m[3], m[4], m[5], 0, 0,
            ]))
        }
        Call::NetSend => {
            let port = nic(part, a[0])?.port;
            let offload = a[3];
            let mss = (offload & 0xffff) as usize;
            if offload & !(NET_TX_CSUM_PARTIAL | 0xffff) != 0
                || (mss > 0 && offload & NET_TX_CSUM_PARTIAL == 0)
                || (offload != 0 && !switch::offload(port).1)
            {
                return Err(Error::Invalid);
            }
            let max = if mss > 0 { MAX_LARGE_FRAME } else { MAX_FRAME };
            let len = checked_len(a[2], max)?;
            if (len as u64) < MIN_FRAME {
                return Err(Error::BadLength);
            }
            let rx = RxOffload {
                csum: if offload & NET_TX_CSUM_PARTIAL != 0 {
                    RxCsum::Partial
                } else {
                    RxCsum::Unchecked
                },
                // One that fits a frame is a frame.
                gso_size: (len > MAX_FRAME as usize).then_some(mss as u16),
            };
            space
                .with_bytes(a[1], len, |frame| {
                    // A super-frame is cut by the device as it is: it must be one TCP
                    // stream's, with segments a wire takes.
                    if rx.gso_size.is_some()
                        && plinth_offload::check_super(frame, mss, MAX_FRAME as usize).is_err()
                    {
                        return Err(Error::BadLength);
                    }
                    switch::send(port, frame, rx).map_err(port_error)
                })
                .map_err(bad_pointer)??;
            Ok(0)
        }
        Call::NetRecv => {
            let port = nic(part, a[0])?.port;
            // Only a NIC with receive offload is given frames past MAX_FRAME.
            let cap = checked_len(a[2].min(MAX_LARGE_FRAME), MAX_LARGE_FRAME)?;
            // A plain frame's worth of the buffer is checked before a frame is taken; the
            // copy checks the frame's whole length before writing any of it, and a frame
            // it refuses stays queued: a bad buffer loses nothing. (Not all 64 KiB of an
            // offload buffer on every call: that walk would cost more than most frames.)
            space
                .check(a[1], cap.min(MAX_FRAME as usize), true)
                .map_err(bad_pointer)?;
            let to = a[1];
            switch::receive(port, cap, |frame, trusted| {
                let flag = if trusted { NET_RX_CSUM_OK } else { 0 };
                space
                    .write(to, frame, false)
                    .map(|()| frame.len() as u64 | flag)
            })
            .map_err(port_error)?
            .map_err(bad_pointer)
        }
        Call::NetOffload => {
            let port = nic(part, a[0])?.port;
            if a[1] & !(NET_OFFLOAD_RX | NET_OFFLOAD_TX) != 0 {
                return Err(Error::Invalid);
            }
            let (rx, tx) =
                switch::set_offload(port, a[1] & NET_OFFLOAD_RX != 0, a[1] & NET_OFFLOAD_TX != 0)
                    .map_err(port_error)?;
            Ok(if rx { NET_OFFLOAD_RX } else { 0 } | if tx { NET_OFFLOAD_TX } else { 0 })
        }
        Call::NetWait => {
            let ready = net_ready(part, a[0], a[1])?;
            if ready == 0 && a[2] > 0 {
                *outcome = Outcome::NetWait {
                    rx: a[0],
                    tx: a[1],
                    until_ns: clock::now_ns().saturating_add(a[2]),
                };
            }
            Ok(ready)
        }
    }
}

/// NIC `index` of the partition.
fn nic(part: &Partition, index: u64) -> Result<&PartNic, Error> {
    part.nics
        .iter()
        .find(|n| u64::from(n.index) == index)
        .ok_or(Error::NoNic)
}

/// Which NICs of `rx` have a frame and of `tx` have room, as `NetWait` returns them.
/// A mask naming a NIC the partition lacks is `NoNic`.
pub fn net_ready(part: &Partition, rx: u64, tx: u64) -> Result<u64, Error> {
    let known: u64 = part.nics.iter().map(|n| 1u64 << n.index).sum();
    if (rx | tx) & !known != 0 {
        return Err(Error::NoNic);
    }
    let mut ready = 0;
    for n in &part.nics {
        let bit = 1u64 << n.index;
        if (rx | tx) & bit == 0 {
            continue;
        }
        let (can_rx, can_tx) = switch::ready(n.port);
        if rx & bit != 0 && can_rx {
            ready |= bit;
        }
        if tx & bit != 0 && can_tx {
            ready |= bit << NET_TX_SHIFT;
        }
    }
    Ok(ready)
}

fn port_error(e: PortError) -> Error {
    match e {
        PortError::NoPort => Error::NoNic,
        PortError::WouldBlock => Error::WouldBlock,
        PortError::TooShort => Error::BadLength,
    }
}

/// A length that fits `max` (and so `usize`).
fn checked_len(len: u64, max: u64) -> Result<usize, Error> {
    if len > max {
        return Err(Error::BadLength);
    }
    usize::try_from(len).map_err(|_| Error::BadLength)
}

fn bad_pointer(_: UserAccessError) -> Error {
    Error::BadPointer
}
