//! Benchmarks that boot the runtime: `plinth bench boot`, `plinth bench blk` and
//! `plinth bench idle` (the network one is in `bench_net`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::machine::{Machine, MachineError, Outcome};
use crate::profile::{LaunchOptions, Profile};
use plinth_exit::ExitCode;

/// Median, minimum and maximum of a set of figures, milliseconds.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Summary {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// Summarises `values`; the median of an even count is the mean of the middle two.
    pub fn of(values: &[f64]) -> Summary {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Summary {
            median_ms: median,
            min_ms: v.first().copied().unwrap_or(f64::NAN),
            max_ms: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// One boot's figures.
#[derive(Clone, Debug, Serialize)]
pub struct BootSample {
    /// Host: QEMU spawned → first serial line received.
    pub launch_to_first_line_ms: f64,
    /// Host: QEMU spawned → `plinth: ready` received.
    pub launch_to_ready_ms: f64,
    /// Guest: kernel entry → ready, by the kernel's TSC clock (from the ready line).
    pub kernel_init_ms: f64,
    /// Guest: each init step's share of `kernel_init_ms`, in boot order (from the
    /// kernel's `boot: steps` line).
    pub steps: Vec<(String, f64)>,
    /// Guest: the steps after `ready` that bring the appliance up (devices, catalog,
    /// partitions, network), from the `boot: after ready` line.
    pub after_ready: Vec<(String, f64)>,
    /// The same boot as a user's `plinth run` (the default appliance on its disk, a NIC):
    /// see [`ServingSample`].
    pub serving: ServingSample,
}

/// One boot of the default appliance, timed as a user sees it.
#[derive(Clone, Debug, Serialize)]
pub struct ServingSample {
    /// Host: QEMU spawned → the appliance verified, its agents started (the serial
    /// `partitions: … agents started` line after `catalog: verified …`) *and*
    /// `GET /api/v1/health` answered 200 to the host, whichever is later.
    pub launch_to_serving_ms: f64,
    /// Host: QEMU spawned → the first 200 from `/api/v1/health`.
    pub launch_to_health_ms: f64,
    /// Host: QEMU spawned → the serial line saying the agents were started.
    pub launch_to_agents_started_ms: f64,
    /// Guest: the steps after `ready` with the disk and NIC attached.
    pub after_ready: Vec<(String, f64)>,
}

/// The result of `plinth bench boot`.
#[derive(Clone, Debug, Serialize)]
pub struct BootReport {
    pub profile: String,
    pub accel: crate::profile::Accel,
    pub memory_mib: u32,
    pub runs: usize,
    pub launch_to_first_line: Summary,
    pub launch_to_ready: Summary,
    pub kernel_init: Summary,
    /// Per-step summaries of the kernel's init, in boot order.
    pub steps: Vec<(String, Summary)>,
    /// Per-step summaries of the bring-up after `ready`.
    pub after_ready: Vec<(String, Summary)>,
    /// The default appliance booted as `plinth run` does, with the spec's memory:
    /// QEMU launch → appliance verified, agents started and `/api/v1/health` answering
    /// 200 to the host.
    pub launch_to_serving: Summary,
    pub launch_to_health: Summary,
    pub launch_to_agents_started: Summary,
    /// Memory of the serving boots (the default appliance's), MiB.
    pub serving_memory_mib: u32,
    /// Per-step summaries of the bring-up after `ready` in the serving boots.
    pub serving_after_ready: Vec<(String, Summary)>,
    pub samples: Vec<BootSample>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("boot {run}: {source}\n{transcript}")]
    Boot {
        run: usize,
        source: MachineError,
        transcript: String,
    },
    #[error("boot {run}: the ready line carries no init time: {line}")]
    NoInitTime { run: usize, line: String },
    #[error("boot {run}: shutdown ended in {outcome}")]
    Shutdown { run: usize, outcome: Outcome },
    #[error("run {run}: the runtime's figures could not be read: {line}")]
    Figures { run: usize, line: String },
    #[error("run {run}: /api/v1/health did not answer 200 within {timeout:?}\n{transcript}")]
    NotServing {
        run: usize,
        timeout: Duration,
        transcript: String,
    },
    #[error("run {run}: {what}")]
    Io { run: usize, what: String },
    #[error("{0}")]
    Setup(String),
    #[error("the Linux baseline: {0}")]
    LinuxSetup(crate::linux_guest::LinuxGuestError),
    // `error`, not `source`: the message includes it already.
    #[error("run {run}, Linux baseline: {error}")]
    Linux {
        run: usize,
        error: crate::linux_guest::LinuxGuestError,
    },
}

/// Starts QEMU for run `run` of a benchmark.
pub(crate) fn launch(
    profile: &Profile,
    opts: &LaunchOptions,
    run: usize,
) -> Result<Machine, BenchError> {
    Machine::launch(profile, opts, false).map_err(|source| BenchError::Boot {
        run,
        source,
        transcript: String::new(),
    })
}

/// Run `run` failed waiting on `m`: the error, with what the runtime printed.
pub(crate) fn failed(m: &mut Machine, run: usize, source: MachineError) -> BenchError {
    BenchError::Boot {
        run,
        source,
        transcript: m.transcript(),
    }
}

/// Shuts the runtime down through its console and checks it ended cleanly.
pub(crate) fn shut_down(m: &mut Machine, run: usize) -> Result<(), BenchError> {
    if let Err(source) = m.send_line("shutdown") {
        return Err(BenchError::Boot {
            run,
            source,
            transcript: m.transcript(),
        });
    }
    let outcome = m.wait_exit(Duration::from_secs(20));
    if outcome != Outcome::Runtime(ExitCode::Success) {
        return Err(BenchError::Shutdown { run, outcome });
    }
    Ok(())
}

/// Reads the guest init time from `plinth: ready (init 2.345 ms ...`.
pub fn parse_init_ms(ready_line: &str) -> Option<f64> {
    let rest = &ready_line[ready_line.find("init ")? + 5..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The kernel's line of init steps.
pub const STEPS_LINE: &str = "boot: steps (us):";
/// The kernel's line of steps after `ready`.
pub const AFTER_READY_LINE: &str = "boot: after ready (us):";

/// Reads `PREFIX console=12 cpu=34 ...` (`PREFIX` is [`STEPS_LINE`] or
/// [`AFTER_READY_LINE`]) into (step, milliseconds) pairs.
pub fn parse_steps(line: &str, prefix: &str) -> Option<Vec<(String, f64)>> {
    let rest = &line[line.find(prefix)? + prefix.len()..];
    rest.split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse::<f64>().ok()? / 1e3))
        })
        .collect()
}

