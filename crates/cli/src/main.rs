//! `reelvec`: the command-line tool. Parses arguments, calls the library crates, maps errors to
//! one clear line and a non-zero exit.
//!
//! Output goes through [`out`]: a closed stdout pipe (`reelvec similar … | head -1`) ends the
//! command quietly with exit code 0, and control characters from data files never reach the
//! terminal raw. Commands save their files before they print.
//!
//! Each subcommand lives in its own module with an `Args` struct and a `run` function; adding
//! one is a new module plus one variant in [`Command`] and one arm in [`main`].

#[macro_use]
mod out;

mod args;
mod bench_cmd;
mod coldstart_cmd;
mod compare_cmd;
mod data_cmd;
mod device_arg;
mod evaluate_cmd;
mod export_cmd;
mod fold_in;
mod lists;
mod middle;
mod movie_arg;
mod next_cmd;
mod pipeline;
mod plot_cmd;
mod query;
mod ranker_cmd;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Movie embeddings and recommendations from MovieLens ratings.
#[derive(Debug, Parser)]
#[command(name = "reelvec", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect and generate data sets.
    Data(data_cmd::Args),
    /// Run the main job on a data set (the embedded synthetic one by default).
    Pipeline(pipeline::Args),
    /// Train a model and write a run directory.
    Train(train::Args),
    /// Movies nearest to a movie by cosine of a run's item embeddings.
    Similar(query::SimilarArgs),
    /// A user's top movies by predicted rating.
    Recommend(query::RecommendArgs),
    /// One predicted rating.
    Predict(query::PredictArgs),
    /// The most likely movies between two (CBOW / skip-gram runs).
    Middle(middle::Args),
    /// The metrics that fit a run's model kind, with timings (rating, sequence, top-N, beyond-accuracy).
    Evaluate(evaluate_cmd::Args),
    /// Next-title prediction: rank or continue a watch sequence, or evaluate it (leave-last-out).
    Next(next_cmd::Args),
    /// Export a run's item embeddings (csv, npy, word2vec).
    Export(export_cmd::Args),
    /// Draw a run as an SVG plot: loss curves, cosine heatmap, PCA or t-SNE map.
    Plot(plot_cmd::Args),
    /// Every model on one ranking protocol: split, fit, full-catalogue metrics, leaderboard.
    Compare(compare_cmd::Args),
    /// Cold start: hold out a fraction of the movies, MF with and without item features.
    Coldstart(coldstart_cmd::Args),
    /// Benchmarks: the notebook suite (beside PyTorch) or the ml-25m-scale suite.
    Bench(bench_cmd::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Data(args) => data_cmd::run(args),
        Command::Pipeline(args) => pipeline::run(args),
        Command::Train(args) => train::run(args),
        Command::Similar(args) => query::similar(args),
        Command::Recommend(args) => query::recommend(args),
        Command::Predict(args) => query::predict(args),
        Command::Middle(args) => middle::run(args),
        Command::Evaluate(args) => evaluate_cmd::run(args),
        Command::Next(args) => next_cmd::run(args),
        Command::Export(args) => export_cmd::run(args),
        Command::Plot(args) => plot_cmd::run(args),
        Command::Compare(args) => compare_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
        Command::Coldstart(args) => coldstart_cmd::run(args),
    };
    out::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", out::clean(&err.to_string()));
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {}", out::clean(&cause.to_string()));
            }
            ExitCode::FAILURE
        }
    }
}
