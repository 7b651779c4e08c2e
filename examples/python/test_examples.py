"""Runs every example script (fast mode, synthetic data) as a test: each must exit 0 and print
its figures."""

import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).parent
SCRIPTS = sorted(p.name for p in HERE.glob("p[0-4]_*.py"))


def test_there_is_one_script_per_seed():
    assert [s[:2] for s in SCRIPTS] == ["p0", "p1", "p2", "p3", "p4"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs(script, tmp_path):
    env = dict(os.environ, REELVEC_EXAMPLES_FAST="1")
    out = subprocess.run([sys.executable, str(HERE / script)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "nearest to" in out.stdout or "top 5" in out.stdout, out.stdout
    assert "plot" in out.stdout
