//! Capability lookup: MSI-X (PCI Local Bus 3.0 §6.8.2) and the virtio vendor capabilities
//! (virtio 1.2 §4.1.4), decoded from config space.
//!
//! Only decoding and the message-control bits live here; programming the MSI-X table
//! (device memory) and the virtio registers is the kernel's driver glue.

use crate::{Command, ConfigurationAccess, DeviceFunction, Function};

const STATUS_CAPABILITIES: u32 = 1 << 20; // status bit 4, in the command/status dword
const CAP_POINTER: u8 = 0x34;
const CAP_ID_MSIX: u8 = 0x11;
const CAP_ID_VENDOR: u8 = 0x09;
/// A list longer than config space can hold is a loop (or garbage): stop walking.
const MAX_CAPABILITIES: usize = 48;

const MSIX_ENABLE: u32 = 1 << 31; // message control bit 15, in the capability's first dword
const MSIX_FUNCTION_MASK: u32 = 1 << 30;

/// One MSI-X table entry's size in bytes.
pub const MSIX_ENTRY_BYTES: u64 = 16;

/// Where a function's MSI-X table is and how many vectors it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msix {
    /// Config-space offset of the capability.
    pub cap_offset: u8,
    /// Table entries (vectors) the function offers.
    pub table_size: u16,
    pub table_bar: u8,
    pub table_offset: u32,
}

impl Msix {
    /// Physical address of the table in `f`'s placed BARs, if the table lies wholly
    /// inside one (a device claiming otherwise is not trusted with MSI-X).
    pub fn table_address(&self, f: &Function) -> Option<u64> {
        let bar = f.bars.iter().find(|b| b.index == self.table_bar)?;
        let len = u64::from(self.table_size) * MSIX_ENTRY_BYTES;
        let end = u64::from(self.table_offset).checked_add(len)?;
        (bar.address != 0 && end <= bar.size).then(|| bar.address + u64::from(self.table_offset))
    }
}

/// Virtio structure types of the vendor capability (`cfg_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum VirtioCfg {
    Common = 1,
    Notify = 2,
    Isr = 3,
    Device = 4,
}

/// A virtio structure's place: `length` bytes at `offset` in BAR `bar`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioRegion {
    pub bar: u8,
    pub offset: u32,
    pub length: u32,
}

impl VirtioRegion {
    /// Physical address of the region in `f`'s placed BARs, if it lies inside one.
    pub fn address(&self, f: &Function) -> Option<u64> {
        let bar = f.bars.iter().find(|b| b.index == self.bar)?;
        let end = u64::from(self.offset).checked_add(u64::from(self.length))?;
        if bar.address == 0 || end > bar.size {
            return None;
        }
        // Checked: an empty region may start at the BAR's end, which for a BAR at the top
        // of the address space is 2^64 (the stable fuzz driver found the overflow).
        bar.address.checked_add(u64::from(self.offset))
    }
}

/// Calls `f(offset, id)` for each capability in the list until it returns `Some`.
fn find_capability<T>(
    read: &impl Fn(DeviceFunction, u8) -> u32,
    at: DeviceFunction,
    mut f: impl FnMut(u8, u8) -> Option<T>,
) -> Option<T> {
    if read(at, 0x04) & STATUS_CAPABILITIES == 0 {
        return None;
    }
    let mut offset = (read(at, CAP_POINTER) & 0xfc) as u8;
    for _ in 0..MAX_CAPABILITIES {
        // The first 64 bytes are the header: a pointer into it is garbage.
        if offset < 0x40 {
            return None;
        }
        let head = read(at, offset);
        if let Some(found) = f(offset, head as u8) {
            return Some(found);
        }
        offset = ((head >> 8) & 0xfc) as u8;
    }
    None
}

/// The function's MSI-X capability, if it has one with at least one vector.
pub fn find_msix(read: impl Fn(DeviceFunction, u8) -> u32, at: DeviceFunction) -> Option<Msix> {
    find_capability(&read, at, |offset, id| {
        if id != CAP_ID_MSIX {
            return None;
        }
        let control = read(at, offset) >> 16;
        let table = read(at, offset.checked_add(4)?);
        Some(Msix {
            cap_offset: offset,
            table_size: (control & 0x7ff) as u16 + 1,
            table_bar: (table & 0x7) as u8,
            table_offset: table & !0x7,
        })
    })
}

