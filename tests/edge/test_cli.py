"""The CLI through click's CliRunner: thin commands, one-line errors, no torch on --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from edgekit.cli import cli, main


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Invoke `main()` in-process as the console script does (EdgekitError -> exit code)."""

    def invoke(args: list[str]) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["edgekit", *args])
        try:
            main()
        except SystemExit as exited:
            code = int(exited.code or 0)
        else:
            code = 0
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return invoke


def imports_after(args: list[str]) -> set[str]:
    """Top-level packages loaded by running the CLI with `args` in a fresh interpreter."""
    code = (
        "import sys; from edgekit.cli import main; sys.argv=['edgekit', *sys.argv[1:]]\n"
        "try:\n main()\nexcept SystemExit: pass\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    loaded = set(lines[-1].split()) if lines else set()  # the command's own output comes first
    # a crash would print no module list: fail here instead of passing the "not imported" checks
    assert result.returncode == 0 and "edgekit" in loaded, result.stderr[-2000:]
    return loaded


def test_help_does_not_import_torch() -> None:
    assert {"click", "edgekit"} <= imports_after(["--help"])
    assert not {"torch", "onnx"} & imports_after(["--help"])
    assert "torch" not in imports_after(["export", "--target", "hailo", "--help"])


def test_check_does_not_import_torch(exported_run: Path) -> None:
    loaded = imports_after(["check", str(exported_run / "export/hailo/hailo8/model_device.onnx")])
    assert "onnx" in loaded and "torch" not in loaded
    int8 = str(exported_run / "export/onnx/model_int8.onnx")
    loaded = imports_after(["check", "--target", "onnx", int8])
    assert "onnx" in loaded and "torch" not in loaded


def test_check_prints_how_to_feed_any_exported_model(exported_run: Path) -> None:
    """Every exported model file carries the run's deployment facts; `check` prints them."""
    from edgekit.config import load_run_config

    stats = json.loads((exported_run / "data/stats.json").read_text())
    for model in ("export/onnx/model_int8.onnx", "export/hailo/hailo8/model_device.onnx"):
        result = CliRunner().invoke(
            cli, ["check", "--json", "--target", "onnx", str(exported_run / model)]
        )
        metadata = json.loads(result.output)["metadata"]
        assert metadata["edgekit_class_names"].split(",") == stats["class_names"], model
        assert metadata["edgekit_channel_names"].split(",") == stats["channel_names"]
        assert [float(v) for v in metadata["edgekit_channel_mean"].split(",")] == stats["mean"]
        assert [float(v) for v in metadata["edgekit_channel_std"].split(",")] == stats["std"]
        assert int(metadata["edgekit_window_length"]) == stats["window_length"]
        assert float(metadata["edgekit_sample_rate_hz"]) == stats["fs"]
        assert metadata["edgekit_normalization"] == stats["normalization"]["mode"]
        assert metadata["edgekit_row_layout"] == stats["row_layout"]
        assert metadata["edgekit_config_hash"] == load_run_config(exported_run).digest()
    text = CliRunner().invoke(cli, ["check", str(exported_run / model)]).output.splitlines()
    classes = next(line for line in text if line.startswith("classes "))
    assert classes.split() == ["classes", ",".join(stats["class_names"])]
    assert any(line.startswith("config hash ") for line in text)
    assert text.index("") < len(text) - 1  # the readiness report follows the metadata


def test_the_model_package_does_not_import_brevitas() -> None:
    """Brevitas takes seconds to import: the float twin, the model package and `edgekit check` go
    without it; a QAT model loads it."""
    code = (
        "import sys; from edgekit.models import Conv2dFSQNet, NetConfig\n"
        "Conv2dFSQNet(NetConfig(6, 4, 32, quant_preset=None)); print('brevitas' in sys.modules)\n"
        "Conv2dFSQNet(NetConfig(6, 4, 32)); print('brevitas' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    errors = result.stderr[-2000:]
    assert result.returncode == 0 and result.stdout.split() == ["False", "True"], errors


def test_export_help_lists_the_chosen_targets_options() -> None:
    every = CliRunner().invoke(cli, ["export", "--help"]).output
    onnx = CliRunner().invoke(cli, ["export", "--target", "onnx", "--help"]).output
    hailo = " ".join(CliRunner().invoke(cli, ["export", "--target=hailo", "--help"]).output.split())
    assert "--hw-arch" in every and "--int8-input" in every
    assert "--int8-input" in onnx and "--hw-arch" not in onnx
    assert "--hw-arch" in hailo and "(default hailo8)" in hailo and "--int8-input" not in hailo
    refused = CliRunner().invoke(cli, ["export", "RUN", "--target", "onnx", "--hw-arch", "hailo8"])
    assert refused.exit_code == 2 and "--hw-arch" in refused.output


def test_help_lists_every_stage() -> None:
    expected = {
        "data",
        "train",
        "calibrate",
        "export",
        "check",
        "parity",
        "verify",
        "pipeline",
        "device",
        "evaluate",
        "analyze",
        "sweep",
    }
    assert set(cli.commands) == expected
    result = CliRunner().invoke(cli, ["--help"])
    assert all(f"  {command} " in result.output for command in expected)


def test_data_inspect_bundled() -> None:
    result = CliRunner().invoke(cli, ["data", "inspect"])
    assert result.exit_code == 0, result.output
    assert (
        "bundled:basicmotions" in result.output and "80 x 6 channels x 100 samples" in result.output
    )
    assert "train 68 / val 0 / test 12" in result.output  # no val split by default
    assert "  badminton      17      0      3" in result.output  # per class and split
    assert "(6, 2, 50); rows interleaved" in result.output
    assert "normalise   global (data.normalize=auto; 4 % of train windows" in result.output


def test_data_inspect_unequal_lengths_prints_what_was_done(tmp_path: Path) -> None:
    lines = ["@data", "1,2,3:a", "1,2,3,4,5:b", "1,2:a", "4,5,6,7:b", "1,2,3,4:a", "3,4:b"]
    (tmp_path / "Toy_TRAIN.ts").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["data", "inspect", "--data", f"ts:{tmp_path}"])
    assert result.exit_code == 0, result.output
    assert "6 series of 2–5 samples tiled/cut to 6 (6 changed; data.length_policy=tile)" in (
        result.output
    )


def test_data_inspect_odd_length() -> None:
    result = CliRunner().invoke(cli, ["data", "inspect", "--data", "synthetic:n=80,length=127"])
    assert "(6, 2, 63)" in result.output and "odd T" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "inspect", "--data", "pamap2:/no/such/dir"], "does not exist"),
        (["data", "inspect", "--data", "ftp:x"], "unknown data source 'ftp'"),
        (
            [
                "data",
                "inspect",
                "--set",
                "data.nan_strategy=raise",
                "--data",
                "synthetic:n=80,nan_fraction=0.01",
            ],
            "NaN/Inf",
        ),
        (["data", "inspect", "--set", "data.seeed=1"], "did you mean 'seed'"),
        (["train", "--data", "synthetic:n=4", "--out", "/tmp/edgekit-never"], "too few"),
        (["export", "/tmp/edgekit-no-run", "--target", "onnx"], "does not exist"),
    ],
)
def test_user_errors_are_one_line_without_traceback(run, args: list[str], message: str) -> None:
    code, output = run(args)
    assert code != 0
    assert message in output and "Traceback" not in output
    assert len([line for line in output.splitlines() if line.startswith("error:")]) == 1


