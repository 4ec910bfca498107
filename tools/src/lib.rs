//! The `plinth` host tool as a library: machine profiles, the kernel build, QEMU sessions
//! with captured serial, machine set-up, benchmarks and the Linux test guest they compare
//! with (`linux_guest`), and the VLAN lab of tests and benchmarks (`lab`). The CLI
//! (`main.rs`, one module per command group under `cli/`) and the end-to-end test harness
//! (`plinth-tests`) are both built on it, so a QEMU command line exists in exactly one
//! place: a profile in `qemu/`.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod bench;
pub mod bench_bridge;
pub mod bench_governor;
pub mod bench_linux;
pub mod bench_net;
pub mod bench_part;
pub mod build;
pub mod disk;
pub mod events;
pub mod image;
pub mod lab;
pub mod linux_guest;
pub mod machine;
pub mod net;
pub mod part;
pub mod policy;
pub mod profile;
pub mod setup;
pub mod text;
pub mod top;

use std::path::PathBuf;

/// The repository root (where `Cargo.toml`, `qemu/` and `kernel/` are). `PLINTH_ROOT`
/// overrides the location recorded at build time.
pub fn repo_root() -> PathBuf {
    match std::env::var_os("PLINTH_ROOT") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
    }
}
