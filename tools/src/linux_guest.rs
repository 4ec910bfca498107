//! A Linux test guest: Debian's cloud kernel and a busybox initramfs, booted on a plinth
//! machine profile's own QEMU command line, for baselines and peers that must be real
//! Linux (a benchmark's reference figure, later 802.1Q and VXLAN peers).
//!
//! Owns:
//! - fetching Debian's packages once into [`cache_dir`] (`target/linux-guest/`): the
//!   versioned kernel package that [`KERNEL_META_PACKAGE`] depends on and
//!   [`BUSYBOX_PACKAGE`], with `apt-get download`, unpacked with `dpkg -x`; a
//!   `guest.json` there records what was unpacked, so later runs ask apt nothing (delete
//!   the directory to fetch the current packages again);
//! - building the initramfs (a newc cpio, [`cpio`]): busybox, the kernel modules asked
//!   for with what they depend on ([`modules`]), the caller's files, and an `/init` that
//!   mounts `/proc`, `/sys` and `/dev`, loads the modules, prints [`READY_LINE`], runs
//!   the caller's script ([`Init`]), prints [`EXIT_PREFIX`] and its status, and powers
//!   off; a script of [`Init::console`] is a shell on the serial console instead, driven
//!   with [`Machine::send_line`];
//! - compiling small static C programs for the guest ([`static_program`]);
//! - booting it ([`LinuxGuest::boot`]): the caller's profile and launch options with the
//!   kernel, the initramfs (the profile's `initrd_args`) and [`KERNEL_ARGS`] swapped in;
//!   the disk, NIC and everything else are the caller's, so the guest runs on the command
//!   line plinth runs on.
//!
//! Must not: install the packages (nothing outside `target/linux-guest/` changes, apart
//! from apt's package lists when they are empty and we are root), touch the host's own
//! kernel or modules, or decide what the guest measures: callers own their workloads
//! and the parsing of what the guest prints.

pub mod cpio;
pub mod modules;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::machine::{Line, Machine, MachineError, Outcome};
use crate::profile::{LaunchOptions, Profile, ProfileError};
use crate::setup::{Need, SetupError};
use modules::{ModuleError, ModuleTree};

/// Debian's metapackage for the cloud kernel (virtio, 8021q, vxlan as modules); the
/// guest uses the versioned `linux-image-…-cloud-amd64` package it depends on.
pub const KERNEL_META_PACKAGE: &str = "linux-image-cloud-amd64";
/// Debian's statically linked busybox: the guest's shell and tools.
pub const BUSYBOX_PACKAGE: &str = "busybox-static";
/// The guest kernel's command line: its console on the profile's serial port (COM1,
/// QEMU's stdio), and only warnings and worse from the kernel.
pub const KERNEL_ARGS: &str = "console=ttyS0 quiet";
/// What `/init` prints once the modules are loaded, before the caller's script.
pub const READY_LINE: &str = "linux-guest: ready";
/// What `/init` prints when the caller's script has ended, followed by its status.
pub const EXIT_PREFIX: &str = "linux-guest: exit ";
/// What `/init` prints when a module cannot be loaded (then it powers off).
pub const MODULE_FAILED: &str = "linux-guest: cannot load module";

/// `gcc`, which compiles [`static_program`]s.
pub const GCC: Need = Need::cmd("gcc", "gcc");
/// glibc's static library, which `gcc -static` links.
pub fn libc_static() -> Need {
    Need::file("/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev")
}

/// Where the packages, the unpacked trees and the guest programs are kept.
pub fn cache_dir() -> PathBuf {
    crate::repo_root().join("target").join("linux-guest")
}

