//! Reading an archive: every header validated before anything in it is used.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::header::{self, Block};
use crate::{
    BLOCK_SIZE, Entry, EntryKind, Field, Limits, NameError, NameSet, TarError, check_name,
};

/// Reads a ustar archive into its regular files, in archive order, each borrowing its
/// data from `archive`. Directory entries are checked and skipped. Any deviation from the
/// format as the crate documents it, or from `limits`, refuses the whole archive: there is
/// no partial result to act on by mistake.
pub fn read<'a>(archive: &'a [u8], limits: &Limits) -> Result<Vec<Entry<'a>>, TarError> {
    let mut entries = Vec::new();
    let mut names = NameSet::default();
    let mut total: u64 = 0;
    let mut offset = 0;
    let mut index = 0;
    loop {
        let rest = archive.get(offset..).unwrap_or_default();
        let Some(block) = rest.first_chunk::<BLOCK_SIZE>() else {
            // Ending here, or in zeros short of a block, there was no end block: the archive
            // was cut off between entries, which must not pass for a shorter archive.
            return Err(if rest.iter().all(|&b| b == 0) {
                TarError::NoEndMarker { entries: index }
            } else {
                TarError::Truncated { index }
            });
        };
        if block.iter().all(|&b| b == 0) {
            let after = offset + BLOCK_SIZE;
            let tail = archive.get(after..).unwrap_or_default();
            if let Some(garbage) = tail.iter().position(|&b| b != 0) {
                return Err(TarError::TrailingGarbage {
                    offset: after + garbage,
                });
            }
            return Ok(entries);
        }
        if index >= limits.max_entries {
            return Err(TarError::TooManyEntries {
                limit: limits.max_entries,
            });
        }
        let parsed = parse_header(block, index)?;

        if parsed.size > limits.max_entry_bytes {
            return Err(TarError::EntryTooLarge {
                index,
                size: parsed.size,
                limit: limits.max_entry_bytes,
            });
        }
        total = total.saturating_add(parsed.size);
        if total > limits.max_total_bytes {
            return Err(TarError::TotalTooLarge {
                index,
                limit: limits.max_total_bytes,
            });
        }
        let size = usize::try_from(parsed.size).map_err(|_| TarError::EntryTooLarge {
            index,
            size: parsed.size,
            limit: limits.max_entry_bytes,
        })?;
        let start = offset + BLOCK_SIZE;
        // Overflow here means the size is past any input this machine could hold.
        let end = size
            .div_ceil(BLOCK_SIZE)
            .checked_mul(BLOCK_SIZE)
            .and_then(|padded| start.checked_add(padded))
            .ok_or(TarError::Truncated { index })?;
        let Some(body) = archive.get(start..end) else {
            return Err(TarError::Truncated { index });
        };
        let (data, padding) = body
            .split_at_checked(size)
            .ok_or(TarError::Truncated { index })?;
        if padding.iter().any(|&b| b != 0) {
            return Err(TarError::NonZeroPadding { index });
        }

        names
            .insert(&parsed.name, parsed.is_file)
            .map_err(|clash| clash.into_error(index, &parsed.name))?;
        if parsed.is_file {
            entries.push(Entry {
                name: parsed.name,
                data,
                mode: parsed.mode,
                kind: EntryKind::File,
            });
        }
        offset = end;
        index += 1;
    }
}

/// What a header says, once validated.
struct Parsed<'a> {
    name: Cow<'a, str>,
    is_file: bool,
    mode: u32,
    size: u64,
}

