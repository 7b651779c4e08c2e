//! End-to-end tests of what the CLI writes and prints under faults and hostile arguments:
//! refused outputs (devices, FIFOs, symlinks, unwritable folders) checked before any work, run
//! directories written as one unit and checked on load, byte-reproducible runs, absolute data
//! paths, closed stdout pipes, argument bounds and terminal escapes in titles.

// Tests unwrap freely: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const N_USERS: u64 = 30;
const N_MOVIES: u64 = 10;

/// Movie 4's title carries a terminal escape sequence (clear screen) and a bell.
fn title(m: u64) -> String {
    match m {
        1 => "Alpha (1990)".into(),
        4 => "Evil\u{1b}[2J\u{7} Title (1999)".into(),
        _ => format!("Film Number {m} (19{})", 60 + m),
    }
}

fn write_data(dir: &Path, shift: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut ratings = String::from("userId,movieId,rating,timestamp\n");
    for u in 1..=N_USERS {
        for j in 0..6 {
            let m = (u + j * 3 + shift) % N_MOVIES + 1;
            let r = if (m <= 5) == (u % 2 == 0) { 4.5 } else { 1.5 + (m % 3) as f64 * 0.5 };
            ratings.push_str(&format!("{u},{m},{r},{}\n", 1_000_000 + u * 100 + j));
        }
    }
    let mut movies = String::from("movieId,title,genres\n");
    for m in 1..=N_MOVIES {
        movies.push_str(&format!("{m},\"{}\",Drama\n", title(m)));
    }
    std::fs::write(dir.join("ratings.csv"), ratings).unwrap();
    std::fs::write(dir.join("movies.csv"), movies).unwrap();
}

fn reelvec_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reelvec")).current_dir(dir).args(args).output().unwrap()
}

fn check(out: &Output, args: &[&str], success: bool) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.success(), success, "reelvec {args:?}:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    (stdout, stderr)
}

fn ok_in(dir: &Path, args: &[&str]) -> String {
    check(&reelvec_in(dir, args), args, true).0
}

fn ok(args: &[&str]) -> String {
    ok_in(Path::new("."), args)
}

/// The stderr of a failing command (which must exit 1, not panic).
fn fails(args: &[&str]) -> String {
    let out = reelvec_in(Path::new("."), args);
    let (_, stderr) = check(&out, args, false);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        write_data(&root.join("data"), 0);
        Self { _tmp: tmp, root }
    }

    fn path(&self, name: &str) -> String {
        self.root.join(name).to_str().unwrap().to_string()
    }

    /// Trains `model` into `ROOT/out` from `ROOT` with the relative data path `data`.
    fn train(&self, model: &str, out: &str) -> PathBuf {
        let mut args = vec!["train", "--model", model, "--data", "data", "--out", out, "--quiet"];
        args.extend(["--no-cache", "--seed", "7", "--threads", "1", "--device", "cpu"]);
        match model {
            "cbow" | "skipgram" => args.extend(["--set", "min_user_ratings=3", "--set", "train.epochs=2"]),
            "cooc" => args.extend(["--set", "model.dim=3", "--set", "model.steps=20"]),
            _ => args.extend(["--set", "k=4", "--set", "train.epochs=2"]),
        }
        ok_in(&self.root, &args);
        self.root.join(out)
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut n: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    n.sort();
    n
}

