"""A sweep's trial table, whichever engine ran it: trials.csv/json, the Pareto front, the best trial
and report.md with its pictures."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.sweep.space import SearchSpace, decode, encode

STATUSES = ("complete", "pruned", "over_budget", "invalid", "failed", "running")
FIGURE_COLUMNS = (
    "parameters",
    "macs",
    "weight_bytes",
    "flash_bytes",
    "ram_bytes",
    "instructions",
    "latency_ms",
    "hailo_ready",
)


@dataclass
class TrialRow:
    """One trial as the table shows it (engine-neutral)."""

    number: int
    status: str
    value: float | None
    params: dict[str, Any]
    figures: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    seconds: float = 0.0
    reason: str = ""
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epoch, val score)


def row_from_attributes(
    number: int,
    params: dict[str, Any],
    attributes: dict[str, Any],
    curve: list[tuple[int, float]],
    status: str | None = None,
    value: float | None = None,
) -> TrialRow:
    """A row from a trial's recorded attributes (TrialOutcome.attributes) and its curve."""
    return TrialRow(
        number=number,
        status=status or attributes.get("status", "failed"),
        value=value,
        params={key: decode(v) for key, v in params.items()},
        figures=dict(attributes.get("figures", {})),
        scores=dict(attributes.get("scores", {})),
        epochs=int(attributes.get("epochs", len(curve))),
        seconds=float(attributes.get("seconds", 0.0)),
        reason=str(attributes.get("reason", "")),
        curve=[(int(step), float(score)) for step, score in curve],
    )


def counts(rows: list[TrialRow]) -> dict[str, int]:
    return {status: sum(r.status == status for r in rows) for status in STATUSES}


def best_row(rows: list[TrialRow]) -> TrialRow | None:
    """The complete trial with the highest score; ties go to fewer MACs, then the earlier trial."""
    complete = [r for r in rows if r.status == "complete" and r.value is not None]
    if not complete:
        return None
    return min(complete, key=lambda r: (-(r.value or 0.0), r.figures.get("macs", 0), r.number))


def pareto_front(rows: list[TrialRow], figure: str) -> list[TrialRow]:
    """Complete trials no other beats on both score (higher) and `figure` (lower), by figure."""
    points = [r for r in rows if r.status == "complete" and figure in r.figures]
    front = [
        r
        for r in points
        if not any(
            (o.value or 0) >= (r.value or 0)
            and o.figures[figure] <= r.figures[figure]
            and ((o.value or 0) > (r.value or 0) or o.figures[figure] < r.figures[figure])
            for o in points
        )
    ]
    return sorted(front, key=lambda r: (r.figures[figure], r.number))


def trials_csv(rows: list[TrialRow], space: SearchSpace) -> str:
    """One line a trial: number, status, score, seconds, epochs, each parameter, each figure."""
    figure_keys = [k for k in FIGURE_COLUMNS if any(k in r.figures for r in rows)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["number", "status", "value", "seconds", "epochs", *space.keys, *figure_keys, "reason"]
    )
    for r in rows:
        writer.writerow(
            [
                r.number,
                r.status,
                "" if r.value is None else f"{r.value:.6f}",
                f"{r.seconds:.2f}",
                r.epochs,
                *[_csv_cell(r.params.get(k)) for k in space.keys],
                *[_csv_cell(r.figures.get(k)) for k in figure_keys],
                r.reason,
            ]
        )
    return buffer.getvalue()


