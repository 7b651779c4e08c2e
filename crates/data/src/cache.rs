//! The binary cache of a parsed data set.
//!
//! A cache file holds a [`Dataset`] exactly as parsed. Layout (little-endian, every section
//! starting at a multiple of 8 bytes so the copy read into an aligned buffer can be cast in
//! place):
//!
//! ```text
//! magic "RVCACHE\0" | version u32 | flags u32 | source fingerprint u64 | payload length u64
//! | checksum u64 | payload
//! payload: head: n_rows, n_users, n_movies, t_base, meta length, n_user_runs, 0, 0 (8 x u64)
//!          user raw ids u64 x n_users | movie raw ids u64 x n_movies
//!          user column, either as runs (flag 4: run values u32 x runs, run lengths u32 x runs;
//!            rows grouped by user, as in every MovieLens file but ml-100k's, take one run per
//!            user) or as u32 x n_rows
//!          movie column: u16 x n_rows when n_movies <= 65536 (flag 8), else u32 x n_rows
//!          rating: u8 half-star codes (flag 1) when every rating is k/2, k in 0..=255, else f32
//!          timestamp: u32 offsets from t_base (flag 2) when the span fits, else i64
//!          meta: the load report (JSON) and the catalogue (binary; see `encode_meta`)
//!          (each section zero-padded to a multiple of 8 bytes)
//! checksum: xxh3 of the list of xxh3 digests of: the 32 header bytes before the checksum
//!           (magic, version, flags, fingerprint, payload length), the head, the two raw-id
//!           sections, the user runs, then for each block of 2^17 rows its slices of the user,
//!           movie, rating and timestamp columns, then the meta (padding excluded, and required
//!           to be zero)
//! ```
//!
//! Format 3 (this one) puts the header under the checksum: a cache of one data set cannot be
//! passed off as another's by editing its fingerprint.
//!
//! **Read strategy**: a reload opens the file without following symbolic links, checks that it
//! is the current user's and closed to group and others, and copies it whole with `read()` into
//! an owned 8-byte aligned buffer; then one parallel pass over row blocks hashes each block's
//! bytes and decodes them into the output columns (widening u16/u8/u32 codes as it goes). No
//! memory map: a cache truncated or rewritten by someone else while it is read gives a short
//! read or a checksum mismatch (then a reparse), never a SIGBUS. The copy ([`read_copy`], 8 MiB
//! pieces read in parallel) adds one pass over the file: roughly 50-250 ms per 100 MB of cache
//! on the busy 2-core development machine (same example; noisy, and not a bench run). The output columns are
//! fresh allocations advised as transparent huge pages on Linux. The checksum and the index
//! ranges are checked before the data set is returned.
//!
//! The **fingerprint** hashes the format version, the layout, the generic columns and, for each
//! source file of the layout (present or not), its size and the xxh3 of its whole content, read
//! in 8 MiB chunks hashed in parallel ([`content_hash`]). Any change to the source's bytes (not
//! its modification time), or a different version of this code, gives another fingerprint and
//! the cache is rebuilt. Cost (rough): 20-45 ms per 100 MB of source from a warm page cache on
//! the shared 2-core development machine (`cargo run -p reelvec-data --example
//! fingerprint_speed`), so ~0.3 s for ml-32m's 877 MB ratings.csv; a cold disk adds its read
//! time. The old size + mtime + first/last 64 KiB scheme cost ~0 but missed same-size edits. The **checksum** covers the header and the payload, so a
//! truncated, corrupted or relabelled cache is detected and rebuilt, never trusted.
//!
//! **Where**: `$REELVEC_CACHE_DIR/<hash>.rvc` when that variable is set (and only there);
//! otherwise `.reelvec-cache/<layout>.rvc` next to the source (for a generic file
//! `.reelvec-cache/<file name>.<hash>.rvc`), falling back to the per-user folder
//! [`user_cache_dir`] (`$XDG_CACHE_HOME/reelvec`, else `$HOME/.cache/reelvec`) as
//! `<hash>.rvc` when the source's directory is read-only (by its permission bits, even for
//! root) or the write fails. Cache folders are created with mode 0700 and files with 0600; a
//! folder or file that is not the current user's or that group or others may write is neither
//! read nor written (so nobody can plant a cache another user loads). Writes go to a fresh
//! `O_EXCL` temporary in the same folder that is renamed into place (a planted symlink is never
//! followed), and it is removed on every error path, so a reader never sees a half-written
//! cache.

use std::fs::File;
use std::io::Write;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::error::DataError;
use crate::layout::{GenericColumns, Layout};
use crate::types::{Catalogue, Dataset, IdMap, Link, LoadReport, Movie, Ratings, Tag};

/// Bumped whenever the payload or the parsing semantics change.
pub const FORMAT_VERSION: u32 = 3;
const MAGIC: &[u8; 8] = b"RVCACHE\0";
const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8 + 8;
const HEAD_LEN: usize = 8 * 8;
const FLAG_RATING_CODES: u32 = 1;
const FLAG_TIME_OFFSETS: u32 = 2;
const FLAG_USER_RUNS: u32 = 4;
const FLAG_MOVIE_U16: u32 = 8;
/// Rows per checksum/decode block.
const BLOCK_ROWS: usize = 1 << 17;
/// Bytes per parallel chunk of the source fingerprint.
pub const FINGERPRINT_CHUNK: u64 = 8 << 20;

/// The source files whose state a cache depends on.
fn source_files(target: &Path, layout: Layout) -> Vec<PathBuf> {
    let names: &[&str] = match layout {
        Layout::Ml100k => &["u.data", "u.item", "u.genre"],
        Layout::Ml1m | Layout::Ml10m => &["ratings.dat", "movies.dat", "tags.dat", "users.dat"],
        Layout::MlLatest => &["ratings.csv", "ratings.parquet", "movies.csv", "tags.csv", "links.csv"],
        Layout::Generic => return vec![target.to_path_buf()],
    };
    names.iter().map(|n| target.join(n)).collect()
}

