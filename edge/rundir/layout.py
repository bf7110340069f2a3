"""The run directory's layout: every path a stage writes or another reads, relative to the run,
named once (docs/ARCHITECTURE.md has the table of who writes and who reads each)."""

from __future__ import annotations

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
    CALIBRATION,
    EXPORT,
    PARITY,
    VERIFY,
    SUMMARY,
)


def export_folder(target: str) -> str:
    """Where a target's export lives."""
    return f"{EXPORT}/{target}"