/// Validates every field of one header. The checks run in the order that gives the most
/// useful error for a wrong input: not tar at all, then damaged, then unsupported.
fn parse_header(block: &Block, index: usize) -> Result<Parsed<'_>, TarError> {
    let gnu = match block.get(header::MAGIC) {
        Some(m) if m == header::USTAR_MAGIC => false,
        Some(m) if m == header::GNU_MAGIC => true,
        _ => return Err(TarError::BadMagic { index }),
    };

    let computed = header::checksum(block);
    let stored = number(block, header::CHKSUM, Field::Checksum, index, false)?;
    if stored != computed {
        return Err(TarError::BadChecksum {
            index,
            stored,
            computed,
        });
    }

    let mode = number(block, header::MODE, Field::Mode, index, false)?;
    number(block, header::UID, Field::Uid, index, false)?;
    number(block, header::GID, Field::Gid, index, false)?;
    let size = number(block, header::SIZE, Field::Size, index, false)?;
    number(block, header::MTIME, Field::Mtime, index, false)?;
    number(block, header::DEVMAJOR, Field::DevMajor, index, true)?;
    number(block, header::DEVMINOR, Field::DevMinor, index, true)?;
    let mode = u32::try_from(mode)
        .ok()
        .filter(|&m| m <= 0o7777)
        .ok_or(TarError::BadMode { index, mode })?;

    let is_file = match block[header::TYPEFLAG] {
        b'0' | 0 => true,
        b'5' => false,
        typeflag => {
            return Err(TarError::Unsupported {
                index,
                name: lossy_name(block),
                typeflag,
            });
        }
    };
    if !is_file && size != 0 {
        return Err(TarError::BadField {
            index,
            field: Field::Size,
        });
    }

    // Files and directories link to nothing; a link name would only be read by a tar
    // that took the entry for a link.
    if block[header::LINKNAME].iter().any(|&b| b != 0) {
        return Err(TarError::BadField {
            index,
            field: Field::LinkName,
        });
    }
    for (range, field) in [(header::UNAME, Field::Uname), (header::GNAME, Field::Gname)] {
        if header::parse_string(&block[range]).is_none() {
            return Err(TarError::BadField { index, field });
        }
    }
    let reserved = if gnu {
        header::GNU_TAIL
    } else {
        header::USTAR_TAIL
    };
    if block[reserved].iter().any(|&b| b != 0) {
        return Err(TarError::BadField {
            index,
            field: Field::Reserved,
        });
    }

    let name = name(block, gnu, is_file).map_err(|reason| TarError::BadName {
        index,
        name: lossy_name(block),
        reason,
    })?;
    Ok(Parsed {
        name,
        is_file,
        mode,
        size,
    })
}

fn number(
    block: &Block,
    range: core::ops::Range<usize>,
    field: Field,
    index: usize,
    allow_empty: bool,
) -> Result<u64, TarError> {
    header::parse_octal(&block[range], allow_empty).ok_or(TarError::BadNumber { index, field })
}

/// The entry's full name, `prefix/name` if the prefix is used, validated. A directory's
/// one trailing `/` (which tar writes) is dropped first.
fn name(block: &Block, gnu: bool, is_file: bool) -> Result<Cow<'_, str>, NameError> {
    let field = header::parse_string(&block[header::NAME]).ok_or(NameError::Nul)?;
    let field = core::str::from_utf8(field).map_err(|_| NameError::NotUtf8)?;
    // GNU headers have no prefix; their tail was checked to be zero.
    let prefix = if gnu {
        ""
    } else {
        let prefix = header::parse_string(&block[header::PREFIX]).ok_or(NameError::Nul)?;
        core::str::from_utf8(prefix).map_err(|_| NameError::NotUtf8)?
    };
    let mut name = if prefix.is_empty() {
        Cow::Borrowed(field)
    } else {
        Cow::Owned(format!("{prefix}/{field}"))
    };
    if !is_file && name.len() > 1 && name.ends_with('/') {
        match &mut name {
            Cow::Borrowed(s) => *s = &s[..s.len() - 1],
            Cow::Owned(s) => {
                s.pop();
            }
        }
    }
    check_name(&name)?;
    Ok(name)
}

/// The header's name for an error message, whatever its bytes.
fn lossy_name(block: &Block) -> String {
    let until_nul = |field: &[u8]| {
        let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        String::from_utf8_lossy(&field[..len]).into_owned()
    };
    let name = until_nul(&block[header::NAME]);
    match block.get(header::MAGIC) {
        Some(m) if m == header::USTAR_MAGIC => {
            let prefix = until_nul(&block[header::PREFIX]);
            if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            }
        }
        _ => name,
    }
}
