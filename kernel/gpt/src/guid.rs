//! GUIDs as the GPT stores them.

use core::fmt;
use core::str::FromStr;

use crate::GptError;

/// A GUID in its on-disk byte order: the first three fields little-endian, the last eight
/// bytes as written. So `0FC63DAF-8483-4772-8E79-3D69D8477DE4` (Linux filesystem data) is
/// `AF 3D C6 0F 83 84 72 47 8E 79 3D 69 D8 47 7D E4`. The field is that order so a GUID
/// can be copied to and from an entry unchanged; [`Guid::from_fields`], [`Guid::parse`] and
/// `Display` deal in the text form.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The all-zero GUID: as a type GUID it marks an unused entry.
    pub const NIL: Guid = Guid([0; 16]);

    /// The GUID written `d1-d2-d3-d4[0..2]-d4[2..8]` in hex, so constants read like the
    /// specifications that define them:
    /// `Guid::from_fields(0x0FC63DAF, 0x8483, 0x4772, [0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D, 0xE4])`.
    pub const fn from_fields(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// Parses the text form, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hex digits of either
    /// case, nothing around it (no braces, no spaces).
    pub fn parse(s: &str) -> Result<Guid, GptError> {
        let s = s.as_bytes();
        if s.len() != 36 {
            return Err(GptError::BadGuid);
        }
        // The 16 bytes in text order, then rearranged into the on-disk order.
        let mut text = [0u8; 16];
        let mut digits = 0usize;
        for (i, &c) in s.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return Err(GptError::BadGuid);
                }
                continue;
            }
            let v = hex_value(c).ok_or(GptError::BadGuid)?;
            let byte = text.get_mut(digits / 2).ok_or(GptError::BadGuid)?;
            *byte = (*byte << 4) | v;
            digits += 1;
        }
        let [
            a0,
            a1,
            a2,
            a3,
            b0,
            b1,
            c0,
            c1,
            d0,
            d1,
            d2,
            d3,
            d4,
            d5,
            d6,
            d7,
        ] = text;
        Ok(Guid::from_fields(
            u32::from_be_bytes([a0, a1, a2, a3]),
            u16::from_be_bytes([b0, b1]),
            u16::from_be_bytes([c0, c1]),
            [d0, d1, d2, d3, d4, d5, d6, d7],
        ))
    }

    /// A random-looking GUID made from 16 bytes the caller derived (a hash of what the
    /// image holds, say), with the version-4 and RFC 4122 variant bits set so it looks like
    /// any other random GUID: images built twice from the same input get the same GUIDs.
    pub fn from_hash(bytes: [u8; 16]) -> Guid {
        let mut g = bytes;
        // The version is the top nibble of the third field, stored little-endian: byte 7.
        g[7] = (g[7] & 0x0f) | 0x40;
        // The variant is the top two bits of the fourth field's first byte: byte 8.
        g[8] = (g[8] & 0x3f) | 0x80;
        Guid(g)
    }

    pub fn is_nil(&self) -> bool {
        *self == Guid::NIL
    }

    /// The fields of the text form (see [`Guid::from_fields`]).
    fn fields(&self) -> (u32, u16, u16, [u8; 8]) {
        let [
            a0,
            a1,
            a2,
            a3,
            b0,
            b1,
            c0,
            c1,
            d0,
            d1,
            d2,
            d3,
            d4,
            d5,
            d6,
            d7,
        ] = self.0;
        (
            u32::from_le_bytes([a0, a1, a2, a3]),
            u16::from_le_bytes([b0, b1]),
            u16::from_le_bytes([c0, c1]),
            [d0, d1, d2, d3, d4, d5, d6, d7],
        )
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The text form in upper case, as `sgdisk` and `fdisk` print it.
impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (d1, d2, d3, d4) = self.fields();
        write!(f, "{d1:08X}-{d2:04X}-{d3:04X}-{:02X}{:02X}-", d4[0], d4[1])?;
        for b in &d4[2..] {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl FromStr for Guid {
    type Err = GptError;

    fn from_str(s: &str) -> Result<Guid, GptError> {
        Guid::parse(s)
    }
}
