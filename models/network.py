"""Conv2d-FSQ classifier for IMU windows in Hailo layout `(B, C, 2, T/2)`.

Encoder of `(1, k)` convolutions along time plus one `(2, 1)` convolution that mixes the two rows:
a stem at the full input rate (with a kernel of its own, `stem_kernel`: on one or a few input
channels a long one costs few MACs and sees a whole local shape), one stride-2 stage, the row mix,
then `downsample - 1` more stride-2 stages (long windows get more, so the receptive field covers
the window before pooling), global average pooling, a 1x1 projection to `len(levels)` dims (the
device graph ends here), then FSQ and a 1x1 classifier head (run on the host for Hailo). Every
tensor stays rank 4 until the final flatten of the logits.

`dilated_stages = n` turns the first n stride-2 stages into full-rate ones by the "algorithme a
trous": stage j <= n keeps stride 1 and dilates its kernel by 2^(j-1); the later stages keep
stride 2 with dilation 2^n. Each kernel then spans the same input samples as in the strided
network (same receptive field, same weights), but the features are computed at every position
instead of one in 2^n, with no aliasing, at up to 2^n times the MACs of those stages.

`pooled_stages = m` turns the next m stride-2 stages into a stride-1 convolution followed by a
`(1, 2)` max pool (stride 2, floor): each pair of neighbouring positions keeps its stronger response
instead of every other position being dropped, so a pattern shifted by one sample gives nearly the
same features (the plain CNN's downsampling), at 2x the MACs of those stages. The pool runs on the
quantized ReLU output, so it is exact in int8 (max commutes with a monotone quantizer).

`handcrafted_filters` starts the stem's first channels (at most half) as LITE's increase, decrease
and peak detectors (`edgekit.models.handcrafted`); the training loop holds them fixed through the
float phase. They are ordinary weights: the graph, its cost and every target are unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import cast

import numpy as np
import torch
from edgekit.models.fsq import FSQ
from edgekit.models.handcrafted import detector_patterns
from edgekit.quantize.layers import layer_factory
from torch import nn


def conv_width(width: int, kernel: int, stride: int = 1, dilation: int = 1) -> int:
    """Output length of a `(1, kernel)` convolution padded by `dilation * (kernel // 2)` per side,
    as every encoder convolution is (an even kernel widens a row by one)."""
    return (width + 2 * dilation * (kernel // 2) - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class NetConfig:
    """Everything that defines the network, saved in every checkpoint so that a file alone rebuilds
    its model (`edgekit.rundir.checkpoint.load_checkpoint`)."""

    in_channels: int
    num_classes: int
    input_width: int  # T/2
    # widths of the stem, the first stride-2 stage, the row mix and the later stages
    channels: tuple[int, int, int] = (16, 32, 32)
    kernel_size: int = 5
    # the stem's (1, k) kernel, at the full input rate; 0 = kernel_size (checkpoints from before it)
    stem_kernel: int = 0
    fsq_levels: tuple[int, ...] = (8, 6, 5)
    downsample: int = 2  # stride-2 (1, k) stages: one before the row mix, the rest after it
    dropout: float = 0.0  # on the pooled features while training; nothing in the exported graph
    quant_preset: str | None = "int8"  # None builds the float twin
    batch_norm: bool = False  # float twin only; folded before QAT
    # 7-bit weights in: all | first_layer | none (edgekit.quantize.overflow)
    overflow_fix: str = "all"
    dilated_stages: int = 0  # leading stride-2 stages run at full rate, dilated instead (a trous)
    pooled_stages: int = 0  # the next stride-2 stages: stride-1 convolution + (1, 2) max pool
    input_percentile: float = 99.999  # of |input|: the QAT input range before it is learned
    # peak-to-peak of the fixed pattern added before the int8 input quantizer (`dither_pattern`), in
    # normalised units; 0 = none
    input_dither: float = 0.0
    # the stem's first channels start as fixed increase, decrease and peak detectors
    # (`edgekit.models.handcrafted`), held through the float phase, free in QAT
    handcrafted_filters: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NetConfig:
        data = dict(data)
        data["channels"] = tuple(data["channels"])
        data["fsq_levels"] = tuple(data["fsq_levels"])
        data.setdefault("overflow_fix", "none")  # checkpoints from before the fix: 8-bit weights
        data.setdefault("dilated_stages", 0)  # checkpoints from before full-rate stages
        data.setdefault("pooled_stages", 0)  # checkpoints from before pooled stages
        data.setdefault("input_percentile", 99.999)  # checkpoints from before the key
        data.setdefault("input_dither", 0.0)  # checkpoints from before the dither
        data.setdefault("stem_kernel", 0)  # checkpoints from before the stem's own kernel
        data.setdefault("handcrafted_filters", False)  # checkpoints from before the detectors
        return cls(**data)

    def stage_geometry(self) -> list[tuple[int, int, bool]]:
        """(convolution stride, dilation, max-pooled after) of each of the `downsample` stages."""
        full_rate = min(self.dilated_stages, self.downsample)
        pooled = range(full_rate, full_rate + self.pooled_stages)
        return [
            (1, 2**stage, False)
            if stage < full_rate
            else (1 if stage in pooled else 2, 2**full_rate, stage in pooled)
            for stage in range(self.downsample)
        ]

    def stem(self) -> int:
        """The stem's kernel length."""
        return self.stem_kernel or self.kernel_size

    def encoder_width(self) -> int:
        """Time steps left after the stem and the stages."""
        width = conv_width(self.input_width, self.stem())
        for stride, dilation, pooled in self.stage_geometry():
            width = conv_width(width, self.kernel_size, stride, dilation)
            width = width // 2 if pooled else width
        return width

    def handcrafted_weight(self) -> torch.Tensor:
        """The stem weight rows `(n, C, 1, stem)` of the hand-crafted detectors: detector j on input
        channel j mod C (one sensor axis each), at most half the stem's channels; `(0, ...)` when off."""
        patterns = detector_patterns(self.stem()) if self.handcrafted_filters else []
        patterns = patterns[: self.channels[0] // 2]
        weight = torch.zeros(len(patterns), self.in_channels, 1, self.stem())
        for j, pattern in enumerate(patterns):
            weight[j, j % self.in_channels, 0] = torch.from_numpy(pattern)
        return weight

    def min_input_width(self) -> int:
        """Below one kernel per row the first convolution sees mostly zero padding."""
        return max(self.kernel_size, self.stem())


GOLDEN_FRACTION = (5**0.5 - 1) / 2


def dither_pattern(shape: tuple[int, ...], peak_to_peak: float) -> np.ndarray:
    """The fixed input dither: `peak_to_peak * (frac(i * phi) - 1/2)` over the flat index i of one
    window, as float32.

    A flat stretch of signal quantizes to one int8 value and loses its level below one input step;
    with the pattern added, the share of samples that round up encodes that level, so the first
    convolution and the pooling recover it. The golden-ratio (Weyl) sequence spreads any run of
    consecutive samples evenly over the step, better than random noise, and is the same on every
    machine. The exported int8 graph carries it as a constant Add before the input QuantizeLinear.
    """
    index = np.arange(int(np.prod(shape)), dtype=np.float64)
    pattern = peak_to_peak * ((index * GOLDEN_FRACTION) % 1.0 - 0.5)
    return pattern.reshape(shape).astype(np.float32)


class Conv2dFSQNet(nn.Module):
    """The classifier: float twin or QAT model from the same code (`NetConfig.quant_preset`), with
    the device part (`encode`) and the host part (`classify`) separable for Hailo."""

    input_dither: torch.Tensor | None  # a buffer: (1, C, 2, T/2), on the QAT model only

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        self.config = config
        layers = layer_factory(
            config.quant_preset, config.batch_norm, config.overflow_fix, config.input_percentile
        )
        c1, c2, c3 = config.channels
        k, pad = config.kernel_size, config.kernel_size // 2
        dims = len(config.fsq_levels)
        geometry = config.stage_geometry()

        def stage(cin: int, cout: int, index: int, feeds_pool: bool = False) -> list[nn.Module]:
            stride, dilation, pooled = geometry[index]
            conv = layers.conv(
                cin,
                cout,
                (1, k),
                stride=(1, stride),
                padding=(0, dilation * pad),
                dilation=(1, dilation),
            )
            norm, relu = layers.norm(cout), layers.relu(feeds_pool=feeds_pool)
            return [conv, norm, relu, *(layers.max_pool(relu) if pooled else [])]

        dither = None
        if config.quant_preset is not None and config.input_dither > 0:
            shape = (config.in_channels, 2, config.input_width)
            dither = torch.from_numpy(dither_pattern(shape, config.input_dither))[None]
        # not in the state dict: the config rebuilds it, and checkpoints keep their keys
        self.register_buffer("input_dither", dither, persistent=False)
        self.input_quant = layers.input_quant()
        stages = [
            layers.conv(
                config.in_channels,
                c1,
                (1, config.stem()),
                padding=(0, config.stem() // 2),
                first=True,
            ),
            layers.norm(c1),
            layers.relu(),
            *stage(c1, c2, 0),
            layers.conv(c2, c3, (2, 1)),
            layers.norm(c3),
            layers.relu(feeds_pool=config.downsample == 1),  # mixes the two rows: H 2 -> 1
        ]
        for index in range(1, config.downsample):
            stages += stage(c3, c3, index, feeds_pool=index == config.downsample - 1)
        self.encoder = nn.Sequential(*stages)
        fixed = config.handcrafted_weight()
        with torch.no_grad():
            self.stem_weight()[: len(fixed)] = fixed
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.pool_quant = layers.pool_quant()
        self.project = layers.conv(c3, dims, (1, 1))
        self.pre_fsq_quant = layers.pre_fsq_quant()
        self.fsq = FSQ(config.fsq_levels)
        self.code_quant = layers.code_quant(config.fsq_levels)
        self.head = layers.conv(dims, config.num_classes, (1, 1))
        self.logit_quant = layers.logit_quant()

    def stem_weight(self) -> nn.Parameter:
        """The stem convolution's weight `(c1, C, 1, stem)`; its first rows hold the detectors."""
        return cast(nn.Parameter, self.encoder[0].weight)

    def conv_norm_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """Each encoder convolution with the norm that follows it (BatchNorm folding)."""
        modules = list(self.encoder)
        return [
            (module, modules[i + 1])
            for i, module in enumerate(modules)
            if isinstance(module, nn.Conv2d)  # Brevitas' QuantConv2d is one too
        ]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Device part: `(B, C, 2, T/2) -> (B, D, 1, 1)`, the pre-FSQ projection."""
        if self.input_dither is not None:
            x = x + self.input_dither
        h = self.encoder(self.input_quant(x))  # (B, c3, 1, W')
        h = self.pool_quant(self.pool(h))  # (B, c3, 1, 1)
        if self.training and self.config.dropout > 0:
            h = nn.functional.dropout(h, self.config.dropout)
        return self.pre_fsq_quant(self.project(h))

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """Host part: FSQ and head, `(B, D, 1, 1) -> (B, K)` logits."""
        codes = self.code_quant(self.fsq(z))
        return self.logit_quant(self.head(codes)).flatten(1)  # (B, K, 1, 1) -> (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encode(x))
