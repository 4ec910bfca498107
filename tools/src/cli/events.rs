//! `plinth events`: the runtime's events, once or followed (`--follow`).
//!
//! Owns the command's arguments. Reading and the lines are `plinth::events`'s; the
//! document's shape `plinth_control::views::EventList`.

use std::net::SocketAddr;
use std::process::ExitCode as ProcessExit;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct EventsArgs {
    /// Where the API is reachable (what `plinth run --api-port` forwards).
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], plinth::api::DEFAULT_HOST_PORT)))]
    pub addr: SocketAddr,
    /// Only the events after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub since: u64,
    /// Keep printing new events as they come, until interrupted.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// With --follow: milliseconds between looks.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub every: u64,
    /// Print the runtime's JSON page as it is (not with --follow).
    #[arg(long, conflicts_with = "follow")]
    pub json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

pub fn run(args: &EventsArgs) -> Result<ProcessExit> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    if args.json {
        let path = format!("{}?since={}", plinth::events::PATH, args.since);
        let v = plinth::api::get_json(args.addr, &path, timeout)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ProcessExit::SUCCESS);
    }
    plinth::events::print(
        args.addr,
        args.since,
        args.follow,
        Duration::from_millis(args.every.max(10)),
        timeout,
        |line| println!("{line}"),
    )?;
    Ok(ProcessExit::SUCCESS)
}
