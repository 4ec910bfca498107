//! The management API's HTTP connection against arbitrary clients: bytes in arbitrary
//! chunks, arbitrary clock steps (reaching every timeout), partial sends, every request
//! answered. It must never panic, buffered memory must stay within the limits, and
//! feeding the same bytes whole or in pieces must give the same requests and output.
//! The script format and the checks live in `plinth_http::fuzzing`, which the crate's
//! unit tests also run over random scripts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    plinth_http::fuzzing::connection(data);
});
