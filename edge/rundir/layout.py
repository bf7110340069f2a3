"""The run directory's layout: every path a stage writes or another reads, relative to the run,
named once (docs/ARCHITECTURE.md has the table of who writes and who reads each)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

CONFIG = "config.resolved.yaml"
MANIFEST = "manifest.json"
DATA = "data"
CHECKPOINTS = "checkpoints"
CALIBRATION = "calibration"
CALIBRATION_SET = f"{CALIBRATION}/calib_set.npz"
CALIBRATION_REPORT = f"{CALIBRATION}/report.json"
EXPORT = "export"
INT8_MODEL = f"{EXPORT}/onnx/model_int8.onnx"
PARITY = "parity.json"
PARITY_REPORT = "parity.md"
PARITY_LAYERS_PLOT = "parity_layers.png"
VERIFY = "verify"
SUMMARY = "summary.json"

# What the stages write into a run: a new training removes all of it so nothing stale survives.
RUN_OUTPUTS = (
    CONFIG,
    MANIFEST,
    DATA,
    CHECKPOINTS,
    "history.json",
    "metrics.json",
    "report.md",
    "curves.png",
    "confusion.png",
    "fsq_codes.png",
    CALIBRATION,
    EXPORT,
    PARITY,
    PARITY_REPORT,
    PARITY_LAYERS_PLOT,
    VERIFY,
    SUMMARY,
)


def export_folder(target: str) -> str:
    """Where a target's export lives."""
    return f"{EXPORT}/{target}"


class HasPath(Protocol):
    """A `Run` (edgekit.rundir.run), without importing it here: the layout stays a leaf module."""

    path: Path


def run_path(run: HasPath | str | Path) -> Path:
    """The folder of a run given as a `Run` or as its path (every stage's first argument).

    A stage opens its own `Run` on this folder: a `Run` reads the manifest once, and the stage
    must see what the stages before it recorded there.
    """
    return run if isinstance(run, Path) else Path(run) if isinstance(run, str) else run.path
