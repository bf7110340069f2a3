"""Stages as transactions: rollback on failure, Ctrl-C and SIGTERM; recovery after a killed stage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from edgekit.errors import CheckpointError, ConfigError, StorageError
from edgekit.rundir.artifacts import write_text
from edgekit.rundir.transaction import (
    SNAPSHOT_NAME,
    Interrupted,
    _same_file,
    keep_on_failure,
    recover,
    stage_transaction,
    transactional,
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


def inodes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_ino for p in folder.rglob("*") if p.is_file()}


def test_a_rollback_puts_back_the_very_files(run: Path) -> None:
    """Same inodes, replaced or untouched: nothing is rewritten, and nothing another process holds
    open is swapped under it."""
    write_text(run / "data" / "X_test.npy", "kept as is")
    before = inodes(run)
    with pytest.raises(Boom), stage_transaction(run):
        write_text(run / "checkpoints" / "best.pt", "new model")
        raise Boom
    assert inodes(run) == before


def test_the_same_file_is_the_same_inode(tmp_path: Path) -> None:
    first, second = write_text(tmp_path / "a", "x"), write_text(tmp_path / "b", "x")
    os.link(first, tmp_path / "c")
    assert _same_file(first, tmp_path / "c") and _same_file(tmp_path / "c", first)
    assert not _same_file(first, second) and not _same_file(second, first)
    assert not _same_file(first, tmp_path / "missing")


def test_nested_empty_folders_come_back(run: Path) -> None:
    """The snapshot and the rollback make every missing parent of an empty folder."""
    (run / "plots" / "per_class" / "empty").mkdir(parents=True)
    with pytest.raises(Boom), stage_transaction(run):
        import shutil

        shutil.rmtree(run / "plots")
        raise Boom
    assert (run / "plots" / "per_class" / "empty").is_dir()


def test_a_file_system_without_hard_links_gets_copies(
    run: Path, digest, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: Path, target: Path) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    before = digest(run)
    with pytest.raises(Boom), stage_transaction(run):
        stage_writes(run)
        raise Boom
    assert digest(run) == before
    assert [p.name for p in run.rglob(".*restore")] == []


@pytest.mark.parametrize("failing", ["mkdir", "link"])
def test_a_snapshot_the_disk_cannot_take_is_one_storage_error(
    run: Path, digest, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Nothing is written then: not the stage's files, not a partial snapshot."""
    import shutil

    full = OSError(28, "No space left on device")
    if failing == "mkdir":
        original = Path.mkdir

        def mkdir(self: Path, *args, **kwargs) -> None:
            if self.name.endswith(".partial"):
                raise full
            original(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", mkdir)
    else:
        monkeypatch.setattr(os, "link", lambda *args: (_ for _ in ()).throw(full))
        monkeypatch.setattr(shutil, "copy2", lambda *args: (_ for _ in ()).throw(full))
    before = digest(run)
    body_ran = False
    snapshot_refused = pytest.raises(
        StorageError, match="cannot snapshot .*No space left on device"
    )
    with snapshot_refused, stage_transaction(run):
        body_ran = True
    assert not body_ran and digest(run) == before
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints",
        "config.resolved.yaml",
        "empty",
        "export",
    ]


def test_a_kept_file_in_a_folder_the_stage_made_survives_and_nothing_else(run: Path) -> None:
    """The kept path's new parent folders stay; every other new file, anywhere, goes."""
    report = run / "export" / "hailo" / "hailo8" / "failed_readiness_report.json"
    with pytest.raises(Boom), stage_transaction(run):
        write_text(report, "why")
        keep_on_failure(report)
        write_text(run / "export" / "hailo" / "model.har", "half")
        write_text(run / "zz_new.json", "{}")  # the run folder's own files are walked last
        raise Boom
    assert report.read_text() == "why"
    assert not (run / "export" / "hailo" / "model.har").exists()
    assert not (run / "zz_new.json").exists()


def test_everything_in_a_kept_folder_survives(run: Path) -> None:
    with pytest.raises(Boom), stage_transaction(run):
        write_text(run / "plots" / "a.png", "a")
        write_text(run / "plots" / "b" / "c.png", "c")
        keep_on_failure(run / "plots")
        raise Boom
    assert (run / "plots" / "a.png").is_file() and (run / "plots" / "b" / "c.png").is_file()


def test_only_a_stage_killed_before_is_announced(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with stage_transaction(run):
        pass
    assert capsys.readouterr().err == ""
    (run / SNAPSHOT_NAME).mkdir()  # what a killed stage leaves
    with stage_transaction(run):
        pass
    assert "was killed; it was rolled back" in capsys.readouterr().err


def test_a_failure_that_is_not_an_interrupt_keeps_its_message(run: Path) -> None:
    with pytest.raises(Boom) as caught, stage_transaction(run):
        raise Boom("the real cause")
    assert caught.value.args == ("the real cause",)


def test_an_interrupt_that_keeps_the_whole_run_does_not_claim_a_rollback(run: Path) -> None:
    """Training keeps an interrupted first run for --resume: its message must not say rolled back."""
    with pytest.raises(KeyboardInterrupt) as caught, stage_transaction(run):
        keep_on_failure(run)
        raise KeyboardInterrupt("Ctrl-C")
    assert caught.value.args == ("Ctrl-C",)


def test_a_missing_run_is_made_with_its_parents(tmp_path: Path) -> None:
    with stage_transaction(tmp_path / "runs" / "new", create=True):
        write_text(tmp_path / "runs" / "new" / "config.resolved.yaml", "x")
    assert (tmp_path / "runs" / "new" / "config.resolved.yaml").is_file()


def test_an_empty_folder_given_to_train_into_is_left_after_a_failure(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    with pytest.raises(Boom), stage_transaction(tmp_path / "mine", create=True):
        write_text(tmp_path / "mine" / "config.resolved.yaml", "x")
        raise Boom
    assert (tmp_path / "mine").is_dir() and not any((tmp_path / "mine").iterdir())


def test_the_callers_sigterm_handler_is_put_back(run: Path) -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        with stage_transaction(run):
            assert signal.getsignal(signal.SIGTERM) is not mine
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_transactional_stage_finds_its_run_argument_and_keeps_its_name(
    run: Path, digest, tmp_path: Path
) -> None:
    @transactional()
    def stage(note: str, run: Path) -> str:
        """A stage."""
        write_text(run / "checkpoints" / "best.pt", note)
        raise Boom

    before = digest(run)
    with pytest.raises(Boom):
        stage("new", run=run)
    with pytest.raises(Boom):
        stage("new", run)
    assert digest(run) == before
    assert (stage.__name__, stage.__doc__) == ("stage", "A stage.")
    with pytest.raises(CheckpointError, match="does not exist"):
        stage("new", tmp_path / "missing")  # only training makes its run
