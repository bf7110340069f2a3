"""ONNX files without torch: load with a full check, save atomically, run with onnxruntime.

The device agent, the readiness checker and the integer reference need only these, so they
start without importing torch.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from edgekit.errors import ExportError
from edgekit.rundir.artifacts import atomic_path


def load_onnx(path: str | Path) -> Any:
    """Load and fully check an ONNX file; corrupt or truncated files give one clear error."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ExportError(
            f"ONNX file {path} does not exist; run `edgekit export` first or check the path"
        )
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as err:  # onnx raises DecodeError, ValidationError, InferenceError...
        detail = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise ExportError(f"{path} is not a valid ONNX model ({detail}); re-export it") from err
    return model


def save_onnx(model: Any, path: str | Path) -> Path:
    """Check, then write an ONNX model atomically."""
    import onnx

    onnx.checker.check_model(model, full_check=True)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return Path(path)


# metadata_props key -> what `edgekit check` calls it, in the order it prints them
METADATA_LABELS = {
    "edgekit_version": "edgekit version",
    "edgekit_config_hash": "config hash",
    "edgekit_kind": "kind",
    "edgekit_part": "part",
    "edgekit_class_names": "classes",
    "edgekit_channel_names": "channels",
    "edgekit_window_length": "window length",
    "edgekit_sample_rate_hz": "sample rate (Hz)",
    "edgekit_normalization": "normalisation",
    "edgekit_channel_mean": "channel mean",
    "edgekit_channel_std": "channel std",
    "edgekit_layout": "layout",
    "edgekit_row_layout": "row layout",
    "edgekit_length_policy": "length policy",
    "edgekit_fsq_levels": "FSQ levels",
    "edgekit_input_scale": "input scale",
    "edgekit_input_zero_point": "input zero point",
    "edgekit_input_dither": "input dither (peak to peak; the Add before the input quantizer)",
    "edgekit_logit_scale": "logit scale",
    "edgekit_pre_fsq_scale": "FSQ input scale",
    "edgekit_hw_arch": "Hailo architecture",
}


def describe_metadata(metadata: dict[str, str]) -> list[str]:
    """The model file's metadata_props as `edgekit check` prints them: edgekit's keys by name,
    then any others as they are."""
    if not metadata:
        return ["metadata: none (not written by edgekit export; it cannot say how to feed it)"]
    known = [(label, metadata[key]) for key, label in METADATA_LABELS.items() if key in metadata]
    other = [(key, value) for key, value in metadata.items() if key not in METADATA_LABELS]
    width = max(len(label) for label, _ in known + other)
    return [f"{label:<{width}}  {value}" for label, value in known + other]


def op_counts(model: Any) -> Counter:
    """How many nodes of each op type a graph has (export invariants and summaries)."""
    return Counter(node.op_type for node in model.graph.node)


class OnnxRunner:
    """onnxruntime session over a batch-1 graph, looping over windows (exports are static batch 1)."""

    def __init__(self, path_or_model: str | Path | Any) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        source = (
            str(path_or_model)
            if isinstance(path_or_model, str | Path)
            else path_or_model.SerializeToString()
        )
        try:
            self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # InvalidProtobuf, InvalidArgument, Fail, ... (pybind classes)
            where = (
                path_or_model if isinstance(path_or_model, str | Path) else "the in-memory model"
            )
            detail = (
                str(err).strip().splitlines()[0][-120:] if str(err).strip() else type(err).__name__
            )
            raise ExportError(
                f"onnxruntime cannot load {where} ({detail}); re-export it with `edgekit export`"
            ) from err
        self.input = self.session.get_inputs()[0]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run_window(self, window: np.ndarray) -> dict[str, np.ndarray]:
        """One window without its batch axis in, each output without its batch axis out."""
        values = self.session.run(None, {self.input.name: window[None]})
        return {name: value[0] for name, value in zip(self.output_names, values, strict=True)}

    def run(self, X: np.ndarray) -> dict[str, np.ndarray]:
        results = [self.run_window(window) for window in X]
        return {name: np.stack([r[name] for r in results]) for name in self.output_names}


def int8_input_variant(model: Any) -> Any:
    """Drop the input QuantizeLinear (and the dither Add before it) and take int8 directly (runtimes
    will not accept int8 otherwise); the host quantizes as `IntegerReference.quantize_input`."""
    import onnx

    variant = onnx.ModelProto()
    variant.CopyFrom(model)
    graph = variant.graph

    def consumer(tensor: str) -> Any:
        return next((n for n in graph.node if tensor in n.input), None)

    first = consumer(graph.input[0].name)
    dither = first if first is not None and first.op_type == "Add" else None
    if dither is not None:
        first = consumer(dither.output[0])
    if first is None or first.op_type != "QuantizeLinear":
        raise ValueError("the int8 graph does not start with a QuantizeLinear on its input")
    for node in (dither, first):
        if node is not None:
            graph.node.remove(node)
    graph.input[0].name = first.output[0]
    graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.INT8
    return variant
