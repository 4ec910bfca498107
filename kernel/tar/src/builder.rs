//! Writing an archive, deterministically: the same files in the same order give the same
//! bytes, whoever builds it and whenever.

use alloc::string::String;
use alloc::vec::Vec;

use crate::header::{self, Block};
use crate::{BLOCK_SIZE, Limits, NameSet, RECORD_SIZE, TarError, check_name};

/// Owner written into every header. Numeric ids are 0 too; readers ignore all of it.
const OWNER: &[u8] = b"root";

/// Writes a ustar archive of regular files that [`read`](crate::read) accepts under the
/// same [`Limits`]. Headers carry only the name, mode and size: mtime, uid and gid are 0
/// and the owner is `root`, so the bytes depend on nothing but the files added.
#[derive(Default)]
pub struct Builder {
    out: Vec<u8>,
    names: NameSet,
    limits: Limits,
    entries: usize,
    total: u64,
}

impl Builder {
    /// A builder enforcing the default [`Limits`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder enforcing `limits`, for archives meant to be read under them.
    pub fn with_limits(limits: Limits) -> Self {
        Builder {
            limits,
            ..Self::default()
        }
    }

    /// Appends a regular file. `mode` holds permission bits only (at most `0o7777`). On
    /// error nothing is written and the builder can go on with other files.
    pub fn add_file(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<(), TarError> {
        let index = self.entries;
        let bad_name = |reason| TarError::BadName {
            index,
            name: String::from(name),
            reason,
        };
        check_name(name).map_err(bad_name)?;
        let (prefix, short_name) =
            header::split_name(name).ok_or(bad_name(crate::NameError::TooLong))?;
        if mode > 0o7777 {
            return Err(TarError::BadMode {
                index,
                mode: mode.into(),
            });
        }
        if index >= self.limits.max_entries {
            return Err(TarError::TooManyEntries {
                limit: self.limits.max_entries,
            });
        }
        let size = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let limit = self
            .limits
            .max_entry_bytes
            .min(header::octal_max(header::SIZE.len()));
        if size > limit {
            return Err(TarError::EntryTooLarge { index, size, limit });
        }
        let total = self.total.saturating_add(size);
        if total > self.limits.max_total_bytes {
            return Err(TarError::TotalTooLarge {
                index,
                limit: self.limits.max_total_bytes,
            });
        }
        // Last, since it records the name: everything after it cannot fail.
        self.names
            .insert(name, true)
            .map_err(|clash| clash.into_error(index, name))?;

        let mut block: Block = [0; BLOCK_SIZE];
        block[..short_name.len()].copy_from_slice(short_name.as_bytes());
        header::write_octal(&mut block[header::MODE], mode.into());
        header::write_octal(&mut block[header::UID], 0);
        header::write_octal(&mut block[header::GID], 0);
        header::write_octal(&mut block[header::SIZE], size);
        header::write_octal(&mut block[header::MTIME], 0);
        block[header::TYPEFLAG] = b'0';
        block[header::MAGIC].copy_from_slice(header::USTAR_MAGIC);
        block[header::UNAME][..OWNER.len()].copy_from_slice(OWNER);
        block[header::GNAME][..OWNER.len()].copy_from_slice(OWNER);
        header::write_octal(&mut block[header::DEVMAJOR], 0);
        header::write_octal(&mut block[header::DEVMINOR], 0);
        block[header::PREFIX][..prefix.len()].copy_from_slice(prefix.as_bytes());
        // Six digits, NUL, space: the form POSIX tars (and GNU tar) write.
        let sum = header::checksum(&block);
        header::write_octal(
            &mut block[header::CHKSUM.start..header::CHKSUM.end - 1],
            sum,
        );
        block[header::CHKSUM.end - 1] = b' ';

        self.out.extend_from_slice(&block);
        self.out.extend_from_slice(data);
        let padded = self.out.len().next_multiple_of(BLOCK_SIZE);
        self.out.resize(padded, 0);
        self.entries += 1;
        self.total = total;
        Ok(())
    }

    /// The archive: the files, two zero blocks, and zeros up to a whole record as tar
    /// writes them.
    pub fn finish(mut self) -> Vec<u8> {
        let end = self.out.len() + 2 * BLOCK_SIZE;
        self.out.resize(end.next_multiple_of(RECORD_SIZE), 0);
        self.out
    }
}
