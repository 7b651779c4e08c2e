//! Negative sampling on the GPU: `ns_step` under the engine's optimizers with the CPU's draws
//! ([`NegativeLaunch`], the device sampling table), and word2vec's Hogwild SGNS ([`GpuSgns`],
//! [`SgnsCorpus`], the alias table, [`SgnsConfig`], [`train_sgns`]).

#[allow(clippy::wildcard_imports)]
use super::*;

/// The device side of negative sampling under the engine's optimizers.
#[derive(Debug)]
pub(super) struct DeviceNegatives {
    pub(super) step: CudaFunction,
    pub(super) cdf: CudaSlice<f64>,
    pub(super) seed: u64,
    /// Training batches so far: the draw id of the next one (the CPU objective's call count).
    pub(super) draws: u64,
}

/// What a negative-sampling launch reads besides its rows: the model's shape and the examples.
pub(super) struct NegativeLaunch<'a> {
    pub(super) config: &'a Item2VecConfig,
    pub(super) tables: &'a Item2VecTables,
    pub(super) vocab: usize,
    pub(super) ex: &'a DeviceExamples,
}

impl NegativeLaunch<'_> {
    /// `ns_step` over `rows` (positions 0.. in the batch), draw `draw`; with `grads` the gradient
    /// of the batch loss times `scale` (1 / count: the batch mean).
    #[allow(clippy::too_many_arguments)] // the per-call pieces; the fixed ones are in self
    pub(super) fn run(
        &self,
        gpu: &Gpu,
        ns: &DeviceNegatives,
        rows: &CudaView<'_, u32>,
        params: &GpuParams,
        grads: Option<&mut GpuGrads>,
        scratch: &mut Scratch,
        scale: f32,
        draw: u64,
        loss_sum: &mut CudaViewMut<'_, f64>,
    ) -> Result<(), EngineError> {
        let n = rows.len();
        if n == 0 {
            return Ok(());
        }
        let (n32, v32, k32) = (n as u32, self.vocab as u32, self.config.dim as u32);
        let first_position = 0u32;
        let skipgram = i32::from(self.config.architecture == Architecture::Skipgram);
        let mean = i32::from(self.config.context == ContextReduce::Mean);
        let negatives = self.config.negatives as u32;
        let grad = i32::from(grads.is_some());
        let emb = &params.get(self.tables.embedding).data;
        let w = &params.get(self.tables.out_weight).data;
        let b = &params.get(self.tables.out_bias).data;
        const WARPS: u32 = 8; // NS_WARPS in negative.cu
        let cfg = LaunchConfig {
            grid_dim: (n32.div_ceil(WARPS), 1, 1),
            block_dim: (32 * WARPS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = gpu.stream().launch_builder(&ns.step);
        l.arg(rows)
            .arg(&n32)
            .arg(&first_position)
            .arg(&v32)
            .arg(&k32)
            .arg(emb)
            .arg(w)
            .arg(b)
            .arg(&self.ex.ctx_offsets)
            .arg(&self.ex.ctx_tokens)
            .arg(&self.ex.targets)
            .arg(&skipgram)
            .arg(&mean)
            .arg(&ns.cdf)
            .arg(&negatives)
            .arg(&ns.seed)
            .arg(&draw)
            .arg(&scale)
            .arg(&grad);
        let mut split = grads.map(|g| grad_tables(g, self.tables));
        match split.as_mut() {
            Some((ge, gw, gb)) => {
                l.arg(&mut ge.data)
                    .arg(&mut ge.touched)
                    .arg(&mut gw.data)
                    .arg(&mut gw.touched)
                    .arg(&mut gb.data)
                    .arg(&mut gb.touched);
            }
            // Without gradients the kernel writes only the loss; scratch buffers stand in for
            // the unused gradient pointers.
            None => {
                let (f, u) = (&scratch.dh, &scratch.no_rank);
                l.arg(f).arg(u).arg(f).arg(u).arg(f).arg(u);
            }
        }
        l.arg(&mut *loss_sum);
        // SAFETY: rows holds n example ids of `ex`; the tables are V x k, V x k and V.
        unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("ns_step", e))?;
        Ok(())
    }
}

