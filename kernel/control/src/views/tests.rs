//! The views against the JSON the runtime wrote by hand before it wrote these views (the
//! fixtures are what `kernel/src/mgmt/partitions.rs` and `routes.rs` produced with
//! `plinth_http::json::Writer`, byte for byte, but for the partitions' `nics` and the
//! network, which came after the views and are written only by them), error bodies
//! against `plinth-http`'s,
//! which still writes them; and the reading rules: required fields named when missing,
//! optional ones tolerated, unknown fields and names ignored or kept, wrong types
//! refused.

extern crate std;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};

use plinth_testrng::Rng;
use serde_json::Value;

use super::*;

// --- Fixtures: as the runtime writes them -------------------------------------------

/// A running partition: an agent running (task, CPU time and system calls present) and
/// one that ended with an exit code; a NIC on the native VLAN without rate limits.
const PARTITION_RUNNING: &str = concat!(
    r#"{"id":1,"name":"mgmt","state":"running","tenant":null,"labels":["management"],"#,
    r#""memory":{"quota_bytes":33554432,"used_bytes":495616,"peak_bytes":495616,"page_table_bytes":24576},"#,
    r#""disk":{"first_lba":4096,"sectors":16384,"usage":{"reads":7,"read_bytes":28672,"writes":3,"#,
    r#""written_bytes":1536,"throttled":2,"throttled_ns":5000000},"waiting":1,"#,
    r#""rate":{"iops":100,"iops_burst":200,"bytes_per_sec":null,"bytes_burst":null}},"agents":["#,
    r#"{"name":"hello","version":"0.1.0","status":"running","task":1,"cpu_ns":123456,"syscalls":5,"#,
    r#""restarts":0,"heartbeats":3,"last_heartbeat_ms_ago":200,"cpu":{"weight":50,"cap_percent":20},"#,
    r#""disk":{"reads":0,"read_bytes":0,"writes":0,"written_bytes":0,"throttled":0,"throttled_ns":0}},"#,
    r#"{"name":"scrubber","version":"1.2.3","status":"ended","exit_code":-1,"restarts":2,"#,
    r#""heartbeats":0,"last_heartbeat_ms_ago":null,"cpu":{"weight":100,"cap_percent":null},"#,
    r#""disk":{"reads":7,"read_bytes":28672,"writes":3,"written_bytes":1536,"throttled":2,"throttled_ns":5000000}}],"#,
    r#""nics":[{"index":0,"mac":"02:00:00:00:01:00","port":"mgmt/0","vlan":null,"tenant":null,"#,
    r#""rx_frames":10,"rx_bytes":1200,"tx_frames":12,"tx_bytes":1500,"drops":0,"queued":0,"rate":null}]}"#
);

/// A stopped partition with a tenant, no labels, no disk, and agents in the other
/// states: stopped, backoff, quarantined, ended after a fault (no exit code), and
/// running without the scheduler's or the task's figures; no NIC 0, NIC 3 on the
/// tenant's VLAN with a byte rate limit and frames queued.
const PARTITION_STOPPED: &str = concat!(
    r#"{"id":2,"name":"tenant-a","state":"stopped","tenant":"acme","labels":[],"#,
    r#""memory":{"quota_bytes":67108864,"used_bytes":0,"peak_bytes":8192,"page_table_bytes":0},"#,
    r#""disk":null,"agents":["#,
    r#"{"name":"pinger","version":"0.2.0","status":"stopped","restarts":0,"heartbeats":0,"#,
    r#""last_heartbeat_ms_ago":null,"cpu":{"weight":100,"cap_percent":null},"#,
    r#""disk":{"reads":0,"read_bytes":0,"writes":0,"written_bytes":0,"throttled":0,"throttled_ns":0}},"#,
    r#"{"name":"crasher","version":"0.1.0","status":"backoff","restarts":1,"heartbeats":0,"#,
    r#""last_heartbeat_ms_ago":null,"cpu":{"weight":1,"cap_percent":12.5},"#,
    r#""disk":{"reads":0,"read_bytes":0,"writes":0,"written_bytes":0,"throttled":0,"throttled_ns":0}},"#,
    r#"{"name":"flaky","version":"0.1.0","status":"quarantined","restarts":3,"heartbeats":7,"#,
    r#""last_heartbeat_ms_ago":91234,"cpu":{"weight":10000,"cap_percent":100},"#,
    r#""disk":{"reads":0,"read_bytes":0,"writes":0,"written_bytes":0,"throttled":0,"throttled_ns":0}},"#,
    r#"{"name":"faulty","version":"0.1.0","status":"ended","restarts":0,"heartbeats":0,"#,
    r#""last_heartbeat_ms_ago":null,"cpu":{"weight":100,"cap_percent":33.333333},"#,
    r#""disk":{"reads":0,"read_bytes":0,"writes":0,"written_bytes":0,"throttled":0,"throttled_ns":0}},"#,
    r#"{"name":"fresh","version":"0.1.0","status":"running","task":9,"restarts":0,"heartbeats":0,"#,
    r#""last_heartbeat_ms_ago":null,"cpu":{"weight":100,"cap_percent":null},"#,
    r#""disk":{"reads":0,"read_bytes":0,"writes":0,"written_bytes":0,"throttled":0,"throttled_ns":0}}],"#,
    r#""nics":[{"index":3,"mac":"02:00:00:00:02:03","port":"tenant-a/3","vlan":100,"tenant":"acme","#,
    r#""rx_frames":0,"rx_bytes":0,"tx_frames":18446744073709551615,"tx_bytes":4096,"drops":3,"queued":2,"#,
    r#""rate":{"bytes_per_sec":1048576,"bytes_burst":2097152,"packets_per_sec":null,"packets_burst":null}}]}"#
);

