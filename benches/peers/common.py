"""Shared parts of the PyTorch reference scripts (benches/peers/p*.py): MovieLens loaders, the
common command line, timing, and the JSON report.

The loaders read a MovieLens folder in any of the published layouts, detected from its files:
  ml-100k            u.data (tab: user item rating timestamp), u.item (pipe, Latin-1: id|title|...)
  ml-1m / ml-10m     ratings.dat (UserID::MovieID::Rating::Timestamp), movies.dat (id::title::genres)
  ml-latest(-small), ml-20m, ml-25m, ml-32m
                     ratings.csv (userId,movieId,rating,timestamp), movies.csv (movieId,title,genres)
and return the ratings in file order, with raw ids, plus a raw movie id -> title map. Only NumPy and
the standard library are used (no pandas), so `pip install -r benches/peers/requirements.txt` is all
the scripts need.

The JSON report every script writes with --json has the keys
  pipeline, device, torch_version, threads, data, seed, config,
  per_epoch: [{epoch, train_loss, val_loss, seconds, ...}], total_seconds, examples_per_second,
  metrics: {...}
where `seconds` is the wall time of the epoch's training pass (validation excluded; it is reported
separately as `val_seconds`), `cpu_seconds` the process CPU time of the same pass, and
`examples_per_second` is training examples / training seconds.
"""

import argparse
import csv
import io
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class Ratings:
    """Ratings in file order with raw ids, and the catalogue's titles."""

    user: np.ndarray  # int64 raw user ids
    movie: np.ndarray  # int64 raw movie ids
    rating: np.ndarray  # float32 stars
    timestamp: np.ndarray  # int64 seconds
    titles: dict = field(default_factory=dict)  # raw movie id -> title (every catalogue movie)
    layout: str = ""
    path: str = ""

    def __len__(self):
        return len(self.rating)


def detect_layout(path: Path) -> str:
    if (path / "u.data").is_file():
        return "ml-100k"
    if (path / "ratings.dat").is_file():
        return "ml-1m"
    if (path / "ratings.csv").is_file():
        return "ml-latest"
    raise SystemExit(
        f"error: {path} holds no MovieLens ratings file (u.data, ratings.dat or ratings.csv); "
        "fetch one with `cargo xtask fetch ml-100k`"
    )


def load(path) -> Ratings:
    """Loads the MovieLens folder at `path` (layout detected from its files)."""
    path = Path(path)
    if not path.is_dir():
        raise SystemExit(f"error: {path} is not a directory")
    layout = detect_layout(path)
    if layout == "ml-100k":
        table = np.loadtxt(path / "u.data", dtype=np.int64, delimiter="\t", ndmin=2)
        titles = {}
        item = path / "u.item"
        if item.is_file():
            for line in item.read_bytes().decode("latin-1").splitlines():
                if line.strip():
                    fields = line.split("|")
                    titles[int(fields[0])] = fields[1]
        return Ratings(table[:, 0], table[:, 1], table[:, 2].astype(np.float32), table[:, 3], titles, layout, str(path))
    if layout == "ml-1m":
        text = (path / "ratings.dat").read_bytes().decode("latin-1").replace("::", "\t")
        table = np.loadtxt(io.StringIO(text), dtype=np.float64, delimiter="\t", ndmin=2)
        titles = {}
        movies = path / "movies.dat"
        if movies.is_file():
            raw = movies.read_bytes()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")  # ml-1m's movies.dat is Latin-1
            for line in text.splitlines():
                if line.strip():
                    movie_id, title, _genres = line.split("::", 2)
                    titles[int(movie_id)] = title
        return Ratings(
            table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2].astype(np.float32),
            table[:, 3].astype(np.int64), titles, layout, str(path),
        )
    # csv layouts: the ratings file has no quoted fields, so a plain numeric parse is exact
    table = np.loadtxt(path / "ratings.csv", dtype=np.float64, delimiter=",", skiprows=1, ndmin=2)
    titles = {}
    movies = path / "movies.csv"
    if movies.is_file():
        with open(movies, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for row in reader:
                if row:
                    titles[int(row[0])] = row[1]
    return Ratings(
        table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2].astype(np.float32),
        table[:, 3].astype(np.int64), titles, layout, str(path),
    )


def index_by_first_appearance(raw: np.ndarray):
    """Dense indices in order of first appearance (pandas' unique() order). Returns (dense, uniques)."""
    uniques, first = np.unique(raw, return_index=True)
    order = np.argsort(first, kind="stable")
    uniques_in_order = uniques[order]
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[order] = np.arange(len(uniques))
    dense = rank[np.searchsorted(uniques, raw)]
    return dense, uniques_in_order


def index_sorted(raw: np.ndarray):
    """Dense indices in ascending raw-id order. Returns (dense, uniques)."""
    uniques, dense = np.unique(raw, return_inverse=True)
    return dense.astype(np.int64), uniques


def random_split(n_rows: int, test_fraction: float, seed: int):
    """A seeded permutation split like sklearn's train_test_split: the first ceil(test*n) rows of
    the permutation are the test set, the rest the training set (our own RNG, not sklearn's)."""
    perm = np.random.default_rng(seed).permutation(n_rows)
    n_test = int(math.ceil(test_fraction * n_rows))
    return perm[n_test:], perm[:n_test]


