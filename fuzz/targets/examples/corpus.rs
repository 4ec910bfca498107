//! Writes the generated seed corpora, `fuzz/corpus/<target>/gen-*`, from the crates' own
//! builders, so the inputs get past the checksums and signatures that random bytes never
//! pass: catalogs sealed with their SHA-256 header (and their bare payloads, which the
//! catalog target re-seals), agent containers signed with the key the targets trust, GPT
//! images with correct CRC-32s, ELF agents the loader accepts, the example appliance's
//! spec and policy files and the examples of docs/policies.md, HTTP scripts, PVH
//! start_info blobs, PCI config spaces with placed BARs, partition commands, switch
//! traffic.
//!
//!     cargo run -p plinth-fuzz-targets --example corpus
//!
//! Deterministic (fixed keys, GUIDs and data; ed25519 signs deterministically), so a
//! second run changes nothing. It replaces every `gen-*` file and leaves other files
//! alone (inputs libFuzzer found, regression inputs). Each input is run through its
//! target as it is written, and the ones meant to be accepted must be: a format change
//! that breaks them fails here, not silently in the fuzzing.
//!
//! This example owns the generated files only; what each target does with them is
//! `plinth_fuzz_targets`'s, and mutating them is the driver's (tests/fuzz.rs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plinth_abi::{IMAGE_BASE, IMAGE_END};
use plinth_bridge::Mac;
use plinth_bridge::fuzzing::{
    ADD_PORT, AGE, DELIVERED, MAC_A1, MAC_B, MAC_MGMT, MAC_ROUTER, QUEUE_FULL, REMOVE_PORT,
    SET_MODE, WAIT, command_record, ethernet, frame_record,
};
use plinth_catalog::{CATALOG_PARTITION_NAME, CATALOG_PARTITION_TYPE, DATA_PARTITION_TYPE};
use plinth_container::{PUBLIC_KEY_PREFIX, SECRET_KEY_PREFIX, parse_key_file, public_key};
use plinth_control::{AgentRef, AttachDisk, Command, CreatePartition, NicSpec, Resize};
use plinth_fuzz_targets::{
    POLICY_AGENTS, POLICY_MACHINE, POLICY_PARTITIONS, TARGETS, TRUSTED_SEED, Verdict,
};
use plinth_gpt::fuzzing::{FIX_BACKUP, FIX_PRIMARY, PROTECTIVE_MBR};
use plinth_gpt::{Guid, Layout, Partition, SECTOR};
use plinth_policy::appliance::{AgentSource, Appliance};
use plinth_policy::doc::At;

/// What an input is for: to get deep (it must be accepted), or a near miss.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Accepted,
    Refused,
    /// Either; the input is there for its shape (a real file under a world it does not
    /// match, a truncation).
    Any,
}

/// Why the corpus could not be written.
#[derive(Debug)]
enum CorpusError {
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    Unexpected {
        target: String,
        file: String,
        got: Verdict,
    },
    Build {
        what: String,
        message: String,
    },
}

impl std::fmt::Display for CorpusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CorpusError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            CorpusError::Unexpected { target, file, got } => {
                write!(
                    f,
                    "{target}/{file}: the target says {got:?}, not what it is for"
                )
            }
            CorpusError::Build { what, message } => write!(f, "building {what}: {message}"),
        }
    }
}

fn build_err(what: &str) -> impl FnOnce(String) -> CorpusError + '_ {
    move |message| CorpusError::Build {
        what: what.into(),
        message,
    }
}

/// The corpus folder being written.
struct Corpus {
    root: PathBuf,
    /// Files written per target, for the summary.
    counts: BTreeMap<&'static str, (usize, usize)>,
    /// Inputs the target did not treat as they are meant to be: all are reported.
    unexpected: Vec<CorpusError>,
}

impl Corpus {
    /// Clears the generated files of every target.
    fn open(root: PathBuf) -> Result<Corpus, CorpusError> {
        for t in &TARGETS {
            let dir = root.join(t.name);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            for e in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let path = e.map_err(io(&dir))?.path();
                let generated = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("gen-"));
                if generated {
                    std::fs::remove_file(&path).map_err(io(&path))?;
                }
            }
        }
        Ok(Corpus {
            root,
            counts: BTreeMap::new(),
            unexpected: Vec::new(),
        })
    }

    /// Writes `gen-<name>` for `target` after running it through the target.
    fn add(
        &mut self,
        target: &'static str,
        name: &str,
        data: &[u8],
        expect: Expect,
    ) -> Result<(), CorpusError> {
        let t = TARGETS
            .iter()
            .find(|t| t.name == target)
            .unwrap_or_else(|| panic!("no target {target}"));
        let file = format!("gen-{name}");
        let got = (t.run)(data);
        let ok = match expect {
            Expect::Accepted => got == Verdict::Accepted,
            Expect::Refused => got == Verdict::Refused,
            Expect::Any => true,
        };
        if !ok {
            self.unexpected.push(CorpusError::Unexpected {
                target: target.into(),
                file,
                got,
            });
            return Ok(());
        }
        let path = self.root.join(target).join(&file);
        std::fs::write(&path, data).map_err(io(&path))?;
        let count = self.counts.entry(target).or_default();
        count.0 += 1;
        count.1 += usize::from(got == Verdict::Accepted);
        Ok(())
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CorpusError + '_ {
    move |error| CorpusError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_text(path: &str) -> Result<String, CorpusError> {
    let p = repo_root().join(path);
    std::fs::read_to_string(&p).map_err(io(&p))
}

// ---- cmdline -------------------------------------------------------------------------

fn cmdline(c: &mut Corpus) -> Result<(), CorpusError> {
    let valid = [
        ("empty", ""),
        ("log", "log=debug"),
        ("log-trace-selftest", "log=trace selftest=heap"),
        (
            "selftests",
            "selftest=frames,heap,clock,pagefault,gpfault,ud,writetext,stackoverflow,panic,oom",
        ),
        ("static-ip", "ip=10.0.2.15/24 gw=10.0.2.2 api_port=8080"),
        ("bench", "bench"),
        ("bench-on", "bench=on log=warn"),
        ("bench-off", "bench=off"),
        ("mmio", "virtio_mmio.device=4K@0xd0000000:5"),
        (
            "mmio-several",
            "virtio_mmio.device=512@0xfeb00000:12 virtio_mmio.device=1M@4096:13:2",
        ),
        (
            "everything",
            "log=info selftest=frames,clock ip=192.168.1.20/16 gw=192.168.1.1 api_port=65535 \
             bench=on virtio_mmio.device=4K@0xd0000000:5",
        ),
        ("spaces", "  log=error   api_port=1  "),
        ("other-whitespace", "log=debug\tselftest=heap\nbench\r"),
    ];
    for (name, text) in valid {
        c.add("cmdline", name, text.as_bytes(), Expect::Accepted)?;
    }
    let invalid: [(&str, &[u8]); 9] = [
        ("bad-log", b"log=loud"),
        ("bad-ip", b"ip=300.1.1.1/33 gw=1.2.3"),
        ("bad-port", b"api_port=0 api_port=65536"),
        ("bad-selftest", b"selftest=heap,,nope"),
        ("unknown", b"console=ttyS0 quiet foo=bar"),
        ("bad-mmio", b"virtio_mmio.device=@:"),
        (
            "many-problems",
            b"a b c d e f g h i j k log= ip= gw= api_port= bench=maybe",
        ),
        ("not-utf8", b"log=debug \xff\xfe selftest=heap"),
        ("nul", b"log=debug\0selftest=heap"),
    ];
    for (name, text) in invalid {
        c.add("cmdline", name, text, Expect::Refused)?;
    }
    let long = "log=debug ".repeat(420);
    c.add("cmdline", "too-long", long.as_bytes(), Expect::Refused)?;
    Ok(())
}

// ---- start_info ----------------------------------------------------------------------

const START_INFO_MAGIC: u32 = plinth_boot::pvh::START_INFO_MAGIC;

/// Memory for the start_info target: 8 bytes naming the start_info's address, then memory
/// from address 0 holding the start_info at `at`, the memory map right after it, then the
/// command line (NUL-terminated unless `terminate` is false).
struct StartInfo<'a> {
    at: u64,
    version: u32,
    magic: u32,
    rsdp: u64,
    entries: &'a [(u64, u64, u32)],
    /// Entries the header claims (default: `entries.len()`).
    claimed: Option<u32>,
    cmdline: Option<&'a [u8]>,
    terminate: bool,
}

impl StartInfo<'_> {
    fn bytes(&self) -> Vec<u8> {
        let memmap = self.at + 56;
        let cmdline = memmap + 24 * self.entries.len() as u64;
        let mut mem = vec![0u8; self.at as usize];
        mem.extend_from_slice(&self.magic.to_le_bytes());
        mem.extend_from_slice(&self.version.to_le_bytes());
        mem.extend_from_slice(&0u32.to_le_bytes()); // flags
        mem.extend_from_slice(&0u32.to_le_bytes()); // nr_modules
        mem.extend_from_slice(&0u64.to_le_bytes()); // modlist_paddr
        let cmdline_paddr = if self.cmdline.is_some() { cmdline } else { 0 };
        mem.extend_from_slice(&cmdline_paddr.to_le_bytes());
        mem.extend_from_slice(&self.rsdp.to_le_bytes());
        mem.extend_from_slice(&memmap.to_le_bytes());
        let claimed = self.claimed.unwrap_or(self.entries.len() as u32);
        mem.extend_from_slice(&claimed.to_le_bytes());
        mem.extend_from_slice(&0u32.to_le_bytes()); // reserved
        for &(base, size, kind) in self.entries {
            mem.extend_from_slice(&base.to_le_bytes());
            mem.extend_from_slice(&size.to_le_bytes());
            mem.extend_from_slice(&kind.to_le_bytes());
            mem.extend_from_slice(&0u32.to_le_bytes());
        }
        if let Some(text) = self.cmdline {
            mem.extend_from_slice(text);
            if self.terminate {
                mem.push(0);
            }
        }
        let mut out = self.at.to_le_bytes().to_vec();
        out.extend_from_slice(&mem);
        out
    }
}