fn partition_running() -> PartitionView {
    PartitionView {
        id: 1,
        name: "mgmt".into(),
        state: PartitionState::Running,
        tenant: None,
        labels: vec!["management".into()],
        memory: MemoryView {
            quota_bytes: 32 << 20,
            used_bytes: 495_616,
            peak_bytes: 495_616,
            page_table_bytes: 24_576,
            high_bytes: None,
        },
        disk: Some(DiskView {
            first_lba: 4096,
            sectors: 16_384,
            usage: scrubbed(),
            waiting: 1,
            rate: Some(DiskRateView {
                iops: Some(100),
                iops_burst: Some(200),
                ..DiskRateView::default()
            }),
        }),
        agents: vec![
            AgentView {
                name: "hello".into(),
                version: "0.1.0".into(),
                status: AgentState::Running,
                task: Some(1),
                cpu_ns: Some(123_456),
                syscalls: Some(5),
                exit_code: None,
                restarts: 0,
                heartbeats: 3,
                last_heartbeat_ms_ago: Some(200),
                cpu: CpuView::new(50, Some((20_000_000, 100_000_000))),
                disk: DiskUsageView::default(),
            },
            AgentView {
                name: "scrubber".into(),
                version: "1.2.3".into(),
                status: AgentState::Ended,
                task: None,
                cpu_ns: None,
                syscalls: None,
                exit_code: Some(-1),
                restarts: 2,
                heartbeats: 0,
                last_heartbeat_ms_ago: None,
                cpu: CpuView::new(100, None),
                disk: scrubbed(),
            },
        ],
        nics: vec![NicView {
            index: 0,
            mac: mac_string([2, 0, 0, 0, 1, 0]),
            port: "mgmt/0".into(),
            vlan: None,
            tenant: None,
            rx_frames: 10,
            rx_bytes: 1200,
            tx_frames: 12,
            tx_bytes: 1500,
            drops: 0,
            queued: 0,
            rate: None,
        }],
    }
}

/// What the running partition's scrubber did with its disk.
fn scrubbed() -> DiskUsageView {
    DiskUsageView {
        reads: 7,
        read_bytes: 28_672,
        writes: 3,
        written_bytes: 1536,
        throttled: 2,
        throttled_ns: 5_000_000,
    }
}

fn agent(name: &str, status: AgentState, cpu: CpuView) -> AgentView {
    AgentView {
        name: name.into(),
        version: "0.1.0".into(),
        status,
        task: None,
        cpu_ns: None,
        syscalls: None,
        exit_code: None,
        restarts: 0,
        heartbeats: 0,
        last_heartbeat_ms_ago: None,
        cpu,
        disk: DiskUsageView::default(),
    }
}

fn partition_stopped() -> PartitionView {
    let uncapped = CpuView::new(100, None);
    PartitionView {
        id: 2,
        name: "tenant-a".into(),
        state: PartitionState::Stopped,
        tenant: Some("acme".into()),
        labels: vec![],
        memory: MemoryView {
            quota_bytes: 64 << 20,
            used_bytes: 0,
            peak_bytes: 8192,
            page_table_bytes: 0,
            high_bytes: None,
        },
        disk: None,
        agents: vec![
            AgentView {
                version: "0.2.0".into(),
                ..agent("pinger", AgentState::Stopped, uncapped)
            },
            AgentView {
                restarts: 1,
                ..agent(
                    "crasher",
                    AgentState::Backoff,
                    CpuView::new(1, Some((12_500_000, 100_000_000))),
                )
            },
            AgentView {
                restarts: 3,
                heartbeats: 7,
                last_heartbeat_ms_ago: Some(91_234),
                ..agent(
                    "flaky",
                    AgentState::Quarantined,
                    CpuView::new(10_000, Some((100_000_000, 100_000_000))),
                )
            },
            agent(
                "faulty",
                AgentState::Ended,
                CpuView::new(100, Some((33_333_333, 100_000_000))),
            ),
            AgentView {
                task: Some(9),
                ..agent("fresh", AgentState::Running, uncapped)
            },
        ],
        nics: vec![NicView {
            index: 3,
            mac: "02:00:00:00:02:03".into(),
            port: "tenant-a/3".into(),
            vlan: Some(100),
            tenant: Some("acme".into()),
            rx_frames: 0,
            rx_bytes: 0,
            tx_frames: u64::MAX,
            tx_bytes: 4096,
            drops: 3,
            queued: 2,
            rate: Some(NetRateView {
                bytes_per_sec: Some(1 << 20),
                bytes_burst: Some(2 << 20),
                ..NetRateView::default()
            }),
        }],
    }
}

fn list_json() -> String {
    format!(
        r#"{{"partitions":[{PARTITION_RUNNING},{PARTITION_STOPPED}],"uptime_ns":5000000000,"agents_busy_ns":123456789}}"#
    )
}

fn list() -> PartitionList {
    PartitionList {
        partitions: vec![partition_running(), partition_stopped()],
        uptime_ns: 5_000_000_000,
        agents_busy_ns: 123_456_789,
    }
}

const EMPTY_LIST: &str = r#"{"partitions":[],"uptime_ns":1,"agents_busy_ns":0}"#;

const TERMINATED: &str = r#"{"terminated":"mgmt","frames_returned":2048}"#;

/// Every kind of event, as `events_json` writes them.
const EVENT_OBJECTS: [&str; 9] = [
    r#"{"seq":1,"time_ms":512.25,"partition":"mgmt","agent":null,"kind":"partition_created"}"#,
    r#"{"seq":2,"time_ms":513.5,"partition":"mgmt","agent":"hello","kind":"agent_started","task":1}"#,
    r#"{"seq":3,"time_ms":600,"partition":"mgmt","agent":"big","kind":"agent_failed_to_start","error":"memory quota exceeded"}"#,
    r#"{"seq":4,"time_ms":1.234567,"partition":"mgmt","agent":"hello","kind":"agent_exited","code":-3}"#,
    r#"{"seq":5,"time_ms":2000.000001,"partition":"p","agent":"hostile","kind":"agent_faulted","vector":14,"exception":"page fault","rip":549755818112,"error_code":6,"address":0}"#,
    r#"{"seq":6,"time_ms":2001,"partition":"p","agent":"hostile","kind":"agent_faulted","vector":6,"exception":"invalid opcode","rip":549755818200,"error_code":0,"address":null}"#,
    r#"{"seq":7,"time_ms":2002,"partition":"p","agent":"hostile","kind":"restart_scheduled","attempt":1,"delay_ms":200}"#,
    r#"{"seq":8,"time_ms":3000,"partition":"p","agent":"hostile","kind":"quarantined","restarts":3,"window_secs":60}"#,
    r#"{"seq":9,"time_ms":3000,"partition":"p","agent":"hostile","kind":"alert","reason":"agent hostile quarantined after 3 restarts in 60 s"}"#,
];

