//! `plinth run`: build the kernel and boot it with its serial console on this terminal.
//!
//! Owns the command's arguments, attaching the default appliance (built afresh for the
//! run) or the given disk and the NIC, forwarding the terminal's lines to the console,
//! and the exit status (0 after a clean shutdown, 1 when the runtime stopped otherwise,
//! 124 on `--timeout`). Spawning and reaping QEMU is `plinth::machine`'s, the QEMU
//! command line a profile's; this module must not write QEMU arguments itself.

use std::io::BufRead;
use std::process::ExitCode as ProcessExit;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use plinth::machine::{Machine, Outcome};
use plinth_exit::ExitCode;

use super::{MachineArgs, prepare};

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub machine: MachineArgs,
    /// Stop QEMU after this many seconds.
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Boot, wait for `plinth: ready`, shut down cleanly and exit 0.
    #[arg(long)]
    pub exit_on_ready: bool,
    /// Raw disk image to attach as the runtime's virtio disk (default: the default
    /// appliance, tools/appliance/appliance.toml, built afresh for this run).
    #[arg(long, conflicts_with = "no_disk")]
    pub disk: Option<std::path::PathBuf>,
    /// Attach no disk.
    #[arg(long)]
    pub no_disk: bool,
    /// Host port on 127.0.0.1 forwarded to the runtime's management API.
    #[arg(long, default_value_t = plinth::api::DEFAULT_HOST_PORT, conflicts_with = "no_nic")]
    pub api_port: u16,
    /// Attach no NIC (no management API).
    #[arg(long)]
    pub no_nic: bool,
}

pub fn run(args: RunArgs) -> Result<ProcessExit> {
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
