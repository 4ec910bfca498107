//! The management API's HTTP connection against arbitrary clients: bytes in arbitrary
//! chunks, arbitrary clock steps (reaching every timeout), partial sends, every request
//! answered or, when it asks to upgrade, switched to a raw protocol. It must never panic,
//! buffered memory must stay within the limits, a switched connection must take no more
//! input and never time out, and feeding the same bytes whole or in pieces must give the
//! same requests, output and bytes handed to the new protocol.
//! The script format and the checks live in `plinth_http::fuzzing`, which the crate's
//! unit tests also run over random scripts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    plinth_http::fuzzing::connection(data);
});
