//! The `corpus` suite (issue 11): reelvec's skip-gram and CBOW with negative sampling beside
//! gensim's Word2Vec (`benches/peers/gensim_corpus.py`) on one sequence corpus, at 1 and 2
//! threads. The corpus is synthetic: reelvec-data's generator at the ml-25m shape (all 59,047
//! movies, `--scale-fraction` of its users), one line per user with the movies in watch order
//! as tokens `m<movieId>`; the last 10% of the lines are held out. Both sides train on the same
//! file with the same window, negatives, unigram power, dimension, epochs, `sample`, shrunk
//! windows, `min_count` and `alpha -> min_alpha` (0.025 -> 0.0001, the script's defaults); both
//! train by per-pair SGD (gensim's Hogwild workers; reelvec twice, `model.trainer = "pair_sgd"`
//! in deterministic lanes and `"pair_sgd_hogwild"` with lock-free workers, CBOW with the context
//! mean as gensim's `cbow_mean=1`); gensim runs once per architecture and thread count and both
//! of our rows compare with that run. Speed: training words (corpus tokens after `min_count`, the
//! same count for both sides) per second of training alone (`model.train` in the script,
//! `sgd::train_pairs` here); CPU time at 1 thread is the robust figure. Quality, computed by the same code from both
//! sides' exported word2vec text: next-token hit@10 on the held-out lines (for each consecutive
//! pair `(a, b)`, is `b` among the 10 tokens nearest `a` by cosine, `a` excluded).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use ndarray::Array2;
use reelvec_data::corpus::{read_corpus, CorpusOptions};
use reelvec_data::synth::{self, Preset};
use reelvec_data::transforms;
use reelvec_engine::TrainConfig;
use reelvec_metrics::ranking::target_rank;
use reelvec_models::item2vec::{
    sgd, Architecture, ContextReduce, Item2Vec, Item2VecConfig, Item2VecTrainer, OutputLoss,
};
use reelvec_models::traits::ItemEmbeddings;
use serde_json::Value;

use crate::error::{bail, Context, Result};
use crate::report::{Case, Clock, Figure, Quality, Timing};

/// Threads each case runs at (both sides).
pub const THREADS: [usize; 2] = [1, 2];

/// Held-out pairs the quality figure reads at most (the first ones, in file order).
pub const MAX_PAIRS: usize = 2000;

/// What the corpus suite runs.
#[derive(Debug)]
pub struct CorpusPlan<'a> {
    /// Share of ml-25m's users generated, in (0, 1].
    pub fraction: f64,
    /// Epochs of both sides.
    pub epochs: usize,
    /// benches/peers (the script `gensim_corpus.py`), when the peer runs.
    pub peers: Option<&'a Path>,
    /// A scratch folder for the corpus, the vectors and the script's reports.
    pub work: &'a Path,
}

/// The shared settings (gensim's names): window, negatives, ns_exponent, dim, sample, min_count,
/// alpha, min_alpha.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Window.
    pub window: usize,
    /// Negatives per positive.
    pub negative: usize,
    /// Unigram power of the noise distribution.
    pub ns_exponent: f64,
    /// Vector size.
    pub dim: usize,
    /// Subsampling threshold.
    pub sample: f64,
    /// Minimum token count.
    pub min_count: u64,
    /// Starting learning rate.
    pub alpha: f32,
    /// Final learning rate.
    pub min_alpha: f32,
}

/// The suite's settings: word2vec's usual ones at dimension 64.
pub const SETTINGS: Settings = Settings {
    window: 5,
    negative: 5,
    ns_exponent: 0.75,
    dim: 64,
    sample: 1e-3,
    min_count: 5,
    alpha: 0.025,
    min_alpha: 0.0001,
};

/// Writes the corpus: the training lines and the held-out lines; returns a label.
fn write_corpus(fraction: f64, train: &Path, heldout: &Path) -> Result<String> {
    let mut config = Preset::Ml25m.config();
    config.n_users = ((crate::scale::FULL_USERS as f64 * fraction).round() as usize).max(100);
    let ds = synth::generate(&config).dataset;
    let sequences = transforms::user_sequences(&ds.ratings, ds.users.len());
    let cut = sequences.len() - sequences.len() / 10;
    let mut text = [String::new(), String::new()];
    for (i, seq) in sequences.iter().enumerate() {
        let out = &mut text[usize::from(i >= cut)];
        for (j, &m) in seq.iter().enumerate() {
            let raw = ds.movies.raw(m).unwrap_or(u64::from(m));
            let _ = write!(out, "{}m{raw}", if j == 0 { "" } else { " " });
        }
        out.push('\n');
    }
    for (path, t) in [(train, &text[0]), (heldout, &text[1])] {
        reelvec_outfile::write_file(path, t.as_bytes())?;
    }
    Ok(format!(
        "synthetic ml-25m shape, fraction {fraction}: {} sequences ({} held out), {} ratings, {} movies",
        sequences.len(),
        sequences.len() - cut,
        ds.ratings.len(),
        ds.movies.len()
    ))
}

