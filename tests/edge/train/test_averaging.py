"""Weight averaging (`train.ema_epochs`): the update rule, its time constant, and what a run keeps."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from edgekit.config import TrainConfig
from edgekit.rundir.checkpoint import load_checkpoint
from edgekit.train.averaging import WeightAverage, ema_decay
from edgekit.train.loop import optimizer_steps_per_epoch, run_training
from torch import nn


def test_the_decay_forgets_to_one_over_e_after_the_time_constant() -> None:
    for epochs, steps in [(5.0, 32), (0.5, 8), (2.0, 1)]:
        decay = ema_decay(epochs, steps)
        assert 0 < decay < 1
        assert decay ** round(epochs * steps) == pytest.approx(math.exp(-1))


@pytest.mark.parametrize(
    ("windows", "batch", "min_steps", "accum", "qat_batch", "float_steps", "qat_steps"),
    # 100 windows, batch 16, >= 32 steps: 5 passes of 7 batches, joined: 500 windows = 32 batches;
    # a QAT batch of 32 takes the same 500 windows in 16 batches
    [(100, 16, 0, 1, 0, 7, 7), (100, 16, 32, 1, 0, 32, 32), (100, 16, 32, 2, 0, 16, 16),
     (40, 16, 32, 1, 0, 28, 28), (40, 16, 0, 3, 0, 1, 1), (100, 16, 32, 1, 32, 32, 16),
     (100, 16, 32, 2, 64, 16, 4), (40, 16, 32, 1, 48, 28, 10)],
)  # fmt: skip
def test_optimizer_steps_per_epoch_counts_passes_batches_and_accumulation(
    windows: int,
    batch: int,
    min_steps: int,
    accum: int,
    qat_batch: int,
    float_steps: int,
    qat_steps: int,
) -> None:
    config = TrainConfig(
        batch_size=batch, min_epoch_steps=min_steps, grad_accum=accum, qat_batch_size=qat_batch
    )
    assert optimizer_steps_per_epoch(config, windows, "float") == float_steps
    assert optimizer_steps_per_epoch(config, windows, "teacher1") == float_steps
    assert optimizer_steps_per_epoch(config, windows, "qat") == qat_steps


def test_an_update_moves_floats_by_one_minus_decay_and_copies_counters() -> None:
    torch.manual_seed(0)
    trained = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    average = WeightAverage(trained, decay=0.75)
    before = {k: v.clone() for k, v in average.model.state_dict().items()}
    trained.train()(torch.randn(4, 2, 5, 5))  # BatchNorm statistics and batch counter move
    with torch.no_grad():
        for parameter in trained.parameters():
            parameter.add_(1.0)
    average.update(trained)
    now, target = average.model.state_dict(), trained.state_dict()
    for key, value in now.items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.75 * before[key] + 0.25 * target[key]), key
        else:
            assert torch.equal(value, target[key]), key
    assert int(now["1.num_batches_tracked"]) == 1
    assert not any(p.requires_grad for p in average.model.parameters())
    assert all(p.requires_grad for p in trained.parameters())  # the trained model is untouched


def test_a_run_keeps_the_average_and_resumes_from_it(
    tmp_path: Path, tiny_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `train.ema_epochs` each phase keeps the averaged weights, updated once per optimizer
    step (of that phase's batch size): best.pt is the average last.pt carries for --resume, not
    the trained weights it holds."""
    train = dataclasses.replace(
        tiny_config.train,
        float_epochs=2,
        qat_epochs=3,
        grad_accum=2,
        ema_epochs=1.0,
        qat_batch_size=32,
    )
    updates = []
    original = WeightAverage.update
    monkeypatch.setattr(
        WeightAverage, "update", lambda self, model: updates.append(1) or original(self, model)
    )
    metrics = run_training(
        tmp_path / "ema", dataclasses.replace(tiny_config, train=train), show_progress=False
    )
    windows = metrics["splits"]["train"]
    float_steps, qat_steps = (
        optimizer_steps_per_epoch(train, windows, p) for p in ("float", "qat")
    )
    assert qat_steps < float_steps
    assert len(updates) == 2 * float_steps + 3 * qat_steps
    last = torch.load(tmp_path / "ema/checkpoints/last.pt", weights_only=False)
    kept = load_checkpoint(tmp_path / "ema/checkpoints/best.pt")[0].state_dict()
    assert last["phase"] == "qat"
    assert all(torch.equal(kept[k], last["averaged_state"][k]) for k in kept)
    assert not all(torch.equal(kept[k], last["model_state"][k]) for k in kept)
