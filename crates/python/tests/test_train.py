"""Training from Python: every kind, configs, determinism, the GIL, Ctrl-C, run directories
(saved and reopened, and read by the CLI and back)."""

import json
import subprocess
import threading
import time

import numpy as np
import pytest

import reelvec
from reelvec.errors import ConfigError, DataFileNotFoundError, ReelvecError, RunDirectoryError

# Small, quick configs per kind (the CLI's --set keys).
QUICK = {
    "mf": {"train.epochs": 2, "k": 8},
    "sigmoid-mf": {"train.epochs": 2, "k": 8},
    "residual-mf": {"train.epochs": 2, "k": 8},
    "cbow": {"train.epochs": 2, "model.dim": 8, "min_user_ratings": 5},
    "skipgram": {"train.epochs": 2, "model.dim": 8, "min_user_ratings": 5},
    "cooc": {"model.dim": 4, "model.steps": 20},
}


def test_the_kinds_are_the_clis():
    from test_rankers import RANKERS

    assert set(reelvec.MODEL_KINDS) == set(QUICK) | set(RANKERS)


@pytest.mark.parametrize("kind", sorted(QUICK))
def test_every_kind_trains_and_exposes_its_vectors(kind, tiny):
    run = reelvec.train(kind, tiny, config=QUICK[kind], seed=5)
    assert run.kind == kind and run.seed == 5
    v = run.item_vectors
    assert v.dtype == np.float32 and v.ndim == 2 and v.flags.owndata or v.base is not None
    assert v.shape[0] == len(run.movie_ids) == len(run.titles)
    assert run.movie_ids.dtype == np.int64
    assert np.isfinite(v).all()
    assert len(run.history) > 0
    if kind in ("mf", "sigmoid-mf", "residual-mf"):
        u = run.user_vectors
        assert u.shape == (len(run.user_ids), v.shape[1]) and u.dtype == np.float32
        assert "epoch" in run.history[0] and "train_loss" in run.history[0]
    else:
        assert run.user_vectors is None


@pytest.mark.parametrize("kind", sorted(QUICK))
def test_the_same_seed_gives_the_same_arrays(kind, tiny):
    a = reelvec.train(kind, tiny, config=QUICK[kind], seed=11)
    b = reelvec.train(kind, tiny, config=QUICK[kind], seed=11)
    c = reelvec.train(kind, tiny, config=QUICK[kind], seed=12)
    assert np.array_equal(a.item_vectors, b.item_vectors)
    assert (a.user_vectors is None and b.user_vectors is None) or np.array_equal(a.user_vectors, b.user_vectors)
    assert _untimed(a.history) == _untimed(b.history) and a.history
    assert not np.array_equal(a.item_vectors, c.item_vectors)


def _untimed(history):
    """A history without its wall-clock figures (the rest is deterministic)."""
    return [{k: v for k, v in e.items() if "second" not in k} for e in history]


def test_bad_configs_are_config_errors(tiny):
    with pytest.raises(ConfigError, match="unknown model kind"):
        reelvec.train("svd", tiny)
    with pytest.raises(ConfigError) as e:
        reelvec.train("mf", tiny, config={"train.epochs": 0})
    assert isinstance(e.value, ValueError) and "epochs" in str(e.value)
    with pytest.raises(ConfigError, match="no_such_key"):
        reelvec.train("mf", tiny, config={"no_such_key": 1})
    with pytest.raises(ConfigError, match="unsupported value type"):
        reelvec.train("mf", tiny, config={"k": object()})
    with pytest.raises(ConfigError, match="unknown preset"):
        reelvec.train("mf", tiny, preset="fastest")
    with pytest.raises(ReelvecError, match="unknown device"):
        reelvec.train("mf", tiny, device="tpu")
    with pytest.raises(TypeError):
        reelvec.train("mf", "ratings.csv")


def test_the_progress_bar_draws_when_not_quiet(tiny, capsys):
    reelvec.train("mf", tiny, config={"train.epochs": 30, "k": 4}, quiet=False)
    err = capsys.readouterr().err
    assert "reelvec mf" in err and "steps" in err or "step" in err


