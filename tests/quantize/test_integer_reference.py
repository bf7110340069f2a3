"""The integer reference's arithmetic: float32 scale fields, requantization, input saturation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgekit.errors import ExportError
from edgekit.quantize.integer_reference import (
    ConvStep,
    FsqStep,
    IntegerReference,
    MaxPoolStep,
    PoolStep,
    Tensor,
    float32_fields,
    requantize,
    run_step,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("scale", [0.5, 0.75, 1e-3, 3.0e-9, 1 - 2**-24, 2**-24, 100.0])
def test_float32_fields_hold_the_scale_exactly(scale: float) -> None:
    value = np.float32(scale)
    mantissa, shift = float32_fields(np.array([value]))
    assert 1 << 23 <= mantissa[0] < 1 << 24  # float32's 24 significant bits
    assert mantissa[0] * 2.0 ** -int(shift[0]) == float(value)


def test_requantize_rounds_half_to_even_and_saturates() -> None:
    acc = np.array([3, 5, -3, -5, 7, 1000, -1000], dtype=np.int64).reshape(1, -1, 1, 1)
    half = np.full(7, 0.5, np.float32)
    out = requantize(acc, half, 0, -128, 127).ravel()
    assert out.tolist() == [2, 2, -2, -2, 4, 127, -128]  # 1.5 -> 2, 2.5 -> 2, 3.5 -> 4
    shifted = requantize(acc, half, 10, 0, 255).ravel()
    assert shifted.tolist() == [12, 12, 8, 8, 14, 255, 0]


def adversarial_requantization(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Accumulators of every magnitude up to int32 with scales from 2^-38 to 2^3, half of them
    within a few float32 steps of a product that ends in exactly .5 (where roundings part)."""
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(2**31) + 1, 2**31, n) >> rng.integers(0, 31, n)
    acc[acc == 0] = 1
    scale = (2.0 ** rng.uniform(-38, 3, n)).astype(np.float32)
    target = rng.integers(-300, 300, n) + 0.5
    near = np.abs(target / acc).astype(np.float32)
    for _ in range(3):  # up to 3 float32 steps either way
        direction = np.array([-np.inf, 0, np.inf], np.float32)[rng.integers(0, 3, n)]
        toward = np.where(direction == 0, near, direction).astype(np.float32)
        near = np.nextafter(near, toward).astype(np.float32)
    near[near <= 0] = np.float32(2.0**-20)
    scales = np.where(rng.random(n) < 0.5, scale, near).astype(np.float32)
    return acc.astype(np.int64), scales


def test_requantize_is_onnxruntimes_float32_arithmetic() -> None:
    """Integers only, yet equal to round_half_even(float32(float32(acc) * scale)) computed in
    float32 (MLAS MlasRequantizeOutput) on every case, including the ones where rounding the exact
    product once, or rounding half up, gives another integer."""
    acc, scale = adversarial_requantization(200_000)
    in_float32 = np.rint(acc.astype(np.float32) * scale)
    for zero_point, lo, hi in ((0, -(2**40), 2**40), (-7, -128, 127), (100, 0, 255)):
        expected = np.clip(in_float32 + zero_point, lo, hi)
        got = requantize(acc.reshape(1, -1, 1, 1), scale, zero_point, lo, hi).ravel()
        np.testing.assert_array_equal(got, expected)
    # the cases reach both float32 roundings and the ties: a reference that rounded the exact
    # product once (float64 is exact here) or half up would fail them
    exact = np.abs(acc) < 2**29
    once = np.rint(acc[exact].astype(np.float64) * scale[exact].astype(np.float64))
    assert (once != in_float32[exact]).sum() > 1000
    half_up = np.floor(acc[exact].astype(np.float64) * scale[exact].astype(np.float64) + 0.5)
    assert (half_up != in_float32[exact]).sum() > 1000
    assert (acc.astype(np.float32).astype(np.int64) != acc).sum() > 1000  # |acc| >= 2^24 rounds


