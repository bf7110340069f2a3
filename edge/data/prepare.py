"""From loaded windows to model-ready arrays: QA, split, train-only normalisation, layout.

The prepared arrays are written once, split by split in chunks, as `.npy` files that later
stages memory-map; no stage holds a second copy of the data set in RAM or on disk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from edgekit.config import ADDED_KEYS, DataConfig, has_val_split
from edgekit.data.channels import select_channels
from edgekit.data.lengths import unchanged_length
from edgekit.data.qa import check_magnitudes, quality_report, repair_non_finite
from edgekit.data.record import WindowSet
from edgekit.data.sources import load_source
from edgekit.data.split import SPLITS, assign_splits
from edgekit.errors import ArtifactError, DataError
from edgekit.rundir.artifacts import read_json, write_json, write_npy

STATS_SCHEMA_VERSION = 2
MIN_STD = 1e-6  # flat channels are left unscaled rather than divided by ~0
# A window whose every channel has a std below this share of the channel's train std spans about
# 255 / 8 / 16 = 2 int8 input steps after global normalisation (the input quantiser covers about
# ±4 train std): `data.normalize=auto` normalises each window by itself when most train windows
# are that quiet (raw appliance currents, PLAID: 83 %; IMU and z-normalised UCR sets: <= 3 %).
QUIET_WINDOW_STD = 1 / 16
CHUNK_WINDOWS = 2048  # windows normalised at a time: bounds the float64 temporaries


ROW_LAYOUTS = {
    "halves": "(B,C,T) -> (B,C,2,T/2): row 0 = first half, row 1 = second half",
    "interleaved": "(B,C,T) -> (B,C,2,T/2): row 0 = even samples, row 1 = odd samples",
}


def to_hailo_layout(X: np.ndarray, rows: str = "halves") -> np.ndarray:
    """Map 1-D windows onto Hailo's 2-D convolutions; odd T drops the last sample. `halves` puts
    the window's first half in row 0 and its second in row 1; `interleaved` (polyphase) puts even
    samples in row 0 and odd ones in row 1, so the `(2, 1)` convolution mixes neighbours."""
    batch, channels, length = X.shape
    half = length // 2
    used = X[:, :, : 2 * half]
    if rows == "interleaved":
        return np.ascontiguousarray(used.reshape(batch, channels, half, 2).transpose(0, 1, 3, 2))
    return np.ascontiguousarray(used.reshape(batch, channels, 2, half))


def from_hailo_layout(X: np.ndarray, rows: str = "halves") -> np.ndarray:
    """The inverse of `to_hailo_layout`: `(B, C, 2, T/2)` back to `(B, C, T)`."""
    batch, channels, _, half = X.shape  # the length spelled out: an empty split has no -1 to infer
    if rows == "interleaved":
        return np.ascontiguousarray(X.transpose(0, 1, 3, 2).reshape(batch, channels, 2 * half))
    return np.ascontiguousarray(X.reshape(batch, channels, 2 * half))


def row_layout(stats: dict[str, Any]) -> str:
    """What fills the two rows, as the run's `stats.json` records it (runs before the choice: halves)."""
    return str(stats.get("row_layout", "halves"))


@dataclass
class PreparedData:
    """Normalised, split, Hailo-layout arrays plus everything needed to reproduce them at deployment."""

    arrays: dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (X (N, C, 2, T/2) float32, y int64)
    stats: dict[str, Any]
    qa: dict[str, Any]
    splits: dict[str, Any]
    class_names: list[str]
    official_test: dict[str, np.ndarray] = field(default_factory=dict)  # split -> bool mask, if any

    @property
    def input_shape(self) -> tuple[int, int, int]:
        channels, rows, width = self.arrays["train"][0].shape[1:]
        return int(channels), int(rows), int(width)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def warnings(self) -> list[str]:
        return list(self.splits.get("warnings", []))

    def save(self, folder: str | Path) -> None:
        """The split arrays, then the reports (for data prepared in RAM)."""
        for split, (X, _) in self.arrays.items():
            write_npy(Path(folder) / f"X_{split}.npy", np.asarray(X))
        self.save_reports(folder)

    def save_reports(self, folder: str | Path) -> None:
        """Labels, official-test masks and JSON reports; stats.json last marks the folder complete."""
        folder = Path(folder)
        for split, (_, y) in self.arrays.items():
            write_npy(folder / f"y_{split}.npy", y)
        for split, mask in self.official_test.items():
            write_npy(folder / f"official_{split}.npy", mask)
        write_json(folder / "qa_report.json", self.qa)
        write_json(folder / "splits.json", self.splits)
        write_json(folder / "stats.json", self.stats)

    @classmethod
    def load(cls, folder: str | Path, config: DataConfig) -> PreparedData | None:
        """The arrays saved for this data config, memory-mapped; None if missing or from another config."""
        folder, fix = Path(folder), "the data is prepared anew from its source"
        try:
            stats = read_json(folder / "stats.json", fix)
            if stats.get("data_config_digest") != data_config_digest(config):
                return None
            arrays = {
                split: (
                    np.load(folder / f"X_{split}.npy", mmap_mode="c"),
                    np.load(folder / f"y_{split}.npy"),
                )
                for split in SPLITS
            }
            official = {
                split: np.load(folder / f"official_{split}.npy")
                for split in SPLITS
                if (folder / f"official_{split}.npy").is_file()
            }
            qa = read_json(folder / "qa_report.json", fix)
            splits = read_json(folder / "splits.json", fix)
            class_names = stats["class_names"]
        except (OSError, ValueError, KeyError, ArtifactError):  # missing or damaged: re-derive
            return None
        return cls(arrays, stats, qa, splits, class_names, official)


