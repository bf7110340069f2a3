"""Every source, from small fixture files written from the documented layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edgekit.config import DataConfig
from edgekit.data import load_source
from edgekit.errors import DataError


def test_bundled_basicmotions() -> None:
    windows = load_source("bundled:basicmotions")
    assert windows.X.shape == (80, 6, 100)
    assert windows.class_names == ["badminton", "running", "standing", "walking"]
    assert np.bincount(windows.y).tolist() == [20, 20, 20, 20]
    assert windows.official_test.sum() == 40
    assert "sktime" in windows.provenance["package"]


def write_ts(path: Path, series: list[tuple[np.ndarray, str]]) -> None:
    lines = ["# comment", "@problemName Toy", "@univariate false", "@data"]
    lines += [
        ":".join(",".join(f"{v:.4f}" for v in channel) for channel in x) + f":{label}"
        for x, label in series
    ]
    path.write_text("\n".join(lines) + "\n")


def test_ts_folder_with_train_and_test(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_ts(
        tmp_path / "Toy_TRAIN.ts", [(rng.normal(size=(2, 8)), "a"), (rng.normal(size=(2, 8)), "b")]
    )
    write_ts(tmp_path / "Toy_TEST.ts", [(rng.normal(size=(2, 8)), "b")])
    windows = load_source(f"ts:{tmp_path}")
    assert windows.X.shape == (3, 2, 8)
    assert windows.official_test.tolist() == [False, False, True]
    assert windows.y.tolist() == [0, 1, 1]


def write_uci(root: Path, subjects: list[int], labels: list[int]) -> None:
    root.mkdir(parents=True)
    (root / "activity_labels.txt").write_text("1 WALKING\n2 WALKING_UPSTAIRS\n3 SITTING\n")
    for split in ("train", "test"):
        signals = root / split / "Inertial Signals"
        signals.mkdir(parents=True)
        rng = np.random.default_rng(len(split))
        for kind in ("body_acc", "body_gyro", "total_acc"):
            for axis in "xyz":
                np.savetxt(
                    signals / f"{kind}_{axis}_{split}.txt", rng.normal(size=(len(labels), 128))
                )
        np.savetxt(root / split / f"y_{split}.txt", labels, fmt="%d")
        np.savetxt(root / split / f"subject_{split}.txt", subjects, fmt="%d")


def test_uci_har(tmp_path: Path) -> None:
    root = tmp_path / "UCI HAR Dataset"
    write_uci(root, [1, 1, 2], [1, 3, 2])
    windows = load_source(f"uci-har:{tmp_path}")
    assert windows.X.shape == (6, 9, 128)
    assert windows.class_names == ["walking", "walking_upstairs", "sitting"]
    assert windows.y.tolist() == [0, 2, 1, 0, 2, 1]
    assert windows.groups.tolist()[:3] == ["subject1", "subject1", "subject2"]
    assert windows.fs == 50.0


def pamap2_table(activities: list[int], columns: int = 54) -> np.ndarray:
    rng = np.random.default_rng(1)
    table = rng.normal(size=(len(activities), columns))
    table[:, 0] = np.arange(len(activities)) / 100
    table[:, 1] = activities
    table[::10, 2] = 100.0  # heart rate only every 10th row, NaN between
    table[np.arange(len(activities)) % 10 != 0, 2] = np.nan
    table[5, 4] = np.nan  # a wireless drop-out on hand acc x
    return table


def test_pamap2_windows_runs_and_fills_gaps(tmp_path: Path) -> None:
    activities = [0] * 20 + [1] * 50 + [4] * 45 + [0] * 5
    np.savetxt(tmp_path / "subject101.dat", pamap2_table(activities))
    np.savetxt(tmp_path / "subject102.dat", pamap2_table([4] * 40))
    windows = load_source(f"pamap2:{tmp_path}", DataConfig(window_length=20, window_stride=10))
    assert windows.class_names == ["lying", "walking"]
    assert windows.X.shape[1:] == (19, 20)  # 3 IMUs x (acc16 + gyro) + heart rate
    # subject101: lying 50 -> 4 windows, walking 45 -> 3; subject102: walking 40 -> 3
    assert np.bincount(windows.y).tolist() == [4, 6]
    assert sorted(set(windows.groups)) == ["subject101", "subject102"]
    assert np.isfinite(windows.X).all()  # heart rate and drop-outs were filled per subject


def test_pamap2_wrong_column_count(tmp_path: Path) -> None:
    np.savetxt(tmp_path / "subject101.dat", pamap2_table([1] * 30, columns=40))
    with pytest.raises(DataError, match="40 columns, expected 54"):
        load_source(f"pamap2:{tmp_path}")


def test_npy_with_groups(tmp_path: Path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((6, 3, 10), dtype=np.float64))
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 0, 1, 2]))
    np.save(tmp_path / "groups.npy", np.array(["a", "a", "b", "b", "c", "c"]))
    windows = load_source(f"npy:{tmp_path}")
    assert windows.X.dtype == np.float32 and windows.X.shape == (6, 3, 10)
    assert windows.class_names == ["0", "1", "2"]


def test_npy_wrong_dtype(tmp_path: Path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((2, 3, 10), dtype=bool))
    np.save(tmp_path / "y.npy", np.array([0, 1]))
    with pytest.raises(DataError, match="dtype bool"):
        load_source(f"npy:{tmp_path}")
    np.save(tmp_path / "X.npy", np.zeros((2, 3, 10), dtype=np.complex64))
    with pytest.raises(DataError, match="dtype complex64"):
        load_source(f"npy:{tmp_path}")


def test_csv_long_format(tmp_path: Path) -> None:
    rows = ["time,subject,activity,ax,ay"]
    for subject in ("s1", "s2"):
        for t in range(30):
            rows.append(f"{t},{subject},{'sit' if t < 15 else 'walk'},{t * 0.1},{-t * 0.1}")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    config = DataConfig(
        window_length=5, window_stride=5, csv_group_column="subject", csv_label_column="activity"
    )
    windows = load_source(f"csv:{tmp_path / 'data.csv'}", config)
    assert windows.channel_names == ["ax", "ay"]
    assert windows.X.shape == (12, 2, 5)  # 2 subjects x 2 labels x 3 windows
    assert windows.class_names == ["sit", "walk"]
    with pytest.raises(DataError, match="column 'group' not in"):
        load_source(f"csv:{tmp_path / 'data.csv'}")


def test_synthetic_options_and_edge_cases() -> None:
    windows = load_source("synthetic:n=40,length=127,channels=9,nan_fraction=0.01,flat_channels=1")
    assert windows.X.shape == (40, 9, 127)
    assert np.isnan(windows.X).any()
    flat = windows.X[:, -1]
    assert np.all(flat[np.isfinite(flat)] == 0)
    assert np.array_equal(load_source("synthetic:n=8").X, load_source("synthetic:n=8").X)
    with pytest.raises(DataError, match="unknown option 'nosie'"):
        load_source("synthetic:nosie=1")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("pamap2:/definitely/missing", "does not exist"),
        ("s3:bucket", "unknown data source 's3'"),
        ("bundled:ucihar", "unknown bundled data set"),
        ("synthetic:length=1", "T=1 is < 2"),
    ],
)
def test_source_errors(spec: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_source(spec)


def test_empty_csv(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_source(f"csv:{tmp_path / 'empty.csv'}")
