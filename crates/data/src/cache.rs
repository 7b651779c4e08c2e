//! The binary cache of a parsed data set.
//!
//! A cache file holds a [`Dataset`] exactly as parsed. Layout (little-endian):
//!
//! ```text
//! magic "RVCACHE\0" | version u32 | flags u32 | source fingerprint u64 | payload length u64
//! | payload xxh3 u64 | payload
//! payload: n_rows, n_users, n_movies, t_base, JSON length (u64/u64/u64/i64/u64)
//!          user u32 x n_rows | movie u32 x n_rows
//!          rating: f32 x n_rows, or u8 half-star codes (flag 1) when every rating is k/2, k in 0..=255
//!          timestamp: i64 x n_rows, or u32 offsets from t_base (flag 2) when the span fits
//!          user raw ids u64 x n_users | movie raw ids u64 x n_movies
//!          JSON {catalogue, report}
//! checksum: xxh3 of the eight sections' xxh3 digests (sections are hashed in parallel)
//! ```
//!
//! The **fingerprint** hashes the format version, the layout, the generic columns and, for each
//! source file of the layout (present or not), its size, modification time and the xxh3 of its
//! first and last 64 KiB. Any change to the source, or a different version of this code,
//! gives another fingerprint and the cache is rebuilt. The **checksum** covers the payload, so
//! a truncated or corrupted cache is detected and rebuilt, never trusted.
//!
//! Where: `$REELVEC_CACHE_DIR/<hash>.rvc` when that variable is set; otherwise
//! `.reelvec-cache/<layout>.rvc` next to the source (for a generic file
//! `.reelvec-cache/<file name>.<hash>.rvc`), falling back to `<temp dir>/reelvec-cache/<hash>.rvc`
//! when the source's directory is read-only (by its permission bits, even for root) or the
//! write fails. Writes go to a temporary file that is renamed
//! into place, so a reader never sees a half-written cache.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::error::DataError;
use crate::layout::{GenericColumns, Layout};
use crate::types::{Catalogue, Dataset, IdMap, LoadReport, Ratings};

/// Bumped whenever the payload or the parsing semantics change.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"RVCACHE\0";
const HEADER_LEN: usize = 8 + 4 + 4 + 8 + 8 + 8;
const FLAG_RATING_CODES: u32 = 1;
const FLAG_TIME_OFFSETS: u32 = 2;
const EDGE: u64 = 64 * 1024;

/// The source files whose state a cache depends on.
fn source_files(target: &Path, layout: Layout) -> Vec<PathBuf> {
    let names: &[&str] = match layout {
        Layout::Ml100k => &["u.data", "u.item", "u.genre"],
        Layout::Ml1m | Layout::Ml10m => &["ratings.dat", "movies.dat", "tags.dat", "users.dat"],
        Layout::MlLatest => &["ratings.csv", "movies.csv", "tags.csv", "links.csv"],
        Layout::Generic => return vec![target.to_path_buf()],
    };
    names.iter().map(|n| target.join(n)).collect()
}

/// Hash of everything the parsed data set depends on.
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
        let Ok(meta) = std::fs::metadata(&path) else {
            h.update(b"absent");
            continue;
        };
        let mtime =
            meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        h.update(&meta.len().to_le_bytes());
        h.update(&mtime.to_le_bytes());
        let mut f = File::open(&path).map_err(|e| DataError::io(&path, e))?;
        let mut buf = vec![0u8; EDGE.min(meta.len()) as usize];
        f.read_exact(&mut buf).map_err(|e| DataError::io(&path, e))?;
        h.update(&xxh3_64(&buf).to_le_bytes());
        if meta.len() > EDGE {
            use std::io::{Seek, SeekFrom};
            f.seek(SeekFrom::Start(meta.len() - EDGE)).map_err(|e| DataError::io(&path, e))?;
            f.read_exact(&mut buf).map_err(|e| DataError::io(&path, e))?;
            h.update(&xxh3_64(&buf).to_le_bytes());
        }
    }
    Ok(h.digest())
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