/// The first virtio vendor capability of type `kind` (virtio 1.2 §4.1.4: the driver
/// uses the first one it understands).
pub fn find_virtio(
    read: impl Fn(DeviceFunction, u8) -> u32,
    at: DeviceFunction,
    kind: VirtioCfg,
) -> Option<VirtioRegion> {
    find_capability(&read, at, |offset, id| {
        if id != CAP_ID_VENDOR {
            return None;
        }
        let head = read(at, offset);
        let (cap_len, cfg_type) = ((head >> 16) as u8, (head >> 24) as u8);
        if cap_len < 16 || cfg_type != kind as u8 {
            return None;
        }
        Some(VirtioRegion {
            bar: read(at, offset.checked_add(4)?) as u8,
            offset: read(at, offset.checked_add(8)?),
            length: read(at, offset.checked_add(12)?),
        })
    })
}

/// The notification structure and its `notify_off_multiplier` (the dword after the
/// common capability fields, virtio 1.2 §4.1.4.4): queue `q` is notified by writing at
/// `address + queue_notify_off(q) * multiplier`.
pub fn find_virtio_notify(
    read: impl Fn(DeviceFunction, u8) -> u32,
    at: DeviceFunction,
) -> Option<(VirtioRegion, u32)> {
    find_capability(&read, at, |offset, id| {
        let head = read(at, offset);
        let (cap_len, cfg_type) = ((head >> 16) as u8, (head >> 24) as u8);
        if id != CAP_ID_VENDOR || cfg_type != VirtioCfg::Notify as u8 || cap_len < 20 {
            return None;
        }
        let region = VirtioRegion {
            bar: read(at, offset.checked_add(4)?) as u8,
            offset: read(at, offset.checked_add(8)?),
            length: read(at, offset.checked_add(12)?),
        };
        Some((region, read(at, offset.checked_add(16)?)))
    })
}

/// Turns MSI-X on (all vectors unmasked at the function level) and legacy INTx off.
/// Program the table before calling this: an entry left zero would send to address 0.
pub fn enable_msix<C: ConfigurationAccess>(config: &mut C, at: DeviceFunction, m: &Msix) {
    let control = config.read_word(at, m.cap_offset);
    // The low half of this dword is the capability ID and next pointer, read-only.
    config.write_word(
        at,
        m.cap_offset,
        (control | MSIX_ENABLE) & !MSIX_FUNCTION_MASK,
    );
    // Only the command half is written: status bits are write-one-to-clear.
    let command = config.read_word(at, 0x04) & 0xffff;
    config.write_word(
        at,
        0x04,
        command | u32::from(Command::INTERRUPT_DISABLE.bits()),
    );
}

