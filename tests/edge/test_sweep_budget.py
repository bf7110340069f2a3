"""`--budget`: units as datasheets quote them, one-line errors naming the item and the fix, the
limits a trial's figures break, and the figures themselves from an untrained network."""

from __future__ import annotations

import dataclasses

import pytest
from edgekit.config import load_config
from edgekit.errors import ConfigError
from edgekit.models import Conv2dFSQNet, NetConfig
from edgekit.sweep.budget import Budget, figures_of, parse_budget

# as a trial builds it before training: float, batch norm
TINY_NET = NetConfig(
    in_channels=3,
    num_classes=4,
    input_width=16,
    channels=(4, 8, 8),
    quant_preset=None,
    batch_norm=True,
)


def test_budget_units_and_violations() -> None:
    budget = parse_budget("flash=64k,ram=20k,macs=2M,params=50k,latency_ms=5,cpu_mhz=80", "mcu")
    assert budget.limits == {
        "flash": 65536,
        "ram": 20480,
        "macs": 2_000_000,
        "params": 50_000,
        "latency_ms": 5,
    }
    assert budget.cpu_mhz == 80
    assert budget.violations({"flash_bytes": 65536, "ram_bytes": 20481, "macs": 10}) == [
        "ram 20481 > 20480"
    ]
    assert Budget().violations({"hailo_ready": False, "hailo_errors": ["R3"]}) == [
        "not Hailo-ready (R3)"
    ]


@pytest.mark.parametrize(
    ("item", "limit"),
    [
        ("flash=64k", 65536),
        ("flash=64K", 65536),
        ("flash=64KiB", 65536),
        ("flash=64kb", 65536),
        ("flash=1M", 1048576),
        ("flash=1mib", 1048576),
        ("flash=0.5k", 512),
        ("flash=.5k", 512),
        ("flash=100b", 100),
        ("flash=100", 100),
        ("flash= 64k ", 65536),
        ("ram=2e3", 2000),
        ("ram=1.5e+1k", 15360),
        ("weights=3k", 3072),
        ("macs=2M", 2_000_000),
        ("macs=2m", 2_000_000),
        ("macs=2.5k", 2500),
        ("params=50K", 50_000),
        ("params=7", 7),
        ("latency_ms=0.25", 0.25),
    ],
)
def test_bytes_read_k_as_1024_and_counts_as_1000(item: str, limit: float) -> None:
    key = item.partition("=")[0]
    clock = ",cpu_mhz=80" if key == "latency_ms" else ""
    assert parse_budget(item + clock, "mcu").limits == {key: limit}


def test_keys_ignore_case_spaces_and_empty_items_and_the_last_of_a_key_counts() -> None:
    budget = parse_budget(" FLASH =64k,, Ram=1k ,flash=32k,", "mcu")
    assert budget.limits == {"flash": 32768, "ram": 1024}
    assert budget.cpu_mhz is None


def test_the_clock_may_come_first_and_a_target_read_from_a_file_is_compared_by_value() -> None:
    budget = parse_budget("cpu_mhz=80,latency_ms=5,ram=1k", "".join(["m", "cu"]))
    assert budget.limits == {"latency_ms": 5, "ram": 1024} and budget.cpu_mhz == 80


def test_a_budget_is_frozen() -> None:
    budget = parse_budget("macs=2M", "onnx")
    with pytest.raises(dataclasses.FrozenInstanceError):
        budget.cpu_mhz = 80  # type: ignore[misc]


@pytest.mark.parametrize("text", [None, "", " , ,"])
def test_no_budget_limits_nothing(text: str | None) -> None:
    budget = parse_budget(text, "hailo")
    assert budget == Budget() and budget.limits == {} and budget.cpu_mhz is None
    assert budget.describe() == "none"
    assert budget.violations({"macs": 10**12, "parameters": 10**9}) == []


