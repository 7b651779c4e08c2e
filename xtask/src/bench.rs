//! `cargo xtask bench`: builds the release `reelvec` binary, runs `reelvec bench` (with the
//! PyTorch references of `benches/peers` when the peers' Python (`cargo xtask peers`) imports
//! torch, saying so when it does not) for each requested suite and thread count, writes one JSON report per run to
//! `benches/results/`, regenerates `docs/benchmarks.md` from all of them, and with `--criterion`
//! also runs the criterion kernel benches (`cargo bench -p reelvec-benches`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::util::{cargo, project_root, run_checked};

const HELP: &str = "\
cargo xtask bench [OPTIONS] [-- REELVEC_BENCH_ARGS...]

  --data PATH            data set for the notebook suite (default: the embedded synthetic one)
  --suite S              notebook (default), scale, frontier (P2 beside Surprise's SVD), or all
  --threads N[,M...]     thread counts to run, each a separate report (default: 1)
  --epochs N             shorten epoch-based cases (default: each protocol's; scale: 1)
  --scale-fraction F     share of ml-25m's users the scale suite generates (default 0.1)
  --full-top-n           also run the full ml-25m-shape top-N (162,541 users x every movie,
                         k = 64, + diversity/novelty/coverage; minutes): report
                         scale-ml25m-topn-tN.json
  --no-peers             do not run the PyTorch references
  --out DIR              where the JSON reports go (default: benches/results; relative
                         paths are relative to the project root)
  --doc FILE             the markdown regenerated from DIR (default: docs/benchmarks.md)
  --criterion            also run `cargo bench -p reelvec-benches`
  --criterion-only       only run the criterion benches
";

/// The pseudo-suite of `--full-top-n`: the scale suite's top-N case alone at full size.
const FULL_TOP_N: &str = "scale-ml25m-topn";

/// Parsed options.
#[derive(Debug)]
struct Options {
    data: Option<PathBuf>,
    suites: Vec<&'static str>,
    threads: Vec<usize>,
    epochs: Option<String>,
    scale_fraction: String,
    peers: bool,
    out: PathBuf,
    doc: PathBuf,
    criterion: bool,
    runner: bool,
    extra: Vec<String>,
}

fn parse(args: &[String]) -> Result<Option<Options>> {
    let mut o = Options {
        data: None,
        suites: vec!["notebook"],
        threads: vec![1],
        epochs: None,
        scale_fraction: "0.1".to_string(),
        peers: true,
        out: PathBuf::from("benches/results"),
        doc: PathBuf::from("docs/benchmarks.md"),
        criterion: false,
        runner: true,
        extra: Vec::new(),
    };
    let (mut full_top_n, mut suite_given) = (false, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().cloned().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            "--data" => o.data = Some(PathBuf::from(value("--data")?)),
            "--suite" => {
                suite_given = true;
                o.suites = match value("--suite")?.as_str() {
                    "notebook" => vec!["notebook"],
                    "scale" => vec!["scale"],
                    "frontier" => vec!["frontier"],
                    "all" => vec!["notebook", "frontier", "scale"],
                    other => bail!("unknown suite `{other}` (notebook, scale, frontier, all)"),
                }
            }
            "--threads" => {
                o.threads = value("--threads")?
                    .split(',')
                    .map(|t| t.trim().parse::<usize>().ok().filter(|&n| n > 0))
                    .collect::<Option<Vec<_>>>()
                    .context("--threads takes positive counts separated by commas")?
            }
            "--epochs" => o.epochs = Some(value("--epochs")?),
            "--scale-fraction" => o.scale_fraction = value("--scale-fraction")?,
            "--full-top-n" => full_top_n = true,
            "--no-peers" => o.peers = false,
            "--out" => o.out = PathBuf::from(value("--out")?),
            "--doc" => o.doc = PathBuf::from(value("--doc")?),
            "--criterion" => o.criterion = true,
            "--criterion-only" => {
                o.criterion = true;
                o.runner = false;
            }
            "--" => {
                o.extra = it.by_ref().cloned().collect();
            }
            other => bail!("unknown option `{other}`\n\n{HELP}"),
        }
    }
    if full_top_n {
        // Alone it runs only the full top-N; with --suite, after the named suites.
        if !suite_given {
            o.suites.clear();
        }
        o.suites.push(FULL_TOP_N);
    }
    Ok(Some(o))
}

pub fn run(args: &[String]) -> Result<()> {
    let Some(o) = parse(args)? else { return Ok(()) };
    crate::setup::run(&[])?;
    if o.runner {
        run_suites(&o)?;
    }
    if o.criterion {
        run_checked(cargo().args(["bench", "-p", "reelvec-benches"]))?;
    }
    Ok(())
}

fn run_suites(o: &Options) -> Result<()> {
    run_checked(cargo().args(["build", "--release", "--quiet", "-p", "reelvec-cli"]))?;
    let root = project_root();
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let binary = target.join("release/reelvec");
    let peers = if o.peers { peers_dir() } else { None };
    let source = source_revision(&root);
    let data_name = o.data.as_deref().map_or_else(|| "synthetic".to_string(), data_name);
    for suite in &o.suites {
        for &threads in &o.threads {
            let name = match *suite {
                "scale" => format!("scale-f{}-t{threads}.json", o.scale_fraction),
                FULL_TOP_N => format!("{FULL_TOP_N}-t{threads}.json"),
                _ => format!("{suite}-{data_name}-t{threads}.json"),
            };
            let runner_suite = if *suite == FULL_TOP_N { "scale" } else { suite };
            let mut cmd = Command::new(&binary);
            cmd.current_dir(&root)
                .env("REELVEC_BENCH_SOURCE", &source)
                .env("REELVEC_PYTHON", peers_python())
                .args(["bench", "--suite", runner_suite, "--threads", &threads.to_string(), "--json"])
                .arg(o.out.join(name));
            if *suite == "notebook" || *suite == "frontier" {
                if let Some(data) = &o.data {
                    // The runner starts in the project root: a relative path that is not
                    // there is taken from the caller's directory.
                    let data = if data.is_relative() && !root.join(data).exists() {
                        std::env::current_dir()?.join(data)
                    } else {
                        data.clone()
                    };
                    cmd.arg("--data").arg(data);
                }
                if let Some(dir) = &peers {
                    cmd.arg("--peers").arg(dir);
                }
            } else if *suite == FULL_TOP_N {
                cmd.args(["--scale-fraction", "1", "--scale-cases", "top-n"]);
            } else {
                cmd.args(["--scale-fraction", &o.scale_fraction]);
            }
            if let Some(e) = &o.epochs {
                cmd.args(["--epochs", e]);
            }
            cmd.args(&o.extra);
            run_checked(&mut cmd)?;
        }
    }
    run_checked(
        Command::new(&binary)
            .current_dir(&root)
            .arg("bench")
            .arg("--doc")
            .arg(&o.doc)
            .arg("--results")
            .arg(&o.out),
    )
}

/// The git commit of the tree (`+dirty` when it has uncommitted changes), or empty.
fn source_revision(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => {
            let dirty =
                git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("commit {commit}+dirty")
            } else {
                format!("commit {commit}")
            }
        }
        None => String::new(),
    }
}

