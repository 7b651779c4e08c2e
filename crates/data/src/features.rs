//! Item side features from the catalogue (LightFM's item features): for each movie the ids of its
//! genres, its release decade and, for layouts with tags, the most frequent tags it carries,
//! with one vocabulary of feature names (`genre:Comedy`, `decade:1990s`, `tag:dark comedy`).
//!
//! Vocabulary order (so ids are deterministic): the requested kinds in the order
//! genres, decade, tags; genres and decades sorted by name; tags by descending count, then by
//! name. A movie's ids are ascending and distinct. A movie with no feature has an empty list.

use std::collections::{BTreeSet, HashMap};

use crate::error::DataError;
use crate::types::Catalogue;

/// A kind of item feature, as named in `model.item_features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FeatureKind {
    /// The catalogue's genres (`genre:NAME`); ml-latest's "(no genres listed)" gives none.
    Genres,
    /// The release decade from the title year (`decade:1990s`); no year gives none.
    Decade,
    /// The `tags_top` most frequent tags (`tag:TEXT`, trimmed and lower-cased).
    Tags,
}

impl FeatureKind {
    /// Parses `genres`, `decade` or `tags`.
    pub fn parse(name: &str) -> Result<Self, DataError> {
        match name {
            "genres" => Ok(Self::Genres),
            "decade" => Ok(Self::Decade),
            "tags" => Ok(Self::Tags),
            other => Err(DataError::Invalid(format!(
                "unknown item feature `{other}` (expected genres, decade or tags)"
            ))),
        }
    }

    /// The name `model.item_features` spells (`genres`, `decade`, `tags`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Genres => "genres",
            Self::Decade => "decade",
            Self::Tags => "tags",
        }
    }
}

/// The decade of a year as a name: `1995 -> "1990s"`.
pub fn decade_name(year: u16) -> String {
    format!("{}s", year / 10 * 10)
}

/// Normalises a tag for counting: trimmed, lower-cased; `None` when empty.
pub fn normalise_tag(tag: &str) -> Option<String> {
    let t = tag.trim();
    (!t.is_empty()).then(|| t.to_lowercase())
}

/// Counts tag applications per normalised tag and returns the `top` most frequent with their
/// counts, by descending count then by name.
pub fn top_tags<'a>(tags: impl IntoIterator<Item = &'a str>, top: usize) -> Vec<(String, u64)> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    for t in tags {
        if let Some(t) = normalise_tag(t) {
            *counts.entry(t).or_default() += 1;
        }
    }
    let mut all: Vec<(String, u64)> = counts.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(top);
    all
}

/// Per-movie feature ids (CSR) and the feature vocabulary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFeatures {
    names: Vec<String>,
    offsets: Vec<u32>,
    ids: Vec<u32>,
}