fn start_info(c: &mut Corpus) -> Result<(), CorpusError> {
    const USABLE: u32 = 1;
    const RESERVED: u32 = 2;
    const ACPI: u32 = 3;
    // What QEMU's PVH boot gives a 128 MiB guest.
    let qemu: &[(u64, u64, u32)] = &[
        (0, 0x9fc00, USABLE),
        (0x9fc00, 0x400, RESERVED),
        (0xf0000, 0x10000, RESERVED),
        (0x10_0000, 0x7ee_0000, USABLE),
        (0x7fe_0000, 0x2_0000, RESERVED),
        (0xfffc_0000, 0x4_0000, RESERVED),
    ];
    let base = StartInfo {
        at: 0,
        version: 1,
        magic: START_INFO_MAGIC,
        rsdp: 0,
        entries: qemu,
        claimed: None,
        cmdline: Some(b"log=debug selftest=heap"),
        terminate: true,
    };
    let overlapping: &[(u64, u64, u32)] = &[
        (0x1000, 0x10_0000, USABLE),
        (0x8_0000, 0x1000, RESERVED),
        (0x10_0000, 0x1000_0000, USABLE),
        (0x10_0800, 0x1000, ACPI),
        (0x1234, 0x7777, USABLE),
        (u64::MAX - 0xfff, 0x1000, USABLE),
        (0x2000_0000, 0, USABLE),
    ];
    let many: Vec<(u64, u64, u32)> = (0..1030u64)
        .map(|i| {
            (
                i * 0x20_0000,
                0x10_0000 + (i % 7) * 0x1000,
                1 + (i % 5) as u32,
            )
        })
        .collect();
    let long_cmdline = b"log=debug ".repeat(500);
    let variants: Vec<(&str, StartInfo<'_>, Expect)> = vec![
        ("qemu", StartInfo { ..base }, Expect::Accepted),
        (
            "qemu-rsdp-at-64",
            StartInfo {
                at: 64,
                rsdp: 0xf_52e0,
                ..base
            },
            Expect::Accepted,
        ),
        (
            "no-cmdline",
            StartInfo {
                cmdline: None,
                ..base
            },
            Expect::Accepted,
        ),
        (
            "one-entry",
            StartInfo {
                entries: &[(0x10_0000, 0x400_0000, USABLE)],
                cmdline: Some(b""),
                ..base
            },
            Expect::Accepted,
        ),
        (
            "overlapping",
            StartInfo {
                entries: overlapping,
                ..base
            },
            Expect::Accepted,
        ),
        (
            "clipped",
            StartInfo {
                entries: &many,
                ..base
            },
            Expect::Accepted,
        ),
        (
            "cmdline-not-utf8",
            StartInfo {
                cmdline: Some(b"log=debug \xc3\x28 bench"),
                ..base
            },
            Expect::Accepted,
        ),
        (
            "cmdline-unterminated",
            StartInfo {
                cmdline: Some(b"log=debug bench"),
                terminate: false,
                ..base
            },
            Expect::Accepted,
        ),
        (
            "cmdline-long",
            StartInfo {
                cmdline: Some(&long_cmdline),
                ..base
            },
            Expect::Accepted,
        ),
        (
            "version-0",
            StartInfo { version: 0, ..base },
            Expect::Refused,
        ),
        (
            "bad-magic",
            StartInfo {
                magic: START_INFO_MAGIC ^ 0x80,
                ..base
            },
            Expect::Refused,
        ),
        (
            "no-entries",
            StartInfo {
                entries: &[],
                ..base
            },
            Expect::Refused,
        ),
        (
            "entries-past-memory",
            StartInfo {
                claimed: Some(7),
                cmdline: None,
                ..base
            },
            Expect::Refused,
        ),
    ];
    for (name, s, expect) in variants {
        c.add("start_info", name, &s.bytes(), expect)?;
    }
    Ok(())
}

// ---- http_connection -----------------------------------------------------------------

/// A script for `plinth_http::fuzzing::connection`: a limits byte, then operations.
struct Script(Vec<u8>);

impl Script {
    /// The default limits, or the tiny ones every short input can reach.
    fn new(tiny: bool) -> Script {
        Script(vec![u8::from(tiny)])
    }

    /// Delivers `bytes` in chunks of at most `chunk` (1 ..= 256) bytes.
    fn send_in(mut self, bytes: &[u8], chunk: usize) -> Script {
        for piece in bytes.chunks(chunk.clamp(1, 256)) {
            self.0.push(0);
            self.0.push((piece.len() - 1) as u8);
            self.0.extend_from_slice(piece);
        }
        self
    }

    fn send(self, bytes: &[u8]) -> Script {
        self.send_in(bytes, 256)
    }

    /// Advances the clock by `step` times 1, 10, 100 or 1000 ms (`scale` 0 ..= 3).
    fn tick(mut self, step: u8, scale: u8) -> Script {
        self.0.push(4 | (scale & 3) << 3);
        self.0.push(step);
        self
    }

    /// The client reads `n * 97` bytes of output.
    fn read(mut self, n: u8) -> Script {
        self.0.push(6);
        self.0.push(n);
        self
    }

    /// The client reads all output.
    fn read_all(mut self) -> Script {
        self.0.push(7);
        self
    }
}