fn events_json() -> String {
    format!(r#"{{"events":[{}],"last_seq":9}}"#, EVENT_OBJECTS.join(","))
}

fn events() -> EventList {
    let ms = 1_000_000;
    let e = |seq, ns, p: &str, a: Option<&str>, kind| EventView::new(seq, ns, p, a, kind);
    EventList {
        events: vec![
            e(1, 512_250_000, "mgmt", None, EventKind::PartitionCreated),
            e(
                2,
                513_500_000,
                "mgmt",
                Some("hello"),
                EventKind::AgentStarted { task: 1 },
            ),
            e(
                3,
                600 * ms,
                "mgmt",
                Some("big"),
                EventKind::AgentFailedToStart {
                    error: "memory quota exceeded".into(),
                },
            ),
            e(
                4,
                1_234_567,
                "mgmt",
                Some("hello"),
                EventKind::AgentExited { code: -3 },
            ),
            e(
                5,
                2_000_000_001,
                "p",
                Some("hostile"),
                EventKind::AgentFaulted {
                    vector: 14,
                    exception: "page fault".into(),
                    rip: 549_755_818_112,
                    error_code: 6,
                    address: Some(0),
                },
            ),
            e(
                6,
                2001 * ms,
                "p",
                Some("hostile"),
                EventKind::AgentFaulted {
                    vector: 6,
                    exception: "invalid opcode".into(),
                    rip: 549_755_818_200,
                    error_code: 0,
                    address: None,
                },
            ),
            e(
                7,
                2002 * ms,
                "p",
                Some("hostile"),
                EventKind::RestartScheduled {
                    attempt: 1,
                    delay_ms: 200,
                },
            ),
            e(
                8,
                3000 * ms,
                "p",
                Some("hostile"),
                EventKind::Quarantined {
                    restarts: 3,
                    window_secs: 60,
                },
            ),
            e(
                9,
                3000 * ms,
                "p",
                Some("hostile"),
                EventKind::Alert {
                    reason: "agent hostile quarantined after 3 restarts in 60 s".into(),
                },
            ),
        ],
        last_seq: 9,
    }
}

const NO_EVENTS: &str = r#"{"events":[],"last_seq":42}"#;

/// A status with a verified catalog, a bound and an unbound PCI function, a NIC with a
/// DHCP address, one disk.
const STATUS: &str = concat!(
    r#"{"version":"0.1.0","uptime_ms":5123,"cpus":1,"#,
    r#""memory":{"total_bytes":134217728,"free_bytes":100663296,"usable_frame_bytes":130023424,"heap_used_bytes":1048576,"heap_bytes":16777216},"#,
    r#""devices":[{"pci":"00:00.0","vendor_id":"8086","device_id":"29c0","class":"0600","driver":null},"#,
    r#"{"pci":"00:02.0","vendor_id":"1af4","device_id":"1041","class":"0200","driver":"virtio-net"}],"#,
    r#""nics":[{"name":"virtio-net","location":"00:02.0","mac":"52:54:00:12:34:56","ipv4":"10.0.2.15/24","gateway":"10.0.2.2","address_source":"dhcp"}],"#,
    r#""catalog":{"state":"verified","disk":"vda","partitions":3,"agents":4},"#,
    r#""disks":[{"name":"vda","location":"00:03.0","sectors":262144,"capacity_bytes":134217728,"serial":"plinth-disk0"}]}"#
);

fn status() -> Status {
    /// A PCI location as the runtime displays it.
    struct Loc(u8, u8, u8);
    impl fmt::Display for Loc {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:02x}:{:02x}.{}", self.0, self.1, self.2)
        }
    }
    Status {
        version: "0.1.0".into(),
        uptime_ms: 5123,
        cpus: 1,
        memory: RuntimeMemory {
            total_bytes: 128 << 20,
            free_bytes: 96 << 20,
            usable_frame_bytes: 124 << 20,
            heap_used_bytes: 1 << 20,
            heap_bytes: 16 << 20,
        },
        devices: vec![
            PciFunctionView::new(Loc(0, 0, 0), 0x8086, 0x29c0, 6, 0, None),
            PciFunctionView::new(Loc(0, 2, 0), 0x1af4, 0x1041, 2, 0, Some("virtio-net")),
        ],
        nics: vec![HostNicView::new(
            "virtio-net",
            "00:02.0",
            [0x52, 0x54, 0, 0x12, 0x34, 0x56],
            Some("10.0.2.15/24"),
            Some("10.0.2.2"),
            AddressSource::Dhcp,
        )],
        catalog: CatalogSummary::Verified {
            disk: "vda".into(),
            partitions: 3,
            agents: 4,
        },
        disks: vec![BlockDiskView::new(
            "vda",
            "00:03.0",
            262_144,
            "plinth-disk0",
        )],
    }
}

/// The same runtime before DHCP answered, with a static-address profile's NIC fields,
/// and each catalog state that carries no details.
fn status_bare(catalog: &str) -> String {
    format!(
        concat!(
            r#"{{"version":"0.2.0-dev","uptime_ms":0,"cpus":2,"#,
            r#""memory":{{"total_bytes":1,"free_bytes":0,"usable_frame_bytes":0,"heap_used_bytes":0,"heap_bytes":0}},"#,
            r#""devices":[],"#,
            r#""nics":[{{"name":"n","location":"mmio@0xfeb00000","mac":"00:00:00:00:00:0a","ipv4":null,"gateway":null,"address_source":"static"}}],"#,
            r#""catalog":{{"state":"{}"}},"disks":[]}}"#
        ),
        catalog
    )
}

fn status_bare_view(catalog: CatalogSummary) -> Status {
    Status {
        version: "0.2.0-dev".into(),
        uptime_ms: 0,
        cpus: 2,
        memory: RuntimeMemory {
            total_bytes: 1,
            ..RuntimeMemory::default()
        },
        devices: vec![],
        nics: vec![HostNicView::new(
            "n",
            "mmio@0xfeb00000",
            [0, 0, 0, 0, 0, 10],
            None::<&str>,
            None::<&str>,
            AddressSource::Static,
        )],
        catalog,
        disks: vec![],
    }
}

