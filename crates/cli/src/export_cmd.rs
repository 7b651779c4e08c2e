//! `reelvec export`: writes a run's item embeddings as Parquet (`movieId`, `title`,
//! `column_0..`), CSV, `.npy` or word2vec text (with a titles side file; a `--sequences` run's
//! word2vec text is keyed by its tokens, with no side file, and its CSV has a `token` column). The outputs are checked before the run is loaded: an existing output must
//! be a regular file (no symlink, device or FIFO is replaced).

use std::path::PathBuf;

use anyhow::Result;
use reelvec_models::export::{check_outputs, export_run, ExportFormat};
use reelvec_models::pipelines::load_item_embeddings;

/// `reelvec export` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Run directory written by `reelvec train`.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// parquet (movieId, title, column_0..; seed 000's schema, Snappy), csv (movieId then one
    /// column per dimension), npy, or word2vec.
    #[arg(long)]
    pub format: String,
    /// File to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Runs `reelvec export`.
pub fn run(args: Args) -> Result<()> {
    let format: ExportFormat = args.format.parse()?;
    check_outputs(format, &args.out)?;
    let (emb, info) = load_item_embeddings(&args.run)?;
    let files = export_run(format, &args.out, &info, emb.view())?;
    for f in files {
        outln!("wrote {}", f.display());
    }
    outln!("{} movies x {} dimensions ({} model)", emb.nrows(), emb.ncols(), info.model_kind);
    Ok(())
}
