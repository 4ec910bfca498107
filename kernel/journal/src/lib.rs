//! The runtime's journal: what must outlive a restart or a power cut — usage for
//! billing, later the audit log — as records in a ring of 512-byte disk sectors (the
//! appliance disk's `plinth-state` partition).
//!
//! A record starts on a sector boundary with a 24-byte header — magic `PLJ1`, kind
//! (`u16`), reserved (`u16`, zero), sequence number (`u64`), payload length (`u32`),
//! CRC-32 of the header's first 20 bytes and the payload (`u32`), all little-endian —
//! followed by the payload, padded with zeros to whole sectors. Records follow one
//! another in sequence order; one that would run past the ring's end starts again at
//! sector 0. The writer writes a record's sectors and then flushes: a record whose
//! flush completed is on the disk.
//!
//! [`recover`] reads a whole ring: every sector that starts a record whose checksum
//! holds is a candidate; the newest is the one with the highest sequence number, and the
//! journal is the run of records with consecutive numbers that ends there, oldest first.
//! A record torn by a power cut fails its checksum and is not one — the records before
//! it stand. Older records are overwritten as the ring comes round.
//!
//! Owns the format and recovery. It must not touch a disk: the runtime reads the ring,
//! writes what [`Journal::append`] places and flushes. [`usage`] is the usage record.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

pub mod usage;

#[cfg(test)]
mod tests;

/// Bytes of a sector.
pub const SECTOR: usize = 512;
/// Bytes of a record's header.
pub const HEADER: usize = 24;
/// A record's first bytes.
pub const MAGIC: [u8; 4] = *b"PLJ1";
/// The largest payload a record may carry (a ring holds many).
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// Sequence numbers stop short of this: a journal never gets there (a record a
/// microsecond for 290 000 years), so a record that claims it is not one — it would sort
/// above every record written after it.
pub const MAX_SEQ: u64 = 1 << 63;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Every partition's usage at one moment ([`usage`]).
    Usage,
    /// A kind this version does not know (from a newer runtime): kept, not read.
    Other(u16),
}

impl Kind {
    fn code(self) -> u16 {
        match self {
            Kind::Usage => 1,
            Kind::Other(c) => c,
        }
    }

    fn from_code(c: u16) -> Kind {
        match c {
            1 => Kind::Usage,
            c => Kind::Other(c),
        }
    }
}

/// A record found by [`recover`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    pub seq: u64,
    /// The sector it starts at.
    pub at: u64,
    pub payload: Vec<u8>,
}

/// Why a record cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// Its payload is over [`MAX_PAYLOAD`].
    TooLarge,
    /// It does not fit in the ring at all.
    RingTooSmall,
    /// The sequence numbers are used up ([`MAX_SEQ`]).
    Exhausted,
}

/// Where the next record goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Journal {
    sectors: u64,
    next_at: u64,
    next_seq: u64,
}

/// Sectors a record of `len` payload bytes takes.
pub fn sectors_for(len: usize) -> u64 {
    (HEADER + len).div_ceil(SECTOR) as u64
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..20]);
    h.update(payload);
    h.finalize()
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

/// The record starting at sector `at` of `ring`, if one does and its checksum holds.
fn record_at(ring: &[u8], at: u64) -> Option<Record> {
    let start = usize::try_from(at).ok()?.checked_mul(SECTOR)?;
    let h = ring.get(start..start.checked_add(HEADER)?)?;
    if h[..4] != MAGIC || u16_at(h, 6) != 0 || u64_at(h, 8) >= MAX_SEQ {
        return None;
    }
    let len = usize::try_from(u32_at(h, 16)).ok()?;
    if len > MAX_PAYLOAD {
        return None;
    }
    let payload = ring.get(start + HEADER..(start + HEADER).checked_add(len)?)?;
    if checksum(h, payload) != u32_at(h, 20) {
        return None;
    }
    Some(Record {
        kind: Kind::from_code(u16_at(h, 4)),
        seq: u64_at(h, 8),
        at,
        payload: payload.to_vec(),
    })
}

/// Reads a ring (whole sectors; a partial last sector is not part of it): the journal's
/// records, oldest first, and where the next goes.
pub fn recover(ring: &[u8]) -> (Journal, Vec<Record>) {
    let sectors = (ring.len() / SECTOR) as u64;
    let ring = &ring[..ring.len() - ring.len() % SECTOR];
    let mut found: Vec<Record> = Vec::new();
    let mut at = 0;
    while at < sectors {
        match record_at(ring, at) {
            Some(r) => {
                at += sectors_for(r.payload.len());
                found.push(r);
            }
            None => at += 1,
        }
    }
    let Some(newest) = found.iter().map(|r| r.seq).max() else {
        return (
            Journal {
                sectors,
                next_at: 0,
                next_seq: 1,
            },
            Vec::new(),
        );
    };
    found.sort_by_key(|r| r.seq);
    // The run of consecutive numbers that ends at the newest; anything older than a gap
    // is from a ring that came round since (or a torn record's predecessors' past).
    let mut first = found.len() - 1;
    while first > 0 && found[first - 1].seq.checked_add(1) == Some(found[first].seq) {
        first -= 1;
    }
    let live = found.split_off(first);
    let last = &live[live.len() - 1];
    let journal = Journal {
        sectors,
        next_at: (last.at + sectors_for(last.payload.len())) % sectors.max(1),
        next_seq: newest + 1,
    };
    (journal, live)
}

impl Journal {
    /// An empty journal over a ring of `sectors` (as [`recover`] gives for a blank one).
    pub fn new(sectors: u64) -> Journal {
        Journal {
            sectors,
            next_at: 0,
            next_seq: 1,
        }
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The next record, encoded: the sector it starts at and its bytes (whole sectors).
    /// The caller writes them there and flushes; the journal has moved on either way (a
    /// record that never reaches the disk is a gap recovery ends the journal at, unless a
    /// later one overwrites its place).
    pub fn append(&mut self, kind: Kind, payload: &[u8]) -> Result<(u64, Vec<u8>), AppendError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(AppendError::TooLarge);
        }
        let n = sectors_for(payload.len());
        if n > self.sectors {
            return Err(AppendError::RingTooSmall);
        }
        if self.next_seq >= MAX_SEQ {
            return Err(AppendError::Exhausted);
        }
        if self.next_at + n > self.sectors {
            self.next_at = 0;
        }
        let mut bytes = alloc::vec![0u8; n as usize * SECTOR];
        bytes[..4].copy_from_slice(&MAGIC);
        bytes[4..6].copy_from_slice(&kind.code().to_le_bytes());
        bytes[8..16].copy_from_slice(&self.next_seq.to_le_bytes());
        bytes[16..20].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes[HEADER..HEADER + payload.len()].copy_from_slice(payload);
        let crc = checksum(&bytes[..HEADER], payload);
        bytes[20..24].copy_from_slice(&crc.to_le_bytes());
        let at = self.next_at;
        self.next_at = (at + n) % self.sectors;
        self.next_seq += 1;
        Ok((at, bytes))
    }
}
