"""Hailo readiness rules R1-R16 on small hand-built graphs: each rule passes a graph the DFC takes
and names the node of one it refuses, in every form ONNX allows (negative axes, defaults, the inputs
newer opsets take instead of attributes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from edgekit.targets.hailo_readiness import (
    calibration_rule,
    check_hailo_readiness,
    estimate_rule,
    format_report,
    graph_rules,
    split_rule,
    summarise,
)
from onnx import TensorProto, helper, numpy_helper

NCHW = [1, 4, 2, 8]
MIN_CALIB, GOOD_CALIB = 64, 1024  # hailo.md R14: the DFC's usual calibset_size, its recommendation
MAX_CODE_FLIP_RATE = 0.01  # R15's threshold


def graph(
    nodes: list[onnx.NodeProto],
    constants: dict[str, Any] | None = None,
    inputs: dict[str, list[Any] | None] | None = None,
    outputs: tuple[str, ...] = ("y",),
    opset: int = 13,
) -> onnx.ModelProto:
    """A model of `nodes` reading `inputs` (default: `input`, NCHW float), with `constants` as
    initializers (int lists become int64); outputs without a declared shape."""
    inputs = {"input": NCHW} if inputs is None else inputs
    initializers = [
        numpy_helper.from_array(
            np.asarray(v, np.int64 if isinstance(v, list) else np.asarray(v).dtype), name
        )
        for name, v in (constants or {}).items()
    ]
    body = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=initializers,
    )
    return helper.make_model(body, opset_imports=[helper.make_opsetid("", opset)])


def node(op: str, inputs: list[str], output: str = "y", **attrs: Any) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], name=f"my_{op.lower()}", **attrs)


def rule_of(model: onnx.ModelProto, rule: str) -> dict[str, Any]:
    """One rule's result on `model`."""
    return next(r for r in graph_rules(model) if r["rule"] == rule)


def findings(model: onnx.ModelProto, rule: str) -> list[str]:
    return rule_of(model, rule)["findings"]


