//! The "newc" cpio format (the `070701` ASCII header) the Linux kernel unpacks an
//! initramfs from: a writer for building one, and a reader for checking what was written.
//!
//! Each entry is a 110-byte header of a six-character magic and thirteen 8-digit hex
//! fields, the NUL-terminated name padded to a multiple of four bytes (counted from the
//! start of the header), then the data padded the same way. The archive ends with an
//! entry named `TRAILER!!!`. See the kernel's
//! `Documentation/driver-api/early-userspace/buffer-format.rst`.
//!
//! Entries carry no timestamps (mtime 0) and numbered inodes, so the same input gives the
//! same bytes.

/// The header's magic: the "new" ASCII format without checksums.
pub const MAGIC: &[u8; 6] = b"070701";
/// Header length in bytes: the magic and 13 fields of 8 hex digits.
pub const HEADER_LEN: usize = 6 + 13 * 8;
/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// File type bits of a mode (`S_IFMT` and the types used here), as in `<sys/stat.h>`.
pub const S_IFMT: u32 = 0o170_000;
pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFLNK: u32 = 0o120_000;
pub const S_IFCHR: u32 = 0o020_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CpioError {
    #[error("cpio entry name `{0}` is empty, absolute, or holds a NUL or a `..`")]
    BadName(String),
    #[error("cpio entry `{name}` has {len} bytes; newc sizes are 32-bit")]
    TooLarge { name: String, len: usize },
    #[error("cpio entry `{0}` is in the archive twice")]
    Duplicate(String),
    #[error("not a newc cpio archive at byte {0}")]
    BadHeader(usize),
    #[error("the archive ends inside an entry at byte {0}")]
    Truncated(usize),
    #[error("the archive has no {TRAILER} entry")]
    NoTrailer,
}

/// One entry as the reader found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub ino: u32,
    /// Type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    /// The device a special file stands for (`rdevmajor`, `rdevminor`).
    pub rdev: (u32, u32),
    /// File contents, or a symbolic link's target.
    pub data: Vec<u8>,
}

/// An archive being written; [`Archive::finish`] adds the trailer.
#[derive(Default)]
pub struct Archive {
    bytes: Vec<u8>,
    names: std::collections::BTreeSet<String>,
}

impl Archive {
    pub fn new() -> Archive {
        Archive::default()
    }

    /// A directory (`mode` holds the permission bits, e.g. `0o755`).
    pub fn dir(&mut self, name: &str, mode: u32) -> Result<(), CpioError> {
        self.entry(name, S_IFDIR | (mode & 0o7777), 2, (0, 0), &[])
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<(), CpioError> {
        self.entry(name, S_IFREG | (mode & 0o7777), 1, (0, 0), data)
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) -> Result<(), CpioError> {
        self.entry(name, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes())
    }

    /// A character device node, e.g. `dev/console` (5, 1).
    pub fn char_device(
        &mut self,
        name: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.entry(name, S_IFCHR | (mode & 0o7777), 1, (major, minor), &[])
    }

    fn entry(
        &mut self,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<(), CpioError> {
        let bad = name.is_empty()
            || name.starts_with('/')
            || name.contains('\0')
            || name.split('/').any(|c| c == ".." || c.is_empty())
            || name == TRAILER;
        if bad {
            return Err(CpioError::BadName(name.to_owned()));
        }
        let len = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge {
            name: name.to_owned(),
            len: data.len(),
        })?;
        if !self.names.insert(name.to_owned()) {
            return Err(CpioError::Duplicate(name.to_owned()));
        }
        // Inode numbers only need to differ between entries (hard links share one).
        let ino = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.raw(ino, name, mode, nlink, rdev, len, data);
        Ok(())
    }

    /// Appends one entry, no checks.
    #[allow(clippy::too_many_arguments)]
    fn raw(
        &mut self,
        ino: u32,
        name: &str,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        len: u32,
        data: &[u8],
    ) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(MAGIC);
        // namesize counts the NUL; the check field is 0 in the 070701 format.
        let name_size = name.len() as u32 + 1;
        let fields = [
            ino, mode, 0, 0, nlink, 0, len, 0, 0, rdev.0, rdev.1, name_size, 0,
        ];
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad(start);
        self.bytes.extend_from_slice(data);
        self.pad(start);
    }

    /// Pads with NULs to a multiple of four bytes from the archive's start (`start`, an
    /// entry's start, is itself a multiple of four).
    fn pad(&mut self, start: usize) {
        debug_assert_eq!(start % 4, 0);
        while !(self.bytes.len() - start).is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    /// The archive, ended with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.raw(0, TRAILER, 0, 1, (0, 0), 0, &[]);
        self.bytes
    }
}

