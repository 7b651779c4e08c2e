//! Cosine similarity, nearest neighbours (the query excluded), the strongest pairs of a
//! similarity matrix (the notebook's "strong correlations") and the extremes of a vector (the
//! best and worst films by learned bias).
//!
//! Orders follow [`crate::ranking`]: higher value first, ties by lower index (pairs by `(i, j)`).
//!
//! # Rows without a vector
//! This module is the one owner of cosine similarity. A row whose Euclidean norm is not finite,
//! or not above `max(ZERO_VECTOR_RELATIVE x median row norm, ZERO_VECTOR_ABSOLUTE)`, has no
//! direction ([`has_vector`]; P1 leaves movies nobody liked at norms of ~1e-23). Such a row never
//! ranks as a neighbour and never gets a score; querying it is [`MetricsError::NoVector`];
//! [`unit_rows`] and the similarity matrix give it all zeros. Every cosine is clamped to
//! `[-1, 1]` (rounding in f32 can step just outside).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

use crate::error::{check_index, check_len, MetricsError, Result};
use crate::ranking::score_key;
use crate::topn::top_k_of_row;

/// A row has a vector only when its norm is above this fraction of the median row norm.
pub const ZERO_VECTOR_RELATIVE: f64 = 1e-6;
/// ... and above this absolute norm (so an all-but-zero table still has no directions).
pub const ZERO_VECTOR_ABSOLUTE: f64 = 1e-12;

/// The Euclidean norm of every row, in f64.
fn row_norms(vectors: ArrayView2<'_, f32>) -> Vec<f64> {
    vectors
        .axis_iter(Axis(0))
        .map(|r| r.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt())
        .collect()
}

/// Whether each row has a vector (see the module docs): a finite norm above
/// `max(ZERO_VECTOR_RELATIVE x median norm, ZERO_VECTOR_ABSOLUTE)`.
pub fn has_vector(vectors: ArrayView2<'_, f32>) -> Vec<bool> {
    let norms = row_norms(vectors);
    let mut finite: Vec<f64> = norms.iter().copied().filter(|n| n.is_finite()).collect();
    let median = if finite.is_empty() {
        0.0
    } else {
        let mid = finite.len() / 2;
        *finite.select_nth_unstable_by(mid, f64::total_cmp).1
    };
    let threshold = (ZERO_VECTOR_RELATIVE * median).max(ZERO_VECTOR_ABSOLUTE);
    norms.iter().map(|&n| n.is_finite() && n > threshold).collect()
}

/// Rows scaled to unit Euclidean length, in f64; rows without a vector ([`has_vector`]) are zero.
pub fn unit_rows_f64(vectors: ArrayView2<'_, f32>) -> Array2<f64> {
    let keep = has_vector(vectors);
    let mut out = vectors.mapv(f64::from);
    for (mut row, keep) in out.axis_iter_mut(Axis(0)).zip(keep) {
        let norm = row.dot(&row).sqrt();
        if keep {
            row /= norm;
        } else {
            row.fill(0.0);
        }
    }
    out
}

/// Rows scaled to unit Euclidean length; rows without a vector ([`has_vector`]) are zero.
pub fn unit_rows(vectors: ArrayView2<'_, f32>) -> Array2<f32> {
    unit_rows_f64(vectors).mapv(|x| x as f32)
}

/// Cosine of two vectors, clamped to `[-1, 1]`; 0 when either norm is at most
/// [`ZERO_VECTOR_ABSOLUTE`].
pub fn cosine(a: ArrayView1<'_, f32>, b: ArrayView1<'_, f32>) -> Result<f32> {
    check_len("cosine: vector lengths", a.len(), b.len())?;
    let dot = |x: &ArrayView1<'_, f32>, y: &ArrayView1<'_, f32>| {
        x.iter().zip(y).map(|(&p, &q)| f64::from(p) * f64::from(q)).sum::<f64>()
    };
    let (na, nb) = (dot(&a, &a).sqrt(), dot(&b, &b).sqrt());
    if !(na > ZERO_VECTOR_ABSOLUTE && nb > ZERO_VECTOR_ABSOLUTE) {
        return Ok(0.0);
    }
    Ok((dot(&a, &b) / (na * nb)).clamp(-1.0, 1.0) as f32)
}

