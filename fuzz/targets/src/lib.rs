//! The body of every fuzz target, one function per target, so the two ways the targets
//! run execute the same checks and cannot drift apart: the cargo-fuzz binaries in
//! `fuzz/fuzz_targets/` (libFuzzer, nightly) call these functions and nothing else, and
//! the stable driver in `tests/fuzz.rs`, which the root `cargo test` runs, replays the
//! committed corpora in `fuzz/corpus/<target>/` through them and then mutates those
//! corpora for a bounded time.
//!
//! This crate owns how each target reads its input and what it asserts about what the
//! parsers make of it. It must not touch the parsers (each crate owns its format, and
//! the larger input formats and checks stay in those crates' `fuzzing` modules, which
//! their unit tests share) nor generate inputs (libFuzzer's job, or the driver's). A
//! panic is a finding.
//!
//! Each function returns a [`Verdict`]: whether the parser under test accepted the
//! input, that is whether the checks past its checksums and signatures ran. libFuzzer
//! ignores it; the driver requires every committed corpus to hold accepted inputs, so a
//! format change that leaves a corpus stuck at the first checksum fails the build
//! instead of quietly fuzzing nothing.

#![forbid(unsafe_code)]

use plinth_boot::{BootInfo, PhysMemory};
use plinth_catalog::{Catalog, HEADER_LEN, Header, seal};
use plinth_container::{Container, Manifest, PublicKey, SignatureStatus};
use plinth_elf::{Executable, PAGE_SIZE, Window};
use plinth_frames::RegionKind;
use plinth_pci::{DeviceFunction, VirtioCfg};
use plinth_policy::appliance::Appliance;
use plinth_policy::policies::PolicySet;
use plinth_policy::{AgentDef, Machine, PartitionDef, Version, World};
use plinth_tar::{Builder, check_name};

/// How far one input got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The parser under test accepted the input: everything past its checksums,
    /// signatures and syntax ran.
    Accepted,
    /// Refused somewhere on the way (which is what most inputs are).
    Refused,
}

impl Verdict {
    fn of(accepted: bool) -> Verdict {
        if accepted {
            Verdict::Accepted
        } else {
            Verdict::Refused
        }
    }
}

/// A fuzz target: its name (the cargo-fuzz binary, and the folder of its corpus) and
/// its body.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]) -> Verdict,
}

/// Every target, in the order of `fuzz/Cargo.toml`.
pub const TARGETS: [Target; 15] = [
    Target {
        name: "cmdline",
        run: cmdline,
    },
    Target {
        name: "start_info",
        run: start_info,
    },
    Target {
        name: "http_connection",
        run: http_connection,
    },
    Target {
        name: "pci_capabilities",
        run: pci_capabilities,
    },
    Target {
        name: "tar_archive",
        run: tar_archive,
    },
    Target {
        name: "agent_container",
        run: agent_container,
    },
    Target {
        name: "gpt",
        run: gpt,
    },
    Target {
        name: "policy_set",
        run: policy_set,
    },
    Target {
        name: "catalog",
        run: catalog,
    },
    Target {
        name: "elf",
        run: elf,
    },
    Target {
        name: "control",
        run: control,
    },
    Target {
        name: "bridge_frames",
        run: bridge_frames,
    },
    Target {
        name: "rx_offload",
        run: rx_offload,
    },
    Target {
        name: "journal",
        run: journal,
    },
    Target {
        name: "auth_header",
        run: auth_header,
    },
];

/// The kernel command line: any bytes the firmware hands over (lossily decoded, as the
/// start_info reader cuts at the first invalid byte) must parse without panicking, and
/// every kept problem must point into the input. Accepted: no problem at all.
pub fn cmdline(data: &[u8]) -> Verdict {
    let text = String::from_utf8_lossy(data);
    let parsed = plinth_cmdline::parse(&text);
    for p in &parsed.problems {
        let start = p.token.as_ptr() as usize;
        let base = text.as_ptr() as usize;
        assert!(start >= base && start + p.token.len() <= base + text.len());
    }
    Verdict::of(parsed.problems.is_empty() && parsed.dropped_problems == 0)
}

/// Physical memory for [`start_info`]: the input's bytes at address 0, nothing else.
struct Memory<'a>(&'a [u8]);