def add_split_args(p: argparse.ArgumentParser):
    p.add_argument("--split", type=Path,
                   help="use this train/validation split instead of drawing one (JSON, see common.py)")
    p.add_argument("--write-split", type=Path, help="write the split used to this JSON file")


def resolve_split(args, kind: str, n: int, drawn):
    """The split a script trains on: `drawn` = (train, val) from our own RNG, unless --split names
    a file. Split files let reelvec and these scripts train on exactly the same rows:

        {"kind": "rows", "train": [row, ...], "val": [row, ...]}    rating rows, 0-based, in the
                                                                    order of the ratings file
        {"kind": "users", "train": [raw id, ...], "val": [raw id, ...]}   P0: raw user ids

    (reelvec drops duplicate (user, movie) rows, keeping the last; the published MovieLens files have
    none, so row numbers agree.) --write-split writes the split used in the same format."""
    if args.split:
        spec = json.loads(Path(args.split).read_text())
        if spec.get("kind") != kind:
            raise SystemExit(f"error: {args.split}: kind {spec.get('kind')!r}, this pipeline needs {kind!r}")
        train, val = np.asarray(spec["train"], dtype=np.int64), np.asarray(spec["val"], dtype=np.int64)
        if kind == "rows":
            if len(train) + len(val) and (min(train.min(initial=0), val.min(initial=0)) < 0
                                          or max(train.max(initial=0), val.max(initial=0)) >= n):
                raise SystemExit(f"error: {args.split}: a row index is outside 0..{n}")
        if len(np.intersect1d(train, val)):
            raise SystemExit(f"error: {args.split}: train and val overlap")
    else:
        train, val = drawn
    if args.write_split:
        args.write_split.parent.mkdir(parents=True, exist_ok=True)
        args.write_split.write_text(json.dumps({"kind": kind, "train": [int(x) for x in train],
                                                "val": [int(x) for x in val]}) + "\n")
    return np.asarray(train, dtype=np.int64), np.asarray(val, dtype=np.int64)


def find_title(titles: dict, query: str):
    """The raw id of the movie whose title equals `query`, else the unique one containing it
    case-insensitively; None when absent or ambiguous."""
    exact = [m for m, t in titles.items() if t == query]
    if len(exact) == 1:
        return exact[0]
    found = [m for m, t in titles.items() if query.lower() in t.lower()]
    return found[0] if len(found) == 1 else None


def parser(description: str, epochs: int, seed: int = 42) -> argparse.ArgumentParser:
    """The command line every reference script shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", default=os.environ.get("REELVEC_DATA"),
                   help="MovieLens folder (ml-100k, ml-1m/10m or csv layout); default $REELVEC_DATA")
    p.add_argument("--seed", type=int, default=seed)
    p.add_argument("--epochs", type=int, default=epochs, help=f"default {epochs} (the protocol's)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    p.add_argument("--json", type=Path, help="write the report here")
    p.add_argument("--quiet", action="store_true")
    return p


def setup(args):
    """Seeds, threads and device from the parsed arguments; returns the torch.device."""
    if not args.data:
        raise SystemExit("error: pass --data PATH (or set REELVEC_DATA)")
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no CUDA device")
    return torch.device(args.device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class Stopwatch:
    """Wall time that waits for the device before reading the clock, plus this process's CPU time
    (all its threads) over the same span: on a machine shared with other busy processes the wall
    time includes waiting for a core, the CPU time does not (with --threads 1 it is the time an idle
    machine would show)."""

    def __init__(self, device):
        self.device = device
        sync(device)
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()

    def seconds(self):
        sync(self.device)
        self.cpu = time.process_time() - self.cpu_start
        return time.perf_counter() - self.start

    def cpu_seconds(self):
        """CPU seconds up to the last seconds() call."""
        return self.cpu


def log(args, message):
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def report(args, pipeline, device, config, per_epoch, total_seconds, train_examples_per_epoch, metrics):
    """Builds the report (and writes it when --json was given); also prints a short summary."""
    train_seconds = sum(e["seconds"] for e in per_epoch)
    cpu_seconds = sum(e.get("cpu_seconds", 0.0) for e in per_epoch)
    examples = train_examples_per_epoch * len(per_epoch)
    out = {
        "pipeline": pipeline,
        "implementation": "pytorch",
        "device": str(device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        # other processes compete for this machine's cores; the 1-minute load average at the end
        # of the run says how much (a 2-core machine with load > 2 was oversubscribed)
        "load_average_1min": os.getloadavg()[0],
        "data": args.data,
        "seed": args.seed,
        "config": config,
        "per_epoch": per_epoch,
        "total_seconds": total_seconds,
        "train_seconds": train_seconds,
        "mean_epoch_seconds": train_seconds / max(len(per_epoch), 1),
        "examples_per_second": examples / train_seconds if train_seconds > 0 else None,
        "mean_epoch_cpu_seconds": cpu_seconds / max(len(per_epoch), 1),
        "examples_per_cpu_second": examples / cpu_seconds if cpu_seconds > 0 else None,
        "metrics": metrics,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("pipeline", "device", "threads", "mean_epoch_seconds",
                                           "mean_epoch_cpu_seconds", "examples_per_second", "metrics")},
                     indent=1))
    return out
