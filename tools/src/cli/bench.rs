//! `plinth bench`: the benchmarks (boot, blk, idle, net, image, syscall, density, bridge,
//! governor).
//!
//! Owns their arguments and the checks on them, the progress lines on stderr (none
//! with `--json`), booting the machine `bench net` talks to, and printing each report
//! as text or JSON. The measurements are in `plinth::bench`, `plinth::bench_net`,
//! `plinth::bench_part`, `plinth::bench_bridge`, `plinth::bench_governor` and
//! `plinth::image`; this module must not
//! time anything or parse what the runtime prints.

use std::process::ExitCode as ProcessExit;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use plinth::machine::{Machine, Outcome};
use plinth_exit::ExitCode;

use super::{MachineArgs, prepare, print_report};

#[derive(Subcommand)]
pub enum BenchCmd {
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
    /// The governors: each cap's accuracy over 10 s (IOPS, disk bytes/s, CPU), how
    /// soon a live policy change is in effect, and what governing adds to a system call
    /// (three boots per run).
    Governor {
        #[command(flatten)]
        machine: MachineArgs,
        /// Number of runs.
        #[arg(short = 'n', long, default_value_t = 3)]
        runs: usize,
        /// Print the report as JSON (each cap's `error_pct`).
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
    /// Disk throughput and IOPS, measured inside the runtime on a fresh scratch image,
    /// and the write until flushed against a Linux guest's on the same QEMU command line.
    ///
    /// Each run boots the runtime, then (unless --no-linux) the runtime again writing
    /// 1 MiB requests one at a time, and Debian's cloud kernel with a busybox initramfs
    /// writing the same region in 1 MiB O_DIRECT writes at queue depth 1, then
    /// fdatasync. The guest is fetched once into target/linux-guest/.
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
        /// Skip the Linux baseline (and the runtime's queue-depth-1 run beside it).
        #[arg(long)]
        no_linux: bool,
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
    /// The switch: frames/s through the bridge inside the runtime and on the host, and
    /// TCP over VLAN 100 between a Linux peer and a partition, beside a Linux guest.
    ///
    /// Each run boots the runtime bare and types `bench bridge FRAMES` (a partition's
    /// access port to the uplink trunk, tag pushed, timed by the runtime), and times the
    /// same work with plinth-bridge in this process. Then (unless --no-tcp) each run
    /// boots, in a VLAN lab, an appliance whose partition runs the echo agent on VLAN
    /// 100, and (unless --no-linux) a Linux guest with eth0.100 in its place on the same
    /// QEMU command line; a Linux 802.1Q peer sends to each and reads from each. Needs
    /// root (network namespace, taps); the Linux guest is fetched once into
    /// target/linux-guest/.
    Bridge {
        #[command(flatten)]
        machine: MachineArgs,
        /// Frames of each size per in-guest run.
        #[arg(long, default_value_t = 200_000)]
        frames: u64,
        /// Frames of each size per host batch (5 batches per run).
        #[arg(long, default_value_t = 1_000_000)]
        host_frames: u64,
        /// MiB per TCP transfer, each way.
        #[arg(long, default_value_t = 32)]
        tcp_mib: u64,
        /// Runs.
        #[arg(short = 'n', long, default_value_t = 3)]
        runs: usize,
        /// Skip the TCP part (no lab, no root needed).
        #[arg(long)]
        no_tcp: bool,
        /// Skip the Linux guest beside the partition in the TCP part.
        #[arg(long)]
        no_linux: bool,
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

pub fn run(which: BenchCmd) -> Result<ProcessExit> {
    match which {
        BenchCmd::Boot {
            machine,
            runs,
            json,
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
        }
        BenchCmd::Blk {
            machine,
            region_mib,
            request_kib,
            depth,
            random_reads,
            runs,
            no_linux,
            json,
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
                linux: !no_linux,
            };
            let report = plinth::bench::blk(&profile, &opts, &o, |run, r| {
                if json {
                    return;
                }
                let s = &r.plinth;
                eprintln!(
                    "run {run:>2}: write {:8.1} MiB/s, flush {:7.1} ms, read {:8.1} MiB/s, random read {:7.0} IOPS ({:.1} us each)",
                    s.seq_write_mib_s,
                    s.flush_ms,
                    s.seq_read_mib_s,
                    s.rand_read_iops,
                    s.rand_read_latency_us
                );
                if let (Some(q), Some(l)) = (&r.plinth_qd1, &r.linux) {
                    eprintln!(
                        "        write until flushed: plinth {:8.1} MiB/s at depth {depth}, {:8.1} at depth 1; Linux {:8.1} (write {:.1} MiB/s, flush {:.1} ms)",
                        s.seq_write_flushed_mib_s,
                        q.seq_write_flushed_mib_s,
                        l.seq_write_flushed_mib_s,
                        l.seq_write_mib_s,
                        l.flush_ms
                    );
                }
            })?;
            print_report(&report, json)?;
        }
        BenchCmd::Syscall {
            machine,
            runs,
            json,
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
        }
        BenchCmd::Governor {
            machine,
            runs,
            json,
        } => {
            if runs == 0 {
                bail!("--runs must be at least 1");
            }
            let (profile, opts) = prepare(&machine)?;
            let report = plinth::bench_governor::governor(&profile, &opts, runs, |run, what| {
                if !json {
                    eprintln!("run {run:>2}: {what}");
                }
            })?;
            print_report(&report, json)?;
        }
        BenchCmd::Density { mut machine, json } => {
            machine.memory = Some(machine.memory.unwrap_or(512));
            let (profile, opts) = prepare(&machine)?;
            let report = plinth::bench_part::density(&profile, &opts, |n| {
                if !json {
                    eprintln!("{n} partitions running");
                }
            })?;
            print_report(&report, json)?;
        }
        BenchCmd::Image { runs, json } => {
            if runs == 0 {
                bail!("--runs must be at least 1");
            }
            print_report(&plinth::image::bench_build(runs)?, json)?;
        }
        BenchCmd::Idle {
            machine,
            seconds,
            runs,
            json,
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
        }
        BenchCmd::Net {
            machine,
            addr,
            mib,
            runs,
            health_secs,
            connections,
            json,
        } => return net(machine, addr, mib, runs, health_secs, connections, json),
        BenchCmd::Bridge {
            machine,
            frames,
            host_frames,
            tcp_mib,
            runs,
            no_tcp,
            no_linux,
            json,
        } => {
            if runs == 0 || tcp_mib == 0 || host_frames == 0 {
                bail!("--runs, --tcp-mib and --host-frames must be at least 1");
            }
            if !(1..=10_000_000).contains(&frames) {
                bail!("--frames must be within 1..=10000000 (the runtime's limit)");
            }
            let (profile, opts) = prepare(&machine)?;
            if !no_tcp && profile.tap_nic_args.is_empty() {
                bail!(
                    "profile {} cannot attach a NIC to a tap device (the TCP part needs one): use --no-tcp",
                    profile.name
                );
            }
            let o = plinth::bench_bridge::BridgeOptions {
                runs,
                frames,
                host_frames,
                tcp_bytes: tcp_mib
                    .checked_mul(1 << 20)
                    .context("--tcp-mib is too large")?,
                tcp: !no_tcp,
                linux: !no_linux,
                profile: machine.profile.clone(),
                ..Default::default()
            };
            let report = plinth::bench_bridge::run(&profile, &opts, &o, |line| {
                if !json {
                    eprintln!("{line}");
                }
            })?;
            print_report(&report, json)?;
            if !report.tcp_errors.is_empty() {
                eprintln!(
                    "bench bridge: the TCP part failed ({} error(s), in the report)",
                    report.tcp_errors.len()
                );
                return Ok(ProcessExit::FAILURE);
            }
        }
    }
    Ok(ProcessExit::SUCCESS)
}

/// `plinth bench net`: against `addr`, or a runtime booted for it with `bench`.
fn net(
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

/// The net report, with the QEMU command line it ran under when this run booted it.
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