/// Hash of everything the parsed data set depends on: the format version, the layout, the
/// generic columns and, for each source file of the layout (present or not), its size and the
/// xxh3 of its whole content (see [`content_hash`]).
pub fn fingerprint(target: &Path, layout: Layout, generic: &GenericColumns) -> Result<u64, DataError> {
    let mut h = Xxh3::new();
    h.update(&FORMAT_VERSION.to_le_bytes());
    h.update(layout.name().as_bytes());
    if layout == Layout::Generic {
        let g = generic;
        for v in [g.user, g.movie, g.rating, g.timestamp.map_or(usize::MAX, |t| t)] {
            h.update(&(v as u64).to_le_bytes());
        }
        h.update(&[g.delimiter, u8::from(g.has_header)]);
    }
    for path in source_files(target, layout) {
        h.update(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        let Ok(file) = File::open(&path) else {
            h.update(b"absent");
            continue;
        };
        let len = file.metadata().map_err(|e| DataError::io(&path, e))?.len();
        h.update(&len.to_le_bytes());
        h.update(&content_hash(&file, len).map_err(|e| DataError::io(&path, e))?.to_le_bytes());
    }
    Ok(h.digest())
}

/// The xxh3 of the first `len` bytes of `file`: the file is read in chunks of
/// [`FINGERPRINT_CHUNK`] bytes, hashed in parallel, and the list of chunk digests is hashed
/// again (so the result does not depend on the thread count). A file shorter than `len` is an
/// error (it changed while being hashed).
pub fn content_hash(file: &File, len: u64) -> std::io::Result<u64> {
    let chunks = len.div_ceil(FINGERPRINT_CHUNK);
    let digests: Vec<u64> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let start = c * FINGERPRINT_CHUNK;
            let mut buf = vec![0u8; (len - start).min(FINGERPRINT_CHUNK) as usize];
            read_exact_at(file, &mut buf, start)?;
            Ok(xxh3_64(&buf))
        })
        .collect::<std::io::Result<_>>()?;
    Ok(combine(&digests))
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock();
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// Where the cache of `target` lives (the preferred place; see the module docs). `config_key`
/// tells apart caches of one generic file read with different columns.
pub fn cache_path(target: &Path, layout: Layout, config_key: u64) -> PathBuf {
    let key = xxh3_64(format!("{}|{}|{config_key:x}", target.display(), layout.name()).as_bytes());
    if let Some(dir) = std::env::var_os("REELVEC_CACHE_DIR") {
        return PathBuf::from(dir).join(format!("{key:016x}.rvc"));
    }
    if layout == Layout::Generic {
        let dir = target.parent().map(Path::to_path_buf).unwrap_or_else(|| ".".into());
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        dir.join(".reelvec-cache").join(format!("{name}.{key:016x}.rvc"))
    } else {
        target.join(".reelvec-cache").join(format!("{}.rvc", layout.name()))
    }
}

/// The per-user cache folder: `$XDG_CACHE_HOME/reelvec` when that is an absolute path, else
/// `$HOME/.cache/reelvec`; `None` when neither is set.
pub fn user_cache_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    let base = std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| std::env::var_os("HOME").and_then(absolute).map(|h| h.join(".cache")))?;
    Some(base.join("reelvec"))
}

fn fallback_path(target: &Path, layout: Layout, config_key: u64) -> Option<PathBuf> {
    let key = xxh3_64(format!("{}|{}|{config_key:x}", target.display(), layout.name()).as_bytes());
    user_cache_dir().map(|dir| dir.join(format!("{key:016x}.rvc")))
}

/// Loads through the cache: a valid cache is read, otherwise `parse` runs and its result is
/// written to the cache (a cache that cannot be written is skipped). A cache folder or file
/// that is not the current user's, or that group or others may write, is neither read nor
/// written.
pub(crate) fn load_cached(
    target: &Path,
    layout: Layout,
    generic: &GenericColumns,
    parse: impl FnOnce() -> Result<Dataset, DataError>,
) -> Result<Dataset, DataError> {
    let Ok(fp) = fingerprint(target, layout, generic) else { return parse() };
    let config_key = if layout == Layout::Generic { xxh3_64(format!("{generic:?}").as_bytes()) } else { 0 };
    let overridden = std::env::var_os("REELVEC_CACHE_DIR").is_some();
    let mut places = vec![cache_path(target, layout, config_key)];
    if !overridden {
        places.extend(fallback_path(target, layout, config_key));
    }
    for place in &places {
        let trusted_dir = place
            .parent()
            .and_then(|d| std::fs::metadata(d).ok())
            .is_some_and(|m| m.is_dir() && crate::private::owned_and_private(&m));
        if trusted_dir {
            if let Ok(ds) = read_cache(place, fp) {
                return Ok(ds);
            }
        }
    }
    let ds = parse()?;
    // A source directory without write permission (a shared, read-only data set) is left alone
    // even when we could write there (as root).
    let source_dir =
        if layout == Layout::Generic { target.parent().unwrap_or(Path::new(".")) } else { target };
    let read_only = std::fs::metadata(source_dir).map_or(true, |m| m.permissions().readonly());
    let skip_first = read_only && !overridden;
    for place in places.iter().skip(usize::from(skip_first)) {
        if write_cache(place, fp, &ds).is_ok() {
            break;
        }
    }
    Ok(ds)
}

