"""Item side features from Python (issue 11): `config={"model.item_features": [...]}` for the
MF family and item2vec, the feature names in the saved run, a movie of no training data with
a vector from its features alone, and bad feature names as ConfigError (a ValueError)."""

import json
import struct

import numpy as np
import pytest

import reelvec
from reelvec.errors import ConfigError

FEATURES = {"model.item_features": ["genres", "decade"]}
QUICK = {
    "mf": {"train.epochs": 2, "k": 8, "train_fraction": 0.6},
    "cbow": {
        "train.epochs": 2,
        "model.dim": 8,
        "top_movies": 0,
        "min_user_ratings": 1,
        "train_fraction": 0.3,
    },
}


def _rated_counts(run_dir, n_movies):
    """Training ratings per movie from the run's `rated.safetensors` (offsets, movies: U32)."""
    raw = (run_dir / "rated.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    lo, hi = header["movies"]["data_offsets"]
    movies = np.frombuffer(raw[8 + n + lo : 8 + n + hi], dtype="<u4")
    return np.bincount(movies, minlength=n_movies)


@pytest.mark.parametrize("kind", ["mf", "cbow"])
def test_features_are_recorded_and_give_cold_movies_a_vector(kind, tiny, tmp_path):
    run = reelvec.train(kind, tiny, config={**QUICK[kind], **FEATURES}, seed=4, quiet=True)
    assert run.config["model"]["item_features"] == ["genres", "decade"]
    run.save(tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    names = info["item_features"]
    assert any(n.startswith("genre:") for n in names) and any(n.startswith("decade:") for n in names)

    vectors = run.item_vectors
    counts = _rated_counts(tmp_path / "run", len(run.movie_ids))
    cold = np.flatnonzero(counts == 0)
    assert cold.size > 0, "a movie without training data"
    # Its vector is finite and not zero (from its features), and it has neighbours.
    m = int(cold[0])
    assert np.all(np.isfinite(vectors[m])) and np.linalg.norm(vectors[m]) > 0
    assert len(run.similar(int(run.movie_ids[m]), k=3)) == 3

    # Without features the run records none.
    plain = reelvec.train(kind, tiny, config=QUICK[kind], seed=4, quiet=True)
    assert plain.config["model"]["item_features"] == []


@pytest.mark.parametrize("kind", ["mf", "cbow"])
def test_a_bad_feature_name_is_a_clear_value_error(kind, tiny):
    with pytest.raises(ConfigError) as e:
        reelvec.train(kind, tiny, config={**QUICK[kind], "model.item_features": ["genres", "colour"]})
    assert isinstance(e.value, ValueError)
    assert "model.item_features" in str(e.value) and "genres" in str(e.value)
