"""The run lock: one writer per run, a live holder named and refused, a stale one named and replaced."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from edgekit.cli import cli, main
from edgekit.errors import RunLockError
from edgekit.rundir.lock import LOCK_NAME, run_lock


def write_lock(run_dir: Path, pid: int, host: str | None = None) -> None:
    holder = {
        "pid": pid,
        "host": host or socket.gethostname(),
        "command": "train",
        "started": time.time(),
    }
    (run_dir / LOCK_NAME).write_text(json.dumps(holder))


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    with run_lock(tmp_path, "train"):
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["command"] == "train"
        with pytest.raises(RunLockError, match=f"pid {os.getpid()}"), run_lock(tmp_path, "parity"):
            pass
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_is_released_when_the_body_fails(tmp_path: Path) -> None:
    with pytest.raises(ValueError), run_lock(tmp_path, "export"):
        raise ValueError("stage failed")
    assert not (tmp_path / LOCK_NAME).exists()


def test_stale_lock_is_named_and_replaced(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(finished.stdout)
    write_lock(tmp_path, dead_pid)
    notices: list[str] = []
    with run_lock(tmp_path, "parity", on_stale=notices.append):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert len(notices) == 1 and f"pid {dead_pid}" in notices[0] and "stale" in notices[0]


def test_a_lock_from_another_host_is_never_taken_over(tmp_path: Path) -> None:
    write_lock(tmp_path, 1, host="some-other-host")
    with pytest.raises(RunLockError, match="some-other-host"), run_lock(tmp_path, "train"):
        pass
    assert (tmp_path / LOCK_NAME).exists()


def test_second_writer_gets_one_line_and_the_run_is_untouched(
    run_copy: Path, digest, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        write_lock(run_copy, holder.pid)
        before = digest(run_copy)
        for args in (
            ["parity", str(run_copy)],
            ["calibrate", str(run_copy)],
            ["export", str(run_copy), "--target", "onnx"],
            ["train", "--config", "tiny", "--out", str(run_copy)],
        ):
            result = CliRunner().invoke(cli, args)
            assert result.exit_code != 0, args
            assert (
                f"pid {holder.pid}" in str(result.exception) or f"pid {holder.pid}" in result.output
            )
        monkeypatch.setattr(sys, "argv", ["edgekit", "parity", str(run_copy)])  # the console entry
        with pytest.raises(SystemExit) as exited:
            main()
        stderr = capsys.readouterr().err
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert exited.value.code == 7 and len(errors) == 1 and "Traceback" not in stderr
        assert f"pid {holder.pid}" in errors[0] and "delete" in errors[0]
        assert digest(run_copy) == before
        # read-only commands need no lock
        assert CliRunner().invoke(cli, ["evaluate", str(run_copy)]).exit_code == 0
    finally:
        holder.kill()
        holder.wait()


def test_out_that_cannot_be_a_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["train", "--config", "tiny", "--out", str(blocker / "run")])
    assert result.exit_code != 0
    assert "cannot create the run folder" in str(result.exception) + result.output