def test_relu_clamps_the_accumulator_at_zero() -> None:
    """At the accumulator, before requantization (a clamp at +-1 would vanish in the rounding)."""
    one_value = Tensor((1, 1, 1), 1.0, 0, -128, 127)
    q = np.array([-7, -1, 0, 1, 9]).reshape(5, 1, 1, 1)  # five windows of one value each
    for relu, expected in ((True, [0, 0, 0, 1, 9]), (False, [-7, -1, 0, 1, 9])):
        step = PoolStep("pool", one_value, one_value, relu, np.array([1.0], np.float32))
        assert run_step(step, q).ravel().tolist() == expected


def test_input_quantization_saturates_at_the_int8_bounds() -> None:
    reference = IntegerReference.from_onnx(FIXTURES / "model_int8.onnx")
    X = np.zeros((1, 1, 1, 4), np.float32)
    X[0, 0, 0] = [-1e6, 1e6, 0.0, 2.5 * reference.input_scale]
    q = reference.quantize_input(X).ravel() - reference.input_zero_point
    assert q[0] + reference.input_zero_point == -128 and q[1] + reference.input_zero_point == 127
    assert q[2] == 0 and q[3] == 2  # half to even, as ONNX QuantizeLinear


def seven_bit(model: Any) -> Any:
    """The model with its int8 weights clipped to 7 bits, as `model.overflow_fix=all` exports them.
    The saved fixture has 8-bit weights, whose int16 pair sums onnxruntime saturates on x86 CPUs
    without VNNI (edgekit.quantize.overflow): the comparisons with onnxruntime below must be exact
    on every host, not only on VNNI ones (wide noise differed by 81 LSB on an AVX2 host)."""
    from edgekit.quantize.overflow import SAFE_WEIGHT_MAGNITUDE
    from onnx import numpy_helper

    limit = SAFE_WEIGHT_MAGNITUDE
    for tensor in model.graph.initializer:
        value = numpy_helper.to_array(tensor)
        if value.dtype == np.int8 and value.ndim == 4:
            clipped = np.clip(value, -limit, limit).astype(np.int8)
            tensor.CopyFrom(numpy_helper.from_array(clipped, tensor.name))
    return model


def seven_bit_fixture(folder: Path) -> Path:
    """The saved export, seven_bit, as a file in `folder`."""
    import onnx

    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(seven_bit(onnx.load(str(FIXTURES / "model_int8.onnx"))), str(folder / "fixture.onnx"))
    return folder / "fixture.onnx"


@pytest.mark.parametrize("inputs", ["test windows", "wide noise"])
def test_integer_reference_matches_onnxruntime_on_a_saved_export(
    inputs: str, tmp_path: Path
) -> None:
    """Integers only vs onnxruntime's float QDQ kernels on the same file: at most 1 output LSB,
    almost always exact, same FSQ codes; wide noise drives every quantizer into saturation."""
    from edgekit.onnx_io import OnnxRunner
    from edgekit.quantize.fsq_grid import fsq_indices

    X = np.load(FIXTURES / "inputs.npy")
    if inputs == "wide noise":
        X = (np.random.default_rng(0).normal(size=(64, *X.shape[1:])) * 4).astype(np.float32)
    path = seven_bit_fixture(tmp_path)
    reference = IntegerReference.from_onnx(path)
    ort = OnnxRunner(path).run(X)
    result = reference.run(X)
    delta = np.abs(ort["logits"] - result.logits) / reference.output_scale
    assert delta.max() <= 1 + 1e-6 and (delta < 1e-6).mean() >= 0.99
    assert np.abs(result.logits_q * reference.output_scale - result.logits).max() < 1e-6
    codes = fsq_indices(ort["pre_fsq"], reference.levels)
    assert (codes == result.codes).mean() >= 0.98
    assert len(np.unique(result.codes)) > 1  # the codes are computed, not a constant


