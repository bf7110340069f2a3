"""Brevitas activation-range calibration and bias correction over a representative set."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


@torch.no_grad()
def _forward_in(mode: Any, model: nn.Module, X: np.ndarray, batch_size: int) -> None:
    """Run `X` through `model` (eval mode, in batches) inside one of Brevitas' graph modes."""
    device = next(model.parameters()).device
    model.eval()
    with mode(model):
        for start in range(0, len(X), batch_size):
            model(torch.from_numpy(X[start : start + batch_size]).to(device))


def calibrate_activations(model: nn.Module, X: np.ndarray, batch_size: int = 64) -> None:
    """Set every activation quantizer's range from statistics over `X` (quantization off meanwhile)."""
    from brevitas.graph.calibrate import calibration_mode

    _forward_in(calibration_mode, model, X, batch_size)


def correct_biases(model: nn.Module, X: np.ndarray, batch_size: int = 64) -> None:
    """Add to each layer's bias the mean error its quantized weights introduce (Brevitas bias correction)."""
    from brevitas.graph.calibrate import bias_correction_mode

    _forward_in(bias_correction_mode, model, X, batch_size)


def activation_ranges(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Scale, zero point, bit width and representable range of every activation quantizer."""
    from brevitas.nn import QuantIdentity, QuantReLU

    ranges = {}
    for name, module in model.named_modules():
        if not isinstance(module, QuantIdentity | QuantReLU):
            continue
        proxy = module.act_quant
        scale = float(proxy.scale().detach())
        zero_point = float(proxy.zero_point().detach())
        bits = int(proxy.bit_width().detach())
        signed = bool(proxy.is_signed)
        lo_int, hi_int = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        ranges[name] = {
            "scale": scale,
            "zero_point": zero_point,
            "bit_width": bits,
            "signed": signed,
            "range": [(lo_int - zero_point) * scale, (hi_int - zero_point) * scale],
        }
    return ranges