/// Turns MSI-X off again (the function falls back to INTx, which is re-enabled).
pub fn disable_msix<C: ConfigurationAccess>(config: &mut C, at: DeviceFunction, m: &Msix) {
    let control = config.read_word(at, m.cap_offset);
    config.write_word(at, m.cap_offset, control & !MSIX_ENABLE);
    let command = config.read_word(at, 0x04) & 0xffff;
    config.write_word(
        at,
        0x04,
        command & !u32::from(Command::INTERRUPT_DISABLE.bits()),
    );
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::MemoryBar;
    use plinth_testrng::Rng;
    use std::collections::BTreeMap;

    const AT: DeviceFunction = DeviceFunction {
        bus: 0,
        device: 3,
        function: 0,
    };

    /// A config space as QEMU's virtio-blk-pci presents it: MSI-X at 0x98 (2 vectors,
    /// table in BAR 1), then vendor capabilities for common (BAR 4 +0), ISR (+0x1000),
    /// device (+0x2000) and notify (+0x3000) config.
    fn space() -> BTreeMap<u8, u32> {
        let mut s = BTreeMap::new();
        s.insert(0x04, STATUS_CAPABILITIES);
        s.insert(0x34, 0x98);
        s.insert(0x98, 0x0001_8411); // control: table size 2 (encoded 1); next 0x84
        s.insert(0x9c, 0x0000_0001); // table in BAR 1 at 0
        s.insert(0xa0, 0x0000_0801); // PBA in BAR 1 at 0x800
        let vendor = [
            (0x84, 0x70, 3, 0x1000),
            (0x70, 0x60, 4, 0x2000),
            (0x60, 0xb0, 1, 0),
            (0xb0, 0x40, 2, 0x3000),
        ];
        for (off, next, kind, bar_off) in vendor {
            s.insert(off, (kind as u32) << 24 | 16 << 16 | next << 8 | 0x09);
            s.insert(off + 4, 4);
            s.insert(off + 8, bar_off);
            s.insert(off + 12, 0x1000);
        }
        // The notify capability is 20 bytes: its multiplier follows.
        s.insert(0xb0, 2 << 24 | 20 << 16 | 0x40 << 8 | 0x09);
        s.insert(0xb0 + 16, 4);
        s.insert(0x40, 0x0000_0005); // an MSI capability, last in the list
        s
    }

    fn reader(s: &BTreeMap<u8, u32>) -> impl Fn(DeviceFunction, u8) -> u32 + '_ {
        |_, off| s.get(&off).copied().unwrap_or(0)
    }

    fn function(bars: &[(u8, u64, u64)]) -> Function {
        let mut f = Function {
            location: AT,
            info: crate::tests::info(0x1af4, 0x1042),
            claimed: true,
            bars: heapless::Vec::new(),
            unplaced_bars: 0,
        };
        for &(index, address, size) in bars {
            let _ = f.bars.push(MemoryBar {
                index,
                address,
                size,
                width64: index == 4,
                prefetchable: false,
            });
        }
        f
    }

    #[test]
    fn msix_and_virtio_regions_are_decoded() {
        let s = space();
        let m = find_msix(reader(&s), AT).expect("msix");
        assert_eq!(
            m,
            Msix {
                cap_offset: 0x98,
                table_size: 2,
                table_bar: 1,
                table_offset: 0
            }
        );
        let common = find_virtio(reader(&s), AT, VirtioCfg::Common).expect("common");
        assert_eq!((common.bar, common.offset, common.length), (4, 0, 0x1000));
        let notify = find_virtio(reader(&s), AT, VirtioCfg::Notify).expect("notify");
        assert_eq!(notify.offset, 0x3000);
        let (region, multiplier) = find_virtio_notify(reader(&s), AT).expect("notify");
        assert_eq!((region, multiplier), (notify, 4));
        let f = function(&[(1, 0xc000_1000, 0x1000), (4, 0xc000_4000, 0x4000)]);
        assert_eq!(m.table_address(&f), Some(0xc000_1000));
        assert_eq!(common.address(&f), Some(0xc000_4000));
        assert_eq!(notify.address(&f), Some(0xc000_7000));
    }

    #[test]
    fn tables_outside_their_bar_or_in_missing_bars_are_refused() {
        let s = space();
        let m = find_msix(reader(&s), AT).unwrap();
        // BAR 1 not placed.
        assert_eq!(
            m.table_address(&function(&[(4, 0xc000_4000, 0x4000)])),
            None
        );
        // BAR 1 too small for two 16-byte entries.
        assert_eq!(m.table_address(&function(&[(1, 0xc000_1000, 16)])), None);
        let region = VirtioRegion {
            bar: 4,
            offset: 0x3800,
            length: 0x1000,
        };
        assert_eq!(region.address(&function(&[(4, 0xc000_4000, 0x4000)])), None);
    }

    #[test]
    fn no_capability_list_or_a_looping_one_finds_nothing() {
        let mut s = space();
        s.insert(0x04, 0);
        assert_eq!(find_msix(reader(&s), AT), None);
        // A list pointing at itself, with no MSI-X in it: the walk must end.
        let mut s = BTreeMap::new();
        s.insert(0x04, STATUS_CAPABILITIES);
        s.insert(0x34, 0x50);
        s.insert(0x50, 0x0000_5005);
        assert_eq!(find_msix(reader(&s), AT), None);
        // A pointer into the header is garbage.
        s.insert(0x34, 0x10);
        assert_eq!(find_virtio(reader(&s), AT, VirtioCfg::Common), None);
    }

    /// The fuzz target's body over random config spaces: no panic, no endless walk, and
    /// every decoded address inside the BAR it names.
    #[test]
    fn random_config_spaces_decode_safely() {
        let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
        for round in 0..20_000 {
            let mut bytes = std::vec![0u8; 256 + 54];
            rng.fill_bytes(&mut bytes);
            // Make lists likely: capabilities bit set, pointer into the body.
            if round % 2 == 0 {
                bytes[0x06] |= 0x10;
                bytes[0x34] = 0x40 | (bytes[0x34] & 0xbc);
            }
            let space: std::vec::Vec<u8> = bytes[..256].to_vec();
            let read = |_: DeviceFunction, off: u8| {
                let o = usize::from(off & 0xfc);
                u32::from_le_bytes([space[o], space[o + 1], space[o + 2], space[o + 3]])
            };
            let f = crate::fuzzing::function_with_bars(&bytes[256..]);
            if let Some(m) = find_msix(read, AT)
                && let Some(a) = m.table_address(&f)
            {
                assert!(crate::fuzzing::inside_a_bar(
                    &f,
                    a,
                    u64::from(m.table_size) * 16
                ));
            }
            for kind in [
                VirtioCfg::Common,
                VirtioCfg::Notify,
                VirtioCfg::Isr,
                VirtioCfg::Device,
            ] {
                if let Some(r) = find_virtio(read, AT, kind)
                    && let Some(a) = r.address(&f)
                {
                    assert!(crate::fuzzing::inside_a_bar(&f, a, u64::from(r.length)));
                }
            }
            let _ = find_virtio_notify(read, AT);
        }
    }

    /// A BAR ending exactly at 2^64: a region filling it is inside it, though its end
    /// does not fit a `u64`; one byte more is not.
    #[test]
    fn a_bar_at_the_top_of_the_address_space_holds_its_regions() {
        let mut bars = std::vec![4u8];
        bars.extend_from_slice(&0xffff_ffff_ffff_f000u64.to_le_bytes());
        let f = crate::fuzzing::function_with_bars(&bars);
        let r = VirtioRegion {
            bar: 4,
            offset: 0,
            length: 0x1000,
        };
        assert_eq!(r.address(&f), Some(0xffff_ffff_ffff_f000));
        assert!(crate::fuzzing::inside_a_bar(
            &f,
            0xffff_ffff_ffff_f000,
            0x1000
        ));
        assert!(crate::fuzzing::inside_a_bar(&f, u64::MAX, 1));
        assert!(!crate::fuzzing::inside_a_bar(
            &f,
            0xffff_ffff_ffff_f000,
            0x1001
        ));
        assert!(!crate::fuzzing::inside_a_bar(&f, 0xffff_ffff_ffff_efff, 1));
        // An empty region at the BAR's end would start at 2^64: no address, no overflow.
        let past = VirtioRegion {
            bar: 4,
            offset: 0x1000,
            length: 0,
        };
        assert_eq!(past.address(&f), None);
    }

    #[test]
    fn enabling_msix_sets_enable_clears_mask_and_disables_intx() {
        let fake = crate::tests::Fake::default();
        {
            let mut regs = fake.0.borrow_mut();
            regs.regs.insert((0, 3, 0, 0x98), 0x4001_8411);
            regs.regs.insert((0, 3, 0, 0x04), 0x0010_0006);
        }
        let mut config = fake.clone();
        let m = Msix {
            cap_offset: 0x98,
            table_size: 2,
            table_bar: 1,
            table_offset: 0,
        };
        enable_msix(&mut config, AT, &m);
        {
            let regs = fake.0.borrow();
            assert_eq!(regs.regs[&(0, 3, 0, 0x98)], 0x8001_8411);
            assert_eq!(regs.regs[&(0, 3, 0, 0x04)] & 0x406, 0x406);
        }
        disable_msix(&mut config, AT, &m);
        let regs = fake.0.borrow();
        assert_eq!(regs.regs[&(0, 3, 0, 0x98)] & 0x8000_0000, 0);
        assert_eq!(regs.regs[&(0, 3, 0, 0x04)] & 0x406, 0x006);
    }
}
