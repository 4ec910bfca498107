//! `hello`: the smallest well-behaved agent.
//!
//! Demonstrates the ordinary life of an agent: reading its configuration from its own
//! container (`etc/hello.toml`), logging, heartbeats and sleeping. It greets, then
//! heartbeats every `interval_ms` forever, or exits 0 after `beats` heartbeats if the
//! config sets that. Config (every line optional):
//!
//! ```toml
//! name = "hello"          # who is greeting
//! greeting = "hi there"
//! interval_ms = 1000
//! beats = 3               # exit 0 after this many heartbeats; absent: never exit
//! ```
#![cfg_attr(not(feature = "host"), no_std, no_main)]

use hostshim::{config, logf};

hostshim::entry!(run);

/// The config file, inside the agent's container.
const CONFIG: &str = "etc/hello.toml";

fn run() -> i32 {
    let mut buf = [0u8; 1024];
    let text = match config::read(CONFIG, &mut buf) {
        Ok(text) => text,
        Err(e) => {
            logf!("hello: cannot read {CONFIG} ({e}); using defaults");
            ""
        }
    };
    let name = config::value(text, "name").unwrap_or("hello");
    let greeting = config::value(text, "greeting").unwrap_or("hello, world");
    let interval_ms = config::number(text, "interval_ms").unwrap_or(1000);
    let beats = config::number(text, "beats");

    logf!("hello from {name}: {greeting}");
    let mut done = 0u64;
    loop {
        if beats.is_some_and(|beats| done >= beats) {
            logf!("hello: {done} heartbeats, exiting");
            return 0;
        }
        let n = hostshim::heartbeat();
        done += 1;
        logf!("hello: heartbeat {n}");
        if beats != Some(done) {
            hostshim::sleep_ms(interval_ms);
        }
    }
}
