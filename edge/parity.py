"""`edgekit parity`: every export against its CPU reference, with tolerances declared on each target
(the comparison itself is edgekit.compare)."""

from __future__ import annotations

import time
from pathlib import Path

from edgekit.artifacts import Manifest, write_json
from edgekit.compare import PairReport
from edgekit.errors import ArtifactError, ConfigError
from edgekit.quantize.overflow import read_cpu_flags
from edgekit.runs import Run
from edgekit.targets import exported_targets, get_target
from edgekit.transaction import transactional


@transactional()
def run_parity(
    run_dir: str | Path, targets: list[str] | None = None, limit: int = 0
) -> list[PairReport]:
    """Parity of every exported target of a run on its test split; writes `parity.json`."""
    if limit < 0:
        raise ConfigError(f"parity limit must be >= 0 (0 = every test window), got {limit}")
    run = Run(run_dir)
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
    result = {
        "schema_version": 1,
        "split": "test",
        "targets": names,
        "passed": all(r.passed for r in reports),
        "host_cpu": read_cpu_flags(),  # int8 kernels depend on it: reports from two hosts compare
        "pairs": [r.to_dict() for r in reports],
    }
    write_json(run.path / "parity.json", result)
    manifest = Manifest(run.path)
    manifest.record(run.path / "parity.json")
    manifest.stage("parity", time.perf_counter() - start, passed=result["passed"])
    manifest.save()
    return reports


def failure_message(reports: list[PairReport], parity_file: Path) -> str:
    """One line for failed pairs: their names, the diagnosis of the first that has one, the file."""
    failed = [r for r in reports if not r.passed]
    diagnosis = next((r.diagnosis for r in failed if r.diagnosis), "")
    cause = f": {diagnosis}" if diagnosis else ""
    return f"{len(failed)} parity pair(s) failed ({', '.join(r.name for r in failed)}){cause}; see {parity_file}"
