//! A TOML document read key by key, collecting every problem with its position.
//!
//! Serde stops at the first wrong key; users editing policies by hand want all of them at
//! once. So the policy and appliance parsers walk toml's span-carrying [`DeTable`] through
//! [`Table`], which records each problem as a [`Diagnostic`] and carries on: a missing or
//! mistyped key yields `None`, and [`Table::finish`] reports the keys nobody asked for.
//! This module owns only reading; what a value means is for the kind modules.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::ops::Range;

use toml::de::{DeTable, DeValue};

/// Arrays and inline tables nested deeper than this are refused before parsing. The
/// TOML parser descends once per level (to its own limit of 80), which costs stack the
/// runtime's API does not have to spare; specs and policies need three levels at most.
pub const MAX_NESTING: usize = 16;

/// Where `src` first opens an array or inline table more than `max` deep (a byte offset),
/// outside strings and comments; `None` if it never does. A lexical scan that does not
/// allocate or recurse, so it is safe on any input: strings (basic and literal, one-line
/// and multi-line, with escapes) and comments are skipped as TOML defines them, and a
/// string left open runs to the end.
pub fn too_deep(src: &str, max: usize) -> Option<usize> {
    let b = src.as_bytes();
    // Levels open, and which each is (a set bit: an inline table), innermost lowest: a
    // closer only closes a level of its own kind, as the parser (which stays inside an
    // array on a stray `}`) does.
    let max = max.min(127);
    let (mut i, mut depth, mut kinds) = (0usize, 0usize, 0u128);
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'"' | b'\'') => {
                let multi = b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q);
                i += if multi { 3 } else { 1 };
                loop {
                    match b.get(i) {
                        None => return None,
                        // In a one-line string an escape does not reach past the line
                        // (the lexer ends the string there, and so does this).
                        Some(b'\\') if q == b'"' => {
                            if !multi && b.get(i + 1) == Some(&b'\n') {
                                break;
                            }
                            i += 2;
                        }
                        Some(&c) if c == q => {
                            if !multi {
                                break;
                            }
                            if b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q) {
                                // Up to two more quotes may close a multi-line string.
                                i += 2;
                                while b.get(i + 1) == Some(&q) {
                                    i += 1;
                                }
                                break;
                            }
                            i += 1;
                        }
                        Some(b'\n') if !multi => break,
                        Some(_) => i += 1,
                    }
                }
            }
            open @ (b'[' | b'{') => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
                kinds = (kinds << 1) | u128::from(open == b'{');
            }
            close @ (b']' | b'}') => {
                let table = kinds & 1 == 1;
                if depth > 0 && table == (close == b'}') {
                    depth -= 1;
                    kinds >>= 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Files larger than this are refused before parsing: a policy is a page of text, and the
/// runtime parses these from a disk it does not trust.
pub const MAX_SOURCE_LEN: usize = 1 << 20;

/// One problem in one file: 1-based line and column (in characters) of the key or value
/// at fault. `file` indexes the set of files checked together (0 for a single file).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub file: usize,
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `line:col: message`; the caller prefixes the file name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}

/// A value and where it is: the byte range of its text in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct At<T> {
    pub value: T,
    pub span: Range<usize>,
}

impl<T> At<T> {
    pub fn new(value: T, span: Range<usize>) -> Self {
        At { value, span }
    }
}

pub use plinth_container::line_col;

/// The source text of one file and the problems found in it so far.
pub struct Doc<'s> {
    src: &'s str,
    file: usize,
    diagnostics: RefCell<Vec<Diagnostic>>,
}

impl<'s> Doc<'s> {
    /// `file` is the index put into every [`Diagnostic`] of this document.
    pub fn new(src: &'s str, file: usize) -> Self {
        Doc {
            src,
            file,
            diagnostics: RefCell::new(Vec::new()),
        }
    }

