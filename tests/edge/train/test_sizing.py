"""The size rule: FSQ dims by classes, depth by length, widths and QAT rate by windows, budgets respected."""

from __future__ import annotations

import dataclasses
import math

import pytest
from edgekit.config import MAX_CODEBOOK, ModelConfig, Switch, load_config
from edgekit.evaluate import model_cost
from edgekit.models import Conv2dFSQNet
from edgekit.train.sizing import (
    FEW_WINDOWS_PER_CLASS,
    FEW_WINDOWS_QAT_LR,
    MAX_MACS,
    MAX_PARAMETERS,
    QAT_LR,
    SIZES,
    TARGET_ENCODER_WIDTH,
    downsample_for,
    fsq_levels_for,
    handcrafted_for,
    qat_lr_for,
    resolve_net,
    starting_input_step,
    stem_kernel_for,
    within_budget,
)


@pytest.mark.parametrize(
    ("classes", "dims"),
    [(2, 3), (3, 3), (4, 3), (5, 8), (7, 8), (8, 9), (9, 10), (10, 11), (11, 12), (12, 12), (60, 12)],
)  # fmt: skip
def test_fsq_dimensions_grow_with_classes(classes: int, dims: int) -> None:
    levels = fsq_levels_for(classes)
    assert len(levels) == dims and min(levels) >= 5
    eights, fives = levels.count(8), levels.count(5)
    assert levels == tuple(sorted(levels, reverse=True)) and eights - fives in (0, 1)


def test_every_rule_codebook_is_a_valid_config() -> None:
    """The rule's levels pass the checks an explicit `model.fsq_levels` gets (exact int8 codes, a
    code index within the device's uint32), for any number of classes."""
    for classes in range(2, 300):
        levels = fsq_levels_for(classes)
        assert math.prod(levels) <= MAX_CODEBOOK
        load_config(None, [f"model.fsq_levels={list(levels)}"])


def test_the_stem_takes_the_stages_kernel_when_given_0_or_its_own_when_given_one() -> None:
    net = resolve_net(ModelConfig(kernel_size=7, stem_kernel=0), 1, 5, 672, 60, quant=False)
    assert net.stem() == 7 and net.stem_kernel == 0
    explicit = resolve_net(ModelConfig(stem_kernel=15), 1, 5, 672, 60, quant=False)
    assert explicit.stem() == 15 and Conv2dFSQNet(explicit).encoder[0].kernel_size == (1, 15)


@pytest.mark.parametrize(
    ("row", "kernel_size", "stem"),
    [(17, 5, 5), (18, 5, 9), (672, 3, 9), (672, 7, 9), (672, 9, 9), (672, 11, 11)],
)
def test_auto_stem_is_9_taps_where_a_row_holds_twice_that(
    row: int, kernel_size: int, stem: int
) -> None:
    net = resolve_net(ModelConfig(kernel_size=kernel_size), 1, 5, row, 60, quant=False)
    assert net.stem() == stem == Conv2dFSQNet(net).encoder[0].kernel_size[1]


def test_auto_stem_keeps_the_widths_and_the_budget() -> None:
    """The long stem comes after the widths: where it would break the MAC budget (52 channels x
    1460 samples at the tiny widths) the stem keeps the stages' kernel instead of the widths
    shrinking; where it fits, the widths are those of a 5-tap stem."""
    wide = resolve_net(ModelConfig(kernel_size=5), 52, 10, 730, 50, quant=False)
    assert wide.stem() == 5 and within_budget(wide)
    assert not within_budget(dataclasses.replace(wide, stem_kernel=9, pooled_stages=0))
    plaid = resolve_net(ModelConfig(), 1, 11, 672, 455, quant=False)
    five = resolve_net(ModelConfig(stem_kernel=0), 1, 11, 672, 455, quant=False)
    assert plaid.stem() == 9 and plaid.channels == five.channels and within_budget(plaid)


@pytest.mark.parametrize("width", [6, 12, 15, 50, 75, 125, 213, 730, 5000])
def test_depth_is_the_fewest_stages_reaching_the_target_width(width: int) -> None:
    stages = downsample_for(width, 5)
    net = resolve_net(ModelConfig(downsample=stages), 1, 2, width, 40, quant=False)
    assert net.encoder_width() <= TARGET_ENCODER_WIDTH or stages == 1
    if stages > 1:
        shallower = dataclasses.replace(net, downsample=stages - 1)
        assert shallower.encoder_width() > TARGET_ENCODER_WIDTH


def test_documented_depths() -> None:
    assert downsample_for(12, 5) == 1  # 24 samples
    assert downsample_for(730, 5) == 7  # 1460 samples


