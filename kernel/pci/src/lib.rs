//! PCI enumeration and BAR assignment, over any configuration-space access.
//!
//! Owns the policy: which buses are walked (bus 0 and the secondary bus of every bridge
//! found; function 0 of each slot, and functions 1–7 only of multi-function devices, so a
//! machine without bridges costs about 32 probes, not 8,192), which functions are set up
//! (only those a driver claims: the others keep decoding off, as the firmware left them),
//! how BARs the firmware left unassigned are given addresses (qboot assigns none), and
//! when a claimed function gets memory decoding and bus mastering ([`enable`], called by
//! the driver once it has read the function's layout). Config-space
//! access itself (port I/O, ECAM) belongs to the caller; this crate never touches hardware
//! and never maps memory.
//!
//! The sizing and BAR register formats come from `virtio-drivers`' PCI bus module, which
//! the virtio transports need anyway.
#![no_std]
#![cfg_attr(not(test), forbid(unsafe_code))]
// Not forbid under test: the tests' fake configuration space implements
// `ConfigurationAccess`, whose `unsafe_clone` is an `unsafe fn`, and declaring one is
// unsafe code; that one method is allowed (`tests::Fake`).
#![cfg_attr(test, deny(unsafe_code))]

mod caps;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;

pub use caps::{
    MSIX_ENTRY_BYTES, Msix, VirtioCfg, VirtioRegion, disable_msix, enable_msix, find_msix,
    find_virtio, find_virtio_notify,
};
pub use virtio_drivers::transport::pci::bus::{
    BarInfo, Command, ConfigurationAccess, DeviceFunction, DeviceFunctionInfo, HeaderType,
    MemoryBarType, PciRoot,
};

/// Most functions recorded; more are counted in [`Enumeration::dropped`].
pub const MAX_FUNCTIONS: usize = 64;

/// An address window BARs are placed in, handed out upwards with natural alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    next: u64,
    end: u64,
}

impl Window {
    /// The window `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Window {
        Window { next: start, end }
    }

    /// Takes `size` bytes aligned to `size` (BAR sizes are powers of two, at least 16).
    /// `None` if the size is not a power of two or the window is exhausted.
    pub fn take(&mut self, size: u64) -> Option<u64> {
        if !size.is_power_of_two() {
            return None;
        }
        // Small BARs still get a page of their own, so mapping one never exposes another.
        let size = size.max(4096);
        let start = self.next.checked_next_multiple_of(size)?;
        let end = start.checked_add(size)?;
        if end > self.end {
            return None;
        }
        self.next = end;
        Some(start)
    }
}

/// A memory BAR as found or assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBar {
    pub index: u8,
    pub address: u64,
    pub size: u64,
    pub width64: bool,
    pub prefetchable: bool,
}

/// One PCI function.
#[derive(Clone, Debug)]
pub struct Function {
    pub location: DeviceFunction,
    /// IDs, class and header type as the walk read them.
    pub info: DeviceFunctionInfo,
    /// Whether the caller claimed it; unclaimed functions are listed, never set up.
    pub claimed: bool,
    pub bars: heapless::Vec<MemoryBar, 6>,
    /// BARs that could not be placed (window full, or a 32-bit BAR when only a window
    /// above 4 GiB is left); the function's memory decoding stays off if any is missing.
    pub unplaced_bars: u8,
}

/// Everything found on the walked buses.
#[derive(Debug, Default)]
pub struct Enumeration {
    pub functions: heapless::Vec<Function, MAX_FUNCTIONS>,
    pub dropped: usize,
    /// BARs that the firmware had assigned and were kept.
    pub kept_bars: usize,
    /// BARs this enumeration assigned.
    pub assigned_bars: usize,
}

