"""Quality checks (non-finite values, flat channels, ranges) and repair of non-finite values."""

from __future__ import annotations

from typing import Any

import numpy as np
from edgekit.data.record import WindowSet
from edgekit.errors import DataError

FLAT_STD = 1e-6  # below this a channel carries no information (sensor off or disconnected)
# Beyond this magnitude a value's square overflows float32 (sqrt(3.4e38)): the variance, and any
# float32 normalisation or training step on the device side, turns to inf/NaN.
MAX_ABS_VALUE = float(np.sqrt(np.finfo(np.float32).max))


def quality_report(windows: WindowSet) -> dict[str, Any]:
    """Per-channel NaN/Inf counts and shares, flat channels, value ranges and a 0..1 quality score."""
    X = windows.X
    per_channel = []
    for c, name in enumerate(windows.channel_names):
        values = X[:, c, :]
        finite = values[np.isfinite(values)].astype(np.float64)  # float32 sums overflow near 1e38
        nan_count, inf_count = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        std = float(finite.std()) if finite.size else 0.0
        per_channel.append(
            {
                "channel": name,
                "nan": nan_count,
                "inf": inf_count,
                "non_finite_pct": round(100.0 * (nan_count + inf_count) / values.size, 4),
                "min": float(finite.min()) if finite.size else None,
                "max": float(finite.max()) if finite.size else None,
                "mean": float(finite.mean()) if finite.size else None,
                "std": std,
                "flat": std < FLAT_STD,
            }
        )
    non_finite = int((~np.isfinite(X)).sum())
    fraction = non_finite / X.size
    flat = [c["channel"] for c in per_channel if c["flat"]]
    windows_affected = int((~np.isfinite(X)).any(axis=(1, 2)).sum())
    score = max(0.0, 1.0 - fraction) * (1.0 - len(flat) / len(per_channel))
    return {
        "source": windows.source,
        "windows": len(X),
        "channels": len(per_channel),
        "window_length": windows.window_length,
        "non_finite": non_finite,
        "non_finite_fraction": fraction,
        "windows_with_non_finite": windows_affected,
        "flat_channels": flat,
        "quality_score": round(score, 4),
        "per_channel": per_channel,
        "class_counts": {
            name: int((windows.y == k).sum()) for k, name in enumerate(windows.class_names)
        },
    }


def _fill_window(window: np.ndarray, strategy: str) -> np.ndarray:
    for channel in window:
        bad = ~np.isfinite(channel)
        if not bad.any():
            continue
        good = channel[~bad]
        if strategy == "zero" or not good.size:
            channel[bad] = 0.0
        elif strategy == "mean":
            channel[bad] = good.mean()
        elif strategy == "median":
            channel[bad] = np.median(good)
        else:  # interpolate along time, nearest value at the edges
            index = np.arange(len(channel))
            channel[bad] = np.interp(index[bad], index[~bad], good)
    return window


def repair_non_finite(
    windows: WindowSet, strategy: str, max_fraction: float
) -> tuple[WindowSet, dict[str, Any]]:
    """Apply a NaN/Inf strategy (zero|mean|median|interpolate|drop|raise); refuse above `max_fraction`."""
    bad = ~np.isfinite(windows.X)
    fraction = float(bad.mean())
    action = {
        "strategy": strategy,
        "non_finite_fraction": fraction,
        "windows_dropped": 0,
        "values_filled": 0,
    }
    if not bad.any():
        return windows, action
    if bad.all():
        raise DataError(
            f"{windows.source}: every value is NaN/Inf; check the file's columns and number format"
        )
    all_bad = [n for c, n in enumerate(windows.channel_names) if bad[:, c, :].all()]
    if all_bad:
        raise DataError(
            f"{windows.source}: channel {', '.join(repr(n) for n in all_bad)} holds no finite value; "
            "leave it out with data.channels"
        )
    if strategy == "raise":
        raise DataError(
            f"{windows.source}: {int(bad.sum())} NaN/Inf values ({100 * fraction:.2f}%); "
            "set data.nan_strategy to interpolate|mean|median|zero|drop to repair them"
        )
    if fraction > max_fraction:
        raise DataError(
            f"{windows.source}: {100 * fraction:.2f}% of values are NaN/Inf, above data.max_nan_fraction="
            f"{max_fraction}; clean the data or raise the threshold"
        )
    if strategy == "drop":
        keep = ~bad.any(axis=(1, 2))
        if not keep.any():
            raise DataError(
                f"{windows.source}: every window has a NaN/Inf; use nan_strategy=interpolate instead of drop"
            )
        action["windows_dropped"] = int((~keep).sum())
        return windows.subset(keep), action
    X = windows.X.copy()
    for i in np.flatnonzero(bad.any(axis=(1, 2))):
        _fill_window(X[i], strategy)
    action["values_filled"] = int(bad.sum())
    repaired = windows.subset(np.ones(len(X), dtype=bool))
    repaired.X = X
    return repaired, action


def check_magnitudes(windows: WindowSet) -> None:
    """Refuse values whose square overflows float32: normalisation and training would diverge."""
    peak = np.maximum(-windows.X.min(axis=(0, 2)), windows.X.max(axis=(0, 2)))  # no |X| copy
    too_big = [
        (n, float(p)) for n, p in zip(windows.channel_names, peak, strict=True) if p > MAX_ABS_VALUE
    ]
    if too_big:
        name, value = too_big[0]
        raise DataError(
            f"{windows.source}: channel '{name}' reaches {value:.3g}, beyond float32 normalisation "
            f"(|x| <= {MAX_ABS_VALUE:.3g}); rescale it (e.g. to SI units) or fix the corrupt values"
        )
