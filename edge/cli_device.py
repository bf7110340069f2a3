"""Device-side commands: `edgekit verify` (host) and `edgekit device serve|emulate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from edgekit.cli_options import backend_option, device_run_option, run_argument, writing
from edgekit.rundir import layout


# ------------------------------------------------------------------ verify / device
@click.command()
@run_argument
@click.option(
    "--device",
    "device_url",
    required=True,
    metavar="URL",
    help="/dev/ttyUSB0, /dev/pts/N, socket://host:port, emu://[?faults=...] or qemu://[mps2-an386][?build=portable].",
)
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Only the first N windows.")
@click.option(
    "--baud",
    type=click.IntRange(min=1),
    default=None,
    help="Baud rate (default from config, 921600).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds to wait for a reply before retransmitting.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=None,
    help="Retransmissions before re-synchronising.",
)
@click.option(
    "--max-resets",
    type=click.IntRange(min=0),
    default=None,
    help="Device resets tolerated during the run.",
)
@click.option(
    "--no-reset", is_flag=True, help="Keep DTR/RTS low on open so the board does not reboot."
)
@click.option(
    "--inputs",
    type=click.Path(),
    default=None,
    help=".npz with 'inputs' (and optional 'labels') instead of the test split.",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=None,
    help="Gate: top-1 agreement device vs CPU reference.",
)
@click.option(
    "--max-lsb",
    type=click.IntRange(0),
    default=None,
    help="Gate: max |Δ| in output LSB device vs CPU reference.",
)
@click.option(
    "--min-accuracy",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Gate: device accuracy against labels.",
)
@click.option(
    "--switch-baud",
    type=click.IntRange(0),
    default=0,
    help="After HELLO, switch both sides to this baud (SET_BAUD).",
)
def verify(
    run_dir: Path,
    device_url: str,
    inputs: str | None,
    no_reset: bool,
    min_accuracy: float,
    switch_baud: int,
    **flags: Any,
) -> None:
    """Stream windows to a device over serial and compare with the CPU reference and labels."""
    from edgekit.config import load_run_config
    from edgekit.verify import VerifyOptions, raise_for_report, run_verify
    from edgekit.verify_report import fault_summary

    options = VerifyOptions.from_config(
        device_url,
        load_run_config(run_dir).verify,
        inputs=inputs,
        no_reset=no_reset,
        min_accuracy=min_accuracy,
        switch_baud=switch_baud,
        **flags,
    )
    with writing(run_dir, "verify"):
        report = run_verify(run_dir, options)
    rows = report["rows"]
    agreement = rows["device_vs_reference"]
    if report["samples_done"]:  # a device that never answered gets only the one-line error
        click.echo(
            f"samples {report['samples_done']}/{report['samples_total']} at {report['samples_per_s']:.1f}/s"
        )
    if "accuracy" in rows["device_vs_labels"]:
        click.echo(
            f"accuracy  device {rows['device_vs_labels']['accuracy']:.4f}  reference "
            f"{rows['reference_vs_labels']['accuracy']:.4f}"
        )
    if agreement:
        click.echo(
            f"device vs reference: top-1 {agreement['top1_agreement']:.4f}, max |Δ| "
            f"{agreement['max_lsb']:g} LSB, exact {100 * agreement['exact_sample_fraction']:.1f} % "
            f"(vs {report.get('reference')})"
        )
    if "board" in report["device"]:
        click.echo(
            f"board {report['device']['board']}: {report['device']['instructions_per_inference_median']:.0f} "
            "instructions per inference (median, QEMU -icount)"
        )
    if report["latency"]:
        click.echo(
            f"device latency p50 {report['latency']['device_us_p50']:.0f} µs, p95 "
            f"{report['latency']['device_us_p95']:.0f} µs"
        )
    stats = report["link_stats"]
    if stats:
        click.echo(f"link: {report['link']['tx_bytes_per_s']:.0f} B/s; {fault_summary(stats)}")
    raise_for_report(report, run_dir / layout.VERIFY)
    click.echo(f"all gates passed -> {run_dir / 'verify'}")


@click.group()
def device() -> None:
    """Run the device side: serve a model over a port, or emulate a device on a pseudo-terminal."""


@device.command("serve")
@click.option(
    "--port",
    "port_url",
    required=True,
    help="Serial port of this board towards the host (e.g. /dev/ttyGS0).",
)
@device_run_option
@backend_option
@click.option("--baud", type=int, default=921600, show_default=True)
def device_serve(port_url: str, run_dir: Path, backend: str, baud: int) -> None:
    """Serve edgekit-wire/2 on a board (e.g. a Raspberry Pi) until Ctrl-C."""
    from edgekit.firmware_bridge.agent import DeviceAgent, load_backend
    from edgekit.firmware_bridge.link import open_port
    from edgekit.firmware_bridge.ports import SerialPort

    agent = DeviceAgent(
        load_backend(run_dir, backend), SerialPort(open_port(port_url, baud)), baud=baud
    )
    agent.baud_listeners.append(lambda new: setattr(agent.port.serial, "baudrate", new))  # type: ignore[attr-defined]
    click.echo(
        f"serving {backend} model from {run_dir} on {port_url} at {baud} baud; Ctrl-C to stop"
    )
    try:
        agent.serve()
    except KeyboardInterrupt:
        click.echo("stopped")


@device.command("emulate")
@device_run_option
@backend_option
@click.option(
    "--baud", type=int, default=0, help="Throttle to this baud rate (0 = as fast as the pty goes)."
)
@click.option(
    "--faults",
    default="",
    help="e.g. bitflip=0.01,drop=0.01,reset_after=50,banner=1,perturb_lsb=2.",
)
def device_emulate(run_dir: Path, backend: str, baud: int, faults: str) -> None:
    """Emulate a device on a new pseudo-terminal; pass the printed /dev/pts/N to `edgekit verify --device`."""
    import threading

    from edgekit.firmware_bridge.emulator import Emulator, Faults

    emulator = Emulator(run_dir, backend, baud, Faults.parse(faults) if faults else None).start()
    click.echo(
        f"emulated device on {emulator.path}  (edgekit verify {run_dir} --device {emulator.path}); Ctrl-C to stop"
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        emulator.close()
        click.echo("stopped")


@device.command("qemu")
@device_run_option
@click.option("--board", default="mps2-an386", show_default=True, help="QEMU board.")
@click.option("--portable", is_flag=True, help="Boot the portable build instead of the DSP build.")
def device_qemu(run_dir: Path, board: str, portable: bool) -> None:
    """Boot the run's MCU firmware in QEMU and print its serial pty for `edgekit verify --device`."""
    import tempfile
    import threading

    from edgekit.firmware_bridge.protocol_qemu import boot, firmware, parse_url

    parse_url(f"qemu://{board}")
    with tempfile.TemporaryDirectory(prefix="edgekit-qemu-") as scratch:
        elf = firmware(run_dir, "portable" if portable else "dsp", Path(scratch))
        qemu = boot(elf, board)
        click.echo(
            f"{board} running {elf.name} on {qemu.pty}  (edgekit verify {run_dir} --device {qemu.pty}); Ctrl-C to stop"
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("stopped")
        finally:
            qemu.close()


@device.command("conformance")
@click.option(
    "--device",
    "device_url",
    required=True,
    metavar="URL",
    help="The device to check: /dev/ttyACM0, /dev/pts/N, socket://host:port, emu://?run=RUN.",
)
@click.option("--baud", type=click.IntRange(min=1), default=921600, show_default=True)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds to wait for each reply.",
)
@click.option(
    "--no-reset", is_flag=True, help="Keep DTR/RTS low on open so the board does not reboot."
)
@click.option(
    "--junit",
    "junit_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the results as a JUnit file.",
)
def device_conformance(
    device_url: str, baud: int, timeout: float, no_reset: bool, junit_path: Path | None
) -> None:
    """Check a device against docs/PROTOCOL.md, check by check: run this on a board before verify."""
    import time

    from edgekit.errors import GateError
    from edgekit.firmware_bridge.conformance import Outcome, run_conformance
    from edgekit.rundir.artifacts import write_text
    from edgekit.verify_report import junit

    def show(outcome: Outcome) -> None:
        click.echo(f"{'PASS' if outcome.passed else 'FAIL'}  {outcome.name:<18} {outcome.detail}")

    start = time.perf_counter()
    outcomes = run_conformance(device_url, baud, timeout, no_reset, report=show)
    if junit_path is not None:
        cases = [(o.name, None if o.passed else o.detail) for o in outcomes]
        write_text(junit_path, junit("edgekit.conformance", cases, time.perf_counter() - start))
    failed = [o.name for o in outcomes if not o.passed]
    if failed:
        raise GateError(
            f"{len(failed)} of {len(outcomes)} conformance checks failed ({', '.join(failed)}); "
            "docs/PROTOCOL.md has each rule"
        )
    click.echo(f"all {len(outcomes)} conformance checks passed")
