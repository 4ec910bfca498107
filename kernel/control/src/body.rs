//! Request bodies: size limit, JSON decoding with `serde-json-core`, and error messages
//! that name the field.
//!
//! Strings are unescaped into a scratch buffer as long as the body (an escape never
//! decodes longer than it is written), so `"\u0061"` is `"a"`; an escape the decoder
//! cannot take (a bad one, or a UTF-16 surrogate pair) refuses the body. Without
//! `custom-error-messages`, `serde-json-core` reports unknown, duplicate and missing fields
//! all as one `CustomError`; on that error the body is scanned a second time for its keys
//! to say which.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess};
use serde_json_core::de::Error;

use crate::{ControlError, MAX_BODY, quote};

/// A body type's fields, for the messages.
pub(crate) struct Shape {
    /// What the body describes, for "… takes".
    pub what: &'static str,
    pub fields: &'static [&'static str],
    pub required: &'static [&'static str],
    /// The fields holding an array of objects of another shape, with that shape.
    pub nested: &'static [(&'static str, &'static Shape)],
}

fn bad(message: String) -> ControlError {
    ControlError::BadJson { message }
}

/// Refuses a body over [`MAX_BODY`].
pub(crate) fn size(body: &[u8]) -> Result<(), ControlError> {
    if body.len() > MAX_BODY {
        return Err(ControlError::BodyTooLarge);
    }
    Ok(())
}

/// Decodes a JSON body into `T` (fields not yet validated).
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8], shape: &Shape) -> Result<T, ControlError> {
    size(body)?;
    if body
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return Err(bad(format!(
            "expected a JSON object describing {}",
            shape.what
        )));
    }
    let mut scratch = vec![0u8; body.len()];
    match serde_json_core::from_slice_escaped::<T>(body, &mut scratch) {
        Ok((value, _)) => Ok(value),
        Err(Error::CustomError) => Err(bad(diagnose(body, shape))),
        Err(e) => Err(bad(describe(&e))),
    }
}

/// A one-line message for a syntax or type error.
fn describe(e: &Error) -> String {
    match e {
        Error::InvalidType => String::from(
            "a value has the wrong type (expected an object, string, array, or a whole number)",
        ),
        Error::InvalidNumber => {
            String::from("a number is malformed, negative or too large for its field")
        }
        Error::InvalidEscapeSequence => String::from(
            "a string holds an escape sequence that is not supported (e.g. a surrogate pair)",
        ),
        Error::InvalidUnicodeCodePoint => String::from("a string is not valid UTF-8"),
        Error::EscapedStringIsTooLong => String::from("a string is too long"),
        other => {
            let text = other.to_string();
            let text = text.trim_end_matches('.');
            // "EOF while parsing …" as the client sees it.
            match text.strip_prefix("EOF ") {
                Some(rest) => format!("the body ends early ({rest})"),
                None => String::from(text),
            }
        }
    }
}

/// The keys of one object, and the objects of its nested arrays, each array with its
/// field, in the body's order.
#[derive(Default)]
struct Scanned {
    keys: Vec<String>,
    nested: Vec<(&'static str, Vec<Scanned>)>,
}

/// Deepest nesting the key scan walks into. The bodies nest two deep (agents, NICs); the scan
/// skips values by recursion, which must stay shallow on a kernel stack.
const MAX_SCAN_DEPTH: usize = 8;

/// How deep arrays and objects nest in `body`, outside strings (`None` past `limit`).
fn nesting(body: &[u8], limit: usize) -> Option<usize> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > limit {
                    return None;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Some(deepest)
}

/// Says which field is unknown, duplicated or missing.
fn diagnose(body: &[u8], shape: &Shape) -> String {
    let generic = || format!("the body does not describe {}", shape.what);
    if nesting(body, MAX_SCAN_DEPTH).is_none() {
        return generic();
    }
    let mut scratch = vec![0u8; body.len()];
    let mut de = serde_json_core::de::Deserializer::new(body, Some(&mut scratch));
    ScanObject(shape)
        .deserialize(&mut de)
        .ok()
        .and_then(|s| check(&s, shape, ""))
        .unwrap_or_else(generic)
}

fn check(s: &Scanned, shape: &Shape, at: &str) -> Option<String> {
    for (i, k) in s.keys.iter().enumerate() {
        if !shape.fields.contains(&k.as_str()) {
            return Some(format!(
                "unknown field {} in {}; it takes {}",
                quote(&format!("{at}{k}")),
                shape.what,
                shape.fields.join(", ")
            ));
        }
        if s.keys[..i].contains(k) {
            return Some(format!("field {at}{k} is given twice"));
        }
    }
    if let Some(missing) = shape
        .required
        .iter()
        .find(|r| !s.keys.iter().any(|k| k == *r))
    {
        return Some(format!("missing field {at}{missing} in {}", shape.what));
    }
    s.nested.iter().find_map(|(field, items)| {
        let (_, inner) = shape.nested.iter().find(|(f, _)| f == field)?;
        items
            .iter()
            .enumerate()
            .find_map(|(i, n)| check(n, inner, &format!("{at}{field}[{i}].")))
    })
}

/// Scans an object's keys; values are skipped except the nested arrays' objects.
struct ScanObject<'s>(&'s Shape);

impl<'de> DeserializeSeed<'de> for ScanObject<'_> {
    type Value = Scanned;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Scanned, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> de::Visitor<'de> for ScanObject<'_> {
    type Value = Scanned;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scanned, A::Error> {
        let mut out = Scanned::default();
        while let Some(key) = map.next_key_seed(Key)? {
            match self.0.nested.iter().find(|(f, _)| *f == key) {
                Some(&(field, inner)) => {
                    let items = map.next_value_seed(ScanArray(inner))?;
                    out.nested.push((field, items));
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            out.keys.push(key);
        }
        Ok(out)
    }
}

/// An array of objects of one shape.
struct ScanArray<'s>(&'s Shape);

impl<'de> DeserializeSeed<'de> for ScanArray<'_> {
    type Value = Vec<Scanned>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Vec<Scanned>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> de::Visitor<'de> for ScanArray<'_> {
    type Value = Vec<Scanned>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Scanned>, A::Error> {
        let mut out = Vec::new();
        while let Some(s) = seq.next_element_seed(ScanObject(self.0))? {
            out.push(s);
        }
        Ok(out)
    }
}

/// An object key, escaped or not. (`serde-json-core` takes keys through
/// `deserialize_str` only: its `deserialize_string` on a key is `unreachable!`.)
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = String;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> de::Visitor<'de> for Key {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(String::from(v))
    }
}
