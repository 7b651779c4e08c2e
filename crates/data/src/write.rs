//! Writers for every layout: a [`Dataset`] to the files [`crate::load`] reads back.
//!
//! Ratings are formatted in parallel chunks and written in order. Whole-star layouts (ml-100k,
//! ml-1m) round half stars to the even star (2.5 -> 2, 3.5 -> 4) and clamp to 1..=5; other
//! layouts keep the value.
//! Every file is written to a temporary in the destination folder and renamed into place once
//! complete, and the ratings file (the one layout detection looks for) comes last: a write that
//! fails or is killed never leaves a truncated file under a data set's file name, nor a ratings
//! file without its catalogue.
//! Text that a layout cannot hold (a `|` or newline in a u.item title, a character outside
//! Latin-1 in a Latin-1 file, a rating outside the layout's range) is an error, never silently
//! mangled.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::catalogue::{ML100K_GENRES, NO_GENRES};
use crate::error::DataError;
use crate::layout::Layout;
use crate::types::{Dataset, Movie};

/// Writes `ds` in `layout` into directory `dir` (created when missing); returns the files
/// written, the ratings file first. [`Layout::Generic`] writes `ratings.txt`
/// (`user,movie,rating,timestamp`, no header). Each file appears complete or not at all.
pub fn write(ds: &Dataset, layout: Layout, dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    check_ratings(ds, layout)?;
    let mut written = Vec::new();
    let mut out = |name: &str, bytes: &[u8]| -> Result<(), DataError> {
        let path = dir.join(name);
        write_file(&path, |w| w.write_all(bytes).map_err(|e| DataError::io(&path, e)))?;
        written.push(path);
        Ok(())
    };
    // The ratings file is written after the catalogue files (see the module docs).
    let mut ratings_header: &[u8] = b"";
    let movies = ds.catalogue.movies();
    match layout {
        Layout::Ml100k => {
            let genres = ml100k_genres(movies);
            let mut u_genre = Vec::new();
            for (i, g) in genres.iter().enumerate() {
                check_text(g, "genre", &['|', '\n', '\r'], true)?;
                u_genre.extend(latin1(&format!("{g}|{i}\n"), "genre")?);
            }
            out("u.genre", &u_genre)?;
            let mut u_item = Vec::new();
            for m in movies {
                u_item.extend(u_item_line(m, &genres)?);
            }
            out("u.item", &u_item)?;
        }
        Layout::Ml1m | Layout::Ml10m => {
            let is_latin1 = layout == Layout::Ml1m;
            let mut text = String::new();
            for m in movies {
                check_text(&m.full_title, "title", &['\n', '\r'], is_latin1)?;
                for g in &m.genres {
                    check_text(g, "genre", &['|', '\n', '\r', ':'], is_latin1)?;
                }
                let _ = writeln!(text, "{}::{}::{}", m.raw_id, m.full_title, genre_field(m));
            }
            let bytes = if is_latin1 { latin1(&text, "movies.dat")? } else { text.into_bytes() };
            out("movies.dat", &bytes)?;
            if is_latin1 {
                let mut users = String::new();
                for raw in ds.users.raws() {
                    let _ = writeln!(users, "{raw}::M::25::0::00000");
                }
                out("users.dat", users.as_bytes())?;
            } else if !ds.catalogue.tags().is_empty() {
                let mut tags = String::new();
                for t in ds.catalogue.tags() {
                    check_text(&t.tag, "tag", &['\n', '\r'], false)?;
                    if t.tag.contains("::") && t.tag.ends_with(':') {
                        return Err(DataError::Invalid(format!(
                            "tag {:?} cannot be written to tags.dat",
                            t.tag
                        )));
                    }
                    let _ = writeln!(tags, "{}::{}::{}::{}", t.user_raw, t.movie_raw, t.tag, t.timestamp);
                }
                out("tags.dat", tags.as_bytes())?;
            }
        }
        Layout::MlLatest => {
            ratings_header = b"userId,movieId,rating,timestamp\n";
            let csv_bytes = |rows: &mut dyn FnMut(&mut csv::Writer<Vec<u8>>) -> csv::Result<()>| {
                let mut w =
                    csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
                rows(&mut w).map_err(|e| DataError::Invalid(e.to_string()))?;
                w.into_inner().map_err(|e| DataError::Invalid(e.to_string()))
            };
            let bytes = csv_bytes(&mut |w| {
                w.write_record(["movieId", "title", "genres"])?;
                for m in movies {
                    w.write_record([m.raw_id.to_string().as_str(), &m.full_title, &genre_field(m)])?;
                }
                Ok(())
            })?;
            out("movies.csv", &bytes)?;
            if !ds.catalogue.tags().is_empty() {
                let bytes = csv_bytes(&mut |w| {
                    w.write_record(["userId", "movieId", "tag", "timestamp"])?;
                    for t in ds.catalogue.tags() {
                        w.write_record([
                            t.user_raw.to_string().as_str(),
                            &t.movie_raw.to_string(),
                            &t.tag,
                            &t.timestamp.to_string(),
                        ])?;
                    }
                    Ok(())
                })?;
                out("tags.csv", &bytes)?;
            }
            if !ds.catalogue.links().is_empty() {
                let bytes = csv_bytes(&mut |w| {
                    w.write_record(["movieId", "imdbId", "tmdbId"])?;
                    for l in ds.catalogue.links() {
                        let tmdb = l.tmdb_id.map(|t| t.to_string()).unwrap_or_default();
                        w.write_record([l.movie_raw.to_string().as_str(), &l.imdb_id, &tmdb])?;
                    }
                    Ok(())
                })?;
                out("links.csv", &bytes)?;
            }
        }
        Layout::Generic => {}
    }
    let ratings = dir.join(layout.ratings_file());
    write_ratings(ds, layout, &ratings, ratings_header)?;
    written.insert(0, ratings);
    Ok(written)
}

