//! The in-memory dataset: columnar ratings, raw-id <-> dense-index maps and the movie catalogue.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, ParseProblem};
use crate::parse::RawRatings;

/// The path [`Dataset::from_triples`] errors name.
const TRIPLES: &str = "<triples>";

/// Ratings as columns. Row `r` is `(user[r], movie[r], rating[r], timestamp[r])`, where user and
/// movie are dense indices into the dataset's [`IdMap`]s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ratings {
    /// Dense user index, `0..users.len()`.
    pub user: Vec<u32>,
    /// Dense movie index, `0..movies.len()`.
    pub movie: Vec<u32>,
    /// The rating as given in the source (stars).
    pub rating: Vec<f32>,
    /// Seconds since the Unix epoch (0 when the source has none).
    pub timestamp: Vec<i64>,
}

impl Ratings {
    /// Number of rating rows.
    pub fn len(&self) -> usize {
        self.user.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }
}

/// A bijection between raw ids (as written in the source files) and dense indices `0..n`.
///
/// The raw -> dense direction is a direct table (`table[raw]`, `u32::MAX` for absent ids) when
/// the raw ids are small and dense enough (every MovieLens release: ids `1..~200k`), otherwise a
/// hash map. Two maps are equal when their raw ids in dense order are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IdMap {
    dense_to_raw: Vec<u64>,
    #[serde(skip)]
    raw_to_dense: RawIndex,
}

/// The raw -> dense direction of an [`IdMap`].
#[derive(Debug, Clone)]
enum RawIndex {
    /// `table[raw]` is the dense index (`u32::MAX`: absent).
    Direct(Vec<u32>),
    /// Sparse or huge raw ids.
    Hash(HashMap<u64, u32>),
}

impl Default for RawIndex {
    fn default() -> Self {
        RawIndex::Direct(Vec::new())
    }
}

/// Largest direct table (entries) for `n` ids: a few times `n`, never above 2^28.
fn direct_limit(n: usize) -> u64 {
    ((4 * n as u64) + 4096).min(1 << 28)
}

impl PartialEq for IdMap {
    fn eq(&self, other: &Self) -> bool {
        self.dense_to_raw == other.dense_to_raw
    }
}

impl IdMap {
    /// Builds a map from raw ids in dense order (index i maps to `raws[i]`).
    ///
    /// Duplicate raw ids keep their first index.
    pub fn from_dense_order(raws: Vec<u64>) -> Self {
        let max = raws.iter().copied().max().unwrap_or(0);
        let raw_to_dense = if max < direct_limit(raws.len()) {
            let mut table = vec![u32::MAX; if raws.is_empty() { 0 } else { max as usize + 1 }];
            for (i, &raw) in raws.iter().enumerate().rev() {
                table[raw as usize] = i as u32;
            }
            RawIndex::Direct(table)
        } else {
            let mut map = HashMap::with_capacity(raws.len());
            for (i, &raw) in raws.iter().enumerate() {
                map.entry(raw).or_insert(i as u32);
            }
            RawIndex::Hash(map)
        };
        Self { dense_to_raw: raws, raw_to_dense }
    }

    /// Returns the dense index of `raw`, inserting it at the end when new.
    pub fn intern(&mut self, raw: u64) -> u32 {
        let next = self.dense_to_raw.len() as u32;
        let limit = direct_limit(self.dense_to_raw.len() + 1);
        let idx = match &mut self.raw_to_dense {
            RawIndex::Direct(table) if raw < limit => {
                if raw as usize >= table.len() {
                    table.resize(raw as usize + 1, u32::MAX);
                }
                let slot = &mut table[raw as usize];
                if *slot == u32::MAX {
                    *slot = next;
                }
                *slot
            }
            RawIndex::Direct(_) => {
                let mut map: HashMap<u64, u32> = HashMap::with_capacity(self.dense_to_raw.len() + 1);
                for (i, &r) in self.dense_to_raw.iter().enumerate() {
                    map.entry(r).or_insert(i as u32);
                }
                let idx = *map.entry(raw).or_insert(next);
                self.raw_to_dense = RawIndex::Hash(map);
                idx
            }
            RawIndex::Hash(map) => *map.entry(raw).or_insert(next),
        };
        if idx == next {
            self.dense_to_raw.push(raw);
        }
        idx
    }

