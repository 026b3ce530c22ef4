//! Field types: turning one CSV cell into a stored value (SPEC §6).
//!
//! Every parser takes the raw cell (already trimmed by the caller) and either
//! returns the normalized value or a [`FieldError`] whose message names the
//! column and quotes the offending value, e.g.
//! `Invalid date in item_date_due: '31/02/2025'`. The messages end up verbatim
//! in a report's `exception_lines`, so they are written for the ERP user who
//! has to fix the export, not for us.
//!
//! Amounts are exact: they are parsed into integer micro-units (6 decimals),
//! never through binary floating point.

use chrono::NaiveDate;
use std::fmt;

use crate::ledger::{COMMENT_MAX, Kind, Value};

/// Amounts are stored as integer micro-units: 1.5 is stored as 1_500_000.
pub const AMOUNT_SCALE: i64 = 1_000_000;
/// The number of decimals an amount may carry.
pub const AMOUNT_DECIMALS: usize = 6;

/// Why a cell was refused. `Display` gives the message for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub column: &'static str,
    pub problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Missing,
    Invalid { what: &'static str, value: String },
    TooLong { chars: usize, max: usize },
    TooManyDecimals { value: String },
    NotAllowed { value: String, expected: String },
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let column = self.column;
        match &self.problem {
            Problem::Missing => write!(f, "Required value missing: {column}"),
            Problem::Invalid { what, value } => write!(f, "Invalid {what} in {column}: '{value}'"),
            Problem::TooLong { chars, max } => write!(
                f,
                "Value too long in {column}: {chars} characters (at most {max})"
            ),
            Problem::TooManyDecimals { value } => write!(
                f,
                "Invalid amount in {column}: '{value}' (at most {AMOUNT_DECIMALS} decimals)"
            ),
            Problem::NotAllowed { value, expected } => {
                write!(
                    f,
                    "Invalid value in {column}: '{value}' (expected {expected})"
                )
            }
        }
    }
}

impl std::error::Error for FieldError {}

/// Parses a trimmed, non-empty cell of a column of `kind`. Empty cells are the
/// caller's business (required → error, optional → null).
pub fn parse_cell(kind: Kind, column: &'static str, raw: &str) -> Result<Value, FieldError> {
    let invalid = |what: &'static str| FieldError {
        column,
        problem: Problem::Invalid {
            what,
            value: raw.to_string(),
        },
    };
    match kind {
        Kind::Text { max } => {
            let chars = raw.chars().count();
            if chars > max {
                return Err(FieldError {
                    column,
                    problem: Problem::TooLong { chars, max },
                });
            }
            Ok(Value::Text(raw.to_string()))
        }
        Kind::Date => parse_date(raw)
            .map(|d| Value::Int(date_number(d)))
            .ok_or_else(|| invalid("date")),
        Kind::Amount => match parse_amount(raw) {
            Ok(micros) => Ok(Value::Int(micros)),
            Err(AmountError::TooManyDecimals) => Err(FieldError {
                column,
                problem: Problem::TooManyDecimals {
                    value: raw.to_string(),
                },
            }),
            Err(AmountError::Invalid) => Err(invalid("amount")),
        },
        Kind::Bool => parse_bool(raw)
            .map(|b| Value::Int(b as i64))
            .ok_or_else(|| invalid("boolean")),
        Kind::Currency => {
            if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_alphabetic()) {
                Ok(Value::Text(raw.to_ascii_uppercase()))
            } else {
                Err(invalid("currency"))
            }
        }
        Kind::List => {
            let items: Vec<&str> = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            let joined = items.join(",");
            let chars = joined.chars().count();
            if chars > COMMENT_MAX {
                return Err(FieldError {
                    column,
                    problem: Problem::TooLong {
                        chars,
                        max: COMMENT_MAX,
                    },
                });
            }
            Ok(if joined.is_empty() {
                Value::Null
            } else {
                Value::Text(joined)
            })
        }
        Kind::Enum(allowed) => allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(raw))
            .map(|a| Value::Text((*a).to_string()))
            .ok_or_else(|| FieldError {
                column,
                problem: Problem::NotAllowed {
                    value: raw.to_string(),
                    expected: allowed.join(", "),
                },
            }),
    }
}

