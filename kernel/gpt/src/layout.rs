//! Planning a disk and writing its table.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use crate::format::{self, ENTRY_SIZE, Header, PRIMARY_LBA};
use crate::{ALIGN_SECTORS, GptError, Guid, LAYOUT_ENTRIES, MAX_NAME_UNITS, Partition, SECTOR};

/// Sectors of a layout's entry array: 128 entries of 128 bytes.
const ENTRY_SECTORS: u64 = (LAYOUT_ENTRIES as u64) * (ENTRY_SIZE as u64) / (SECTOR as u64);
/// The primary entry array's LBA, right after the primary header.
const PRIMARY_ENTRIES_LBA: u64 = PRIMARY_LBA + 1;
/// LBA 0 ..= 33: the MBR, the primary header, its entries.
const PRIMARY_SECTORS: u64 = PRIMARY_ENTRIES_LBA + ENTRY_SECTORS;
/// The backup entries and header, the last 33 sectors.
const BACKUP_SECTORS: u64 = ENTRY_SECTORS + 1;

/// A partition to place: its size and identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionSpec<'a> {
    /// Up to [`MAX_NAME_UNITS`] UTF-16 code units, without NUL; may be empty.
    pub name: &'a str,
    /// Not nil (a nil type marks an unused entry).
    pub type_guid: Guid,
    /// Not nil, and not shared with another partition.
    pub unique_guid: Guid,
    /// At least 1.
    pub sectors: u64,
}

/// A planned disk: partitions placed in order, each starting on a 1 MiB (2048-sector)
/// boundary, a table of 128 entries of 128 bytes, the primary header at LBA 1 with its
/// entries at LBA 2 ..= 33, the backup entries and header in the last 33 sectors.
///
/// [`Layout::primary`] and [`Layout::backup`] write whatever the fields say, so a caller
/// may raise `disk_sectors` (to leave free space after the partitions: the usable range
/// and the backup follow it); lowering it below the partitions, or editing the partitions,
/// writes a table [`read`](fn@crate::read) refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub disk_guid: Guid,
    /// The disk's size: the image is `disk_sectors * 512` bytes.
    pub disk_sectors: u64,
    /// In the order given to [`Layout::plan`], `index` 0, 1, ... (entry slots).
    pub partitions: Vec<Partition>,
}

