//! Agent executables: validating a static ELF64 x86_64 file before anything is mapped.
//!
//! Owns the decision whether an agent's executable may be loaded into a partition's user
//! window, and the plan for loading it: [`Executable::parse`] reads the file header and
//! the program header table (through the zero-copy `elf` crate), refuses anything the
//! kernel could not map safely page by page, and returns the entry point and the
//! `PT_LOAD` segments sorted by address, each with its pages, its bytes in the file and
//! its permissions. The file is hostile: every offset, size and address is checked with
//! overflow-safe arithmetic before it is used, nothing is allocated from a count the file
//! claims until that count is capped, and no input makes it panic.
//!
//! It must not touch page tables, allocate or zero user frames, or read a file system:
//! the kernel maps what [`Executable`] describes, from bytes the caller already holds.
//! Section headers, symbols and relocations are never read (a static non-PIE executable
//! needs none of them to run).
//!
//! What [`Executable::parse`] accepts:
//!
//! - **Header**: ELF magic, version 1, 64-bit, little-endian, `EM_X86_64`, type
//!   `ET_EXEC`. Position-independent (`ET_DYN`) executables and shared objects are
//!   refused: agents are static, non-PIE executables linked at
//!   [`plinth_abi::IMAGE_BASE`].
//! - **Program headers**: 56-byte entries, wholly inside the file; no `PT_INTERP` or
//!   `PT_DYNAMIC` (dynamically linked), no `PT_TLS` (thread-local storage is not set up).
//! - **Loadable segments**: 1 to [`Limits::max_segments`] `PT_LOAD`s of non-zero memory
//!   size (those of size zero are skipped); each with its file size at most its memory
//!   size, its file bytes inside the file, no address overflow, its address and file
//!   offset equal modulo the page size, its pages inside the [`Window`], and not both
//!   writable and executable (W^X). No page may belong to two segments, the entry point
//!   must lie inside an executable segment, and the segments' pages together must fit
//!   [`Limits::max_memory`].
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use elf::abi;
use elf::endian::LittleEndian;
use elf::file::{Class, FileHeader};
use elf::parse::ParseError;
use elf::segment::{ProgramHeader, SegmentTable};

/// Page size segments are mapped with, bytes.
pub const PAGE_SIZE: u64 = plinth_abi::PAGE_SIZE;
/// Size of an ELF64 file header, bytes.
const EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header, bytes.
const PHDR_SIZE: usize = 56;

/// The virtual range `[start, end)` an executable's pages must lie in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First allowed address.
    pub start: u64,
    /// End of the allowed range (exclusive).
    pub end: u64,
}

impl Window {
    /// Where agent executables live: [`plinth_abi::IMAGE_BASE`] to
    /// [`plinth_abi::IMAGE_END`].
    pub const AGENT: Window = Window {
        start: plinth_abi::IMAGE_BASE,
        end: plinth_abi::IMAGE_END,
    };
}

/// How much an executable may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most `PT_LOAD` segments of non-zero size.
    pub max_segments: usize,
    /// Most memory, bytes: the page-rounded sizes of all segments added up.
    pub max_memory: u64,
}

impl Limits {
    /// An agent: 16 segments, and no more memory than its image window holds.
    pub const AGENT: Limits = Limits {
        max_segments: 16,
        max_memory: plinth_abi::IMAGE_END - plinth_abi::IMAGE_BASE,
    };
}

/// What a segment's pages allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    /// `PF_R`.
    pub read: bool,
    /// `PF_W`.
    pub write: bool,
    /// `PF_X`.
    pub execute: bool,
}

impl Perms {
    fn from_flags(flags: u32) -> Perms {
        Perms {
            read: flags & abi::PF_R != 0,
            write: flags & abi::PF_W != 0,
            execute: flags & abi::PF_X != 0,
        }
    }
}

/// One loadable segment: `mem_size` bytes at `vaddr`, the first `file_size` of them
/// copied from the file at `file_offset` and the rest zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Where the segment starts (not necessarily page-aligned).
    pub vaddr: u64,
    /// Bytes in memory; never zero.
    pub mem_size: u64,
    /// Where its bytes start in the file; equal to `vaddr` modulo [`PAGE_SIZE`].
    pub file_offset: u64,
    /// Bytes from the file; at most `mem_size`.
    pub file_size: u64,
    /// What its pages allow; never both `write` and `execute`.
    pub perms: Perms,
}

