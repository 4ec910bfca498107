//! The PVH `hvm_start_info` structure (Xen `arch-x86/hvm/start_info.h`), read defensively.
//!
//! Everything here is input from outside: every address and count is checked before it is
//! used, and nothing is trusted to be NUL-terminated or UTF-8.

use plinth_frames::{MAX_REGIONS, MemoryMap, PhysRange, RegionKind};

/// `hvm_start_info.magic`: "xEn3" with bit 7 of the last byte set.
pub const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Size of `hvm_start_info` version 1, bytes.
pub const START_INFO_SIZE: u64 = 56;
/// Size of one `hvm_memmap_table_entry`, bytes.
pub const MEMMAP_ENTRY_SIZE: u64 = 24;
/// Longest command line kept, bytes (same bound as the command-line parser).
pub const CMDLINE_MAX: usize = 4096;
/// Most memory-map entries read; a larger count is treated as hostile and clipped.
pub const MEMMAP_MAX_ENTRIES: u32 = 1024;

/// Read access to physical memory, so the parser runs on the host against fake memory.
pub trait PhysMemory {
    /// Fills `buf` from physical address `addr`; false if that memory is not readable.
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

/// Why the start_info could not be used at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// `%ebx` did not point at readable memory.
    Unreadable(u64),
    /// The magic number is wrong: not started through PVH.
    BadMagic(u32),
    /// Version 0 has no memory map, and plinth needs one.
    NoMemoryMap { version: u32 },
    /// The memory map pointer or size is not readable.
    BadMemoryMap { addr: u64, entries: u32 },
}

/// What the boot stub hands the kernel.
#[derive(Clone)]
pub struct BootInfo {
    pub memory_map: MemoryMap,
    /// Entries past [`MEMMAP_MAX_ENTRIES`] that were ignored.
    pub clipped_entries: u32,
    cmdline: [u8; CMDLINE_MAX],
    cmdline_len: usize,
    /// The command line was not valid UTF-8; the invalid tail was dropped.
    pub cmdline_not_utf8: bool,
    /// Physical ranges the firmware data occupies (start_info, memory map, command line):
    /// the frame allocator must not hand them out while they are still being read.
    pub firmware_ranges: [PhysRange; 3],
    /// ACPI RSDP physical address, if the firmware gave one.
    pub rsdp: Option<u64>,
}

impl BootInfo {
    /// The command line, as far as it was valid UTF-8.
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// Reads and checks the start_info at `addr`.
    pub fn read(mem: &impl PhysMemory, addr: u64) -> Result<BootInfo, BootError> {
        let mut raw = [0u8; START_INFO_SIZE as usize];
        if !mem.read(addr, &mut raw) {
            return Err(BootError::Unreadable(addr));
        }
        let u32_at = |o: usize| u32::from_le_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        let magic = u32_at(0);
        if magic != START_INFO_MAGIC {
            return Err(BootError::BadMagic(magic));
        }
        let version = u32_at(4);
        if version < 1 {
            return Err(BootError::NoMemoryMap { version });
        }
        let cmdline_paddr = u64_at(24);
        let rsdp = u64_at(32);
        let memmap_paddr = u64_at(40);
        let entries = u32_at(48);

        let mut info = BootInfo {
            memory_map: MemoryMap::new(),
            clipped_entries: entries.saturating_sub(MEMMAP_MAX_ENTRIES),
            cmdline: [0; CMDLINE_MAX],
            cmdline_len: 0,
            cmdline_not_utf8: false,
            firmware_ranges: [
                PhysRange::new(addr, START_INFO_SIZE),
                PhysRange::new(0, 0),
                PhysRange::new(0, 0),
            ],
            rsdp: (rsdp != 0).then_some(rsdp),
        };

        let kept = entries.min(MEMMAP_MAX_ENTRIES);
        if kept == 0 {
            return Err(BootError::BadMemoryMap {
                addr: memmap_paddr,
                entries,
            });
        }
        for i in 0..u64::from(kept) {
            let mut e = [0u8; MEMMAP_ENTRY_SIZE as usize];
            let at = memmap_paddr.checked_add(i * MEMMAP_ENTRY_SIZE);
            if !at.is_some_and(|at| mem.read(at, &mut e)) {
                return Err(BootError::BadMemoryMap {
                    addr: memmap_paddr,
                    entries,
                });
            }
            let base = u64::from_le_bytes(e[0..8].try_into().unwrap_or_default());
            let size = u64::from_le_bytes(e[8..16].try_into().unwrap_or_default());
            let kind = u32::from_le_bytes(e[16..20].try_into().unwrap_or_default());
            info.memory_map
                .push(base, size, RegionKind::from_e820(kind));
        }
        info.firmware_ranges[1] = PhysRange::new(memmap_paddr, u64::from(kept) * MEMMAP_ENTRY_SIZE);

        if cmdline_paddr != 0 {
            info.read_cmdline(mem, cmdline_paddr);
        }
        debug_assert!(info.memory_map.regions().len() <= MAX_REGIONS);
        Ok(info)
    }

