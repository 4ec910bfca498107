//! The on-disk structures (UEFI 2.10 §5.2.3, §5.3.2, §5.3.3): field offsets and the
//! encoding and decoding the writer and the reader share, so the two cannot disagree on
//! where a field is.

use crate::{Guid, MAX_NAME_UNITS, Partition, SECTOR};

pub(crate) const SIGNATURE: [u8; 8] = *b"EFI PART";
pub(crate) const REVISION: u32 = 0x0001_0000;
/// The header's defined size; what follows it in the sector is reserved.
pub(crate) const HEADER_SIZE: u32 = 92;
pub(crate) const ENTRY_SIZE: usize = 128;
pub(crate) const PRIMARY_LBA: u64 = 1;

/// The protective MBR's partition record: LBA 0, first of the four at 446.
const MBR_PARTITIONS: usize = 446;
const MBR_RECORD_SIZE: usize = 16;
const MBR_SIGNATURE: usize = 510;
pub(crate) const PROTECTIVE_TYPE: u8 = 0xee;

// Header fields (offsets in the header sector).
const H_SIGNATURE: usize = 0;
const H_REVISION: usize = 8;
const H_SIZE: usize = 12;
const H_CRC: usize = 16;
const H_MY_LBA: usize = 24;
const H_ALTERNATE_LBA: usize = 32;
const H_FIRST_USABLE: usize = 40;
const H_LAST_USABLE: usize = 48;
const H_DISK_GUID: usize = 56;
const H_ENTRIES_LBA: usize = 72;
const H_ENTRY_COUNT: usize = 80;
const H_ENTRY_SIZE: usize = 84;
const H_ENTRIES_CRC: usize = 88;

// Entry fields.
const E_TYPE: usize = 0;
const E_UNIQUE: usize = 16;
const E_FIRST: usize = 32;
const E_LAST: usize = 40;
const E_ATTRIBUTES: usize = 48;
const E_NAME: usize = 56;

pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

// Readers that never panic: a short slice reads as zeros. Every caller passes a buffer
// whose length it checked (a sector, an entry), so this is only a guard.
fn bytes_at<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    b.get(at..)
        .and_then(|rest| rest.first_chunk::<N>())
        .copied()
        .unwrap_or([0; N])
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes_at(b, at))
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes_at(b, at))
}

fn guid_at(b: &[u8], at: usize) -> Guid {
    Guid(bytes_at(b, at))
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(dst) = b.get_mut(at..at.saturating_add(v.len())) {
        dst.copy_from_slice(v);
    }
}

/// The protective MBR for a disk of `disk_sectors`: one partition of type `0xEE` from LBA
/// 1 over the rest of the disk (capped at what 32 bits can say), byte for byte what
/// `sgdisk` writes (its CHS fields included, though nothing reads them).
pub(crate) fn protective_mbr(disk_sectors: u64) -> [u8; SECTOR] {
    let mut s = [0u8; SECTOR];
    let size = u32::try_from(disk_sectors.saturating_sub(1)).unwrap_or(u32::MAX);
    let mut record = [0u8; MBR_RECORD_SIZE];
    record[1..4].copy_from_slice(&chs(1));
    record[4] = PROTECTIVE_TYPE;
    record[5..8].copy_from_slice(&chs(u64::from(size)));
    record[8..12].copy_from_slice(&1u32.to_le_bytes());
    record[12..16].copy_from_slice(&size.to_le_bytes());
    put(&mut s, MBR_PARTITIONS, &record);
    put(&mut s, MBR_SIGNATURE, &[0x55, 0xaa]);
    s
}

