"""Shared fixtures of the reelvec pytest suite: small data sets, a ml-latest folder on disk,
and the `reelvec` CLI binary for the round trips (REELVEC_BIN, set by `cargo xtask test`)."""

import os
import shutil
import signal
import sys

import pytest

import reelvec


def skip(reason: str, need: str = "CLI") -> None:
    """The suite's one way to skip: says why, and fails instead where the step is required
    (`REELVEC_REQUIRE_<NEED>=1`, as reelvec-testkit does for the Rust tests)."""
    if os.environ.get(f"REELVEC_REQUIRE_{need}") == "1":
        pytest.fail(f"required but unavailable: {reason}")
    sys.stderr.write(f"SKIPPED: {reason}\n")
    log = os.environ.get("REELVEC_SKIP_LOG")
    if log:
        test = os.environ.get("PYTEST_CURRENT_TEST", "pytest").split(" ")[0]
        with open(log, "a") as f:
            f.write(f"{need}\t{test}\t{reason}\n")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tiny():
    return reelvec.synth("tiny", seed=3)


@pytest.fixture(scope="session")
def small():
    return reelvec.synth("small", seed=42)


RATINGS_CSV = """userId,movieId,rating,timestamp
1,10,4.0,100
1,20,3.5,101
2,10,5.0,102
2,30,2.0,103
3,20,4.5,104
"""

MOVIES_CSV = """movieId,title,genres
10,Toy Story (1995),Animation|Children
20,Heat (1995),Action
30,"Usual Suspects, The (1995)",Crime
"""


@pytest.fixture
def latest_dir(tmp_path):
    d = tmp_path / "ml-latest-small"
    d.mkdir()
    (d / "ratings.csv").write_text(RATINGS_CSV)
    (d / "movies.csv").write_text(MOVIES_CSV)
    return d


@pytest.fixture(scope="session")
def cli():
    path = os.environ.get("REELVEC_BIN") or shutil.which("reelvec")
    if not path or not os.path.isfile(path):
        skip("no reelvec binary (set REELVEC_BIN; `cargo xtask test` does)")
    return path


@pytest.fixture
def python_sigint():
    """Python's own SIGINT handler for the test, restored after it.

    A process started in the background by a shell without job control (`cmd &` in a script,
    as CI runners may do) inherits SIGINT ignored, and Python then installs no handler:
    `_thread.interrupt_main` does nothing and a Ctrl-C test would wait out its endless fit.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)

