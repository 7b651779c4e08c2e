//! End-to-end tests of `reelvec train`, `similar`, `recommend`, `predict` and `export` on a tiny
//! MovieLens-latest-style data set written to a temporary directory.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const N_USERS: u64 = 40;
const N_MOVIES: u64 = 12;

fn title(m: u64) -> String {
    match m {
        1 => "Alpha (1990)".into(),
        2 => "Alpha Returns (1992)".into(),
        3 => "Gamma Ray (1985)".into(),
        _ => format!("Film Number {m} (19{})", 60 + m),
    }
}

/// Users rate 8 of 12 movies; even users love movies 1..=6, odd users love 7..=12.
fn write_data(dir: &Path) -> Vec<(u64, u64)> {
    let mut ratings = String::from("userId,movieId,rating,timestamp\n");
    let mut pairs = Vec::new();
    for u in 1..=N_USERS {
        for j in 0..8 {
            let m = (u + j * 5) % N_MOVIES + 1;
            if pairs.contains(&(u, m)) {
                continue;
            }
            let loves = (m <= 6) == (u % 2 == 0);
            let r = if loves { 4.5 + (m % 2) as f64 * 0.5 } else { 1.0 + (m % 3) as f64 * 0.5 };
            ratings.push_str(&format!("{u},{m},{r},{}\n", 1_000_000 + u * 100 + j));
            pairs.push((u, m));
        }
    }
    let mut movies = String::from("movieId,title,genres\n");
    for m in 1..=N_MOVIES {
        movies.push_str(&format!("{m},{},Drama\n", title(m)));
    }
    std::fs::write(dir.join("ratings.csv"), ratings).unwrap();
    std::fs::write(dir.join("movies.csv"), movies).unwrap();
    pairs
}

fn reelvec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reelvec")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = reelvec(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "reelvec {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn fails(args: &[&str]) -> String {
    let out = reelvec(args);
    assert!(!out.status.success(), "reelvec {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    root: PathBuf,
    pairs: Vec<(u64, u64)>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let pairs = write_data(&data);
    let root = tmp.path().to_path_buf();
    Fixture { _tmp: tmp, data, root, pairs }
}

fn train(f: &Fixture, model: &str, extra: &[&str]) -> PathBuf {
    let out = f.root.join(format!("run-{model}"));
    let mut args = vec![
        "train",
        "--model",
        model,
        "--data",
        f.data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--no-cache",
        "--seed",
        "7",
    ];
    args.extend_from_slice(extra);
    ok(&args);
    out
}

#[test]
fn mf_train_then_query_and_export() {
    let f = fixture();
    let run = train(&f, "mf", &["--set", "k=4", "--set", "train.epochs=5", "--set", "train.batch_size=16"]);
    for file in ["model.safetensors", "run.json", "rated.safetensors"] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["model_kind"], "mf");
    assert_eq!(info["seed"], 7);
    assert_eq!(info["config"]["k"], 4);
    assert_eq!(info["config"]["train"]["epochs"], 5);
    assert_eq!(info["history"]["epochs"].as_array().unwrap().len(), 5);
    let r = run.to_str().unwrap();

    // similar: by id, exact title, unique substring; ambiguous and unknown fail.
    let by_id = ok(&["similar", "--run", r, "3", "-k", "4"]);
    assert!(by_id.contains("nearest to Gamma Ray (1985)"), "{by_id}");
    assert_eq!(by_id.lines().count(), 5, "{by_id}");
    assert!(!by_id.lines().skip(1).any(|l| l.contains("Gamma Ray")));
    assert!(ok(&["similar", "--run", r, "Alpha (1990)"]).contains("nearest to Alpha (1990)"));
    assert!(ok(&["similar", "--run", r, "gamma ray"]).contains("nearest to Gamma Ray (1985)"));
    let amb = fails(&["similar", "--run", r, "alpha"]);
    assert!(amb.contains("matches 2 movies") && amb.contains("Alpha Returns (1992)"), "{amb}");
    assert!(fails(&["similar", "--run", r, "Zeta"]).contains("no movie matches"));

    // recommend: k lines; --exclude-rated never lists a rated movie.
    let rec = ok(&["recommend", "--run", r, "--user", "2", "-k", "3"]);
    assert_eq!(rec.lines().count(), 4, "{rec}");
    let rec = ok(&["recommend", "--run", r, "--user", "2", "-k", "4", "--exclude-rated"]);
    let listed: Vec<u64> =
        rec.lines().skip(1).map(|l| l.split_whitespace().nth(2).unwrap().parse().unwrap()).collect();
    assert_eq!(listed.len(), 4, "{rec}");
    let run_info = reelvec_models::checkpoint::load_run_info(&run).unwrap();
    let rated = reelvec_models::checkpoint::load_rated(&run).unwrap().unwrap();
    let user2 = run_info.user_dense(2).unwrap();
    let rated2: Vec<u64> = rated.row(user2).iter().map(|&m| run_info.movie_raw_ids[m as usize]).collect();
    assert!(!rated2.is_empty() && rated2.iter().all(|&m| f.pairs.contains(&(2, m))));
    assert!(listed.iter().all(|m| !rated2.contains(m)), "{rec} vs rated {rated2:?}");
    assert!(fails(&["recommend", "--run", r, "--user", "999"]).contains("user 999"));

    // predict: one number in the sigmoid range.
    let p = ok(&["predict", "--run", r, "--user", "1", "--movie", "7"]);
    let stars: f32 = p.split_whitespace().next().unwrap().parse().unwrap();
    assert!((0.0..=5.5).contains(&stars), "{p}");

    // export: csv, npy, word2vec.
    let csv = f.root.join("emb.csv");
    ok(&["export", "--run", r, "--format", "csv", "--out", csv.to_str().unwrap()]);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().next().unwrap(), "movieId,d0,d1,d2,d3");
    assert_eq!(text.lines().count(), 1 + N_MOVIES as usize);
    let npy = f.root.join("emb.npy");
    ok(&["export", "--run", r, "--format", "npy", "--out", npy.to_str().unwrap()]);
    let b = std::fs::read(&npy).unwrap();
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    assert_eq!(b.len(), 10 + hlen + N_MOVIES as usize * 4 * 4);
    assert!(String::from_utf8_lossy(&b[10..10 + hlen]).contains("'shape': (12, 4)"));
    let w2v = f.root.join("emb.w2v");
    ok(&["export", "--run", r, "--format", "word2vec", "--out", w2v.to_str().unwrap()]);
    let text = std::fs::read_to_string(&w2v).unwrap();
    assert_eq!(text.lines().next().unwrap(), "12 4");
    let titles = std::fs::read_to_string(f.root.join("emb.w2v.titles.tsv")).unwrap();
    assert!(titles.contains("3\tGamma Ray (1985)"), "{titles}");
    assert!(
        fails(&["export", "--run", r, "--format", "feather", "--out", "x"]).contains("unknown export format")
    );
}