#[cfg(unix)]
#[test]
fn outputs_that_are_not_regular_files_are_refused_before_any_work() {
    use std::os::unix::fs::FileTypeExt as _;
    let f = Fixture::new();
    let run = f.train("mf", "run");
    let r = run.to_str().unwrap();

    // /dev/null stays a device (this test runs as root in CI, where it was replaced).
    let err = fails(&["export", "--run", r, "--format", "csv", "--out", "/dev/null"]);
    assert!(err.contains("/dev/null") && err.contains("a device"), "{err}");
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());

    let out = f.root.join("outs");
    std::fs::create_dir(&out).unwrap();
    let target = out.join("target.csv");
    std::fs::write(&target, b"keep").unwrap();
    let link = out.join("link.csv");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = fails(&["export", "--run", r, "--format", "csv", "--out", link.to_str().unwrap()]);
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    let err = fails(&["plot", "--run", r, "--kind", "loss", "--out", link.to_str().unwrap()]);
    assert!(err.contains("symbolic link"), "{err}");

    let fifo = out.join("fifo.csv");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let err = fails(&["export", "--run", r, "--format", "npy", "--out", fifo.to_str().unwrap()]);
    assert!(err.contains("FIFO"), "{err}");
    let err = fails(&["export", "--run", r, "--format", "csv", "--out", out.to_str().unwrap()]);
    assert!(err.contains("a directory"), "{err}");
    // The word2vec titles side file is checked too, before anything is written.
    std::fs::create_dir(out.join("w.txt.titles.tsv")).unwrap();
    let err =
        fails(&["export", "--run", r, "--format", "word2vec", "--out", out.join("w.txt").to_str().unwrap()]);
    assert!(err.contains("titles.tsv"), "{err}");
    // Nothing else appeared: no `.tmp` files, no half export.
    assert_eq!(names(&out), vec!["fifo.csv", "link.csv", "target.csv", "w.txt.titles.tsv"]);

    // A good export still works and leaves only its file.
    ok(&["export", "--run", r, "--format", "csv", "--out", out.join("e.csv").to_str().unwrap()]);
    assert!(names(&out).contains(&"e.csv".to_string()));
    assert!(names(&out).iter().all(|n| !n.contains("tmp")), "{:?}", names(&out));
}

#[test]
fn outputs_are_checked_before_data_is_loaded_or_anything_trained() {
    let f = Fixture::new();
    let file = f.root.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under_file = f.path("a-file/run");
    // The data path does not exist: the error must be about the output, found first.
    let err =
        fails(&["train", "--model", "mf", "--data", "/nonexistent", "--out", &under_file, "--no-cache"]);
    assert!(err.contains("a-file") && err.contains("not a directory"), "{err}");
    let err = fails(&["train", "--model", "mf", "--data", "/nonexistent", "--out", &f.path("a-file")]);
    assert!(err.contains("not a directory"), "{err}");
    let notes = f.root.join("notes");
    std::fs::create_dir(&notes).unwrap();
    std::fs::write(notes.join("mine.txt"), b"mine").unwrap();
    let err = fails(&["train", "--model", "mf", "--data", "/nonexistent", "--out", notes.to_str().unwrap()]);
    assert!(err.contains("holds no run"), "{err}");
    assert_eq!(names(&notes), vec!["mine.txt"]);
    let err =
        fails(&["export", "--run", "/nonexistent", "--format", "csv", "--out", &f.path("a-file/e.csv")]);
    assert!(err.contains("not a directory"), "{err}");
    let err = fails(&["pipeline", "--synth", "tiny", "--quiet", "--device", "cpu", "--out", &under_file]);
    assert!(err.contains("not a directory"), "{err}");
    assert!(!err.contains("synthetic data set"), "checked after the data: {err}");
    // `bench` checks its report and document before a suite runs (the data path does not exist,
    // so a suite that started would fail on it instead).
    let bench = ["bench", "--suite", "notebook", "--data", "/nonexistent", "--threads", "1"];
    let err = fails(&[&bench[..], &["--json", &f.path("a-file/r.json")]].concat());
    assert!(err.contains("not a directory") && !err.contains("nonexistent"), "{err}");
    let err = fails(&[&bench[..], &["--doc", f.root.to_str().unwrap()]].concat());
    assert!(err.contains("a directory") && !err.contains("nonexistent"), "{err}");
}

fn without_timings(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !k.contains("seconds"));
            m.values_mut().for_each(without_timings);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(without_timings),
        _ => {}
    }
}

#[test]
fn runs_are_byte_reproducible_and_record_an_absolute_data_path() {
    let f = Fixture::new();
    let a = f.train("mf", "a");
    let b = f.train("mf", "b");
    for file in ["model.safetensors", "rated.safetensors"] {
        assert!(
            std::fs::read(a.join(file)).unwrap() == std::fs::read(b.join(file)).unwrap(),
            "{file} differs"
        );
    }
    let json = |dir: &Path| {
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("run.json")).unwrap()).unwrap();
        without_timings(&mut v);
        v
    };
    let (ja, jb) = (json(&a), json(&b));
    assert_eq!(ja, jb);
    let recorded = ja["data_path"].as_str().unwrap();
    assert!(Path::new(recorded).is_absolute(), "{recorded}");
    // evaluate from another folder finds the data.
    let other = tempfile::tempdir().unwrap();
    let e = ok_in(other.path(), &["evaluate", "--run", a.to_str().unwrap(), "--device", "cpu", "--no-cache"]);
    assert!(e.contains("RMSE (stars)"), "{e}");
}

