"""Every source, from small fixture files written from the documented layouts."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from edgekit.config import DataConfig
from edgekit.data import load_source
from edgekit.data.lengths import target_length, unchanged_length
from edgekit.errors import DataError


def test_bundled_basicmotions() -> None:
    windows = load_source("bundled:basicmotions")
    assert windows.X.shape == (80, 6, 100)
    assert windows.class_names == ["badminton", "running", "standing", "walking"]
    assert np.bincount(windows.y).tolist() == [20, 20, 20, 20]
    assert windows.official_test.sum() == 40
    assert "sktime" in windows.provenance["package"]
    assert windows.channel_names == ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
    assert windows.fs == 10.0 and windows.source == "bundled:basicmotions"


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
    assert windows.channel_names == ["ch0", "ch1"] and windows.fs == 1.0


def write_uci(root: Path, subjects: list[int], labels: list[int]) -> None:
    """Both splits of the UCI-HAR layout with three activities."""
    root.mkdir(parents=True)
    (root / "activity_labels.txt").write_text("1 WALKING\n2 WALKING_UPSTAIRS\n3 SITTING\n")
    for split in ("train", "test"):
        write_uci_split(root, split, labels, subjects=subjects)


def test_uci_har(tmp_path: Path) -> None:
    root = tmp_path / "UCI HAR Dataset"
    write_uci(root, [1, 1, 2], [1, 3, 2])
    windows = load_source(f"uci-har:{tmp_path}")
    assert windows.X.shape == (6, 9, 128)
    assert windows.class_names == ["walking", "walking_upstairs", "sitting"]
    assert windows.y.tolist() == [0, 2, 1, 0, 2, 1]
    assert windows.groups.tolist()[:3] == ["subject1", "subject1", "subject2"]
    assert windows.fs == 50.0


def write_uci_split(
    root: Path, split: str, labels: list[int], samples: int = 128, subjects: list[int] | None = None
) -> None:
    """One split of the UCI-HAR layout; window i of signal file k holds 100 k + i; every window is
    subject 7's unless `subjects` says otherwise."""
    signals = root / split / "Inertial Signals"
    signals.mkdir(parents=True)
    for k, name in enumerate(
        f"{kind}_{axis}" for kind in ("body_acc", "body_gyro", "total_acc") for axis in "xyz"
    ):
        rows = 100 * k + np.arange(len(labels))[:, None] * np.ones((1, samples))
        np.savetxt(signals / f"{name}_{split}.txt", rows)
    np.savetxt(root / split / f"y_{split}.txt", labels, fmt="%d")
    np.savetxt(root / split / f"subject_{split}.txt", subjects or [7] * len(labels), fmt="%d")


def test_uci_har_splits_of_any_size_and_either_split_alone(tmp_path: Path) -> None:
    (tmp_path / "activity_labels.txt").write_text("1 WALKING\n2 SITTING\n")
    write_uci_split(tmp_path, "test", [2])  # one window: a 1-row file
    alone = load_source(f"uci-har:{tmp_path}")
    assert alone.X.shape == (1, 9, 128) and alone.y.tolist() == [1]
    assert alone.X[0, :, 0].tolist() == [100 * k for k in range(9)]
    assert alone.channel_names[3] == "body_gyro_x" and alone.groups.tolist() == ["subject7"]
    write_uci_split(tmp_path, "train", [1, 2, 1])
    both = load_source(f"uci-har:{tmp_path}")
    assert both.y.tolist() == [0, 1, 0, 1] and both.X[:, 0, 0].tolist() == [0, 1, 2, 0]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda r: (r / "train" / "y_train.txt").unlink(),
            "uci-har: {root}/train/y_train.txt is missing; the folder layout is incomplete",
        ),
        (
            lambda r: [(r / "train" / f"{k}_train.txt").unlink() for k in ("subject", "y")],
            "uci-har: {root}/train/y_train.txt is missing",  # the first missing one
        ),
        (
            lambda r: (r / "test" / "y_test.txt").write_text("1\n9\n"),
            "uci-har: y_test.txt has labels [9] not in activity_labels.txt",
        ),
        (
            lambda r: (r / "test" / "Inertial Signals" / "body_acc_y_test.txt").unlink(),
            "uci-har: {root}/test/Inertial Signals/body_acc_y_test.txt is missing",
        ),
        (
            lambda r: (r / "train" / "y_train.txt").write_text("1\n2\n"),
            "uci-har: the train files disagree in rows or samples",
        ),
        (
            lambda r: np.savetxt(
                r / "train" / "Inertial Signals" / "total_acc_z_train.txt", np.ones((3, 127))
            ),
            "uci-har: the train files disagree in rows or samples",
        ),
        (
            lambda r: (r / "train" / "subject_train.txt").write_text("1\nx\n3\n"),
            "uci-har: malformed numbers in the train split",
        ),
        (
            lambda r: (r / "train" / "y_train.txt").write_text("3\n4\n5\n"),
            "uci-har: y_train.txt has labels [3, 4, 5] not in activity_labels.txt",
        ),
    ],
)
def test_uci_har_damaged_splits_are_refused(tmp_path: Path, damage, message: str) -> None:
    (tmp_path / "activity_labels.txt").write_text("1 WALKING\n2 SITTING\n")
    write_uci_split(tmp_path, "train", [1, 2, 1])
    write_uci_split(tmp_path, "test", [2, 1])  # the test split has its own row count
    damage(tmp_path)
    with pytest.raises(DataError, match=re.escape(message.format(root=tmp_path))):
        load_source(f"uci-har:{tmp_path}")


