//! The governors end to end: appliances whose protection policy limits agents and
//! partitions, booted in QEMU, loaded by `ioload` agents, and measured the way an
//! operator would — the runtime's own counters over its API against its own clock.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use plinth_tests::{TestAgent, boot_appliance, build_appliance, call};
use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plinth-gov-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn get(addr: SocketAddr, path: &str) -> Value {
    let (status, v) = call(addr, "GET", path, None);
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

/// One partition's disk counters at one moment of the guest's clock.
#[derive(Clone, Copy, Debug)]
struct DiskSample {
    uptime_ns: u64,
    reads: u64,
    writes: u64,
    bytes: u64,
    throttled: u64,
}

/// Each partition's disk counters and the agents' in one answer, with the guest's clock.
fn sample(addr: SocketAddr) -> (Value, u64) {
    let list = get(addr, "/api/v1/partitions");
    let up = list["uptime_ns"].as_u64().expect("uptime_ns");
    (list, up)
}

fn partition<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no partition {name}: {list}"))
}

fn usage_of(u: &Value, uptime_ns: u64) -> DiskSample {
    let n = |k: &str| u[k].as_u64().unwrap_or_else(|| panic!("{k} in {u}"));
    DiskSample {
        uptime_ns,
        reads: n("reads"),
        writes: n("writes"),
        bytes: n("read_bytes") + n("written_bytes"),
        throttled: n("throttled"),
    }
}

fn disk(list: &Value, up: u64, part: &str) -> DiskSample {
    usage_of(&partition(list, part)["disk"]["usage"], up)
}

