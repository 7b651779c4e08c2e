//! Movie catalogue readers: ml-100k `u.item`/`u.genre`, ml-1m/ml-10m `movies.dat`/`tags.dat`,
//! ml-latest `movies.csv`/`tags.csv`/`links.csv`; and title/year parsing.

use std::path::Path;

use crate::error::{DataError, ParseProblem};
use crate::parse::{parse_i64, parse_id};
use crate::types::{Link, Movie, Tag};

/// The 19 ml-100k genres in `u.item` flag order (used when `u.genre` is absent).
pub const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// The genre string of movies without genres in ml-latest.
pub const NO_GENRES: &str = "(no genres listed)";

/// Splits a full title into the title and its year.
///
/// `"Toy Story (1995)"` -> `("Toy Story", Some(1995))`; `"Seven (a.k.a. Se7en) (1995)"` ->
/// `("Seven (a.k.a. Se7en)", Some(1995))`; `"Fawlty Towers (1975-1979)"` -> first year;
/// trailing whitespace is ignored; a title without a year is returned trimmed with `None`.
pub fn split_title_year(full: &str) -> (String, Option<u16>) {
    let t = full.trim_end();
    if let Some(inner) = t.strip_suffix(')') {
        if let Some(open) = inner.rfind('(') {
            let paren = &inner[open + 1..];
            let year_text = paren.strip_suffix('-').unwrap_or(paren);
            let year_text = match year_text.split_once('-') {
                Some((a, b)) if b.len() == 4 && b.bytes().all(|c| c.is_ascii_digit()) => a,
                _ => year_text,
            };
            if year_text.len() == 4 && year_text.bytes().all(|c| c.is_ascii_digit()) {
                if let Ok(year) = year_text.parse::<u16>() {
                    return (inner[..open].trim_end().to_string(), Some(year));
                }
            }
        }
    }
    (t.to_string(), None)
}

/// Decodes Latin-1 (every byte is the code point of the same value).
pub fn latin1_to_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// Iterates over `(1-based line number, line without "\r\n")`, skipping blank lines.
fn lines(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    bytes.split(|b| *b == b'\n').enumerate().filter_map(|(i, line)| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (!line.iter().all(u8::is_ascii_whitespace)).then_some((i as u64 + 1, line))
    })
}

fn utf8<'a>(path: &Path, line: u64, bytes: &'a [u8]) -> Result<&'a str, DataError> {
    std::str::from_utf8(bytes).map_err(|_| DataError::parse(path, line, ParseProblem::InvalidUtf8))
}

/// Reads ml-100k `u.genre` (`name|index` lines, Latin-1) into names by index.
pub(crate) fn read_u_genre(path: &Path) -> Result<Vec<String>, DataError> {
    let bytes = read_file(path)?;
    let mut names: Vec<(usize, String)> = Vec::new();
    for (no, line) in lines(&bytes) {
        let text = latin1_to_string(line);
        let (name, index) = text
            .rsplit_once('|')
            .ok_or_else(|| DataError::parse(path, no, ParseProblem::ColumnCount { expected: 2, found: 1 }))?;
        let index = parse_id(index.as_bytes(), "genre index").map_err(|p| DataError::parse(path, no, p))?;
        names.push((index as usize, name.to_string()));
    }
    names.sort_by_key(|(i, _)| *i);
    Ok(names.into_iter().map(|(_, n)| n).collect())
}

/// Reads ml-100k `u.item`: `id|title|release date|video release date|IMDb URL|19 genre flags`,
/// Latin-1. The year comes from the title, or else from the release date (`01-Jan-1995`).
/// Any number of genres (as many as `u.genre` lists) and fields per line is handled.
pub(crate) fn read_u_item(path: &Path, genre_names: &[String]) -> Result<Vec<Movie>, DataError> {
    let bytes = read_file(path)?;
    let n_genres = genre_names.len();
    let expected = 5 + n_genres;
    let mut movies = Vec::new();
    let mut fields: Vec<&[u8]> = Vec::with_capacity(expected);
    for (no, line) in lines(&bytes) {
        fields.clear();
        fields.extend(line.split(|b| *b == b'|'));
        let n = fields.len();
        if n != expected {
            return Err(DataError::parse(path, no, ParseProblem::ColumnCount { expected, found: n }));
        }
        let raw_id = parse_id(fields[0], "movie id").map_err(|p| DataError::parse(path, no, p))?;
        let full_title = latin1_to_string(fields[1]);
        let (title, mut year) = split_title_year(&full_title);
        if year.is_none() {
            let date = latin1_to_string(fields[2]);
            let date = date.trim();
            year = date.get(date.len().saturating_sub(4)..).and_then(|y| y.parse::<u16>().ok());
        }
        let mut genres = Vec::new();
        for (g, flag) in fields[5..expected].iter().enumerate() {
            match *flag {
                b"1" => genres.push(genre_names[g].clone()),
                b"0" => {}
                other => {
                    return Err(DataError::parse(
                        path,
                        no,
                        ParseProblem::Other(format!(
                            "genre flag {} is {:?}, expected 0 or 1",
                            g,
                            latin1_to_string(other)
                        )),
                    ))
                }
            }
        }
        movies.push(Movie { raw_id, title, full_title, year, genres });
    }
    Ok(movies)
}