impl ItemFeatures {
    /// Builds the table for the movies `movie_raw_ids` (dense order) from `catalogue`.
    ///
    /// Errors ([`DataError::Invalid`]): `tags` requested from a catalogue without tags, or a
    /// kind requested twice.
    pub fn build(
        movie_raw_ids: &[u64],
        catalogue: &Catalogue,
        kinds: &[FeatureKind],
        tags_top: usize,
    ) -> Result<Self, DataError> {
        let distinct: BTreeSet<FeatureKind> = kinds.iter().copied().collect();
        if distinct.len() != kinds.len() {
            return Err(DataError::Invalid("an item feature kind is listed twice".into()));
        }
        let movies: Vec<_> = movie_raw_ids.iter().map(|&raw| catalogue.get(raw)).collect();
        let mut names: Vec<String> = Vec::new();
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut add = |names: &mut Vec<String>, name: String| {
            index.entry(name.clone()).or_insert_with(|| {
                names.push(name);
                (names.len() - 1) as u32
            });
        };
        for kind in &distinct {
            match kind {
                FeatureKind::Genres => {
                    let set: BTreeSet<&str> = movies
                        .iter()
                        .flatten()
                        .flat_map(|m| m.genres.iter().map(String::as_str))
                        .filter(|g| *g != crate::catalogue::NO_GENRES)
                        .collect();
                    set.into_iter().for_each(|g| add(&mut names, format!("genre:{g}")));
                }
                FeatureKind::Decade => {
                    let set: BTreeSet<u16> =
                        movies.iter().flatten().filter_map(|m| m.year).map(|y| y / 10 * 10).collect();
                    set.into_iter().for_each(|d| add(&mut names, format!("decade:{d}s")));
                }
                FeatureKind::Tags => {
                    if catalogue.tags().is_empty() {
                        return Err(DataError::Invalid(
                            "item feature `tags` needs a layout with tags (tags.csv / tags.dat); this data has none"
                                .into(),
                        ));
                    }
                    for (t, _) in top_tags(catalogue.tags().iter().map(|t| t.tag.as_str()), tags_top) {
                        add(&mut names, format!("tag:{t}"));
                    }
                }
            }
        }
        let mut tags_of: HashMap<u64, BTreeSet<u32>> = HashMap::new();
        if distinct.contains(&FeatureKind::Tags) {
            for t in catalogue.tags() {
                if let Some(id) = normalise_tag(&t.tag).and_then(|n| index.get(&format!("tag:{n}"))) {
                    tags_of.entry(t.movie_raw).or_default().insert(*id);
                }
            }
        }
        let mut offsets = vec![0u32];
        let mut ids = Vec::new();
        for (&raw, m) in movie_raw_ids.iter().zip(&movies) {
            let mut own: BTreeSet<u32> = BTreeSet::new();
            if let Some(m) = m {
                if distinct.contains(&FeatureKind::Genres) {
                    own.extend(m.genres.iter().filter_map(|g| index.get(&format!("genre:{g}"))));
                }
                if distinct.contains(&FeatureKind::Decade) {
                    own.extend(m.year.and_then(|y| index.get(&format!("decade:{}", decade_name(y)))));
                }
            }
            if let Some(t) = tags_of.get(&raw) {
                own.extend(t);
            }
            ids.extend(own);
            offsets.push(ids.len() as u32);
        }
        Ok(Self { names, offsets, ids })
    }

    /// A table from explicit per-movie id lists (for synthetic data and checkpoints).
    ///
    /// Errors ([`DataError::Invalid`]): an id outside `names`, or a repeated id in one list.
    pub fn from_lists(names: Vec<String>, lists: &[Vec<u32>]) -> Result<Self, DataError> {
        let mut offsets = vec![0u32];
        let mut ids = Vec::new();
        for (m, list) in lists.iter().enumerate() {
            let set: BTreeSet<u32> = list.iter().copied().collect();
            if set.len() != list.len() {
                return Err(DataError::Invalid(format!("movie {m}: a feature id is repeated")));
            }
            if let Some(&bad) = set.iter().find(|&&f| f as usize >= names.len()) {
                return Err(DataError::Invalid(format!(
                    "movie {m}: feature id {bad} >= {} features",
                    names.len()
                )));
            }
            ids.extend(set);
            offsets.push(ids.len() as u32);
        }
        Ok(Self { names, offsets, ids })
    }