def failed(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Every rule with findings, and them."""
    return {r["rule"]: r["findings"] for r in graph_rules(model) if r["findings"]}


def weights(*shape: int) -> np.ndarray:
    return np.full(shape, 0.1, np.float32)


def test_a_plain_convolutional_graph_passes_every_rule() -> None:
    model = graph(
        [
            node("Conv", ["input", "w"], "c", kernel_shape=[1, 3], pads=[0, 1, 0, 1]),
            node("Relu", ["c"], "r"),
            node("GlobalAveragePool", ["r"], "p"),
            node("Flatten", ["p"], "f"),
            node("Gemm", ["f", "d"], "y", transB=1),
        ],
        {"w": weights(6, 4, 1, 3), "d": weights(3, 6)},
    )
    assert failed(model) == {}


@pytest.mark.parametrize(
    ("op", "domain"),
    [
        ("QuantizeLinear", ""),
        ("DequantizeLinear", ""),
        ("DynamicQuantizeLinear", ""),
        ("ConvInteger", ""),
        ("MatMulInteger", ""),
        ("QLinearConv", ""),
        ("QLinearMatMul", ""),
        ("QLinearAdd", "com.microsoft"),
        ("QLinearGlobalAveragePool", "com.microsoft"),
        ("QGemm", "com.microsoft"),
        ("MatMulIntegerToFloat", "com.microsoft"),
        ("DynamicQuantizeMatMul", "com.microsoft"),
    ],
)
def test_quantized_ops_break_r1_alone(op: str, domain: str) -> None:
    """The DFC takes float ONNX and quantizes itself; a quantized op is R1's, not an unknown op."""
    arity = (1, 1) if domain else (lambda s: (s.min_input, s.min_output))(onnx.defs.get_schema(op))
    outputs = ["y"] + [f"extra{i}" for i in range(1, arity[1])]
    quantized = helper.make_node(op, ["input"] * arity[0], outputs, name="my_q", domain=domain)
    model = graph([quantized], outputs=tuple(outputs))
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    assert findings(model, "R1") == [f"my_q ({op})"] and findings(model, "R2") == []


def test_ops_outside_the_hailo_layers_break_r2() -> None:
    hard_swish = graph([node("HardSwish", ["input"])], opset=14)
    assert failed(hard_swish) == {"R2": ["my_hardswish (HardSwish)"]}
    foreign = helper.make_node("Relu", ["input"], ["y"], name="my_relu", domain="my.ops")
    model = graph([foreign])
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    assert findings(model, "R2") == ["my_relu (Relu) from domain my.ops"]
    default = helper.make_node("Relu", ["input"], ["y"], name="my_relu", domain="ai.onnx")
    model = graph([default])
    model.opset_import.append(helper.make_opsetid("ai.onnx", 13))
    assert findings(model, "R2") == []


@pytest.mark.parametrize(
    ("op", "rule"), [("Round", "R3"), ("Cast", "R3"), ("Floor", "R3"), ("Shape", "R4")]
)
def test_refused_ops_and_shape_plumbing(op: str, rule: str) -> None:
    attrs = {"to": TensorProto.FLOAT} if op == "Cast" else {}
    assert findings(graph([node(op, ["input"], **attrs)]), rule) == [f"my_{op.lower()} ({op})"]


def gelu(erf: str = "Erf", after_erf: str = "Add", after_add: str = "Mul") -> onnx.ModelProto:
    """GELU as torch exports it: x * (1 + erf(x / sqrt 2)) * 0.5, with the ops of its Erf, Add and
    Mul replaced by `erf`, `after_erf` and `after_add`."""
    unary = after_erf in ("Abs", "Relu")
    return graph(
        [
            node("Div", ["input", "sqrt2"], "scaled"),
            helper.make_node(erf, ["scaled"], ["erf"], name="my_erf"),
            node(after_erf, ["erf"] if unary else ["erf", "one"], "plus_one"),
            helper.make_node(after_add, ["input", "plus_one"], ["product"], name="times_x"),
            helper.make_node("Mul", ["product", "half"], ["y"], name="half"),
        ],
        {"sqrt2": np.float32(2**0.5), "one": np.float32(1), "half": np.float32(0.5)},
    )


def test_gelu_passes_and_a_standalone_erf_is_refused() -> None:
    """The DFC takes GELU as Mul + Erf (hailo.md §1.2) and refuses an Erf on its own."""
    assert failed(gelu()) == {}
    for after_erf in ("Sub", "Abs"):
        assert findings(gelu(after_erf=after_erf), "R3") == ["my_erf (Erf)"]
    for after_add in ("Sub", "Div"):
        assert findings(gelu(after_add=after_add), "R3") == ["my_erf (Erf)"]
    alone = graph([node("Erf", ["input"])])
    assert findings(alone, "R3") == ["my_erf (Erf)"]
    also_read = gelu()
    also_read.graph.node.append(helper.make_node("Relu", ["erf"], ["r"], name="r"))
    assert findings(also_read, "R3") == ["my_erf (Erf)"]


@pytest.mark.parametrize("op", ["Round", "Ceil"])
def test_only_erf_passes_inside_gelus_pattern(op: str) -> None:
    assert findings(gelu(erf=op), "R3") == [f"my_erf ({op})"]


def test_readiness_names_node_and_rule(tmp_path: Path) -> None:
    """From a file: the error names the rule and the node; a good file is ready."""

    def saved(op: str) -> str:
        model = graph([node(op, ["input"])])
        model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, NCHW))
        onnx.save(model, tmp_path / f"{op}.onnx")
        return str(tmp_path / f"{op}.onnx")

    report = check_hailo_readiness(saved("Round"))
    assert not report["ready"] and report["errors"] == ["R3"]
    assert any("my_round" in f for r in report["rules"] for f in r["findings"])
    report = check_hailo_readiness(saved("Relu"))
    assert report["ready"] and report["errors"] == report["warnings"] == []
    needs_run = [r["rule"] for r in report["rules"] if r["status"] == "skipped"]
    assert needs_run == ["R13", "R14", "R15"]


def test_shapes_must_be_static_with_batch_1() -> None:
    dynamic = graph([node("Relu", ["input"])], inputs={"input": ["N", 4, 2, 8]})
    assert findings(dynamic, "R5") == [
        "input: ['N', 4, 2, 8]",
        "y: ['N', 4, 2, 8]",
        "input batch is N, expected 1",
    ]
    batch_2 = graph([node("Relu", ["input"])], inputs={"input": [2, 4, 2, 8]})
    assert findings(batch_2, "R5") == ["input batch is 2, expected 1"]


@pytest.mark.parametrize("axis", [0, -4])
def test_concat_on_the_batch_axis_breaks_r5(axis: int) -> None:
    model = graph([node("Concat", ["input", "input"], axis=axis)])
    assert findings(model, "R5") == ["my_concat (Concat) works on the batch axis"]


def test_features_concatenated_on_the_batch_axis_break_r5() -> None:
    """Rank 2, as a dense layer's (batch, features)."""
    model = graph([node("Concat", ["input", "input"], axis=0)], inputs={"input": [1, 6]})
    assert findings(model, "R5") == ["my_concat (Concat) works on the batch axis"]


