//! The PVH start_info reader against arbitrary physical memory: the first 8 bytes pick
//! the start_info address, the rest is memory at address 0. It must never panic, and an
//! accepted result must stay within its bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plinth_boot::{BootInfo, PhysMemory};
use plinth_frames::RegionKind;

struct Memory<'a>(&'a [u8]);

impl PhysMemory for Memory<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Ok(a) = usize::try_from(addr) else {
            return false;
        };
        match a.checked_add(buf.len()).and_then(|end| self.0.get(a..end)) {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let addr = u64::from_le_bytes(data[..8].try_into().unwrap()) % (data.len() as u64 + 64);
    if let Ok(info) = BootInfo::read(&Memory(&data[8..]), addr) {
        assert!(info.cmdline().len() <= plinth_boot::pvh::CMDLINE_MAX);
        // What the frame allocator is built from: sorted, disjoint (touching ranges are
        // merged), frame-aligned, inside usable regions and clear of every other region.
        let usable = info.memory_map.usable();
        for (i, r) in usable.iter().enumerate() {
            assert!(r.start < r.end && r.start % 4096 == 0 && r.end % 4096 == 0, "{r:?}");
            assert!(i == 0 || usable[i - 1].end < r.start, "{usable:?}");
            for other in info.memory_map.regions() {
                if other.kind != RegionKind::Usable {
                    assert!(!other.range.overlaps(r), "{r:?} overlaps {other:?}");
                }
            }
        }
    }
});