#[test]
fn old_relative_data_paths_resolve_beside_the_run_and_plot_checks_the_data() {
    let f = Fixture::new();
    let run = f.train("mf", "runs/mf");
    // A run written before manifests, with the data path as given (relative).
    let mut info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    info["format_version"] = 1.into();
    info["data_path"] = "data".into();
    std::fs::write(run.join("run.json"), serde_json::to_vec(&info).unwrap()).unwrap();
    std::fs::remove_file(run.join("manifest.json")).unwrap();
    let other = tempfile::tempdir().unwrap();
    let r = run.to_str().unwrap();
    let e = ok_in(other.path(), &["evaluate", "--run", r, "--device", "cpu", "--no-cache"]);
    assert!(e.contains("RMSE (stars)"), "{e}");
    info["data_path"] = "nowhere".into();
    std::fs::write(run.join("run.json"), serde_json::to_vec(&info).unwrap()).unwrap();
    let err = fails(&["evaluate", "--run", r, "--device", "cpu"]);
    assert!(err.contains("relative data path `nowhere`") && err.contains("pass --data"), "{err}");

    // plot --data on another data set: the fingerprint is checked, as evaluate does.
    write_data(&f.root.join("other"), 1);
    let svg = f.path("h.svg");
    let err = fails(&[
        "plot",
        "--run",
        r,
        "--kind",
        "heatmap",
        "--data",
        &f.path("other"),
        "--out",
        &svg,
        "--no-cache",
    ]);
    assert!(err.contains("does not match the run's data"), "{err}");
    ok(&["plot", "--run", r, "--kind", "heatmap", "--data", &f.path("data"), "--out", &svg, "--no-cache"]);
}

#[test]
fn run_directories_are_one_unit_checked_on_load() {
    let f = Fixture::new();
    let mf = f.train("mf", "mf");
    let cooc = f.train("cooc", "cooc");
    let (m, c) = (mf.to_str().unwrap(), cooc.to_str().unwrap());
    // A rated list copied in from another run.
    std::fs::copy(mf.join("rated.safetensors"), cooc.join("rated.safetensors")).unwrap();
    let err = fails(&["similar", "--run", c, "Alpha"]);
    assert!(err.contains("rated.safetensors") && err.contains("not part of this run"), "{err}");
    std::fs::remove_file(cooc.join("rated.safetensors")).unwrap();
    // Flipped bits in the tensor data.
    let model = mf.join("model.safetensors");
    let mut bytes = std::fs::read(&model).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    std::fs::write(&model, &bytes).unwrap();
    let err = fails(&["recommend", "--run", m, "--user", "2"]);
    assert!(err.contains("model.safetensors") && err.contains("checksum"), "{err}");
    // Re-training another kind into the mf run replaces every file: no stale rated list.
    ok_in(&f.root, &["plot", "--run", c, "--kind", "loss", "--out", "cooc/loss.svg"]);
    let again = f.train("cooc", "mf");
    assert_eq!(names(&again), vec!["manifest.json", "model.safetensors", "run.json"]);
    let again = f.train("mf", "cooc");
    assert_eq!(
        names(&again),
        vec!["loss.svg", "manifest.json", "model.safetensors", "rated.safetensors", "run.json"]
    );
    // A crash while writing a run leaves a hidden staging folder; the old run still loads.
    std::fs::create_dir(f.root.join(".cooc.staging-x1")).unwrap();
    std::fs::write(f.root.join(".cooc.staging-x1/model.safetensors"), b"half").unwrap();
    ok(&["recommend", "--run", again.to_str().unwrap(), "--user", "2", "--exclude-rated"]);
}

/// Runs `args` with stdout a pipe whose reader is already closed.
fn with_closed_stdout(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reelvec"))
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    (child.wait().unwrap().code(), stderr)
}

