"""The ranking models from Python (popularity, itemknn, ease, ials, bpr, warp): training, the
queries each supports (similar, recommend, fold_in, vectors), determinism, and run directories
shared with the CLI's `reelvec train --model <ranker>`."""

import _thread
import subprocess
import threading
import time

import numpy as np
import pytest

import reelvec
from reelvec.errors import ConfigError, UnknownMovieError, UnsupportedError

# Small, quick parameters per ranking model (the CLI's plain `--set` keys).
RANKERS = {
    "popularity": {},
    "itemknn": {"neighbours": 10},
    "ease": {"lambda": 50.0},
    "ials": {"factors": 4, "iterations": 2},
    "bpr": {"factors": 4, "epochs": 2},
    "warp": {"factors": 4, "epochs": 2},
}
# Which queries each model answers.
EMBEDDINGS = {"ials", "bpr", "warp"}
SIMILAR = {"itemknn", "ials", "bpr", "warp"}
FOLD_IN = {"popularity", "itemknn", "ease", "ials"}


def _first_user(data):
    return int(data.to_arrays()["userId"][0])


@pytest.mark.parametrize("kind", sorted(RANKERS))
def test_every_ranker_trains_and_answers_its_queries(kind, tiny):
    run = reelvec.train(kind, tiny, config=RANKERS[kind], seed=5)
    assert run.kind == kind and run.seed == 5
    assert "fit_seconds" in run.metrics
    user = _first_user(tiny)
    top = run.recommend(user, k=5)
    assert len(top) == 5
    scores = [s for _, _, s in top]
    assert scores == sorted(scores, reverse=True)
    # exclude_rated leaves out the user's training movies.
    a = tiny.to_arrays()
    rated = set(a["movieId"][a["userId"] == user].tolist())
    assert not rated & {m for m, _, _ in top}
    everything = run.recommend(user, k=len(run.movie_ids), exclude_rated=False)
    assert len(everything) == len(run.movie_ids)
    with pytest.raises(UnknownMovieError, match="not in this run"):
        run.recommend(10**9)

    first, second = (int(m) for m in run.movie_ids[:2])
    if kind in FOLD_IN:
        folded = run.fold_in({first: 5.0, second: 4.0}, k=4)
        assert len(folded) == 4 and not {first, second} & {m for m, _, _ in folded}
    else:
        with pytest.raises(UnsupportedError, match="new user"):
            run.fold_in({first: 5.0}, k=4)

    if kind in SIMILAR:
        near = run.similar(first, k=3)
        assert 0 < len(near) <= 3 and first not in {m for m, _, _ in near}
    else:
        with pytest.raises(UnsupportedError):
            run.similar(first, k=3)

    if kind in EMBEDDINGS:
        v, u = run.item_vectors, run.user_vectors
        assert v.shape == (len(run.movie_ids), 4) and v.dtype == np.float32
        assert u.shape == (len(run.user_ids), 4) and u.dtype == np.float32
    else:
        with pytest.raises(UnsupportedError, match="item embeddings"):
            run.item_vectors
        assert run.user_vectors is None


@pytest.mark.parametrize("kind", ["ials", "bpr", "itemknn"])
def test_the_same_seed_gives_the_same_rankings(kind, tiny):
    a = reelvec.train(kind, tiny, config=RANKERS[kind], seed=11)
    b = reelvec.train(kind, tiny, config=RANKERS[kind], seed=11)
    user = _first_user(tiny)
    assert a.recommend(user, k=10) == b.recommend(user, k=10)
    if kind in EMBEDDINGS:
        assert np.array_equal(a.item_vectors, b.item_vectors)
        c = reelvec.train(kind, tiny, config=RANKERS[kind], seed=12)
        assert not np.array_equal(a.item_vectors, c.item_vectors)


def test_bad_ranker_parameters_are_config_errors(tiny):
    with pytest.raises(ConfigError, match="facters"):
        reelvec.train("ials", tiny, config={"facters": 4})
    with pytest.raises(ConfigError, match="factors"):
        reelvec.train("ials", tiny, config={"factors": 0})
    with pytest.raises(ConfigError, match="plain keys"):
        reelvec.train("bpr", tiny, config={"train.epochs": 1})
    with pytest.raises(ConfigError, match="preset"):
        reelvec.train("ease", tiny, preset="notebook")