def is_default_attribute(attribute: object) -> bool:
    """Zero pads, unit strides and dilations, one group: what ONNX assumes when they are absent."""
    name, ints = attribute.name, set(attribute.ints)  # type: ignore[attr-defined]
    return (
        (name == "pads" and ints == {0})
        or (name in ("strides", "dilations") and ints == {1})
        or name == "group"
    )


def insert_max_pool(
    graph: object,
    conv: object,
    kernel: list[int],
    requantize_scale: float = 1.0,
    relu: bool = False,
) -> None:
    """DequantizeLinear -> MaxPool [-> Relu] -> QuantizeLinear -> DequantizeLinear before `conv`,
    the pool's QuantizeLinear on the activation's own scale and zero point (times
    `requantize_scale`); Brevitas exports the ReLU of the quantizer the pool shares."""
    import onnx
    from onnx import numpy_helper

    nodes = list(graph.node)  # type: ignore[attr-defined]
    dq = next(n for n in nodes if n.output[0] == conv.input[0])  # type: ignore[attr-defined]
    q = next(n for n in nodes if n.output[0] == dq.input[0])
    scale = q.input[1]
    if requantize_scale != 1.0:
        inits = {t.name: t for t in graph.initializer}  # type: ignore[attr-defined]
        value = numpy_helper.to_array(inits[scale]) * np.float32(requantize_scale)
        graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), "pool_scale"))  # type: ignore[attr-defined]
        scale = "pool_scale"
    pool = onnx.helper.make_node(
        "MaxPool", [dq.output[0]], ["pooled"], kernel_shape=kernel, strides=[1, 2], name="pool"
    )
    extra = [onnx.helper.make_node("Relu", ["pooled"], ["pooled_relu"], name="pool_relu")]
    requant = onnx.helper.make_node(
        "QuantizeLinear",
        ["pooled_relu" if relu else "pooled", scale, q.input[2]],
        ["pooled_q"],
        name="pool_q",
    )
    dequant = onnx.helper.make_node(
        "DequantizeLinear", ["pooled_q", scale, q.input[2]], ["pooled_dq"], name="pool_dq"
    )
    at = nodes.index(conv)
    for offset, node in enumerate((pool, *(extra if relu else []), requant, dequant)):
        graph.node.insert(at + offset, node)  # type: ignore[attr-defined]
    conv.input[0] = "pooled_dq"  # type: ignore[attr-defined]


