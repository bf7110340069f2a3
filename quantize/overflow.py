"""int16 pair saturation of x86 AVX2 int8 kernels: the bound, the per-layer check, the CPU facts.

onnxruntime's MLAS runs an int8 convolution on x86 CPUs without VNNI (AVX2: most GitHub runners,
AMD Zen 2/3, Intel client CPUs before Ice Lake) with `vpmaddubsw`: activations are offset to uint8
(int8 ones by +128), weights stay int8, and two neighbouring products along the reduction axis are
added into a *saturating* int16 before the int32 sum. VNNI (`vpdpbusd`), Arm, the MCU C and the
integer reference accumulate in int32, so the same file gives other results on those CPUs as soon as
`a0 * w0 + a1 * w1` leaves [-32768, 32767] (onnxruntime issues 6004 and 16105; ORT's quantization
docs on U8S8 and `reduce_range`; NNCF's `overflow_fix`).

No activation value can make a pair saturate when every pair of weights in an output channel does
not: the uint8 operand is at most 255, so the worst pair is 255 x (the two largest positive weights)
or 255 x (the two most negative). 7-bit weights (|w| <= 63) give 255 * 63 * 2 = 32130. The check
takes the worst pair of each row whatever the kernel's pairing, so it does not depend on the order
in which a runtime lays out the reduction axis. The weights bounded are the ones onnxruntime's
optimiser hands its int8 kernels, whatever form the file stores them in (see `int8_weights`).

NumPy, the standard library and, inside the functions that read a graph, onnx: `edgekit check`
and the readiness rules import no torch, and the config (which imports this module) no onnx.
"""

from __future__ import annotations

import platform
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    from onnx import ModelProto, NodeProto

# Which convolutions QAT trains with 7-bit weights (NNCF's names): every one, the one reading the
# network input, or none (only for models that never run on an x86 CPU without VNNI).
OVERFLOW_FIXES = ("all", "first_layer", "none")
INT16_MIN, INT16_MAX = -32768, 32767
UINT8_MAX = 255  # the largest activation operand: uint8 as it is, int8 offset by +128
SAFE_WEIGHT_MAGNITUDE = 63  # 7-bit narrow range: 2 * 255 * 63 = 32130 <= 32767
# /proc/cpuinfo flags that decide which int8 kernel onnxruntime's MLAS picks on x86
INT8_CPU_FLAGS = ("avx2", "avx512_vnni", "avx_vnni", "amx_int8")
OVERFLOW_FIX_HINT = (
    "retrain with model.overflow_fix=all (7-bit weights, the default) so no CPU can saturate; "
    "a model quantized by another tool needs 7-bit weights too (onnxruntime's reduce_range=True)"
)


def worst_pair_sums(weight: np.ndarray) -> np.ndarray:
    """Per output channel `(O,)`, the largest |a0 * w0 + a1 * w1| any two weights of the row can
    reach with uint8 operands a0, a1 in 0..255 (pairing anywhere along the reduction axis).

    The kernels multiply the stored int8 weights and correct for zero points in int32 afterwards, so
    the stored values are what saturates."""
    rows = weight.reshape(weight.shape[0], -1).astype(np.int64)  # a lone weight pairs with nothing
    positive = np.sort(np.maximum(rows, 0), axis=1)[:, -2:].sum(axis=1)
    negative = np.sort(np.minimum(rows, 0), axis=1)[:, :2].sum(axis=1)
    result: np.ndarray = UINT8_MAX * np.maximum(positive, -negative)
    return result


