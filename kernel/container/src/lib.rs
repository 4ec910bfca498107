//! The agent container (`.agent` file): what it holds, how it is signed, and the checks
//! that stand between a file from outside and an agent the runtime starts. One parser,
//! shared by the host tool (`plinth agent pack` / `inspect`) and the kernel.
//!
//! Owns the container format above the archive layer: the `manifest.toml` schema and its
//! validation ([`Manifest`], errors with line and column), the order of the entries, the
//! signing digest and the `SIGNATURE` line ([`signing_digest`], [`SignatureLine`]), the
//! trust decision against a list of keys ([`Container::open`]) and, behind the `sign`
//! feature, packing and signing ([`pack`]). It builds on `plinth-tar`, which owns the
//! ustar format and the path rules (no `..`, no absolute paths, no duplicates, UTF-8
//! names, size limits). It must not touch a file system, generate keys (randomness stays
//! in the tool), decide where trusted keys come from, or start anything: it hands back
//! checked bytes and a checked manifest.
//!
//! # Layout
//!
//! A ustar archive (see `plinth-tar`) of regular files, in this order:
//!
//! 1. `manifest.toml`, the [`Manifest`];
//! 2. the agent's executables and configuration files, any names, any order;
//! 3. `SIGNATURE`, last.
//!
//! No other entry may be called `manifest.toml` or `SIGNATURE` (the archive layer already
//! refuses a name twice). The manifest's `entry` and `config` paths must be files of the
//! container. Entries' modes are signed (an executable bit is part of what was packed);
//! times and owners are not, and mean nothing.
//!
//! # Signing digest
//!
//! SHA-256 over every entry except `SIGNATURE`, in archive order (so `manifest.toml`
//! first), each entry contributing
//!
//! ```text
//! u32 little-endian  length of the name in bytes
//! name bytes         UTF-8, as in the archive (prefix and name joined with `/`)
//! u32 little-endian  the entry's mode (permission bits, at most 0o7777)
//! u64 little-endian  length of the data in bytes
//! data bytes
//! ```
//!
//! The length prefixes make the encoding unambiguous: no two different entry lists hash
//! the same bytes. The rest of the headers (times, owners) is not covered.
//!
//! # `SIGNATURE`
//!
//! Exactly one line, 202 bytes: `ed25519 <public key> <signature>\n`, the key as 64 and
//! the signature as 128 lowercase hex digits, single spaces, one final `\n`, nothing
//! else. The signature is ed25519 (RFC 8032, pure) over the 32 digest bytes, checked with
//! `verify_strict` (small-order keys and malleable signatures are refused).
//!
//! # Checks, in order
//!
//! [`Container::open`] (the runtime): the archive layer, the layout, the signature (form,
//! key in the trusted list, then validity), and only then the manifest and its paths, so
//! the TOML parser sees only text a trusted key signed. [`Container::inspect`] (the
//! tool): the archive layer, the layout, the manifest and its paths; the signature is
//! reported, not required ([`Unverified::signature`]), and [`Unverified::verify`] makes
//! the trust decision later.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod manifest;
mod signature;

#[cfg(test)]
mod tests;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use plinth_tar::{Entry, Limits, TarError};

pub use manifest::{
    Cpu, Device, Disk, Manifest, ManifestError, Memory, Network, Resources, Version,
    check_agent_name, check_env_key, line_col,
};
pub use signature::{
    HexError, PUBLIC_KEY_PREFIX, PublicKey, SECRET_KEY_PREFIX, SignatureLine, SignatureLineError,
    VerifyError, parse_key_file, signing_digest,
};
#[cfg(any(test, feature = "sign"))]
pub use signature::{SigningKeyBytes, public_key, sign_digest};

/// Name of the first entry, the manifest.
pub const MANIFEST_NAME: &str = "manifest.toml";
/// Name of the last entry, the signature line.
/// Mode `pack` gives the manifest.
#[cfg(any(test, feature = "sign"))]
const MANIFEST_MODE: u32 = 0o644;

pub const SIGNATURE_NAME: &str = "SIGNATURE";

