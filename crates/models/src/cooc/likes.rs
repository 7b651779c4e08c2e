//! The binary users x movies like matrix `L`, stored both row-wise (CSR: movies per user) and
//! column-wise (CSC: users per movie), with the products P1 needs: `L V`, `L^T Y`, and from them
//! `X0 V = L^T (L V) - D V` where `D = diag(L^T L)` (likes per movie). `M x M` is never formed
//! except by [`LikeMatrix::dense_x0`] (tests and the small dense reference).

use rayon::prelude::*;
use reelvec_data::Ratings;

use crate::ModelError;

/// Rows per rayon task in the row-parallel products.
const ROWS_PER_TASK: usize = 256;

/// Binary like matrix `L` (users x movies), CSR and CSC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LikeMatrix {
    n_users: usize,
    n_movies: usize,
    /// CSR: `user_ptr[u]..user_ptr[u + 1]` index `user_movies`.
    user_ptr: Vec<usize>,
    user_movies: Vec<u32>,
    /// CSC: `movie_ptr[i]..movie_ptr[i + 1]` index `movie_users`.
    movie_ptr: Vec<usize>,
    movie_users: Vec<u32>,
}

impl LikeMatrix {
    /// From (user, movie) like pairs; duplicates count once. Errors on out-of-range ids.
    pub fn from_pairs(n_users: usize, n_movies: usize, pairs: &[(u32, u32)]) -> Result<Self, ModelError> {
        if let Some(&(u, m)) = pairs.iter().find(|&&(u, m)| u as usize >= n_users || m as usize >= n_movies) {
            return Err(ModelError::InvalidData(format!(
                "like ({u}, {m}) outside a {n_users} x {n_movies} matrix"
            )));
        }
        let mut sorted = pairs.to_vec();
        sorted.par_sort_unstable();
        sorted.dedup();
        let mut user_ptr = vec![0usize; n_users + 1];
        for &(u, _) in &sorted {
            user_ptr[u as usize + 1] += 1;
        }
        for u in 0..n_users {
            user_ptr[u + 1] += user_ptr[u];
        }
        let user_movies: Vec<u32> = sorted.iter().map(|&(_, m)| m).collect();
        let mut movie_ptr = vec![0usize; n_movies + 1];
        for &(_, m) in &sorted {
            movie_ptr[m as usize + 1] += 1;
        }
        for m in 0..n_movies {
            movie_ptr[m + 1] += movie_ptr[m];
        }
        let mut fill = movie_ptr.clone();
        let mut movie_users = vec![0u32; sorted.len()];
        for &(u, m) in &sorted {
            movie_users[fill[m as usize]] = u;
            fill[m as usize] += 1;
        }
        Ok(Self { n_users, n_movies, user_ptr, user_movies, movie_ptr, movie_users })
    }

    /// Likes of a ratings table: `liked_ui = 1` when `r_ui >= threshold` (P1: 4).
    pub fn from_ratings(
        ratings: &Ratings,
        n_users: usize,
        n_movies: usize,
        threshold: f32,
    ) -> Result<Self, ModelError> {
        let pairs: Vec<(u32, u32)> = (0..ratings.len())
            .filter(|&r| ratings.rating[r] >= threshold)
            .map(|r| (ratings.user[r], ratings.movie[r]))
            .collect();
        Self::from_pairs(n_users, n_movies, &pairs)
    }

    /// Number of users (rows).
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// Number of movies (columns).
    pub fn n_movies(&self) -> usize {
        self.n_movies
    }

    /// Number of likes.
    pub fn nnz(&self) -> usize {
        self.user_movies.len()
    }

    /// Movies liked by user `u`.
    #[inline]
    pub fn user_likes(&self, u: usize) -> &[u32] {
        &self.user_movies[self.user_ptr[u]..self.user_ptr[u + 1]]
    }

    /// Users who liked movie `i`.
    #[inline]
    pub fn movie_likers(&self, i: usize) -> &[u32] {
        &self.movie_users[self.movie_ptr[i]..self.movie_ptr[i + 1]]
    }

    /// `D_i = X_ii = (L^T L)_ii`, the number of users who liked movie `i`.
    pub fn diagonal(&self) -> Vec<f32> {
        (0..self.n_movies).map(|i| (self.movie_ptr[i + 1] - self.movie_ptr[i]) as f32).collect()
    }

    /// `out = L V` (users x k) for `v` (movies x k), row-major.
    pub fn times(&self, v: &[f32], k: usize, out: &mut [f32]) {
        out.par_chunks_mut(ROWS_PER_TASK * k).enumerate().for_each(|(chunk, rows)| {
            for (r, row) in rows.chunks_mut(k).enumerate() {
                let u = chunk * ROWS_PER_TASK + r;
                row.iter_mut().for_each(|x| *x = 0.0);
                for &m in self.user_likes(u) {
                    let src = &v[m as usize * k..(m as usize + 1) * k];
                    row.iter_mut().zip(src).for_each(|(x, &s)| *x += s);
                }
            }
        });
    }

