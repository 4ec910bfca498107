//! The catalog: what an appliance image carries for the runtime, in one partition of its
//! disk. A versioned, checksummed header, then a ustar archive of the appliance spec, the
//! trusted keys, the policies and the agent containers.
//!
//! ```text
//! sector 0 (512 bytes)         header:
//!   0..8    magic "PLINTHCT"
//!   8..12   format version, u32 LE (1)
//!   12..16  header length, u32 LE (512)
//!   16..24  payload length in bytes, u64 LE
//!   24..56  SHA-256 of the payload
//!   56..88  SHA-256 of bytes 0..56 (the header's own checksum)
//!   88..512 zero
//! sector 1..                   payload: a ustar archive (plinth-tar), in this order
//!   appliance.toml             the spec (plinth-policy's format), naming the files below
//!   keys/NAME.pub              each trusted key, `ed25519 <hex>`
//!   policies/NAME.toml         each policy file, as written by the user
//!   agents/NAME-VERSION.agent  each agent container, signed
//! ```
//!
//! [`Catalog::open`] checks everything before anything is used: header, checksums, the
//! archive, the spec, every container's signature against the spec's keys, and the
//! policies cross-checked against the partitions and agents. An entry the spec does not
//! name is an error too: the catalog holds what it says and nothing else.
//!
//! This crate owns the format and that check; it does not read disks (the caller hands
//! it bytes) and it does not decide what runs (that is the runtime's, from the model).

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod json;
#[cfg(test)]
mod tests;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use plinth_container::{Container, ContainerError, Manifest, PublicKey, Version};
use plinth_gpt::Guid;
use plinth_policy::appliance::{AgentSource, Appliance};
use plinth_policy::policies::PolicySet;
use plinth_policy::{AgentDef, Diagnostic};
use plinth_tar::{Entry, Limits, TarError};
use sha2::{Digest, Sha256};

pub use json::{Extent, write_json};

/// GPT type of the catalog partition (one per appliance disk).
pub const CATALOG_PARTITION_TYPE: Guid = Guid::from_fields(
    0xd0e1_a0f1,
    0xeda9,
    0x4de7,
    [0xaa, 0x2b, 0x6f, 0x2c, 0xf4, 0x0f, 0x5d, 0x98],
);
/// GPT type of a partition's data disk; the GPT entry's name is the partition's name.
pub const DATA_PARTITION_TYPE: Guid = Guid::from_fields(
    0x1477_01e7,
    0xd6d4,
    0x42eb,
    [0xa6, 0x1f, 0xc1, 0x97, 0xb1, 0x03, 0xc4, 0xc9],
);
/// GPT name of the catalog partition.
pub const CATALOG_PARTITION_NAME: &str = "plinth-catalog";
/// GPT type of the state partition: the runtime's journal (`plinth-journal`), what must
/// outlive a restart (one per appliance disk).
pub const STATE_PARTITION_TYPE: Guid = Guid::from_fields(
    0x5a7e_0d15,
    0x6b1c,
    0x4e2a,
    [0x9d, 0x41, 0x27, 0xc3, 0x8e, 0x55, 0x0a, 0x6f],
);
/// GPT name of the state partition.
pub const STATE_PARTITION_NAME: &str = "plinth-state";
/// Sectors of the state partition an image gets: 2 MiB, some 200 usage records of a
/// hundred partitions each.
pub const STATE_PARTITION_SECTORS: u64 = 4096;

pub const MAGIC: [u8; 8] = *b"PLINTHCT";
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 512;
/// Name of the first entry of the payload.
pub const SPEC_NAME: &str = "appliance.toml";
/// The largest payload a runtime reads: it is held in memory whole while checked.
pub const MAX_PAYLOAD: u64 = 64 * 1024 * 1024;

/// Archive limits for the payload; containers inside are read with [`CONTAINER_LIMITS`].
pub const PAYLOAD_LIMITS: Limits = Limits {
    max_entries: 512,
    max_entry_bytes: 32 * 1024 * 1024,
    max_total_bytes: MAX_PAYLOAD,
};
pub const CONTAINER_LIMITS: Limits = Limits {
    max_entries: 256,
    max_entry_bytes: 16 * 1024 * 1024,
    max_total_bytes: 32 * 1024 * 1024,
};