impl Segment {
    /// The page-aligned range covering `vaddr..vaddr + mem_size`.
    pub fn pages(&self) -> Range<u64> {
        let start = self.vaddr & !(PAGE_SIZE - 1);
        let end = self
            .vaddr
            .saturating_add(self.mem_size)
            .saturating_add(PAGE_SIZE - 1)
            & !(PAGE_SIZE - 1);
        start..end
    }

    /// The segment's bytes in `file` (the file it was parsed from). Empty if the range is
    /// not inside `file`, which [`Executable::parse`] rules out for the file it was given.
    pub fn file_bytes<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        let range = usize::try_from(self.file_offset).ok().and_then(|start| {
            let len = usize::try_from(self.file_size).ok()?;
            Some(start..start.checked_add(len)?)
        });
        range.and_then(|r| file.get(r)).unwrap_or(&[])
    }
}

/// A validated executable: where to start and what to map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executable {
    /// The entry point; inside an executable segment.
    pub entry: u64,
    /// The loadable segments, sorted by `vaddr`, sharing no page.
    pub segments: Vec<Segment>,
}

impl Executable {
    /// Validates `file` as a static ELF64 x86_64 executable whose pages lie inside
    /// `window` and which stays within `limits`.
    pub fn parse(file: &[u8], window: Window, limits: Limits) -> Result<Executable, ElfError> {
        let header = file_header(file)?;
        let table = program_headers(file, &header)?;

        // First the kinds of segment, and how many loadable ones there are, before
        // anything is allocated for them.
        let mut loads = 0usize;
        for index in 0..table.len() {
            let ph = program_header(&table, index)?;
            match ph.p_type {
                abi::PT_INTERP | abi::PT_DYNAMIC => {
                    return Err(ElfError::DynamicallyLinked {
                        index,
                        p_type: ph.p_type,
                    });
                }
                abi::PT_TLS => return Err(ElfError::ThreadLocalStorage { index }),
                abi::PT_LOAD if ph.p_memsz != 0 || ph.p_filesz != 0 => loads += 1,
                _ => {}
            }
        }
        if loads == 0 {
            return Err(ElfError::NoLoadSegment);
        }
        if loads > limits.max_segments {
            return Err(ElfError::TooManySegments {
                count: loads,
                max: limits.max_segments,
            });
        }

        let mut found: Vec<(usize, Segment)> = Vec::with_capacity(loads);
        for index in 0..table.len() {
            let ph = program_header(&table, index)?;
            if ph.p_type == abi::PT_LOAD
                && let Some(segment) = load_segment(index, &ph, file.len(), window)?
            {
                found.push((index, segment));
            }
        }
        if found.is_empty() {
            return Err(ElfError::NoLoadSegment);
        }

        // Sorted by start, two segments share a page only if two neighbours do.
        found.sort_unstable_by_key(|(_, segment)| segment.vaddr);
        for pair in found.windows(2) {
            let (a, first) = &pair[0];
            let (b, second) = &pair[1];
            if second.pages().start < first.pages().end {
                return Err(ElfError::Overlap {
                    index: *a.min(b),
                    other: *a.max(b),
                    page: second.pages().start,
                });
            }
        }
        let segments: Vec<Segment> = found.into_iter().map(|(_, segment)| segment).collect();

        let entry = header.e_entry;
        let runs_entry =
            |s: &Segment| s.perms.execute && entry >= s.vaddr && entry - s.vaddr < s.mem_size;
        if !segments.iter().any(runs_entry) {
            return Err(ElfError::EntryNotExecutable { entry });
        }

        let executable = Executable { entry, segments };
        let bytes = executable.memory_bytes();
        if bytes > limits.max_memory {
            return Err(ElfError::TooMuchMemory {
                bytes,
                max: limits.max_memory,
            });
        }
        Ok(executable)
    }

    /// How many pages the segments occupy together.
    pub fn memory_pages(&self) -> u64 {
        self.memory_bytes() / PAGE_SIZE
    }

    fn memory_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| {
                let pages = s.pages();
                pages.end - pages.start
            })
            .fold(0u64, u64::saturating_add)
    }
}

