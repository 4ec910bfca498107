//! `plinth agent`: agent containers (build the examples, pack, inspect, verify).
//!
//! Owns the subcommands' arguments and their output lines. Containers themselves
//! (packing, signing, checking) are `plinth::agent`'s and `plinth-container`'s, and
//! building the examples is `plinth::build`'s; this module must not read or write
//! container bytes.

use std::process::ExitCode as ProcessExit;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum AgentCmd {
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

pub fn run(which: AgentCmd) -> Result<ProcessExit> {
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