    /// `out = L^T Y - D V` (movies x k) for `y` (users x k) and `v` (movies x k): with
    /// `y = L V` this is `X0 V`.
    pub fn transpose_times_minus_diag(&self, y: &[f32], v: &[f32], k: usize, out: &mut [f32]) {
        out.par_chunks_mut(ROWS_PER_TASK * k).enumerate().for_each(|(chunk, rows)| {
            for (r, row) in rows.chunks_mut(k).enumerate() {
                let i = chunk * ROWS_PER_TASK + r;
                let likers = self.movie_likers(i);
                let d = likers.len() as f32;
                row.iter_mut().zip(&v[i * k..(i + 1) * k]).for_each(|(x, &vi)| *x = -d * vi);
                for &u in likers {
                    let src = &y[u as usize * k..(u as usize + 1) * k];
                    row.iter_mut().zip(src).for_each(|(x, &s)| *x += s);
                }
            }
        });
    }

    /// `||X0||_F^2 = sum_{i != j} X_ij^2`, computed movie by movie from `L` (cost
    /// `sum_u n_u^2`, memory `O(M)` per thread), once per problem.
    pub fn x0_frobenius_sq(&self) -> f64 {
        (0..self.n_movies)
            .into_par_iter()
            .fold(
                || (vec![0u32; self.n_movies], Vec::<u32>::new(), 0f64),
                |(mut acc, mut seen, mut total), i| {
                    for &u in self.movie_likers(i) {
                        for &j in self.user_likes(u as usize) {
                            if acc[j as usize] == 0 {
                                seen.push(j);
                            }
                            acc[j as usize] += 1;
                        }
                    }
                    for &j in &seen {
                        if j as usize != i {
                            let x = acc[j as usize] as f64;
                            total += x * x;
                        }
                        acc[j as usize] = 0;
                    }
                    seen.clear();
                    (acc, seen, total)
                },
            )
            .map(|(_, _, t)| t)
            .collect::<Vec<f64>>()
            .into_iter()
            .sum()
    }

    /// The dense `X0` (M x M, row-major, zero diagonal). Tests and small references only.
    pub fn dense_x0(&self) -> Vec<f32> {
        let m = self.n_movies;
        let mut x = vec![0.0f32; m * m];
        for u in 0..self.n_users {
            let likes = self.user_likes(u);
            for &i in likes {
                for &j in likes {
                    if i != j {
                        x[i as usize * m + j as usize] += 1.0;
                    }
                }
            }
        }
        x
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn small() -> LikeMatrix {
        // users: 0 likes {0,1,2}, 1 likes {1,2}, 2 likes {0}, duplicate (1,2) ignored.
        LikeMatrix::from_pairs(3, 4, &[(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (1, 2), (2, 0)]).unwrap()
    }

    #[test]
    fn dense_x0_by_hand() {
        let l = small();
        assert_eq!(l.nnz(), 6);
        assert_eq!(l.diagonal(), vec![2.0, 2.0, 2.0, 0.0]);
        #[rustfmt::skip]
        let want = vec![
            0.0, 1.0, 1.0, 0.0,
            1.0, 0.0, 2.0, 0.0,
            1.0, 2.0, 0.0, 0.0,
            0.0, 0.0, 0.0, 0.0,
        ];
        assert_eq!(l.dense_x0(), want);
        assert_eq!(l.x0_frobenius_sq(), 1.0 + 1.0 + 1.0 + 4.0 + 1.0 + 4.0);
    }

    #[test]
    fn x0_times_matches_dense() {
        let l = small();
        let k = 2;
        let v: Vec<f32> = vec![0.5, -1.0, 2.0, 0.25, -0.75, 1.5, 3.0, 1.0];
        let mut lv = vec![0.0; 3 * k];
        let mut out = vec![0.0; 4 * k];
        l.times(&v, k, &mut lv);
        l.transpose_times_minus_diag(&lv, &v, k, &mut out);
        let x = l.dense_x0();
        for i in 0..4 {
            for c in 0..k {
                let want: f32 = (0..4).map(|j| x[i * 4 + j] * v[j * k + c]).sum();
                assert!((out[i * k + c] - want).abs() < 1e-6, "({i},{c}) {} vs {want}", out[i * k + c]);
            }
        }
    }

    #[test]
    fn out_of_range_is_an_error() {
        assert!(LikeMatrix::from_pairs(2, 2, &[(0, 2)]).is_err());
    }
}
