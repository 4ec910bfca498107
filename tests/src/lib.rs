//! End-to-end harness: build the kernel once per test binary, boot it in QEMU under a
//! timeout that always kills it, and talk to it through its serial console.
//!
//! Every helper panics with the whole serial transcript when an expectation fails, so a
//! failing test shows what the runtime printed. Machines come from the same profiles in
//! `qemu/` that `plinth run` uses.
//!
//! The harness's one unsafe call is `setns(2)` in [`NetNs::enter`] (std has no wrapper);
//! everything else is safe Rust.
#![deny(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use plinth::machine::{Line, Machine, Outcome};
use plinth::profile::{Accel, LaunchOptions, Profile};
pub use plinth_exit::ExitCode;

/// Longest a test waits for one expected line. Generous: CI has 2 cores under TCG.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// The kernel ELF, built on first use (the build installs the Rust target if missing).
pub fn kernel() -> &'static PathBuf {
    static KERNEL: OnceLock<PathBuf> = OnceLock::new();
    KERNEL.get_or_init(|| plinth::build::build_kernel(true).unwrap_or_else(|e| panic!("{e}")))
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
    /// Attach the NIC to this namespace's tap instead (see [`NetNs`]).
    pub netns: Option<(String, String)>,
    /// The NIC's MAC ([`NIC_MAC`] unless several runtimes share a segment).
    pub mac: [u8; 6],
}

impl Default for Boot {
    fn default() -> Self {
        Boot {
            profile: "q35",
            memory_mib: 128,
            append: String::new(),
            disk: None,
            nic: false,
            netns: None,
            mac: NIC_MAC,
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

    /// Starts QEMU (installing the profile's QEMU first if it is missing).
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
                mac: self.mac,
                api_host_port: free_port(),
                api_port: plinth_cmdline::parse(&self.append).options.api_port,
            }),
            tap: self.netns.as_ref().map(|(_, tap)| plinth::profile::Tap {
                ifname: tap.clone(),
                mac: self.mac,
            }),
            netdev: None,
            netns: self.netns.as_ref().map(|(ns, _)| ns.clone()),
            initrd: None,
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