impl Layout {
    /// Places the partitions in order, each at the first 1 MiB boundary after the one
    /// before (the first at LBA 2048); the disk is sized to fit them plus the backup table,
    /// rounded up to 1 MiB. Refuses more partitions than the table's 128 entries, a disk
    /// past `u64::MAX` bytes, a nil disk GUID (surely a caller's mistake), and whatever
    /// [`read`](fn@crate::read) would refuse or read differently: an empty partition, a
    /// name over 36 UTF-16 code units or with a NUL, a nil type or unique GUID, two
    /// partitions with one unique GUID.
    pub fn plan(disk_guid: Guid, parts: &[PartitionSpec<'_>]) -> Result<Layout, GptError> {
        if parts.len() > LAYOUT_ENTRIES as usize {
            return Err(GptError::TooManyPartitions { count: parts.len() });
        }
        if disk_guid.is_nil() {
            return Err(GptError::NilDiskGuid);
        }
        let mut partitions: Vec<Partition> = Vec::with_capacity(parts.len());
        // The first sector after the last partition (or after the primary table).
        let mut next = PRIMARY_SECTORS;
        for (index, spec) in (0u32..).zip(parts) {
            let units = spec.name.encode_utf16().count();
            if units > MAX_NAME_UNITS {
                return Err(GptError::NameTooLong { index, units });
            }
            if spec.name.contains('\0') {
                return Err(GptError::NameHasNul { index });
            }
            if spec.type_guid.is_nil() {
                return Err(GptError::NilTypeGuid { index });
            }
            if spec.unique_guid.is_nil() {
                return Err(GptError::NilUniqueGuid { index });
            }
            if let Some(other) = partitions
                .iter()
                .find(|p| p.unique_guid == spec.unique_guid)
            {
                return Err(GptError::DuplicateGuid {
                    index,
                    other: other.index,
                });
            }
            if spec.sectors == 0 {
                return Err(GptError::EmptyPartition { index });
            }
            let first_lba = align_up(next).ok_or(GptError::DiskTooLarge)?;
            let last_lba = first_lba
                .checked_add(spec.sectors - 1)
                .ok_or(GptError::DiskTooLarge)?;
            next = last_lba.checked_add(1).ok_or(GptError::DiskTooLarge)?;
            partitions.push(Partition {
                index,
                name: spec.name.to_string(),
                type_guid: spec.type_guid,
                unique_guid: spec.unique_guid,
                first_lba,
                last_lba,
                attributes: 0,
            });
        }
        let disk_sectors = next
            .checked_add(BACKUP_SECTORS)
            .and_then(align_up)
            // The image's size in bytes must fit too (`backup_offset`).
            .filter(|&s| s.checked_mul(SECTOR as u64).is_some())
            .ok_or(GptError::DiskTooLarge)?;
        Ok(Layout {
            disk_guid,
            disk_sectors,
            partitions,
        })
    }

    /// The first LBA partitions may use: right after the primary entries (34).
    pub fn first_usable(&self) -> u64 {
        PRIMARY_SECTORS
    }

    /// The last LBA partitions may use: right before the backup entries.
    pub fn last_usable(&self) -> u64 {
        self.disk_sectors.saturating_sub(BACKUP_SECTORS + 1)
    }

    /// The bytes of LBA 0 ..= 33 (protective MBR, primary header, entry array): write them
    /// at offset 0.
    pub fn primary(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PRIMARY_SECTORS as usize * SECTOR);
        out.extend_from_slice(&format::protective_mbr(self.disk_sectors));
        let entries = self.entries();
        out.extend_from_slice(&self.header(PRIMARY_LBA, &entries).encode());
        out.extend_from_slice(&entries);
        out
    }

    /// The backup entry array and header: write them at byte offset
    /// [`Layout::backup_offset`], so the header is the disk's last sector.
    pub fn backup(&self) -> Vec<u8> {
        let mut out = self.entries();
        out.extend_from_slice(&self.header(self.backup_lba(), &out).encode());
        out
    }

    /// Where [`Layout::backup`] goes, in bytes: the last 33 sectors.
    pub fn backup_offset(&self) -> u64 {
        self.disk_sectors
            .saturating_sub(BACKUP_SECTORS)
            .saturating_mul(SECTOR as u64)
    }

    fn backup_lba(&self) -> u64 {
        self.disk_sectors.saturating_sub(1)
    }

    /// The entry array, each partition in the slot its `index` names (a slot past the
    /// table, only possible by editing the fields, is left out).
    fn entries(&self) -> Vec<u8> {
        let mut array = vec![0u8; ENTRY_SECTORS as usize * SECTOR];
        for p in &self.partitions {
            let at = (p.index as usize).saturating_mul(ENTRY_SIZE);
            if let Some(slot) = array.get_mut(at..at.saturating_add(ENTRY_SIZE)) {
                format::encode_entry(p, slot);
            }
        }
        array
    }

    fn header(&self, my_lba: u64, entries: &[u8]) -> Header {
        let backup = my_lba != PRIMARY_LBA;
        Header {
            my_lba,
            alternate_lba: if backup {
                PRIMARY_LBA
            } else {
                self.backup_lba()
            },
            first_usable: self.first_usable(),
            last_usable: self.last_usable(),
            disk_guid: self.disk_guid,
            entries_lba: if backup {
                self.disk_sectors.saturating_sub(BACKUP_SECTORS)
            } else {
                PRIMARY_ENTRIES_LBA
            },
            entry_count: LAYOUT_ENTRIES,
            entry_size: ENTRY_SIZE as u32,
            entries_crc: format::crc32(entries),
        }
    }
}

/// Rounds up to a multiple of [`ALIGN_SECTORS`]; `None` past `u64::MAX`.
fn align_up(lba: u64) -> Option<u64> {
    lba.checked_next_multiple_of(ALIGN_SECTORS)
}
