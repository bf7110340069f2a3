"""Export artifacts, readiness, and parity — including that the checks fail on a real mismatch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from edgekit.errors import ArtifactError, ConfigError, ExportError
from edgekit.onnx_io import OnnxRunner, load_onnx, op_counts
from edgekit.parity import run_parity
from edgekit.rundir.artifacts import Manifest
from edgekit.rundir.checkpoint import load_checkpoint, save_checkpoint
from edgekit.rundir.run import Run
from edgekit.targets import TARGETS, run_export
from edgekit.targets.hailo_readiness import check_hailo_readiness
from onnx import TensorProto


def test_every_target_has_parity_pairs(exported_run: Path) -> None:
    """Completeness: a target added to TARGETS without parity pairs (or an export here) fails."""
    covered = {r.name.split("/")[0] for r in run_parity(exported_run)}
    assert covered == set(TARGETS)
    for name, target in TARGETS.items():
        assert target.tolerances, f"{name} declares no tolerances"


def test_onnx_artifacts(exported_run: Path) -> None:
    folder = exported_run / "export/onnx"
    int8 = load_onnx(folder / "model_int8.onnx")
    raw = load_onnx(folder / "model_int8.unsimplified.onnx")
    for op in ("QuantizeLinear", "DequantizeLinear"):
        assert op_counts(int8)[op] == op_counts(raw)[op] > 0  # onnxsim kept every Q/DQ
    assert len(int8.graph.input) == 1
    assert all(
        d.dim_value > 0 for d in int8.graph.input[0].type.tensor_type.shape.dim
    )  # static shapes
    assert {i.name for i in int8.graph.initializer} & {
        n.input[0] for n in int8.graph.node if n.op_type == "DequantizeLinear"
    }
    variant = load_onnx(folder / "model_int8_int8in.onnx")
    assert variant.graph.input[0].type.tensor_type.elem_type == TensorProto.INT8
    reference = np.load(folder / "reference_io.npz")
    assert int(reference["schema_version"]) == 1 and len(reference["logits_int8"]) == len(
        reference["inputs"]
    )
    manifest = json.loads((exported_run / "manifest.json").read_text())
    assert "export/onnx/model_int8.onnx" in manifest["artifacts"]


def test_hailo_artifacts(exported_run: Path) -> None:
    folder = exported_run / "export/hailo/hailo8"
    names = "model_float.onnx model_device.onnx model_host.onnx model.alls calib_nhwc.npy reference_io.npz"
    for name in (
        *names.split(),
        "build_hef.py",
        "run_hailort.py",
        "readiness_report.json",
        "manifest.json",
    ):
        assert (folder / name).is_file(), name
    device = load_onnx(folder / "model_device.onnx")
    assert not {"Round", "QuantizeLinear", "DequantizeLinear"} & set(op_counts(device))
    assert device.opset_import[0].version == 13
    manifest = json.loads((folder / "manifest.json").read_text())
    end = manifest["parser"]["end_nodes"][0]
    assert next(n for n in device.graph.node if n.name == end).op_type == "Conv"  # cut before FSQ
    calib = np.load(folder / "calib_nhwc.npy")
    _, channels, rows, width = manifest["parser"]["net_input_shapes"]["input"]
    assert calib.shape[1:] == (rows, width, channels) and calib.dtype == np.float32
    report = json.loads((folder / "readiness_report.json").read_text())
    assert report["ready"] and [r["rule"] for r in report["rules"]] == [
        f"R{i}" for i in range(1, 17)
    ]
    stats = json.loads((exported_run / "data/stats.json").read_text())
    preprocessing = manifest["preprocessing"]  # what the device side must repeat
    assert preprocessing["length_policy"] == stats["length_policy"]
    assert preprocessing["length_policy"]["target"] == stats["window_length"]
    assert preprocessing["channels"] == stats["channel_names"]
    metadata = {
        p.key: p.value
        for p in load_onnx(exported_run / "export/onnx/model_int8.onnx").metadata_props
    }
    assert json.loads(metadata["edgekit_length_policy"]) == stats["length_policy"]
    compile(Path(folder / "build_hef.py").read_text(), "build_hef.py", "exec")
    compile(Path(folder / "run_hailort.py").read_text(), "run_hailort.py", "exec")


def test_hailo_device_input_is_the_preprocessed_window_plus_the_dither(exported_run: Path) -> None:
    """The manifest's preprocessing, applied to reference_io's raw windows, gives the windows the
    device part was checked on: HailoRT quantizes after the host adds the QAT model's dither, and
    the DFC's calibration set has it too."""
    from edgekit.calibrate.representative import load_calibration_set, to_nhwc
    from edgekit.data.prepare import preprocess

    folder = exported_run / "export/hailo/hailo8"
    manifest = json.loads((folder / "manifest.json").read_text())
    stats = json.loads((exported_run / "data/stats.json").read_text())
    reference = np.load(folder / "reference_io.npz")
    dither = np.load(folder / manifest["preprocessing"]["input_dither"])
    qat_dither = Run(exported_run).qat_model().input_dither
    assert qat_dither is not None and np.ptp(dither) > 0
    assert np.array_equal(dither, to_nhwc(qat_dither.numpy())[0])
    assert any("input_dither" in step for step in manifest["preprocessing"]["steps"])
    device_input = to_nhwc(preprocess(reference["input_raw"], stats)) + dither
    np.testing.assert_allclose(reference["input_nhwc"], device_input, rtol=0, atol=1e-5)
    saved = load_calibration_set(exported_run)
    assert saved is not None
    assert np.array_equal(np.load(folder / "calib_nhwc.npy"), to_nhwc(saved[0]) + dither)


