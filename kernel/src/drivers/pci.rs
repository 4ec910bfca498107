//! PCI configuration space through the legacy port mechanism (0xcf8 address, 0xcfc data).
//!
//! Port access reaches the first 256 bytes of every function, enough for the header, BARs,
//! MSI-X and the virtio capabilities. Both `q35` and `pc` offer it.

use plinth_pci::{ConfigurationAccess, DeviceFunction};
use spin::Mutex;
use x86_64::instructions::interrupts::without_interrupts;
use x86_64::instructions::port::Port;

/// The address/data pair is one shared register window: one access at a time.
static PORTS: Mutex<()> = Mutex::new(());

/// Config-space access by port I/O. Stateless, so clones are free.
#[derive(Clone, Copy, Debug)]
pub struct PortCam;

fn address(d: DeviceFunction, offset: u8) -> u32 {
    0x8000_0000
        | u32::from(d.bus) << 16
        | u32::from(d.device & 0x1f) << 11
        | u32::from(d.function & 0x7) << 8
        | u32::from(offset & 0xfc)
}

impl ConfigurationAccess for PortCam {
    fn read_word(&self, d: DeviceFunction, offset: u8) -> u32 {
        without_interrupts(|| {
            let _g = PORTS.lock();
            // SAFETY: 0xcf8/0xcfc are the PCI configuration ports on every PC profile;
            // the lock keeps the address and data accesses together. Reads of config
            // space have no side effects on memory.
            unsafe {
                Port::<u32>::new(0xcf8).write(address(d, offset));
                Port::<u32>::new(0xcfc).read()
            }
        })
    }

    fn write_word(&mut self, d: DeviceFunction, offset: u8, data: u32) {
        without_interrupts(|| {
            let _g = PORTS.lock();
            // SAFETY: as in `read_word`. Callers (plinth-pci, the virtio transport) write
            // only BARs and the command register of devices the kernel owns.
            unsafe {
                Port::<u32>::new(0xcf8).write(address(d, offset));
                Port::<u32>::new(0xcfc).write(data);
            }
        })
    }

    unsafe fn unsafe_clone(&self) -> Self {
        PortCam
    }
}
