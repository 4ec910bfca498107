//! The `plinth` command groups, one module each: its clap arguments and its handler,
//! which calls into the `plinth` library and turns the result into output and an exit
//! status.
//!
//! | module     | commands |
//! |------------|----------|
//! | [`run`]    | `plinth run` |
//! | [`status`] | `plinth status` |
//! | [`part`]   | `plinth part …` (arguments and answers in `plinth::part`) |
//! | [`net`]    | `plinth net show` (the tables in `plinth::net`) |
//! | [`bench`]  | `plinth bench boot/blk/idle/net/image/syscall/density` |
//! | [`agent`]  | `plinth agent build/pack/inspect/verify` |
//! | [`key`]    | `plinth key gen` |
//! | [`image`]  | `plinth image build/inspect` |
//! | [`policy`] | `plinth policy check` |
//!
//! This module owns what several groups share: the machine options ([`MachineArgs`]),
//! turning them into a profile and launch options ([`prepare`]), and printing a report
//! ([`print_report`]). A group module must not reach into another's arguments, and none
//! of them does the work itself (building, booting, talking to the API): the library
//! does, so the test harness runs the same code.

pub mod agent;
pub mod bench;
pub mod events;
pub mod image;
pub mod key;
pub mod net;
pub mod part;
pub mod policy;
pub mod run;
pub mod status;
pub mod top;

use anyhow::Result;
use clap::Args;
use plinth::profile::{Accel, LaunchOptions, Profile};

/// The options of every command that boots a machine.
#[derive(Args, Clone)]
pub struct MachineArgs {
    /// Machine profile: a name from qemu/ (q35, microvm) or a path to a profile .toml.
    #[arg(long, default_value = "q35")]
    pub profile: String,
    /// Guest memory, MiB [default: 128; `run` of an appliance: the spec's machine memory].
    #[arg(long, short = 'm')]
    pub memory: Option<u32>,
    /// Accelerator (tcg is the reference; kvm needs a real /dev/kvm).
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    pub accel: Accel,
    /// Extra kernel command-line arguments, e.g. `--append "log=debug selftest=heap"`.
    #[arg(long, default_value = "")]
    pub append: String,
    /// Boot this kernel ELF instead of building one.
    #[arg(long)]
    pub kernel: Option<std::path::PathBuf>,
}

/// The profile and launch options `m` asks for: QEMU checked, the kernel built unless
/// `--kernel` names one; no disk or NIC yet.
pub fn prepare(m: &MachineArgs) -> Result<(Profile, LaunchOptions)> {
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
        netdev: None,
        netns: None,
        initrd: None,
    };
    Ok((profile, opts))
}

/// Prints a report as JSON or as its text form.
pub fn print_report(
    report: &(impl serde::Serialize + std::fmt::Display),
    json: bool,
) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}
