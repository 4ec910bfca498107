//! virtio device glue over `virtio-drivers`: the transports with their doorbells, the
//! DMA seam (`Hal`), and the block and network devices the rest of the kernel drives.
//!
//! Owns the device side of each queue — descriptors, buffers handed to the device and
//! taken back — and nothing above it: request queues are `crate::block`'s, frames are
//! `crate::net`'s. Every `unsafe` block here has a `// SAFETY:` line; which function gets
//! which driver is decided by `crate::drivers`.

pub mod blk;
pub mod doorbell;
pub mod hal;
pub mod isr;
pub mod mmio;
pub mod net;
