"""Integer-only reference of the int8 QDQ graph, as an MCU would run it.

Reads the exported ONNX (not the PyTorch model), so it checks the artifact itself: int8 weights,
int32 biases, int64 accumulators, fixed-point requantization (Q31 multiplier + shift, as in
CMSIS-NN/gemmlowp), ReLU as a clamp in the integer domain, and FSQ by integer thresholds instead of
tanh + round. Only the final dequantization of the outputs uses floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from edgekit.errors import ExportError
from edgekit.quantize.fsq_grid import fsq_thresholds

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto

FSQ_OPS = ("Add", "Tanh", "Mul", "Sub", "Round", "Div")


@dataclass
class Quantized:
    """An activation: integers `q` with `real = (q - zero_point) * scale`."""

    q: np.ndarray
    scale: float
    zero_point: int


@dataclass
class Accumulator:
    """Integer sums with a per-channel scale (`real = acc * scale[channel]`), before requantization."""

    acc: np.ndarray  # int64 (N, C, H, W)
    scale: np.ndarray  # (C,) float64


@dataclass
class Weight:
    q: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray


@dataclass
class ReferenceResult:
    logits: np.ndarray  # float32, dequantized
    logits_q: np.ndarray  # int
    pre_fsq: np.ndarray
    codes: np.ndarray


def fixed_point_multiplier(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q31 multiplier and right shift with `real ≈ multiplier * 2^-(31 + shift)` (real in (0, 1) typically)."""
    mantissa, exponent = np.frexp(
        real.astype(np.float64)
    )  # real = mantissa * 2^exponent, mantissa in [0.5, 1)
    multiplier = np.round(mantissa * (1 << 31)).astype(np.int64)
    overflow = multiplier == (1 << 31)
    multiplier[overflow] //= 2
    exponent = exponent + overflow
    return multiplier, -exponent


def integer_range(zero_point: np.ndarray) -> tuple[int, int]:
    """The saturation bounds of a quantized tensor: its zero point's dtype (ONNX QuantizeLinear)."""
    info = np.iinfo(zero_point.dtype)
    return int(info.min), int(info.max)


def requantize(
    acc: np.ndarray, real_multiplier: np.ndarray, zero_point: int, lo: int, hi: int
) -> np.ndarray:
    """`clamp(round(acc * M) + zp)` in integers only; M per channel (axis 1)."""
    multiplier, shift = fixed_point_multiplier(real_multiplier)
    total_shift = (31 + shift).reshape(1, -1, 1, 1)
    product = acc * multiplier.reshape(1, -1, 1, 1)  # |acc| < 2^31 / 2^8 keeps this in int64
    rounded = (product + (np.int64(1) << (total_shift - 1))) >> total_shift  # round half up
    result: np.ndarray = np.clip(rounded + zero_point, lo, hi)
    return result


def _conv(x: np.ndarray, w: np.ndarray, strides: list[int], pads: list[int]) -> np.ndarray:
    """Integer NCHW convolution (groups = 1) by sliding windows and einsum in int64."""
    x = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    kh, kw = w.shape[2:]
    windows = np.lib.stride_tricks.sliding_window_view(
        x, (kh, kw), axis=(2, 3)
    )  # (N, C, H', W', kh, kw)
    windows = windows[:, :, :: strides[0], :: strides[1]]
    result: np.ndarray = np.einsum("nchwij,ocij->nohw", windows, w, dtype=np.int64, optimize=True)
    return result


