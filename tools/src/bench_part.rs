//! Partition benchmarks: the system-call door and switches between partitions
//! (`plinth bench syscall`), and how many minimal partitions fit in memory
//! (`plinth bench density`). Both boot appliances assembled from hostshim's example
//! agents and read what the agents and the API report (the API's answers through
//! `plinth-control`'s views).

use std::time::Duration;

use plinth_control::views::{AgentState, PartitionList, Status};
use plinth_control::{Action, AgentRef, Command, CreatePartition};

use crate::bench::{BenchError, Spread, failed, launch, shut_down};
use crate::image::TestAgent;
use crate::profile::{LaunchOptions, Profile};

fn partition(name: &str) -> String {
    format!("\n[[partition]]\nname = \"{name}\"\nmemory_mib = 4\ncpus = 1\n")
}

/// A scratch directory removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(what: &str) -> Result<Scratch, BenchError> {
        let d = std::env::temp_dir().join(format!("plinth-bench-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)
            .map_err(|e| BenchError::Setup(format!("{}: {e}", d.display())))?;
        Ok(Scratch(d))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Boots `image` and returns each line that starts with one of `needles`, in order,
/// after they all appeared; then shuts down.
fn boot_for_lines(
    profile: &Profile,
    opts: &LaunchOptions,
    image: &std::path::Path,
    run: usize,
    needles: &[&str],
) -> Result<Vec<String>, BenchError> {
    let mut opts = opts.clone();
    opts.disk = Some(crate::profile::Disk {
        image: image.to_path_buf(),
        serial: "plinth-bench".into(),
    });
    opts.nic = None;
    let mut m = launch(profile, &opts, run)?;
    // In whatever order the agents print them.
    let mut lines: Vec<Option<String>> = vec![None; needles.len()];
    while lines.iter().any(Option::is_none) {
        match m.wait_for(Duration::from_secs(120), |l| {
            needles.iter().any(|n| l.contains(n))
        }) {
            Ok(l) => {
                if let Some(i) = needles.iter().position(|n| l.text.contains(n)) {
                    lines[i] = Some(l.text);
                }
            }
            Err(source) => return Err(failed(&mut m, run, source)),
        }
    }
    let lines: Vec<String> = lines.into_iter().flatten().collect();
    shut_down(&mut m, run)?;
    Ok(lines)
}

/// One system call timed call by call from ring 3 (`bench` agent, `calls` mode).
#[derive(Clone, Debug, serde::Serialize, PartialEq)]
pub struct CallFigures {
    /// Median over runs of each run's median round trip, ns.
    pub median_ns: f64,
    /// Median over runs of each run's 99th percentile, ns.
    pub p99_ns: f64,
    /// The worst run's 99th percentile, ns.
    pub worst_p99_ns: f64,
    /// Calls timed per run.
    pub samples: u64,
    /// Whether the call waits on a device (no target applies to those).
    pub waits_on_device: bool,
}

/// `plinth bench syscall`: what a null system call, calls that do work and a switch
/// between partitions cost.
#[derive(Debug, serde::Serialize)]
pub struct SyscallReport {
    pub profile: String,
    pub runs: usize,
    /// Median over runs of each run's median batch, ns per call.
    pub null_syscall_ns: Spread,
    /// Switches between two partitions that only yield, ns per switch.
    pub switch_ns: Spread,
    pub null_target_ns: f64,
    pub switch_target_ns: f64,
    /// Calls timed one by one, each an object of its own at the top level named for the
    /// call: `null`, `heartbeat`, `log64`, `config_read64`, `disk_read4k`.
    #[serde(flatten)]
    pub calls: std::collections::BTreeMap<String, CallFigures>,
    /// The target for every call that does not wait on a device, ns.
    pub call_target_ns: f64,
}

/// The calls the `calls` mode times, and whether each waits on a device.
pub const CALLS: [(&str, bool); 5] = [
    ("null", false),
    ("heartbeat", false),
    ("log64", false),
    ("config_read64", false),
    ("disk_read4k", true),
];

/// Reads `bench: call NAME median_ns M p99_ns P samples N`.
pub fn parse_call_line(line: &str) -> Option<(String, f64, f64, u64)> {
    let rest = &line[line.find("bench: call ")? + "bench: call ".len()..];
    let name = rest.split_whitespace().next()?.to_string();
    Some((
        name,
        figure_after(rest, "median_ns ")?,
        figure_after(rest, "p99_ns ")?,
        figure_after(rest, "samples ")? as u64,
    ))
}

impl std::fmt::Display for SyscallReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "syscall benchmark: {} runs, profile {}, measured inside agents in ring 3",
            self.runs, self.profile
        )?;
        writeln!(
            f,
            "{:<44}{:>10}{:>10}{:>10}{:>14}",
            "", "median", "min", "max", "of target"
        )?;
        for (name, s, target) in [
            (
                "null system call round trip (ns)",
                &self.null_syscall_ns,
                self.null_target_ns,
            ),
            (
                "switch between partitions (ns)",
                &self.switch_ns,
                self.switch_target_ns,
            ),
        ] {
            writeln!(
                f,
                "{name:<44}{:>10.1}{:>10.1}{:>10.1}{:>13.2}x",
                s.median,
                s.min,
                s.max,
                s.median / target
            )?;
        }
        writeln!(
            f,
            "calls timed one by one (ns){:>27}{:>10}{:>14}{:>14}",
            "median", "p99", "worst p99", "of target"
        )?;
        for (name, _) in CALLS {
            let Some(c) = self.calls.get(name) else {
                continue;
            };
            let of_target = if c.waits_on_device {
                "device".to_string()
            } else {
                format!("{:.2}x", c.p99_ns / self.call_target_ns)
            };
            writeln!(
                f,
                "  {name:<42}{:>10.1}{:>10.1}{:>14.1}{:>14}",
                c.median_ns, c.p99_ns, c.worst_p99_ns, of_target
            )?;
        }
        write!(
            f,
            "target: every call that does not wait on a device <= {} ns (p99 shown against it)",
            self.call_target_ns
        )
    }
}

