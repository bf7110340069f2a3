"""The user's own data as CSV (`csv:FILE`, continuous streams cut into windows) or NumPy arrays
(`npy:DIR`, windows already cut)."""

from __future__ import annotations

import csv
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from edgekit.config import DataConfig
from edgekit.data.record import WindowSet
from edgekit.data.sources.common import existing_path, window_stream
from edgekit.errors import DataError

SEPARATORS = (",", ";", "\t")  # ties go to the comma
DECIMAL_COMMA = re.compile(r"[-+]?\d+,\d+")


def load_csv(path: str, config: DataConfig) -> WindowSet:
    """Long-format CSV: one row per sample with group and label columns; other numeric columns are channels."""
    file = existing_path(path, "csv")
    if file.is_dir():
        raise DataError(f"csv: {file} is a folder; give one CSV file as csv:FILE")
    table = read_table(file)
    header, rows = table.header, table.rows
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
    values = channel_values(table, channel_index)
    group_of_row = np.array([fields[group_index].strip() for fields in rows])
    label_of_row = [fields[label_index].strip() for fields in rows]
    if not all(label_of_row):
        raise DataError(
            f"csv: line {table.line(label_of_row.index(''))} of {file.name} has no "
            f"'{header[label_index]}'; label every sample or remove the unlabelled rows"
        )
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


@dataclass(frozen=True)
class CsvTable:
    """A CSV file's column names and the rows that hold values (`holds_values`)."""

    file: Path
    separator: str
    header: list[str]
    rows: list[list[str]]

    def line(self, row: int) -> int:
        """The file line of `rows[row]`, read again: only error messages need it."""
        with open(self.file, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=self.separator)
            next(reader)
            ends = (reader.line_num for fields in reader if holds_values(fields))
            return next(itertools.islice(ends, row, None))


def read_table(file: Path) -> CsvTable:
    """Read a CSV as spreadsheets save it: UTF-8 with or without a byte-order mark (Excel's "CSV
    UTF-8" starts with one, which would stick to the first name), separated by ',', ';' or tabs."""
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            separator = column_separator(handle.readline())
            handle.seek(0)
            reader = csv.reader(handle, delimiter=separator)
            header = next(reader, None)
            rows = [fields for fields in reader if holds_values(fields)]
    except UnicodeDecodeError as err:
        raise DataError(f"csv: {file} is not UTF-8 text; save it as UTF-8") from err
    if not header or not rows:
        raise DataError(f"csv: {file} is empty; expected a header and one row per sample")
    names = [h.strip() for h in header]
    while names and not names[-1]:  # a separator after the last name (and every row's value)
        names.pop()
    table = CsvTable(file, separator, names, rows)
    width = len(names)
    for row, fields in enumerate(rows):
        # fewer fields lose a column; more non-empty ones shift them (decimal commas, say)
        if len(fields) != width and (len(fields) < width or any(fields[width:])):
            hint = "; a decimal comma splits a number in two" if len(fields) > width else ""
            raise DataError(
                f"csv: line {table.line(row)} of {file.name} has {len(fields)} fields, the header "
                f"{width} ({separator!r}-separated); every row needs one value per column{hint}"
            )
    return table


def holds_values(fields: list[str]) -> bool:
    """False for a blank line, or one of spaces and separators only (spreadsheets save those)."""
    return any(field.strip() for field in fields)


def column_separator(header_line: str) -> str:
    """The separator the header uses most: ',' or, as spreadsheets in many locales save, ';' or a
    tab."""
    return max(SEPARATORS, key=header_line.count)


def channel_values(table: CsvTable, channel_index: list[int]) -> np.ndarray:
    """The channel columns as float64 (an empty cell is NaN, for data.nan_strategy); the first bad
    cell is named by its line and column."""
    try:
        return np.array(
            [[float(f[i]) if f[i].strip() else np.nan for i in channel_index] for f in table.rows],
            dtype=np.float64,
        )
    except ValueError:
        row, column = next(
            (row, i)
            for row, f in enumerate(table.rows)
            for i in channel_index
            if f[i].strip() and not is_number(f[i])
        )
    text = table.rows[row][column].strip()
    hint = (
        "save the file with '.' as the decimal mark"
        if DECIMAL_COMMA.fullmatch(text)
        else "channels must be numbers"
    )
    raise DataError(
        f"csv: line {table.line(row)} of {table.file.name}, column '{table.header[column]}': "
        f"{text[:40]!r} is not a number; {hint}"
    )


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_npy(path: str, config: DataConfig) -> WindowSet:
    """A folder with `X.npy (N, C, T)`, `y.npy` and optionally `groups.npy`, `starts.npy` (first
    sample of each window in its recording, for `data.split_mode=time`) and `classes.txt`."""
    root = existing_path(path, "npy")
    for name in ("X.npy", "y.npy"):
        if not (root / name).is_file():
            raise DataError(
                f"npy: {root / name} is missing; the folder needs X.npy (N,C,T) and y.npy (N,)"
            )
    X = load_array(root / "X.npy", mmap=True)  # read, not held twice
    y = load_array(root / "y.npy")
    groups, starts = (
        load_array(root / f"{name}.npy") if (root / f"{name}.npy").is_file() else None
        for name in ("groups", "starts")
    )
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):  # nor bool
        raise DataError(f"npy: X.npy has dtype {X.dtype}; save the windows as float32")
    if X.ndim != 3:
        raise DataError(f"npy: X.npy must be (N, C, T), got shape {X.shape}")
    if y.dtype.kind == "f" and np.isfinite(y).all() and np.array_equal(y, np.round(y)):
        y = y.astype(np.int64)  # whole numbers saved as floats (pandas does)
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
        if y.min() < 0 or y.max() >= len(class_names):
            raise DataError(
                f"npy: y.npy holds labels {y.min()}..{y.max()} but classes.txt names "
                f"{len(class_names)} classes (labels 0..{len(class_names) - 1}); one name per line"
            )
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


def load_array(file: Path, mmap: bool = False) -> np.ndarray:
    """One `.npy` file of numbers or strings, never unpickled: loading data must not run code."""
    with open(file, "rb") as handle:
        if handle.read(6) != b"\x93NUMPY":
            raise DataError(f"npy: {file.name} is not a NumPy .npy file; write it with np.save")
    try:
        return np.load(file, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (ValueError, OSError, EOFError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"npy: {file.name} can't be read as a plain array ({reason}); save numbers or "
            "strings with np.save"
        ) from err
