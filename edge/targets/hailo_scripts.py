"""Files handed to a machine with the Hailo DFC / HailoRT: model script, build and run scripts.

They are generated, not run here: the DFC is proprietary and not installable from a registry.
"""

from __future__ import annotations

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
    return MODEL_SCRIPT.format(version=version, net_name=net_name, hw_arch=hw_arch,
                               calibset_size=calibset_size, finetune=finetune)  # fmt: skip


PACKAGE_SCHEMA = "edgekit.hailo/1"
PACKAGE_LOADER = '''
def load_package(here: Path) -> tuple:
    """manifest.json and reference_io.npz, refused if written for another version of this script."""
    manifest = json.loads((here / "manifest.json").read_text())
    if manifest.get("schema") != "{package_schema}":
        raise SystemExit(f"error: manifest.json is {{manifest.get('schema')!r}}, this script reads {package_schema}; "
                         "export the package again with `edgekit export RUN --target hailo`")
    reference = np.load(here / manifest["evaluation"]["reference_io"])
    if int(reference["schema_version"]) != {reference_schema}:
        raise SystemExit(f"error: reference_io.npz has schema_version {{int(reference['schema_version'])}}, "
                         "this script reads {reference_schema}; export the package again")
    return manifest, reference
'''


def package_scripts(reference_schema: int) -> dict[str, str]:
    """build_hef.py and run_hailort.py, each checking the package's schemas before use."""
    loader = PACKAGE_LOADER.format(package_schema=PACKAGE_SCHEMA, reference_schema=reference_schema)
    return {"build_hef.py": BUILD_HEF.replace("# <package loader>\n", loader),
            "run_hailort.py": RUN_HAILORT.replace("# <package loader>\n", loader)}  # fmt: skip


