"""Augmentation: training batches only, deterministic by seed, shapes unchanged, each transform real."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from edgekit.config import AugmentConfig
from edgekit.train.augment import augment_batch, mixup_batch

OFF = AugmentConfig(jitter=0, scale=0, shift=0, magnitude_warp=0, time_warp=0, mixup=0)
ALL_ON = AugmentConfig(
    jitter=0.05, scale=0.2, shift=0.2, magnitude_warp=0.2, time_warp=0.2, mixup=0.4
)


def batch(n: int = 6, channels: int = 3, half: int = 20) -> torch.Tensor:
    return torch.randn(n, channels, 2, half, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("field", ["jitter", "scale", "shift", "magnitude_warp", "time_warp"])
def test_each_transform_changes_the_batch_and_keeps_its_shape(field: str) -> None:
    X = batch()
    before = X.clone()
    out = augment_batch(
        X, dataclasses.replace(OFF, **{field: 0.2}), torch.Generator().manual_seed(0)
    )
    assert out.shape == X.shape and out.dtype == X.dtype
    assert not torch.equal(out, X)
    assert torch.equal(X, before)  # the caller's batch is left untouched


def test_all_off_is_the_identity() -> None:
    X = batch()
    assert torch.equal(augment_batch(X, OFF, torch.Generator().manual_seed(0)), X)


def test_same_seed_same_batch_other_seed_other_batch() -> None:
    X = batch()
    a = augment_batch(X, ALL_ON, torch.Generator().manual_seed(3))
    b = augment_batch(X, ALL_ON, torch.Generator().manual_seed(3))
    c = augment_batch(X, ALL_ON, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_shift_moves_the_series_across_the_row_boundary_and_holds_the_edges() -> None:
    length = 40
    series = torch.arange(length, dtype=torch.float32).view(1, 1, length).repeat(8, 1, 1)
    X = series.view(8, 1, 2, length // 2)
    out = augment_batch(X, dataclasses.replace(OFF, shift=0.25), torch.Generator().manual_seed(0))
    flat = out.view(8, length)
    offsets = flat[:, length // 2] - length // 2  # the middle sample tells each window's shift
    assert offsets.abs().max() <= 0.25 * length and offsets.abs().max() > 0
    for row, offset in zip(flat, offsets, strict=True):
        expected = (torch.arange(length) + offset).clamp(0, length - 1)
        assert torch.equal(row, expected)  # a pure shift, edge values held, across both rows


def test_time_warp_keeps_the_end_points_and_order() -> None:
    length = 40
    X = torch.arange(length, dtype=torch.float32).view(1, 1, 2, length // 2).repeat(4, 1, 1, 1)
    out = augment_batch(
        X, dataclasses.replace(OFF, time_warp=0.5), torch.Generator().manual_seed(0)
    ).view(4, length)
    assert torch.allclose(out[:, 0], torch.zeros(4)) and torch.allclose(
        out[:, -1], torch.full((4,), length - 1.0)
    )
    assert bool((out.diff(dim=1) >= 0).all())  # monotone: time is warped, never reversed


def test_mixup_mixes_pairs_with_the_own_label_dominant() -> None:
    X, y = batch(8), torch.arange(8)
    mixed, partner, weight = mixup_batch(X, y, 0.4, torch.Generator().manual_seed(0))
    assert mixed.shape == X.shape and sorted(partner.tolist()) == list(range(8))
    assert bool(((weight >= 0.5) & (weight <= 1)).all())
    index = int(torch.nonzero(partner != y)[0])
    expected = weight[index] * X[index] + (1 - weight[index]) * X[partner[index]]
    assert torch.allclose(mixed[index], expected)


def test_training_augments_train_batches_only(
    tmp_path: Path, tiny_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every batch the augmenter sees comes from the train split; val, test and the saved
    arrays never pass through it."""
    import edgekit.train.loop as train_module
    from edgekit.rundir.run import Run

    seen: list[np.ndarray] = []
    original = train_module.augment_batch

    def spy(X: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
        seen.append(X.numpy().copy())
        return original(X, config, generator)

    monkeypatch.setattr(train_module, "augment_batch", spy)
    config = dataclasses.replace(
        tiny_config, train=dataclasses.replace(tiny_config.train, float_epochs=2, qat_epochs=1)
    )
    train_module.run_training(tmp_path / "run", config, show_progress=False)
    data = Run(tmp_path / "run").data
    train_rows = {row.tobytes() for row in np.asarray(data.arrays["train"][0])}
    other_rows = {
        row.tobytes() for name in ("val", "test") for row in np.asarray(data.arrays[name][0])
    }
    batch_rows = [row.tobytes() for X in seen for row in X]
    assert seen and all(row in train_rows for row in batch_rows)
    assert not other_rows & set(batch_rows)
    assert len(batch_rows) == len(train_rows) * 3  # every train window once per epoch, 2 + 1 epochs