/// Walks bus 0 and every bridge's secondary bus. Functions for which `claim` says yes get
/// their unassigned memory BARs placed from `window` (below 4 GiB, so 32-bit BARs fit too)
/// but stay with decoding off until [`enable`]; the rest are only listed. I/O BARs are left alone (virtio modern devices do not need them). `read` reads a
/// config dword directly (the walk itself and the bridge bus numbers use it).
pub fn enumerate<C: ConfigurationAccess>(
    root: &mut PciRoot<C>,
    read: impl Fn(DeviceFunction, u8) -> u32,
    window: &mut Window,
    claim: impl Fn(&DeviceFunctionInfo) -> bool,
) -> Enumeration {
    let mut out = Enumeration::default();
    let mut buses: heapless::Vec<u8, 32> = heapless::Vec::new();
    let _ = buses.push(0);
    let mut next = 0;
    while next < buses.len() {
        let bus = buses[next];
        next += 1;
        scan_bus(&read, bus, |location, info| {
            if info.header_type == HeaderType::PciPciBridge {
                // Secondary bus number: byte 1 of config dword 0x18. Zero means the
                // firmware did not number it; such a bridge is not followed.
                let secondary = (read(location, 0x18) >> 8) as u8;
                if secondary != 0 && !buses.contains(&secondary) {
                    let _ = buses.push(secondary);
                }
                return;
            }
            if info.header_type != HeaderType::Standard {
                return;
            }
            let f = if claim(&info) {
                setup_function(root, location, info, window, &mut out)
            } else {
                Function {
                    location,
                    info,
                    claimed: false,
                    bars: heapless::Vec::new(),
                    unplaced_bars: 0,
                }
            };
            if out.functions.push(f).is_err() {
                out.dropped += 1;
            }
        });
    }
    out
}

/// Header-type bit saying functions 1–7 of the slot may exist.
const MULTI_FUNCTION: u32 = 0x80 << 16;
/// Slots per bus, functions per slot.
const SLOTS: u8 = 32;
const FUNCTIONS: u8 = 8;

/// Calls `found` for each function present on `bus`. A slot whose function 0 is absent is
/// empty; functions 1–7 are probed only when function 0 sets the multi-function bit (the
/// PCI spec's rule, and what keeps the walk at one read per empty slot).
fn scan_bus(
    read: &impl Fn(DeviceFunction, u8) -> u32,
    bus: u8,
    mut found: impl FnMut(DeviceFunction, DeviceFunctionInfo),
) {
    for device in 0..SLOTS {
        let mut functions = 1;
        let mut function = 0;
        while function < functions {
            let at = DeviceFunction {
                bus,
                device,
                function,
            };
            function += 1;
            let ids = read(at, 0);
            if ids as u16 == 0xffff {
                continue;
            }
            let class = read(at, 8);
            let header = read(at, 12);
            if at.function == 0 && header & MULTI_FUNCTION != 0 {
                functions = FUNCTIONS;
            }
            found(
                at,
                DeviceFunctionInfo {
                    vendor_id: ids as u16,
                    device_id: (ids >> 16) as u16,
                    class: (class >> 24) as u8,
                    subclass: (class >> 16) as u8,
                    prog_if: (class >> 8) as u8,
                    revision: class as u8,
                    header_type: HeaderType::from((header >> 16) as u8 & 0x7f),
                },
            );
        }
    }
}

