//! Devices: discovery, binding and interrupt routing, with the drivers beneath.
//!
//! Owns discovery (PCI bus walk and BAR placement through `plinth-pci`, the virtio-mmio
//! blocks the command line names), binding virtio functions to drivers (`virtio`),
//! routing their interrupts (MSI-X through `msix`, else the I/O APIC lines), and the
//! "a device interrupted" flag the trap handler raises. What it found is returned to the
//! caller — disks for `crate::block`, NICs for `crate::net` — so nothing here calls up.
//! It must not decide what the disks or NICs are used for.
//!
//! The unsafe glue (config-space ports, MSI-X tables, virtqueue buffers, MMIO) lives in
//! the submodules, each block with a `// SAFETY:` line; this file is safe Rust.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use log::{info, warn};
use plinth_cmdline::MmioDevice;
use plinth_frames::PhysRange;
use plinth_pci::{ConfigurationAccess, Function, Msix, PciRoot, VirtioCfg, Window};
use spin::Mutex;
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};
use virtio_drivers::transport::{DeviceType, Transport};
use x86_64::instructions::interrupts::without_interrupts;

use crate::arch::ioapic::{self, DEVICE_VECTOR};
use crate::{arch, memory};

#[allow(unsafe_code, reason = "driver glue: MSI-X table entries")]
pub mod msix;
#[allow(unsafe_code, reason = "driver glue: PCI configuration ports")]
pub mod pci;
#[allow(
    unsafe_code,
    reason = "driver glue: virtqueue buffers, device registers, the DMA seam"
)]
pub mod virtio;

use msix::NO_VECTOR;
use pci::PortCam;
use virtio::blk::{BlkDevice, SECTOR_SIZE};
use virtio::doorbell::{Bell, Doorbell, NotifyLayout, QUEUES};
use virtio::hal::VirtioHal;
use virtio::isr::IsrRegister;
use virtio::mmio as virtio_mmio;
use virtio::net::Nic;

/// Where unassigned BARs go: above q35's PCIe MMCONFIG window (0xb000_0000, 256 MiB) and
/// below the IOAPIC (0xfec0_0000). QEMU never puts RAM there (`q35` caps low RAM at
/// 2 GiB once RAM exceeds 2.75 GiB).
const MMIO_WINDOW: (u64, u64) = (0xc000_0000, 0xfec0_0000);

/// A bound disk, handed to `block` (which owns it from then on).
pub struct BlockDevice {
    pub name: String,
    /// PCI address (`00:01.0`) or `mmio@BASE`.
    pub location: String,
    pub serial: String,
    pub dev: BlkDevice,
}

/// A virtio NIC, handed to `net` (which owns it from then on).
pub struct NetDevice {
    pub name: String,
    /// PCI address (`00:02.0`) or `mmio@BASE`.
    pub location: String,
    pub nic: Nic,
}

/// One PCI function as the walk found it, for `/api/v1/status`.
#[derive(Clone, Debug)]
pub struct PciSummary {
    /// Bus, device, function (displays as `00:02.0`).
    pub location: plinth_pci::DeviceFunction,
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    /// What drives it: "virtio-blk", "virtio-net", or none.
    pub driver: Option<&'static str>,
}

/// A fixed table, not a heap vector: with no device to drive, boot then allocates
/// nothing (the allocator's first use is boot work under TCG: ~30 translated blocks).
static PCI_FUNCTIONS: Mutex<heapless::Vec<PciSummary, { plinth_pci::MAX_FUNCTIONS }>> =
    Mutex::new(heapless::Vec::new());

/// Set by the device interrupt; taken by the idle loop.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Records that a device interrupted: a shared INTx line (which stays masked until
/// [`service_done`]) or an MSI-X vector.
pub fn interrupted() {
    INTERRUPTED.store(true, Ordering::Release);
}

/// Whether a device interrupt is waiting to be taken.
pub fn interrupt_pending() -> bool {
    INTERRUPTED.load(Ordering::Acquire)
}

/// Whether a device interrupted since the last call.
pub fn take_interrupt() -> bool {
    INTERRUPTED.swap(false, Ordering::Acquire)
}

/// Devices on level-triggered I/O APIC lines (PCI INTx without usable MSI-X, or
/// virtio-mmio), whose status must be read to deassert them. Empty when all use MSI-X.
static LINE_DEVICES: Mutex<heapless::Vec<IsrRegister, 16>> = Mutex::new(heapless::Vec::new());

