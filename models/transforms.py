"""Transforms of a trained Conv2dFSQNet: BatchNorm folding, the float view of QAT weights, and an
estimate of what the Hailo compiler's own quantization does to the device part.

They know the network's layout, so they live beside it rather than in a stage or a target.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from edgekit.models.network import Conv2dFSQNet
from edgekit.quantize.layers import fold_batchnorm
from torch import nn


def folded_float_state(float_model: Conv2dFSQNet) -> dict[str, torch.Tensor]:
    """State dict of the BN-free twin: every conv absorbs the BatchNorm after it."""
    names = {id(module): name for name, module in float_model.named_modules()}
    pairs = float_model.conv_norm_pairs()
    norms = tuple(f"{names[id(norm)]}." for _, norm in pairs)
    state = {k: v for k, v in float_model.state_dict().items() if not k.startswith(norms)}
    for conv, norm in pairs:
        weight, bias = fold_batchnorm(conv, norm)  # type: ignore[arg-type]
        state[f"{names[id(conv)]}.weight"], state[f"{names[id(conv)]}.bias"] = weight, bias
    return state


def folded_float_model(float_model: Conv2dFSQNet) -> Conv2dFSQNet:
    """The float twin without BatchNorm layers, numerically the same model in eval mode."""
    model = Conv2dFSQNet(replace(float_model.config, batch_norm=False))
    model.load_state_dict(folded_float_state(float_model))
    return model.eval()


def float_with_qat_weights(qat: Conv2dFSQNet) -> Conv2dFSQNet:
    """Float graph carrying the QAT model's int8 weights and int32 biases (dequantized).

    Hailo's compiler wants float ONNX and quantizes itself; this keeps the weights QAT learned.
    """
    model = Conv2dFSQNet(replace(qat.config, quant_preset=None, batch_norm=False))
    state = {}
    with torch.no_grad():
        for name, module in qat.named_modules():
            if hasattr(module, "quant_weight"):
                state[f"{name}.weight"] = module.quant_weight().value.detach().clone()
                state[f"{name}.bias"] = module.bias.detach().clone()
    model.load_state_dict(state)
    return model.eval()


def int8_per_channel(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per output channel, as the DFC quantizes weights: each channel's peak is 127."""
    peak = weight.abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True)
    scale = peak.clamp_min(1e-12) / 127
    return torch.round(weight / scale) * scale  # |weight| <= peak: the levels stay within ±127


def uint_affine(x: torch.Tensor, lo: float, hi: float, bits: int) -> torch.Tensor:
    """Asymmetric per-tensor unsigned quantization over the calibrated [lo, hi] (lo <= 0 <= hi),
    as the DFC quantizes activations: an integer zero point keeps 0 exact, values outside clip."""
    scale = max(hi - lo, 1e-12) / (2**bits - 1)
    zero = round(-lo / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, 2**bits - 1) - zero) * scale


@torch.no_grad()
def estimate_device_damage(
    model: Conv2dFSQNet, X_calib: np.ndarray, X_eval: np.ndarray, end_bits: int
) -> dict[str, float]:
    """Fake-quantize the device part as the DFC would (int8 per-channel weights, uint8/asym per-tensor
    activations from calibration min/max) and count FSQ code flips against the float model."""
    quantized = with_int8_weights(model)
    points = device_points(quantized, end_bits)
    ranges = output_ranges(
        quantized, {name: module for name, (module, _) in points.items()}, X_calib
    )

    def fake_quantize(name: str, bits: int):
        def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            lo, hi = ranges[name]
            return uint_affine(output, lo, hi, bits)

        return hook

    for name, (module, bits) in points.items():
        module.register_forward_hook(fake_quantize(name, bits))
    X = torch.from_numpy(X_eval)
    return {"end_node_bits": end_bits, **code_damage(model, model.encode(X), quantized.encode(X))}


@torch.no_grad()
def with_int8_weights(model: Conv2dFSQNet) -> Conv2dFSQNet:
    """A copy whose convolutions carry the DFC's int8 per-channel weights (the head's too, unused:
    the head runs on the host)."""
    quantized = copy.deepcopy(model).eval()
    for module in quantized.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.copy_(int8_per_channel(module.weight))
    return quantized


def device_points(model: Conv2dFSQNet, end_bits: int) -> dict[str, tuple[nn.Module, int]]:
    """Where the DFC quantizes activations, and to how many bits: the input, each ReLU of the
    encoder and the pooled features at 8, the end node (the projection into FSQ) at `end_bits`."""
    points = {
        "input": (model.input_quant, 8),
        "pool": (model.pool_quant, 8),
        "end": (model.project, end_bits),
    }
    points.update(
        {f"relu{i}": (m, 8) for i, m in enumerate(model.encoder) if isinstance(m, nn.ReLU)}
    )
    return points


@torch.no_grad()
def output_ranges(
    model: Conv2dFSQNet, modules: dict[str, nn.Module], X: np.ndarray
) -> dict[str, tuple[float, float]]:
    """Each module's output range over `model.encode(X)`, widened to hold 0 (the zero point)."""
    ranges: dict[str, tuple[float, float]] = {}

    def observe(name: str):
        def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> None:
            lo, hi = ranges.get(name, (0.0, 0.0))
            ranges[name] = (min(lo, float(output.min())), max(hi, float(output.max())))

        return hook

    handles = [module.register_forward_hook(observe(n)) for n, module in modules.items()]
    try:
        model.encode(torch.from_numpy(X))
    finally:
        for handle in handles:
            handle.remove()
    return ranges


@torch.no_grad()
def code_damage(
    model: Conv2dFSQNet, z_float: torch.Tensor, z_quant: torch.Tensor
) -> dict[str, float]:
    """How often the quantized pre-FSQ values change the FSQ code, and the class (the head runs in
    float on the host either way)."""
    codes_float, codes_quant = model.fsq.indices(z_float), model.fsq.indices(z_quant)
    classes_float = model.classify(z_float).argmax(1)
    classes_quant = model.classify(z_quant).argmax(1)
    return {
        "top1_agreement": float((classes_float == classes_quant).float().mean()),
        "fsq_code_flip_rate": float((codes_float != codes_quant).float().mean()),
    }
