"""Accuracy on public sets that ship offline: the default config, each set's official split, several seeds.

uv run python -m bench accuracy                              # every set, 3 seeds -> bench/accuracy.{md,json}
uv run python -m bench accuracy --sets GunPoint,ArrowHead --seeds 1
uv run python -m bench accuracy --set train.augment=false --out /tmp/no-augment   # one ablation arm
uv run python -m bench accuracy --holdout --set train.checkpoint=last --out /tmp/last   # nested cut

No per-set tuning: every set gets the same config (plus the official split and the seed). The
validation accuracy is reported so that recipes are chosen on it, never on test.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import add_arm_options, cut_ts_file, machine, mean_sd

HERE = Path(__file__).resolve().parent

# Published accuracy on each set's OFFICIAL train/test split, the split this benchmark measures
# (shared/reference/accuracy.md). LITE: one ~9.8k-parameter model, mean of 5 runs, from
# MSD-IRIMAS/LITE results.csv; InceptionTime: hfawaz/InceptionTime results-InceptionTime-128.csv;
# MiniRocket: angus924/minirocket results/accuracy_ucr109_resamples.csv, column 0 (resample 0 is
# the official split). BasicMotions' LITE figure is the univariate LITE on the UEA set.
ANCHORS = ("LITE", "InceptionTime", "MiniRocket")
PUBLISHED: dict[str, dict[str, float]] = {
    "BasicMotions": {"LITE": 0.950, "InceptionTime": 1.000},
    "GunPoint": {"LITE": 0.997, "InceptionTime": 1.000, "MiniRocket": 0.993},
    "ArrowHead": {"LITE": 0.822, "InceptionTime": 0.846, "MiniRocket": 0.863},
    "OSULeaf": {"LITE": 0.956, "InceptionTime": 0.942, "MiniRocket": 0.959},
    "ACSF1": {"LITE": 0.898, "InceptionTime": 0.920, "MiniRocket": 0.920},
    "ItalyPowerDemand": {"LITE": 0.969, "InceptionTime": 0.965, "MiniRocket": 0.969},
    "JapaneseVowels": {"LITE": 0.968, "InceptionTime": 0.970},
    "PLAID": {"LITE": 0.907, "InceptionTime": 0.944},
}
SETS = tuple(PUBLISHED)
SMOKE_SETS = ("ItalyPowerDemand", "GunPoint")
HOLDOUT_SHARE = 0.15  # of each class of the official train file, with --holdout


def fraction(value: float | None, digits: int = 3) -> str:
    """An accuracy, or – for a figure the runs had none of (no val split)."""
    return "–" if value is None else f"{value:.{digits}f}"


def data_folder(name: str) -> Path:
    """The set's folder inside the installed sktime wheel (no network)."""
    distribution = importlib.metadata.distribution("sktime")
    for file in distribution.files or []:
        if file.name == f"{name}_TRAIN.ts":
            return Path(str(distribution.locate_file(file))).parent
    raise SystemExit(
        f"bench accuracy: sktime ships no {name}_TRAIN.ts; choose from {', '.join(SETS)}"
    )


def train_once(
    name: str, seed: int, overrides: list[str], folder: Path, folds: int = 0, holdout: bool = False
) -> dict[str, Any]:
    """One run; with `holdout` the official train file alone: HOLDOUT_SHARE of each class (cut by
    seed, the same for every arm) is "test", no selection rule looks at it, and the rest is the
    train file the config's val cut splits. The official test is then never read."""
    from edgekit.config import load_config
    from edgekit.train.loop import run_training

    source = data_folder(name)
    if holdout:
        source = folder / "data"
        source.mkdir(parents=True)
        cut_ts_file(
            data_folder(name) / f"{name}_TRAIN.ts",
            source / f"{name}_TRAIN.ts",
            lambda windows: windows - min(windows - 1, max(1, round(HOLDOUT_SHARE * windows))),
            seed,
            rest=source / f"{name}_TEST.ts",
        )
    config = load_config(
        None,
        [
            f"data.source=ts:{source}",
            "data.split_mode=official",
            f"train.seed={seed}",
            "train.threads=2",
            *([f"data.cv_folds={folds}", f"data.cv_fold={seed}"] if folds else []),
            *overrides,
        ],
    )
    metrics = run_training(folder / "run", config, show_progress=False)
    return {
        "int8": metrics["int8_test_accuracy"],
        "float": metrics["float_test_accuracy"],
        "int8_val": metrics["int8_val_accuracy"],
        "float_val": metrics["float_val_accuracy"],
        "parameters": metrics["cost"]["parameters"],
        "macs": metrics["cost"]["macs"],
        "seconds": metrics["train_seconds"],
        "windows": metrics["splits"],
        "model": metrics["model"],
        "shift_step": metrics["augment_shift_step"],
    }


