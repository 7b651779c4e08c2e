"""Shared by the example scripts: the data (a MovieLens folder given as the first argument, else
the synthetic `small` set), a fast mode for the test suite, and an optional matplotlib plot."""

import os
import sys

import reelvec

FAST = os.environ.get("REELVEC_EXAMPLES_FAST") == "1"


def data():
    if len(sys.argv) > 1:
        return reelvec.load(sys.argv[1])
    return reelvec.synth("tiny" if FAST else "small", seed=42)


def show(label, rows):
    print(label)
    for movie_id, title, score in rows:
        print(f"  {score:8.4f}  {movie_id:>7}  {title}")


def plot(run, out):
    """A 2-D PCA map of the item vectors through matplotlib, or a message when it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot skipped: matplotlib is not installed (pip install matplotlib)")
        return
    import numpy as np

    v = run.item_vectors - run.item_vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(v, full_matrices=False)
    xy = v @ vt[:2].T
    plt.figure(figsize=(6, 6))
    plt.scatter(xy[:, 0], xy[:, 1], s=4)
    plt.title(f"{run.kind}: item vectors (PCA)")
    plt.savefig(out)
    print(f"plot written to {out}")
