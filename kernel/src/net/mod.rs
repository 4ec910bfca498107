//! The runtime's management network stack: smoltcp over the first NIC, its address (DHCP
//! or static from the command line), and the TCP listeners of the management API.
//!
//! Owns the smoltcp interface and sockets and the adapter from `arch::virtio_net::Nic`
//! to smoltcp's `Device`. It must not parse HTTP (`plinth-http` and `api` do) nor touch
//! the NIC's buffers (the driver glue does). Later the NIC becomes a bridge port and this
//! stack one port among many (see docs/ARCHITECTURE.md); nothing here assumes it owns
//! the wire beyond the adapter.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use log::{info, warn};
use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::api;
use crate::arch::virtio_net::{Nic, NicCounters, RxFrame};
use crate::clock;
use crate::devices::NetDevice;

/// Connections the API serves at once; a further SYN is refused with RST (smoltcp answers
/// a SYN no listening socket takes that way), so load cannot grow memory.
pub const API_CONNECTIONS: usize = 8;
/// Per-connection TCP buffers. Big enough for a full window of bulk transfer (the
/// throughput benchmark) with window scaling.
const TCP_BUFFER: usize = 64 * 1024;
/// A peer that stops acknowledging for this long loses its connection.
const TCP_TIMEOUT: Duration = Duration::from_secs(60);

/// smoltcp's view of the NIC.
struct Port<'a>(&'a mut Nic);

struct Rx(RxFrame);
struct Tx<'a>(&'a mut Nic);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0.frame())
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.0.send(len, f)
    }
}

impl phy::Device for Port<'_> {
    type RxToken<'a>
        = Rx
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.0.receive()?;
        Some((Rx(frame), Tx(self.0)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
        self.0.can_send().then_some(Tx(self.0))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        // No checksum offload is negotiated: smoltcp computes and checks every checksum.
        caps
    }
}

/// Puts an API socket (back) into the listening state with the API's TCP options.
fn listen(socket: &mut tcp::Socket, port: u16) -> Result<(), tcp::ListenError> {
    socket.set_timeout(Some(TCP_TIMEOUT));
    socket.set_nagle_enabled(false);
    socket.listen(port)
}

/// Broadcasts an ARP announcement (RFC 5227) for a statically configured address, so
/// neighbours — QEMU's user network among them, which learns guest MACs only from ARP and
/// DHCP — can reach it before it has sent anything.
fn announce(nic: &mut Nic, mac: EthernetAddress, ip: Ipv4Address) {
    use smoltcp::wire::{
        ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr,
    };
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
    nic.send(len, |buf| {
        let mut frame = EthernetFrame::new_unchecked(buf);
        eth.emit(&mut frame);
        arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    });
}

/// How the address was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSource {
    Static,
    Dhcp,
}

/// What `/api/v1/status` and `/metrics` report of a NIC.
pub struct NicInfo<'a> {
    pub name: &'a str,
    /// PCI address (`00:02.0`) or `mmio@BASE`.
    pub location: &'a str,
    pub mac: [u8; 6],
    pub address: Option<Ipv4Cidr>,
    pub gateway: Option<Ipv4Address>,
    pub source: AddressSource,
    pub counters: NicCounters,
}

/// One API connection slot: a TCP socket and the HTTP state of its current connection.
struct Slot {
    handle: SocketHandle,
    conn: Option<api::Conn>,
    /// When our side closed, while the peer has not finished closing.
    closing_since: Option<u64>,
}

/// After our FIN, how long a peer may take to close its side (or acknowledge) before the
/// connection is reset: a peer that never closes must not keep a slot (FIN-WAIT-2 has no
/// timer of its own in TCP, and Linux bounds it the same way with `tcp_fin_timeout`).
const CLOSING_TIMEOUT_MS: u64 = 10_000;

pub struct Stack {
    name: String,
    location: String,
    nic: Nic,
    iface: Interface,
    sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    source: AddressSource,
    gateway: Option<Ipv4Address>,
    api_port: u16,
    slots: Vec<Slot>,
}

/// Network options from the command line.
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    pub ip: Option<(core::net::Ipv4Addr, u8)>,
    pub gateway: Option<core::net::Ipv4Addr>,
    pub api_port: u16,
}

fn now() -> Instant {
    Instant::from_micros((clock::now_ns() / 1_000) as i64)
}

