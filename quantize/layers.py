"""Layer factories: the same network code builds the float twin and the quantization-aware model."""

from __future__ import annotations

import warnings

import torch
from edgekit.quantize.overflow import OVERFLOW_FIXES
from edgekit.quantize.presets import code_scale, load_preset
from torch import nn


class FloatLayers:
    """Plain PyTorch layers; optional BatchNorm (folded into the convs before QAT)."""

    def __init__(self, batch_norm: bool) -> None:
        self.batch_norm = batch_norm

    def input_quant(self) -> nn.Module:
        return nn.Identity()

    def conv(
        self,
        cin: int,
        cout: int,
        kernel: tuple[int, int],
        stride=(1, 1),
        padding=(0, 0),
        first: bool = False,
        dilation=(1, 1),
    ) -> nn.Module:
        return nn.Conv2d(
            cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, bias=True
        )

    def norm(self, channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels) if self.batch_norm else nn.Identity()

    def relu(self, feeds_pool: bool = False) -> nn.Module:
        return nn.ReLU()

    def max_pool(self, relu: nn.Module) -> list[nn.Module]:
        return [nn.MaxPool2d((1, 2)), nn.Identity()]  # as many modules as the QAT pair: same names

    def pool_quant(self) -> nn.Module:
        return nn.ReLU()  # identity on non-negative input; keeps the float and QAT graphs alike

    def pre_fsq_quant(self) -> nn.Module:
        return nn.Identity()

    def code_quant(self, levels: tuple[int, ...]) -> nn.Module:
        return nn.Identity()

    def logit_quant(self) -> nn.Module:
        return nn.Identity()


class QuantLayers:
    """Brevitas layers: int8 per-channel weights, int32 biases, uint8 after ReLU, int8 elsewhere.

    `overflow_fix` (NNCF's name) trains the chosen convolutions with 7-bit weights (|w| <= 63) so that
    x86 AVX2 u8s8 kernels, which add two u8 x s8 products in saturating int16, cannot saturate:
    255 * 63 * 2 = 32130 <= 32767 (see edgekit.quantize.overflow).
    """

    def __init__(self, preset: str, overflow_fix: str, input_percentile: float) -> None:
        from brevitas.inject.enum import ScalingImplType
        from brevitas.nn import QuantIdentity, QuantReLU
        from edgekit.quantize.lean_quant import LeanQuantConv2d

        self.preset = load_preset(preset)
        self.overflow_fix = overflow_fix
        self.input_percentile = input_percentile
        # Brevitas' QuantConv2d, cheaper in training (edgekit.quantize.lean_quant)
        self._conv, self._identity, self._relu = LeanQuantConv2d, QuantIdentity, QuantReLU
        self._const = ScalingImplType.CONST

    def input_quant(self) -> nn.Module:
        # the range starts at this percentile of |input| over the first steps (Brevitas collects
        # it), then QAT learns it; spikes above it saturate
        quantizer = self.preset.signed_act.let(high_percentile_q=self.input_percentile)
        return self._identity(act_quant=quantizer, return_quant_tensor=True)

    def conv(
        self,
        cin: int,
        cout: int,
        kernel: tuple[int, int],
        stride=(1, 1),
        padding=(0, 0),
        first: bool = False,
        dilation=(1, 1),
    ) -> nn.Module:
        return self._conv(
            cin,
            cout,
            kernel,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=True,
            weight_quant=self.preset.weight,
            weight_bit_width=weight_bits(self.overflow_fix, first),
            bias_quant=self.preset.bias,
            return_quant_tensor=False,
        )

    def norm(self, channels: int) -> nn.Module:
        return nn.Identity()  # BatchNorm is folded into the conv before QAT

    def relu(self, feeds_pool: bool = False) -> nn.Module:
        # Average pooling a QuantTensor widens its bit width; pool a plain tensor and requantize after.
        return self._relu(act_quant=self.preset.unsigned_act, return_quant_tensor=not feeds_pool)

    def max_pool(self, relu: nn.Module) -> list[nn.Module]:
        """`(1, 2)` max pool of a quantized ReLU output, then the same quantizer again (shared, so
        the same scale): the pooled values are already on its grid, and the export gets the
        QuantizeLinear after MaxPool that onnxruntime needs to keep the pool and the next layer in
        int8."""
        with warnings.catch_warnings():  # QuantIdentity's own act_impl=None, unused when shared
            warnings.filterwarnings("ignore", "Keyword arguments are being passed but they not")
            requant = self._identity(
                act_quant=relu.act_quant, return_quant_tensor=relu.return_quant_tensor
            )
        return [nn.MaxPool2d((1, 2)), requant]

    def pool_quant(self) -> nn.Module:
        return self._relu(act_quant=self.preset.unsigned_act, return_quant_tensor=True)

    def pre_fsq_quant(self) -> nn.Module:
        return self._identity(act_quant=self.preset.signed_act, return_quant_tensor=False)

    def code_quant(self, levels: tuple[int, ...]) -> nn.Module:
        # Brevitas' constant scale for signed 8-bit is scaling_init / 128.
        scale = code_scale(levels, self.preset.power_of_two)
        return self._identity(
            act_quant=self.preset.signed_act,
            scaling_impl_type=self._const,
            scaling_init=scale * 128,
            return_quant_tensor=True,
        )

    def logit_quant(self) -> nn.Module:
        return self._identity(act_quant=self.preset.signed_act, return_quant_tensor=False)


def weight_bits(overflow_fix: str, first: bool) -> int:
    """Weight bit width of a convolution: 7 where the overflow fix applies, else 8."""
    if overflow_fix not in OVERFLOW_FIXES:
        raise ValueError(
            f"overflow_fix must be one of {', '.join(OVERFLOW_FIXES)}, got {overflow_fix!r}"
        )
    return 7 if overflow_fix == "all" or (overflow_fix == "first_layer" and first) else 8


def layer_factory(
    quant_preset: str | None,
    batch_norm: bool,
    overflow_fix: str = "all",
    input_percentile: float = 99.999,
) -> FloatLayers | QuantLayers:
    """The layers of a float twin (preset None) or of a QAT model."""
    if quant_preset:
        return QuantLayers(quant_preset, overflow_fix, input_percentile)
    return FloatLayers(batch_norm)


def fold_batchnorm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of `conv` followed by `norm` in eval mode, as one conv."""
    assert norm.running_var is not None and norm.running_mean is not None, "BatchNorm without stats"
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    weight = conv.weight * scale[:, None, None, None]
    bias = (
        conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    ) - norm.running_mean
    return weight.detach().clone(), (bias * scale + norm.bias).detach().clone()