fn setup_function<C: ConfigurationAccess>(
    root: &mut PciRoot<C>,
    location: DeviceFunction,
    info: DeviceFunctionInfo,
    window: &mut Window,
    out: &mut Enumeration,
) -> Function {
    let mut f = Function {
        location,
        info,
        claimed: true,
        bars: heapless::Vec::new(),
        unplaced_bars: 0,
    };
    let bars = match root.bars(location) {
        Ok(b) => b,
        Err(_) => {
            // A BAR of a reserved type: leave the function disabled.
            f.unplaced_bars = 1;
            return f;
        }
    };
    for (index, bar) in bars.iter().enumerate() {
        let Some(BarInfo::Memory {
            address_type,
            prefetchable,
            address,
            size,
        }) = *bar
        else {
            continue;
        };
        let width64 = address_type == MemoryBarType::Width64;
        let address = if address != 0 {
            out.kept_bars += 1;
            address
        } else {
            match window.take(size) {
                Some(a) => {
                    let index = index as u8;
                    if width64 {
                        root.set_bar_64(location, index, a);
                    } else {
                        root.set_bar_32(location, index, a as u32);
                    }
                    out.assigned_bars += 1;
                    a
                }
                None => {
                    f.unplaced_bars += 1;
                    continue;
                }
            }
        };
        let _ = f.bars.push(MemoryBar {
            index: index as u8,
            address,
            size,
            width64,
            prefetchable,
        });
    }
    f
}

