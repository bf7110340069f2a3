"""The Hailo DFC package: a model script usable on its own, and build_hef.py's checks (run here with
stand-ins for the DFC's HN dictionary: the DFC itself is not installable from a registry)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from edgekit.config import HAILO_ARCHS
from edgekit.targets.hailo import HW_ARCHS
from edgekit.targets.hailo_scripts import model_script


@pytest.fixture(scope="module")
def package(exported_run: Path) -> Path:
    return exported_run / "export/hailo/hailo8"


@pytest.fixture(scope="module")
def build_hef(package: Path) -> ModuleType:
    """The package's build_hef.py as a module, run from its folder as on the DFC machine (it finds
    edgekit_package.py beside it); it imports the DFC only inside main()."""
    import sys

    sys.path.insert(0, str(package))
    try:
        spec = importlib.util.spec_from_file_location("build_hef", package / "build_hef.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(package))
        sys.modules.pop("edgekit_package", None)
    return module


def test_model_script_is_complete_and_sized_to_the_calibration_set(package: Path) -> None:
    manifest = json.loads((package / "manifest.json").read_text())
    script = (package / "model.alls").read_text()
    lines = [line for line in script.splitlines() if line and not line.startswith("#")]
    assert "<" not in script and ">" not in script  # no placeholder left to fill
    assert "quantization_param(output_layer1, precision_mode=a16_w16)" in lines
    assert "post_quantization_optimization(bias_correction, policy=enabled)" in lines
    assert (
        f"model_optimization_config(calibration, batch_size=8, calibset_size={manifest['quantization']['n']})"
        in lines
    )
    small = manifest["quantization"]["n"] < 1024
    assert (
        f"post_quantization_optimization(finetune, policy={'disabled' if small else 'enabled'})"
        in lines
    )
    big = model_script("0", "net", "hailo8", 2048)
    assert "post_quantization_optimization(finetune, policy=enabled)" in big
    assert "finetune, policy=disabled" in model_script("0", "net", "hailo8", 1023)


HN = {
    "input_layer1": {"type": "input_layer", "original_names": ["input"]},
    "conv1": {
        "type": "conv",
        "original_names": ["/encoder/encoder.0/Conv"],
        "input": ["input_layer1"],
    },
    "conv4": {"type": "conv", "original_names": ["/project/Conv"], "input": ["conv1"]},
    "output_layer1": {"type": "output_layer", "input": ["conv4"]},
}


def test_the_output_layer_is_found_from_the_end_node(build_hef: ModuleType) -> None:
    assert build_hef.output_layer_for(HN, ["/project/Conv"]) == "output_layer1"
    with pytest.raises(SystemExit, match=r"0 HN layers hold the ONNX end node \['/nope'\]"):
        build_hef.output_layer_for(HN, ["/nope"])
    renamed = {**HN, "output_layer2": HN["output_layer1"]}
    del renamed["output_layer1"]
    with pytest.raises(SystemExit, match="feeds \\['output_layer2'\\]"):
        build_hef.output_layer_for(renamed, ["/project/Conv"])


def test_emulator_codes_are_computed_like_edgekits(build_hef: ModuleType, package: Path) -> None:
    reference = np.load(package / "reference_io.npz")
    levels = json.loads((package / "manifest.json").read_text())["postprocessing"]["fsq_levels"]
    codes = build_hef.fsq_codes(reference["device_out"], levels)
    assert np.array_equal(codes, reference["codes"]) and len(np.unique(codes)) > 1
    nudged = build_hef.fsq_codes(reference["device_out"] + 0.5, levels)
    assert not np.array_equal(nudged, reference["codes"])


def test_optimization_level_follows_the_gpu(build_hef: ModuleType, package: Path) -> None:
    script = (package / "model.alls").read_text()
    assert "optimization_level=2" in build_hef.script_for(script, gpu=True)
    assert "optimization_level=0" in build_hef.script_for(script, gpu=False)
    assert isinstance(build_hef.gpu_available(), bool)  # no TensorFlow here: False, no error


def test_the_scripts_refuse_a_package_of_another_schema(
    build_hef: ModuleType, package: Path, tmp_path: Path
) -> None:
    import shutil

    manifest, reference = build_hef.load_package(package)
    assert manifest["schema"] == "edgekit.hailo/1" and int(reference["schema_version"]) == 1
    copy = tmp_path / "pkg"
    shutil.copytree(package, copy)
    (copy / "manifest.json").write_text(json.dumps({**manifest, "schema": "edgekit.hailo/9"}))
    with pytest.raises(
        SystemExit, match="manifest.json is 'edgekit.hailo/9', this script reads edgekit.hailo/1"
    ):
        build_hef.load_package(copy)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    np.savez(copy / "reference_io.npz", **{**dict(reference), "schema_version": np.array(7)})
    with pytest.raises(SystemExit, match="reference_io.npz has schema_version 7"):
        build_hef.load_package(copy)
    for script in ("build_hef.py", "run_hailort.py"):
        assert "from edgekit_package import load_package" in (package / script).read_text()


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("manifest.json", None, "manifest.json cannot be read"),
        ("manifest.json", b'{"schema": "edgekit.ha', "manifest.json cannot be read"),
        ("manifest.json", b"[1]", "manifest.json is None, this script reads edgekit.hailo/1"),
        ("reference_io.npz", None, "reference_io.npz cannot be read"),
        ("reference_io.npz", b"PK\x03\x04 cut short", "reference_io.npz cannot be read"),
        ("reference_io.npz", b"not an archive", "reference_io.npz cannot be read"),
    ],
)
def test_a_damaged_package_is_one_line_on_the_dfc_machine(
    build_hef: ModuleType,
    package: Path,
    tmp_path: Path,
    name: str,
    content: bytes | None,
    problem: str,
) -> None:
    import shutil

    copy = tmp_path / "pkg"
    shutil.copytree(package, copy)
    if content is None:
        (copy / name).unlink()
    else:
        (copy / name).write_bytes(content)
    with pytest.raises(SystemExit, match=problem) as refused:
        build_hef.load_package(copy)
    assert str(refused.value).startswith("error: ") and "\n" not in str(refused.value)


def test_the_shipped_checks_read_the_schemas_edgekit_writes(build_hef: ModuleType) -> None:
    from edgekit.export import REFERENCE_SCHEMA_VERSION
    from edgekit.targets.hailo_scripts import PACKAGE_SCHEMA

    loader = build_hef.load_package.__globals__
    assert (loader["PACKAGE_SCHEMA"], loader["REFERENCE_SCHEMA"]) == (
        PACKAGE_SCHEMA,
        REFERENCE_SCHEMA_VERSION,
    )


def test_every_device_the_config_accepts_has_its_compiler_versions() -> None:
    # the config refuses any other export.hw_arch before training; the package names these versions
    assert tuple(HW_ARCHS) == HAILO_ARCHS