/// When `GET path` at `addr` first answered 200, or `None` by `deadline`.
///
/// A fresh attempt starts every [`SPACING`] (a few in flight at once) and each waits a
/// short while for its answer: QEMU's user network accepts a host connection at once and
/// forwards it to the guest with a SYN, which it resends only after a second if the guest
/// was not listening yet, and its listening socket has a backlog of one, so a client
/// that waits long on one attempt, or opens many, measures QEMU rather than the runtime.
pub fn first_ok(addr: SocketAddr, path: &str, deadline: Instant) -> Option<Instant> {
    const SPACING: Duration = Duration::from_millis(2);
    const IN_FLIGHT: usize = 8;
    const PATIENCE: Duration = Duration::from_millis(16);
    const CONNECT: Duration = Duration::from_millis(2);
    struct Attempt {
        stream: TcpStream,
        started: Instant,
        got: Vec<u8>,
    }
    let request = format!("GET {path} HTTP/1.1\r\nHost: plinth\r\nConnection: close\r\n\r\n");
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut last_start: Option<Instant> = None;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if attempts.len() < IN_FLIGHT && last_start.is_none_or(|t| t.elapsed() >= SPACING) {
            last_start = Some(Instant::now());
            if let Ok(mut stream) = TcpStream::connect_timeout(&addr, CONNECT)
                && stream.set_nodelay(true).is_ok()
                && stream.write_all(request.as_bytes()).is_ok()
                && stream.set_nonblocking(true).is_ok()
            {
                attempts.push(Attempt {
                    stream,
                    started: Instant::now(),
                    got: Vec::new(),
                });
            }
        }
        let mut i = 0;
        while i < attempts.len() {
            let a = &mut attempts[i];
            let keep = match a.stream.read(&mut buf) {
                Ok(0) => false,
                Ok(n) => {
                    a.got.extend_from_slice(&buf[..n]);
                    if a.got.starts_with(b"HTTP/1.1 200 ") {
                        return Some(Instant::now());
                    }
                    // Any other status line (or garbage): this attempt is done.
                    a.got.len() < 12
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    a.started.elapsed() < PATIENCE
                }
                Err(_) => false,
            };
            if keep {
                i += 1;
            } else {
                attempts.swap_remove(i);
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    None
}

/// The serial line that says the appliance's agents were started.
pub const AGENTS_STARTED: &str = "agents started";

/// One boot of the default appliance (a copy of `image`), as `plinth run` boots it.
fn serving_boot(
    profile: &Profile,
    opts: &LaunchOptions,
    image: &std::path::Path,
    run: usize,
) -> Result<ServingSample, BenchError> {
    let timeout = Duration::from_secs(60);
    let io = |what: String| BenchError::Io { run, what };
    let copy = crate::disk::ScratchImage::create_sized(0).map_err(|e| io(e.to_string()))?;
    std::fs::copy(image, copy.path())
        .map_err(|e| io(format!("copying {}: {e}", image.display())))?;
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| io(format!("no free port: {e}")))?
        .port();
    let mut opts = opts.clone();
    opts.disk = Some(crate::profile::Disk {
        image: copy.path().to_path_buf(),
        serial: "plinth-disk0".into(),
    });
    opts.nic = Some(crate::profile::Nic {
        mac: crate::profile::Nic::DEFAULT_MAC,
        api_host_port: port,
        api_port: plinth_cmdline::parse(&opts.append).options.api_port,
    });
    let mut m = launch(profile, &opts, run)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let health = first_ok(addr, "/api/v1/health", Instant::now() + timeout).ok_or_else(|| {
        BenchError::NotServing {
            run,
            timeout,
            transcript: m.transcript(),
        }
    })?;
    let fail = |m: &mut Machine, source| failed(m, run, source);
    if let Err(e) = m.wait_for(timeout, |l| l.contains("catalog: verified")) {
        return Err(fail(&mut m, e));
    }
    let agents = match m.wait_for(timeout, |l| l.contains(AGENTS_STARTED)) {
        Ok(l) => l,
        Err(e) => return Err(fail(&mut m, e)),
    };
    let after = match m.wait_for(timeout, |l| l.contains(AFTER_READY_LINE)) {
        Ok(l) => l,
        Err(e) => return Err(fail(&mut m, e)),
    };
    let after_ready =
        parse_steps(&after.text, AFTER_READY_LINE).ok_or_else(|| BenchError::Figures {
            run,
            line: after.text.clone(),
        })?;
    shut_down(&mut m, run)?;
    let ms = |at: Instant| at.duration_since(m.launched_at).as_secs_f64() * 1e3;
    Ok(ServingSample {
        launch_to_serving_ms: ms(health.max(agents.at)),
        launch_to_health_ms: ms(health),
        launch_to_agents_started_ms: ms(agents.at),
        after_ready,
    })
}

/// Boots `runs` times bare (no disk, no NIC: launch → ready and the kernel's init) and
/// `runs` times as a user's `plinth run` (the default appliance, built once, a NIC: launch
/// → serving), alternating; every boot is shut down through the console.
pub fn boot(
    profile: &Profile,
    opts: &LaunchOptions,
    runs: usize,
    mut progress: impl FnMut(usize, &BootSample),
) -> Result<BootReport, BenchError> {
    let timeout = Duration::from_secs(60);
    let appliance =
        crate::disk::ScratchImage::create_sized(0).map_err(|e| BenchError::Setup(e.to_string()))?;
    let serving_memory = crate::image::build_default(appliance.path())
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut serving_opts = opts.clone();
    serving_opts.memory_mib = u32::try_from(serving_memory).unwrap_or(u32::MAX);
    let mut samples = Vec::with_capacity(runs);
    for run in 1..=runs {
        let mut m = launch(profile, opts, run)?;
        let fail = |m: &mut Machine, source| failed(m, run, source);
        let first = match m.wait_for(timeout, |_| true) {
            Ok(l) => l,
            Err(e) => return Err(fail(&mut m, e)),
        };
        let ready = match m.wait_ready(timeout) {
            Ok(l) => l,
            Err(e) => return Err(fail(&mut m, e)),
        };
        let kernel_init_ms = parse_init_ms(&ready.text).ok_or_else(|| BenchError::NoInitTime {
            run,
            line: ready.text.clone(),
        })?;
        let mut step_lines = Vec::new();
        for prefix in [STEPS_LINE, AFTER_READY_LINE] {
            let line = match m.wait_for(timeout, |l| l.contains(prefix)) {
                Ok(l) => l,
                Err(e) => return Err(fail(&mut m, e)),
            };
            step_lines.push(parse_steps(&line.text, prefix).ok_or_else(|| {
                BenchError::Figures {
                    run,
                    line: line.text.clone(),
                }
            })?);
        }
        let after_ready = step_lines.pop().unwrap_or_default();
        let steps = step_lines.pop().unwrap_or_default();
        shut_down(&mut m, run)?;
        let ms = |at: Instant| at.duration_since(m.launched_at).as_secs_f64() * 1e3;
        let launch_to_first_line_ms = ms(first.at);
        let launch_to_ready_ms = ms(ready.at);
        drop(m);
        let serving = serving_boot(profile, &serving_opts, appliance.path(), run)?;
        let sample = BootSample {
            launch_to_first_line_ms,
            launch_to_ready_ms,
            kernel_init_ms,
            steps,
            after_ready,
            serving,
        };
        progress(run, &sample);
        samples.push(sample);
    }
    let pick = |f: fn(&BootSample) -> f64| Summary::of(&samples.iter().map(f).collect::<Vec<_>>());
    let per_step = |get: fn(&BootSample) -> &[(String, f64)]| -> Vec<(String, Summary)> {
        let Some(first) = samples.first() else {
            return Vec::new();
        };
        get(first)
            .iter()
            .map(|(name, _)| {
                let values: Vec<f64> = samples
                    .iter()
                    .filter_map(|s| get(s).iter().find(|(n, _)| n == name).map(|p| p.1))
                    .collect();
                (name.clone(), Summary::of(&values))
            })
            .collect()
    };
    let steps = per_step(|s| &s.steps);
    let after_ready = per_step(|s| &s.after_ready);
    let serving_after_ready = per_step(|s| &s.serving.after_ready);
    Ok(BootReport {
        profile: profile.name.clone(),
        accel: opts.accel,
        memory_mib: opts.memory_mib,
        runs,
        launch_to_first_line: pick(|s| s.launch_to_first_line_ms),
        launch_to_ready: pick(|s| s.launch_to_ready_ms),
        kernel_init: pick(|s| s.kernel_init_ms),
        steps,
        after_ready,
        launch_to_serving: pick(|s| s.serving.launch_to_serving_ms),
        launch_to_health: pick(|s| s.serving.launch_to_health_ms),
        launch_to_agents_started: pick(|s| s.serving.launch_to_agents_started_ms),
        serving_memory_mib: serving_opts.memory_mib,
        serving_after_ready,
        samples,
    })
}

impl std::fmt::Display for BootReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "boot benchmark: {} runs, profile {}, accel {}, {} MiB",
            self.runs,
            self.profile,
            self.accel.as_str(),
            self.memory_mib
        )?;
        writeln!(
            f,
            "{:<34} {:>10} {:>10} {:>10}",
            "", "median ms", "min ms", "max ms"
        )?;
        for (name, s) in [
            (
                "launch -> first serial line (host)",
                self.launch_to_first_line,
            ),
            ("launch -> ready (host)", self.launch_to_ready),
            ("kernel init, entry -> ready (TSC)", self.kernel_init),
            ("launch -> serving (host)", self.launch_to_serving),
            ("  launch -> health 200 (host)", self.launch_to_health),
            (
                "  launch -> agents started (host)",
                self.launch_to_agents_started,
            ),
        ] {
            writeln!(
                f,
                "{name:<34} {:>10.2} {:>10.2} {:>10.2}",
                s.median_ms, s.min_ms, s.max_ms
            )?;
        }
        for (label, steps) in [
            ("init step", &self.steps),
            ("after ready", &self.after_ready),
            ("serving, after ready", &self.serving_after_ready),
        ] {
            for (name, s) in steps {
                writeln!(
                    f,
                    "{:<34} {:>10.2} {:>10.2} {:>10.2}",
                    format!("  {label}: {name}"),
                    s.median_ms,
                    s.min_ms,
                    s.max_ms
                )?;
            }
        }
        writeln!(
            f,
            "ready after first line: {:.2} ms (median difference)",
            self.launch_to_ready.median_ms - self.launch_to_first_line.median_ms
        )?;
        write!(
            f,
            "serving: the default appliance ({} MiB) with its disk and a NIC, as `plinth run`",
            self.serving_memory_mib
        )
    }
}

