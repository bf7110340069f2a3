"""QA strategies, split invariants (no group leakage, 70/15/15 within one window) and the reshape."""

from __future__ import annotations

import numpy as np
import pytest
from edgekit.config import DataConfig
from edgekit.data import (
    WindowSet,
    load_source,
    prepare_data,
    quality_report,
    repair_non_finite,
    split_groups,
    to_hailo_layout,
)
from edgekit.data.qa import MAX_ABS_VALUE, check_magnitudes
from edgekit.data.synthetic import make_synthetic
from edgekit.errors import DataError


def test_reshape_even_and_odd() -> None:
    X = np.arange(2 * 3 * 8, dtype=np.float32).reshape(2, 3, 8)
    out = to_hailo_layout(X)
    assert out.shape == (2, 3, 2, 4)
    assert np.array_equal(out[:, :, 0], X[:, :, :4]) and np.array_equal(out[:, :, 1], X[:, :, 4:])
    odd = to_hailo_layout(np.arange(2 * 3 * 9, dtype=np.float32).reshape(2, 3, 9))
    assert odd.shape == (2, 3, 2, 4)
    assert odd[0, 0, 1, -1] == 7  # sample 8 (the last) is dropped


def test_interleaved_rows_hold_even_and_odd_samples_and_invert() -> None:
    from edgekit.data.prepare import from_hailo_layout

    X = np.arange(2 * 3 * 9, dtype=np.float32).reshape(2, 3, 9)
    out = to_hailo_layout(X, "interleaved")
    assert out.shape == (2, 3, 2, 4)
    assert np.array_equal(out[:, :, 0], X[:, :, 0:8:2]) and np.array_equal(
        out[:, :, 1], X[:, :, 1:8:2]
    )
    for rows in ("halves", "interleaved"):
        assert np.array_equal(from_hailo_layout(to_hailo_layout(X, rows), rows), X[:, :, :8])
        assert from_hailo_layout(np.zeros((0, 3, 2, 4)), rows).shape == (0, 3, 8)  # no val split


def test_the_row_layout_is_recorded_and_used() -> None:
    halves = prepare_data(
        DataConfig(source="synthetic:n=80,length=16", normalize="global", row_layout="halves")
    )
    interleaved = prepare_data(
        DataConfig(source="synthetic:n=80,length=16", normalize="global", row_layout="interleaved")
    )
    assert (halves.stats["row_layout"], interleaved.stats["row_layout"]) == (
        "halves",
        "interleaved",
    )
    assert "even samples" in interleaved.stats["layout"]
    a, b = halves.arrays["train"][0], interleaved.arrays["train"][0]
    flat = a.reshape(*a.shape[:2], -1)  # halves: rows are the window's halves, in order
    assert np.array_equal(b[:, :, 0], flat[:, :, 0::2]) and np.array_equal(
        b[:, :, 1], flat[:, :, 1::2]
    )


def test_odd_length_is_recorded() -> None:
    prepared = prepare_data(DataConfig(source="synthetic:n=80,length=127"))
    assert prepared.input_shape == (6, 2, 63)
    assert prepared.stats["dropped_last_sample"] and prepared.stats["used_length"] == 126
    even = prepare_data(DataConfig(source="synthetic:n=80,length=128"))
    assert even.stats["dropped_last_sample"] is False and even.stats["used_length"] == 128


def test_reports_count_each_class_per_split_and_keep_the_length_record() -> None:
    windows = load_source("synthetic:n=120,length=16")
    windows.notes["length"] = {"policy": "pad", "changed": 7}  # what the loader's policy did
    prepared = prepare_data(DataConfig(), windows)
    for split, (_, y) in prepared.arrays.items():
        counts = np.bincount(y, minlength=prepared.num_classes).tolist()
        assert list(prepared.splits["per_class"][split].values()) == counts
    assert prepared.stats["length_policy"] == {"policy": "pad", "changed": 7}
    assert prepared.warnings == prepared.splits["warnings"]
    plain = prepare_data(DataConfig(source="synthetic:n=120,length=16"))
    assert plain.stats["length_policy"]["changed"] == 0


def test_a_flat_channel_is_centred_not_divided_by_zero() -> None:
    windows = load_source("synthetic:n=80,length=16")
    windows.X[:, 2] = 3.5
    prepared = prepare_data(DataConfig(), windows)
    assert prepared.stats["std"][2] == 1.0 and prepared.stats["mean"][2] == 3.5
    assert all(np.all(X[:, 2] == 0) for X, _ in prepared.arrays.values())


