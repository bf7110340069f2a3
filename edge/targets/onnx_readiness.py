"""Readiness rules of the int8 QDQ model (`edgekit check --target onnx FILE`): one int8 function on
every CPU.

Q1 bounds every int8 layer's u8 x s8 pair sums against int16 (edgekit.quantize.overflow), so that
onnxruntime on an x86 AVX2 CPU without VNNI computes what VNNI, Arm, the MCU C and the integer
reference compute. It warns rather than refuses: `model.overflow_fix=none` is a legitimate choice
for a model that only ever runs on VNNI, Arm or the MCU.
"""

from __future__ import annotations

from typing import Any

from edgekit.quantize.overflow import (
    INT16_MAX,
    OVERFLOW_FIX_HINT,
    read_cpu_flags,
    saturation_bounds,
)

REASONS = {
    "Q1": f"every int8 Conv/Gemm/MatMul: the worst pair 255 x w0 + 255 x w1 of a row fits int16 (<= {INT16_MAX}), "
    "so x86 AVX2 kernels (vpmaddubsw) cannot saturate and every CPU computes the same int8 result",
}


def overflow_rule(model: Any) -> dict[str, Any]:
    """Q1 on a loaded model: a finding per layer that can saturate, every layer's bound listed."""
    bounds = saturation_bounds(model)
    findings = [bound.describe() for bound in bounds if bound.can_saturate]
    if findings:
        findings.append(f"fix: {OVERFLOW_FIX_HINT}")
    if not bounds:  # nothing to bound: a float model given by mistake, most likely
        findings.append(
            "no int8 Conv/Gemm/MatMul in this graph; check the int8 export, model_int8.onnx"
        )
    return {
        "rule": "Q1",
        "severity": "W",
        "status": "warn" if findings else "pass",
        "reason": REASONS["Q1"],
        "findings": findings,
        "layers": [bound.to_dict() for bound in bounds],
    }


def int8_readiness(model: Any, file: str) -> dict[str, Any]:
    """The report of a loaded int8 model, with the CPU of the host that wrote it."""
    rules = [overflow_rule(model)]
    return {
        "schema_version": 1,
        "target": "onnx",
        "file": file,
        "ready": not [r for r in rules if r["status"] == "fail"],
        "errors": [r["rule"] for r in rules if r["status"] == "fail"],
        "warnings": [r["rule"] for r in rules if r["status"] == "warn"],
        "rules": rules,
        "host_cpu": read_cpu_flags(),
    }


def check_int8_readiness(path: str) -> dict[str, Any]:
    """Readiness of any int8 ONNX file (`edgekit check --target onnx FILE`)."""
    from edgekit.onnx_io import load_onnx

    return int8_readiness(load_onnx(path), str(path))
