"""Few windows per class: edgekit's default int8 model against a plain CNN on the same windows.

uv run python -m bench fewshot                                   # 5 per class, 3 seeds -> bench/fewshot.{md,json}
uv run python -m bench fewshot --sets ACSF1 --per-class 5 --seeds 1 --out /tmp/fewshot

The case users bring (a new 10-class gesture set, a handful of recordings per class) has no offline
twin, so each set's official train file is cut down to `--per-class` windows per class (seeded,
stratified) and both models see exactly those windows; the official test file scores both.

- **edgekit**: the default config in official-split mode on the few windows, as a user would run
  it (a val cut, if the config asks for one, comes out of them).
- **plain CNN**: three float Conv1d-BatchNorm-ReLU-MaxPool blocks (32, 64, 64 filters; kernels 7, 5,
  3), global average pooling and a linear layer, trained with Adam on *every* one of the few windows
  (no val cut, the last step kept) on edgekit's normalised windows. It is the baseline an engineer
  writes first; no quantisation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy import PUBLISHED, data_folder
from bench.common import add_arm_options, cut_ts_file, machine, mean_sd

HERE = Path(__file__).resolve().parent
SETS = ("BasicMotions", "JapaneseVowels", "OSULeaf", "ACSF1", "PLAID")  # at least 4 classes
CNN_STEPS = 1000
CNN_BATCH = 16
CNN_LR = 1e-3


def plain_cnn(channels: int, classes: int) -> Any:
    from torch import nn

    blocks: list[nn.Module] = []
    for cin, cout, kernel in ((channels, 32, 7), (32, 64, 5), (64, 64, 3)):
        blocks += [
            nn.Conv1d(cin, cout, kernel, padding=kernel // 2),
            nn.BatchNorm1d(cout),
            nn.ReLU(),
            nn.MaxPool1d(2, ceil_mode=True),
        ]
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(64, classes))


def train_plain_cnn(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    classes: int,
    seed: int,
) -> float:
    """Test accuracy of the plain CNN after CNN_STEPS Adam steps on (N, C, T) windows."""
    import torch

    torch.manual_seed(seed)
    model = plain_cnn(X_train.shape[1], classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=CNN_LR)
    X, y = torch.from_numpy(np.ascontiguousarray(X_train)), torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(CNN_STEPS):
        batch = torch.randperm(len(X), generator=generator)[:CNN_BATCH]
        loss = torch.nn.functional.cross_entropy(model(X[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model(torch.from_numpy(np.ascontiguousarray(X_test))).argmax(1)
    return float((predicted.numpy() == y_test).mean())


def run_once(
    name: str, per_class: int, seed: int, folder: Path, overrides: list[str], holdout: bool
) -> dict[str, Any]:
    """Both models on one seeded subset of the set's official train file, scored on the official
    test file or, with `holdout`, on the rest of the train file (the official test never read)."""
    from edgekit.config import load_config
    from edgekit.data.prepare import PreparedData, from_hailo_layout, row_layout
    from edgekit.train.loop import run_training

    source = data_folder(name)
    data_dir = folder / "data"
    data_dir.mkdir(parents=True)
    test_file = data_dir / f"{name}_TEST.ts"
    kept = cut_ts_file(
        source / f"{name}_TRAIN.ts",
        data_dir / f"{name}_TRAIN.ts",
        lambda windows: min(per_class, windows),
        seed,
        rest=test_file if holdout else None,
    )
    if not holdout:
        shutil.copyfile(source / f"{name}_TEST.ts", test_file)
    config = load_config(
        None,
        [
            f"data.source=ts:{data_dir}",
            "data.split_mode=official",
            f"train.seed={seed}",
            "train.threads=2",
            *overrides,
        ],
    )
    run_dir = folder / "run"
    metrics = run_training(run_dir, config, show_progress=False)
    prepared = PreparedData.load(run_dir / "data", config.data)
    if prepared is None:
        raise SystemExit(f"bench fewshot: {run_dir / 'data'} lost the run's prepared windows")
    rows = row_layout(prepared.stats)

    def windows(*splits: str) -> tuple[np.ndarray, np.ndarray]:
        X = np.concatenate(
            [from_hailo_layout(np.asarray(prepared.arrays[s][0]), rows) for s in splits]
        )
        return X, np.concatenate([prepared.arrays[s][1] for s in splits])

    started = time.time()
    cnn = train_plain_cnn(*windows("train", "val"), *windows("test"), prepared.num_classes, seed)
    return {
        "int8": metrics["int8_test_accuracy"],
        "float": metrics["float_test_accuracy"],
        "plain_cnn": cnn,
        "kept_per_class": kept,
        "windows": metrics["splits"],
        "seconds": metrics["train_seconds"],
        "cnn_seconds": round(time.time() - started, 1),
    }


def render(result: dict[str, Any]) -> str:
    lines = [
        f"# Few windows per class ({result['machine']})",
        "",
        f"`{result['command']}`: each official train file cut to {result['per_class']} windows per "
        "class (seeded), both models on the same windows, scored on "
        + (
            "the rest of the train file (the official test never read). "
            if result.get("holdout")
            else "the official test file. "
        )
        + "edgekit: default config"
        + "".join(f", {o}" for o in result.get("overrides", []))
        + " (a val cut, if any, taken from those windows); plain CNN: float, trained on all of them "
        f"({CNN_STEPS} Adam steps, batch {CNN_BATCH}, last step kept).",
        "",
        "| set | classes | train + val windows | edgekit int8 | edgekit float twin | plain CNN (float) "
        "| int8 − CNN (pp) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['set']} | {row['classes']} | {row['windows']} "
            f"| {row['int8_mean']:.3f} ± {row['int8_sd']:.3f} | {row['float_mean']:.3f} "
            f"| {row['cnn_mean']:.3f} ± {row['cnn_sd']:.3f} | {row['int8_minus_cnn_pp']:+.1f} |"
        )
    lines += ["", *[f"- {line}" for line in result["summary_lines"]], ""]
    return "\n".join(lines)


def summarise(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    int8, int8_sd = mean_sd(runs, "int8")
    cnn, cnn_sd = mean_sd(runs, "plain_cnn")
    first = runs[0]
    return {
        "set": name,
        "classes": len(first["kept_per_class"]),
        "windows": first["windows"]["train"] + first["windows"]["val"],
        "int8_mean": int8,
        "int8_sd": int8_sd,
        "float_mean": mean_sd(runs, "float")[0],
        "cnn_mean": cnn,
        "cnn_sd": cnn_sd,
        "int8_minus_cnn_pp": 100 * (int8 - cnn),
        "runs": runs,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench fewshot")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated set names")
    parser.add_argument("--per-class", type=int, default=5, help="train windows kept per class")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="score on the rest of the official train file instead of the official test file, so a "
        "recipe can be chosen on it",
    )
    add_arm_options(parser, HERE / "fewshot")
    args = parser.parse_args(argv)
    if args.per_class < 2:
        raise SystemExit("bench fewshot: --per-class takes at least 2 (room for a val cut)")
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    unknown = [n for n in names if n not in PUBLISHED]
    if unknown:
        raise SystemExit(
            f"bench fewshot: unknown set(s) {unknown}; choose from {', '.join(PUBLISHED)}"
        )
    import torch
    from edgekit.cli import quiet_third_party

    quiet_third_party()
    torch.set_num_threads(2)
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-fewshot-") as tmp:
        for name in names:
            runs = []
            for seed in range(args.seeds):
                folder = Path(tmp) / f"{name}-{seed}"
                runs.append(
                    run_once(name, args.per_class, seed, folder, args.overrides, args.holdout)
                )
                print(
                    f"bench fewshot: {name} seed {seed}: int8 {runs[-1]['int8']:.3f} "
                    f"plain CNN {runs[-1]['plain_cnn']:.3f} ({runs[-1]['seconds']:.0f} s, "
                    f"CNN {runs[-1]['cnn_seconds']:.0f} s)",
                    flush=True,
                )
            rows.append(summarise(name, runs))
    worse = [r["set"] for r in rows if r["int8_minus_cnn_pp"] < 0]
    mean_int8 = statistics.fmean(r["int8_mean"] for r in rows)
    mean_cnn = statistics.fmean(r["cnn_mean"] for r in rows)
    result = {
        "machine": machine(),
        "command": " ".join(["uv run python -m bench fewshot", *argv]),
        "per_class": args.per_class,
        "holdout": args.holdout,
        "overrides": args.overrides,
        "seeds": list(range(args.seeds)),
        "rows": rows,
        "summary_lines": [
            f"mean test accuracy: edgekit int8 {mean_int8:.4f}, plain CNN {mean_cnn:.4f} "
            f"({100 * (mean_int8 - mean_cnn):+.1f} pp)",
            f"sets where edgekit int8 is below the plain CNN: {', '.join(worse) or 'none'}",
        ],
        "wall_seconds": round(time.time() - started, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(result))
    print(render(result))