#[derive(Debug, thiserror::Error)]
pub enum LinuxGuestError {
    #[error(
        "cannot tell which kernel package {KERNEL_META_PACKAGE} depends on ({reason}); look with:\n    apt-cache depends {KERNEL_META_PACKAGE}\n(run `apt-get update` first if apt has no package lists)"
    )]
    Resolve { reason: String },
    #[error("cannot fetch the Debian package {package} ({reason}); fetch it by hand with:\n    cd {} && apt-get update && apt-get download {package}", dir.display())]
    Download {
        package: String,
        dir: PathBuf,
        reason: String,
    },
    #[error("cannot unpack the Debian package {package} ({reason}); by hand:\n    dpkg -x {} {}", deb.display(), dest.display())]
    Unpack {
        package: String,
        deb: PathBuf,
        dest: PathBuf,
        reason: String,
    },
    #[error("the Debian package {package} unpacked in {} has no {what}; delete {} to fetch it again", dir.display(), cache_dir().display())]
    Incomplete {
        package: String,
        dir: PathBuf,
        what: String,
    },
    #[error(
        "compiling {name} for the Linux guest failed ({reason}); the command was:\n    {command}"
    )]
    Compile {
        name: String,
        command: String,
        reason: String,
    },
    // Fields named `error`, not `source`: the message already includes it, and the
    // tool prints an error's source chain after its message.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Cpio(#[from] cpio::CpioError),
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("Linux guest: {error}\n{transcript}")]
    Machine {
        error: MachineError,
        transcript: String,
    },
    #[error("Linux guest: {what}\n{transcript}")]
    Guest { what: String, transcript: String },
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> LinuxGuestError + '_ {
    move |error| LinuxGuestError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// What was unpacked into the cache, recorded in `guest.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Manifest {
    kernel_package: String,
    kernel_version: String,
    /// `uname -r` of the kernel: `6.1.0-57-cloud-amd64`.
    release: String,
    busybox_version: String,
    /// Directories under the cache the packages were unpacked into.
    kernel_dir: String,
    busybox_dir: String,
}

/// The fetched and unpacked guest: kernel, modules and busybox.
pub struct LinuxGuest {
    /// The versioned kernel package, e.g. `linux-image-6.1.0-57-cloud-amd64`.
    pub kernel_package: String,
    /// Its Debian version, e.g. `6.1.192-3`.
    pub kernel_version: String,
    /// The kernel release (`uname -r`).
    pub release: String,
    pub busybox_version: String,
    /// The bzImage QEMU boots (`-kernel`).
    pub kernel: PathBuf,
    /// The static busybox binary.
    pub busybox: PathBuf,
    modules: ModuleTree,
}

impl LinuxGuest {
    /// The guest from [`cache_dir`], fetched and unpacked first if it is not there.
    pub fn fetch() -> Result<LinuxGuest, LinuxGuestError> {
        Self::fetch_into(&cache_dir())
    }

