//! `plinth policy`: checking policy files and appliance specs as one set, and changing
//! a running runtime's policy live (`apply`).
//!
//! Owns the subcommand's arguments, the summary line, the problem lines and the exit
//! status (1 when there are problems). Reading and checking are `plinth::policy`'s and
//! `plinth-policy`'s; this module must not judge a file itself.

use std::process::ExitCode as ProcessExit;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Check policy files and appliance specs as one set; print `file:line:col: message`
    /// for every problem. A spec brings in the policies it lists and its agents.
    Check {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Change a protection or troubleshooting policy of a running runtime, live: the
    /// runtime checks its set with FILE in place of the file of the same name (or added)
    /// and applies it without restarting agents; problems are printed as by `check`.
    Apply {
        file: std::path::PathBuf,
        /// The file's name in the runtime's set (default: FILE's own name).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// Where the API is reachable (what `plinth run --api-port` forwards).
        #[arg(long, default_value_t = std::net::SocketAddr::from(([127, 0, 0, 1], plinth::api::DEFAULT_HOST_PORT)))]
        addr: std::net::SocketAddr,
        /// Seconds to wait for an answer.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
}

pub fn run(which: PolicyCmd) -> Result<ProcessExit> {
    let files = match which {
        PolicyCmd::Check { files } => files,
        PolicyCmd::Apply {
            file,
            name,
            addr,
            timeout,
        } => return apply(&file, name, addr, timeout),
    };
    match plinth::policy::check(&files) {
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
    }
}

fn apply(
    file: &std::path::Path,
    name: Option<String>,
    addr: std::net::SocketAddr,
    timeout: u64,
) -> Result<ProcessExit> {
    let Some(name) = name.or_else(|| plinth::policy::runtime_name(file)) else {
        anyhow::bail!(
            "{}: give the file's name in the runtime's set with --name",
            file.display()
        );
    };
    let timeout = std::time::Duration::from_secs(timeout.max(1));
    match plinth::policy::apply(addr, file, &name, timeout) {
        Ok(a) => {
            println!("applied {} live in {} us", a.name, a.applied_us);
            Ok(ProcessExit::SUCCESS)
        }
        Err(plinth::policy::PolicyError::Problems(lines)) => {
            for l in &lines {
                println!("{l}");
            }
            eprintln!(
                "plinth: {} problems; the runtime changed nothing",
                lines.len()
            );
            Ok(ProcessExit::from(1))
        }
        Err(e @ plinth::policy::PolicyError::Refused { .. }) => {
            eprintln!("plinth: {e}");
            Ok(ProcessExit::from(1))
        }
        Err(e) => Err(e.into()),
    }
}