@dataclass(frozen=True)
class LayerBound:
    """One int8 convolution's worst pair sum against the int16 range."""

    layer: str
    worst_pair_sum: int
    max_weight_magnitude: int
    channels_over: int  # output channels whose worst pair leaves the int16 range
    channels: int
    quantized_by_onnxruntime: bool  # float weights in the file, 8-bit at run time

    @property
    def can_saturate(self) -> bool:
        return self.worst_pair_sum > INT16_MAX

    def to_dict(self) -> dict[str, object]:
        return {
            "layer": self.layer,
            "worst_pair_sum": self.worst_pair_sum,
            "int16_limit": INT16_MAX,
            "max_weight_magnitude": self.max_weight_magnitude,
            "channels_over": self.channels_over,
            "channels": self.channels,
            "can_saturate": self.can_saturate,
            "quantized_by_onnxruntime": self.quantized_by_onnxruntime,
        }

    def describe(self) -> str:
        origin = (
            "; its weights are float in the file and onnxruntime quantizes them to 8 bits: store "
            "them as int8 behind a DequantizeLinear"
            if self.quantized_by_onnxruntime
            else ""
        )
        return (
            f"{self.layer}: worst pair 255 x w0 + 255 x w1 = {self.worst_pair_sum} > {INT16_MAX} "
            f"in {self.channels_over} of {self.channels} output channels (max |w| {self.max_weight_magnitude}, "
            f"safe <= {SAFE_WEIGHT_MAGNITUDE}){origin}"
        )


def layer_bound(
    layer: str, weight: np.ndarray, quantized_by_onnxruntime: bool = False
) -> LayerBound:
    """The bound of one convolution from its int8 weights `(O, C, kh, kw)`."""
    sums = worst_pair_sums(weight)
    magnitudes = np.abs(weight.astype(np.int64))
    return LayerBound(
        layer=layer,
        worst_pair_sum=int(sums.max()),
        max_weight_magnitude=int(magnitudes.max()),
        channels_over=int((sums > INT16_MAX).sum()),
        channels=int(sums.shape[0]),
        quantized_by_onnxruntime=quantized_by_onnxruntime,
    )


# op -> index of its weight input and whether rows are the weight's first axis (else its last;
# for Gemm, when it has no transB)
WEIGHT_INPUTS: dict[str, tuple[int, bool]] = {
    "Conv": (1, True),
    "ConvInteger": (1, True),
    "QLinearConv": (3, True),
    "MatMul": (1, False),
    "MatMulInteger": (1, False),
    "QLinearMatMul": (3, False),
    "Gemm": (1, False),
}


# Which int8 weights onnxruntime's kernels multiply, as its optimiser (1.32, x86) builds them, each
# rule checked on its optimised graph: it folds every node of fixed inputs except DequantizeLinear
# and random ops; after a DequantizeLinear it moves only these ops onto the stored integers (a
# Reshape, Squeeze or Unsqueeze there leaves a float Conv); and it quantizes a float Conv or Gemm
# weight itself, 8-bit, when the layer reads a tensor dequantized with one scale (fixed or computed)
# and only a QuantizeLinear reads its output, directly or through a Relu (its WeightBiasQuantization,
# ReluQuantFusion, then the QDQ fusion; a Clip there is not modelled). A dequantized int8 weight
# counts wherever it is used, whether or not onnxruntime fuses that layer: Q1 may warn about a layer
# that runs in float, never miss a modelled one that runs in int8.
MOVED_ONTO_STORED = ("Identity", "Transpose")  # one input each
RANDOM_OPS = (
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Bernoulli",
    "Multinomial",
)  # never folded
QUANTIZED_BY_ONNXRUNTIME = ("Conv", "Gemm")


def folded_tensors(model: ModelProto) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """`(fixed, dequantized)`: every tensor onnxruntime folds into a constant, by name, and every
    DequantizeLinear output by the stored integers behind it (QDQ kernels multiply those)."""
    from onnx import numpy_helper

    opsets = {entry.domain: entry.version for entry in model.opset_import}
    fixed = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    dequantized: dict[str, np.ndarray] = {}
    for node in model.graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type in RANDOM_OPS or not node.output:
            continue
        first = inputs[0] if inputs else ""  # a node without inputs: a Constant or a malformed one
        if node.op_type == "DequantizeLinear" and first in fixed:
            dequantized[node.output[0]] = fixed[first]
        elif node.op_type in MOVED_ONTO_STORED and first in dequantized:
            dequantized.update(node_outputs(node, opsets, {first: dequantized[first]}))
        elif all(name in fixed for name in inputs):
            fixed.update(node_outputs(node, opsets, {name: fixed[name] for name in inputs}))
    return fixed, dequantized