fn http_connection(c: &mut Corpus) -> Result<(), CorpusError> {
    let get = b"GET /api/v1/health HTTP/1.1\r\nHost: plinth\r\n\r\n";
    let metrics = b"GET /metrics HTTP/1.1\r\nHost: plinth\r\nAccept: text/plain\r\n\r\n";
    let create = b"POST /api/v1/partitions HTTP/1.1\r\nHost: plinth\r\n\
        Content-Type: application/json\r\nContent-Length: 35\r\n\r\n\
        {\"name\":\"tenant-c\",\"memory_mib\":64}";
    let close = b"GET /api/v1/partitions?verbose=1 HTTP/1.1\r\nHost: plinth\r\n\
        Connection: close\r\n\r\n";
    let upgrade = b"GET /up HTTP/1.1\r\nHost: plinth\r\nConnection: Upgrade\r\n\
        Upgrade: plinth-bench\r\n\r\n";
    let expect = b"PUT /api/v1/partitions/mgmt/disk HTTP/1.1\r\nHost: plinth\r\n\
        Content-Length: 18\r\n\
        Expect: 100-continue\r\n\r\n";
    let pipelined = [&get[..], &metrics[..], &create[..], &close[..]].concat();

    let scripts: Vec<(&str, Script, Expect)> = vec![
        (
            "get",
            Script::new(false).send(get).read_all(),
            Expect::Accepted,
        ),
        (
            "get-tiny",
            Script::new(true).send(get).read_all(),
            Expect::Accepted,
        ),
        (
            "post-json",
            Script::new(false).send(create).read_all(),
            Expect::Accepted,
        ),
        (
            "pipelined",
            Script::new(false).send(&pipelined).read(3).read_all(),
            Expect::Accepted,
        ),
        (
            "byte-by-byte",
            Script::new(true).send_in(get, 1).read_all(),
            Expect::Accepted,
        ),
        (
            "keep-alive-idle",
            Script::new(true)
                .send(get)
                .read_all()
                .tick(100, 0)
                .send(metrics)
                .read_all()
                .tick(30, 1)
                .send(get),
            Expect::Accepted,
        ),
        (
            "close",
            Script::new(false).send(close).read_all().send(get),
            Expect::Accepted,
        ),
        (
            "upgrade",
            Script::new(false)
                .send(upgrade)
                .send(b"\x00\x01raw benchmark bytes")
                .read_all(),
            Expect::Accepted,
        ),
        (
            "upgrade-pipelined",
            Script::new(true).send(&[&upgrade[..], &get[..]].concat()),
            Expect::Accepted,
        ),
        (
            "expect-continue",
            Script::new(false)
                .send(expect)
                .read_all()
                .tick(10, 0)
                .send(b"{\"extent\":\"mgmt\"}\n")
                .read_all(),
            Expect::Accepted,
        ),
        (
            "slow-body",
            Script::new(true)
                .send_in(&create[..create.len() - 10], 16)
                .tick(9, 1)
                .send(&create[create.len() - 10..]),
            Expect::Any,
        ),
        (
            "head-timeout",
            Script::new(true)
                .send(b"GET /api/v1/health HTTP/1.1\r\nHo")
                .tick(60, 0)
                .send(b"st: x\r\n\r\n"),
            Expect::Any,
        ),
        (
            "idle-timeout",
            Script::new(true).send(get).read_all().tick(3, 2).send(get),
            Expect::Accepted,
        ),
        (
            "unread-output",
            Script::new(true)
                .send(&get.repeat(12))
                .tick(1, 0)
                .read(2)
                .send(get),
            Expect::Accepted,
        ),
        (
            "http10",
            Script::new(false).send(b"GET / HTTP/1.0\r\n\r\n"),
            Expect::Accepted,
        ),
        (
            "options-star",
            Script::new(false).send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"),
            Expect::Accepted,
        ),
        (
            "head-too-large",
            Script::new(true).send(
                &[
                    &b"GET / HTTP/1.1\r\n"[..],
                    &b"X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(5),
                    b"\r\n",
                ]
                .concat(),
            ),
            Expect::Refused,
        ),
        (
            "chunked",
            Script::new(false).send(
                b"POST /api/v1/partitions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5\r\nhello\r\n0\r\n\r\n",
            ),
            Expect::Any,
        ),
        (
            "bad-request",
            Script::new(false).send(b"GET\r\n\r\nPOST / HTTP/9.9\r\n\r\n"),
            Expect::Refused,
        ),
        (
            "bare-lf",
            Script::new(false).send(b"GET / HTTP/1.1\nHost: x\n\n"),
            Expect::Any,
        ),
        (
            "two-lengths",
            Script::new(false)
                .send(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
            Expect::Any,
        ),
    ];
    for (name, s, expect) in scripts {
        c.add("http_connection", name, &s.0, expect)?;
    }
    Ok(())
}

// ---- pci_capabilities ----------------------------------------------------------------

/// A config space with a capability list, and the BAR groups that follow it.
struct ConfigSpace {
    space: [u8; 256],
    /// Offset of the last capability added, to link the next one.
    last: Option<u8>,
    bars: Vec<u8>,
}

impl ConfigSpace {
    fn new() -> ConfigSpace {
        let mut space = [0u8; 256];
        space[0..2].copy_from_slice(&0x1af4u16.to_le_bytes());
        space[2..4].copy_from_slice(&0x1042u16.to_le_bytes());
        space[6] = 0x10; // status: capability list present
        ConfigSpace {
            space,
            last: None,
            bars: Vec::new(),
        }
    }

    /// Appends capability bytes (id first; the next pointer is filled in) at `at`, cut
    /// at the end of config space.
    fn cap(mut self, at: u8, bytes: &[u8]) -> ConfigSpace {
        let at_usize = usize::from(at);
        let n = bytes.len().min(256 - at_usize);
        self.space[at_usize..at_usize + n].copy_from_slice(&bytes[..n]);
        self.space[at_usize + 1] = 0;
        match self.last {
            None => self.space[0x34] = at,
            Some(prev) => self.space[usize::from(prev) + 1] = at,
        }
        self.last = Some(at);
        self
    }

    /// A virtio vendor capability: `cfg_type`, BAR, offset and length (and, for a notify
    /// capability, the multiplier).
    fn virtio(
        self,
        at: u8,
        cfg_type: u8,
        bar: u8,
        offset: u32,
        len: u32,
        mult: Option<u32>,
    ) -> Self {
        let mut b = vec![
            0x09,
            0,
            if mult.is_some() { 20 } else { 16 },
            cfg_type,
            bar,
            0,
            0,
            0,
        ];
        b.extend_from_slice(&offset.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
        if let Some(m) = mult {
            b.extend_from_slice(&m.to_le_bytes());
        }
        self.cap(at, &b)
    }

    /// An MSI-X capability: `vectors` entries, table and PBA in `bar` at the offsets.
    fn msix(self, at: u8, vectors: u16, bar: u8, table: u32, pba: u32) -> Self {
        let mut b = vec![0x11, 0];
        b.extend_from_slice(&(vectors - 1).to_le_bytes());
        b.extend_from_slice(&(table | u32::from(bar)).to_le_bytes());
        b.extend_from_slice(&(pba | u32::from(bar)).to_le_bytes());
        self.cap(at, &b)
    }

    /// A placed BAR `index` of `1 << (12 + size_log)` bytes at `address`.
    fn bar(mut self, index: u8, address: u64, size_log: u64) -> Self {
        self.bars.push(index);
        self.bars
            .extend_from_slice(&(address | (size_log & 0x3f)).to_le_bytes());
        self
    }

    fn bytes(&self) -> Vec<u8> {
        [&self.space[..], &self.bars].concat()
    }
}

fn pci_capabilities(c: &mut Corpus) -> Result<(), CorpusError> {
    // QEMU's modern virtio-pci layout: MSI-X in BAR 1, the four structures in BAR 4.
    let qemu = || {
        ConfigSpace::new()
            .msix(0x98, 2, 1, 0, 0x800)
            .virtio(0x84, 5, 0, 0, 0, None) // PCI config access: skipped
            .virtio(0x70, 2, 4, 0x3000, 0x1000, Some(4))
            .virtio(0x60, 4, 4, 0x2000, 0x1000, None)
            .virtio(0x50, 3, 4, 0x1000, 0x1000, None)
            .virtio(0x40, 1, 4, 0, 0x1000, None)
            .bar(1, 0xfebd_1000, 0)
            .bar(4, 0xfe00_0000, 2)
    };
    c.add(
        "pci_capabilities",
        "qemu-virtio",
        &qemu().bytes(),
        Expect::Accepted,
    )?;
    c.add(
        "pci_capabilities",
        "msix-only",
        &ConfigSpace::new()
            .msix(0x40, 64, 0, 0x2000, 0x3000)
            .bar(0, 0x8000_0000, 2)
            .bytes(),
        Expect::Accepted,
    )?;
    c.add(
        "pci_capabilities",
        "virtio-high-bar",
        &ConfigSpace::new()
            .virtio(0xf0, 1, 2, 0x10, 0x38, None)
            .bar(2, 0x38_0000_0000, 20)
            .bytes(),
        Expect::Accepted,
    )?;
    c.add(
        "pci_capabilities",
        "table-past-bar",
        &ConfigSpace::new()
            .msix(0x40, 2048, 1, 0xf00, 0xff0)
            .virtio(0x50, 1, 4, 0x3ff0, 0x20, None)
            .bar(1, 0xfebd_1000, 0)
            .bar(4, 0xfe00_0000, 2)
            .bytes(),
        Expect::Refused,
    )?;
    c.add(
        "pci_capabilities",
        "no-bars",
        &qemu().bytes()[..256],
        Expect::Refused,
    )?;
    let mut looped = qemu();
    looped.space[0x99] = 0x40; // MSI-X's next points back at the first capability
    c.add(
        "pci_capabilities",
        "loop",
        &looped.bytes(),
        Expect::Accepted,
    )?;
    let mut into_header = qemu();
    into_header.space[0x34] = 0x10;
    c.add(
        "pci_capabilities",
        "pointer-into-header",
        &into_header.bytes(),
        Expect::Refused,
    )?;
    let mut no_list = qemu();
    no_list.space[6] = 0;
    c.add(
        "pci_capabilities",
        "no-list",
        &no_list.bytes(),
        Expect::Refused,
    )?;
    let mut short_cap = qemu();
    short_cap.space[0x72] = 12; // notify capability too short to hold its fields
    c.add(
        "pci_capabilities",
        "short-notify",
        &short_cap.bytes(),
        Expect::Accepted,
    )?;
    c.add(
        "pci_capabilities",
        "at-the-end",
        &ConfigSpace::new()
            .virtio(0xfc, 3, 4, 0, 4, None)
            .msix(0xf8, 1, 4, 0x100, 0x200)
            .bar(4, 0xfe00_0000, 2)
            .bytes(),
        Expect::Any,
    )?;
    Ok(())
}

// ---- ELF -----------------------------------------------------------------------------

const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const PT_LOAD: u32 = 1;
const PT_GNU_STACK: u32 = 0x6474_e551;
const PAGE: u64 = 0x1000;

/// One program header.
#[derive(Clone, Copy)]
struct Phdr {
    p_type: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
    memsz: u64,
}

fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Phdr {
    Phdr {
        p_type: PT_LOAD,
        flags,
        offset,
        vaddr,
        filesz,
        memsz,
    }
}

/// A static x86_64 executable: ELF header, program headers at 64, the rest of the file
/// `len` bytes of filler (code and data are never run, only mapped).
fn elf_file(e_type: u16, entry: u64, phdrs: &[Phdr], len: usize) -> Vec<u8> {
    let table = 64 + phdrs.len() * 56;
    let mut out: Vec<u8> = (0..len.max(table)).map(|i| (i * 7 + 0x90) as u8).collect();
    let mut h = Vec::with_capacity(table);
    h.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    h.extend_from_slice(&e_type.to_le_bytes());
    h.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&entry.to_le_bytes());
    h.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    h.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    h.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    h.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    h.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    h.extend_from_slice(&(phdrs.len() as u16).to_le_bytes());
    h.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    h.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    h.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    for p in phdrs {
        h.extend_from_slice(&p.p_type.to_le_bytes());
        h.extend_from_slice(&p.flags.to_le_bytes());
        h.extend_from_slice(&p.offset.to_le_bytes());
        h.extend_from_slice(&p.vaddr.to_le_bytes());
        h.extend_from_slice(&p.vaddr.to_le_bytes()); // p_paddr
        h.extend_from_slice(&p.filesz.to_le_bytes());
        h.extend_from_slice(&p.memsz.to_le_bytes());
        h.extend_from_slice(&PAGE.to_le_bytes()); // p_align
    }
    out[..table].copy_from_slice(&h);
    out
}

/// The smallest agent: one read-execute segment mapping the whole 256-byte file.
fn tiny_elf() -> Vec<u8> {
    elf_file(
        2,
        IMAGE_BASE + 0xb0,
        &[load(PF_R | PF_X, 0, IMAGE_BASE, 0x100, 0x100)],
        0x100,
    )
}

/// Headers and constants, text, and data with bss at an address that is not page
/// aligned, a `PT_GNU_STACK`, and an empty `PT_LOAD` (skipped): what `ld` makes.
fn linked_elf() -> Vec<u8> {
    elf_file(
        2,
        IMAGE_BASE + 0x1010,
        &[
            load(PF_R, 0, IMAGE_BASE, 0x200, 0x200),
            load(PF_R | PF_X, 0x1000, IMAGE_BASE + 0x1000, 0x100, 0x100),
            load(PF_R | PF_W, 0x2010, IMAGE_BASE + 0x3010, 0x40, 0x1800),
            Phdr {
                p_type: PT_GNU_STACK,
                flags: PF_R | PF_W,
                offset: 0,
                vaddr: 0,
                filesz: 0,
                memsz: 0,
            },
            load(PF_R | PF_W, 0, 0, 0, 0),
        ],
        0x2050,
    )
}

fn elf(c: &mut Corpus) -> Result<(), CorpusError> {
    let rx = PF_R | PF_X;
    let rw = PF_R | PF_W;
    c.add("elf", "tiny", &tiny_elf(), Expect::Accepted)?;
    c.add("elf", "linked", &linked_elf(), Expect::Accepted)?;
    // Sixteen segments, the most an agent may have, alternating text and data.
    let many: Vec<Phdr> = (0..16u64)
        .map(|i| {
            let flags = if i % 2 == 0 { rx } else { rw };
            load(flags, i * PAGE, IMAGE_BASE + i * 2 * PAGE, 0x80, 0x80)
        })
        .collect();
    c.add(
        "elf",
        "sixteen-segments",
        &elf_file(2, IMAGE_BASE + 0x10, &many, 16 * 0x1000),
        Expect::Accepted,
    )?;
    c.add(
        "elf",
        "big-bss",
        &elf_file(
            2,
            IMAGE_BASE + 0x100,
            &[
                load(rx, 0, IMAGE_BASE, 0x200, 0x200),
                load(rw, 0x200, IMAGE_BASE + 0x1200, 0x10, 0x80_0000),
            ],
            0x210,
        ),
        Expect::Accepted,
    )?;
    c.add(
        "elf",
        "top-of-window",
        &elf_file(
            2,
            IMAGE_END - 0x100,
            &[load(rx, 0, IMAGE_END - PAGE, 0x200, PAGE)],
            0x200,
        ),
        Expect::Accepted,
    )?;
    // Near misses, each refused for one reason.
    let misses: [(&str, Vec<u8>); 8] = [
        (
            "pie",
            elf_file(
                3,
                IMAGE_BASE + 0xb0,
                &[load(rx, 0, IMAGE_BASE, 0x100, 0x100)],
                0x100,
            ),
        ),
        (
            "writable-text",
            elf_file(
                2,
                IMAGE_BASE + 0xb0,
                &[load(rx | PF_W, 0, IMAGE_BASE, 0x100, 0x100)],
                0x100,
            ),
        ),
        (
            "below-window",
            elf_file(
                2,
                IMAGE_BASE - PAGE + 0xb0,
                &[load(rx, 0, IMAGE_BASE - PAGE, 0x100, 0x100)],
                0x100,
            ),
        ),
        (
            "entry-in-data",
            elf_file(
                2,
                IMAGE_BASE + 0x1010,
                &[
                    load(rx, 0, IMAGE_BASE, 0x100, 0x100),
                    load(rw, 0x100, IMAGE_BASE + 0x1100, 0x20, 0x20),
                ],
                0x120,
            ),
        ),
        (
            "overlap",
            elf_file(
                2,
                IMAGE_BASE + 0xb0,
                &[
                    load(rx, 0, IMAGE_BASE, 0x100, 0x100),
                    load(rw, 0x100, IMAGE_BASE + 0x900, 0x20, 0x20),
                ],
                0x120,
            ),
        ),
        (
            "past-file",
            elf_file(
                2,
                IMAGE_BASE + 0xb0,
                &[load(rx, 0, IMAGE_BASE, 0x1000, 0x1000)],
                0x100,
            ),
        ),
        (
            "incongruent",
            elf_file(
                2,
                IMAGE_BASE + 0x1b0,
                &[load(rx, 0x80, IMAGE_BASE + 0x100, 0x80, 0x80)],
                0x100,
            ),
        ),
        ("truncated-header", tiny_elf()[..40].to_vec()),
    ];
    for (name, data) in misses {
        c.add("elf", name, &data, Expect::Refused)?;
    }
    Ok(())
}

// ---- tar, agent containers -----------------------------------------------------------

/// A file to archive: name, mode, data.
type File<'a> = (&'a str, u32, &'a [u8]);
/// The same, owned.
type OwnedFile = (String, u32, Vec<u8>);

fn archive(files: &[File<'_>]) -> Result<Vec<u8>, CorpusError> {
    let mut b = plinth_tar::Builder::new();
    for (name, mode, data) in files {
        b.add_file(name, *mode, data)
            .map_err(|e| CorpusError::Build {
                what: format!("archive entry {name}"),
                message: e.to_string(),
            })?;
    }
    Ok(b.finish())
}

fn tar_archive(c: &mut Corpus) -> Result<(), CorpusError> {
    let long_dir = "a-directory-name-long-enough-to-need-the-ustar-prefix-field/".repeat(2);
    let long = format!("{long_dir}and-a-file-name-of-its-own.toml");
    let sector: Vec<u8> = (0..512u32).map(|i| (i * 13) as u8).collect();
    let sector_and_one = [&sector[..], b"!"].concat();
    let archives: Vec<(&str, Vec<File<'_>>)> = vec![
        ("empty", vec![]),
        ("one-file", vec![("hello.txt", 0o644, b"hello\n")]),
        ("empty-file", vec![("empty", 0o600, b"")]),
        (
            "nested",
            vec![
                ("bin/run", 0o755, b"\x7fELF"),
                ("etc/a/b/c.toml", 0o644, b"x = 1\n"),
                ("etc/a/d.toml", 0o640, b"y = 2\n"),
            ],
        ),
        ("long-name", vec![(long.as_str(), 0o644, b"long = true\n")]),
        (
            "block-sizes",
            vec![
                ("exactly-512", 0o644, &sector),
                ("513", 0o644, &sector_and_one),
                ("511", 0o644, &sector[..511]),
            ],
        ),
        (
            "modes",
            vec![
                ("setuid", 0o4755, b"s"),
                ("sticky", 0o1777, b"t"),
                ("none", 0, b"n"),
            ],
        ),
        (
            "unicode",
            vec![("\u{e9}t\u{e9}/\u{1f980}.txt", 0o644, "crab".as_bytes())],
        ),
    ];
    for (name, files) in &archives {
        c.add("tar_archive", name, &archive(files)?, Expect::Accepted)?;
    }
    let one = archive(&[("hello.txt", 0o644, b"hello\n")])?;
    c.add("tar_archive", "truncated", &one[..700], Expect::Refused)?;
    let mut bad_sum = one.clone();
    bad_sum[150] ^= 1; // a digit of the header checksum
    c.add("tar_archive", "bad-checksum", &bad_sum, Expect::Refused)?;
    let mut dotdot = one;
    dotdot[..9].copy_from_slice(b"../../x\0\0");
    c.add("tar_archive", "dotdot", &dotdot, Expect::Refused)?;
    Ok(())
}

/// A manifest with every field, from the container crate's own tests.
const FULL_MANIFEST: &str = r#"name = "web"
version = "1.2.0"
entry = "bin/web"
args = ["--port", "80"]
config = ["etc/web.toml"]
devices = ["net", "console", "disk"]

[env]
RUST_LOG = "info"

[resources.cpu]
average_percent = 10
peak_percent = 100

[resources.memory]
average_mib = 64
peak_mib = 256

[resources.disk]
average_bytes_per_sec = 0
peak_bytes_per_sec = 1048576
average_iops = 0
peak_iops = 100

[resources.network]
average_bytes_per_sec = 10000
peak_bytes_per_sec = 1000000
"#;

const MINIMAL_MANIFEST: &str = "name = \"a\"\nversion = \"0.1.0\"\nentry = \"a\"\n\
    [resources.cpu]\naverage_percent = 1\npeak_percent = 1\n\
    [resources.memory]\naverage_mib = 1\npeak_mib = 1\n";

/// The example appliance's agent `name`: its manifest, its configuration files, and
/// `exe` as its executable. The executables are not built here (that needs the agent
/// toolchain): a small valid one stands in.
fn example_agent_files(name: &str, exe: &[u8]) -> Result<(String, Vec<OwnedFile>), CorpusError> {
    let dir = format!("tools/appliance/agents/{name}");
    let manifest = read_text(&format!("{dir}/manifest.toml"))?;
    let mut files = vec![(format!("bin/{name}"), 0o755, exe.to_vec())];
    let etc = repo_root().join(&dir).join("etc");
    if etc.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&etc)
            .map_err(io(&etc))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io(&etc))?;
        names.sort();
        for p in names {
            let data = std::fs::read(&p).map_err(io(&p))?;
            let file = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            files.push((format!("etc/{file}"), 0o644, data));
        }
    }
    Ok((manifest, files))
}

