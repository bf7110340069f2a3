"""Host link, device agent and `verify` against the emulator: clean, every fault, and bad input.

The same tests run against real hardware with `pytest --device URL` (marker `hardware`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from edgekit.errors import DeviceError, GateError
from edgekit.firmware_bridge import protocol as wire
from edgekit.firmware_bridge.emulator import Emulator, Faults
from edgekit.firmware_bridge.link import HostLink
from edgekit.verify import VerifyOptions, cpu_reference, raise_for_report, run_verify

FAST = {"timeout": 0.15, "retries": 3, "show_progress": False}


def verify(run_dir: Path, device: str, **options) -> dict:
    return run_verify(run_dir, VerifyOptions(device=device, **{**FAST, **options}))


def assert_complete(report: dict) -> None:
    assert not report["partial"], report.get("error")
    assert report["samples_done"] == report["samples_total"] and report["missing_sample_ids"] == []


def test_clean_run_passes_every_gate(exported_run: Path) -> None:
    report = verify(exported_run, "emu://")
    assert_complete(report)
    assert report["passed"] and report["rows"]["device_vs_reference"]["max_lsb"] == 0
    assert (
        report["rows"]["device_vs_labels"]["accuracy"]
        == report["rows"]["reference_vs_labels"]["accuracy"]
    )
    assert report["latency"]["device_us_p50"] > 0
    folder = exported_run / "verify"
    assert json.loads((folder / "report.json").read_text())["passed"]
    assert (
        'failures="0"' in (folder / "junit.xml").read_text()
        and "# On-device verification" in (folder / "report.md").read_text()
    )
    assert "![device latency per window](latency.png)" in (folder / "report.md").read_text()
    import matplotlib.image

    assert matplotlib.image.imread(folder / "latency.png").shape[0] > 100


def test_pty_path_works_like_hardware_with_integer_backend(exported_run: Path) -> None:
    with Emulator(exported_run, backend="int-reference") as emulator:
        assert emulator.path.startswith("/dev/pts/")
        report = verify(exported_run, emulator.path)
    assert_complete(report)
    assert report["device"]["runtime"] == "int-reference"
    assert report["rows"]["device_vs_reference"]["max_lsb"] <= 1


@pytest.mark.parametrize(
    ("faults", "counter"),
    [
        ("banner=1,seed=4", "garbage_bytes"),
        ("delay_ms=400,delay_every=5", "timeouts"),
        ("reset_after=5", "resets"),
        ("oversize_after=3", "oversize"),
    ],
)
def test_every_fault_completes_and_is_counted(
    exported_run: Path, faults: str, counter: str
) -> None:
    report = verify(exported_run, f"emu://?faults={faults}")
    assert_complete(report)
    assert report["link_stats"][counter] > 0, report["link_stats"]
    assert report["rows"]["device_vs_reference"]["max_lsb"] == 0  # faults never change results


def test_slow_device_reports_its_latency(exported_run: Path) -> None:
    report = verify(exported_run, "emu://?faults=infer_us=20000", limit=6)
    assert_complete(report)
    assert report["latency"]["device_us_p50"] >= 20000


def test_perturbed_device_fails_the_gate(exported_run: Path) -> None:
    report = verify(exported_run, "emu://?faults=perturb_lsb=2")
    assert_complete(report)
    assert not report["passed"] and report["rows"]["device_vs_reference"]["max_lsb"] == 2
    with pytest.raises(GateError, match="device_vs_reference"):
        raise_for_report(report, exported_run / "verify")
    assert 'name="device_vs_reference"><failure' in (exported_run / "verify/junit.xml").read_text()


def test_wrong_model_hash_stops_with_clear_error(exported_run: Path) -> None:
    report = verify(exported_run, "emu://?faults=wrong_hash=1")
    assert report["partial"] and "flash the model" in report["error"]
    assert report["missing_sample_ids"] == list(range(report["samples_total"]))  # every one named
    with pytest.raises(DeviceError, match="partial report"):
        raise_for_report(report, exported_run / "verify")


def test_missing_device_path(exported_run: Path) -> None:
    report = verify(exported_run, "/dev/ttyUSB_edgekit_missing")
    assert report["partial"] and "does not exist" in report["error"]


def test_device_that_never_answers_names_port_and_baud() -> None:
    master, slave = os.openpty()
    try:
        link = HostLink(os.ttyname(slave), baud=115200, timeout=0.05)
        with pytest.raises(
            DeviceError, match=r"no answer to HELLO from /dev/pts/\d+ at 115200 baud"
        ):
            link.hello()
        link.close()
    finally:
        os.close(master)
        os.close(slave)


def test_a_link_that_corrupts_every_reply_is_named_as_such(exported_run: Path) -> None:
    """The device answers, the link flips a bit in every reply: the error says so, with figures,
    after the whole retry budget (not "no answer ... check the port")."""
    faults = Faults(bitflip=1.0, seed=1)
    faults.corrupt_incoming = lambda data: data  # type: ignore[method-assign]  # requests arrive intact
    with Emulator(exported_run, faults=faults) as emulator:
        link = HostLink(emulator.path, timeout=0.1, retries=1)
        with pytest.raises(
            DeviceError,
            match=r"HELLO .* failed after (\d+) tries: replies arrived corrupted \((\d+) CRC errors",
        ) as raised:
            link.hello()
        link.close()
    # the device kept answering: more tries than the retry budget, not "no answer ... check the port"
    tries = int(re.search(r"after (\d+) tries", str(raised.value)).group(1))  # type: ignore[union-attr]
    assert "lower --baud" in str(raised.value) and link.stats.requests == tries > 2


def test_wrong_protocol_version(exported_run: Path) -> None:
    with Emulator(exported_run) as emulator:
        link = HostLink(emulator.path, timeout=0.2)
        with pytest.raises(DeviceError, match="BAD_VERSION device speaks version 2 only"):
            link.transact(
                wire.MessageType.HELLO, wire.Hello(3, 4).pack(), wire.MessageType.HELLO_ACK
            )
        link.close()


def test_unplugged_mid_run_keeps_a_partial_report(exported_run: Path) -> None:
    with Emulator(exported_run) as emulator:
        run = emulator.backend.run
        calls = {"n": 0}

        def unplug_after_three(q: np.ndarray) -> np.ndarray:
            calls["n"] += 1
            if calls["n"] == 4:
                threading.Thread(target=emulator.close).start()  # the cable is pulled
                threading.Event().wait(0.3)
            return run(q)

        emulator.backend.run = unplug_after_three
        report = verify(exported_run, emulator.path)
    assert report["partial"] and 0 < report["samples_done"] < report["samples_total"]
    assert json.loads((exported_run / "verify/report.json").read_text())["partial"]


def test_ctrl_c_keeps_a_partial_report(exported_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = HostLink.stream

    def interrupted(self, samples, repeat=1):
        for count, item in enumerate(original(self, samples, repeat)):
            if count == 3:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(HostLink, "stream", interrupted)
    report = verify(exported_run, "emu://")
    assert report["partial"] and report["samples_done"] == 3 and "Ctrl-C" in report["error"]
    assert "(PARTIAL)" in (exported_run / "verify/report.md").read_text()


def test_run_without_export(trained_run: Path, tmp_path: Path) -> None:
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(trained_run, bare, ignore=shutil.ignore_patterns("export"))
    with pytest.raises(DeviceError, match="--target onnx"):
        verify(bare, "emu://")


def test_set_baud_and_ping(exported_run: Path) -> None:
    with Emulator(exported_run, baud=115200) as emulator:
        link = HostLink(emulator.path, baud=115200, timeout=0.5)
        ack = link.hello()
        assert link.ping() == ack.boot_nonce
        switched = threading.Event()
        emulator.agent.baud_listeners.append(lambda baud: baud == 921600 and switched.set())
        link.set_baud(921600)
        assert link.ping() == ack.boot_nonce  # answered at the new rate
        # the device switches right after sending its ACK (PROTOCOL.md), on its own thread here
        assert switched.wait(2) and emulator.throttle.baud == 921600
        link.close()


def test_closed_emulator_leaves_no_thread_on_its_fds(exported_run: Path, tmp_path: Path) -> None:
    """Regression: a UART thread outliving close() read a reused fd and corrupted a file read."""
    emulator = Emulator(exported_run, baud=115200).start()
    link = HostLink(emulator.path, baud=115200, timeout=0.5)
    link.hello()
    link.close()
    emulator.close()
    assert not emulator.thread.is_alive() and not emulator.throttle.thread.is_alive()
    payload = os.urandom(1 << 16)
    (tmp_path / "blob").write_bytes(payload)
    with open(tmp_path / "blob", "rb") as handle:  # likely reuses the pty's fd number
        emulator.close()  # a second close must not close someone else's fd
        assert handle.read() == payload


def test_verify_switches_baud_after_hello(exported_run: Path) -> None:
    report = verify(exported_run, "emu://?baud=115200", baud=115200, switch_baud=921600, limit=4)
    assert_complete(report)
    assert report["device"]["baud"] == 921600 and report["link"]["baud"] == 921600


def test_faults_parse_errors() -> None:
    with pytest.raises(DeviceError, match="unknown fault 'flip'"):
        Faults.parse("flip=1")
    assert Faults.parse("bitflip=0.5,banner=1").banner


@pytest.mark.hardware
def test_verify_on_real_device(exported_run: Path, request: pytest.FixtureRequest) -> None:
    """`pytest -m hardware --device /dev/ttyUSB0 --run runs/NAME` (the run whose model the board holds)."""
    run_dir = Path(request.config.getoption("--run") or exported_run)
    report = verify(run_dir, request.config.getoption("--device"), timeout=2.0)
    assert_complete(report)
    assert report["passed"]


def test_permission_denied_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import serial
    from edgekit.firmware_bridge.link import open_port

    class Forbidden:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def open(self) -> None:
            raise serial.SerialException(
                13, "could not open port /dev/ttyS9: [Errno 13] Permission denied: '/dev/ttyS9'"
            )

    monkeypatch.setattr(serial, "serial_for_url", lambda *a, **k: Forbidden())
    with pytest.raises(
        DeviceError, match="permission denied on /dev/ttyS9; add your user to the 'dialout' group"
    ):
        open_port("/dev/ttyS9", 115200)


@pytest.mark.parametrize("layout", ["raw", "model"])
def test_user_inputs_raw_or_in_model_layout(
    exported_run: Path, tmp_path: Path, layout: str
) -> None:
    """Raw (N,C,T) windows get the deployment preprocessing; both give the test split's results."""
    from edgekit.data.prepare import from_hailo_layout
    from edgekit.rundir.run import Run

    run = Run(exported_run)
    X, y = run.data.arrays["test"]
    if layout == "raw":  # undo the normalisation and the (C,2,T/2) layout the run recorded
        stats = run.data.stats
        flat = from_hailo_layout(X, stats["row_layout"])
        X = (
            flat * np.asarray(stats["std"])[None, :, None]
            + np.asarray(stats["mean"])[None, :, None]
        )
    np.savez(tmp_path / "in.npz", inputs=X, labels=y)
    report = verify(exported_run, "emu://", inputs=str(tmp_path / "in.npz"))
    reference = verify(exported_run, "emu://")
    assert_complete(report)
    assert report["samples_total"] == len(y)
    assert report["rows"]["device_vs_labels"] == reference["rows"]["device_vs_labels"]