/// The fixed-size header at the start of the catalog partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub payload_len: u64,
    pub payload_sha256: [u8; 32],
}

/// Why a catalog was refused. Displayed as one line for serial and the API.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatalogError {
    /// Fewer than 512 bytes where the header should be.
    ShortHeader,
    /// The partition does not start with the magic: no catalog was written there.
    BadMagic,
    UnsupportedVersion(u32),
    BadHeaderLength(u32),
    /// The header's own checksum does not match: the header is damaged.
    HeaderChecksum,
    /// The payload length is over [`MAX_PAYLOAD`] or over what the partition holds.
    PayloadTooLarge {
        len: u64,
        max: u64,
    },
    /// The payload's SHA-256 does not match the header: the catalog was changed or
    /// damaged after it was built.
    PayloadChecksum,
    Archive(TarError),
    /// The first entry is not `appliance.toml`.
    SpecNotFirst {
        found: String,
    },
    SpecNotUtf8,
    /// `appliance.toml` or a policy file has problems; each is `file:line:col: message`.
    Invalid(Vec<String>),
    /// A file the spec names is not in the archive.
    MissingFile {
        path: String,
    },
    /// An entry the spec does not name.
    UnexpectedFile {
        path: String,
    },
    /// A catalog's agents are packed containers; `dir` is for specs on the host.
    UnpackedAgent {
        path: String,
    },
    BadKeyFile {
        path: String,
    },
    Agent {
        path: String,
        error: ContainerError,
    },
    /// Two containers are the same agent at the same version.
    DuplicateAgent {
        name: String,
        version: Version,
    },
}

impl From<TarError> for CatalogError {
    fn from(e: TarError) -> Self {
        CatalogError::Archive(e)
    }
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogError::ShortHeader => f.write_str("the catalog partition is too small for a header"),
            CatalogError::BadMagic => f.write_str("no catalog: the partition does not start with \"PLINTHCT\""),
            CatalogError::UnsupportedVersion(v) => write!(
                f,
                "catalog format version {v} is not supported (this runtime reads {FORMAT_VERSION})"
            ),
            CatalogError::BadHeaderLength(n) => write!(f, "catalog header length {n}, expected {HEADER_LEN}"),
            CatalogError::HeaderChecksum => f.write_str("catalog header checksum mismatch: the header is damaged"),
            CatalogError::PayloadTooLarge { len, max } => {
                write!(f, "catalog payload of {len} bytes is over the {max}-byte limit")
            }
            CatalogError::PayloadChecksum => f.write_str(
                "catalog checksum mismatch: the contents were changed or damaged after the image was built",
            ),
            CatalogError::Archive(e) => write!(f, "catalog archive: {e}"),
            CatalogError::SpecNotFirst { found } => {
                write!(f, "the catalog's first file must be {SPEC_NAME:?}, found {found:?}")
            }
            CatalogError::SpecNotUtf8 => write!(f, "{SPEC_NAME} is not UTF-8"),
            CatalogError::Invalid(lines) => {
                for (i, l) in lines.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    f.write_str(l)?;
                }
                Ok(())
            }
            CatalogError::MissingFile { path } => write!(f, "{SPEC_NAME} names {path:?}, which is not in the catalog"),
            CatalogError::UnexpectedFile { path } => write!(f, "{path:?} is in the catalog but {SPEC_NAME} does not name it"),
            CatalogError::UnpackedAgent { path } => write!(
                f,
                "agent {path:?} is a directory entry; a catalog holds packed containers"
            ),
            CatalogError::BadKeyFile { path } => {
                write!(f, "{path}: not a key file (expected one line `ed25519 <64 hex digits>`)")
            }
            CatalogError::Agent { path, error } => write!(f, "{path}: {error}"),
            CatalogError::DuplicateAgent { name, version } => {
                write!(f, "two containers hold agent {name} {version}")
            }
        }
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Header {
    /// The header for `payload`.
    pub fn of(payload: &[u8]) -> Header {
        Header {
            payload_len: payload.len() as u64,
            payload_sha256: sha256(payload),
        }
    }

    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.payload_len.to_le_bytes());
        b[24..56].copy_from_slice(&self.payload_sha256);
        let own = sha256(&b[0..56]);
        b[56..88].copy_from_slice(&own);
        b
    }

    /// Reads a header from the first sector of the catalog partition. `capacity` is the
    /// partition's size in bytes; the payload must fit behind the header.
    pub fn parse(sector: &[u8], capacity: u64) -> Result<Header, CatalogError> {
        let b = sector.get(..HEADER_LEN).ok_or(CatalogError::ShortHeader)?;
        let u32_at = |at: usize| {
            let mut w = [0u8; 4];
            w.copy_from_slice(&b[at..at + 4]);
            u32::from_le_bytes(w)
        };
        if b[0..8] != MAGIC {
            return Err(CatalogError::BadMagic);
        }
        if b[56..88] != sha256(&b[0..56]) {
            return Err(CatalogError::HeaderChecksum);
        }
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(CatalogError::UnsupportedVersion(version));
        }
        let len = u32_at(12);
        if len as usize != HEADER_LEN {
            return Err(CatalogError::BadHeaderLength(len));
        }
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[16..24]);
        let payload_len = u64::from_le_bytes(w);
        let max = MAX_PAYLOAD.min(capacity.saturating_sub(HEADER_LEN as u64));
        if payload_len > max {
            return Err(CatalogError::PayloadTooLarge {
                len: payload_len,
                max,
            });
        }
        let mut payload_sha256 = [0u8; 32];
        payload_sha256.copy_from_slice(&b[24..56]);
        Ok(Header {
            payload_len,
            payload_sha256,
        })
    }

    /// The payload length rounded up to whole sectors: what to read after the header.
    pub fn payload_sectors(&self) -> u64 {
        self.payload_len.div_ceil(512)
    }
}

