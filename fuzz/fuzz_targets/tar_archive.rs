//! The agent container's ustar layer against arbitrary bytes, read with the default limits:
//! it must never panic; every entry's data must be a slice of the input, its name must pass
//! the name rules and its mode fit the permission bits; and an archive that parses must
//! rebuild (same names, modes, data, order) into one that reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plinth_tar::{Builder, Limits, check_name, read};

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = read(data, &Limits::default()) else {
        return;
    };
    let input = data.as_ptr_range();
    for e in &entries {
        let inside = e.data.as_ptr_range();
        assert!(input.start <= inside.start && inside.end <= input.end);
        assert_eq!(check_name(&e.name), Ok(()), "{:?}", e.name);
        assert!(e.mode <= 0o7777);
    }

    // Whatever the reader accepts, the writer must be able to write under the same limits.
    let mut builder = Builder::new();
    for e in &entries {
        if let Err(err) = builder.add_file(&e.name, e.mode, e.data) {
            panic!("rebuilding {:?}: {err}", e.name);
        }
    }
    let rebuilt = builder.finish();
    let again = match read(&rebuilt, &Limits::default()) {
        Ok(again) => again,
        Err(err) => panic!("reading the rebuilt archive: {err}"),
    };
    assert_eq!(again, entries);
});