/// The entries of a newc archive, up to its trailer.
pub fn read(bytes: &[u8]) -> Result<Vec<Entry>, CpioError> {
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        let header = bytes
            .get(at..at + HEADER_LEN)
            .ok_or(CpioError::Truncated(at))?;
        if &header[..6] != MAGIC {
            return Err(CpioError::BadHeader(at));
        }
        let mut fields = [0u32; 13];
        for (i, f) in fields.iter_mut().enumerate() {
            let hex = std::str::from_utf8(&header[6 + i * 8..14 + i * 8])
                .map_err(|_| CpioError::BadHeader(at))?;
            *f = u32::from_str_radix(hex, 16).map_err(|_| CpioError::BadHeader(at))?;
        }
        let [
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            size,
            _,
            _,
            rmaj,
            rmin,
            name_size,
            _,
        ] = fields;
        let name_end = at + HEADER_LEN + name_size as usize;
        let name = bytes
            .get(at + HEADER_LEN..name_end)
            .ok_or(CpioError::Truncated(at))?;
        let name = name
            .strip_suffix(&[0])
            .and_then(|n| std::str::from_utf8(n).ok())
            .ok_or(CpioError::BadHeader(at))?
            .to_owned();
        let data_start = at + (name_end - at).next_multiple_of(4);
        let data_end = data_start + size as usize;
        let data = bytes
            .get(data_start..data_end)
            .ok_or(CpioError::Truncated(at))?
            .to_vec();
        if name == TRAILER {
            return Ok(entries);
        }
        entries.push(Entry {
            name,
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            rdev: (rmaj, rmin),
            data,
        });
        at += (data_end - at).next_multiple_of(4);
        if at >= bytes.len() {
            return Err(CpioError::NoTrailer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_the_reader() {
        let mut a = Archive::new();
        a.dir("bin", 0o755).unwrap();
        a.file("bin/busybox", 0o755, b"\x7fELF...").unwrap();
        a.symlink("bin/sh", "busybox").unwrap();
        a.dir("dev", 0o755).unwrap();
        a.char_device("dev/console", 0o600, 5, 1).unwrap();
        a.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        a.file("empty", 0o644, b"").unwrap();
        let bytes = a.finish();
        assert_eq!(bytes.len() % 4, 0);
        let e = read(&bytes).unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "bin/busybox",
                "bin/sh",
                "dev",
                "dev/console",
                "init",
                "empty"
            ]
        );
        assert_eq!(e[0].mode, S_IFDIR | 0o755);
        assert_eq!(e[0].nlink, 2);
        assert_eq!(e[1].mode, S_IFREG | 0o755);
        assert_eq!(e[1].data, b"\x7fELF...");
        assert_eq!(e[2].mode & S_IFMT, S_IFLNK);
        assert_eq!(e[2].data, b"busybox");
        assert_eq!(e[4].mode, S_IFCHR | 0o600);
        assert_eq!(e[4].rdev, (5, 1));
        assert_eq!(e[6].data, b"");
        let mut inos: Vec<u32> = e.iter().map(|e| e.ino).collect();
        inos.dedup();
        assert_eq!(inos.len(), e.len(), "distinct inodes");
        assert!(e.iter().all(|e| e.uid == 0 && e.gid == 0 && e.mtime == 0));
    }

    #[test]
    fn header_fields_are_where_the_kernel_reads_them() {
        let mut a = Archive::new();
        a.file("init", 0o755, b"abcde").unwrap();
        let bytes = a.finish();
        let header = std::str::from_utf8(&bytes[..HEADER_LEN]).unwrap();
        // magic, ino 1, mode 0100755, uid, gid, nlink 1, mtime, filesize 5, devmajor,
        // devminor, rdevmajor, rdevminor, namesize 5 ("init" and its NUL), check.
        assert_eq!(
            header,
            "070701\
             00000001000081ED000000000000000000000001000000000000000500000000\
             00000000000000000000000000000005\
             00000000"
        );
        // 110 + 5 = 115 bytes of header and name, padded to 116; data 5, padded to 8.
        assert_eq!(&bytes[110..116], b"init\0\0");
        assert_eq!(&bytes[116..124], b"abcde\0\0\0");
        assert_eq!(&bytes[124..130], MAGIC);
        let trailer = &bytes[124..];
        assert_eq!(&trailer[HEADER_LEN..HEADER_LEN + 11], b"TRAILER!!!\0");
        assert_eq!(bytes.len(), 124 + 124);
    }

    #[test]
    fn the_same_input_gives_the_same_bytes() {
        let build = || {
            let mut a = Archive::new();
            a.dir("etc", 0o755).unwrap();
            a.file("etc/run.sh", 0o755, b"echo hi\n").unwrap();
            a.finish()
        };
        assert_eq!(build(), build());
    }

    #[test]
    fn bad_names_and_duplicates_are_refused() {
        let mut a = Archive::new();
        for name in ["", "/init", "a/../b", "a//b", "x\0y", TRAILER, "dir/"] {
            assert_eq!(
                a.file(name, 0o644, b""),
                Err(CpioError::BadName(name.into())),
                "{name:?}"
            );
        }
        a.file("init", 0o755, b"1").unwrap();
        assert_eq!(
            a.symlink("init", "x"),
            Err(CpioError::Duplicate("init".into()))
        );
    }

    #[test]
    fn damaged_archives_are_refused() {
        let mut a = Archive::new();
        a.file("init", 0o755, b"abcde").unwrap();
        let bytes = a.finish();
        assert_eq!(read(&bytes[..100]), Err(CpioError::Truncated(0)));
        assert_eq!(read(&bytes[..120]), Err(CpioError::Truncated(0)));
        assert_eq!(read(&bytes[..124]), Err(CpioError::NoTrailer));
        let mut bad = bytes.clone();
        bad[5] = b'7';
        assert_eq!(read(&bad), Err(CpioError::BadHeader(0)));
        let mut bad = bytes.clone();
        bad[20] = b'g';
        assert_eq!(read(&bad), Err(CpioError::BadHeader(0)));
        assert_eq!(read(&[]), Err(CpioError::Truncated(0)));
    }
}
