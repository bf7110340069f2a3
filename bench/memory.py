"""Peak memory and disk of training on a large data set: 50,000 windows of 9 x 128 (230 MB float32).

Each run is its own `edgekit` process so its peak RSS (ru_maxrss of the child) is its own; the
figure that matters is the peak above a tiny run's, against the data set's float32 size.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LARGE = "synthetic:n=50000,length=128,channels=9"
LARGE_BYTES = 50_000 * 9 * 128 * 4
SHORT_TRAINING = ["--set", "train.float_epochs=2", "--set", "train.qat_epochs=1"]


def _edgekit(args: list[str]) -> tuple[float, float]:
    """Run `edgekit ARGS` in a child process: (wall seconds, peak RSS in MB) of that child."""
    code = (
        "import resource, subprocess, sys, time; start = time.perf_counter(); "
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
        "sys.exit(done.returncode)"
    )
    cli = [sys.executable, "-c", "from edgekit.cli import main; main()", *args]
    out = subprocess.run(
        [sys.executable, "-c", code, *cli], capture_output=True, text=True, check=True
    )
    seconds, max_rss_kb = out.stdout.split()
    return float(seconds), int(max_rss_kb) / 1024


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def run(folder: Path) -> dict[str, Any]:
    tiny_seconds, tiny_rss = _edgekit(
        ["train", "--config", "tiny", "--out", str(folder / "tiny"), *SHORT_TRAINING]
    )
    prepare_seconds, prepare_rss = _edgekit(["data", "inspect", "--data", LARGE])
    large_seconds, large_rss = _edgekit(
        [
            "train",
            "--data",
            LARGE,
            "--out",
            str(folder / "large"),
            *SHORT_TRAINING,
            "--set",
            "train.batch_size=256",
            "--set",
            "train.threads=2",
        ]
    )
    stages = json.loads((folder / "large/manifest.json").read_text())["stages"]
    above = large_rss - tiny_rss
    return {
        "data_set": LARGE,
        "data_set_float32_mb": LARGE_BYTES / 2**20,
        "tiny_run_peak_rss_mb": tiny_rss,
        "large_run_peak_rss_mb": large_rss,
        "large_run_above_tiny_mb": above,
        "above_tiny_over_data_size": above * 2**20 / LARGE_BYTES,
        "run_data_folder_mb": _folder_bytes(folder / "large/data") / 2**20,
        "prepare_seconds": prepare_seconds,
        "prepare_peak_rss_mb": prepare_rss,
        "train_command_seconds": large_seconds,
        "train_stage_seconds": stages["train"]["seconds"],
        "tiny_seconds": tiny_seconds,
        "measured_at": time.time(),
        "max_rss_unit": "ru_maxrss of the child process (Linux: kB), shown in MiB",
    }
