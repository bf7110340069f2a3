"""Per-layer parity's pieces: the first differing layer, and exposing layers without changing the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edgekit.compare import compare
from edgekit.layer_parity import EXACT, LayerReport, expose_layers, first_divergence, format_layers

from ..quantize.test_integer_reference import FIXTURES


def layer(index: int, differs: bool) -> LayerReport:
    a = np.arange(6, dtype=float).reshape(2, 3)
    pair = compare(f"layer {index}", a, a + (1.0 if differs else 0.0), EXACT, lsb=1.0)
    return LayerReport(index, f"conv{index}", "conv", f"t{index}", (3, 1, 1), pair)


def test_the_first_layer_that_differs_is_named_not_a_later_one() -> None:
    layers = [layer(0, False), layer(1, True), layer(2, True)]
    assert first_divergence(layers) is layers[1]
    assert first_divergence([layer(0, False), layer(1, False)]) is None
    summary = {
        "layers": [x.to_dict() for x in layers],
        "first_difference": layers[1].to_dict(),
    }
    assert format_layers(summary).splitlines()[-1] == "first layer that differs: 1 conv1"


def test_exposed_layers_are_graph_outputs_of_their_integer_type_and_the_logits_stay() -> None:
    import onnx
    from edgekit.onnx_io import OnnxRunner, load_onnx
    from edgekit.quantize.integer_reference import IntegerReference

    path: Path = FIXTURES / "model_int8.onnx"
    model = load_onnx(path)
    reference = IntegerReference(model)
    exposed = expose_layers(model, reference.step_tensors)
    outputs = {o.name: o.type.tensor_type.elem_type for o in exposed.graph.output}
    assert set(reference.step_tensors) <= set(outputs)
    int_types = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    assert {outputs[name] for name in reference.step_tensors} <= int_types
    X = np.random.default_rng(0).normal(size=(3, *reference.input.shape)).astype(np.float32)
    plain, with_layers = OnnxRunner(model).run(X), OnnxRunner(exposed).run(X)
    assert all(np.array_equal(plain[name], with_layers[name]) for name in plain)
    for name, step in zip(reference.step_tensors, reference.steps, strict=True):
        assert with_layers[name][0].size == step.output.size, name  # the layer's own integers


def test_the_pytorch_side_is_aligned_layer_by_layer(exported_run: Path) -> None:
    """The QAT model's quantizer outputs line up with the integer steps (exact on a good export), and
    a change to one convolution's weights shows first at that layer, not before."""
    import torch
    from edgekit.layer_parity import layer_parity
    from edgekit.rundir.run import Run

    run = Run(exported_run)
    X = run.data.arrays["test"][0][:6]
    model = run.path / "export/onnx/model_int8.onnx"
    good = layer_parity(model, X, qat_model=run.qat_model())
    assert all(layer.torch is not None and (layer.torch.max_lsb or 0) <= 1 for layer in good)
    changed = run.qat_model()
    convs = [i for i, m in enumerate(changed.encoder) if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        changed.encoder[convs[3]].weight.mul_(-1.0)  # the fourth convolution
    step = next(i for i, g in enumerate(good) if g.name.startswith(f"/encoder/encoder.{convs[3]}/"))
    layers = layer_parity(model, X, qat_model=changed)
    torch_lsb = [layer.torch.max_lsb for layer in layers if layer.torch is not None]
    assert len(torch_lsb) == len(layers) and step >= 3  # pooling steps may sit in between
    assert max(torch_lsb[:step]) <= 1 and torch_lsb[step] > 1
    assert all(layer.pair.passed == g.pair.passed for layer, g in zip(layers, good, strict=True))


def test_the_generated_c_is_compared_layer_by_layer(
    exported_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build/edgekit_layers writes every step's output: bit-exact with the integer reference on
    every layer (the C's contract), its last layer is what the plain build returns, and a layer
    changed on the C side is found at that layer."""
    from edgekit.layer_parity import layer_parity
    from edgekit.quantize.integer_reference import IntegerReference
    from edgekit.rundir.run import Run
    from edgekit.targets import mcu

    run = Run(exported_run)
    X = run.data.arrays["test"][0][:6]
    model, build = run.path / "export/onnx/model_int8.onnx", run.path / "export/mcu"
    reference = IntegerReference.from_onnx(model)
    q = reference.quantize_input(X)
    layers_c = mcu.run_native_layers(build, q, reference)
    logits = layers_c[reference.output_steps[reference.output_names[0]]].reshape(len(q), -1)
    assert np.array_equal(logits, mcu.run_native(build, q, reference)["logits_q"])
    good = layer_parity(model, X, c_build=build)
    assert all(layer.c is not None and layer.c.max_lsb == 0 for layer in good)
    original = mcu.run_native_layers

    def one_layer_off(out_dir: Path, q_inputs: np.ndarray, ref: IntegerReference) -> list:
        outputs = original(out_dir, q_inputs, ref)
        outputs[4] = outputs[4] + 1
        return outputs

    monkeypatch.setattr(mcu, "run_native_layers", one_layer_off)
    changed = layer_parity(model, X, c_build=build)
    assert [layer.c.max_lsb for layer in changed[:4]] == [0, 0, 0, 0]
    assert changed[4].c.max_lsb > 0.99
