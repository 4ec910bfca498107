//! virtio-mmio glue: maps a device's register block and builds `virtio-drivers`' MMIO
//! transport over it. Where the blocks are comes from the command line
//! (`virtio_mmio.device=`); whether an address is acceptable is decided by `drivers`.

use core::ptr::NonNull;

use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};

use crate::arch::paging;
use crate::memory;

/// Why a virtio-mmio block could not be used.
#[derive(Debug)]
pub enum MmioProbeError {
    /// The register block is not 4-byte aligned or could not be mapped.
    Unmappable,
    /// No (or no supported) virtio device answers there.
    Transport(MmioError),
}

impl core::fmt::Display for MmioProbeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MmioProbeError::Unmappable => f.write_str("register block misaligned or unmappable"),
            MmioProbeError::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// Maps `size` bytes of registers at `base` and reads the virtio-mmio header there.
pub fn transport(base: u64, size: u64) -> Result<MmioTransport<'static>, MmioProbeError> {
    if !base.is_multiple_of(4) {
        return Err(MmioProbeError::Unmappable);
    }
    paging::map_mmio(base, size, &mut memory::alloc_frame_addr)
        .map_err(|_| MmioProbeError::Unmappable)?;
    let header = NonNull::new(base as *mut VirtIOHeader).ok_or(MmioProbeError::Unmappable)?;
    let size = usize::try_from(size).map_err(|_| MmioProbeError::Unmappable)?;
    // SAFETY: `base` is 4-byte aligned (the header's alignment), non-null, and the whole
    // `size`-byte block was just mapped uncached and stays mapped for the kernel's life;
    // `drivers` only passes blocks inside the MMIO hole, never RAM. `MmioTransport::new`
    // checks the magic value and version before trusting the rest.
    unsafe { MmioTransport::new(header, size) }.map_err(MmioProbeError::Transport)
}
