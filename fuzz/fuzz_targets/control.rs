//! The partition command set's decoder against arbitrary requests: the input is a method
//! selector byte, the path up to the first newline, and the body. Decoding must never
//! panic; an error must carry one of its five statuses and a one-line message; a command
//! it accepts must pass validation, and its method, path and re-encoded body must decode
//! to the same command.
//! The input format and the checks live in `plinth_control::fuzzing`, which the crate's
//! unit tests also run over every truncation and thousands of mutations of valid bodies.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    plinth_control::fuzzing::request(data);
});