/// Turns on memory decoding and bus mastering for a claimed function whose BARs were all
/// placed; refuses otherwise (a BAR at address 0 would decode over low RAM).
///
/// Separate from [`enumerate`] on purpose: drivers size BARs again while reading the
/// function's layout (virtio-drivers' transport does), and sizing a BAR of a function
/// that decodes makes a VMM tear down and rebuild its memory map each time — QEMU flushes
/// every translated-code TLB for it, about 0.6 ms under TCG per sizing. Real hardware
/// dislikes a live BAR being sized too (Linux turns decoding off around it).
pub fn enable<C: ConfigurationAccess>(root: &mut PciRoot<C>, f: &Function) -> bool {
    if !f.claimed || f.unplaced_bars > 0 {
        return false;
    }
    let (_, command) = root.get_status_command(f.location);
    root.set_command(
        f.location,
        command | Command::MEMORY_SPACE | Command::BUS_MASTER,
    );
    true
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::cell::RefCell;
    use std::collections::BTreeMap;
    use std::rc::Rc;
    use std::vec::Vec;

    /// A config space with BAR sizing behaviour: writing all ones to a BAR reads back its
    /// size mask, as real devices do.
    #[derive(Default)]
    pub(crate) struct Space {
        pub(crate) regs: BTreeMap<(u8, u8, u8, u8), u32>,
        /// (bus, dev, fn, bar offset) -> (address mask, read-only flag bits).
        sizes: BTreeMap<(u8, u8, u8, u8), (u32, u32)>,
    }

    #[derive(Clone, Default)]
    pub(crate) struct Fake(pub(crate) Rc<RefCell<Space>>);

    pub(crate) fn info(vendor_id: u16, device_id: u16) -> DeviceFunctionInfo {
        DeviceFunctionInfo {
            vendor_id,
            device_id,
            class: 1,
            subclass: 0,
            prog_if: 0,
            revision: 1,
            header_type: HeaderType::Standard,
        }
    }

    fn key(d: DeviceFunction, off: u8) -> (u8, u8, u8, u8) {
        (d.bus, d.device, d.function, off)
    }

    impl ConfigurationAccess for Fake {
        fn read_word(&self, d: DeviceFunction, off: u8) -> u32 {
            let s = self.0.borrow();
            *s.regs
                .get(&key(d, off))
                .unwrap_or(&if off == 0 { u32::MAX } else { 0 })
        }
        fn write_word(&mut self, d: DeviceFunction, off: u8, data: u32) {
            let mut s = self.0.borrow_mut();
            let k = key(d, off);
            let v = match s.sizes.get(&k) {
                Some((mask, flags)) => (data & mask) | flags,
                // Unimplemented BARs are hardwired to zero.
                None if (0x10..0x28).contains(&off) => 0,
                None => data,
            };
            s.regs.insert(k, v);
        }
        // The trait's one method is `unsafe fn`; the fake shares state through an Rc.
        #[allow(unsafe_code)]
        unsafe fn unsafe_clone(&self) -> Self {
            self.clone()
        }
    }

    fn df(bus: u8, device: u8) -> DeviceFunction {
        DeviceFunction {
            bus,
            device,
            function: 0,
        }
    }

    impl Fake {
        fn device(&self, at: DeviceFunction, vendor: u16, id: u16, header: u32) {
            let mut s = self.0.borrow_mut();
            s.regs
                .insert(key(at, 0), u32::from(id) << 16 | u32::from(vendor));
            s.regs.insert(key(at, 8), 0x0100_0000);
            s.regs.insert(key(at, 12), header << 16);
            s.regs.insert(key(at, 4), 0);
        }
        /// A 32-bit memory BAR of `size` at `index`, unassigned.
        fn bar32(&self, at: DeviceFunction, index: u8, size: u32) {
            let mut s = self.0.borrow_mut();
            let off = 0x10 + 4 * index;
            s.sizes.insert(key(at, off), (!(size - 1), 0));
            s.regs.insert(key(at, off), 0);
        }
        /// A 64-bit memory BAR of `size` at `index` (and `index + 1`), unassigned.
        fn bar64(&self, at: DeviceFunction, index: u8, size: u64) {
            let mut s = self.0.borrow_mut();
            let off = 0x10 + 4 * index;
            let mask = !(size - 1);
            s.sizes.insert(key(at, off), (mask as u32, 0b100));
            s.sizes.insert(key(at, off + 4), ((mask >> 32) as u32, 0));
            s.regs.insert(key(at, off), 0b100);
            s.regs.insert(key(at, off + 4), 0);
        }
        fn read(&self, at: DeviceFunction, off: u8) -> u32 {
            self.read_word(at, off)
        }
    }

    fn run(fake: &Fake, window: &mut Window) -> Enumeration {
        let mut root = PciRoot::new(fake.clone());
        let reader = fake.clone();
        enumerate(
            &mut root,
            |d, o| reader.read(d, o),
            window,
            |i| i.vendor_id == 0x1af4,
        )
    }

    #[test]
    fn unassigned_bars_get_aligned_disjoint_addresses_and_decoding() {
        let fake = Fake::default();
        fake.device(df(0, 0), 0x8086, 0x29c0, 0);
        fake.device(df(0, 3), 0x1af4, 0x1042, 0);
        fake.bar32(df(0, 3), 1, 0x1000);
        fake.bar64(df(0, 3), 4, 0x4000);
        fake.device(df(0, 4), 0x1af4, 0x1041, 0);
        fake.bar64(df(0, 4), 4, 0x4000);
        let mut w = Window::new(0xc000_0000, 0xfec0_0000);
        let e = run(&fake, &mut w);
        let mut root = PciRoot::new(fake.clone());
        for f in &e.functions {
            assert_eq!(
                fake.read(f.location, 4) as u16 & 0b110,
                0,
                "decoding before enable"
            );
            assert_eq!(enable(&mut root, f), f.claimed, "{:?}", f.location);
        }
        let locs: Vec<_> = e
            .functions
            .iter()
            .map(|f| (f.location.device, f.location.function))
            .collect();
        assert_eq!(e.functions.len(), 3, "{locs:?}");
        assert_eq!(e.assigned_bars, 3);
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for f in &e.functions {
            for b in &f.bars {
                assert_eq!(b.address % b.size, 0, "{b:?} misaligned");
                assert!(b.address >= 0xc000_0000 && b.address + b.size <= 0xfec0_0000);
                spans.push((b.address, b.address + b.size));
                // What the device decodes is what was recorded.
                let lo = u64::from(fake.read(f.location, 0x10 + 4 * b.index) & !0xf);
                let hi = if b.width64 {
                    u64::from(fake.read(f.location, 0x14 + 4 * b.index)) << 32
                } else {
                    0
                };
                assert_eq!(lo | hi, b.address);
            }
            if !f.bars.is_empty() {
                let cmd = fake.read(f.location, 4) as u16;
                assert_eq!(
                    cmd & 0b110,
                    0b110,
                    "memory + bus master on {:?}",
                    f.location
                );
            }
        }
        spans.sort();
        assert!(
            spans.windows(2).all(|p| p[0].1 <= p[1].0),
            "overlap: {spans:?}"
        );
    }

    #[test]
    fn exhausted_window_leaves_decoding_off() {
        let fake = Fake::default();
        fake.device(df(0, 2), 0x1af4, 0x1042, 0);
        fake.bar32(df(0, 2), 0, 0x10_0000);
        let mut w = Window::new(0xc000_0000, 0xc000_8000);
        let e = run(&fake, &mut w);
        assert_eq!(e.functions[0].unplaced_bars, 1);
        assert!(!enable(&mut PciRoot::new(fake.clone()), &e.functions[0]));
        assert_eq!(fake.read(df(0, 2), 4) as u16 & 0b110, 0);
    }

    #[test]
    fn bridges_are_followed_to_their_secondary_bus() {
        let fake = Fake::default();
        fake.device(df(0, 1), 0x1b36, 0x000c, 1);
        fake.0
            .borrow_mut()
            .regs
            .insert(key(df(0, 1), 0x18), 0x0005_0500);
        fake.device(df(5, 0), 0x1af4, 0x1041, 0);
        let e = run(&fake, &mut Window::new(0xc000_0000, 0xd000_0000));
        assert_eq!(e.functions.len(), 1);
        assert_eq!(e.functions[0].location.bus, 5);
    }

    #[test]
    fn unclaimed_functions_are_listed_but_never_touched() {
        let fake = Fake::default();
        fake.device(df(0, 2), 0x8086, 0x2922, 0);
        fake.bar32(df(0, 2), 5, 0x1000);
        let e = run(&fake, &mut Window::new(0xc000_0000, 0xd000_0000));
        assert_eq!(e.functions.len(), 1);
        let f = &e.functions[0];
        assert!(!f.claimed && f.bars.is_empty() && f.unplaced_bars == 0);
        assert_eq!(e.assigned_bars, 0);
        assert_eq!(fake.read(df(0, 2), 0x24), 0, "BAR written");
        assert!(!enable(&mut PciRoot::new(fake.clone()), f));
        assert_eq!(fake.read(df(0, 2), 4), 0, "command written");
    }

    #[test]
    fn other_functions_are_probed_only_on_multi_function_devices() {
        let fake = Fake::default();
        let at = |device, function| DeviceFunction {
            bus: 0,
            device,
            function,
        };
        // Slot 3: single-function, yet something answers at function 2 (as some
        // devices mirror function 0); it must not be listed.
        fake.device(at(3, 0), 0x1af4, 0x1041, 0);
        fake.device(at(3, 2), 0x1af4, 0x1041, 0);
        // Slot 31: multi-function, functions 0, 2 and 3.
        fake.device(at(31, 0), 0x8086, 0x2918, 0x80);
        fake.device(at(31, 2), 0x8086, 0x2922, 0);
        fake.device(at(31, 3), 0x8086, 0x2930, 0);
        let e = run(&fake, &mut Window::new(0xc000_0000, 0xd000_0000));
        let found: Vec<_> = e
            .functions
            .iter()
            .map(|f| (f.location.device, f.location.function))
            .collect();
        assert_eq!(found, [(3, 0), (31, 0), (31, 2), (31, 3)]);
    }

    #[test]
    fn window_rejects_odd_sizes_and_overflow() {
        let mut w = Window::new(0x1000, 0x3000);
        assert_eq!(w.take(3000), None);
        assert_eq!(w.take(16), Some(0x1000));
        assert_eq!(w.take(0x1000), Some(0x2000));
        assert_eq!(w.take(0x1000), None);
        let mut top = Window::new(u64::MAX - 0xfff, u64::MAX);
        assert_eq!(top.take(1 << 40), None);
    }
}
