"""Data sources selected as `scheme:PATH` (`bundled:basicmotions`, `uci-har:DIR`, `pamap2:DIR`, ...).

Every loader returns a `WindowSet`; groups are recordings or subjects so splits never leak.
"""

from __future__ import annotations

import csv
import importlib.metadata
import inspect
from collections.abc import Callable
from pathlib import Path

import numpy as np
from edgekit.config import DataConfig
from edgekit.data.record import WindowSet
from edgekit.data.synthetic import make_synthetic
from edgekit.errors import DataError

# PAMAP2 protocol activity ids (0 = transient, dropped).
PAMAP2_ACTIVITIES = {
    1: "lying", 2: "sitting", 3: "standing", 4: "walking", 5: "running", 6: "cycling",
    7: "nordic_walking", 9: "watching_tv", 10: "computer_work", 11: "car_driving",
    12: "ascending_stairs", 13: "descending_stairs", 16: "vacuum_cleaning", 17: "ironing",
    18: "folding_laundry", 19: "house_cleaning", 20: "playing_soccer", 24: "rope_jumping",
}  # fmt: skip
PAMAP2_COLUMNS = 54
_PAMAP2_IMUS = ("hand", "chest", "ankle")


def _existing(path: str, scheme: str) -> Path:
    resolved = Path(path).expanduser()
    if not path or not resolved.exists():
        raise DataError(
            f"{scheme}: path '{path}' does not exist; give an existing file or folder as {scheme}:PATH"
        )
    return resolved


# ---------------------------------------------------------------- UEA .ts (BasicMotions and others)
def parse_ts(path: Path) -> tuple[np.ndarray, list[str]]:
    """Parse a UEA `.ts` file: `ch0 values:ch1 values:...:label` per line after `@data`."""
    rows, labels, in_data = [], [], False
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower().startswith("@data")
            continue
        *dims, label = line.split(":")
        try:
            rows.append([np.array(d.split(","), dtype=np.float32) for d in dims])
        except ValueError:
            raise DataError(
                f"{path}:{line_number}: not a numeric .ts series; missing values '?' are not supported"
            ) from None
        labels.append(label.strip())
    if not rows:
        raise DataError(f"{path}: no series after @data; is this a UEA .ts file?")
    lengths = {len(d) for r in rows for d in r}
    if len({len(r) for r in rows}) != 1 or len(lengths) != 1:
        raise DataError(
            f"{path}: series have unequal lengths {sorted(lengths)[:5]}; resample to one length first"
        )
    return np.stack([np.stack(r) for r in rows]), labels


def _windows_from_ts_files(
    files: list[tuple[Path, bool]], source: str, fs: float, names: list[str] | None
) -> WindowSet:
    arrays, labels, test_marks = [], [], []
    for path, is_test in sorted(files, key=lambda item: (item[1], item[0].name)):  # train first
        X, y = parse_ts(path)
        arrays.append(X)
        labels += y
        test_marks += [is_test] * len(y)
    X = np.concatenate(arrays)
    class_names = sorted(set(labels))
    y = np.array([class_names.index(label) for label in labels])
    channels = (
        names if names and len(names) == X.shape[1] else [f"ch{c}" for c in range(X.shape[1])]
    )
    groups = np.array([f"rec{i:05d}" for i in range(len(X))])  # each series is its own recording
    return WindowSet(
        X, y, groups, class_names, channels, fs, source, official_test=np.array(test_marks)
    )


def locate_basicmotions() -> tuple[list[Path], str]:
    """Find BasicMotions `.ts` files shipped inside an installed wheel (sktime, else aeon)."""
    for dist in ("sktime", "aeon"):
        try:
            distribution = importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        found = sorted(
            Path(str(distribution.locate_file(f)))
            for f in distribution.files or []
            if f.name in ("BasicMotions_TRAIN.ts", "BasicMotions_TEST.ts")
        )
        if len(found) == 2 and all(p.is_file() for p in found):
            return found, f"{dist}=={distribution.version}"
    raise DataError(
        "bundled:basicmotions needs the sktime (or aeon) package, which ships the data; run `uv sync`"
    )


def load_bundled(name: str, config: DataConfig) -> WindowSet:
    if name.lower() != "basicmotions":
        raise DataError(
            f"bundled:{name}: unknown bundled data set; the bundled one is bundled:basicmotions"
        )
    files, package = locate_basicmotions()
    channels = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    windows = _windows_from_ts_files(
        [(p, p.name.endswith("_TEST.ts")) for p in files], "bundled:basicmotions", 10.0, channels
    )
    windows.class_names = [c.lower() for c in windows.class_names]
    windows.provenance = {
        "package": package,
        "files": ",".join(p.name for p in files),
        "licence": "UEA archive (Bagnall et al. 2018)",
    }
    return windows