def test_shape_vectors_have_no_batch_axis() -> None:
    """Shape plumbing (R4's) concatenates and slices 1-D shape vectors along their only axis."""
    model = graph(
        [
            node("Shape", ["input"], "shape"),
            node("Slice", ["shape", "start", "end", "axis"], "sliced"),
            node("Concat", ["sliced", "tail"], "new_shape", axis=0),
            node("Reshape", ["input", "new_shape"]),
        ],
        {"start": [0], "end": [2], "axis": [0], "tail": [16]},
    )
    assert findings(model, "R4") == ["my_shape (Shape)"]
    assert findings(model, "R5") == ["y: shape unknown"] and findings(model, "R10") == []


def test_concat_of_a_constant_on_the_batch_axis_breaks_r5() -> None:
    model = graph([node("Concat", ["c", "input"], axis=0)], {"c": weights(*NCHW)})
    assert findings(model, "R5") == ["my_concat (Concat) works on the batch axis"]


@pytest.mark.parametrize("axis", [1, -3, 3])
def test_concat_elsewhere_passes_r5(axis: int) -> None:
    assert findings(graph([node("Concat", ["input", "input"], axis=axis)]), "R5") == []


def test_tile_over_the_batch_breaks_r5() -> None:
    model = graph([node("Tile", ["input", "repeats"])], {"repeats": [2, 1, 1, 1]})
    assert findings(model, "R5") == ["my_tile (Tile) works on the batch axis"]
    model = graph([node("Tile", ["input", "repeats"])], {"repeats": [1, 2, 1, 1]})
    assert findings(model, "R5") == []


def test_a_split_without_axis_splits_the_batch() -> None:
    """ONNX's default axis of Split is 0, the batch: R5 refuses it, R10 names the axis."""
    split = helper.make_node("Split", ["input"], ["a", "b"], name="my_split")
    model = graph([split], inputs={"input": [2, 4, 2, 8]}, outputs=("a", "b"))
    assert "my_split (Split) works on the batch axis" in findings(model, "R5")
    assert findings(model, "R10") == ["my_split (Split) works on axes [0]"]


def test_inputs_and_tensors_must_be_rank_4() -> None:
    rank_3 = graph([node("Relu", ["input"])], inputs={"input": [1, 4, 16]})
    assert findings(rank_3, "R6") == ["input input has rank 3, expected 4 (NCHW)"]
    rank_5 = graph([node("Unsqueeze", ["input", "axes"])], {"axes": [4]})
    assert findings(rank_5, "R6") == ["y has rank 5"]


@pytest.mark.parametrize("kernel_shape", [None, [3]])
def test_a_1d_convolution_breaks_r6(kernel_shape: list[int] | None) -> None:
    """With or without kernel_shape (optional: the weight's rank says it), inside the graph."""
    attrs = {} if kernel_shape is None else {"kernel_shape": kernel_shape}
    model = graph(
        [node("Reshape", ["input", "shape"], "flat"), node("Conv", ["flat", "w"], **attrs)],
        {"shape": [1, 4, 16], "w": weights(4, 4, 3)},
    )
    assert findings(model, "R6") == ["my_conv (Conv) is 1-D, not 2-D"]


def test_a_2d_convolution_without_kernel_shape_passes_r6() -> None:
    assert findings(graph([node("Conv", ["input", "w"])], {"w": weights(4, 4, 1, 3)}), "R6") == []


def test_a_reshape_of_the_input_breaks_r7() -> None:
    model = graph([node("Reshape", ["input", "shape"])], {"shape": [1, 4, 16, 1]})
    assert findings(model, "R7") == ["my_reshape (Reshape)"]
    assert findings(model, "R8") == ["my_reshape (Reshape)"]


def head(flatten_input: str, weight: str = "d", reader: str = "Gemm") -> list[onnx.NodeProto]:
    """GlobalAveragePool then Flatten into a `reader` of weights `weight`."""
    read = [node(reader, ["f", weight])] if reader in ("Gemm", "MatMul") else [node(reader, ["f"])]
    return [
        node("GlobalAveragePool", ["input"], "p"),
        node("Flatten", [flatten_input], "f"),
        *read,
    ]


def test_a_flatten_into_a_dense_layer_is_no_shuffle() -> None:
    assert findings(graph(head("p"), {"d": weights(4, 3)}), "R8") == []
    assert findings(graph(head("p", reader="MatMul"), {"d": weights(4, 3)}), "R8") == []


