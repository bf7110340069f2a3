"""UCI-HAR (`uci-har:DIR`): the 2.56 s windows of the 30 subjects, grouped by subject."""

from __future__ import annotations

import numpy as np
from edgekit.config import DataConfig
from edgekit.data.record import WindowSet
from edgekit.data.sources.common import existing_path, load_table
from edgekit.errors import DataError

UCI_SIGNALS = [
    f"{kind}_{axis}" for kind in ("body_acc", "body_gyro", "total_acc") for axis in "xyz"
]


def load_uci_har(path: str, config: DataConfig) -> WindowSet:
    """UCI HAR: the 9 inertial signal files per split, stacked to (N, 9, 128); subject as group."""
    root = existing_path(path, "uci-har")
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
        files = [signal_dir / f"{name}_{split}.txt" for name in UCI_SIGNALS]
        labels_and_subjects = [root / split / f"{kind}_{split}.txt" for kind in ("y", "subject")]
        missing = [f for f in [*files, *labels_and_subjects] if not f.is_file()]
        if missing:  # np.loadtxt's error would not name the file
            raise DataError(
                f"uci-har: {missing[0]} is missing; the folder layout is incomplete, re-extract the archive"
            )
        try:
            signals = [load_table(file) for file in files]
            y_parts.append(load_table(labels_and_subjects[0], np.int64, ndmin=1))
            subject_parts.append(load_table(labels_and_subjects[1], np.int64, ndmin=1))
        except ValueError as err:
            raise DataError(
                f"uci-har: malformed numbers in the {split} split ({err}); re-extract the archive"
            ) from err
        rows = {
            f"{name}_{split}.txt": s.shape for name, s in zip(UCI_SIGNALS, signals, strict=True)
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
        list(UCI_SIGNALS),
        50.0,
        f"uci-har:{root}",
    )


# ---------------------------------------------------------------- streams → windows (PAMAP2, CSV)
