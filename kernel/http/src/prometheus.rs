//! The Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` once per
//! metric family, then its samples, label values escaped.
//!
//! Write all samples of one family one after another (the format requires it); the
//! writer emits HELP and TYPE whenever the family changes. Metric and label names come
//! from the caller's code, not from clients; characters the format does not allow in
//! them are replaced with `_` rather than trusted.

use alloc::string::String;
use core::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Untyped,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
        }
    }
}

#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    /// The family whose HELP and TYPE lines were written last.
    family: String,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// One sample of family `name`, preceded by HELP and TYPE lines if the family is new.
    pub fn metric(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        if self.family != name {
            self.out.push_str("# HELP ");
            push_name(&mut self.out, name, true);
            self.out.push(' ');
            escape(&mut self.out, help, false);
            self.out.push_str("\n# TYPE ");
            push_name(&mut self.out, name, true);
            let _ = writeln!(self.out, " {}", kind.name());
            self.family.clear();
            self.family.push_str(name);
        }
        push_name(&mut self.out, name, true);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                push_name(&mut self.out, k, false);
                self.out.push_str("=\"");
                escape(&mut self.out, v, true);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        push_value(&mut self.out, value);
        self.out.push('\n');
    }

    /// The text written so far.
    pub fn as_str(&self) -> &str {
        &self.out
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// A metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or label name (no `:`); other characters
/// become `_`, an empty name `_`.
fn push_name(out: &mut String, name: &str, metric: bool) {
    if name.is_empty() {
        out.push('_');
    }
    for (i, c) in name.chars().enumerate() {
        let ok = c.is_ascii_alphabetic()
            || c == '_'
            || (metric && c == ':')
            || (i > 0 && c.is_ascii_digit());
        out.push(if ok { c } else { '_' });
    }
}

/// HELP text escapes `\` and newline; label values also `"`.
fn escape(out: &mut String, s: &str, label_value: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if label_value => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Integral values print as integers (counters read naturally), others in the shortest
/// exact form, with an exponent when very large or small; NaN and infinities as the
/// format spells them.
fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.abs() < 9.007_199_254_740_992e15 && (v as i64) as f64 == v {
        let _ = write!(out, "{}", v as i64);
    } else if v != 0.0 && (v.abs() < 1e-4 || v.abs() >= 1e16) {
        let _ = write!(out, "{v:e}");
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_get_help_and_type_once_and_labels_are_escaped() {
        let mut p = Writer::new();
        p.metric(
            "m_total",
            "Help \\ with\nnewline.",
            Kind::Counter,
            &[("d", "a\"b\\c\nd")],
            3.0,
        );
        p.metric(
            "m_total",
            "Help \\ with\nnewline.",
            Kind::Counter,
            &[("d", "e"), ("f", "g")],
            4.5,
        );
        p.metric("up", "Up.", Kind::Gauge, &[], 1.0);
        assert_eq!(
            p.finish(),
            "# HELP m_total Help \\\\ with\\nnewline.\n# TYPE m_total counter\n\
             m_total{d=\"a\\\"b\\\\c\\nd\"} 3\nm_total{d=\"e\",f=\"g\"} 4.5\n\
             # HELP up Up.\n# TYPE up gauge\nup 1\n"
        );
    }

    #[test]
    fn values_and_names() {
        let mut s = String::new();
        for v in [
            0.0,
            -0.0,
            -7.0,
            0.25,
            1e20,
            1.5e-7,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            push_value(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "0 0 -7 0.25 1e20 1.5e-7 NaN +Inf -Inf ");
        let mut n = String::new();
        push_name(&mut n, "9a-b:c", true);
        n.push(' ');
        push_name(&mut n, "l:x", false);
        n.push(' ');
        push_name(&mut n, "", false);
        assert_eq!(n, "_a_b:c l_x _");
    }
}