/// Why an executable was refused. Segment indices are positions in the program header
/// table, as `readelf -l` numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The file does not start with the ELF magic bytes.
    NotElf,
    /// The file ends inside its ELF header.
    Truncated {
        /// Length of the file, bytes.
        len: usize,
        /// Length of an ELF64 header, bytes.
        needed: usize,
    },
    /// `EI_VERSION` or `e_version` is not 1 (`EV_CURRENT`).
    BadVersion {
        /// The version found.
        version: u32,
    },
    /// `EI_CLASS` is not `ELFCLASS64`.
    NotElf64 {
        /// The class byte found (1 is 32-bit).
        class: u8,
    },
    /// `EI_DATA` is not `ELFDATA2LSB`.
    NotLittleEndian {
        /// The data-encoding byte found (2 is big-endian).
        data: u8,
    },
    /// `e_machine` is not `EM_X86_64` (62).
    NotX86_64 {
        /// The machine found.
        machine: u16,
    },
    /// `e_type` is `ET_DYN`: a position-independent executable or a shared object.
    PositionIndependent,
    /// `e_type` is neither `ET_EXEC` nor `ET_DYN` (a relocatable object, a core file...).
    NotExecutable {
        /// The type found.
        e_type: u16,
    },
    /// `e_phnum` is `PN_XNUM`: the count would be in section header 0, which is not read.
    ExtendedProgramHeaderCount,
    /// `e_phentsize` is not 56 (with a non-empty table).
    BadProgramHeaderSize {
        /// The entry size found.
        size: u16,
    },
    /// The program header table does not lie inside the file.
    ProgramHeadersOutsideFile {
        /// `e_phoff`.
        offset: u64,
        /// `e_phnum`.
        count: u16,
    },
    /// The `elf` crate refused a structure the checks above let through.
    Malformed,
    /// A `PT_INTERP` or `PT_DYNAMIC` segment: the file needs a dynamic linker.
    DynamicallyLinked {
        /// Program header index.
        index: usize,
        /// `PT_INTERP` (3) or `PT_DYNAMIC` (2).
        p_type: u32,
    },
    /// A `PT_TLS` segment: thread-local storage is not supported.
    ThreadLocalStorage {
        /// Program header index.
        index: usize,
    },
    /// No `PT_LOAD` segment of non-zero size.
    NoLoadSegment,
    /// More `PT_LOAD` segments than [`Limits::max_segments`].
    TooManySegments {
        /// Non-empty `PT_LOAD` segments in the file.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A segment with more bytes in the file than in memory.
    FileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        file_size: u64,
        /// `p_memsz`.
        mem_size: u64,
    },
    /// A segment whose file bytes are not inside the file (or whose end overflows).
    FileRangeOutsideFile {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        file_size: u64,
    },
    /// A segment whose end (rounded up to a page) overflows the address space.
    AddressOverflow {
        /// Program header index.
        index: usize,
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_memsz`.
        mem_size: u64,
    },
    /// A segment whose address and file offset differ modulo the page size, so its pages
    /// cannot be filled page by page from the file.
    Misaligned {
        /// Program header index.
        index: usize,
        /// `p_vaddr`.
        vaddr: u64,
        /// `p_offset`.
        offset: u64,
    },
    /// A segment whose pages are not all inside the [`Window`].
    OutsideWindow {
        /// Program header index.
        index: usize,
        /// First page.
        start: u64,
        /// End of its last page.
        end: u64,
    },
    /// Two segments share a page.
    Overlap {
        /// Program header index of one.
        index: usize,
        /// Program header index of the other.
        other: usize,
        /// The first page they share.
        page: u64,
    },
    /// A segment both writable and executable (W^X).
    WritableAndExecutable {
        /// Program header index.
        index: usize,
        /// `p_vaddr`.
        vaddr: u64,
    },
    /// The entry point is not inside an executable segment.
    EntryNotExecutable {
        /// `e_entry`.
        entry: u64,
    },
    /// The segments' pages add up to more than [`Limits::max_memory`].
    TooMuchMemory {
        /// Page-rounded bytes asked for.
        bytes: u64,
        /// The limit.
        max: u64,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ElfError::NotElf => f.write_str("not an ELF file (bad magic bytes)"),
            ElfError::Truncated { len, needed } => write!(
                f,
                "truncated ELF header: the file is {len} bytes, the header needs {needed}"
            ),
            ElfError::BadVersion { version } => {
                write!(f, "unsupported ELF version {version} (expected 1)")
            }
            ElfError::NotElf64 { class } => {
                write!(f, "not a 64-bit ELF file (class {class}, expected 2)")
            }
            ElfError::NotLittleEndian { data } => {
                write!(
                    f,
                    "not a little-endian ELF file (data encoding {data}, expected 1)"
                )
            }
            ElfError::NotX86_64 { machine } => {
                write!(
                    f,
                    "not an x86_64 executable (machine {machine}, expected 62)"
                )
            }
            ElfError::PositionIndependent => f.write_str(
                "position-independent executable or shared object (ET_DYN): \
                 static non-PIE executables only",
            ),
            ElfError::NotExecutable { e_type } => {
                write!(
                    f,
                    "not an executable (ELF type {e_type}, expected 2 = ET_EXEC)"
                )
            }
            ElfError::ExtendedProgramHeaderCount => {
                f.write_str("extended program header numbering (e_phnum = 0xffff) is unsupported")
            }
            ElfError::BadProgramHeaderSize { size } => {
                write!(f, "program header entries are {size} bytes, expected 56")
            }
            ElfError::ProgramHeadersOutsideFile { offset, count } => write!(
                f,
                "program header table ({count} entries at offset {offset:#x}) is outside the file"
            ),
            ElfError::Malformed => f.write_str("malformed ELF structure"),
            ElfError::DynamicallyLinked { index, p_type } => {
                let kind = if p_type == abi::PT_INTERP {
                    "PT_INTERP"
                } else {
                    "PT_DYNAMIC"
                };
                write!(
                    f,
                    "segment {index} is {kind}: dynamically linked, static executables only"
                )
            }
            ElfError::ThreadLocalStorage { index } => {
                write!(
                    f,
                    "segment {index} is PT_TLS: thread-local storage is unsupported"
                )
            }
            ElfError::NoLoadSegment => f.write_str("no loadable (PT_LOAD) segment"),
            ElfError::TooManySegments { count, max } => {
                write!(f, "{count} loadable segments, at most {max} allowed")
            }
            ElfError::FileSizeExceedsMemSize {
                index,
                file_size,
                mem_size,
            } => write!(
                f,
                "segment {index} has {file_size:#x} bytes in the file but only {mem_size:#x} in memory"
            ),
            ElfError::FileRangeOutsideFile {
                index,
                offset,
                file_size,
            } => write!(
                f,
                "segment {index} ({file_size:#x} bytes at offset {offset:#x}) is outside the file"
            ),
            ElfError::AddressOverflow {
                index,
                vaddr,
                mem_size,
            } => write!(
                f,
                "segment {index} at {vaddr:#x} of {mem_size:#x} bytes overflows the address space"
            ),
            ElfError::Misaligned {
                index,
                vaddr,
                offset,
            } => write!(
                f,
                "segment {index} at {vaddr:#x} has file offset {offset:#x}: \
                 not equal modulo the page size, cannot be mapped page-wise"
            ),
            ElfError::OutsideWindow { index, start, end } => write!(
                f,
                "segment {index} at {start:#x}..{end:#x} is outside the allowed address range"
            ),
            ElfError::Overlap { index, other, page } => {
                write!(
                    f,
                    "segments {index} and {other} share the page at {page:#x}"
                )
            }
            ElfError::WritableAndExecutable { index, vaddr } => {
                write!(
                    f,
                    "segment {index} at {vaddr:#x} is writable and executable"
                )
            }
            ElfError::EntryNotExecutable { entry } => {
                write!(
                    f,
                    "entry point {entry:#x} is not inside an executable segment"
                )
            }
            ElfError::TooMuchMemory { bytes, max } => write!(
                f,
                "segments need {bytes:#x} bytes of memory, at most {max:#x} allowed"
            ),
        }
    }
}

/// An `elf` crate error as ours; `other` for the ones that only mean "bytes missing".
fn from_parse(error: ParseError, other: ElfError) -> ElfError {
    match error {
        ParseError::BadMagic(_) => ElfError::NotElf,
        ParseError::UnsupportedElfClass(class) => ElfError::NotElf64 { class },
        ParseError::UnsupportedElfEndianness(data) => ElfError::NotLittleEndian { data },
        ParseError::UnsupportedVersion((version, _)) => ElfError::BadVersion {
            version: u32::try_from(version).unwrap_or(u32::MAX),
        },
        _ => other,
    }
}

/// The file header, checked down to the machine and the type.
fn file_header(file: &[u8]) -> Result<FileHeader<LittleEndian>, ElfError> {
    let truncated = ElfError::Truncated {
        len: file.len(),
        needed: EHDR_SIZE,
    };
    // However short the file, a wrong start is "not ELF" rather than "truncated".
    let known = file.len().min(abi::ELFMAGIC.len());
    if file[..known] != abi::ELFMAGIC[..known] {
        return Err(ElfError::NotElf);
    }
    // `parse_ident` indexes the identification bytes: give it all sixteen.
    let ident = file.get(..abi::EI_NIDENT).ok_or(truncated)?;
    let ident =
        elf::file::parse_ident::<LittleEndian>(ident).map_err(|e| from_parse(e, truncated))?;
    if ident.1 != Class::ELF64 {
        return Err(ElfError::NotElf64 {
            class: file[abi::EI_CLASS],
        });
    }
    let tail = file.get(abi::EI_NIDENT..EHDR_SIZE).ok_or(truncated)?;
    let header = FileHeader::parse_tail(ident, tail).map_err(|e| from_parse(e, truncated))?;
    if header.e_machine != abi::EM_X86_64 {
        return Err(ElfError::NotX86_64 {
            machine: header.e_machine,
        });
    }
    if header.version != u32::from(abi::EV_CURRENT) {
        return Err(ElfError::BadVersion {
            version: header.version,
        });
    }
    match header.e_type {
        abi::ET_EXEC => Ok(header),
        abi::ET_DYN => Err(ElfError::PositionIndependent),
        e_type => Err(ElfError::NotExecutable { e_type }),
    }
}

/// The program header table, wholly inside the file.
fn program_headers<'a>(
    file: &'a [u8],
    header: &FileHeader<LittleEndian>,
) -> Result<SegmentTable<'a, LittleEndian>, ElfError> {
    let count = header.e_phnum;
    if count == 0 {
        return Err(ElfError::NoLoadSegment);
    }
    if count == abi::PN_XNUM {
        return Err(ElfError::ExtendedProgramHeaderCount);
    }
    if usize::from(header.e_phentsize) != PHDR_SIZE {
        return Err(ElfError::BadProgramHeaderSize {
            size: header.e_phentsize,
        });
    }
    let outside = ElfError::ProgramHeadersOutsideFile {
        offset: header.e_phoff,
        count,
    };
    let start = usize::try_from(header.e_phoff).map_err(|_| outside)?;
    let end = start
        .checked_add(usize::from(count) * PHDR_SIZE)
        .ok_or(outside)?;
    let bytes = file.get(start..end).ok_or(outside)?;
    Ok(SegmentTable::new(LittleEndian, Class::ELF64, bytes))
}

fn program_header(
    table: &SegmentTable<'_, LittleEndian>,
    index: usize,
) -> Result<ProgramHeader, ElfError> {
    table
        .get(index)
        .map_err(|e| from_parse(e, ElfError::Malformed))
}

/// A `PT_LOAD` entry checked on its own; `None` if it has no memory.
fn load_segment(
    index: usize,
    ph: &ProgramHeader,
    file_len: usize,
    window: Window,
) -> Result<Option<Segment>, ElfError> {
    if ph.p_filesz > ph.p_memsz {
        return Err(ElfError::FileSizeExceedsMemSize {
            index,
            file_size: ph.p_filesz,
            mem_size: ph.p_memsz,
        });
    }
    if ph.p_memsz == 0 {
        return Ok(None);
    }
    let in_file = ph
        .p_offset
        .checked_add(ph.p_filesz)
        .is_some_and(|end| end <= file_len as u64);
    if !in_file {
        return Err(ElfError::FileRangeOutsideFile {
            index,
            offset: ph.p_offset,
            file_size: ph.p_filesz,
        });
    }
    let end = ph
        .p_vaddr
        .checked_add(ph.p_memsz)
        .and_then(|end| end.checked_add(PAGE_SIZE - 1))
        .ok_or(ElfError::AddressOverflow {
            index,
            vaddr: ph.p_vaddr,
            mem_size: ph.p_memsz,
        })?
        & !(PAGE_SIZE - 1);
    let start = ph.p_vaddr & !(PAGE_SIZE - 1);
    if ph.p_vaddr % PAGE_SIZE != ph.p_offset % PAGE_SIZE {
        return Err(ElfError::Misaligned {
            index,
            vaddr: ph.p_vaddr,
            offset: ph.p_offset,
        });
    }
    if start < window.start || end > window.end {
        return Err(ElfError::OutsideWindow { index, start, end });
    }
    let perms = Perms::from_flags(ph.p_flags);
    if perms.write && perms.execute {
        return Err(ElfError::WritableAndExecutable {
            index,
            vaddr: ph.p_vaddr,
        });
    }
    Ok(Some(Segment {
        vaddr: ph.p_vaddr,
        mem_size: ph.p_memsz,
        file_offset: ph.p_offset,
        file_size: ph.p_filesz,
        perms,
    }))
}