def graph_variant(kind: str, folder: Path) -> Path:
    """The saved export changed so that paths the trained graph never takes are taken; onnxruntime
    runs the same changed file, so the two must still agree."""
    import onnx
    from onnx import numpy_helper

    model = seven_bit(onnx.load(str(FIXTURES / "model_int8.onnx")))
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    activation_q = [
        n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits
    ]
    convs = [n for n in graph.node if n.op_type == "Conv"]
    fsq_q = next(  # the QuantizeLinear closing the FSQ block (after its Div)
        n
        for n in activation_q
        if any(d.op_type == "Div" and d.output[0] == n.input[0] for d in graph.node)
    )

    def own_zero_point(node: object, array: np.ndarray) -> None:
        """A new zero point for one activation's QuantizeLinear and the DequantizeLinear reading it
        (the exporter shares zero-point constants between tensors)."""
        name = f"{node.output[0]}_zero_point"  # type: ignore[attr-defined]
        graph.initializer.append(numpy_helper.from_array(array, name))
        for user in graph.node:
            if user is node or (
                user.op_type == "DequantizeLinear" and user.input[0] == node.output[0]
            ):  # type: ignore[attr-defined]
                user.input[2] = name

    if kind.startswith("max pool"):  # MaxPool between two convolutions, as pooled stages export it
        if kind.endswith("uint8"):  # the pooled activation as uint8 around 128: max keeps the order
            for node in [n for n in activation_q if "/encoder/" in n.name]:
                own_zero_point(node, np.array(128, dtype=np.uint8))
        if kind == "max pool relu on the input":  # an int8 tensor: the ReLU clamps negatives
            insert_max_pool(graph, convs[0], [1, 2], relu=True)
        else:
            insert_max_pool(graph, convs[1], [1, 3] if kind.endswith("overlapping") else [1, 2])
    elif kind == "zero points":  # asymmetric activations
        for offset, node in enumerate(activation_q):
            own_zero_point(node, np.array(-5 if offset == 0 else 3, dtype=np.int8))
    elif kind == "uint8":  # the conv stack's activations as uint8 around 128 (input and FSQ stay
        for node in [
            n for n in activation_q if "/encoder/" in n.name
        ]:  # int8, as edgekit exports them)
            own_zero_point(node, np.array(128, dtype=np.uint8))
    elif kind == "uint8 input":  # the input quantized as uint8 around 128 (a camera-style input)
        own_zero_point(activation_q[0], np.array(128, dtype=np.uint8))
    elif kind == "saturating":  # logits and FSQ codes on grids too fine for them: both saturate

        def finer(name: str, factor: int) -> str:
            array = numpy_helper.to_array(next(t for t in graph.initializer if t.name == name))
            fine = (array / factor).astype(array.dtype)
            graph.initializer.append(numpy_helper.from_array(fine, f"{name}_fine{factor}"))
            return f"{name}_fine{factor}"

        own_zero_point(fsq_q, np.array(3, dtype=np.int8))  # clipping depends on the zero point
        for node in (activation_q[-1], fsq_q):
            fine = finer(node.input[1], 40)
            for user in graph.node:
                if user is node or (
                    user.op_type == "DequantizeLinear" and user.input[0] == node.output[0]
                ):
                    user.input[1] = fine
        # the head's int32 bias follows its input's finer scale (same real bias, 40x the integers)
        fsq_dq = next(
            n
            for n in graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] == fsq_q.output[0]
        )
        head = next(n for n in convs if n.input[0] == fsq_dq.output[0])
        bias_dq = next(n for n in graph.node if n.output[0] == head.input[2])
        bias = numpy_helper.to_array(
            next(t for t in graph.initializer if t.name == bias_dq.input[0])
        )
        graph.initializer.append(numpy_helper.from_array(bias * 40, "head_bias_fine"))
        bias_dq.input[0] = "head_bias_fine"
        bias_dq.input[1] = finer(bias_dq.input[1], 40)
    elif kind == "constants as nodes":  # scalars (scales, zero points) as Constant nodes
        for tensor in [t for t in graph.initializer if not t.dims]:
            graph.initializer.remove(tensor)
            graph.node.insert(0, onnx.helper.make_node("Constant", [], [tensor.name], value=tensor))
    elif kind == "reshape":  # the flattening as Reshape(x, [0, -1]), as other exporters write it
        flatten = next(n for n in graph.node if n.op_type == "Flatten")
        graph.initializer.append(numpy_helper.from_array(np.array([0, -1], np.int64), "flat_shape"))
        reshape = onnx.helper.make_node(
            "Reshape", [flatten.input[0], "flat_shape"], list(flatten.output)
        )
        graph.node.insert(list(graph.node).index(flatten), reshape)
        graph.node.remove(flatten)
    elif kind == "weight zero points":  # per-channel weight zero points other than 0
        for conv in convs:
            dq = next(n for n in graph.node if n.output[0] == conv.input[1])
            scale = numpy_helper.to_array(
                next(t for t in graph.initializer if t.name == dq.input[1])
            )
            zero_point = np.resize(np.array([1, -2, 0], np.int8), scale.shape)
            graph.initializer.append(numpy_helper.from_array(zero_point, f"{dq.name}_zp"))
            dq.input[2] = f"{dq.name}_zp"
    elif kind == "default attributes":  # zero pads, unit strides, one group: the ONNX defaults
        for node in convs:
            keep = [a for a in node.attribute if not is_default_attribute(a)]
            del node.attribute[:]
            node.attribute.extend(keep)
    elif kind == "no bias":
        del convs[0].input[2]
    elif kind == "empty bias name":  # an omitted optional input written as ""
        convs[0].input[2] = ""
    elif (
        kind == "dilated and padded"
    ):  # height and width each with their own dilation, pads, strides

        def set_attr(node: onnx.NodeProto, name: str, value: list[int]) -> None:
            kept = [a for a in node.attribute if a.name != name]
            del node.attribute[:]
            node.attribute.extend([*kept, onnx.helper.make_attribute(name, value)])

        set_attr(convs[0], "dilations", [1, 2])
        set_attr(convs[0], "pads", [0, 2, 0, 3])
        set_attr(convs[1], "strides", [1, 3])
        set_attr(convs[2], "dilations", [2, 1])  # the (2, 1) kernel: rows 0 and 2 of a padded input
        set_attr(convs[2], "pads", [1, 0, 2, 0])
        set_attr(convs[2], "strides", [2, 1])
    elif kind == "per-tensor weight scale":  # one weight scale for the first conv (bias rescaled)
        inits = {t.name: t for t in graph.initializer}
        weight_dq = next(n for n in graph.node if n.output[0] == convs[0].input[1])
        bias_dq = next(n for n in graph.node if n.output[0] == convs[0].input[2])
        input_dq = next(n for n in graph.node if n.output[0] == convs[0].input[0])
        scale = numpy_helper.to_array(inits[weight_dq.input[1]])
        graph.initializer.append(
            numpy_helper.from_array(scale[:1].reshape(()).copy(), "w_scale_scalar")
        )
        graph.initializer.append(numpy_helper.from_array(np.array(0, np.int8), "w_zp_scalar"))
        weight_dq.input[1], weight_dq.input[2] = "w_scale_scalar", "w_zp_scalar"
        del weight_dq.attribute[:]  # no axis for a per-tensor scale
        input_scale = numpy_helper.to_array(inits[input_dq.input[1]])
        bias_scale = np.full(scale.shape, input_scale * scale[0], np.float32)
        graph.initializer.append(numpy_helper.from_array(bias_scale, "b_scale_per_tensor"))
        bias_dq.input[1] = "b_scale_per_tensor"
    del graph.value_info[:]  # the exporter's inferred types no longer hold
    path = folder / f"{kind.replace(' ', '_')}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    "kind",
    [
        "zero points",
        "uint8",
        "uint8 input",
        "saturating",
        "constants as nodes",
        "reshape",
        "weight zero points",
        "default attributes",
        "no bias",
        "empty bias name",
        "dilated and padded",
        "per-tensor weight scale",
        "max pool",
        "max pool overlapping",
        "max pool uint8",
        "max pool relu on the input",
    ],
)
def test_integer_reference_follows_graph_variants(kind: str, tmp_path: Path) -> None:
    from edgekit.onnx_io import OnnxRunner

    path = graph_variant(kind, tmp_path)
    X = np.load(FIXTURES / "inputs.npy")
    reference = IntegerReference.from_onnx(path)
    ort = OnnxRunner(path).run(X)
    result = reference.run(X)
    delta = np.abs(ort["logits"] - result.logits) / reference.output_scale
    assert delta.max() <= 1 + 1e-6 and (delta < 1e-6).mean() >= 0.95
    plain = IntegerReference.from_onnx(seven_bit_fixture(tmp_path / "plain")).run(X)
    if kind in (
        "zero points",
        "no bias",
        "saturating",
        "weight zero points",
        "empty bias name",
        "dilated and padded",
        "per-tensor weight scale",
        "max pool",
        "max pool overlapping",
        "max pool relu on the input",
    ):  # the change reaches the outputs
        assert not np.array_equal(plain.logits_q, result.logits_q)
    for step in (s for s in reference.steps if isinstance(s, ConvStep)):  # one per output channel
        assert step.scale.shape == step.bias.shape == (step.weight.shape[0],)
        assert step.scale.dtype == np.float32
    logits = reference.logits_tensor  # what HELLO_ACK describes is what the lowering computes
    assert (reference.output_scale, reference.output_zero_point) == (
        logits.scale,
        logits.zero_point,
    )
    if kind.startswith("max pool"):  # one exact step that keeps the scale, half the width
        (pool_index,) = [i for i, s in enumerate(reference.steps) if isinstance(s, MaxPoolStep)]
        pool = reference.steps[pool_index]
        assert reference.step_tensors[pool_index] == "pooled_q"
        assert (pool.input.scale, pool.input.zero_point) == (
            pool.output.scale,
            pool.output.zero_point,
        )
        assert pool.output.shape[2] == (pool.input.shape[2] - pool.kernel[1]) // 2 + 1
        q_input = reference.quantize_input(X)
        outputs, source = reference.run_steps(q_input), reference.sources[pool_index]
        before = q_input if source < 0 else outputs[source]
        k = pool.kernel[1]
        windows = np.stack([before[..., j : j + 2 * pool.output.shape[2] : 2] for j in range(k)])
        floor = pool.output.zero_point if pool.relu else pool.output.lo
        assert pool.relu == (kind == "max pool relu on the input")
        np.testing.assert_array_equal(outputs[pool_index], np.maximum(windows.max(axis=0), floor))
    if kind == "saturating":  # saturated, still agreeing
        assert result.logits_q.min() == -128 and (result.logits_q == -128).mean() < 0.9
        assert np.array_equal(ort["pre_fsq"], result.pre_fsq)


