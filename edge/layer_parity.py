"""Per-layer parity: where an int8 mismatch starts, not only that the outputs differ.

The same windows go through the integer reference, through onnxruntime with every layer's int8
output exposed as a graph output and, when given, through the PyTorch QAT model (the output of
each layer's activation quantizer) and the generated C built natively (`build/edgekit_layers`,
which writes every step's stored output); each layer is compared with edgekit.compare (max |Δ| in LSB of
that layer, cosine, exact fraction) and the first layer that differs is named. Exposing a
QuantizeLinear's output leaves onnxruntime's fused QLinear kernels as they are (the tensor exists
between fused nodes anyway); the logits of the exposed graph are checked against the plain one so
a report never rests on a graph that computes differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edgekit.compare import PairReport, Tolerance, compare
from edgekit.errors import ParityError

EXACT = Tolerance(max_lsb=0, min_top1_agreement=0, min_code_agreement=0)


@dataclass
class LayerReport:
    """One layer's integers, integer reference against onnxruntime."""

    index: int
    name: str  # the ONNX node the layer lowers (its Conv, pooling or FSQ QuantizeLinear)
    kind: str  # conv | maxpool | pool | fsq
    tensor: str  # the graph tensor holding the layer's integers
    shape: tuple[int, ...]
    pair: PairReport  # integer reference vs onnxruntime
    torch: PairReport | None = None  # integer reference vs the PyTorch QAT model
    c: PairReport | None = None  # integer reference vs the generated C (the mcu target)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "kind": self.kind,
            "tensor": self.tensor,
            "shape": list(self.shape),
            "max_lsb": self.pair.max_lsb,
            "mean_lsb": self.pair.mean_lsb,
            "cosine": self.pair.cosine_mean,
            "exact_fraction": self.pair.exact_fraction,
            "exact": self.pair.passed,
            **(
                {}
                if self.torch is None
                else {"torch_max_lsb": self.torch.max_lsb, "torch_cosine": self.torch.cosine_mean}
            ),
            **({} if self.c is None else {"c_max_lsb": self.c.max_lsb}),
        }


def expose_layers(model: Any, tensors: list[str]) -> Any:
    """A copy of the ONNX model with `tensors` (QuantizeLinear outputs) added as graph outputs."""
    import onnx

    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    graph = exposed.graph
    producers = {out: node for node in graph.node for out in node.output}
    constants = {t.name: t for t in graph.initializer}
    known = {o.name for o in graph.output}
    for name in tensors:
        if name in known:
            continue
        zero_point = producers[name].input[2]
        elem_type = (
            constants[zero_point].data_type if zero_point in constants else onnx.TensorProto.INT8
        )
        graph.output.append(onnx.helper.make_tensor_value_info(name, elem_type, None))
    return exposed


def qat_layer_outputs(qat_model: Any, X: np.ndarray) -> list[np.ndarray]:
    """The PyTorch QAT model's fake-quantized output of each layer the integer reference lowers,
    in the same order: every encoder activation quantizer (a ReLU's, or the requantizer after a
    max pool), then pooling, FSQ input, FSQ codes and logits."""
    import torch

    modules = [
        *[m for m in qat_model.encoder if type(m).__name__ in ("QuantReLU", "QuantIdentity")],
        qat_model.pool_quant,
        qat_model.pre_fsq_quant,
        qat_model.code_quant,
        qat_model.logit_quant,
    ]
    captured: dict[int, list[np.ndarray]] = {i: [] for i in range(len(modules))}

    def keep(index: int) -> Any:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            value = getattr(output, "value", output)  # a QuantTensor carries its values
            captured[index].append(value.detach().float().cpu().numpy())

        return hook

    hooks = [m.register_forward_hook(keep(i)) for i, m in enumerate(modules)]
    try:
        qat_model.eval()
        with torch.no_grad():
            for start in range(0, len(X), 256):
                qat_model(torch.from_numpy(np.ascontiguousarray(X[start : start + 256])))
    finally:
        for hook in hooks:
            hook.remove()
    return [np.concatenate(captured[i]) for i in range(len(modules))]