    /// Copies the NUL-terminated command line, a chunk at a time, up to [`CMDLINE_MAX`].
    fn read_cmdline(&mut self, mem: &impl PhysMemory, addr: u64) {
        let mut len = 0;
        'outer: while len < CMDLINE_MAX {
            let mut chunk = [0u8; 64];
            let Some(at) = addr.checked_add(len as u64) else {
                break;
            };
            if !mem.read(at, &mut chunk) {
                break;
            }
            for b in chunk {
                if b == 0 || len == CMDLINE_MAX {
                    break 'outer;
                }
                self.cmdline[len] = b;
                len += 1;
            }
        }
        self.firmware_ranges[2] = PhysRange::new(addr, len as u64 + 1);
        self.cmdline_len = match core::str::from_utf8(&self.cmdline[..len]) {
            Ok(_) => len,
            Err(e) => {
                self.cmdline_not_utf8 = true;
                e.valid_up_to()
            }
        };
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// Fake physical memory: one buffer at address 0.
    struct Fake(Vec<u8>);

    impl PhysMemory for Fake {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            let Ok(a) = usize::try_from(addr) else {
                return false;
            };
            match self.0.get(a..a.saturating_add(buf.len())) {
                Some(src) if a.checked_add(buf.len()).is_some() => {
                    buf.copy_from_slice(src);
                    true
                }
                _ => false,
            }
        }
    }

    fn put(mem: &mut [u8], at: usize, bytes: &[u8]) {
        mem[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// A start_info at 0x1000, memory map at 0x2000, command line at 0x3000.
    fn image(cmdline: &[u8], entries: &[(u64, u64, u32)]) -> Fake {
        let mut m = std::vec![0u8; 0x5000];
        put(&mut m, 0x1000, &START_INFO_MAGIC.to_le_bytes());
        put(&mut m, 0x1004, &1u32.to_le_bytes());
        put(&mut m, 0x1000 + 24, &0x3000u64.to_le_bytes());
        put(&mut m, 0x1000 + 40, &0x2000u64.to_le_bytes());
        put(&mut m, 0x1000 + 48, &(entries.len() as u32).to_le_bytes());
        for (i, (b, s, k)) in entries.iter().enumerate() {
            let at = 0x2000 + i * 24;
            put(&mut m, at, &b.to_le_bytes());
            put(&mut m, at + 8, &s.to_le_bytes());
            put(&mut m, at + 16, &k.to_le_bytes());
        }
        put(&mut m, 0x3000, cmdline);
        Fake(m)
    }

    #[test]
    fn reads_qemu_like_start_info() {
        let mem = image(
            b"log=debug selftest=heap\0",
            &[
                (0, 0x9fc00, 1),
                (0x100000, 0x7f00000, 1),
                (0xfeffc000, 0x4000, 2),
            ],
        );
        let info = BootInfo::read(&mem, 0x1000).unwrap();
        assert_eq!(info.cmdline(), "log=debug selftest=heap");
        assert_eq!(info.memory_map.regions().len(), 3);
        assert_eq!(info.memory_map.usable_bytes(), 0x9f000 + 0x7f00000);
        assert_eq!(info.firmware_ranges[2], PhysRange::new(0x3000, 24));
    }

    #[test]
    fn wrong_magic_version_and_pointers_are_errors() {
        let mut mem = image(b"\0", &[(0, 0x1000, 1)]);
        assert_eq!(
            BootInfo::read(&mem, 0x10_0000).err(),
            Some(BootError::Unreadable(0x10_0000))
        );
        assert_eq!(
            BootInfo::read(&mem, u64::MAX - 3).err(),
            Some(BootError::Unreadable(u64::MAX - 3))
        );
        put(&mut mem.0, 0x1004, &0u32.to_le_bytes());
        assert_eq!(
            BootInfo::read(&mem, 0x1000).err(),
            Some(BootError::NoMemoryMap { version: 0 })
        );
        put(&mut mem.0, 0x1004, &1u32.to_le_bytes());
        put(
            &mut mem.0,
            0x1000 + 40,
            &0xffff_ffff_ffff_fff0u64.to_le_bytes(),
        );
        assert!(matches!(
            BootInfo::read(&mem, 0x1000),
            Err(BootError::BadMemoryMap { .. })
        ));
        put(&mut mem.0, 0x1000, &0u32.to_le_bytes());
        assert_eq!(
            BootInfo::read(&mem, 0x1000).err(),
            Some(BootError::BadMagic(0))
        );
    }

    #[test]
    fn hostile_counts_and_unterminated_cmdline_are_bounded() {
        let mut mem = image(b"", &[(0, 0x1000, 1)]);
        put(&mut mem.0, 0x1000 + 48, &u32::MAX.to_le_bytes());
        // Entry count far past the buffer: the reader stops with an error, it does not hang.
        assert!(matches!(
            BootInfo::read(&mem, 0x1000),
            Err(BootError::BadMemoryMap { .. })
        ));

        let long: Vec<u8> = std::iter::repeat_n(b'x', 0x2000 - 1).collect();
        let mem = image(&long[..0x1fff], &[(0, 0x1000, 1)]);
        // Command line runs to the end of readable memory with no NUL.
        let info = BootInfo::read(&mem, 0x1000).unwrap();
        assert_eq!(info.cmdline().len(), CMDLINE_MAX);
    }

    #[test]
    fn invalid_utf8_is_cut_and_flagged() {
        let mem = image(b"log=warn \xff\xfe tail\0", &[(0, 0x1000, 1)]);
        let info = BootInfo::read(&mem, 0x1000).unwrap();
        assert!(info.cmdline_not_utf8);
        assert_eq!(info.cmdline(), "log=warn ");
    }
}
