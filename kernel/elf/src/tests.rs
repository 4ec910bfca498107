//! A valid executable built by hand and every hostile variant of it, each refused with its
//! own error; truncation at every length and random mutations (never a panic); and real
//! executables linked by the system's `cc` and `ld` (installed if missing).

extern crate std;

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use plinth_abi::{IMAGE_BASE, IMAGE_END};
use plinth_testrng::Rng;

use super::*;

const PT_GNU_STACK: u32 = 0x6474_e551;
const R: u32 = abi::PF_R;
const RW: u32 = abi::PF_R | abi::PF_W;
const RX: u32 = abi::PF_R | abi::PF_X;
const RWX: u32 = abi::PF_R | abi::PF_W | abi::PF_X;

/// One program header, as written into the file.
#[derive(Clone, Copy, Debug)]
struct Phdr {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Phdr {
    Phdr {
        p_type: abi::PT_LOAD,
        flags,
        offset,
        vaddr,
        filesz,
        memsz,
    }
}

fn other(p_type: u32) -> Phdr {
    Phdr {
        p_type,
        flags: R,
        offset: 0,
        vaddr: 0,
        filesz: 0,
        memsz: 0,
    }
}

/// An ELF64 file written field by field, so each test can break one thing.
#[derive(Clone, Debug)]
struct Builder {
    class: u8,
    data: u8,
    ident_version: u8,
    e_type: u16,
    machine: u16,
    version: u32,
    entry: u64,
    /// `e_phoff` as written; the table itself is always written at 64.
    phoff: u64,
    phentsize: u16,
    /// `e_phnum` as written, if not the number of `phdrs`.
    phnum: Option<u16>,
    shoff: u64,
    phdrs: Vec<Phdr>,
    len: usize,
}

impl Builder {
    /// Read-only headers and constants, text, and data with bss at an address that is
    /// not page-aligned, plus a `PT_GNU_STACK` and an empty `PT_LOAD` (skipped).
    fn valid() -> Builder {
        Builder {
            class: abi::ELFCLASS64,
            data: abi::ELFDATA2LSB,
            ident_version: 1,
            e_type: abi::ET_EXEC,
            machine: abi::EM_X86_64,
            version: 1,
            entry: IMAGE_BASE + 0x1010,
            phoff: 64,
            phentsize: 56,
            phnum: None,
            shoff: 0,
            phdrs: vec![
                load(R, 0, IMAGE_BASE, 0x200, 0x200),
                load(RX, 0x1000, IMAGE_BASE + 0x1000, 0x100, 0x100),
                load(RW, 0x2010, IMAGE_BASE + 0x3010, 0x40, 0x1800),
                other(PT_GNU_STACK),
                load(RW, 0, 0, 0, 0),
            ],
            len: 0x2050,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let table = 64 + self.phdrs.len() * 56;
        let mut out: Vec<u8> = (0..self.len.max(table)).map(|i| (i * 7) as u8).collect();
        out[..4].copy_from_slice(&abi::ELFMAGIC);
        out[4] = self.class;
        out[5] = self.data;
        out[6] = self.ident_version;
        out[7..16].fill(0);
        let mut at = 16;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        put(&self.e_type.to_le_bytes());
        put(&self.machine.to_le_bytes());
        put(&self.version.to_le_bytes());
        put(&self.entry.to_le_bytes());
        put(&self.phoff.to_le_bytes());
        put(&self.shoff.to_le_bytes());
        put(&0u32.to_le_bytes()); // e_flags
        put(&64u16.to_le_bytes()); // e_ehsize
        put(&self.phentsize.to_le_bytes());
        let phnum = self.phnum.unwrap_or(self.phdrs.len() as u16);
        put(&phnum.to_le_bytes());
        put(&64u16.to_le_bytes()); // e_shentsize
        put(&0u16.to_le_bytes()); // e_shnum
        put(&0u16.to_le_bytes()); // e_shstrndx
        for ph in &self.phdrs {
            put(&ph.p_type.to_le_bytes());
            put(&ph.flags.to_le_bytes());
            put(&ph.offset.to_le_bytes());
            put(&ph.vaddr.to_le_bytes());
            put(&ph.vaddr.to_le_bytes()); // p_paddr
            put(&ph.filesz.to_le_bytes());
            put(&ph.memsz.to_le_bytes());
            put(&PAGE_SIZE.to_le_bytes()); // p_align
        }
        out
    }

    fn parse(&self) -> Result<Executable, ElfError> {
        Executable::parse(&self.bytes(), Window::AGENT, Limits::AGENT)
    }

    fn with(mut self, change: impl FnOnce(&mut Builder)) -> Builder {
        change(&mut self);
        self
    }
}

/// `builder` is refused with exactly `expected`, whose message is one line.
#[track_caller]
fn refused(builder: &Builder, expected: ElfError) {
    assert_eq!(builder.parse(), Err(expected));
    let message = expected.to_string();
    assert!(
        !message.is_empty() && !message.contains('\n'),
        "{message:?}"
    );
}

/// Everything a successful parse promises.
fn check_invariants(file: &[u8], exe: &Executable, window: Window, limits: Limits) {
    assert!(!exe.segments.is_empty() && exe.segments.len() <= limits.max_segments);
    for pair in exe.segments.windows(2) {
        assert!(pair[0].vaddr < pair[1].vaddr);
        assert!(pair[0].pages().end <= pair[1].pages().start);
    }
    let mut bytes = 0u64;
    for s in &exe.segments {
        let pages = s.pages();
        assert!(window.start <= pages.start && pages.end <= window.end);
        assert_eq!(pages.start % PAGE_SIZE, 0);
        assert_eq!(pages.end % PAGE_SIZE, 0);
        assert!(s.mem_size > 0 && s.file_size <= s.mem_size);
        assert_eq!(s.vaddr % PAGE_SIZE, s.file_offset % PAGE_SIZE);
        assert!(!(s.perms.write && s.perms.execute));
        assert_eq!(s.file_bytes(file).len() as u64, s.file_size);
        bytes += pages.end - pages.start;
    }
    assert!(bytes <= limits.max_memory);
    assert_eq!(exe.memory_pages(), bytes / PAGE_SIZE);
    assert!(
        exe.segments.iter().any(|s| {
            s.perms.execute && s.vaddr <= exe.entry && exe.entry < s.vaddr + s.mem_size
        })
    );
}

// ---------------------------------------------------------------------------------------
// Accepted

#[test]
fn a_valid_executable_parses_to_sorted_segments() {
    let builder = Builder::valid();
    let file = builder.bytes();
    let exe = Executable::parse(&file, Window::AGENT, Limits::AGENT).unwrap();
    assert_eq!(exe.entry, IMAGE_BASE + 0x1010);
    let perms = |read, write, execute| Perms {
        read,
        write,
        execute,
    };
    assert_eq!(
        exe.segments,
        vec![
            Segment {
                vaddr: IMAGE_BASE,
                mem_size: 0x200,
                file_offset: 0,
                file_size: 0x200,
                perms: perms(true, false, false),
            },
            Segment {
                vaddr: IMAGE_BASE + 0x1000,
                mem_size: 0x100,
                file_offset: 0x1000,
                file_size: 0x100,
                perms: perms(true, false, true),
            },
            Segment {
                vaddr: IMAGE_BASE + 0x3010,
                mem_size: 0x1800,
                file_offset: 0x2010,
                file_size: 0x40,
                perms: perms(true, true, false),
            },
        ]
    );
    assert_eq!(
        exe.segments[2].pages(),
        IMAGE_BASE + 0x3000..IMAGE_BASE + 0x5000
    );
    assert_eq!(exe.segments[1].file_bytes(&file), &file[0x1000..0x1100]);
    assert_eq!(exe.memory_pages(), 4);
    check_invariants(&file, &exe, Window::AGENT, Limits::AGENT);
}

#[test]
fn segments_out_of_order_sections_and_the_last_byte_are_fine() {
    // Program headers in reverse address order, section headers pointing nowhere (they
    // are never read), the entry at the last byte of text, and the image ending exactly
    // at the end of the window.
    let builder = Builder::valid().with(|b| {
        b.phdrs.reverse();
        b.shoff = u64::MAX;
        b.entry = IMAGE_BASE + 0x10ff;
        b.phdrs.push(load(RW, 0x10, IMAGE_END - 0x1ff0, 0, 0x1ff0));
    });
    let exe = builder.parse().unwrap();
    assert_eq!(exe.segments.len(), 4);
    assert_eq!(exe.segments[3].pages().end, IMAGE_END);
    check_invariants(&builder.bytes(), &exe, Window::AGENT, Limits::AGENT);
}

#[test]
fn sixteen_segments_are_the_limit() {
    let segments = |n: u64| {
        Builder::valid().with(|b| {
            b.entry = IMAGE_BASE;
            b.phdrs = (0..n)
                .map(|i| load(RX, 0, IMAGE_BASE + i * 0x10_0000, 0x10, 0x10))
                .collect();
        })
    };
    assert_eq!(segments(16).parse().unwrap().segments.len(), 16);
    refused(
        &segments(17),
        ElfError::TooManySegments { count: 17, max: 16 },
    );
}

#[test]
fn file_bytes_of_a_segment_outside_the_file_are_empty() {
    let segment = Segment {
        vaddr: IMAGE_BASE,
        mem_size: 0x10,
        file_offset: u64::MAX,
        file_size: 2,
        perms: Perms {
            read: true,
            write: false,
            execute: false,
        },
    };
    assert_eq!(segment.file_bytes(&[1, 2, 3]), &[] as &[u8]);
}

// ---------------------------------------------------------------------------------------
// Refused: the file header

#[test]
fn not_elf() {
    for file in [&b"MZ\x90\x00"[..], b"\x7fELG", b"E", b"#!/bin/sh\n"] {
        assert_eq!(
            Executable::parse(file, Window::AGENT, Limits::AGENT),
            Err(ElfError::NotElf)
        );
    }
}

#[test]
fn truncated_header() {
    let file = Builder::valid().bytes();
    for len in [0, 3, 4, 15, 16, 40, 63] {
        assert_eq!(
            Executable::parse(&file[..len], Window::AGENT, Limits::AGENT),
            Err(ElfError::Truncated { len, needed: 64 })
        );
    }
}

#[test]
fn bad_version() {
    refused(
        &Builder::valid().with(|b| b.ident_version = 2),
        ElfError::BadVersion { version: 2 },
    );
    refused(
        &Builder::valid().with(|b| b.version = 0),
        ElfError::BadVersion { version: 0 },
    );
}

#[test]
fn not_64_bit() {
    for class in [0, 1, 3, 0xff] {
        refused(
            &Builder::valid().with(|b| b.class = class),
            ElfError::NotElf64 { class },
        );
    }
}

#[test]
fn not_little_endian() {
    for data in [0, 2, 3] {
        refused(
            &Builder::valid().with(|b| b.data = data),
            ElfError::NotLittleEndian { data },
        );
    }
}

#[test]
fn not_x86_64() {
    for machine in [0, 3, 40, 183, 243] {
        refused(
            &Builder::valid().with(|b| b.machine = machine),
            ElfError::NotX86_64 { machine },
        );
    }
}

#[test]
fn position_independent_is_refused_with_a_clear_message() {
    refused(
        &Builder::valid().with(|b| b.e_type = abi::ET_DYN),
        ElfError::PositionIndependent,
    );
    assert!(
        ElfError::PositionIndependent
            .to_string()
            .contains("static non-PIE executables only")
    );
}

#[test]
fn not_an_executable() {
    for e_type in [0, abi::ET_REL, 4, 0xfe00] {
        refused(
            &Builder::valid().with(|b| b.e_type = e_type),
            ElfError::NotExecutable { e_type },
        );
    }
}

// ---------------------------------------------------------------------------------------
// Refused: the program header table

#[test]
fn no_program_headers() {
    refused(
        &Builder::valid().with(|b| b.phnum = Some(0)),
        ElfError::NoLoadSegment,
    );
}

#[test]
fn extended_program_header_count() {
    refused(
        &Builder::valid().with(|b| b.phnum = Some(0xffff)),
        ElfError::ExtendedProgramHeaderCount,
    );
}

#[test]
fn bad_program_header_size() {
    for size in [0, 32, 55, 57, 64] {
        refused(
            &Builder::valid().with(|b| b.phentsize = size),
            ElfError::BadProgramHeaderSize { size },
        );
    }
}

#[test]
fn program_headers_outside_the_file() {
    for offset in [0x2050 - 56, 0x10_0000, u64::MAX - 8, u64::MAX] {
        refused(
            &Builder::valid().with(|b| b.phoff = offset),
            ElfError::ProgramHeadersOutsideFile { offset, count: 5 },
        );
    }
    refused(
        &Builder::valid().with(|b| b.phnum = Some(1000)),
        ElfError::ProgramHeadersOutsideFile {
            offset: 64,
            count: 1000,
        },
    );
}

#[test]
fn dynamically_linked() {
    for p_type in [abi::PT_INTERP, abi::PT_DYNAMIC] {
        let builder = Builder::valid().with(|b| b.phdrs.insert(1, other(p_type)));
        refused(&builder, ElfError::DynamicallyLinked { index: 1, p_type });
    }
    let message = ElfError::DynamicallyLinked {
        index: 1,
        p_type: abi::PT_INTERP,
    }
    .to_string();
    assert!(message.contains("PT_INTERP") && message.contains("dynamically linked"));
}

#[test]
fn thread_local_storage() {
    refused(
        &Builder::valid().with(|b| b.phdrs.push(other(abi::PT_TLS))),
        ElfError::ThreadLocalStorage { index: 5 },
    );
}

#[test]
fn no_load_segment() {
    refused(
        &Builder::valid().with(|b| b.phdrs = vec![other(PT_GNU_STACK), other(abi::PT_NOTE)]),
        ElfError::NoLoadSegment,
    );
    refused(
        &Builder::valid().with(|b| b.phdrs = vec![load(RX, 0, IMAGE_BASE, 0, 0)]),
        ElfError::NoLoadSegment,
    );
}

#[test]
fn too_many_segments_for_the_limits() {
    let file = Builder::valid().bytes();
    let limits = Limits {
        max_segments: 2,
        ..Limits::AGENT
    };
    assert_eq!(
        Executable::parse(&file, Window::AGENT, limits),
        Err(ElfError::TooManySegments { count: 3, max: 2 })
    );
}

// ---------------------------------------------------------------------------------------
// Refused: one segment

#[test]
fn file_size_exceeds_mem_size() {
    refused(
        &Builder::valid().with(|b| b.phdrs[1].filesz = 0x101),
        ElfError::FileSizeExceedsMemSize {
            index: 1,
            file_size: 0x101,
            mem_size: 0x100,
        },
    );
    // Even with no memory at all: such an entry is not "empty".
    refused(
        &Builder::valid().with(|b| b.phdrs[4].filesz = 1),
        ElfError::FileSizeExceedsMemSize {
            index: 4,
            file_size: 1,
            mem_size: 0,
        },
    );
}

#[test]
fn file_range_outside_the_file() {
    refused(
        &Builder::valid().with(|b| b.phdrs[2].filesz = 0x41),
        ElfError::FileRangeOutsideFile {
            index: 2,
            offset: 0x2010,
            file_size: 0x41,
        },
    );
    // offset + size overflows.
    let offset = u64::MAX - 0xfff;
    refused(
        &Builder::valid().with(|b| {
            b.phdrs[0].offset = offset;
            b.phdrs[0].filesz = 0x1000;
            b.phdrs[0].memsz = 0x1000;
        }),
        ElfError::FileRangeOutsideFile {
            index: 0,
            offset,
            file_size: 0x1000,
        },
    );
}

#[test]
fn address_overflow() {
    let vaddr = u64::MAX - 0xff;
    refused(
        &Builder::valid().with(|b| {
            b.phdrs[1].vaddr = vaddr;
            b.phdrs[1].offset = 0xf00;
            b.phdrs[1].filesz = 0;
            b.phdrs[1].memsz = 0x200;
        }),
        ElfError::AddressOverflow {
            index: 1,
            vaddr,
            mem_size: 0x200,
        },
    );
    // The end itself fits, rounding it up to a page does not.
    refused(
        &Builder::valid().with(|b| {
            b.phdrs[1].vaddr = vaddr;
            b.phdrs[1].offset = 0xf00;
            b.phdrs[1].filesz = 0;
            b.phdrs[1].memsz = 0x10;
        }),
        ElfError::AddressOverflow {
            index: 1,
            vaddr,
            mem_size: 0x10,
        },
    );
}

#[test]
fn misaligned() {
    refused(
        &Builder::valid().with(|b| b.phdrs[1].offset = 0x1008),
        ElfError::Misaligned {
            index: 1,
            vaddr: IMAGE_BASE + 0x1000,
            offset: 0x1008,
        },
    );
}

#[test]
fn outside_the_window() {
    // Below, above, and straddling the end by one byte.
    let cases = [
        (IMAGE_BASE - 0x1000, IMAGE_BASE - 0x1000, IMAGE_BASE),
        (IMAGE_END, IMAGE_END, IMAGE_END + 0x1000),
        (IMAGE_END - 0xff, IMAGE_END - 0x1000, IMAGE_END + 0x1000),
    ];
    for (vaddr, start, end) in cases {
        refused(
            &Builder::valid().with(|b| {
                b.phdrs[2].vaddr = vaddr;
                b.phdrs[2].offset = vaddr % PAGE_SIZE;
                b.phdrs[2].filesz = 0;
                b.phdrs[2].memsz = 0x100;
            }),
            ElfError::OutsideWindow {
                index: 2,
                start,
                end,
            },
        );
    }
    // A window that does not start on a page: the segment's first page sticks out.
    let window = Window {
        start: IMAGE_BASE + 0x10,
        end: IMAGE_END,
    };
    assert_eq!(
        Executable::parse(&Builder::valid().bytes(), window, Limits::AGENT),
        Err(ElfError::OutsideWindow {
            index: 0,
            start: IMAGE_BASE,
            end: IMAGE_BASE + 0x1000,
        })
    );
}

#[test]
fn writable_and_executable() {
    refused(
        &Builder::valid().with(|b| b.phdrs[1].flags = RWX),
        ElfError::WritableAndExecutable {
            index: 1,
            vaddr: IMAGE_BASE + 0x1000,
        },
    );
    let message = ElfError::WritableAndExecutable {
        index: 2,
        vaddr: 0x80_0040_3010,
    }
    .to_string();
    assert_eq!(
        message,
        "segment 2 at 0x8000403010 is writable and executable"
    );
}

// ---------------------------------------------------------------------------------------
// Refused: the segments together

#[test]
fn segments_sharing_a_page() {
    // Data starting in the page where text ends.
    refused(
        &Builder::valid().with(|b| {
            b.phdrs[2].vaddr = IMAGE_BASE + 0x1800;
            b.phdrs[2].offset = 0x1800;
        }),
        ElfError::Overlap {
            index: 1,
            other: 2,
            page: IMAGE_BASE + 0x1000,
        },
    );
    // One inside another, listed first.
    refused(
        &Builder::valid().with(|b| b.phdrs[0].memsz = 0x4000),
        ElfError::Overlap {
            index: 0,
            other: 1,
            page: IMAGE_BASE + 0x1000,
        },
    );
    // The same address twice.
    refused(
        &Builder::valid().with(|b| b.phdrs.push(load(R, 0, IMAGE_BASE, 0x10, 0x10))),
        ElfError::Overlap {
            index: 0,
            other: 5,
            page: IMAGE_BASE,
        },
    );
}

#[test]
fn entry_not_in_an_executable_segment() {
    for entry in [
        0,
        IMAGE_BASE + 0x10,   // read-only
        IMAGE_BASE + 0x3100, // data
        IMAGE_BASE + 0x1100, // one past the end of text
        IMAGE_BASE + 0xfff,  // just before text
        u64::MAX,
    ] {
        refused(
            &Builder::valid().with(|b| b.entry = entry),
            ElfError::EntryNotExecutable { entry },
        );
    }
}

#[test]
fn too_much_memory() {
    let limits = Limits {
        max_memory: 3 * PAGE_SIZE,
        ..Limits::AGENT
    };
    assert_eq!(
        Executable::parse(&Builder::valid().bytes(), Window::AGENT, limits),
        Err(ElfError::TooMuchMemory {
            bytes: 4 * PAGE_SIZE,
            max: 3 * PAGE_SIZE,
        })
    );
}

// ---------------------------------------------------------------------------------------
// Hostile bytes

#[test]
fn every_truncation_is_refused() {
    let file = Builder::valid().bytes();
    for len in 0..file.len() {
        let result = Executable::parse(&file[..len], Window::AGENT, Limits::AGENT);
        assert!(result.is_err(), "accepted {len} bytes");
    }
}

#[test]
fn random_mutations_never_panic() {
    let file = Builder::valid().bytes();
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for _ in 0..5000 {
        let mut bytes = file.clone();
        // Mostly the headers, where every byte means something.
        let area = if rng.below(4) == 0 {
            bytes.len()
        } else {
            64 + 5 * 56
        };
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(area);
            bytes[at] = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                2 => bytes[at] ^ (1 << rng.below(8)),
                _ => rng.byte(),
            };
        }
        if rng.below(8) == 0 {
            bytes.truncate(rng.below(bytes.len()));
        }
        if let Ok(exe) = Executable::parse(&bytes, Window::AGENT, Limits::AGENT) {
            check_invariants(&bytes, &exe, Window::AGENT, Limits::AGENT);
            accepted += 1;
        }
    }
    // Flipping bytes of padding and some fields keeps a valid file valid.
    assert!(accepted > 0);
}

