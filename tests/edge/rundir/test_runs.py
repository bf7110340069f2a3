"""A run directory as an object: later stages reuse the prepared arrays training saved."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from edgekit.data.prepare import PreparedData, prepare_data
from edgekit.errors import ArtifactError
from edgekit.rundir.artifacts import Manifest
from edgekit.rundir.run import Run


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


def test_an_edited_config_is_refused(trained_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    config_file = copy / "config.resolved.yaml"
    config_file.write_text(config_file.read_text().replace("seed: 0\n", "seed: 5\n", 1))
    with pytest.raises(ArtifactError, match="config.resolved.yaml does not match its sha256"):
        Run(copy)


def test_data_of_another_config_is_refused(trained_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    config_file = copy / "config.resolved.yaml"
    config_file.write_text(config_file.read_text().replace("seed: 0\n", "seed: 5\n", 1))
    manifest = Manifest(copy)
    manifest.record(config_file)  # as if a stage had written it
    manifest.save()
    run = Run(copy)
    assert run.config.data.seed == 5
    with pytest.raises(ArtifactError, match="does not belong to this run's data config"):
        _ = run.data


@pytest.mark.parametrize("damage", ["truncate", "delete", "add"])
def test_damaged_saved_data_is_refused(
    trained_run: Path, tmp_path: Path, damage: str, digest
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    saved = copy / "data/X_test.npy"
    if damage == "truncate":
        saved.write_bytes(saved.read_bytes()[:200])
    elif damage == "delete":
        saved.unlink()
    else:
        (copy / "data/extra.npy").write_bytes(saved.read_bytes())
    before = digest(copy)
    name = "extra.npy is not recorded" if damage == "add" else "X_test.npy"
    with pytest.raises(ArtifactError, match=name):
        _ = Run(copy).data
    assert digest(copy) == before


@pytest.mark.parametrize(
    "manifest, message",
    [
        (None, "manifest.json is missing"),
        ("{not json", "not readable JSON"),
        ('{"schema_version": 99, "artifacts": {}}', "schema_version 99, this edgekit reads 1"),
        ('{"schema_version": 1}', "no artifact table"),
    ],
)
def test_a_missing_or_foreign_manifest_is_refused(
    trained_run: Path, tmp_path: Path, manifest: str | None, message: str
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    if manifest is None:
        (copy / "manifest.json").unlink()
    else:
        (copy / "manifest.json").write_text(manifest)
    with pytest.raises(ArtifactError, match=message):
        Run(copy)


def test_training_memory_maps_one_copy_of_each_split(trained_run: Path) -> None:
    """The run keeps one on-disk copy of the prepared data, per split, and later stages map it."""
    run = Run(trained_run)
    data_files = sorted(p.name for p in (trained_run / "data").iterdir())
    assert "prepared.npz" not in data_files
    assert {"X_train.npy", "X_val.npy", "X_test.npy"} <= set(data_files)
    X_train = run.data.arrays["train"][0]
    assert isinstance(X_train, np.memmap) and X_train.filename is not None
    assert Path(X_train.filename).resolve() == (trained_run / "data/X_train.npy").resolve()


def test_a_stage_given_a_run_object_sees_what_earlier_stages_recorded(
    trained_run: Path, tmp_path: Path
) -> None:
    """A `Run` opened before calibrate holds the manifest without the calibration; export and parity
    must read the folder anew, not trust that stale view."""
    import shutil

    from edgekit.calibrate.stage import run_calibration
    from edgekit.parity import run_parity
    from edgekit.rundir.run import Run
    from edgekit.targets import run_export

    shutil.copytree(trained_run, tmp_path / "run")
    run = Run(tmp_path / "run")
    assert "calibration/report.json" not in run.manifest["artifacts"]
    run_calibration(run)
    assert run_export(run, "onnx")["folder"] == str(tmp_path / "run" / "export" / "onnx")
    assert all(report.passed for report in run_parity(run, ["onnx"], limit=4))


def test_the_remake_command_names_the_stage_that_writes_the_file(tmp_path: Path) -> None:
    from edgekit.rundir.run import remake_command

    run = tmp_path / "r"
    train, calibrate = f"edgekit train --out {run}", f"edgekit calibrate {run}"
    assert {
        relative: remake_command(run, relative)
        for relative in (
            "export/onnx/model_int8.onnx",
            "export/hailo/hailo8/model.alls",
            "export/notes.txt",
            "calibration/report.json",
            "checkpoints/calibrated.pt",
            "checkpoints/best.pt",
            "data/X_test.npy",
            "metrics.json",
        )
    } == {
        "export/onnx/model_int8.onnx": f"edgekit export {run} --target onnx",
        "export/hailo/hailo8/model.alls": f"edgekit export {run} --target hailo",
        "export/notes.txt": train,
        "calibration/report.json": calibrate,
        "checkpoints/calibrated.pt": calibrate,
        "checkpoints/best.pt": train,
        "data/X_test.npy": train,
        "metrics.json": train,
    }


def test_clearing_a_run_keeps_the_users_files_and_what_it_is_told(tmp_path: Path) -> None:
    """A new training clears the earlier stage outputs only: a linked folder loses its link, never
    the files it points to."""
    from edgekit.rundir import layout
    from edgekit.rundir.run import clear_outputs

    run, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    (elsewhere / "deep").mkdir(parents=True)
    (elsewhere / "deep" / "keep.npy").write_bytes(b"x")
    run.mkdir()
    for name in layout.RUN_OUTPUTS:
        if "." in name:
            (run / name).write_text("old")
        elif name != layout.DATA:
            (run / name / "inner").mkdir(parents=True)
    (run / layout.DATA).symlink_to(elsewhere, target_is_directory=True)
    (run / "notes.txt").write_text("mine")
    clear_outputs(run, keep=(layout.CHECKPOINTS,))
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "notes.txt"]
    assert (elsewhere / "deep" / "keep.npy").read_bytes() == b"x"
    clear_outputs(run)  # nothing left of a run: a no-op, no error
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
