//! The agent container's archive layer: a POSIX ustar archive (so `tar tf` lists it),
//! read as hostile input by one parser that the host tool and the kernel share.
//!
//! Owns the ustar format and nothing above it: [`read`] turns an archive into its regular
//! files, validating every header field and every byte between them, with the entries'
//! data borrowed from the input; [`Builder`] writes a deterministic archive that [`read`]
//! accepts; [`check_name`] is the one set of name rules both apply. It must not know what
//! the files mean (the manifest and the signature are the layer above), touch a file
//! system, or trust anything in the input: every size, offset and name is checked before
//! it is used, and [`Limits`] bounds the work and memory an archive can ask for.
//!
//! What is accepted, since tar has many dialects and a strict reader is the point:
//!
//! - **Headers**: POSIX ustar (magic `ustar\0`, version `00`), and GNU tar's default format
//!   (`ustar  \0`, what a plain `tar cf` writes) only where it means the same thing as ustar:
//!   GNU's fields in place of the ustar prefix (times, sparse maps) must be zero, so a GNU
//!   header is read exactly like a ustar one without a prefix. V7 headers (no magic) are
//!   refused, and so are base-256 numbers (GNU's encoding for values too big for octal).
//! - **Numbers**: octal, optionally led by spaces and ended by spaces or NULs, nothing
//!   else; only the device numbers may be empty (GNU leaves them so for files).
//! - **Checksum**: the POSIX one only, the unsigned sum of the header bytes with the
//!   checksum field counted as spaces. The signed-byte sum of some historic tars is
//!   refused: every writer we read (this crate, GNU tar, bsdtar) uses the unsigned one,
//!   and one definition leaves nothing to disagree about.
//! - **Entry types**: regular files (`0`, or NUL as in old tars) are returned. Directory
//!   entries (`5`) are accepted so the output of `tar cf` on a directory tree reads, but
//!   they must be empty and are checked like files (name rules, duplicates, clashes) and
//!   then skipped: a directory carries no data, and every file's path names its parents.
//!   Everything else is refused with [`TarError::Unsupported`]: links, devices, FIFOs,
//!   contiguous files, pax headers (`x`, `g`) and GNU long names (`L`, `K`), since any of
//!   them would let the archive mean something other than "these bytes under this name".
//! - **Names**: see [`check_name`]; names are compared byte for byte, and a name that is
//!   both a file and a directory of another entry (`a` and `a/b`) is refused, as is the
//!   same name twice.
//! - **Unused bytes**: the link name, the bytes after a string field's terminating NUL,
//!   the header's reserved tail and the padding after each entry's data must all be zero,
//!   so there is nowhere to hide bytes the signature layer would not see in an entry.
//! - **End of archive**: the first zero block ends the archive. The second zero block
//!   POSIX asks for may be missing and any number of zero bytes may follow (tar pads to
//!   10240-byte records), but a non-zero byte after the end is refused
//!   ([`TarError::TrailingGarbage`]). An input that stops before an end block is
//!   refused ([`TarError::Truncated`], [`TarError::NoEndMarker`]): a cut-off archive must
//!   not pass for a shorter one.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod builder;
mod header;
mod read;

#[cfg(test)]
mod tests;

use alloc::borrow::Cow;
use alloc::borrow::ToOwned;
use alloc::collections::BTreeMap;
use alloc::string::String;
use core::fmt;
use core::ops::Bound;

pub use builder::Builder;
pub use read::read;

/// Size of a tar block: headers, data padding and end markers come in these.
pub const BLOCK_SIZE: usize = 512;
/// Size of a tar record: [`Builder::finish`] pads the archive to a multiple of this, as
/// tar does (20 blocks).
pub const RECORD_SIZE: usize = 20 * BLOCK_SIZE;
/// Longest name: a 155-byte ustar prefix, the `/` between, and a 100-byte name field.
/// Not every name this long fits; the split must fall on a `/` (see [`check_name`]).
pub const MAX_NAME_BYTES: usize = header::PREFIX_LEN + 1 + header::NAME_LEN;

/// How much an archive may ask for. [`read`] refuses an archive over them; [`Builder`]
/// refuses to write one (so what it writes reads back under the same limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Headers in the archive, directories included.
    pub max_entries: usize,
    /// Data of one file, bytes.
    pub max_entry_bytes: u64,
    /// Data of all files together, bytes.
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1024,
            max_entry_bytes: 64 * 1024 * 1024,
            max_total_bytes: 256 * 1024 * 1024,
        }
    }
}

/// One regular file of an archive, in archive order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The path, satisfying [`check_name`]. Borrowed from the header unless the ustar
    /// prefix field was used, when it had to be joined (`prefix/name`).
    pub name: Cow<'a, str>,
    /// The file's bytes, a slice of the archive.
    pub data: &'a [u8],
    /// Permission bits, at most `0o7777`.
    pub mode: u32,
    /// Always [`EntryKind::File`] for now.
    pub kind: EntryKind,
}

/// What an [`Entry`] is. Only regular files are returned; the enum leaves room for more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    File,
}

