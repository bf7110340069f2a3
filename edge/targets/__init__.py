"""Export targets: one module each, registered in the one TARGETS table (registry and dispatcher)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError, ExportError
from edgekit.targets import hailo, onnx_target
from edgekit.targets.base import Target
from edgekit.transaction import transactional

TARGETS: dict[str, Target] = {t.name: t for t in (onnx_target.TARGET, hailo.TARGET)}


def get_target(name: str) -> Target:
    if name not in TARGETS:
        raise ExportError(f"unknown target '{name}'; valid targets: {', '.join(sorted(TARGETS))}")
    return TARGETS[name]


def resolve_options(target: Target, given: dict[str, Any]) -> dict[str, Any]:
    """Defaults plus given options; an option the target does not accept is an error."""
    unknown = sorted(k for k, v in given.items() if v is not None and k not in target.options)
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        accepted = ", ".join("--" + k.replace("_", "-") for k in target.options) or "none"
        raise ExportError(f"target '{target.name}' does not accept {flags}; it accepts: {accepted}")
    return {**target.options, **{k: v for k, v in given.items() if v is not None}}


def exported_targets(run_dir: Path) -> list[str]:
    return [name for name in TARGETS if (run_dir / "export" / name).is_dir()]


def _export_into(
    run: Any, target: Target, options: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Export into an emptied `out_dir`; on failure the stage's rollback restores the last good export,
    but a readiness report explaining the failure is kept beside it."""
    import os
    import shutil

    from edgekit.transaction import keep_on_failure

    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    try:
        summary = target.export(run, target, options, out_dir)
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
def export_run(run_dir: str | Path, target_name: str, **options: Any) -> dict[str, Any]:
    """Export a trained run for one target (`edgekit export RUN --target NAME`)."""
    import time
    from dataclasses import asdict

    from edgekit.artifacts import Manifest
    from edgekit.runs import Run

    target = get_target(target_name)
    run = Run(run_dir)
    # the run's `export:` config section sets defaults for the options this target accepts
    configured = {k: v for k, v in asdict(run.config.export).items() if k in target.options}
    resolved = resolve_options(
        target, {**configured, **{k: v for k, v in options.items() if v is not None}}
    )
    start = time.perf_counter()
    out_dir = target.export_dir(run.path, resolved)
    summary = _export_into(run, target, resolved, out_dir)
    manifest = Manifest(run.path)
    manifest.record(out_dir)
    manifest.stage(f"export:{target_name}", time.perf_counter() - start, options=resolved)
    manifest.save()
    summary["seconds"] = round(time.perf_counter() - start, 3)
    return summary