#[test]
fn sigmoid_and_residual_runs_predict_in_stars() {
    let f = fixture();
    let s = train(&f, "sigmoid-mf", &["--set", "k=4", "--set", "train.epochs=3"]);
    let p = ok(&["predict", "--run", s.to_str().unwrap(), "--user", "3", "--movie", "2"]);
    let stars: f32 = p.split_whitespace().next().unwrap().parse().unwrap();
    assert!((1.0..=5.0).contains(&stars), "{p}");
    let r = train(&f, "residual-mf", &["--set", "k=4", "--set", "train.epochs=3"]);
    let rec = ok(&["recommend", "--run", r.to_str().unwrap(), "--user", "3", "-k", "2", "--exclude-rated"]);
    assert_eq!(rec.lines().count(), 3, "{rec}");
    assert!(ok(&["similar", "--run", r.to_str().unwrap(), "Film Number 9"]).contains("Film Number 9"));
}

#[test]
fn printed_predictions_stay_on_the_rating_scale() {
    // P2's sigmoid range reaches 5.5 on a 1-5 scale: a run whose movie biases push every output
    // toward 5.5 must still print at most 5 stars (its RMSE figures keep the raw output).
    use reelvec_models::mf::MfModel;
    let f = fixture();
    let run = train(&f, "mf", &["--set", "k=4", "--set", "train.epochs=2"]);
    let (mut params, info) = reelvec_models::checkpoint::load_run(&run).unwrap();
    assert_eq!(info.rating_scale, Some([1.0, 5.0]));
    let bias = params.id("movie_bias").unwrap();
    params.get_mut(bias).data.iter_mut().for_each(|b| *b = 20.0);
    let model = MfModel::from_run(&params, &info, &run).unwrap();
    let rated = reelvec_models::checkpoint::load_rated(&run).unwrap();
    model.save(&run, &info, rated.as_ref()).unwrap();
    let (reloaded, _) = MfModel::load(&run).unwrap();
    use reelvec_models::RatingModel;
    assert!(reloaded.predict(2, 3) > 5.4, "the raw output is beyond the scale");
    let r = run.to_str().unwrap();
    let first_number =
        |line: &str, at: usize| -> f32 { line.split_whitespace().nth(at).unwrap().parse().unwrap() };
    let p = ok(&["predict", "--run", r, "--user", "3", "--movie", "2"]);
    assert_eq!(first_number(&p, 0), 5.0, "{p}");
    let rec = ok(&["recommend", "--run", r, "--user", "3", "-k", "3"]);
    let listed: Vec<f32> =
        rec.lines().skip(1).filter(|l| !l.trim().is_empty()).take(3).map(|l| first_number(l, 1)).collect();
    assert_eq!(listed, vec![5.0; 3], "{rec}");
    let folded = ok(&["recommend", "--run", r, "--rated", "Alpha (1990)=5", "-k", "2"]);
    for line in folded.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())) {
        assert!(first_number(line, 1) <= 5.0, "{folded}");
    }
}

