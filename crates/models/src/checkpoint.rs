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
//! Every file is written to a temporary name in the same directory, synced and renamed into
//! place, so a crash never leaves a half-written file under the real name; `run.json` is written
//! last. Loading a truncated, corrupt or mismatched checkpoint is a [`ModelError::Checkpoint`]
//! naming the file and what is wrong.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use reelvec_engine::{GradKind, ParamStore, Table};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::pipelines::ModelKind;
use crate::ModelError;

/// File name of the parameter tables in a run directory.
pub const MODEL_FILE: &str = "model.safetensors";
/// File name of the run description in a run directory.
pub const RUN_FILE: &str = "run.json";
/// File name of the per-user rated movies in a run directory.
pub const RATED_FILE: &str = "rated.safetensors";
/// Version of the run-directory layout written by this code.
pub const FORMAT_VERSION: u32 = 1;

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
    /// Where the data came from, when it came from disk.
    #[serde(default)]
    pub data_path: Option<String>,
    /// Per-epoch history (the trainer's, serialised).
    #[serde(default)]
    pub history: serde_json::Value,
    /// Final figures of the run (RMSE, cross-entropy, ...).
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// Shapes of the stored tables; filled in by [`save_run`] and checked by [`load_run`].
    #[serde(default)]
    pub tables: Vec<TableShape>,
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
            history: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
            tables: Vec::new(),
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

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&tmp);
        return Err(ModelError::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ModelError::io(path, e)
    })
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

/// Serialises every table of `params` to safetensors bytes (f32, `[rows, cols]`).
pub fn params_to_safetensors(params: &ParamStore) -> Result<Vec<u8>, ModelError> {
    let bytes: Vec<Vec<u8>> = params.tables().iter().map(|t| f32_bytes(&t.data)).collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (t, b) in params.tables().iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, vec![t.rows, t.cols], b)
            .map_err(|e| ModelError::checkpoint(&t.name, format!("cannot serialise table: {e}")))?;
        views.push((t.name.clone(), view));
    }
    let order: Vec<&str> = params.tables().iter().map(|t| t.name.as_str()).collect();
    let kinds: Vec<&str> = params.tables().iter().map(|t| grad_kind_name(t.grad_kind)).collect();
    let meta = HashMap::from([
        ("reelvec.table_order".to_string(), order.join(",")),
        ("reelvec.grad_kinds".to_string(), kinds.join(",")),
    ]);
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
    let mut names: Vec<String> = match info.get("reelvec.table_order") {
        Some(o) if !o.is_empty() => o.split(',').map(str::to_string).collect(),
        _ => {
            let mut n: Vec<String> = st.names().into_iter().map(str::to_string).collect();
            n.sort();
            n
        }
    };
    if names.len() != st.len() {
        return Err(ModelError::checkpoint(
            path,
            format!("metadata lists {} tables, the file holds {}", names.len(), st.len()),
        ));
    }
    let kinds: Vec<&str> = info.get("reelvec.grad_kinds").map(|k| k.split(',').collect()).unwrap_or_default();
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
        let grad_kind = match kinds.get(i) {
            Some(&"dense") => GradKind::Dense,
            _ => GradKind::SparseRows,
        };
        params
            .insert(Table { name: name.clone(), rows, cols, grad_kind, data })
            .map_err(|e| ModelError::checkpoint(path, format!("table `{name}`: {e}")))?;
    }
    Ok(params)
}

/// Saves a run: `model.safetensors` then `run.json` (with `tables` filled in from `params`),
/// each written atomically. Creates `dir` when missing.
pub fn save_run(dir: &Path, params: &ParamStore, info: &RunInfo) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let bytes = params_to_safetensors(params)?;
    write_atomic(&dir.join(MODEL_FILE), &bytes)?;
    let mut info = info.clone();
    info.tables = params
        .tables()
        .iter()
        .map(|t| TableShape { name: t.name.clone(), rows: t.rows, cols: t.cols })
        .collect();
    let json = serde_json::to_vec_pretty(&info)
        .map_err(|e| ModelError::checkpoint(dir.join(RUN_FILE), format!("cannot serialise: {e}")))?;
    write_atomic(&dir.join(RUN_FILE), &json)
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|e| ModelError::io(path, e))
}

/// Reads only `run.json` of a run directory.
pub fn load_run_info(dir: &Path) -> Result<RunInfo, ModelError> {
    let path = dir.join(RUN_FILE);
    let bytes = read(&path)?;
    let info: RunInfo = serde_json::from_slice(&bytes)
        .map_err(|e| ModelError::checkpoint(&path, format!("not a valid run description ({e})")))?;
    if info.format_version > FORMAT_VERSION {
        return Err(ModelError::checkpoint(
            &path,
            format!("format version {} is newer than this reelvec ({FORMAT_VERSION})", info.format_version),
        ));
    }
    Ok(info)
}

/// Loads a run directory and checks that `model.safetensors` holds exactly the tables, with
/// the shapes, that `run.json` lists.
pub fn load_run(dir: &Path) -> Result<(ParamStore, RunInfo), ModelError> {
    let info = load_run_info(dir)?;
    let path = dir.join(MODEL_FILE);
    let params = params_from_safetensors(&read(&path)?, &path)?;
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

/// Movies each user rated, CSR: user `u`'s movies are `movies[offsets[u]..offsets[u+1]]`,
/// sorted ascending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RatedItems {
    /// `n_users + 1` offsets into `movies`.
    pub offsets: Vec<u32>,
    /// Dense movie indices.
    pub movies: Vec<u32>,
}

