"""C99 for the int8 model, generated from the integer reference's steps (the lowered QDQ graph).

`model.c` holds the int8 weights as words in the kernels' layout, per-channel bias and float32
requantisation scale records (mantissa and shift), one layer record per step and
`edgekit_model_run`, which moves the input to HWC and runs the steps through `edgekit_kernels.h` in
one static arena planned here.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

import numpy as np
from edgekit.errors import ExportError
from edgekit.quantize.integer_reference import (
    ConvStep,
    FsqStep,
    IntegerReference,
    MaxPoolStep,
    PoolStep,
    Step,
    Tensor,
    float32_fields,
)

# beyond any q - zero_point of an 8-bit tensor: clipping FSQ thresholds to it keeps every comparison
THRESHOLD_LIMIT = 1 << 16
EXACT_ONLY = 255  # EDGEKIT_EXACT_ONLY: a scale the kernels' fast requantisation path does not take


@dataclass(frozen=True)
class ArenaPlan:
    """Where each tensor lives in the one static arena: tensor 0 is the input moved to HWC, tensor
    i + 1 the output of step i. In a chain only a step's input and output are alive, so they sit
    at opposite ends, and a convolution's im2col scratch goes in the gap between them."""

    offsets: tuple[int, ...]  # per tensor
    scratch_offsets: tuple[int, ...]  # per step; -1 for steps without scratch
    size: int
    scratch_bytes: int  # the largest convolution scratch (two int16 patches: 4 * k4)