/// Why a container was refused (or, for [`pack`], could not be made).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContainerError {
    /// The archive layer refused the file (truncated, bad header, bad or duplicate name,
    /// over the limits, ...).
    Tar(TarError),
    /// The archive holds no files.
    Empty,
    /// The first file is not `manifest.toml`; `found` is what is there.
    ManifestNotFirst { found: String },
    /// No file is called `SIGNATURE`: the container is unsigned.
    SignatureMissing,
    /// `SIGNATURE` is entry `index` (of files, from 0) but not the last one.
    SignatureNotLast { index: usize },
    /// `manifest.toml` is not UTF-8; the position is that of the first bad byte.
    ManifestNotUtf8 { line: u32, col: u32 },
    /// `manifest.toml` is wrong.
    Manifest(ManifestError),
    /// The manifest's `field` (`entry` or `config`) names `path`, which is not a file of
    /// the container; `line:col` is where the manifest says so.
    MissingFile {
        field: &'static str,
        path: String,
        line: u32,
        col: u32,
    },
    /// The `SIGNATURE` entry is not a signature line.
    MalformedSignature(SignatureLineError),
    /// Signed with a key that is not trusted.
    UnknownKey { key: PublicKey },
    /// The signer's key bytes are not a usable ed25519 key.
    InvalidKey { key: PublicKey },
    /// The signature does not match the contents: the container was changed after
    /// signing, or signed by someone else with this key's name on it.
    BadSignature { key: PublicKey },
    /// [`pack`] was given a file called `manifest.toml` or `SIGNATURE`.
    ReservedName { name: String },
}

impl From<TarError> for ContainerError {
    fn from(e: TarError) -> Self {
        ContainerError::Tar(e)
    }
}

impl From<ManifestError> for ContainerError {
    fn from(e: ManifestError) -> Self {
        ContainerError::Manifest(e)
    }
}

impl fmt::Display for ContainerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerError::Tar(e) => write!(f, "bad archive: {e}"),
            ContainerError::Empty => f.write_str("the archive holds no files"),
            ContainerError::ManifestNotFirst { found } => write!(
                f,
                "the first file must be {MANIFEST_NAME:?}, found {found:?}"
            ),
            ContainerError::SignatureMissing => {
                write!(f, "no {SIGNATURE_NAME:?} file: the container is not signed")
            }
            ContainerError::SignatureNotLast { index } => write!(
                f,
                "{SIGNATURE_NAME:?} is file {index} but must be the last file"
            ),
            ContainerError::ManifestNotUtf8 { line, col } => {
                write!(f, "{MANIFEST_NAME}:{line}:{col}: not valid UTF-8")
            }
            ContainerError::Manifest(e) => write!(f, "{MANIFEST_NAME}:{e}"),
            ContainerError::MissingFile {
                field,
                path,
                line,
                col,
            } => write!(
                f,
                "{MANIFEST_NAME}:{line}:{col}: {field} file {path:?} is not in the container"
            ),
            ContainerError::MalformedSignature(e) => {
                write!(f, "malformed {SIGNATURE_NAME} file: {e}")
            }
            ContainerError::UnknownKey { key } => {
                write!(f, "signed by key {key}, which is not trusted")
            }
            ContainerError::InvalidKey { key } => {
                write!(f, "signed by {key}, which is not a valid ed25519 key")
            }
            ContainerError::BadSignature { key } => write!(
                f,
                "bad signature: the contents do not match what key {key} signed \
                 (modified or corrupted)"
            ),
            ContainerError::ReservedName { name } => write!(
                f,
                "{name:?} is reserved for the container itself and cannot be packed as a file"
            ),
        }
    }
}

/// Reads the archive and checks the layout: `manifest.toml` first, `SIGNATURE` last.
fn read_layout<'a>(archive: &'a [u8], limits: &Limits) -> Result<Vec<Entry<'a>>, ContainerError> {
    let entries = plinth_tar::read(archive, limits)?;
    let first = entries.first().ok_or(ContainerError::Empty)?;
    if first.name != MANIFEST_NAME {
        return Err(ContainerError::ManifestNotFirst {
            found: String::from(&*first.name),
        });
    }
    // The archive layer refuses duplicate names, so there is at most one SIGNATURE and
    // the only manifest.toml is the first entry.
    match entries.iter().position(|e| e.name == SIGNATURE_NAME) {
        None => Err(ContainerError::SignatureMissing),
        Some(index) if index + 1 != entries.len() => {
            Err(ContainerError::SignatureNotLast { index })
        }
        Some(_) => Ok(entries),
    }
}

