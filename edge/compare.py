"""The one comparison engine: two output arrays against a declared Tolerance.

Parity (every export vs its CPU reference) and verify (a device vs the CPU reference) both call
`compare()`: shape check first, then max/mean |Δ| (also in output LSB for int8), RMSE, relative L2,
cosine, top-1 agreement, FSQ-code agreement, the exact share and the worst sample ids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from edgekit.errors import ParityError


class ShapeMismatchError(ParityError):
    """The two sides of a pair do not even have the same shape."""


@dataclass(frozen=True)
class Tolerance:
    """What a pair must meet. `max_lsb` applies when an output scale is known (int8 outputs)."""

    atol: float = 0.0
    rtol: float = 0.0
    max_lsb: float | None = None
    min_top1_agreement: float = 1.0
    min_code_agreement: float = 1.0
    min_exact_fraction: float = 0.0


@dataclass
class PairReport:
    """One pair's comparison: the metrics, the tolerance it was held to, every failure, a diagnosis."""

    name: str
    reference: str
    candidate: str
    samples: int
    max_abs: float
    mean_abs: float
    top1_agreement: float
    code_agreement: float | None
    exact_fraction: float
    worst_ids: list[int]
    tolerance: dict[str, Any]
    rmse: float
    relative_l2: float
    cosine_mean: float
    exact_sample_fraction: float  # samples whose every output is equal
    max_lsb: float | None = None
    mean_lsb: float | None = None
    failures: list[str] = field(default_factory=list)
    # the likely cause of a failure, when the caller can tell (int16 saturation)
    diagnosis: str = ""

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def compare(
    name: str,
    reference: np.ndarray,
    candidate: np.ndarray,
    tolerance: Tolerance,
    labels: tuple[str, str] = ("reference", "candidate"),
    lsb: float | None = None,
    reference_codes: np.ndarray | None = None,
    candidate_codes: np.ndarray | None = None,
    worst: int = 5,
) -> PairReport:
    """Compare two `(N, K)` output arrays; the report lists every tolerance that failed."""
    if reference.shape != candidate.shape:
        raise ShapeMismatchError(
            f"{name}: shapes differ, {labels[0]} {reference.shape} vs {labels[1]} {candidate.shape}"
        )
    if not np.isfinite(candidate).all():
        raise ParityError(
            f"{name}: {labels[1]} produced NaN/Inf outputs; the export is broken, re-export it"
        )
    reference64, candidate64 = reference.astype(np.float64), candidate.astype(np.float64)
    error = (candidate64 - reference64).reshape(len(reference), -1)
    delta = np.abs(error)
    per_sample = delta.max(axis=1)
    flat_reference, flat_candidate = (
        reference64.reshape(len(reference), -1),
        candidate64.reshape(len(reference), -1),
    )
    norms = np.linalg.norm(flat_reference, axis=1) * np.linalg.norm(flat_candidate, axis=1)
    cosine = np.where(
        norms > 0, (flat_reference * flat_candidate).sum(axis=1) / np.maximum(norms, 1e-30), 1.0
    )
    report = PairReport(
        name=name,
        reference=labels[0],
        candidate=labels[1],
        samples=len(reference),
        max_abs=float(delta.max()),
        mean_abs=float(delta.mean()),
        top1_agreement=float(
            (
                reference.reshape(len(reference), -1).argmax(1)
                == candidate.reshape(len(candidate), -1).argmax(1)
            ).mean()
        ),
        code_agreement=None
        if reference_codes is None
        else float((reference_codes == candidate_codes).mean()),
        exact_fraction=float((delta == 0).mean()),
        worst_ids=[
            int(i) for i in np.argsort(-per_sample, kind="stable")[:worst] if per_sample[i] > 0
        ],
        tolerance=asdict(tolerance),
        rmse=float(np.sqrt((error**2).mean())),
        relative_l2=float(np.linalg.norm(error) / max(float(np.linalg.norm(reference64)), 1e-30)),
        cosine_mean=float(cosine.mean()),
        exact_sample_fraction=float((per_sample == 0).mean()),
    )
    if lsb is not None:
        report.max_lsb = float(delta.max() / lsb)
        report.mean_lsb = float(delta.mean() / lsb)
        if tolerance.max_lsb is not None and report.max_lsb > tolerance.max_lsb + 1e-6:
            report.failures.append(f"max |Δ| {report.max_lsb:.3f} LSB > {tolerance.max_lsb} LSB")
    else:
        allowed = tolerance.atol + tolerance.rtol * np.abs(reference64).reshape(len(reference), -1)
        if (delta > allowed).any():
            report.failures.append(
                f"max |Δ| {report.max_abs:.3g} exceeds atol {tolerance.atol:g} + rtol {tolerance.rtol:g}"
            )
    if report.top1_agreement < tolerance.min_top1_agreement:
        report.failures.append(
            f"top-1 agreement {report.top1_agreement:.4f} < {tolerance.min_top1_agreement}"
        )
    if report.code_agreement is not None and report.code_agreement < tolerance.min_code_agreement:
        report.failures.append(
            f"FSQ code agreement {report.code_agreement:.4f} < {tolerance.min_code_agreement}"
        )
    if report.exact_fraction < tolerance.min_exact_fraction:
        report.failures.append(
            f"exact outputs {report.exact_fraction:.4f} < {tolerance.min_exact_fraction}"
        )
    return report


def format_table(reports: list[PairReport]) -> str:
    """The console table of parity pairs: one row each, PASS or the failures."""
    header = f"{'pair':<34} {'n':>5} {'max|Δ|':>10} {'LSB':>6} {'top-1':>7} {'codes':>7} {'exact':>7}  result"
    rows = [header, "-" * len(header)]
    for r in reports:
        lsb = f"{r.max_lsb:.2f}" if r.max_lsb is not None else "-"
        codes = f"{r.code_agreement:.4f}" if r.code_agreement is not None else "-"
        verdict = "PASS" if r.passed else "FAIL: " + "; ".join(r.failures)
        rows.append(
            f"{r.name:<34} {r.samples:>5} {r.max_abs:>10.3g} {lsb:>6} "
            f"{r.top1_agreement:>7.4f} {codes:>7} {r.exact_fraction:>7.4f}  {verdict}"
        )
    return "\n".join(rows)