/// The meta section: the load report as JSON (small, and tolerant of new fields), then the
/// catalogue in a compact binary form (parsing tens of thousands of titles as JSON costs more
/// than decoding all the rating columns of a small data set).
///
/// ```text
/// report JSON length u32 | report JSON
/// genre names: count u32, then (length u32, UTF-8) each
/// movies: count u64, then raw id u64 | year u16 | has year u8 | genre count u8 | genre index u16 x count
///         | title (length u32, UTF-8) | full title (length u32, UTF-8)
/// tags: count u64, then user u64 | movie u64 | timestamp i64 | tag (length u32, UTF-8)
/// links: count u64, then movie u64 | has tmdb u8 | tmdb u64 | imdb (length u32, UTF-8)
/// ```
fn encode_meta(catalogue: &Catalogue, report: &LoadReport) -> Result<Vec<u8>, String> {
    fn text(out: &mut Vec<u8>, s: &str) -> Result<(), String> {
        let len = u32::try_from(s.len()).map_err(|_| "text longer than 4 GiB".to_string())?;
        out.extend(len.to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        Ok(())
    }
    let mut out = Vec::new();
    let json = serde_json::to_vec(report).map_err(|e| e.to_string())?;
    text(&mut out, std::str::from_utf8(&json).map_err(|e| e.to_string())?)?;
    let mut genre_names: Vec<&str> = Vec::new();
    let mut genre_index = std::collections::HashMap::new();
    for g in catalogue.movies().iter().flat_map(|m| &m.genres) {
        genre_index.entry(g.as_str()).or_insert_with(|| {
            genre_names.push(g.as_str());
            genre_names.len() - 1
        });
    }
    if genre_names.len() > usize::from(u16::MAX) {
        return Err("more than 65535 distinct genres".into());
    }
    out.extend((genre_names.len() as u32).to_le_bytes());
    for g in &genre_names {
        text(&mut out, g)?;
    }
    out.extend((catalogue.len() as u64).to_le_bytes());
    for m in catalogue.movies() {
        out.extend(m.raw_id.to_le_bytes());
        out.extend(m.year.unwrap_or(0).to_le_bytes());
        out.push(u8::from(m.year.is_some()));
        let n_genres =
            u8::try_from(m.genres.len()).map_err(|_| "a movie with over 255 genres".to_string())?;
        out.push(n_genres);
        for g in &m.genres {
            out.extend((genre_index[g.as_str()] as u16).to_le_bytes());
        }
        text(&mut out, &m.title)?;
        text(&mut out, &m.full_title)?;
    }
    out.extend((catalogue.tags().len() as u64).to_le_bytes());
    for t in catalogue.tags() {
        out.extend(t.user_raw.to_le_bytes());
        out.extend(t.movie_raw.to_le_bytes());
        out.extend(t.timestamp.to_le_bytes());
        text(&mut out, &t.tag)?;
    }
    out.extend((catalogue.links().len() as u64).to_le_bytes());
    for l in catalogue.links() {
        out.extend(l.movie_raw.to_le_bytes());
        out.push(u8::from(l.tmdb_id.is_some()));
        out.extend(l.tmdb_id.unwrap_or(0).to_le_bytes());
        text(&mut out, &l.imdb_id)?;
    }
    Ok(out)
}

/// A bounds-checked reader over the meta section (`None` when it runs out or text is not UTF-8).
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.bytes.get(..n)?, self.bytes.get(n..)?);
        self.bytes = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.array()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }
    /// A count of records each at least `min_size` bytes long (so a corrupt count cannot make
    /// us reserve absurd amounts of memory).
    fn count(&mut self, min_size: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n <= self.bytes.len() / min_size).then_some(n)
    }
}

fn decode_meta(bytes: &[u8]) -> Option<(Catalogue, LoadReport)> {
    let mut c = Cursor { bytes };
    let report: LoadReport = serde_json::from_str(c.str()?).ok()?;
    let n_genres = c.u32()? as usize;
    let genre_names: Vec<&str> = (0..n_genres).map(|_| c.str()).collect::<Option<_>>()?;
    let n_movies = c.count(20)?;
    let mut movies = Vec::with_capacity(n_movies);
    for _ in 0..n_movies {
        let raw_id = c.u64()?;
        let year = c.u16()?;
        let has_year = c.u8()? != 0;
        let n = c.u8()?;
        let genres = (0..n)
            .map(|_| genre_names.get(usize::from(c.u16()?)).map(|g| g.to_string()))
            .collect::<Option<Vec<String>>>()?;
        let title = c.str()?.to_string();
        let full_title = c.str()?.to_string();
        movies.push(Movie { raw_id, title, full_title, year: has_year.then_some(year), genres });
    }
    let n_tags = c.count(28)?;
    let mut tags = Vec::with_capacity(n_tags);
    for _ in 0..n_tags {
        let (user_raw, movie_raw, timestamp) = (c.u64()?, c.u64()?, c.u64()? as i64);
        tags.push(Tag { user_raw, movie_raw, timestamp, tag: c.str()?.to_string() });
    }
    let n_links = c.count(21)?;
    let mut links = Vec::with_capacity(n_links);
    for _ in 0..n_links {
        let movie_raw = c.u64()?;
        let has_tmdb = c.u8()? != 0;
        let tmdb = c.u64()?;
        let imdb_id = c.str()?.to_string();
        links.push(Link { movie_raw, imdb_id, tmdb_id: has_tmdb.then_some(tmdb) });
    }
    c.bytes.is_empty().then(|| (Catalogue::with_extras(movies, tags, links), report))
}

fn invalid(path: &Path, problem: impl Into<String>) -> DataError {
    DataError::Cache { path: path.to_path_buf(), problem: problem.into() }
}

/// Rounds up to a multiple of 8.
fn padded(len: u64) -> Option<u64> {
    len.checked_add(7).map(|l| l & !7)
}

/// Where the sections lie in the file (byte ranges from the file start, padding excluded).
#[derive(Debug)]
struct SectionMap {
    user_raws: (usize, usize),
    movie_raws: (usize, usize),
    runs: (usize, usize),
    user: (usize, usize),
    movie: (usize, usize),
    rating: (usize, usize),
    time: (usize, usize),
    meta: (usize, usize),
    /// End of the payload.
    end: u64,
}

/// Lays the sections out after the header for the given counts and flags (None on overflow).
fn section_map(
    n: u64,
    n_users: u64,
    n_movies: u64,
    n_runs: u64,
    flags: u32,
    meta: u64,
) -> Option<SectionMap> {
    let width = |flag: u32, narrow: u64, wide: u64| if flags & flag != 0 { narrow } else { wide };
    let (runs_len, user_len) =
        if flags & FLAG_USER_RUNS != 0 { (n_runs.checked_mul(8)?, 0) } else { (0, n.checked_mul(4)?) };
    let lens = [
        n_users.checked_mul(8)?,
        n_movies.checked_mul(8)?,
        runs_len,
        user_len,
        n.checked_mul(width(FLAG_MOVIE_U16, 2, 4))?,
        n.checked_mul(width(FLAG_RATING_CODES, 1, 4))?,
        n.checked_mul(width(FLAG_TIME_OFFSETS, 4, 8))?,
        meta,
    ];
    let mut at = (HEADER_LEN + HEAD_LEN) as u64;
    let mut ranges = [(0usize, 0usize); 8];
    for (range, len) in ranges.iter_mut().zip(lens) {
        let end = at.checked_add(len)?;
        *range = (usize::try_from(at).ok()?, usize::try_from(end).ok()?);
        at = padded(end)?;
    }
    let end = ranges[7].1 as u64;
    let [user_raws, movie_raws, runs, user, movie, rating, time, meta] = ranges;
    Some(SectionMap { user_raws, movie_raws, runs, user, movie, rating, time, meta, end })
}

