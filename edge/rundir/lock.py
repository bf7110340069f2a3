"""One writer per run folder: a lock file naming its holder, so two commands never mix their results.

The lock is `RUN/.edgekit.lock` (JSON: pid, host, command, start time), created with O_EXCL so two
processes can't both take it. A lock whose process is gone (same host, pid not alive) is stale: it is
named and replaced. Read-only commands (evaluate, check, data inspect) take no lock.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgekit.errors import RunLockError

LOCK_NAME = ".edgekit.lock"
UNREADABLE_GRACE_S = 10.0  # a lock with no readable holder younger than this is being written


def _holder(path: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("started", 0))))
    return f"`edgekit {holder.get('command', '?')}` (pid {holder.get('pid')} on {holder.get('host')}, since {started})"


def _is_stale(path: Path, holder: dict[str, Any] | None) -> bool:
    if holder is None:
        try:
            return time.time() - path.stat().st_mtime > UNREADABLE_GRACE_S
        except FileNotFoundError:
            return True
    same_host = holder.get("host") == socket.gethostname()
    return same_host and isinstance(holder.get("pid"), int) and not _alive(holder["pid"])


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@contextmanager
def run_lock(
    run_dir: Path, command: str, on_stale: Callable[[str], None] = _warn
) -> Iterator[None]:
    """Hold the run's lock for the body; a live holder is refused with one line naming it."""
    path = Path(run_dir) / LOCK_NAME
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command,
        "started": time.time(),
    }
    for _ in range(3):
        try:
            with open(path, "x") as file:  # O_EXCL: of two processes, one creates it
                json.dump(record, file)
        except FileExistsError:
            holder = _holder(path)
            if not _is_stale(path, holder):
                who = _describe(holder) if holder else "another edgekit process"
                raise RunLockError(
                    f"{run_dir} is being written by {who}; wait for it to finish, or "
                    f"delete {path} if that process is gone"
                ) from None
            on_stale(
                f"removed a stale lock on {run_dir} left by {_describe(holder) if holder else 'an unknown process'}"
            )
            path.unlink(missing_ok=True)
            continue
        break
    else:
        raise RunLockError(
            f"could not take the lock {path}; delete it if no edgekit process is running"
        )
    try:
        yield
    finally:
        if _holder(path) == record:
            path.unlink(missing_ok=True)
