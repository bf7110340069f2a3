"""Brevitas' integer quantizers and convolution with the same arithmetic in fewer operations, for
QAT steps.

On the small networks edgekit trains, a QAT step costs per-operation overhead, not arithmetic: each
Brevitas quantizer recomputes its constant bit width, integer threshold and clamp bounds
(`2 ** bit_width`, casts) on every call, and passes every scale through restrictions that leave it
unchanged here (`abs` of a positive value, a sign times a clamp, a zero point of 0), each a separate
autograd node. These subclasses keep Brevitas' modules, parameters and state-dict keys, compute the
constants once with Brevitas' own modules, and in training mode run only the operations that change a
value or its gradient, with Brevitas' straight-through functions. Values and gradients are the same,
bit for bit, as Brevitas' own forward (tests/quantize/test_lean_quant.py trains both side by side).

A quantizer whose parts differ from the plain float-scale layout checked below (power-of-two scales,
other statistics, a zero point, JIT) always runs Brevitas' forward; so do eval, export, calibration
and the first steps that collect activation statistics. `LeanQuantConv2d` likewise skips, while
training, the output scale and bit width Brevitas derives for a convolution whose output leaves as a
plain tensor (every edgekit convolution: a quantized activation follows).
"""

from __future__ import annotations

from typing import Any

import brevitas.config
import torch
from brevitas.core.bit_width import BitWidthConst
from brevitas.core.function_wrapper import (
    Identity,
    RoundSte,
    ScalarSignedClampMinSte,
    TensorClamp,
    TensorClampSte,
)
from brevitas.core.function_wrapper.shape import OverOutputChannelView
from brevitas.core.quant.delay import _NoDelay
from brevitas.core.quant.int import PrescaledRestrictIntQuant, RescalingIntQuant
from brevitas.core.quant.int_base import IntQuant
from brevitas.core.restrict_val import FloatRestrictValue
from brevitas.core.scaling import IntScaling
from brevitas.core.scaling.runtime import StatsFromParameterScaling
from brevitas.core.scaling.standalone import ParameterFromRuntimeStatsScaling
from brevitas.core.stats.stats_op import AbsMax
from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.function.ops import tensor_clamp
from brevitas.function.ops_ste import round_ste, scalar_clamp_min_ste
from brevitas.nn import QuantConv2d
from brevitas.quant_tensor import _unpack_quant_tensor
from torch import nn


def _is(module: object, *types: type) -> bool:
    """Exactly one of `types`: a subclass may change the arithmetic."""
    return type(module) in types


def _plain_int_quant(int_quant: Any, *clamps: type) -> bool:
    """Round to nearest, one of `clamps`, no view, no delay: `clamp(round(x / scale)) * scale`."""
    return (
        _is(int_quant, IntQuant)
        and _is(int_quant.float_to_int_impl, RoundSte)
        and _is(int_quant.tensor_clamp_impl, *clamps)
        and _is(int_quant.input_view_impl, Identity)
        and _is(int_quant.delay_wrapper.delay_impl, _NoDelay)
    )


def _clamp_min(clamp: Any) -> float | None:
    """The minimum of a scale clamp (Brevitas' `scaling_min_val`); None when it is absent."""
    return clamp.min_val if _is(clamp, ScalarSignedClampMinSte) else None


def _constants(quant: nn.Module, int_quant: Any, bit_width_impl: Any) -> bool:
    """Store the constant bit width and clamp bounds as buffers (they follow `.to(device)`)."""
    if brevitas.config.JIT_ENABLED or not _is(bit_width_impl, BitWidthConst):
        return False
    with torch.no_grad():
        bit_width = bit_width_impl()
        quant.register_buffer("lean_bit_width", bit_width.clone(), persistent=False)
        quant.register_buffer(
            "lean_min_int", int_quant.min_int(bit_width).clone(), persistent=False
        )
        quant.register_buffer(
            "lean_max_int", int_quant.max_int(bit_width).clone(), persistent=False
        )
    return True


