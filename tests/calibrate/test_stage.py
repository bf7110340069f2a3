"""The calibration adoption rule: a calibrated model is exported only if it is no worse."""

from __future__ import annotations

import pytest
from edgekit.calibrate.stage import adopt

BEFORE = {"accuracy": 0.90, "logit_mae_vs_float": 0.20}


@pytest.mark.parametrize(
    ("accuracy", "error", "adopted"),
    [
        (0.95, 0.10, True),
        (0.90, 0.20, True),
        (0.90, 0.19, True),
        (0.95, 0.21, False),
        (0.89, 0.10, False),
        (0.80, 0.30, False),
    ],
)
def test_adopted_only_without_losing_accuracy_or_moving_away_from_float(
    accuracy: float, error: float, adopted: bool
) -> None:
    assert adopt(BEFORE, {"accuracy": accuracy, "logit_mae_vs_float": error}) is adopted


def test_the_run_reports_which_checkpoint_export_uses(exported_run) -> None:
    import json

    report = json.loads((exported_run / "calibration" / "report.json").read_text())
    assert report["adopted"] == adopt(report["before"], report["after"])
    assert report["checkpoint_for_export"] == ("calibrated.pt" if report["adopted"] else "best.pt")
    assert sorted(report["sha256"]) == ["calib_set.npz"]
    assert not (exported_run / "calibration" / "calib_nhwc.npy").exists()  # it had no reader
