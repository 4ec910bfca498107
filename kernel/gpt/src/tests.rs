//! GUIDs, planning, round trips (fixed and randomized), every hostile table the reader
//! must refuse with the message a user would see, falling back to the backup, and the fuzz
//! driver over random corruptions. Interoperability with `sgdisk` and `fdisk` is in
//! `tests/tools.rs`.

extern crate std;

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use plinth_testrng::Rng;

use super::*;
use crate::format::{Header, offsets};
use crate::fuzzing::{self, PastEnd};

/// Linux filesystem data, as `sgdisk` calls type 8300.
const LINUX: Guid = Guid::from_fields(
    0x0FC63DAF,
    0x8483,
    0x4772,
    [0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4],
);
/// EFI system partition.
const ESP: Guid = Guid::from_fields(
    0xC12A7328,
    0xF81F,
    0x11D2,
    [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
);

/// A random GUID (two steps through [`Guid::from_hash`]).
fn random_guid(rng: &mut Rng) -> Guid {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    b[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    Guid::from_hash(b)
}

/// A name of up to 36 UTF-16 code units from ASCII, other BMP characters and ones
/// outside the BMP (two units each).
fn random_name(rng: &mut Rng) -> String {
    let pool = [
        'a', 'Z', '0', '-', '_', ' ', '.', 'é', 'ß', 'Ж', '中', '😀', '𝄞',
    ];
    let mut s = String::new();
    let mut units = 0;
    let target = rng.below(37);
    loop {
        let c = pool[rng.below(pool.len())];
        if units + c.len_utf16() > target {
            return s;
        }
        units += c.len_utf16();
        s.push(c);
    }
}

fn guid(n: u8) -> Guid {
    Guid::from_hash([n; 16])
}

fn spec(name: &str, n: u8, sectors: u64) -> PartitionSpec<'_> {
    PartitionSpec {
        name,
        type_guid: LINUX,
        unique_guid: guid(n),
        sectors,
    }
}

/// Three partitions: the second one's size is not a multiple of the alignment.
fn sample() -> Layout {
    Layout::plan(
        guid(100),
        &[
            PartitionSpec {
                name: "boot",
                type_guid: ESP,
                unique_guid: guid(1),
                sectors: 2048,
            },
            spec("catalog", 2, 3000),
            spec("data", 3, 1),
        ],
    )
    .unwrap()
}

/// The whole disk, `disk_sectors * 512` bytes.
fn image(layout: &Layout) -> Vec<u8> {
    let mut image = vec![0u8; (layout.disk_sectors as usize) * SECTOR];
    let primary = layout.primary();
    image[..primary.len()].copy_from_slice(&primary);
    let backup = layout.backup();
    let at = layout.backup_offset() as usize;
    image[at..at + backup.len()].copy_from_slice(&backup);
    image
}

/// Reads `image` as a disk of `disk_sectors` sectors; reads past the image fail, and the
/// reader must not ask past the disk or for more than 128 KiB.
fn read_as(image: &[u8], disk_sectors: u64) -> Result<Table, ReadError<PastEnd>> {
    read(disk_sectors, |lba, buf| {
        assert!(!buf.is_empty() && buf.len() % SECTOR == 0 && buf.len() <= 128 * 1024);
        assert!(
            lba + (buf.len() / SECTOR) as u64 <= disk_sectors,
            "read past the disk"
        );
        let start = lba as usize * SECTOR;
        let src = image.get(start..start + buf.len()).ok_or(PastEnd)?;
        buf.copy_from_slice(src);
        Ok(())
    })
}

fn read_image(image: &[u8]) -> Result<Table, ReadError<PastEnd>> {
    read_as(image, (image.len() / SECTOR) as u64)
}

/// The error a read must fail with.
fn invalid(result: Result<Table, ReadError<PastEnd>>) -> GptError {
    match result {
        Err(ReadError::Invalid(e)) => e,
        Err(ReadError::Io(e)) => panic!("expected an invalid table, got I/O error {e}"),
        Ok(t) => panic!("expected an invalid table, read {t:?}"),
    }
}

fn last_lba(image: &[u8]) -> u64 {
    (image.len() / SECTOR) as u64 - 1
}

fn sector_mut(image: &mut [u8], lba: u64) -> &mut [u8] {
    let at = lba as usize * SECTOR;
    &mut image[at..at + SECTOR]
}

fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Edits the header at `lba` and re-computes its CRC, so the reader gets past the CRC to
/// the check under test.
fn edit_header(image: &mut [u8], lba: u64, edit: impl FnOnce(&mut [u8])) {
    let s = sector_mut(image, lba);
    edit(s);
    fuzzing::fix_crcs(image, lba);
}

/// The entry array of the header at `lba` (a layout's: 128 entries).
fn entries_lba(image: &[u8], lba: u64) -> u64 {
    let at = lba as usize * SECTOR + offsets::ENTRIES_LBA;
    u64::from_le_bytes(image[at..at + 8].try_into().unwrap())
}

/// Edits entry `index` of both tables the same way and re-computes their CRCs: a check of
/// the entries then fails in both, and the error names both.
fn edit_entry_both(image: &mut [u8], index: usize, edit: impl Fn(&mut [u8])) {
    for header in [1, last_lba(image)] {
        edit_entry(image, header, index, &edit);
    }
}

fn edit_entry(image: &mut [u8], header: u64, index: usize, edit: impl Fn(&mut [u8])) {
    let at = entries_lba(image, header) as usize * SECTOR + index * 128;
    edit(&mut image[at..at + 128]);
    fuzzing::fix_crcs(image, header);
}

/// The error of a table whose copies are both wrong the same way: `primary` for the
/// primary's, and the same for the backup's.
fn both(primary: GptError, backup: GptError) -> GptError {
    GptError::NoValidTable {
        primary: alloc::boxed::Box::new(primary),
        backup: alloc::boxed::Box::new(backup),
    }
}

// GUIDs.

#[test]
fn guid_fields_are_stored_mixed_endian() {
    assert_eq!(
        LINUX.0,
        [
            0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47,
            0x7D, 0xE4
        ]
    );
    assert_eq!(LINUX.to_string(), "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
    assert_eq!(ESP.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert_eq!(
        Guid::NIL.to_string(),
        "00000000-0000-0000-0000-000000000000"
    );
    assert!(Guid::NIL.is_nil() && !LINUX.is_nil());
}

#[test]
fn guid_parses_either_case_and_round_trips() {
    assert_eq!(
        Guid::parse("0fc63daf-8483-4772-8e79-3d69d8477de4"),
        Ok(LINUX)
    );
    assert_eq!(
        Guid::parse("0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
        Ok(LINUX)
    );
    assert_eq!("c12a7328-F81F-11d2-ba4b-00a0c93ec93b".parse(), Ok(ESP));
    let mut rng = Rng::new(7);
    for _ in 0..1000 {
        let g = Guid(random_guid(&mut rng).0.map(|b| b ^ rng.byte()));
        assert_eq!(Guid::parse(&g.to_string()), Ok(g));
    }
}

#[test]
fn guid_parse_refuses_anything_else() {
    for bad in [
        "",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE40",
        "{0FC63DAF-8483-4772-8E79-3D69D8477DE4}",
        "0FC63DAF 8483-4772-8E79-3D69D8477DE4",
        "0FC63DA-F8483-4772-8E79-3D69D8477DE4",
        "0FC63DAF-8483-4772-8E793-D69D8477DE4",
        "0FC63DAF84834772-8E79-3D69D8477DE4--",
        "0FC63DAG-8483-4772-8E79-3D69D8477DE4",
        "+FC63DAF-8483-4772-8E79-3D69D8477DE4",
        "0FC63DAF-+483-4772-8E79-3D69D8477DE4",
        " FC63DAF-8483-4772-8E79-3D69D8477DE4",
        "0FC63DAF-8483-4772-8E79-3D69D8477DÉ",
        "0FC63DAF-8483-4772-8E79-3D69D8477D\u{0}4",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE\u{FF10}",
    ] {
        assert_eq!(Guid::parse(bad), Err(GptError::BadGuid), "{bad:?}");
    }
    assert_eq!(
        GptError::BadGuid.to_string(),
        "not a GUID (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in hex)"
    );
}

#[test]
fn guid_from_hash_is_version_4_and_deterministic() {
    let mut rng = Rng::new(99);
    for _ in 0..1000 {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        let g = Guid::from_hash(bytes);
        assert_eq!(g, Guid::from_hash(bytes));
        let text = g.to_string();
        assert_eq!(&text[14..15], "4", "{text}");
        assert!("89AB".contains(&text[19..20]), "{text}");
        // Only the version and variant bits change.
        for (i, (a, b)) in g.0.iter().zip(bytes).enumerate() {
            let mask = match i {
                7 => 0x0f,
                8 => 0x3f,
                _ => 0xff,
            };
            assert_eq!(a & mask, b & mask);
        }
    }
    assert_ne!(Guid::from_hash([0; 16]), Guid::from_hash([1; 16]));
}

// Planning.

#[test]
fn plan_aligns_partitions_and_sizes_the_disk() {
    let l = sample();
    let places: Vec<(u32, u64, u64)> = l
        .partitions
        .iter()
        .map(|p| (p.index, p.first_lba, p.last_lba))
        .collect();
    assert_eq!(places, [(0, 2048, 4095), (1, 4096, 7095), (2, 8192, 8192)]);
    assert_eq!(l.partitions[1].sectors(), 3000);
    // 8193 + 33 rounded up to 1 MiB.
    assert_eq!(l.disk_sectors, 10240);
    assert_eq!(l.first_usable(), 34);
    assert_eq!(l.last_usable(), 10240 - 34);
    assert_eq!(l.backup_offset(), (10240 - 33) * 512);
    assert_eq!(l.primary().len(), 34 * 512);
    assert_eq!(l.backup().len(), 33 * 512);
    assert_eq!(l.partitions[1].name, "catalog");
    assert_eq!(l.partitions[0].type_guid, ESP);
    assert_eq!(l.partitions[2].attributes, 0);

    // A partition ending right before the backup table still fits: 33 sectors after it.
    let tight = Layout::plan(guid(100), &[spec("a", 1, 4096 - 2048 - 33)]).unwrap();
    assert_eq!(tight.disk_sectors, 4096);
    assert_eq!(tight.partitions[0].last_lba, tight.last_usable());
    let over = Layout::plan(guid(100), &[spec("a", 1, 4096 - 2048 - 32)]).unwrap();
    assert_eq!(over.disk_sectors, 6144);

    let empty = Layout::plan(guid(100), &[]).unwrap();
    assert_eq!(empty.disk_sectors, 2048);
    let t = fuzzing::read_layout(&empty).unwrap();
    assert!(t.partitions.is_empty());
}

#[test]
fn plan_writes_a_protective_mbr() {
    let l = sample();
    let p = l.primary();
    assert_eq!(&p[510..512], &[0x55, 0xaa]);
    let record = &p[446..462];
    assert_eq!(record[4], 0xee);
    assert_eq!(&record[1..4], &[0, 2, 0], "CHS of LBA 1");
    // LBA 10239 is head 162, sector 34 of cylinder 0.
    assert_eq!(&record[5..8], &[162, 34, 0], "CHS of the last LBA");
    assert_eq!(&record[8..12], &1u32.to_le_bytes());
    assert_eq!(&record[12..16], &(10240u32 - 1).to_le_bytes());
    assert!(
        p[462..510].iter().all(|&b| b == 0),
        "one MBR partition only"
    );
    assert_eq!(&p[512..520], b"EFI PART");

    // Past 2 TiB the MBR says "as far as 32 bits go".
    let mut huge = sample();
    huge.disk_sectors = 1 << 40;
    assert_eq!(&huge.primary()[458..462], &[0xff; 4]);
    assert_eq!(&huge.primary()[451..454], &[0xff; 3]);
    // The last CHS-addressable LBA, cylinder 1023: its top bits go in the sector byte.
    huge.disk_sectors = 1024 * 255 * 63;
    assert_eq!(&huge.primary()[451..454], &[254, 0xc0 | 63, 0xff]);
}

#[test]
fn plan_refuses_what_the_reader_would() {
    let g = guid(100);
    let long = "a".repeat(37);
    let astral = "😀".repeat(18); // 36 units
    let plan = |parts: &[PartitionSpec<'_>]| Layout::plan(g, parts).map(|_| ());
    assert_eq!(plan(&[spec(&astral, 1, 1)]), Ok(()));
    assert_eq!(plan(&[spec(&"a".repeat(36), 1, 1)]), Ok(()));

    let cases: Vec<(Vec<PartitionSpec<'_>>, GptError, &str)> = vec![
        (
            vec![spec("a", 1, 1), spec(&long, 2, 1)],
            GptError::NameTooLong {
                index: 1,
                units: 37,
            },
            "partition 2: name of 37 UTF-16 code units, over the limit of 36",
        ),
        (
            vec![spec("😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀a", 1, 1)],
            GptError::NameTooLong {
                index: 0,
                units: 37,
            },
            "partition 1: name of 37 UTF-16 code units, over the limit of 36",
        ),
        (
            vec![spec("a\0b", 1, 1)],
            GptError::NameHasNul { index: 0 },
            "partition 1: NUL character in name",
        ),
        (
            vec![spec("a", 1, 0)],
            GptError::EmptyPartition { index: 0 },
            "partition 1: size of 0 sectors",
        ),
        (
            vec![PartitionSpec {
                type_guid: Guid::NIL,
                ..spec("a", 1, 1)
            }],
            GptError::NilTypeGuid { index: 0 },
            "partition 1: nil type GUID (it marks an unused entry)",
        ),
        (
            vec![PartitionSpec {
                unique_guid: Guid::NIL,
                ..spec("a", 1, 1)
            }],
            GptError::NilUniqueGuid { index: 0 },
            "partition 1: nil unique GUID",
        ),
        (
            vec![spec("a", 1, 1), spec("b", 2, 1), spec("c", 1, 1)],
            GptError::DuplicateGuid { index: 2, other: 0 },
            "partition 3: same unique GUID as partition 1",
        ),
        (
            vec![spec("a", 1, u64::MAX)],
            GptError::DiskTooLarge,
            "partitions too large for a disk",
        ),
        (
            vec![spec("a", 1, u64::MAX / 512 - 4096)],
            GptError::DiskTooLarge,
            "partitions too large for a disk",
        ),
        (
            vec![spec("a", 1, u64::MAX / 2), spec("b", 2, u64::MAX / 2)],
            GptError::DiskTooLarge,
            "partitions too large for a disk",
        ),
    ];
    for (parts, error, message) in cases {
        assert_eq!(plan(&parts), Err(error.clone()), "{message}");
        assert_eq!(error.to_string(), message);
    }

    assert_eq!(
        Layout::plan(Guid::NIL, &[]).map(|_| ()),
        Err(GptError::NilDiskGuid)
    );
    let names: Vec<String> = (0..129).map(|i| i.to_string()).collect();
    let many: Vec<PartitionSpec<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| PartitionSpec {
            name: n,
            type_guid: LINUX,
            unique_guid: Guid::from_hash([
                i as u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
            ]),
            sectors: 1,
        })
        .collect();
    let err = Layout::plan(g, &many).unwrap_err();
    assert_eq!(err, GptError::TooManyPartitions { count: 129 });
    assert_eq!(
        err.to_string(),
        "129 partitions, more than the 128 a partition table holds"
    );
    // 128 fill the table.
    let full = Layout::plan(g, &many[..128]).unwrap();
    let t = fuzzing::read_layout(&full).unwrap();
    assert_eq!(t.partitions, full.partitions);
    assert_eq!(t.partitions[127].index, 127);
}

#[test]
fn a_disk_near_the_largest_size_round_trips() {
    // Sizes near the top of what a byte offset can hold, read without an image that size.
    let l = Layout::plan(
        guid(100),
        &[
            spec("a", 1, 1 << 20),
            spec("b", 2, (u64::MAX / 512) - (1 << 22)),
        ],
    )
    .unwrap();
    assert!(l.disk_sectors <= u64::MAX / 512);
    let t = fuzzing::read_layout(&l).unwrap();
    assert_eq!(t.partitions, l.partitions);
    assert_eq!(t.last_usable, l.disk_sectors - 34);
}

// Round trips.

#[test]
fn round_trip_reads_what_was_planned() {
    let l = sample();
    let t = read_image(&image(&l)).unwrap();
    assert_eq!(t.partitions, l.partitions);
    assert_eq!(t.disk_guid, l.disk_guid);
    assert!(!t.used_backup);
    assert_eq!(t.primary_error, None);
    assert_eq!((t.first_usable, t.last_usable), (34, 10240 - 34));
    assert_eq!(t.find_by_name("catalog").map(|p| p.index), Some(1));
    assert_eq!(t.find_by_name("Catalog"), None);
    let linux: Vec<u32> = t.find_by_type(&LINUX).map(|p| p.index).collect();
    assert_eq!(linux, [1, 2]);
    assert_eq!(t.find_by_type(&ESP).count(), 1);
    assert_eq!(t.find_by_type(&Guid::NIL).count(), 0);
}

#[test]
fn round_trip_random_layouts() {
    let mut rng = Rng::new(0x5eed_1234_abcd_0001);
    for round in 0..300 {
        let count = match rng.below(10) {
            0 => 0,
            1 => 20 + rng.below(109),
            _ => 1 + rng.below(8),
        };
        let names: Vec<String> = (0..count).map(|_| random_name(&mut rng)).collect();
        let specs: Vec<PartitionSpec<'_>> = names
            .iter()
            .map(|name| PartitionSpec {
                name,
                type_guid: if rng.below(2) == 0 {
                    LINUX
                } else {
                    random_guid(&mut rng)
                },
                unique_guid: random_guid(&mut rng),
                sectors: match rng.below(4) {
                    0 => 1 + rng.below_u64(4),
                    1 => 2048 * (1 + rng.below_u64(2)),
                    _ => 1 + rng.below_u64(6000),
                },
            })
            .collect();
        let l = Layout::plan(random_guid(&mut rng), &specs).unwrap();
        assert_eq!(l.partitions.len(), count);
        for (p, s) in l.partitions.iter().zip(&specs) {
            assert_eq!(p.first_lba % 2048, 0);
            assert_eq!((p.name.as_str(), p.sectors()), (s.name, s.sectors));
        }
        assert_eq!(l.disk_sectors % 2048, 0);
        // Up to 128 MiB, but only the tables' pages are ever touched.
        let mut image = image(&l);
        let t = read_image(&image).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(t.partitions, l.partitions, "round {round}");
        assert_eq!(t.disk_guid, l.disk_guid);
        assert!(!t.used_backup);

        // The backup alone holds the same table.
        image[SECTOR..34 * SECTOR].fill(0);
        let b = read_image(&image).unwrap();
        assert!(b.used_backup);
        assert_eq!(b.primary_error, Some(GptError::BadSignature { lba: 1 }));
        assert_eq!(b.partitions, l.partitions);
        assert_eq!(
            (b.first_usable, b.last_usable),
            (t.first_usable, t.last_usable)
        );
    }
}

#[test]
fn a_grown_disk_moves_the_backup_and_the_usable_range() {
    let mut l = sample();
    l.disk_sectors += 100_000;
    let t = read_image(&image(&l)).unwrap();
    assert_eq!(t.last_usable, l.disk_sectors - 34);
    assert_eq!(t.partitions, l.partitions);
}

// Hostile tables.

#[test]
fn primary_corrupted_uses_the_backup() {
    let l = sample();
    let good = image(&l);
    let last = last_lba(&good);
    type Case = (&'static str, fn(&mut Vec<u8>), GptError);
    let cases: Vec<Case> = vec![
        (
            "signature",
            |i| i[SECTOR] = b'X',
            GptError::BadSignature { lba: 1 },
        ),
        (
            "header CRC",
            |i| i[SECTOR + 60] ^= 1,
            GptError::BadHeaderCrc {
                lba: 1,
                stored: 0,
                computed: 0,
            },
        ),
        (
            "entries CRC",
            |i| i[2 * SECTOR + 200] ^= 1,
            GptError::BadEntriesCrc {
                lba: 1,
                stored: 0,
                computed: 0,
            },
        ),
        (
            "whole header",
            |i| i[SECTOR..2 * SECTOR].fill(0xff),
            GptError::BadSignature { lba: 1 },
        ),
    ];
    for (what, corrupt, expected) in cases {
        let mut image = good.clone();
        corrupt(&mut image);
        let t = read_image(&image).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(t.used_backup, "{what}");
        assert_eq!(t.partitions, l.partitions, "{what}");
        assert_eq!(t.disk_guid, l.disk_guid);
        let error = t.primary_error.unwrap();
        assert_eq!(
            core::mem::discriminant(&error),
            core::mem::discriminant(&expected),
            "{what}: {error}"
        );
    }
    // The CRC errors say what was stored and what the bytes give.
    let mut image = good.clone();
    image[SECTOR + 60] ^= 1;
    let error = read_image(&image).unwrap().primary_error.unwrap();
    let GptError::BadHeaderCrc {
        stored, computed, ..
    } = error
    else {
        panic!("{error:?}");
    };
    assert_ne!(stored, computed);
    assert_eq!(
        error.to_string(),
        format!(
            "GPT header at LBA 1: header CRC {stored:#010x} does not match computed {computed:#010x}"
        )
    );
    assert!(last > 1);
}

#[test]
fn both_tables_corrupted_is_an_error_naming_both() {
    let mut image = image(&sample());
    let last = last_lba(&image);
    image[SECTOR] = b'X';
    image[2 * SECTOR + 200] ^= 1;
    let backup_entries = entries_lba(&image, last) as usize;
    image[backup_entries * SECTOR + 7] ^= 0x80;
    let error = invalid(read_image(&image));
    let GptError::NoValidTable { primary, backup } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(**primary, GptError::BadSignature { lba: 1 });
    assert!(
        matches!(**backup, GptError::BadEntriesCrc { lba, .. } if lba == last),
        "{backup:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(
            "no valid GPT: primary table: GPT header at LBA 1: no \"EFI PART\" signature; \
             backup table: GPT header at LBA 10239: partition entries CRC 0x"
        ),
        "{message}"
    );
    assert_eq!(
        ReadError::<PastEnd>::Invalid(error.clone()).to_string(),
        message
    );
}

#[test]
fn bad_signature_everywhere_is_not_a_table() {
    let mut image = image(&sample());
    let last = last_lba(&image);
    image[SECTOR..SECTOR + 8].copy_from_slice(b"EFI PARS");
    sector_mut(&mut image, last)[..8].copy_from_slice(b"efi part");
    assert_eq!(
        invalid(read_image(&image)),
        both(
            GptError::BadSignature { lba: 1 },
            GptError::BadSignature { lba: last }
        )
    );
}

/// Header fields the reader refuses, each set in both headers (CRCs fixed), with the
/// message the user sees for the primary.
#[test]
fn bad_header_fields_are_refused() {
    let good = image(&sample());
    let last = last_lba(&good);
    let disk = last + 1;
    // (what, field offset, value for the primary, for the backup, the error for lba)
    type Case = (
        &'static str,
        usize,
        u64,
        u64,
        fn(u64) -> GptError,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "revision",
            offsets::REVISION,
            0x0001_0001,
            0x0002_0000,
            |lba| GptError::BadRevision {
                lba,
                revision: if lba == 1 { 0x0001_0001 } else { 0x0002_0000 },
            },
            "GPT header at LBA 1: revision 1.1, only 1.0 is supported",
        ),
        (
            "small header size",
            offsets::SIZE,
            91,
            0,
            |lba| GptError::BadHeaderSize {
                lba,
                size: if lba == 1 { 91 } else { 0 },
            },
            "GPT header at LBA 1: header size 91, not within 92..=512",
        ),
        (
            "large header size",
            offsets::SIZE,
            513,
            u32::MAX as u64,
            |lba| GptError::BadHeaderSize {
                lba,
                size: if lba == 1 { 513 } else { u32::MAX },
            },
            "GPT header at LBA 1: header size 513, not within 92..=512",
        ),
        (
            "my LBA",
            offsets::MY_LBA,
            2,
            1,
            |lba| GptError::WrongMyLba {
                lba,
                my_lba: if lba == 1 { 2 } else { 1 },
            },
            "GPT header at LBA 1: says it is at LBA 2",
        ),
        (
            "entry size 0",
            offsets::ENTRY_SIZE,
            0,
            0,
            |lba| GptError::BadEntrySize { lba, size: 0 },
            "GPT header at LBA 1: partition entry size 0, only 128 is supported",
        ),
        (
            "entry size 256",
            offsets::ENTRY_SIZE,
            256,
            u32::MAX as u64,
            |lba| GptError::BadEntrySize {
                lba,
                size: if lba == 1 { 256 } else { u32::MAX },
            },
            "GPT header at LBA 1: partition entry size 256, only 128 is supported",
        ),
        (
            "entry count 0",
            offsets::ENTRY_COUNT,
            0,
            0,
            |lba| GptError::BadEntryCount { lba, count: 0 },
            "GPT header at LBA 1: 0 partition entries, not within 1..=1024",
        ),
        (
            "entry count absurd",
            offsets::ENTRY_COUNT,
            1025,
            u32::MAX as u64,
            |lba| GptError::BadEntryCount {
                lba,
                count: if lba == 1 { 1025 } else { u32::MAX },
            },
            "GPT header at LBA 1: 1025 partition entries, not within 1..=1024",
        ),
        (
            "alternate past the disk",
            offsets::ALTERNATE_LBA,
            disk,
            u64::MAX,
            |lba| GptError::BadAlternateLba {
                lba,
                alternate: if lba == 1 { 10240 } else { u64::MAX },
            },
            "GPT header at LBA 1: alternate header LBA 10240 is not a free sector of the disk",
        ),
        (
            "alternate is itself",
            offsets::ALTERNATE_LBA,
            1,
            last,
            |lba| GptError::BadAlternateLba {
                lba,
                alternate: lba,
            },
            "GPT header at LBA 1: alternate header LBA 1 is not a free sector of the disk",
        ),
        (
            "alternate in the usable range",
            offsets::ALTERNATE_LBA,
            5000,
            5000,
            |lba| GptError::BadUsableRange {
                lba,
                first: 34,
                last: 10206,
            },
            "GPT header at LBA 1: usable range 34..=10206 is empty, past the end of the disk, or covers the table",
        ),
        (
            "usable past the disk",
            offsets::LAST_USABLE,
            disk,
            u64::MAX,
            |lba| GptError::BadUsableRange {
                lba,
                first: 34,
                last: if lba == 1 { 10240 } else { u64::MAX },
            },
            "GPT header at LBA 1: usable range 34..=10240 is empty, past the end of the disk, or covers the table",
        ),
        (
            "usable covers the header",
            offsets::FIRST_USABLE,
            1,
            0,
            |lba| GptError::BadUsableRange {
                lba,
                first: if lba == 1 { 1 } else { 0 },
                last: 10206,
            },
            "GPT header at LBA 1: usable range 1..=10206 is empty, past the end of the disk, or covers the table",
        ),
        (
            "usable empty",
            offsets::FIRST_USABLE,
            10207,
            u64::MAX,
            |lba| GptError::BadUsableRange {
                lba,
                first: if lba == 1 { 10207 } else { u64::MAX },
                last: 10206,
            },
            "GPT header at LBA 1: usable range 10207..=10206 is empty, past the end of the disk, or covers the table",
        ),
        (
            "entries past the disk",
            offsets::ENTRIES_LBA,
            disk - 31,
            u64::MAX - 10,
            |lba| GptError::BadEntriesLocation {
                lba,
                entries_lba: if lba == 1 { 10209 } else { u64::MAX - 10 },
                sectors: 32,
            },
            "GPT header at LBA 1: partition entries at LBA 10209 (32 sectors) are past the end of the disk or cover a header",
        ),
        (
            "entries over LBA 0 and the headers",
            offsets::ENTRIES_LBA,
            0,
            last - 5,
            |lba| GptError::BadEntriesLocation {
                lba,
                entries_lba: if lba == 1 { 0 } else { 10234 },
                sectors: 32,
            },
            "GPT header at LBA 1: partition entries at LBA 0 (32 sectors) are past the end of the disk or cover a header",
        ),
        (
            "entries in the usable range",
            offsets::ENTRIES_LBA,
            3,
            10206,
            |lba| GptError::BadEntriesLocation {
                lba,
                entries_lba: if lba == 1 { 3 } else { 10206 },
                sectors: 32,
            },
            "GPT header at LBA 1: partition entries at LBA 3 (32 sectors) are past the end of the disk or cover a header",
        ),
    ];
    for (what, field, primary, backup, error, message) in cases {
        let mut image = good.clone();
        for (lba, value) in [(1, primary), (last, backup)] {
            edit_header(&mut image, lba, |s| match field {
                offsets::REVISION | offsets::SIZE | offsets::ENTRY_SIZE | offsets::ENTRY_COUNT => {
                    set_u32(s, field, value as u32)
                }
                _ => set_u64(s, field, value),
            });
        }
        let got = invalid(read_image(&image));
        assert_eq!(got, both(error(1), error(last)), "{what}");
        assert_eq!(error(1).to_string(), message, "{what}");
    }
}

#[test]
fn an_absurd_entry_count_allocates_nothing_big() {
    // The largest count accepted: 1024 entries, 256 sectors, within the 128 KiB the read
    // closure allows; the entries then run into the usable range.
    let mut image = image(&sample());
    edit_header(&mut image, 1, |s| set_u32(s, offsets::ENTRY_COUNT, 1024));
    let t = read_image(&image).unwrap();
    assert_eq!(
        t.primary_error,
        Some(GptError::BadEntriesLocation {
            lba: 1,
            entries_lba: 2,
            sectors: 256
        })
    );
}

#[test]
fn a_smaller_entry_array_reads() {
    // 4 entries in one sector: legal, and what a compact table uses.
    let mut image = image(&sample());
    for lba in [1, last_lba(&image)] {
        edit_header(&mut image, lba, |s| set_u32(s, offsets::ENTRY_COUNT, 4));
    }
    let t = read_image(&image).unwrap();
    assert!(!t.used_backup);
    assert_eq!(t.partitions, sample().partitions);
}

/// Entry problems, set in both tables, with the message the user sees.
#[test]
fn bad_entries_are_refused() {
    let good = image(&sample());
    type Case = (&'static str, usize, fn(&mut [u8]), GptError, &'static str);
    let cases: Vec<Case> = vec![
        (
            "overlap",
            1,
            |e| set_u64(e, offsets::E_FIRST, 4000),
            GptError::Overlap { index: 1, other: 0 },
            "partition 2: overlaps partition 1",
        ),
        (
            "overlap, contained",
            2,
            |e| {
                set_u64(e, offsets::E_FIRST, 2100);
                set_u64(e, offsets::E_LAST, 2200);
            },
            GptError::Overlap { index: 2, other: 0 },
            "partition 3: overlaps partition 1",
        ),
        (
            "overlap, same start",
            1,
            |e| set_u64(e, offsets::E_FIRST, 2048),
            GptError::Overlap { index: 1, other: 0 },
            "partition 2: overlaps partition 1",
        ),
        (
            "reversed",
            0,
            |e| set_u64(e, offsets::E_FIRST, 4096),
            GptError::ReversedPartition {
                index: 0,
                first: 4096,
                last: 4095,
            },
            "partition 1: first LBA 4096 is after last LBA 4095",
        ),
        (
            "past the usable range",
            2,
            |e| set_u64(e, offsets::E_LAST, 10207),
            GptError::PartitionOutsideUsable {
                index: 2,
                first: 8192,
                last: 10207,
                first_usable: 34,
                last_usable: 10206,
            },
            "partition 3: LBAs 8192..=10207 are outside the usable range 34..=10206",
        ),
        (
            "before the usable range",
            0,
            |e| set_u64(e, offsets::E_FIRST, 33),
            GptError::PartitionOutsideUsable {
                index: 0,
                first: 33,
                last: 4095,
                first_usable: 34,
                last_usable: 10206,
            },
            "partition 1: LBAs 33..=4095 are outside the usable range 34..=10206",
        ),
        (
            "far past the disk",
            1,
            |e| {
                set_u64(e, offsets::E_FIRST, u64::MAX - 1);
                set_u64(e, offsets::E_LAST, u64::MAX);
            },
            GptError::PartitionOutsideUsable {
                index: 1,
                first: u64::MAX - 1,
                last: u64::MAX,
                first_usable: 34,
                last_usable: 10206,
            },
            "partition 2: LBAs 18446744073709551614..=18446744073709551615 are outside the usable range 34..=10206",
        ),
        (
            "unpaired surrogate",
            1,
            |e| {
                e[offsets::E_NAME + 2..offsets::E_NAME + 4]
                    .copy_from_slice(&0xd800u16.to_le_bytes())
            },
            GptError::BadName { index: 1 },
            "partition 2: name is not valid UTF-16 or has bytes after its end",
        ),
        (
            "bytes after the name",
            1,
            |e| e[offsets::E_NAME + 70] = b'x',
            GptError::BadName { index: 1 },
            "partition 2: name is not valid UTF-16 or has bytes after its end",
        ),
        (
            "nil unique GUID",
            2,
            |e| e[offsets::E_UNIQUE..offsets::E_UNIQUE + 16].fill(0),
            GptError::NilUniqueGuid { index: 2 },
            "partition 3: nil unique GUID",
        ),
        (
            "duplicate unique GUID",
            2,
            |e| {
                e[offsets::E_UNIQUE..offsets::E_UNIQUE + 16].copy_from_slice(&guid(1).0);
            },
            GptError::DuplicateGuid { index: 2, other: 0 },
            "partition 3: same unique GUID as partition 1",
        ),
    ];
    for (what, index, edit, error, message) in cases {
        let mut image = good.clone();
        edit_entry_both(&mut image, index, edit);
        assert_eq!(
            invalid(read_image(&image)),
            both(error.clone(), error.clone()),
            "{what}"
        );
        assert_eq!(error.to_string(), message, "{what}");
    }
}

#[test]
fn a_bad_entry_in_the_primary_alone_uses_the_backup() {
    let mut image = image(&sample());
    edit_entry(&mut image, 1, 1, |e| set_u64(e, offsets::E_FIRST, 4000));
    let t = read_image(&image).unwrap();
    assert!(t.used_backup);
    assert_eq!(
        t.primary_error,
        Some(GptError::Overlap { index: 1, other: 0 })
    );
    assert_eq!(t.partitions, sample().partitions);
}

#[test]
fn unused_entries_and_names_read_as_written() {
    let mut image = image(&sample());
    // An entry with a nil type is unused whatever else it holds.
    edit_entry_both(&mut image, 5, |e| {
        e[16..].fill(0xff);
    });
    // A name of exactly 36 units has no NUL at all.
    edit_entry_both(&mut image, 0, |e| {
        for i in 0..36 {
            e[offsets::E_NAME + 2 * i..offsets::E_NAME + 2 * i + 2]
                .copy_from_slice(&u16::from(b'a' + (i % 26) as u8).to_le_bytes());
        }
    });
    // A surrogate pair is one character.
    edit_entry_both(&mut image, 2, |e| {
        e[offsets::E_NAME..offsets::E_NAME + 72].fill(0);
        for (i, u) in "d😀".encode_utf16().enumerate() {
            e[offsets::E_NAME + 2 * i..offsets::E_NAME + 2 * i + 2]
                .copy_from_slice(&u.to_le_bytes());
        }
    });
    let t = read_image(&image).unwrap();
    assert!(!t.used_backup);
    assert_eq!(t.partitions.len(), 3);
    assert_eq!(t.partitions[0].name, "abcdefghijklmnopqrstuvwxyzabcdefghij");
    assert_eq!(t.partitions[2].name, "d😀");
}

#[test]
fn not_a_gpt_disk_is_refused_without_trying_the_backup() {
    let good = image(&sample());

    let mut blank = good.clone();
    blank[..SECTOR].fill(0);
    let e = invalid(read_image(&blank));
    assert_eq!(e, GptError::NoMbrSignature);
    assert_eq!(
        e.to_string(),
        "not a GPT disk: LBA 0 has no MBR boot signature (55 AA)"
    );

    let mut dos = good.clone();
    dos[446 + 4] = 0x83;
    let e = invalid(read_image(&dos));
    assert_eq!(e, GptError::NoProtectivePartition);
    assert_eq!(
        e.to_string(),
        "not a GPT disk: the MBR has no protective partition (type 0xEE at LBA 1)"
    );

    let mut moved = good.clone();
    moved[446 + 8] = 2;
    assert_eq!(invalid(read_image(&moved)), GptError::NoProtectivePartition);

    // A protective partition in another slot (a hybrid MBR) is still one.
    let mut hybrid = good.clone();
    let record: [u8; 16] = hybrid[446..462].try_into().unwrap();
    hybrid[446..462].fill(0);
    hybrid[446 + 48..462 + 48].copy_from_slice(&record);
    assert_eq!(read_image(&hybrid).unwrap().partitions, sample().partitions);
}

#[test]
fn a_truncated_disk_is_an_io_error() {
    let good = image(&sample());
    let disk = (good.len() / SECTOR) as u64;
    // The image ends inside the primary entries; the disk says it is whole.
    let r = read_as(&good[..20 * SECTOR], disk);
    assert!(matches!(r, Err(ReadError::Io(PastEnd))), "{r:?}");
    assert_eq!(
        r.unwrap_err().to_string(),
        "reading the partition table: read past the end of the image"
    );
    // Whole primary, no backup: the primary is enough.
    let t = read_as(&good[..100 * SECTOR], disk).unwrap();
    assert!(!t.used_backup);
    // A bad primary and no backup to fall back on.
    let mut cut = good[..100 * SECTOR].to_vec();
    cut[SECTOR] = 0;
    assert!(matches!(read_as(&cut, disk), Err(ReadError::Io(PastEnd))));
    // Nothing at all.
    assert!(matches!(read_as(&[], disk), Err(ReadError::Io(PastEnd))));
}

#[test]
fn a_disk_smaller_than_its_table_says_is_refused() {
    let good = image(&sample());
    // The caller says the disk is 5000 sectors: the table claims more.
    let e = invalid(read_as(&good[..5000 * SECTOR], 5000));
    let GptError::NoValidTable { primary, backup } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(
        **primary,
        GptError::BadAlternateLba {
            lba: 1,
            alternate: 10239
        }
    );
    assert_eq!(**backup, GptError::BadSignature { lba: 4999 });

    for sectors in 0..3 {
        let e = invalid(read_as(&good, sectors));
        assert_eq!(e, GptError::DiskTooSmall { sectors });
    }
    assert_eq!(
        GptError::DiskTooSmall { sectors: 2 }.to_string(),
        "disk of 2 sectors is too small for a GPT"
    );
}

#[test]
fn io_errors_end_the_read() {
    let good = image(&sample());
    let mut calls = 0;
    let r = read(20480, |lba, buf: &mut [u8]| {
        calls += 1;
        if lba == 1 {
            return Err("sector 1 unreadable");
        }
        buf.copy_from_slice(&good[lba as usize * SECTOR..][..buf.len()]);
        Ok(())
    });
    assert_eq!(r, Err(ReadError::Io("sector 1 unreadable")));
    assert_eq!(calls, 2);
}

// Random corruption.

/// A compact table on an 8-sector disk: header at 1, four entries at 2, usable 3..=5,
/// backup entries at 6 and header at 7. Small enough that random edits hit every field.
fn compact_image(rng: &mut Rng) -> Vec<u8> {
    let mut image = vec![0u8; 8 * SECTOR];
    image[..SECTOR].copy_from_slice(&format::protective_mbr(8));
    let mut entries = vec![0u8; SECTOR];
    let mut next = 3;
    for (i, slot) in entries.chunks_exact_mut(128).enumerate() {
        if next > 5 || rng.below(3) == 0 {
            continue;
        }
        let last = (next + rng.below_u64(2)).min(5);
        let p = Partition {
            index: i as u32,
            name: random_name(rng),
            type_guid: LINUX,
            unique_guid: random_guid(rng),
            first_lba: next,
            last_lba: last,
            attributes: rng.next_u64(),
        };
        format::encode_entry(&p, slot);
        next = last + 1;
    }
    for (lba, alternate, entries_lba) in [(1, 7, 2), (7, 1, 6)] {
        let h = Header {
            my_lba: lba,
            alternate_lba: alternate,
            first_usable: 3,
            last_usable: 5,
            disk_guid: random_guid(rng),
            entries_lba,
            entry_count: 4,
            entry_size: 128,
            entries_crc: format::crc32(&entries),
        };
        image[entries_lba as usize * SECTOR..][..SECTOR].copy_from_slice(&entries);
        image[lba as usize * SECTOR..][..SECTOR].copy_from_slice(&h.encode());
    }
    image
}

#[test]
fn compact_tables_read() {
    let mut rng = Rng::new(3);
    for _ in 0..100 {
        let image = compact_image(&mut rng);
        let t = read_image(&image).unwrap();
        fuzzing::check_table(&t, 8);
        fuzzing::disk(&[[0].as_slice(), &image].concat());
    }
}

#[test]
fn fuzz_driver_survives_random_corruption() {
    let mut rng = Rng::new(0xdead_beef);
    for _ in 0..5_000 {
        let mut image = compact_image(&mut rng);
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(image.len());
            match rng.below(4) {
                0 => image[at] ^= 1 << rng.below(8),
                1 => image[at] = 0,
                2 => image[at] = 0xff,
                _ => image[at] = rng.byte(),
            }
        }
        if rng.below(8) == 0 {
            image.truncate(rng.below(image.len() + 1));
        }
        // Mostly with the CRCs fixed, or the reader stops at them.
        let flags = rng.byte() | if rng.below(4) != 0 { 3 } else { 0 };
        fuzzing::disk(&[[flags].as_slice(), &image].concat());
    }
}

#[test]
fn fuzz_driver_handles_degenerate_inputs() {
    fuzzing::disk(&[]);
    fuzzing::disk(&[0xff]);
    fuzzing::disk(&[0; 4097]);
    fuzzing::disk(&[0xff; 4097]);
    let mut big = vec![0x07];
    big.extend(image(&sample()));
    fuzzing::disk(&big);
}

#[test]
fn read_error_displays_the_callers_error() {
    let e: ReadError<String> = ReadError::Io("disk on fire".to_owned());
    assert_eq!(e.to_string(), "reading the partition table: disk on fire");
}
