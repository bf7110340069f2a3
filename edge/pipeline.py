"""`edgekit pipeline`: train -> calibrate -> export (onnx + hailo or mcu) -> parity -> verify on the
emulator (or, for mcu, the generated firmware in QEMU)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from edgekit.config import RunConfig
from edgekit.errors import ParityError
from edgekit.rundir import layout


def default_device(target: str) -> str:
    """The device a pipeline verifies on unless told: the generated firmware in QEMU for mcu, the
    emulator otherwise."""
    return "qemu://" if target == "mcu" else "emu://"


def run_pipeline(
    run: str | Path,
    config: RunConfig,
    target: str = "hailo",
    device: str = "emu://",
    echo: Callable[[str], None] = print,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Every stage into one run directory; returns the summary (also written to `summary.json`)."""
    from edgekit.calibrate.stage import run_calibration
    from edgekit.parity import failure_message, run_parity
    from edgekit.rundir.artifacts import write_json
    from edgekit.targets import run_export
    from edgekit.train.loop import run_training
    from edgekit.verify import VerifyOptions, run_verify

    run_dir = Path(run)
    targets = ["onnx"] if target == "onnx" else ["onnx", target]
    stages = ["train", "calibrate", *(f"export {t}" for t in targets), "parity", "verify"]
    timings: dict[str, float] = {}
    results: dict[str, Any] = {}

    def stage(name: str, function: Callable[[], Any]) -> Any:
        echo(f"[{len(timings) + 1}/{len(stages)}] {name} ...")
        start = time.perf_counter()
        result = function()
        timings[name] = time.perf_counter() - start
        return result

    results["train"] = stage(
        "train", lambda: run_training(run_dir, config, show_progress=show_progress)
    )
    results["calibrate"] = stage("calibrate", lambda: run_calibration(run_dir))
    for name in targets:
        results[f"export {name}"] = stage(f"export {name}", partial(run_export, run_dir, name))
        for line in results[f"export {name}"].get("report_lines", []):  # footprint, warnings
            echo(line)
    parity = stage("parity", lambda: run_parity(run_dir))
    verify_options = VerifyOptions.from_config(device, config.verify, show_progress=show_progress)
    verify = stage("verify", lambda: run_verify(run_dir, verify_options))
    summary = {
        "run": str(run_dir),
        "float_test_accuracy": results["train"]["float_test_accuracy"],
        "int8_test_accuracy": results["train"]["int8_test_accuracy"],
        "int8_test_interval_95": results["train"]["test"]["accuracy_interval_95"],
        "test_windows": results["train"]["test"]["windows"],
        "majority_baseline": results["train"]["test"]["majority_baseline"],
        "warnings": results["train"]["data_warnings"],
        "calibration_adopted": results["calibrate"]["adopted"],
        "parity": {
            r.name: {
                "passed": r.passed,
                "max_lsb": r.max_lsb,
                "max_abs": r.max_abs,
                "top1": r.top1_agreement,
            }
            for r in parity
        },
        "parity_passed": all(r.passed for r in parity),
        "device": {
            "passed": verify["passed"],
            "partial": verify["partial"],
            "samples": verify["samples_done"],
            "accuracy": verify["rows"]["device_vs_labels"].get("accuracy"),
            "top1_agreement": verify["rows"]["device_vs_reference"].get("top1_agreement"),
            "max_abs_lsb": verify["rows"]["device_vs_reference"].get("max_lsb"),
            "reference": verify.get("reference"),
            "latency_us_p50": verify["latency"].get("device_us_p50"),
            "samples_per_s": verify["samples_per_s"],
            "url": device,
            "board": verify["device"].get("board"),
            "instructions_per_inference": verify["device"].get("instructions_per_inference_median"),
        },
        "artifacts": {
            "checkpoint": str(run_dir / layout.CHECKPOINTS / "best.pt"),
            "int8_onnx": str(run_dir / layout.INT8_MODEL),
            **({target: results[f"export {target}"]["folder"]} if target != "onnx" else {}),
            "parity": str(run_dir / layout.PARITY),
            "verify": str(run_dir / layout.VERIFY / "report.md"),
        },
        "stage_seconds": {k: round(v, 2) for k, v in timings.items()},
    }
    write_json(run_dir / layout.SUMMARY, summary)
    echo(render_summary(summary))
    if not summary["parity_passed"]:
        raise ParityError(failure_message(parity, run_dir / layout.PARITY))
    if not verify["passed"]:
        from edgekit.verify import raise_for_report

        raise_for_report(verify, run_dir / layout.VERIFY)
    return summary


def render_summary(summary: dict[str, Any]) -> str:
    """The pipeline's closing table: accuracy, parity, device, warnings, artifacts, stage times."""
    device = summary["device"]
    parity_worst = max((p["max_lsb"] or 0.0) for p in summary["parity"].values())

    def fmt(value: Any, pattern: str) -> str:
        return "-" if value is None else format(value, pattern)

    rows = [
        ("test accuracy, float twin", f"{summary['float_test_accuracy']:.4f}"),
        (
            "test accuracy, int8 (QAT)",
            f"{summary['int8_test_accuracy']:.4f} (95 % CI {summary['int8_test_interval_95'][0]:.3f}-"
            f"{summary['int8_test_interval_95'][1]:.3f} on {summary['test_windows']} windows; "
            f"majority baseline {summary['majority_baseline']:.3f})",
        ),
        (
            "parity",
            f"{'PASS' if summary['parity_passed'] else 'FAIL'}: {len(summary['parity'])} "
            f"pairs, worst int8 {parity_worst:.2f} LSB",
        ),
        (f"device accuracy ({device['board'] or device['url']})", fmt(device["accuracy"], ".4f")),
        (
            f"device vs CPU ({device['reference'] or 'no reference'})",
            f"top-1 {fmt(device['top1_agreement'], '.4f')}, max {device['max_abs_lsb']} LSB",
        ),
        (
            "device latency p50",
            f"{fmt(device['latency_us_p50'], '.0f')} µs; {device['samples_per_s']:.0f} windows/s over the link",
        ),
        *(
            [
                (
                    "instructions per inference",
                    f"{device['instructions_per_inference']:.0f} (QEMU -icount)",
                )
            ]
            if device["instructions_per_inference"]
            else []
        ),
        *[("warning", warning) for warning in summary["warnings"]],
        *[(f"artifact: {name}", path) for name, path in summary["artifacts"].items()],
        *[
            (f"time: {name}", f"{seconds:.1f} s")
            for name, seconds in summary["stage_seconds"].items()
        ],
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(
        [
            "",
            "edgekit pipeline summary",
            "-" * (width + 40),
            *(f"{name:<{width}}  {value}" for name, value in rows),
        ]
    )
