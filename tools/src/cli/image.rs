//! `plinth image`: appliance images (build from a spec, inspect).
//!
//! Owns the subcommands' arguments, the summary line of a build and the exit status of
//! an inspection. Gathering a spec's inputs, the GPT disk and the catalog are
//! `plinth::image`'s; this module must not touch image bytes.

use std::process::ExitCode as ProcessExit;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ImageCmd {
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

pub fn run(which: ImageCmd) -> Result<ProcessExit> {
    match which {
        ImageCmd::Build {
            spec,
            out,
            format,
            key,
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
        ImageCmd::Inspect { image } => {
            let i = plinth::image::inspect(&image)?;
            print!("{}", i.report);
            Ok(if i.valid {
                ProcessExit::SUCCESS
            } else {
                ProcessExit::from(1)
            })
        }
    }
}
