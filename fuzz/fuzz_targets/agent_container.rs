//! The agent container layer against arbitrary bytes: `Container::inspect` and
//! `Container::open` (with a fixed trusted key) must never panic, and neither may
//! `Manifest::parse` on the input read as UTF-8 text. What `open` accepts, `inspect`
//! accepts too, with a valid signature by the trusted key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plinth_container::{Container, Manifest, PublicKey, SignatureStatus};
use plinth_tar::Limits;

/// A fixed key; inputs signed by it are found only by mutating the seed corpus.
const TRUSTED: PublicKey = PublicKey([
    0xea, 0x4a, 0x6c, 0x63, 0xe2, 0x9c, 0x52, 0x0a, 0xbe, 0xf5, 0x50, 0x7b, 0x13, 0x2e, 0xc5,
    0xf9, 0x95, 0x47, 0x76, 0xae, 0xbe, 0xbe, 0x7b, 0x92, 0x42, 0x1e, 0xea, 0x69, 0x14, 0x46,
    0xd2, 0x2c,
]);

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let inspected = Container::inspect(data, &limits).map(|u| (u.signature(), u));
    if let Ok(c) = Container::open(data, &[TRUSTED], &limits) {
        let Ok((status, u)) = inspected else {
            panic!("open accepted what inspect refused");
        };
        assert_eq!(status, SignatureStatus::Valid { key: TRUSTED });
        assert_eq!(u.verify(&[TRUSTED]).ok(), Some(c));
    }
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = Manifest::parse(text);
    }
});