/// The cosine similarity matrix of the given rows of `vectors` (all rows when `rows` is None):
/// `S = N N^T` with `N` the unit-length rows. Result is `n x n` in the order of `rows`.
pub fn cosine_similarity_matrix(vectors: ArrayView2<'_, f32>, rows: Option<&[u32]>) -> Result<Array2<f32>> {
    // Rows without a vector are judged against the whole table, not just the chosen rows.
    let unit = unit_rows_f64(vectors);
    let chosen = match rows {
        Some(ids) => {
            for &i in ids {
                check_index("cosine_similarity_matrix row", i as usize, vectors.nrows())?;
            }
            let idx: Vec<usize> = ids.iter().map(|&i| i as usize).collect();
            unit.select(Axis(0), &idx)
        }
        None => unit,
    };
    Ok(chosen.dot(&chosen.t()).mapv(|c| c.clamp(-1.0, 1.0) as f32))
}

/// The `k` rows of `vectors` most cosine-similar to row `query`, the query itself excluded, best
/// first, as `(row, cosine)`. The one cosine-neighbour search of the workspace: a query without a
/// vector is [`MetricsError::NoVector`]; rows without one are never listed (module docs).
pub fn nearest_neighbours(vectors: ArrayView2<'_, f32>, query: u32, k: usize) -> Result<Vec<(u32, f32)>> {
    check_index("nearest_neighbours query", query as usize, vectors.nrows())?;
    let keep = has_vector(vectors);
    if !keep[query as usize] {
        return Err(MetricsError::NoVector { what: "movie", index: query as usize });
    }
    ranked_by_cosine(vectors, &keep, vectors.row(query as usize), k, &[query])
}

/// The `k` rows most cosine-similar to `target`, skipping `excluded_sorted` and rows without a
/// vector, best first. A (near) zero `target` is [`MetricsError::NoVector`] (`index` 0).
pub fn nearest_to_vector(
    vectors: ArrayView2<'_, f32>,
    target: ArrayView1<'_, f32>,
    k: usize,
    excluded_sorted: &[u32],
) -> Result<Vec<(u32, f32)>> {
    check_len("nearest_to_vector: target length", vectors.ncols(), target.len())?;
    let norm = target.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    if !(norm.is_finite() && norm > ZERO_VECTOR_ABSOLUTE) {
        return Err(MetricsError::NoVector { what: "profile", index: 0 });
    }
    ranked_by_cosine(vectors, &has_vector(vectors), target, k, excluded_sorted)
}

fn ranked_by_cosine(
    vectors: ArrayView2<'_, f32>,
    keep: &[bool],
    target: ArrayView1<'_, f32>,
    k: usize,
    excluded_sorted: &[u32],
) -> Result<Vec<(u32, f32)>> {
    let sims: Vec<f32> = vectors
        .axis_iter(Axis(0))
        .zip(keep)
        .map(|(row, &keep)| if keep { cosine(row, target).unwrap_or(f32::NAN) } else { f32::NAN })
        .collect();
    top_k_of_row(&sims, k, excluded_sorted)
}

/// A pair `(i, j)` with `i < j` and its similarity.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pair {
    /// The smaller index.
    pub i: u32,
    /// The larger index.
    pub j: u32,
    /// `similarity[[i, j]]`.
    pub value: f32,
}

/// The `n` largest entries above the diagonal of a square matrix, largest first, ties by `(i, j)`.
/// NaN entries are never returned.
pub fn strongest_pairs(similarity: ArrayView2<'_, f32>, n: usize) -> Result<Vec<Pair>> {
    check_len("strongest_pairs: square matrix", similarity.nrows(), similarity.ncols())?;
    let order = |a: &Pair, b: &Pair| b.value.total_cmp(&a.value).then((a.i, a.j).cmp(&(b.i, b.j)));
    let mut pairs: Vec<Pair> = Vec::new();
    let size = similarity.nrows();
    for i in 0..size {
        for j in i + 1..size {
            let value = similarity[[i, j]];
            if !value.is_nan() {
                pairs.push(Pair { i: i as u32, j: j as u32, value });
            }
        }
    }
    if n < pairs.len() && n > 0 {
        pairs.select_nth_unstable_by(n - 1, order);
    }
    pairs.truncate(n);
    pairs.sort_unstable_by(order);
    Ok(pairs)
}