def load_ts(path: str, config: DataConfig) -> WindowSet:
    root = _existing(path, "ts")
    files = [root] if root.is_file() else sorted(root.glob("*.ts"))
    if not files:
        raise DataError(
            f"ts: no .ts files in {root}; point ts:PATH at a .ts file or a folder of them"
        )
    return _windows_from_ts_files(
        [(f, f.stem.upper().endswith("_TEST")) for f in files], f"ts:{root}", 1.0, None
    )


# ---------------------------------------------------------------- UCI-HAR
_UCI_SIGNALS = [
    f"{kind}_{axis}" for kind in ("body_acc", "body_gyro", "total_acc") for axis in "xyz"
]


def load_uci_har(path: str, config: DataConfig) -> WindowSet:
    """UCI HAR: the 9 inertial signal files per split, stacked to (N, 9, 128); subject as group."""
    root = _existing(path, "uci-har")
    if (root / "UCI HAR Dataset").is_dir():
        root = root / "UCI HAR Dataset"
    labels_file = root / "activity_labels.txt"
    if not labels_file.is_file():
        raise DataError(
            f"uci-har: {labels_file} is missing; point uci-har:PATH at the 'UCI HAR Dataset' folder"
        )
    activity = dict(line.split() for line in labels_file.read_text().splitlines() if line.strip())
    class_ids = sorted(int(k) for k in activity)
    X_parts, y_parts, subject_parts = [], [], []
    for split in ("train", "test"):
        signal_dir = root / split / "Inertial Signals"
        if not signal_dir.is_dir():
            continue
        try:
            signals = [
                np.loadtxt(signal_dir / f"{name}_{split}.txt", ndmin=2) for name in _UCI_SIGNALS
            ]
            y_parts.append(np.loadtxt(root / split / f"y_{split}.txt", dtype=np.int64, ndmin=1))
            subject_parts.append(
                np.loadtxt(root / split / f"subject_{split}.txt", dtype=np.int64, ndmin=1)
            )
        except OSError as err:
            raise DataError(
                f"uci-har: cannot read {err.filename or split}; the folder layout is incomplete"
            ) from None
        except ValueError as err:
            raise DataError(
                f"uci-har: malformed numbers in the {split} split ({err}); re-extract the archive"
            ) from None
        X_parts.append(np.stack(signals, axis=1))
    if not X_parts:
        raise DataError(f"uci-har: no train/ or test/ 'Inertial Signals' folders in {root}")
    y_raw = np.concatenate(y_parts)
    return WindowSet(
        np.concatenate(X_parts),
        np.searchsorted(class_ids, y_raw),
        np.array([f"subject{s}" for s in np.concatenate(subject_parts)]),
        [activity[str(k)].lower() for k in class_ids],
        list(_UCI_SIGNALS),
        50.0,
        f"uci-har:{root}",
    )


# ---------------------------------------------------------------- streams → windows (PAMAP2, CSV)
def window_stream(
    signals: np.ndarray, labels: np.ndarray, length: int, stride: int
) -> tuple[list[np.ndarray], list[int]]:
    """Cut `(T, C)` signals into windows inside each contiguous run of one label."""
    windows, window_labels = [], []
    boundaries = np.flatnonzero(np.diff(labels)) + 1
    for run in np.split(np.arange(len(labels)), boundaries):
        for start in range(0, len(run) - length + 1, stride):
            windows.append(signals[run[start] : run[start] + length].T)
            window_labels.append(int(labels[run[start]]))
    return windows, window_labels


