from __future__ import annotations

import numpy as np
import pytest
import torch
from edgekit.models import FSQ
from edgekit.quantize.fsq_grid import code_usage, fsq_indices, fsq_thresholds


def test_levels_and_codebook() -> None:
    fsq = FSQ((8, 6, 5)).eval()
    assert fsq.codebook_size == 240
    z = torch.linspace(-6, 6, 2001).view(-1, 1, 1, 1).repeat(1, 3, 1, 1)
    levels = torch.round(fsq.bound(z)).squeeze()
    assert [sorted(set(levels[:, d].tolist())) for d in range(3)] == [
        list(range(-4, 4)), list(range(-3, 3)), list(range(-2, 3)),
    ]  # fmt: skip
    codes = fsq.indices(z)
    assert codes.min() >= 0 and codes.max() < 240


def test_shift_uses_atanh_not_tan() -> None:
    fsq = FSQ((8,)).eval()
    # with atanh the bound maps z = 0 exactly onto level 0 for even L (the notebook's tan was a bug)
    assert torch.round(fsq.bound(torch.zeros(1, 1, 1, 1))).item() == 0.0
    assert fsq.bound(torch.zeros(1, 1, 1, 1)).item() == 0.0


def test_codes_are_rounded_levels_scaled_to_unit_range() -> None:
    levels = (8, 6, 5)
    fsq = FSQ(levels).eval()
    z = torch.linspace(-6, 6, 2001).view(-1, 1, 1, 1).repeat(1, 3, 1, 1)
    codes = fsq(z).squeeze()
    for d, level in enumerate(levels):
        half = level // 2  # the codes are level steps / (L // 2): even L reaches -1 but not +1
        expected = torch.round(fsq.bound(z)).squeeze()[:, d] / half
        assert torch.equal(codes[:, d], expected)
        steps = torch.arange(-half, level - half, dtype=torch.float32)
        assert torch.equal(torch.unique(codes[:, d]), steps / half)


def test_straight_through_gradient() -> None:
    fsq = FSQ((5, 6))
    z = torch.randn(64, 2, 1, 1, generator=torch.Generator().manual_seed(0)) * 2
    through = z.clone().requires_grad_(True)
    codes = fsq.train()(through)
    # training rounds in value, exactly as eval does; only the gradient passes the rounding
    assert torch.equal(codes.detach(), fsq.eval()(z))
    codes.sum().backward()
    smooth = z.clone().requires_grad_(True)
    (fsq.bound(smooth) / torch.tensor([2.0, 3.0]).view(1, 2, 1, 1)).sum().backward()
    assert through.grad is not None and smooth.grad is not None
    assert torch.allclose(through.grad, smooth.grad) and torch.all(through.grad != 0)


def test_constants_follow_the_levels_and_stay_out_of_checkpoints() -> None:
    # every buffer derives from `levels` (the config); a checkpoint carries learned weights only
    assert FSQ((8, 6, 5)).state_dict() == {}


def test_thresholds_equal_tanh_round_on_a_fine_grid() -> None:
    levels = (8, 6, 5)
    z = np.linspace(-5, 5, 20001, dtype=np.float32)
    fsq = FSQ(levels).eval()
    for d, thresholds in enumerate(fsq_thresholds(levels)):
        by_threshold = (z[:, None] > thresholds[None, :]).sum(1)
        zz = torch.zeros(len(z), 3, 1, 1)
        zz[:, d, 0, 0] = torch.from_numpy(z)
        by_round = (torch.round(fsq.bound(zz))[:, d, 0, 0] + levels[d] // 2).numpy()
        mismatch = np.flatnonzero(by_threshold != by_round)
        # disagreement only within float32 rounding of a threshold
        assert all(np.min(np.abs(z[i] - thresholds)) < 1e-5 for i in mismatch)


def test_numpy_indices_match_torch() -> None:
    z = torch.randn(500, 3, 1, 1) * 2
    fsq = FSQ((8, 6, 5)).eval()
    assert np.array_equal(fsq.indices(z).numpy(), fsq_indices(z.numpy(), (8, 6, 5)))


def test_usage_counts_only_used_codes_of_a_huge_codebook() -> None:
    levels = (8,) * 16  # 2^48 codes: a histogram over the whole codebook would need 2 PiB
    usage = code_usage(np.array([5, 5, 2**47, 3]), levels)
    assert usage["codebook_size"] == 2**48 and usage["codes_used"] == 3
    assert usage["code_counts"] == [2, 1, 1]


def test_usage_and_collapse_warning() -> None:
    collapsed = code_usage(np.full(100, 7), (8, 6, 5))
    assert collapsed["codes_used"] == 1 and collapsed["perplexity"] == 1.0
    # one warning: every dimension is then at one level too, which says nothing more
    assert collapsed["warnings"] == [
        "all windows map to one FSQ code: the bottleneck never trained"
    ]
    uniform = code_usage(np.arange(240), (8, 6, 5))
    assert (
        uniform["usage"] == 1.0
        and abs(uniform["perplexity"] - 240) < 1e-6
        and not uniform["warnings"]
    )


def test_usage_histograms_read_the_mixed_radix_digits() -> None:
    """An index is d0 + L0 * d1 + L0 * L1 * d2: the histograms count each dimension's level."""
    usage = code_usage(np.array([0, 1, 8, 9, 9, 8 * 6 * 2 + 7]), (8, 6, 5))
    assert usage["level_histograms"] == [
        [2, 3, 0, 0, 0, 0, 0, 1],
        [3, 3, 0, 0, 0, 0],
        [5, 0, 1, 0, 0],
    ]
    assert usage["codes_used"] == 5 and usage["usage"] == 5 / 240
    assert usage["code_counts"] == [2, 1, 1, 1, 1]
    p = np.array([2, 1, 1, 1, 1]) / 6
    assert usage["perplexity"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert usage["warnings"] == []


def test_usage_warns_of_dimensions_stuck_at_one_level() -> None:
    usage = code_usage(np.array([0, 1, 2, 3]), (8, 6, 5))  # only dimension 0 moves
    assert usage["warnings"] == ["FSQ dimensions [1, 2] use a single level"]


@pytest.mark.parametrize("level", range(2, 10))
def test_every_level_is_reached_and_zero_is_the_middle_one(level: int) -> None:
    """The bound spans exactly L rounded values for odd and even L alike (even L: shifted by half
    a step), and a zero pre-FSQ value sits on the middle code L // 2."""
    z = np.linspace(-12, 12, 48001, dtype=np.float32)[:, None]
    codes = fsq_indices(z, (level,))
    assert np.unique(codes).tolist() == list(range(level))
    assert (np.diff(codes) >= 0).all()  # monotone in z
    assert fsq_indices(np.zeros((1, 1), np.float32), (level,)).tolist() == [level // 2]


def test_two_codes_are_not_a_collapse() -> None:
    usage = code_usage(np.array([0, 1] * 5), (8, 6, 5))
    assert usage["codes_used"] == 2
    assert usage["warnings"] == ["FSQ dimensions [1, 2] use a single level"]
