"""Verify throughput over an unthrottled pty, and link efficiency at 921600 baud with 900-byte windows."""

from __future__ import annotations

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


def run(folder: Path) -> dict[str, Any]:
    import numpy as np

    # 9 channels x 100 samples int8 = 900-byte windows (the ontarget.md reference case)
    run_dir, _ = build_run(
        folder / "link", "tiny", ["data.source=synthetic:n=400,length=100,channels=9"]
    )
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(2000, 9, 100)).astype(np.float32)
    np.savez(run_dir / "bench_inputs.npz", inputs=windows)
    fast = _verify(run_dir, "emu://", 921600, 2000)
    throttled = _verify(run_dir, "emu://?baud=921600", 921600, 300)
    frame_bytes = throttled["link_stats"]["tx_bytes"] / throttled["samples_done"]
    return {
        "window_bytes": 900,
        "pty_unthrottled": {
            "windows": fast["samples_done"],
            "windows_per_s": fast["samples_per_s"],
            "tx_bytes_per_s": fast["link"]["tx_bytes_per_s"],
        },
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
