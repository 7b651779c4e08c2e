//! MovieLens layouts: names, the files each holds, detection from a path, and load options.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// A file layout that [`crate::load`] can read and [`crate::write`] can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Layout {
    /// ml-100k: `u.data` (tab-separated user, item, rating 1..5, timestamp), `u.item` (pipe-separated
    /// Latin-1, 24 fields), `u.genre`; the fold files `u1..u5`, `ua`, `ub` `.base`/`.test`.
    Ml100k,
    /// ml-1m: `ratings.dat` (`UserID::MovieID::Rating::Timestamp`, whole stars 1..5), `movies.dat`
    /// (`MovieID::Title::Genres`, Latin-1), `users.dat`.
    Ml1m,
    /// ml-10m: `ratings.dat` (half stars 0.5..5), `movies.dat` (UTF-8), `tags.dat`; no `users.dat`.
    Ml10m,
    /// ml-latest-small, ml-20m, ml-25m, ml-32m: `ratings.csv` (`userId,movieId,rating,timestamp`;
    /// or `ratings.parquet` with those columns, read by name when there is no `ratings.csv`),
    /// `movies.csv` (`movieId,title,genres`, RFC-4180 quoting), optional `tags.csv`, `links.csv`.
    MlLatest,
    /// One delimited file (or a `.parquet` file) whose columns are given by [`GenericColumns`].
    Generic,
}

impl Layout {
    /// Every layout, in the order of this enum.
    pub const ALL: [Layout; 5] =
        [Layout::Ml100k, Layout::Ml1m, Layout::Ml10m, Layout::MlLatest, Layout::Generic];

    /// The canonical name ("ml-100k", "ml-1m", "ml-10m", "ml-latest", "generic").
    pub fn name(self) -> &'static str {
        match self {
            Layout::Ml100k => "ml-100k",
            Layout::Ml1m => "ml-1m",
            Layout::Ml10m => "ml-10m",
            Layout::MlLatest => "ml-latest",
            Layout::Generic => "generic",
        }
    }

    /// The ratings file name inside a data set directory (`ratings.csv` for the generic writer).
    pub fn ratings_file(self) -> &'static str {
        match self {
            Layout::Ml100k => "u.data",
            Layout::Ml1m | Layout::Ml10m => "ratings.dat",
            Layout::MlLatest => "ratings.csv",
            Layout::Generic => "ratings.txt",
        }
    }

    /// The rating range the layout allows, inclusive (`None`: any finite value).
    pub fn rating_range(self) -> Option<(f32, f32)> {
        match self {
            Layout::Ml100k | Layout::Ml1m => Some((1.0, 5.0)),
            Layout::Ml10m | Layout::MlLatest => Some((0.5, 5.0)),
            Layout::Generic => None,
        }
    }

    /// True when the layout holds whole stars only (writers round half stars).
    pub fn whole_stars(self) -> bool {
        matches!(self, Layout::Ml100k | Layout::Ml1m)
    }

    /// Detects the layout of `path` (a data set directory, or a ratings file inside one).
    ///
    /// Returns the layout and the directory (or, for [`Layout::Generic`], the file) to read.
    /// A plain file that is not a known ratings file is generic.
    pub fn detect(path: &Path) -> Result<(Layout, PathBuf), DataError> {
        let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
        if meta.is_file() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
            return match name {
                "u.data" => Ok((Layout::Ml100k, dir)),
                "ratings.dat" => Ok((Self::dat_flavour(&dir), dir)),
                "ratings.csv" | "ratings.parquet" => Ok((Layout::MlLatest, dir)),
                _ => Ok((Layout::Generic, path.to_path_buf())),
            };
        }
        if path.join("u.data").is_file() {
            Ok((Layout::Ml100k, path.to_path_buf()))
        } else if path.join("ratings.dat").is_file() {
            Ok((Self::dat_flavour(path), path.to_path_buf()))
        } else if path.join("ratings.csv").is_file() || path.join("ratings.parquet").is_file() {
            Ok((Layout::MlLatest, path.to_path_buf()))
        } else {
            Err(DataError::UnknownLayout {
                path: path.to_path_buf(),
                reason: "no u.data, ratings.dat, ratings.csv or ratings.parquet in this directory".into(),
            })
        }
    }

    /// ml-1m ships `users.dat`; ml-10m does not.
    fn dat_flavour(dir: &Path) -> Layout {
        if dir.join("users.dat").is_file() {
            Layout::Ml1m
        } else {
            Layout::Ml10m
        }
    }

    /// Resolves `path` for a layout forced by the user: a directory, or a file inside one.
    pub fn resolve(self, path: &Path) -> Result<PathBuf, DataError> {
        let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
        match self {
            Layout::Generic if meta.is_dir() => Err(DataError::UnknownLayout {
                path: path.to_path_buf(),
                reason: "the generic layout reads one file, not a directory".into(),
            }),
            Layout::Generic => Ok(path.to_path_buf()),
            _ if meta.is_file() => Ok(path.parent().map(Path::to_path_buf).unwrap_or_else(|| ".".into())),
            _ => Ok(path.to_path_buf()),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = DataError;

    /// Accepts the canonical names and the data set names that share a layout
    /// ("ml-latest-small", "ml-20m", "ml-25m", "ml-32m", "csv" are all [`Layout::MlLatest`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "ml-100k" | "ml100k" | "100k" => Ok(Layout::Ml100k),
            "ml-1m" | "ml1m" | "1m" => Ok(Layout::Ml1m),
            "ml-10m" | "ml10m" | "10m" => Ok(Layout::Ml10m),
            "ml-latest" | "ml-latest-small" | "ml-20m" | "ml-25m" | "ml-32m" | "latest" | "csv" => {
                Ok(Layout::MlLatest)
            }
            "generic" => Ok(Layout::Generic),
            other => Err(DataError::UnknownLayout {
                path: PathBuf::from(other),
                reason: "not a layout name (ml-100k, ml-1m, ml-10m, ml-latest, generic)".into(),
            }),
        }
    }
}

