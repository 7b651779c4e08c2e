//! A trained item2vec model: scores of every movie as the middle of a context, middle-movie
//! prediction, ranking metrics on held-out examples, and the embeddings.
//!
//! Scores are log-likelihood scores of a candidate `m` for a context `C`:
//! - CBOW, full softmax: `ln softmax(W h + b)_m` with `h` the reduced context (exact log p(m|C));
//! - CBOW, negative sampling: `ln sigma(W[m] . h + b_m)`;
//! - skip-gram, full softmax: `sum_{c in C} ln softmax(W E[m] + b)_c` (log p(C|m));
//! - skip-gram, negative sampling: `sum_{c in C} ln sigma(W[c] . E[m] + b_c)`.

use ndarray::ArrayView2;
use rayon::prelude::*;
use reelvec_engine::ParamStore;

use super::lane::Weights;
use super::negative::softplus;
use super::softmax::{log_sum_exp, project, reduce_context, MAX_PROJECTED_VOCAB};
use super::{Architecture, ContextReduce, Examples, Item2VecConfig, Item2VecTables, OutputLoss};
use crate::traits::ItemEmbeddings;
use crate::ModelError;
use reelvec_metrics::topn::top_k_of_row;

/// Ranking figures of a model on held-out examples (P0's reported metrics).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RankMetrics {
    /// Mean `-ln softmax(scores)_target` (for CBOW full softmax: the model's cross-entropy).
    pub cross_entropy: f64,
    /// Share of examples whose target has the highest score.
    pub accuracy_at_1: f64,
    /// Share of examples whose target is among the 10 highest scores.
    pub hit_at_10: f64,
    /// Number of examples.
    pub examples: usize,
}

/// A trained CBOW / skip-gram model.
#[derive(Debug, Clone)]
pub struct Item2Vec {
    config: Item2VecConfig,
    params: ParamStore,
    tables: Item2VecTables,
    feature_names: Vec<String>,
}

impl Item2Vec {
    /// Wraps trained parameters (tables found by name).
    pub fn new(config: Item2VecConfig, params: ParamStore) -> Result<Self, ModelError> {
        let tables = Item2VecTables::find(&params)?;
        let k = params.get(tables.embedding).cols;
        if k != config.dim {
            return Err(ModelError::InvalidData(format!(
                "item2vec config says dim {} but the embedding table has {k} columns",
                config.dim
            )));
        }
        Ok(Self { config, params, tables, feature_names: Vec::new() })
    }

    /// The configuration.
    pub fn config(&self) -> &Item2VecConfig {
        &self.config
    }

    /// The feature names (by id) of a model trained with `model.item_features` (empty
    /// without), as `run.json` records them.
    pub fn item_feature_names(&self) -> Vec<String> {
        self.feature_names.clone()
    }

    /// The model with its feature names (by id) recorded.
    pub fn with_feature_names(mut self, names: Vec<String>) -> Self {
        self.feature_names = names;
        self
    }

    /// The parameters (for checkpoints).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// Vocabulary size V.
    pub fn vocab(&self) -> usize {
        self.params.get(self.tables.embedding).rows
    }

    /// Writes the score of every movie as the middle of `context` into `out` (len V).
    pub fn scores_for_context(&self, context: &[u32], out: &mut [f32]) {
        let w = Weights::new(&self.params, &self.tables);
        let (v, k) = (w.v, w.k);
        debug_assert_eq!(out.len(), v);
        match self.config.architecture {
            Architecture::Cbow => {
                let mut h = vec![0.0f32; k];
                reduce_context(self.config.context, &w, context, &mut h);
                for (m, o) in out.iter_mut().enumerate() {
                    *o = dot(&w.w[m * k..(m + 1) * k], &h) + w.b[m];
                }
                match self.config.loss {
                    OutputLoss::FullSoftmax => {
                        let lse = log_sum_exp(out);
                        out.iter_mut().for_each(|o| *o -= lse);
                    }
                    OutputLoss::NegativeSampling => out.iter_mut().for_each(|o| *o = -softplus(-*o)),
                }
            }
            Architecture::Skipgram => {
                let mut z = vec![0.0f32; v];
                for (m, o) in out.iter_mut().enumerate() {
                    let h = &w.e[m * k..(m + 1) * k];
                    *o = match self.config.loss {
                        OutputLoss::FullSoftmax => {
                            for (j, zj) in z.iter_mut().enumerate() {
                                *zj = dot(&w.w[j * k..(j + 1) * k], h) + w.b[j];
                            }
                            let lse = log_sum_exp(&z);
                            context.iter().map(|&c| z[c as usize] - lse).sum()
                        }
                        OutputLoss::NegativeSampling => context
                            .iter()
                            .map(|&c| {
                                let c = c as usize;
                                -softplus(-(dot(&w.w[c * k..(c + 1) * k], h) + w.b[c]))
                            })
                            .sum(),
                    };
                }
            }
        }
    }

