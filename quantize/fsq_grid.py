"""The FSQ grid in NumPy: bounds, rounding thresholds, code indices and codebook usage.

Shared by the torch module (`edgekit.models.fsq`), the exports and the integer-only reference;
kept free of torch so device-side tools (`edgekit device serve`) start without it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

FSQ_EPS = 1e-3  # (1 + eps) keeps L = 2 usable (lucidrains' fix of the reference notebook)


def fsq_constants(levels: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-dimension (half_width, offset, shift) of the tanh bound; shift uses atanh, not tan."""
    levels_array = np.asarray(levels, dtype=np.float64)
    half_width = (levels_array - 1) * (1 + FSQ_EPS) / 2
    offset = np.where(levels_array % 2 == 0, 0.5, 0.0)
    shift = np.arctanh(offset / half_width)
    return half_width, offset, shift


def fsq_thresholds(levels: tuple[int, ...]) -> list[np.ndarray]:
    """Pre-FSQ values where the rounded level steps up: level = lowest + #{k : z > threshold_k}."""
    half_width, offset, shift = fsq_constants(levels)
    result = []
    for d, level in enumerate(levels):
        lowest = -(level // 2)
        steps = np.arange(lowest, lowest + level - 1) + 0.5  # bounded value where round() changes
        result.append(np.arctanh((steps + offset[d]) / half_width[d]) - shift[d])
    return result


def fsq_indices(z: np.ndarray, levels: tuple[int, ...]) -> np.ndarray:
    """NumPy twin of `FSQ.indices` in float32 (round half to even, like torch and ONNX Round)."""
    half_width, offset, shift = (c.astype(np.float32) for c in fsq_constants(levels))
    z = z.reshape(len(z), len(levels)).astype(np.float32)
    rounded = np.round(np.tanh(z + shift) * half_width - offset)
    digits = rounded.astype(np.int64) + np.array([lv // 2 for lv in levels])
    basis = np.cumprod([1, *levels[:-1]])
    return (digits * basis).sum(axis=1)


def code_usage(indices: np.ndarray, levels: tuple[int, ...]) -> dict[str, Any]:
    """Codebook usage, perplexity and per-dimension level histograms; warns on collapse."""
    size = math.prod(levels)
    # the used codes only: a histogram over the codebook would need 2 PiB at 16 dims of 8 levels
    counts = np.unique(indices, return_counts=True)[1]
    p = counts / counts.sum()
    perplexity = float(np.exp(-(p * np.log(p)).sum()))
    basis = np.cumprod([1, *levels[:-1]])
    per_dimension = [
        np.bincount((indices // basis[d]) % levels[d], minlength=levels[d]).tolist()
        for d in range(len(levels))
    ]
    used = len(counts)
    warnings = []
    if used <= 1:
        warnings.append("all windows map to one FSQ code: the bottleneck never trained")
    dead = [d for d, hist in enumerate(per_dimension) if sum(1 for c in hist if c) < 2]
    if dead and used > 1:
        warnings.append(f"FSQ dimensions {dead} use a single level")
    return {
        "codebook_size": size,
        "codes_used": used,
        "usage": used / size,
        "perplexity": perplexity,
        "code_counts": sorted(counts.tolist(), reverse=True),  # windows per used code
        "level_histograms": per_dimension,
        "warnings": warnings,
    }