fn pack(manifest: &str, files: &[OwnedFile], seed: &[u8; 32]) -> Result<Vec<u8>, CorpusError> {
    let refs: Vec<File<'_>> = files
        .iter()
        .map(|(n, m, d)| (n.as_str(), *m, d.as_slice()))
        .collect();
    plinth_container::pack(manifest, &refs, seed).map_err(|e| CorpusError::Build {
        what: "an agent container".into(),
        message: e.to_string(),
    })
}

const EXAMPLE_AGENTS: [&str; 5] = ["hello", "scrubber", "spinner", "hostile", "echo"];

fn dev_seed() -> Result<[u8; 32], CorpusError> {
    let text = read_text("tools/appliance/keys/dev.key")?;
    parse_key_file(text.as_bytes(), SECRET_KEY_PREFIX).ok_or_else(|| CorpusError::Build {
        what: "the development key".into(),
        message: "tools/appliance/keys/dev.key is not an `ed25519-secret` key file".into(),
    })
}

fn agent_container(c: &mut Corpus) -> Result<(), CorpusError> {
    let exe = tiny_elf();
    for name in EXAMPLE_AGENTS {
        let (manifest, files) = example_agent_files(name, &exe)?;
        c.add(
            "agent_container",
            name,
            &pack(&manifest, &files, &TRUSTED_SEED)?,
            Expect::Accepted,
        )?;
    }
    let web = vec![
        ("bin/web".to_string(), 0o755, linked_elf()),
        ("etc/web.toml".to_string(), 0o644, b"listen = 80\n".to_vec()),
        ("README".to_string(), 0o644, Vec::new()),
    ];
    let full = pack(FULL_MANIFEST, &web, &TRUSTED_SEED)?;
    c.add("agent_container", "full-manifest", &full, Expect::Accepted)?;
    let minimal = vec![("a".to_string(), 0o755, b"x".to_vec())];
    c.add(
        "agent_container",
        "minimal",
        &pack(MINIMAL_MANIFEST, &minimal, &TRUSTED_SEED)?,
        Expect::Accepted,
    )?;
    // Signed, but by a key the target does not trust: `inspect` reads it, `open` not.
    c.add(
        "agent_container",
        "other-signer",
        &pack(FULL_MANIFEST, &web, &dev_seed()?)?,
        Expect::Refused,
    )?;
    let mut tampered = full.clone();
    let at = tampered.len() / 3;
    tampered[at] ^= 0x20;
    c.add("agent_container", "tampered", &tampered, Expect::Refused)?;
    // The manifest alone, as text: the target also parses its input as a manifest.
    c.add(
        "agent_container",
        "manifest-text",
        FULL_MANIFEST.as_bytes(),
        Expect::Refused,
    )?;
    let unsigned = archive(&[
        ("manifest.toml", 0o644, MINIMAL_MANIFEST.as_bytes()),
        ("a", 0o755, b"x"),
    ])?;
    c.add("agent_container", "unsigned", &unsigned, Expect::Refused)?;
    c.add("tar_archive", "container", &full, Expect::Accepted)?;
    Ok(())
}

