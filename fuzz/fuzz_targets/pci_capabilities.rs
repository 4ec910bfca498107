//! PCI capability decoding: a device's config space is outside input (a buggy or
//! hostile device model). Any 256 bytes must decode without panicking or looping, and
//! any address decoded must lie inside the BAR it names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plinth_pci::{DeviceFunction, VirtioCfg};

fuzz_target!(|data: &[u8]| {
    let mut space = [0u8; 256];
    let n = data.len().min(256);
    space[..n].copy_from_slice(&data[..n]);
    let read = |_: DeviceFunction, off: u8| {
        let o = usize::from(off & 0xfc);
        u32::from_le_bytes([space[o], space[o + 1], space[o + 2], space[o + 3]])
    };
    let at = DeviceFunction {
        bus: 0,
        device: 1,
        function: 0,
    };
    let f = plinth_pci::fuzzing::function_with_bars(data.get(256..).unwrap_or_default());
    if let Some(m) = plinth_pci::find_msix(read, at)
        && let Some(addr) = m.table_address(&f)
    {
        assert!(plinth_pci::fuzzing::inside_a_bar(&f, addr, u64::from(m.table_size) * 16));
    }
    for kind in [VirtioCfg::Common, VirtioCfg::Notify, VirtioCfg::Isr, VirtioCfg::Device] {
        if let Some(r) = plinth_pci::find_virtio(read, at, kind)
            && let Some(addr) = r.address(&f)
        {
            assert!(plinth_pci::fuzzing::inside_a_bar(&f, addr, u64::from(r.length)));
        }
    }
    let _ = plinth_pci::find_virtio_notify(read, at);
});
