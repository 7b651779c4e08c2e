//! [`load`]: reads a data set of any layout (detected or forced), through the binary cache when
//! asked.

use std::path::Path;

use crate::assemble::assemble;
use crate::catalogue::{self, read_file, ML100K_GENRES};
use crate::error::{DataError, ParseProblem};
use crate::layout::{GenericColumns, Layout, LoadOptions};
use crate::parse::{parse_ratings, Delim, RowSpec};
use crate::types::{Catalogue, Dataset};

/// Loads a data set.
///
/// `path` is a data set directory (`ml-100k/`, `ml-1m/`, `ml-latest-small/`, ...), a ratings file
/// inside one, or, for [`Layout::Generic`], a delimited file. The layout is detected unless
/// `opts.layout` forces one. With `opts.use_cache` a binary cache is read when it is valid and
/// written after a parse (see [`crate::cache`]); a cache that cannot be written is skipped
/// silently.
///
/// Users and movies get dense indices in order of first appearance in the ratings file.
/// Duplicate (user, movie) rows keep the last and are counted in [`crate::LoadReport`].
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Dataset, DataError> {
    let (layout, target) = match opts.layout {
        Some(layout) => (layout, layout.resolve(path)?),
        None => Layout::detect(path)?,
    };
    let generic = opts.generic.unwrap_or_default();
    if opts.use_cache {
        return crate::cache::load_cached(&target, layout, &generic, || {
            load_uncached(&target, layout, &generic)
        });
    }
    load_uncached(&target, layout, &generic)
}

/// Parses the source files of `layout` at `target` (a directory, or the generic file).
pub(crate) fn load_uncached(
    target: &Path,
    layout: Layout,
    generic: &GenericColumns,
) -> Result<Dataset, DataError> {
    let range = layout.rating_range();
    let dat = RowSpec {
        delim: Delim::DoubleColon,
        n_fields: Some(4),
        user: 0,
        movie: 1,
        rating: 2,
        timestamp: Some(3),
        rating_range: range,
    };
    let (ratings_path, spec, header, movies, tags, links) = match layout {
        Layout::Ml100k => {
            let spec = RowSpec { delim: Delim::Byte(b'\t'), ..dat };
            let genres = target.join("u.genre");
            let genre_names: Vec<String> = if genres.is_file() {
                catalogue::read_u_genre(&genres)?
            } else {
                ML100K_GENRES.iter().map(|s| s.to_string()).collect()
            };
            let item = target.join("u.item");
            let movies =
                if item.is_file() { Some(catalogue::read_u_item(&item, &genre_names)?) } else { None };
            (target.join("u.data"), spec, None, movies, Vec::new(), Vec::new())
        }
        Layout::Ml1m | Layout::Ml10m => {
            let movies_path = target.join("movies.dat");
            let movies = if movies_path.is_file() {
                Some(catalogue::read_movies_dat(&movies_path, layout == Layout::Ml1m)?)
            } else {
                None
            };
            let tags_path = target.join("tags.dat");
            let tags = if tags_path.is_file() { catalogue::read_tags_dat(&tags_path)? } else { Vec::new() };
            (target.join("ratings.dat"), dat, None, movies, tags, Vec::new())
        }
        Layout::MlLatest => {
            let spec = RowSpec { delim: Delim::Byte(b','), ..dat };
            let opt = |name: &str| Some(target.join(name)).filter(|p| p.is_file());
            let movies = opt("movies.csv").map(|p| catalogue::read_movies_csv(&p)).transpose()?;
            let tags = opt("tags.csv").map(|p| catalogue::read_tags_csv(&p)).transpose()?.unwrap_or_default();
            let links =
                opt("links.csv").map(|p| catalogue::read_links_csv(&p)).transpose()?.unwrap_or_default();
            let header = Some("userId,movieId,rating,timestamp");
            let (csv, pq) = (target.join("ratings.csv"), target.join("ratings.parquet"));
            if !csv.is_file() && pq.is_file() {
                let raw = crate::parquet_ratings::read(&pq, crate::parquet_ratings::MOVIELENS, range)?;
                return finish(vec![raw], pq, movies, tags, links, layout);
            }
            (csv, spec, header, movies, tags, links)
        }
        Layout::Generic if crate::parquet_ratings::is_parquet(target) => {
            let g = generic;
            let cols = crate::parquet_ratings::Columns::Indexed(g.user, g.movie, g.rating, g.timestamp);
            let raw = crate::parquet_ratings::read(target, cols, None)?;
            return finish(vec![raw], target.to_path_buf(), None, Vec::new(), Vec::new(), layout);
        }
        Layout::Generic => {
            let spec = RowSpec {
                delim: Delim::Byte(generic.delimiter),
                n_fields: None,
                user: generic.user,
                movie: generic.movie,
                rating: generic.rating,
                timestamp: generic.timestamp,
                rating_range: None,
            };
            (target.to_path_buf(), spec, None, None, Vec::new(), Vec::new())
        }
    };
    let bytes = read_file(&ratings_path)?;
    let skip_header = header.is_some() || (layout == Layout::Generic && generic.has_header);
    let (start, first_line) = if skip_header {
        let end = memchr::memchr(b'\n', &bytes).map_or(bytes.len(), |i| i + 1);
        if let Some(expected) = header {
            let found = String::from_utf8_lossy(&bytes[..end]);
            let found = found.trim_start_matches('\u{feff}').trim_end();
            if found.replace(' ', "") != expected {
                return Err(DataError::parse(
                    &ratings_path,
                    1,
                    ParseProblem::BadHeader {
                        expected: expected.into(),
                        found: found.chars().take(80).collect(),
                    },
                ));
            }
        }
        (end, 2)
    } else {
        (0, 1)
    };
    let raw = parse_ratings(&ratings_path, &bytes, start, first_line, &spec)?;
    drop(bytes);
    finish(raw, ratings_path, movies, tags, links, layout)
}

/// Refuses a file without ratings, then assembles the data set (CSV and Parquet alike).
fn finish(
    raw: Vec<crate::parse::RawRatings>,
    ratings_path: std::path::PathBuf,
    movies: Option<Vec<crate::Movie>>,
    tags: Vec<crate::Tag>,
    links: Vec<crate::Link>,
    layout: Layout,
) -> Result<Dataset, DataError> {
    if raw.iter().all(|p| p.len() == 0) {
        return Err(DataError::Empty { path: ratings_path, context: "in the file".into() });
    }
    let has_catalogue = movies.is_some();
    let catalogue = Catalogue::with_extras(movies.unwrap_or_default(), tags, links);
    Ok(assemble(raw, catalogue, has_catalogue, layout.name()))
}
