//! Making a machine ready for plinth and its tests: the Debian packages (QEMU and its
//! firmware, the disk and network tools the tests compare with) and the Rust target.
//!
//! [`ensure`] is the one entry point. What is present is left alone. What is missing is
//! installed when nobody has to be asked: every missing package in one `apt-get install`
//! when running as root, a target with `rustup target add`. Otherwise the error names each
//! missing piece with its package and gives the exact command to run; callers (the
//! `plinth` tool, the tests) fail with it, never skip.
//!
//! Many callers may ask at once: `cargo test` runs test binaries' tests on parallel
//! threads, and the `plinth` processes the CLI tests start ask too. Two `apt-get`s at
//! once fail on apt's lock, and two `rustup target add`s step on each other, so
//! installing is serialised across threads and processes by an exclusive `flock` on
//! [`lock_path`] (std's [`File::lock`], so no dependency), and what is missing is checked
//! again once the lock is held: a caller that waited finds the work done. Needs met once
//! are remembered for the rest of the process, so asking again costs nothing.
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};

/// Something plinth or a test needs on this machine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Need {
    /// A command (found as [`command_path`] finds it) from a Debian package.
    Command {
        command: Cow<'static, str>,
        package: Cow<'static, str>,
    },
    /// A file (firmware, data) from a Debian package.
    File {
        path: PathBuf,
        package: Cow<'static, str>,
    },
    /// A rustup target of the toolchain `dir` selects (its `rust-toolchain.toml`).
    Target {
        target: Cow<'static, str>,
        dir: PathBuf,
    },
}

/// `sgdisk` (gdisk), which lists and checks GPT disks.
pub const SGDISK: Need = Need::cmd("sgdisk", "gdisk");
/// `fdisk` (util-linux's fdisk package), which lists partition tables.
pub const FDISK: Need = Need::cmd("fdisk", "fdisk");
/// `qemu-img` (qemu-utils), which converts images to and from qcow2.
pub const QEMU_IMG: Need = Need::cmd("qemu-img", "qemu-utils");
/// `ip` (iproute2), for network namespaces and tap devices.
pub const IP: Need = Need::cmd("ip", "iproute2");

impl Need {
    /// A command from a Debian package.
    pub const fn cmd(command: &'static str, package: &'static str) -> Need {
        Need::Command {
            command: Cow::Borrowed(command),
            package: Cow::Borrowed(package),
        }
    }

    /// A Debian package's file.
    pub fn file(path: impl Into<PathBuf>, package: impl Into<Cow<'static, str>>) -> Need {
        Need::File {
            path: path.into(),
            package: package.into(),
        }
    }

    /// A rustup target of the toolchain selected in `dir`.
    pub fn target(target: impl Into<Cow<'static, str>>, dir: impl Into<PathBuf>) -> Need {
        Need::Target {
            target: target.into(),
            dir: dir.into(),
        }
    }

    fn package(&self) -> Option<&str> {
        match self {
            Need::Command { package, .. } | Need::File { package, .. } => Some(package),
            Need::Target { .. } => None,
        }
    }

    fn present(&self) -> bool {
        match self {
            Need::Command { command, .. } => command_path(command).is_some(),
            Need::File { path, .. } => path.exists(),
            Need::Target { target, dir } => target_installed(target, dir),
        }
    }

    /// How an error names it: `sgdisk` (package gdisk).
    fn describe(&self) -> String {
        match self {
            Need::Command { command, package } => format!("`{command}` (package {package})"),
            Need::File { path, package } => format!("{} (package {package})", path.display()),
            Need::Target { target, .. } => format!("the Rust target {target}"),
        }
    }
}

/// [`ensure`] for a [`Need::Command`], and where the command is.
///
/// # Panics
///
/// If `need` is not a [`Need::Command`].
pub fn ensure_command(need: &Need) -> Result<PathBuf, SetupError> {
    let Need::Command { command, .. } = need else {
        panic!("ensure_command: {need:?} is not a command");
    };
    ensure(std::slice::from_ref(need))?;
    // Present, unless removed since: then the caller's run of it says so.
    Ok(command_path(command).unwrap_or_else(|| PathBuf::from(command.as_ref())))
}