    pub fn src(&self) -> &'s str {
        self.src
    }

    /// The index given to [`Doc::new`], put into every [`Diagnostic`] of this document.
    pub fn file(&self) -> usize {
        self.file
    }

    /// Parses the text. Syntax errors are recorded (toml recovers and reports several
    /// where it can) and `None` is returned: a document with broken syntax is not read
    /// further, as its keys may be misattributed.
    pub fn parse(&self) -> Option<DeTable<'s>> {
        if self.src.len() > MAX_SOURCE_LEN {
            self.error(
                0..0,
                format!(
                    "file is {} bytes; at most {MAX_SOURCE_LEN} are accepted",
                    self.src.len()
                ),
            );
            return None;
        }
        if let Some(at) = too_deep(self.src, MAX_NESTING) {
            self.error(
                at..at,
                format!(
                    "arrays and inline tables nested more than {MAX_NESTING} deep; a policy \
                     needs a few levels"
                ),
            );
            return None;
        }
        let (table, errors) = DeTable::parse_recoverable(self.src);
        if errors.is_empty() {
            return Some(table.into_inner());
        }
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            self.error(span, e.message().trim_end().to_string());
        }
        None
    }

    /// Records a problem at the start of `span`.
    pub fn error(&self, span: Range<usize>, message: String) {
        let (line, col) = line_col(self.src, span.start);
        self.diagnostics.borrow_mut().push(Diagnostic {
            file: self.file,
            line,
            col,
            message,
        });
    }

    pub fn has_errors(&self) -> bool {
        !self.diagnostics.borrow().is_empty()
    }

    /// The problems found, in order of position.
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        let mut d = self.diagnostics.into_inner();
        d.sort();
        d.dedup();
        d
    }

    /// The root table, for reading. `table` must come from [`Doc::parse`] on this doc.
    pub fn root<'t>(&'t self, table: &'t DeTable<'s>) -> Table<'t, 's> {
        Table {
            doc: self,
            table,
            span: 0..0,
            path: String::new(),
            used: RefCell::new(Vec::new()),
        }
    }
}

/// One TOML table being read. Every key asked for is marked used; [`Table::finish`]
/// reports the rest as unknown.
pub struct Table<'t, 's> {
    doc: &'t Doc<'s>,
    table: &'t DeTable<'s>,
    /// Where the table starts (its header, or the inline table), for "missing key".
    span: Range<usize>,
    /// Dotted path for messages: `""` for the root, `partition[2]`, `limit[0].cpu`.
    path: String,
    used: RefCell<Vec<&'t str>>,
}

