//! The virtio transport the drivers use — PCI or MMIO — with a cheap doorbell: queue
//! notifications go straight to the queue's notify register, and may be deferred and
//! rung once per batch.
//!
//! `virtio-drivers`' PCI transport notifies by selecting the queue, reading its notify
//! offset and then writing the doorbell: three register accesses, so three VM exits, per
//! notification. Profiling the runtime→host TCP stream under TCG put half the guest's time
//! there. Here the doorbell address is computed once per queue, and a deferred doorbell
//! only records the queue, so a burst of frames sent in one network poll costs a single
//! exit when [`Bell::ring`] is called — as Linux batches with `xmit_more`. A virtio-mmio
//! doorbell is one 32-bit register for all queues.
//!
//! A deferred doorbell also decides whether the device wants the notification at all.
//! With `VIRTIO_F_EVENT_IDX` the device publishes `avail_event`, the avail index after
//! which it wants to hear (virtio 1.2 §2.7.10); `virtio-drivers` 0.13 notifies whenever
//! the avail index is past it, which QEMU's devices — setting it to the last entry they
//! took — make nearly always: a kick for every receive-buffer refill, though QEMU pops
//! receive buffers as frames come without being told. [`Bell::ring`] applies the spec's
//! own test (`vring_need_event`: was `avail_event` crossed since the last decision?) to
//! the rings' indices, which `queue_set` located, and skips the exit otherwise. Under TCG
//! each doorbell is an MMIO exit that waits for QEMU's big lock, held by the thread doing
//! tap I/O: ~30 µs measured, half of them receive refills nobody needed.
//!
//! It is also where a PCI queue gets its MSI-X vector: virtio 1.2 §4.1.4.3.2 wants
//! `queue_msix_vector` written before the queue is enabled, and `queue_set` is where the
//! driver configures and enables a queue. Everything else is delegated to the wrapped
//! transport.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU64, Ordering, fence};

use virtio_drivers::transport::mmio::MmioTransport;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{PhysAddr, Result};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Queues a transport can cache doorbells for (virtio-net uses 2, virtio-blk 1).
pub const QUEUES: usize = 4;

/// `VIRTIO_F_EVENT_IDX` (virtio 1.2 §6): the rings carry `used_event`/`avail_event`.
const F_EVENT_IDX: u64 = 1 << 29;

/// Where the doorbells are: the common configuration (to read notify offsets) and the
/// notification area with its multiplier.
#[derive(Clone, Copy, Debug)]
pub struct NotifyLayout {
    pub common: u64,
    pub notify_base: u64,
    pub notify_len: u64,
    pub multiplier: u32,
}

/// virtio-mmio's QueueNotify register (virtio 1.2 §4.2.2).
const MMIO_QUEUE_NOTIFY: u64 = 0x50;
/// Marks a cached doorbell address as a 32-bit (virtio-mmio) register.
const WIDE: u64 = 1 << 63;

/// Common configuration offsets (virtio 1.2 §4.1.4.3).
const QUEUE_SELECT: u64 = 0x16;
const QUEUE_MSIX_VECTOR: u64 = 0x1a;
const QUEUE_NOTIFY_OFF: u64 = 0x1e;

/// Shared between the transport (inside a driver) and its owner, who rings deferred
/// doorbells. Atomics only so that a disk's driver may live in a static; one CPU uses it.
#[derive(Clone, Default)]
pub struct Bell {
    pending: Arc<AtomicU8>,
    addresses: Arc<[AtomicU64; QUEUES]>,
    /// Set when the device refused an MSI-X binding.
    msix_refused: Arc<AtomicBool>,
    /// Per queue, with `VIRTIO_F_EVENT_IDX`: where its indices are.
    events: Arc<[EventIdx; QUEUES]>,
    /// The features of [`Doorbell::offer`] the device took.
    accepted: Arc<AtomicU64>,
}

