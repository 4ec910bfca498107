//! `plinth bench governor`: how exactly the governors hold their caps, how fast a policy
//! change applies, and what governing costs a system call.
//!
//! Each run boots three appliances assembled from hostshim's example agents:
//! - **caps**: `ioload` agents under a 200-IOPS and a 2 MiB/s disk budget and a
//!   `spinner` under a 30% CPU cap, measured over 10 s by the runtime's own counters
//!   against its clock (after 3 s, so each bucket's first burst is spent); then the
//!   IOPS budget changed live by `PUT /api/v1/policies/protection.toml` from 1 to 1000
//!   per second, timed from the command until two more requests went through (as the
//!   user would see it), beside the runtime's own time to check and apply the set;
//! - **calls**, twice: the `bench` agent timing single calls from ring 3 (`null`,
//!   `heartbeat`, `log64`, `config_read64`, `disk_read4k`) in a partition without
//!   governors and in one with a disk budget it never reaches and a memory high-water
//!   mark it never crosses, so every disk call takes the gate's path and every
//!   `mem_grow` would be checked against the mark. The gate's own cost per call is read
//!   from the runtime's `/metrics`, where it is timed.
//!
//! Owns the appliances, the measurements and the report; the agents print, the runtime
//! counts, this reads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use plinth_control::views::PartitionList;

use crate::bench::{BenchError, Spread, failed, launch, shut_down};
use crate::bench_part::parse_call_line;
use crate::image::TestAgent;
use crate::profile::{LaunchOptions, Profile};

/// The caps the benchmark sets, and the targets it reports against.
const IOPS: f64 = 200.0;
const BYTES_PER_SEC: f64 = 2.0 * 1048576.0;
const CPU_PERCENT: f64 = 30.0;
/// The system-call targets: a null call at most this, governing adding at most this.
pub const NULL_TARGET_NS: f64 = 250.0;
pub const ADDED_TARGET_NS: f64 = 30.0;
/// A policy change in effect within this of the command.
pub const POLICY_TARGET_MS: f64 = 100.0;

/// One cap's accuracy.
#[derive(Debug, serde::Serialize)]
pub struct CapFigures {
    pub target: f64,
    pub unit: &'static str,
    /// What each run measured over its window.
    pub measured: Vec<f64>,
    /// The run furthest from the target: its error, percent of the target (signed).
    pub error_pct: f64,
}

/// One call with and without governors: medians over runs of each run's median, ns, as
/// the agent timed it (device time and the host's noise included).
#[derive(Debug, serde::Serialize)]
pub struct CallCost {
    pub off_ns: f64,
    pub on_ns: f64,
}

#[derive(Debug, serde::Serialize)]
pub struct GovernorReport {
    pub profile: String,
    pub runs: usize,
    /// `iops`, `disk_bytes_per_sec`, `cpu_percent`.
    pub caps: BTreeMap<String, CapFigures>,
    /// From `plinth policy apply`'s request until the new budget showed, ms.
    pub policy_change_ms: Spread,
    /// The runtime's own time to check and apply the new set, ms.
    pub policy_apply_ms: Spread,
    pub policy_target_ms: f64,
    /// Each call the `bench` agent times, governors off and on.
    pub calls: BTreeMap<String, CallCost>,
    /// What the governor adds to a governed call: the time a disk call spends in its
    /// partition's gate, per call, measured by the runtime where it is paid (a partition
    /// without budgets skips the gate). The `disk_read4k` medians above cannot show
    /// tens of ns against a device's tens of µs.
    pub governed_path_ns: Spread,
    /// The same gate's code on this host, natively (what KVM or a server would run):
    /// ns per call through a gate with the benchmark's budgets, tokens plentiful.
    pub governed_path_native_ns: f64,
    pub null_target_ns: f64,
    pub added_target_ns: f64,
}

