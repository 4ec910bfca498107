//! `plinth top`: a live, refreshing table of what partitions and agents use.
//!
//! Owns the command's arguments and the refresh loop; the table is `plinth::top`'s.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode as ProcessExit;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct TopArgs {
    /// Where the API is reachable (what `plinth run --api-port` forwards).
    #[arg(long, default_value_t = SocketAddr::from(([127, 0, 0, 1], plinth::api::DEFAULT_HOST_PORT)))]
    pub addr: SocketAddr,
    /// The window to average over, seconds: 1, 10 or 60.
    #[arg(long, short = 'w', default_value_t = 1, value_parser = parse_window)]
    pub window: u32,
    /// Print this many tables and stop (default: until interrupted; 1 with --json).
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Milliseconds between tables.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    pub every: u64,
    /// Print the runtime's JSON as it is (once).
    #[arg(long)]
    pub json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
}

/// 1, 10 or 60: the windows the profiler keeps.
fn parse_window(text: &str) -> Result<u32, String> {
    match text {
        "1" | "10" | "60" => text.parse().map_err(|_| String::new()),
        _ => Err(format!(
            "{text:?}: the profiler keeps 1, 10 and 60 s windows"
        )),
    }
}

pub fn run(args: &TopArgs) -> Result<ProcessExit> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    if args.json {
        let path = format!("{}?window={}", plinth::top::PATH, args.window);
        let v = plinth::api::get_json(args.addr, &path, timeout)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ProcessExit::SUCCESS);
    }
    // Redraw in place on a terminal; one table after another otherwise.
    let redraw = std::io::stdout().is_terminal();
    let mut shown = 0u64;
    loop {
        let v = plinth::top::read(args.addr, args.window, timeout)?;
        if redraw {
            print!("\x1b[H\x1b[2J");
        }
        println!("{}", plinth::top::format_top(&v, args.window));
        shown += 1;
        if args.count.is_some_and(|n| shown >= n) {
            return Ok(ProcessExit::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(args.every.max(100)));
    }
}
