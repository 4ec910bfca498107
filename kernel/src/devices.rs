//! The device registry: what the PCI walk found and the drivers bound to it.
//!
//! Owns discovery (PCI bus walk and BAR placement through `plinth-pci`), binding virtio
//! functions to drivers, routing their interrupts, and the answer to "which block devices
//! are there". NICs are handed to `net`. It must not decide what the disks are used for,
//! and touches hardware only through `arch`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use log::{info, warn};
use plinth_pci::{PciRoot, Window};
use spin::Mutex;
use virtio_drivers::device::blk::{SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};
use x86_64::instructions::interrupts::without_interrupts;

use crate::arch::ioapic::{self, DEVICE_VECTOR};
use crate::arch::pci::PortCam;
use crate::arch::virtio_hal::VirtioHal;
use crate::arch::virtio_net::Nic;
use crate::memory;

/// Where unassigned BARs go: above q35's PCIe MMCONFIG window (0xb000_0000, 256 MiB) and
/// below the IOAPIC (0xfec0_0000). QEMU never puts RAM there (`q35` caps low RAM at
/// 2 GiB once RAM exceeds 2.75 GiB).
const MMIO_WINDOW: (u64, u64) = (0xc000_0000, 0xfec0_0000);

/// A virtio block device and what is known of it.
pub struct Disk {
    pub name: String,
    pub pci: String,
    pub sectors: u64,
    pub serial: String,
    pub read_only: bool,
    pub counters: DiskCounters,
    driver: VirtIOBlk<VirtioHal, PciTransport>,
}

/// Request counters of one disk, for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskCounters {
    pub reads: u64,
    pub read_bytes: u64,
    pub writes: u64,
    pub written_bytes: u64,
    pub flushes: u64,
    pub errors: u64,
}

/// Why a disk request failed.
#[derive(Debug)]
pub enum DiskError {
    NoSuchDisk,
    /// Sector range outside the disk.
    OutOfRange,
    Device(virtio_drivers::Error),
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskError::NoSuchDisk => f.write_str("no such disk"),
            DiskError::OutOfRange => f.write_str("sectors outside the disk"),
            DiskError::Device(e) => write!(f, "device error: {e}"),
        }
    }
}

static DISKS: Mutex<Vec<Disk>> = Mutex::new(Vec::new());

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

/// Records that a PCI line fired (the lines stay masked until [`service_done`]).
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

/// Reads every disk's interrupt status, deasserting its line; the NICs' are read by
/// `net`. Then the PCI lines are unmasked again.
pub fn service_done() {
    without_interrupts(|| {
        for d in DISKS.lock().iter_mut() {
            let _ = d.driver.ack_interrupt();
        }
    });
    ioapic::mask_pci_lines(false);
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
        if kind == DeviceType::Network {
            match Nic::new(transport) {
                Ok(nic) => {
                    let name = alloc::format!("net{}", nics.len());
                    let m = nic.mac();
                    info!(
                        "{name}: virtio-net at {pci}, MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                        m[0], m[1], m[2], m[3], m[4], m[5]
                    );
                    nics.push(NetDevice { name, pci, nic });
                }
                Err(e) => warn!("pci {pci}: virtio-net initialisation failed: {e}"),
            }
            continue;
        }
        let mut driver = match VirtIOBlk::<VirtioHal, _>::new(transport) {
            Ok(d) => d,
            Err(e) => {
                warn!("pci {pci}: virtio-blk initialisation failed: {e}");
                continue;
            }
        };
        let mut id = [0u8; 20];
        let serial = match driver.device_id(&mut id) {
            Ok(n) => String::from_utf8_lossy(&id[..n.min(20)]).into_owned(),
            Err(_) => String::new(),
        };
        let disk = Disk {
            name: alloc::format!("blk{}", disks.len()),
            pci,
            sectors: driver.capacity(),
            serial,
            read_only: driver.readonly(),
            counters: DiskCounters::default(),
            driver,
        };
        info!(
            "{}: virtio-blk at {}, {} sectors ({} MiB), serial \"{}\"{}",
            disk.name,
            disk.pci,
            disk.sectors,
            (disk.sectors * SECTOR_SIZE as u64) >> 20,
            disk.serial.escape_default(),
            if disk.read_only { ", read-only" } else { "" }
        );
        disks.push(disk);
    }
    without_interrupts(|| {
        *DISKS.lock() = disks;
        *PCI_FUNCTIONS.lock() = summary;
    });
    nics
}

/// Calls `f` with every disk's name, PCI address, size in sectors and serial.
pub fn for_each_disk(mut f: impl FnMut(&str, &str, u64, &str)) {
    without_interrupts(|| {
        for d in DISKS.lock().iter() {
            f(&d.name, &d.pci, d.sectors, &d.serial);
        }
    });
}

fn tally(
    c: &mut DiskCounters,
    r: Result<(), virtio_drivers::Error>,
    ok: impl FnOnce(&mut DiskCounters),
) -> Result<(), DiskError> {
    match r {
        Ok(()) => {
            ok(c);
            Ok(())
        }
        Err(e) => {
            c.errors += 1;
            Err(DiskError::Device(e))
        }
    }
}

/// Calls `f` with every disk's name and counters.
pub fn for_each_disk_counters(mut f: impl FnMut(&str, DiskCounters)) {
    without_interrupts(|| {
        for d in DISKS.lock().iter() {
            f(&d.name, d.counters);
        }
    });
}

/// Runs `f` over `count` sectors of disk `index` from `first`, in chunks, reading each
/// chunk into a buffer first (`write` false) or writing the buffer `f` filled (`write`).
/// `f` gets the chunk's byte offset on the disk and the chunk.
pub fn with_sectors(
    index: usize,
    first: u64,
    count: u64,
    write: bool,
    mut f: impl FnMut(u64, &mut [u8]),
) -> Result<(), DiskError> {
    const CHUNK_SECTORS: u64 = 128; // 64 KiB per request
    let mut buf = alloc::vec![0u8; (CHUNK_SECTORS as usize) * SECTOR_SIZE];
    let mut disks = DISKS.lock();
    let disk = disks.get_mut(index).ok_or(DiskError::NoSuchDisk)?;
    let end = first.checked_add(count).ok_or(DiskError::OutOfRange)?;
    if end > disk.sectors {
        return Err(DiskError::OutOfRange);
    }
    let mut s = first;
    while s < end {
        let n = (end - s).min(CHUNK_SECTORS);
        let chunk = &mut buf[..n as usize * SECTOR_SIZE];
        let block = usize::try_from(s).map_err(|_| DiskError::OutOfRange)?;
        let bytes = chunk.len() as u64;
        if write {
            f(s * SECTOR_SIZE as u64, chunk);
            let r = disk.driver.write_blocks(block, chunk);
            tally(&mut disk.counters, r, |c| {
                c.writes += 1;
                c.written_bytes += bytes;
            })?;
        } else {
            let r = disk.driver.read_blocks(block, chunk);
            tally(&mut disk.counters, r, |c| {
                c.reads += 1;
                c.read_bytes += bytes;
            })?;
            f(s * SECTOR_SIZE as u64, chunk);
        }
        s += n;
    }
    if write {
        let r = disk.driver.flush();
        tally(&mut disk.counters, r, |c| c.flushes += 1)?;
    }
    Ok(())
}
