//! Partitions' NICs: each is a port of the switch, an access port on its tenant's VLAN
//! (the native, untagged VLAN for a partition on no tenant's), with a stable MAC and the
//! partition's network limits.
//!
//! Owns which NICs a partition has, their MACs, and the tenant VLAN each partition's
//! NICs hold: a tenant holds its VLAN ID (`plinth_policy`'s ledger) while any of its
//! partitions has a NIC, so the ID returns to its pool when the last one goes. It must
//! not touch frames (the switch does) or agents' memory (`syscall` does).

use alloc::format;
use alloc::string::String;

use plinth_bridge::{Mac, NATIVE};

use super::Runtime;
use super::control::CommandError;
use super::model::{NetLimits, PartNic};
use crate::net::switch;

/// A locally administered, unicast MAC derived from the machine (its uplink's MAC), the
/// appliance, the partition and the NIC's index: the same on every boot of one machine,
/// different across partitions — and across machines running the same appliance on one
/// segment (FNV-1a, 64 bits).
pub fn derived_mac(machine: Mac, appliance: &str, partition: &str, index: u8) -> Mac {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in machine
        .into_iter()
        .chain(appliance.bytes())
        .chain(*b"/")
        .chain(partition.bytes())
        .chain(*b"/")
        .chain([index])
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    // Locally administered (bit 1), unicast (bit 0 clear).
    [(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

impl Runtime {
    /// Gives partition `pi` a NIC (`mac`, or one derived) on its tenant's VLAN. Returns
    /// its index, the number agents use.
    pub fn add_nic(&mut self, pi: usize, mac: Option<Mac>) -> Result<u8, CommandError> {
        let p = &self.partitions[pi];
        let index = (0..plinth_abi::MAX_NICS as u8)
            .find(|i| !p.nics.iter().any(|n| n.index == *i))
            .ok_or_else(|| {
                CommandError::Conflict(format!(
                    "partition {} has {} NICs, the most a partition can have",
                    p.name,
                    plinth_abi::MAX_NICS
                ))
            })?;
        let machine = switch::uplink_mac().unwrap_or([0; 6]);
        let mac = mac.unwrap_or_else(|| derived_mac(machine, &self.appliance, &p.name, index));
        if let Some(owner) = self
            .partitions
            .iter()
            .find(|q| q.nics.iter().any(|n| n.mac == mac))
        {
            return Err(CommandError::Conflict(format!(
                "MAC {} is partition {}'s already",
                format_mac(&mac),
                owner.name
            )));
        }
        let vid = match p.tenant.clone() {
            Some(tenant) if p.nics.is_empty() => self
                .vlans
                .acquire(&self.policies, &tenant)
                .map_err(|e| CommandError::Conflict(format!("{e}")))?,
            Some(tenant) => self.vlans.vlan_of(&tenant).unwrap_or(NATIVE),
            None => NATIVE,
        };
        let p = &mut self.partitions[pi];
        let Some(port) = switch::add_nic(format!("{}/{index}", p.name), vid, mac) else {
            if let Some(t) = p.tenant.as_deref()
                && p.nics.is_empty()
            {
                self.vlans.release(t);
            }
            return Err(CommandError::Conflict(String::from("the switch is not up")));
        };
        apply_limits(port, &p.net_limits);
        p.nics.push(PartNic {
            index,
            mac,
            port,
            vlan: vid,
        });
        p.nics.sort_by_key(|n| n.index);
        self.sync_trunk();
        Ok(index)
    }

    /// Removes NIC `index` of partition `pi`; the tenant's VLAN goes back with the last.
    pub fn remove_nic(&mut self, pi: usize, index: u8) -> Result<(), CommandError> {
        let p = &mut self.partitions[pi];
        let at = p
            .nics
            .iter()
            .position(|n| n.index == index)
            .ok_or_else(|| {
                CommandError::Conflict(format!("partition {} has no NIC {index}", p.name))
            })?;
        let nic = p.nics.remove(at);
        // Metering keeps what it carried (from the partition's side: the port's
        // transmit side delivered to it).
        if let Some(c) = switch::inspect(|b| b.port(nic.port).map(|(_, c)| c.clone())).flatten() {
            p.meter.net_gone.0 += c.tx_bytes;
            p.meter.net_gone.1 += c.rx_bytes;
            p.meter.net_gone_frames += c.rx_frames + c.tx_frames;
        }
        switch::remove_nic(nic.port);
        if p.nics.is_empty()
            && let Some(t) = p.tenant.as_deref()
        {
            self.vlans.release(t);
        }
        self.sync_trunk();
        Ok(())
    }

    /// Removes every NIC of partition `pi` (it is being terminated).
    pub fn remove_nics(&mut self, pi: usize) {
        let indices: alloc::vec::Vec<u8> =
            self.partitions[pi].nics.iter().map(|n| n.index).collect();
        for i in indices {
            let _ = self.remove_nic(pi, i);
        }
    }

    /// Sets partition `pi`'s network limits, on every NIC, at once.
    pub fn set_net_limits(&mut self, pi: usize, limits: NetLimits) {
        let p = &mut self.partitions[pi];
        p.net_limits = limits;
        for n in &p.nics {
            apply_limits(n.port, &p.net_limits);
        }
    }

    /// The uplink carries exactly the VLANs tenants hold.
    fn sync_trunk(&self) {
        switch::set_trunk(self.vlans.holds().map(|(_, h)| h.vlan));
    }
}

fn apply_limits(port: plinth_bridge::PortId, l: &NetLimits) {
    switch::set_limits(port, l.bytes, l.packets);
}

/// `02:00:00:00:00:01`.
pub fn format_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}
