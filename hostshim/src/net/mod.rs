//! TCP, UDP and DHCP for agents (feature `net`): one small poll-style API, so an agent
//! never writes a network stack.
//!
//! Owns the API (`Net` and its handles, [`Limits`], [`Stats`], [`NetError`]) and picks
//! its backend. It must not reach a NIC itself: frames go through [`crate::nic`], and the
//! protocols are smoltcp's. The backends:
//!
//! - **Target**: smoltcp over NIC 0 ([`crate::nic`]), with the address DHCP or the
//!   [`Addressing`] gives; the interface answers ARP and pings itself. [`Net::poll`]
//!   drives it and sleeps in NetWait until a frame arrives or a timer is due.
//! - **Host**: Linux sockets on `127.0.0.1` (the addressing is ignored: the process has
//!   the host's addresses), so the same agent runs as a process. Every local port is
//!   shifted by `$PLINTH_NET_PORT_OFFSET` (default 0), since ports below 1024 need root;
//!   [`Net::mac`] is the fixed `02:00:00:00:00:01` and [`Net::stats`] counts nothing.
//!
//! # Use
//!
//! ```no_run
//! # use hostshim::net::{Addressing, Net, NetError};
//! let mut net = Net::up(Addressing::Dhcp).unwrap();
//! let web = net.tcp_listen(80).unwrap();
//! let mut clients = Vec::new();
//! let mut buf = [0u8; 512];
//! loop {
//!     net.poll(100_000_000); // drives the stack; sleeps at most 100 ms
//!     while let Some(stream) = net.accept(&web) {
//!         clients.push(stream);
//!     }
//!     let mut i = 0;
//!     while i < clients.len() {
//!         match net.recv(&clients[i], &mut buf) {
//!             Ok(0) | Err(NetError::Closed) => net.close(clients.swap_remove(i)),
//!             Ok(n) => { let _ = net.send(&clients[i], &buf[..n]); i += 1 }
//!             Err(_) => i += 1, // WouldBlock: nothing yet
//!         }
//!     }
//! }
//! ```
//!
//! Nothing blocks but [`Net::poll`]: `accept`, `recv`, `send` and the UDP calls return
//! at once, with [`NetError::WouldBlock`] (or `None`) when there is nothing to do yet.
//! After a call made progress, the next `poll` does not sleep, so a busy agent is never
//! held up by it.

mod addressing;
#[cfg(feature = "host")]
mod host;
// The host's tests drive the target backend too, over a simulated wire.
#[cfg(any(test, not(feature = "host")))]
mod stack;

use core::fmt;
pub use core::net::{Ipv4Addr, SocketAddrV4};
use core::sync::atomic::{AtomicU32, Ordering};

pub use addressing::{AddressError, Addressing, Cidr};
#[cfg(feature = "host")]
use host::Stack;
#[cfg(not(feature = "host"))]
use stack::Stack;

/// How many sockets of each kind a [`Net`] may have, and their buffers. Memory for each
/// socket (on the target: its buffers, from the agent's heap) is taken when the socket is
/// first needed and reused after it closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// TCP sockets: connections (accepted or about to be) plus, on the target, the
    /// sockets each listener keeps listening for the next ones (two, while the limit
    /// allows). Default 16.
    pub tcp_sockets: usize,
    /// Each TCP socket's receive and its send buffer, bytes (target only; the window it
    /// advertises and the data it can have in flight). Default 16 KiB.
    pub tcp_buffer: usize,
    /// UDP sockets. Default 4.
    pub udp_sockets: usize,
    /// Each UDP socket's receive and its send buffer, bytes, for up to 16 datagrams each
    /// way (target only). A datagram longer than this cannot be sent. Default 8 KiB.
    pub udp_buffer: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            tcp_sockets: 16,
            tcp_buffer: 16 * 1024,
            udp_sockets: 4,
            udp_buffer: 8 * 1024,
        }
    }
}

/// What went through the NIC (target; all zero on the host backend).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received and handed to the stack.
    pub rx_frames: u64,
    /// Bytes of those frames.
    pub rx_bytes: u64,
    /// Frames the runtime took to send.
    pub tx_frames: u64,
    /// Bytes of those frames.
    pub tx_bytes: u64,
    /// Frames the stack built but the NIC's transmit queue could not take (TCP sends
    /// them again; a reply to a ping or an ARP request is lost).
    pub tx_dropped: u64,
    /// Times a frame found the NIC's transmit queue full and waited for room.
    pub tx_full: u64,
    /// The NIC's receive offload is on (see [`crate::nic::offload`]).
    pub rx_offload: bool,
    /// Frames received longer than a plain frame: super-frames (counted in `rx_frames`).
    pub rx_large: u64,
    /// Frames dropped for a wrong TCP, UDP or ICMP checksum (checked here with offload
    /// on; smoltcp drops them silently otherwise).
    pub rx_bad_checksum: u64,
}

