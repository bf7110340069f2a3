"""`edgekit sweep`: search the space for the most accurate model that fits the target's budget, then
train the chosen one again into `SWEEP/best` and take it through export, parity and verify.

SWEEP/ holds sweep.json (what was asked, checked on resume), space.yaml, config.base.yaml,
study.journal (the local engine) or ray/ (the Ray engine), trials/NNNN/ (each trial's config and
history), trials.csv + trials.json, best.yaml, report.md with front.png, importance.png and
curves.png, and best/ (the final run). One sweep writes a folder at a time (its lock).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.config import RunConfig, has_val_split
from edgekit.errors import ConfigError, EdgekitError, GateError, ParityError
from edgekit.rundir.artifacts import read_json, write_json, write_text
from edgekit.sweep.budget import Budget
from edgekit.sweep.results import (
    TrialRow,
    best_row,
    counts,
    draw,
    importances,
    render_report,
    trials_csv,
    trials_json,
)
from edgekit.sweep.space import SearchSpace, space_yaml
from edgekit.sweep.trial import SweepSetup

SETTINGS_FILE = "sweep.json"


def _check_settings(folder: Path, settings: dict[str, Any]) -> None:
    """A resumed sweep must ask what the first run asked (trial count aside)."""
    path = folder / SETTINGS_FILE
    if path.is_file():
        saved = read_json(path, f"sweep into a new --out, or remove {folder} to start over")
        differing = [k for k in settings if k != "trials" and saved.get(k) != settings[k]]
        if differing:
            key = differing[0]
            raise ConfigError(
                f"{folder} holds a sweep started with another {key} ({saved.get(key)!r}, now "
                f"{settings[key]!r}); resume it with the same options or sweep into a new --out"
            )
    write_json(path, settings)


def absolute_source(config: RunConfig) -> RunConfig:
    """The config with a relative data path made absolute: trials on Ray run in other folders."""
    scheme, sep, rest = config.data.source.partition(":")
    path = Path(rest)
    if not sep or path.is_absolute() or not path.exists():
        return config
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, source=f"{scheme}:{path.resolve()}")
    )


# A sweep chooses on validation. A base config without a val split (the default trains on every
# window) is searched with this share of its train windows cut out as val (85 % train -> 70 + 15,
# the cut of the old default), and the final run trains the chosen config as the base asks.
SEARCH_VAL_SHARE_OF_TRAIN = 0.15 / 0.85


def with_search_val_cut(base: RunConfig) -> RunConfig:
    """The config trials train from: `base`, with a val cut when it has none."""
    if has_val_split(base.data):
        return base
    train, _, test = base.data.split_fractions
    val = train * SEARCH_VAL_SHARE_OF_TRAIN
    return dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, split_fractions=(train - val, val, test)),
    )


def run_sweep(
    sweep: str | Path,
    base: RunConfig,
    space: SearchSpace,
    *,
    target: str = "onnx",
    budget: Budget | None = None,
    trials: int = 20,
    workers: int = 1,
    seed: int = 0,
    ray: str | None = None,
    gpus_per_trial: float = 0.0,
    final: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run (or resume) a sweep into `sweep`; returns its summary (counts, best trial, final run).
    `ray` is a cluster address (or `local`); `gpus_per_trial` a GPU share each Ray trial asks for."""
    from edgekit.data.prepare import prepare_data
    from edgekit.rundir.lock import run_lock
    from edgekit.train.loop import selection_metric

    folder = Path(sweep)
    budget = budget or Budget()
    base = absolute_source(base)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the sweep folder {folder} ({err.strerror})") from err
    settings: dict[str, Any] = {
        "data": base.data.source,
        "base_config_hash": base.digest(),
        "space": space_yaml(space),
        "target": target,
        "budget": budget.describe(),
        "seed": seed,
        "engine": "ray" if ray else "optuna",
        "trials": trials,
    }
    with run_lock(folder, "sweep"):
        _check_settings(folder, settings)
        write_text(folder / "space.yaml", settings["space"])
        write_text(folder / "config.base.yaml", base.to_yaml())
        search = with_search_val_cut(base)
        data = prepare_data(search.data)
        # a Ray trial has one CPU; local workers share this machine's
        threads = 1 if ray else base.train.threads or max(1, (os.cpu_count() or 1) // workers)
        setup = SweepSetup(search, space, target, budget, data, threads)
        echo(
            f"sweep: {trials} trials of {', '.join(space.keys)} on {base.data.source} "
            f"for {target}, budget {budget.describe()}, "
            + (f"Ray at {ray}" if ray else f"{workers} local worker(s)")
        )
        started = time.perf_counter()
        if ray:
            from edgekit.sweep.ray_tune import run_on_ray

            rows = run_on_ray(setup, folder, trials, seed, (ray, gpus_per_trial), echo)
        else:
            from edgekit.sweep.local import run_local

            rows = run_local(setup, folder, trials, workers, seed, echo)
        metric = selection_metric(base.train, data.arrays["train"][1], data.num_classes)
        context = {
            "data": base.data.source,
            "target": target,
            "budget": budget.describe(),
            "engine": settings["engine"],
            "metric": metric,
        }
        weights = importances(rows, space)
        best = write_results(folder, rows, space, base, context, weights)
        summary: dict[str, Any] = {
            "counts": counts(rows),
            "search_seconds": round(time.perf_counter() - started, 1),
            "best": None,
            "final": None,
        }
        if best is None:
            raise ConfigError(
                f"no trial of {folder} completed within the budget ({budget.describe()}); see "
                f"{folder / 'report.md'}, then loosen --budget or search smaller models "
                "(e.g. model.size: {choices: [tiny, small]})"
            )
        summary["best"] = {"number": best.number, "value": best.value, "params": best.params}
        if final:
            summary["final"] = final_run(
                folder, space.config_for(base, best.params), best, target, budget, echo
            )
            report = render_report(rows, space, context, summary["final"], weights)
            write_text(folder / "report.md", report)
        failure = summary["final"].pop("failure") if summary["final"] else None
        write_json(folder / "summary.json", summary)
    if failure is not None:  # after every output is written: the sweep and its final run stand
        raise failure
    return summary


def write_results(
    folder: Path,
    rows: list[TrialRow],
    space: SearchSpace,
    base: RunConfig,
    context: dict[str, Any],
    weights: dict[str, float],
) -> TrialRow | None:
    """trials.csv/json, best.yaml, report.md and its pictures; returns the best trial."""
    write_text(folder / "trials.csv", trials_csv(rows, space))
    write_json(folder / "trials.json", trials_json(rows))
    best = best_row(rows)
    if best is not None:
        config = space.config_for(base, best.params)
        write_text(
            folder / "best.yaml",
            f"# edgekit sweep {folder}: trial {best.number}, int8 validation {best.value:.4f}\n"
            f"# reproduce: edgekit train --config {folder / 'best.yaml'}\n" + config.to_yaml(),
        )
    draw(rows, weights, context["target"], folder)
    write_text(folder / "report.md", render_report(rows, space, context, None, weights))
    return best


def final_run(
    folder: Path,
    config: RunConfig,
    best: TrialRow,
    target: str,
    budget: Budget,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    """The chosen config trained again into SWEEP/best and taken through every stage (the only
    time the test split is read); its budget figures measured on the export."""
    from edgekit.config import load_run_config
    from edgekit.pipeline import default_device, run_pipeline
    from edgekit.rundir import layout
    from edgekit.rundir.lock import run_lock

    run_dir = folder / "best"
    fix = f"remove {run_dir} to train the final run anew"
    failure: EdgekitError | None = None
    if (run_dir / layout.SUMMARY).is_file() and load_run_config(
        run_dir
    ).digest() == config.digest():
        echo(f"final: {run_dir} already holds trial {best.number}'s finished run; kept")
        summary = read_json(run_dir / layout.SUMMARY, fix)
        if not summary["parity_passed"]:
            failure = ParityError(f"the final run's parity failed; see {run_dir / layout.PARITY}")
    else:
        echo(f"final: trial {best.number}'s config into {run_dir} (train to verify)")
        run_dir.mkdir(exist_ok=True)
        with run_lock(run_dir, "sweep"):
            try:
                summary = run_pipeline(
                    run_dir, config, target, default_device(target), echo=echo, show_progress=False
                )
            except (ParityError, GateError) as err:  # the run is complete; its report says why
                failure = err
                summary = read_json(run_dir / layout.SUMMARY, fix)
    metrics = read_json(run_dir / "metrics.json", fix)
    figures = measured_figures(run_dir, metrics, target, budget, fix)
    return {
        "run": str(run_dir),
        "trial_value": best.value,
        "int8_val_accuracy": metrics["int8_val_accuracy"],
        "int8_test_accuracy": metrics["int8_test_accuracy"],
        "float_test_accuracy": metrics["float_test_accuracy"],
        "parity_passed": summary["parity_passed"],
        "device_passed": summary["device"]["passed"],
        "figures": figures,
        "violations": budget.violations(figures),
        "failure": failure,
    }


def measured_figures(
    run_dir: Path, metrics: dict[str, Any], target: str, budget: Budget, fix: str
) -> dict[str, Any]:
    """The budget figures of the exported model: counts from training's cost, and for mcu the
    firmware's flash, RAM and instructions measured on the emulated board (DSP build)."""
    cost = metrics["cost"]
    figures: dict[str, Any] = {
        "parameters": cost["parameters"],
        "macs": cost["macs"],
        "weight_bytes": cost["int8_weight_bytes"],
    }
    if target == "mcu":
        report = read_json(run_dir / "export" / "mcu" / "report.json", fix)
        build = report["target"].get("builds", {}).get("dsp")
        if build:
            figures.update(
                flash_bytes=build["flash_bytes"],
                ram_bytes=build["ram_bytes"],
                instructions=build["instructions_per_inference"],
            )
            if budget.cpu_mhz:
                figures["latency_ms"] = budget.latency_ms(build["instructions_per_inference"])
    elif target == "hailo":
        reports = sorted((run_dir / "export" / "hailo").glob("*/readiness_report.json"))
        figures["hailo_ready"] = bool(reports) and read_json(reports[0], fix)["ready"]
    return figures
