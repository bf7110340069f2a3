#!/usr/bin/env python3
"""Parse -> optimize -> check on the emulator -> compile model_device.onnx into a HEF.

Needs the Hailo Dataflow Compiler. Run in this folder: python build_hef.py [--no-gpu] [--force]
Writes NET.har (parsed), NET_quantized.har (optimized; `hailo profiler`, re-compiles) and NET.hef.
"""

import argparse
from pathlib import Path

import numpy as np
from edgekit_package import load_package

HERE = Path(__file__).resolve().parent


def output_layer_for(layers: dict, end_nodes: list) -> str:
    """The HN output layer fed by the layer that holds the ONNX end node; a clear error otherwise."""
    ends = [
        name
        for name, layer in layers.items()
        if set(layer.get("original_names", [])) & set(end_nodes)
    ]
    if len(ends) != 1:
        raise SystemExit(
            f"error: {len(ends)} HN layers hold the ONNX end node {end_nodes} (want 1); "
            f"layers: {', '.join(layers)}. Re-export with edgekit, or report the DFC version"
        )
    outputs = [
        name
        for name, layer in layers.items()
        if layer.get("type") == "output_layer" and ends[0] in layer.get("input", [])
    ]
    if outputs != ["output_layer1"]:
        raise SystemExit(
            f"error: the end layer {ends[0]} feeds {outputs or 'no output layer'}, "
            "but model.alls sets 16 bits on output_layer1; edit model.alls to match"
        )
    return outputs[0]


def fsq_codes(z: np.ndarray, levels: list) -> np.ndarray:
    """FSQ code index per window, as edgekit computes it (tanh bound, round half to even)."""
    levels_array = np.asarray(levels, dtype=np.float64)
    half_width = (levels_array - 1) * (1 + 1e-3) / 2
    offset = np.where(levels_array % 2 == 0, 0.5, 0.0)
    shift = np.arctanh(offset / half_width)
    z = z.reshape(len(z), len(levels)).astype(np.float32)
    rounded = np.round(
        np.tanh(z + shift.astype(np.float32)) * half_width.astype(np.float32)
        - offset.astype(np.float32)
    )
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
    parser.add_argument(
        "--no-gpu", action="store_true", help="optimization_level 0 even if a GPU is found"
    )
    parser.add_argument(
        "--force", action="store_true", help="compile even if FSQ codes disagree on the emulator"
    )
    args = parser.parse_args()

    net = manifest["network"]["name"]
    start, end = manifest["parser"]["start_nodes"], manifest["parser"]["end_nodes"]
    runner = ClientRunner(hw_arch=manifest["targets"][0]["hw_arch"])
    runner.translate_onnx_model(
        str(HERE / manifest["paths"]["device_onnx"]),
        net,
        start_node_names=start,
        end_node_names=end,
        net_input_shapes=manifest["parser"]["net_input_shapes"],
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
    print(
        "SDK_QUANTIZED vs float device output: max |d| = "
        f"{float(np.abs(emulated - reference['device_out']).max()):.4g}, "
        f"FSQ code agreement {agreement:.4f} (need {needed})"
    )
    if agreement < needed and not args.force:
        raise SystemExit(
            "error: the quantized device part changes FSQ codes; see `hailo analyze-noise "
            f"{net}_quantized.har`, or compile anyway with --force"
        )
    (HERE / f"{net}.hef").write_bytes(runner.compile())
    print("wrote", HERE / f"{net}.hef")


if __name__ == "__main__":
    main()
