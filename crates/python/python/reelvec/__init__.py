"""reelvec from Python: MovieLens embeddings and recommenders trained by the Rust crates.

>>> import reelvec
>>> data = reelvec.synth("tiny", seed=1)
>>> run = reelvec.train("mf", data, config={"train.epochs": 2, "k": 8})
>>> run.item_vectors.shape == (data.n_movies, 8)
True

Data sets come from :func:`load` (every MovieLens layout, generic files), :func:`from_arrays`,
:func:`from_pandas` (also polars) and :func:`synth`. :func:`train` trains any model the
``reelvec`` CLI trains and returns a :class:`Run`; :func:`open_run` opens a run directory the
CLI wrote. Errors are the classes of :mod:`reelvec.errors`. The GIL is released while Rust
loads, trains and scores; Ctrl-C stops training between steps (``KeyboardInterrupt``).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from . import errors as _errors
from .errors import (
    ConfigError,
    DataFileNotFoundError,
    DataFormatError,
    OutputError,
    ReelvecError,
    RunDirectoryError,
    TrainingError,
    UnknownMovieError,
    UnsupportedError,
)

__version__: str = _core.__version__

__all__ = [
    "Dataset",
    "Run",
    "load",
    "from_arrays",
    "from_pandas",
    "synth",
    "train",
    "open_run",
    "MODEL_KINDS",
    *_errors.__all__,  # the exception classes, listed once in errors.py
]

#: The model kinds :func:`train` accepts, as the CLI spells them.
MODEL_KINDS: Tuple[str, ...] = tuple(_core.model_kinds())

PathLike = Union[str, "os.PathLike[str]"]
#: A recommendation or neighbour: ``(movie_id, title, score)``.
Scored = Tuple[int, str, float]


class Dataset:
    """Ratings with raw user and movie ids, titles where the source has them."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @property
    def n_users(self) -> int:
        """Users with at least one rating."""
        return self._inner.n_users

    @property
    def n_movies(self) -> int:
        """Movies with at least one rating."""
        return self._inner.n_movies

    @property
    def n_ratings(self) -> int:
        """Rating rows (duplicates dropped, last kept)."""
        return self._inner.n_ratings

    @property
    def source(self) -> Optional[str]:
        """The path it was loaded from, ``synth:<preset>``, or None for arrays."""
        return self._inner.source

    def __len__(self) -> int:
        return self.n_ratings

    def __repr__(self) -> str:
        return (
            f"<reelvec.Dataset {self.n_ratings} ratings, {self.n_users} users, "
            f"{self.n_movies} movies from {self.source or 'arrays'}>"
        )

    def stats(self) -> Dict[str, Any]:
        """The statistics of ``reelvec data stats --json`` (``users``, ``movies_rated``,
        ``ratings``, ``density``, ...)."""
        return json.loads(self._inner.stats_json())

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """The rating rows as NumPy arrays (copies): ``userId``, ``movieId`` (int64),
        ``rating`` (float32), ``timestamp`` (int64)."""
        users, movies, ratings, times = self._inner.arrays()
        return {"userId": users, "movieId": movies, "rating": ratings, "timestamp": times}

    def to_pandas(self) -> Any:
        """The rating rows as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.to_arrays())

    def titles(self) -> Dict[int, str]:
        """``{movie id: title}`` for every rated movie ("movie N" where no title is known)."""
        return dict(self._inner.titles())


def load(
    path: PathLike,
    *,
    layout: Optional[str] = None,
    cache: bool = True,
    columns: Optional[Sequence[Union[int, str]]] = None,
    delimiter: str = ",",
    header: bool = False,
) -> Dataset:
    """Loads a MovieLens folder (ml-100k, ml-1m, ml-10m, ml-latest*) or a ratings file.

    ``layout`` forces a layout (``"generic"`` for any delimited or ``.parquet`` file, whose
    ``columns`` are user, movie, rating[, timestamp]: 0-based positions, or header names such
    as ``["userId", "movieId", "rating"]``, looked up in a Parquet file's schema or in the
    first line of a delimited file, which then is a header), as the CLI's ``--columns``. Bad
    lines raise :class:`DataFormatError` with ``filename`` and ``line``; a missing path raises
    :class:`DataFileNotFoundError` (a ``FileNotFoundError``).
    """
    cols = None if columns is None else [str(int(c)) if isinstance(c, int) else str(c) for c in columns]
    return Dataset(_core.load(os.fspath(path), layout, cache, cols, delimiter, header))


def _ids(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataFormatError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise DataFormatError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise DataFormatError(f"{name}: ids above {np.iinfo(np.int64).max} are not supported")
    return np.ascontiguousarray(arr, dtype=np.int64)


def from_arrays(
    users: Any,
    items: Any,
    ratings: Any,
    timestamps: Any = None,
    titles: Optional[Mapping[int, str]] = None,
) -> Dataset:
    """A data set from rating rows in memory (your own ids, any rating scale).

    ``users`` and ``items`` are integer ids, ``ratings`` finite numbers, ``timestamps``
    optional integers (for the item2vec sequences), ``titles`` an optional
    ``{movie id: title}``. Ids are kept in order of first appearance; a repeated
    (user, item) pair keeps its last row. Wrong dtypes, unequal lengths and NaN ratings raise
    :class:`DataFormatError` (a ``ValueError``).
    """
    u = _ids("users", users)
    i = _ids("items", items)
    r = np.asarray(ratings)
    if r.size == 0:
        r = r.astype(np.float32)
    if r.ndim != 1 or r.dtype.kind not in "fiu":
        raise DataFormatError(f"ratings: expected a 1-D array of numbers, got dtype {r.dtype}")
    r = np.ascontiguousarray(r, dtype=np.float32)
    t = None if timestamps is None else _ids("timestamps", timestamps)
    pairs = None if titles is None else [(int(k), str(v)) for k, v in titles.items()]
    return Dataset(_core.from_arrays(u, i, r, t, pairs))


def from_pandas(
    df: Any,
    user: str = "userId",
    item: str = "movieId",
    rating: str = "rating",
    timestamp: Optional[str] = None,
    titles: Optional[Mapping[int, str]] = None,
) -> Dataset:
    """A data set from a pandas or polars DataFrame's columns (named by the arguments).

    ``timestamp`` defaults to none; pass the column name to keep the order of each user's
    ratings (item2vec). Missing columns raise :class:`DataFormatError`.
    """
    cols = list(df.columns)
    for name in [user, item, rating] + ([timestamp] if timestamp else []):
        if name not in cols:
            raise DataFormatError(f"column {name!r} not in the frame (columns: {cols})")

    def column(name: str) -> np.ndarray:
        c = df[name]
        return c.to_numpy() if hasattr(c, "to_numpy") else np.asarray(c)

    ts = column(timestamp) if timestamp else None
    return from_arrays(column(user), column(item), column(rating), ts, titles)


def synth(preset: str = "small", seed: int = 42) -> Dataset:
    """A seeded synthetic MovieLens-shaped data set (``tiny``, ``small``, ``ml-100k``,
    ``ml-1m``, ``ml-25m``); the same seed gives the same data."""
    return Dataset(_core.synth(preset, int(seed)))


def _toml_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(key, v) for v in value) + "]"
    raise ConfigError(f"config[{key!r}]: unsupported value type {type(value).__name__}")


def _progress_bar(kind: str) -> Tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress callback and its closer: tqdm (``tqdm.auto``, so Jupyter shows a widget)
    when installed, else one line on ``sys.stderr`` (which Jupyter shows too)."""
    try:
        from tqdm.auto import tqdm  # type: ignore[import-not-found]

        bar = None

        def update(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, desc=f"reelvec {kind}", unit="step")
            bar.update(done - bar.n)

        def close() -> None:
            if bar is not None:
                bar.close()

        return update, close
    except ImportError:

        def update(done: int, total: int) -> None:
            width = 30
            filled = width * done // max(total, 1)
            sys.stderr.write(f"\rreelvec {kind} [{'=' * filled}{' ' * (width - filled)}] {done}/{total} steps")
            sys.stderr.flush()

        def close() -> None:
            sys.stderr.write("\n")
            sys.stderr.flush()

        return update, close


