//! Appliance images on the host: `plinth image build | inspect`, and the default
//! appliance `plinth run` boots.
//!
//! An image is a raw disk with a GPT: a catalog partition (`plinth-catalog`'s format:
//! the spec, keys, policies and signed agent containers), the runtime's state partition
//! (its journal, blank in a new image) and one data-disk extent per partition that asks
//! for one. Owns gathering the inputs, the disk layout on the host
//! and reporting; the formats and checks are the shared crates', so what `build` checks
//! is what the runtime checks at boot.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use indicatif::{ProgressBar, ProgressStyle};
use plinth_catalog::{
    CATALOG_PARTITION_NAME, CATALOG_PARTITION_TYPE, CONTAINER_LIMITS, Catalog, DATA_PARTITION_TYPE,
    HEADER_LEN, Header, STATE_PARTITION_NAME, STATE_PARTITION_SECTORS, STATE_PARTITION_TYPE,
};
use plinth_container::{Container, PublicKey};
use plinth_gpt::{Guid, Layout, PartitionSpec};
use plinth_policy::appliance::{AgentSource, Appliance};
use plinth_policy::{AgentDef, At};
use sha2::{Digest, Sha256};

use crate::agent::{self, AgentError};
use crate::policy::{self, PolicyError, Source};

/// Sectors per MiB.
const MIB_SECTORS: u64 = 2048;

