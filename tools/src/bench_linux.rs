//! Linux baselines for the benchmarks: the same workload run in the Linux test guest
//! ([`crate::linux_guest`]) on the same QEMU command line, timed inside the guest as the
//! runtime times its own.
//!
//! Owns the baseline of `plinth bench blk` ([`LinuxBlk`]): the guest program
//! (`tools/linux-guest/blkwrite.c`, compiled once with [`static_program`]), the guest's
//! script, and the parsing of the line the program prints. The comparison and the
//! report are `bench::blk`'s.

use std::time::Duration;

use serde::Serialize;

use crate::bench::{BenchError, FlushedWrite};
use crate::linux_guest::{Init, LinuxGuest, LinuxGuestError, static_program};
use crate::profile::{LaunchOptions, Profile};

/// The guest program's source.
pub const BLKWRITE_SOURCE: &str = include_str!("../linux-guest/blkwrite.c");
/// Bytes per write of the Linux baseline: the 1 MiB the figure was measured with.
pub const REQUEST_BYTES: u64 = 1 << 20;
/// The disk as the guest names it (the only virtio-blk device).
pub const DEVICE: &str = "/dev/vda";
/// The modules the guest needs to see a virtio-blk PCI disk (the cloud kernel has
/// virtio as modules).
pub const MODULES: [&str; 2] = ["virtio_pci", "virtio_blk"];

/// Whether the baseline can run on `profile`: Debian's cloud kernel finds a virtio disk
/// on PCI only (it lacks `VIRTIO_MMIO_CMDLINE_DEVICES`, and `microvm` with `acpi=off`
/// describes its virtio-mmio devices no other way; the kernel hangs there without a
/// ready line), so the profile must attach the disk as `virtio-blk-pci`.
pub fn check_profile(profile: &Profile) -> Result<(), String> {
    if profile
        .disk_args
        .iter()
        .any(|a| a.starts_with("virtio-blk-pci"))
    {
        return Ok(());
    }
    Err(format!(
        "the Linux baseline needs a profile that attaches its disk as virtio-blk-pci \
         (Debian's cloud kernel finds no virtio-mmio devices); profile {} does not: \
         use --no-linux, or a PCI profile such as q35",
        profile.name
    ))
}

/// What the program printed: `blkwrite: device=… bytes=… request=… in_flight=1
/// write_ns=… flush_ns=… clocksource=…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlkWriteLine {
    pub device: String,
    pub bytes: u64,
    pub request: u64,
    pub in_flight: u64,
    pub write_ns: u64,
    pub flush_ns: u64,
    /// The guest kernel's clock source the times come from (`tsc`, `hpet`, …).
    pub clocksource: String,
}

impl BlkWriteLine {
    /// As the runtime's figures are reported.
    pub fn figures(&self) -> FlushedWrite {
        FlushedWrite::from_ns(self.bytes, self.write_ns, self.flush_ns)
    }
}

/// Reads the program's line (anywhere in a serial line: the kernel may print before it
/// on the same console). `None` for its error line or anything malformed.
pub fn parse_blkwrite_line(line: &str) -> Option<BlkWriteLine> {
    let rest = &line[line.find("blkwrite: ")? + "blkwrite: ".len()..];
    let field = |key: &str| -> Option<&str> {
        rest.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    };
    let num = |key: &str| -> Option<u64> { field(key)?.parse().ok() };
    let l = BlkWriteLine {
        device: field("device")?.to_owned(),
        bytes: num("bytes")?,
        request: num("request")?,
        in_flight: num("in_flight")?,
        write_ns: num("write_ns")?,
        flush_ns: num("flush_ns")?,
        clocksource: field("clocksource")?.to_owned(),
    };
    (l.bytes > 0 && l.request > 0 && l.write_ns > 0).then_some(l)
}

/// What the baseline runs, in words, for the report.
pub fn workload(region_mib: u64) -> String {
    format!(
        "{region_mib} MiB in {} MiB O_DIRECT pwrite()s from offset 0, 1 in flight (QD1), then fdatasync, on {DEVICE}; timed inside the guest with CLOCK_MONOTONIC",
        REQUEST_BYTES >> 20
    )
}

/// The guest's work: load the virtio modules, check the disk is there, run `program`
/// (the compiled `blkwrite`) over `region_mib`.
pub fn init(program: &[u8], region_mib: u64) -> Init {
    let script = format!(
        "[ -b {DEVICE} ] || {{ echo \"blkwrite: error: no {DEVICE} (no virtio-blk disk found)\"; exit 1; }}\n\
         /bin/blkwrite {DEVICE} {region_mib}\n"
    );
    MODULES
        .iter()
        .fold(Init::script(script), |init, m| init.module(m))
        .file("/bin/blkwrite", 0o755, program.to_vec())
}

/// One Linux run's figures.
#[derive(Clone, Debug)]
pub struct LinuxBlkRun {
    pub line: BlkWriteLine,
    pub qemu_args: Vec<String>,
}

/// The Linux guest and its program, ready to run the `bench blk` baseline.
pub struct LinuxBlk {
    pub guest: LinuxGuest,
    program: Vec<u8>,
}

