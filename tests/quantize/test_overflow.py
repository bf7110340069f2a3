"""int16 pair saturation of x86 AVX2 int8 kernels: the bound, the readiness rule Q1, the emulation,
and the emulation against onnxruntime itself on an emulated AVX2 CPU without VNNI."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from edgekit.quantize.integer_reference import (
    ConvStep,
    IntegerReference,
    conv_accumulate,
    conv_accumulate_avx2,
)
from edgekit.quantize.overflow import (
    INT16_MAX,
    cpu_class,
    cpu_model_and_flags,
    layer_bound,
    read_cpu_flags,
    saturation_bounds,
    saturation_diagnosis,
    worst_pair_sums,
)
from edgekit.targets.onnx_readiness import overflow_rule
from hypothesis import given
from hypothesis import strategies as st

from .test_integer_reference import seven_bit

FIXTURES = Path(__file__).parent / "fixtures"


def conv_model(
    weights: list[np.ndarray],
    width: int = 12,
    signed_input: bool = True,
    input_zero_point: int = 3,
    stride: int = 1,
    pad: int = 2,
):
    """A QDQ chain of int8 convolutions (the edgekit export's form) with the given int8 weights;
    outputs `logits` and `pre_fsq` are the last convolution's quantized output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(value, name)

    input_type = np.int8 if signed_input else np.uint8
    channels, height = weights[0].shape[1], weights[0].shape[2]
    inits = [
        const("x_s", np.array(0.05, np.float32)),
        const("x_z", np.array(input_zero_point, input_type)),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "x_s", "x_z"], ["q0"]),
        helper.make_node("DequantizeLinear", ["q0", "x_s", "x_z"], ["d0"]),
    ]
    scale, current, size = 0.05, "d0", (height, width)
    for i, w in enumerate(weights):
        out = len(w)
        w_scale = np.full(out, 0.01, np.float32)
        y_scale = np.float32(scale * 0.01 * w[0].size * 60)  # keeps uint8 outputs off their bounds
        bias = np.arange(out, dtype=np.int32) * 37 - 50
        inits += [
            const(f"w{i}", w),
            const(f"ws{i}", w_scale),
            const(f"wz{i}", np.zeros(out, np.int8)),
            const(f"b{i}", bias),
            const(f"bs{i}", (scale * w_scale).astype(np.float32)),
            const(f"bz{i}", np.zeros(out, np.int32)),
            const(f"ys{i}", np.array(y_scale)),
            const(f"yz{i}", np.array(0, np.uint8)),
        ]
        kernel_pad = pad if w.shape[3] > 1 else 0
        size = (size[0] - w.shape[2] + 1, (size[1] + 2 * kernel_pad - w.shape[3]) // stride + 1)
        nodes += [
            helper.make_node("DequantizeLinear", [f"w{i}", f"ws{i}", f"wz{i}"], [f"wd{i}"], axis=0),
            helper.make_node("DequantizeLinear", [f"b{i}", f"bs{i}", f"bz{i}"], [f"bd{i}"], axis=0),
            helper.make_node(
                "Conv",
                [current, f"wd{i}", f"bd{i}"],
                [f"c{i}"],
                name=f"conv{i}",
                strides=[1, stride],
                pads=[0, kernel_pad, 0, kernel_pad],
            ),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
            helper.make_node("QuantizeLinear", [f"r{i}", f"ys{i}", f"yz{i}"], [f"q{i + 1}"]),
            helper.make_node("DequantizeLinear", [f"q{i + 1}", f"ys{i}", f"yz{i}"], [f"d{i + 1}"]),
        ]
        scale, current = float(y_scale), f"d{i + 1}"
    nodes[-1].output[0] = "pre_fsq"
    nodes.append(helper.make_node("Flatten", ["pre_fsq"], ["logits"]))
    out = len(weights[-1])
    graph = helper.make_graph(
        nodes,
        "convs",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, height, width])],
        [
            helper.make_tensor_value_info(
                "logits", TensorProto.FLOAT, [1, out * size[0] * size[1]]
            ),
            helper.make_tensor_value_info("pre_fsq", TensorProto.FLOAT, [1, out, *size]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.metadata_props.add(key="edgekit_fsq_levels", value="8,6,5")
    onnx.checker.check_model(model)
    return model


def full_range(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """int8 weights at the edges of the 8-bit range, mostly one sign per row: pairs that saturate."""
    magnitude = rng.integers(90, 128, size=shape)
    sign = np.where(rng.random(shape) < 0.8, 1, -1) * np.where(
        np.arange(shape[0]) % 2, 1, -1
    ).reshape(-1, 1, 1, 1)
    return (magnitude * sign).astype(np.int8)


def high_inputs(
    rng: np.random.Generator, shape: tuple[int, ...], offset: int = 0, zero_point: int = 3
) -> np.ndarray:
    """Float windows whose quantization (scale 0.05; int8, or uint8 with offset 128) sits mostly
    near the top of the range."""
    q = np.where(
        rng.random(shape) < 0.7, 127 - rng.integers(0, 8, shape), rng.integers(-128, 128, shape)
    )
    return ((q + offset - zero_point) * 0.05).astype(np.float32)


# ------------------------------------------------------------------ the bound


def test_worst_pair_is_the_two_largest_weights_of_one_sign() -> None:
    rows = np.array(
        [[127, 0, 0, 0], [127, 1, -5, 0], [127, 2, 0, 0], [-64, -64, 60, 3], [-65, -64, 0, 0]]
    )
    sums = worst_pair_sums(rows.astype(np.int8))
    assert sums.tolist() == [255 * 127, 255 * 128, 255 * 129, 255 * 128, 255 * 129]
    assert (sums > INT16_MAX).tolist() == [False, False, True, False, True]


def test_a_single_weight_pairs_with_zero_and_cannot_saturate() -> None:
    assert worst_pair_sums(np.array([[-128], [127]], np.int8)).tolist() == [255 * 128, 255 * 127]


@given(st.lists(st.integers(-128, 127), min_size=2, max_size=12), st.randoms())
def test_the_bound_does_not_depend_on_the_order_of_the_reduction_axis(row: list[int], rnd) -> None:
    shuffled = list(row)
    rnd.shuffle(shuffled)
    # each operand is any of 0..255: a pair's extremes take 255 on one sign's weights, 0 on the other's
    pairs = [(a, b) for i, a in enumerate(row) for b in row[i + 1 :]]
    highest = max(255 * (max(a, 0) + max(b, 0)) for a, b in pairs)
    lowest = min(255 * (min(a, 0) + min(b, 0)) for a, b in pairs)
    expected = max(highest, -lowest)
    assert worst_pair_sums(np.array([row, shuffled], np.int8)).tolist() == [expected, expected]


def test_a_layer_that_can_saturate_is_described_with_its_numbers() -> None:
    bound = layer_bound("conv3", np.array([[100, 100, -3], [1, 2, 3]], np.int8))
    assert bound.describe() == (
        "conv3: worst pair 255 x w0 + 255 x w1 = 51000 > 32767 in 1 of 2 output channels "
        "(max |w| 100, safe <= 63)"
    )
    assert not bound.to_dict()["quantized_by_onnxruntime"]
    from_float = layer_bound("fc", np.array([[127, 127]], np.int8), quantized_by_onnxruntime=True)
    assert from_float.to_dict()["quantized_by_onnxruntime"]
    assert from_float.describe() == (
        "fc: worst pair 255 x w0 + 255 x w1 = 64770 > 32767 in 1 of 1 output channels "
        "(max |w| 127, safe <= 63); its weights are float in the file and onnxruntime quantizes "
        "them to 8 bits: store them as int8 behind a DequantizeLinear"
    )


def test_seven_bit_weights_never_reach_the_int16_limit() -> None:
    bound = layer_bound("conv", np.full((4, 16, 1, 5), 63, np.int8))
    assert bound.worst_pair_sum == 2 * 255 * 63 <= INT16_MAX and not bound.can_saturate
    over = layer_bound(
        "conv", np.concatenate([np.full((3, 2), 63), np.full((1, 2), 65)]).astype(np.int8)
    )
    assert over.can_saturate and (over.channels_over, over.channels) == (1, 4)


def test_the_module_loads_neither_onnx_nor_torch() -> None:
    """The config imports it (for OVERFLOW_FIXES), so every command would pay for what it loads."""
    code = (
        "import sys, edgekit.quantize.overflow; print(sorted({'onnx', 'torch'} & set(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------ which layers are int8


def weight_graph(nodes: list, initializers: dict[str, np.ndarray]):
    """A model of `nodes` over int8 or float initializers; only read, never run."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        nodes,
        "weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(value, name) for name, value in initializers.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


# columns are a MatMul's output channels: column 0 pairs 100 + 100 (over), column 1 -100 - 100
# (over), column 2 is small; read as rows, no row could saturate
K_BY_N = np.array([[100, -100, 1], [100, -100, 0], [0, 0, 2], [0, 0, 0]], np.int8)


def bound_facts(model) -> list[tuple[str, int, int, int]]:
    return [
        (b.layer, b.worst_pair_sum, b.channels_over, b.channels) for b in saturation_bounds(model)
    ]


def test_matmul_and_gemm_weights_are_read_by_output_channel() -> None:
    from onnx import helper

    dq = helper.make_node("DequantizeLinear", ["w_q", "s"], ["w"])
    scale = {"s": np.array(0.1, np.float32)}
    over = 255 * 200
    for op, weight, attributes in [
        ("MatMul", K_BY_N, {}),
        ("Gemm", K_BY_N, {}),
        ("Gemm", K_BY_N, {"transB": 0}),
        ("Gemm", K_BY_N.T.copy(), {"transB": 1}),
    ]:
        layer = helper.make_node(op, ["x", "w"], ["y"], name="fc", **attributes)
        model = weight_graph([dq, layer], {"w_q": weight, **scale})
        assert bound_facts(model) == [("fc", over, 2, 3)], (op, attributes)
    # a batched MatMul's weight (B, K, N): still N output channels, each over every batch's K
    stacked = np.stack([K_BY_N, np.zeros_like(K_BY_N)])
    batched = weight_graph(
        [dq, helper.make_node("MatMul", ["x", "w"], ["y"], name="bmm")], {"w_q": stacked, **scale}
    )
    assert bound_facts(batched) == [("bmm", over, 2, 3)]


def test_integer_ops_take_their_weights_from_their_own_inputs() -> None:
    from onnx import helper

    conv = K_BY_N.T.reshape(3, 4, 1, 1).copy()  # rows first: 3 output channels
    qlinear = ["x", "xs", "xz", "w_q", "ws", "wz", "ys", "yz"]
    for op, inputs, weight in [
        ("ConvInteger", ["x", "w_q"], conv),
        ("QLinearConv", qlinear, conv),
        ("MatMulInteger", ["x", "w_q"], K_BY_N),
        ("QLinearMatMul", qlinear, K_BY_N),
    ]:
        model = weight_graph([helper.make_node(op, inputs, ["y"], name="q")], {"w_q": weight})
        assert bound_facts(model) == [("q", 255 * 200, 2, 3)], op


def test_weights_held_in_constant_nodes_are_found() -> None:
    from onnx import helper, numpy_helper

    constant = helper.make_node(
        "Constant", [], ["w_q"], value=numpy_helper.from_array(K_BY_N.T.reshape(3, 4, 1, 1).copy())
    )
    nodes = [
        constant,
        helper.make_node("DequantizeLinear", ["w_q", "s"], ["w"]),
        helper.make_node("Conv", ["x", "w"], ["y"], name="conv"),
    ]
    model = weight_graph(nodes, {"s": np.array(0.1, np.float32)})
    assert bound_facts(model) == [("conv", 255 * 200, 2, 3)]


def test_layers_without_stored_int8_weights_are_not_int8_layers() -> None:
    """Weights cast to float (a float kernel runs), uint8, 1-D, computed, or a node that lacks its
    weight input (a malformed file `edgekit check` is given) are no int8 layer."""
    from onnx import helper

    cast = helper.make_node("Cast", ["w_q"], ["w"], to=1)
    unnamed = [
        [cast, helper.make_node("Conv", ["x", "w"], ["y"])],
        [helper.make_node("MatMul", ["x", "w_u8"], ["y"])],
        [helper.make_node("MatMul", ["x", "w_1d"], ["y"])],
        [helper.make_node("MatMul", ["x", "x"], ["y"])],
        [helper.make_node("QLinearConv", ["x", "xs"], ["y"])],
        [helper.make_node("Conv", ["x"], ["y"])],
    ]
    weights = {
        "w_q": K_BY_N,
        "w_u8": K_BY_N.astype(np.uint8),
        "w_1d": np.array([127, 127], np.int8),
    }
    for nodes in unnamed:
        assert saturation_bounds(weight_graph(nodes, weights)) == [], nodes[-1].op_type
    # a layer without int8 weights does not stop the search for the ones after it
    later = [*unnamed[1], helper.make_node("MatMul", ["y", "w_q"], ["z"], name="fc")]
    assert [b.layer for b in saturation_bounds(weight_graph(later, weights))] == ["fc"]
    two = weight_graph(
        [
            helper.make_node("MatMul", ["x", "w_q"], ["h"]),
            helper.make_node("Gemm", ["h", "w_q"], ["y"]),
        ],
        weights,
    )
    assert [b.layer for b in saturation_bounds(two)] == ["MatMul_0", "Gemm_1"]  # unnamed: op, index


# ------------------------------------------------------------------ the weights onnxruntime multiplies

RNG_WEIGHT = np.random.default_rng(7).integers(-127, 128, (8, 4, 1, 3)).astype(np.int8)
INT8_ZERO = np.array(0, np.int8)
FLOAT_WEIGHT = np.random.default_rng(8).normal(0.0, 0.3, (8, 4, 1, 3)).astype(np.float32)
# a range in which -0.35063225 / scale and -0.35063225 * (1 / scale) round apart in float32:
# onnxruntime divides
ROUNDING_TIES = np.clip(FLOAT_WEIGHT, -1.3, 0.6)
ROUNDING_TIES[0, 0, 0, :3] = [-1.3102272, 0.6125948, -0.35063225]


def qdq_layer(
    op: str,
    weight_nodes: list,
    initializers: dict,
    quantized_output: bool = True,
    bias: str = "",
    layer_input: str = "xd",
    relu: bool = False,
    second_reader: bool = False,
    after_relu: str = "",
    output_zero_point: np.ndarray | None = INT8_ZERO,
):
    """x → Q → DQ → `op` over the weight `wd` that `weight_nodes` compute (→ Relu (→ `after_relu`))
    (→ Q → DQ): the forms in which other tools hand onnxruntime a quantized layer. A zero point of
    None leaves the output QuantizeLinear without one (uint8, 0); a vector quantizes per channel."""
    from onnx import TensorProto, helper, numpy_helper

    scales = {
        "xs": np.array(0.05, np.float32),
        "xz": np.array(0, np.int8),
        "ws": np.array(0.01, np.float32),
        "wz": np.array(0, np.int8),
        "ys": np.full(np.shape(output_zero_point), 0.1, np.float32),
        **({} if output_zero_point is None else {"yz": output_zero_point}),
    }
    conv = op == "Conv"
    layer_output = "h" if quantized_output or relu else "y"
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        *weight_nodes,
        helper.make_node(
            op, [layer_input, "wd", *([bias] if bias else [])], [layer_output], name="layer"
        ),
    ]
    if relu:
        nodes.append(helper.make_node("Relu", ["h"], ["hr" if quantized_output else "y"]))
    if after_relu:
        nodes[-1].output[0] = "ha"
        nodes.append(helper.make_node(after_relu, ["ha"], ["hr"]))
    if quantized_output:
        output_scale = ["ys", *([] if output_zero_point is None else ["yz"])]
        axis = {"axis": 1} if np.ndim(output_zero_point) == 1 else {}
        nodes += [
            helper.make_node(
                "QuantizeLinear", ["hr" if relu else "h", *output_scale], ["hq"], **axis
            ),
            helper.make_node("DequantizeLinear", ["hq", *output_scale], ["y"], **axis),
        ]
    if (
        second_reader
    ):  # the layer's (or its Relu's) output also read by an Add to the graph's output
        nodes[-1].output[0] = "yq"
        nodes.append(helper.make_node("Add", ["yq", "hr" if relu else "h"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "layer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 16] if conv else [3, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 2, 14] if conv else [3, 8])],
        [numpy_helper.from_array(v, k) for k, v in {**scales, **initializers}.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def onnxruntime_int8_weights(model, tmp_path: Path) -> list[tuple[str, np.ndarray]]:
    """What onnxruntime's optimiser hands its int8 kernels: the int8 weight of each fused layer of
    its optimised graph, one output channel per row."""
    import onnx
    from onnx import helper, numpy_helper

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    optimised = onnx.load(str(tmp_path / "optimised.onnx"))
    stored = {t.name: numpy_helper.to_array(t) for t in optimised.graph.initializer}
    fused = {
        "QLinearConv": (3, True),
        "ConvInteger": (1, True),
        "QLinearMatMul": (3, False),
        "MatMulIntegerToFloat": (1, False),
        "QGemm": (3, False),
        "MatMulInteger": (1, False),
    }
    found = []
    for node in optimised.graph.node:
        if node.op_type in fused:
            index, rows_first = fused[node.op_type]
            weight = stored[node.input[index]]
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            rows_first = bool(attrs.get("transB", rows_first))
            found.append((node.name, weight if rows_first else np.moveaxis(weight, -1, 0)))
    return found


def weight_forms() -> dict[str, tuple[str, list, dict, dict]]:
    """Each form of a layer's weight: (op, weight nodes, initializers, layer options)."""
    from onnx import helper

    def dq(source: str, output: str = "wd", **attrs) -> object:
        return helper.make_node("DequantizeLinear", [source, "ws", "wz"], [output], **attrs)

    w, fw = RNG_WEIGHT, FLOAT_WEIGHT
    float_weight = helper.make_node("Identity", ["fw"], ["wd"])  # the layer reads `fw` as it is
    flat = {"w": w.reshape(8, 12), "shape": np.array([8, 4, 1, 3])}
    transposed = {"w": np.ascontiguousarray(w.transpose(1, 0, 2, 3))}
    perm = {"perm": [1, 0, 2, 3]}
    per_axis = {
        "w": transposed["w"],
        "wsa": np.linspace(0.01, 0.02, 8).astype(np.float32),
        "wza": np.zeros(8, np.int8),
    }
    fc = np.random.default_rng(9).normal(0.0, 0.3, (8, 12)).astype(np.float32)
    return {
        "dequantized": ("Conv", [dq("w")], {"w": w}, {}),
        "transposed-then-dequantized": (
            "Conv",
            [helper.make_node("Transpose", ["w"], ["t"], **perm), dq("t")],
            transposed,
            {},
        ),
        "clipped-then-dequantized": (
            "Conv",
            [helper.make_node("Clip", ["w", "lo", "hi"], ["c"]), dq("c")],
            {"w": w, "lo": np.array(-100, np.int8), "hi": np.array(100, np.int8)},
            {},
        ),
        "negated-then-dequantized": (
            "Conv",
            [helper.make_node("Neg", ["w"], ["n"]), dq("n")],
            {"w": -w},
            {},
        ),
        "second-half-of-a-split-then-dequantized": (
            "Conv",
            [helper.make_node("Split", ["w2"], ["spare", "s"], axis=0), dq("s")],
            {"w2": np.concatenate([np.zeros_like(w), w])},
            {},
        ),
        "reshaped-then-dequantized": (
            "Conv",
            [helper.make_node("Reshape", ["w", "shape"], ["r"]), dq("r")],
            flat,
            {},
        ),
        "quantized-float-weights": (
            "Conv",
            [helper.make_node("QuantizeLinear", ["fw", "ws", "wz"], ["q"]), dq("q")],
            {"fw": fw},
            {},
        ),
        "dequantized-then-identity": (
            "Conv",
            [dq("w", "d"), helper.make_node("Identity", ["d"], ["wd"])],
            {"w": w},
            {},
        ),
        "dequantized-then-transposed": (
            "Conv",
            [dq("w", "d"), helper.make_node("Transpose", ["d"], ["wd"], **perm)],
            transposed,
            {},
        ),
        "per-channel-then-transposed": (
            "Conv",
            [
                helper.make_node("DequantizeLinear", ["w", "wsa", "wza"], ["d"], axis=1),
                helper.make_node("Transpose", ["d"], ["wd"], **perm),
            ],
            per_axis,
            {},
        ),
        "dequantized-then-reshaped": (
            "Conv",
            [dq("w", "d"), helper.make_node("Reshape", ["d", "shape"], ["wd"])],
            flat,
            {},
        ),
        "dequantized-then-unsqueezed": (
            "Conv",
            [dq("w", "d"), helper.make_node("Unsqueeze", ["d", "axis"], ["wd"])],
            {"w": w.reshape(8, 4, 3), "axis": np.array([2])},
            {},
        ),
        "float": ("Conv", [float_weight], {"fw": fw}, {}),
        "float-positive": (
            "Conv",
            [float_weight],
            {"fw": np.abs(fw)},
            {},
        ),
        "int8-cast-to-float": (
            "Conv",
            [helper.make_node("Cast", ["w"], ["wd"], to=1)],
            {"w": w},
            {},
        ),
        "float-with-float-bias": (
            "Conv",
            [float_weight],
            {"fw": fw, "b": np.linspace(-1, 1, 8).astype(np.float32)},
            {"bias": "b"},
        ),
        "float-with-dequantized-bias": (
            "Conv",
            [
                float_weight,
                helper.make_node("DequantizeLinear", ["bq", "bs"], ["b"]),
            ],
            {"fw": fw, "bq": np.arange(8, dtype=np.int32), "bs": np.array(0.0005, np.float32)},
            {"bias": "b"},
        ),
        "float-then-relu-quantized-from-the-lowest-int8": (
            "Conv",
            [float_weight],
            {"fw": fw},
            {"relu": True, "output_zero_point": np.array(-128, np.int8)},
        ),
        "float-then-relu-quantized-from-uint8-zero": (
            "Conv",
            [float_weight],
            {"fw": fw},
            {"relu": True, "output_zero_point": None},
        ),
        "float-then-relu-quantized-from-int8-zero": (
            "Conv",
            [float_weight],
            {"fw": fw},
            {"relu": True},
        ),
        "float-then-relu-not-quantized": (
            "Conv",
            [float_weight],
            {"fw": fw},
            {"relu": True, "quantized_output": False},
        ),
        "random-normal": (
            "Conv",
            [helper.make_node("RandomNormal", [], ["wd"], shape=[8, 4, 1, 3], seed=1.0)],
            {},
            {},
        ),
        "random-uniform-like": (
            "Conv",
            [helper.make_node("RandomUniformLike", ["fw"], ["wd"], seed=1.0)],
            {"fw": fw},
            {},
        ),
        "float-rounding-ties": (
            "Conv",
            [float_weight],
            {"fw": ROUNDING_TIES},
            {},
        ),
        "float-input-scaled-not-dequantized": (
            "Conv",
            [
                helper.make_node("Mul", ["x", "xs"], ["xm"]),
                float_weight,
            ],
            {"fw": fw},
            {"layer_input": "xm"},
        ),
        "float-input-dequantized-per-channel": (
            "Conv",
            [
                helper.make_node("QuantizeLinear", ["x", "xsc", "xzc"], ["xqc"], axis=1),
                helper.make_node("DequantizeLinear", ["xqc", "xsc", "xzc"], ["xdc"], axis=1),
                float_weight,
            ],
            {"fw": fw, "xsc": np.full(4, 0.05, np.float32), "xzc": np.zeros(4, np.int8)},
            {"layer_input": "xdc"},
        ),
        "float-input-dequantized-with-a-computed-scale": (
            "Conv",
            [
                helper.make_node("ReduceMax", ["x"], ["xsd"], keepdims=0),
                helper.make_node("QuantizeLinear", ["x", "xsd", "xz"], ["xqd"]),
                helper.make_node("DequantizeLinear", ["xqd", "xsd", "xz"], ["xdd"]),
                float_weight,
            ],
            {"fw": fw},
            {"layer_input": "xdd"},
        ),
        "gemm-float-with-2d-bias": (
            "Gemm",
            [float_weight],
            {"fw": fc.T.copy(), "c": np.ones((1, 8), np.float32)},
            {"bias": "c"},
        ),
        "float-output-also-read-by-another-op": (
            "Conv",
            [float_weight],
            {"fw": fw},
            {"second_reader": True},
        ),
        "float-input-dequantized-per-channel-without-zero-point": (
            "Conv",
            [
                helper.make_node("QuantizeLinear", ["x", "xsc"], ["xqc"], axis=1),
                helper.make_node("DequantizeLinear", ["xqc", "xsc"], ["xdc"], axis=1),
                float_weight,
            ],
            {"fw": fw, "xsc": np.full(4, 0.05, np.float32)},
            {"layer_input": "xdc"},
        ),
        "float-input-offset-not-dequantized": (
            "Conv",
            [
                helper.make_node("Add", ["x", "xs"], ["xa"]),
                float_weight,
            ],
            {"fw": fw},
            {"layer_input": "xa"},
        ),
        "gemm-float-with-scalar-bias": (
            "Gemm",
            [float_weight],
            {"fw": fc.T.copy(), "c": np.array(1.0, np.float32)},
            {"bias": "c"},
        ),
        "float-then-relu-also-read-by-another-op": (
            "Conv",
            [float_weight],
            {"fw": fw},
            {"relu": True, "second_reader": True, "output_zero_point": np.array(-128, np.int8)},
        ),
        "float-then-relu-then-sigmoid-quantized": (
            "Conv",
            [float_weight],
            {"fw": fw},
            {"relu": True, "after_relu": "Sigmoid", "output_zero_point": np.array(-128, np.int8)},
        ),
        "float-then-relu-then-abs-quantized": (
            "Conv",
            [float_weight],
            {"fw": fw},
            {"relu": True, "after_relu": "Abs", "output_zero_point": np.array(-128, np.int8)},
        ),
        "float-then-relu-quantized-per-channel-from-the-lowest-int8": (
            "Conv",
            [float_weight],
            {"fw": fw},
            {"relu": True, "output_zero_point": np.full(8, -128, np.int8)},
        ),
        "float-output-not-quantized": (
            "Conv",
            [float_weight],
            {"fw": fw},
            {"quantized_output": False},
        ),
        "float-input-not-dequantized": (
            "Conv",
            [float_weight],
            {"fw": fw},
            {"layer_input": "x"},
        ),
        "gemm-float": (
            "Gemm",
            [float_weight],
            {"fw": fc.T.copy()},
            {},
        ),
        "gemm-dequantized": ("Gemm", [dq("w")], {"w": w.reshape(8, 12).T.copy()}, {}),
        "matmul-float": (
            "MatMul",
            [float_weight],
            {"fw": fc.T.copy()},
            {},
        ),
        "matmul-dequantized": ("MatMul", [dq("w")], {"w": w.reshape(8, 12).T.copy()}, {}),
    }


# the forms onnxruntime runs on a float kernel (the others on an int8 one)
RUN_IN_FLOAT = {
    "random-normal",
    "random-uniform-like",
    "float-input-scaled-not-dequantized",
    "float-input-dequantized-per-channel",
    "float-input-dequantized-per-channel-without-zero-point",
    "float-output-also-read-by-another-op",
    "float-input-offset-not-dequantized",
    "gemm-float-with-scalar-bias",
    "float-then-relu-also-read-by-another-op",
    "float-then-relu-then-sigmoid-quantized",
    "float-then-relu-then-abs-quantized",
    "float-then-relu-quantized-per-channel-from-the-lowest-int8",
    "gemm-float-with-2d-bias",
    "dequantized-then-reshaped",
    "dequantized-then-unsqueezed",
    "float-with-dequantized-bias",
    "float-then-relu-quantized-from-int8-zero",
    "float-then-relu-not-quantized",
    "float-output-not-quantized",
    "float-input-not-dequantized",
    "matmul-float",
}


@pytest.mark.parametrize("form", list(weight_forms()))
def test_int8_weights_are_those_onnxruntime_multiplies(form: str, tmp_path: Path) -> None:
    """Q1 bounds the integers onnxruntime's optimiser hands its int8 kernels, whatever form the file
    gives them in: folded through Transpose, Clip, Reshape or QuantizeLinear, moved through a
    Transpose after a DequantizeLinear, quantized by onnxruntime itself from float weights; and no
    layer that it runs in float."""
    from edgekit.quantize.overflow import int8_weights

    op, weight_nodes, initializers, options = weight_forms()[form]
    model = qdq_layer(op, weight_nodes, initializers, **options)
    expected = onnxruntime_int8_weights(model, tmp_path)
    assert bool(expected) == (form not in RUN_IN_FLOAT), "onnxruntime's optimiser changed"
    found = int8_weights(model)
    assert [name for name, _, _ in found] == [name for name, _ in expected], form
    for (_, rows, from_float), (_, ort_rows) in zip(found, expected, strict=True):
        np.testing.assert_array_equal(rows, ort_rows, err_msg=form)
        assert from_float == form.startswith(("float", "gemm-float", "int8-cast")), form


def test_malformed_nodes_neither_fail_nor_print(recwarn) -> None:
    """Nodes without inputs or outputs, and values the reference computes with NumPy warnings (a
    zero scale), in a file `edgekit check` is given: no exception, no warning line."""
    from onnx import helper

    nodes = [
        helper.make_node("DequantizeLinear", [], ["a"]),
        helper.make_node("Transpose", [], ["b"]),
        helper.make_node("DequantizeLinear", ["w", "zero"], []),
        helper.make_node("QuantizeLinear", ["fw", "zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "zero"], ["wd"]),
        helper.make_node("Conv", ["x", "wd"], ["y"], name="conv"),
        helper.make_node("Split", ["w"], ["", "half"], axis=0),  # an unnamed output is no tensor
        helper.make_node("MatMul", ["x"], ["z"], name="no weight input"),
        helper.make_node("DequantizeLinear", ["x", "one"], ["xd"]),
        helper.make_node("Conv", ["xd", "fw"], ["c"], name="relu then a scale-less quantizer"),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("QuantizeLinear", ["r"], ["rq"]),
        helper.make_node("DequantizeLinear", ["x"], ["xd1"]),
        helper.make_node("Conv", ["xd1", "fw"], ["c1"], name="input without a scale"),
        helper.make_node("QuantizeLinear", ["c1", "one"], ["c1q"]),
        helper.make_node("Conv", ["a", "fw"], ["c0"], name="input without inputs"),
        helper.make_node("QuantizeLinear", ["c0", "one"], ["c0q"]),
    ]
    weights = {
        "w": K_BY_N,
        "fw": FLOAT_WEIGHT,
        "zero": np.array(0.0, np.float32),
        "one": np.array(1.0, np.float32),
    }
    bounds = saturation_bounds(weight_graph(nodes, weights))
    assert [str(w.message) for w in recwarn] == []
    # weights quantized with scale 0 are uint8 (no zero point given): no layer; a QuantizeLinear
    # without its scale is read as one without a zero point, a DequantizeLinear without its scale
    # as one whose scale is computed
    expected = ["relu then a scale-less quantizer", "input without a scale", "input without inputs"]
    assert [bound.layer for bound in bounds] == expected


@pytest.mark.parametrize("reduce_range", [False, True])
def test_onnxruntimes_own_quantizer_needs_reduce_range_as_the_fix_says(
    reduce_range: bool, tmp_path: Path
) -> None:
    """A model quantized by onnxruntime's quantize_static: 8-bit weights can saturate, and
    reduce_range=True (the hint's fix for models quantized elsewhere) gives weights Q1 passes."""
    import onnx
    from edgekit.quantize.overflow import OVERFLOW_FIX_HINT
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import CalibrationDataReader, QuantType, quantize_static

    weight = numpy_helper.from_array(FLOAT_WEIGHT, "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
        "float",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 2, 14])],
        [weight],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "f.onnx"
    )

    class Windows(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter(
                [{"x": rng.normal(size=(1, 4, 2, 16)).astype(np.float32)} for _ in range(4)]
            )

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    quantize_static(
        tmp_path / "f.onnx",
        tmp_path / "q.onnx",
        Windows(),
        reduce_range=reduce_range,
        weight_type=QuantType.QInt8,
    )
    rule = overflow_rule(onnx.load(tmp_path / "q.onnx"))
    assert [layer["layer"] for layer in rule["layers"]] == ["conv"]
    assert rule["status"] == ("pass" if reduce_range else "warn")
    assert "reduce_range=True" in OVERFLOW_FIX_HINT


def test_a_dequantized_weight_counts_even_where_onnxruntime_runs_the_layer_in_float(
    tmp_path: Path,
) -> None:
    """A Conv without a QuantizeLinear after it runs in float on onnxruntime; Q1 still bounds its
    int8 weights (it may warn about a float layer, it never misses an int8 one)."""
    from onnx import helper

    dequantize = [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"])]
    model = qdq_layer("Conv", dequantize, {"w": RNG_WEIGHT}, quantized_output=False)
    assert onnxruntime_int8_weights(model, tmp_path) == []
    assert bound_facts(model)[0][0] == "layer"


@pytest.mark.parametrize(
    "op", ["RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Bernoulli"]
)
def test_random_ops_are_never_folded(op: str) -> None:
    """onnxruntime folds no random op, whatever its inputs: a weight drawn at run time has no bound."""
    from edgekit.quantize.overflow import folded_tensors
    from onnx import helper

    inputs = [] if op in ("RandomNormal", "RandomUniform") else ["p"]
    shape = {} if inputs else {"shape": [2, 2]}
    node = helper.make_node(op, inputs, ["r"], **shape)
    after = helper.make_node("Identity", ["p"], ["q"])  # folding goes on after it
    graph = weight_graph([node, after], {"p": np.full((2, 2), 0.5, np.float32)})
    fixed, _ = folded_tensors(graph)
    assert "r" not in fixed and "q" in fixed


def test_a_node_the_reference_cannot_compute_fixes_no_value() -> None:
    """A malformed node (a Transpose's axis out of range) in a file `edgekit check` is given:
    its output is no constant, so the layer's bias is unknown and onnxruntime would not quantize
    its float weights."""
    from onnx import helper

    nodes = [
        helper.make_node("Identity", ["fw"], ["wd"]),
        helper.make_node("Transpose", ["b0"], ["b"], perm=[3]),
    ]
    model = qdq_layer("Conv", nodes, {"fw": FLOAT_WEIGHT, "b0": np.ones(8, np.float32)}, bias="b")
    assert saturation_bounds(model) == []


def test_float16_weights_are_not_quantized_by_onnxruntime(tmp_path: Path) -> None:
    """onnxruntime quantizes float32 weights only; a float16 layer (DequantizeLinear-19 gives
    float16) runs in float."""
    from onnx import TensorProto, helper, numpy_helper

    scales = {
        "s": np.array(0.05, np.float16),
        "z": INT8_ZERO,
        "fw": FLOAT_WEIGHT.astype(np.float16),
    }
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
        helper.make_node("Conv", ["xd", "fw"], ["h"], name="layer"),
        helper.make_node("QuantizeLinear", ["h", "s", "z"], ["hq"]),
        helper.make_node("DequantizeLinear", ["hq", "s", "z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "half",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 4, 2, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [1, 8, 2, 14])],
        [numpy_helper.from_array(v, k) for k, v in scales.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    assert onnxruntime_int8_weights(model, tmp_path) == []
    assert saturation_bounds(model) == []


def test_float_weights_that_are_not_finite_are_not_bounded(recwarn) -> None:
    """NaN has no int8 value (casting it is up to the CPU): no bound, and no NumPy warning line."""
    from onnx import helper

    weight = FLOAT_WEIGHT.copy()
    weight[0, 0, 0, 0] = np.nan
    identity = [helper.make_node("Identity", ["fw"], ["wd"])]
    assert saturation_bounds(qdq_layer("Conv", identity, {"fw": weight})) == []
    assert [str(w.message) for w in recwarn] == []
    assert bound_facts(qdq_layer("Conv", identity, {"fw": FLOAT_WEIGHT}))[0][0] == "layer"


def test_onnxruntime_quantizes_float_weights_over_their_range_with_zero_in_it() -> None:
    from edgekit.quantize.overflow import onnxruntime_quantized

    # range [-1, 1.55]: scale 2.55 / 255 = 0.01, zero point -128 + 100 = -28
    weight = np.array([[-1.0, 0.0, 1.55, 0.004, 0.016]], np.float32)
    np.testing.assert_array_equal(onnxruntime_quantized(weight), [[-128, -28, 127, -28, -26]])
    # all positive: the range starts at 0, so the zero point is -128
    np.testing.assert_array_equal(
        onnxruntime_quantized(np.array([[0.51, 2.55]], np.float32)), [[-77, 127]]
    )
    # all negative: the range ends at 0, so the zero point is 127
    negative = np.array([[-2.55, -0.51]], np.float32)
    np.testing.assert_array_equal(onnxruntime_quantized(negative), [[-128, 76]])
    # scale 1 makes 2.5 an exact tie: half to even gives 2
    ties = np.array([[0.0, 255.0, 2.5, 3.5]], np.float32)
    np.testing.assert_array_equal(onnxruntime_quantized(ties), [[-128, 127, -126, -124]])
    # all zero: scale 1
    np.testing.assert_array_equal(
        onnxruntime_quantized(np.zeros((2, 2), np.float32)), np.full((2, 2), -128)
    )


# ------------------------------------------------------------------ readiness rule Q1


def test_q1_names_the_layer_that_can_saturate_its_bound_and_the_fix() -> None:
    rng = np.random.default_rng(0)
    safe = np.clip(full_range(rng, (8, 3, 1, 5)), -63, 63).astype(np.int8)
    model = conv_model([safe, full_range(rng, (8, 8, 1, 5))])
    rule = overflow_rule(model)
    assert rule["status"] == "warn"
    assert [layer["can_saturate"] for layer in rule["layers"]] == [False, True]
    assert len(rule["findings"]) == 2 and rule["findings"][0].startswith("conv1: worst pair")
    assert (
        f"> {INT16_MAX}" in rule["findings"][0] and "model.overflow_fix=all" in rule["findings"][1]
    )


def test_q1_passes_a_model_with_seven_bit_weights() -> None:
    rng = np.random.default_rng(1)
    weights = [
        np.clip(full_range(rng, shape), -63, 63).astype(np.int8)
        for shape in ((8, 3, 1, 5), (4, 8, 1, 1))
    ]
    rule = overflow_rule(conv_model(weights))
    assert rule["status"] == "pass" and rule["findings"] == []
    assert [layer["worst_pair_sum"] for layer in rule["layers"]] == [2 * 255 * 63] * 2


def test_q1_says_when_a_graph_has_no_int8_layer() -> None:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "float",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    rule = overflow_rule(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    assert rule["status"] == "warn" and rule["layers"] == []
    assert "no int8 Conv/Gemm/MatMul" in rule["findings"][0]


def test_check_cli_reports_q1_on_any_int8_file(tmp_path: Path) -> None:
    import onnx
    from click.testing import CliRunner
    from edgekit.cli import cli

    path = tmp_path / "unsafe.onnx"
    onnx.save(conv_model([full_range(np.random.default_rng(2), (4, 3, 1, 5))]), str(path))
    result = CliRunner().invoke(cli, ["check", "--target", "onnx", str(path)])
    assert result.exit_code == 0, result.output  # a warning: overflow_fix=none is a legal choice
    assert "Q1   warn" in result.output and "conv0: worst pair" in result.output
    assert "host:" in result.output


def test_trained_default_export_cannot_saturate(exported_run: Path) -> None:
    """The default (overflow_fix=all) exports 7-bit weights; Q1 passes in the export's report."""
    import json

    report = json.loads((exported_run / "export" / "onnx" / "readiness_report.json").read_text())
    assert report["warnings"] == [] and report["rules"][0]["status"] == "pass"
    assert all(layer["max_weight_magnitude"] <= 63 for layer in report["rules"][0]["layers"])
    assert set(report["host_cpu"]["flags"]) == {"avx2", "avx512_vnni", "avx_vnni", "amx_int8"}


# ------------------------------------------------------------------ the emulation


def test_emulation_differs_on_an_unprotected_model_and_not_on_a_protected_one() -> None:
    """Saturating inputs through the 8-bit fixture: the AVX2 emulation departs from int32; with the
    same weights clipped to 7 bits the two are identical, as the bound promises."""
    import onnx

    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(0, 3, (24, 6, 2, 32)), rng.normal(3, 1, (24, 6, 2, 32))]).astype(
        np.float32
    )
    unprotected = onnx.load(str(FIXTURES / "model_int8.onnx"))
    assert any(bound.can_saturate for bound in saturation_bounds(unprotected))
    exact = IntegerReference(unprotected).run(X).logits_q
    emulated = IntegerReference(unprotected, "avx2-u8s8").run(X).logits_q
    assert not np.array_equal(exact, emulated)

    seven_bit(unprotected)
    assert not any(bound.can_saturate for bound in saturation_bounds(unprotected))
    assert np.array_equal(
        IntegerReference(unprotected, "avx2-u8s8").run(X).logits_q,
        IntegerReference(unprotected).run(X).logits_q,
    )


@given(st.integers(1, 7), st.integers(1, 6), st.booleans(), st.integers(0, 2**31 - 1))
def test_weights_within_the_bound_make_the_emulation_exact(
    channels: int, kernel: int, signed: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    weight = rng.integers(-63, 64, size=(4, channels, 1, kernel)).astype(np.int8)
    model = conv_model([weight], width=9, signed_input=signed, input_zero_point=5, pad=kernel // 2)
    X = (rng.integers(-160, 160, size=(6, channels, 1, 9)) * 0.05).astype(np.float32)
    assert np.array_equal(
        IntegerReference(model, "avx2-u8s8").run(X).logits_q,
        IntegerReference(model).run(X).logits_q,
    )


def test_each_pair_saturates_at_the_int16_bounds_and_pairs_follow_channels_last() -> None:
    """Hand-computed accumulators: uint8 input 255 everywhere (zero point 0, no padding) through a
    (1, 2) kernel over 3 channels. Channels-last order (tap 0: c0 c1 c2, tap 1: c0 c1 c2) pairs
    (c0, c1), (c2 tap 0, c0 tap 1), (c1, c2) of tap 1."""
    weight = np.array(
        [
            [[[127, 127]], [[127, 127]], [[127, 127]]],  # every pair 255 * 254 = 64770 -> 32767
            [[[-127, -127]], [[-127, -127]], [[-127, -127]]],  # -64770 -> -32768
            [
                [[100, 0]],
                [[28, 0]],
                [[-5, 1]],
            ],  # (100 + 28), (-5 + 0), (0 + 1): exact, no saturation
            [[[127, 0]], [[0, 0]], [[127, 127]]],
        ]  # (127 + 0), (127 + 0), (0 + 127): 32385 each
    ).astype(np.int8)
    model = conv_model([weight], width=2, signed_input=False, input_zero_point=0, pad=0)
    reference = IntegerReference(model)
    step = reference.steps[0]
    assert isinstance(step, ConvStep)
    q = np.full((1, 3, 1, 2), 255, np.int64)
    bias = step.bias
    saturated = conv_accumulate_avx2(q, step).reshape(-1) - bias
    assert saturated.tolist() == [3 * 32767, 3 * -32768, 255 * 124, 3 * 255 * 127]
    assert (conv_accumulate(q, step).reshape(-1) - bias).tolist() == [
        6 * 255 * 127,
        -6 * 255 * 127,
        255 * 124,
        3 * 255 * 127,
    ]


def test_int8_activations_are_offset_to_uint8_before_the_pairs() -> None:
    """int8 127 travels as uint8 255 (MLAS adds 128 and corrects the zero point), so a pair of 127s
    saturates although 127 * 127 * 2 = 32258 would fit."""
    weight = np.full((1, 2, 1, 1), 127, np.int8)
    model = conv_model([weight], width=1, signed_input=True, input_zero_point=0, pad=0)
    step = IntegerReference(model).steps[0]
    assert isinstance(step, ConvStep)
    q = np.full((1, 2, 1, 1), 127, np.int64)
    # (127 + 128) * 127 * 2 saturates to 32767; the zero point correction removes 128 * 254
    assert (conv_accumulate_avx2(q, step) - step.bias).ravel().tolist() == [32767 - 128 * 254]
    assert (conv_accumulate(q, step) - step.bias).ravel().tolist() == [2 * 127 * 127]


def test_unknown_accumulation_is_one_clear_error() -> None:
    from edgekit.errors import ExportError

    with pytest.raises(ExportError, match="accumulation must be one of int32, avx2-u8s8"):
        IntegerReference.from_onnx(FIXTURES / "model_int8.onnx", "avx2")


def test_parity_explains_a_mismatch_that_the_avx2_emulation_reproduces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """onnxruntime as it runs on an AVX2 CPU (the emulation, checked against it in the avx2_cpu
    test) is explained by layer, bound and fix; other differences are not claimed to be saturation."""
    import edgekit.onnx_io
    from edgekit.parity import explain_ort_mismatch

    path = FIXTURES / "model_int8.onnx"
    X = high_inputs(np.random.default_rng(5), (8, 6, 2, 32))
    avx2 = IntegerReference.from_onnx(path, "avx2-u8s8").run(X).logits

    class AVX2Runner:
        def __init__(self, model_path: Path) -> None:
            assert Path(model_path) == path

        def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
            return {"logits": IntegerReference.from_onnx(path, "avx2-u8s8").run(inputs).logits}

    line = explain_ort_mismatch(path, X)  # this host's onnxruntime
    assert "first: /encoder/encoder.0/Conv: worst pair" in line and "model.overflow_fix=all" in line
    monkeypatch.setattr(edgekit.onnx_io, "OnnxRunner", AVX2Runner)
    assert explain_ort_mismatch(path, X).endswith("reproduces onnxruntime here exactly")
    assert not np.array_equal(avx2, IntegerReference.from_onnx(path).run(X).logits)


def test_the_failure_message_carries_the_diagnosis(tmp_path: Path) -> None:
    from edgekit.compare import Tolerance, compare
    from edgekit.parity import failure_message

    ok = compare("a", np.eye(3), np.eye(3), Tolerance())
    bad = compare("onnx/int_reference_vs_ort_int8", np.eye(3), 2 * np.eye(3), Tolerance(atol=0.1))
    bad.diagnosis = "2 of 7 int8 layers can saturate"
    line = failure_message([ok, bad], tmp_path / "parity.json")
    assert line.startswith("1 parity pair(s) failed (onnx/int_reference_vs_ort_int8): 2 of 7 int8")
    bad.diagnosis = ""
    assert ": " not in failure_message([bad], tmp_path / "p.json").split("failed")[1].split(";")[0]


# ------------------------------------------------------------------ the host's CPU


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 7763\nflags\t\t: fpu sse avx avx2 fma\n"
    )
    host = read_cpu_flags(cpuinfo)
    assert host["model"] == "AMD EPYC 7763"
    assert host["flags"] == {
        "avx2": True,
        "avx512_vnni": False,
        "avx_vnni": False,
        "amx_int8": False,
    }
    # Arm names no "model name" and lists `Features`; no cpuinfo at all (not Linux) gives no flags
    cpuinfo.write_text(
        "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd asimddp\nCPU implementer\t: 0x41\n"
    )
    assert cpu_model_and_flags(cpuinfo) == (platform.processor(), {"fp", "asimd", "asimddp"})
    assert cpu_model_and_flags(tmp_path / "none") == (platform.processor(), set())
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some VM\n")  # no flags line at all
    assert cpu_model_and_flags(cpuinfo) == ("Some VM", set())


@pytest.mark.parametrize(
    ("machine", "flags", "expected"),
    [
        ("x86_64", {"avx2"}, "AVX2 without VNNI"),
        ("x86_64", {"avx2", "avx_vnni"}, "with VNNI"),
        ("AMD64", {"avx2", "avx512_vnni"}, "with VNNI"),
        ("x86_64", {"sse4_1"}, "without AVX2"),
        ("aarch64", set(), "aarch64: int32"),
    ],
)
def test_cpu_class_names_the_int8_kernel(machine: str, flags: set[str], expected: str) -> None:
    assert expected in cpu_class(machine, flags)


def test_diagnosis_names_the_cpu_the_first_layer_and_the_fix() -> None:
    bounds = [
        layer_bound("conv0", np.full((2, 4), 63, np.int8)),
        layer_bound("conv1", np.full((2, 4), 127, np.int8)),
    ]
    host = {
        "machine": "x86_64",
        "model": "AMD EPYC 7763",
        "int8_kernel_class": cpu_class("x86_64", {"avx2"}),
    }
    line = saturation_diagnosis(bounds, host)
    assert "1 of 2 int8 layers" in line and "first: conv1" in line and "AMD EPYC 7763" in line
    assert "AVX2 without VNNI" in line and "model.overflow_fix=all" in line
    assert saturation_diagnosis(bounds[:1], host) == ""


# ------------------------------------------------------------------ against onnxruntime on AVX2

ORT_UNDER_HASWELL = """
import sys
import numpy as np
import onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = 1
for model_path, inputs_path, out_path in zip(*[iter(sys.argv[1:])] * 3):
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    X = np.load(inputs_path)
    np.save(out_path, np.concatenate([session.run(["logits"], {name: x[None]})[0] for x in X]))
"""


def run_on_haswell(cases: list[tuple[Path, Path, Path]]) -> None:
    """onnxruntime on an emulated Haswell (AVX2, FMA, no AVX-512, no VNNI): MLAS picks its AVX2 u8s8
    kernels from CPUID, as on such a machine."""
    args = [str(p) for case in cases for p in case]
    command = ["qemu-x86_64", "-cpu", "Haswell", sys.executable, "-c", ORT_UNDER_HASWELL, *args]
    subprocess.run(command, check=True, capture_output=True, timeout=600)


def ort_requantize(acc: np.ndarray, step: ConvStep) -> np.ndarray:
    """onnxruntime's requantization of an int32 accumulator in float32 arithmetic (round half to
    even), written apart from the integer reference's integer `requantize`."""
    scaled = np.maximum(acc, 0).astype(np.float32) * step.scale.reshape(1, -1, 1, 1)
    return np.clip(np.rint(scaled) + step.output.zero_point, step.output.lo, step.output.hi)


@pytest.mark.avx2_cpu
def test_emulation_equals_onnxruntime_on_an_avx2_cpu_exactly(tmp_path: Path) -> None:
    """8-bit weights and saturating inputs in the shapes edgekit exports (odd channel counts, strides,
    padding, int8 and uint8 inputs, 1x1 and (2, 1) kernels): onnxruntime on AVX2 equals the emulated
    accumulators requantized as onnxruntime does, bit for bit, and departs from int32. The 8-bit
    fixture model end to end: bit for bit too."""
    import onnx

    rng = np.random.default_rng(4)
    shapes = [  # (out, in, kh, kw), stride, signed input, input zero point
        ((8, 3, 1, 5), 1, True, 5),
        ((16, 6, 1, 5), 2, True, -3),
        ((16, 16, 1, 5), 2, False, 0),
        ((8, 32, 2, 1), 1, False, 7),
        ((3, 32, 1, 1), 1, False, 0),
        ((8, 1, 1, 7), 1, True, 0),
        ((8, 9, 1, 5), 1, True, 0),
        ((8, 5, 1, 3), 1, False, 20),
    ]
    cases, models = [], []
    for i, (shape, stride, signed, zero_point) in enumerate(shapes):
        model = conv_model(
            [full_range(rng, shape)],
            signed_input=signed,
            input_zero_point=zero_point,
            stride=stride,
            pad=shape[3] // 2,
        )
        X = high_inputs(rng, (6, shape[1], shape[2], 12), 0 if signed else 128, zero_point)
        paths = (tmp_path / f"m{i}.onnx", tmp_path / f"x{i}.npy", tmp_path / f"y{i}.npy")
        onnx.save(model, str(paths[0]))
        np.save(paths[1], X)
        cases.append(paths)
        models.append(IntegerReference(model))
    fixture_X = high_inputs(rng, (16, 6, 2, 32))
    np.save(tmp_path / "xf.npy", fixture_X)
    run_on_haswell(
        [*cases, (FIXTURES / "model_int8.onnx", tmp_path / "xf.npy", tmp_path / "yf.npy")]
    )

    for reference, (_, inputs_path, out_path) in zip(models, cases, strict=True):
        step = reference.steps[0]
        assert isinstance(step, ConvStep)
        q = reference.quantize_input(np.load(inputs_path))
        ort_avx2 = np.load(out_path).reshape(len(q), *step.output.shape)
        emulated = ort_requantize(conv_accumulate_avx2(q, step), step)
        exact = ort_requantize(conv_accumulate(q, step), step)
        ort_q = np.rint(ort_avx2 / step.output.scale) + step.output.zero_point
        assert np.array_equal(emulated, ort_q), out_path.name
        assert np.abs(exact - ort_q).max() > 10, out_path.name  # it saturated: really AVX2-only

    fixture = IntegerReference.from_onnx(FIXTURES / "model_int8.onnx")
    ort_avx2 = np.load(tmp_path / "yf.npy")
    lsb = fixture.output_scale
    emulated = IntegerReference.from_onnx(FIXTURES / "model_int8.onnx", "avx2-u8s8").run(fixture_X)
    np.testing.assert_array_equal(emulated.logits, ort_avx2)
    assert np.abs(fixture.run(fixture_X).logits - ort_avx2).max() > 10 * lsb


def test_host_facts_are_those_of_this_machine() -> None:
    host = read_cpu_flags()
    assert host["machine"] == platform.machine()
    if Path("/proc/cpuinfo").is_file() and shutil.which("grep"):
        has_avx2 = " avx2" in Path("/proc/cpuinfo").read_text()
        assert host["flags"]["avx2"] == has_avx2  # type: ignore[index]