/// Where a command is: on `PATH`, or in the sbin directories a user's `PATH` may lack
/// (`fdisk` and `sgdisk` live there).
pub fn command_path(command: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(command))
        .find(|candidate| candidate.is_file())
}

/// Whether rustup lists the target as installed for the toolchain `dir` selects. Without
/// rustup the toolchain is managed some other way: nothing to do here, and the build says
/// what is missing.
fn target_installed(target: &str, dir: &Path) -> bool {
    match Command::new("rustup")
        .current_dir(dir)
        .args(["target", "list", "--installed"])
        .stderr(Stdio::null())
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == target),
        Err(_) => true,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("missing: {what}; not running as root, so install it with:\n    {command}")]
    NeedsRoot { what: String, command: String },
    #[error("missing: {what}; installing failed ({reason}); install by hand with:\n    {command}")]
    InstallFailed {
        what: String,
        command: String,
        reason: String,
    },
    #[error("missing: {what}, still, after `{command}`")]
    StillMissing { what: String, command: String },
    #[error("cannot take the set-up lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Makes sure every need is met: checks, and installs what is missing (see the crate
/// docs). Safe to call from any number of threads and processes at once.
pub fn ensure(needs: &[Need]) -> Result<(), SetupError> {
    // Needs met earlier in this process; a list, as there are a handful.
    static MET: Mutex<Vec<Need>> = Mutex::new(Vec::new());
    let wanted: Vec<&Need> = {
        let met = MET.lock().unwrap_or_else(PoisonError::into_inner);
        needs.iter().filter(|n| !met.contains(n)).collect()
    };
    if wanted.iter().any(|n| !n.present()) {
        // One at a time across threads and processes (each call opens the lock file
        // anew, and flock excludes other open files, in this process too). Then look
        // again: whoever held the lock may have installed it all.
        let _lock = MachineLock::take()?;
        let missing: Vec<&Need> = wanted.iter().copied().filter(|n| !n.present()).collect();
        install(&missing, is_root())?;
    }
    MET.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(wanted.into_iter().cloned());
    Ok(())
}

/// The machine-wide lock file: in the temporary directory rather than a target
/// directory, since apt and rustup are shared by every checkout on the machine.
pub fn lock_path() -> PathBuf {
    std::env::temp_dir().join("plinth-setup.lock")
}

/// An exclusive `flock` on [`lock_path`], released when dropped (or when the process
/// ends, however it ends).
struct MachineLock {
    _file: File,
}

impl MachineLock {
    fn take() -> Result<MachineLock, SetupError> {
        let path = lock_path();
        let error = |source| SetupError::Lock {
            path: path.clone(),
            source,
        };
        // flock needs no write access, so opening read-only also works on a lock file
        // another user created; create it only when it is not there yet.
        let file = match File::open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .map_err(error)?,
            other => other.map_err(error)?,
        };
        file.lock().map_err(error)?;
        Ok(MachineLock { _file: file })
    }
}

/// Whether this process runs as root (it may then install what is missing).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

fn describe(needs: &[&Need]) -> String {
    needs
        .iter()
        .map(|n| n.describe())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The distinct packages that provide `needs`, in order.
fn packages<'a>(needs: &[&'a Need]) -> Vec<&'a str> {
    let mut packages = Vec::new();
    for p in needs.iter().filter_map(|n| n.package()) {
        if !packages.contains(&p) {
            packages.push(p);
        }
    }
    packages
}

/// The command a person would run to install `packages`.
fn apt_command(packages: &[&str]) -> String {
    format!(
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    )
}

/// Says what set-up is doing to the machine. Written to stderr itself rather than with
/// `eprintln!`, which the test harness captures: installing packages should show.
fn say(text: &str) {
    let who = match std::thread::current().name() {
        Some(name) if name != "main" => format!(" ({name})"),
        _ => String::new(),
    };
    let _ = writeln!(std::io::stderr(), "plinth-setup{who}: {text}");
}