def test_other_shuffles_warn_in_r8() -> None:
    inputs = {"input": NCHW, "d": [4, 3]}
    not_constant = graph(head("p"), inputs=inputs)
    assert findings(not_constant, "R8") == ["my_flatten (Flatten)"]
    not_dense = graph(head("p", reader="Relu"))
    assert findings(not_dense, "R8") == ["my_flatten (Flatten)"]
    not_pooled = graph([node("Relu", ["input"], "p"), *head("p")[1:]], {"d": weights(64, 3)})
    assert findings(not_pooled, "R8") == ["my_flatten (Flatten)"]
    unread = graph([node("GlobalAveragePool", ["input"], "p"), node("Flatten", ["p"])])
    assert findings(unread, "R8") == ["my_flatten (Flatten)"]
    transpose = graph([node("Relu", ["input"], "r"), node("Transpose", ["r"], perm=[0, 1, 3, 2])])
    assert findings(transpose, "R8") == ["my_transpose (Transpose)"]


def reduce(op: str, axes: list[int] | None, opset: int = 13, **attrs: Any) -> onnx.ModelProto:
    """`op` over `axes` as an attribute (opset < 18) or as its constant second input (18)."""
    if opset >= 18:
        inputs = ["input", "axes"] if axes is not None else ["input"]
        return graph([node(op, inputs, **attrs)], {"axes": axes} if axes else {}, opset=opset)
    return graph([node(op, ["input"], **({"axes": axes} if axes else {}), **attrs)], opset=opset)


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("axes", [[1], [-3]])
def test_reduce_max_over_channels_passes_r9(axes: list[int], opset: int) -> None:
    assert findings(reduce("ReduceMax", axes, opset), "R9") == []


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize(
    ("axes", "named"), [([2], [2]), ([1, 2], [1, 2]), ([-1], [3]), (None, [0, 1, 2, 3])]
)
def test_reduce_max_elsewhere_breaks_r9(
    axes: list[int] | None, named: list[int], opset: int
) -> None:
    assert findings(reduce("ReduceMax", axes, opset), "R9") == [
        f"my_reducemax (ReduceMax) reduces axes {named}"
    ]


def test_reduce_max_must_keep_dims() -> None:
    assert findings(reduce("ReduceMax", [1], keepdims=0), "R9") == [
        "my_reducemax (ReduceMax) reduces axes [1]"
    ]


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize("axes", [[2, 3], [3, 2], [-1, -2], [2], [3], [-1]])
def test_reduce_mean_over_time_and_rows_passes_r9(axes: list[int], opset: int) -> None:
    assert findings(reduce("ReduceMean", axes, opset), "R9") == []


@pytest.mark.parametrize("opset", [13, 18])
@pytest.mark.parametrize(
    ("axes", "named"), [([1], [1]), ([-3, -1], [1, 3]), ([0], [0]), (None, [0, 1, 2, 3])]
)
def test_reduce_mean_over_channels_or_batch_breaks_r9(
    axes: list[int] | None, named: list[int], opset: int
) -> None:
    assert findings(reduce("ReduceMean", axes, opset), "R9") == [
        f"my_reducemean (ReduceMean) averages axes {named}"
    ]


def test_an_empty_reduction_that_is_a_no_op_passes_r9() -> None:
    assert findings(reduce("ReduceMean", None, 18, noop_with_empty_axes=1), "R9") == []
    assert findings(reduce("ReduceMean", None, 18, noop_with_empty_axes=0), "R9") != []


def test_reduction_axes_computed_at_run_time_break_r9() -> None:
    model = graph(
        [node("Shape", ["input"], "s"), node("ReduceMean", ["input", "s"])],
        opset=18,
    )
    assert findings(model, "R9") == [
        "my_reducemean (ReduceMean) reduces axes known only at run time"
    ]