    /// Feature names, by id.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.names.len()
    }

    /// Number of movies.
    pub fn n_movies(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The feature ids of dense movie `movie` (ascending).
    pub fn of(&self, movie: usize) -> &[u32] {
        &self.ids[self.offsets[movie] as usize..self.offsets[movie + 1] as usize]
    }

    /// The per-movie lists (the inverse of [`ItemFeatures::from_lists`]).
    pub fn lists(&self) -> Vec<Vec<u32>> {
        (0..self.n_movies()).map(|m| self.of(m).to_vec()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::split_title_year;
    use crate::types::{Movie, Tag};

    fn movie(raw: u64, full: &str, genres: &[&str]) -> Movie {
        let (title, year) = split_title_year(full);
        Movie {
            raw_id: raw,
            title,
            full_title: full.into(),
            year,
            genres: genres.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn tag(movie: u64, t: &str) -> Tag {
        Tag { user_raw: 1, movie_raw: movie, tag: t.into(), timestamp: 0 }
    }

    #[test]
    fn decades_come_from_the_title_year() {
        assert_eq!(decade_name(1995), "1990s");
        assert_eq!(decade_name(2000), "2000s");
        assert_eq!(decade_name(1909), "1900s");
        for (full, want) in [
            ("Toy Story (1995)", Some("1990s")),
            ("Fawlty Towers (1975-1979)", Some("1970s")),
            ("Seven (a.k.a. Se7en) (1995)", Some("1990s")),
            ("No Year Here", None),
            ("Bad (19x5)", None),
        ] {
            assert_eq!(split_title_year(full).1.map(decade_name).as_deref(), want, "{full}");
        }
    }

    #[test]
    fn decade_property_holds_for_every_year() {
        for y in 1000u16..=2999 {
            let d = decade_name(y);
            let n: u16 = d.strip_suffix('s').unwrap().parse().unwrap();
            assert!(n <= y && y < n + 10 && n.is_multiple_of(10), "{y} -> {d}");
        }
    }

    #[test]
    fn tags_are_counted_normalised_and_ranked() {
        let got = top_tags(["Funny", " funny ", "dark", "", "Dark", "funny", "zany"], 2);
        assert_eq!(got, vec![("funny".to_string(), 3), ("dark".to_string(), 2)]);
        // Ties break by name.
        assert_eq!(top_tags(["b", "a"], 5), vec![("a".to_string(), 1), ("b".to_string(), 1)]);
    }

    #[test]
    fn table_holds_genres_decades_and_top_tags() {
        let cat = Catalogue::with_extras(
            vec![
                movie(10, "A (1995)", &["Comedy", "Drama"]),
                movie(20, "B", &["Drama"]),
                movie(30, "C (1982)", &[crate::catalogue::NO_GENRES]),
            ],
            vec![tag(10, "Funny"), tag(30, "funny"), tag(30, "rare"), tag(10, "funny")],
            vec![],
        );
        let kinds = [FeatureKind::Genres, FeatureKind::Decade, FeatureKind::Tags];
        // Movie 99 is not in the catalogue: no features.
        let f = ItemFeatures::build(&[10, 20, 30, 99], &cat, &kinds, 1).unwrap();
        assert_eq!(f.names(), ["genre:Comedy", "genre:Drama", "decade:1980s", "decade:1990s", "tag:funny"]);
        assert_eq!(f.lists(), vec![vec![0, 1, 3, 4], vec![1], vec![2, 4], vec![]]);
        let only = ItemFeatures::build(&[10, 20], &cat, &[FeatureKind::Decade], 1).unwrap();
        assert_eq!(only.lists(), vec![vec![0], vec![]]);
        assert_eq!(ItemFeatures::from_lists(only.names().to_vec(), &only.lists()).unwrap(), only);
    }

    #[test]
    fn bad_requests_are_errors() {
        let cat = Catalogue::new(vec![movie(1, "A (1995)", &["Drama"])]);
        assert!(FeatureKind::parse("genre").unwrap_err().to_string().contains("unknown item feature"));
        let e = ItemFeatures::build(&[1], &cat, &[FeatureKind::Tags], 5).unwrap_err();
        assert!(e.to_string().contains("tags"), "{e}");
        assert!(ItemFeatures::build(&[1], &cat, &[FeatureKind::Genres, FeatureKind::Genres], 5).is_err());
        assert!(ItemFeatures::from_lists(vec!["x".into()], &[vec![1]]).is_err());
        assert!(ItemFeatures::from_lists(vec!["x".into()], &[vec![0, 0]]).is_err());
    }
}