def test_uci_har_lists_at_most_five_unknown_labels(tmp_path: Path) -> None:
    (tmp_path / "activity_labels.txt").write_text("1 WALKING\n")
    write_uci_split(tmp_path, "train", [3, 4, 5, 6, 7, 8])
    with pytest.raises(DataError, match=re.escape("has labels [3, 4, 5, 6, 7] not in")):
        load_source(f"uci-har:{tmp_path}")


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


def test_pamap2_reads_the_documented_columns_and_activity_names(tmp_path: Path) -> None:
    from edgekit.data.sources.pamap2 import PAMAP2_ACTIVITIES

    ids = list(PAMAP2_ACTIVITIES)
    table = np.tile(np.arange(54, dtype=float), (20 * len(ids), 1))  # column c holds c
    table[:, 0] = np.arange(len(table)) / 100
    table[:, 1] = np.repeat(ids, 20)
    np.savetxt(tmp_path / "subject101.dat", table)
    windows = load_source(f"pamap2:{tmp_path}", DataConfig(window_length=20, window_stride=20))
    # acc ±16 g x/y/z and gyro x/y/z of hand, chest and ankle (3 + 17 k + 1..3, 7..9), heart rate
    expected = [4, 5, 6, 10, 11, 12, 21, 22, 23, 27, 28, 29, 38, 39, 40, 44, 45, 46, 2]
    assert windows.X[0, :, 0].tolist() == expected
    assert windows.channel_names[:3] == ["hand_acc_x", "hand_acc_y", "hand_acc_z"]
    assert windows.channel_names[3] == "hand_gyro_x" and windows.channel_names[-1] == "heart_rate"
    assert windows.class_names == [
        "lying", "sitting", "standing", "walking", "running", "cycling", "nordic_walking",
        "watching_tv", "computer_work", "car_driving", "ascending_stairs", "descending_stairs",
        "vacuum_cleaning", "ironing", "folding_laundry", "house_cleaning", "playing_soccer",
        "rope_jumping",
    ]  # fmt: skip
    assert ids == [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 24]
    assert windows.y.tolist() == list(range(18)) and windows.fs == 100.0


def test_pamap2_a_pause_longer_than_1_5_periods_ends_a_run(tmp_path: Path) -> None:
    steps = np.full(39, 0.01)
    steps[9], steps[29] = 0.0149, 0.0151  # under and over 1.5 sample periods
    table = pamap2_table([1] * 40)
    table[:, 0] = np.concatenate([[0.0], np.cumsum(steps)])
    np.savetxt(tmp_path / "subject101.dat", table)
    windows = load_source(f"pamap2:{tmp_path}", DataConfig(window_length=10, window_stride=10))
    assert windows.starts.tolist() == [0, 10, 20, 30]  # the gap before row 30 ends nothing early
    windows = load_source(f"pamap2:{tmp_path}", DataConfig(window_length=10, window_stride=5))
    assert windows.starts.tolist() == [0, 5, 10, 15, 20, 30]  # no window across row 30


def test_pamap2_gaps_and_heart_rate_are_filled_from_their_neighbours() -> None:
    from edgekit.data.sources.pamap2 import fill_gaps, fill_heart_rate

    assert fill_gaps(np.array([np.nan, 1.0, np.nan, 3.0, np.nan])).tolist() == [1, 1, 2, 3, 3]
    assert np.isnan(fill_gaps(np.full(3, np.nan))).all()  # a sensor dead all along stays missing
    late = np.full(60, np.nan)
    late[30], late[45] = 80.0, 90.0  # the first reading comes late: held backwards too
    filled = fill_heart_rate(late)
    assert filled[:30].tolist() == [80.0] * 30 and filled[-5:].tolist() == [90.0] * 5
    assert np.isnan(fill_heart_rate(np.full(3, np.nan))).all()
    burst = np.full(60, 70.0)
    burst[20:40] = 120.0  # 20 readings: a 25-sample median keeps exactly those rows
    assert np.flatnonzero(fill_heart_rate(burst) == 120.0).tolist() == list(range(20, 40))


