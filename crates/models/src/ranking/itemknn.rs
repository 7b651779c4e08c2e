//! `itemknn`: cosine item-item neighbours over binary interactions, the top `neighbours` kept per
//! movie (a sparse matrix `W`), scores `s(u, j) = sum_{i in I_u} W[i, j]` — the item-based
//! recommender of implicit's `CosineRecommender` and of Deshpande & Karypis (2004).
//!
//! With `c_ij` the number of users who have both movies and `n_i` the users of movie `i`, the
//! similarity is `c_ij / (sqrt(n_i n_j) + shrink)` (`shrink` = 0: plain cosine of the binary
//! columns; a positive `shrink` pulls pairs with little support towards 0). A movie is never its
//! own neighbour. Row `i` of `W` keeps the `neighbours` most similar movies, ties broken by the
//! lower movie index, so the model is a function of the data and the parameters only (items are
//! processed in parallel, each row by one thread from its own scratch).
//!
//! There are no item embeddings: the model is a neighbour graph, not vectors;
//! [`ItemKnn::neighbours`] gives a movie's kept neighbours (similar-movie queries).

use ndarray::ArrayViewMut2;
use rayon::prelude::*;
use reelvec_engine::memory::ensure_fits;
use reelvec_metrics::error::{check_index, check_len};
use reelvec_metrics::{ItemScorer, MetricsError};

use super::{Interactions, ParamReader, Ranker, RankerKind};
use crate::ModelError;

/// The parameters of [`ItemKnn`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ItemKnnParams {
    /// Neighbours kept per movie (default 100, as implicit's `K`).
    pub neighbours: usize,
    /// Added to the cosine's denominator (default 0: plain cosine).
    pub shrink: f32,
}

impl Default for ItemKnnParams {
    fn default() -> Self {
        ItemKnnParams { neighbours: 100, shrink: 0.0 }
    }
}

impl ItemKnnParams {
    /// The defaults overridden by a JSON object (`neighbours`, `shrink`).
    pub fn from_json(params: &serde_json::Value) -> Result<Self, ModelError> {
        let r = ParamReader::new(RankerKind::ItemKnn, params, &["neighbours", "shrink"])?;
        let d = Self::default();
        Ok(ItemKnnParams {
            neighbours: r.int("neighbours", d.neighbours, 1, 1 << 20)?,
            shrink: r.num("shrink", f64::from(d.shrink), |x| x >= 0.0, "a number >= 0")? as f32,
        })
    }
}

/// A fitted item-item cosine model: per movie its kept neighbours as CSR rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemKnn {
    pub(super) params: ItemKnnParams,
    /// The training interactions by user (scores sum over them).
    pub(super) by_user: reelvec_metrics::RatedItems,
    pub(super) n_items: usize,
    pub(super) indptr: Vec<usize>,
    pub(super) neighbour: Vec<u32>,
    pub(super) similarity: Vec<f32>,
}

impl ItemKnn {
    /// Fits the neighbour lists on `train` (see the module doc).
    pub fn fit(train: Interactions<'_>, params: &serde_json::Value) -> Result<Self, ModelError> {
        let params = ItemKnnParams::from_json(params)?;
        let m = train.n_items;
        let kept = params.neighbours.min(m.saturating_sub(1));
        // W (index + value per kept pair) and one dense row of scratch per thread.
        let threads = rayon::current_num_threads() as u128;
        ensure_fits(
            &format!("itemknn neighbour lists [{m}, {kept}]"),
            (m as u128) * (kept as u128) * 8 + threads * (m as u128) * 8,
        )?;
        let by_item = train.by_item()?;
        let n: Vec<f32> = (0..m).map(|i| by_item.row(i as u32).len() as f32).collect();
        let by_user = train.by_user;
        let rows: Vec<Vec<(u32, f32)>> = (0..m)
            .into_par_iter()
            .map_init(
                || (vec![0u32; m], Vec::<u32>::new()),
                |(count, touched), i| {
                    for &u in by_item.row(i as u32) {
                        for &j in by_user.row(u) {
                            if count[j as usize] == 0 {
                                touched.push(j);
                            }
                            count[j as usize] += 1;
                        }
                    }
                    let mut row: Vec<(u32, f32)> = touched
                        .iter()
                        .filter(|&&j| j as usize != i)
                        .map(|&j| {
                            let c = count[j as usize] as f32;
                            (j, c / ((n[i] * n[j as usize]).sqrt() + params.shrink))
                        })
                        .collect();
                    for &j in touched.iter() {
                        count[j as usize] = 0;
                    }
                    touched.clear();
                    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
                    if row.len() > kept {
                        row.select_nth_unstable_by(kept, order);
                        row.truncate(kept);
                    }
                    row.sort_unstable_by(order);
                    row
                },
            )
            .collect();
        let mut indptr = Vec::with_capacity(m + 1);
        indptr.push(0);
        let total: usize = rows.iter().map(Vec::len).sum();
        let (mut neighbour, mut similarity) = (Vec::with_capacity(total), Vec::with_capacity(total));
        for row in rows {
            for (j, s) in row {
                neighbour.push(j);
                similarity.push(s);
            }
            indptr.push(neighbour.len());
        }
        Ok(ItemKnn { params, by_user: by_user.clone(), n_items: m, indptr, neighbour, similarity })
    }

    /// The parameters used.
    pub fn params_used(&self) -> ItemKnnParams {
        self.params
    }