def broken_graph(kind: str) -> object:
    """The saved export changed into graphs the reference must refuse (ONNX's checker would refuse
    some of them before, so they are handed over unchecked)."""
    import onnx

    model = onnx.load(str(FIXTURES / "model_int8.onnx"))
    nodes = list(model.graph.node)
    ops = [n.op_type for n in nodes]
    fsq_add = ops.index("Add")
    if kind == "grouped conv":
        conv = nodes[ops.index("Conv")]
        del conv.attribute[:]
        conv.attribute.extend([onnx.helper.make_attribute("group", 2)])
    elif kind == "conv on an accumulator":  # a Conv reading a Relu with no QuantizeLinear between
        relu, conv = nodes[ops.index("Relu")], nodes[ops.index("Conv", ops.index("Relu"))]
        conv.input[0] = relu.output[0]
    elif kind == "FSQ with Sigmoid":
        nodes[fsq_add + 1].op_type = "Sigmoid"
    elif kind == "FSQ with Neg":
        nodes[fsq_add + 2].op_type = "Neg"
    elif kind.startswith("FSQ followed by"):  # Identity and Relu: names on both sides of Q...
        nodes[fsq_add + 6].op_type = kind.split()[-1]
    elif kind.startswith("input read by"):
        nodes[0].op_type = kind.split()[-1]
    elif kind.startswith("max pool"):
        convs = [n for n in nodes if n.op_type == "Conv"]
        if kind == "max pool requantized":
            insert_max_pool(model.graph, convs[1], [1, 2], requantize_scale=2.0)
        else:  # padded, or rounding up
            insert_max_pool(model.graph, convs[1], [1, 2])
            pool = next(n for n in model.graph.node if n.op_type == "MaxPool")
            pool.attribute.extend(
                [onnx.helper.make_attribute("pads", [0, 1, 0, 1])]
                if kind == "max pool padded"
                else [onnx.helper.make_attribute("ceil_mode", 1)]
            )
    elif kind == "unnamed unsupported node":
        nodes[ops.index("Flatten")].op_type = "Transpose"
        nodes[ops.index("Flatten")].name = ""
    return model


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("grouped conv", "is not an int8 x int8 convolution"),
        ("conv on an accumulator", "is not an int8 x int8 convolution"),
        ("FSQ with Sigmoid", "expected the FSQ block"),
        ("FSQ with Neg", "expected the FSQ block"),
        ("FSQ followed by Identity", "expected the FSQ block"),
        ("FSQ followed by Relu", "expected the FSQ block"),
        ("input read by Conv", "does not quantize its input"),
        ("input read by Relu", "does not quantize its input"),
        ("unnamed unsupported node", "unsupported node Transpose (Transpose)"),
        ("max pool requantized", "MaxPool pool is requantized to another scale"),
        ("max pool padded", "MaxPool pool pads, dilates or rounds up"),
        ("max pool ceil mode", "MaxPool pool pads, dilates or rounds up"),
    ],
)
def test_integer_reference_refuses_what_it_cannot_run(kind: str, message: str) -> None:
    with pytest.raises(ExportError, match=re.escape(message)):
        IntegerReference(broken_graph(kind)).run(np.load(FIXTURES / "inputs.npy"))  # type: ignore[arg-type]