fn genre_field(m: &Movie) -> String {
    if m.genres.is_empty() {
        NO_GENRES.to_string()
    } else {
        m.genres.join("|")
    }
}

/// The ml-100k genre list: the standard 19 when every genre is one of them, else the genres in
/// order of first appearance.
fn ml100k_genres(movies: &[Movie]) -> Vec<String> {
    let standard = movies.iter().flat_map(|m| &m.genres).all(|g| ML100K_GENRES.contains(&g.as_str()));
    if standard {
        return ML100K_GENRES.iter().map(|s| s.to_string()).collect();
    }
    let mut out: Vec<String> = Vec::new();
    for g in movies.iter().flat_map(|m| &m.genres) {
        if !out.contains(g) {
            out.push(g.clone());
        }
    }
    out
}

fn check_text(text: &str, what: &str, forbidden: &[char], latin1_only: bool) -> Result<(), DataError> {
    if let Some(c) = text.chars().find(|c| forbidden.contains(c) || (latin1_only && u32::from(*c) > 0xFF)) {
        return Err(DataError::Invalid(format!(
            "{what} {text:?} cannot be written in this layout (character {c:?})"
        )));
    }
    Ok(())
}

fn latin1(text: &str, what: &str) -> Result<Vec<u8>, DataError> {
    text.chars()
        .map(|c| {
            u8::try_from(u32::from(c))
                .map_err(|_| DataError::Invalid(format!("{what}: {c:?} is not a Latin-1 character")))
        })
        .collect()
}

fn u_item_line(m: &Movie, genres: &[String]) -> Result<Vec<u8>, DataError> {
    check_text(&m.full_title, "title", &['|', '\n', '\r'], true)?;
    let date = m.year.map(|y| format!("01-Jan-{y:04}")).unwrap_or_default();
    let mut url = String::from("http://us.imdb.com/M/title-exact?");
    for c in m.full_title.chars() {
        if c.is_ascii_alphanumeric() || "()-._".contains(c) {
            url.push(c);
        } else {
            let _ = write!(url, "%{:02X}", u32::from(c));
        }
    }
    let mut line = format!("{}|{}|{}||{}", m.raw_id, m.full_title, date, url);
    for g in genres {
        line.push_str(if m.genres.contains(g) { "|1" } else { "|0" });
    }
    line.push('\n');
    latin1(&line, "u.item")
}

/// Whole stars for ml-100k / ml-1m: half stars round to the even star (2.5 -> 2, 3.5 -> 4), which
/// keeps the mean unbiased; 0.5 becomes 1.
fn whole_star(r: f32) -> f32 {
    r.round_ties_even().clamp(1.0, 5.0)
}

fn check_ratings(ds: &Dataset, layout: Layout) -> Result<(), DataError> {
    let (min, max) = match layout {
        Layout::Ml100k | Layout::Ml1m => (0.5, 5.0),
        _ => layout.rating_range().unwrap_or((f32::NEG_INFINITY, f32::INFINITY)),
    };
    if let Some(r) = ds.ratings.rating.iter().find(|r| !(min..=max).contains(*r)) {
        return Err(DataError::Invalid(format!(
            "rating {r} cannot be written in layout {layout} (range {min}..={max})"
        )));
    }
    Ok(())
}

/// Appends the decimal digits of `v`.
fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends `v` in decimal (with a leading `-` when negative).
fn push_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_u64(out, v.unsigned_abs());
}

