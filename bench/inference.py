"""Export wall time; per-window latency of ORT int8 / ORT float / PyTorch eager / integer reference."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import build_run, median_seconds


def run(folder: Path) -> dict[str, Any]:
    import torch
    from edgekit.onnx_io import OnnxRunner
    from edgekit.quantize.integer_reference import IntegerReference
    from edgekit.rundir.run import Run
    from edgekit.targets import run_export

    torch.set_num_threads(1)
    run_dir, _ = build_run(
        folder / "latency", None, ["train.float_epochs=5", "train.qat_epochs=2"], targets=()
    )
    export_seconds = {}
    for target in ("onnx", "hailo"):
        start = time.perf_counter()
        run_export(run_dir, target)
        export_seconds[target] = time.perf_counter() - start
    run = Run(run_dir)
    X = np.concatenate([run.data.arrays[s][0] for s in ("train", "val", "test")])
    X = np.concatenate([X] * max(1, 256 // len(X)))[:256]
    one = X[:1]
    qat, float_model = run.qat_model(), run.float_model()
    int8 = OnnxRunner(run_dir / "export/onnx/model_int8.onnx")
    flt = OnnxRunner(run_dir / "export/onnx/model_float.onnx")
    reference = IntegerReference.from_onnx(run_dir / "export/onnx/model_int8.onnx")
    single = {
        "ort_int8": median_seconds(lambda: int8.run(one), 200),
        "ort_float": median_seconds(lambda: flt.run(one), 200),
        "torch_qat_eager": median_seconds(lambda: qat(torch.from_numpy(one)), 50),
        "torch_float_eager": median_seconds(lambda: float_model(torch.from_numpy(one)), 200),
        "integer_reference": median_seconds(lambda: reference.run(one), 50),
    }
    with torch.no_grad():
        batch = {
            "ort_int8": len(X) / median_seconds(lambda: int8.run(X), 3),
            "ort_float": len(X) / median_seconds(lambda: flt.run(X), 3),
            "torch_qat_eager_batch256": len(X)
            / median_seconds(lambda: qat(torch.from_numpy(X)), 3),
            "torch_float_eager_batch256": len(X)
            / median_seconds(lambda: float_model(torch.from_numpy(X)), 3),
            "integer_reference_batch256": len(X) / median_seconds(lambda: reference.run(X), 3),
        }
    return {
        "export_seconds": export_seconds,
        "single_window_us": {k: v * 1e6 for k, v in single.items()},
        "throughput_windows_per_s": batch,
        "ratios": {
            "torch_qat_over_ort_int8_latency": single["torch_qat_eager"] / single["ort_int8"],
            "ort_int8_over_ort_float_latency": single["ort_int8"] / single["ort_float"],
            "torch_float_over_ort_float_latency": single["torch_float_eager"] / single["ort_float"],
        },
        "threads": 1,
        "model_input": list(X.shape[1:]),
    }