    /// The guest cached in `dir`, fetched and unpacked there first if needed. Safe to
    /// call from several processes at once (one fetches, the others wait and use it).
    pub fn fetch_into(dir: &Path) -> Result<LinuxGuest, LinuxGuestError> {
        if let Some(g) = Self::cached(dir)? {
            return Ok(g);
        }
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock_path = dir.join(".lock");
        let lock = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        lock.lock().map_err(io_error(&lock_path))?;
        if let Some(g) = Self::cached(dir)? {
            return Ok(g);
        }
        crate::setup::ensure(&[
            Need::cmd("apt-get", "apt"),
            Need::cmd("apt-cache", "apt"),
            Need::cmd("dpkg", "dpkg"),
            Need::cmd("dpkg-deb", "dpkg"),
        ])?;
        let kernel_package = resolve_kernel_package()?;
        let debs = dir.join("debs");
        let kernel_deb = download(&kernel_package, &debs)?;
        let busybox_deb = download(BUSYBOX_PACKAGE, &debs)?;
        let kernel_version = deb_field(&kernel_deb, "Version", &kernel_package)?;
        let busybox_version = deb_field(&busybox_deb, "Version", BUSYBOX_PACKAGE)?;
        let kernel_dir = dir_name(&kernel_package, &kernel_version);
        let busybox_dir = dir_name(BUSYBOX_PACKAGE, &busybox_version);
        unpack(&kernel_deb, &kernel_package, &dir.join(&kernel_dir))?;
        unpack(&busybox_deb, BUSYBOX_PACKAGE, &dir.join(&busybox_dir))?;
        let release = kernel_release(&dir.join(&kernel_dir), &kernel_package)?;
        let manifest = Manifest {
            kernel_package,
            kernel_version,
            release,
            busybox_version,
            kernel_dir,
            busybox_dir,
        };
        let path = dir.join("guest.json");
        let tmp = dir.join(format!("guest.json.{}", std::process::id()));
        let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
        std::fs::write(&tmp, text).map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_error(&path))?;
        Self::cached(dir)?.ok_or_else(|| LinuxGuestError::Incomplete {
            package: manifest.kernel_package.clone(),
            dir: dir.join(&manifest.kernel_dir),
            what: "kernel, modules or busybox after unpacking".into(),
        })
    }

    /// The guest as `guest.json` in `dir` records it, if it and its files are there.
    fn cached(dir: &Path) -> Result<Option<LinuxGuest>, LinuxGuestError> {
        let Ok(text) = std::fs::read_to_string(dir.join("guest.json")) else {
            return Ok(None);
        };
        let Ok(m) = serde_json::from_str::<Manifest>(&text) else {
            return Ok(None);
        };
        let kernel_root = dir.join(&m.kernel_dir);
        let kernel = kernel_root
            .join("boot")
            .join(format!("vmlinuz-{}", m.release));
        let modules = kernel_root
            .join("lib/modules")
            .join(&m.release)
            .join("kernel");
        let busybox = dir.join(&m.busybox_dir).join("bin/busybox");
        if !(kernel.is_file() && modules.is_dir() && busybox.is_file()) {
            return Ok(None);
        }
        Ok(Some(LinuxGuest {
            kernel_package: m.kernel_package,
            kernel_version: m.kernel_version,
            release: m.release,
            busybox_version: m.busybox_version,
            kernel,
            busybox,
            modules: ModuleTree::scan(&modules)?,
        }))
    }

    /// `linux-image-6.1.0-57-cloud-amd64 6.1.192-3`: what the guest runs.
    pub fn describe(&self) -> String {
        format!("{} {}", self.kernel_package, self.kernel_version)
    }

    /// The initramfs for `init`, as newc cpio bytes (uncompressed: the kernel unpacks it
    /// faster than it would decompress it under TCG).
    pub fn initramfs(&self, init: &Init) -> Result<Vec<u8>, LinuxGuestError> {
        let wanted: Vec<&str> = init.modules.iter().map(String::as_str).collect();
        let order = self.modules.load_order(&wanted)?;
        let mut a = cpio::Archive::new();
        let mut dirs = std::collections::BTreeSet::new();
        let mut dir = |a: &mut cpio::Archive, path: &str| -> Result<(), cpio::CpioError> {
            // Each parent first, once.
            let mut at = 0;
            while let Some(slash) = path[at..].find('/').map(|s| at + s) {
                if dirs.insert(path[..slash].to_owned()) {
                    a.dir(&path[..slash], 0o755)?;
                }
                at = slash + 1;
            }
            if dirs.insert(path.to_owned()) {
                a.dir(path, 0o755)?;
            }
            Ok(())
        };
        for d in [
            "bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "root",
        ] {
            dir(&mut a, d)?;
        }
        // The kernel opens /dev/console for /init's stdin and stdout before /init mounts
        // devtmpfs over /dev.
        a.char_device("dev/console", 0o600, 5, 1)?;
        let busybox = std::fs::read(&self.busybox).map_err(io_error(&self.busybox))?;
        a.file("bin/busybox", 0o755, &busybox)?;
        dir(&mut a, "lib/modules")?;
        for (name, path) in &order {
            let ko = std::fs::read(path).map_err(io_error(path))?;
            a.file(&format!("lib/modules/{name}.ko"), 0o644, &ko)?;
        }
        for f in &init.files {
            let name = f.path.trim_start_matches('/');
            if let Some((parent, _)) = name.rsplit_once('/') {
                dir(&mut a, parent)?;
            }
            a.file(name, f.mode, &f.data)?;
        }
        dir(&mut a, "etc/plinth")?;
        a.file("etc/plinth/run.sh", 0o755, init.script.as_bytes())?;
        let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
        a.file("init", 0o755, init_script(&names).as_bytes())?;
        Ok(a.finish())
    }

    /// Boots the guest with `init` on `profile` with `opts` (disk, NIC, memory,
    /// accelerator as the caller set them); the kernel, initrd and kernel command line
    /// are the guest's.
    pub fn boot(
        &self,
        profile: &Profile,
        opts: &LaunchOptions,
        init: &Init,
    ) -> Result<Guest, LinuxGuestError> {
        let initramfs = RunFile::create(&self.initramfs(init)?)?;
        let mut o = opts.clone();
        o.kernel = self.kernel.clone();
        o.initrd = Some(initramfs.path.clone());
        o.append = format!("{KERNEL_ARGS} {}", init.kernel_args)
            .trim()
            .to_owned();
        let qemu_args = profile.args(&o)?;
        let machine =
            Machine::launch(profile, &o, false).map_err(|error| LinuxGuestError::Machine {
                error,
                transcript: String::new(),
            })?;
        Ok(Guest {
            machine,
            qemu_args,
            _initramfs: initramfs,
        })
    }
}

