//! `plinth status`: a running runtime's `GET /api/v1/status`.
//!
//! Owns the command's arguments and choosing between the runtime's JSON and the
//! summary. The HTTP client and the summary's wording are `plinth::api`'s, the
//! document's shape `plinth_control::views::Status`; this module must not pick fields
//! out of the answer itself.

use std::process::ExitCode as ProcessExit;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use plinth_control::views::Status;

#[derive(Args)]
pub struct StatusArgs {
    /// Where the API is reachable (what `plinth run --api-port` forwards).
    #[arg(long, default_value_t = std::net::SocketAddr::from(([127, 0, 0, 1], plinth::api::DEFAULT_HOST_PORT)))]
    pub addr: std::net::SocketAddr,
    /// Print the runtime's JSON as it is.
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

pub fn run(args: &StatusArgs) -> Result<ProcessExit> {
    let (addr, path) = (args.addr, "/api/v1/status");
    let timeout = Duration::from_secs(args.timeout.max(1));
    if args.json {
        // As the runtime sent it (re-indented), whether or not this tool knows its shape.
        let v = plinth::api::get_json(addr, path, timeout)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let status: Status = plinth::api::get_view(addr, path, timeout)?;
        println!("{}", plinth::api::format_status(&status));
    }
    Ok(ProcessExit::SUCCESS)
}
