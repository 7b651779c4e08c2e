//! Run directories: everything a trained model needs to answer queries later.
//!
//! A run directory holds
//! - `model.safetensors`: every table of the model's [`ParamStore`] by name, f32, shape
//!   `[rows, cols]` (bias vectors are `[n, 1]`), plus fixed, untrained tables a model needs at
//!   query time (e.g. P4's residual means). The safetensors metadata records the table order
//!   and each table's gradient kind so a store is rebuilt exactly.
//! - `run.json`: a [`RunInfo`] (model kind, full config, seed, id maps, titles, dataset
//!   fingerprint, per-epoch history, final metrics, and the table shapes, which are checked
//!   against `model.safetensors` on load).
//! - `rated.safetensors` (optional): the movies each user rated in the training data, as CSR
//!   `u32` arrays `offsets` (`n_users + 1`) and `movies`, for `recommend --exclude-rated`.
//!
//! - `manifest.json`: the size and xxh3-128 of every other file, written last (see below).
//!
//! **A run is written as one unit.** [`save_run`] writes every file into a fresh staging
//! directory beside the target (`.NAME.staging-XXXXXX`, removed on any error), then renames it
//! into place; an existing run is first renamed aside (`.NAME.old-XXXXXX`), the new one renamed
//! in, files of the old directory that are not run files (a plot the user saved there) moved
//! over, and the old run removed. A crash at any point leaves either the old run or the new one
//! complete under the real name (plus, at worst, a hidden staging or old directory beside it),
//! never a mix of the two. Hidden names carry the writer's process id
//! (`.NAME.staging-PID-XXXXXX`); the next save of the same run removes leftovers of writers that
//! are no longer running ([`remove_stale_leftovers`]: on Linux, where `/proc/PID` tells; a staging
//! directory always, an old directory only when the run exists under its real name and the old
//! directory holds nothing but run files), so killed saves do not pile up. [`check_run_dir`] refuses, before training, a target that is a
//! symbolic link, a file, or a non-empty directory that is no run directory (so a mistyped
//! `--out ~` is never replaced).
//!
//! **Loading checks the manifest.** Every file a load reads is checked against `manifest.json`
//! (size and xxh3-128); a run file present but not listed (a `rated.safetensors` copied in from
//! another run), listed but missing, or with other bytes (flipped bits) is a
//! [`ModelError::Checkpoint`] naming the file. Runs of format version 1 (before manifests) load
//! without this check; a version-2 run without its manifest is an error. Tables holding NaN or
//! infinity are refused on save and on load. Truncated, corrupt or mismatched files are
//! [`ModelError::Checkpoint`] errors naming the file and what is wrong.
//!
//! Every file is byte-reproducible: the same tables give the same `model.safetensors` (the
//! safetensors metadata is one key, so no map order is involved) and `run.json` differs between
//! identical runs only in the timings its history and metrics record.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use reelvec_engine::{GradKind, ParamStore, Table};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::kind::ModelKind;
use crate::ModelError;

/// File name of the parameter tables in a run directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// File name of the run description in a run directory.
pub const RUN_FILE: &str = "run.json";
/// File name of the per-user rated movies in a run directory.
pub const RATED_FILE: &str = "rated.safetensors";
/// File name of the checksums of every other file of a run directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Every file name a run directory may hold; anything else in it belongs to the user.
pub const RUN_FILES: [&str; 4] = [MODEL_FILE, RUN_FILE, RATED_FILE, MANIFEST_FILE];
/// Version of the run-directory layout written by this code (2: with `manifest.json`).
pub const FORMAT_VERSION: u32 = 2;

/// Name and shape of one stored table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableShape {
    /// Table name, e.g. `user_factors`.
    pub name: String,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// The description of a run, stored as `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Layout version ([`FORMAT_VERSION`]).
    #[serde(default = "default_format_version")]
    pub format_version: u32,
    /// Which model was trained.
    pub model_kind: ModelKind,
    /// The full, resolved config the run used.
    pub config: serde_json::Value,
    /// The seed of the run.
    pub seed: u64,
    /// Raw user id of each dense user index (empty for item-only models).
    pub user_raw_ids: Vec<u64>,
    /// Raw movie id of each dense movie index.
    pub movie_raw_ids: Vec<u64>,
    /// Display title of each dense movie index (may be empty when no catalogue was loaded).
    #[serde(default)]
    pub movie_titles: Vec<String>,
    /// Fingerprint of the training data ([`fingerprint_ratings`]).
    pub dataset_fingerprint: String,
    /// Where the data came from, when it came from disk: an absolute path (runs before this
    /// field was made absolute may hold a relative one; see [`RunInfo::resolve_data_path`]).
    #[serde(default)]
    pub data_path: Option<String>,
    /// Lowest and highest rating of the training data (stars), when it had ratings.
    #[serde(default)]
    pub rating_scale: Option<[f32; 2]>,
    /// Per-epoch history (the trainer's, serialised).
    #[serde(default)]
    pub history: serde_json::Value,
    /// Final figures of the run (RMSE, cross-entropy, ...).
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// Shapes of the stored tables; filled in by [`save_run`] and checked by [`load_run`].
    #[serde(default)]
    pub tables: Vec<TableShape>,
    /// The movies are the tokens of a sequence corpus (`train --sequences`): `movie_titles`
    /// hold the token strings, queries name tokens exactly and word2vec exports are keyed by
    /// them (written only when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tokens: bool,
    /// The item feature names (by id) of an MF run trained with `model.item_features`; the
    /// feature tables and `item_feature_csr` are in `model.safetensors`. Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub item_features: Vec<String>,
}

fn default_format_version() -> u32 {
    FORMAT_VERSION
}