def data_config_digest(config: DataConfig) -> str:
    """Hash of the data config: prepared data is reused only for the same one. Keys added later
    are left out at the value runs had before them (`edgekit.config.ADDED_KEYS`: `normalize=global`,
    `row_layout=halves`, no cross-validation fold), so those runs keep their digest."""
    values = dataclasses.asdict(config)
    for key, before in ADDED_KEYS.items():
        section, name = key.split(".")
        if section == "data" and values[name] == before:
            del values[name]
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def normalise(
    X: np.ndarray, mean: np.ndarray, std: np.ndarray, per_window: bool = False
) -> np.ndarray:
    """`(X - mean) / std` per channel with the train statistics, or with each window's own
    statistics when `per_window` (a flat channel is only centred), as float32."""
    if per_window:
        mean = X.mean(axis=2, keepdims=True, dtype=np.float64)
        std = X.std(axis=2, keepdims=True, dtype=np.float64)
        return ((X - mean) / np.where(std < MIN_STD, 1.0, std)).astype(np.float32)
    return ((X - mean[None, :, None]) / std[None, :, None]).astype(np.float32)


def normalization_mode(stats: dict[str, Any]) -> str:
    """`global` or `window`, as the run's `stats.json` records it (runs before the choice: global)."""
    return str(stats.get("normalization", {}).get("mode", "global"))


def preprocess(X: np.ndarray, stats: dict[str, Any]) -> np.ndarray:
    """Raw `(N, C, T)` windows to model input `(N, C, 2, T/2)` as the run recorded it in
    `stats.json`: what a deployment does before quantising the input."""
    mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
    per_window = normalization_mode(stats) == "window"
    return to_hailo_layout(normalise(X, mean, std, per_window), row_layout(stats))


def choose_normalization(
    X: np.ndarray, rows: np.ndarray, mean: np.ndarray, std: np.ndarray, requested: str
) -> dict[str, Any]:
    """How windows are normalised: `global` or `window` as configured, or by the quiet-window
    rule for `auto` (QUIET_WINDOW_STD), with the share of quiet train windows that decided it."""
    quiet = 0
    for start in range(0, len(rows), CHUNK_WINDOWS):
        window_std = X[rows[start : start + CHUNK_WINDOWS]].std(axis=2, dtype=np.float64)
        quiet += int((window_std < QUIET_WINDOW_STD * std[None, :]).all(axis=1).sum())
    fraction = quiet / len(rows)
    mode = requested if requested != "auto" else ("window" if fraction > 0.5 else "global")
    return {"mode": mode, "requested": requested, "quiet_train_windows": round(fraction, 4)}


