"""Atomic artifact writing (the user's umask decides file modes, a failed write leaves no trace),
JSON artifacts read with one clear error, and the run's manifest."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import stat
from pathlib import Path

import numpy as np
import pytest
from edgekit import __version__
from edgekit.errors import ArtifactError, StorageError
from edgekit.rundir.artifacts import (
    Manifest,
    atomic_path,
    read_json,
    sha256_file,
    write_bytes,
    write_json,
    write_npy,
    write_npz,
    write_text,
)


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


def test_a_write_makes_missing_folders(tmp_path: Path) -> None:
    assert write_text(tmp_path / "a" / "b" / "c.txt", "x").read_text() == "x"


def test_a_write_never_goes_through_a_file_or_link_already_at_its_temp_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = write_text(tmp_path / "outside.txt", "not yours")
    monkeypatch.setattr(secrets, "token_hex", lambda n: "0" * 2 * n)
    (tmp_path / "run").mkdir()
    os.symlink(outside, tmp_path / "run" / f".a.json.{'0' * 16}.tmp")
    with pytest.raises(FileExistsError):
        write_json(tmp_path / "run" / "a.json", {})
    assert outside.read_text() == "not yours" and not (tmp_path / "run" / "a.json").exists()


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        (errno.ENOSPC, "free disk space and run the stage again"),
        (errno.EDQUOT, "free disk space"),
        (errno.EFBIG, "free disk space"),
        (errno.EROFS, "make the folder writable or choose another --out"),
        (errno.EACCES, "make the folder writable"),
        (errno.EPERM, "make the folder writable"),
    ],
)
def test_a_refused_write_is_one_storage_error_with_the_fix_for_its_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, fix: str
) -> None:
    target = write_text(tmp_path / "a.txt", "old")

    def refuse(*args: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(
        StorageError, match=rf"cannot write {target} \({os.strerror(code)}\); {fix}"
    ):
        write_text(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_other_os_errors_pass_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="Input/output error") as caught:
        write_text(tmp_path / "a.txt", "new")
    assert not isinstance(caught.value, StorageError)


def test_json_keeps_key_order_and_writes_numpy_and_paths(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "a.json",
        {"z": np.float32(0.5), "a": np.arange(3), "p": Path("x/y"), "n": np.int64(7)},
    )
    assert path.read_text() == (
        '{\n  "z": 0.5,\n  "a": [\n    0,\n    1,\n    2\n  ],\n  "p": "x/y",\n  "n": 7\n}\n'
    )
    with pytest.raises(TypeError, match="not JSON serialisable: set"):
        write_json(tmp_path / "b.json", {"s": {1}})
    assert not (tmp_path / "b.json").exists()


def test_arrays_round_trip(tmp_path: Path) -> None:
    x = np.arange(6, dtype=np.int8).reshape(2, 3)
    assert np.array_equal(np.load(write_npy(tmp_path / "x.npy", x)), x)
    with np.load(write_npz(tmp_path / "x.npz", a=x, b=x.T)) as saved:
        assert np.array_equal(saved["a"], x) and np.array_equal(saved["b"], x.T)


def test_sha256_of_a_file_larger_than_a_read(tmp_path: Path) -> None:
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 5)
    path = write_bytes(tmp_path / "big.bin", data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(write_bytes(tmp_path / "empty", b"")) == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot be read"),
        (b"{broken", "is not readable JSON"),
        (b"\xff\xfe", "is not readable JSON"),
        (b"[1, 2]", "holds a JSON list, not an object"),
        (b"3", "holds a JSON int, not an object"),
    ],
)
def test_a_json_artifact_that_cannot_be_read_is_one_artifact_error(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "report.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ArtifactError, match=rf"report.json {problem}.*; run this to fix it$"):
        read_json(path, "run this to fix it")
    assert read_json(write_json(path, {"a": [1]}), "unused") == {"a": [1]}


def test_the_manifest_hashes_each_stages_outputs_and_keeps_earlier_ones(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_text(run / "metrics.json", "{}")
    write_bytes(run / "data" / "X.npy", b"xx")
    write_bytes(run / "data" / "deep" / "y.npy", b"yyy")
    write_bytes(run / "data" / ".X.npy.0123.tmp", b"half")  # another stage's temp file
    Manifest.finish_stage(run, "train", 1.23456, [run / "metrics.json", run / "data"], passed=True)
    write_bytes(run / "parity.json", b"p")
    Manifest.finish_stage(run, "parity", 2.0, [run, run / "manifest.json"])

    saved = json.loads((run / "manifest.json").read_text())
    assert saved["schema_version"] == 1 and saved["edgekit_version"] == __version__
    assert saved["artifacts"] == {
        rel: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        for rel, data in [
            ("metrics.json", b"{}"),
            ("data/X.npy", b"xx"),
            ("data/deep/y.npy", b"yyy"),
            ("parity.json", b"p"),
        ]
    }
    assert list(saved["stages"]) == ["train", "parity"]
    assert saved["stages"]["train"]["seconds"] == 1.235 and saved["stages"]["train"]["passed"]
    assert saved["stages"]["parity"]["finished"] >= saved["stages"]["train"]["finished"] > 0


def test_the_manifest_drops_artifacts_a_stage_removed(tmp_path: Path) -> None:
    write_text(tmp_path / "a.json", "{}")
    write_text(tmp_path / "b.json", "{}")
    Manifest.finish_stage(tmp_path, "train", 1.0, [tmp_path / "a.json", tmp_path / "b.json"])
    (tmp_path / "b.json").unlink()
    Manifest.finish_stage(tmp_path, "export", 1.0, [])
    assert list(read_json(tmp_path / "manifest.json", "")["artifacts"]) == ["a.json"]
