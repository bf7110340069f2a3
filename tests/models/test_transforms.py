"""Transforms of a trained network: BatchNorm folding, the QAT weights in a float graph, and the
DFC-style quantization that estimates the Hailo device's damage."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from edgekit.models import Conv2dFSQNet, NetConfig
from edgekit.models.transforms import (
    code_damage,
    device_points,
    estimate_device_damage,
    float_with_qat_weights,
    folded_float_model,
    int8_per_channel,
    output_ranges,
    uint_affine,
    with_int8_weights,
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


def test_the_int8_copy_quantizes_every_convolution_and_leaves_the_model() -> None:
    model = folded_float_model(trained_float_net(8))
    before = copy.deepcopy(model.state_dict())
    quantized = with_int8_weights(model)
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) >= 4
    state = quantized.state_dict()
    for name in convs:
        assert torch.equal(state[f"{name}.weight"], int8_per_channel(before[f"{name}.weight"]))
        assert not torch.equal(state[f"{name}.weight"], before[f"{name}.weight"])
        assert torch.equal(state[f"{name}.bias"], before[f"{name}.bias"])  # int32 on the device
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_the_device_points_are_the_input_each_relu_the_pool_and_the_end_node() -> None:
    model = folded_float_model(trained_float_net(5))
    points = device_points(model, 12)
    relus = [m for m in model.encoder if isinstance(m, nn.ReLU)]
    assert len(relus) >= 2 and set(points) == {"input", "pool", "end"} | {
        f"relu{i}" for i, m in enumerate(model.encoder) if isinstance(m, nn.ReLU)
    }
    assert points["end"] == (model.project, 12)
    assert points["input"] == (model.input_quant, 8) and points["pool"] == (model.pool_quant, 8)
    assert [points[name] for name in points if name.startswith("relu")] == [(m, 8) for m in relus]


@pytest.mark.parametrize(("low", "high"), [(2.0, 5.0), (-5.0, -2.0), (-3.0, 4.0)])
def test_calibration_ranges_hold_zero_and_the_extremes(low: float, high: float) -> None:
    """A range always holds 0 (the zero point must be exact), whatever side the values are on."""
    model = folded_float_model(trained_float_net(6))
    X = np.random.default_rng(6).uniform(low, high, size=(30, 6, 2, 32)).astype(np.float32)
    relu = next(m for m in model.encoder if isinstance(m, nn.ReLU))
    ranges = output_ranges(model, {"input": model.input_quant, "relu": relu}, X)
    assert ranges["input"] == (min(0.0, float(X.min())), max(0.0, float(X.max())))
    assert ranges["relu"][0] == 0.0 and ranges["relu"][1] > 0
    assert not any(m._forward_hooks for m in model.modules())


def test_code_damage_counts_every_changed_code_and_class() -> None:
    """Windows moved a level up or down in one FSQ dimension change their code, both directions
    count; the agreement compares the float head's classes window by window."""
    model = folded_float_model(trained_float_net(7))
    z = torch.zeros(8, len(model.fsq.levels), 1, 1)  # every window on the middle code
    moved = z.clone()
    moved[1, 0], moved[2, 1], moved[5, 2] = 3.0, -3.0, 3.0
    assert code_damage(model, z, moved)["fsq_code_flip_rate"] == 3 / 8
    assert code_damage(model, z, z.clone()) == {"top1_agreement": 1.0, "fsq_code_flip_rate": 0.0}
    z = torch.randn(64, len(model.fsq.levels), 1, 1, generator=torch.Generator().manual_seed(7))
    shifted = z.roll(1, dims=0) * 2  # each window takes its neighbour's values
    codes = model.fsq.indices(z), model.fsq.indices(shifted)
    classes = model.classify(z).argmax(1), model.classify(shifted).argmax(1)
    assert (classes[0] < classes[1]).any() and (classes[0] > classes[1]).any()
    assert (codes[0] < codes[1]).any() and (codes[0] > codes[1]).any()
    assert code_damage(model, z, shifted) == {
        "top1_agreement": pytest.approx(float((classes[0] == classes[1]).float().mean())),
        "fsq_code_flip_rate": pytest.approx(float((codes[0] != codes[1]).float().mean())),
    }
