"""Holding the stem's hand-crafted detectors fixed while a float phase trains.

LITE freezes its hand-crafted filters. Here they are held through the float phase and left free in
QAT: held in both phases, OSULeaf's int8 model scored 416 of 510 at 5 windows a class, against 424
to 439 when QAT may adapt them (bench/README.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from edgekit.models import Conv2dFSQNet


@contextmanager
def handcrafted_held(model: Conv2dFSQNet) -> Iterator[Callable[[], None]]:
    """Within the block, the gradient of the detectors' stem rows is zero (so clipping and Adam's
    moments never see them); the yielded callable writes them back after each optimizer step, undoing
    AdamW's decoupled weight decay. A QAT model or one without detectors trains unchanged."""
    fixed = model.config.handcrafted_weight() if model.config.quant_preset is None else None
    if fixed is None or len(fixed) == 0:
        yield lambda: None
        return
    weight = model.stem_weight()
    fixed = fixed.to(weight.device, weight.dtype)
    mask = torch.ones_like(weight)
    mask[: len(fixed)] = 0

    def restore() -> None:
        with torch.no_grad():
            weight[: len(fixed)] = fixed

    handle = weight.register_hook(lambda grad: grad * mask)
    try:
        yield restore
    finally:
        handle.remove()