/// Why a network call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// The partition has no NIC (target); `Net::up` only.
    NoNic,
    /// The addressing cannot be applied on this NIC; `Net::up` only.
    Address(AddressError),
    /// A NIC call failed in a way the runtime's contract rules out (e.g. a refused
    /// buffer); `Net::up` only.
    Runtime(crate::Error),
    /// Nothing to receive, or no room to send, yet: [`Net::poll`] and try again.
    WouldBlock,
    /// The connection is gone: reset by the peer, timed out, or (when sending) closed
    /// by the peer. Close the stream.
    Closed,
    /// [`Limits`] allows no more sockets of this kind.
    NoSockets,
    /// The agent's heap could not hold another socket's buffers.
    NoMemory,
    /// Another listener or UDP socket (of this agent, or on the host another process)
    /// has this port.
    PortInUse,
    /// Port 0, a port the host offset pushes past 65535, or a destination that cannot
    /// be sent to (port 0, unspecified or broadcast address).
    InvalidPort,
    /// The interface has no address yet (DHCP has not answered), so nothing can be
    /// sent.
    NoAddress,
    /// A datagram longer than the UDP socket's buffer.
    TooLong,
    /// A handle from another `Net`.
    BadHandle,
    /// The host refused a socket operation for another reason (host backend only).
    Io,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::NoNic => f.write_str("no NIC"),
            NetError::Address(e) => write!(f, "bad addressing: {e}"),
            NetError::Runtime(e) => write!(f, "NIC call failed: {e}"),
            NetError::WouldBlock => f.write_str("would block"),
            NetError::Closed => f.write_str("connection closed"),
            NetError::NoSockets => f.write_str("no sockets left"),
            NetError::NoMemory => f.write_str("out of memory for socket buffers"),
            NetError::PortInUse => f.write_str("port in use"),
            NetError::InvalidPort => f.write_str("invalid port or destination"),
            NetError::NoAddress => f.write_str("no address yet"),
            NetError::TooLong => f.write_str("datagram too long"),
            NetError::BadHandle => f.write_str("handle of another Net"),
            NetError::Io => f.write_str("host socket error"),
        }
    }
}

/// A TCP port being listened on ([`Net::tcp_listen`]).
#[derive(Debug)]
pub struct Listener(Handle);

/// A TCP connection ([`Net::accept`]); give it back with [`Net::close`].
#[derive(Debug)]
pub struct Stream(Handle);

/// A bound UDP socket ([`Net::udp_bind`]).
#[derive(Debug)]
pub struct Udp(Handle);

/// Which `Net` a handle belongs to, and its slot there. Handles are not `Clone`: closing
/// one consumes it, so a slot's next occupant cannot be reached through an old handle.
#[derive(Debug)]
struct Handle {
    net: u32,
    slot: usize,
}

/// Numbers `Net`s, so a handle of one is refused by another.
static NETS: AtomicU32 = AtomicU32::new(0);

/// The agent's network: one interface, its sockets, and the loop that drives them.
pub struct Net {
    id: u32,
    stack: Stack,
}

impl Net {
    /// Brings up NIC 0 with `addressing` and the default [`Limits`].
    ///
    /// Errors: [`NetError::NoNic`] if the partition has none; [`NetError::Address`] if
    /// the MAC makes no host address ([`Addressing::FromMac`]).
    pub fn up(addressing: Addressing) -> Result<Net, NetError> {
        Net::up_with(addressing, Limits::default())
    }

    /// [`Net::up`] with other limits.
    pub fn up_with(addressing: Addressing, limits: Limits) -> Result<Net, NetError> {
        Ok(Net {
            id: NETS.fetch_add(1, Ordering::Relaxed),
            stack: Stack::up(addressing, limits)?,
        })
    }

    fn handle(&self, slot: usize) -> Handle {
        Handle { net: self.id, slot }
    }

    /// The slot of `handle`, if it is one of this `Net`'s.
    fn slot(&self, handle: &Handle) -> Result<usize, NetError> {
        if handle.net == self.id {
            Ok(handle.slot)
        } else {
            Err(NetError::BadHandle)
        }
    }

