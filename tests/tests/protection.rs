//! Contention protection end to end: three agents of other partitions try to saturate
//! the CPU, the disk and memory while a protected partition's service is at work, and
//! the same again once the policy no longer protects it — so the governors are what
//! made the difference. What the test holds the runtime to is what the governors do to
//! the hogs, read from the runtime's own counters: the CPU hog held to its cap, the disk
//! hog to its budget, the memory hog's churn slowed, each by an event. The service's
//! latencies are printed beside them: on these machines the host's own noise in the
//! service's tail alone is as large as the 20% bound, so they are figures here,
//! not a verdict.
//!
//! The service is `ioload` paced at one 4 KiB read of its disk each 10 ms, timing each
//! request as its caller sees it (the call to its return, the wait for the CPU
//! included) and logging the latencies each second. Its own binary, so no other QEMU
//! shares the host's two cores while latencies are measured.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use plinth_tests::{Runtime, TestAgent, boot_appliance, build_appliance, call};
use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plinth-prot-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// How long each phase's latencies are taken over.
const PHASE: Duration = Duration::from_secs(5);
/// The partitions of the hogs: one for the CPU, one for the disk, one for memory.
const HOGS: [&str; 3] = ["bcpu", "bdisk", "bmem"];
/// Rounds (alone, then with the hogs) with protection, and again without.
const ROUNDS: usize = 3;
/// How long after a change a phase starts: the governors' steps (100 ms each, a few to
/// their floors) and the hogs' start are over.
const SETTLE: Duration = Duration::from_secs(3);

/// One second of the service's requests, as it logs them: how many, their median and
/// the longest, in microseconds, longest first.
#[derive(Clone, Debug)]
struct Second {
    n: u64,
    p50: u64,
    top: Vec<u64>,
}

/// The service's seconds logged over the next [`PHASE`].
fn phase(rt: &mut Runtime) -> Vec<Second> {
    let start = Instant::now();
    let mut got = Vec::new();
    loop {
        let line = rt.expect_line("service/svc: ioload: latency us");
        // A line covers the second before it: the first may reach back before the phase.
        if line.at < start + Duration::from_millis(1100) {
            continue;
        }
        let field = |key: &str| -> u64 {
            line.text
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {}", line.text))
        };
        let top = line
            .text
            .rsplit(" top")
            .next()
            .unwrap_or("")
            .split_whitespace()
            .map(|n| n.parse::<u64>().unwrap_or_else(|_| panic!("{}", line.text)))
            .collect();
        got.push(Second {
            n: field("n="),
            p50: field("p50="),
            top,
        });
        if line.at >= start + PHASE {
            return got;
        }
    }
}

/// The `p`th percentile (0.9 and above) of the requests of `seconds` together: exact as
/// long as it is among the longest each second logged.
fn tail(seconds: &[Second], p: f64) -> u64 {
    let n: u64 = seconds.iter().map(|s| s.n).sum();
    assert!(n > 0, "no requests measured");
    let mut top: Vec<u64> = seconds.iter().flat_map(|s| s.top.iter().copied()).collect();
    top.sort_unstable_by(|a, b| b.cmp(a));
    // The rank from the top of the `p`th percentile, as nearest-rank counts it.
    let rank = ((1.0 - p) * n as f64).floor() as usize;
    *top.get(rank).unwrap_or_else(|| {
        panic!(
            "the {p} percentile is past the {} longest logged",
            top.len()
        )
    })
}

/// "p50/p99/max us (N requests)"; the median is the seconds' median median.
fn summary(seconds: &[Second]) -> String {
    let mut p50s: Vec<u64> = seconds.iter().map(|s| s.p50).collect();
    p50s.sort_unstable();
    format!(
        "{}/{}/{} us ({} requests)",
        p50s.get(p50s.len() / 2).copied().unwrap_or(0),
        tail(seconds, 0.99),
        tail(seconds, 1.0),
        seconds.iter().map(|s| s.n).sum::<u64>()
    )
}

