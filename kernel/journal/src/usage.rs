//! The usage record: every partition's usage counters at one moment, live and
//! terminated, so that metering survives a restart of the runtime.
//!
//! Payload: a version byte (1), an entry count (`u32`), then per entry the partition's
//! name and its tenant (each a `u8` length and UTF-8; a tenant of length 0 is none), a
//! state byte (0 live, 1 terminated) and the counters in [`Usage`]'s order, `u64`s and
//! one `u128`, little-endian. Decoding checks every length and byte and says what is
//! wrong; it never trusts the disk.

use alloc::string::String;
use alloc::vec::Vec;

/// One partition's usage: what metering counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ns: u64,
    pub memory_byte_ns: u128,
    pub disk_reads: u64,
    pub disk_writes: u64,
    pub disk_read_bytes: u64,
    pub disk_written_bytes: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

impl Usage {
    /// The sum of two.
    pub fn plus(&self, o: &Usage) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns.saturating_add(o.cpu_ns),
            memory_byte_ns: self.memory_byte_ns.saturating_add(o.memory_byte_ns),
            disk_reads: self.disk_reads.saturating_add(o.disk_reads),
            disk_writes: self.disk_writes.saturating_add(o.disk_writes),
            disk_read_bytes: self.disk_read_bytes.saturating_add(o.disk_read_bytes),
            disk_written_bytes: self.disk_written_bytes.saturating_add(o.disk_written_bytes),
            net_rx_bytes: self.net_rx_bytes.saturating_add(o.net_rx_bytes),
            net_tx_bytes: self.net_tx_bytes.saturating_add(o.net_tx_bytes),
        }
    }
}

/// One partition's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub partition: String,
    pub tenant: Option<String>,
    /// Terminated (its last usage), or live when the record was made.
    pub terminated: bool,
    pub usage: Usage,
}

/// Why a usage record does not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A version this runtime does not read.
    Version(u8),
    /// It ends inside an entry.
    Truncated,
    /// A name that is not UTF-8.
    BadName,
    /// A state byte other than 0 or 1.
    BadState(u8),
    /// Bytes after the last entry.
    Trailing,
}

const VERSION: u8 = 1;
/// Bytes of one entry's counters.
const COUNTERS: usize = 7 * 8 + 16;

/// The record of `entries` (names longer than 255 bytes are cut at a character).
pub fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entries.len() * (COUNTERS + 32));
    out.push(VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    let name = |out: &mut Vec<u8>, s: &str| {
        let mut end = s.len().min(255);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        out.push(end as u8);
        out.extend_from_slice(&s.as_bytes()[..end]);
    };
    for e in entries {
        name(&mut out, &e.partition);
        name(&mut out, e.tenant.as_deref().unwrap_or(""));
        out.push(u8::from(e.terminated));
        let u = &e.usage;
        out.extend_from_slice(&u.cpu_ns.to_le_bytes());
        out.extend_from_slice(&u.memory_byte_ns.to_le_bytes());
        for v in [
            u.disk_reads,
            u.disk_writes,
            u.disk_read_bytes,
            u.disk_written_bytes,
            u.net_rx_bytes,
            u.net_tx_bytes,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// A cursor over the payload that fails, rather than panics, at its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(w))
    }

    fn name(&mut self) -> Result<String, DecodeError> {
        let n = usize::from(self.u8()?);
        let bytes = self.take(n)?;
        core::str::from_utf8(bytes)
            .map(String::from)
            .map_err(|_| DecodeError::BadName)
    }
}

/// The entries of a usage record.
pub fn decode(payload: &[u8]) -> Result<Vec<Entry>, DecodeError> {
    let mut r = Reader(payload);
    match r.u8()? {
        VERSION => {}
        v => return Err(DecodeError::Version(v)),
    }
    let mut count = [0u8; 4];
    count.copy_from_slice(r.take(4)?);
    let count = u32::from_le_bytes(count) as usize;
    // Each entry is at least its counters: a count the payload cannot hold is a lie.
    if count > payload.len() / COUNTERS {
        return Err(DecodeError::Truncated);
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let partition = r.name()?;
        let tenant = Some(r.name()?).filter(|t| !t.is_empty());
        let terminated = match r.u8()? {
            0 => false,
            1 => true,
            b => return Err(DecodeError::BadState(b)),
        };
        let cpu_ns = r.u64()?;
        let mut m = [0u8; 16];
        m.copy_from_slice(r.take(16)?);
        let usage = Usage {
            cpu_ns,
            memory_byte_ns: u128::from_le_bytes(m),
            disk_reads: r.u64()?,
            disk_writes: r.u64()?,
            disk_read_bytes: r.u64()?,
            disk_written_bytes: r.u64()?,
            net_rx_bytes: r.u64()?,
            net_tx_bytes: r.u64()?,
        };
        entries.push(Entry {
            partition,
            tenant,
            terminated,
            usage,
        });
    }
    if !r.0.is_empty() {
        return Err(DecodeError::Trailing);
    }
    Ok(entries)
}