#[test]
fn config_errors_and_print_config() {
    let f = fixture();
    let d = f.data.to_str().unwrap();
    let out = f.root.join("x");
    let o = out.to_str().unwrap();
    let cfg = ok(&["train", "--model", "mf", "--data", d, "--out", o, "--print-config"]);
    assert!(cfg.contains("k = 50") && cfg.contains("batch_size = 100"), "{cfg}");
    let tuned =
        ok(&["train", "--model", "mf", "--data", d, "--out", o, "--preset", "tuned", "--print-config"]);
    assert!(tuned.contains("batch_size = 256") && tuned.contains("lr = 0.01"), "{tuned}");
    assert!(tuned.contains("linear_decay") && tuned.contains("k = 50"), "{tuned}");
    let err = fails(&["train", "--model", "mf", "--data", d, "--out", o, "--set", "epochs=3"]);
    assert!(err.contains("unknown config key `epochs`"), "{err}");
    let err = fails(&["train", "--model", "svd", "--data", d, "--out", o]);
    assert!(err.contains("unknown model kind"), "{err}");
    let err = fails(&["train", "--model", "mf", "--data", d, "--out", o, "--preset", "fastest"]);
    assert!(err.contains("unknown preset"), "{err}");
    let fast = ok(&["train", "--model", "mf", "--data", d, "--out", o, "--preset", "fast", "--print-config"]);
    assert!(fast.contains("init_std = 0.1") && fast.contains("epochs = 5"), "{fast}");
    assert!(!out.exists());
}

