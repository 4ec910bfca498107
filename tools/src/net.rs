//! `plinth net`: the runtime's 802.1Q bridge, as `GET /api/v1/network` shows it.
//!
//! Owns the human form of [`NetworkView`]: a summary line, then tables of the VLANs,
//! the bridge ports, the MAC table and the VLAN pools. The document's shape is
//! `plinth-control`'s (read strictly: a missing field is an error naming it), the
//! request `plinth::api`'s; nothing here decides a value.

use plinth_control::views::{BridgePortView, DropCount, MacView, NetworkView, PoolView, VlanView};

use crate::text::{format_bytes, table};

/// Where the bridge is served.
pub const PATH: &str = "/api/v1/network";

/// The whole document, sections apart by blank lines.
pub fn format_network(n: &NetworkView) -> String {
    let untagged = if n.native_vlan_untagged {
        "native VLAN untagged on trunks"
    } else {
        "native VLAN tagged on trunks"
    };
    let uplink = match &n.uplink {
        Some(u) => format!(
            "uplink {} ({}), tagged VLANs {}",
            u.name,
            u.mac,
            vid_list(&u.allowed)
        ),
        None => String::from("no uplink"),
    };
    [
        format!("bridge: {untagged}; {uplink}"),
        format_vlans(&n.vlans),
        format_ports(&n.ports),
        format_macs(&n.macs),
        format_pools(&n.pools),
    ]
    .join("\n\n")
}

