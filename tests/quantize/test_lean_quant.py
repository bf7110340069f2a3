"""The lean tensor quantizers and convolution train bit for bit like Brevitas' own, and run where
they can."""

from __future__ import annotations

import copy
from typing import Any

import brevitas.config
import edgekit.quantize.lean_quant as lean_quant
import pytest
import torch
from brevitas.core.function_wrapper.shape import OverTensorView
from brevitas.core.quant.int import PrescaledRestrictIntQuant, RescalingIntQuant
from brevitas.core.restrict_val import FloatRestrictValue as Float
from brevitas.core.restrict_val import PowerOfTwoRestrictValue
from brevitas.core.scaling import PowerOfTwoIntScaling
from brevitas.inject.enum import (
    BitWidthImplType,
    FloatToIntImplType,
    RestrictValueType,
    ScalingImplType,
    StatsOp,
)
from brevitas.nn import QuantConv2d, QuantIdentity
from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int32Bias,
    ShiftedUint8ActPerTensorFloat,
    Uint8ActPerTensorFloat,
)
from brevitas.quant_tensor import QuantTensor, int_torch_handler
from edgekit.models.network import Conv2dFSQNet, NetConfig
from torch import nn

CONFIG = NetConfig(
    6, 5, 32, channels=(4, 8, 8), fsq_levels=(5, 5, 5, 5, 5, 5), downsample=2, pooled_stages=1
)


def tensor_quants(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {name: m for name, m in model.named_modules() if name.endswith("tensor_quant")}


def model_pair(config: NetConfig, monkeypatch: pytest.MonkeyPatch) -> tuple[Conv2dFSQNet, ...]:
    """The same network with lean quantizers and with Brevitas' own, both past the activation
    statistics (a loaded learned scale ends their collection) and with equal weights."""
    torch.manual_seed(0)
    lean = Conv2dFSQNet(config).train()
    with monkeypatch.context() as patch:
        patch.setattr(lean_quant, "lean_quantizer", lambda quantizer, role: quantizer)
        patch.setattr(lean_quant, "LeanQuantConv2d", QuantConv2d)
        brevitas = Conv2dFSQNet(config).train()
    assert not any(isinstance(m, lean_quant.LeanQuantConv2d) for m in brevitas.modules())
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):  # collect statistics, then hand them to both as learned scales
        lean(torch.randn(8, 6, 2, 32, generator=generator))
    state = copy.deepcopy(lean.state_dict())
    lean.load_state_dict(state)
    brevitas.load_state_dict(state)  # strict: the same keys, so checkpoints load either way
    return lean, brevitas


