"""`edgekit device serve` and `edgekit device emulate` as separate processes, as on a real board."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from edgekit.firmware_bridge.line_noise import LineNoise, NoisyWire
from edgekit.verify import VerifyOptions, run_verify


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


def verify(run_dir: Path, device: str, inputs: str | None = None, retries: int = 3) -> dict:
    options = VerifyOptions(
        device=device,
        timeout=2.0,
        retries=retries,
        show_progress=False,
        no_reset=True,
        inputs=inputs,
    )
    return run_verify(run_dir, options)


# A HELLO corrupted on its way to the device goes unanswered, like one to no device at all, and
# only `retries` silent tries are allowed. With 0.8 % of bytes faulty about a third of the tries
# that fail are silent, so 4 silent ones before a good one came in about 1 % of runs (seen once in
# CI); 7 make it about 0.03 %, the advice the error itself gives for a noisy line (--retries).
NOISY_LINE_RETRIES = 6


def test_device_serve_on_a_noisy_serial_line_twice(exported_run: Path, tmp_path: Path) -> None:
    """`device serve` in its own process behind a line with 0.2 % of each byte fault: two runs in a
    row with different windows, against the board that kept running, are both complete and exact."""
    X = np.load(exported_run / "data/X_test.npy")
    np.savez(tmp_path / "reversed.npz", inputs=X[::-1])
    noise = LineNoise(flip=0.002, drop=0.002, duplicate=0.002, garbage=0.002)
    with NoisyWire(noise, seed=11) as line:
        with edgekit_process(
            "device", "serve", "--port", line.device_path, "--run", str(exported_run),
            "--backend", "int-reference",
        ) as (process, banner):  # fmt: skip
            assert banner.startswith(
                f"serving int-reference model from {exported_run} on {line.device_path}"
            )
            first = verify(exported_run, line.host_path, retries=NOISY_LINE_RETRIES)
            second = verify(
                exported_run,
                line.host_path,
                inputs=str(tmp_path / "reversed.npz"),
                retries=NOISY_LINE_RETRIES,
            )
        assert process.returncode == 0 and "stopped" in process.stdout.read()  # type: ignore[union-attr]
        assert sum(line.to_device.counts.values()) and sum(line.to_host.counts.values())
    for report in (first, second):
        assert not report["partial"], report.get("error")
        assert report["samples_done"] == report["samples_total"] == len(X)
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