@pytest.mark.parametrize(
    ("windows", "size"),
    [
        (4, "medium"),
        (31, "medium"),
        (32, "small"),
        (499, "small"),
        (500, "medium"),
        (4999, "medium"),
        (5000, "large"),
        (100_000, "large"),
    ],
)
def test_auto_widths_follow_the_train_windows(windows: int, size: str) -> None:
    """4 classes: below 8 windows a class (32) the wider medium, then small, medium, large."""
    net = resolve_net(ModelConfig(), 6, 4, 50, windows, quant=False)
    assert net.channels == SIZES[size]


def test_few_windows_per_class_count_the_classes_and_still_step_down_to_the_budget() -> None:
    # 10 classes at 5 windows each (a gesture set): medium; the same 50 windows of 2 classes: small
    assert resolve_net(ModelConfig(), 3, 10, 64, 50, quant=False).channels == SIZES["medium"]
    assert resolve_net(ModelConfig(), 3, 2, 64, 50, quant=False).channels == SIZES["small"]
    # a 1460-sample window: medium would cost ~10 M MACs, so the rule steps down to small
    long = resolve_net(ModelConfig(), 1, 10, 730, 50, quant=False)
    assert long.channels == SIZES["small"] and within_budget(long)


def test_at_10_windows_a_class_the_rate_and_detectors_change_but_not_the_widths() -> None:
    """The two thresholds: medium widths stop below 8 a class (a tie at 8, a loss at 10), the slower
    QAT rate and the detectors go on to 10 (gains at 8 and 10; bench/README.md)."""
    windows = 40  # 10 a class, 4 classes
    net = resolve_net(ModelConfig(), 6, 4, 50, windows, quant=False)
    assert net.channels == SIZES["small"] and net.handcrafted_filters
    assert qat_lr_for(windows, 4) == FEW_WINDOWS_QAT_LR


@pytest.mark.parametrize("classes", [2, 10])
def test_the_qat_rate_drops_below_few_windows_per_class_and_only_there(classes: int) -> None:
    boundary = FEW_WINDOWS_PER_CLASS * classes
    assert (
        qat_lr_for(5 * classes, classes) == qat_lr_for(boundary - 1, classes) == FEW_WINDOWS_QAT_LR
    )
    assert qat_lr_for(boundary, classes) == qat_lr_for(10_000, classes) == QAT_LR
    assert FEW_WINDOWS_QAT_LR < QAT_LR


@pytest.mark.parametrize(
    ("switch", "windows", "detectors"),
    [
        ("auto", 54, True),
        ("auto", 55, False),
        ("true", 400, True),
        ("false", 20, False),
    ],
)
def test_the_detectors_start_the_stem_below_few_windows_per_class_unless_the_config_says(
    switch: Switch, windows: int, detectors: bool
) -> None:
    """5 classes: below 55 train windows (11 a class) auto turns the detectors on."""
    model = ModelConfig(handcrafted_filters=switch)
    net = resolve_net(model, 3, 5, 64, windows, quant=False)
    assert net.handcrafted_filters is detectors
    assert (net.handcrafted_weight().shape[0] > 0) is detectors


def test_auto_steps_down_to_fit_the_budgets_and_explicit_choices_are_kept() -> None:
    # 52 channels x 1460 samples: the large widths cost far more than 5 M MACs per window
    net = resolve_net(ModelConfig(), 52, 12, 730, 100_000, quant=False)
    cost = model_cost(Conv2dFSQNet(net))
    assert net.channels != SIZES["large"]
    assert cost["macs"] <= MAX_MACS and cost["parameters"] <= MAX_PARAMETERS
    assert (
        resolve_net(ModelConfig(size="large"), 52, 12, 730, 40, quant=False).channels
        == SIZES["large"]
    )
    explicit = ModelConfig(channels=(4, 8, 8), fsq_levels=(5, 5), downsample=3, kernel_size=3)
    net = resolve_net(explicit, 52, 12, 730, 100_000, quant=True)
    assert (net.channels, net.fsq_levels, net.downsample, net.kernel_size) == (
        (4, 8, 8),
        (5, 5),
        3,
        3,
    )
    assert net.quant_preset == "int8" and not net.batch_norm


def test_every_auto_model_builds_and_keeps_the_hailo_shape() -> None:
    import torch

    for width, channels, windows in [
        (12, 1, 60),
        (15, 12, 220),
        (730, 1, 82),
        (672, 1, 440),
        (50, 6, 30),
    ]:
        net = resolve_net(ModelConfig(), channels, 5, width, windows, quant=False)
        model = Conv2dFSQNet(net).eval()
        z = model.encode(torch.zeros(2, channels, 2, width))
        assert z.shape == (2, len(net.fsq_levels), 1, 1)


