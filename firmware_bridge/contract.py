"""The model's wire contract: which file a device runs, its hash, and the tensors that travel.

The host (verify) and the device side (agent, emulator) both derive it from the run's int8 export
here, so neither takes it from the other: a device that describes its model differently is caught
field by field.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from edgekit.errors import DeviceError
from edgekit.firmware_bridge import protocol as wire
from edgekit.firmware_bridge.protocol import TensorDesc
from edgekit.rundir import layout

if TYPE_CHECKING:
    from edgekit.quantize.integer_reference import IntegerReference


def model_file(run_dir: str | Path) -> Path:
    """The int8 QDQ export a device runs and the host checks against."""
    path = Path(run_dir) / layout.INT8_MODEL
    if not path.is_file():
        raise DeviceError(f"{path} is missing; run `edgekit export {run_dir} --target onnx` first")
    return path


def model_hash(path: Path) -> bytes:
    """HELLO_ACK's model hash: the first 8 bytes of the file's sha256."""
    return hashlib.sha256(path.read_bytes()).digest()[:8]


def model_descriptors(
    reference: IntegerReference,
) -> tuple[tuple[TensorDesc, ...], tuple[TensorDesc, ...]]:
    """What travels for this model, as HELLO_ACK must describe it: one int8 input without the batch
    dimension and one int8 output (the logits), each with the scale and zero point of its
    QuantizeLinear in model_int8.onnx. pre_fsq is not streamed."""
    graph = reference.model.graph
    shape = tuple(d.dim_value for d in graph.input[0].type.tensor_type.shape.dim)[1:]
    classes = graph.output[0].type.tensor_type.shape.dim[1].dim_value
    return (
        (TensorDesc(wire.DType.INT8, shape, reference.input_scale, reference.input_zero_point),),
        (
            TensorDesc(
                wire.DType.INT8, (classes,), reference.output_scale, reference.output_zero_point
            ),
        ),
    )


def descriptor_mismatch(
    role: str, advertised: tuple[TensorDesc, ...], expected: tuple[TensorDesc, ...]
) -> str | None:
    """The first field in which a device's descriptors differ from the model's, in words; scales are
    compared as the float32 that travels."""
    if len(advertised) != len(expected):
        return f"{len(advertised)} {role} tensors advertised, the model streams {len(expected)}"
    for index, (got, want) in enumerate(zip(advertised, expected, strict=True)):
        fields = {
            "dtype": (got.dtype, want.dtype),
            "shape": (tuple(got.shape), tuple(want.shape)),
            "scale": (np.float32(got.scale), np.float32(want.scale)),
            "zero_point": (got.zero_point, want.zero_point),
        }
        for name, (device_value, model_value) in fields.items():
            if device_value != model_value:
                return f"{role} {index} {name} is {device_value}, the model's is {model_value}"
    return None
