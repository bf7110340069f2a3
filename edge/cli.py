"""The `edgekit` command line: flags -> config -> the stage's public Python function.

Heavy modules (torch, onnx, brevitas) are imported inside commands so `edgekit --help` stays fast.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import click
from edgekit import __version__
from edgekit.cli_device import device, verify
from edgekit.cli_options import (
    build_config,
    config_option,
    data_option,
    out_option,
    run_argument,
    set_option,
    writing,
)
from edgekit.cli_sweep import sweep
from edgekit.config import RANGES
from edgekit.errors import EdgekitError
from edgekit.rundir import layout
from edgekit.targets import TARGETS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """edgekit: IMU classifier from raw windows to a validated model on an edge device.

    Stages: data -> train -> calibrate -> export -> parity -> verify; `edgekit pipeline` runs them all.
    """
    ctx.obj = {"verbose": verbose}


# ------------------------------------------------------------------ data
@cli.group()
def data() -> None:
    """Inspect data sources: shapes, classes, split counts and quality checks."""


@data.command("inspect")
@data_option
@config_option
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print the full QA report as JSON.")
def data_inspect(
    data_spec: str | None, config_file: str | None, overrides: tuple[str, ...], as_json: bool
) -> None:
    """Load a data source and print shapes, classes, counts per split and the QA summary."""
    from edgekit.data import prepare_data

    config = build_config(config_file, overrides, data_spec)
    prepared = prepare_data(config.data)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "stats": prepared.stats,
                    "splits": {k: v for k, v in prepared.splits.items() if k != "groups"},
                    "qa": prepared.qa,
                },
                indent=2,
            )
        )
        return
    stats, qa = prepared.stats, prepared.qa
    click.echo(f"source      {stats['source']}  {stats['provenance'].get('package', '')}")
    click.echo(
        f"windows     {qa['windows']} x {qa['channels']} channels x {qa['window_length']} samples @ {stats['fs']:g} Hz"
    )
    click.echo(
        f"model input (C, 2, T/2) = {prepared.input_shape}"
        + ("  (odd T: last sample dropped)" if stats["dropped_last_sample"] else "")
        + f"; rows {stats['row_layout']}"
    )
    chosen = stats["normalization"]
    click.echo(
        f"normalise   {chosen['mode']} (data.normalize={chosen['requested']}; "
        f"{100 * chosen['quiet_train_windows']:.0f} % of train windows below 1/16 of the train std)"
    )
    click.echo(f"channels    {', '.join(stats['channel_names'])}")
    if stats["channel_groups"]:
        groups = "; ".join(f"{g}: {len(m)}" for g, m in stats["channel_groups"].items())
        click.echo(f"groups      {groups}  (select with --set data.channels=...)")
    if (
        stats["length_policy"]
        and stats["length_policy"]["source_min"] != stats["length_policy"]["source_max"]
    ):
        from edgekit.data.lengths import describe

        click.echo(f"lengths     {describe(stats['length_policy'], qa['windows'])}")
    click.echo(
        f"classes     {len(prepared.class_names)}: "
        + ", ".join(f"{k} ({v})" for k, v in qa["class_counts"].items())
    )
    counts = prepared.splits["counts"]
    click.echo(
        f"split       train {counts['train']} / val {counts['val']} / test "
        f"{counts['test']}  ({prepared.splits['mode']}, seed {prepared.splits['seed']})"
    )
    per_class = prepared.splits["per_class"]
    width = max(len("class"), *(len(name) for name in prepared.class_names))
    click.echo(f"  {'class':<{width}}  {'train':>6} {'val':>6} {'test':>6}")
    for name in prepared.class_names:
        row = " ".join(f"{per_class[split][name]:>6}" for split in ("train", "val", "test"))
        click.echo(f"  {name:<{width}}  {row}")
    if "gap_windows_dropped" in prepared.splits:
        click.echo(
            f"time split  {prepared.splits['gap_windows_dropped']} windows dropped at the "
            "cuts so no sample is in two splits"
        )
    for warning in prepared.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"quality     score {qa['quality_score']:.3f}; non-finite {qa['non_finite']} "
        f"({100 * qa['non_finite_fraction']:.3f}%), "
        f"repaired by '{qa['repair']['strategy']}'; flat channels: {', '.join(qa['flat_channels']) or 'none'}"
    )
    for row in qa["per_channel"]:
        click.echo(
            f"  {row['channel']:<14} min {row['min']:>9.3f}  max {row['max']:>9.3f}  std "
            f"{row['std']:>8.3f}  non-finite {row['non_finite_pct']:.2f}%"
        )


# ------------------------------------------------------------------ train / evaluate
@cli.command()
@config_option
@data_option
@out_option
@set_option
@click.option("--resume", is_flag=True, help="Continue from the run's checkpoints/last.pt.")
@click.option(
    "--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Training device."
)
def train(
    config_file: str | None,
    data_spec: str | None,
    run_dir: Path,
    overrides: tuple[str, ...],
    resume: bool,
    device: str | None,
) -> None:
    """Train the float twin, fold BatchNorm, then quantization-aware int8 training."""
    from edgekit.config import load_run_config
    from edgekit.train.loop import run_training

    # --resume starts from the run's own config; run_training refuses overrides that change shapes
    base = load_run_config(run_dir) if resume and (run_dir / layout.CONFIG).is_file() else None
    config = build_config(config_file, overrides, data_spec, base=base, **{"train.device": device})
    with writing(run_dir, "train", create=True):
        metrics = run_training(run_dir, config, resume=resume)
    test = metrics["test"]
    low, high = test["accuracy_interval_95"]
    click.echo(
        f"test accuracy int8 {metrics['int8_test_accuracy']:.4f} (95 % CI "
        f"{low:.3f}-{high:.3f}, {test['windows']} windows; "
        f"majority baseline {test['majority_baseline']:.3f}; float twin {metrics['float_test_accuracy']:.4f}); "
        f"FSQ codes used {metrics['fsq_train']['codes_used']}/{metrics['fsq_train']['codebook_size']}; "
        f"{metrics['train_seconds']} s -> {run_dir}"
    )
    for warning in [*metrics["fsq_train"]["warnings"], *metrics["data_warnings"]]:
        click.echo(f"warning: {warning}", err=True)


@cli.command()
@run_argument
@click.option("--checkpoint", default="best.pt", show_default=True, help="File in RUN/checkpoints.")
@click.option(
    "--drop-channels",
    metavar="NAMES",
    default="",
    help="Comma-separated channels, globs (hand_*) or groups (imu_hand) to zero, as if that "
    "sensor dropped out; reports accuracy with and without them.",
)
def evaluate(run_dir: Path, checkpoint: str, drop_channels: str) -> None:
    """Recompute test metrics of a run from a checkpoint."""
    from edgekit.evaluate import run_evaluate

    patterns = tuple(p.strip() for p in drop_channels.split(",") if p.strip())
    metrics = run_evaluate(run_dir, checkpoint, patterns)  # checks the names before any work
    click.echo(
        f"test accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_f1']:.4f}  ({metrics['windows']} windows)"
    )
    click.echo(
        f"FSQ codes used {metrics['fsq']['codes_used']}/{metrics['fsq']['codebook_size']}, "
        f"perplexity {metrics['fsq']['perplexity']:.2f}"
    )
    dropped = metrics.get("without_channels")
    if dropped is not None:
        click.echo(
            f"without {', '.join(dropped['channels'])}: test accuracy {dropped['accuracy']:.4f} "
            f"({100 * (dropped['accuracy'] - metrics['accuracy']):+.2f} pp), macro F1 {dropped['macro_f1']:.4f}"
        )
        for name, row in dropped["per_class"].items():
            full = metrics["per_class"][name]["recall"]
            click.echo(f"  {name:<20} recall {row['recall']:.3f} (all channels {full:.3f})")


@cli.command()
@run_argument
@config_option
@data_option
@set_option
@click.option(
    "--target",
    type=click.Choice(["onnx", "hailo", "mcu"]),
    default=None,
    help="Add what a run's export for this target says (mcu: static RAM; hailo: readiness).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
def analyze(
    run_dir: Path,
    config_file: str | None,
    data_spec: str | None,
    overrides: tuple[str, ...],
    target: str | None,
    as_json: bool,
) -> None:
    """What a model costs, per layer and in total: of a trained RUN, or, with --config/--data/--set,
    of the untrained network a config would train (seconds, no training)."""
    from edgekit.analyze import analyze_config, analyze_run, format_analysis

    if config_file or data_spec or overrides:
        result = analyze_config(build_config(config_file, overrides, data_spec), target)
    else:
        result = analyze_run(run_dir, target)
    click.echo(json.dumps(result, indent=2) if as_json else format_analysis(result))


# ------------------------------------------------------------------ calibrate / export / check / parity
@cli.command()
@run_argument
@set_option
def calibrate(run_dir: Path, overrides: tuple[str, ...]) -> None:
    """Representative set, activation calibration and bias correction; shows the effect."""
    from edgekit.calibrate.stage import run_calibration
    from edgekit.config import load_config, load_run_config

    if any(not item.startswith("calibrate.") for item in overrides):
        raise click.UsageError(
            "calibrate takes only calibrate.* keys in --set, e.g. --set calibrate.num_windows=256"
        )
    config = load_config(None, overrides, base=load_run_config(run_dir)).calibrate
    with writing(run_dir, "calibrate"):
        report = run_calibration(run_dir, config)
    before, after = report["before"], report["after"]
    click.echo(
        f"representative set: {report['windows']} train windows, per class {report['class_counts']}"
    )
    accuracy = f"{report['judged_on']} acc"
    click.echo(f"{'':<10} {accuracy:>9} {'logit MAE vs float':>19} {'top-1 vs float':>15}")
    for name, row in (("before", before), ("after", after)):
        click.echo(
            f"{name:<10} {row['accuracy']:>9.4f} {row['logit_mae_vs_float']:>19.5f} "
            f"{row['top1_agreement_vs_float']:>15.4f}"
        )
    verdict = (
        "adopted (export uses calibrated.pt)"
        if report["adopted"]
        else "not adopted: no gain over the QAT ranges (export keeps best.pt)"
    )
    click.echo(f"calibration {verdict}")


class TargetCommand(click.Command):
    """`edgekit export`: the options offered, accepted and listed by --help are those of the
    --target given (every target's, each tagged, without one), all taken from the TARGETS table."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        for index, arg in enumerate(args):
            if arg == "--target" and index + 1 < len(args):
                ctx.meta["target"] = args[index + 1]
            elif arg.startswith("--target="):
                ctx.meta["target"] = arg.partition("=")[2]
        return super().parse_args(ctx, args)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        chosen = TARGETS.get(ctx.meta.get("target", ""))
        if chosen is None:
            return super().get_params(ctx)
        taken = {option.name for option in chosen.options}
        return [
            p for p in super().get_params(ctx) if p.name not in TARGET_OPTIONS or p.name in taken
        ]


def target_options(command: Any) -> Any:
    """One click option per option any target declares: type, default and help from the table."""
    for name in reversed(TARGET_OPTIONS):
        users = [t for t in TARGETS.values() for o in t.options if o.name == name]
        option = next(o for o in users[0].options if o.name == name)
        flag = "--" + name.replace("_", "-")
        tag = (
            f"[{', '.join(t.name for t in users)}] " + option.help + f" (default {option.default})"
        )
        if option.kind == "bool":
            decorator = click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=tag)
        else:
            allowed = RANGES.get(f"export.{name}")  # the config's range, checked before any work
            kind: Any = {"int": int, "float": float}.get(option.kind, str)
            if kind is int and allowed is not None:
                low, high = allowed.low, allowed.high
                kind = click.IntRange(
                    None if low is None else int(low), None if high is None else int(high)
                )
            decorator = click.option(flag, name, type=kind, default=None, help=tag)
        command = decorator(command)
    return command