impl PhysMemory for Memory<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Ok(a) = usize::try_from(addr) else {
            return false;
        };
        match a.checked_add(buf.len()).and_then(|end| self.0.get(a..end)) {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}

/// The PVH start_info reader against arbitrary physical memory: the first 8 bytes pick
/// the start_info address (little-endian, modulo the input's length plus 64, so most
/// picks are inside), the rest is memory at address 0. It must never panic, and an
/// accepted result must stay within its bounds.
pub fn start_info(data: &[u8]) -> Verdict {
    let Some((head, memory)) = data.split_first_chunk::<8>() else {
        return Verdict::Refused;
    };
    let addr = u64::from_le_bytes(*head) % (data.len() as u64 + 64);
    let Ok(info) = BootInfo::read(&Memory(memory), addr) else {
        return Verdict::Refused;
    };
    assert!(info.cmdline().len() <= plinth_boot::pvh::CMDLINE_MAX);
    // What the frame allocator is built from: sorted, disjoint (touching ranges are
    // merged), frame-aligned, inside usable regions and clear of every other region.
    let usable = info.memory_map.usable();
    for (i, r) in usable.iter().enumerate() {
        assert!(
            r.start < r.end && r.start % 4096 == 0 && r.end % 4096 == 0,
            "{r:?}"
        );
        assert!(i == 0 || usable[i - 1].end < r.start, "{usable:?}");
        for other in info.memory_map.regions() {
            if other.kind != RegionKind::Usable {
                assert!(!other.range.overlaps(r), "{r:?} overlaps {other:?}");
            }
        }
    }
    Verdict::Accepted
}

/// The management API's HTTP connection against arbitrary clients: bytes in arbitrary
/// chunks, arbitrary clock steps (reaching every timeout), partial sends, every request
/// answered or, when it asks to upgrade, switched to a raw protocol. It must never panic,
/// buffered memory must stay within the limits, a switched connection must take no more
/// input and never time out, and feeding the same bytes whole or in pieces must give the
/// same requests, output and bytes handed to the new protocol. The script format and the
/// checks live in `plinth_http::fuzzing`, which the crate's unit tests also run over
/// random scripts. Accepted: at least one request was handed out.
pub fn http_connection(data: &[u8]) -> Verdict {
    Verdict::of(plinth_http::fuzzing::connection(data) > 0)
}

/// PCI capability decoding: a device's config space is outside input (a buggy or
/// hostile device model). The first 256 bytes are config space (zero-padded), the rest
/// describes the placed BARs (see `plinth_pci::fuzzing::function_with_bars`). Decoding
/// must not panic or loop, and any address decoded must lie inside the BAR it names.
/// Accepted: some structure (MSI-X table or virtio region) was found inside a BAR.
pub fn pci_capabilities(data: &[u8]) -> Verdict {
    let mut space = [0u8; 256];
    let n = data.len().min(256);
    space[..n].copy_from_slice(&data[..n]);
    let read = |_: DeviceFunction, off: u8| {
        let o = usize::from(off & 0xfc);
        u32::from_le_bytes([space[o], space[o + 1], space[o + 2], space[o + 3]])
    };
    let at = DeviceFunction {
        bus: 0,
        device: 1,
        function: 0,
    };
    let f = plinth_pci::fuzzing::function_with_bars(data.get(256..).unwrap_or_default());
    let mut placed = false;
    if let Some(m) = plinth_pci::find_msix(read, at)
        && let Some(addr) = m.table_address(&f)
    {
        assert!(plinth_pci::fuzzing::inside_a_bar(
            &f,
            addr,
            u64::from(m.table_size) * 16
        ));
        placed = true;
    }
    for kind in [
        VirtioCfg::Common,
        VirtioCfg::Notify,
        VirtioCfg::Isr,
        VirtioCfg::Device,
    ] {
        if let Some(r) = plinth_pci::find_virtio(read, at, kind)
            && let Some(addr) = r.address(&f)
        {
            assert!(plinth_pci::fuzzing::inside_a_bar(
                &f,
                addr,
                u64::from(r.length)
            ));
            placed = true;
        }
    }
    let _ = plinth_pci::find_virtio_notify(read, at);
    Verdict::of(placed)
}

