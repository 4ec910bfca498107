//! Frames the kernel owns, with access to their bytes through the identity map.

/// One 4 KiB frame taken from the frame allocator; returned to it on drop.
///
/// Only [`OwnedFrame::alloc`] creates one, so holding it proves the frame was handed to
/// this owner alone — which is what makes [`OwnedFrame::bytes`] sound.
pub struct OwnedFrame(u64);

impl OwnedFrame {
    /// A free frame, or `None` when physical memory is exhausted.
    pub fn alloc() -> Option<OwnedFrame> {
        crate::memory::alloc_frame_addr().map(OwnedFrame)
    }

    /// Physical (= virtual) address.
    pub fn addr(&self) -> u64 {
        self.0
    }

    /// The frame's contents.
    pub fn bytes(&mut self) -> &mut [u8; 4096] {
        // SAFETY: the frame was allocated to this value alone (see type docs) and all
        // usable RAM is identity-mapped read-write by `paging::init`.
        unsafe { &mut *(self.0 as *mut [u8; 4096]) }
    }
}

impl Drop for OwnedFrame {
    fn drop(&mut self) {
        crate::memory::free_frame_addr(self.0);
    }
}