/// Which columns of a generic delimited file hold what (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenericColumns {
    /// Column of the raw user id.
    pub user: usize,
    /// Column of the raw movie id.
    pub movie: usize,
    /// Column of the rating (any finite number).
    pub rating: usize,
    /// Column of the Unix timestamp, if any (0 is stored when absent).
    pub timestamp: Option<usize>,
    /// Field separator (one byte).
    pub delimiter: u8,
    /// Skip the first line.
    pub has_header: bool,
}

impl Default for GenericColumns {
    /// `user,movie,rating,timestamp` with commas and no header.
    fn default() -> Self {
        Self { user: 0, movie: 1, rating: 2, timestamp: Some(3), delimiter: b',', has_header: false }
    }
}

impl GenericColumns {
    /// The columns of the generic file `path` from the entries of `--columns` (Python's
    /// `columns=`): three or four 0-based positions (`0,1,2,3`), or three or four header names
    /// (`userId,movieId,rating,timestamp`) looked up in the file's header — a Parquet file's
    /// schema, else its first line split at `delimiter` (which then is a header line:
    /// `has_header` is set). A name the header lacks is a bad header at line 1, as for
    /// `ratings.parquet`; a wrong count of entries is [`DataError::Invalid`].
    pub fn from_spec(
        path: &Path,
        entries: &[&str],
        delimiter: u8,
        has_header: bool,
    ) -> Result<Self, DataError> {
        let positions: Option<Vec<usize>> = entries.iter().map(|e| e.trim().parse().ok()).collect();
        let (cols, has_header) = match positions {
            Some(p) => (p, has_header),
            None => {
                let header = header_names(path, delimiter)?;
                let find = |name: &&str| {
                    let name = name.trim();
                    header.iter().position(|h| h == name).ok_or_else(|| {
                        DataError::parse(
                            path,
                            1,
                            crate::ParseProblem::BadHeader {
                                expected: format!("a column named {name:?}"),
                                found: header.join(","),
                            },
                        )
                    })
                };
                let cols = entries.iter().map(find).collect::<Result<Vec<usize>, _>>()?;
                (cols, has_header || !crate::parquet_ratings::is_parquet(path))
            }
        };
        let (user, movie, rating, timestamp) = match *cols.as_slice() {
            [u, m, r] => (u, m, r, None),
            [u, m, r, t] => (u, m, r, Some(t)),
            _ => {
                return Err(DataError::Invalid(format!(
                    "columns {entries:?}: expected 3 or 4 column positions or names (user, movie, rating[, timestamp])"
                )))
            }
        };
        Ok(GenericColumns { user, movie, rating, timestamp, delimiter, has_header })
    }
}

/// The column names of a generic file: a Parquet file's schema, else the fields of its first
/// line split at `delimiter` (trimmed, surrounding double quotes removed).
fn header_names(path: &Path, delimiter: u8) -> Result<Vec<String>, DataError> {
    if crate::parquet_ratings::is_parquet(path) {
        return crate::parquet_ratings::column_names(path);
    }
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut line = Vec::new();
    std::io::BufReader::new(file).read_until(b'\n', &mut line).map_err(|e| DataError::io(path, e))?;
    let text = std::str::from_utf8(&line)
        .map_err(|_| DataError::parse(path, 1, crate::ParseProblem::InvalidUtf8))?;
    let delimiter = char::from(delimiter);
    Ok(text
        .trim_end_matches(['\r', '\n'])
        .split(delimiter)
        .map(|f| f.trim().trim_matches('"').to_string())
        .collect())
}

/// How [`crate::load`] reads a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Force a layout instead of detecting it.
    pub layout: Option<Layout>,
    /// Read and write the binary cache (see [`crate::cache`]).
    pub use_cache: bool,
    /// Columns of a generic file (defaults to [`GenericColumns::default`]).
    pub generic: Option<GenericColumns>,
}

impl Default for LoadOptions {
    /// Detect the layout, use the cache.
    fn default() -> Self {
        Self { layout: None, use_cache: true, generic: None }
    }
}