/// The agent container's ustar layer against arbitrary bytes, read with the default
/// limits: it must never panic; every entry's data must be a slice of the input, its name
/// must pass the name rules and its mode fit the permission bits; and an archive that
/// parses must rebuild (same names, modes, data, order) into one that reads back the same.
pub fn tar_archive(data: &[u8]) -> Verdict {
    let limits = plinth_tar::Limits::default();
    let Ok(entries) = plinth_tar::read(data, &limits) else {
        return Verdict::Refused;
    };
    let input = data.as_ptr_range();
    for e in &entries {
        let inside = e.data.as_ptr_range();
        assert!(input.start <= inside.start && inside.end <= input.end);
        assert_eq!(check_name(&e.name), Ok(()), "{:?}", e.name);
        assert!(e.mode <= 0o7777);
    }

    // Whatever the reader accepts, the writer must be able to write under the same limits.
    let mut builder = Builder::new();
    for e in &entries {
        if let Err(err) = builder.add_file(&e.name, e.mode, e.data) {
            panic!("rebuilding {:?}: {err}", e.name);
        }
    }
    let rebuilt = builder.finish();
    let again = match plinth_tar::read(&rebuilt, &limits) {
        Ok(again) => again,
        Err(err) => panic!("reading the rebuilt archive: {err}"),
    };
    assert_eq!(again, entries);
    Verdict::Accepted
}

/// The key [`agent_container`] trusts: the public key of the ed25519 seed
/// [`TRUSTED_SEED`]. Inputs signed by it are found only by mutating the seed corpus,
/// which the corpus generator signs with that seed.
pub const TRUSTED: PublicKey = PublicKey([
    0xea, 0x4a, 0x6c, 0x63, 0xe2, 0x9c, 0x52, 0x0a, 0xbe, 0xf5, 0x50, 0x7b, 0x13, 0x2e, 0xc5, 0xf9,
    0x95, 0x47, 0x76, 0xae, 0xbe, 0xbe, 0x7b, 0x92, 0x42, 0x1e, 0xea, 0x69, 0x14, 0x46, 0xd2, 0x2c,
]);

/// The secret seed of [`TRUSTED`]: a test key, public on purpose (the key the container
/// crate's own tests sign with). Kept here rather than derived so this crate needs no
/// signing code.
pub const TRUSTED_SEED: [u8; 32] = [7; 32];

/// The agent container layer against arbitrary bytes: `Container::inspect` and
/// `Container::open` (trusting [`TRUSTED`]) must never panic, and neither may
/// `Manifest::parse` on the input read as UTF-8 text. What `open` accepts, `inspect`
/// accepts too, with a valid signature by the trusted key. Accepted: `open` accepted.
pub fn agent_container(data: &[u8]) -> Verdict {
    let limits = plinth_tar::Limits::default();
    let inspected = Container::inspect(data, &limits).map(|u| (u.signature(), u));
    let opened = Container::open(data, &[TRUSTED], &limits);
    if let Ok(c) = &opened {
        let Ok((status, u)) = inspected else {
            panic!("open accepted what inspect refused");
        };
        assert_eq!(status, SignatureStatus::Valid { key: TRUSTED });
        assert_eq!(u.verify(&[TRUSTED]).ok().as_ref(), Some(c));
    }
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = Manifest::parse(text);
    }
    Verdict::of(opened.is_ok())
}

/// The appliance disk's partition table against arbitrary disks: the input is a flag byte
/// and a disk image, and the flags can re-compute the tables' CRCs, write a protective MBR
/// and make the disk longer than the image (so reads past it fail, as on a truncated
/// disk). The reader must never panic, never ask for a sector past the disk or for more
/// than 128 KiB at once, and a table it accepts must keep every promise the crate makes
/// and, planned again, write a table that reads back the same. The input format and the
/// checks live in `plinth_gpt::fuzzing`, which the crate's unit tests also run over random
/// corruptions. Accepted: a table was read.
pub fn gpt(data: &[u8]) -> Verdict {
    Verdict::of(plinth_gpt::fuzzing::disk(data))
}

fn partition(name: &str, labels: &[&str], memory_mib: u64, cpus: u32) -> PartitionDef {
    PartitionDef {
        name: name.into(),
        labels: labels.iter().map(|l| (*l).into()).collect(),
        memory_mib,
        cpus,
    }
}

fn agent(name: &str, major: u32, minor: u32, patch: u32) -> AgentDef {
    AgentDef {
        name: name.into(),
        version: Version {
            major,
            minor,
            patch,
        },
    }
}