/// Unit-length vectors of a word2vec text file, keyed by token.
pub fn read_word2vec(text: &str) -> Result<(HashMap<String, u32>, Array2<f32>)> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let dims: Vec<usize> = header.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let [n, k] = dims[..] else { bail!("word2vec header `{header}` is not `count dim`") };
    let mut keys = HashMap::with_capacity(n);
    let mut m = Array2::<f32>::zeros((n, k));
    for (i, line) in lines.enumerate().take(n) {
        let mut parts = line.split(' ');
        let token = parts.next().unwrap_or_default().to_string();
        let mut row = m.row_mut(i);
        for (j, x) in parts.filter(|p| !p.is_empty()).enumerate().take(k) {
            let Ok(v) = x.parse::<f32>() else { bail!("word2vec line {}: `{x}` is not a number", i + 2) };
            row[j] = v;
        }
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
        keys.insert(token, i as u32);
    }
    Ok((keys, m))
}

/// Next-token hit@10 of `vectors` (word2vec text) on the held-out lines: the share of
/// consecutive pairs `(a, b)` (both in the vocabulary, `a != b`, the first [`MAX_PAIRS`]) whose
/// `b` ranks among the 10 tokens most cosine-similar to `a`, `a` excluded.
pub fn next_token_hit_at_10(vectors: &str, heldout: &str) -> Result<(f64, usize)> {
    let (keys, m) = read_word2vec(vectors)?;
    let mut pairs = Vec::new();
    'lines: for line in heldout.lines() {
        let ids: Vec<Option<u32>> = line.split_whitespace().map(|t| keys.get(t).copied()).collect();
        for w in ids.windows(2) {
            if let [Some(a), Some(b)] = *w {
                if a != b {
                    pairs.push((a, b));
                    if pairs.len() == MAX_PAIRS {
                        break 'lines;
                    }
                }
            }
        }
    }
    if pairs.is_empty() {
        bail!("no held-out pair has both tokens in the vocabulary");
    }
    let mut hits = 0usize;
    for &(a, b) in &pairs {
        let scores = m.dot(&m.row(a as usize));
        let scores = scores.as_slice().unwrap_or_default();
        if target_rank(scores, b, &[a])? < 10 {
            hits += 1;
        }
    }
    Ok((hits as f64 / pairs.len() as f64, pairs.len()))
}

/// Our item2vec configuration for the suite's settings with `trainer`.
fn our_model(arch: Architecture, s: &Settings, trainer: Item2VecTrainer) -> Item2VecConfig {
    Item2VecConfig {
        architecture: arch,
        dim: s.dim,
        window: s.window,
        drop_ends: false,
        context: ContextReduce::Mean,
        loss: OutputLoss::NegativeSampling,
        negatives: s.negative,
        unigram_power: s.ns_exponent,
        sample: s.sample,
        shrink_windows: true,
        alpha: Some(s.alpha),
        min_alpha: Some(s.min_alpha),
        trainer,
        ..Item2VecConfig::default()
    }
}

