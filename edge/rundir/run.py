"""A run directory as an object: its config, its data split, and the models each later stage needs."""

from __future__ import annotations

import shutil
from functools import cached_property
from pathlib import Path
from typing import Any

from edgekit.config import RunConfig, load_run_config
from edgekit.data.prepare import STATS_SCHEMA_VERSION, PreparedData
from edgekit.errors import ArtifactError, CheckpointError
from edgekit.models import Conv2dFSQNet
from edgekit.models.transforms import folded_float_model
from edgekit.rundir import layout
from edgekit.rundir.artifacts import MANIFEST_SCHEMA_VERSION, read_json, sha256_file
from edgekit.rundir.checkpoint import load_checkpoint

CALIBRATION_SCHEMA_VERSION = 1


def clear_outputs(run_dir: Path, keep: tuple[str, ...] = ()) -> None:
    """Remove the stage outputs of an earlier run in this folder but `keep` (files of the user's stay)."""
    for name in set(layout.RUN_OUTPUTS) - set(keep):
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def remake_command(run_dir: Path, relative: str) -> str:
    """The command that writes `relative` (a path inside the run) anew."""
    parts = relative.split("/")
    if parts[0] == "export" and len(parts) > 2:
        return f"edgekit export {run_dir} --target {parts[1]}"
    if parts[0] == "calibration" or relative == "checkpoints/calibrated.pt":
        return f"edgekit calibrate {run_dir}"
    return f"edgekit train --out {run_dir}"


class Run:
    """A run folder whose artifacts are checked against `manifest.json` before any stage uses them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise CheckpointError(
                f"run directory {self.path} does not exist; run `edgekit train --out {self.path}` first"
            )
        self.manifest = self._read_manifest()
        self.verified(layout.CONFIG)
        self.config: RunConfig = load_run_config(self.path)

    def _read_manifest(self) -> dict[str, Any]:
        path = self.path / layout.MANIFEST
        fix = f"run `edgekit train --out {self.path}` to remake the run"
        if not path.is_file():
            if not (self.path / layout.CONFIG).is_file():
                load_run_config(self.path)  # names the real problem: this is not a run
            raise ArtifactError(f"{path} is missing, so no artifact can be checked; {fix}")
        manifest = read_json(path, fix)
        if not isinstance(manifest.get("artifacts"), dict):
            raise ArtifactError(f"{path} has no artifact table; {fix}")
        if manifest.get("schema_version") != MANIFEST_SCHEMA_VERSION:
            raise ArtifactError(
                f"{path} has schema_version {manifest.get('schema_version')!r}, this edgekit reads "
                f"{MANIFEST_SCHEMA_VERSION}; {fix} with this version"
            )
        return manifest

    def verified(self, *relative: str) -> None:
        """Refuse an artifact that is missing, unrecorded or changed since the stage that wrote it."""
        for rel in relative:
            path, entry = self.path / rel, self.manifest["artifacts"].get(rel)
            fix = f"run `{remake_command(self.path, rel)}` to write it anew"
            if not path.is_file():
                raise ArtifactError(f"{path} is missing; {fix}")
            if not isinstance(entry, dict) or "sha256" not in entry:
                raise ArtifactError(f"{path} is not recorded in manifest.json; {fix}")
            if sha256_file(path) != entry["sha256"]:
                raise ArtifactError(
                    f"{path} does not match its sha256 in manifest.json (damaged or edited since it was written); {fix}"
                )

    def verified_folder(self, relative: str) -> Path:
        """Every file the manifest lists under `relative`, and every file there, checked; the folder."""
        folder = self.path / relative
        listed = {rel for rel in self.manifest["artifacts"] if rel.startswith(f"{relative}/")}
        present = {
            p.relative_to(self.path).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        }
        self.verified(*sorted(listed | present))
        return folder

    def versioned_json(self, relative: str, version: int) -> dict[str, Any]:
        """A verified JSON artifact whose `schema_version` is the one this edgekit reads."""
        self.verified(relative)
        path, remake = self.path / relative, f"run `{remake_command(self.path, relative)}`"
        content = read_json(path, f"{remake} to write it anew")
        found = content.get("schema_version")
        if found != version:
            raise ArtifactError(
                f"{path} has schema_version {found!r}, this edgekit reads {version}; "
                f"{remake} with this version"
            )
        return content

    @cached_property
    def data(self) -> PreparedData:
        """The split and normalisation training used, as saved in `data/`."""
        self.verified_folder("data")
        self.versioned_json("data/stats.json", STATS_SCHEMA_VERSION)
        saved = PreparedData.load(self.path / "data", self.config.data)
        if saved is None:
            raise ArtifactError(
                f"{self.path / 'data'} does not belong to this run's data config; "
                f"run `edgekit train --out {self.path}` to prepare it anew"
            )
        return saved

    @property
    def checkpoints(self) -> Path:
        return self.path / layout.CHECKPOINTS

    def qat_checkpoint(self) -> Path:
        """`calibrated.pt` when the calibrate stage adopted it for the current best.pt, else best.pt."""
        best = self.checkpoints / "best.pt"
        self.verified("checkpoints/best.pt")
        report_path = self.path / layout.CALIBRATION_REPORT
        if not report_path.is_file():
            return best
        report = self.versioned_json(layout.CALIBRATION_REPORT, CALIBRATION_SCHEMA_VERSION)
        # a calibration of an earlier training (same folder, retrained since) must not be used
        if report.get("adopted") and report.get("source_checkpoint_sha256") == sha256_file(best):
            self.verified("checkpoints/calibrated.pt")
            return self.checkpoints / "calibrated.pt"
        return best

    def qat_model(self) -> Conv2dFSQNet:
        return load_checkpoint(self.qat_checkpoint())[0]

    def float_model(self) -> Conv2dFSQNet:
        """The float twin with its BatchNorms folded (numerically the trained float model)."""
        self.verified("checkpoints/float.pt")
        return folded_float_model(load_checkpoint(self.checkpoints / "float.pt")[0])
