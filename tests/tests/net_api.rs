//! Partition NICs through the command set, end to end: created with a partition or
//! attached later, each on its tenant's VLAN from the tenants policy; a tenant whose pool
//! is exhausted is refused by name; an ID goes back to its pool with the tenant's last
//! NIC; limits change live; `GET /api/v1/network`, `plinth net show` and `/metrics` show
//! the bridge as it is.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use plinth::api;
use plinth_tests::{TestAgent, boot_appliance as boot, build_appliance, call};
use serde_json::Value;

const T: Duration = Duration::from_secs(10);

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plinth-netapi-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn create(addr: SocketAddr, name: &str, tenant: &str, nics: &str) -> (u16, Value) {
    call(
        addr,
        "POST",
        "/api/v1/partitions",
        Some(&format!(
            r#"{{"name":"{name}","memory_mib":4,"tenant":"{tenant}","nics":{nics}}}"#
        )),
    )
}

/// The VLANs `GET /api/v1/network` lists, with their tenants.
fn vlans(addr: SocketAddr) -> Vec<(u64, Option<String>)> {
    let (s, v) = call(addr, "GET", "/api/v1/network", None);
    assert_eq!(s, 200, "{v}");
    v["vlans"]
        .as_array()
        .unwrap_or_else(|| panic!("no vlans array: {v}"))
        .iter()
        .map(|x| {
            (
                x["vid"].as_u64().unwrap(),
                x["tenant"].as_str().map(String::from),
            )
        })
        .collect()
}

