"""`edgekit analyze`: per-layer costs that agree with the exported artefacts, from a run or from a
config without training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from edgekit.cli import cli


def test_a_runs_layers_agree_with_the_int8_graph_and_the_mcu_build(exported_run: Path) -> None:
    from edgekit.quantize.integer_reference import FsqStep, IntegerReference

    result = CliRunner().invoke(cli, ["analyze", str(exported_run), "--target", "mcu", "--json"])
    assert result.exit_code == 0, result.output
    analysis = json.loads(result.output)
    reference = IntegerReference.from_onnx(exported_run / "export/onnx/model_int8.onnx")
    steps = [s for s in reference.steps if not isinstance(s, FsqStep)]  # FSQ has no layer cost
    assert [layer["output_shape"] for layer in analysis["layers"]] == [
        list(s.output.shape) for s in steps
    ]
    assert [layer["macs"] for layer in analysis["layers"]] == [getattr(s, "macs", 0) for s in steps]
    build = json.loads((exported_run / "export/mcu/report.json").read_text())["model"]
    assert analysis["totals"]["macs"] == build["macs_per_window"] == analysis["mcu"]["macs"]
    assert analysis["mcu"]["arena_bytes"] == build["arena_bytes"]
    assert analysis["mcu"]["input_bytes"] == build["input_bytes"]
    assert (analysis["mcu"]["weight_bytes"], analysis["mcu"]["bias_bytes"]) == (
        build["weight_bytes"],
        build["bias_bytes"],
    )
    estimate = analysis["mcu"]["instructions_estimate"]
    assert estimate["dsp"] < estimate["portable"] and estimate["dsp"] >= build["macs_per_window"]
    metrics = json.loads((exported_run / "metrics.json").read_text())
    assert analysis["totals"]["parameters"] == metrics["cost"]["parameters"]
    assert analysis["totals"]["weight_bytes"] == metrics["cost"]["int8_weight_bytes"]


def test_hailo_target_gives_the_readiness_verdict(exported_run: Path) -> None:
    result = CliRunner().invoke(cli, ["analyze", str(exported_run), "--target", "hailo"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("hailo: READY (")


def test_a_config_is_analysed_untrained_without_brevitas(tiny_config) -> None:
    """The same network the tiny run trains, from its config alone, in a fresh interpreter that
    never imports Brevitas."""
    code = (
        "import json, sys; from edgekit.config import load_config; from edgekit.analyze import analyze_config\n"
        "result = analyze_config(load_config('tiny', ['train.threads=2']))\n"
        "print(json.dumps(result['totals'])); print('brevitas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    totals_line, brevitas = out.stdout.strip().splitlines()[-2:]
    assert brevitas == "False"
    totals = json.loads(totals_line)
    from edgekit.data.prepare import prepare_data
    from edgekit.evaluate import model_cost
    from edgekit.models import Conv2dFSQNet
    from edgekit.train.loop import net_config_for

    data = prepare_data(tiny_config.data)
    expected = model_cost(Conv2dFSQNet(net_config_for(tiny_config, data, quant=False)))
    assert (totals["parameters"], totals["macs"]) == (expected["parameters"], expected["macs"])


def test_a_configs_mcu_figures_are_what_the_export_of_its_run_measured(exported_run: Path) -> None:
    """Planned from the untrained network's shapes alone, the arena, constants and MACs are those
    of the trained run's generated C (export/mcu/report.json)."""
    args = ["analyze", "--config", "tiny", "--set", "train.threads=2", "--target", "mcu", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    planned = json.loads(result.output)["mcu"]
    build = json.loads((exported_run / "export/mcu/report.json").read_text())["model"]
    keys = ("arena_bytes", "input_bytes", "weight_bytes", "bias_bytes")
    assert [planned[k] for k in keys] == [build[k] for k in keys]
    assert planned["macs"] == build["macs_per_window"]
    from_run = CliRunner().invoke(cli, ["analyze", str(exported_run), "--target", "mcu", "--json"])
    assert json.loads(from_run.output)["mcu"] == planned


def test_max_pooled_stages_keep_the_device_graph_hailo_ready() -> None:
    """MaxPool is a documented Hailo layer (hailo.md): a config with pooled stages gets the same
    verdict as one without, its device graph holding the pools."""
    verdicts = []
    for pooled in ("0", "-1"):
        args = ["analyze", "--config", "tiny", "--set", f"model.pooled_stages={pooled}"]
        result = CliRunner().invoke(cli, [*args, "--target", "hailo", "--json"])
        assert result.exit_code == 0, result.output
        analysis = json.loads(result.output)
        verdicts.append((analysis["hailo"]["ready"], analysis["hailo"]["errors"]))
        ops = [layer["op"] for layer in analysis["layers"]]
        assert ops.count("MaxPool 1x2") == (2 if pooled == "-1" else 0)
    assert verdicts[0] == verdicts[1] == (True, [])


def test_a_configs_hailo_verdict_is_the_trained_exports(exported_run: Path) -> None:
    """Readiness looks at ops and shapes: the untrained graph of the run's config gets the
    verdict the trained export got (export/hailo/hailo8/readiness_report.json)."""
    result = CliRunner().invoke(
        cli,
        ["analyze", "--config", "tiny", "--set", "train.threads=2", "--target", "hailo", "--json"],
    )
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)["hailo"]
    exported = json.loads((exported_run / "export/hailo/hailo8/readiness_report.json").read_text())
    assert (verdict["ready"], verdict["errors"]) == (exported["ready"], exported["errors"])
    # R14 is about the calibration set the export ships and R15 about the trained weights' FSQ code
    # flips, which a config has neither of
    assert verdict["warnings"] == [w for w in exported["warnings"] if w not in ("R14", "R15")]


@pytest.mark.mcu_tools
def test_the_flash_and_instruction_estimates_bracket_the_measured_builds(
    exported_run: Path,
) -> None:
    """analyze's flash and RAM ranges hold what the export measured on the emulated board for both
    kernel paths, and its instructions estimate is within 10 % of the measured count."""
    result = CliRunner().invoke(cli, ["analyze", str(exported_run), "--target", "mcu", "--json"])
    part = json.loads(result.output)["mcu"]
    builds = json.loads((exported_run / "export/mcu/report.json").read_text())["target"]["builds"]
    for path in ("dsp", "portable"):
        low, high = part["flash_estimate"][path]
        assert low <= builds[path]["flash_bytes"] <= high, path
        low, high = part["ram_estimate"]
        assert low <= builds[path]["ram_bytes"] <= high, path
        measured = builds[path]["instructions_per_inference"]
        assert abs(part["instructions_estimate"][path] - measured) <= 0.1 * measured, path


def test_macs_agree_with_onnx_shape_inference(exported_run: Path) -> None:
    """Each convolution's MACs from onnx.shape_inference on the exported float graph: output
    elements x (input channels / groups) x kernel area, summed, equal analyze's total."""
    import math

    import onnx

    model = onnx.shape_inference.infer_shapes(
        onnx.load(exported_run / "export/onnx/model_float.onnx")
    )
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]
    }
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    macs = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            _, in_per_group, kh, kw = weights[node.input[1]]
            macs += math.prod(shapes[node.output[0]][1:]) * in_per_group * kh * kw
    result = CliRunner().invoke(cli, ["analyze", str(exported_run), "--json"])
    assert json.loads(result.output)["totals"]["macs"] == macs > 0