fn split_genres(text: &str) -> Vec<String> {
    let text = text.trim();
    if text.is_empty() || text == NO_GENRES {
        Vec::new()
    } else {
        text.split('|').map(str::to_string).collect()
    }
}

/// Reads ml-1m / ml-10m `movies.dat`: `MovieID::Title::Genres`. The id ends at the first `::`,
/// the genres start after the last one, so a title may itself contain colons. `latin1` decodes
/// ml-1m's Latin-1; otherwise the file must be UTF-8.
pub(crate) fn read_movies_dat(path: &Path, latin1: bool) -> Result<Vec<Movie>, DataError> {
    let bytes = read_file(path)?;
    let mut movies = Vec::new();
    for (no, line) in lines(&bytes) {
        let text = if latin1 { latin1_to_string(line) } else { utf8(path, no, line)?.to_string() };
        let parts = text.matches("::").count() + 1;
        let (Some((id, rest)), true) = (text.split_once("::"), parts >= 3) else {
            return Err(DataError::parse(path, no, ParseProblem::ColumnCount { expected: 3, found: parts }));
        };
        let Some((full_title, genres)) = rest.rsplit_once("::") else {
            return Err(DataError::parse(path, no, ParseProblem::ColumnCount { expected: 3, found: parts }));
        };
        let raw_id = parse_id(id.as_bytes(), "movie id").map_err(|p| DataError::parse(path, no, p))?;
        let (title, year) = split_title_year(full_title);
        movies.push(Movie {
            raw_id,
            title,
            full_title: full_title.to_string(),
            year,
            genres: split_genres(genres),
        });
    }
    Ok(movies)
}

/// Reads ml-10m `tags.dat`: `UserID::MovieID::Tag::Timestamp` (UTF-8; the tag is everything
/// between the second and the last `::`).
pub(crate) fn read_tags_dat(path: &Path) -> Result<Vec<Tag>, DataError> {
    let bytes = read_file(path)?;
    let mut tags = Vec::new();
    for (no, line) in lines(&bytes) {
        let text = utf8(path, no, line)?;
        let count = text.matches("::").count() + 1;
        let bad = || DataError::parse(path, no, ParseProblem::ColumnCount { expected: 4, found: count });
        let (user, rest) = text.split_once("::").ok_or_else(bad)?;
        let (movie, rest) = rest.split_once("::").ok_or_else(bad)?;
        let (tag, ts) = rest.rsplit_once("::").ok_or_else(bad)?;
        let e = |p| DataError::parse(path, no, p);
        tags.push(Tag {
            user_raw: parse_id(user.as_bytes(), "user").map_err(e)?,
            movie_raw: parse_id(movie.as_bytes(), "movie").map_err(e)?,
            tag: tag.to_string(),
            timestamp: parse_i64(ts.as_bytes(), "timestamp").map_err(e)?,
        });
    }
    Ok(tags)
}

/// Reads a UTF-8 CSV with RFC-4180 quoting and the given header; calls `row` with each record's
/// fields and 1-based line number. A quote left open at the end of the file (which would make
/// the rest of the file one field) is an error at the line where the record starts.
fn read_csv(
    path: &Path,
    header: &[&str],
    mut row: impl FnMut(u64, &[&str]) -> Result<(), ParseProblem>,
) -> Result<(), DataError> {
    let bytes = read_file(path)?;
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(&bytes[..]);
    let mut record = csv::ByteRecord::new();
    let mut first = true;
    // Where the last record started (byte offset, line).
    let mut last_start = (0usize, 1u64);
    loop {
        let line = reader.position().line();
        match reader.read_byte_record(&mut record) {
            Ok(false) => {
                // The csv crate ends a quote left open at the end of the input without
                // complaint; only the last record can hold one.
                if ends_inside_quotes(bytes.get(last_start.0..).unwrap_or_default()) {
                    return Err(DataError::parse(
                        path,
                        last_start.1,
                        ParseProblem::Csv("unterminated quoted field (the quote is never closed)".into()),
                    ));
                }
                return Ok(());
            }
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                return Err(DataError::parse(path, line, ParseProblem::Csv(e.to_string())));
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        last_start = (record.position().map_or(last_start.0, |p| p.byte() as usize), line);
        if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
            continue; // blank line
        }
        let fields = record
            .iter()
            .map(|f| {
                std::str::from_utf8(f).map_err(|_| DataError::parse(path, line, ParseProblem::InvalidUtf8))
            })
            .collect::<Result<Vec<&str>, _>>()?;
        if first {
            first = false;
            let found: Vec<&str> = fields.iter().map(|f| f.trim_start_matches('\u{feff}').trim()).collect();
            if found != header {
                return Err(DataError::parse(
                    path,
                    line,
                    ParseProblem::BadHeader { expected: header.join(","), found: fields.join(",") },
                ));
            }
            continue;
        }
        if fields.len() != header.len() {
            return Err(DataError::parse(
                path,
                line,
                ParseProblem::ColumnCount { expected: header.len(), found: fields.len() },
            ));
        }
        row(line, &fields).map_err(|p| DataError::parse(path, line, p))?;
    }
}

