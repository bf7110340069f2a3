"""edgekit: IMU classifiers from raw sensor windows to a validated model on an edge device.

The Python API beside the CLI: each stage's public function, loaded on first use so that
`import edgekit` (and `edgekit --help`) stay free of torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it
API = {
    "load_config": "edgekit.config",
    "load_run_config": "edgekit.config",
    "load_source": "edgekit.data.sources",
    "run_training": "edgekit.train.loop",
    "run_evaluate": "edgekit.evaluate",
    "run_calibration": "edgekit.calibrate.stage",
    "run_export": "edgekit.targets",
    "run_parity": "edgekit.parity",
    "VerifyOptions": "edgekit.verify",
    "run_verify": "edgekit.verify",
    "run_pipeline": "edgekit.pipeline",
    "run_sweep": "edgekit.sweep.run",
    "load_checkpoint": "edgekit.rundir.checkpoint",
    "IntegerReference": "edgekit.quantize.integer_reference",
}
__all__ = ["__version__", *API]


def __getattr__(name: str) -> Any:
    if name not in API:
        raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
    return getattr(importlib.import_module(API[name]), name)
