"""The run lock: one writer per run, a live holder named and refused, a stale one named and replaced."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from edgekit.cli import cli, main
from edgekit.errors import RunLockError
from edgekit.rundir.lock import LOCK_NAME, _is_stale, run_lock


def write_lock(run_dir: Path, pid: int, host: str | None = None) -> None:
    holder = {
        "pid": pid,
        "host": host or socket.gethostname(),
        "command": "train",
        "started": time.time(),
    }
    (run_dir / LOCK_NAME).write_text(json.dumps(holder))


@pytest.fixture
def holder() -> Iterator[subprocess.Popen[bytes]]:
    """A live process of this host, to hold a lock."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


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
    holder: subprocess.Popen[bytes],
    run_copy: Path,
    digest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
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
        assert f"pid {holder.pid}" in str(result.exception) or f"pid {holder.pid}" in result.output
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


def test_out_that_cannot_be_a_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["train", "--config", "tiny", "--out", str(blocker / "run")])
    assert result.exit_code != 0
    assert "cannot create the run folder" in str(result.exception) + result.output


@pytest.mark.parametrize("content", ["{half-writ", "[1, 2]", ""])
def test_an_unreadable_lock_is_fresh_for_a_grace_period_then_stale(
    tmp_path: Path, content: str
) -> None:
    """A lock being written has no readable holder yet: refused while young, replaced once old."""
    lock = tmp_path / LOCK_NAME
    lock.write_text(content)
    young = pytest.raises(RunLockError, match="is being written by another edgekit process")
    with young, run_lock(tmp_path, "train"):
        pass
    old = time.time() - 11
    os.utime(lock, (old, old))
    notices: list[str] = []
    with run_lock(tmp_path, "train", on_stale=notices.append):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert notices == [f"removed a stale lock on {tmp_path} left by an unknown process"]
    assert not lock.exists()


def test_the_holder_is_named_with_its_command_pid_host_and_start(
    holder: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    write_lock(tmp_path, holder.pid)
    started = json.loads((tmp_path / LOCK_NAME).read_text())["started"]
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
    expected = (
        f"{tmp_path} is being written by `edgekit train` (pid {holder.pid} on "
        f"{socket.gethostname()}, since {since}); wait for it to finish, or delete "
        f"{tmp_path / LOCK_NAME} if that process is gone"
    )
    with pytest.raises(RunLockError) as refused, run_lock(tmp_path, "parity"):
        pass
    assert str(refused.value) == expected


def test_a_holder_owned_by_another_user_is_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_yours(pid: int, signal: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    write_lock(tmp_path, 4242)
    monkeypatch.setattr(os, "kill", not_yours)
    with pytest.raises(RunLockError, match="pid 4242"), run_lock(tmp_path, "train"):
        pass


def test_a_holder_without_a_numeric_pid_is_never_taken_over(tmp_path: Path) -> None:
    holder = {"pid": "123", "host": socket.gethostname(), "command": "train", "started": 0}
    (tmp_path / LOCK_NAME).write_text(json.dumps(holder))
    with pytest.raises(RunLockError, match="pid 123"), run_lock(tmp_path, "train"):
        pass


def test_a_stale_lock_that_will_not_go_is_refused_after_three_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_lock(tmp_path, 2**22 + 1)  # no such process
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)  # e.g. NFS lag
    notices: list[str] = []
    refused = pytest.raises(RunLockError, match=f"could not take the lock {tmp_path / LOCK_NAME}")
    with refused, run_lock(tmp_path, "train", on_stale=notices.append):
        pass
    assert len(notices) == 3


def test_a_lock_someone_else_holds_by_the_end_is_left_to_them(tmp_path: Path) -> None:
    with run_lock(tmp_path, "train"):
        write_lock(tmp_path, 4242)  # taken over meanwhile (deleted by hand, then another writer)
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == 4242


def test_the_lock_follows_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        with run_lock(tmp_path, "train"):
            assert (tmp_path / LOCK_NAME).stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(previous)


def test_an_unreadable_lock_is_young_for_ten_seconds(tmp_path: Path) -> None:
    lock = tmp_path / LOCK_NAME
    lock.write_text("")
    for age, taken in ((9.5, False), (10.5, True)):
        os.utime(lock, (time.time() - age, time.time() - age))
        assert _is_stale(lock, None) is taken, age
    assert _is_stale(tmp_path / "gone", None) is True  # removed since: nothing left to wait for


@pytest.mark.parametrize("host", ["\x00" + socket.gethostname(), socket.gethostname() + "~"])
def test_a_dead_pid_on_another_host_is_not_ours_to_judge(tmp_path: Path, host: str) -> None:
    """The pid is dead here, but it names a process on the other host: never taken over."""
    write_lock(tmp_path, 2**22 + 1, host=host)
    with pytest.raises(RunLockError, match="is being written by"), run_lock(tmp_path, "train"):
        pass


def test_checking_the_holder_sends_it_no_signal(
    holder: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    write_lock(tmp_path, holder.pid)
    with pytest.raises(RunLockError), run_lock(tmp_path, "train"):
        pass
    with pytest.raises(subprocess.TimeoutExpired):
        holder.wait(timeout=0.5)  # still running


def test_a_holder_without_a_start_time_is_dated_to_the_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        holder = {"pid": "x", "host": "elsewhere", "command": "export"}
        (tmp_path / LOCK_NAME).write_text(json.dumps(holder))
        with (
            pytest.raises(RunLockError, match=r"since 1970-01-01 00:00:00\)"),
            run_lock(tmp_path, "train"),
        ):
            pass
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_stale_lock_someone_else_removed_first_is_no_error(tmp_path: Path) -> None:
    write_lock(tmp_path, 2**22 + 1)

    def removed_by_another(message: str) -> None:
        (tmp_path / LOCK_NAME).unlink()

    with run_lock(tmp_path, "train", on_stale=removed_by_another):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
