//! Plain-text forms the commands that talk to the runtime share: aligned tables, and
//! byte amounts in IEC units both ways (`1.5 MiB` printed, `1.5MiB` read).
//!
//! Owns the units and the table layout only: which columns a command prints and what an
//! amount means (bytes, bytes per second) are the caller's. Units are powers of 1024,
//! spelt the IEC way; decimal (`kB`, `MB`) and bit (`Mbit`) units are refused rather
//! than guessed, since `10M` could be any of three amounts.

use std::fmt::Write as _;

/// Why an amount of bytes was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error(
        "{0:?} is not an amount of bytes: a number with an optional unit B, KiB, MiB, GiB, \
         TiB, PiB or EiB (1500, 64KiB, 1.5MiB)"
    )]
    Malformed(String),
    #[error(
        "{text:?}: {unit:?} is not a unit taken here; amounts are bytes in IEC units, \
         powers of 1024 (B, KiB, MiB, GiB, TiB, PiB, EiB), not decimal or bit units"
    )]
    Unit { text: String, unit: String },
    #[error("{0:?} is more bytes than fit 64 bits")]
    TooLarge(String),
}

/// The units [`parse_bytes`] takes (case aside) and [`format_bytes`] writes, smallest
/// first.
const UNITS: [(&str, u64); 7] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("PiB", 1 << 50),
    ("EiB", 1 << 60),
];

/// Reads an amount of bytes: a whole or decimal number, then optionally a unit of
/// [`UNITS`] in any case, with or without a space (`1500`, `64KiB`, `1.5 mib`). A
/// fraction of a byte is dropped.
pub fn parse_bytes(text: &str) -> Result<u64, AmountError> {
    let malformed = || AmountError::Malformed(text.to_string());
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = (&text[..digits_end], text[digits_end..].trim_start());
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || (number.contains('.') && fraction.is_empty()) {
        return Err(malformed());
    }
    if fraction.contains('.') {
        return Err(malformed());
    }
    let scale = match UNITS.iter().find(|(u, _)| u.eq_ignore_ascii_case(unit)) {
        Some(&(_, scale)) => scale,
        None if unit.is_empty() => 1,
        None if unit.chars().all(|c| c.is_ascii_alphabetic()) => {
            return Err(AmountError::Unit {
                text: text.to_string(),
                unit: unit.to_string(),
            });
        }
        None => return Err(malformed()),
    };
    let too_large = || AmountError::TooLarge(text.to_string());
    let whole: u128 = whole.parse().map_err(|_| too_large())?;
    let mut bytes = whole.checked_mul(u128::from(scale)).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        // Digits past the 19th cannot add a byte to a scale below 2^64.
        let digits = &fraction[..fraction.len().min(19)];
        let numerator: u128 = digits.parse().map_err(|_| malformed())?;
        let denominator = 10u128.pow(digits.len() as u32);
        bytes += numerator * u128::from(scale) / denominator;
    }
    u64::try_from(bytes).map_err(|_| too_large())
}

/// An amount of bytes for people: `512 B`, `64 KiB`, `1.5 MiB` (one decimal unless
/// whole), in the largest unit it reaches.
pub fn format_bytes(bytes: u64) -> String {
    let &(unit, scale) = UNITS
        .iter()
        .rev()
        .find(|(_, scale)| bytes >= *scale)
        .unwrap_or(&UNITS[0]);
    if bytes.is_multiple_of(scale) {
        format!("{} {unit}", bytes / scale)
    } else {
        format!("{:.1} {unit}", bytes as f64 / scale as f64)
    }
}

/// Rows as aligned columns, two spaces apart; the last column is not padded and no
/// line ends in spaces. Rows may have different lengths.
pub fn table(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_in_iec_units() {
        for (text, bytes) in [
            ("0", 0),
            ("1500", 1500),
            ("1500B", 1500),
            ("1500 B", 1500),
            ("1KiB", 1024),
            ("64KiB", 64 << 10),
            ("64kib", 64 << 10),
            ("64 KIB", 64 << 10),
            ("1MiB", 1 << 20),
            ("1.5MiB", 3 << 19),
            ("0.5KiB", 512),
            ("1.0009765625KiB", 1025),
            ("1.99B", 1),
            ("2GiB", 2 << 30),
            ("1TiB", 1 << 40),
            ("16777215.999999999999999999999TiB", u64::MAX),
            ("15.9999999999999999999EiB", u64::MAX),
            ("1PiB", 1 << 50),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
        for text in [
            "", "KiB", ".5KiB", "1.", "1..2", "1.2.3", "-1", "+1", "1,5MiB", "1e6", " 1", "1KiB/s",
            "0x10",
        ] {
            assert!(
                matches!(parse_bytes(text), Err(AmountError::Malformed(_))),
                "{text}: {:?}",
                parse_bytes(text)
            );
        }
        for (text, unit) in [
            ("10MB", "MB"),
            ("10M", "M"),
            ("10k", "k"),
            ("10kB", "kB"),
            ("10Mbit", "Mbit"),
            ("10 Mbps", "Mbps"),
            ("1ZiB", "ZiB"),
            ("1bytes", "bytes"),
        ] {
            assert_eq!(
                parse_bytes(text),
                Err(AmountError::Unit {
                    text: text.into(),
                    unit: unit.into()
                })
            );
        }
        for text in [
            "16777216TiB",
            "16EiB",
            "18446744073709551616",
            "99999999999999999999999999999999999999999",
        ] {
            assert_eq!(
                parse_bytes(text),
                Err(AmountError::TooLarge(text.into())),
                "{text}"
            );
        }
        assert_eq!(
            parse_bytes("10MB").unwrap_err().to_string(),
            "\"10MB\": \"MB\" is not a unit taken here; amounts are bytes in IEC units, \
             powers of 1024 (B, KiB, MiB, GiB, TiB, PiB, EiB), not decimal or bit units"
        );
    }

    #[test]
    fn amounts_are_printed_in_the_largest_unit() {
        for (bytes, text) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (150_000, "146.5 KiB"),
            (1 << 20, "1 MiB"),
            (3 << 29, "1.5 GiB"),
            (1 << 40, "1 TiB"),
            (1 << 50, "1 PiB"),
            (u64::MAX, "16.0 EiB"),
        ] {
            assert_eq!(format_bytes(bytes), text, "{bytes}");
        }
        // What is printed whole reads back to the same amount.
        for bytes in [0, 1, 1024, 5 << 20, 7 << 30] {
            assert_eq!(parse_bytes(&format_bytes(bytes)), Ok(bytes));
        }
    }

    #[test]
    fn tables_align_all_but_the_last_column() {
        let rows = vec![
            vec!["A".to_string(), "BB".into(), "C".into()],
            vec!["aaa".to_string(), "b".into(), "a long last cell".into()],
            vec!["é".to_string(), "".into(), "".into()],
            vec!["short".to_string()],
        ];
        assert_eq!(
            table(&rows),
            "A      BB  C\naaa    b   a long last cell\né\nshort"
        );
        assert_eq!(table(&[]), "");
    }
}
