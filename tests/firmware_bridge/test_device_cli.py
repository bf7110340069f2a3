"""`edgekit device serve` and `edgekit device emulate` as separate processes, as on a real board."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from edgekit.firmware_bridge.verify import VerifyOptions, run_verify


class NullModem:
    """Two pseudo-terminals wired back to back, like two UARTs joined by a crossed cable."""

    def __init__(self) -> None:
        self.masters, self.slaves, self.paths = [], [], []
        for _ in range(2):
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)  # so close() never waits on a stuck write
            self.masters.append(master)
            self.slaves.append(slave)  # kept open so each pty survives its users reconnecting
            self.paths.append(os.ttyname(slave))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._copy, daemon=True)
        self.thread.start()

    def _copy(self) -> None:
        other = {self.masters[0]: self.masters[1], self.masters[1]: self.masters[0]}
        while not self.stop.is_set():
            ready, _, _ = select.select(self.masters, [], [], 0.05)
            for fd in ready:
                try:
                    data = memoryview(os.read(fd, 4096))
                except OSError:  # nothing to read after all
                    continue
                while data and not self.stop.is_set():
                    select.select([], [other[fd]], [], 0.05)
                    try:
                        data = data[os.write(other[fd], data) :]
                    except BlockingIOError:
                        continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join()  # before the fds go: a late read on a reused fd number corrupts files
        for fd in (*self.masters, *self.slaves):
            os.close(fd)


@contextmanager
def edgekit_process(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start `edgekit ARGS` and yield it with its first line of output; Ctrl-C it afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edgekit.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process, process.stdout.readline()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


def verify(run_dir: Path, device: str) -> dict:
    options = VerifyOptions(device=device, timeout=2.0, show_progress=False)
    return run_verify(run_dir, options)


def test_device_serve_on_a_serial_port(exported_run: Path) -> None:
    modem = NullModem()
    try:
        host_end, board_end = modem.paths
        with edgekit_process(
            "device", "serve", "--port", board_end, "--run", str(exported_run),
            "--backend", "int-reference",
        ) as (process, banner):  # fmt: skip
            assert banner.startswith(
                f"serving int-reference model from {exported_run} on {board_end}"
            )
            report = verify(exported_run, host_end)
        assert process.returncode == 0 and "stopped" in process.stdout.read()  # type: ignore[union-attr]
    finally:
        modem.close()
    assert not report["partial"], report.get("error")
    assert report["samples_done"] == report["samples_total"] > 0
    assert report["device"]["runtime"] == "int-reference"
    assert report["passed"] and report["rows"]["device_vs_reference"]["max_lsb"] <= 1


def test_device_emulate_prints_a_port_verify_can_use(exported_run: Path) -> None:
    with edgekit_process("device", "emulate", "--run", str(exported_run)) as (process, banner):
        assert banner.startswith("emulated device on /dev/pts/"), banner
        report = verify(exported_run, banner.split()[3])
    assert process.returncode == 0
    assert not report["partial"], report.get("error")
    assert report["device"]["runtime"] == "onnxruntime"


def test_device_serve_on_a_missing_port_is_one_line(exported_run: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgekit.cli", "device", "serve", "--port", "/dev/ttyEDGEKIT9",
         "--run", str(exported_run)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: device /dev/ttyEDGEKIT9 does not exist; check the cable and the port name "
        "(ls /dev/tty*), or use emu://"
    ]


def test_device_side_needs_only_the_int8_model_and_no_torch(
    exported_run: Path, tmp_path: Path
) -> None:
    """A board serving the model needs the int8 ONNX file, onnxruntime and numpy; not torch."""
    board = tmp_path / "board"
    (board / "export/onnx").mkdir(parents=True)
    shutil.copy(exported_run / "export/onnx/model_int8.onnx", board / "export/onnx")
    code = (
        "import sys; from edgekit.firmware_bridge.emulator import Emulator\n"
        f"for backend in ('onnxruntime', 'int-reference'): Emulator({str(board)!r}, backend).close()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_verify_on_a_missing_device_is_one_line(
    exported_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgekit.cli import main

    argv = ["edgekit", "verify", str(exported_run), "--device", "/dev/ttyEDGEKIT9"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 5
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: device /dev/ttyEDGEKIT9 does not exist"
    ), lines
    assert "partial report with 0 samples" in lines[0]