/// A corpus of token sequences, flat: `tokens[offsets[s]..offsets[s + 1]]` is sequence `s`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SgnsCorpus {
    /// Every token, sequence after sequence.
    pub tokens: Vec<u32>,
    /// `sequences + 1` offsets into `tokens`.
    pub offsets: Vec<u32>,
}

impl SgnsCorpus {
    /// Flattens `sequences`.
    pub fn from_sequences(sequences: &[Vec<u32>]) -> Self {
        let total: usize = sequences.iter().map(Vec::len).sum();
        let mut tokens = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(sequences.len() + 1);
        offsets.push(0);
        for s in sequences {
            tokens.extend_from_slice(s);
            offsets.push(tokens.len() as u32);
        }
        Self { tokens, offsets }
    }

    /// Number of (centre, context) pairs with window `window` on `side`: every position (but
    /// the first and last of each sequence with `drop_ends`) pairs with each existing neighbour
    /// of [`ContextSide::window_bounds`] — the count of
    /// [`Examples::build_sided`]`(.., window, side, drop_ends)`'s context tokens.
    pub fn pair_count(&self, window: usize, side: ContextSide, drop_ends: bool) -> u64 {
        let mut pairs = 0u64;
        for s in self.offsets.windows(2) {
            let len = (s[1] - s[0]) as usize;
            for i in 0..len {
                if drop_ends && (i == 0 || i + 1 >= len) {
                    continue;
                }
                let (lo, hi) = side.window_bounds(i, len, window);
                pairs += (hi - lo) as u64;
            }
        }
        pairs
    }
}

/// Walker's alias table of `counts^power`: `(prob, alias)` per token; a draw picks a bucket
/// uniformly and keeps it with probability `prob[bucket]`, else takes `alias[bucket]`.
pub fn alias_table(counts: &[u64], power: f64) -> Option<(Vec<f32>, Vec<u32>)> {
    let v = counts.len();
    let weights: Vec<f64> =
        counts.iter().map(|&c| if c == 0 { 0.0 } else { (c as f64).powf(power) }).collect();
    let total: f64 = weights.iter().sum();
    if v == 0 || total <= 0.0 || !total.is_finite() {
        return None;
    }
    let mut scaled: Vec<f64> = weights.iter().map(|w| w * v as f64 / total).collect();
    let mut prob = vec![1.0f32; v];
    let mut alias: Vec<u32> = (0..v as u32).collect();
    let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..v).partition(|&i| scaled[i] < 1.0);
    while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
        prob[s] = scaled[s] as f32;
        alias[s] = l as u32;
        scaled[l] -= 1.0 - scaled[s];
        if scaled[l] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    // Leftovers (rounding) keep themselves with probability 1, except zero-weight tokens.
    for i in small.into_iter().chain(large) {
        prob[i] = 1.0;
        alias[i] = i as u32;
    }
    // A zero-weight token must never be drawn: point its bucket at a token with weight.
    if let Some(any) = weights.iter().position(|&w| w > 0.0) {
        for i in 0..v {
            if weights[i] == 0.0 && prob[i] > 0.0 && alias[i] as usize == i {
                prob[i] = 0.0;
                alias[i] = any as u32;
            }
        }
    }
    Some((prob, alias))
}

/// SGNS hyperparameters (word2vec's defaults where they apply).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgnsConfig {
    /// Embedding size `k` (<= [`SGNS_MAX_DIM`]).
    pub dim: usize,
    /// Window `w` (5).
    pub window: usize,
    /// Context of a centre: both sides (default) or the previous tokens only (causal).
    pub context_side: ContextSide,
    /// Drop the first and last position of every sequence as centres (false).
    pub drop_ends: bool,
    /// Negatives per pair (5, <= [`SGNS_MAX_NEGATIVES`]).
    pub negatives: usize,
    /// Exponent of the unigram noise distribution (0.75).
    pub unigram_power: f64,
    /// Epochs (5).
    pub epochs: usize,
    /// Starting learning rate (0.025), decayed linearly over the run.
    pub lr: f32,
    /// The lr never falls below `lr * min_lr_fraction` (1e-4).
    pub min_lr_fraction: f32,
    /// Seed of the initialisation and the negative draws.
    pub seed: u64,
    /// Apply every update with atomicAdd (true; no lost updates on popular rows) or plain
    /// stores (word2vec's Hogwild).
    pub atomic_updates: bool,
}