def sliced(axis: int, opset: int = 13) -> onnx.ModelProto:
    """The first half of `input` along `axis`: Slice's axes are an input since opset 10."""
    return graph(
        [node("Slice", ["input", "starts", "ends", "axes"])],
        {"starts": [0], "ends": [NCHW[axis] // 2 or 1], "axes": [axis]},
        opset=opset,
    )


@pytest.mark.parametrize("axis", [1, -3])
def test_slices_of_channels_pass_r10(axis: int) -> None:
    assert findings(sliced(axis), "R10") == []


@pytest.mark.parametrize(("axis", "named"), [(3, 3), (-1, 3), (2, 2)])
def test_slices_of_time_warn_in_r10(axis: int, named: int) -> None:
    assert findings(sliced(axis), "R10") == [f"my_slice (Slice) works on axes [{named}]"]


def test_a_slice_that_keeps_every_axis_passes() -> None:
    """Slicing batch 1 from 0 to 1 changes nothing: no axis is worked on."""
    assert failed(sliced(0)) == {}


def test_splits_along_channels_pass_and_along_time_warn() -> None:
    for axis, expected in ((1, []), (3, ["my_split (Split) works on axes [3]"])):
        split = helper.make_node("Split", ["input"], ["a", "b"], name="my_split", axis=axis)
        assert findings(graph([split], outputs=("a", "b")), "R10") == expected


def test_a_slice_of_sizes_known_only_at_run_time_warns_in_r10() -> None:
    model = graph(
        [
            node("Shape", ["input"], "s"),
            node("Slice", ["input", "starts", "s", "axes"]),
        ],
        {"starts": [0], "axes": [3]},
    )
    assert findings(model, "R10") == ["my_slice (Slice) works on axes known only at run time"]


@pytest.mark.parametrize(("opset", "warns"), [(12, True), (13, False), (21, False), (22, True)])
def test_opsets_outside_13_to_21_warn_in_r11(opset: int, warns: bool) -> None:
    r11 = rule_of(graph([node("Relu", ["input"])], opset=opset), "R11")
    assert r11["opset"] == opset and r11["status"] == ("warn" if warns else "pass")
    assert r11["findings"] == ([f"opset {opset}"] if warns else [])


def test_a_softmax_at_the_end_warns_in_r12() -> None:
    assert findings(graph([node("Softmax", ["input"])]), "R12") == ["my_softmax (Softmax)"]
    inside = graph([node("Softmax", ["input"], "s"), node("Relu", ["s"])])
    assert findings(inside, "R12") == []


def test_r16_counts_parameters_and_macs_of_convolutions_and_dense_layers() -> None:
    constant = helper.make_node(
        "Constant",
        [],
        ["w"],
        value=numpy_helper.from_array(weights(6, 4, 1, 3)),
    )
    model = graph(
        [
            constant,
            node("Conv", ["input", "w"], "c", kernel_shape=[1, 3]),  # (1, 6, 2, 6)
            node("Reshape", ["c", "shape"], "r"),  # (1, 12, 6)
            node("MatMul", ["r", "m"], "mm"),  # (1, 12, 5)
            node("Flatten", ["mm"], "f"),  # (1, 60)
            node("Gemm", ["f", "d"], "y"),  # (1, 3)
        ],
        {"shape": [1, 12, 6], "m": weights(6, 5), "d": weights(60, 3)},
    )
    r16 = rule_of(model, "R16")
    assert r16["status"] == "info" and r16["findings"] == []
    assert r16["parameters"] == 72 + 30 + 180  # float tensors only: not the int64 shape
    assert r16["macs"] == 6 * 2 * 6 * (4 * 3) + 12 * (6 * 5) + 60 * 3
    unknown = graph([node("Conv", ["input", "w"])], {"w": weights(4, 4, 1, 3)}, {"input": None})
    assert rule_of(unknown, "R16")["macs"] == 0


def test_r16_names_long_kernels_and_dilations() -> None:
    """Both pass (a full-rate model must export) but R16 names them: hailo.md has no limit."""
    model = graph(
        [
            helper.make_node("Conv", ["input", "w8"], ["c"], name="long", pads=[0, 0, 0, 7]),
            helper.make_node("Conv", ["c", "w7"], ["y"], dilations=[1, 2], pads=[0, 6, 0, 6]),
        ],
        {"w8": weights(4, 4, 1, 8), "w7": weights(4, 4, 1, 7)},
    )
    r16 = rule_of(model, "R16")
    assert r16["findings"] == [
        "long (Conv) kernel [1, 8] (unverified on the DFC; may need compiler resources)",
        "y (Conv) dilation [1, 2] (unverified on the DFC; no published limit)",
    ]
    assert failed(model) == {"R16": r16["findings"]}


def test_split_rule() -> None:
    passed = split_rule(1e-5, ["/proj/Conv"], ["Conv"])
    assert passed["status"] == "pass" and passed["end_nodes"] == ["/proj/Conv"]
    for max_abs in (2e-5, None, float("nan")):
        assert split_rule(max_abs, ["/proj/Conv"], ["Conv"])["findings"] == [
            f"host(device(x)) differs from full(x) by {max_abs} > 1e-05"
        ]
    folded = split_rule(0.0, ["/a", "/b"], ["Relu", "Reshape"], tolerance=1e-3)
    assert folded["status"] == "fail" and folded["tolerance"] == 1e-3
    assert folded["findings"] == ["/b is a Reshape, not a Conv/Gemm/activation output"]


def calibration(n: int, shape: tuple[int, ...] = (2, 8, 4), dtype: Any = np.float32) -> np.ndarray:
    return np.zeros((n, *shape), dtype)


def test_calibration_rule() -> None:
    assert calibration_rule(calibration(GOOD_CALIB), NCHW)["status"] == "pass"
    assert calibration_rule(calibration(GOOD_CALIB + 1), NCHW)["status"] == "pass"
    few = calibration_rule(calibration(GOOD_CALIB - 1), NCHW)
    assert few["status"] == "warn" and few["windows"] == GOOD_CALIB - 1
    assert few["findings"] == [
        f"{GOOD_CALIB - 1} windows < {GOOD_CALIB} recommended (all training windows were used)"
    ]
    assert calibration_rule(calibration(MIN_CALIB - 1), NCHW)["findings"] == [
        f"{MIN_CALIB - 1} windows < {MIN_CALIB} (the usual calibset_size); model.alls uses all {MIN_CALIB - 1}"
    ]
    assert calibration_rule(calibration(MIN_CALIB), NCHW)["findings"][0].endswith("were used)")
    empty = calibration_rule(calibration(0), NCHW)
    assert empty["status"] == "fail" and empty["findings"] == ["the calibration set is empty"]


@pytest.mark.parametrize("shape", [(4, 2, 8), (2, 8, 3), (2, 8), (2, 8, 4, 1)])
def test_a_calibration_set_of_another_shape_fails_r14(shape: tuple[int, ...]) -> None:
    wrong = calibration_rule(calibration(GOOD_CALIB, shape), NCHW)
    assert wrong["status"] == "fail"
    assert wrong["findings"] == [f"shape {[GOOD_CALIB, *shape]} is not (N, 2, 8, 4) NHWC"]


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_a_calibration_set_of_another_dtype_fails_r14(dtype: Any) -> None:
    wrong = calibration_rule(calibration(GOOD_CALIB, dtype=dtype), NCHW)
    assert wrong["findings"] == [f"dtype {np.dtype(dtype)}, expected float32"]


def test_a_calibration_set_with_nan_fails_r14() -> None:
    nan = calibration(GOOD_CALIB)
    nan[3, 1, 2, 0] = np.nan
    assert calibration_rule(nan, NCHW)["findings"] == ["contains NaN/Inf"]


def test_estimate_rule() -> None:
    at_limit = estimate_rule({"fsq_code_flip_rate": MAX_CODE_FLIP_RATE, "top1": 0.99})
    assert at_limit["status"] == "pass" and at_limit["top1"] == 0.99
    assert estimate_rule({"fsq_code_flip_rate": 0.004})["status"] == "pass"
    above = estimate_rule({"fsq_code_flip_rate": 0.0101})
    assert above["status"] == "warn" and above["findings"] == [
        "estimated FSQ code flip rate 0.010 > 0.01; consider "
        "quantization_param(input_layer1, precision_mode=a16_w16) in model.alls"
    ]


def test_summarise_orders_rules_by_number() -> None:
    rules = graph_rules(
        graph([node("Slice", ["input", "s", "e", "a"])], {"s": [0], "e": [2], "a": [3]})
    )
    report = summarise([*rules, split_rule(1.0, ["/x"], ["Conv"])], "m.onnx")
    numbers = [int(r["rule"][1:]) for r in report["rules"]]
    assert numbers == sorted(numbers) and len(numbers) == 14
    assert (report["ready"], report["errors"], report["warnings"]) == (False, ["R13"], ["R10"])
    assert report["file"] == "m.onnx" and report["schema_version"] == 1
    text = format_report(report).splitlines()
    assert text[0] == "m.onnx: NOT READY for Hailo"
    assert "  R10  warn    Slice/Split only on the channel axis" in text
    assert "         - my_slice (Slice) works on axes [3]" in text


def test_format_report_names_the_host_by_model_or_machine() -> None:
    report = summarise(graph_rules(graph([node("Relu", ["input"])])), "m.onnx")
    host = {"model": "AMD EPYC", "machine": "x86_64", "int8_kernel_class": "AVX-512 VNNI"}
    text = format_report({**report, "target": "onnx", "host_cpu": host})
    assert text.splitlines()[0] == "m.onnx: READY for int8 CPU runtimes"
    assert text.splitlines()[-1] == "  host: AMD EPYC; AVX-512 VNNI"
    text = format_report({**report, "host_cpu": {**host, "model": ""}})
    assert text.splitlines()[-1] == "  host: x86_64; AVX-512 VNNI"


def test_constants_are_read_from_constant_nodes_anywhere_in_the_graph() -> None:
    """Axes from a Constant's value_ints, after another node: the reduction is checked."""
    axes = helper.make_node("Constant", [], ["axes"], name="axes", value_ints=[1])
    model = graph([node("Relu", ["input"], "r"), axes, node("ReduceMean", ["r", "axes"])], opset=18)
    assert findings(model, "R9") == ["my_reducemean (ReduceMean) averages axes [1]"]


def test_only_constant_nodes_are_constants() -> None:
    """A ConstantOfShape's fill value is not its output: the weight is (4, 4, 1, 3), a 2-D kernel."""
    fill = numpy_helper.from_array(np.array([0.1], np.float32))
    model = graph(
        [
            helper.make_node("ConstantOfShape", ["shape"], ["w"], name="fill", value=fill),
            node("Conv", ["input", "w"]),
        ],
        {"shape": [4, 4, 1, 3]},
    )
    assert failed(model) == {"R4": ["fill (ConstantOfShape)"]}
    assert rule_of(model, "R16")["parameters"] == 0


def test_a_tensor_of_unknown_shape_is_not_static() -> None:
    """A foreign op's output has no inferred shape at all: not even its rank is static."""
    foreign = helper.make_node("Thing", ["input"], ["t"], name="thing", domain="my.ops")
    model = graph([foreign, node("Relu", ["t"])])
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    assert findings(model, "R5") == ["t: shape unknown", "y: shape unknown"]
    second = graph([node("Relu", ["input"])], inputs={"input": NCHW, "extra": None})
    assert findings(second, "R5") == ["extra: shape unknown"]
    first = graph([node("Relu", ["input"])], inputs={"input": None})
    assert findings(first, "R5") == ["input: shape unknown", "y: shape unknown"]
    assert findings(first, "R6") == ["input input has no known rank, expected 4 (NCHW)"]
    scalar = graph([node("Relu", ["input"])], inputs={"input": []})
    assert findings(scalar, "R6") == ["input input has rank 0, expected 4 (NCHW)"]


def test_a_graph_without_input_breaks_r6(tmp_path: Path) -> None:
    """A file of constants alone: reported, not a traceback."""
    value = numpy_helper.from_array(weights(1, 2))
    model = graph([helper.make_node("Constant", [], ["y"], name="c", value=value)], inputs={})
    assert failed(model) == {"R6": ["the graph has no input, expected one of rank 4 (NCHW)"]}
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2]))
    onnx.save(model, tmp_path / "constant.onnx")
    assert check_hailo_readiness(str(tmp_path / "constant.onnx"))["errors"] == ["R6"]


