"""`uv run python -m bench sweep`: the sweep against the default recipe, and what its engines cost.

On each set (official split, sktime's .ts files), side by side in one run:
- the default recipe, seed 0: int8 validation and test accuracy;
- `edgekit sweep --target mcu --budget flash=64k,ram=20k` (a Cortex-M4 budget) with the default
  space, one local worker: the best trial's validation score and its final run's test accuracy
  (the test split read once), the measured flash/RAM of its firmware, trials per hour;
- the same trials with two local workers and through Ray's local cluster (no final run): wall
  time, trials per hour and the ratio to one worker.

Writes OUT.md and OUT.json (default bench/sweep.md). Nothing here is asserted by tests.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.accuracy import data_folder, fraction, train_once
from bench.common import machine

HERE = Path(__file__).parent
SETS = ("ItalyPowerDemand", "BasicMotions")
BUDGET = "flash=64k,ram=20k"


def sweep_once(name: str, folder: Path, trials: int, **options: Any) -> dict[str, Any]:
    """One sweep of `trials` trials on a set; its summary with the wall time."""
    from edgekit.config import load_config
    from edgekit.sweep.budget import parse_budget
    from edgekit.sweep.run import run_sweep
    from edgekit.sweep.space import load_space

    base = load_config(None, [f"data.source=ts:{data_folder(name)}", "data.split_mode=official"])
    started = time.perf_counter()
    summary = run_sweep(
        folder,
        base,
        load_space(None),
        target="mcu",
        budget=parse_budget(BUDGET, "mcu"),
        trials=trials,
        echo=lambda line: print(f"bench sweep: {name}: {line}", flush=True),
        **options,
    )
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)  # final run included
    summary["trials_per_hour"] = round(3600 * trials / summary["search_seconds"], 1)
    return summary


def run_set(name: str, trials: int, folder: Path) -> dict[str, Any]:
    default = train_once(name, 0, [], folder / "default")
    local = sweep_once(name, folder / "local1", trials, workers=1, final=True)
    two = sweep_once(name, folder / "local2", trials, workers=2, final=False)
    ray = sweep_once(name, folder / "ray", trials, ray="local", final=False)
    final = local["final"]
    return {
        "set": name,
        "default": {"val": default["int8_val"], "test": default["int8"], "macs": default["macs"]},
        "sweep": {
            "best_trial": local["best"]["number"],
            "best_params": local["best"]["params"],
            "val": local["best"]["value"],
            "final_val": final["int8_val_accuracy"],
            "test": final["int8_test_accuracy"],
            "figures": final["figures"],
            "violations": final["violations"],
            "counts": local["counts"],
        },
        "engines": {
            key: {
                "search_seconds": summary["search_seconds"],
                "trials_per_hour": summary["trials_per_hour"],
                "counts": summary["counts"],
                "best_val": summary["best"]["value"],
            }
            for key, summary in (
                ("local, 1 worker", local),
                ("local, 2 workers", two),
                ("ray local", ray),
            )
        },
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        "# Sweep benchmark",
        "",
        f"`{result['command']}` on {result['machine']}; {result['trials']} trials per sweep, "
        f"target mcu, budget {BUDGET} (Cortex-M4), the default space (configs/sweep_space.yaml).",
        "",
        "| set | default val / test | sweep best val / test | best trial | flash B / RAM B measured | "
        "complete / pruned / over budget |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        d, s = row["default"], row["sweep"]
        figures, counts = s["figures"], s["counts"]
        lines.append(
            f"| {row['set']} | {fraction(d['val'])} / {d['test']:.3f} | {s['val']:.3f} / {s['test']:.3f} | "
            f"{s['best_trial']} | {figures.get('flash_bytes', '-')} / {figures.get('ram_bytes', '-')} | "
            f"{counts['complete']} / {counts['pruned']} / {counts['over_budget']} |"
        )
    lines += [
        "",
        "| set | engine | search s | trials/hour | time ratio to 1 local worker | best val |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        one = row["engines"]["local, 1 worker"]["search_seconds"]
        for engine, figures in row["engines"].items():
            lines.append(
                f"| {row['set']} | {engine} | {figures['search_seconds']} | "
                f"{figures['trials_per_hour']} | {figures['search_seconds'] / one:.2f} | "
                f"{figures['best_val']:.3f} |"
            )
    lines += ["", "Best parameters per set:", ""]
    lines += [
        f"- {row['set']}: `{json.dumps(row['sweep']['best_params'])}`" for row in result["rows"]
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench sweep")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated set names")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--out", default=str(HERE / "sweep"), help="writes OUT.md and OUT.json")
    args = parser.parse_args(argv)
    from edgekit.cli import quiet_third_party

    quiet_third_party()
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-sweep-") as tmp:
        for name in [n.strip() for n in args.sets.split(",") if n.strip()]:
            rows.append(run_set(name, args.trials, Path(tmp) / name))
    result = {
        "machine": machine(),
        "command": " ".join(["uv run python -m bench sweep", *argv]),
        "trials": args.trials,
        "rows": rows,
        "wall_seconds": round(time.time() - started, 1),
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(result))
    print(render(result))
