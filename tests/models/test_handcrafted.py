"""The hand-crafted detectors: which fit a stem kernel, their values, and what each responds to."""

from __future__ import annotations

import numpy as np
import pytest
from edgekit.models.handcrafted import detector_patterns, increase_detector, peak_detector


def response(row: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """What a (1, k) convolution computes: a cross-correlation, valid positions only."""
    return np.correlate(signal, row, mode="valid")


def test_the_detectors_are_lites_increase_decrease_and_peak_filters() -> None:
    np.testing.assert_array_equal(increase_detector(4), [-1, 1, -1, 1])
    np.testing.assert_array_equal(peak_detector(3), [-1, 2, -1])
    np.testing.assert_array_equal(peak_detector(6), [-1, -1, 2, 2, -1, -1])
    lobe = [0.25, 1, 1, 0.25]  # f = 8: the parabola x^2 at x = 1/2, 1, mirrored
    np.testing.assert_array_equal(
        peak_detector(12), [*np.negative(lobe), *np.multiply(2, lobe), *np.negative(lobe)]
    )


@pytest.mark.parametrize(
    ("kernel", "rows"),
    [
        (9, [[0, 0, 0, -1, 1, 0, 0, 0, 0], [-1, 1, -1, 1, -1, 1, -1, 1, 0],
             [0, 0, 0, 1, -1, 0, 0, 0, 0], [1, -1, 1, -1, 1, -1, 1, -1, 0],
             [0, 0, 0, -1, 2, -1, 0, 0, 0], [0, -1, -1, 2, 2, -1, -1, 0, 0]]),
        (5, [[0, -1, 1, 0, 0], [-1, 1, -1, 1, 0], [0, 1, -1, 0, 0], [1, -1, 1, -1, 0],
             [0, -1, 2, -1, 0]]),
        (3, [[-1, 1, 0], [1, -1, 0], [-1, 2, -1]]),
        (2, [[-1, 1], [1, -1]]),
        (1, []),
    ],
)  # fmt: skip
def test_the_detectors_that_fit_a_kernel_are_centred_in_it(kernel: int, rows: list) -> None:
    patterns = detector_patterns(kernel)
    assert len(patterns) == len(rows)
    for pattern, row in zip(patterns, rows, strict=True):
        np.testing.assert_array_equal(pattern, row)


@pytest.mark.parametrize("kernel", [5, 9, 15])
def test_increase_rises_decrease_falls_and_peaks_ignore_level_and_slope(kernel: int) -> None:
    ramp, level = np.arange(40.0), np.full(40, 3.0)
    spike = np.zeros(41)
    spike[20] = 1.0
    patterns = detector_patterns(kernel)  # increase 2 and long, decrease 2 and long, peaks
    assert len(patterns) == 6 if kernel >= 6 else 5
    assert all((response(p, ramp) > 0).all() for p in patterns[:2])
    assert all((response(p, ramp) < 0).all() for p in patterns[2:4])
    for peak in patterns[4:]:
        np.testing.assert_allclose(response(peak, level), 0, atol=1e-12)
        np.testing.assert_allclose(response(peak, ramp), 0, atol=1e-9)
        assert (
            response(peak, spike).max() > 0 and response(peak, spike).argmax() == 20 - kernel // 2
        )