    /// The NIC's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.stack.mac()
    }

    /// The interface's address: `None` until DHCP has answered (and while a lease is
    /// lost); on the host backend `127.0.0.1/8`.
    pub fn address(&self) -> Option<Cidr> {
        self.stack.address()
    }

    /// The default route's gateway, if any.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.stack.gateway()
    }

    /// What went through the NIC so far.
    pub fn stats(&self) -> Stats {
        self.stack.stats()
    }

    /// Drives the stack: sends what the sockets queued, takes what arrived, runs timers,
    /// follows DHCP and sets up listeners' next connections. Then, unless something
    /// arrived or a call since the last poll made progress, sleeps until something
    /// arrives, a timer is due or `max_wait_ns` passed (0: never sleeps), and drives the
    /// stack again. (On the host backend the sleep is at most 1 ms: std cannot wait for
    /// several sockets at once.)
    pub fn poll(&mut self, max_wait_ns: u64) {
        self.stack.poll(max_wait_ns);
    }

    /// Listens for TCP connections on `port` (on any address of the interface).
    ///
    /// Errors: [`NetError::PortInUse`], [`NetError::InvalidPort`],
    /// [`NetError::NoSockets`], [`NetError::NoMemory`], [`NetError::Io`].
    pub fn tcp_listen(&mut self, port: u16) -> Result<Listener, NetError> {
        let slot = self.stack.tcp_listen(port)?;
        Ok(Listener(self.handle(slot)))
    }

    /// Stops listening; connections already accepted are not affected, those not yet
    /// accepted are reset.
    pub fn close_listener(&mut self, listener: Listener) {
        if let Ok(slot) = self.slot(&listener.0) {
            self.stack.close_listener(slot);
        }
    }

    /// The next established connection on `listener`, if one is waiting.
    pub fn accept(&mut self, listener: &Listener) -> Option<Stream> {
        let slot = self.stack.accept(self.slot(&listener.0).ok()?)?;
        Some(Stream(self.handle(slot)))
    }

    /// The other end of `stream`.
    pub fn peer(&self, stream: &Stream) -> Option<SocketAddrV4> {
        self.stack.peer(self.slot(&stream.0).ok()?)
    }

    /// Reads what has arrived on `stream` into `buf`: the byte count, `Ok(0)` once the
    /// peer has finished sending and everything was read (or if `buf` is empty).
    ///
    /// Errors: [`NetError::WouldBlock`] if nothing has arrived yet; [`NetError::Closed`]
    /// if the connection was reset or timed out.
    pub fn recv(&mut self, stream: &Stream, buf: &mut [u8]) -> Result<usize, NetError> {
        self.stack.recv(self.slot(&stream.0)?, buf)
    }

    /// Queues as much of `data` as fits for sending on `stream`; returns how much (at
    /// least one byte; 0 only for empty `data`).
    ///
    /// Errors: [`NetError::WouldBlock`] if nothing fits yet; [`NetError::Closed`] if the
    /// connection can no longer send.
    pub fn send(&mut self, stream: &Stream, data: &[u8]) -> Result<usize, NetError> {
        self.stack.send(self.slot(&stream.0)?, data)
    }

    /// Closes `stream`: what was queued is still sent, then the connection is ended
    /// (given up after 30 s if the peer does not take part). Never blocks.
    pub fn close(&mut self, stream: Stream) {
        if let Ok(slot) = self.slot(&stream.0) {
            self.stack.close(slot);
        }
    }

    /// A UDP socket on `port`.
    ///
    /// Errors: as [`Net::tcp_listen`].
    pub fn udp_bind(&mut self, port: u16) -> Result<Udp, NetError> {
        let slot = self.stack.udp_bind(port)?;
        Ok(Udp(self.handle(slot)))
    }

    /// Queues one datagram to `to`.
    ///
    /// Errors: [`NetError::WouldBlock`] (the send buffer is full), [`NetError::TooLong`],
    /// [`NetError::NoAddress`], [`NetError::InvalidPort`].
    pub fn send_to(&mut self, udp: &Udp, data: &[u8], to: SocketAddrV4) -> Result<(), NetError> {
        self.stack.send_to(self.slot(&udp.0)?, data, to)
    }

    /// The next datagram: its length (the part that fits in `buf`; the rest is lost) and
    /// its sender.
    ///
    /// Errors: [`NetError::WouldBlock`] if none has arrived.
    pub fn recv_from(
        &mut self,
        udp: &Udp,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddrV4), NetError> {
        self.stack.recv_from(self.slot(&udp.0)?, buf)
    }

    /// Closes a UDP socket.
    pub fn close_udp(&mut self, udp: Udp) {
        if let Ok(slot) = self.slot(&udp.0) {
            self.stack.close_udp(slot);
        }
    }
}

/// Puts `item` in the first free slot of `slots` (or a new one) and returns its index.
fn put<T>(slots: &mut alloc::vec::Vec<Option<T>>, item: T) -> usize {
    match slots.iter().position(Option::is_none) {
        Some(i) => {
            slots[i] = Some(item);
            i
        }
        None => {
            slots.push(Some(item));
            slots.len() - 1
        }
    }
}