/// A figure after `key` in `line` (e.g. "median 123.4 ns").
fn figure_after(line: &str, key: &str) -> Option<f64> {
    line.split(key)
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Boots a `bench` agent in null mode, then two `bench` agents in switch mode in two
/// partitions, `runs` times each.
pub fn syscall(
    profile: &Profile,
    opts: &LaunchOptions,
    runs: usize,
    mut progress: impl FnMut(usize, f64, f64),
) -> Result<SyscallReport, BenchError> {
    let built = crate::build::build_agents(true).map_err(|e| BenchError::Setup(e.to_string()))?;
    let scratch = Scratch::new("syscall")?;
    let image = |dir: &str, agents: &[TestAgent<'_>], parts: &[&str], deploy: &[(&str, &str)]| {
        let d = scratch.0.join(dir);
        let names: Vec<&str> = agents.iter().map(|a| a.name).collect();
        let partitions: String = parts.iter().map(|p| partition(p)).collect();
        crate::image::build_with_examples(
            &d,
            &crate::image::example_spec(512, &names, &partitions, &["deployment.toml"]),
            &[("deployment.toml", &crate::image::example_deployment(deploy))],
            agents,
            &built,
        )
        .map_err(|e| BenchError::Setup(e.to_string()))
    };
    let null_image = image(
        "null",
        &[TestAgent {
            name: "null",
            example: "bench",
            config: &[("etc/bench.toml", "mode = \"null\"\n")],
        }],
        &["p"],
        &[("null", "p")],
    )?;
    let switch = [("etc/bench.toml", "mode = \"switch\"\nseconds = 3\n")];
    let switch_image = image(
        "switch",
        &[
            TestAgent {
                name: "ping",
                example: "bench",
                config: &switch,
            },
            TestAgent {
                name: "pong",
                example: "bench",
                config: &switch,
            },
        ],
        &["a", "b"],
        &[("ping", "a"), ("pong", "b")],
    )?;
    let calls_image = {
        let d = scratch.0.join("calls");
        let agents = [TestAgent {
            name: "calls",
            example: "bench",
            config: &[("etc/bench.toml", "mode = \"calls\"\n")],
        }];
        crate::image::build_with_examples(
            &d,
            &crate::image::example_spec(
                512,
                &["calls"],
                "\n[[partition]]\nname = \"c\"\nmemory_mib = 4\ncpus = 1\ndisk_mib = 1\n",
                &["deployment.toml"],
            ),
            &[(
                "deployment.toml",
                &crate::image::example_deployment(&[("calls", "c")]),
            )],
            &agents,
            &built,
        )
        .map_err(|e| BenchError::Setup(e.to_string()))?
    };
    let mut null_ns = Vec::new();
    let mut switch_ns = Vec::new();
    let mut per_call: std::collections::BTreeMap<String, Vec<(f64, f64, u64)>> =
        std::collections::BTreeMap::new();
    for run in 1..=runs {
        let lines = boot_for_lines(profile, opts, &null_image, run, &["bench: null syscall"])?;
        let n = figure_after(&lines[0], "median ").ok_or_else(|| BenchError::Figures {
            run,
            line: lines[0].clone(),
        })?;
        let lines = boot_for_lines(
            profile,
            opts,
            &switch_image,
            run,
            &["a/ping: bench: switch", "b/pong: bench: switch"],
        )?;
        let mut yields = 0.0;
        let mut window: f64 = 0.0;
        for l in &lines {
            let y = figure_after(l, "yields ");
            let t = figure_after(l, " in ");
            match (y, t) {
                (Some(y), Some(t)) => {
                    yields += y;
                    window = window.max(t);
                }
                _ => {
                    return Err(BenchError::Figures {
                        run,
                        line: l.clone(),
                    });
                }
            }
        }
        let s = window / yields.max(1.0);
        let needles: Vec<String> = CALLS
            .iter()
            .map(|(name, _)| format!("bench: call {name} "))
            .collect();
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        for line in boot_for_lines(profile, opts, &calls_image, run, &needles)? {
            let (name, median, p99, samples) =
                parse_call_line(&line).ok_or_else(|| BenchError::Figures {
                    run,
                    line: line.clone(),
                })?;
            per_call
                .entry(name)
                .or_default()
                .push((median, p99, samples));
        }
        progress(run, n, s);
        null_ns.push(n);
        switch_ns.push(s);
    }
    let calls = CALLS
        .iter()
        .filter_map(|(name, device)| {
            let runs = per_call.get(*name)?;
            let medians: Vec<f64> = runs.iter().map(|r| r.0).collect();
            let p99s: Vec<f64> = runs.iter().map(|r| r.1).collect();
            Some((
                (*name).to_string(),
                CallFigures {
                    median_ns: Spread::of(&medians).median,
                    p99_ns: Spread::of(&p99s).median,
                    worst_p99_ns: Spread::of(&p99s).max,
                    samples: runs.first().map_or(0, |r| r.2),
                    waits_on_device: *device,
                },
            ))
        })
        .collect();
    Ok(SyscallReport {
        profile: profile.name.clone(),
        runs,
        null_syscall_ns: Spread::of(&null_ns),
        switch_ns: Spread::of(&switch_ns),
        null_target_ns: 250.0,
        switch_target_ns: 10_000.0,
        calls,
        call_target_ns: 250.0,
    })
}

/// `plinth bench density`: how many minimal partitions (1 MiB quota, one sleeping
/// `hello`) fit, and what each costs the runtime.
#[derive(Debug, serde::Serialize)]
pub struct DensityReport {
    pub profile: String,
    pub memory_mib: u32,
    /// Partitions created and running when the runtime refused the next one.
    pub partitions: u64,
    /// The runtime's reason for refusing the next one.
    pub refused: String,
    /// Memory charged to each partition (its agent's image, stack and page tables), KiB.
    pub charged_kib_per_partition: f64,
    /// Of that, page tables (the cost of an address space of its own), KiB.
    pub page_table_kib_per_partition: f64,
    /// Runtime heap per partition (its records, the agent's saved registers), KiB.
    pub heap_kib_per_partition: f64,
    /// Page tables plus heap: what isolating one more partition costs the runtime, KiB.
    pub overhead_kib_per_partition: f64,
    pub overhead_target_kib: f64,
    pub seconds: f64,
}

impl std::fmt::Display for DensityReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "density benchmark: profile {}, {} MiB, partitions of 1 MiB quota with one sleeping agent",
            self.profile, self.memory_mib
        )?;
        writeln!(
            f,
            "partitions running: {} (the next refused: {})",
            self.partitions, self.refused
        )?;
        writeln!(
            f,
            "per partition: {:.1} KiB charged ({:.1} KiB page tables), {:.2} KiB runtime heap",
            self.charged_kib_per_partition,
            self.page_table_kib_per_partition,
            self.heap_kib_per_partition
        )?;
        writeln!(
            f,
            "runtime overhead per partition: {:.1} KiB (page tables + heap); target <= {:.0} KiB: {:.2}x of it",
            self.overhead_kib_per_partition,
            self.overhead_target_kib,
            self.overhead_kib_per_partition / self.overhead_target_kib
        )?;
        write!(f, "took {:.1} s", self.seconds)
    }
}

