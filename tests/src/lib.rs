//! End-to-end harness: build the kernel once per test binary, boot it in QEMU under a
//! timeout that always kills it, and talk to it through its serial console.
//!
//! Every helper panics with the whole serial transcript when an expectation fails, so a
//! failing test shows what the runtime printed. Machines come from the same profiles in
//! `qemu/` that `plinth run` uses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use plinth::machine::{Line, Machine, Outcome};
use plinth::profile::{Accel, LaunchOptions, Profile};
pub use plinth_exit::ExitCode;

/// Longest a test waits for one expected line. Generous: CI has 2 cores under TCG.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// The kernel ELF, built on first use (and QEMU installed if missing).
pub fn kernel() -> &'static PathBuf {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL.get_or_init(|| {
        plinth::setup::ensure_target().unwrap_or_else(|e| panic!("{e}"));
        plinth::build::build_kernel(true).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// How to boot.
#[derive(Clone, Debug)]
pub struct Boot {
    pub profile: &'static str,
    pub memory_mib: u32,
    pub append: String,
    /// Raw image attached as the virtio disk, with this serial.
    pub disk: Option<plinth::profile::Disk>,
    /// Attach the management NIC (user networking, API forwarded to a free host port).
    pub nic: bool,
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            profile: "q35",
            memory_mib: 128,
            append: String::new(),
            disk: None,
            nic: false,
        }
    }
}

impl Boot {
    /// Default machine with this kernel command line.
    pub fn with_args(append: &str) -> Boot {
        Boot {
            append: append.to_owned(),
            ..Boot::default()
        }
    }

    /// Starts QEMU.
    pub fn start(self) -> Runtime {
        let profile = Profile::load(self.profile).unwrap_or_else(|e| panic!("{e}"));
        plinth::setup::ensure_qemu(&profile).unwrap_or_else(|e| panic!("{e}"));
        let opts = LaunchOptions {
            accel: Accel::Tcg,
            memory_mib: self.memory_mib,
            kernel: kernel().clone(),
            append: self.append.clone(),
            disk: self.disk.clone(),
            nic: self.nic.then(|| plinth::profile::Nic {
                mac: NIC_MAC,
                api_host_port: free_port(),
                api_port: plinth_cmdline::parse(&self.append).options.api_port,
            }),
        };
        let api = opts
            .nic
            .map(|n| SocketAddr::from(([127, 0, 0, 1], n.api_host_port)));
        let machine = Machine::launch(&profile, &opts, false).unwrap_or_else(|e| panic!("{e}"));
        Runtime {
            machine,
            boot: self,
            api,
        }
    }
}

/// A booted runtime under test.
pub struct Runtime {
    pub machine: Machine,
    boot: Boot,
    api: Option<SocketAddr>,
}

/// MAC the tests give the runtime's NIC (distinct from QEMU's default 52:54:00:12:34:56).
pub const NIC_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x70, 0x6c, 0x01];

/// A TCP port free on 127.0.0.1 right now (the OS picks it; QEMU binds it moments later).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

impl Runtime {
    /// Host address of the forwarded management API (the boot must have `nic: true`).
    pub fn api(&self) -> SocketAddr {
        self.api.expect("boot without nic: true has no API")
    }

    /// Waits until the runtime has an address and its API answers `/api/v1/health`.
    pub fn expect_api(&mut self) -> SocketAddr {
        self.expect_line("api: listening");
        let addr = self.api();
        let deadline = std::time::Instant::now() + LINE_TIMEOUT;
        loop {
            match plinth::api::get(addr, "/api/v1/health", Duration::from_secs(5)) {
                Ok(r) if r.status == 200 => return addr,
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Ok(r) => self.fail(&format!("/api/v1/health answered {}", r.status)),
                Err(e) => self.fail(&format!("/api/v1/health unreachable: {e}")),
            }
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        let t = self.machine.transcript();
        panic!(
            "{what}\nboot: {:?}\n--- serial transcript ---\n{t}",
            self.boot
        )
    }

    /// Waits for the next line containing `needle` and returns it.
    pub fn expect_line(&mut self, needle: &str) -> Line {
        match self.machine.wait_for(LINE_TIMEOUT, |l| l.contains(needle)) {
            Ok(l) => l,
            Err(e) => self.fail(&format!("expected a line containing {needle:?}: {e}")),
        }
    }

    /// Waits for `plinth: ready` and returns the line.
    pub fn expect_ready(&mut self) -> Line {
        match self.machine.wait_ready(LINE_TIMEOUT) {
            Ok(l) => l,
            Err(e) => self.fail(&format!("expected the ready line: {e}")),
        }
    }

    /// Waits for QEMU to end and checks the runtime's exit code.
    pub fn expect_exit(&mut self, code: ExitCode) {
        let outcome = self.machine.wait_exit(LINE_TIMEOUT);
        if outcome != Outcome::Runtime(code) {
            self.fail(&format!("expected exit `{}`, got {outcome}", code.name()));
        }
    }

    /// Types a console command.
    pub fn send(&mut self, line: &str) {
        if let Err(e) = self.machine.send_line(line) {
            self.fail(&format!("cannot type {line:?}: {e}"));
        }
    }

    /// `shutdown` on the console, then expects a clean exit.
    pub fn shutdown(&mut self) {
        self.send("shutdown");
        self.expect_line("plinth: shutting down");
        self.expect_exit(ExitCode::Success);
    }

    /// Kills QEMU with SIGKILL, as a power cut would stop a machine.
    pub fn kill(&mut self) {
        self.machine.kill();
    }

    /// All serial lines so far.
    pub fn transcript(&mut self) -> String {
        self.machine.transcript()
    }
}
