//! item2vec (P0): CBOW and its skip-gram twin over users' viewing sequences, with a full softmax
//! over the vocabulary (the notebook) or negative sampling (large vocabularies).
//!
//! - [`Examples`] cuts (context, target) examples from sequences (window, context side, dropped
//!   ends).
//! - [`Item2VecObjective`] is the engine objective: hand-written forward and backward passes of
//!   the four variants (CBOW / skip-gram x softmax / negative sampling), derivations in
//!   [`softmax`] and [`negative`]; small vocabularies take the projected full-softmax kernel
//!   ([`SoftmaxKernel`]).
//! - [`Item2Vec`] is a trained model: middle-movie prediction, cosine neighbours, embeddings.
//!
//! Tables (names shared with the PyTorch fixtures): `embedding` (V x k, the movie embeddings),
//! `out_weight` (V x k), `out_bias` (V x 1).

mod examples;
pub mod features;
pub mod gensim;
pub mod gpu;
#[cfg(test)]
mod kernel_tests;
pub(crate) mod lane;
mod model;
pub mod negative;
mod objective;
mod pair_rows;
pub mod sgd;
mod simd;
mod simd512;
pub mod softmax;

pub use examples::Examples;
pub use features::{FeatureKinds, FeatureObjective, FeatureSide};
pub use gensim::{decayed_train_config, keep_probabilities, EpochSampling};
pub use model::{Item2Vec, RankMetrics};
pub use negative::UnigramSampler;
pub use objective::{Item2VecObjective, Item2VecTables, DEFAULT_LANES, VALIDATION_DRAW};
pub use softmax::SoftmaxKernel;

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Which word2vec architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// Predict the target from its (reduced) context: the notebook's model.
    #[default]
    Cbow,
    /// Predict every context token from the target.
    #[serde(alias = "skip_gram", alias = "sg")]
    Skipgram,
}

/// How CBOW reduces its context rows to one vector `h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ContextReduce {
    /// `h = sum_c E[c]` (the notebook).
    #[default]
    Sum,
    /// `h = (1/|C|) sum_c E[c]` (word2vec).
    Mean,
}

/// Which side of position `i` its context comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ContextSide {
    /// `i-w..=i+w` minus `i`: the middle-title model (the notebook).
    #[default]
    Both,
    /// `i-w..i`, the `w` titles before `i`: a causal next-title model.
    Previous,
}

impl ContextSide {
    /// The window `lo..=hi` (minus `i` itself) of position `i` in a sequence of `len` tokens
    /// (`i < len`): `lo = i - w` (at least 0), `hi = i + w` (at most `len - 1`) for both sides,
    /// `hi = i` for the previous titles only. The one rule of [`Examples`], the SGNS pair count
    /// and the CUDA pair generation (`negative.cu`).
    #[inline]
    pub fn window_bounds(self, i: usize, len: usize, window: usize) -> (usize, usize) {
        let lo = i.saturating_sub(window);
        let hi = match self {
            ContextSide::Both => (i + window).min(len.saturating_sub(1)),
            ContextSide::Previous => i,
        };
        (lo, hi)
    }

    /// The name a config spells (`both`, `previous`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContextSide::Both => "both",
            ContextSide::Previous => "previous",
        }
    }
}

/// The output layer and its loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputLoss {
    /// Softmax cross-entropy over the whole vocabulary (the notebook), `O(V k)` per example.
    #[default]
    FullSoftmax,
    /// Logistic loss on the true token and `negatives` tokens drawn from the unigram^power
    /// distribution, `O((1 + negatives) k)` per example.
    NegativeSampling,
}

/// How item2vec trains (`model.trainer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Item2VecTrainer {
    /// reelvec-engine's `Trainer`: batches of sequences, the batch-mean gradient, `train.optimizer`
    /// (the notebook's Adam), validation loss and early stopping.
    #[default]
    Engine,
    /// Per-pair SGD as word2vec.c and gensim train (negative sampling only; [`sgd`]): every
    /// (center, context) pair one plain SGD step at `alpha` decaying by words processed;
    /// deterministic lanes (`model.pair_lanes`), bitwise identical for any thread count. `train.optimizer`,
    /// `batch_size`, `shuffle` and early stopping are not used.
    PairSgd,
    /// [`PairSgd`](Self::PairSgd)'s updates by lock-free workers on shared tables, as gensim's
    /// Hogwild threads: faster at several threads, but the result varies with thread scheduling
    /// (bitwise reproducible only at 1 thread).
    PairSgdHogwild,
}

