"""`edgekit verify`: stream test windows to a device and compare with the CPU reference and labels.

The CPU reference is onnxruntime on the same int8 export the device claims to run (checked by hash).
Ctrl-C or a lost device still writes the report, marked partial, with every sample done so far.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import numpy as np
from edgekit.compare import Tolerance, compare
from edgekit.config import VerifyConfig
from edgekit.errors import DeviceError, GateError
from edgekit.firmware_bridge.contract import (
    descriptor_mismatch,
    model_descriptors,
    model_file,
    model_hash,
)
from edgekit.firmware_bridge.link import HostLink
from edgekit.firmware_bridge.protocol import DTYPE_NUMPY
from edgekit.progress import Progress
from edgekit.quantize.overflow import read_cpu_flags, saturation_bounds, saturation_diagnosis
from edgekit.rundir import layout
from edgekit.rundir.artifacts import Manifest, write_json, write_text
from edgekit.rundir.transaction import transactional

if TYPE_CHECKING:
    from edgekit.rundir.run import Run
from edgekit.verify_report import latency, link_efficiency, render_junit, render_markdown

INTEGER_EXACT_RUNTIME = "edgekit-c"  # HELLO_ACK runtime of the generated C firmware
QEMU_GATES: dict[str, Any] = {
    "min_agreement": 1.0,
    "max_lsb": 0,
}  # `qemu://`: the C matches bit for bit


@dataclass(frozen=True)
class VerifyOptions:
    """One verify session: the run's `verify:` config (VerifyConfig's fields, its defaults) plus what
    only a session sets (the device, inputs, the reset and accuracy flags, progress)."""

    device: str
    baud: int = VerifyConfig.baud
    timeout: float = VerifyConfig.timeout
    retries: int = VerifyConfig.retries
    limit: int = VerifyConfig.limit
    max_resets: int = VerifyConfig.max_resets
    no_reset: bool = False
    inputs: str | None = None
    min_agreement: float = VerifyConfig.min_agreement
    max_lsb: int = VerifyConfig.max_lsb
    min_accuracy: float = 0.0
    switch_baud: int = 0  # after HELLO, move to this baud with SET_BAUD (if the device allows it)
    show_progress: bool = True

    @classmethod
    def from_config(cls, device: str, config: VerifyConfig, **session: Any) -> VerifyOptions:
        """The run's config, `qemu://`'s bit-exact gates over it, then the session's values that
        are set (None = keep)."""
        values = {f.name: getattr(config, f.name) for f in fields(config)}
        if device.startswith("qemu://"):
            values.update(QEMU_GATES)
        values.update({key: value for key, value in session.items() if value is not None})
        return cls(device=device, **values)


def device_url(url: str, run_dir: Path) -> str:
    """`emu://` and `qemu://` without a run emulate the run being verified."""
    if url.startswith(("emu://", "qemu://")) and "run=" not in url:
        separator = "&" if "?" in url else "?"
        return f"{url}{separator}{urlencode({'run': str(run_dir)})}"
    return url


def load_inputs(run: Any, inputs: str | None, limit: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The test split, or the user's `--inputs` .npz checked against what the model takes."""
    if inputs is None:
        X, y = run.data.arrays["test"]
    else:
        X, y = read_inputs(Path(inputs), run.data)
    if limit:
        X, y = X[:limit], None if y is None else y[:limit]
    return X, y