TARGET_OPTIONS = list(dict.fromkeys(o.name for t in TARGETS.values() for o in t.options))


@cli.command("export", cls=TargetCommand)
@run_argument
@click.option(
    "--target",
    "target_name",
    required=True,
    metavar="NAME",
    help="onnx, hailo or mcu; with --help, lists that target's options.",
)
@target_options
def export_command(run_dir: Path, target_name: str, **options: Any) -> None:
    """Export a trained run for a target (onnx: int8 QDQ + float; hailo: the DFC package; mcu: C and firmware)."""
    from edgekit.targets import run_export

    with writing(run_dir, f"export --target {target_name}"):
        summary = run_export(run_dir, target_name, **options)
    for line in summary.get("report_lines", []):
        click.echo(line)
    click.echo(f"exported {target_name} -> {summary['folder']} in {summary['seconds']:.1f} s")
    if summary.get("warnings"):
        click.echo(
            f"readiness warnings: {', '.join(summary['warnings'])} (see readiness_report.json)"
        )


@cli.command()
@click.argument("onnx_file", type=click.Path(path_type=Path))
@click.option(
    "--target",
    "target_name",
    default="hailo",
    show_default=True,
    help="Target whose rules to apply.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(onnx_file: Path, target_name: str, as_json: bool) -> None:
    """Print any ONNX file's edgekit metadata (how to feed it) and check it against a target's
    readiness rules (hailo: R1-R16; onnx: Q1, int8 pairs that x86 AVX2 CPUs would saturate)."""
    from edgekit.errors import ExportError
    from edgekit.onnx_io import describe_metadata, load_onnx
    from edgekit.targets import get_target
    from edgekit.targets.hailo_readiness import format_report

    report = get_target(target_name).check_readiness(str(onnx_file))
    if report is None:
        raise ExportError(f"target '{target_name}' has no readiness rules; try --target hailo")
    metadata = {p.key: p.value for p in load_onnx(onnx_file).metadata_props}
    if as_json:
        click.echo(json.dumps({**report, "metadata": metadata}, indent=2))
    else:
        click.echo("\n".join([*describe_metadata(metadata), "", format_report(report)]))
    if not report["ready"]:
        raise ExportError(
            f"{onnx_file} is not ready for {target_name}: rules {', '.join(report['errors'])} failed"
        )


@cli.command()
@run_argument
@click.option(
    "--target", "targets", multiple=True, help="Only these targets (default: every exported one)."
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=0,
    help="Only the first N test windows (0 = all).",
)
@click.option(
    "--layers",
    is_flag=True,
    help="Also compare the int8 model layer by layer (integer reference vs onnxruntime); "
    "automatic when a pair against onnxruntime fails.",
)
def parity(run_dir: Path, targets: tuple[str, ...], limit: int, layers: bool) -> None:
    """Compare every export with its CPU reference on the test split; non-zero exit on failure."""
    from edgekit.compare import format_table
    from edgekit.errors import ParityError
    from edgekit.layer_parity import format_layers
    from edgekit.parity import failure_message, run_parity

    with writing(run_dir, "parity"):
        reports = run_parity(run_dir, list(targets) or None, limit, layers=layers)
    click.echo(format_table(reports))
    saved = json.loads((run_dir / layout.PARITY).read_text())
    if saved.get("layers"):
        click.echo(format_layers(saved))
    if not all(r.passed for r in reports):
        raise ParityError(failure_message(reports, run_dir / layout.PARITY))
    click.echo(f"all {len(reports)} pairs within tolerance -> {run_dir / 'parity.json'}")


# ------------------------------------------------------------------ pipeline
@cli.command()
@config_option
@data_option
@out_option
@click.option(
    "--target",
    type=click.Choice(["hailo", "onnx", "mcu"]),
    default="hailo",
    show_default=True,
    help="Export target besides onnx (mcu: generated C and firmware, verified on QEMU).",
)
@click.option(
    "--device",
    "device_url",
    default=None,
    help="Device to verify on (default: the emulator, emu://; with --target mcu the firmware in QEMU, qemu://).",
)
@set_option
def pipeline(
    config_file: str | None,
    data_spec: str | None,
    run_dir: Path,
    target: str,
    device_url: str | None,
    overrides: tuple[str, ...],
) -> None:
    """Run every stage: train, calibrate, export, parity, verify (emulated device by default)."""
    from edgekit.pipeline import default_device, run_pipeline

    config = build_config(config_file, overrides, data_spec)
    device = device_url or default_device(target)
    with writing(run_dir, "pipeline", create=True):
        run_pipeline(run_dir, config, target, device, echo=click.echo)


def quiet_third_party() -> None:
    """Hide import-time chatter of torch/Brevitas (CUDA probing, optional kernels) that users cannot act on."""
    import logging
    import warnings

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)


