//! Building the kernel and the example agents for `x86_64-unknown-none`.

use std::path::PathBuf;
use std::process::Command;

/// The kernel build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot run cargo: {0}")]
    Spawn(std::io::Error),
    #[error("kernel build failed (cargo exited with {0}); see the compiler output above")]
    Failed(std::process::ExitStatus),
    #[error("agent build failed (cargo exited with {0}); see the compiler output above")]
    AgentsFailed(std::process::ExitStatus),
    #[error("installing agent {path}: {error}")]
    Install {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Setup(#[from] crate::setup::SetupError),
}

/// The example agents `hostshim` carries (its `examples/`), built for the runtime.
pub const EXAMPLE_AGENTS: [&str; 7] = [
    "hello", "spinner", "scrubber", "hostile", "bench", "echo", "ioload",
];

/// A cargo command for the target, without the host's flags.
fn target_cargo(root: &std::path::Path, target_dir: &std::path::Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .arg("build")
        .arg("--target-dir")
        .arg(target_dir)
        // Host-side flags from an outer cargo would override the target's own
        // (`.cargo/config.toml`: static relocation model) and break the link.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("CARGO_TARGET_DIR");
    cmd
}

/// Builds `hostshim`'s example agents as static ELF executables for ring 3
/// (`cargo build -p hostshim --no-default-features --examples --profile agent --target
/// x86_64-unknown-none`) and returns each name with its path. Installs the target first
/// if it is missing.
pub fn build_agents(quiet: bool) -> Result<Vec<(&'static str, PathBuf)>, BuildError> {
    crate::setup::ensure_target()?;
    let root = crate::repo_root();
    let target_dir = root.join("target").join("agents");
    let mut cmd = target_cargo(&root, &target_dir);
    cmd.args([
        // Agents live at 512 GiB (plinth_abi::IMAGE_BASE), beyond the reach of the static
        // relocation model's 32-bit absolute addresses that the kernel (linked low) uses:
        // compile position-independent; hostshim's link step still makes a static ET_EXEC.
        "--config",
        "target.x86_64-unknown-none.rustflags=['-Crelocation-model=pie']",
        "--profile",
        "agent",
        "-p",
        "hostshim",
        "--no-default-features",
        "--examples",
        "--target",
        KERNEL_TARGET,
    ]);
    if quiet {
        cmd.arg("--quiet");
    }
    let status = cmd.status().map_err(BuildError::Spawn)?;
    if !status.success() {
        return Err(BuildError::AgentsFailed(status));
    }
    let dir = target_dir
        .join(KERNEL_TARGET)
        .join("agent")
        .join("examples");
    Ok(EXAMPLE_AGENTS.iter().map(|n| (*n, dir.join(n))).collect())
}

/// Builds the example agents and installs each as `bin/NAME` of the agent directory
/// `NAME` under `agents_dir` (the default appliance keeps them there, ignored by git).
/// Each file is replaced atomically, so concurrent builds never see half a file.
/// Returns the files installed (examples without a directory there are skipped).
pub fn install_agents(
    agents_dir: &std::path::Path,
    quiet: bool,
) -> Result<Vec<PathBuf>, BuildError> {
    let mut installed = Vec::new();
    for (name, built) in build_agents(quiet)? {
        let dir = agents_dir.join(name);
        if !dir.is_dir() {
            continue;
        }
        let bin = dir.join("bin");
        let dst = bin.join(name);
        let tmp = bin.join(format!(".{name}.{}", std::process::id()));
        let install = || -> std::io::Result<()> {
            std::fs::create_dir_all(&bin)?;
            std::fs::copy(&built, &tmp)?;
            std::fs::rename(&tmp, &dst)
        };
        install().map_err(|error| BuildError::Install {
            path: dst.clone(),
            error,
        })?;
        installed.push(dst);
    }
    Ok(installed)
}

pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// Builds the kernel (`cargo build --profile kernel --target x86_64-unknown-none`) into
/// its own target directory, so it can run while an outer `cargo test` holds the main
/// one, and returns the ELF's path. Cargo's own progress goes to stderr unless `quiet`.
/// Installs the target first if it is missing.
pub fn build_kernel(quiet: bool) -> Result<PathBuf, BuildError> {
    crate::setup::ensure_target()?;
    let root = crate::repo_root();
    let target_dir = root.join("target").join("kernel");
    let mut cmd = target_cargo(&root, &target_dir);
    cmd.args([
        "--profile",
        "kernel",
        "-p",
        "plinth-kernel",
        "--target",
        KERNEL_TARGET,
    ]);
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