/// Installs what is missing: targets with rustup, then every package with one apt-get.
fn install(missing: &[&Need], root: bool) -> Result<(), SetupError> {
    for need in missing {
        if let Need::Target { target, dir } = need {
            add_target(target, dir)?;
        }
    }
    let for_apt: Vec<&Need> = missing
        .iter()
        .copied()
        .filter(|n| n.package().is_some())
        .collect();
    if for_apt.is_empty() {
        return Ok(());
    }
    let what = describe(&for_apt);
    let packages = packages(&for_apt);
    let command = apt_command(&packages);
    if !root {
        return Err(SetupError::NeedsRoot {
            what,
            command: format!("sudo sh -c '{command}'"),
        });
    }
    say(&format!(
        "installing {} with apt-get (missing: {what})",
        packages.join(" ")
    ));
    let apt = |args: &[&str]| -> Result<(), String> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("apt-get {} exited with {status}", args[0]))
        }
    };
    // Someone else's apt (unattended upgrades, another checkout) may hold dpkg's lock:
    // wait for it rather than fail.
    let wait = "DPkg::Lock::Timeout=600";
    let installed = apt(&["update", "-qq", "-o", wait]).and_then(|()| {
        let mut args = vec![
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "-o",
            wait,
        ];
        args.extend(&packages);
        apt(&args)
    });
    if let Err(reason) = installed {
        return Err(SetupError::InstallFailed {
            what,
            command,
            reason,
        });
    }
    let still: Vec<&Need> = for_apt.into_iter().filter(|n| !n.present()).collect();
    if !still.is_empty() {
        return Err(SetupError::StillMissing {
            what: describe(&still),
            command,
        });
    }
    Ok(())
}

fn add_target(target: &str, dir: &Path) -> Result<(), SetupError> {
    let command = format!("rustup target add {target}");
    say(&format!("installing the {target} target with rustup"));
    let status = Command::new("rustup")
        .current_dir(dir)
        .args(["target", "add", target])
        .stdin(Stdio::null())
        .status();
    let failed = |reason| SetupError::InstallFailed {
        what: format!("the Rust target {target}"),
        command: command.clone(),
        reason,
    };
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => return Err(failed(format!("rustup exited with {s}"))),
        Err(e) => return Err(failed(format!("cannot run rustup: {e}"))),
    }
    if !target_installed(target, dir) {
        return Err(SetupError::StillMissing {
            what: format!("the Rust target {target}"),
            command,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn present_needs_are_met_without_installing_from_many_threads() {
        let needs = [Need::cmd("sh", "dash"), Need::file("/", "base-files")];
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| ensure(&needs).unwrap());
            }
        });
        ensure(&needs).unwrap();
    }

    #[test]
    fn without_root_the_error_names_each_package_and_the_one_command() {
        let a = Need::cmd("plinth-no-such-tool", "plinth-no-such-package");
        let b = Need::file("/nonexistent/plinth.rom", "plinth-no-such-package");
        let c = Need::cmd("plinth-no-such-other", "plinth-other-package");
        let err = install(&[&a, &b, &c], false).unwrap_err();
        assert!(matches!(err, SetupError::NeedsRoot { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "missing: `plinth-no-such-tool` (package plinth-no-such-package), \
             /nonexistent/plinth.rom (package plinth-no-such-package), \
             `plinth-no-such-other` (package plinth-other-package); \
             not running as root, so install it with:\n    \
             sudo sh -c 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
             --no-install-recommends plinth-no-such-package plinth-other-package'"
        );
    }

    #[test]
    fn the_lock_excludes_other_holders_until_dropped() {
        let held = MachineLock::take().unwrap();
        let other = File::open(lock_path()).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other.lock().unwrap();
    }

    #[test]
    fn commands_are_found_in_sbin_too() {
        assert!(command_path("sh").is_some());
        assert_eq!(command_path("plinth-no-such-tool"), None);
    }
}