/// An LBA as an MBR's cylinder/head/sector triple in the conventional geometry of 255
/// heads and 63 sectors per track, or `FF FF FF` past what 1024 cylinders address (as UEFI
/// asks for the protective partition's end).
fn chs(lba: u64) -> [u8; 3] {
    const HEADS: u64 = 255;
    const SECTORS: u64 = 63;
    if lba >= 1024 * HEADS * SECTORS {
        return [0xff; 3];
    }
    let cylinder = lba / (HEADS * SECTORS);
    let head = (lba / SECTORS) % HEADS;
    let sector = lba % SECTORS + 1;
    // The sector byte carries the cylinder's top two bits.
    [
        head as u8,
        sector as u8 | ((cylinder >> 2) & 0xc0) as u8,
        cylinder as u8,
    ]
}

/// Whether LBA 0 ends in the boot signature, and whether one of its four partitions is a
/// protective one starting at LBA 1.
pub(crate) fn check_mbr(s: &[u8; SECTOR]) -> (bool, bool) {
    let signed = bytes_at::<2>(s, MBR_SIGNATURE) == [0x55, 0xaa];
    let protective = (0..4).any(|i| {
        let at = MBR_PARTITIONS + i * MBR_RECORD_SIZE;
        bytes_at::<1>(s, at + 4) == [PROTECTIVE_TYPE] && u32_at(s, at + 8) == 1
    });
    (signed, protective)
}

/// A header's fields, after the signature, revision, size and CRC were checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub first_usable: u64,
    pub last_usable: u64,
    pub disk_guid: Guid,
    pub entries_lba: u64,
    pub entry_count: u32,
    pub entry_size: u32,
    pub entries_crc: u32,
}

/// What a header sector holds, for the reader to check in order.
pub(crate) struct RawHeader {
    pub signature: [u8; 8],
    pub revision: u32,
    pub size: u32,
    pub crc: u32,
    pub header: Header,
}

impl Header {
    /// The header sector, its CRC filled in.
    pub fn encode(&self) -> [u8; SECTOR] {
        let mut s = [0u8; SECTOR];
        put(&mut s, H_SIGNATURE, &SIGNATURE);
        put(&mut s, H_REVISION, &REVISION.to_le_bytes());
        put(&mut s, H_SIZE, &HEADER_SIZE.to_le_bytes());
        put(&mut s, H_MY_LBA, &self.my_lba.to_le_bytes());
        put(&mut s, H_ALTERNATE_LBA, &self.alternate_lba.to_le_bytes());
        put(&mut s, H_FIRST_USABLE, &self.first_usable.to_le_bytes());
        put(&mut s, H_LAST_USABLE, &self.last_usable.to_le_bytes());
        put(&mut s, H_DISK_GUID, &self.disk_guid.0);
        put(&mut s, H_ENTRIES_LBA, &self.entries_lba.to_le_bytes());
        put(&mut s, H_ENTRY_COUNT, &self.entry_count.to_le_bytes());
        put(&mut s, H_ENTRY_SIZE, &self.entry_size.to_le_bytes());
        put(&mut s, H_ENTRIES_CRC, &self.entries_crc.to_le_bytes());
        let crc = header_crc(&s, HEADER_SIZE);
        put(&mut s, H_CRC, &crc.to_le_bytes());
        s
    }

    pub fn decode(s: &[u8; SECTOR]) -> RawHeader {
        RawHeader {
            signature: bytes_at(s, H_SIGNATURE),
            revision: u32_at(s, H_REVISION),
            size: u32_at(s, H_SIZE),
            crc: u32_at(s, H_CRC),
            header: Header {
                my_lba: u64_at(s, H_MY_LBA),
                alternate_lba: u64_at(s, H_ALTERNATE_LBA),
                first_usable: u64_at(s, H_FIRST_USABLE),
                last_usable: u64_at(s, H_LAST_USABLE),
                disk_guid: guid_at(s, H_DISK_GUID),
                entries_lba: u64_at(s, H_ENTRIES_LBA),
                entry_count: u32_at(s, H_ENTRY_COUNT),
                entry_size: u32_at(s, H_ENTRY_SIZE),
                entries_crc: u32_at(s, H_ENTRIES_CRC),
            },
        }
    }
}