def test_verbose_shows_traceback(run) -> None:
    code, output = run(["--verbose", "data", "inspect", "--data", "ftp:x"])
    assert code != 0 and "Traceback" in output


def test_train_evaluate_parity_commands(tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "train",
            "--config",
            "tiny",
            "--out",
            str(out),
            "--set",
            "train.float_epochs=2",
            "--set",
            "train.qat_epochs=1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "test accuracy int8" in result.output
    result = runner.invoke(cli, ["evaluate", str(out)])
    assert result.exit_code == 0 and "test accuracy" in result.output
    result = runner.invoke(cli, ["evaluate", str(out), "--drop-channels", "gyro_*"])
    assert result.exit_code == 0, result.output
    assert "without gyro_x, gyro_y, gyro_z: test accuracy" in result.output
    result = runner.invoke(cli, ["evaluate", str(out), "--drop-channels", "gyro_q"])
    assert result.exit_code != 0 and "test accuracy" not in result.output
    assert "--drop-channels: 'gyro_q' matches no channel" in str(result.exception)
    assert runner.invoke(cli, ["export", str(out), "--target", "onnx"]).exit_code == 0
    result = runner.invoke(cli, ["parity", str(out), "--target", "onnx"])
    assert "onnx/qat_torch_vs_ort_int8" in result.output


def test_main_is_the_console_script_and_maps_errors_to_exit_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["edgekit"] == "edgekit.cli:main"
    monkeypatch.setattr(sys, "argv", ["edgekit", "data", "inspect", "--data", "nope:x"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("error: unknown data source 'nope'")


@pytest.mark.parametrize(
    "args",
    [
        ["parity", "RUN", "--limit", "-3"],
        ["export", "RUN", "--target", "onnx", "--reference-samples", "0"],
        ["export", "RUN", "--target", "onnx", "--reference-samples", "-5"],
        ["verify", "RUN", "--device", "emu://", "--limit", "-3"],
        ["verify", "RUN", "--device", "emu://", "--timeout", "0"],
        ["verify", "RUN", "--device", "emu://", "--retries", "-1"],
        ["verify", "RUN", "--device", "emu://", "--baud", "0"],
    ],
)
def test_out_of_range_options_are_refused_before_any_work(tmp_path: Path, args: list[str]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = CliRunner().invoke(cli, [str(run_dir) if a == "RUN" else a for a in args])
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output and "Traceback" not in result.output
    assert list(run_dir.iterdir()) == []  # nothing written
