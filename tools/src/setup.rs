//! Making a fresh machine ready: QEMU and the Rust target.
//!
//! Missing pieces are installed when that is possible without asking (apt as root,
//! rustup for the target); otherwise the error carries the exact command to run.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::build::KERNEL_TARGET;
use crate::profile::Profile;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{what} is missing and plinth is not running as root; install it with:\n    {command}")]
    NeedsRoot { what: String, command: String },
    #[error("installing {what} failed; run by hand:\n    {command}")]
    InstallFailed { what: String, command: String },
    #[error("{what} is still missing after `{command}`")]
    StillMissing { what: String, command: String },
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn missing(profile: &Profile) -> Vec<String> {
    let mut m = Vec::new();
    if !on_path(&profile.binary) {
        m.push(profile.binary.clone());
    }
    m.extend(
        profile
            .files
            .iter()
            .filter(|f| !Path::new(f).exists())
            .map(|f| f.display().to_string()),
    );
    m
}

/// Makes sure the profile's QEMU binary and firmware files are present.
pub fn ensure_qemu(profile: &Profile) -> Result<(), SetupError> {
    let gone = missing(profile);
    if gone.is_empty() {
        return Ok(());
    }
    let what = gone.join(", ");
    let command = format!(
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
        profile.package
    );
    if !is_root() {
        return Err(SetupError::NeedsRoot {
            what,
            command: format!("sudo sh -c '{command}'"),
        });
    }
    eprintln!(
        "plinth: {what} missing; installing {} with apt",
        profile.package
    );
    let ok = Command::new("sh")
        .args(["-c", &command])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(SetupError::InstallFailed { what, command });
    }
    if !missing(profile).is_empty() {
        return Err(SetupError::StillMissing { what, command });
    }
    Ok(())
}

/// Makes sure rustup has the kernel's target (the toolchain file asks for it too, but an
/// existing toolchain installed without it would fail later with a less clear error).
pub fn ensure_target() -> Result<(), SetupError> {
    let installed = Command::new("rustup")
        .current_dir(crate::repo_root())
        .args(["target", "list", "--installed"])
        .output();
    let Ok(out) = installed else {
        // No rustup: a toolchain managed otherwise; let the build report what is missing.
        return Ok(());
    };
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == KERNEL_TARGET)
    {
        return Ok(());
    }
    let command = format!("rustup target add {KERNEL_TARGET}");
    eprintln!("plinth: installing the {KERNEL_TARGET} target with rustup");
    let ok = Command::new("rustup")
        .current_dir(crate::repo_root())
        .args(["target", "add", KERNEL_TARGET])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(SetupError::InstallFailed {
            what: KERNEL_TARGET.into(),
            command,
        })
    }
}