/// Runs of equal consecutive values: `(values, lengths)`.
fn runs_of(column: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let (mut values, mut lengths) = (Vec::new(), Vec::new());
    for &x in column {
        match (values.last(), lengths.last_mut()) {
            (Some(&v), Some(len)) if v == x && *len < u32::MAX => *len += 1,
            _ => {
                values.push(x);
                lengths.push(1);
            }
        }
    }
    (values, lengths)
}

/// The little-endian bytes of one column block (for hashing and writing).
fn block_range(rows: std::ops::Range<usize>, width: usize) -> std::ops::Range<usize> {
    rows.start * width..rows.end * width
}

/// xxh3 over a list of digests (the cache checksum; the fingerprint's chunk digests).
fn combine(digests: &[u64]) -> u64 {
    let bytes: Vec<u8> = digests.iter().flat_map(|d| d.to_le_bytes()).collect();
    xxh3_64(&bytes)
}

/// The header bytes before the checksum field.
fn header_prefix(flags: u32, fingerprint: u64, payload_len: u64) -> [u8; HEADER_LEN - 8] {
    let mut h = [0u8; HEADER_LEN - 8];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&flags.to_le_bytes());
    h[16..24].copy_from_slice(&fingerprint.to_le_bytes());
    h[24..32].copy_from_slice(&payload_len.to_le_bytes());
    h
}

/// Writes `ds` to a cache file at `path` (atomically: a fresh temporary file, then rename; the
/// folder is created with mode 0700, and one not owned by the current user or open to others
/// is refused).
pub fn write_cache(path: &Path, fingerprint: u64, ds: &Dataset) -> Result<(), DataError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    crate::private::private_dir(dir)?;
    let r = &ds.ratings;
    let n = r.len();
    let mut flags = 0;
    let rating_codes: Option<Vec<u8>> = r
        .rating
        .par_iter()
        .map(|&x| {
            let k = x * 2.0;
            (k.fract() == 0.0 && (0.0..=255.0).contains(&k) && x.is_sign_positive()).then_some(k as u8)
        })
        .collect();
    if rating_codes.is_some() {
        flags |= FLAG_RATING_CODES;
    }
    let t_base = r.timestamp.par_iter().copied().min().unwrap_or(0);
    let t_max = r.timestamp.par_iter().copied().max().unwrap_or(0);
    let offsets = t_max.checked_sub(t_base).is_some_and(|span| span <= i64::from(u32::MAX));
    if offsets {
        flags |= FLAG_TIME_OFFSETS;
    }
    let (run_values, run_lengths) = runs_of(&r.user);
    let use_runs = run_values.len() * 2 <= n;
    if use_runs {
        flags |= FLAG_USER_RUNS;
    }
    let movies_u16 = ds.movies.len() <= 1 << 16;
    if movies_u16 {
        flags |= FLAG_MOVIE_U16;
    }
    let meta = encode_meta(&ds.catalogue, &ds.report).map_err(|e| invalid(path, e))?;
    let n_runs = if use_runs { run_values.len() } else { 0 };
    let mut head = Vec::with_capacity(HEAD_LEN);
    let counts = [n, ds.users.len(), ds.movies.len()].map(|c| c as u64);
    for v in [counts[0], counts[1], counts[2], t_base as u64, meta.len() as u64, n_runs as u64, 0, 0] {
        head.extend(v.to_le_bytes());
    }
    let (movie_bytes, time_bytes): (Vec<u8>, Vec<u8>) = rayon::join(
        || {
            if movies_u16 {
                r.movie.iter().flat_map(|&m| (m as u16).to_le_bytes()).collect()
            } else {
                bytemuck::cast_slice(&r.movie).to_vec()
            }
        },
        || {
            if offsets {
                r.timestamp.iter().flat_map(|&t| ((t - t_base) as u32).to_le_bytes()).collect()
            } else {
                bytemuck::cast_slice(&r.timestamp).to_vec()
            }
        },
    );
    let runs: Vec<u8> = if use_runs {
        let mut runs = bytemuck::cast_slice(&run_values).to_vec();
        runs.extend_from_slice(bytemuck::cast_slice(&run_lengths));
        runs
    } else {
        Vec::new()
    };
    let user_bytes: &[u8] = if use_runs { &[] } else { bytemuck::cast_slice(&r.user) };
    let rating_bytes: &[u8] = match &rating_codes {
        Some(c) => c,
        None => bytemuck::cast_slice(&r.rating),
    };
    let columns: [(&[u8], usize); 4] = [
        (user_bytes, if use_runs { 0 } else { 4 }),
        (&movie_bytes, if movies_u16 { 2 } else { 4 }),
        (rating_bytes, if rating_codes.is_some() { 1 } else { 4 }),
        (&time_bytes, if offsets { 4 } else { 8 }),
    ];
    let sections: [&[u8]; 9] = [
        &head,
        bytemuck::cast_slice(ds.users.raws()),
        bytemuck::cast_slice(ds.movies.raws()),
        &runs,
        user_bytes,
        &movie_bytes,
        rating_bytes,
        &time_bytes,
        &meta,
    ];
    let payload_len: u64 = sections.iter().map(|s| padded(s.len() as u64).unwrap_or(u64::MAX)).sum::<u64>()
        - (padded(meta.len() as u64).unwrap_or(0) - meta.len() as u64);
    let prefix = header_prefix(flags, fingerprint, payload_len);
    let mut digests = vec![
        xxh3_64(&prefix),
        xxh3_64(&head),
        xxh3_64(bytemuck::cast_slice(ds.users.raws())),
        xxh3_64(bytemuck::cast_slice(ds.movies.raws())),
        xxh3_64(&runs),
    ];
    let block_digests: Vec<[u64; 4]> = (0..n.div_ceil(BLOCK_ROWS))
        .into_par_iter()
        .map(|b| {
            let rows = b * BLOCK_ROWS..((b + 1) * BLOCK_ROWS).min(n);
            columns.map(|(bytes, width)| xxh3_64(&bytes[block_range(rows.clone(), width)]))
        })
        .collect();
    digests.extend(block_digests.iter().flatten());
    digests.push(xxh3_64(&meta));
    let checksum = combine(&digests);
    reelvec_outfile::write_with(path, 0o600, |f| {
        let io = |e| DataError::io(path, e);
        f.write_all(&prefix).map_err(io)?;
        f.write_all(&checksum.to_le_bytes()).map_err(io)?;
        let last = sections.len() - 1;
        for (i, s) in sections.iter().enumerate() {
            f.write_all(s).map_err(io)?;
            if i != last {
                f.write_all(&[0u8; 8][..(8 - s.len() % 8) % 8]).map_err(io)?;
            }
        }
        Ok(())
    })
}