def train_statistics(X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the train windows, in float64, two passes over chunks."""
    channels, length = X.shape[1], X.shape[2]
    count = len(rows) * length
    total = np.zeros(channels)
    for start in range(0, len(rows), CHUNK_WINDOWS):
        total += X[rows[start : start + CHUNK_WINDOWS]].sum(axis=(0, 2), dtype=np.float64)
    mean = total / count
    squares = np.zeros(channels)
    for start in range(0, len(rows), CHUNK_WINDOWS):
        centred = X[rows[start : start + CHUNK_WINDOWS]].astype(np.float64) - mean[None, :, None]
        squares += (centred**2).sum(axis=(0, 2))
    std = np.sqrt(squares / count)
    return mean, np.where(std < MIN_STD, 1.0, std)


def _fill_normalised(
    out: np.ndarray, X: np.ndarray, rows: np.ndarray, stats: dict[str, Any]
) -> None:
    """Write preprocessed windows `rows` of X into `out`, chunk by chunk. The result is finite: X
    is (repair_non_finite) and |X| <= MAX_ABS_VALUE ~ 1.8e19 (check_magnitudes) with
    std >= MIN_STD = 1e-6 keep |x - mean| / std below ~4e25, far inside float32."""
    for start in range(0, len(rows), CHUNK_WINDOWS):
        chunk = preprocess(X[rows[start : start + CHUNK_WINDOWS]], stats)
        out[start : start + len(chunk)] = chunk


def _write_split(
    X: np.ndarray, rows: np.ndarray, stats: dict[str, Any], path: Path | None
) -> np.ndarray:
    """The split's model-ready array: in RAM, or written to `path` and memory-mapped back."""
    shape = (len(rows), X.shape[1], 2, X.shape[2] // 2)
    if path is None:
        out = np.empty(shape, dtype=np.float32)
        _fill_normalised(out, X, rows, stats)
        return out
    tmp = path.with_name(f".{path.name}.tmp")
    mapped = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
    try:
        _fill_normalised(mapped, X, rows, stats)
        mapped.flush()
        del mapped
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return np.load(path, mmap_mode="c")


def check_trainable(windows: WindowSet) -> None:
    """Refuse data a classifier can't learn from: fewer than two classes present."""
    present = np.unique(windows.y)
    if len(present) < 2:
        name = windows.class_names[int(present[0])]
        raise DataError(
            f"{windows.source}: every window has the class '{name}'; a classifier needs at least "
            "two classes: check the label column or files"
        )


def prepare_data(
    config: DataConfig, windows: WindowSet | None = None, folder: str | Path | None = None
) -> PreparedData:
    """Load (unless given), select channels, check, repair, split, normalise with train stats,
    reshape; with `folder`, the split arrays are written there and memory-mapped back."""
    windows = windows if windows is not None else load_source(config.source, config)
    windows = select_channels(windows, config.channels)
    qa = quality_report(windows)
    windows, repair = repair_non_finite(windows, config.nan_strategy, config.max_nan_fraction)
    qa["repair"] = repair
    check_trainable(windows)
    check_magnitudes(windows)
    assignment = assign_splits(windows, config)
    split_of = assignment.split_of
    rows_of = {name: np.flatnonzero(split_of == index) for index, name in enumerate(SPLITS)}
    wanted = [name for name in SPLITS if name != "val" or has_val_split(config)]
    empty = [name for name in wanted if not len(rows_of[name])]
    if empty:
        raise DataError(
            f"{windows.source}: too few windows ({len(split_of)}) for a {config.split_mode} split: "
            f"the {' and '.join(empty)} split is empty; add data or raise its share in data.split_fractions"
        )
    mean, std = train_statistics(windows.X, rows_of["train"])
    length = windows.window_length
    stats = {
        "schema_version": STATS_SCHEMA_VERSION,
        "data_config_digest": data_config_digest(config),
        "source": windows.source,
        "provenance": windows.provenance,
        "channel_names": windows.channel_names,
        "channel_selection": list(config.channels),
        "channel_groups": windows.channel_groups,
        "class_names": windows.class_names,
        "fs": windows.fs,
        "window_length": length,
        "used_length": 2 * (length // 2),
        "dropped_last_sample": bool(length % 2),
        "length_policy": windows.notes.get("length")
        or unchanged_length(length, config.length_policy),
        "mean": mean.tolist(),
        "std": std.tolist(),
        "normalization": choose_normalization(
            windows.X, rows_of["train"], mean, std, config.normalize
        ),
        "row_layout": config.row_layout,
        "layout": ROW_LAYOUTS[config.row_layout],
    }
    staging = _staging_folder(Path(folder)) if folder is not None else None
    arrays, official = {}, {}
    for name, rows in rows_of.items():
        path = staging / f"X_{name}.npy" if staging is not None else None
        arrays[name] = (_write_split(windows.X, rows, stats, path), windows.y[rows])
        if windows.official_test is not None:
            official[name] = windows.official_test[rows]
    splits = {
        "mode": config.split_mode,
        "seed": config.seed,
        "fractions": list(config.split_fractions),
        "counts": {name: len(rows) for name, rows in rows_of.items()},
        "per_class": {
            name: {
                cls: int((windows.y[rows] == k).sum()) for k, cls in enumerate(windows.class_names)
            }
            for name, rows in rows_of.items()
        },
        "groups": {
            name: sorted(set(windows.groups[rows].tolist())) for name, rows in rows_of.items()
        },
        **assignment.info,
        "warnings": assignment.warnings,
    }
    prepared = PreparedData(arrays, stats, qa, splits, windows.class_names, official)
    if folder is None or staging is None:
        return prepared
    prepared.save_reports(staging)  # the X arrays are already there
    del prepared, arrays  # drop the maps of the staging files before they move
    _swap_in(staging, Path(folder))
    reloaded = PreparedData.load(folder, config)
    if reloaded is None:
        raise DataError(f"{folder}: the prepared data could not be read back; check the disk")
    return reloaded


def _staging_folder(folder: Path) -> Path:
    """An empty sibling of `folder` to write into; a failed preparation leaves `folder` as it was."""
    staging = folder.with_name(f".{folder.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def _swap_in(staging: Path, folder: Path) -> None:
    """Replace `folder` by the complete `staging` folder with renames only."""
    previous = folder.with_name(f".{folder.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if folder.exists():
        os.replace(folder, previous)
    os.replace(staging, folder)
    shutil.rmtree(previous, ignore_errors=True)
