//! The ustar header block: field positions, and the octal and string encodings.

use core::ops::Range;

use crate::BLOCK_SIZE;

/// One header, exactly a block.
pub(crate) type Block = [u8; BLOCK_SIZE];

pub(crate) const NAME_LEN: usize = 100;
pub(crate) const PREFIX_LEN: usize = 155;

// Field positions, from POSIX (pax, "ustar Interchange Format").
pub(crate) const NAME: Range<usize> = 0..100;
pub(crate) const MODE: Range<usize> = 100..108;
pub(crate) const UID: Range<usize> = 108..116;
pub(crate) const GID: Range<usize> = 116..124;
pub(crate) const SIZE: Range<usize> = 124..136;
pub(crate) const MTIME: Range<usize> = 136..148;
pub(crate) const CHKSUM: Range<usize> = 148..156;
pub(crate) const TYPEFLAG: usize = 156;
pub(crate) const LINKNAME: Range<usize> = 157..257;
/// Magic and version together: `ustar\0` `00`, or GNU's `ustar  \0`.
pub(crate) const MAGIC: Range<usize> = 257..265;
pub(crate) const UNAME: Range<usize> = 265..297;
pub(crate) const GNAME: Range<usize> = 297..329;
pub(crate) const DEVMAJOR: Range<usize> = 329..337;
pub(crate) const DEVMINOR: Range<usize> = 337..345;
pub(crate) const PREFIX: Range<usize> = 345..500;
/// Unused by ustar.
pub(crate) const USTAR_TAIL: Range<usize> = 500..512;
/// Where GNU's format keeps times, sparse maps and so on instead of a prefix.
pub(crate) const GNU_TAIL: Range<usize> = 345..512;

pub(crate) const USTAR_MAGIC: &[u8; 8] = b"ustar\x0000";
pub(crate) const GNU_MAGIC: &[u8; 8] = b"ustar  \0";

/// Largest value an octal field of `len` bytes holds with its terminating NUL.
pub(crate) const fn octal_max(len: usize) -> u64 {
    (1 << (3 * (len - 1))) - 1
}

/// The POSIX checksum: the unsigned sum of the header's bytes, the checksum field counted
/// as eight spaces.
pub(crate) fn checksum(block: &Block) -> u64 {
    block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if CHKSUM.contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum()
}

/// An octal number field: optional leading spaces, octal digits, then only spaces and
/// NULs. `None` if anything else is there (base-256 included), or if there are no digits
/// and `allow_empty` is false; an allowed empty field is 0.
pub(crate) fn parse_octal(field: &[u8], allow_empty: bool) -> Option<u64> {
    let start = field.iter().take_while(|&&b| b == b' ').count();
    let rest = field.get(start..)?;
    let digits = rest
        .iter()
        .take_while(|b| (b'0'..=b'7').contains(b))
        .count();
    let (number, tail) = rest.split_at_checked(digits)?;
    if !tail.iter().all(|&b| b == 0 || b == b' ') {
        return None;
    }
    if number.is_empty() && !allow_empty {
        return None;
    }
    number.iter().try_fold(0u64, |value, &digit| {
        value.checked_mul(8)?.checked_add(u64::from(digit - b'0'))
    })
}

/// Writes `value` as zero-padded octal ending in NUL, as tar does. The caller has checked
/// it fits ([`octal_max`]); the high digits of a value that does not are dropped.
pub(crate) fn write_octal(field: &mut [u8], value: u64) {
    let mut rest = value;
    if let Some((nul, digits)) = field.split_last_mut() {
        *nul = 0;
        for digit in digits.iter_mut().rev() {
            // Masked to 0..=7, so the cast is exact.
            *digit = b'0' + (rest & 7) as u8;
            rest >>= 3;
        }
    }
}

/// A string field: the bytes before the first NUL (all of them if there is none). `None`
/// if a non-NUL byte follows that NUL, since two readers could disagree on such a field.
pub(crate) fn parse_string(field: &[u8]) -> Option<&[u8]> {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let (text, tail) = field.split_at_checked(len)?;
    tail.iter().all(|&b| b == 0).then_some(text)
}

/// Splits a name into ustar's prefix and name fields: whole if it fits the name field,
/// else at the last `/` that leaves a prefix of at most 155 bytes (the shortest name part
/// possible, as GNU tar chooses). `None` if no split fits.
pub(crate) fn split_name(name: &str) -> Option<(&str, &str)> {
    if name.len() <= NAME_LEN {
        return Some(("", name));
    }
    let slash = name
        .char_indices()
        .take_while(|&(i, _)| i <= PREFIX_LEN)
        .filter(|&(_, c)| c == '/')
        .map(|(i, _)| i)
        .last()?;
    let prefix = name.get(..slash)?;
    let rest = name.get(slash + 1..)?;
    (!prefix.is_empty() && !rest.is_empty() && rest.len() <= NAME_LEN).then_some((prefix, rest))
}
