"""`--target onnx`: the int8 QDQ model (Brevitas QCDQ) for CPU/MCU runtimes, and the float twin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from edgekit.compare import PairReport, Tolerance, compare
from edgekit.export import (
    REFERENCE_SCHEMA_VERSION,
    WithPreFsq,
    deployment_metadata,
    export_torch,
    set_metadata,
    simplify,
)
from edgekit.models import Conv2dFSQNet
from edgekit.onnx_io import OnnxRunner, int8_input_variant, load_onnx, op_counts, save_onnx
from edgekit.quantize.activations import activation_ranges
from edgekit.quantize.fsq_grid import fsq_indices
from edgekit.rundir import layout
from edgekit.rundir.artifacts import write_json, write_npz
from edgekit.rundir.run import Run
from edgekit.targets.base import Target
from edgekit.targets.onnx_readiness import int8_readiness

INT8 = "model_int8.onnx"
FLOAT = "model_float.onnx"
INT8_INPUT = "model_int8_int8in.onnx"


def unsimplified(name: str) -> str:
    """The file name of a model before onnxsim (kept for the simplified-vs-raw parity pair)."""
    return name.replace(".onnx", ".unsimplified.onnx")


def quant_metadata(run: Run, model: Conv2dFSQNet) -> dict[str, str]:
    """What travels in the int8 model's metadata_props: how to feed it (deployment_metadata), the
    FSQ levels and the quantisation scales of its input, logits and FSQ input."""
    ranges = activation_ranges(model)
    return {
        **deployment_metadata(run),
        "edgekit_fsq_levels": ",".join(map(str, model.config.fsq_levels)),
        "edgekit_input_scale": repr(ranges["input_quant"]["scale"]),
        "edgekit_input_zero_point": repr(int(ranges["input_quant"]["zero_point"])),
        "edgekit_input_dither": repr(model.config.input_dither),
        "edgekit_logit_scale": repr(ranges["logit_quant"]["scale"]),
        "edgekit_pre_fsq_scale": repr(ranges["pre_fsq_quant"]["scale"]),
    }


def export(run: Run, target: Target, options: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """`--target onnx`: the int8 QDQ and float ONNX models, the int8-input variant, reference I/O, readiness."""
    qat, float_model = run.qat_model(), run.float_model()
    channels, _, width = run.data.input_shape
    example = torch.zeros(1, channels, 2, width)
    opset = options["opset"]
    meta = quant_metadata(run, qat)
    written = {}
    for name, model, quantized in ((INT8, qat, True), (FLOAT, float_model, False)):
        raw = export_torch(
            WithPreFsq(model),
            example,
            out_dir / unsimplified(name),
            opset,
            ["logits", "pre_fsq"],
            quantized,
        )
        simplified = simplify(raw, keep_qdq=quantized)
        set_metadata(simplified, {**meta, "edgekit_kind": "int8-qdq" if quantized else "float"})
        written[name] = save_onnx(simplified, out_dir / name)
    if options["int8_input"]:
        written[INT8_INPUT] = save_onnx(
            int8_input_variant(load_onnx(out_dir / INT8)), out_dir / INT8_INPUT
        )
    X_test, y_test = run.data.arrays["test"]
    X_ref = X_test[: options["reference_samples"]]
    int8_out = OnnxRunner(out_dir / INT8).run(X_ref)
    float_out = OnnxRunner(out_dir / FLOAT).run(X_ref)
    levels = qat.config.fsq_levels
    write_npz(
        out_dir / "reference_io.npz",
        schema_version=np.array(REFERENCE_SCHEMA_VERSION),
        inputs=X_ref,
        labels=y_test[: len(X_ref)],
        logits_int8=int8_out["logits"],
        pre_fsq_int8=int8_out["pre_fsq"],
        codes_int8=fsq_indices(int8_out["pre_fsq"], levels),
        logits_float=float_out["logits"],
        codes_float=fsq_indices(float_out["pre_fsq"], levels),
        logit_scale=np.array(float(meta["edgekit_logit_scale"])),
        input_scale=np.array(float(meta["edgekit_input_scale"])),
    )
    int8_model = load_onnx(out_dir / INT8)
    readiness = int8_readiness(int8_model, INT8)
    write_json(out_dir / "readiness_report.json", readiness)
    summary = {
        "target": "onnx",
        "files": sorted(written),
        "opset": opset,
        "int8_ops": dict(op_counts(int8_model)),
        "reference_samples": len(X_ref),
        "checkpoint": run.qat_checkpoint().name,
        "overflow_fix": qat.config.overflow_fix,
        "host_cpu": readiness["host_cpu"],
        "warnings": readiness["warnings"],
    }
    write_json(out_dir / "export.json", summary)
    return {**summary, "report_lines": readiness_lines(readiness)}


def readiness_lines(readiness: dict[str, Any]) -> list[str]:
    """The CLI's lines for a readiness warning: which layers can saturate on which CPUs, and the fix."""
    return [
        f"{rule['rule']} warning: {finding}"
        for rule in readiness["rules"]
        if rule["status"] == "warn"
        for finding in rule["findings"]
    ]


