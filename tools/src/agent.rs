//! Agent containers and signing keys on the host: `plinth key gen` and
//! `plinth agent pack | inspect | verify`.
//!
//! Owns the host side only: key files, reading an agent directory, and reporting. The
//! container format, its checks and the signature are `plinth-container`'s (the same code
//! the runtime will run); nothing here parses an archive or a manifest itself.

use std::io::Read;
use std::path::{Path, PathBuf};

use plinth_container::{Container, PublicKey, SignatureStatus};
use plinth_tar::Limits;

/// Errors of the agent and key commands.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a plinth {what} key file (expected one line `{prefix} <64 hex digits>`)")]
    KeyFormat {
        path: PathBuf,
        what: &'static str,
        prefix: &'static str,
    },
    /// `message` is ` text`, or `LINE:COL: text`, making `file:line:col: text`.
    #[error("{}:{message}", path.display())]
    Container { path: PathBuf, message: String },
    #[error(
        "{dir}: no manifest.toml (an agent directory holds manifest.toml and the agent's files)"
    )]
    NoManifest { dir: PathBuf },
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },
    #[error("{0}: exists already; not overwritten")]
    Exists(PathBuf),
}

use plinth_container::{PUBLIC_KEY_PREFIX as PUBLIC_PREFIX, SECRET_KEY_PREFIX as SECRET_PREFIX};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AgentError + '_ {
    move |source| AgentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `STEM.key` (the secret seed, readable by the owner only) and `STEM.pub`.
pub fn key_gen(stem: &Path) -> Result<(PathBuf, PathBuf), AgentError> {
    let secret_path = stem.with_extension("key");
    let public_path = stem.with_extension("pub");
    for p in [&secret_path, &public_path] {
        if p.exists() {
            return Err(AgentError::Exists(p.clone()));
        }
    }
    let mut seed = [0u8; 32];
    let urandom = Path::new("/dev/urandom");
    std::fs::File::open(urandom)
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(io(urandom))?;
    let public = plinth_container::public_key(&seed);
    write_private(&secret_path, &format!("{SECRET_PREFIX} {}\n", hex(&seed)))?;
    std::fs::write(&public_path, format!("{PUBLIC_PREFIX} {public}\n"))
        .map_err(io(&public_path))?;
    Ok((secret_path, public_path))
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> Result<(), AgentError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(io(path))
}

/// Reads `PREFIX <64 hex>` from a key file.
fn read_key_line(
    path: &Path,
    prefix: &'static str,
    what: &'static str,
) -> Result<[u8; 32], AgentError> {
    let text = std::fs::read(path).map_err(io(path))?;
    plinth_container::parse_key_file(&text, prefix).ok_or_else(|| AgentError::KeyFormat {
        path: path.to_path_buf(),
        what,
        prefix,
    })
}

/// The secret seed in a `.key` file.
pub fn read_secret(path: &Path) -> Result<[u8; 32], AgentError> {
    read_key_line(path, SECRET_PREFIX, "secret")
}

/// The public key in a `.pub` file.
pub fn read_public(path: &Path) -> Result<PublicKey, AgentError> {
    read_key_line(path, PUBLIC_PREFIX, "public").map(PublicKey)
}

/// Every regular file under `dir` except `manifest.toml`, as container paths (`/`
/// separated, sorted, so a pack is reproducible) with their permission bits.
fn agent_files(dir: &Path) -> Result<Vec<(String, u32, Vec<u8>)>, AgentError> {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut Vec<(String, u32, Vec<u8>)>,
    ) -> Result<(), AgentError> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .collect::<Result<_, _>>()
            .map_err(io(dir))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
            if meta.is_dir() {
                walk(root, &path, out)?;
                continue;
            }
            if !meta.is_file() {
                return Err(AgentError::BadFile {
                    path,
                    reason: "not a regular file (links and devices cannot be packed)".into(),
                });
            }
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let name = rel
                .to_str()
                .ok_or_else(|| AgentError::BadFile {
                    path: path.clone(),
                    reason: "name is not UTF-8".into(),
                })?
                .replace(std::path::MAIN_SEPARATOR, "/");
            if name == plinth_container::MANIFEST_NAME {
                continue;
            }
            #[cfg(unix)]
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                }
            };
            #[cfg(not(unix))]
            let mode = 0o644;
            let data = std::fs::read(&path).map_err(io(&path))?;
            out.push((name, mode, data));
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// What `pack` wrote.
#[derive(Debug)]
pub struct Packed {
    pub files: usize,
    pub bytes: usize,
    pub signer: PublicKey,
}