impl RunInfo {
    /// A run description with empty history, metrics and titles.
    pub fn new(model_kind: ModelKind, config: serde_json::Value, seed: u64) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            model_kind,
            config,
            seed,
            user_raw_ids: Vec::new(),
            movie_raw_ids: Vec::new(),
            movie_titles: Vec::new(),
            dataset_fingerprint: String::new(),
            data_path: None,
            rating_scale: None,
            history: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
            tables: Vec::new(),
            tokens: false,
            item_features: Vec::new(),
        }
    }

    /// Predicted stars as a user sees them: clipped to the run's rating scale when it has one.
    /// Printed predictions (`predict`, `recommend`, fold-in) go through here; the figures
    /// (RMSE, MAE) use the model's own output, as the notebooks do — P2's sigmoid range reaches
    /// 5.5 on a 1–5 scale by design, and its validation RMSE stays comparable with PyTorch's.
    /// Rankings use the unclipped scores, so clipping never reorders a list.
    pub fn clip_to_scale(&self, stars: f32) -> f32 {
        match self.rating_scale {
            Some([lo, hi]) if lo <= hi => stars.clamp(lo, hi),
            _ => stars,
        }
    }

    /// The dense index of a raw movie id.
    pub fn movie_dense(&self, raw: u64) -> Option<u32> {
        self.movie_raw_ids.iter().position(|&r| r == raw).map(|i| i as u32)
    }

    /// The dense index of a raw user id.
    pub fn user_dense(&self, raw: u64) -> Option<u32> {
        self.user_raw_ids.iter().position(|&r| r == raw).map(|i| i as u32)
    }

    /// The data path recorded in `run.json`, made usable from any folder: an absolute path as
    /// is; a relative one (older runs) as given when it exists from the current folder, else
    /// against the run directory and each folder above it; `synth:<preset>` as is. `Ok(None)`
    /// when the run records none; an error naming every place tried when nothing exists.
    pub fn resolve_data_path(&self, run_dir: &Path) -> Result<Option<PathBuf>, ModelError> {
        let Some(recorded) = self.data_path.as_deref() else {
            return Ok(None);
        };
        let path = PathBuf::from(recorded);
        if recorded.starts_with("synth:") || path.is_absolute() || path.exists() {
            return Ok(Some(path));
        }
        let base = fs::canonicalize(run_dir).map_err(|e| ModelError::io(run_dir, e))?;
        let mut tried = vec![std::env::current_dir().map(|d| d.join(&path)).unwrap_or_else(|_| path.clone())];
        for folder in base.ancestors() {
            let candidate = folder.join(&path);
            if candidate.exists() {
                return Ok(Some(candidate));
            }
            tried.push(candidate);
        }
        Err(ModelError::checkpoint(
            run_dir.join(RUN_FILE),
            format!(
                "records the relative data path `{recorded}`, which exists neither from here nor \
                 beside the run (tried {}); pass --data",
                tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ),
        ))
    }

    /// A display title for a dense movie index ("movie <raw id>" when no title is stored).
    pub fn title(&self, dense: u32) -> String {
        match self.movie_titles.get(dense as usize) {
            Some(t) if !t.is_empty() => t.clone(),
            _ => match self.movie_raw_ids.get(dense as usize) {
                Some(raw) => format!("movie {raw}"),
                None => format!("movie #{dense}"),
            },
        }
    }
}

/// A 64-bit FNV-1a fingerprint of the rating columns (users, movies, ratings, timestamps), as
/// 16 hex digits. Two datasets with the same rows in the same order have the same fingerprint.
pub fn fingerprint_ratings(ratings: &reelvec_data::Ratings) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(PRIME);
        }
    };
    eat(&(ratings.len() as u64).to_le_bytes());
    for i in 0..ratings.len() {
        eat(&ratings.user[i].to_le_bytes());
        eat(&ratings.movie[i].to_le_bytes());
        eat(&ratings.rating[i].to_le_bytes());
        eat(&ratings.timestamp.get(i).copied().unwrap_or(0).to_le_bytes());
    }
    format!("{h:016x}")
}

fn grad_kind_name(k: GradKind) -> &'static str {
    match k {
        GradKind::SparseRows => "sparse_rows",
        GradKind::Dense => "dense",
    }
}

fn f32_bytes(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The safetensors metadata key listing the tables in order with their gradient kinds,
/// `name:kind,name:kind` (format 1 used two keys, `reelvec.table_order` and `reelvec.grad_kinds`).
const TABLES_KEY: &str = "reelvec.tables";

/// A checkpoint error when a table holds NaN or infinity.
fn check_finite(name: &str, cols: usize, data: &[f32], path: &Path) -> Result<(), ModelError> {
    match data.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(i) => Err(ModelError::checkpoint(
            path,
            format!(
                "table `{name}` holds {} at row {}, column {}; the model is broken (retrain it)",
                data[i],
                i / cols.max(1),
                i % cols.max(1)
            ),
        )),
    }
}

/// Serialises every table of `params` to safetensors bytes (f32, `[rows, cols]`).
pub fn params_to_safetensors(params: &ParamStore) -> Result<Vec<u8>, ModelError> {
    let bytes: Vec<Vec<u8>> = params.tables().iter().map(|t| f32_bytes(&t.data)).collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (t, b) in params.tables().iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, vec![t.rows, t.cols], b)
            .map_err(|e| ModelError::checkpoint(&t.name, format!("cannot serialise table: {e}")))?;
        views.push((t.name.clone(), view));
    }
    // One metadata key: safetensors keeps metadata in a HashMap, whose order (and so the file's
    // bytes) would vary from run to run with two or more keys.
    let tables: Vec<String> =
        params.tables().iter().map(|t| format!("{}:{}", t.name, grad_kind_name(t.grad_kind))).collect();
    let meta = HashMap::from([(TABLES_KEY.to_string(), tables.join(","))]);
    safetensors::serialize(views, Some(meta))
        .map_err(|e| ModelError::checkpoint(MODEL_FILE, format!("cannot serialise: {e}")))
}