/// A header field, to say which one was wrong (names have their own error,
/// [`TarError::BadName`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Mode,
    Uid,
    Gid,
    Size,
    Mtime,
    Checksum,
    LinkName,
    Uname,
    Gname,
    DevMajor,
    DevMinor,
    /// The header bytes no field of the format uses: the ustar tail, or GNU's fields in
    /// place of the prefix.
    Reserved,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Mode => "mode",
            Field::Uid => "uid",
            Field::Gid => "gid",
            Field::Size => "size",
            Field::Mtime => "mtime",
            Field::Checksum => "checksum",
            Field::LinkName => "linkname",
            Field::Uname => "uname",
            Field::Gname => "gname",
            Field::DevMajor => "devmajor",
            Field::DevMinor => "devminor",
            Field::Reserved => "reserved",
        })
    }
}

/// Why a name was refused (see [`check_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    /// Starts with `/`.
    Absolute,
    /// Has a `.` or `..` component.
    DotComponent,
    /// Has an empty component: `a//b`, or a trailing `/` on a file.
    EmptyComponent,
    /// Has a `\`, a path separator elsewhere.
    Backslash,
    /// Has a NUL, or a header's name field has bytes after its terminating NUL.
    Nul,
    /// Has a control character (including newline and tab).
    ControlChar,
    /// A header's name is not UTF-8.
    NotUtf8,
    /// Does not fit ustar's 100-byte name field, nor a 155-byte prefix and a 100-byte name
    /// split at a `/`.
    TooLong,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Empty => "empty name",
            NameError::Absolute => "absolute path",
            NameError::DotComponent => "`.` or `..` component",
            NameError::EmptyComponent => "empty path component",
            NameError::Backslash => "backslash in name",
            NameError::Nul => "NUL byte in name",
            NameError::ControlChar => "control character in name",
            NameError::NotUtf8 => "name is not UTF-8",
            NameError::TooLong => "name too long for a ustar header",
        })
    }
}

/// Why an archive was refused, or a file could not be added to one. `index` is the
/// position of the offending header in the archive, from 0, directories included (for
/// [`Builder`], the number of files added before).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TarError {
    /// The input ends inside this entry's header, data or padding.
    Truncated { index: usize },
    /// The input ends (possibly after a partial block of zeros) where a header or the
    /// end-of-archive block should start, after `entries` headers.
    NoEndMarker { entries: usize },
    /// Neither the ustar nor the GNU magic: not a ustar archive.
    BadMagic { index: usize },
    /// The header's checksum field does not match its bytes.
    BadChecksum {
        index: usize,
        stored: u64,
        computed: u64,
    },
    /// A numeric field that is not plain octal (or is empty, or base-256).
    BadNumber { index: usize, field: Field },
    /// A mode with bits above the permission bits (`0o7777`).
    BadMode { index: usize, mode: u64 },
    /// A field holding what it must not: a link name on a file or directory, a directory
    /// with data (`Size`), bytes after a string's NUL, or non-zero reserved bytes.
    BadField { index: usize, field: Field },
    /// An entry type other than a regular file or a directory.
    Unsupported {
        index: usize,
        name: String,
        typeflag: u8,
    },
    /// A name breaking [`check_name`]; `name` is shown lossily.
    BadName {
        index: usize,
        name: String,
        reason: NameError,
    },
    /// The same name as an earlier entry.
    Duplicate { index: usize, name: String },
    /// `name` is a file that another entry treats as a directory, or the other way round
    /// (`a` and `a/b`); `other` is the earlier of the two.
    PathConflict {
        index: usize,
        name: String,
        other: String,
    },
    /// A file's size is over [`Limits::max_entry_bytes`] (or what a header can hold).
    EntryTooLarge { index: usize, size: u64, limit: u64 },
    /// The files together are over [`Limits::max_total_bytes`].
    TotalTooLarge { index: usize, limit: u64 },
    /// More headers than [`Limits::max_entries`].
    TooManyEntries { limit: usize },
    /// Non-zero padding between an entry's data and the next header.
    NonZeroPadding { index: usize },
    /// A non-zero byte after the end-of-archive block, at this offset.
    TrailingGarbage { offset: usize },
}

