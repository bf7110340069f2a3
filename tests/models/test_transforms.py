"""Transforms of a trained network: BatchNorm folding, the QAT weights in a float graph, and the
DFC-style quantization that estimates the Hailo device's damage."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from edgekit.models import Conv2dFSQNet, NetConfig
from edgekit.models.transforms import (
    estimate_device_damage,
    float_with_qat_weights,
    folded_float_model,
    int8_per_channel,
    uint_affine,
)
from torch import nn


def trained_float_net(seed: int = 0) -> Conv2dFSQNet:
    """A float twin whose BatchNorms hold statistics and affine parameters far from their start."""
    torch.manual_seed(seed)
    model = Conv2dFSQNet(NetConfig(6, 4, 32, quant_preset=None, batch_norm=True))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 2.0)
                module.bias.uniform_(-0.5, 0.5)
    model.train()
    for _ in range(3):
        model(torch.randn(32, 6, 2, 32) * 3 + 1)
    return model.eval()


def test_folding_batchnorm_keeps_the_function_and_leaves_the_twin_alone() -> None:
    model = trained_float_net()
    before = copy.deepcopy(model.state_dict())
    folded = folded_float_model(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert not folded.training
    x = torch.randn(16, 6, 2, 32) * 3 + 1
    with torch.no_grad():
        torch.testing.assert_close(folded.encode(x), model.encode(x), rtol=1e-4, atol=1e-4)
        assert torch.equal(folded(x).argmax(1), model(x).argmax(1))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_float_graph_carries_the_qat_weights_as_they_are_quantized() -> None:
    torch.manual_seed(1)
    qat = Conv2dFSQNet(NetConfig(6, 4, 32))
    float_graph = float_with_qat_weights(qat)
    assert float_graph.config.quant_preset is None and not float_graph.config.batch_norm
    assert not float_graph.training
    convs = {name: m for name, m in qat.named_modules() if hasattr(m, "quant_weight")}
    state = float_graph.state_dict()
    assert set(state) == {f"{name}.{p}" for name in convs for p in ("weight", "bias")}
    for name, conv in convs.items():
        quantized = conv.quant_weight()
        assert torch.equal(state[f"{name}.weight"], quantized.value.detach())
        assert not torch.equal(state[f"{name}.weight"], conv.weight.detach())  # on the int8 grid
        integers = state[f"{name}.weight"] / quantized.scale.detach()
        torch.testing.assert_close(integers, integers.round(), rtol=0, atol=1e-4)
        assert integers.abs().max() <= 128
        assert torch.equal(state[f"{name}.bias"], conv.bias.detach())


def test_int8_per_channel_puts_each_channel_peak_at_127() -> None:
    torch.manual_seed(2)
    gains = torch.tensor([1e-3, 1.0, 50.0, 0.0])[:, None, None, None]  # the last channel is all 0
    weight = torch.randn(4, 3, 1, 5) * gains
    quantized = int8_per_channel(weight)
    peak = weight.abs().amax(dim=(1, 2, 3), keepdim=True)
    step = peak / 127
    for c in range(3):
        levels = quantized[c] / step[c]
        torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-4)
        assert levels.abs().max().round() == 127  # the peak keeps its value
        assert (quantized[c] - weight[c]).abs().max() <= step[c].squeeze() / 2 * (1 + 1e-5)
    assert torch.equal(quantized[3], torch.zeros_like(quantized[3]))  # no division by zero


@pytest.mark.parametrize(("lo", "hi", "bits"), [(-1.0, 3.0, 8), (0.0, 6.0, 8), (-2.0, 2.0, 4)])
def test_uint_affine_keeps_zero_exact_rounds_inside_and_clips_outside(
    lo: float, hi: float, bits: int
) -> None:
    step = (hi - lo) / (2**bits - 1)
    x = torch.linspace(lo, hi, 1001)
    quantized = uint_affine(x, lo, hi, bits)
    assert (quantized - x).abs().max() <= step / 2 * (1 + 1e-4)
    # an integer zero point may shift the grid by up to half a step: one end level can go unused
    assert len(torch.unique(quantized)) >= 2**bits - 1
    assert uint_affine(torch.zeros(3), lo, hi, bits).tolist() == [0.0] * 3
    outside = uint_affine(torch.tensor([lo - 10 * step, hi + 10 * step]), lo, hi, bits)
    zero = round(-lo / step)
    assert outside.tolist() == pytest.approx([-zero * step, (2**bits - 1 - zero) * step])
    assert uint_affine(torch.ones(2), 0.0, 0.0, 8).abs().max() < 1e-9  # an all-zero range


def test_the_device_estimate_leaves_the_model_as_it_was() -> None:
    model = folded_float_model(trained_float_net(3))
    before = copy.deepcopy(model.state_dict())
    X = np.random.default_rng(3).normal(size=(40, 6, 2, 32)).astype(np.float32)
    first = estimate_device_damage(model, X[:20], X[20:], 16)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())
    assert first == estimate_device_damage(model, X[:20], X[20:], 16)
    assert first["end_node_bits"] == 16
    assert 0 <= first["fsq_code_flip_rate"] <= 1 and 0 <= first["top1_agreement"] <= 1


def test_the_device_estimate_sees_what_calibration_missed() -> None:
    """Calibrated on inputs a hundredth of the evaluated ones, every activation clips: codes flip
    (about 0.75 of the windows on the host that wrote this, against 0.05 calibrated on the
    evaluated windows themselves), and a 2-bit end node flips more than a 16-bit one (0.86)."""
    model = folded_float_model(trained_float_net(4))
    with torch.no_grad():  # pre-FSQ values spread over the levels (an untrained net uses 1 code)
        model.project.weight.mul_(10)
        model.project.bias.mul_(10)
    X = np.random.default_rng(4).normal(size=(200, 6, 2, 32)).astype(np.float32) * 3
    matched = estimate_device_damage(model, X, X, 16)
    clipped = estimate_device_damage(model, X / 100, X, 16)
    coarse = estimate_device_damage(model, X, X, 2)
    assert matched["fsq_code_flip_rate"] < clipped["fsq_code_flip_rate"]
    assert matched["top1_agreement"] > clipped["top1_agreement"]
    assert matched["fsq_code_flip_rate"] < coarse["fsq_code_flip_rate"]