class _LeanRescaling(RescalingIntQuant):
    """Shared set-up: a constant bit width, a zero zero point and the integer threshold, once.

    The threshold goes through Brevitas' own restriction modules here, so it is exactly Brevitas'
    value whatever they are (they hold no parameters); the scale's own path is what is checked.
    """

    lean_threshold: torch.Tensor
    lean_zero_point: torch.Tensor
    lean_bit_width: torch.Tensor
    lean_min_int: torch.Tensor
    lean_max_int: torch.Tensor

    def __init__(
        self,
        int_quant: Any,
        scaling_impl: Any,
        int_scaling_impl: Any,
        zero_point_impl: Any,
        bit_width_impl: Any,
    ) -> None:
        super().__init__(int_quant, scaling_impl, int_scaling_impl, zero_point_impl, bit_width_impl)
        self.lean = (
            _is(int_scaling_impl, IntScaling)
            and _is(zero_point_impl, ZeroZeroPoint)
            and self._lean_scaling()
            and _constants(self, int_quant, bit_width_impl)  # last: buffers on lean ones only
        )
        if self.lean:
            with torch.no_grad():
                self.register_buffer(
                    "lean_threshold", self._threshold(int_scaling_impl(self.lean_bit_width)), False
                )
                self.register_buffer("lean_zero_point", zero_point_impl.zero_point(), False)

    def _lean_scaling(self) -> bool:
        raise NotImplementedError

    def _threshold(self, int_threshold: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LeanWeightQuant(_LeanRescaling):
    """Per-output-channel weight quantizer, scale = max |w| of the channel / (2^(b-1) - 1)."""

    def _lean_scaling(self) -> bool:
        scaling = self.scaling_impl
        if not (
            _is(scaling, StatsFromParameterScaling)
            and _plain_int_quant(self.int_quant, TensorClampSte, TensorClamp)
        ):
            return False
        stats = scaling.parameter_list_stats
        scale = scaling.stats_scaling_impl
        view = stats.first_tracked_param.view_shape_impl
        return (
            stats.extra_tracked_params_list is None  # one weight, not a shared quantizer
            and _is(view, OverOutputChannelView)
            and _is(view.permute_impl, Identity)
            and _is(stats.stats.stats_impl, AbsMax)
            and _is(scale.affine_rescaling, Identity)
            and _is(scale.restrict_clamp_scaling.restrict_value_impl, FloatRestrictValue)
            # both clamps of the scale use `scaling_min_val`: the second is a no-op on the first's output
            and _clamp_min(scale.clamp_scaling.clamp_min_ste) is not None
            and _is(scale.restrict_clamp_scale_threshold.restrict_value_impl, Identity)
        )

    def _threshold(self, int_threshold: torch.Tensor) -> torch.Tensor:
        scale = self.scaling_impl.stats_scaling_impl
        return scale.restrict_clamp_threshold(scale.restrict_threshold_pre(int_threshold))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (self.lean and self.training):
            return super().forward(x)
        stats_op = self.scaling_impl.parameter_list_stats.stats
        # (C_out, ...) -> (C_out, rest) -> (C_out,) -> the scale's shape, e.g. (C_out, 1, 1, 1)
        stats = torch.max(torch.abs(x.reshape(x.shape[0], -1)), dim=1)[0]
        stats = stats.view(stats_op.stats_output_shape)
        clamp = self.scaling_impl.stats_scaling_impl.clamp_scaling.clamp_min_ste
        scale = scalar_clamp_min_ste(stats, clamp.min_val) / self.lean_threshold
        # |x| / scale <= threshold (1 + 2 eps) < threshold + 1/2: rounding never leaves the range, so
        # Brevitas' clamp to it changes neither a value nor a gradient and is left out
        y = round_ste(x / scale)
        return y * scale, scale, self.lean_zero_point, self.lean_bit_width


class LeanActQuant(_LeanRescaling):
    """Per-tensor activation quantizer with a learned scale (after its statistics are collected)."""

    def _lean_scaling(self) -> bool:
        scaling = self.scaling_impl
        return (
            _is(scaling, ParameterFromRuntimeStatsScaling)
            and _plain_int_quant(self.int_quant, TensorClamp)
            and _is(scaling.restrict_scaling.restrict_value_impl, FloatRestrictValue)
            and _is(scaling.restrict_scale_threshold.restrict_value_impl, Identity)
            and _is(scaling.clamp_scaling.clamp_min_ste, ScalarSignedClampMinSte, Identity)
        )

    def _threshold(self, int_threshold: torch.Tensor) -> torch.Tensor:
        scaling = self.scaling_impl
        return scaling.restrict_threshold(scaling.restrict_threshold_pre(int_threshold))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        scaling = self.scaling_impl
        if not (
            self.lean
            and self.training
            and not self.observer_only
            and scaling.counter > scaling.collect_stats_steps
        ):
            return super().forward(x)
        value = torch.abs(scaling.value)  # |learned scale|, as Brevitas' float restriction
        clamp_min = _clamp_min(scaling.clamp_scaling.clamp_min_ste)
        if clamp_min is not None:
            value = scalar_clamp_min_ste(value, clamp_min)
        scale = value / self.lean_threshold
        y = tensor_clamp(round_ste(x / scale), self.lean_min_int, self.lean_max_int)
        return y * scale, scale, self.lean_zero_point, self.lean_bit_width


class LeanBiasQuant(PrescaledRestrictIntQuant):
    """Bias quantizer at the scale of input times weight (Brevitas' Int32Bias)."""

    lean_bit_width: torch.Tensor
    lean_min_int: torch.Tensor
    lean_max_int: torch.Tensor

    def __init__(self, int_quant: Any, bit_width_impl: Any) -> None:
        super().__init__(int_quant, bit_width_impl)
        self.lean = _plain_int_quant(self.int_quant, TensorClamp) and _constants(
            self, int_quant, bit_width_impl
        )

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not (self.lean and self.training):
            return super().forward(x, scale)
        y = tensor_clamp(round_ste(x / scale), self.lean_min_int, self.lean_max_int)
        return y * scale, scale, self.zero_point(), self.lean_bit_width


class LeanQuantConv2d(QuantConv2d):
    """Brevitas' QuantConv2d; in training, with a plain-tensor output, the convolution of the
    quantized values alone (the `QuantTensor` handler computes the same convolution, then an output
    scale, zero point and bit width that such a layer drops)."""

    def inner_forward_impl(self, x: Any, quant_weight: Any, quant_bias: Any) -> Any:
        plain_output = not (self.return_quant_tensor or self.output_quant.is_quant_enabled)
        if not (self.training and plain_output) or self.is_same_padded_strided:
            return super().inner_forward_impl(x, quant_weight, quant_bias)
        bias = None if quant_bias is None else _unpack_quant_tensor(quant_bias)
        values = _unpack_quant_tensor(x), _unpack_quant_tensor(quant_weight)
        return self._conv_forward(*values, bias)


def lean_quantizer(quantizer: Any, role: str) -> Any:
    """`quantizer` with its tensor quantizer swapped for the lean one of `role` (weight/act/bias)."""
    lean = {"weight": LeanWeightQuant, "act": LeanActQuant, "bias": LeanBiasQuant}[role]
    return quantizer.let(tensor_quant=lean)
