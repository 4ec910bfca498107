//! The fuzz driver, shared by the cargo-fuzz target `gpt` and the unit tests (feature
//! `fuzzing`; not for the kernel).
//!
//! [`disk`] reads its input as a disk image behind one flag byte, and the flags can make
//! the image more likely to get deep into the reader: re-compute the CRCs of the header
//! at LBA 1 and of the one in the last sector (and of the entry arrays they name), write a
//! protective MBR, and claim the disk is up to 7 sectors longer than the image (reads past
//! the image then fail, as on a truncated disk). Then it asserts that [`read`](fn@read)
//! never panics, never asks for a sector past the disk or a buffer over 128 KiB, and that a
//! table it accepts keeps every promise the crate makes; and that the same partitions,
//! planned with [`Layout::plan`], are written so that they read back the same.

use alloc::format;
use alloc::vec::Vec;
use core::convert::Infallible;
use core::fmt;

use crate::format::{self as disk_format, ENTRY_SIZE, offsets};
use crate::{
    GptError, Guid, Layout, MAX_ENTRIES, MAX_NAME_UNITS, PartitionSpec, ReadError, SECTOR, Table,
    read,
};

/// Fix the CRCs of the primary header and its entries.
pub const FIX_PRIMARY: u8 = 1;
/// Fix the CRCs of the header in the image's last sector and its entries.
pub const FIX_BACKUP: u8 = 2;
/// Replace LBA 0 with a protective MBR.
pub const PROTECTIVE_MBR: u8 = 4;
/// The top three bits: sectors the disk has past the image.
const EXTRA_SHIFT: u32 = 5;

/// A read past the end of the image.
#[derive(Debug)]
pub struct PastEnd;

impl fmt::Display for PastEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("read past the end of the image")
    }
}

/// Reads `data` (see the module doc) as a disk and checks what [`read`](fn@read) makes
/// of it. Returns whether it read a table, so a driver can tell inputs that get past the
/// CRCs from those refused.
pub fn disk(data: &[u8]) -> bool {
    let Some((&flags, image)) = data.split_first() else {
        return false;
    };
    let mut image = image.to_vec();
    image.resize(image.len().next_multiple_of(SECTOR), 0);
    let image_sectors = (image.len() / SECTOR) as u64;
    let disk_sectors = image_sectors + u64::from(flags >> EXTRA_SHIFT);
    if flags & PROTECTIVE_MBR != 0
        && let Some(lba0) = image.get_mut(..SECTOR)
    {
        lba0.copy_from_slice(&disk_format::protective_mbr(disk_sectors));
    }
    if flags & FIX_PRIMARY != 0 {
        fix_crcs(&mut image, 1);
    }
    if flags & FIX_BACKUP != 0 && image_sectors > 0 {
        fix_crcs(&mut image, image_sectors - 1);
    }

    let result = read(disk_sectors, |lba, buf| {
        assert!(
            !buf.is_empty()
                && buf.len().is_multiple_of(SECTOR)
                && buf.len() <= MAX_ENTRIES as usize * ENTRY_SIZE,
            "read of {} bytes",
            buf.len()
        );
        let end = lba.checked_add((buf.len() / SECTOR) as u64);
        assert!(
            end.is_some_and(|end| end <= disk_sectors),
            "read of LBA {lba} (+{}) on a disk of {disk_sectors} sectors",
            buf.len() / SECTOR
        );
        let src = usize::try_from(lba)
            .ok()
            .and_then(|lba| lba.checked_mul(SECTOR))
            .and_then(|start| image.get(start..start.checked_add(buf.len())?))
            .ok_or(PastEnd)?;
        buf.copy_from_slice(src);
        Ok::<(), PastEnd>(())
    });
    match result {
        Ok(table) => {
            check_table(&table, disk_sectors);
            rebuild(&table);
            true
        }
        Err(e) => {
            // The message must format (and say something) whatever the error holds.
            assert!(!format!("{e}").is_empty());
            false
        }
    }
}

/// Sets the CRCs of the header at `lba` in `image`, and of the entry array it names if
/// that is inside the image and its size is not absurd.
pub(crate) fn fix_crcs(image: &mut [u8], lba: u64) {
    let Some(start) = usize::try_from(lba)
        .ok()
        .and_then(|lba| lba.checked_mul(SECTOR))
    else {
        return;
    };
    let Some(sector) = image
        .get(start..start.saturating_add(SECTOR))
        .and_then(|s| <[u8; SECTOR]>::try_from(s).ok())
    else {
        return;
    };
    let mut sector = sector;
    let entries_lba = disk_format::u64_at(&sector, offsets::ENTRIES_LBA);
    let count = u64::from(disk_format::u32_at(&sector, offsets::ENTRY_COUNT));
    let size = u64::from(disk_format::u32_at(&sector, offsets::ENTRY_SIZE));
    let bytes = count * size;
    if bytes <= 1 << 20
        && let Some(array) = entries_lba
            .checked_mul(SECTOR as u64)
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| image.get(at..at.checked_add(bytes as usize)?))
    {
        disk_format::set_entries_crc(&mut sector, disk_format::crc32(array));
    }
    disk_format::fix_header_crc(&mut sector);
    if let Some(dst) = image.get_mut(start..start + SECTOR) {
        dst.copy_from_slice(&sector);
    }
}