/// What `plinth bench blk` asks the runtime to do (its `bench blk` console command).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct BlkOptions {
    /// MiB written then read sequentially from the start of the disk.
    pub region_mib: u64,
    /// KiB per sequential request.
    pub request_kib: u64,
    /// Sequential requests in flight.
    pub depth: usize,
    /// 4 KiB random reads at queue depth 1.
    pub random_reads: u64,
    /// Boots, each with a fresh image.
    pub runs: usize,
    /// Each run also boots the Linux guest for the baseline (and the runtime at its
    /// shape, 1 MiB requests one at a time, unless the options already are that).
    pub linux: bool,
}

impl BlkOptions {
    /// Request size and depth of the Linux baseline, which the runtime also runs for a
    /// like-for-like figure.
    pub const QD1_REQUEST_KIB: u64 = crate::bench_linux::REQUEST_BYTES >> 10;

    /// Whether the runtime's own run already has the baseline's shape.
    pub fn is_qd1_shape(&self) -> bool {
        self.depth == 1 && self.request_kib == Self::QD1_REQUEST_KIB
    }
}

/// One run's figures, as the runtime measured them with its TSC clock.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct BlkSample {
    pub seq_write_mib_s: f64,
    pub flush_ms: f64,
    /// The write counted until the flush after it completed: what reached the image.
    pub seq_write_flushed_mib_s: f64,
    pub seq_read_mib_s: f64,
    pub rand_read_iops: f64,
    pub rand_read_latency_us: f64,
}