/// The TOML type names used in messages.
fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'t, 's> Table<'t, 's> {
    pub fn doc(&self) -> &'t Doc<'s> {
        self.doc
    }

    /// Where the table starts.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// `key` with the table's path, as shown in messages: `` `limit[0].cpu.weight` ``.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Records a problem at `span`.
    pub fn error(&self, span: Range<usize>, message: String) {
        self.doc.error(span, message);
    }

    fn lookup(&self, key: &str) -> Option<(Range<usize>, &'t toml::Spanned<DeValue<'s>>)> {
        let (k, v) = self
            .table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)?;
        let name: &'t Cow<'s, str> = k.get_ref();
        self.used.borrow_mut().push(name.as_ref());
        Some((k.span(), v))
    }

    /// Whether `key` is present (marks it used).
    pub fn has(&self, key: &str) -> bool {
        self.lookup(key).is_some()
    }

    /// The span of `key`'s value, if present.
    pub fn value_span(&self, key: &str) -> Option<Range<usize>> {
        self.lookup(key).map(|(_, v)| v.span())
    }

    fn missing(&self, key: &str) {
        self.error(
            self.span.clone(),
            format!("missing key `{}`", self.key_path(key)),
        );
    }

    fn wrong_type(&self, key: &str, expected: &str, v: &toml::Spanned<DeValue<'s>>) {
        self.error(
            v.span(),
            format!(
                "`{}` must be {expected}, found {}",
                self.key_path(key),
                type_name(v.get_ref())
            ),
        );
    }

    /// A required string.
    pub fn str(&self, key: &str) -> Option<At<&'t str>> {
        let r = self.opt_str(key);
        if r.is_none() && !self.has(key) {
            self.missing(key);
        }
        r
    }

    /// An optional string; wrong type is recorded and read as absent.
    pub fn opt_str(&self, key: &str) -> Option<At<&'t str>> {
        let (_, v) = self.lookup(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At::new(s.as_ref(), v.span())),
            _ => {
                self.wrong_type(key, "a string", v);
                None
            }
        }
    }

    /// A required non-negative integer.
    pub fn u64(&self, key: &str) -> Option<At<u64>> {
        let r = self.opt_u64(key);
        if r.is_none() && !self.has(key) {
            self.missing(key);
        }
        r
    }

    /// An optional non-negative integer.
    pub fn opt_u64(&self, key: &str) -> Option<At<u64>> {
        let (_, v) = self.lookup(key)?;
        self.int_value(&self.key_path(key), v)
    }

    /// Reads an array element or value as a non-negative integer; `what` names it.
    pub fn int_value(&self, what: &str, v: &toml::Spanned<DeValue<'s>>) -> Option<At<u64>> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                let digits = i.as_str();
                if digits.starts_with('-') {
                    self.error(v.span(), format!("`{what}` must not be negative"));
                    return None;
                }
                match u64::from_str_radix(digits.trim_start_matches('+'), i.radix()) {
                    Ok(n) => Some(At::new(n, v.span())),
                    Err(_) => {
                        self.error(v.span(), format!("`{what}` is too large"));
                        None
                    }
                }
            }
            other => {
                self.error(
                    v.span(),
                    format!("`{what}` must be an integer, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A required integer within `range` (inclusive bounds, shown in the message).
    pub fn u64_in(&self, key: &str, min: u64, max: u64) -> Option<At<u64>> {
        let r = self.u64(key)?;
        self.check_range(key, r, min, max)
    }

    /// An optional integer within `min..=max`.
    pub fn opt_u64_in(&self, key: &str, min: u64, max: u64) -> Option<At<u64>> {
        let r = self.opt_u64(key)?;
        self.check_range(key, r, min, max)
    }

    fn check_range(&self, key: &str, r: At<u64>, min: u64, max: u64) -> Option<At<u64>> {
        if r.value < min || r.value > max {
            self.error(
                r.span.clone(),
                format!(
                    "`{}` = {} is out of range; expected {min}..={max}",
                    self.key_path(key),
                    r.value
                ),
            );
            return None;
        }
        Some(r)
    }

    /// An optional boolean.
    pub fn opt_bool(&self, key: &str) -> Option<At<bool>> {
        let (_, v) = self.lookup(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(At::new(*b, v.span())),
            _ => {
                self.wrong_type(key, "a boolean", v);
                None
            }
        }
    }

    /// A required sub-table (`[a.b]` or inline `{ … }`).
    pub fn table(&self, key: &str) -> Option<Table<'t, 's>> {
        let r = self.opt_table(key);
        if r.is_none() && !self.has(key) {
            self.missing(key);
        }
        r
    }

    /// An optional sub-table.
    pub fn opt_table(&self, key: &str) -> Option<Table<'t, 's>> {
        let (_, v) = self.lookup(key)?;
        self.table_value(self.key_path(key), v)
    }

    fn table_value(
        &self,
        path: String,
        v: &'t toml::Spanned<DeValue<'s>>,
    ) -> Option<Table<'t, 's>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(Table {
                doc: self.doc,
                table: t,
                span: v.span(),
                path,
                used: RefCell::new(Vec::new()),
            }),
            other => {
                self.error(
                    v.span(),
                    format!("`{path}` must be a table, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// An optional array, as its elements. Absent reads as empty.
    pub fn array(&self, key: &str) -> &'t [toml::Spanned<DeValue<'s>>] {
        let Some((_, v)) = self.lookup(key) else {
            return &[];
        };
        match v.get_ref() {
            DeValue::Array(a) => a.as_ref(),
            _ => {
                self.wrong_type(key, "an array", v);
                &[]
            }
        }
    }

    /// An optional array of strings; elements of another type are recorded and skipped.
    pub fn str_array(&self, key: &str) -> Vec<At<&'t str>> {
        let path = self.key_path(key);
        self.array(key)
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v.get_ref() {
                DeValue::String(s) => Some(At::new(s.as_ref(), v.span())),
                other => {
                    self.error(
                        v.span(),
                        format!("`{path}[{i}]` must be a string, found {}", type_name(other)),
                    );
                    None
                }
            })
            .collect()
    }

    /// An optional array of strings: `None` when absent or not an array (recorded), so
    /// callers can tell `key = []` from a mistake. Elements of another type are recorded
    /// and skipped.
    pub fn opt_str_array(&self, key: &str) -> Option<Vec<At<&'t str>>> {
        let (_, v) = self.lookup(key)?;
        if !matches!(v.get_ref(), DeValue::Array(_)) {
            self.wrong_type(key, "an array", v);
            return None;
        }
        Some(self.str_array(key))
    }

    /// An optional array of tables (`[[key]]`, or an array of inline tables). Absent
    /// reads as empty.
    pub fn tables(&self, key: &str) -> Vec<Table<'t, 's>> {
        let path = self.key_path(key);
        self.array(key)
            .iter()
            .enumerate()
            .filter_map(|(i, v)| self.table_value(format!("{path}[{i}]"), v))
            .collect()
    }

    /// Reports every key of the table that was never asked for, naming the known ones.
    pub fn finish(&self, known: &[&str]) {
        let used = self.used.borrow();
        for (k, _) in self.table.iter() {
            let name = k.get_ref().as_ref();
            if used.contains(&name) || known.contains(&name) {
                continue;
            }
            let where_ = if self.path.is_empty() {
                String::from("at the top level")
            } else {
                format!("in `{}`", self.path)
            };
            let expected = if known.is_empty() {
                String::new()
            } else {
                format!("; expected one of: {}", known.join(", "))
            };
            self.error(k.span(), format!("unknown key `{name}` {where_}{expected}"));
        }
    }
}