def test_parity_onnx_and_hailo_pass(exported_run: Path) -> None:
    reports = run_parity(exported_run)
    names = {r.name for r in reports}
    assert {
        "onnx/qat_torch_vs_ort_int8",
        "onnx/int_reference_vs_ort_int8",
        "hailo/hailo8/split_vs_full",
    } <= names
    failed = [(r.name, r.failures) for r in reports if not r.passed]
    assert not failed
    by_name = {r.name: r for r in reports}
    assert by_name["onnx/qat_torch_vs_ort_int8"].max_lsb <= 1
    assert by_name["onnx/int_reference_vs_ort_int8"].exact_fraction >= 0.999
    written = json.loads((exported_run / "parity.json").read_text())
    assert written["passed"] and written["schema_version"] == 1
    test_windows = len(np.load(exported_run / "data/y_test.npy"))
    assert {r.samples for r in reports if r.name.startswith("onnx/")} == {test_windows}  # limit 0


def record_edits(run_dir: Path, *paths: Path) -> None:
    """Deliberate edits, entered in the manifest as a stage would (else the run refuses them)."""
    manifest = Manifest(run_dir)
    manifest.record(*paths)
    manifest.save()


def test_parity_catches_perturbed_weights(run_copy: Path) -> None:
    """Re-export from a perturbed checkpoint, then compare with the unperturbed PyTorch model."""
    from edgekit.targets.onnx_target import INT8

    path = run_copy / "checkpoints/best.pt"
    model, payload = load_checkpoint(path)
    original = path.read_bytes()
    with torch.no_grad():
        model.head.weight.add_(0.5 * torch.randn_like(model.head.weight))
    save_checkpoint(
        path,
        model,
        **{
            k: v
            for k, v in payload.items()
            if k not in ("net_config", "model_state", "schema_version")
        },
    )
    (run_copy / "calibration/report.json").write_text(
        json.dumps({"schema_version": 1, "adopted": False})
    )
    record_edits(run_copy, path, run_copy / "calibration/report.json")
    run_export(run_copy, "onnx")
    path.write_bytes(
        original
    )  # PyTorch reference back to the trained weights; the ONNX stays perturbed
    record_edits(run_copy, path)
    reports = {r.name: r for r in TARGETS["onnx"].parity(Run(run_copy))}
    assert not reports["onnx/qat_torch_vs_ort_int8"].passed
    assert reports[
        "onnx/int_reference_vs_ort_int8"
    ].passed  # both sides read the same (perturbed) file
    assert (run_copy / "export/onnx" / INT8).is_file()


