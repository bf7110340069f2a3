"""Training throughput (optimizer steps/s and windows/s per phase) and time-to-accuracy on
BasicMotions, default config with a 15 % val cut. An epoch is `passes_per_epoch` passes over the train split (at least
`train.min_epoch_steps` steps), so its windows are passes x train windows, not the train windows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import build_run


def run(folder: Path) -> dict[str, Any]:
    import torch
    from edgekit.config import load_run_config
    from edgekit.train.loop import optimizer_steps_per_epoch, passes_per_epoch

    torch.set_num_threads(2)
    # with a val cut (the default trains without one) so time-to-accuracy reads off validation
    run_dir, metrics = build_run(
        folder / "basicmotions", None, ["data.split_fractions=[0.7,0.15,0.15]"], targets=()
    )
    history = json.loads((run_dir / "history.json").read_text())
    train_windows = metrics["splits"]["train"]
    train = load_run_config(run_dir).train
    passes = passes_per_epoch(train, train_windows)
    result: dict[str, Any] = {
        "train_windows": train_windows,
        "total_seconds": metrics["train_seconds"],
    }
    elapsed = 0.0
    for phase in ("float", "qat"):
        rows = [h for h in history if h["phase"] == phase]
        steps_per_epoch = optimizer_steps_per_epoch(train, train_windows, phase)
        result[f"{phase}_steps_per_epoch"] = steps_per_epoch
        seconds = [r["seconds"] for r in rows]
        result[f"{phase}_epochs"] = len(rows)
        result[f"{phase}_windows_per_s"] = passes * train_windows * len(rows) / sum(seconds)
        result[f"{phase}_steps_per_s"] = steps_per_epoch * len(rows) / sum(seconds)
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