@pytest.mark.parametrize("n", [80, 97, 400])
def test_split_proportions_within_one_window(n: int) -> None:
    windows = make_synthetic(n=n, length=16)
    split = split_groups(windows.y, windows.groups, (0.7, 0.15, 0.15), seed=3)
    counts = np.bincount(split, minlength=3)
    assert np.all(np.abs(counts - n * np.array([0.7, 0.15, 0.15])) <= 1), counts


@pytest.mark.parametrize("group_size", [3, 10])
def test_split_never_splits_a_group(group_size: int) -> None:
    windows = make_synthetic(n=400, length=16, group_size=group_size)
    split = split_groups(windows.y, windows.groups, (0.7, 0.15, 0.15), seed=0)
    for group in np.unique(windows.groups):
        assert len(set(split[windows.groups == group])) == 1
    for k in range(4):  # every class in every split
        assert set(split[windows.y == k]) == {0, 1, 2}


def test_split_is_reproducible_and_seeded() -> None:
    windows = make_synthetic(n=200, length=16, group_size=4)
    a = split_groups(windows.y, windows.groups, (0.7, 0.15, 0.15), seed=1)
    assert np.array_equal(a, split_groups(windows.y, windows.groups, (0.7, 0.15, 0.15), seed=1))
    assert not np.array_equal(a, split_groups(windows.y, windows.groups, (0.7, 0.15, 0.15), seed=2))


