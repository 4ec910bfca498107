//! Partition benchmarks: the system-call door and switches between partitions
//! (`plinth bench syscall`), and how many minimal partitions fit in memory
//! (`plinth bench density`). Both boot appliances assembled from hostshim's example
//! agents and read what the agents and the API report.

use std::time::Duration;

use crate::bench::{BenchError, Spread, shut_down};
use crate::image::TestAgent;
use crate::machine::Machine;
use crate::profile::{LaunchOptions, Profile};

const MACHINE: &str = "[machine]\nmemory_mib = 512\ncpus = 1\nruntime_mib = 64\n";

/// An appliance spec with `agents` and `partitions` (TOML), deploying per `deploy`.
fn spec(agents: &[&str], partitions: &str) -> String {
    let mut s = String::from(
        "kind = \"appliance\"\nname = \"bench\"\nversion = \"0.1.0\"\n\
         trusted_keys = [\"keys/dev.pub\"]\npolicies = [\"policies/deployment.toml\"]\n",
    );
    s += MACHINE;
    for a in agents {
        s += &format!("\n[[agent]]\ndir = \"agents/{a}\"\n");
    }
    s + partitions
}

fn deployment(pairs: &[(&str, &str)]) -> String {
    let mut s = String::from("kind = \"deployment\"\n");
    for (agent, to) in pairs {
        s += &format!("\n[[deploy]]\nagent = \"{agent}\"\nversion = \"0.1.0\"\nto = [\"{to}\"]\n");
    }
    s
}

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
    let mut m = Machine::launch(profile, &opts, false).map_err(|source| BenchError::Boot {
        run,
        source,
        transcript: String::new(),
    })?;
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
            Err(source) => {
                return Err(BenchError::Boot {
                    run,
                    source,
                    transcript: m.transcript(),
                });
            }
        }
    }
    let lines: Vec<String> = lines.into_iter().flatten().collect();
    shut_down(&mut m, run)?;
    Ok(lines)
}

/// `plinth bench syscall`: what a null system call and a switch between partitions cost.
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
        Ok(())
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
            &spec(&names, &partitions),
            &[("deployment.toml", &deployment(deploy))],
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
    let mut null_ns = Vec::new();
    let mut switch_ns = Vec::new();
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
        progress(run, n, s);
        null_ns.push(n);
        switch_ns.push(s);
    }
    Ok(SyscallReport {
        profile: profile.name.clone(),
        runs,
        null_syscall_ns: Spread::of(&null_ns),
        switch_ns: Spread::of(&switch_ns),
        null_target_ns: 250.0,
        switch_target_ns: 10_000.0,
    })
}
