from __future__ import annotations

import numpy as np
from edgekit.calibrate.representative import select_representative, to_nhwc


def test_stratified_and_complete() -> None:
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    X = np.zeros((100, 2, 2, 4), dtype=np.float32)
    chosen = select_representative(X, y, 20, seed=0)
    assert len(chosen) == 20 and len(set(chosen)) == 20
    assert np.bincount(y[chosen]).tolist() == [12, 6, 2]
    assert len(select_representative(X, y, 1024, seed=0)) == 100  # all if fewer


def test_nhwc_layout() -> None:
    X = np.arange(2 * 3 * 2 * 4, dtype=np.float32).reshape(2, 3, 2, 4)
    nhwc = to_nhwc(X)
    assert nhwc.shape == (2, 2, 4, 3) and nhwc[1, 1, 2, 0] == X[1, 0, 1, 2]