def read_inputs(path: Path, data: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """`inputs` (N,C,2,T/2) in model layout, or raw (N,C,T) windows given the deployment
    preprocessing; optional integer `labels` (N,)."""
    import zipfile

    from edgekit.data.prepare import preprocess
    from edgekit.errors import DataError

    shape = data.input_shape
    raw = (shape[0], int(data.stats.get("window_length", 2 * shape[2])))
    expected = f"'inputs' of shape (N,{','.join(map(str, shape))}) or raw (N,{raw[0]},{raw[1]})"
    if not path.is_file():
        raise DataError(f"--inputs {path} does not exist; give an .npz with {expected}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        archive = None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(
            f"--inputs {path} is not an .npz archive; save it with np.savez(path, inputs=..., labels=...)"
        )
    with archive:
        if "inputs" not in archive.files:
            raise DataError(
                f"--inputs {path} has no 'inputs' array (found: "
                f"{', '.join(archive.files) or 'none'}); it needs {expected}"
            )
        try:
            X = archive["inputs"]
            y = archive["labels"] if "labels" in archive.files else None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise DataError(f"--inputs {path} is damaged; save it again") from err
    if X.dtype.kind not in "biuf" or X.shape[1:] not in (shape, raw) or not len(X):
        raise DataError(
            f"--inputs {path}: 'inputs' is {X.dtype} {X.shape}; this model takes {expected}, N >= 1"
        )
    X = X.astype(np.float32)
    bad = int((~np.isfinite(X.reshape(len(X), -1))).any(axis=1).sum())
    if bad:
        raise DataError(
            f"--inputs {path}: 'inputs' has NaN/Inf in {bad} of {len(X)} windows; fill or drop them"
        )
    if X.ndim == 3:  # raw windows: the deployment preprocessing
        X = preprocess(X, data.stats)
    if y is not None:
        if (
            y.shape != (len(X),)
            or y.dtype.kind not in "iu"
            or not ((y >= 0) & (y < data.num_classes)).all()
        ):
            raise DataError(
                f"--inputs {path}: 'labels' must be {len(X)} class ids in 0..{data.num_classes - 1}, "
                f"got {y.dtype} {y.shape}; fix or drop 'labels'"
            )
        y = y.astype(np.int64)
    return X, y


def cpu_reference(
    model_path: Path, reference: Any, q_inputs: np.ndarray, device_runtime: str
) -> tuple[str, np.ndarray]:
    """int8 outputs of a CPU reference that is not the runtime the device reports, so agreement is
    never true by construction: the integer-only reference for an onnxruntime device and for
    edgekit's generated C (its own implementation of the integer arithmetic, which it must match
    bit for bit), else onnxruntime."""
    from edgekit.onnx_io import OnnxRunner, int8_input_variant, load_onnx

    if device_runtime == "onnxruntime" or device_runtime.startswith(INTEGER_EXACT_RUNTIME):
        return "integer-reference", reference.run_quantized(
            q_inputs.astype(np.int64)
        ).logits_q.astype(np.int8)
    # from the int8 windows the device got: the graph's input dither is in them already
    logits = OnnxRunner(int8_input_variant(load_onnx(model_path))).run(q_inputs)["logits"]
    return "onnxruntime", reference.logits_tensor.quantize(logits).astype(np.int8)


@transactional()
def run_verify(run: Run | str | Path, options: VerifyOptions) -> dict[str, Any]:
    """`edgekit verify`: stream the test windows to a device, compare its outputs with a CPU
    reference the device does not run and with the labels; writes `verify/` and returns its report."""
    from edgekit.quantize.integer_reference import IntegerReference
    from edgekit.rundir.run import Run

    run = Run(layout.run_path(run))
    model_path = model_file(run.path)
    run.verified(model_path.relative_to(run.path).as_posix())
    reference = IntegerReference.from_onnx(model_path)
    X, labels = load_inputs(run, options.inputs, options.limit)
    q_inputs = reference.quantize_input(X).astype(np.int8)
    expected_inputs, expected_outputs = model_descriptors(reference)  # what must travel
    classes = expected_outputs[0].shape[0]
    cpu_name, cpu_q = (
        "",
        np.zeros((len(X), classes), np.int8),
    )  # chosen once the device names its runtime

    url = device_url(options.device, run.path)
    host_cpu = read_cpu_flags()
    report: dict[str, Any] = {
        "schema_version": 1,
        "partial": True,
        "device": {"url": options.device},
        "host_cpu": host_cpu,  # decides this host's onnxruntime int8 kernels
        "samples_total": len(X),
    }
    outputs: dict[int, np.ndarray] = {}
    micros: dict[int, int] = {}
    cycles: dict[int, int] = {}
    host_seconds: dict[int, float] = {}
    start = stream_start = time.perf_counter()
    tx_before = 0
    link = None
    try:
        link = HostLink(
            url,
            options.baud,
            options.timeout,
            options.retries,
            options.max_resets,
            options.no_reset,
        )
        ack = link.hello()
        expected = model_hash(model_path)
        report["device"].update(
            {
                "firmware": ack.firmware,
                "runtime": ack.runtime,
                "model_hash": ack.model_hash.hex(),
                "max_frame": ack.max_frame,
                "rx_credits": ack.rx_credits,
                "max_baud": ack.max_baud,
            }
        )
        if ack.model_hash != expected:
            raise DeviceError(
                f"device runs model {ack.model_hash.hex()} but {model_path} is "
                f"{expected.hex()}; flash the model from this run"
            )
        if options.switch_baud and options.switch_baud != link.baud:
            if options.switch_baud > ack.max_baud:
                raise DeviceError(
                    f"--switch-baud {options.switch_baud} is above the device's max {ack.max_baud}"
                )
            link.set_baud(options.switch_baud)
        report["device"]["baud"] = link.baud
        cpu_name, cpu_q = cpu_reference(model_path, reference, q_inputs, ack.runtime)
        report["reference"] = cpu_name
        for role, advertised, expected_descs in (
            ("input", ack.inputs, expected_inputs),
            ("output", ack.outputs, expected_outputs),
        ):
            problem = descriptor_mismatch(role, advertised, expected_descs)
            if problem:
                raise DeviceError(
                    f"device's HELLO_ACK does not describe {model_path.name}: {problem}; "
                    "build the firmware's tensor descriptors from this model (docs/PROTOCOL.md)"
                )
        out_desc = ack.outputs[0]
        out_dtype = np.dtype(DTYPE_NUMPY[out_desc.dtype])
        out_bytes = cpu_q.shape[1] * out_dtype.itemsize
        progress = Progress(len(X), "verify", enabled=options.show_progress)
        sent_at = stream_start = time.perf_counter()
        tx_before = link.stats.tx_bytes
        for sample_id, result in link.stream([(i, q.tobytes()) for i, q in enumerate(q_inputs)]):
            if len(result.data) != out_bytes:
                raise DeviceError(
                    f"device sent a RESULT of {len(result.data)} bytes for sample {sample_id}, expected {out_bytes}; "
                    "the firmware does not follow its own HELLO_ACK descriptor"
                )
            outputs[sample_id] = np.frombuffer(result.data, dtype=out_dtype)
            micros[sample_id] = result.micros
            cycles[sample_id] = result.cycles
            now = time.perf_counter()
            host_seconds[sample_id] = now - sent_at
            sent_at = now
            progress.update(
                len(outputs), link_B_per_s=int(link.stats.tx_bytes / max(now - start, 1e-9))
            )
        progress.close()
        report["partial"] = False
    except KeyboardInterrupt as err:
        report["error"] = f"interrupted ({str(err) or 'Ctrl-C'})"
    except DeviceError as err:
        report["error"] = str(err)
    finally:
        if link is not None:
            link.close()
    end = time.perf_counter()
    seconds, stream_seconds = (
        end - start,
        end - stream_start,
    )  # streaming excludes opening and handshake
    done = sorted(outputs)
    device_q = (
        np.stack([outputs[i] for i in done]) if done else np.zeros((0, cpu_q.shape[1]), np.int8)
    )
    rows: dict[str, dict[str, Any]] = {
        "device_vs_labels": {},
        "reference_vs_labels": {},
        "device_vs_reference": {},
    }
    tolerance = Tolerance(max_lsb=options.max_lsb, min_top1_agreement=options.min_agreement)
    pair = None
    if done:
        scale = np.float64(reference.output_scale)
        pair = compare(
            "device_vs_reference",
            cpu_q[done] * scale,
            device_q * scale,
            tolerance,
            (cpu_name, "device"),
            lsb=float(scale),
        )
        if not pair.passed and not report["device"].get("runtime", "").startswith(
            INTEGER_EXACT_RUNTIME
        ):
            # onnxruntime is one side (the device's or this host's): int16 pair saturation?
            pair.diagnosis = saturation_diagnosis(saturation_bounds(reference.model), host_cpu)
        rows["device_vs_reference"] = pair.to_dict()
        if labels is not None:
            rows["device_vs_labels"]["accuracy"] = float(
                (device_q.argmax(1) == labels[done]).mean()
            )
            rows["reference_vs_labels"]["accuracy"] = float(
                (cpu_q[done].argmax(1) == labels[done]).mean()
            )
    link_stats = link.stats_dict() if link is not None else {}
    if url.startswith("qemu://") and done:
        report["device"].update(qemu_counts(url, np.array([cycles[i] for i in done])))
    report.update(
        {
            "samples_done": len(done),
            "seconds": seconds,
            "stream_seconds": stream_seconds,
            "samples_per_s": len(done) / stream_seconds if stream_seconds else 0.0,
            "rows": rows,
            "latency": latency(
                np.array([micros[i] for i in done]), np.array([host_seconds[i] for i in done])
            ),
            "link": link_efficiency(
                {**link_stats, "tx_bytes": link_stats["tx_bytes"] - tx_before},
                stream_seconds,
                link.baud,
            )
            if link is not None and link_stats
            else {},
            "link_stats": link_stats,
            "missing_sample_ids": [i for i in range(len(X)) if i not in outputs],  # all of them
        }
    )
    report["gates"] = [
        {
            "name": "all_samples_answered",
            "value": len(done),
            "limit": len(X),
            "passed": len(done) == len(X),
        },
        {
            "name": "device_vs_reference",
            "value": "; ".join(pair.failures) or "within tolerance" if pair else "no samples",
            "limit": asdict(tolerance),
            "passed": pair is not None and pair.passed,
        },
    ]
    if labels is not None and options.min_accuracy:
        accuracy = rows["device_vs_labels"].get("accuracy", 0.0)
        report["gates"].append(
            {
                "name": "device_accuracy",
                "value": accuracy,
                "limit": options.min_accuracy,
                "passed": accuracy >= options.min_accuracy,
            }
        )
    report["passed"] = not report["partial"] and all(g["passed"] for g in report["gates"])
    folder = run.path / layout.VERIFY
    if done:
        from edgekit.plots import latency_histogram

        latency_histogram([micros[i] for i in done], folder / "latency.png")
        report["plots"] = ["latency.png"]
    write_json(folder / "report.json", report)
    write_text(folder / "report.md", render_markdown(report))
    write_text(folder / "junit.xml", render_junit(report))
    Manifest.finish_stage(
        run.path, "verify", seconds, [folder], passed=report["passed"], partial=report["partial"]
    )
    return report


def qemu_counts(url: str, cycles: np.ndarray) -> dict[str, Any]:
    """The emulated board and its instructions per inference: under `-icount shift=0` the
    firmware's SysTick cycles are instructions (40 a tick). They include the receive interrupts
    that ran during the inference (the host streams the next window meanwhile); the export's
    self-test in export/mcu/report.json counts the model alone."""
    from edgekit.firmware_bridge.protocol_qemu import parse_url
    from edgekit.firmware_bridge.toolchain import BOARDS, INSTRUCTIONS_PER_TICK

    board, _ = parse_url(url)
    return {
        "board": board,
        "board_description": BOARDS[board],
        "instructions_per_inference_median": float(np.median(cycles) * INSTRUCTIONS_PER_TICK),
        "instructions_per_inference_max": float(cycles.max() * INSTRUCTIONS_PER_TICK),
    }


def raise_for_report(report: dict[str, Any], folder: Path) -> None:
    """Non-zero exit for a partial run or a failed gate, after the report is safely written."""
    if report["partial"]:
        raise DeviceError(
            f"{report.get('error', 'stopped')}; partial report with {report['samples_done']} samples in {folder}"
        )
    failed = [g["name"] for g in report["gates"] if not g["passed"]]
    if failed:
        diagnosis = report["rows"]["device_vs_reference"].get("diagnosis", "")
        cause = f" ({diagnosis})" if diagnosis else ""
        raise GateError(
            f"verification gates failed: {', '.join(failed)}{cause}; see {folder / 'report.md'}"
        )
