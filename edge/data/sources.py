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
from edgekit.data.lengths import fit_lengths
from edgekit.data.record import WindowSet
from edgekit.data.synthetic import make_synthetic
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


def _existing(path: str, scheme: str) -> Path:
    resolved = Path(path).expanduser()
    if not path or not resolved.exists():
        raise DataError(
            f"{scheme}: path '{path}' does not exist; give an existing file or folder as {scheme}:PATH"
        )
    return resolved


# ---------------------------------------------------------------- UEA .ts (BasicMotions and others)
def parse_ts(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """Parse a UEA `.ts` file: `ch0 values:ch1 values:...:label` per line after `@data`.

    Returns one `(C, T_i)` array per series; lengths may differ between series (not channels).
    """
    rows, labels, in_data = [], [], False
    for line_number, line in enumerate(_read_text(path).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower().startswith("@data")
            continue
        *dims, label = line.split(":")
        try:
            channels = [np.array(d.split(","), dtype=np.float32) for d in dims]
        except ValueError as err:
            raise DataError(
                f"{path}:{line_number}: not a numeric .ts series; missing values '?' are not supported"
            ) from err
        if not channels or len({len(c) for c in channels}) != 1:
            raise DataError(
                f"{path}:{line_number}: the channels of one series differ in length; each series "
                "needs one length for all its channels"
            )
        rows.append(np.stack(channels))
        labels.append(label.strip())
    if not rows:
        raise DataError(f"{path}: no series after @data; is this a UEA .ts file?")
    if len({r.shape[0] for r in rows}) != 1:
        raise DataError(f"{path}: series have different numbers of channels; fix the file")
    return rows, labels


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text; save the file as UTF-8") from err


def _windows_from_ts_files(
    files: list[tuple[Path, bool]],
    source: str,
    fs: float,
    names: list[str] | None,
    config: DataConfig,
) -> WindowSet:
    series: list[np.ndarray] = []
    labels: list[str] = []
    test_marks: list[bool] = []
    groups: list[str] = []
    for path, is_test in sorted(files, key=lambda item: (item[1], item[0].name)):  # train first
        rows, y = parse_ts(path)
        series += rows
        labels += y
        test_marks += [is_test] * len(y)
        groups += [f"{path.stem}:{i:05d}" for i in range(len(y))]  # each series its own recording
    if len({s.shape[0] for s in series}) != 1:
        raise DataError(f"{source}: the files have different numbers of channels")
    X, length_note = fit_lengths(series, config.length_policy, config.target_length, source)
    class_names = sorted(set(labels))
    y_index = np.array([class_names.index(label) for label in labels])
    channels = (
        names if names and len(names) == X.shape[1] else [f"ch{c}" for c in range(X.shape[1])]
    )
    return WindowSet(
        X,
        y_index,
        np.array(groups),
        class_names,
        channels,
        fs,
        source,
        official_test=np.array(test_marks),
        notes={"length": length_note},
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
    """The set shipped inside a wheel (`bundled:basicmotions`), read from its .ts files."""
    if name.lower() != "basicmotions":
        raise DataError(
            f"bundled:{name}: unknown bundled data set; the bundled one is bundled:basicmotions"
        )
    files, package = locate_basicmotions()
    channels = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    windows = _windows_from_ts_files(
        [(p, p.name.endswith("_TEST.ts")) for p in files],
        "bundled:basicmotions",
        10.0,
        channels,
        config,
    )
    windows.class_names = [c.lower() for c in windows.class_names]
    windows.provenance = {
        "package": package,
        "files": ",".join(p.name for p in files),
        "licence": "UEA archive (Bagnall et al. 2018)",
    }
    return windows


def load_ts(path: str, config: DataConfig) -> WindowSet:
    """A UEA/UCR .ts file or folder (`ts:PATH`)."""
    root = _existing(path, "ts")
    files = [root] if root.is_file() else sorted(root.glob("*.ts"))
    if not files:
        raise DataError(
            f"ts: no .ts files in {root}; point ts:PATH at a .ts file or a folder of them"
        )
    return _windows_from_ts_files(
        [(f, f.stem.upper().endswith("_TEST")) for f in files], f"ts:{root}", 1.0, None, config
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
    try:
        pairs = [line.split() for line in labels_file.read_text(encoding="utf-8").splitlines()]
        activity = {pair[0]: pair[1] for pair in pairs if pair}
        class_ids = sorted(int(k) for k in activity)
    except (UnicodeDecodeError, IndexError, ValueError) as err:
        raise DataError(
            f"uci-har: {labels_file} is not 'ID NAME' lines; re-extract the archive"
        ) from err
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
            ) from err
        except ValueError as err:
            raise DataError(
                f"uci-har: malformed numbers in the {split} split ({err}); re-extract the archive"
            ) from err
        rows = {
            f"{name}_{split}.txt": s.shape for name, s in zip(_UCI_SIGNALS, signals, strict=True)
        }
        rows |= {
            f"y_{split}.txt": y_parts[-1].shape,
            f"subject_{split}.txt": subject_parts[-1].shape,
        }
        if len({shape[0] for shape in rows.values()}) > 1 or len({s.shape for s in signals}) > 1:
            sizes = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in rows.items())
            raise DataError(
                f"uci-har: the {split} files disagree in rows or samples ({sizes}); re-extract the archive"
            )
        unknown = sorted(set(y_parts[-1].tolist()) - set(class_ids))
        if unknown:
            raise DataError(
                f"uci-har: y_{split}.txt has labels {unknown[:5]} not in activity_labels.txt; re-extract the archive"
            )
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
    windows, labels, groups, starts = [], [], [], []
    for file in files:
        try:
            table = np.loadtxt(file, ndmin=2)
        except ValueError as err:
            raise DataError(
                f"pamap2: {file.name} has non-numeric values ({err}); is it a PAMAP2 .dat file?"
            ) from err
        if table.shape[1] != PAMAP2_COLUMNS:
            raise DataError(
                f"pamap2: {file.name} has {table.shape[1]} columns, expected {PAMAP2_COLUMNS}; is it a PAMAP2 .dat file?"
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


def load_csv(path: str, config: DataConfig) -> WindowSet:
    """Long-format CSV: one row per sample with group and label columns; other numeric columns are channels."""
    file = _existing(path, "csv")
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
    if not channel_index:
        raise DataError(
            f"csv: {file.name} has no channel columns (only {', '.join(header)}); add one numeric column per sensor channel"
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
    root = _existing(path, "npy")
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
        except ValueError as err:
            raise DataError(f"synthetic: option {key}={value!r} is not a number") from err
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
