"""Hailo readiness rules R1-R16 (shared/reference/hailo.md §5a) on the device ONNX graph.

Errors (E) refuse the export; warnings (W) are listed; info rows describe the graph. R13-R15 need
the run (split check, calibration set, 8-bit damage estimate) and are skipped on a bare file.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

QDQ_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "QLinearConv",
    "QLinearMatMul",
    "QLinearAdd",
    "ConvInteger",
    "MatMulInteger",
    "QGemm",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
}
ONNX_DOMAINS = ("", "ai.onnx")
AXIS_OPS = ("Concat", "Split", "Slice", "Tile")
LAYERS = {
    "Add",
    "ArgMax",
    "AveragePool",
    "BatchNormalization",
    "Concat",
    "Conv",
    "ConvTranspose",
    "DepthToSpace",
    "Div",
    "Dropout",
    "Gemm",
    "LayerNormalization",
    "LogSoftmax",
    "MatMul",
    "Max",
    "MaxPool",
    "Min",
    "Mul",
    "Neg",
    "Pad",
    "Pow",
    "ReduceL2",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceSum",
    "ReduceSumSquare",
    "Reshape",
    "Resize",
    "Slice",
    "Softmax",
    "SpaceToDepth",
    "Split",
    "Sub",
    "Transpose",
    "Upsample",
    "GlobalAveragePool",
    "Abs",
    "Clip",
    "Elu",
    "Equal",
    "Exp",
    "Greater",
    "HardSigmoid",
    "LeakyRelu",
    "Less",
    "Log",
    "PRelu",
    "Relu",
    "Sigmoid",
    "Softplus",
    "Softsign",
    "Sqrt",
    "Tanh",
}
DENY = {
    "Round",
    "Floor",
    "Ceil",
    "Sign",
    "Mod",
    "BitShift",
    "Cast",
    "TopK",
    "NonZero",
    "NonMaxSuppression",
    "GatherElements",
    "GatherND",
    "ScatterND",
    "ScatterElements",
    "Scatter",
    "GridSample",
    "Loop",
    "If",
    "Scan",
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Erf",
    "LSTM",
    "GRU",
    "RNN",
}
PLUMBING = {"Shape", "ConstantOfShape", "Range", "Expand", "Where", "Gather"}
SHUFFLE = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten"}
NEUTRAL = {"Constant", "Identity"}
END_OPS = {
    "Conv",
    "Gemm",
    "MatMul",
    "Relu",
    "Tanh",
    "Sigmoid",
    "LeakyRelu",
    "Clip",
    "Add",
    "GlobalAveragePool",
    "AveragePool",
}
MIN_CALIB, GOOD_CALIB = 64, 1024
MAX_CODE_FLIP_RATE = 0.01

REASONS = {
    "R1": "no QuantizeLinear/DequantizeLinear/QLinear*: the DFC parser only accepts float ONNX and quantizes itself",
    "R2": "every op is a documented Hailo layer or activation",
    "R3": "no refused ops (Round, Floor, Cast, TopK, Gather*, control flow, RNNs) in the device part",
    "R4": "no shape plumbing left after onnxsim (Shape, Range, Expand, Where, Gather)",
    "R5": "all dims static, batch 1, nothing operates on the batch axis",
    "R6": "rank-4 NCHW input, every tensor rank <= 4, every Conv 2-D (no Conv1d)",
    "R7": "the (B,C,T)->(B,C,2,T/2) reshape happens on the host, not in the device graph",
    "R8": "Reshape/Transpose/Flatten inside the device part become shuffle layers that often fail",
    "R9": "ReduceMax only over channels with keepdims; pooling via GlobalAveragePool/ReduceMean over H,W",
    "R10": "Slice/Split only on the channel axis",
    "R11": "opset 13..21 (13 for DFC 3.x / Hailo-8)",
    "R12": "Softmax/ArgMax at the end belong on the host",
    "R13": "the split is exact: host(device(x)) == full(x), ending on a real Conv/activation output",
    "R14": "calibration set is (N, H, W, C) float32 NHWC of the device input, finite, "
    "real windows (64+, 1024 recommended)",
    "R15": "offline estimate of 8-bit damage on the device part (FSQ code flips), not bit-exact",
    "R16": "size of the device graph: parameters, MACs, long (1,k) kernels, dilations",
}


def is_quantized_op(op_type: str) -> bool:
    """Quantized ops of ONNX and of onnxruntime's contrib domain (QLinear*, QGemm, ...)."""
    return op_type in QDQ_OPS or op_type.startswith("QLinear")


