"""One distribution, one namespace: every package folder is listed, and a built wheel imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_package_folder_is_listed() -> None:
    settings = PYPROJECT["tool"]["setuptools"]
    mapping, listed = settings["package-dir"], set(settings["packages"])
    expected = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            expected.add(".".join((package, *relative)))
    assert expected <= listed, (
        f"folders missing from pyproject packages: {sorted(expected - listed)}"
    )
    assert all(name.startswith("edgekit") for name in listed)


def test_built_wheel_has_one_namespace_and_imports(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a clean copy: setuptools' build/ folder can carry stale modules
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "runs", "build", "*.egg-info", "__pycache__"
        ),
    )
    subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta as b; b.build_wheel({str(tmp_path)!r})"],
        cwd=source, check=True, capture_output=True,
    )  # fmt: skip
    wheel = next(tmp_path.glob("edgekit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("edgekit-")}
    assert top_level == {"edgekit"}, top_level
    assert "edgekit/configs/default.yaml" in names
    assert "edgekit/firmware_bridge/protocol.py" in names
    # the Hailo target copies its scripts out of the installed package
    for script in ("build_hef.py", "run_hailort.py", "edgekit_package.py"):
        assert f"edgekit/targets/hailo_package/{script}" in names
    # the MCU target copies these out of the installed package
    source_c = {p.name for p in (ROOT / "firmware_bridge" / "c").iterdir()}
    assert {
        n.split("/")[-1] for n in names if n.startswith("edgekit/firmware_bridge/c/")
    } == source_c
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import edgekit.models, edgekit.quantize.presets, edgekit.config;"
        "assert edgekit.models.__file__.startswith(sys.argv[1]); edgekit.config.load_config('tiny')"
    )
    subprocess.run([sys.executable, "-c", code, str(site)], check=True, cwd=tmp_path)


def test_the_python_api_names_resolve_without_importing_torch_first() -> None:
    import subprocess
    import sys

    code = (
        "import sys, edgekit; print('torch' in sys.modules)\n"
        "missing = [n for n in edgekit.API if not callable(getattr(edgekit, n))]; print(missing)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:2] == ["False", "[]"]


def test_every_stage_of_the_python_api_takes_the_run_first() -> None:
    import inspect

    import edgekit

    stages = [name for name in edgekit.API if name.startswith("run_") and name != "run_sweep"]
    assert len(stages) == 7
    # a sweep is a folder of many runs: it comes first in the same way
    sweep = inspect.signature(edgekit.run_sweep).parameters
    assert list(sweep)[:3] == ["sweep", "base", "space"]
    first = {
        name: next(iter(inspect.signature(getattr(edgekit, name)).parameters)) for name in stages
    }
    assert first == dict.fromkeys(stages, "run")
