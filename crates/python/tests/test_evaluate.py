"""`Run.evaluate()` returns the dict `reelvec evaluate --json` prints (the same library code),
for a rating run and for a ranking run trained with `--holdout`, on small synthetic data."""

import json
import subprocess

import pytest

import reelvec


def cli_evaluate(cli, run):
    out = subprocess.run([cli, "evaluate", "--run", str(run), "--json", "--device", "cpu", "--no-cache"],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def same_but_timings(ours, theirs):
    assert ours.keys() == theirs.keys() == {"run", "model_kind", "figures", "seconds"}
    # The CLI also times its own loading of --data; Python is handed a loaded Dataset.
    assert ours["seconds"].keys() == theirs["seconds"].keys() - {"load data"}
    assert "load data" in theirs["seconds"]
    assert ours["model_kind"] == theirs["model_kind"]
    assert ours["figures"] == theirs["figures"]


@pytest.mark.parametrize("model, extra", [
    ("mf", ["--set", "train.epochs=2", "--set", "k=4"]),
    ("itemknn", ["--holdout", "leave-last-out"]),
])
def test_evaluate_is_the_clis_json(tmp_path, cli, model, extra):
    data = tmp_path / "data"
    subprocess.run([cli, "data", "synth", "--preset", "tiny", "--out", str(data)], check=True,
                   capture_output=True)
    run = tmp_path / "run"
    subprocess.run([cli, "train", "--model", model, "--data", str(data), "--out", str(run), "--seed", "3",
                    "--quiet", "--no-cache", *extra], check=True, capture_output=True)
    theirs = cli_evaluate(cli, run)
    ours = reelvec.open_run(run).evaluate(reelvec.load(data, cache=False))
    same_but_timings(ours, theirs)
    assert ours["run"] == str(run)
    assert 0.0 <= ours["figures"]["ndcg@10"] <= 1.0


def test_evaluate_needs_the_run_on_disk(tmp_path, tiny):
    run = reelvec.train("mf", tiny, config={"train.epochs": 1, "k": 2}, seed=3)
    with pytest.raises(reelvec.ConfigError, match="save the run first"):
        run.evaluate(tiny)
    run.save(tmp_path / "saved")
    assert run.evaluate(tiny)["model_kind"] == "mf"
