"""Verify throughput over an unthrottled pty, and link efficiency at 921600 baud with 900-byte windows."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import build_run


def _verify(run_dir: Path, device: str, baud: int, limit: int) -> dict[str, Any]:
    from edgekit.firmware_bridge.verify import VerifyOptions, run_verify

    report = run_verify(
        run_dir,
        VerifyOptions(
            device=device,
            baud=baud,
            limit=limit,
            show_progress=False,
            inputs=str(run_dir / "bench_inputs.npz"),
        ),
    )
    assert not report["partial"], report.get("error")
    return report


def _median_run(verify: Callable[[], dict[str, Any]], repeats: int = 5) -> dict[str, Any]:
    """The report of the median run by windows/s: a pty shares the CPU with everything else."""
    reports = sorted((verify() for _ in range(repeats)), key=lambda r: r["samples_per_s"])
    return reports[repeats // 2]


def _throughput(report: dict[str, Any]) -> dict[str, Any]:
    return {
        "windows": report["samples_done"],
        "windows_per_s": report["samples_per_s"],
        "tx_bytes_per_s": report["link"]["tx_bytes_per_s"],
    }


@contextlib.contextmanager
def emulator_process(run_dir: Path) -> Iterator[str]:
    """`edgekit device emulate` in its own process, as a real device has its own CPU; yields the pty."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edgekit.cli", "device", "emulate", "--run", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith("emulated device on "):
            raise RuntimeError(f"emulator did not start: {line!r}")
        yield line.split()[3]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)


def run(folder: Path) -> dict[str, Any]:
    import numpy as np

    # 9 channels x 100 samples int8 = 900-byte windows (the ontarget.md reference case)
    run_dir, _ = build_run(
        folder / "link", "tiny", ["data.source=synthetic:n=400,length=100,channels=9"]
    )
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(2000, 9, 100)).astype(np.float32)
    np.savez(run_dir / "bench_inputs.npz", inputs=windows)
    with emulator_process(run_dir) as pty:
        separate = _median_run(lambda: _verify(run_dir, pty, 921600, 2000))
    in_process = _median_run(lambda: _verify(run_dir, "emu://", 921600, 2000))
    throttled = _verify(run_dir, "emu://?baud=921600", 921600, 300)
    frame_bytes = throttled["link_stats"]["tx_bytes"] / throttled["samples_done"]
    return {
        "window_bytes": 900,
        "pty_unthrottled": _throughput(separate),
        "pty_unthrottled_in_process": _throughput(in_process),
        "uart_921600": {
            "windows": throttled["samples_done"],
            "windows_per_s": throttled["samples_per_s"],
            "tx_bytes_per_s": throttled["link"]["tx_bytes_per_s"],
            "wire_limit_bytes_per_s": throttled["link"]["wire_limit_bytes_per_s"],
            "wire_utilisation": throttled["link"]["wire_utilisation"],
            "payload_fraction": throttled["link"]["payload_fraction"],
            "bytes_on_wire_per_window": frame_bytes,
            "windows_per_s_wire_limit": throttled["link"]["wire_limit_bytes_per_s"] / frame_bytes,
        },
    }