@pytest.mark.parametrize(
    ("text", "target", "message"),
    [
        ("macs", "onnx", "--budget 'macs': expected KEY=VALUE, e.g. --budget flash=64k,ram=20k"),
        (
            "abc=1",
            "mcu",
            "--budget: unknown item 'abc'; use params, macs, weights, flash, ram, latency_ms, "
            "cpu_mhz",
        ),
        ("flsh=64k", "mcu", "--budget: unknown item 'flsh'; did you mean 'flash'?"),
        ("cpu_mz=80", "mcu", "--budget: unknown item 'cpu_mz'; did you mean 'cpu_mhz'?"),
        (
            "zzz=1",
            "mcu",
            "--budget: unknown item 'zzz'; use params, macs, weights, flash, ram, latency_ms, "
            "cpu_mhz",
        ),
        (
            "ram=20k",
            "onnx",
            "--budget ram: only the mcu target has that figure; use --target mcu or drop ram",
        ),
        (
            "latency_ms=5",
            "hailo",
            "--budget latency_ms: only the mcu target has that figure; use --target mcu or drop "
            "latency_ms",
        ),
        (
            "latency_ms=5",
            "mcu",
            "--budget latency_ms needs the MCU's clock: add cpu_mhz=..., e.g. "
            "latency_ms=5,cpu_mhz=80",
        ),
        ("ram=lots", "mcu", "--budget ram=lots: expected a number such as ram=64k"),
        ("macs=-2M", "onnx", "--budget macs=-2M: expected a number such as macs=2M"),
        ("macs=2G", "onnx", "--budget macs=2G: expected a number such as macs=2M"),
        ("macs=2kk", "onnx", "--budget macs=2kk: expected a number such as macs=2M"),
        ("macs=", "onnx", "--budget macs=: expected a number such as macs=2M"),
        ("macs=1.", "onnx", "--budget macs=1.: expected a number such as macs=2M"),
        ("latency_ms=5k", "mcu", "--budget latency_ms=5k: expected a number such as latency_ms=5"),
        (
            "latency_ms=5ms",
            "mcu",
            "--budget latency_ms=5ms: expected a number such as latency_ms=5",
        ),
        ("params=50kb", "onnx", "--budget params=50kb: expected a number such as params=2M"),
        ("latency_ms=5b", "mcu", "--budget latency_ms=5b: expected a number such as latency_ms=5"),
        ("cpu_mhz=1k", "mcu", "--budget cpu_mhz=1k: expected a number such as cpu_mhz=80"),
        ("macs=0", "onnx", "--budget macs=0: must be a positive number"),
        ("params=0.0k", "onnx", "--budget params=0.0k: must be a positive number"),
        ("flash=1e999", "mcu", "--budget flash=1e999: must be a positive number"),
        ("cpu_mhz=0", "mcu", "--budget cpu_mhz=0: must be a positive number"),
        ("cpu_mhz=fast", "mcu", "--budget cpu_mhz=fast: expected a number such as cpu_mhz=80"),
    ],
)
def test_a_bad_budget_is_one_line_naming_the_item_and_the_fix(
    text: str, target: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_budget(text, target)
    assert str(raised.value) == message


@pytest.mark.parametrize("target", ["onnx", "mcu", "hailo"])
def test_counts_fit_every_target_and_the_clock_is_a_setting_anywhere(target: str) -> None:
    budget = parse_budget("params=1k,macs=1k,weights=1k,cpu_mhz=168", target)
    assert budget.limits == {"params": 1000, "macs": 1000, "weights": 1024}
    assert budget.cpu_mhz == 168


def test_a_limit_is_broken_only_above_it_and_only_by_a_figure_that_is_there() -> None:
    budget = Budget({"macs": 100, "params": 10.5, "latency_ms": 2})
    assert budget.violations({"macs": 100, "parameters": 10, "latency_ms": 2}) == []
    assert budget.violations({"macs": 101, "parameters": 11, "latency_ms": None}) == [
        "macs 101 > 100",
        "params 11 > 10.5",
    ]
    assert budget.violations({"latency_ms": 2.125}) == ["latency_ms 2.125 > 2"]
    assert budget.violations({"macs": 1.5e7}) == ["macs 1.5e+07 > 100"]
    assert budget.violations({"hailo_ready": True, "hailo_errors": ["R1"]}) == []
    assert budget.violations({"hailo_ready": None}) == []
    assert Budget().violations({"hailo_ready": False, "hailo_errors": ["R1", "R7"]}) == [
        "not Hailo-ready (R1, R7)"
    ]
    assert Budget().violations({"hailo_ready": False}) == ["not Hailo-ready ()"]
    both = Budget({"weights": 1}).violations({"weight_bytes": 2, "hailo_ready": False})
    assert both == ["weights 2 > 1", "not Hailo-ready ()"]


def test_latency_is_instructions_at_the_clock_one_a_cycle() -> None:
    assert Budget(cpu_mhz=80).latency_ms(400_000) == 5.0
    assert Budget(cpu_mhz=3).latency_ms(1000) == 0.333
    assert Budget(cpu_mhz=3).latency_ms(2000) == 0.667
    assert Budget().latency_ms(400_000) is None


def test_describe_lists_the_limits_in_the_order_given_then_the_clock() -> None:
    budget = parse_budget("ram=20k,macs=2M,latency_ms=0.5,cpu_mhz=80", "mcu")
    assert budget.describe() == "ram<=20480, macs<=2e+06, latency_ms<=0.5, cpu_mhz=80"
    assert Budget(cpu_mhz=16).describe() == "cpu_mhz=16"


def test_every_target_gets_the_totals_and_only_its_own_figures() -> None:
    from edgekit.evaluate import layer_costs, totals

    model = Conv2dFSQNet(TINY_NET)
    total = totals(layer_costs(model))
    onnx = figures_of(model, "onnx", Budget(), 13)
    assert onnx == {key: total[key] for key in ("parameters", "macs", "weight_bytes")}
    assert all(value > 0 for value in onnx.values())
    mcu = figures_of(model, "".join(["m", "cu"]), Budget(), 13)
    assert set(mcu) == {*onnx, "flash_bytes", "ram_bytes", "instructions"}  # no clock, no latency
    hailo = figures_of(model, "".join(["hai", "lo"]), Budget(cpu_mhz=80), 13)
    assert set(hailo) == {*onnx, "hailo_ready", "hailo_errors"}
    assert hailo["hailo_ready"] is True and hailo["hailo_errors"] == []


def test_mcu_figures_are_analyze_s_and_latency_follows_the_clock() -> None:
    from edgekit.analyze import analyze_config
    from edgekit.data.prepare import prepare_data
    from edgekit.train.loop import net_config_for

    config = load_config("tiny", ["train.threads=2"])
    analysis = analyze_config(config, "mcu")
    model = Conv2dFSQNet(net_config_for(config, prepare_data(config.data), quant=False))
    figures = figures_of(model, "mcu", parse_budget("latency_ms=1,cpu_mhz=50", "mcu"), 13)
    mcu = analysis["mcu"]
    assert figures["flash_bytes"] == mcu["flash_estimate"]["dsp"][1]
    assert figures["ram_bytes"] == mcu["ram_estimate"][1]
    assert figures["instructions"] == mcu["instructions_estimate"]["dsp"]
    assert figures["latency_ms"] == pytest.approx(figures["instructions"] / 50_000, abs=1e-3)
    assert figures["macs"] == analysis["totals"]["macs"]
    assert figures["parameters"] == analysis["totals"]["parameters"]
    assert figures["weight_bytes"] == analysis["totals"]["weight_bytes"]