/// Whether CSV text (from a record start) ends inside a quoted field: a quote opens one only at
/// the start of a field (as the csv crate reads it), `""` inside is an escaped quote.
fn ends_inside_quotes(text: &[u8]) -> bool {
    let (mut in_quotes, mut field_start) = (false, true);
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if in_quotes {
            if b == b'"' {
                if text.get(i + 1) == Some(&b'"') {
                    i += 1;
                } else {
                    in_quotes = false;
                }
            }
        } else if b == b'"' && field_start {
            in_quotes = true;
        }
        field_start = !in_quotes && matches!(b, b',' | b'\n' | b'\r');
        i += 1;
    }
    in_quotes
}

/// Reads ml-latest `movies.csv`: `movieId,title,genres`.
pub(crate) fn read_movies_csv(path: &Path) -> Result<Vec<Movie>, DataError> {
    let mut movies = Vec::new();
    read_csv(path, &["movieId", "title", "genres"], |_, f| {
        let raw_id = parse_id(f[0].as_bytes(), "movieId")?;
        let (title, year) = split_title_year(f[1]);
        movies.push(Movie { raw_id, title, full_title: f[1].to_string(), year, genres: split_genres(f[2]) });
        Ok(())
    })?;
    Ok(movies)
}

/// Reads ml-latest `tags.csv`: `userId,movieId,tag,timestamp`.
pub(crate) fn read_tags_csv(path: &Path) -> Result<Vec<Tag>, DataError> {
    let mut tags = Vec::new();
    read_csv(path, &["userId", "movieId", "tag", "timestamp"], |_, f| {
        tags.push(Tag {
            user_raw: parse_id(f[0].as_bytes(), "userId")?,
            movie_raw: parse_id(f[1].as_bytes(), "movieId")?,
            tag: f[2].to_string(),
            timestamp: parse_i64(f[3].as_bytes(), "timestamp")?,
        });
        Ok(())
    })?;
    Ok(tags)
}

/// Reads ml-latest `links.csv`: `movieId,imdbId,tmdbId` (tmdbId may be empty).
pub(crate) fn read_links_csv(path: &Path) -> Result<Vec<Link>, DataError> {
    let mut links = Vec::new();
    read_csv(path, &["movieId", "imdbId", "tmdbId"], |_, f| {
        let tmdb = f[2].trim();
        links.push(Link {
            movie_raw: parse_id(f[0].as_bytes(), "movieId")?,
            imdb_id: f[1].trim().to_string(),
            tmdb_id: if tmdb.is_empty() { None } else { Some(parse_id(tmdb.as_bytes(), "tmdbId")?) },
        });
        Ok(())
    })?;
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_years() {
        assert_eq!(split_title_year("Toy Story (1995)"), ("Toy Story".into(), Some(1995)));
        assert_eq!(
            split_title_year("Seven (a.k.a. Se7en) (1995)"),
            ("Seven (a.k.a. Se7en)".into(), Some(1995))
        );
        assert_eq!(split_title_year("Babylon 5 (1994) "), ("Babylon 5".into(), Some(1994)));
        assert_eq!(split_title_year("Fawlty Towers (1975-1979)"), ("Fawlty Towers".into(), Some(1975)));
        assert_eq!(split_title_year("Stranger Things (2016-)"), ("Stranger Things".into(), Some(2016)));
        assert_eq!(split_title_year("unknown"), ("unknown".into(), None));
        assert_eq!(split_title_year("Hyena Road"), ("Hyena Road".into(), None));
        assert_eq!(split_title_year("Movie (abcd)"), ("Movie (abcd)".into(), None));
        assert_eq!(
            split_title_year("(500) Days of Summer (2009)"),
            ("(500) Days of Summer".into(), Some(2009))
        );
    }

    #[test]
    fn open_quotes_are_found_only_where_csv_opens_them() {
        assert!(ends_inside_quotes(b"2,Heat (1995),\"Action\n3,Up,Drama\n"));
        assert!(ends_inside_quotes(b"1,\"a \"\" b"));
        assert!(!ends_inside_quotes(b"1,\"a \"\" b\",c\n"));
        assert!(!ends_inside_quotes(b"1,5\" Screen (1999),Drama\n"));
        assert!(!ends_inside_quotes(b"1,\"x\"y\"\n"));
        assert!(!ends_inside_quotes(b""));
    }

    #[test]
    fn latin1_maps_bytes_to_code_points() {
        assert_eq!(latin1_to_string(b"Mis\xe9rables"), "Misérables");
    }
}
