//! `plinth`: build, boot and benchmark the plinth runtime.
//!
//! This file owns the command line's top level only: the [`Cli`] definition (the
//! command groups and their help) and the dispatch to one module per group under
//! `cli/` (see `cli/mod.rs`), which holds that group's arguments and handler. The work
//! itself is in the `plinth` library; nothing here talks to QEMU, the API or files.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode as ProcessExit;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    Run(cli::run::RunArgs),
    /// Query a running runtime's management API (`GET /api/v1/status`).
    Status(cli::status::StatusArgs),
    /// Partitions of a running runtime: list, show, create, start, stop, restart,
    /// terminate, resize, attach-disk, detach-disk, attach-nic, detach-nic.
    ///
    /// Exit status: 0 on success, 1 when the runtime refuses the request (its message is
    /// printed), 2 on bad arguments or when the API cannot be reached.
    Part(plinth::part::PartArgs),
    /// The event log of a running runtime (`GET /api/v1/events`): starts, exits,
    /// faults, restarts, quarantines, governors' actions; `--follow` keeps printing.
    Events(cli::events::EventsArgs),
    /// A live table of what each partition and agent uses (CPU, memory, system calls,
    /// disk, network), refreshed like `top`, from the runtime's profiler.
    Top(cli::top::TopArgs),
    /// The network bridge of a running runtime (`GET /api/v1/network`): VLANs, ports,
    /// MAC table, VLAN pools.
    Net(cli::net::NetArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        which: cli::bench::BenchCmd,
    },
    /// Agent containers: pack a directory into a signed `.agent` file, inspect, verify.
    Agent {
        #[command(subcommand)]
        which: cli::agent::AgentCmd,
    },
    /// Signing keys.
    Key {
        #[command(subcommand)]
        which: cli::key::KeyCmd,
    },
    /// Appliance images: a GPT disk with the catalog (spec, keys, policies, agents).
    Image {
        #[command(subcommand)]
        which: cli::image::ImageCmd,
    },
    /// Policies and appliance specs.
    Policy {
        #[command(subcommand)]
        which: cli::policy::PolicyCmd,
    },
}

fn main() -> ProcessExit {
    match dispatch(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("plinth: error: {e:#}");
            ProcessExit::from(2)
        }
    }
}

/// Runs one command; an `Err` is a tool error (exit status 2).
fn dispatch(cli: Cli) -> Result<ProcessExit> {
    match cli.command {
        Cmd::Run(args) => cli::run::run(args),
        Cmd::Status(args) => cli::status::run(&args),
        Cmd::Part(args) => cli::part::run(&args),
        Cmd::Net(args) => cli::net::run(&args),
        Cmd::Events(args) => cli::events::run(&args),
        Cmd::Top(args) => cli::top::run(&args),
        Cmd::Bench { which } => cli::bench::run(which),
        Cmd::Agent { which } => cli::agent::run(which),
        Cmd::Key { which } => cli::key::run(which),
        Cmd::Image { which } => cli::image::run(which),
        Cmd::Policy { which } => cli::policy::run(which),
    }
}
