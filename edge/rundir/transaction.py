"""Stages as transactions: a stage that fails, is interrupted or diverges leaves its run as it was.

Before a stage writes, every file of the run is hard-linked into `RUN/.edgekit-rollback/` (copied
where the file system has no hard links). edgekit only ever replaces an artifact by renaming a new
file onto it (edgekit.rundir.artifacts), so the linked inode keeps the old bytes. On success the snapshot
is dropped; on any exception, Ctrl-C or SIGTERM the run is put back: files the stage created are
removed and replaced ones restored. A snapshot left by a killed process (SIGKILL, power loss) is
rolled back by the next stage that writes the run (under the run lock, so nobody else is writing).
"""

from __future__ import annotations

import functools
import inspect
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import ParamSpec, TypeVar

from edgekit.errors import CheckpointError, ConfigError, StorageError
from edgekit.rundir import layout
from edgekit.rundir.lock import LOCK_NAME

P = ParamSpec("P")
R = TypeVar("R")

SNAPSHOT_NAME = ".edgekit-rollback"
_PARTIAL = SNAPSHOT_NAME + ".partial"
_SKIP = {LOCK_NAME, SNAPSHOT_NAME, _PARTIAL}
_active: dict[
    Path, set[Path]
] = {}  # run folder -> paths a failing stage keeps (see keep_on_failure)


class Interrupted(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C so every stage's interrupt handling applies to it."""


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _place(source: Path, target: Path) -> None:
    """`target` becomes the same file as `source`: a hard link, else a copy renamed into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        tmp = target.with_name(f".{target.name}.restore")
        shutil.copy2(source, tmp)
        os.replace(tmp, target)


def _entries(root: Path) -> Iterator[Path]:
    """Every file and folder under `root` except the lock and the snapshots, deepest first."""
    for folder, dirs, files in os.walk(root, topdown=False):
        base = Path(folder)
        for name in files + dirs:
            path = base / name
            if path.relative_to(root).parts[0] not in _SKIP:
                yield path


def _snapshot(run_dir: Path) -> Path:
    """Link every file of the run into the snapshot; complete only once renamed to its final name."""
    partial, snapshot = run_dir / _PARTIAL, run_dir / SNAPSHOT_NAME
    shutil.rmtree(partial, ignore_errors=True)  # a snapshot never finished protects nothing
    partial.mkdir()
    for path in _entries(run_dir):
        mirror = partial / path.relative_to(run_dir)
        if path.is_symlink() or path.is_file():
            _place(path, mirror)
        elif path.is_dir():
            mirror.mkdir(parents=True, exist_ok=True)
    os.replace(partial, snapshot)
    return snapshot


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = a.lstat(), b.lstat()
    except FileNotFoundError:
        return False
    return (sa.st_ino, sa.st_dev) == (sb.st_ino, sb.st_dev)


def _touches(path: Path, kept: set[Path]) -> bool:
    """`path` is kept, lies in a kept folder, or is a folder holding something kept."""
    path = path.resolve()
    return any(path.is_relative_to(k) or k.is_relative_to(path) for k in kept)


def roll_back(run_dir: Path, keep: set[Path] | None = None) -> None:
    """Put the run back to its snapshot. Idempotent: the snapshot goes last, so a rollback cut short
    is finished by the next one."""
    snapshot = run_dir / SNAPSHOT_NAME
    kept = {path.resolve() for path in keep or ()}
    for path in _entries(run_dir):
        mirror = snapshot / path.relative_to(run_dir)
        if _touches(path, kept):
            continue
        if path.is_dir() and not path.is_symlink():
            if not mirror.is_dir():
                shutil.rmtree(path)
        elif not _same_file(path, mirror):
            path.unlink()
    for mirror in _entries(snapshot):
        path = run_dir / mirror.relative_to(snapshot)
        if mirror.is_dir() and not mirror.is_symlink():
            path.mkdir(parents=True, exist_ok=True)
        elif not path.exists() and not path.is_symlink() and not _touches(path, kept):
            _place(mirror, path)
    shutil.rmtree(snapshot)


def recover(run_dir: Path) -> bool:
    """Roll back what a killed stage left half-done; True if there was something to undo."""
    run_dir = Path(run_dir)
    shutil.rmtree(run_dir / _PARTIAL, ignore_errors=True)
    if not (run_dir / SNAPSHOT_NAME).is_dir():
        return False
    roll_back(run_dir)
    return True


def keep_on_failure(path: Path) -> None:
    """Let a file or folder survive its stage's rollback (a failed export's readiness report)."""
    path = Path(path).resolve()
    for run_dir, keep in _active.items():
        if path.is_relative_to(run_dir):
            keep.add(path)


@contextmanager
def stage_transaction(run_dir: str | Path, create: bool = False) -> Iterator[None]:
    """Commit the body's writes to `run_dir` only if it returns; a nested call joins the outer one.

    `create` (training) makes a missing folder, and removes it again if the stage fails."""
    run_dir = Path(run_dir).resolve()
    if run_dir in _active:
        yield
        return
    created = not run_dir.exists()
    if created and not create:
        raise CheckpointError(
            f"run directory {run_dir} does not exist; run `edgekit train --out {run_dir}` first"
        )
    if created:
        run_dir.mkdir(parents=True)
    if recover(run_dir):
        print(
            f"warning: {run_dir} held the half-written output of a stage that was killed; it was rolled back",
            file=sys.stderr,
        )
    if not (run_dir / layout.CONFIG).is_file() and next(_entries(run_dir), None):
        raise ConfigError(
            f"{run_dir} holds files but is not an edgekit run (no config.resolved.yaml); "
            "give a run made by `edgekit train`, or a new or empty folder to train into"
        )
    try:
        _snapshot(run_dir)
    except OSError as err:
        shutil.rmtree(run_dir / _PARTIAL, ignore_errors=True)
        raise StorageError(
            f"cannot snapshot {run_dir} before writing it ({err.strerror}); free disk space or fix its permissions"
        ) from err
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupted) if in_main else None
    _active[run_dir] = set()
    try:
        yield
    except BaseException as err:
        roll_back(run_dir, _active[run_dir])
        if isinstance(err, KeyboardInterrupt) and run_dir not in _active[run_dir]:
            err.args = (
                f"{str(err) or 'Ctrl-C'}; the stage's writes to {run_dir} were rolled back",
            )
        if created and not any(run_dir.iterdir()):
            run_dir.rmdir()
        raise
    else:
        shutil.rmtree(run_dir / SNAPSHOT_NAME)
    finally:
        del _active[run_dir]
        if in_main:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def transactional(create: bool = False) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Run a stage function as a transaction on the run given as its `run` argument (a `Run` or
    its folder)."""

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def stage(*args: P.args, **kwargs: P.kwargs) -> R:
            run = signature.bind(*args, **kwargs).arguments["run"]
            with stage_transaction(layout.run_path(run), create):
                return function(*args, **kwargs)

        return stage

    return decorate