impl BlkSample {
    /// The write and flush figures alone.
    pub fn write(&self) -> FlushedWrite {
        FlushedWrite {
            seq_write_mib_s: self.seq_write_mib_s,
            flush_ms: self.flush_ms,
            seq_write_flushed_mib_s: self.seq_write_flushed_mib_s,
        }
    }
}

/// A sequential write and the flush after it: what the runtime and the Linux baseline
/// are compared on.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct FlushedWrite {
    pub seq_write_mib_s: f64,
    pub flush_ms: f64,
    /// `bytes` over the write's and the flush's time together.
    pub seq_write_flushed_mib_s: f64,
}

impl FlushedWrite {
    /// From `bytes` written in `write_ns`, then flushed in `flush_ns`.
    pub fn from_ns(bytes: u64, write_ns: u64, flush_ns: u64) -> FlushedWrite {
        let mib = bytes as f64 / f64::from(1 << 20);
        let (write_s, flush_s) = (write_ns as f64 / 1e9, flush_ns as f64 / 1e9);
        FlushedWrite {
            seq_write_mib_s: mib / write_s,
            flush_ms: flush_s * 1e3,
            seq_write_flushed_mib_s: mib / (write_s + flush_s),
        }
    }
}

/// [`FlushedWrite`] figures over the runs.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct FlushedWriteSpread {
    pub seq_write_mib_s: Spread,
    pub flush_ms: Spread,
    pub seq_write_flushed_mib_s: Spread,
}

