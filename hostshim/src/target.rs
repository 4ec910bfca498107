//! The runtime backend: every call is one `syscall` (made in [`raw`], the crate's only
//! unsafe code); this module turns results into [`Error`]s and keeps `exit` from
//! returning.

#[allow(
    unsafe_code,
    reason = "raw is the unsafe boundary: the syscall instruction and the MemGrow slice"
)]
mod raw;

// memcpy, memmove, memset, memcmp and bcmp as loops: `compiler_builtins`' `rep movsq`
// costs a TCG exit per 8 bytes, and an agent's TCP stack copies every segment in and
// out of its socket buffers (see `plinth_mem`).
#[cfg(target_os = "none")]
plinth_mem::string_routines!();

use plinth_abi::{Call, Error, decode};

pub fn log(text: &str) {
    // Logging has no failure an agent could act on; the runtime counts refusals.
    let _ = raw::log(text);
}

pub fn clock_ns() -> u64 {
    raw::scalar(Call::Clock, 0)
}

pub fn sleep_ns(ns: u64) {
    raw::scalar(Call::Sleep, ns);
}

pub fn yield_now() {
    raw::scalar(Call::Yield, 0);
}

pub fn exit(code: i32) -> ! {
    // The code travels sign-extended; the runtime reads its low 32 bits.
    let code = i64::from(code) as u64;
    // Exit never returns; should a runtime ever come back, asking again is all there is.
    loop {
        raw::scalar(Call::Exit, code);
    }
}

pub fn heartbeat() -> u64 {
    raw::scalar(Call::Heartbeat, 0)
}

pub fn null() -> u64 {
    raw::scalar(Call::Null, 0)
}

pub fn ticks() -> u64 {
    raw::ticks()
}

pub fn config_read(name: &str, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
    let len = buf.len();
    decode(raw::config_read(name, offset, buf)).map(|n| bytes(n, len))
}

pub fn disk_sectors() -> Result<u64, Error> {
    decode(raw::scalar(Call::DiskSectors, 0))
}

pub fn disk_read(sector: u64, buf: &mut [u8]) -> Result<usize, Error> {
    let len = buf.len();
    decode(raw::disk_read(sector, buf)).map(|n| bytes(n, len))
}

pub fn disk_write(sector: u64, buf: &[u8]) -> Result<usize, Error> {
    decode(raw::disk_write(sector, buf)).map(|n| bytes(n, buf.len()))
}

pub fn disk_flush() -> Result<(), Error> {
    decode(raw::scalar(Call::DiskFlush, 0)).map(|_| ())
}

pub fn mem_grow(bytes: u64) -> Result<&'static mut [u8], Error> {
    raw::mem_grow(bytes)
}

pub fn net_info(nic: u8) -> Result<u64, Error> {
    decode(raw::scalar(Call::NetInfo, u64::from(nic)))
}

pub fn net_send(nic: u8, frame: &[u8], offload: u64) -> Result<(), Error> {
    decode(raw::net_send(u64::from(nic), frame, offload)).map(|_| ())
}

/// The frame's length, and whether its checksum is not to be checked
/// ([`plinth_abi::NET_RX_CSUM_OK`]).
pub fn net_recv(nic: u8, buf: &mut [u8]) -> Result<(usize, bool), Error> {
    let len = buf.len();
    decode(raw::net_recv(u64::from(nic), buf)).map(|n| {
        let ok = n & plinth_abi::NET_RX_CSUM_OK != 0;
        (bytes(n & (plinth_abi::NET_RX_CSUM_OK - 1), len), ok)
    })
}

pub fn net_offload(nic: u8, features: u64) -> Result<u64, Error> {
    decode(raw::net_offload(u64::from(nic), features))
}

pub fn net_wait(rx_mask: u8, tx_mask: u8, timeout_ns: u64) -> Result<u64, Error> {
    decode(raw::net_wait(
        u64::from(rx_mask),
        u64::from(tx_mask),
        timeout_ns,
    ))
}

pub fn syscall5(n: u64, a: [u64; 5]) -> u64 {
    raw::unchecked(n, a)
}

/// A byte count the runtime returned for a buffer of `len` bytes, as `usize`; never more
/// than `len` (the runtime promises as much; the clamp keeps callers' slicing in bounds).
fn bytes(n: u64, len: usize) -> usize {
    usize::try_from(n).map_or(len, |n| n.min(len))
}