    /// Dense index of a raw id.
    pub fn dense(&self, raw: u64) -> Option<u32> {
        match &self.raw_to_dense {
            RawIndex::Direct(table) => {
                usize::try_from(raw).ok().and_then(|r| table.get(r)).copied().filter(|&d| d != u32::MAX)
            }
            RawIndex::Hash(map) => map.get(&raw).copied(),
        }
    }

    /// Raw id of a dense index.
    pub fn raw(&self, dense: u32) -> Option<u64> {
        self.dense_to_raw.get(dense as usize).copied()
    }

    /// Raw ids in dense order.
    pub fn raws(&self) -> &[u64] {
        &self.dense_to_raw
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.dense_to_raw.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.dense_to_raw.is_empty()
    }

    /// Rebuilds the reverse map (after deserialising).
    pub fn rebuild_index(&mut self) {
        *self = Self::from_dense_order(std::mem::take(&mut self.dense_to_raw));
    }
}

/// One catalogue entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Movie {
    /// The movie id as written in the source.
    pub raw_id: u64,
    /// Title without the trailing "(year)".
    pub title: String,
    /// Title exactly as in the source, e.g. "Toy Story (1995)".
    pub full_title: String,
    /// Release year parsed from the title or release date.
    pub year: Option<u16>,
    /// Genre names.
    pub genres: Vec<String>,
}

/// A user's free-text tag on a movie (ml-10m `tags.dat`, ml-latest `tags.csv`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    /// Raw user id.
    pub user_raw: u64,
    /// Raw movie id.
    pub movie_raw: u64,
    /// The tag text.
    pub tag: String,
    /// Seconds since the Unix epoch.
    pub timestamp: i64,
}

/// External ids of a movie (ml-latest `links.csv`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// Raw movie id.
    pub movie_raw: u64,
    /// IMDb id as written (digits with leading zeros, e.g. "0114709").
    pub imdb_id: String,
    /// TMDb id, when given.
    pub tmdb_id: Option<u64>,
}

/// The movie catalogue, in source order, searchable by raw id; plus tags and links when the
/// source has them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalogue {
    movies: Vec<Movie>,
    #[serde(skip)]
    by_raw_id: HashMap<u64, usize>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    links: Vec<Link>,
}

impl Catalogue {
    /// Builds a catalogue; later entries with a repeated raw id replace earlier ones.
    pub fn new(movies: Vec<Movie>) -> Self {
        let mut cat = Self { movies, by_raw_id: HashMap::new(), tags: Vec::new(), links: Vec::new() };
        cat.rebuild_index();
        cat
    }

    /// Builds a catalogue with tags and links.
    pub fn with_extras(movies: Vec<Movie>, tags: Vec<Tag>, links: Vec<Link>) -> Self {
        let mut cat = Self::new(movies);
        cat.tags = tags;
        cat.links = links;
        cat
    }

    /// Tags in source order (empty when the source has none).
    pub fn tags(&self) -> &[Tag] {
        &self.tags
    }

    /// Links in source order (empty when the source has none).
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// Rebuilds the raw-id index (after deserialising).
    pub fn rebuild_index(&mut self) {
        self.by_raw_id = self.movies.iter().enumerate().map(|(i, m)| (m.raw_id, i)).collect();
    }

    /// Looks a movie up by raw id.
    pub fn get(&self, raw_id: u64) -> Option<&Movie> {
        self.by_raw_id.get(&raw_id).map(|&i| &self.movies[i])
    }

    /// All movies in source order.
    pub fn movies(&self) -> &[Movie] {
        &self.movies
    }

    /// Number of catalogue entries.
    pub fn len(&self) -> usize {
        self.movies.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.movies.is_empty()
    }
}

/// What a load saw besides the rows it kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// The layout read ("ml-100k", "ml-latest", ...; empty for generated data).
    #[serde(default)]
    pub layout: String,
    /// True when the data came from the binary cache.
    #[serde(default)]
    pub from_cache: bool,
    /// Rows read from the ratings file.
    pub rows_read: u64,
    /// Duplicate (user, movie) rows dropped (the last occurrence is kept).
    pub duplicates_dropped: u64,
    /// Movies rated but absent from the catalogue.
    pub rated_not_in_catalogue: u64,
    /// Catalogue movies never rated.
    pub catalogue_never_rated: u64,
}