impl std::fmt::Display for GovernorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "governor benchmark: {} runs, profile {}; caps over 10 s by the runtime's counters",
            self.runs, self.profile
        )?;
        writeln!(
            f,
            "{:<22}{:>12}{:>14}{:>12}",
            "cap", "target", "worst run", "error"
        )?;
        for (name, c) in &self.caps {
            let worst = c.target * (1.0 + c.error_pct / 100.0);
            writeln!(
                f,
                "{:<22}{:>12.1}{:>14.2}{:>11.2}%  ({})",
                name, c.target, worst, c.error_pct, c.unit
            )?;
        }
        writeln!(
            f,
            "policy change in effect after {:.1} ms median ({:.1}-{:.1}; target {:.0} ms), \
             the runtime applying it in {:.2} ms",
            self.policy_change_ms.median,
            self.policy_change_ms.min,
            self.policy_change_ms.max,
            self.policy_target_ms,
            self.policy_apply_ms.median
        )?;
        writeln!(f, "{:<22}{:>12}{:>12}", "call (median ns)", "off", "on")?;
        for (name, c) in &self.calls {
            writeln!(f, "{:<22}{:>12.1}{:>12.1}", name, c.off_ns, c.on_ns)?;
        }
        writeln!(
            f,
            "governed path: {:.1} ns per disk call in the gate under this accelerator, \
             median ({:.1}-{:.1}); {:.1} ns natively on this host",
            self.governed_path_ns.median,
            self.governed_path_ns.min,
            self.governed_path_ns.max,
            self.governed_path_native_ns
        )?;
        write!(
            f,
            "targets: null call <= {:.0} ns, governing adds <= {:.0} ns",
            self.null_target_ns, self.added_target_ns
        )
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn setup<E: std::fmt::Display>(e: E) -> BenchError {
    BenchError::Setup(e.to_string())
}

fn protection(iops: u64) -> String {
    format!(
        "kind = \"protection\"\n\n[[limit]]\npartition = \"iops\"\ndisk = {{ iops = {iops} }}\n\n\
         [[limit]]\npartition = \"bytes\"\ndisk = {{ bytes_per_sec = {} }}\n\n\
         [[limit]]\npartition = \"cpu\"\ncpu = {{ cap_percent = {} }}\n",
        BYTES_PER_SEC as u64, CPU_PERCENT as u64
    )
}

/// A partition's disk requests and CPU time, and the guest's clock.
fn counters(addr: SocketAddr, part: &str) -> Result<(u64, u64, u64, u64), BenchError> {
    let list: PartitionList =
        crate::api::get_view(addr, "/api/v1/partitions", Duration::from_secs(10)).map_err(setup)?;
    let p = list
        .partitions
        .iter()
        .find(|p| p.name == part)
        .ok_or_else(|| setup(format!("no partition {part}")))?;
    let u = p.disk.map(|d| d.usage).unwrap_or_default();
    let cpu: u64 = p.agents.iter().filter_map(|a| a.cpu_ns).sum();
    Ok((
        u.reads + u.writes,
        u.read_bytes + u.written_bytes,
        cpu,
        list.uptime_ns,
    ))
}

/// Boots `image` with the API forwarded; returns the machine and the API's address.
fn boot_with_api(
    profile: &Profile,
    opts: &LaunchOptions,
    image: &std::path::Path,
    run: usize,
) -> Result<(crate::machine::Machine, SocketAddr), BenchError> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(setup)?
        .port();
    let mut opts = opts.clone();
    opts.disk = Some(crate::profile::Disk {
        image: image.to_path_buf(),
        serial: "plinth-bench".into(),
    });
    opts.nic = Some(crate::profile::Nic {
        mac: crate::profile::Nic::DEFAULT_MAC,
        api_host_port: port,
        api_port: plinth_cmdline::parse(&opts.append).options.api_port,
    });
    let mut m = launch(profile, &opts, run)?;
    if let Err(e) = m.wait_ready(Duration::from_secs(60)) {
        return Err(failed(&mut m, run, e));
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    crate::api::wait_healthy(addr, Duration::from_secs(60))
        .map_err(|e| setup(format!("the API did not come up: {e}")))?;
    Ok((m, addr))
}