/// Appends a rating as `Display` (`decimal: false`: "4", "4.5") or `{:.1}` (`decimal: true`:
/// "4.0", "4.5") would write it. Half stars take a fast path; anything else goes through `fmt`.
fn push_rating(out: &mut Vec<u8>, x: f32, decimal: bool) {
    let twice = x * 2.0;
    if twice.fract() == 0.0 && x.is_sign_positive() && twice <= 1e6 {
        let k = twice as u64;
        push_u64(out, k / 2);
        match (k % 2, decimal) {
            (1, _) => out.extend_from_slice(b".5"),
            (_, true) => out.extend_from_slice(b".0"),
            _ => {}
        }
    } else if decimal {
        let _ = write!(out, "{x:.1}");
    } else {
        let _ = write!(out, "{x}");
    }
}

fn write_ratings(ds: &Dataset, layout: Layout, path: &Path, header: &[u8]) -> Result<(), DataError> {
    write_file(path, |w| write_rating_rows(ds, layout, path, header, w))
}

/// Writes one whole file of a data set (mode 0644 before the umask) through
/// [`reelvec_outfile::write_with`] (refuses a symlink, device or FIFO at the
/// final name; an `O_EXCL` temporary renamed into place).
pub(crate) fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<&File>) -> Result<(), DataError>,
) -> Result<(), DataError> {
    reelvec_outfile::write_with(path, 0o644, fill)
}

fn write_rating_rows(
    ds: &Dataset,
    layout: Layout,
    path: &Path,
    header: &[u8],
    w: &mut BufWriter<&File>,
) -> Result<(), DataError> {
    const CHUNK: usize = 1 << 16;
    let r = &ds.ratings;
    let users = ds.users.raws();
    let movies = ds.movies.raws();
    w.write_all(header).map_err(|e| DataError::io(path, e))?;
    let n_chunks = r.len().div_ceil(CHUNK);
    let sep: &[u8] = match layout {
        Layout::Ml100k => b"\t",
        Layout::Ml1m | Layout::Ml10m => b"::",
        Layout::MlLatest | Layout::Generic => b",",
    };
    let format_chunk = |c: usize| {
        let mut s = Vec::with_capacity(CHUNK * 32);
        for i in c * CHUNK..((c + 1) * CHUNK).min(r.len()) {
            let (u, m, x, t) =
                (users[r.user[i] as usize], movies[r.movie[i] as usize], r.rating[i], r.timestamp[i]);
            push_u64(&mut s, u);
            s.extend_from_slice(sep);
            push_u64(&mut s, m);
            s.extend_from_slice(sep);
            match layout {
                Layout::Ml100k | Layout::Ml1m => push_rating(&mut s, whole_star(x), false),
                // `{:.1}` where one decimal is exact (as ml-latest writes "4.0").
                Layout::MlLatest if (x * 10.0).fract() == 0.0 => push_rating(&mut s, x, true),
                Layout::Ml10m | Layout::MlLatest | Layout::Generic => push_rating(&mut s, x, false),
            }
            s.extend_from_slice(sep);
            push_i64(&mut s, t);
            s.push(b'\n');
        }
        s
    };
    // Format a few chunks at a time in parallel while the previous few are written, in order.
    let mut pending: Vec<Vec<u8>> = Vec::new();
    for group in (0..n_chunks).collect::<Vec<_>>().chunks(rayon::current_num_threads() * 4) {
        let (written, texts) = rayon::join(
            || pending.iter().try_for_each(|t| w.write_all(t)),
            || group.par_iter().map(|&c| format_chunk(c)).collect::<Vec<_>>(),
        );
        written.map_err(|e| DataError::io(path, e))?;
        pending = texts;
    }
    pending.iter().try_for_each(|t| w.write_all(t)).map_err(|e| DataError::io(path, e))?;
    w.flush().map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_formatting_matches_fmt() {
        let mut out = Vec::new();
        for v in [0u64, 7, 10, 99, 12_345, u64::MAX] {
            out.clear();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
        for v in [0i64, -1, 1_577_836_799, i64::MIN, i64::MAX, -946_684_800] {
            out.clear();
            push_i64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
        }
        for x in [0.0f32, -0.0, 0.5, 1.0, 3.5, 5.0, 4.25, -2.5, 1e7, 0.1, f32::NAN, 123.5] {
            out.clear();
            push_rating(&mut out, x, false);
            assert_eq!(out, format!("{x}").as_bytes(), "{x}");
            out.clear();
            push_rating(&mut out, x, true);
            assert_eq!(out, format!("{x:.1}").as_bytes(), "{x}");
        }
    }
}