/// The bridge with an uplink trunk, the management port and two NICs, the native VLAN
/// and a tenant's VLAN from a pool, learned and static MAC table entries, drops.
const NETWORK: &str = concat!(
    r#"{"native_vlan_untagged":true,"#,
    r#""uplink":{"name":"uplink","mac":"52:54:00:12:34:56","allowed":[100,101]},"#,
    r#""vlans":[{"vid":0,"tenant":null,"pool":null,"ports":["uplink","mgmt","mgmt/0"],"#,
    r#""frames":1200,"bytes":150000,"flooded":40,"macs":3,"drops":[]},"#,
    r#"{"vid":100,"tenant":"acme","pool":"tenants","ports":["uplink","tenant-a/3"],"#,
    r#""frames":30,"bytes":4096,"flooded":2,"macs":1,"drops":[{"reason":"rate_limited","count":3}]}],"#,
    r#""ports":[{"name":"uplink","kind":"uplink","mode":"trunk","vlan":null,"allowed":[100,101],"mac":null,"#,
    r#""rx_frames":700,"rx_bytes":90000,"tx_frames":530,"tx_bytes":64096,"drops":[{"reason":"vlan_not_allowed","count":5}],"offload":[]},"#,
    r#"{"name":"mgmt","kind":"management","mode":"access","vlan":null,"allowed":[],"mac":"52:54:00:12:34:56","#,
    r#""rx_frames":480,"rx_bytes":58500,"tx_frames":490,"tx_bytes":60000,"drops":[],"offload":[]},"#,
    r#"{"name":"mgmt/0","kind":"nic","mode":"access","vlan":null,"allowed":[],"mac":"02:00:00:00:01:00","#,
    r#""rx_frames":12,"rx_bytes":1500,"tx_frames":10,"tx_bytes":1200,"drops":[],"offload":[]},"#,
    r#"{"name":"tenant-a/3","kind":"nic","mode":"access","vlan":100,"allowed":[],"mac":"02:00:00:00:02:03","#,
    r#""rx_frames":18446744073709551615,"rx_bytes":4096,"tx_frames":0,"tx_bytes":0,"#,
    r#""drops":[{"reason":"rate_limited","count":3},{"reason":"queue_full","count":0}],"offload":["rx","tx"]}],"#,
    r#""macs":[{"vid":0,"mac":"02:00:00:00:01:00","port":"mgmt/0","age_ms":0,"is_static":true},"#,
    r#"{"vid":0,"mac":"52:54:00:12:34:02","port":"uplink","age_ms":1500,"is_static":false},"#,
    r#"{"vid":100,"mac":"02:00:00:00:02:03","port":"tenant-a/3","age_ms":0,"is_static":true}],"#,
    r#""pools":[{"name":"tenants","ranges":[[100,199],[300,300]],"in_use":[100]}]}"#
);

/// A bridge without an uplink, VLANs or pools.
const NETWORK_BARE: &str =
    r#"{"native_vlan_untagged":true,"uplink":null,"vlans":[],"ports":[],"macs":[],"pools":[]}"#;

fn drops(list: &[(&str, u64)]) -> Vec<DropCount> {
    list.iter()
        .map(|(reason, count)| DropCount {
            reason: (*reason).into(),
            count: *count,
        })
        .collect()
}

fn network() -> NetworkView {
    let port = |name: &str, kind, mode, vlan, mac: Option<[u8; 6]>| BridgePortView {
        name: String::from(name),
        kind,
        mode,
        vlan,
        allowed: vec![],
        mac: mac.map(mac_string),
        rx_frames: 0,
        rx_bytes: 0,
        tx_frames: 0,
        tx_bytes: 0,
        drops: vec![],
        offload: vec![],
    };
    let mac = |vid, mac: &str, port: &str, age_ms, is_static| MacView {
        vid,
        mac: mac.into(),
        port: port.into(),
        age_ms,
        is_static,
    };
    NetworkView {
        native_vlan_untagged: true,
        uplink: Some(UplinkView {
            name: "uplink".into(),
            mac: "52:54:00:12:34:56".into(),
            allowed: vec![100, 101],
        }),
        vlans: vec![
            VlanView {
                vid: 0,
                tenant: None,
                pool: None,
                ports: vec!["uplink".into(), "mgmt".into(), "mgmt/0".into()],
                frames: 1200,
                bytes: 150_000,
                flooded: 40,
                macs: 3,
                drops: vec![],
            },
            VlanView {
                vid: 100,
                tenant: Some("acme".into()),
                pool: Some("tenants".into()),
                ports: vec!["uplink".into(), "tenant-a/3".into()],
                frames: 30,
                bytes: 4096,
                flooded: 2,
                macs: 1,
                drops: drops(&[("rate_limited", 3)]),
            },
        ],
        ports: vec![
            BridgePortView {
                allowed: vec![100, 101],
                rx_frames: 700,
                rx_bytes: 90_000,
                tx_frames: 530,
                tx_bytes: 64_096,
                drops: drops(&[("vlan_not_allowed", 5)]),
                ..port("uplink", PortKind::Uplink, PortMode::Trunk, None, None)
            },
            BridgePortView {
                rx_frames: 480,
                rx_bytes: 58_500,
                tx_frames: 490,
                tx_bytes: 60_000,
                ..port(
                    "mgmt",
                    PortKind::Management,
                    PortMode::Access,
                    None,
                    Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                )
            },
            BridgePortView {
                rx_frames: 12,
                rx_bytes: 1500,
                tx_frames: 10,
                tx_bytes: 1200,
                ..port(
                    "mgmt/0",
                    PortKind::Nic,
                    PortMode::Access,
                    None,
                    Some([2, 0, 0, 0, 1, 0]),
                )
            },
            BridgePortView {
                rx_frames: u64::MAX,
                rx_bytes: 4096,
                drops: drops(&[("rate_limited", 3), ("queue_full", 0)]),
                offload: vec![String::from("rx"), String::from("tx")],
                ..port(
                    "tenant-a/3",
                    PortKind::Nic,
                    PortMode::Access,
                    Some(100),
                    Some([2, 0, 0, 0, 2, 3]),
                )
            },
        ],
        macs: vec![
            mac(0, "02:00:00:00:01:00", "mgmt/0", 0, true),
            mac(0, "52:54:00:12:34:02", "uplink", 1500, false),
            mac(100, "02:00:00:00:02:03", "tenant-a/3", 0, true),
        ],
        pools: vec![PoolView {
            name: "tenants".into(),
            ranges: vec![(100, 199), (300, 300)],
            in_use: vec![100],
        }],
    }
}

fn network_bare() -> NetworkView {
    NetworkView {
        native_vlan_untagged: true,
        uplink: None,
        vlans: vec![],
        ports: vec![],
        macs: vec![],
        pools: vec![],
    }
}

const HEALTH: &str = r#"{"status":"ok"}"#;
const ERROR: &str = r#"{"error":"no such partition","status":404}"#;

// --- Helpers --------------------------------------------------------------------------

#[track_caller]
fn read<T: View>(json: &str) -> T {
    T::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{json}"))
}

/// Reads `json` into `T`, checks it equals `expected`, and that `expected` writes
/// exactly `json`.
#[track_caller]
fn same<T: View + PartialEq + fmt::Debug>(json: &str, expected: &T) {
    assert_eq!(&read::<T>(json), expected, "reading {json}");
    assert_eq!(expected.to_json(), json, "writing {expected:?}");
}

