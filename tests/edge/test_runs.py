"""A run directory as an object: later stages reuse the prepared arrays training saved."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from edgekit.data.prepare import PreparedData, prepare_data
from edgekit.runs import Run


def test_saved_arrays_equal_a_fresh_preparation(trained_run: Path) -> None:
    run = Run(trained_run)
    saved = PreparedData.load(trained_run / "data", run.config.data)
    assert saved is not None
    fresh = prepare_data(run.config.data)
    for split, (X, y) in fresh.arrays.items():
        assert np.array_equal(saved.arrays[split][0], X) and np.array_equal(
            saved.arrays[split][1], y
        )
    assert saved.class_names == fresh.class_names and saved.stats == fresh.stats


def test_changed_data_config_is_not_served_stale(trained_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    config_file = copy / "config.resolved.yaml"
    config_file.write_text(config_file.read_text().replace("seed: 0\n", "seed: 5\n", 1))
    run = Run(copy)
    assert run.config.data.seed == 5
    assert PreparedData.load(copy / "data", run.config.data) is None
    assert run.data.splits["seed"] == 5


def test_damaged_saved_arrays_fall_back_to_the_source(trained_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    saved = copy / "data/X_test.npy"
    saved.write_bytes(saved.read_bytes()[:200])
    run = Run(copy)
    assert PreparedData.load(copy / "data", run.config.data) is None
    assert len(run.data.arrays["test"][1]) == len(prepare_data(run.config.data).arrays["test"][1])


def test_training_memory_maps_one_copy_of_each_split(trained_run: Path) -> None:
    """The run keeps one on-disk copy of the prepared data, per split, and later stages map it."""
    run = Run(trained_run)
    data_files = sorted(p.name for p in (trained_run / "data").iterdir())
    assert "prepared.npz" not in data_files
    assert {"X_train.npy", "X_val.npy", "X_test.npy"} <= set(data_files)
    X_train = run.data.arrays["train"][0]
    assert isinstance(X_train, np.memmap) and X_train.filename is not None
    assert Path(X_train.filename).resolve() == (trained_run / "data/X_train.npy").resolve()