// ---- gpt -----------------------------------------------------------------------------

/// A disk of `disk_sectors` holding `layout`'s tables (partitions placed by hand, small,
/// so the image stays tens of KiB; the reader does not care about alignment), behind
/// the target's flag byte.
fn gpt_image(flags: u8, layout: &Layout) -> Vec<u8> {
    let mut image = vec![0u8; layout.disk_sectors as usize * SECTOR];
    let primary = layout.primary();
    image[..primary.len()].copy_from_slice(&primary);
    let backup = layout.backup();
    let at = layout.backup_offset() as usize;
    image[at..at + backup.len()].copy_from_slice(&backup);
    [&[flags][..], &image].concat()
}

fn guid(n: u8) -> Guid {
    Guid::from_hash([n; 16])
}

/// `parts` (name, type, sectors) placed one after another from LBA 34.
fn compact_layout(parts: &[(&str, Guid, u64)]) -> Layout {
    let mut next = 34;
    let partitions = parts
        .iter()
        .enumerate()
        .map(|(i, &(name, type_guid, sectors))| {
            let p = Partition {
                index: i as u32,
                name: name.to_string(),
                type_guid,
                unique_guid: guid(0x40 + i as u8),
                first_lba: next,
                last_lba: next + sectors - 1,
                attributes: if i == 1 { 1 << 60 } else { 0 },
            };
            next += sectors;
            p
        })
        .collect();
    Layout {
        disk_guid: guid(0x11),
        disk_sectors: next + 33,
        partitions,
    }
}

fn gpt(c: &mut Corpus) -> Result<(), CorpusError> {
    // The default appliance's disk, shrunk: the catalog partition and three data extents.
    let appliance = compact_layout(&[
        (CATALOG_PARTITION_NAME, CATALOG_PARTITION_TYPE, 8),
        ("mgmt", DATA_PARTITION_TYPE, 4),
        ("tenant-a", DATA_PARTITION_TYPE, 4),
        ("tenant-b", DATA_PARTITION_TYPE, 2),
    ]);
    let image = gpt_image(0, &appliance);
    c.add("gpt", "appliance", &image, Expect::Accepted)?;
    c.add(
        "gpt",
        "appliance-fix-crcs",
        &gpt_image(FIX_PRIMARY | FIX_BACKUP | PROTECTIVE_MBR, &appliance),
        Expect::Accepted,
    )?;
    // No partitions; a few free sectors, as the usable range may not be empty.
    let mut empty = compact_layout(&[]);
    empty.disk_sectors += 4;
    c.add(
        "gpt",
        "empty-table",
        &gpt_image(0, &empty),
        Expect::Accepted,
    )?;
    let names = compact_layout(&[
        ("", DATA_PARTITION_TYPE, 1),
        ("\u{e9}t\u{e9}-\u{1f980}", DATA_PARTITION_TYPE, 1),
        ("exactly-thirty-six-code-units-long!!", guid(0x22), 3),
    ]);
    c.add("gpt", "names", &gpt_image(0, &names), Expect::Accepted)?;
    // Free space after the partitions: the usable range and the backup move with the disk.
    let mut roomy = compact_layout(&[("data", DATA_PARTITION_TYPE, 2)]);
    roomy.disk_sectors += 16;
    c.add("gpt", "free-space", &gpt_image(0, &roomy), Expect::Accepted)?;
    // The primary header destroyed: the reader falls back to the backup.
    let mut no_primary = image.clone();
    no_primary[1 + SECTOR..1 + SECTOR + 8].fill(0);
    c.add("gpt", "backup-only", &no_primary, Expect::Accepted)?;
    // The primary entries corrupted, their CRC no longer matching: the backup again.
    let mut bad_entries = image.clone();
    bad_entries[1 + 2 * SECTOR + 56] ^= 0xff;
    c.add("gpt", "primary-entries-crc", &bad_entries, Expect::Accepted)?;
    // The same corruption with the CRCs re-computed: the reader sees the edit itself.
    let mut fixed = bad_entries.clone();
    fixed[0] = FIX_PRIMARY;
    c.add("gpt", "primary-entries-fixed", &fixed, Expect::Any)?;
    // The disk claims sectors the image lacks: the backup is out of reach.
    c.add(
        "gpt",
        "truncated",
        &gpt_image(3 << 5, &appliance),
        Expect::Any,
    )?;
    // Both headers broken.
    let mut neither = no_primary;
    let last = neither.len() - SECTOR;
    neither[last..last + 8].fill(0);
    c.add("gpt", "no-table", &neither, Expect::Refused)?;
    // Overlapping partitions, CRCs made right: refused for the overlap.
    let mut overlap =
        compact_layout(&[("a", DATA_PARTITION_TYPE, 4), ("b", DATA_PARTITION_TYPE, 4)]);
    overlap.partitions[1].first_lba -= 2;
    c.add("gpt", "overlap", &gpt_image(0, &overlap), Expect::Refused)?;
    Ok(())
}

// ---- policy_set ----------------------------------------------------------------------

/// The policy target's input: the flag byte, then the files separated by NUL.
fn policy_input(flags: u8, files: &[&str]) -> Vec<u8> {
    let mut out = vec![flags];
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(f.as_bytes());
    }
    out
}

/// The ```toml blocks of a Markdown file.
fn toml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

const APPLIANCE_POLICIES: [&str; 4] = ["deployment", "protection", "troubleshooting", "tenants"];

fn policy_set(c: &mut Corpus) -> Result<(), CorpusError> {
    const ALL: u8 = POLICY_MACHINE | POLICY_PARTITIONS | POLICY_AGENTS;
    let mut real = Vec::new();
    for p in APPLIANCE_POLICIES {
        real.push(read_text(&format!("tools/appliance/policies/{p}.toml"))?);
    }
    let real_refs: Vec<&str> = real.iter().map(String::as_str).collect();
    // The example appliance's set as it is: consistent on its own, but it names agents
    // and partitions the target's fixed world lacks.
    c.add(
        "policy_set",
        "appliance",
        &policy_input(0, &real_refs),
        Expect::Accepted,
    )?;
    c.add(
        "policy_set",
        "appliance-in-world",
        &policy_input(ALL, &real_refs),
        Expect::Refused,
    )?;
    // The same set renamed into the target's world, so every cross-check runs and passes.
    let adapted: Vec<String> = real
        .iter()
        .map(|t| {
            t.replace("scrubber", "probe")
                .replace(
                    "\"0.1.0\"\nto = [\"tenant-a\"]",
                    "\"1.0.0\"\nto = [\"tenant-a\"]",
                )
                .replace(
                    "agent = \"echo\"\nversion = \"0.1.0\"",
                    "agent = \"web\"\nversion = \"2.3.4\"",
                )
                .replace("tenant-b", "edge-b")
        })
        .collect();
    let adapted_refs: Vec<&str> = adapted.iter().map(String::as_str).collect();
    c.add(
        "policy_set",
        "appliance-adapted",
        &policy_input(ALL, &adapted_refs),
        Expect::Accepted,
    )?;
    for (p, text) in APPLIANCE_POLICIES.iter().zip(&adapted_refs) {
        c.add(
            "policy_set",
            &format!("appliance-{p}"),
            &policy_input(ALL, &[text]),
            Expect::Accepted,
        )?;
    }
    // The examples of docs/policies.md, written against the same names as the target's
    // world (though there `label:monitoring` puts hello on mgmt a second time).
    let docs = toml_blocks(&read_text("docs/policies.md")?);
    let doc_refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    c.add(
        "policy_set",
        "docs",
        &policy_input(ALL, &doc_refs),
        Expect::Refused,
    )?;
    for (i, text) in doc_refs.iter().enumerate() {
        c.add(
            "policy_set",
            &format!("docs-{i}"),
            &policy_input(ALL, &[text]),
            Expect::Any,
        )?;
    }
    c.add(
        "policy_set",
        "docs-no-partitions",
        &policy_input(POLICY_MACHINE | POLICY_AGENTS, &doc_refs),
        Expect::Accepted,
    )?;
    c.add(
        "policy_set",
        "docs-no-world",
        &policy_input(0, &doc_refs),
        Expect::Accepted,
    )?;
    c.add(
        "policy_set",
        "docs-machine-only",
        &policy_input(POLICY_MACHINE, &doc_refs),
        Expect::Accepted,
    )?;
    // Mistakes the checker must place: the same deployment twice, and a broken file.
    c.add(
        "policy_set",
        "duplicate",
        &policy_input(ALL, &[adapted_refs[0], adapted_refs[0]]),
        Expect::Refused,
    )?;
    c.add(
        "policy_set",
        "broken",
        &policy_input(
            ALL,
            &["kind = \"deployment\"\n[[deploy]]\nagent = \"hello\"\nversion = \"01.0\"\nto = []\n"],
        ),
        Expect::Refused,
    )?;
    c.add(
        "policy_set",
        "unknown-kind",
        &policy_input(ALL, &["kind = \"firewall\"\n"]),
        Expect::Refused,
    )?;
    Ok(())
}

