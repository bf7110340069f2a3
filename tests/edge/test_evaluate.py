"""Numbers users can trust: the exact binomial interval, the baselines and the small-test warning."""

from __future__ import annotations

import dataclasses
from dataclasses import astuple, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from edgekit.errors import ArtifactError, CheckpointError, DataError
from edgekit.evaluate import (
    MIN_TEST_WINDOWS,
    accuracy_interval,
    classification_metrics,
    evaluate_model,
    layer_costs,
    model_cost,
    predict,
    run_evaluate,
    small_test_warning,
    totals,
)
from edgekit.models import Conv2dFSQNet, NetConfig
from edgekit.quantize.fsq_grid import code_usage
from scipy.stats import beta
from torch import nn


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


def test_the_interval_takes_its_confidence_and_an_empty_split_knows_nothing() -> None:
    low, high = accuracy_interval(5, 10, confidence=0.8)
    assert (low, high) == pytest.approx((beta.ppf(0.1, 5, 6), beta.ppf(0.9, 6, 5)), abs=1e-9)
    assert accuracy_interval(0, 0) == (0.0, 1.0)
    assert accuracy_interval(0, 3)[0] == 0.0 and accuracy_interval(3, 3)[1] == 1.0
    right, windows = int("1000"), int("1000")  # two objects, as counts of a real split are
    assert accuracy_interval(right, windows)[1] == 1.0 and accuracy_interval(0, windows)[0] == 0.0
    assert accuracy_interval(0, 1) == pytest.approx((0.0, 0.975), abs=1e-12)  # one window
    assert accuracy_interval(1, 1) == pytest.approx((0.025, 1.0), abs=1e-12)
    low, high = accuracy_interval(5, 10, confidence=0.4)  # tails of 0.3: 1 % 0.4 is not 0.6
    assert (low, high) == pytest.approx((beta.ppf(0.3, 5, 6), beta.ppf(0.7, 6, 5)), abs=1e-9)


def test_the_small_split_warning_says_what_one_window_is_worth() -> None:
    assert small_test_warning(12) == [
        "the test split has only 12 windows (< 30): one window is 8 pp of accuracy; read the "
        "95 % interval, not the point estimate"
    ]
    assert len(small_test_warning(29)) == 1
    assert small_test_warning(30) == small_test_warning(31) == small_test_warning(5000) == []
    assert "one window is 100 pp" in small_test_warning(0)[0]
    assert "one window is 17 pp" in small_test_warning(6)[0]  # 16.7, rounded
    assert MIN_TEST_WINDOWS == 30