class IntegerReference:
    """Integer interpreter of the edgekit QDQ graph (Conv/Relu/GlobalAveragePool/FSQ/Flatten chain)."""

    def __init__(self, model: ModelProto) -> None:
        import onnx
        from onnx import numpy_helper

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

    @classmethod
    def from_onnx(cls, path: str | Path) -> IntegerReference:
        from edgekit.onnx_io import load_onnx

        return cls(load_onnx(path))

    def quantize_input(self, X: np.ndarray) -> np.ndarray:
        """Host-side input quantization, matching ONNX QuantizeLinear (float32, half to even)."""
        q = np.rint(X.astype(np.float32) / np.float32(self.input_scale)) + self.input_zero_point
        result: np.ndarray = np.clip(q, *self.input_range).astype(np.int64)
        return result

    def run(self, X: np.ndarray) -> ReferenceResult:
        return self.run_quantized(self.quantize_input(X))

    def run_quantized(self, q_input: np.ndarray) -> ReferenceResult:
        values: dict[str, object] = {}
        codes = None
        index = 0
        while index < len(self.nodes):
            node, attrs = self.nodes[index], self.attributes[index]
            op = node.op_type
            if node is self.input_quantizer:
                values[node.output[0]] = Quantized(
                    q_input.astype(np.int64), self.input_scale, self.input_zero_point
                )
            elif op == "DequantizeLinear":
                source = node.input[0]
                if source in self.constants:
                    values[node.output[0]] = Weight(
                        self.constants[source].astype(np.int64),
                        np.atleast_1d(self.constants[node.input[1]]).astype(np.float64),
                        np.atleast_1d(self.constants[node.input[2]]).astype(np.int64),
                    )
                else:
                    values[node.output[0]] = values[
                        source
                    ]  # stays integer: the next op reads q directly
            elif op == "Conv":
                values[node.output[0]] = self._conv_node(node, attrs, values)
            elif op == "Relu":
                values[node.output[0]] = self._relu(values[node.input[0]])
            elif op == "GlobalAveragePool":
                x = values[node.input[0]]
                assert isinstance(x, Quantized)
                area = x.q.shape[2] * x.q.shape[3]
                acc = (x.q - x.zero_point).sum(axis=(2, 3), keepdims=True)
                values[node.output[0]] = Accumulator(
                    acc, np.array([x.scale / area])
                )  # all channels
            elif op == "QuantizeLinear":
                values[node.output[0]] = self._quantize(values[node.input[0]], node)
            elif op == "Add" and isinstance(values.get(node.input[0]), Quantized):
                index, output, codes = self._fsq(index, values[node.input[0]])  # type: ignore[arg-type]
                values[self.nodes[index].output[0]] = output
            elif op in ("Flatten", "Reshape"):
                x = values[node.input[0]]
                assert isinstance(x, Quantized)
                values[node.output[0]] = Quantized(x.q.reshape(len(x.q), -1), x.scale, x.zero_point)
            else:
                raise ExportError(
                    f"integer reference: unsupported node {node.name or op} ({op}); only edgekit's QDQ chain is supported"
                )
            index += 1
        logits, pre_fsq = (values[name] for name in self.output_names[:2])
        assert isinstance(logits, Quantized) and isinstance(pre_fsq, Quantized)
        return ReferenceResult(
            logits=self._dequantize(logits),
            logits_q=logits.q,
            pre_fsq=self._dequantize(pre_fsq),
            codes=codes if codes is not None else np.zeros(len(logits.q), dtype=np.int64),
        )

    @staticmethod
    def _dequantize(x: Quantized) -> np.ndarray:
        result: np.ndarray = (x.q - x.zero_point).astype(np.float32) * np.float32(x.scale)
        return result.astype(np.float32)

    def _conv_node(
        self, node: NodeProto, attrs: dict[str, Any], values: dict[str, object]
    ) -> Accumulator:
        x, w = values[node.input[0]], values[node.input[1]]
        if not isinstance(x, Quantized) or not isinstance(w, Weight) or attrs.get("group", 1) != 1:
            raise ExportError(
                f"integer reference: Conv {node.name} is not an int8 x int8 convolution"
            )
        acc = _conv(
            x.q - x.zero_point,
            w.q - w.zero_point.reshape(-1, 1, 1, 1),
            attrs.get("strides", [1, 1]),
            attrs.get("pads", [0, 0, 0, 0]),
        )
        scale = np.broadcast_to(x.scale * w.scale, (acc.shape[1],))  # per output channel
        if len(node.input) > 2:
            bias = values[node.input[2]]
            assert isinstance(bias, Weight)
            if not np.allclose(bias.scale, scale, rtol=1e-5):
                raise ExportError(
                    f"integer reference: bias of {node.name} is not int32 at input*weight scale"
                )
            acc = acc + bias.q.reshape(1, -1, 1, 1)
        return Accumulator(acc, scale)

    @staticmethod
    def _relu(x: object) -> Accumulator:
        if not isinstance(x, Accumulator):
            raise ExportError("integer reference: Relu must follow a Conv or pooling")
        return Accumulator(np.maximum(x.acc, 0), x.scale)

    def _quantize(self, x: object, node: NodeProto) -> Quantized:
        scale = float(self.constants[node.input[1]])
        zero_point = self.constants[node.input[2]]
        if not isinstance(x, Accumulator):
            raise ExportError("integer reference: QuantizeLinear must follow an integer op")
        q = requantize(x.acc, x.scale / scale, int(zero_point), *integer_range(zero_point))
        return Quantized(q, scale, int(zero_point))

    def _fsq(self, index: int, x: Quantized) -> tuple[int, Quantized, np.ndarray]:
        """Replace Add -> Tanh -> Mul -> Sub -> Round -> Div -> QuantizeLinear by integer thresholds."""
        ops = [n.op_type for n in self.nodes[index : index + len(FSQ_OPS)]]
        if tuple(ops) != FSQ_OPS or self.nodes[index + len(FSQ_OPS)].op_type != "QuantizeLinear":
            raise ExportError(f"integer reference: expected the FSQ block {FSQ_OPS}, found {ops}")
        quant_node = self.nodes[index + len(FSQ_OPS)]
        out_scale = float(self.constants[quant_node.input[1]])
        out_zero_point = int(self.constants[quant_node.input[2]])
        out_range = integer_range(self.constants[quant_node.input[2]])
        q = x.q.reshape(len(x.q), -1) - x.zero_point  # (N, D)
        out = np.empty_like(q)
        digits = np.empty_like(q)
        for d, (level, thresholds) in enumerate(
            zip(self.levels, fsq_thresholds(self.levels), strict=True)
        ):
            # q * scale > t  <=>  q > floor(t / scale) for integer q
            integer_thresholds = np.floor(thresholds / x.scale).astype(np.int64)
            step = (q[:, d : d + 1] > integer_thresholds[None, :]).sum(axis=1)
            rounded = step - level // 2
            digits[:, d] = step
            code_q = np.rint(rounded / (level // 2) / out_scale).astype(np.int64) + out_zero_point
            out[:, d] = np.clip(code_q, *out_range)
        basis = np.cumprod([1, *self.levels[:-1]])
        codes = (digits * basis).sum(axis=1)
        return (
            index + len(FSQ_OPS),
            Quantized(out.reshape(x.q.shape), out_scale, out_zero_point),
            codes,
        )
