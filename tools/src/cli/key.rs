//! `plinth key`: signing keys.
//!
//! Owns the subcommand's arguments and its one line of output. Key files (format,
//! modes) are `plinth::agent`'s business; this module must not write files itself.

use std::process::ExitCode as ProcessExit;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Create an ed25519 key pair: NAME.key (secret, mode 0600) and NAME.pub.
    Gen {
        /// Path and stem of the two files.
        name: std::path::PathBuf,
    },
}

pub fn run(which: KeyCmd) -> Result<ProcessExit> {
    match which {
        KeyCmd::Gen { name } => {
            let (secret, public) = plinth::agent::key_gen(&name)?;
            println!(
                "wrote {} (secret; keep it private) and {}",
                secret.display(),
                public.display()
            );
        }
    }
    Ok(ProcessExit::SUCCESS)
}
