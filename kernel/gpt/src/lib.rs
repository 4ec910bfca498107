//! The appliance disk's partition table: a GUID Partition Table (UEFI 2.10 §5.3) that the
//! host tool writes into an image and the kernel reads back from its virtio disk to find
//! its partitions (the catalog among them).
//!
//! Owns the GPT format for 512-byte logical sectors ([`SECTOR`]) and nothing above it:
//! [`Layout::plan`] places partitions and [`Layout::primary`] / [`Layout::backup`] give
//! the bytes of the two copies of the table; [`read`](fn@read) validates a disk's table
//! and returns its partitions. It must not know what a partition holds or which one is
//! wanted (the caller looks them up with [`Table::find_by_type`] /
//! [`Table::find_by_name`]), touch a file or a device (the caller's closure reads
//! sectors), or trust anything it reads: every LBA, count, size and name is checked
//! before it is used, and nothing is allocated from a size the disk claims until that
//! size is capped.
//!
//! What [`read`](fn@read) accepts, since "a GPT" means what every tool can agree on:
//!
//! - **LBA 0**: an MBR boot signature (`55 AA`) and a protective partition (type `0xEE`)
//!   starting at LBA 1. Anything else is not a GPT disk, and the backup table is not
//!   tried: a disk without a protective MBR may belong to some other scheme, and reading a
//!   GPT out of its last sector would be a guess.
//! - **Header**: signature `EFI PART`, revision 1.0, a size of 92 to 512 bytes and its
//!   CRC-32 over that size; it must say it is where it was read from (`MyLBA`); its usable
//!   range must lie inside the disk and be clear of LBA 0, both headers and its entry
//!   array; the entry array must lie inside the disk, clear of LBA 0 and both headers.
//! - **Entries**: exactly 128 bytes each (what every writer uses; the format allows
//!   larger ones that no one writes), 1 to 1024 of them ([`MAX_ENTRIES`], so the array is
//!   at most 128 KiB), and the CRC-32 of the array. An entry is used when its type GUID is
//!   not nil; a used entry must have a non-nil unique GUID, lie inside the usable range
//!   with its first LBA not after its last, overlap no other, share its unique GUID with no
//!   other, and have a name of valid UTF-16 that ends at the first NUL code unit with only
//!   zeros after it. Unused entries are not looked at beyond their type GUID.
//! - **Which copy**: the primary table (header at LBA 1) if it is valid, else the backup
//!   (header at the disk's last LBA, where the caller says the disk ends); [`Table`] says
//!   which one was used and why the primary was not. An I/O error from the caller ends
//!   the read: it is not taken for a bad table, so a failing disk is not papered over.
//!
//! What [`Layout`] writes is what `sgdisk` writes for the same partitions: a protective
//! MBR, 128 entries in 32 sectors after each header, partitions on 1 MiB boundaries, and
//! the backup entries and header in the last 33 sectors. The tests hold it to `sgdisk -v`,
//! `-p` and `-i` and `fdisk -l`, and its LBA 0 to `sgdisk`'s byte for byte.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod format;
mod guid;
mod layout;
mod read;

#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

#[cfg(test)]
mod tests;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use guid::Guid;
pub use layout::{Layout, PartitionSpec};
pub use read::read;

/// The logical sector size, the only one supported: the GPT's structures are laid out in
/// sectors, and both the appliance images and virtio-blk use 512.
pub const SECTOR: usize = 512;
/// Most entries [`read`](fn@read) accepts in a table: 128 KiB of entries, far more than
/// any writer uses (128 is the norm), and a bound on what a hostile header can make it
/// allocate.
pub const MAX_ENTRIES: u32 = 1024;
/// Entries in the tables [`Layout`] writes (so at most this many partitions), the number
/// UEFI asks room for and every partitioning tool writes.
pub const LAYOUT_ENTRIES: u32 = 128;
/// Longest partition name, in UTF-16 code units (the entry's 72-byte name field).
pub const MAX_NAME_UNITS: usize = 36;
/// Where [`Layout`] aligns partitions, in sectors (1 MiB), as partitioning tools do.
pub const ALIGN_SECTORS: u64 = 2048;

/// One used partition entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Partition {
    /// The entry's slot in the table, from 0 (tools number partitions from 1: `sgdisk`'s
    /// partition 1 is index 0).
    pub index: u32,
    /// Up to [`MAX_NAME_UNITS`] UTF-16 code units, without NUL.
    pub name: String,
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    /// Inclusive, as the format stores it.
    pub last_lba: u64,
    /// The entry's attribute bits, uninterpreted ([`Layout`] writes 0).
    pub attributes: u64,
}

impl Partition {
    /// Length in sectors (never 0: `first_lba <= last_lba`).
    pub fn sectors(&self) -> u64 {
        // Saturating only for a hand-made `Partition`; a read or planned one cannot
        // overflow (its last LBA is below the disk's sector count).
        self.last_lba
            .saturating_sub(self.first_lba)
            .saturating_add(1)
    }
}

