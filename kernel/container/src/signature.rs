//! The signing digest, the `SIGNATURE` entry's line, public keys, and ed25519.

use core::fmt;
use core::fmt::Write as _;

use plinth_tar::Entry;
use sha2::{Digest, Sha256};

use crate::SIGNATURE_NAME;

/// An ed25519 public key: 32 bytes, written as 64 lowercase hex digits. Parsing checks
/// only the form; whether the bytes are a usable key is found when verifying.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

/// Why a key's or a `SIGNATURE` line's text was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HexError {
    /// Not the expected number of hex digits.
    Length { expected: usize, found: usize },
    /// A character other than `0-9a-f` (uppercase is refused too: one spelling per key).
    NotLowercaseHex,
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::Length { expected, found } => {
                write!(f, "expected {expected} hex digits, found {found}")
            }
            HexError::NotLowercaseHex => f.write_str("expected lowercase hex digits (0-9a-f)"),
        }
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn parse_hex<const N: usize>(s: &[u8]) -> Result<[u8; N], HexError> {
    if s.len() != 2 * N {
        return Err(HexError::Length {
            expected: 2 * N,
            found: s.len(),
        });
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (hex_digit(pair[0]), hex_digit(pair[1])) else {
            return Err(HexError::NotLowercaseHex);
        };
        *byte = (hi << 4) | lo;
    }
    Ok(out)
}

fn write_hex(f: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        f.write_char(char::from(DIGITS[usize::from(b >> 4)]))?;
        f.write_char(char::from(DIGITS[usize::from(b & 0xf)]))?;
    }
    Ok(())
}

impl PublicKey {
    /// Parses 64 lowercase hex digits, nothing else (no prefix, no whitespace).
    pub fn from_hex(s: &str) -> Result<PublicKey, HexError> {
        parse_hex(s.as_bytes()).map(PublicKey)
    }
}

impl fmt::Display for PublicKey {
    /// 64 lowercase hex digits, what [`PublicKey::from_hex`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// The first word of a public key file: `ed25519 <64 hex digits>`.
pub const PUBLIC_KEY_PREFIX: &str = "ed25519";
/// The first word of a secret key file: `ed25519-secret <64 hex digits>` (the seed).
pub const SECRET_KEY_PREFIX: &str = "ed25519-secret";

/// Reads a key file: one line `PREFIX <64 lowercase hex digits>`, the final newline
/// optional, nothing else. The tool writes these files and the catalog carries them, so
/// both read them here.
pub fn parse_key_file(text: &[u8], prefix: &str) -> Option<[u8; 32]> {
    let line = text.strip_suffix(b"\n").unwrap_or(text);
    let rest = line.strip_prefix(prefix.as_bytes())?.strip_prefix(b" ")?;
    parse_hex(rest).ok()
}

/// The content of a `SIGNATURE` entry: the signer's key and the signature of the
/// container's [`signing_digest`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignatureLine {
    pub key: PublicKey,
    pub signature: [u8; 64],
}

impl fmt::Display for SignatureLine {
    /// The line without its final newline: `ed25519 <key hex> <signature hex>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ed25519 ")?;
        write_hex(f, &self.key.0)?;
        f.write_char(' ')?;
        write_hex(f, &self.signature)
    }
}

impl fmt::Debug for SignatureLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignatureLine({self})")
    }
}

/// Why a `SIGNATURE` entry's content is not a signature line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureLineError {
    /// Does not start with `ed25519 `.
    Algorithm,
    /// Does not end with exactly one `\n` after the signature.
    Newline,
    /// Not three fields separated by single spaces.
    Fields,
    /// The key field.
    Key(HexError),
    /// The signature field.
    Signature(HexError),
}

impl fmt::Display for SignatureLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureLineError::Algorithm => f.write_str("it does not start with `ed25519 `"),
            SignatureLineError::Newline => {
                f.write_str("it must end with a single newline after the signature")
            }
            SignatureLineError::Fields => f.write_str(
                "expected `ed25519 <key hex> <signature hex>`, fields separated by one space",
            ),
            SignatureLineError::Key(e) => write!(f, "public key: {e}"),
            SignatureLineError::Signature(e) => write!(f, "signature: {e}"),
        }
    }
}