@pytest.mark.parametrize("size", [0, -1])
def test_a_size_below_1_is_not_static(size: int) -> None:
    model = graph([node("Relu", ["input"])], inputs={"input": [1, 4, size, 8]})
    assert f"input: [1, 4, {size}, 8]" in findings(model, "R5")


def test_long_windows_split_along_channels_pass_r10() -> None:
    """Sizes above 256 (not Python's cached small ints) compare by value."""
    split = helper.make_node("Split", ["input"], ["a", "b"], name="my_split", axis=1)
    model = graph([split], inputs={"input": [1, 4, 2, 300]}, outputs=("a", "b"))
    assert failed(model) == {}


def test_an_unnamed_node_is_named_by_its_first_output() -> None:
    split = helper.make_node("Split", ["input"], ["a", "b"], axis=3)
    assert findings(graph([split], outputs=("a", "b")), "R10") == ["a (Split) works on axes [3]"]


def test_an_axes_input_left_empty_reduces_every_axis() -> None:
    model = graph([node("ReduceMean", ["input", ""])], opset=18)
    assert findings(model, "R9") == ["my_reducemean (ReduceMean) averages axes [0, 1, 2, 3]"]


def test_a_3d_convolution_breaks_r6() -> None:
    model = graph(
        [node("Conv", ["input", "w", "b"])],
        {"w": weights(4, 4, 1, 3, 3), "b": weights(4)},
        {"input": [1, 4, 2, 8, 8]},
    )
    assert findings(model, "R6") == [
        "input input has rank 5, expected 4 (NCHW)",
        "input has rank 5",
        "y has rank 5",
        "my_conv (Conv) is 3-D, not 2-D",
    ]