/// Where a queue's avail index and the device's `avail_event` are (0: not known, so
/// every notification is rung), and the avail index at the last decision to ring.
#[derive(Default)]
struct EventIdx {
    avail_idx: AtomicU64,
    avail_event: AtomicU64,
    last: AtomicU16,
}

impl EventIdx {
    /// Whether the device wants to hear of the entries made available since the last
    /// call; `None` when the rings are not known. virtio 1.2 §2.7.10's
    /// `vring_need_event(avail_event, new, old)`.
    fn wanted(&self) -> Option<bool> {
        let (idx_at, event_at) = (
            self.avail_idx.load(Ordering::Relaxed),
            self.avail_event.load(Ordering::Relaxed),
        );
        if idx_at == 0 || event_at == 0 {
            return None;
        }
        // SAFETY: `queue_set` recorded these as the avail ring's `idx` and the used
        // ring's `avail_event` of a queue the driver allocated (identity-mapped DMA memory
        // that lives as long as the device: the driver is never dropped), both 2-byte
        // aligned u16s; the driver writes the first and the device the second, so they are
        // read volatile.
        let new = unsafe { core::ptr::read_volatile(idx_at as *const u16) };
        // The avail index must be visible before the device's event is read (virtio's
        // full barrier), else both sides can miss each other's update.
        fence(Ordering::SeqCst);
        // SAFETY: as above.
        let event = unsafe { core::ptr::read_volatile(event_at as *const u16) };
        let old = self.last.swap(new, Ordering::Relaxed);
        Some(new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old))
    }
}

impl Bell {
    /// Writes the doorbell of every queue notified since the last ring whose device
    /// asked to hear of it (every such queue, without `VIRTIO_F_EVENT_IDX`). A queue
    /// whose rings are known is checked even when the driver did not ask to notify, so
    /// the decision is the spec's alone.
    pub fn ring(&self) {
        let mut pending = self.pending.swap(0, Ordering::Relaxed);
        for (queue, e) in self.events.iter().enumerate() {
            match e.wanted() {
                Some(true) => pending |= 1 << queue,
                Some(false) => pending &= !(1 << queue),
                None => {}
            }
        }
        while pending != 0 {
            let queue = pending.trailing_zeros() as usize;
            pending &= pending - 1;
            let address = self.addresses[queue].load(Ordering::Relaxed);
            if address != 0 {
                write_doorbell(address, queue as u16);
            }
        }
    }

    /// Which of the features [`Doorbell::offer`] added the device offered, and so were
    /// negotiated (set once the driver has written its features).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Whether every MSI-X binding the transport was given took (trivially true without).
    pub fn msix_bound(&self) -> bool {
        !self.msix_refused.load(Ordering::Relaxed)
    }
}

fn write_doorbell(address: u64, queue: u16) {
    if address & WIDE != 0 {
        // SAFETY: a WIDE address is the QueueNotify register of a virtio-mmio device whose
        // register block `virtio::mmio` mapped uncached before building the
        // transport; the register is 32 bits wide and takes the queue index.
        unsafe { core::ptr::write_volatile((address & !WIDE) as *mut u32, u32::from(queue)) };
    } else {
        // SAFETY: `address` was computed by `Doorbell::address` inside the notification
        // area of a BAR plinth-pci placed, which the wrapped transport mapped uncached;
        // the doorbell is a 16-bit register taking the queue index (virtio 1.2 §4.1.4.4).
        unsafe { core::ptr::write_volatile(address as *mut u16, queue) };
    }
}