impl Item2VecTrainer {
    /// The name a config spells (`engine`, `pair_sgd`).
    pub fn as_str(self) -> &'static str {
        match self {
            Item2VecTrainer::Engine => "engine",
            Item2VecTrainer::PairSgd => "pair_sgd",
            Item2VecTrainer::PairSgdHogwild => "pair_sgd_hogwild",
        }
    }
}

/// Model hyperparameters of item2vec (P0 defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Item2VecConfig {
    /// CBOW (default) or skip-gram.
    pub architecture: Architecture,
    /// Embedding size `k` (20).
    pub dim: usize,
    /// Window `w` (1): the context of position `i` is `i-w..=i+w` minus `i` (both sides), or
    /// `i-w..i` with `context_side = "previous"`.
    pub window: usize,
    /// Both sides of the position (the notebook's middle-title model, default) or the previous
    /// titles only (a causal next-title model).
    pub context_side: ContextSide,
    /// Drop the first and last position of every sequence, as the notebook's collate does (true),
    /// whatever the context side (a causal model usually wants `false`: its last position has a
    /// full context).
    pub drop_ends: bool,
    /// CBOW context reduction: sum (the notebook) or mean.
    pub context: ContextReduce,
    /// Full softmax (default) or negative sampling.
    pub loss: OutputLoss,
    /// Negative samples per positive token (negative sampling only; 5; gensim's `negative`).
    #[serde(alias = "negative")]
    pub negatives: usize,
    /// Exponent of the unigram noise distribution (0.75; gensim's `ns_exponent`).
    #[serde(alias = "ns_exponent")]
    pub unigram_power: f64,
    /// gensim's `sample`: frequent-token subsampling threshold, redrawn every epoch (0 = off,
    /// the default; gensim's default is 1e-3). Keep probability `min(1, (sqrt(c/t) + 1) t/c)`
    /// ([`gensim`]).
    pub sample: f64,
    /// gensim's `shrink_windows` (its `reduced_windows`): each position's window drawn
    /// uniformly in `1..=window` every epoch (off by default here for P0 parity; on in gensim).
    pub shrink_windows: bool,
    /// gensim's `alpha`: the starting learning rate, replacing `train.lr` when set.
    pub alpha: Option<f32>,
    /// gensim's `min_alpha`: when set, the learning rate decays linearly per batch from
    /// `alpha` (or `train.lr`) to `min_alpha` over every planned step.
    pub min_alpha: Option<f32>,
    /// How the model trains: `engine` (default: batches through reelvec-engine's optimizers)
    /// or `pair_sgd` (gensim's per-pair SGD, negative sampling only; deterministic lanes) or
    /// `pair_sgd_hogwild` (the same updates by lock-free workers, as gensim's: results vary
    /// with thread scheduling).
    pub trainer: Item2VecTrainer,
    /// `pair_sgd`'s deterministic lanes per step (`model.pair_lanes`, 1 to
    /// [`sgd::MAX_PAIR_LANES`], default [`sgd::DEFAULT_PAIR_LANES`]): the most threads it
    /// uses, and the results depend on it (never on the thread count); more lanes are staler
    /// updates and lower quality (see [`sgd::DEFAULT_PAIR_LANES`]). Unused by the other trainers.
    pub pair_lanes: usize,
    /// Item side features (`model.item_features`: any of `"genres"`, `"decade"`, `"tags"`;
    /// none by default): a movie's input and output vectors are its id rows plus the mean of
    /// its feature rows ([`features`]). The engine trainer only.
    pub item_features: FeatureKinds,
    /// With `"tags"`: how many of the most frequent tags become features (50).
    pub tags_top: usize,
}

