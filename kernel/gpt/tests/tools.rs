//! The tables against the tools people point at an image: `sgdisk` (gdisk) and `fdisk`
//! (util-linux) must list exactly what [`Layout`] planned, `sgdisk -v` must find nothing
//! wrong, and a table `sgdisk` writes must read back as `sgdisk` was told to write it.
//!
//! The tools are required, not optional: a missing one is installed (`plinth-setup`:
//! apt as root), or else fails the test saying which package to install, since skipping
//! would pass without checking the one thing these tests are for.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use plinth_gpt::{Guid, Layout, Partition, PartitionSpec, SECTOR, read};
use plinth_setup::{FDISK, Need, SGDISK};

const LINUX: Guid = Guid::from_fields(
    0x0FC63DAF,
    0x8483,
    0x4772,
    [0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4],
);
const ESP: Guid = Guid::from_fields(
    0xC12A7328,
    0xF81F,
    0x11D2,
    [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B],
);

/// An image file in the temp directory, removed when dropped.
struct TempImage(PathBuf);

impl TempImage {
    fn new(tag: &str) -> TempImage {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("plinth-gpt-{}-{n}-{tag}.img", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        TempImage(path)
    }

    /// Writes a layout's tables into a sparse file of the disk's size.
    fn write(tag: &str, layout: &Layout) -> TempImage {
        let image = TempImage::new(tag);
        let f = File::create(&image.0).unwrap();
        f.set_len(layout.disk_sectors * SECTOR as u64).unwrap();
        f.write_all_at(&layout.primary(), 0).unwrap();
        f.write_all_at(&layout.backup(), layout.backup_offset())
            .unwrap();
        image
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The tools these tests compare with.
const TOOLS: [Need; 2] = [SGDISK, FDISK];

/// Runs one of [`TOOLS`], which must succeed; its stdout and stderr. In a UTF-8 locale,
/// so names print as written. Missing tools are installed first, all in one go.
fn run(need: Need, args: &[&str]) -> (String, String) {
    plinth_setup::ensure(&TOOLS).unwrap_or_else(|e| panic!("{e}"));
    let tool = plinth_setup::ensure_command(&need).unwrap_or_else(|e| panic!("{e}"));
    let name = tool.display();
    let out = Command::new(&tool)
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("running {name}: {e}"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?}: {}\n{stdout}\n{stderr}",
        out.status
    );
    (stdout, stderr)
}

fn sgdisk(args: &[&str]) -> String {
    let (stdout, stderr) = run(SGDISK, args);
    assert_eq!(stderr, "", "sgdisk {args:?} warned");
    stdout
}

fn fdisk(args: &[&str]) -> String {
    let (stdout, stderr) = run(FDISK, args);
    assert_eq!(stderr, "", "fdisk {args:?} warned");
    stdout
}

/// The first `n` whitespace-separated fields of a line and the rest of it, trimmed.
fn fields(line: &str, n: usize) -> Option<(Vec<&str>, &str)> {
    let mut rest = line.trim_start();
    let mut out = Vec::new();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        out.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    Some((out, rest.trim_end()))
}

/// Checks `sgdisk -v`, `-p` and `-i` and `fdisk -l` against the layout.
fn check_with_tools(image: &TempImage, layout: &Layout) {
    let path = image.path();

    let verify = sgdisk(&["-v", path]);
    assert!(verify.contains("No problems found"), "sgdisk -v:\n{verify}");

    let print = sgdisk(&["-p", path]);
    let expect_lines = [
        format!("Disk {path}: {} sectors,", layout.disk_sectors),
        format!("Disk identifier (GUID): {}", layout.disk_guid),
        "Partition table holds up to 128 entries".to_owned(),
        "Main partition table begins at sector 2 and ends at sector 33".to_owned(),
        format!(
            "First usable sector is 34, last usable sector is {}",
            layout.last_usable()
        ),
    ];
    for line in &expect_lines {
        assert!(
            print.contains(line.as_str()),
            "sgdisk -p lacks {line:?}:\n{print}"
        );
    }
    // Number, start, end, size (two fields), code, then the name (sgdisk cuts names over
    // 22 characters to 19 and "...").
    let rows: Vec<(Vec<&str>, &str)> = print
        .lines()
        .skip_while(|l| !l.starts_with("Number  Start (sector)"))
        .skip(1)
        .filter_map(|l| fields(l, 6))
        .collect();
    assert_eq!(rows.len(), layout.partitions.len(), "sgdisk -p:\n{print}");
    for (p, (f, name)) in layout.partitions.iter().zip(&rows) {
        let number = (p.index + 1).to_string();
        let (first, last) = (p.first_lba.to_string(), p.last_lba.to_string());
        assert_eq!(&f[..3], [&number, &first, &last], "sgdisk -p:\n{print}");
        if p.name.chars().count() <= 22 {
            assert_eq!(*name, p.name, "sgdisk -p:\n{print}");
        } else {
            let shown: String = p.name.chars().take(19).chain("...".chars()).collect();
            assert_eq!(*name, shown, "sgdisk -p:\n{print}");
        }
    }

    // sgdisk -i has everything of one partition, the name uncut.
    for p in &layout.partitions {
        let info = sgdisk(&["-i", &(p.index + 1).to_string(), path]);
        for line in [
            format!("Partition GUID code: {}", p.type_guid),
            format!("Partition unique GUID: {}", p.unique_guid),
            format!("First sector: {} ", p.first_lba),
            format!("Last sector: {} ", p.last_lba),
            format!("Partition size: {} sectors", p.sectors()),
            "Attribute flags: 0000000000000000".to_owned(),
            format!("Partition name: '{}'", p.name),
        ] {
            assert!(info.contains(&line), "sgdisk -i lacks {line:?}:\n{info}");
        }
    }

    let list = fdisk(&[
        "-l",
        "-o",
        "Device,Start,End,Sectors,Type-UUID,UUID,Name",
        path,
    ]);
    for line in [
        format!("Disk {path}: "),
        format!("{} sectors", layout.disk_sectors),
        "Disklabel type: gpt".to_owned(),
        format!("Disk identifier: {}", layout.disk_guid),
    ] {
        assert!(list.contains(&line), "fdisk -l lacks {line:?}:\n{list}");
    }
    let rows: Vec<(Vec<&str>, &str)> = list
        .lines()
        .filter(|l| l.starts_with(path))
        .filter_map(|l| fields(l, 6))
        .collect();
    assert_eq!(rows.len(), layout.partitions.len(), "fdisk -l:\n{list}");
    for (p, (f, name)) in layout.partitions.iter().zip(&rows) {
        let expected = [
            format!("{path}{}", p.index + 1),
            p.first_lba.to_string(),
            p.last_lba.to_string(),
            p.sectors().to_string(),
            p.type_guid.to_string(),
            p.unique_guid.to_string(),
        ];
        assert_eq!(f, &expected, "fdisk -l:\n{list}");
        assert_eq!(*name, p.name, "fdisk -l:\n{list}");
    }
}

fn guid(n: u8) -> Guid {
    Guid::from_hash([n, 0x5a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
}

#[test]
fn sgdisk_and_fdisk_list_the_planned_partitions() {
    let layout = Layout::plan(
        guid(0),
        &[
            PartitionSpec {
                name: "boot",
                type_guid: ESP,
                unique_guid: guid(1),
                sectors: 2048,
            },
            PartitionSpec {
                name: "catalog",
                type_guid: LINUX,
                unique_guid: guid(2),
                sectors: 3000,
            },
            PartitionSpec {
                name: "one sector",
                type_guid: Guid::parse("8DA63339-0007-60C0-C436-083AC8230908").unwrap(),
                unique_guid: guid(3),
                sectors: 1,
            },
            PartitionSpec {
                name: "données-Ж中",
                type_guid: LINUX,
                unique_guid: guid(4),
                sectors: 4096,
            },
            PartitionSpec {
                name: "abcdefghijklmnopqrstuvwxyzabcdefghij",
                type_guid: LINUX,
                unique_guid: guid(5),
                sectors: 100,
            },
        ],
    )
    .unwrap();
    let image = TempImage::write("listed", &layout);
    check_with_tools(&image, &layout);
}

#[test]
fn a_full_table_and_a_grown_disk_pass_the_tools() {
    let names: Vec<String> = (1..=128).map(|i| format!("p{i}")).collect();
    let specs: Vec<PartitionSpec<'_>> = names
        .iter()
        .zip(1u8..)
        .map(|(name, n)| PartitionSpec {
            name,
            type_guid: LINUX,
            unique_guid: guid(n),
            sectors: u64::from(n),
        })
        .collect();
    let mut layout = Layout::plan(guid(0), &specs).unwrap();
    let image = TempImage::write("full", &layout);
    check_with_tools(&image, &layout);
    drop(image);

    // Free space after the partitions: the backup and the usable range move with the end.
    layout.disk_sectors += 10 * 2048 + 7;
    let image = TempImage::write("grown", &layout);
    check_with_tools(&image, &layout);
}

#[test]
fn an_empty_table_passes_the_tools() {
    let layout = Layout::plan(guid(0), &[]).unwrap();
    let image = TempImage::write("empty", &layout);
    check_with_tools(&image, &layout);
}

/// Reads a table from an image file, the file's size being the disk's.
fn read_file(path: &Path) -> plinth_gpt::Table {
    let f = File::open(path).unwrap();
    let sectors = f.metadata().unwrap().len() / SECTOR as u64;
    read(sectors, |lba, buf| {
        f.read_exact_at(buf, lba * SECTOR as u64)
    })
    .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn a_table_sgdisk_writes_reads_back() {
    let image = TempImage::new("sgdisk");
    File::create(&image.0)
        .unwrap()
        .set_len(20480 * SECTOR as u64)
        .unwrap();
    let disk_guid = guid(10);
    let parts = [
        ("esp", ESP, guid(11), 2048, 4095),
        ("catalog é", LINUX, guid(12), 4096, 7095),
        // Outside the BMP: a surrogate pair on disk.
        ("x😀", LINUX, guid(13), 8192, 8192),
    ];
    let mut args = vec!["-U".to_owned(), disk_guid.to_string()];
    for (i, (name, type_guid, unique, first, last)) in parts.iter().enumerate() {
        let n = i + 1;
        args.extend([
            format!("-n{n}:{first}:{last}"),
            format!("-t{n}:{type_guid}"),
            format!("-u{n}:{unique}"),
            format!("-c{n}:{name}"),
        ]);
    }
    args.push(image.path().to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sgdisk(&args);

    let t = read_file(&image.0);
    assert!(!t.used_backup, "{:?}", t.primary_error);
    assert_eq!(t.disk_guid, disk_guid);
    assert_eq!((t.first_usable, t.last_usable), (34, 20480 - 34));
    let expected: Vec<Partition> = parts
        .iter()
        .zip(0u32..)
        .map(
            |(&(name, type_guid, unique_guid, first_lba, last_lba), index)| Partition {
                index,
                name: name.to_owned(),
                type_guid,
                unique_guid,
                first_lba,
                last_lba,
                attributes: 0,
            },
        )
        .collect();
    assert_eq!(t.partitions, expected);
    assert_eq!(t.find_by_name("catalog é").map(|p| p.first_lba), Some(4096));

    // With its primary table wiped, the backup sgdisk wrote reads the same.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&image.0)
        .unwrap();
    f.write_all_at(&[0; 33 * SECTOR], SECTOR as u64).unwrap();
    drop(f);
    let b = read_file(&image.0);
    assert!(b.used_backup);
    assert_eq!(b.partitions, expected);
}

#[test]
fn the_protective_mbr_is_the_one_sgdisk_writes() {
    // Small; ending on the last CHS-addressable sector (cylinder 1023) and one past it;
    // past the 2 TiB a 32-bit size can say. (`sgdisk` takes a second for each.)
    let chs_sectors = 1024 * 255 * 63;
    for sectors in [10240u64, chs_sectors, chs_sectors + 1, (1 << 32) + 4096] {
        let mut layout = Layout::plan(guid(0), &[]).unwrap();
        layout.disk_sectors = sectors;
        let image = TempImage::new("mbr");
        File::create(&image.0)
            .unwrap()
            .set_len(sectors * SECTOR as u64)
            .unwrap();
        sgdisk(&["-o", image.path()]);
        let mut theirs = [0u8; SECTOR];
        File::open(&image.0)
            .unwrap()
            .read_exact_at(&mut theirs, 0)
            .unwrap();
        assert_eq!(
            layout.primary()[..SECTOR],
            theirs,
            "LBA 0 of a disk of {sectors} sectors"
        );
    }
}