def train(
    kind: str,
    data: Dataset,
    *,
    device: str = "cpu",
    seed: int = 42,
    quiet: bool = True,
    config: Optional[Mapping[str, Any]] = None,
    preset: Optional[str] = None,
) -> "Run":
    """Trains a model as ``reelvec train --model KIND`` does and returns the :class:`Run`.

    ``kind`` is one of :data:`MODEL_KINDS` (``"mf"``, ``"sigmoid-mf"``, ``"residual-mf"``,
    ``"cbow"``, ``"skipgram"``, ``"cooc"``, and the ranking models ``"popularity"``,
    ``"itemknn"``, ``"ease"``, ``"ials"``, ``"bpr"``, ``"warp"``); ``config`` holds the CLI's ``--set`` keys
    (``{"train.epochs": 3, "k": 32}``; plain keys such as ``{"factors": 64}`` for a ranking
    model, which fits on every rating as an interaction, no split held out, and takes no
    ``preset``); ``preset`` the CLI's ``--preset``; ``device`` is ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` or ``"auto"``. Unless ``quiet``, a progress bar
    (tqdm when installed). The GIL is released while training; Ctrl-C raises
    ``KeyboardInterrupt`` between steps and nothing is kept. The same seed gives the same
    arrays on the CPU.
    """
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a reelvec.Dataset, got {type(data).__name__}")
    overrides = [f"{k}={_toml_value(k, v)}" for k, v in (config or {}).items()]
    update, close = (None, None) if quiet else _progress_bar(kind)
    try:
        inner = _core.train(kind, data._inner, device, int(seed), overrides, preset, update)
    finally:
        if close is not None:
            close()
    return Run(inner)


