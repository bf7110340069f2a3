"""Named quantizer presets: which Brevitas quantizer each role in the network uses."""

from __future__ import annotations

from dataclasses import dataclass
from math import lcm
from typing import Any

from brevitas.quant import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int32Bias,
    Uint8ActPerTensorFloat,
)
from brevitas.quant.fixed_point import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerChannelFixedPoint,
    Uint8ActPerTensorFixedPoint,
)


@dataclass(frozen=True)
class QuantPreset:
    """Weights int8 per output channel, activations int8/uint8 per tensor, biases int32."""

    name: str
    weight: Any
    signed_act: Any
    unsigned_act: Any
    bias: Any
    power_of_two: bool


PRESETS: dict[str, QuantPreset] = {
    "int8": QuantPreset(
        "int8",
        Int8WeightPerChannelFloat,
        Int8ActPerTensorFloat,
        Uint8ActPerTensorFloat,
        Int32Bias,
        False,
    ),
    "po2": QuantPreset(
        "po2",
        Int8WeightPerChannelFixedPoint,
        Int8ActPerTensorFixedPoint,
        Uint8ActPerTensorFixedPoint,
        Int32Bias,
        True,
    ),
}


def code_scale(levels: tuple[int, ...], power_of_two: bool) -> float:
    """Scale of the int8 tensor carrying FSQ codes into the head.

    Codes are level / (L // 2) per dimension; 1 / (lcm(L // 2) * m) represents every one of them
    exactly in int8 (e.g. [8, 6, 5] -> 1/120). Power-of-two presets use 2^-6 (codes within 1 LSB).
    """
    if power_of_two:
        return 2.0**-6
    common = lcm(*(level // 2 for level in levels))
    return 1.0 / (common * (127 // common))