def summarise(name: str, runs: list[dict[str, Any]], anchored: bool = True) -> dict[str, Any]:
    int8, int8_sd = mean_sd(runs, "int8")
    float_, _ = mean_sd(runs, "float")
    row = {
        "set": name,
        "seeds": len(runs),
        "int8_mean": int8,
        "int8_sd": int8_sd,
        "float_mean": float_,
        "int8_minus_float_pp": 100 * (int8 - float_),
        "int8_val_mean": val_mean(runs, "int8_val"),
        "float_val_mean": val_mean(runs, "float_val"),
        "parameters": runs[0]["parameters"],
        "macs": runs[0]["macs"],
        "seconds_mean": mean_sd(runs, "seconds")[0],
        "windows": runs[0]["windows"],
        "model": runs[0]["model"],
        "runs": runs,
        **({name_: value for name_, value in PUBLISHED[name].items()} if anchored else {}),
    }
    if anchored and "LITE" in PUBLISHED[name]:
        row["gap_to_lite_pp"] = 100 * (PUBLISHED[name]["LITE"] - int8)
    return row


def val_mean(runs: list[dict[str, Any]], key: str) -> float | None:
    """Mean val accuracy over seeds; None when the runs had no val split."""
    values = [run[key] for run in runs if run[key] is not None]
    return statistics.fmean(values) if values else None


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    lines = [
        f"# Accuracy on public sets ({result['machine']})",
        "",
        f"`{result['command']}`; default config, "
        f"{'the official train file alone' if result.get('holdout') else 'official split'}, "
        f"seeds {result['seeds']}; overrides: {result['overrides'] or 'none'}. Test accuracy mean ± sd "
        "over seeds; "
        + (
            f"test = a {100 * HOLDOUT_SHARE:.0f} % holdout of each class of the official train file (cut by "
            "seed, the same in every arm), val = the config's val cut of the rest (no published "
            "figure applies, the official test is never read)."
            if result.get("holdout")
            else f"val = fold i of a {result['folds']}-fold cross-validation of the official train split "
            "for seed i, so every train window is val once (recipes are chosen on it)."
            if result.get("folds")
            else "val = the val cut of the official train split (recipes are chosen on it)."
            if any(run["windows"]["val"] for r in rows for run in r["runs"])
            else "no val split: every official train window trains (recipes are chosen with "
            "--holdout, bench/README.md)."
        ),
        "",
        "| set | int8 test | float twin | int8 − float | int8 val | params | MACs/window "
        f"| train s | {' | '.join(ANCHORS)} | gap to LITE |",
        "|---|---|---|---|---|---|---|---|" + "---|" * len(ANCHORS) + "---|",
    ]
    for r in rows:
        anchors = " | ".join("–" if r.get(a) is None else f"{r[a]:.3f}" for a in ANCHORS)
        gap = r.get("gap_to_lite_pp")
        lines.append(
            f"| {r['set']} | {r['int8_mean']:.3f} ± {r['int8_sd']:.3f} | {r['float_mean']:.3f} | "
            f"{r['int8_minus_float_pp']:+.1f} pp | {fraction(r['int8_val_mean'])} | {r['parameters']} | "
            f"{r['macs']} | {r['seconds_mean']:.0f} | {anchors} | "
            f"{'–' if gap is None else f'{gap:+.1f} pp'} |"
        )
    lines += ["", *[f"- {line}" for line in result["summary_lines"]], ""]
    if result.get("plot"):
        lines += [f"![int8 test accuracy beside the published anchors]({result['plot']})", ""]
    return "\n".join(lines)