/// The default appliance's spec, relative to the repository root.
pub const DEFAULT_SPEC: &str = "tools/appliance/appliance.toml";
/// The key the default appliance's directory agents are signed with: a development key,
/// committed so the default image builds anywhere. Never trust it in production.
pub const DEFAULT_KEY: &str = "tools/appliance/keys/dev.key";
/// Where the default appliance's agent directories are; their `bin/` is built.
pub const DEFAULT_AGENTS: &str = "tools/appliance/agents";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Build(#[from] crate::build::BuildError),
    #[error("{spec}: agent {dir:?} is a directory and must be signed: give --key SECRET_KEY")]
    NoKey { spec: PathBuf, dir: String },
    #[error("{path}: {message}")]
    Untrusted { path: PathBuf, message: String },
    #[error("{what} {name:?} is named twice; the catalog keeps one file per name")]
    Duplicate { what: &'static str, name: String },
    #[error("building the catalog: {0}")]
    Catalog(String),
    #[error("disk layout: {0}")]
    Layout(String),
    #[error(transparent)]
    Setup(#[from] crate::setup::SetupError),
    #[error("qemu-img convert failed ({status}): {stderr}")]
    QemuImg { status: String, stderr: String },
    #[error("{path}: {message}")]
    Image { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Raw,
    Qcow2,
}

/// What `build` wrote.
#[derive(Debug)]
pub struct Built {
    pub appliance: String,
    pub disk_bytes: u64,
    pub catalog_bytes: usize,
    pub partitions: Vec<plinth_gpt::Partition>,
    pub agents: usize,
    pub policies: usize,
}

/// A GUID derived from the appliance and `what`, so the same spec builds the same image.
fn guid_for(a: &Appliance, what: &str) -> Guid {
    let mut h = Sha256::new();
    h.update(b"plinth-image\0");
    h.update(a.name.as_bytes());
    h.update(b"\0");
    h.update(a.version.to_string().as_bytes());
    h.update(b"\0");
    h.update(what.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    Guid::from_hash(b)
}

/// The last path component, for the catalog's flat `keys/` and `policies/` folders.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn progress(enabled: bool, steps: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    // Draws only on a terminal; hidden when stderr is a pipe or file.
    let bar = ProgressBar::new(steps);
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The catalog an image of `spec` holds, and the appliance with paths rewritten.
struct Gathered {
    appliance: Appliance,
    catalog: Vec<u8>,
    agents: usize,
}

fn gather(spec_path: &Path, key: Option<&Path>, bar: &ProgressBar) -> Result<Gathered, ImageError> {
    let spec_src = policy::read_source(spec_path)?;
    let spec = Appliance::parse(&spec_src.text, 0).map_err(|d| {
        PolicyError::Problems(policy::format_diagnostics(
            std::slice::from_ref(&spec_src),
            &d,
        ))
    })?;
    bar.set_length((spec.agents.len() + spec.policies.len() + 3) as u64);
    let base = policy::base_of(spec_path);
    let mut out = spec.clone();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |what: &'static str, name: String, data: Vec<u8>| -> Result<(), ImageError> {
        if files.iter().any(|(n, _)| *n == name) {
            return Err(ImageError::Duplicate { what, name });
        }
        files.push((name, data));
        Ok(())
    };

    bar.set_message("keys");
    let mut trusted: Vec<PublicKey> = Vec::new();
    out.trusted_keys.clear();
    for k in &spec.trusted_keys {
        let key = agent::read_public(&base.join(&k.value))?;
        let name = format!("keys/{}", file_name(&k.value));
        add(
            "key file",
            name.clone(),
            format!("{} {key}\n", plinth_container::PUBLIC_KEY_PREFIX).into_bytes(),
        )?;
        trusted.push(key);
        out.trusted_keys.push(At::new(name, k.span.clone()));
    }

    let seed = match key {
        Some(k) => Some(agent::read_secret(k)?),
        None => None,
    };
    out.agents.clear();
    let mut defs: Vec<AgentDef> = Vec::new();
    for a in &spec.agents {
        bar.set_message(format!("agent {}", a.value.path()));
        let path = base.join(a.value.path());
        let data = match &a.value {
            AgentSource::Dir(dir) => {
                let seed = seed.as_ref().ok_or_else(|| ImageError::NoKey {
                    spec: spec_path.to_path_buf(),
                    dir: dir.clone(),
                })?;
                agent::pack_to_vec(&path, seed)?.0
            }
            AgentSource::File(_) => std::fs::read(&path).map_err(io(&path))?,
        };
        // The runtime refuses a container the spec's keys did not sign; so does the build.
        let c = Container::open(&data, &trusted, &CONTAINER_LIMITS).map_err(|e| {
            ImageError::Untrusted {
                path: path.clone(),
                message: format!("{e} (the spec's trusted_keys)"),
            }
        })?;
        let m = c.manifest();
        let name = format!("agents/{}-{}.agent", m.name, m.version);
        defs.push(AgentDef {
            name: m.name.clone(),
            version: m.version,
        });
        drop(c);
        add("agent container", name.clone(), data)?;
        out.agents
            .push(At::new(AgentSource::File(name), a.span.clone()));
        bar.inc(1);
    }

    bar.set_message("policies");
    let mut sources: Vec<Source> = vec![spec_src];
    out.policies.clear();
    for p in &spec.policies {
        let src = policy::read_source(&base.join(&p.value))?;
        let name = format!("policies/{}", file_name(&p.value));
        add("policy file", name.clone(), src.text.clone().into_bytes())?;
        out.policies.push(At::new(name, p.span.clone()));
        sources.push(src);
        bar.inc(1);
    }
    let names: Vec<String> = sources
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    let set: Vec<(&str, &str)> = names
        .iter()
        .zip(&sources)
        .map(|(n, s)| (n.as_str(), s.text.as_str()))
        .collect();
    plinth_policy::check_files(&set, Some(&defs))
        .map_err(|d| PolicyError::Problems(policy::format_diagnostics(&sources, &d)))?;

    bar.set_message("catalog");
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let catalog = plinth_catalog::build(&out.to_toml(), &refs)
        .map_err(|e| ImageError::Catalog(e.to_string()))?;
    // What the runtime will run at boot, run now: a build that passes boots.
    let header = Header::parse(&catalog, catalog.len() as u64)
        .map_err(|e| ImageError::Catalog(e.to_string()))?;
    Catalog::open(&header, &catalog[HEADER_LEN..])
        .map_err(|e| ImageError::Catalog(e.to_string()))?;
    bar.inc(1);
    Ok(Gathered {
        appliance: out,
        catalog,
        agents: defs.len(),
    })
}

/// Writes a raw image at `path`: a GPT with the catalog partition holding `catalog` (a
/// sealed catalog, see [`plinth_catalog::build`]), a blank state partition and a data
/// extent for each partition of `a` with a disk. GUIDs derive from `a`'s name and version, so images are
/// reproducible. Tests use this to write catalogs `build` would refuse.
pub fn write_image(path: &Path, a: &Appliance, catalog: &[u8]) -> Result<Layout, ImageError> {
    let catalog_sectors = (catalog.len() as u64)
        .div_ceil(512)
        .div_ceil(MIB_SECTORS)
        .max(1)
        * MIB_SECTORS;
    let mut parts = vec![PartitionSpec {
        name: CATALOG_PARTITION_NAME,
        type_guid: CATALOG_PARTITION_TYPE,
        unique_guid: guid_for(a, "catalog"),
        sectors: catalog_sectors,
    }];
    // Blank (the file is sparse and zeroed): an empty journal.
    parts.push(PartitionSpec {
        name: STATE_PARTITION_NAME,
        type_guid: STATE_PARTITION_TYPE,
        unique_guid: guid_for(a, "state"),
        sectors: STATE_PARTITION_SECTORS,
    });
    let guids: Vec<Guid> = a
        .partitions
        .iter()
        .map(|p| guid_for(a, &format!("data:{}", p.name)))
        .collect();
    for (p, guid) in a.partitions.iter().zip(&guids) {
        if p.disk_mib > 0 {
            parts.push(PartitionSpec {
                name: &p.name,
                type_guid: DATA_PARTITION_TYPE,
                unique_guid: *guid,
                sectors: p.disk_mib * MIB_SECTORS,
            });
        }
    }
    let layout =
        Layout::plan(guid_for(a, "disk"), &parts).map_err(|e| ImageError::Layout(e.to_string()))?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        // Sparse: the data extents cost nothing until partitions write them.
        f.set_len(layout.disk_sectors * 512)?;
        f.write_all(&layout.primary())?;
        f.seek(SeekFrom::Start(layout.partitions[0].first_lba * 512))?;
        f.write_all(catalog)?;
        f.seek(SeekFrom::Start(layout.backup_offset()))?;
        f.write_all(&layout.backup())?;
        f.sync_all()
    };
    write().map_err(io(path))?;
    Ok(layout)
}

/// Builds the appliance image of `spec_path` at `out`. Directory agents are packed and
/// signed with the secret key `key`. `show_progress` draws a bar on a terminal.
pub fn build(
    spec_path: &Path,
    out: &Path,
    format: Format,
    key: Option<&Path>,
    show_progress: bool,
) -> Result<Built, ImageError> {
    if format == Format::Qcow2 {
        // Before any work and the progress bar: apt may have to install it.
        qemu_img()?;
    }
    // Steps: each agent and policy, the catalog check, writing, converting.
    let bar = progress(show_progress, 3);
    let g = gather(spec_path, key, &bar)?;
    let a = &g.appliance;

    bar.set_message("writing");
    let raw_path = match format {
        Format::Raw => out.with_extension("img.part"),
        Format::Qcow2 => out.with_extension("raw.part"),
    };
    let layout = write_image(&raw_path, a, &g.catalog).inspect_err(|_| {
        let _ = std::fs::remove_file(&raw_path);
    })?;
    bar.inc(1);
    match format {
        Format::Raw => std::fs::rename(&raw_path, out).map_err(io(out))?,
        Format::Qcow2 => {
            bar.set_message("qemu-img convert");
            let r = Command::new(qemu_img()?)
                .args(["convert", "-f", "raw", "-O", "qcow2"])
                .arg(&raw_path)
                .arg(out)
                .output();
            let _ = std::fs::remove_file(&raw_path);
            let o = r.map_err(io(Path::new("qemu-img")))?;
            if !o.status.success() {
                return Err(ImageError::QemuImg {
                    status: o.status.to_string(),
                    stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
                });
            }
        }
    }
    bar.inc(1);
    bar.finish_and_clear();
    Ok(Built {
        appliance: format!("{} {}", a.name, a.version),
        disk_bytes: layout.disk_sectors * 512,
        catalog_bytes: g.catalog.len(),
        partitions: layout.partitions.clone(),
        agents: g.agents,
        policies: a.policies.len(),
    })
}

/// `qemu-img`, installed first if it is missing (qemu-utils; remembered once present).
fn qemu_img() -> Result<PathBuf, ImageError> {
    Ok(crate::setup::ensure_command(&crate::setup::QEMU_IMG)?)
}

/// A raw image's bytes at `[lba * 512, + buf.len())`.
fn read_at(f: &mut std::fs::File, lba: u64, buf: &mut [u8]) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(lba * 512))?;
    f.read_exact(buf)
}