#[track_caller]
fn round_trip<T: View + PartialEq + fmt::Debug>(v: &T) {
    let json = v.to_json();
    assert!(
        !json.starts_with(r#"{"error""#) || T::WHAT == "error",
        "{json}"
    );
    assert_eq!(&read::<T>(&json), v, "{json}");
}

/// Every object key in `v`, as paths of keys and array indexes.
fn key_paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(k.clone());
                out.push(at.clone());
                key_paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(i.to_string());
                key_paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

/// `v` with the key at `path` removed.
fn without(v: &Value, path: &[String]) -> Value {
    let mut v = v.clone();
    let mut node = &mut v;
    for step in &path[..path.len() - 1] {
        node = match node {
            Value::Array(items) => &mut items[step.parse::<usize>().unwrap()],
            Value::Object(m) => m.get_mut(step).unwrap(),
            _ => unreachable!(),
        };
    }
    node.as_object_mut()
        .unwrap()
        .remove(path.last().unwrap())
        .unwrap();
    v
}

/// Adds a field no version knows to every object in `v`.
fn with_extra_fields(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for child in m.values_mut() {
                with_extra_fields(child);
            }
            m.insert(
                "zz_from_the_future".into(),
                serde_json::json!({"nested": [1, "two", null, {"x": 3.5}]}),
            );
        }
        Value::Array(items) => items.iter_mut().for_each(with_extra_fields),
        _ => {}
    }
}

/// Removes each key of `json` in turn: the keys in `optional` may be missing (the view
/// reads as if they were `null`); any other is a required field, and the error names it.
/// An entry of `optional` is a key (`tenant`: anywhere), or the keys that lead to one,
/// array indexes left out (`ports/mac`: a port's `mac`, not the uplink's).
#[track_caller]
fn check_missing_fields<T: View + fmt::Debug>(json: &str, optional: &[&str]) -> usize {
    let v: Value = serde_json::from_str(json).unwrap();
    let mut paths = Vec::new();
    key_paths(&v, &mut Vec::new(), &mut paths);
    for path in &paths {
        let key = path.last().unwrap().as_str();
        let keys: Vec<&str> = path
            .iter()
            .map(String::as_str)
            .filter(|k| k.parse::<usize>().is_err())
            .collect();
        let joined = keys.join("/");
        let is_optional = optional
            .iter()
            .any(|o| *o == key || joined == *o || joined.ends_with(&format!("/{o}")));
        let body = serde_json::to_string(&without(&v, path)).unwrap();
        let r = T::from_json(body.as_bytes());
        if is_optional {
            assert!(r.is_ok(), "without {path:?}: {r:?}");
        } else {
            let e = r.expect_err(&format!("without {path:?} it should be refused"));
            assert_eq!(e.what, T::WHAT);
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("malformed {}: missing field `{key}`", T::WHAT)),
                "without {path:?}: {message}"
            );
        }
    }
    paths.len()
}

#[track_caller]
fn tolerates_extra_fields<T: View + PartialEq + fmt::Debug>(json: &str) {
    let mut v: Value = serde_json::from_str(json).unwrap();
    with_extra_fields(&mut v);
    let body = serde_json::to_string(&v).unwrap();
    assert_eq!(read::<T>(&body), read::<T>(json), "{body}");
}

// --- Tests ----------------------------------------------------------------------------

#[test]
fn partitions_read_and_write_as_the_runtime_does() {
    same(PARTITION_RUNNING, &partition_running());
    same(PARTITION_STOPPED, &partition_stopped());
    same(&list_json(), &list());
    same(
        EMPTY_LIST,
        &PartitionList {
            partitions: vec![],
            uptime_ns: 1,
            agents_busy_ns: 0,
        },
    );
    same(
        TERMINATED,
        &Terminated {
            terminated: "mgmt".into(),
            frames_returned: 2048,
        },
    );
}