/// Parses the manifest (the first entry) and checks that its paths are files.
fn read_manifest(entries: &[Entry<'_>]) -> Result<Manifest, ContainerError> {
    let data = entries.first().map_or(&[][..], |e| e.data);
    let text = core::str::from_utf8(data).map_err(|e| {
        let valid = data.get(..e.valid_up_to()).unwrap_or_default();
        let pos = manifest::pos_at(core::str::from_utf8(valid).unwrap_or_default(), usize::MAX);
        ContainerError::ManifestNotUtf8 {
            line: pos.line,
            col: pos.col,
        }
    })?;
    let manifest = Manifest::parse(text)?;
    check_references(&manifest, |path| entries.iter().any(|e| e.name == path))?;
    Ok(manifest)
}

/// Checks that `entry` and every `config` path is a file (`exists`).
fn check_references(
    manifest: &Manifest,
    exists: impl Fn(&str) -> bool,
) -> Result<(), ContainerError> {
    let missing = |field, path: &str, pos: manifest::Pos| ContainerError::MissingFile {
        field,
        path: String::from(path),
        line: pos.line,
        col: pos.col,
    };
    if !exists(&manifest.entry) {
        return Err(missing("entry", &manifest.entry, manifest.entry_pos()));
    }
    for (path, pos) in manifest.config_with_pos() {
        if !exists(path) {
            return Err(missing("config", path, pos));
        }
    }
    Ok(())
}

/// The `SIGNATURE` entry (last, by [`read_layout`]).
fn signature_of(entries: &[Entry<'_>]) -> Result<SignatureLine, ContainerError> {
    let data = entries.last().map_or(&[][..], |e| e.data);
    SignatureLine::parse(data).map_err(ContainerError::MalformedSignature)
}

/// The trust decision: `line` is well-formed, its key is in `trusted` and it signs
/// `digest`. Returns the signer.
fn verify_line(
    line: &SignatureLine,
    digest: &[u8; 32],
    trusted: &[PublicKey],
) -> Result<PublicKey, ContainerError> {
    let key = line.key;
    if !trusted.contains(&key) {
        return Err(ContainerError::UnknownKey { key });
    }
    match line.check(digest) {
        Ok(()) => Ok(key),
        Err(VerifyError::InvalidKey) => Err(ContainerError::InvalidKey { key }),
        Err(VerifyError::BadSignature) => Err(ContainerError::BadSignature { key }),
    }
}

/// A container whose signature checked out against a trusted key. The files borrow
/// from the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container<'a> {
    manifest: Manifest,
    entries: Vec<Entry<'a>>,
    signer: PublicKey,
}

impl<'a> Container<'a> {
    /// Reads and checks a container for running it: the archive, the layout, the
    /// signature (well-formed, by a key in `trusted`, valid), then the manifest and its
    /// paths. The first problem found is the error.
    pub fn open(
        archive: &'a [u8],
        trusted: &[PublicKey],
        limits: &Limits,
    ) -> Result<Container<'a>, ContainerError> {
        let entries = read_layout(archive, limits)?;
        let line = signature_of(&entries)?;
        let signer = verify_line(&line, &signing_digest(&entries), trusted)?;
        let manifest = read_manifest(&entries)?;
        Ok(Container {
            manifest,
            entries,
            signer,
        })
    }

    /// Reads and checks everything but trust, for showing a container: the archive, the
    /// layout, the manifest and its paths. The signature is parsed and checked against
    /// its own key but not required to be good: see [`Unverified::signature`].
    pub fn inspect(archive: &'a [u8], limits: &Limits) -> Result<Unverified<'a>, ContainerError> {
        let entries = read_layout(archive, limits)?;
        let manifest = read_manifest(&entries)?;
        let digest = signing_digest(&entries);
        Ok(Unverified {
            manifest,
            entries,
            digest,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The trusted key that signed the container.
    pub fn signer(&self) -> PublicKey {
        self.signer
    }

    /// The agent's files in archive order: neither `manifest.toml` nor `SIGNATURE`.
    /// Modes are as stored and not covered by the signature.
    pub fn files(&self) -> &[Entry<'a>] {
        files_of(&self.entries)
    }

    /// The data of the file called `name`, if there is one.
    pub fn file(&self, name: &str) -> Option<&'a [u8]> {
        self.files().iter().find(|e| e.name == name).map(|e| e.data)
    }

    /// The data of the manifest's `entry` executable.
    pub fn entry_data(&self) -> &'a [u8] {
        // `read_manifest` checked that the entry is a file.
        self.file(&self.manifest.entry).unwrap_or_default()
    }
}

fn files_of<'e, 'a>(entries: &'e [Entry<'a>]) -> &'e [Entry<'a>] {
    let end = entries.len().saturating_sub(1);
    entries.get(1..end).unwrap_or_default()
}

