from __future__ import annotations

import copy
import dataclasses
from dataclasses import replace

import numpy as np
import pytest
import torch
from edgekit.models import Conv2dFSQNet, NetConfig
from edgekit.models.handcrafted import detector_patterns
from edgekit.models.network import conv_width, dither_pattern


@pytest.mark.parametrize("preset", [None, "int8", "po2"])
def test_shapes_and_rank4_until_logits(preset: str | None) -> None:
    model = Conv2dFSQNet(NetConfig(6, 4, 63, quant_preset=preset, batch_norm=preset is None)).eval()
    x = torch.randn(3, 6, 2, 63)
    z = model.encode(x)
    assert z.shape == (3, 3, 1, 1)
    assert model.classify(z).shape == (3, 4)
    assert torch.equal(model(x), model.classify(model.encode(x)))


@pytest.mark.parametrize("pooled", [0, 2])
def test_float_twin_and_qat_share_parameter_names(pooled: int) -> None:
    float_config = NetConfig(6, 4, 32, quant_preset=None, pooled_stages=pooled)
    float_names = {k for k in Conv2dFSQNet(float_config).state_dict()}
    qat_model = Conv2dFSQNet(NetConfig(6, 4, 32, pooled_stages=pooled))
    qat_names = {k for k in qat_model.state_dict() if "quant" not in k}
    assert float_names == qat_names


def test_encoder_width_reports_too_short_windows() -> None:
    assert NetConfig(6, 4, 50).encoder_width() == 13
    assert NetConfig(6, 4, 50, kernel_size=7).min_input_width() == 7


@pytest.mark.parametrize("stem", [0, 15, 8])
def test_the_stem_has_its_own_kernel_and_encoder_width_follows_it(stem: int) -> None:
    """The first convolution takes stem_kernel (0: the stages' kernel); an even one widens the row
    by one, which encoder_width counts."""
    config = NetConfig(3, 4, 41, downsample=2, quant_preset=None, stem_kernel=stem)
    model = Conv2dFSQNet(config).eval()
    assert model.encoder[0].kernel_size == (1, stem or 5)
    with torch.no_grad():
        features = model.encoder(torch.randn(2, 3, 2, 41))
    assert features.shape[-1] == config.encoder_width()
    assert config.min_input_width() == max(5, stem)
    legacy = config.to_dict()
    del legacy["stem_kernel"]
    assert NetConfig.from_dict(legacy).stem() == 5  # checkpoints from before the key


def weight_bit_widths(model: Conv2dFSQNet) -> dict[str, int]:
    return {name: int(module.quant_weight().bit_width) for name, module in model.named_modules()
            if hasattr(module, "quant_weight")}  # fmt: skip


@pytest.mark.parametrize("preset", ["int8", "po2"])
def test_overflow_fix_trains_seven_bit_weights_where_it_applies(preset: str) -> None:
    """all: every convolution 7-bit (|w| <= 63); first_layer: the one reading the input; none: 8-bit."""
    for fix, first, rest in (("all", 7, 7), ("first_layer", 7, 8), ("none", 8, 8)):
        model = Conv2dFSQNet(NetConfig(6, 4, 32, quant_preset=preset, overflow_fix=fix))
        widths = weight_bit_widths(model)
        assert widths.pop("encoder.0") == first and set(widths.values()) == {rest}, fix
        weights = model.encoder[0].quant_weight()
        assert (weights.value / weights.scale).abs().round().max() <= 2 ** (first - 1) - 1


def test_checkpoints_from_before_the_overflow_fix_keep_their_eight_bit_weights() -> None:
    legacy = NetConfig(6, 4, 32).to_dict()
    del legacy["overflow_fix"]
    assert NetConfig.from_dict(legacy).overflow_fix == "none"
    assert NetConfig(6, 4, 32).overflow_fix == "all"


@pytest.mark.parametrize("full_rate", [1, 2, 3])
def test_full_rate_stages_compute_the_strided_network_at_every_position(full_rate: int) -> None:
    """A trous: with the strided network's weights, the full-rate encoder's output sampled every
    2^n positions is the strided encoder's output; the other positions are the phases it skips."""
    torch.manual_seed(0)
    strided_config = NetConfig(3, 4, 40, downsample=3, quant_preset=None)
    strided = Conv2dFSQNet(strided_config).eval()
    config = NetConfig(3, 4, 40, downsample=3, quant_preset=None, dilated_stages=full_rate)
    full = Conv2dFSQNet(config).eval()
    full.load_state_dict(strided.state_dict())
    x = torch.randn(2, 3, 2, 40)
    with torch.no_grad():
        reference, features = strided.encoder(x), full.encoder(x)
    assert features.shape[-1] == config.encoder_width() == 5 * 2**full_rate
    torch.testing.assert_close(features[..., :: 2**full_rate], reference, rtol=0, atol=1e-5)
    assert not torch.allclose(features[..., 1 :: 2**full_rate], reference, atol=1e-2)
    convs = [m for m in full.encoder if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] == 1][
        1:
    ]
    assert [(c.stride[1], c.dilation[1], False) for c in convs] == config.stage_geometry()


