//! How an agent's interface gets its IPv4 address: the types, and reading them from an
//! agent's config file.
//!
//! Owns [`Cidr`], [`Addressing`] and their text forms. It must not touch a NIC or a
//! socket: `Net::up` applies what this module decides.

use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;

use crate::config;

/// An IPv4 address with its prefix length: `10.1.1.5/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    address: Ipv4Addr,
    prefix: u8,
}

impl Cidr {
    /// `address/prefix`; `None` if `prefix` is over 32.
    pub const fn new(address: Ipv4Addr, prefix: u8) -> Option<Cidr> {
        if prefix > 32 {
            return None;
        }
        Some(Cidr { address, prefix })
    }

    /// The address.
    pub const fn address(self) -> Ipv4Addr {
        self.address
    }

    /// The prefix length, 0..=32.
    pub const fn prefix(self) -> u8 {
        self.prefix
    }

    /// The network's mask (`255.255.255.0` for a /24).
    pub fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.mask())
    }

    /// Whether `ip` is on this network.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        (ip.to_bits() ^ self.address.to_bits()) & self.mask() == 0
    }

    /// This network with the host part taken from the last octet of `mac`: so partitions
    /// running the same container on one subnet (each with its own MAC) get distinct
    /// addresses. The network needs at least 2 host bits, and the octet must not make the
    /// network's own address (host part all zeroes) or its broadcast (all ones); with
    /// fewer than 8 host bits only the octet's low bits count.
    ///
    /// Errors: [`AddressError::HostPart`].
    pub fn with_host_from_mac(self, mac: [u8; 6]) -> Result<Cidr, AddressError> {
        if self.prefix > 30 {
            return Err(AddressError::HostPart);
        }
        let host_mask = !self.mask();
        let host = u32::from(mac[5]) & host_mask;
        if host == 0 || host == host_mask {
            return Err(AddressError::HostPart);
        }
        let address = Ipv4Addr::from_bits(self.address.to_bits() & self.mask() | host);
        Ok(Cidr { address, ..self })
    }

    /// Whether the address is its network's own address or its broadcast (only on
    /// networks with room for hosts besides those two).
    fn is_network_or_broadcast(self) -> bool {
        let host = self.address.to_bits() & !self.mask();
        self.prefix <= 30 && (host == 0 || host == !self.mask())
    }

    fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = AddressError;

    /// `a.b.c.d/p`, the prefix required.
    fn from_str(text: &str) -> Result<Cidr, AddressError> {
        let (address, prefix) = text.split_once('/').ok_or(AddressError::BadAddress)?;
        let address = address.parse().map_err(|_| AddressError::BadAddress)?;
        // `u8::from_str` takes a leading `+`; a prefix is digits only.
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AddressError::BadAddress);
        }
        let prefix = prefix.parse().map_err(|_| AddressError::BadAddress)?;
        Cidr::new(address, prefix).ok_or(AddressError::BadAddress)
    }
}

/// How `Net::up` addresses the interface. On the host backend it is ignored: the process
/// uses the host's own addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// Ask a DHCP server (and follow its leases).
    Dhcp,
    /// A fixed address, and the default route's gateway if there is one.
    Static {
        /// The address and its network.
        cidr: Cidr,
        /// The default route's next hop, on `cidr`'s network.
        gateway: Option<Ipv4Addr>,
    },
    /// `network` with the host part from the NIC's MAC (see [`Cidr::with_host_from_mac`]),
    /// resolved when the NIC's MAC is known.
    FromMac {
        /// The network (host bits, if any, are replaced).
        network: Cidr,
        /// The default route's next hop, on `network`.
        gateway: Option<Ipv4Addr>,
    },
}