/// The report `plinth image inspect` prints, and whether the catalog checked out.
pub struct Inspection {
    pub report: String,
    pub valid: bool,
}

/// Reads an image (raw, or qcow2 through `qemu-img convert`) the way the runtime does:
/// its GPT, then the catalog with every check.
pub fn inspect(path: &Path) -> Result<Inspection, ImageError> {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .map_err(io(path))?;
    if magic == *b"QFI\xfb" {
        let raw = std::env::temp_dir().join(format!("plinth-inspect-{}.raw", std::process::id()));
        let o = Command::new(qemu_img()?)
            .args(["convert", "-O", "raw"])
            .arg(path)
            .arg(&raw)
            .output()
            .map_err(io(Path::new("qemu-img")))?;
        if !o.status.success() {
            return Err(ImageError::QemuImg {
                status: o.status.to_string(),
                stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
            });
        }
        let r = inspect_raw(&raw);
        let _ = std::fs::remove_file(&raw);
        return r.map(|mut i| {
            i.report = format!("qcow2 image {}\n{}", path.display(), i.report);
            i
        });
    }
    inspect_raw(path)
}

fn inspect_raw(path: &Path) -> Result<Inspection, ImageError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let len = f.metadata().map_err(io(path))?.len();
    let bad = |message: String| ImageError::Image {
        path: path.to_path_buf(),
        message,
    };
    let table = plinth_gpt::read(len / 512, |lba, buf: &mut [u8]| read_at(&mut f, lba, buf))
        .map_err(|e| bad(e.to_string()))?;
    let mut r = format!(
        "disk {} MiB, GPT disk GUID {}{}\n",
        len >> 20,
        table.disk_guid,
        if table.used_backup {
            " (primary table damaged; backup used)"
        } else {
            ""
        }
    );
    r += &format!(
        "  {:>3} {:>10} {:>10} {:>9}  {:<16} type\n",
        "#", "start", "end", "size", "name"
    );
    for p in &table.partitions {
        let kind = if p.type_guid == CATALOG_PARTITION_TYPE {
            "plinth catalog"
        } else if p.type_guid == DATA_PARTITION_TYPE {
            "plinth data"
        } else {
            "other"
        };
        r += &format!(
            "  {:>3} {:>10} {:>10} {:>7}Mi  {:<16} {kind}\n",
            p.index + 1,
            p.first_lba,
            p.last_lba,
            (p.sectors() * 512) >> 20,
            p.name
        );
    }
    let Some(part) = table.find_by_type(&CATALOG_PARTITION_TYPE).next().cloned() else {
        r += "catalog: none (no partition of the catalog type)\n";
        return Ok(Inspection {
            report: r,
            valid: false,
        });
    };
    let result = (|| -> Result<Catalog, String> {
        let mut first = vec![0u8; 512];
        read_at(&mut f, part.first_lba, &mut first).map_err(|e| e.to_string())?;
        let header = Header::parse(&first, part.sectors() * 512).map_err(|e| e.to_string())?;
        let mut payload = vec![0u8; (header.payload_sectors() * 512) as usize];
        read_at(&mut f, part.first_lba + 1, &mut payload).map_err(|e| e.to_string())?;
        Catalog::open(&header, &payload).map_err(|e| e.to_string())
    })();
    match result {
        Ok(c) => {
            r += &describe(&c);
            Ok(Inspection {
                report: r,
                valid: true,
            })
        }
        Err(e) => {
            r += &format!("catalog: INVALID: {e}\n");
            Ok(Inspection {
                report: r,
                valid: false,
            })
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The catalog in lines a person reads.
fn describe(c: &Catalog) -> String {
    let a = &c.appliance;
    let mut r = format!(
        "catalog: format {}, sha256 {}, verified\nappliance {} {}: machine {} MiB, {} CPUs ({} MiB kept for the runtime)\n",
        plinth_catalog::FORMAT_VERSION,
        hex(&c.payload_sha256),
        a.name,
        a.version,
        a.machine.memory_mib,
        a.machine.cpus,
        a.runtime_mib
    );
    r += "partitions:\n";
    for p in &a.partitions {
        r += &format!(
            "  {:<16} {:>6} MiB {:>3} CPUs  disk {:>5} MiB  labels [{}]\n",
            p.name,
            p.memory_mib,
            p.cpus,
            p.disk_mib,
            p.labels.join(", ")
        );
    }
    r += "trusted keys:\n";
    for k in &c.keys {
        r += &format!("  {}  {}\n", k.key, k.file);
    }
    r += "agents:\n";
    for ag in &c.agents {
        r += &format!(
            "  {} {}  {} bytes  signed by {}  sha256 {}\n",
            ag.manifest.name,
            ag.manifest.version,
            ag.bytes,
            ag.signer,
            hex(&ag.sha256)
        );
    }
    r += "policies:\n";
    for p in &a.policies {
        r += &format!("  {}\n", p.value);
    }
    for d in &c.policies.deployments {
        r += &format!(
            "  deploy {} {} -> {}\n",
            d.agent,
            d.version,
            d.partitions.join(", ")
        );
    }
    for t in &c.policies.tenants {
        r += &format!("  tenant {} on VLAN {}\n", t.name, t.vlan);
    }
    r
}

/// Builds the default appliance image at `out` for `plinth run`, returning its
/// machine's memory in MiB.
pub fn build_default(out: &Path) -> Result<u64, ImageError> {
    let root = crate::repo_root();
    let spec = root.join(DEFAULT_SPEC);
    crate::build::install_agents(&root.join(DEFAULT_AGENTS), true)?;
    build(&spec, out, Format::Raw, Some(&root.join(DEFAULT_KEY)), true)?;
    let text = std::fs::read_to_string(&spec).map_err(io(&spec))?;
    Ok(Appliance::parse(&text, 0).map_or(128, |a| a.machine.memory_mib))
}

/// `plinth bench image`: how long building the default appliance takes, kernel and
/// agents already built (the image build is the tool's own work: packing, signing,
/// checking, writing).
#[derive(Debug, serde::Serialize)]
pub struct BuildBenchReport {
    pub spec: String,
    pub disk_bytes: u64,
    pub catalog_bytes: usize,
    pub agents: usize,
    pub build_ms: Vec<f64>,
    pub median_build_ms: f64,
    /// The target: under 5 s.
    pub target_ms: f64,
}

impl std::fmt::Display for BuildBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "image build benchmark: {} ({} MiB disk, catalog {} bytes, {} agents packed and signed)",
            self.spec,
            self.disk_bytes >> 20,
            self.catalog_bytes,
            self.agents
        )?;
        let each: Vec<String> = self.build_ms.iter().map(|t| format!("{t:.1}")).collect();
        write!(
            f,
            "build: median {:.1} ms over {} runs ({} ms); target < {:.0} ms: {:.4} of it",
            self.median_build_ms,
            self.build_ms.len(),
            each.join(", "),
            self.target_ms,
            self.median_build_ms / self.target_ms
        )
    }
}