def test_train_only_statistics() -> None:
    config = DataConfig(source="synthetic:n=200,length=32")
    prepared = prepare_data(config)
    X_train = prepared.arrays["train"][0]
    assert np.allclose(X_train.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    assert np.allclose(X_train.std(axis=(0, 2, 3)), 1, atol=1e-3)
    assert not np.allclose(prepared.arrays["test"][0].mean(axis=(0, 2, 3)), 0, atol=1e-4)
    assert set(prepared.splits["groups"]["train"]).isdisjoint(prepared.splits["groups"]["test"])


def test_official_split_mode() -> None:
    prepared = prepare_data(DataConfig(split_mode="official"))
    assert prepared.splits["counts"]["test"] == 40
    assert prepared.splits["counts"]["train"] + prepared.splits["counts"]["val"] == 40
    with pytest.raises(DataError, match="no official test split"):
        prepare_data(DataConfig(source="synthetic:n=40", split_mode="official"))


def test_quality_report_counts() -> None:
    windows = make_synthetic(n=20, length=50, nan_fraction=0.01, inf_count=3, flat_channels=1)
    report = quality_report(windows)
    assert report["non_finite"] == int((~np.isfinite(windows.X)).sum())
    assert sum(c["inf"] for c in report["per_channel"]) == 3
    assert report["flat_channels"] == ["gyro_z"]
    assert 0 < report["quality_score"] < 1


NAN, INF = np.nan, np.inf


def three_windows() -> WindowSet:
    """3 windows x 2 channels x 4 samples: channel 'c1' is constant (flat), 'c0' has 4 NaN/Inf in
    windows 0 and 1 and none left in window 2 after its own NaN (all of that window's c0)."""
    X = np.array(
        [
            [[1, NAN, 3, 5], [2, 2, 2, 2]],
            [[INF, 4, 6, -INF], [2, 2, 2, 2]],
            [[NAN, NAN, NAN, NAN], [2, 2, 2, 2]],
        ],
        dtype=np.float32,
    )
    return WindowSet(X, np.array([0, 1, 1]), np.array(["a", "b", "c"]), ["x", "y"], ["c0", "c1"],
                     50.0, "toy")  # fmt: skip


def test_quality_report_of_a_known_set() -> None:
    windows = three_windows()
    windows.X[0, 0] = [1, 2, 3, 5]  # window 0 clean
    windows.X[2, 1, :2] = [NAN, INF]  # c1: finite values all 2, still flat
    report = quality_report(windows)
    c0, c1 = report["per_channel"]
    assert (c0["nan"], c0["inf"], c0["non_finite_pct"]) == (4, 2, 50.0)
    assert (c0["min"], c0["max"], c0["mean"]) == (1.0, 6.0, 3.5)
    assert c0["std"] == pytest.approx(np.std([1, 2, 3, 5, 4, 6])) and not c0["flat"]
    assert (c1["nan"], c1["inf"], c1["non_finite_pct"]) == (1, 1, round(100 * 2 / 12, 4))
    assert (c1["std"], c1["flat"]) == (0.0, True)
    assert (report["non_finite"], report["windows_with_non_finite"]) == (8, 2)
    assert report["non_finite_fraction"] == pytest.approx(8 / 24)
    assert report["flat_channels"] == ["c1"] and report["class_counts"] == {"x": 1, "y": 2}
    assert report["quality_score"] == round((1 - 8 / 24) * (1 - 1 / 2), 4)
    assert (report["windows"], report["channels"], report["window_length"]) == (3, 2, 4)
    windows.X[:, 0] = NAN  # no finite value left in c0 (repair refuses it; the report shows it)
    windows.X[:, 1] = [1, 2, 3, 4]
    report = quality_report(windows)
    c0, c1 = report["per_channel"]
    assert (c0["min"], c0["max"], c0["mean"], c0["std"], c0["flat"]) == (
        None,
        None,
        None,
        0.0,
        True,
    )
    assert not c1["flat"] and report["quality_score"] == round((1 - 12 / 24) * (1 - 1 / 2), 4)
    windows.X[:, 0] = [5, 6, 7, 8]
    assert quality_report(windows)["quality_score"] == 1.0  # clean, nothing flat


@pytest.mark.parametrize(
    ("strategy", "window_0", "window_1"),
    [("zero", [1, 0, 3, 5], [0, 4, 6, 0]), ("mean", [1, 3, 3, 5], [5, 4, 6, 5]),
     ("median", [1, 3, 3, 5], [5, 4, 6, 5]), ("interpolate", [1, 2, 3, 5], [4, 4, 6, 6])],
)  # fmt: skip
def test_each_fill_strategy_uses_the_windows_own_channel(
    strategy: str, window_0: list[float], window_1: list[float]
) -> None:
    """Each window channel is filled from its own finite values (the nearest one at the edges
    when interpolating); one with none left is filled with 0 whatever the strategy."""
    windows = three_windows()
    as_read = "".join(strategy)  # built at run time, as a config gives it: only == matches
    repaired, action = repair_non_finite(windows, as_read, max_fraction=0.5)
    assert repaired.X[0, 0].tolist() == window_0 and repaired.X[1, 0].tolist() == window_1
    assert repaired.X[2, 0].tolist() == [0, 0, 0, 0]
    assert np.array_equal(repaired.X[:, 1], windows.X[:, 1])
    assert action == {"strategy": strategy, "non_finite_fraction": pytest.approx(7 / 24),
                      "windows_dropped": 0, "values_filled": 7}  # fmt: skip
    assert np.isnan(windows.X[0, 0, 1])  # the loaded windows stay as they were


def test_median_and_mean_fills_differ_where_the_values_are_skewed() -> None:
    windows = three_windows()
    windows.X[0, 0] = [1, NAN, 2, 30]
    assert repair_non_finite(windows, "mean", 0.5)[0].X[0, 0, 1] == 11
    assert repair_non_finite(windows, "median", 0.5)[0].X[0, 0, 1] == 2


def test_drop_keeps_exactly_the_clean_windows_and_the_threshold_is_inclusive() -> None:
    windows = three_windows()
    windows.X[1, 0] = [1, 2, 3, 4]
    windows.X[2, 0] = [1, 2, 3, 4]  # one window left with NaN: 1 of 24 values
    dropped, action = repair_non_finite(windows, "".join("drop"), max_fraction=1 / 24)
    assert dropped.X.shape == (2, 2, 4) and dropped.groups.tolist() == ["b", "c"]
    assert action["windows_dropped"] == 1 and action["values_filled"] == 0
    with pytest.raises(DataError, match=r"4\.17% of values are NaN/Inf, above"):
        repair_non_finite(windows, "drop", max_fraction=1 / 25)
    with pytest.raises(DataError, match=r"toy: 1 NaN/Inf values \(4\.17%\); set data.nan_"):
        repair_non_finite(windows, "".join("raise"), max_fraction=1.0)
    windows.X[1:, 0, 0] = NAN  # now every window has one
    with pytest.raises(DataError, match="every window has a NaN/Inf; use nan_strategy=interp"):
        repair_non_finite(windows, "drop", max_fraction=0.5)


def test_clean_windows_pass_through_repair_unchanged() -> None:
    windows = three_windows()
    windows.X[:, 0] = 1.0
    repaired, action = repair_non_finite(windows, "raise", max_fraction=0.0)
    assert repaired is windows
    assert action == {"strategy": "raise", "non_finite_fraction": 0.0, "windows_dropped": 0,
                      "values_filled": 0}  # fmt: skip


@pytest.mark.parametrize("sign", [1, -1])
def test_magnitudes_beyond_float32_squares_are_refused_either_sign(sign: int) -> None:
    windows = three_windows()
    windows.X[:, 0] = 1.0
    windows.X[1, 1, 2] = sign * MAX_ABS_VALUE  # at the limit: fine
    check_magnitudes(windows)
    windows.X[1, 1, 2] = sign * np.nextafter(np.float32(MAX_ABS_VALUE), np.float32(np.inf))
    with pytest.raises(DataError, match=r"toy: channel 'c1' reaches 1.84e\+19, beyond float32"):
        check_magnitudes(windows)
    windows.X[0, 0, 0] = sign * 1e30  # two channels beyond: the first is named
    with pytest.raises(DataError, match=r"channel 'c0' reaches 1e\+30"):
        check_magnitudes(windows)


@pytest.mark.parametrize("strategy", ["zero", "mean", "median", "interpolate"])
def test_fill_strategies_remove_non_finite(strategy: str) -> None:
    windows = make_synthetic(n=20, length=50, nan_fraction=0.02, inf_count=2)
    repaired, action = repair_non_finite(windows, strategy, max_fraction=0.05)
    assert np.isfinite(repaired.X).all() and len(repaired.X) == 20
    assert action["values_filled"] == int((~np.isfinite(windows.X)).sum())
    finite = np.isfinite(windows.X)
    assert np.array_equal(repaired.X[finite], windows.X[finite])  # good values untouched


def test_interpolate_is_linear() -> None:
    windows = make_synthetic(n=4, length=10)
    windows.X[0, 0, :] = np.arange(10)
    windows.X[0, 0, 4] = np.nan
    repaired, _ = repair_non_finite(windows, "interpolate", 0.5)
    assert repaired.X[0, 0, 4] == pytest.approx(4.0)


def test_drop_and_raise_and_threshold() -> None:
    windows = make_synthetic(n=40, length=50, nan_fraction=0.001, seed=2)
    dropped, action = repair_non_finite(windows, "drop", 0.05)
    assert action["windows_dropped"] > 0 and np.isfinite(dropped.X).all()
    with pytest.raises(DataError, match="NaN/Inf values"):
        repair_non_finite(windows, "raise", 0.05)
    heavy = make_synthetic(n=40, length=50, nan_fraction=0.2)
    with pytest.raises(DataError, match="above data.max_nan_fraction"):
        repair_non_finite(heavy, "interpolate", 0.05)


def test_class_with_too_few_groups() -> None:
    windows = load_source("synthetic:n=40,length=16")
    windows.y[:] = 0
    windows.y[:1] = 1  # class 'walk' has one window: it can't be both trained on and tested
    with pytest.raises(DataError, match="class 'walk' has too few"):
        prepare_data(DataConfig(), windows)


def test_single_class_is_refused() -> None:
    windows = load_source("synthetic:n=40,length=16")
    windows.y[:] = 2
    with pytest.raises(DataError, match="every window has the class 'run'"):
        prepare_data(DataConfig(), windows)


def test_all_nan_is_refused_whatever_the_threshold() -> None:
    windows = load_source("synthetic:n=40,length=16")
    windows.X[:] = np.nan
    with pytest.raises(DataError, match="every value is NaN/Inf"):
        prepare_data(DataConfig(max_nan_fraction=1.0), windows)
    windows = load_source("synthetic:n=40,length=16")
    windows.X[:, 1] = np.nan
    with pytest.raises(DataError, match="channel 'acc_y' holds no finite value.*data.channels"):
        prepare_data(DataConfig(max_nan_fraction=1.0), windows)


def test_values_that_overflow_float32_normalisation_are_refused() -> None:
    windows = load_source("synthetic:n=40,length=16")
    windows.X[3, 4, 5] = 1e38
    report = quality_report(windows)
    assert np.isfinite(report["per_channel"][4]["std"])  # inspect shows a number, not nan
    with pytest.raises(DataError, match="channel 'gyro_y' reaches 1e\\+38.*rescale"):
        prepare_data(DataConfig(), windows)
    windows.X[3, 4, 5] = 1e18  # large but representable: fine
    assert prepare_data(DataConfig(), windows).num_classes == 4


def test_prepared_arrays_written_to_a_folder_are_memory_mapped(tmp_path) -> None:
    from edgekit.data import PreparedData

    config = DataConfig(source="synthetic:n=200,length=32")
    in_ram = prepare_data(config)
    on_disk = prepare_data(config, folder=tmp_path)
    for split in ("train", "val", "test"):
        X = on_disk.arrays[split][0]
        assert isinstance(X, np.memmap)
        assert np.array_equal(X, in_ram.arrays[split][0])
    loaded = PreparedData.load(tmp_path, config)
    assert loaded is not None and loaded.stats == on_disk.stats
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_failed_preparation_leaves_the_data_folder_as_it_was(tmp_path, monkeypatch) -> None:
    import edgekit.data.prepare as prepare_module

    config = DataConfig(source="synthetic:n=200,length=32")
    prepare_data(config, folder=tmp_path / "data")
    before = {p.name: p.read_bytes() for p in (tmp_path / "data").iterdir()}

    def broken_save(self, folder) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(prepare_module.PreparedData, "save_reports", broken_save)
    with pytest.raises(OSError, match="disk full"):
        prepare_data(
            DataConfig(source="synthetic:n=200,length=32", seed=4), folder=tmp_path / "data"
        )
    after = {p.name: p.read_bytes() for p in (tmp_path / "data").iterdir()}
    assert after == before


@pytest.mark.parametrize("chunk", [2048, 7])
def test_saved_preparation_equals_the_in_memory_one_in_any_chunking(
    tmp_path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Saving (memory-mapped arrays, written chunk by chunk) and loading give exactly the arrays,
    statistics and reports of an in-memory preparation; odd T drops the last sample."""
    from pathlib import Path

    from edgekit.data import prepare as prepare_module
    from edgekit.data.prepare import PreparedData, prepare_data

    config = DataConfig(source="synthetic:n=90,length=17,noise=0.5")
    fresh = prepare_data(config)
    monkeypatch.setattr(prepare_module, "CHUNK_WINDOWS", chunk)
    saved = prepare_data(config, folder=Path(tmp_path) / "data")
    loaded = PreparedData.load(Path(tmp_path) / "data", config)
    fresh.save(Path(tmp_path) / "from_ram")  # data prepared in RAM, saved later (train's path)
    reloaded = PreparedData.load(Path(tmp_path) / "from_ram", config)
    assert loaded is not None and reloaded is not None
    for prepared in (saved, loaded, reloaded):
        for split, (X, y) in fresh.arrays.items():
            assert np.allclose(prepared.arrays[split][0], X, atol=1e-6)
            assert np.array_equal(prepared.arrays[split][1], y)
        exact = {k: v for k, v in prepared.stats.items() if k not in ("mean", "std")}
        assert exact == {k: v for k, v in fresh.stats.items() if k not in ("mean", "std")}
        for key in ("mean", "std"):  # chunked float64 sums may differ in the last bit
            assert np.allclose(prepared.stats[key], fresh.stats[key], rtol=1e-12)
        assert prepared.splits == fresh.splits
        assert prepared.class_names == fresh.class_names
    assert fresh.stats["dropped_last_sample"] and fresh.stats["used_length"] == 16
    assert fresh.input_shape[2] == 8
    for seed in range(3, 9):  # another config's data (digests on both sides of this one's)
        other = DataConfig(source="synthetic:n=90,length=17,noise=0.5", seed=seed)
        assert PreparedData.load(Path(tmp_path) / "data", other) is None
    assert sorted(p.name for p in (Path(tmp_path) / "data").iterdir()) == sorted(
        [f"{a}_{s}.npy" for a in "Xy" for s in ("train", "val", "test")]
        + ["qa_report.json", "splits.json", "stats.json"]
    )


def test_official_masks_are_saved_and_loaded(tmp_path) -> None:
    from pathlib import Path

    from edgekit.data.prepare import PreparedData, prepare_data

    config = DataConfig(split_mode="official")
    saved = prepare_data(config, folder=Path(tmp_path) / "new" / "run" / "data")  # parents made
    loaded = PreparedData.load(Path(tmp_path) / "new" / "run" / "data", config)
    assert loaded is not None and set(loaded.official_test) == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        assert np.array_equal(loaded.official_test[split], saved.official_test[split])
    assert loaded.official_test["test"].all() and not loaded.official_test["train"].any()


@pytest.mark.parametrize("damage", ["missing array", "corrupt report", "stats without classes"])
def test_damaged_saved_data_is_prepared_anew(tmp_path, damage: str) -> None:
    """load() gives None (re-derive from the source) instead of failing on a damaged folder."""
    import json

    from edgekit.data.prepare import PreparedData

    config = DataConfig(source="synthetic:n=80,length=16")
    prepare_data(config, folder=tmp_path)
    assert PreparedData.load(tmp_path, config) is not None
    if damage == "missing array":
        (tmp_path / "X_test.npy").unlink()
    elif damage == "corrupt report":
        (tmp_path / "splits.json").write_text("{not json")
    else:
        stats = json.loads((tmp_path / "stats.json").read_text())
        del stats["class_names"]
        (tmp_path / "stats.json").write_text(json.dumps(stats))
    assert PreparedData.load(tmp_path, config) is None


def test_train_statistics_are_numpys_over_the_given_rows_in_any_chunking(monkeypatch) -> None:
    from edgekit.data import prepare as prepare_module

    X = np.random.default_rng(0).normal(2.0, 3.0, size=(50, 3, 10)).astype(np.float32)
    rows = np.array([0, 3, 4, 9, 20, 33, 49])
    for chunk in (2048, 2):
        monkeypatch.setattr(prepare_module, "CHUNK_WINDOWS", chunk)
        mean, std = prepare_module.train_statistics(X, rows)
        assert np.allclose(mean, X[rows].astype(np.float64).mean(axis=(0, 2)), rtol=1e-12)
        assert np.allclose(std, X[rows].astype(np.float64).std(axis=(0, 2)), rtol=1e-12)


def quiet_and_loud_windows() -> object:
    """Windows whose shapes tell the classes apart while their gains span four orders of magnitude,
    as raw appliance currents (PLAID) do: one global scale leaves most of them near zero."""
    windows = load_source("synthetic:n=120,length=32")
    gains = 10.0 ** np.random.default_rng(0).uniform(-4, 0, len(windows.X))
    windows.X *= gains[:, None, None].astype(np.float32)
    return windows


def int8_steps(X: np.ndarray) -> np.ndarray:
    """Per window, the most distinct int8 input values any channel takes under one scale for ±4
    (the input quantiser's range): how much of the window the model can see."""
    q = np.clip(np.round(X.reshape(*X.shape[:2], -1) / (4 / 127)), -128, 127)
    return np.array([max(len(np.unique(channel)) for channel in window) for window in q])


def test_auto_normalises_each_window_when_most_would_be_lost_in_int8_input() -> None:
    prepared = prepare_data(DataConfig(), quiet_and_loud_windows())
    X, _ = prepared.arrays["train"]
    assert prepared.stats["normalization"]["mode"] == "window"
    assert prepared.stats["normalization"]["quiet_train_windows"] > 0.5
    assert np.median(int8_steps(X)) > 16  # of 32 samples; globally normalised, most took 1-3
    flat = X.reshape(len(X), X.shape[1], -1)
    assert np.allclose(flat.mean(axis=2), 0, atol=1e-5) and np.allclose(
        flat.std(axis=2), 1, atol=1e-3
    )
    kept = prepare_data(DataConfig(normalize="global"), quiet_and_loud_windows())
    assert kept.stats["normalization"]["mode"] == "global"
    assert np.median(int8_steps(kept.arrays["train"][0])) <= 8  # the loss the rule avoids


def test_auto_keeps_train_statistics_for_imu_windows() -> None:
    prepared = prepare_data(DataConfig())  # the bundled BasicMotions: IMU, still and moving
    assert prepared.stats["normalization"] == {
        "mode": "global",
        "requested": "auto",
        "quiet_train_windows": prepared.stats["normalization"]["quiet_train_windows"],
    }
    assert prepared.stats["normalization"]["quiet_train_windows"] < 0.1


@pytest.mark.parametrize("mode", ["global", "window"])
@pytest.mark.parametrize("rows", ["halves", "interleaved"])
def test_preprocess_maps_raw_windows_onto_the_prepared_ones(mode: str, rows: str) -> None:
    from edgekit.data.prepare import preprocess

    windows = quiet_and_loud_windows()
    raw = windows.X.copy()
    prepared = prepare_data(DataConfig(normalize=mode, row_layout=rows), windows)
    X_test = prepared.arrays["test"][0]
    candidates = preprocess(raw, prepared.stats)
    # each prepared test window is the preprocessing of one raw window
    matches = [np.abs(candidates - x).reshape(len(raw), -1).max(axis=1).min() for x in X_test]
    assert max(matches) < 1e-5