impl FlushedWriteSpread {
    pub fn of(samples: &[FlushedWrite]) -> FlushedWriteSpread {
        let pick =
            |f: fn(&FlushedWrite) -> f64| Spread::of(&samples.iter().map(f).collect::<Vec<_>>());
        FlushedWriteSpread {
            seq_write_mib_s: pick(|s| s.seq_write_mib_s),
            flush_ms: pick(|s| s.flush_ms),
            seq_write_flushed_mib_s: pick(|s| s.seq_write_flushed_mib_s),
        }
    }
}

/// Median, minimum and maximum of one figure over the runs.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        let s = Summary::of(values);
        Spread {
            median: s.median_ms,
            min: s.min_ms,
            max: s.max_ms,
        }
    }
}

/// The runtime run at the Linux baseline's shape: 1 MiB requests, one in flight.
#[derive(Clone, Debug, Serialize)]
pub struct PlinthQd1 {
    pub request_kib: u64,
    pub depth: usize,
    /// True when these are the main runs' own figures (the options already had this
    /// shape), false when each run booted the runtime once more for them.
    pub same_runs_as_main: bool,
    #[serde(flatten)]
    pub figures: FlushedWriteSpread,
    pub samples: Vec<FlushedWrite>,
}

/// Write-until-flushed medians, the runtime's over Linux's.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct BlkRatios {
    /// The runtime at `--depth` and `--request-kib`.
    pub main: f64,
    /// The runtime at the baseline's shape (QD1, 1 MiB): like for like.
    pub qd1: f64,
}

/// The result of `plinth bench blk`.
#[derive(Clone, Debug, Serialize)]
pub struct BlkReport {
    pub profile: String,
    pub accel: crate::profile::Accel,
    pub memory_mib: u32,
    pub image_bytes: u64,
    pub options: BlkOptions,
    /// The QEMU command line of the last run.
    pub qemu_args: Vec<String>,
    pub seq_write_mib_s: Spread,
    pub flush_ms: Spread,
    pub seq_write_flushed_mib_s: Spread,
    pub seq_read_mib_s: Spread,
    pub rand_read_iops: Spread,
    pub samples: Vec<BlkSample>,
    /// The runtime at the Linux baseline's shape (absent with `--no-linux`).
    pub plinth_qd1: Option<PlinthQd1>,
    /// The Linux guest's figures (absent with `--no-linux`).
    pub linux: Option<crate::bench_linux::LinuxBlkReport>,
    /// Write until flushed, runtime over Linux (absent with `--no-linux`).
    pub plinth_over_linux: Option<BlkRatios>,
}

/// One run's figures: the runtime's, and with the baseline the runtime's at its shape
/// and Linux's.
#[derive(Clone, Debug)]
pub struct BlkRun {
    pub plinth: BlkSample,
    pub plinth_qd1: Option<FlushedWrite>,
    pub linux: Option<FlushedWrite>,
}

