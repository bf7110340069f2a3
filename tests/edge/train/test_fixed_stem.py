"""The float phase holds the stem's detectors; QAT and models without them train every weight."""

from __future__ import annotations

from dataclasses import replace

import torch
from edgekit.models import Conv2dFSQNet, NetConfig
from edgekit.train.fixed_stem import handcrafted_held

CONFIG = NetConfig(2, 3, 32, channels=(8, 16, 16), stem_kernel=9, handcrafted_filters=True,
                   quant_preset=None, batch_norm=True)  # fmt: skip


def stem_gradient(model: Conv2dFSQNet) -> torch.Tensor:
    model.zero_grad()
    torch.manual_seed(1)
    model(torch.randn(4, 2, 2, 32)).sum().backward()
    gradient = model.stem_weight().grad
    assert gradient is not None
    return gradient


def test_within_a_float_phase_the_detectors_get_no_gradient_and_are_written_back() -> None:
    model = Conv2dFSQNet(CONFIG).train()
    held = CONFIG.handcrafted_weight()
    with handcrafted_held(model) as restore:
        gradient = stem_gradient(model)
        assert torch.equal(gradient[:4], torch.zeros_like(gradient[:4]))
        assert gradient[4:].abs().sum() > 0
        with torch.no_grad():
            model.stem_weight().mul_(0.9)  # what AdamW's decoupled decay does, a step at a time
        restore()
        weight = model.stem_weight().detach()
        torch.testing.assert_close(weight[:4], held, rtol=0, atol=0)
    assert stem_gradient(model)[:4].abs().sum() > 0  # the hold ends with the phase


def test_qat_models_and_models_without_detectors_train_every_stem_weight() -> None:
    for config in (
        replace(CONFIG, quant_preset="int8", batch_norm=False),
        replace(CONFIG, handcrafted_filters=False),
    ):
        model = Conv2dFSQNet(config).train()
        before = model.stem_weight().detach().clone()
        with handcrafted_held(model) as restore:
            assert stem_gradient(model)[:4].abs().sum() > 0
            with torch.no_grad():
                model.stem_weight().mul_(0.9)
            restore()
        torch.testing.assert_close(model.stem_weight().detach(), before * 0.9)