def node_outputs(
    node: NodeProto, opsets: dict[str, int], inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The node's outputs by name as ONNX's reference computes them; none where it cannot (a
    malformed file, which `edgekit check` reports elsewhere, fixes no value)."""
    from onnx.reference import ReferenceEvaluator

    try:
        with warnings.catch_warnings():  # no NumPy warning lines for a malformed file's values
            warnings.simplefilter("ignore")
            reference = ReferenceEvaluator(node, opsets=opsets)
            outputs = cast("list[np.ndarray]", reference.run(None, inputs))  # no `intermediate`
    except Exception:  # numpy and the reference raise ValueError, IndexError, TypeError, ...
        return {}
    return {name: value for name, value in zip(node.output, outputs, strict=False) if name}


def onnxruntime_quantized(weight: np.ndarray) -> np.ndarray:
    """The int8 weights onnxruntime gives a float layer between quantized activations: one scale
    and zero point for the whole tensor over its range widened to hold 0 (its
    GetQuantizationParameter<int8_t>), then QuantizeLinear, in float32 as it computes."""
    values = weight.astype(np.float32)
    low = min(values.min(), np.float32(0))
    high = max(values.max(), np.float32(0))
    scale = np.float32(1) if high == low else (high - low) / np.float32(255)
    zero_point = np.round(np.clip(np.float32(-128) - low / scale, -128, 127))  # half to even
    quantized: np.ndarray = np.clip(np.round(values / scale) + zero_point, -128, 127).astype(
        np.int8
    )
    return quantized


def quantized_by_onnxruntime(
    node: NodeProto,
    fixed: dict[str, np.ndarray],
    producers: dict[str, NodeProto],
    readers: dict[str, list[NodeProto]],
) -> bool:
    """Whether onnxruntime quantizes this layer's float weight and runs it on an int8 kernel."""
    source = producers.get(node.input[0])
    scale = fixed.get(source.input[1]) if source is not None and len(source.input) > 1 else None
    bias = node.input[2] if len(node.input) > 2 else ""
    return (
        node.op_type in QUANTIZED_BY_ONNXRUNTIME
        and source is not None
        and source.op_type == "DequantizeLinear"
        # one scale; a computed one may be one (onnxruntime checks the shape, not the value)
        and (scale is None or scale.size == 1)
        and (not bias or (bias in fixed and fixed[bias].ndim == 1))
        and quantized_next(node.output[0], fixed, readers)
    )


def quantized_next(
    tensor: str, fixed: dict[str, np.ndarray], readers: dict[str, list[NodeProto]]
) -> bool:
    """Whether only a QuantizeLinear reads the tensor, directly or through a Relu that its zero
    point makes redundant (the lowest integer of its type: onnxruntime then drops the Relu)."""
    after = readers.get(tensor, [])
    if len(after) != 1 or after[0].op_type not in ("QuantizeLinear", "Relu"):
        return False
    if after[0].op_type == "QuantizeLinear":
        return True
    later = readers.get(after[0].output[0], [])
    if len(later) != 1 or later[0].op_type != "QuantizeLinear":
        return False
    zero_point = fixed.get(later[0].input[2]) if len(later[0].input) > 2 else np.uint8(0)
    return (
        zero_point is not None
        and bool(zero_point.size == 1)
        and (zero_point.item() == np.iinfo(zero_point.dtype).min)
    )


def int8_weights(model: ModelProto) -> list[tuple[str, np.ndarray, bool]]:
    """`(layer name, int8 weights with one output channel per row, whether onnxruntime quantized
    them from float)` for every Conv, Gemm and MatMul of a QDQ or QOperator graph that onnxruntime
    runs on int8 weights (uint8 weights run on kernels that widen to int16 first and cannot
    saturate)."""
    from onnx import helper

    fixed, dequantized = folded_tensors(model)
    producers = {output: node for node in model.graph.node for output in node.output}
    readers: dict[str, list[NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    found: list[tuple[str, np.ndarray, bool]] = []
    for node in model.graph.node:
        if node.op_type not in WEIGHT_INPUTS:
            continue
        index, rows_first = WEIGHT_INPUTS[node.op_type]
        name = node.input[index] if len(node.input) > index else ""
        weight = dequantized.get(name, fixed.get(name))
        from_float = weight is not None and weight.dtype == np.float32
        if weight is not None and from_float:
            quantized = quantized_by_onnxruntime(node, fixed, producers, readers)
            finite = bool(np.isfinite(weight).all())  # NaN has no int8 value to bound
            weight = onnxruntime_quantized(weight) if quantized and finite else None
        if weight is None or weight.dtype != np.int8 or weight.ndim < 2:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        rows_first = bool(attrs.get("transB", rows_first))  # Gemm's transB=1 stores B as (N, K)
        rows = weight if rows_first else np.moveaxis(weight, -1, 0)
        found.append((node.name or f"{node.op_type}_{len(found)}", rows, from_float))
    return found


def saturation_bounds(model: ModelProto) -> list[LayerBound]:
    """The bound of every int8 layer of a model, in graph order."""
    return [layer_bound(*layer) for layer in int8_weights(model)]


def cpu_model_and_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> tuple[str, set[str]]:
    """The processor model and its feature flags (x86 `flags`, Arm `Features`) from cpuinfo; the
    platform's processor string and no flags where there is none (not Linux)."""
    flags: set[str] | None = None
    model = ""
    try:
        for line in Path(cpuinfo).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("flags", "Features") and flags is None:
                flags = set(value.split())
            elif key == "model name" and not model:
                model = value.strip()
    except OSError:
        pass  # not Linux: the machine name still says x86 or Arm
    return model or platform.processor(), flags or set()


def read_cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, object]:
    """The host facts that decide onnxruntime's int8 kernel, for reports from two machines to be
    compared: machine, processor model and the flags of INT8_CPU_FLAGS that it has."""
    model, flags = cpu_model_and_flags(cpuinfo)
    return {
        "machine": platform.machine(),
        "model": model,
        "flags": {flag: flag in flags for flag in INT8_CPU_FLAGS},
        "int8_kernel_class": cpu_class(platform.machine(), flags),
    }


def cpu_class(machine: str, flags: set[str]) -> str:
    """How this CPU's onnxruntime accumulates int8 products: the one thing this module is about."""
    if machine.lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return f"{machine or 'unknown'}: int32 accumulation (no int16 pairs)"
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return "x86 with VNNI: int32 accumulation (vpdpbusd)"
    if "avx2" in flags:
        return "x86 AVX2 without VNNI: u8s8 pairs saturate in int16 (vpmaddubsw)"
    return "x86 without AVX2: SSE kernels, pairs saturate in int16 (pmaddubsw)"


def saturation_diagnosis(bounds: list[LayerBound], cpu: dict[str, object]) -> str:
    """One line for a failed int8 comparison: the CPU class, the layers that can saturate, the fix;
    empty when no layer can (then saturation is not the cause)."""
    over = [bound for bound in bounds if bound.can_saturate]
    if not over:
        return ""
    return (
        f"{len(over)} of {len(bounds)} int8 layers can saturate int16 pair sums on x86 AVX2 CPUs "
        f"without VNNI (first: {over[0].describe()}); this host: {cpu['model'] or cpu['machine']}, "
        f"{cpu['int8_kernel_class']}; {OVERFLOW_FIX_HINT}"
    )