def test_a_1d_convolution_with_bias_breaks_r6() -> None:
    model = graph(
        [node("Reshape", ["input", "shape"], "flat"), node("Conv", ["flat", "w", "b"])],
        {"shape": [1, 4, 16], "w": weights(4, 4, 3), "b": weights(4)},
    )
    assert findings(model, "R6") == ["my_conv (Conv) is 1-D, not 2-D"]


def test_the_first_graph_input_is_the_device_input() -> None:
    """R5-R7 read the first input; a second one (here a rank-3, batch-4 tensor) is not it."""
    model = graph(
        [node("Reshape", ["input", "shape"], "r"), node("Add", ["r", "other"])],
        {"shape": [1, 4, 16, 1]},
        {"input": NCHW, "other": [4, 1, 1]},
    )
    assert failed(model) == {"R7": ["my_reshape (Reshape)"], "R8": ["my_reshape (Reshape)"]}
    model = graph([node("Add", ["input", "other"])], inputs={"input": [1, 4, 16], "other": NCHW})
    assert findings(model, "R6") == ["input input has rank 3, expected 4 (NCHW)"]


def test_a_reshape_of_a_pooled_tensor_into_a_dense_layer_is_no_shuffle() -> None:
    model = graph(
        [
            node("GlobalAveragePool", ["input"], "p"),
            node("Reshape", ["p", "shape"], "f"),
            node("Gemm", ["f", "d"]),
        ],
        {"shape": [1, 4], "d": weights(4, 3)},
    )
    assert failed(model) == {}