def test_auto_full_rate_stages_are_the_most_that_fit_the_mac_budget() -> None:
    # 1 channel, 427 samples (OSULeaf): all 5 stages at full rate cost more than 5 M MACs
    net = resolve_net(ModelConfig(dilated_stages=-1), 1, 6, 214, 164, quant=False)
    assert 0 < net.dilated_stages < net.downsample
    assert within_budget(net)
    assert not within_budget(dataclasses.replace(net, dilated_stages=net.dilated_stages + 1))
    short = resolve_net(ModelConfig(dilated_stages=-1), 1, 2, 12, 55, quant=False)
    assert short.dilated_stages == short.downsample == 1
    assert resolve_net(ModelConfig(), 1, 6, 214, 164, quant=False).dilated_stages == 0
    explicit = resolve_net(ModelConfig(dilated_stages=9), 1, 6, 214, 164, quant=False)
    assert explicit.dilated_stages == explicit.downsample  # at most every stage, even over budget


def test_auto_kernel_is_3_where_only_3_lets_every_stage_max_pool() -> None:
    """PLAID's shape (672-sample rows, 7 stages) pools no stage within 5 M MACs at 5 taps and all 7
    at 3, so auto takes 3; ACSF1's (730) pools only some at 3 and OSULeaf's (214) all at 5: both
    keep 5. An explicit kernel, or pooling switched off, keeps what was asked."""
    plaid = resolve_net(ModelConfig(), 1, 11, 672, 455, quant=False)
    assert (plaid.kernel_size, plaid.pooled_stages, plaid.downsample) == (3, 7, 7)
    assert within_budget(plaid)
    five = resolve_net(ModelConfig(kernel_size=5), 1, 11, 672, 455, quant=False)
    assert (five.kernel_size, five.pooled_stages) == (5, 0)
    acsf1 = resolve_net(ModelConfig(), 1, 10, 730, 85, quant=False)
    assert (acsf1.kernel_size, acsf1.pooled_stages) == (5, 0)
    three = resolve_net(ModelConfig(kernel_size=3), 1, 10, 730, 85, quant=False)
    assert (three.pooled_stages, three.downsample) == (2, 7)
    osuleaf = resolve_net(ModelConfig(), 1, 6, 214, 164, quant=False)
    assert (osuleaf.kernel_size, osuleaf.pooled_stages) == (5, 5)
    strided = resolve_net(ModelConfig(pooled_stages=0), 1, 11, 672, 455, quant=False)
    assert (strided.kernel_size, strided.pooled_stages) == (5, 0)


def test_auto_pooled_stages_are_the_most_that_fit_after_the_full_rate_ones() -> None:
    """OSULeaf's shape (214 wide, 5 stages) pools every stage within 5 M MACs; ACSF1's (730 wide,
    7 stages, 4.6 M MACs strided) cannot afford even its first stage at stride 1."""
    every = resolve_net(ModelConfig(pooled_stages=-1), 1, 6, 214, 164, quant=False)
    assert every.pooled_stages == every.downsample == 5 and within_budget(every)
    none = resolve_net(ModelConfig(pooled_stages=-1), 1, 10, 730, 85, quant=False)
    assert none.pooled_stages == 0 and within_budget(none)
    assert not within_budget(dataclasses.replace(none, pooled_stages=1))
    both = resolve_net(ModelConfig(dilated_stages=1, pooled_stages=-1), 1, 6, 214, 164, quant=False)
    assert both.dilated_stages == 1 and both.dilated_stages + both.pooled_stages <= both.downsample
    assert [pool for _, _, pool in both.stage_geometry()][: 1 + both.pooled_stages] == [False] + [
        True
    ] * both.pooled_stages
    explicit = resolve_net(ModelConfig(pooled_stages=9), 1, 6, 214, 164, quant=False)
    assert explicit.pooled_stages == explicit.downsample  # at most every stage, even over budget
    assert resolve_net(ModelConfig(), 1, 6, 214, 164, quant=False) == every  # -1 is the default
    strided = resolve_net(ModelConfig(pooled_stages=0), 1, 6, 214, 164, quant=False)
    assert strided.pooled_stages == 0