cli.add_command(verify)
cli.add_command(device)
cli.add_command(sweep)


def interrupted(err: KeyboardInterrupt | None) -> None:
    """Ctrl-C exits 130, SIGTERM 143 (128 + signal), with what became of the run."""
    from edgekit.rundir.transaction import Interrupted

    click.echo(f"interrupted: {str(err or '') or 'Ctrl-C'}", err=True)
    sys.exit(143 if isinstance(err, Interrupted) else 130)


def main() -> None:
    """Entry point: user errors print one line and exit non-zero; --verbose shows the traceback."""
    verbose = "--verbose" in sys.argv or "-v" in sys.argv[1:2]
    quiet_third_party()
    try:
        cli.main(standalone_mode=False)
    except EdgekitError as err:
        if verbose:
            traceback.print_exc()
        click.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    except click.exceptions.Abort as err:  # click turns Ctrl-C into Abort; the cause says which
        interrupted(err.__cause__ if isinstance(err.__cause__, KeyboardInterrupt) else None)
    except click.ClickException as err:  # usage errors too: one line, with where to look
        context = getattr(err, "ctx", None)
        hint = f"; see `{context.command_path} --help`" if context is not None else ""
        click.echo(f"error: {err.format_message()}{hint}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt as err:
        interrupted(err)
    except OSError as err:  # a file system refusal no stage anticipated
        if verbose:
            traceback.print_exc()
        where = f"{err.filename}: " if err.filename else ""
        click.echo(
            f"error: {where}{err.strerror or err}; check the path, its permissions and free disk space",
            err=True,
        )
        sys.exit(8)


if __name__ == "__main__":
    main()
