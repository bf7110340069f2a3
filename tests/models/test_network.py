from __future__ import annotations

import pytest
import torch
from edgekit.models import Conv2dFSQNet, NetConfig


@pytest.mark.parametrize("preset", [None, "int8", "po2"])
def test_shapes_and_rank4_until_logits(preset: str | None) -> None:
    model = Conv2dFSQNet(NetConfig(6, 4, 63, quant_preset=preset, batch_norm=preset is None)).eval()
    x = torch.randn(3, 6, 2, 63)
    z = model.encode(x)
    assert z.shape == (3, 3, 1, 1)
    assert model.classify(z).shape == (3, 4)
    assert torch.equal(model(x), model.classify(model.encode(x)))


def test_float_twin_and_qat_share_parameter_names() -> None:
    float_names = {k for k in Conv2dFSQNet(NetConfig(6, 4, 32, quant_preset=None)).state_dict()}
    qat_names = {k for k in Conv2dFSQNet(NetConfig(6, 4, 32)).state_dict() if "quant" not in k}
    assert float_names == qat_names


def test_encoder_width_reports_too_short_windows() -> None:
    assert NetConfig(6, 4, 50).encoder_width() == 13
    assert NetConfig(6, 4, 50, kernel_size=7).min_input_width() == 7


def weight_bit_widths(model: Conv2dFSQNet) -> dict[str, int]:
    return {name: int(module.quant_weight().bit_width) for name, module in model.named_modules()
            if hasattr(module, "quant_weight")}  # fmt: skip


@pytest.mark.parametrize("preset", ["int8", "po2"])
def test_overflow_fix_trains_seven_bit_weights_where_it_applies(preset: str) -> None:
    """all: every convolution 7-bit (|w| <= 63); first_layer: the one reading the input; none: 8-bit."""
    for fix, first, rest in (("all", 7, 7), ("first_layer", 7, 8), ("none", 8, 8)):
        model = Conv2dFSQNet(NetConfig(6, 4, 32, quant_preset=preset, overflow_fix=fix))
        widths = weight_bit_widths(model)
        assert widths.pop("encoder.0") == first and set(widths.values()) == {rest}, fix
        weights = model.encoder[0].quant_weight()
        assert (weights.value / weights.scale).abs().round().max() <= 2 ** (first - 1) - 1


def test_checkpoints_from_before_the_overflow_fix_keep_their_eight_bit_weights() -> None:
    legacy = NetConfig(6, 4, 32).to_dict()
    del legacy["overflow_fix"]
    assert NetConfig.from_dict(legacy).overflow_fix == "none"
    assert NetConfig(6, 4, 32).overflow_fix == "all"
