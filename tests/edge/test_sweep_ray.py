"""The same sweep through Ray Tune on a private local cluster: the same trial table, the same
sampler's parameters, and no Ray process left behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray extra: uv sync --extra ray (CI installs it)")

from edgekit.config import load_config
from edgekit.sweep.budget import Budget
from edgekit.sweep.run import run_sweep
from edgekit.sweep.space import parse_space

from tests.edge.test_sweep import BASE, SPACE, read_trials

RAY_PROCESS_NAMES = ("raylet", "gcs_server", "ray::", "default_worker", "dashboard", "log_monitor")


def ray_processes() -> set[int]:
    """PIDs of live (not zombie) processes that are part of a Ray cluster."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(name in command for name in RAY_PROCESS_NAMES):
            found.add(int(entry.name))
    return found


def test_ray_sweep_matches_the_local_table_and_leaves_no_process(tmp_path: Path) -> None:
    before = ray_processes()
    space = parse_space(SPACE, "test space")
    base = load_config("tiny", BASE)
    options = {"trials": 4, "seed": 3, "final": False, "echo": lambda line: None}
    ray_summary = run_sweep(tmp_path / "ray", base, space, ray="local", **options)
    local_summary = run_sweep(tmp_path / "local", base, space, **options)
    deadline = time.monotonic() + 30
    while ray_processes() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ray_processes() - before, "Ray processes outlived the sweep"
    ray_rows, local_rows = read_trials(tmp_path / "ray"), read_trials(tmp_path / "local")
    assert list(ray_rows[0]) == list(local_rows[0])  # the same columns
    assert [r["number"] for r in ray_rows] == ["0", "1", "2", "3"]
    # OptunaSearch keeps the sampler and the space: the same seeded draws as the local study
    keys = list(SPACE)
    assert [[r[k] for k in keys] for r in ray_rows] == [[r[k] for k in keys] for r in local_rows]
    assert ray_summary["best"] is not None and local_summary["best"] is not None
    assert (tmp_path / "ray" / "best.yaml").is_file()
    assert os.environ.get("RAY_USAGE_STATS_ENABLED") == "0"


def test_an_unreachable_cluster_is_one_clear_error(tmp_path: Path) -> None:
    from edgekit.errors import ConfigError

    space = parse_space(SPACE, "test space")
    with pytest.raises(ConfigError, match="cannot reach a Ray cluster"):
        run_sweep(
            tmp_path / "s",
            load_config("tiny", BASE),
            space,
            trials=1,
            ray="127.0.0.1:1",
            final=False,
            budget=Budget(),
            echo=lambda line: None,
        )
