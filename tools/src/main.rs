//! `plinth`: build, boot and benchmark the plinth runtime.

use std::io::BufRead;
use std::process::ExitCode as ProcessExit;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use plinth::machine::{Machine, Outcome};
use plinth::profile::{Accel, LaunchOptions, Profile};
use plinth_exit::ExitCode;

#[derive(Parser)]
#[command(
    name = "plinth",
    version,
    about = "Build, boot and benchmark the plinth runtime in QEMU"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the kernel and boot it with its serial console on this terminal.
    ///
    /// Type `help`, `status` or `shutdown` at the console. Exit status: 0 after a clean
    /// shutdown, 1 if the runtime stopped with a fault, panic or failed self-test,
    /// 2 on a tool error, 124 when --timeout expired.
    Run(RunArgs),
    /// Query a running runtime's management API (`GET /api/v1/status`).
    Status(StatusArgs),
    /// Partitions of a running runtime: list, show, create, start, stop, restart,
    /// terminate, resize, attach-disk, detach-disk.
    ///
    /// Exit status: 0 on success, 1 when the runtime refuses the request (its message is
    /// printed), 2 on bad arguments or when the API cannot be reached.
    Part(plinth::part::PartArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        which: BenchCmd,
    },
    /// Agent containers: pack a directory into a signed `.agent` file, inspect, verify.
    Agent {
        #[command(subcommand)]
        which: AgentCmd,
    },
    /// Signing keys.
    Key {
        #[command(subcommand)]
        which: KeyCmd,
    },
    /// Appliance images: a GPT disk with the catalog (spec, keys, policies, agents).
    Image {
        #[command(subcommand)]
        which: ImageCmd,
    },
    /// Policies and appliance specs.
    Policy {
        #[command(subcommand)]
        which: PolicyCmd,
    },
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Build an appliance image from a spec (`kind = "appliance"`).
    Build {
        spec: std::path::PathBuf,
        /// The image file to write.
        #[arg(short, long)]
        out: std::path::PathBuf,
        #[arg(long, value_enum, default_value_t = plinth::image::Format::Raw)]
        format: plinth::image::Format,
        /// Secret key that signs the agents the spec gives as directories.
        #[arg(long)]
        key: Option<std::path::PathBuf>,
    },
    /// List an image's partitions and check its catalog as the runtime does at boot.
    Inspect { image: std::path::PathBuf },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Check policy files and appliance specs as one set; print `file:line:col: message`
    /// for every problem. A spec brings in the policies it lists and its agents.
    Check {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum AgentCmd {
    /// Build the example agents (hostshim/examples) for the runtime and install them as
    /// bin/NAME in the default appliance's agent directories.
    Build,
    /// Pack DIR (its manifest.toml and every other file in it) into a signed container.
    Pack {
        dir: std::path::PathBuf,
        /// The container file to write.
        #[arg(short, long)]
        out: std::path::PathBuf,
        /// Secret key file (from `plinth key gen`).
        #[arg(long)]
        key: std::path::PathBuf,
    },
    /// Show a container's manifest, files and signature (without requiring trust).
    Inspect { file: std::path::PathBuf },
    /// Check a container is well-formed and signed by one of the given public keys.
    Verify {
        file: std::path::PathBuf,
        /// Trusted public key file (repeatable).
        #[arg(long = "pubkey", required = true)]
        pubkeys: Vec<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Create an ed25519 key pair: NAME.key (secret, mode 0600) and NAME.pub.
    Gen {
        /// Path and stem of the two files.
        name: std::path::PathBuf,
    },
}

#[derive(Args, Clone)]
struct MachineArgs {
    /// Machine profile: a name from qemu/ (q35, microvm) or a path to a profile .toml.
    #[arg(long, default_value = "q35")]
    profile: String,
    /// Guest memory, MiB [default: 128; `run` of an appliance: the spec's machine memory].
    #[arg(long, short = 'm')]
    memory: Option<u32>,
    /// Accelerator (tcg is the reference; kvm needs a real /dev/kvm).
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    /// Extra kernel command-line arguments, e.g. `--append "log=debug selftest=heap"`.
    #[arg(long, default_value = "")]
    append: String,
    /// Boot this kernel ELF instead of building one.
    #[arg(long)]
    kernel: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    machine: MachineArgs,
    /// Stop QEMU after this many seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Boot, wait for `plinth: ready`, shut down cleanly and exit 0.
    #[arg(long)]
    exit_on_ready: bool,
    /// Raw disk image to attach as the runtime's virtio disk (default: the default
    /// appliance, tools/appliance/appliance.toml, built afresh for this run).
    #[arg(long, conflicts_with = "no_disk")]
    disk: Option<std::path::PathBuf>,
    /// Attach no disk.
    #[arg(long)]
    no_disk: bool,
    /// Host port on 127.0.0.1 forwarded to the runtime's management API.
    #[arg(long, default_value_t = plinth::api::DEFAULT_HOST_PORT, conflicts_with = "no_nic")]
    api_port: u16,
    /// Attach no NIC (no management API).
    #[arg(long)]
    no_nic: bool,
}

#[derive(Args)]
struct StatusArgs {
    /// Where the API is reachable (what `plinth run --api-port` forwards).
    #[arg(long, default_value_t = std::net::SocketAddr::from(([127, 0, 0, 1], plinth::api::DEFAULT_HOST_PORT)))]
    addr: std::net::SocketAddr,
    /// Print the runtime's JSON as it is.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Null system call round trip and switch between partitions, measured by agents
    /// in ring 3 (two boots per run).
    Syscall {
        #[command(flatten)]
        machine: MachineArgs,
        /// Number of runs.
        #[arg(short = 'n', long, default_value_t = 3)]
        runs: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// How many minimal partitions (1 MiB, one sleeping agent) fit, and the runtime's
    /// memory overhead per partition (boots once, with 512 MiB unless -m).
    Density {
        #[command(flatten)]
        machine: MachineArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Boot N times; report launch->first line, launch->ready and kernel init time.
    Boot {
        #[command(flatten)]
        machine: MachineArgs,
        /// Number of boots.
        #[arg(short = 'n', long, default_value_t = 10)]
        runs: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disk throughput and IOPS, measured inside the runtime on a fresh scratch image.
    Blk {
        #[command(flatten)]
        machine: MachineArgs,
        /// MiB written then read sequentially.
        #[arg(long, default_value_t = 256)]
        region_mib: u64,
        /// KiB per sequential request.
        #[arg(long, default_value_t = 1024)]
        request_kib: u64,
        /// Sequential requests in flight.
        #[arg(long, default_value_t = 4)]
        depth: usize,
        /// 4 KiB random reads (queue depth 1).
        #[arg(long, default_value_t = 4000)]
        random_reads: u64,
        /// Boots (each with a fresh image).
        #[arg(short = 'n', long, default_value_t = 3)]
        runs: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// CPU use of an idle runtime (QEMU process, with a disk and a NIC attached).
    Idle {
        #[command(flatten)]
        machine: MachineArgs,
        /// Seconds per measurement window.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Measurement windows.
        #[arg(short = 'n', long, default_value_t = 3)]
        runs: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// How long building the default appliance image takes (no QEMU).
    Image {
        /// Builds.
        #[arg(short = 'n', long, default_value_t = 5)]
        runs: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// TCP throughput both ways over the forwarded API port, and API requests/s.
    ///
    /// Boots a runtime with `bench` on its command line, unless --addr names one that
    /// is already running (it must have been booted with `--append bench`).
    Net {
        #[command(flatten)]
        machine: MachineArgs,
        /// Benchmark a runtime already running at this address instead of booting one.
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// MiB per transfer, each way.
        #[arg(long, default_value_t = 256)]
        mib: u64,
        /// Transfers each way.
        #[arg(short = 'n', long, default_value_t = 3)]
        runs: usize,
        /// Seconds of each requests/s measurement (0 skips them).
        #[arg(long, default_value_t = 3.0)]
        health_secs: f64,
        /// Connections of the concurrent requests/s measurement.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ProcessExit {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("plinth: error: {e:#}");
            ProcessExit::from(2)
        }
    }
}

fn prepare(m: &MachineArgs) -> Result<(Profile, LaunchOptions)> {
    let profile = Profile::load(&m.profile)?;
    plinth::setup::ensure_qemu(&profile)?;
    let kernel = match &m.kernel {
        Some(k) => k.clone(),
        None => {
            plinth::setup::ensure_target()?;
            plinth::build::build_kernel(true)?
        }
    };
    let opts = LaunchOptions {
        accel: m.accel,
        memory_mib: m.memory.unwrap_or(128),
        kernel,
        append: m.append.clone(),
        disk: None,
        nic: None,
        tap: None,
        netns: None,
    };
    Ok((profile, opts))
}

fn run(cli: Cli) -> Result<ProcessExit> {
    match cli.command {
        Cmd::Run(args) => run_machine(args),
        Cmd::Key {
            which: KeyCmd::Gen { name },
        } => {
            let (secret, public) = plinth::agent::key_gen(&name)?;
            println!(
                "wrote {} (secret; keep it private) and {}",
                secret.display(),
                public.display()
            );
            Ok(ProcessExit::SUCCESS)
        }
        Cmd::Agent { which } => {
            match which {
                AgentCmd::Build => {
                    let dir = plinth::repo_root().join(plinth::image::DEFAULT_AGENTS);
                    for path in plinth::build::install_agents(&dir, false)? {
                        println!("installed {}", path.display());
                    }
                }
                AgentCmd::Pack { dir, out, key } => {
                    let p = plinth::agent::pack(&dir, &out, &key)?;
                    println!(
                        "wrote {}: {} files, {} bytes, signed by {}",
                        out.display(),
                        p.files,
                        p.bytes,
                        p.signer
                    );
                }
                AgentCmd::Inspect { file } => println!("{}", plinth::agent::inspect(&file)?),
                AgentCmd::Verify { file, pubkeys } => {
                    let trusted = pubkeys
                        .iter()
                        .map(|p| plinth::agent::read_public(p))
                        .collect::<Result<Vec<_>, _>>()?;
                    let signer = plinth::agent::verify(&file, &trusted)?;
                    println!("{}: valid, signed by {signer}", file.display());
                }
            }
            Ok(ProcessExit::SUCCESS)
        }
        Cmd::Image {
            which:
                ImageCmd::Build {
                    spec,
                    out,
                    format,
                    key,
                },
        } => {
            let started = std::time::Instant::now();
            let b = plinth::image::build(&spec, &out, format, key.as_deref(), true)?;
            println!(
                "wrote {}: appliance {}, {} MiB disk, catalog {} bytes ({} agents, {} policy files), {} GPT partitions, in {:.2} s",
                out.display(),
                b.appliance,
                b.disk_bytes >> 20,
                b.catalog_bytes,
                b.agents,
                b.policies,
                b.partitions.len(),
                started.elapsed().as_secs_f64()
            );
            Ok(ProcessExit::SUCCESS)
        }
        Cmd::Image {
            which: ImageCmd::Inspect { image },
        } => {
            let i = plinth::image::inspect(&image)?;
            print!("{}", i.report);
            Ok(if i.valid {
                ProcessExit::SUCCESS
            } else {
                ProcessExit::from(1)
            })
        }
        Cmd::Policy {
            which: PolicyCmd::Check { files },
        } => match plinth::policy::check(&files) {
            Ok(s) => {
                let p = &s.policies;
                println!(
                    "ok: {} files{}: {} deployments, {} limits, {} restart rules, {} tenants",
                    s.files,
                    s.appliance
                        .map(|a| format!(" (appliance {a})"))
                        .unwrap_or_default(),
                    p.deployments.len(),
                    p.limits.len(),
                    p.restart_rules.len(),
                    p.tenants.len()
                );
                Ok(ProcessExit::SUCCESS)
            }
            Err(plinth::policy::PolicyError::Problems(lines)) => {
                for l in &lines {
                    println!("{l}");
                }
                eprintln!("plinth: {} problems", lines.len());
                Ok(ProcessExit::from(1))
            }
            Err(e) => Err(e.into()),
        },
        // The message alone: a connection error's cause is in it already.
        Cmd::Part(args) => {
            match plinth::part::execute(&args).map_err(|e| anyhow::anyhow!("{e}"))? {
                plinth::part::Reply::Done(text) => {
                    println!("{text}");
                    Ok(ProcessExit::SUCCESS)
                }
                plinth::part::Reply::Refused(r) => {
                    eprintln!("plinth: error: {r}");
                    Ok(ProcessExit::from(1))
                }
            }
        }
        Cmd::Status(args) => {
            let v = plinth::api::get_json(
                args.addr,
                "/api/v1/status",
                Duration::from_secs(args.timeout.max(1)),
            )?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("{}", plinth::api::format_status(&v));
            }
            Ok(ProcessExit::SUCCESS)
        }
        Cmd::Bench {
            which:
                BenchCmd::Boot {
                    machine,
                    runs,
                    json,
                },
        } => {
            if runs == 0 {
                bail!("--runs must be at least 1");
            }
            let (profile, opts) = prepare(&machine)?;
            let report = plinth::bench::boot(&profile, &opts, runs, |run, s| {
                if !json {
                    eprintln!(
                        "run {run:>3}: first line {:7.2} ms, ready {:7.2} ms, kernel init {:6.3} ms",
                        s.launch_to_first_line_ms, s.launch_to_ready_ms, s.kernel_init_ms
                    );
                }
            })?;
            print_report(&report, json)?;
            Ok(ProcessExit::SUCCESS)
        }
        Cmd::Bench {
            which:
                BenchCmd::Blk {
                    machine,
                    region_mib,
                    request_kib,
                    depth,
                    random_reads,
                    runs,
                    json,
                },
        } => {
            if runs == 0 || depth == 0 || region_mib == 0 || request_kib == 0 {
                bail!("--runs, --depth, --region-mib and --request-kib must be at least 1");
            }
            if request_kib > region_mib * 1024 {
                bail!("--request-kib must not exceed the region");
            }
            let (profile, opts) = prepare(&machine)?;
            if profile.disk_args.is_empty() {
                bail!("profile {} cannot attach a disk", profile.name);
            }
            let o = plinth::bench::BlkOptions {
                region_mib,
                request_kib,
                depth,
                random_reads: random_reads.max(1),
                runs,
            };
            let report = plinth::bench::blk(&profile, &opts, &o, |run, s| {
                if !json {
                    eprintln!(
                        "run {run:>2}: write {:8.1} MiB/s, flush {:7.1} ms, read {:8.1} MiB/s, random read {:7.0} IOPS ({:.1} us each)",
                        s.seq_write_mib_s,
                        s.flush_ms,
                        s.seq_read_mib_s,
                        s.rand_read_iops,
                        s.rand_read_latency_us
                    );
                }
            })?;
            print_report(&report, json)?;
            Ok(ProcessExit::SUCCESS)
        }
        Cmd::Bench {
            which:
                BenchCmd::Syscall {
                    machine,
                    runs,
                    json,
                },
        } => {
            if runs == 0 {
                bail!("--runs must be at least 1");
            }
            let (profile, opts) = prepare(&machine)?;
            let report = plinth::bench_part::syscall(&profile, &opts, runs, |run, n, s| {
                if !json {
                    eprintln!("run {run:>2}: null system call {n:7.1} ns, switch {s:9.1} ns");
                }
            })?;
            print_report(&report, json)?;
            Ok(ProcessExit::SUCCESS)
        }
        Cmd::Bench {
            which: BenchCmd::Density { mut machine, json },
        } => {
            machine.memory = Some(machine.memory.unwrap_or(512));
            let (profile, opts) = prepare(&machine)?;
            let report = plinth::bench_part::density(&profile, &opts, |n| {
                if !json {
                    eprintln!("{n} partitions running");
                }
            })?;
            print_report(&report, json)?;
            Ok(ProcessExit::SUCCESS)
        }
        Cmd::Bench {
            which: BenchCmd::Image { runs, json },
        } => {
            if runs == 0 {
                bail!("--runs must be at least 1");
            }
            print_report(&plinth::image::bench_build(runs)?, json)?;
            Ok(ProcessExit::SUCCESS)
        }
        Cmd::Bench {
            which:
                BenchCmd::Idle {
                    machine,
                    seconds,
                    runs,
                    json,
                },
        } => {
            if runs == 0 || !(seconds > 0.0 && seconds <= 3600.0) {
                bail!("--runs must be at least 1 and --seconds within (0, 3600]");
            }
            let (profile, opts) = prepare(&machine)?;
            let report = plinth::bench::idle(&profile, &opts, seconds, runs, |i, pct| {
                if !json {
                    eprintln!("window {i}: {pct:.2}% of one core");
                }
            })?;
            print_report(&report, json)?;
            Ok(ProcessExit::SUCCESS)
        }
        Cmd::Bench {
            which:
                BenchCmd::Net {
                    machine,
                    addr,
                    mib,
                    runs,
                    health_secs,
                    connections,
                    json,
                },
        } => bench_net(machine, addr, mib, runs, health_secs, connections, json),
    }
}

fn bench_net(
    machine: MachineArgs,
    addr: Option<std::net::SocketAddr>,
    mib: u64,
    runs: usize,
    health_secs: f64,
    connections: usize,
    json: bool,
) -> Result<ProcessExit> {
    let mut o = plinth::bench_net::NetOptions {
        bytes: mib.checked_mul(1 << 20).context("--mib is too large")?,
        runs,
        health_secs,
        connections,
        ..Default::default()
    };
    let progress = |line: &str| {
        if !json {
            eprintln!("{line}");
        }
    };
    let Some(addr) = addr else {
        let (profile, mut opts) = prepare(&machine)?;
        if profile.nic_args.is_empty() {
            bail!("profile {} cannot attach a NIC", profile.name);
        }
        opts.append = format!("{} bench", opts.append).trim().to_string();
        let host_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        opts.nic = Some(plinth::profile::Nic {
            mac: plinth::profile::Nic::DEFAULT_MAC,
            api_host_port: host_port,
            api_port: plinth_cmdline::parse(&opts.append).options.api_port,
        });
        let qemu_args = profile.args(&opts)?;
        let mut m = Machine::launch(&profile, &opts, false).context("starting QEMU")?;
        o.addr = std::net::SocketAddr::from(([127, 0, 0, 1], host_port));
        let result = m
            .wait_ready(Duration::from_secs(60))
            .map_err(anyhow::Error::from)
            .and_then(|_| {
                plinth::api::wait_healthy(o.addr, Duration::from_secs(60)).map_err(Into::into)
            })
            .and_then(|()| plinth::bench_net::run(&o, progress).map_err(Into::into));
        let _ = m.send_line("shutdown");
        let outcome = m.wait_exit(Duration::from_secs(20));
        let report = result.map_err(|e| anyhow::anyhow!("{e:#}\n{}", m.transcript()))?;
        if outcome != Outcome::Runtime(ExitCode::Success) {
            bail!("the runtime's shutdown ended in {outcome}");
        }
        print_net(&report, Some(&qemu_args), json)?;
        return Ok(ProcessExit::SUCCESS);
    };
    o.addr = addr;
    let report = plinth::bench_net::run(&o, progress)?;
    print_net(&report, None, json)?;
    Ok(ProcessExit::SUCCESS)
}

/// Prints a benchmark report as JSON or as its text form.
fn print_report(report: &(impl serde::Serialize + std::fmt::Display), json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

fn print_net(
    report: &plinth::bench_net::NetReport,
    qemu_args: Option<&[String]>,
    json: bool,
) -> Result<()> {
    if json {
        let mut v = serde_json::to_value(report)?;
        if let (Some(args), Some(obj)) = (qemu_args, v.as_object_mut()) {
            obj.insert("qemu_args".into(), serde_json::json!(args));
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{report}");
        if let Some(args) = qemu_args {
            println!("qemu: {}", args.join(" "));
        }
    }
    Ok(())
}

fn run_machine(args: RunArgs) -> Result<ProcessExit> {
    let (profile, mut opts) = prepare(&args.machine)?;
    // The default appliance, built for this run; deleted when the run ends.
    let scratch = match (&args.disk, args.no_disk) {
        (None, false) if !profile.disk_args.is_empty() => {
            let image = plinth::disk::ScratchImage::create_sized(0)?;
            let memory = plinth::image::build_default(image.path())?;
            if args.machine.memory.is_none() {
                opts.memory_mib = u32::try_from(memory).unwrap_or(u32::MAX);
            }
            eprintln!(
                "plinth: booting the default appliance ({})",
                plinth::image::DEFAULT_SPEC
            );
            Some(image)
        }
        _ => None,
    };
    let image = match &args.disk {
        Some(path) => {
            plinth::disk::check_image(path)?;
            Some(path.clone())
        }
        None => scratch.as_ref().map(|s| s.path().to_path_buf()),
    };
    opts.disk = image.map(|image| plinth::profile::Disk {
        image,
        serial: "plinth-disk0".into(),
    });
    if !args.no_nic && !profile.nic_args.is_empty() {
        opts.nic = Some(plinth::profile::Nic {
            mac: plinth::profile::Nic::DEFAULT_MAC,
            api_host_port: args.api_port,
            // The same parser the runtime uses reads its `api_port=` from the extra arguments.
            api_port: plinth_cmdline::parse(&opts.append).options.api_port,
        });
    }
    let limit = args
        .timeout
        .map(Duration::from_secs)
        .unwrap_or(Duration::MAX);
    let mut m = Machine::launch(&profile, &opts, true).context("starting QEMU")?;
    if let Some(n) = &opts.nic {
        eprintln!(
            "plinth: management API on http://127.0.0.1:{}/api/v1/status (`plinth status --addr 127.0.0.1:{}`)",
            n.api_host_port, n.api_host_port
        );
    }

    if args.exit_on_ready {
        m.wait_ready(limit.min(Duration::from_secs(120)))
            .map_err(|e| anyhow::anyhow!("{e}\n{}", m.transcript()))?;
        m.send_line("shutdown")?;
        return Ok(match m.wait_exit(Duration::from_secs(20)) {
            Outcome::Runtime(ExitCode::Success) => ProcessExit::SUCCESS,
            other => {
                eprintln!("plinth: shutdown ended in {other}");
                ProcessExit::from(1)
            }
        });
    }

    // Forward this terminal's lines to the console until QEMU ends.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now().checked_add(limit);
    let mut input_open = true;
    let outcome = loop {
        if input_open {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    let _ = m.send_line(&line);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                // The terminal's input ended: keep the runtime running until it stops or
                // the timeout, without spinning on the closed channel.
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => input_open = false,
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(o) = m.try_outcome() {
            break o;
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            m.kill();
            eprintln!("plinth: timeout after {} s; QEMU stopped", limit.as_secs());
            return Ok(ProcessExit::from(124));
        }
    };
    Ok(match outcome {
        Outcome::Runtime(ExitCode::Success) => ProcessExit::SUCCESS,
        other => {
            eprintln!("plinth: runtime stopped: {other}");
            ProcessExit::from(1)
        }
    })
}