// ---- catalog -------------------------------------------------------------------------

/// A catalog's spec and files, before sealing.
struct CatalogParts {
    spec: String,
    files: Vec<(String, Vec<u8>)>,
}

impl CatalogParts {
    fn sealed(&self) -> Result<Vec<u8>, CorpusError> {
        let refs: Vec<(&str, &[u8])> = self
            .files
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        plinth_catalog::build(&self.spec, &refs)
            .map_err(|e| e.to_string())
            .map_err(build_err("a catalog"))
    }

    /// The payload alone: what the catalog target re-seals, so its mutations get past
    /// the checksum.
    fn payload(&self) -> Result<Vec<u8>, CorpusError> {
        let sealed = self.sealed()?;
        let header = plinth_catalog::Header::parse(&sealed, sealed.len() as u64)
            .map_err(|e| e.to_string())
            .map_err(build_err("a catalog header"))?;
        Ok(sealed[plinth_catalog::HEADER_LEN..][..header.payload_len as usize].to_vec())
    }
}

/// The default appliance (tools/appliance) as `plinth image build` lays it out: the
/// spec rewritten to name the catalog's flat files, the development key, the four
/// policies, the four agents packed and signed with the development key.
fn default_appliance() -> Result<CatalogParts, CorpusError> {
    let text = read_text("tools/appliance/appliance.toml")?;
    let mut spec = Appliance::parse(&text, 0).map_err(|d| CorpusError::Build {
        what: "tools/appliance/appliance.toml".into(),
        message: format!("{d:?}"),
    })?;
    let seed = dev_seed()?;
    let key = format!("{PUBLIC_KEY_PREFIX} {}\n", public_key(&seed));
    let mut files = vec![("keys/dev.pub".to_string(), key.into_bytes())];
    spec.trusted_keys = vec![At::new("keys/dev.pub".to_string(), 0..0)];
    let exe = tiny_elf();
    spec.agents.clear();
    for name in EXAMPLE_AGENTS {
        let (manifest, agent_files) = example_agent_files(name, &exe)?;
        let path = format!("agents/{name}-0.1.0.agent");
        files.push((path.clone(), pack(&manifest, &agent_files, &seed)?));
        spec.agents.push(At::new(AgentSource::File(path), 0..0));
    }
    spec.policies.clear();
    for p in APPLIANCE_POLICIES {
        let path = format!("policies/{p}.toml");
        let text = read_text(&format!("tools/appliance/{path}"))?;
        files.push((path.clone(), text.into_bytes()));
        spec.policies.push(At::new(path, 0..0));
    }
    Ok(CatalogParts {
        spec: spec.to_toml(),
        files,
    })
}

/// The catalog crate's test catalog: one agent, one key, two policies.
fn small_catalog() -> Result<CatalogParts, CorpusError> {
    let spec = r#"kind = "appliance"
name = "test"
version = "1.2.3"
trusted_keys = ["keys/ops.pub"]
policies = ["policies/deployment.toml", "policies/tenants.toml"]

[machine]
memory_mib = 512
cpus = 2

[[agent]]
file = "agents/hello-0.1.0.agent"

[[partition]]
name = "mgmt"
memory_mib = 64
cpus = 1
disk_mib = 4
labels = ["management"]

[[partition]]
name = "tenant-a"
memory_mib = 128
cpus = 1
"#;
    let deployment = "kind = \"deployment\"\n[[deploy]]\nagent = \"hello\"\nversion = \"0.1.0\"\n\
        to = [\"label:management\"]\n";
    let tenants = "kind = \"tenants\"\n[[pool]]\nname = \"vlans\"\nranges = [\"10-11\"]\n\
        [[tenant]]\nname = \"acme\"\npool = \"vlans\"\npartitions = [\"tenant-a\"]\n";
    let manifest = "name = \"hello\"\nversion = \"0.1.0\"\nentry = \"bin/run\"\n\
        [resources.cpu]\naverage_percent = 1\npeak_percent = 5\n\
        [resources.memory]\naverage_mib = 2\npeak_mib = 4\n";
    let agent = pack(
        manifest,
        &[("bin/run".to_string(), 0o755, tiny_elf())],
        &TRUSTED_SEED,
    )?;
    let key = format!("{PUBLIC_KEY_PREFIX} {}\n", public_key(&TRUSTED_SEED));
    Ok(CatalogParts {
        spec: spec.into(),
        files: vec![
            ("keys/ops.pub".into(), key.into_bytes()),
            (
                "policies/deployment.toml".into(),
                deployment.as_bytes().to_vec(),
            ),
            ("policies/tenants.toml".into(), tenants.as_bytes().to_vec()),
            ("agents/hello-0.1.0.agent".into(), agent),
        ],
    })
}

/// A spec and its one key, nothing else: no agents, no policies.
fn bare_catalog() -> CatalogParts {
    let key = format!("{PUBLIC_KEY_PREFIX} {}\n", public_key(&TRUSTED_SEED));
    CatalogParts {
        spec: "kind = \"appliance\"\nname = \"bare\"\nversion = \"0.0.1\"\n\
            trusted_keys = [\"keys/k.pub\"]\n\
            [machine]\nmemory_mib = 128\ncpus = 1\n\
            [[partition]]\nname = \"only\"\nmemory_mib = 16\ncpus = 1\n"
            .into(),
        files: vec![("keys/k.pub".into(), key.into_bytes())],
    }
}

fn catalog(c: &mut Corpus) -> Result<(), CorpusError> {
    let default = default_appliance()?;
    let small = small_catalog()?;
    let bare = bare_catalog();
    for (name, parts) in [("appliance", &default), ("small", &small), ("bare", &bare)] {
        c.add(
            "catalog",
            &format!("{name}-sealed"),
            &parts.sealed()?,
            Expect::Accepted,
        )?;
        c.add(
            "catalog",
            &format!("{name}-payload"),
            &parts.payload()?,
            Expect::Accepted,
        )?;
    }
    // Refusals past the checksum: an agent the spec's key did not sign, a file the
    // spec does not name, a policy naming an unknown partition.
    let mut unsigned = small_catalog()?;
    unsigned.files[3].1 = pack(
        "name = \"hello\"\nversion = \"0.1.0\"\nentry = \"a\"\n\
         [resources.cpu]\naverage_percent = 1\npeak_percent = 1\n\
         [resources.memory]\naverage_mib = 1\npeak_mib = 1\n",
        &[("a".to_string(), 0o755, tiny_elf())],
        &dev_seed()?,
    )?;
    c.add(
        "catalog",
        "unknown-signer",
        &unsigned.payload()?,
        Expect::Refused,
    )?;
    let mut extra = small_catalog()?;
    extra
        .files
        .push(("notes.txt".into(), b"not named by the spec".to_vec()));
    c.add("catalog", "extra-file", &extra.payload()?, Expect::Refused)?;
    let mut bad_policy = small_catalog()?;
    bad_policy.files[2].1 = b"kind = \"tenants\"\n[[tenant]]\nname = \"x\"\nvlan = 5\n\
        partitions = [\"nowhere\"]\n"
        .to_vec();
    c.add(
        "catalog",
        "bad-policy",
        &bad_policy.payload()?,
        Expect::Refused,
    )?;
    // A flipped payload byte under the original header: the checksum's refusal.
    let mut flipped = small.sealed()?;
    let at = plinth_catalog::HEADER_LEN + 100;
    flipped[at] ^= 1;
    c.add("catalog", "flipped", &flipped, Expect::Refused)?;
    // The spec alone, as text: the target also parses its input as a spec.
    c.add(
        "catalog",
        "spec-text",
        read_text("tools/appliance/appliance.toml")?.as_bytes(),
        Expect::Refused,
    )?;
    // The tar and container targets read archives too: a catalog payload is one.
    c.add(
        "tar_archive",
        "catalog-payload",
        &small.payload()?,
        Expect::Accepted,
    )?;
    Ok(())
}

// ---- control -------------------------------------------------------------------------

/// The control target's input: a method selector, the path, a newline, the body.
fn control_input(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let selector = plinth_control::fuzzing::METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or_else(|| panic!("no selector for {method}")) as u8;
    [&[selector][..], path.as_bytes(), b"\n", body].concat()
}

