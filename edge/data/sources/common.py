"""Helpers every file-based source uses: the path check, text reading, cutting streams into windows."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from edgekit.errors import DataError


def existing_path(path: str, scheme: str) -> Path:
    """The source's path, expanded; a missing one is one error naming the scheme."""
    resolved = Path(path).expanduser()
    if not path or not resolved.exists():
        raise DataError(
            f"{scheme}: path '{path}' does not exist; give an existing file or folder as {scheme}:PATH"
        )
    return resolved


# ---------------------------------------------------------------- UEA .ts (BasicMotions and others)


def read_text(path: Path) -> str:
    """A UTF-8 text file; anything else is one error saying how to fix it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from err


def load_table(
    file: Path, dtype: npt.DTypeLike = np.float64, ndmin: Literal[1, 2] = 2
) -> np.ndarray:
    """`np.loadtxt` without its warning for a file of no rows: the caller refuses that in one line
    (an extra warning on stderr is not one line)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table: np.ndarray = np.loadtxt(file, dtype=dtype, ndmin=ndmin)
    return table


def window_stream(
    signals: np.ndarray,
    labels: np.ndarray,
    length: int,
    stride: int,
    breaks: np.ndarray | None = None,
    skip_label: int | None = None,
) -> tuple[list[np.ndarray], list[int], list[int]]:
    """Cut `(T, C)` signals into windows inside each contiguous run of one label.

    A run also ends where `breaks` is true (a timestamp gap before that row); runs labelled
    `skip_label` are left out, so no window straddles a removed stretch. Returns the windows
    `(C, length)`, their labels and their first row.
    """
    windows, window_labels, starts = [], [], []
    new_run = np.diff(labels) != 0
    if breaks is not None:
        new_run |= breaks[1:]
    for run in np.split(np.arange(len(labels)), np.flatnonzero(new_run) + 1):
        if not len(run) or (skip_label is not None and labels[run[0]] == skip_label):
            continue
        for start in range(0, len(run) - length + 1, stride):
            windows.append(signals[run[start] : run[start] + length].T)
            window_labels.append(int(labels[run[start]]))
            starts.append(int(run[start]))
    return windows, window_labels, starts
