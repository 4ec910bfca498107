//! The kernel command line: any bytes the firmware hands over (lossily decoded, as the
//! start_info reader cuts at the first invalid byte) must parse without panicking, and
//! every kept problem must point into the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parsed = plinth_cmdline::parse(&text);
    for p in &parsed.problems {
        let start = p.token.as_ptr() as usize;
        let base = text.as_ptr() as usize;
        assert!(start >= base && start + p.token.len() <= base + text.len());
    }
});