def test_the_rule_s_numbers_are_the_measured_ones() -> None:
    """Literal values (bench/README.md measured these): a changed width, level or rate must fail
    here, not pass because the test reads the module's own constant."""
    widths = {size: resolve_net(ModelConfig(size=size), 1, 2, 64, 40, quant=False).channels
              for size in ("tiny", "small", "medium", "large")}  # fmt: skip
    assert widths == {
        "tiny": (8, 16, 16),
        "small": (16, 32, 32),
        "medium": (24, 48, 48),
        "large": (32, 64, 64),
    }
    assert fsq_levels_for(4) == (8, 6, 5)
    assert fsq_levels_for(5) == (8, 8, 8, 8, 5, 5, 5, 5)
    assert fsq_levels_for(8) == (8, 8, 8, 8, 8, 5, 5, 5, 5)
    assert fsq_levels_for(30) == (8, 8, 8, 8, 8, 8, 5, 5, 5, 5, 5, 5)
    assert qat_lr_for(54, 5) == 0.0003 and qat_lr_for(55, 5) == 0.001
    assert (MAX_PARAMETERS, MAX_MACS) == (100_000, 5_000_000)


@pytest.mark.parametrize(
    ("parameters", "macs", "fits"),
    [
        (100_000, 5_000_000, True),
        (100_001, 10, False),
        (10, 5_000_001, False),
        (0, 0, True),
    ],
)
def test_a_network_fits_at_its_budgets_and_not_one_above(
    parameters: int, macs: int, fits: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgekit.evaluate

    monkeypatch.setattr(
        edgekit.evaluate, "model_cost", lambda model: {"parameters": parameters, "macs": macs}
    )
    assert within_budget(resolve_net(ModelConfig(), 1, 2, 64, 40, quant=False)) is fits


def test_building_a_candidate_leaves_the_seed_where_it_was() -> None:
    """The size rule builds networks to cost them; the weights a run then draws must not depend on
    how many it built."""
    import torch

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    within_budget(resolve_net(ModelConfig(), 1, 6, 214, 164, quant=False))
    assert torch.equal(torch.rand(3), expected)


def test_the_starting_input_step_is_a_percentile_of_the_magnitudes_over_127() -> None:
    import numpy as np

    X = np.array([[-254.0, 1.0, 2.0, 127.0]])
    assert starting_input_step(X, 100) == 2.0
    assert starting_input_step(X, 0) == 1 / 127
    assert starting_input_step(X, 50) == pytest.approx(64.5 / 127)
    assert starting_input_step(np.zeros((0, 3)), 99.999) == 0.0


def test_auto_stops_at_the_tiny_widths_even_over_budget() -> None:
    """200 channels of 4000 samples: not even the tiny widths fit; the rule keeps them (the
    budgets then say so), it never wraps round to the large ones."""
    net = resolve_net(ModelConfig(), 200, 12, 2000, 100_000, quant=False)
    assert net.channels == (8, 16, 16) and not within_budget(net)
    assert (net.dilated_stages, net.pooled_stages) == (0, 0)


def test_explicit_pooled_stages_take_what_the_full_rate_ones_leave() -> None:
    net = resolve_net(ModelConfig(dilated_stages=2, pooled_stages=9), 1, 6, 214, 164, quant=False)
    assert (net.downsample, net.dilated_stages, net.pooled_stages) == (5, 2, 3)


@pytest.mark.parametrize(
    ("row", "kernel_size", "stem"),
    [(17, 5, 0), (18, 5, 9), (18, 8, 9), (672, 9, 0), (672, 11, 0)],
)
def test_the_auto_stem_is_recorded_as_0_unless_it_is_longer(
    row: int, kernel_size: int, stem: int
) -> None:
    """0 means the stages' kernel: a 9-tap stem is recorded only where it is longer than that."""
    assert stem_kernel_for(row, kernel_size) == stem


def test_switches_read_from_a_file_are_compared_by_value() -> None:
    """YAML and the CLI build their strings at run time: `auto` must be read by value, not by
    identity with the literal in the code."""
    auto = "".join(["au", "to"])
    assert handcrafted_for(auto, 20, 5) is True
    assert handcrafted_for("".join(["tr", "ue"]), 400, 5) is True
    net = resolve_net(ModelConfig(size=auto), 6, 4, 50, 4, quant=False)  # type: ignore[arg-type]
    assert net.channels == (24, 48, 48)
    long = resolve_net(ModelConfig(size=auto), 1, 10, 730, 50, quant=False)  # type: ignore[arg-type]
    assert long.channels == (16, 32, 32)  # medium would cost ~10 M MACs: stepped down


def test_auto_pooled_stages_count_only_the_stages_the_full_rate_ones_leave() -> None:
    """2 stages, the first at full rate: one is left to pool, however cheap pooling both would be;
    an explicit count below what fits is kept."""
    net = resolve_net(ModelConfig(dilated_stages=1, pooled_stages=-1), 1, 2, 30, 55, quant=False)
    assert (net.downsample, net.dilated_stages, net.pooled_stages) == (2, 1, 1)
    one = resolve_net(ModelConfig(pooled_stages=1), 1, 6, 214, 164, quant=False)
    assert (one.downsample, one.pooled_stages) == (5, 1)
