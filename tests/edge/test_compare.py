"""The one comparison engine: every measure and every tolerance field, each able to fail."""

from __future__ import annotations

import numpy as np
import pytest
from edgekit.compare import ShapeMismatchError, Tolerance, compare, format_table
from edgekit.errors import ParityError

REFERENCE = np.array([[1.0, 2.0], [3.0, 1.0], [0.5, 0.25]], dtype=np.float32)


def test_identical_outputs_pass_every_tolerance() -> None:
    report = compare(
        "x", REFERENCE, REFERENCE.copy(), Tolerance(max_lsb=0, min_exact_fraction=1.0), lsb=0.5
    )
    assert report.passed and report.failures == [] and report.worst_ids == []
    assert report.exact_fraction == report.exact_sample_fraction == 1.0 == report.top1_agreement
    assert report.max_abs == report.mean_abs == report.rmse == report.relative_l2 == 0.0
    assert report.max_lsb == 0.0 and report.cosine_mean == pytest.approx(1.0)
    assert report.samples == 3 and report.to_dict()["passed"] is True


def test_measures_of_one_changed_output() -> None:
    shifted = REFERENCE.copy()
    shifted[1, 1] += 1.0  # 2 LSB on sample 1; its argmax (3 > 2) is unchanged
    report = compare("x", REFERENCE, shifted, Tolerance(max_lsb=1), ("a", "b"), lsb=0.5)
    assert report.max_abs == 1.0 and report.mean_abs == pytest.approx(1 / 6)
    assert report.max_lsb == 2.0 and report.mean_lsb == pytest.approx(1 / 3)
    assert report.rmse == pytest.approx(np.sqrt(1 / 6))
    assert report.relative_l2 == pytest.approx(1 / np.linalg.norm(REFERENCE.astype(np.float64)))
    assert report.exact_fraction == pytest.approx(
        5 / 6
    ) and report.exact_sample_fraction == pytest.approx(2 / 3)
    assert report.worst_ids == [1] and report.top1_agreement == 1.0
    assert report.failures == ["max |Δ| 2.000 LSB > 1 LSB"] and not report.passed
    assert (report.reference, report.candidate) == ("a", "b")
    assert compare("x", REFERENCE, shifted, Tolerance(max_lsb=2), lsb=0.5).passed  # 2 LSB allowed


def test_atol_and_rtol() -> None:
    bigger = REFERENCE * 1.1
    assert not compare("x", REFERENCE, bigger, Tolerance(atol=0.2)).passed  # |Δ| 0.3 at 3.0
    assert compare("x", REFERENCE, bigger, Tolerance(atol=0.3001)).passed
    assert compare("x", REFERENCE, bigger, Tolerance(rtol=0.1001)).passed
    assert not compare("x", REFERENCE, bigger, Tolerance(rtol=0.09)).passed


def test_top1_codes_and_exact_share_thresholds() -> None:
    flipped = REFERENCE[:, ::-1].copy()
    report = compare("x", REFERENCE, flipped, Tolerance(atol=10, min_top1_agreement=0.0))
    assert report.top1_agreement == 0.0 and report.passed
    assert not compare("x", REFERENCE, flipped, Tolerance(atol=10, min_top1_agreement=0.5)).passed
    codes = np.array([1, 2, 3])
    other = np.array([1, 2, 4])
    half = compare(
        "x",
        REFERENCE,
        REFERENCE,
        Tolerance(min_code_agreement=0.6),
        reference_codes=codes,
        candidate_codes=other,
    )
    assert half.code_agreement == pytest.approx(2 / 3) and half.passed
    assert (
        "FSQ code agreement"
        in compare(
            "x",
            REFERENCE,
            REFERENCE,
            Tolerance(min_code_agreement=0.7),
            reference_codes=codes,
            candidate_codes=other,
        ).failures[0]
    )
    nudged = REFERENCE.copy()
    nudged[0, 0] += 1e-3
    assert not compare("x", REFERENCE, nudged, Tolerance(atol=1, min_exact_fraction=0.9)).passed
    assert compare("x", REFERENCE, nudged, Tolerance(atol=1, min_exact_fraction=0.8)).passed