fn fallback_path(target: &Path, layout: Layout, config_key: u64) -> PathBuf {
    let key = xxh3_64(format!("{}|{}|{config_key:x}", target.display(), layout.name()).as_bytes());
    std::env::temp_dir().join("reelvec-cache").join(format!("{key:016x}.rvc"))
}

/// Loads through the cache: a valid cache is read, otherwise `parse` runs and its result is
/// written to the cache (a cache that cannot be written is skipped).
pub(crate) fn load_cached(
    target: &Path,
    layout: Layout,
    generic: &GenericColumns,
    parse: impl FnOnce() -> Result<Dataset, DataError>,
) -> Result<Dataset, DataError> {
    let Ok(fp) = fingerprint(target, layout, generic) else { return parse() };
    let config_key = if layout == Layout::Generic { xxh3_64(format!("{generic:?}").as_bytes()) } else { 0 };
    let places = [cache_path(target, layout, config_key), fallback_path(target, layout, config_key)];
    for place in &places {
        if let Ok(ds) = read_cache(place, fp) {
            return Ok(ds);
        }
    }
    let ds = parse()?;
    // A source directory without write permission (a shared, read-only data set) is left alone
    // even when we could write there (as root).
    let source_dir =
        if layout == Layout::Generic { target.parent().unwrap_or(Path::new(".")) } else { target };
    let read_only = std::fs::metadata(source_dir).map_or(true, |m| m.permissions().readonly());
    let skip_first = read_only && std::env::var_os("REELVEC_CACHE_DIR").is_none();
    for place in places.iter().skip(usize::from(skip_first)) {
        if write_cache(place, fp, &ds).is_ok() {
            break;
        }
    }
    Ok(ds)
}

#[derive(Serialize, Deserialize)]
struct Meta {
    catalogue: Catalogue,
    report: LoadReport,
}

fn invalid(path: &Path, problem: impl Into<String>) -> DataError {
    DataError::Cache { path: path.to_path_buf(), problem: problem.into() }
}

/// Byte sizes of the payload sections, in file order.
fn section_sizes(n: u64, n_users: u64, n_movies: u64, flags: u32, meta_len: u64) -> Option<[u64; 8]> {
    let rating_width = if flags & FLAG_RATING_CODES != 0 { 1 } else { 4 };
    let time_width = if flags & FLAG_TIME_OFFSETS != 0 { 4 } else { 8 };
    Some([
        HEAD_LEN as u64,
        n.checked_mul(4)?,
        n.checked_mul(4)?,
        n.checked_mul(rating_width)?,
        n.checked_mul(time_width)?,
        n_users.checked_mul(8)?,
        n_movies.checked_mul(8)?,
        meta_len,
    ])
}

/// The payload checksum: xxh3 over the sections' xxh3 digests (so sections hash in parallel).
fn combine(digests: &[u64]) -> u64 {
    let bytes: Vec<u8> = digests.iter().flat_map(|d| d.to_le_bytes()).collect();
    xxh3_64(&bytes)
}

const HEAD_LEN: usize = 40;