/// Packs agent directory `dir` (its `manifest.toml` and every other file) into `out`,
/// signed with the secret key at `key`.
pub fn pack(dir: &Path, out: &Path, key: &Path) -> Result<Packed, AgentError> {
    let seed = read_secret(key)?;
    let (archive, files) = pack_to_vec(dir, &seed)?;
    std::fs::write(out, &archive).map_err(io(out))?;
    Ok(Packed {
        files,
        bytes: archive.len(),
        signer: plinth_container::public_key(&seed),
    })
}

/// Packs agent directory `dir` in memory, signed with `seed`: the container and how many
/// files it holds besides the manifest.
pub fn pack_to_vec(dir: &Path, seed: &[u8; 32]) -> Result<(Vec<u8>, usize), AgentError> {
    let manifest_path = dir.join(plinth_container::MANIFEST_NAME);
    if !manifest_path.is_file() {
        return Err(AgentError::NoManifest {
            dir: dir.to_path_buf(),
        });
    }
    let manifest = std::fs::read_to_string(&manifest_path).map_err(io(&manifest_path))?;
    let files = agent_files(dir)?;
    let refs: Vec<(&str, u32, &[u8])> = files
        .iter()
        .map(|(n, m, d)| (n.as_str(), *m, d.as_slice()))
        .collect();
    let archive = plinth_container::pack(&manifest, &refs, seed).map_err(|e| match e {
        // Point at the file the user edits: `DIR/manifest.toml:LINE:COL: message`.
        plinth_container::ContainerError::Manifest(m) => AgentError::Container {
            path: manifest_path.clone(),
            message: format!("{}:{}: {}", m.line, m.col, m.message),
        },
        plinth_container::ContainerError::MissingFile {
            field,
            path,
            line,
            col,
        } => AgentError::Container {
            path: manifest_path.clone(),
            message: format!(
                "{line}:{col}: {field} names {path}, which is not in {}",
                dir.display()
            ),
        },
        e => AgentError::Container {
            path: dir.to_path_buf(),
            message: format!(" {e}"),
        },
    })?;
    Ok((archive, files.len()))
}

fn read_archive(path: &Path) -> Result<Vec<u8>, AgentError> {
    std::fs::read(path).map_err(io(path))
}

/// A human summary of a container, whether or not its signature is good or trusted.
pub fn inspect(path: &Path) -> Result<String, AgentError> {
    let data = read_archive(path)?;
    let u = Container::inspect(&data, &Limits::default()).map_err(|e| AgentError::Container {
        path: path.to_path_buf(),
        message: format!(" {e}"),
    })?;
    let m = u.manifest();
    let mut s = format!(
        "agent {} {}.{}.{}, entry {}\n",
        m.name, m.version.major, m.version.minor, m.version.patch, m.entry
    );
    for f in u.files() {
        s += &format!("  {:o} {:>9} {}\n", f.mode, f.data.len(), f.name);
    }
    s += &match u.signature() {
        SignatureStatus::Valid { key } => format!("signature: valid, by {key}"),
        SignatureStatus::Invalid { key, reason } => {
            format!("signature: INVALID ({reason:?}), claims key {key}")
        }
        SignatureStatus::Malformed(e) => format!("signature: malformed ({e:?})"),
    };
    Ok(s)
}