def fill_gaps(column: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN gaps, nearest value at the edges (wireless drop-outs)."""
    valid = np.isfinite(column)
    if valid.all() or not valid.any():
        return column
    index = np.arange(len(column))
    return np.interp(index, index[valid], column[valid])


def load_pamap2(path: str, config: DataConfig) -> WindowSet:
    """PAMAP2 `.dat` (54 columns): acc ±16 g + gyro of the 3 IMUs and heart rate; subject as group."""
    root = _existing(path, "pamap2")
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
    windows, labels, groups = [], [], []
    for file in files:
        try:
            table = np.loadtxt(file, ndmin=2)
        except ValueError as err:
            raise DataError(
                f"pamap2: {file.name} has non-numeric values ({err}); is it a PAMAP2 .dat file?"
            ) from None
        if table.shape[1] != PAMAP2_COLUMNS:
            raise DataError(
                f"pamap2: {file.name} has {table.shape[1]} columns, expected {PAMAP2_COLUMNS}; is it a PAMAP2 .dat file?"
            )
        table = table[table[:, 1] != 0]  # activity 0 = transient
        if not len(table):
            continue
        heart_rate = fill_gaps(table[:, 2])  # ~9 Hz sensor in a 100 Hz table: fill per subject
        imu = np.stack([fill_gaps(table[:, c]) for c in imu_columns], axis=1)
        signals = np.concatenate([imu, heart_rate[:, None]], axis=1)
        cut, cut_labels = window_stream(
            signals, table[:, 1].astype(int), config.window_length, config.window_stride
        )
        windows += cut
        labels += cut_labels
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
    )


def load_csv(path: str, config: DataConfig) -> WindowSet:
    """Long-format CSV: one row per sample with group and label columns; other numeric columns are channels."""
    file = _existing(path, "csv")
    with open(file, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        rows = list(reader)
    if not header or not rows:
        raise DataError(f"csv: {file} is empty; expected a header and one row per sample")
    header = [h.strip() for h in header]
    for column in (config.csv_group_column, config.csv_label_column):
        if column not in header:
            raise DataError(
                f"csv: column '{column}' not in {file.name} (columns: {', '.join(header)}); set data.csv_group_column/csv_label_column"
            )
    group_index, label_index = (
        header.index(config.csv_group_column),
        header.index(config.csv_label_column),
    )
    skip = {group_index, label_index} | (
        {header.index(config.csv_time_column)} if config.csv_time_column in header else set()
    )
    channel_index = [i for i in range(len(header)) if i not in skip]
    try:
        values = np.array(
            [[float(r[i]) if r[i].strip() else np.nan for i in channel_index] for r in rows],
            dtype=np.float64,
        )
    except (ValueError, IndexError):
        raise DataError(
            f"csv: {file.name} has a non-numeric or missing channel value; channels must be numbers"
        ) from None
    group_of_row = np.array([r[group_index] for r in rows])
    label_of_row = [r[label_index].strip() for r in rows]
    class_names = sorted(set(label_of_row))
    label_ids = np.array([class_names.index(v) for v in label_of_row])
    windows, labels, groups = [], [], []
    for group in dict.fromkeys(group_of_row):
        mask = group_of_row == group
        cut, cut_labels = window_stream(
            values[mask], label_ids[mask], config.window_length, config.window_stride
        )
        windows += cut
        labels += cut_labels
        groups += [group] * len(cut)
    if not windows:
        raise DataError(
            f"csv: no window of {config.window_length} samples in {file.name}; lower data.window_length"
        )
    return WindowSet(np.stack(windows), np.array(labels), np.array(groups), class_names,
                     [header[i] for i in channel_index], 1.0, f"csv:{file}")  # fmt: skip


def load_npy(path: str, config: DataConfig) -> WindowSet:
    """A folder with `X.npy (N, C, T)`, `y.npy` and optionally `groups.npy` and `classes.txt`."""
    root = _existing(path, "npy")
    for name in ("X.npy", "y.npy"):
        if not (root / name).is_file():
            raise DataError(
                f"npy: {root / name} is missing; the folder needs X.npy (N,C,T) and y.npy (N,)"
            )
    try:
        X = np.load(root / "X.npy", allow_pickle=False)
        y = np.load(root / "y.npy", allow_pickle=False)
        groups = (
            np.load(root / "groups.npy", allow_pickle=False)
            if (root / "groups.npy").is_file()
            else None
        )
    except ValueError:
        raise DataError(
            f"npy: {root} holds object arrays; save plain numeric arrays (np.save without pickle)"
        ) from None
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
    return WindowSet(
        X.astype(np.float32),
        y_index,
        groups,
        class_names,
        [f"ch{c}" for c in range(X.shape[1])],
        1.0,
        f"npy:{root}",
    )


def load_synthetic(spec: str, config: DataConfig) -> WindowSet:
    """`synthetic` or `synthetic:n=400,length=127,noise=1.5,nan_fraction=0.01,flat_channels=1`."""
    options: dict[str, float | int] = {"seed": config.seed}
    known = list(inspect.signature(make_synthetic).parameters)
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in known:
            raise DataError(f"synthetic: unknown option '{key}'; use {', '.join(known)}")
        try:
            options[key] = float(value) if any(ch in value for ch in ".e") else int(value)
        except ValueError:
            raise DataError(f"synthetic: option {key}={value!r} is not a number") from None
    return make_synthetic(**options)  # type: ignore[arg-type]


SOURCES: dict[str, Callable[[str, DataConfig], WindowSet]] = {
    "bundled": load_bundled,
    "synthetic": load_synthetic,
    "uci-har": load_uci_har,
    "pamap2": load_pamap2,
    "ts": load_ts,
    "npy": load_npy,
    "csv": load_csv,
}


def load_source(spec: str, config: DataConfig | None = None) -> WindowSet:
    """Load windows from a `scheme:PATH` spec such as `bundled:basicmotions` or `pamap2:/data/Protocol`."""
    config = config or DataConfig()
    scheme, _, rest = spec.partition(":")
    if scheme not in SOURCES:
        raise DataError(
            f"unknown data source '{scheme}'; use one of: {', '.join(f'{s}:' for s in SOURCES)}"
        )
    return SOURCES[scheme](rest, config)
