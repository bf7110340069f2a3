"""Numbers users can trust: the exact binomial interval, the baselines and the small-test warning."""

from __future__ import annotations

import numpy as np
import pytest
from edgekit.evaluate import (
    MIN_TEST_WINDOWS,
    accuracy_interval,
    classification_metrics,
    small_test_warning,
)
from scipy.stats import beta


def test_twelve_of_twelve_is_not_a_certain_hundred_percent() -> None:
    low, high = accuracy_interval(12, 12)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 12), abs=1e-9)  # ~0.735


@pytest.mark.parametrize(("correct", "total"), [(0, 10), (1, 10), (37, 50), (900, 1000), (5, 5)])
def test_interval_is_clopper_pearson(correct: int, total: int) -> None:
    low, high = accuracy_interval(correct, total)
    expected_low = 0.0 if correct == 0 else beta.ppf(0.025, correct, total - correct + 1)
    expected_high = 1.0 if correct == total else beta.ppf(0.975, correct + 1, total - correct)
    assert (low, high) == pytest.approx((expected_low, expected_high), abs=1e-9)
    assert low <= correct / total <= high


def test_interval_narrows_with_more_windows() -> None:
    widths = [np.subtract(*accuracy_interval(int(0.8 * n), n)[::-1]) for n in (10, 100, 1000)]
    assert widths[0] > widths[1] > widths[2]


def test_metrics_carry_interval_and_baselines() -> None:
    y_true = np.array([0, 0, 0, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 0])
    metrics = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["accuracy_interval_95"] == pytest.approx(list(accuracy_interval(4, 6)))
    assert metrics["majority_baseline"] == pytest.approx(3 / 6) and metrics[
        "random_baseline"
    ] == pytest.approx(1 / 3)
    assert metrics["per_class"]["a"]["recall"] == pytest.approx(2 / 3)


def test_small_test_split_warns() -> None:
    assert small_test_warning(MIN_TEST_WINDOWS) == []
    (warning,) = small_test_warning(12)
    assert "12 windows" in warning and "interval" in warning
