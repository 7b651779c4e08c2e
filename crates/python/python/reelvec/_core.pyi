"""Type stubs of the extension module ``reelvec._core`` (crates/python/src/lib.rs). Use the
``reelvec`` package; these names are its implementation."""

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

__version__: str

class Dataset:
    n_users: int
    n_movies: int
    n_ratings: int
    source: Optional[str]
    def stats_json(self) -> str: ...
    def arrays(
        self,
    ) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]: ...
    def titles(self) -> List[Tuple[int, str]]: ...

class Run:
    kind: str
    def info_json(self) -> str: ...
    def item_vectors(self) -> npt.NDArray[np.float32]: ...
    def user_vectors(self) -> Optional[npt.NDArray[np.float32]]: ...
    def movie_ids(self) -> npt.NDArray[np.int64]: ...
    def user_ids(self) -> npt.NDArray[np.int64]: ...
    def titles(self) -> List[str]: ...
    def movie_index(self, query: str) -> int: ...
    def save(self, dir: str) -> None: ...

def load(
    path: str,
    layout: Optional[str] = None,
    cache: bool = True,
    columns: Optional[Sequence[int]] = None,
    delimiter: str = ",",
    header: bool = False,
) -> Dataset: ...
def from_arrays(
    users: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    ratings: npt.NDArray[np.float32],
    timestamps: Optional[npt.NDArray[np.int64]] = None,
    titles: Optional[List[Tuple[int, str]]] = None,
) -> Dataset: ...
def synth(preset: str = "small", seed: int = 42) -> Dataset: ...
def train(
    kind: str,
    data: Dataset,
    device: str = "cpu",
    seed: int = 42,
    overrides: Sequence[str] = ...,
    preset: Optional[str] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Run: ...
def open_run(dir: str) -> Run: ...
def model_kinds() -> List[str]: ...
