//! The management API end to end: QEMU user networking, the API port forwarded from the
//! host, and the host talking HTTP to the booted runtime like any client would.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use plinth::api::{self, KeepAlive, read_response};
use plinth::bench_net;
use plinth::profile::Disk;
use plinth_tests::{Boot, NIC_MAC};

const T: Duration = Duration::from_secs(10);

fn boot_api(append: &str, disk: Option<Disk>) -> (plinth_tests::Runtime, SocketAddr) {
    let mut rt = Boot {
        append: append.into(),
        disk,
        nic: true,
        ..Boot::default()
    }
    .start();
    rt.expect_ready();
    let addr = rt.expect_api();
    (rt, addr)
}

fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn health_status_and_metrics_report_the_machine() {
    // An odd disk size, so a hard-coded capacity could not pass.
    let dir = std::env::temp_dir().join(format!("plinth-api-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("status.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(12_345 * 512)
        .unwrap();
    let (mut rt, addr) = boot_api(
        "",
        Some(Disk {
            image: image.clone(),
            serial: "api-disk-7".into(),
        }),
    );
    rt.expect_line("(DHCP)");

    let h = api::get(addr, "/api/v1/health", T).unwrap();
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!(v["status"], "ok");

    let s = api::get_json(addr, "/api/v1/status", T).unwrap();
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["cpus"], 1);
    let total = s["memory"]["total_bytes"].as_u64().unwrap();
    assert!((120 << 20..=128 << 20).contains(&total), "{s}");
    assert!(s["memory"]["free_bytes"].as_u64().unwrap() < total);
    let nic = &s["nics"][0];
    assert_eq!(nic["mac"], mac_string(NIC_MAC), "{s}");
    assert_eq!(nic["ipv4"], "10.0.2.15/24", "{s}");
    assert_eq!(nic["address_source"], "dhcp");
    let disk = &s["disks"][0];
    assert_eq!(disk["capacity_bytes"], 12_345 * 512, "{s}");
    assert_eq!(disk["serial"], "api-disk-7");
    let drivers: Vec<_> = s["devices"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["driver"].as_str())
        .collect();
    assert!(
        drivers.contains(&"virtio-net") && drivers.contains(&"virtio-blk"),
        "{s}"
    );
    let up1 = s["uptime_ms"].as_u64().unwrap();

    // Disk traffic shows up in the counters (the catalog search at boot read some
    // already: count from here).
    let read_bytes = |text: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with("plinth_disk_read_bytes_total{disk=\"blk0\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no read bytes in\n{text}"))
    };
    let before = read_bytes(&api::get(addr, "/metrics", T).unwrap().text());
    rt.send("disk sum 0 0 100");
    rt.expect_line("disk sum 0 0 100:");
    let m = api::get(addr, "/metrics", T).unwrap();
    assert_eq!(m.status, 200);
    assert!(
        m.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = m.text();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert_eq!(read_bytes(&text) - before, 51_200.0);
    assert!(value("plinth_nic_rx_packets_total{nic=\"net0\"}") >= 3.0);
    assert!(value("plinth_nic_tx_packets_total{nic=\"net0\"}") >= 3.0);
    assert!(value("plinth_uptime_seconds") * 1000.0 >= up1 as f64);
    assert!(
        text.contains("# TYPE plinth_nic_rx_bytes_total counter"),
        "{text}"
    );

    let s2 = api::get_json(addr, "/api/v1/status", T).unwrap();
    assert!(s2["uptime_ms"].as_u64().unwrap() > up1);

    // Both devices interrupt through their own MSI-X vectors.
    let t = rt.transcript();
    for dev in ["blk0: virtio-blk", "net0: virtio-net"] {
        let line = t
            .lines()
            .find(|l| l.contains(dev))
            .unwrap_or_else(|| panic!("{t}"));
        assert!(line.ends_with(", MSI-X"), "{line}");
    }
    // Without `bench` on the command line the benchmark streams do not exist.
    let e = bench_net::sink(addr, 1000, T).unwrap_err().to_string();
    assert!(e.contains("404"), "{e}");
    rt.shutdown();
}