#[test]
fn events_read_and_write_as_the_runtime_does() {
    same(&events_json(), &events());
    same(
        NO_EVENTS,
        &EventList {
            events: vec![],
            last_seq: 42,
        },
    );
    // One event alone, and each kind's name as the runtime spells it.
    for (json, e) in EVENT_OBJECTS.iter().zip(events().events) {
        same(json, &e);
        assert!(json.contains(&format!(r#""kind":"{}""#, e.kind.name())));
    }
}

#[test]
fn status_and_health_read_and_write_as_the_runtime_does() {
    same(STATUS, &status());
    for (name, catalog) in [
        ("invalid", CatalogSummary::Invalid),
        ("absent", CatalogSummary::Absent),
        ("loading", CatalogSummary::Loading),
    ] {
        same(&status_bare(name), &status_bare_view(catalog));
    }
    same(HEALTH, &Health::ok());
    assert!(read::<Health>(HEALTH).is_ok());
    same(
        ERROR,
        &ErrorView {
            error: "no such partition".into(),
            status: Some(404),
        },
    );
}

#[test]
fn the_network_reads_and_writes() {
    same(NETWORK, &network());
    same(NETWORK_BARE, &network_bare());
    // The top-level arrays the tool and scripts look for.
    let v: Value = serde_json::from_str(&network().to_json()).unwrap();
    for key in ["vlans", "ports", "macs", "pools"] {
        assert!(v[key].is_array(), "{key}");
    }
    assert_eq!(
        v["pools"][0]["ranges"],
        serde_json::json!([[100, 199], [300, 300]])
    );
    // Names this version does not know are kept.
    let n = read::<NetworkView>(
        &NETWORK
            .replace(r#""kind":"management""#, r#""kind":"tunnel""#)
            .replace(r#""mode":"trunk""#, r#""mode":"hybrid""#),
    );
    assert_eq!(n.ports[1].kind, PortKind::Other("tunnel".into()));
    assert_eq!(n.ports[0].mode.as_str(), "hybrid");
    for name in PortKind::NAMES.iter().chain(PortMode::NAMES) {
        assert!(NETWORK.contains(&format!("\"{name}\"")), "{name}");
    }
    // A partition's NIC is its own document's part, and agrees with its port.
    let p = partition_stopped();
    let nic = &p.nics[0];
    let port = network()
        .ports
        .into_iter()
        .find(|b| b.name == nic.port)
        .unwrap();
    assert_eq!(
        (
            port.mac.as_deref(),
            port.vlan,
            port.rx_frames,
            nic.tx_frames
        ),
        (Some(nic.mac.as_str()), nic.vlan, u64::MAX, u64::MAX)
    );
}

#[test]
fn error_bodies_are_plinth_http_s() {
    // `plinth_http::Response::error` writes every refusal (the runtime's and the HTTP
    // layer's own); the view must read it and write the same bytes.
    for (status, message) in [
        (404, "no such partition"),
        (400, "since: expected a sequence number"),
        (405, "method not allowed"),
        (409, r#"quote " and backslash \ and é"#),
        (503, ""),
    ] {
        let body = String::from_utf8(plinth_http::Response::error(status, message).body).unwrap();
        same(
            &body,
            &ErrorView {
                error: message.into(),
                status: Some(status),
            },
        );
    }
}

#[test]
fn every_view_round_trips() {
    round_trip(&partition_running());
    round_trip(&partition_stopped());
    round_trip(&list());
    round_trip(&events());
    for e in events().events {
        round_trip(&e);
    }
    round_trip(&status());
    for c in [
        CatalogSummary::Invalid,
        CatalogSummary::Absent,
        CatalogSummary::Loading,
        CatalogSummary::Unknown,
    ] {
        round_trip(&status_bare_view(c));
    }
    round_trip(&Health::ok());
    round_trip(&Health {
        status: HealthStatus::Other("degraded".into()),
    });
    round_trip(&ErrorView {
        error: "x".into(),
        status: None,
    });
    round_trip(&Terminated {
        terminated: "t".into(),
        frames_returned: u64::MAX,
    });
    // Names this version does not know, strings that need escaping, extreme numbers.
    let mut p = partition_stopped();
    p.state = PartitionState::Other("migrating".into());
    p.tenant = Some("quote \" backslash \\ newline \n tab \t nul \0 snowman ☃".into());
    p.labels = vec![String::new(), "\u{7f}\u{1f}".into()];
    p.id = u32::MAX;
    p.memory.quota_bytes = u64::MAX;
    p.agents[0].status = AgentState::Other("paused".into());
    p.agents[0].exit_code = Some(i32::MIN);
    p.agents[0].task = Some(u32::MAX);
    p.agents[1].cpu.cap_percent = Some(0.1 + 0.2);
    round_trip(&p);
    let mut e = events();
    e.events
        .push(EventView::new(10, 0, "p", None, EventKind::Unknown));
    e.events.push(EventView::new(
        11,
        u64::MAX,
        "p",
        None,
        EventKind::PartitionCreated,
    ));
    round_trip(&e);
    let mut s = status();
    s.nics[0].address_source = AddressSource::Other("slaac".into());
    round_trip(&s);
    round_trip(&network());
    round_trip(&network_bare());
    let mut n = network();
    n.native_vlan_untagged = false;
    n.ports[0].kind = PortKind::Other("tunnel".into());
    n.ports[0].mode = PortMode::Other("\"q-in-q\"".into());
    n.vlans[1].vid = u16::MAX;
    n.pools[0].ranges.push((0, u16::MAX));
    n.macs[0].age_ms = u64::MAX;
    n.vlans[0].drops = drops(&[("", u64::MAX), ("é\n", 0)]);
    round_trip(&n);
    let mut p = partition_running();
    p.nics[0].rate = Some(NetRateView::default());
    p.nics[0].index = u8::MAX;
    p.nics[0].queued = u32::MAX;
    round_trip(&p);
}

#[test]
fn generated_views_round_trip() {
    // Many shapes of partition lists and event lists, every option both ways.
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let mut next = move || rng.next_u64();
    let text = |n: u64| -> String {
        const PIECES: [&str; 8] = ["a", "-", "\"", "\\", "\n", "é", "☃", "\u{1}"];
        (0..n % 6)
            .map(|i| PIECES[((n >> (i * 3)) % 8) as usize])
            .collect()
    };
    let maybe = |n: u64| (n & 1 == 1).then_some(n >> 1);
    for _ in 0..300 {
        let agents = (0..next() % 4)
            .map(|_| AgentView {
                name: text(next()),
                version: text(next()),
                status: AgentState::from_name(AgentState::NAMES[(next() % 5) as usize]),
                task: maybe(next()).map(|t| t as u32),
                cpu_ns: maybe(next()),
                syscalls: maybe(next()),
                exit_code: maybe(next()).map(|c| c as i32),
                restarts: next() as u32,
                heartbeats: next(),
                last_heartbeat_ms_ago: maybe(next()),
                cpu: CpuView::new(
                    next() as u32,
                    maybe(next()).map(|q| (q % 100_000_000 + 1, 100_000_000)),
                ),
                disk: DiskUsageView {
                    writes: next(),
                    written_bytes: next(),
                    throttled: next(),
                    ..DiskUsageView::default()
                },
            })
            .collect();
        let nics = (0..next() % 3)
            .map(|i| NicView {
                index: i as u8,
                mac: mac_string(next().to_le_bytes()[..6].try_into().unwrap()),
                port: text(next()),
                vlan: maybe(next()).map(|v| v as u16),
                tenant: maybe(next()).map(text),
                rx_frames: next(),
                rx_bytes: next(),
                tx_frames: next(),
                tx_bytes: next(),
                drops: next(),
                queued: next() as u32,
                rate: maybe(next()).map(|_| NetRateView {
                    bytes_per_sec: maybe(next()),
                    bytes_burst: maybe(next()),
                    packets_per_sec: maybe(next()),
                    packets_burst: maybe(next()),
                }),
            })
            .collect();
        let p = PartitionView {
            id: next() as u32,
            name: text(next()),
            state: PartitionState::from_name(PartitionState::NAMES[(next() % 2) as usize]),
            tenant: maybe(next()).map(text),
            labels: (0..next() % 3).map(|_| text(next())).collect(),
            memory: MemoryView {
                quota_bytes: next(),
                used_bytes: next(),
                peak_bytes: next(),
                page_table_bytes: next(),
                high_bytes: maybe(next()),
            },
            disk: maybe(next()).map(|lba| DiskView {
                first_lba: lba,
                sectors: next(),
                usage: DiskUsageView {
                    reads: next(),
                    throttled_ns: next(),
                    ..DiskUsageView::default()
                },
                waiting: next() as u32,
                rate: maybe(next()).map(|iops| DiskRateView {
                    iops: Some(iops),
                    bytes_burst: maybe(next()),
                    ..DiskRateView::default()
                }),
            }),
            agents,
            nics,
        };
        round_trip(&p);
        round_trip(&PartitionList {
            partitions: vec![p.clone(), p],
            uptime_ns: next(),
            agents_busy_ns: next(),
        });
        let kind = match next() % 17 {
            0 => EventKind::PartitionCreated,
            1 => EventKind::AgentStarted {
                task: next() as u32,
            },
            2 => EventKind::AgentFailedToStart {
                error: text(next()),
            },
            3 => EventKind::AgentExited {
                code: next() as i32,
            },
            4 => EventKind::AgentFaulted {
                vector: next() % 32,
                exception: text(next()),
                rip: next(),
                error_code: next(),
                address: maybe(next()),
            },
            5 => EventKind::RestartScheduled {
                attempt: next() as u32,
                delay_ms: next(),
            },
            6 => EventKind::Quarantined {
                restarts: next() as u32,
                window_secs: next() as u32,
            },
            7 => EventKind::Alert {
                reason: text(next()),
            },
            8 => EventKind::CpuThrottled {
                cap_percent: next() as u8,
                busy_percent: next() as u8,
            },
            9 => EventKind::CpuReleased {
                cap_percent: maybe(next()).map(|c| c as u8),
            },
            10 => EventKind::AgentHung {
                silent_ms: next(),
                timeout_ms: next() as u32,
                heartbeats: next(),
            },
            11 => EventKind::MemoryHigh {
                used_bytes: next(),
                high_bytes: next(),
                quota_bytes: next(),
            },
            12 => EventKind::DiskThrottled {
                cap_percent: next() as u8,
                busy_percent: next() as u8,
                iops: next(),
                bytes_per_sec: next(),
            },
            13 => EventKind::DiskReleased {
                cap_percent: maybe(next()).map(|c| c as u8),
            },
            14 => EventKind::MemoryThrottled {
                cap_percent: next() as u8,
                used_percent: next() as u8,
                mark_bytes: next(),
            },
            15 => EventKind::MemoryReleased {
                cap_percent: maybe(next()).map(|c| c as u8),
            },
            _ => EventKind::Unknown,
        };
        // Event times as the runtime takes them: ns since boot, up to a year.
        let ns = next() % (365 * 86_400 * 1_000_000_000);
        let agent = maybe(next()).map(text);
        round_trip(&EventList {
            events: vec![EventView::new(
                next(),
                ns,
                &text(next()),
                agent.as_deref(),
                kind,
            )],
            last_seq: next(),
        });
    }
}

#[test]
fn a_missing_required_field_is_refused_by_name() {
    let partition = [
        "tenant",
        "disk",
        "task",
        "cpu_ns",
        "syscalls",
        "exit_code",
        "last_heartbeat_ms_ago",
        "cap_percent",
        "vlan",
        "rate",
        "bytes_per_sec",
        "bytes_burst",
        "packets_per_sec",
        "packets_burst",
        // The disk's figures came later: a runtime before them sent none.
        "usage",
        "waiting",
        "iops",
        "iops_burst",
    ];
    let mut keys = 0;
    keys += check_missing_fields::<PartitionView>(PARTITION_RUNNING, &partition);
    keys += check_missing_fields::<PartitionView>(PARTITION_STOPPED, &partition);
    keys += check_missing_fields::<PartitionList>(&list_json(), &partition);
    keys += check_missing_fields::<Terminated>(TERMINATED, &[]);
    keys += check_missing_fields::<EventList>(&events_json(), &["agent", "address"]);
    keys += check_missing_fields::<Status>(STATUS, &["driver", "ipv4", "gateway"]);
    keys += check_missing_fields::<Status>(&status_bare("absent"), &["ipv4", "gateway"]);
    keys += check_missing_fields::<Health>(HEALTH, &[]);
    keys += check_missing_fields::<ErrorView>(ERROR, &["status"]);
    let network = ["uplink", "tenant", "pool", "vlan", "ports/mac", "offload"];
    keys += check_missing_fields::<NetworkView>(NETWORK, &network);
    keys += check_missing_fields::<NetworkView>(NETWORK_BARE, &network);
    assert!(keys > 450, "{keys}");
    // A missing nullable field reads as null.
    let p: Value = serde_json::from_str(PARTITION_RUNNING).unwrap();
    let p = read::<PartitionView>(
        &without(
            &p,
            &["agents".into(), "0".into(), "last_heartbeat_ms_ago".into()],
        )
        .to_string(),
    );
    assert_eq!(p.agents[0].last_heartbeat_ms_ago, None);
}

#[test]
fn unknown_fields_are_ignored() {
    tolerates_extra_fields::<PartitionView>(PARTITION_RUNNING);
    tolerates_extra_fields::<PartitionList>(&list_json());
    tolerates_extra_fields::<Terminated>(TERMINATED);
    tolerates_extra_fields::<EventList>(&events_json());
    tolerates_extra_fields::<Status>(STATUS);
    tolerates_extra_fields::<Status>(&status_bare("loading"));
    tolerates_extra_fields::<Health>(HEALTH);
    tolerates_extra_fields::<ErrorView>(ERROR);
    tolerates_extra_fields::<NetworkView>(NETWORK);
    tolerates_extra_fields::<NetworkView>(NETWORK_BARE);
}

#[test]
fn unknown_names_and_kinds_are_kept_or_marked() {
    let p = read::<PartitionView>(
        &PARTITION_RUNNING
            .replace(r#""state":"running""#, r#""state":"migrating""#)
            .replace(r#""status":"ended""#, r#""status":"paused""#),
    );
    assert_eq!(p.state, PartitionState::Other("migrating".into()));
    assert_eq!(p.state.to_string(), "migrating");
    assert_eq!(p.agents[1].status.as_str(), "paused");
    let e = read::<EventView>(
        r#"{"seq":1,"time_ms":2,"partition":"p","agent":null,"kind":"agent_migrated","to":"host-b"}"#,
    );
    assert_eq!(e.kind, EventKind::Unknown);
    assert_eq!(e.seq, 1);
    let s = read::<Status>(&status_bare("upgrading").replace("static", "slaac"));
    assert_eq!(s.catalog, CatalogSummary::Unknown);
    assert_eq!(
        s.nics[0].address_source,
        AddressSource::Other("slaac".into())
    );
    assert!(!read::<Health>(r#"{"status":"degraded"}"#).is_ok());
    // Known names are the variants, whatever way they are made.
    for name in AgentState::NAMES {
        assert!(!matches!(AgentState::from_name(name), AgentState::Other(_)));
        assert_eq!(AgentState::from_name(name).as_str(), *name);
    }
}

#[test]
fn wrong_shapes_are_errors_that_say_what() {
    let err = |json: &str| {
        PartitionView::from_json(json.as_bytes())
            .unwrap_err()
            .to_string()
    };
    let e = err(&PARTITION_RUNNING.replace(r#""id":1"#, r#""id":"1""#));
    assert!(
        e.starts_with("malformed partition: invalid type: string \"1\""),
        "{e}"
    );
    let e = err(&PARTITION_RUNNING.replace(r#""task":1"#, r#""task":-1"#));
    assert!(e.contains("invalid value: integer `-1`"), "{e}");
    let e = err(&PARTITION_RUNNING.replace(r#""task":1"#, r#""task":4294967296"#));
    assert!(e.contains("4294967296"), "{e}");
    let e = err(&PARTITION_RUNNING.replace(r#""labels":["management"]"#, r#""labels":"x""#));
    assert!(
        e.contains("invalid type: string \"x\", expected a sequence"),
        "{e}"
    );
    let e = err(&PARTITION_RUNNING.replace(r#""state":"running""#, r#""state":7"#));
    assert!(e.contains("expected a name (string)"), "{e}");
    assert!(err("").contains("EOF"));
    assert!(err("not json").contains("expected"));
    assert!(err("[]").contains("invalid length 0"));
    assert!(err("{}").contains("missing field `id`"));
    assert!(err(&PARTITION_RUNNING[..40]).contains("EOF"));
    // Another document is not this one.
    let e = PartitionList::from_json(PARTITION_RUNNING.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("missing field `partitions`"), "{e}");
    let e = Terminated::from_json(ERROR.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("missing field `terminated`"), "{e}");
    // An event kind with its own field missing or mistyped.
    let e = EventView::from_json(
        br#"{"seq":1,"time_ms":2,"partition":"p","agent":null,"kind":"agent_started"}"#,
    )
    .unwrap_err();
    assert!(e.to_string().contains("missing field `task`"), "{e}");
}

#[test]
fn floats_are_written_as_the_runtime_wrote_them() {
    // The runtime's hand-written JSON is the reference. Integral values are integers
    // there and here; other values are the same number, and the same text but for a
    // tie in a 17th digit (core rounds it up, serde_json's formatter need not) or an
    // exponent below 1e-5: no cap or event time of a runtime up for less than 100 days
    // has either.
    let writer = |x: f64| {
        let mut w = plinth_http::json::Writer::new();
        w.f64(x);
        w.finish()
    };
    let view = |x: f64| {
        let json = serde_json::to_string(&CpuView {
            weight: 1,
            cap_percent: Some(x),
        })
        .unwrap();
        json.strip_prefix(r#"{"weight":1,"cap_percent":"#)
            .and_then(|j| j.strip_suffix('}'))
            .unwrap()
            .to_string()
    };
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut values = vec![
        0.0,
        1.0,
        20.0,
        100.0,
        12.5,
        0.1 + 0.2,
        1.0 / 3.0,
        33.333333,
        1e15,
    ];
    values.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
    let (mut same_text, mut same_value) = (0, 0);
    for _ in 0..20_000 {
        let state = rng.next_u64();
        // Caps (quota over period, percent) and event times (ns over 1e6, up to a year).
        values.push((state % 100_000_000 + 1) as f64 * 100.0 / 100_000_000.0);
        values.push((state % (365 * 86_400 * 1_000_000_000)) as f64 / 1e6);
        values.push((state % (100 * 86_400 * 1_000_000_000)) as f64 / 1e6);
    }
    for x in values {
        let (w, v) = (writer(x), view(x));
        if w == v {
            same_text += 1;
        } else {
            let parse = |s: &str| s.parse::<f64>().unwrap();
            assert_eq!(
                parse(&w).to_bits(),
                parse(&v).to_bits(),
                "{x:?}: {w} vs {v}"
            );
            assert!(x >= 8.64e9, "{x:?}: {w} vs {v}");
            same_value += 1;
        }
    }
    assert!(
        same_text > 59_000 && same_value < 100,
        "{same_text} {same_value}"
    );
    assert_eq!(view(20.0), "20");
    assert_eq!(view(-3.0), "-3");
    assert_eq!(view(f64::NAN), "null");
}

#[test]
fn constructors_format_as_the_runtime_did() {
    let d = PciFunctionView::new("00:1f.3", 0x8086, 0x2930, 0x0c, 0x05, None);
    assert_eq!(
        (
            d.pci.as_str(),
            d.vendor_id.as_str(),
            d.device_id.as_str(),
            d.class.as_str()
        ),
        ("00:1f.3", "8086", "2930", "0c05")
    );
    assert_eq!(
        mac_string([0xde, 0xad, 0, 0xbe, 0xef, 1]),
        "de:ad:00:be:ef:01"
    );
    assert_eq!(BlockDiskView::new("vda", "x", 3, "s").capacity_bytes, 1536);
    assert_eq!(
        BlockDiskView::new("vda", "x", u64::MAX, "s").capacity_bytes,
        u64::MAX
    );
    assert_eq!(
        DiskView {
            first_lba: 0,
            sectors: 4,
            ..DiskView::default()
        }
        .bytes(),
        2048
    );
    assert_eq!(CpuView::new(5, Some((25, 100))).cap_percent, Some(25.0));
    assert_eq!(CpuView::new(5, None).cap_percent, None);
    assert_eq!(
        EventView::new(1, 1_500_000, "p", None, EventKind::PartitionCreated).time_ms,
        1.5
    );
    assert_eq!(Health::ok().to_json(), HEALTH);
}

#[test]
fn profiles_read_and_write_as_the_runtime_does() {
    let stat = |avg: f64, peak: f64| Some(StatView { avg, peak });
    let window = |seconds| WindowView {
        seconds,
        samples: seconds.min(7),
        cpu_percent: stat(12.5, 40.0),
        syscalls_per_sec: stat(402.0, 410.0),
        disk_iops: stat(200.0, 201.0),
        disk_bytes_per_sec: stat(819_200.0, 823_296.0),
        memory_bytes: stat(118_784.0, 118_784.0),
        net_packets_per_sec: None,
        net_bytes_per_sec: None,
    };
    let profile = AgentProfileView {
        partition: "iops".into(),
        agent: "io-iops".into(),
        version: "0.1.0".into(),
        status: AgentState::Running,
        uptime_ns: 15_000_000_000,
        windows: vec![window(1), window(10), window(60)],
        memory_bytes: 118_784,
        peak_memory_bytes: 122_880,
        predicted: FootprintView {
            cpu_percent: PredictedView {
                average: 1,
                peak: 100,
            },
            memory_mib: PredictedView {
                average: 1,
                peak: 64,
            },
            disk_iops: Some(PredictedView {
                average: 100,
                peak: 500,
            }),
            ..FootprintView::default()
        },
        cpu_ns_total: 49_000_000,
        syscalls_total: 6402,
        syscalls_by_kind: vec![CallCountView {
            call: "disk_read".into(),
            count: 3201,
        }],
    };
    round_trip(&profile);
    let json = profile.to_json();
    assert!(
        json.contains(r#""cpu_percent":{"avg":12.5,"peak":40}"#),
        "integral floats as integers: {json}"
    );
    let top = TopView {
        uptime_ns: 1,
        rows: vec![
            TopRow {
                partition: "iops".into(),
                agent: None,
                status: None,
                window: WindowView {
                    net_packets_per_sec: stat(0.0, 0.0),
                    ..window(10)
                },
            },
            TopRow {
                partition: "iops".into(),
                agent: Some("io-iops".into()),
                status: Some(AgentState::Backoff),
                window: window(10),
            },
        ],
    };
    round_trip(&top);
}
