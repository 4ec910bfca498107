//! `hostshim::net` in a partition: smoltcp over NIC 0.
//!
//! Owns the interface and its socket set, the adapter from a [`Link`] to smoltcp's
//! `phy::Device` (holding the one frame the NIC's queue could not take yet), DHCP, and
//! the bookkeeping behind the handles: the sockets each listener keeps listening, the
//! connections being closed, the sockets kept for reuse. It must reach the NIC only
//! through its [`Link`] (in a partition [`crate::nic`]'s NIC 0; in this module's tests a
//! simulated wire, so the stack is tested on the host too) and must keep the host
//! backend's observable behaviour (see `host.rs`).
#![cfg_attr(
    feature = "host",
    allow(dead_code, reason = "on the host only the tests drive this backend")
)]

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{Ipv4Addr, SocketAddrV4};

use plinth_abi::{Error, MAX_FRAME, MAX_LARGE_FRAME};
use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::phy::{self, DeviceCapabilities, Medium, TxToken as _};
use smoltcp::socket::{dhcpv4, tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, HardwareAddress, IpAddress, IpCidr, IpEndpoint, Ipv4Cidr,
};

use super::{Addressing, Cidr, Limits, NetError, Stats, put};

/// What the stack needs of a NIC, and the clock: [`crate::nic`]'s calls for one NIC.
pub trait Link {
    /// The NIC's MAC address.
    fn mac(&self) -> Result<[u8; 6], Error>;
    /// [`crate::nic::send`].
    fn send(&mut self, frame: &[u8]) -> Result<(), Error>;
    /// [`crate::nic::recv`].
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error>;
    /// [`crate::nic::recv_checked`]: with whether the frame's checksum is not to be
    /// checked (only ever with [`Link::offload`] on).
    fn recv_checked(&mut self, buf: &mut [u8]) -> Result<(usize, bool), Error> {
        self.recv(buf).map(|n| (n, false))
    }
    /// [`crate::nic::offload`], asked for once: whether frames up to
    /// [`MAX_LARGE_FRAME`] and checksum words come (receive), and whether
    /// [`Link::send_offloaded`] may be used (transmit).
    fn offload(&mut self) -> (bool, bool) {
        (false, false)
    }
    /// [`crate::nic::send_offloaded`]: the checksum left to fill; with `mss` a TCP
    /// super-frame to cut.
    fn send_offloaded(&mut self, frame: &[u8], _mss: Option<u16>) -> Result<(), Error> {
        self.send(frame)
    }
    /// Sleeps until a frame arrives, or (if `tx`) there is room to send, or `timeout_ns`
    /// passed.
    fn wait(&mut self, tx: bool, timeout_ns: u64);
    /// Monotonic nanoseconds.
    fn now_ns(&self) -> u64;
}

/// NIC 0 of the partition.
#[cfg(not(feature = "host"))]
pub struct Nic0;

#[cfg(not(feature = "host"))]
impl Link for Nic0 {
    fn mac(&self) -> Result<[u8; 6], Error> {
        crate::nic::mac(0)
    }

    fn send(&mut self, frame: &[u8]) -> Result<(), Error> {
        crate::nic::send(0, frame)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        crate::nic::recv(0, buf)
    }

    fn recv_checked(&mut self, buf: &mut [u8]) -> Result<(usize, bool), Error> {
        crate::nic::recv_checked(0, buf)
    }

    fn offload(&mut self) -> (bool, bool) {
        crate::nic::offload(0, true, true).unwrap_or((false, false))
    }

    fn send_offloaded(&mut self, frame: &[u8], mss: Option<u16>) -> Result<(), Error> {
        crate::nic::send_offloaded(0, frame, mss)
    }

    fn wait(&mut self, tx: bool, timeout_ns: u64) {
        // An error (there is a NIC: `up` checked) would only end the wait early.
        let _ = crate::nic::wait(1, u8::from(tx), timeout_ns);
    }

    fn now_ns(&self) -> u64 {
        crate::clock_ns()
    }
}

/// The target backend: the stack on NIC 0.
#[cfg(not(feature = "host"))]
pub type Stack = Engine<Nic0>;

#[cfg(not(feature = "host"))]
impl Stack {
    pub fn up(addressing: Addressing, limits: Limits) -> Result<Stack, NetError> {
        Engine::new(Nic0, addressing, limits)
    }
}

/// The longest frame either way.
const FRAME: usize = MAX_FRAME as usize;
/// Sockets each listener keeps listening (while the limit allows), so a connection
/// request finds one even while the agent has yet to accept the previous connection.
/// Listeners are re-armed after every received frame, so a burst of requests is served
/// by as many sockets as the pool has.
const BACKLOG: usize = 2;
/// A connection whose sent data goes unacknowledged this long is given up.
const TCP_TIMEOUT: Duration = Duration::from_secs(30);
/// An idle connection is probed this often, so a peer that vanished is noticed (after
/// [`TCP_TIMEOUT`] more) and its socket freed.
const KEEP_ALIVE: Duration = Duration::from_secs(60);
/// A closed connection whose peer has not finished after this long is reset.
const LINGER_NS: u64 = 30_000_000_000;
/// Datagrams each UDP buffer holds.
const UDP_PACKETS: usize = 16;

/// `ns` as smoltcp counts time.
fn instant(ns: u64) -> Instant {
    // Nanoseconds since boot fit `i64` microseconds for 290,000 years.
    Instant::from_micros((ns / 1_000) as i64)
}

/// smoltcp and the handles' bookkeeping over a [`Link`].
pub struct Engine<L: Link> {
    port: Port<L>,
    iface: Interface,
    sockets: SocketSet<'static>,
    mac: [u8; 6],
    limits: Limits,
    dhcp: Option<SocketHandle>,
    gateway: Option<Ipv4Addr>,
    tcp: Pool,
    listeners: Vec<Option<Listening>>,
    streams: Vec<Option<SocketHandle>>,
    /// Streams the agent closed, with when: kept until the connection ends.
    closing: Vec<(SocketHandle, u64)>,
    udps: Vec<Option<SocketHandle>>,
    /// A call made progress since the last poll: do not sleep.
    busy: bool,
}

/// A listener: its port and its sockets, listening or connected but not yet accepted.
struct Listening {
    port: u16,
    sockets: Vec<SocketHandle>,
}

/// TCP sockets: how many exist (each with its buffers), and those free for reuse.
struct Pool {
    created: usize,
    spare: Vec<SocketHandle>,
}