def test_worst_ids_are_ordered_and_capped() -> None:
    reference = np.zeros((8, 2))
    candidate = reference.copy()
    candidate[:, 0] = [0, 5, 0, 7, 1, 2, 3, 4]
    report = compare("x", reference, candidate, Tolerance(atol=100), worst=3)
    assert report.worst_ids == [3, 1, 7]


def test_shape_and_nan_are_errors() -> None:
    with pytest.raises(ShapeMismatchError, match="shapes differ"):
        compare("x", REFERENCE, REFERENCE[:1], Tolerance())
    with pytest.raises(ParityError, match="NaN"):
        compare("x", REFERENCE, np.full_like(REFERENCE, np.nan), Tolerance())


def test_the_table_says_pass_and_fail_and_why() -> None:
    passed = compare("a/pair", REFERENCE, REFERENCE, Tolerance())
    failed = compare("b/pair", REFERENCE, REFERENCE + 0.5, Tolerance(atol=0.1))
    lines = format_table([passed, failed]).splitlines()
    assert lines[0].startswith("pair") and set(lines[1]) == {"-"}
    assert lines[2].startswith("a/pair") and lines[2].endswith("PASS")
    assert lines[3].startswith("b/pair") and "FAIL: max |Δ| 0.5 exceeds atol 0.1" in lines[3]


def test_lsb_and_rmse_of_uneven_errors() -> None:
    reference = np.zeros((2, 2))
    candidate = np.array([[0.75, 0.0], [0.0, -3.0]])
    report = compare("x", reference, candidate, Tolerance(max_lsb=10), lsb=0.5)
    assert report.max_lsb == 6.0 and report.mean_lsb == pytest.approx(3.75 / 4 / 0.5)
    assert report.rmse == pytest.approx(np.sqrt((0.75**2 + 9) / 4))
    single = compare("x", reference[:1], candidate[:1], Tolerance(max_lsb=10), lsb=0.5)
    assert single.max_lsb == 1.5  # a fraction of an LSB is kept, not floored


def test_cosine_of_small_orthogonal_and_zero_outputs() -> None:
    reference = np.array([[0.5, 0.0], [1.0, 0.0], [0.0, 0.0]])
    candidate = np.array([[0.0, 0.5], [1.0, 0.0], [0.0, 0.0]])
    report = compare("x", reference, candidate, Tolerance(atol=1, min_top1_agreement=0))
    assert report.cosine_mean == pytest.approx(
        (0.0 + 1.0 + 1.0) / 3
    )  # zero vs zero counts as equal


def test_defaults_demand_agreement_and_list_five_worst() -> None:
    flipped = REFERENCE[:, ::-1].copy()
    assert "top-1 agreement" in compare("x", REFERENCE, flipped, Tolerance(atol=10)).failures[0]
    reference = np.zeros((8, 2))
    report = compare("x", reference, reference + np.arange(1, 9)[:, None], Tolerance(atol=100))
    assert report.worst_ids == [7, 6, 5, 4, 3]


def test_a_nan_error_names_the_side_that_produced_it() -> None:
    with pytest.raises(ParityError, match="onnx/pair: ort-int8 produced NaN/Inf"):
        compare("onnx/pair", REFERENCE, REFERENCE * np.nan, Tolerance(), ("torch", "ort-int8"))


def test_default_tolerance_is_frozen_and_demands_equal_codes() -> None:
    import dataclasses

    tolerance = Tolerance()
    with pytest.raises(dataclasses.FrozenInstanceError):
        tolerance.atol = 1.0  # type: ignore[misc]
    codes, other = np.array([1, 2, 3]), np.array([1, 2, 4])
    report = compare(
        "x", REFERENCE, REFERENCE, tolerance, reference_codes=codes, candidate_codes=other
    )
    assert report.failures == ["FSQ code agreement 0.6667 < 1.0"]
    assert report.tolerance == {"atol": 0.0, "rtol": 0.0, "max_lsb": None, "min_top1_agreement": 1.0,
                                "min_code_agreement": 1.0, "min_exact_fraction": 0.0}  # fmt: skip


def test_a_shape_mismatch_names_both_sides() -> None:
    with pytest.raises(
        ShapeMismatchError, match=r"x: shapes differ, torch \(3, 2\) vs ort \(1, 2\)"
    ):
        compare("x", REFERENCE, REFERENCE[:1], Tolerance(), ("torch", "ort"))
