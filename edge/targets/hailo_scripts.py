"""Files handed to a machine with the Hailo DFC / HailoRT: model script, build and run scripts.

They are generated, not run here: the DFC is proprietary and not installable from a registry.
"""

from __future__ import annotations

from importlib import resources

FINETUNE_MIN_WINDOWS = 1024  # Hailo: optimize "on a GPU machine with ... at least 1024" samples

# Every line is a DFC model-script command in the form public Hailo model scripts use:
# - 16-bit output: `quantization_param(output_layer1, precision_mode=a16_w16)` is the DFC user guide's
#   "configure 16-bit output" (also in 48 Hailo Model Zoo v2.18 .alls files and Ultralytics' Hailo
#   exporter); the only output of model_device.onnx is the pre-FSQ projection, so FSQ reads 16 bits.
# - small calibration sets: MZ v2.18 cfg/alls/generic/efficientnet_lite0.alls (calibset_size=64)
#   disables finetune and keeps bias_correction; finetune wants >= 1024 samples (MZ docs/OPTIMIZATION.rst).
# - optimization_level=2 needs a GPU; build_hef.py lowers it to 0 on a machine without one, as
#   luxonis/modelconverter's Hailo exporter does.
MODEL_SCRIPT = """\
# edgekit {version} for {net_name}, hw_arch={hw_arch}; use as is: hailo optimize NET.har --model-script model.alls
model_optimization_flavor(optimization_level=2, compression_level=0)
model_optimization_config(calibration, batch_size=8, calibset_size={calibset_size})
post_quantization_optimization(bias_correction, policy=enabled)
post_quantization_optimization(finetune, policy={finetune})
quantization_param(output_layer1, precision_mode=a16_w16)
performance_param(optimize_for_batch=1)
"""


def model_script(version: str, net_name: str, hw_arch: str, calibset_size: int) -> str:
    """The .alls for this package; fine-tuning only with a calibration set big enough for it."""
    finetune = "enabled" if calibset_size >= FINETUNE_MIN_WINDOWS else "disabled"
    return MODEL_SCRIPT.format(
        version=version,
        net_name=net_name,
        hw_arch=hw_arch,
        calibset_size=calibset_size,
        finetune=finetune,
    )


PACKAGE_SCHEMA = "edgekit.hailo/1"  # the manifest's "schema"; edgekit_package.py checks it
# Real Python files (linted and type-checked with the project), copied into every package: the
# scripts import the shared package check from edgekit_package.py beside them.
PACKAGE_SCRIPTS = ("build_hef.py", "run_hailort.py", "edgekit_package.py")


def package_scripts() -> dict[str, str]:
    """The scripts handed to the DFC / HailoRT machine, by file name."""
    folder = resources.files("edgekit.targets") / "hailo_package"
    return {name: (folder / name).read_text(encoding="utf-8") for name in PACKAGE_SCRIPTS}