impl Item2VecConfig {
    /// What the training loss is: "softmax cross-entropy" or "negative-sampling loss" (the
    /// logistic loss of the true token and `negatives` sampled ones: not a cross-entropy over
    /// the vocabulary, and not comparable with `ln V`).
    pub fn loss_name(&self) -> &'static str {
        match self.loss {
            OutputLoss::FullSoftmax => "softmax cross-entropy",
            OutputLoss::NegativeSampling => "negative-sampling loss",
        }
    }

    /// Checks every key against its allowed range; `prefix` is the key path of this table in
    /// the pipeline config (`model`).
    pub fn validate(&self, prefix: &str) -> Result<(), ModelError> {
        use crate::pipelines::{check_dim, check_key};
        check_dim(&format!("{prefix}.dim"), self.dim)?;
        check_key(&format!("{prefix}.window"), self.window, "1 to 1000", (1..=1000).contains(&self.window))?;
        if self.loss == OutputLoss::NegativeSampling {
            let n = self.negatives;
            check_key(
                &format!("{prefix}.negatives"),
                n,
                "1 to 1000 with negative sampling",
                (1..=1000).contains(&n),
            )?;
            let p = self.unigram_power;
            check_key(
                &format!("{prefix}.unigram_power"),
                p,
                "a finite number >= 0",
                p.is_finite() && p >= 0.0,
            )?;
        }
        if self.trainer != Item2VecTrainer::Engine {
            check_key(
                &format!("{prefix}.trainer"),
                self.trainer.as_str(),
                "`engine`, or `pair_sgd` / `pair_sgd_hogwild` with `loss = \"negative_sampling\"`",
                self.loss == OutputLoss::NegativeSampling,
            )?;
        }
        check_key(&format!("{prefix}.tags_top"), self.tags_top, "at least 1", self.tags_top >= 1)?;
        check_key(
            &format!("{prefix}.pair_lanes"),
            self.pair_lanes,
            "1 to 256",
            (1..=sgd::MAX_PAIR_LANES).contains(&self.pair_lanes),
        )?;
        if !self.item_features.is_empty() {
            check_key(
                &format!("{prefix}.item_features"),
                format!("{:?}", self.item_features.names()),
                "[] (none) with `trainer = \"pair_sgd\"`: item features train through the engine trainer only",
                self.trainer == Item2VecTrainer::Engine,
            )?;
        }
        let s = self.sample;
        check_key(&format!("{prefix}.sample"), s, "a finite number >= 0", s.is_finite() && s >= 0.0)?;
        if let Some(a) = self.alpha {
            check_key(&format!("{prefix}.alpha"), a, "a finite number > 0", a.is_finite() && a > 0.0)?;
        }
        if let Some(a) = self.min_alpha {
            check_key(&format!("{prefix}.min_alpha"), a, "a finite number >= 0", a.is_finite() && a >= 0.0)?;
        }
        Ok(())
    }

    /// True when the training examples are redrawn every epoch (gensim's `sample` > 0 or
    /// `shrink_windows`), see [`EpochSampling`].
    pub fn resamples(&self) -> bool {
        self.sample > 0.0 || self.shrink_windows
    }

    /// The training loss of an uninformed model over `vocab` tokens: `ln V` for the softmax
    /// (uniform prediction), `(1 + negatives) ln 2` for negative sampling (every logit 0).
    pub fn loss_baseline(&self, vocab: usize) -> f64 {
        match self.loss {
            OutputLoss::FullSoftmax => (vocab.max(1) as f64).ln(),
            OutputLoss::NegativeSampling => (1 + self.negatives) as f64 * std::f64::consts::LN_2,
        }
    }
}

impl Default for Item2VecConfig {
    fn default() -> Self {
        Self {
            architecture: Architecture::Cbow,
            dim: 20,
            window: 1,
            context_side: ContextSide::Both,
            drop_ends: true,
            context: ContextReduce::Sum,
            loss: OutputLoss::FullSoftmax,
            negatives: 5,
            unigram_power: 0.75,
            sample: 0.0,
            shrink_windows: false,
            alpha: None,
            min_alpha: None,
            trainer: Item2VecTrainer::Engine,
            pair_lanes: sgd::DEFAULT_PAIR_LANES,
            item_features: FeatureKinds::default(),
            tags_top: 50,
        }
    }
}
