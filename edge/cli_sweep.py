"""`edgekit sweep`: the hardware-aware search, locally (Optuna) or on a Ray cluster."""

from __future__ import annotations

from pathlib import Path

import click
from edgekit.cli_options import build_config, config_option, data_option, set_option


@click.command()
@data_option
@config_option
@set_option
@click.option(
    "--space",
    "space_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Search space YAML (config keys -> {low, high[, log][, step]} or {choices: [...]}); "
    "default: configs/sweep_space.yaml.",
)
@click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--target",
    type=click.Choice(["onnx", "mcu", "hailo"]),
    default="onnx",
    show_default=True,
    help="Whose figures the budget limits, and what the best model is exported for.",
)
@click.option(
    "--budget",
    "budget_text",
    default=None,
    metavar="KEY=VALUE,...",
    help="Limits: params, macs, weights (bytes), and for mcu flash, ram (bytes; k=1024) and "
    "latency_ms (with cpu_mhz=...), e.g. flash=64k,ram=20k,macs=2M.",
)
@click.option(
    "--out",
    "sweep_dir",
    type=click.Path(path_type=Path),
    default="sweeps/latest",
    show_default=True,
    help="Sweep folder (resumed when it holds a sweep).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Local worker processes sharing the study (each gets CPUs / workers torch threads).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--ray",
    "ray_address",
    default=None,
    metavar="local|auto|HOST:PORT|ray://HOST:10001",
    help="Run the trials as Ray Tune trials: a private local cluster, or an existing one "
    "(needs the ray extra).",
)
@click.option(
    "--gpus-per-trial",
    type=click.FloatRange(min=0, max=1),
    default=0.0,
    show_default=True,
    help="With --ray: the share of a GPU each trial asks for (train.device=auto then uses it).",
)
@click.option(
    "--final/--no-final",
    default=True,
    show_default=True,
    help="Train the best config again into SWEEP/best and export, check and verify it.",
)
def sweep(
    data_spec: str | None,
    config_file: str | None,
    overrides: tuple[str, ...],
    space_file: Path | None,
    trials: int,
    target: str,
    budget_text: str | None,
    sweep_dir: Path,
    workers: int,
    seed: int,
    ray_address: str | None,
    gpus_per_trial: float,
    final: bool,
) -> None:
    """Search for the most accurate model that fits the target's budget (validation only)."""
    from edgekit.sweep.budget import parse_budget
    from edgekit.sweep.run import run_sweep
    from edgekit.sweep.space import load_space

    base = build_config(config_file, overrides, data_spec)
    space = load_space(space_file)
    budget = parse_budget(budget_text, target)
    summary = run_sweep(
        sweep_dir,
        base,
        space,
        target=target,
        budget=budget,
        trials=trials,
        workers=workers,
        seed=seed,
        ray=ray_address,
        gpus_per_trial=gpus_per_trial,
        final=final,
        echo=click.echo,
    )
    best = summary["best"]
    click.echo(
        f"best: trial {best['number']}, validation {best['value']:.4f} -> {sweep_dir / 'best.yaml'}"
        f"; report {sweep_dir / 'report.md'}"
    )
    if summary["final"] and summary["final"]["violations"]:
        click.echo(
            f"warning: the exported model is over budget: {'; '.join(summary['final']['violations'])}"
        )