/// The directory a package version is unpacked into: `PACKAGE_VERSION` with anything
/// but letters, digits and `.+~_-` (an epoch's `:`) made a `_`.
fn dir_name(package: &str, version: &str) -> String {
    format!("{package}_{version}")
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '+' | '~' | '_' | '-' => c,
            _ => '_',
        })
        .collect()
}

/// The kernel release, from the unpacked `boot/vmlinuz-RELEASE`.
fn kernel_release(kernel_root: &Path, package: &str) -> Result<String, LinuxGuestError> {
    let boot = kernel_root.join("boot");
    let incomplete = || LinuxGuestError::Incomplete {
        package: package.to_owned(),
        dir: kernel_root.to_path_buf(),
        what: "boot/vmlinuz-*".into(),
    };
    let entries = std::fs::read_dir(&boot).map_err(|_| incomplete())?;
    entries
        .flatten()
        .find_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("vmlinuz-")
                .map(str::to_owned)
        })
        .ok_or_else(incomplete)
}

/// The versioned package `apt-cache depends` names for the metapackage:
/// `  Depends: linux-image-6.1.0-57-cloud-amd64` gives `linux-image-6.1.0-57-cloud-amd64`.
pub fn kernel_package_from_depends(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let dep = l.trim().strip_prefix("Depends:")?.trim();
        (dep.starts_with("linux-image-") && !dep.starts_with('<')).then(|| dep.to_owned())
    })
}

/// Runs `cmd`; its stdout, or why it failed (its stderr's last lines).
fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = err.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "{:?} exited with {}: {}",
        cmd.get_program(),
        out.status,
        tail.join(" / ")
    ))
}

/// Runs an apt command; if it fails and we are root, updates apt's package lists once
/// and tries again (a new machine may have none yet, or stale ones).
fn apt(mk: impl Fn() -> Command) -> Result<String, String> {
    match output(&mut mk()) {
        Ok(s) => Ok(s),
        Err(first) if plinth_setup::is_root() => {
            let mut update = Command::new("apt-get");
            update.args(["update", "-qq", "-o", "DPkg::Lock::Timeout=600"]);
            output(&mut update).map_err(|e| format!("{first}; then apt-get update: {e}"))?;
            output(&mut mk())
        }
        Err(e) => Err(e),
    }
}

fn resolve_kernel_package() -> Result<String, LinuxGuestError> {
    let text = apt(|| {
        let mut c = Command::new("apt-cache");
        c.args(["depends", KERNEL_META_PACKAGE]);
        c
    })
    .map_err(|reason| LinuxGuestError::Resolve { reason })?;
    kernel_package_from_depends(&text).ok_or_else(|| LinuxGuestError::Resolve {
        reason: "it lists no linux-image-… dependency".into(),
    })
}

