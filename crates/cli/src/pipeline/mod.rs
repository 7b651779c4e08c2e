//! `reelvec pipeline`: the main job. Stage 0 for now: load the data set (the embedded synthetic
//! Small preset when no `--data` is given) and print its statistics.

use std::path::PathBuf;

use anyhow::Result;
use reelvec_data::stats::Stats;

use crate::data_cmd::{load_data, print_stats, ReadOptions};

/// `reelvec pipeline` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data set directory or ratings file; the embedded synthetic data set when absent.
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Output directory for models, figures and the report.
    #[arg(long, value_name = "DIR", default_value = "runs/pipeline")]
    pub out: PathBuf,
    /// Compute device: cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub read: ReadOptions,
}

/// Runs the pipeline.
pub fn run(args: Args) -> Result<()> {
    let ds = match &args.data {
        Some(path) => load_data(path, &args.read)?,
        None => {
            eprintln!("no --data given: using the embedded synthetic data set (preset small, seed 42)");
            reelvec_data::synth::small().dataset
        }
    };
    println!("stage 0: data");
    print_stats(&Stats::compute(&ds));
    Ok(())
}