/// Bit 0 of [`policy_set`]'s first byte: the machine is known.
pub const POLICY_MACHINE: u8 = 1;
/// Bit 1: the partitions are known.
pub const POLICY_PARTITIONS: u8 = 2;
/// Bit 2: the agents are known.
pub const POLICY_AGENTS: u8 = 4;

/// A set of policy files against arbitrary bytes: the first byte picks which parts of a
/// fixed world are known ([`POLICY_MACHINE`], [`POLICY_PARTITIONS`], [`POLICY_AGENTS`]),
/// the rest is split at NUL bytes into up to eight files, each read as UTF-8 (lossily, as
/// a runtime reading a disk it does not trust would). `PolicySet::check` must never
/// panic; what it rejects must come with diagnostics that are sorted, name a file of the
/// set and a line inside it; what it accepts must render as JSON, and checking the same
/// files again must give the same. Accepted: the set checked out.
///
/// The world: partitions `mgmt` (label `monitoring`), `edge-a` (`edge`, `monitoring`),
/// `edge-b` (`edge`), `tenant-a`, and `big` (`edge`, huge, for the sums); agents `hello`
/// 0.1.0 and 0.2.0, `probe` 1.0.0, `web` 2.3.4; a machine of 4096 MiB and 4 CPUs.
pub fn policy_set(data: &[u8]) -> Verdict {
    let Some((&flags, rest)) = data.split_first() else {
        return Verdict::Refused;
    };
    // Names and labels a mutated seed is likely to hit; one huge partition for the sums.
    let partitions = [
        partition("mgmt", &["monitoring"], 1024, 2),
        partition("edge-a", &["edge", "monitoring"], 256, 1),
        partition("edge-b", &["edge"], 128, 1),
        partition("tenant-a", &[], 512, 2),
        partition("big", &["edge"], u64::MAX, u32::MAX),
    ];
    let agents = [
        agent("hello", 0, 1, 0),
        agent("hello", 0, 2, 0),
        agent("probe", 1, 0, 0),
        agent("web", 2, 3, 4),
    ];
    let world = World {
        machine: (flags & POLICY_MACHINE != 0).then_some(Machine {
            memory_mib: 4096,
            cpus: 4,
        }),
        partitions: (flags & POLICY_PARTITIONS != 0).then_some(&partitions[..]),
        agents: (flags & POLICY_AGENTS != 0).then_some(&agents[..]),
    };
    let texts: Vec<String> = rest
        .split(|&b| b == 0)
        .take(8)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let files: Vec<(usize, &str)> = texts.iter().map(String::as_str).enumerate().collect();

    let first = PolicySet::check(&files, &world);
    match &first {
        Ok(set) => {
            let mut json = String::new();
            set.write_json(&mut json)
                .expect("writing to a String cannot fail");
            assert!(json.starts_with("{\"deployments\":[") && json.ends_with('}'));
        }
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty());
            assert!(diagnostics.windows(2).all(|w| w[0] < w[1]));
            for d in diagnostics {
                let text = texts[d.file].as_str();
                let lines = text.split('\n').count();
                assert!(
                    d.line >= 1 && d.line as usize <= lines && d.col >= 1,
                    "{d:?}"
                );
            }
        }
    }
    assert_eq!(PolicySet::check(&files, &world), first);
    Verdict::of(first.is_ok())
}

/// The catalog against arbitrary bytes, the way the runtime meets a disk it does not
/// trust: the input as a whole sealed catalog (header checked first), then the same bytes
/// re-sealed as a payload so the archive, spec, key, container and policy checks are
/// reached past the checksum. Neither may panic. The input read as text is also fed to
/// the appliance spec parser. Accepted: either reading opened a catalog.
pub fn catalog(data: &[u8]) -> Verdict {
    let mut opened = false;
    if let Ok(h) = Header::parse(data, data.len() as u64) {
        opened |= Catalog::open(&h, data.get(HEADER_LEN..).unwrap_or_default()).is_ok();
    }
    let sealed = seal(data);
    let h = Header::parse(&sealed, sealed.len() as u64).expect("seal writes a valid header");
    opened |= Catalog::open(&h, &sealed[HEADER_LEN..]).is_ok();
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = Appliance::parse(text, 0);
    }
    Verdict::of(opened)
}