#[test]
fn nics_take_their_tenants_vlans_from_the_pool_and_give_them_back() {
    let d = dir("ledger");
    // Two IDs in the default pool; `fixed` has its own static VLAN.
    let tenants = "kind = \"tenants\"\n\n[[pool]]\nname = \"default\"\nranges = [\"100-101\"]\n\n\
                   [[tenant]]\nname = \"fixed\"\nvlan = 300\npartitions = [\"base\"]\n";
    let partitions = "\n[[partition]]\nname = \"base\"\nmemory_mib = 8\ncpus = 1\nnics = 1\n";
    let agents: [TestAgent<'_>; 1] = [TestAgent {
        name: "echo",
        example: "echo",
        config: &[("etc/echo.toml", "address = \"10.9.0.0/24 host=mac\"\n")],
    }];
    let spec = plinth::image::example_spec(256, &["echo"], partitions, &["tenants.toml"]);
    let image = build_appliance(&d, &spec, &[("tenants.toml", tenants)], &agents);
    let (mut rt, addr) = boot(image);

    // The spec's partition is on its static VLAN from boot, and the uplink carries it.
    let (_, net) = call(addr, "GET", "/api/v1/network", None);
    assert_eq!(net["uplink"]["allowed"], serde_json::json!([300]), "{net}");
    assert!(vlans(addr).contains(&(300, Some("fixed".into()))), "{net}");

    // Tenants the policy does not list draw from the default pool, lowest ID first.
    let (s, a) = create(addr, "a", "t1", "[{}]");
    assert_eq!(s, 201, "{a}");
    let nic = &a["nics"][0];
    assert_eq!(nic["vlan"], 100, "{a}");
    assert_eq!(nic["tenant"], "t1", "{a}");
    assert_eq!(nic["port"], "a/0", "{a}");
    let mac = nic["mac"].as_str().unwrap().to_string();
    let first = u8::from_str_radix(&mac[..2], 16).unwrap();
    assert_eq!(first & 0b11, 0b10, "locally administered unicast: {mac}");
    let (s, b) = create(addr, "b", "t2", "[{}]");
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["nics"][0]["vlan"], 101, "{b}");
    // A second partition of a tenant shares its ID.
    let (s, a2) = create(addr, "a2", "t1", "[{}]");
    assert_eq!(s, 201, "{a2}");
    assert_eq!(a2["nics"][0]["vlan"], 100, "{a2}");

    // The pool is exhausted: refused, naming the tenant and the pool; nothing is left.
    let (s, e) = create(addr, "c", "t3", "[{}]");
    assert_eq!(s, 409, "{e}");
    let msg = e["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("`t3`") && msg.contains("`default`") && msg.contains("exhausted"),
        "{e}"
    );
    let (s, _) = call(addr, "GET", "/api/v1/partitions/c", None);
    assert_eq!(s, 404);
    // A partition of a tenant without NICs holds no ID.
    let (s, _) = create(addr, "quiet", "t4", "[]");
    assert_eq!(s, 201);

    // t1's ID goes back only with its last NIC.
    let (s, _) = call(addr, "DELETE", "/api/v1/partitions/a", None);
    assert_eq!(s, 200);
    assert_eq!(create(addr, "c", "t3", "[{}]").0, 409);
    let (s, _) = call(addr, "DELETE", "/api/v1/partitions/a2", None);
    assert_eq!(s, 200);
    assert!(!vlans(addr).iter().any(|(_, t)| t.as_deref() == Some("t1")));
    let (s, c) = create(addr, "c", "t3", "[{}]");
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["nics"][0]["vlan"], 100, "{c}");
    let (_, net) = call(addr, "GET", "/api/v1/network", None);
    let pool = &net["pools"][0];
    assert_eq!(pool["name"], "default", "{net}");
    assert_eq!(pool["in_use"], serde_json::json!([100, 101]), "{net}");
    assert_eq!(
        net["uplink"]["allowed"],
        serde_json::json!([100, 101, 300]),
        "{net}"
    );

    // Attach and detach: a given MAC is kept, a MAC in use is refused, a missing index
    // is a conflict.
    let (s, b) = call(
        addr,
        "POST",
        "/api/v1/partitions/b/nics",
        Some(r#"{"mac":"02:aa:bb:cc:dd:01"}"#),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["nics"][1]["mac"], "02:aa:bb:cc:dd:01", "{b}");
    assert_eq!(b["nics"][1]["index"], 1, "{b}");
    assert_eq!(b["nics"][1]["vlan"], 101, "{b}");
    let (s, e) = call(
        addr,
        "POST",
        "/api/v1/partitions/c/nics",
        Some(r#"{"mac":"02:aa:bb:cc:dd:01"}"#),
    );
    assert_eq!(s, 409, "{e}");
    let (s, e) = call(
        addr,
        "POST",
        "/api/v1/partitions/b/nics",
        Some(r#"{"mac":"01:00:5e:00:00:01"}"#),
    );
    assert_eq!(s, 422, "a multicast MAC: {e}");
    let (s, b) = call(addr, "DELETE", "/api/v1/partitions/b/nics/0", None);
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["nics"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["nics"][0]["index"], 1, "{b}");
    let (s, _) = call(addr, "DELETE", "/api/v1/partitions/b/nics/0", None);
    assert_eq!(s, 409);

    // Limits change live and show on the NIC; 0 lifts a limit.
    let (s, b) = call(
        addr,
        "POST",
        "/api/v1/partitions/b/resize",
        Some(
            r#"{"net_bytes_per_sec":1048576,"net_bytes_burst":2097152,"net_packets_per_sec":5000}"#,
        ),
    );
    assert_eq!(s, 200, "{b}");
    let rate = &b["nics"][0]["rate"];
    assert_eq!(rate["bytes_per_sec"], 1_048_576, "{b}");
    assert_eq!(rate["bytes_burst"], 2_097_152, "{b}");
    assert_eq!(rate["packets_per_sec"], 5000, "{b}");
    assert_eq!(rate["packets_burst"], 5000, "{b}");
    let (s, b) = call(
        addr,
        "POST",
        "/api/v1/partitions/b/resize",
        Some(r#"{"net_bytes_per_sec":0}"#),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["nics"][0]["rate"]["bytes_per_sec"], Value::Null, "{b}");
    assert_eq!(b["nics"][0]["rate"]["packets_per_sec"], 5000, "{b}");

    // The tool reads the same document into its view and shows the bridge as it is.
    let view: plinth_control::views::NetworkView =
        plinth::api::get_view(addr, "/api/v1/network", T).unwrap();
    let text = plinth::net::format_network(&view);
    assert!(
        text.contains("b/1") && text.contains("02:aa:bb:cc:dd:01"),
        "{text}"
    );
    let m = api::get(addr, "/metrics", T).unwrap();
    let m = String::from_utf8_lossy(&m.body);
    assert!(
        m.contains("plinth_bridge_port_rx_frames_total{port=\"base/0\"}"),
        "{m}"
    );
    assert!(
        m.contains("plinth_bridge_vlan_frames_total{vlan=\"300\"}"),
        "{m}"
    );
    rt.shutdown();
}
