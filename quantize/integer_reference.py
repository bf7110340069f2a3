"""Integer-only reference of the int8 QDQ graph, as an MCU would run it.

Reads the exported ONNX (not the PyTorch model), so it checks the artifact itself: int8 weights,
int32 biases, integer accumulators, ReLU as a clamp in the integer domain, and FSQ by integer
thresholds instead of tanh + round. Requantization is onnxruntime's (MLAS `MlasRequantizeOutput`,
the same on x86 and Arm): `round_half_even(float32(float32(acc) * scale))` with the float32 scale
`x_scale * w_scale / y_scale`; `requantize` computes exactly that in integers (`float32_fields`),
so this reference, the generated MCU C and onnxruntime give the same integers on every CPU, with or
without an FPU. Only the final dequantization of the outputs uses floats.

The graph is first lowered to a chain of integer steps (`IntegerReference.steps`); NumPy runs
them here and the MCU target generates C from the same steps, so both compute one thing.

`accumulation="avx2-u8s8"` emulates onnxruntime's x86 AVX2 int8 kernels instead (no VNNI): the
products of neighbouring reduction indices are added in saturating int16 (`vpmaddubsw`); see
edgekit.quantize.overflow. It exists to reproduce on any machine what such a CPU computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edgekit.errors import ExportError
from edgekit.quantize.fsq_grid import fsq_thresholds
from edgekit.quantize.overflow import INT16_MAX, INT16_MIN

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto

FSQ_OPS = ("Add", "Tanh", "Mul", "Sub", "Round", "Div")
# int32: exact, as VNNI, Arm, the MCU C; avx2-u8s8: x86 AVX2 onnxruntime, int16 pair saturation
ACCUMULATIONS = ("int32", "avx2-u8s8")


@dataclass(frozen=True)
class Tensor:
    """An activation: integers `q` (shape `(C, H, W)` per window) with `real = (q - zero_point) * scale`,
    saturating to `lo..hi` (the dtype of its QuantizeLinear's zero point)."""

    shape: tuple[int, ...]
    scale: float
    zero_point: int
    lo: int
    hi: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def quantize(self, real: np.ndarray) -> np.ndarray:
        """Real values to this tensor's integers as ONNX QuantizeLinear does (float32 division,
        round half to even, zero point, saturation): the one wire quantisation of edgekit, used by
        the host, the device agent and the exporters."""
        q = np.rint(np.asarray(real, np.float32) / np.float32(self.scale)) + self.zero_point
        result: np.ndarray = np.clip(q, self.lo, self.hi).astype(np.int64)
        return result

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Integers back to float32 reals, as ONNX DequantizeLinear."""
        result: np.ndarray = (np.asarray(q) - self.zero_point).astype(np.float32) * np.float32(
            self.scale
        )
        return result.astype(np.float32)


@dataclass(frozen=True)
class ConvStep:
    """Conv (groups 1) + optional ReLU on the accumulator + requantization to `output`."""

    name: str
    input: Tensor
    output: Tensor
    weight: np.ndarray  # int64 (O, C, kh, kw), zero point not subtracted
    weight_zero_point: np.ndarray  # int64 (O,)
    bias: np.ndarray  # int64 (O,), zeros without a bias
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    dilations: tuple[int, int]
    relu: bool
    scale: np.ndarray  # (O,) float32: x_scale * w_scale / y_scale, rounded as onnxruntime does

    @property
    def macs(self) -> int:
        return int(self.output.size * np.prod(self.weight.shape[1:]))


@dataclass(frozen=True)
class PoolStep:
    """GlobalAveragePool as an integer sum + optional ReLU + requantization (the division by the
    area is folded into the scale)."""

    name: str
    input: Tensor
    output: Tensor
    relu: bool
    scale: np.ndarray  # (1,) float32: x_scale / (y_scale * area), as onnxruntime computes it


@dataclass(frozen=True)
class FsqStep:
    """FSQ by integer thresholds: per dimension, the level is the number of thresholds the input
    exceeds; `code_values[d][level]` is the requantized code, `levels` give the code index."""

    name: str
    input: Tensor
    output: Tensor
    levels: tuple[int, ...]
    thresholds: tuple[np.ndarray, ...]  # int64 per dimension: level - 1 thresholds on q - zp
    code_values: tuple[np.ndarray, ...]  # int64 per dimension: one output integer per level


@dataclass(frozen=True)
class MaxPoolStep:
    """MaxPool (no padding, floor) as the largest integer of each window, then an optional ReLU as a
    floor at the zero point: exact, since max commutes with a monotone quantizer, so the output
    keeps the input's scale and zero point."""

    name: str
    input: Tensor
    output: Tensor
    kernel: tuple[int, int]
    strides: tuple[int, int]
    relu: bool


Step = ConvStep | PoolStep | FsqStep | MaxPoolStep


def step_kind(step: Step) -> str:
    """A step's short name in reports: conv | pool | maxpool | fsq."""
    return type(step).__name__.removesuffix("Step").lower()


@dataclass
class ReferenceResult:
    """The integer reference's outputs for a batch: logits (float and int), FSQ input and codes."""

    logits: np.ndarray  # float32, dequantized
    logits_q: np.ndarray  # int
    pre_fsq: np.ndarray
    codes: np.ndarray


def float32_fields(scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A positive float32 scale as `mantissa * 2^-shift`, mantissa an integer in [2^23, 2^24)."""
    fraction, exponent = np.frexp(np.asarray(scale, np.float32).astype(np.float64))
    return (fraction * (1 << 24)).astype(np.int64), (24 - exponent).astype(np.int64)


def integer_range(zero_point: np.ndarray) -> tuple[int, int]:
    """The saturation bounds of a quantized tensor: its zero point's dtype (ONNX QuantizeLinear)."""
    info = np.iinfo(zero_point.dtype)
    return int(info.min), int(info.max)


def bit_length(x: np.ndarray) -> np.ndarray:
    """Bits of each non-negative integer below 2^53 (0 for 0)."""
    return np.frexp(x.astype(np.float64))[1].astype(np.int64)


def round_shift(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """`x / 2^k` rounded half to even, for integers x >= 0 and shifts 0 <= k <= 62."""
    half = (np.int64(1) << k) >> 1
    odd = (x >> k) & 1 & (k > 0)
    result: np.ndarray = (x + half - (k > 0) + odd) >> k
    return result


def round_float32(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integers 0 <= x < 2^53 rounded to float32's 24 significant bits, half to even: returns
    `(significand, exponent)` with value `significand * 2^exponent` and significand <= 2^24."""
    exponent = np.maximum(bit_length(x) - 24, 0)
    return round_shift(x, exponent), exponent


def requantize(acc: np.ndarray, scale: np.ndarray, zero_point: int, lo: int, hi: int) -> np.ndarray:
    """`clamp(round_half_even(float32(float32(acc) * scale)) + zp)` as onnxruntime computes it,
    emulated exactly in integers; `scale` float32 per channel (axis 1).

    float32(acc) is `acc` rounded to 24 significant bits; its product with the scale's 24-bit
    mantissa is exact in 48 bits and then rounded to 24 bits, as the float32 multiply does; the
    last rounding to an integer is half to even. Rounding is odd-symmetric, so magnitudes are
    rounded and the sign put back. Clamping before or after the last rounding is the same (the
    bounds are integers)."""
    mantissa, shift = (f.reshape(1, -1, *([1] * (acc.ndim - 2))) for f in float32_fields(scale))
    magnitude = np.abs(acc).astype(np.int64)
    significand, exponent = round_float32(magnitude)  # float32(acc)
    product, product_exponent = round_float32(significand * mantissa)  # < 2^48 before rounding
    # value = product * 2^(exponent + product_exponent - shift); product <= 2^24, so a right shift
    # beyond 40 gives 0 and a left shift beyond 10 saturates any 8-bit output
    right = shift - exponent - product_exponent
    rounded = np.where(
        right > 0,
        round_shift(product, np.clip(right, 0, 40)),
        product << np.clip(-right, 0, 10),
    )
    result: np.ndarray = np.clip(np.sign(acc) * rounded + zero_point, lo, hi)
    return result


def conv_windows(x: np.ndarray, step: ConvStep, pad_value: int) -> np.ndarray:
    """The step's receptive fields `(N, C, H', W', kh, kw)` of `x`, padded with `pad_value`, with its
    strides and dilations applied (views, no copies)."""
    top, left, bottom, right = step.pads
    padded = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=pad_value)
    (kh, kw), (dh, dw) = step.weight.shape[2:], step.dilations
    span = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, span, axis=(2, 3))
    result: np.ndarray = windows[:, :, :: step.strides[0], :: step.strides[1], ::dh, ::dw]
    return result


def conv_accumulate(x: np.ndarray, step: ConvStep) -> np.ndarray:
    """Integer NCHW convolution (groups = 1) by sliding windows and einsum in int64, bias added."""
    windows = conv_windows(x - step.input.zero_point, step, 0)
    w = step.weight - step.weight_zero_point.reshape(-1, 1, 1, 1)
    acc: np.ndarray = np.einsum("nchwij,ocij->nohw", windows, w, dtype=np.int64, optimize=True)
    result: np.ndarray = acc + step.bias.reshape(1, -1, 1, 1)
    return result


def conv_accumulate_avx2(x: np.ndarray, step: ConvStep) -> np.ndarray:
    """`conv_accumulate` as onnxruntime's MLAS computes it on x86 AVX2 without VNNI.

    The activation is offset to uint8 (int8 by +128, its zero point too; padding holds the zero
    point), the reduction axis is laid out channels-last `(kh, kw, C)` and zero-padded to an even
    length, each pair of neighbouring products is clamped to int16 (`vpmaddubsw`), the pairs are
    summed in int32 (`vpmaddwd`), then the zero point is corrected with the weight sums. Checked
    against onnxruntime on an emulated Haswell (tests/quantize/test_overflow.py)."""
    if step.weight_zero_point.any():
        raise ExportError(
            f"integer reference: the avx2-u8s8 emulation needs symmetric weights; {step.name} has a "
            "weight zero point"
        )
    offset = -step.input.lo  # uint8 stays, int8 moves by +128
    zero_point = step.input.zero_point + offset
    windows = conv_windows(x + offset, step, zero_point)
    n, height, width = windows.shape[0], windows.shape[2], windows.shape[3]
    # (N, C, H', W', kh, kw) -> (N, H', W', kh * kw * C): the channels-last reduction axis
    columns = windows.transpose(0, 2, 3, 4, 5, 1).reshape(n, height, width, -1)
    rows = step.weight.transpose(0, 2, 3, 1).reshape(len(step.weight), -1)  # (O, kh * kw * C)
    if rows.shape[1] % 2:
        columns = np.concatenate([columns, np.zeros_like(columns[..., :1])], axis=-1)
        rows = np.pad(rows, ((0, 0), (0, 1)))
    acc = np.zeros((n, height, width, len(rows)), np.int64)
    for k in range(0, rows.shape[1], 2):
        pair = columns[..., k, None] * rows[:, k] + columns[..., k + 1, None] * rows[:, k + 1]
        acc += np.clip(pair, INT16_MIN, INT16_MAX)
    acc += step.bias - zero_point * step.weight.reshape(len(step.weight), -1).sum(axis=1)
    result: np.ndarray = acc.transpose(0, 3, 1, 2)  # (N, H', W', O) -> (N, O, H', W')
    return result


def max_pool(q: np.ndarray, step: MaxPoolStep) -> np.ndarray:
    """The step's windows of `(N, C, H, W)` integers reduced to their maxima."""
    windows = np.lib.stride_tricks.sliding_window_view(q, step.kernel, axis=(2, 3))
    strided = windows[:, :, :: step.strides[0], :: step.strides[1]]
    result: np.ndarray = strided.max(axis=(4, 5))
    return np.maximum(result, step.output.zero_point) if step.relu else result


def run_step(step: Step, q: np.ndarray, accumulation: str = "int32") -> np.ndarray:
    """One step on a batch `(N, C, H, W)` of integers."""
    out = step.output
    if isinstance(step, MaxPoolStep):
        return max_pool(q, step)
    if isinstance(step, FsqStep):
        levels = fsq_levels(step, q)
        values = np.stack(
            [step.code_values[d][levels[:, d]] for d in range(levels.shape[1])], axis=1
        )
        return values.reshape(len(q), *out.shape)
    if isinstance(step, ConvStep):
        accumulate = conv_accumulate_avx2 if accumulation == "avx2-u8s8" else conv_accumulate
        acc = accumulate(q, step)
    else:  # (N, C, H, W) -> (N, C, 1, 1)
        acc = (q - step.input.zero_point).sum(axis=(2, 3), keepdims=True)
    if step.relu:
        acc = np.maximum(acc, 0)
    return requantize(acc, step.scale, out.zero_point, out.lo, out.hi).reshape(len(q), *out.shape)


def fsq_levels(step: FsqStep, q: np.ndarray) -> np.ndarray:
    """`(N, D)` level per dimension: how many of its thresholds the input exceeds."""
    flat = q.reshape(len(q), -1) - step.input.zero_point
    return np.stack(
        [(flat[:, d : d + 1] > t[None, :]).sum(axis=1) for d, t in enumerate(step.thresholds)],
        axis=1,
    )


def fsq_code_index(step: FsqStep, q: np.ndarray) -> np.ndarray:
    """The code index `sum(level_d * prod(levels[:d]))` of each window's FSQ input."""
    basis = np.cumprod([1, *step.levels[:-1]])
    result: np.ndarray = (fsq_levels(step, q) * basis).sum(axis=1)
    return result


@dataclass
class _Pending:
    """A Conv or pooling whose accumulator awaits its QuantizeLinear."""

    node: NodeProto
    source: int
    input: Tensor
    scale: (
        np.ndarray
    )  # float32 accumulator scale x_scale * w_scale per output channel (pooling: x_scale)
    attrs: dict[str, Any]
    weight: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # q, scale, zero point
    bias: np.ndarray | None = None
    relu: bool = False


@dataclass
class _PendingMaxPool:
    """A MaxPool awaiting the QuantizeLinear that must keep its input's scale."""

    node: NodeProto
    source: int
    attrs: dict[str, Any]
    relu: bool = False


class IntegerReference:
    """Integer interpreter of the edgekit QDQ graph (Conv/Relu/MaxPool/GlobalAveragePool/FSQ/Flatten
    chain)."""

    def __init__(self, model: ModelProto, accumulation: str = "int32") -> None:
        import onnx
        from onnx import numpy_helper

        if accumulation not in ACCUMULATIONS:
            raise ExportError(
                f"integer reference: accumulation must be one of {', '.join(ACCUMULATIONS)}, "
                f"got {accumulation!r}"
            )
        self.accumulation = accumulation
        self.model = model
        graph = model.graph
        self.constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.nodes = [n for n in graph.node if n.op_type != "Constant"]
        self.attributes = [
            {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in self.nodes
        ]
        self.input_name = graph.input[0].name
        self.output_names = [o.name for o in graph.output]
        meta = {p.key: p.value for p in model.metadata_props}
        if "edgekit_fsq_levels" not in meta:
            raise ExportError(
                "the ONNX file carries no edgekit_fsq_levels metadata; export it with `edgekit export`"
            )
        self.levels = tuple(int(v) for v in meta["edgekit_fsq_levels"].split(","))
        first = next((n for n in self.nodes if self.input_name in n.input), None)
        # a dithered input (edgekit.models.network.dither_pattern): a constant Add, then the quantizer
        self.input_dither_node, self.input_dither, first = self._input_dither(first)
        if first is None or first.op_type != "QuantizeLinear":
            raise ExportError(
                "the ONNX file does not quantize its input: it is a float model, not the int8 QDQ "
                "export; give export/onnx/model_int8.onnx from `edgekit export --target onnx`"
            )
        self.input_quantizer = first
        self.input_scale = float(self.constants[first.input[1]])
        self.input_zero_point = int(self.constants[first.input[2]])
        self.input_range = integer_range(self.constants[first.input[2]])
        last_q = [n for n in self.nodes if n.op_type == "QuantizeLinear"][-1]
        self.output_scale = float(self.constants[last_q.input[1]])
        self.output_zero_point = int(self.constants[last_q.input[2]])
        dims = graph.input[0].type.tensor_type.shape.dim
        self.input = Tensor(
            tuple(d.dim_value for d in dims)[1:],
            self.input_scale,
            self.input_zero_point,
            *self.input_range,
        )
        self.steps: list[Step] = []
        self.sources: list[int] = []  # the step each step reads; -1 is the graph input
        # the graph tensor each step's integers are (its QuantizeLinear's output): per-layer parity
        self.step_tensors: list[str] = []
        self.output_steps: dict[str, int] = {}  # graph output name -> step producing it
        self._lower()

    def _input_dither(
        self, first: NodeProto | None
    ) -> tuple[NodeProto | None, np.ndarray | None, NodeProto | None]:
        """The Add of a constant the graph puts before its input quantizer, that constant `(C, H, W)`
        as float32 and the node after it; (None, None, first) when the input is quantized as it comes."""
        if first is None or first.op_type != "Add":
            return None, None, first
        constant = next((name for name in first.input if name != self.input_name), "")
        consumers = [n for n in self.nodes if first.output[0] in n.input]
        if constant not in self.constants or [n.op_type for n in consumers] != ["QuantizeLinear"]:
            raise ExportError(
                "integer reference: the input feeds an Add that is not a constant offset before the "
                "input QuantizeLinear; give export/onnx/model_int8.onnx from `edgekit export`"
            )
        offset = self.constants[constant].astype(np.float32)
        return first, offset.reshape(offset.shape[-3:]) if offset.ndim > 3 else offset, consumers[0]

    @property
    def logits_tensor(self) -> Tensor:
        """The quantized tensor behind graph output 0, the logits."""
        return self.steps[self.output_steps[self.output_names[0]]].output

    @property
    def pre_fsq_tensor(self) -> Tensor:
        """The quantized tensor behind graph output 1, the FSQ input."""
        return self.steps[self.output_steps[self.output_names[1]]].output

    @classmethod
    def from_onnx(cls, path: str | Path, accumulation: str = "int32") -> IntegerReference:
        """The reference of an int8 QDQ/QOperator ONNX file (refused with the reason if unsupported)."""
        from edgekit.onnx_io import load_onnx

        return cls(load_onnx(path), accumulation)

    # ------------------------------------------------------------------ lowering
    def _lower(self) -> None:
        """Walk the QDQ graph once, folding each integer op and its QuantizeLinear into a step."""
        values: dict[str, object] = {}  # tensor name -> step index (int), _Pending or weight tuple
        index = 0
        while index < len(self.nodes):
            node, attrs = self.nodes[index], self.attributes[index]
            op = node.op_type
            if node is self.input_dither_node:
                pass  # the host adds it before quantizing (quantize_input)
            elif node is self.input_quantizer:
                values[node.output[0]] = -1
            elif op == "DequantizeLinear":
                source = node.input[0]
                if source in self.constants:
                    values[node.output[0]] = (
                        self.constants[source].astype(np.int64),
                        np.atleast_1d(self.constants[node.input[1]]).astype(np.float32),
                        np.atleast_1d(self.constants[node.input[2]]).astype(np.int64),
                    )
                else:
                    values[node.output[0]] = values[source]  # stays integer
            elif op == "Conv":
                values[node.output[0]] = self._conv_node(node, attrs, values)
            elif op == "Relu":
                pending = values[node.input[0]]
                if not isinstance(pending, _Pending | _PendingMaxPool):
                    raise ExportError("integer reference: Relu must follow a Conv or pooling")
                pending.relu = True
                values[node.output[0]] = pending
            elif op == "GlobalAveragePool":
                source = self._activation(values[node.input[0]], node)
                x = self._tensor(source)
                values[node.output[0]] = _Pending(
                    node, source, x, np.array([x.scale], np.float32), attrs
                )
            elif op == "MaxPool":
                source = self._activation(values[node.input[0]], node)
                values[node.output[0]] = _PendingMaxPool(node, source, attrs)
            elif op == "QuantizeLinear":
                pending = values[node.input[0]]
                values[node.output[0]] = (
                    self._max_pool(pending, node)
                    if isinstance(pending, _PendingMaxPool)
                    else self._quantize(pending, node)
                )
            elif op == "Add" and isinstance(values.get(node.input[0]), int):
                index, step = self._fsq(index, values[node.input[0]])  # type: ignore[arg-type]
                values[self.nodes[index].output[0]] = step
            elif op in ("Flatten", "Reshape"):
                values[node.output[0]] = self._activation(values[node.input[0]], node)
            else:
                raise ExportError(
                    f"integer reference: unsupported node {node.name or op} ({op}); only "
                    "edgekit's QDQ chain is supported"
                )
            index += 1
        for name in self.output_names[:2]:
            produced = values.get(name)
            if not isinstance(produced, int) or produced < 0:
                raise ExportError(
                    f"integer reference: graph output {name} is not a quantized activation"
                )
            self.output_steps[name] = produced

    def _tensor(self, source: int) -> Tensor:
        return self.input if source < 0 else self.steps[source].output

    @staticmethod
    def _activation(value: object, node: NodeProto) -> int:
        if not isinstance(value, int):
            raise ExportError(
                f"integer reference: {node.op_type} {node.name} must read a quantized activation"
            )
        return value

    def _conv_node(
        self, node: NodeProto, attrs: dict[str, Any], values: dict[str, object]
    ) -> _Pending:
        x, w = values[node.input[0]], values[node.input[1]]
        if not isinstance(x, int) or not isinstance(w, tuple) or attrs.get("group", 1) != 1:
            raise ExportError(
                f"integer reference: Conv {node.name} is not an int8 x int8 convolution"
            )
        tensor = self._tensor(x)
        # float32 products, as onnxruntime forms the scale of QLinearConv
        scale = np.broadcast_to(np.float32(tensor.scale) * w[1], (w[0].shape[0],))
        pending = _Pending(node, x, tensor, scale, attrs, weight=w)
        if len(node.input) > 2 and node.input[2]:
            bias = values[node.input[2]]
            if not isinstance(bias, tuple) or not np.allclose(bias[1], scale, rtol=1e-5):
                raise ExportError(
                    f"integer reference: bias of {node.name} is not int32 at input*weight scale"
                )
            pending.bias = bias[0].reshape(-1)
        return pending

    def _quantize(self, value: object, node: NodeProto) -> int:
        if not isinstance(value, _Pending):
            raise ExportError("integer reference: QuantizeLinear must follow an integer op")
        scale = float(self.constants[node.input[1]])
        zero_point = self.constants[node.input[2]]
        x, name = value.input, value.node.name or value.node.op_type
        if value.weight is None:  # pooling: one scale for all channels, x / (y * area) in float32
            output = Tensor((x.shape[0], 1, 1), scale, int(zero_point), *integer_range(zero_point))
            area = np.float32(x.shape[1] * x.shape[2])
            return self._append(
                PoolStep(name, x, output, value.relu, value.scale / (np.float32(scale) * area)),
                value.source,
                node.output[0],
            )
        weight, _, weight_zero_point = value.weight
        strides = tuple(value.attrs.get("strides", [1, 1]))
        pads = tuple(value.attrs.get("pads", [0, 0, 0, 0]))
        dilations = tuple(value.attrs.get("dilations", [1, 1]))
        kh, kw = weight.shape[2:]
        height = (x.shape[1] + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
        width = (x.shape[2] + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
        output = Tensor(
            (weight.shape[0], height, width), scale, int(zero_point), *integer_range(zero_point)
        )
        bias = value.bias if value.bias is not None else np.zeros(weight.shape[0], np.int64)
        return self._append(
            ConvStep(
                name,
                x,
                output,
                weight,
                np.broadcast_to(weight_zero_point, (weight.shape[0],)).copy(),
                bias.astype(np.int64),
                strides,
                pads,
                dilations,
                value.relu,
                (value.scale / np.float32(scale)).astype(np.float32),
            ),
            value.source,
            node.output[0],
        )

    def _max_pool(self, value: _PendingMaxPool, node: NodeProto) -> int:
        """A MaxPool step: the QuantizeLinear after it must repeat its input's quantization (then
        it is the identity on integers), and the pool must be unpadded, floor, undilated."""
        x, attrs = self._tensor(value.source), value.attrs
        name = value.node.name or "MaxPool"
        scale, zero_point = self.constants[node.input[1]], self.constants[node.input[2]]
        same = np.float32(scale) == np.float32(x.scale) and int(zero_point) == x.zero_point
        if not same or integer_range(zero_point) != (x.lo, x.hi):
            raise ExportError(
                f"integer reference: MaxPool {name} is requantized to another scale or zero point; "
                "edgekit's QAT layers keep the ReLU's quantizer after a pool, export with them"
            )
        kh, kw = attrs.get("kernel_shape", [1, 1])
        strides = tuple(attrs.get("strides", [1, 1]))
        plain = (
            not any(attrs.get("pads", [0, 0, 0, 0]))
            and not attrs.get("ceil_mode", 0)
            and list(attrs.get("dilations", [1, 1])) == [1, 1]
            and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
        )
        if not plain:
            raise ExportError(
                f"integer reference: MaxPool {name} pads, dilates or rounds up; only plain pools "
                "(no padding, floor) are supported"
            )
        height = (x.shape[1] - kh) // strides[0] + 1
        width = (x.shape[2] - kw) // strides[1] + 1
        output = Tensor((x.shape[0], height, width), x.scale, x.zero_point, x.lo, x.hi)
        step = MaxPoolStep(
            name, x, output, (kh, kw), (int(strides[0]), int(strides[1])), value.relu
        )
        return self._append(step, value.source, node.output[0])

    def _append(self, step: Step, source: int, tensor: str) -> int:
        """Add a step reading step `source` (-1: the graph input) whose integers are the graph's
        `tensor`; returns its index."""
        self.steps.append(step)
        self.sources.append(source)
        self.step_tensors.append(tensor)
        return len(self.steps) - 1

    def _fsq(self, index: int, source: int) -> tuple[int, int]:
        """Replace Add -> Tanh -> Mul -> Sub -> Round -> Div -> QuantizeLinear by integer thresholds;
        returns the index of that QuantizeLinear node and the new step's."""
        ops = [n.op_type for n in self.nodes[index : index + len(FSQ_OPS)]]
        if tuple(ops) != FSQ_OPS or self.nodes[index + len(FSQ_OPS)].op_type != "QuantizeLinear":
            raise ExportError(f"integer reference: expected the FSQ block {FSQ_OPS}, found {ops}")
        x = self._tensor(source)
        quant_node = self.nodes[index + len(FSQ_OPS)]
        out_scale = float(self.constants[quant_node.input[1]])
        zero_point = self.constants[quant_node.input[2]]
        output = Tensor(x.shape, out_scale, int(zero_point), *integer_range(zero_point))
        thresholds, code_values = [], []
        for level, real_thresholds in zip(self.levels, fsq_thresholds(self.levels), strict=True):
            # q * scale > t  <=>  q > floor(t / scale) for integer q
            thresholds.append(np.floor(real_thresholds / x.scale).astype(np.int64))
            rounded = np.arange(level) - level // 2
            code_q = (
                np.rint(rounded / (level // 2) / out_scale).astype(np.int64) + output.zero_point
            )
            code_values.append(np.clip(code_q, output.lo, output.hi))
        step = FsqStep(
            quant_node.name or "fsq", x, output, self.levels, tuple(thresholds), tuple(code_values)
        )
        return index + len(FSQ_OPS), self._append(step, source, quant_node.output[0])

    # ------------------------------------------------------------------ running
    def quantize_input(self, X: np.ndarray) -> np.ndarray:
        """Host-side input quantization as the graph does it: the dither added in float32 (ONNX
        Add), then QuantizeLinear (float32 division, half to even)."""
        X = np.asarray(X, np.float32)
        if self.input_dither is not None:
            X = X + self.input_dither
        return self.input.quantize(X)

    def run(self, X: np.ndarray) -> ReferenceResult:
        """Float windows in: quantized as the host would, then integer arithmetic only."""
        return self.run_quantized(self.quantize_input(X))

    def run_steps(self, q_input: np.ndarray) -> list[np.ndarray]:
        """Every step's output integers `(N, C, H, W)` for int8 windows, in graph order."""
        outputs: list[np.ndarray] = []
        for step, source in zip(self.steps, self.sources, strict=True):
            q = q_input.astype(np.int64) if source < 0 else outputs[source]
            outputs.append(run_step(step, q, self.accumulation))
        return outputs

    def run_quantized(self, q_input: np.ndarray) -> ReferenceResult:
        """int8 windows in (as they travel to a device): each step in graph order on integers."""
        outputs = self.run_steps(q_input)
        codes = np.zeros(len(q_input), dtype=np.int64)
        for step, source in zip(self.steps, self.sources, strict=True):
            if isinstance(step, FsqStep):
                codes = fsq_code_index(
                    step, q_input.astype(np.int64) if source < 0 else outputs[source]
                )
        logits, pre_fsq = (outputs[self.output_steps[name]] for name in self.output_names[:2])
        logits_q = logits.reshape(len(logits), -1)
        return ReferenceResult(
            logits=self.logits_tensor.dequantize(logits_q),
            logits_q=logits_q,
            pre_fsq=self.pre_fsq_tensor.dequantize(pre_fsq),
            codes=codes,
        )
