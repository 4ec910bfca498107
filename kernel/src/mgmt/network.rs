//! `GET /api/v1/network`: the switch as the operator sees it — the uplink trunk, the
//! VLANs with their tenants and pools, every port with its counters and drops by
//! reason, and the MAC table — as `plinth_control::views::NetworkView`.
//!
//! Owns the mapping from the bridge's and the VLAN ledger's state to the view. It must
//! not change the switch, and takes the partition table's lock before the switch's
//! (the order every path uses).

use alloc::string::String;
use alloc::vec::Vec;

use plinth_bridge::{Drop, Mode, NATIVE};
use plinth_control::views::{
    BridgePortView, DropCount, MacView, NetworkView, PoolView, PortKind, PortMode, UplinkView,
    VlanView,
};

use crate::net::switch;
use crate::partition::RUNTIME;
use crate::partition::nics::format_mac;

fn drops(counts: &[u64; Drop::COUNT]) -> Vec<DropCount> {
    Drop::ALL
        .iter()
        .filter(|d| counts[d.index()] > 0)
        .map(|d| DropCount {
            reason: String::from(d.name()),
            count: counts[d.index()],
        })
        .collect()
}

pub fn view() -> NetworkView {
    let guard = RUNTIME.lock();
    let rt = guard.as_ref();
    let (uplink_port, mgmt_port) = switch::roles();
    let uplink_info = switch::uplink_info();
    let now_ms = crate::clock::now_ns() / 1_000_000;
    // Read before the bridge is: both are behind the switch's one lock.
    let offloads = switch::offloads();
    let mut view = switch::inspect(|b| {
        let name_of = |id| b.port(id).map(|(c, _)| c.name.clone()).unwrap_or_default();
        let ports: Vec<BridgePortView> = b
            .ports()
            .map(|(id, cfg, c)| {
                let (mode, vlan, allowed) = match &cfg.mode {
                    Mode::Access { vid } => (
                        PortMode::Access,
                        (*vid != NATIVE).then_some(*vid),
                        Vec::new(),
                    ),
                    Mode::Trunk { allowed, .. } => {
                        (PortMode::Trunk, None, allowed.iter().collect())
                    }
                };
                BridgePortView {
                    name: cfg.name.clone(),
                    kind: if Some(id) == uplink_port {
                        PortKind::Uplink
                    } else if Some(id) == mgmt_port {
                        PortKind::Management
                    } else {
                        PortKind::Nic
                    },
                    mode,
                    vlan,
                    allowed,
                    mac: cfg.mac.as_ref().map(format_mac),
                    rx_frames: c.rx_frames,
                    rx_bytes: c.rx_bytes,
                    tx_frames: c.tx_frames,
                    tx_bytes: c.tx_bytes,
                    drops: drops(&c.drops),
                    offload: offloads
                        .iter()
                        .find(|(p, _, _)| *p == id)
                        .map(|(_, rx, tx)| {
                            [(*rx, "rx"), (*tx, "tx")]
                                .into_iter()
                                .filter(|(on, _)| *on)
                                .map(|(_, name)| String::from(name))
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            })
            .collect();
        let vlans: Vec<VlanView> = b
            .vlans()
            .map(|(vid, c)| {
                let hold = rt.and_then(|rt| {
                    rt.vlans
                        .holds()
                        .find(|(_, h)| h.vlan == vid && vid != NATIVE)
                });
                VlanView {
                    vid,
                    tenant: hold.map(|(t, _)| String::from(t)),
                    pool: hold.and_then(|(_, h)| h.pool.clone()),
                    ports: b
                        .ports()
                        .filter(|(_, cfg, _)| cfg.mode.carries(vid))
                        .map(|(_, cfg, _)| cfg.name.clone())
                        .collect(),
                    frames: c.frames,
                    bytes: c.bytes,
                    flooded: c.flooded,
                    macs: u32::try_from(c.macs).unwrap_or(u32::MAX),
                    drops: drops(&c.drops),
                }
            })
            .collect();
        let mut macs: Vec<MacView> = b
            .macs(now_ms)
            .map(|e| MacView {
                vid: e.vid,
                mac: format_mac(&e.mac),
                port: name_of(e.port),
                age_ms: e.age_ms,
                is_static: e.is_static,
            })
            .collect();
        macs.sort_by(|a, b| (a.vid, &a.mac).cmp(&(b.vid, &b.mac)));
        NetworkView {
            native_vlan_untagged: true,
            uplink: None,
            vlans,
            ports,
            macs,
            pools: Vec::new(),
        }
    })
    .unwrap_or(NetworkView {
        native_vlan_untagged: true,
        uplink: None,
        vlans: Vec::new(),
        ports: Vec::new(),
        macs: Vec::new(),
        pools: Vec::new(),
    });
    view.uplink = uplink_info.map(|u| UplinkView {
        name: u.name,
        mac: format_mac(&u.mac),
        allowed: u.allowed,
    });
    if let Some(rt) = rt {
        view.pools = rt
            .policies
            .pools
            .iter()
            .map(|p| PoolView {
                name: p.name.clone(),
                ranges: p.ranges.clone(),
                in_use: {
                    let mut v: Vec<u16> = rt
                        .vlans
                        .holds()
                        .filter(|(_, h)| h.pool.as_deref() == Some(p.name.as_str()))
                        .map(|(_, h)| h.vlan)
                        .collect();
                    v.sort_unstable();
                    v
                },
            })
            .collect();
    }
    view
}