impl Pool {
    /// A TCP socket not in use: a spare one, or a new one if the limit allows.
    fn take(
        &mut self,
        sockets: &mut SocketSet<'static>,
        limits: &Limits,
    ) -> Result<SocketHandle, NetError> {
        if let Some(h) = self.spare.pop() {
            return Ok(h);
        }
        if self.created >= limits.tcp_sockets {
            return Err(NetError::NoSockets);
        }
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(buffer(limits.tcp_buffer)?),
            tcp::SocketBuffer::new(buffer(limits.tcp_buffer)?),
        );
        socket.set_timeout(Some(TCP_TIMEOUT));
        socket.set_keep_alive(Some(KEEP_ALIVE));
        // Replies go out when written, not held for the previous segment's ACK: agents
        // write whole messages (the host backend sets TCP_NODELAY to match).
        socket.set_nagle_enabled(false);
        self.created += 1;
        Ok(sockets.add(socket))
    }
}

/// `len` zeroed bytes, or [`NetError::NoMemory`] (never an allocation panic: socket
/// buffers are the agent's largest allocations, and the quota may not hold them).
fn buffer(len: usize) -> Result<Vec<u8>, NetError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| NetError::NoMemory)?;
    v.resize(len, 0);
    Ok(v)
}

impl<L: Link> Engine<L> {
    pub fn new(link: L, addressing: Addressing, limits: Limits) -> Result<Engine<L>, NetError> {
        let mac = link.mac().map_err(|e| match e {
            Error::NoNic => NetError::NoNic,
            e => NetError::Runtime(e),
        })?;
        let fixed = addressing.resolve(mac).map_err(NetError::Address)?;
        let mut port = Port::new(link);
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed(mac, port.link.now_ns());
        let now = instant(port.link.now_ns());
        let mut iface = Interface::new(config, &mut port, now);
        let mut sockets = SocketSet::new(Vec::new());
        let (dhcp, gateway) = match fixed {
            Some((cidr, gateway)) => {
                iface.update_ip_addrs(|a| {
                    // One address in a fresh interface: always room.
                    let _ = a.push(IpCidr::Ipv4(Ipv4Cidr::new(cidr.address(), cidr.prefix())));
                });
                if let Some(g) = gateway {
                    // A fresh route table has room for the default route.
                    let _ = iface.routes_mut().add_default_ipv4_route(g);
                }
                announce(&mut port, mac, cidr.address());
                (None, gateway)
            }
            None => (Some(sockets.add(dhcpv4::Socket::new())), None),
        };
        Ok(Engine {
            port,
            iface,
            sockets,
            mac,
            limits,
            dhcp,
            gateway,
            tcp: Pool {
                created: 0,
                spare: Vec::new(),
            },
            listeners: Vec::new(),
            streams: Vec::new(),
            closing: Vec::new(),
            udps: Vec::new(),
            busy: false,
        })
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn address(&self) -> Option<Cidr> {
        let Some(IpCidr::Ipv4(c)) = self.iface.ip_addrs().first() else {
            return None;
        };
        Cidr::new(c.address(), c.prefix_len())
    }

    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway
    }

    pub fn stats(&self) -> Stats {
        let tx = &self.port.tx;
        Stats {
            rx_frames: self.port.rx_frames,
            rx_bytes: self.port.rx_bytes,
            tx_frames: tx.frames,
            tx_bytes: tx.bytes,
            tx_dropped: tx.dropped,
            tx_full: tx.full,
            rx_offload: self.port.offload,
            rx_large: self.port.rx_large,
            rx_bad_checksum: self.port.rx_bad_checksum,
        }
    }

    fn now(&self) -> Instant {
        instant(self.port.link.now_ns())
    }

    pub fn poll(&mut self, max_wait_ns: u64) {
        // Frames that just arrived may be news for the agent: no sleep before it looks.
        let arrived = self.drive();
        if core::mem::take(&mut self.busy) || arrived {
            return;
        }
        let now = self.now();
        let due = self
            .iface
            .poll_delay(now, &self.sockets)
            .map_or(u64::MAX, |d| d.total_micros().saturating_mul(1_000));
        let wait = due.min(max_wait_ns);
        if wait > 0 {
            // Wake for room to send too while a frame waits for it.
            let tx = self.port.tx.stashed > 0;
            self.port.link.wait(tx, wait);
            self.drive();
        }
    }

    /// One round of smoltcp, then what follows from it: DHCP, closed connections,
    /// listeners' next sockets. Returns whether any frame arrived.
    fn drive(&mut self) -> bool {
        let now = self.now();
        self.iface.poll_maintenance(now);
        // One frame at a time, arming listeners in between: a burst of connection
        // requests then finds a listening socket for each (while the pool lasts), where
        // smoltcp would reset all but the first few.
        let mut arrived = false;
        while !matches!(
            self.iface
                .poll_ingress_single(now, &mut self.port, &mut self.sockets),
            PollIngressSingleResult::None
        ) {
            arrived = true;
            self.arm_all();
        }
        while self
            .iface
            .poll_egress(now, &mut self.port, &mut self.sockets)
            != PollResult::None
        {}
        self.follow_dhcp();
        self.reap();
        self.arm_all();
        arrived
    }

    fn arm_all(&mut self) {
        for l in 0..self.listeners.len() {
            self.arm(l);
        }
    }

    fn follow_dhcp(&mut self) {
        let Some(handle) = self.dhcp else {
            return;
        };
        match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
            None => {}
            Some(dhcpv4::Event::Configured(config)) => {
                self.iface.update_ip_addrs(|a| {
                    a.clear();
                    // Cleared just now: room for one.
                    let _ = a.push(IpCidr::Ipv4(config.address));
                });
                self.gateway = config.router;
                match config.router {
                    Some(router) => {
                        // Replaces the previous default route; the table has room.
                        let _ = self.iface.routes_mut().add_default_ipv4_route(router);
                    }
                    None => {
                        self.iface.routes_mut().remove_default_ipv4_route();
                    }
                }
            }
            Some(dhcpv4::Event::Deconfigured) => {
                self.iface.update_ip_addrs(|a| a.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                self.gateway = None;
            }
        }
    }