fn truncated_or_corrupt(path: &Path, e: impl std::fmt::Display) -> ModelError {
    ModelError::checkpoint(path, format!("file is truncated or corrupt ({e})"))
}

/// Parses safetensors bytes written by [`params_to_safetensors`] back into a store, in the
/// original table order. `path` is only used in error messages.
pub fn params_from_safetensors(bytes: &[u8], path: &Path) -> Result<ParamStore, ModelError> {
    if bytes.len() < 8 {
        return Err(truncated_or_corrupt(path, format!("{} bytes, shorter than the header", bytes.len())));
    }
    let (header_len, meta) = SafeTensors::read_metadata(bytes).map_err(|e| truncated_or_corrupt(path, e))?;
    let expected = 8 + header_len + meta.data_len();
    if bytes.len() != expected {
        return Err(truncated_or_corrupt(
            path,
            format!("{} bytes on disk, the header describes {expected}", bytes.len()),
        ));
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| truncated_or_corrupt(path, e))?;
    let info = meta.metadata().clone().unwrap_or_default();
    let (mut names, kinds): (Vec<String>, Vec<String>) = match info.get(TABLES_KEY) {
        Some(t) if !t.is_empty() => t
            .split(',')
            .map(|e| {
                let (n, k) = e.rsplit_once(':').unwrap_or((e, ""));
                (n.to_string(), k.to_string())
            })
            .unzip(),
        _ => {
            let kinds = info.get("reelvec.grad_kinds").map(|k| k.split(',').map(str::to_string).collect());
            let names = match info.get("reelvec.table_order") {
                Some(o) if !o.is_empty() => o.split(',').map(str::to_string).collect(),
                _ => {
                    let mut n: Vec<String> = st.names().into_iter().map(str::to_string).collect();
                    n.sort();
                    n
                }
            };
            (names, kinds.unwrap_or_default())
        }
    };
    if names.len() != st.len() {
        return Err(ModelError::checkpoint(
            path,
            format!("metadata lists {} tables, the file holds {}", names.len(), st.len()),
        ));
    }
    let mut params = ParamStore::new();
    for (i, name) in names.drain(..).enumerate() {
        let view = st
            .tensor(&name)
            .map_err(|_| ModelError::checkpoint(path, format!("table `{name}` listed but missing")))?;
        if view.dtype() != Dtype::F32 {
            return Err(ModelError::checkpoint(
                path,
                format!("table `{name}` has dtype {:?}, expected F32", view.dtype()),
            ));
        }
        let (rows, cols) = match *view.shape() {
            [r, c] => (r, c),
            [r] => (r, 1),
            ref s => {
                return Err(ModelError::checkpoint(
                    path,
                    format!("table `{name}` has shape {s:?}, expected 2-D"),
                ))
            }
        };
        let data: Vec<f32> =
            view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        check_finite(&name, cols, &data, path)?;
        let grad_kind = match kinds.get(i).map(String::as_str) {
            Some("dense") => GradKind::Dense,
            _ => GradKind::SparseRows,
        };
        params
            .insert(Table { name: name.clone(), rows, cols, grad_kind, data })
            .map_err(|e| ModelError::checkpoint(path, format!("table `{name}`: {e}")))?;
    }
    Ok(params)
}

/// One file of a run as `manifest.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// File name inside the run directory.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// xxh3-128 of the bytes, 32 hex digits.
    pub xxh3_128: String,
}

/// `manifest.json`: every other file of a run with its size and checksum, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The files of the run.
    pub files: Vec<ManifestEntry>,
}

fn digest(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

impl Manifest {
    fn of(files: &[(&str, &[u8])]) -> Self {
        let mut files: Vec<ManifestEntry> = files
            .iter()
            .map(|(name, bytes)| ManifestEntry {
                name: (*name).to_string(),
                size: bytes.len() as u64,
                xxh3_128: digest(bytes),
            })
            .collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Self { files }
    }

    fn entry(&self, name: &str) -> Option<&ManifestEntry> {
        self.files.iter().find(|e| e.name == name)
    }
}

fn stage_name(dir: &Path) -> String {
    dir.file_name().map_or_else(|| "run".to_string(), |n| n.to_string_lossy().into_owned())
}

/// Checks, before any training, that `dir` can receive a run: it is absent, an empty
/// directory, or a run directory (holds `run.json`) — never a symbolic link, a file, or a
/// directory of other things — and its folder exists or can be created, and is writable.
pub fn check_run_dir(dir: &Path) -> Result<(), ModelError> {
    let refuse = |why: &str| ModelError::checkpoint(dir, format!("{why}; refusing to write a run there"));
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => return Err(refuse("is a symbolic link")),
        Ok(m) if !m.is_dir() => return Err(refuse("exists and is not a directory")),
        Ok(_) => {
            let mut entries = fs::read_dir(dir).map_err(|e| ModelError::io(dir, e))?;
            if entries.next().is_some() && !dir.join(RUN_FILE).is_file() {
                return Err(refuse("is a non-empty directory that holds no run (no run.json)"));
            }
        }
        Err(_) => {}
    }
    reelvec_outfile::check_dir(reelvec_outfile::parent_of(dir))?;
    Ok(())
}

