//! Fast, allocation-free parsing of delimited ratings files.
//!
//! The file is split at line boundaries into chunks (found with `memchr`), chunks are parsed in
//! parallel with rayon into column vectors, and the columns are concatenated in file order. A
//! line is split into at most [`MAX_FIELDS`] field slices held on the stack; ids and timestamps
//! are parsed digit by digit, ratings through a decimal fast path with `str::parse` as the
//! fallback. Line numbers are only computed when an error happens (by counting newlines before
//! the failing byte), so the happy path never counts lines.

use std::path::Path;

use rayon::prelude::*;

use crate::error::{DataError, ParseProblem};

/// The most fields a line may have (more is a column-count error).
pub(crate) const MAX_FIELDS: usize = 32;

/// How fields are separated on a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delim {
    /// One byte (tab, comma, pipe, ...).
    Byte(u8),
    /// The two bytes `::` of ml-1m / ml-10m.
    DoubleColon,
}

/// What a ratings file looks like.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowSpec {
    pub delim: Delim,
    /// The exact number of fields each line must have; `None` accepts any count that holds
    /// every column asked for.
    pub n_fields: Option<usize>,
    pub user: usize,
    pub movie: usize,
    pub rating: usize,
    pub timestamp: Option<usize>,
    /// Inclusive rating range; `None` accepts any finite rating.
    pub rating_range: Option<(f32, f32)>,
}

impl RowSpec {
    /// Every column index must name one of the [`MAX_FIELDS`] fields a line may hold.
    fn check(&self) -> Result<(), DataError> {
        let columns = [("user", Some(self.user)), ("movie", Some(self.movie)), ("rating", Some(self.rating))];
        for (name, column) in columns.into_iter().chain([("timestamp", self.timestamp)]) {
            if let Some(c) = column.filter(|&c| c >= MAX_FIELDS) {
                return Err(DataError::Invalid(format!(
                    "{name} column {c} is out of range: columns are 0-based and a line holds at most \
                     {MAX_FIELDS} fields"
                )));
            }
        }
        Ok(())
    }
}

/// Rating rows with raw ids, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawRatings {
    pub user: Vec<u64>,
    pub movie: Vec<u64>,
    pub rating: Vec<f32>,
    pub timestamp: Vec<i64>,
}

