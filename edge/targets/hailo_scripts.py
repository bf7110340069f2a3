"""Files handed to a machine with the Hailo DFC / HailoRT: model script, build and run scripts.

They are generated, not run here: the DFC is proprietary and not installable from a registry.
"""

from __future__ import annotations

MODEL_SCRIPT = """\
# edgekit {version} for {net_name}, hw_arch={hw_arch}
# HN layer names (conv1, output_layer1, ...) exist only after parsing; build_hef.py resolves <end_node>.
model_optimization_flavor(optimization_level=2, compression_level=0)
model_optimization_config(calibration, batch_size=8, calibset_size={calibset_size})
# keep the pre-FSQ projection at 16 bit so the compiler's output quantization does not flip FSQ codes
quantization_param(<end_node>, precision_mode=a8_w8_a16)
# quantization_param(input_layer1, precision_mode=a16_w16)   # opt-in if readiness R15 shows input loss
performance_param(optimize_for_batch=1)
"""

BUILD_HEF = '''\
#!/usr/bin/env python3
"""Parse -> optimize -> compile model_device.onnx into a HEF (needs the Hailo Dataflow Compiler).

Run in this folder on a machine with the DFC: python build_hef.py [--no-gpu]
"""
import argparse
import json
from pathlib import Path

import numpy as np
from hailo_sdk_client import ClientRunner, InferenceContext

HERE = Path(__file__).resolve().parent
manifest = json.loads((HERE / "manifest.json").read_text())
parser = argparse.ArgumentParser()
parser.add_argument("--no-gpu", action="store_true", help="optimization_level 0 (no GPU on this machine)")
args = parser.parse_args()

net = manifest["network"]["name"]
hw_arch = manifest["targets"][0]["hw_arch"]
start, end = manifest["parser"]["start_nodes"], manifest["parser"]["end_nodes"]
runner = ClientRunner(hw_arch=hw_arch)
runner.translate_onnx_model(
    str(HERE / manifest["paths"]["device_onnx"]), net,
    start_node_names=start, end_node_names=end, net_input_shapes=manifest["parser"]["net_input_shapes"],
)
layers = runner.get_hn_dict()["layers"]
end_layer = next(name for name, layer in layers.items() if set(layer.get("original_names", [])) & set(end))
script = (HERE / manifest["paths"]["alls"]).read_text().replace("<end_node>", end_layer)
if args.no_gpu:
    script = script.replace("optimization_level=2", "optimization_level=0")
runner.load_model_script(script)
runner.optimize(np.load(HERE / manifest["quantization"]["calib_set"]))

reference = np.load(HERE / manifest["evaluation"]["reference_io"])
with runner.infer_context(InferenceContext.SDK_QUANTIZED) as context:
    emulated = runner.infer(context, reference["input_nhwc"])
emulated = np.asarray(emulated).reshape(reference["device_out"].shape)
print("SDK_QUANTIZED vs float device output: max |d| =", float(np.abs(emulated - reference["device_out"]).max()))
(HERE / f"{net}.hef").write_bytes(runner.compile())
print("wrote", HERE / f"{net}.hef")
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
manifest = json.loads((HERE / "manifest.json").read_text())
reference = np.load(HERE / manifest["evaluation"]["reference_io"])
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
