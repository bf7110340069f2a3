"""Stages as transactions: rollback on failure, Ctrl-C and SIGTERM; recovery after a killed stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from edgekit.errors import CheckpointError, ConfigError
from edgekit.rundir.artifacts import write_text
from edgekit.rundir.transaction import (
    SNAPSHOT_NAME,
    Interrupted,
    keep_on_failure,
    recover,
    stage_transaction,
)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    write_text(run_dir / "config.resolved.yaml", "seed: 1\n")
    write_text(run_dir / "checkpoints" / "best.pt", "old model")
    write_text(run_dir / "export" / "onnx" / "model.onnx", "old export")
    (run_dir / "empty").mkdir()
    return run_dir


def stage_writes(run_dir: Path) -> None:
    """What a stage does: replace, create, delete files and folders."""
    import shutil

    write_text(run_dir / "config.resolved.yaml", "seed: 2\n")
    write_text(run_dir / "checkpoints" / "best.pt", "new model")
    write_text(run_dir / "calibration" / "report.json", "{}")
    shutil.rmtree(run_dir / "export")
    (run_dir / "empty").rmdir()


class Boom(Exception):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt, Interrupted])
def test_a_failed_stage_leaves_the_run_byte_identical(run: Path, digest, error) -> None:
    before = digest(run)
    with pytest.raises(error), stage_transaction(run):
        stage_writes(run)
        raise error("stage failed")
    assert digest(run) == before
    assert (run / "empty").is_dir() and not (run / "calibration").exists()
    assert not (run / SNAPSHOT_NAME).exists()


def test_a_successful_stage_is_committed(run: Path) -> None:
    with stage_transaction(run):
        stage_writes(run)
    assert (run / "checkpoints/best.pt").read_text() == "new model"
    assert not (run / "export").exists() and not (run / SNAPSHOT_NAME).exists()


def test_sigterm_rolls_back_like_ctrl_c(run: Path, digest) -> None:
    before = digest(run)
    with pytest.raises(Interrupted, match="SIGTERM.*rolled back"), stage_transaction(run):
        stage_writes(run)
        os.kill(os.getpid(), signal.SIGTERM)
    assert digest(run) == before
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is the stage's only


def test_a_kept_file_survives_the_rollback(run: Path) -> None:
    with pytest.raises(Boom), stage_transaction(run):
        write_text(run / "export" / "hailo.failed_readiness_report.json", "why")
        keep_on_failure(run / "export" / "hailo.failed_readiness_report.json")
        write_text(run / "export" / "onnx" / "model.onnx", "half")
        raise Boom
    assert (run / "export" / "hailo.failed_readiness_report.json").read_text() == "why"
    assert (run / "export" / "onnx" / "model.onnx").read_text() == "old export"


def test_a_killed_stage_is_rolled_back_by_the_next_one(run: Path, digest) -> None:
    before = digest(run)
    script = (
        "import os, sys; from pathlib import Path\n"
        "from edgekit.rundir.transaction import stage_transaction\n"
        "from edgekit.rundir.artifacts import write_text\n"
        "run = Path(sys.argv[1])\n"
        "with stage_transaction(run):\n"
        "    write_text(run / 'checkpoints' / 'best.pt', 'half-written')\n"
        "    write_text(run / 'new.json', '{}')\n"
        "    os._exit(9)  # like SIGKILL: no cleanup runs\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(run)], capture_output=True)
    assert result.returncode == 9
    assert (run / "checkpoints/best.pt").read_text() == "half-written"
    with stage_transaction(run):
        pass
    assert digest(run) == before


def test_recover_is_a_no_op_without_a_snapshot_and_drops_a_partial_one(run: Path, digest) -> None:
    before = digest(run)
    assert recover(run) is False
    (run / f"{SNAPSHOT_NAME}.partial" / "checkpoints").mkdir(parents=True)
    assert recover(run) is False
    assert digest(run) == before and not (run / f"{SNAPSHOT_NAME}.partial").exists()


def test_a_folder_that_is_not_a_run_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an edgekit run"), stage_transaction(tmp_path):
        pass
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_missing_run_is_created_only_for_training(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"), stage_transaction(tmp_path / "a"):
        pass
    with pytest.raises(Boom), stage_transaction(tmp_path / "b", create=True):
        write_text(tmp_path / "b" / "config.resolved.yaml", "x")
        raise Boom
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_nested_transactions_join_the_outer_one(run: Path, digest) -> None:
    before = digest(run)
    with pytest.raises(Boom), stage_transaction(run):
        with stage_transaction(run):
            stage_writes(run)
        raise Boom
    assert digest(run) == before