def test_steps_are_immutable_and_named_after_their_nodes() -> None:
    import dataclasses

    import onnx

    model = onnx.load(str(FIXTURES / "model_int8.onnx"))
    reference = IntegerReference(model)
    conv_names = [n.name for n in model.graph.node if n.op_type == "Conv"]
    fsq_quantizer = next(n for i, n in enumerate(model.graph.node) if n.op_type == "QuantizeLinear"
                         and model.graph.node[i - 1].op_type == "Div")  # fmt: skip
    assert [s.name for s in reference.steps if isinstance(s, ConvStep)] == conv_names
    assert [s.name for s in reference.steps if isinstance(s, FsqStep)] == [fsq_quantizer.name]
    for frozen in (reference.input, *reference.steps):  # a Tensor and every kind of step
        with pytest.raises(dataclasses.FrozenInstanceError):
            frozen.name = "changed"  # type: ignore[misc]


def test_macs_count_every_multiply_of_every_convolution() -> None:
    """Against ONNX shape inference: output elements x (input channels x kernel area) per Conv."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(FIXTURES / "model_int8.onnx")))
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info
    }
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    expected = []
    for node in (n for n in model.graph.node if n.op_type == "Conv"):
        weight_dq = next(n for n in model.graph.node if n.output[0] == node.input[1])
        out, weight = shapes[node.output[0]], inits[weight_dq.input[0]]
        expected.append(int(np.prod(out[1:])) * int(np.prod(weight[1:])))
    reference = IntegerReference(model)
    assert [s.macs for s in reference.steps if isinstance(s, ConvStep)] == expected
    assert [s.output.size for s in reference.steps if isinstance(s, ConvStep)] == [
        int(np.prod(shapes[n.output[0]][1:])) for n in model.graph.node if n.op_type == "Conv"
    ]


def test_graph_outputs_must_be_quantized_activations() -> None:
    """Any step's output may be a graph output, the first included; the graph input may not."""
    import onnx

    model = onnx.load(str(FIXTURES / "model_int8.onnx"))
    nodes = list(model.graph.node)
    first_act = next(
        n
        for n in nodes
        if n.op_type == "DequantizeLinear"
        and n.input[0].endswith("QuantizeLinear_output_0")
        and "encoder.2" in n.name
    )
    input_dq = next(n for n in nodes if n.op_type == "DequantizeLinear" and "input_quant" in n.name)
    pre_fsq = model.graph.output[1].name
    for node in nodes:  # the FSQ block reads pre_fsq: point it at a renamed copy first
        node.input[:] = [f"{x}_kept" if x == pre_fsq else x for x in node.input]
        node.output[:] = [f"{x}_kept" if x == pre_fsq else x for x in node.output]
    model.graph.output[1].name = first_act.output[0]
    reference = IntegerReference(model)
    assert reference.output_steps[first_act.output[0]] == 0  # step 0 is a valid output
    assert reference.pre_fsq_tensor is reference.steps[0].output
    model.graph.output[1].name = input_dq.output[0]
    with pytest.raises(ExportError, match="is not a quantized activation"):
        IntegerReference(model)