/// Writes `ds` to a cache file at `path` (atomically: temporary file, then rename).
pub fn write_cache(path: &Path, fingerprint: u64, ds: &Dataset) -> Result<(), DataError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let r = &ds.ratings;
    let n = r.len();
    let mut flags = 0;
    let rating_codes: Option<Vec<u8>> = r
        .rating
        .iter()
        .map(|&x| {
            let k = x * 2.0;
            (k.fract() == 0.0 && (0.0..=255.0).contains(&k)).then_some(k as u8)
        })
        .collect();
    if rating_codes.is_some() {
        flags |= FLAG_RATING_CODES;
    }
    let t_base = r.timestamp.iter().copied().min().unwrap_or(0);
    let t_max = r.timestamp.iter().copied().max().unwrap_or(0);
    let offsets = t_max.checked_sub(t_base).is_some_and(|span| span <= i64::from(u32::MAX));
    if offsets {
        flags |= FLAG_TIME_OFFSETS;
    }
    let meta = serde_json::to_vec(&Meta { catalogue: ds.catalogue.clone(), report: ds.report.clone() })
        .map_err(|e| invalid(path, e.to_string()))?;
    let mut head = Vec::with_capacity(HEAD_LEN);
    for v in [n as u64, ds.users.len() as u64, ds.movies.len() as u64, t_base as u64, meta.len() as u64] {
        head.extend(v.to_le_bytes());
    }
    let times: Vec<u8> = if offsets {
        r.timestamp.iter().flat_map(|&t| ((t - t_base) as u32).to_le_bytes()).collect()
    } else {
        bytemuck::cast_slice(&r.timestamp).to_vec()
    };
    let sections: [&[u8]; 8] = [
        &head,
        bytemuck::cast_slice(&r.user),
        bytemuck::cast_slice(&r.movie),
        match &rating_codes {
            Some(c) => c,
            None => bytemuck::cast_slice(&r.rating),
        },
        &times,
        bytemuck::cast_slice(ds.users.raws()),
        bytemuck::cast_slice(ds.movies.raws()),
        &meta,
    ];
    let digests: Vec<u64> = sections.par_iter().map(|s| xxh3_64(s)).collect();
    let len: u64 = sections.iter().map(|s| s.len() as u64).sum();
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::io::BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        f.write_all(MAGIC)?;
        f.write_all(&FORMAT_VERSION.to_le_bytes())?;
        f.write_all(&flags.to_le_bytes())?;
        f.write_all(&fingerprint.to_le_bytes())?;
        f.write_all(&len.to_le_bytes())?;
        f.write_all(&combine(&digests).to_le_bytes())?;
        for s in sections {
            f.write_all(s)?;
        }
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(DataError::io(path, e));
    }
    Ok(())
}

fn le_u64(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(w)
}

/// Plain-data column types whose zeroed vectors come straight from `alloc_zeroed` (fresh pages,
/// no memset pass before the read overwrites them).
trait Column: bytemuck::Pod {
    fn zeroed_vec(n: usize) -> Vec<Self>;
}

macro_rules! column {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn zeroed_vec(n: usize) -> Vec<Self> {
                vec![0 as $t; n]
            }
        }
    )*};
}
column!(u8, u32, u64, i64, f32);

/// Reads one section at `offset` into a vector of `T`; returns it with its xxh3.
fn read_section<T: Column>(
    file: &File,
    path: &Path,
    offset: u64,
    bytes: u64,
) -> Result<(Vec<T>, u64), DataError> {
    let size = std::mem::size_of::<T>() as u64;
    let mut v = T::zeroed_vec((bytes / size) as usize);
    let buf: &mut [u8] = bytemuck::cast_slice_mut(&mut v);
    file.read_exact_at(buf, offset).map_err(|_| invalid(path, "truncated payload"))?;
    let digest = xxh3_64(buf);
    Ok((v, digest))
}