/// Agent executables against arbitrary bytes: the parser must never panic, and an
/// executable it accepts must keep every promise the crate makes: at least one and at
/// most the limit of segments, sorted by address, each non-empty with its pages inside
/// the agent window and its bytes inside the file, page-wise mappable and never both
/// writable and executable, no page shared by two, the entry point inside an executable
/// segment, and the memory total within the limit.
pub fn elf(data: &[u8]) -> Verdict {
    let (window, limits) = (Window::AGENT, plinth_elf::Limits::AGENT);
    let Ok(exe) = Executable::parse(data, window, limits) else {
        return Verdict::Refused;
    };
    assert!(!exe.segments.is_empty() && exe.segments.len() <= limits.max_segments);
    for pair in exe.segments.windows(2) {
        assert!(pair[0].vaddr < pair[1].vaddr, "not sorted");
        assert!(pair[0].pages().end <= pair[1].pages().start, "overlap");
    }
    let mut bytes = 0u64;
    for s in &exe.segments {
        let pages = s.pages();
        assert!(
            window.start <= pages.start && pages.end <= window.end,
            "outside window"
        );
        assert!(pages.start % PAGE_SIZE == 0 && pages.end % PAGE_SIZE == 0);
        assert!(s.mem_size > 0 && s.file_size <= s.mem_size);
        assert_eq!(s.vaddr % PAGE_SIZE, s.file_offset % PAGE_SIZE);
        assert!(!(s.perms.write && s.perms.execute), "W^X");
        assert_eq!(s.file_bytes(data).len() as u64, s.file_size);
        bytes += pages.end - pages.start;
    }
    assert!(bytes <= limits.max_memory);
    assert_eq!(exe.memory_pages(), bytes / PAGE_SIZE);
    assert!(
        exe.segments
            .iter()
            .any(|s| s.perms.execute && s.vaddr <= exe.entry && exe.entry - s.vaddr < s.mem_size),
        "entry not in an executable segment"
    );
    Verdict::Accepted
}

/// The partition command set's decoder against arbitrary requests: the input is a method
/// selector byte (an index into `plinth_control::fuzzing::METHODS`), the path up to the
/// first newline, and the body. Decoding must never panic; an error must carry one of its
/// five statuses and a one-line message; a command it accepts must pass validation, and
/// its method, path and re-encoded body must decode to the same command. The input format
/// and the checks live in `plinth_control::fuzzing`, which the crate's unit tests also run
/// over every truncation and thousands of mutations of valid bodies. Accepted: it decoded.
pub fn control(data: &[u8]) -> Verdict {
    Verdict::of(plinth_control::fuzzing::request(data).is_some())
}

/// The tenant network switch against arbitrary traffic and reconfiguration: the input is
/// a sequence of records, each a frame offered on one of a fixed set of ports (two
/// tenants, the management stack, the uplink trunk, a routing partition's trunk) after a
/// clock step, or a command (remove, add or re-mode a port, age the table, report a
/// drop). Ingress must never panic; a frame must never reach a port outside its VLAN or
/// the port it came from; an accepted frame goes to exactly its learned port or exactly
/// every other port of its VLAN, tagged as each port's mode says; every copy written is
/// the frame with its tag rewritten, and reads back on a trunk as the same VLAN; the MAC
/// table keeps its bounds and structure. The input format and the checks live in
/// `plinth_bridge::fuzzing`, which the crate's unit tests also run over random and
/// plausible traffic. Accepted: at least one frame was forwarded.
pub fn bridge_frames(data: &[u8]) -> Verdict {
    Verdict::of(plinth_bridge::fuzzing::run(data) > 0)
}