/// Header and payload, padded to whole sectors: the catalog partition's contents.
pub fn seal(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + 511);
    out.extend_from_slice(&Header::of(payload).to_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// Builds a sealed catalog (header and payload): `spec`, the appliance spec naming
/// archive paths, first, then `files` in the order given. The result reads back under
/// [`PAYLOAD_LIMITS`] or is refused here.
pub fn build(spec: &str, files: &[(&str, &[u8])]) -> Result<Vec<u8>, TarError> {
    let mut b = plinth_tar::Builder::with_limits(PAYLOAD_LIMITS);
    b.add_file(SPEC_NAME, 0o644, spec.as_bytes())?;
    for (name, data) in files {
        b.add_file(name, 0o644, data)?;
    }
    Ok(seal(&b.finish()))
}

/// An agent the catalog carries, its signature checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// The container's name in the catalog.
    pub file: String,
    pub manifest: Manifest,
    pub signer: PublicKey,
    /// SHA-256 of the container file: what an operator compares with the file pushed.
    pub sha256: [u8; 32],
    pub bytes: u64,
    /// The container's files (neither `manifest.toml` nor `SIGNATURE`), name and bytes,
    /// in archive order: what the runtime loads and serves to the agent.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Agent {
    /// The bytes of the container file `name`, if it has one.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.as_slice())
    }
}

/// A trusted key and the file it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub file: String,
    pub key: PublicKey,
}

/// A checked catalog: the runtime's model of partitions, agents and policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    pub appliance: Appliance,
    pub keys: Vec<Key>,
    pub agents: Vec<Agent>,
    pub policies: PolicySet,
    /// The policy files the set was read from, in the spec's order: (name, text). The
    /// runtime checks a live change against them with the one file replaced.
    pub policy_files: Vec<(String, String)>,
    pub payload_sha256: [u8; 32],
}

fn diagnostics(names: &[&str], diags: Vec<Diagnostic>) -> CatalogError {
    CatalogError::Invalid(
        diags
            .iter()
            .map(|d| {
                let name = names.get(d.file).copied().unwrap_or("?");
                format!("{name}:{d}")
            })
            .collect(),
    )
}