impl fmt::Display for TarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TarError::Truncated { index } => write!(f, "entry {index}: archive truncated"),
            TarError::NoEndMarker { entries } => {
                write!(
                    f,
                    "archive ends after {entries} entries without an end marker"
                )
            }
            TarError::BadMagic { index } => {
                write!(f, "entry {index}: not a ustar header (bad magic)")
            }
            TarError::BadChecksum {
                index,
                stored,
                computed,
            } => write!(
                f,
                "entry {index}: header checksum {stored:o} does not match computed {computed:o}"
            ),
            TarError::BadNumber { index, field } => {
                write!(f, "entry {index}: {field} field is not an octal number")
            }
            TarError::BadMode { index, mode } => {
                write!(f, "entry {index}: mode {mode:o} has bits above 7777")
            }
            TarError::BadField { index, field } => {
                let what = match field {
                    Field::LinkName => "a link name on a file or directory",
                    Field::Size => "a directory with data",
                    Field::Reserved => "non-zero bytes in unused header space",
                    _ => "bytes after the terminating NUL",
                };
                write!(f, "entry {index}: {field} field: {what}")
            }
            TarError::Unsupported {
                index,
                name,
                typeflag,
            } => {
                write!(f, "entry {index} ({name:?}): unsupported entry type ")?;
                if typeflag.is_ascii_graphic() {
                    write!(f, "'{}'", char::from(*typeflag))?;
                } else {
                    write!(f, "0x{typeflag:02x}")?;
                }
                if let Some(what) = typeflag_name(*typeflag) {
                    write!(f, " ({what})")?;
                }
                f.write_str(", only regular files and directories are accepted")
            }
            TarError::BadName {
                index,
                name,
                reason,
            } => write!(f, "entry {index} ({name:?}): {reason}"),
            TarError::Duplicate { index, name } => {
                write!(f, "entry {index} ({name:?}): duplicate name")
            }
            TarError::PathConflict { index, name, other } => write!(
                f,
                "entry {index} ({name:?}): clashes with {other:?}, one is a file inside the other"
            ),
            TarError::EntryTooLarge { index, size, limit } => {
                write!(f, "entry {index}: {size} bytes, over the limit of {limit}")
            }
            TarError::TotalTooLarge { index, limit } => write!(
                f,
                "entry {index}: files together over the limit of {limit} bytes"
            ),
            TarError::TooManyEntries { limit } => {
                write!(f, "more than {limit} entries")
            }
            TarError::NonZeroPadding { index } => {
                write!(f, "entry {index}: non-zero padding after the data")
            }
            TarError::TrailingGarbage { offset } => {
                write!(
                    f,
                    "non-zero byte at offset {offset}, after the end of the archive"
                )
            }
        }
    }
}

/// What a typeflag means, for error messages, if tar documents it.
fn typeflag_name(typeflag: u8) -> Option<&'static str> {
    Some(match typeflag {
        b'1' => "hard link",
        b'2' => "symbolic link",
        b'3' => "character device",
        b'4' => "block device",
        b'6' => "FIFO",
        b'7' => "contiguous file",
        b'x' => "pax extended header",
        b'g' => "pax global header",
        b'L' => "GNU long name",
        b'K' => "GNU long link name",
        b'S' => "GNU sparse file",
        _ => return None,
    })
}

/// Checks a path against the rules every entry name follows, in archives read and
/// written: non-empty; relative (no leading `/`); components separated by single `/`s,
/// none of them empty, `.` or `..`; no `\`, NUL or control character; and it fits a
/// ustar header, either whole in the 100-byte name field or split at a `/` into a prefix
/// of at most 155 bytes and a name of at most 100. Any other UTF-8 is allowed.
///
/// Extracting an archive whose names pass cannot write outside the target directory
/// (links are refused by [`read`] separately).
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.contains('\0') {
        return Err(NameError::Nul);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlChar);
    }
    if name.contains('\\') {
        return Err(NameError::Backslash);
    }
    if name.starts_with('/') {
        return Err(NameError::Absolute);
    }
    for component in name.split('/') {
        match component {
            "" => return Err(NameError::EmptyComponent),
            "." | ".." => return Err(NameError::DotComponent),
            _ => {}
        }
    }
    if header::split_name(name).is_none() {
        return Err(NameError::TooLong);
    }
    Ok(())
}

/// A clash between a new name and the earlier ones.
enum Clash {
    Duplicate,
    /// With this earlier name.
    Conflict(String),
}

/// The names seen so far, each marked as a file or a directory, to refuse duplicates and
/// a path that is both (which extraction could not represent, and which would make "the
/// file at this path" ambiguous to the layer above).
#[derive(Default)]
struct NameSet {
    is_file: BTreeMap<String, bool>,
}

impl NameSet {
    fn insert(&mut self, name: &str, is_file: bool) -> Result<(), Clash> {
        if self.is_file.contains_key(name) {
            return Err(Clash::Duplicate);
        }
        // A parent that is a file.
        for (slash, _) in name.match_indices('/') {
            let parent = &name[..slash];
            if self.is_file.get(parent) == Some(&true) {
                return Err(Clash::Conflict(parent.to_owned()));
            }
        }
        // A file with something under it. Names under `name/` sort together, starting at
        // `name/` itself (no name has a trailing `/`, so the first one is after it).
        if is_file {
            let mut under = String::with_capacity(name.len() + 1);
            under.push_str(name);
            under.push('/');
            if let Some((other, _)) = self
                .is_file
                .range::<str, _>((Bound::Included(under.as_str()), Bound::Unbounded))
                .next()
                && other.starts_with(&under)
            {
                return Err(Clash::Conflict(other.clone()));
            }
        }
        self.is_file.insert(name.to_owned(), is_file);
        Ok(())
    }
}

impl Clash {
    fn into_error(self, index: usize, name: &str) -> TarError {
        match self {
            Clash::Duplicate => TarError::Duplicate {
                index,
                name: name.to_owned(),
            },
            Clash::Conflict(other) => TarError::PathConflict {
                index,
                name: name.to_owned(),
                other,
            },
        }
    }
}