/// What the uplink's device hands over with a received frame: the input is a
/// `virtio_net_hdr` (12 bytes) and the frame. The header must parse or be refused without
/// panicking; a super-frame it names is cut into segments that each fit the buffer they
/// are built in (room for a tagged 1500-byte frame) and carry a right TCP checksum, and a
/// checksum completed reads back as right. Accepted: the header parsed and the frame
/// was cut, or had its checksum completed.
pub fn rx_offload(data: &[u8]) -> Verdict {
    use plinth_offload::receive::{RxOffload, checksum_ok, fill_checksum, segment};
    const HEADER: usize = plinth_offload::HEADER_LEN;
    let Some((header, frame)) = data.split_at_checked(HEADER) else {
        return Verdict::Refused;
    };
    let Ok(offload) = RxOffload::from_header(header) else {
        return Verdict::Refused;
    };
    let mut done = false;
    if let Some(mss) = offload.gso_size {
        let mut out = [0u8; 1518];
        let mut pieces = 0;
        if let Ok(n) = segment(frame, usize::from(mss), &mut out, |s| {
            assert!(s.len() <= 1518);
            assert!(checksum_ok(s), "a segment cut with a wrong checksum");
            pieces += 1;
        }) {
            assert_eq!(n, pieces);
            done = true;
        }
    }
    let mut copy = frame.to_vec();
    if fill_checksum(&mut copy) {
        assert!(checksum_ok(&copy), "a completed checksum reads back wrong");
        assert_eq!(copy.len(), frame.len());
        done = true;
    }
    Verdict::of(done)
}

/// The tokens [`auth_header`] knows: an operator's that does not expire and a tenant's
/// that expires at Unix time 2000 (the target's clock reads 1000). The corpus generator
/// mints the same from these bytes.
pub fn auth_entries() -> [plinth_auth::Entry; 2] {
    use plinth_auth::{Role, mint};
    [
        mint([1; 40], "ops", Role::Operator, None).1,
        mint([2; 40], "acme", Role::Tenant("acme".into()), Some(2000)).1,
    ]
}

/// A request's `Authorization` header, any bytes: the check must not panic, and what
/// it lets through must be one of the known tokens, unexpired at the target's clock,
/// presented as `Bearer` (any case, spaces around). Accepted: a token was let through.
pub fn auth_header(data: &[u8]) -> Verdict {
    let entries = auth_entries();
    let Ok(e) = plinth_auth::check(&entries, Some(data), Some(1000)) else {
        return Verdict::Refused;
    };
    let text = core::str::from_utf8(data).expect("a token let through is ASCII");
    let token = text.trim_matches([' ', '\t'])[6..].trim_matches([' ', '\t']);
    let (id, secret) = plinth_auth::parse(token.as_bytes()).expect("a token's shape");
    assert_eq!((id, plinth_auth::hash(&secret)), (e.id, e.hash));
    assert!(e.expires.is_none_or(|at| at > 1000));
    Verdict::Accepted
}

/// The state partition as the runtime finds it at boot: the input is the ring, any bytes
/// (a disk may hold anything after a power cut or a bad hand). Recovery must not panic;
/// what it returns must be records whose sequence numbers run on by one, each where
/// its sector says and of a length the ring holds, with the journal going on after the
/// newest; each usage record decodes or is refused, never panics, and one that decodes
/// encodes back to the same bytes. Accepted: a usage record decoded.
pub fn journal(data: &[u8]) -> Verdict {
    use plinth_journal::{Kind, SECTOR, recover, sectors_for, usage};
    let (mut j, records) = recover(data);
    let sectors = (data.len() / SECTOR) as u64;
    let mut accepted = false;
    for pair in records.windows(2) {
        assert_eq!(pair[0].seq.wrapping_add(1), pair[1].seq);
    }
    for r in &records {
        assert!(r.at + sectors_for(r.payload.len()) <= sectors);
        if r.kind == Kind::Usage
            && let Ok(entries) = usage::decode(&r.payload)
        {
            // Names are cut to 255 bytes on the way in, so what decoded encodes back.
            assert_eq!(usage::encode(&entries), r.payload);
            accepted = true;
        }
    }
    if let Some(last) = records.last() {
        assert_eq!(j.next_seq(), last.seq.wrapping_add(1));
    }
    // The next record goes where recovery would find it again.
    if let Ok((at, bytes)) = j.append(Kind::Usage, b"next") {
        let mut ring = data[..sectors as usize * SECTOR].to_vec();
        let start = at as usize * SECTOR;
        ring[start..start + bytes.len()].copy_from_slice(&bytes);
        let (_, again) = recover(&ring);
        assert_eq!(
            again.last().map(|r| r.payload.as_slice()),
            Some(&b"next"[..])
        );
    }
    Verdict::of(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trusted_key_is_the_seeds() {
        assert_eq!(plinth_container::public_key(&TRUSTED_SEED), TRUSTED);
    }
}