#[test]
fn item_models_train_and_answer_similar() {
    let f = fixture();
    let small = ["--set", "min_user_ratings=3", "--set", "train.epochs=2"];
    let cbow = train(&f, "cbow", &small);
    let sg = train(&f, "skipgram", &small);
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sg.join("run.json")).unwrap()).unwrap();
    assert_eq!(info["model_kind"], "skipgram");
    assert_eq!(info["config"]["model"]["architecture"], "skipgram");
    let out = f.root.join("run-cooc");
    let printed = ok(&[
        "train",
        "--model",
        "cooc",
        "--data",
        f.data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--no-cache",
    ]);
    // Like for like, labelled: the masked cost is divided by the reference's masked cost and the
    // unmasked by the unmasked (issue 9: the headline once mixed the two).
    let number = |line: &str, label: &str| -> f64 {
        let rest = &line[line.find(label).unwrap() + label.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    for (prefix, reference) in [
        ("masked cost ", "reference masked cost "),
        ("unmasked cost ", "reference unmasked cost (rank-k optimum) "),
    ] {
        let line = printed.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{printed}"));
        let (cost, reference, ratio) =
            (number(line, prefix), number(line, reference), number(line, "ratio "));
        // The ratio is printed with 4 decimals.
        assert!((cost / reference - ratio).abs() <= 5.1e-5, "{line}");
    }
    for run in [&cbow, &sg, &out] {
        let s = ok(&["similar", "--run", run.to_str().unwrap(), "Gamma Ray (1985)", "-k", "3"]);
        assert_eq!(s.lines().count(), 4, "{s}");
    }
    let w2v = f.root.join("cbow.w2v");
    ok(&["export", "--run", cbow.to_str().unwrap(), "--format", "word2vec", "--out", w2v.to_str().unwrap()]);
    let first = std::fs::read_to_string(&w2v).unwrap();
    assert!(first.starts_with("12 "), "{first}");
    let err = fails(&["recommend", "--run", cbow.to_str().unwrap(), "--user", "1"]);
    assert!(err.contains("does not predict ratings"), "{err}");
}

#[test]
fn invalid_or_exploding_training_fails_and_saves_nothing() {
    let f = fixture();
    let data = f.data.to_str().unwrap();
    let out = f.root.join("run-bad");
    let run = out.to_str().unwrap();
    let base = ["train", "--data", data, "--out", run, "--quiet", "--no-cache"];
    for (model, set, needle) in [
        ("mf", "k=100000000", "`k`"),
        ("residual-mf", "init_std=-1", "`init_std`"),
        ("mf", "train.epochs=0", "`train.epochs`"),
        ("mf", "train.lr=0", "`train.lr`"),
        ("mf", "train_fraction=1.5", "`train_fraction`"),
        ("cbow", "model.window=0", "`model.window`"),
        ("residual-mf", "train.lr=1e6", "diverged"),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(&["--model", model, "--set", set]);
        let stderr = fails(&args);
        assert!(stderr.contains(needle), "{model} --set {set}: {stderr}");
        assert!(!out.exists(), "{model} --set {set} left {run}");
    }
}

#[test]
fn negative_sampling_losses_are_labelled_and_the_softmax_ce_is_reported() {
    let f = fixture();
    let run = f.root.join("run-ns");
    let stdout = ok(&[
        "train",
        "--model",
        "skipgram",
        "--data",
        f.data.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
        "--quiet",
        "--no-cache",
        "--set",
        "model.loss=negative_sampling",
        "--set",
        "min_user_ratings=2",
        "--set",
        "train.epochs=2",
    ]);
    assert!(stdout.contains("loss: negative-sampling loss"), "{stdout}");
    assert!(stdout.contains("best val negative-sampling loss"), "{stdout}");
    assert!(stdout.contains("val softmax cross-entropy over all"), "{stdout}");
    assert!(!stdout.contains("best val cross-entropy"), "{stdout}");
}

#[test]
fn mf_train_prints_which_optimizer_ran_and_why() {
    let f = fixture();
    let data = f.data.to_str().unwrap();
    let run = f.root.join("run-opt");
    let base =
        ["train", "--model", "mf", "--data", data, "--out", run.to_str().unwrap(), "--quiet", "--no-cache"];
    let mut args = base.to_vec();
    args.extend_from_slice(&["--set", "train.epochs=1"]);
    // 40 users, 12 movies: a batch touches most of the tables, so auto keeps dense Adam.
    let stdout = ok(&args);
    assert!(stdout.contains("optimizer: adam (auto: dense PyTorch Adam"), "{stdout}");
    let mut args = base.to_vec();
    args.extend_from_slice(&["--preset", "notebook", "--set", "train.epochs=1"]);
    let stdout = ok(&args);
    assert!(stdout.contains("optimizer: adam\n"), "{stdout}");
}

#[test]
fn flush_denormals_flag_sets_the_config_key_and_is_refused_for_cooc() {
    let f = fixture();
    let data = f.data.to_str().unwrap();
    let base =
        ["train", "--model", "sigmoid-mf", "--data", data, "--quiet", "--no-cache", "--preset", "notebook"];
    // The flag is the config key `train.flush_denormals`, shown only when on.
    let mut args = base.to_vec();
    args.extend_from_slice(&["--out", "unused", "--print-config"]);
    assert!(!ok(&args).contains("flush_denormals"));
    args.push("--flush-denormals");
    assert!(ok(&args).contains("flush_denormals = true"));
    // On this small catalogue (every movie touched every few steps) the tables are identical.
    let mut tables = Vec::new();
    for (name, flag) in [("run-ieee", None), ("run-ftz", Some("--flush-denormals"))] {
        let run = f.root.join(name);
        let mut args = base.to_vec();
        args.extend_from_slice(&["--out", run.to_str().unwrap(), "--set", "train.epochs=2"]);
        args.extend(flag);
        ok(&args);
        tables.push(std::fs::read(run.join("model.safetensors")).unwrap());
    }
    assert_eq!(tables[0], tables[1]);
    let run = f.root.join("run-cooc");
    let stderr = fails(&[
        "train",
        "--model",
        "cooc",
        "--data",
        data,
        "--out",
        run.to_str().unwrap(),
        "--flush-denormals",
    ]);
    assert!(stderr.contains("not cooc"), "{stderr}");
    assert!(!run.exists());
}