/// The highest and lowest entries of a vector (such as the movie biases).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Extremes {
    /// `(index, value)`, highest first, ties by lower index.
    pub highest: Vec<(u32, f32)>,
    /// `(index, value)`, lowest first, ties by lower index.
    pub lowest: Vec<(u32, f32)>,
}

/// The `n` highest and `n` lowest values of `values` (NaN skipped), optionally restricted to the
/// indices for which `keep` is true (for example, movies with enough ratings).
pub fn extremes(values: ArrayView1<'_, f32>, n: usize, keep: Option<&[bool]>) -> Result<Extremes> {
    if let Some(mask) = keep {
        check_len("extremes: keep mask", values.len(), mask.len())?;
    }
    if n == 0 {
        return Err(MetricsError::InvalidParameter {
            name: "n",
            value: "0".into(),
            reason: "must be positive",
        });
    }
    let kept = |j: usize| keep.is_none_or(|m| m[j]);
    let mask_value = |sign: f32| -> Vec<f32> {
        values
            .iter()
            .enumerate()
            .map(|(j, &v)| if kept(j) && !v.is_nan() { sign * score_key(v) } else { f32::NAN })
            .collect()
    };
    let highest = top_k_of_row(&mask_value(1.0), n, &[])?;
    let lowest = top_k_of_row(&mask_value(-1.0), n, &[])?.into_iter().map(|(j, v)| (j, -v)).collect();
    Ok(Extremes { highest, lowest })
}

