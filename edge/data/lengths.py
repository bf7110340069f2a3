"""One window length from series of unequal length (UEA `.ts` sets such as JapaneseVowels, PLAID).

Policies (`data.length_policy`) and the target length each one picks when `data.target_length`
is 0:
- `tile` (default): the longest series, rounded up to even; a shorter series repeats from its
  start until the window is full. No sample is lost and the sampling rate is kept, which matters
  for IMU data: the device sees windows at the sensor's rate. Every position holds real signal, so
  the global average pool is not diluted by filler, and the window stays consistent with the
  circular shifts of training (`augment.shift_mode=wrap`). With an explicit smaller target, longer
  series keep their first `target` samples (as under `pad`).
- `pad`: the same length, but a shorter series holds its last value (no artificial step to zero).
- `truncate`: the shortest series, rounded down to even: every window is real signal.
- `resample`: the median length, rounded up to even: linear interpolation changes the time scale,
  so use it for shape-like series (outlines, appliance signatures), not for rate-bound signals.
Even targets fit the `(C, 2, T/2)` layout without dropping a sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from edgekit.errors import DataError


def target_length(lengths: np.ndarray, policy: str, requested: int) -> int:
    """The window length a policy produces (see the module docstring for the rules)."""
    if requested:
        return requested
    if policy == "truncate":
        return max(2, int(lengths.min()) // 2 * 2)
    rule = lengths.max() if policy in ("pad", "tile") else np.median(lengths)
    return int(np.ceil(rule / 2) * 2)


def _resample(series: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of `(C, T_i)` onto `length` points spanning the same interval."""
    old = np.linspace(0.0, 1.0, series.shape[1])
    new = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(new, old, channel) for channel in series])


def unchanged_length(length: int, policy: str) -> dict[str, Any]:
    """The length record of windows that all had one length: the policy had nothing to do."""
    return {
        "policy": policy,
        "source_min": length,
        "source_median": float(length),
        "source_max": length,
        "target": length,
        "changed": 0,
    }


def fit_lengths(
    series: list[np.ndarray], policy: str, requested: int, source: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """Stack `(C, T_i)` series into `(N, C, T)` by the policy; returns the array and what was done."""
    lengths = np.array([s.shape[1] for s in series])
    if lengths.min() == lengths.max() and not requested:
        return np.stack(series).astype(np.float32), unchanged_length(int(lengths[0]), policy)
    note: dict[str, Any] = {
        "policy": policy,
        "source_min": int(lengths.min()),
        "source_median": float(np.median(lengths)),
        "source_max": int(lengths.max()),
    }
    if policy == "error":
        raise DataError(
            f"{source}: series have unequal lengths ({lengths.min()}–{lengths.max()} samples); "
            "set data.length_policy to tile, pad, truncate or resample"
        )
    target = target_length(lengths, policy, requested)
    X = np.empty((len(series), series[0].shape[0], target), dtype=np.float32)
    for i, s in enumerate(series):
        if policy == "resample":
            X[i] = _resample(s, target) if s.shape[1] != target else s
        elif s.shape[1] >= target:  # tile, pad or truncate: keep the start
            X[i] = s[:, :target]
        elif policy == "tile":
            X[i] = s[:, np.arange(target) % s.shape[1]]
        else:
            X[i, :, : s.shape[1]] = s
            X[i, :, s.shape[1] :] = s[:, -1:]
    note.update(
        target=target,
        changed=int((lengths != target).sum()),
        shortened=int((lengths > target).sum()),
        lengthened=int((lengths < target).sum()),
    )
    return X, note


def describe(note: dict[str, Any], windows: int) -> str:
    """One line for the console: what the length policy did."""
    verb = {
        "tile": "tiled/cut",
        "pad": "padded/cut",
        "truncate": "truncated",
        "resample": "resampled",
    }[note["policy"]]
    return (
        f"{windows} series of {note['source_min']}–{note['source_max']} samples {verb} to "
        f"{note['target']} ({note['changed']} changed; data.length_policy={note['policy']})"
    )
