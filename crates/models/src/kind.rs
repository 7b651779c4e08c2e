//! [`ModelKind`]: the trainable model kinds as the CLI spells them (`cbow`, `sigmoid-mf`, ...).
//! Its own module so that run directories (`checkpoint`) and the pipelines both depend on it
//! without depending on each other. The ranking models (`popularity`, `itemknn`, `ease`, `ials`,
//! `bpr`) are kinds too, so their runs record what they hold; [`ModelKind::ranker`] maps them to
//! [`RankerKind`] and they predict no ratings.

use std::fmt;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::ranking::RankerKind;
use crate::ModelError;

/// The model kinds `reelvec train --model` accepts. Serialised as its CLI spelling
/// ([`ModelKind::as_str`]); read back through [`FromStr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// P0 item2vec CBOW.
    Cbow,
    /// P0's skip-gram twin.
    Skipgram,
    /// P1 co-occurrence factorisation.
    Cooc,
    /// P2 biased matrix factorisation with a sigmoid range.
    Mf,
    /// P3 sigmoid dot-product recommender on min-max scaled ratings.
    SigmoidMf,
    /// P4 residual matrix factorisation.
    ResidualMf,
    /// A ranking model (popularity, itemknn, ease, ials, bpr, warp).
    Ranker(RankerKind),
}

impl ModelKind {
    /// Every kind, in protocol order, then the ranking models.
    pub const ALL: [ModelKind; 12] = [
        ModelKind::Cbow,
        ModelKind::Skipgram,
        ModelKind::Cooc,
        ModelKind::Mf,
        ModelKind::SigmoidMf,
        ModelKind::ResidualMf,
        ModelKind::Ranker(RankerKind::Popularity),
        ModelKind::Ranker(RankerKind::ItemKnn),
        ModelKind::Ranker(RankerKind::Ease),
        ModelKind::Ranker(RankerKind::Ials),
        ModelKind::Ranker(RankerKind::Bpr),
        ModelKind::Ranker(RankerKind::Warp),
    ];

    /// The name as the CLI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Cbow => "cbow",
            ModelKind::Skipgram => "skipgram",
            ModelKind::Cooc => "cooc",
            ModelKind::Mf => "mf",
            ModelKind::SigmoidMf => "sigmoid-mf",
            ModelKind::ResidualMf => "residual-mf",
            ModelKind::Ranker(r) => r.as_str(),
        }
    }

    /// The ranking model a kind is, if it is one.
    pub fn ranker(self) -> Option<RankerKind> {
        match self {
            ModelKind::Ranker(r) => Some(r),
            _ => None,
        }
    }

    /// The protocol the kind comes from (`"P0"` .. `"P4"`; `"ranking"` for the ranking models).
    pub fn protocol(self) -> &'static str {
        match self {
            ModelKind::Cbow | ModelKind::Skipgram => "P0",
            ModelKind::Cooc => "P1",
            ModelKind::Mf => "P2",
            ModelKind::SigmoidMf => "P3",
            ModelKind::ResidualMf => "P4",
            ModelKind::Ranker(_) => "ranking",
        }
    }

    /// True for the kinds that predict ratings (the MF family).
    pub fn predicts_ratings(self) -> bool {
        matches!(self, ModelKind::Mf | ModelKind::SigmoidMf | ModelKind::ResidualMf)
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<RankerKind> for ModelKind {
    fn from(kind: RankerKind) -> Self {
        ModelKind::Ranker(kind)
    }
}

impl Serialize for ModelKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ModelKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(de::Error::custom)
    }
}

impl FromStr for ModelKind {
    type Err = ModelError;

    /// Parses the CLI spelling, case-insensitively; `_` and `-` are interchangeable and
    /// `skip-gram` is accepted for `skipgram`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        match norm.as_str() {
            "cbow" => Ok(ModelKind::Cbow),
            "skipgram" | "skip-gram" => Ok(ModelKind::Skipgram),
            "cooc" => Ok(ModelKind::Cooc),
            "mf" => Ok(ModelKind::Mf),
            "sigmoid-mf" => Ok(ModelKind::SigmoidMf),
            "residual-mf" => Ok(ModelKind::ResidualMf),
            _ => s
                .parse::<RankerKind>()
                .map(ModelKind::Ranker)
                .map_err(|_| ModelError::UnknownModelKind(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for k in ModelKind::ALL {
            assert_eq!(k.as_str().parse::<ModelKind>().unwrap(), k);
            assert_eq!(k.to_string(), k.as_str());
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<ModelKind>(&json).unwrap(), k);
        }
        assert_eq!("Skip-Gram".parse::<ModelKind>().unwrap(), ModelKind::Skipgram);
        assert_eq!("SIGMOID_MF".parse::<ModelKind>().unwrap(), ModelKind::SigmoidMf);
        let err = "svd".parse::<ModelKind>().unwrap_err().to_string();
        assert!(err.contains("`svd`") && err.contains("residual-mf"), "{err}");
        assert_eq!(ModelKind::ResidualMf.protocol(), "P4");
        assert!(ModelKind::Mf.predicts_ratings() && !ModelKind::Cooc.predicts_ratings());
        for r in RankerKind::ALL {
            let k: ModelKind = r.as_str().parse().unwrap();
            assert_eq!((k.ranker(), k.predicts_ratings(), k.as_str()), (Some(r), false, r.as_str()));
        }
        assert_eq!("Item_KNN".parse::<ModelKind>().unwrap(), ModelKind::Ranker(RankerKind::ItemKnn));
        assert_eq!(ModelKind::Mf.ranker(), None);
    }
}
