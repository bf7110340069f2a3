"""Augmentation: training batches only, deterministic by seed, shapes unchanged, each transform real."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from edgekit.config import AugmentConfig
from edgekit.data.prepare import from_hailo_layout, to_hailo_layout
from edgekit.train.augment import (
    LOCKED_CORRELATION,
    as_rows,
    as_series,
    augment_batch,
    average_window,
    mixup_batch,
    resolve_shift_step,
    shared_cycle,
)

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


def interleaved_stream(count: int, quantities: int, steps: int, seed: int = 0) -> np.ndarray:
    """`(N, 1, quantities * steps)` windows that interleave `quantities` slowly varying readings
    sample by sample (each at its own level, every window starting with the first), as UCR's
    ACSF1 does with four."""
    rng = np.random.default_rng(seed)
    levels = rng.normal(0, 2, quantities)
    drift = np.cumsum(rng.normal(0, 0.05, (count, quantities, steps)), axis=2)
    readings = levels[None, :, None] + drift  # (N, quantities, steps)
    return readings.transpose(0, 2, 1).reshape(count, 1, quantities * steps).astype(np.float32)


@pytest.mark.parametrize("quantities", [2, 3, 4, 6])
def test_shared_cycle_finds_the_period_of_an_interleaved_stream(quantities: int) -> None:
    windows = interleaved_stream(30, quantities, 40)
    period, correlation = shared_cycle(windows.mean(axis=0))
    assert period == quantities and correlation >= LOCKED_CORRELATION


def test_shared_cycle_is_one_for_smooth_noisy_and_short_windows() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(200)
    aligned_sines = np.sin(2 * np.pi * t / 25 + rng.normal(0, 0.3, (20, 1, 1)))  # phase-locked
    random_phase = np.sin(2 * np.pi * t / 25 + rng.uniform(0, 2 * np.pi, (20, 1, 1)))
    noise = rng.normal(0, 1, (20, 3, 200))
    for windows in (aligned_sines, random_phase, noise):
        assert shared_cycle(windows.mean(axis=0))[0] == 1
    assert shared_cycle(np.ones((2, 3)))[0] == 1  # constant and too short to hold a cycle
    # a stream whose cycle is longer than MAX_CYCLE is left alone: shifts by any step
    assert shared_cycle(interleaved_stream(30, 20, 20).mean(axis=0))[0] == 1


@pytest.mark.parametrize("rows", ["halves", "interleaved"])
def test_auto_shift_step_follows_the_windows_in_either_row_layout(rows: str) -> None:
    windows = interleaved_stream(3000, 4, 30)  # more windows than one chunk of the average
    X = to_hailo_layout(windows, rows)
    assert np.allclose(average_window(X, rows), windows.mean(axis=0, dtype=np.float64))
    assert resolve_shift_step(OFF, X, rows).shift_step == 4
    explicit = dataclasses.replace(OFF, shift_step=3)
    assert resolve_shift_step(explicit, X, rows) is explicit
    smooth = to_hailo_layout(np.cumsum(np.ones((5, 2, 40), dtype=np.float32), axis=2), rows)
    assert resolve_shift_step(OFF, smooth, rows).shift_step == 1


@pytest.mark.parametrize("rows", ["halves", "interleaved"])
def test_shifts_move_by_whole_steps(rows: str) -> None:
    length = 48
    X = ramp_windows(64, length, rows)
    config = dataclasses.replace(OFF, shift=0.4, shift_mode="wrap", shift_step=4)
    out = augment_batch(X, config, torch.Generator().manual_seed(0), rows)
    offsets = torch.from_numpy(from_hailo_layout(out.numpy(), rows))[:, 0, 0]
    assert len(set(offsets.tolist())) > 3  # the windows moved by several different amounts
    assert all(int(offset) % 4 == 0 for offset in offsets)


def test_training_resolves_the_shift_step_from_its_train_windows(
    tmp_path: Path, tiny_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgekit.train.loop as train_module
    from edgekit.data.prepare import prepare_data
    from edgekit.data.record import WindowSet

    steps: set[int] = set()
    original = train_module.augment_batch

    def spy(
        X: torch.Tensor, config: AugmentConfig, generator: torch.Generator, rows: str
    ) -> torch.Tensor:
        steps.add(config.shift_step)
        return original(X, config, generator, rows)

    monkeypatch.setattr(train_module, "augment_batch", spy)
    X = interleaved_stream(60, 4, 16)
    y = np.arange(60) % 2
    X[y == 1, :, ::4] += 1.0  # the second class: the first quantity reads higher
    windows = WindowSet(X, y, np.arange(60), ["a", "b"], ["stream"], 10.0, "interleaved")
    config = dataclasses.replace(
        tiny_config, train=dataclasses.replace(tiny_config.train, float_epochs=2, qat_epochs=1)
    )
    data = prepare_data(config.data, windows=windows)
    metrics = train_module.run_training(tmp_path / "run", config, data=data, show_progress=False)
    assert metrics["augment_shift_step"] == 4 and steps == {4}