def open_run(path: PathLike) -> "Run":
    """Opens a run directory written by ``reelvec train`` or :meth:`Run.save` (every file is
    checked against the run's manifest)."""
    run = Run(_core.open_run(os.fspath(path)))
    run._path = os.fspath(path)
    return run


def _count(k: int) -> int:
    k = int(k)
    if k < 1:
        raise ConfigError(f"k must be at least 1 (got {k})")
    return k


class Run:
    """A trained model: its vectors, history and figures, and the queries of the CLI."""

    __slots__ = ("_inner", "_info", "_path")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._info: Dict[str, Any] = json.loads(inner.info_json())
        # The run directory it was opened from or last saved to (what `evaluate` reads).
        self._path: Optional[str] = None

    def __repr__(self) -> str:
        return f"<reelvec.Run {self.kind}: {len(self.movie_ids)} movies>"

    @property
    def kind(self) -> str:
        """The model kind (``"mf"``, ``"cbow"``, ...)."""
        return self._inner.kind

    @property
    def config(self) -> Dict[str, Any]:
        """The full resolved config the run trained with."""
        return self._info["config"]

    @property
    def seed(self) -> int:
        """The run's seed."""
        return self._info["seed"]

    @property
    def metrics(self) -> Dict[str, Any]:
        """The protocol's figures (RMSE, cross-entropy, cost ratios, ...)."""
        return self._info.get("metrics") or {}

    @property
    def history(self) -> List[Dict[str, Any]]:
        """One dict per epoch (``epoch``, ``train_loss``, ``val_loss``, ``seconds``, ...);
        for ``cooc`` one dict per step (``masked``, ``unmasked`` cost)."""
        h = self._info.get("history")
        if isinstance(h, dict):
            return list(h.get("epochs", []))
        return list(h or [])

    @property
    def item_vectors(self) -> np.ndarray:
        """Item embeddings, movies x k, float32, in :attr:`movie_ids` order. Each access
        copies the run's table into a new array that NumPy owns. :class:`UnsupportedError`
        for popularity, itemknn and ease, which have none."""
        return self._inner.item_vectors()

    @property
    def user_vectors(self) -> Optional[np.ndarray]:
        """User factors (users x k, float32, a copy, :attr:`user_ids` order) of the MF
        models, ials and bpr; None for the other models."""
        return self._inner.user_vectors()

    @property
    def movie_ids(self) -> np.ndarray:
        """Raw movie ids (int64) in item-vector order."""
        return self._inner.movie_ids()

    @property
    def user_ids(self) -> np.ndarray:
        """Raw user ids (int64) in user-vector order (empty for item models)."""
        return self._inner.user_ids()

    @property
    def titles(self) -> List[str]:
        """Titles in item-vector order."""
        return self._inner.titles()

    def similar(self, movie: Union[int, str], k: int = 10) -> List[Scored]:
        """The ``k`` movies nearest to ``movie`` (a raw id or a title, exact or a unique
        part) by cosine of the item vectors, as ``reelvec similar``: ``(movie_id, title,
        cosine)``, best first (itemknn: its kept neighbour list). :class:`UnknownMovieError`
        (a ``KeyError``) when no movie or several match, or the movie has no vector;
        :class:`UnsupportedError` for popularity and ease."""
        return self._inner.similar(str(movie), _count(k))

    def recommend(self, user_id: int, k: int = 10, exclude_rated: bool = True) -> List[Scored]:
        """A training user's top ``k`` movies by predicted stars (rating models) or scores
        (ranking models), without the movies they rated in training unless
        ``exclude_rated=False``: ``(movie_id, title, score)``. :class:`UnsupportedError` for
        item models."""
        return self._inner.recommend(int(user_id), _count(k), bool(exclude_rated))

    def fold_in(self, ratings: Mapping[Union[int, str], float], k: int = 10) -> List[Scored]:
        """Recommendations for a new user from ``{title_or_id: stars}`` without retraining:
        rating models fold the user in (predicted stars); item models rank by cosine to the
        mean of the given movies (stars ignored); ranking models score the given movies as a
        new user's interactions (stars ignored; ials folds in with one solve,
        :class:`UnsupportedError` for bpr). The given movies are left out."""
        pairs = [(str(m), float(s)) for m, s in ratings.items()]
        if not pairs:
            raise DataFormatError("fold_in needs at least one rated movie")
        return self._inner.fold_in(pairs, _count(k))

    def middle(self, before: Union[int, str], after: Union[int, str], k: int = 10) -> List[Scored]:
        """The ``k`` most likely movies between ``before`` and ``after`` (raw ids or titles)
        by a cbow or skipgram run, as ``reelvec middle``: ``(movie_id, title,
        log-likelihood)``, best first. :class:`UnsupportedError` for other models."""
        return self._inner.middle(str(before), str(after), _count(k))

    def export(self, path: PathLike, format: str = "parquet") -> List[str]:
        """Writes the item vectors as ``"parquet"`` (``movieId`` Int64, ``title``, one Float32
        column per dimension ``column_0 ..``: the schema of the notebooks' ``word2vec_20.parquet``,
        Snappy), ``"npy"``, ``"csv"`` or ``"word2vec"`` (plus a titles file), as
        ``reelvec export`` does; returns the paths written."""
        return [os.fspath(p) for p in self._inner.export(os.fspath(path), format)]

    def export_users(self, path: PathLike) -> str:
        """Writes the user vectors of an MF run as Parquet (``userId``, ``column_0 ..``);
        :class:`UnsupportedError` for item models."""
        return os.fspath(self._inner.export_users(os.fspath(path)))

    def save(self, path: PathLike) -> None:
        """Writes the run directory (``reelvec similar/recommend/evaluate --run`` read it);
        a run already there is replaced as one unit."""
        self._inner.save(os.fspath(path))
        self._path = os.fspath(path)

    def evaluate(self, data: Dataset, k: int = 10, device: str = "cpu") -> Dict[str, Any]:
        """The figures of ``reelvec evaluate --run DIR --json`` (the same dict: ``run``,
        ``model_kind``, ``figures``, ``seconds``) for this run on ``data``, the data set it was
        trained on, computed by the same library code. The run must be on disk (opened with
        :func:`open_run` or written by :meth:`save`); ``k`` is capped at the run's movies."""
        if self._path is None:
            raise ConfigError("evaluate reads the run directory: save the run first (Run.save)")
        out: Dict[str, Any] = json.loads(_core.evaluate_run(self._path, data._inner, _count(k), device))
        return out
