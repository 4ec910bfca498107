//! Partitions and agents end to end: appliances built from hostshim's example agents,
//! booted, and watched the way an operator would — serial lines, `/api/v1/partitions`
//! and `/api/v1/events`. Negative cases first: agents that fault, abuse system calls or
//! exhaust their memory must be contained while their neighbours carry on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use plinth::api;
use plinth_tests::{Runtime, TestAgent, boot_appliance as boot, build_appliance, call};
use serde_json::Value;

const T: Duration = Duration::from_secs(10);

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("plinth-part-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The host's cores, as far as this binary's tests are concerned. The harness runs tests
/// on parallel threads, and under TCG guest time is host time: a QEMU the host cannot
/// schedule still sees its clock advance, so a neighbour's boots and requests would
/// change what the CPU-share test measures (a 20% cap read 22.5% while another test
/// cycled partitions). That test measures holding this for writing; every other test
/// holds it for reading while it runs, so they share the host with each other only.
static HOST: RwLock<()> = RwLock::new(());

/// For a test that may share the host's cores with other tests.
fn sharing_the_host() -> RwLockReadGuard<'static, ()> {
    HOST.read().unwrap_or_else(PoisonError::into_inner)
}

/// For a measurement nothing else in this binary may disturb.
fn alone_on_the_host() -> RwLockWriteGuard<'static, ()> {
    HOST.write().unwrap_or_else(PoisonError::into_inner)
}

fn get(addr: SocketAddr, path: &str) -> Value {
    let r = api::get(addr, path, T).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(
        r.status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("GET {path}: {e}: {:?}", String::from_utf8_lossy(&r.body)))
}

/// The agent `name` of partition `part` in a `/api/v1/partitions` answer.
fn agent<'a>(list: &'a Value, part: &str, name: &str) -> &'a Value {
    list["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == part)
        .unwrap_or_else(|| panic!("no partition {part}: {list}"))["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no agent {name} in {part}: {list}"))
}

