//! Model configs from TOML files and `--set key=value` overrides.
//!
//! A pipeline's `Config` is a serde struct whose `Default` is the protocol's notebook setting.
//! [`resolve`] starts from that default, merges a TOML file over it (tables merge key by key,
//! other values replace), then applies each `--set key=value` in order (`key` is dotted,
//! `optimizer.weight_decay=1e-4`; `value` is a TOML value, and a bare word that is not one is
//! taken as a string: `--set init=normal`).
//!
//! Unknown keys are errors: after deserialising, the config is serialised again and every key
//! the user gave must appear in it (so a typo such as `epoch = 3` is rejected, while optional
//! fields and the fields of a newly selected enum variant are accepted).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;
use toml::{Table, Value};

use crate::ModelError;

/// Where a key came from, for error messages.
#[derive(Debug, Clone, Copy)]
enum Origin<'a> {
    File(&'a Path),
    Set,
}

impl std::fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Set => write!(f, "--set"),
        }
    }
}

/// Parses one `key=value` override into its dotted key path and TOML value.
pub fn parse_override(s: &str) -> Result<(Vec<String>, Value), ModelError> {
    let (key, raw) = s
        .split_once('=')
        .ok_or_else(|| ModelError::InvalidConfig(format!("`--set {s}`: expected key=value")))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|part| part.trim().is_empty()) {
        return Err(ModelError::InvalidConfig(format!("`--set {s}`: empty key")));
    }
    let raw = raw.trim();
    let value = match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(raw.to_string())),
        Err(_) => Value::String(raw.to_string()),
    };
    Ok((key.split('.').map(|p| p.trim().to_string()).collect(), value))
}

/// Merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Sets `value` at the dotted `path` in `table`, creating intermediate tables.
fn set_path(table: &mut Table, path: &[String], value: Value) -> Result<(), ModelError> {
    let (last, parents) = path.split_last().ok_or_else(|| ModelError::InvalidConfig("empty key".into()))?;
    let mut cur = table;
    for (i, p) in parents.iter().enumerate() {
        let entry = cur.entry(p.clone()).or_insert_with(|| Value::Table(Table::new()));
        cur = match entry {
            Value::Table(t) => t,
            _ => {
                return Err(ModelError::InvalidConfig(format!(
                    "`{}` is a value, not a table, so `{}` cannot be set",
                    parents[..=i].join("."),
                    path.join(".")
                )))
            }
        }
    }
    cur.insert(last.clone(), value);
    Ok(())
}

/// Every leaf key path of `table` (tables recurse; arrays and scalars are leaves).
fn leaf_paths(table: &Table, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    for (k, v) in table {
        prefix.push(k.clone());
        match v {
            Value::Table(t) if !t.is_empty() => leaf_paths(t, prefix, out),
            _ => out.push(prefix.clone()),
        }
        prefix.pop();
    }
}

fn has_path(table: &Table, path: &[String]) -> bool {
    let mut cur = table;
    for (i, p) in path.iter().enumerate() {
        match cur.get(p) {
            Some(Value::Table(t)) if i + 1 < path.len() => cur = t,
            Some(_) => return i + 1 == path.len(),
            None => return false,
        }
    }
    true
}

fn to_table<T: Serialize>(value: &T) -> Result<Table, ModelError> {
    match Value::try_from(value) {
        Ok(Value::Table(t)) => Ok(t),
        Ok(_) => Err(ModelError::InvalidConfig("a config must serialise to a TOML table".into())),
        Err(e) => Err(ModelError::InvalidConfig(format!("cannot serialise the config: {e}"))),
    }
}

/// Resolves a config: `T::default()`, then the TOML file `file` (when given), then each
/// `key=value` of `overrides`, in order. Unknown keys and ill-typed values are errors.
pub fn resolve<T>(file: Option<&Path>, overrides: &[String]) -> Result<T, ModelError>
where
    T: Default + Serialize + DeserializeOwned,
{
    resolve_from(&T::default(), file, overrides)
}

