//! The `virtio-drivers` HAL: DMA memory from the kernel heap, MMIO through the identity
//! map. This is the one seam where virtio devices touch memory.
//!
//! DMA comes from the heap, not straight from the frame allocator: the heap is one
//! physically contiguous, identity-mapped run, so a page-aligned heap block is valid DMA
//! memory, and the heap's low end is memory the host has already backed — frames above
//! the heap would make the host fault in and zero a fresh huge page while a device comes
//! up (the cost that moved the heap too: 0.3–3.8 ms per fresh huge page under TCG).
//!
//! Physical = virtual for all RAM, so sharing a buffer with a device is handing over its
//! address; there is no IOMMU and no bounce buffer. Buffers the drivers share (heap or
//! stack memory) are physically contiguous because the identity map is.

use core::alloc::Layout;
use core::ptr::NonNull;

use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::arch::paging;
use crate::memory;

pub struct VirtioHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned, identity-mapped heap memory owned by
// the caller until `dma_dealloc`; `mmio_phys_to_virt` maps the device range uncached before
// returning its identity address; `share` returns the physical address of memory that is
// identity-mapped RAM.
unsafe impl Hal for VirtioHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Ok(layout) = Layout::from_size_align(pages * 4096, 4096) else {
            panic!("virtio asked for an impossible DMA size: {pages} pages");
        };
        // SAFETY: the layout has a non-zero size (virtio never asks for 0 pages and
        // `alloc_zeroed` of a zero size would only return a dangling pointer we reject).
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            alloc::alloc::handle_alloc_error(layout)
        };
        (ptr.as_ptr() as u64, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let Ok(layout) = Layout::from_size_align(pages * 4096, 4096) else {
            return -1;
        };
        // SAFETY: `vaddr` came from `dma_alloc` with this page count (the Hal contract),
        // hence from the global allocator with this layout.
        unsafe { alloc::alloc::dealloc(vaddr.as_ptr(), layout) };
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
