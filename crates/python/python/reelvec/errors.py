"""The exceptions reelvec raises.

Every error of the Rust crates arrives as one of these classes; each derives from
:class:`ReelvecError` and from the builtin a Python user would catch, so
``except FileNotFoundError`` and ``except ValueError`` work as expected. Where the error names
a file or a line, ``err.filename`` and ``err.line`` hold them (else ``None``).
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "ReelvecError",
    "DataFileNotFoundError",
    "DataFormatError",
    "ConfigError",
    "UnknownMovieError",
    "TrainingError",
    "RunDirectoryError",
    "OutputError",
    "UnsupportedError",
]


class ReelvecError(Exception):
    """Base class of every reelvec error."""

    filename: Optional[str] = None
    line: Optional[int] = None


class DataFileNotFoundError(ReelvecError, FileNotFoundError):
    """A data file, data set folder or run directory does not exist."""


class DataFormatError(ReelvecError, ValueError):
    """Malformed or unusable data: a bad line (``filename``, ``line``), NaN ratings,
    mismatched lengths, wrong dtypes, an empty data set."""


class ConfigError(ReelvecError, ValueError):
    """An unknown model kind, preset or config key, or a value out of its range."""


class UnknownMovieError(ReelvecError, KeyError):
    """A movie id or title (or a user id) the run does not know, or a movie without a vector."""

    def __str__(self) -> str:  # KeyError quotes its argument; show the message as it is.
        return str(self.args[0]) if self.args else ""


class TrainingError(ReelvecError, RuntimeError):
    """Training diverged, ran out of memory, or the device failed."""


class RunDirectoryError(ReelvecError, ValueError):
    """A run directory that is damaged, incomplete or of another format."""


class OutputError(ReelvecError, OSError):
    """A file that cannot be read or written safely."""


class UnsupportedError(ReelvecError, TypeError):
    """The model kind does not offer this operation (e.g. ``recommend`` on item2vec)."""