def test_integer_reference_bit_exact_on_more_data(exported_run: Path) -> None:
    from edgekit.quantize.integer_reference import IntegerReference

    run = Run(exported_run)
    X = np.concatenate([run.data.arrays[s][0] for s in ("train", "val", "test")])
    path = exported_run / "export/onnx/model_int8.onnx"
    ort = OnnxRunner(path).run(X)
    ref = IntegerReference.from_onnx(path)
    result = ref.run(X)
    delta = np.abs(result.logits - ort["logits"]) / ref.output_scale
    assert delta.max() <= 1 + 1e-6 and (delta == 0).mean() >= 0.999
    int8_in = ref.run_quantized(ref.quantize_input(X))
    assert np.array_equal(int8_in.logits_q, result.logits_q)


class _TorchIdioms(torch.nn.Module):
    """GELU, max pooling, a mean over time, a concatenation and a slice of channels: what a user's
    network exports to, ready for Hailo; or, `bad`, a Conv1d after an in-graph flatten and a mean
    over channels, which are not."""

    def __init__(self, bad: bool) -> None:
        super().__init__()
        self.bad = bad
        self.conv = (
            torch.nn.Conv1d(4, 8, 3, padding=1)
            if bad
            else torch.nn.Conv2d(4, 8, (1, 3), padding=(0, 1))
        )
        self.pool = torch.nn.MaxPool2d((1, 2))
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bad:
            y = self.conv(x.flatten(2))
            return self.head(y.mean(dim=2) - y.mean(dim=1, keepdim=True).mean(dim=2))
        y = self.pool(torch.nn.functional.gelu(self.conv(x))).mean(dim=(2, 3))
        return self.head(torch.cat([y, y], dim=1)[:, :8])


@pytest.mark.parametrize("opset", [13, 18])
def test_readiness_of_torch_exports(tmp_path: Path, opset: int) -> None:
    """The rules on torch's own exports at both opsets: reductions take their axes as an input from
    18, and GELU is exported as Mul + Erf, which the DFC takes."""
    for bad in (False, True):
        path = tmp_path / f"{bad}.onnx"
        example = torch.zeros(1, 4, 2, 16)
        torch.onnx.export(_TorchIdioms(bad), example, path, opset_version=opset, dynamo=False)
        report = check_hailo_readiness(str(path))
        assert report["errors"] == (["R4", "R5", "R6", "R7", "R9"] if bad else [])
        if bad:
            r9 = next(r for r in report["rules"] if r["rule"] == "R9")["findings"]
            assert len(r9) == 1 and r9[0].endswith("averages axes [1]")


def test_bad_inputs(tmp_path: Path, run_copy: Path) -> None:
    (tmp_path / "truncated.onnx").write_bytes(b"\x08\x07garbage")
    with pytest.raises(ExportError, match="not a valid ONNX model"):
        check_hailo_readiness(str(tmp_path / "truncated.onnx"))
    with pytest.raises(ConfigError, match="export.hw_arch: 'hailo9' is not one of hailo8, hailo8l"):
        run_export(run_copy, "hailo", hw_arch="hailo9")
    with pytest.raises(ExportError, match="does not accept --hw-arch"):
        run_export(run_copy, "onnx", hw_arch="hailo8")
    with pytest.raises(ConfigError, match="export.opset: must be in"):
        run_export(run_copy, "onnx", opset=99)
    with pytest.raises(
        ExportError, match="unknown target 'tflite'; valid targets: hailo, mcu, onnx"
    ):
        run_export(run_copy, "tflite")
    (run_copy / "checkpoints/best.pt").unlink()
    (run_copy / "calibration/report.json").unlink()
    before = (run_copy / "export/onnx/model_int8.onnx").read_bytes()
    with pytest.raises(ArtifactError, match="best.pt is missing"):
        run_export(run_copy, "onnx")
    assert (
        run_copy / "export/onnx/model_int8.onnx"
    ).read_bytes() == before  # the good export survives


def test_nan_calibration_set_is_refused(run_copy: Path) -> None:
    from edgekit.errors import DataError

    path = run_copy / "calibration/calib_set.npz"
    archive = dict(np.load(path))
    archive["X"][0, 0, 0, 0] = np.nan
    np.savez(path, **archive)
    with pytest.raises(ArtifactError, match="calib_set.npz does not match its sha256"):
        run_export(run_copy, "hailo")
    record_edits(run_copy, path)
    with pytest.raises(DataError, match="calib_set.npz has NaN/Inf in 1 windows"):
        run_export(run_copy, "hailo")


