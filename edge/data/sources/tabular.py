"""The user's own data as CSV (`csv:FILE`, continuous streams cut into windows) or NumPy arrays
(`npy:DIR`, windows already cut)."""

from __future__ import annotations

import csv

import numpy as np
from edgekit.config import DataConfig
from edgekit.data.record import WindowSet
from edgekit.data.sources.common import existing_path, window_stream
from edgekit.errors import DataError


def load_csv(path: str, config: DataConfig) -> WindowSet:
    """Long-format CSV: one row per sample with group and label columns; other numeric columns are channels."""
    file = existing_path(path, "csv")
    if file.is_dir():
        raise DataError(f"csv: {file} is a folder; give one CSV file as csv:FILE")
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = list(reader)
    except UnicodeDecodeError as err:
        raise DataError(f"csv: {file} is not UTF-8 text; save it as UTF-8") from err
    if not header or not rows:
        raise DataError(f"csv: {file} is empty; expected a header and one row per sample")
    header = [h.strip() for h in header]
    for column in (config.csv_group_column, config.csv_label_column):
        if column not in header:
            raise DataError(
                f"csv: column '{column}' not in {file.name} (columns: "
                f"{', '.join(header)}); set data.csv_group_column/csv_label_column"
            )
    group_index, label_index = (
        header.index(config.csv_group_column),
        header.index(config.csv_label_column),
    )
    skip = {group_index, label_index} | (
        {header.index(config.csv_time_column)} if config.csv_time_column in header else set()
    )
    channel_index = [i for i in range(len(header)) if i not in skip]
    if not channel_index:
        raise DataError(
            f"csv: {file.name} has no channel columns (only {', '.join(header)}); add one "
            "numeric column per sensor channel"
        )
    try:
        values = np.array(
            [[float(r[i]) if r[i].strip() else np.nan for i in channel_index] for r in rows],
            dtype=np.float64,
        )
    except (ValueError, IndexError) as err:
        raise DataError(
            f"csv: {file.name} has a non-numeric or missing channel value; channels must be numbers"
        ) from err
    group_of_row = np.array([r[group_index] for r in rows])
    label_of_row = [r[label_index].strip() for r in rows]
    class_names = sorted(set(label_of_row))
    label_ids = np.array([class_names.index(v) for v in label_of_row])
    windows, labels, groups, starts = [], [], [], []
    for group in dict.fromkeys(group_of_row):
        mask = group_of_row == group
        cut, cut_labels, cut_starts = window_stream(
            values[mask], label_ids[mask], config.window_length, config.window_stride
        )
        windows += cut
        labels += cut_labels
        starts += cut_starts
        groups += [group] * len(cut)
    if not windows:
        raise DataError(
            f"csv: no window of {config.window_length} samples in {file.name}; lower data.window_length"
        )
    return WindowSet(
        np.stack(windows),
        np.array(labels),
        np.array(groups),
        class_names,
        [header[i] for i in channel_index],
        1.0,
        f"csv:{file}",
        starts=np.array(starts),
    )


def load_npy(path: str, config: DataConfig) -> WindowSet:
    """A folder with `X.npy (N, C, T)`, `y.npy` and optionally `groups.npy`, `starts.npy` (first
    sample of each window in its recording, for `data.split_mode=time`) and `classes.txt`."""
    root = existing_path(path, "npy")
    for name in ("X.npy", "y.npy"):
        if not (root / name).is_file():
            raise DataError(
                f"npy: {root / name} is missing; the folder needs X.npy (N,C,T) and y.npy (N,)"
            )
    try:
        X = np.load(root / "X.npy", allow_pickle=False, mmap_mode="r")  # read, not held twice
        y = np.load(root / "y.npy", allow_pickle=False)
        groups, starts = (
            np.load(root / f"{name}.npy", allow_pickle=False)
            if (root / f"{name}.npy").is_file()
            else None
            for name in ("groups", "starts")
        )
    except ValueError as err:
        raise DataError(
            f"npy: {root} holds object arrays; save plain numeric arrays (np.save without pickle)"
        ) from err
    if (
        not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer))
        or X.dtype == bool
    ):
        raise DataError(f"npy: X.npy has dtype {X.dtype}; save the windows as float32")
    if X.ndim != 3:
        raise DataError(f"npy: X.npy must be (N, C, T), got shape {X.shape}")
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.dtype.kind == "U"):
        raise DataError(f"npy: y.npy must be 1-D integer or string labels, got {y.dtype} {y.shape}")
    class_names = (
        sorted({str(v) for v in y}, key=lambda s: (len(s), s))
        if y.dtype.kind != "U"
        else sorted(set(y))
    )
    classes_file = root / "classes.txt"
    if classes_file.is_file() and y.dtype.kind != "U":
        class_names = [
            line.strip() for line in classes_file.read_text().splitlines() if line.strip()
        ]
        y_index = y
    else:
        y_index = np.array([class_names.index(str(v)) for v in y])
    if groups is None:
        groups = np.array([f"win{i:06d}" for i in range(len(X))])
    if starts is not None and (
        starts.shape != y.shape or not np.issubdtype(starts.dtype, np.integer)
    ):
        raise DataError(
            f"npy: starts.npy must be one integer per window, got {starts.dtype} {starts.shape}"
        )
    return WindowSet(
        X.astype(np.float32, copy=False),
        y_index,
        groups,
        class_names,
        [f"ch{c}" for c in range(X.shape[1])],
        1.0,
        f"npy:{root}",
        starts=starts,
    )
