//! `plinth net`: the runtime's bridge (`GET /api/v1/network`).
//!
//! Owns the group's arguments and choosing between the runtime's JSON and the tables.
//! The HTTP client is `plinth::api`'s, the tables `plinth::net`'s and the document's
//! shape `plinth_control::views::NetworkView`; this module must not pick fields out of
//! the answer itself.

use std::net::SocketAddr;
use std::process::ExitCode as ProcessExit;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use plinth_control::views::NetworkView;

/// `plinth net …`: a subcommand and the options every subcommand takes (as `plinth
/// part` has them).
#[derive(Args, Clone, Debug)]
pub struct NetArgs {
    #[command(subcommand)]
    pub which: NetCmd,
    /// Where the API is reachable (what `plinth run --api-port` forwards).
    #[arg(long, global = true, default_value_t = SocketAddr::from(([127, 0, 0, 1], plinth::api::DEFAULT_HOST_PORT)))]
    pub addr: SocketAddr,
    /// Print the runtime's JSON as it is.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, global = true, default_value_t = 10)]
    pub timeout: u64,
}

#[derive(Subcommand, Clone, Debug, PartialEq, Eq)]
pub enum NetCmd {
    /// The bridge: its VLANs, ports (uplink, management, partitions' NICs), MAC table
    /// and VLAN pools.
    Show,
}

pub fn run(args: &NetArgs) -> Result<ProcessExit> {
    let timeout = Duration::from_secs(args.timeout.max(1));
    match args.which {
        NetCmd::Show if args.json => {
            // As the runtime sent it (re-indented), whether or not this tool knows its
            // shape.
            let v = plinth::api::get_json(args.addr, plinth::net::PATH, timeout)?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        NetCmd::Show => {
            let n: NetworkView = plinth::api::get_view(args.addr, plinth::net::PATH, timeout)?;
            println!("{}", plinth::net::format_network(&n));
        }
    }
    Ok(ProcessExit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        net: NetArgs,
    }

    fn parse(args: &[&str]) -> Result<NetArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("net").chain(args.iter().copied())).map(|c| c.net)
    }

    #[test]
    fn show_takes_the_api_options_anywhere() {
        let a = parse(&["show"]).unwrap();
        assert_eq!(
            (a.which, a.addr.to_string(), a.json, a.timeout),
            (NetCmd::Show, "127.0.0.1:8080".into(), false, 10)
        );
        let a = parse(&["show", "--json", "--addr", "10.0.0.2:80", "--timeout", "3"]).unwrap();
        assert_eq!((a.addr.port(), a.json, a.timeout), (80, true, 3));
        let a = parse(&["--json", "show"]).unwrap();
        assert!(a.json);
        assert!(parse(&[]).is_err());
        assert!(parse(&["show", "x"]).is_err());
        assert!(parse(&["list"]).is_err());
    }

    #[test]
    fn an_unreachable_runtime_is_an_error() {
        for json in [false, true] {
            let mut a = parse(&["show", "--addr", "127.0.0.1:1", "--timeout", "2"]).unwrap();
            a.json = json;
            let e = run(&a).unwrap_err().to_string();
            assert!(
                e.contains("cannot connect to the runtime API at 127.0.0.1:1"),
                "{e}"
            );
        }
    }
}
