"""Shared helpers: timing with medians, and small trained runs built in a temp folder."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def median_seconds(function: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def build_run(
    folder: Path,
    config_name: str | None,
    overrides: list[str],
    targets: tuple[str, ...] = ("onnx",),
) -> tuple[Path, dict[str, Any]]:
    """Train (and export) a run; returns its folder and training metrics."""
    from edgekit.config import load_config
    from edgekit.targets import run_export
    from edgekit.train.loop import run_training

    config = load_config(config_name, overrides)
    metrics = run_training(folder, config, show_progress=False)
    for target in targets:
        run_export(folder, target)
    return folder, metrics


def add_arm_options(parser: argparse.ArgumentParser, default_out: Path) -> None:
    """`--set KEY=VALUE` (one ablation arm's overrides) and `--out`, shared by the accuracy benches."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=str(default_out), help="writes OUT.md and OUT.json")


def machine() -> str:
    """The host line every bench result starts with."""
    return f"{platform.machine()}, {platform.python_version()}, {os.cpu_count()} CPUs"


def mean_sd(runs: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """Mean and sample standard deviation of one figure over runs (0 for a single run)."""
    values = [r[key] for r in runs]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