/// Parses the date formats of SPEC §6. Day-first only; a trailing time
/// (`2025-12-05 10:30`, `2025-12-05T10:30:00Z`) is ignored.
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    let date_part = raw.split([' ', 'T']).next().filter(|s| !s.is_empty())?;
    let bytes = date_part.as_bytes();
    let (y, m, d) = if bytes.len() == 8 && bytes.iter().all(u8::is_ascii_digit) {
        (
            number(&bytes[0..4])?,
            number(&bytes[4..6])?,
            number(&bytes[6..8])?,
        )
    } else {
        let sep = *bytes.iter().find(|b| matches!(b, b'-' | b'/' | b'.'))?;
        let mut parts = date_part.split(sep as char);
        let (p0, p1, p2) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        match (p0.len(), p1.len(), p2.len()) {
            // YYYY-MM-DD, YYYY/MM/DD (not YYYY.MM.DD: nobody documents it)
            (4, 1..=2, 1..=2) if sep != b'.' => (
                number(p0.as_bytes())?,
                number(p1.as_bytes())?,
                number(p2.as_bytes())?,
            ),
            // DD/MM/YYYY, DD-MM-YYYY, DD.MM.YYYY
            (1..=2, 1..=2, 4) => (
                number(p2.as_bytes())?,
                number(p1.as_bytes())?,
                number(p0.as_bytes())?,
            ),
            _ => return None,
        }
    };
    if !(1000..=9999).contains(&y) {
        return None;
    }
    NaiveDate::from_ymd_opt(y as i32, m, d)
}

/// ASCII digits to a number; `None` for anything else.
fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

/// The stored form of a date: the number `YYYYMMDD` (5 bytes in SQLite,
/// where `YYYY-MM-DD` text takes 11; it sorts the same way).
pub fn date_number(date: NaiveDate) -> i64 {
    use chrono::Datelike;
    i64::from(date.year()) * 10_000 + i64::from(date.month()) * 100 + i64::from(date.day())
}

/// A stored date as `YYYY-MM-DD`, for exports.
pub fn format_date_number(n: i64) -> String {
    format!("{:04}-{:02}-{:02}", n / 10_000, n / 100 % 100, n % 100)
}

/// `YYYY-MM-DD`.
pub fn format_date(date: NaiveDate) -> String {
    use chrono::Datelike;
    let (y, m, d) = (date.year(), date.month(), date.day());
    let mut s = String::with_capacity(10);
    for (value, width) in [(y as u32, 4), (m, 2), (d, 2)] {
        if !s.is_empty() {
            s.push('-');
        }
        for i in (0..width).rev() {
            s.push(char::from(b'0' + (value / 10u32.pow(i) % 10) as u8));
        }
    }
    s
}