/// Reads a cache file, checking magic, version, fingerprint, lengths, checksum and index ranges.
/// Sections are read and hashed in parallel.
pub fn read_cache(path: &Path, fingerprint: u64) -> Result<Dataset, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    let mut header = [0u8; HEADER_LEN + HEAD_LEN];
    file.read_exact_at(&mut header, 0).map_err(|_| invalid(path, "truncated header"))?;
    let u32_at = |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if &header[..8] != MAGIC {
        return Err(invalid(path, "not a reelvec cache file"));
    }
    if u32_at(8) != FORMAT_VERSION {
        return Err(invalid(
            path,
            format!("format version {} (this build reads {FORMAT_VERSION})", u32_at(8)),
        ));
    }
    let flags = u32_at(12);
    if le_u64(&header, 16) != fingerprint {
        return Err(invalid(path, "stale: the source changed"));
    }
    let payload_len = le_u64(&header, 24);
    let checksum = le_u64(&header, 32);
    if file_len != HEADER_LEN as u64 + payload_len {
        return Err(invalid(path, "truncated payload"));
    }
    let head = &header[HEADER_LEN..];
    let (n, n_users, n_movies) = (le_u64(head, 0), le_u64(head, 8), le_u64(head, 16));
    let (t_base, meta_len) = (le_u64(head, 24) as i64, le_u64(head, 32));
    let sizes = section_sizes(n, n_users, n_movies, flags, meta_len)
        .filter(|s| s.iter().try_fold(0u64, |a, &b| a.checked_add(b)) == Some(payload_len))
        .ok_or_else(|| invalid(path, "section lengths do not add up"))?;
    let mut offsets = [0u64; 8];
    let mut at = HEADER_LEN as u64;
    for (o, s) in offsets.iter_mut().zip(sizes) {
        *o = at;
        at += s;
    }
    let head_digest = xxh3_64(head);
    let f = &file;
    let in_range = |v: &[u32], limit: u64| v.iter().all(|&x| u64::from(x) < limit);
    let ((users_col, movies_col), ((ratings_col, times_col), raws_meta)) = rayon::join(
        || {
            rayon::join(
                || read_section::<u32>(f, path, offsets[1], sizes[1]),
                || read_section::<u32>(f, path, offsets[2], sizes[2]),
            )
        },
        || {
            rayon::join(
                || {
                    rayon::join(
                        || -> Result<(Vec<f32>, u64), DataError> {
                            if flags & FLAG_RATING_CODES != 0 {
                                let (codes, d) = read_section::<u8>(f, path, offsets[3], sizes[3])?;
                                Ok((codes.iter().map(|&c| f32::from(c) / 2.0).collect(), d))
                            } else {
                                read_section::<f32>(f, path, offsets[3], sizes[3])
                            }
                        },
                        || -> Result<(Vec<i64>, u64), DataError> {
                            if flags & FLAG_TIME_OFFSETS != 0 {
                                let (offs, d) = read_section::<u32>(f, path, offsets[4], sizes[4])?;
                                Ok((offs.iter().map(|&o| t_base + i64::from(o)).collect(), d))
                            } else {
                                read_section::<i64>(f, path, offsets[4], sizes[4])
                            }
                        },
                    )
                },
                || -> Result<_, DataError> {
                    let (users, du) = read_section::<u64>(f, path, offsets[5], sizes[5])?;
                    let (movies, dm) = read_section::<u64>(f, path, offsets[6], sizes[6])?;
                    let (meta, dmeta) = read_section::<u8>(f, path, offsets[7], sizes[7])?;
                    Ok((users, du, movies, dm, meta, dmeta))
                },
            )
        },
    );
    let (user, d_user) = users_col?;
    let (movie, d_movie) = movies_col?;
    let (rating, d_rating) = ratings_col?;
    let (timestamp, d_time) = times_col?;
    let (users, d_users, movies, d_movies, meta, d_meta) = raws_meta?;
    if combine(&[head_digest, d_user, d_movie, d_rating, d_time, d_users, d_movies, d_meta]) != checksum {
        return Err(invalid(path, "checksum mismatch (corrupted)"));
    }
    let (ok, (meta, (users, movies))) = rayon::join(
        || in_range(&user, n_users) && in_range(&movie, n_movies),
        || {
            rayon::join(
                || serde_json::from_slice::<Meta>(&meta),
                || rayon::join(|| IdMap::from_dense_order(users), || IdMap::from_dense_order(movies)),
            )
        },
    );
    if !ok {
        return Err(invalid(path, "index out of range"));
    }
    let meta = meta.map_err(|e| invalid(path, e.to_string()))?;
    let mut catalogue = meta.catalogue;
    catalogue.rebuild_index();
    let mut report = meta.report;
    report.from_cache = true;
    Ok(Dataset { ratings: Ratings { user, movie, rating, timestamp }, users, movies, catalogue, report })
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
}
