//! The catalog against arbitrary bytes, the way the runtime meets a disk it does not
//! trust: the input as a whole sealed catalog (header checked first), then the same bytes
//! re-sealed as a payload so the archive, spec, key, container and policy checks are
//! reached past the checksum. Neither may panic. The input read as text is also fed to
//! the appliance spec parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plinth_catalog::{Catalog, HEADER_LEN, Header, seal};
use plinth_policy::appliance::Appliance;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::parse(data, data.len() as u64) {
        let _ = Catalog::open(&h, data.get(HEADER_LEN..).unwrap_or_default());
    }
    let sealed = seal(data);
    let h = Header::parse(&sealed, sealed.len() as u64).expect("seal writes a valid header");
    let _ = Catalog::open(&h, &sealed[HEADER_LEN..]);
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = Appliance::parse(text, 0);
    }
});
