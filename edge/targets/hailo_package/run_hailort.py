#!/usr/bin/env python3
"""Run the compiled HEF with HailoRT and compare with reference_io.npz (FSQ + head on the host).

python run_hailort.py MODEL.hef
"""

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from edgekit_package import load_package
from hailo_platform import FormatType, VDevice

HERE = Path(__file__).resolve().parent


def main() -> None:
    manifest, reference = load_package(HERE)
    host = ort.InferenceSession(str(HERE / manifest["paths"]["host_onnx"]))
    hef = sys.argv[1] if len(sys.argv) > 1 else str(HERE / f"{manifest['network']['name']}.hef")

    windows: list[np.ndarray] = []
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
                windows.append(out.reshape(reference["device_out"].shape[1:]))
    device_out = np.stack(windows)
    logits = np.concatenate(
        [host.run(None, {host.get_inputs()[0].name: z[None]})[0] for z in device_out]
    )
    agreement = float((logits.argmax(1) == reference["logits"].argmax(1)).mean())
    print(
        f"device vs float reference: max |d| pre-FSQ {np.abs(device_out - reference['device_out']).max():.4g}, "
        f"top-1 agreement {agreement:.4f}, accuracy {float((logits.argmax(1) == reference['labels']).mean()):.4f}"
    )


if __name__ == "__main__":
    main()