def test_an_empty_log_frame_is_logged_not_fatal(exported_run: Path) -> None:
    report = verify(exported_run, "emu://?faults=malformed=empty_log")
    assert_complete(report)
    assert report["passed"] and "" in report["link_stats"]["logs"]


def test_console_and_report_give_the_same_fault_counters(exported_run: Path) -> None:
    """The console's link line and report.md list every fault counter with report.json's values."""
    from click.testing import CliRunner
    from edgekit.cli import cli
    from edgekit.verify_report import FAULT_COUNTERS, fault_summary

    device = "emu://?faults=bitflip=0.01,seed=3"
    result = CliRunner().invoke(
        cli, ["verify", str(exported_run), "--device", device, "--limit", "6"]
    )
    report = json.loads((exported_run / "verify/report.json").read_text())
    stats = report["link_stats"]
    assert sum(stats[name] for name in FAULT_COUNTERS) > 0, stats  # faults seen and counted
    line = fault_summary(stats)
    assert all(f"{name} {stats[name]}" in line for name in FAULT_COUNTERS)
    assert f"; {line}" in result.output
    assert f"Faults seen: {line}" in (exported_run / "verify/report.md").read_text()
    assert report["missing_sample_ids"] == []


def test_requests_of_a_finished_sample_are_never_sent_again(
    exported_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lost LOAD ACKs: a LOAD is never resent with its seq; once the sample's RESULT is in, nothing
    of it is sent again."""
    from edgekit.firmware_bridge.agent import DeviceAgent

    finished: set[int] = set()
    late: list[tuple[str, int]] = []
    write, handle = HostLink._write, DeviceAgent.handle
    swallowed: set[int] = set()

    def watching_write(self: HostLink, frame: wire.Frame) -> int:
        if frame.type in (wire.MessageType.LOAD, wire.MessageType.INFER):
            sample_id = int.from_bytes(frame.payload[:4], "little")
            if sample_id in finished:
                late.append((frame.type.name, sample_id))
            if frame.type == wire.MessageType.LOAD and frame.flags & wire.Flags.RETRANSMIT:
                late.append(("LOAD resent", sample_id))
        return write(self, frame)

    def losing_load_acks(self: DeviceAgent, frame: wire.Frame) -> bytes | None:
        reply = handle(self, frame)  # the LOAD is executed and its ACK cached...
        if frame.type == wire.MessageType.LOAD and frame.seq not in swallowed:
            sample_id = int.from_bytes(frame.payload[:4], "little")
            if sample_id % 3 == 0:  # ...but the ACK of every third sample's LOAD is lost once
                swallowed.add(frame.seq)
                return None
        return reply

    monkeypatch.setattr(HostLink, "_write", watching_write)
    monkeypatch.setattr(DeviceAgent, "handle", losing_load_acks)
    # 20 ms per inference: the stream outlasts the 0.1 s reply timeout many times over
    with Emulator(exported_run, faults=Faults(infer_us=20000)) as emulator:
        link = HostLink(emulator.path, timeout=0.1, retries=3)
        size = int(np.prod(link.hello().inputs[0].shape))
        X = np.random.default_rng(0).integers(-128, 128, size=(30, size), dtype=np.int8)
        for sample_id, _ in link.stream([(i, x.tobytes()) for i, x in enumerate(X)]):
            finished.add(sample_id)
        link.close()
    assert len(finished) == len(X) and late == []
    assert len(swallowed) == 10 and link.stats.unconfirmed_loads >= len(swallowed)


def _scaled(desc: wire.TensorDesc, factor: float) -> wire.TensorDesc:
    return dataclasses.replace(desc, scale=desc.scale * factor)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda i, o: (i, (_scaled(o[0], 2),)), "output 0 scale"),
        (lambda i, o: ((_scaled(i[0], 2),), o), "input 0 scale"),
        (lambda i, o: ((_scaled(i[0], 1 + 1e-3),), o), "input 0 scale"),
        (lambda i, o: ((dataclasses.replace(i[0], zero_point=1),), o), "input 0 zero_point"),
        (lambda i, o: (i, (dataclasses.replace(o[0], zero_point=-1),)), "output 0 zero_point"),
        (lambda i, o: ((dataclasses.replace(i[0], shape=(1, *i[0].shape)),), o), "input 0 shape"),
        (lambda i, o: (i, (dataclasses.replace(o[0], dtype=wire.DType.INT16),)), "output 0 dtype"),
        (lambda i, o: (i, (*o, o[0])), "2 output tensors advertised"),
    ],
)
def test_descriptors_that_do_not_match_the_model_are_refused(
    exported_run: Path, change, named: str
) -> None:
    """A device advertising another scale, zero point, shape, dtype or tensor count is refused
    before streaming, with the field named (a doubled scale used to pass)."""
    with Emulator(exported_run) as emulator:
        backend = emulator.agent.backend
        inputs, outputs = change(backend.inputs, backend.outputs)
        emulator.agent.backend = dataclasses.replace(backend, inputs=inputs, outputs=outputs)
        report = verify(exported_run, emulator.path)
    assert report["partial"] and report["samples_done"] == 0
    assert "HELLO_ACK does not describe model_int8.onnx" in report["error"], report["error"]
    assert named in report["error"], report["error"]


def test_the_emulators_descriptors_are_the_models(exported_run: Path) -> None:
    from edgekit.firmware_bridge.contract import descriptor_mismatch, model_descriptors
    from edgekit.quantize.integer_reference import IntegerReference

    reference = IntegerReference.from_onnx(exported_run / "export/onnx/model_int8.onnx")
    inputs, outputs = model_descriptors(reference)
    windows = np.load(exported_run / "data/X_test.npy", mmap_mode="r")
    classes = len(json.loads((exported_run / "data/stats.json").read_text())["class_names"])
    assert inputs[0].shape == windows.shape[1:] and outputs[0].shape == (classes,)  # no batch
    assert inputs[0].scale == reference.input_scale and outputs[0].scale == reference.output_scale
    assert len(outputs) == 1  # the logits only: pre_fsq is not streamed
    with Emulator(exported_run) as emulator:
        link = HostLink(emulator.path, timeout=0.5)
        ack = link.hello()
        link.close()
    assert descriptor_mismatch("input", ack.inputs, inputs) is None
    assert descriptor_mismatch("output", ack.outputs, outputs) is None


def test_a_second_run_against_a_running_device_gets_fresh_results(
    exported_run: Path, tmp_path: Path
) -> None:
    """Each run restarts seq at 1. The device must not answer the new run's requests from the last
    run's reply cache (stale RESULTs used to pass as the new windows' outputs)."""
    X = np.load(exported_run / "data/X_test.npy")[:10]
    reversed_inputs = tmp_path / "reversed.npz"
    np.savez(reversed_inputs, inputs=X[::-1])
    with Emulator(exported_run) as emulator:
        # short runs (10 windows, 21 requests) that fit the reply cache; a board that keeps running
        first = verify(exported_run, emulator.path, no_reset=True, limit=10)
        second = verify(
            exported_run, emulator.path, inputs=str(reversed_inputs), no_reset=True, limit=10
        )
        assert emulator.agent.inferences == 20  # the second run's windows were run, not replayed
    for report in (first, second):
        assert_complete(report)
        assert report["rows"]["device_vs_reference"]["max_lsb"] == 0
        assert report["rows"]["device_vs_reference"]["top1_agreement"] == 1.0


def test_a_failed_agreement_gate_names_its_diagnosis(tmp_path: Path) -> None:
    """int16 pair saturation explains a device-vs-reference failure (set by run_verify when the model
    can saturate and onnxruntime is one side); the exit message carries it."""
    report = {"partial": False, "gates": [{"name": "device_vs_reference", "passed": False}],
              "rows": {"device_vs_reference": {"diagnosis": "3 of 6 int8 layers can saturate"}}}  # fmt: skip
    with pytest.raises(GateError, match=r"device_vs_reference \(3 of 6 int8 layers can saturate\)"):
        raise_for_report(report, tmp_path)
    report["rows"]["device_vs_reference"] = {}
    with pytest.raises(GateError, match=r"gates failed: device_vs_reference; see"):
        raise_for_report(report, tmp_path)


def test_verify_options_come_from_the_run_config_then_the_session() -> None:
    """One path from `verify:` to a session (the pipeline used to copy fields by hand and drop limit)."""
    from edgekit.config import VerifyConfig

    config = VerifyConfig(limit=5, max_lsb=2, timeout=0.5, baud=115200)
    options = VerifyOptions.from_config("emu://", config, max_lsb=None, min_accuracy=0.5)
    assert (options.limit, options.max_lsb, options.timeout, options.baud) == (5, 2, 0.5, 115200)
    assert options.min_accuracy == 0.5 and options.device == "emu://"
    qemu = VerifyOptions.from_config("qemu://", config)
    assert (qemu.max_lsb, qemu.min_agreement, qemu.limit) == (0, 1.0, 5)  # bit-exact gates
    assert VerifyOptions.from_config("qemu://", config, max_lsb=3).max_lsb == 3
    assert VerifyOptions("emu://") == VerifyOptions.from_config("emu://", VerifyConfig())


def test_both_agent_backends_compute_the_same_integers_from_one_window(tmp_path: Path) -> None:
    """The onnxruntime backend runs the graph from the int8 window it receives: a dithered export
    must not add its dither a second time (dequantized into the float graph, the inputs the dither
    moves past half a step would move by one)."""
    from edgekit.firmware_bridge.agent import load_backend
    from edgekit.quantize.integer_reference import IntegerReference
    from edgekit.rundir import layout

    from ..quantize.test_integer_reference import input_offset_variant

    path = input_offset_variant((tmp_path / layout.INT8_MODEL).parent)
    assert path == tmp_path / layout.INT8_MODEL
    reference = IntegerReference.from_onnx(path)
    windows = np.random.default_rng(0).integers(-128, 128, (32, *reference.input.shape))
    runtime, integer = (load_backend(tmp_path, n) for n in ("onnxruntime", "int-reference"))
    got = np.stack([runtime.run(q.astype(np.int8)) for q in windows]).astype(np.int64)
    expected = np.stack([integer.run(q.astype(np.int8)) for q in windows]).astype(np.int64)
    assert np.abs(got - expected).max() <= 1 and (got == expected).mean() >= 0.99
    # verify's onnxruntime reference (for a device running something else) reads them the same way
    name, cpu = cpu_reference(path, reference, windows.astype(np.int8), "vendor-runtime")
    assert name == "onnxruntime"
    assert np.abs(cpu.astype(np.int64) - expected).max() <= 1