    /// Returns closed streams' sockets to the pool once their connections have ended, or
    /// resets those whose peers take too long.
    fn reap(&mut self) {
        let t = self.port.link.now_ns();
        let sockets = &mut self.sockets;
        let spare = &mut self.tcp.spare;
        self.closing.retain(|&(h, since)| {
            let socket = sockets.get_mut::<tcp::Socket>(h);
            // Whatever still arrives is read and dropped (twice: the ring may wrap), so
            // a peer that sends before it finishes is not stalled by a full window.
            for _ in 0..2 {
                let _ = socket.recv(|data| (data.len(), ()));
            }
            // TIME-WAIT only guards against the peer's late segments; the socket is
            // reused at once (listening resets it) rather than held for its 10 s.
            let ended = matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait);
            let late = t.saturating_sub(since) > LINGER_NS;
            if late && !ended {
                socket.abort();
            }
            if ended || late {
                spare.push(h);
            }
            !(ended || late)
        });
    }

    /// Keeps listener `l`'s sockets listening: re-arms those whose handshake failed and
    /// adds sockets up to [`BACKLOG`] listening ones while the pool allows.
    fn arm(&mut self, l: usize) {
        let Some(Some(listening)) = self.listeners.get_mut(l) else {
            return;
        };
        let mut ready = 0;
        for &h in &listening.sockets {
            let socket = self.sockets.get_mut::<tcp::Socket>(h);
            if socket.state() == tcp::State::Closed {
                // Cannot fail: the port is not 0 and the socket is closed.
                let _ = socket.listen(listening.port);
            }
            ready += usize::from(socket.state() == tcp::State::Listen);
        }
        for _ in ready..BACKLOG {
            let Ok(h) = self.tcp.take(&mut self.sockets, &self.limits) else {
                break;
            };
            let _ = self
                .sockets
                .get_mut::<tcp::Socket>(h)
                .listen(listening.port);
            listening.sockets.push(h);
        }
    }

    pub fn tcp_listen(&mut self, port: u16) -> Result<usize, NetError> {
        if port == 0 {
            return Err(NetError::InvalidPort);
        }
        if self.listeners.iter().flatten().any(|l| l.port == port) {
            return Err(NetError::PortInUse);
        }
        // At least one socket, or the listener would refuse everything.
        let first = self.tcp.take(&mut self.sockets, &self.limits)?;
        let _ = self.sockets.get_mut::<tcp::Socket>(first).listen(port);
        let l = put(
            &mut self.listeners,
            Listening {
                port,
                sockets: vec![first],
            },
        );
        self.arm(l);
        Ok(l)
    }

    pub fn close_listener(&mut self, listener: usize) {
        let Some(listening) = self.listeners.get_mut(listener).and_then(Option::take) else {
            return;
        };
        for h in listening.sockets {
            // Listening sockets just close; connections not yet accepted are reset.
            self.sockets.get_mut::<tcp::Socket>(h).abort();
            self.tcp.spare.push(h);
        }
    }

    pub fn accept(&mut self, listener: usize) -> Option<usize> {
        let listening = self.listeners.get_mut(listener)?.as_mut()?;
        let sockets = &self.sockets;
        let at = listening.sockets.iter().position(|h| {
            matches!(
                sockets.get::<tcp::Socket>(*h).state(),
                tcp::State::Established | tcp::State::CloseWait
            )
        })?;
        let h = listening.sockets.swap_remove(at);
        self.busy = true;
        self.arm(listener);
        Some(put(&mut self.streams, h))
    }

    fn stream(&mut self, stream: usize) -> Result<&mut tcp::Socket<'static>, NetError> {
        let h = self
            .streams
            .get(stream)
            .copied()
            .flatten()
            .ok_or(NetError::BadHandle)?;
        Ok(self.sockets.get_mut::<tcp::Socket>(h))
    }

    pub fn peer(&self, stream: usize) -> Option<SocketAddrV4> {
        let h = self.streams.get(stream).copied().flatten()?;
        // Only IPv4 is ever configured (smoltcp is built with IPv6 for its offload).
        let IpEndpoint {
            addr: IpAddress::Ipv4(ip),
            port,
        } = self.sockets.get::<tcp::Socket>(h).remote_endpoint()?
        else {
            return None;
        };
        Some(SocketAddrV4::new(ip, port))
    }

    pub fn recv(&mut self, stream: usize, buf: &mut [u8]) -> Result<usize, NetError> {
        let socket = self.stream(stream)?;
        if buf.is_empty() {
            return Ok(0);
        }
        match socket.recv_slice(buf) {
            Ok(0) => Err(NetError::WouldBlock),
            Ok(n) => {
                self.busy = true;
                Ok(n)
            }
            // The peer's FIN, and everything before it read.
            Err(tcp::RecvError::Finished) => Ok(0),
            Err(tcp::RecvError::InvalidState) => Err(NetError::Closed),
        }
    }

    pub fn send(&mut self, stream: usize, data: &[u8]) -> Result<usize, NetError> {
        let socket = self.stream(stream)?;
        if data.is_empty() {
            return Ok(0);
        }
        match socket.send_slice(data) {
            Ok(0) => Err(NetError::WouldBlock),
            Ok(n) => {
                self.busy = true;
                Ok(n)
            }
            Err(tcp::SendError::InvalidState) => Err(NetError::Closed),
        }
    }

    pub fn close(&mut self, stream: usize) {
        let Some(h) = self.streams.get_mut(stream).and_then(Option::take) else {
            return;
        };
        // Sends what is queued, then FIN; `reap` takes the socket back when it ends.
        self.sockets.get_mut::<tcp::Socket>(h).close();
        self.closing.push((h, self.port.link.now_ns()));
    }

    pub fn udp_bind(&mut self, port: u16) -> Result<usize, NetError> {
        if port == 0 {
            return Err(NetError::InvalidPort);
        }
        let sockets = &self.sockets;
        if self
            .udps
            .iter()
            .flatten()
            .any(|h| sockets.get::<udp::Socket>(*h).endpoint().port == port)
        {
            return Err(NetError::PortInUse);
        }
        if self.udps.iter().flatten().count() >= self.limits.udp_sockets {
            return Err(NetError::NoSockets);
        }
        let mut socket = udp::Socket::new(
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                buffer(self.limits.udp_buffer)?,
            ),
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_PACKETS],
                buffer(self.limits.udp_buffer)?,
            ),
        );
        socket.bind(port).map_err(|_| NetError::InvalidPort)?;
        let h = self.sockets.add(socket);
        Ok(put(&mut self.udps, h))
    }

    fn udp(&mut self, udp: usize) -> Result<&mut udp::Socket<'static>, NetError> {
        let h = self
            .udps
            .get(udp)
            .copied()
            .flatten()
            .ok_or(NetError::BadHandle)?;
        Ok(self.sockets.get_mut::<udp::Socket>(h))
    }

    pub fn send_to(&mut self, udp: usize, data: &[u8], to: SocketAddrV4) -> Result<(), NetError> {
        let has_address = self.address().is_some();
        let limit = self.limits.udp_buffer;
        let socket = self.udp(udp)?;
        if to.port() == 0 || to.ip().is_unspecified() || to.ip().is_broadcast() {
            return Err(NetError::InvalidPort);
        }
        if data.len() > limit {
            return Err(NetError::TooLong);
        }
        if !has_address {
            return Err(NetError::NoAddress);
        }
        let endpoint = IpEndpoint::new(IpAddress::Ipv4(*to.ip()), to.port());
        match socket.send_slice(data, endpoint) {
            Ok(()) => {
                self.busy = true;
                Ok(())
            }
            Err(udp::SendError::BufferFull) => Err(NetError::WouldBlock),
            Err(udp::SendError::Unaddressable) => Err(NetError::InvalidPort),
        }
    }

    pub fn recv_from(
        &mut self,
        udp: usize,
        buf: &mut [u8],
    ) -> Result<(usize, SocketAddrV4), NetError> {
        let socket = self.udp(udp)?;
        let (data, meta) = socket.recv().map_err(|_| NetError::WouldBlock)?;
        // As std does: what does not fit is lost.
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        let IpEndpoint {
            addr: IpAddress::Ipv4(ip),
            port,
        } = meta.endpoint
        else {
            // Only IPv4 is ever configured: nothing else reaches a socket.
            return Err(NetError::WouldBlock);
        };
        self.busy = true;
        Ok((n, SocketAddrV4::new(ip, port)))
    }

    pub fn close_udp(&mut self, udp: usize) {
        if let Some(h) = self.udps.get_mut(udp).and_then(Option::take) {
            self.sockets.remove(h);
        }
    }
}