fn control(c: &mut Corpus) -> Result<(), CorpusError> {
    let name = |s: &str| s.to_string();
    let full = CreatePartition {
        name: name("tenant-c"),
        memory_mib: 128,
        cpu_weight: Some(200),
        cpu_cap_percent: Some(50),
        tenant: Some(name("acme")),
        labels: vec![name("tenant"), name("edge")],
        disk: Some(name("tenant-c")),
        agents: vec![
            AgentRef {
                name: name("hello"),
                version: Some(name("0.1.0")),
            },
            AgentRef {
                name: name("scrubber"),
                version: None,
            },
        ],
        nics: vec![NicSpec::default(), NicSpec::new(Some("02:00:00:00:0c:01"))],
    };
    let commands = [
        ("list", Command::List),
        ("get", Command::Get { name: name("mgmt") }),
        (
            "create",
            Command::Create(CreatePartition::new("tenant-c", 64)),
        ),
        ("create-full", Command::Create(full)),
        (
            "start",
            Command::Act {
                name: name("tenant-a"),
                action: plinth_control::Action::Start,
            },
        ),
        (
            "restart",
            Command::Act {
                name: name("tenant-a"),
                action: plinth_control::Action::Restart,
            },
        ),
        (
            "resize",
            Command::Resize {
                name: name("tenant-a"),
                resize: Resize {
                    memory_mib: Some(256),
                    cpu_weight: Some(10),
                    ..Resize::default()
                },
            },
        ),
        (
            "resize-net",
            Command::Resize {
                name: name("tenant-a"),
                resize: Resize {
                    net_bytes_per_sec: Some(1 << 20),
                    net_bytes_burst: Some(2 << 20),
                    net_packets_per_sec: Some(0),
                    ..Resize::default()
                },
            },
        ),
        (
            "attach-nic",
            Command::AttachNic {
                name: name("tenant-a"),
                nic: NicSpec::default(),
            },
        ),
        (
            "attach-nic-mac",
            Command::AttachNic {
                name: name("tenant-a"),
                nic: NicSpec::new(Some("02:00:00:00:0a:01")),
            },
        ),
        (
            "detach-nic",
            Command::DetachNic {
                name: name("tenant-a"),
                index: 1,
            },
        ),
        (
            "attach",
            Command::AttachDisk {
                name: name("tenant-a"),
                disk: AttachDisk {
                    extent: name("tenant-a"),
                },
            },
        ),
        (
            "detach",
            Command::DetachDisk {
                name: name("tenant-a"),
            },
        ),
        (
            "terminate",
            Command::Terminate {
                name: name("tenant-a"),
            },
        ),
    ];
    for (file, command) in &commands {
        let body = plinth_control::fuzzing::body_of(command);
        c.add(
            "control",
            file,
            &control_input(command.method(), &command.path(), &body),
            Expect::Accepted,
        )?;
    }
    c.add(
        "control",
        "head",
        &control_input("HEAD", plinth_control::PREFIX, b""),
        Expect::Accepted,
    )?;
    let pretty =
        b"{\n  \"name\": \"t\\u0065nant-d\",\n  \"memory_mib\": 32,\n  \"labels\": [],\n  \
        \"agents\": [ { \"name\": \"probe\" } ]\n}";
    c.add(
        "control",
        "create-pretty",
        &control_input("POST", plinth_control::PREFIX, pretty),
        Expect::Accepted,
    )?;
    let misses: [(&str, &str, &str, &[u8]); 12] = [
        (
            "unknown-field",
            "POST",
            "/api/v1/partitions",
            b"{\"name\":\"a\",\"memory_mib\":1,\"colour\":1}",
        ),
        (
            "duplicate-field",
            "POST",
            "/api/v1/partitions",
            b"{\"name\":\"a\",\"name\":\"b\",\"memory_mib\":1}",
        ),
        (
            "too-big",
            "POST",
            "/api/v1/partitions",
            b"{\"name\":\"a\",\"memory_mib\":18446744073709551615}",
        ),
        ("bad-name", "GET", "/api/v1/partitions/..", b""),
        ("wrong-method", "PATCH", "/api/v1/partitions/a", b""),
        ("no-route", "GET", "/api/v1/partitions/a/b/c", b""),
        ("empty-resize", "POST", "/api/v1/partitions/a/resize", b"{}"),
        (
            "burst-without-rate",
            "POST",
            "/api/v1/partitions/a/resize",
            b"{\"net_bytes_burst\":10}",
        ),
        (
            "multicast-mac",
            "POST",
            "/api/v1/partitions/a/nics",
            b"{\"mac\":\"01:00:5e:00:00:01\"}",
        ),
        (
            "too-many-nics",
            "POST",
            "/api/v1/partitions",
            b"{\"name\":\"a\",\"memory_mib\":1,\"nics\":[{},{},{},{},{},{},{},{},{}]}",
        ),
        (
            "nic-index-zero-padded",
            "DELETE",
            "/api/v1/partitions/a/nics/01",
            b"",
        ),
        (
            "nic-index-out-of-range",
            "DELETE",
            "/api/v1/partitions/a/nics/8",
            b"",
        ),
    ];
    for (file, method, path, body) in misses {
        c.add(
            "control",
            file,
            &control_input(method, path, body),
            Expect::Refused,
        )?;
    }
    Ok(())
}

// ---- bridge_frames -------------------------------------------------------------------

/// The ports of `plinth_bridge::fuzzing::TOPOLOGY`, by id.
const TENANT_A1: u8 = 0; // access VLAN 10, MAC_A1
const TENANT_A2: u8 = 1; // access VLAN 10, any address
const TENANT_B: u8 = 2; // access VLAN 20, MAC_B
const MGMT: u8 = 3; // access native VLAN, MAC_MGMT
const UPLINK: u8 = 4; // trunk of 10, 20, 30 and native
const ROUTER: u8 = 5; // trunk of 20 and 40, MAC_ROUTER

fn bridge_frames(c: &mut Corpus) -> Result<(), CorpusError> {
    const BROADCAST: Mac = [0xff; 6];
    const IPV4: u16 = 0x0800;
    const ARP: u16 = 0x0806;
    let h1: Mac = [0x02, 0, 0, 0, 0x01, 0x01];
    let h2: Mac = [0x02, 0, 0, 0, 0x01, 0x02];
    let host = |i: u8| -> Mac { [0x02, 0, 0, 0, 0x10, i] };
    let frame = |port, step, f: Vec<u8>| frame_record(port, step, &f);
    let command = |op, arg| command_record(op, arg).to_vec();

    let accepted: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "learn-unicast",
            vec![
                frame(TENANT_A2, 0, ethernet(BROADCAST, h1, None, ARP, 28)),
                frame(UPLINK, 1, ethernet(h1, h2, Some(10), IPV4, 46)),
                frame(TENANT_A2, 1, ethernet(h2, h1, None, IPV4, 46)),
            ],
        ),
        (
            "trunk-tagged",
            vec![
                frame(UPLINK, 0, ethernet(BROADCAST, h1, Some(20), ARP, 28)),
                frame(TENANT_B, 1, ethernet(h1, MAC_B, None, IPV4, 46)),
                frame(UPLINK, 1, ethernet(BROADCAST, h2, Some(30), IPV4, 100)),
            ],
        ),
        (
            "priority-tagged",
            vec![
                frame(
                    MGMT,
                    0,
                    ethernet(BROADCAST, MAC_MGMT, Some(5 << 13), ARP, 28),
                ),
                frame(
                    TENANT_A1,
                    0,
                    ethernet(BROADCAST, MAC_A1, Some(0x1000), IPV4, 46),
                ),
            ],
        ),
        (
            "native",
            vec![
                frame(UPLINK, 0, ethernet(BROADCAST, h1, None, ARP, 28)),
                frame(MGMT, 1, ethernet(h1, MAC_MGMT, None, IPV4, 46)),
            ],
        ),
        (
            "router",
            vec![
                frame(
                    ROUTER,
                    0,
                    ethernet(BROADCAST, MAC_ROUTER, Some(40), ARP, 28),
                ),
                frame(ROUTER, 0, ethernet(MAC_B, MAC_ROUTER, Some(20), IPV4, 46)),
            ],
        ),
        (
            "max-size",
            vec![
                frame(TENANT_A2, 0, ethernet(BROADCAST, h1, None, IPV4, 1500)),
                frame(UPLINK, 0, ethernet(h1, h2, Some(10), IPV4, 1500)),
            ],
        ),
        (
            "aging",
            vec![
                frame(TENANT_A2, 0, ethernet(BROADCAST, h1, None, ARP, 28)),
                command(WAIT, 20),
                frame(UPLINK, 0, ethernet(h1, h2, Some(10), IPV4, 46)),
                command(AGE, 0),
                frame(UPLINK, 29, ethernet(h1, h2, Some(10), IPV4, 46)),
            ],
        ),
        (
            "eviction",
            (0..10)
                .map(|i| frame(TENANT_A2, 0, ethernet(BROADCAST, host(i), None, ARP, 28)))
                .chain([frame(UPLINK, 0, ethernet(host(0), h2, Some(10), IPV4, 46))])
                .collect(),
        ),
        (
            "churn",
            vec![
                frame(UPLINK, 0, ethernet(BROADCAST, h1, Some(10), ARP, 28)),
                command(REMOVE_PORT, UPLINK),
                frame(TENANT_A2, 0, ethernet(h1, h2, None, IPV4, 46)),
                command(ADD_PORT, UPLINK),
                frame(6, 0, ethernet(BROADCAST, h1, Some(20), ARP, 28)),
                // Port 1 becomes a trunk of VLANs 10 to 40 with the native VLAN.
                command(SET_MODE, 4 << 3 | TENANT_A2),
                frame(TENANT_A2, 1, ethernet(BROADCAST, h2, Some(40), ARP, 28)),
                command(QUEUE_FULL, 1 << 3 | TENANT_A1),
                command(DELIVERED, 2 << 3 | TENANT_B),
            ],
        ),
    ];
    for (name, records) in &accepted {
        c.add("bridge_frames", name, &records.concat(), Expect::Accepted)?;
    }

    // Frames the switch must refuse, alone so that nothing else gets the input accepted.
    let mut double = ethernet(BROADCAST, MAC_MGMT, Some(0), 0x8100, 46);
    double[18..20].copy_from_slice(&20u16.to_be_bytes());
    let mut service = ethernet(BROADCAST, h1, Some(20), IPV4, 46);
    service[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
    let refused: [(&str, u8, Vec<u8>); 10] = [
        ("double-tagged", MGMT, double),
        (
            "tagged-on-access",
            TENANT_A2,
            ethernet(BROADCAST, h1, Some(20), IPV4, 46),
        ),
        ("service-tag", UPLINK, service),
        (
            "spoofed",
            TENANT_A1,
            ethernet(BROADCAST, h1, None, IPV4, 46),
        ),
        (
            "bad-source",
            TENANT_A2,
            ethernet(h1, BROADCAST, None, IPV4, 46),
        ),
        (
            "no-native-vlan",
            ROUTER,
            ethernet(BROADCAST, MAC_ROUTER, None, ARP, 28),
        ),
        (
            "vid-not-allowed",
            UPLINK,
            ethernet(BROADCAST, h1, Some(40), ARP, 28),
        ),
        (
            "runt",
            TENANT_A2,
            ethernet(BROADCAST, h1, None, IPV4, 0)[..13].to_vec(),
        ),
        (
            "truncated",
            UPLINK,
            ethernet(BROADCAST, h1, Some(10), IPV4, 0)[..17].to_vec(),
        ),
        (
            "oversize",
            UPLINK,
            ethernet(BROADCAST, h1, Some(10), IPV4, 1501),
        ),
    ];
    for (name, port, f) in &refused {
        c.add(
            "bridge_frames",
            name,
            &frame_record(*port, 0, f),
            Expect::Refused,
        )?;
    }
    c.add(
        "bridge_frames",
        "no-port",
        &frame_record(7, 0, &ethernet(BROADCAST, h1, None, ARP, 28)),
        Expect::Refused,
    )?;
    Ok(())
}