def test_checkpoints_from_before_full_rate_stages_load_strided() -> None:
    legacy = NetConfig(6, 4, 32).to_dict()
    del legacy["dilated_stages"]
    assert NetConfig.from_dict(legacy).dilated_stages == 0


@pytest.mark.parametrize(("dilated", "pooled"), [(0, 1), (0, 3), (1, 1), (1, 2)])
def test_pooled_stages_convolve_at_stride_one_and_keep_the_larger_of_each_pair(
    dilated: int, pooled: int
) -> None:
    """A pooled stage is the stride-1 convolution (same weights) followed by a (1, 2) max pool;
    the stages after it stay strided, and the width is what encoder_width says."""
    torch.manual_seed(0)
    config = NetConfig(
        3, 4, 41, downsample=3, quant_preset=None, dilated_stages=dilated, pooled_stages=pooled
    )
    model = Conv2dFSQNet(config).eval()
    x = torch.randn(2, 3, 2, 41)
    with torch.no_grad():
        features = model.encoder(x)
    assert features.shape[-1] == config.encoder_width()
    geometry = config.stage_geometry()
    assert [pool for _, _, pool in geometry] == [
        dilated <= stage < dilated + pooled for stage in range(3)
    ]
    stage_convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    stage_convs = [stage_convs[1], *stage_convs[3:]]  # the (1, k) stages, not the stem or row mix
    assert [(c.stride[1], c.dilation[1]) for c in stage_convs] == [(s, d) for s, d, _ in geometry]
    pools = [m for m in model.encoder if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == min(pooled, 3 - dilated)
    if geometry[0][2]:  # stage 0 pooled: the max of each pair of its stride-1 outputs
        with torch.no_grad():
            pre_pool = model.encoder[:6](x)  # stem, then stage 0's convolution, norm and ReLU
            expected = torch.maximum(pre_pool[..., 0:-1:2], pre_pool[..., 1::2])
            torch.testing.assert_close(model.encoder[:7](x), expected, rtol=0, atol=0)


def test_checkpoints_from_before_pooled_stages_load_strided() -> None:
    legacy = NetConfig(6, 4, 32).to_dict()
    del legacy["pooled_stages"]
    assert NetConfig.from_dict(legacy).pooled_stages == 0


@pytest.mark.parametrize("preset", ["int8", "po2"])
def test_the_input_range_starts_at_the_configured_percentile(preset: str) -> None:
    """While Brevitas collects its statistics the input scale is the batch's percentile of |x|
    over 127 (po2: rounded up to a power of two): a spike above it saturates."""
    x = torch.randn(8, 6, 2, 32, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0, 0] = 40.0  # one spike, far above everything else
    ranges = {}
    for percentile in (99.999, 99.0):
        model = Conv2dFSQNet(NetConfig(6, 4, 32, quant_preset=preset, input_percentile=percentile))
        model.train()
        quantized = model.input_quant(x)
        ranges[percentile] = float(quantized.scale) * 127
        expected = float(torch.quantile(x.abs().flatten(), percentile / 100))
        # Brevitas takes the k-th value (no interpolation); po2 rounds the scale up
        assert (
            0.97 * expected <= ranges[percentile] <= (2 if preset == "po2" else 1) * 1.03 * expected
        )
    assert ranges[99.0] < 5 < 30 < ranges[99.999]
    assert (
        float(model.input_quant(x).value.max()) <= ranges[99.0] * 128 / 127
    )  # the spike saturates


def test_checkpoints_from_before_the_input_percentile_keep_the_old_range() -> None:
    legacy = NetConfig(6, 4, 32).to_dict()
    del legacy["input_percentile"]
    assert NetConfig.from_dict(legacy).input_percentile == 99.999


def test_the_dither_keeps_a_level_below_one_input_step() -> None:
    """A flat stretch between two int8 steps quantizes to one integer and loses its level; with
    the pattern of one step peak to peak added, the share of samples that round up holds it, over
    any 64 consecutive samples to within 0.05 of a step."""
    step = 0.05
    pattern = dither_pattern((2, 2, 400), step)
    assert pattern.dtype == np.float32 and 0.99 * step < np.ptp(pattern) <= step
    np.testing.assert_array_equal(pattern, dither_pattern((2, 2, 400), step))  # fixed
    for level in (0.3, -0.7, 0.5, 2.05):
        x = np.full(pattern.shape, level * step, np.float32)
        assert len(np.unique(np.rint(x / step))) == 1
        q = np.rint((x + pattern) / step).ravel()
        runs = np.lib.stride_tricks.sliding_window_view(q, 64).mean(axis=1)
        assert np.abs(runs - level).max() < 0.05


def test_only_the_quantized_model_adds_the_dither_and_checkpoints_keep_their_keys() -> None:
    config = NetConfig(6, 4, 32, input_dither=0.2)
    qat = Conv2dFSQNet(config)
    twin = Conv2dFSQNet(replace(config, quant_preset=None, batch_norm=True))
    assert twin.input_dither is None and Conv2dFSQNet(NetConfig(6, 4, 32)).input_dither is None
    np.testing.assert_array_equal(qat.input_dither[0].numpy(), dither_pattern((6, 2, 32), 0.2))
    undithered = Conv2dFSQNet(replace(config, input_dither=0.0))
    assert set(qat.state_dict()) == set(undithered.state_dict())  # the pattern is not a key
    plain = copy.deepcopy(qat)
    plain.input_dither = None
    x = torch.randn(8, 6, 2, 32, generator=torch.Generator().manual_seed(0))
    qat.train(), plain.train()
    torch.testing.assert_close(qat.encode(x), plain.encode(x + qat.input_dither))
    assert not torch.equal(qat.encode(x), plain.encode(x))
    legacy = NetConfig(6, 4, 32).to_dict()
    del legacy["input_dither"]
    assert NetConfig.from_dict(legacy).input_dither == 0.0


@pytest.mark.parametrize("preset", [None, "int8"])
def test_the_stem_starts_with_the_detectors_one_input_channel_each_at_most_half_its_width(
    preset: str | None,
) -> None:
    """Detector j sits on input channel j mod C; 6 fit a 9-tap stem, but 8 channels take 4."""
    config = NetConfig(3, 4, 64, channels=(8, 16, 16), stem_kernel=9, handcrafted_filters=True,
                       quant_preset=preset, batch_norm=preset is None)  # fmt: skip
    stem = Conv2dFSQNet(config).encoder[0].weight.detach()
    patterns = detector_patterns(9)[:4]
    for j, pattern in enumerate(patterns):
        expected = torch.zeros(3, 1, 9)
        expected[j % 3, 0] = torch.from_numpy(pattern)
        torch.testing.assert_close(stem[j], expected)
    assert not torch.equal(stem[4:], torch.zeros_like(stem[4:]))  # the rest start at random
    assert config.handcrafted_weight().shape == (4, 3, 1, 9)
    wide = replace(config, channels=(16, 32, 32))
    assert wide.handcrafted_weight().shape == (6, 3, 1, 9)
    assert replace(config, handcrafted_filters=False).handcrafted_weight().shape[0] == 0
    legacy = config.to_dict()
    del legacy["handcrafted_filters"]
    assert NetConfig.from_dict(legacy).handcrafted_filters is False


def test_without_the_detectors_the_stem_starts_from_the_seed_alone() -> None:
    config = NetConfig(1, 4, 64, stem_kernel=9, quant_preset=None, batch_norm=True)
    torch.manual_seed(0)
    plain = Conv2dFSQNet(config).encoder[0].weight.detach()
    torch.manual_seed(0)
    with_detectors = Conv2dFSQNet(replace(config, handcrafted_filters=True)).encoder[0].weight
    torch.testing.assert_close(with_detectors[6:].detach(), plain[6:])
    assert not torch.equal(with_detectors[:6].detach(), plain[:6])


@pytest.mark.parametrize("downsample", [1, 2, 3])
def test_only_the_relu_before_the_average_pool_hands_on_a_plain_tensor(downsample: int) -> None:
    """Average pooling a QuantTensor widens its bit width: the last ReLU of the encoder returns a
    plain tensor and the pool is requantized after; every other ReLU keeps its QuantTensor."""
    from brevitas.nn import QuantReLU

    model = Conv2dFSQNet(NetConfig(3, 4, 40, downsample=downsample, pooled_stages=1)).eval()
    relus = [m for m in model.encoder if isinstance(m, QuantReLU)]
    assert len(relus) == 2 + downsample
    assert [relu.return_quant_tensor for relu in relus] == [True] * (1 + downsample) + [False]
    with torch.no_grad():
        features = model.encoder(model.input_quant(torch.randn(2, 3, 2, 40)))
    assert type(features) is torch.Tensor


def test_dropout_acts_on_the_pooled_features_while_training_only() -> None:
    config = NetConfig(3, 4, 40, quant_preset=None, dropout=0.5)
    model = Conv2dFSQNet(config)
    x = torch.randn(4, 3, 2, 40, generator=torch.Generator().manual_seed(0))

    def encode_twice(model: Conv2dFSQNet) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            torch.manual_seed(1)
            first = model.encode(x)
            torch.manual_seed(2)
            return first, model.encode(x)

    assert not torch.equal(*encode_twice(model.train()))
    assert torch.equal(*encode_twice(model.eval()))
    without = Conv2dFSQNet(replace(config, dropout=0.0))
    without.load_state_dict(model.state_dict())
    assert torch.equal(*encode_twice(without.train()))
    torch.testing.assert_close(encode_twice(without.eval())[0], encode_twice(model.eval())[0])


def test_conv_width_is_the_length_torch_gives() -> None:
    """Every (width, kernel, stride, dilation) the encoder can meet, against the convolution
    itself; the defaults are stride 1 and dilation 1."""
    for width in (1, 2, 7, 10, 33):
        for kernel in (1, 2, 3, 5, 8, 9):
            for stride in (1, 2):
                for dilation in (1, 2, 4):
                    conv = torch.nn.Conv2d(1, 1, (1, kernel), (1, stride),
                                           (0, dilation * (kernel // 2)), (1, dilation))  # fmt: skip
                    length = conv(torch.zeros(1, 1, 1, width)).shape[-1]
                    assert conv_width(width, kernel, stride, dilation) == length
    assert conv_width(10, 8) == 11 and conv_width(10, 5) == 10


def test_the_defaults_of_a_network_config() -> None:
    config = NetConfig(1, 2, 8)
    assert (config.channels, config.kernel_size, config.fsq_levels, config.downsample) == (
        (16, 32, 32),
        5,
        (8, 6, 5),
        2,
    )
    assert (config.quant_preset, config.batch_norm, config.overflow_fix) == ("int8", False, "all")
    assert (config.stem_kernel, config.dilated_stages, config.pooled_stages) == (0, 0, 0)
    assert (config.dropout, config.input_dither, config.handcrafted_filters) == (0.0, 0.0, False)
    assert config.input_percentile == 99.999
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.kernel_size = 3  # type: ignore[misc]


@pytest.mark.parametrize(("width", "pooled"), [(41, 0), (41, 2), (40, 3), (7, 1)])
def test_the_encoder_ends_in_one_row_of_encoder_width_steps(width: int, pooled: int) -> None:
    """The (1, k) convolutions pad time only: the two rows stay two until the row mix makes them
    one, and encoder_width is an int count of steps (pooling floors)."""
    config = NetConfig(3, 4, width, downsample=3, pooled_stages=pooled, quant_preset=None)
    model = Conv2dFSQNet(config).eval()
    with torch.no_grad():
        features = model.encoder[:3](torch.zeros(2, 3, 2, width))
        assert features.shape == (2, 16, 2, width)  # the stem
        features = model.encoder(torch.zeros(2, 3, 2, width))
    assert type(config.encoder_width()) is int
    assert features.shape == (2, 32, 1, config.encoder_width())


def test_the_dither_is_the_golden_ratio_sequence_itself() -> None:
    """The same numbers on every target: the exported graph, the MCU's C and the Hailo host part
    carry this pattern, so its values are pinned, not only its statistics."""
    np.testing.assert_allclose(
        dither_pattern((2, 3), 1.0),
        [[-0.5, 0.1180340, -0.2639320], [0.3541020, -0.0278640, -0.4098301]],
        rtol=0,
        atol=1e-6,
    )


@pytest.mark.parametrize("batch_norm", [True, False])
def test_each_encoder_convolution_is_paired_with_the_norm_after_it(batch_norm: bool) -> None:
    preset = None if batch_norm else "int8"
    config = NetConfig(3, 4, 40, downsample=3, pooled_stages=1, quant_preset=preset,
                       batch_norm=batch_norm)  # fmt: skip
    model = Conv2dFSQNet(config)
    pairs = model.conv_norm_pairs()
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [conv for conv, _ in pairs] == convs and len(convs) == 5
    modules = list(model.encoder)
    for conv, norm in pairs:
        assert modules[modules.index(conv) + 1] is norm
        assert isinstance(norm, torch.nn.BatchNorm2d if batch_norm else torch.nn.Identity)