def test_metrics_per_class_confusion_and_baselines_in_full() -> None:
    """Class b is never predicted (precision 0, not a division by zero), d never occurs (recall 0,
    support 0), and neither is ever right (F1 0)."""
    y_true = np.array([0, 0, 0, 1, 2, 2, 2])
    y_pred = np.array([0, 0, 3, 2, 2, 2, 3])
    metrics = classification_metrics(y_true, y_pred, ["a", "b", "c", "d"])
    assert metrics["confusion_matrix"] == [
        [2, 0, 0, 1],
        [0, 0, 1, 0],
        [0, 0, 2, 1],
        [0, 0, 0, 0],
    ]
    assert metrics["per_class"] == {
        "a": {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": 0.8, "support": 3},
        "b": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "c": {"precision": pytest.approx(2 / 3), "recall": pytest.approx(2 / 3),
              "f1": pytest.approx(2 / 3), "support": 3},
        "d": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
    }  # fmt: skip
    assert metrics["accuracy"] == pytest.approx(4 / 7)
    assert metrics["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 4)
    assert metrics["random_baseline"] == 0.25
    assert metrics["majority_baseline"] == pytest.approx(3 / 7)
    assert metrics["windows"] == 7
    assert metrics["accuracy_interval_95"] == pytest.approx(list(accuracy_interval(4, 7)))


def test_metrics_of_no_windows_are_zero_with_the_widest_interval() -> None:
    empty = np.array([], dtype=np.int64)
    with np.errstate(invalid="ignore"):  # the majority of no windows is undefined (nan)
        metrics = classification_metrics(empty, empty, ["a", "b"])
    assert (metrics["accuracy"], metrics["windows"]) == (0.0, 0)
    assert metrics["accuracy_interval_95"] == [0.0, 1.0]


NET = NetConfig(
    in_channels=2,
    num_classes=3,
    input_width=16,
    channels=(4, 8, 8),
    kernel_size=3,
    downsample=2,
    quant_preset=None,
    batch_norm=True,
)


def test_layer_costs_of_a_small_network_by_hand() -> None:
    """Conv: weights + biases parameters, output size x inputs per output MACs, int8 weights and
    int32 biases; activations one byte each; the peak is a layer's input and output together."""
    costs = layer_costs(Conv2dFSQNet(NET))
    assert all(type(value) is int for cost in costs for value in astuple(cost)[4:])
    with pytest.raises(dataclasses.FrozenInstanceError):
        costs[0].macs = 0  # type: ignore[misc]
    assert [astuple(cost) for cost in costs] == [
        ("encoder.0", "Conv 1x3", (2, 2, 16), (4, 2, 16), 28, 768, 40, 128),
        ("encoder.3", "Conv 1x3 /2", (4, 2, 16), (8, 2, 8), 104, 1536, 128, 128),
        ("encoder.6", "Conv 2x1", (8, 2, 8), (8, 1, 8), 136, 1024, 160, 64),
        ("encoder.9", "Conv 1x3 /2", (8, 1, 8), (8, 1, 4), 200, 768, 224, 32),
        ("pool", "GlobalAveragePool", (8, 1, 4), (8, 1, 1), 0, 0, 0, 8),
        ("project", "Conv 1x1", (8, 1, 1), (3, 1, 1), 27, 24, 36, 3),
        ("head", "Conv 1x1", (3, 1, 1), (3, 1, 1), 12, 9, 21, 3),
    ]
    assert totals(costs) == {
        "parameters": 507,
        "macs": 4129,
        "weight_bytes": 609,
        "peak_activation_bytes_estimate": 256,
    }
    assert model_cost(Conv2dFSQNet(NET)) == {
        "parameters": 507,
        "macs": 4129,
        "int8_weight_bytes": 609,
    }


def test_layer_costs_of_full_rate_and_pooled_stages() -> None:
    dilated = layer_costs(Conv2dFSQNet(replace(NET, dilated_stages=1)))
    assert [(c.op, c.output_shape, c.macs) for c in dilated[1:4]] == [
        ("Conv 1x3", (8, 2, 16), 3072),
        ("Conv 2x1", (8, 1, 16), 2048),
        ("Conv 1x3 /2 dil 2", (8, 1, 8), 1536),
    ]
    pooled = layer_costs(Conv2dFSQNet(replace(NET, pooled_stages=1)))
    assert astuple(pooled[2]) == ("encoder.6", "MaxPool 1x2", (8, 2, 16), (8, 2, 8), 0, 0, 0, 128)
    assert (
        totals(pooled)["macs"] == 5665 and totals(pooled)["peak_activation_bytes_estimate"] == 384
    )


def test_a_grouped_convolution_costs_its_groups_inputs_only() -> None:
    """Depthwise and grouped convolutions (LITE's separable stages): each output reads
    in_channels / groups inputs."""

    class Grouped(nn.Module):
        config = replace(NET, in_channels=4, input_width=6)

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 8, (1, 3), groups=2, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    (cost,) = layer_costs(Grouped())  # type: ignore[arg-type]
    assert astuple(cost) == ("conv", "Conv 1x3", (4, 2, 6), (8, 2, 4), 48, 384, 48, 64)
    assert totals([]) == {
        "parameters": 0,
        "macs": 0,
        "weight_bytes": 0,
        "peak_activation_bytes_estimate": 0,
    }


def test_costing_a_model_leaves_its_mode_and_hooks_as_they_were() -> None:
    model = Conv2dFSQNet(NET)
    model.train()
    layer_costs(model)
    assert model.training and all(not m._forward_hooks for m in model.modules())
    model.eval()
    layer_costs(model)
    assert not model.training and all(not m._forward_hooks for m in model.modules())


def test_a_qat_network_costs_what_its_float_twin_costs() -> None:
    """A QAT layer hands the next one a QuantTensor: its shape is read through `.value`."""
    qat = Conv2dFSQNet(replace(NET, quant_preset="int8", batch_norm=False))
    assert [astuple(c) for c in layer_costs(qat)] == [
        astuple(c) for c in layer_costs(Conv2dFSQNet(NET))
    ]


def test_predictions_do_not_depend_on_the_batch_and_codes_are_the_fsq_indices() -> None:
    torch.manual_seed(0)
    model = Conv2dFSQNet(NET)
    X = np.random.default_rng(0).normal(size=(5, 2, 2, 16)).astype(np.float32)
    logits, codes = predict(model, X)
    assert logits.shape == (5, 3) and codes.shape == (5,) and not model.training
    in_twos = predict(model, X, batch_size=2)
    np.testing.assert_allclose(in_twos[0], logits, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(in_twos[1], codes)
    with torch.no_grad():
        z = model.encode(torch.from_numpy(X))
        np.testing.assert_allclose(model.classify(z).numpy(), logits, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(model.fsq.indices(z).numpy(), codes)
    metrics = evaluate_model(model, X, np.array([0, 1, 2, 0, 1]), ["a", "b", "c"])
    assert metrics["windows"] == 5
    assert metrics["accuracy"] == pytest.approx(float(np.mean(logits.argmax(1) == [0, 1, 2, 0, 1])))
    assert metrics["fsq"] == code_usage(codes, NET.fsq_levels)


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset trained for one epoch a phase: a real run folder in a few seconds."""
    from edgekit.config import load_config
    from edgekit.train.loop import run_training

    folder = tmp_path_factory.mktemp("evaluate") / "run"
    overrides = ["train.float_epochs=1", "train.qat_epochs=1", "train.threads=1"]
    run_training(folder, load_config("tiny", overrides), show_progress=False)
    return folder


def test_evaluate_recomputes_the_test_metrics_of_a_checkpoint(one_epoch_run: Path) -> None:
    from edgekit.rundir.checkpoint import load_checkpoint
    from edgekit.rundir.run import Run

    data = Run(one_epoch_run).data
    X, y = data.arrays["test"]
    for name in ("best.pt", "float.pt"):
        model, _ = load_checkpoint(one_epoch_run / "checkpoints" / name)
        expected = evaluate_model(model, X, y, data.class_names)
        assert run_evaluate(one_epoch_run, checkpoint=name) == expected
    assert run_evaluate(str(one_epoch_run))["accuracy"] == run_evaluate(one_epoch_run)["accuracy"]


def test_dropped_channels_are_zero_in_a_copy_and_the_split_stays(one_epoch_run: Path) -> None:
    from edgekit.rundir.checkpoint import load_checkpoint
    from edgekit.rundir.run import Run

    data = Run(one_epoch_run).data
    X, y = data.arrays["test"]
    before = np.array(X)
    metrics = run_evaluate(one_epoch_run, drop_channels=("gyro_*", "acc_y"))
    dropped = metrics.pop("without_channels")
    assert dropped["channels"] == ["acc_y", "gyro_x", "gyro_y", "gyro_z"]
    model, _ = load_checkpoint(one_epoch_run / "checkpoints/best.pt")
    X_zeroed = np.array(X)
    X_zeroed[:, [1, 3, 4, 5]] = 0.0
    expected = evaluate_model(model, X_zeroed, y, data.class_names)
    assert {k: v for k, v in dropped.items() if k != "channels"} == expected
    assert metrics == evaluate_model(model, X, y, data.class_names)
    np.testing.assert_array_equal(Run(one_epoch_run).data.arrays["test"][0], before)
    assert "without_channels" not in run_evaluate(one_epoch_run)


@pytest.mark.parametrize("name", ["../checkpoints/best.pt", "/tmp/best.pt", "checkpoints/best.pt"])
def test_evaluate_takes_a_checkpoint_name_inside_the_run_only(
    one_epoch_run: Path, name: str
) -> None:
    with pytest.raises(CheckpointError) as raised:
        run_evaluate(one_epoch_run, checkpoint=name)
    assert str(raised.value) == (
        f"--checkpoint takes a file name inside {one_epoch_run / 'checkpoints'} (best.pt, float.pt, "
        f"last.pt, calibrated.pt), got {name!r}; copy the checkpoint into that run to evaluate it"
    )


def test_a_checkpoint_the_run_never_wrote_is_refused_after_the_channels_are_checked(
    one_epoch_run: Path,
) -> None:
    with pytest.raises(ArtifactError, match=r"calibrated.pt is missing; run `edgekit calibrate"):
        run_evaluate(one_epoch_run, checkpoint="calibrated.pt")
    with pytest.raises(DataError, match="--drop-channels: 'gyro_q' matches no channel"):
        run_evaluate(one_epoch_run, checkpoint="calibrated.pt", drop_channels=("gyro_q",))