/// A loaded dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Columnar ratings with dense indices.
    pub ratings: Ratings,
    /// Dense user index <-> raw user id.
    pub users: IdMap,
    /// Dense movie index <-> raw movie id.
    pub movies: IdMap,
    /// Titles, years, genres.
    pub catalogue: Catalogue,
    /// Counts from the load.
    pub report: LoadReport,
}

impl Dataset {
    /// Builds a dataset from rating triples held in memory, with the loaders' rules: raw ids are
    /// interned in order of first appearance, a repeated (user, movie) pair keeps its last row,
    /// and every rating must be finite. Without `timestamps` every row has time 0 (so
    /// time-ordered sequences keep row order). The catalogue is empty (titles read
    /// "movie RAW_ID"); `report.layout` is `"triples"`.
    ///
    /// Errors: slices of unequal lengths or no rows ([`DataError::Invalid`],
    /// [`DataError::Empty`]); a NaN or infinite rating ([`DataError::Parse`] with the path
    /// `<triples>` and the 1-based row number as its line).
    ///
    /// ```
    /// use reelvec_data::Dataset;
    /// let ds = Dataset::from_triples(&[7, 7, 3], &[100, 200, 100], &[4.0, 3.5, 5.0], None)?;
    /// assert_eq!((ds.users.len(), ds.movies.len(), ds.ratings.len()), (2, 2, 3));
    /// assert_eq!(ds.users.raws(), &[7, 3]);
    /// # Ok::<(), reelvec_data::DataError>(())
    /// ```
    pub fn from_triples(
        users: &[u64],
        movies: &[u64],
        ratings: &[f32],
        timestamps: Option<&[i64]>,
    ) -> Result<Dataset, DataError> {
        let n = users.len();
        if movies.len() != n || ratings.len() != n || timestamps.is_some_and(|t| t.len() != n) {
            return Err(DataError::Invalid(format!(
                "from_triples needs slices of equal length: {n} users, {} movies, {} ratings{}",
                movies.len(),
                ratings.len(),
                timestamps.map(|t| format!(", {} timestamps", t.len())).unwrap_or_default()
            )));
        }
        if n == 0 {
            return Err(DataError::Empty { path: TRIPLES.into(), context: "in the triples given".into() });
        }
        if u32::try_from(n).is_err() {
            return Err(DataError::Invalid(format!("from_triples takes at most {} rows, got {n}", u32::MAX)));
        }
        if let Some(row) = ratings.iter().position(|r| !r.is_finite()) {
            let problem = ParseProblem::NotFinite { text: ratings[row].to_string() };
            return Err(DataError::parse(TRIPLES, row as u64 + 1, problem));
        }
        let raw = RawRatings {
            user: users.to_vec(),
            movie: movies.to_vec(),
            rating: ratings.to_vec(),
            timestamp: timestamps.map_or_else(|| vec![0; n], <[i64]>::to_vec),
        };
        Ok(crate::assemble::assemble(vec![raw], Catalogue::default(), false, "triples"))
    }

    /// The dataset with a catalogue of `(raw movie id, full title)` pairs (e.g. "Toy Story
    /// (1995)"; the year is split off as the loaders do), for triples that came without one.
    /// A repeated id keeps its last title.
    pub fn with_titles(mut self, titles: &[(u64, String)]) -> Dataset {
        let movies = titles
            .iter()
            .map(|(raw_id, full)| {
                let (title, year) = crate::catalogue::split_title_year(full);
                Movie { raw_id: *raw_id, title, full_title: full.clone(), year, genres: Vec::new() }
            })
            .collect();
        self.catalogue = Catalogue::new(movies);
        self
    }

    /// The catalogue entry of a dense movie index, when the catalogue has it.
    pub fn movie_info(&self, dense: u32) -> Option<&Movie> {
        self.movies.raw(dense).and_then(|raw| self.catalogue.get(raw))
    }