/// Mean of the given rows of `vectors` (the item2vec "profile" of watched movies).
pub fn mean_of_rows(vectors: ArrayView2<'_, f32>, rows: &[u32]) -> Result<Array1<f32>> {
    if rows.is_empty() {
        return Err(MetricsError::Empty { what: "rows to average" });
    }
    let mut sum = Array1::<f32>::zeros(vectors.ncols());
    for &r in rows {
        check_index("mean_of_rows row", r as usize, vectors.nrows())?;
        sum += &vectors.row(r as usize);
    }
    Ok(sum / rows.len() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    fn vectors() -> Array2<f32> {
        // 0: (1, 0), 1: (2, 0), 2: (1, 1), 3: (0, 0), 4: (-1, 0.1)
        array![[1.0f32, 0.0], [2.0, 0.0], [1.0, 1.0], [0.0, 0.0], [-1.0, 0.1]]
    }

    #[test]
    fn cosine_matrix_by_hand() {
        let v = vectors();
        let s = cosine_similarity_matrix(v.view(), Some(&[0, 2, 3])).unwrap();
        let r = 0.5f32.sqrt();
        let expected = array![[1.0f32, r, 0.0], [r, 1.0, 0.0], [0.0, 0.0, 0.0]];
        for (a, b) in s.iter().zip(expected.iter()) {
            assert_abs_diff_eq!(*a, *b, epsilon = 1e-6);
        }
        assert_eq!(cosine_similarity_matrix(v.view(), None).unwrap().dim(), (5, 5));
        assert!(cosine_similarity_matrix(v.view(), Some(&[5])).is_err());
        assert_abs_diff_eq!(cosine(v.row(0), v.row(4)).unwrap(), -1.0 / 1.01f32.sqrt(), epsilon = 1e-6);
    }

    #[test]
    fn nearest_neighbours_exclude_the_query() {
        let v = vectors();
        let nn = nearest_neighbours(v.view(), 0, 3).unwrap();
        // Row 1 (cos 1), row 2 (0.707), row 4; row 3 (the zero vector) and row 0 itself never
        // appear.
        assert_eq!(nn.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2, 4]);
        assert_abs_diff_eq!(nn[0].1, 1.0, epsilon = 1e-6);
        // Row 1's neighbours: row 0 (cos 1) first.
        assert_eq!(nearest_neighbours(v.view(), 1, 1).unwrap()[0].0, 0);
    }

    #[test]
    fn movies_without_a_vector_never_rank_and_cannot_be_queried() {
        // P1's movies nobody liked: norms ~1e-23 next to norms ~1. Before, (0, 1e-23) had cosine
        // 1 with row 0 and near-zero rows could beat real neighbours with cosine > 1.
        let v = array![[1.0f32, 0.0], [1e-23, 0.0], [0.6, 0.8], [0.0, 3e-24], [-1.0, 0.1], [0.0, 0.0]];
        assert_eq!(has_vector(v.view()), vec![true, false, true, false, true, false]);
        let nn = nearest_neighbours(v.view(), 0, 10).unwrap();
        let ids: Vec<u32> = nn.iter().map(|p| p.0).collect();
        assert_eq!(ids, vec![2, 4]);
        assert!(nn.iter().all(|p| (-1.0..=1.0).contains(&p.1)));
        assert!(matches!(nearest_neighbours(v.view(), 1, 3), Err(MetricsError::NoVector { index: 1, .. })));
        assert!(matches!(nearest_neighbours(v.view(), 5, 3), Err(MetricsError::NoVector { index: 5, .. })));
        assert!(nearest_to_vector(v.view(), array![0.0f32, 0.0].view(), 3, &[]).is_err());
        // The matrix gives them zeros, diagonal included; every entry is within [-1, 1].
        let s = cosine_similarity_matrix(v.view(), Some(&[0, 1, 2])).unwrap();
        assert_eq!(s.row(1).to_vec(), vec![0.0, 0.0, 0.0]);
        assert!(s.iter().all(|c| (-1.0..=1.0).contains(c)));
        assert_eq!(unit_rows(v.view()).row(3).to_vec(), vec![0.0, 0.0]);
    }

    #[test]
    fn cosine_is_clamped_to_one() {
        // Parallel vectors whose f32 products round above 1 stay at exactly 1 at most.
        let a = array![0.1f32, 0.2, 0.3, 0.7];
        let c = cosine(a.view(), (&a * 3.0).view()).unwrap();
        assert!(c <= 1.0 && c > 0.999_999);
    }

    #[test]
    fn strongest_pairs_by_hand() {
        let s = array![
            [1.0f32, 0.2, 0.9, 0.2],
            [0.2, 1.0, 0.5, 0.9],
            [0.9, 0.5, 1.0, f32::NAN],
            [0.2, 0.9, f32::NAN, 1.0]
        ];
        let top = strongest_pairs(s.view(), 4).unwrap();
        let got: Vec<(u32, u32, f32)> = top.iter().map(|p| (p.i, p.j, p.value)).collect();
        assert_eq!(got, vec![(0, 2, 0.9), (1, 3, 0.9), (1, 2, 0.5), (0, 1, 0.2)]);
        assert_eq!(strongest_pairs(s.view(), 100).unwrap().len(), 5);
        assert!(strongest_pairs(array![[1.0f32, 2.0]].view(), 1).is_err());
    }

    #[test]
    fn extremes_by_hand() {
        let bias = array![0.5f32, -1.0, 2.0, -1.0, f32::NAN, 2.0];
        let e = extremes(bias.view(), 2, None).unwrap();
        assert_eq!(e.highest, vec![(2, 2.0), (5, 2.0)]);
        assert_eq!(e.lowest, vec![(1, -1.0), (3, -1.0)]);
        let keep = [true, true, false, true, true, true];
        let e = extremes(bias.view(), 3, Some(&keep)).unwrap();
        assert_eq!(e.highest, vec![(5, 2.0), (0, 0.5), (1, -1.0)]);
        assert_eq!(e.lowest, vec![(1, -1.0), (3, -1.0), (0, 0.5)]);
    }

    #[test]
    fn mean_of_rows_by_hand() {
        let v = vectors();
        assert_eq!(mean_of_rows(v.view(), &[0, 2]).unwrap(), array![1.0f32, 0.5]);
        assert!(mean_of_rows(v.view(), &[]).is_err());
    }
}