def _csv_cell(value: Any) -> str:
    """Full precision for the CSV (a spreadsheet reads it back), lists as [a, b]."""
    return repr(value) if isinstance(value, float) else _cell(value)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def trials_json(rows: list[TrialRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def front_figure(target: str) -> str:
    """The budget figure the report's front is drawn against: flash on an MCU, MACs elsewhere."""
    return "flash_bytes" if target == "mcu" else "macs"


def importances(rows: list[TrialRow], space: SearchSpace) -> dict[str, float]:
    """Each key's share of the score's variance over the complete trials (Optuna's fANOVA);
    empty while fewer than 3 trials completed or the scores do not vary."""
    import optuna
    from optuna.trial import create_trial

    complete = [r for r in rows if r.status == "complete" and r.value is not None]
    if len(complete) < 3 or len({r.value for r in complete}) < 2:
        return {}
    distributions = space.distributions()
    study = optuna.create_study(direction="maximize")
    for r in complete:
        params = {k: encode(v) for k, v in r.params.items() if k in distributions}
        study.add_trial(
            create_trial(
                params=params,
                distributions={k: distributions[k] for k in params},
                value=r.value,
            )
        )
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (ValueError, RuntimeError):  # a key never varied among the complete trials
        return {}


def eta_seconds(rows: list[TrialRow], total: int, workers: int) -> float | None:
    """Mean seconds per finished trial x trials left / workers."""
    finished = [r for r in rows if r.status != "running"]
    if not finished:
        return None
    left = max(0, total - len(finished))
    return sum(r.seconds for r in finished) / len(finished) * left / max(1, workers)


def progress_line(row: TrialRow, rows: list[TrialRow], total: int, workers: int) -> str:
    """The terminal line after a trial: what it did, the tally, the best so far, the ETA."""
    tally = counts(rows)
    best = best_row(rows)
    score = "" if row.value is None else f" val {row.value:.4f}"
    why = f" ({row.reason})" if row.reason and row.status != "complete" else ""
    eta = eta_seconds(rows, total, workers)
    finished = sum(n for status, n in tally.items() if status != "running")
    running = f", {tally['running']} running" if tally["running"] else ""
    leader = "-" if best is None else f"{best.value:.4f} (trial {best.number})"
    return (
        f"trial {row.number}: {row.status}{score}{why} in {row.seconds:.1f} s | "
        f"{finished}/{total} done: {tally['complete']} complete, {tally['pruned']} pruned, "
        f"{tally['over_budget']} over budget, {tally['invalid'] + tally['failed']} failed{running}"
        f" | best {leader}{'' if eta is None else f' | ETA {_duration(eta)}'}"
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(math.ceil(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def render_report(
    rows: list[TrialRow],
    space: SearchSpace,
    context: dict[str, Any],
    final: dict[str, Any] | None,
    weights: dict[str, float],
) -> str:
    """report.md: what was searched, what was found (`weights`: `importances`), and the pictures
    beside it."""
    tally = counts(rows)
    best = best_row(rows)
    figure = front_figure(context["target"])
    ranked = sorted((r for r in rows if r.status == "complete"), key=lambda r: -(r.value or 0.0))[
        :10
    ]
    lines = [
        "# Sweep report",
        "",
        f"- data: {context['data']}; target: {context['target']}; budget: {context['budget']}",
        f"- engine: {context['engine']}; objective: int8 validation {context['metric']} "
        "(the test split is not read by any trial)",
        f"- trials: {len(rows)}: "
        + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in tally.items() if n),
        f"- space: {space.source} ({', '.join(space.keys)})",
    ]
    if best is not None:
        lines += [
            f"- best: trial {best.number}, validation {best.value:.4f}; "
            + ", ".join(f"{k}={_cell(v)}" for k, v in best.params.items()),
            "- `best.yaml` is its full config: `edgekit train --config best.yaml` trains it again",
        ]
    if final is not None:
        lines += ["", "## The chosen model, trained again, exported and checked", ""]
        lines += [f"- {line}" for line in final_lines(final)]
    lines += [
        "",
        "## Top trials",
        "",
        f"| trial | val | {' | '.join(space.keys)} | MACs | {figure} | epochs | s |",
        "|---" * (len(space.keys) + 6) + "|",
        *[
            f"| {r.number} | {r.value:.4f} | "
            + " | ".join(_cell(r.params.get(k)) for k in space.keys)
            + f" | {r.figures.get('macs', '')} | {r.figures.get(figure, '')} | {r.epochs} | "
            f"{r.seconds:.1f} |"
            for r in ranked
        ],
        "",
        f"## Pareto front: validation score against {figure}",
        "",
        "| trial | val | " + figure + " |",
        "|---|---|---|",
        *[
            f"| {r.number} | {r.value:.4f} | {r.figures[figure]} |"
            for r in pareto_front(rows, figure)
        ],
        "",
        f"![validation score against {figure}, the front joined](front.png)",
        "",
    ]
    if weights:
        lines += [
            "## What mattered (fANOVA importance over the complete trials)",
            "",
            *[f"- {k}: {v:.2f}" for k, v in weights.items()],
            "",
            "![importance of each key](importance.png)",
            "",
        ]
    lines += [
        "## Learning curves of the top trials",
        "",
        "![validation score per epoch, float twin then QAT](curves.png)",
        "",
    ]
    rejected = [r for r in rows if r.status in ("over_budget", "invalid", "failed")]
    if rejected:
        lines += ["## Rejected trials", "", "| trial | status | why |", "|---|---|---|"]
        lines += [f"| {r.number} | {r.status} | {r.reason} |" for r in rejected]
        lines.append("")
    return "\n".join(lines)


def final_lines(final: dict[str, Any]) -> list[str]:
    """The final run's accuracy, parity and measured budget, as report lines."""
    lines = [
        f"run: {final['run']}",
        (
            f"validation {final['int8_val_accuracy']:.4f}"
            if final["int8_val_accuracy"] is not None
            else "validation – (trained on every train window, no val split)"
        )
        + f" (the trial's: {final['trial_value']:.4f}); "
        f"test int8 {final['int8_test_accuracy']:.4f}, float twin {final['float_test_accuracy']:.4f}",
        f"parity: {'PASS' if final['parity_passed'] else 'FAIL'}; device: "
        f"{'PASS' if final['device_passed'] else 'FAIL'}"
        + (f" ({final['failure']})" if final.get("failure") else ""),
    ]
    measured = ", ".join(f"{k} {v}" for k, v in final["figures"].items())
    verdict = (
        "fits the budget"
        if not final["violations"]
        else "OVER BUDGET: " + "; ".join(final["violations"])
    )
    lines.append(f"measured on the exported model: {measured}; {verdict}")
    return lines


def draw(rows: list[TrialRow], weights: dict[str, float], target: str, folder: Path) -> None:
    """front.png, importance.png (when there are `weights`) and curves.png beside report.md."""
    from edgekit import plots

    figure = front_figure(target)
    points = [
        (r.figures[figure], r.value) for r in rows if r.status == "complete" and figure in r.figures
    ]
    front = [(r.figures[figure], r.value) for r in pareto_front(rows, figure)]
    plots.sweep_front(points, front, figure, folder / "front.png")
    if weights:
        plots.importance(weights, folder / "importance.png")
    ranked = sorted((r for r in rows if r.status == "complete"), key=lambda r: -(r.value or 0))
    curves = {f"trial {r.number} ({r.value:.3f})": r.curve for r in ranked[:5]}
    plots.trial_curves(curves, folder / "curves.png")
