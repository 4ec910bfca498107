//! The device registry: what the PCI walk found and the drivers bound to it.
//!
//! Owns discovery (PCI bus walk and BAR placement through `plinth-pci`), binding virtio
//! functions to drivers, and the answer to "which block devices are there". It must not
//! decide what the disks are used for, and touches hardware only through `arch`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use log::{info, warn};
use plinth_pci::{PciRoot, Window};
use spin::Mutex;
use virtio_drivers::device::blk::{SECTOR_SIZE, VirtIOBlk};
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::{PciTransport, virtio_device_type};
use x86_64::instructions::interrupts::without_interrupts;

use crate::arch::pci::PortCam;
use crate::arch::virtio_hal::VirtioHal;

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
    driver: VirtIOBlk<VirtioHal, PciTransport>,
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

/// Walks PCI, places BARs and binds drivers. Returns the number of disks found.
pub fn init() -> usize {
    let mut root = PciRoot::new(PortCam);
    let mut window = Window::new(MMIO_WINDOW.0, MMIO_WINDOW.1);
    // Only functions a driver here will drive are set up; the rest keep decoding off.
    let found = plinth_pci::enumerate(
        &mut root,
        |d, o| plinth_pci::ConfigurationAccess::read_word(&PortCam, d, o),
        &mut window,
        |info| virtio_device_type(info) == Some(DeviceType::Block),
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
    for f in &found.functions {
        let Some(kind) = virtio_device_type(&f.info) else {
            continue;
        };
        let at = f.location;
        let pci = alloc::format!("{:02x}:{:02x}.{}", at.bus, at.device, at.function);
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
    let n = disks.len();
    without_interrupts(|| *DISKS.lock() = disks);
    n
}

/// Calls `f` with every disk's name, PCI address, size in sectors and serial.
pub fn for_each_disk(mut f: impl FnMut(&str, &str, u64, &str)) {
    without_interrupts(|| {
        for d in DISKS.lock().iter() {
            f(&d.name, &d.pci, d.sectors, &d.serial);
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
        if write {
            f(s * SECTOR_SIZE as u64, chunk);
            disk.driver
                .write_blocks(block, chunk)
                .map_err(DiskError::Device)?;
        } else {
            disk.driver
                .read_blocks(block, chunk)
                .map_err(DiskError::Device)?;
            f(s * SECTOR_SIZE as u64, chunk);
        }
        s += n;
    }
    if write {
        disk.driver.flush().map_err(DiskError::Device)?;
    }
    Ok(())
}
