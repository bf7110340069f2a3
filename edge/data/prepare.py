"""From loaded windows to model-ready arrays: QA, group-aware split, train-only normalisation, layout."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from edgekit.artifacts import read_json, write_json, write_npz
from edgekit.config import DataConfig
from edgekit.data.qa import quality_report, repair_non_finite
from edgekit.data.record import WindowSet
from edgekit.data.sources import load_source
from edgekit.errors import DataError

SPLITS = ("train", "val", "test")
STATS_SCHEMA_VERSION = 1
MIN_STD = 1e-6  # flat channels are left unscaled rather than divided by ~0


def to_hailo_layout(X: np.ndarray) -> np.ndarray:
    """Map 1-D windows onto Hailo's 2-D convolutions; odd T drops the last sample."""
    batch, channels, length = X.shape
    half = length // 2
    # (B, C, T) -> (B, C, 2, T/2): first half of the window in row 0, second half in row 1
    return np.ascontiguousarray(X[:, :, : 2 * half].reshape(batch, channels, 2, half))


def split_groups(
    y: np.ndarray, groups: np.ndarray, fractions: tuple[float, ...], seed: int
) -> np.ndarray:
    """Assign whole groups to train/val/test (0/1/2), stratified by class, greedy on window deficits."""
    rng = np.random.default_rng(seed)
    unique_groups, group_index = np.unique(groups, return_inverse=True)
    num_classes = int(y.max()) + 1
    counts = np.zeros((len(unique_groups), num_classes))
    np.add.at(counts, (group_index, y), 1)
    fractions_array = np.asarray(fractions)
    class_targets = counts.sum(0)[:, None] * fractions_array[None, :]  # (K, 3)
    total_targets = len(y) * fractions_array
    class_assigned = np.zeros_like(class_targets)
    total_assigned = np.zeros(3)
    # Interleave classes (by each group's main class) so every class is spread over all splits.
    main_class = counts.argmax(1)
    per_class = [rng.permutation(np.flatnonzero(main_class == k)) for k in range(num_classes)]
    per_class = [sorted(g, key=lambda i: -counts[i].sum()) for g in per_class]
    order = [
        g
        for rank in range(max(map(len, per_class)))
        for g in (pc[rank] for pc in per_class if rank < len(pc))
    ]
    assignment = np.zeros(len(unique_groups), dtype=np.int64)
    for g in order:
        share = counts[g] / counts[g].sum()
        class_deficit = share @ (class_targets - class_assigned)
        total_deficit = total_targets - total_assigned
        split = int(np.argmax(class_deficit + 0.5 * total_deficit))
        assignment[g] = split
        class_assigned[:, split] += counts[g]
        total_assigned[split] += counts[g].sum()
    return assignment[group_index]