impl RawRatings {
    fn with_capacity(n: usize) -> Self {
        Self {
            user: Vec::with_capacity(n),
            movie: Vec::with_capacity(n),
            rating: Vec::with_capacity(n),
            timestamp: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.user.len()
    }
}

/// A parse failure at a byte offset (converted to a line number by the caller).
struct OffsetError {
    offset: usize,
    problem: ParseProblem,
}

/// Target chunk size for parallel parsing.
const CHUNK_BYTES: usize = 1 << 22;

/// Parses `bytes[start..]` (everything after the header) into raw rating columns, one part per
/// chunk in file order (concatenating them would copy hundreds of megabytes for nothing).
///
/// `first_line` is the 1-based line number of `bytes[start]`; errors name `path` and the line.
pub(crate) fn parse_ratings(
    path: &Path,
    bytes: &[u8],
    start: usize,
    first_line: u64,
    spec: &RowSpec,
) -> Result<Vec<RawRatings>, DataError> {
    spec.check()?;
    let body = &bytes[start.min(bytes.len())..];
    let bounds = chunk_bounds(body, CHUNK_BYTES);
    let parts: Vec<Result<RawRatings, OffsetError>> =
        bounds.par_windows(2).map(|w| parse_chunk(body, w[0], w[1], spec)).collect();
    for part in &parts {
        if let Err(e) = part {
            let line = first_line + memchr::memchr_iter(b'\n', &body[..e.offset]).count() as u64;
            return Err(DataError::parse(path, line, e.problem.clone()));
        }
    }
    Ok(parts.into_iter().flatten().collect())
}

/// Chunk boundaries: `[0, b1, b2, ..., len]`, each inner boundary just after a newline.
fn chunk_bounds(body: &[u8], target: usize) -> Vec<usize> {
    let mut bounds = vec![0];
    let mut pos = 0;
    while pos + target < body.len() {
        match memchr::memchr(b'\n', &body[pos + target..]) {
            Some(nl) => {
                pos = pos + target + nl + 1;
                if pos < body.len() {
                    bounds.push(pos);
                }
            }
            None => break,
        }
    }
    bounds.push(body.len());
    bounds
}

fn parse_chunk(body: &[u8], from: usize, to: usize, spec: &RowSpec) -> Result<RawRatings, OffsetError> {
    let chunk = &body[from..to];
    // Rows are at least 8 bytes ("1,1,5,0\n"); 24 is a good guess for real files.
    let mut out = RawRatings::with_capacity(chunk.len() / 24 + 1);
    let standard = spec.n_fields == Some(4)
        && (spec.user, spec.movie, spec.rating, spec.timestamp) == (0, 1, 2, Some(3));
    let (min, max) = spec.rating_range.unwrap_or((f32::MIN, f32::MAX));
    let mut line_start = 0;
    while line_start < chunk.len() {
        if standard {
            if let Some((next, u, m, r, t)) = fast_row(chunk, line_start, spec.delim) {
                if r >= min && r <= max {
                    out.user.push(u);
                    out.movie.push(m);
                    out.rating.push(r);
                    out.timestamp.push(t);
                    line_start = next;
                    continue;
                }
            }
        }
        // The general path: blank lines, spaces, exponents, huge numbers, and every error.
        let line_end = memchr::memchr(b'\n', &chunk[line_start..]).map_or(chunk.len(), |i| line_start + i);
        let mut line = &chunk[line_start..line_end];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if !line.iter().all(|b| b.is_ascii_whitespace()) {
            parse_line(line, spec, &mut out)
                .map_err(|problem| OffsetError { offset: from + line_start, problem })?;
        }
        line_start = line_end + 1;
    }
    Ok(out)
}

/// Up to 18 ASCII digits at `b[i..]`: the value and the index after them.
#[inline(always)]
fn fast_digits(b: &[u8], mut i: usize) -> Option<(u64, usize)> {
    let start = i;
    let mut v: u64 = 0;
    while let Some(&c) = b.get(i) {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        v = v * 10 + u64::from(d);
        i += 1;
        if i - start > 18 {
            return None;
        }
    }
    (i > start).then_some((v, i))
}

#[inline(always)]
fn fast_delim(b: &[u8], i: usize, delim: Delim) -> Option<usize> {
    match delim {
        Delim::Byte(d) => (b.get(i) == Some(&d)).then_some(i + 1),
        Delim::DoubleColon => (b.get(i) == Some(&b':') && b.get(i + 1) == Some(&b':')).then_some(i + 2),
    }
}

/// The common row `user<d>movie<d>rating<d>timestamp` with plain digits, a plain decimal rating
/// and an optional `\r` before the newline, parsed in one pass over the bytes. `None` sends the
/// line to the general path (which also produces every error).
#[inline(always)]
fn fast_row(b: &[u8], i: usize, delim: Delim) -> Option<(usize, u64, u64, f32, i64)> {
    let (user, i) = fast_digits(b, i)?;
    let i = fast_delim(b, i, delim)?;
    let (movie, i) = fast_digits(b, i)?;
    let i = fast_delim(b, i, delim)?;
    let (int_part, mut i) = fast_digits(b, i)?;
    let mut rating = int_part as f64;
    if b.get(i) == Some(&b'.') {
        let (frac, j) = fast_digits(b, i + 1)?;
        if j - (i + 1) > 9 {
            return None;
        }
        rating += frac as f64 / 10u64.pow((j - i - 1) as u32) as f64;
        i = j;
    }
    if int_part > 999_999_999 {
        return None;
    }
    let i = fast_delim(b, i, delim)?;
    let (neg, i) = if b.get(i) == Some(&b'-') { (true, i + 1) } else { (false, i) };
    let (t, mut i) = fast_digits(b, i)?;
    if b.get(i) == Some(&b'\r') {
        i += 1;
    }
    let next = match b.get(i) {
        Some(b'\n') => i + 1,
        None => i,
        _ => return None,
    };
    let t = t as i64; // at most 18 digits: fits
    Some((next, user, movie, rating as f32, if neg { -t } else { t }))
}

/// Splits a line into fields; returns the number of fields (which may exceed `MAX_FIELDS`, in
/// which case only the first `MAX_FIELDS` are stored).
pub(crate) fn split_fields<'a>(line: &'a [u8], delim: Delim, fields: &mut [&'a [u8]; MAX_FIELDS]) -> usize {
    let mut n = 0;
    let mut start = 0;
    loop {
        let next = match delim {
            Delim::Byte(b) => memchr::memchr(b, &line[start..]).map(|i| (start + i, 1)),
            Delim::DoubleColon => memchr::memmem::find(&line[start..], b"::").map(|i| (start + i, 2)),
        };
        let end = next.map_or(line.len(), |(i, _)| i);
        if n < MAX_FIELDS {
            fields[n] = &line[start..end];
        }
        n += 1;
        match next {
            Some((i, width)) => start = i + width,
            None => return n,
        }
    }
}

fn parse_line(line: &[u8], spec: &RowSpec, out: &mut RawRatings) -> Result<(), ParseProblem> {
    let mut fields: [&[u8]; MAX_FIELDS] = [&[]; MAX_FIELDS];
    let n = split_fields(line, spec.delim, &mut fields);
    let needed =
        [spec.user, spec.movie, spec.rating, spec.timestamp.unwrap_or(0)].into_iter().max().unwrap_or(0) + 1;
    match spec.n_fields {
        Some(expected) if n != expected => return Err(ParseProblem::ColumnCount { expected, found: n }),
        None if n < needed || n > MAX_FIELDS => {
            return Err(ParseProblem::ColumnCount { expected: needed.max(n.min(MAX_FIELDS)), found: n })
        }
        _ => {}
    }
    let user = parse_id(fields[spec.user], "user")?;
    let movie = parse_id(fields[spec.movie], "movie")?;
    let rating = parse_rating(fields[spec.rating])?;
    if let Some((min, max)) = spec.rating_range {
        if !(min..=max).contains(&rating) {
            return Err(ParseProblem::RatingOutOfRange { value: rating, min, max });
        }
    }
    let timestamp = match spec.timestamp {
        Some(c) => parse_i64(fields[c], "timestamp")?,
        None => 0,
    };
    out.user.push(user);
    out.movie.push(movie);
    out.rating.push(rating);
    out.timestamp.push(timestamp);
    Ok(())
}

fn shown(field: &[u8]) -> String {
    String::from_utf8_lossy(field).chars().take(40).collect()
}

/// Trims ASCII spaces and tabs at both ends.
fn trim(field: &[u8]) -> &[u8] {
    let start = field.iter().position(|b| *b != b' ' && *b != b'\t').unwrap_or(field.len());
    let end = field.iter().rposition(|b| *b != b' ' && *b != b'\t').map_or(start, |i| i + 1);
    &field[start..end.max(start)]
}

/// The error for a field that is not the number it should be: [`ParseProblem::InvalidUtf8`] when
/// the field is not even UTF-8, else [`ParseProblem::BadNumber`].
fn bad_field(field: &[u8], column: &'static str, kind: &'static str) -> ParseProblem {
    if std::str::from_utf8(field).is_err() {
        ParseProblem::InvalidUtf8
    } else {
        ParseProblem::BadNumber { column, text: shown(field), kind }
    }
}

/// Parses a non-negative integer id (at most `u64::MAX`).
pub(crate) fn parse_id(field: &[u8], column: &'static str) -> Result<u64, ParseProblem> {
    let digits = trim(field);
    let bad = || bad_field(field, column, "a non-negative integer id");
    if digits.is_empty() || digits.len() > 20 {
        return Err(bad());
    }
    let mut v: u64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(bad());
        }
        v = v.checked_mul(10).and_then(|v| v.checked_add(u64::from(d))).ok_or_else(bad)?;
    }
    Ok(v)
}