impl Default for SgnsConfig {
    fn default() -> Self {
        Self {
            dim: 64,
            window: 5,
            context_side: ContextSide::Both,
            drop_ends: false,
            negatives: 5,
            unigram_power: 0.75,
            epochs: 5,
            lr: 0.025,
            min_lr_fraction: 1e-4,
            seed: 42,
            atomic_updates: true,
        }
    }
}

impl SgnsConfig {
    /// Checks the sizes against the kernel's limits (`SGNS_MAX_*`) and the rest for sense.
    pub fn check(&self) -> Result<(), ModelError> {
        if self.dim == 0 || self.dim > SGNS_MAX_DIM {
            return Err(ModelError::InvalidConfig(format!(
                "SGNS on the GPU needs 1 <= dim <= {SGNS_MAX_DIM} (got {})",
                self.dim
            )));
        }
        if self.negatives > SGNS_MAX_NEGATIVES {
            return Err(ModelError::InvalidConfig(format!(
                "SGNS on the GPU draws at most {SGNS_MAX_NEGATIVES} negatives per pair (got {})",
                self.negatives
            )));
        }
        if self.window == 0 {
            return Err(ModelError::InvalidConfig("SGNS needs window >= 1".into()));
        }
        Ok(())
    }

    /// The matching model configuration (skip-gram, negative sampling).
    pub fn model_config(&self) -> Item2VecConfig {
        Item2VecConfig {
            architecture: Architecture::Skipgram,
            dim: self.dim,
            window: self.window,
            context_side: self.context_side,
            drop_ends: self.drop_ends,
            context: ContextReduce::Sum,
            loss: OutputLoss::NegativeSampling,
            negatives: self.negatives,
            unigram_power: self.unigram_power,
            ..Item2VecConfig::default()
        }
    }
}

/// One SGNS epoch's figures.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SgnsEpoch {
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean loss per pair (before each pair's update).
    pub loss: f64,
    /// Pairs trained.
    pub pairs: u64,
    /// Wall time of the epoch's kernel (launch to completion).
    pub seconds: f64,
}

/// A corpus on the device, ready for SGNS epochs.
#[derive(Debug)]
pub struct GpuSgns {
    pub(super) tokens: CudaSlice<u32>,
    pub(super) tok_seq: CudaSlice<u32>,
    pub(super) offsets: CudaSlice<u32>,
    pub(super) alias_prob: CudaSlice<f32>,
    pub(super) alias_idx: CudaSlice<u32>,
    pub(super) n_tokens: usize,
    pub(super) n_seqs: usize,
    pub(super) vocab: usize,
    pub(super) counters_loss: CudaSlice<f64>,
    pub(super) counters_pairs: CudaSlice<u64>,
    pub(super) sgns: CudaFunction,
    pub(super) count: CudaFunction,
}

