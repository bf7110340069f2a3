"""Atomic artifact writing: the user's umask decides file modes, and a failed write leaves no trace."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from edgekit.rundir.artifacts import atomic_path, write_json, write_npy


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        written = [
            write_json(tmp_path / "a.json", {"x": 1}),
            write_npy(tmp_path / "b.npy", np.zeros(3)),
        ]
    finally:
        os.umask(previous)
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = write_json(tmp_path / "a.json", {"version": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == '{\n  "version": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