/// One run of the caps and the policy change: (iops, bytes/s, cpu %, change ms,
/// apply ms).
fn caps_run(
    profile: &Profile,
    opts: &LaunchOptions,
    image: &std::path::Path,
    policy_file: &std::path::Path,
    run: usize,
) -> Result<(f64, f64, f64, f64, f64), BenchError> {
    let (mut m, addr) = boot_with_api(profile, opts, image, run)?;
    std::thread::sleep(Duration::from_secs(3));
    let (i0, _, _, t0) = counters(addr, "iops")?;
    let (_, b0, _, _) = counters(addr, "bytes")?;
    let (_, _, c0, _) = counters(addr, "cpu")?;
    std::thread::sleep(Duration::from_secs(10));
    let (i1, _, _, t1) = counters(addr, "iops")?;
    let (_, b1, _, _) = counters(addr, "bytes")?;
    let (_, _, c1, _) = counters(addr, "cpu")?;
    let secs = (t1 - t0) as f64 / 1e9;
    let iops = (i1 - i0) as f64 / secs;
    let bytes = (b1 - b0) as f64 / secs;
    let cpu = (c1 - c0) as f64 / (t1 - t0) as f64 * 100.0;

    // Down to 1 a second, then up to 1000: timed from the command to the second request
    // through (a waiting one goes at once, the next follows).
    std::fs::write(policy_file, protection(1)).map_err(setup)?;
    crate::policy::apply(
        addr,
        policy_file,
        "protection.toml",
        Duration::from_secs(10),
    )
    .map_err(setup)?;
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::write(policy_file, protection(1000)).map_err(setup)?;
    let (before, _, _, _) = counters(addr, "iops")?;
    let start = Instant::now();
    let applied = crate::policy::apply(
        addr,
        policy_file,
        "protection.toml",
        Duration::from_secs(10),
    )
    .map_err(setup)?;
    let change_ms = loop {
        let (n, _, _, _) = counters(addr, "iops")?;
        if n >= before + 2 {
            break start.elapsed().as_secs_f64() * 1e3;
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(setup("the changed policy never took effect"));
        }
    };
    shut_down(&mut m, run)?;
    Ok((iops, bytes, cpu, change_ms, applied.applied_us as f64 / 1e3))
}

