"""Hand-crafted filters for the stem: LITE's increase, decrease and peak detectors.

LITE (Ismail-Fawaz et al. 2023) puts 17 fixed filters beside its first learned convolutions, from
Ismail-Fawaz et al. 2022 (CF-4-TSC, `utils/custom_filters.py`): an "increase" detector alternates
-1, +1 (the sum of every other difference: the rise over the filter's length), a "decrease" one is
its negative, and a "peak" one is three parabolic lobes, negative, doubled positive, negative. With
few train windows a learned stem has little to learn from, and detectors that need no data give
the later layers shape features from the first step (measured: bench/README.md). Ours are the ones
that fit the stem's kernel: increase and decrease over 2 taps and over the longest even span, a
peak over 3 taps and over the longest 3f/2 with f a multiple of 4 (CF-4-TSC's lengths).
"""

from __future__ import annotations

import numpy as np


def increase_detector(length: int) -> np.ndarray:
    """-1, +1, -1, ... over an even `length`: positive on a rising stretch."""
    return np.where(np.arange(length) % 2 == 0, -1.0, 1.0)


def peak_detector(length: int) -> np.ndarray:
    """-1, 2, -1 for 3 taps; else, for `length` = 3f/2 with f a multiple of 4, three lobes of f/2
    taps each built from the parabola x^2 on (0, 1], the middle one doubled and positive."""
    if length == 3:
        return np.array([-1.0, 2.0, -1.0])
    quarter = length // 6  # f // 4
    left = np.linspace(0.0, 1.0, quarter + 1)[1:] ** 2
    lobe = np.concatenate([left, left[::-1]])
    return np.concatenate([-lobe, 2 * lobe, -lobe])


def detector_patterns(kernel: int) -> list[np.ndarray]:
    """The detectors that fit `kernel` taps, each centred in a `kernel`-long row, in channel order:
    increase 2, increase over the longest even span, decrease 2, decrease over it, peak 3, peak over
    the longest 3f/2 (omitted where they do not fit or repeat a shorter one)."""
    longest_even = kernel // 2 * 2
    peaks = [3 * f // 2 for f in range(4, kernel + 1, 4) if 3 * f // 2 <= kernel]
    longest_peak = max(peaks, default=0)
    patterns = []
    for sign in (1.0, -1.0):
        patterns += [
            sign * increase_detector(n) for n in sorted({2, longest_even}) if 2 <= n <= kernel
        ]
    if kernel >= 3:
        patterns.append(peak_detector(3))
    if longest_peak:
        patterns.append(peak_detector(longest_peak))
    rows = []
    for pattern in patterns:
        row = np.zeros(kernel)
        start = (kernel - len(pattern)) // 2
        row[start : start + len(pattern)] = pattern
        rows.append(row)
    return rows