/// Saves a run as one unit (see the module docs): `model.safetensors`, `run.json` (with
/// `tables` filled in from `params`), `rated.safetensors` when `rated` is given, and
/// `manifest.json`, staged beside `dir` and renamed into place, replacing a run already there.
pub fn save_run(
    dir: &Path,
    params: &ParamStore,
    info: &RunInfo,
    rated: Option<&RatedItems>,
) -> Result<(), ModelError> {
    check_run_dir(dir)?;
    for t in params.tables() {
        check_finite(&t.name, t.cols, &t.data, &dir.join(MODEL_FILE))?;
    }
    let model = params_to_safetensors(params)?;
    let mut info = info.clone();
    info.format_version = FORMAT_VERSION;
    info.tables = params
        .tables()
        .iter()
        .map(|t| TableShape { name: t.name.clone(), rows: t.rows, cols: t.cols })
        .collect();
    let json = serde_json::to_vec_pretty(&info)
        .map_err(|e| ModelError::checkpoint(dir.join(RUN_FILE), format!("cannot serialise: {e}")))?;
    let rated = rated.map(|r| rated_bytes(r, &dir.join(RATED_FILE))).transpose()?;
    let mut files: Vec<(&str, &[u8])> = vec![(MODEL_FILE, &model), (RUN_FILE, &json)];
    if let Some(r) = &rated {
        files.push((RATED_FILE, r));
    }
    let manifest = serde_json::to_vec_pretty(&Manifest::of(&files))
        .map_err(|e| ModelError::checkpoint(dir.join(MANIFEST_FILE), format!("cannot serialise: {e}")))?;
    files.push((MANIFEST_FILE, &manifest));

    let parent = reelvec_outfile::parent_of(dir);
    fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
    let name = stage_name(dir);
    remove_stale_leftovers(parent, &name, dir);
    // Removed when dropped, so every error path below leaves nothing behind.
    let stage = tempfile::Builder::new()
        .prefix(&format!(".{name}.staging-{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(|e| ModelError::io(parent, e))?;
    for (file, bytes) in &files {
        let path = stage.path().join(file);
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create_new(&path)?;
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()
        };
        write().map_err(|e| ModelError::io(&path, e))?;
    }
    commit_staged(stage, dir, parent, &name)
}

/// Removes the hidden directories that killed saves of run `name` left in `parent` (module
/// docs): `.NAME.staging-PID-*` and `.NAME.old-PID-*` whose writer `PID` no longer runs. A
/// leftover is removed only when it is a real directory (not a symbolic link) whose entries are
/// all plain run files; an old directory only when the run `dir` exists (otherwise it may be
/// the only copy of the run). Best effort: nothing here fails a save; where the system cannot
/// tell whether a process runs (no `/proc`), nothing is removed.
pub fn remove_stale_leftovers(parent: &Path, name: &str, dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(parent) else { return };
    let run_exists = fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let Some(rest) = file.strip_prefix(&format!(".{name}.")) else { continue };
        let (kind_ok, tail) = if let Some(t) = rest.strip_prefix("staging-") {
            (true, t)
        } else if let Some(t) = rest.strip_prefix("old-") {
            (run_exists, t)
        } else {
            continue;
        };
        let Some((pid, _)) = tail.split_once('-') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if !kind_ok || pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let path = entry.path();
        let only_run_files = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
            && fs::read_dir(&path).is_ok_and(|files| {
                files.flatten().all(|f| {
                    f.file_type().is_ok_and(|t| t.is_file()) && RUN_FILES.iter().any(|r| f.file_name() == *r)
                })
            });
        if only_run_files {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Renames a complete staging directory to `dir`, replacing a run there (module docs).
fn commit_staged(stage: tempfile::TempDir, dir: &Path, parent: &Path, name: &str) -> Result<(), ModelError> {
    if fs::symlink_metadata(dir).is_err() {
        fs::rename(stage.path(), dir).map_err(|e| ModelError::io(dir, e))?;
        let _ = stage.keep();
        return Ok(());
    }
    // An empty, uniquely named directory that the old run is renamed onto.
    let aside = tempfile::Builder::new()
        .prefix(&format!(".{name}.old-{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(|e| ModelError::io(parent, e))?
        .keep();
    if let Err(e) = fs::rename(dir, &aside) {
        let _ = fs::remove_dir(&aside);
        return Err(ModelError::io(dir, e));
    }
    if let Err(e) = fs::rename(stage.path(), dir) {
        // Put the old run back; the staging directory is removed when `stage` drops.
        let _ = fs::rename(&aside, dir);
        return Err(ModelError::io(dir, e));
    }
    let _ = stage.keep();
    // Files the user kept in the old run directory (plots, notes) move to the new one.
    if let Ok(entries) = fs::read_dir(&aside) {
        for entry in entries.flatten() {
            let file = entry.file_name();
            if !RUN_FILES.iter().any(|r| file == *r) {
                fs::rename(entry.path(), dir.join(&file)).map_err(|e| ModelError::io(entry.path(), e))?;
            }
        }
    }
    fs::remove_dir_all(&aside).map_err(|e| ModelError::io(&aside, e))
}

/// The files of a run directory as its manifest describes them; every read is checked.
struct RunFiles {
    dir: PathBuf,
    /// `None` only for format-1 runs (written before manifests).
    manifest: Option<Manifest>,
}

impl RunFiles {
    fn open(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(MANIFEST_FILE);
        let manifest = match fs::read(&path) {
            Ok(bytes) => Some(
                serde_json::from_slice::<Manifest>(&bytes)
                    .map_err(|e| ModelError::checkpoint(&path, format!("not a valid run manifest ({e})")))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ModelError::io(&path, e)),
        };
        let files = Self { dir: dir.to_path_buf(), manifest };
        if let Some(m) = &files.manifest {
            for name in [MODEL_FILE, RUN_FILE, RATED_FILE] {
                if m.entry(name).is_none() && dir.join(name).exists() {
                    return Err(ModelError::checkpoint(
                        dir.join(name),
                        format!("is not part of this run ({MANIFEST_FILE} does not list it; copied in from another run?)"),
                    ));
                }
            }
        }
        Ok(files)
    }

    /// The bytes of `name`, checked against the manifest; `Ok(None)` when the run has no such
    /// file (and the manifest lists none).
    fn read(&self, name: &str) -> Result<Option<Vec<u8>>, ModelError> {
        let path = self.dir.join(name);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.manifest.as_ref().is_some_and(|m| m.entry(name).is_some()) {
                    return Err(ModelError::checkpoint(
                        &path,
                        format!("is missing ({MANIFEST_FILE} lists it)"),
                    ));
                }
                return Ok(None);
            }
            Err(e) => return Err(ModelError::io(&path, e)),
        };
        if let Some(entry) = self.manifest.as_ref().and_then(|m| m.entry(name)) {
            if bytes.len() as u64 != entry.size {
                return Err(ModelError::checkpoint(
                    &path,
                    format!(
                        "is {} bytes, {MANIFEST_FILE} records {} (truncated or replaced)",
                        bytes.len(),
                        entry.size
                    ),
                ));
            }
            if digest(&bytes) != entry.xxh3_128 {
                return Err(ModelError::checkpoint(
                    &path,
                    format!(
                        "checksum does not match {MANIFEST_FILE} (the file is corrupt or from another run)"
                    ),
                ));
            }
        }
        Ok(Some(bytes))
    }

    fn require(&self, name: &str) -> Result<Vec<u8>, ModelError> {
        let path = self.dir.join(name);
        self.read(name)?.ok_or_else(|| {
            ModelError::io(&path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
        })
    }

    fn info(&self) -> Result<RunInfo, ModelError> {
        let path = self.dir.join(RUN_FILE);
        let bytes = self.require(RUN_FILE)?;
        let info: RunInfo = serde_json::from_slice(&bytes)
            .map_err(|e| ModelError::checkpoint(&path, format!("not a valid run description ({e})")))?;
        if info.format_version > FORMAT_VERSION {
            return Err(ModelError::checkpoint(
                &path,
                format!(
                    "format version {} is newer than this reelvec ({FORMAT_VERSION})",
                    info.format_version
                ),
            ));
        }
        if info.format_version >= 2 && self.manifest.is_none() {
            return Err(ModelError::checkpoint(
                self.dir.join(MANIFEST_FILE),
                "is missing: the run is incomplete or was edited (retrain it)",
            ));
        }
        let fp = &info.dataset_fingerprint;
        if fp.len() != 16 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ModelError::checkpoint(
                &path,
                format!(
                    "dataset_fingerprint `{fp}` is not 16 hex digits; the data of the run cannot be checked"
                ),
            ));
        }
        Ok(info)
    }
}

/// Reads only `run.json` of a run directory (checked against `manifest.json`).
pub fn load_run_info(dir: &Path) -> Result<RunInfo, ModelError> {
    RunFiles::open(dir)?.info()
}

/// Loads a run directory and checks that `model.safetensors` holds exactly the tables, with
/// the shapes, that `run.json` lists.
pub fn load_run(dir: &Path) -> Result<(ParamStore, RunInfo), ModelError> {
    let files = RunFiles::open(dir)?;
    let info = files.info()?;
    let path = dir.join(MODEL_FILE);
    let params = params_from_safetensors(&files.require(MODEL_FILE)?, &path)?;
    let found: Vec<TableShape> = params
        .tables()
        .iter()
        .map(|t| TableShape { name: t.name.clone(), rows: t.rows, cols: t.cols })
        .collect();
    if !info.tables.is_empty() && found != info.tables {
        let show = |v: &[TableShape]| {
            v.iter().map(|t| format!("{} [{}, {}]", t.name, t.rows, t.cols)).collect::<Vec<_>>().join(", ")
        };
        return Err(ModelError::checkpoint(
            &path,
            format!(
                "does not match {RUN_FILE}: it holds {} but {RUN_FILE} lists {} (files from different runs?)",
                show(&found),
                show(&info.tables)
            ),
        ));
    }
    Ok((params, info))
}

/// A table of `params` by name, checked for shape; a clear checkpoint error otherwise.
pub fn require_table<'a>(
    params: &'a ParamStore,
    name: &str,
    rows: usize,
    cols: Option<usize>,
    dir: &Path,
) -> Result<&'a Table, ModelError> {
    let path = dir.join(MODEL_FILE);
    let id =
        params.id(name).ok_or_else(|| ModelError::checkpoint(&path, format!("table `{name}` is missing")))?;
    let t = params.get(id);
    if t.rows != rows || cols.is_some_and(|c| c != t.cols) {
        return Err(ModelError::checkpoint(
            &path,
            format!(
                "table `{name}` is [{}, {}], expected [{rows}, {}] (run.json and the model disagree)",
                t.rows,
                t.cols,
                cols.map_or("k".to_string(), |c| c.to_string())
            ),
        ));
    }
    Ok(t)
}

