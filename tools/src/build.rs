//! Building the kernel for `x86_64-unknown-none`.

use std::path::PathBuf;
use std::process::Command;

/// The kernel build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot run cargo: {0}")]
    Spawn(std::io::Error),
    #[error("kernel build failed (cargo exited with {0}); see the compiler output above")]
    Failed(std::process::ExitStatus),
}

pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// Builds the kernel (`cargo build --profile kernel --target x86_64-unknown-none`) into
/// its own target directory, so it can run while an outer `cargo test` holds the main
/// one, and returns the ELF's path. Cargo's own progress goes to stderr unless `quiet`.
pub fn build_kernel(quiet: bool) -> Result<PathBuf, BuildError> {
    let root = crate::repo_root();
    let target_dir = root.join("target").join("kernel");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            "kernel",
            "-p",
            "plinth-kernel",
            "--target",
            KERNEL_TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        // Host-side flags from an outer cargo would override the kernel's own
        // (`.cargo/config.toml`: static relocation model) and break the link.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR");
    if quiet {
        cmd.arg("--quiet");
    }
    let status = cmd.status().map_err(BuildError::Spawn)?;
    if !status.success() {
        return Err(BuildError::Failed(status));
    }
    Ok(target_dir
        .join(KERNEL_TARGET)
        .join("kernel")
        .join("plinth-kernel"))
}