fn le_u64(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

/// An empty column with room for `n` values, for the decoder to fill. Large ones are advised as
/// transparent huge pages first: their pages are still untouched, so faulting them in costs one
/// fault per 2 MiB instead of per 4 KiB (and freeing is as cheap). No zeroing pass: memory the
/// allocator reuses is not cleared before the decoder overwrites it.
fn fresh_column<T>(n: usize) -> Vec<T> {
    let v = Vec::with_capacity(n);
    advise_huge_pages(v.as_ptr() as usize, n * std::mem::size_of::<T>());
    v
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(addr: usize, len: usize) {
    const PAGE: usize = 4096;
    if len < 2 << 20 {
        return;
    }
    let start = addr.next_multiple_of(PAGE);
    let end = (addr + len) / PAGE * PAGE;
    if end > start {
        // SAFETY: [start, end) is a page-aligned range inside a live allocation of `len` bytes
        // at `addr`. MADV_HUGEPAGE only tells the kernel how to back those pages; it never
        // changes their contents or validity (a failure is ignored: the pages stay 4 KiB).
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_addr: usize, _len: usize) {}

/// Writes `convert(src[i])` to every `out[i]`, or `T::default()` everywhere when `src` is
/// missing or the wrong length (the checksum then rejects the file). Every element of `out`
/// is written on every path.
fn fill_column<S: Copy, T: Copy + Default>(
    out: &mut [MaybeUninit<T>],
    src: Option<&[S]>,
    mut convert: impl FnMut(S) -> T,
) {
    match src {
        Some(src) if src.len() == out.len() => {
            for (o, &x) in out.iter_mut().zip(src) {
                o.write(convert(x));
            }
        }
        _ => {
            for o in out {
                o.write(T::default());
            }
        }
    }
}

/// A section of the map as a slice of `T` (an error when misaligned).
fn typed<'a, T: bytemuck::Pod>(
    map: &'a [u8],
    range: (usize, usize),
    path: &Path,
) -> Result<&'a [T], DataError> {
    bytemuck::try_cast_slice(&map[range.0..range.1]).map_err(|_| invalid(path, "misaligned section"))
}

/// What one decoded block saw: the digests of its column slices and the largest indices.
struct BlockResult {
    digests: [u64; 4],
    max_user: u32,
    max_movie: u32,
}

/// The encoded columns of a cache file, borrowed from the map.
struct Encoded<'a> {
    run_values: &'a [u32],
    run_ends: Vec<u64>,
    user: &'a [u8],
    movie: &'a [u8],
    rating: &'a [u8],
    time: &'a [u8],
    flags: u32,
    t_base: i64,
}

impl Encoded<'_> {
    /// Hashes and decodes rows `first..first + user.len()` into the output slices, writing every
    /// element of each.
    fn decode_block(
        &self,
        first: usize,
        user: &mut [MaybeUninit<u32>],
        movie: &mut [MaybeUninit<u32>],
        rating: &mut [MaybeUninit<f32>],
        time: &mut [MaybeUninit<i64>],
    ) -> BlockResult {
        let rows = first..first + user.len();
        let has = |flag: u32| self.flags & flag != 0;
        let user_bytes = if has(FLAG_USER_RUNS) { &[][..] } else { &self.user[block_range(rows.clone(), 4)] };
        let movie_bytes = &self.movie[block_range(rows.clone(), if has(FLAG_MOVIE_U16) { 2 } else { 4 })];
        let rating_bytes =
            &self.rating[block_range(rows.clone(), if has(FLAG_RATING_CODES) { 1 } else { 4 })];
        let time_bytes = &self.time[block_range(rows.clone(), if has(FLAG_TIME_OFFSETS) { 4 } else { 8 })];
        let digests = [user_bytes, movie_bytes, rating_bytes, time_bytes].map(xxh3_64);
        // Sections start at multiples of 8 in a page-aligned map, so the casts cannot fail; were
        // they to, the block decodes to zeros and the checksum still decides.
        let (mut max_user, mut max_movie) = (0u32, 0u32);
        if has(FLAG_USER_RUNS) {
            // The run holding row `first`, then fill run by run (run values are range-checked
            // once for the whole file).
            let mut run = self.run_ends.partition_point(|&end| end <= first as u64);
            let mut at = 0;
            while at < user.len() && run < self.run_values.len() {
                let end = ((self.run_ends[run] as usize).saturating_sub(first)).min(user.len());
                for o in &mut user[at..end] {
                    o.write(self.run_values[run]);
                }
                at = end;
                run += 1;
            }
            fill_column::<u32, u32>(&mut user[at..], None, |x| x);
        } else {
            fill_column(user, bytemuck::try_cast_slice::<u8, u32>(user_bytes).ok(), |u| {
                max_user = max_user.max(u);
                u
            });
        }
        if has(FLAG_MOVIE_U16) {
            let mut max = 0u16;
            fill_column(movie, bytemuck::try_cast_slice::<u8, u16>(movie_bytes).ok(), |m| {
                max = max.max(m);
                u32::from(m)
            });
            max_movie = u32::from(max);
        } else {
            fill_column(movie, bytemuck::try_cast_slice::<u8, u32>(movie_bytes).ok(), |m| {
                max_movie = max_movie.max(m);
                m
            });
        }
        if has(FLAG_RATING_CODES) {
            fill_column(rating, Some(rating_bytes), |c| f32::from(c) * 0.5);
        } else {
            fill_column(rating, bytemuck::try_cast_slice::<u8, f32>(rating_bytes).ok(), |r| r);
        }
        if has(FLAG_TIME_OFFSETS) {
            fill_column(time, bytemuck::try_cast_slice::<u8, u32>(time_bytes).ok(), |t| {
                self.t_base + i64::from(t)
            });
        } else {
            fill_column(time, bytemuck::try_cast_slice::<u8, i64>(time_bytes).ok(), |t| t);
        }
        BlockResult { digests, max_user, max_movie }
    }
}