def test_an_unsupported_op_on_an_activation_is_named() -> None:
    """Abs sorts before Add: it must not be mistaken for the start of the FSQ block."""
    import onnx

    model = onnx.load(str(FIXTURES / "model_int8.onnx"))
    flatten = next(n for n in model.graph.node if n.op_type == "Flatten")
    flatten.op_type, flatten.name = "Abs", "abs_node"
    with pytest.raises(ExportError, match=re.escape("unsupported node abs_node (Abs)")):
        IntegerReference(model)


def test_a_bias_at_another_scale_is_refused() -> None:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(FIXTURES / "model_int8.onnx"))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    bias_dq = next(n for n in model.graph.node if n.output[0] == conv.input[2])
    scale = numpy_helper.to_array(
        next(t for t in model.graph.initializer if t.name == bias_dq.input[1])
    )
    model.graph.initializer.append(numpy_helper.from_array(scale * np.float32(2), "bias_scale_x2"))
    bias_dq.input[1] = "bias_scale_x2"
    with pytest.raises(
        ExportError, match=f"bias of {re.escape(conv.name)} is not int32 at input\\*weight scale"
    ):
        IntegerReference(model)


def input_offset_variant(folder: Path, offset: str = "dither") -> Path:
    """The saved export with an Add before its input QuantizeLinear, as a dithered run exports it
    (`offset="dither"`: the pattern of two input steps), or adding the input to itself."""
    import onnx
    from edgekit.models.network import dither_pattern
    from onnx import helper, numpy_helper

    model = seven_bit(onnx.load(str(FIXTURES / "model_int8.onnx")))
    graph = model.graph
    quantizer = next(n for n in graph.node if n.input[0] == graph.input[0].name)
    shape = tuple(d.dim_value for d in graph.input[0].type.tensor_type.shape.dim)[1:]
    scale = float(
        numpy_helper.to_array(next(t for t in graph.initializer if t.name == quantizer.input[1]))
    )
    pattern = dither_pattern(shape, 2 * scale)[None]
    graph.initializer.append(numpy_helper.from_array(pattern, "input_dither"))
    other = "input_dither" if offset == "dither" else graph.input[0].name
    graph.node.insert(0, helper.make_node("Add", [graph.input[0].name, other], ["dithered"]))
    quantizer.input[0] = "dithered"
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "model_int8.onnx"))
    return folder / "model_int8.onnx"