def layer_parity(
    model_path: Path,
    X: np.ndarray,
    accumulation: str = "int32",
    qat_model: Any = None,
    c_build: Path | None = None,
) -> list[LayerReport]:
    """Each layer of the int8 model on windows `X`: the integer reference (`accumulation` as in
    IntegerReference) against onnxruntime on this host, given `qat_model` against PyTorch, and
    given `c_build` (an mcu export folder) against the generated C."""
    from edgekit.onnx_io import OnnxRunner, load_onnx
    from edgekit.quantize.integer_reference import IntegerReference, step_kind

    model = load_onnx(model_path)
    reference = IntegerReference(model, accumulation)
    expected = reference.run_steps(reference.quantize_input(X))
    exposed = OnnxRunner(expose_layers(model, reference.step_tensors)).run(X)
    plain = OnnxRunner(model).run(X)
    if not all(np.array_equal(plain[name], exposed[name]) for name in plain):
        raise ParityError(
            f"{model_path}: exposing its layers changed onnxruntime's outputs, so a per-layer "
            "comparison would not describe the plain model; report this with the model file"
        )
    torch_outputs = qat_layer_outputs(qat_model, X) if qat_model is not None else None
    c_outputs = None
    if c_build is not None:
        from edgekit.targets.mcu import run_native_layers

        c_outputs = run_native_layers(c_build, reference.quantize_input(X), reference)
    if torch_outputs is not None and len(torch_outputs) != len(expected):
        torch_outputs = None  # not edgekit's layer sequence: compare with onnxruntime only
    layers = []
    for index, (step, tensor, q) in enumerate(
        zip(reference.steps, reference.step_tensors, expected, strict=True)
    ):
        kind = step_kind(step)
        out = step.output
        name, expected_real = f"layer {index} {step.name}", out.dequantize(q)
        ort_q = exposed[tensor].astype(np.int64)  # uint8 minus a zero point must not wrap
        pair = _exact(name, expected_real, out.dequantize(ort_q), "ort-int8", out.scale)
        versus_torch = (
            None
            if torch_outputs is None
            else _exact(name, expected_real, torch_outputs[index], "pytorch-qat", out.scale)
        )
        versus_c = (
            None
            if c_outputs is None
            else _exact(name, expected_real, out.dequantize(c_outputs[index]), "c-host", out.scale)
        )
        layers.append(
            LayerReport(index, step.name, kind, tensor, out.shape, pair, versus_torch, versus_c)
        )
    return layers


def _exact(
    name: str, expected: np.ndarray, candidate: np.ndarray, label: str, lsb: float
) -> PairReport:
    """One layer's reals, integer reference against `label`, held to 0 LSB of the layer."""
    rows = len(expected)
    return compare(
        name,
        expected.reshape(rows, -1),
        np.asarray(candidate, np.float32).reshape(rows, -1),
        EXACT,
        labels=("integer-reference", label),
        lsb=lsb,
    )


def first_divergence(layers: list[LayerReport]) -> LayerReport | None:
    """The first layer in graph order whose integers differ (None when every layer is exact)."""
    return next((layer for layer in layers if not layer.pair.passed), None)


def format_layers(summary: dict[str, Any]) -> str:
    """The per-layer table the console prints, from parity.json's `layers` and `first_difference`."""
    with_torch = all("torch_max_lsb" in layer for layer in summary["layers"])
    with_c = all("c_max_lsb" in layer for layer in summary["layers"])
    lines = [
        "per layer, integer reference vs onnxruntime int8"
        + (", vs PyTorch QAT" if with_torch else "")
        + (", vs the generated C" if with_c else "")
        + " (LSB of each layer's output):",
        f"{'#':>2} {'layer':<34} {'kind':<7} {'shape':<12} {'max LSB':>7} {'cosine':>9} {'exact':>7}"
        + (f" {'torch LSB':>9}" if with_torch else "")
        + (f" {'C LSB':>6}" if with_c else ""),
    ]
    for layer in summary["layers"]:
        shape = "x".join(map(str, layer["shape"]))
        lines.append(
            f"{layer['index']:>2} {layer['name'][:34]:<34} {layer['kind']:<7} {shape:<12} "
            f"{layer['max_lsb'] or 0:>7g} {layer['cosine']:>9.6f} {layer['exact_fraction']:>7.4f}"
            + (f" {layer['torch_max_lsb'] or 0:>9.3g}" if with_torch else "")
            + (f" {layer['c_max_lsb'] or 0:>6.3g}" if with_c else "")
        )
    first = summary["first_difference"]
    lines.append(
        "every layer exact"
        if first is None
        else f"first layer that differs: {first['index']} {first['name']}"
    )
    return "\n".join(lines)
