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
