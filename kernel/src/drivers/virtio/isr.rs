//! Acknowledging a virtio device's level-triggered interrupt (PCI INTx, or a virtio-mmio
//! line), which deasserts the line.
//!
//! Done by `drivers` for every line device whoever drives it, so a device whose driver is
//! not running right now (the NIC while a console command waits on the disk) cannot hold
//! its line asserted and turn every unmask into an interrupt storm.

/// virtio-mmio InterruptStatus and InterruptACK (virtio 1.2 §4.2.2).
const MMIO_INTERRUPT_STATUS: u64 = 0x60;
const MMIO_INTERRUPT_ACK: u64 = 0x64;

/// Where a device's interrupt status is.
#[derive(Clone, Copy, Debug)]
pub enum IsrRegister {
    /// The ISR status byte of a virtio PCI function (reading it clears it).
    Pci(u64),
    /// The register block of a virtio-mmio device.
    Mmio(u64),
}

impl IsrRegister {
    /// Reads (and so clears) the interrupt status; true if the device had interrupted.
    pub fn acknowledge(self) -> bool {
        match self {
            // SAFETY: the address is the ISR capability region of a function whose BARs
            // plinth-pci placed; the transport mapped it uncached when it was built, and
            // it stays mapped. The register is one byte; reading it is its defined effect.
            IsrRegister::Pci(addr) => unsafe { core::ptr::read_volatile(addr as *const u8) != 0 },
            IsrRegister::Mmio(base) => {
                // SAFETY: `base` is a virtio-mmio register block `virtio::mmio` mapped
                // uncached for good; both registers are 32-bit, at their spec offsets.
                unsafe {
                    let status =
                        core::ptr::read_volatile((base + MMIO_INTERRUPT_STATUS) as *const u32);
                    if status != 0 {
                        core::ptr::write_volatile((base + MMIO_INTERRUPT_ACK) as *mut u32, status);
                    }
                    status != 0
                }
            }
        }
    }
}