impl Addressing {
    /// Reads the addressing of an agent's config text (see [`config::value`]):
    ///
    /// ```toml
    /// address = "dhcp"                  # the default when absent
    /// address = "10.1.1.5/24"           # static
    /// address = "10.1.1.0/24 host=mac"  # static, host part = the MAC's last octet
    /// gateway = "10.1.1.1"              # optional, static addresses only
    /// ```
    ///
    /// Errors: [`AddressError::BadAddress`], [`AddressError::BadGateway`],
    /// [`AddressError::GatewayWithDhcp`], [`AddressError::GatewayOffLink`].
    pub fn from_config(text: &str) -> Result<Addressing, AddressError> {
        let address = config::value(text, "address").unwrap_or("dhcp").trim();
        let gateway = match config::value(text, "gateway") {
            None => None,
            Some(g) => Some(g.trim().parse().map_err(|_| AddressError::BadGateway)?),
        };
        let addressing = if address == "dhcp" {
            if gateway.is_some() {
                return Err(AddressError::GatewayWithDhcp);
            }
            Addressing::Dhcp
        } else {
            let mut words = address.split_whitespace();
            let cidr: Cidr = words.next().unwrap_or_default().parse()?;
            match (words.next(), words.next()) {
                (None, _) => Addressing::Static { cidr, gateway },
                (Some("host=mac"), None) => Addressing::FromMac {
                    network: cidr,
                    gateway,
                },
                _ => return Err(AddressError::BadAddress),
            }
        };
        addressing.check()?;
        Ok(addressing)
    }

    /// The address and gateway for a NIC with `mac`; `None` for DHCP.
    ///
    /// Errors: those of [`Cidr::with_host_from_mac`]; [`AddressError::BadAddress`] for a
    /// network or broadcast address; [`AddressError::GatewayOffLink`].
    pub fn resolve(self, mac: [u8; 6]) -> Result<Option<(Cidr, Option<Ipv4Addr>)>, AddressError> {
        self.check()?;
        Ok(match self {
            Addressing::Dhcp => None,
            Addressing::Static { cidr, gateway } => Some((cidr, gateway)),
            Addressing::FromMac { network, gateway } => {
                Some((network.with_host_from_mac(mac)?, gateway))
            }
        })
    }

    /// What can be checked before the MAC is known.
    fn check(self) -> Result<(), AddressError> {
        let (cidr, gateway) = match self {
            Addressing::Dhcp => return Ok(()),
            Addressing::Static { cidr, gateway } => {
                if cidr.is_network_or_broadcast() {
                    return Err(AddressError::BadAddress);
                }
                (cidr, gateway)
            }
            Addressing::FromMac { network, gateway } => (network, gateway),
        };
        // The gateway must be reachable without one.
        match gateway {
            Some(g) if !cidr.contains(g) => Err(AddressError::GatewayOffLink),
            _ => Ok(()),
        }
    }
}