/// Reads the figures from the runtime's `bench blk N: key=value ...` line.
pub fn parse_blk_line(line: &str) -> Option<BlkSample> {
    let (_, rest) = line.split_once(": ")?;
    let field = |key: &str| -> Option<f64> {
        rest.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    let region = field("region")?;
    let mib = region / f64::from(1 << 20);
    let (write_s, read_s) = (field("write_ns")? / 1e9, field("read_ns")? / 1e9);
    let (reads, random_s) = (field("random_reads")?, field("random_ns")? / 1e9);
    if write_s <= 0.0 || read_s <= 0.0 || random_s <= 0.0 || reads <= 0.0 {
        return None;
    }
    let flush_s = field("flush_ns")? / 1e9;
    Some(BlkSample {
        seq_write_mib_s: mib / write_s,
        flush_ms: flush_s * 1e3,
        seq_write_flushed_mib_s: mib / (write_s + flush_s),
        seq_read_mib_s: mib / read_s,
        rand_read_iops: reads / random_s,
        rand_read_latency_us: random_s * 1e6 / reads,
    })
}

/// `opts` with a fresh image of `bytes`, laid out (every block written and flushed)
/// before the boot, as fio does, attached as the benchmark disk. The image lives as long
/// as the returned guard.
fn with_laid_out_disk(
    opts: &LaunchOptions,
    bytes: u64,
) -> Result<(LaunchOptions, crate::disk::ScratchImage), BenchError> {
    let image = crate::disk::ScratchImage::create_laid_out(bytes)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut opts = opts.clone();
    opts.disk = Some(crate::profile::Disk {
        image: image.path().to_path_buf(),
        serial: "plinth-bench".into(),
    });
    Ok((opts, image))
}

/// One boot of the runtime on a fresh laid-out image of `image_bytes`: types `command`
/// (`bench blk 0 …`), reads its figures, shuts down. Also the QEMU arguments.
fn blk_boot(
    profile: &Profile,
    opts: &LaunchOptions,
    image_bytes: u64,
    command: &str,
    run: usize,
) -> Result<(BlkSample, Vec<String>), BenchError> {
    let (opts, _image) = with_laid_out_disk(opts, image_bytes)?;
    let qemu_args = profile
        .args(&opts)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut m = launch(profile, &opts, run)?;
    let fail = |m: &mut Machine, source| failed(m, run, source);
    if let Err(e) = m.wait_ready(Duration::from_secs(60)) {
        return Err(fail(&mut m, e));
    }
    if let Err(e) = m.send_line(command) {
        return Err(fail(&mut m, e));
    }
    let line = match m.wait_for(Duration::from_secs(600), |l| l.starts_with("bench blk 0:")) {
        Ok(l) => l.text,
        Err(e) => return Err(fail(&mut m, e)),
    };
    let sample = parse_blk_line(&line).ok_or_else(|| BenchError::Figures {
        run,
        line: line.clone(),
    })?;
    shut_down(&mut m, run)?;
    Ok((sample, qemu_args))
}

/// Boots `o.runs` times with a fresh laid-out image (`region` plus 64 MiB), runs the
/// in-runtime disk benchmark on it and shuts down. With `o.linux`, each run then boots
/// the runtime once more at the Linux baseline's shape (1 MiB, one in flight; unless `o`
/// is that shape already), then the Linux guest on its own fresh image of the same size
/// with the same QEMU command line, which writes the same region the same way
/// ([`crate::bench_linux`]).
pub fn blk(
    profile: &Profile,
    opts: &LaunchOptions,
    o: &BlkOptions,
    mut progress: impl FnMut(usize, &BlkRun),
) -> Result<BlkReport, BenchError> {
    let image_bytes = (o.region_mib + 64) << 20;
    let linux = match o.linux {
        true => {
            crate::bench_linux::check_profile(profile).map_err(BenchError::Setup)?;
            Some(crate::bench_linux::LinuxBlk::prepare().map_err(BenchError::LinuxSetup)?)
        }
        false => None,
    };
    let mut samples = Vec::with_capacity(o.runs);
    let mut qd1_samples = Vec::with_capacity(o.runs);
    let mut linux_runs = Vec::with_capacity(o.runs);
    let mut qemu_args = Vec::new();
    let command = format!(
        "bench blk 0 {} {} {} {}",
        o.region_mib, o.request_kib, o.depth, o.random_reads
    );
    // The like-for-like run needs only the write and flush: one random read keeps the
    // rest of the command short.
    let qd1_command = format!(
        "bench blk 0 {} {} 1 1",
        o.region_mib,
        BlkOptions::QD1_REQUEST_KIB
    );
    for run in 1..=o.runs {
        let (sample, args) = blk_boot(profile, opts, image_bytes, &command, run)?;
        qemu_args = args;
        let mut figures = BlkRun {
            plinth: sample,
            plinth_qd1: None,
            linux: None,
        };
        if let Some(linux) = &linux {
            figures.plinth_qd1 = Some(match o.is_qd1_shape() {
                true => sample.write(),
                false => blk_boot(profile, opts, image_bytes, &qd1_command, run)?
                    .0
                    .write(),
            });
            let (disk_opts, _image) = with_laid_out_disk(opts, image_bytes)?;
            let r = linux.run(profile, &disk_opts, o.region_mib, run)?;
            figures.linux = Some(r.line.figures());
            linux_runs.push(r);
        }
        progress(run, &figures);
        samples.push(figures.plinth);
        qd1_samples.extend(figures.plinth_qd1);
    }
    let pick = |f: fn(&BlkSample) -> f64| Spread::of(&samples.iter().map(f).collect::<Vec<_>>());
    let seq_write_flushed_mib_s = pick(|s| s.seq_write_flushed_mib_s);
    let plinth_qd1 = linux.is_some().then(|| PlinthQd1 {
        request_kib: BlkOptions::QD1_REQUEST_KIB,
        depth: 1,
        same_runs_as_main: o.is_qd1_shape(),
        figures: FlushedWriteSpread::of(&qd1_samples),
        samples: qd1_samples,
    });
    let linux = linux.map(|l| {
        let samples: Vec<FlushedWrite> = linux_runs.iter().map(|r| r.line.figures()).collect();
        let last = linux_runs.last();
        crate::bench_linux::LinuxBlkReport {
            kernel: l.guest.describe(),
            workload: crate::bench_linux::workload(o.region_mib),
            clocksource: last.map(|r| r.line.clocksource.clone()).unwrap_or_default(),
            figures: FlushedWriteSpread::of(&samples),
            samples,
            qemu_args: last.map(|r| r.qemu_args.clone()).unwrap_or_default(),
        }
    });
    let plinth_over_linux = match (&linux, &plinth_qd1) {
        (Some(l), Some(q)) => {
            let base = l.figures.seq_write_flushed_mib_s.median;
            Some(BlkRatios {
                main: seq_write_flushed_mib_s.median / base,
                qd1: q.figures.seq_write_flushed_mib_s.median / base,
            })
        }
        _ => None,
    };
    Ok(BlkReport {
        profile: profile.name.clone(),
        accel: opts.accel,
        memory_mib: opts.memory_mib,
        image_bytes,
        options: *o,
        qemu_args,
        seq_write_mib_s: pick(|s| s.seq_write_mib_s),
        flush_ms: pick(|s| s.flush_ms),
        seq_write_flushed_mib_s,
        seq_read_mib_s: pick(|s| s.seq_read_mib_s),
        rand_read_iops: pick(|s| s.rand_read_iops),
        samples,
        plinth_qd1,
        linux,
        plinth_over_linux,
    })
}

impl std::fmt::Display for BlkReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "disk benchmark: {} runs, profile {}, accel {}, {} MiB; measured inside the runtime",
            o.runs,
            self.profile,
            self.accel.as_str(),
            self.memory_mib
        )?;
        writeln!(
            f,
            "sequential: {} MiB in {} KiB requests, {} in flight; random: {} reads of 4 KiB, 1 in flight; a fresh {} MiB image per run, laid out before the boot",
            o.region_mib,
            o.request_kib,
            o.depth,
            o.random_reads,
            self.image_bytes >> 20
        )?;
        writeln!(f, "{:<28} {:>10} {:>10} {:>10}", "", "median", "min", "max")?;
        let row = |f: &mut std::fmt::Formatter<'_>, name: &str, s: Spread| {
            writeln!(
                f,
                "{name:<28} {:>10.1} {:>10.1} {:>10.1}",
                s.median, s.min, s.max
            )
        };
        for (name, s) in [
            ("sequential write, MiB/s", self.seq_write_mib_s),
            ("flush after it, ms", self.flush_ms),
            ("write until flushed, MiB/s", self.seq_write_flushed_mib_s),
            ("sequential read, MiB/s", self.seq_read_mib_s),
            ("4 KiB random read, IOPS", self.rand_read_iops),
        ] {
            row(f, name, s)?;
        }
        let w = self.seq_write_flushed_mib_s;
        writeln!(
            f,
            "write until flushed: {:.2} GiB/s median, max/min {:.2} over {} runs",
            w.median / 1024.0,
            w.max / w.min.max(f64::MIN_POSITIVE),
            o.runs
        )?;
        if let (Some(l), Some(q), Some(r)) =
            (&self.linux, &self.plinth_qd1, &self.plinth_over_linux)
        {
            writeln!(
                f,
                "Linux baseline: {} (clock source {}), on its own fresh {} MiB image per run, same QEMU command line but -kernel/-initrd/-append",
                l.kernel,
                l.clocksource,
                self.image_bytes >> 20
            )?;
            writeln!(f, "Linux workload: {}", l.workload)?;
            writeln!(
                f,
                "{:<34} {:>10} {:>10} {:>10}  max/min",
                "write until flushed, MiB/s", "median", "min", "max"
            )?;
            let spread = |s: Spread| s.max / s.min.max(f64::MIN_POSITIVE);
            let main = format!("plinth, {} KiB x {} in flight", o.request_kib, o.depth);
            let qd1 = format!(
                "plinth, {} KiB x 1 in flight{}",
                q.request_kib,
                if q.same_runs_as_main { " (same)" } else { "" }
            );
            for (name, s) in [
                (main.as_str(), w),
                (qd1.as_str(), q.figures.seq_write_flushed_mib_s),
                (
                    "Linux, 1024 KiB x 1 in flight",
                    l.figures.seq_write_flushed_mib_s,
                ),
            ] {
                writeln!(
                    f,
                    "{name:<34} {:>10.1} {:>10.1} {:>10.1}  {:.2}",
                    s.median,
                    s.min,
                    s.max,
                    spread(s)
                )?;
            }
            writeln!(
                f,
                "Linux: write {:.1} MiB/s, flush {:.1} ms (medians)",
                l.figures.seq_write_mib_s.median, l.figures.flush_ms.median
            )?;
            writeln!(
                f,
                "plinth/Linux, write until flushed (medians): {:.2} at {} in flight, {:.2} like for like (1 in flight)",
                r.main, o.depth, r.qd1
            )?;
            writeln!(f, "linux qemu: {}", l.qemu_args.join(" "))?;
        }
        write!(f, "qemu: {}", self.qemu_args.join(" "))
    }
}