impl GpuSgns {
    /// Uploads `corpus` (once) with the unigram^`power` noise table of its token counts.
    pub fn new(gpu: &Gpu, corpus: &SgnsCorpus, vocab: usize, power: f64) -> Result<Self, ModelError> {
        if corpus.tokens.len() >= u32::MAX as usize {
            return Err(ModelError::InvalidData("SGNS corpus above 2^32 tokens".into()));
        }
        let mut counts = vec![0u64; vocab];
        for &t in &corpus.tokens {
            let slot = counts.get_mut(t as usize).ok_or_else(|| {
                ModelError::InvalidData(format!("token {t} outside the vocabulary of {vocab}"))
            })?;
            *slot += 1;
        }
        let (prob, alias) = alias_table(&counts, power)
            .ok_or_else(|| ModelError::InvalidData("SGNS needs at least one token".into()))?;
        let n_seqs = corpus.offsets.len().saturating_sub(1);
        let tokens = gpu.upload(&corpus.tokens, "SGNS tokens")?;
        let offsets = gpu.upload(&corpus.offsets, "SGNS sequence offsets")?;
        let mut tok_seq = gpu.zeros::<u32>(corpus.tokens.len(), "SGNS token -> sequence map")?;
        let f = gpu.function(&NEGATIVE_CU, "token_sequences")?;
        {
            let n = n_seqs as u32;
            let mut l = gpu.stream().launch_builder(&f);
            l.arg(&offsets).arg(&n).arg(&mut tok_seq);
            let blocks = (n_seqs.clamp(1, 65_535)) as u32;
            let cfg = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (128, 1, 1), shared_mem_bytes: 0 };
            // SAFETY: offsets has n_seqs + 1 entries; tok_seq one slot per token.
            unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("token_sequences", e))?;
        }
        Ok(Self {
            tokens,
            tok_seq,
            offsets,
            alias_prob: gpu.upload(&prob, "SGNS alias probabilities")?,
            alias_idx: gpu.upload(&alias, "SGNS alias table")?,
            n_tokens: corpus.tokens.len(),
            n_seqs,
            vocab,
            counters_loss: gpu.zeros(1, "SGNS loss sum")?,
            counters_pairs: gpu.zeros(1, "SGNS pair counter")?,
            sgns: gpu.function(&NEGATIVE_CU, "sgns_epoch")?,
            count: gpu.function(&NEGATIVE_CU, "count_pairs")?,
        })
    }

    /// Number of sequences.
    pub fn sequences(&self) -> usize {
        self.n_seqs
    }

    /// The pairs of one epoch, counted on the device.
    pub fn device_pair_count(
        &mut self,
        gpu: &Gpu,
        window: usize,
        side: ContextSide,
        drop_ends: bool,
    ) -> Result<u64, EngineError> {
        gpu.stream()
            .memset_zeros(&mut self.counters_pairs)
            .map_err(|e| driver("clearing the pair counter", e))?;
        let (n, w, d) = (self.n_tokens as u32, window as u32, i32::from(drop_ends));
        let previous = i32::from(side == ContextSide::Previous);
        let mut l = gpu.stream().launch_builder(&self.count);
        l.arg(&self.tok_seq)
            .arg(&self.offsets)
            .arg(&n)
            .arg(&w)
            .arg(&previous)
            .arg(&d)
            .arg(&mut self.counters_pairs);
        let mut cfg = grid_for(self.n_tokens);
        cfg.grid_dim.0 = cfg.grid_dim.0.min(gpu.multiprocessors() as u32 * 16);
        // SAFETY: every buffer covers n tokens / the sequences.
        unsafe { l.launch(cfg) }.map_err(|e| gpu.launch_error("count_pairs", e))?;
        Ok(gpu.download(&self.counters_pairs, 1, "SGNS pair counter")?[0])
    }

    /// Runs epoch `epoch` of `cfg` on `params`' tables (waits for it: one read of the loss and
    /// the pair count).
    pub fn epoch(
        &mut self,
        gpu: &Gpu,
        params: &mut GpuParams,
        tables: &Item2VecTables,
        cfg: &SgnsConfig,
        epoch: usize,
    ) -> Result<SgnsEpoch, ModelError> {
        cfg.check()?;
        let e_table = params.get(tables.embedding);
        if e_table.rows != self.vocab || e_table.cols != cfg.dim {
            return Err(ModelError::InvalidData(format!(
                "SGNS tables are {}x{}, expected {}x{}",
                e_table.rows, e_table.cols, self.vocab, cfg.dim
            )));
        }
        let stream = gpu.stream();
        stream.memset_zeros(&mut self.counters_loss).map_err(|e| driver("clearing the SGNS loss", e))?;
        stream.memset_zeros(&mut self.counters_pairs).map_err(|e| driver("clearing the pair counter", e))?;
        gpu.sync("SGNS set-up")?;
        let started = Instant::now();
        let n_tokens = self.n_tokens as u32;
        let v = self.vocab as u32;
        let (k, w, d, neg) =
            (cfg.dim as u32, cfg.window as u32, i32::from(cfg.drop_ends), cfg.negatives as u32);
        let previous = i32::from(cfg.context_side == ContextSide::Previous);
        let epoch32 = epoch as u32;
        let base = epoch as f64 * self.n_tokens as f64;
        let total = (cfg.epochs.max(epoch + 1) as f64 * self.n_tokens as f64).max(1.0);
        let (lr, min_frac) = (cfg.lr, cfg.min_lr_fraction);
        let seed = cfg.seed;
        let atomics = i32::from(cfg.atomic_updates);
        // Three tables mutably at once: take them out of the store order by index.
        let (ei, wi, bi) = (tables.embedding.0, tables.out_weight.0, tables.out_bias.0);
        let mut slots: Vec<Option<&mut CudaSlice<f32>>> =
            params.tables_mut().iter_mut().map(|t| Some(&mut t.data)).collect();
        let (Some(emb), Some(wt), Some(bt)) = (slots[ei].take(), slots[wi].take(), slots[bi].take()) else {
            return Err(ModelError::InvalidData("item2vec tables must be three distinct tables".into()));
        };
        let mut l = stream.launch_builder(&self.sgns);
        l.arg(&self.tokens)
            .arg(&self.tok_seq)
            .arg(&self.offsets)
            .arg(&n_tokens)
            .arg(&self.alias_prob)
            .arg(&self.alias_idx)
            .arg(&v)
            .arg(emb)
            .arg(wt)
            .arg(bt)
            .arg(&k)
            .arg(&w)
            .arg(&previous)
            .arg(&d)
            .arg(&neg)
            .arg(&seed)
            .arg(&epoch32)
            .arg(&base)
            .arg(&total)
            .arg(&lr)
            .arg(&min_frac)
            .arg(&atomics)
            .arg(&mut self.counters_loss)
            .arg(&mut self.counters_pairs);
        // A grid of resident blocks only, so the grid-stride sweep (and the lr schedule that
        // follows it) runs through the corpus in order.
        let resident =
            self.sgns.occupancy_max_active_blocks_per_multiprocessor(256, 0, None).unwrap_or(4).max(1);
        let blocks = self.n_tokens.div_ceil(8).clamp(1, gpu.multiprocessors() * resident as usize) as u32;
        let launch = LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: tables are vocab x dim (checked), the corpus buffers cover n_tokens.
        unsafe { l.launch(launch) }.map_err(|e| gpu.launch_error("sgns_epoch", e))?;
        gpu.sync("the SGNS epoch")?;
        let seconds = started.elapsed().as_secs_f64();
        let loss = gpu.download(&self.counters_loss, 1, "SGNS loss sum")?[0];
        let pairs = gpu.download(&self.counters_pairs, 1, "SGNS pair counter")?[0];
        Ok(SgnsEpoch { epoch, loss: loss / pairs.max(1) as f64, pairs, seconds })
    }
}