/// [`resolve`] starting from `base` (a preset) instead of `T::default()`.
pub fn resolve_from<T>(base: &T, file: Option<&Path>, overrides: &[String]) -> Result<T, ModelError>
where
    T: Serialize + DeserializeOwned,
{
    let mut merged = to_table(base)?;
    let mut given: Vec<(Vec<String>, Origin<'_>)> = Vec::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
        let table: Table = text.parse().map_err(|e: toml::de::Error| ModelError::ConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut paths = Vec::new();
        leaf_paths(&table, &mut Vec::new(), &mut paths);
        given.extend(paths.into_iter().map(|p| (p, Origin::File(path))));
        merge(&mut merged, table);
    }
    for s in overrides {
        let (path, value) = parse_override(s)?;
        set_path(&mut merged, &path, value)?;
        given.push((path, Origin::Set));
    }
    let config: T = Value::Table(merged.clone()).try_into().map_err(|e: toml::de::Error| {
        let origin = match file {
            Some(p) => format!(" (from {} and --set)", p.display()),
            None => String::new(),
        };
        ModelError::InvalidConfig(format!("{}{origin}", e.message()))
    })?;
    let round_trip = to_table(&config)?;
    for (path, origin) in given {
        if !has_path(&round_trip, &path) && !is_skipped_flag::<T>(&merged, &path) {
            let valid: Vec<&str> = round_trip.keys().map(String::as_str).collect();
            return Err(ModelError::UnknownConfigKey {
                key: path.join("."),
                origin: origin.to_string(),
                valid: valid.join(", "),
            });
        }
    }
    Ok(config)
}

/// Whether `path` names a flag the config omits while it is `false` (`skip_serializing_if`, e.g.
/// `train.flush_denormals`): set to `true`, it appears in the serialised config.
fn is_skipped_flag<T>(merged: &Table, path: &[String]) -> bool
where
    T: Serialize + DeserializeOwned,
{
    let mut flipped = merged.clone();
    if set_path(&mut flipped, path, Value::Boolean(true)).is_err() {
        return false;
    }
    let Ok(config) = Value::Table(flipped).try_into::<T>() else { return false };
    to_table(&config).is_ok_and(|t| has_path(&t, path))
}

/// Rewrites every float as the shortest decimal that reads back to the same f32 (f32 fields
/// widened to f64 print as `0.009999999776482582` otherwise). Display only.
fn shorten_floats(v: &mut Value) {
    match v {
        Value::Float(x) if x.is_finite() => {
            if let Ok(short) = format!("{}", *x as f32).parse::<f64>() {
                *x = short;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(shorten_floats),
        Value::Table(t) => t.iter_mut().for_each(|(_, v)| shorten_floats(v)),
        _ => {}
    }
}

/// The config as TOML text (for `--print-config` and docs), floats at f32 precision.
pub fn to_toml_string<T: Serialize>(config: &T) -> Result<String, ModelError> {
    let mut v = Value::Table(to_table(config)?);
    shorten_floats(&mut v);
    toml::to_string_pretty(&v).map_err(|e| ModelError::InvalidConfig(e.to_string()))
}

/// The config as JSON (stored in `run.json`).
pub fn to_json<T: Serialize>(config: &T) -> serde_json::Value {
    serde_json::to_value(config).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Opt {
        Adam { lr: f32, weight_decay: f32 },
        Sgd { lr: f32, momentum: f32 },
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    struct Cfg {
        k: usize,
        scale: f32,
        name: String,
        optimizer: Opt,
        patience: Option<usize>,
        sizes: Vec<u32>,
    }

    impl Default for Cfg {
        fn default() -> Self {
            Self {
                k: 50,
                scale: 5.5,
                name: "mf".into(),
                optimizer: Opt::Adam { lr: 3e-3, weight_decay: 3e-4 },
                patience: None,
                sizes: vec![1, 2],
            }
        }
    }

    #[test]
    fn defaults_without_input() {
        assert_eq!(resolve::<Cfg>(None, &[]).unwrap(), Cfg::default());
    }

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "k = 8\n[optimizer]\nweight_decay = 0.1\n").unwrap();
        let set = ["k=16".to_string(), "scale=5".into(), "name=sigmoid".into(), "patience=3".into()];
        let c: Cfg = resolve(Some(&f), &set).unwrap();
        assert_eq!(c.k, 16);
        assert_eq!(c.scale, 5.0); // an integer is accepted for a float field
        assert_eq!(c.name, "sigmoid"); // a bare word is a string
        assert_eq!(c.patience, Some(3)); // optional fields can be set
        assert_eq!(c.optimizer, Opt::Adam { lr: 3e-3, weight_decay: 0.1 }); // table merge keeps lr
        let c: Cfg = resolve(None, &["sizes=[4, 5]".into()]).unwrap();
        assert_eq!(c.sizes, vec![4, 5]);
    }

    #[test]
    fn flags_omitted_while_false_can_be_set_false_and_unknown_flags_still_fail() {
        use crate::pipelines::p3_recommender::Config as P3;
        for key in ["train.lazy_replay", "train.flush_denormals"] {
            let c: P3 = resolve(None, &[format!("{key}=false")]).unwrap();
            assert_eq!(c, P3::default(), "{key}=false is the default");
            let c: P3 = resolve(None, &[format!("{key}=true")]).unwrap();
            assert_ne!(c, P3::default(), "{key}=true");
        }
        let err = resolve::<P3>(None, &["train.lazy_replays=false".into()]).unwrap_err().to_string();
        assert!(err.contains("unknown config key `train.lazy_replays`"), "{err}");
    }

    #[test]
    fn switching_enum_variant() {
        let set = ["optimizer = { kind = \"sgd\", lr = 0.1, momentum = 0.9 }".to_string()];
        let c: Cfg = resolve(None, &set).unwrap();
        assert_eq!(c.optimizer, Opt::Sgd { lr: 0.1, momentum: 0.9 });
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = resolve::<Cfg>(None, &["epochs=3".into()]).unwrap_err().to_string();
        assert!(err.contains("unknown config key `epochs`") && err.contains("--set"), "{err}");
        assert!(err.contains("k, "), "lists valid keys: {err}");
        let err = resolve::<Cfg>(None, &["optimizer.beta3=0.5".into()]).unwrap_err().to_string();
        assert!(err.contains("`optimizer.beta3`"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[optimizer]\nlearning_rate = 0.1\n").unwrap();
        let err = resolve::<Cfg>(Some(&f), &[]).unwrap_err().to_string();
        assert!(err.contains("optimizer.learning_rate") && err.contains("c.toml"), "{err}");
    }

    #[test]
    fn bad_values_and_syntax_are_errors() {
        let err = resolve::<Cfg>(None, &["k=-3".into()]).unwrap_err().to_string();
        assert!(err.starts_with("invalid config"), "{err}");
        let err = resolve::<Cfg>(None, &["k".into()]).unwrap_err().to_string();
        assert!(err.contains("expected key=value"), "{err}");
        let err = resolve::<Cfg>(None, &["k.x=1".into()]).unwrap_err().to_string();
        assert!(err.contains("`k` is a value"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.toml");
        std::fs::write(&f, "k = = 3\n").unwrap();
        let err = resolve::<Cfg>(Some(&f), &[]).unwrap_err().to_string();
        assert!(err.contains("bad.toml") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn preset_base_then_overrides() {
        let base = Cfg { k: 8, ..Cfg::default() };
        let c: Cfg = resolve_from(&base, None, &["scale=2.5".into()]).unwrap();
        assert_eq!((c.k, c.scale), (8, 2.5));
    }

    #[test]
    fn toml_round_trip() {
        let s = to_toml_string(&Cfg::default()).unwrap();
        assert!(s.contains("lr = 0.003\n"), "{s}");
        let back: Cfg = toml::from_str(&s).unwrap();
        assert_eq!(back, Cfg::default());
    }
}