def test_pamap2_reads_the_subject_files_of_a_folder_else_every_dat_file(tmp_path: Path) -> None:
    np.savetxt(tmp_path / "subject101.dat", pamap2_table([1] * 40))
    (tmp_path / "notes.dat").write_text("not a recording\n")
    assert load_source(f"pamap2:{tmp_path}", DataConfig(window_length=20)).groups[0] == "subject101"
    (tmp_path / "subject101.dat").rename(tmp_path / "walk_only.dat")
    (tmp_path / "notes.dat").unlink()
    assert load_source(f"pamap2:{tmp_path}", DataConfig(window_length=20)).groups[0] == "walk_only"


def test_pamap2_non_numbers_are_refused(tmp_path: Path) -> None:
    (tmp_path / "subject101.dat").write_text("0.0 1 abc\n")
    with pytest.raises(DataError, match="pamap2: subject101.dat has non-numeric values"):
        load_source(f"pamap2:{tmp_path}")


def test_pamap2_wrong_column_count(tmp_path: Path) -> None:
    np.savetxt(tmp_path / "subject101.dat", pamap2_table([1] * 30, columns=40))
    with pytest.raises(DataError, match="40 columns, expected 54"):
        load_source(f"pamap2:{tmp_path}")
    np.savetxt(tmp_path / "subject101.dat", pamap2_table([1] * 30, columns=60))
    with pytest.raises(DataError, match="60 columns, expected 54"):
        load_source(f"pamap2:{tmp_path}")


def test_npy_with_groups(tmp_path: Path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((6, 3, 10), dtype=np.float64))
    np.save(tmp_path / "y.npy", np.array([0, 1, 2, 0, 1, 2]))
    np.save(tmp_path / "groups.npy", np.array(["a", "a", "b", "b", "c", "c"]))
    windows = load_source(f"npy:{tmp_path}")
    assert windows.X.dtype == np.float32 and windows.X.shape == (6, 3, 10)
    assert windows.class_names == ["0", "1", "2"]


def test_npy_labels_saved_as_whole_floats_are_integers(tmp_path: Path) -> None:
    np.save(tmp_path / "X.npy", np.zeros((4, 1, 10), dtype=np.float32))
    np.save(tmp_path / "y.npy", np.array([2.0, 0.0, 10.0, 0.0]))  # as pandas saves them
    windows = load_source(f"npy:{tmp_path}")
    assert windows.class_names == ["0", "2", "10"] and windows.y.tolist() == [1, 0, 2, 0]


def npy_set(folder: Path, y: np.ndarray, n_channels: int = 2, **extra: np.ndarray) -> str:
    """X.npy of len(y) windows (window i holds the value i), y.npy, and NAME.npy for each extra."""
    X = np.arange(len(y), dtype=np.float64)[:, None, None] * np.ones((1, n_channels, 8))
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    for name, value in extra.items():
        np.save(folder / f"{name}.npy", value)
    return f"npy:{folder}"


def test_npy_folder_gives_windows_labels_groups_starts_and_names(tmp_path: Path) -> None:
    starts = np.array([0, 8, 16, 0], np.int32)
    windows = load_source(npy_set(tmp_path, np.array([10, 2, 1, 2]), starts=starts))
    assert windows.class_names == ["1", "2", "10"]  # numbers in their own order, not as text
    assert windows.y.tolist() == [2, 1, 0, 1]
    assert windows.X.dtype == np.float32 and windows.X[:, 0, 0].tolist() == [0, 1, 2, 3]
    assert windows.groups.tolist() == ["win000000", "win000001", "win000002", "win000003"]
    assert windows.starts is not None and windows.starts.tolist() == [0, 8, 16, 0]
    assert windows.channel_names == ["ch0", "ch1"] and windows.fs == 1.0
    assert windows.source == f"npy:{tmp_path}"