/// Movies each user rated: reelvec-metrics' one CSR table (sorted, de-duplicated rows), stored
/// as `rated.safetensors` (`offsets` and `movies`, U32).
pub use reelvec_metrics::RatedItems;

/// The bytes of `rated.safetensors` (`path` for error messages).
fn rated_bytes(rated: &RatedItems, path: &Path) -> Result<Vec<u8>, ModelError> {
    let offsets = rated
        .indptr()
        .iter()
        .map(|&x| u32::try_from(x))
        .collect::<Result<Vec<u32>, _>>()
        .map_err(|_| ModelError::checkpoint(path, "more than 2^32 rated movies"))?;
    let ob: Vec<u8> = offsets.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mb: Vec<u8> = rated.indices().iter().flat_map(|x| x.to_le_bytes()).collect();
    let views = [
        ("movies", TensorView::new(Dtype::U32, vec![rated.indices().len()], &mb)),
        ("offsets", TensorView::new(Dtype::U32, vec![offsets.len()], &ob)),
    ];
    let mut ok = Vec::new();
    for (n, v) in views {
        ok.push((n, v.map_err(|e| ModelError::checkpoint(path, e.to_string()))?));
    }
    safetensors::serialize(ok, None).map_err(|e| ModelError::checkpoint(path, e.to_string()))
}

