"""A run directory as an object: its config, its data split, and the models each later stage needs."""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from pathlib import Path

import torch
from edgekit.artifacts import read_json, sha256_file
from edgekit.checkpoint import build_model, load_checkpoint
from edgekit.config import RunConfig, load_run_config
from edgekit.data.prepare import PreparedData, prepare_data
from edgekit.errors import CheckpointError
from edgekit.models import Conv2dFSQNet


class Run:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise CheckpointError(
                f"run directory {self.path} does not exist; run `edgekit train --out {self.path}` first"
            )
        self.config: RunConfig = load_run_config(self.path)

    @cached_property
    def data(self) -> PreparedData:
        """The split and normalisation training used: saved arrays, else re-derived from the config."""
        saved = PreparedData.load(self.path / "data", self.config.data)
        return saved if saved is not None else prepare_data(self.config.data)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def qat_checkpoint(self) -> Path:
        """`calibrated.pt` when the calibrate stage adopted it for the current best.pt, else best.pt."""
        best = self.checkpoints / "best.pt"
        if not best.is_file():
            raise CheckpointError(f"{best} is missing; run `edgekit train --out {self.path}` first")
        report_path = self.path / "calibration" / "report.json"
        report = read_json(report_path) if report_path.is_file() else {}
        calibrated = self.checkpoints / "calibrated.pt"
        # a calibration of an earlier training (same folder, retrained since) must not be used
        if (
            report.get("adopted")
            and calibrated.is_file()
            and report.get("source_checkpoint_sha256") == sha256_file(best)
        ):
            return calibrated
        return best

    def qat_model(self) -> Conv2dFSQNet:
        return load_checkpoint(self.qat_checkpoint())[0]

    def float_model(self) -> Conv2dFSQNet:
        """The float twin with its BatchNorms folded (numerically the trained float model)."""
        from edgekit.train import folded_float_state

        trained, _ = load_checkpoint(self.checkpoints / "float.pt")
        config = replace(trained.config, batch_norm=False)
        return build_model(
            config.to_dict(), folded_float_state(trained), str(self.checkpoints / "float.pt")
        )


def float_with_qat_weights(qat: Conv2dFSQNet) -> Conv2dFSQNet:
    """Float graph carrying the QAT model's int8 weights and int32 biases (dequantized).

    Hailo's compiler wants float ONNX and quantizes itself; this keeps the weights QAT learned.
    """
    config = replace(qat.config, quant_preset=None, batch_norm=False)
    state = {}
    with torch.no_grad():
        for name, module in qat.named_modules():
            if hasattr(module, "quant_weight"):
                state[f"{name}.weight"] = module.quant_weight().value.detach().clone()
                state[f"{name}.bias"] = module.bias.detach().clone()
    return build_model(config.to_dict(), state, "QAT-effective float weights")
