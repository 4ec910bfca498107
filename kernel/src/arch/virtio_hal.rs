//! The `virtio-drivers` HAL: DMA memory from the frame allocator, MMIO through the
//! identity map. This is the one seam where virtio devices touch memory.
//!
//! Physical = virtual for all RAM, so sharing a buffer with a device is handing over its
//! address; there is no IOMMU and no bounce buffer. Buffers the drivers share (heap or
//! stack memory) are physically contiguous because the identity map is.

use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use super::paging;
use crate::memory;

pub struct VirtioHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned, identity-mapped frames owned by the
// caller until `dma_dealloc`; `mmio_phys_to_virt` maps the device range uncached before
// returning its identity address; `share` returns the physical address of memory that is
// identity-mapped RAM.
unsafe impl Hal for VirtioHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(addr) = memory::alloc_contiguous_frames(pages) else {
            // The trait cannot fail; running out of frames for a device queue is the
            // kernel's own exhaustion, reported like heap exhaustion.
            panic!("out of memory: no {pages} contiguous frames for virtio DMA");
        };
        // SAFETY: the frames were just allocated to this caller and are identity-mapped
        // read-write RAM.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, pages * 4096) };
        let ptr = NonNull::new(addr as *mut u8).expect("frame 0 is never allocated");
        (addr, ptr)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, _vaddr: NonNull<u8>, pages: usize) -> i32 {
        memory::free_contiguous_frames(paddr, pages);
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        if let Err(e) = paging::map_mmio(paddr, size as u64, &mut memory::alloc_frame_addr) {
            // The address came from a BAR plinth-pci placed inside the MMIO window; a
            // failure here is a kernel bug, not device input.
            panic!("cannot map device registers at {paddr:#x}+{size:#x}: {e:?}");
        }
        NonNull::new(paddr as *mut u8).expect("BARs are never at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as u64
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}
