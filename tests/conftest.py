"""Session fixtures: a tiny config, a trained tiny run, and its exports, built once in seconds."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
from hypothesis import settings

warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")

# The suite is a gate: the same examples every run (`--hypothesis-profile=explore` draws new ones).
settings.register_profile("default", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile("default")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device", default=None, help="URL of a real device for tests marked `hardware`"
    )
    parser.addoption("--run", default=None, help="run directory whose model the real device holds")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from edgekit.firmware_bridge.toolchain import APT_INSTALL, ARM_TOOLS, missing_tools

    missing = missing_tools(ARM_TOOLS)  # CI installs them (.ci/run), so these tests run there
    skip_tools = pytest.mark.skip(reason=f"{', '.join(missing)} not installed: {APT_INSTALL}")
    no_avx2_cpu = avx2_cpu_missing()
    skip_hardware = pytest.mark.skip(reason="needs real hardware: pass --device URL")
    for item in items:
        if "hardware" in item.keywords and not config.getoption("--device"):
            item.add_marker(skip_hardware)
        if "mcu_tools" in item.keywords and missing:
            item.add_marker(skip_tools)
        if "avx2_cpu" in item.keywords and no_avx2_cpu:
            item.add_marker(pytest.mark.skip(reason=no_avx2_cpu))


def avx2_cpu_missing() -> str:
    """Why onnxruntime cannot run on an emulated AVX2 CPU here ("" when it can): qemu-user runs this
    interpreter only where it is an x86-64 program."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        return f"an emulated x86 AVX2 CPU needs an x86-64 host, this is {platform.machine()}"
    if shutil.which("qemu-x86_64") is None:
        return "qemu-x86_64 not installed: apt-get install -y qemu-user"
    return ""


@pytest.fixture(scope="session")
def tiny_config():
    from edgekit.config import load_config

    return load_config("tiny", ["train.threads=2"])


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, tiny_config) -> Path:
    from edgekit.train.loop import run_training

    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    run_training(run_dir, tiny_config, show_progress=False)
    return run_dir


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`edgekit pipeline --config tiny` run once per session: the folder and what it printed."""
    from click.testing import CliRunner
    from edgekit.cli import cli

    run_dir = tmp_path_factory.mktemp("pipeline") / "tiny"
    args = ["pipeline", "--config", "tiny", "--set", "train.threads=2", "--out", str(run_dir)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return run_dir, result.output


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory: pytest.TempPathFactory, pipeline_run: tuple[Path, str]) -> Path:
    """A copy of the pipeline's run (trained, calibrated, exported for onnx and hailo, checked),
    exported for every target and with the int8-input ONNX model too."""
    from edgekit.targets import run_export

    run_dir = tmp_path_factory.mktemp("exported") / "tiny"
    shutil.copytree(pipeline_run[0], run_dir)
    run_export(run_dir, "onnx", int8_input=True)
    run_export(run_dir, "mcu")
    return run_dir


@pytest.fixture
def run_copy(tmp_path: Path, exported_run: Path) -> Path:
    """A private copy of the exported run for tests that modify it."""
    target = tmp_path / "run"
    shutil.copytree(exported_run, target)
    return target


def folder_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path: "the run is byte-identical" checks."""
    from edgekit.rundir.artifacts import sha256_file

    return {
        str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="session")
def digest():
    return folder_digest
