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
/// its titles (the rule of every query, the CLI's and the Python package's). In a `--sequences`
/// run ([`RunInfo::tokens`](crate::RunInfo)) the argument is a token, matched exactly (as a
/// gensim key: no ids, no substrings, so the token `42` is never row 42).
pub fn resolve_in_run(info: &crate::RunInfo, query: &str) -> Result<u32, TitleMiss> {
    let q = query.trim();
    if info.tokens {
        return info.movie_titles.iter().position(|t| t == q).map(|i| i as u32).ok_or(TitleMiss::NotFound);
    }
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

    #[test]
    fn tokens_resolve_exactly_never_as_ids() {
        let mut info = crate::RunInfo::new(crate::ModelKind::Skipgram, serde_json::Value::Null, 1);
        info.movie_raw_ids = vec![1, 2, 3];
        info.movie_titles = vec!["2".into(), "the".into(), "theory".into()];
        // As a movie run: "2" is raw id 2 (row 1), "the" a substring of two titles.
        assert_eq!(resolve_in_run(&info, "2"), Ok(1));
        assert_eq!(resolve_in_run(&info, "theo"), Ok(2));
        info.tokens = true;
        assert_eq!(resolve_in_run(&info, "2"), Ok(0));
        assert_eq!(resolve_in_run(&info, " the "), Ok(1));
        assert_eq!(resolve_in_run(&info, "theo"), Err(TitleMiss::NotFound));
        assert_eq!(resolve_in_run(&info, "The"), Err(TitleMiss::NotFound));
    }
}
