"""Augmentation: training batches only, deterministic by seed, shapes unchanged, each transform real."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from edgekit.config import AugmentConfig
from edgekit.data.prepare import from_hailo_layout, to_hailo_layout
from edgekit.train.augment import as_rows, as_series, augment_batch, mixup_batch

OFF = AugmentConfig(jitter=0, scale=0, shift=0, magnitude_warp=0, time_warp=0, mixup=0)
ALL_ON = AugmentConfig(
    jitter=0.05, scale=0.2, shift=0.2, magnitude_warp=0.2, time_warp=0.2, mixup=0.4, mask=0.2
)


def batch(n: int = 6, channels: int = 3, half: int = 20) -> torch.Tensor:
    return torch.randn(n, channels, 2, half, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(
    "field", ["jitter", "scale", "shift", "magnitude_warp", "time_warp", "mask"]
)
def test_each_transform_changes_the_batch_and_keeps_its_shape(field: str) -> None:
    X = batch()
    before = X.clone()
    out = augment_batch(
        X, dataclasses.replace(OFF, **{field: 0.2}), torch.Generator().manual_seed(0), "halves"
    )
    assert out.shape == X.shape and out.dtype == X.dtype
    assert not torch.equal(out, X)
    assert torch.equal(X, before)  # the caller's batch is left untouched


def test_all_off_is_the_identity() -> None:
    X = batch()
    for rows in ("halves", "interleaved"):
        assert torch.equal(augment_batch(X, OFF, torch.Generator().manual_seed(0), rows), X)


def test_same_seed_same_batch_other_seed_other_batch() -> None:
    X = batch()
    a = augment_batch(X, ALL_ON, torch.Generator().manual_seed(3), "interleaved")
    b = augment_batch(X, ALL_ON, torch.Generator().manual_seed(3), "interleaved")
    c = augment_batch(X, ALL_ON, torch.Generator().manual_seed(4), "interleaved")
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("rows", ["halves", "interleaved"])
def test_the_torch_layout_twins_match_the_numpy_ones(rows: str) -> None:
    series = np.arange(2 * 3 * 40, dtype=np.float32).reshape(2, 3, 40)
    X = to_hailo_layout(series, rows)
    assert np.array_equal(as_rows(torch.from_numpy(series), rows).numpy(), X)
    assert np.array_equal(as_series(torch.from_numpy(X), rows).numpy(), from_hailo_layout(X, rows))


def ramp_windows(count: int, length: int, rows: str) -> torch.Tensor:
    """Windows whose every sample is its own time index, in the given row layout."""
    series = np.tile(np.arange(length, dtype=np.float32), (count, 1, 1))
    return torch.from_numpy(to_hailo_layout(series, rows))


@pytest.mark.parametrize("rows", ["halves", "interleaved"])
def test_shift_moves_the_recorded_series_and_holds_the_edges(rows: str) -> None:
    """A shift moves the signal in time whatever fills the rows: with interleaved rows a shift of
    the flattened rows would move every sample two steps and wrap even samples into odd ones."""
    length = 40
    X = ramp_windows(8, length, rows)
    hold = dataclasses.replace(OFF, shift=0.25, shift_mode="hold")
    out = augment_batch(X, hold, torch.Generator().manual_seed(0), rows)
    assert out.shape == X.shape
    flat = torch.from_numpy(from_hailo_layout(out.numpy(), rows))[:, 0]
    offsets = flat[:, length // 2] - length // 2  # the middle sample tells each window's shift
    assert offsets.abs().max() <= 0.25 * length and offsets.abs().max() > 0
    for row, offset in zip(flat, offsets, strict=True):
        expected = (torch.arange(length) + offset).clamp(0, length - 1)
        assert torch.equal(row, expected)  # a pure shift, edge values held


@pytest.mark.parametrize("rows", ["halves", "interleaved"])
def test_a_wrapping_shift_is_a_circular_shift_of_the_recorded_series(rows: str) -> None:
    length = 40
    X = ramp_windows(8, length, rows)
    config = dataclasses.replace(OFF, shift=0.25, shift_mode="wrap")
    out = augment_batch(X, config, torch.Generator().manual_seed(0), rows)
    flat = torch.from_numpy(from_hailo_layout(out.numpy(), rows))[:, 0]
    offsets = flat[:, 0]  # sample 0 tells each window's shift
    assert len(set(offsets.tolist())) > 2
    for row, offset in zip(flat, offsets, strict=True):
        assert torch.equal(row, torch.roll(torch.arange(length, dtype=torch.float32), -int(offset)))
        assert sorted(row.tolist()) == list(range(length))  # nothing held, nothing lost


@pytest.mark.parametrize("rows", ["halves", "interleaved"])
def test_a_mask_zeroes_one_span_of_the_recorded_series_on_every_channel(rows: str) -> None:
    length, fraction = 40, 0.3
    X = ramp_windows(16, length, rows).repeat(1, 3, 1, 1) + 1  # no sample is 0 before masking
    config = dataclasses.replace(OFF, mask=fraction)
    out = augment_batch(X, config, torch.Generator().manual_seed(0), rows)
    flat = torch.from_numpy(from_hailo_layout(out.numpy(), rows))
    spans = set()
    for window in flat:
        masked = window[0] == 0
        assert all(
            torch.equal(channel == 0, masked) for channel in window
        )  # one span, all channels
        at = torch.nonzero(masked).flatten()
        if len(at):
            assert torch.equal(at, torch.arange(int(at[0]), int(at[-1]) + 1))  # contiguous in time
        assert len(at) <= round(fraction * length)
        kept = torch.arange(length, dtype=torch.float32) + 1
        assert torch.equal(window[0][~masked], kept[~masked])  # the rest untouched
        spans.add((int(at[0]) if len(at) else -1, len(at)))
    assert len(spans) > 8  # random length and place per window


@pytest.mark.parametrize("rows", ["halves", "interleaved"])
def test_time_warp_keeps_the_end_points_and_order(rows: str) -> None:
    length = 40
    X = ramp_windows(4, length, rows)
    out = augment_batch(
        X, dataclasses.replace(OFF, time_warp=0.5), torch.Generator().manual_seed(0), rows
    )
    flat = torch.from_numpy(from_hailo_layout(out.numpy(), rows))[:, 0]
    assert torch.allclose(flat[:, 0], torch.zeros(4))
    assert torch.allclose(flat[:, -1], torch.full((4,), length - 1.0))
    assert bool((flat.diff(dim=1) >= 0).all())  # monotone: time is warped, never reversed


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
    layouts: set[str] = set()
    original = train_module.augment_batch

    def spy(
        X: torch.Tensor, config: AugmentConfig, generator: torch.Generator, rows: str
    ) -> torch.Tensor:
        seen.append(X.numpy().copy())
        layouts.add(rows)
        return original(X, config, generator, rows)

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
    assert layouts == {data.stats["row_layout"]}  # unfolded as the run's own rows were filled