/// Reads a cache file, checking owner and permissions, magic, version, fingerprint, lengths,
/// checksum and index ranges. A symbolic link, a file not owned by the current user or one that
/// group or others may write is refused.
pub fn read_cache(path: &Path, fingerprint: u64) -> Result<Dataset, DataError> {
    let file = open_trusted(path)?;
    let (words, len) = read_owned(&file, path)?;
    decode_cache(&bytemuck::cast_slice::<u64, u8>(&words)[..len], path, fingerprint)
}

/// Opens `path` without following a symbolic link and checks that it is a regular file of the
/// current user that group and others cannot write.
fn open_trusted(path: &Path) -> Result<File, DataError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let file = options.open(path).map_err(|e| DataError::io(path, e))?;
    let meta = file.metadata().map_err(|e| DataError::io(path, e))?;
    if !meta.is_file() || !crate::private::owned_and_private(&meta) {
        return Err(invalid(path, "not a regular file owned by the current user and closed to others"));
    }
    Ok(file)
}

/// Copies the whole file into an owned, 8-byte aligned buffer (`(words, byte length)`). The
/// data set is decoded from this copy, never from a memory map: a cache truncated or rewritten
/// while it is read gives a short read or a checksum mismatch, never a SIGBUS.
fn read_owned(file: &File, path: &Path) -> Result<(Vec<u64>, usize), DataError> {
    let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let words = read_copy(file, len).map_err(|_| invalid(path, "truncated while reading"))?;
    let mut probe = [0u8; 1];
    if read_exact_at(file, &mut probe, len).is_ok() {
        return Err(invalid(path, "changed while reading"));
    }
    Ok((words, len as usize))
}

/// The first `len` bytes of `file` in a fresh 8-byte aligned buffer, read in
/// [`FINGERPRINT_CHUNK`] pieces in parallel (so the page faults of the new buffer are spread
/// over the threads too). An error when the file is shorter.
pub fn read_copy(file: &File, len: u64) -> std::io::Result<Vec<u64>> {
    let n = usize::try_from(len).map_err(|_| std::io::Error::other("larger than memory"))?;
    let mut words = vec![0u64; n.div_ceil(8)];
    advise_huge_pages(words.as_ptr() as usize, words.len() * 8);
    let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..n];
    bytes
        .par_chunks_mut(FINGERPRINT_CHUNK as usize)
        .enumerate()
        .try_for_each(|(c, chunk)| read_exact_at(file, chunk, c as u64 * FINGERPRINT_CHUNK))?;
    Ok(words)
}