/// Pins the runtime's vCPU thread (the busiest of QEMU's) to host CPU 1 and QEMU's other
/// threads to CPU 0, so that the guest's one CPU is not also where QEMU completes its
/// disk requests: what is measured is then the runtime, less the host's scheduling.
/// `None` (nothing pinned) with fewer than two host CPUs or if `taskset` refuses.
fn pin_vcpu(rt: &Runtime) -> Option<String> {
    if std::thread::available_parallelism().map_or(1, usize::from) < 2 {
        return None;
    }
    let pid = rt.machine.pid();
    let threads: Vec<(u32, u64)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .filter_map(|e| {
            let tid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
            // After the command's closing parenthesis, utime and stime are the 12th and
            // 13th fields.
            let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
            Some((
                tid,
                f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
            ))
        })
        .collect();
    let vcpu = threads.iter().max_by_key(|(_, t)| *t)?.0;
    let pin = |tid: u32, cpu: u32| {
        std::process::Command::new("taskset")
            .args(["-pc", &cpu.to_string(), &tid.to_string()])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let mut ok = pin(vcpu, 1);
    for (tid, _) in threads.iter().filter(|(t, _)| *t != vcpu) {
        ok &= pin(*tid, 0);
    }
    ok.then(|| {
        format!(
            "vCPU thread {vcpu} on host CPU 1, {} others on CPU 0",
            threads.len() - 1
        )
    })
}

/// What the hogs used, from the runtime's counters: the CPU hog's CPU time, the disk
/// hog's requests, and the event sequence (the memory hog's starts are its churn: it
/// exits at its quota and is restarted), with the runtime's clock.
#[derive(Clone, Copy, Debug)]
struct HogCounters {
    uptime_ns: u64,
    cpu_ns: u64,
    disk_ops: u64,
    last_event: u64,
}

/// What the hogs used between two readings.
#[derive(Clone, Copy, Debug)]
struct HogUse {
    /// Of one CPU.
    cpu_share: f64,
    disk_iops: f64,
    mem_starts: usize,
}

fn hog_use(addr: SocketAddr) -> HogCounters {
    let (status, usage) = call(addr, "GET", "/api/v1/usage", None);
    assert_eq!(status, 200, "{usage}");
    let part = |name: &str| {
        usage["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| t["partitions"].as_array().unwrap().iter())
            .find(|p| p["partition"] == name && p["terminated"] == false)
            .unwrap_or_else(|| panic!("no {name} in {usage}"))
            .clone()
    };
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}: {v}"));
    let (disk, cpu) = (part("bdisk"), part("bcpu"));
    let (status, events) = call(addr, "GET", "/api/v1/events?since=0", None);
    assert_eq!(status, 200, "{events}");
    HogCounters {
        uptime_ns: n(&usage, "uptime_ns"),
        cpu_ns: n(&cpu, "cpu_ns"),
        disk_ops: n(&disk, "disk_reads") + n(&disk, "disk_writes"),
        last_event: n(&events, "last_seq"),
    }
}

impl HogCounters {
    fn until(&self, later: &HogCounters, addr: SocketAddr) -> HogUse {
        let secs = (later.uptime_ns - self.uptime_ns) as f64 / 1e9;
        let path = format!("/api/v1/events?since={}", self.last_event);
        let (status, events) = call(addr, "GET", &path, None);
        assert_eq!(status, 200, "{events}");
        let mem_starts = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["kind"] == "agent_started"
                    && e["partition"] == "bmem"
                    && e["seq"].as_u64().is_some_and(|s| s <= later.last_event)
            })
            .count();
        HogUse {
            cpu_share: (later.cpu_ns - self.cpu_ns) as f64 / 1e9 / secs,
            disk_iops: (later.disk_ops - self.disk_ops) as f64 / secs,
            mem_starts,
        }
    }
}