def test_stale_calibration_is_ignored_after_retraining(run_copy: Path) -> None:
    from edgekit.rundir.run import Run

    report_path = run_copy / "calibration/report.json"
    report = json.loads(report_path.read_text())
    report["adopted"] = True
    report_path.write_text(json.dumps(report))
    record_edits(run_copy, report_path)
    assert Run(run_copy).qat_checkpoint().name == "calibrated.pt"
    report["source_checkpoint_sha256"] = "0" * 64  # best.pt changed since (a new training)
    report_path.write_text(json.dumps(report))
    record_edits(run_copy, report_path)
    assert Run(run_copy).qat_checkpoint().name == "best.pt"


def test_calibration_report(exported_run: Path) -> None:
    report = json.loads((exported_run / "calibration/report.json").read_text())
    assert report["windows"] > 0 and sum(report["class_counts"]) == report["windows"]
    assert (
        set(report["before"])
        == set(report["after"])
        == {"accuracy", "logit_mae_vs_float", "top1_agreement_vs_float"}
    )
    assert report["judged_on"] == "train"  # the default has no val split
    assert report["checkpoint_for_export"] in ("calibrated.pt", "best.pt")
    ranges = json.loads((exported_run / "calibration/activation_ranges.json").read_text())
    assert ranges["input_quant"]["scale"] > 0


def test_export_config_section_sets_target_defaults(run_copy: Path) -> None:
    config_file = run_copy / "config.resolved.yaml"
    config_file.write_text(config_file.read_text().replace("hw_arch: hailo8", "hw_arch: hailo8l"))
    record_edits(run_copy, config_file)
    summary = run_export(run_copy, "hailo")
    assert (
        summary["hw_arch"] == "hailo8l" and (run_copy / "export/hailo/hailo8l/model.alls").is_file()
    )
    assert (
        run_export(run_copy, "hailo", hw_arch="hailo10h")["hw_arch"] == "hailo10h"
    )  # the flag wins


