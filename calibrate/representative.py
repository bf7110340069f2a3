"""The representative set: class-stratified TRAIN windows, saved with its hash for the target compilers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from edgekit.errors import DataError
from edgekit.rundir import layout
from edgekit.rundir.artifacts import sha256_file, write_npz


def select_representative(X: np.ndarray, y: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of `count` windows (all if fewer), each class in proportion to its share of TRAIN."""
    if count >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes, class_counts = np.unique(y, return_counts=True)
    quota = np.floor(class_counts / len(y) * count).astype(int)
    for k in np.argsort(-(class_counts / len(y) * count - quota))[: count - quota.sum()]:
        quota[k] += 1  # largest remainders
    chosen = [
        rng.choice(np.flatnonzero(y == c), q, replace=False)
        for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def check_finite(X: np.ndarray, what: str) -> None:
    """Refuse a set with NaN or Inf windows, naming the first ones."""
    bad = ~np.isfinite(X)
    if bad.any():
        windows = np.flatnonzero(bad.reshape(len(X), -1).any(axis=1))
        raise DataError(
            f"{what} has NaN/Inf in {len(windows)} windows (first: "
            f"{windows[:5].tolist()}); repair the data (data.nan_strategy) and retrain"
        )


def to_nhwc(X: np.ndarray) -> np.ndarray:
    """Hailo's calibration layout: `(N, C, 2, T/2) -> (N, 2, T/2, C)`."""
    return np.ascontiguousarray(X.transpose(0, 2, 3, 1)).astype(np.float32)


def save_calibration_set(
    folder: Path, X: np.ndarray, y: np.ndarray, indices: np.ndarray
) -> dict[str, str]:
    """calibration/calib_set.npz: the windows, labels and their train indices; returns its sha256."""
    check_finite(X, "the calibration set")
    npz = write_npz(folder / "calib_set.npz", X=X.astype(np.float32), y=y, train_indices=indices)
    return {"calib_set.npz": sha256_file(npz)}


def load_calibration_set(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The run's saved calibration set, or None when calibrate has not run."""
    path = run_dir / layout.CALIBRATION_SET
    if not path.is_file():
        return None
    with np.load(path) as archive:
        X, y = archive["X"], archive["y"]
    check_finite(X, str(path))
    return X, y
