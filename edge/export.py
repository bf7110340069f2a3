"""Common export machinery: ONNX export (legacy exporter, static batch 1), onnxsim, checks, reference I/O.

Targets (edge/targets/) call these; `run_export` dispatches through the one TARGETS table.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from edgekit import __version__
from edgekit.data.prepare import normalization_mode, row_layout
from edgekit.errors import ExportError
from edgekit.models import Conv2dFSQNet
from edgekit.onnx_io import op_counts
from edgekit.rundir.artifacts import atomic_path
from torch import nn

if TYPE_CHECKING:
    from edgekit.rundir.run import Run

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
REFERENCE_SCHEMA_VERSION = 1


def deployment_metadata(run: Run) -> dict[str, str]:
    """How to feed the model, carried by every exported model file (ONNX metadata_props, the
    generated C header) so that the file alone says it: classes, channels, window, sample rate,
    normalisation, row layout, and the config that made it (the edgekit version is added by
    `set_metadata`)."""
    stats = run.data.stats
    return {
        "edgekit_class_names": ",".join(run.data.class_names),
        "edgekit_channel_names": ",".join(stats["channel_names"]),
        "edgekit_window_length": str(stats["window_length"]),
        "edgekit_sample_rate_hz": repr(float(stats["fs"])),
        "edgekit_layout": f"NCHW (B, C, 2, T/2), {stats['layout']}",
        "edgekit_row_layout": row_layout(stats),
        "edgekit_normalization": normalization_mode(stats),
        "edgekit_channel_mean": ",".join(map(repr, stats["mean"])),
        "edgekit_channel_std": ",".join(map(repr, stats["std"])),
        "edgekit_length_policy": json.dumps(stats.get("length_policy")),
        "edgekit_config_hash": run.config.digest(),
    }


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence exporter chatter (deprecation and tracer warnings) so the CLI output stays readable."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def set_metadata(model: Any, metadata: dict[str, str]) -> None:
    """Replace a model's metadata_props with edgekit's version and `metadata`."""
    del model.metadata_props[:]
    for key, value in {"edgekit_version": __version__, **metadata}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)


def simplify(model: Any, keep_qdq: bool) -> Any:
    """onnxsim with invariants: Q/DQ node counts unchanged (0.8.x keeps them; old builds folded weights)."""
    import onnxsim

    before = op_counts(model)
    with quiet():
        simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise ExportError(
            "onnxsim could not validate the simplified graph; report this with the run directory"
        )
    after = op_counts(simplified)
    if keep_qdq and any(before[op] != after[op] for op in QDQ_OPS):
        raise ExportError(
            f"onnxsim changed the Q/DQ nodes ({dict(before)} -> {dict(after)}); pin onnxsim>=0.8"
        )
    if len(simplified.graph.input) != 1:
        raise ExportError(
            f"simplified graph has {len(simplified.graph.input)} inputs; expected one"
        )
    return simplified


def export_torch(
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    opset: int,
    output_names: list[str],
    quantized: bool,
    input_name: str = "input",
) -> Any:
    """Export with the legacy TorchScript exporter (dynamo raises the opset to >= 18 and refuses int32 bias)."""
    import onnx

    module = module.eval().cpu()
    kwargs: dict[str, Any] = {
        "input_names": [input_name],
        "output_names": output_names,
        "do_constant_folding": True,
    }
    with quiet(), atomic_path(path) as tmp:
        try:
            if quantized:
                from brevitas.export import export_onnx_qcdq

                export_onnx_qcdq(
                    module,
                    example,
                    str(tmp),
                    opset_version=opset,
                    dynamo=False,
                    keep_initializers_as_inputs=False,
                    **kwargs,
                )
            else:
                torch.onnx.export(
                    module, (example,), str(tmp), opset_version=opset, dynamo=False, **kwargs
                )
        except Exception as err:
            raise ExportError(
                f"ONNX export failed ({type(err).__name__}: {str(err).splitlines()[0][:160]})"
            ) from err
        model = onnx.load(str(tmp))
    return model


class WithPreFsq(nn.Module):
    """Outputs `(logits, pre_fsq)` so parity can compare FSQ codes, not only logits."""

    def __init__(self, model: Conv2dFSQNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.model.encode(x)
        return self.model.classify(z), z


class Part(nn.Module):
    """One side of the Hailo split: `encode` (device) or `classify` (host)."""

    def __init__(self, model: Conv2dFSQNet, part: str) -> None:
        super().__init__()
        self.model, self.part = model, part

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x) if self.part == "device" else self.model.classify(x)
