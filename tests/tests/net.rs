//! The runtime on a real Ethernet segment: its NIC on a tap device in a network
//! namespace, where Linux's own stack resolves it by ARP, pings it and talks HTTP to it.

use plinth::setup::Need;
use plinth_tests::{Boot, NIC_MAC, NetNs};

/// The namespace's side pings and queries the runtime with Python's standard library.
const PYTHON3: Need = Need::cmd("python3", "python3");

const RUNTIME_IP: &str = "192.168.77.2";

/// ICMP echo through a raw socket, from inside the namespace: `count` requests with
/// distinct payloads; prints `reply SEQ` for each matching reply, then `ok N`.
const PING: &str = r#"
import socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
dst, count = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(5)
ok = 0
for seq in range(count):
    payload = (b"plinth-echo-%d-" % seq) * (1 + seq * 20)
    head = struct.pack("!BBHHH", 8, 0, 0, 0x706c, seq)
    head = struct.pack("!BBHHH", 8, 0, csum(head + payload), 0x706c, seq)
    s.sendto(head + payload, (dst, 0))
    deadline = time.time() + 5
    while time.time() < deadline:
        try:
            d, _ = s.recvfrom(65535)
        except socket.timeout:
            break
        ihl = (d[0] & 15) * 4
        kind, _, _, ident, q = struct.unpack("!BBHHH", d[ihl:ihl + 8])
        if kind == 0 and ident == 0x706c and q == seq:
            if d[ihl + 8:] == payload:
                ok += 1
                print("reply", seq)
            break
print("ok", ok)
"#;

const GET: &str = r#"
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
"#;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn linux_in_a_namespace_resolves_pings_and_queries_the_runtime() {
    plinth::setup::ensure(&[PYTHON3]).unwrap_or_else(|e| panic!("{e}"));
    let ns = NetNs::create();
    let mut rt = Boot {
        append: format!("ip={RUNTIME_IP}/24"),
        netns: ns.attach(),
        ..Boot::default()
    }
    .start();
    ns.configure();
    rt.expect_ready();
    rt.expect_line(&format!("net0: {RUNTIME_IP}/24 (static)"));
    rt.expect_line("api: listening");

    // ICMP echo, payloads up to about 1.3 KB, each echoed back unchanged.
    let out = ns.exec(&["python3", "-c", PING, RUNTIME_IP, "5"]);
    let t = text(&out);
    assert!(t.contains("ok 5"), "ping: {t}\n{}", rt.transcript());

    // Linux learned the runtime's MAC by ARP.
    let neigh = text(&ns.exec(&["ip", "neigh", "show", RUNTIME_IP]));
    let mac = NIC_MAC.map(|b| format!("{b:02x}")).join(":");
    assert!(neigh.contains(&format!("lladdr {mac}")), "{neigh}");

    // The management API straight over the segment.
    let url = format!("http://{RUNTIME_IP}:8080/api/v1/status");
    let out = ns.exec(&["python3", "-c", GET, &url]);
    let body = text(&out);
    assert!(out.status.success(), "{body}");
    let s: serde_json::Value =
        serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(s["nics"][0]["ipv4"], format!("{RUNTIME_IP}/24"), "{s}");
    assert_eq!(s["nics"][0]["mac"], mac, "{s}");
    assert_eq!(s["nics"][0]["address_source"], "static", "{s}");
    rt.shutdown();
}