/// `apt-get download PACKAGE` into `dir`; the `.deb`'s path.
fn download(package: &str, dir: &Path) -> Result<PathBuf, LinuxGuestError> {
    let err = |reason: String| LinuxGuestError::Download {
        package: package.to_owned(),
        dir: dir.to_path_buf(),
        reason,
    };
    // A directory of its own, so the one .deb in it is this package's.
    let tmp = dir.join(format!(".download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
    let got = apt(|| {
        let mut c = Command::new("apt-get");
        c.current_dir(&tmp).args(["download", "-q", package]);
        if plinth_setup::is_root() {
            // apt's `_apt` user cannot write into a root-owned target directory.
            c.args(["-o", "APT::Sandbox::User=root"]);
        }
        c
    })
    .map_err(&err);
    let deb = got.and_then(|_| {
        std::fs::read_dir(&tmp)
            .map_err(|e| err(e.to_string()))?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| err("apt-get download left no .deb".into()))
    });
    let result = deb.and_then(|deb| {
        let dest = dir.join(deb.file_name().expect("a .deb has a name"));
        std::fs::rename(&deb, &dest).map_err(io_error(&dest))?;
        Ok(dest)
    });
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// A control field of a `.deb` (`dpkg-deb -f DEB FIELD`).
fn deb_field(deb: &Path, field: &str, package: &str) -> Result<String, LinuxGuestError> {
    let v = output(Command::new("dpkg-deb").arg("-f").arg(deb).arg(field)).map_err(|reason| {
        LinuxGuestError::Unpack {
            package: package.to_owned(),
            deb: deb.to_path_buf(),
            dest: deb.with_extension(""),
            reason,
        }
    })?;
    Ok(v.trim().to_owned())
}

/// `dpkg -x DEB DEST` (no install: the files land under DEST only), through a temporary
/// directory so that DEST is complete or absent.
fn unpack(deb: &Path, package: &str, dest: &Path) -> Result<(), LinuxGuestError> {
    let err = |reason: String| LinuxGuestError::Unpack {
        package: package.to_owned(),
        deb: deb.to_path_buf(),
        dest: dest.to_path_buf(),
        reason,
    };
    let tmp = dest.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(dest);
    output(Command::new("dpkg").arg("-x").arg(deb).arg(&tmp)).map_err(err)?;
    std::fs::rename(&tmp, dest).map_err(io_error(dest))
}

/// The `/init` that loads `modules` (in this order) and runs `/etc/plinth/run.sh`.
pub fn init_script(modules: &[&str]) -> String {
    let mut s = String::from(
        "#!/bin/busybox sh\n\
         # /init of plinth's Linux test guest (tools/src/linux_guest.rs)\n\
         /bin/busybox --install -s\n\
         export PATH=/bin:/sbin:/usr/bin:/usr/sbin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n",
    );
    for m in modules {
        s.push_str(&format!(
            "insmod /lib/modules/{m}.ko || {{ echo \"{MODULE_FAILED} {m}\"; poweroff -f; }}\n"
        ));
    }
    s.push_str(&format!(
        "echo \"{READY_LINE}\"\n\
         sh /etc/plinth/run.sh\n\
         echo \"{EXIT_PREFIX}$?\"\n\
         poweroff -f\n"
    ));
    s
}

/// What the guest does once booted.
#[derive(Clone, Debug, Default)]
pub struct Init {
    /// Kernel modules to load, by name (`virtio_blk`); what they depend on is loaded
    /// first.
    pub modules: Vec<String>,
    /// Files added to the initramfs.
    pub files: Vec<GuestFile>,
    /// A busybox `sh` script `/init` runs after loading the modules; the guest powers
    /// off when it ends.
    pub script: String,
    /// Added to [`KERNEL_ARGS`]. Unknown `key=value` arguments reach `/init` (and so
    /// the script) as environment variables.
    pub kernel_args: String,
}

/// A file in the guest's initramfs.
#[derive(Clone, Debug)]
pub struct GuestFile {
    /// Absolute path in the guest, e.g. `/bin/blkwrite`.
    pub path: String,
    /// Permission bits, e.g. `0o755`.
    pub mode: u32,
    pub data: Vec<u8>,
}

impl Init {
    /// The shell script `/init` runs.
    pub fn script(script: impl Into<String>) -> Init {
        Init {
            script: script.into(),
            ..Init::default()
        }
    }

    /// A shell on the serial console: the caller types commands with
    /// [`Machine::send_line`] (they are echoed) after [`READY_LINE`], and `exit` ends
    /// it (and the guest).
    pub fn console() -> Init {
        Init::script("exec setsid cttyhack sh\n")
    }

    /// Loads `name` (and what it depends on) before the script.
    pub fn module(mut self, name: &str) -> Init {
        self.modules.push(name.to_owned());
        self
    }

    /// Adds a file at `path` in the guest.
    pub fn file(mut self, path: &str, mode: u32, data: Vec<u8>) -> Init {
        self.files.push(GuestFile {
            path: path.to_owned(),
            mode,
            data,
        });
        self
    }
}

/// A booted Linux guest. Dropping it kills QEMU (as [`Machine`] does) and deletes its
/// initramfs file.
pub struct Guest {
    machine: Machine,
    qemu_args: Vec<String>,
    _initramfs: RunFile,
}

impl Guest {
    /// The QEMU session: its serial lines, console input, exit.
    pub fn machine(&mut self) -> &mut Machine {
        &mut self.machine
    }

    /// The QEMU arguments it was started with.
    pub fn qemu_args(&self) -> &[String] {
        &self.qemu_args
    }

    /// Waits for the next line matching `pred`; errors carry the transcript.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<Line, LinuxGuestError> {
        match self.machine.wait_for(timeout, pred) {
            Ok(l) => Ok(l),
            Err(error) => Err(LinuxGuestError::Machine {
                error,
                transcript: self.machine.transcript(),
            }),
        }
    }

    /// Waits until `/init` has loaded the modules and is about to run the script.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Line, LinuxGuestError> {
        let line = self.wait_for(timeout, |l| {
            l.contains(READY_LINE) || l.contains(MODULE_FAILED)
        })?;
        if line.text.contains(MODULE_FAILED) {
            return Err(LinuxGuestError::Guest {
                what: line.text,
                transcript: self.machine.transcript(),
            });
        }
        Ok(line)
    }

    /// Waits for the script to end and the guest to power off; the script's status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<i32, LinuxGuestError> {
        let line = self.wait_for(timeout, |l| l.contains(EXIT_PREFIX))?;
        let status = line.text[line.text.find(EXIT_PREFIX).unwrap_or(0) + EXIT_PREFIX.len()..]
            .trim()
            .parse::<i32>()
            .unwrap_or(-1);
        // `poweroff -f` with ACPI: QEMU ends with status 0.
        let outcome = self.machine.wait_exit(Duration::from_secs(20));
        if outcome != Outcome::Other(Some(0)) {
            return Err(LinuxGuestError::Guest {
                what: format!("did not power off: {outcome}"),
                transcript: self.machine.transcript(),
            });
        }
        Ok(status)
    }
}

