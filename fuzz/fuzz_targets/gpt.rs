//! The appliance disk's partition table against arbitrary disks: the input is a flag byte
//! and a disk image, and the flags can re-compute the tables' CRCs, write a protective MBR
//! and make the disk longer than the image (so reads past it fail, as on a truncated
//! disk). The reader must never panic, never ask for a sector past the disk or for more
//! than 128 KiB at once, and a table it accepts must keep every promise the crate makes
//! and, planned again, write a table that reads back the same.
//! The input format and the checks live in `plinth_gpt::fuzzing`, which the crate's unit
//! tests also run over random corruptions.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    plinth_gpt::fuzzing::disk(data);
});