impl Stack {
    /// Brings the stack up on `dev`: a static address if configured, else DHCP.
    pub fn new(dev: NetDevice, config: NetConfig) -> Stack {
        let NetDevice {
            name,
            location,
            mut nic,
        } = dev;
        let mac = EthernetAddress(nic.mac());
        let mut iface_config = Config::new(HardwareAddress::Ethernet(mac));
        // Seed for TCP initial sequence numbers and DHCP transaction IDs: the TSC at boot
        // mixed with the MAC, distinct per boot and per machine.
        iface_config.random_seed = crate::arch::cpu::rdtsc()
            ^ u64::from_le_bytes([
                mac.0[0], mac.0[1], mac.0[2], mac.0[3], mac.0[4], mac.0[5], 0, 0,
            ]);
        let mut iface = Interface::new(iface_config, &mut Port(&mut nic), now());
        let mut sockets = SocketSet::new(Vec::new());
        let (dhcp, source, gateway) = match config.ip {
            Some((ip, prefix)) => {
                let cidr = Ipv4Cidr::new(ip, prefix);
                iface.update_ip_addrs(|a| {
                    let _ = a.push(IpCidr::Ipv4(cidr));
                });
                if let Some(gw) = config.gateway {
                    let _ = iface.routes_mut().add_default_ipv4_route(gw);
                }
                info!(
                    "{name}: {cidr} (static){}",
                    config
                        .gateway
                        .map(|g| alloc::format!(" via {g}"))
                        .unwrap_or_default()
                );
                announce(&mut nic, mac, cidr.address());
                nic.ring();
                (None, AddressSource::Static, config.gateway)
            }
            None => (
                Some(sockets.add(dhcpv4::Socket::new())),
                AddressSource::Dhcp,
                None,
            ),
        };
        let slots = (0..API_CONNECTIONS)
            .map(|_| {
                let socket = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
                    tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
                );
                Slot {
                    handle: sockets.add(socket),
                    conn: None,
                    closing_since: None,
                }
            })
            .collect();
        let mut stack = Stack {
            name,
            location,
            nic,
            iface,
            sockets,
            dhcp,
            source,
            gateway,
            api_port: config.api_port,
            slots,
        };
        for slot in &stack.slots {
            let socket = stack.sockets.get_mut::<tcp::Socket>(slot.handle);
            if let Err(e) = listen(socket, stack.api_port) {
                warn!("api: cannot listen on port {}: {e}", stack.api_port);
            }
        }
        info!("api: listening on TCP port {}", stack.api_port);
        stack
    }

    /// Services the NIC and every socket until nothing more happens; called from the idle
    /// loop after a device interrupt or a timer tick.
    pub fn poll(&mut self, ctx: &api::Context) {
        for _ in 0..64 {
            let t = now();
            self.nic.reclaim();
            self.nic.refill();
            let changed = self
                .iface
                .poll(t, &mut Port(&mut self.nic), &mut self.sockets);
            self.poll_dhcp();
            let served = self.serve_api(ctx, t);
            self.nic.refill();
            // One doorbell for everything this round sent or posted.
            self.nic.ring();
            if changed == PollResult::None && !served && !self.nic.has_received() {
                break;
            }
        }
    }

    fn poll_dhcp(&mut self) {
        let Some(handle) = self.dhcp else {
            return;
        };
        let event = self.sockets.get_mut::<dhcpv4::Socket>(handle).poll();
        match event {
            None => {}
            Some(dhcpv4::Event::Configured(config)) => {
                let cidr = config.address;
                self.iface.update_ip_addrs(|a| {
                    a.clear();
                    let _ = a.push(IpCidr::Ipv4(cidr));
                });
                self.gateway = config.router;
                match config.router {
                    Some(router) => {
                        let _ = self.iface.routes_mut().add_default_ipv4_route(router);
                    }
                    None => {
                        self.iface.routes_mut().remove_default_ipv4_route();
                    }
                }
                info!(
                    "{}: {cidr} (DHCP){}",
                    self.name,
                    config
                        .router
                        .map(|g| alloc::format!(" via {g}"))
                        .unwrap_or_default()
                );
            }
            Some(dhcpv4::Event::Deconfigured) => {
                // Also reported once at start, before any lease: only a real loss matters.
                if self.address().is_some() {
                    warn!("{}: DHCP lease lost", self.name);
                }
                self.iface.update_ip_addrs(|a| a.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                self.gateway = None;
            }
        }
    }

    /// Moves bytes between the API sockets and their HTTP connections. Returns whether
    /// anything moved.
    fn serve_api(&mut self, ctx: &api::Context, t: Instant) -> bool {
        let now_ms = t.total_millis().max(0) as u64;
        let mut moved = false;
        let info = NicInfo {
            name: &self.name,
            location: &self.location,
            mac: self.nic.mac(),
            address: self.address(),
            gateway: self.gateway,
            source: self.source,
            counters: self.nic.counters,
        };
        for slot in &mut self.slots {
            let socket = self.sockets.get_mut::<tcp::Socket>(slot.handle);
            if !socket.is_open() {
                // Closed (by us or the peer, or timed out), or in TIME-WAIT, which smoltcp
                // counts as not open: listen again for the next one at once.
                slot.conn = None;
                slot.closing_since = None;
                let _ = listen(socket, self.api_port);
                continue;
            }
            let we_closed = matches!(
                socket.state(),
                tcp::State::FinWait1
                    | tcp::State::FinWait2
                    | tcp::State::Closing
                    | tcp::State::LastAck
            );
            match (we_closed, slot.closing_since) {
                (false, _) => slot.closing_since = None,
                (true, None) => slot.closing_since = Some(now_ms),
                (true, Some(since)) if now_ms.saturating_sub(since) > CLOSING_TIMEOUT_MS => {
                    socket.abort();
                    moved = true;
                    continue;
                }
                (true, Some(_)) => {}
            }
            if !socket.is_active() {
                continue; // still listening
            }
            let conn = match &mut slot.conn {
                Some(c) => c,
                None => {
                    log::debug!("api: connection from {:?}", socket.remote_endpoint());
                    slot.conn.insert(api::Conn::new(now_ms))
                }
            };
            moved |= api::serve(conn, socket, now_ms, ctx, &info);
        }
        moved
    }

    fn address(&self) -> Option<Ipv4Cidr> {
        self.iface
            .ip_addrs()
            .iter()
            .map(|IpCidr::Ipv4(c)| *c)
            .next()
    }
}
