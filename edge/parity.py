"""`edgekit parity`: every export against its CPU reference, with tolerances declared on each target
(the comparison itself is edgekit.compare)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from edgekit.compare import PairReport
from edgekit.errors import ArtifactError, ConfigError
from edgekit.layer_parity import LayerReport, first_divergence, format_layers, layer_parity
from edgekit.quantize.overflow import read_cpu_flags, saturation_bounds, saturation_diagnosis
from edgekit.rundir import layout
from edgekit.rundir.artifacts import Manifest, write_json, write_text
from edgekit.rundir.run import Run
from edgekit.rundir.transaction import transactional
from edgekit.targets import exported_targets, get_target

ORT_INT8 = "ort-int8"  # the label of onnxruntime's int8 side in every parity pair


@transactional()
def run_parity(
    run: Run | str | Path, targets: list[str] | None = None, limit: int = 0, layers: bool = False
) -> list[PairReport]:
    """Parity of the given (default: every exported) targets of a run on its first `limit` test
    windows (0: all); writes `parity.json`. With `layers`, and whenever a pair against onnxruntime's
    int8 model fails, `parity.json` also holds the per-layer comparison (edgekit.layer_parity)."""
    if limit < 0:
        raise ConfigError(f"parity limit must be >= 0 (0 = every test window), got {limit}")
    run = Run(layout.run_path(run))
    names = targets or exported_targets(run.path)
    if not names:
        raise ArtifactError(
            f"{run.path} has no exports; run `edgekit export {run.path} --target onnx` first"
        )
    start = time.perf_counter()
    reports: list[PairReport] = []
    for name in names:
        target = get_target(name)
        run.verified_folder(f"export/{name}")  # nothing damaged or edited since the export
        reports += target.parity(run, limit)
    against_ort = [r for r in reports if not r.passed and ORT_INT8 in (r.reference, r.candidate)]
    X = run.data.arrays["test"][0]
    X = X[:limit] if limit else X
    per_layer: dict[str, Any] = {}
    if layers or against_ort:
        mcu = run.path / layout.export_folder("mcu")
        c_build = mcu if "mcu" in names and (mcu / "build" / "edgekit_layers").is_file() else None
        per_layer = layer_summary(
            layer_parity(
                run.path / layout.INT8_MODEL, X, qat_model=run.qat_model(), c_build=c_build
            )
        )
    if against_ort:
        diagnosis = explain_ort_mismatch(run.path / layout.INT8_MODEL, X)
        if per_layer.get("first_difference"):
            first = per_layer["first_difference"]
            diagnosis = f"{diagnosis}; " if diagnosis else ""
            diagnosis += (
                f"the first layer that differs is {first['index']} {first['name']} "
                f"({first['max_lsb']:g} LSB; parity.json 'layers')"
            )
        for report in against_ort:
            report.diagnosis = diagnosis
    result = {
        "schema_version": 1,
        "split": "test",
        "targets": names,
        "passed": all(r.passed for r in reports),
        "host_cpu": read_cpu_flags(),  # int8 kernels depend on it: reports from two hosts compare
        "pairs": [r.to_dict() for r in reports],
        **per_layer,
    }
    write_json(run.path / layout.PARITY, result)
    written = [run.path / layout.PARITY, run.path / layout.PARITY_REPORT]
    (run.path / layout.PARITY_LAYERS_PLOT).unlink(missing_ok=True)  # never a stale picture
    if per_layer:
        from edgekit.plots import layer_differences

        written.append(layer_differences(per_layer["layers"], run.path / layout.PARITY_LAYERS_PLOT))
    write_text(run.path / layout.PARITY_REPORT, render_markdown(result, len(X)))
    Manifest.finish_stage(
        run.path, "parity", time.perf_counter() - start, written, passed=result["passed"]
    )
    return reports


def render_markdown(result: dict[str, Any], windows: int) -> str:
    """parity.md: every pair with its verdict and, when computed, the per-layer comparison and its
    picture."""
    cpu = result["host_cpu"]
    lines = [
        f"# Parity: {'PASS' if result['passed'] else 'FAIL'}",
        "",
        f"{len(result['pairs'])} pairs on {windows} test windows; host {cpu.get('model', '?')} "
        f"({cpu.get('int8_kernel_class', '?')})",
        "",
        "| pair | reference | candidate | max abs | max LSB | top-1 | codes | exact | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for pair in result["pairs"]:
        lsb = "-" if pair["max_lsb"] is None else f"{pair['max_lsb']:.2f}"
        codes = "-" if pair["code_agreement"] is None else f"{pair['code_agreement']:.4f}"
        verdict = "PASS" if pair["passed"] else "FAIL: " + "; ".join(pair["failures"])
        lines.append(
            f"| {pair['name']} | {pair['reference']} | {pair['candidate']} | "
            f"{pair['max_abs']:.3g} | {lsb} | {pair['top1_agreement']:.4f} | {codes} | "
            f"{pair['exact_fraction']:.4f} | {verdict} |"
        )
    if result.get("layers"):
        lines += ["", "## Per layer", "", "```", format_layers(result), "```", ""]
        lines += [f"![max difference per layer, in LSB]({layout.PARITY_LAYERS_PLOT})", ""]
    return "\n".join(lines)


def layer_summary(layers: list[LayerReport]) -> dict[str, Any]:
    """parity.json's per-layer part: every layer, and the first that differs (None: all exact)."""
    first = first_divergence(layers)
    return {
        "layers": [layer.to_dict() for layer in layers],
        "first_difference": None if first is None else first.to_dict(),
    }


def explain_ort_mismatch(model_path: Path, X: np.ndarray) -> str:
    """Why onnxruntime's int8 result can differ from the integer reference on this host, when int16
    pair saturation explains it: the layers that can saturate, this CPU, whether the AVX2 emulation
    reproduces onnxruntime here exactly, and the fix; empty when no layer can saturate."""
    from edgekit.onnx_io import OnnxRunner
    from edgekit.quantize.integer_reference import IntegerReference

    reference = IntegerReference.from_onnx(model_path)
    diagnosis = saturation_diagnosis(saturation_bounds(reference.model), read_cpu_flags())
    if not diagnosis:
        return ""
    emulated = IntegerReference(reference.model, "avx2-u8s8").run(X).logits
    reproduced = np.array_equal(emulated, OnnxRunner(model_path).run(X)["logits"])
    return (
        f"{diagnosis}; the integer reference's avx2-u8s8 emulation "
        f"{'reproduces' if reproduced else 'does not reproduce'} onnxruntime here exactly"
    )


def failure_message(reports: list[PairReport], parity_file: Path) -> str:
    """One line for failed pairs: their names, the diagnosis of the first that has one, the file."""
    failed = [r for r in reports if not r.passed]
    diagnosis = next((r.diagnosis for r in failed if r.diagnosis), "")
    cause = f": {diagnosis}" if diagnosis else ""
    return f"{len(failed)} parity pair(s) failed ({', '.join(r.name for r in failed)}){cause}; see {parity_file}"