// ---- rx_offload ------------------------------------------------------------------------

/// A `virtio_net_hdr` and an Ethernet frame (tagged `vid`) carrying one IPv4 packet of
/// `proto` with `payload` bytes after an L4 header of `l4_len`, its checksums right.
fn rx_record(flags: u8, gso: u8, mss: u16, vid: Option<u16>, proto: u8, payload: usize) -> Vec<u8> {
    let l4_len = if proto == 6 { 20 } else { 8 };
    let mut f = plinth_bridge::fuzzing::ethernet(
        [0x02, 0, 0, 0, 0, 1],
        [0x02, 0, 0, 0, 0, 2],
        vid,
        0x0800,
        0,
    );
    let ip = f.len();
    let total = (20 + l4_len + payload) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0, 10, 1, 1, 1, 10, 1, 1, 2]);
    let l4 = f.len();
    if proto == 6 {
        f.extend_from_slice(&[
            0x30, 0x39, 0, 80, 0, 0, 1, 0, 0, 0, 0, 9, 0x50, 0x18, 0x10, 0, 0, 0, 0, 0,
        ]);
    } else {
        let len = (8 + payload) as u16;
        f.extend_from_slice(&[0x30, 0x39, 0, 53]);
        f.extend_from_slice(&len.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend((0..payload).map(|i| (i * 7) as u8));
    let mut ip_sum = plinth_offload_sum(&f[ip..ip + 20]);
    ip_sum = !ip_sum;
    f[ip + 10..ip + 12].copy_from_slice(&ip_sum.to_be_bytes());
    assert!(plinth_offload::receive::fill_checksum(&mut f));
    let mut h = vec![flags, gso];
    h.extend_from_slice(&((l4 + l4_len) as u16).to_le_bytes());
    h.extend_from_slice(&mss.to_le_bytes());
    h.extend_from_slice(&(l4 as u16).to_le_bytes());
    h.extend_from_slice(&(if proto == 6 { 16u16 } else { 6 }).to_le_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&f);
    h
}

/// The ones' complement sum of `b`, folded.
fn plinth_offload_sum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|w| u32::from(w[0]) << 8 | u32::from(*w.get(1).unwrap_or(&0)))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn rx_offload(c: &mut Corpus) -> Result<(), CorpusError> {
    let cases = [
        (
            "super-frame",
            rx_record(1, 1, 1448, None, 6, 20_000),
            Expect::Accepted,
        ),
        (
            "super-frame-tagged",
            rx_record(1, 1, 1460, Some(100), 6, 64_000),
            Expect::Accepted,
        ),
        (
            "partial-udp",
            rx_record(1, 0, 0, None, 17, 300),
            Expect::Accepted,
        ),
        (
            "valid-tcp",
            rx_record(2, 0, 0, Some(200), 6, 1000),
            Expect::Accepted,
        ),
        (
            "gso-udp",
            rx_record(1, 3, 1448, None, 17, 3000),
            Expect::Refused,
        ),
        (
            "gso-ecn",
            rx_record(1, 0x81, 1448, None, 6, 3000),
            Expect::Refused,
        ),
        ("short-header", vec![1, 1, 0], Expect::Refused),
    ];
    for (name, data, expect) in cases {
        c.add("rx_offload", name, &data, expect)?;
    }
    Ok(())
}

// ---- journal -------------------------------------------------------------------------

fn journal(c: &mut Corpus) -> Result<(), CorpusError> {
    use plinth_journal::usage::{Entry, Usage, encode};
    use plinth_journal::{Journal, Kind, SECTOR};
    let entry = |name: &str, tenant: Option<&str>, k: u64| Entry {
        partition: name.into(),
        tenant: tenant.map(String::from),
        terminated: k % 2 == 1,
        usage: Usage {
            cpu_ns: k * 1_000_000,
            memory_byte_ns: u128::from(k) << 40,
            disk_reads: k,
            disk_writes: 2 * k,
            disk_read_bytes: 4096 * k,
            disk_written_bytes: 8192 * k,
            net_rx_bytes: 1500 * k,
            net_tx_bytes: 60 * k,
        },
    };
    // Rings of 8 sectors: three usage records, one torn, one wrapped round.
    let ring = |records: &[Vec<u8>], tear: Option<usize>| {
        let mut ring = vec![0u8; 8 * SECTOR];
        let mut j = Journal::new(8);
        for (i, p) in records.iter().enumerate() {
            let (at, bytes) = j.append(Kind::Usage, p).expect("fits");
            let start = at as usize * SECTOR;
            ring[start..start + bytes.len()].copy_from_slice(&bytes);
            if tear == Some(i) {
                ring[start + 30] ^= 0xff;
            }
        }
        ring
    };
    let a = encode(&[entry("metered", Some("acme"), 2), entry("gone", None, 3)]);
    let b = encode(&[entry("metered", Some("acme"), 4)]);
    let big = encode(
        &(0..20)
            .map(|k| entry("p", Some("t"), k))
            .collect::<Vec<_>>(),
    );
    c.add(
        "journal",
        "usage",
        &ring(&[a.clone(), b.clone()], None),
        Expect::Accepted,
    )?;
    c.add(
        "journal",
        "usage-torn",
        &ring(&[a.clone(), b.clone()], Some(1)),
        Expect::Accepted,
    )?;
    c.add(
        "journal",
        "usage-wrapped",
        &ring(&[big.clone(), big, a], None),
        Expect::Accepted,
    )?;
    c.add("journal", "blank", &[0u8; 4 * SECTOR], Expect::Refused)?;
    Ok(())
}

// ---- auth_header ---------------------------------------------------------------------

fn auth_header(c: &mut Corpus) -> Result<(), CorpusError> {
    use plinth_auth::{Role, mint};
    let (ops, _) = mint([1; 40], "ops", Role::Operator, None);
    let (acme, _) = mint([2; 40], "acme", Role::Tenant("acme".into()), Some(2000));
    let (stranger, _) = mint([3; 40], "x", Role::Operator, None);
    let cases = [
        ("operator", format!("Bearer {ops}"), Expect::Accepted),
        (
            "tenant-loose",
            format!("  bearer   {acme} "),
            Expect::Accepted,
        ),
        ("unknown", format!("Bearer {stranger}"), Expect::Refused),
        ("basic", format!("Basic {ops}"), Expect::Refused),
        ("short", format!("Bearer {}", &ops[..40]), Expect::Refused),
    ];
    for (name, data, expect) in cases {
        c.add("auth_header", name, data.as_bytes(), expect)?;
    }
    Ok(())
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let run = || -> Result<Corpus, CorpusError> {
        let mut c = Corpus::open(root.clone())?;
        cmdline(&mut c)?;
        start_info(&mut c)?;
        http_connection(&mut c)?;
        pci_capabilities(&mut c)?;
        tar_archive(&mut c)?;
        agent_container(&mut c)?;
        gpt(&mut c)?;
        policy_set(&mut c)?;
        catalog(&mut c)?;
        elf(&mut c)?;
        control(&mut c)?;
        bridge_frames(&mut c)?;
        rx_offload(&mut c)?;
        journal(&mut c)?;
        auth_header(&mut c)?;
        Ok(c)
    };
    match run() {
        Ok(c) if c.unexpected.is_empty() => {
            for (target, (files, accepted)) in &c.counts {
                println!("{target}: {files} generated files, {accepted} accepted");
            }
        }
        Ok(c) => {
            for e in &c.unexpected {
                eprintln!("corpus: {e}");
            }
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("corpus: {e}");
            std::process::exit(1);
        }
    }
}