#[test]
fn protection_keeps_cpu_disk_and_memory_hogs_from_a_protected_services_latency() {
    let d = dir("hogs");
    let svc = [(
        "etc/ioload.toml",
        "op = \"read\"\nbytes = 4096\nspan_sectors = 8192\ninterval_ms = 10\n",
    )];
    let disk_hog = [(
        "etc/ioload.toml",
        "op = \"write\"\nbytes = 65536\nspan_sectors = 32768\n",
    )];
    let mem_hog = [(
        "etc/hostile.toml",
        "mode = \"hog-memory\"\nexit_at_quota = true\n",
    )];
    let agents = [
        TestAgent {
            name: "svc",
            example: "ioload",
            config: &svc,
        },
        TestAgent {
            name: "cpu-hog",
            example: "spinner",
            config: &[],
        },
        TestAgent {
            name: "disk-hog",
            example: "ioload",
            config: &disk_hog,
        },
        TestAgent {
            name: "mem-hog",
            example: "hostile",
            config: &mem_hog,
        },
    ];
    let partitions = "[[partition]]\nname = \"service\"\nmemory_mib = 8\ncpus = 1\ndisk_mib = 4\n\n\
                      [[partition]]\nname = \"bcpu\"\nmemory_mib = 8\ncpus = 1\n\n\
                      [[partition]]\nname = \"bdisk\"\nmemory_mib = 8\ncpus = 1\ndisk_mib = 16\n\n\
                      [[partition]]\nname = \"bmem\"\nmemory_mib = 140\ncpus = 1\n";
    let protection = |protect: bool| {
        format!(
            "kind = \"protection\"\n\n[contention]\ncpu_busy_percent = 20\ncpu_throttle_floor_percent = 2\n\
             disk_busy_percent = 5\ndisk_throttle_floor_percent = 2\nmemory_used_percent = 40\nmemory_throttle_floor_percent = 1\n\n\
             [[limit]]\npartition = \"service\"\nprotected = {protect}\n"
        )
    };
    let image = build_appliance(
        &d,
        &plinth::image::example_spec(
            256,
            &["svc", "cpu-hog", "disk-hog", "mem-hog"],
            partitions,
            &["deployment.toml", "protection.toml", "troubleshooting.toml"],
        ),
        &[
            (
                "deployment.toml",
                &plinth::image::example_deployment(&[
                    ("svc", "service"),
                    ("cpu-hog", "bcpu"),
                    ("disk-hog", "bdisk"),
                    ("mem-hog", "bmem"),
                ]),
            ),
            ("protection.toml", &protection(true)),
            (
                "troubleshooting.toml",
                "kind = \"troubleshooting\"\n\n[[rule]]\nagent = \"mem-hog\"\n\
                 restart = \"always\"\nmax_restarts = 1000\nwindow_secs = 1\n\
                 backoff = { initial_ms = 1, max_ms = 1, multiplier = 1 }\n\
                 on_exhausted = [\"alert\"]\n",
            ),
        ],
        &agents,
    );
    let (mut rt, addr) = boot_appliance(image);
    rt.expect_line("service/svc: ioload: ");
    println!(
        "protection: {}",
        pin_vcpu(&rt).unwrap_or_else(|| "nothing pinned".into())
    );
    let act = |p: &str, a: &str| {
        let (status, body) = call(addr, "POST", &format!("/api/v1/partitions/{p}/{a}"), None);
        assert_eq!(status, 200, "{body}");
    };
    for p in HOGS {
        act(p, "stop");
    }
    // Rounds of the service alone and then with the hogs, the figure is each side's p99
    // over all its rounds: interleaved, the host's slow moments (a TCG guest's latency
    // drifts over tens of seconds) fall on both sides alike.
    let rounds = |rt: &mut Runtime, n: usize, what: &str| -> (f64, Vec<HogUse>) {
        let (mut alone, mut hogs, mut used) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            std::thread::sleep(SETTLE);
            let a = phase(rt);
            for p in HOGS {
                act(p, "start");
            }
            std::thread::sleep(SETTLE);
            let before = hog_use(addr);
            let h = phase(rt);
            let u = before.until(&hog_use(addr), addr);
            for p in HOGS {
                act(p, "stop");
            }
            println!(
                "protection: round, alone {}; with the hogs, {what}: {}; the hogs: CPU {:.1}%, \
                 disk {:.0} IOPS, memory hog started {} times",
                summary(&a),
                summary(&h),
                u.cpu_share * 100.0,
                u.disk_iops,
                u.mem_starts
            );
            alone.extend(a);
            hogs.extend(h);
            used.push(u);
        }
        let ratio = tail(&hogs, 0.99) as f64 / tail(&alone, 0.99) as f64;
        println!(
            "protection: {what}: alone {}; with the hogs {}; p99 x{ratio:.2}",
            summary(&alone),
            summary(&hogs)
        );
        (ratio, used)
    };
    let (p, held) = rounds(&mut rt, ROUNDS, "protected");
    // Every change is an event: each resource's governor throttled the hogs. (Read
    // now: unprotected, the memory hog's restarts soon fill the event ring.)
    let (status, events) = call(addr, "GET", "/api/v1/events", None);
    assert_eq!(status, 200, "{events}");
    let events = events["events"].as_array().unwrap().clone();
    for (kind, part) in [
        ("cpu_throttled", "bcpu"),
        ("disk_throttled", "bdisk"),
        ("memory_throttled", "bmem"),
    ] {
        assert!(
            events
                .iter()
                .any(|e| e["kind"] == kind && e["partition"] == part),
            "no {kind} event for {part}"
        );
    }
    // The same hogs, the same thresholds, the service no longer protected.
    let file = d.join("unprotected.toml");
    std::fs::write(&file, protection(false)).unwrap();
    plinth::policy::apply(addr, &file, "protection.toml", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let (u, free) = rounds(&mut rt, ROUNDS, "unprotected");
    println!(
        "protection: service p99 with the hogs against alone: protected x{p:.2}, unprotected x{u:.2}"
    );
    // Protected, each governor held its hog, round after round; unprotected, the same
    // hogs took what they could.
    for (h, f) in held.iter().zip(&free) {
        assert!(
            h.cpu_share <= 0.10,
            "protected, the CPU hog had {:.1}%",
            h.cpu_share * 100.0
        );
        assert!(
            f.cpu_share >= 3.0 * h.cpu_share.max(0.02),
            "unprotected, the CPU hog had {:.1}% (protected {:.1}%)",
            f.cpu_share * 100.0,
            h.cpu_share * 100.0
        );
        assert!(
            h.disk_iops <= 0.25 * f.disk_iops,
            "the disk hog: {:.0} IOPS protected, {:.0} unprotected",
            h.disk_iops,
            f.disk_iops
        );
        assert!(
            h.mem_starts <= 1 && f.mem_starts >= 3,
            "the memory hog started {} times protected, {} unprotected",
            h.mem_starts,
            f.mem_starts
        );
    }
    drop(rt);
    let _ = std::fs::remove_dir_all(&d);
}
