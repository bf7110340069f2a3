"""`edgekit calibrate RUN`: representative set, activation calibration, bias correction, measured effect.

The calibrated model is adopted (used by export) only if it does not lose validation accuracy (train
accuracy without a val split) and does not raise the logit error against the float twin; the report
shows both sides either way.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edgekit.calibrate.representative import save_calibration_set, select_representative
from edgekit.compare import Tolerance, compare
from edgekit.config import CalibrateConfig
from edgekit.evaluate import predict
from edgekit.quantize.activations import activation_ranges, calibrate_activations, correct_biases
from edgekit.rundir import layout
from edgekit.rundir.artifacts import Manifest, sha256_file, write_json
from edgekit.rundir.checkpoint import load_checkpoint, save_checkpoint
from edgekit.rundir.transaction import transactional

if TYPE_CHECKING:
    from edgekit.rundir.run import Run


def _effect(model: Any, float_logits: np.ndarray, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy on the judging windows, and closeness to the float twin by the one comparison engine."""
    logits, _ = predict(model, X)
    versus_float = compare(
        "calibrated_vs_float", float_logits, logits, Tolerance(min_top1_agreement=0)
    )
    return {
        "accuracy": float((logits.argmax(1) == y).mean()),
        "logit_mae_vs_float": versus_float.mean_abs,
        "top1_agreement_vs_float": versus_float.top1_agreement,
    }


def adopt(before: dict[str, float], after: dict[str, float]) -> bool:
    """Export the calibrated model only if it loses no accuracy on the judging windows and does not
    move the logits further from the float twin: calibration must never make the shipped model worse."""
    return (
        after["accuracy"] >= before["accuracy"]
        and after["logit_mae_vs_float"] <= before["logit_mae_vs_float"]
    )


@transactional()
def run_calibration(run: Run | str | Path, config: CalibrateConfig | None = None) -> dict[str, Any]:
    """`edgekit calibrate RUN`: calibrate a copy of the QAT checkpoint on a representative train set,
    adopt it for export only where `adopt` says so, and report both sides. `config` defaults to
    the run's own `calibrate:` section."""
    from edgekit.rundir.run import CALIBRATION_SCHEMA_VERSION, Run

    start = time.perf_counter()
    run = Run(layout.run_path(run))
    config = config or run.config.calibrate
    X_train, y_train = run.data.arrays["train"]
    indices = select_representative(X_train, y_train, config.num_windows, run.config.data.seed)
    X_calib, y_calib = X_train[indices], y_train[indices]
    folder = run.path / layout.CALIBRATION
    hashes = save_calibration_set(folder, X_calib, y_calib, indices)

    source = run.checkpoints / "best.pt"
    run.verified("checkpoints/best.pt")
    model, _ = load_checkpoint(source)
    judged_on = "val" if len(run.data.arrays["val"][1]) else "train"  # no val split: train
    X_judge, y_judge = run.data.arrays[judged_on]
    float_logits, _ = predict(run.float_model(), X_judge)
    before = _effect(model, float_logits, X_judge, y_judge)
    calibrated = copy.deepcopy(model)
    calibrate_activations(calibrated, X_calib, config.batch_size)
    if config.bias_correction:
        correct_biases(calibrated, X_calib, config.batch_size)
    after = _effect(calibrated, float_logits, X_judge, y_judge)
    adopted = adopt(before, after)
    save_checkpoint(
        run.checkpoints / "calibrated.pt", calibrated, phase="calibrated", source=source.name
    )
    ranges = activation_ranges(calibrated if adopted else model)
    write_json(folder / "activation_ranges.json", ranges)
    report = {
        "schema_version": CALIBRATION_SCHEMA_VERSION,
        "windows": len(indices),
        "class_counts": np.bincount(y_calib, minlength=run.data.num_classes).tolist(),
        "sha256": hashes,
        "bias_correction": config.bias_correction,
        "judged_on": judged_on,
        "before": before,
        "after": after,
        "adopted": bool(adopted),
        "source_checkpoint_sha256": sha256_file(
            source
        ),  # a retrained run invalidates this calibration
        "checkpoint_for_export": "calibrated.pt" if adopted else "best.pt",
    }
    write_json(folder / "report.json", report)
    Manifest.finish_stage(
        run.path,
        "calibrate",
        time.perf_counter() - start,
        [folder, run.checkpoints / "calibrated.pt"],
        adopted=adopted,
    )
    return report
