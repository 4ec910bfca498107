//! The device registry: what the PCI walk found and the drivers bound to it.
//!
//! Owns discovery (PCI bus walk and BAR placement through `plinth-pci`), binding virtio
//! functions to drivers, routing their interrupts, and the answer to "which block devices
//! are there". NICs are handed to `net`. It must not decide what the disks are used for,
//! and touches hardware only through `arch`.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use log::{info, warn};
use plinth_pci::{ConfigurationAccess, Function, PciRoot, VirtioCfg, Window};
use spin::Mutex;
use virtio_drivers::device::blk::SECTOR_SIZE;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};
use x86_64::instructions::interrupts::without_interrupts;

use crate::arch::doorbell::{NotifyLayout, PciDoorbell};
use crate::arch::ioapic::{self, DEVICE_VECTOR};
use crate::arch::msix::{self, NO_VECTOR};
use crate::arch::pci::PortCam;
use crate::arch::virtio_blk::BlkDevice;
use crate::arch::virtio_hal::VirtioHal;
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
    pub pci: String,
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
/// Whether any device was left on the shared INTx lines (no usable MSI-X).
static INTX_IN_USE: AtomicBool = AtomicBool::new(false);

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
    if INTX_IN_USE.load(Ordering::Relaxed) {
        block::ack_intx();
        ioapic::mask_pci_lines(false);
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

/// Walks PCI, places BARs and binds drivers. Disks stay in the registry; NICs are
/// returned for `net` to own.
pub fn init() -> Vec<NetDevice> {
    match ioapic::init(DEVICE_VECTOR, &mut memory::alloc_frame_addr) {
        Some(_) => {}
        None => warn!("ioapic: not usable; devices are polled on the timer tick"),
    }
    let mut root = PciRoot::new(PortCam);
    let mut window = Window::new(MMIO_WINDOW.0, MMIO_WINDOW.1);
    // Only functions a driver here will drive are set up; the rest keep decoding off.
    let found = plinth_pci::enumerate(
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
    if found.dropped > 0 {
        warn!("pci: {} functions beyond the table ignored", found.dropped);
    }
    info!(
        "pci: {} functions, {} BARs assigned, {} kept",
        found.functions.len(),
        found.assigned_bars,
        found.kept_bars
    );
    let mut disks = Vec::new();
    let mut nics = Vec::new();
    let mut summary = Vec::with_capacity(found.functions.len());
    for f in &found.functions {
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
        let transport = PciDoorbell::new(transport, notify_layout(f), kind == DeviceType::Network);
        if kind == DeviceType::Network {
            match Nic::new(transport) {
                Ok(mut nic) => {
                    let name = alloc::format!("net{}", nics.len());
                    let m = nic.mac();
                    // Receive interrupts only: sent frames are reclaimed lazily, so the
                    // transmit queue raises nothing.
                    let msix = route_msix(f, &[(0, true), (1, false)]);
                    nic.set_msix(msix);
                    INTX_IN_USE.fetch_or(!msix, Ordering::Relaxed);
                    info!(
                        "{name}: virtio-net at {pci}, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {}",
                        m[0],
                        m[1],
                        m[2],
                        m[3],
                        m[4],
                        m[5],
                        irq_name(msix)
                    );
                    nics.push(NetDevice { name, pci, nic });
                }
                Err(e) => warn!("pci {pci}: virtio-net initialisation failed: {e}"),
            }
            continue;
        }
        let dev = match BlkDevice::new(transport) {
            Ok(d) => d,
            Err(e) => {
                warn!("pci {pci}: virtio-blk initialisation failed: {e}");
                continue;
            }
        };
        let msix = route_msix(f, &[(0, true)]);
        INTX_IN_USE.fetch_or(!msix, Ordering::Relaxed);
        let disk = Disk::new(alloc::format!("blk{}", disks.len()), pci, dev, msix);
        info!(
            "{}: virtio-blk at {}, {} sectors ({} MiB), serial \"{}\"{}, {}",
            disk.name,
            disk.pci,
            disk.sectors,
            (disk.sectors * SECTOR_SIZE as u64) >> 20,
            disk.serial.escape_default(),
            if disk.read_only { ", read-only" } else { "" },
            irq_name(msix)
        );
        disks.push(disk);
    }
    block::install(disks);
    without_interrupts(|| *PCI_FUNCTIONS.lock() = summary);
    if INTX_IN_USE.load(Ordering::Relaxed) {
        ioapic::mask_pci_lines(false);
    }
    nics
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

fn irq_name(msix: bool) -> &'static str {
    if msix { "MSI-X" } else { "INTx" }
}