/// The result of `plinth bench idle`.
#[derive(Clone, Debug, Serialize)]
pub struct IdleReport {
    pub profile: String,
    pub accel: crate::profile::Accel,
    pub memory_mib: u32,
    /// Length of each measurement window.
    pub seconds: f64,
    /// QEMU's CPU use over each window, percent of one host core.
    pub cpu_percent: Vec<f64>,
    pub median_cpu_percent: f64,
    pub qemu_args: Vec<String>,
}

/// Boots with a disk and a NIC (as `plinth run` does), waits until the API answers and
/// the runtime has settled, then measures QEMU's CPU time over `runs` windows of
/// `seconds` while nothing talks to the runtime.
pub fn idle(
    profile: &Profile,
    opts: &LaunchOptions,
    seconds: f64,
    runs: usize,
    mut progress: impl FnMut(usize, f64),
) -> Result<IdleReport, BenchError> {
    let run = 1;
    let image =
        crate::disk::ScratchImage::create().map_err(|e| BenchError::Setup(e.to_string()))?;
    let host_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| BenchError::Setup(e.to_string()))?
        .port();
    let mut opts = opts.clone();
    opts.disk = Some(crate::profile::Disk {
        image: image.path().to_path_buf(),
        serial: "plinth-idle".into(),
    });
    if !profile.nic_args.is_empty() {
        opts.nic = Some(crate::profile::Nic {
            mac: crate::profile::Nic::DEFAULT_MAC,
            api_host_port: host_port,
            api_port: plinth_cmdline::parse(&opts.append).options.api_port,
        });
    }
    let qemu_args = profile
        .args(&opts)
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut m = launch(profile, &opts, run)?;
    let fail = |m: &mut Machine, source| failed(m, run, source);
    if let Err(e) = m.wait_ready(Duration::from_secs(60)) {
        return Err(fail(&mut m, e));
    }
    if opts.nic.is_some() {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], host_port));
        crate::api::wait_healthy(addr, Duration::from_secs(60))
            .map_err(|e| BenchError::Setup(format!("the API did not come up: {e}")))?;
    }
    // Past the one-second clock refinement after ready: the steady state.
    std::thread::sleep(Duration::from_millis(1500));
    let window = Duration::from_secs_f64(seconds);
    let mut cpu_percent = Vec::with_capacity(runs);
    for i in 1..=runs {
        let (t0, c0) = (std::time::Instant::now(), m.cpu_time());
        std::thread::sleep(window);
        let (t1, c1) = (std::time::Instant::now(), m.cpu_time());
        let (Some(c0), Some(c1)) = (c0, c1) else {
            return Err(BenchError::Setup(
                "QEMU's CPU time is unreadable (/proc/PID/stat)".into(),
            ));
        };
        let pct = (c1 - c0).as_secs_f64() / (t1 - t0).as_secs_f64() * 100.0;
        progress(i, pct);
        cpu_percent.push(pct);
    }
    shut_down(&mut m, run)?;
    Ok(IdleReport {
        profile: profile.name.clone(),
        accel: opts.accel,
        memory_mib: opts.memory_mib,
        seconds,
        median_cpu_percent: Summary::of(&cpu_percent).median_ms,
        cpu_percent,
        qemu_args,
    })
}

