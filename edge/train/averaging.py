"""Exponential moving average of a model's weights (`train.ema_epochs`; Polyak averaging).

The final weights are wherever the last optimizer steps happened to land in the basin SGD bounces
around in; their running average sits nearer its middle, so the kept model depends less on the
seed's last batches (Polyak & Juditsky 1992; Izmailov et al. 2018 for the averaged-weights view).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator
from typing import Generic, TypeVar

import torch
from torch import nn


def ema_decay(ema_epochs: float, steps_per_epoch: int) -> float:
    """The per-step decay whose time constant is `ema_epochs` epochs of `steps_per_epoch` steps:
    the average forgets a step's weights to 1/e after that many epochs, whatever the set's size."""
    return math.exp(-1.0 / (ema_epochs * max(1, steps_per_epoch)))


def _tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    """Parameters then buffers, walked anew each time: a buffer may be reassigned, not updated."""
    return itertools.chain(model.parameters(), model.buffers())


Model = TypeVar("Model", bound=nn.Module)


class WeightAverage(Generic[Model]):
    """A frozen copy of the model whose floating-point weights and buffers (BatchNorm statistics,
    quantizer scales) follow the trained model's as an exponential moving average; integer buffers
    (batch counters) are copied."""

    def __init__(self, model: Model, decay: float) -> None:
        self.decay = decay
        self.model: Model = copy.deepcopy(model).requires_grad_(False)

    @torch.no_grad()
    def update(self, trained: nn.Module) -> None:
        """Move the average one optimizer step towards `trained`."""
        for average, current in zip(_tensors(self.model), _tensors(trained), strict=True):
            if average.is_floating_point():
                average.lerp_(current, 1.0 - self.decay)
            else:
                average.copy_(current)
