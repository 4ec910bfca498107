//! A minimal JSON writer into a `String`: objects, arrays, strings with full escaping,
//! integers, finite floats, booleans and null.
//!
//! It places the commas; it does not check nesting (callers write fixed shapes, and a
//! mistake shows up in the first test of the endpoint). Every string, keys included, is
//! escaped, so runtime data such as disk serials cannot break the document.

use alloc::string::String;
use core::fmt::Write;

#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    /// Whether the next value in the current container needs a comma before it.
    comma: bool,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    fn value_start(&mut self) {
        if self.comma {
            self.out.push(',');
        }
        self.comma = true;
    }

    pub fn begin_object(&mut self) -> &mut Self {
        self.value_start();
        self.out.push('{');
        self.comma = false;
        self
    }

    pub fn end_object(&mut self) -> &mut Self {
        self.out.push('}');
        self.comma = true;
        self
    }

    pub fn begin_array(&mut self) -> &mut Self {
        self.value_start();
        self.out.push('[');
        self.comma = false;
        self
    }

    pub fn end_array(&mut self) -> &mut Self {
        self.out.push(']');
        self.comma = true;
        self
    }

    /// An object key; the next call writes its value.
    pub fn key(&mut self, k: &str) -> &mut Self {
        self.value_start();
        escape_into(&mut self.out, k);
        self.out.push(':');
        self.comma = false;
        self
    }

    /// A value that is JSON already (another writer's document), copied as it is: the
    /// caller vouches for it.
    pub fn raw(&mut self, json: &str) -> &mut Self {
        self.value_start();
        self.out.push_str(json);
        self
    }

    pub fn string(&mut self, s: &str) -> &mut Self {
        self.value_start();
        escape_into(&mut self.out, s);
        self
    }

    pub fn u64(&mut self, n: u64) -> &mut Self {
        self.value_start();
        let _ = write!(self.out, "{n}");
        self
    }

    pub fn i64(&mut self, n: i64) -> &mut Self {
        self.value_start();
        let _ = write!(self.out, "{n}");
        self
    }

    /// A number; NaN and the infinities, which JSON cannot express, become `null`.
    pub fn f64(&mut self, x: f64) -> &mut Self {
        self.value_start();
        if x.is_finite() {
            // Rust prints the shortest form that reads back exactly, never with an
            // exponent; integral values get no fraction ("3", not "3.0"), which is JSON.
            let _ = write!(self.out, "{x}");
        } else {
            self.out.push_str("null");
        }
        self
    }

    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.value_start();
        self.out.push_str(if b { "true" } else { "false" });
        self
    }

    pub fn null(&mut self) -> &mut Self {
        self.value_start();
        self.out.push_str("null");
        self
    }

    /// The document written so far.
    pub fn as_str(&self) -> &str {
        &self.out
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Writes `s` as a JSON string literal: `"` and `\` escaped, control characters (and DEL)
/// as `\u00XX`, everything else as is (the output is UTF-8).
pub fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_documents_get_their_commas() {
        let mut w = Writer::new();
        w.begin_object();
        w.key("a").u64(1);
        w.key("b").begin_array();
        w.begin_object().end_object();
        w.i64(-2).bool(false).null().f64(0.5).f64(3.0).f64(f64::NAN);
        w.begin_array().end_array();
        w.end_array();
        w.key("c").begin_object();
        w.key("d").string("x");
        w.end_object();
        w.end_object();
        assert_eq!(
            w.finish(),
            r#"{"a":1,"b":[{},-2,false,null,0.5,3,null,[]],"c":{"d":"x"}}"#
        );
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        escape_into(&mut s, "q\"b\\n\nt\tz\0e\u{1f}d\u{7f}é☃");
        assert_eq!(s, r#""q\"b\\n\u000at\u0009z\u0000e\u001fd\u007fé☃""#);
        let mut w = Writer::new();
        w.begin_object();
        w.key("k\"").string("");
        w.end_object();
        assert_eq!(w.as_str(), r#"{"k\"":""}"#);
    }

    #[test]
    fn a_raw_value_takes_its_place_among_the_others() {
        let mut w = Writer::new();
        w.begin_object()
            .key("a")
            .raw(r#"{"x":[1]}"#)
            .key("b")
            .u64(2);
        w.end_object();
        assert_eq!(w.finish(), r#"{"a":{"x":[1]},"b":2}"#);
    }

    #[test]
    fn a_top_level_sequence_is_comma_separated() {
        let mut w = Writer::new();
        w.u64(1).u64(2);
        assert_eq!(w.finish(), "1,2");
    }
}