/// Why an addressing is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressError {
    /// `address` is neither `dhcp` nor `a.b.c.d/p` (optionally followed by `host=mac`),
    /// or names a network's own or broadcast address.
    BadAddress,
    /// `gateway` is not an IPv4 address.
    BadGateway,
    /// A gateway was given with DHCP, which supplies its own.
    GatewayWithDhcp,
    /// The gateway is not on the address's network.
    GatewayOffLink,
    /// The MAC's last octet makes no usable host on the network (see
    /// [`Cidr::with_host_from_mac`]).
    HostPart,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressError::BadAddress => {
                "address must be \"dhcp\", \"a.b.c.d/p\" or \"a.b.c.d/p host=mac\", not a network or broadcast address"
            }
            AddressError::BadGateway => "gateway must be an IPv4 address",
            AddressError::GatewayWithDhcp => "a gateway needs a static address (DHCP brings its own)",
            AddressError::GatewayOffLink => "the gateway is not on the address's network",
            AddressError::HostPart => {
                "the MAC's last octet makes no usable host address on this network"
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x2a];

    #[test]
    fn cidrs_parse_print_and_contain() {
        let c = cidr("10.1.1.5/24");
        assert_eq!((c.address(), c.prefix()), (Ipv4Addr::new(10, 1, 1, 5), 24));
        assert_eq!(c.to_string(), "10.1.1.5/24");
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert!(c.contains(Ipv4Addr::new(10, 1, 1, 254)));
        assert!(!c.contains(Ipv4Addr::new(10, 1, 2, 1)));
        assert!(cidr("0.0.0.0/0").contains(Ipv4Addr::new(8, 8, 8, 8)));
        assert_eq!(cidr("0.0.0.0/0").netmask(), Ipv4Addr::UNSPECIFIED);
        assert!(!cidr("10.0.0.1/32").contains(Ipv4Addr::new(10, 0, 0, 2)));
        for bad in [
            "",
            "10.1.1.5",
            "10.1.1.5/",
            "10.1.1.5/33",
            "10.1.1/24",
            "10.1.1.5/+8",
            "x/8",
        ] {
            assert_eq!(
                bad.parse::<Cidr>(),
                Err(AddressError::BadAddress),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn host_part_comes_from_the_last_mac_octet() {
        let net = cidr("10.1.1.0/24");
        assert_eq!(net.with_host_from_mac(MAC), Ok(cidr("10.1.1.42/24")));
        // Host bits already in the network's text are replaced.
        assert_eq!(
            cidr("10.1.1.7/24").with_host_from_mac(MAC),
            Ok(cidr("10.1.1.42/24"))
        );
        // Wider networks: the octet is the low 8 bits; narrower: its low bits only.
        assert_eq!(
            cidr("10.1.0.0/16").with_host_from_mac(MAC),
            Ok(cidr("10.1.0.42/16"))
        );
        assert_eq!(
            cidr("10.1.1.0/28").with_host_from_mac(MAC),
            Ok(cidr("10.1.1.10/28"))
        );
        // Never the network's own address or its broadcast, and never a /31 or /32.
        for last in [0x00, 0xff] {
            let mac = [2, 0, 0, 0, 0, last];
            assert_eq!(net.with_host_from_mac(mac), Err(AddressError::HostPart));
        }
        assert_eq!(
            cidr("10.1.1.0/28").with_host_from_mac([2, 0, 0, 0, 0, 0x30]),
            Err(AddressError::HostPart)
        );
        assert_eq!(
            cidr("10.1.1.0/31").with_host_from_mac(MAC),
            Err(AddressError::HostPart)
        );
        assert_eq!(
            cidr("10.1.1.0/32").with_host_from_mac(MAC),
            Err(AddressError::HostPart)
        );
    }

    #[test]
    fn config_forms() {
        assert_eq!(Addressing::from_config(""), Ok(Addressing::Dhcp));
        assert_eq!(
            Addressing::from_config("address = \"dhcp\"\n"),
            Ok(Addressing::Dhcp)
        );
        assert_eq!(
            Addressing::from_config("address = \"10.1.1.5/24\"\ngateway = \"10.1.1.1\"\n"),
            Ok(Addressing::Static {
                cidr: cidr("10.1.1.5/24"),
                gateway: Some(Ipv4Addr::new(10, 1, 1, 1)),
            })
        );
        let from_mac = Addressing::from_config("address = \"10.1.1.0/24 host=mac\"  # per MAC\n");
        assert_eq!(
            from_mac,
            Ok(Addressing::FromMac {
                network: cidr("10.1.1.0/24"),
                gateway: None,
            })
        );
        assert_eq!(
            from_mac.unwrap().resolve(MAC),
            Ok(Some((cidr("10.1.1.42/24"), None)))
        );
        assert_eq!(Addressing::Dhcp.resolve(MAC), Ok(None));
    }

    #[test]
    fn config_mistakes_are_refused() {
        for (text, e) in [
            ("address = \"10.1.1.5\"", AddressError::BadAddress),
            ("address = \"static\"", AddressError::BadAddress),
            (
                "address = \"10.1.1.0/24 host=ip\"",
                AddressError::BadAddress,
            ),
            (
                "address = \"10.1.1.0/24 host=mac x\"",
                AddressError::BadAddress,
            ),
            ("address = \"10.1.1.0/24\"", AddressError::BadAddress),
            ("address = \"10.1.1.255/24\"", AddressError::BadAddress),
            (
                "address = \"10.1.1.5/24\"\ngateway = \"10.1.1\"",
                AddressError::BadGateway,
            ),
            ("gateway = \"10.1.1.1\"", AddressError::GatewayWithDhcp),
            (
                "address = \"10.1.1.5/24\"\ngateway = \"10.1.2.1\"",
                AddressError::GatewayOffLink,
            ),
            (
                "address = \"10.1.1.0/24 host=mac\"\ngateway = \"10.9.1.1\"",
                AddressError::GatewayOffLink,
            ),
        ] {
            assert_eq!(Addressing::from_config(text), Err(e), "{text:?}");
        }
        // A /32 or /31 has no network or broadcast address to avoid.
        assert!(Addressing::from_config("address = \"10.1.1.0/32\"").is_ok());
    }
}
