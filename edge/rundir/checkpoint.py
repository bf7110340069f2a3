"""Checkpoints carry the network config so `load_checkpoint(path)` rebuilds the model from the file alone."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from edgekit.errors import CheckpointError, StorageError
from edgekit.models import Conv2dFSQNet, NetConfig
from edgekit.rundir.artifacts import atomic_path

CHECKPOINT_SCHEMA_VERSION = 1


def save_checkpoint(path: str | Path, model: Conv2dFSQNet, **state: Any) -> Path:
    """A checkpoint that rebuilds its model alone: weights, NetConfig and training state."""
    payload = {
        "schema_version": CHECKPOINT_SCHEMA_VERSION,
        "net_config": model.config.to_dict(),
        "model_state": model.state_dict(),
        **state,
    }
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as err:  # torch reports a failed write (disk full) as RuntimeError
            raise StorageError(
                f"cannot write {path} ({str(err).splitlines()[-1][:120]}); free disk space and train again"
            ) from err
    return Path(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint's payload, loaded with weights_only=True; corrupt or foreign files are refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; run `edgekit train` first")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (
        RuntimeError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        EOFError,
        ValueError,
        OSError,
    ) as err:
        # a truncated zip makes torch's reader raise OSError (Errno 22)
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not an edgekit checkpoint ({type(err).__name__}); retrain or restore it"
        ) from err
    if not isinstance(payload, dict) or "net_config" not in payload or "model_state" not in payload:
        raise CheckpointError(
            f"{path} is not an edgekit checkpoint (no net_config/model_state); retrain"
        )
    if payload.get("schema_version") != CHECKPOINT_SCHEMA_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint schema {payload.get('schema_version')}, expected "
            f"{CHECKPOINT_SCHEMA_VERSION}; retrain"
        )
    return payload


def build_model(net_config: dict[str, Any], state: dict[str, Any], source: str) -> Conv2dFSQNet:
    """The Conv2dFSQNet a checkpoint describes, with its weights, in eval mode."""
    try:
        model = Conv2dFSQNet(NetConfig.from_dict(net_config))
    except (TypeError, KeyError, ValueError) as err:
        raise CheckpointError(
            f"{source}: its model config does not describe a Conv2dFSQNet ({err}); retrain"
        ) from err
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0][:160]
        raise CheckpointError(
            f"{source}: weights do not fit the Conv2dFSQNet architecture ({first}); retrain"
        ) from err
    return model.eval()


def load_checkpoint(path: str | Path) -> tuple[Conv2dFSQNet, dict[str, Any]]:
    """Model (eval mode) and the whole payload of a checkpoint."""
    payload = read_checkpoint(path)
    return build_model(payload["net_config"], payload["model_state"], str(path)), payload
