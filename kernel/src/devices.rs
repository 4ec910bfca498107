//! The device registry: what the PCI walk found and the drivers bound to it.
//!
//! Owns discovery (PCI bus walk and BAR placement through `plinth-pci`), binding virtio
//! functions to drivers, routing their interrupts, and the answer to "which block devices
//! are there". NICs are handed to `net`. It must not decide what the disks are used for,
//! and touches hardware only through `arch`.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::virtio_blk::SECTOR_SIZE;
use log::{info, warn};
use plinth_cmdline::MmioDevice;
use plinth_pci::{ConfigurationAccess, Function, PciRoot, VirtioCfg, Window};
use spin::Mutex;
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};
use virtio_drivers::transport::{DeviceType, Transport};
use x86_64::instructions::interrupts::without_interrupts;

use crate::arch::doorbell::{Doorbell, NotifyLayout};
use crate::arch::ioapic::{self, DEVICE_VECTOR};
use crate::arch::msix::{self, NO_VECTOR};
use crate::arch::pci::PortCam;
use crate::arch::virtio_blk::BlkDevice;
use crate::arch::virtio_hal::VirtioHal;
use crate::arch::virtio_mmio;
use crate::arch::virtio_net::Nic;
use crate::block::{self, Disk};
use crate::{arch, memory};

/// Where unassigned BARs go: above q35's PCIe MMCONFIG window (0xb000_0000, 256 MiB) and
/// below the IOAPIC (0xfec0_0000). QEMU never puts RAM there (`q35` caps low RAM at
/// 2 GiB once RAM exceeds 2.75 GiB).
const MMIO_WINDOW: (u64, u64) = (0xc000_0000, 0xfec0_0000);

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
    pub address: String,
    pub vendor: u16,
    pub device: u16,
    pub class: u8,
    pub subclass: u8,
    /// What drives it: "virtio-blk", "virtio-net", or none.
    pub driver: Option<&'static str>,
}

static PCI_FUNCTIONS: Mutex<Vec<PciSummary>> = Mutex::new(Vec::new());

/// Set by the device interrupt; taken by the idle loop.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Whether any device interrupts through a level-triggered I/O APIC line (PCI INTx
/// without usable MSI-X, or a virtio-mmio device).
static LINES_IN_USE: AtomicBool = AtomicBool::new(false);

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