def assign_splits(windows: WindowSet, config: DataConfig) -> np.ndarray:
    """Split index per window: by group (70/15/15), or the source's official test split plus a val cut."""
    if config.split_mode == "group":
        return split_groups(windows.y, windows.groups, config.split_fractions, config.seed)
    if windows.official_test is None:
        raise DataError(
            f"{windows.source} defines no official test split; use data.split_mode=group"
        )
    split_of = np.full(len(windows.y), 2)
    rest = ~windows.official_test
    train_share = config.split_fractions[0] / (
        config.split_fractions[0] + config.split_fractions[1]
    )
    inner = split_groups(
        windows.y[rest], windows.groups[rest], (train_share, 1 - train_share, 0.0), config.seed
    )
    split_of[rest] = np.minimum(inner, 1)
    return split_of


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
        return tuple(self.arrays["train"][0].shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def save(self, folder: str | Path, config: DataConfig) -> None:
        """JSON reports, plus the arrays so later stages need not parse the source again."""
        folder = Path(folder)
        write_json(folder / "stats.json", self.stats)
        write_json(folder / "qa_report.json", self.qa)
        write_json(folder / "splits.json", self.splits)
        arrays = {
            f"{kind}_{split}": a
            for split, (X, y) in self.arrays.items()
            for kind, a in (("X", X), ("y", y))
        }
        official = {f"official_{split}": mask for split, mask in self.official_test.items()}
        write_npz(
            folder / "prepared.npz",
            data_config=np.array(data_config_digest(config)),
            **arrays,
            **official,
        )

    @classmethod
    def load(cls, folder: str | Path, config: DataConfig) -> PreparedData | None:
        """The arrays saved by `save` for this data config, or None (missing, or made from another config)."""
        folder = Path(folder)
        if not (folder / "prepared.npz").is_file():
            return None
        try:
            with np.load(folder / "prepared.npz") as archive:
                if str(archive["data_config"]) != data_config_digest(config):
                    return None
                arrays = {split: (archive[f"X_{split}"], archive[f"y_{split}"]) for split in SPLITS}
                official = {
                    split: archive[f"official_{split}"]
                    for split in SPLITS
                    if f"official_{split}" in archive
                }
        except (
            OSError,
            ValueError,
            KeyError,
            zipfile.BadZipFile,
        ):  # damaged copy: re-derive from the source
            return None
        stats = read_json(folder / "stats.json")
        return cls(
            arrays,
            stats,
            read_json(folder / "qa_report.json"),
            read_json(folder / "splits.json"),
            stats["class_names"],
            official,
        )


def data_config_digest(config: DataConfig) -> str:
    return hashlib.sha256(
        json.dumps(dataclasses.asdict(config), sort_keys=True).encode()
    ).hexdigest()[:16]


def normalise(X: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return ((X - mean[None, :, None]) / std[None, :, None]).astype(np.float32)


def prepare_data(config: DataConfig, windows: WindowSet | None = None) -> PreparedData:
    """Load (unless given), check, repair, split by group, normalise with train stats, reshape."""
    windows = windows if windows is not None else load_source(config.source, config)
    qa = quality_report(windows)
    windows, repair = repair_non_finite(windows, config.nan_strategy, config.max_nan_fraction)
    qa["repair"] = repair
    split_of = assign_splits(windows, config)
    for k, name in enumerate(windows.class_names):
        missing = [SPLITS[s] for s in range(3) if not ((windows.y == k) & (split_of == s)).any()]
        if missing:
            n_groups = len(np.unique(windows.groups[windows.y == k]))
            raise DataError(
                f"class '{name}' has too few windows/groups ({int((windows.y == k).sum())} windows in {n_groups} groups) "
                f"to appear in the {', '.join(missing)} split; add data for it or drop the class"
            )
    train = windows.X[split_of == 0]
    mean = train.mean(axis=(0, 2)).astype(np.float64)
    std = train.std(axis=(0, 2)).astype(np.float64)
    std = np.where(std < MIN_STD, 1.0, std)
    length = windows.window_length
    stats = {
        "schema_version": STATS_SCHEMA_VERSION,
        "source": windows.source,
        "provenance": windows.provenance,
        "channel_names": windows.channel_names,
        "class_names": windows.class_names,
        "fs": windows.fs,
        "window_length": length,
        "used_length": 2 * (length // 2),
        "dropped_last_sample": bool(length % 2),
        "mean": mean.tolist(),
        "std": std.tolist(),
        "layout": "(B,C,T) -> (B,C,2,T/2): row 0 = first half, row 1 = second half",
    }
    arrays, official = {}, {}
    for index, name in enumerate(SPLITS):
        mask = split_of == index
        arrays[name] = (to_hailo_layout(normalise(windows.X[mask], mean, std)), windows.y[mask])
        if windows.official_test is not None:
            official[name] = windows.official_test[mask]
    splits = {
        "mode": config.split_mode,
        "seed": config.seed,
        "fractions": list(config.split_fractions),
        "counts": {name: len(arrays[name][1]) for name in SPLITS},
        "groups": {
            name: sorted(set(windows.groups[split_of == i].tolist()))
            for i, name in enumerate(SPLITS)
        },
    }
    return PreparedData(arrays, stats, qa, splits, windows.class_names, official)