    /// Waits until a line containing `needle` has arrived, wherever it is in the
    /// transcript; unlike [`Runtime::expect_line`] it moves no cursor, so lines a test
    /// waits for next may come before it.
    pub fn expect_seen(&mut self, needle: &str) {
        let deadline = std::time::Instant::now() + LINE_TIMEOUT;
        while !self.machine.lines().iter().any(|l| l.text.contains(needle)) {
            if std::time::Instant::now() > deadline {
                self.fail(&format!(
                    "no line containing {needle:?} within {LINE_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the runtime has brought the appliance up (the `boot: after ready`
    /// line, after the partitions) and its API answers `/api/v1/health`. The API comes up
    /// before the catalog and the partitions, so their lines may come before or after
    /// lines a test waits for: both are looked for in the whole transcript.
    pub fn expect_api(&mut self) -> SocketAddr {
        self.expect_seen("api: listening");
        self.expect_seen("boot: after ready");
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

/// A network namespace whose tap device the runtime's NIC is plugged into: Linux's own
/// network stack on the other end of a real Ethernet segment (no QEMU user network in
/// between). The host side is 192.168.77.1/24. Deleted on drop. Needs root (CI runs as
/// root) and `ip` (iproute2, installed if missing).
pub struct NetNs {
    pub name: String,
    pub tap: String,
}

/// The namespace side's address; the runtime gets another in 192.168.77.0/24.
pub const NETNS_HOST_IP: &str = "192.168.77.1";

impl NetNs {
    pub fn create() -> NetNs {
        plinth::setup::ensure(&[plinth::setup::IP]).unwrap_or_else(|e| panic!("{e}"));
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pid = std::process::id();
        let ns = NetNs {
            name: format!("plinth-{pid}-{n}"),
            // Interface names are at most 15 bytes.
            tap: format!("pl{}t{n}", pid % 100_000),
        };
        let out = std::process::Command::new("ip")
            .args(["netns", "add", &ns.name])
            .output()
            .expect("run ip (iproute2)");
        assert!(
            out.status.success(),
            "cannot create network namespace {} (needs root): {}",
            ns.name,
            String::from_utf8_lossy(&out.stderr)
        );
        ns
    }

    /// What [`Boot::netns`] takes.
    pub fn attach(&self) -> Option<(String, String)> {
        Some((self.name.clone(), self.tap.clone()))
    }

    /// Runs `args` inside the namespace and returns its output.
    pub fn exec(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("run ip netns exec")
    }

    /// Gives the tap QEMU created the host address and brings it up; waits for it to
    /// appear (QEMU creates it while starting).
    pub fn configure(&self) {
        let deadline = std::time::Instant::now() + LINE_TIMEOUT;
        while !self
            .exec(&["ip", "link", "show", &self.tap])
            .status
            .success()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "QEMU did not create tap {} in {}",
                self.tap,
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let addr = format!("{NETNS_HOST_IP}/24");
        for cmd in [
            &["ip", "addr", "add", addr.as_str(), "dev", self.tap.as_str()][..],
            &["ip", "link", "set", self.tap.as_str(), "up"][..],
            &["ip", "link", "set", "lo", "up"][..],
        ] {
            let out = self.exec(cmd);
            assert!(
                out.status.success(),
                "{cmd:?} in {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Adds another address in 192.168.77.0/24 on the namespace's side (after
    /// [`configure`](Self::configure)): clients bound to it are another peer to the
    /// runtime.
    pub fn add_address(&self, ip: &str) {
        let addr = format!("{ip}/24");
        let out = self.exec(&["ip", "addr", "add", &addr, "dev", &self.tap]);
        assert!(
            out.status.success(),
            "adding {addr} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Moves the calling thread into the namespace: the sockets it opens from then on are
    /// the namespace's, so the test itself talks over the segment. Network namespaces
    /// belong to threads, not processes: call it on a thread spawned for the purpose,
    /// which stays in the namespace until it ends.
    #[allow(unsafe_code, reason = "setns(2), the harness's one unsafe call")]
    pub fn enter(&self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let ns = std::fs::File::open(format!("/run/netns/{}", self.name))?;
        // SAFETY: setns(2) only reads the descriptor, which stays open for the call.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// The example agents (`hostshim/examples`), built for the runtime once per test binary.
pub fn agents() -> &'static [(&'static str, PathBuf)] {
    static AGENTS: OnceLock<Vec<(&'static str, PathBuf)>> = OnceLock::new();
    AGENTS.get_or_init(|| plinth::build::build_agents(true).unwrap_or_else(|e| panic!("{e}")))
}

pub use plinth::image::TestAgent;

/// [`plinth::image::build_with_examples`] with the agents built once per test binary.
pub fn build_appliance(
    dir: &std::path::Path,
    spec: &str,
    policies: &[(&str, &str)],
    agents: &[TestAgent<'_>],
) -> PathBuf {
    plinth::image::build_with_examples(dir, spec, policies, agents, self::agents())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Boots an appliance image (256 MiB, a NIC on QEMU's user network) and waits for its
/// catalog to be verified and the API to answer.
pub fn boot_appliance(image: PathBuf) -> (Runtime, SocketAddr) {
    let mut rt = Boot {
        disk: Some(plinth::profile::Disk {
            image,
            serial: "appliance".into(),
        }),
        nic: true,
        memory_mib: 256,
        ..Boot::default()
    }
    .start();
    rt.expect_ready();
    rt.expect_line("catalog: verified appliance");
    let addr = rt.expect_api();
    (rt, addr)
}

/// One API request with an optional JSON body: its status and its body as JSON (null
/// when it is not JSON). Panics, naming the request, if the API does not answer.
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let r = plinth::api::request(addr, method, path, body.map(str::as_bytes), API_TIMEOUT)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, v)
}

/// How long [`call`] waits for an answer.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);