impl LinuxBlk {
    /// Fetches the guest (once, cached) and compiles the program (once per source).
    pub fn prepare() -> Result<LinuxBlk, LinuxGuestError> {
        let guest = LinuxGuest::fetch()?;
        let path = static_program("blkwrite", BLKWRITE_SOURCE)?;
        let program = std::fs::read(&path).map_err(|error| LinuxGuestError::Io {
            path: path.clone(),
            error,
        })?;
        Ok(LinuxBlk { guest, program })
    }

    /// What the guest runs for `region_mib`.
    pub fn init(&self, region_mib: u64) -> Init {
        init(&self.program, region_mib)
    }

    /// Boots the guest on `profile` with `opts` (the disk attached as for the runtime)
    /// and runs the baseline once.
    pub fn run(
        &self,
        profile: &Profile,
        opts: &LaunchOptions,
        region_mib: u64,
        run: usize,
    ) -> Result<LinuxBlkRun, BenchError> {
        let linux = |error| BenchError::Linux { run, error };
        let mut g = self
            .guest
            .boot(profile, opts, &self.init(region_mib))
            .map_err(linux)?;
        g.wait_ready(Duration::from_secs(120)).map_err(linux)?;
        let line = g
            .wait_for(Duration::from_secs(600), |l| l.contains("blkwrite: "))
            .map_err(linux)?;
        let parsed = parse_blkwrite_line(&line.text).ok_or_else(|| BenchError::Figures {
            run,
            line: line.text.clone(),
        })?;
        let status = g.wait_exit(Duration::from_secs(60)).map_err(linux)?;
        if status != 0 {
            return Err(BenchError::Figures {
                run,
                line: format!("{} (the guest script ended with {status})", line.text),
            });
        }
        Ok(LinuxBlkRun {
            line: parsed,
            qemu_args: g.qemu_args().to_vec(),
        })
    }
}

/// The Linux side of a `bench blk` report.
#[derive(Clone, Debug, Serialize)]
pub struct LinuxBlkReport {
    /// The kernel package and version the guest ran.
    pub kernel: String,
    pub workload: String,
    /// The guest kernel's clock source (of the last run).
    pub clocksource: String,
    #[serde(flatten)]
    pub figures: crate::bench::FlushedWriteSpread,
    pub samples: Vec<FlushedWrite>,
    /// The QEMU command line of the last Linux run.
    pub qemu_args: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_line_is_parsed_into_figures() {
        let line = "blkwrite: device=/dev/vda bytes=268435456 request=1048576 in_flight=1 \
                    write_ns=200000000 flush_ns=56000000 clocksource=tsc";
        let l = parse_blkwrite_line(line).unwrap();
        assert_eq!(l.device, "/dev/vda");
        assert_eq!((l.bytes, l.request, l.in_flight), (268435456, 1048576, 1));
        assert_eq!((l.write_ns, l.flush_ns), (200_000_000, 56_000_000));
        assert_eq!(l.clocksource, "tsc");
        let f = l.figures();
        assert_eq!(f.seq_write_mib_s, 1280.0);
        assert_eq!(f.flush_ms, 56.0);
        assert_eq!(f.seq_write_flushed_mib_s, 256.0 / 0.256);
        // After kernel output on the same console line.
        let joined = format!("[    2.1] random: crng init done{line}");
        assert_eq!(parse_blkwrite_line(&joined), Some(l));
    }

    #[test]
    fn error_and_malformed_lines_are_not_figures() {
        let good = "blkwrite: device=/dev/vda bytes=4194304 request=1048576 in_flight=1 \
                    write_ns=5000000 flush_ns=1000000 clocksource=hpet";
        assert!(parse_blkwrite_line(good).is_some());
        for bad in [
            "blkwrite: error: /dev/vda: No such file or directory",
            "blkwrite: error: no /dev/vda (no virtio-blk disk found)",
            "",
            &good.replace("write_ns=5000000", "write_ns=0"),
            &good.replace("bytes=4194304", "bytes=0"),
            &good.replace("flush_ns=1000000", "flush_ns=-1"),
            &good.replace(" clocksource=hpet", ""),
            &good.replace("bytes=", "byte="),
        ] {
            assert_eq!(parse_blkwrite_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_baseline_runs_on_pci_profiles_only() {
        assert_eq!(check_profile(&Profile::load("q35").unwrap()), Ok(()));
        let err = check_profile(&Profile::load("microvm").unwrap()).unwrap_err();
        assert!(
            err.contains("profile microvm") && err.contains("--no-linux"),
            "{err}"
        );
    }

    #[test]
    fn the_script_checks_for_the_disk_and_runs_the_program() {
        let init = init(b"\x7fELF", 64);
        assert_eq!(init.modules, ["virtio_pci", "virtio_blk"]);
        assert!(init.script.contains("[ -b /dev/vda ]"), "{}", init.script);
        assert!(
            init.script.contains("/bin/blkwrite /dev/vda 64\n"),
            "{}",
            init.script
        );
        assert_eq!(init.files[0].path, "/bin/blkwrite");
        assert_eq!(init.files[0].mode, 0o755);
    }
}
