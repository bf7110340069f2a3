"""Export targets: one module each, registered in the one TARGETS table that also drives the CLI.

Nothing here imports torch; a target's module is imported when it exports or checks parity.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgekit.errors import EdgekitError, ExportError
from edgekit.rundir import layout
from edgekit.rundir.transaction import transactional
from edgekit.targets.base import Target, TargetOption

if TYPE_CHECKING:
    from edgekit.config import RunConfig
    from edgekit.rundir.run import Run

OPSET = TargetOption("opset", "ONNX opset (Hailo DFC 3.x/4.x reads 13).")
REFERENCE_SAMPLES = TargetOption(
    "reference_samples",
    "Test windows saved with their outputs (onnx, hailo: reference_io.npz; mcu: the firmware self-test).",
)
TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "onnx",
            "int8 QDQ ONNX (Brevitas QCDQ) for CPU/MCU runtimes plus the float twin",
            "edgekit.targets.onnx_target",
            (
                OPSET,
                TargetOption(
                    "int8_input", "Also write model_int8_int8in.onnx, whose input is already int8."
                ),
                REFERENCE_SAMPLES,
            ),
            readiness="edgekit.targets.onnx_readiness:check_int8_readiness",
        ),
        Target(
            "hailo",
            "float ONNX cut before FSQ + model script, calibration set and scripts for the Hailo DFC",
            "edgekit.targets.hailo",
            (
                TargetOption("hw_arch", "Hailo device: hailo8, hailo8l or hailo10h."),
                OPSET,
                REFERENCE_SAMPLES,
            ),
            folder="{hw_arch}",
            readiness="edgekit.targets.hailo_readiness:check_hailo_readiness",
        ),
        Target(
            "mcu",
            "C99 for the int8 model + edgekit-wire firmware (POSIX, MPS2 AN386 Cortex-M4) with its footprint",
            "edgekit.targets.mcu",
            (REFERENCE_SAMPLES,),
        ),
    )
}


def get_target(name: str) -> Target:
    """The target of that name; an unknown one lists the valid names."""
    if name not in TARGETS:
        raise ExportError(f"unknown target '{name}'; valid targets: {', '.join(sorted(TARGETS))}")
    return TARGETS[name]


def resolve_options(target: Target, config: RunConfig, given: dict[str, Any]) -> dict[str, Any]:
    """The run's `export:` config for the options this target takes, then the given ones, checked
    against the config's ranges; an option the target does not take is an error."""
    import json

    from edgekit.config import load_config

    accepted = [option.name for option in target.options]
    unknown = sorted(k for k, v in given.items() if v is not None and k not in accepted)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        names = ", ".join("--" + k.replace("_", "-") for k in accepted) or "none"
        raise ExportError(f"target '{target.name}' does not accept {flags}; it accepts: {names}")
    overrides = [f"export.{k}={json.dumps(v)}" for k, v in given.items() if v is not None]
    export = load_config(None, overrides, base=config).export
    return {name: getattr(export, name) for name in accepted}


def exported_targets(run_dir: Path) -> list[str]:
    """The targets a run has an export folder for, in TARGETS order."""
    return [name for name in TARGETS if (run_dir / "export" / name).is_dir()]


def _export_into(
    run: Run, target: Target, options: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Export into an emptied `out_dir`; on failure the stage's rollback restores the last good export,
    but a readiness report explaining the failure is kept beside it."""
    import os
    import shutil

    from edgekit.rundir.transaction import keep_on_failure

    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    try:
        summary = target.export(run, options, out_dir)
    except EdgekitError as err:
        report = out_dir / "readiness_report.json"
        if report.is_file():
            kept = out_dir.parent / f"{out_dir.name}.failed_readiness_report.json"
            os.replace(report, kept)
            keep_on_failure(kept)
            err.args = (f"{err} (report: {kept})",)
        raise
    summary["folder"] = str(out_dir)
    return summary


@transactional()
def run_export(run: Run | str | Path, target_name: str, **options: Any) -> dict[str, Any]:
    """Export a trained run for one target (`edgekit export RUN --target NAME`); `options` (the
    target's, see TARGETS) override the run's `export:` config."""
    import time

    from edgekit.rundir.artifacts import Manifest
    from edgekit.rundir.run import Run

    target = get_target(target_name)
    run = Run(layout.run_path(run))
    resolved = resolve_options(target, run.config, options)
    start = time.perf_counter()
    out_dir = target.export_dir(run.path, resolved)
    summary = _export_into(run, target, resolved, out_dir)
    Manifest.finish_stage(
        run.path, f"export:{target_name}", time.perf_counter() - start, [out_dir], options=resolved
    )
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return summary