LONG = {"train.epochs": 100000, "k": 16}


@pytest.mark.parametrize("kind, config, data", [
    ("mf", {"train.epochs": 300, "k": 16}, "tiny"),
    # A ranker: its own path through the binding (a few iterations on the larger data set).
    ("ials", {"factors": 16, "iterations": 3}, "small"),
])
def test_the_gil_is_released_while_training(kind, config, data, request):
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    time.sleep(0.05)
    start = time.perf_counter()
    reelvec.train(kind, request.getfixturevalue(data), config=config, seed=1)
    end = time.perf_counter()
    stop.set()
    t.join()
    assert end - start > 0.3, "training too short to tell"
    during = [x for x in ticks if start + 0.1 < x < end - 0.1]
    # With the GIL held the thread could not run at all between start and end.
    assert len(during) > 20, (len(during), end - start)


def test_ctrl_c_stops_training_between_steps(tiny, python_sigint):
    import _thread

    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        reelvec.train("mf", tiny, config=LONG, seed=1)
    timer.cancel()
    assert time.perf_counter() - start < 30


def test_an_exception_in_the_progress_callback_stops_training(tiny):
    from reelvec import _core

    def boom(done, total):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        _core.train("mf", tiny._inner, "cpu", 1, ["train.epochs=100000"], None, boom)


def test_save_and_open_run_round_trip(tmp_path, tiny):
    run = reelvec.train("sigmoid-mf", tiny, config=QUICK["sigmoid-mf"])
    run.save(tmp_path / "run")
    back = reelvec.open_run(tmp_path / "run")
    assert back.kind == "sigmoid-mf"
    assert np.array_equal(back.item_vectors, run.item_vectors)
    assert np.array_equal(back.user_vectors, run.user_vectors)
    assert np.array_equal(back.movie_ids, run.movie_ids)
    assert [e["train_loss"] for e in back.history] == [e["train_loss"] for e in run.history]
    assert back.config["train"]["epochs"] == run.config["train"]["epochs"] == 2


def test_open_run_errors(tmp_path, tiny):
    with pytest.raises(FileNotFoundError) as e:
        reelvec.open_run(tmp_path / "missing")
    assert isinstance(e.value, DataFileNotFoundError)
    run = reelvec.train("cbow", tiny, config=QUICK["cbow"])
    run.save(tmp_path / "run")
    with open(tmp_path / "run" / "model.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(RunDirectoryError, match="model.safetensors"):
        reelvec.open_run(tmp_path / "run")


def test_run_directories_round_trip_between_the_cli_and_python(tmp_path, cli):
    data = tmp_path / "data"
    subprocess.run([cli, "data", "synth", "--preset", "tiny", "--out", str(data)], check=True,
                   capture_output=True)
    # CLI -> Python
    subprocess.run([cli, "train", "--model", "mf", "--data", str(data), "--out", str(tmp_path / "cli-run"),
                    "--set", "train.epochs=2", "--set", "k=4", "--seed", "3", "--quiet", "--device", "cpu"],
                   check=True, capture_output=True)
    from_cli = reelvec.open_run(tmp_path / "cli-run")
    assert from_cli.kind == "mf" and from_cli.item_vectors.shape[1] == 4
    # ... and the same training from Python gives the same vectors.
    ours = reelvec.train("mf", reelvec.load(data, cache=False), config={"train.epochs": 2, "k": 4}, seed=3)
    assert np.array_equal(ours.item_vectors, from_cli.item_vectors)
    # Python -> CLI
    ours.save(tmp_path / "py-run")
    out = subprocess.run([cli, "similar", "--run", str(tmp_path / "py-run"), "-k", "3",
                          str(int(ours.movie_ids[0]))], check=True, capture_output=True, text=True)
    assert "nearest to" in out.stdout
    ev = subprocess.run([cli, "evaluate", "--run", str(tmp_path / "py-run"), "--json"], check=True,
                        capture_output=True, text=True)
    assert "rmse" in json.loads(ev.stdout).__repr__().lower()