/// Runs gensim at `threads`; its JSON report.
fn run_script(peers: &Path, python: &str, plan: &CorpusPlan<'_>, sg: bool, threads: usize) -> Result<Value> {
    let s = SETTINGS;
    let stem = format!("gensim-{}-t{threads}", if sg { "sg" } else { "cbow" });
    let json = plan.work.join(format!("{stem}.json"));
    let output = Command::new(python)
        .arg(peers.join("gensim_corpus.py"))
        .arg("--corpus")
        .arg(plan.work.join("train.txt"))
        .arg("--vectors")
        .arg(plan.work.join(format!("{stem}.txt")))
        .arg("--json")
        .arg(&json)
        .args(["--sg", if sg { "1" } else { "0" }])
        .args(["--dim", &s.dim.to_string(), "--window", &s.window.to_string()])
        .args(["--negative", &s.negative.to_string(), "--ns-exponent", &s.ns_exponent.to_string()])
        .args(["--sample", &s.sample.to_string(), "--min-count", &s.min_count.to_string()])
        .args(["--epochs", &plan.epochs.to_string(), "--threads", &threads.to_string()])
        .args(["--alpha", &s.alpha.to_string(), "--min-alpha", &s.min_alpha.to_string()])
        .output()
        .with_context(|| format!("cannot start {python}"))?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        bail!("gensim_corpus.py failed: {}", err.lines().last().unwrap_or("").trim());
    }
    let text = std::fs::read_to_string(&json).with_context(|| format!("cannot read {}", json.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", json.display()))
}

/// Runs skip-gram and CBOW at 1 and 2 threads on both sides; returns the data label and the
/// cases. A failure of the script is noted, never fatal.
pub fn run(plan: &CorpusPlan<'_>, notes: &mut Vec<String>) -> Result<(String, Vec<Case>)> {
    if !(plan.fraction > 0.0 && plan.fraction <= 1.0) {
        bail!("--scale-fraction must be in (0, 1], got {}", plan.fraction);
    }
    std::fs::create_dir_all(plan.work).with_context(|| format!("cannot create {}", plan.work.display()))?;
    let (train_path, heldout_path) = (plan.work.join("train.txt"), plan.work.join("heldout.txt"));
    let label = write_corpus(plan.fraction, &train_path, &heldout_path)?;
    let heldout = std::fs::read_to_string(&heldout_path)
        .with_context(|| format!("cannot read {}", heldout_path.display()))?;
    let s = SETTINGS;
    let options = CorpusOptions { min_count: s.min_count, ..CorpusOptions::default() };
    let corpus = read_corpus(&train_path, &options)?;
    let words: u64 = corpus.sequences.iter().map(|q| q.len() as u64).sum();
    notes.push(format!(
        "corpus: {} training lines, {words} training words after min_count {}, vocabulary {}; window {}, \
         negatives {}, ns_exponent {}, dim {}, sample {}, shrunk windows, {} epochs on both sides; \
         quality: next-token hit@10 over the first {MAX_PAIRS} held-out pairs from each side's exported vectors",
        corpus.sequences.len(),
        s.min_count,
        corpus.tokens.len(),
        s.window,
        s.negative,
        s.ns_exponent,
        s.dim,
        s.sample,
        plan.epochs
    ));
    let python = std::env::var("REELVEC_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let pools = crate::report::thread_pools(&THREADS)?;
    let mut cases = Vec::new();
    for arch in [Architecture::Skipgram, Architecture::Cbow] {
        let sg = arch == Architecture::Skipgram;
        let name = if sg { "skip-gram" } else { "CBOW" };
        for (&threads, pool) in THREADS.iter().zip(&pools) {
            let stem = format!("gensim-{}-t{threads}", if sg { "sg" } else { "cbow" });
            let peer_load_before = crate::report::load_average();
            let peer = match plan.peers {
                Some(dir) => match run_script(dir, &python, plan, sg, threads) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        notes.push(format!("gensim {name} at {threads} thread(s): {e}"));
                        None
                    }
                },
                None => None,
            };
            let peer_load = [peer_load_before, crate::report::load_average()];
            let peer_hit = match &peer {
                Some(_) => {
                    let path = plan.work.join(format!("{stem}.txt"));
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    Some(next_token_hit_at_10(&text, &heldout)?.0)
                }
                None => None,
            };
            // Both sides' words/s count the same words (ours after min_count) per epoch.
            let peer_timing = peer.as_ref().and_then(|v| {
                let e = v["epochs"].as_u64()?.max(1) as usize;
                Some(Timing {
                    units: e,
                    wall_per_unit: v["fit_seconds"].as_f64()? / e as f64,
                    cpu_per_unit: v["fit_cpu_seconds"].as_f64().map(|c| c / e as f64),
                    examples_per_unit: Some(words as f64),
                    load_average_1min: peer_load,
                })
            });
            for trainer in [Item2VecTrainer::PairSgd, Item2VecTrainer::PairSgdHogwild] {
                let model = our_model(arch, &s, trainer);
                let train = TrainConfig {
                    epochs: plan.epochs,
                    seed: 42,
                    lr: s.alpha,
                    early_stopping: None,
                    restore_best: false,
                    quiet: true,
                    ..TrainConfig::default()
                };
                let vocab = corpus.tokens.len();
                // Timed: the training alone, as the script times `model.train` alone.
                let clock = Clock::start();
                let trained = pool.install(|| sgd::train_pairs(&corpus.sequences, vocab, &model, &train, 42));
                let spent = clock.elapsed();
                let (params, history) = trained.with_context(|| format!("training our {name}"))?;
                let epochs = history.epochs.len().max(1);
                let fitted = Item2Vec::new(model, params)?;
                let ours_text =
                    reelvec_models::export::word2vec_tokens_string(&corpus.tokens, fitted.item_embeddings())?;
                let (ours_hit, n_pairs) = next_token_hit_at_10(&ours_text, &heldout)?;
                tracing::info!(
                    "bench: corpus {name} {} at {threads} thread(s): {:.2}s, hit@10 {ours_hit:.4}",
                    trainer.as_str(),
                    spent.wall
                );
                let mut figures = vec![Figure::new(
                    "reelvec training words/s",
                    words as f64 * epochs as f64 / spent.wall,
                    "words/s",
                )];
                if let Some(t) = &peer_timing {
                    figures.push(Figure::new(
                        "gensim training words/s",
                        words as f64 / t.wall_per_unit,
                        "words/s",
                    ));
                }
                figures.push(Figure::new("held-out pairs scored", n_pairs as f64, "pairs"));
                let hogwild = trainer == Item2VecTrainer::PairSgdHogwild;
                // The speed target holds at equal quality only (issues 11 and 13).
                let below = peer_hit.filter(|&p| !equal_quality(ours_hit, p, n_pairs));
                let mut note = if hogwild {
                    "ours: per-pair SGD, Hogwild (model.trainer = pair_sgd_hogwild: lock-free shared tables, results vary with thread scheduling); gensim: Hogwild SGD (the same gensim run as the pair_sgd row); both alpha 0.025 -> 0.0001; both timed on training alone".to_string()
                } else {
                    format!(
                        "ours: per-pair SGD (model.trainer = pair_sgd, {} deterministic lanes, bitwise identical for any thread count); gensim: Hogwild SGD; both alpha 0.025 -> 0.0001; both timed on training alone",
                        model.pair_lanes
                    )
                };
                if let Some(p) = below {
                    let _ = write!(
                        note,
                        "; QUALITY BELOW gensim's beyond noise (hit@10 {ours_hit:.4} vs {p:.4}): no speed target is judged"
                    );
                }
                cases.push(Case {
                    id: format!(
                        "corpus-{}{}-t{threads}",
                        if sg { "sg" } else { "cbow" },
                        if hogwild { "-hogwild" } else { "" }
                    ),
                    name: format!(
                        "{name} negative sampling ({}) vs gensim Word2Vec, window {}, negatives {}, dim {}, sample {}, {threads} thread(s)",
                        trainer.as_str(), s.window, s.negative, s.dim, s.sample
                    ),
                    unit: "epoch".into(),
                    ours: Timing {
                        units: epochs,
                        wall_per_unit: spent.wall / epochs as f64,
                        cpu_per_unit: spent.cpu.map(|c| c / epochs as f64),
                        examples_per_unit: Some(words as f64),
                        load_average_1min: spent.load,
                    },
                    peer: peer_timing,
                    same_rows: peer.as_ref().map(|_| true),
                    target_speedup: below.is_none().then_some(1.0),
                    quality: vec![Quality::new("next-token hit@10 (held-out lines)", Some(ours_hit), peer_hit)],
                    figures,
                    note: Some(note),
                    load_refused: None,
                });
            }
        }
    }
    Ok((label, cases))
}