/// Acknowledges every device on a level-triggered line (deasserting it, whether or not its
/// driver runs now), then unmasks the lines. Nothing to do when every device uses MSI-X.
pub fn service_done() {
    let any = without_interrupts(|| {
        let lines = LINE_DEVICES.lock();
        for isr in lines.iter() {
            isr.acknowledge();
        }
        !lines.is_empty()
    });
    if any {
        ioapic::mask_device_lines(false);
    }
}

/// Halts until the next interrupt (or returns at once if a device interrupt is already
/// waiting), then services it. For code that waits on a device outside the idle loop.
pub fn wait_for_interrupt() {
    x86_64::instructions::interrupts::disable();
    if interrupt_pending() {
        x86_64::instructions::interrupts::enable();
    } else {
        arch::cpu::idle_wait();
    }
    if take_interrupt() {
        service_done();
    }
}

/// Prepares MSI-X for a virtio function before its driver starts: gives each queue that
/// should interrupt its own table entry and CPU vector (`wanted[q]`; the others get no
/// vector, so they raise nothing) and switches MSI-X on. The transport binds the entries
/// as the driver sets each queue up. `None` — the function stays on INTx — when it has
/// no usable MSI-X table or the vectors run out.
fn plan_msix(f: &Function, wanted: &[bool]) -> Option<(Msix, [u16; QUEUES])> {
    let read = |d, o| PortCam.read_word(d, o);
    let m = plinth_pci::find_msix(read, f.location)?;
    let table = m.table_address(f)?;
    let mut entries = [NO_VECTOR; QUEUES];
    let mut next = 0u16;
    for (slot, &want) in entries.iter_mut().zip(wanted) {
        if want {
            let vector = msix::alloc_vector()?;
            if !msix::program_entry(table, m.table_size, next, vector) {
                return None;
            }
            *slot = next;
            next += 1;
        }
    }
    plinth_pci::enable_msix(&mut PortCam, f.location, &m);
    Some((m, entries))
}

/// Calls `f` with every PCI function found at boot.
pub fn for_each_pci_function(mut f: impl FnMut(&PciSummary)) {
    without_interrupts(|| PCI_FUNCTIONS.lock().iter().for_each(&mut f));
}

/// What [`init`] bound: disks for `block`, NICs for `net`.
#[derive(Default)]
pub struct Found {
    pub disks: Vec<BlockDevice>,
    pub nics: Vec<NetDevice>,
}

/// Walks PCI, places BARs, probes the virtio-mmio devices the command line names, and
/// binds drivers; returns what it bound for the block layer and the network to own.
pub fn init(mmio: &[Option<MmioDevice>], ram: &[PhysRange]) -> Found {
    match ioapic::init(DEVICE_VECTOR, &mut memory::alloc_frame_addr) {
        Some(_) => {}
        None => warn!("ioapic: not usable; devices are polled on the timer tick"),
    }
    let mut found = Found::default();
    init_pci(&mut found);
    for dev in mmio.iter().flatten() {
        init_mmio(dev, ram, &mut found);
    }
    if without_interrupts(|| !LINE_DEVICES.lock().is_empty()) {
        ioapic::mask_device_lines(false);
    }
    found
}

/// How a device's interrupts reach the CPU.
enum Wiring<'a> {
    /// A PCI function, with MSI-X switched on if `msix` (its queues are bound as the
    /// driver sets them up), else on the shared INTx lines.
    Pci {
        f: &'a Function,
        msix: Option<Msix>,
        isr: Option<IsrRegister>,
    },
    /// A virtio-mmio device's own interrupt line.
    Line { gsi: u32, isr: IsrRegister },
}

/// How a bound device ended up interrupting.
#[derive(Clone, Copy)]
enum Irq {
    Msix,
    /// A level-triggered line: the PCI INTx lines or a virtio-mmio line (GSI).
    Line(Option<u32>),
    /// No usable interrupt: serviced on the timer tick.
    Polled,
}

impl core::fmt::Display for Irq {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Irq::Msix => f.write_str("MSI-X"),
            Irq::Line(None) => f.write_str("INTx"),
            Irq::Line(Some(gsi)) => write!(f, "IRQ {gsi}"),
            Irq::Polled => f.write_str("polled"),
        }
    }
}