def test_a_dithered_input_is_quantized_as_the_graph_quantizes_it(tmp_path: Path) -> None:
    """The host's integers (quantize_input) fed to the int8-input graph give what onnxruntime gives
    from floats through the graph's Add and QuantizeLinear, bit for bit; the dither moves them."""
    from edgekit.onnx_io import OnnxRunner, int8_input_variant, load_onnx, save_onnx

    path = input_offset_variant(tmp_path)
    reference = IntegerReference.from_onnx(path)
    save_onnx(int8_input_variant(load_onnx(path)), tmp_path / "int8_input.onnx")
    X = np.load(FIXTURES / "inputs.npy")
    X = np.concatenate([X, np.full_like(X[:4], 0.3 * reference.input_scale)])  # flat windows
    q = reference.quantize_input(X)
    np.testing.assert_array_equal(q, reference.input.quantize(X + reference.input_dither))
    assert (q != reference.input.quantize(X)).mean() > 0.2
    assert len(np.unique(q[-1])) >= 2  # a flat window spreads over neighbouring integers
    from_floats = OnnxRunner(path).run(X)
    from_integers = OnnxRunner(tmp_path / "int8_input.onnx").run(q.astype(np.int8))
    np.testing.assert_array_equal(from_integers["logits"], from_floats["logits"])
    np.testing.assert_array_equal(reference.run(X).logits, reference.run_quantized(q).logits)


def test_an_add_before_the_input_quantizer_must_be_a_constant_offset(tmp_path: Path) -> None:
    path = input_offset_variant(tmp_path, offset="input")
    with pytest.raises(ExportError, match="not a constant offset before the input QuantizeLinear"):
        IntegerReference.from_onnx(path)
