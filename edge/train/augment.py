"""Training-batch augmentation on the host: the device graph never sees it.

Windows arrive in Hailo layout `(B, C, 2, T/2)`; every transform works on the window as one time
series `(B, C, T)`, unfolded by the run's row layout (`data.row_layout`), and returns the same
layout, so a shift or warp moves the signal as it was recorded: across the row boundary for
`halves`, both rows together for `interleaved`. All randomness comes from the caller's generator:
one seed, one sequence of batches.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from edgekit.config import AugmentConfig
from edgekit.data.prepare import CHUNK_WINDOWS, from_hailo_layout

WARP_KNOTS = 4  # smooth random curves: interpolated between this many random knots (plus ends)
MAX_CYCLE = 16  # the longest shared cycle looked for: a stream interleaving up to 16 quantities
LOCKED_CORRELATION = 0.9  # the average window correlates this well with itself one cycle later


def _smooth_curve(
    batch: int, length: int, sigma: float, generator: torch.Generator
) -> torch.Tensor:
    """`(B, T)` curves around 1: random knots ~ N(1, sigma), linearly interpolated."""
    knots = 1 + sigma * torch.randn(batch, 1, WARP_KNOTS + 2, generator=generator)
    return torch.nn.functional.interpolate(knots, size=length, mode="linear", align_corners=True)[
        :, 0
    ]


def _resample(series: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of `(B, C, T)` at fractional `positions` `(B, T)` in [0, T-1]."""
    low = positions.floor().long().clamp(0, series.shape[-1] - 1)
    high = (low + 1).clamp(max=series.shape[-1] - 1)
    weight = (positions - low).unsqueeze(1)
    expand = (-1, series.shape[1], -1)
    at_low = series.gather(2, low.unsqueeze(1).expand(*expand))
    at_high = series.gather(2, high.unsqueeze(1).expand(*expand))
    return at_low + weight * (at_high - at_low)


def average_window(X: np.ndarray, rows: str) -> np.ndarray:
    """`(C, T)`: the mean over windows of a `(N, C, 2, T/2)` array in time order, in chunks."""
    total = np.zeros(X.shape[1:], dtype=np.float64)
    for start in range(0, len(X), CHUNK_WINDOWS):
        total += X[start : start + CHUNK_WINDOWS].sum(axis=0, dtype=np.float64)
    return from_hailo_layout((total / max(len(X), 1))[None], rows)[0]