/// A container that parsed but whose signature has not been trusted yet (from
/// [`Container::inspect`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unverified<'a> {
    manifest: Manifest,
    entries: Vec<Entry<'a>>,
    digest: [u8; 32],
}

/// What [`Unverified::signature`] found in the `SIGNATURE` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureStatus {
    /// Not a signature line.
    Malformed(SignatureLineError),
    /// Well-formed, by `key`, but wrong for the contents (or `key` is not a usable key).
    Invalid { key: PublicKey, reason: VerifyError },
    /// Well-formed and valid for the contents under `key`, which may or may not be
    /// trusted: that is [`Unverified::verify`]'s question.
    Valid { key: PublicKey },
}

impl SignatureStatus {
    /// The key the container claims to be signed with, if the line is well-formed.
    pub fn signer(&self) -> Option<PublicKey> {
        match self {
            SignatureStatus::Malformed(_) => None,
            SignatureStatus::Invalid { key, .. } | SignatureStatus::Valid { key } => Some(*key),
        }
    }
}

impl<'a> Unverified<'a> {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The agent's files in archive order (see [`Container::files`]).
    pub fn files(&self) -> &[Entry<'a>] {
        files_of(&self.entries)
    }

    /// All entries, `manifest.toml` first and `SIGNATURE` last.
    pub fn entries(&self) -> &[Entry<'a>] {
        &self.entries
    }

    /// The [`signing_digest`] of the entries.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The signature line, its signer and whether it is valid, without asking whether
    /// the signer is trusted.
    pub fn signature(&self) -> SignatureStatus {
        match signature_of(&self.entries) {
            Err(ContainerError::MalformedSignature(e)) => SignatureStatus::Malformed(e),
            Err(_) => SignatureStatus::Malformed(SignatureLineError::Fields),
            Ok(line) => match line.check(&self.digest) {
                Ok(()) => SignatureStatus::Valid { key: line.key },
                Err(reason) => SignatureStatus::Invalid {
                    key: line.key,
                    reason,
                },
            },
        }
    }

    /// The trust decision: the signature must be well-formed, by a key in `trusted`, and
    /// valid.
    pub fn verify(self, trusted: &[PublicKey]) -> Result<Container<'a>, ContainerError> {
        let line = signature_of(&self.entries)?;
        let signer = verify_line(&line, &self.digest, trusted)?;
        Ok(Container {
            manifest: self.manifest,
            entries: self.entries,
            signer,
        })
    }
}

/// Packs and signs a container under the default [`Limits`]: see [`pack_with_limits`].
#[cfg(any(test, feature = "sign"))]
pub fn pack(
    manifest_text: &str,
    files: &[(&str, u32, &[u8])],
    key: &SigningKeyBytes,
) -> Result<Vec<u8>, ContainerError> {
    pack_with_limits(manifest_text, files, key, &Limits::default())
}

/// Packs and signs a container: validates `manifest_text` and that its `entry` and
/// `config` paths are among `files` (name, permission bits, data), then writes
/// `manifest.toml`, the files in the given order, and `SIGNATURE` with a
/// [`plinth_tar::Builder`] under `limits`. `key` is the ed25519 seed. The result opens
/// with [`Container::open`] under the same limits when `key`'s public key is trusted.
#[cfg(any(test, feature = "sign"))]
pub fn pack_with_limits(
    manifest_text: &str,
    files: &[(&str, u32, &[u8])],
    key: &SigningKeyBytes,
    limits: &Limits,
) -> Result<Vec<u8>, ContainerError> {
    let manifest = Manifest::parse(manifest_text)?;
    if let Some((name, _, _)) = files
        .iter()
        .find(|(name, _, _)| *name == MANIFEST_NAME || *name == SIGNATURE_NAME)
    {
        return Err(ContainerError::ReservedName {
            name: String::from(*name),
        });
    }
    check_references(&manifest, |path| {
        files.iter().any(|(name, _, _)| *name == path)
    })?;

    let contents = core::iter::once((MANIFEST_NAME, MANIFEST_MODE, manifest_text.as_bytes()))
        .chain(files.iter().map(|(name, mode, data)| (*name, *mode, *data)));
    let line = sign_digest(key, &signature::digest_of(contents));

    let mut builder = plinth_tar::Builder::with_limits(*limits);
    builder.add_file(MANIFEST_NAME, MANIFEST_MODE, manifest_text.as_bytes())?;
    for (name, mode, data) in files {
        builder.add_file(name, *mode, data)?;
    }
    builder.add_file(SIGNATURE_NAME, 0o644, &line.to_bytes())?;
    Ok(builder.finish())
}
