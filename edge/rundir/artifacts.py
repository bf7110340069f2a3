"""Atomic artifact writing and the run-directory manifest.

Every artifact goes to a temp file in its destination folder and is renamed into place, so a
failing stage never leaves a half-written file and never destroys the previous good one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgekit.errors import ArtifactError, StorageError
from edgekit.rundir import layout

MANIFEST_SCHEMA_VERSION = 1


STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def storage_error(path: Path, err: OSError) -> StorageError:
    """One line for a write the file system refused, with the fix that fits the cause."""
    fix = (
        "free disk space and run the stage again"
        if err.errno in {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
        else "make the folder writable or choose another --out"
    )
    return StorageError(f"cannot write {path} ({err.strerror}); {fix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    tmp_path = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Mode 0666 minus the user's umask, as for any file they create (mkstemp would force 0600
        # and make a copied Hailo package unreadable to the colleague running the DFC); never
        # through a file or link already there.
        tmp_path.touch(mode=0o666, exist_ok=False)
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        if err.errno in STORAGE_ERRNOS:
            raise storage_error(path, err) from err
        raise
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically (a stage's outputs are whole or absent)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically, indented, keys in insertion order."""
    return write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    )


def write_npz(path: str | Path, **arrays: Any) -> Path:
    """Write a NumPy archive atomically."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return write_bytes(path, buffer.getvalue())


def write_npy(path: str | Path, array: Any) -> Path:
    """Write one NumPy array atomically."""
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    return write_bytes(path, buffer.getvalue())


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: str | Path) -> str:
    """The file's sha256, read in chunks (the manifest's checksum)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_json(path: str | Path, fix: str) -> dict[str, Any]:
    """A JSON object artifact; one missing, unreadable or of another shape is one ArtifactError
    naming it and `fix` (the reader knows which command remakes it)."""
    try:
        content = json.loads(Path(path).read_text())
    except OSError as err:
        raise ArtifactError(f"{path} cannot be read ({err.strerror}); {fix}") from err
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise ArtifactError(f"{path} is not readable JSON ({err}); {fix}") from err
    if not isinstance(content, dict):
        raise ArtifactError(f"{path} holds a JSON {type(content).__name__}, not an object; {fix}")
    return content


class Manifest:
    """`manifest.json` of a run: sha256 of every artifact and per-stage timings."""

    def __init__(self, run_dir: str | Path) -> None:
        from edgekit import __version__

        self.run_dir = Path(run_dir)
        self.path = self.run_dir / layout.MANIFEST
        if self.path.exists():
            self.data = read_json(
                self.path, f"run `edgekit train --out {self.run_dir}` to remake the run"
            )
        else:
            self.data = {
                "schema_version": MANIFEST_SCHEMA_VERSION,
                "edgekit_version": __version__,
                "artifacts": {},
                "stages": {},
            }

    def record(self, *paths: str | Path) -> None:
        """Hash artifacts (files or whole folders) into the manifest."""
        for path in paths:
            path = Path(path)
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            for file in files:
                if file.name.startswith(".") or file == self.path:
                    continue
                rel = file.relative_to(self.run_dir).as_posix()
                self.data["artifacts"][rel] = {
                    "sha256": sha256_file(file),
                    "bytes": file.stat().st_size,
                }

    def stage(self, name: str, seconds: float, **info: Any) -> None:
        """Note a finished stage: its wall time, when it ended and what it reports (e.g. passed)."""
        self.data["stages"][name] = {"seconds": round(seconds, 3), "finished": time.time(), **info}

    @classmethod
    def finish_stage(
        cls, run_dir: str | Path, stage: str, seconds: float, outputs: list[Path], **info: Any
    ) -> None:
        """What every stage does last: hash its outputs, record its timing and facts, save."""
        manifest = cls(run_dir)
        manifest.record(*outputs)
        manifest.stage(stage, seconds, **info)
        manifest.save()

    def save(self) -> None:
        """Write the manifest; entries of artifacts a stage removed are dropped."""
        self.data["artifacts"] = {
            rel: entry
            for rel, entry in self.data["artifacts"].items()
            if (self.run_dir / rel).is_file()
        }
        write_json(self.path, self.data)
