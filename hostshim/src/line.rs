//! Log lines without allocation: a fixed buffer [`logf!`](crate::logf) formats into.

use core::fmt;

use plinth_abi::MAX_LOG;

/// Bytes one [`LogLine`] holds: the longest line the runtime accepts.
const CAPACITY: usize = MAX_LOG as usize;

/// A log line being formatted: up to [`plinth_abi::MAX_LOG`] bytes of UTF-8 on the stack.
///
/// Writing never fails; text past the capacity is dropped at a character boundary, so the
/// contents are always valid UTF-8.
pub struct LogLine {
    buf: [u8; CAPACITY],
    len: usize,
}

impl LogLine {
    /// An empty line.
    pub const fn new() -> LogLine {
        LogLine {
            buf: [0; CAPACITY],
            len: 0,
        }
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        // Only whole characters of `&str`s are ever copied in, so this cannot fail.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl Default for LogLine {
    fn default() -> LogLine {
        LogLine::new()
    }
}

impl fmt::Write for LogLine {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = CAPACITY - self.len;
        let part = truncate(s, room);
        self.buf[self.len..self.len + part.len()].copy_from_slice(part.as_bytes());
        self.len += part.len();
        Ok(())
    }
}

/// The longest prefix of `text` that is at most `max` bytes and ends on a character
/// boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    // A UTF-8 character is at most 4 bytes, so a boundary lies within the last 4.
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use core::fmt::Write;

    use super::*;

    #[test]
    fn truncate_keeps_short_text_and_cuts_on_char_boundaries() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("abc", 0), "");
        // 'é' is 2 bytes, '€' is 3: never cut inside one.
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("€€", 5), "€");
        assert_eq!(truncate("€€", 6), "€€");
    }

    #[test]
    fn log_line_formats_and_drops_what_does_not_fit() {
        let mut line = LogLine::new();
        write!(line, "beat {} of {}", 3, 7).unwrap();
        assert_eq!(line.as_str(), "beat 3 of 7");

        let mut long = LogLine::new();
        for _ in 0..200 {
            write!(long, "€").unwrap();
        }
        // 170 euro signs are 510 bytes; the 171st would end at 513.
        assert_eq!(long.as_str().len(), 510);
        assert!(long.as_str().chars().all(|c| c == '€'));
        write!(long, "ab").unwrap();
        assert_eq!(long.as_str().len(), CAPACITY);
        assert!(long.as_str().ends_with("€ab"));
        write!(long, "more").unwrap();
        assert_eq!(long.as_str().len(), CAPACITY);
    }
}