/// Reads `rated.safetensors`; `Ok(None)` when the run has none.
pub fn load_rated(dir: &Path) -> Result<Option<RatedItems>, ModelError> {
    let path: PathBuf = dir.join(RATED_FILE);
    let files = RunFiles::open(dir)?;
    files.info()?;
    let Some(bytes) = files.read(RATED_FILE)? else {
        return Ok(None);
    };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| truncated_or_corrupt(&path, e))?;
    let get = |name: &str| -> Result<Vec<u32>, ModelError> {
        let v = st.tensor(name).map_err(|_| ModelError::checkpoint(&path, format!("`{name}` is missing")))?;
        if v.dtype() != Dtype::U32 {
            return Err(ModelError::checkpoint(&path, format!("`{name}` is not U32")));
        }
        Ok(v.data().chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let offsets = get("offsets")?.into_iter().map(|x| x as usize).collect();
    let rated = RatedItems::from_csr(offsets, get("movies")?)
        .map_err(|_| ModelError::checkpoint(&path, "offsets are inconsistent with the movie list"))?;
    Ok(Some(rated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use reelvec_engine::Init;

    fn store() -> ParamStore {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut p = ParamStore::new();
        let n = Init::Normal { mean: 0.0, std: 1.0 };
        p.add("user_factors", 4, 3, GradKind::SparseRows, n, &mut rng).unwrap();
        p.add("movie_factors", 5, 3, GradKind::SparseRows, n, &mut rng).unwrap();
        p.add("user_bias", 4, 1, GradKind::SparseRows, n, &mut rng).unwrap();
        p.add("dense_w", 2, 2, GradKind::Dense, n, &mut rng).unwrap();
        p
    }

    fn info() -> RunInfo {
        let mut i = RunInfo::new(ModelKind::Mf, serde_json::json!({"k": 3}), 7);
        i.user_raw_ids = vec![10, 20, 30, 40];
        i.movie_raw_ids = vec![1, 2, 3, 4, 5];
        i.movie_titles = vec!["A (1990)".into(), "B".into(), String::new(), "D".into(), "E".into()];
        i.history = serde_json::json!([{"epoch": 0, "val_loss": 0.9}]);
        i.dataset_fingerprint = "0123456789abcdef".into();
        i
    }

    #[test]
    fn round_trip_keeps_order_values_and_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let p = store();
        save_run(dir.path(), &p, &info(), None).unwrap();
        let (q, i) = load_run(dir.path()).unwrap();
        assert_eq!(p, q);
        let mut expect = info();
        expect.tables = i.tables.clone();
        expect.format_version = FORMAT_VERSION;
        assert_eq!(i, expect);
        assert_eq!(i.tables.len(), 4);
        assert_eq!(i.tables[1], TableShape { name: "movie_factors".into(), rows: 5, cols: 3 });
        assert_eq!(i.title(0), "A (1990)");
        assert_eq!(i.title(2), "movie 3");
        assert_eq!(i.movie_dense(4), Some(3));
        // No temporary files left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    }

    #[test]
    fn truncated_model_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        save_run(dir.path(), &store(), &info(), None).unwrap();
        let path = dir.path().join(MODEL_FILE);
        let bytes = std::fs::read(&path).unwrap();
        for cut in [3, 8, 40, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = load_run(dir.path()).unwrap_err().to_string();
            assert!(err.contains("truncated"), "cut {cut}: {err}");
            assert!(err.contains(MODEL_FILE), "{err}");
            // Without the manifest's size check, the safetensors parser says the same.
            let err = params_from_safetensors(&bytes[..cut], &path).unwrap_err().to_string();
            assert!(err.contains("truncated or corrupt"), "cut {cut}: {err}");
        }
    }

    #[test]
    fn mismatched_files_are_a_clear_error() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        save_run(a.path(), &store(), &info(), None).unwrap();
        let mut other = ParamStore::new();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        other.add("user_factors", 4, 2, GradKind::SparseRows, Init::Zeros, &mut rng).unwrap();
        save_run(b.path(), &other, &info(), None).unwrap();
        std::fs::copy(b.path().join(MODEL_FILE), a.path().join(MODEL_FILE)).unwrap();
        let err = load_run(a.path()).unwrap_err().to_string();
        assert!(err.contains(MODEL_FILE) && err.contains("manifest.json records"), "{err}");
        // A format-1 run (no manifest) still has its tables checked against run.json.
        std::fs::remove_file(a.path().join(MANIFEST_FILE)).unwrap();
        let mut v1 = load_run_info(b.path()).unwrap();
        v1.format_version = 1;
        v1.tables = store()
            .tables()
            .iter()
            .map(|t| TableShape { name: t.name.clone(), rows: t.rows, cols: t.cols })
            .collect();
        std::fs::write(a.path().join(RUN_FILE), serde_json::to_vec(&v1).unwrap()).unwrap();
        let err = load_run(a.path()).unwrap_err().to_string();
        assert!(err.contains("does not match run.json"), "{err}");
        assert!(err.contains("user_factors [4, 2]"), "{err}");

        let (p, _) = load_run(b.path()).unwrap();
        let err = require_table(&p, "user_factors", 4, Some(3), b.path()).unwrap_err().to_string();
        assert!(err.contains("[4, 2], expected [4, 3]"), "{err}");
        let err = require_table(&p, "movie_bias", 4, None, b.path()).unwrap_err().to_string();
        assert!(err.contains("`movie_bias` is missing"), "{err}");
    }

    #[test]
    fn corrupt_run_json_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        save_run(dir.path(), &store(), &info(), None).unwrap();
        std::fs::write(dir.path().join(RUN_FILE), b"{\"model_kind\": \"mf\", \"conf").unwrap();
        let err = load_run(dir.path()).unwrap_err().to_string();
        assert!(err.contains("run.json") && err.contains("manifest.json records"), "{err}");
        std::fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
        let err = load_run(dir.path()).unwrap_err().to_string();
        assert!(err.contains("run.json") && err.contains("not a valid run description"), "{err}");
        let missing = tempfile::tempdir().unwrap();
        let err = load_run(missing.path()).unwrap_err().to_string();
        assert!(err.contains("run.json"), "{err}");
    }

    #[test]
    fn rated_items_round_trip() {
        let users = [1, 0, 1, 2, 1];
        let movies = [7, 3, 2, 9, 5];
        let r = RatedItems::from_pairs(4, &users, &movies).unwrap();
        assert_eq!(r.indptr(), &[0, 1, 4, 5, 5]);
        assert_eq!(r.row(1), &[2, 5, 7]);
        assert_eq!(r.row(3), &[] as &[u32]);
        let sub = RatedItems::from_rows_of(4, &users, &movies, &[0, 3]).unwrap();
        assert_eq!(sub.row(1), &[7]);
        assert_eq!(sub.row(2), &[9]);
        let dir = tempfile::tempdir().unwrap();
        save_run(dir.path(), &store(), &info(), None).unwrap();
        assert_eq!(load_rated(dir.path()).unwrap(), None);
        save_run(dir.path(), &store(), &info(), Some(&r)).unwrap();
        assert_eq!(load_rated(dir.path()).unwrap(), Some(r));
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        n.sort();
        n
    }

    #[test]
    fn flipped_bytes_in_tensor_data_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        save_run(dir.path(), &store(), &info(), None).unwrap();
        let path = dir.path().join(MODEL_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2; // inside the last table's data, not the header
        bytes[last] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let err = load_run(dir.path()).unwrap_err().to_string();
        assert!(err.contains(MODEL_FILE) && err.contains("checksum does not match"), "{err}");
    }

    #[test]
    fn a_rated_file_from_another_run_is_refused() {
        let r = RatedItems::from_pairs(4, &[0, 1], &[2, 3]).unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        save_run(a.path(), &store(), &info(), None).unwrap();
        save_run(b.path(), &store(), &info(), Some(&r)).unwrap();
        fs::copy(b.path().join(RATED_FILE), a.path().join(RATED_FILE)).unwrap();
        let err = load_rated(a.path()).unwrap_err().to_string();
        assert!(err.contains(RATED_FILE) && err.contains("not part of this run"), "{err}");
        assert!(load_run(a.path()).unwrap_err().to_string().contains("not part of this run"));
        // A different rated list over a run that has one: checksum mismatch.
        let other = RatedItems::from_pairs(4, &[0, 1], &[1, 3]).unwrap();
        let c = tempfile::tempdir().unwrap();
        save_run(c.path(), &store(), &info(), Some(&other)).unwrap();
        fs::copy(c.path().join(RATED_FILE), b.path().join(RATED_FILE)).unwrap();
        let err = load_rated(b.path()).unwrap_err().to_string();
        assert!(err.contains("checksum does not match"), "{err}");
    }

    #[test]
    fn nan_and_infinite_weights_are_refused_on_save_and_load() {
        let mut p = store();
        let id = p.id("movie_factors").unwrap();
        p.get_mut(id).data[7] = f32::NAN;
        let bytes = params_to_safetensors(&p).unwrap();
        let err = params_from_safetensors(&bytes, Path::new(MODEL_FILE)).unwrap_err().to_string();
        assert!(err.contains("`movie_factors` holds NaN at row 2, column 1"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = save_run(&dir.path().join("run"), &p, &info(), None).unwrap_err().to_string();
        assert!(err.contains("holds NaN"), "{err}");
        assert!(file_names(dir.path()).is_empty(), "nothing written: {:?}", file_names(dir.path()));
        p.get_mut(id).data[7] = f32::INFINITY;
        let bytes = params_to_safetensors(&p).unwrap();
        let err = params_from_safetensors(&bytes, Path::new(MODEL_FILE)).unwrap_err().to_string();
        assert!(err.contains("holds inf"), "{err}");
    }

    #[test]
    fn retraining_replaces_the_whole_run_and_a_crash_leaves_the_old_one() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("run");
        let rated = RatedItems::from_pairs(4, &[0, 1], &[2, 3]).unwrap();
        save_run(&dir, &store(), &info(), Some(&rated)).unwrap();
        fs::write(dir.join("loss.svg"), b"<svg/>").unwrap();
        // A crash while writing the next run leaves a staging directory with part of it.
        let crashed = parent.path().join(".run.staging-abc123");
        fs::create_dir(&crashed).unwrap();
        fs::write(crashed.join(MODEL_FILE), b"half").unwrap();
        let (p, i) = load_run(&dir).unwrap();
        assert_eq!(p, store());
        assert_eq!(i.seed, 7);
        assert_eq!(load_rated(&dir).unwrap(), Some(rated));
        // Retraining without a rated list: the old rated.safetensors and run.json are gone.
        let mut other = ParamStore::new();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        other.add("user_factors", 4, 2, GradKind::SparseRows, Init::Zeros, &mut rng).unwrap();
        let mut info2 = info();
        info2.seed = 8;
        save_run(&dir, &other, &info2, None).unwrap();
        let (p, i) = load_run(&dir).unwrap();
        assert_eq!((p, i.seed), (other, 8));
        assert_eq!(load_rated(&dir).unwrap(), None);
        assert_eq!(file_names(&dir), vec!["loss.svg", MANIFEST_FILE, MODEL_FILE, RUN_FILE]);
        // Only the crashed staging directory (not ours) remains beside the run.
        assert_eq!(file_names(parent.path()), vec![".run.staging-abc123", "run"]);
    }

    #[test]
    fn a_save_removes_what_killed_saves_of_the_same_run_left_behind() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("run");
        // A writer that is gone: a child that has exited and been reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let leftover = |name: &str, files: &[&str]| {
            let d = parent.path().join(name);
            fs::create_dir(&d).unwrap();
            for f in files {
                fs::write(d.join(f), b"half").unwrap();
            }
        };
        leftover(&format!(".run.staging-{dead}-aaaaaa"), &[MODEL_FILE]);
        leftover(&format!(".run.old-{dead}-bbbbbb"), &[MODEL_FILE, RUN_FILE]);
        // Kept: a live writer's staging (pid 1 always runs), a leftover holding a user's file,
        // another run's leftover, and a name that carries no pid.
        leftover(".run.staging-1-cccccc", &[MODEL_FILE]);
        leftover(&format!(".run.staging-{dead}-dddddd"), &["notes.txt"]);
        leftover(&format!(".other.staging-{dead}-eeeeee"), &[MODEL_FILE]);
        leftover(".run.staging-abc123", &[MODEL_FILE]);
        // The first save: no run under the real name yet, so the old directory stays.
        save_run(&dir, &store(), &info(), None).unwrap();
        let mut want = vec![
            ".other.staging-DEAD-eeeeee".to_string(),
            ".run.old-DEAD-bbbbbb".to_string(),
            ".run.staging-1-cccccc".to_string(),
            ".run.staging-DEAD-dddddd".to_string(),
            ".run.staging-abc123".to_string(),
            "run".to_string(),
        ];
        let names = |want: &mut Vec<String>| {
            let mut w: Vec<String> = want.iter().map(|n| n.replace("DEAD", &dead.to_string())).collect();
            w.sort();
            w
        };
        assert_eq!(file_names(parent.path()), names(&mut want));
        // The second save: the run exists, so the dead writer's old directory goes too.
        save_run(&dir, &store(), &info(), None).unwrap();
        want.retain(|n| !n.starts_with(".run.old-"));
        assert_eq!(file_names(parent.path()), names(&mut want));
        assert_eq!(load_run(&dir).unwrap().0, store());
    }

    #[test]
    fn model_files_are_byte_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let first = params_to_safetensors(&store()).unwrap();
        for i in 0..8 {
            let run = dir.path().join(format!("r{i}"));
            save_run(&run, &store(), &info(), None).unwrap();
            assert_eq!(fs::read(run.join(MODEL_FILE)).unwrap(), first, "save {i}");
            assert_eq!(
                fs::read(run.join(RUN_FILE)).unwrap(),
                fs::read(dir.path().join("r0").join(RUN_FILE)).unwrap()
            );
        }
    }

    #[test]
    fn run_dir_checks_refuse_what_is_not_a_run() {
        let parent = tempfile::tempdir().unwrap();
        let other = parent.path().join("notes");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("keep.txt"), b"mine").unwrap();
        let err = save_run(&other, &store(), &info(), None).unwrap_err().to_string();
        assert!(err.contains("holds no run"), "{err}");
        assert_eq!(fs::read(other.join("keep.txt")).unwrap(), b"mine");
        let file = parent.path().join("file");
        fs::write(&file, b"x").unwrap();
        assert!(check_run_dir(&file).unwrap_err().to_string().contains("not a directory"));
        assert!(check_run_dir(&file.join("run")).is_err());
        #[cfg(unix)]
        {
            let link = parent.path().join("link");
            std::os::unix::fs::symlink(&other, &link).unwrap();
            assert!(check_run_dir(&link).unwrap_err().to_string().contains("symbolic link"));
        }
        assert!(check_run_dir(&parent.path().join("new/run")).is_ok());
        fs::create_dir(parent.path().join("empty")).unwrap();
        assert!(check_run_dir(&parent.path().join("empty")).is_ok());
    }

    #[test]
    fn an_empty_fingerprint_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut i = info();
        i.dataset_fingerprint.clear();
        save_run(dir.path(), &store(), &i, None).unwrap();
        let err = load_run(dir.path()).unwrap_err().to_string();
        assert!(err.contains("dataset_fingerprint `` is not 16 hex digits"), "{err}");
    }

    #[test]
    fn fingerprint_depends_on_content() {
        let mut r = reelvec_data::Ratings {
            user: vec![0, 1],
            movie: vec![1, 0],
            rating: vec![4.0, 3.5],
            timestamp: vec![5, 6],
        };
        let a = fingerprint_ratings(&r);
        assert_eq!(a.len(), 16);
        assert_eq!(a, fingerprint_ratings(&r.clone()));
        r.rating[1] = 3.0;
        assert_ne!(a, fingerprint_ratings(&r));
    }
}
