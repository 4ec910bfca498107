//! `plinth policy`: checking policy files and appliance specs as one set.
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
}

pub fn run(which: PolicyCmd) -> Result<ProcessExit> {
    let PolicyCmd::Check { files } = which;
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
