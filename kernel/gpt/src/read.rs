//! Reading a table: every header field and every used entry checked before it is used.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::format::{self, ENTRY_SIZE, HEADER_SIZE, Header, PRIMARY_LBA, REVISION, SIGNATURE};
use crate::{GptError, MAX_ENTRIES, MAX_NAME_UNITS, Partition, ReadError, SECTOR, Table};

/// The smallest disk worth looking at: the MBR and two headers, each in its own sector.
/// (A valid table needs more; the range checks say why a small one is not.)
const MIN_DISK_SECTORS: u64 = 3;

/// Reads and validates the GPT of a disk of `disk_sectors` 512-byte sectors, as the crate
/// documents it. `read(lba, buf)` must fill `buf` (a non-empty multiple of 512 bytes, at
/// most 128 KiB) with the sectors from `lba` on; it is only asked for sectors below
/// `disk_sectors`, and its error ends the read as [`ReadError::Io`].
///
/// The primary table is used if it is valid, else the backup at the disk's last LBA
/// ([`Table::used_backup`]); when neither is, the error
/// ([`GptError::NoValidTable`]) says what is wrong with each. A disk without a protective
/// MBR is refused without looking further.
pub fn read<E>(
    disk_sectors: u64,
    mut read: impl FnMut(u64, &mut [u8]) -> Result<(), E>,
) -> Result<Table, ReadError<E>> {
    if disk_sectors < MIN_DISK_SECTORS {
        return Err(GptError::DiskTooSmall {
            sectors: disk_sectors,
        }
        .into());
    }
    let mut mbr = [0u8; SECTOR];
    read(0, &mut mbr).map_err(ReadError::Io)?;
    match format::check_mbr(&mbr) {
        (false, _) => return Err(GptError::NoMbrSignature.into()),
        (true, false) => return Err(GptError::NoProtectivePartition.into()),
        (true, true) => {}
    }
    let primary = match read_table(disk_sectors, PRIMARY_LBA, &mut read) {
        Ok(table) => return Ok(table),
        Err(ReadError::Io(e)) => return Err(ReadError::Io(e)),
        Err(ReadError::Invalid(e)) => e,
    };
    match read_table(disk_sectors, disk_sectors - 1, &mut read) {
        Ok(mut table) => {
            table.used_backup = true;
            table.primary_error = Some(primary);
            Ok(table)
        }
        Err(ReadError::Io(e)) => Err(ReadError::Io(e)),
        Err(ReadError::Invalid(backup)) => Err(GptError::NoValidTable {
            primary: Box::new(primary),
            backup: Box::new(backup),
        }
        .into()),
    }
}

/// Reads the header at `lba` and its entries.
fn read_table<E>(
    disk_sectors: u64,
    lba: u64,
    read: &mut impl FnMut(u64, &mut [u8]) -> Result<(), E>,
) -> Result<Table, ReadError<E>> {
    let mut sector = [0u8; SECTOR];
    read(lba, &mut sector).map_err(ReadError::Io)?;
    let header = check_header(&sector, lba, disk_sectors)?;

    // Capped by `check_header`: at most 1024 entries, 128 KiB.
    let array_bytes = header.entry_count as usize * ENTRY_SIZE;
    let mut array = vec![0u8; array_bytes.next_multiple_of(SECTOR)];
    read(header.entries_lba, &mut array).map_err(ReadError::Io)?;
    let array = array.get(..array_bytes).unwrap_or_default();
    let computed = format::crc32(array);
    if computed != header.entries_crc {
        return Err(GptError::BadEntriesCrc {
            lba,
            stored: header.entries_crc,
            computed,
        }
        .into());
    }
    let partitions = check_entries(array, &header)?;
    Ok(Table {
        disk_guid: header.disk_guid,
        partitions,
        used_backup: false,
        primary_error: None,
        first_usable: header.first_usable,
        last_usable: header.last_usable,
    })
}