@pytest.mark.parametrize("damage", ["truncated", "empty", "random"])
def test_parity_on_a_damaged_int8_model_is_one_line(
    run_copy: Path, damage: str, digest, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Damage the manifest did not see is the table's case (tests/test_bad_inputs.py); were the
    damage recorded there, onnxruntime's refusal is one line too, through the console entry point."""
    import sys

    from edgekit.cli import main

    model = run_copy / "export/onnx/model_int8.onnx"
    whole = model.read_bytes()
    damaged = {"truncated": whole[: len(whole) // 3], "empty": b"", "random": bytes(range(256)) * 8}
    model.write_bytes(damaged[damage])
    record_edits(run_copy, model)
    before = digest(run_copy)
    monkeypatch.setattr(sys, "argv", ["edgekit", "parity", str(run_copy)])
    with pytest.raises(SystemExit) as exited:
        main()
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "model_int8.onnx" in err and "re-export" in err
    assert digest(run_copy) == before


def test_a_negative_parity_limit_is_refused(exported_run: Path) -> None:
    with pytest.raises(ConfigError, match="limit must be >= 0"):
        run_parity(exported_run, limit=-1)


def test_parity_of_one_target_on_a_few_windows_is_recorded(exported_run: Path) -> None:
    """`--target onnx --limit 3`: only that target, three windows per pair, the stage's own time."""
    import time

    started = time.perf_counter()
    reports = run_parity(exported_run, targets=["onnx"], limit=3)
    elapsed = time.perf_counter() - started
    assert reports and {r.name.split("/")[0] for r in reports} == {"onnx"}
    assert {r.samples for r in reports} == {3}
    written = json.loads((exported_run / "parity.json").read_text())
    assert written["targets"] == ["onnx"] and len(written["pairs"]) == len(reports)
    stage = json.loads((exported_run / "manifest.json").read_text())["stages"]["parity"]
    assert 0 < stage["seconds"] <= elapsed + 1e-3 and stage["passed"] is written["passed"]


def test_a_parity_stage_that_fails_late_leaves_the_run_as_it_was(
    run_copy: Path, digest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """parity.json is written before the manifest; a failure in between rolls it back."""
    import edgekit.parity as parity_module

    before = digest(run_copy)

    def full_disk(self) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parity_module.Manifest, "save", full_disk)
    with pytest.raises(OSError):
        run_parity(run_copy, targets=["onnx"], limit=2)
    assert digest(run_copy) == before


def test_parity_layers_are_all_exact_on_a_good_export(run_copy: Path) -> None:
    from click.testing import CliRunner
    from edgekit.cli import cli
    from edgekit.quantize.integer_reference import IntegerReference

    result = CliRunner().invoke(
        cli, ["parity", str(run_copy), "--target", "onnx", "--layers", "--limit", "4"]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((run_copy / "parity.json").read_text())
    steps = IntegerReference.from_onnx(run_copy / "export/onnx/model_int8.onnx").steps
    assert [layer["name"] for layer in saved["layers"]] == [step.name for step in steps]
    assert [layer["shape"] for layer in saved["layers"]] == [list(s.output.shape) for s in steps]
    # 7-bit weights: no int16 saturation on any CPU, and the requantisation is onnxruntime's, so
    # every layer it fuses is exact; the projection it runs in float may differ by 1 LSB (the int8
    # pairs' declared tolerance), and what follows it with it
    names = [layer["name"] for layer in saved["layers"]]
    fused = names[: next(i for i, name in enumerate(names) if "project" in name)]
    assert len(fused) >= 4 and all(saved["layers"][i]["max_lsb"] == 0 for i in range(len(fused)))
    assert all(layer["max_lsb"] <= 1 for layer in saved["layers"])
    report = (run_copy / "parity.md").read_text()
    assert (
        "## Per layer" in report
        and "![max difference per layer, in LSB](parity_layers.png)" in report
    )
    import matplotlib.image

    assert matplotlib.image.imread(run_copy / "parity_layers.png").shape[0] > 100
    rerun = CliRunner().invoke(cli, ["parity", str(run_copy), "--target", "onnx", "--limit", "4"])
    assert rerun.exit_code == 0 and not (run_copy / "parity_layers.png").exists()  # none stale
    assert "| onnx/int_reference_vs_ort_int8 |" in (run_copy / "parity.md").read_text()
    if saved["first_difference"] is None:
        assert "every layer exact" in result.output
    else:
        assert f"first layer that differs: {saved['first_difference']['index']}" in result.output


def test_a_failing_pair_names_the_first_layer_that_differs(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The classifier head of the integer reference 8 LSB off (a layer before FSQ would mostly be
    absorbed by its coarse levels): parity fails without --layers, and the per-layer comparison
    names that layer, with every layer before it exact."""
    from click.testing import CliRunner
    from edgekit.cli import cli
    from edgekit.quantize import integer_reference
    from edgekit.quantize.integer_reference import IntegerReference

    steps = IntegerReference.from_onnx(run_copy / "export/onnx/model_int8.onnx").steps
    wrong, original = steps[-1], integer_reference.run_step

    def eight_off(step, q, accumulation="int32"):
        out = original(step, q, accumulation)
        return np.clip(out + 8, step.output.lo, step.output.hi) if step.name == wrong.name else out

    monkeypatch.setattr(integer_reference, "run_step", eight_off)
    result = CliRunner().invoke(cli, ["parity", str(run_copy), "--target", "onnx", "--limit", "4"])
    assert result.exit_code != 0
    saved = json.loads((run_copy / "parity.json").read_text())
    last = len(steps) - 1
    head = saved["layers"][last]
    assert head["name"] == wrong.name and 7 < head["max_lsb"] < 8.001 and not head["exact"]
    # layers before it: exact here (x86); within the int8 pairs' 1 LSB where requantisation differs
    assert all(layer["max_lsb"] <= 1 for layer in saved["layers"][:last])
    first = saved["first_difference"]
    if all(layer["exact"] for layer in saved["layers"][:last]):
        assert (first["index"], first["name"]) == (last, wrong.name)
    assert f"the first layer that differs is {first['index']} {first['name']}" in str(
        result.exception
    )
    assert f"first layer that differs: {first['index']} {first['name']}" in result.output  # table