@pytest.mark.parametrize("overflow_fix", ["all", "none"])  # 7-bit and 8-bit weights
def test_lean_quantizers_train_bit_for_bit_like_brevitas(
    overflow_fix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = NetConfig(**{**CONFIG.to_dict(), "overflow_fix": overflow_fix})
    lean, brevitas = model_pair(config, monkeypatch)
    optimizers = [torch.optim.AdamW(m.parameters(), lr=0.05) for m in (lean, brevitas)]
    generator = torch.Generator().manual_seed(2)
    for _ in range(6):
        # scaled up so that some activations saturate at the ends of their ranges
        x = 4 * torch.randn(8, 6, 2, 32, generator=generator)
        labels = torch.randint(0, 5, (8,), generator=generator)
        outputs = []
        for model, optimizer in zip((lean, brevitas), optimizers, strict=True):
            logits = model(x)
            torch.nn.functional.cross_entropy(logits, labels).backward()
            outputs.append((logits.detach(), [p.grad.clone() for p in model.parameters()]))
            optimizer.step()
            optimizer.zero_grad()
        (lean_logits, lean_grads), (brevitas_logits, brevitas_grads) = outputs
        assert torch.equal(lean_logits, brevitas_logits)
        assert all(map(torch.equal, lean_grads, brevitas_grads))
    for (name, a), b in zip(lean.state_dict().items(), brevitas.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def act_pair(quantizer: Any, value: float) -> list[nn.Module]:
    """Brevitas' and the lean tensor quantizer of one activation, past statistics at scale `value`
    (a loaded learned scale ends the collection)."""
    pair = []
    for act_quant in (quantizer, lean_quant.lean_quantizer(quantizer, "act")):
        module = QuantIdentity(act_quant=act_quant)
        tensor_quant = module.act_quant.fused_activation_quant_proxy.tensor_quant
        tensor_quant.scaling_impl.load_state_dict({"value": torch.tensor(value)})
        pair.append(tensor_quant.train())
    return pair


def edge_weights() -> torch.Tensor:
    """Channels that reach the corners: a tie for the maximum, all zeros, below the scale's minimum."""
    weight = torch.randn(4, 3, 1, 5, generator=torch.Generator().manual_seed(4))
    weight[0, 0, 0, 0], weight[0, 1, 0, 2] = 3.0, -3.0  # two entries hold max |w|
    weight[1] = 0.0
    weight[2] *= 1e-12
    return weight


def weighted_sum_grads(quant: nn.Module, x: torch.Tensor, *args: torch.Tensor) -> list:
    """Output, scale and the gradients of a weighted sum of the output w.r.t. the input and the
    quantizer's parameters (weights from -1 to 1, so every position counts differently)."""
    x = x.clone().requires_grad_()
    y, scale, *_ = quant(x, *args)
    (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
    return [y.detach(), scale.detach(), x.grad, *(p.grad for p in quant.parameters())]


def test_the_lean_weight_quantizer_matches_brevitas_on_ties_zeros_and_tiny_channels() -> None:
    results = []
    for weight_quant in (
        Int8WeightPerChannelFloat,
        lean_quant.lean_quantizer(Int8WeightPerChannelFloat, "weight"),
    ):
        conv = QuantConv2d(3, 4, (1, 5), weight_quant=weight_quant, weight_bit_width=7)
        quant = conv.weight_quant.tensor_quant.train()
        results.append(weighted_sum_grads(quant, edge_weights()))
    assert results[1][0][1].abs().sum() == 0  # the zero channel quantizes to zeros, not NaN
    for lean_tensor, brevitas_tensor in zip(results[1], results[0], strict=True):
        assert torch.equal(lean_tensor, brevitas_tensor)


@pytest.mark.parametrize(
    "quantizer", ["Int8ActPerTensorFloat", "Uint8ActPerTensorFloat", "no scale minimum"]
)
# Brevitas uses |learned scale|, at least `scaling_min_val`
@pytest.mark.parametrize("value", [0.05, -0.05, 0.0])
def test_a_lean_activation_quantizer_matches_brevitas_across_and_beyond_its_range(
    quantizer: str, value: float
) -> None:
    """Brevitas clamps with `where`, so a value that rounds onto a bound still passes its gradient
    (torch.clamp would stop it): inputs to 1.5 times the range each way, the gradients of x and of
    the learned scale (`value` is the range's end, 128 or 255 steps)."""
    act = {
        "Int8ActPerTensorFloat": Int8ActPerTensorFloat,
        "Uint8ActPerTensorFloat": Uint8ActPerTensorFloat,
        "no scale minimum": Int8ActPerTensorFloat.let(scaling_min_val=None),
    }[quantizer]
    x = torch.linspace(-1.5 * abs(value), 1.5 * abs(value), 2401)
    brevitas, lean = (weighted_sum_grads(quant, x) for quant in act_pair(act, value))
    covered = lean[0].unique().numel()
    assert value == 0 or covered > 200  # the whole grid, not a few saturated values
    for lean_tensor, brevitas_tensor in zip(lean, brevitas, strict=True):
        # exact; a zero scale without a minimum gives NaN in both
        torch.testing.assert_close(lean_tensor, brevitas_tensor, rtol=0, atol=0, equal_nan=True)


def test_a_fresh_lean_activation_quantizer_collects_statistics_then_learns_like_brevitas() -> None:
    """From a fresh quantizer: the statistics steps, the step that turns them into the learned scale
    (Brevitas' own forward runs both) and the learned steps after it, value and gradient each step."""
    act = Int8ActPerTensorFloat.let(collect_stats_steps=3)
    pair = []
    for act_quant in (act, lean_quant.lean_quantizer(act, "act")):
        module = QuantIdentity(act_quant=act_quant)
        pair.append(module.act_quant.fused_activation_quant_proxy.tensor_quant.train())
    assert pair[1].lean
    generator = torch.Generator().manual_seed(8)
    for _ in range(6):
        x = torch.randn(64, generator=generator) * 2
        brevitas, lean = (weighted_sum_grads(quant, x) for quant in pair)
        for lean_tensor, brevitas_tensor in zip(lean, brevitas, strict=True):
            assert torch.equal(lean_tensor, brevitas_tensor)
    assert pair[1].scaling_impl.counter == 3 + 1  # past the collection, as Brevitas' own


def test_an_observing_activation_quantizer_passes_its_input_through() -> None:
    """Brevitas' calibration sets `observer_only`: values pass unquantized, whatever the counter."""
    x = torch.linspace(-1, 1, 101)
    for quant in act_pair(Int8ActPerTensorFloat, 0.05):
        quant.observer_only = True
        assert torch.equal(quant(x)[0], x)


def test_the_lean_bias_quantizer_matches_brevitas_up_to_the_int32_range() -> None:
    scale = torch.full((4,), 1e-3)
    x = torch.tensor([0.0, 1.2345, -7.5, 3e6])  # the last is beyond 2^31 steps: clamped
    results = []
    for bias_quant in (Int32Bias, lean_quant.lean_quantizer(Int32Bias, "bias")):
        conv = QuantConv2d(3, 4, 1, bias=True, bias_quant=bias_quant)
        results.append(weighted_sum_grads(conv.bias_quant.tensor_quant.train(), x, scale))
    assert results[1][2][-1] == 0  # no gradient through the clamp
    for lean_tensor, brevitas_tensor in zip(results[1], results[0], strict=True):
        assert torch.equal(lean_tensor, brevitas_tensor)


@pytest.mark.parametrize("bias", [True, False])
def test_the_lean_convolution_matches_brevitas_strided_dilated_and_padded(bias: bool) -> None:
    torch.manual_seed(5)
    convs = [
        conv(4, 6, (1, 3), stride=(1, 2), padding=(0, 2), dilation=(1, 2), bias=bias)
        for conv in (QuantConv2d, lean_quant.LeanQuantConv2d)
    ]
    convs[1].load_state_dict(convs[0].state_dict())
    quant_input = QuantIdentity(return_quant_tensor=True)
    x = torch.randn(3, 4, 2, 17, generator=torch.Generator().manual_seed(6))
    results = []
    for conv in convs:
        out = conv.train()(quant_input(x))
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append([out.detach(), *(p.grad for p in conv.parameters())])
    assert len(results[0]) == (3 if bias else 2)
    assert all(map(torch.equal, *results))


def test_a_quant_tensor_output_or_strided_same_padding_keeps_brevitas_convolution() -> None:
    x = QuantIdentity(return_quant_tensor=True)(torch.randn(2, 4, 2, 16))
    quant_output = lean_quant.LeanQuantConv2d(4, 6, (1, 3), return_quant_tensor=True).train()
    assert isinstance(quant_output(x), QuantTensor)
    torch.manual_seed(7)
    same = [
        conv(4, 6, (1, 3), stride=2, padding="same")
        for conv in (QuantConv2d, lean_quant.LeanQuantConv2d)
    ]
    same[1].load_state_dict(same[0].state_dict())
    assert torch.equal(same[0].train()(x), same[1].train()(x))


def test_training_skips_the_quant_tensor_convolution_and_eval_keeps_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Training convolves plain values; eval and export keep Brevitas' QuantTensor handler."""
    model = Conv2dFSQNet(CONFIG)
    convs = [m for m in model.modules() if isinstance(m, QuantConv2d)]
    assert len(convs) == 6 and all(type(m) is lean_quant.LeanQuantConv2d for m in convs)
    calls = []
    handler = int_torch_handler.quant_layer
    monkeypatch.setattr(
        int_torch_handler, "quant_layer", lambda *a, **k: calls.append(a[0]) or handler(*a, **k)
    )
    model.train()(torch.randn(8, 6, 2, 32))
    assert calls == []
    model.eval()(torch.randn(8, 6, 2, 32))
    assert len(calls) == 6


def model_with_learned_scales() -> Conv2dFSQNet:
    model = Conv2dFSQNet(CONFIG)
    model(torch.randn(8, 6, 2, 32))  # statistics collected
    model.load_state_dict(model.state_dict())  # and handed over as learned scales
    return model


def record_brevitas_forwards(monkeypatch: pytest.MonkeyPatch) -> list[torch.nn.Module]:
    """The tensor quantizers that run Brevitas' own forward (weights and activations, biases)."""
    calls: list[torch.nn.Module] = []
    for brevitas_class in (RescalingIntQuant, PrescaledRestrictIntQuant):
        brevitas_forward = brevitas_class.forward
        monkeypatch.setattr(
            brevitas_class,
            "forward",
            lambda self, *a, forward=brevitas_forward: calls.append(self) or forward(self, *a),
        )
    return calls


def test_every_int8_quantizer_but_the_constant_code_scale_runs_lean() -> None:
    quants = tensor_quants(Conv2dFSQNet(CONFIG))
    slow = sorted(name for name, quant in quants.items() if not quant.lean)
    assert slow == ["code_quant.act_quant.fused_activation_quant_proxy.tensor_quant"]
    assert len(quants) == 1 + 2 * 6 + 8  # code, weight and bias of 6 convs, 8 other activations


def test_eval_runs_brevitas_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluation, calibration and export go through Brevitas' own code, not the lean path."""
    model = model_with_learned_scales()
    calls = record_brevitas_forwards(monkeypatch)
    model.eval()(torch.randn(8, 6, 2, 32))
    rescaling = [q for q in tensor_quants(model).values() if isinstance(q, RescalingIntQuant)]
    assert len(rescaling) == 6 + 9  # 6 weights, 9 activations
    assert set(calls) == set(tensor_quants(model).values())  # and the 6 biases


def test_training_past_the_statistics_runs_no_brevitas_quantizer_forward(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The speed-up itself: once the scales are learned, a training step runs the lean path of every
    quantizer but the constant code scale (values alone cannot show which path ran)."""
    model = model_with_learned_scales()
    calls = record_brevitas_forwards(monkeypatch)
    model.train()(torch.randn(8, 6, 2, 32))
    quants = tensor_quants(model)
    assert [name for name, quant in quants.items() if quant in calls] == [
        "code_quant.act_quant.fused_activation_quant_proxy.tensor_quant"
    ]


def test_power_of_two_quantizers_keep_brevitas_forward() -> None:
    """Power-of-two scales restrict in the log domain: not the float layout the lean path assumes."""
    model = Conv2dFSQNet(NetConfig(**{**CONFIG.to_dict(), "quant_preset": "po2"}))
    quants = tensor_quants(model)
    weight_and_act = [q for name, q in quants.items() if "bias_quant" not in name]
    assert weight_and_act and not any(quant.lean for quant in weight_and_act)


def tensor_quant_of(role: str, quantizer: Any) -> nn.Module:
    """The tensor quantizer Brevitas builds for `quantizer` in `role`, made lean where it can be."""
    lean = lean_quant.lean_quantizer(quantizer, role)
    if role == "act":
        return QuantIdentity(act_quant=lean).act_quant.fused_activation_quant_proxy.tensor_quant
    conv = QuantConv2d(3, 4, 1, bias=True, **{f"{role}_quant": lean})
    return getattr(conv, f"{role}_quant").tensor_quant


FLOOR = {"float_to_int_impl_type": FloatToIntImplType.FLOOR}
DELAYED = {"quant_delay_steps": 1}  # quantization starts after a step
LEARNED_BITS = {"bit_width_impl_type": BitWidthImplType.PARAMETER}
PO2 = {"restrict_scaling_type": RestrictValueType.POWER_OF_TWO}
# the scale restricted to powers of two while the threshold stays float, and the reverse
PO2_SCALE = {"restrict_scaling_impl": PowerOfTwoRestrictValue, "restrict_threshold_impl": Float}
PO2_SCALE_THRESHOLD = {"restrict_scale_threshold_impl": PowerOfTwoRestrictValue}


@pytest.mark.parametrize(
    ("role", "quantizer", "overrides", "lean"),
    [
        ("weight", Int8WeightPerChannelFloat, {}, True),
        ("weight", Int8WeightPerChannelFloat, PO2, False),
        ("weight", Int8WeightPerChannelFloat, PO2_SCALE, False),
        ("weight", Int8WeightPerChannelFloat, PO2_SCALE_THRESHOLD, False),
        ("weight", Int8WeightPerChannelFloat, {"scaling_per_output_channel": False}, False),
        ("weight", Int8WeightPerChannelFloat, {"scaling_stats_op": StatsOp.AVE}, False),
        ("weight", Int8WeightPerChannelFloat, FLOOR, False),
        ("weight", Int8WeightPerChannelFloat, LEARNED_BITS, False),
        ("weight", Int8WeightPerChannelFloat, {"scaling_affine_rescaling_init": 1.0}, False),
        ("weight", Int8WeightPerChannelFloat, {"scaling_min_val": None}, False),
        ("weight", Int8WeightPerChannelFloat, {"permute_dims": (1, 0, 2, 3)}, False),
        ("weight", Int8WeightPerChannelFloat, DELAYED, False),
        (
            "weight",
            Int8WeightPerChannelFloat,
            {"scaling_impl_type": ScalingImplType.PARAMETER_FROM_STATS},
            False,
        ),
        ("act", Int8ActPerTensorFloat, {}, True),
        ("act", Int8ActPerTensorFloat, PO2, False),
        ("act", Int8ActPerTensorFloat, PO2_SCALE, False),
        ("act", Int8ActPerTensorFloat, PO2_SCALE_THRESHOLD, False),
        ("act", Int8ActPerTensorFloat, {"scaling_min_val": None}, True),
        ("act", Int8ActPerTensorFloat, FLOOR, False),
        ("act", Int8ActPerTensorFloat, LEARNED_BITS, False),
        (
            "act",
            Int8ActPerTensorFloat,
            {"scaling_impl_type": ScalingImplType.PARAMETER, "scaling_init": 1.0},
            False,
        ),
        ("act", ShiftedUint8ActPerTensorFloat, {}, False),  # a zero point
        ("act", Int8ActPerTensorFloat, DELAYED, False),
        ("act", Int8ActPerTensorFloat, {"int_scaling_impl": PowerOfTwoIntScaling}, False),
        ("act", Int8ActPerTensorFloat, {"input_view_impl": OverTensorView}, False),
        ("bias", Int32Bias, {}, True),
        ("bias", Int32Bias, FLOOR, False),
    ],
)
def test_only_the_plain_float_scale_layout_runs_lean(
    role: str, quantizer: Any, overrides: dict, lean: bool
) -> None:
    assert tensor_quant_of(role, quantizer.let(**overrides)).lean is lean


def test_a_weight_quantizer_shared_by_two_layers_keeps_brevitas_forward() -> None:
    """Its scale comes from both weights together (Brevitas rebuilds it when the second joins)."""
    first = QuantConv2d(
        3, 4, 1, weight_quant=lean_quant.lean_quantizer(Int8WeightPerChannelFloat, "weight")
    )
    assert first.weight_quant.tensor_quant.lean
    QuantConv2d(3, 4, 1, weight_quant=first.weight_quant)
    assert not first.weight_quant.tensor_quant.lean


def test_brevitas_jit_keeps_brevitas_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(brevitas.config, "JIT_ENABLED", True)
    assert not tensor_quant_of("act", Int8ActPerTensorFloat).lean