/// The Python that runs the peers: `$REELVEC_PYTHON`, else the venv of `cargo xtask peers` when it
/// is up to date, else `python3`.
fn peers_python() -> String {
    std::env::var("REELVEC_PYTHON").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| {
        crate::peers::python().map_or_else(|| "python3".to_string(), |p| p.to_string_lossy().into_owned())
    })
}

/// `benches/peers` (relative to the project root, where the runner starts) when the peers'
/// Python imports torch; otherwise says why the references are skipped.
fn peers_dir() -> Option<PathBuf> {
    let python = peers_python();
    let ok = Command::new(&python)
        .args(["-c", "import torch"])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if ok {
        eprintln!("xtask bench: torch is importable: the PyTorch references of benches/peers run too");
        Some(PathBuf::from("benches/peers"))
    } else {
        eprintln!(
            "xtask bench: `{python} -c 'import torch'` fails: PyTorch references skipped \
             (`cargo xtask peers` installs them into target/peers-venv)"
        );
        None
    }
}

/// A short name for the data set (its directory's name).
fn data_name(path: &Path) -> String {
    let name = path.file_name().map_or_else(|| "data".to_string(), |n| n.to_string_lossy().to_string());
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_options() {
        let o =
            parse(&strings(&["--suite", "all", "--threads", "1,2", "--no-peers", "--", "--p1-steps", "9"]))
                .unwrap()
                .unwrap();
        assert_eq!(o.suites, vec!["notebook", "frontier", "scale"]);
        let full = |args: &[&str]| parse(&strings(args)).unwrap().unwrap().suites;
        assert_eq!(full(&["--full-top-n"]), vec![FULL_TOP_N]);
        assert_eq!(full(&["--full-top-n", "--suite", "scale"]), vec!["scale", FULL_TOP_N]);
        assert_eq!(o.threads, vec![1, 2]);
        assert!(!o.peers && o.runner && !o.criterion);
        assert_eq!(o.extra, strings(&["--p1-steps", "9"]));
        assert!(parse(&strings(&["--threads", "0"])).is_err());
        assert!(parse(&strings(&["--suite", "gpu"])).is_err());
        let o = parse(&strings(&["--criterion-only"])).unwrap().unwrap();
        assert!(o.criterion && !o.runner);
        assert_eq!(data_name(Path::new("/data/ml-100k")), "ml-100k");
        assert_eq!(data_name(Path::new("/data/my data")), "my_data");
    }
}