fn events(addr: SocketAddr) -> Vec<Value> {
    get(addr, "/api/v1/events")["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn spec(agents: &[&str], partitions: &str, policies: &[&str]) -> String {
    plinth::image::example_spec(256, agents, partitions, policies)
}

fn deploy(pairs: &[(&str, &str)]) -> String {
    plinth::image::example_deployment(pairs)
}

#[test]
fn faulting_and_hostile_agents_are_contained_and_neighbours_carry_on() {
    let _host = sharing_the_host();
    let d = dir("isolation");
    let hostile = |name: &'static str, cfg: &'static str| TestAgent {
        name,
        example: "hostile",
        config: Box::leak(Box::new([("etc/hostile.toml", cfg)])),
    };
    let agents = [
        TestAgent {
            name: "hello",
            example: "hello",
            config: &[("etc/hello.toml", "interval_ms = 200\n")],
        },
        TestAgent {
            name: "scrubber",
            example: "scrubber",
            config: &[],
        },
        hostile("null-deref", "mode = \"null-deref\"\n"),
        hostile("write-kernel", "mode = \"write-kernel\"\n"),
        // Physical RAM at 64 MiB: frames of other partitions live around there, and the
        // kernel's identity map covers it (supervisor-only).
        hostile("read-other", "mode = \"read-other\"\naddress = 0x4000000\n"),
        hostile("invalid-opcode", "mode = \"invalid-opcode\"\n"),
        hostile("gp", "mode = \"gp\"\n"),
        hostile("stack-overflow", "mode = \"stack-overflow\"\n"),
        hostile("x87", "mode = \"x87\"\n"),
        hostile("bad-syscalls", "mode = \"bad-syscalls\"\n"),
        hostile("fuzzer", "mode = \"syscall-fuzz\"\n"),
    ];
    let names: Vec<&str> = agents.iter().map(|a| a.name).collect();
    let partitions = "
[[partition]]
name = \"victim\"
memory_mib = 16
cpus = 1
disk_mib = 4

[[partition]]
name = \"attacker\"
memory_mib = 32
cpus = 1

[[partition]]
name = \"prober\"
memory_mib = 16
cpus = 1
disk_mib = 1

[[partition]]
name = \"fuzzed\"
memory_mib = 8
cpus = 1
disk_mib = 1
";
    let deployment = deploy(&[
        ("hello", "victim"),
        ("scrubber", "victim"),
        ("null-deref", "attacker"),
        ("write-kernel", "attacker"),
        ("read-other", "attacker"),
        ("invalid-opcode", "attacker"),
        ("gp", "attacker"),
        ("stack-overflow", "attacker"),
        ("x87", "attacker"),
        ("bad-syscalls", "prober"),
        ("fuzzer", "fuzzed"),
    ]);
    let image = build_appliance(
        &d,
        &spec(&names, partitions, &["deployment.toml"]),
        &[("deployment.toml", &deployment)],
        &agents,
    );
    let (mut rt, addr) = boot(image);
    let t = rt.transcript();
    assert!(
        t.contains("cpu: agents run in ring 3; SMEP on, SMAP on, NX on, x87/SSE off"),
        "{t}"
    );

    // Every abuse of the system-call door came back as an error.
    rt.expect_line("prober/bad-syscalls: hostile: bad-syscalls done");
    let transcript = rt.transcript();
    let cases: Vec<&str> = transcript
        .lines()
        .filter(|l| l.contains("prober/bad-syscalls: hostile: ") && l.contains(" -> "))
        .collect();
    assert_eq!(cases.len(), 14, "{transcript}");
    for c in &cases {
        let code: i64 = c
            .split(" -> ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no code in {c:?}"));
        assert!(code < 0, "{c}");
        assert!(!c.contains("NOT AN ERROR"), "{c}");
    }
    assert!(
        !transcript.contains("this line must never be logged"),
        "{transcript}"
    );
    // A log call cannot start a console line of its own, or send escape sequences.
    assert!(
        !transcript
            .lines()
            .any(|l| l.starts_with("plinth: ready (forged")),
        "{transcript}"
    );
    assert!(
        transcript.contains(r"hostile: forging\u{a}plinth: ready (forged)\u{1b}[2J"),
        "{transcript}"
    );

    // 20 000 random system calls, every one answered.
    let line = rt
        .expect_line("fuzzed/fuzzer: hostile: syscall-fuzz done: ")
        .text;
    assert!(line.contains(" calls, "), "{line}");

    // Seven faults, each reported with partition, agent, vector and address.
    let mut faults = Vec::new();
    for _ in 0..100 {
        faults = events(addr)
            .into_iter()
            .filter(|e| e["kind"] == "agent_faulted")
            .collect();
        if faults.len() >= 7 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let fault = |agent: &str| {
        faults
            .iter()
            .find(|e| e["agent"] == agent)
            .unwrap_or_else(|| panic!("no fault of {agent}: {faults:?}"))
            .clone()
    };
    for (agent, vector, address) in [
        ("null-deref", 14, Some(0u64)),
        ("write-kernel", 14, Some(0x10_0000)),
        ("read-other", 14, Some(0x400_0000)),
        ("invalid-opcode", 6, None),
        ("x87", 7, None),
        ("gp", 13, None),
    ] {
        let f = fault(agent);
        assert_eq!(f["partition"], "attacker", "{f}");
        assert_eq!(f["vector"], vector, "{f}");
        if let Some(a) = address {
            assert_eq!(f["address"], a, "{f}");
            // A user-mode access (error code bit 2), never the kernel's.
            assert_ne!(f["error_code"].as_u64().unwrap() & 4, 0, "{f}");
        }
        let rip = f["rip"].as_u64().unwrap();
        assert!(
            (plinth_abi::IMAGE_BASE..plinth_abi::IMAGE_END).contains(&rip),
            "{f}"
        );
    }
    // The overflow ran into the unmapped page under the stack.
    let f = fault("stack-overflow");
    let guard = plinth_abi::STACK_TOP - plinth_abi::STACK_SIZE - plinth_abi::PAGE_SIZE;
    assert_eq!(f["vector"], 14, "{f}");
    let at = f["address"].as_u64().unwrap();
    assert!((guard..guard + plinth_abi::PAGE_SIZE).contains(&at), "{f}");
    let t = rt.transcript();
    assert!(!t.contains("NOT CONTAINED"), "{t}");
    assert!(
        t.contains("agent attacker/null-deref: FAULT page fault (vector 14)"),
        "{t}"
    );

    // The victim keeps heartbeating and its disk keeps verifying after every fault.
    let before = get(addr, "/api/v1/partitions");
    let beats = agent(&before, "victim", "hello")["heartbeats"]
        .as_u64()
        .unwrap();
    let passes = rt
        .transcript()
        .matches("victim/scrubber: scrubber: pass")
        .count();
    // Two more passes: the one in progress may end at once, the next only after the
    // scrubber's 1 s pause, in which hello (every 200 ms) must beat.
    rt.expect_line(&format!(
        "victim/scrubber: scrubber: pass {} verified",
        passes + 2
    ));
    let after = get(addr, "/api/v1/partitions");
    let hello = agent(&after, "victim", "hello");
    assert_eq!(hello["status"], "running", "{after}");
    assert!(
        hello["heartbeats"].as_u64().unwrap() > beats,
        "{beats} before: {before}\nafter: {after}"
    );
    assert_eq!(agent(&after, "victim", "scrubber")["status"], "running");
    assert_eq!(
        agent(&after, "fuzzed", "fuzzer")["status"],
        "running",
        "{after}"
    );
    assert!(!faults.iter().any(|f| f["agent"] == "fuzzer"), "{faults:?}");
    for a in [
        "null-deref",
        "write-kernel",
        "read-other",
        "invalid-opcode",
        "gp",
        "stack-overflow",
        "x87",
    ] {
        assert_eq!(agent(&after, "attacker", a)["status"], "ended", "{after}");
    }
    // The attacker's frames all came back when its agents ended.
    let attacker = after["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "attacker")
        .unwrap();
    assert_eq!(attacker["memory"]["used_bytes"], 0, "{attacker}");
    let health = api::get(addr, "/api/v1/health", T).unwrap();
    assert_eq!(health.status, 200);
    // The same counters reach Prometheus.
    let metrics = api::get(addr, "/metrics", T).unwrap().text();
    let beats_line = metrics
        .lines()
        .find(|l| {
            l.starts_with(r#"plinth_agent_heartbeats_total{partition="victim",agent="hello"} "#)
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let beats: f64 = beats_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(beats >= 1.0, "{beats_line}");
    assert!(
        metrics.contains(r#"plinth_partition_memory_used_bytes{partition="attacker"} 0"#),
        "{metrics}"
    );
    assert!(!rt.transcript().contains("NOT AN ERROR"));
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn memory_quota_is_an_error_to_the_agent_and_crashes_restart_then_quarantine() {
    let _host = sharing_the_host();
    let d = dir("memory");
    let agents = [
        TestAgent {
            name: "greedy",
            example: "hostile",
            config: &[("etc/hostile.toml", "mode = \"exhaust-memory\"\n")],
        },
        TestAgent {
            name: "crashy",
            example: "hostile",
            config: &[("etc/hostile.toml", "mode = \"crash\"\n")],
        },
    ];
    let partitions = "
[[partition]]
name = \"small\"
memory_mib = 8
cpus = 1

[[partition]]
name = \"flaky\"
memory_mib = 8
cpus = 1
";
    let troubleshooting = "kind = \"troubleshooting\"

[[rule]]
partition = \"flaky\"
restart = \"on-failure\"
max_restarts = 3
window_secs = 60
backoff = { initial_ms = 200, max_ms = 5000, multiplier = 2 }
on_exhausted = [\"quarantine\", \"alert\"]
";
    let image = build_appliance(
        &d,
        &spec(
            &["greedy", "crashy"],
            partitions,
            &["deployment.toml", "troubleshooting.toml"],
        ),
        &[
            (
                "deployment.toml",
                &deploy(&[("greedy", "small"), ("crashy", "flaky")]),
            ),
            ("troubleshooting.toml", troubleshooting),
        ],
        &agents,
    );
    let (mut rt, addr) = boot(image);

    // The quota: an error code to the agent, which carries on (and heartbeats).
    let line = rt
        .expect_line("small/greedy: hostile: quota enforced after ")
        .text;
    let mib: u64 = line
        .rsplit("after ")
        .next()
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    // 8 MiB less the image, stack and page tables, in whole MiB.
    assert!((5..8).contains(&mib), "{line}");
    let list = get(addr, "/api/v1/partitions");
    let small = &list["partitions"][0];
    assert_eq!(small["name"], "small");
    assert!(
        small["memory"]["used_bytes"].as_u64().unwrap() <= 8 << 20,
        "{small}"
    );
    assert!(
        small["memory"]["used_bytes"].as_u64().unwrap() > (mib << 20),
        "{small}"
    );
    assert_eq!(agent(&list, "small", "greedy")["status"], "running");

    // Crash, restart after 200, 400, 800 ms, then quarantine with an alert.
    rt.expect_line("agent flaky/crashy: QUARANTINED after 3 restarts within 60 s");
    let ev: Vec<Value> = events(addr)
        .into_iter()
        .filter(|e| e["agent"] == "crashy")
        .collect();
    let kinds: Vec<&str> = ev.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "agent_started",
            "agent_exited",
            "restart_scheduled",
            "agent_started",
            "agent_exited",
            "restart_scheduled",
            "agent_started",
            "agent_exited",
            "restart_scheduled",
            "agent_started",
            "agent_exited",
            "quarantined",
            "alert"
        ],
        "{ev:?}"
    );
    let delays: Vec<u64> = ev
        .iter()
        .filter(|e| e["kind"] == "restart_scheduled")
        .map(|e| e["delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays, [200, 400, 800]);
    // Each restart waited at least its backoff.
    let time = |i: usize| ev[i]["time_ms"].as_f64().unwrap();
    for (exit, start, delay) in [(1, 3, 200.0), (4, 6, 400.0), (7, 9, 800.0)] {
        assert!(time(start) - time(exit) >= delay, "{ev:?}");
    }
    for e in ev.iter().filter(|e| e["kind"] == "agent_exited") {
        assert_eq!(e["code"], 1, "{e}");
    }
    let list = get(addr, "/api/v1/partitions");
    let crashy = agent(&list, "flaky", "crashy");
    assert_eq!(crashy["status"], "quarantined", "{list}");
    assert_eq!(crashy["restarts"], 3, "{list}");
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&d);
}

/// The `[   s.micros]` stamp the runtime puts on a console line, in ms since boot.
fn stamp_ms(line: &str) -> f64 {
    let inner = line
        .split_once('[')
        .and_then(|(_, r)| r.split_once(']'))
        .map(|(t, _)| t.trim())
        .unwrap_or_else(|| panic!("no time stamp: {line}"));
    inner
        .parse::<f64>()
        .unwrap_or_else(|e| panic!("{e}: {line}"))
        * 1000.0
}

/// The watchdog: an agent that stops heartbeating (`hostile` in `hang` mode: a heartbeat
/// every 100 ms for 500 ms, then silence, alive) is ended within its interval + 10% of
/// its last heartbeat, restarted per its rule, and quarantined with an alert once its
/// restarts are used up; a neighbour under the same interval that keeps heartbeating is
/// left alone.
#[test]
fn a_silent_agent_is_ended_by_the_watchdog_restarted_then_quarantined() {
    let _host = sharing_the_host();
    let d = dir("watchdog");
    let agents = [
        TestAgent {
            name: "sleepy",
            example: "hostile",
            config: &[(
                "etc/hostile.toml",
                "mode = \"hang\"\nheartbeat_ms = 100\nhang_after_ms = 500\n",
            )],
        },
        TestAgent {
            name: "steady",
            example: "hostile",
            config: &[(
                "etc/hostile.toml",
                "mode = \"hang\"\nheartbeat_ms = 100\nhang_after_ms = 1000000000\n",
            )],
        },
    ];
    let partitions = "
[[partition]]
name = \"watched\"
memory_mib = 8
cpus = 1
";
    let troubleshooting = "kind = \"troubleshooting\"

[[rule]]
agent = \"sleepy\"
restart = \"on-failure\"
max_restarts = 2
window_secs = 60
backoff = { initial_ms = 50, max_ms = 1000, multiplier = 2 }
on_exhausted = [\"quarantine\", \"alert\"]
heartbeat_timeout_ms = 1000

[[rule]]
agent = \"steady\"
restart = \"on-failure\"
max_restarts = 2
window_secs = 60
on_exhausted = [\"alert\"]
heartbeat_timeout_ms = 1000
";
    let image = build_appliance(
        &d,
        &spec(
            &["sleepy", "steady"],
            partitions,
            &["deployment.toml", "troubleshooting.toml"],
        ),
        &[
            (
                "deployment.toml",
                &deploy(&[("sleepy", "watched"), ("steady", "watched")]),
            ),
            ("troubleshooting.toml", troubleshooting),
        ],
        &agents,
    );
    let (mut rt, addr) = boot(image);
    let mut gaps = Vec::new();
    for _ in 0..3 {
        let hanging = stamp_ms(
            &rt.expect_line("watched/sleepy: hostile: hanging after")
                .text,
        );
        let hung = rt.expect_line("agent watched/sleepy: HUNG: no heartbeat for");
        // The agent logs `hanging` one 100 ms sleep after its last heartbeat: from there
        // to the watchdog's end of it is the interval less that sleep, plus the delay.
        gaps.push(stamp_ms(&hung.text) - hanging);
    }
    rt.expect_line("agent watched/sleepy: QUARANTINED after 2 restarts within 60 s");
    let ev: Vec<Value> = events(addr)
        .into_iter()
        .filter(|e| e["agent"] == "sleepy")
        .collect();
    let kinds: Vec<&str> = ev.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "agent_started",
            "agent_hung",
            "restart_scheduled",
            "agent_started",
            "agent_hung",
            "restart_scheduled",
            "agent_started",
            "agent_hung",
            "quarantined",
            "alert"
        ],
        "{ev:?}"
    );
    let mut silent = Vec::new();
    let mut beats_before = 0;
    for e in ev.iter().filter(|e| e["kind"] == "agent_hung") {
        assert_eq!(e["timeout_ms"], 1000, "{e}");
        // Five heartbeats a run in its 500 ms (the first at once), give or take one; the
        // count is the agent's across its runs.
        let beats = e["heartbeats"].as_u64().unwrap();
        assert!((4..=6).contains(&(beats - beats_before)), "{e}");
        beats_before = beats;
        silent.push(e["silent_ms"].as_u64().unwrap());
    }
    println!(
        "watchdog: silent {silent:?} ms by the runtime's count at the end; from the \
         agent's `hanging` line to the end {gaps:.1?} ms"
    );
    // Within the interval + 10% of the last heartbeat, by the runtime's count and by
    // the console's stamps (the last heartbeat came at least 100 ms before `hanging`).
    for s in &silent {
        assert!((1000..1100).contains(s), "silent {s} ms: {ev:?}");
    }
    for g in &gaps {
        assert!(*g > 800.0 && *g < 1000.0, "{gaps:?}");
    }
    // Each restart after its backoff: 50 then 100 ms.
    let time = |i: usize| ev[i]["time_ms"].as_f64().unwrap();
    for (hung, start, delay) in [(1, 3, 50.0), (4, 6, 100.0)] {
        let waited = time(start) - time(hung);
        assert!(waited >= delay && waited < delay + 100.0, "{ev:?}");
    }
    let list = get(addr, "/api/v1/partitions");
    let sleepy = agent(&list, "watched", "sleepy");
    assert_eq!(sleepy["status"], "quarantined", "{list}");
    assert_eq!(sleepy["restarts"], 2, "{list}");
    // The neighbour kept heartbeating under the same interval: never ended.
    let steady = agent(&list, "watched", "steady");
    assert_eq!(steady["status"], "running", "{list}");
    assert_eq!(steady["restarts"], 0, "{list}");
    assert!(steady["heartbeats"].as_u64().unwrap() >= 30, "{list}");
    assert!(
        !events(addr)
            .iter()
            .any(|e| e["agent"] == "steady" && e["kind"] != "agent_started"),
        "the heartbeating agent was left alone"
    );
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&d);
}

/// CPU time of each named agent (`cpu_ns`) and the guest's clock.
fn cpu(addr: SocketAddr, who: &[(&str, &str)]) -> (Vec<u64>, u64) {
    let list = get(addr, "/api/v1/partitions");
    let times = who
        .iter()
        .map(|(p, a)| agent(&list, p, a)["cpu_ns"].as_u64().unwrap())
        .collect();
    (times, list["uptime_ns"].as_u64().unwrap())
}

/// One `spinner: N loops by T ns, median batch M ns` line: loops done since the agent
/// started, its own clock reading (the guest's, ns since boot) right after the last of
/// them, and the median time a batch of [`BATCH`] loops took since its previous report.
#[derive(Clone, Copy, Debug)]
struct Report {
    loops: u64,
    at_ns: u64,
    batch_ns: u64,
}

/// The spinner's loops per clock reading.
const BATCH: u64 = 1 << 20;

/// The reports of the spinner `who` (`PARTITION/AGENT`) received so far, oldest first.
fn reports(rt: &mut Runtime, who: &str) -> Vec<Report> {
    let needle = format!("{who}: spinner: ");
    rt.machine
        .lines()
        .iter()
        .filter_map(|l| {
            let (_, rest) = l.text.split_once(&needle)?;
            let (loops, rest) = rest.split_once(" loops by ")?;
            let (at_ns, rest) = rest.split_once(" ns, median batch ")?;
            let batch_ns = rest.strip_suffix(" ns")?;
            Some(Report {
                loops: loops.parse().ok()?,
                at_ns: at_ns.parse().ok()?,
                batch_ns: batch_ns.parse().ok()?,
            })
        })
        .collect()
}

/// The first report of the spinner `who` at or after guest time `at_ns`, waited for.
fn report_after(rt: &mut Runtime, who: &str, at_ns: u64) -> Report {
    let deadline = std::time::Instant::now() + plinth_tests::LINE_TIMEOUT;
    loop {
        if let Some(r) = reports(rt, who).into_iter().find(|r| r.at_ns >= at_ns) {
            return r;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "{who} reported nothing after {at_ns} ns:\n{}",
                rt.transcript()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What the spinner `who` did over guest time `[t0_ns, t1_ns]` by its own account, from
/// its last report at or before `t0_ns` to its first at or after `t1_ns` (the stretch
/// overhangs the window by at most a report interval, 250 ms, at each end).
struct Work {
    /// Loops per second of its clock over the stretch.
    loops_per_s: f64,
    /// Share of the stretch it spent running, percent: between each two reports, its
    /// batches times the median batch.
    running_pct: f64,
}

fn work(rt: &mut Runtime, who: &str, t0_ns: u64, t1_ns: u64) -> Work {
    // Wait for the stretch's end; the start was asked for before the window opened.
    report_after(rt, who, t1_ns);
    let all = reports(rt, who);
    let (Some(first), Some(last)) = (
        all.iter().rposition(|r| r.at_ns <= t0_ns),
        all.iter().position(|r| r.at_ns >= t1_ns),
    ) else {
        panic!(
            "{who} reported nothing before {t0_ns} ns:\n{}",
            rt.transcript()
        );
    };
    let stretch = &all[first..=last];
    // Each report's median is over the batches since the one before it.
    let ran_ns: u64 = stretch
        .windows(2)
        .map(|w| (w[1].loops - w[0].loops) / BATCH * w[1].batch_ns)
        .sum();
    let span_ns = (all[last].at_ns - all[first].at_ns) as f64;
    Work {
        loops_per_s: (all[last].loops - all[first].loops) as f64 * 1e9 / span_ns,
        running_pct: 100.0 * ran_ns as f64 / span_ns,
    }
}

/// Shares are checked twice: against the scheduler's ledger (`cpu_ns`, what it charged)
/// and against the work the spinners did by their own count, so that a bookkeeping bug
/// (time charged to the wrong task, or only part of it) cannot pass by agreeing with
/// itself.
#[test]
fn cpu_weights_share_the_cpu_and_a_cap_holds_on_an_idle_cpu() {
    let d = dir("cpu");
    let spinners = |names: &[&'static str]| -> Vec<TestAgent<'static>> {
        names
            .iter()
            .map(|n| TestAgent {
                name: n,
                example: "spinner",
                config: &[],
            })
            .collect()
    };
    let partitions = "
[[partition]]
name = \"light\"
memory_mib = 4
cpus = 1

[[partition]]
name = \"heavy\"
memory_mib = 4
cpus = 1
";
    let protection = "kind = \"protection\"

[[limit]]
partition = \"light\"
cpu = { weight = 100 }

[[limit]]
partition = \"heavy\"
cpu = { weight = 300 }
";
    let image = build_appliance(
        &d,
        &spec(
            &["spin-a", "spin-b"],
            partitions,
            &["deployment.toml", "protection.toml"],
        ),
        &[
            (
                "deployment.toml",
                &deploy(&[("spin-a", "light"), ("spin-b", "heavy")]),
            ),
            ("protection.toml", protection),
        ],
        &spinners(&["spin-a", "spin-b"]),
    );
    let (mut rt, addr) = boot(image);
    // A report from each before the window opens, so each has one at or before it.
    rt.expect_line("light/spin-a: spinner:");
    rt.expect_line("heavy/spin-b: spinner:");
    let who = [("light", "spin-a"), ("heavy", "spin-b")];
    let host = alone_on_the_host();
    let (a0, t0) = cpu(addr, &who);
    std::thread::sleep(Duration::from_secs(5));
    let (a1, t1) = cpu(addr, &who);
    let light_work = work(&mut rt, "light/spin-a", t0, t1);
    let heavy_work = work(&mut rt, "heavy/spin-b", t0, t1);
    drop(host);
    let (light, heavy) = ((a1[0] - a0[0]) as f64, (a1[1] - a0[1]) as f64);
    let light_pct = 100.0 * light / (light + heavy);
    let (lw, hw) = (light_work.loops_per_s, heavy_work.loops_per_s);
    let light_work_pct = 100.0 * lw / (lw + hw);
    eprintln!(
        "weights 1:3 over {:.2} s of guest time: ledger light {light_pct:.2}%, heavy {:.2}% \
         (agents busy {:.1}% of the time); work light {lw:.0}, heavy {hw:.0} loops/s: \
         light {light_work_pct:.2}% (running {:.1}% and {:.1}% by their own clocks)",
        (t1 - t0) as f64 / 1e9,
        100.0 - light_pct,
        100.0 * (light + heavy) / (t1 - t0) as f64,
        light_work.running_pct,
        heavy_work.running_pct,
    );
    assert!(
        t1 - t0 >= 4_000_000_000,
        "guest clock advanced {} ns",
        t1 - t0
    );
    assert!(
        (23.0..=27.0).contains(&light_pct),
        "the ledger gives light {light_pct:.2}%"
    );
    // The same code on the same CPU does the same loops per second it runs, so the work
    // splits as the time does: ±2 points, as for the ledger. Both agents are measured
    // over the same stretch (to a report interval), so a host that slows QEMU slows both
    // alike; runs have come within 0.3 points of 25, but for 25.7 and 26.6 on a host
    // busy with other work.
    // Charging light half its time, say, gives it 40% of the work.
    assert!(
        (23.0..=27.0).contains(&light_work_pct),
        "light did {light_work_pct:.2}% of the work ({lw:.0} against {hw:.0} loops/s) \
         while the ledger says it had {light_pct:.2}% of the CPU"
    );
    rt.shutdown();

    // Alone, capped at 20%.
    let d2 = dir("cap");
    let partitions = "
[[partition]]
name = \"capped\"
memory_mib = 4
cpus = 1
";
    let protection = "kind = \"protection\"

[[limit]]
partition = \"capped\"
cpu = { cap_percent = 20 }
";
    let image = build_appliance(
        &d2,
        &spec(
            &["spin-c"],
            partitions,
            &["deployment.toml", "protection.toml"],
        ),
        &[
            ("deployment.toml", &deploy(&[("spin-c", "capped")])),
            ("protection.toml", protection),
        ],
        &spinners(&["spin-c"]),
    );
    let (mut rt, addr) = boot(image);
    rt.expect_line("capped/spin-c: spinner:");
    let who = [("capped", "spin-c")];
    let host = alone_on_the_host();
    let (c0, t0) = cpu(addr, &who);
    std::thread::sleep(Duration::from_secs(5));
    let (c1, t1) = cpu(addr, &who);
    let capped = work(&mut rt, "capped/spin-c", t0, t1);
    drop(host);
    let pct = 100.0 * (c1[0] - c0[0]) as f64 / (t1 - t0) as f64;
    let ran = capped.running_pct;
    eprintln!(
        "cap 20% over {:.2} s of guest time: ledger {pct:.2}%; running {ran:.2}% by its own clock \
         ({:.0} loops/s)",
        (t1 - t0) as f64 / 1e9,
        capped.loops_per_s
    );
    assert!(
        (18.0..=22.0).contains(&pct),
        "the ledger gives the capped spinner {pct:.2}%"
    );
    // By its own clock the agent must have run a fifth of the time. ±3 points, one more
    // than the ledger's ±2: the ledger also charges the agent for what happens inside its
    // slices besides its loop (the timer ticks the kernel handles, its own reports),
    // which the median batch leaves out, so this reads a few percent low (runs: 18.9 to
    // 19.8% against 19.9 to 20.4% by the ledger, the host busy or not). Its own clock,
    // not a lone run's speed measured apart, because the host's speed drifts between two
    // measurements (a 20% cap read 12.9% to 24.3% of a separately measured full speed).
    // Charging it less than 85% of what it ran is outside (half: 38%).
    assert!(
        (17.0..=23.0).contains(&ran),
        "the capped spinner ran {ran:.2}% of the time by its own clock \
         ({:.0} loops/s) while the ledger says {pct:.2}%",
        capped.loops_per_s
    );
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&d2);
}

fn free_bytes(addr: SocketAddr) -> u64 {
    get(addr, "/api/v1/status")["memory"]["free_bytes"]
        .as_u64()
        .unwrap()
}

fn heap_used(addr: SocketAddr) -> u64 {
    get(addr, "/api/v1/status")["memory"]["heap_used_bytes"]
        .as_u64()
        .unwrap()
}

/// How far the runtime's heap in use may be from its baseline after the cycles, bytes.
/// Each figure is read while the runtime answers `/api/v1/status`, and the connection
/// that carried the request before may or may not have finished closing by then (host
/// timing), keeping its request and response buffers, a few hundred bytes for a
/// `DELETE`. Runs have come back equal to the byte. A leak of the heap's smallest block
/// (16 bytes) in every cycle is 16 000 bytes over 1000 cycles, so any per-cycle leak fails.
const HEAP_SLACK: u64 = 2048;

/// Creates partition `cycle` (1 MiB, the `hello` agent), starts it and terminates it.
fn cycle(addr: SocketAddr, i: usize) {
    let (s, p) = call(
        addr,
        "POST",
        "/api/v1/partitions",
        Some(r#"{"name":"cycle","memory_mib":1,"agents":[{"name":"hello"}]}"#),
    );
    assert_eq!(s, 201, "cycle {i}: {p}");
    let (s, p) = call(addr, "POST", "/api/v1/partitions/cycle/start", None);
    assert_eq!(s, 200, "cycle {i}: {p}");
    assert!(
        p["memory"]["used_bytes"].as_u64().unwrap() > 0,
        "cycle {i}: {p}"
    );
    let (s, t) = call(addr, "DELETE", "/api/v1/partitions/cycle", None);
    assert_eq!(s, 200, "cycle {i}: {t}");
}

#[test]
fn the_command_set_drives_partitions_and_1000_cycles_return_every_frame() {
    let _host = sharing_the_host();
    let d = dir("control");
    let agents = [TestAgent {
        name: "hello",
        example: "hello",
        config: &[("etc/hello.toml", "interval_ms = 100\n")],
    }];
    let partitions = "
[[partition]]
name = \"spare\"
memory_mib = 4
cpus = 1
disk_mib = 1
";
    let image = build_appliance(
        &d,
        &spec(&["hello"], partitions, &["deployment.toml"]),
        &[("deployment.toml", "kind = \"deployment\"\n")],
        &agents,
    );
    let (mut rt, addr) = boot(image);
    let free0 = free_bytes(addr);

    // Create (stopped), start, watch it heartbeat.
    let (s, p) = call(
        addr,
        "POST",
        "/api/v1/partitions",
        Some(
            r#"{"name":"web","memory_mib":4,"cpu_weight":200,"labels":["demo"],"agents":[{"name":"hello"}]}"#,
        ),
    );
    assert_eq!(s, 201, "{p}");
    assert_eq!(p["state"], "stopped", "{p}");
    assert_eq!(p["memory"]["used_bytes"], 0, "{p}");
    let (s, p) = call(addr, "POST", "/api/v1/partitions/web/start", None);
    assert_eq!((s, &p["state"]), (200, &Value::from("running")), "{p}");
    rt.expect_line("web/hello: hello: heartbeat 2");
    let (_, p) = call(addr, "GET", "/api/v1/partitions/web", None);
    assert!(p["memory"]["used_bytes"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(p["agents"][0]["cpu"]["weight"], 200, "{p}");

    // Stop returns the frames; restart runs it again.
    let (s, p) = call(addr, "POST", "/api/v1/partitions/web/stop", None);
    assert_eq!(s, 200);
    assert_eq!(p["state"], "stopped", "{p}");
    assert_eq!(p["agents"][0]["status"], "stopped", "{p}");
    assert_eq!(p["memory"]["used_bytes"], 0, "{p}");
    let (s, p) = call(addr, "POST", "/api/v1/partitions/web/restart", None);
    assert_eq!(
        (s, &p["agents"][0]["status"]),
        (200, &Value::from("running")),
        "{p}"
    );

    // Resize: CPU and memory; never below what is in use.
    let (s, p) = call(
        addr,
        "POST",
        "/api/v1/partitions/web/resize",
        Some(r#"{"memory_mib":8,"cpu_cap_percent":50}"#),
    );
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["memory"]["quota_bytes"], 8u64 << 20, "{p}");
    assert_eq!(p["agents"][0]["cpu"]["cap_percent"], 50.0, "{p}");
    // 1 MiB holds it (about 100 KiB in use); a quota below use is refused.
    let (s, _) = call(
        addr,
        "POST",
        "/api/v1/partitions/web/resize",
        Some(r#"{"memory_mib":1}"#),
    );
    assert_eq!(s, 200);

    // A data disk moves from one partition to another, never shared.
    let (s, e) = call(
        addr,
        "PUT",
        "/api/v1/partitions/web/disk",
        Some(r#"{"extent":"spare"}"#),
    );
    assert_eq!(s, 409, "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("attached to partition spare"),
        "{e}"
    );
    let (s, _) = call(addr, "DELETE", "/api/v1/partitions/spare/disk", None);
    assert_eq!(s, 200);
    let (s, p) = call(
        addr,
        "PUT",
        "/api/v1/partitions/web/disk",
        Some(r#"{"extent":"spare"}"#),
    );
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["disk"]["sectors"], 2048, "{p}");
    let (s, _) = call(addr, "DELETE", "/api/v1/partitions/spare/disk", None);
    assert_eq!(s, 409);

    // Refusals, each with its status and a reason.
    for (method, path, body, status, needle) in [
        (
            "POST",
            "/api/v1/partitions",
            Some(r#"{"name":"web","memory_mib":1}"#),
            409,
            "exists",
        ),
        (
            "POST",
            "/api/v1/partitions",
            Some(r#"{"name":"x","memory_mib":1,"agents":[{"name":"nosuch"}]}"#),
            422,
            "nosuch",
        ),
        (
            "POST",
            "/api/v1/partitions",
            Some(r#"{"name":"x","memory_mib":999999}"#),
            409,
            "not enough memory",
        ),
        (
            "POST",
            "/api/v1/partitions",
            Some(r#"{"name":"x","memory_mib":1,"colour":"red"}"#),
            400,
            "colour",
        ),
        (
            "POST",
            "/api/v1/partitions",
            Some(r#"{"name":"x","memory_mib":"#),
            400,
            "",
        ),
        (
            "POST",
            "/api/v1/partitions",
            Some(r#"{"name":"X Y","memory_mib":1}"#),
            422,
            "name",
        ),
        (
            "POST",
            "/api/v1/partitions/nosuch/start",
            None,
            404,
            "no such partition",
        ),
        (
            "DELETE",
            "/api/v1/partitions/nosuch",
            None,
            404,
            "no such partition",
        ),
        ("PATCH", "/api/v1/partitions/web", None, 405, ""),
        ("POST", "/api/v1/partitions/web/explode", None, 404, ""),
    ] {
        let (s, e) = call(addr, method, path, body);
        assert_eq!(s, status, "{method} {path} {body:?}: {e}");
        assert!(
            e["error"].as_str().unwrap_or("").contains(needle),
            "{method} {path}: {e}"
        );
    }

    let (s, t) = call(addr, "DELETE", "/api/v1/partitions/web", None);
    assert_eq!(s, 200, "{t}");
    assert!(t["frames_returned"].as_u64().unwrap() > 0, "{t}");
    assert_eq!(
        free_bytes(addr),
        free0,
        "terminating web returned every frame"
    );

    // Warm-up before the heap's baseline. The events ring keeps the last 512 events with
    // their names on the heap, so it grows until it is full of the cycles' own events (two
    // each: partition_created and agent_started), after 256 cycles; from then on each
    // event replaces one of the same size. Anything else allocated once (a vector
    // reaching the capacity a partition or task needs) is allocated in the first cycle.
    let started = std::time::Instant::now();
    for i in 0..256 {
        cycle(addr, i);
    }
    let ev = events(addr);
    assert_eq!(ev.len(), 512, "the events ring keeps 512");
    assert!(ev.iter().all(|e| e["partition"] == "cycle"), "{ev:?}");
    let heap0 = heap_used(addr);

    // 1000 create/start/terminate cycles: free memory comes back to the byte, and the
    // runtime's heap to what it was.
    for i in 0..1000 {
        cycle(addr, i);
    }
    assert_eq!(free_bytes(addr), free0, "after 1000 cycles");
    let heap1 = heap_used(addr);
    eprintln!(
        "1256 cycles in {:.1} s; heap in use {heap0} bytes after the warm-up, {heap1} after 1000 more",
        started.elapsed().as_secs_f64()
    );
    assert!(
        heap1.abs_diff(heap0) <= HEAP_SLACK,
        "heap in use went from {heap0} to {heap1} bytes over 1000 cycles"
    );
    let list = get(addr, "/api/v1/partitions");
    assert_eq!(list["partitions"].as_array().unwrap().len(), 1, "{list}");
    rt.shutdown();
    let _ = std::fs::remove_dir_all(&d);
}
