"""The record every export target declares; its implementation module loads only when used."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from edgekit.config import ExportConfig

if TYPE_CHECKING:  # type-only: the table stays importable without the stages it dispatches to
    from edgekit.compare import PairReport, Tolerance
    from edgekit.rundir.run import Run


@dataclass(frozen=True)
class TargetOption:
    """One option of a target: `edgekit export --target T --NAME`. Its type and default are the
    `export.NAME` config field's, so they are declared once."""

    name: str
    help: str

    @property
    def kind(self) -> str:
        """The config field's type name: "int", "bool" or "str"."""
        return str({f.name: f.type for f in fields(ExportConfig)}[self.name])

    @property
    def default(self) -> Any:
        return getattr(ExportConfig(), self.name)


@dataclass(frozen=True)
class Target:
    """A target's name, options and output folder; `module` holds `export(run, target, options,
    out_dir)`, `parity(run, target, limit)` and the parity `TOLERANCES`, imported on first use so
    that `--help` and `edgekit check` never load torch."""

    name: str
    description: str
    module: str
    options: tuple[TargetOption, ...]
    folder: str = ""  # sub-folder of export/NAME, formatted with the options
    readiness: str | None = None  # "module:function" checking any ONNX file (`edgekit check`)

    def implementation(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def tolerances(self) -> dict[str, Tolerance]:
        return dict(self.implementation().TOLERANCES)

    def export(self, run: Run, options: dict[str, Any], out_dir: Path) -> dict[str, Any]:
        return dict(self.implementation().export(run, self, options, out_dir))

    def parity(self, run: Run, limit: int = 0) -> list[PairReport]:
        return list(self.implementation().parity(run, self, limit))

    def check_readiness(self, onnx_path: str) -> dict[str, Any] | None:
        if self.readiness is None:
            return None
        module, _, function = self.readiness.partition(":")
        return dict(getattr(importlib.import_module(module), function)(onnx_path))

    def export_dir(self, run_dir: Path, options: dict[str, Any]) -> Path:
        return run_dir / "export" / self.name / self.folder.format(**options)