#[test]
fn bench_streams_move_exact_byte_counts() {
    let (mut rt, addr) = boot_api("bench", None);
    let metric = |name: &str| -> f64 {
        let text = api::get(addr, "/metrics", T).unwrap().text();
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    let rx_before = metric("plinth_nic_rx_bytes_total{nic=\"net0\"}");
    // Odd sizes: several TCP windows and a partial segment at the end. The client checks
    // the runtime's `received N` against what it sent, and counts the source's bytes.
    let up = bench_net::sink(addr, (3 << 20) + 1, T).unwrap();
    assert_eq!(up.bytes, (3 << 20) + 1);
    let down = bench_net::source(addr, (5 << 20) + 7, T).unwrap();
    assert_eq!(down.bytes, (5 << 20) + 7);
    assert_eq!(bench_net::source(addr, 0, T).unwrap().bytes, 0);
    let rx_after = metric("plinth_nic_rx_bytes_total{nic=\"net0\"}");
    assert!(
        rx_after - rx_before > f64::from((3 << 20) + 1),
        "the NIC counted {} bytes received",
        rx_after - rx_before
    );

    // Misuse of the stream resources gets HTTP errors, not a stream.
    for (request, status) in [
        (
            "GET /api/v1/bench/source?bytes=10 HTTP/1.1\r\nHost: x\r\n\r\n",
            426,
        ),
        (
            "GET /api/v1/bench/source?bytes=ten HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: plinth-bench\r\n\r\n",
            400,
        ),
        (
            "GET /api/v1/bench/source HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: plinth-bench\r\n\r\n",
            400,
        ),
        (
            "POST /api/v1/bench/sink HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            426,
        ),
        (
            "POST /api/v1/bench/sink HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: plinth-bench\r\n\r\n",
            426,
        ),
    ] {
        let mut s = TcpStream::connect_timeout(&addr, T).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let r = read_response(&mut BufReader::new(s), false).unwrap();
        assert_eq!(r.status, status, "{request:?}: {}", r.text());
    }

    // Sinks whose clients vanish mid-stream free their slots: soon all eight API
    // connections work at once again. (QEMU's user network connects to the runtime on
    // its own schedule and retries refused connects after a second, so give it time.)
    for _ in 0..10 {
        let mut s = TcpStream::connect_timeout(&addr, T).unwrap();
        s.write_all(b"POST /api/v1/bench/sink HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: plinth-bench\r\n\r\n")
            .unwrap();
        s.write_all(&[7u8; 100_000]).unwrap();
        drop(s);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let rate = loop {
        match bench_net::health_rate(addr, Duration::from_millis(300), 8, T) {
            Ok(rate) => break rate,
            Err(e) if Instant::now() > deadline => panic!("slots not freed: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    assert!(rate.requests >= 8, "{rate:?}");
    rt.shutdown();
}

#[test]
fn closed_connections_free_their_slots_at_once() {
    // Each request closes its connection (`Connection: close`), so the runtime closes
    // first and its socket would sit in TIME-WAIT; three times the slot count in a row
    // must all be served.
    // The client waits for the runtime's FIN before closing, as a browser does.
    let (mut rt, addr) = boot_api("", None);
    for i in 0..3 * 8 {
        let mut s = TcpStream::connect_timeout(&addr, T).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        if let Err(e) = s.read_to_end(&mut answer) {
            panic!("request {i}: {e}\n{}", rt.transcript());
        }
        assert!(
            answer.starts_with(b"HTTP/1.1 200 OK"),
            "request {i}: {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    rt.shutdown();
}

#[test]
fn clients_that_never_close_lose_their_slots() {
    // Eight clients take an answer and the runtime's FIN but never close their side:
    // their slots are reclaimed after the closing timeout, and the API serves again.
    let (mut rt, addr) = boot_api("", None);
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect_timeout(&addr, T).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200 OK"));
        held.push(s); // open: the runtime's socket waits in FIN-WAIT-2
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        match api::get(addr, "/api/v1/health", Duration::from_secs(5)) {
            Ok(r) if r.status == 200 => break,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(500)),
            other => panic!(
                "slots still held after 40 s: {other:?}\n{}",
                rt.transcript()
            ),
        }
    }
    drop(held);
    rt.shutdown();
}

#[test]
fn the_api_answers_while_a_console_command_waits_on_the_disk() {
    let dir = std::env::temp_dir().join(format!("plinth-api-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("busy.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let (mut rt, addr) = boot_api(
        "",
        Some(Disk {
            image,
            serial: "busy".into(),
        }),
    );
    // Seconds of disk work on the console: 256 MiB each way, then 40,000 random reads.
    rt.send("bench blk 0 256 1024 4 40000");
    std::thread::sleep(Duration::from_millis(300));
    let mut last_answer = Instant::now();
    for i in 0..5 {
        let r = api::get(addr, "/api/v1/health", T).unwrap();
        assert_eq!(r.status, 200, "request {i}");
        last_answer = Instant::now();
    }
    let done = rt.expect_line("bench blk 0: region=");
    assert!(
        last_answer < done.at,
        "the API answered only after the disk benchmark finished"
    );
    rt.shutdown();
}

#[test]
fn static_address_and_port_from_the_command_line() {
    // QEMU's user network forwards to 10.0.2.15 only, so the static address is that one;
    // the gateway and the port are what the DHCP case would not give.
    let (mut rt, addr) = boot_api("ip=10.0.2.15/24 gw=10.0.2.3 api_port=9123", None);
    let t = rt.transcript();
    assert!(
        t.contains("net0: 10.0.2.15/24 (static) via 10.0.2.3"),
        "{t}"
    );
    let s = api::get_json(addr, "/api/v1/status", T).unwrap();
    assert_eq!(s["nics"][0]["ipv4"], "10.0.2.15/24");
    assert_eq!(s["nics"][0]["gateway"], "10.0.2.3");
    assert_eq!(s["nics"][0]["address_source"], "static");
    assert_eq!(s["disks"].as_array().unwrap().len(), 0);
    rt.shutdown();
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let (mut rt, addr) = boot_api("", None);
    let mut c = KeepAlive::connect(addr, T).unwrap();
    for _ in 0..50 {
        let r = c.get("/api/v1/health").unwrap();
        assert_eq!(r.status, 200);
        assert_ne!(r.header("connection"), Some("close"));
    }
    rt.shutdown();
}

/// Sends `raw`, then reads until the runtime closes or `wait` passes; returns the status
/// of every response received, in order.
fn exchange(addr: SocketAddr, raw: &[u8], wait: Duration) -> (Vec<u16>, bool) {
    let s = TcpStream::connect_timeout(&addr, T).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    let mut w = s.try_clone().unwrap();
    let _ = w.write_all(raw);
    let mut r = BufReader::new(s);
    let mut statuses = Vec::new();
    while let Ok(resp) = read_response(&mut r, false) {
        statuses.push(resp.status);
    }
    // Closed by the runtime: a read now returns 0 (EOF) rather than timing out.
    let mut b = [0u8; 1];
    let closed = matches!(r.get_mut().read(&mut b), Ok(0));
    (statuses, closed)
}

#[test]
fn hostile_requests_get_the_right_status_and_the_runtime_carries_on() {
    let (mut rt, addr) = boot_api("", None);
    let big_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(10_000));
    let many_headers = format!(
        "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..100)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect::<String>()
    );
    let huge_header = format!(
        "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9_000)
    );
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(), &[400]),
        ("no version", b"GET /api/v1/health\r\n\r\n".to_vec(), &[400]),
        ("bad version", b"GET /api/v1/health HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), &[505]),
        ("lowercase method", b"get /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[405]),
        ("no host", b"GET /api/v1/health HTTP/1.1\r\n\r\n".to_vec(), &[400]),
        ("header without colon", b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nBroken\r\n\r\n".to_vec(), &[400]),
        ("space before colon", b"GET /api/v1/health HTTP/1.1\r\nHost : x\r\n\r\n".to_vec(), &[400]),
        ("NUL in target", b"GET /api/v1/he\0alth HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[400]),
        ("obs-fold", b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n".to_vec(), &[400]),
        ("CL and TE", b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), &[400]),
        ("chunked body", b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), &[501]),
        ("two lengths", b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab".to_vec(), &[400]),
        ("negative length", b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(), &[400]),
        ("overflowing length", b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(), &[400]),
        ("body over limit", b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n".to_vec(), &[413]),
        ("request line too long", big_line.into_bytes(), &[431]),
        ("too many headers", many_headers.into_bytes(), &[431]),
        ("huge header", huge_header.into_bytes(), &[431]),
        ("unknown path", b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[404]),
        ("dot-dot path", b"GET /api/v1/../../secret HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[404]),
        ("wrong method", b"DELETE /api/v1/status HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[405]),
        ("POST to health", b"POST /api/v1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(), &[405]),
        ("pipelined then garbage", b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n\x01\x02garbage\r\n\r\n".to_vec(), &[200, 200, 400]),
        ("HTTP/1.0 closes", b"GET /api/v1/health HTTP/1.0\r\n\r\n".to_vec(), &[200]),
        ("Connection: close", b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), &[200]),
        ("non-UTF-8 path", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[400]),
    ];
    let mut failures = Vec::new();
    for (name, raw, want) in &cases {
        // Protocol errors end the connection; a 404 or 405 is an ordinary answer on a
        // connection that stays open (the read then times out instead of seeing EOF).
        let must_close = want.iter().any(|s| ![200, 404, 405].contains(s))
            || name.contains("close")
            || name.contains("HTTP/1.0");
        let wait = if must_close { 10 } else { 2 };
        let (got, closed) = exchange(addr, raw, Duration::from_secs(wait));
        if got != *want || closed != must_close {
            failures.push(format!(
                "{name}: got {got:?} (closed: {closed}), want {want:?} (closed: {must_close})"
            ));
        }
    }

    // Truncated request, then the client goes away: nothing to answer, nothing stuck.
    let mut s = TcpStream::connect_timeout(&addr, T).unwrap();
    s.write_all(b"GET /api/v1/hea").unwrap();
    drop(s);

    // Slowloris: a head that never completes is cut off (408 or a close) within the
    // header timeout, not held open.
    let started = Instant::now();
    let (got, closed) = exchange(
        addr,
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: 1",
        Duration::from_secs(20),
    );
    if !(closed && got.iter().all(|s| *s == 408) && started.elapsed() < Duration::from_secs(15)) {
        failures.push(format!(
            "slow head: got {got:?}, closed {closed}, after {:?}",
            started.elapsed()
        ));
    }

    // More connections than the runtime serves at once: the extra ones are refused or
    // closed, and once they go away the API answers again.
    let hogs: Vec<_> = (0..12)
        .filter_map(|_| TcpStream::connect_timeout(&addr, T).ok())
        .collect();
    drop(hogs);

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api::get(addr, "/api/v1/health", T) {
            Ok(r) if r.status == 200 => break,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!(
                "health after the hostile cases: {other:?}\n{}",
                rt.transcript()
            ),
        }
    }
    let t = rt.transcript();
    assert!(!t.contains("PANIC"), "{t}");
    rt.shutdown();
}
