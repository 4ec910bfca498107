//! The agent linker script and build script against the ABI they must follow.

#[allow(dead_code, reason = "only the flag parser is under test, not `main`")]
#[path = "../build.rs"]
mod build;

use plinth_abi::{IMAGE_BASE, IMAGE_END};

const SCRIPT: &str = include_str!("../agent.ld");

#[test]
fn linker_script_uses_the_abi_image_window() {
    let start = format!(". = {IMAGE_BASE:#x};");
    let end = format!("ASSERT(__image_end <= {IMAGE_END:#x},");
    assert!(
        SCRIPT.contains(&start),
        "agent.ld must link at IMAGE_BASE: {start}"
    );
    assert!(
        SCRIPT.contains(&end),
        "agent.ld must stop at IMAGE_END: {end}"
    );
    assert!(SCRIPT.contains("ENTRY(_start)"));
}

#[test]
fn linker_script_never_maps_a_segment_writable_and_executable() {
    // FLAGS bits: X = 1, W = 2, R = 4.
    let flags: Vec<u32> = SCRIPT
        .lines()
        .filter(|l| l.contains("PT_LOAD FLAGS("))
        .map(|l| {
            let inside = l.split("FLAGS(").nth(1).unwrap().split(')').next().unwrap();
            inside.parse().unwrap()
        })
        .collect();
    assert_eq!(flags, [5, 4, 6]);
    assert!(flags.iter().all(|f| f & 3 != 3));
}

#[test]
fn build_script_recognises_position_independent_flags() {
    let flags = |f: &[&str]| build::position_independent(&f.join("\x1f"));
    assert!(flags(&[]));
    assert!(flags(&[""]));
    assert!(!flags(&[
        "-C",
        "relocation-model=static",
        "-C",
        "force-frame-pointers=yes"
    ]));
    assert!(flags(&[
        "-C",
        "relocation-model=static",
        "-Crelocation-model=pie"
    ]));
    assert!(flags(&[
        "-Crelocation-model=static",
        "--codegen",
        "relocation-model=pic"
    ]));
    assert!(!flags(&[
        "-Crelocation-model=pie",
        "--codegen=relocation-model=static"
    ]));
    assert!(!flags(&["-C", "relocation-model=dynamic-no-pic"]));
}