/// Parses a signed integer (timestamps), within `i64`.
pub(crate) fn parse_i64(field: &[u8], column: &'static str) -> Result<i64, ParseProblem> {
    let text = trim(field);
    let (neg, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    let bad = || bad_field(field, column, "an integer");
    if digits.is_empty() || digits.len() > 19 {
        return Err(bad());
    }
    let mut v: i64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(bad());
        }
        // Accumulate negatively so that i64::MIN parses.
        v = v.checked_mul(10).and_then(|v| v.checked_sub(i64::from(d))).ok_or_else(bad)?;
    }
    if neg {
        Ok(v)
    } else {
        v.checked_neg().ok_or_else(bad)
    }
}

/// Parses a rating: `digits[.digits]` directly, anything else through `str::parse::<f32>`.
/// NaN and infinities are [`ParseProblem::NotFinite`].
pub(crate) fn parse_rating(field: &[u8]) -> Result<f32, ParseProblem> {
    let text = trim(field);
    if let Some(v) = fast_decimal(text) {
        return Ok(v);
    }
    let bad = || bad_field(field, "rating", "a number");
    let s = std::str::from_utf8(text).map_err(|_| bad())?;
    let v: f32 = s.parse().map_err(|_| bad())?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(ParseProblem::NotFinite { text: shown(field) })
    }
}