/// The CRC-32 of the header's first `size` bytes with the CRC field taken as zero; `size`
/// past the sector is clamped (the reader refuses such a size before it gets here).
pub(crate) fn header_crc(s: &[u8; SECTOR], size: u32) -> u32 {
    let size = usize::try_from(size).unwrap_or(SECTOR).min(SECTOR);
    let mut copy = *s;
    put(&mut copy, H_CRC, &[0; 4]);
    crc32(copy.get(..size).unwrap_or_default())
}

/// Re-computes the CRC field of a header sector whose size field is `size`: for tests and
/// the fuzz driver, which change headers and want the reader to get past the CRC.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn fix_header_crc(s: &mut [u8; SECTOR]) {
    let crc = header_crc(s, u32_at(s, H_SIZE));
    put(s, H_CRC, &crc.to_le_bytes());
}

/// Sets a header sector's entries CRC field.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn set_entries_crc(s: &mut [u8; SECTOR], crc: u32) {
    put(s, H_ENTRIES_CRC, &crc.to_le_bytes());
}

/// Writes `p` into its 128-byte entry slot. The name must already be checked to fit
/// ([`Layout::plan`](crate::Layout::plan)); a longer one is cut, never overflows.
pub(crate) fn encode_entry(p: &Partition, e: &mut [u8]) {
    put(e, E_TYPE, &p.type_guid.0);
    put(e, E_UNIQUE, &p.unique_guid.0);
    put(e, E_FIRST, &p.first_lba.to_le_bytes());
    put(e, E_LAST, &p.last_lba.to_le_bytes());
    put(e, E_ATTRIBUTES, &p.attributes.to_le_bytes());
    for (i, unit) in p.name.encode_utf16().take(MAX_NAME_UNITS).enumerate() {
        put(e, E_NAME + 2 * i, &unit.to_le_bytes());
    }
}

/// An entry's fields, its name still raw.
pub(crate) struct RawEntry {
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    pub last_lba: u64,
    pub attributes: u64,
    pub name: [u16; MAX_NAME_UNITS],
}

pub(crate) fn decode_entry(e: &[u8]) -> RawEntry {
    let mut name = [0u16; MAX_NAME_UNITS];
    for (i, unit) in name.iter_mut().enumerate() {
        *unit = u16::from_le_bytes(bytes_at(e, E_NAME + 2 * i));
    }
    RawEntry {
        type_guid: guid_at(e, E_TYPE),
        unique_guid: guid_at(e, E_UNIQUE),
        first_lba: u64_at(e, E_FIRST),
        last_lba: u64_at(e, E_LAST),
        attributes: u64_at(e, E_ATTRIBUTES),
        name,
    }
}

/// Field offsets for the fuzz driver (which finds the entry array a header names) and the
/// tests (which edit fields).
#[cfg(any(test, feature = "fuzzing"))]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod offsets {
    pub const SIZE: usize = super::H_SIZE;
    pub const REVISION: usize = super::H_REVISION;
    pub const MY_LBA: usize = super::H_MY_LBA;
    pub const ALTERNATE_LBA: usize = super::H_ALTERNATE_LBA;
    pub const FIRST_USABLE: usize = super::H_FIRST_USABLE;
    pub const LAST_USABLE: usize = super::H_LAST_USABLE;
    pub const ENTRIES_LBA: usize = super::H_ENTRIES_LBA;
    pub const ENTRY_COUNT: usize = super::H_ENTRY_COUNT;
    pub const ENTRY_SIZE: usize = super::H_ENTRY_SIZE;
    pub const E_FIRST: usize = super::E_FIRST;
    pub const E_LAST: usize = super::E_LAST;
    pub const E_UNIQUE: usize = super::E_UNIQUE;
    pub const E_NAME: usize = super::E_NAME;
}