    /// The `n` most likely movies between `a` and `b`, best first, as (movie, score). The two
    /// context movies themselves are excluded (a user rates a movie once, so a movie never sits
    /// between itself and another).
    pub fn predict_middle(&self, a: u32, b: u32, n: usize) -> Result<Vec<(u32, f32)>, ModelError> {
        let v = self.vocab();
        for m in [a, b] {
            if m as usize >= v {
                return Err(ModelError::UnknownId { what: "movie", id: m.to_string() });
            }
        }
        let mut scores = vec![0.0; v];
        self.scores_for_context(&[a, b], &mut scores);
        let mut excluded = [a.min(b), a.max(b)];
        excluded.sort_unstable();
        Ok(top_k_of_row(&scores, n, &excluded)?)
    }

    /// Cross-entropy, accuracy@1 and hit@10 of the targets of `examples` among all V movies.
    ///
    /// CBOW with the full softmax reads the logits `z = f sum_c P[c] + b` from the token
    /// projection `P = E W^T` (computed once; see [`super::softmax`]), `ce = lse(z) - z_t`;
    /// the other variants score every movie with [`scores_for_context`](Self::scores_for_context).
    pub fn rank_metrics(&self, examples: &Examples) -> RankMetrics {
        let v = self.vocab();
        // Rank = number of movies scored strictly higher (ties favour the target).
        let rank = |scores: &[f32], t: usize, ce: f64| {
            let st = scores[t];
            let above = scores.iter().filter(|&&s| s > st).count();
            (ce, above == 0, above < 10)
        };
        let projected = self.config.architecture == Architecture::Cbow
            && self.config.loss == OutputLoss::FullSoftmax
            && v <= MAX_PROJECTED_VOCAB;
        let per_example: Vec<(f64, bool, bool)> = if projected {
            let w = Weights::new(&self.params, &self.tables);
            let mut proj = Vec::new();
            project(&w, &mut proj);
            (0..examples.len())
                .into_par_iter()
                .map_init(
                    || vec![0.0f32; v],
                    |z, e| {
                        let ctx = examples.context(e);
                        let f = match self.config.context {
                            ContextReduce::Sum => 1.0,
                            ContextReduce::Mean => 1.0 / ctx.len().max(1) as f32,
                        };
                        z.iter_mut().for_each(|z| *z = 0.0);
                        for &c in ctx {
                            let p = &proj[c as usize * v..(c as usize + 1) * v];
                            z.iter_mut().zip(p).for_each(|(z, &p)| *z += p);
                        }
                        z.iter_mut().zip(w.b).for_each(|(z, &b)| *z = f * *z + b);
                        let t = examples.target(e) as usize;
                        rank(z, t, (log_sum_exp(z) - z[t]) as f64)
                    },
                )
                .collect()
        } else {
            (0..examples.len())
                .into_par_iter()
                .map_init(
                    || vec![0.0f32; v],
                    |scores, e| {
                        self.scores_for_context(examples.context(e), scores);
                        let t = examples.target(e) as usize;
                        rank(scores, t, (log_sum_exp(scores) - scores[t]) as f64)
                    },
                )
                .collect()
        };
        let n = per_example.len();
        let denom = n.max(1) as f64;
        RankMetrics {
            cross_entropy: per_example.iter().map(|x| x.0).sum::<f64>() / denom,
            accuracy_at_1: per_example.iter().filter(|x| x.1).count() as f64 / denom,
            hit_at_10: per_example.iter().filter(|x| x.2).count() as f64 / denom,
            examples: n,
        }
    }
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl ItemEmbeddings for Item2Vec {
    fn item_embeddings(&self) -> ArrayView2<'_, f32> {
        let t = self.params.get(self.tables.embedding);
        ArrayView2::from_shape((t.rows, t.cols), &t.data).expect("table shape is rows x cols")
    }
}