/// Whether hit rate `ours` is as good as `peer`'s within noise, both over `n` held-out pairs: not
/// below it by more than two standard errors of the difference of two proportions,
/// `2 sqrt(2 p (1 - p) / n)` at their mean `p`.
fn equal_quality(ours: f64, peer: f64, n: usize) -> bool {
    let p = (ours + peer) / 2.0;
    let two_se = 2.0 * (2.0 * p * (1.0 - p) / n.max(1) as f64).sqrt();
    ours >= peer - two_se
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn equal_quality_allows_two_standard_errors() {
        // n = 2000 at p = 0.25: 2 SE of the difference = 2 sqrt(2 * 0.1875 / 2000) = 0.0274.
        assert!(equal_quality(0.2765, 0.288, 2000));
        assert!(equal_quality(0.30, 0.25, 2000));
        assert!(equal_quality(0.2235, 0.25, 2000));
        assert!(!equal_quality(0.2035, 0.2535, 2000));
        assert!(!equal_quality(0.192, 0.288, 2000));
    }

    #[test]
    fn next_token_hits_by_hand() {
        // a ~ b (cosine 1), c orthogonal: the pair (a, b) ranks b first; (a, c) ranks c second
        // of two candidates, also within 10. With 12 decoys nearer a than c, (a, c) misses.
        let mut text = String::from("15 2\na 1 0\nb 2 0\nc 0 1\n");
        for i in 0..12 {
            let _ = writeln!(text, "d{i} 1 {}", 0.1 + i as f32 * 0.01);
        }
        let (keys, m) = read_word2vec(&text).unwrap();
        assert_eq!(keys["c"], 2);
        assert!((m[[1, 0]] - 1.0).abs() < 1e-6);
        let (hit, n) = next_token_hit_at_10(&text, "a b\na c\nzz a\n").unwrap();
        assert_eq!(n, 2);
        assert!((hit - 0.5).abs() < 1e-12);
        assert!(next_token_hit_at_10(&text, "zz yy\n").is_err());
        assert!(read_word2vec("bad\n").is_err());
    }
}