/// The value of `name{partition="PART"}` in Prometheus text.
fn metric(text: &str, name: &str, part: &str) -> Option<f64> {
    let key = format!("{name}{{partition=\"{part}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
}

/// One boot of the `bench` agent's calls mode: each call's median, ns; and the time
/// partition `c`'s disk calls spent in its gate, ns per call (`None` if none went
/// through it).
fn calls_run(
    profile: &Profile,
    opts: &LaunchOptions,
    image: &std::path::Path,
    run: usize,
) -> Result<(BTreeMap<String, f64>, Option<f64>), BenchError> {
    let (mut m, addr) = boot_with_api(profile, opts, image, run)?;
    let mut out = BTreeMap::new();
    loop {
        let l = match m.wait_for(Duration::from_secs(120), |l| {
            l.contains("bench: call") || l.contains("bench: calls done")
        }) {
            Ok(l) => l,
            Err(e) => return Err(failed(&mut m, run, e)),
        };
        if l.text.contains("bench: calls done") {
            break;
        }
        if let Some((name, median, _, _)) = parse_call_line(&l.text) {
            out.insert(name, median);
        }
    }
    let text = crate::api::get(addr, "/metrics", Duration::from_secs(10))
        .map_err(setup)?
        .text();
    let calls = metric(&text, "plinth_partition_disk_gate_calls_total", "c").unwrap_or(0.0);
    let secs = metric(&text, "plinth_partition_disk_gate_seconds_total", "c").unwrap_or(0.0);
    shut_down(&mut m, run)?;
    Ok((out, (calls > 0.0).then(|| secs * 1e9 / calls)))
}

/// ns per call of `plinth_iogate::Gate::offer` natively, with the "on" partition's
/// budgets and tokens to spare: the median of 11 batches of 200,000 calls.
pub fn native_gate_ns() -> f64 {
    let mut gate: plinth_iogate::Gate<usize, u64> = plinth_iogate::Gate::new();
    let budget = plinth_iogate::Budget {
        bytes: Some((1_000_000_000_000, 1_000_000_000_000)),
        ops: Some((1_000_000_000, 1_000_000_000)),
    };
    gate.set_partition(budget, 0);
    let mut batches = Vec::new();
    let mut now = 0u64;
    for _ in 0..11 {
        let start = Instant::now();
        for i in 0..200_000u64 {
            now += 1000;
            let admitted = gate.offer(0, 4096, i, std::hint::black_box(now));
            std::hint::black_box(admitted);
        }
        batches.push(start.elapsed().as_nanos() as f64 / 200_000.0);
    }
    median(&mut batches)
}

/// `plinth bench governor`.
pub fn governor(
    profile: &Profile,
    opts: &LaunchOptions,
    runs: usize,
    mut progress: impl FnMut(usize, &str),
) -> Result<GovernorReport, BenchError> {
    let built = crate::build::build_agents(true).map_err(setup)?;
    let scratch =
        std::env::temp_dir().join(format!("plinth-bench-governor-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(setup)?;
    let result = (|| {
        let load =
            |op: &str, bytes: u32| format!("op = \"{op}\"\nbytes = {bytes}\nspan_sectors = 4096\n");
        let (read4k, write64k) = (load("read", 4096), load("write", 65536));
        let caps_agents = [
            TestAgent {
                name: "io-iops",
                example: "ioload",
                config: &[("etc/ioload.toml", &read4k)],
            },
            TestAgent {
                name: "io-bytes",
                example: "ioload",
                config: &[("etc/ioload.toml", &write64k)],
            },
            TestAgent {
                name: "spin",
                example: "spinner",
                config: &[],
            },
        ];
        let part = |name: &str, disk: bool| {
            format!(
                "\n[[partition]]\nname = \"{name}\"\nmemory_mib = 4\ncpus = 1\n{}",
                if disk { "disk_mib = 4\n" } else { "" }
            )
        };
        let caps_dir = scratch.join("caps");
        let caps_image = crate::image::build_with_examples(
            &caps_dir,
            &crate::image::example_spec(
                256,
                &["io-iops", "io-bytes", "spin"],
                &(part("iops", true) + &part("bytes", true) + &part("cpu", false)),
                &["deployment.toml", "protection.toml"],
            ),
            &[
                (
                    "deployment.toml",
                    &crate::image::example_deployment(&[
                        ("io-iops", "iops"),
                        ("io-bytes", "bytes"),
                        ("spin", "cpu"),
                    ]),
                ),
                ("protection.toml", &protection(IOPS as u64)),
            ],
            &caps_agents,
            &built,
        )
        .map_err(setup)?;
        let calls_image = |dir: &str, governed: bool| {
            let agents = [TestAgent {
                name: "calls",
                example: "bench",
                config: &[("etc/bench.toml", "mode = \"calls\"\n")],
            }];
            // Budgets it never reaches and a mark it never crosses: the gate and the
            // mark are consulted on every call they concern, and never hold one back.
            let limits = "kind = \"protection\"\n\n[[limit]]\npartition = \"c\"\n\
                          disk = { iops = 1000000000, bytes_per_sec = 1000000000000 }\n\
                          memory = { cap_mib = 4, high_mib = 4 }\n";
            let mut policies = vec![(
                "deployment.toml",
                crate::image::example_deployment(&[("calls", "c")]),
            )];
            let mut names = vec!["deployment.toml"];
            if governed {
                policies.push(("protection.toml", limits.to_string()));
                names.push("protection.toml");
            }
            let policies: Vec<(&str, &str)> =
                policies.iter().map(|(n, t)| (*n, t.as_str())).collect();
            crate::image::build_with_examples(
                &scratch.join(dir),
                &crate::image::example_spec(256, &["calls"], &part("c", true), &names),
                &policies,
                &agents,
                &built,
            )
            .map_err(setup)
        };
        let off_image = calls_image("off", false)?;
        let on_image = calls_image("on", true)?;
        let policy_file = scratch.join("protection.toml");

        let (mut iops, mut bytes, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
        let (mut change, mut apply) = (Vec::new(), Vec::new());
        let mut per_call: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        let mut gate = Vec::new();
        for run in 1..=runs {
            let (i, b, c, ch, ap) = caps_run(profile, opts, &caps_image, &policy_file, run)?;
            progress(
                run,
                &format!(
                    "{i:.2} IOPS, {:.4} MiB/s, {c:.2}% CPU; policy change {ch:.1} ms",
                    b / 1048576.0
                ),
            );
            iops.push(i);
            bytes.push(b);
            cpu.push(c);
            change.push(ch);
            apply.push(ap);
            // Off and on alternate so drift on the host falls on both alike.
            let (off, skipped) = calls_run(profile, opts, &off_image, run)?;
            let (on, gate_ns) = calls_run(profile, opts, &on_image, run)?;
            if skipped.is_some() {
                return Err(setup(
                    "an ungoverned partition's calls went through the gate",
                ));
            }
            gate.push(gate_ns.ok_or_else(|| setup("no disk call went through the gate"))?);
            for (name, ns) in off {
                per_call.entry(name).or_default().0.push(ns);
            }
            for (name, ns) in on {
                per_call.entry(name).or_default().1.push(ns);
            }
            if let Some((off, on)) = per_call.get("null") {
                progress(
                    run,
                    &format!(
                        "null call {:.1} ns off, {:.1} ns on; {:.1} ns per disk call in the gate",
                        off.last().copied().unwrap_or(f64::NAN),
                        on.last().copied().unwrap_or(f64::NAN),
                        gate.last().copied().unwrap_or(f64::NAN)
                    ),
                );
            }
        }
        let cap =
            |target: f64, unit, measured: Vec<f64>| {
                let error_pct = measured.iter().map(|m| (m - target) / target * 100.0).fold(
                    0.0f64,
                    |worst, e| if e.abs() > worst.abs() { e } else { worst },
                );
                CapFigures {
                    target,
                    unit,
                    measured,
                    error_pct,
                }
            };
        let mut caps = BTreeMap::new();
        caps.insert("iops".into(), cap(IOPS, "requests/s", iops));
        caps.insert(
            "disk_bytes_per_sec".into(),
            cap(BYTES_PER_SEC, "bytes/s", bytes),
        );
        caps.insert("cpu_percent".into(), cap(CPU_PERCENT, "% of a CPU", cpu));
        let calls = per_call
            .into_iter()
            .map(|(name, (mut off, mut on))| {
                let (off_ns, on_ns) = (median(&mut off), median(&mut on));
                (name, CallCost { off_ns, on_ns })
            })
            .collect();
        Ok(GovernorReport {
            profile: profile.name.clone(),
            runs,
            caps,
            policy_change_ms: Spread::of(&change),
            policy_apply_ms: Spread::of(&apply),
            policy_target_ms: POLICY_TARGET_MS,
            calls,
            governed_path_ns: Spread::of(&gate),
            governed_path_native_ns: native_gate_ns(),
            null_target_ns: NULL_TARGET_NS,
            added_target_ns: ADDED_TARGET_NS,
        })
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partitions_metric_is_found_by_its_label() {
        let text = "# HELP x y\nplinth_partition_disk_gate_calls_total{partition=\"c\"} 2000\n\
                    plinth_partition_disk_gate_calls_total{partition=\"cc\"} 7\n";
        assert_eq!(
            metric(text, "plinth_partition_disk_gate_calls_total", "c"),
            Some(2000.0)
        );
        assert_eq!(
            metric(text, "plinth_partition_disk_gate_calls_total", "d"),
            None
        );
    }

    #[test]
    fn the_worst_run_sets_the_error() {
        let mut v = vec![3.0, 1.0, 2.0];
        assert_eq!(median(&mut v), 2.0);
        let mut v = vec![4.0, 1.0, 2.0, 3.0];
        assert_eq!(median(&mut v), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn the_protection_file_reads_back_as_what_it_caps() {
        let set = plinth_policy::policies::PolicySet::check(
            &[(0, &protection(200))],
            &plinth_policy::World::default(),
        )
        .unwrap_or_else(|d| panic!("{d:?}"));
        assert_eq!(set.limits.len(), 3);
        assert_eq!(
            set.limits[0].disk.and_then(|d| d.iops).map(|b| b.rate),
            Some(200)
        );
        assert_eq!(
            set.limits[2].cpu.and_then(|c| c.cap_percent),
            Some(CPU_PERCENT as u32)
        );
    }
}