/// A disk's partition table as [`read`](fn@read) found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub disk_guid: Guid,
    /// The used entries, in entry order.
    pub partitions: Vec<Partition>,
    /// The primary table was invalid and this is the backup (see `primary_error`).
    pub used_backup: bool,
    /// Why the primary table was refused, when `used_backup`: worth a warning, since the
    /// disk has one good copy left.
    pub primary_error: Option<GptError>,
    /// The usable range, inclusive at both ends.
    pub first_usable: u64,
    pub last_usable: u64,
}

impl Table {
    /// The partitions of this type, in entry order.
    pub fn find_by_type(&self, t: &Guid) -> impl Iterator<Item = &Partition> {
        let t = *t;
        self.partitions.iter().filter(move |p| p.type_guid == t)
    }

    /// The first partition (in entry order) with exactly this name; names are not unique in
    /// a GPT.
    pub fn find_by_name(&self, name: &str) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.name == name)
    }
}

/// Why a layout could not be planned, a GUID not parsed, or a table not read. Entry
/// indexes are slots from 0, but messages number partitions from 1 as `sgdisk` and
/// `fdisk` do; `lba` says which header (1 for the primary).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GptError {
    /// Not `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hex digits.
    BadGuid,

    // Planning a layout.
    /// More partitions than a layout's table has entries ([`LAYOUT_ENTRIES`]).
    TooManyPartitions { count: usize },
    /// A partition of 0 sectors.
    EmptyPartition { index: u32 },
    /// A name over [`MAX_NAME_UNITS`] UTF-16 code units.
    NameTooLong { index: u32, units: usize },
    /// A name with a NUL, which would end it early on disk.
    NameHasNul { index: u32 },
    /// A nil disk GUID.
    NilDiskGuid,
    /// A nil type GUID: on disk it marks the entry unused, so the partition would vanish.
    NilTypeGuid { index: u32 },
    /// The partitions do not fit a disk of at most `u64::MAX` bytes.
    DiskTooLarge,

    // Planning or reading.
    /// A used entry with a nil unique GUID.
    NilUniqueGuid { index: u32 },
    /// Two partitions with the same unique GUID; `other` is the earlier one.
    DuplicateGuid { index: u32, other: u32 },

    // Reading.
    /// Fewer sectors than an MBR and two headers need.
    DiskTooSmall { sectors: u64 },
    /// LBA 0 does not end in the MBR boot signature `55 AA`.
    NoMbrSignature,
    /// LBA 0 has no partition of type `0xEE` starting at LBA 1.
    NoProtectivePartition,
    /// The header does not start with `EFI PART`.
    BadSignature { lba: u64 },
    /// A revision other than 1.0 (`0x00010000`).
    BadRevision { lba: u64, revision: u32 },
    /// A header size outside 92..=512.
    BadHeaderSize { lba: u64, size: u32 },
    /// The header's CRC-32 does not match its bytes.
    BadHeaderCrc {
        lba: u64,
        stored: u32,
        computed: u32,
    },
    /// The header says it is somewhere else.
    WrongMyLba { lba: u64, my_lba: u64 },
    /// The other header's LBA is LBA 0, this header's, past the disk or usable.
    BadAlternateLba { lba: u64, alternate: u64 },
    /// An entry size other than 128.
    BadEntrySize { lba: u64, size: u32 },
    /// An entry count outside 1..=[`MAX_ENTRIES`].
    BadEntryCount { lba: u64, count: u32 },
    /// The usable range is empty, past the disk, or covers LBA 0, a header or the entries.
    BadUsableRange { lba: u64, first: u64, last: u64 },
    /// The entry array runs past the disk or covers LBA 0 or a header.
    BadEntriesLocation {
        lba: u64,
        entries_lba: u64,
        sectors: u64,
    },
    /// The entry array's CRC-32 does not match the header's.
    BadEntriesCrc {
        lba: u64,
        stored: u32,
        computed: u32,
    },
    /// A partition whose first LBA is after its last.
    ReversedPartition { index: u32, first: u64, last: u64 },
    /// A partition not inside the usable range.
    PartitionOutsideUsable {
        index: u32,
        first: u64,
        last: u64,
        first_usable: u64,
        last_usable: u64,
    },
    /// Two partitions sharing sectors; `other` is the lower index.
    Overlap { index: u32, other: u32 },
    /// A name that is not UTF-16 (an unpaired surrogate) or has non-zero units after its
    /// terminating NUL.
    BadName { index: u32 },
    /// Neither table is valid.
    NoValidTable {
        primary: Box<GptError>,
        backup: Box<GptError>,
    },
}