def shared_cycle(mean_window: np.ndarray) -> tuple[int, float]:
    """(period, correlation) of a short cycle that every window repeats at the same phase, from the
    average window `(C, T)`; period 1 when there is none.

    Some recordings interleave several quantities sample by sample into one stream; the average
    window then correlates with itself one period later far better than one sample later (UCR's
    ACSF1: 0.999 four samples later, -0.23 one later). A smooth signal's correlates best at lag 1."""
    centred = mean_window - mean_window.mean(axis=1, keepdims=True)
    correlations = [0.0]  # index = lag
    for lag in range(1, min(MAX_CYCLE, centred.shape[1] // 2) + 1):
        early, late = centred[:, :-lag], centred[:, lag:]
        norm = float(np.sqrt((early**2).sum() * (late**2).sum()))
        correlations.append(float((early * late).sum()) / norm if norm > 0 else 0.0)
    for lag in range(2, len(correlations)):
        if correlations[lag] >= LOCKED_CORRELATION and correlations[lag] > correlations[1]:
            return lag, correlations[lag]
    return 1, correlations[1] if len(correlations) > 1 else 0.0


def resolve_shift_step(config: AugmentConfig, X_train: np.ndarray, rows: str) -> AugmentConfig:
    """`augment.shift_step=0` (auto) made concrete: the train windows' shared cycle, else 1, so a
    shift never moves one interleaved quantity into another's place in the cycle."""
    if config.shift_step:
        return config
    return replace(config, shift_step=shared_cycle(average_window(X_train, rows))[0])


def as_series(X: torch.Tensor, rows: str) -> torch.Tensor:
    """`(B, C, 2, T/2)` -> `(B, C, T)` in time order (torch twin of `from_hailo_layout`)."""
    batch, channels = X.shape[:2]
    if rows == "interleaved":
        X = X.transpose(2, 3)
    return X.reshape(batch, channels, -1)


def as_rows(series: torch.Tensor, rows: str) -> torch.Tensor:
    """`(B, C, T)` -> `(B, C, 2, T/2)`, the inverse of `as_series`."""
    batch, channels, length = series.shape
    if rows == "interleaved":
        return series.reshape(batch, channels, length // 2, 2).transpose(2, 3).contiguous()
    return series.reshape(batch, channels, 2, length // 2).contiguous()


def augment_batch(
    X: torch.Tensor, config: AugmentConfig, generator: torch.Generator, rows: str
) -> torch.Tensor:
    """A transformed copy of a `(B, C, 2, T/2)` training batch whose rows are filled as `rows`
    says; the input is left untouched. Shifts move by whole `config.shift_step`s (0 counts as 1:
    `resolve_shift_step` makes auto concrete first)."""
    batch, channels = X.shape[:2]
    series = as_series(X, rows)
    length = series.shape[-1]
    steps = torch.arange(length, dtype=X.dtype).expand(batch, length)
    if config.time_warp > 0:
        speed = _smooth_curve(batch, length, config.time_warp, generator).clamp(min=0.1)
        warped = torch.cumsum(speed, dim=1)
        warped = (
            (warped - warped[:, :1])
            / (warped[:, -1:] - warped[:, :1]).clamp(min=1e-6)
            * (length - 1)
        )
        steps = warped
    if config.shift > 0:
        limit = config.shift * length
        step = max(config.shift_step, 1)
        offsets = (torch.rand(batch, 1, generator=generator) * 2 - 1) * limit
        steps = steps + (offsets / step).round() * step
        if config.shift_mode == "wrap":
            steps = torch.remainder(steps, length)
    if config.time_warp > 0 or config.shift > 0:
        series = _resample(series, steps.clamp(0, length - 1))
    if config.scale > 0:
        series = series * (1 + config.scale * torch.randn(batch, channels, 1, generator=generator))
    if config.magnitude_warp > 0:
        series = series * _smooth_curve(batch, length, config.magnitude_warp, generator).unsqueeze(
            1
        )
    if config.jitter > 0:
        series = series + config.jitter * torch.randn(series.shape, generator=generator)
    if config.mask > 0:
        series = series.masked_fill(_time_mask(batch, length, config.mask, generator), 0.0)
    return as_rows(series, rows)


def _time_mask(
    batch: int, length: int, fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """`(B, 1, T)` True on one contiguous span per window, of up to `fraction` of the window (a
    uniform length, then a uniform start where it fits), the same span on every channel."""
    span = (torch.rand(batch, 1, generator=generator) * fraction * length).round()
    start = (torch.rand(batch, 1, generator=generator) * (length - span + 1)).floor()
    steps = torch.arange(length).expand(batch, length)
    return ((steps >= start) & (steps < start + span)).unsqueeze(1)


def mixup_batch(
    X: torch.Tensor, y: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix each window with a random partner: returns (mixed X, partner labels, weights of y)."""
    seed = int(
        torch.randint(2**31 - 1, (1,), generator=generator)
    )  # torch's Beta takes no generator
    weight = torch.from_numpy(np.random.default_rng(seed).beta(alpha, alpha, len(y))).to(X.dtype)
    weight = torch.maximum(weight, 1 - weight)  # the window's own label stays the larger share
    partner = torch.randperm(len(y), generator=generator)
    shape = (-1,) + (1,) * (X.dim() - 1)
    return weight.view(shape) * X + (1 - weight.view(shape)) * X[partner], y[partner], weight