impl RatedItems {
    /// Builds the CSR from (user, movie) pairs of the rows `rows` (all rows when `None`).
    pub fn from_pairs(users: &[u32], movies: &[u32], rows: Option<&[u32]>, n_users: usize) -> Self {
        let mut counts = vec![0u32; n_users + 1];
        let each = |f: &mut dyn FnMut(usize)| match rows {
            Some(r) => r.iter().for_each(|&i| f(i as usize)),
            None => (0..users.len()).for_each(f),
        };
        each(&mut |i| counts[users[i] as usize + 1] += 1);
        for u in 0..n_users {
            counts[u + 1] += counts[u];
        }
        let mut fill = counts.clone();
        let mut out = vec![0u32; counts[n_users] as usize];
        each(&mut |i| {
            let u = users[i] as usize;
            out[fill[u] as usize] = movies[i];
            fill[u] += 1;
        });
        for u in 0..n_users {
            out[counts[u] as usize..counts[u + 1] as usize].sort_unstable();
        }
        Self { offsets: counts, movies: out }
    }

    /// The sorted movies of `user` (empty when out of range).
    pub fn of(&self, user: u32) -> &[u32] {
        let u = user as usize;
        if u + 1 >= self.offsets.len() {
            return &[];
        }
        &self.movies[self.offsets[u] as usize..self.offsets[u + 1] as usize]
    }
}

/// Writes `rated.safetensors` atomically.
pub fn save_rated(dir: &Path, rated: &RatedItems) -> Result<(), ModelError> {
    let path = dir.join(RATED_FILE);
    let ob: Vec<u8> = rated.offsets.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mb: Vec<u8> = rated.movies.iter().flat_map(|x| x.to_le_bytes()).collect();
    let views = [
        ("movies", TensorView::new(Dtype::U32, vec![rated.movies.len()], &mb)),
        ("offsets", TensorView::new(Dtype::U32, vec![rated.offsets.len()], &ob)),
    ];
    let mut ok = Vec::new();
    for (n, v) in views {
        ok.push((n, v.map_err(|e| ModelError::checkpoint(&path, e.to_string()))?));
    }
    let bytes = safetensors::serialize(ok, None).map_err(|e| ModelError::checkpoint(&path, e.to_string()))?;
    write_atomic(&path, &bytes)
}

/// Reads `rated.safetensors`; `Ok(None)` when the run has none.
pub fn load_rated(dir: &Path) -> Result<Option<RatedItems>, ModelError> {
    let path: PathBuf = dir.join(RATED_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = read(&path)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| truncated_or_corrupt(&path, e))?;
    let get = |name: &str| -> Result<Vec<u32>, ModelError> {
        let v = st.tensor(name).map_err(|_| ModelError::checkpoint(&path, format!("`{name}` is missing")))?;
        if v.dtype() != Dtype::U32 {
            return Err(ModelError::checkpoint(&path, format!("`{name}` is not U32")));
        }
        Ok(v.data().chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let rated = RatedItems { offsets: get("offsets")?, movies: get("movies")? };
    let consistent = rated.offsets.first() == Some(&0)
        && rated.offsets.windows(2).all(|w| w[0] <= w[1])
        && rated.offsets.last().is_some_and(|&l| l as usize == rated.movies.len());
    if !consistent {
        return Err(ModelError::checkpoint(&path, "offsets are inconsistent with the movie list"));
    }
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
        i
    }

    #[test]
    fn round_trip_keeps_order_values_and_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let p = store();
        save_run(dir.path(), &p, &info()).unwrap();
        let (q, i) = load_run(dir.path()).unwrap();
        assert_eq!(p, q);
        let mut expect = info();
        expect.tables = i.tables.clone();
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
        save_run(dir.path(), &store(), &info()).unwrap();
        let path = dir.path().join(MODEL_FILE);
        let bytes = std::fs::read(&path).unwrap();
        for cut in [3, 8, 40, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = load_run(dir.path()).unwrap_err().to_string();
            assert!(err.contains("truncated or corrupt"), "cut {cut}: {err}");
            assert!(err.contains(MODEL_FILE), "{err}");
        }
    }

    #[test]
    fn mismatched_files_are_a_clear_error() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        save_run(a.path(), &store(), &info()).unwrap();
        let mut other = ParamStore::new();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        other.add("user_factors", 4, 2, GradKind::SparseRows, Init::Zeros, &mut rng).unwrap();
        save_run(b.path(), &other, &info()).unwrap();
        std::fs::copy(b.path().join(MODEL_FILE), a.path().join(MODEL_FILE)).unwrap();
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
        save_run(dir.path(), &store(), &info()).unwrap();
        std::fs::write(dir.path().join(RUN_FILE), b"{\"model_kind\": \"mf\", \"conf").unwrap();
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
        let r = RatedItems::from_pairs(&users, &movies, None, 4);
        assert_eq!(r.offsets, vec![0, 1, 4, 5, 5]);
        assert_eq!(r.of(1), &[2, 5, 7]);
        assert_eq!(r.of(3), &[] as &[u32]);
        let sub = RatedItems::from_pairs(&users, &movies, Some(&[0, 3]), 4);
        assert_eq!(sub.of(1), &[7]);
        assert_eq!(sub.of(2), &[9]);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_rated(dir.path()).unwrap(), None);
        save_rated(dir.path(), &r).unwrap();
        assert_eq!(load_rated(dir.path()).unwrap(), Some(r));
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
