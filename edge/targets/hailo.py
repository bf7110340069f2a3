"""`--target hailo`: float ONNX cut before FSQ for the Hailo DFC, plus everything the compiler needs.

Hailo wants float ONNX (it quantizes itself from a calibration set) at opset 13 for DFC 3.x, and
cannot run Round, so `model_device.onnx` ends at the pre-FSQ projection and FSQ + head run on the
host (`model_host.onnx`). The float graph carries the QAT model's int8 weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from edgekit import __version__
from edgekit.calibrate.representative import load_calibration_set, select_representative, to_nhwc
from edgekit.compare import PairReport, Tolerance, compare
from edgekit.data.prepare import from_hailo_layout, normalization_mode, row_layout
from edgekit.errors import ExportError
from edgekit.export import (
    REFERENCE_SCHEMA_VERSION,
    Part,
    deployment_metadata,
    export_torch,
    set_metadata,
    simplify,
)
from edgekit.models import Conv2dFSQNet
from edgekit.models.transforms import estimate_device_damage, float_with_qat_weights
from edgekit.onnx_io import OnnxRunner, load_onnx, save_onnx
from edgekit.quantize.activations import activation_ranges
from edgekit.quantize.fsq_grid import fsq_indices
from edgekit.rundir import layout
from edgekit.rundir.artifacts import sha256_file, write_json, write_npy, write_npz, write_text
from edgekit.rundir.run import Run
from edgekit.targets import hailo_readiness as readiness
from edgekit.targets.base import Target
from edgekit.targets.hailo_scripts import PACKAGE_SCHEMA, model_script, package_scripts

HW_ARCHS = {"hailo8": ("3.x", "4.x"), "hailo8l": ("3.x", "4.x"), "hailo10h": ("5.x", "5.x")}
NET_NAME = "imu_fsq_cls"
INPUT_DITHER_FILE = "input_dither_nhwc.npy"
MIN_EMULATOR_CODE_AGREEMENT = 0.99  # build_hef.py stops before compiling below this
# host(device(x)) against the full float graph: float32 reassociation only (readiness R13, parity,
# and the package's manifest all hold this one value)
SPLIT_TOLERANCE = Tolerance(atol=1e-5, rtol=0.0)


def dithered(qat: Conv2dFSQNet, X: np.ndarray) -> np.ndarray:
    """The device part's input: the windows plus the QAT model's input dither, if it has one.

    HailoRT quantizes the float input to 8 bits on the host, as the QAT input quantizer did; the
    model learned to read a flat signal's level from the dither before that rounding, so the host
    adds the same fixed pattern (float32, as the int8 graph's Add) before handing windows over.
    """
    if qat.input_dither is None:
        return X
    return (X + qat.input_dither.numpy()).astype(np.float32)


def export(run: Run, target: Target, options: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """`--target hailo`: float ONNX cut before FSQ, model script, calibration set, scripts, readiness."""
    hw_arch = options["hw_arch"]  # one of HW_ARCHS: the config's check
    qat = run.qat_model()
    model = float_with_qat_weights(qat)
    channels, _, width = run.data.input_shape
    dims = len(model.config.fsq_levels)
    opset = options["opset"]
    x0, z0 = torch.zeros(1, channels, 2, width), torch.zeros(1, dims, 1, 1)
    meta = {
        **deployment_metadata(run),
        "edgekit_fsq_levels": ",".join(map(str, model.config.fsq_levels)),
        "edgekit_hw_arch": hw_arch,
    }
    graphs = {
        "model_float.onnx": export_torch(
            model, x0, out_dir / "model_float.onnx", opset, ["logits"], False
        ),
        "model_device.onnx": export_torch(
            Part(model, "device"), x0, out_dir / "model_device.onnx", opset, ["pre_fsq"], False
        ),
        "model_host.onnx": export_torch(
            Part(model, "host"),
            z0,
            out_dir / "model_host.onnx",
            opset,
            ["logits"],
            False,
            "pre_fsq",
        ),
    }
    for name, graph in graphs.items():
        simplified = simplify(graph, keep_qdq=False)
        set_metadata(simplified, {**meta, "edgekit_part": name.split("_")[1].split(".")[0]})
        save_onnx(simplified, out_dir / name)
    device_graph = load_onnx(out_dir / "model_device.onnx")
    end_node = next(n for n in device_graph.graph.node if "pre_fsq" in n.output)

    if (run.path / layout.CALIBRATION_SET).is_file():
        run.verified(layout.CALIBRATION_SET)
    saved = load_calibration_set(run.path)
    if saved is not None:
        X_calib = saved[0]
    else:  # not calibrated: the same selection and size as `edgekit calibrate` would make
        X_train, y_train = run.data.arrays["train"]
        size = run.config.calibrate.num_windows
        X_calib = X_train[select_representative(X_train, y_train, size, run.config.data.seed)]
    X_calib = dithered(qat, X_calib)  # the DFC sets the input range from what the device is fed
    calib_nhwc = to_nhwc(X_calib)
    write_npy(out_dir / "calib_nhwc.npy", calib_nhwc)

    undithered_test, y_test = run.data.arrays["test"]
    X_test = dithered(qat, undithered_test)
    X_ref = X_test[: options["reference_samples"]]
    full = OnnxRunner(out_dir / "model_float.onnx").run(X_ref)["logits"]
    device_out = OnnxRunner(out_dir / "model_device.onnx").run(X_ref)["pre_fsq"]
    split = OnnxRunner(out_dir / "model_host.onnx").run(device_out)["logits"]
    stats = run.data.stats
    per_window = normalization_mode(stats) == "window"
    mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
    # (N, C, 2, T/2) -> (N, C, T) raw windows the preprocessing (dither last) maps back onto X_ref;
    # a window normalised by its own statistics is its own such window (z-scoring is idempotent)
    raw = from_hailo_layout(undithered_test[: len(X_ref)], row_layout(stats))
    if not per_window:
        raw = raw * std[None, :, None] + mean[None, :, None]
    write_npz(
        out_dir / "reference_io.npz",
        schema_version=np.array(REFERENCE_SCHEMA_VERSION),
        input_raw=raw.astype(np.float32),
        input_nchw=X_ref,
        input_nhwc=to_nhwc(X_ref),
        device_out=device_out,
        codes=fsq_indices(device_out, model.config.fsq_levels),
        logits=full,
        labels=y_test[: len(X_ref)],
    )

    estimate_16 = estimate_device_damage(model, X_calib, X_test, 16)
    estimate_8 = estimate_device_damage(model, X_calib, X_test, 8)
    rules = [
        *readiness.graph_rules(device_graph),
        readiness.split_rule(
            compare(
                "hailo/split_at_export", full, split, SPLIT_TOLERANCE, ("full", "split")
            ).max_abs,
            [end_node.name],
            [end_node.op_type],
            tolerance=SPLIT_TOLERANCE.atol,
        ),
        readiness.calibration_rule(calib_nhwc, [1, channels, 2, width]),
        readiness.estimate_rule({**estimate_16, "end_node_8bit": estimate_8}),
    ]
    report = readiness.summarise(rules, "model_device.onnx")
    write_json(out_dir / "readiness_report.json", report)
    if not report["ready"]:
        raise ExportError(
            f"model is not Hailo-ready: rules {', '.join(report['errors'])} failed; fix the graph or use --target onnx"
        )
    dither_file = None if qat.input_dither is None else INPUT_DITHER_FILE
    if qat.input_dither is not None:
        write_npy(out_dir / INPUT_DITHER_FILE, to_nhwc(qat.input_dither.numpy())[0])
    write_text(
        out_dir / "model.alls", model_script(__version__, NET_NAME, hw_arch, len(calib_nhwc))
    )
    for name, script in package_scripts().items():
        write_text(out_dir / name, script)
    dfc, hailort = HW_ARCHS[hw_arch]
    manifest = {
        "schema": PACKAGE_SCHEMA,
        "edgekit_version": __version__,
        "network": {"name": NET_NAME, "task": "classification", "classes": run.data.class_names},
        "targets": [{"hw_arch": hw_arch, "dfc": dfc, "hailort": hailort}],
        "paths": {
            "device_onnx": "model_device.onnx",
            "host_onnx": "model_host.onnx",
            "alls": "model.alls",
            "float_onnx": "model_float.onnx",
        },
        "onnx": {
            "opset": opset,
            "simplified": True,
            "sha256": {n: sha256_file(out_dir / n) for n in graphs},
        },
        "parser": {
            "start_nodes": ["input"],
            "end_nodes": [end_node.name],
            "net_input_shapes": {"input": [1, channels, 2, width]},
        },
        "io": {
            "raw_input": {
                "layout": "NCT",
                "shape": [1, channels, stats["window_length"]],
                "dtype": "float32",
            },
            "device_input": {
                "onnx_layout": "NCHW",
                "hn_layout": "NHWC",
                "hn_shape": [1, 2, width, channels],
                "hailort_format": "FLOAT32",
            },
            "device_outputs": [
                {"onnx_name": "pre_fsq", "onnx_shape": [1, dims, 1, 1], "hailort_format": "FLOAT32"}
            ],
        },
        "preprocessing": {
            "steps": [
                "standardize(each window by its own mean, std per channel)"
                if normalization_mode(stats) == "window"
                else "standardize(mean, std per channel)",
                "drop last sample if T is odd",
                f"reshape NCT -> NC(2)(T/2): {stats['layout']}",
                "transpose NCHW -> NHWC",
                *(
                    [f"add {dither_file} (the fixed input dither the model trained with)"]
                    if dither_file
                    else []
                ),
            ],
            "normalization": normalization_mode(stats),
            "row_layout": row_layout(stats),
            "mean": stats["mean"],
            "std": stats["std"],
            "dropped_last_sample": stats["dropped_last_sample"],
            "channels": stats["channel_names"],
            # unequal-length sources: how recordings were brought to window_length (pad/truncate/resample)
            "length_policy": stats.get("length_policy"),
            "normalize_in_net": False,
            # float32 (2, T/2, C), added to each NHWC window before HailoRT quantizes it; None: none
            "input_dither": dither_file,
        },
        "quantization": {
            "calib_set": "calib_nhwc.npy",
            "layout": "NHWC",
            "n": len(calib_nhwc),
            "dtype": "float32",
            "source": "train split, class-stratified",
            "sha256": sha256_file(out_dir / "calib_nhwc.npy"),
            "stats": {
                "min": calib_nhwc.min(axis=(0, 1, 2)).tolist(),
                "max": calib_nhwc.max(axis=(0, 1, 2)).tolist(),
            },
            "brevitas_ranges": {k: v["range"] for k, v in activation_ranges(qat).items()},
        },
        "postprocessing": {
            "runs_on": "host",
            "steps": [f"fsq(levels={list(model.config.fsq_levels)})", "head", "argmax"],
            "fsq_levels": list(model.config.fsq_levels),
            "impl": "model_host.onnx",
        },
        "evaluation": {
            "reference_io": "reference_io.npz",
            "tolerances": {
                "split_max_abs": SPLIT_TOLERANCE.atol,
                "min_code_agreement": MIN_EMULATOR_CODE_AGREEMENT,
            },
            "float_accuracy": float((full.argmax(1) == y_test[: len(X_ref)]).mean()),
            "fakequant_estimate": estimate_16,
        },
        "readiness": "readiness_report.json",
    }
    write_json(out_dir / "manifest.json", manifest)
    return {
        "target": "hailo",
        "hw_arch": hw_arch,
        "ready": True,
        "warnings": report["warnings"],
        "estimate": estimate_16,
    }


def parity(run: Run, target: Target, limit: int = 0) -> list[PairReport]:
    """The hailo target's pairs: the split against the full graph, PyTorch against ORT, QAT against float."""
    from edgekit.evaluate import predict

    tol = target.tolerances
    X = run.data.arrays["test"][0]
    X = X[:limit] if limit else X
    qat = run.qat_model()
    model = float_with_qat_weights(qat)
    levels = model.config.fsq_levels
    qat_logits, qat_codes = predict(qat, X)  # adds its own dither
    X = dithered(qat, X)  # what the device part is fed
    torch_logits, torch_codes = predict(model, X)
    reports = []
    for folder in sorted(
        p
        for p in (run.path / layout.export_folder("hailo")).iterdir()
        if (p / "manifest.json").is_file()
    ):
        full = OnnxRunner(folder / "model_float.onnx").run(X)["logits"]
        device_out = OnnxRunner(folder / "model_device.onnx").run(X)["pre_fsq"]
        split = OnnxRunner(folder / "model_host.onnx").run(device_out)["logits"]
        codes = fsq_indices(device_out, levels)
        arch = folder.name
        reports += [
            compare(
                f"hailo/{arch}/split_vs_full",
                full,
                split,
                tol["split_vs_full"],
                ("full-float", "host(device)"),
            ),
            compare(
                f"hailo/{arch}/torch_vs_ort_float",
                torch_logits,
                full,
                tol["torch_vs_ort_float"],
                ("pytorch-float", "ort-float"),
                None,
                torch_codes,
                codes,
            ),
            compare(
                f"hailo/{arch}/qat_int8_vs_float_graph",
                qat_logits,
                full,
                tol["qat_vs_float_graph"],
                ("pytorch-qat", "hailo-float"),
                None,
                qat_codes,
                codes,
            ),
        ]
    return reports


TOLERANCES = {
    "split_vs_full": SPLIT_TOLERANCE,
    "torch_vs_ort_float": Tolerance(atol=1e-4, rtol=1e-4, min_code_agreement=0.99),
    # The float graph drops QAT's activation quantizers (the DFC re-quantizes): only decisions must hold.
    "qat_vs_float_graph": Tolerance(
        atol=float("inf"), min_top1_agreement=0.95, min_code_agreement=0.0
    ),
}
