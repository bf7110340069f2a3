"""Pictures beside the markdown reports, where people would rather look than read: training curves,
the confusion matrix, FSQ code usage, device latency and accuracy against published anchors.

Headless matplotlib (the Agg backend: no display needed, same pixels on every machine class);
every picture is written atomically next to the report that links it by a relative path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from edgekit.rundir.artifacts import atomic_path

PHASE_COLOURS = {"float": "tab:blue", "qat": "tab:orange"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def training_curves(history: list[dict[str, Any]], path: Path) -> Path:
    """Train and validation loss, and validation accuracy, per epoch of the float and QAT phases
    (one epoch axis: QAT continues where the float twin stopped)."""
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    epochs = [row for row in history if row.get("phase") in PHASE_COLOURS]
    x = np.arange(1, len(epochs) + 1)
    for phase, colour in PHASE_COLOURS.items():
        at = np.array([i for i, row in enumerate(epochs) if row["phase"] == phase], dtype=int)
        if not len(at):
            continue
        rows = [epochs[i] for i in at]
        loss_ax.plot(x[at], [r["train_loss"] for r in rows], color=colour, label=f"{phase} train")
        if rows[0]["val_loss"] is None:  # no val split
            continue
        loss_ax.plot(
            x[at], [r["val_loss"] for r in rows], "--", color=colour, label=f"{phase} validation"
        )
        acc_ax.plot(x[at], [r["val_acc"] for r in rows], color=colour, label=f"{phase} validation")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    validated = acc_ax.has_data()
    acc_ax.set(
        xlabel="epoch",
        ylabel="accuracy",
        title="validation accuracy" if validated else "validation accuracy (no val split)",
        ylim=(0, 1.02),
    )
    for ax in (loss_ax, acc_ax) if validated else (loss_ax,):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def confusion_matrix(
    confusion: Sequence[Sequence[int]], class_names: list[str], path: Path
) -> Path:
    """Counts and the row-normalised matrix (its diagonal is each class's recall), side by side."""
    plt = _pyplot()
    counts = np.asarray(confusion, dtype=float)
    normalised = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, values, title, fmt in (
        (axes[0], counts, "counts", "{:.0f}"),
        (axes[1], normalised, "share of the true class", "{:.2f}"),
    ):
        ax.imshow(values, cmap="Blues", vmin=0)
        ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
        ax.set_yticks(range(len(class_names)), class_names)
        ax.set(xlabel="predicted", ylabel="true", title=title)
        if len(class_names) <= 20:
            top = values.max() or 1
            for (row, col), value in np.ndenumerate(values):
                colour = "white" if value > top / 2 else "black"
                ax.text(
                    col, row, fmt.format(value), ha="center", va="center", color=colour, fontsize=8
                )
    return _save(fig, path)


def code_usage(code_counts: Sequence[int], codebook_size: int, path: Path) -> Path:
    """How many windows each used FSQ code holds, most used first, against the codebook size."""
    plt = _pyplot()
    counts = sorted((int(c) for c in code_counts if c), reverse=True)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(np.arange(1, len(counts) + 1), counts, color="tab:green", width=1.0, edgecolor="white")
    ax.set(
        xlabel=f"code rank (of {len(counts)} used; codebook {codebook_size})",
        ylabel="windows",
        title="FSQ code usage on the train split",
        xlim=(0.5, max(len(counts), 1) + 0.5),
    )
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def latency_histogram(micros: Sequence[int], path: Path) -> Path:
    """Device-measured inference latency per window, with the median and p95 marked."""
    plt = _pyplot()
    values = np.asarray(micros, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(values, bins=min(50, max(5, len(values) // 4)), color="tab:purple")
    for q, style in ((50, "-"), (95, "--")):
        ax.axvline(np.percentile(values, q), color="black", linestyle=style, label=f"p{q}")
    ax.set(xlabel="device latency (µs)", ylabel="windows", title="device latency per window")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def accuracy_against_anchors(
    rows: list[dict[str, Any]], anchors: Sequence[str], path: Path
) -> Path:
    """Per set: edgekit's int8 test accuracy (mean and sd over seeds) beside published anchors."""
    plt = _pyplot()
    names = [r["set"] for r in rows]
    width = 0.8 / (1 + len(anchors))
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(names)), 3.6))
    ax.bar(
        x,
        [r["int8_mean"] for r in rows],
        width,
        yerr=[r["int8_sd"] for r in rows],
        label="edgekit int8",
        color="tab:blue",
    )
    for i, anchor in enumerate(anchors, start=1):
        ax.bar(x + i * width, [r.get(anchor, np.nan) for r in rows], width, label=anchor, alpha=0.7)
    ax.set_xticks(x + width * len(anchors) / 2, names, rotation=30, ha="right")
    ax.set(ylabel="test accuracy (official split)", ylim=(0, 1.05))
    ax.legend(fontsize=8, ncol=1 + len(anchors), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def layer_differences(layers: list[dict[str, Any]], path: Path) -> Path:
    """Per layer, the largest difference in LSB of that layer: integer reference vs onnxruntime
    and, where compared, vs PyTorch QAT and vs the generated C; a bar at 0 is an exact layer."""
    plt = _pyplot()
    sides = [
        (label, key)
        for label, key in (
            ("vs onnxruntime int8", "max_lsb"),
            ("vs PyTorch QAT", "torch_max_lsb"),
            ("vs the generated C", "c_max_lsb"),
        )
        if all(key in layer for layer in layers)
    ]
    x = np.arange(len(layers))
    width = 0.8 / len(sides)
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(layers)), 3.4))
    drawn = [0.0]
    for i, (label, key) in enumerate(sides):
        values = [layer[key] or 0 for layer in layers]
        drawn += values
        ax.bar(x + i * width, values, width, label=label)
    labels = [f"{layer['index']} {layer['kind']}" for layer in layers]
    ax.set_xticks(x + width * (len(sides) - 1) / 2, labels, rotation=30, ha="right")
    exact = all(not layer["max_lsb"] for layer in layers)
    ax.set(
        ylabel="max |Δ| (LSB of the layer)",
        title="integer reference per layer"
        + (": every layer exact vs onnxruntime" if exact else ""),
        ylim=(0, max(1.0, *drawn) * 1.15),
    )
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def sweep_front(
    points: Sequence[tuple[float, float | None]],
    front: Sequence[tuple[float, float | None]],
    figure: str,
    path: Path,
) -> Path:
    """A sweep's complete trials: validation score against one budget figure, the Pareto front
    joined as a step line (no trial above and to the left of it)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    if points:
        ax.scatter(*zip(*points, strict=True), s=18, alpha=0.6, label="trial")
    if front:
        ax.step(*zip(*front, strict=True), where="post", color="tab:red", label="Pareto front")
        ax.scatter(*zip(*front, strict=True), s=30, color="tab:red")
    ax.set(xlabel=figure.replace("_", " "), ylabel="validation score (int8)", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    if points:
        ax.legend(fontsize=8)
    return _save(fig, path)


def importance(weights: dict[str, float], path: Path) -> Path:
    """Each searched key's importance (share of the score's variance), largest on top."""
    plt = _pyplot()
    keys = list(weights)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(keys) + 1))
    ax.barh(keys, [weights[k] for k in keys], color="tab:blue")
    ax.set(xlabel="importance (fANOVA)", xlim=(0, 1))
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def trial_curves(curves: Mapping[str, Sequence[tuple[int, float]]], path: Path) -> Path:
    """Validation score per epoch (float twin, then QAT) of a few trials, one line each."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    drawn = {label: curve for label, curve in curves.items() if curve}
    for label, curve in drawn.items():
        ax.plot(*zip(*curve, strict=True), label=label)
    ax.set(xlabel="epoch (float twin, then QAT)", ylabel="validation score", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    return _save(fig, path)