/// word2vec's initialisation of the three item2vec tables: embedding U(-0.5/k, 0.5/k), output
/// weights and biases zero.
pub fn sgns_params(vocab: usize, cfg: &SgnsConfig) -> Result<(ParamStore, Item2VecTables), ModelError> {
    let mut params = ParamStore::new();
    let model = cfg.model_config();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let tables = Item2VecTables::register(&mut params, vocab, &model, &mut rng)?;
    let half = 0.5 / cfg.dim as f32;
    for x in params.get_mut(tables.embedding).data.iter_mut() {
        *x = rng.random_range(-half..half);
    }
    params.get_mut(tables.out_weight).data.iter_mut().for_each(|x| *x = 0.0);
    params.get_mut(tables.out_bias).data.iter_mut().for_each(|x| *x = 0.0);
    Ok((params, tables))
}

/// Trains skip-gram with negative sampling on the device over `sequences` (tokens `< vocab`):
/// the model (kind skip-gram, negative sampling) and the per-epoch figures.
pub fn train_sgns(
    gpu: &Gpu,
    sequences: &[Vec<u32>],
    vocab: usize,
    cfg: &SgnsConfig,
) -> Result<(Item2Vec, Vec<SgnsEpoch>), ModelError> {
    cfg.check()?;
    let corpus = SgnsCorpus::from_sequences(sequences);
    let mut sgns = GpuSgns::new(gpu, &corpus, vocab, cfg.unigram_power)?;
    let (mut params, tables) = sgns_params(vocab, cfg)?;
    let mut dev = GpuParams::upload(gpu, &params)?;
    let mut history = Vec::with_capacity(cfg.epochs);
    for epoch in 0..cfg.epochs {
        let stats = sgns.epoch(gpu, &mut dev, &tables, cfg, epoch)?;
        if !stats.loss.is_finite() {
            return Err(ModelError::InvalidData(format!(
                "SGNS diverged at epoch {epoch} (loss {})",
                stats.loss
            )));
        }
        tracing::info!(epoch, loss = stats.loss, pairs = stats.pairs, seconds = stats.seconds, "SGNS epoch");
        history.push(stats);
    }
    dev.download_into(gpu, &mut params)?;
    Ok((Item2Vec::new(cfg.model_config(), params)?, history))
}
