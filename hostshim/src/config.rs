//! Agents' configuration files: reading one whole, and a trivial `key = value` reader.
//!
//! Agent config files are tiny TOML-looking files (`greeting = "hi"`, `beats = 3`). The
//! line reader here is deliberately not TOML: it understands `key = value` lines whose
//! value is a double-quoted string without escapes or a bare word/number, and `#`
//! comments; it knows nothing of tables (a key below a `[table]` header is found like any
//! other), arrays or escapes. Good enough for an agent's handful of settings without
//! pulling a parser into every agent.

use crate::Error;

/// Reads the whole container file `name` into `buf` and returns it as text.
///
/// Errors: those of [`config_read`](crate::config_read) ([`Error::NotFound`] if absent),
/// [`Error::BadLength`] if the file does not fit in `buf`, [`Error::NotUtf8`] if it is
/// not UTF-8.
pub fn read<'b>(name: &str, buf: &'b mut [u8]) -> Result<&'b str, Error> {
    read_from(|offset, part| crate::config_read(name, offset, part), buf)
}

/// [`read`] over any `source(offset, buf) -> bytes copied` with `config_read`'s contract.
fn read_from(
    mut source: impl FnMut(u64, &mut [u8]) -> Result<usize, Error>,
    buf: &mut [u8],
) -> Result<&str, Error> {
    let mut len = 0;
    while len < buf.len() {
        let n = source(len as u64, &mut buf[len..])?;
        if n == 0 {
            return core::str::from_utf8(&buf[..len]).map_err(|_| Error::NotUtf8);
        }
        // Never more than the space offered, whatever the source claims.
        len += n.min(buf.len() - len);
    }
    // The buffer is full: the file fits only if nothing follows.
    if source(len as u64, &mut [0u8; 1])? != 0 {
        return Err(Error::BadLength);
    }
    core::str::from_utf8(buf).map_err(|_| Error::NotUtf8)
}

/// The value of the first top-level `key = value` line in `text`: the text between double
/// quotes if quoted (no escapes), else the bare value with any `# comment` removed and
/// whitespace trimmed. `None` if no line has that key or its quotes are not closed.
pub fn value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once('=')?;
        if k.trim() != key || k.trim_start().starts_with('#') {
            return None;
        }
        let v = v.trim_start();
        match v.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"').map(|(inside, _)| inside),
            None => Some(v.split_once('#').map_or(v, |(bare, _)| bare).trim()),
        }
    })
}

/// The value of `key` in `text` (see [`value`]) as an unsigned number (see
/// [`parse_number`]). `None` if absent or not a number.
pub fn number(text: &str, key: &str) -> Option<u64> {
    parse_number(value(text, key)?)
}

/// An unsigned number written in decimal or as `0x` hexadecimal, with optional `_`
/// separators between digits (`1_000`, `0x80_0000_0000`). `None` if malformed or larger
/// than `u64::MAX`.
pub fn parse_number(text: &str) -> Option<u64> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') {
        return None;
    }
    digits
        .bytes()
        .filter(|b| *b != b'_')
        .try_fold(0u64, |acc, b| {
            let digit = char::from(b).to_digit(radix)?;
            acc.checked_mul(u64::from(radix))?
                .checked_add(u64::from(digit))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: &str = "# hello's settings\n\
        name = \"edge-1\"   # who we are\n\
        greeting=\"hi = there # not a comment\"\n\
        interval_ms = 250 # fast\n\
        \n\
        [table]\n\
        beats = 3\n\
        address = 0x80_0000_1000\n\
        empty = \"\"\n\
        open = \"never closed\n";

    #[test]
    fn values_quoted_bare_and_commented() {
        assert_eq!(value(HELLO, "name"), Some("edge-1"));
        assert_eq!(value(HELLO, "greeting"), Some("hi = there # not a comment"));
        assert_eq!(value(HELLO, "interval_ms"), Some("250"));
        assert_eq!(value(HELLO, "empty"), Some(""));
        assert_eq!(number(HELLO, "interval_ms"), Some(250));
        assert_eq!(number(HELLO, "beats"), Some(3));
        assert_eq!(number(HELLO, "address"), Some(0x80_0000_1000));
    }

    #[test]
    fn missing_partial_and_malformed_keys_are_none() {
        assert_eq!(value(HELLO, "beat"), None);
        assert_eq!(value(HELLO, "beats "), None);
        assert_eq!(value(HELLO, "hello's settings"), None);
        assert_eq!(value(HELLO, "open"), None);
        assert_eq!(value("", "name"), None);
        assert_eq!(value("# name = x", "name"), None);
        assert_eq!(value("name", "name"), None);
        // The first line with the key wins.
        assert_eq!(value("a = 1\na = 2", "a"), Some("1"));
        assert_eq!(number(HELLO, "name"), None);
        assert_eq!(number(HELLO, "missing"), None);
    }

    /// A file served `chunk` bytes per call, as a runtime may.
    fn serve(file: &[u8], chunk: usize) -> impl FnMut(u64, &mut [u8]) -> Result<usize, Error> {
        move |offset, buf| {
            let rest = file.get(offset as usize..).unwrap_or_default();
            let n = rest.len().min(buf.len()).min(chunk);
            buf[..n].copy_from_slice(&rest[..n]);
            Ok(n)
        }
    }

    #[test]
    fn read_gathers_short_reads_and_refuses_what_does_not_fit() {
        let mut buf = [0u8; 64];
        assert_eq!(
            read_from(serve(HELLO.as_bytes(), 3), &mut [0u8; 512]),
            Ok(HELLO)
        );
        assert_eq!(read_from(serve(b"", 3), &mut buf), Ok(""));
        // Exactly full is fine; one byte more is not.
        assert_eq!(
            read_from(serve(&[b'x'; 64], 7), &mut buf).map(str::len),
            Ok(64)
        );
        assert_eq!(
            read_from(serve(&[b'x'; 65], 64), &mut buf),
            Err(Error::BadLength)
        );
        assert_eq!(
            read_from(serve(b"ok\xff", 64), &mut buf),
            Err(Error::NotUtf8)
        );
        assert_eq!(
            read_from(|_, _| Err(Error::NotFound), &mut buf),
            Err(Error::NotFound)
        );
        // A source claiming more than it was offered cannot push `read` past the buffer.
        assert_eq!(
            read_from(|_, _| Ok(1000), &mut [b'a'; 4]),
            Err(Error::BadLength)
        );
    }

    #[test]
    fn numbers_decimal_hex_and_separators() {
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("1_000"), Some(1000));
        assert_eq!(parse_number("0x100000"), Some(0x10_0000));
        assert_eq!(parse_number("0XfF"), Some(255));
        assert_eq!(parse_number("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_number("0xffff_ffff_ffff_ffff"), Some(u64::MAX));
        for bad in [
            "",
            "0x",
            "_1",
            "1_",
            "0x_1",
            "-1",
            "+1",
            "1.5",
            "12a",
            "0xg",
            " 1",
            "18446744073709551616",
            "0x1_0000_0000_0000_0000",
        ] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
    }
}
