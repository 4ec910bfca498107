//! System calls: the one door from a partition into the runtime.
//!
//! Decodes the number and arguments an agent left in its registers, validates every
//! pointer and length against the agent's own address space *before* anything is read or
//! written (a range must lie in the user window, be mapped for ring 3 on every page and,
//! when the runtime writes it, be writable), accounts the call, does it, and leaves the
//! result or a negative `plinth_abi::Error` in `rax`. Nothing an agent passes can make the
//! runtime panic or touch memory that is not the agent's.
//!
//! Owns the decoding and the checks. A call sees only the calling task and its own
//! partition, so it cannot reach another partition's state; it must not schedule: it
//! says what the run loop should do next (see [`Outcome`]).

use alloc::vec;
use core::sync::atomic::{AtomicU64, Ordering};

use plinth_abi::{Call, Error, HEAP_END, MAX_IO, MAX_LOG, PAGE_SIZE, SECTOR_SIZE};

use super::loader::charged_alloc;
use super::model::{Partition, PendingIo, Task};
use crate::arch::paging::{UserAccessError, UserPerms};
use crate::{block, clock, console};

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
    /// The agent ended with this code.
    Exit(i32),
}

/// System calls answered on the fast path since the run loop last collected them: the
/// accounting of calls that never leave the entry stub.
static FAST_CALLS: AtomicU64 = AtomicU64::new(0);

/// The fast path (registered with `arch::user::init`): calls that need no agent memory
/// and no runtime state but atomics. Runs with interrupts off on the kernel stack; `None`
/// sends the call down the full path.
pub fn fast(number: u64) -> Option<u64> {
    let value = match Call::from_number(number)? {
        Call::Null => 0,
        Call::Clock => clock::now_ns(),
        _ => return None,
    };
    FAST_CALLS.fetch_add(1, Ordering::Relaxed);
    Some(value)
}

/// Fast-path calls since the last collection (the run loop charges them to the task
/// that ran meanwhile).
pub fn take_fast_calls() -> u64 {
    FAST_CALLS.swap(0, Ordering::Relaxed)
}

/// Longest file name `ConfigRead` accepts, bytes.
const MAX_NAME: u64 = 256;

/// Handles the system call `task` (of partition `part`) just made: the result goes to
/// its `rax`, and the outcome tells the run loop what to do next.
pub fn dispatch(task: &mut Task, part: &mut Partition) -> Outcome {
    let f = &task.ctx.frame;
    let (number, a) = (f.rax, [f.rdi, f.rsi, f.rdx, f.r10, f.r8]);
    let mut outcome = Outcome::Continue;
    let result = match Call::from_number(number) {
        None => Err(Error::UnknownCall),
        Some(call) => call_one(task, part, call, a, &mut outcome),
    };
    task.ctx.frame.rax = match result {
        Ok(v) => v,
        Err(e) => e.code(),
    };
    outcome
}

fn call_one(
    task: &mut Task,
    part: &mut Partition,
    call: Call,
    a: [u64; 5],
    outcome: &mut Outcome,
) -> Result<u64, Error> {
    let si = task.slot;
    match call {
        Call::Null => Ok(0),
        Call::Log => {
            let text = copy_in::<{ MAX_LOG as usize }>(task, a[0], a[1])?;
            let text = core::str::from_utf8(&text).map_err(|_| Error::NotUtf8)?;
            // Held for the UART, control characters escaped (see `console::agent_line`).
            console::agent_line(&part.name, &part.agents[si].image.name, text.trim_end());
            Ok(0)
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
            Ok(slot.heartbeats)
        }
        Call::ConfigRead => {
            let name = copy_in::<{ MAX_NAME as usize }>(task, a[0], a[1])?;
            let name = core::str::from_utf8(&name).map_err(|_| Error::NotUtf8)?;
            let len = checked_len(a[3], MAX_IO)?;
            task.space.check(a[2], len, true).map_err(bad_pointer)?;
            let data = part.agents[si].image.file(name).ok_or(Error::NotFound)?;
            let offset = usize::try_from(a[4]).unwrap_or(usize::MAX).min(data.len());
            let n = len.min(data.len() - offset);
            task.space
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
            task.space.check(a[1], len, !write).map_err(bad_pointer)?;
            let lba = disk.first_lba + sector;
            let ticket = if write {
                let mut buf = vec![0u8; len];
                task.space.read(a[1], &mut buf).map_err(bad_pointer)?;
                block::write(disk.disk, lba, buf)
            } else {
                block::read(disk.disk, lba, vec![0u8; len])
            }
            .map_err(|_| Error::Io)?;
            *outcome = Outcome::Block(PendingIo {
                ticket,
                read_into: (!write).then_some(a[1]),
                result: len as u64,
            });
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
            let start = task.heap_next;
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
            let mut alloc = charged_alloc(part);
            let perms = UserPerms {
                write: true,
                execute: false,
            };
            let mut va = start;
            while va < end {
                if task.space.map_new(va, perms, &mut alloc).is_err() {
                    // Keep what was mapped (it is charged and stays the agent's).
                    task.heap_next = va;
                    return Err(Error::QuotaExceeded);
                }
                va += PAGE_SIZE;
            }
            task.heap_next = end;
            Ok(start)
        }
    }
}

/// `len` bytes of the agent's memory at `va`, at most `N` (else `BadLength`). Only the
/// bytes asked for are touched: zeroing a whole buffer of the largest size first was a
/// measurable part of a short call.
fn copy_in<const N: usize>(task: &Task, va: u64, len: u64) -> Result<heapless::Vec<u8, N>, Error> {
    let len = checked_len(len, N as u64)?;
    let mut buf = heapless::Vec::new();
    // `len` <= N, so this cannot fail.
    let _ = buf.resize(len, 0);
    task.space.read(va, &mut buf).map_err(bad_pointer)?;
    Ok(buf)
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