/// Every promise a read table makes.
pub fn check_table(t: &Table, disk_sectors: u64) {
    assert_eq!(t.used_backup, t.primary_error.is_some());
    if let Some(e) = &t.primary_error {
        assert!(!format!("{e}").is_empty());
    }
    assert!(t.first_usable >= 1 && t.first_usable <= t.last_usable && t.last_usable < disk_sectors);
    let mut previous: Option<u32> = None;
    for p in &t.partitions {
        assert!(previous.is_none_or(|i| i < p.index), "entries out of order");
        assert!(p.index < MAX_ENTRIES);
        previous = Some(p.index);
        assert!(!p.type_guid.is_nil() && !p.unique_guid.is_nil());
        assert!(t.first_usable <= p.first_lba && p.first_lba <= p.last_lba);
        assert!(p.last_lba <= t.last_usable);
        assert_eq!(p.sectors(), p.last_lba - p.first_lba + 1);
        assert!(p.name.encode_utf16().count() <= MAX_NAME_UNITS && !p.name.contains('\0'));
    }
    let mut ranges: Vec<(u64, u64)> = t
        .partitions
        .iter()
        .map(|p| (p.first_lba, p.last_lba))
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        if let [a, b] = pair {
            assert!(a.1 < b.0, "overlap {a:?} {b:?}");
        }
    }
    let mut guids: Vec<Guid> = t.partitions.iter().map(|p| p.unique_guid).collect();
    guids.sort_unstable();
    guids.dedup();
    assert_eq!(guids.len(), t.partitions.len(), "duplicate unique GUID");
}

/// Plans the table's partitions (same names, GUIDs and sizes) and reads the result back:
/// what the reader accepts, the writer must write (up to the 128 entries a layout has and
/// the size of a disk), and what it writes must read back the same.
fn rebuild(t: &Table) {
    let specs: Vec<PartitionSpec<'_>> = t
        .partitions
        .iter()
        .map(|p| PartitionSpec {
            name: &p.name,
            type_guid: p.type_guid,
            unique_guid: p.unique_guid,
            sectors: p.sectors(),
        })
        .collect();
    // The reader takes a nil disk GUID (nothing depends on it); the writer refuses one.
    let disk_guid = if t.disk_guid.is_nil() {
        Guid::from_hash([1; 16])
    } else {
        t.disk_guid
    };
    let layout = match Layout::plan(disk_guid, &specs) {
        Ok(layout) => layout,
        Err(GptError::TooManyPartitions { .. } | GptError::DiskTooLarge) => return,
        Err(e) => panic!("planning the partitions of a table that read: {e}"),
    };
    let again = read_layout(&layout).unwrap_or_else(|e| panic!("reading a planned table: {e}"));
    assert!(!again.used_backup);
    assert_eq!(again.disk_guid, disk_guid);
    assert_eq!(again.partitions, layout.partitions);
    assert_eq!(again.partitions.len(), t.partitions.len());
    for (a, b) in again.partitions.iter().zip(&t.partitions) {
        assert_eq!(
            (&a.name, a.type_guid, a.unique_guid, a.sectors()),
            (&b.name, b.type_guid, b.unique_guid, b.sectors())
        );
    }
}

/// Reads a layout's table from a disk holding [`Layout::primary`] and [`Layout::backup`]
/// and zeros elsewhere, without an image of the disk's size.
pub fn read_layout(layout: &Layout) -> Result<Table, ReadError<Infallible>> {
    let primary = layout.primary();
    let backup = layout.backup();
    sparse_read(
        layout.disk_sectors,
        &primary,
        &backup,
        layout.backup_offset(),
    )
}

/// Reads a disk of `disk_sectors` holding `primary` at 0, `backup` at `backup_offset`, and
/// zeros elsewhere.
pub fn sparse_read(
    disk_sectors: u64,
    primary: &[u8],
    backup: &[u8],
    backup_offset: u64,
) -> Result<Table, ReadError<Infallible>> {
    read(disk_sectors, |lba, buf| {
        for (i, sector) in buf.chunks_exact_mut(SECTOR).enumerate() {
            let at = (u128::from(lba) + i as u128) * SECTOR as u128;
            match sector_at(primary, 0, at)
                .or_else(|| sector_at(backup, u128::from(backup_offset), at))
            {
                Some(src) => sector.copy_from_slice(src),
                None => sector.fill(0),
            }
        }
        Ok(())
    })
}

/// The sector at byte `at` of a disk, from `bytes` placed at byte `base`, if it is there.
fn sector_at(bytes: &[u8], base: u128, at: u128) -> Option<&[u8]> {
    let off = usize::try_from(at.checked_sub(base)?).ok()?;
    bytes.get(off..off.checked_add(SECTOR)?)
}