/// Accepted spellings of true and false, case-insensitive (SPEC §6).
pub fn parse_bool(raw: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["1", "true", "yes", "oui", "ja"];
    const FALSE: [&str; 6] = ["0", "false", "no", "non", "nee", "nein"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(raw)) {
        Some(true)
    } else if FALSE.iter().any(|t| t.eq_ignore_ascii_case(raw)) {
        Some(false)
    } else {
        None
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum AmountError {
    Invalid,
    TooManyDecimals,
}

/// Parses an amount into micro-units.
///
/// The rules (SPEC §6): a leading `-`/`+` or a trailing `-` (SAP); thousands
/// separators space, NBSP, narrow NBSP and `'`; with both `.` and `,` the
/// last one is the decimal mark; a lone `,` is the decimal mark; several `.`
/// alone are thousands separators. Thousands groups must have three digits,
/// which is what rejects `1.2.3,4`.
///
/// ```
/// use dropgate::engine::fields::parse_amount;
/// assert_eq!(parse_amount("6 580,10"), Ok(6_580_100_000));
/// assert_eq!(parse_amount("150,00-"), Ok(-150_000_000));
/// assert!(parse_amount("1.2.3,4").is_err());
/// ```
pub fn parse_amount(raw: &str) -> Result<i64, AmountError> {
    let mut s = raw.trim();
    let mut negative = false;
    if let Some(rest) = s.strip_suffix('-') {
        negative = true;
        s = rest.trim_end();
    }
    if let Some(rest) = s.strip_prefix('-') {
        if negative {
            return Err(AmountError::Invalid);
        }
        negative = true;
        s = rest.trim_start();
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest.trim_start();
    }
    if s.is_empty() {
        return Err(AmountError::Invalid);
    }

    let bytes = s.as_bytes();
    let last_dot = s.rfind('.');
    let last_comma = s.rfind(',');
    let count = |c: u8| bytes.iter().filter(|&&b| b == c).count();
    let decimal_at = match (last_dot, last_comma) {
        (Some(d), Some(c)) => Some(d.max(c)),
        (None, Some(c)) if count(b',') == 1 => Some(c),
        (Some(d), None) if count(b'.') == 1 => Some(d),
        _ => None,
    };
    let (int_part, frac_part) = match decimal_at {
        Some(at) => (&s[..at], &bytes[at + 1..]),
        None => (s, &b""[..]),
    };
    if !frac_part.iter().all(u8::is_ascii_digit) {
        return Err(AmountError::Invalid);
    }

    // The integer part: digit groups split by thousands separators; after
    // the first group (1 to 3 digits), every group has exactly 3.
    let is_sep = |c: char| matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\'' | '.' | ',');
    let mut whole: i64 = 0;
    let mut digits = 0usize;
    for (i, group) in int_part.split(is_sep).enumerate() {
        let g = group.as_bytes();
        if !g.iter().all(u8::is_ascii_digit) {
            return Err(AmountError::Invalid);
        }
        if i == 1 && !(1..=3).contains(&digits) {
            return Err(AmountError::Invalid);
        }
        if i >= 1 && g.len() != 3 {
            return Err(AmountError::Invalid);
        }
        for &d in g {
            whole = whole
                .checked_mul(10)
                .and_then(|w| w.checked_add(i64::from(d - b'0')))
                .ok_or(AmountError::Invalid)?;
        }
        digits += g.len();
    }
    if digits == 0 && frac_part.is_empty() {
        return Err(AmountError::Invalid);
    }
    if frac_part.len() > AMOUNT_DECIMALS {
        return Err(AmountError::TooManyDecimals);
    }
    let mut frac: i64 = 0;
    for i in 0..AMOUNT_DECIMALS {
        frac = frac * 10 + frac_part.get(i).map_or(0, |d| i64::from(d - b'0'));
    }
    let micros = whole
        .checked_mul(AMOUNT_SCALE)
        .and_then(|w| w.checked_add(frac))
        .ok_or(AmountError::Invalid)?;
    Ok(if negative { -micros } else { micros })
}

/// Formats micro-units as a plain decimal with `.` and no trailing zeros
/// beyond two decimals (`1234.5` → `1234.50`, `0.001234` stays exact).
pub fn format_amount(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let abs = micros.unsigned_abs();
    let whole = abs / AMOUNT_SCALE as u64;
    let frac = abs % AMOUNT_SCALE as u64;
    let mut frac_str = format!("{frac:06}");
    while frac_str.len() > 2 && frac_str.ends_with('0') {
        frac_str.pop();
    }
    format!("{sign}{whole}.{frac_str}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(s: &str) -> Result<i64, AmountError> {
        parse_amount(s)
    }

    #[test]
    fn amounts_in_every_documented_format() {
        let m = AMOUNT_SCALE;
        assert_eq!(amount("1200"), Ok(1200 * m));
        assert_eq!(amount("1 200,00"), Ok(1200 * m));
        assert_eq!(amount("1200.00123"), Ok(1200 * m + 1230));
        assert_eq!(amount("1.200,50"), Ok(1200 * m + 500_000));
        assert_eq!(amount("1,200.50"), Ok(1200 * m + 500_000));
        assert_eq!(amount("-150,00"), Ok(-150 * m));
        assert_eq!(amount("150,00-"), Ok(-150 * m));
        assert_eq!(amount("6 580,10"), Ok(6580 * m + 100_000));
        assert_eq!(amount("1\u{a0}234,56"), Ok(1234 * m + 560_000));
        assert_eq!(amount("1\u{202f}234,56"), Ok(1234 * m + 560_000));
        assert_eq!(amount("1'234.56"), Ok(1234 * m + 560_000));
        assert_eq!(amount("1.200.000"), Ok(1_200_000 * m));
        assert_eq!(amount("1,5"), Ok(1_500_000));
        assert_eq!(amount("0.000001"), Ok(1));
        assert_eq!(amount("+12"), Ok(12 * m));
    }

    #[test]
    fn amounts_rejected() {
        for bad in [
            "",
            "-",
            "1.2.3,4",
            "abc",
            "12a",
            "1 20,00",
            "--5",
            "-5-",
            "1,2,3.4.5",
            "1e5",
        ] {
            assert_eq!(amount(bad), Err(AmountError::Invalid), "{bad:?}");
        }
        assert_eq!(amount("1.1234567"), Err(AmountError::TooManyDecimals));
    }

    #[test]
    fn amount_formatting_round_trips() {
        for micros in [
            0,
            1,
            -1,
            1_500_000,
            6_580_100_000,
            -150_000_000,
            1_200_001_230,
        ] {
            assert_eq!(parse_amount(&format_amount(micros)), Ok(micros));
        }
        assert_eq!(format_amount(6_580_100_000), "6580.10");
    }

    #[test]
    fn dates_are_stored_as_numbers_and_written_back_iso() {
        let d = NaiveDate::from_ymd_opt(1987, 3, 9).unwrap();
        assert_eq!(format_date(d), "1987-03-09");
        assert_eq!(date_number(d), 19870309);
        assert_eq!(format_date_number(19870309), "1987-03-09");
        assert_eq!(
            parse_cell(Kind::Date, "item_date_due", "09.03.1987"),
            Ok(Value::Int(19870309))
        );
    }

    #[test]
    fn dates_in_every_accepted_format() {
        let want = NaiveDate::from_ymd_opt(2025, 12, 5);
        for ok in [
            "2025-12-05",
            "2025/12/05",
            "05/12/2025",
            "05-12-2025",
            "05.12.2025",
            "20251205",
            "2025-12-05 10:30:00",
            "2025-12-05T10:30:00Z",
            "5/12/2025",
        ] {
            assert_eq!(parse_date(ok), want, "{ok}");
        }
    }

    #[test]
    fn dates_rejected() {
        for bad in [
            "31/02/2025",
            "12/31/2025",
            "2025-13-01",
            "",
            "2025.12.05",
            "05/12/25",
            "yesterday",
            "2025-12",
            "00000000",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn bools_in_every_language() {
        for t in ["1", "true", "TRUE", "yes", "oui", "ja"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "false", "no", "non", "nee", "nein", "Nein"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn messages_name_column_and_value() {
        let e = parse_cell(Kind::Date, "item_date_due", "31/02/2025").unwrap_err();
        assert_eq!(e.to_string(), "Invalid date in item_date_due: '31/02/2025'");
        let e = parse_cell(Kind::Currency, "item_currency", "EURO").unwrap_err();
        assert_eq!(e.to_string(), "Invalid currency in item_currency: 'EURO'");
        assert_eq!(
            parse_cell(Kind::Currency, "item_currency", "eur").unwrap(),
            Value::Text("EUR".into())
        );
    }
}