/// A per-boot file under `target/linux-guest/run/`, deleted when dropped; files left by
/// processes that died are deleted when the next is created.
struct RunFile {
    path: PathBuf,
}

impl RunFile {
    fn create(data: &[u8]) -> Result<RunFile, LinuxGuestError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = cache_dir().join("run");
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                let pid = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("initramfs-")?.split('-').next())
                    .and_then(|p| p.parse::<u32>().ok());
                if let Some(pid) = pid
                    && !Path::new(&format!("/proc/{pid}")).exists()
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let path = dir.join(format!("initramfs-{}-{n}.cpio", std::process::id()));
        std::fs::write(&path, data).map_err(io_error(&path))?;
        Ok(RunFile { path })
    }
}

impl Drop for RunFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A small C program compiled for the guest with the host's `gcc -static -O2` (glibc's
/// `libc.a`: the guest has no shared libraries), kept in `target/linux-guest/bin/` under
/// a name that carries the source's hash, so it is compiled once per source.
pub fn static_program(name: &str, source: &str) -> Result<PathBuf, LinuxGuestError> {
    const FLAGS: [&str; 4] = ["-static", "-O2", "-Wall", "-Werror"];
    let hash = sha2::Sha256::digest(format!("{FLAGS:?}\n{source}").as_bytes());
    let hex: String = hash[..6].iter().map(|b| format!("{b:02x}")).collect();
    let dir = cache_dir().join("bin");
    let out = dir.join(format!("{name}-{hex}"));
    if out.is_file() {
        return Ok(out);
    }
    crate::setup::ensure(&[GCC, libc_static()])?;
    std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    let src = dir.join(format!("{name}-{hex}.c"));
    std::fs::write(&src, source).map_err(io_error(&src))?;
    let tmp = dir.join(format!("{name}-{hex}.{}", std::process::id()));
    let mut cmd = Command::new("gcc");
    cmd.args(FLAGS).arg("-o").arg(&tmp).arg(&src);
    let command = format!(
        "gcc {} -o {} {}",
        FLAGS.join(" "),
        tmp.display(),
        src.display()
    );
    output(&mut cmd).map_err(|reason| LinuxGuestError::Compile {
        name: name.to_owned(),
        command,
        reason,
    })?;
    std::fs::rename(&tmp, &out).map_err(io_error(&out))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_versioned_kernel_package_is_read_from_apt_cache_depends() {
        let text = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-57-cloud-amd64\n";
        assert_eq!(
            kernel_package_from_depends(text).as_deref(),
            Some("linux-image-6.1.0-57-cloud-amd64")
        );
        let other = "linux-image-cloud-amd64\n  Depends: <linux-image-virtual>\n  Recommends: x\n";
        assert_eq!(kernel_package_from_depends(other), None);
        assert_eq!(kernel_package_from_depends(""), None);
    }

    /// A guest whose busybox and modules are stand-ins in a fresh directory.
    fn fake_guest(dir: &Path) -> LinuxGuest {
        let _ = std::fs::remove_dir_all(dir);
        let modules = dir.join("lib/modules/6.1.0-test/kernel");
        for (rel, deps) in [
            ("drivers/virtio/virtio_ring.ko", ""),
            ("drivers/virtio/virtio.ko", "virtio_ring"),
            ("drivers/block/virtio_blk.ko", "virtio,virtio_ring"),
        ] {
            let path = modules.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let ko = modules::tests::fake_ko(format!("depends={deps}\0").as_bytes());
            std::fs::write(path, ko).unwrap();
        }
        let busybox = dir.join("bin/busybox");
        std::fs::create_dir_all(busybox.parent().unwrap()).unwrap();
        std::fs::write(&busybox, b"\x7fELF busybox").unwrap();
        LinuxGuest {
            kernel_package: "linux-image-6.1.0-test".into(),
            kernel_version: "6.1.1-1".into(),
            release: "6.1.0-test".into(),
            busybox_version: "1:1.35.0-4".into(),
            kernel: dir.join("boot/vmlinuz-6.1.0-test"),
            busybox,
            modules: ModuleTree::scan(&modules).unwrap(),
        }
    }

    #[test]
    fn the_initramfs_holds_busybox_modules_files_and_init() {
        let dir = std::env::temp_dir().join(format!("plinth-guest-{}", std::process::id()));
        let guest = fake_guest(&dir);
        let init = Init::script("echo hello\n").module("virtio_blk").file(
            "/opt/tools/probe",
            0o700,
            b"probe".to_vec(),
        );
        let bytes = guest.initramfs(&init).unwrap();
        let entries = cpio::read(&bytes).unwrap();
        let get = |name: &str| {
            entries
                .iter()
                .find(|e| e.name == name)
                .unwrap_or_else(|| panic!("no {name}"))
        };
        assert_eq!(get("bin/busybox").data, b"\x7fELF busybox");
        assert_eq!(get("bin/busybox").mode, cpio::S_IFREG | 0o755);
        assert_eq!(get("dev/console").rdev, (5, 1));
        assert_eq!(get("dev/console").mode & cpio::S_IFMT, cpio::S_IFCHR);
        for m in ["virtio_ring", "virtio", "virtio_blk"] {
            get(&format!("lib/modules/{m}.ko"));
        }
        assert_eq!(get("opt").mode, cpio::S_IFDIR | 0o755);
        assert_eq!(get("opt/tools/probe").mode, cpio::S_IFREG | 0o700);
        assert_eq!(get("etc/plinth/run.sh").data, b"echo hello\n");
        let script = String::from_utf8(get("init").data.clone()).unwrap();
        assert_eq!(
            script,
            init_script(&["virtio_ring", "virtio", "virtio_blk"])
        );
        // Every entry's parent directory comes before it.
        for (i, e) in entries.iter().enumerate() {
            if let Some((parent, _)) = e.name.rsplit_once('/') {
                let at = entries.iter().position(|p| p.name == parent);
                assert!(at.is_some_and(|p| p < i), "{} before its parent", e.name);
            }
        }
        let missing = Init::script("true").module("virtio_net");
        assert!(matches!(
            guest.initramfs(&missing),
            Err(LinuxGuestError::Module(ModuleError::NotFound { .. }))
        ));
        let clash = Init::script("true").file("/init", 0o755, b"mine".to_vec());
        assert!(matches!(
            guest.initramfs(&clash),
            Err(LinuxGuestError::Cpio(cpio::CpioError::Duplicate(_)))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cache_without_its_files_is_not_a_guest() {
        let dir = std::env::temp_dir().join(format!("plinth-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(LinuxGuest::cached(&dir).unwrap().is_none());
        let m = Manifest {
            kernel_package: "linux-image-6.1.0-test".into(),
            kernel_version: "6.1.1-1".into(),
            release: "6.1.0-test".into(),
            busybox_version: "1".into(),
            kernel_dir: "k".into(),
            busybox_dir: "b".into(),
        };
        std::fs::write(dir.join("guest.json"), serde_json::to_string(&m).unwrap()).unwrap();
        assert!(LinuxGuest::cached(&dir).unwrap().is_none(), "no files yet");
        std::fs::create_dir_all(dir.join("k/boot")).unwrap();
        std::fs::create_dir_all(dir.join("k/lib/modules/6.1.0-test/kernel")).unwrap();
        std::fs::write(dir.join("k/boot/vmlinuz-6.1.0-test"), b"bz").unwrap();
        std::fs::create_dir_all(dir.join("b/bin")).unwrap();
        std::fs::write(dir.join("b/bin/busybox"), b"bb").unwrap();
        let g = LinuxGuest::cached(&dir).unwrap().unwrap();
        assert_eq!(g.describe(), "linux-image-6.1.0-test 6.1.1-1");
        assert_eq!(kernel_release(&dir.join("k"), "p").unwrap(), "6.1.0-test");
        std::fs::write(dir.join("guest.json"), "{").unwrap();
        assert!(LinuxGuest::cached(&dir).unwrap().is_none(), "bad manifest");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn package_directories_have_plain_names() {
        assert_eq!(
            dir_name("busybox-static", "1:1.35.0-4+deb12u1+b1"),
            "busybox-static_1_1.35.0-4+deb12u1+b1"
        );
        assert_eq!(
            dir_name("linux-image-6.1.0-57-cloud-amd64", "6.1.192-3"),
            "linux-image-6.1.0-57-cloud-amd64_6.1.192-3"
        );
    }

    #[test]
    fn init_loads_modules_in_order_then_runs_the_script() {
        let s = init_script(&["virtio_ring", "virtio", "virtio_blk"]);
        assert!(s.starts_with("#!/bin/busybox sh\n"), "{s}");
        let at = |needle: &str| s.find(needle).unwrap_or_else(|| panic!("{needle}: {s}"));
        assert!(at("mount -t devtmpfs") < at("insmod /lib/modules/virtio_ring.ko"));
        assert!(at("virtio_ring.ko") < at("virtio.ko"));
        assert!(at("virtio.ko") < at("virtio_blk.ko"));
        assert!(at("virtio_blk.ko") < at(READY_LINE));
        assert!(at(READY_LINE) < at("sh /etc/plinth/run.sh"));
        assert!(at("sh /etc/plinth/run.sh") < at(EXIT_PREFIX));
        assert!(s.trim_end().ends_with("poweroff -f"), "{s}");
    }
}
