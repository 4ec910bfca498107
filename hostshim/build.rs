//! Links agents (this package's examples) for the runtime with `agent.ld`.
//!
//! Only for `x86_64-unknown-none`; host builds of the examples are ordinary programs.
//!
//! Agents live at `plinth_abi::IMAGE_BASE` (512 GiB up), out of reach of the absolute
//! 32-bit addresses that non-PIC code uses on this target (code model `kernel`: the top
//! 2 GiB only). So agent code must be position independent, which is also the target's
//! default; the workspace's `.cargo/config.toml` however sets `relocation-model=static`
//! for the kernel, and a package cannot override that on its own. Agents are therefore
//! built with
//!
//! ```text
//! --config "target.x86_64-unknown-none.rustflags=['-Crelocation-model=pie']"
//! ```
//!
//! (appended to the workspace's flags; the last relocation model wins) and linked with
//! `--no-pie`: position-independent code in a static `ET_EXEC` at a fixed address, with
//! every relocation resolved by the linker (no `PT_DYNAMIC`, no `PT_INTERP`). Without
//! that flag, the link stops on an assertion saying so, instead of on a page of
//! "relocation R_X86_64_32S out of range".
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=agent.ld");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-none") {
        return;
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    for arg in [
        format!("-T{dir}/agent.ld"),
        "--no-pie".to_owned(),
        "--gc-sections".to_owned(),
        "-zmax-page-size=4096".to_owned(),
    ] {
        println!("cargo:rustc-link-arg-examples={arg}");
    }
    if !position_independent(&std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default()) {
        let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
        let script = out.join("needs-pie.ld");
        std::fs::write(
            &script,
            "ASSERT(0, \"hostshim agents must be compiled position independent: add \
             --config target.x86_64-unknown-none.rustflags=['-Crelocation-model=pie'] to the \
             cargo command, quoted for the shell (see hostshim/build.rs)\")\n",
        )
        .expect("OUT_DIR is writable");
        println!("cargo:rustc-link-arg-examples=-T{}", script.display());
    }
}

/// Whether the last `-C relocation-model=` among rustc's flags (0x1f-separated) asks for
/// position-independent code; the target's default (no flag) does.
pub(crate) fn position_independent(encoded_rustflags: &str) -> bool {
    let flags: Vec<&str> = encoded_rustflags.split('\x1f').collect();
    let mut model = None;
    for (i, flag) in flags.iter().enumerate() {
        let option = match *flag {
            "-C" | "--codegen" => flags.get(i + 1).copied(),
            _ => flag
                .strip_prefix("-C")
                .or_else(|| flag.strip_prefix("--codegen=")),
        };
        if let Some(m) = option.and_then(|o| o.strip_prefix("relocation-model=")) {
            model = Some(m);
        }
    }
    model.is_none_or(|m| m == "pic" || m == "pie")
}