# build_hef.py follows public DFC usage (shared/reference/hailo.md §2): translate_onnx_model with
# start/end nodes and net_input_shapes, save_har, load_model_script, optimize(calib NHWC), the
# SDK_QUANTIZED emulator through infer_context, compile() (Hailo-Application-Code-Examples
# pointpillars notebook; hailocs/hailo-whisper convert_whisper_encoder.py); HN names resolved from
# get_hn_dict()["layers"][...]["original_names"] as luxonis/modelconverter's Hailo exporter does.
BUILD_HEF = '''\
#!/usr/bin/env python3
"""Parse -> optimize -> check on the emulator -> compile model_device.onnx into a HEF.

Needs the Hailo Dataflow Compiler. Run in this folder: python build_hef.py [--no-gpu] [--force]
Writes NET.har (parsed), NET_quantized.har (optimized; `hailo profiler`, re-compiles) and NET.hef.
"""
import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# <package loader>


def output_layer_for(layers: dict, end_nodes: list) -> str:
    """The HN output layer fed by the layer that holds the ONNX end node; a clear error otherwise."""
    ends = [name for name, layer in layers.items() if set(layer.get("original_names", [])) & set(end_nodes)]
    if len(ends) != 1:
        raise SystemExit(f"error: {len(ends)} HN layers hold the ONNX end node {end_nodes} (want 1); "
                         f"layers: {', '.join(layers)}. Re-export with edgekit, or report the DFC version")
    outputs = [name for name, layer in layers.items()
               if layer.get("type") == "output_layer" and ends[0] in layer.get("input", [])]
    if outputs != ["output_layer1"]:
        raise SystemExit(f"error: the end layer {ends[0]} feeds {outputs or 'no output layer'}, "
                         "but model.alls sets 16 bits on output_layer1; edit model.alls to match")
    return outputs[0]


def fsq_codes(z: np.ndarray, levels: list) -> np.ndarray:
    """FSQ code index per window, as edgekit computes it (tanh bound, round half to even)."""
    levels_array = np.asarray(levels, dtype=np.float64)
    half_width = (levels_array - 1) * (1 + 1e-3) / 2
    offset = np.where(levels_array % 2 == 0, 0.5, 0.0)
    shift = np.arctanh(offset / half_width)
    z = z.reshape(len(z), len(levels)).astype(np.float32)
    rounded = np.round(np.tanh(z + shift.astype(np.float32)) * half_width.astype(np.float32) - offset.astype(np.float32))
    digits = rounded.astype(np.int64) + np.array([level // 2 for level in levels])
    return (digits * np.cumprod([1, *levels[:-1]])).sum(axis=1)


def script_for(alls: str, gpu: bool) -> str:
    """optimization_level 2 runs GPU-sized algorithms; without a GPU the DFC wants level 0."""
    return alls if gpu else alls.replace("optimization_level=2", "optimization_level=0")


def gpu_available() -> bool:
    try:
        import tensorflow as tf  # the DFC runs on TensorFlow
    except ImportError:
        return False
    return bool(tf.config.list_physical_devices("GPU"))


def main() -> None:
    from hailo_sdk_client import ClientRunner, InferenceContext

    manifest, reference = load_package(HERE)
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-gpu", action="store_true", help="optimization_level 0 even if a GPU is found")
    parser.add_argument("--force", action="store_true", help="compile even if FSQ codes disagree on the emulator")
    args = parser.parse_args()

    net = manifest["network"]["name"]
    start, end = manifest["parser"]["start_nodes"], manifest["parser"]["end_nodes"]
    runner = ClientRunner(hw_arch=manifest["targets"][0]["hw_arch"])
    runner.translate_onnx_model(
        str(HERE / manifest["paths"]["device_onnx"]), net,
        start_node_names=start, end_node_names=end, net_input_shapes=manifest["parser"]["net_input_shapes"],
    )
    runner.save_har(str(HERE / f"{net}.har"))
    output_layer_for(runner.get_hn_dict()["layers"], end)
    gpu = gpu_available() and not args.no_gpu
    print("GPU found: optimization_level 2" if gpu else "no GPU: optimization_level 0")
    runner.load_model_script(script_for((HERE / manifest["paths"]["alls"]).read_text(), gpu))
    runner.optimize(np.load(HERE / manifest["quantization"]["calib_set"]))
    runner.save_har(str(HERE / f"{net}_quantized.har"))

    with runner.infer_context(InferenceContext.SDK_QUANTIZED) as context:
        emulated = runner.infer(context, reference["input_nhwc"])
    emulated = np.asarray(emulated).reshape(reference["device_out"].shape)
    levels = manifest["postprocessing"]["fsq_levels"]
    agreement = float((fsq_codes(emulated, levels) == reference["codes"]).mean())
    needed = manifest["evaluation"]["tolerances"]["min_code_agreement"]
    print(f"SDK_QUANTIZED vs float device output: max |d| = {float(np.abs(emulated - reference['device_out']).max()):.4g}, "
          f"FSQ code agreement {agreement:.4f} (need {needed})")
    if agreement < needed and not args.force:
        raise SystemExit("error: the quantized device part changes FSQ codes; see `hailo analyze-noise "
                         f"{net}_quantized.har`, or compile anyway with --force")
    (HERE / f"{net}.hef").write_bytes(runner.compile())
    print("wrote", HERE / f"{net}.hef")


if __name__ == "__main__":
    main()
'''

RUN_HAILORT = '''\
#!/usr/bin/env python3
"""Run the compiled HEF with HailoRT and compare with reference_io.npz (FSQ + head on the host).

python run_hailort.py MODEL.hef
"""
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from hailo_platform import FormatType, VDevice

HERE = Path(__file__).resolve().parent
# <package loader>
manifest, reference = load_package(HERE)
host = ort.InferenceSession(str(HERE / manifest["paths"]["host_onnx"]))
hef = sys.argv[1] if len(sys.argv) > 1 else str(HERE / f"{manifest['network']['name']}.hef")

device_out = []
with VDevice() as vdevice:
    infer_model = vdevice.create_infer_model(hef)
    infer_model.input().set_format_type(FormatType.FLOAT32)
    infer_model.output().set_format_type(FormatType.FLOAT32)
    with infer_model.configure() as configured:
        for window in reference["input_nhwc"]:
            bindings = configured.create_bindings()
            bindings.input().set_buffer(np.ascontiguousarray(window))
            out = np.empty(infer_model.output().shape, dtype=np.float32)
            bindings.output().set_buffer(out)
            configured.run([bindings], 10000)
            device_out.append(out.reshape(reference["device_out"].shape[1:]))
device_out = np.stack(device_out)
logits = np.concatenate([host.run(None, {host.get_inputs()[0].name: z[None]})[0] for z in device_out])
agreement = float((logits.argmax(1) == reference["logits"].argmax(1)).mean())
print(f"device vs float reference: max |d| pre-FSQ {np.abs(device_out - reference['device_out']).max():.4g}, "
      f"top-1 agreement {agreement:.4f}, accuracy {float((logits.argmax(1) == reference['labels']).mean()):.4f}")
'''
