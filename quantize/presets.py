"""Named quantizer presets: which Brevitas quantizer each role in the network uses.

Brevitas takes seconds to import, so the presets name their quantizers and `load_preset` imports
them: `import edgekit.models` and the float twin never load Brevitas, only a QAT model does.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import lcm
from typing import Any


@dataclass(frozen=True)
class QuantPreset:
    """Weights int8 per output channel, activations int8/uint8 per tensor, biases int32."""

    name: str
    weight: Any
    signed_act: Any
    unsigned_act: Any
    bias: Any
    power_of_two: bool


# preset -> module and its (weight, signed activation, unsigned activation) quantizers
PRESET_QUANTIZERS: dict[str, tuple[str, tuple[str, str, str]]] = {
    "int8": (
        "brevitas.quant",
        ("Int8WeightPerChannelFloat", "Int8ActPerTensorFloat", "Uint8ActPerTensorFloat"),
    ),
    "po2": (
        "brevitas.quant.fixed_point",
        (
            "Int8WeightPerChannelFixedPoint",
            "Int8ActPerTensorFixedPoint",
            "Uint8ActPerTensorFixedPoint",
        ),
    ),
}


def load_preset(name: str) -> QuantPreset:
    """The preset's Brevitas quantizers (imports Brevitas), with the lean tensor quantizers of
    `edgekit.quantize.lean_quant` (the same values and gradients in fewer operations)."""
    import importlib

    from brevitas.quant import Int32Bias
    from edgekit.quantize.lean_quant import lean_quantizer

    module_name, names = PRESET_QUANTIZERS[name]
    module = importlib.import_module(module_name)
    weight, signed_act, unsigned_act = (getattr(module, q) for q in names)
    return QuantPreset(
        name,
        lean_quantizer(weight, "weight"),
        lean_quantizer(signed_act, "act"),
        lean_quantizer(unsigned_act, "act"),
        lean_quantizer(Int32Bias, "bias"),
        name == "po2",
    )


def code_scale(levels: tuple[int, ...], power_of_two: bool) -> float:
    """Scale of the int8 tensor carrying FSQ codes into the head.

    Codes are level / (L // 2) per dimension; 1 / (lcm(L // 2) * m) represents every one of them
    exactly in int8 (e.g. [8, 6, 5] -> 1/120). Power-of-two presets use 2^-6 (codes within 1 LSB).
    """
    if power_of_two:
        return 2.0**-6
    common = lcm(*(level // 2 for level in levels))
    return 1.0 / (common * (127 // common))