def _codes(output: dict[str, np.ndarray], levels: tuple[int, ...]) -> np.ndarray:
    return fsq_indices(output["pre_fsq"], levels)


def parity(run: Run, target: Target, limit: int = 0) -> list[PairReport]:
    """The onnx target's pairs: PyTorch and the integer reference against onnxruntime, onnxsim against raw."""
    from edgekit.evaluate import predict
    from edgekit.quantize.integer_reference import IntegerReference

    folder = run.path / layout.export_folder("onnx")
    tol = target.tolerances
    X = run.data.arrays["test"][0]
    X = X[:limit] if limit else X
    qat, float_model = run.qat_model(), run.float_model()
    levels = qat.config.fsq_levels
    int8 = OnnxRunner(folder / INT8).run(X)
    int8_raw = OnnxRunner(folder / unsimplified(INT8)).run(X)
    flt = OnnxRunner(folder / FLOAT).run(X)
    flt_raw = OnnxRunner(folder / unsimplified(FLOAT)).run(X)
    torch_int8, torch_int8_codes = predict(qat, X)
    torch_float, torch_float_codes = predict(float_model, X)
    reference = IntegerReference.from_onnx(folder / INT8)
    lsb = reference.output_scale
    integer = reference.run(X)
    reports = [
        compare(
            "onnx/qat_torch_vs_ort_int8",
            torch_int8,
            int8["logits"],
            tol["qat_vs_ort_int8"],
            ("pytorch-qat", "ort-int8"),
            lsb,
            torch_int8_codes,
            _codes(int8, levels),
        ),
        compare(
            "onnx/int_reference_vs_ort_int8",
            int8["logits"],
            integer.logits,
            tol["int_reference_vs_ort_int8"],
            ("ort-int8", "integer-reference"),
            lsb,
            _codes(int8, levels),
            integer.codes,
        ),
        compare(
            "onnx/float_torch_vs_ort_float",
            torch_float,
            flt["logits"],
            tol["float_vs_ort_float"],
            ("pytorch-float", "ort-float"),
            None,
            torch_float_codes,
            _codes(flt, levels),
        ),
        compare(
            "onnx/int8_simplified_vs_raw",
            int8_raw["logits"],
            int8["logits"],
            tol["simplified_vs_raw_int8"],
            ("unsimplified", "onnxsim"),
            lsb,
            _codes(int8_raw, levels),
            _codes(int8, levels),
        ),
        compare(
            "onnx/float_simplified_vs_raw",
            flt_raw["logits"],
            flt["logits"],
            tol["simplified_vs_raw_float"],
            ("unsimplified", "onnxsim"),
            None,
            _codes(flt_raw, levels),
            _codes(flt, levels),
        ),
    ]
    if (folder / INT8_INPUT).is_file():
        X_int8 = reference.quantize_input(X).astype(np.int8)
        variant = OnnxRunner(folder / INT8_INPUT).run(X_int8)
        reports.append(
            compare(
                "onnx/int8_input_vs_float_input",
                int8["logits"],
                variant["logits"],
                tol["int8_input_variant"],
                ("float-input", "int8-input"),
                lsb,
                _codes(int8, levels),
                _codes(variant, levels),
            )
        )
    return reports


# Brevitas' own CI accepts ±2 output LSB; we hold QCDQ vs ORT to 1 (the probe measured 0). The
# integer reference requantises as onnxruntime does, so every fused int8 op agrees exactly; the 1 LSB
# left is for the ops onnxruntime runs in float: the projection (uint8 in, int8 out, so it is not
# fused into QLinearConv) and FSQ's tanh, whose float32 result may fall on the other side of a
# threshold than the exact one for a pre-FSQ value within about 1e-6 of it.
TOLERANCES = {
    "qat_vs_ort_int8": Tolerance(max_lsb=1, min_top1_agreement=1.0, min_code_agreement=1.0),
    "int_reference_vs_ort_int8": Tolerance(
        max_lsb=1, min_top1_agreement=0.99, min_code_agreement=0.999, min_exact_fraction=0.999
    ),
    "float_vs_ort_float": Tolerance(
        atol=1e-4, rtol=1e-4, min_top1_agreement=1.0, min_code_agreement=0.99
    ),
    "simplified_vs_raw_int8": Tolerance(max_lsb=0, min_exact_fraction=1.0),
    "simplified_vs_raw_float": Tolerance(atol=1e-5, rtol=1e-5),
    "int8_input_variant": Tolerance(max_lsb=0, min_exact_fraction=1.0),
}
