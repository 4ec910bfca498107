//! The management API's `Authorization` header: the body, its input format and its
//! checks are `plinth_fuzz_targets::auth_header`, which the stable driver run by
//! `cargo test` calls too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    plinth_fuzz_targets::auth_header(data);
});