def _align4(n: int) -> int:
    return -(-n // 4) * 4


def storage_offset(tensor: Tensor) -> int:
    """Stored int8 = q - offset: 128 for a uint8 tensor, 0 for int8."""
    if (tensor.lo, tensor.hi) == (-128, 127):
        return 0
    if (tensor.lo, tensor.hi) == (0, 255):
        return 128
    raise ExportError(
        f"mcu: a tensor quantized to {tensor.lo}..{tensor.hi} is not 8-bit; only int8/uint8 activations are supported"
    )


def k4(step: ConvStep) -> int:
    """A step's reduction length rounded up to a multiple of 4 (the kernels read four inputs a word)."""
    return -(-int(np.prod(step.weight.shape[1:])) // 4) * 4


def check_supported(reference: IntegerReference) -> None:
    """The generator runs chains of int8 steps; anything else is refused before a file is written."""
    for index, (step, source) in enumerate(zip(reference.steps, reference.sources, strict=True)):
        if source != index - 1:
            raise ExportError(
                f"mcu: step {step.name} does not read the step before it; only chains are supported"
            )
        storage_offset(step.input)
        storage_offset(step.output)
        if isinstance(step, ConvStep | PoolStep):
            scales = np.atleast_1d(step.scale)
            _, shift = float32_fields(np.where(scales > 0, scales, 1))
            if not ((shift >= 1) & (shift <= 62)).all() or not (scales > 0).all():
                raise ExportError(
                    f"mcu: {step.name} needs a requantisation scale outside 2^-39..2^23; retrain or recalibrate"
                )
        too_big = (
            isinstance(step, ConvStep)
            and (
                max(step.input.shape + step.output.shape) > 65535
                or max(*step.strides, *step.pads, *step.dilations, *step.weight.shape[2:]) > 255
            )
        ) or (
            isinstance(step, MaxPoolStep)
            and (
                max(step.input.shape + step.output.shape) > 65535
                or max(*step.strides, *step.kernel) > 255
            )
        )
        if too_big:
            raise ExportError(
                f"mcu: {step.name} has dimensions beyond the kernels' 16-bit sizes / 8-bit kernel fields"
            )
    if not isinstance(
        reference.steps[reference.output_steps[reference.output_names[1]]], ConvStep | PoolStep
    ):
        raise ExportError("mcu: pre_fsq must be produced by a convolution or pooling")


def plan_arena(reference: IntegerReference) -> ArenaPlan:
    """The arena of a model's steps (plan_sizes)."""
    sizes = [reference.input.size, *(step.output.size for step in reference.steps)]
    scratch = [4 * k4(step) if isinstance(step, ConvStep) else 0 for step in reference.steps]
    return plan_sizes(sizes, scratch)


def plan_sizes(sizes: list[int], scratch: list[int]) -> ArenaPlan:
    """Ping-pong at the two ends of the arena: tensor i at 0 for even i, at the end for odd i.
    `sizes`: the input's bytes then each step's output; `scratch`: each step's im2col bytes. Only
    shapes decide it, so `edgekit analyze` plans an untrained config's arena the same way."""
    low = [sizes[i] if i % 2 == 0 else sizes[i + 1] for i in range(len(scratch))]  # tensor at 0
    high = [sizes[i + 1] if i % 2 == 0 else sizes[i] for i in range(len(scratch))]
    body = _align4(
        max(
            _align4(lo) + extra + hi if extra else lo + hi
            for lo, extra, hi in zip(low, scratch, high, strict=True)
        )
    )
    # 4 spare bytes after the body: a one-row convolution's patch may read 3 bytes past its input
    size = body + 4  # (see edgekit_patch)
    offsets = tuple(0 if i % 2 == 0 else body - s for i, s in enumerate(sizes))
    scratch_offsets = tuple(
        _align4(lo) if extra else -1 for lo, extra in zip(low, scratch, strict=True)
    )
    return ArenaPlan(offsets, scratch_offsets, size, max(scratch))


def activation_floor(reference: IntegerReference) -> int:
    """RAM no plan can go below: the largest two activations alive together plus the input."""
    sizes = [step.output.size for step in reference.steps]
    return max([sizes[0], *(a + b for a, b in itertools.pairwise(sizes))]) + reference.input.size


def float_bits(value: float) -> str:
    """A float32's bit pattern as a C hex literal, so the C holds exactly Python's value."""
    return f"0x{struct.unpack('<I', struct.pack('<f', value))[0]:08x}u"


def c_array(ctype: str, name: str, items: list[str], per_line: int = 16) -> str:
    """A const array of already formatted C literals."""
    lines = [", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)]
    body = ",\n    ".join(lines) if lines else "0"
    return (
        f"static const {ctype} {name}[{max(len(items), 1)}] EDGEKIT_ALIGNED = {{\n    {body}\n}};\n"
    )


def literals(values: np.ndarray) -> list[str]:
    """Integers as C literals, flattened."""
    return [str(int(v)) for v in np.asarray(values).ravel()]


def weight_words(step: ConvStep) -> np.ndarray:
    """The kernels' weight layout as little-endian uint32 words: output channels in pairs (a zero
    channel pads an odd count); per pair and group of four inputs one word per channel. A row is
    flattened as (kh, kw, C), the order of an HWC patch, and zero padded to k4."""
    weight = step.weight.transpose(0, 2, 3, 1).reshape(step.weight.shape[0], -1)
    if (weight < -128).any() or (weight > 127).any():
        raise ExportError(f"mcu: {step.name} has weights outside int8")
    channels = weight.shape[0] + weight.shape[0] % 2
    padded = np.zeros((channels, k4(step)), np.int64)
    padded[: weight.shape[0], : weight.shape[1]] = weight
    groups = padded.reshape(channels // 2, 2, -1, 4)  # (pairs, 2, groups, 4)
    words = groups.transpose(0, 2, 1, 3).astype(np.int8).view(np.uint8)  # (pairs, groups, 2, 4)
    return words.reshape(-1, 4).copy().view("<u4").ravel()


def scale_fields(
    scale: np.ndarray, accumulator_bound: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernels' record of float32 scales `m * 2^-s` (edgekit_channel_t): `(mantissa,
    pre_shift, shift)`. The fast requantisation path needs 28 <= s <= 42 and accumulators proved
    below 2^min(24, 31 - pre_shift) (`accumulator_bound`, per scale); other scales are EXACT_ONLY."""
    mantissa, shift = float32_fields(np.atleast_1d(scale))
    pre_shift = np.maximum(35 - shift, 0)
    limit = np.left_shift(1, np.minimum(24, 31 - pre_shift).clip(0))
    fast = (shift >= 28) & (shift <= 42) & (np.atleast_1d(accumulator_bound) < limit)
    return (
        np.where(fast, mantissa << (7 - np.maximum(shift - 35, 0)).clip(0), mantissa),
        np.where(fast, pre_shift, EXACT_ONLY),
        shift,
    )


def accumulator_bound(step: ConvStep | PoolStep) -> np.ndarray:
    """The largest |accumulator| each output channel of `step` can reach, from its weights, bias
    and input range: what lets the kernels skip a runtime range check."""
    x = max(abs(step.input.lo - step.input.zero_point), abs(step.input.hi - step.input.zero_point))
    if isinstance(step, PoolStep):
        return np.array([x * step.input.shape[1] * step.input.shape[2]])
    weight = np.abs(step.weight - step.weight_zero_point.reshape(-1, 1, 1, 1))
    result: np.ndarray = np.abs(step.bias) + x * weight.reshape(len(weight), -1).sum(axis=1)
    return result


def _stored(tensor: Tensor, value: int) -> int:
    return value - storage_offset(tensor)


def _conv_source(index: int, step: ConvStep) -> str:
    name = f"step{index}"
    mantissa, pre_shift, shift = scale_fields(step.scale, accumulator_bound(step))
    zero_points = step.weight_zero_point
    c, h, w = step.input.shape
    o, oh, ow = step.output.shape
    kh, kw = step.weight.shape[2:]
    out_zero_point = _stored(step.output, step.output.zero_point)
    channels = ",\n    ".join(
        f"{{{int(b)}, {int(m)}u, {int(p)}, {int(f)}, {int(z)}}}"
        for b, m, p, f, z in zip(step.bias, mantissa, pre_shift, shift, zero_points, strict=True)
    )
    out_min = max(-128, out_zero_point) if step.relu else -128
    return (
        f"/* {index}: conv {step.name}: ({c},{h},{w}) -> ({o},{oh},{ow}), kernel {kh}x{kw}, "
        f"stride {step.strides}, pads {step.pads}, dilation {step.dilations}{', relu' if step.relu else ''} */\n"
        + c_array("uint32_t", f"{name}_weight", [f"0x{int(v):08x}u" for v in weight_words(step)], 8)
        + f"static const edgekit_channel_t {name}_channels[{o}] = {{\n    {channels}\n}};\n"
        f"static const edgekit_conv_t {name} = {{{name}_weight, {name}_channels, {int(bool(zero_points.any()))}, "
        f"{c}, {h}, {w}, {o}, {oh}, {ow}, {k4(step)}, {kh}, {kw}, {step.strides[0]}, {step.strides[1]}, "
        f"{step.dilations[0]}, {step.dilations[1]}, {step.pads[0]}, {step.pads[1]}, "
        f"{_stored(step.input, step.input.zero_point)}, {out_zero_point}, {out_min}, "
        f"{int(bool((pre_shift != EXACT_ONLY).all()))}}};\n"
    )


def _pool_source(index: int, step: PoolStep) -> str:
    mantissa, pre_shift, shift = scale_fields(step.scale, accumulator_bound(step))
    c, h, w = step.input.shape
    return (
        f"/* {index}: global average pool {step.name}: ({c},{h},{w}) -> ({c},1,1){', relu' if step.relu else ''} */\n"
        f"static const edgekit_pool_t step{index} = {{{c}, {h * w}, "
        f"{{0, {int(mantissa[0])}u, {int(pre_shift[0])}, {int(shift[0])}, 0}}, "
        f"{int(step.relu)}, {_stored(step.input, step.input.zero_point)}, "
        f"{_stored(step.output, step.output.zero_point)}}};\n"
    )


def _max_pool_source(index: int, step: MaxPoolStep) -> str:
    c, h, w = step.input.shape
    _, oh, ow = step.output.shape
    (kh, kw), (sh, sw) = step.kernel, step.strides
    out_min = max(-128, _stored(step.output, step.output.zero_point)) if step.relu else -128
    return (
        f"/* {index}: max pool {step.name}: ({c},{h},{w}) -> ({c},{oh},{ow}), kernel {kh}x{kw}, "
        f"stride {step.strides}{', relu' if step.relu else ''} */\n"
        f"static const edgekit_max_pool_t step{index} = "
        f"{{{c}, {w}, {oh}, {ow}, {kh}, {kw}, {sh}, {sw}, {out_min}}};\n"
    )


def fsq_source(index: int, step: FsqStep) -> str:
    """`static const edgekit_fsq_t step{index}`: per dimension its thresholds and stored codes."""
    name = f"step{index}"
    parts = [f"/* {index}: FSQ {step.name}: levels {','.join(map(str, step.levels))} */\n"]
    for d, (thresholds, values) in enumerate(zip(step.thresholds, step.code_values, strict=True)):
        clipped = np.clip(thresholds, -THRESHOLD_LIMIT, THRESHOLD_LIMIT)
        parts.append(c_array("int32_t", f"{name}_thresholds{d}", literals(clipped)))
        parts.append(
            c_array("int8_t", f"{name}_values{d}", literals(values - storage_offset(step.output)))
        )
    dims = len(step.levels)
    parts.append(c_array("uint8_t", f"{name}_levels", literals(np.array(step.levels))))
    parts.append(
        f"static const int32_t *const {name}_thresholds[{dims}] = {{"
        + ", ".join(f"{name}_thresholds{d}" for d in range(dims))
        + "};\n"
    )
    parts.append(
        f"static const int8_t *const {name}_values[{dims}] = {{"
        + ", ".join(f"{name}_values{d}" for d in range(dims))
        + "};\n"
    )
    parts.append(
        f"static const edgekit_fsq_t {name} = {{{dims}, {_stored(step.input, step.input.zero_point)}, "
        f"{name}_levels, {name}_thresholds, {name}_values}};\n"
    )
    return "".join(parts)


def _step_source(index: int, step: Step) -> str:
    if isinstance(step, ConvStep):
        return _conv_source(index, step)
    if isinstance(step, PoolStep):
        return _pool_source(index, step)
    if isinstance(step, MaxPoolStep):
        return _max_pool_source(index, step)
    return fsq_source(index, step)


def _call(index: int, step: Step, source: str, target: str, scratch: int) -> str:
    if isinstance(step, ConvStep):
        return f"edgekit_conv(&step{index}, {source}, {target}, arena + {scratch});"
    if isinstance(step, PoolStep):
        return f"edgekit_pool(&step{index}, {source}, {target});"
    if isinstance(step, MaxPoolStep):
        return f"edgekit_max_pool(&step{index}, {source}, {target});"
    return f"code = edgekit_fsq(&step{index}, {source}, {target});"


def model_macs(reference: IntegerReference) -> int:
    """Multiply-accumulates per window over the convolutions."""
    return sum(step.macs for step in reference.steps if isinstance(step, ConvStep))


def c_string(text: str) -> str:
    """A C string literal of `text`'s UTF-8 bytes: printable ASCII as is, the rest octal-escaped."""
    body = "".join(
        chr(b) if 32 <= b < 127 and chr(b) not in '"\\?' else f"\\{b:03o}" for b in text.encode()
    )
    return f'"{body}"'


def metadata_defines(metadata: dict[str, str]) -> str:
    """The ONNX model's deployment metadata as C defines, so the header alone says how to feed
    the model: classes, channels, normalisation, window, rate, row layout, version, config hash.
    Keys an older export lacks are left out."""
    lines = []

    def define(name: str, value: str) -> None:
        lines.append(f"#define EDGEKIT_{name} {value}")

    def listed(key: str) -> list[str]:
        return metadata[key].split(",") if metadata.get(key) else []

    if "edgekit_version" in metadata:
        define("VERSION", c_string(metadata["edgekit_version"]))
    if "edgekit_config_hash" in metadata:
        define("CONFIG_HASH", c_string(metadata["edgekit_config_hash"]))
    if classes := listed("edgekit_class_names"):
        define("NUM_CLASSES", str(len(classes)))
        define("CLASS_NAMES", "{" + ", ".join(map(c_string, classes)) + "}")
    if channels := listed("edgekit_channel_names"):
        define("NUM_CHANNELS", str(len(channels)))
        define("CHANNEL_NAMES", "{" + ", ".join(map(c_string, channels)) + "}")
    for key, name in (
        ("edgekit_channel_mean", "CHANNEL_MEAN"),
        ("edgekit_channel_std", "CHANNEL_STD"),
    ):
        if values := listed(key):
            define(name, "{" + ", ".join(f"{float(v)!r}f" for v in values) + "}")
    if "edgekit_window_length" in metadata:
        define("WINDOW_LENGTH", str(int(metadata["edgekit_window_length"])))
    if "edgekit_sample_rate_hz" in metadata:
        define("SAMPLE_RATE_HZ", f"{float(metadata['edgekit_sample_rate_hz'])!r}f")
    if "edgekit_normalization" in metadata:
        per_window = metadata["edgekit_normalization"] == "window"
        define(
            "NORMALIZE_PER_WINDOW", f"{int(per_window)} /* 0: (x - CHANNEL_MEAN) / CHANNEL_STD */"
        )
    if "edgekit_row_layout" in metadata:
        interleaved = metadata["edgekit_row_layout"] == "interleaved"
        define(
            "ROWS_INTERLEAVED", f"{int(interleaved)} /* 0: row 0 = first half, row 1 = second */"
        )
    return "\n".join(lines)


def input_dither_source(reference: IntegerReference) -> str:
    """The graph's input dither as a float32 table and `dithered`, the float32 add ONNX Add does
    (empty without one): edgekit_quantize_input then gives the host's integers bit for bit."""
    if reference.input_dither is None:
        return ""
    bits = [float_bits(float(v)) for v in reference.input_dither.ravel()]
    table = c_array("uint32_t", "input_dither_bits", bits, per_line=8)
    return f"""/* input dither (edgekit.models.network.dither_pattern), float32 bit patterns */
{table}
static float dithered(float x, int i) {{
    union {{ uint32_t bits; float value; }} dither = {{input_dither_bits[i]}};
    return x + dither.value;
}}

"""


def generate(reference: IntegerReference, model_sha256: bytes) -> dict[str, str]:
    """`model.h` and `model.c` for this model; raises ExportError for what the kernels cannot run."""
    check_supported(reference)
    plan = plan_arena(reference)
    steps = reference.steps
    logits_step = reference.output_steps[reference.output_names[0]]
    pre_fsq_step = reference.output_steps[reference.output_names[1]]
    logits, pre_fsq = reference.logits_tensor, reference.pre_fsq_tensor
    shape = reference.input.shape
    header = f"""/* Generated by `edgekit export --target mcu`; do not edit (re-export instead).
 * Model: export/onnx/model_int8.onnx, sha256 {model_sha256.hex()}
 * Stored activations are int8; a uint8 tensor is stored as q - 128.
 */
#ifndef EDGEKIT_MODEL_H
#define EDGEKIT_MODEL_H

#include <stdint.h>

#define EDGEKIT_INPUT_DIMS 3
#define EDGEKIT_INPUT_DIM0 {shape[0]}
#define EDGEKIT_INPUT_DIM1 {shape[1]}
#define EDGEKIT_INPUT_DIM2 {shape[2]}
#define EDGEKIT_INPUT_BYTES {reference.input.size}
#define EDGEKIT_INPUT_SCALE_BITS {float_bits(reference.input.scale)} /* float32 {reference.input.scale!r} */
#define EDGEKIT_INPUT_ZERO_POINT {reference.input.zero_point}
/* 1: the model quantizes its input with a fixed dither added (edgekit_quantize_input does it) */
#define EDGEKIT_INPUT_DITHERED {int(reference.input_dither is not None)}
#define EDGEKIT_OUTPUT_BYTES {logits.size}
#define EDGEKIT_OUTPUT_SCALE_BITS {float_bits(logits.scale)} /* float32 {logits.scale!r} */
#define EDGEKIT_OUTPUT_ZERO_POINT {logits.zero_point}
#define EDGEKIT_PRE_FSQ_BYTES {pre_fsq.size}
#define EDGEKIT_ARENA_BYTES {plan.size} /* activations and im2col scratch */
#define EDGEKIT_STEPS {len(steps)}
#define EDGEKIT_MACS {model_macs(reference)}u
#define EDGEKIT_MODEL_HASH {{{", ".join(f"0x{b:02x}" for b in model_sha256[:8])}}}

/* How to feed it: from the ONNX model's metadata (edgekit check prints the same) */
{metadata_defines({p.key: p.value for p in reference.model.metadata_props})}

typedef struct {{
    int8_t pre_fsq[EDGEKIT_PRE_FSQ_BYTES]; /* the FSQ input, stored int8 */
    uint32_t code;                         /* the FSQ code index */
}} edgekit_detail_t;

/* Run the model on one window of stored int8 input (C, 2, T/2) in C order; writes the logits
 * (EDGEKIT_OUTPUT_BYTES int8) and, if `detail` is not NULL, the FSQ input and code. */
void edgekit_model_run(const int8_t *input, int8_t *logits, edgekit_detail_t *detail);

/* Quantise normalised float input as ONNX QuantizeLinear does (round half to even, saturate). */
void edgekit_quantize_input(const float *x, int8_t *q);

#ifdef EDGEKIT_LAYERS
/* Step `step`'s output as stored in the arena (channels last; uint8 as q - 128) and its size, valid
 * in the EDGEKIT_PROFILE hook of that step: per-layer parity (edgekit parity --layers). */
const int8_t *edgekit_layer_output(int step);
int edgekit_layer_bytes(int step);
#endif

#endif /* EDGEKIT_MODEL_H */
"""
    calls = [f"    edgekit_to_hwc(input, arena, {shape[0]}, {shape[1] * shape[2]});"]
    for index, step in enumerate(steps):
        call = _call(
            index,
            step,
            f"arena + {plan.offsets[index]}",
            f"arena + {plan.offsets[index + 1]}",
            plan.scratch_offsets[index],
        )
        calls.append(f"    {call}")
        if index == pre_fsq_step:
            calls.append(
                f"    if (detail) memcpy(detail->pre_fsq, arena + {plan.offsets[index + 1]}, EDGEKIT_PRE_FSQ_BYTES);"
            )
        calls.append(f"    EDGEKIT_STEP_DONE({index});")
    input_offset = storage_offset(reference.input)
    source = f"""/* Generated by `edgekit export --target mcu`; do not edit (re-export instead). */
#include <stddef.h>
#include <string.h>

#include "edgekit_kernels.h"
#include "model.h"

#if defined(__GNUC__)
#define EDGEKIT_ALIGNED __attribute__((aligned(4)))
#else
#define EDGEKIT_ALIGNED
#endif

#ifdef EDGEKIT_PROFILE
void edgekit_profile_step(int step); /* called after each step (the footprint self-test) */
#define EDGEKIT_STEP_DONE(i) edgekit_profile_step(i)
#else
#define EDGEKIT_STEP_DONE(i) ((void)0)
#endif

{"".join(_step_source(i, s) + chr(10) for i, s in enumerate(steps))}
static int8_t arena[EDGEKIT_ARENA_BYTES] EDGEKIT_ALIGNED;

void edgekit_model_run(const int8_t *input, int8_t *logits, edgekit_detail_t *detail) {{
    uint32_t code = 0;
{chr(10).join(calls)}
    memcpy(logits, arena + {plan.offsets[logits_step + 1]}, EDGEKIT_OUTPUT_BYTES);
    if (detail) detail->code = code;
    (void)code;
}}

#ifdef EDGEKIT_LAYERS
static const int layer_offsets[EDGEKIT_STEPS] = {{{", ".join(str(o) for o in plan.offsets[1:])}}};
static const int layer_bytes[EDGEKIT_STEPS] = {{{", ".join(str(s.output.size) for s in steps)}}};
const int8_t *edgekit_layer_output(int step) {{ return arena + layer_offsets[step]; }}
int edgekit_layer_bytes(int step) {{ return layer_bytes[step]; }}
#endif

{input_dither_source(reference)}void edgekit_quantize_input(const float *x, int8_t *q) {{
    union {{ uint32_t bits; float value; }} scale = {{EDGEKIT_INPUT_SCALE_BITS}};
    for (int i = 0; i < EDGEKIT_INPUT_BYTES; i++) {{
        float v = {"dithered(x[i], i)" if reference.input_dither is not None else "x[i]"} / scale.value;
        if (v > 1000.0f) v = 1000.0f;
        if (v < -1000.0f || v != v) v = v != v ? 0.0f : -1000.0f;
        /* round half to even: adding and subtracting 1.5 * 2^23 leaves the nearest integer */
        volatile float shifted = v + 12582912.0f;
        int32_t r = (int32_t)(shifted - 12582912.0f) + EDGEKIT_INPUT_ZERO_POINT;
        r = r < {reference.input.lo} ? {reference.input.lo} : r > {reference.input.hi} ? {reference.input.hi} : r;
        q[i] = (int8_t)(r - {input_offset});
    }}
}}
"""
    return {"model.h": header, "model.c": source}