#[test]
fn a_closed_stdout_pipe_is_a_quiet_exit_and_the_run_is_saved() {
    let f = Fixture::new();
    let args = ["train", "--model", "mf", "--data", "data", "--out", "piped", "--no-cache", "--seed", "7"];
    let (code, stderr) =
        with_closed_stdout(&f.root, &[&args[..], &["--set", "train.epochs=2", "--device", "cpu"]].concat());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let run = f.path("piped");
    ok(&["predict", "--run", &run, "--user", "2", "--movie", "3"]);
    for args in [
        vec!["similar", "--run", &run, "Alpha"],
        vec!["recommend", "--run", &run, "--user", "2"],
        vec!["recommend", "--run", &run, "--rated", "Alpha=4"],
        vec!["evaluate", "--run", &run, "--device", "cpu", "--no-cache"],
        vec![
            "pipeline", "--synth", "tiny", "--only", "p2", "--quiet", "--device", "cpu", "--out", "pipe-out",
        ],
    ] {
        let (code, stderr) = with_closed_stdout(&f.root, &args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty() || !stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    let cbow = f.train("cbow", "cbow");
    let (code, stderr) =
        with_closed_stdout(&f.root, &["middle", "--run", cbow.to_str().unwrap(), "Alpha", "Film Number 3"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn sizes_and_counts_are_bounded_before_allocating() {
    let f = Fixture::new();
    let run = f.train("mf", "run");
    let r = run.to_str().unwrap();
    let huge = "18446744073709551615";
    let rec = ok(&["recommend", "--run", r, "--user", "2", "-k", huge]);
    assert_eq!(rec.lines().count(), 1 + N_MOVIES as usize, "{rec}");
    let rec = ok(&["recommend", "--run", r, "--user", "2", "-k", "1000000000", "--exclude-rated"]);
    assert!(rec.lines().count() <= 1 + N_MOVIES as usize, "{rec}");
    let e = ok(&["evaluate", "--run", r, "-k", huge, "--device", "cpu", "--no-cache"]);
    assert!(e.contains(&format!("top-{N_MOVIES} diversity")), "{e}");
    assert_eq!(ok(&["similar", "--run", r, "Alpha", "-k", huge]).lines().count(), N_MOVIES as usize);
    // -k 0 / --top 0: one rule, one message, for every command.
    for args in [
        vec!["similar", "--run", r, "Alpha", "-k", "0"],
        vec!["recommend", "--run", r, "--user", "2", "-k", "0"],
        vec!["evaluate", "--run", r, "-k", "0"],
        vec!["middle", "--run", r, "Alpha", "Film Number 3", "-k", "0"],
        vec!["plot", "--run", r, "--kind", "pca", "--top", "0", "--out", "x.svg"],
    ] {
        let err = fails_with_usage(&args);
        assert!(err.contains("must be at least 1"), "{args:?}: {err}");
    }
    let svg = f.path("h.svg");
    let err = fails(&["plot", "--run", r, "--kind", "heatmap", "--top", "100000", "--out", &svg]);
    assert!(err.contains("at most 200"), "{err}");
    let err = fails(&["recommend", "--run", r, "--rated", "Alpha=1e38"]);
    assert!(err.contains("outside the run's rating scale"), "{err}");
    let err =
        fails_with_usage(&["train", "--model", "mf", "--data", "data", "--out", "t", "--threads", "100000"]);
    assert!(err.contains("--threads") && err.contains("must be from 1 to"), "{err}");
    let err = fails_with_usage(&["pipeline", "--synth", "tiny", "--epochs-scale", "1e300", "--out", "p"]);
    assert!(err.contains("at most 1000"), "{err}");
}

/// The stderr of a command clap refuses (exit code 2).
fn fails_with_usage(args: &[&str]) -> String {
    let out = reelvec_in(Path::new("."), args);
    let (_, stderr) = check(&out, args, false);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn terminal_escapes_in_titles_are_never_printed_raw() {
    let f = Fixture::new();
    let run = f.train("mf", "run");
    let r = run.to_str().unwrap();
    for args in [
        vec!["similar", "--run", r, "Evil", "-k", "20"],
        vec!["recommend", "--run", r, "--user", "2", "-k", "20"],
        vec!["predict", "--run", r, "--user", "2", "--movie", "4"],
    ] {
        let out = ok(&args);
        assert!(out.contains("Evil\u{fffd}[2J\u{fffd} Title"), "{args:?}: {out}");
        assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{args:?}: {out:?}");
    }
    // Errors that quote titles are cleaned too.
    let err = fails(&["similar", "--run", r, "i"]);
    assert!(!err.contains('\u{1b}') && err.contains("Evil\u{fffd}"), "{err}");
}