/// Boots with `opts.memory_mib` and creates partitions through the API until one is
/// refused.
pub fn density(
    profile: &Profile,
    opts: &LaunchOptions,
    mut progress: impl FnMut(u64),
) -> Result<DensityReport, BenchError> {
    let started = std::time::Instant::now();
    let setup = |e: &dyn std::fmt::Display| BenchError::Setup(e.to_string());
    let built = crate::build::build_agents(true).map_err(|e| setup(&e))?;
    let scratch = Scratch::new("density")?;
    let image = crate::image::build_with_examples(
        &scratch.0,
        &crate::image::example_spec(512, &["idle"], &partition("base"), &["deployment.toml"]),
        &[("deployment.toml", "kind = \"deployment\"\n")],
        &[TestAgent {
            name: "idle",
            example: "hello",
            config: &[("etc/hello.toml", "interval_ms = 600000\n")],
        }],
        &built,
    )
    .map_err(|e| setup(&e))?;
    let mut opts = opts.clone();
    opts.disk = Some(crate::profile::Disk {
        image: image.clone(),
        serial: "plinth-bench".into(),
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| setup(&e))?
        .port();
    opts.nic = Some(crate::profile::Nic {
        mac: crate::profile::Nic::DEFAULT_MAC,
        api_host_port: port,
        api_port: plinth_cmdline::parse(&opts.append).options.api_port,
    });
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut m = launch(profile, &opts, 1)?;
    // The API answers before the partitions are up; the bring-up line comes after them.
    if let Err(e) = m.wait_for(Duration::from_secs(120), |l| {
        l.contains(crate::bench::AFTER_READY_LINE)
    }) {
        return Err(failed(&mut m, 1, e));
    }
    let t = Duration::from_secs(20);
    crate::api::wait_healthy(addr, Duration::from_secs(60)).map_err(|e| setup(&e))?;
    let heap_used = |what: &str| -> Result<f64, BenchError> {
        crate::api::get_view::<Status>(addr, "/api/v1/status", t)
            .map(|s| s.memory.heap_used_bytes as f64)
            .map_err(|e| setup(&format!("{what}: {e}")))
    };
    // The requests `plinth part` sends; the runtime decodes them with the same crate.
    let send = |command: &Command| {
        crate::api::request(
            addr,
            command.method(),
            &command.path(),
            crate::part::body(command).as_deref(),
            t,
        )
        .map_err(|e| setup(&e))
    };
    let heap0 = heap_used("status")?;
    let mut n = 0u64;
    let refused = loop {
        let mut create = CreatePartition::new(&format!("d{n}"), 1);
        create.agents.push(AgentRef::parse("idle"));
        let r = send(&Command::Create(create))?;
        if r.status != 201 {
            break crate::part::refusal(r.status, &r.body).to_string();
        }
        let r = send(&Command::Act {
            name: format!("d{n}"),
            action: Action::Start,
        })?;
        if r.status != 200 {
            return Err(setup(&format!("starting d{n}: {}", r.text())));
        }
        n += 1;
        if n.is_multiple_of(50) {
            progress(n);
        }
    };
    let heap1 = heap_used("status")?;
    let list: PartitionList =
        crate::api::get_view(addr, "/api/v1/partitions", t).map_err(|e| setup(&e))?;
    let mut charged = 0.0;
    let mut tables = 0.0;
    let mut running = 0u64;
    for p in list.partitions.iter().filter(|p| p.name.starts_with('d')) {
        charged += p.memory.used_bytes as f64;
        tables += p.memory.page_table_bytes as f64;
        if p.agents.first().map(|a| &a.status) == Some(&AgentState::Running) {
            running += 1;
        }
    }
    if running != n {
        return Err(setup(&format!("{running} of {n} partitions running")));
    }
    shut_down(&mut m, 1)?;
    let per = |x: f64| x / 1024.0 / (n.max(1) as f64);
    let heap_kib = per(heap1 - heap0);
    Ok(DensityReport {
        profile: profile.name.clone(),
        memory_mib: opts.memory_mib,
        partitions: n,
        refused,
        charged_kib_per_partition: per(charged),
        page_table_kib_per_partition: per(tables),
        heap_kib_per_partition: heap_kib,
        overhead_kib_per_partition: per(tables) + heap_kib,
        overhead_target_kib: 256.0,
        seconds: started.elapsed().as_secs_f64(),
    })
}
