//! Title matching shared by every query that names movies (the pipelines' configured titles,
//! and the CLI's `similar`, `middle`, `recommend --rated/--watched` through its
//! `resolve_movie`): an exact title first, else a unique case-insensitive substring; several
//! matches are a [`TitleMiss::Ambiguous`] the caller lists.

/// Why a title query did not resolve to one movie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TitleMiss {
    /// Nothing matches.
    NotFound,
    /// Several movies match (dense indices, in index order).
    Ambiguous(Vec<u32>),
}

/// The index in `titles` of the movie named by `query`: the unique exact match, else the unique
/// title containing `query` case-insensitively.
pub fn resolve(titles: &[String], query: &str) -> Result<u32, TitleMiss> {
    let q = query.trim();
    let exact: Vec<u32> = (0..titles.len() as u32).filter(|&i| titles[i as usize] == q).collect();
    match exact.len() {
        1 => return Ok(exact[0]),
        0 => {}
        _ => return Err(TitleMiss::Ambiguous(exact)),
    }
    let needle = q.to_lowercase();
    let partial: Vec<u32> =
        (0..titles.len() as u32).filter(|&i| titles[i as usize].to_lowercase().contains(&needle)).collect();
    match partial.len() {
        0 => Err(TitleMiss::NotFound),
        1 => Ok(partial[0]),
        _ => Err(TitleMiss::Ambiguous(partial)),
    }
}

/// The movie a query argument names in a run: a raw movie id of the run, else [`resolve`] over
/// its titles (the rule of every query, the CLI's and the Python package's).
pub fn resolve_in_run(info: &crate::RunInfo, query: &str) -> Result<u32, TitleMiss> {
    let q = query.trim();
    match q.parse::<u64>().ok().and_then(|raw| info.movie_dense(raw)) {
        Some(dense) => Ok(dense),
        None => resolve(&info.movie_titles, q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_then_substring_then_ambiguous() {
        let t: Vec<String> = ["Star Wars (1977)", "Star Wars: Special (1997)", "Heat (1995)"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(resolve(&t, "Star Wars (1977)"), Ok(0));
        assert_eq!(resolve(&t, "heat"), Ok(2));
        assert_eq!(resolve(&t, "star wars"), Err(TitleMiss::Ambiguous(vec![0, 1])));
        assert_eq!(resolve(&t, "Alien"), Err(TitleMiss::NotFound));
    }
}
