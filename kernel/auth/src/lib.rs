//! The management API's bearer tokens: what a token looks like, the form an appliance
//! keeps it in (hashed: a catalog that leaks gives no token away), who it speaks for,
//! and the check of a request's `Authorization` header.
//!
//! A token is `plinth_` followed by a 16-hex-digit id and a 64-hex-digit secret, joined
//! by `_` (`plinth_0123456789abcdef_…`): 32 random bytes of secret, an id to find its
//! entry by, and a prefix secret scanners know. An appliance keeps, per token, its id,
//! the SHA-256 of its secret, a name (for the audit log), its [`Role`] and, optionally,
//! when it expires (Unix seconds).
//!
//! [`check`] reads `Authorization: Bearer <token>` and says which entry it is, or why
//! not ([`Refusal`]). It is timing-safe: every entry is looked at whatever the id, and
//! hashes are compared with `subtle`'s constant-time equality, so neither how far a
//! guess matched nor which ids exist shows in how long the answer takes. A wrong id and
//! a wrong secret are the same refusal. A token with an expiry is refused when the
//! caller does not know the time (fail closed).
//!
//! Owns the format and the check. It must not decide what a role may do (the API's
//! routes do) or where entries come from (the catalog), nor make randomness: [`mint`]
//! takes the caller's random bytes.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[cfg(test)]
mod tests;

/// What every token starts with.
pub const PREFIX: &str = "plinth_";
/// Bytes of a token's id and of its secret.
pub const ID_BYTES: usize = 8;
pub const SECRET_BYTES: usize = 32;
/// Characters of a whole token.
pub const TOKEN_LEN: usize = PREFIX.len() + 2 * ID_BYTES + 1 + 2 * SECRET_BYTES;

/// Who a token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// May do everything.
    Operator,
    /// Sees and drives only this tenant's partitions.
    Tenant(String),
}

/// A token as an appliance keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: [u8; ID_BYTES],
    /// SHA-256 of the secret.
    pub hash: [u8; 32],
    /// What the audit log calls it.
    pub name: String,
    pub role: Role,
    /// Unix seconds from which it is refused; `None`: it does not expire.
    pub expires: Option<u64>,
}

/// Why a request's credentials were refused. The API answers each with a bare 401; the
/// reasons are for its counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header.
    Missing,
    /// A header that is not `Bearer ` and a token of the right shape.
    Malformed,
    /// No entry has this id and secret.
    Unknown,
    /// Its entry has expired, or it has an expiry and the time is not known.
    Expired,
}

impl Refusal {
    /// Its name in metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::Unknown => "unknown",
            Refusal::Expired => "expired",
        }
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn unhex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *o = hex_digit(pair[0])? << 4 | hex_digit(pair[1])?;
    }
    Some(out)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

/// A token's id and secret, if `token` has a token's shape (lowercase hex only).
pub fn parse(token: &[u8]) -> Option<([u8; ID_BYTES], [u8; SECRET_BYTES])> {
    let rest = token.strip_prefix(PREFIX.as_bytes())?;
    if rest.len() != 2 * ID_BYTES + 1 + 2 * SECRET_BYTES || rest[2 * ID_BYTES] != b'_' {
        return None;
    }
    Some((
        unhex(&rest[..2 * ID_BYTES])?,
        unhex(&rest[2 * ID_BYTES + 1..])?,
    ))
}

/// SHA-256 of a secret: what an entry keeps.
pub fn hash(secret: &[u8; SECRET_BYTES]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// A new token from `random` (the caller's random bytes: an id, then a secret): the
/// token to hand over once, and the entry to keep (named `name`, for `role`, expiring
/// at `expires`).
pub fn mint(
    random: [u8; ID_BYTES + SECRET_BYTES],
    name: &str,
    role: Role,
    expires: Option<u64>,
) -> (String, Entry) {
    let mut id = [0u8; ID_BYTES];
    id.copy_from_slice(&random[..ID_BYTES]);
    let mut secret = [0u8; SECRET_BYTES];
    secret.copy_from_slice(&random[ID_BYTES..]);
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(PREFIX);
    push_hex(&mut token, &id);
    token.push('_');
    push_hex(&mut token, &secret);
    let entry = Entry {
        id,
        hash: hash(&secret),
        name: name.into(),
        role,
        expires,
    };
    (token, entry)
}

/// The entry an `Authorization` header's bearer token is, at Unix time `now` (`None`:
/// not known), or why it is refused.
pub fn check<'a>(
    entries: &'a [Entry],
    authorization: Option<&[u8]>,
    now: Option<u64>,
) -> Result<&'a Entry, Refusal> {
    let header = authorization.ok_or(Refusal::Missing)?;
    let header = trim(header);
    // The scheme is case-insensitive (RFC 9110 §11.1); one space or more after it.
    let (scheme, rest) = header.split_at_checked(6).ok_or(Refusal::Malformed)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || rest.first().is_none_or(|c| *c != b' ') {
        return Err(Refusal::Malformed);
    }
    let (id, secret) = parse(trim(rest)).ok_or(Refusal::Malformed)?;
    let presented = hash(&secret);
    // Every entry is looked at (the loop does not stop at a match), each compared in
    // constant time.
    let mut found: Option<&Entry> = None;
    for e in entries {
        let same = e.id.ct_eq(&id) & e.hash.ct_eq(&presented);
        if bool::from(same) && found.is_none() {
            found = Some(e);
        }
    }
    let e = found.ok_or(Refusal::Unknown)?;
    match (e.expires, now) {
        (None, _) => Ok(e),
        (Some(at), Some(now)) if now < at => Ok(e),
        _ => Err(Refusal::Expired),
    }
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| *c != b' ' && *c != b'\t')
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| *c != b' ' && *c != b'\t')
        .map_or(start, |i| i + 1);
    &b[start..end.max(start)]
}
