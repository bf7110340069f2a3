"""Training throughput (windows/s per phase) and time-to-accuracy on BasicMotions, default config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import build_run


def run(folder: Path) -> dict[str, Any]:
    import torch

    torch.set_num_threads(2)
    run_dir, metrics = build_run(folder / "basicmotions", None, [], targets=())
    history = json.loads((run_dir / "history.json").read_text())
    train_windows = metrics["splits"]["train"]
    result: dict[str, Any] = {
        "train_windows": train_windows,
        "total_seconds": metrics["train_seconds"],
    }
    elapsed = 0.0
    for phase in ("float", "qat"):
        rows = [h for h in history if h["phase"] == phase]
        seconds = [r["seconds"] for r in rows]
        result[f"{phase}_epochs"] = len(rows)
        result[f"{phase}_windows_per_s"] = train_windows * len(rows) / sum(seconds)
        first = next((i for i, r in enumerate(rows) if r["val_acc"] >= 1.0), None)
        result[f"{phase}_seconds_to_val_acc_1"] = (
            None if first is None else round(elapsed + sum(seconds[: first + 1]), 3)
        )
        elapsed += sum(seconds)
    result["int8_test_accuracy"] = metrics["int8_test_accuracy"]
    result["float_test_accuracy"] = metrics["float_test_accuracy"]
    result["qat_over_float_time_per_window"] = (
        result["float_windows_per_s"] / result["qat_windows_per_s"]
    )
    return result
