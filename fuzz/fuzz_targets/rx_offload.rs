//! What the uplink's device hands over with a received frame (super-frames, partial
//! checksums): the body, its input format and its checks are
//! `plinth_fuzz_targets::rx_offload`, which the stable driver run by `cargo test` calls too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    plinth_fuzz_targets::rx_offload(data);
});
