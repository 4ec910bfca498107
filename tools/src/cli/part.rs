//! `plinth part`: the partition commands of a running runtime.
//!
//! Owns only the exit status and which stream the answer goes to: the arguments
//! ([`plinth::part::PartArgs`]), the requests and the human form of the answers are in
//! `plinth::part`, where they are unit-tested. This module must not build requests or
//! read the runtime's JSON.

use std::process::ExitCode as ProcessExit;

use anyhow::Result;
use plinth::part::{PartArgs, Reply};

pub fn run(args: &PartArgs) -> Result<ProcessExit> {
    // The message alone: a connection error's cause is in it already.
    match plinth::part::execute(args).map_err(|e| anyhow::anyhow!("{e}"))? {
        Reply::Done(text) => {
            println!("{text}");
            Ok(ProcessExit::SUCCESS)
        }
        Reply::Refused(r) => {
            eprintln!("plinth: error: {r}");
            Ok(ProcessExit::from(1))
        }
    }
}