/// Decodes and validates the bytes of a cache file (see [`read_cache`]).
fn decode_cache(bytes: &[u8], path: &Path, fingerprint: u64) -> Result<Dataset, DataError> {
    if bytes.len() < HEADER_LEN + HEAD_LEN {
        return Err(invalid(path, "truncated header"));
    }
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if &bytes[..8] != MAGIC {
        return Err(invalid(path, "not a reelvec cache file"));
    }
    if u32_at(8) != FORMAT_VERSION {
        return Err(invalid(
            path,
            format!("format version {} (this build reads {FORMAT_VERSION})", u32_at(8)),
        ));
    }
    let flags = u32_at(12);
    if flags & !(FLAG_RATING_CODES | FLAG_TIME_OFFSETS | FLAG_USER_RUNS | FLAG_MOVIE_U16) != 0 {
        return Err(invalid(path, format!("unknown flags {flags:#x}")));
    }
    if le_u64(bytes, 16) != fingerprint {
        return Err(invalid(path, "stale: the source changed"));
    }
    let payload_len = le_u64(bytes, 24);
    let checksum = le_u64(bytes, 32);
    if bytes.len() as u64 != HEADER_LEN as u64 + payload_len {
        return Err(invalid(path, "truncated payload"));
    }
    let head = &bytes[HEADER_LEN..HEADER_LEN + HEAD_LEN];
    let (n, n_users, n_movies) = (le_u64(head, 0), le_u64(head, 8), le_u64(head, 16));
    let (t_base, meta_len, n_runs) = (le_u64(head, 24) as i64, le_u64(head, 32), le_u64(head, 40));
    let sections = section_map(n, n_users, n_movies, n_runs, flags, meta_len)
        .filter(|s| s.end == bytes.len() as u64 && n_users <= 1 << 32 && n_movies <= 1 << 32)
        .ok_or_else(|| invalid(path, "section lengths do not add up"))?;
    // Padding is not hashed, so it must be zero: then no flipped byte anywhere goes unnoticed.
    let padding_ends =
        [sections.user_raws, sections.movie_raws, sections.runs, sections.user, sections.movie]
            .into_iter()
            .chain([sections.rating, sections.time])
            .map(|(_, end)| (end, padded(end as u64).map_or(end, |p| p as usize)));
    if padding_ends
        .into_iter()
        .any(|(from, to)| bytes.get(from..to).is_none_or(|p| p.iter().any(|&b| b != 0)))
    {
        return Err(invalid(path, "checksum mismatch (corrupted padding)"));
    }
    let n = n as usize;
    let user_raws: &[u64] = typed(bytes, sections.user_raws, path)?;
    let movie_raws: &[u64] = typed(bytes, sections.movie_raws, path)?;
    let runs: &[u32] = typed(bytes, sections.runs, path)?;
    let (run_values, run_lengths) = runs.split_at(runs.len() / 2);
    let mut run_ends = Vec::with_capacity(run_lengths.len());
    let mut total = 0u64;
    for &len in run_lengths {
        total += u64::from(len);
        run_ends.push(total);
    }
    if flags & FLAG_USER_RUNS != 0 && total != n as u64 {
        return Err(invalid(path, "user runs do not cover the rows"));
    }
    let encoded = Encoded {
        run_values,
        run_ends,
        user: &bytes[sections.user.0..sections.user.1],
        movie: &bytes[sections.movie.0..sections.movie.1],
        rating: &bytes[sections.rating.0..sections.rating.1],
        time: &bytes[sections.time.0..sections.time.1],
        flags,
        t_base,
    };
    let meta_bytes = &bytes[sections.meta.0..sections.meta.1];
    let head_digests = [
        xxh3_64(&bytes[..HEADER_LEN - 8]),
        xxh3_64(head),
        xxh3_64(bytemuck::cast_slice(user_raws)),
        xxh3_64(bytemuck::cast_slice(movie_raws)),
        xxh3_64(bytemuck::cast_slice(runs)),
    ];

    let decode = || {
        let (mut user, mut movie) = (fresh_column::<u32>(n), fresh_column::<u32>(n));
        let (mut rating, mut time) = (fresh_column::<f32>(n), fresh_column::<i64>(n));
        let blocks: Vec<BlockResult> = user.spare_capacity_mut()[..n]
            .par_chunks_mut(BLOCK_ROWS)
            .zip(movie.spare_capacity_mut()[..n].par_chunks_mut(BLOCK_ROWS))
            .zip(rating.spare_capacity_mut()[..n].par_chunks_mut(BLOCK_ROWS))
            .zip(time.spare_capacity_mut()[..n].par_chunks_mut(BLOCK_ROWS))
            .enumerate()
            .map(|(b, (((u, m), r), t))| encoded.decode_block(b * BLOCK_ROWS, u, m, r, t))
            .collect();
        // SAFETY: the four chunk iterators cover elements 0..n of each column, and decode_block
        // writes every element of every chunk it is given (each column on every path).
        unsafe {
            user.set_len(n);
            movie.set_len(n);
            rating.set_len(n);
            time.set_len(n);
        }
        (Ratings { user, movie, rating, timestamp: time }, blocks)
    };
    let rest = || {
        let meta = decode_meta(meta_bytes);
        let (users, movies) = rayon::join(
            || IdMap::from_dense_order(user_raws.to_vec()),
            || IdMap::from_dense_order(movie_raws.to_vec()),
        );
        (xxh3_64(meta_bytes), meta, users, movies)
    };
    let ((ratings, blocks), (meta_digest, meta, users, movies)) = rayon::join(decode, rest);
    let mut digests = head_digests.to_vec();
    digests.extend(blocks.iter().flat_map(|b| b.digests));
    digests.push(meta_digest);
    if combine(&digests) != checksum {
        return Err(invalid(path, "checksum mismatch (corrupted)"));
    }
    let max_user = blocks.iter().map(|b| b.max_user).chain(run_values.iter().copied()).max().unwrap_or(0);
    let max_movie = blocks.iter().map(|b| b.max_movie).max().unwrap_or(0);
    if n > 0 && (u64::from(max_user) >= n_users || u64::from(max_movie) >= n_movies) {
        return Err(invalid(path, "index out of range"));
    }
    let (catalogue, mut report) = meta.ok_or_else(|| invalid(path, "malformed catalogue section"))?;
    report.from_cache = true;
    Ok(Dataset { ratings, users, movies, catalogue, report })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Dataset {
        let raw = crate::parse::RawRatings {
            user: vec![5, 6, 5],
            movie: vec![1, 1, 9],
            rating: vec![4.5, 1.0, 3.0],
            timestamp: vec![1_000, 2_000_000, -5],
        };
        crate::assemble::assemble(vec![raw], Catalogue::default(), false, "ml-latest")
    }

    #[test]
    fn round_trips_with_and_without_compact_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.rvc");
        let mut ds = sample();
        write_cache(&p, 7, &ds).unwrap();
        let back = read_cache(&p, 7).unwrap();
        assert!(back.report.from_cache);
        ds.report.from_cache = true;
        assert_eq!(back, ds);
        // Ratings that are not half stars and timestamps spanning more than u32.
        ds.ratings.rating[0] = 4.25;
        ds.ratings.timestamp[1] = i64::MAX / 2;
        write_cache(&p, 7, &ds).unwrap();
        assert_eq!(read_cache(&p, 7).unwrap(), ds);
        assert!(matches!(read_cache(&p, 8), Err(DataError::Cache { .. })));
    }

    #[test]
    fn catalogue_section_round_trips_and_rejects_truncation() {
        let movie = |raw_id, title: &str, year, genres: &[&str]| Movie {
            raw_id,
            title: title.into(),
            full_title: match year {
                Some(y) => format!("{title} ({y})"),
                None => title.into(),
            },
            year,
            genres: genres.iter().map(|g| g.to_string()).collect(),
        };
        let catalogue = Catalogue::with_extras(
            vec![
                movie(1, "Amélie, \"Le\" fabuleux | destin", Some(2001), &["Comedy", "Romance"]),
                movie(1 << 40, "", None, &[]),
                movie(7, "東京物語", Some(1953), &["Drama", "Comedy"]),
            ],
            vec![Tag { user_raw: 3, movie_raw: 7, tag: "slow, quiet".into(), timestamp: -17 }],
            vec![
                Link { movie_raw: 1, imdb_id: "0211915".into(), tmdb_id: Some(194) },
                Link { movie_raw: 7, imdb_id: "0046438".into(), tmdb_id: None },
            ],
        );
        let report = LoadReport {
            layout: "ml-latest".into(),
            rows_read: 9,
            duplicates_dropped: 2,
            ..Default::default()
        };
        let bytes = encode_meta(&catalogue, &report).unwrap();
        let (back, back_report) = decode_meta(&bytes).unwrap();
        assert_eq!(back, catalogue);
        assert_eq!(back.get(1 << 40).unwrap().year, None);
        assert_eq!(back_report, report);
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_meta(&bytes[..cut]).is_none(), "{cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_meta(&longer).is_none());
    }

    /// Rows spanning several checksum blocks, with or without user runs and u16 movie codes.
    fn big(n: usize, n_movies: u64, grouped: bool) -> Dataset {
        let user: Vec<u64> =
            (0..n as u64).map(|i| if grouped { i / 97 } else { (i * 7919) % 1013 } + 10).collect();
        let movie: Vec<u64> = (0..n as u64).map(|i| (i * 104_729) % n_movies + 1).collect();
        let raw = crate::parse::RawRatings {
            rating: (0..n).map(|i| (i % 10 + 1) as f32 / 2.0).collect(),
            timestamp: (0..n as i64).map(|i| 1_000_000_000 + i * 37).collect(),
            user,
            movie,
        };
        crate::assemble::assemble(vec![raw], Catalogue::default(), false, "ml-latest")
    }

    #[test]
    fn multi_block_round_trips_for_every_column_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.rvc");
        let n = 2 * BLOCK_ROWS + 5;
        for (n_movies, grouped, flags) in [
            (5_000, true, FLAG_USER_RUNS | FLAG_MOVIE_U16),
            (70_000, false, 0),
            (70_000, true, FLAG_USER_RUNS),
        ] {
            let mut ds = big(n, n_movies, grouped);
            assert_eq!(ds.movies.len() > 1 << 16, n_movies > 1 << 16);
            write_cache(&p, 3, &ds).unwrap();
            let written = std::fs::read(&p).unwrap();
            let found = u32::from_le_bytes(written[12..16].try_into().unwrap());
            assert_eq!(found, flags | FLAG_RATING_CODES | FLAG_TIME_OFFSETS);
            ds.report.from_cache = true;
            let back = read_cache(&p, 3).unwrap();
            assert_eq!(back, ds);
            assert_eq!(back.movies.dense(ds.movies.raw(7).unwrap()), Some(7));
            // A flipped byte in a column is caught.
            let mut bad = written.clone();
            let movie_end = HEADER_LEN + HEAD_LEN + 8 * (ds.users.len() + ds.movies.len());
            let at = bad.len() - 4 * n - 2 * 8; // inside the time column
            bad[at.max(movie_end)] ^= 1;
            std::fs::write(&p, &bad).unwrap();
            assert!(read_cache(&p, 3).unwrap_err().to_string().contains("checksum"));
        }
    }

    #[test]
    fn corruption_and_truncation_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.rvc");
        write_cache(&p, 1, &sample()).unwrap();
        let good = std::fs::read(&p).unwrap();
        for i in [HEADER_LEN + HEAD_LEN + 1, good.len() - 2] {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            std::fs::write(&p, &bad).unwrap();
            let err = read_cache(&p, 1).unwrap_err();
            assert!(err.to_string().contains("checksum"), "{err}");
        }
        // Every byte counts, padding included: flip each in turn.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x08;
            std::fs::write(&p, &bad).unwrap();
            assert!(read_cache(&p, 1).is_err(), "byte {i} of {}", good.len());
        }
        let mut bad = good.clone();
        bad[HEADER_LEN + 3] ^= 0x40; // the row count
        std::fs::write(&p, &bad).unwrap();
        assert!(matches!(read_cache(&p, 1), Err(DataError::Cache { .. })));
        std::fs::write(&p, &good[..good.len() - 1]).unwrap();
        assert!(read_cache(&p, 1).unwrap_err().to_string().contains("truncated"));
        let mut old = good.clone();
        old[8] = 0;
        std::fs::write(&p, &old).unwrap();
        assert!(read_cache(&p, 1).unwrap_err().to_string().contains("version"));
    }

    #[test]
    fn the_header_is_under_the_checksum() {
        // A cache of one source relabelled with another source's fingerprint is refused.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.rvc");
        write_cache(&p, 0x1111, &sample()).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[16..24].copy_from_slice(&0x2222u64.to_le_bytes());
        std::fs::write(&p, &bytes).unwrap();
        let err = read_cache(&p, 0x2222).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
        // Likewise for the flags (here: claiming u32 movie indices).
        write_cache(&p, 1, &sample()).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[12] ^= FLAG_MOVIE_U16 as u8;
        std::fs::write(&p, &bytes).unwrap();
        assert!(read_cache(&p, 1).is_err());
    }

    #[test]
    fn a_cache_changed_while_read_gives_an_error_or_the_data_never_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.rvc");
        let mut ds = big(BLOCK_ROWS + 9, 5_000, true);
        write_cache(&p, 4, &ds).unwrap();
        ds.report.from_cache = true;
        // Truncated between open and read: the shorter copy is refused.
        let file = open_trusted(&p).unwrap();
        let full = std::fs::metadata(&p).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(full / 2).unwrap();
        let (words, len) = read_owned(&file, &p).unwrap();
        assert_eq!(len as u64, full / 2);
        let err = decode_cache(&bytemuck::cast_slice::<u64, u8>(&words)[..len], &p, 4).err().unwrap();
        assert!(err.to_string().contains("truncated"), "{err}");
        // Truncated and rewritten after the read: decoding the copy is unaffected (with a
        // memory map this was a SIGBUS).
        write_cache(&p, 4, &ds).unwrap();
        let file = open_trusted(&p).unwrap();
        let (words, len) = read_owned(&file, &p).unwrap();
        let writer = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        writer.set_len(0).unwrap();
        writer.set_len(full / 3).unwrap();
        let back = decode_cache(&bytemuck::cast_slice::<u64, u8>(&words)[..len], &p, 4).unwrap();
        assert_eq!(back, ds);
        // A file shorter than its header claims.
        assert!(read_cache(&p, 4).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn caches_open_to_others_or_not_ours_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.rvc");
        write_cache(&p, 5, &sample()).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(read_cache(&p, 5).is_ok());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(read_cache(&p, 5).unwrap_err().to_string().contains("owned by the current user"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A symlink to a good cache is not followed.
        let link = dir.path().join("link.rvc");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert!(read_cache(&link, 5).is_err());
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // As root: a cache planted by another user (nobody) is not loaded.
            std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
            assert!(read_cache(&p, 5).is_err());
        }
        // Nor is one in a folder others may write, and nothing is written there.
        let open_dir = dir.path().join("shared");
        std::fs::create_dir(&open_dir).unwrap();
        std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(write_cache(&open_dir.join("c.rvc"), 5, &sample()).is_err());
        assert_eq!(std::fs::read_dir(&open_dir).unwrap().count(), 0);
    }

    #[test]
    fn the_fingerprint_sees_a_same_size_same_mtime_edit_in_the_middle() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.csv");
        let mut text: Vec<u8> =
            (0..60_000).flat_map(|i| format!("{},{},3,{}\n", i % 97, i % 89, i).into_bytes()).collect();
        std::fs::write(&f, &text).unwrap();
        let g = GenericColumns::default();
        let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
        let before = fingerprint(&f, Layout::Generic, &g).unwrap();
        let mid = text.len() / 2;
        let at = mid + text[mid..].iter().position(|&b| b == b'3').unwrap();
        text[at] = b'4';
        std::fs::write(&f, &text).unwrap();
        std::fs::File::options().write(true).open(&f).unwrap().set_modified(mtime).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), mtime);
        assert_ne!(fingerprint(&f, Layout::Generic, &g).unwrap(), before);
        // And it is the same for any thread count (chunks are hashed, then their digests).
        let big: Vec<u8> = (0..3 * FINGERPRINT_CHUNK as usize + 5).map(|i| (i % 251) as u8).collect();
        std::fs::write(&f, &big).unwrap();
        let file = File::open(&f).unwrap();
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let many = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        let a = one.install(|| content_hash(&file, big.len() as u64).unwrap());
        assert_eq!(a, many.install(|| content_hash(&file, big.len() as u64).unwrap()));
        assert!(content_hash(&file, big.len() as u64 + 1).is_err());
    }
}