/// `VLAN TENANT POOL FRAMES BYTES FLOODED MACS DROPS PORTS`, one VLAN a row.
pub fn format_vlans(vlans: &[VlanView]) -> String {
    if vlans.is_empty() {
        return String::from("no VLANs");
    }
    let header = [
        "VLAN", "TENANT", "POOL", "FRAMES", "BYTES", "FLOODED", "MACS", "DROPS", "PORTS",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    for v in vlans {
        rows.push(vec![
            vid(v.vid),
            or_dash(v.tenant.as_deref()),
            or_dash(v.pool.as_deref()),
            v.frames.to_string(),
            format_bytes(v.bytes),
            v.flooded.to_string(),
            v.macs.to_string(),
            drops(&v.drops),
            if v.ports.is_empty() {
                String::from("-")
            } else {
                v.ports.join(", ")
            },
        ]);
    }
    table(&rows)
}

/// `PORT KIND MODE VLAN TAGGED MAC RX TX DROPS`, one port a row; RX and TX are the
/// bridge's (what came in from the port, what went out to it), frames and bytes.
pub fn format_ports(ports: &[BridgePortView]) -> String {
    if ports.is_empty() {
        return String::from("no ports");
    }
    let header = [
        "PORT", "KIND", "MODE", "VLAN", "TAGGED", "MAC", "RX", "TX", "DROPS",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    for p in ports {
        rows.push(vec![
            p.name.clone(),
            p.kind.to_string(),
            p.mode.to_string(),
            p.vlan.map_or_else(|| vid(0), vid),
            vid_list(&p.allowed),
            or_dash(p.mac.as_deref()),
            format!("{} ({})", p.rx_frames, format_bytes(p.rx_bytes)),
            format!("{} ({})", p.tx_frames, format_bytes(p.tx_bytes)),
            drops(&p.drops),
        ]);
    }
    table(&rows)
}

/// The MAC table: `VLAN MAC PORT AGE`, static entries' age as `static`.
pub fn format_macs(macs: &[MacView]) -> String {
    if macs.is_empty() {
        return String::from("MAC table empty");
    }
    let mut rows = vec![["VLAN", "MAC", "PORT", "AGE"].map(String::from).to_vec()];
    for m in macs {
        let age = if m.is_static {
            String::from("static")
        } else if m.age_ms < 1000 {
            format!("{} ms", m.age_ms)
        } else {
            format!("{:.1} s", m.age_ms as f64 / 1000.0)
        };
        rows.push(vec![vid(m.vid), m.mac.clone(), m.port.clone(), age]);
    }
    table(&rows)
}

/// `POOL RANGES IN USE`, VIDs as ranges (`100-199, 300`).
pub fn format_pools(pools: &[PoolView]) -> String {
    if pools.is_empty() {
        return String::from("no VLAN pools");
    }
    let mut rows = vec![["POOL", "RANGES", "IN USE"].map(String::from).to_vec()];
    for p in pools {
        let ranges: Vec<String> = p.ranges.iter().map(|&(a, b)| range(a, b)).collect();
        rows.push(vec![
            p.name.clone(),
            if ranges.is_empty() {
                String::from("-")
            } else {
                ranges.join(", ")
            },
            vid_list(&p.in_use),
        ]);
    }
    table(&rows)
}

/// A VID, the native VLAN (0) as `native`.
fn vid(vid: u16) -> String {
    if vid == 0 {
        String::from("native")
    } else {
        vid.to_string()
    }
}

/// `first-last`, or `first` alone when they are one.
fn range(first: u16, last: u16) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

/// VIDs with runs of consecutive ones as ranges, in the order given (`100-102, 105`);
/// none as `-`. A pool's VIDs in use can be thousands.
fn vid_list(vids: &[u16]) -> String {
    let mut runs: Vec<(u16, u16)> = Vec::new();
    for &v in vids {
        match runs.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(v) => *last = v,
            _ => runs.push((v, v)),
        }
    }
    if runs.is_empty() {
        return String::from("-");
    }
    let parts: Vec<String> = runs.iter().map(|&(a, b)| range(a, b)).collect();
    parts.join(", ")
}

/// Drop counts that are not zero, `reason count` (`rate_limited 3, queue_full 1`); none
/// as `-`.
fn drops(list: &[DropCount]) -> String {
    let parts: Vec<String> = list
        .iter()
        .filter(|d| d.count > 0)
        .map(|d| format!("{} {}", d.reason, d.count))
        .collect();
    if parts.is_empty() {
        String::from("-")
    } else {
        parts.join(", ")
    }
}

fn or_dash(s: Option<&str>) -> String {
    s.unwrap_or("-").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plinth_control::views::View;

    /// A bridge as the runtime writes it: an uplink trunk, the management port, two
    /// NICs, the native VLAN and a tenant's VLAN from a pool, learned and static MACs.
    const NETWORK: &str = concat!(
        r#"{"native_vlan_untagged":true,"#,
        r#""uplink":{"name":"uplink","mac":"52:54:00:12:34:56","allowed":[100,101,102,200]},"#,
        r#""vlans":[{"vid":0,"tenant":null,"pool":null,"ports":["uplink","mgmt","mgmt/0"],"#,
        r#""frames":1200,"bytes":150000,"flooded":40,"macs":3,"drops":[]},"#,
        r#"{"vid":100,"tenant":"acme","pool":"tenants","ports":["uplink","tenant-a/3"],"#,
        r#""frames":30,"bytes":4096,"flooded":2,"macs":1,"drops":[{"reason":"rate_limited","count":3}]}],"#,
        r#""ports":[{"name":"uplink","kind":"uplink","mode":"trunk","vlan":null,"allowed":[100,101,102,200],"mac":null,"#,
        r#""rx_frames":700,"rx_bytes":90000,"tx_frames":530,"tx_bytes":64096,"drops":[{"reason":"vlan_not_allowed","count":5}]},"#,
        r#"{"name":"mgmt","kind":"management","mode":"access","vlan":null,"allowed":[],"mac":"52:54:00:12:34:56","#,
        r#""rx_frames":480,"rx_bytes":58500,"tx_frames":490,"tx_bytes":60000,"drops":[]},"#,
        r#"{"name":"mgmt/0","kind":"nic","mode":"access","vlan":null,"allowed":[],"mac":"02:00:00:00:01:00","#,
        r#""rx_frames":12,"rx_bytes":1500,"tx_frames":10,"tx_bytes":1200,"drops":[]},"#,
        r#"{"name":"tenant-a/3","kind":"nic","mode":"access","vlan":100,"allowed":[],"mac":"02:00:00:00:02:03","#,
        r#""rx_frames":8,"rx_bytes":4096,"tx_frames":0,"tx_bytes":0,"#,
        r#""drops":[{"reason":"rate_limited","count":3},{"reason":"queue_full","count":0}]}],"#,
        r#""macs":[{"vid":0,"mac":"02:00:00:00:01:00","port":"mgmt/0","age_ms":0,"is_static":true},"#,
        r#"{"vid":0,"mac":"52:54:00:12:34:02","port":"uplink","age_ms":1500,"is_static":false},"#,
        r#"{"vid":100,"mac":"52:54:00:12:34:03","port":"uplink","age_ms":20,"is_static":false}],"#,
        r#""pools":[{"name":"tenants","ranges":[[100,199],[300,300]],"in_use":[100,101,102,105]},"#,
        r#"{"name":"spare","ranges":[],"in_use":[]}]}"#
    );

    fn network() -> NetworkView {
        NetworkView::from_json(NETWORK.as_bytes()).unwrap()
    }

    #[test]
    fn the_bridge_prints_as_tables() {
        assert_eq!(
            format_network(&network()),
            "bridge: native VLAN untagged on trunks; uplink uplink (52:54:00:12:34:56), \
             tagged VLANs 100-102, 200\n\
             \n\
             VLAN    TENANT  POOL     FRAMES  BYTES      FLOODED  MACS  DROPS           PORTS\n\
             native  -       -        1200    146.5 KiB  40       3     -               uplink, mgmt, mgmt/0\n\
             100     acme    tenants  30      4 KiB      2        1     rate_limited 3  uplink, tenant-a/3\n\
             \n\
             PORT        KIND        MODE    VLAN    TAGGED        MAC                RX              \
             TX              DROPS\n\
             uplink      uplink      trunk   native  100-102, 200  -                  700 (87.9 KiB)  \
             530 (62.6 KiB)  vlan_not_allowed 5\n\
             mgmt        management  access  native  -             52:54:00:12:34:56  480 (57.1 KiB)  \
             490 (58.6 KiB)  -\n\
             mgmt/0      nic         access  native  -             02:00:00:00:01:00  12 (1.5 KiB)    \
             10 (1.2 KiB)    -\n\
             tenant-a/3  nic         access  100     -             02:00:00:00:02:03  8 (4 KiB)       \
             0 (0 B)         rate_limited 3\n\
             \n\
             VLAN    MAC                PORT    AGE\n\
             native  02:00:00:00:01:00  mgmt/0  static\n\
             native  52:54:00:12:34:02  uplink  1.5 s\n\
             100     52:54:00:12:34:03  uplink  20 ms\n\
             \n\
             POOL     RANGES        IN USE\n\
             tenants  100-199, 300  100-102, 105\n\
             spare    -             -"
        );
    }

    #[test]
    fn an_empty_bridge_says_so() {
        let bare = r#"{"native_vlan_untagged":true,"uplink":null,"vlans":[],"ports":[],"macs":[],"pools":[]}"#;
        assert_eq!(
            format_network(&NetworkView::from_json(bare.as_bytes()).unwrap()),
            "bridge: native VLAN untagged on trunks; no uplink\n\nno VLANs\n\nno ports\n\n\
             MAC table empty\n\nno VLAN pools"
        );
    }

    #[test]
    fn vid_lists_fold_runs() {
        assert_eq!(vid_list(&[]), "-");
        assert_eq!(vid_list(&[7]), "7");
        assert_eq!(vid_list(&[1, 2, 3, 5, 7, 8]), "1-3, 5, 7-8");
        assert_eq!(vid_list(&[4094, 4095, 65535]), "4094-4095, 65535");
        // Out of order stays as sent.
        assert_eq!(vid_list(&[3, 2, 1]), "3, 2, 1");
        let all: Vec<u16> = (1..=4094).collect();
        assert_eq!(vid_list(&all), "1-4094");
    }

    #[test]
    fn a_document_without_a_field_is_refused_by_name() {
        let e =
            NetworkView::from_json(NETWORK.replace(r#""flooded":40,"#, "").as_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("malformed network: missing field `flooded`"),
            "{e}"
        );
        // A newer runtime's port kinds and fields print as sent.
        let newer = NETWORK
            .replace(r#""kind":"management""#, r#""kind":"tunnel""#)
            .replace(
                r#""native_vlan_untagged":true,"#,
                r#""native_vlan_untagged":true,"stp":"off","#,
            );
        let text = format_network(&NetworkView::from_json(newer.as_bytes()).unwrap());
        assert!(
            text.contains("\nmgmt        tunnel  access  native"),
            "{text}"
        );
    }
}