/// Settles how a device whose driver came up interrupts: MSI-X if every queue binding
/// took (else MSI-X goes off again), otherwise its line, acknowledged by `service_done`.
fn wire(wiring: &Wiring, bell: &Bell) -> Irq {
    let (line, isr) = match wiring {
        Wiring::Pci { msix: Some(_), .. } if bell.msix_bound() => return Irq::Msix,
        Wiring::Pci { f, msix, isr } => {
            if let Some(m) = msix {
                warn!("pci: the device refused an MSI-X binding; using INTx");
                plinth_pci::disable_msix(&mut PortCam, f.location, m);
            }
            // The PCI lines were routed by `ioapic::init`; without it nothing fires.
            if !ioapic::usable() {
                return Irq::Polled;
            }
            (None, *isr)
        }
        Wiring::Line { gsi, isr } => {
            if !ioapic::route_line(*gsi, DEVICE_VECTOR, false) {
                return Irq::Polled;
            }
            (Some(*gsi), Some(*isr))
        }
    };
    // A line device whose status cannot be read could never deassert its line.
    let Some(isr) = isr else {
        return Irq::Polled;
    };
    if LINE_DEVICES.lock().push(isr).is_err() {
        return Irq::Polled;
    }
    Irq::Line(line)
}

/// Undoes what was prepared for a device whose driver failed.
fn unwire(wiring: &Wiring) {
    if let Wiring::Pci {
        f, msix: Some(m), ..
    } = wiring
    {
        plinth_pci::disable_msix(&mut PortCam, f.location, m);
    }
}

/// Binds a virtio device of `kind` reached through `transport` at `location`.
fn bind(
    kind: DeviceType,
    transport: Doorbell,
    location: String,
    wiring: Wiring,
    found: &mut Found,
) {
    let bell = transport.bell();
    if kind == DeviceType::Network {
        // Receive offload's 64 KiB buffers from at most an eighth of the heap, and no
        // more than keep a fast peer busy (64: 4 MiB).
        let (_, heap) = crate::arch::heap::usage();
        let large_rx = (heap / 8 / (64 << 10)).min(64);
        match Nic::new(transport, large_rx) {
            Ok(nic) => {
                let name = alloc::format!("net{}", found.nics.len());
                let m = nic.mac();
                let irq = wire(&wiring, &bell);
                let tso = match (nic.tso(), nic.rx_offload()) {
                    (true, true) => ", TCP segmentation and receive offload",
                    (true, false) => ", TCP segmentation offload",
                    (false, true) => ", receive offload",
                    (false, false) => "",
                };
                info!(
                    "{name}: virtio-net at {location}, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {irq}{tso}",
                    m[0], m[1], m[2], m[3], m[4], m[5]
                );
                found.nics.push(NetDevice {
                    name,
                    location,
                    nic,
                });
            }
            Err(e) => {
                unwire(&wiring);
                warn!("{location}: virtio-net initialisation failed: {e}");
            }
        }
        return;
    }
    let mut dev = match BlkDevice::new(transport) {
        Ok(d) => d,
        Err(e) => {
            unwire(&wiring);
            warn!("{location}: virtio-blk initialisation failed: {e}");
            return;
        }
    };
    let serial = match dev.serial() {
        Ok(s) => s,
        Err(e) => {
            unwire(&wiring);
            warn!("{location}: virtio-blk did not answer its ID request: {e}; not used");
            // Its queue still holds the request: the device keeps its DMA memory.
            core::mem::forget(dev);
            return;
        }
    };
    let irq = wire(&wiring, &bell);
    let name = alloc::format!("blk{}", found.disks.len());
    let sectors = dev.capacity();
    info!(
        "{name}: virtio-blk at {location}, {sectors} sectors ({} MiB), serial \"{}\"{}, {irq}",
        (sectors * SECTOR_SIZE as u64) >> 20,
        serial.escape_default(),
        if dev.readonly() { ", read-only" } else { "" },
    );
    found.disks.push(BlockDevice {
        name,
        location,
        serial,
        dev,
    });
}