/// smoltcp's random seed (TCP initial sequence numbers, ports, DHCP transaction IDs):
/// the time-stamp counter and the clock, distinct per start, mixed with the MAC, distinct
/// per partition, through SplitMix64's finaliser so nearby inputs give unrelated seeds.
fn seed(mac: [u8; 6], now_ns: u64) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(&mac);
    let mut z = crate::ticks() ^ now_ns.rotate_left(32) ^ u64::from_le_bytes(b);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Broadcasts an ARP announcement (RFC 5227) for a static address, so neighbours (QEMU's
/// user network among them, which learns guests' MACs only from ARP and DHCP) can reach
/// the agent before it has sent anything.
fn announce<L: Link>(port: &mut Port<L>, mac: [u8; 6], ip: Ipv4Addr) {
    let mac = EthernetAddress(mac);
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: ip,
    };
    let eth = EthernetRepr {
        src_addr: mac,
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Arp,
    };
    let len = eth.buffer_len() + arp.buffer_len();
    port.tx().consume(len, |buf| {
        let mut frame = EthernetFrame::new_unchecked(buf);
        eth.emit(&mut frame);
        arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    });
}

/// smoltcp's view of the link.
struct Port<L: Link> {
    link: L,
    /// The frame being received: room for a super-frame with receive offload.
    rx: Box<[u8]>,
    /// Receive offload is on: super-frames come, and frames whose checksum the NIC
    /// vouched for say so; the stack checks the others' itself (smoltcp's own checks
    /// are off, as they would fail a partial checksum).
    offload: bool,
    rx_frames: u64,
    rx_bytes: u64,
    /// Frames longer than a plain frame.
    rx_large: u64,
    /// Frames dropped for a wrong TCP/UDP/ICMP checksum (with offload).
    rx_bad_checksum: u64,
    tx: TxSide,
}

/// The sending half, apart so a receive token and a send token can coexist.
struct TxSide {
    /// Transmit offload is on: smoltcp leaves TCP/UDP checksums to the runtime and may
    /// build TCP super-frames (up to [`MAX_LARGE_FRAME`]) for it to cut.
    offload: bool,
    /// The segment size smoltcp asked the frame being built to be cut at.
    mss: Option<u16>,
    /// Where the stack writes a frame.
    scratch: Box<[u8]>,
    /// A frame the NIC's full queue refused, sent before anything else; `stashed` bytes,
    /// cut at `stash_mss`.
    stash: Box<[u8]>,
    stashed: usize,
    stash_mss: Option<u16>,
    /// `Stats`' tx fields.
    frames: u64,
    bytes: u64,
    dropped: u64,
    full: u64,
}

impl<L: Link> Port<L> {
    fn new(mut link: L) -> Port<L> {
        let (offload, tx_offload) = link.offload();
        let large = |on| vec![0u8; if on { MAX_LARGE_FRAME as usize } else { FRAME }];
        Port {
            link,
            rx: large(offload).into_boxed_slice(),
            offload,
            rx_frames: 0,
            rx_bytes: 0,
            rx_large: 0,
            rx_bad_checksum: 0,
            tx: TxSide {
                offload: tx_offload,
                mss: None,
                scratch: large(tx_offload).into_boxed_slice(),
                stash: large(tx_offload).into_boxed_slice(),
                stashed: 0,
                stash_mss: None,
                frames: 0,
                bytes: 0,
                dropped: 0,
                full: 0,
            },
        }
    }

    fn tx(&mut self) -> Tx<'_, L> {
        Tx {
            link: &mut self.link,
            side: &mut self.tx,
        }
    }
}

impl TxSide {
    /// Sends the stashed frame, if any; whether the way is clear now.
    fn flush(&mut self, link: &mut impl Link) -> bool {
        if self.stashed == 0 {
            return true;
        }
        let stashed = &self.stash[..self.stashed];
        let result = if self.offload {
            link.send_offloaded(stashed, self.stash_mss)
        } else {
            link.send(stashed)
        };
        match result {
            Ok(()) => self.sent(self.stashed),
            Err(Error::WouldBlock) => return false,
            // Refused for good (it cannot become sendable): drop it.
            Err(_) => self.dropped += 1,
        }
        self.stashed = 0;
        true
    }

    /// Sends the frame in `scratch[..len]`: now, or stashed until the queue has room, or
    /// (if a frame is stashed already) dropped; TCP sends it again, nothing else needs it.
    fn send(&mut self, link: &mut impl Link, len: usize) {
        let mss = self.mss.take();
        if !self.flush(link) {
            self.dropped += 1;
            return;
        }
        let result = if self.offload {
            link.send_offloaded(&self.scratch[..len], mss)
        } else {
            link.send(&self.scratch[..len])
        };
        match result {
            Ok(()) => self.sent(len),
            Err(Error::WouldBlock) => {
                core::mem::swap(&mut self.scratch, &mut self.stash);
                self.stashed = len;
                self.stash_mss = mss;
                self.full += 1;
            }
            Err(_) => self.dropped += 1,
        }
    }

    fn sent(&mut self, len: usize) {
        self.frames += 1;
        self.bytes += len as u64;
    }
}

struct Rx<'a>(&'a [u8]);

struct Tx<'a, L: Link> {
    link: &'a mut L,
    side: &'a mut TxSide,
}

impl phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl<L: Link> phy::TxToken for Tx<'_, L> {
    fn set_meta(&mut self, meta: phy::PacketMeta) {
        self.side.mss = meta.segmentation_offload_size.map(|n| n.get());
    }

    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // Past a plain frame only a super-frame smoltcp asked to have cut.
        let room = if self.side.offload && self.side.mss.is_some() {
            MAX_LARGE_FRAME as usize
        } else {
            FRAME
        };
        if len > room {
            self.side.mss = None;
            // Beyond the MTU smoltcp keeps to: let it write, but the NIC would refuse it.
            let r = f(&mut vec![0u8; len]);
            self.side.dropped += 1;
            return r;
        }
        let r = f(&mut self.side.scratch[..len]);
        self.side.send(self.link, len);
        r
    }
}