    /// A display title for a dense movie index ("movie 123" when not in the catalogue).
    pub fn title(&self, dense: u32) -> String {
        match self.movie_info(dense) {
            Some(m) => m.full_title.clone(),
            None => format!("movie {}", self.movies.raw(dense).unwrap_or(u64::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_triples_interns_in_order_and_keeps_the_last_duplicate() {
        let ds = Dataset::from_triples(
            &[10, 20, 10, 10, 30],
            &[5, 5, 7, 5, 1 << 40],
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            Some(&[1, 2, 3, 4, 5]),
        )
        .unwrap();
        assert_eq!(ds.users.raws(), &[10, 20, 30]);
        assert_eq!(ds.movies.raws(), &[5, 7, 1 << 40]);
        assert_eq!(ds.report.duplicates_dropped, 1);
        assert_eq!(ds.report.layout, "triples");
        assert_eq!(ds.ratings.rating, vec![2.0, 3.0, 4.0, 5.0]);
        assert_eq!(ds.ratings.timestamp, vec![2, 3, 4, 5]);
        let no_time = Dataset::from_triples(&[1, 2], &[3, 3], &[1.0, 2.0], None).unwrap();
        assert_eq!(no_time.ratings.timestamp, vec![0, 0]);
    }

    #[test]
    fn from_triples_refuses_bad_input_with_the_row() {
        let err = Dataset::from_triples(&[1, 2], &[3], &[1.0, 2.0], None).unwrap_err();
        assert!(matches!(err, DataError::Invalid(_)), "{err}");
        let err = Dataset::from_triples(&[1, 2], &[3, 4], &[1.0, 2.0], Some(&[0])).unwrap_err();
        assert!(err.to_string().contains("1 timestamps"), "{err}");
        let err = Dataset::from_triples(&[1, 2, 3], &[3, 4, 5], &[1.0, 2.0, f32::NAN], None).unwrap_err();
        assert!(matches!(err, DataError::Parse { line: 3, .. }), "{err}");
        assert!(err.to_string().starts_with("<triples>:3: rating is not a finite"), "{err}");
        let err = Dataset::from_triples(&[], &[], &[], None).unwrap_err();
        assert!(matches!(err, DataError::Empty { .. }), "{err}");
    }

    #[test]
    fn id_maps_agree_between_direct_table_and_hash_map() {
        // Small ids: direct table; one huge id: hash map. Duplicates keep the first index.
        for raws in [vec![5u64, 1, 9, 1, 0], vec![5, 1, 1 << 40, 1, 0]] {
            let map = IdMap::from_dense_order(raws.clone());
            assert!(matches!(map.raw_to_dense, RawIndex::Direct(_)) == (raws[2] == 9));
            assert_eq!(map.dense(5), Some(0));
            assert_eq!(map.dense(1), Some(1));
            assert_eq!(map.dense(raws[2]), Some(2));
            assert_eq!(map.dense(0), Some(4));
            assert_eq!(map.dense(2), None);
            assert_eq!(map.dense(u64::MAX), None);
            assert_eq!(map.raw(3), Some(1));
            assert_eq!(map.len(), 5);
        }
        // Interning grows the table, then switches to a hash map at a far-away id.
        let mut map = IdMap::default();
        assert_eq!(map.dense(0), None);
        assert_eq!((map.intern(3), map.intern(100), map.intern(3)), (0, 1, 0));
        assert!(matches!(map.raw_to_dense, RawIndex::Direct(_)));
        assert_eq!(map.intern(1 << 35), 2);
        assert!(matches!(map.raw_to_dense, RawIndex::Hash(_)));
        assert_eq!((map.intern(100), map.intern(7)), (1, 3));
        assert_eq!(map.raws(), &[3, 100, 1 << 35, 7]);
        assert_eq!(map.dense(1 << 35), Some(2));
        // Equality ignores how the reverse direction is stored.
        assert_eq!(map, IdMap::from_dense_order(vec![3, 100, 1 << 35, 7]));
        let mut rebuilt = IdMap { dense_to_raw: vec![3, 100], raw_to_dense: RawIndex::default() };
        rebuilt.rebuild_index();
        assert_eq!(rebuilt.dense(100), Some(1));
    }
}
