//! Disk images on the host side: the scratch image `plinth run` attaches when no disk is
//! given, and checks on images the user names.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

/// Size of the scratch image: sparse, so it costs no disk space until written.
pub const SCRATCH_BYTES: u64 = 64 << 20;
/// Sector size virtio-blk counts in.
pub const SECTOR: u64 = 512;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("disk image {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("disk image {path} is empty or not a whole number of 512-byte sectors ({len} bytes)")]
    BadSize { path: PathBuf, len: u64 },
}

/// A sparse scratch image of [`SCRATCH_BYTES`] for one run, deleted when dropped. Each
/// run gets its own, so two `plinth run`s never contend for one image (QEMU locks it).
pub struct ScratchImage {
    path: PathBuf,
}

impl ScratchImage {
    /// Creates a scratch image of [`SCRATCH_BYTES`] (see [`ScratchImage::create_sized`]).
    pub fn create() -> Result<ScratchImage, DiskError> {
        Self::create_sized(SCRATCH_BYTES)
    }

    /// Creates `target/plinth/scratch-PID-N.img` of `bytes` (sparse), N counting the
    /// process's scratch images so that several can exist at once.
    pub fn create_sized(bytes: u64) -> Result<ScratchImage, DiskError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = crate::repo_root().join("target").join("plinth");
        let path = dir.join(format!("scratch-{}-{n}.img", std::process::id()));
        let io = |source| DiskError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        remove_orphans(&dir);
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        f.set_len(bytes).map_err(io)?;
        Ok(ScratchImage { path })
    }

    /// Creates a scratch image of `bytes` whose every block is written (zeros) and
    /// flushed to the host's disk before it is used, as `fio` lays out its files: a
    /// provisioned disk. A sparse file's first writes measure the host file system
    /// allocating blocks and page cache (run-to-run spread of 2.5x seen here), not the
    /// guest's disk path.
    pub fn create_laid_out(bytes: u64) -> Result<ScratchImage, DiskError> {
        use std::io::Write;
        let image = Self::create_sized(0)?;
        let io = |source| DiskError::Io {
            path: image.path.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .open(&image.path)
            .map_err(io)?;
        let chunk = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n]).map_err(io)?;
            left -= n as u64;
        }
        f.sync_data().map_err(io)?;
        Ok(image)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Deletes scratch images of runs that ended without cleaning up (killed by a signal).
fn remove_orphans(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let pid = name
            .to_str()
            .and_then(|n| n.strip_prefix("scratch-")?.strip_suffix(".img"))
            .and_then(|rest| rest.split('-').next()?.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl Drop for ScratchImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Checks that `path` is a usable raw image; returns its size in sectors.
pub fn check_image(path: &Path) -> Result<u64, DiskError> {
    let len = std::fs::metadata(path)
        .map_err(|source| DiskError::Io {
            path: path.into(),
            source,
        })?
        .len();
    if len == 0 || len % SECTOR != 0 {
        return Err(DiskError::BadSize {
            path: path.into(),
            len,
        });
    }
    Ok(len / SECTOR)
}
