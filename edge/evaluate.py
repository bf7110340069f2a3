"""Classification metrics, FSQ code statistics and model cost (params, MACs, int8 bytes)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from edgekit.errors import CheckpointError
from edgekit.models import Conv2dFSQNet
from edgekit.quantize.fsq_grid import code_usage
from edgekit.rundir import layout
from torch import nn

if TYPE_CHECKING:
    from edgekit.rundir.run import Run


@torch.no_grad()
def predict(
    model: Conv2dFSQNet, X: np.ndarray, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Logits `(N, K)` and FSQ code indices `(N,)`."""
    model.eval()
    device = next(model.parameters()).device
    logits, codes = [], []
    for start in range(0, len(X), batch_size):
        batch = torch.from_numpy(X[start : start + batch_size]).to(device)
        z = model.encode(batch)
        logits.append(model.classify(z).float().cpu().numpy())
        codes.append(model.fsq.indices(z).cpu().numpy())
    return np.concatenate(logits), np.concatenate(codes)


MIN_TEST_WINDOWS = 30  # below this, one window moves accuracy by more than 3 pp


def accuracy_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial interval: honest at 0 or 100 % and for a dozen windows,
    where the normal approximation collapses to a point."""
    from scipy.special import betaincinv  # the Beta quantile; scipy.stats takes seconds to import

    if total == 0:
        return 0.0, 1.0
    tail = (1 - confidence) / 2
    low = 0.0 if correct == 0 else float(betaincinv(correct, total - correct + 1, tail))
    high = 1.0 if correct == total else float(betaincinv(correct + 1, total - correct, 1 - tail))
    return low, high


def small_test_warning(windows: int) -> list[str]:
    """The warning for a test split too small to trust a point estimate, or None."""
    if windows >= MIN_TEST_WINDOWS:
        return []
    return [
        f"the test split has only {windows} windows (< {MIN_TEST_WINDOWS}): one window is "
        f"{100 / max(windows, 1):.0f} pp of accuracy; read the 95 % interval, not the point estimate"
    ]


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Accuracy with its exact 95 % interval, per-class P/R/F1, confusion matrix and baselines."""
    k = len(class_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class = {}
    for i, name in enumerate(class_names):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i].sum() if confusion[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(confusion[i].sum()),
        }
    counts = np.bincount(y_true, minlength=k)
    correct = int((y_true == y_pred).sum())
    return {
        "accuracy": correct / len(y_true) if len(y_true) else 0.0,
        "accuracy_interval_95": list(accuracy_interval(correct, len(y_true))),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),
        "random_baseline": 1.0 / k,
        "majority_baseline": float(counts.max() / counts.sum()),
        "windows": len(y_true),
    }


INT32_BYTES = 4  # an int32 bias as the int8 graph stores it


@dataclass(frozen=True)
class LayerCost:
    """One layer as the device runs it: int8 weights, int32 biases, int8 activations."""

    name: str
    op: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    parameters: int
    macs: int
    weight_bytes: int
    activation_bytes: int


def layer_costs(model: Conv2dFSQNet) -> list[LayerCost]:
    """Every convolution and pooling of one window's forward pass, in execution order."""
    costs: list[LayerCost] = []
    names = {module: name for name, module in model.named_modules()}

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        source = getattr(inputs[0], "value", inputs[0])  # a QAT layer may get a QuantTensor
        shape_in, shape_out = tuple(source.shape[1:]), tuple(output.shape[1:])
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            weights = module.weight.numel()
            biases = module.bias.numel() if module.bias is not None else 0
            macs = output[0].numel() * module.in_channels // module.groups * kh * kw
            op = (
                f"Conv {kh}x{kw}"
                + (f" /{module.stride[1]}" if module.stride[1] > 1 else "")
                + (f" dil {module.dilation[1]}" if module.dilation[1] > 1 else "")
            )
            cost = (weights + biases, macs, weights + INT32_BYTES * biases)
        elif isinstance(module, nn.MaxPool2d):
            kh, kw = module.kernel_size  # type: ignore[misc]
            op, cost = f"MaxPool {kh}x{kw}", (0, 0, 0)
        else:
            op, cost = "GlobalAveragePool", (0, 0, 0)
        costs.append(LayerCost(names[module], op, shape_in, shape_out, *cost, output[0].numel()))

    watched = [
        m for m in model.modules() if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AdaptiveAvgPool2d)
    ]
    hooks = [m.register_forward_hook(record) for m in watched]
    config, was_training = model.config, model.training
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model.eval()
            model(torch.zeros(1, config.in_channels, 2, config.input_width, device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return costs


def totals(costs: list[LayerCost]) -> dict[str, int]:
    """Sums, and the peak activation memory of two live int8 tensors (a layer's input and output)."""
    peak = max((math.prod(c.input_shape) + c.activation_bytes for c in costs), default=0)
    return {
        "parameters": sum(c.parameters for c in costs),
        "macs": sum(c.macs for c in costs),
        "weight_bytes": sum(c.weight_bytes for c in costs),
        "peak_activation_bytes_estimate": peak,
    }


def model_cost(model: Conv2dFSQNet) -> dict[str, int]:
    """Parameters, multiply-accumulates per window and int8 deployment bytes (int8 weights, int32
    biases): the totals of the per-layer costs."""
    summed = totals(layer_costs(model))
    return {
        "parameters": summed["parameters"],
        "macs": summed["macs"],
        "int8_weight_bytes": summed["weight_bytes"],
    }


def evaluate_model(
    model: Conv2dFSQNet, X: np.ndarray, y: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Test metrics of a model on windows: classification metrics and FSQ code usage."""
    logits, codes = predict(model, X)
    metrics = classification_metrics(y, logits.argmax(1), class_names)
    metrics["fsq"] = code_usage(codes, model.config.fsq_levels)
    return metrics


def run_evaluate(
    run: Run | str | Path, checkpoint: str = "best.pt", drop_channels: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Recompute test metrics from a checkpoint and the run's saved split.

    With `drop_channels` (names, globs or channel groups), `metrics["without_channels"]` holds the
    same metrics with those channels replaced by their train mean (0 after normalisation), as a
    firmware would feed a sensor that dropped out.
    """
    from edgekit.data.channels import resolve_channels
    from edgekit.rundir.checkpoint import load_checkpoint
    from edgekit.rundir.run import Run

    run = Run(layout.run_path(run))
    if Path(checkpoint).name != checkpoint:
        raise CheckpointError(
            f"--checkpoint takes a file name inside {run.checkpoints} (best.pt, float.pt, last.pt, calibrated.pt), "
            f"got {checkpoint!r}; copy the checkpoint into that run to evaluate it"
        )
    data = run.data
    names = data.stats["channel_names"]
    index = (
        resolve_channels(
            drop_channels, names, data.stats.get("channel_groups", {}), key="--drop-channels"
        )
        if drop_channels
        else []
    )  # checked before any work
    run.verified(f"checkpoints/{checkpoint}")
    model, _ = load_checkpoint(run.checkpoints / checkpoint)
    X_test, y_test = data.arrays["test"]
    metrics = evaluate_model(model, X_test, y_test, data.class_names)
    if index:
        X_dropped = np.array(X_test)  # a private copy: the saved split stays as it is
        X_dropped[:, index] = 0.0
        metrics["without_channels"] = {
            "channels": [names[i] for i in index],
            **evaluate_model(model, X_dropped, y_test, data.class_names),
        }
    return metrics