/// `d+` or `d+.d+` with at most 9 integer and 9 fraction digits; `None` for anything else.
fn fast_decimal(text: &[u8]) -> Option<f32> {
    let (int_part, frac_part) = match memchr::memchr(b'.', text) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, &[][..]),
    };
    if int_part.is_empty() || int_part.len() > 9 || frac_part.len() > 9 {
        return None;
    }
    if text.len() > int_part.len() && frac_part.is_empty() {
        return None;
    }
    let mut int_value: u64 = 0;
    for &b in int_part {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        int_value = int_value * 10 + u64::from(d);
    }
    let mut frac_value: u64 = 0;
    for &b in frac_part {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        frac_value = frac_value * 10 + u64::from(d);
    }
    let scale = 10u64.pow(frac_part.len() as u32) as f64;
    Some((int_value as f64 + frac_value as f64 / scale) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_csv() -> RowSpec {
        RowSpec {
            delim: Delim::Byte(b','),
            n_fields: Some(4),
            user: 0,
            movie: 1,
            rating: 2,
            timestamp: Some(3),
            rating_range: Some((0.5, 5.0)),
        }
    }

    #[test]
    fn numbers_parse_exactly() {
        assert_eq!(parse_rating(b"3.5"), Ok(3.5));
        assert_eq!(parse_rating(b"4"), Ok(4.0));
        assert_eq!(parse_rating(b"4.0"), Ok(4.0));
        assert_eq!(parse_rating(b" 2.25 "), Ok(2.25));
        assert_eq!(parse_rating(b"1e0"), Ok(1.0));
        assert!(matches!(parse_rating(b"NaN"), Err(ParseProblem::NotFinite { .. })));
        assert!(matches!(parse_rating(b"inf"), Err(ParseProblem::NotFinite { .. })));
        assert_eq!(parse_rating(b"4."), Ok(4.0)); // through str::parse
        assert!(matches!(parse_rating(b"x"), Err(ParseProblem::BadNumber { .. })));
        assert_eq!(parse_id(b"123", "user"), Ok(123));
        assert!(parse_id(b"-1", "user").is_err());
        assert!(parse_id(b"", "user").is_err());
        assert!(parse_id(b"99999999999999999999", "user").is_err());
        assert_eq!(parse_i64(b"-15", "timestamp"), Ok(-15));
        assert_eq!(parse_i64(b"1147880044", "timestamp"), Ok(1_147_880_044));
        assert_eq!(parse_i64(b"-9223372036854775808", "t"), Ok(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807", "t"), Ok(i64::MAX));
        assert!(parse_i64(b"9223372036854775808", "t").is_err());
        assert_eq!(parse_id(b"18446744073709551615", "m"), Ok(u64::MAX));
        assert!(parse_id(b"18446744073709551616", "m").is_err());
        assert_eq!(parse_id(b"1\xff", "m"), Err(ParseProblem::InvalidUtf8));
    }

    #[test]
    fn splits_on_double_colon_and_bytes() {
        let mut f: [&[u8]; MAX_FIELDS] = [&[]; MAX_FIELDS];
        assert_eq!(split_fields(b"1::1193::5::978300760", Delim::DoubleColon, &mut f), 4);
        assert_eq!(f[1], b"1193");
        assert_eq!(split_fields(b"a\tb", Delim::Byte(b'\t'), &mut f), 2);
        assert_eq!(split_fields(b"", Delim::Byte(b','), &mut f), 1);
    }

    #[test]
    fn chunks_parse_like_one_piece_and_errors_name_the_line() {
        let mut text = String::new();
        for i in 0..5000u32 {
            text.push_str(&format!("{},{},{}.5,{}\r\n", i % 97, i % 31, i % 4 + 1, 1000 + i));
        }
        let bytes = text.as_bytes();
        let whole = parse_chunk(bytes, 0, bytes.len(), &spec_csv()).ok().unwrap();
        for target in [7, 100, 4096] {
            let bounds = chunk_bounds(bytes, target);
            let mut joined = RawRatings::default();
            for w in bounds.windows(2) {
                let p = parse_chunk(bytes, w[0], w[1], &spec_csv()).ok().unwrap();
                joined.user.extend(p.user);
                joined.movie.extend(p.movie);
                joined.rating.extend(p.rating);
                joined.timestamp.extend(p.timestamp);
            }
            assert_eq!(joined, whole);
        }
        assert_eq!(whole.len(), 5000);
        assert_eq!(whole.rating[1], 2.5);
        let bad = format!("{text}1,2,9.0,5\n");
        let parts = parse_ratings(Path::new("r.csv"), text.as_bytes(), 0, 1, &spec_csv()).unwrap();
        assert_eq!(parts.iter().map(RawRatings::len).sum::<usize>(), 5000);
        let err = parse_ratings(Path::new("r.csv"), bad.as_bytes(), 0, 2, &spec_csv()).unwrap_err();
        assert_eq!(err.to_string(), "r.csv:5002: rating 9 outside the layout's range 0.5..=5");
    }
}