#[test]
fn random_headers_never_panic() {
    // Random program headers in a valid file header: many overflow every which way.
    let mut rng = Rng::new(0x1234_5678_9abc_def1);
    let interesting = |rng: &mut Rng| match rng.below(6) {
        0 => 0,
        1 => u64::MAX - rng.below_u64(0x2000),
        2 => IMAGE_BASE + rng.below_u64(0x1_0000),
        3 => IMAGE_END - rng.below_u64(0x1_0000),
        4 => rng.below_u64(0x3000),
        _ => rng.next_u64(),
    };
    for _ in 0..3000 {
        let builder = Builder::valid().with(|b| {
            b.entry = interesting(&mut rng);
            let n = rng.below(6);
            b.phdrs = (0..n)
                .map(|_| Phdr {
                    p_type: if rng.below(4) == 0 {
                        rng.below(8) as u32
                    } else {
                        abi::PT_LOAD
                    },
                    flags: rng.below(8) as u32,
                    offset: interesting(&mut rng),
                    vaddr: interesting(&mut rng),
                    filesz: interesting(&mut rng),
                    memsz: interesting(&mut rng),
                })
                .collect();
        });
        let file = builder.bytes();
        if let Ok(exe) = Executable::parse(&file, Window::AGENT, Limits::AGENT) {
            check_invariants(&file, &exe, Window::AGENT, Limits::AGENT);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Real executables, linked by the system's `cc` and `ld`

/// What linking real executables takes: a C compiler, and glibc's static archive for the
/// hosted static case. Required, not optional: a machine without them gets them through
/// `plinth-setup` (apt as root), else the test fails naming the package, since skipping
/// would pass having checked nothing.
fn toolchain() -> [plinth_setup::Need; 2] {
    [
        plinth_setup::Need::cmd("cc", "gcc"),
        plinth_setup::Need::file("/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"),
    ]
}

/// Links `source` with `cc` and these flags; panics with `cc`'s own words if it cannot.
fn link(name: &str, source: &str, flags: &[&str]) -> Vec<u8> {
    use std::process::Command;
    plinth_setup::ensure(&toolchain()).unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(std::format!("plinth-elf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let c = dir.join(std::format!("{name}.c"));
    let out = dir.join(name);
    std::fs::write(&c, source).unwrap_or_else(|e| panic!("{}: {e}", c.display()));
    let run = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&c)
        .output()
        .unwrap_or_else(|e| panic!("cannot run cc: {e}"));
    assert!(
        run.status.success(),
        "cc {flags:?} {name}.c: {}\n{}",
        run.status,
        std::string::String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()))
}

const FREESTANDING: &str = "static const char msg[] = \"hi\";\n\
    char buf[8192];\n\
    void _start(void) { buf[0] = msg[0]; for (;;) {} }\n";
const HOSTED: &str = "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n";

#[test]
fn a_real_static_executable_linked_into_the_window_parses() {
    let text_segment = std::format!("-Wl,-Ttext-segment={IMAGE_BASE:#x}");
    let flags = [
        "-static",
        "-nostdlib",
        "-no-pie",
        "-O2",
        text_segment.as_str(),
    ];
    let file = link("freestanding", FREESTANDING, &flags);
    let exe = Executable::parse(&file, Window::AGENT, Limits::AGENT).unwrap();
    check_invariants(&file, &exe, Window::AGENT, Limits::AGENT);
    assert!(
        exe.segments
            .iter()
            .any(|s| s.perms.write && s.mem_size >= 8192)
    );
    // Linked at the default address, it is outside the agent window.
    let file = link("low", FREESTANDING, &flags[..4]);
    assert!(matches!(
        Executable::parse(&file, Window::AGENT, Limits::AGENT),
        Err(ElfError::OutsideWindow { .. })
    ));
}

#[test]
fn real_executables_that_are_not_agents_are_refused() {
    type Expected = fn(&ElfError) -> bool;
    let cases: [(&str, &[&str], Expected); 3] = [
        ("pie", &["-pie", "-fPIE"], |e| {
            *e == ElfError::PositionIndependent
        }),
        ("dynamic", &["-no-pie"], |e| {
            matches!(e, ElfError::DynamicallyLinked { .. })
        }),
        // glibc's static executables carry a PT_TLS segment.
        ("glibc_static", &["-static", "-no-pie"], |e| {
            matches!(e, ElfError::ThreadLocalStorage { .. })
        }),
    ];
    for (name, flags, expected) in cases {
        let file = link(name, HOSTED, flags);
        let wide = Window {
            start: 0,
            end: u64::MAX,
        };
        let result = Executable::parse(&file, wide, Limits::AGENT);
        assert!(result.as_ref().is_err_and(expected), "{name}: {result:?}");
    }
}

#[test]
fn every_error_has_a_one_line_message() {
    let all = [
        ElfError::NotElf,
        ElfError::Truncated { len: 3, needed: 64 },
        ElfError::BadVersion { version: 2 },
        ElfError::NotElf64 { class: 1 },
        ElfError::NotLittleEndian { data: 2 },
        ElfError::NotX86_64 { machine: 3 },
        ElfError::PositionIndependent,
        ElfError::NotExecutable { e_type: 1 },
        ElfError::ExtendedProgramHeaderCount,
        ElfError::BadProgramHeaderSize { size: 32 },
        ElfError::ProgramHeadersOutsideFile {
            offset: 0x40,
            count: 9,
        },
        ElfError::Malformed,
        ElfError::DynamicallyLinked {
            index: 1,
            p_type: abi::PT_DYNAMIC,
        },
        ElfError::ThreadLocalStorage { index: 4 },
        ElfError::NoLoadSegment,
        ElfError::TooManySegments { count: 17, max: 16 },
        ElfError::FileSizeExceedsMemSize {
            index: 0,
            file_size: 2,
            mem_size: 1,
        },
        ElfError::FileRangeOutsideFile {
            index: 0,
            offset: 0,
            file_size: 1,
        },
        ElfError::AddressOverflow {
            index: 0,
            vaddr: u64::MAX,
            mem_size: 1,
        },
        ElfError::Misaligned {
            index: 0,
            vaddr: 0x1000,
            offset: 8,
        },
        ElfError::OutsideWindow {
            index: 0,
            start: 0,
            end: 0x1000,
        },
        ElfError::Overlap {
            index: 0,
            other: 1,
            page: 0x1000,
        },
        ElfError::WritableAndExecutable { index: 0, vaddr: 0 },
        ElfError::EntryNotExecutable { entry: 0 },
        ElfError::TooMuchMemory { bytes: 2, max: 1 },
    ];
    let mut seen = std::collections::BTreeSet::new();
    for e in all {
        let message = e.to_string();
        assert!(
            !message.is_empty() && !message.contains('\n'),
            "{message:?}"
        );
        assert!(seen.insert(message), "{e:?}");
    }
}