impl SignatureLine {
    /// Length of a line in bytes: `ed25519 `, 64 digits, a space, 128 digits, `\n`.
    pub const LEN: usize = 8 + 64 + 1 + 128 + 1;

    /// Parses exactly `ed25519 <64 lowercase hex> <128 lowercase hex>\n`.
    pub fn parse(data: &[u8]) -> Result<SignatureLine, SignatureLineError> {
        let rest = data
            .strip_prefix(b"ed25519 ")
            .ok_or(SignatureLineError::Algorithm)?;
        let rest = rest
            .strip_suffix(b"\n")
            .ok_or(SignatureLineError::Newline)?;
        if rest.ends_with(b"\n") || rest.ends_with(b"\r") {
            return Err(SignatureLineError::Newline);
        }
        let mut fields = rest.split(|&b| b == b' ');
        let (Some(key), Some(signature), None) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(SignatureLineError::Fields);
        };
        Ok(SignatureLine {
            key: PublicKey(parse_hex(key).map_err(SignatureLineError::Key)?),
            signature: parse_hex(signature).map_err(SignatureLineError::Signature)?,
        })
    }

    /// The line as it is stored in the `SIGNATURE` entry.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        struct Buf([u8; SignatureLine::LEN], usize);
        impl fmt::Write for Buf {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let end = self.1 + s.len();
                self.0
                    .get_mut(self.1..end)
                    .ok_or(fmt::Error)?
                    .copy_from_slice(s.as_bytes());
                self.1 = end;
                Ok(())
            }
        }
        let mut buf = Buf([0; Self::LEN], 0);
        // The buffer is exactly the line's length, so none of these writes fails.
        let _ = fmt::Write::write_fmt(&mut buf, format_args!("{self}\n"));
        buf.0
    }

    /// Checks the signature over `digest` with the line's key, strictly (`verify_strict`:
    /// no small-order keys, no malleable signatures).
    pub fn check(&self, digest: &[u8; 32]) -> Result<(), VerifyError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(&self.key.0)
            .map_err(|_| VerifyError::InvalidKey)?;
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature);
        key.verify_strict(digest, &signature)
            .map_err(|_| VerifyError::BadSignature)
    }
}

/// Why [`SignatureLine::check`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyError {
    /// The key bytes are not a usable ed25519 key.
    InvalidKey,
    /// The signature does not match the digest under the key.
    BadSignature,
}

/// The digest a container's signature covers. See the crate docs for the definition:
/// SHA-256 over every entry except those named `SIGNATURE`, in order, each as
/// `u32 LE name length, name, u32 LE mode, u64 LE data length, data`.
pub fn signing_digest(entries: &[Entry<'_>]) -> [u8; 32] {
    digest_of(entries.iter().map(|e| (&*e.name, e.mode, e.data)))
}

pub(crate) fn digest_of<'a>(entries: impl Iterator<Item = (&'a str, u32, &'a [u8])>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for (name, mode, data) in entries {
        if name == SIGNATURE_NAME {
            continue;
        }
        // Names are at most 256 bytes and data sizes fit a tar header, so neither cast
        // saturates for anything read or written; saturating keeps it total regardless.
        let name_len = u32::try_from(name.len()).unwrap_or(u32::MAX);
        let data_len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        hasher.update(name_len.to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update(mode.to_le_bytes());
        hasher.update(data_len.to_le_bytes());
        hasher.update(data);
    }
    hasher.finalize().into()
}

/// A 32-byte ed25519 secret seed (RFC 8032's private key).
#[cfg(any(test, feature = "sign"))]
pub type SigningKeyBytes = [u8; 32];

/// The public key of a seed.
#[cfg(any(test, feature = "sign"))]
pub fn public_key(seed: &SigningKeyBytes) -> PublicKey {
    PublicKey(
        ed25519_dalek::SigningKey::from_bytes(seed)
            .verifying_key()
            .to_bytes(),
    )
}

/// The signature line for `digest` under `seed`.
#[cfg(any(test, feature = "sign"))]
pub fn sign_digest(seed: &SigningKeyBytes, digest: &[u8; 32]) -> SignatureLine {
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(seed);
    SignatureLine {
        key: PublicKey(key.verifying_key().to_bytes()),
        signature: key.sign(digest).to_bytes(),
    }
}