fn init_pci(found: &mut Found) {
    let mut root = PciRoot::new(PortCam);
    let mut window = Window::new(MMIO_WINDOW.0, MMIO_WINDOW.1);
    // Only functions a driver here will drive are set up; the rest keep decoding off.
    let walk = plinth_pci::enumerate(
        &mut root,
        |d, o| plinth_pci::ConfigurationAccess::read_word(&PortCam, d, o),
        &mut window,
        |info| {
            matches!(
                virtio_device_type(info),
                Some(DeviceType::Block | DeviceType::Network)
            )
        },
    );
    if walk.dropped > 0 {
        warn!("pci: {} functions beyond the table ignored", walk.dropped);
    }
    info!(
        "pci: {} functions, {} BARs assigned, {} kept",
        walk.functions.len(),
        walk.assigned_bars,
        walk.kept_bars
    );
    let mut summary: heapless::Vec<PciSummary, { plinth_pci::MAX_FUNCTIONS }> =
        heapless::Vec::new();
    for f in &walk.functions {
        // Kept raw: formatting is boot work only for the functions a driver binds.
        let at = f.location;
        let pci = at;
        let kind = virtio_device_type(&f.info);
        // The walk records at most MAX_FUNCTIONS, so this always fits.
        let _ = summary.push(PciSummary {
            location: at,
            vendor: f.info.vendor_id,
            device: f.info.device_id,
            class: f.info.class,
            subclass: f.info.subclass,
            driver: match kind {
                Some(DeviceType::Block) if f.claimed => Some("virtio-blk"),
                Some(DeviceType::Network) if f.claimed => Some("virtio-net"),
                _ => None,
            },
        });
        let Some(kind) = kind else {
            continue;
        };
        if !f.claimed {
            info!("pci {pci}: virtio {kind:?} (no driver yet)");
            continue;
        }
        if f.unplaced_bars > 0 {
            warn!(
                "pci {pci}: virtio {kind:?} left disabled: {} BARs could not be placed",
                f.unplaced_bars
            );
            continue;
        }
        let transport = match PciTransport::new::<VirtioHal, _>(&mut root, at) {
            Ok(t) => t,
            Err(e) => {
                warn!("pci {pci}: virtio transport unusable: {e}");
                continue;
            }
        };
        // Decoding goes on only now: building the transport re-sizes BARs (see
        // `plinth_pci::enable`).
        plinth_pci::enable(&mut root, f);
        // The NIC interrupts on receive only: sent frames are reclaimed lazily, so its
        // transmit queue (1) raises nothing. A disk interrupts on its one queue.
        let wanted: &[bool] = if kind == DeviceType::Network {
            &[true, false]
        } else {
            &[true]
        };
        let (msix, entries) = match plan_msix(f, wanted) {
            Some((m, e)) => (Some(m), Some(e)),
            None => (None, None),
        };
        let read = |d, o| PortCam.read_word(d, o);
        let isr = plinth_pci::find_virtio(read, at, VirtioCfg::Isr)
            .and_then(|r| r.address(f))
            .map(IsrRegister::Pci);
        // The NIC batches its doorbells per network poll; a disk rings at once (a lone
        // 4 KiB read must not wait).
        let transport = Doorbell::pci(
            transport,
            notify_layout(f),
            kind == DeviceType::Network,
            entries,
        );
        let location = alloc::format!("{at}");
        bind(
            kind,
            transport,
            location,
            Wiring::Pci { f, msix, isr },
            found,
        );
    }
    without_interrupts(|| *PCI_FUNCTIONS.lock() = summary);
}

/// Where virtio-mmio register blocks may be: the MMIO hole below 4 GiB, clear of the
/// local and I/O APICs' pages and of every RAM range the firmware reported. An address
/// elsewhere is refused, not mapped.
fn mmio_block_allowed(base: u64, size: u64, ram: &[PhysRange]) -> bool {
    let Some(end) = base.checked_add(size) else {
        return false;
    };
    let apics = 0xfec0_0000..0xfef0_0000;
    base >= MMIO_WINDOW.0
        && end <= 1 << 32
        && (end <= apics.start || base >= apics.end)
        && ram.iter().all(|r| end <= r.start || base >= r.end)
}

fn init_mmio(dev: &MmioDevice, ram: &[PhysRange], found: &mut Found) {
    let location = alloc::format!("mmio@{:#x}", dev.base);
    if !mmio_block_allowed(dev.base, dev.size, ram) {
        warn!(
            "{location}: {:#x} bytes there are not in the device window; ignored",
            dev.size
        );
        return;
    }
    let transport = match virtio_mmio::transport(dev.base, dev.size) {
        Ok(t) => t,
        Err(e) => {
            warn!("{location}: no usable virtio device: {e}");
            return;
        }
    };
    let kind = transport.device_type();
    if !matches!(kind, DeviceType::Block | DeviceType::Network) {
        info!("{location}: virtio {kind:?} (no driver yet)");
        return;
    }
    let transport = Doorbell::mmio(transport, dev.base, kind == DeviceType::Network);
    let wiring = Wiring::Line {
        gsi: dev.irq,
        isr: IsrRegister::Mmio(dev.base),
    };
    bind(kind, transport, location, wiring, found);
}

/// Where `f`'s virtio doorbells are, if its capabilities say so consistently.
fn notify_layout(f: &Function) -> Option<NotifyLayout> {
    let read = |d, o| PortCam.read_word(d, o);
    let common = plinth_pci::find_virtio(read, f.location, VirtioCfg::Common)?.address(f)?;
    let (region, multiplier) = plinth_pci::find_virtio_notify(read, f.location)?;
    Some(NotifyLayout {
        common,
        notify_base: region.address(f)?,
        notify_len: u64::from(region.length),
        multiplier,
    })
}
