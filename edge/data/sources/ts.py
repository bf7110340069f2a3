"""UEA/UCR `.ts` files: `ts:PATH` and the set bundled inside a wheel (`bundled:basicmotions`)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
from edgekit.config import DataConfig
from edgekit.data.lengths import fit_lengths
from edgekit.data.record import WindowSet
from edgekit.data.sources.common import existing_path, read_text
from edgekit.errors import DataError


def parse_ts(path: Path) -> tuple[list[np.ndarray], list[str]]:
    """Parse a UEA `.ts` file: `ch0 values:ch1 values:...:label` per line after `@data`.

    Returns one `(C, T_i)` array per series; lengths may differ between series (not channels).
    Missing values `?` are NaN (repaired by `data.nan_strategy`), except at the end of a series,
    where the UEA archive uses them to pad shorter series: those are cut off, and the series is
    then as long as its values (`data.length_policy`).
    """
    rows, labels, in_data = [], [], False
    for line_number, line in enumerate(read_text(path).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            check_ts_header(path, line_number, line.lower().split())
            in_data = line.lower().startswith("@data")
            continue
        *dims, label = line.split(":")
        try:
            channels = [np.array(d.replace("?", "nan").split(","), dtype=np.float32) for d in dims]
        except ValueError as err:
            raise DataError(f"{path}:{line_number}: not a numeric .ts series") from err
        if not channels or len({len(c) for c in channels}) != 1:
            raise DataError(
                f"{path}:{line_number}: the channels of one series differ in length; each series "
                "needs one length for all its channels"
            )
        series = np.stack(channels)
        measured = np.flatnonzero(~np.isnan(series).all(axis=0))
        if not measured.size:
            raise DataError(f"{path}:{line_number}: the series holds no value, only '?'")
        rows.append(series[:, : measured[-1] + 1])
        labels.append(label.strip())
    if not rows:
        raise DataError(f"{path}: no series after @data; is this a UEA .ts file?")
    if len({r.shape[0] for r in rows}) != 1:
        raise DataError(f"{path}: series have different numbers of channels; fix the file")
    return rows, labels


def check_ts_header(path: Path, line_number: int, words: list[str]) -> None:
    """Refuse the header tags of files edgekit can't classify."""
    tag_and_value = tuple([*words, "", ""][:2])
    if tag_and_value == ("@timestamps", "true"):
        raise DataError(
            f"{path}:{line_number}: series with timestamps are not supported; save the values "
            "alone (@timestamps false), one sample per sensor period"
        )
    if tag_and_value in (("@classlabel", "false"), ("@targetlabel", "true")):
        raise DataError(
            f"{path}:{line_number}: the file has no class labels ({' '.join(words[:2])}); "
            "edgekit trains classifiers: give a file with @classLabel true and a label per series"
        )


def windows_from_ts_files(
    files: list[tuple[Path, bool]],
    source: str,
    fs: float,
    names: list[str] | None,
    config: DataConfig,
) -> WindowSet:
    """The windows of train/test .ts files: lengths fitted by the policy, the official split kept."""
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
    channels = names or [f"ch{c}" for c in range(X.shape[1])]  # WindowSet checks the count
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
    windows = windows_from_ts_files(
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
    root = existing_path(path, "ts")
    files = [root] if root.is_file() else sorted(root.glob("*.ts"))
    if not files:
        raise DataError(
            f"ts: no .ts files in {root}; point ts:PATH at a .ts file or a folder of them"
        )
    return windows_from_ts_files(
        [(f, f.stem.upper().endswith("_TEST")) for f in files], f"ts:{root}", 1.0, None, config
    )


# ---------------------------------------------------------------- UCI-HAR
