//! Helpers for the capability fuzz target (feature `fuzzing`) and its host test.

use crate::{DeviceFunction, DeviceFunctionInfo, Function, HeaderType, MemoryBar};

/// A claimed function whose BARs are described by `bytes`: each 9-byte group is an index
/// (mod 6) and an address whose low 6 bits choose a power-of-two size (4 KiB–4 GiB).
pub fn function_with_bars(bytes: &[u8]) -> Function {
    let mut f = Function {
        location: DeviceFunction {
            bus: 0,
            device: 1,
            function: 0,
        },
        info: DeviceFunctionInfo {
            vendor_id: 0x1af4,
            device_id: 0x1042,
            class: 1,
            subclass: 0,
            prog_if: 0,
            revision: 1,
            header_type: HeaderType::Standard,
        },
        claimed: true,
        bars: heapless::Vec::new(),
        unplaced_bars: 0,
    };
    for chunk in bytes.chunks_exact(9).take(6) {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&chunk[1..]);
        let raw = u64::from_le_bytes(raw);
        let size = 1u64 << (12 + (raw & 0x3f) % 21);
        let _ = f.bars.push(MemoryBar {
            index: chunk[0] % 6,
            address: raw & !(size - 1),
            size,
            width64: true,
            prefetchable: false,
        });
    }
    f
}

/// Whether `[addr, addr + len)` lies inside one of `f`'s BARs. Measured from the BAR's
/// start, because a BAR at the top of the address space ends at 2^64, which a `u64` end
/// cannot hold (an end-based check refused ranges inside it, a false alarm the fuzzer
/// found).
pub fn inside_a_bar(f: &Function, addr: u64, len: u64) -> bool {
    f.bars.iter().any(|b| {
        addr.checked_sub(b.address)
            .is_some_and(|offset| offset <= b.size && len <= b.size - offset)
    })
}