def test_npy_string_labels_name_their_classes_and_ignore_classes_txt(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    labels = np.array(["sit", "lying", "sit", "walk"])  # lengths differ: sorted as text
    windows = load_source(npy_set(tmp_path, labels))
    assert windows.class_names == ["lying", "sit", "walk"] and windows.y.tolist() == [1, 0, 1, 2]


def test_npy_classes_txt_names_integer_labels(tmp_path: Path) -> None:
    (tmp_path / "classes.txt").write_text("walk\n\n  run \nsit\nlie\n")  # blanks skipped, stripped
    windows = load_source(npy_set(tmp_path, np.array([0, 2, 3, 1])))
    assert windows.class_names == ["walk", "run", "sit", "lie"] and windows.y.tolist() == [
        0,
        2,
        3,
        1,
    ]
    np.save(tmp_path / "y.npy", np.array([1, 2, 3, 1]))  # a named class without windows is fine
    assert load_source(f"npy:{tmp_path}").y.tolist() == [1, 2, 3, 1]
    for labels, shown in [([0, 4, 1, 2], "0..4"), ([0, 6, 1, 2], "0..6"), ([-1, 0, 1, 2], "-1..2")]:
        np.save(tmp_path / "y.npy", np.array(labels))
        with pytest.raises(DataError) as info:
            load_source(f"npy:{tmp_path}")
        assert str(info.value) == (
            f"npy: y.npy holds labels {shown} but classes.txt names 4 classes (labels 0..3); "
            "one name per line"
        )


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"X": np.zeros((2, 1, 2, 8))}, "npy: X.npy must be (N, C, T), got shape (2, 1, 2, 8)"),
        (
            {"y": np.array([[0, 1]])},
            "npy: y.npy must be 1-D integer or string labels, got int64 (1, 2)",
        ),
        ({"y": np.array(1)}, "npy: y.npy must be 1-D integer or string labels, got int64 ()"),
        (
            {"y": np.array([0.0, np.nan])},
            "npy: y.npy must be 1-D integer or string labels, got float64 (2,)",
        ),
        (
            {"y": np.array([b"a", b"b"])},
            "npy: y.npy must be 1-D integer or string labels, got |S1 (2,)",
        ),
        (
            {"starts": np.array([0, 8, 16])},
            "npy: starts.npy must be one integer per window, got int64 (3,)",
        ),
        (
            {"starts": np.array([0])},
            "npy: starts.npy must be one integer per window, got int64 (1,)",
        ),
        (
            {"starts": np.array([0.0, 8.0])},
            "npy: starts.npy must be one integer per window, got float64 (2,)",
        ),
    ],
)
def test_npy_arrays_of_the_wrong_shape_or_kind_are_refused(
    tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    npy_set(tmp_path, np.array([0, 1]))
    for name, value in arrays.items():
        np.save(tmp_path / f"{name}.npy", value)
    with pytest.raises(DataError) as info:
        load_source(f"npy:{tmp_path}")
    assert str(info.value) == message


def test_npy_files_that_are_not_arrays_say_why(tmp_path: Path) -> None:
    npy_set(tmp_path, np.array([0, 1]))
    (tmp_path / "X.npy").write_bytes("\ufeffgroup,label\n".encode("utf-16"))  # text, bytes > 0x93
    with pytest.raises(
        DataError, match=r"^npy: X.npy is not a NumPy .npy file; write it with np.save$"
    ):
        load_source(f"npy:{tmp_path}")
    np.save(tmp_path / "X.npy", np.zeros((2, 1, 8), np.float32))
    (tmp_path / "X.npy").write_bytes((tmp_path / "X.npy").read_bytes()[:-4])
    with pytest.raises(DataError) as info:
        load_source(f"npy:{tmp_path}")
    assert str(info.value) == (
        "npy: X.npy can't be read as a plain array (mmap length is greater than file size); save "
        "numbers or strings with np.save"
    )


def test_npy_x_is_mapped_from_disk_and_the_small_arrays_are_read(tmp_path: Path) -> None:
    from edgekit.data.sources.tabular import load_array

    np.save(tmp_path / "a.npy", np.zeros(3, np.float32))
    assert isinstance(load_array(tmp_path / "a.npy", mmap=True), np.memmap)
    assert not isinstance(load_array(tmp_path / "a.npy"), np.memmap)


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
    assert windows.class_names == ["sit", "walk"] and windows.fs == 1.0
    with pytest.raises(DataError, match="column 'group' not in"):
        load_source(f"csv:{tmp_path / 'data.csv'}")


CSV_DIALECTS = {
    "semicolons": lambda text: text.replace(",", ";"),
    "a space after each separator": lambda text: text.replace(",", "; "),
    "tabs": lambda text: text.replace(",", "\t"),
    "a byte-order mark (Excel's CSV UTF-8)": lambda text: "\ufeff" + text,
    "Windows line ends": lambda text: text.replace("\n", "\r\n"),
    "blank lines": lambda text: text.replace("\nwalk,s2,", "\n\n  \nwalk,s2,", 1) + "\n\n",
    "empty spreadsheet rows": lambda text: text.replace(
        "\nwalk,s2,", "\n,,,\n , ,\t,\nwalk,s2,", 1
    ),
    "a comma after every row": lambda text: text.replace("\n", ",\n"),
}


@pytest.mark.parametrize("dialect", CSV_DIALECTS)
def test_csv_from_spreadsheets_reads_the_same(tmp_path: Path, dialect: str) -> None:
    rows = ["activity,subject,ax,ay"] + [
        f"{'sit' if t < 15 else 'walk'},{subject},{t * 0.1:.1f},{-t * 0.1:.1f}"
        for subject in ("s1", "s2")
        for t in range(30)
    ]
    text = "\n".join(rows) + "\n"
    (tmp_path / "plain.csv").write_text(text)
    (tmp_path / "other.csv").write_bytes(CSV_DIALECTS[dialect](text).encode())
    config = DataConfig(
        window_length=5, window_stride=5, csv_group_column="subject", csv_label_column="activity"
    )
    plain = load_source(f"csv:{tmp_path / 'plain.csv'}", config)
    other = load_source(f"csv:{tmp_path / 'other.csv'}", config)
    assert other.channel_names == plain.channel_names == ["ax", "ay"]
    assert np.array_equal(other.X, plain.X) and np.array_equal(other.y, plain.y)
    assert np.array_equal(other.groups, plain.groups) and other.class_names == plain.class_names
    assert np.array_equal(other.starts, plain.starts)


def test_an_empty_csv_cell_is_a_missing_value(tmp_path: Path) -> None:
    rows = ["group,label,x"] + [f"s1,a,{t}" for t in range(4)] + ["s1,a,"]
    (tmp_path / "a.csv").write_text("\n".join(rows + [f"s1,a,{t}" for t in range(5, 8)]) + "\n")
    windows = load_source(f"csv:{tmp_path / 'a.csv'}", DataConfig(window_length=8))
    assert np.isnan(windows.X[0, 0, 4]) and np.isfinite(np.delete(windows.X[0, 0], 4)).all()


def test_csv_errors_name_the_file_line_past_blank_and_quoted_lines(tmp_path: Path) -> None:
    text = 'group,label,x\ns1,a,1\n\n,,\n"s\n2",a,2\n  \ns1,a,x1\n'  # the bad value: line 8
    (tmp_path / "a.csv").write_text(text)
    with pytest.raises(DataError, match=r"line 8 of a.csv, column 'x': 'x1' is not a number"):
        load_source(f"csv:{tmp_path / 'a.csv'}")


@pytest.mark.parametrize(
    ("row", "fields", "hint"),
    [
        ("s1,a", 2, ""),  # a lost column: no decimal comma could cause it
        ("s1,a,1,5", 4, "; a decimal comma splits a number in two"),
    ],
)
def test_csv_rows_of_another_width_are_refused_with_the_likely_cause(
    tmp_path: Path, row: str, fields: int, hint: str
) -> None:
    (tmp_path / "a.csv").write_text(f"group,label,x\ns1,a,1\n{row}\n")
    with pytest.raises(DataError) as info:
        load_source(f"csv:{tmp_path / 'a.csv'}")
    assert str(info.value) == (
        f"csv: line 3 of a.csv has {fields} fields, the header 3 (','-separated); every row needs "
        f"one value per column{hint}"
    )


def test_csv_with_a_header_and_no_rows_is_empty(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("group,label,x\n\n,,\n")
    with pytest.raises(DataError) as info:
        load_source(f"csv:{tmp_path / 'a.csv'}")
    assert (
        str(info.value)
        == f"csv: {tmp_path / 'a.csv'} is empty; expected a header and one row per sample"
    )


def test_a_long_bad_csv_value_is_shown_cut_to_40_characters(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("group,label,x\ns1,a," + "q" * 30 + "0123456789XYZ\n")
    with pytest.raises(DataError) as info:
        load_source(f"csv:{tmp_path / 'a.csv'}")
    assert f"column 'x': '{'q' * 30}0123456789' is not a number" in str(info.value)


def test_a_stream_is_cut_into_windows_inside_each_run_of_one_label() -> None:
    from edgekit.data.sources.common import window_stream

    signals = np.arange(13)[:, None] * np.array([1, 10])  # (T, C): row t holds t and 10 t
    labels = np.array([1, 1, 1, 1, 1, 2, 0, 0, 0, 0, 1, 1, 1])  # runs of 5, 1, 4 and 3 rows
    windows, window_labels, starts = window_stream(signals, labels, 3, 1)
    assert starts == [0, 1, 2, 6, 7, 10] and window_labels == [1, 1, 1, 0, 0, 1]
    assert windows[1].tolist() == [[1, 2, 3], [10, 20, 30]]  # (C, length)
    assert window_stream(signals, labels, 3, 2)[2] == [0, 2, 6, 10]
    assert window_stream(signals, labels, 3, 1, skip_label=0)[2] == [0, 1, 2, 10]
    assert window_stream(signals, labels, 3, 1, skip_label=2)[2] == [0, 1, 2, 6, 7, 10]
    gap_before_row_2 = np.zeros(13, bool)
    gap_before_row_2[2] = True
    assert window_stream(signals, labels, 3, 1, breaks=gap_before_row_2)[2] == [2, 6, 7, 10]


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
        ("bundled:arrowhead", "unknown bundled data set"),
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


def test_pamap2_windows_never_straddle_a_removed_transient_or_a_gap(tmp_path: Path) -> None:
    """300 walking rows, 100 transient rows, 300 walking rows: 6 windows of 100 at stride 100,
    not 8; and a timestamp gap inside one activity ends its run as well."""
    activities = [4] * 300 + [0] * 100 + [4] * 300 + [1] * 250
    table = pamap2_table(activities)
    table[700:, 0] += 5.0  # the sensor stopped for 5 s before the lying rows' second half...
    table[825:, 0] += 5.0  # ...and again inside the lying activity
    np.savetxt(tmp_path / "subject101.dat", table)
    windows = load_source(f"pamap2:{tmp_path}", DataConfig(window_length=100, window_stride=100))
    walking = windows.class_names.index("walking")
    assert int((windows.y == walking).sum()) == 6
    assert int((windows.y != walking).sum()) == 2  # 125 + 125 lying rows: one window each side
    starts = windows.starts
    assert starts is not None
    for start in starts:  # no window covers a transient row or a gap
        rows = np.arange(start, start + 100)
        assert (np.array(activities)[rows] != 0).all()
        assert np.all(np.diff(table[rows, 0]) < 0.02)


def test_pamap2_heart_rate_held_and_median_smoothed(tmp_path: Path) -> None:
    activities = [4] * 200
    table = pamap2_table(activities)
    table[:, 2] = np.nan
    table[3::10, 2] = 100.0
    table[53, 2] = 180.0  # one spurious reading: the 25-sample median removes it
    np.savetxt(tmp_path / "subject101.dat", table)
    windows = load_source(f"pamap2:{tmp_path}", DataConfig(window_length=200, window_stride=200))
    heart_rate = windows.X[0, windows.channel_names.index("heart_rate")]
    assert heart_rate[0] == 100.0  # before the first reading: back-filled
    assert np.all(heart_rate == 100.0)  # held between readings, outlier smoothed away


def test_pamap2_channel_groups_select_a_sensor(tmp_path: Path) -> None:
    from edgekit.data import prepare_data

    activities = ([1] * 100 + [4] * 100) * 4
    for subject in range(101, 105):
        np.savetxt(tmp_path / f"subject{subject}.dat", pamap2_table(activities))
    config = DataConfig(
        source=f"pamap2:{tmp_path}", window_length=20, window_stride=20,
        channels=("imu_ankle", "heart_rate"),
    )  # fmt: skip
    prepared = prepare_data(config)
    assert prepared.stats["channel_names"] == [
        *(f"ankle_{k}_{a}" for k in ("acc", "gyro") for a in "xyz"), "heart_rate",
    ]  # fmt: skip
    assert prepared.input_shape[0] == 7
    assert prepared.stats["channel_selection"] == ["imu_ankle", "heart_rate"]
    glob = prepare_data(
        DataConfig(
            source=config.source, window_length=20, window_stride=20, channels=("hand_acc_*",)
        )
    )
    assert glob.stats["channel_names"] == ["hand_acc_x", "hand_acc_y", "hand_acc_z"]
    with pytest.raises(DataError, match="did you mean 'imu_hand'"):
        prepare_data(DataConfig(source=config.source, window_length=20, channels=("imu_hnd",)))


def as_read(text: str) -> str:
    """The string a YAML file or the command line gives: built at run time, not an interned
    literal, so only `==` matches it."""
    return "".join(list(text))


# policy, requested target, window length, (changed, shortened, lengthened) of the 4 series
LENGTH_CASES = [("tile", 0, 10, (4, 0, 4)), ("pad", 0, 10, (4, 0, 4)),
                ("truncate", 0, 4, (4, 4, 0)), ("resample", 0, 6, (2, 1, 1)),
                ("pad", 6, 6, (2, 1, 1)), ("tile", 6, 6, (2, 1, 1)),
                ("truncate", 6, 6, (2, 1, 1))]  # fmt: skip


@pytest.mark.parametrize(("policy", "target", "expected_length", "changes"), LENGTH_CASES)
def test_unequal_lengths_follow_the_policy(
    tmp_path: Path, policy: str, target: int, expected_length: int, changes: tuple[int, ...]
) -> None:
    lengths = [5, 9, 6]  # median 6, max 9 -> 10 (even), min 5 -> 4 (even)
    write_ts(
        tmp_path / "Toy_TRAIN.ts",
        [(np.arange(n * 2, dtype=float).reshape(2, n), f"c{n % 2}") for n in lengths],
    )
    write_ts(tmp_path / "Toy_TEST.ts", [(np.ones((2, 6)), "c0")])  # all: 5, 9, 6, 6
    config = DataConfig(length_policy=as_read(policy), target_length=target)
    windows = load_source(f"ts:{tmp_path}", config)
    assert windows.X.shape == (4, 2, expected_length)
    note = windows.notes["length"]
    assert note["policy"] == policy and note["target"] == expected_length
    assert (note["source_min"], note["source_median"], note["source_max"]) == (5, 6.0, 9)
    assert (note["changed"], note["shortened"], note["lengthened"]) == changes
    first, longest = windows.X[0, 0], windows.X[1, 0]  # the series 0..4 and 0..8 of channel 0
    np.testing.assert_allclose(windows.X[0, 1], first + 5)  # its channel 1 is channel 0 + 5
    if target:  # an explicit shorter target keeps the start of longer series under tile and pad
        assert longest.tolist() == list(range(6))
    if policy == "tile":
        assert first.tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4][: len(first)]  # repeated
    elif policy == "pad":
        assert first[:5].tolist() == [0, 1, 2, 3, 4] and np.all(first[5:] == 4)  # held last value
    elif policy == "truncate":  # a series shorter than an explicit target holds its last value
        assert first.tolist() == [0, 1, 2, 3, 4, 4][: len(first)]
    else:
        assert first[0] == 0 and first[-1] == 4 and np.all(np.diff(first) > 0)  # same span
        assert windows.X[2, 0].tolist() == list(range(6))  # a series of the target length as is


@pytest.mark.parametrize(
    ("lengths", "policy", "expected"),
    [([9, 13], "truncate", 8), ([1, 3], "truncate", 2), ([9, 13], "tile", 14), ([9, 13], "pad", 14),
     ([5, 9, 6], "resample", 6), ([5, 9, 6, 8], "resample", 8)],
)  # fmt: skip
def test_each_policy_picks_its_even_target_length(
    lengths: list[int], policy: str, expected: int
) -> None:
    """Truncate: the shortest, rounded down to even (2 at least); tile and pad: the longest, and
    resample the median (7 here for 4 series), rounded up."""
    assert target_length(np.array(lengths), as_read(policy), 0) == expected
    assert target_length(np.array(lengths), as_read(policy), 4) == 4


@pytest.mark.parametrize("policy", ["tile", "truncate", "resample", "error"])
def test_equal_lengths_are_kept_unless_a_target_is_set(tmp_path: Path, policy: str) -> None:
    write_ts(tmp_path / "Toy_TRAIN.ts", [(np.ones((2, 8)), "a"), (np.zeros((2, 8)), "b")])
    windows = load_source(f"ts:{tmp_path}", DataConfig(length_policy=as_read(policy)))
    assert windows.X.shape == (2, 2, 8)
    assert windows.notes["length"] == unchanged_length(8, policy)
    if policy == "error":
        return
    cut = load_source(f"ts:{tmp_path}", DataConfig(length_policy=policy, target_length=6))
    assert cut.X.shape == (2, 2, 6) and cut.notes["length"]["changed"] == 2


def test_ts_missing_values_inside_are_nan_and_at_the_end_padding(tmp_path: Path) -> None:
    """The UEA archive pads shorter series with '?': cut off, they leave a series of its own
    length; a '?' between values is a missing value for data.nan_strategy."""
    (tmp_path / "Toy_TRAIN.ts").write_text(
        "@problemName Toy\n@missing true\n@data\n"
        "1,?,3,4,?,?:5,6,7,8,?,?:a\n"  # padded to 6: 4 values, the second missing in channel 0
        "1,2,3,4,5,6:1,2,3,4,5,?:b\n"  # channel 1's last value alone is missing: kept
    )
    windows = load_source(f"ts:{tmp_path}", DataConfig(length_policy="pad"))
    assert windows.notes["length"]["source_min"] == 4 and windows.X.shape == (2, 2, 6)
    assert np.isnan(windows.X[0, 0, 1]) and np.isnan(windows.X[1, 1, 5])
    assert windows.X[0, 0, 4:].tolist() == [4.0, 4.0] and windows.X[0, 1].tolist()[:4] == [
        5,
        6,
        7,
        8,
    ]


@pytest.mark.parametrize(
    ("header", "message"),
    [("@timeStamps true", "series with timestamps are not supported"),
     ("@classLabel false", r"the file has no class labels \(@classlabel false\)"),
     ("@targetLabel true", "the file has no class labels"),
     ("@classLabel false 1 2", r"the file has no class labels \(@classlabel false\); ")],
)  # fmt: skip
def test_ts_files_edgekit_cannot_classify_are_refused(
    tmp_path: Path, header: str, message: str
) -> None:
    (tmp_path / "Toy_TRAIN.ts").write_text(f"@problemName Toy\n{header}\n@data\n1,2,3:a\n")
    with pytest.raises(DataError, match=f"Toy_TRAIN.ts:2: {message}"):
        load_source(f"ts:{tmp_path}")


def test_ts_comments_blank_lines_and_label_tags_of_classification_files_are_read(
    tmp_path: Path,
) -> None:
    (tmp_path / "Toy_TRAIN.ts").write_text(
        "# made by hand\n@problemName Toy\n@classLabel true a b\n@targetLabel false\n@data\n"
        "1,2,3:4,5,6:a\n\n# a comment among the series\n  \n7,8,9:1,2,3:b\n"
    )
    windows = load_source(f"ts:{tmp_path}")
    assert windows.X.shape == (2, 2, 3) and windows.X[1, 0].tolist() == [7, 8, 9]
    assert windows.class_names == ["a", "b"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["1,2,3:4,5:a"], "Toy_TRAIN.ts:2: the channels of one series differ in length"),
        (["1,x,3:a"], "Toy_TRAIN.ts:2: not a numeric .ts series"),
        (["1,2:3,4:a", "1,2:b"], "Toy_TRAIN.ts: series have different numbers of channels"),
        ([], "Toy_TRAIN.ts: no series after @data"),
    ],
)
def test_ts_series_that_do_not_fit_together_are_refused(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    (tmp_path / "Toy_TRAIN.ts").write_text("@data\n" + "".join(f"{line}\n" for line in lines))
    with pytest.raises(DataError, match=re.escape(message)):
        load_source(f"ts:{tmp_path}")


def test_ts_files_of_one_set_need_the_same_channels(tmp_path: Path) -> None:
    write_ts(tmp_path / "Toy_TRAIN.ts", [(np.ones((2, 4)), "a"), (np.zeros((2, 4)), "b")])
    write_ts(tmp_path / "Toy_TEST.ts", [(np.ones((3, 4)), "a")])
    with pytest.raises(DataError, match=f"ts:{re.escape(str(tmp_path))}: the files have different"):
        load_source(f"ts:{tmp_path}")


def test_the_bundled_set_comes_from_aeon_without_sktime_and_never_from_missing_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.metadata
    from pathlib import PurePosixPath

    from edgekit.data.sources.ts import locate_basicmotions

    real = locate_basicmotions()[0]
    names = [PurePosixPath(p.name) for p in real]

    class Wheel:
        version = "9.9"

        def __init__(self, folder: Path) -> None:
            self.folder, self.files = folder, names

        def locate_file(self, name: PurePosixPath) -> Path:
            return self.folder / str(name)

    def installed(wheels: dict[str, Wheel]):
        def distribution(name: str) -> Wheel:
            if name not in wheels:
                raise importlib.metadata.PackageNotFoundError(name)
            return wheels[name]

        return distribution

    monkeypatch.setattr(
        importlib.metadata, "distribution", installed({"aeon": Wheel(real[0].parent)})
    )
    assert locate_basicmotions() == (real, "aeon==9.9")
    monkeypatch.setattr(importlib.metadata, "distribution", installed({"sktime": Wheel(tmp_path)}))
    with pytest.raises(DataError, match="needs the sktime \\(or aeon\\) package"):
        locate_basicmotions()  # listed in the wheel's RECORD, gone from the disk
    train_only = Wheel(real[0].parent)
    train_only.files = [name for name in names if name.name.endswith("_TRAIN.ts")]
    monkeypatch.setattr(importlib.metadata, "distribution", installed({"sktime": train_only}))
    with pytest.raises(DataError, match="needs the sktime"):
        locate_basicmotions()


def test_a_ts_series_of_missing_values_only_is_refused(tmp_path: Path) -> None:
    (tmp_path / "Toy_TRAIN.ts").write_text("@data\n1,2:3,4:a\n?,?:?,?:b\n")
    with pytest.raises(DataError, match="Toy_TRAIN.ts:3: the series holds no value"):
        load_source(f"ts:{tmp_path}")


def test_a_single_series_is_one_window_of_its_length(tmp_path: Path) -> None:
    write_ts(tmp_path / "Toy_TRAIN.ts", [(np.ones((3, 7)), "a")])
    windows = load_source(f"ts:{tmp_path}")
    assert windows.X.shape == (1, 3, 7) and windows.notes["length"] == unchanged_length(7, "tile")


def test_unequal_lengths_refused_under_error_policy(tmp_path: Path) -> None:
    write_ts(tmp_path / "Toy_TRAIN.ts", [(np.ones((1, 5)), "a"), (np.ones((1, 8)), "b")])
    with pytest.raises(DataError, match="unequal lengths .*data.length_policy"):
        load_source(f"ts:{tmp_path}", DataConfig(length_policy=as_read("error")))


SKTIME_SETS = ["BasicMotions", "GunPoint", "ArrowHead", "OSULeaf", "ACSF1", "ItalyPowerDemand",
               "JapaneseVowels", "PLAID"]  # fmt: skip


def sktime_set(name: str) -> Path:
    import importlib.metadata

    distribution = importlib.metadata.distribution("sktime")
    return Path(str(distribution.locate_file(f"sktime/datasets/data/{name}")))


@pytest.mark.parametrize("name", SKTIME_SETS)
def test_every_accuracy_reference_set_loads_with_its_official_split(name: str) -> None:
    """shared/reference/accuracy.md: all eight sets, unequal lengths included, split officially."""
    from edgekit.data import prepare_data

    source = f"ts:{sktime_set(name)}"
    assert (
        prepare_data(DataConfig(source=source, split_mode="official")).splits["counts"]["val"] == 0
    )
    prepared = prepare_data(
        DataConfig(source=source, split_mode="official", split_fractions=(0.7, 0.15, 0.15))
    )
    per_class = prepared.splits["per_class"]
    assert all(per_class["train"][c] > 0 for c in prepared.class_names)
    assert all(per_class["val"][c] > 0 for c in prepared.class_names)  # every class has >= 2
    assert not prepared.official_test["train"].any() and not prepared.official_test["val"].any()
    assert prepared.official_test["test"].all()
    if name in ("JapaneseVowels", "PLAID"):
        assert prepared.stats["length_policy"]["changed"] > 0