    /// The kept neighbours of `movie`, most similar first: (movie, cosine).
    pub fn neighbours(&self, movie: u32) -> Result<impl Iterator<Item = (u32, f32)> + '_, MetricsError> {
        check_index("ItemKnn::neighbours movie", movie as usize, self.n_items)?;
        let (a, b) = (self.indptr[movie as usize], self.indptr[movie as usize + 1]);
        Ok(self.neighbour[a..b].iter().copied().zip(self.similarity[a..b].iter().copied()))
    }

    /// Adds the scores of a user who has `items` to `out` (one value per movie): the rows of `W`
    /// of those movies summed in the given order.
    pub fn score_items(&self, items: &[u32], out: &mut [f32]) -> Result<(), MetricsError> {
        check_len("ItemKnn::score_items output", self.n_items, out.len())?;
        for &i in items {
            check_index("ItemKnn::score_items movie", i as usize, self.n_items)?;
            let (a, b) = (self.indptr[i as usize], self.indptr[i as usize + 1]);
            for (&j, &s) in self.neighbour[a..b].iter().zip(&self.similarity[a..b]) {
                out[j as usize] += s;
            }
        }
        Ok(())
    }
}

impl ItemScorer for ItemKnn {
    fn n_users(&self) -> usize {
        self.by_user.n_users()
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score_block(&self, users: &[u32], mut out: ArrayViewMut2<'_, f32>) -> Result<(), MetricsError> {
        check_len("ItemKnn::score_block rows", out.nrows(), users.len())?;
        check_len("ItemKnn::score_block columns", out.ncols(), self.n_items)?;
        for (mut row, &u) in out.rows_mut().into_iter().zip(users) {
            check_index("ItemKnn::score_block user", u as usize, self.n_users())?;
            row.fill(0.0);
            match row.as_slice_mut() {
                Some(slice) => self.score_items(self.by_user.row(u), slice)?,
                None => {
                    let mut dense = vec![0.0f32; self.n_items];
                    self.score_items(self.by_user.row(u), &mut dense)?;
                    row.assign(&ndarray::ArrayView1::from(&dense[..]));
                }
            }
        }
        Ok(())
    }
}

impl Ranker for ItemKnn {
    fn kind(&self) -> RankerKind {
        RankerKind::ItemKnn
    }

    fn params(&self) -> serde_json::Value {
        serde_json::to_value(self.params).unwrap_or_default()
    }

    /// The same sum over the new user's movies as for a training user (duplicates count once).
    fn score_new_user(&self, items: &[u32], out: &mut [f32]) -> Result<(), ModelError> {
        let items = super::new_user_item_set(items, out, self.n_items())?;
        Ok(self.score_items(&items, out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use reelvec_metrics::RatedItems;

    /// Users {0,1}, {0,1,2}, {1,2}, {3}: n = [2, 3, 2, 1], c01 = 2, c02 = 1, c12 = 2.
    fn rows() -> RatedItems {
        RatedItems::from_rows(&[vec![0, 1], vec![0, 1, 2], vec![1, 2], vec![3]])
    }

    #[test]
    fn similarities_and_scores_match_a_hand_computation() {
        let rows = rows();
        let train = Interactions::new(&rows, 4).unwrap();
        let model = ItemKnn::fit(train, &serde_json::json!({"neighbours": 1})).unwrap();
        let s01 = 2.0 / 6f32.sqrt(); // 0.8165
        let s02 = 1.0 / 4f32.sqrt(); // 0.5
        let s12 = 2.0 / 6f32.sqrt();
        // Movie 0 keeps 1 (0.816 > 0.5); movie 1's neighbours 0 and 2 tie: the lower index wins;
        // movie 2 keeps 1; movie 3 has none.
        assert_eq!(model.neighbours(0).unwrap().collect::<Vec<_>>(), vec![(1, s01)]);
        assert_eq!(model.neighbours(1).unwrap().collect::<Vec<_>>(), vec![(0, s01)]);
        assert_eq!(model.neighbours(2).unwrap().collect::<Vec<_>>(), vec![(1, s12)]);
        assert_eq!(model.neighbours(3).unwrap().count(), 0);
        let mut out = Array2::zeros((2, 4));
        model.score_block(&[1, 2], out.view_mut()).unwrap();
        // User 1 has 0, 1, 2: W[0] + W[1] + W[2] = (s01, s01 + s12, 0, 0).
        assert_eq!(out.row(0).to_vec(), vec![s01, s01 + s12, 0.0, 0.0]);
        // User 2 has 1, 2.
        assert_eq!(out.row(1).to_vec(), vec![s01, s12, 0.0, 0.0]);

        let all = ItemKnn::fit(train, &serde_json::json!({"neighbours": 5, "shrink": 1.0})).unwrap();
        let got: Vec<_> = all.neighbours(0).unwrap().collect();
        assert_eq!(got, vec![(1, 2.0 / (6f32.sqrt() + 1.0)), (2, s02 * 2.0 / 3.0)]);
    }

    #[test]
    fn fit_is_the_same_on_any_thread_count() {
        let rows = rows();
        let train = Interactions::new(&rows, 4).unwrap();
        let fit = |t| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap();
            pool.install(|| ItemKnn::fit(train, &serde_json::Value::Null).unwrap())
        };
        assert_eq!(fit(1), fit(3));
    }

    #[test]
    fn bad_parameters_are_named() {
        let rows = rows();
        let train = Interactions::new(&rows, 4).unwrap();
        let err = ItemKnn::fit(train, &serde_json::json!({"neighbours": 0})).unwrap_err();
        assert!(err.to_string().contains("itemknn.neighbours"), "{err}");
        let err = ItemKnn::fit(train, &serde_json::json!({"shrink": -1})).unwrap_err();
        assert!(err.to_string().contains("itemknn.shrink"), "{err}");
    }
}