impl Catalog {
    /// Checks the payload against its header, then everything in it. The first problem
    /// is the error (for the spec and policies: all their diagnostics).
    pub fn open(header: &Header, payload: &[u8]) -> Result<Catalog, CatalogError> {
        let payload = payload
            .get(..usize::try_from(header.payload_len).unwrap_or(usize::MAX))
            .ok_or(CatalogError::PayloadChecksum)?;
        if sha256(payload) != header.payload_sha256 {
            return Err(CatalogError::PayloadChecksum);
        }
        let entries = plinth_tar::read(payload, &PAYLOAD_LIMITS)?;
        let first = entries.first().ok_or(CatalogError::SpecNotFirst {
            found: String::new(),
        })?;
        if first.name != SPEC_NAME {
            return Err(CatalogError::SpecNotFirst {
                found: first.name.to_string(),
            });
        }
        let spec_text = core::str::from_utf8(first.data).map_err(|_| CatalogError::SpecNotUtf8)?;
        let appliance = Appliance::parse(spec_text, 0).map_err(|d| diagnostics(&[SPEC_NAME], d))?;

        let mut named: Vec<&str> = Vec::new();
        let find = |path: &str| -> Result<&Entry<'_>, CatalogError> {
            entries
                .iter()
                .find(|e| e.name == path)
                .ok_or_else(|| CatalogError::MissingFile {
                    path: path.to_string(),
                })
        };

        let mut keys = Vec::new();
        for k in &appliance.trusted_keys {
            let e = find(&k.value)?;
            let key = plinth_container::parse_key_file(e.data, plinth_container::PUBLIC_KEY_PREFIX)
                .ok_or_else(|| CatalogError::BadKeyFile {
                    path: k.value.clone(),
                })?;
            named.push(&k.value);
            keys.push(Key {
                file: k.value.clone(),
                key: PublicKey(key),
            });
        }
        let trusted: Vec<PublicKey> = keys.iter().map(|k| k.key).collect();

        let mut agents: Vec<Agent> = Vec::new();
        for a in &appliance.agents {
            let path = match &a.value {
                AgentSource::File(p) => p,
                AgentSource::Dir(p) => {
                    return Err(CatalogError::UnpackedAgent { path: p.clone() });
                }
            };
            let e = find(path)?;
            let container =
                Container::open(e.data, &trusted, &CONTAINER_LIMITS).map_err(|error| {
                    CatalogError::Agent {
                        path: path.clone(),
                        error,
                    }
                })?;
            let manifest = container.manifest().clone();
            if agents
                .iter()
                .any(|x| x.manifest.name == manifest.name && x.manifest.version == manifest.version)
            {
                return Err(CatalogError::DuplicateAgent {
                    name: manifest.name,
                    version: manifest.version,
                });
            }
            named.push(path);
            agents.push(Agent {
                file: path.clone(),
                manifest,
                signer: container.signer(),
                sha256: sha256(e.data),
                bytes: e.data.len() as u64,
                files: container
                    .files()
                    .iter()
                    .map(|f| (String::from(&*f.name), Vec::from(f.data)))
                    .collect(),
            });
        }

        let mut texts: Vec<&str> = Vec::new();
        let mut names: Vec<&str> = Vec::from([SPEC_NAME]);
        for p in &appliance.policies {
            let e = find(&p.value)?;
            let text = core::str::from_utf8(e.data).map_err(|_| {
                CatalogError::Invalid(Vec::from([format!("{}: not UTF-8", p.value)]))
            })?;
            named.push(&p.value);
            names.push(&p.value);
            texts.push(text);
        }
        if let Some(extra) = entries.iter().skip(1).find(|e| !named.contains(&&*e.name)) {
            return Err(CatalogError::UnexpectedFile {
                path: extra.name.to_string(),
            });
        }

        let agent_defs: Vec<AgentDef> = agents
            .iter()
            .map(|a| AgentDef {
                name: a.manifest.name.clone(),
                version: a.manifest.version,
            })
            .collect();
        let partitions = appliance.partition_defs();
        let world = appliance.world(&partitions, &agent_defs);
        let files: Vec<(usize, &str)> =
            texts.iter().enumerate().map(|(i, t)| (i + 1, *t)).collect();
        let named: Vec<(usize, &str)> = names.iter().copied().enumerate().collect();
        let policies =
            PolicySet::check_named(&files, &named, &world).map_err(|d| diagnostics(&names, d))?;

        let policy_files = names
            .iter()
            .skip(1)
            .zip(&texts)
            .map(|(n, t)| (String::from(*n), String::from(*t)))
            .collect();
        Ok(Catalog {
            appliance,
            keys,
            agents,
            policies,
            policy_files,
            payload_sha256: header.payload_sha256,
        })
    }
}