impl<L: Link> phy::Device for Port<L> {
    type RxToken<'a>
        = Rx<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a, L>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Rx<'_>, Tx<'_, L>)> {
        // WouldBlock: nothing waiting. Anything else (a frame longer than the buffer, which
        // the runtime never delivers) cannot be taken either.
        let n = loop {
            let (n, vouched) = self.link.recv_checked(&mut self.rx).ok()?;
            if !self.offload || vouched || plinth_offload::receive::checksum_ok(&self.rx[..n]) {
                break n;
            }
            self.rx_bad_checksum += 1;
        };
        self.rx_frames += 1;
        self.rx_large += u64::from(n > FRAME);
        self.rx_bytes += n as u64;
        let tx = Tx {
            link: &mut self.link,
            side: &mut self.tx,
        };
        Some((Rx(&self.rx[..n]), tx))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_, L>> {
        self.tx.flush(&mut self.link).then_some(self.tx())
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME;
        // smoltcp computes every checksum it sends, unless transmit offload is on: then
        // the runtime fills TCP's and UDP's, and its NIC cuts the TCP super-frames
        // smoltcp builds. It checks those it receives unless receive offload is on: then
        // `receive` has checked what the NIC did not vouch for (the IPv4 header's smoltcp
        // still checks).
        let (rx, tx) = (self.offload, self.tx.offload);
        let l4 = match (rx, tx) {
            (false, false) => phy::Checksum::Both,
            (true, false) => phy::Checksum::Tx,
            (false, true) => phy::Checksum::Rx,
            (true, true) => phy::Checksum::None,
        };
        caps.checksum.tcp = l4;
        caps.checksum.udp = l4;
        if rx {
            caps.checksum.icmpv4 = phy::Checksum::Tx;
        }
        if tx {
            // The runtime's own coalescer's limit: short of 64 KiB with a tag pushed.
            caps.segmentation.tcpv4 = core::num::NonZeroUsize::new(plinth_offload::MAX_SUPER);
        }
        caps
    }
}

