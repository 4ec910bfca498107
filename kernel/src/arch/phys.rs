//! Frames the kernel owns, with access to their bytes through the identity map.

/// Where frames come from and go back to: the kernel's frame allocator, which its owner
/// (the kernel's `memory` module) passes in, so `arch` does not reach up for it.
pub trait FrameSource: Sync {
    /// Physical address of a free frame, or `None` when memory is exhausted.
    fn alloc(&self) -> Option<u64>;
    /// Returns a frame `alloc` gave out.
    fn free(&self, addr: u64);
}

/// One 4 KiB frame taken from a [`FrameSource`]; returned to it on drop.
///
/// Only [`OwnedFrame::alloc`] creates one, so holding it proves the frame was handed to
/// this owner alone — which is what makes [`OwnedFrame::bytes`] sound.
pub struct OwnedFrame {
    addr: u64,
    source: &'static dyn FrameSource,
}

impl OwnedFrame {
    /// A free frame from `source`, or `None` when physical memory is exhausted.
    pub fn alloc(source: &'static dyn FrameSource) -> Option<OwnedFrame> {
        source.alloc().map(|addr| OwnedFrame { addr, source })
    }

    /// Physical (= virtual) address.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// The frame's contents.
    pub fn bytes(&mut self) -> &mut [u8; 4096] {
        // SAFETY: the frame was allocated to this value alone (see type docs) and all
        // usable RAM is identity-mapped read-write by `paging::init`.
        unsafe { &mut *(self.addr as *mut [u8; 4096]) }
    }
}

impl Drop for OwnedFrame {
    fn drop(&mut self) {
        self.source.free(self.addr);
    }
}
