//! The NIC-facing side: the switch (`switch`: the bridge between the uplink NIC, the
//! management stack's port and partition NICs) and the runtime's own IP host (smoltcp
//! on the management port), its address (DHCP or static from the command line) and the
//! socket set that services the management plane's listeners.
//!
//! Owns the smoltcp interface and socket set and the adapter to smoltcp (`port`); the
//! switch owns the NIC once `drivers` bound it. It must not parse HTTP or decide what a
//! socket is for (`crate::mgmt` adds and serves its sockets here), nor touch the NIC's
//! buffers (the driver glue does), nor decide partitions' VLANs (`crate::partition`
//! asks the switch for ports).

use alloc::string::String;
use alloc::vec::Vec;

use log::{info, warn};
use smoltcp::iface::{Config, Interface, PollResult, SocketSet};
use smoltcp::socket::dhcpv4;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::clock;
use crate::drivers::virtio::net::NicCounters;

mod port;
pub mod switch;

use port::MgmtPort;

/// Broadcasts an ARP announcement (RFC 5227) for a statically configured address, so
/// neighbours — QEMU's user network among them, which learns guest MACs only from ARP and
/// DHCP — can reach it before it has sent anything.
fn announce(mac: EthernetAddress, ip: Ipv4Address) {
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
    let mut buf = [0u8; 64];
    let len = eth.buffer_len() + arp.buffer_len();
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..len]);
    eth.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    switch::mgmt_send(&buf[..len]);
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

/// The runtime's IP host on the management port.
pub struct Stack {
    name: String,
    location: String,
    mac: [u8; 6],
    iface: Interface,
    sockets: SocketSet<'static>,
    dhcp: Option<smoltcp::iface::SocketHandle>,
    source: AddressSource,
    gateway: Option<Ipv4Address>,
}

/// Network options from the command line.
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    pub ip: Option<(core::net::Ipv4Addr, u8)>,
    pub gateway: Option<core::net::Ipv4Addr>,
}

/// The clock as smoltcp counts it.
pub fn now() -> Instant {
    Instant::from_micros((clock::now_ns() / 1_000) as i64)
}

impl Stack {
    /// Brings the stack up on the management port (MAC `mac`, the uplink's, named for
    /// the uplink `name` in the log): a static address if configured, else DHCP.
    pub fn new(name: String, location: String, mac: [u8; 6], config: NetConfig) -> Stack {
        let mac_bytes = mac;
        let mac = EthernetAddress(mac);
        let mut iface_config = Config::new(HardwareAddress::Ethernet(mac));
        // Seed for TCP initial sequence numbers and DHCP transaction IDs: the TSC at boot
        // mixed with the MAC, distinct per boot and per machine.
        iface_config.random_seed = crate::arch::cpu::rdtsc()
            ^ u64::from_le_bytes([
                mac.0[0], mac.0[1], mac.0[2], mac.0[3], mac.0[4], mac.0[5], 0, 0,
            ]);
        let mut iface = Interface::new(iface_config, &mut MgmtPort, now());
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
                announce(mac, cidr.address());
                switch::flush();
                (None, AddressSource::Static, config.gateway)
            }
            None => (
                Some(sockets.add(dhcpv4::Socket::new())),
                AddressSource::Dhcp,
                None,
            ),
        };
        Stack {
            name,
            location,
            mac: mac_bytes,
            iface,
            sockets,
            dhcp,
            source,
            gateway,
        }
    }

    /// One round of the switch and the interface: pumps the uplink through the bridge,
    /// lets smoltcp process what reached the management port and emit what is due, and
    /// follows DHCP. Returns whether smoltcp changed any socket. [`Stack::flush`] ends a
    /// round.
    pub fn poll_once(&mut self, t: Instant) -> bool {
        switch::pump();
        let changed = self.iface.poll(t, &mut MgmtPort, &mut self.sockets);
        self.poll_dhcp();
        changed != PollResult::None
    }

    /// Ends a round: posts receive buffers again and rings one doorbell for everything
    /// the round sent or posted.
    pub fn flush(&mut self) {
        switch::flush();
    }

    /// Whether frames are waiting to be processed.
    pub fn has_received(&self) -> bool {
        switch::has_pending()
    }

    /// The sockets, for the management plane to add and serve its own.
    pub fn sockets(&mut self) -> &mut SocketSet<'static> {
        &mut self.sockets
    }

    /// The sockets, to serve them, and what `/api/v1/status` and `/metrics` report of
    /// the NIC meanwhile.
    pub fn sockets_and_info(&mut self) -> (&mut SocketSet<'static>, NicInfo<'_>) {
        let info = NicInfo {
            name: &self.name,
            location: &self.location,
            mac: self.mac,
            address: address(&self.iface),
            gateway: self.gateway,
            source: self.source,
            counters: switch::uplink_counters().unwrap_or_default(),
        };
        (&mut self.sockets, info)
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

    fn address(&self) -> Option<Ipv4Cidr> {
        address(&self.iface)
    }
}

/// The interface's IPv4 address, if it has one yet.
fn address(iface: &Interface) -> Option<Ipv4Cidr> {
    iface.ip_addrs().iter().map(|IpCidr::Ipv4(c)| *c).next()
}