/// Reads the interrupt status of every INTx device the idle loop does not otherwise
/// service (the NIC's is read by `net`), then unmasks the PCI lines. Nothing to do when
/// every device uses MSI-X.
pub fn service_done() {
    if LINES_IN_USE.load(Ordering::Relaxed) {
        block::ack_intx();
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

/// Routes a virtio function's queues to their own MSI-X vectors: `queues` lists each
/// queue and whether it should interrupt at all (a queue that should not is bound to no
/// vector). Returns false, with the function left on INTx, when it has no usable MSI-X
/// table, vectors run out, or the device refuses a binding.
fn route_msix(f: &Function, queues: &[(u16, bool)]) -> bool {
    let read = |d, o| PortCam.read_word(d, o);
    let Some(m) = plinth_pci::find_msix(read, f.location) else {
        return false;
    };
    let (Some(table), Some(common)) = (
        m.table_address(f),
        plinth_pci::find_virtio(read, f.location, VirtioCfg::Common).and_then(|c| c.address(f)),
    ) else {
        return false;
    };
    let mut bindings: heapless::Vec<(u16, u16), 4> = heapless::Vec::new();
    let mut entry = 0u16;
    for &(queue, wanted) in queues {
        let bound = if wanted {
            let Some(vector) = msix::alloc_vector() else {
                return false;
            };
            if !msix::program_entry(table, m.table_size, entry, vector) {
                return false;
            }
            entry += 1;
            entry - 1
        } else {
            NO_VECTOR
        };
        if bindings.push((queue, bound)).is_err() {
            return false;
        }
    }
    if !msix::bind_virtio(common, NO_VECTOR, &bindings) {
        let unbound: heapless::Vec<(u16, u16), 4> =
            bindings.iter().map(|&(q, _)| (q, NO_VECTOR)).collect();
        msix::bind_virtio(common, NO_VECTOR, &unbound);
        return false;
    }
    plinth_pci::enable_msix(&mut PortCam, f.location, &m);
    true
}

/// Calls `f` with every PCI function found at boot.
pub fn for_each_pci_function(mut f: impl FnMut(&PciSummary)) {
    without_interrupts(|| PCI_FUNCTIONS.lock().iter().for_each(&mut f));
}

/// Walks PCI, places BARs, probes the virtio-mmio devices the command line names, and
/// binds drivers. Disks go to `block`; NICs are returned for `net` to own.
pub fn init(mmio: &[Option<MmioDevice>]) -> Vec<NetDevice> {
    match ioapic::init(DEVICE_VECTOR, &mut memory::alloc_frame_addr) {
        Some(_) => {}
        None => warn!("ioapic: not usable; devices are polled on the timer tick"),
    }
    let mut found = Found::default();
    init_pci(&mut found);
    for dev in mmio.iter().flatten() {
        init_mmio(dev, &mut found);
    }
    block::install(found.disks);
    if LINES_IN_USE.load(Ordering::Relaxed) {
        ioapic::mask_device_lines(false);
    }
    found.nics
}

/// What binding found so far.
#[derive(Default)]
struct Found {
    disks: Vec<Disk>,
    nics: Vec<NetDevice>,
}

/// How a device's interrupts reach the CPU.
enum Wiring<'a> {
    /// A PCI function: MSI-X if it offers it, else the shared INTx lines.
    Pci(&'a Function),
    /// A virtio-mmio device's own interrupt line.
    Line(u32),
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

impl Irq {
    fn msix(self) -> bool {
        matches!(self, Irq::Msix)
    }
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

/// Routes a device's interrupts; `queues` lists each virtqueue and whether it should
/// interrupt at all (MSI-X can leave one silent).
fn wire(wiring: &Wiring, queues: &[(u16, bool)]) -> Irq {
    let irq = match wiring {
        Wiring::Pci(f) if route_msix(f, queues) => return Irq::Msix,
        Wiring::Pci(_) => Irq::Line(None),
        Wiring::Line(gsi) if ioapic::route_line(*gsi, DEVICE_VECTOR, false) => {
            Irq::Line(Some(*gsi))
        }
        Wiring::Line(_) => return Irq::Polled,
    };
    LINES_IN_USE.store(true, Ordering::Relaxed);
    irq
}

/// Binds a virtio device of `kind` reached through `transport` at `location`.
fn bind(
    kind: DeviceType,
    transport: Doorbell,
    location: String,
    wiring: Wiring,
    found: &mut Found,
) {
    if kind == DeviceType::Network {
        match Nic::new(transport) {
            Ok(mut nic) => {
                let name = alloc::format!("net{}", found.nics.len());
                let m = nic.mac();
                // Receive interrupts only: sent frames are reclaimed lazily, so the
                // transmit queue raises nothing (where MSI-X lets it be silenced).
                let irq = wire(&wiring, &[(0, true), (1, false)]);
                nic.set_msix(irq.msix());
                info!(
                    "{name}: virtio-net at {location}, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {irq}",
                    m[0], m[1], m[2], m[3], m[4], m[5]
                );
                found.nics.push(NetDevice {
                    name,
                    location,
                    nic,
                });
            }
            Err(e) => warn!("{location}: virtio-net initialisation failed: {e}"),
        }
        return;
    }
    let dev = match BlkDevice::new(transport) {
        Ok(d) => d,
        Err(e) => {
            warn!("{location}: virtio-blk initialisation failed: {e}");
            return;
        }
    };
    let irq = wire(&wiring, &[(0, true)]);
    let disk = Disk::new(
        alloc::format!("blk{}", found.disks.len()),
        location,
        dev,
        irq.msix(),
    );
    info!(
        "{}: virtio-blk at {}, {} sectors ({} MiB), serial \"{}\"{}, {irq}",
        disk.name,
        disk.location,
        disk.sectors,
        (disk.sectors * SECTOR_SIZE as u64) >> 20,
        disk.serial.escape_default(),
        if disk.read_only { ", read-only" } else { "" },
    );
    found.disks.push(disk);
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
    let mut summary = Vec::with_capacity(walk.functions.len());
    for f in &walk.functions {
        let at = f.location;
        let pci = alloc::format!("{:02x}:{:02x}.{}", at.bus, at.device, at.function);
        let kind = virtio_device_type(&f.info);
        summary.push(PciSummary {
            address: pci.clone(),
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
        // The NIC batches its doorbells per network poll; a disk rings at once (a lone
        // 4 KiB read must not wait).
        let transport = Doorbell::pci(transport, notify_layout(f), kind == DeviceType::Network);
        bind(kind, transport, pci, Wiring::Pci(f), found);
    }
    without_interrupts(|| *PCI_FUNCTIONS.lock() = summary);
}

/// Where virtio-mmio register blocks may be: the MMIO hole below 4 GiB, clear of the
/// local and I/O APICs' pages. An address elsewhere (RAM) is refused, not mapped.
fn mmio_block_allowed(base: u64, size: u64) -> bool {
    let Some(end) = base.checked_add(size) else {
        return false;
    };
    let apics = 0xfec0_0000..0xfef0_0000;
    base >= MMIO_WINDOW.0 && end <= 1 << 32 && (end <= apics.start || base >= apics.end)
}

fn init_mmio(dev: &MmioDevice, found: &mut Found) {
    let location = alloc::format!("mmio@{:#x}", dev.base);
    if !mmio_block_allowed(dev.base, dev.size) {
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
    bind(kind, transport, location, Wiring::Line(dev.irq), found);
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