@pytest.mark.parametrize("kind", sorted(RANKERS))
def test_a_saved_ranker_run_reopens_with_the_same_answers(kind, tmp_path, tiny):
    run = reelvec.train(kind, tiny, config=RANKERS[kind], seed=2)
    run.save(tmp_path / kind)
    back = reelvec.open_run(tmp_path / kind)
    assert back.kind == kind and back.config == run.config
    user = _first_user(tiny)
    assert back.recommend(user, k=7) == run.recommend(user, k=7)
    first = int(run.movie_ids[0])
    if kind in SIMILAR:
        assert back.similar(first, k=3) == run.similar(first, k=3)
    if kind in FOLD_IN:
        assert back.fold_in({first: 4.0}, k=3) == run.fold_in({first: 4.0}, k=3)


def _cli_top(stdout):
    """`(movie id, score)` of the CLI's `recommend` lines (`rank  score  movieId  title`)."""
    rows = []
    for line in stdout.splitlines()[1:]:
        parts = line.split(None, 3)
        rows.append((int(parts[2]), round(float(parts[1]), 4)))
    return rows


def test_ranker_runs_round_trip_between_the_cli_and_python(tmp_path, cli):
    data = tmp_path / "data"
    subprocess.run([cli, "data", "synth", "--preset", "tiny", "--out", str(data)], check=True,
                   capture_output=True)
    # CLI -> Python: the same fit from both gives the same factors.
    subprocess.run([cli, "train", "--model", "ials", "--data", str(data), "--out", str(tmp_path / "cli-run"),
                    "--set", "factors=4", "--set", "iterations=2", "--seed", "3"],
                   check=True, capture_output=True)
    from_cli = reelvec.open_run(tmp_path / "cli-run")
    ours = reelvec.train("ials", reelvec.load(data, cache=False), config={"factors": 4, "iterations": 2}, seed=3)
    assert from_cli.kind == "ials" and from_cli.config == ours.config
    assert np.array_equal(ours.item_vectors, from_cli.item_vectors)
    assert np.array_equal(ours.user_vectors, from_cli.user_vectors)
    # Python -> CLI: the CLI's list for a user is Python's.
    ours.save(tmp_path / "py-run")
    user = int(ours.user_ids[0])
    out = subprocess.run([cli, "recommend", "--run", str(tmp_path / "py-run"), "--user", str(user), "-k", "5",
                          "--exclude-rated"], check=True, capture_output=True, text=True)
    assert _cli_top(out.stdout) == [(m, round(s, 4)) for m, _, s in ours.recommend(user, k=5)]


# Far more work than a test waits for: only the stop hook between iterations ends these early.
ENDLESS = {"ials": {"factors": 16, "iterations": 100000}, "bpr": {"factors": 16, "epochs": 1000000}}


@pytest.mark.parametrize("kind", sorted(ENDLESS))
def test_ctrl_c_stops_a_ranker_fit_between_iterations(kind, tiny, python_sigint):
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        reelvec.train(kind, tiny, config=ENDLESS[kind], seed=1)
    timer.cancel()
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("kind", sorted(ENDLESS))
def test_a_ranker_fit_reports_progress_and_its_callback_can_stop_it(kind, tiny):
    from reelvec import _core

    seen = []

    def stop_at_3(done, total):
        seen.append((done, total))
        if done >= 3:
            raise RuntimeError("stop here")

    overrides = [f"{k}={v}" for k, v in ENDLESS[kind].items()]
    with pytest.raises(RuntimeError, match="stop here"):
        _core.train(kind, tiny._inner, "cpu", 1, overrides, None, stop_at_3)
    total = ENDLESS[kind]["iterations" if kind == "ials" else "epochs"]
    assert seen and seen[-1][0] >= 3 and all(t == total for _, t in seen)
