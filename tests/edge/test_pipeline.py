"""The one-command pipeline on the tiny preset: every stage, the summary, and failure exit paths."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from edgekit.cli import cli


def test_pipeline_runs_every_stage(pipeline_run: tuple[Path, str]) -> None:
    """The session's pipeline run (tests/conftest.py), which exited 0."""
    out, output = pipeline_run
    for stage in (
        "[1/6] train",
        "[3/6] export onnx",
        "[4/6] export hailo",
        "[5/6] parity",
        "[6/6] verify",
        "edgekit pipeline summary",
    ):
        assert stage in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parity_passed"] and summary["device"]["passed"]
    low, high = summary["int8_test_interval_95"]
    assert low <= summary["int8_test_accuracy"] <= high and high - low > 0
    assert f"on {summary['test_windows']} windows; majority baseline" in output
    assert set(summary["stage_seconds"]) == {
        "train",
        "calibrate",
        "export onnx",
        "export hailo",
        "parity",
        "verify",
    }
    assert (
        Path(summary["artifacts"]["hailo"]).is_dir()
        and Path(summary["artifacts"]["verify"]).is_file()
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"train", "calibrate", "export:onnx", "export:hailo", "parity", "verify"} <= set(
        manifest["stages"]
    )


def test_pipeline_fails_when_the_device_fails_its_gate(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "pipeline",
        "--config",
        "tiny",
        "--out",
        str(out),
        "--target",
        "onnx",
        "--device",
        "emu://?faults=perturb_lsb=3",
        *(
            "--set",
            "train.float_epochs=2",
            "--set",
            "train.qat_epochs=1",
        ),  # accuracy is not the point
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert "edgekit pipeline summary" in result.output  # the summary is still printed
    assert not json.loads((out / "verify/report.json").read_text())["passed"]


@pytest.mark.mcu_tools
@pytest.mark.parametrize("stages", ["strided", "full rate", "max-pooled"])
def test_pipeline_for_the_mcu_target_verifies_on_qemu(tmp_path: Path, stages: str) -> None:
    """`--target mcu`: the generated firmware in QEMU is the device, held to 100 % and 0 LSB; also
    for a model with full-rate (dilated) stages, whose export then holds dilated convolutions, and
    one with max-pooled stages (MaxPool in the int8 graph, the C and the reference alike)."""
    out = tmp_path / "run"
    dilated, pooled = {"strided": (0, 0), "full rate": (-1, 0), "max-pooled": (0, -1)}[stages]
    args = ["pipeline", "--config", "tiny", "--out", str(out), "--target", "mcu",
            "--set", "train.float_epochs=3", "--set", "train.qat_epochs=1",
            "--set", f"model.dilated_stages={dilated}", "--set", f"model.pooled_stages={pooled}"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "[4/6] export mcu" in result.output and "device accuracy (mps2-an386)" in result.output
    assert "conv instr/MAC" in result.output  # the footprint table
    summary = json.loads((out / "summary.json").read_text())
    device = summary["device"]
    assert device["url"] == "qemu://" and device["board"] == "mps2-an386" and device["passed"]
    assert device["max_abs_lsb"] == 0 and device["top1_agreement"] == 1.0
    assert (
        device["instructions_per_inference"] > 0 and "instructions per inference" in result.output
    )
    assert Path(summary["artifacts"]["mcu"], "report.json").is_file()
    assert {"mcu/c_vs_int8_reference", "mcu/c_vs_ort_int8"} <= set(summary["parity"])
    graph = onnx.load(str(out / "export/onnx/model_int8.onnx")).graph
    dilations = [a.ints[1] for n in graph.node if n.op_type == "Conv" for a in n.attribute
                 if a.name == "dilations"]  # fmt: skip
    assert (max(dilations) > 1) == (stages == "full rate")
    pools = [n for n in graph.node if n.op_type == "MaxPool"]
    assert len(pools) == (2 if stages == "max-pooled" else 0)  # the tiny config's two stages
    if stages == "max-pooled":  # analyze sees the pools as the int8 graph and the C have them
        from edgekit.quantize.integer_reference import FsqStep, IntegerReference

        analysis = json.loads(
            CliRunner().invoke(cli, ["analyze", str(out), "--target", "mcu", "--json"]).output
        )
        reference = IntegerReference.from_onnx(out / "export/onnx/model_int8.onnx")
        steps = [s for s in reference.steps if not isinstance(s, FsqStep)]
        assert [layer["output_shape"] for layer in analysis["layers"]] == [
            list(s.output.shape) for s in steps
        ]
        assert [layer["op"] for layer in analysis["layers"]].count("MaxPool 1x2") == 2
        build = json.loads((out / "export/mcu/report.json").read_text())["model"]
        assert analysis["mcu"]["arena_bytes"] == build["arena_bytes"]