def pooled_val(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Correct int8 val windows and val windows over every run of every set: the measure levers are
    chosen on (one set's val cut alone is a handful of windows)."""
    runs = [run for r in rows for run in r["runs"]]
    return (
        sum(round((run["int8_val"] or 0) * run["windows"]["val"]) for run in runs),
        sum(run["windows"]["val"] for run in runs),
    )


def pooled_test(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Correct int8 test windows and test windows over every run of every set (with --holdout, the
    unbiased score of a rule that selects on val)."""
    runs = [run for r in rows for run in r["runs"]]
    return (
        sum(round(run["int8"] * run["windows"]["test"]) for run in runs),
        sum(run["windows"]["test"] for run in runs),
    )


def summary_lines(rows: list[dict[str, Any]]) -> list[str]:
    anchored = [r for r in rows if "gap_to_lite_pp" in r]
    lines = []
    if anchored:
        gaps = [r["gap_to_lite_pp"] for r in anchored]
        worst = max(anchored, key=lambda r: r["gap_to_lite_pp"])
        within = sum(gap <= 2.0 for gap in gaps)
        lite_mean = statistics.fmean(r["LITE"] for r in anchored)
        ours_mean = statistics.fmean(r["int8_mean"] for r in anchored)
        lines.append(
            f"gap to LITE (official split): mean {statistics.fmean(gaps):+.1f} pp over "
            f"{len(anchored)} sets, largest {worst['set']} {worst['gap_to_lite_pp']:+.1f} pp; "
            f"{within}/{len(anchored)} sets within 2 pp; mean int8 {ours_mean:.4f} vs LITE "
            f"{lite_mean:.4f} (goal: every set within 2 pp, mean at or above)"
        )
    quant = min(rows, key=lambda r: r["int8_minus_float_pp"])
    spread = max(rows, key=lambda r: r["int8_sd"])
    lines.append(
        f"int8 − float (mean over seeds), worst set: {quant['int8_minus_float_pp']:+.1f} pp ({quant['set']})"
    )
    lines.append(f"largest seed-to-seed sd: {100 * spread['int8_sd']:.1f} pp ({spread['set']})")
    correct, windows = pooled_val(rows)
    if windows:
        lines.append(f"pooled int8 val: {correct} of {windows} windows ({correct / windows:.4f})")
    correct, windows = pooled_test(rows)
    lines.append(
        f"pooled int8 test: {correct} of {windows} windows ({correct / max(windows, 1):.4f})"
    )
    val_means = [r["int8_val_mean"] for r in rows if r["int8_val_mean"] is not None]
    lines.append(
        f"mean int8 val accuracy over sets: {fraction(statistics.fmean(val_means) if val_means else None, 4)}; "
        f"mean int8 test accuracy: {statistics.fmean(r['int8_mean'] for r in rows):.4f}"
    )
    lines.append(
        f"largest model: {max(r['parameters'] for r in rows)} parameters, {max(r['macs'] for r in rows)} MACs/window; "
        f"total training time {sum(r['seconds_mean'] * r['seeds'] for r in rows):.0f} s"
    )
    return lines


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench accuracy")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated set names")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--folds",
        type=int,
        default=0,
        help="K-fold cross-validation of the official train split: K runs per set, run i with "
        "seed i and fold i as val (replaces --seeds)",
    )
    parser.add_argument(
        "--holdout",
        action="store_true",
        help="test = a 15 %% holdout of each class of the official train file (by seed), train and "
        "val the rest: scores rules that select on val without bias and never reads the official test",
    )
    add_arm_options(parser, HERE / "accuracy")
    args = parser.parse_args(argv)
    if args.folds == 1 or args.folds < 0:
        raise SystemExit("bench accuracy: --folds takes 0 (the val cut) or at least 2, e.g. 5")
    if args.folds and args.holdout:
        raise SystemExit(
            "bench accuracy: --folds splits the official train file; drop --holdout or --folds"
        )
    runs_per_set = args.folds or args.seeds
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    unknown = [n for n in names if n not in PUBLISHED]
    if unknown:
        raise SystemExit(f"bench accuracy: unknown set(s) {unknown}; choose from {', '.join(SETS)}")
    import torch
    from edgekit.cli import quiet_third_party

    quiet_third_party()
    torch.set_num_threads(2)
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgekit-accuracy-") as tmp:
        for name in names:
            runs = []
            for seed in range(runs_per_set):
                folder = Path(tmp) / f"{name}-{seed}"
                runs.append(
                    train_once(name, seed, args.overrides, folder, args.folds, args.holdout)
                )
                print(
                    f"bench accuracy: {name} seed {seed}: int8 {runs[-1]['int8']:.3f} "
                    f"float {runs[-1]['float']:.3f} val {fraction(runs[-1]['int8_val'])} ({runs[-1]['seconds']:.0f} s)",
                    flush=True,
                )
            rows.append(summarise(name, runs, anchored=not args.holdout))
    result = {
        "machine": machine(),
        "command": " ".join(["uv run python -m bench accuracy", *argv]),
        "seeds": list(range(runs_per_set)),
        "folds": args.folds,
        "holdout": args.holdout,
        "overrides": args.overrides,
        "rows": rows,
        "summary_lines": summary_lines(rows),
        "wall_seconds": round(time.time() - started, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from edgekit.plots import accuracy_against_anchors

    if not args.holdout:  # the plot sets the official split beside published figures
        result["plot"] = accuracy_against_anchors(rows, ANCHORS, out.with_suffix(".png")).name
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(result))
    print(render(result))