/// Checks that the container at `path` is well-formed and signed by one of `trusted`.
pub fn verify(path: &Path, trusted: &[PublicKey]) -> Result<PublicKey, AgentError> {
    let data = read_archive(path)?;
    Container::open(&data, trusted, &Limits::default())
        .map(|c| c.signer())
        .map_err(|e| AgentError::Container {
            path: path.to_path_buf(),
            message: format!(" {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("plinth-agent-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const MANIFEST: &str = "name = \"hello\"\nversion = \"1.2.3\"\nentry = \"bin/hello\"\n\
        config = [\"etc/hello.toml\"]\n[resources.cpu]\naverage_percent = 1\npeak_percent = 5\n\
        [resources.memory]\naverage_mib = 4\npeak_mib = 8\n";

    fn agent_dir(root: &Path) -> PathBuf {
        let dir = root.join("hello");
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::write(dir.join("manifest.toml"), MANIFEST).unwrap();
        std::fs::write(dir.join("bin/hello"), b"\x7fELF not really").unwrap();
        std::fs::write(dir.join("etc/hello.toml"), b"greeting = \"hi\"\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.join("bin/hello"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
        }
        dir
    }

    #[test]
    fn keys_are_written_private_and_read_back() {
        let d = tmp("keys");
        let (secret, public) = key_gen(&d.join("ops")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let seed = read_secret(&secret).unwrap();
        assert_eq!(
            read_public(&public).unwrap(),
            plinth_container::public_key(&seed)
        );
        assert!(matches!(
            key_gen(&d.join("ops")),
            Err(AgentError::Exists(_))
        ));
        // A public key file is not a secret one, and garbage is neither.
        assert!(matches!(
            read_secret(&public),
            Err(AgentError::KeyFormat { .. })
        ));
        std::fs::write(d.join("junk.pub"), "ed25519 xyz\n").unwrap();
        assert!(matches!(
            read_public(&d.join("junk.pub")),
            Err(AgentError::KeyFormat { .. })
        ));
    }

    #[test]
    fn pack_inspect_verify_round_trip_and_tampering() {
        let d = tmp("pack");
        let dir = agent_dir(&d);
        let (secret, public) = key_gen(&d.join("ops")).unwrap();
        let (_, other) = key_gen(&d.join("other")).unwrap();
        let out = d.join("hello.agent");
        let p = pack(&dir, &out, &secret).unwrap();
        assert_eq!(p.files, 2);
        let trusted = read_public(&public).unwrap();
        assert_eq!(verify(&out, &[trusted]).unwrap(), trusted);
        let report = inspect(&out).unwrap();
        assert!(
            report.starts_with("agent hello 1.2.3, entry bin/hello"),
            "{report}"
        );
        assert!(report.contains("755"), "{report}");
        assert!(
            report.contains(&format!("signature: valid, by {trusted}")),
            "{report}"
        );

        // `tar` lists it, manifest first and SIGNATURE last.
        let listing = std::process::Command::new("tar")
            .arg("tf")
            .arg(&out)
            .output()
            .unwrap();
        let names = String::from_utf8_lossy(&listing.stdout).into_owned();
        let names: Vec<&str> = names.lines().collect();
        assert_eq!(
            names,
            ["manifest.toml", "bin/hello", "etc/hello.toml", "SIGNATURE"]
        );

        // Another key is not trusted; a flipped byte breaks the signature.
        let e = verify(&out, &[read_public(&other).unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not trusted") || e.contains("unknown"), "{e}");
        let mut bytes = std::fs::read(&out).unwrap();
        let at = bytes
            .windows(5)
            .position(|w| w == b"hi\"\n\0")
            .unwrap_or(1024 + 600);
        bytes[at] ^= 1;
        std::fs::write(&out, &bytes).unwrap();
        let e = verify(&out, &[trusted]).unwrap_err().to_string();
        assert!(e.to_lowercase().contains("signature"), "{e}");
    }

    #[test]
    fn manifest_errors_point_at_the_line() {
        let d = tmp("bad");
        let dir = agent_dir(&d);
        let (secret, _) = key_gen(&d.join("ops")).unwrap();
        std::fs::write(
            dir.join("manifest.toml"),
            MANIFEST.replace("peak_mib = 8", "peak_mib = 2"),
        )
        .unwrap();
        let e = pack(&dir, &d.join("x.agent"), &secret)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("hello/manifest.toml:10:12: resources.memory.peak_mib"),
            "{e}"
        );
        assert!(!d.join("x.agent").exists());
        std::fs::remove_file(dir.join("manifest.toml")).unwrap();
        assert!(matches!(
            pack(&dir, &d.join("x.agent"), &secret),
            Err(AgentError::NoManifest { .. })
        ));
    }
}