/// The transport under a [`Doorbell`].
pub enum Inner {
    Pci(PciTransport),
    /// With the physical address of its register block.
    Mmio(MmioTransport<'static>, u64),
}

pub struct Doorbell {
    inner: Inner,
    layout: Option<NotifyLayout>,
    deferred: bool,
    /// `VIRTIO_F_EVENT_IDX` was negotiated.
    event_idx: bool,
    /// What the device offers (read during negotiation).
    device_features: u64,
    /// Features the owner handles beyond the driver's, taken where the device offers them.
    offered: u64,
    bell: Bell,
    /// MSI-X table entry per queue (`msix::NO_VECTOR`: raise nothing), bound as each
    /// queue is set up; `None` leaves the queues on INTx.
    msix_entries: Option<[u16; QUEUES]>,
}

/// Delegates one `Transport` call to whichever transport is inside.
macro_rules! inner {
    ($self:ident . $($call:tt)*) => {
        match &$self.inner {
            Inner::Pci(t) => t.$($call)*,
            Inner::Mmio(t, _) => t.$($call)*,
        }
    };
}

macro_rules! inner_mut {
    ($self:ident . $($call:tt)*) => {
        match &mut $self.inner {
            Inner::Pci(t) => t.$($call)*,
            Inner::Mmio(t, _) => t.$($call)*,
        }
    };
}

impl Doorbell {
    /// Wraps a PCI transport. Without a `layout`, notifications take the wrapped
    /// transport's path (and MSI-X cannot be bound). With `deferred`, notifications wait
    /// for [`Bell::ring`]. With `msix_entries`, each queue is bound to its table entry
    /// before it is enabled; [`Bell::msix_bound`] tells whether the device accepted.
    pub fn pci(
        inner: PciTransport,
        layout: Option<NotifyLayout>,
        deferred: bool,
        msix_entries: Option<[u16; QUEUES]>,
    ) -> Self {
        let bell = Bell::default();
        if msix_entries.is_some() && layout.is_none() {
            bell.msix_refused.store(true, Ordering::Relaxed);
        }
        Doorbell {
            inner: Inner::Pci(inner),
            layout,
            deferred,
            event_idx: false,
            device_features: 0,
            offered: 0,
            bell,
            msix_entries,
        }
    }

    /// Wraps a virtio-mmio transport whose registers are at `base`.
    pub fn mmio(inner: MmioTransport<'static>, base: u64, deferred: bool) -> Self {
        Doorbell {
            inner: Inner::Mmio(inner, base),
            layout: None,
            deferred,
            event_idx: false,
            device_features: 0,
            offered: 0,
            bell: Bell::default(),
            msix_entries: None,
        }
    }

    /// Adds `features` to what the driver negotiates, where the device offers them: for
    /// an owner that handles them beside the driver — the NIC's transmit offloads
    /// (`VIRTIO_NET_F_CSUM`, `VIRTIO_NET_F_HOST_TSO4`), which only change what the
    /// device accepts in the header of a frame sent, which the driver leaves to its
    /// caller. [`Bell::accepted`] says which were taken. Call before the driver starts.
    pub fn offer(&mut self, features: u64) {
        self.offered = features;
    }

    /// The handle that rings deferred doorbells.
    pub fn bell(&self) -> Bell {
        self.bell.clone()
    }

    /// The doorbell address of `queue`, computed on first use.
    fn address(&mut self, queue: u16) -> Option<u64> {
        let slot = self.bell.addresses.get(usize::from(queue))?;
        let known = slot.load(Ordering::Relaxed);
        if known != 0 {
            return Some(known);
        }
        if let Inner::Mmio(_, base) = self.inner {
            let address = (base + MMIO_QUEUE_NOTIFY) | WIDE;
            slot.store(address, Ordering::Relaxed);
            return Some(address);
        }
        let l = self.layout?;
        // SAFETY: `common` is the virtio common configuration structure, in a placed BAR
        // the wrapped transport mapped uncached; these are its 16-bit queue_select and
        // queue_notify_off (of the selected queue) registers. The transport is
        // ours alone (it is `&mut self`), so nothing else uses the selector meanwhile.
        let off = unsafe {
            core::ptr::write_volatile((l.common + QUEUE_SELECT) as *mut u16, queue);
            core::ptr::read_volatile((l.common + QUEUE_NOTIFY_OFF) as *const u16)
        };
        let offset = u64::from(off) * u64::from(l.multiplier);
        // A device pointing its doorbell outside its own notification area is not
        // trusted with the fast path.
        if offset + 2 > l.notify_len {
            self.layout = None;
            return None;
        }
        slot.store(l.notify_base + offset, Ordering::Relaxed);
        Some(l.notify_base + offset)
    }
}

impl Transport for Doorbell {
    fn device_type(&self) -> DeviceType {
        inner!(self.device_type())
    }