impl fmt::Display for GptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GptError::BadGuid => {
                f.write_str("not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in hex)")
            }
            GptError::TooManyPartitions { count } => write!(
                f,
                "{count} partitions, more than the {LAYOUT_ENTRIES} a partition table holds"
            ),
            GptError::EmptyPartition { index } => {
                write!(f, "partition {}: size of 0 sectors", u64::from(*index) + 1)
            }
            GptError::NameTooLong { index, units } => write!(
                f,
                "partition {}: name of {units} UTF-16 code units, over the limit of {MAX_NAME_UNITS}",
                u64::from(*index) + 1
            ),
            GptError::NameHasNul { index } => {
                write!(
                    f,
                    "partition {}: NUL character in name",
                    u64::from(*index) + 1
                )
            }
            GptError::NilDiskGuid => f.write_str("nil disk GUID"),
            GptError::NilTypeGuid { index } => write!(
                f,
                "partition {}: nil type GUID (it marks an unused entry)",
                u64::from(*index) + 1
            ),
            GptError::DiskTooLarge => f.write_str("partitions too large for a disk"),
            GptError::NilUniqueGuid { index } => {
                write!(f, "partition {}: nil unique GUID", u64::from(*index) + 1)
            }
            GptError::DuplicateGuid { index, other } => write!(
                f,
                "partition {}: same unique GUID as partition {}",
                u64::from(*index) + 1,
                u64::from(*other) + 1
            ),
            GptError::DiskTooSmall { sectors } => {
                write!(f, "disk of {sectors} sectors is too small for a GPT")
            }
            GptError::NoMbrSignature => {
                f.write_str("not a GPT disk: LBA 0 has no MBR boot signature (55 AA)")
            }
            GptError::NoProtectivePartition => f.write_str(
                "not a GPT disk: the MBR has no protective partition (type 0xEE at LBA 1)",
            ),
            GptError::BadSignature { lba } => {
                write!(f, "GPT header at LBA {lba}: no \"EFI PART\" signature")
            }
            GptError::BadRevision { lba, revision } => write!(
                f,
                "GPT header at LBA {lba}: revision {}.{}, only 1.0 is supported",
                revision >> 16,
                revision & 0xffff
            ),
            GptError::BadHeaderSize { lba, size } => write!(
                f,
                "GPT header at LBA {lba}: header size {size}, not within 92..=512"
            ),
            GptError::BadHeaderCrc {
                lba,
                stored,
                computed,
            } => write!(
                f,
                "GPT header at LBA {lba}: header CRC {stored:#010x} does not match computed {computed:#010x}"
            ),
            GptError::WrongMyLba { lba, my_lba } => {
                write!(f, "GPT header at LBA {lba}: says it is at LBA {my_lba}")
            }
            GptError::BadAlternateLba { lba, alternate } => write!(
                f,
                "GPT header at LBA {lba}: alternate header LBA {alternate} is not a free sector of the disk"
            ),
            GptError::BadEntrySize { lba, size } => write!(
                f,
                "GPT header at LBA {lba}: partition entry size {size}, only 128 is supported"
            ),
            GptError::BadEntryCount { lba, count } => write!(
                f,
                "GPT header at LBA {lba}: {count} partition entries, not within 1..={MAX_ENTRIES}"
            ),
            GptError::BadUsableRange { lba, first, last } => write!(
                f,
                "GPT header at LBA {lba}: usable range {first}..={last} is empty, past the end of the disk, or covers the table"
            ),
            GptError::BadEntriesLocation {
                lba,
                entries_lba,
                sectors,
            } => write!(
                f,
                "GPT header at LBA {lba}: partition entries at LBA {entries_lba} ({sectors} sectors) are past the end of the disk or cover a header"
            ),
            GptError::BadEntriesCrc {
                lba,
                stored,
                computed,
            } => write!(
                f,
                "GPT header at LBA {lba}: partition entries CRC {stored:#010x} does not match computed {computed:#010x}"
            ),
            GptError::ReversedPartition { index, first, last } => write!(
                f,
                "partition {}: first LBA {first} is after last LBA {last}",
                u64::from(*index) + 1
            ),
            GptError::PartitionOutsideUsable {
                index,
                first,
                last,
                first_usable,
                last_usable,
            } => write!(
                f,
                "partition {}: LBAs {first}..={last} are outside the usable range {first_usable}..={last_usable}",
                u64::from(*index) + 1
            ),
            GptError::Overlap { index, other } => write!(
                f,
                "partition {}: overlaps partition {}",
                u64::from(*index) + 1,
                u64::from(*other) + 1
            ),
            GptError::BadName { index } => write!(
                f,
                "partition {}: name is not valid UTF-16 or has bytes after its end",
                u64::from(*index) + 1
            ),
            GptError::NoValidTable { primary, backup } => write!(
                f,
                "no valid GPT: primary table: {primary}; backup table: {backup}"
            ),
        }
    }
}

impl core::error::Error for GptError {}

/// Why [`read`](fn@read) failed: the caller's read failed, or the table is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadError<E> {
    Io(E),
    Invalid(GptError),
}

impl<E: fmt::Display> fmt::Display for ReadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "reading the partition table: {e}"),
            ReadError::Invalid(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for ReadError<E> {}

impl<E> From<GptError> for ReadError<E> {
    fn from(e: GptError) -> Self {
        ReadError::Invalid(e)
    }
}