fn agent_disk(list: &Value, up: u64, part: &str, agent: &str) -> DiskSample {
    let a = partition(list, part)["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == agent)
        .unwrap_or_else(|| panic!("no agent {agent} in {part}"));
    usage_of(&a["disk"], up)
}

/// Rates between two samples: requests/s and bytes/s by the guest's clock.
fn rates(a: DiskSample, b: DiskSample) -> (f64, f64) {
    let s = (b.uptime_ns - a.uptime_ns) as f64 / 1e9;
    (
        ((b.reads + b.writes) - (a.reads + a.writes)) as f64 / s,
        (b.bytes - a.bytes) as f64 / s,
    )
}

fn within(got: f64, want: f64, pct: f64) -> bool {
    (got - want).abs() <= want * pct / 100.0
}

const WINDOW: Duration = Duration::from_secs(10);

#[test]
fn disk_budgets_hold_within_two_percent_and_change_live() {
    let d = dir("disk");
    let load =
        |op: &str, bytes: u32| format!("op = \"{op}\"\nbytes = {bytes}\nspan_sectors = 4096\n");
    let (read4k, write64k) = (load("read", 4096), load("write", 65536));
    let agents = [
        ("io-iops", read4k.as_str()),
        ("io-bytes", write64k.as_str()),
        ("io-a", read4k.as_str()),
        ("io-b", read4k.as_str()),
        ("io-free", read4k.as_str()),
    ];
    let configs: Vec<[(&str, &str); 1]> = agents
        .iter()
        .map(|(_, config)| [("etc/ioload.toml", *config)])
        .collect();
    let test_agents: Vec<TestAgent<'_>> = agents
        .iter()
        .zip(&configs)
        .map(|((name, _), config)| TestAgent {
            name,
            example: "ioload",
            config,
        })
        .collect();
    let mut partitions = String::new();
    for p in ["iops", "bytes", "pair", "free"] {
        partitions +=
            &format!("[[partition]]\nname = \"{p}\"\nmemory_mib = 4\ncpus = 1\ndisk_mib = 4\n\n");
    }
    // 200 IOPS on one partition; 2 MiB/s on another; inside a 150-IOPS partition, one
    // agent at 50 IOPS of its own; and a partition without a budget.
    let protection = "kind = \"protection\"

[[limit]]
partition = \"iops\"
disk = { iops = 200 }

[[limit]]
partition = \"bytes\"
disk = { bytes_per_sec = 2097152 }

[[limit]]
partition = \"pair\"
disk = { iops = 150 }

[[limit]]
agent = \"io-a\"
disk = { iops = 50 }
";
    let names: Vec<&str> = agents.iter().map(|(n, _)| *n).collect();
    let image = build_appliance(
        &d,
        &plinth::image::example_spec(
            256,
            &names,
            &partitions,
            &["deployment.toml", "protection.toml"],
        ),
        &[
            (
                "deployment.toml",
                &plinth::image::example_deployment(&[
                    ("io-iops", "iops"),
                    ("io-bytes", "bytes"),
                    ("io-a", "pair"),
                    ("io-b", "pair"),
                    ("io-free", "free"),
                ]),
            ),
            ("protection.toml", protection),
        ],
        &test_agents,
    );
    let (mut rt, addr) = boot_appliance(image);
    for who in [
        "iops/io-iops",
        "bytes/io-bytes",
        "pair/io-a",
        "pair/io-b",
        "free/io-free",
    ] {
        rt.expect_line(&format!("{who}: ioload: "));
    }
    // Each budget starts full (one second of its rate): spend it first.
    std::thread::sleep(Duration::from_secs(3));
    let (l0, t0) = sample(addr);
    std::thread::sleep(WINDOW);
    let (l1, t1) = sample(addr);
    let r = |p: &str| rates(disk(&l0, t0, p), disk(&l1, t1, p));
    let ra = |p: &str, a: &str| rates(agent_disk(&l0, t0, p, a), agent_disk(&l1, t1, p, a));
    let ((iops, _), (_, bytes), (pair, _), (a, _), (b, _), (free, _)) = (
        r("iops"),
        r("bytes"),
        r("pair"),
        ra("pair", "io-a"),
        ra("pair", "io-b"),
        r("free"),
    );
    let secs = (t1 - t0) as f64 / 1e9;
    println!(
        "disk governor over {secs:.2} s of guest time: iops capped at 200: {iops:.2}/s; \
         bytes capped at 2 MiB/s: {:.4} MiB/s; pair capped at 150/s: {pair:.2}/s, its agent \
         io-a at 50/s: {a:.2}/s, io-b (the rest): {b:.2}/s; free: {free:.0}/s",
        bytes / 1048576.0
    );
    assert!(
        secs >= 9.0,
        "the guest's clock ran {secs} s in a {WINDOW:?} window"
    );
    assert!(within(iops, 200.0, 2.0), "200 IOPS ± 2%: {iops:.2}");
    assert!(
        within(bytes, 2097152.0, 2.0),
        "2 MiB/s ± 2%: {:.4} MiB/s",
        bytes / 1048576.0
    );
    assert!(
        within(pair, 150.0, 2.0),
        "the pair's 150 IOPS ± 2%: {pair:.2}"
    );
    assert!(within(a, 50.0, 2.0), "io-a's own 50 IOPS ± 2%: {a:.2}");
    assert!(
        within(b, 100.0, 3.0),
        "io-b gets the rest of the pair's: {b:.2}"
    );
    assert!(
        free >= 3.0 * 200.0,
        "the unlimited partition does far more, so the budgets are what held the others: \
         {free:.0}/s"
    );
    // The governor counted what it held back, and let the free partition be.
    let throttled = |p: &str| disk(&l1, t1, p).throttled;
    assert!(throttled("iops") > 1000, "{}", throttled("iops"));
    assert_eq!(throttled("free"), 0);
    let view = &partition(&l1, "iops")["disk"];
    assert_eq!(view["rate"]["iops"], 200, "{view}");
    assert_eq!(view["rate"]["bytes_per_sec"], Value::Null, "{view}");

    // The profiler saw the same: the capped agent's last 10 s at 200 IOPS, its reads
    // among its system calls, beside what its manifest predicts.
    let prof = get(addr, "/api/v1/agents/iops/io-iops/profile");
    let ten = &prof["windows"][1];
    assert_eq!(ten["seconds"], 10, "{prof}");
    assert_eq!(ten["samples"], 10, "{prof}");
    let iops10 = ten["disk_iops"]["avg"].as_f64().unwrap();
    let cpu10 = ten["cpu_percent"]["avg"].as_f64().unwrap();
    let reads = prof["syscalls_by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["call"] == "disk_read")
        .map(|c| c["count"].as_u64().unwrap())
        .unwrap_or(0);
    println!(
        "profiler: io-iops over 10 s: {iops10:.1} IOPS (peak {}), {cpu10:.2}% CPU, {} KiB of memory; {reads} disk_read calls in all; predicted {}",
        ten["disk_iops"]["peak"],
        prof["memory_bytes"].as_u64().unwrap() / 1024,
        prof["predicted"]
    );
    assert!(within(iops10, 200.0, 2.0), "profile: {iops10}");
    assert!(
        cpu10 > 0.0 && cpu10 < 50.0,
        "a throttled agent mostly waits: {cpu10}"
    );
    let s1 = disk(&l1, t1, "iops");
    assert!(
        reads >= s1.reads,
        "every read is a disk_read call: {reads} < {}",
        s1.reads
    );
    assert!(prof["memory_bytes"].as_u64().unwrap() > 0, "{prof}");
    assert_eq!(
        prof["predicted"]["memory_mib"]["peak"], 64,
        "the manifest's: {prof}"
    );
    let free10 = get(addr, "/api/v1/agents/free/io-free/profile")["windows"][1]["disk_iops"]["avg"]
        .as_f64()
        .unwrap();
    assert!(free10 > 3.0 * iops10, "{free10}");
    // `plinth top`'s table, from the same figures.
    let top = plinth::top::read(addr, 10, Duration::from_secs(10)).unwrap();
    let table = plinth::top::format_top(&top, 10);
    println!("{table}");
    assert_eq!(top.rows.len(), 4 + 5, "4 partitions, 5 agents: {table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("  io-iops") && l.contains("running"))
    );

    // Live: the iops partition down to 100/s, measured after its (new) burst is spent.
    let (status, body) = call(
        addr,
        "POST",
        "/api/v1/partitions/iops/resize",
        Some(r#"{"disk_iops": 100}"#),
    );
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_secs(2));
    let (l2, t2) = sample(addr);
    std::thread::sleep(WINDOW);
    let (l3, t3) = sample(addr);
    let (lowered, _) = rates(disk(&l2, t2, "iops"), disk(&l3, t3, "iops"));
    println!("disk governor: iops lowered live to 100: {lowered:.2}/s");
    assert!(within(lowered, 100.0, 2.0), "100 IOPS ± 2%: {lowered:.2}");

    // Down to 1 per second, then up to 1000: a request waiting up to a second for its
    // token goes at once, and the next follows — two more requests within 100 ms of
    // the command, where 1/s would take a second or more.
    let (status, body) = call(
        addr,
        "POST",
        "/api/v1/partitions/iops/resize",
        Some(r#"{"disk_iops": 1}"#),
    );
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_millis(2500));
    let count = |l: &Value, t| {
        let s = disk(l, t, "iops");
        s.reads + s.writes
    };
    let (l4, t4) = sample(addr);
    let before = count(&l4, t4);
    let start = Instant::now();
    let (status, body) = call(
        addr,
        "POST",
        "/api/v1/partitions/iops/resize",
        Some(r#"{"disk_iops": 1000}"#),
    );
    assert_eq!(status, 200, "{body}");
    let took = loop {
        let (l, t) = sample(addr);
        if count(&l, t) >= before + 2 {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the raised budget never applied: {} requests since",
            count(&l, t) - before
        );
    };
    println!("disk governor: raised live from 1 to 1000 IOPS: in effect within {took:?}");
    assert!(
        took <= Duration::from_millis(100),
        "a budget change takes effect within 100 ms of the command: {took:?}"
    );
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn above_its_high_water_mark_a_partition_grows_slowly_and_says_so() {
    let d = dir("memhigh");
    let config = [("etc/hostile.toml", "mode = \"exhaust-memory\"\n")];
    let agents = [
        TestAgent {
            name: "grow-marked",
            example: "hostile",
            config: &config,
        },
        TestAgent {
            name: "grow-free",
            example: "hostile",
            config: &config,
        },
    ];
    let partitions = "[[partition]]\nname = \"marked\"\nmemory_mib = 16\ncpus = 1\n\n\
                      [[partition]]\nname = \"unmarked\"\nmemory_mib = 16\ncpus = 1\n";
    let protection = "kind = \"protection\"\n\n[[limit]]\npartition = \"marked\"\n\
                      memory = { cap_mib = 16, high_mib = 12 }\n";
    let image = build_appliance(
        &d,
        &plinth::image::example_spec(
            256,
            &["grow-marked", "grow-free"],
            partitions,
            &["deployment.toml", "protection.toml"],
        ),
        &[
            (
                "deployment.toml",
                &plinth::image::example_deployment(&[
                    ("grow-marked", "marked"),
                    ("grow-free", "unmarked"),
                ]),
            ),
            ("protection.toml", protection),
        ],
        &agents,
    );
    let (mut rt, addr) = boot_appliance(image);
    // From each agent's first line to the quota's refusal, by the guest's clock (the
    // log's stamps), whichever agent gets there first.
    let stamp = |text: &str| -> f64 {
        text.trim_start_matches('[')
            .split(']')
            .next()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("no time stamp: {text}"))
    };
    let (mut start, mut end) = ([None; 2], [None; 2]);
    let who = ["unmarked/grow-free", "marked/grow-marked"];
    while end.iter().any(Option::is_none) {
        let line = rt.expect_line("hostile: ");
        for (i, w) in who.iter().enumerate() {
            if line
                .text
                .contains(&format!("{w}: hostile: mode exhaust-memory"))
            {
                start[i] = Some(stamp(&line.text));
            }
            if line
                .text
                .contains(&format!("{w}: hostile: quota enforced after "))
            {
                let mib: u64 = line
                    .text
                    .rsplit("after ")
                    .next()
                    .and_then(|t| t.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{}", line.text));
                end[i] = Some((stamp(&line.text), mib));
            }
        }
    }
    let span = |i: usize| {
        let (t, mib) = end[i].unwrap();
        let t0 = start[i].unwrap_or_else(|| panic!("{} started unseen", who[i]));
        (Duration::from_secs_f64(t - t0), mib)
    };
    let ((free_took, free_mib), (marked_took, marked_mib)) = (span(0), span(1));
    println!(
        "memory governor: to the 16 MiB quota in 1 MiB grows: {free_took:?} without a mark \
         ({free_mib} MiB), {marked_took:?} with a 12 MiB mark ({marked_mib} MiB)"
    );
    // The mark slows, and does not move the quota.
    assert_eq!(marked_mib, free_mib, "the hard quota is the same");
    assert!(
        marked_took >= Duration::from_secs(4) && marked_took >= 5 * free_took,
        "past the mark each grow sleeps (Linux's memory.high penalty, up to 2 s): \
         {marked_took:?} against {free_took:?}"
    );
    let events = get(addr, "/api/v1/events")["events"]
        .as_array()
        .unwrap()
        .clone();
    let high: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "memory_high")
        .collect();
    assert_eq!(high.len(), 1, "one event for the one crossing: {high:?}");
    let e = high[0];
    assert_eq!(e["partition"], "marked", "{e}");
    assert_eq!(e["high_bytes"], 12 << 20, "{e}");
    assert_eq!(e["quota_bytes"], 16 << 20, "{e}");
    let used = e["used_bytes"].as_u64().unwrap();
    assert!(
        used > 12 << 20 && used <= 13 << 20,
        "the first grow past the mark: {e}"
    );
    // The mark is in the partition's view, and changes live.
    let view = get(addr, "/api/v1/partitions/marked");
    assert_eq!(view["memory"]["high_bytes"], 12 << 20, "{view}");
    assert!(get(addr, "/api/v1/partitions/unmarked")["memory"]["high_bytes"].is_null());
    let (status, body) = call(
        addr,
        "POST",
        "/api/v1/partitions/marked/resize",
        Some(r#"{"memory_high_mib": 17}"#),
    );
    assert_eq!(status, 409, "above the 16 MiB quota: {body}");
    let (status, body) = call(
        addr,
        "POST",
        "/api/v1/partitions/marked/resize",
        Some(r#"{"memory_high_mib": 0}"#),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["memory"]["high_bytes"].is_null(), "removed: {body}");

    // As `plinth events` prints it.
    let mut lines = Vec::new();
    plinth::events::print(
        addr,
        0,
        false,
        Duration::ZERO,
        Duration::from_secs(10),
        |l| lines.push(l.to_string()),
    )
    .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("marked/grow-marked  memory_high high_bytes=12582912")),
        "{lines:#?}"
    );
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_policy_changes_live_and_a_bad_one_changes_nothing() {
    let d = dir("policy");
    let config = [(
        "etc/ioload.toml",
        "op = \"read\"\nbytes = 4096\nspan_sectors = 4096\n",
    )];
    let agents = [TestAgent {
        name: "io-live",
        example: "ioload",
        config: &config,
    }];
    let partitions = "[[partition]]\nname = \"live\"\nmemory_mib = 4\ncpus = 1\ndisk_mib = 4\n";
    let protection = |iops: u64| {
        format!(
            "kind = \"protection\"\n\n[[limit]]\npartition = \"live\"\ndisk = {{ iops = {iops} }}\n"
        )
    };
    let image = build_appliance(
        &d,
        &plinth::image::example_spec(
            256,
            &["io-live"],
            partitions,
            &["deployment.toml", "protection.toml"],
        ),
        &[
            (
                "deployment.toml",
                &plinth::image::example_deployment(&[("io-live", "live")]),
            ),
            ("protection.toml", &protection(1)),
        ],
        &agents,
    );
    let (mut rt, addr) = boot_appliance(image);
    rt.expect_line("live/io-live: ioload: ");
    let listed = get(addr, "/api/v1/policies");
    let names: Vec<&str> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["deployment.toml", "protection.toml"], "{listed}");
    assert_eq!(listed["files"][1]["kind"], "protection");
    assert_eq!(listed["policy"]["limits"][0]["disk"]["iops"], 1, "{listed}");

    // Applied as an operator would: the file, through `plinth policy apply`.
    let file = d.join("protection.toml");
    let count = || {
        let (l, t) = sample(addr);
        let s = disk(&l, t, "live");
        s.reads + s.writes
    };
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&file, protection(1000)).unwrap();
    let before = count();
    let start = Instant::now();
    let applied = plinth::policy::apply(addr, &file, "protection.toml", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let took = loop {
        if count() >= before + 2 {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the new policy never applied"
        );
    };
    println!(
        "policy: protection.toml changed live from 1 to 1000 IOPS: applied in {} us by the \
         runtime, in effect within {took:?} of the command",
        applied.applied_us
    );
    assert!(took <= Duration::from_millis(100), "{took:?}");
    std::thread::sleep(Duration::from_secs(2));
    let (l0, t0) = sample(addr);
    std::thread::sleep(Duration::from_secs(5));
    let (l1, t1) = sample(addr);
    let (rate, _) = rates(disk(&l0, t0, "live"), disk(&l1, t1, "live"));
    println!("policy: after the change: {rate:.2} IOPS");
    assert!(within(rate, 1000.0, 2.0), "1000 IOPS ± 2%: {rate:.2}");
    let in_force = get(addr, "/api/v1/policies");
    assert_eq!(in_force["policy"]["limits"][0]["disk"]["iops"], 1000);

    // Hostile policies: each refused with a clear answer, and nothing changes.
    let put = |body: &[u8]| {
        let r = plinth::api::request_typed(
            addr,
            "PUT",
            "/api/v1/policies/protection.toml",
            Some(("application/toml", body)),
            Duration::from_secs(10),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        (r.status, v)
    };
    let nested = format!(
        "kind = \"protection\"\nx = {}{}\n",
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a value out of range",
            b"kind = \"protection\"\n\n[[limit]]\npartition = \"live\"\ndisk = { iops = 0 }\n"
                .to_vec(),
            422,
            "protection.toml:5:17: `limit[0].disk.iops` = 0 is out of range",
        ),
        (
            "an unknown partition",
            protection(5).replace("\"live\"", "\"ghost\"").into_bytes(),
            422,
            "protection.toml:4:13: partition `ghost` is not in the appliance",
        ),
        (
            "deep nesting",
            nested.into_bytes(),
            422,
            "protection.toml:2:21: arrays and inline tables nested more than 16 deep",
        ),
        (
            "an unknown kind",
            b"kind = \"firewall\"\n".to_vec(),
            422,
            "protection.toml:1:8:",
        ),
        (
            "a tenants file",
            b"kind = \"tenants\"\n\n[[pool]]\nname = \"p\"\nranges = [\"100-110\"]\n".to_vec(),
            409,
            "tenants and VLAN pools",
        ),
        ("not UTF-8", vec![0xff, 0xfe, 0x00], 400, "UTF-8"),
        ("huge", vec![b'#'; 2 << 20], 413, ""),
    ];
    for (what, body, status, says) in cases {
        let (got, v) = put(&body);
        let text = match v["problems"].as_array() {
            Some(ps) => ps
                .iter()
                .map(|p| {
                    format!(
                        "{}:{}:{}: {}",
                        p["file"].as_str().unwrap_or(""),
                        p["line"],
                        p["col"],
                        p["message"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
            None => v["error"].as_str().unwrap_or("").to_string(),
        };
        println!(
            "policy: {what}: {got} {}",
            text.lines().next().unwrap_or("")
        );
        assert_eq!(got, status, "{what}: {v}");
        assert!(text.contains(says), "{what}: {text}");
        assert_eq!(
            get(addr, "/api/v1/policies"),
            in_force,
            "{what} changed the policies in force"
        );
    }
    // The limit still holds and the runtime answers as before.
    let (l2, t2) = sample(addr);
    std::thread::sleep(Duration::from_secs(3));
    let (l3, t3) = sample(addr);
    let (rate, _) = rates(disk(&l2, t2, "live"), disk(&l3, t3, "live"));
    assert!(within(rate, 1000.0, 3.0), "still 1000 IOPS: {rate:.2}");
    assert_eq!(get(addr, "/api/v1/health")["status"], "ok");

    // A resize made since stands when a policy that does not touch it changes.
    let (status, body) = call(
        addr,
        "POST",
        "/api/v1/partitions/live/resize",
        Some(r#"{"disk_iops": 500}"#),
    );
    assert_eq!(status, 200, "{body}");
    let rules = d.join("troubleshooting.toml");
    std::fs::write(
        &rules,
        "kind = \"troubleshooting\"\n\n[[rule]]\nagent = \"io-live\"\nrestart = \"on-failure\"\n\
         max_restarts = 3\nwindow_secs = 60\non_exhausted = [\"alert\"]\n",
    )
    .unwrap();
    plinth::policy::apply(
        addr,
        &rules,
        "troubleshooting.toml",
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let listed = get(addr, "/api/v1/policies");
    assert_eq!(
        listed["files"][2]["name"], "troubleshooting.toml",
        "{listed}"
    );
    let view = get(addr, "/api/v1/partitions/live");
    assert_eq!(
        view["disk"]["rate"]["iops"], 500,
        "the resize stands: {view}"
    );

    // Time the runtime holds an agent in its gate is not the agent's silence: at one
    // request a second ioload heartbeats about once a second, nearly all of it waiting
    // for its budget, and a 700 ms watchdog leaves it alone.
    let (status, body) = call(
        addr,
        "POST",
        "/api/v1/partitions/live/resize",
        Some(r#"{"disk_iops": 1}"#),
    );
    assert_eq!(status, 200, "{body}");
    std::fs::write(
        &rules,
        "kind = \"troubleshooting\"\n\n[[rule]]\nagent = \"io-live\"\nrestart = \"on-failure\"\n\
         max_restarts = 3\nwindow_secs = 60\non_exhausted = [\"alert\"]\nheartbeat_timeout_ms = 700\n",
    )
    .unwrap();
    plinth::policy::apply(
        addr,
        &rules,
        "troubleshooting.toml",
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(6));
    let view = get(addr, "/api/v1/partitions/live");
    let agent = &view["agents"][0];
    let hung = get(addr, "/api/v1/events")["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "agent_hung")
        .count();
    println!(
        "policy: held at 1 IOPS under a 700 ms watchdog for 6 s: {} restarts, {hung} hung, {} heartbeats",
        agent["restarts"], agent["heartbeats"]
    );
    assert_eq!(
        (agent["status"].as_str(), hung),
        (Some("running"), 0),
        "{view}"
    );
    assert_eq!(agent["restarts"], 0, "{view}");
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn usage_is_metered_exactly_by_tenant_across_restarts() {
    let d = dir("meter");
    // 500 writes of 8 KiB, then a failure: restarted once, 500 more, then quarantined.
    let io = [(
        "etc/ioload.toml",
        "op = \"write\"\nbytes = 8192\nspan_sectors = 4096\ncount = 500\nexit = 1\n",
    )];
    let agents = [
        TestAgent {
            name: "io-meter",
            example: "ioload",
            config: &io,
        },
        TestAgent {
            name: "burn",
            example: "spinner",
            config: &[],
        },
    ];
    let partitions = "[[partition]]\nname = \"metered\"\nmemory_mib = 4\ncpus = 1\ndisk_mib = 4\n\n\
                      [[partition]]\nname = \"burner\"\nmemory_mib = 4\ncpus = 1\n\n\
                      [[partition]]\nname = \"idle\"\nmemory_mib = 4\ncpus = 1\n";
    let tenants = "kind = \"tenants\"\n\n[[tenant]]\nname = \"acme\"\nvlan = 100\n\
                   partitions = [\"metered\", \"burner\"]\n\n[[tenant]]\nname = \"globex\"\n\
                   vlan = 200\npartitions = [\"idle\"]\n";
    let protection = "kind = \"protection\"\n\n[[limit]]\npartition = \"burner\"\n\
                      cpu = { cap_percent = 50 }\n";
    let troubleshooting = "kind = \"troubleshooting\"\n\n[[rule]]\nagent = \"io-meter\"\n\
                           restart = \"on-failure\"\nmax_restarts = 1\nwindow_secs = 60\n\
                           backoff = { initial_ms = 50 }\non_exhausted = [\"quarantine\"]\n";
    let files = [
        "deployment.toml",
        "tenants.toml",
        "protection.toml",
        "troubleshooting.toml",
    ];
    let image = build_appliance(
        &d,
        &plinth::image::example_spec(256, &["io-meter", "burn"], partitions, &files),
        &[
            (
                "deployment.toml",
                &plinth::image::example_deployment(&[("io-meter", "metered"), ("burn", "burner")]),
            ),
            ("tenants.toml", tenants),
            ("protection.toml", protection),
            ("troubleshooting.toml", troubleshooting),
        ],
        &agents,
    );
    let (mut rt, addr) = boot_appliance(image.clone());
    rt.expect_line("metered/io-meter: ioload: done 500 requests, 4096000 bytes");
    rt.expect_line("metered/io-meter: ioload: done 500 requests, 4096000 bytes");
    rt.expect_line("QUARANTINED");
    // The spinner burns at its 50% cap from its start; after 20 s (so the cap's 100 ms
    // period, half of it the most a partial one can differ, is 0.25% of the whole), stop
    // it and read the bill.
    std::thread::sleep(Duration::from_secs(20));
    let (status, body) = call(addr, "POST", "/api/v1/partitions/burner/stop", None);
    assert_eq!(status, 200, "{body}");
    let events = get(addr, "/api/v1/events")["events"]
        .as_array()
        .unwrap()
        .clone();
    let started_ms = events
        .iter()
        .find(|e| e["kind"] == "agent_started" && e["partition"] == "burner")
        .and_then(|e| e["time_ms"].as_f64())
        .expect("burn started");
    let usage = get(addr, "/api/v1/usage");
    let stopped_ms = usage["uptime_ns"].as_f64().unwrap() / 1e6;
    let acme = usage["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "acme")
        .unwrap_or_else(|| panic!("{usage}"))
        .clone();
    let part = |name: &str| {
        acme["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["partition"] == name)
            .unwrap_or_else(|| panic!("{name}: {acme}"))
            .clone()
    };
    let metered = part("metered");
    let burner = part("burner");
    // Burned between its start and the stop, at the cap (the stop's own time is within
    // the usage read's).
    let cpu_s = burner["cpu_ns"].as_f64().unwrap() / 1e9;
    let expected_s = 0.5 * (stopped_ms - started_ms) / 1e3;
    println!(
        "metering: metered wrote {} times, {} bytes; burner {cpu_s:.4} CPU-s against \
         {expected_s:.4} expected at its 50% cap; acme total {}",
        metered["disk_writes"], metered["disk_written_bytes"], acme["total"]
    );
    assert_eq!(metered["disk_writes"], 1000, "two runs of 500: {metered}");
    assert_eq!(metered["disk_written_bytes"], 1000 * 8192, "{metered}");
    assert_eq!(metered["disk_reads"], 0, "{metered}");
    assert!(
        (cpu_s - expected_s).abs() <= 0.01 * expected_s,
        "CPU within 1%: {cpu_s} against {expected_s}"
    );
    assert!(metered["memory_gib_hours"].as_f64().unwrap() > 0.0);
    let total = &acme["total"];
    assert_eq!(total["disk_writes"], 1000);
    assert_eq!(
        total["cpu_ns"].as_u64().unwrap(),
        metered["cpu_ns"].as_u64().unwrap() + burner["cpu_ns"].as_u64().unwrap()
    );
    // Another tenant sees only its own with ?tenant=.
    let globex = get(addr, "/api/v1/usage?tenant=globex");
    let tenants = globex["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 1, "{globex}");
    assert_eq!(tenants[0]["partitions"][0]["partition"], "idle");
    assert_eq!(tenants[0]["total"]["disk_writes"], 0);
    // A resize keeps the counts; a termination keeps them on the books.
    let (status, body) = call(
        addr,
        "POST",
        "/api/v1/partitions/metered/resize",
        Some(r#"{"memory_mib": 8}"#),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(addr, "DELETE", "/api/v1/partitions/metered", None);
    assert_eq!(status, 200, "{body}");
    let after = get(addr, "/api/v1/usage?tenant=acme");
    let gone = after["tenants"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"] == "metered")
        .unwrap_or_else(|| panic!("{after}"))
        .clone();
    assert_eq!(gone["terminated"], true, "{gone}");
    assert_eq!(gone["disk_writes"], 1000, "{gone}");
    let burner_cpu = |usage: &Value| {
        usage["tenants"][0]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["partition"] == "burner" && p["terminated"] == false)
            .and_then(|p| p["cpu_ns"].as_u64())
            .unwrap_or_else(|| panic!("{usage}"))
    };
    let burned = burner_cpu(&after);
    // And Prometheus says the same.
    let metrics = plinth::api::get(addr, "/metrics", Duration::from_secs(10))
        .unwrap()
        .text();
    assert!(
        metrics
            .contains("plinth_usage_disk_writes_total{tenant=\"acme\",partition=\"metered\",state=\"terminated\"} 1000"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("plinth_usage"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    rt.shutdown();

    // The runtime restarted from the same disk: the books go on from its journal. The
    // terminated partition is on them as it was; the spec's partitions are created again
    // and go on from their figures.
    let (mut rt, addr) = boot_appliance(image.clone());
    rt.expect_seen("usage: carried forward");
    let again = get(addr, "/api/v1/usage?tenant=acme");
    let gone = again["tenants"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"] == "metered" && p["terminated"] == true)
        .unwrap_or_else(|| panic!("{again}"))
        .clone();
    println!(
        "metering: after a restart from the same disk: metered (terminated) {} writes, {} \
         bytes; burner {} CPU-ns (was {burned})",
        gone["disk_writes"],
        gone["disk_written_bytes"],
        burner_cpu(&again)
    );
    assert_eq!(gone["disk_writes"], 1000, "{gone}");
    assert_eq!(gone["disk_written_bytes"], 1000 * 8192, "{gone}");
    // Carried once: what it had, plus at most its 50% cap of the new run so far.
    let up = again["uptime_ns"].as_u64().unwrap();
    assert!(burner_cpu(&again) >= burned, "{again}");
    assert!(
        burner_cpu(&again) <= burned + up / 2 + 100_000_000,
        "carried more than once? {} against {burned} + half of {up}: {again}",
        burner_cpu(&again)
    );

    // A power cut: the runtime killed with SIGKILL, no shutdown. What it recorded (a
    // usage record every 5 s) comes back; at most the last 5 s are lost.
    let before_cut = burner_cpu(&get(addr, "/api/v1/usage?tenant=acme"));
    std::thread::sleep(Duration::from_secs(7));
    rt.kill();
    let (mut rt, addr) = boot_appliance(image);
    rt.expect_seen("usage: carried forward");
    let after_cut = get(addr, "/api/v1/usage?tenant=acme");
    let gone = after_cut["tenants"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"] == "metered" && p["terminated"] == true)
        .unwrap_or_else(|| panic!("{after_cut}"))
        .clone();
    println!(
        "metering: after SIGKILL and a boot from the same disk: metered (terminated) {} \
         writes; burner {} CPU-ns (read {before_cut} 7 s before the kill)",
        gone["disk_writes"],
        burner_cpu(&after_cut)
    );
    assert_eq!(gone["disk_writes"], 1000, "{gone}");
    assert!(burner_cpu(&after_cut) >= before_cut, "{after_cut}");
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&d);
}