    fn read_device_features(&mut self) -> u64 {
        self.device_features = inner_mut!(self.read_device_features());
        self.device_features
    }

    fn write_driver_features(&mut self, driver_features: u64) {
        let extra = self.offered & self.device_features;
        self.bell.accepted.store(extra, Ordering::Relaxed);
        let features = driver_features | extra;
        self.event_idx = features & F_EVENT_IDX != 0;
        inner_mut!(self.write_driver_features(features))
    }

    fn max_queue_size(&mut self, queue: u16) -> u32 {
        inner_mut!(self.max_queue_size(queue))
    }

    fn notify(&mut self, queue: u16) {
        match self.address(queue) {
            Some(_) if self.deferred => {
                self.bell.pending.fetch_or(1 << queue, Ordering::Relaxed);
            }
            Some(address) => write_doorbell(address, queue),
            None => inner_mut!(self.notify(queue)),
        }
    }

    fn get_status(&self) -> DeviceStatus {
        inner!(self.get_status())
    }

    fn set_status(&mut self, status: DeviceStatus) {
        inner_mut!(self.set_status(status))
    }

    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        inner_mut!(self.set_guest_page_size(guest_page_size))
    }

    fn requires_legacy_layout(&self) -> bool {
        inner!(self.requires_legacy_layout())
    }

    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        if let (Some(entries), Some(l)) = (self.msix_entries, self.layout) {
            let entry = entries
                .get(usize::from(queue))
                .copied()
                .unwrap_or(crate::drivers::msix::NO_VECTOR);
            // SAFETY: as in `address`: the common configuration's 16-bit queue_select and
            // queue_msix_vector registers, written while we alone use the transport; the
            // wrapped `queue_set` then selects the queue again and enables it.
            let took = unsafe {
                core::ptr::write_volatile((l.common + QUEUE_SELECT) as *mut u16, queue);
                core::ptr::write_volatile((l.common + QUEUE_MSIX_VECTOR) as *mut u16, entry);
                core::ptr::read_volatile((l.common + QUEUE_MSIX_VECTOR) as *const u16) == entry
            };
            if !took {
                self.bell.msix_refused.store(true, Ordering::Relaxed);
            }
        }
        // Deferred doorbells follow the device's event index: the avail ring's `idx` is
        // its second u16, the used ring's `avail_event` follows its `size` 8-byte
        // entries after `flags` and `idx` (virtio 1.2 §2.7.6, §2.7.8).
        if self.deferred
            && self.event_idx
            && self.address(queue).is_some()
            && let Some(e) = self.bell.events.get(usize::from(queue))
        {
            e.last.store(0, Ordering::Relaxed);
            e.avail_idx.store(driver_area + 2, Ordering::Relaxed);
            e.avail_event
                .store(device_area + 4 + 8 * u64::from(size), Ordering::Relaxed);
        }
        inner_mut!(self.queue_set(queue, size, descriptors, driver_area, device_area))
    }

    fn queue_unset(&mut self, queue: u16) {
        inner_mut!(self.queue_unset(queue))
    }

    fn queue_used(&mut self, queue: u16) -> bool {
        inner_mut!(self.queue_used(queue))
    }

    fn ack_interrupt(&mut self) -> InterruptStatus {
        inner_mut!(self.ack_interrupt())
    }

    fn read_config_generation(&self) -> u32 {
        inner!(self.read_config_generation())
    }

    fn read_config_space<T: FromBytes + IntoBytes>(&self, offset: usize) -> Result<T> {
        inner!(self.read_config_space(offset))
    }

    fn write_config_space<T: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> Result<()> {
        inner_mut!(self.write_config_space(offset, value))
    }
}