/// The engine against a plain smoltcp peer over a simulated wire, on simulated time: what
/// a partition's agent does, minus the runtime.
#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::rc::Rc;

    use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
    use smoltcp::phy::{self, DeviceCapabilities, Medium};
    use smoltcp::socket::{tcp, udp};
    use smoltcp::time::Instant;
    use smoltcp::wire::{
        EthernetAddress, EthernetFrame, EthernetProtocol, HardwareAddress, IpCidr, Ipv4Cidr,
    };

    use super::*;
    use crate::net::Cidr;

    const ENGINE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    const ENGINE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    /// Frames in flight each way, and the time both ends read.
    #[derive(Default)]
    struct Wire {
        to_engine: VecDeque<Vec<u8>>,
        to_peer: VecDeque<Vec<u8>>,
        /// Frames the engine's side may have in flight before sending would block.
        engine_queue: usize,
        clock_ns: Cell<u64>,
        /// The engine's NIC has receive offload: consecutive TCP segments to the engine
        /// arrive as one super-frame with a partial checksum, as a host hands them over.
        offload: bool,
        /// Super-frames handed over.
        supers: usize,
        /// The engine's NIC has transmit offload: it fills checksums and cuts the
        /// engine's super-frames; and how many it cut.
        tx_offload: bool,
        tx_supers: usize,
    }

    type Shared = Rc<RefCell<Wire>>;

    /// The engine's end: [`crate::nic`]'s rules.
    struct SimLink(Shared);

    impl Link for SimLink {
        fn mac(&self) -> Result<[u8; 6], Error> {
            Ok(ENGINE_MAC)
        }

        fn send(&mut self, frame: &[u8]) -> Result<(), Error> {
            let mut w = self.0.borrow_mut();
            if !(14..=FRAME).contains(&frame.len()) {
                return Err(Error::BadLength);
            }
            if w.to_peer.len() >= w.engine_queue {
                return Err(Error::WouldBlock);
            }
            w.to_peer.push_back(frame.to_vec());
            Ok(())
        }

        fn recv(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
            let mut w = self.0.borrow_mut();
            let frame = w.to_engine.front().ok_or(Error::WouldBlock)?;
            if frame.len() > buf.len() {
                return Err(Error::BadLength);
            }
            let n = frame.len();
            buf[..n].copy_from_slice(frame);
            w.to_engine.pop_front();
            Ok(n)
        }

        fn offload(&mut self) -> (bool, bool) {
            let w = self.0.borrow();
            (w.offload, w.tx_offload)
        }

        /// What the runtime's NIC does with a frame whose checksum was left to fill:
        /// fills it, and cuts a super-frame into segments.
        fn send_offloaded(&mut self, frame: &[u8], mss: Option<u16>) -> Result<(), Error> {
            let mut w = self.0.borrow_mut();
            if !w.tx_offload {
                return Err(Error::Invalid);
            }
            if w.to_peer.len() >= w.engine_queue {
                return Err(Error::WouldBlock);
            }
            match mss {
                Some(mss) if frame.len() > FRAME => {
                    let mut out = vec![0u8; FRAME];
                    let mut pieces = Vec::new();
                    plinth_offload::receive::segment(frame, usize::from(mss), &mut out, |s| {
                        pieces.push(s.to_vec())
                    })
                    .map_err(|_| Error::BadLength)?;
                    w.tx_supers += 1;
                    w.to_peer.extend(pieces);
                }
                _ => {
                    if frame.len() > FRAME {
                        return Err(Error::BadLength);
                    }
                    let mut f = frame.to_vec();
                    plinth_offload::receive::fill_checksum(&mut f);
                    w.to_peer.push_back(f);
                }
            }
            Ok(())
        }

        fn recv_checked(&mut self, buf: &mut [u8]) -> Result<(usize, bool), Error> {
            if !self.0.borrow().offload {
                return self.recv(buf).map(|n| (n, false));
            }
            let mut w = self.0.borrow_mut();
            let first = w.to_engine.pop_front().ok_or(Error::WouldBlock)?;
            let mut c = plinth_offload::Coalescer::new();
            let mut sup = vec![0u8; 65_536];
            sup[..first.len()].copy_from_slice(&first);
            let (frame, vouched) = if c.start(&sup, first.len(), None) {
                while let Some(next) = w.to_engine.front() {
                    if !c.append(&mut sup, next, None) {
                        break;
                    }
                    w.to_engine.pop_front();
                }
                match c.finish(&mut sup) {
                    Some(done) if done.gso.is_some() => {
                        w.supers += 1;
                        (&sup[..done.len], true)
                    }
                    _ => (&first[..], false),
                }
            } else {
                (&first[..], false)
            };
            if frame.len() > buf.len() {
                return Err(Error::BadLength);
            }
            buf[..frame.len()].copy_from_slice(frame);
            Ok((frame.len(), vouched))
        }

        fn wait(&mut self, _tx: bool, timeout_ns: u64) {
            // Nothing arrives while the engine sleeps (the test runs the peer between
            // polls): time just passes, at most 10 ms a sleep.
            let w = self.0.borrow();
            w.clock_ns
                .set(w.clock_ns.get() + timeout_ns.min(10_000_000));
        }

        fn now_ns(&self) -> u64 {
            self.0.borrow().clock_ns.get()
        }
    }

    /// The other end: a plain smoltcp host, and the test's hands.
    struct Peer {
        dev: PeerDev,
        iface: Interface,
        sockets: SocketSet<'static>,
    }

    struct PeerDev(Shared);

    struct PeerRx(Vec<u8>);
    struct PeerTx(Shared);

    impl phy::RxToken for PeerRx {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            f(&self.0)
        }
    }

    impl phy::TxToken for PeerTx {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut frame = vec![0; len];
            let r = f(&mut frame);
            self.0.borrow_mut().to_engine.push_back(frame);
            r
        }
    }

    impl phy::Device for PeerDev {
        type RxToken<'a> = PeerRx;
        type TxToken<'a> = PeerTx;

        fn receive(&mut self, _: Instant) -> Option<(PeerRx, PeerTx)> {
            let frame = self.0.borrow_mut().to_peer.pop_front()?;
            Some((PeerRx(frame), PeerTx(self.0.clone())))
        }

        fn transmit(&mut self, _: Instant) -> Option<PeerTx> {
            Some(PeerTx(self.0.clone()))
        }

        fn capabilities(&self) -> DeviceCapabilities {
            let mut caps = DeviceCapabilities::default();
            caps.medium = Medium::Ethernet;
            caps.max_transmission_unit = FRAME;
            caps
        }
    }

    impl Peer {
        fn new(wire: &Shared) -> Peer {
            let mut dev = PeerDev(wire.clone());
            let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(PEER_MAC)));
            let now = instant(wire.borrow().clock_ns.get());
            let mut iface = Interface::new(config, &mut dev, now);
            iface.update_ip_addrs(|a| {
                a.push(IpCidr::Ipv4(Ipv4Cidr::new(PEER_IP, 24))).unwrap();
            });
            Peer {
                dev,
                iface,
                sockets: SocketSet::new(Vec::new()),
            }
        }

        fn poll(&mut self) {
            let now = instant(self.dev.0.borrow().clock_ns.get());
            self.iface.poll(now, &mut self.dev, &mut self.sockets);
        }

        fn connect(&mut self, port: u16, local: u16) -> SocketHandle {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            );
            s.connect(self.iface.context(), (ENGINE_IP, port), local)
                .unwrap();
            self.sockets.add(s)
        }

        fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
            self.sockets.get_mut::<tcp::Socket>(h)
        }
    }

    /// An engine at 10.0.0.1/24 and a peer at .2, wired together; the engine's side of
    /// the wire holds `queue` frames.
    fn pair(limits: Limits, queue: usize) -> (Engine<SimLink>, Peer, Shared) {
        pair_on(
            limits,
            Wire {
                engine_queue: queue,
                ..Wire::default()
            },
        )
    }

    /// As [`pair`], over `wire` as given (its offloads, its queue).
    fn pair_on(limits: Limits, wire: Wire) -> (Engine<SimLink>, Peer, Shared) {
        let wire = Rc::new(RefCell::new(wire));
        let addressing = Addressing::Static {
            cidr: Cidr::new(ENGINE_IP, 24).unwrap(),
            gateway: None,
        };
        let engine = Engine::new(SimLink(wire.clone()), addressing, limits).unwrap();
        let peer = Peer::new(&wire);
        (engine, peer, wire)
    }

    /// Runs both ends until `done` says so; panics after 10,000 rounds (100 s of
    /// simulated time at most).
    fn run<T>(
        engine: &mut Engine<SimLink>,
        peer: &mut Peer,
        mut done: impl FnMut(&mut Engine<SimLink>, &mut Peer) -> Option<T>,
    ) -> T {
        for _ in 0..10_000 {
            if let Some(t) = done(engine, peer) {
                return t;
            }
            engine.poll(1_000_000);
            peer.poll();
        }
        panic!("never done");
    }

    #[test]
    fn a_static_address_is_announced_and_reported() {
        let (engine, _peer, wire) = pair(Limits::default(), 64);
        assert_eq!(engine.address(), Cidr::new(ENGINE_IP, 24));
        assert_eq!(engine.mac(), ENGINE_MAC);
        let w = wire.borrow();
        let frame = EthernetFrame::new_checked(&w.to_peer[0][..]).unwrap();
        assert_eq!(frame.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(frame.ethertype(), EthernetProtocol::Arp);
        assert_eq!(engine.stats().tx_frames, 1);
    }

    #[test]
    fn accepts_echoes_and_closes_both_ways() {
        let (mut engine, mut peer, _wire) = pair(Limits::default(), 64);
        let listener = engine.tcp_listen(7).unwrap();
        assert_eq!(engine.tcp_listen(7), Err(NetError::PortInUse));
        assert_eq!(engine.tcp_listen(0), Err(NetError::InvalidPort));
        assert_eq!(engine.accept(listener), None);

        let c = peer.connect(7, 40000);
        let s = run(&mut engine, &mut peer, |e, _| e.accept(listener));
        assert_eq!(engine.peer(s), Some(SocketAddrV4::new(PEER_IP, 40000)));
        let mut buf = [0u8; 64];
        assert_eq!(engine.recv(s, &mut buf), Err(NetError::WouldBlock));

        peer.tcp(c).send_slice(b"hello, engine").unwrap();
        let n = run(&mut engine, &mut peer, |e, _| e.recv(s, &mut buf).ok());
        assert_eq!(&buf[..n], b"hello, engine");
        assert_eq!(engine.send(s, &buf[..n]), Ok(n));
        let mut back = [0u8; 64];
        let m = run(&mut engine, &mut peer, |_, p| {
            p.tcp(c).recv_slice(&mut back).ok().filter(|m| *m > 0)
        });
        assert_eq!(&back[..m], b"hello, engine");

        // The peer finishes: Ok(0); the engine can still send, then closes.
        peer.tcp(c).close();
        assert_eq!(
            run(&mut engine, &mut peer, |e, _| e.recv(s, &mut buf).ok()),
            0
        );
        assert_eq!(engine.send(s, b"bye"), Ok(3));
        engine.close(s);
        let m = run(&mut engine, &mut peer, |_, p| {
            p.tcp(c).recv_slice(&mut back).ok().filter(|m| *m > 0)
        });
        assert_eq!(&back[..m], b"bye");
        run(&mut engine, &mut peer, |_, p| {
            (!p.tcp(c).is_open()).then_some(())
        });
        // The socket went back to the pool.
        run(&mut engine, &mut peer, |e, _| {
            (e.closing.is_empty()).then_some(())
        });
        assert!(engine.stats().rx_frames > 0 && engine.stats().tx_frames > 0);
    }

    #[test]
    fn sockets_are_reused_and_limited() {
        let limits = Limits {
            tcp_sockets: 3,
            ..Limits::default()
        };
        let (mut engine, mut peer, _wire) = pair(limits, 64);
        let listener = engine.tcp_listen(80).unwrap();
        // Twenty connections one after the other through three sockets.
        for i in 0..20 {
            let c = peer.connect(80, 41000 + i);
            let s = run(&mut engine, &mut peer, |e, _| e.accept(listener));
            peer.tcp(c).send_slice(b"GET").unwrap();
            let mut buf = [0u8; 8];
            run(&mut engine, &mut peer, |e, _| e.recv(s, &mut buf).ok());
            engine.close(s);
            peer.tcp(c).close();
            run(&mut engine, &mut peer, |e, p| {
                (e.closing.is_empty() && !p.tcp(c).is_open()).then_some(())
            });
            peer.sockets.remove(c);
        }
        assert_eq!(engine.tcp.created, 3);
        // Two listening sockets and one more: a second listener still gets one; a third
        // does not.
        let busy = engine.tcp_listen(81).unwrap();
        assert_eq!(engine.tcp_listen(82), Err(NetError::NoSockets));
        engine.close_listener(busy);
        assert!(engine.tcp_listen(82).is_ok());
    }

    #[test]
    fn connections_arriving_together_are_all_accepted() {
        let (mut engine, mut peer, _wire) = pair(Limits::default(), 64);
        let listener = engine.tcp_listen(7).unwrap();
        let clients: Vec<_> = (0..6).map(|i| peer.connect(7, 42000 + i)).collect();
        let mut accepted = Vec::new();
        run(&mut engine, &mut peer, |e, _| {
            while let Some(s) = e.accept(listener) {
                accepted.push(s);
            }
            (accepted.len() == clients.len()).then_some(())
        });
        // Refused ones would have been reset, not established.
        assert!(
            clients
                .iter()
                .all(|c| peer.tcp(*c).state() == tcp::State::Established)
        );
    }

    #[test]
    fn a_reset_is_closed_and_a_closed_stream_cannot_send() {
        let (mut engine, mut peer, _wire) = pair(Limits::default(), 64);
        let listener = engine.tcp_listen(9).unwrap();
        let c = peer.connect(9, 43000);
        let s = run(&mut engine, &mut peer, |e, _| e.accept(listener));
        peer.tcp(c).abort();
        let mut buf = [0u8; 8];
        let end = run(&mut engine, &mut peer, |e, _| match e.recv(s, &mut buf) {
            Err(NetError::WouldBlock) => None,
            other => Some(other),
        });
        assert_eq!(end, Err(NetError::Closed));
        assert_eq!(engine.send(s, b"x"), Err(NetError::Closed));
        engine.close(s);
        // Handles that were never given out are refused.
        assert_eq!(engine.recv(s + 1, &mut buf), Err(NetError::BadHandle));
    }

    /// A NIC queue of one frame: frames wait in the stash or are dropped, and TCP still
    /// delivers every byte in order.
    #[test]
    fn a_full_nic_queue_slows_but_never_corrupts_a_stream() {
        let (mut engine, mut peer, wire) = pair(Limits::default(), 1);
        let listener = engine.tcp_listen(19).unwrap();
        let c = peer.connect(19, 44000);
        let s = run(&mut engine, &mut peer, |e, _| e.accept(listener));
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut sent = 0;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 8192];
        run(&mut engine, &mut peer, |e, p| {
            if sent < data.len() {
                sent += e.send(s, &data[sent..]).unwrap_or(0);
            }
            // The peer drains one frame per round: the engine's queue is always full.
            while let Ok(n) = p.tcp(c).recv_slice(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            (got.len() == data.len()).then_some(())
        });
        assert!(got == data, "the stream arrived altered");
        assert!(wire.borrow().to_peer.len() <= 1);
        // The queue did overflow: frames waited in the stash.
        assert!(engine.stats().tx_full > 0, "{:?}", engine.stats());
    }

    /// With receive offload, a stream arrives in super-frames whose checksums are only
    /// partial, and every byte is taken in order; a frame that comes without the NIC's
    /// word and has a wrong checksum is dropped, one with a right one taken.
    #[test]
    fn receive_offload_takes_super_frames_and_checks_the_rest() {
        let limits = Limits {
            tcp_buffer: 256 * 1024,
            ..Limits::default()
        };
        let (mut engine, mut peer, wire) = pair_on(
            limits,
            Wire {
                engine_queue: 64,
                offload: true,
                ..Wire::default()
            },
        );
        assert!(engine.stats().rx_offload);
        let listener = engine.tcp_listen(9).unwrap();
        let c = peer.connect(9, 45000);
        let s = run(&mut engine, &mut peer, |e, _| e.accept(listener));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let (mut sent, mut got) = (0, Vec::new());
        let mut buf = vec![0u8; 16 * 1024];
        run(&mut engine, &mut peer, |e, p| {
            if sent < data.len() {
                sent += p.tcp(c).send_slice(&data[sent..]).unwrap_or(0);
            }
            while let Ok(n) = e.recv(s, &mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            (got.len() == data.len()).then_some(())
        });
        assert!(got == data, "the stream arrived altered");
        let stats = engine.stats();
        assert!(wire.borrow().supers > 0 && stats.rx_large > 0, "{stats:?}");
        assert_eq!(stats.rx_bad_checksum, 0);

        // A UDP datagram with its checksum damaged, then the same one whole.
        let u = engine.udp_bind(53).unwrap();
        let datagram = |damaged: bool| {
            let payload = b"query";
            let udp = smoltcp::wire::UdpRepr {
                src_port: 5353,
                dst_port: 53,
            };
            let ip = smoltcp::wire::Ipv4Repr {
                src_addr: PEER_IP,
                dst_addr: ENGINE_IP,
                next_header: smoltcp::wire::IpProtocol::Udp,
                payload_len: udp.header_len() + payload.len(),
                hop_limit: 64,
            };
            let eth = smoltcp::wire::EthernetRepr {
                src_addr: EthernetAddress(PEER_MAC),
                dst_addr: EthernetAddress(ENGINE_MAC),
                ethertype: EthernetProtocol::Ipv4,
            };
            let mut f = vec![0u8; 14 + ip.buffer_len() + udp.header_len() + payload.len()];
            let mut frame = EthernetFrame::new_unchecked(&mut f[..]);
            eth.emit(&mut frame);
            let caps = smoltcp::phy::ChecksumCapabilities::default();
            let mut packet = smoltcp::wire::Ipv4Packet::new_unchecked(frame.payload_mut());
            ip.emit(&mut packet, &caps);
            udp.emit(
                &mut smoltcp::wire::UdpPacket::new_unchecked(packet.payload_mut()),
                &ip.src_addr.into(),
                &ip.dst_addr.into(),
                payload.len(),
                |b| b.copy_from_slice(payload),
                &caps,
            );
            if damaged {
                let at = f.len() - 1;
                f[at] ^= 0x20;
            }
            f
        };
        wire.borrow_mut().to_engine.push_back(datagram(true));
        let mut q = [0u8; 16];
        for _ in 0..10 {
            engine.poll(1_000_000);
        }
        assert_eq!(engine.recv_from(u, &mut q), Err(NetError::WouldBlock));
        assert_eq!(engine.stats().rx_bad_checksum, 1);
        wire.borrow_mut().to_engine.push_back(datagram(false));
        let (n, _) = run(&mut engine, &mut peer, |e, _| e.recv_from(u, &mut q).ok());
        assert_eq!(&q[..n], b"query");
    }

    /// With transmit offload smoltcp builds super-frames and leaves checksums to the
    /// NIC, which cuts and fills them: the peer, which checks every checksum, gets the
    /// whole stream in order.
    #[test]
    fn transmit_offload_sends_super_frames_the_nic_cuts() {
        let limits = Limits {
            tcp_buffer: 256 * 1024,
            ..Limits::default()
        };
        let (mut engine, mut peer, wire) = pair_on(
            limits,
            Wire {
                engine_queue: 1024,
                offload: true,
                tx_offload: true,
                ..Wire::default()
            },
        );
        let listener = engine.tcp_listen(19).unwrap();
        let c = peer.connect(19, 46000);
        let s = run(&mut engine, &mut peer, |e, _| e.accept(listener));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
        let (mut sent, mut got) = (0, Vec::new());
        let mut buf = vec![0u8; 16 * 1024];
        run(&mut engine, &mut peer, |e, p| {
            if sent < data.len() {
                sent += e.send(s, &data[sent..]).unwrap_or(0);
            }
            while let Ok(n) = p.tcp(c).recv_slice(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            (got.len() == data.len()).then_some(())
        });
        assert!(got == data, "the stream arrived altered");
        assert!(wire.borrow().tx_supers > 0, "no super-frame was sent");
    }

    #[test]
    fn udp_round_trip() {
        let (mut engine, mut peer, _wire) = pair(Limits::default(), 64);
        let u = engine.udp_bind(53).unwrap();
        assert_eq!(engine.udp_bind(53), Err(NetError::PortInUse));
        let mut ps = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 4096]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 4096]),
        );
        ps.bind(5353).unwrap();
        let ph = peer.sockets.add(ps);
        peer.sockets
            .get_mut::<udp::Socket>(ph)
            .send_slice(b"query", (ENGINE_IP, 53))
            .unwrap();
        let mut buf = [0u8; 3];
        let (n, from) = run(&mut engine, &mut peer, |e, _| e.recv_from(u, &mut buf).ok());
        // Cut to the buffer, as std does.
        assert_eq!(
            (&buf[..n], from),
            (&b"que"[..], SocketAddrV4::new(PEER_IP, 5353))
        );
        engine.send_to(u, b"answer", from).unwrap();
        assert_eq!(engine.send_to(u, &[0; 9000], from), Err(NetError::TooLong));
        assert_eq!(
            engine.send_to(u, b"x", SocketAddrV4::new(PEER_IP, 0)),
            Err(NetError::InvalidPort)
        );
        let mut back = [0u8; 16];
        let (m, _) = run(&mut engine, &mut peer, |_, p| {
            p.sockets
                .get_mut::<udp::Socket>(ph)
                .recv_slice(&mut back)
                .ok()
        });
        assert_eq!(&back[..m], b"answer");
        engine.close_udp(u);
        assert!(engine.udp_bind(53).is_ok());
    }

    #[test]
    fn dhcp_starts_without_an_address() {
        let wire = Rc::new(RefCell::new(Wire {
            engine_queue: 64,
            ..Wire::default()
        }));
        let mut engine =
            Engine::new(SimLink(wire.clone()), Addressing::Dhcp, Limits::default()).unwrap();
        assert_eq!(engine.address(), None);
        engine.poll(0);
        // The first thing it says is a DHCP discover: a broadcast IPv4 frame.
        let w = wire.borrow();
        let frame = EthernetFrame::new_checked(&w.to_peer[0][..]).unwrap();
        assert_eq!(
            (frame.dst_addr(), frame.ethertype()),
            (EthernetAddress::BROADCAST, EthernetProtocol::Ipv4)
        );
        drop(w);
        let udp = engine.udp_bind(9).unwrap();
        assert_eq!(
            engine.send_to(udp, b"x", SocketAddrV4::new(PEER_IP, 9)),
            Err(NetError::NoAddress)
        );
    }

    #[test]
    fn a_mac_that_makes_no_host_is_refused_and_no_nic_is_no_nic() {
        struct NoNic;
        impl Link for NoNic {
            fn mac(&self) -> Result<[u8; 6], Error> {
                Err(Error::NoNic)
            }
            fn send(&mut self, _: &[u8]) -> Result<(), Error> {
                Err(Error::NoNic)
            }
            fn recv(&mut self, _: &mut [u8]) -> Result<usize, Error> {
                Err(Error::NoNic)
            }
            fn wait(&mut self, _: bool, _: u64) {}
            fn now_ns(&self) -> u64 {
                0
            }
        }
        assert!(matches!(
            Engine::new(NoNic, Addressing::Dhcp, Limits::default()),
            Err(NetError::NoNic)
        ));
        let wire = Rc::new(RefCell::new(Wire::default()));
        // ENGINE_MAC ends in 01: on a /31 there is no room for hosts.
        let tight = Addressing::FromMac {
            network: Cidr::new(ENGINE_IP, 31).unwrap(),
            gateway: None,
        };
        assert!(matches!(
            Engine::new(SimLink(wire), tight, Limits::default()),
            Err(NetError::Address(crate::net::AddressError::HostPart))
        ));
    }
}
