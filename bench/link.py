"""Verify throughput over an unthrottled pty, link efficiency at 921600 baud, and goodput on noisy
lines (`device serve` in its own process behind a paced, seeded byte-fault injector), 900-byte windows."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import build_run

NOISY_BAUD = 115200  # a common MCU UART rate; the injector paces the line like one
# long enough that the first windows, sent before the error rate is known, weigh little
NOISY_WINDOWS = 120
LINES = {  # per-byte fault probabilities, both directions
    "clean": "",
    "flip_0.1%": "flip=0.001",
    "flip_1%": "flip=0.01",
    "each_0.2%": "flip=0.002,drop=0.002,duplicate=0.002,garbage=0.002",
}


def _verify(
    run_dir: Path, device: str, baud: int, limit: int, no_reset: bool = False
) -> dict[str, Any]:
    from edgekit.verify import VerifyOptions, run_verify

    report = run_verify(
        run_dir,
        VerifyOptions(
            device=device,
            baud=baud,
            limit=limit,
            show_progress=False,
            inputs=str(run_dir / "bench_inputs.npz"),
            no_reset=no_reset,
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
def device_process(*args: str) -> Iterator[str]:
    """`edgekit device ...` in its own process, as a real device has its own CPU; yields its banner."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edgekit.cli", "device", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline() if process.stdout else ""
        if not line.startswith(("emulated device on ", "serving ")):
            raise RuntimeError(f"device did not start: {line!r}")
        yield line
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)


def _noisy(run_dir: Path, spec: str, seed: int) -> dict[str, Any]:
    """One verify run through a paced noisy line to `device serve` in its own process."""
    from edgekit.firmware_bridge.line_noise import LineNoise, NoisyWire

    with NoisyWire(LineNoise.parse(spec), seed=seed, baud=NOISY_BAUD) as line:
        serve = (
            "serve",
            "--port",
            line.device_path,
            "--run",
            str(run_dir),
            "--baud",
            str(NOISY_BAUD),
        )
        with device_process(*serve):
            report = _verify(run_dir, line.host_path, NOISY_BAUD, NOISY_WINDOWS, no_reset=True)
    stats = report["link_stats"]
    return {
        "windows_per_s": report["samples_per_s"],
        "windows": report["samples_done"],
        "chunk_bytes": stats["chunk_bytes"],
        "byte_error_rate_estimate": stats["byte_error_rate"],
        **{
            k: stats[k]
            for k in ("crc_errors", "retries", "incomplete", "resent_bytes", "recoveries")
        },
    }


def goodput(run_dir: Path, seeds: tuple[int, ...] = (1, 2, 3)) -> dict[str, Any]:
    """Windows/s on each line, median over seeds, and its ratio to the clean line's median."""
    rows = {}
    for name, spec in LINES.items():
        runs = sorted(
            (_noisy(run_dir, spec, seed) for seed in seeds), key=lambda r: r["windows_per_s"]
        )
        rows[name] = {
            **runs[len(runs) // 2],
            "all_windows_per_s": [r["windows_per_s"] for r in runs],
        }
    for row in rows.values():
        row["of_clean"] = row["windows_per_s"] / rows["clean"]["windows_per_s"]
    return {"baud": NOISY_BAUD, "windows_per_run": NOISY_WINDOWS, "lines": rows}


def run(folder: Path) -> dict[str, Any]:
    import numpy as np

    # 9 channels x 100 samples int8 = 900-byte windows (the ontarget.md reference case)
    run_dir, _ = build_run(
        folder / "link", "tiny", ["data.source=synthetic:n=400,length=100,channels=9"]
    )
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(2000, 9, 100)).astype(np.float32)
    np.savez(run_dir / "bench_inputs.npz", inputs=windows)
    with device_process("emulate", "--run", str(run_dir)) as banner:
        pty = banner.split()[3]
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
        "noisy_lines": goodput(run_dir),
    }
