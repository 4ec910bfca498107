//! The catalog as JSON, for the runtime's `GET /api/v1/catalog`.

use core::fmt::{self, Write};

use crate::Catalog;

/// Where a partition's data disk is on the appliance disk, from its GPT entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent<'a> {
    pub partition: &'a str,
    pub first_lba: u64,
    pub sectors: u64,
}

/// A JSON string holding `s`.
fn string(out: &mut impl Write, s: &str) -> fmt::Result {
    plinth_policy::policies::write_json_string(out, s)
}

fn hex(out: &mut impl Write, bytes: &[u8]) -> fmt::Result {
    out.write_char('"')?;
    for b in bytes {
        write!(out, "{b:02x}")?;
    }
    out.write_char('"')
}

fn strings<'a>(out: &mut impl Write, items: impl IntoIterator<Item = &'a str>) -> fmt::Result {
    out.write_char('[')?;
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        string(out, s)?;
    }
    out.write_char(']')
}

/// Writes the catalog: appliance, machine, partitions (with the disk extents given),
/// trusted keys, agents and policies. Compact, keys in a fixed order.
pub fn write_json(catalog: &Catalog, extents: &[Extent<'_>], out: &mut impl Write) -> fmt::Result {
    let a = &catalog.appliance;
    write!(out, "{{\"format\":{},\"sha256\":", crate::FORMAT_VERSION)?;
    hex(out, &catalog.payload_sha256)?;
    out.write_str(",\"appliance\":{\"name\":")?;
    string(out, &a.name)?;
    write!(out, ",\"version\":\"{}\"}}", a.version)?;
    write!(
        out,
        ",\"machine\":{{\"memory_mib\":{},\"cpus\":{},\"runtime_mib\":{}}}",
        a.machine.memory_mib, a.machine.cpus, a.runtime_mib
    )?;
    out.write_str(",\"partitions\":[")?;
    for (i, p) in a.partitions.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        out.write_str("{\"name\":")?;
        string(out, &p.name)?;
        write!(
            out,
            ",\"memory_mib\":{},\"cpus\":{},\"disk_mib\":{},\"labels\":",
            p.memory_mib, p.cpus, p.disk_mib
        )?;
        strings(out, p.labels.iter().map(|l| l.as_str()))?;
        out.write_str(",\"disk\":")?;
        match extents.iter().find(|e| e.partition == p.name) {
            Some(e) => write!(
                out,
                "{{\"first_lba\":{},\"sectors\":{}}}",
                e.first_lba, e.sectors
            )?,
            None => out.write_str("null")?,
        }
        out.write_char('}')?;
    }
    out.write_str("],\"keys\":[")?;
    for (i, k) in catalog.keys.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        out.write_str("{\"file\":")?;
        string(out, &k.file)?;
        out.write_str(",\"ed25519\":")?;
        hex(out, &k.key.0)?;
        out.write_char('}')?;
    }
    out.write_str("],\"agents\":[")?;
    for (i, ag) in catalog.agents.iter().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        let m = &ag.manifest;
        out.write_str("{\"name\":")?;
        string(out, &m.name)?;
        write!(out, ",\"version\":\"{}\",\"file\":", m.version)?;
        string(out, &ag.file)?;
        write!(out, ",\"bytes\":{},\"sha256\":", ag.bytes)?;
        hex(out, &ag.sha256)?;
        out.write_str(",\"signer\":")?;
        hex(out, &ag.signer.0)?;
        out.write_str(",\"entry\":")?;
        string(out, &m.entry)?;
        out.write_str(",\"devices\":")?;
        strings(out, m.devices.iter().map(|d| d.as_str()))?;
        let r = &m.resources;
        write!(
            out,
            ",\"resources\":{{\"cpu\":{{\"average_percent\":{},\"peak_percent\":{}}},\
             \"memory\":{{\"average_mib\":{},\"peak_mib\":{}}}",
            r.cpu.average_percent, r.cpu.peak_percent, r.memory.average_mib, r.memory.peak_mib
        )?;
        match &r.disk {
            Some(d) => write!(
                out,
                ",\"disk\":{{\"average_bytes_per_sec\":{},\"peak_bytes_per_sec\":{},\
                 \"average_iops\":{},\"peak_iops\":{}}}",
                d.average_bytes_per_sec, d.peak_bytes_per_sec, d.average_iops, d.peak_iops
            )?,
            None => out.write_str(",\"disk\":null")?,
        }
        match &r.network {
            Some(n) => write!(
                out,
                ",\"network\":{{\"average_bytes_per_sec\":{},\"peak_bytes_per_sec\":{}}}",
                n.average_bytes_per_sec, n.peak_bytes_per_sec
            )?,
            None => out.write_str(",\"network\":null")?,
        }
        out.write_str("}}")?;
    }
    out.write_str("],\"policy_files\":")?;
    strings(out, a.policies.iter().map(|p| p.value.as_str()))?;
    out.write_str(",\"policies\":")?;
    catalog.policies.write_json(out)?;
    out.write_char('}')
}