def _rule(
    rule: str, severity: str, findings: list[str], status: str | None = None, **extra: Any
) -> dict[str, Any]:
    status = status or (
        "pass" if not findings else {"E": "fail", "W": "warn", "I": "info"}[severity]
    )
    return {
        "rule": rule,
        "severity": severity,
        "status": status,
        "reason": REASONS[rule],
        "findings": findings,
        **extra,
    }


def _shapes(model: Any) -> dict[str, list[int | str]]:
    """The inferred sizes of every tensor whose rank shape inference knows."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model).graph
    return {
        value.name: [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value.type.tensor_type.shape.dim
        ]
        for value in [*inferred.input, *inferred.value_info, *inferred.output]
        if value.type.tensor_type.HasField("shape")
    }


def _constants(graph: Any) -> dict[str, np.ndarray]:
    """The tensors fixed in the file: initializers and the outputs of Constant nodes."""
    from onnx import TensorProto, helper, numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type != "Constant" or node.domain not in ONNX_DOMAINS:
            continue
        for a in node.attribute:
            value = helper.get_attribute_value(a)
            if isinstance(value, TensorProto):
                values[node.output[0]] = numpy_helper.to_array(value)
            elif a.name in ("value_int", "value_ints", "value_float", "value_floats"):
                values[node.output[0]] = np.asarray(value)
    return values


def _static(dims: list[int | str] | None) -> bool:
    """Every size known before run time and positive."""
    return dims is not None and all(isinstance(d, int) and d > 0 for d in dims)


def _changed_axes(node: Any, shapes: dict[str, list[int | str]]) -> list[int] | None:
    """The axes a Concat, Split, Slice or Tile works on: those where an output's size differs from
    its first input's. Read off the inferred shapes, so negative axes, defaults (Split's axis 0,
    Slice's all axes) and the inputs newer opsets take instead of attributes all count alike; None
    when a size is not known before run time."""
    dims = [shapes.get(name) for name in (node.input[0], *node.output)]
    known = [d for d in dims if d is not None and _static(d)]
    if len(known) < len(dims):
        return None
    source, *outputs = known
    if len(source) < 2:  # a vector (shape plumbing, R4's) has no batch or channel axis
        return []
    return [a for a in range(len(source)) if any(out[a] != source[a] for out in outputs)]


def _reduced_axes(
    node: Any, attr: dict[str, Any], constants: dict[str, np.ndarray], rank: int | None
) -> list[int] | None:
    """A reduction's axes, non-negative when the input's rank is known: the attribute, or the
    constant second input that replaces it in newer opsets; every axis when neither is given;
    None when the axes are computed at run time."""
    if "axes" in attr:
        axes = list(attr["axes"])
    elif len(node.input) > 1 and node.input[1]:
        if node.input[1] not in constants:
            return None
        axes = [int(a) for a in constants[node.input[1]].reshape(-1)]
    else:
        axes = []
    if not axes:
        if attr.get("noop_with_empty_axes", 0):
            return []
        return None if rank is None else list(range(rank))
    return sorted(a + rank if a < 0 and rank is not None else a for a in axes)


def _in_gelu(erf: Any, consumers: dict[str, list[Any]]) -> bool:
    """Whether an Erf is part of GELU's pattern x * (1 + erf(x / sqrt 2)) / 2, which the DFC takes
    (hailo.md §1.2): its output plus one is multiplied. A standalone Erf is refused."""
    adds = consumers.get(erf.output[0], [])
    return bool(adds) and all(
        add.op_type == "Add" and any(m.op_type == "Mul" for m in consumers.get(add.output[0], []))
        for add in adds
    )


def _products_per_output(node: Any, attr: dict[str, Any], weight: tuple[int, ...]) -> int:
    """Multiply-accumulates per output value of a layer with constant weights: a Conv's input
    channels (per group) times its kernel, a Gemm's or MatMul's inner dimension."""
    if node.op_type == "Conv":
        return math.prod(weight[1:])
    if node.op_type == "Gemm":
        return weight[1] if attr.get("transB", 0) else weight[0]
    return weight[-2:][0]  # MatMul: (..., K, N), or a vector (K,)


def _kernel_rank(attr: dict[str, Any], weight: list[int | str] | None) -> int | None:
    """How many spatial axes a Conv's kernel has: its kernel_shape, else its weight's rank - 2."""
    if "kernel_shape" in attr:
        return len(attr["kernel_shape"])
    return None if not weight else len(weight) - 2


def graph_rules(model: Any) -> list[dict[str, Any]]:
    """R1-R12 and R16 on one ONNX graph (the device part)."""
    import onnx

    graph = model.graph
    shapes = _shapes(model)
    constants = _constants(graph)
    dims_of = {**shapes, **{name: list(value.shape) for name, value in constants.items()}}
    nodes = list(graph.node)  # protobuf wrappers are recreated on access: key by position
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in nodes]
    consumers: dict[str, list[Any]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    label = lambda n: f"{n.name or n.output[0]} ({n.op_type})"  # noqa: E731
    known = set().union(LAYERS, DENY, PLUMBING, SHUFFLE, NEUTRAL)
    quantized = {id(n) for n in nodes if is_quantized_op(n.op_type)}
    rules = [
        _rule("R1", "E", [label(n) for n in nodes if id(n) in quantized]),
        _rule(
            "R2",
            "E",
            [
                label(n) if n.domain in ONNX_DOMAINS else f"{label(n)} from domain {n.domain}"
                for n in nodes
                if id(n) not in quantized
                and (n.op_type not in known or n.domain not in ONNX_DOMAINS)
            ],
        ),
        _rule(
            "R3",
            "E",
            [
                label(n)
                for n in nodes
                if n.op_type in DENY and not (n.op_type == "Erf" and _in_gelu(n, consumers))
            ],
        ),
        _rule("R4", "E", [label(n) for n in nodes if n.op_type in PLUMBING]),
    ]
    static = [f"{name}: {dims}" for name, dims in shapes.items() if not _static(dims) and dims]
    tensors = [*(i.name for i in graph.input), *(o for n in nodes for o in n.output)]
    static += [f"{name}: shape unknown" for name in tensors if name and name not in dims_of]
    device_input = graph.input[0].name if graph.input else None
    input_shape = None if device_input is None else shapes.get(device_input)
    if input_shape and input_shape[0] != 1:
        static.append(f"input batch is {input_shape[0]}, expected 1")
    axes_of = {id(n): _changed_axes(n, dims_of) for n in nodes if n.op_type in AXIS_OPS}
    static += [
        f"{label(n)} works on the batch axis"
        for n in nodes
        if n.op_type in AXIS_OPS and 0 in (axes_of[id(n)] or [])
    ]
    rules.append(_rule("R5", "E", static))
    rank = []
    if device_input is None:
        rank.append("the graph has no input, expected one of rank 4 (NCHW)")
    elif input_shape is None:
        rank.append(f"input {device_input} has no known rank, expected 4 (NCHW)")
    elif len(input_shape) != 4:
        rank.append(f"input {device_input} has rank {len(input_shape)}, expected 4 (NCHW)")
    rank += [f"{name} has rank {len(dims)}" for name, dims in shapes.items() if len(dims) > 4]
    for node, attr in zip(nodes, attrs, strict=True):
        if node.op_type not in ("Conv", "ConvTranspose"):
            continue
        kernel_rank = _kernel_rank(attr, dims_of.get(node.input[1]))
        if kernel_rank is not None and kernel_rank != 2:
            rank.append(f"{label(node)} is {kernel_rank}-D, not 2-D")
    rules.append(_rule("R6", "E", rank))
    rules.append(
        _rule(
            "R7",
            "E",
            [
                label(n)
                for n in (consumers.get(device_input, []) if device_input else [])
                if n.op_type in SHUFFLE
            ],
        )
    )
    dense = lambda c: c.op_type in ("Gemm", "MatMul") and c.input[1] in constants  # noqa: E731
    shuffles = []
    for node in nodes:
        if node.op_type not in SHUFFLE:
            continue
        dims = shapes.get(node.input[0], [])
        readers = consumers.get(node.output[0], [])
        if not (
            node.op_type in ("Flatten", "Reshape")
            and dims[2:] == [1, 1]
            and readers
            and all(dense(c) for c in readers)
        ):
            shuffles.append(label(node))
    rules.append(_rule("R8", "W", shuffles))
    reduce_errors = []
    for node, attr in zip(nodes, attrs, strict=True):
        if node.op_type not in ("ReduceMax", "ReduceMean"):
            continue
        source = shapes.get(node.input[0])
        axes = _reduced_axes(node, attr, constants, len(source) if source else None)
        if axes is None:
            reduce_errors.append(f"{label(node)} reduces axes known only at run time")
        elif node.op_type == "ReduceMax" and (axes != [1] or attr.get("keepdims", 1) != 1):
            reduce_errors.append(f"{label(node)} reduces axes {axes}")
        elif node.op_type == "ReduceMean" and axes not in ([2, 3], [2], [3], []):
            reduce_errors.append(f"{label(node)} averages axes {axes}")
    rules.append(_rule("R9", "E", reduce_errors))
    sliced = []
    for node in nodes:
        if node.op_type not in ("Slice", "Split"):
            continue
        axes = axes_of[id(node)]
        if axes is None:
            sliced.append(f"{label(node)} works on axes known only at run time")
        elif any(a != 1 for a in axes):
            sliced.append(f"{label(node)} works on axes {axes}")
    rules.append(_rule("R10", "W", sliced))
    opset = next((o.version for o in model.opset_import if o.domain in ONNX_DOMAINS), 0)
    rules.append(_rule("R11", "W", [] if 13 <= opset <= 21 else [f"opset {opset}"], opset=opset))
    outputs = {o.name for o in graph.output}
    rules.append(
        _rule(
            "R12",
            "W",
            [
                label(n)
                for n in nodes
                if n.op_type in ("Softmax", "ArgMax", "LogSoftmax") and set(n.output) & outputs
            ],
        )
    )
    params = sum(v.size for v in constants.values() if np.issubdtype(v.dtype, np.floating))
    macs, unverified = 0, []
    for node, attr in zip(nodes, attrs, strict=True):
        if node.op_type not in ("Conv", "Gemm", "MatMul") or node.input[1] not in constants:
            continue
        weight = constants[node.input[1]].shape
        out = dims_of.get(node.output[0], [])
        if out and _static(out):  # per window: the batch axis is left out
            macs += math.prod(int(d) for d in out[1:]) * _products_per_output(node, attr, weight)
        if node.op_type != "Conv":
            continue
        if max(weight[2:]) > 7:
            unverified.append(
                f"{label(node)} kernel {list(weight[2:])} (unverified on the DFC; may need compiler resources)"
            )
        dilations = attr.get("dilations", [])
        # hailo.md records no dilation limits: say so, do not refuse
        if any(d > 1 for d in dilations):
            unverified.append(
                f"{label(node)} dilation {dilations} (unverified on the DFC; no published limit)"
            )
    rules.append(_rule("R16", "I", unverified, status="info", parameters=params, macs=macs))
    return rules


def split_rule(
    max_abs: float | None, end_nodes: list[str], end_ops: list[str], tolerance: float = 1e-5
) -> dict[str, Any]:
    """R13: the device/host split reproduces the full float model."""
    findings = [
        f"{name} is a {op}, not a Conv/Gemm/activation output"
        for name, op in zip(end_nodes, end_ops, strict=True)
        if op not in END_OPS
    ]
    if max_abs is None or not np.isfinite(max_abs) or max_abs > tolerance:
        findings.append(f"host(device(x)) differs from full(x) by {max_abs} > {tolerance}")
    return _rule("R13", "E", findings, max_abs=max_abs, tolerance=tolerance, end_nodes=end_nodes)


def calibration_rule(calib: np.ndarray, device_input_nchw: list[int]) -> dict[str, Any]:
    """R14: the calibration set is NHWC float32 of the device input, finite, big enough."""
    errors, warnings = [], []
    expected = [device_input_nchw[2], device_input_nchw[3], device_input_nchw[1]]
    if list(calib.shape[1:]) != expected:
        errors.append(
            f"shape {list(calib.shape)} is not (N, {expected[0]}, {expected[1]}, {expected[2]}) NHWC"
        )
    if calib.dtype != np.float32:
        errors.append(f"dtype {calib.dtype}, expected float32")
    if not np.isfinite(calib).all():
        errors.append("contains NaN/Inf")
    if not len(calib):
        errors.append("the calibration set is empty")
    elif len(calib) < MIN_CALIB:
        warnings.append(
            f"{len(calib)} windows < {MIN_CALIB} (the usual calibset_size); model.alls uses all {len(calib)}"
        )
    elif len(calib) < GOOD_CALIB:
        warnings.append(
            f"{len(calib)} windows < {GOOD_CALIB} recommended (all training windows were used)"
        )
    if errors:
        return _rule("R14", "E", errors + warnings, windows=len(calib))
    return _rule("R14", "W", warnings, windows=len(calib))


def estimate_rule(estimate: dict[str, Any]) -> dict[str, Any]:
    """R15: the offline estimate of 8-bit damage to FSQ codes."""
    findings = []
    if estimate["fsq_code_flip_rate"] > MAX_CODE_FLIP_RATE:
        findings.append(
            f"estimated FSQ code flip rate {estimate['fsq_code_flip_rate']:.3f} > {MAX_CODE_FLIP_RATE}; "
            "consider quantization_param(input_layer1, precision_mode=a16_w16) in model.alls"
        )
    return _rule("R15", "W", findings, **estimate)


def skipped(rule: str, why: str) -> dict[str, Any]:
    """A rule that needs a run, reported as skipped on a bare file."""
    return _rule(rule, "W", [], status="skipped", why=why)


def summarise(rules: list[dict[str, Any]], file: str) -> dict[str, Any]:
    """The readiness report: verdict, errors, warnings and the rules in order."""
    errors = [r["rule"] for r in rules if r["status"] == "fail"]
    warnings = [r["rule"] for r in rules if r["status"] == "warn"]
    return {
        "schema_version": 1,
        "file": file,
        "ready": not errors,
        "errors": errors,
        "warnings": warnings,
        "rules": sorted(rules, key=lambda r: int(r["rule"][1:])),
    }


def check_hailo_readiness(path: str) -> dict[str, Any]:
    """Readiness of any ONNX file (`edgekit check --target hailo FILE`); run-only rules are skipped."""
    from edgekit.onnx_io import load_onnx

    model = load_onnx(path)
    why = "needs a run directory: use `edgekit export RUN --target hailo`"
    rules = graph_rules(model) + [skipped(r, why) for r in ("R13", "R14", "R15")]
    return summarise(rules, str(path))


def format_report(report: dict[str, Any]) -> str:
    """Any target's readiness report as text: the verdict, then one row per rule and its findings."""
    target = {"hailo": "Hailo", "onnx": "int8 CPU runtimes"}[report.get("target", "hailo")]
    lines = [f"{report['file']}: {'READY' if report['ready'] else 'NOT READY'} for {target}"]
    for rule in report["rules"]:
        lines.append(f"  {rule['rule']:<4} {rule['status']:<7} {rule['reason']}")
        lines += [f"         - {finding}" for finding in rule["findings"]]
    if "host_cpu" in report:
        host = report["host_cpu"]
        lines.append(f"  host: {host['model'] or host['machine']}; {host['int8_kernel_class']}")
    return "\n".join(lines)