/// Builds the default appliance `runs` times into a temporary directory.
pub fn bench_build(runs: usize) -> Result<BuildBenchReport, ImageError> {
    let root = crate::repo_root();
    let spec = root.join(DEFAULT_SPEC);
    let key = root.join(DEFAULT_KEY);
    crate::build::install_agents(&root.join(DEFAULT_AGENTS), true)?;
    let dir = std::env::temp_dir().join(format!("plinth-bench-image-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let out = dir.join("appliance.img");
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = std::time::Instant::now();
        let b = build(&spec, &out, Format::Raw, Some(&key), false);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        last = Some(b);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let b = match last {
        Some(r) => r?,
        None => return Err(ImageError::Catalog("--runs must be at least 1".into())),
    };
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(BuildBenchReport {
        spec: DEFAULT_SPEC.into(),
        disk_bytes: b.disk_bytes,
        catalog_bytes: b.catalog_bytes,
        agents: b.agents,
        median_build_ms: sorted[sorted.len() / 2],
        build_ms: times,
        target_ms: 5000.0,
    })
}

/// An appliance spec for [`build_with_examples`]: machine of `memory_mib`, the agents
/// `agents/NAME` for each of `agents`, `partitions` (TOML `[[partition]]` tables) and
/// the policy files `policies/FILE` for each of `policies`, trusting `keys/dev.pub`.
pub fn example_spec(
    memory_mib: u64,
    agents: &[&str],
    partitions: &str,
    policies: &[&str],
) -> String {
    let policies: Vec<String> = policies
        .iter()
        .map(|p| format!("\"policies/{p}\""))
        .collect();
    let mut s = format!(
        "kind = \"appliance\"\nname = \"example\"\nversion = \"0.1.0\"\n\
         trusted_keys = [\"keys/dev.pub\"]\npolicies = [{}]\n\n\
         [machine]\nmemory_mib = {memory_mib}\ncpus = 1\nruntime_mib = 64\n",
        policies.join(", ")
    );
    for a in agents {
        s += &format!("\n[[agent]]\ndir = \"agents/{a}\"\n");
    }
    s + partitions
}

/// A deployment policy placing each agent (version 0.1.0, as [`build_with_examples`]
/// packs them) in one partition.
pub fn example_deployment(pairs: &[(&str, &str)]) -> String {
    let mut s = String::from("kind = \"deployment\"\n");
    for (agent, to) in pairs {
        s += &format!("\n[[deploy]]\nagent = \"{agent}\"\nversion = \"0.1.0\"\nto = [\"{to}\"]\n");
    }
    s
}

/// One agent of an appliance assembled from hostshim's example agents: example
/// `example` packed as agent `name` 0.1.0 (so one executable can appear under several
/// names, each with its own config), with `config` files (path in the container,
/// contents). Tests and benchmarks build their appliances this way.
pub struct TestAgent<'a> {
    pub name: &'a str,
    pub example: &'a str,
    pub config: &'a [(&'a str, &'a str)],
}

/// Writes an appliance directory under `dir` — `spec` as `appliance.toml` (its agents
/// must be `agents/NAME` for each of `agents`, its key `keys/dev.pub`), `policies`
/// (file name, text) under `policies/`, the agents with executables from `built`
/// ([`crate::build::build_agents`]) — and builds it, signed with the development key,
/// into `dir/appliance.img`.
pub fn build_with_examples(
    dir: &Path,
    spec: &str,
    policies: &[(&str, &str)],
    agents: &[TestAgent<'_>],
    built: &[(&str, std::path::PathBuf)],
) -> Result<std::path::PathBuf, ImageError> {
    let root = crate::repo_root();
    let write = |path: std::path::PathBuf, data: &[u8]| -> Result<(), ImageError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, data).map_err(io(&path))
    };
    write(dir.join("appliance.toml"), spec.as_bytes())?;
    let key = root.join(DEFAULT_KEY);
    let public_path = key.with_extension("pub");
    let public = std::fs::read(&public_path).map_err(io(&public_path))?;
    write(dir.join("keys").join("dev.pub"), &public)?;
    for (name, text) in policies {
        write(dir.join("policies").join(name), text.as_bytes())?;
    }
    for a in agents {
        let Some((_, exe)) = built.iter().find(|(n, _)| *n == a.example) else {
            return Err(ImageError::Io {
                path: PathBuf::from(a.example),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such example agent in hostshim/examples",
                ),
            });
        };
        let d = dir.join("agents").join(a.name);
        write(
            d.join("bin").join(a.example),
            &std::fs::read(exe).map_err(io(exe))?,
        )?;
        let configs: Vec<String> = a.config.iter().map(|(p, _)| format!("{p:?}")).collect();
        let manifest = format!(
            "name = {:?}\nversion = \"0.1.0\"\nentry = \"bin/{}\"\nconfig = [{}]\n\n\
             [resources.cpu]\naverage_percent = 1\npeak_percent = 100\n\n\
             [resources.memory]\naverage_mib = 1\npeak_mib = 64\n",
            a.name,
            a.example,
            configs.join(", ")
        );
        write(d.join("manifest.toml"), manifest.as_bytes())?;
        for (p, text) in a.config {
            write(d.join(p), text.as_bytes())?;
        }
    }
    let out = dir.join("appliance.img");
    build(
        &dir.join("appliance.toml"),
        &out,
        Format::Raw,
        Some(&key),
        false,
    )?;
    Ok(out)
}
