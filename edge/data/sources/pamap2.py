"""PAMAP2 Protocol recordings (`pamap2:DIR`): 100 Hz IMU streams cut into windows per subject."""

from __future__ import annotations

import numpy as np
from edgekit.config import DataConfig
from edgekit.data.record import WindowSet
from edgekit.data.sources.common import existing_path, load_table, window_stream
from edgekit.errors import DataError
from scipy.ndimage import median_filter

# PAMAP2 protocol activity ids (0 = transient, dropped).
PAMAP2_ACTIVITIES = {
    1: "lying",
    2: "sitting",
    3: "standing",
    4: "walking",
    5: "running",
    6: "cycling",
    7: "nordic_walking",
    9: "watching_tv",
    10: "computer_work",
    11: "car_driving",
    12: "ascending_stairs",
    13: "descending_stairs",
    16: "vacuum_cleaning",
    17: "ironing",
    18: "folding_laundry",
    19: "house_cleaning",
    20: "playing_soccer",
    24: "rope_jumping",
}
PAMAP2_COLUMNS = 54
_PAMAP2_IMUS = ("hand", "chest", "ankle")


def fill_gaps(column: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN gaps, nearest value at the edges (wireless drop-outs)."""
    valid = np.isfinite(column)
    if valid.all() or not valid.any():
        return column
    index = np.arange(len(column))
    return np.interp(index, index[valid], column[valid])


HEART_RATE_MEDIAN = 25  # samples; shared/reference/data.md §4.2


def fill_heart_rate(column: np.ndarray) -> np.ndarray:
    """Hold each ~9 Hz heart-rate reading (ffill, bfill before the first), then a rolling median."""
    valid = np.isfinite(column)
    if not valid.any():
        return column
    last = np.maximum.accumulate(np.where(valid, np.arange(len(column)), -1))
    filled = column[np.where(last >= 0, last, np.argmax(valid))]
    return median_filter(filled, size=HEART_RATE_MEDIAN, mode="nearest")


PAMAP2_GAP_SECONDS = 1.5 / 100  # more than 1.5 sample periods at 100 Hz between rows is a gap


def load_pamap2(path: str, config: DataConfig) -> WindowSet:
    """PAMAP2 `.dat` (54 columns): acc ±16 g + gyro of the 3 IMUs and heart rate; subject as group."""
    root = existing_path(path, "pamap2")
    files = (
        [root]
        if root.is_file()
        else sorted(root.rglob("subject*.dat")) or sorted(root.rglob("*.dat"))
    )
    if not files:
        raise DataError(
            f"pamap2: no .dat files under {root}; point pamap2:PATH at the Protocol folder"
        )
    imu_columns = [3 + 17 * k + j for k in range(3) for j in (1, 2, 3, 7, 8, 9)]
    channel_names = [
        f"{imu}_{kind}_{axis}" for imu in _PAMAP2_IMUS for kind in ("acc", "gyro") for axis in "xyz"
    ]
    channel_names.append("heart_rate")
    windows, labels, groups, starts = [], [], [], []
    for file in files:
        try:
            table = load_table(file)
        except ValueError as err:
            raise DataError(
                f"pamap2: {file.name} has non-numeric values ({err}); is it a PAMAP2 .dat file?"
            ) from err
        if not table.size:
            raise DataError(f"pamap2: {file.name} holds no rows; copy it again or remove it")
        if table.shape[1] != PAMAP2_COLUMNS:
            raise DataError(
                f"pamap2: {file.name} has {table.shape[1]} columns, expected "
                f"{PAMAP2_COLUMNS}; is it a PAMAP2 .dat file?"
            )
        # fill over the whole subject before activity 0 is left out: the signal is continuous
        heart_rate = fill_heart_rate(table[:, 2])
        imu = np.stack([fill_gaps(table[:, c]) for c in imu_columns], axis=1)
        signals = np.concatenate([imu, heart_rate[:, None]], axis=1)
        gaps = np.concatenate([[False], np.diff(table[:, 0]) > PAMAP2_GAP_SECONDS])
        cut, cut_labels, cut_starts = window_stream(
            signals,
            table[:, 1].astype(int),
            config.window_length,
            config.window_stride,
            breaks=gaps,
            skip_label=0,
        )
        windows += cut
        labels += cut_labels
        starts += cut_starts
        groups += [file.stem] * len(cut)
    if not windows:
        raise DataError(
            f"pamap2: no window of {config.window_length} samples in {root}; lower data.window_length"
        )
    present = sorted(set(labels))
    unknown = [a for a in present if a not in PAMAP2_ACTIVITIES]
    if unknown:
        raise DataError(f"pamap2: unknown activity ids {unknown}; expected PAMAP2 protocol ids")
    return WindowSet(
        np.stack(windows),
        np.searchsorted(present, labels),
        np.array(groups),
        [PAMAP2_ACTIVITIES[a] for a in present],
        channel_names,
        100.0,
        f"pamap2:{root}",
        starts=np.array(starts),
        channel_groups={
            **{
                f"imu_{imu}": [n for n in channel_names if n.startswith(f"{imu}_")]
                for imu in _PAMAP2_IMUS
            },
            "heart_rate": ["heart_rate"],
        },
    )
