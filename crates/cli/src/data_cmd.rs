//! `reelvec data ...`: data set statistics and the synthetic generator.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use reelvec_data::stats::Stats;
use reelvec_data::synth::{self, Preset, SynthConfig};
use reelvec_data::{load, GenericColumns, Layout, LoadOptions};

/// `reelvec data` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Print statistics of a data set (users, movies, ratings, density, ...).
    Stats(StatsArgs),
    /// Write a synthetic MovieLens-shaped data set with planted truth (truth.json beside it).
    Synth(SynthArgs),
}

#[derive(Debug, clap::Args)]
struct SynthArgs {
    /// Size: tiny, small, ml-100k, ml-latest-small, ml-1m or ml-25m.
    #[arg(long, default_value = "small")]
    preset: String,
    /// Layout to write: ml-100k, ml-1m, ml-10m, ml-latest or generic (whole-star layouts round
    /// half stars to the even star).
    #[arg(long, default_value = "ml-latest")]
    layout: String,
    /// Output directory (created when missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Where a data set is and how to read it (shared by every command that loads data).
#[derive(Debug, Clone, clap::Args)]
pub struct DataSource {
    /// Data set directory (ml-100k, ml-1m, ml-latest-small, ...) or ratings file.
    #[arg(long, value_name = "PATH")]
    pub data: PathBuf,
    #[command(flatten)]
    pub read: ReadOptions,
}

/// How to read a data set (layout, cache, generic columns).
#[derive(Debug, Clone, clap::Args)]
pub struct ReadOptions {
    /// Force a layout: ml-100k, ml-1m, ml-10m, ml-latest (= ml-latest-small, ml-20m, ml-25m,
    /// ml-32m) or generic. Detected from the files when absent.
    #[arg(long, value_name = "LAYOUT")]
    pub layout: Option<String>,
    /// Do not read or write the binary cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Generic layout: the columns USER,MOVIE,RATING[,TIMESTAMP], as 0-based positions or as
    /// header names (`userId,movieId,rating`: a Parquet file's column names, or the first line
    /// of a delimited file, which then is a header).
    #[arg(long, value_name = "U,M,R[,T]", default_value = "0,1,2,3")]
    pub columns: String,
    /// Generic layout: field delimiter (one character; "\t" or "tab" for a tab).
    #[arg(long, default_value = ",")]
    pub delimiter: String,
    /// Generic layout: the first line is a header.
    #[arg(long)]
    pub header: bool,
}

impl ReadOptions {
    /// Builds the library's load options for `path` (column names are looked up in its header).
    pub fn to_load_options(&self, path: &Path) -> Result<LoadOptions> {
        let layout = self.layout.as_deref().map(str::parse::<Layout>).transpose()?;
        let delimiter = match self.delimiter.as_str() {
            "\\t" | "tab" | "\t" => b'\t',
            d if d.len() == 1 => d.as_bytes()[0],
            d => anyhow::bail!("--delimiter {d:?}: expected one ASCII character"),
        };
        let entries: Vec<&str> = self.columns.split(',').collect();
        let generic = GenericColumns::from_spec(path, &entries, delimiter, self.header)
            .with_context(|| format!("--columns {:?}", self.columns))?;
        Ok(LoadOptions { layout, use_cache: !self.no_cache, generic: Some(generic) })
    }
}

#[derive(Debug, clap::Args)]
struct StatsArgs {
    #[command(flatten)]
    source: DataSource,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `reelvec data ...`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        DataCommand::Stats(a) => stats(a),
        DataCommand::Synth(a) => synth(a),
    }
}

fn synth(args: SynthArgs) -> Result<()> {
    let preset: Preset = args.preset.parse()?;
    let layout: Layout = args.layout.parse()?;
    // The output folder is checked before the (possibly long) generation starts.
    reelvec_outfile::check_dir(&args.out)?;
    let started = Instant::now();
    let data = synth::generate(&SynthConfig { seed: args.seed, ..preset.config() });
    let generated = started.elapsed().as_secs_f64();
    let files = reelvec_data::write(&data.dataset, layout, &args.out)
        .with_context(|| format!("cannot write the data set to {}", args.out.display()))?;
    let truth = args.out.join("truth.json");
    data.truth.save(&truth)?;
    eprintln!(
        "synthetic {preset} (seed {}): {} users, {} movies, {} ratings; generated in {generated:.2}s, written in {:.2}s",
        args.seed,
        data.dataset.users.len(),
        data.dataset.catalogue.len(),
        data.dataset.ratings.len(),
        started.elapsed().as_secs_f64() - generated
    );
    for f in files.iter().chain([&truth]) {
        outln!("{}", f.display());
    }
    Ok(())
}

/// Loads a data set with the given read options, with the path in the error context.
pub fn load_data(path: &Path, read: &ReadOptions) -> Result<reelvec_data::Dataset> {
    let opts = read.to_load_options(path)?;
    load(path, &opts).with_context(|| format!("cannot load data set {}", path.display()))
}

fn stats(args: StatsArgs) -> Result<()> {
    let ds = load_data(&args.source.data, &args.source.read)?;
    let s = Stats::compute(&ds);
    if args.json {
        let _ = writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_stats(&s);
    }
    Ok(())
}

/// Prints statistics as aligned text (a closed stdout, as with `| head`, is not an error).
pub fn print_stats(s: &Stats) {
    let text = format!(
        "layout                {}\n\
         users                 {}\n\
         movies rated          {}\n\
         movies in catalogue   {}\n\
         ratings               {}\n\
         rating min/max/mean   {} / {} / {:.4}\n\
         density               {:.6}\n\
         ratings per user      min {} / median {} / max {}\n\
         time span             {} .. {} (unix seconds)\n\
         duplicates dropped    {}\n\
         rated, not catalogued {}\n\
         catalogued, unrated   {}\n",
        s.layout,
        s.users,
        s.movies_rated,
        s.movies_catalogue,
        s.ratings,
        s.rating_min,
        s.rating_max,
        s.rating_mean,
        s.density,
        s.ratings_per_user_min,
        s.ratings_per_user_median,
        s.ratings_per_user_max,
        s.time_min,
        s.time_max,
        s.duplicates_dropped,
        s.rated_not_in_catalogue,
        s.catalogue_never_rated,
    );
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
