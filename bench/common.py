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

import numpy as np


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


def cut_ts_file(
    source: Path, target: Path, keep: Callable[[int], int], seed: int, rest: Path | None = None
) -> dict[str, int]:
    """Copy a `.ts` file keeping its header and `keep(n)` of the n data lines of each class, chosen
    by `seed`, in their original order, and the other lines to `rest` if given; returns windows kept
    per class."""
    lines = source.read_text().splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data") + 1
    data = [i for i in range(start, len(lines)) if lines[i].strip()]
    labels = np.array([lines[i].rsplit(":", 1)[1].strip() for i in data])
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    kept: dict[str, int] = {}
    for label in sorted(set(labels)):
        rows = np.flatnonzero(labels == label)
        kept[str(label)] = keep(len(rows))
        chosen += rng.choice(rows, size=kept[str(label)], replace=False).tolist()
    kept_lines = sorted(data[k] for k in chosen)
    target.write_text("".join(lines[:start] + [lines[i] for i in kept_lines]))
    if rest is not None:
        others = sorted(set(data) - set(kept_lines))
        rest.write_text("".join(lines[:start] + [lines[i] for i in others]))
    return kept


def add_arm_options(parser: argparse.ArgumentParser, default_out: Path) -> None:
    """`--set KEY=VALUE` (one ablation arm's overrides) and `--out`, shared by the accuracy benches."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default=str(default_out), help="writes OUT.md and OUT.json")


def machine() -> str:
    """The host line every bench result starts with, CPU model and widest vector extension included:
    float training takes other kernels on AVX2 than on AVX-512, so accuracy moves with the host
    (bench/README.md), and results are compared on one host only."""
    return f"{platform.machine()}, {cpu()}, {platform.python_version()}, {os.cpu_count()} CPUs"


def cpu() -> str:
    """'MODEL (EXTENSION)': the processor and the widest vector extension it has."""
    from edgekit.quantize.overflow import cpu_model_and_flags

    model, flags = cpu_model_and_flags()
    widest = next((f for f in ("avx512f", "avx2", "avx", "sve", "asimd") if f in flags), "")
    name = model or "CPU unknown"
    return f"{name} ({widest})" if widest else name


def mean_sd(runs: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """Mean and sample standard deviation of one figure over runs (0 for a single run)."""
    values = [r[key] for r in runs]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
