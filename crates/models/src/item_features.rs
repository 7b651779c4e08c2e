//! The one owner of what every model with item side features shares (issue 11, LightFM's
//! hybrid form): the composition of an item's vector from its id row and the mean of its
//! feature rows ([`add_feature_mean`]), the scatter of a composed row's gradient back to the
//! feature rows ([`scatter_feature_grad`]), and the feature table stored in a run as the fixed
//! `item_feature_csr` table ([`feature_csr`], [`restore_features`]). The MF family (`mf`) and
//! item2vec (`item2vec::features`) both use them; the table itself is reelvec-data's
//! `ItemFeatures`.
//!
//! For item `i` with feature ids `F_i` and a feature table `E` (F x k):
//!
//! ```text
//! x̃_i = x_i + (1/|F_i|) Σ_{f∈F_i} E_f          (nothing added when F_i is empty)
//! ∂L/∂E_f += (1/|F_i|) ∂L/∂x̃_i   (f ∈ F_i),    ∂L/∂x_i = ∂L/∂x̃_i
//! ```

use std::path::Path;

use reelvec_data::features::ItemFeatures;
use reelvec_engine::{GradTable, ParamStore, Table};

use crate::checkpoint;
use crate::ModelError;

/// Fixed table (M + 1 + nnz x 1) of a run trained with item features: the CSR of each movie's
/// feature ids, the `M + 1` offsets then the ids (integers, exact in f32 below 2^24).
pub const ITEM_FEATURE_CSR: &str = "item_feature_csr";

/// Adds `(1/|F_i|) Σ_{f∈F_i} table[f]` to `out` and returns the weight `1/|F_i|` (0 when the
/// movie has no feature).
pub(crate) fn add_feature_mean(features: &ItemFeatures, i: usize, table: &Table, out: &mut [f32]) -> f32 {
    let ids = features.of(i);
    if ids.is_empty() {
        return 0.0;
    }
    let w = 1.0 / ids.len() as f32;
    for &f in ids {
        for (o, &v) in out.iter_mut().zip(table.row(f as usize)) {
            *o += w * v;
        }
    }
    w
}

/// Adds `(1/|F_i|) g` to the gradient row of every feature of movie `i`.
pub(crate) fn scatter_feature_grad(features: &ItemFeatures, i: usize, g: &[f32], grad: &mut GradTable) {
    let ids = features.of(i);
    if ids.is_empty() {
        return;
    }
    let w = 1.0 / ids.len() as f32;
    for &f in ids {
        for (d, &s) in grad.row_mut(f as usize).iter_mut().zip(g) {
            *d += w * s;
        }
    }
}

/// The feature table as the `item_feature_csr` column: offsets, then ids.
pub(crate) fn feature_csr(features: &ItemFeatures) -> Result<Vec<f32>, ModelError> {
    let lists = features.lists();
    let nnz: usize = lists.iter().map(Vec::len).sum();
    if lists.len() + 1 + nnz >= 1 << 24 {
        return Err(ModelError::InvalidData(format!(
            "the item feature table ({} movies, {nnz} feature ids) is too large to store exactly",
            lists.len()
        )));
    }
    let mut out = Vec::with_capacity(lists.len() + 1 + nnz);
    out.push(0.0);
    let mut end = 0usize;
    for l in &lists {
        end += l.len();
        out.push(end as f32);
    }
    out.extend(lists.iter().flatten().map(|&f| f as f32));
    Ok(out)
}

/// The feature table of `m` movies named `names` (by id) from a run's `item_feature_csr`
/// table; a missing or malformed table is `Checkpoint` naming the model file of `dir`.
pub(crate) fn restore_features(
    params: &ParamStore,
    names: Vec<String>,
    m: usize,
    dir: &Path,
) -> Result<ItemFeatures, ModelError> {
    let path = dir.join(checkpoint::MODEL_FILE);
    let id = params
        .id(ITEM_FEATURE_CSR)
        .ok_or_else(|| ModelError::checkpoint(&path, format!("table `{ITEM_FEATURE_CSR}` is missing")))?;
    let csr = &params.get(id).data;
    let bad = |why: &str| ModelError::checkpoint(&path, format!("table `{ITEM_FEATURE_CSR}`: {why}"));
    if csr.len() < m + 1 {
        return Err(bad("shorter than the movies' offsets"));
    }
    let int = |x: f32| (x >= 0.0 && x.fract() == 0.0 && x < (1u32 << 24) as f32).then_some(x as usize);
    let offsets: Vec<usize> = csr[..=m]
        .iter()
        .map(|&x| int(x))
        .collect::<Option<_>>()
        .ok_or_else(|| bad("an offset is no count"))?;
    let ids = &csr[m + 1..];
    if offsets[0] != 0 || offsets.windows(2).any(|w| w[0] > w[1]) || offsets[m] != ids.len() {
        return Err(bad("offsets do not describe the ids"));
    }
    let mut lists = Vec::with_capacity(m);
    for w in offsets.windows(2) {
        let list: Vec<u32> = ids[w[0]..w[1]]
            .iter()
            .map(|&x| int(x).map(|v| v as u32))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("an id is no index"))?;
        lists.push(list);
    }
    ItemFeatures::from_lists(names, &lists).map_err(|e| bad(&e.to_string()))
}

/// A fixed (never trained) `[rows, 1]` table holding `data`, as runs store integer columns.
pub(crate) fn fixed_column(name: &str, data: Vec<f32>) -> Table {
    Table { name: name.into(), rows: data.len(), cols: 1, grad_kind: reelvec_engine::GradKind::Dense, data }
}