/// Checks everything a header says, in the order a reader depends on it: what it is,
/// that its bytes are intact, that it is the header it should be, and that the areas it
/// names fit the disk without covering each other.
fn check_header(s: &[u8; SECTOR], lba: u64, disk_sectors: u64) -> Result<Header, GptError> {
    let raw = Header::decode(s);
    if raw.signature != SIGNATURE {
        return Err(GptError::BadSignature { lba });
    }
    if raw.revision != REVISION {
        return Err(GptError::BadRevision {
            lba,
            revision: raw.revision,
        });
    }
    if !(HEADER_SIZE..=SECTOR as u32).contains(&raw.size) {
        return Err(GptError::BadHeaderSize {
            lba,
            size: raw.size,
        });
    }
    let computed = format::header_crc(s, raw.size);
    if computed != raw.crc {
        return Err(GptError::BadHeaderCrc {
            lba,
            stored: raw.crc,
            computed,
        });
    }
    let h = raw.header;
    if h.my_lba != lba {
        return Err(GptError::WrongMyLba {
            lba,
            my_lba: h.my_lba,
        });
    }
    if h.entry_size as usize != ENTRY_SIZE {
        return Err(GptError::BadEntrySize {
            lba,
            size: h.entry_size,
        });
    }
    if !(1..=MAX_ENTRIES).contains(&h.entry_count) {
        return Err(GptError::BadEntryCount {
            lba,
            count: h.entry_count,
        });
    }

    // LBA 0 (the MBR) and this header are fixed; the other header, the usable range and
    // the entry array must be clear of them and of each other, and inside the disk.
    let alternate = h.alternate_lba;
    if alternate == 0 || alternate == lba || alternate >= disk_sectors {
        return Err(GptError::BadAlternateLba { lba, alternate });
    }
    let usable = (h.first_usable, h.last_usable);
    let usable_ok = h.first_usable <= h.last_usable
        && h.last_usable < disk_sectors
        && !within(0, usable)
        && !within(lba, usable)
        && !within(alternate, usable);
    if !usable_ok {
        return Err(GptError::BadUsableRange {
            lba,
            first: h.first_usable,
            last: h.last_usable,
        });
    }
    let sectors = (u64::from(h.entry_count) * ENTRY_SIZE as u64).div_ceil(SECTOR as u64);
    let entries = h
        .entries_lba
        .checked_add(sectors - 1)
        .map(|last| (h.entries_lba, last));
    let entries_ok = entries.is_some_and(|array| {
        array.1 < disk_sectors
            && !within(0, array)
            && !within(lba, array)
            && !within(alternate, array)
            && !overlap(array, usable)
    });
    if !entries_ok {
        return Err(GptError::BadEntriesLocation {
            lba,
            entries_lba: h.entries_lba,
            sectors,
        });
    }
    Ok(h)
}

/// Whether `lba` is in the inclusive range.
fn within(lba: u64, (first, last): (u64, u64)) -> bool {
    first <= lba && lba <= last
}

/// Whether two inclusive ranges share an LBA.
fn overlap(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// The used entries of an array whose CRC was checked, each checked on its own and then
/// against the others.
fn check_entries(array: &[u8], h: &Header) -> Result<Vec<Partition>, GptError> {
    let mut partitions = Vec::new();
    for (index, e) in (0u32..).zip(array.chunks_exact(ENTRY_SIZE)) {
        let raw = format::decode_entry(e);
        if raw.type_guid.is_nil() {
            continue;
        }
        if raw.unique_guid.is_nil() {
            return Err(GptError::NilUniqueGuid { index });
        }
        let (first, last) = (raw.first_lba, raw.last_lba);
        if first > last {
            return Err(GptError::ReversedPartition { index, first, last });
        }
        if first < h.first_usable || last > h.last_usable {
            return Err(GptError::PartitionOutsideUsable {
                index,
                first,
                last,
                first_usable: h.first_usable,
                last_usable: h.last_usable,
            });
        }
        let name = decode_name(&raw.name).ok_or(GptError::BadName { index })?;
        partitions.push(Partition {
            index,
            name,
            type_guid: raw.type_guid,
            unique_guid: raw.unique_guid,
            first_lba: first,
            last_lba: last,
            attributes: raw.attributes,
        });
    }

    // Sorted by first LBA, a partition overlaps an earlier one exactly when it starts at or
    // before the furthest end so far: n log n for up to 1024 entries.
    let mut by_start: Vec<&Partition> = partitions.iter().collect();
    by_start.sort_unstable_by_key(|p| (p.first_lba, p.index));
    let mut furthest: Option<&Partition> = None;
    for &p in &by_start {
        if let Some(f) = furthest
            && p.first_lba <= f.last_lba
        {
            return Err(GptError::Overlap {
                index: p.index.max(f.index),
                other: p.index.min(f.index),
            });
        }
        if furthest.is_none_or(|f| p.last_lba > f.last_lba) {
            furthest = Some(p);
        }
    }

    let mut by_guid = by_start;
    by_guid.sort_unstable_by_key(|p| (p.unique_guid, p.index));
    for pair in by_guid.windows(2) {
        if let [a, b] = pair
            && a.unique_guid == b.unique_guid
        {
            // Sorted by index within one GUID, so `a` is the earlier entry.
            return Err(GptError::DuplicateGuid {
                index: b.index,
                other: a.index,
            });
        }
    }
    Ok(partitions)
}

/// The name up to its first NUL code unit, if that is valid UTF-16 and only NULs follow.
fn decode_name(units: &[u16; MAX_NAME_UNITS]) -> Option<String> {
    let len = units.iter().position(|&u| u == 0).unwrap_or(MAX_NAME_UNITS);
    let (name, rest) = units.split_at(len);
    if rest.iter().any(|&u| u != 0) {
        return None;
    }
    char::decode_utf16(name.iter().copied())
        .collect::<Result<String, _>>()
        .ok()
}
