//! `reelvec export`: writes a run's item embeddings as Parquet (`movieId`, `title`,
//! `column_0..`), CSV, `.npy` or word2vec text (with a titles side file; a `--sequences` run's
//! word2vec text is keyed by its tokens, with no side file, and its CSV has a `token` column), or
//! with `--vectors users` its user vectors as Parquet (`userId`, `column_0..`; the MF models, ials
//! and bpr), as Python's `Run.export` / `Run.export_users` do. The outputs are checked before the
//! run is loaded: an existing output must be a regular file (no symlink, device or FIFO is
//! replaced).

use std::path::PathBuf;

use anyhow::{bail, Result};
use reelvec_models::export::{check_outputs, export_run, ExportFormat};
use reelvec_models::pipelines::load_item_embeddings;
use reelvec_models::train::TrainedRun;

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
    /// Which vectors: the item embeddings, or the user vectors (`--format parquet` only).
    #[arg(long, value_enum, default_value_t = Vectors::Items)]
    pub vectors: Vectors,
}

/// `--vectors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Vectors {
    /// One row per movie.
    Items,
    /// One row per training user.
    Users,
}

/// Runs `reelvec export`.
pub fn run(args: Args) -> Result<()> {
    let format: ExportFormat = args.format.parse()?;
    check_outputs(format, &args.out)?;
    if args.vectors == Vectors::Users {
        if format != ExportFormat::Parquet {
            bail!("--vectors users is written as Parquet only (give --format parquet)");
        }
        let run = TrainedRun::load(&args.run)?;
        let file = run.export_user_vectors(&args.out)?;
        outln!("wrote {}", file.display());
        let info = &run.info;
        outln!("{} users ({} model)", info.user_raw_ids.len(), info.model_kind);
        return Ok(());
    }
    let (emb, info) = load_item_embeddings(&args.run)?;
    let files = export_run(format, &args.out, &info, emb.view())?;
    for f in files {
        outln!("wrote {}", f.display());
    }
    outln!("{} movies x {} dimensions ({} model)", emb.nrows(), emb.ncols(), info.model_kind);
    Ok(())
}