def test_a_flatten_of_a_rank_3_tensor_is_a_shuffle() -> None:
    model = graph(
        [node("Reshape", ["input", "shape"], "p"), *head("p")[1:]],
        {"shape": [1, 64, 1], "d": weights(64, 3)},
    )
    assert findings(model, "R8") == ["my_reshape (Reshape)", "my_flatten (Flatten)"]


def test_an_opset_of_the_default_domain_is_required() -> None:
    foreign = helper.make_node("Thing", ["input"], ["y"], name="thing", domain="my.ops")
    model = graph([foreign])
    del model.opset_import[:]
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    r11 = rule_of(model, "R11")
    assert r11["opset"] == 0 and r11["findings"] == ["opset 0"]


def test_r16_counts_macs_per_window_and_skips_other_ops() -> None:
    """Batch 2: MACs of one window; a Conv's and a Gemm's bias and an Add of a constant add none;
    a Gemm with transB, a MatMul with a vector."""
    model = graph(
        [
            node("Conv", ["input", "w", "b"], "c", kernel_shape=[1, 3]),  # (2, 6, 2, 6)
            node("Add", ["c", "shift"], "a"),
            node("GlobalAveragePool", ["a"], "p"),
            node("Flatten", ["p"], "f"),  # (2, 6)
            node("Gemm", ["f", "d", "bias"], "g", transB=1),  # (2, 5)
            node("MatMul", ["g", "v"]),  # (2,)
        ],
        {
            "w": weights(6, 4, 1, 3),
            "b": weights(6),
            "shift": weights(1, 6, 1, 1),
            "d": weights(5, 6),
            "bias": weights(5),
            "v": weights(5),
        },
        {"input": [2, 4, 2, 8]},
    )
    r16 = rule_of(model, "R16")
    assert r16["macs"] == 6 * 2 * 6 * (4 * 3) + 5 * 6 + 5
    assert r16["parameters"] == 72 + 6 + 6 + 30 + 5 + 5


def test_r16_names_long_kernels_only() -> None:
    """Many channels and 7 taps, and explicit dilations of 1: nothing to name."""
    model = graph(
        [node("Conv", ["input", "w"], dilations=[1, 1], pads=[0, 3, 0, 3])],
        {"w": weights(16, 16, 1, 7)},
        {"input": [1, 16, 2, 8]},
    )
    assert failed(model) == {}


def test_r16_names_a_long_1d_kernel() -> None:
    model = graph(
        [node("Reshape", ["input", "shape"], "flat"), node("Conv", ["flat", "w"])],
        {"shape": [1, 4, 16], "w": weights(4, 4, 9)},
    )
    assert findings(model, "R16") == [
        "my_conv (Conv) kernel [9] (unverified on the DFC; may need compiler resources)"
    ]


def test_r16_counts_a_batched_matmul_by_its_inner_dimension() -> None:
    """(1, 4, 2, 8) @ (4, 8, 5): 8 products for each of the 4 x 2 x 5 outputs."""
    model = graph([node("MatMul", ["input", "w"])], {"w": weights(4, 8, 5)})
    assert rule_of(model, "R16")["macs"] == 4 * 2 * 5 * 8
