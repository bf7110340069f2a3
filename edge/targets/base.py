"""The record every export target declares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.compare import Tolerance


@dataclass(frozen=True)
class Target:
    """What a target is: its options, its parity tolerances, its export, parity and readiness functions."""

    name: str
    description: str
    options: dict[str, Any]  # option name -> default
    tolerances: dict[str, Tolerance]  # parity pair -> tolerance
    export: Callable[..., dict[str, Any]]  # (run, target, options, out_dir) -> summary
    parity: Callable[..., list]  # (run, target, limit) -> [PairReport]
    readiness: Callable[..., dict[str, Any]] | None = None  # (onnx path) -> report
    folder: str = field(default="")

    def export_dir(self, run_dir: Path, options: dict[str, Any]) -> Path:
        return run_dir / "export" / self.name / self.folder.format(**options)
