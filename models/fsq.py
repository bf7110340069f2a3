"""Finite Scalar Quantization (Mentzer et al. 2023): bound each dimension, round to L levels."""

from __future__ import annotations

import math

import numpy as np
import torch
from edgekit.quantize.fsq_grid import fsq_constants
from torch import nn


class FSQ(nn.Module):
    """Bound with tanh, round with a straight-through gradient, scale codes to [-1, 1].

    Input `(B, D, 1, 1)` with D = len(levels); output has the same shape. In eval mode rounding is a
    plain `torch.round` (half to even, like ONNX Round) so the exported graph is `... -> Round -> Div`.
    """

    half_width: torch.Tensor  # buffers, set in __init__
    offset: torch.Tensor
    shift: torch.Tensor
    half_levels: torch.Tensor
    basis: torch.Tensor

    def __init__(self, levels: tuple[int, ...]) -> None:
        super().__init__()
        self.levels = tuple(int(level) for level in levels)
        half_width, offset, shift = fsq_constants(self.levels)
        shape = (1, len(levels), 1, 1)
        self.register_buffer(
            "half_width",
            torch.tensor(half_width, dtype=torch.float32).view(shape),
            persistent=False,
        )
        self.register_buffer(
            "offset", torch.tensor(offset, dtype=torch.float32).view(shape), persistent=False
        )
        self.register_buffer(
            "shift", torch.tensor(shift, dtype=torch.float32).view(shape), persistent=False
        )
        self.register_buffer(
            "half_levels",
            torch.tensor([lv // 2 for lv in self.levels], dtype=torch.float32).view(shape),
            persistent=False,
        )
        basis = np.cumprod([1, *self.levels[:-1]])
        self.register_buffer(
            "basis", torch.tensor(basis, dtype=torch.int64).view(shape), persistent=False
        )

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z + self.shift) * self.half_width - self.offset

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        bounded = self.bound(z)
        if self.training:
            rounded = bounded + (torch.round(bounded) - bounded).detach()  # straight-through
        else:
            rounded = torch.round(bounded)
        return rounded / self.half_levels

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """Code index in 0..prod(levels)-1 of each window: `(B, D, 1, 1) -> (B,)`."""
        levels = torch.round(self.bound(z)) + self.half_levels  # 0 .. L-1 per dimension
        return (levels.long() * self.basis).sum(dim=1).flatten()
