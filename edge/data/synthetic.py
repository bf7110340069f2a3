"""Seeded synthetic IMU windows for fast tests, with a noise knob that sets difficulty.

Four classes (rest / walk / run / shake) differ by step frequency and amplitude on top of a
random gravity vector; edge cases (odd T, NaN/Inf, flat channels, C != 6) come on demand.
"""

from __future__ import annotations

import numpy as np
from edgekit.data.record import WindowSet

CLASS_NAMES = ["rest", "walk", "run", "shake"]
_FREQ_HZ = [(0.0, 0.0), (1.6, 2.2), (2.4, 3.2), (4.0, 7.0)]
_ACC_AMP_G = [0.0, 0.25, 0.7, 0.4]
_GYRO_AMP = [0.0, 0.6, 1.5, 2.5]
_CHUNK = 1024  # windows of noise drawn at a time


def make_synthetic(
    n: int = 400,
    length: int = 128,
    channels: int = 6,
    noise: float = 0.05,
    fs: float = 50.0,
    seed: int = 0,
    nan_fraction: float = 0.0,
    inf_count: int = 0,
    flat_channels: int = 0,
    group_size: int = 1,
) -> WindowSet:
    """Balanced, shuffled windows `(n, channels, length)`; `group_size` windows share one 'recording'."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(CLASS_NAMES)
    rng.shuffle(y)
    t = np.arange(length) / fs
    X = np.zeros((n, channels, length), dtype=np.float32)  # float32 throughout: 50k windows fit
    for i, label in enumerate(y):
        gravity = rng.normal([0, 0, 1], 0.3)
        gravity /= np.linalg.norm(gravity)
        lo, hi = _FREQ_HZ[label]
        freq = rng.uniform(lo, hi) if hi else 0.0
        jitter = rng.uniform(0.6, 1.4)
        for c in range(channels):
            phase = rng.uniform(0, 2 * np.pi)
            is_acc = c % 6 < 3
            amp = (_ACC_AMP_G if is_acc else _GYRO_AMP)[label] * jitter
            wave = np.sin(2 * np.pi * freq * t + phase) + 0.3 * np.sin(
                4 * np.pi * freq * t + 2 * phase
            )
            base = gravity[c % 3] if is_acc else 0.0
            X[i, c] = base + amp * wave + rng.normal(0, 0.02)
    for start in range(0, n, _CHUNK):  # the same random stream as one draw, in bounded memory
        chunk = X[start : start + _CHUNK]
        chunk[...] = chunk + rng.normal(0, noise, chunk.shape)
    if flat_channels:
        X[:, channels - flat_channels :, :] = 0.0
    if nan_fraction > 0:
        for start in range(0, n, _CHUNK):
            chunk = X[start : start + _CHUNK]
            chunk[rng.random(chunk.shape) < nan_fraction] = np.nan
    if inf_count:
        flat = X.reshape(-1)
        flat[rng.choice(flat.size, inf_count, replace=False)] = np.inf
    axes = ["x", "y", "z"]
    names = [
        f"{'acc' if c % 6 < 3 else 'gyro'}_{axes[c % 3]}" + (f"_{c // 6}" if c >= 6 else "")
        for c in range(channels)
    ]
    groups = np.array([f"rec{i // group_size:05d}" for i in range(n)])
    return WindowSet(
        X,
        y,
        groups,
        list(CLASS_NAMES),
        names,
        fs,
        "synthetic",
        {"generator": "edgekit.data.synthetic", "seed": str(seed), "noise": str(noise)},
    )