impl std::fmt::Display for IdleReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "idle benchmark: profile {}, accel {}, {} MiB, disk and NIC attached, nothing talking",
            self.profile,
            self.accel.as_str(),
            self.memory_mib
        )?;
        let each: Vec<String> = self.cpu_percent.iter().map(|p| format!("{p:.2}")).collect();
        writeln!(
            f,
            "QEMU CPU use over {} windows of {:.1} s: median {:.2}% of one core ({}%)",
            self.cpu_percent.len(),
            self.seconds,
            self.median_cpu_percent,
            each.join("%, ")
        )?;
        write!(f, "qemu: {}", self.qemu_args.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_odd_even_and_empty() {
        assert_eq!(
            Summary::of(&[3.0, 1.0, 2.0]),
            Summary {
                median_ms: 2.0,
                min_ms: 1.0,
                max_ms: 3.0
            }
        );
        assert_eq!(Summary::of(&[4.0, 1.0, 2.0, 3.0]).median_ms, 2.5);
        assert!(Summary::of(&[]).median_ms.is_nan());
    }

    #[test]
    fn blk_figures_are_read_from_the_runtime_line() {
        let line = "bench blk 0: region=268435456 request=1048576 depth=4 write_ns=500000000 \
                    flush_ns=2000000 read_ns=125000000 random_reads=4000 random_ns=500000000 \
                    (write 512.00 MiB/s, read 2048.00 MiB/s, 4 KiB random read 8000 IOPS)";
        let s = parse_blk_line(line).unwrap();
        assert_eq!(s.seq_write_mib_s, 512.0);
        assert_eq!(s.seq_read_mib_s, 2048.0);
        assert_eq!(s.flush_ms, 2.0);
        assert_eq!(s.seq_write_flushed_mib_s, 256.0 / 0.502);
        assert_eq!(s.rand_read_iops, 8000.0);
        assert_eq!(s.rand_read_latency_us, 125.0);
        assert_eq!(parse_blk_line("bench blk 0: error: no such disk"), None);
        assert_eq!(
            parse_blk_line(&line.replace("read_ns=125000000", "read_ns=0")),
            None,
            "a zero time is not a figure"
        );
    }

    #[test]
    fn init_time_is_read_from_the_ready_line() {
        assert_eq!(
            parse_init_ms("plinth: ready (init 4.321 ms of guest time, memory 128 MiB, 1 cpu)"),
            Some(4.321)
        );
        assert_eq!(parse_init_ms("plinth: ready"), None);
        assert_eq!(parse_init_ms("plinth: ready (init soon ms)"), None);
    }

    #[test]
    fn init_steps_are_read_in_boot_order() {
        let line = "[   0.010000] INFO  boot: steps (us): console=459 cpu=30 memory=1723";
        let steps = parse_steps(line, STEPS_LINE).unwrap();
        let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["console", "cpu", "memory"]);
        assert!((steps[2].1 - 1.723).abs() < 1e-9);
        assert_eq!(parse_steps(line, AFTER_READY_LINE), None);
        let after = parse_steps(
            "INFO  boot: after ready (us): devices=1200",
            AFTER_READY_LINE,
        );
        assert_eq!(after, Some(vec![("devices".to_string(), 1.2)]));
        assert_eq!(parse_steps("boot: steps (us): console=x", STEPS_LINE), None);
        assert_eq!(parse_steps("plinth: ready", STEPS_LINE), None);
    }
}
